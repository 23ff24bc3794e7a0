/*
 * test_l3_listen.c -- the host's invalidation listener (src/l3_listen.c) against a real
 * redis-server, in one process: writes from outside (SET, DEL, EXPIRE, expiry, FLUSHALL) move
 * the right stripe or the epoch within B; a killed subscriber, a restarted server, a frozen
 * server and a subscriber cut off behind a proxy (only the canary tells) each set GAP within
 * B, and the recovery moves the epoch; stopping is prompt; a frozen listener thread is
 * replaced by another watchdog of the host and stands down when it wakes; the clear records
 * between two simulated hosts; the canary's lag; the test-only switches each turn their
 * mechanism off. Multi-process elections are in test_l3_listen_procs.c.
 *
 * B is 400 ms here; every wait is bounded, and each "within B" is asserted as measured from
 * the moment the fault was made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/listen_host.h"
#include "helpers/proxy.h"
#include "helpers/redis_server.h"
#include "l3_format.h"
#include "l3_redis.h"
#include "util.h"

#define B_MS 400

static tc_test_redis srv;

static int setup(void **state) {
    (void)state;
    return tc_test_redis_setup(&srv, NULL);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    return 0;
}

static void raw_ok(const char *a0, const char *a1, const char *a2, const char *a3) {
    redisReply *r = tc_test_raw(srv.port, NULL, a0, a1, a2, a3);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static int is_healthy(void *arg) {
    tc_test_host *h = arg;
    return !tc__coh_gap(h->coh) && h->w != NULL && tc__l3_watch_listening(h->w);
}
static int is_gap(void *arg) { return tc__coh_gap(((tc_test_host *)arg)->coh); }
static int not_gap(void *arg) { return !tc__coh_gap(((tc_test_host *)arg)->coh); }

static void open_host(tc_test_host *h, const char *tag) {
    char name[64];
    tc_test_host_name(name, sizeof name, tag);
    assert_int_equal(tc_test_host_open(h, name, srv.port, B_MS, 1), 0);
    assert_true(tc_test_wait_until(is_healthy, h, 5000) >= 0);
}

/* A stripe word and what it was. */
typedef struct watch_word {
    const _Atomic uint64_t *p;
    uint64_t before;
} watch_word;

static int word_moved(void *arg) {
    watch_word *ww = arg;
    return atomic_load(ww->p) != ww->before;
}

static watch_word word_of(const tc_test_host *h, const char *user_key) {
    watch_word ww = {&tc__coh_words(h->coh, tc__hash(user_key, strlen(user_key)))[1], 0}; /* the i word */
    ww.before = atomic_load(ww.p);
    return ww;
}

typedef struct epoch_watch {
    const tc__coh *c;
    uint64_t before;
} epoch_watch;

static int epoch_moved(void *arg) {
    epoch_watch *e = arg;
    return tc_test_epoch_counter(e->c) != e->before;
}

/* ------------------------------------------------------------------------ */

/* A process that finds nobody listening sets GAP before tc__l3_watch_start returns: it must
 * not serve what it (or a dead listener's host) cached while invalidations went unheard. */
static void test_start_without_listener_sets_gap_before_it_returns(void **state) {
    (void)state;
    char name[64];
    tc_test_host_name(name, sizeof name, "start");
    tc_test_host h;
    assert_int_equal(tc_test_host_open(&h, name, srv.port, B_MS, 0), 0);
    assert_false(tc__coh_gap(h.coh)); /* a new table: no GAP, and nobody listens */
    assert_true(tc__coh_lease_expired(h.coh, tc__now_ms()));
    assert_int_equal(tc_test_host_start(&h), 0);
    assert_true(tc__coh_gap(h.coh));
    /* then the listener connects, subscribes and recovers */
    double ms = tc_test_wait_until(is_healthy, &h, 5000);
    assert_true(ms >= 0);
    printf("healthy %.1f ms after start\n", ms);
    tc_test_host_close(&h, 1);
}

/* Writes from another client under the namespace move the stripe of exactly that key, within
 * B: SET, DEL, PEXPIRE, INCR, and Redis's own expiry. A key outside the namespace moves
 * nothing. */
