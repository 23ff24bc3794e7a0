/*
 * test_l1.c -- the L1 memory tier through its internal interface: storage, TTLs, incremental
 * reclamation, every eviction policy, the entry and byte bounds, clear and clear-by-prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "coherence.h"
#include "l1_sketch.h"
#include "tier.h"
#include "util.h"

#define CHARGE(k, v) tc__l1_charge((k), (v)) /* the documented per-entry charge */

static tc__tier *open_l1(uint64_t entries, uint64_t bytes, tc_policy p, unsigned shards, uint64_t ttl_ms) {
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = entries;
    o.mem_max_bytes = bytes;
    o.mem_eviction = p;
    o.mem_shards = shards;
    o.mem_default_ttl_ms = ttl_ms;
    tc__tier *t = NULL;
    char err[256];
    int rc = tc__l1_open(&o, &t, err, sizeof err);
    if (rc != 0) fail_msg("tc__l1_open: %s", err);
    return t;
}

static int put(tc__tier *t, const char *k, const char *v, int64_t ttl) {
    return t->ops->set(t, &TC__KEY(k, strlen(k)), v, strlen(v), ttl, NULL);
}

/* 0 and the value in buf (NUL-terminated), or the get's code. */
static int fetch(tc__tier *t, const char *k, char *buf, size_t cap, int64_t *ttl) {
    tc__sink s = {buf, cap - 1, 0, NULL, 0, 0};
    int64_t tmp;
    int rc = t->ops->get(t, &TC__KEY(k, strlen(k)), &s, ttl ? ttl : &tmp);
    if (rc == 0) buf[s.len] = '\0';
    return rc;
}

static int present(tc__tier *t, const char *k) {
    int64_t ttl;
    return t->ops->get(t, &TC__KEY(k, strlen(k)), NULL, &ttl) == 0;
}

static tc_tier_stats stats(tc__tier *t) {
    tc_tier_stats st = TC_TIER_STATS_INIT;
    t->ops->stats(t, &st);
    return st;
}

/* A numeric extra of the tier's statistics (0 when absent). */
static uint64_t extra(const tc_tier_stats *st, const char *name) {
    for (int i = 0; i < st->nextra; i++)
        if (strcmp(st->extra[i].name, name) == 0) return strtoull(st->extra[i].value, NULL, 10);
    return 0;
}

/* The bytes charged for entries: the tier's bytes less its own structures. */
static uint64_t entry_bytes(tc__tier *t) {
    tc_tier_stats st = stats(t);
    assert_true(st.bytes >= extra(&st, "structure_bytes"));
    return st.bytes - extra(&st, "structure_bytes");
}

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_set_get_del_binary(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    const char key[] = {'a', 0, 'b'};
    const char val[] = {0, 1, 0, 2};
    assert_int_equal(t->ops->set(t, &TC__KEY(key, 3), val, 4, TC__TTL_DEFAULT, NULL), 0);
    char buf[8];
    tc__sink s = {buf, sizeof buf, 0, NULL, 0, 0};
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY(key, 3), &s, &ttl), 0);
    assert_int_equal(s.len, 4);
    assert_memory_equal(buf, val, 4);
    assert_int_equal(ttl, TC_TTL_NONE); /* default TTL 0: never expires */
    /* "a" (a prefix of the key up to the NUL) is another key */
    assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), NULL, &ttl), TC_EMISS);
    /* empty value is a value */
    assert_int_equal(t->ops->set(t, &TC__KEY("e", 1), "", 0, TC__TTL_DEFAULT, NULL), 0);
    s = (tc__sink){buf, sizeof buf, 0, NULL, 0, 0};
    assert_int_equal(t->ops->get(t, &TC__KEY("e", 1), &s, &ttl), 0);
    assert_int_equal(s.len, 0);
    assert_int_equal(t->ops->del(t, &TC__KEY(key, 3)), 0);
    assert_int_equal(t->ops->get(t, &TC__KEY(key, 3), NULL, &ttl), TC_EMISS);
    assert_int_equal(t->ops->del(t, &TC__KEY(key, 3)), 0); /* deleting a missing key is fine */
    t->ops->close(t);
}

