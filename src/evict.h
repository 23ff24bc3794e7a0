/*
 * evict.h -- the per-entry bookkeeping of the Redis-style sampled policies, shared by every
 * tier that samples victims.
 *
 * LFU uses Redis's logarithmic counter with decay, packed in 32 bits:
 *
 *   | minutes (16) | unused (8) | counter (8) |
 *
 *   counter  grows with probability 1 / ((counter - 5) * 10 + 1), so 255 stands for about a
 *            million accesses; new entries start at 5 so they are not evicted at once
 *   minutes  when the counter was last decayed (coarse clock, minutes, wrapping)
 *   decay    one step down per minute without access
 *
 * LRU uses a per-table logical clock (32 bits, wrapping): recency is the distance from it.
 */
#ifndef TC_EVICT_H
#define TC_EVICT_H

#include <stdint.h>

#include "tiercache.h"

#define TC__LFU_INIT 5

/* 1 for the volatile-* policies (only entries with a TTL may be evicted). */
static inline int tc__policy_is_volatile(tc_policy p) {
    return p == TC_POLICY_VOLATILE_LRU || p == TC_POLICY_VOLATILE_LFU || p == TC_POLICY_VOLATILE_TTL ||
           p == TC_POLICY_VOLATILE_RANDOM;
}

/* A new entry's LFU word. */
uint32_t tc__lfu_new(uint64_t now_ms);
/* The LFU word after one access: decay for the idle minutes, then a logarithmic increment. */
uint32_t tc__lfu_touch(uint32_t word, uint64_t now_ms, uint64_t *rng);
/* The counter after decay, without changing the word. */
unsigned tc__lfu_value(uint32_t word, uint64_t now_ms);

/* How good a victim an entry is under policy p (larger = evict first): idle time on the LRU
 * clock, 255 - decayed LFU counter, or time-to-expiry reversed (no TTL = never chosen first
 * under volatile-ttl). aux is the entry's LRU clock or LFU word, exp its expiry (ms, 0 = none). */
uint64_t tc__evict_score(tc_policy p, uint32_t aux, uint32_t clock, uint64_t exp, uint64_t now_ms);

#endif /* TC_EVICT_H */
