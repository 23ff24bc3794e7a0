/*
 * stats.h -- latency histograms and the renderings of a statistics snapshot.
 *
 * The histogram is log-linear (HDR-style): values 0..2^TC__HIST_SUB_BITS-1 ns get one bucket
 * each; above, every power of two is split into 2^TC__HIST_SUB_BITS equal sub-buckets, so
 * a quantile read from it is within 1/2^TC__HIST_SUB_BITS of the true value. Recording is
 * one relaxed atomic add; readers merge histograms into a plain array of counts.
 */
#ifndef TC_STATS_H
#define TC_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "tiercache.h"

#define TC__HIST_SUB_BITS 5
#define TC__HIST_SUB (1u << TC__HIST_SUB_BITS)
#define TC__HIST_MAX_EXP 42 /* values up to 2^42 ns (about 73 minutes); above is clamped */
#define TC__HIST_NBUCKETS ((TC__HIST_MAX_EXP - TC__HIST_SUB_BITS + 2) * TC__HIST_SUB)

typedef struct tc__hist {
    _Atomic uint64_t n[TC__HIST_NBUCKETS];
} tc__hist;

/* Bucket index of a value (ns). */
unsigned tc__hist_bucket(uint64_t v);
/* Lowest and highest value a bucket stands for. */
uint64_t tc__hist_bucket_low(unsigned b);
uint64_t tc__hist_bucket_high(unsigned b);

static inline void tc__hist_record(tc__hist *h, uint64_t ns) {
    atomic_fetch_add_explicit(&h->n[tc__hist_bucket(ns)], 1, memory_order_relaxed);
}

/* acc[b] += h->n[b] for every bucket. acc has TC__HIST_NBUCKETS elements. */
void tc__hist_merge(uint64_t *acc, const tc__hist *h);

/* Summary of merged counts: number of samples, quantiles (the bucket's upper bound, clamped
 * to max) and the maximum (upper bound of the highest non-empty bucket). Zeros when empty. */
void tc__hist_summary(const uint64_t *acc, uint64_t *samples, uint64_t *p50, uint64_t *p95,
                      uint64_t *p99, uint64_t *max);

/* Renderings of a snapshot. Each allocates *out (freed with free()/tc_free()); 0 or TC_ENOMEM.
 * status is "healthy", "degraded" or "unhealthy". No secret or host name is ever in a snapshot,
 * so none can leak through a rendering. */
int tc__render_health(const tc_stats *st, const char *status, char **out);
int tc__render_stats_json(const tc_stats *st, char **out);
int tc__render_prometheus(const tc_stats *st, char **out);

/* The health status of a snapshot: "healthy" when every tier is available, "unhealthy" when
 * none is, "degraded" otherwise. Static string. */
const char *tc__health_status(const tc_stats *st);

#endif /* TC_STATS_H */
