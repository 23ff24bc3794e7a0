/*
 * test_l1_window.c -- the W-TinyLFU admission window of L1 and the hill climber that sizes it:
 * the climber on its own (l1_climb.c, fed synthetic measurements), then the tier replaying a
 * trace that changes character part-way -- a loop a little larger than the cache (frequency
 * wins: a small window keeps a fixed part of the loop) followed by bursts of reuse of new keys
 * (recency wins: a large window keeps them while they are used) -- where the climbing window
 * must end each phase near the better of the fixed settings; and the reverse switch, bursts of
 * reuse then a loop a little larger than the cache, where the window must come back down.
 * Last, the window ring under deletes, overwrites and expiry at every window size, and a write
 * that must never be evicted by its own admission.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "l1_climb.h"
#include "tier.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* The climber on synthetic measurements                                    */
/* ------------------------------------------------------------------------ */

static uint64_t rng_state = 88172645463325252ull;
static double uniform(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
}

/* A landscape with its best window at best (a fraction): the statistic falls linearly away
 * from it, plus uniform noise of amplitude noise. */
static double landscape(uint32_t window, double best, double noise) {
    double w = (double)window / TC__CLIMB_ONE;
    return 1.0 - fabs(w - best) + noise * (uniform() - 0.5);
}

/* Runs periods of the climber over a landscape; returns the held window at the end. */
static uint32_t climb_on(tc__climb *c, tc__climb_plan *plan, int periods, double best, double noise) {
    for (int p = 0; p < periods; p++) {
        double x[TC__CLIMB_SUBSETS], var[TC__CLIMB_SUBSETS];
        for (unsigned k = 0; k < c->subsets; k++) {
            x[k] = landscape(plan->trial_mask >> k & 1 ? plan->trial : plan->base, best, noise);
            var[k] = noise * noise / 12; /* the uniform noise's */
        }
        tc__climb_period(c, x, var, plan);
        /* every period's plan is within range, and runs the held window outside its trial */
        assert_true(plan->base <= TC__CLIMB_ONE && plan->trial <= TC__CLIMB_ONE);
        assert_int_equal(plan->base, c->window);
    }
    return c->window;
}

static double frac(uint32_t w) { return (double)w / TC__CLIMB_ONE; }

static void climber_finds(unsigned subsets) {
    tc__climb c;
    tc__climb_plan plan;
    /* from 1% to a far optimum at 80% */
    tc__climb_init(&c, TC__CLIMB_START, TC__CLIMB_ONE / 64, subsets, &plan);
    uint32_t w = climb_on(&c, &plan, 120, 0.8, 0.02);
    assert_true(fabs(frac(w) - 0.8) < 0.1);
    /* a steady optimum at 1%: the window stays near it */
    tc__climb_init(&c, TC__CLIMB_START, TC__CLIMB_ONE / 64, subsets, &plan);
    w = climb_on(&c, &plan, 120, 0.01, 0.02);
    assert_true(frac(w) < 0.1);
    /* the workload changes: the optimum moves from 1% to 90% and the level drops */
    w = climb_on(&c, &plan, 120, 0.9, 0.02);
    assert_true(fabs(frac(w) - 0.9) < 0.1 || w == TC__CLIMB_MAX);
}

static void test_climber_reaches_far_optimum_pairs(void **state) {
    (void)state;
    climber_finds(8);
}

static void test_climber_reaches_far_optimum_one_shard(void **state) {
    (void)state;
    climber_finds(1);
}

/* Noise as large as the gain of a move does not walk the window away from a best window at
 * 1%: over 400 periods it stays below 10% on average, with pairs of subsets and with one shard. */