static void test_overwrite_updates_value_ttl_and_bytes(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    assert_int_equal(put(t, "k", "short", 60000), 0);
    assert_int_equal(entry_bytes(t), CHARGE(1, 5));
    assert_int_equal(CHARGE(1, 5), 24);    /* 16+1+5 = 22 -> 24-byte chunk */
    assert_int_equal(CHARGE(16, 100), 136);
    assert_int_equal(CHARGE(16, 3000), 3040);   /* malloc: 8 bytes of header, 16-byte multiples */
    assert_int_equal(CHARGE(16, 100000), 102400); /* a mapping of its own: whole pages */
    assert_int_equal(put(t, "k", "a longer value", TC_TTL_NONE), 0);
    char buf[64];
    int64_t ttl;
    assert_int_equal(fetch(t, "k", buf, sizeof buf, &ttl), 0);
    assert_string_equal(buf, "a longer value");
    assert_int_equal(ttl, TC_TTL_NONE);
    tc_tier_stats st = stats(t);
    assert_int_equal(st.entries, 1);
    assert_int_equal(entry_bytes(t), CHARGE(1, 14));
    t->ops->close(t);
}

static void test_ttl_expiry_and_remaining(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    assert_int_equal(put(t, "short", "v", 150), 0);
    assert_int_equal(put(t, "long", "v", 60000), 0);
    char buf[16];
    int64_t ttl;
    assert_int_equal(fetch(t, "short", buf, sizeof buf, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 150);
    sleep_ms(60);
    assert_int_equal(fetch(t, "short", buf, sizeof buf, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 100); /* remaining, not the original */
    sleep_ms(150);
    assert_int_equal(fetch(t, "short", buf, sizeof buf, &ttl), TC_EMISS); /* never returned expired */
    assert_int_equal(fetch(t, "long", buf, sizeof buf, &ttl), 0);
    assert_true(ttl > 59000 && ttl <= 60000);
    assert_int_equal(stats(t).expirations, 1);
    t->ops->close(t);
}

static void test_default_ttl_applies(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 100);
    assert_int_equal(put(t, "k", "v", TC__TTL_DEFAULT), 0);
    char buf[8];
    int64_t ttl;
    assert_int_equal(fetch(t, "k", buf, sizeof buf, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 100);
    sleep_ms(150);
    assert_int_equal(fetch(t, "k", buf, sizeof buf, &ttl), TC_EMISS);
    t->ops->close(t);
}

/* Expired entries are reclaimed by the incremental sweep of later writes, without being read:
 * they give back memory and capacity. */
static void test_expired_entries_reclaimed_incrementally(void **state) {
    (void)state;
    tc__tier *t = open_l1(1000, 1 << 20, TC_POLICY_ALLKEYS_LRU, 1, 0);
    char k[32];
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "tmp:%d", i);
        assert_int_equal(put(t, k, "v", 50), 0);
    }
    assert_int_equal(stats(t).entries, 500);
    sleep_ms(1100); /* the sweep works in whole seconds: wait past the next second */
    for (int i = 0; i < 600; i++) {
        snprintf(k, sizeof k, "keep:%d", i % 20);
        assert_int_equal(put(t, k, "v", TC_TTL_NONE), 0);
    }
    tc_tier_stats st = stats(t);
    assert_int_equal(st.entries, 20);
    assert_int_equal(st.expirations, 500);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(entry_bytes(t), 10 * CHARGE(6, 1) + 10 * CHARGE(7, 1)); /* keep:0..9, keep:10..19 */
    t->ops->close(t);
}

