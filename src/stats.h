/*
 * stats.h -- latency histograms and the renderings of a statistics snapshot.
 *
 * The histogram is log-linear (HDR-style): values 0..2^TC__HIST_SUB_BITS-1 ns get one bucket
 * each; above, every power of two is split into 2^TC__HIST_SUB_BITS equal sub-buckets, so
 * a quantile read from it is within 1/2^TC__HIST_SUB_BITS of the true value (and never
 * below it). Recording is one relaxed atomic add; readers merge histograms into a plain array
 * of counts. histogram.c draws the layout.
 *
 * The renderings (render.c) write a tc_stats snapshot as text: they read nothing but the
 * snapshot (and, for the health document, the wall clock), so they are safe from any thread.
 */
#ifndef TC_STATS_H
#define TC_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "tiercache.h"

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

/* Renderings of a snapshot. Each allocates *out (freed with free()/tc_free()) and returns 0;
 * TC_ENOMEM (nothing allocated) or TC_EINVAL when st or out is NULL; *out is NULL on failure.
 * No secret or host name is ever in a snapshot, so none can leak through a rendering.
 * ntiers and nextra are clamped to their arrays; type and extras are read up to their array
 * size even without a NUL, and escaped (invalid UTF-8 becomes U+FFFD); an extra whose name
 * repeats an earlier one of the same tier is dropped.
 *
 * tc__render_health: the /cache/health document (keys as in tc_health_json(), camelCase,
 *   latencies in ms as decimals, "timestamp" the wall clock in UTC ISO-8601 with ms, "uptime"
 *   in seconds, "tierMetrics.hitRate" hits/(hits+misses) or 0). status is "healthy",
 *   "degraded" or "unhealthy"; NULL means tc__health_status(st).
 * tc__render_stats_json: every field of tc_stats, snake_case, latencies as integer ns, each
 *   tier's extras as an object, plus "status" and "hit_rate".
 * tc__render_prometheus: text format 0.0.4, families tiercache_*; per-tier families carry
 *   tier="L1".., are left out when ntiers is 0; summary quantiles are NaN when a latency has
 *   no samples; extras become labels of tiercache_tier_info (names sanitised). */
int tc__render_health(const tc_stats *st, const char *status, char **out);
int tc__render_stats_json(const tc_stats *st, char **out);
int tc__render_prometheus(const tc_stats *st, char **out);

/* The health status of a snapshot: "healthy" when every tier is available, "unhealthy" when
 * none is (or there is no tier, or st is NULL), "degraded" otherwise. Static string. */
const char *tc__health_status(const tc_stats *st);

#endif /* TC_STATS_H */
