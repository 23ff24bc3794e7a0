/*
 * test_coherence_fleet.c -- coherence across hosts (docs/COHERENCE.md, guarantees 2 to 5 and 7),
 * through the public API, judged by the history checker (tests/helpers/history.h).
 *
 * One real redis-server; two or three simulated hosts, each its own CACHE_SHARED_NAME with
 * tiering L1L2L3 (its own L2 segment and coherence segment); processes forked per host, each
 * opening its own cache after fork() with the environment variables an application would set.
 * Each process is an "agent" that runs the commands the test sends it over a pipe (one line
 * each, one line of reply) and records every call in its own history file:
 *
 *   - random get/set/del/clear_prefix from six processes on three hosts for a few seconds,
 *     without faults and with faults injected during the run (CLIENT KILL of the listeners'
 *     connections, a redis-server restart, SIGSTOP of a process and of a host's listener for
 *     longer than B, kill -9 of a process in the middle of its L2 write and of a listener);
 *     final reads after quiescence + B and the oracle (what L3 holds) close the history;
 *   - writes from outside: the real redis-cli SETs and DELs a namespaced key that every
 *     process of two hosts holds in its L1;
 *   - staged races on the fleet side: a fill from L3 held between its read and its install
 *     while another host writes or deletes the key, and a slow L3 reply (held back by a
 *     proxy) that arrives after the invalidation;
 *   - convergence of two hosts writing one key at once;
 *   - each fleet mechanism (GAP, the canary, the epoch move on recovery, applying echoes)
 *     proven necessary: a staged scenario the checker accepts, and rejects with that
 *     mechanism switched off (tc__coh_disable, set in the agents).
 *
 * B (CACHE_MAX_STALENESS) is 400 ms; the checker runs with the same B. Every wait is bounded.
 * Segments are destroyed and history files removed after each scenario.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coherence.h"
#include "helpers/history.h"
#include "helpers/proxy.h"
#include "helpers/redis_server.h"
#include "helpers/run_cmd.h"
#include "l2_segment.h"
#include "l3_format.h"
#include "tier.h"
#include "tiercache.h"
#include "util.h"

#define B_MS 400 /* CACHE_MAX_STALENESS of most scenarios */
#define MAX_AGENTS 8
#define MAX_HOSTS 3

static tc_test_redis srv;
static char hist_dir[128];
static char ns[64];                       /* REDIS_KEY_PREFIX of this scenario */
static char host_names[MAX_HOSTS][64];    /* CACHE_SHARED_NAME of each simulated host */
static unsigned scenario;                 /* makes host names unique per scenario */
static tc_hist_writer *harness;           /* the test's own records: faults, outside writes, oracle */
static int b_ms = B_MS;                   /* this scenario's B (agents' CACHE_MAX_STALENESS, the checker's) */
static const char *tiering = "L1L2L3";    /* this scenario's CACHE_TIERING */
static int pool_size = 2;                 /* REDIS_POOL_SIZE of the agents spawned next */
static tc__coh *host_coh[MAX_HOSTS];      /* the test's own view of each host's table */

static int setup(void **state) {
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* a command to an agent that was killed */
    snprintf(hist_dir, sizeof hist_dir, "/tmp/tc-cofleet-%d-XXXXXX", (int)getpid());
    if (mkdtemp(hist_dir) == NULL) return -1;
    return tc_test_redis_setup(&srv, NULL);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hist_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* Agents: one process of one simulated host, driven over pipes             */
/* ------------------------------------------------------------------------ */

typedef struct agent {
    pid_t pid;
    int to, from; /* the test's ends */
    int host;
    char proc[16];
    int alive;
} agent;

static agent agents[MAX_AGENTS];
static int nagents;

/* In the agent: its cache, its history writer, its pipes. */
static tc_cache *a_cache;
static tc_hist_writer *a_hist;
static int a_in = -1, a_out = -1;
static int a_hold;  /* 1: the next fill from L3 waits for "go" between its read and its install */
static int a_whold; /* 1: the next set waits for "go" between its L3 and its L2 part */

static void a_say(const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n > (int)sizeof line - 2) n = (int)sizeof line - 2;
    line[n++] = '\n';
    if (write(a_out, line, (size_t)n) != n) _exit(80);
}

/* Reads one line (without '\n') from fd into buf; waits at most ms (-1: for ever). Returns its
 * length, or -1 on EOF, error or timeout. */
static int read_line(int fd, char *buf, size_t cap, int ms) {
    size_t n = 0;
    double until = tc_test_now_ms() + ms;
    while (n + 1 < cap) {
        struct pollfd p = {fd, POLLIN, 0};
        int left = ms < 0 ? -1 : (int)(until - tc_test_now_ms());
        if (ms >= 0 && left < 0) return -1;
        int r = poll(&p, 1, left);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        char c;
        ssize_t k = read(fd, &c, 1);
        if (k < 0 && errno == EINTR) continue;
        if (k != 1) return -1;
        if (c == '\n') break;
        buf[n++] = c;
    }
    buf[n] = 0;
    return (int)n;
}

static tc_hist_res res_of(int rc) {
    if (rc == 0) return TC_HIST_RES_OK;
    if (rc == TC_EMISS) return TC_HIST_RES_MISS;
    return rc == TC_ETIMEDOUT ? TC_HIST_RES_TIMEOUT : TC_HIST_RES_ERR;
}

/* The fill hook of the agent: a fill from L3 waits, once armed, until the test says "go". */
static void agent_fill_hook(const tc__key *k, int from_tier) {
    (void)k;
    if (!a_hold || from_tier != TC_TIER_L3) return;
    a_hold = 0;
    a_say("held");
    char line[64];
    if (read_line(a_in, line, sizeof line, -1) < 0 || strcmp(line, "go") != 0) _exit(81);
}

/* The write hook of the agent: a set, once armed, waits after its L3 part until "go". */
static void agent_write_hook(const tc__key *k, int tier) {
    (void)k;
    if (!a_whold || tier != TC_TIER_L3) return;
    a_whold = 0;
    a_say("held");
    char line[64];
    if (read_line(a_in, line, sizeof line, -1) < 0 || strcmp(line, "go") != 0) _exit(81);
}

static int a_tier; /* the tier of the last get's hit */

static int a_get(const char *k, char *val, size_t cap) {
    uint64_t tok;
    tc_hist_invoke(a_hist, TC_HIST_OP_GET, k, NULL, &tok);
    size_t len = cap - 1;
    tc_get_info info = TC_GET_INFO_INIT;
    int rc = tc_get(a_cache, k, strlen(k), val, &len, &info);
    a_tier = info.tier;
    tc_hist_complete(a_hist, tok, res_of(rc), val, len);
    val[rc == 0 ? len : 0] = 0;
    return rc;
}

static int a_set(const char *k, const char *v) {
    uint64_t tok;
    tc_hist_invoke(a_hist, TC_HIST_OP_SET, k, v, &tok);
    int rc = tc_set(a_cache, k, strlen(k), v, strlen(v), 0);
    tc_hist_complete(a_hist, tok, res_of(rc), NULL, 0);
    return rc;
}

