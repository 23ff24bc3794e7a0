/*
 * test_cache_mget.c -- tc_mget / tc_mset in the orchestrator, over tiers without multi-key
 * ops (so the per-key fallback is what runs): L1 over an L1 presented as L2, wrapped in the
 * fault-injecting tier. Back-fill with the remaining TTL, failing tiers skipped per key,
 * partial writes, bad keys and values per entry. (The tier mget/mset path over Redis is in
 * test_l3_cache.c.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/faulty_tier.h"
#include "tier.h"
#include "util.h"
#include "helpers/snapshot.h"

typedef struct two {
    tc_cache *c;
    faulty_tier *up, *down;
} two;

static two open_two(void) {
    tc__opts o;
    tc__opts_init(&o);
    o.mem_default_ttl_ms = 60000;
    o.mem_shards = 1;
    o.max_key_bytes = 64;
    o.max_value_bytes = 1024;
    two t;
    t.c = faulty_pair(&o, &t.up, &t.down);
    assert_non_null(t.c);
    return t;
}

static void put_lower(two *t, const char *k, const char *v, int64_t ttl) {
    tc__tier *d = &t->down->base;
    assert_int_equal(d->ops->set(d, &TC__KEY(k, strlen(k)), v, strlen(v), ttl, NULL), 0);
}

static void test_mget_backfills_per_key(void **state) {
    (void)state;
    two t = open_two();
    put_lower(&t, "a", "alpha", 5000);
    put_lower(&t, "b", "", TC_TTL_NONE);
    assert_int_equal(tc_set(t.c, "c", 1, "gamma", 5, 0), 0); /* both tiers */
    const void *keys[4] = {"a", "b", "c", "zz"};
    size_t kl[4] = {1, 1, 1, 2};
    tc_mget_result r[4];
    assert_int_equal(tc_mget(t.c, 4, keys, kl, r, sizeof(tc_mget_result)), 0);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[0].len, 5);
    assert_memory_equal(r[0].val, "alpha", 5);
    assert_int_equal(r[0].tier, TC_TIER_L2);
    assert_true(r[0].ttl_ms > 4000 && r[0].ttl_ms <= 5000);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[1].len, 0);
    assert_non_null(r[1].val);
    assert_int_equal(r[1].ttl_ms, TC_TTL_NONE);
    assert_int_equal(r[2].rc, 0);
    assert_int_equal(r[2].tier, TC_TIER_L1);
    assert_int_equal(r[3].rc, TC_EMISS);
    assert_null(r[3].val);
    for (int i = 0; i < 4; i++) tc_free(r[i].val);
    /* back-filled: now from L1, with the remaining TTL (not L1's 60 s default) */
    assert_int_equal(tc_mget(t.c, 4, keys, kl, r, sizeof(tc_mget_result)), 0);
    assert_int_equal(r[0].tier, TC_TIER_L1);
    assert_true(r[0].ttl_ms > 4000 && r[0].ttl_ms <= 5000);
    /* no expiry below: back-filled with the upper tier's default */
    assert_int_equal(r[1].tier, TC_TIER_L1);
    assert_true(r[1].ttl_ms > 50000 && r[1].ttl_ms <= 60000);
    for (int i = 0; i < 4; i++) tc_free(r[i].val);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_int_equal(st.st.hits, 6);
    assert_int_equal(st.st.misses, 2);
    tc_close(t.c);
}

