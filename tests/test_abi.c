/*
 * test_abi.c -- the stability scheme of the public structs (include/tiercache.h, "Stability"):
 * an application built against an older, smaller layout keeps working with this library.
 *
 * Every struct the caller sizes (tc_get_info, tc_stats, tc_tier_stats) and every array passed
 * with its element size (tc_mget_result, tc_mset_item) is placed so that it ends exactly at a
 * PROT_NONE guard page, with each size an older layout could have had (from the size field
 * alone up to today's), and passed to every function that takes it. A write or a read past
 * the caller's layout faults, so the test cannot pass by luck; bytes before it are checked
 * against a canary. The fields the smaller layout does have must hold what a full-size call
 * returns.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tiercache.h"

/* Two pages: the first holds the object at its end, the second is PROT_NONE. */
typedef struct guarded {
    unsigned char *base;
    size_t page;
} guarded;

static guarded guard_new(void) {
    guarded g;
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    g.base = mmap(NULL, 2 * g.page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g.base != MAP_FAILED);
    assert_int_equal(mprotect(g.base + g.page, g.page, PROT_NONE), 0);
    return g;
}

/* An object of n bytes ending at the guard page; the bytes before it are set to a canary. */
static void *guard_place(guarded *g, size_t n) {
    assert_true(n <= g->page);
    memset(g->base, 0xC5, g->page);
    return g->base + g->page - n;
}

/* The canary before an object of n bytes is intact. */
static void guard_check(const guarded *g, size_t n) {
    for (size_t i = 0; i < g->page - n; i++)
        if (g->base[i] != 0xC5) fail_msg("byte %zu before an object of %zu bytes was written", g->page - n - i, n);
}

static void guard_free(guarded *g) { munmap(g->base, 2 * g->page); }

/* Sizes an older layout of a struct of full bytes could have: every multiple of its alignment
 * (8: it holds 64-bit fields) from the size field itself up to full. */
#define FOR_OLDER_SIZES(var, full) for (size_t var = sizeof(size_t); var <= (full); var += 8)

static tc_cache *open_l1(void) {
    tc_cache *c = NULL;
    char err[TC_ERRBUF_SIZE];
    tc_config *cfg;
    assert_int_equal(tc_config_new(&cfg), 0);
    assert_int_equal(tc_open(cfg, &c, err, sizeof err), 0);
    tc_config_free(cfg);
    return c;
}

static int loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl_ms) {
    (void)ud, (void)key, (void)klen;
    *val = malloc(3);
    memcpy(*val, "new", 3);
    *vlen = 3;
    *ttl_ms = 30000;
    return 0;
}

/* tc_get, tc_get_alloc, tc_get_or_load with every older tc_get_info. */
static void test_get_info_older_layouts(void **state) {
    (void)state;
    tc_cache *c = open_l1();
    assert_int_equal(tc_set(c, "k", 1, "value", 5, 60000), 0);
    guarded g = guard_new();
    FOR_OLDER_SIZES(n, sizeof(tc_get_info)) {
        for (int fn = 0; fn < 3; fn++) {
            tc_get_info *info = guard_place(&g, n);
            memset(info, 0xEE, n);
            info->size = n;
            char buf[16];
            size_t len = sizeof buf;
            void *val = NULL;
            int rc;
            if (fn == 0) rc = tc_get(c, "k", 1, buf, &len, info);
            else if (fn == 1) rc = tc_get_alloc(c, "k", 1, &val, &len, info);
            else {
                char key[32];
                snprintf(key, sizeof key, "load-%zu", n);
                rc = tc_get_or_load(c, key, strlen(key), 0, loader, NULL, &val, &len, info, NULL);
            }
            assert_int_equal(rc, 0);
            tc_free(val);
            guard_check(&g, n);
            assert_int_equal(info->size, n); /* never rewritten */
            if (n >= offsetof(tc_get_info, ttl_ms) + sizeof info->ttl_ms)
                assert_true(info->ttl_ms > 25000 && info->ttl_ms <= 60000);
            if (n >= offsetof(tc_get_info, tier) + sizeof info->tier)
                assert_int_equal(info->tier, fn == 2 ? TC_TIER_NONE : TC_TIER_L1);
        }
    }
    /* a size that cannot be trusted is refused, and nothing is written */
    tc_get_info *bad = guard_place(&g, sizeof(tc_get_info));
    memset(bad, 0, sizeof *bad);
    char buf[16];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(c, "k", 1, buf, &len, bad), TC_EINVAL);
    guard_free(&g);
    tc_close(c);
}