static int a_del(const char *k) {
    uint64_t tok;
    tc_hist_invoke(a_hist, TC_HIST_OP_DEL, k, NULL, &tok);
    int rc = tc_del(a_cache, k, strlen(k));
    tc_hist_complete(a_hist, tok, res_of(rc), NULL, 0);
    return rc;
}

static int a_clear_prefix(const char *p) {
    uint64_t tok;
    tc_hist_invoke(a_hist, TC_HIST_OP_CLEAR_PREFIX, p, NULL, &tok);
    int rc = tc_clear_prefix(a_cache, p, strlen(p));
    tc_hist_complete(a_hist, tok, res_of(rc), NULL, 0);
    return rc;
}

static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#define RANDOM_KEYS 8 /* k0..k3 and pk0..pk3; "pk" is the prefix cleared */

static void random_key(uint64_t *s, char *key, size_t cap) {
    unsigned i = (unsigned)(rnd(s) % RANDOM_KEYS);
    snprintf(key, cap, "%sk%u", i < 4 ? "" : "p", i % 4);
}

/* SIGUSR1 in an agent: its next L2 write kills it half-way (a process killed in the middle of
 * a write: its L3 write is done, its L2 write is not). */
static void on_usr1(int sig) {
    (void)sig;
    atomic_store(&tc__l2_crash_at, TC__L2_CP_BLOCK_PUBLISHED);
}

/* Random operations until the monotonic time until_ns. */
static void a_random(const char *proc, uint64_t seed, int64_t until_ns) {
    uint64_t s = seed;
    unsigned seq = 0;
    char key[16], val[64], buf[128];
    while (tc_hist_now_ns() < until_ns) {
        random_key(&s, key, sizeof key);
        uint64_t r = rnd(&s) % 100;
        if (r < 55) {
            (void)a_get(key, buf, sizeof buf);
        } else if (r < 85) {
            snprintf(val, sizeof val, "%s-%u", proc, seq++);
            (void)a_set(key, val);
        } else if (r < 97) {
            (void)a_del(key);
        } else {
            (void)a_clear_prefix("pk");
        }
    }
}

/* The agent's main loop. Commands (one line each, one line of reply):
 *   g KEY          get              -> "ok VALUE TIER" | "miss" | "err N"
 *   G KEY          get, its L3 fill held: "held" first, then waits for "go", then as g
 *   s KEY VALUE    set              -> "ok" | "err N"
 *   S KEY VALUE    set, held after its L3 part: "held", then waits for "go", then as s
 *   d KEY          delete           -> "ok" | "err N"
 *   p PREFIX       clear_prefix     -> "ok" | "err N"
 *   f KEY          final read (an R record) -> as g
 *   i              -> "LISTENER CHANNEL PID RECEIVED"   (tc_stats)
 *   x BITS         tc__coh_disable = BITS -> "ok"
 *   r SEED UNTIL   random operations until UNTIL (monotonic ns) -> "done"
 *   q              closes the cache and exits 0 (no reply) */
static void agent_main(int host, const char *proc, int port) {
    char v[32];
    setenv("CACHE_TIERING", tiering, 1);
    setenv("CACHE_SHARED_NAME", host_names[host], 1);
    setenv("CACHE_SHARED_MAX_BYTES", "2097152", 1);
    setenv("CACHE_SHARED_MAX_ENTRIES", "4096", 1);
    setenv("REDIS_HOST", "127.0.0.1", 1);
    snprintf(v, sizeof v, "%d", port);
    setenv("REDIS_PORT", v, 1);
    setenv("REDIS_KEY_PREFIX", ns, 1);
    snprintf(v, sizeof v, "%d", pool_size);
    setenv("REDIS_POOL_SIZE", v, 1);
    setenv("REDIS_CONNECT_TIMEOUT", "1000ms", 1);
    setenv("REDIS_COMMAND_TIMEOUT", "1000ms", 1);
    snprintf(v, sizeof v, "%dms", b_ms);
    setenv("CACHE_MAX_STALENESS", v, 1);
    setenv("CACHE_COHERENCE", "true", 1);
    char err[TC_ERRBUF_SIZE];
    if (tc_open_env(&a_cache, err, sizeof err) != 0) {
        fprintf(stderr, "agent %s: %s\n", proc, err);
        _exit(82);
    }
    char hname[16];
    snprintf(hname, sizeof hname, "h%d", host + 1);
    if (tc_hist_writer_open(hist_dir, proc, hname, &a_hist) != 0) _exit(83);
    signal(SIGUSR1, on_usr1);
    tc__test_fill_hook = agent_fill_hook;
    tc__test_write_hook = agent_write_hook;
    a_say("ready");
    char line[256], val[128];
    for (;;) {
        if (read_line(a_in, line, sizeof line, -1) < 0) break;
        char *arg = line[1] == ' ' ? line + 2 : line + 1;
        char *arg2 = strchr(arg, ' ');
        if (arg2 != NULL) *arg2++ = 0;
        int rc;
        switch (line[0]) {
        case 'G':
            a_hold = 1;
            /* fall through */
        case 'g':
            rc = a_get(arg, val, sizeof val);
            a_hold = 0;
            if (rc == 0) a_say("ok %s %d", val, a_tier);
            else a_say(rc == TC_EMISS ? "miss" : "err %d", rc);
            break;
        case 'f': {
            size_t len = sizeof val - 1;
            rc = tc_get(a_cache, arg, strlen(arg), val, &len, NULL);
            tc_hist_final_read(a_hist, arg, rc == 0, val, rc == 0 ? len : 0);
            val[rc == 0 ? len : 0] = 0;
            if (rc == 0) a_say("ok %s", val);
            else a_say(rc == TC_EMISS ? "miss" : "err %d", rc);
            break;
        }
        case 'S':
            a_whold = 1;
            /* fall through */
        case 's':
            rc = a_set(arg, arg2 != NULL ? arg2 : "");
            a_whold = 0;
            a_say(rc == 0 ? "ok" : "err %d", rc);
            break;
        case 'd':
            rc = a_del(arg);
            a_say(rc == 0 ? "ok" : "err %d", rc);
            break;
        case 'p':
            rc = a_clear_prefix(arg);
            a_say(rc == 0 ? "ok" : "err %d", rc);
            break;
        case 'i': {
            tc_stats st = TC_STATS_INIT;
            tc_stats_get(a_cache, &st);
            a_say("%d %d %u %llu", st.listener, st.channel, (unsigned)st.listener_pid,
                  (unsigned long long)st.invalidations_received);
            break;
        }
        case 'x':
            atomic_store(&tc__coh_disable, (unsigned)strtoul(arg, NULL, 10));
            a_say("ok");
            break;
        case 'r':
            a_random(proc, strtoull(arg, NULL, 10), arg2 != NULL ? strtoll(arg2, NULL, 10) : 0);
            a_say("done");
            break;
        case 'q':
            tc_close(a_cache);
            tc_hist_writer_close(a_hist);
            _exit(0);
        default:
            _exit(84);
        }
    }
    _exit(85);
}

