/*
 * test_coherence_host.c -- coherence on one host (docs/COHERENCE.md, guarantees 1, 4, 5, 6, 7),
 * with real processes sharing a segment name (L1 over L2, each process its own L1):
 *
 *   - what a new user saw (issue 9): process A kept serving 100 from its L1 after process B
 *     set 200, deleted the key and cleared the cache;
 *   - staged races: a fill held between its L2 read and its L1 install while another process
 *     writes, deletes or clears the key; each recorded as a history and judged by the checker
 *     (tests/helpers/history.h), which must pass -- and must fail, deterministically, when the
 *     mechanism that makes it pass is switched off (tc__coh_disable): the shared table, the
 *     fences;
 *   - a writer killed at each crash point of its L2 write: afterwards every process reads what
 *     L2 holds, never a copy its L1 kept;
 *   - random get/set/del/clear_prefix from several processes for a bounded time, checked.
 *
 * Each process opens its own cache after fork(). Coordination between processes is by pipes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coherence.h"
#include "helpers/faulty_tier.h"
#include "helpers/history.h"
#include "l2_segment.h"
#include "tier.h"
#include "util.h"

static char seg_name[64];
static char low_name[64]; /* the shared "lower tier" of the L2-fill scenarios */
static char hist_dir[128];
static int layout; /* 0: L1 over L2; 1: L2 over a shared lower tier in the place of L3 */

