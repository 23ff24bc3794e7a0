/*
 * test_histogram.c -- the latency histogram (src/histogram.c): bucket arithmetic and edge
 * values, buckets tiling the range, random values landing in their bucket, quantile accuracy
 * against the exact nearest-rank quantiles of random data, and merging.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "helpers/rng.h"
#include "histogram.h"

static uint64_t rng_state;

static uint64_t rng_next(void) { return tc_test_rng_next(&rng_state); }

/* exp(mu + sigma * N(0,1)), by Box-Muller. */
static uint64_t rng_lognormal(double mu, double sigma) {
    double u1 = tc_test_rng_unit(&rng_state), u2 = tc_test_rng_unit(&rng_state);
    double z = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
    return (uint64_t)exp(mu + sigma * z);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_hist_edge_values(void **state) {
    (void)state;
    assert_int_equal(tc__hist_bucket(0), 0);
    assert_int_equal(tc__hist_bucket(1), 1);
    assert_int_equal(tc__hist_bucket(31), 31);
    assert_int_equal(tc__hist_bucket(32), 32);
    assert_int_equal(tc__hist_bucket(63), 63);
    assert_int_equal(tc__hist_bucket(64), 64);
    assert_int_equal(tc__hist_bucket(65), 64); /* first bucket of width 2 */
    assert_int_equal(tc__hist_bucket(66), 65);
    for (uint64_t v = 0; v < 64; v++) {
        assert_int_equal(tc__hist_bucket_low(tc__hist_bucket(v)), v);
        assert_int_equal(tc__hist_bucket_high(tc__hist_bucket(v)), v);
    }
    unsigned b42 = tc__hist_bucket(UINT64_C(1) << 42);
    assert_int_equal(tc__hist_bucket_low(b42), UINT64_C(1) << 42);
    assert_true(tc__hist_bucket_high(b42) - (UINT64_C(1) << 42) < (UINT64_C(1) << 42) / 32);
    /* everything above the last exponent is clamped into the last bucket */
    assert_int_equal(tc__hist_bucket(UINT64_MAX), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket(UINT64_C(1) << 43), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket((UINT64_C(1) << 43) - 1), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket((UINT64_C(1) << 63) + 12345), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket_high(TC__HIST_NBUCKETS - 1), (UINT64_C(1) << 43) - 1);
    /* an out-of-range bucket index reads as the last bucket, never out of bounds */
    assert_int_equal(tc__hist_bucket_low(TC__HIST_NBUCKETS + 7),
                     tc__hist_bucket_low(TC__HIST_NBUCKETS - 1));
    assert_int_equal(tc__hist_bucket_high(UINT32_MAX), (UINT64_C(1) << 43) - 1);
}

/* The buckets tile [0, 2^43) without gap or overlap, each at most 1/32 of its low bound wide. */
static void test_hist_buckets_tile_the_range(void **state) {
    (void)state;
    uint64_t next = 0;
    for (unsigned b = 0; b < TC__HIST_NBUCKETS; b++) {
        uint64_t lo = tc__hist_bucket_low(b), hi = tc__hist_bucket_high(b);
        assert_int_equal(lo, next);
        assert_true(hi >= lo);
        assert_int_equal(tc__hist_bucket(lo), b);
        assert_int_equal(tc__hist_bucket(hi), b);
        assert_true((hi - lo) * 32 <= lo || lo < 64);
        next = hi + 1;
    }
    assert_int_equal(next, UINT64_C(1) << 43);
}

static void test_hist_random_values_in_their_bucket(void **state) {
    (void)state;
    rng_state = 42;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = rng_next() >> (rng_next() % 64);
        unsigned b = tc__hist_bucket(v);
        assert_true(b < TC__HIST_NBUCKETS);
        if (v < (UINT64_C(1) << 43)) {
            assert_true(tc__hist_bucket_low(b) <= v);
            assert_true(tc__hist_bucket_high(b) >= v);
            assert_true(tc__hist_bucket_high(b) - v <= v / 32);
        } else {
            assert_int_equal(b, TC__HIST_NBUCKETS - 1);
        }
    }
}

static void test_hist_summary_empty(void **state) {
    (void)state;
    uint64_t acc[TC__HIST_NBUCKETS] = {0};
    uint64_t n = 9, p50 = 9, p95 = 9, p99 = 9, mx = 9;
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 0);
    assert_int_equal(p50, 0);
    assert_int_equal(p95, 0);
    assert_int_equal(p99, 0);
    assert_int_equal(mx, 0);
}