/* Starts an agent on host (0..MAX_HOSTS-1), named proc, talking to Redis on port; waits until
 * its cache is open. Returns its index. */
static int spawn(int host, const char *proc, int port) {
    assert_true(nagents < MAX_AGENTS);
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(to[1]);
        close(from[0]);
        for (int i = 0; i < nagents; i++) {
            close(agents[i].to);
            close(agents[i].from);
        }
        a_in = to[0];
        a_out = from[1];
        agent_main(host, proc, port);
    }
    close(to[0]);
    close(from[1]);
    agent *a = &agents[nagents];
    *a = (agent){pid, to[1], from[0], host, "", 1};
    snprintf(a->proc, sizeof a->proc, "%s", proc);
    char line[64];
    if (read_line(a->from, line, sizeof line, 10000) < 0 || strcmp(line, "ready") != 0)
        fail_msg("agent %s did not start", proc);
    return nagents++;
}

/* Sends a command to agent i. */
static void send_cmd(int i, const char *fmt, ...) {
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    assert_int_equal(write(agents[i].to, line, (size_t)n), n);
}

/* Reads agent i's reply into out (cap bytes); fails the test after ms. */
static void get_reply(int i, char *out, size_t cap, int ms) {
    if (read_line(agents[i].from, out, cap, ms) < 0) fail_msg("no reply from agent %s", agents[i].proc);
}

/* Sends a command and returns its reply (a static buffer). */
static const char *ask(int i, const char *fmt, ...) {
    static char reply[256];
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line - 1, fmt, ap);
    va_end(ap);
    line[n++] = '\n';
    assert_int_equal(write(agents[i].to, line, (size_t)n), n);
    get_reply(i, reply, sizeof reply, 20000);
    return reply;
}

/* Fresh host names for a scenario, no history files. */
static void scenario_begin(void) {
    scenario++;
    /* a namespace of its own: values are unique within a history, not across scenarios */
    snprintf(ns, sizeof ns, "tcfleet%d-%u:", (int)getpid(), scenario);
    for (int h = 0; h < MAX_HOSTS; h++)
        snprintf(host_names[h], sizeof host_names[h], "tcfleet-%d-%u-h%d", (int)getpid(), scenario, h + 1);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*.hist", hist_dir);
    assert_int_equal(system(cmd), 0);
    nagents = 0;
    assert_int_equal(tc_hist_writer_open(hist_dir, "test", "test", &harness), 0);
}

/* Ends every agent still alive (q, then waits; SIGKILL after 10 s), removes the segments. */
static void scenario_end(void) {
    for (int i = 0; i < nagents; i++) {
        if (!agents[i].alive) continue;
        kill(agents[i].pid, SIGCONT);
        char q[] = "q\n";
        (void)!write(agents[i].to, q, 2);
    }
    for (int i = 0; i < nagents; i++) {
        if (agents[i].alive) {
            int st;
            for (int t = 0; t < 1000 && waitpid(agents[i].pid, &st, WNOHANG) == 0; t++) tc_test_sleep_ms(10);
            if (waitpid(agents[i].pid, &st, WNOHANG) == 0) {
                kill(agents[i].pid, SIGKILL);
                waitpid(agents[i].pid, &st, 0);
            }
            agents[i].alive = 0;
        }
        close(agents[i].to);
        close(agents[i].from);
    }
    nagents = 0;
    tc_hist_writer_close(harness);
    harness = NULL;
    for (int h = 0; h < MAX_HOSTS; h++) {
        if (host_coh[h] != NULL) tc__coh_close(host_coh[h]);
        host_coh[h] = NULL;
        (void)tc_shared_destroy(host_names[h]);
    }
    b_ms = B_MS;
    tiering = "L1L2L3";
    pool_size = 2;
}

/* The agent of pid, or -1. */
static int agent_of(pid_t pid) {
    for (int i = 0; i < nagents; i++)
        if (agents[i].alive && agents[i].pid == pid) return i;
    return -1;
}

/* Agent i's view of its host's channel: listener pid (0: none), and whether it is healthy. */
static void channel_of(int i, pid_t *listener, int *healthy) {
    const char *r = ask(i, "i");
    int l = 0, ch = 0;
    unsigned pid = 0;
    unsigned long long recv = 0;
    assert_int_equal(sscanf(r, "%d %d %u %llu", &l, &ch, &pid, &recv), 4);
    *listener = (pid_t)pid;
    *healthy = ch == TC_CHANNEL_HEALTHY;
}

/* The test's view of host h's coherence table (it runs no watchdog), opened once a scenario. */
static tc__coh *coh_of(int h) {
    if (host_coh[h] == NULL) {
        tc__opts o;
        tc_test_l3_options(&o, srv.port);
        snprintf(o.shared_name, sizeof o.shared_name, "%s", host_names[h]);
        char err[256];
        if (tc__coh_open_shared(&o, &host_coh[h], err, sizeof err) != 0) fail_msg("host %d: %s", h + 1, err);
    }
    return host_coh[h];
}

/* The listener of host h now: its pid, 0 when nobody holds the lease. */
static pid_t host_listener(int h) {
    tc__coh_counters k;
    tc__coh_counters_get(coh_of(h), &k);
    return (pid_t)k.listener_pid;
}

/* The invalidation word of key's stripe on host h (what the listener moves, docs/COHERENCE.md
 * 2.4): it moves when an invalidation of the key reaches the host. */
static uint64_t inv_word(int h, const char *key) {
    return atomic_load(&tc__coh_words(coh_of(h), tc__hash(key, strlen(key)))[1]);
}

/* Waits (at most ms) until host h's invalidation word of key is above v. */
static void wait_inv_above(int h, const char *key, uint64_t v, int ms) {
    double until = tc_test_now_ms() + ms;
    while (inv_word(h, key) <= v) {
        if (tc_test_now_ms() > until) fail_msg("host %d: no invalidation of %s within %d ms", h + 1, key, ms);
        tc_test_sleep_ms(1);
    }
}

/* Waits (at most ms) until host h's channel is in a gap (want 1) or healthy (want 0). Returns
 * 1 when it is, 0 when ms passed. */
static int wait_gap(int h, int want, int ms) {
    double until = tc_test_now_ms() + ms;
    for (;;) {
        tc__coh_counters k;
        tc__coh_counters_get(coh_of(h), &k);
        if (want ? k.gap : (!k.gap && k.listener_pid != 0)) return 1;
        if (tc_test_now_ms() > until) return 0;
        tc_test_sleep_ms(2);
    }
}