static int setup(void **state) {
    (void)state;
    snprintf(seg_name, sizeof seg_name, "test-cohost-%d", (int)getpid());
    snprintf(low_name, sizeof low_name, "test-cohlow-%d", (int)getpid());
    snprintf(hist_dir, sizeof hist_dir, "/tmp/tc-cohost-%d-XXXXXX", (int)getpid());
    if (mkdtemp(hist_dir) == NULL) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    (void)tc_shared_destroy(seg_name);
    (void)tc_shared_destroy(low_name);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", hist_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh start for one scenario: no history, no segment (no cache is open then). */
static void hist_reset(void) {
    (void)tc_shared_destroy(seg_name);
    (void)tc_shared_destroy(low_name);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -f '%s'/*.hist", hist_dir);
    assert_int_equal(system(cmd), 0);
}

static void host_opts(tc__opts *o, const char *name) {
    tc__opts_init(o);
    o->ntiers = 2;
    o->tiers[0] = TC_TIER_L1;
    o->tiers[1] = TC_TIER_L2;
    snprintf(o->shared_name, sizeof o->shared_name, "%s", name);
    o->shared_max_entries = 4096;
    o->shared_max_bytes = 4 << 20;
    o->mem_default_ttl_ms = 600000;
    o->shared_default_ttl_ms = 600000;
    o->shared_lock_timeout_ms = 20000; /* a loaded machine is not what these tests are about */
}

/* What each process of the host opens: L1 over L2 on the test's segment (layout 0), or L2
 * over another L2 segment that stands for L3 (layout 1: a lower tier every process shares,
 * which keeps no stamps, as Redis does not). */
static tc_cache *open_host(void) {
    tc__opts o;
    host_opts(&o, seg_name);
    tc_cache *c = NULL;
    char err[TC_ERRBUF_SIZE];
    int rc;
    if (layout == 0) {
        rc = tc__open_opts(&o, &c, err, sizeof err);
    } else {
        tc__opts lo;
        host_opts(&lo, low_name);
        tc__tier *up = NULL, *low = NULL;
        rc = tc__l2_open(&o, &up, err, sizeof err);
        if (rc == 0) rc = tc__l2_open(&lo, &low, err, sizeof err);
        if (rc == 0) {
            tc__tier *tiers[2] = {up, &faulty_wrap(low, TC_TIER_L3)->base};
            o.tiers[0] = TC_TIER_L2;
            o.tiers[1] = TC_TIER_L3;
            rc = tc__open_tiers(&o, tiers, 2, &c, err, sizeof err);
        }
    }
    if (rc != 0) {
        fprintf(stderr, "open: %s\n", err);
        return NULL;
    }
    return c;
}

/* ------------------------------------------------------------------------ */
/* A recorded client                                                        */
/* ------------------------------------------------------------------------ */

typedef struct client {
    tc_cache *c;
    tc_hist_writer *w;
} client;

static client client_open(const char *proc) {
    client cl = {open_host(), NULL};
    if (cl.c == NULL) _exit(90);
    if (tc_hist_writer_open(hist_dir, proc, "h1", &cl.w) != 0) _exit(91);
    return cl;
}

static void client_close(client *cl) {
    tc_close(cl->c);
    tc_hist_writer_close(cl->w);
}

static tc_hist_res res_of(int rc) {
    if (rc == 0) return TC_HIST_RES_OK;
    if (rc == TC_EMISS) return TC_HIST_RES_MISS;
    return rc == TC_ETIMEDOUT ? TC_HIST_RES_TIMEOUT : TC_HIST_RES_ERR;
}

static int rget(client *cl, const char *k) {
    uint64_t tok;
    tc_hist_invoke(cl->w, TC_HIST_OP_GET, k, NULL, &tok);
    char buf[64];
    size_t len = sizeof buf;
    int rc = tc_get(cl->c, k, strlen(k), buf, &len, NULL);
    tc_hist_complete(cl->w, tok, res_of(rc), buf, len);
    return rc;
}

static int rset(client *cl, const char *k, const char *v) {
    uint64_t tok;
    tc_hist_invoke(cl->w, TC_HIST_OP_SET, k, v, &tok);
    int rc = tc_set(cl->c, k, strlen(k), v, strlen(v), 0);
    tc_hist_complete(cl->w, tok, res_of(rc), NULL, 0);
    return rc;
}

static int rdel(client *cl, const char *k) {
    uint64_t tok;
    tc_hist_invoke(cl->w, TC_HIST_OP_DEL, k, NULL, &tok);
    int rc = tc_del(cl->c, k, strlen(k));
    tc_hist_complete(cl->w, tok, res_of(rc), NULL, 0);
    return rc;
}

static int rclear_prefix(client *cl, const char *p) {
    uint64_t tok;
    tc_hist_invoke(cl->w, *p ? TC_HIST_OP_CLEAR_PREFIX : TC_HIST_OP_CLEAR, *p ? p : NULL, NULL, &tok);
    int rc = *p ? tc_clear_prefix(cl->c, p, strlen(p)) : tc_clear(cl->c);
    tc_hist_complete(cl->w, tok, res_of(rc), NULL, 0);
    return rc;
}

/* Checks the recorded history (one host: B does not matter). Returns the rule of the first
 * violation (TC_HIST_RULE_NONE when it passed); prints the report when it did not. */
static tc_hist_rule check_history(int strict) {
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    if (tc_hist_load_dir(h, hist_dir, err, sizeof err) != 0) fail_msg("history: %s", err);
    tc_hist_opts o = TC_HIST_OPTS_DEFAULT;
    o.strict = strict;
    tc_hist_result r;
    static char report[8192];
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    if (r.rule != TC_HIST_RULE_NONE) {
        print_message("%s\n", report);
        if (getenv("TC_DEBUG")) {
            char cmd[300];
            snprintf(cmd, sizeof cmd, "ls -la '%s'; cat '%s'/*.hist", hist_dir, hist_dir);
            (void)!system(cmd);
        }
    }
    tc_hist_free(h);
    return r.rule;
}

/* ------------------------------------------------------------------------ */
/* Pipes                                                                    */
/* ------------------------------------------------------------------------ */

static void say(int fd, char c) { assert_int_equal(write(fd, &c, 1), 1); }
static char hear(int fd) {
    char c = 0;
    ssize_t n;
    while ((n = read(fd, &c, 1)) < 0 && errno == EINTR) {
    }
    return n == 1 ? c : 0;
}

static void reap(pid_t pid) {
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) fail_msg("child ended with status 0x%x", st);
}

