/*
 * test_l2_policies.c -- the eight Redis eviction policies of the L2 tier.
 *
 * Eviction samples (as Redis does), so the tests assert what must hold: noeviction fails
 * with TC_EFULL; volatile-* never evict a key without a TTL and fail with TC_EFULL when no
 * key has one; allkeys-lru/lfu keep the few keys that are used with overwhelming probability
 * (each eviction would have to sample only hot keys: below 1e-6 here); volatile-ttl evicts
 * keys that expire soon far more than others; random evicts new and old keys alike. Every
 * cache here has one shard (small limits), so the limits are exact.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <time.h>

#include "l2_util.h"

#define CAP 400

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tc__tier *open_policy(char *name, size_t nl, const char *tag, tc_policy p) {
    l2t_name(name, nl, tag);
    tc__opts o;
    l2t_opts(&o, name, CAP, 120 << 10, p);
    tc__tier *t = NULL;
    char err[512];
    int rc = tc__l2_open(&o, &t, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    return t;
}

static int has(tc__tier *t, uint64_t id) {
    char k[32], buf[64];
    size_t len;
    int rc = l2t_get(t, k, l2t_key(k, sizeof k, id), buf, sizeof buf, &len, NULL);
    assert_true(rc == 0 || rc == TC_EMISS);
    return rc == 0;
}

static int put(tc__tier *t, uint64_t id, int64_t ttl) {
    char k[32];
    return t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), "value-bytes", 11, ttl, NULL);
}

static void stats(tc__tier *t, tc_tier_stats *st) {
    memset(st, 0, sizeof *st);
    t->ops->stats(t, st);
}

static void finish(tc__tier *t, const char *name) {
    char rep[2048];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc) fprintf(stderr, "%s", rep);
    assert_int_equal(rc, 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_one_shard(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "shards", TC_POLICY_ALLKEYS_LRU);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    for (int i = 0; i < st.nextra; i++)
        if (strcmp(st.extra[i].name, "shards") == 0) assert_string_equal(st.extra[i].value, "1");
    finish(t, name);
}

static void test_noeviction(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "noev", TC_POLICY_NOEVICTION);
    for (uint64_t i = 0; i < CAP; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    assert_int_equal(put(t, CAP, TC_TTL_NONE), TC_EFULL);
    assert_int_equal(put(t, CAP + 1, 60000), TC_EFULL);
    /* Replacing an existing key does not need room for a new entry. */
    assert_int_equal(put(t, 7, TC_TTL_NONE), 0);
    for (uint64_t i = 0; i < CAP; i++) assert_true(has(t, i));
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.entries, CAP);
    /* After a delete there is room again. */
    char k[32];
    assert_int_equal(t->ops->del(t, &TC__KEY(k, l2t_key(k, sizeof k, 3))), 0);
    assert_int_equal(put(t, CAP, TC_TTL_NONE), 0);
    finish(t, name);
}

/* The byte limit binds too: with big values, noeviction is full before the entry limit. */
static void test_noeviction_bytes(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "noevb", TC_POLICY_NOEVICTION);
    uint8_t v[4000];
    memset(v, 'v', sizeof v);
    char k[32];
    uint64_t i = 0;
    int rc;
    while ((rc = t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, i)), v, sizeof v, TC_TTL_NONE, NULL)) == 0) i++;
    assert_int_equal(rc, TC_EFULL);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    assert_true(st.entries < CAP);
    assert_true(st.bytes <= (120 << 10));
    assert_true(st.bytes + tc__l2_blk_size(strlen(k), sizeof v) > (120 << 10));
    finish(t, name);
}