/* Waits (at most ms) until agent i's host has a healthy channel; returns the listener's pid. */
static pid_t wait_healthy(int i, int ms) {
    double until = tc_test_now_ms() + ms;
    for (;;) {
        pid_t l;
        int ok;
        channel_of(i, &l, &ok);
        if (ok && l != 0) return l;
        if (tc_test_now_ms() > until) fail_msg("host of %s: no healthy channel after %d ms", agents[i].proc, ms);
        tc_test_sleep_ms(10);
    }
}

/* ------------------------------------------------------------------------ */
/* The oracle, the harness's records, the checker                          */
/* ------------------------------------------------------------------------ */

/* What tiercache would read from L3 for key now, decided without the code under test: the raw
 * value, its header parsed, a value of another fleet epoch a miss (docs/COHERENCE.md 3).
 * Writes the payload (NUL-terminated) into out and returns 1, or 0 for nothing. */
static int l3_value(const char *key, char *out, size_t cap) {
    char full[128];
    snprintf(full, sizeof full, "%s%s", ns, key);
    redisReply *r = tc_test_raw(srv.port, NULL, "GET", full, NULL, NULL);
    assert_non_null(r);
    int hit = 0;
    if (r->type == REDIS_REPLY_STRING) {
        tc__l3_hdr h;
        if (tc__l3_hdr_parse(r->str, r->len, r->len, &h)) {
            /* the fleet epoch now: the epoch key must name this server's run_id */
            redisReply *info = tc_test_raw(srv.port, NULL, "INFO", "server", NULL, NULL);
            assert_non_null(info);
            const char *rid = strstr(info->str, "run_id:");
            assert_non_null(rid);
            char run_id[TC__L3_RUNID_MAX + 1];
            size_t n = strcspn(rid + 7, "\r\n");
            assert_true(n <= TC__L3_RUNID_MAX);
            memcpy(run_id, rid + 7, n);
            run_id[n] = 0;
            freeReplyObject(info);
            char ek[128];
            snprintf(ek, sizeof ek, "%s%s", ns, TC__L3_KEY_EPOCH);
            redisReply *e = tc_test_raw(srv.port, NULL, "GET", ek, NULL, NULL);
            assert_non_null(e);
            uint64_t epoch = 0;
            if (e->type == REDIS_REPLY_STRING && tc__l3_epoch_parse(e->str, e->len, run_id, &epoch) &&
                epoch == h.epoch && !(h.flags & TC__L3_HDR_FLAG_NEGATIVE)) {
                size_t n2 = r->len - h.payload_off;
                assert_true(n2 < cap);
                memcpy(out, r->str + h.payload_off, n2);
                out[n2] = 0;
                hit = 1;
            }
            freeReplyObject(e);
        } else {
            assert_true(r->len < cap);
            memcpy(out, r->str, r->len);
            out[r->len] = 0;
            hit = 1;
        }
    }
    freeReplyObject(r);
    return hit;
}

/* Records the oracle of key, and every live agent's final read of it. */
static void final_reads(const char *key) {
    char v[128];
    int hit = l3_value(key, v, sizeof v);
    assert_int_equal(tc_hist_oracle(harness, key, hit, v, hit ? strlen(v) : 0), 0);
    for (int i = 0; i < nagents; i++) {
        if (!agents[i].alive) continue;
        const char *r = ask(i, "f %s", key);
        if (strncmp(r, "ok", 2) != 0 && strcmp(r, "miss") != 0) fail_msg("final read by %s: %s", agents[i].proc, r);
    }
}

static void fault(const char *kind, int64_t t0, int64_t t1, const char *detail) {
    assert_int_equal(tc_hist_fault(harness, kind, t0, t1, detail), 0);
}

/* Checks the recorded history with B = CACHE_MAX_STALENESS. Returns the first violation's rule
 * (TC_HIST_RULE_NONE: it passed); prints the report when it did not, or when verbose. */
static tc_hist_rule check_history(tc_hist_result *out, int verbose) {
    tc_hist_writer_close(harness);
    harness = NULL;
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    if (tc_hist_load_dir(h, hist_dir, err, sizeof err) != 0) fail_msg("history: %s", err);
    tc_hist_opts o = TC_HIST_OPTS_DEFAULT;
    o.bound_ns = (int64_t)b_ms * 1000000;
    tc_hist_result r;
    static char report[16384];
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    if (r.rule != TC_HIST_RULE_NONE || verbose) print_message("%s\n", report);
    tc_hist_free(h);
    if (getenv("TC_FLEET_KEEP") != NULL) {
        /* keeps the history for a look by hand: TC_FLEET_KEEP=<directory> */
        char cmd[512];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s/%u' && cp '%s'/*.hist '%s/%u/'", getenv("TC_FLEET_KEEP"), scenario,
                 hist_dir, getenv("TC_FLEET_KEEP"), scenario);
        (void)!system(cmd);
    }
    if (out != NULL) *out = r;
    /* reopen for the records that may follow (a file per name: "test" again is refused) */
    return r.rule;
}

/* ------------------------------------------------------------------------ */
/* 1. Random operations on three hosts                                      */
/* ------------------------------------------------------------------------ */

#define RUN_HOSTS 3
#define RUN_PER_HOST 2

