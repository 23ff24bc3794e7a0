/*
 * render.h -- the renderings of a statistics snapshot (render.c): the health document, JSON and
 * Prometheus text. They read nothing but the snapshot (and, for the health document, the wall
 * clock), so they are safe from any thread.
 */
#ifndef TC_RENDER_H
#define TC_RENDER_H

#include "tiercache.h"

/* A whole statistics snapshot: the overall figures and every tier's, taken together. */
typedef struct tc__snapshot {
    tc_stats st;
    tc_tier_stats tiers[TC_MAX_TIERS];
} tc__snapshot;

/* Renderings of a snapshot. Each allocates *out (freed with free()/tc_free()) and returns 0;
 * TC_ENOMEM (nothing allocated) or TC_EINVAL when snap or out is NULL; *out is NULL on failure.
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
int tc__render_health(const tc__snapshot *snap, const char *status, char **out);
int tc__render_stats_json(const tc__snapshot *snap, char **out);
int tc__render_prometheus(const tc__snapshot *snap, char **out);

/* The health status of a snapshot: "healthy" when every tier is available, "unhealthy" when
 * none is (or there is no tier, or snap is NULL), "degraded" otherwise. Static string. */
const char *tc__health_status(const tc__snapshot *snap);

#endif /* TC_RENDER_H */