static void test_entry_bound_and_exact_bytes(void **state) {
    (void)state;
    tc__tier *t = open_l1(64, 1 << 20, TC_POLICY_TINYLFU, 2, 0);
    char k[32], v[64];
    uint64_t expect_max = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        memset(v, 'x', (size_t)(i % 50));
        v[i % 50] = '\0';
        assert_int_equal(put(t, k, v, TC_TTL_NONE), 0);
        tc_tier_stats st = stats(t);
        assert_true(st.entries <= 64);
        expect_max = st.entries * CHARGE(strlen("key:4999"), 49);
        assert_true(st.bytes - extra(&st, "structure_bytes") <= expect_max);
    }
    /* bytes is exactly the sum of the charges of what is present, and the structures */
    uint64_t sum = 0, n = 0;
    char buf[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(k, sizeof k, "key:%d", i);
        tc__sink s = {buf, sizeof buf, 0, NULL, 0, 0};
        int64_t ttl;
        if (t->ops->get(t, &TC__KEY(k, strlen(k)), &s, &ttl) == 0) {
            sum += CHARGE(strlen(k), s.len);
            n++;
        }
    }
    tc_tier_stats st = stats(t);
    assert_int_equal(st.entries, n);
    assert_int_equal(entry_bytes(t), sum);
    t->ops->close(t);
}

static void test_byte_bound_holds(void **state) {
    (void)state;
    const uint64_t max_bytes = 20000;
    tc__tier *t = open_l1(100000, max_bytes, TC_POLICY_TINYLFU, 1, 0);
    char k[32], v[1000];
    memset(v, 'v', sizeof v - 1);
    v[sizeof v - 1] = '\0';
    for (int i = 0; i < 2000; i++) {
        snprintf(k, sizeof k, "big:%d", i);
        v[(i * 37) % 999] = '\0'; /* varying sizes */
        assert_int_equal(put(t, k, v, TC_TTL_NONE), 0);
        v[(i * 37) % 999] = 'v';
        tc_tier_stats st = stats(t);
        assert_true(st.bytes <= max_bytes);
    }
    assert_true(stats(t).evictions > 0);
    /* an entry larger than the whole tier can never be held */
    char huge[30000];
    memset(huge, 'h', sizeof huge);
    assert_int_equal(t->ops->set(t, &TC__KEY("huge", 4), huge, sizeof huge, TC_TTL_NONE, NULL), TC_ETOOLARGE);
    assert_false(present(t, "huge"));
    t->ops->close(t);
}

/* W-TinyLFU resists scans: a hot working set, read between bursts of one-shot keys five
 * times the capacity, stays cached; LRU loses it to every burst. */
static int scan_survivors(tc_policy p) {
    tc__tier *t = open_l1(200, 1 << 20, p, 1, 0);
    char k[32];
    int scan = 0;
    for (int round = 0; round < 30; round++) {
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "hot:%d", i);
            if (!present(t, k)) put(t, k, "v", TC_TTL_NONE);
        }
        for (int i = 0; i < 1000; i++, scan++) {
            snprintf(k, sizeof k, "scan:%d", scan);
            if (!present(t, k)) put(t, k, "v", TC_TTL_NONE);
        }
    }
    int kept = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "hot:%d", i);
        kept += present(t, k);
    }
    t->ops->close(t);
    return kept;
}

static void test_tinylfu_scan_resistance(void **state) {
    (void)state;
    assert_true(scan_survivors(TC_POLICY_TINYLFU) >= 95);
    assert_true(scan_survivors(TC_POLICY_ALLKEYS_LRU) <= 20); /* the contrast that makes it a test */
}

/* LRU: keys touched after the fill survive new inserts (sampled, so "almost all"). */
static void test_allkeys_lru_keeps_recent(void **state) {
    (void)state;
    tc__tier *t = open_l1(1000, 1 << 22, TC_POLICY_ALLKEYS_LRU, 1, 0);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        assert_true(present(t, k));
    }
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "new:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    int kept = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        kept += present(t, k);
    }
    assert_true(kept >= 97); /* a random policy would lose about 10 */
    assert_int_equal(stats(t).entries, 1000);
    assert_int_equal(stats(t).evictions, 100);
    t->ops->close(t);
}

