/*
 * test_l3_foreign.c -- values under the namespace that this cache did not write (issue 8,
 * item 8), against a real redis-server: another client stores a 100 MB string and a list
 * under REDIS_KEY_PREFIX. Each must read as a miss for its own key, again and again, while
 * every other key keeps working, the circuit breaker stays closed, nothing is counted as a
 * server failure, and at most CACHE_MAX_VALUE_BYTES of the big value crosses the wire per
 * read (measured on the server: INFO stats total_net_output_bytes). The same through mget,
 * and through the public API over L1+L3.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/redis_server.h"
#include "tier.h"
#include "util.h"

#define LIMIT ((size_t)1 << 20)        /* CACHE_MAX_VALUE_BYTES in these tests */
#define HUGE_LEN ((size_t)100 << 20)   /* the foreign value: 100 MB */
#define READS 20                       /* more than the breaker's threshold (5) */
#define SLACK 4096                     /* bytes per read besides the value's (replies, keys) */

static tc_test_redis srv;

static int setup(void **state) {
    (void)state;
    if (!tc_test_have_redis()) return -1;
    return tc_test_redis_start(&srv, NULL);
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

/* Another client's writes: a 100 MB string (made on the server by SETRANGE, so the test does
 * not push 100 MB itself), a list, and strings of exactly LIMIT and LIMIT + 1 bytes. */
static void plant_foreign(void) {
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    char off[32];
    snprintf(off, sizeof off, "%zu", HUGE_LEN - 1);
    raw_ok("SETRANGE", "tctest:huge", off, "x");
    raw_ok("RPUSH", "tctest:list", "a", "b");
    snprintf(off, sizeof off, "%zu", LIMIT - 1);
    raw_ok("SETRANGE", "tctest:at-limit", off, "y");
    snprintf(off, sizeof off, "%zu", LIMIT);
    raw_ok("SETRANGE", "tctest:over-limit", off, "z");
}

/* Bytes the server has written to all its clients so far. */
static long long server_output_bytes(void) {
    redisReply *r = tc_test_raw(srv.port, NULL, "INFO", "stats", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    const char *p = strstr(r->str, "total_net_output_bytes:");
    assert_non_null(p);
    long long n = strtoll(p + strlen("total_net_output_bytes:"), NULL, 10);
    freeReplyObject(r);
    return n;
}

static const char *extra(tc__tier *t, tc_tier_stats *st, const char *name) {
    memset(st, 0, sizeof *st);
    t->ops->stats(t, st);
    for (int i = 0; i < st->nextra; i++)
        if (strcmp(st->extra[i].name, name) == 0) return st->extra[i].value;
    return "";
}

static long long extra_num(tc__tier *t, const char *name) {
    tc_tier_stats st;
    return strtoll(extra(t, &st, name), NULL, 10);
}

/* The breaker never heard of a failure: closed, never opened, no failure of any kind. */
static void assert_server_never_blamed(tc__tier *t) {
    tc_tier_stats st;
    assert_string_equal(extra(t, &st, "circuit"), "closed");
    assert_int_equal(st.available, 1);
    assert_int_equal(extra_num(t, "circuit_opens"), 0);
    assert_int_equal(extra_num(t, "conn_errors"), 0);
    assert_int_equal(extra_num(t, "proto_errors"), 0);
    assert_int_equal(extra_num(t, "timeouts"), 0);
    assert_int_equal(extra_num(t, "fast_fails"), 0);
    assert_int_equal(extra_num(t, "errors"), 0);
}

static tc__tier *open_tier(void) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    o.max_value_bytes = LIMIT;
    o.redis_pool_size = 2;
    tc__tier *t = NULL;
    char err[256] = "";
    int rc = tc__l3_open(&o, &t, err, sizeof err);
    if (rc) fprintf(stderr, "open: %s\n", err);
    assert_int_equal(rc, 0);
    return t;
}

static int get(tc__tier *t, const char *key, char *buf, size_t cap, size_t *len) {
    tc__sink s = {.buf = buf, .cap = cap};
    int64_t ttl = 0;
    int rc = t->ops->get(t, &TC__KEY(key, strlen(key)), &s, &ttl);
    if (len) *len = s.len;
    return rc;
}

/* The reproducer of item 8: a 100 MB value written by another client. Every read is a miss for
 * that key, never a failure of the server; the circuit stays closed, so other keys keep
 * working; and each read moves at most LIMIT bytes of the value. */
static void test_oversized_value_is_a_miss_never_a_server_failure(void **state) {
    (void)state;
    plant_foreign();
    tc__tier *t = open_tier();
    assert_int_equal(t->ops->set(t, &TC__KEY("ok", 2), "fine", 4, TC_TTL_NONE, NULL), 0);
    char buf[16];
    size_t len;
    long long before = server_output_bytes();
    for (int i = 0; i < READS; i++) {
        assert_int_equal(get(t, "huge", buf, sizeof buf, NULL), TC_EMISS);
        assert_int_equal(get(t, "ok", buf, sizeof buf, &len), 0);
        assert_int_equal(len, 4);
        assert_memory_equal(buf, "fine", 4);
    }
    long long moved = server_output_bytes() - before;
    fprintf(stderr, "%d reads of a %zu-byte value (limit %zu): the server sent %lld bytes\n", READS, HUGE_LEN,
            LIMIT, moved);
    assert_true(moved <= (long long)(READS * (LIMIT + 2 * SLACK) + 64 * 1024));
    assert_server_never_blamed(t);
    assert_true(extra_num(t, "foreign_keys") >= READS);
    t->ops->close(t);
}

/* The boundary: a value of exactly CACHE_MAX_VALUE_BYTES is a hit, whole; one byte more is a
 * miss. */
static void test_value_at_limit_hit_one_byte_over_miss(void **state) {
    (void)state;
    plant_foreign();
    tc__tier *t = open_tier();
    char *buf = malloc(LIMIT + 16);
    assert_non_null(buf);
    size_t len = 0;
    assert_int_equal(get(t, "at-limit", buf, LIMIT + 16, &len), 0);
    assert_int_equal(len, LIMIT);
    assert_int_equal(buf[LIMIT - 1], 'y');
    assert_int_equal(buf[0], '\0');
    assert_int_equal(get(t, "over-limit", buf, LIMIT + 16, &len), TC_EMISS);
    /* a TTL-only lookup says the same */
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY("over-limit", 10), NULL, &ttl), TC_EMISS);
    assert_int_equal(t->ops->get(t, &TC__KEY("at-limit", 8), NULL, &ttl), 0);
    assert_server_never_blamed(t);
    free(buf);
    t->ops->close(t);
}