static void random_run(int faults) {
    scenario_begin();
    for (int h = 0; h < RUN_HOSTS; h++)
        for (int p = 0; p < RUN_PER_HOST; p++) {
            char proc[16];
            snprintf(proc, sizeof proc, "h%d%c", h + 1, 'a' + p);
            spawn(h, proc, srv.port);
        }
    for (int i = 0; i < nagents; i += RUN_PER_HOST) (void)wait_healthy(i, 5000);
    int64_t t0 = tc_hist_now_ns();
    int64_t run_ns = faults ? 5000000000ll : 3000000000ll;
    int64_t until = t0 + run_ns;
    for (int i = 0; i < nagents; i++) send_cmd(i, "r %d %lld", 0x5eed + i * 7919 + faults, (long long)until);
    if (faults) {
        /* CLIENT KILL of every listener's subscriber (the invalidation connections) */
        tc_test_sleep_ms(400);
        int64_t f0 = tc_hist_now_ns();
        redisReply *r = tc_test_raw(srv.port, NULL, "CLIENT", "KILL", "TYPE", "pubsub");
        assert_non_null(r);
        freeReplyObject(r);
        fault("client_kill", f0, tc_hist_now_ns(), "CLIENT KILL TYPE pubsub: every host's subscriber");
        /* SIGSTOP of a process (host 1's non-listener) for longer than B */
        tc_test_sleep_ms(500);
        pid_t l1 = host_listener(0), l2, l3;
        int victim = agents[0].pid == l1 ? 1 : 0;
        f0 = tc_hist_now_ns();
        kill(agents[victim].pid, SIGSTOP);
        tc_test_sleep_ms(B_MS + 200);
        kill(agents[victim].pid, SIGCONT);
        fault("sigstop_process", f0, tc_hist_now_ns(), agents[victim].proc);
        /* SIGSTOP of host 2's listener process for longer than B */
        tc_test_sleep_ms(200);
        l2 = host_listener(1);
        int lv = agent_of(l2);
        if (lv >= 0 && agents[lv].host == 1) {
            f0 = tc_hist_now_ns();
            kill(l2, SIGSTOP);
            tc_test_sleep_ms(B_MS + 200);
            kill(l2, SIGCONT);
            fault("sigstop_listener", f0, tc_hist_now_ns(), agents[lv].proc);
        } else {
            fail_msg("host 2 has no listener among its agents (pid %d)", (int)l2);
        }
        /* a redis-server restart (no persistence: every key is gone, the fleet epoch moves) */
        tc_test_sleep_ms(300);
        f0 = tc_hist_now_ns();
        tc_test_redis_signal(&srv, SIGKILL);
        tc_test_sleep_ms(100);
        assert_int_equal(tc_test_redis_restart(&srv), 0);
        fault("redis_restart", f0, tc_hist_now_ns(), "SIGKILL, then started again on the same port");
        /* kill -9 of a process in the middle of a write: host 2's non-listener dies inside
         * its next L2 write (after its L3 write) */
        tc_test_sleep_ms(600);
        l2 = host_listener(1);
        int mid = agents[2].pid == l2 ? 3 : 2;
        f0 = tc_hist_now_ns();
        kill(agents[mid].pid, SIGUSR1);
        int st;
        double until_ms = tc_test_now_ms() + 5000;
        while (waitpid(agents[mid].pid, &st, WNOHANG) == 0 && tc_test_now_ms() < until_ms) tc_test_sleep_ms(1);
        if (!(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)) fail_msg("%s did not die in its write", agents[mid].proc);
        agents[mid].alive = 0;
        fault("kill9_mid_write", f0, tc_hist_now_ns(), agents[mid].proc);
        /* kill -9 of host 3's listener */
        tc_test_sleep_ms(300);
        l3 = host_listener(2);
        int lk = agent_of(l3);
        if (lk < 0 || agents[lk].host != 2) fail_msg("host 3 has no listener among its agents");
        f0 = tc_hist_now_ns();
        kill(l3, SIGKILL);
        waitpid(l3, &st, 0);
        agents[lk].alive = 0;
        fault("kill9_listener", f0, tc_hist_now_ns(), agents[lk].proc);
    }
    for (int i = 0; i < nagents; i++) {
        if (!agents[i].alive) continue;
        char line[64];
        get_reply(i, line, sizeof line, 30000);
        assert_string_equal(line, "done");
    }
    /* quiescence + B, then the final reads and the oracle */
    tc_test_sleep_ms(B_MS + 100);
    for (unsigned k = 0; k < RANDOM_KEYS; k++) {
        char key[16];
        snprintf(key, sizeof key, "%sk%u", k < 4 ? "" : "p", k % 4);
        final_reads(key);
    }
    tc_hist_result r;
    tc_hist_rule rule = check_history(&r, 0);
    print_message("%s: %llu operations, %llu reads checked, %llu writes ok, %llu indeterminate, %llu final reads\n",
                  faults ? "with faults" : "no faults", (unsigned long long)r.ops, (unsigned long long)r.reads,
                  (unsigned long long)r.writes_ok, (unsigned long long)r.writes_indeterminate,
                  (unsigned long long)r.final_reads);
    scenario_end();
    assert_int_equal(rule, TC_HIST_RULE_NONE);
    assert_true(r.reads > 200);
    assert_true(r.final_reads >= RANDOM_KEYS * 4);
}

static void test_random_operations_on_three_hosts(void **state) {
    (void)state;
    random_run(0);
}

static void test_random_operations_on_three_hosts_with_faults(void **state) {
    (void)state;
    random_run(1);
}


/* ------------------------------------------------------------------------ */
/* Staged scenarios: helpers                                                */
/* ------------------------------------------------------------------------ */

/* Agent i reads key until the hit comes from its L1 with value (at most 3 s): the key is then
 * in that process's L1 (a late invalidation may drop a first copy). */
static void read_into_l1(int i, const char *key, const char *value) {
    char want[160];
    snprintf(want, sizeof want, "ok %s %d", value, TC_TIER_L1);
    double until = tc_test_now_ms() + 3000;
    for (;;) {
        const char *r = ask(i, "g %s", key);
        if (strcmp(r, want) == 0) return;
        if (tc_test_now_ms() > until) fail_msg("%s: %s never in its L1 (last: %s)", agents[i].proc, key, r);
        tc_test_sleep_ms(5);
    }
}

static void ok_reply(const char *r, const char *what) {
    if (strncmp(r, "ok", 2) != 0) fail_msg("%s: %s", what, r);
}

/* Agent i sets key to value, then waits until its invalidation has reached every host that
 * has agents (the writer's own host gets its echo): a copy read after this is not dropped by
 * a late invalidation of this write. */
static void set_settled(int i, const char *key, const char *value) {
    uint64_t w0[MAX_HOSTS];
    int used[MAX_HOSTS] = {0};
    for (int j = 0; j < nagents; j++) used[agents[j].host] = 1;
    for (int h = 0; h < MAX_HOSTS; h++)
        if (used[h]) w0[h] = inv_word(h, key);
    ok_reply(ask(i, "s %s %s", key, value), "set");
    for (int h = 0; h < MAX_HOSTS; h++)
        if (used[h]) wait_inv_above(h, key, w0[h], 5000);
}

/* The end of a staged scenario: final reads of key by every live agent and the oracle, the
 * checker's verdict on the history, then scenario_end(). */
static tc_hist_rule finish_scenario(const char *key) {
    final_reads(key);
    tc_hist_rule rule = check_history(NULL, 0);
    scenario_end();
    return rule;
}

/* Sleeps until the monotonic ns time t. */
static void sleep_until_ns(int64_t t) {
    int64_t now = tc_hist_now_ns();
    if (t > now) tc_test_sleep_ms((int)((t - now) / 1000000) + 1);
}

/* ------------------------------------------------------------------------ */
/* 2. Writes from outside: redis-cli SET and DEL                           */
/* ------------------------------------------------------------------------ */

static char redis_cli[256];

/* Runs redis-cli with argv (after the port), recorded as a write of key made on host "ext":
 * op set with value, or del. Returns the completion time (ns). */
static int64_t outside_write(tc_hist_op op, const char *key, const char *value) {
    char port[16], full[128];
    snprintf(port, sizeof port, "%d", srv.port);
    snprintf(full, sizeof full, "%s%s", ns, key);
    const char *argv[] = {redis_cli, "-p", port, op == TC_HIST_OP_SET ? "SET" : "DEL", full, value, NULL};
    if (op != TC_HIST_OP_SET) argv[5] = NULL;
    uint64_t tok;
    assert_int_equal(tc_hist_invoke(harness, op, key, op == TC_HIST_OP_SET ? value : NULL, &tok), 0);
    tc_test_run r;
    assert_int_equal(tc_test_run_cmd(argv, NULL, NULL, 0, 10000, &r), 0);
    int ok = r.status == 0 && !r.timed_out;
    assert_int_equal(tc_hist_complete(harness, tok, ok ? TC_HIST_RES_OK : TC_HIST_RES_ERR, NULL, 0), 0);
    int64_t done = tc_hist_now_ns();
    if (!ok) fail_msg("redis-cli: status %d, %s", r.status, r.err);
    tc_test_run_free(&r);
    return done;
}