/* LFU: keys read many times survive; keys read once go first. */
static void test_allkeys_lfu_keeps_frequent(void **state) {
    (void)state;
    tc__tier *t = open_l1(1000, 1 << 22, TC_POLICY_ALLKEYS_LFU, 1, 0);
    char k[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    for (int r = 0; r < 60; r++)
        for (int i = 0; i < 100; i++) {
            snprintf(k, sizeof k, "k:%d", i);
            present(t, k);
        }
    for (int i = 900; i < 1000; i++) { /* recent, but read only once */
        snprintf(k, sizeof k, "k:%d", i);
        present(t, k);
    }
    for (int i = 0; i < 200; i++) {
        snprintf(k, sizeof k, "new:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    int kept = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        kept += present(t, k);
    }
    assert_true(kept >= 97);
    t->ops->close(t);
}

/* Random: evicts without regard to use -- some hot keys go, unlike LRU/LFU. */
static void test_allkeys_random_ignores_use(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 22, TC_POLICY_ALLKEYS_RANDOM, 1, 0);
    char k[32];
    for (int i = 0; i < 100; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < 50; j++) {
            snprintf(k, sizeof k, "k:%d", j);
            present(t, k);
        }
        snprintf(k, sizeof k, "new:%d", i);
        put(t, k, "v", TC_TTL_NONE);
    }
    int kept = 0;
    for (int j = 0; j < 50; j++) {
        snprintf(k, sizeof k, "k:%d", j);
        kept += present(t, k);
    }
    assert_true(kept < 50);
    assert_int_equal(stats(t).entries, 100);
    t->ops->close(t);
}

/* volatile-*: keys without a TTL are never evicted; when only they remain, a set fails with
 * TC_EFULL and stores nothing. */
static void volatile_policy_case(tc_policy p) {
    tc__tier *t = open_l1(100, 1 << 22, p, 1, 0);
    char k[32];
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof k, "perm:%d", i);
        assert_int_equal(put(t, k, "v", TC_TTL_NONE), 0);
    }
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "tmp:%d", i);
        assert_int_equal(put(t, k, "v", 600000), 0);
    }
    for (int i = 0; i < 60; i++) {
        snprintf(k, sizeof k, "perm:%d", i);
        assert_true(present(t, k));
    }
    assert_int_equal(stats(t).entries, 100);
    /* replace every volatile key with permanent ones, then the cache is full of them */
    for (int i = 0; i < 500; i++) {
        snprintf(k, sizeof k, "tmp:%d", i);
        t->ops->del(t, &TC__KEY(k, strlen(k)));
    }
    for (int i = 60; i < 100; i++) {
        snprintf(k, sizeof k, "perm:%d", i);
        assert_int_equal(put(t, k, "v", TC_TTL_NONE), 0);
    }
    assert_int_equal(put(t, "one-more", "v", TC_TTL_NONE), TC_EFULL);
    assert_false(present(t, "one-more"));
    assert_int_equal(stats(t).entries, 100);
    t->ops->close(t);
}

static void test_volatile_lru(void **state) { (void)state; volatile_policy_case(TC_POLICY_VOLATILE_LRU); }
static void test_volatile_lfu(void **state) { (void)state; volatile_policy_case(TC_POLICY_VOLATILE_LFU); }
static void test_volatile_random(void **state) { (void)state; volatile_policy_case(TC_POLICY_VOLATILE_RANDOM); }
static void test_volatile_ttl_no_ttl_kept(void **state) { (void)state; volatile_policy_case(TC_POLICY_VOLATILE_TTL); }

/* volatile-ttl evicts the keys closest to expiring first. */
static void test_volatile_ttl_evicts_soonest(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 22, TC_POLICY_VOLATILE_TTL, 1, 0);
    char k[32];
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "soon:%d", i);
        put(t, k, "v", 60000);
        snprintf(k, sizeof k, "late:%d", i);
        put(t, k, "v", 3600000);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(k, sizeof k, "new:%d", i);
        put(t, k, "v", 3600000);
    }
    int soon = 0, late = 0;
    for (int i = 0; i < 50; i++) {
        snprintf(k, sizeof k, "soon:%d", i);
        soon += present(t, k);
        snprintf(k, sizeof k, "late:%d", i);
        late += present(t, k);
    }
    /* An eviction takes a soon-to-expire key unless none of its 8 samples is one: with at least
     * 30 of 100 keys "soon", that is at most 0.7^8 = 5.8%; 6 or more such misses in 20 evictions
     * has binomial probability under 7e-4 (and far less, since most evictions see 40-50 soon keys).
     * A random policy would take about 10 of 20. */
    assert_true(50 - soon >= 15);
    assert_true(late >= 45);
    t->ops->close(t);
}