/* A key of another type (a list) under the namespace is a miss for that key, every time; a set
 * replaces it with a value of ours. */
static void test_wrongtype_key_is_a_miss_never_a_server_failure(void **state) {
    (void)state;
    plant_foreign();
    tc__tier *t = open_tier();
    char buf[16];
    for (int i = 0; i < READS; i++) {
        assert_int_equal(get(t, "list", buf, sizeof buf, NULL), TC_EMISS);
        int64_t ttl;
        assert_int_equal(t->ops->get(t, &TC__KEY("list", 4), NULL, &ttl), TC_EMISS);
    }
    assert_server_never_blamed(t);
    assert_true(extra_num(t, "foreign_keys") >= READS);
    assert_int_equal(t->ops->set(t, &TC__KEY("list", 4), "mine", 4, TC_TTL_NONE, NULL), 0);
    size_t len;
    assert_int_equal(get(t, "list", buf, sizeof buf, &len), 0);
    assert_memory_equal(buf, "mine", 4);
    t->ops->close(t);
}

/* mget: the foreign keys are per-key misses among hits, in one batch, read after read. */
static void test_mget_foreign_values_are_per_key_misses(void **state) {
    (void)state;
    plant_foreign();
    tc__tier *t = open_tier();
    assert_int_equal(t->ops->set(t, &TC__KEY("a", 1), "alpha", 5, TC_TTL_NONE, NULL), 0);
    assert_int_equal(t->ops->set(t, &TC__KEY("b", 1), "beta", 4, 60000, NULL), 0);
    const char *names[] = {"a", "huge", "list", "b", "absent", "over-limit"};
    enum { N = 6 };
    tc__key ks[N];
    for (int i = 0; i < N; i++) ks[i] = TC__KEY(names[i], strlen(names[i]));
    long long before = server_output_bytes();
    for (int round = 0; round < READS; round++) {
        tc__sink outs[N];
        int64_t ttls[N];
        int rcs[N];
        for (int i = 0; i < N; i++) outs[i] = (tc__sink){.want_whole = 1};
        assert_int_equal(t->ops->mget(t, N, ks, outs, ttls, rcs), 0);
        assert_int_equal(rcs[0], 0);
        assert_int_equal(outs[0].len, 5);
        assert_memory_equal(outs[0].heap, "alpha", 5);
        assert_int_equal(ttls[0], TC_TTL_NONE);
        assert_int_equal(rcs[1], TC_EMISS);
        assert_int_equal(rcs[2], TC_EMISS);
        assert_int_equal(rcs[3], 0);
        assert_memory_equal(outs[3].heap, "beta", 4);
        assert_true(ttls[3] > 0 && ttls[3] <= 60000);
        assert_int_equal(rcs[4], TC_EMISS);
        assert_int_equal(rcs[5], TC_EMISS);
        for (int i = 0; i < N; i++) free(outs[i].heap);
    }
    long long moved = server_output_bytes() - before;
    fprintf(stderr, "%d mgets with a %zu-byte value among them: the server sent %lld bytes\n", READS, HUGE_LEN,
            moved);
    /* two over-limit values per batch, at most LIMIT bytes each */
    assert_true(moved <= (long long)(READS * (2 * LIMIT + 6 * SLACK) + 64 * 1024));
    assert_server_never_blamed(t);
    t->ops->close(t);
}