/* After the outside write that completed at done: each agent reads key until it sees want
 * (NULL: a miss); the time each took is at most B. Then, at done + B, every agent's read
 * returns it. */
static void every_l1_sees(const char *key, const char *want, int64_t done) {
    char exp[160];
    if (want != NULL) snprintf(exp, sizeof exp, "ok %s ", want);
    for (int i = 0; i < nagents; i++) {
        double ms;
        for (;;) {
            const char *r = ask(i, "g %s", key);
            ms = (double)(tc_hist_now_ns() - done) / 1e6;
            if (want != NULL ? strncmp(r, exp, strlen(exp)) == 0 : strcmp(r, "miss") == 0) break;
            if (ms > b_ms) fail_msg("%s still reads %s %.1f ms after the outside write (B = %d ms)", agents[i].proc, r, ms, b_ms);
            tc_test_sleep_ms(1);
        }
        print_message("  %s sees it %.1f ms after redis-cli returned\n", agents[i].proc, ms);
    }
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 1);
    for (int i = 0; i < nagents; i++) {
        const char *r = ask(i, "g %s", key);
        if (want != NULL ? strncmp(r, exp, strlen(exp)) != 0 : strcmp(r, "miss") != 0)
            fail_msg("%s reads %s after B", agents[i].proc, r);
    }
}

static void test_writes_from_outside_reach_every_l1_within_bound(void **state) {
    (void)state;
    FILE *f = popen("command -v redis-cli", "r");
    assert_non_null(f);
    if (fgets(redis_cli, sizeof redis_cli, f) == NULL) redis_cli[0] = 0;
    pclose(f);
    redis_cli[strcspn(redis_cli, "\n")] = 0;
    if (redis_cli[0] == 0) fail_msg("redis-cli not found: install the redis-tools package");
    scenario_begin();
    int a = spawn(0, "h1a", srv.port), b = spawn(0, "h1b", srv.port);
    int c = spawn(1, "h2a", srv.port), d = spawn(1, "h2b", srv.port);
    (void)wait_healthy(a, 5000);
    (void)wait_healthy(c, 5000);
    (void)b;
    (void)d;
    set_settled(a, "price", "p-100");
    for (int i = 0; i < nagents; i++) read_into_l1(i, "price", "p-100");
    print_message("redis-cli SET:\n");
    int64_t done = outside_write(TC_HIST_OP_SET, "price", "outside-200");
    every_l1_sees("price", "outside-200", done);
    for (int i = 0; i < nagents; i++) read_into_l1(i, "price", "outside-200");
    print_message("redis-cli DEL:\n");
    done = outside_write(TC_HIST_OP_DEL, "price", NULL);
    every_l1_sees("price", NULL, done);
    tc_hist_rule rule = finish_scenario("price");
    assert_int_equal(rule, TC_HIST_RULE_NONE);
}

/* ------------------------------------------------------------------------ */
/* 5. Each fleet mechanism proven necessary                                 */
/* ------------------------------------------------------------------------ */

static tc_test_proxy px; /* host 1's way to Redis in these scenarios */

/* Host 1: h1a (its listener, through the proxy) and h1b (through the proxy); host 2: h2a,
 * direct. off: the switch set in every agent of host 1. */
static void two_hosts_behind_proxy(unsigned off) {
    assert_int_equal(tc_test_proxy_start(&px, srv.port), 0);
    scenario_begin();
    int a = spawn(0, "h1a", px.port);
    assert_int_equal(wait_healthy(a, 5000), agents[a].pid);
    spawn(0, "h1b", px.port);
    int c = spawn(1, "h2a", srv.port);
    (void)wait_healthy(c, 5000);
    for (int i = 0; i < 2; i++) ok_reply(ask(i, "x %u", off), "switch");
    if (off & TC__COH_OFF_CANARY) tc_test_sleep_ms(b_ms / 2); /* a canary in flight has come back */
}

static void proxy_done(void) {
    px.mute_subscriber = px.pause_subscriber = px.pause_replies = 0;
    tc_test_proxy_stop(&px);
}

/* A redirect broken silently (host 1's subscriber cut off behind the proxy): h2a overwrites a
 * key h1b holds in its L1; more than B later h1b reads it. The canary notices the silence and
 * the gap keeps h1b's L1 from serving; h1b reads L3. Returns the checker's verdict. */
static tc_hist_rule run_silent_redirect(unsigned off) {
    two_hosts_behind_proxy(off);
    set_settled(2, "k", "v1");
    read_into_l1(1, "k", "v1");
    if (getenv("TC_DEBUG")) {
        tc__coh_counters k;
        tc__coh_counters_get(coh_of(0), &k);
        print_message("  host 1 before: epoch moves %llu, gaps %llu, takeovers %llu, listener %u, word %llu\n",
                      (unsigned long long)k.epoch_moves, (unsigned long long)k.gaps, (unsigned long long)k.takeovers,
                      k.listener_pid, (unsigned long long)inv_word(0, "k"));
    }
    px.mute_subscriber = 1;
    ok_reply(ask(2, "s k v2"), "set");
    int64_t done = tc_hist_now_ns();
    int gap = wait_gap(0, 1, 3 * b_ms);
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 50000000);
    if (getenv("TC_DEBUG")) {
        tc__coh_counters k;
        tc__coh_counters_get(coh_of(0), &k);
        print_message("  host 1: epoch moves %llu, gaps %llu, takeovers %llu, listener %u, word %llu\n",
                      (unsigned long long)k.epoch_moves, (unsigned long long)k.gaps, (unsigned long long)k.takeovers,
                      k.listener_pid, (unsigned long long)inv_word(0, "k"));
    }
    const char *r = ask(1, "g k");
    print_message("  gap seen: %d; h1b reads \"%s\" %.0f ms after the write\n", gap,
                  r, (double)(tc_hist_now_ns() - done) / 1e6);
    px.mute_subscriber = 0;
    if (!wait_gap(0, 0, 5000)) fail_msg("host 1's channel did not recover");
    for (int i = 0; i < 2; i++) ok_reply(ask(i, "x 0"), "switch");
    tc_hist_rule rule = finish_scenario("k");
    proxy_done();
    return rule;
}

static void test_without_gap_a_silent_redirect_serves_stale_values(void **state) {
    (void)state;
    assert_int_equal(run_silent_redirect(0), TC_HIST_RULE_NONE);
    assert_int_equal(run_silent_redirect(TC__COH_OFF_GAP), TC_HIST_RULE_G2);
}