static void test_climber_holds_against_noise(void **state) {
    (void)state;
    for (unsigned subsets = 1; subsets <= 8; subsets *= 8) {
        tc__climb c;
        tc__climb_plan plan;
        tc__climb_init(&c, TC__CLIMB_START, TC__CLIMB_ONE / 64, subsets, &plan);
        double sum = 0;
        for (int p = 0; p < 400; p++) {
            climb_on(&c, &plan, 1, 0.01, 0.25); /* a move of 1/8 gains 0.125: within the noise */
            sum += frac(c.window);
        }
        print_message("subsets %u: mean window %.3f\n", subsets, sum / 400);
        assert_true(sum / 400 < 0.1);
    }
}

/* ------------------------------------------------------------------------ */
/* The tier on a trace that changes character                               */
/* ------------------------------------------------------------------------ */

#define CAP 2000
#define PHASE 200000

/* Two phases of PHASE requests. The loop: a loop over loop_keys keys (more than CAP: a small
 * window keeps a fixed part of it in main, a large one keeps nothing). The recency phase: with
 * probability 0.3 a new key, else one of the last 0.7 x CAP new keys, the newer the likelier.
 * reverse = 0: the loop first; 1: the recency phase first. */
static uint32_t *make_trace(int reverse, uint32_t loop_keys) {
    uint32_t *t = malloc(sizeof(uint32_t) * 2 * PHASE);
    assert_non_null(t);
    uint32_t loop0 = reverse ? PHASE : 0, rec0 = reverse ? 0 : PHASE;
    for (uint32_t i = 0; i < PHASE; i++) t[loop0 + i] = i % loop_keys;
    enum { M = CAP * 7 / 10 };
    static uint32_t recent[M];
    uint32_t n = 0, next = 0;
    for (uint32_t i = rec0; i < rec0 + PHASE; i++) {
        uint32_t k;
        if (n == 0 || uniform() < 0.3) {
            k = 1000000 + next++;
            recent[next % M] = k;
            if (n < M) n++;
        } else {
            uint32_t back = (uint32_t)(n * (1 - sqrt(uniform()))); /* 0: the newest */
            if (back >= n) back = n - 1;
            k = recent[(next - back) % M];
        }
        t[i] = k;
    }
    return t;
}

/* Hit ratios over the last quarter of each phase, replaying trace (get; set on a miss) into a
 * fresh L1 of CAP entries with shards shards and window (0: the climber). */
static void replay(const uint32_t *trace, unsigned shards, unsigned window, double out[2]) {
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = CAP;
    o.mem_max_bytes = 1 << 30;
    o.mem_default_ttl_ms = 0;
    o.mem_shards = shards;
    o.mem_window = window;
    tc__tier *t = NULL;
    char err[256];
    if (tc__l1_open(&o, &t, err, sizeof err) != 0) fail_msg("tc__l1_open: %s", err);
    uint64_t hits[2] = {0, 0};
    char key[32];
    for (uint32_t i = 0; i < 2 * PHASE; i++) {
        int n = snprintf(key, sizeof key, "key:%u", trace[i]);
        tc__key k = TC__KEY(key, (size_t)n);
        int64_t ttl;
        if (t->ops->get(t, &k, NULL, &ttl) == 0) {
            if (i % PHASE >= PHASE * 3 / 4) hits[i / PHASE]++;
        } else {
            assert_int_equal(t->ops->set(t, &k, "v", 1, TC_TTL_NONE, NULL), 0);
        }
    }
    t->ops->close(t);
    for (int p = 0; p < 2; p++) out[p] = (double)hits[p] / (PHASE / 4);
}

static void adapts_to_each_phase(unsigned shards) {
    uint32_t *trace = make_trace(0, CAP * 3 / 2);
    double small[2], large[2], climbed[2];
    replay(trace, shards, 1, small);
    replay(trace, shards, 100, large);
    replay(trace, shards, 0, climbed);
    print_message("shards %u: phase A (loop) small %.3f large %.3f climbed %.3f; phase B (recency) small %.3f "
                  "large %.3f climbed %.3f\n",
                  shards, small[0], large[0], climbed[0], small[1], large[1], climbed[1]);
    /* the trace is what it says: each phase has a clearly better fixed setting */
    assert_true(small[0] > large[0] + 0.3);
    assert_true(large[1] > small[1] + 0.3);
    /* the climbing window ends each phase near the better one */
    assert_true(climbed[0] > small[0] - 0.05);
    assert_true(climbed[1] > large[1] - 0.08);
    free(trace);
}

