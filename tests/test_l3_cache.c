/*
 * test_l3_cache.c -- the public API over the L3 tier, against a real redis-server: L3 alone
 * and L1 over L3 (back-fill keeps the remaining TTL), tc_mget / tc_mset through every tier,
 * configuration from the environment (REDIS_URL with a password), a tier that is down
 * (partial writes, reads served by L1, health "degraded"), and that neither the password nor
 * the host reaches the health, statistics or configuration documents.
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

#include "helpers/redis_server.h"
#include "l2_segment.h"
#include "tiercache.h"
#include "helpers/snapshot.h"

#define PW "cache-Secret-pw"

static tc_test_redis srv;

static int setup(void **state) {
    (void)state;
    if (!tc_test_have_redis()) return -1;
    return tc_test_redis_start(&srv, "requirepass " PW);
}

/* The segments the tests name (L2's and the host's coherence segment), also when a test failed
 * half-way. */
static void destroy_segments(void) {
    char name[64];
    snprintf(name, sizeof name, "test-%ld-l3", (long)getpid());
    (void)tc_shared_destroy(name);
    snprintf(name, sizeof name, "test-l3env-%d", (int)getpid());
    (void)tc_shared_destroy(name);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    destroy_segments();
    return 0;
}

static tc_cache *open_cache(const char *tiering) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    snprintf(o.redis_password, sizeof o.redis_password, "%s", PW);
    o.mem_default_ttl_ms = 120000;
    o.redis_default_ttl_ms = 300000; /* the default of REDIS_DEFAULT_TTL */
    o.ntiers = 0;
    for (const char *p = tiering; *p; p++)
        if (*p >= '1' && *p <= '3') o.tiers[o.ntiers++] = (tc_tier_id)(*p - '0');
    tc_cache *c = NULL;
    char err[256] = "";
    int rc = tc__open_opts(&o, &c, err, sizeof err);
    if (rc) fprintf(stderr, "tc_open: %s\n", err);
    assert_int_equal(rc, 0);
    return c;
}

static void test_l3_alone(void **state) {
    (void)state;
    tc_cache *c = open_cache("L3");
    assert_int_equal(tc_set(c, "a", 1, "alpha", 5, 0), 0);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(c, "a", 1, buf, &len, &info), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "alpha", 5);
    assert_int_equal(info.tier, TC_TIER_L3);
    /* ttl 0: the tier default, which for L3 is REDIS_DEFAULT_TTL (5 min), not L1's (120 s here) */
    assert_true(info.ttl_ms > 290000 && info.ttl_ms <= 300000);
    len = 2;
    assert_int_equal(tc_get(c, "a", 1, buf, &len, NULL), TC_ENOBUFS);
    assert_int_equal(len, 5);
    int64_t ttl;
    assert_int_equal(tc_ttl(c, "a", 1, &ttl), 0);
    assert_int_equal(tc_del(c, "a", 1), 0);
    assert_int_equal(tc_ttl(c, "a", 1, &ttl), TC_EMISS);
    tc_close(c);
}

/* Defect 1 of the original: a back-filled entry must keep its remaining TTL. */
/* Issue 7, item 8: L3's default TTL is REDIS_DEFAULT_TTL. A short L1 default must not shorten
 * the Redis entry, and an L1 default of 0 (no expiry) must not make it immortal. */
static long long raw_pttl(const char *key) {
    redisReply *r = tc_test_raw(srv.port, PW, "PTTL", key, NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void test_l3_default_ttl_is_its_own(void **state) {
    (void)state;
    static const uint64_t l1_defaults[] = {1000, 0};
    for (size_t i = 0; i < 2; i++) {
        tc__opts o;
        tc_test_l3_options(&o, srv.port);
        snprintf(o.redis_password, sizeof o.redis_password, "%s", PW);
        o.ntiers = 2;
        o.tiers[0] = TC_TIER_L1;
        o.tiers[1] = TC_TIER_L3;
        o.mem_default_ttl_ms = l1_defaults[i];
        o.redis_default_ttl_ms = 45000;
        tc_cache *c = NULL;
        char err[TC_ERRBUF_SIZE];
        assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), 0);
        assert_int_equal(tc_set(c, "dflt", 4, "v", 1, 0), 0);
        long long pttl = raw_pttl("tctest:dflt");
        assert_true(pttl > 40000 && pttl <= 45000);
        tc_close(c);
    }
}