static void test_external_writes_move_their_stripe_within_bound(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "ext");
    struct {
        const char *what, *a0, *a1, *a2, *a3, *user;
    } ops[] = {
        {"SET", "SET", "tctest:ext1", "v", NULL, "ext1"},
        {"SET again", "SET", "tctest:ext1", "w", NULL, "ext1"},
        {"PEXPIRE", "PEXPIRE", "tctest:ext1", "60000", NULL, "ext1"},
        {"DEL", "DEL", "tctest:ext1", NULL, NULL, "ext1"},
        {"INCR", "INCR", "tctest:counter", NULL, NULL, "counter"},
        {"SET PX (then its expiry)", "SET", "tctest:short", "v", "PX", "short"},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        watch_word ww = word_of(&h, ops[i].user);
        watch_word other = word_of(&h, "never-written");
        if (ops[i].a3 != NULL) {
            const char *argv[5] = {ops[i].a0, ops[i].a1, ops[i].a2, ops[i].a3, "50"};
            size_t lens[5];
            for (int j = 0; j < 5; j++) lens[j] = strlen(argv[j]);
            redisReply *r = tc_test_raw_cmd(srv.port, NULL, 5, argv, lens);
            assert_non_null(r);
            freeReplyObject(r);
        } else {
            raw_ok(ops[i].a0, ops[i].a1, ops[i].a2, NULL);
        }
        double ms = tc_test_wait_until(word_moved, &ww, B_MS);
        printf("%s: stripe moved after %.2f ms\n", ops[i].what, ms);
        assert_true(ms >= 0);
        assert_false(word_moved(&other));
        if (ops[i].a3 != NULL) {
            /* the expiry, 50 ms later, is an invalidation of its own (active expiry: within
             * the server's 100 ms cycle) */
            ww.before = atomic_load(ww.p);
            assert_true(tc_test_wait_until(word_moved, &ww, 50 + 200 + B_MS) >= 0);
        }
    }
    /* outside the namespace: the subscriber is not even told */
    watch_word out = word_of(&h, "outside");
    raw_ok("SET", "other:outside", "v", NULL);
    raw_ok("SET", "outside", "v", NULL);
    tc_test_sleep_ms(B_MS / 2);
    assert_false(word_moved(&out));
    tc_test_host_close(&h, 1);
}

/* FLUSHALL sends a null payload: everything may have changed, the epoch moves. */
static void test_flushall_moves_the_epoch_within_bound(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "flush");
    epoch_watch e = {h.coh, tc_test_epoch_counter(h.coh)};
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    double ms = tc_test_wait_until(epoch_moved, &e, B_MS);
    printf("FLUSHALL: epoch moved after %.2f ms\n", ms);
    assert_true(ms >= 0);
    assert_false(tc__coh_gap(h.coh));
    tc_test_host_close(&h, 1);
}

/* The subscriber killed by the server: GAP at once (well within B); the listener reconnects
 * and its recovery moves the epoch, so nothing filled before the loss is served again. */
static void test_killed_subscriber_sets_gap_and_recovery_moves_the_epoch(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "kill");
    uint64_t e0 = tc_test_epoch_counter(h.coh);
    tc__coh_counters c0, c1;
    tc__coh_counters_get(h.coh, &c0);
    raw_ok("CLIENT", "KILL", "TYPE", "pubsub");
    double ms = tc_test_wait_until(is_gap, &h, B_MS);
    printf("CLIENT KILL: GAP after %.2f ms\n", ms);
    assert_true(ms >= 0);
    double back = tc_test_wait_until(not_gap, &h, 5000);
    printf("CLIENT KILL: healthy again %.1f ms later\n", back);
    assert_true(back >= 0);
    assert_true(tc_test_epoch_counter(h.coh) > e0);
    tc__coh_counters_get(h.coh, &c1);
    assert_int_equal(c1.gaps, c0.gaps + 1);
    tc_test_host_close(&h, 1);
}

/* A restarted server (killed, then started on the same port): GAP within B, then recovery and
 * an epoch move once it is back. */
static void test_restarted_server_sets_gap_then_recovery_moves_the_epoch(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "restart");
    uint64_t e0 = tc_test_epoch_counter(h.coh);
    tc_test_redis_signal(&srv, SIGKILL);
    double ms = tc_test_wait_until(is_gap, &h, B_MS);
    printf("server killed: GAP after %.2f ms\n", ms);
    assert_true(ms >= 0);
    tc_test_sleep_ms(B_MS); /* down a while: the listener backs off and retries */
    assert_true(tc__coh_gap(h.coh));
    assert_int_equal(tc_test_redis_restart(&srv), 0);
    double back = tc_test_wait_until(not_gap, &h, 5000);
    printf("server restarted: healthy %.1f ms later\n", back);
    assert_true(back >= 0);
    assert_true(tc_test_epoch_counter(h.coh) > e0);
    tc_test_host_close(&h, 1);
}