/* The reverse switch: the recency phase first (the window grows to its largest), then a loop
 * over a little more than the cache (CAP + CAP / 20 keys: a small window keeps nearly all of
 * it, and the shards that keep all of their part of it only hit, never write). The window must
 * come back down: the climbing window ends the loop near the small fixed window. */
static void adapts_back(unsigned shards) {
    uint32_t *trace = make_trace(1, CAP + CAP / 20);
    double small[2], large[2], climbed[2];
    replay(trace, shards, 1, small);
    replay(trace, shards, 100, large);
    replay(trace, shards, 0, climbed);
    print_message("shards %u: phase A (recency) small %.3f large %.3f climbed %.3f; phase B (loop) small %.3f "
                  "large %.3f climbed %.3f\n",
                  shards, small[0], large[0], climbed[0], small[1], large[1], climbed[1]);
    assert_true(large[0] > small[0] + 0.3);
    assert_true(small[1] > large[1] + 0.3);
    assert_true(climbed[0] > large[0] - 0.08);
    assert_true(climbed[1] > small[1] - 0.05);
    free(trace);
}

static void test_window_follows_frequency_then_recency_pairs(void **state) {
    (void)state;
    adapts_to_each_phase(8);
}

static void test_window_follows_frequency_then_recency_one_shard(void **state) {
    (void)state;
    adapts_to_each_phase(1);
}

static void test_window_follows_recency_then_loop_pairs(void **state) {
    (void)state;
    adapts_back(8);
}

static void test_window_follows_recency_then_loop_one_shard(void **state) {
    (void)state;
    adapts_back(1);
}

/* ------------------------------------------------------------------------ */
/* The window ring                                                          */
/* ------------------------------------------------------------------------ */

/* The bytes of the tier's own structures (shard headers, window rings, tables, sketches). */
static uint64_t structure_bytes(const tc_tier_stats *st) {
    for (int i = 0; i < st->nextra; i++)
        if (strcmp(st->extra[i].name, "structure_bytes") == 0) return strtoull(st->extra[i].value, NULL, 10);
    fail_msg("no structure_bytes in the statistics");
    return 0;
}

/* Random sets (new and overwriting, some with a 1 ms TTL), reads and deletes at every fixed
 * window size and under the climber: the entry bound holds, every key read back has the value
 * last written, a deleted key is gone, and clearing leaves nothing. Exercises the ring's holes,
 * compaction, growth and shrinking (a shard's ring follows its window). */