/* ------------------------------------------------------------------------ */
/* What a new user saw                                                      */
/* ------------------------------------------------------------------------ */

/* The child is "process B": on each command it sets a new value, deletes, clears, answers 'k'. */
static void process_b(int in, int out, const char *proc) {
    client b = client_open(proc);
    char cmd;
    unsigned n = 0;
    while ((cmd = hear(in)) != 0 && cmd != 'q') {
        int rc = 0;
        char v[32];
        snprintf(v, sizeof v, "b-%u", n++);
        if (cmd == 's' || cmd == 'S') rc = rset(&b, "price", v);
        else if (cmd == 'd') rc = rdel(&b, "price");
        else if (cmd == 'c') rc = rclear_prefix(&b, "");
        else if (cmd == 'p') rc = rclear_prefix(&b, "pri");
        if (rc != 0) _exit(2);
        say(out, 'k');
    }
    client_close(&b);
    _exit(0);
}

/* Process B, forked, with the pipes to command it (to) and hear it (from). */
typedef struct peer {
    pid_t pid;
    int to, from;
} peer;

static peer peer_start(void) {
    int to[2], from[2];
    assert_int_equal(pipe(to), 0);
    assert_int_equal(pipe(from), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(to[1]);
        close(from[0]);
        process_b(to[0], from[1], "b");
    }
    close(to[0]);
    close(from[1]);
    return (peer){pid, to[1], from[0]};
}

/* Tells B to quit, waits for it, closes the pipes. */
static void peer_stop(peer *b) {
    say(b->to, 'q');
    reap(b->pid);
    close(b->to);
    close(b->from);
}

static void run_user_story(void) {
    hist_reset();
    peer b = peer_start();
    client a = client_open("a");
    assert_int_equal(rset(&a, "price", "a-100"), 0);
    assert_int_equal(rget(&a, "price"), 0); /* now in A's L1 */
    assert_int_equal(rget(&a, "price"), 0);
    static const char steps[] = {'s', 'd', 'S', 'c', 's', 'p'};
    for (size_t i = 0; i < sizeof steps; i++) {
        say(b.to, steps[i]);
        assert_int_equal(hear(b.from), 'k');
        (void)rget(&a, "price"); /* must see B's step: checked by the history */
        if (steps[i] != 'd' && steps[i] != 'c' && steps[i] != 'p') assert_int_equal(rget(&a, "price"), 0);
    }
    client_close(&a);
    peer_stop(&b);
}

static void test_another_process_sees_set_del_clear_at_once(void **state) {
    (void)state;
    atomic_store(&tc__coh_disable, 0);
    run_user_story();
    assert_int_equal(check_history(0), TC_HIST_RULE_NONE);
}

/* Without the host's shared table each process's L1 keeps its copy: the same story fails. */
static void test_without_the_shared_table_the_story_fails(void **state) {
    (void)state;
    atomic_store(&tc__coh_disable, TC__COH_OFF_SHARED);
    run_user_story();
    atomic_store(&tc__coh_disable, 0);
    assert_int_equal(check_history(0), TC_HIST_RULE_G1);
}

/* ------------------------------------------------------------------------ */
/* Staged races: a fill from L2 into L1 held while another process writes   */
/* ------------------------------------------------------------------------ */

static int stage_to = -1, stage_from = -1; /* the parent's pipes to the writer */
static char stage_cmd;

static void hold_fill(const tc__key *k, int from_tier) {
    (void)k;
    if (from_tier != (layout == 0 ? TC_TIER_L2 : TC_TIER_L3) || stage_to < 0) return;
    /* the L2 read is done, the L1 install not yet: the other process writes now */
    say(stage_to, stage_cmd);
    assert_int_equal(hear(stage_from), 'k');
}

/* A races B: A reads "price" (an L2 hit, filled into A's L1), and B's cmd lands between A's
 * L2 read and its L1 install; then A reads again. */