/* Through the public API over L1+L3: misses, no tier error counted, L3 healthy; a loader's
 * value replaces the foreign one. */
static int loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl) {
    (void)ud, (void)key, (void)klen, (void)ttl;
    *val = malloc(6);
    memcpy(*val, "loaded", 6);
    *vlen = 6;
    return 0;
}

static void test_public_api_foreign_values_not_tier_errors(void **state) {
    (void)state;
    plant_foreign();
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    o.max_value_bytes = LIMIT;
    o.ntiers = 2;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L3;
    tc_cache *c = NULL;
    char err[256] = "";
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), 0);
    char buf[16];
    for (int i = 0; i < READS; i++) {
        size_t len = sizeof buf;
        assert_int_equal(tc_get(c, "huge", 4, buf, &len, NULL), TC_EMISS);
        len = sizeof buf;
        assert_int_equal(tc_get(c, "list", 4, buf, &len, NULL), TC_EMISS);
    }
    tc_stats st = TC_STATS_INIT;
    assert_int_equal(tc_stats_get(c, &st), 0);
    assert_int_equal(st.errors, 0);
    tc_tier_stats l3 = TC_TIER_STATS_INIT;
    assert_int_equal(tc_tier_stats_get(c, 1, &l3), 0);
    assert_int_equal(l3.errors, 0);
    assert_int_equal(l3.available, 1);
    assert_string_equal(l3.last_error, "");
    void *v = NULL;
    size_t vlen = 0;
    assert_int_equal(tc_get_or_load(c, "huge", 4, 60000, loader, NULL, &v, &vlen, NULL, NULL), 0);
    assert_int_equal(vlen, 6);
    tc_free(v);
    redisReply *r = tc_test_raw(srv.port, NULL, "STRLEN", "tctest:huge", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->integer, 24 + 6); /* the value header, then the loaded value */
    freeReplyObject(r);
    tc_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oversized_value_is_a_miss_never_a_server_failure),
        cmocka_unit_test(test_value_at_limit_hit_one_byte_over_miss),
        cmocka_unit_test(test_wrongtype_key_is_a_miss_never_a_server_failure),
        cmocka_unit_test(test_mget_foreign_values_are_per_key_misses),
        cmocka_unit_test(test_public_api_foreign_values_not_tier_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