static void test_window_ring_keeps_entries_exact(void **state) {
    (void)state;
    static const unsigned windows[] = {0, 1, 10, 50, 100};
    enum { KEYS = 600, CAPN = 200 };
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
        tc__opts o;
        tc__opts_init(&o);
        o.mem_max_entries = CAPN;
        o.mem_max_bytes = 1 << 30;
        o.mem_default_ttl_ms = 0;
        o.mem_shards = 2;
        o.mem_window = windows[w];
        tc__tier *t = NULL;
        char err[256];
        if (tc__l1_open(&o, &t, err, sizeof err) != 0) fail_msg("tc__l1_open: %s", err);
        static unsigned version[KEYS]; /* 0: deleted or never written */
        memset(version, 0, sizeof version);
        char key[32], val[32], buf[64];
        for (int op = 0; op < 60000; op++) {
            unsigned id = (unsigned)(uniform() * KEYS) % KEYS;
            int kn = snprintf(key, sizeof key, "k%u", id);
            tc__key k = TC__KEY(key, (size_t)kn);
            double r = uniform();
            if (r < 0.45) {
                version[id] = (unsigned)op + 1;
                int vn = snprintf(val, sizeof val, "v%u", version[id]);
                int64_t ttl = uniform() < 0.1 ? 1 : TC_TTL_NONE;
                assert_int_equal(t->ops->set(t, &k, val, (size_t)vn, ttl, NULL), 0);
                if (ttl == 1) version[id] = 0; /* may expire at any time: not checked */
            } else if (r < 0.55) {
                assert_int_equal(t->ops->del(t, &k), 0);
                version[id] = 0;
            } else {
                tc__sink s = {buf, sizeof buf - 1, 0, NULL, 0, 0};
                int64_t ttl;
                int rc = t->ops->get(t, &k, &s, &ttl);
                if (rc == 0 && version[id] != 0) {
                    buf[s.len] = '\0';
                    snprintf(val, sizeof val, "v%u", version[id]);
                    assert_string_equal(buf, val);
                }
            }
            tc_tier_stats st = TC_TIER_STATS_INIT;
            t->ops->stats(t, &st);
            assert_true(st.entries <= CAPN);
        }
        assert_int_equal(t->ops->clear(t), 0);
        tc_tier_stats st = TC_TIER_STATS_INIT;
        t->ops->stats(t, &st);
        assert_int_equal(st.entries, 0);
        assert_int_equal(st.bytes, structure_bytes(&st)); /* nothing charged but the structures */
        t->ops->close(t);
    }
}

/* A write is never evicted by its own admission: with a window of one entry, an entry read
 * while in the window gets a second chance, which puts it behind the entry being written; the
 * written entry must not then become the window's candidate (it would lose the admission duel
 * on a tie of frequencies, and the set would store nothing). In each round the window's entry
 * is read, then a new key is written into a full cache: the new key must be there. */
static void test_window_write_never_evicts_itself(void **state) {
    (void)state;
    enum { CAPN = 100 };
    tc__opts o;
    tc__opts_init(&o);
    o.mem_max_entries = CAPN;
    o.mem_max_bytes = 1 << 30;
    o.mem_default_ttl_ms = 0;
    o.mem_shards = 1;
    o.mem_window = 1; /* 1% of 100: a window of one entry */
    tc__tier *t = NULL;
    char err[256];
    if (tc__l1_open(&o, &t, err, sizeof err) != 0) fail_msg("tc__l1_open: %s", err);
    char key[32];
    int64_t ttl;
    for (unsigned id = 0; id < 3 * CAPN; id++) {
        if (id > 0) { /* the previous write, now the window's entry, is read */
            int n = snprintf(key, sizeof key, "k%u", id - 1);
            tc__key k = TC__KEY(key, (size_t)n);
            assert_int_equal(t->ops->get(t, &k, NULL, &ttl), 0);
        }
        int n = snprintf(key, sizeof key, "k%u", id);
        tc__key k = TC__KEY(key, (size_t)n);
        assert_int_equal(t->ops->set(t, &k, "v", 1, TC_TTL_NONE, NULL), 0);
        if (t->ops->get(t, &k, NULL, &ttl) != 0) fail_msg("k%u was evicted by its own write", id);
    }
    t->ops->close(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_climber_reaches_far_optimum_pairs),
        cmocka_unit_test(test_climber_reaches_far_optimum_one_shard),
        cmocka_unit_test(test_climber_holds_against_noise),
        cmocka_unit_test(test_window_follows_frequency_then_recency_pairs),
        cmocka_unit_test(test_window_follows_frequency_then_recency_one_shard),
        cmocka_unit_test(test_window_follows_recency_then_loop_pairs),
        cmocka_unit_test(test_window_follows_recency_then_loop_one_shard),
        cmocka_unit_test(test_window_ring_keeps_entries_exact),
        cmocka_unit_test(test_window_write_never_evicts_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
