/*
 * test_cache_stress.c -- many threads on one handle: gets, sets, deletes, TTL lookups,
 * clears by prefix and single-flight loads on a small key space, on a one-tier and a
 * two-tier cache, and on a tier of several shards where some values are larger than a shard's
 * share of the bytes (their room is gathered from the other shards, one lock at a time). Every value carries its key id and a checksum, so a torn or misplaced value
 * is caught; the bounds are checked at the end. Also run under ThreadSanitizer.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tier.h"
#include "helpers/snapshot.h"

#define THREADS 8
#define KEYS 3000

#ifdef __SANITIZE_THREAD__
#define OPS 20000
#else
#define OPS 150000
#endif

typedef struct ctx {
    tc_cache *c;
    unsigned seed;
    unsigned big; /* not 0: one set in 16 pads its value with up to this many bytes */
    int ops;
    _Atomic long *bad;
    _Atomic long *hits;
} ctx;

#define BIG_MAX 100000

static uint32_t checksum(const char *p, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

/* value = "<id>|<version>|<padding>" then 4 bytes of checksum over what precedes */
static size_t make_value(char *buf, unsigned id, unsigned version, unsigned pad) {
    int n = snprintf(buf, 64, "%u|%u|", id, version);
    memset(buf + n, 'a' + (char)(version % 26), pad);
    size_t len = (size_t)n + pad;
    uint32_t cs = checksum(buf, len);
    memcpy(buf + len, &cs, 4);
    return len + 4;
}

static int value_ok(const char *v, size_t len, unsigned id) {
    if (len < 6) return 0;
    uint32_t cs;
    memcpy(&cs, v + len - 4, 4);
    if (checksum(v, len - 4) != cs) return 0;
    char tmp[16];
    int n = snprintf(tmp, sizeof tmp, "%u|", id);
    return len >= (size_t)n && memcmp(v, tmp, (size_t)n) == 0;
}

static int loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl) {
    (void)ud;
    (void)ttl;
    unsigned id = (unsigned)strtoul((const char *)key + 2, NULL, 10);
    (void)klen;
    char *buf = malloc(512);
    *vlen = make_value(buf, id, 0, id % 200);
    *val = buf;
    return 0;
}

static void *worker(void *arg) {
    ctx *x = arg;
    char key[32];
    char *val = malloc(BIG_MAX + 64), *out = malloc(BIG_MAX + 64);
    const size_t out_cap = BIG_MAX + 64;
    if (val == NULL || out == NULL) {
        atomic_fetch_add(x->bad, 1);
        free(val), free(out);
        return NULL;
    }
    for (int i = 0; i < x->ops; i++) {
        unsigned r = (unsigned)rand_r(&x->seed);
        unsigned id = (r >> 8) % KEYS;
        /* key:"k:<id>"; a skewed half of the traffic goes to the first 100 keys */
        if (r & 1) id %= 100;
        int klen = snprintf(key, sizeof key, "k:%u", id);
        unsigned op = (r >> 1) % 100;
        if (op < 55) {
            size_t len = out_cap;
            int rc = tc_get(x->c, key, (size_t)klen, out, &len, NULL);
            if (rc == 0) {
                atomic_fetch_add(x->hits, 1);
                if (!value_ok(out, len, id)) atomic_fetch_add(x->bad, 1);
            } else if (rc != TC_EMISS) {
                atomic_fetch_add(x->bad, 1);
            }
        } else if (op < 80) {
            unsigned pad = (r >> 16) % 300;
            if (x->big && (r >> 24) % 16 == 0) pad = (r >> 9) % x->big;
            size_t len = make_value(val, id, (unsigned)i, pad);
            int rc = tc_set(x->c, key, (size_t)klen, val, len, (r & 4) ? 0 : 50);
            if (rc != 0) atomic_fetch_add(x->bad, 1);
        } else if (op < 90) {
            if (tc_del(x->c, key, (size_t)klen) != 0) atomic_fetch_add(x->bad, 1);
        } else if (op < 95) {
            void *v;
            size_t len;
            int rc = tc_get_or_load(x->c, key, (size_t)klen, 0, loader, NULL, &v, &len, NULL, NULL);
            if (rc != 0 || !value_ok(v, len, id)) atomic_fetch_add(x->bad, 1);
            if (rc == 0) tc_free(v);
        } else if (op < 99 || ((r >> 12) & 31) != 0) {
            int64_t ttl;
            int rc = tc_ttl(x->c, key, (size_t)klen, &ttl);
            if (rc != 0 && rc != TC_EMISS) atomic_fetch_add(x->bad, 1);
        } else {
            char prefix[8];
            int plen = snprintf(prefix, sizeof prefix, "k:%u", id % 10);
            if (tc_clear_prefix(x->c, prefix, (size_t)plen) != 0) atomic_fetch_add(x->bad, 1);
        }
    }
    free(val);
    free(out);
    return NULL;
}