/* A frozen server keeps every connection open and says nothing: the listener's next canary
 * (its SET, or the invalidation that does not come back) tells. GAP within B; healthy again
 * after SIGCONT. */
static void test_frozen_server_sets_gap_within_bound(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "frozen");
    tc_test_sleep_ms(B_MS / 2);
    tc_test_redis_signal(&srv, SIGSTOP);
    double ms = tc_test_wait_until(is_gap, &h, 2 * B_MS);
    tc_test_redis_signal(&srv, SIGCONT);
    printf("server frozen: GAP after %.1f ms (B = %d)\n", ms, B_MS);
    assert_true(ms >= 0 && ms <= B_MS);
    assert_true(tc_test_wait_until(not_gap, &h, 5000) >= 0);
    tc_test_host_close(&h, 1);
}

/* Tracking lost behind a proxy that keeps the subscriber's TCP session up: every connection
 * answers, only the invalidations stop. The canary that does not come back within B/2 is the
 * one thing that tells; GAP within B, and no recovery while the subscriber stays cut off. */
static void test_subscriber_cut_off_behind_a_proxy_seen_by_the_missed_canary(void **state) {
    (void)state;
    tc_test_proxy px;
    assert_int_equal(tc_test_proxy_start(&px, srv.port), 0);
    char name[64];
    tc_test_host_name(name, sizeof name, "muted");
    tc_test_host h;
    assert_int_equal(tc_test_host_open(&h, name, px.port, B_MS, 1), 0);
    assert_true(tc_test_wait_until(is_healthy, &h, 5000) >= 0);
    tc_test_sleep_ms(B_MS / 2);
    px.mute_subscriber = 1;
    double ms = tc_test_wait_until(is_gap, &h, 2 * B_MS);
    printf("subscriber cut off: GAP after %.1f ms (B = %d)\n", ms, B_MS);
    assert_true(ms >= 0 && ms <= B_MS);
    tc_test_sleep_ms(B_MS);
    assert_true(tc__coh_gap(h.coh)); /* reconnected through the proxy: still deaf, still GAP */
    px.mute_subscriber = 0;
    assert_true(tc_test_wait_until(not_gap, &h, 5000) >= 0);
    tc_test_host_close(&h, 1);
    tc_test_proxy_stop(&px);
}

/* Two watchdogs of one host (two handles on the segment, as two processes would have): the
 * listener's thread freezes (the test hook: it reads nothing and renews nothing); the other
 * takes over within B (GAP in between); the frozen one, woken, finds its lease gone and stands
 * down without touching the channel. */
static void test_frozen_listener_thread_is_replaced_within_bound(void **state) {
    (void)state;
    char name[64];
    tc_test_host_name(name, sizeof name, "freeze");
    tc_test_host a, b;
    assert_int_equal(tc_test_host_open(&a, name, srv.port, B_MS, 1), 0);
    assert_int_equal(tc_test_host_open(&b, name, srv.port, B_MS, 1), 0);
    assert_true(tc_test_wait_until(not_gap, &a, 5000) >= 0);
    tc_test_host *l = tc__l3_watch_listening(a.w) ? &a : &b, *o = l == &a ? &b : &a;
    assert_true(tc__l3_watch_listening(l->w));
    assert_false(tc__l3_watch_listening(o->w));
    tc__coh_counters c0;
    tc__coh_counters_get(a.coh, &c0);
    tc__l3_watch_freeze(l->w, 1);
    double t0 = tc_test_now_ms();
    assert_true(tc_test_wait_until(is_gap, &a, 2 * B_MS) >= 0);
    double gap_ms = tc_test_now_ms() - t0;
    assert_true(tc_test_wait_until(is_healthy, o, 5000) >= 0);
    double over_ms = tc_test_now_ms() - t0;
    printf("listener frozen: GAP after %.1f ms, the other listens %.1f ms after the freeze (B = %d)\n", gap_ms,
           over_ms, B_MS);
    assert_true(gap_ms <= B_MS);
    tc__coh_counters c1;
    tc__coh_counters_get(a.coh, &c1);
    assert_int_equal(c1.takeovers, c0.takeovers + 1);
    /* woken: it stands down, and the channel stays healthy */
    tc__l3_watch_freeze(l->w, 0);
    int was_listening = 1;
    for (int i = 0; i < 100 && was_listening; i++) {
        tc_test_sleep_ms(5);
        was_listening = tc__l3_watch_listening(l->w);
    }
    assert_false(was_listening);
    epoch_watch e = {a.coh, tc_test_epoch_counter(a.coh)};
    for (int i = 0; i < 2 * B_MS / 10; i++) {
        tc_test_sleep_ms(10);
        assert_false(tc__coh_gap(a.coh));
    }
    assert_false(epoch_moved(&e));
    assert_true(tc__l3_watch_listening(o->w));
    tc_test_host_close(&a, 0);
    tc_test_host_close(&b, 1);
}

