/* snapshot.c -- see snapshot.h. */
#include <string.h>

#include "helpers/snapshot.h"

int snap_get(tc_cache *c, tc__snapshot *s) {
    memset(s, 0, sizeof *s);
    s->st.size = sizeof s->st;
    int rc = tc_stats_get(c, &s->st);
    for (int i = 0; rc == 0 && i < s->st.ntiers && i < TC_MAX_TIERS; i++) {
        s->tiers[i].size = sizeof s->tiers[i];
        rc = tc_tier_stats_get(c, i, &s->tiers[i]);
    }
    return rc;
}