static void test_hist_summary_small_exact(void **state) {
    (void)state;
    tc__hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    uint64_t acc[TC__HIST_NBUCKETS] = {0};
    uint64_t n, p50, p95, p99, mx;

    tc__hist_record(h, 0);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 1);
    assert_int_equal(p50, 0);
    assert_int_equal(p99, 0);
    assert_int_equal(mx, 0);

    /* 1..100: nearest rank gives 50, 95, 99; all are exact or in width-2 buckets ending there */
    memset(h, 0, sizeof *h);
    memset(acc, 0, sizeof acc);
    for (uint64_t v = 1; v <= 100; v++) tc__hist_record(h, v);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 100);
    assert_int_equal(p50, 50);
    assert_int_equal(p95, 95);
    assert_int_equal(p99, 99);
    assert_int_equal(mx, 101); /* 100 is in the bucket 100..101 */

    /* NULL outputs are allowed */
    tc__hist_summary(acc, NULL, &p50, NULL, NULL, NULL);
    assert_int_equal(p50, 50);

    /* one huge value: clamped, reported as the last bucket's bound */
    memset(h, 0, sizeof *h);
    memset(acc, 0, sizeof acc);
    tc__hist_record(h, UINT64_MAX);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 1);
    assert_int_equal(p50, (UINT64_C(1) << 43) - 1);
    assert_int_equal(mx, (UINT64_C(1) << 43) - 1);
    free(h);
}

/* Quantiles of 100k lognormal latencies (median 50 us, heavy tail) against the exact
 * nearest-rank quantiles of the sorted data: never below, never more than 1/32 above, and
 * exactly the upper bound of the bucket that holds the exact quantile. */
static void check_accuracy(uint64_t seed, double mu, double sigma) {
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof *v);
    tc__hist *h = calloc(1, sizeof *h);
    uint64_t *acc = calloc(TC__HIST_NBUCKETS, sizeof *acc);
    assert_non_null(v);
    assert_non_null(h);
    assert_non_null(acc);
    rng_state = seed;
    for (int i = 0; i < N; i++) {
        v[i] = rng_lognormal(mu, sigma);
        tc__hist_record(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    tc__hist_merge(acc, h);
    uint64_t n, q[3], mx;
    tc__hist_summary(acc, &n, &q[0], &q[1], &q[2], &mx);
    assert_int_equal(n, N);
    const double qs[3] = {0.50, 0.95, 0.99};
    for (int k = 0; k < 3; k++) {
        uint64_t exact = v[(size_t)ceil(qs[k] * N) - 1];
        assert_true(q[k] >= exact);
        assert_true((double)(q[k] - exact) <= (double)exact / 32.0);
        assert_int_equal(q[k], tc__hist_bucket_high(tc__hist_bucket(exact)));
    }
    assert_true(mx >= v[N - 1]);
    assert_true((double)(mx - v[N - 1]) <= (double)v[N - 1] / 32.0);
    free(v);
    free(h);
    free(acc);
}

static void test_hist_quantile_accuracy(void **state) {
    (void)state;
    check_accuracy(1, log(50000.0), 1.5); /* around 50 us */
    check_accuracy(2, log(2000000.0), 0.7); /* around 2 ms, narrower */
    check_accuracy(3, log(40.0), 1.0);   /* partly in the exact range */
}

static void test_hist_merge(void **state) {
    (void)state;
    tc__hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *all = calloc(1, sizeof *all);
    uint64_t *acc = calloc(TC__HIST_NBUCKETS, sizeof *acc);
    uint64_t *ref = calloc(TC__HIST_NBUCKETS, sizeof *ref);
    assert_true(a && b && all && acc && ref);
    rng_state = 7;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = rng_lognormal(log(1e5), 2.0);
        tc__hist_record(i % 3 ? a : b, x);
        tc__hist_record(all, x);
    }
    tc__hist_merge(acc, a);
    tc__hist_merge(acc, b);
    tc__hist_merge(ref, all);
    assert_memory_equal(acc, ref, TC__HIST_NBUCKETS * sizeof *acc);
    /* merging adds: a second merge of the same histogram doubles every count */
    tc__hist_merge(acc, a);
    tc__hist_merge(acc, b);
    for (unsigned i = 0; i < TC__HIST_NBUCKETS; i++) assert_int_equal(acc[i], 2 * ref[i]);
    uint64_t n1, n2, p1, p2;
    tc__hist_summary(acc, &n1, &p1, NULL, NULL, NULL);
    tc__hist_summary(ref, &n2, &p2, NULL, NULL, NULL);
    assert_int_equal(n1, 2 * n2);
    assert_int_equal(p1, p2);
    free(a);
    free(b);
    free(all);
    free(acc);
    free(ref);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_edge_values),
        cmocka_unit_test(test_hist_buckets_tile_the_range),
        cmocka_unit_test(test_hist_random_values_in_their_bucket),
        cmocka_unit_test(test_hist_summary_empty),
        cmocka_unit_test(test_hist_summary_small_exact),
        cmocka_unit_test(test_hist_quantile_accuracy),
        cmocka_unit_test(test_hist_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
