/*
 * histogram.h -- latency histograms (histogram.c).
 *
 * The histogram is log-linear (HDR-style): values 0..2^TC__HIST_SUB_BITS-1 ns get one bucket
 * each; above, every power of two is split into 2^TC__HIST_SUB_BITS equal sub-buckets, so
 * a quantile read from it is within 1/2^TC__HIST_SUB_BITS of the true value (and never
 * below it). Recording is one relaxed atomic add; readers merge histograms into a plain array
 * of counts. histogram.c draws the layout.
 */
#ifndef TC_HISTOGRAM_H
#define TC_HISTOGRAM_H

#include <stdatomic.h>
#include <stdint.h>

#define TC__HIST_SUB_BITS 5
#define TC__HIST_SUB (1u << TC__HIST_SUB_BITS)
/* The last power of two with buckets of its own: values below 2^(TC__HIST_MAX_EXP+1) ns (about
 * 2.4 hours) are measured; larger ones are clamped into the last bucket. */
#define TC__HIST_MAX_EXP 42
#define TC__HIST_NBUCKETS ((TC__HIST_MAX_EXP - TC__HIST_SUB_BITS + 2) * TC__HIST_SUB)

typedef struct tc__hist {
    _Atomic uint64_t n[TC__HIST_NBUCKETS];
} tc__hist;

/* Bucket index of a value (ns), 0..TC__HIST_NBUCKETS-1; branch-free (hot path). */
unsigned tc__hist_bucket(uint64_t v);
/* Lowest and highest value a bucket stands for; an index past the end reads as the last
 * bucket. */
uint64_t tc__hist_bucket_low(unsigned b);
uint64_t tc__hist_bucket_high(unsigned b);

static inline void tc__hist_record(tc__hist *h, uint64_t ns) {
    atomic_fetch_add_explicit(&h->n[tc__hist_bucket(ns)], 1, memory_order_relaxed);
}

/* acc[b] += h->n[b] for every bucket. acc has TC__HIST_NBUCKETS elements. */
void tc__hist_merge(uint64_t *acc, const tc__hist *h);

/* Summary of merged counts: number of samples, quantiles (the upper bound of the first bucket
 * whose cumulative count reaches ceil(q*n), clamped to max) and the maximum (upper bound of the
 * highest non-empty bucket). Zeros when empty. Any output pointer may be NULL. Two passes
 * over TC__HIST_NBUCKETS counts. */
void tc__hist_summary(const uint64_t *acc, uint64_t *samples, uint64_t *p50, uint64_t *p95,
                      uint64_t *p99, uint64_t *max);

#endif /* TC_HISTOGRAM_H */
