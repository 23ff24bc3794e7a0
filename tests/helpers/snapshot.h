/* snapshot.h -- the whole statistics of a cache in one struct, read through the public API
 * (tc_stats_get and tc_tier_stats_get), for tests that look at several tiers at once. */
#ifndef TC_TEST_SNAPSHOT_H
#define TC_TEST_SNAPSHOT_H

#include "render.h"

/* Fills *s (overall figures and every tier's) from c. Returns 0 or the first error. */
int snap_get(tc_cache *c, tc__snapshot *s);

#endif