static void test_noeviction_refuses_when_full(void **state) {
    (void)state;
    tc__tier *t = open_l1(10, 1 << 20, TC_POLICY_NOEVICTION, 1, 0);
    char k[32];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        assert_int_equal(put(t, k, "v", TC_TTL_NONE), 0);
    }
    assert_int_equal(put(t, "k:10", "v", TC_TTL_NONE), TC_EFULL);
    assert_false(present(t, "k:10"));
    assert_int_equal(put(t, "k:3", "overwrite is fine", TC_TTL_NONE), 0);
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        assert_true(present(t, k));
    }
    t->ops->del(t, &TC__KEY("k:0", 3));
    assert_int_equal(put(t, "k:10", "v", TC_TTL_NONE), 0);
    assert_int_equal(stats(t).evictions, 0);
    t->ops->close(t);
}

/* noeviction still reclaims expired entries rather than refusing. */
static void test_noeviction_reclaims_expired(void **state) {
    (void)state;
    tc__tier *t = open_l1(10, 1 << 20, TC_POLICY_NOEVICTION, 1, 0);
    char k[32];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "k:%d", i);
        assert_int_equal(put(t, k, "v", 20), 0);
    }
    sleep_ms(1100);
    assert_int_equal(put(t, "fresh", "v", TC_TTL_NONE), 0);
    assert_true(present(t, "fresh"));
    t->ops->close(t);
}

static void test_clear_and_clear_prefix(void **state) {
    (void)state;
    tc__tier *t = open_l1(10000, 1 << 24, TC_POLICY_TINYLFU, 4, 0);
    char k[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "%s:%d", i % 3 == 0 ? "user" : i % 3 == 1 ? "users" : "order", i);
        assert_int_equal(put(t, k, "v", TC_TTL_NONE), 0);
    }
    const char bin_prefix[] = {'b', 0, 'x'};
    const char bin_key[] = {'b', 0, 'x', 'y'};
    const char other_key[] = {'b', 0, 'z'};
    t->ops->set(t, &TC__KEY(bin_key, 4), "v", 1, TC_TTL_NONE, NULL);
    t->ops->set(t, &TC__KEY(other_key, 3), "v", 1, TC_TTL_NONE, NULL);
    assert_int_equal(t->ops->clear_prefix(t, "user:", 5), 0);
    int user = 0, users = 0, order = 0;
    for (int i = 0; i < 3000; i++) {
        snprintf(k, sizeof k, "%s:%d", i % 3 == 0 ? "user" : i % 3 == 1 ? "users" : "order", i);
        int p = present(t, k);
        if (i % 3 == 0) user += p;
        else if (i % 3 == 1) users += p;
        else order += p;
    }
    assert_int_equal(user, 0);
    assert_int_equal(users, 1000);
    assert_int_equal(order, 1000);
    assert_int_equal(t->ops->clear_prefix(t, bin_prefix, 3), 0);
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY(bin_key, 4), NULL, &ttl), TC_EMISS);
    assert_int_equal(t->ops->get(t, &TC__KEY(other_key, 3), NULL, &ttl), 0);
    assert_int_equal(stats(t).entries, 2001);
    tc_tier_stats full = stats(t);
    assert_int_equal(t->ops->clear(t), 0);
    tc_tier_stats st = stats(t);
    assert_int_equal(st.entries, 0);
    assert_int_equal(entry_bytes(t), 0);
    /* the emptied tables shrank back */
    assert_true(extra(&st, "structure_bytes") < extra(&full, "structure_bytes"));
    assert_int_equal(put(t, "after", "v", TC_TTL_NONE), 0);
    assert_true(present(t, "after"));
    t->ops->close(t);
}