/* tc_stats_get with every older tc_stats. */
static void test_stats_older_layouts(void **state) {
    (void)state;
    tc_cache *c = open_l1();
    char buf[8];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(c, "nope", 4, buf, &len, NULL), TC_EMISS);
    tc_stats full = TC_STATS_INIT;
    assert_int_equal(tc_stats_get(c, &full), 0);
    guarded g = guard_new();
    FOR_OLDER_SIZES(n, sizeof(tc_stats)) {
        tc_stats *st = guard_place(&g, n);
        memset(st, 0xEE, n);
        st->size = n;
        assert_int_equal(tc_stats_get(c, st), 0);
        guard_check(&g, n);
        assert_int_equal(st->size, n);
        if (n >= offsetof(tc_stats, misses) + sizeof st->misses) assert_int_equal(st->misses, full.misses);
        if (n >= offsetof(tc_stats, ntiers) + sizeof st->ntiers) assert_int_equal(st->ntiers, 1);
    }
    guard_free(&g);
    tc_close(c);
}

/* tc_tier_stats_get and tc_shared_stats with every older tc_tier_stats. */
static void test_tier_stats_older_layouts(void **state) {
    (void)state;
    tc_cache *c = open_l1();
    assert_int_equal(tc_set(c, "a", 1, "b", 1, 0), 0);
    char name[64], err[TC_ERRBUF_SIZE];
    snprintf(name, sizeof name, "test-abi-%d", (int)getpid());
    tc_config *cfg;
    tc_cache *c2;
    assert_int_equal(tc_config_new(&cfg), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_TIERING", "L2", err, sizeof err), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_SHARED_NAME", name, err, sizeof err), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_SHARED_MAX_ENTRIES", "1000", err, sizeof err), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_SHARED_MAX_BYTES", "4MiB", err, sizeof err), 0);
    assert_int_equal(tc_open(cfg, &c2, err, sizeof err), 0);
    tc_config_free(cfg);
    assert_int_equal(tc_set(c2, "x", 1, "y", 1, 0), 0);
    guarded g = guard_new();
    FOR_OLDER_SIZES(n, sizeof(tc_tier_stats)) {
        for (int fn = 0; fn < 2; fn++) {
            tc_tier_stats *ts = guard_place(&g, n);
            memset(ts, 0xEE, n);
            ts->size = n;
            if (fn == 0) assert_int_equal(tc_tier_stats_get(c, 0, ts), 0);
            else assert_int_equal(tc_shared_stats(name, ts, err, sizeof err), 0);
            guard_check(&g, n);
            assert_int_equal(ts->size, n);
            if (n >= offsetof(tc_tier_stats, tier) + sizeof ts->tier)
                assert_int_equal(ts->tier, fn == 0 ? TC_TIER_L1 : TC_TIER_L2);
            if (n >= offsetof(tc_tier_stats, entries) + sizeof ts->entries) assert_int_equal(ts->entries, 1);
        }
    }
    tc_tier_stats *ts = guard_place(&g, sizeof *ts);
    ts->size = 0;
    assert_int_equal(tc_tier_stats_get(c, 0, ts), TC_EINVAL);
    ts->size = sizeof *ts;
    assert_int_equal(tc_tier_stats_get(c, 1, ts), TC_EINVAL); /* no such tier */
    guard_free(&g);
    tc_close(c2);
    assert_int_equal(tc_shared_destroy(name), 0);
    tc_close(c);
}