/* Stopping never waits on a frozen server: the wake-up ends the listener's connect or request.
 * With REDIS_CONNECT_TIMEOUT at 3 s, the listener spends the seconds after the freeze inside
 * a connect (its canary failed after B/4, its first backoff is 100 ms). */
static void test_stop_is_prompt_with_the_server_frozen(void **state) {
    (void)state;
    char name[64];
    tc_test_host_name(name, sizeof name, "stop");
    tc_test_host h;
    assert_int_equal(tc_test_host_open_with(&h, name, srv.port, B_MS, 3000, 300, 1), 0);
    assert_true(tc_test_wait_until(is_healthy, &h, 5000) >= 0);
    tc_test_redis_signal(&srv, SIGSTOP);
    tc_test_sleep_ms(3 * B_MS / 2); /* the canary failed, the backoff passed: connecting */
    double t0 = tc_test_now_ms();
    tc__l3_watch_stop(h.w);
    double ms = tc_test_now_ms() - t0;
    h.w = NULL;
    tc_test_redis_signal(&srv, SIGCONT);
    printf("stop with the server frozen took %.2f ms\n", ms);
    assert_true(ms < 50);
    /* it was the listener: stopping set GAP and gave the lease back */
    assert_true(tc__coh_gap(h.coh));
    assert_true(tc__coh_lease_expired(h.coh, tc__now_ms()));
    tc_test_host_close(&h, 1);
}

/* The canary's round trip is measured: the host's lag is that of loopback, and recorded. */
static void test_canary_lag_is_measured(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "lag");
    tc_test_sleep_ms(B_MS); /* a few canaries */
    tc_stats st = TC_STATS_INIT;
    tc__l3_watch_stats(h.w, &st);
    printf("canary lag: last %llu us, max %llu us\n", (unsigned long long)st.channel_lag_us,
           (unsigned long long)st.channel_lag_max_us);
    assert_true(st.channel_lag_us > 0);
    assert_true(st.channel_lag_max_us >= st.channel_lag_us);
    assert_true(st.channel_lag_us < (uint64_t)B_MS * 500); /* within B/2 */
    assert_int_equal(st.listener, 1);
    assert_int_equal(st.listener_pid, (uint32_t)getpid());
    assert_int_equal(st.channel, TC_CHANNEL_HEALTHY);
    tc_test_host_close(&h, 1);
}

/* ------------------------------------------------------------------------ */
/* Clear records between hosts                                              */
/* ------------------------------------------------------------------------ */

typedef struct stamp_watch {
    const tc__coh *c;
    const char *key;
    tc__stamp s;
} stamp_watch;

static stamp_watch stamp_of(const tc__coh *c, const char *key) {
    stamp_watch sw = {c, key, tc__coh_stamp(c, tc__hash(key, strlen(key)))};
    return sw;
}

static int stamp_valid(const stamp_watch *sw) {
    return tc__coh_valid(sw->c, tc__hash(sw->key, strlen(sw->key)), TC__COH_NOW_K, (uint32_t)sw->s.k, (uint32_t)sw->s.p, sw->key,
                         strlen(sw->key), NULL);
}

static int stamp_invalid(void *arg) { return !stamp_valid(arg); }

/* Host A clears a prefix through its L3 tier: host B's listener reads A's record and clears
 * the same prefix in B's table (entries under it invalid, others not) within B; a full clear
 * moves B's epoch. A's own listener skips A's records (A applied them when it cleared). */