static void test_without_canary_a_silent_redirect_serves_stale_values(void **state) {
    (void)state;
    assert_int_equal(run_silent_redirect(0), TC_HIST_RULE_NONE);
    assert_int_equal(run_silent_redirect(TC__COH_OFF_CANARY), TC_HIST_RULE_G2);
}

/* A channel lost for a while (host 1's subscriber cut off), during which h2a overwrites a key
 * h1b holds in its L1; the channel comes back; h1b reads the key more than B after the write.
 * The recovery's epoch move invalidated h1b's copy; without it the copy is served. */
static tc_hist_rule run_recovery(unsigned off) {
    two_hosts_behind_proxy(off);
    set_settled(2, "k", "v1");
    read_into_l1(1, "k", "v1");
    px.mute_subscriber = 1;
    if (!wait_gap(0, 1, 3 * b_ms)) fail_msg("no gap after the subscriber was cut off");
    ok_reply(ask(2, "s k v2"), "set");
    int64_t done = tc_hist_now_ns();
    tc_test_sleep_ms(100); /* the proxy has dropped the invalidation */
    px.mute_subscriber = 0;
    if (!wait_gap(0, 0, 5000)) fail_msg("host 1's channel did not recover");
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 50000000);
    const char *r = ask(1, "g k");
    print_message("  h1b reads \"%s\" after the recovery\n", r);
    for (int i = 0; i < 2; i++) ok_reply(ask(i, "x 0"), "switch");
    tc_hist_rule rule = finish_scenario("k");
    proxy_done();
    return rule;
}

static void test_without_the_epoch_move_a_recovery_serves_stale_values(void **state) {
    (void)state;
    assert_int_equal(run_recovery(0), TC_HIST_RULE_NONE);
    assert_int_equal(run_recovery(TC__COH_OFF_RECOVER), TC_HIST_RULE_G2);
}

/* 4. The echo race: h1a (the listener's process) writes k, held between its L3 and its L2
 * part; meanwhile h2a writes k (after h1a in L3); h1a's late L2 write lands before either
 * invalidation reaches host 1 (its subscriber is paused), then both arrive. Applying the echo
 * of its own write invalidates the late copy; skipping echoes (the switch skips every
 * invalidation of a key the host wrote within B) leaves it in host 1's L2 for ever. */
static tc_hist_rule run_echo(unsigned off) {
    b_ms = 2000; /* the pause below stays far inside B/4: the canary is not what saves it */
    two_hosts_behind_proxy(off);
    px.pause_subscriber = 1;
    double t0 = tc_test_now_ms();
    send_cmd(0, "S k h1a-1");
    char line[128];
    get_reply(0, line, sizeof line, 10000);
    assert_string_equal(line, "held");
    ok_reply(ask(2, "s k h2a-1"), "set");
    send_cmd(0, "go");
    get_reply(0, line, sizeof line, 10000);
    ok_reply(line, "late set");
    double paused = tc_test_now_ms() - t0;
    px.pause_subscriber = 0;
    print_message("  host 1's invalidations held back %.1f ms (B = %d ms)\n", paused, b_ms);
    assert_true(paused < b_ms / 4);
    int64_t done = tc_hist_now_ns();
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 50000000);
    const char *r = ask(1, "g k");
    print_message("  h1b reads \"%s\"\n", r);
    for (int i = 0; i < 2; i++) ok_reply(ask(i, "x 0"), "switch");
    tc_hist_rule rule = finish_scenario("k");
    proxy_done();
    return rule;
}

static void test_without_echoes_a_late_l2_write_outlives_a_newer_one(void **state) {
    (void)state;
    assert_int_equal(run_echo(0), TC_HIST_RULE_NONE);
    assert_int_equal(run_echo(TC__COH_OFF_ECHO), TC_HIST_RULE_G5);
}

/* ------------------------------------------------------------------------ */
/* 4. Convergence                                                           */
/* ------------------------------------------------------------------------ */

/* The other order of the race above (found by the random run): both invalidations -- the echo
 * of h1a's write and h2a's newer write -- reach host 1 before h1a's held write installs its
 * value in L2 and L1. Those copies carry a stamp taken after every invalidation; nothing
 * would ever invalidate them. The write sees that an invalidation came in while it was under
 * way and invalidates its stripe once more (cache.c, write_finish). */
static void test_a_late_l2_write_after_the_newer_writes_invalidation_does_not_stay(void **state) {
    (void)state;
    scenario_begin();
    int a = spawn(0, "h1a", srv.port), b = spawn(0, "h1b", srv.port);
    int c = spawn(1, "h2a", srv.port);
    (void)wait_healthy(a, 5000);
    (void)wait_healthy(c, 5000);
    uint64_t w0 = inv_word(0, "k");
    send_cmd(a, "S k h1a-1");
    char line[128];
    get_reply(a, line, sizeof line, 10000);
    assert_string_equal(line, "held");
    wait_inv_above(0, "k", w0, 5000); /* the echo of h1a's L3 write */
    uint64_t w1 = inv_word(0, "k");
    ok_reply(ask(c, "s k h2a-1"), "set");
    wait_inv_above(0, "k", w1, 5000); /* h2a's invalidation */
    send_cmd(a, "go");
    get_reply(a, line, sizeof line, 10000);
    ok_reply(line, "late set");
    int64_t done = tc_hist_now_ns();
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 50000000);
    for (int i = 0; i < nagents; i++) print_message("  %s reads \"%s\"\n", agents[i].proc, ask(i, "g k"));
    (void)b;
    tc_hist_rule rule = finish_scenario("k");
    assert_int_equal(rule, TC_HIST_RULE_NONE);
}

/* Two hosts (two processes each) write one key at once, many times; after B every tier of
 * every process returns L3's value. Each process reads the key into its L1 first, so a stale
 * copy would show. */
static void test_two_hosts_writing_one_key_at_once_converge(void **state) {
    (void)state;
    scenario_begin();
    for (int h = 0; h < 2; h++)
        for (int p = 0; p < 2; p++) {
            char proc[16];
            snprintf(proc, sizeof proc, "h%d%c", h + 1, 'a' + p);
            spawn(h, proc, srv.port);
        }
    (void)wait_healthy(0, 5000);
    (void)wait_healthy(2, 5000);
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < nagents; i++) send_cmd(i, "s k %s-%d", agents[i].proc, round);
        char line[128];
        for (int i = 0; i < nagents; i++) {
            get_reply(i, line, sizeof line, 10000);
            ok_reply(line, "set");
        }
        for (int i = 0; i < nagents; i++) (void)ask(i, "g k");
    }
    tc_test_sleep_ms(b_ms + 50);
    char v[128];
    assert_true(l3_value("k", v, sizeof v));
    char want[160];
    snprintf(want, sizeof want, "ok %s ", v);
    for (int i = 0; i < nagents; i++) {
        /* twice: the second read comes from the L1 the first one filled */
        for (int t = 0; t < 2; t++) {
            const char *r = ask(i, "g k");
            if (strncmp(r, want, strlen(want)) != 0) fail_msg("%s reads %s, L3 holds %s", agents[i].proc, r, v);
        }
    }
    tc_hist_rule rule = finish_scenario("k");
    assert_int_equal(rule, TC_HIST_RULE_NONE);
}

