/*
 * histogram.c -- the log-linear latency histogram of histogram.h: bucket arithmetic, merging and
 * the quantile summary.
 *
 * Layout, with S = TC__HIST_SUB_BITS (5) and e = floor(log2(v)):
 *
 *   v < 2^S (0..31)      bucket v                           exact
 *   2^e <= v < 2^(e+1)   bucket (e - S + 1) * 2^S + sub     sub = the S bits after v's top bit
 *
 * so bucket b >= 2^S covers [(2^S + b mod 2^S) << g-1, that + 2^(g-1) - 1] with g = b >> S:
 * 32 equal sub-buckets per power of two. Values 32..63 also land in width-1 buckets (the
 * formula gives b = v there), so every value below 64 is exact. A bucket's width is at most
 * 1/32 of its lower bound, hence the relative error of a quantile read as a bucket's upper
 * bound is below 1/32 (3.1%). The last exponent is TC__HIST_MAX_EXP: values of
 * 2^(TC__HIST_MAX_EXP+1) ns (about 2.4 hours) and above are clamped into the last bucket.
 *
 * tc__hist_bucket() runs on every recorded operation: one compare-and-select, one count of
 * leading zeros, a shift and an add; no branch, no table.
 */
#include <stdint.h>

#include "histogram.h"

/* The largest value with a bucket of its own; larger values are clamped to it. */
#define TC__HIST_CLAMP ((UINT64_C(1) << (TC__HIST_MAX_EXP + 1)) - 1)

unsigned tc__hist_bucket(uint64_t v) {
    v = v < TC__HIST_CLAMP ? v : TC__HIST_CLAMP;
    /* v | 2^S gives e = S for every v < 2^(S+1): shift 0, bucket v, so no branch for the
     * linear range */
    unsigned e = 63u - (unsigned)__builtin_clzll(v | TC__HIST_SUB);
    unsigned shift = e - TC__HIST_SUB_BITS;
    return (shift << TC__HIST_SUB_BITS) + (unsigned)(v >> shift);
}

uint64_t tc__hist_bucket_low(unsigned b) {
    if (b >= TC__HIST_NBUCKETS) b = TC__HIST_NBUCKETS - 1;
    if (b < 2 * TC__HIST_SUB) return b;
    unsigned shift = (b >> TC__HIST_SUB_BITS) - 1;
    return (uint64_t)(TC__HIST_SUB | (b & (TC__HIST_SUB - 1))) << shift;
}

uint64_t tc__hist_bucket_high(unsigned b) {
    if (b >= TC__HIST_NBUCKETS) b = TC__HIST_NBUCKETS - 1;
    if (b < 2 * TC__HIST_SUB) return b;
    unsigned shift = (b >> TC__HIST_SUB_BITS) - 1;
    return tc__hist_bucket_low(b) + (UINT64_C(1) << shift) - 1;
}

void tc__hist_merge(uint64_t *acc, const tc__hist *h) {
    for (unsigned b = 0; b < TC__HIST_NBUCKETS; b++)
        acc[b] += atomic_load_explicit(&h->n[b], memory_order_relaxed);
}

/* ceil(n * pct / 100) without overflow for any n. */
static uint64_t rank_of(uint64_t n, unsigned pct) {
    return n / 100 * pct + ((n % 100) * pct + 99) / 100;
}

/* One pass over the buckets (TC__HIST_NBUCKETS steps) finds the three quantiles, a second
 * backwards pass the highest non-empty bucket. */
void tc__hist_summary(const uint64_t *acc, uint64_t *samples, uint64_t *p50, uint64_t *p95,
                      uint64_t *p99, uint64_t *max) {
    static const unsigned pct[3] = {50, 95, 99};
    uint64_t *q[3] = {p50, p95, p99};
    uint64_t n = 0, qv[3] = {0, 0, 0}, mx = 0;
    for (unsigned b = 0; b < TC__HIST_NBUCKETS; b++) n += acc[b];
    if (n > 0) {
        unsigned b = TC__HIST_NBUCKETS;
        while (b > 0 && acc[b - 1] == 0) b--;
        mx = tc__hist_bucket_high(b - 1);
        uint64_t rank[3], cum = 0;
        for (int i = 0; i < 3; i++) rank[i] = rank_of(n, pct[i]);
        int next = 0;
        for (b = 0; b < TC__HIST_NBUCKETS && next < 3; b++) {
            cum += acc[b];
            while (next < 3 && cum >= rank[next]) qv[next++] = tc__hist_bucket_high(b);
        }
        for (int i = 0; i < 3; i++)
            if (qv[i] > mx) qv[i] = mx;
    }
    if (samples) *samples = n;
    for (int i = 0; i < 3; i++)
        if (q[i]) *q[i] = qv[i];
    if (max) *max = mx;
}
