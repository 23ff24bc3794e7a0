/*
 * tier.c -- the pieces of the tier interface (tier.h) that are code: tier names, the value
 * sink a tier delivers a hit into, the extras of a tier's statistics, and the thread-local
 * marks of the public call a tier op belongs to.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tier.h"

_Thread_local uint64_t tc__call_cur;
_Thread_local uint64_t tc__call_next;

TC_EXPORT const char *tc_tier_name(int tier) {
    switch (tier) {
    case TC_TIER_L1: return "L1";
    case TC_TIER_L2: return "L2";
    case TC_TIER_L3: return "L3";
    default: return "none";
    }
}

/* ------------------------------------------------------------------------ */
/* Sinks                                                                    */
/* ------------------------------------------------------------------------ */

int tc__sink_put(tc__sink *s, const void *val, size_t len) {
    s->len = len;
    if (s->buf != NULL && len <= s->cap) {
        if (len) memcpy(s->buf, val, len);
        return 0;
    }
    if (!s->want_whole) return 0;
    free(s->heap);
    s->heap = malloc(len ? len : 1);
    if (s->heap == NULL) {
        s->oom = 1;
        return TC_ENOMEM;
    }
    if (len) memcpy(s->heap, val, len);
    return 0;
}

const void *tc__sink_data(const tc__sink *s) {
    if (s->heap != NULL) return s->heap;
    if (s->buf != NULL && s->len <= s->cap) return s->buf;
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

void tc__stat_extra(tc_tier_stats *out, const char *name, const char *fmt, ...) {
    if (out->nextra < 0 || out->nextra >= TC_STATS_EXTRA_MAX) return;
    tc_stat_extra *e = &out->extra[out->nextra++];
    snprintf(e->name, sizeof e->name, "%s", name);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->value, sizeof e->value, fmt, ap);
    va_end(ap);
}