/* tc_mget with result arrays of every older element size (from rc alone up). */
static void test_mget_older_element_sizes(void **state) {
    (void)state;
    tc_cache *c = open_l1();
    assert_int_equal(tc_set(c, "k0", 2, "zero", 4, 0), 0);
    assert_int_equal(tc_set(c, "k2", 2, "two", 3, 0), 0);
    const void *keys[3] = {"k0", "k1", "k2"};
    size_t klens[3] = {2, 2, 2};
    guarded g = guard_new();
    for (size_t es = 8; es <= sizeof(tc_mget_result); es += 8) { /* from rc alone, 8-aligned */
        unsigned char *arr = guard_place(&g, 3 * es);
        memset(arr, 0xEE, 3 * es);
        assert_int_equal(tc_mget(c, 3, keys, klens, (tc_mget_result *)(void *)arr, es), 0);
        guard_check(&g, 3 * es);
        for (int i = 0; i < 3; i++) {
            tc_mget_result r;
            memset(&r, 0, sizeof r);
            memcpy(&r, arr + (size_t)i * es, es < sizeof r ? es : sizeof r);
            assert_int_equal(r.rc, i == 1 ? TC_EMISS : 0);
            int has_val = es >= offsetof(tc_mget_result, val) + sizeof(void *);
            if (has_val && i != 1) {
                if (es >= offsetof(tc_mget_result, len) + sizeof(size_t))
                    assert_memory_equal(r.val, i == 0 ? "zero" : "two", r.len);
                tc_free(r.val); /* the caller frees what its layout holds */
            }
        }
    }
    assert_int_equal(tc_mget(c, 3, keys, klens, (tc_mget_result *)(void *)g.base, sizeof(int) - 1), TC_EINVAL);
    guard_free(&g);
    tc_close(c);
}

/* tc_mset with item arrays of older element sizes: fields past the caller's layout read as 0
 * (an empty value, the tier's default TTL). */
static void test_mset_older_element_sizes(void **state) {
    (void)state;
    tc_cache *c = open_l1();
    guarded g = guard_new();
    size_t min = offsetof(tc_mset_item, klen) + sizeof(size_t);
    for (size_t es = min; es <= sizeof(tc_mset_item); es += 8) {
        unsigned char *arr = guard_place(&g, 2 * es);
        for (int i = 0; i < 2; i++) {
            tc_mset_item it = {i ? "m1" : "m0", 2, "val", 3, 0};
            memcpy(arr + (size_t)i * es, &it, es);
        }
        int rcs[2];
        assert_int_equal(tc_mset(c, 2, (const tc_mset_item *)(const void *)arr, es, rcs), 0);
        char buf[8];
        size_t len = sizeof buf;
        assert_int_equal(tc_get(c, "m1", 2, buf, &len, NULL), 0);
        int has_value = es >= offsetof(tc_mset_item, vlen) + sizeof(size_t);
        assert_int_equal(len, has_value ? 3 : 0);
        assert_int_equal(tc_del(c, "m1", 2), 0);
    }
    assert_int_equal(tc_mset(c, 1, (const tc_mset_item *)(const void *)g.base, min - 1, NULL), TC_EINVAL);
    guard_free(&g);
    tc_close(c);
}

/* The version at run time is the one compiled against (one library here). */
static void test_version(void **state) {
    (void)state;
    assert_int_equal(tc_version(), TC_VERSION_NUMBER);
    assert_true(TC_VERSION_NUMBER == TC_VERSION_MAJOR * 10000 + TC_VERSION_MINOR * 100 + TC_VERSION_PATCH);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_info_older_layouts),  cmocka_unit_test(test_stats_older_layouts),
        cmocka_unit_test(test_tier_stats_older_layouts), cmocka_unit_test(test_mget_older_element_sizes),
        cmocka_unit_test(test_mset_older_element_sizes), cmocka_unit_test(test_version),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