static void test_mget_skips_failing_tier(void **state) {
    (void)state;
    two t = open_two();
    put_lower(&t, "low", "v", 5000);
    assert_int_equal(tc_set(t.c, "both", 4, "w", 1, 0), 0);
    t.down->fail_get = TC_ECONN;
    const void *keys[3] = {"low", "both", "none"};
    size_t kl[3] = {3, 4, 4};
    tc_mget_result r[3];
    assert_int_equal(tc_mget(t.c, 3, keys, kl, r, sizeof(tc_mget_result)), 0);
    assert_int_equal(r[0].rc, TC_EMISS); /* only in the failing tier */
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[2].rc, TC_EMISS);
    tc_free(r[1].val);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_int_equal(st.tiers[1].errors, 2); /* "low" and "none" were asked of the lower tier */
    /* the upper tier failing: the lower one still answers */
    t.down->fail_get = 0;
    t.up->fail_get = TC_EIO;
    assert_int_equal(tc_mget(t.c, 3, keys, kl, r, sizeof(tc_mget_result)), 0);
    assert_int_equal(r[0].rc, 0);
    assert_int_equal(r[0].tier, TC_TIER_L2);
    assert_int_equal(r[1].rc, 0);
    assert_int_equal(r[1].tier, TC_TIER_L2);
    tc_free(r[0].val);
    tc_free(r[1].val);
    tc_close(t.c);
}

static void test_mget_bad_keys(void **state) {
    (void)state;
    two t = open_two();
    char big[100];
    memset(big, 'k', sizeof big);
    const void *keys[3] = {big, NULL, "ok"};
    size_t kl[3] = {sizeof big, 3, 2};
    tc_mget_result r[3];
    assert_int_equal(tc_mget(t.c, 3, keys, kl, r, sizeof(tc_mget_result)), 0);
    assert_int_equal(r[0].rc, TC_EKEYTOOBIG);
    assert_int_equal(r[1].rc, TC_EINVAL);
    assert_int_equal(r[2].rc, TC_EMISS);
    assert_int_equal(tc_mget(NULL, 1, keys, kl, r, sizeof(tc_mget_result)), TC_EINVAL);
    assert_int_equal(tc_mget(t.c, 1, keys, NULL, r, sizeof(tc_mget_result)), TC_EINVAL);
    assert_int_equal(tc_mget(t.c, 1, keys, kl, NULL, sizeof(tc_mget_result)), TC_EINVAL);
    tc_close(t.c);
}

static void test_mset(void **state) {
    (void)state;
    two t = open_two();
    char bigv[2000];
    memset(bigv, 'v', sizeof bigv);
    tc_mset_item items[4] = {
        {"k1", 2, "one", 3, 3000},
        {"k2", 2, "two", 3, 0},
        {"k3", 2, bigv, sizeof bigv, 0},
        {"k4", 2, NULL, 5, 0},
    };
    int rcs[4];
    assert_int_equal(tc_mset(t.c, 4, items, sizeof(tc_mset_item), rcs), TC_EPARTIAL);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(rcs[2], TC_EVALTOOBIG);
    assert_int_equal(rcs[3], TC_EINVAL);
    int64_t ttl;
    assert_int_equal(tc_ttl(t.c, "k1", 2, &ttl), 0);
    assert_true(ttl > 2000 && ttl <= 3000);
    assert_int_equal(tc_mset(t.c, 2, items, sizeof(tc_mset_item), rcs), 0);
    /* the lower tier fails: partial per entry, and it holds no stale copy */
    int dels = t.down->dels;
    t.down->fail_set = TC_ECONN;
    tc_mset_item upd = {"k1", 2, "uno", 3, 0};
    assert_int_equal(tc_mset(t.c, 1, &upd, sizeof(tc_mset_item), rcs), TC_EPARTIAL);
    assert_int_equal(rcs[0], TC_EPARTIAL);
    assert_true(t.down->dels > dels);
    t.up->fail_set = TC_ECONN;
    assert_int_equal(tc_mset(t.c, 1, &upd, sizeof(tc_mset_item), rcs), TC_EPARTIAL);
    assert_int_equal(rcs[0], TC_ETIER);
    assert_int_equal(tc_mset(t.c, 1, NULL, sizeof(tc_mset_item), rcs), TC_EINVAL);
    assert_int_equal(tc_mset(NULL, 1, &upd, sizeof(tc_mset_item), rcs), TC_EINVAL);
    tc_close(t.c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mget_backfills_per_key),
        cmocka_unit_test(test_mget_skips_failing_tier),
        cmocka_unit_test(test_mget_bad_keys),
        cmocka_unit_test(test_mset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