static void test_backfill_keeps_remaining_ttl(void **state) {
    (void)state;
    tc_cache *l3 = open_cache("L3");
    tc_cache *both = open_cache("L1L3");
    assert_int_equal(tc_set(l3, "bf", 2, "value", 5, 3000), 0);
    tc_test_sleep_ms(100);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(both, "bf", 2, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L3);
    assert_true(info.ttl_ms <= 2900 && info.ttl_ms > 2000);
    int64_t first = info.ttl_ms;
    len = sizeof buf;
    assert_int_equal(tc_get(both, "bf", 2, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L1);
    assert_true(info.ttl_ms <= first && info.ttl_ms > 2000);
    tc_close(both);
    tc_close(l3);
}

static void test_mget_mset_public(void **state) {
    (void)state;
    tc_cache *l3 = open_cache("L3");
    tc_cache *both = open_cache("L1L3");
    enum { N = 300 };
    static char keys[N][16], vals[N][24];
    tc_mset_item items[N];
    const void *kp[N + 1];
    size_t kl[N + 1];
    for (int i = 0; i < N; i++) {
        kl[i] = (size_t)snprintf(keys[i], sizeof keys[i], "mk%d", i);
        size_t vlen = (size_t)snprintf(vals[i], sizeof vals[i], "mv%d", i * 7);
        kp[i] = keys[i];
        items[i] = (tc_mset_item){keys[i], kl[i], vals[i], vlen, i % 2 ? 60000 : 0};
    }
    int rcs[N];
    /* written through the L3-only handle, so the L1L3 handle finds them in L3 first (after
     * their invalidations, which would rightly keep a fill racing them out of L1) */
    uint64_t seen = tc_test_invalidations(both);
    assert_int_equal(tc_mset(l3, N - 50, items, sizeof(tc_mset_item), rcs), 0);
    assert_true(tc_test_wait_invalidations(both, seen + N - 50, 2000));
    for (int i = 0; i < N - 50; i++) assert_int_equal(rcs[i], 0);
    static char bigkey[8192];
    memset(bigkey, 'k', sizeof bigkey);
    kp[N] = bigkey;
    kl[N] = sizeof bigkey;
    tc_mget_result res[N + 1];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(tc_mget(both, N + 1, kp, kl, res, sizeof(tc_mget_result)), 0);
        for (int i = 0; i < N; i++) {
            if (i >= N - 50) {
                assert_int_equal(res[i].rc, TC_EMISS);
                assert_null(res[i].val);
                continue;
            }
            assert_int_equal(res[i].rc, 0);
            assert_int_equal(res[i].len, items[i].vlen);
            assert_memory_equal(res[i].val, vals[i], items[i].vlen);
            assert_int_equal(res[i].tier, round == 0 ? TC_TIER_L3 : TC_TIER_L1);
            if (i % 2) assert_true(res[i].ttl_ms > 50000 && res[i].ttl_ms <= 60000);
            tc_free(res[i].val);
        }
        assert_int_equal(res[N].rc, TC_EKEYTOOBIG);
    }
    /* mset through both tiers, with one bad entry */
    static char big[9 << 20];
    tc_mset_item two[2] = {{"ok", 2, "v", 1, 0}, {"big", 3, big, sizeof big, 0}};
    assert_int_equal(tc_mset(both, 2, two, sizeof(tc_mset_item), rcs), TC_EPARTIAL);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], TC_EVALTOOBIG);
    assert_int_equal(tc_mset(both, 2, two, sizeof(tc_mset_item), NULL), TC_EPARTIAL);
    char buf[4];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(l3, "ok", 2, buf, &len, &info), 0);
    /* an empty value is a value */
    tc_mset_item empty = {"e", 1, "", 0, 0};
    assert_int_equal(tc_mset(both, 1, &empty, sizeof(tc_mset_item), rcs), 0);
    const void *ek = "e";
    size_t ekl = 1;
    assert_int_equal(tc_mget(l3, 1, &ek, &ekl, res, sizeof(tc_mget_result)), 0);
    assert_int_equal(res[0].rc, 0);
    assert_non_null(res[0].val);
    assert_int_equal(res[0].len, 0);
    tc_free(res[0].val);
    /* bad arguments */
    assert_int_equal(tc_mget(both, 1, NULL, kl, res, sizeof(tc_mget_result)), TC_EINVAL);
    assert_int_equal(tc_mset(both, 1, NULL, sizeof(tc_mset_item), rcs), TC_EINVAL);
    assert_int_equal(tc_mget(both, 0, NULL, NULL, NULL, sizeof(tc_mget_result)), 0);
    assert_int_equal(tc_mset(both, 0, NULL, sizeof(tc_mset_item), NULL), 0);
    tc__snapshot st;
    assert_int_equal(snap_get(both, &st), 0);
    assert_true(st.st.hits >= 2 * (N - 50));
    tc_close(both);
    tc_close(l3);
}

