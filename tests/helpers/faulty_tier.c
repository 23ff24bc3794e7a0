/* faulty_tier.c -- see faulty_tier.h. */
#include <stdio.h>
#include <stdlib.h>

#include "faulty_tier.h"

static int f_get(tc__tier *t, const tc__key *k, tc__sink *out, int64_t *ttl) {
    faulty_tier *f = (faulty_tier *)t;
    f->gets++;
    if (f->fail_get) return f->fail_get;
    int rc = f->inner->ops->get(f->inner, k, out, ttl);
    if (rc == 0 && f->ttl_report != 0 && ttl != NULL) *ttl = f->ttl_report;
    if (f->get_hook != NULL) {
        void (*hook)(void *) = f->get_hook;
        f->get_hook = NULL;
        hook(f->hook_arg);
    }
    return rc;
}

static int f_set(tc__tier *t, const tc__key *k, const void *v, size_t vl, int64_t ttl, const tc__fence *fence) {
    faulty_tier *f = (faulty_tier *)t;
    f->sets++;
    if (f->fail_set) return f->fail_set;
    return f->inner->ops->set(f->inner, k, v, vl, ttl, fence);
}

static int f_del(tc__tier *t, const tc__key *k) {
    faulty_tier *f = (faulty_tier *)t;
    f->dels++;
    if (f->fail_del) return f->fail_del;
    if (f->del_hook != NULL) {
        void (*hook)(void *) = f->del_hook;
        f->del_hook = NULL;
        hook(f->del_hook_arg);
    }
    return f->inner->ops->del(f->inner, k);
}

static int f_clear(tc__tier *t) {
    faulty_tier *f = (faulty_tier *)t;
    if (f->fail_clear) return f->fail_clear;
    return f->inner->ops->clear(f->inner);
}

static int f_clear_prefix(tc__tier *t, const void *p, size_t pl) {
    faulty_tier *f = (faulty_tier *)t;
    if (f->fail_clear) return f->fail_clear;
    return f->inner->ops->clear_prefix(f->inner, p, pl);
}

static void f_stats(tc__tier *t, tc_tier_stats *out) {
    faulty_tier *f = (faulty_tier *)t;
    f->inner->ops->stats(f->inner, out);
    out->available = f->fail_get == 0;
}

static void f_close(tc__tier *t) {
    faulty_tier *f = (faulty_tier *)t;
    f->inner->ops->close(f->inner);
    free(f);
}

static void f_attach(tc__tier *t, tc__coh *coh) {
    faulty_tier *f = (faulty_tier *)t;
    f->inner->coh = coh;
    f->inner->own_ok = f->base.own_ok;
    if (f->inner->ops->attach != NULL) f->inner->ops->attach(f->inner, coh);
}

static const tc__tier_ops faulty_ops = {
    .get = f_get, .set = f_set, .del = f_del, .clear = f_clear, .clear_prefix = f_clear_prefix, .attach = f_attach,
    .stats = f_stats, .close = f_close, /* no mget / mset: the orchestrator loops over get / set */
};

faulty_tier *faulty_wrap(tc__tier *inner, tc_tier_id id) {
    faulty_tier *f = calloc(1, sizeof *f);
    if (f == NULL) return NULL;
    f->base.ops = &faulty_ops;
    f->base.id = id;
    f->base.shared = inner->shared;
    f->inner = inner;
    return f;
}

tc_cache *faulty_pair(const tc__opts *opt, faulty_tier **up, faulty_tier **down) {
    tc__opts o = *opt;
    char err[256];
    tc__tier *a, *b;
    if (tc__l1_open(&o, &a, err, sizeof err) != 0) {
        fprintf(stderr, "faulty_pair: %s\n", err);
        return NULL;
    }
    o.mem_default_ttl_ms = 0;
    o.mem_max_ttl_ms = 0; /* the lower tier keeps what it is given */
    if (tc__l1_open(&o, &b, err, sizeof err) != 0) {
        fprintf(stderr, "faulty_pair: %s\n", err);
        a->ops->close(a);
        return NULL;
    }
    *up = faulty_wrap(a, TC_TIER_L1);
    *down = faulty_wrap(b, TC_TIER_L2);
    tc__tier *tiers[2] = {&(*up)->base, &(*down)->base};
    o.ntiers = 2;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L2;
    tc_cache *c = NULL;
    if (tc__open_tiers(&o, tiers, 2, &c, err, sizeof err) != 0) {
        fprintf(stderr, "faulty_pair: %s\n", err);
        return NULL;
    }
    return c;
}