static void test_fence_blocks_stale_write(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    tc__coh *coh;
    assert_int_equal(tc__coh_open_private(&coh), 0);
    t->coh = coh;
    tc__key a = TC__KEY("a", 1), b = TC__KEY("b", 1);
    tc__fence f = {coh, a.hash, tc__coh_stamp(coh, a.hash), NULL};
    assert_int_equal(t->ops->set(t, &a, "v", 1, TC_TTL_NONE, &f), 0);
    assert_true(present(t, "a"));
    tc__fence g = {coh, b.hash, tc__coh_stamp(coh, b.hash), NULL};
    tc__coh_bump(coh, b.hash); /* a write of b between the read and the install */
    assert_int_equal(t->ops->set(t, &b, "v", 1, TC_TTL_NONE, &g), 0);
    assert_false(present(t, "b")); /* the stamp moved: the fill was dropped */
    t->ops->close(t);
    tc__coh_close(coh);
}

/* Issue 8, item 12: the expiry was kept shifted left by 16 bits, so a TTL of 2^48 ms was
 * stored and then missed, and 2^48 + 60000 ms became 60 s. Above TC_TTL_MAX_MS the tier
 * refuses the write and keeps what it had. */
static void test_ttl_beyond_range_is_refused(void **state) {
    (void)state;
    tc__tier *t = open_l1(100, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    const int64_t bad[] = {(int64_t)(1ull << 48), (int64_t)(1ull << 48) + 60000, (int64_t)TC_TTL_MAX_MS + 1,
                           INT64_MAX};
    char buf[16];
    int64_t ttl;
    assert_int_equal(put(t, "k", "old", 60000), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "new", 3, bad[i], NULL), TC_EINVAL);
        assert_int_equal(fetch(t, "k", buf, sizeof buf, &ttl), 0);
        assert_string_equal(buf, "old");
        assert_true(ttl <= 60000);
    }
    assert_int_equal(t->ops->set(t, &TC__KEY("max", 3), "v", 1, (int64_t)TC_TTL_MAX_MS, NULL), 0);
    assert_int_equal(fetch(t, "max", buf, sizeof buf, &ttl), 0);
    assert_true(ttl > (int64_t)TC_TTL_MAX_MS - 60000 && ttl <= (int64_t)TC_TTL_MAX_MS);
    t->ops->close(t);
}

/* The sketch moves with the table it belongs to: doubling keeps every estimate, any other
 * resize (a table that grew less, or shrank) may only raise one, as a count-min sketch may. */
static void test_sketch_resize_keeps_counts(void **state) {
    (void)state;
    static _Alignas(64) uint64_t a[4096], b[4096], c[4096], d[4096];
    tc__sketch s;
    tc__sketch_init(&s, 304, a); /* 114 blocks */
    unsigned want[500];
    for (uint32_t k = 0; k < 500; k++) {
        uint32_t h = k * 0x9E3779B1u;
        for (uint32_t n = 0; n < k % 17; n++) tc__sketch_incr(&s, h);
        want[k] = tc__sketch_freq(&s, h);
    }
    tc__sketch_resize(&s, 608, b); /* 228 blocks: each old one feeds two */
    for (uint32_t k = 0; k < 500; k++) assert_int_equal(tc__sketch_freq(&s, k * 0x9E3779B1u), want[k]);
    tc__sketch_resize(&s, 1000, c); /* 1.67 times */
    for (uint32_t k = 0; k < 500; k++) assert_true(tc__sketch_freq(&s, k * 0x9E3779B1u) >= want[k]);
    for (uint32_t k = 0; k < 500; k++) want[k] = tc__sketch_freq(&s, k * 0x9E3779B1u);
    tc__sketch_resize(&s, 100, d); /* shrunk */
    for (uint32_t k = 0; k < 500; k++) assert_true(tc__sketch_freq(&s, k * 0x9E3779B1u) >= want[k]);
    assert_true(tc__sketch_freq(&s, 16 * 0x9E3779B1u) >= 15);
}

static void test_open_rejects_bad_options(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = 0;
    /* the range is the configuration table's: checked when a cache opens, not again by L1 */
    tc_cache *c = (tc_cache *)1;
    char err[TC_ERRBUF_SIZE] = "";
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_null(c);
    assert_non_null(strstr(err, "CACHE_MEMORY_MAX_ENTRIES=\"0\": expected a positive integer"));
    /* a limit that cannot hold the tier's own structures, let alone an entry */
    tc__opts_init(&o);
    o.mem_max_bytes = 4096;
    tc__tier *t = (tc__tier *)1;
    assert_int_equal(tc__l1_open(&o, &t, err, sizeof err), TC_ECONFIG);
    assert_null(t);
    assert_non_null(strstr(err, "CACHE_MEMORY_MAX_BYTES=4096 is too small"));
}