/* All three tiers: a value only in Redis comes up through L2 into L1, with its remaining TTL. */
static void test_three_tiers(void **state) {
    (void)state;
    tc_cache *l3 = open_cache("L3");
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    snprintf(o.redis_password, sizeof o.redis_password, "%s", PW);
    snprintf(o.shared_name, sizeof o.shared_name, "test-%ld-l3", (long)getpid());
    o.shared_max_entries = 1000;
    o.shared_max_bytes = 4u << 20;
    o.max_value_bytes = 64 << 10;
    o.ntiers = 3;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L2;
    o.tiers[2] = TC_TIER_L3;
    tc_cache *all = NULL;
    char err[256] = "";
    int rc = tc__open_opts(&o, &all, err, sizeof err);
    if (rc) fprintf(stderr, "tc_open: %s\n", err);
    assert_int_equal(rc, 0);
    uint64_t seen = tc_test_invalidations(all);
    assert_int_equal(tc_set(l3, "deep", 4, "down", 4, 4000), 0);
    assert_true(tc_test_wait_invalidations(all, seen + 1, 2000));
    const void *k = "deep";
    size_t kl = 4;
    tc_mget_result r;
    int want[3] = {TC_TIER_L3, TC_TIER_L1, TC_TIER_L1};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tc_mget(all, 1, &k, &kl, &r, sizeof(tc_mget_result)), 0);
        assert_int_equal(r.rc, 0);
        assert_int_equal(r.tier, want[i]);
        assert_true(r.ttl_ms > 3000 && r.ttl_ms <= 4000);
        tc_free(r.val);
    }
    /* and the shared tier got its copy too */
    tc_cache *l2 = NULL;
    o.ntiers = 1;
    o.tiers[0] = TC_TIER_L2;
    assert_int_equal(tc__open_opts(&o, &l2, err, sizeof err), 0);
    char buf[8];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(l2, "deep", 4, buf, &len, &info), 0);
    assert_true(info.ttl_ms > 3000 && info.ttl_ms <= 4000);
    /* a clear through all tiers leaves nothing anywhere */
    assert_int_equal(tc_clear(all), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(l2, "deep", 4, buf, &len, NULL), TC_EMISS);
    len = sizeof buf;
    assert_int_equal(tc_get(l3, "deep", 4, buf, &len, NULL), TC_EMISS);
    tc_close(l2);
    tc_close(all);
    tc_close(l3);
    assert_int_equal(tc_shared_destroy(o.shared_name), 0);
}

static void assert_no_secret(const char *doc) {
    assert_null(strstr(doc, PW));
    assert_null(strstr(doc, "127.0.0.1"));
}