static void test_clear_records_reach_the_other_host_within_bound(void **state) {
    (void)state;
    tc_test_host a, b;
    open_host(&a, "clearA");
    open_host(&b, "clearB");
    assert_int_not_equal(tc__l3_host_nonce(a.l3), tc__l3_host_nonce(b.l3));
    stamp_watch user = stamp_of(b.coh, "user:1"), item = stamp_of(b.coh, "item:1");
    uint64_t a_pgen = atomic_load(a.coh->pgen), a_epoch = tc_test_epoch_counter(a.coh);
    assert_int_equal(a.l3->ops->clear_prefix(a.l3, "user:", 5), 0);
    double ms = tc_test_wait_until(stamp_invalid, &user, B_MS);
    printf("clear_prefix on A: B's entries under it invalid after %.2f ms\n", ms);
    assert_true(ms >= 0);
    assert_true(stamp_valid(&item)); /* a prefix clear, not an epoch move */
    tc_test_sleep_ms(50);
    assert_int_equal(atomic_load(a.coh->pgen), a_pgen);
    epoch_watch e = {b.coh, tc_test_epoch_counter(b.coh)};
    assert_int_equal(a.l3->ops->clear(a.l3), 0);
    ms = tc_test_wait_until(epoch_moved, &e, B_MS);
    printf("clear on A: B's epoch moved after %.2f ms\n", ms);
    assert_true(ms >= 0);
    tc_test_sleep_ms(50);
    assert_int_equal(tc_test_epoch_counter(a.coh), a_epoch);
    tc_test_host_close(&a, 1);
    tc_test_host_close(&b, 1);
}

/* Records pushed straight into the list in one transaction (one invalidation): a host whose
 * last seen record was trimmed away cannot tell what it missed, and moves its epoch. */
static void test_more_than_64_missed_clear_records_move_the_epoch(void **state) {
    (void)state;
    tc_test_host b;
    open_host(&b, "clear64");
    const char *list = "tctest:\xff__tiercache__:clear";
    /* one record from some other host: applied as a prefix clear, no epoch move */
    uint64_t pgen0 = atomic_load(b.coh->pgen);
    epoch_watch e = {b.coh, tc_test_epoch_counter(b.coh)};
    char rec[64];
    tc__l3_clear_head(rec, 0x1234, 1);
    memcpy(rec + TC__L3_CLEAR_HEAD, "p:", 2);
    const char *argv[3] = {"RPUSH", list, rec};
    size_t lens[3] = {5, strlen(list), TC__L3_CLEAR_HEAD + 2};
    redisReply *r = tc_test_raw_cmd(srv.port, NULL, 3, argv, lens);
    assert_non_null(r);
    freeReplyObject(r);
    for (int i = 0; i < B_MS && atomic_load(b.coh->pgen) == pgen0; i++) tc_test_sleep_ms(1);
    assert_int_equal(atomic_load(b.coh->pgen), pgen0 + 1);
    assert_false(epoch_moved(&e));
    /* seventy more at once, trimmed to 64: the one B saw last is gone */
    char script[256];
    snprintf(script, sizeof script,
             "for i = 1, 70 do redis.call('RPUSH', KEYS[1], string.format('%%016x:%%016x:q', 4660, i + 1)) end "
             "redis.call('LTRIM', KEYS[1], -64, -1)");
    const char *eargv[4] = {"EVAL", script, "1", list};
    size_t elens[4] = {4, strlen(script), 1, strlen(list)};
    r = tc_test_raw_cmd(srv.port, NULL, 4, eargv, elens);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    double ms = tc_test_wait_until(epoch_moved, &e, B_MS);
    printf("70 records missed: epoch moved after %.2f ms\n", ms);
    assert_true(ms >= 0);
    tc_test_host_close(&b, 1);
}

/* ------------------------------------------------------------------------ */
/* The test-only switches: each turns its mechanism off (and only that)    */
/* ------------------------------------------------------------------------ */

/* TC__COH_OFF_GAP: a killed subscriber sets no GAP; the listener still reconnects. */
static void test_switch_off_gap_loses_the_channel_silently(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "offgap");
    tc__coh_counters c0, c1;
    tc__coh_counters_get(h.coh, &c0);
    atomic_store(&tc__coh_disable, TC__COH_OFF_GAP);
    raw_ok("CLIENT", "KILL", "TYPE", "pubsub");
    assert_true(tc_test_wait_until(is_gap, &h, B_MS) < 0);
    atomic_store(&tc__coh_disable, 0);
    tc__coh_counters_get(h.coh, &c1);
    assert_int_equal(c1.gaps, c0.gaps);
    tc_test_host_close(&h, 1);
}