static void run_staged(char cmd) {
    hist_reset();
    peer b = peer_start();
    client a = client_open("a");
    if (layout == 0) {
        /* the key in L2 and not in A's L1: written, then A reopens (an empty L1) */
        assert_int_equal(rset(&a, "price", "a-100"), 0);
        tc_close(a.c);
        a.c = open_host();
        assert_non_null(a.c);
    } else {
        /* the key in the lower tier only (what Redis holds and L2 does not), written there
         * directly and recorded as A's write */
        tc__opts lo;
        host_opts(&lo, low_name);
        tc__tier *low = NULL;
        char err[TC_ERRBUF_SIZE];
        assert_int_equal(tc__l2_open(&lo, &low, err, sizeof err), 0);
        uint64_t tok;
        tc_hist_invoke(a.w, TC_HIST_OP_SET, "price", "a-100", &tok);
        assert_int_equal(low->ops->set(low, &TC__KEY("price", 5), "a-100", 5, 0, NULL), 0);
        tc_hist_complete(a.w, tok, TC_HIST_RES_OK, NULL, 0);
        low->ops->close(low);
    }
    stage_to = b.to;
    stage_from = b.from;
    stage_cmd = cmd;
    tc__test_fill_hook = hold_fill;
    assert_int_equal(rget(&a, "price"), 0); /* the old value: concurrent with B's write */
    tc__test_fill_hook = NULL;
    stage_to = stage_from = -1;
    (void)rget(&a, "price"); /* after B's write completed: never the old value */
    (void)rget(&a, "price");
    client_close(&a);
    peer_stop(&b);
}

static void test_staged_fill_l2_to_l1_vs_write(void **state) {
    (void)state;
    static const char cmds[] = {'s', 'd', 'c', 'p'};
    layout = 0;
    for (size_t i = 0; i < sizeof cmds; i++) {
        atomic_store(&tc__coh_disable, 0);
        run_staged(cmds[i]);
        if (check_history(0) != TC_HIST_RULE_NONE) fail_msg("staged '%c' failed", cmds[i]);
    }
}

/* An L1 fill is safe even without its fence: the entry carries the stamp captured before the
 * L2 read, and the first lookup finds it stale (defence in depth). */
static void test_l1_fills_are_safe_by_their_stamps_alone(void **state) {
    (void)state;
    layout = 0;
    atomic_store(&tc__coh_disable, TC__COH_OFF_FENCE);
    run_staged('s');
    atomic_store(&tc__coh_disable, 0);
    assert_int_equal(check_history(0), TC_HIST_RULE_NONE);
}

/* A fill into L2 from the tier below, held while B writes: refused by its fence. */
static void test_staged_fill_into_l2_vs_write(void **state) {
    (void)state;
    static const char cmds[] = {'s', 'd', 'c', 'p'};
    layout = 1;
    for (size_t i = 0; i < sizeof cmds; i++) {
        atomic_store(&tc__coh_disable, 0);
        run_staged(cmds[i]);
        if (check_history(0) != TC_HIST_RULE_NONE) fail_msg("staged '%c' failed", cmds[i]);
    }
    layout = 0;
}

/* Without fences the held fill overwrites in L2 the value B just wrote (an L2 block's stamp
 * does not count this host's writes, which replace it in place): the checker says so. */
static void test_without_fences_a_staged_l2_fill_goes_stale(void **state) {
    (void)state;
    layout = 1;
    atomic_store(&tc__coh_disable, TC__COH_OFF_FENCE);
    run_staged('s');
    atomic_store(&tc__coh_disable, 0);
    layout = 0;
    assert_int_equal(check_history(0), TC_HIST_RULE_G1);
}

/* ------------------------------------------------------------------------ */
/* A writer killed in the middle of its L2 write                            */
/* ------------------------------------------------------------------------ */

/* For each crash point of an L2 write: A holds "k" in its L1; B dies inside its set of "k";
 * afterwards A reads what L2 holds (the new value, or the old one if the write was rolled back:
 * the write is indeterminate), never a copy of its own L1 that L2 no longer has. */