static void test_env_and_documents(void **state) {
    (void)state;
    char url[128];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/2", PW, srv.port);
    setenv("REDIS_URL", url, 1);
    setenv("CACHE_TIERING", "L1L3", 1);
    setenv("REDIS_KEY_PREFIX", "envtest:", 1);
    setenv("REDIS_COMMAND_TIMEOUT", "500ms", 1);
    char name[64];
    snprintf(name, sizeof name, "test-l3env-%d", (int)getpid());
    setenv("CACHE_SHARED_NAME", name, 1); /* the host's coherence segment, removed below */
    tc_cache *c = NULL;
    char err[256] = "";
    int rc = tc_open_env(&c, err, sizeof err);
    if (rc) fprintf(stderr, "tc_open_env: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(tc_set(c, "k", 1, "v", 1, 0), 0);
    char *doc = NULL;
    assert_int_equal(tc_health_json(c, &doc), 0);
    assert_non_null(strstr(doc, "healthy"));
    assert_no_secret(doc);
    tc_free(doc);
    assert_int_equal(tc_stats_json(c, &doc), 0);
    assert_non_null(strstr(doc, "redis"));
    assert_no_secret(doc);
    tc_free(doc);
    assert_int_equal(tc_stats_prometheus(c, &doc), 0);
    assert_no_secret(doc);
    tc_free(doc);
    tc__opts o;
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.redis_db, 2);
    assert_int_equal(tc__opts_describe(&o, &doc), 0);
    assert_null(strstr(doc, PW));
    tc_free(doc);
    tc_close(c);
    /* the same settings find the key again; the raw connection (db 0) does not */
    redisReply *r = tc_test_raw(srv.port, PW, "EXISTS", "envtest:k", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->integer, 0);
    freeReplyObject(r);
    c = NULL;
    setenv("CACHE_TIERING", "L3", 1);
    assert_int_equal(tc_open_env(&c, err, sizeof err), 0);
    char buf[4];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(c, "k", 1, buf, &len, NULL), 0);
    tc_close(c);
    unsetenv("REDIS_URL");
    unsetenv("CACHE_TIERING");
    unsetenv("REDIS_KEY_PREFIX");
    unsetenv("REDIS_COMMAND_TIMEOUT");
    unsetenv("CACHE_SHARED_NAME");
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* Redis stopped under L1: a set returns TC_EPARTIAL within its bound and the health says
 * degraded at once. What L1 may still serve depends on coherence: without it, L1 keeps its
 * copy; with it, the lost channel is a GAP once B has passed, and L1 serves nothing from then
 * on (docs/COHERENCE.md, guarantee 3) -- the read misses, within its own bound. */
static void l3_down_under_l1(int coherence) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    snprintf(o.redis_password, sizeof o.redis_password, "%s", PW);
    o.ntiers = 2;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L3;
    o.redis_command_timeout_ms = 300;
    o.redis_connect_timeout_ms = 300;
    o.coherence = coherence;
    o.max_staleness_ms = 400;
    tc_cache *c = NULL;
    char err[256];
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), 0);
    assert_int_equal(tc_set(c, "d", 1, "v", 1, 0), 0);
    tc_test_redis_signal(&srv, SIGSTOP);
    double t0 = tc_test_now_ms();
    int rc = tc_set(c, "d2", 2, "v", 1, 0);
    assert_true(tc_test_now_ms() - t0 < 300 + 300 + 200);
    assert_int_equal(rc, TC_EPARTIAL);
    /* after a few failures the circuit opens: the health says degraded, quickly */
    for (int i = 0; i < 10; i++) tc_set(c, "x", 1, "v", 1, 0);
    char *doc = NULL;
    t0 = tc_test_now_ms();
    assert_int_equal(tc_health_json(c, &doc), 0);
    assert_true(tc_test_now_ms() - t0 < 100);
    assert_non_null(strstr(doc, "degraded"));
    assert_no_secret(doc);
    tc_free(doc);
    tc_test_sleep_ms((int)o.max_staleness_ms + 200); /* the channel's loss is seen within B */
    char buf[4];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    t0 = tc_test_now_ms();
    rc = tc_get(c, "d", 1, buf, &len, &info);
    assert_true(tc_test_now_ms() - t0 < 300 + 300 + 200);
    if (coherence) {
        assert_int_equal(rc, TC_EMISS);
        tc_stats st = TC_STATS_INIT;
        assert_int_equal(tc_stats_get(c, &st), 0);
        assert_int_equal(st.channel, TC_CHANNEL_GAP);
    } else {
        assert_int_equal(rc, 0);
        assert_int_equal(info.tier, TC_TIER_L1);
    }
    tc_test_redis_signal(&srv, SIGCONT);
    tc_close(c);
}

static void test_l3_down_under_l1_without_coherence_l1_serves(void **state) {
    (void)state;
    l3_down_under_l1(0);
}

static void test_l3_down_under_l1_with_coherence_l1_serves_nothing_after_b(void **state) {
    (void)state;
    l3_down_under_l1(1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l3_alone),
        cmocka_unit_test(test_l3_default_ttl_is_its_own),
        cmocka_unit_test(test_backfill_keeps_remaining_ttl),
        cmocka_unit_test(test_mget_mset_public),
        cmocka_unit_test(test_three_tiers),
        cmocka_unit_test(test_env_and_documents),
        cmocka_unit_test(test_l3_down_under_l1_without_coherence_l1_serves),
        cmocka_unit_test(test_l3_down_under_l1_with_coherence_l1_serves_nothing_after_b),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