/* Fill, let time pass, touch a few keys, insert more: the touched keys stay. */
static void hot_keys_survive(tc_policy p, const char *tag, int touches) {
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, tag, p);
    for (uint64_t i = 0; i < CAP; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    sleep_ms(30);
    for (int r = 0; r < touches; r++)
        for (uint64_t h = 0; h < 5; h++) assert_true(has(t, h * 61));
    sleep_ms(10);
    for (uint64_t i = CAP; i < CAP + 40; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    for (uint64_t h = 0; h < 5; h++) assert_true(has(t, h * 61));
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    assert_int_equal(st.entries, CAP);
    assert_int_equal(st.evictions, 40);
    finish(t, name);
}

static void test_allkeys_lru(void **state) {
    (void)state;
    hot_keys_survive(TC_POLICY_ALLKEYS_LRU, "lru", 1);
}

static void test_allkeys_lfu(void **state) {
    (void)state;
    hot_keys_survive(TC_POLICY_ALLKEYS_LFU, "lfu", 200);
}

/* LRU evicts the entries idle longest: after touching all but the oldest 40 keys, the 40
 * evictions fall mostly on those: an eviction takes a busy key only when none of its 8
 * samples is idle (probability 0.1 to 0.25 as the idle keys go). */
static void test_lru_prefers_idle(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "lruidle", TC_POLICY_ALLKEYS_LRU);
    for (uint64_t i = 0; i < CAP; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    sleep_ms(20);
    for (uint64_t i = 100; i < CAP; i++) assert_true(has(t, i));
    sleep_ms(10);
    for (uint64_t i = CAP; i < CAP + 40; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    int idle_gone = 0, busy_gone = 0;
    for (uint64_t i = 0; i < CAP; i++) {
        if (has(t, i)) continue;
        if (i < 100) idle_gone++;
        else busy_gone++;
    }
    assert_int_equal(idle_gone + busy_gone, 40);
    assert_true(idle_gone >= 24); /* expected about 33; random eviction would give 10 */
    finish(t, name);
}

static void test_allkeys_random(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "rand", TC_POLICY_ALLKEYS_RANDOM);
    for (uint64_t i = 0; i < 2 * CAP; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    int old_left = 0, new_left = 0;
    for (uint64_t i = 0; i < 2 * CAP; i++)
        if (has(t, i)) {
            if (i < CAP) old_left++;
            else new_left++;
        }
    assert_int_equal(old_left + new_left, CAP);
    /* Expected about 37% of the first keys and 63% of the later ones. */
    assert_true(old_left > CAP / 10);
    assert_true(new_left < CAP - CAP / 10);
    finish(t, name);
}

/* volatile-*: keys without a TTL are never evicted; when only such keys are left, a set of a
 * new key fails with TC_EFULL. */
static void volatile_keeps_persistent(tc_policy p, const char *tag) {
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, tag, p);
    for (uint64_t i = 0; i < CAP; i++)
        assert_int_equal(put(t, i, i % 4 == 0 ? 3600000 : TC_TTL_NONE), 0);
    /* 100 keys have a TTL: 100 new persistent keys evict exactly those. */
    for (uint64_t i = CAP; i < CAP + 100; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    for (uint64_t i = 0; i < CAP + 100; i++)
        if (i >= CAP || i % 4 != 0) assert_true(has(t, i));
    assert_int_equal(put(t, CAP + 100, TC_TTL_NONE), TC_EFULL);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    assert_int_equal(st.evictions, 100);
    assert_int_equal(st.entries, CAP);
    finish(t, name);
}

static void test_volatile_lru(void **state) {
    (void)state;
    volatile_keeps_persistent(TC_POLICY_VOLATILE_LRU, "vlru");
}
static void test_volatile_lfu(void **state) {
    (void)state;
    volatile_keeps_persistent(TC_POLICY_VOLATILE_LFU, "vlfu");
}
static void test_volatile_random(void **state) {
    (void)state;
    volatile_keeps_persistent(TC_POLICY_VOLATILE_RANDOM, "vrand");
}
static void test_volatile_ttl(void **state) {
    (void)state;
    volatile_keeps_persistent(TC_POLICY_VOLATILE_TTL, "vttl");
}

/* volatile-ttl evicts the keys that expire soonest: TTL rank i expires after 1h + i s; 20
 * evictions among 200 ranked keys take low ranks (best of 8 samples each). */
static void test_volatile_ttl_soonest(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "vttl2", TC_POLICY_VOLATILE_TTL);
    for (uint64_t i = 0; i < CAP; i++)
        assert_int_equal(put(t, i, i < 200 ? (int64_t)(3600000 + i * 1000) : TC_TTL_NONE), 0);
    for (uint64_t i = CAP; i < CAP + 20; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    uint64_t rank_sum = 0;
    int gone = 0;
    for (uint64_t i = 0; i < CAP; i++)
        if (!has(t, i)) {
            assert_true(i < 200);
            rank_sum += i;
            gone++;
        }
    assert_int_equal(gone, 20);
    assert_true(rank_sum / 20 < 60); /* random choice would give about 100 */
    finish(t, name);
}

/* An expired entry met while sampling is removed instead of evicting a live one (counted as
 * an expiration): an eviction falls on a live entry only when its 8 samples are all live
 * (1/256 while half the entries are expired, 1/10 when a quarter are). */
static void test_expired_before_evicted(void **state) {
    (void)state;
    char name[64];
    tc__tier *t = open_policy(name, sizeof name, "expfirst", TC_POLICY_ALLKEYS_LRU);
    for (uint64_t i = 0; i < CAP; i++) assert_int_equal(put(t, i, i % 2 ? 20 : TC_TTL_NONE), 0);
    sleep_ms(40);
    for (uint64_t i = CAP; i < CAP + 100; i++) assert_int_equal(put(t, i, TC_TTL_NONE), 0);
    int live_left = 0;
    for (uint64_t i = 0; i < CAP; i += 2) live_left += has(t, i);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    stats(t, &st);
    assert_true(st.expirations + st.evictions >= 100);
    assert_true(st.evictions <= 12); /* expected about 4 */
    assert_true(live_left >= 188);
    finish(t, name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_shard),
        cmocka_unit_test(test_noeviction),
        cmocka_unit_test(test_noeviction_bytes),
        cmocka_unit_test(test_allkeys_lru),
        cmocka_unit_test(test_allkeys_lfu),
        cmocka_unit_test(test_lru_prefers_idle),
        cmocka_unit_test(test_allkeys_random),
        cmocka_unit_test(test_volatile_lru),
        cmocka_unit_test(test_volatile_lfu),
        cmocka_unit_test(test_volatile_random),
        cmocka_unit_test(test_volatile_ttl),
        cmocka_unit_test(test_volatile_ttl_soonest),
        cmocka_unit_test(test_expired_before_evicted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