static void test_writer_killed_in_its_l2_write_leaves_no_stale_l1(void **state) {
    (void)state;
    static const int points[] = {TC__L2_CP_BLOCK_HALF, TC__L2_CP_BLOCK_PUBLISHED, TC__L2_CP_REPLACED};
    for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
        tc_cache *a = open_host();
        assert_non_null(a);
        assert_int_equal(tc_set(a, "k", 1, "old", 3, 0), 0);
        char buf[16];
        size_t len = sizeof buf;
        assert_int_equal(tc_get(a, "k", 1, buf, &len, NULL), 0); /* in A's L1 */
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            tc_cache *b = open_host();
            if (b == NULL) _exit(3);
            atomic_store(&tc__l2_crash_at, points[p]);
            (void)tc_set(b, "k", 1, "new", 3, 0);
            _exit(4); /* not reached: the crash point kills the process */
        }
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
        /* what L2 holds now, read by a process without an L1 */
        tc__opts o;
        tc__opts_init(&o);
        o.ntiers = 1;
        o.tiers[0] = TC_TIER_L2;
        snprintf(o.shared_name, sizeof o.shared_name, "%s", seg_name);
        o.shared_max_entries = 4096;
        o.shared_max_bytes = 4 << 20;
        tc_cache *l2 = NULL;
        char err[TC_ERRBUF_SIZE];
        assert_int_equal(tc__open_opts(&o, &l2, err, sizeof err), 0);
        char in_l2[16];
        size_t l2len = sizeof in_l2;
        int l2rc = tc_get(l2, "k", 1, in_l2, &l2len, NULL);
        len = sizeof buf;
        int arc = tc_get(a, "k", 1, buf, &len, NULL);
        if (arc == 0) {
            if (l2rc != 0 || len != l2len || memcmp(buf, in_l2, len) != 0)
                fail_msg("crash point %d: A read %.*s from its L1, L2 holds %s", points[p], (int)len, buf,
                         l2rc == 0 ? "another value" : "nothing");
        }
        tc_close(l2);
        tc_close(a);
        assert_int_equal(tc_shared_destroy(seg_name), 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Random operations from several processes                                 */
/* ------------------------------------------------------------------------ */

#define RANDOM_PROCS 4
#define RANDOM_KEYS 12

static uint64_t rnd(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void random_client(int id, int64_t until_ns) {
    char proc[16];
    snprintf(proc, sizeof proc, "p%d", id);
    client cl = client_open(proc);
    uint64_t s = 0x1234 + (uint64_t)id;
    unsigned seq = 0;
    while (tc_hist_now_ns() < until_ns) {
        char key[16], val[32];
        snprintf(key, sizeof key, "%ck%d", (int)("ab"[rnd(&s) % 2]), (int)(rnd(&s) % RANDOM_KEYS));
        uint64_t r = rnd(&s) % 100;
        if (r < 55) (void)rget(&cl, key);
        else if (r < 85) {
            snprintf(val, sizeof val, "%s-%u", proc, seq++);
            (void)rset(&cl, key, val);
        } else if (r < 97) (void)rdel(&cl, key);
        else (void)rclear_prefix(&cl, r % 2 ? "a" : "bk1");
    }
    client_close(&cl);
    _exit(0);
}

static void test_random_operations_from_several_processes(void **state) {
    (void)state;
    atomic_store(&tc__coh_disable, 0);
    hist_reset();
    int64_t until = tc_hist_now_ns() + 3000000000ll; /* 3 s */
    pid_t pids[RANDOM_PROCS];
    for (int i = 0; i < RANDOM_PROCS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) random_client(i, until);
    }
    for (int i = 0; i < RANDOM_PROCS; i++) reap(pids[i]);
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    if (tc_hist_load_dir(h, hist_dir, err, sizeof err) != 0) fail_msg("%s", err);
    tc_hist_opts o = TC_HIST_OPTS_DEFAULT;
    tc_hist_result r;
    static char report[8192];
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    if (r.rule != TC_HIST_RULE_NONE) fail_msg("%s", report);
    print_message("%llu operations, %llu reads checked, %llu writes\n", (unsigned long long)r.ops,
                  (unsigned long long)r.reads, (unsigned long long)r.writes_ok);
    assert_true(r.reads > 100);
    tc_hist_free(h);
}

/* ------------------------------------------------------------------------ */
/* Own writes and stripe-mates                                              */
/* ------------------------------------------------------------------------ */

/* A key of the same stripe as key (coherence.h): found by trying "mate-<n>". */
static void stripe_mate(const char *key, char *out, size_t n) {
    size_t want = tc__coh_stripe(tc__hash(key, strlen(key)));
    for (unsigned i = 0;; i++) {
        snprintf(out, n, "mate-%u", i);
        if (tc__coh_stripe(tc__hash(out, strlen(out))) == want) return;
    }
}

static int tier_of_get(tc_cache *c, const char *key, char *buf, size_t cap) {
    size_t len = cap - 1;
    tc_get_info info = TC_GET_INFO_INIT;
    int rc = tc_get(c, key, strlen(key), buf, &len, &info);
    if (rc != 0) return rc;
    buf[len] = '\0';
    return info.tier;
}

/* A process's own write of a key leaves its L1 copies of the other keys of the stripe hits
 * (a write replaces its own key in its own L1 itself); another process's write of the same
 * stripe-mate makes them L1 misses, served again from L2. Before own moves were counted,
 * every write cost the writer a miss per stripe-mate (zipf99, L1L2: hit ratio 0.835 against
 * 0.862 without coherence). */
static void test_own_writes_keep_stripe_mates_in_l1_others_do_not(void **state) {
    (void)state;
    hist_reset();
    layout = 0;
    char mate[32], buf[32];
    stripe_mate("anchor", mate, sizeof mate);
    tc_cache *c = open_host();
    assert_non_null(c);
    assert_int_equal(tc_set(c, "anchor", 6, "a1", 2, 0), 0);
    assert_int_equal(tier_of_get(c, "anchor", buf, sizeof buf), TC_TIER_L1);
    assert_int_equal(tc_set(c, mate, strlen(mate), "m1", 2, 0), 0);
    assert_int_equal(tier_of_get(c, "anchor", buf, sizeof buf), TC_TIER_L1);
    assert_string_equal(buf, "a1");
    assert_int_equal(tier_of_get(c, mate, buf, sizeof buf), TC_TIER_L1);
    assert_string_equal(buf, "m1");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tc_cache *o = open_host();
        int rc = o == NULL ? 90 : tc_set(o, mate, strlen(mate), "m2", 2, 0) != 0 ? 91 : 0;
        if (o != NULL) tc_close(o);
        _exit(rc);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(tier_of_get(c, "anchor", buf, sizeof buf), TC_TIER_L2);
    assert_string_equal(buf, "a1");
    assert_int_equal(tier_of_get(c, mate, buf, sizeof buf), TC_TIER_L2);
    assert_string_equal(buf, "m2");
    tc_close(c);
    hist_reset();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_another_process_sees_set_del_clear_at_once),
        cmocka_unit_test(test_without_the_shared_table_the_story_fails),
        cmocka_unit_test(test_staged_fill_l2_to_l1_vs_write),
        cmocka_unit_test(test_l1_fills_are_safe_by_their_stamps_alone),
        cmocka_unit_test(test_staged_fill_into_l2_vs_write),
        cmocka_unit_test(test_without_fences_a_staged_l2_fill_goes_stale),
        cmocka_unit_test(test_writer_killed_in_its_l2_write_leaves_no_stale_l1),
        cmocka_unit_test(test_random_operations_from_several_processes),
        cmocka_unit_test(test_own_writes_keep_stripe_mates_in_l1_others_do_not),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