/* ------------------------------------------------------------------------ */
/* 3. Staged races on the fleet side                                        */
/* ------------------------------------------------------------------------ */

/* A fill from L3 (into L2 and L1 with L1L2L3, into L1 with L1L3, into L2 with L2L3) held
 * between its L3 read and its install while h2a writes (cmd 's') or deletes ('d') the key.
 * late: 0, the invalidation reaches host 1 before the install (the fence refuses it); 1, after
 * (host 1's subscriber paused until the install is done: the stamps make the copy invalid).
 * Then h1a and h1b read the key at once and again after B; the checker judges. */
static void run_held_fill(const char *tiers, char cmd, int late) {
    tiering = tiers;
    assert_int_equal(tc_test_proxy_start(&px, srv.port), 0);
    scenario_begin();
    int a = spawn(0, "h1a", px.port), b = spawn(0, "h1b", px.port);
    int c = spawn(1, "h2a", srv.port);
    (void)wait_healthy(a, 5000);
    (void)wait_healthy(c, 5000);
    set_settled(c, "k", "v1");
    uint64_t w0 = inv_word(0, "k");
    send_cmd(a, "G k");
    char line[128];
    get_reply(a, line, sizeof line, 10000);
    assert_string_equal(line, "held");
    if (late) px.pause_subscriber = 1;
    if (cmd == 's') ok_reply(ask(c, "s k v2"), "set");
    else ok_reply(ask(c, "d k"), "del");
    int64_t done = tc_hist_now_ns();
    if (!late) wait_inv_above(0, "k", w0, 5000);
    send_cmd(a, "go");
    get_reply(a, line, sizeof line, 10000);
    if (strcmp(line, "ok v1 4") != 0 && strncmp(line, "ok v1 ", 6) != 0) fail_msg("held read: %s", line);
    if (late) {
        px.pause_subscriber = 0;
        wait_inv_above(0, "k", w0, 5000);
    }
    (void)ask(a, "g k");
    (void)ask(b, "g k");
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 1000000);
    for (int i = 0; i < 2; i++) {
        const char *r = ask(i, "g k");
        if (cmd == 's' ? strncmp(r, "ok v2 ", 6) != 0 : strcmp(r, "miss") != 0)
            print_message("  %s %s: %s reads \"%s\" after B\n", tiers, cmd == 's' ? "set" : "del", agents[i].proc, r);
    }
    tc_hist_rule rule = finish_scenario("k");
    proxy_done();
    if (rule != TC_HIST_RULE_NONE) fail_msg("%s, %s, invalidation %s the install", tiers, cmd == 's' ? "set" : "del", late ? "after" : "before");
}

static void test_held_l3_fill_into_l2_and_l1_vs_another_hosts_write(void **state) {
    (void)state;
    run_held_fill("L1L2L3", 's', 0);
    run_held_fill("L1L2L3", 'd', 0);
    run_held_fill("L1L2L3", 's', 1);
    run_held_fill("L1L2L3", 'd', 1);
}

static void test_held_l3_fill_into_l1_alone_vs_another_hosts_write(void **state) {
    (void)state;
    run_held_fill("L1L3", 's', 0);
    run_held_fill("L1L3", 's', 1);
}

static void test_held_l3_fill_into_l2_alone_vs_another_hosts_write(void **state) {
    (void)state;
    run_held_fill("L2L3", 's', 0);
    run_held_fill("L2L3", 's', 1);
}

/* A slow L3 read: h1b's GET reaches the server (which answers v1) but its reply is held back
 * by the proxy, while h2a overwrites the key and the invalidation reaches host 1 (whose
 * listener, h1a, talks to Redis directly). The reply arrives after the invalidation: its fill
 * is refused. */
static void test_slow_l3_reply_after_the_invalidation_is_not_installed(void **state) {
    (void)state;
    assert_int_equal(tc_test_proxy_start(&px, srv.port), 0);
    scenario_begin();
    int a = spawn(0, "h1a", srv.port);
    assert_int_equal(wait_healthy(a, 5000), agents[a].pid);
    pool_size = 1; /* one connection: the one the warm-up opened carries the slow read */
    int b = spawn(0, "h1b", px.port);
    int c = spawn(1, "h2a", srv.port);
    (void)wait_healthy(c, 5000);
    set_settled(c, "k", "v1");
    assert_string_equal(ask(b, "g other"), "miss"); /* h1b's connection is up */
    uint64_t w0 = inv_word(0, "k");
    px.pause_replies = 1;
    send_cmd(b, "g k");
    double until = tc_test_now_ms() + 5000;
    while (px.held_bytes == 0 && tc_test_now_ms() < until) tc_test_sleep_ms(1);
    assert_true(px.held_bytes > 0); /* the server answered; the reply waits at the proxy */
    ok_reply(ask(c, "s k v2"), "set");
    int64_t done = tc_hist_now_ns();
    wait_inv_above(0, "k", w0, 5000);
    px.pause_replies = 0;
    char line[128];
    get_reply(b, line, sizeof line, 10000);
    print_message("  the slow read returned \"%s\"\n", line);
    (void)ask(b, "g k");
    sleep_until_ns(done + (int64_t)b_ms * 1000000 + 1000000);
    (void)ask(b, "g k");
    tc_hist_rule rule = finish_scenario("k");
    proxy_done();
    assert_int_equal(rule, TC_HIST_RULE_NONE);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_operations_on_three_hosts),
        cmocka_unit_test(test_random_operations_on_three_hosts_with_faults),
        cmocka_unit_test(test_writes_from_outside_reach_every_l1_within_bound),
        cmocka_unit_test(test_without_gap_a_silent_redirect_serves_stale_values),
        cmocka_unit_test(test_without_canary_a_silent_redirect_serves_stale_values),
        cmocka_unit_test(test_without_the_epoch_move_a_recovery_serves_stale_values),
        cmocka_unit_test(test_without_echoes_a_late_l2_write_outlives_a_newer_one),
        cmocka_unit_test(test_a_late_l2_write_after_the_newer_writes_invalidation_does_not_stay),
        cmocka_unit_test(test_two_hosts_writing_one_key_at_once_converge),
        cmocka_unit_test(test_held_l3_fill_into_l2_and_l1_vs_another_hosts_write),
        cmocka_unit_test(test_held_l3_fill_into_l1_alone_vs_another_hosts_write),
        cmocka_unit_test(test_held_l3_fill_into_l2_alone_vs_another_hosts_write),
        cmocka_unit_test(test_slow_l3_reply_after_the_invalidation_is_not_installed),
    };
    if (getenv("TC_FLEET_ONLY") != NULL) cmocka_set_test_filter(getenv("TC_FLEET_ONLY")); /* by hand: a glob */
    return cmocka_run_group_tests(tests, setup, teardown);
}