/* With a coherence table, as the first tier (own_ok): this handle's own moves of the stripe
 * leave a copy current, and an install a fence refuses removes the key's old copy -- else,
 * after an own write of another key of the stripe, the old copy's stamp would still look
 * current while this write's value was refused (coherence.h, own moves). */
static void test_refused_install_removes_the_old_copy(void **state) {
    (void)state;
    tc__coh *coh = NULL;
    assert_int_equal(tc__coh_open_private(&coh), 0);
    tc__tier *t = open_l1(1000, 1 << 20, TC_POLICY_TINYLFU, 1, 0);
    t->coh = coh;
    t->own_ok = 1;
    const tc__key k = TC__KEY("k", 1);
    tc__fence f0 = {coh, k.hash, tc__coh_stamp(coh, k.hash), NULL};
    assert_int_equal(t->ops->set(t, &k, "v0", 2, 0, &f0), 0);
    char buf[8];
    assert_int_equal(fetch(t, "k", buf, sizeof buf, NULL), 0);
    assert_string_equal(buf, "v0");
    tc__coh_mark(coh, k.hash); /* this handle writes another key of the stripe */
    assert_int_equal(fetch(t, "k", buf, sizeof buf, NULL), 0); /* still current */
    /* this handle's write of k: its stripe moves; another thread's write of a stripe-mate moves
     * it again before the write's L1 install, which the fence then refuses */
    tc__stamp after = tc__coh_mark(coh, k.hash);
    tc__coh_mark(coh, k.hash);
    tc__fence f1 = {coh, k.hash, after, NULL};
    assert_int_equal(t->ops->set(t, &k, "v1", 2, 0, &f1), 0);
    assert_int_equal(fetch(t, "k", buf, sizeof buf, NULL), TC_EMISS); /* not v0 */
    /* an invalidation (another host) makes a copy stale whatever the own moves */
    tc__fence f2 = {coh, k.hash, tc__coh_stamp(coh, k.hash), NULL};
    assert_int_equal(t->ops->set(t, &k, "v2", 2, 0, &f2), 0);
    assert_int_equal(fetch(t, "k", buf, sizeof buf, NULL), 0);
    tc__coh_bump(coh, k.hash);
    assert_int_equal(fetch(t, "k", buf, sizeof buf, NULL), TC_EMISS);
    t->ops->close(t);
    tc__coh_close(coh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del_binary),
        cmocka_unit_test(test_overwrite_updates_value_ttl_and_bytes),
        cmocka_unit_test(test_ttl_expiry_and_remaining),
        cmocka_unit_test(test_default_ttl_applies),
        cmocka_unit_test(test_expired_entries_reclaimed_incrementally),
        cmocka_unit_test(test_entry_bound_and_exact_bytes),
        cmocka_unit_test(test_byte_bound_holds),
        cmocka_unit_test(test_tinylfu_scan_resistance),
        cmocka_unit_test(test_allkeys_lru_keeps_recent),
        cmocka_unit_test(test_allkeys_lfu_keeps_frequent),
        cmocka_unit_test(test_allkeys_random_ignores_use),
        cmocka_unit_test(test_volatile_lru),
        cmocka_unit_test(test_volatile_lfu),
        cmocka_unit_test(test_volatile_random),
        cmocka_unit_test(test_volatile_ttl_no_ttl_kept),
        cmocka_unit_test(test_volatile_ttl_evicts_soonest),
        cmocka_unit_test(test_noeviction_refuses_when_full),
        cmocka_unit_test(test_noeviction_reclaims_expired),
        cmocka_unit_test(test_clear_and_clear_prefix),
        cmocka_unit_test(test_fence_blocks_stale_write),
        cmocka_unit_test(test_ttl_beyond_range_is_refused),
        cmocka_unit_test(test_sketch_resize_keeps_counts),
        cmocka_unit_test(test_open_rejects_bad_options),
        cmocka_unit_test(test_refused_install_removes_the_old_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