/* TC__COH_OFF_CANARY: a frozen server goes unnoticed (no canary, no GAP). */
static void test_switch_off_canary_trusts_a_silent_channel(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "offcanary");
    atomic_store(&tc__coh_disable, TC__COH_OFF_CANARY);
    tc_test_sleep_ms(B_MS / 2); /* an outstanding canary, if any, has come back */
    tc_test_redis_signal(&srv, SIGSTOP);
    double ms = tc_test_wait_until(is_gap, &h, 2 * B_MS);
    tc_test_redis_signal(&srv, SIGCONT);
    atomic_store(&tc__coh_disable, 0);
    assert_true(ms < 0);
    tc_test_host_close(&h, 1);
}

/* TC__COH_OFF_RECOVER: the recovery after a loss clears GAP and leaves the epoch as it was. */
static void test_switch_off_recover_keeps_the_epoch(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "offrecover");
    atomic_store(&tc__coh_disable, TC__COH_OFF_RECOVER);
    uint64_t e0 = tc_test_epoch_counter(h.coh);
    raw_ok("CLIENT", "KILL", "TYPE", "pubsub");
    assert_true(tc_test_wait_until(is_gap, &h, B_MS) >= 0);
    assert_true(tc_test_wait_until(not_gap, &h, 5000) >= 0);
    atomic_store(&tc__coh_disable, 0);
    assert_int_equal(tc_test_epoch_counter(h.coh), e0);
    tc_test_host_close(&h, 1);
}

/* TC__COH_OFF_ECHO: the invalidation of a key this host wrote is skipped; another key's is
 * applied. Without the switch the echo moves the stripe. */
static void test_switch_off_echo_skips_the_hosts_own_writes(void **state) {
    (void)state;
    tc_test_host h;
    open_host(&h, "offecho");
    tc__tier *t = h.l3;
    watch_word own = word_of(&h, "own");
    assert_int_equal(t->ops->set(t, &TC__KEY("own", 3), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_true(tc_test_wait_until(word_moved, &own, B_MS) >= 0); /* echoes are applied */
    atomic_store(&tc__coh_disable, TC__COH_OFF_ECHO);
    own = word_of(&h, "own");
    watch_word ext = word_of(&h, "ext");
    assert_int_equal(t->ops->set(t, &TC__KEY("own", 3), "w", 1, TC_TTL_NONE, NULL), 0);
    raw_ok("SET", "tctest:ext", "v", NULL);
    assert_true(tc_test_wait_until(word_moved, &ext, B_MS) >= 0);
    tc_test_sleep_ms(20);
    atomic_store(&tc__coh_disable, 0);
    assert_false(word_moved(&own));
    tc_test_host_close(&h, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_without_listener_sets_gap_before_it_returns),
        cmocka_unit_test(test_external_writes_move_their_stripe_within_bound),
        cmocka_unit_test(test_flushall_moves_the_epoch_within_bound),
        cmocka_unit_test(test_killed_subscriber_sets_gap_and_recovery_moves_the_epoch),
        cmocka_unit_test(test_restarted_server_sets_gap_then_recovery_moves_the_epoch),
        cmocka_unit_test(test_frozen_server_sets_gap_within_bound),
        cmocka_unit_test(test_subscriber_cut_off_behind_a_proxy_seen_by_the_missed_canary),
        cmocka_unit_test(test_frozen_listener_thread_is_replaced_within_bound),
        cmocka_unit_test(test_stop_is_prompt_with_the_server_frozen),
        cmocka_unit_test(test_canary_lag_is_measured),
        cmocka_unit_test(test_clear_records_reach_the_other_host_within_bound),
        cmocka_unit_test(test_more_than_64_missed_clear_records_move_the_epoch),
        cmocka_unit_test(test_switch_off_gap_loses_the_channel_silently),
        cmocka_unit_test(test_switch_off_canary_trusts_a_silent_channel),
        cmocka_unit_test(test_switch_off_recover_keeps_the_epoch),
        cmocka_unit_test(test_switch_off_echo_skips_the_hosts_own_writes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
