/*
 * faulty_tier.h -- fault injection for orchestrator tests: wraps a real tier and makes chosen
 * operations fail with a chosen code, or runs a hook in the middle of a get (after the inner
 * tier answered, before the orchestrator sees the answer) to stage races deterministically.
 */
#ifndef TC_TEST_FAULTY_TIER_H
#define TC_TEST_FAULTY_TIER_H

#include "tier.h"

typedef struct faulty_tier {
    tc__tier base;
    tc__tier *inner;
    int fail_get, fail_set, fail_del, fail_clear; /* 0, or the code the op returns */
    void (*get_hook)(void *arg);                  /* called once per get, then cleared */
    void *hook_arg;
    void (*del_hook)(void *arg);                  /* called once per del, before the inner del, then cleared */
    void *del_hook_arg;
    int64_t ttl_report;                            /* not 0: the remaining TTL a hit reports (as a Redis
                                                      key another client wrote could) */
    int gets, sets, dels;                          /* calls seen */
} faulty_tier;

/* Wraps inner (taken over) and presents it as tier id. */
faulty_tier *faulty_wrap(tc__tier *inner, tc_tier_id id);

/* Opens a cache of two real L1 tiers, each behind a wrapper: the upper presented as L1 with
 * opt's settings, the lower as L2 with the same settings but no default TTL (entries put there
 * directly keep the TTL they are given). opt->ntiers and opt->tiers are ignored. Returns the
 * cache, or NULL with the reason on stderr. */
tc_cache *faulty_pair(const tc__opts *opt, faulty_tier **up, faulty_tier **down);

#endif