static void hammer(tc_cache *c, unsigned big, int ops) {
    pthread_t th[THREADS];
    ctx x[THREADS];
    _Atomic long bad = 0, hits = 0;
    for (int i = 0; i < THREADS; i++) {
        x[i] = (ctx){c, (unsigned)(i * 7919 + 1), big, ops, &bad, &hits};
        pthread_create(&th[i], NULL, worker, &x[i]);
    }
    /* a reader of statistics alongside */
    for (int i = 0; i < 20; i++) {
        tc__snapshot st;
        assert_int_equal(snap_get(c, &st), 0);
        char *doc;
        assert_int_equal(tc_health_json(c, &doc), 0);
        tc_free(doc);
    }
    for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&bad), 0);
    assert_true(atomic_load(&hits) > 0);
}

static void test_stress_one_tier(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = 1000;
    o.mem_max_bytes = 200000;
    tc_cache *c;
    assert_int_equal(tc__open_opts(&o, &c, NULL, 0), 0);
    hammer(c, 0, OPS);
    tc__snapshot st;
    snap_get(c, &st);
    assert_true(st.tiers[0].entries <= 1000);
    assert_true(st.tiers[0].bytes <= 200000);
    assert_true(st.tiers[0].evictions > 0);
    tc_close(c);
}

static void test_stress_two_tiers(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = 300;
    char err[256];
    tc__tier *a, *b;
    assert_int_equal(tc__l1_open(&o, &a, err, sizeof err), 0);
    o.mem_max_entries = 2000;
    o.mem_eviction = TC_POLICY_ALLKEYS_LRU;
    assert_int_equal(tc__l1_open(&o, &b, err, sizeof err), 0);
    b->id = TC_TIER_L2;
    tc__tier *tiers[2] = {a, b};
    tc_cache *c;
    assert_int_equal(tc__open_tiers(&o, tiers, 2, &c, err, sizeof err), 0);
    hammer(c, 0, OPS);
    tc__snapshot st;
    snap_get(c, &st);
    assert_true(st.tiers[0].entries <= 300);
    assert_true(st.tiers[1].entries <= 2000);
    assert_true(st.tiers[1].hits > 0); /* back-fills happened under contention */
    tc_close(c);
}

/* Values up to 100 KB in shards of 128 KiB: every set of one stores it (0), whatever the others
 * do meanwhile; the tier stays within its bounds. */
static void test_stress_large_values_across_shards(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = 2000;
    o.mem_max_bytes = 1 << 20;
    o.mem_shards = 8;
    tc_cache *c;
    assert_int_equal(tc__open_opts(&o, &c, NULL, 0), 0);
    hammer(c, BIG_MAX, OPS / 5); /* a large value costs a mapping: fewer operations */
    tc__snapshot st;
    snap_get(c, &st);
    assert_true(st.tiers[0].entries <= 2000);
    assert_true(st.tiers[0].bytes <= 1 << 20);
    assert_true(st.tiers[0].evictions > 0);
    tc_close(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stress_one_tier),
        cmocka_unit_test(test_stress_two_tiers),
        cmocka_unit_test(test_stress_large_values_across_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
