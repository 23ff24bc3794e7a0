/*
 * evict.c -- the per-entry bookkeeping of the Redis-style sampled policies (see evict.h):
 * Redis's logarithmic LFU counter with decay, and the score that ranks sampled victims.
 * Also the policies' names: tc_policy_name() and tc_policy_parse() (which takes Encore's spellings too).
 */

#include <strings.h>

#include "evict.h"

static inline uint32_t minutes(uint64_t now_ms) { return (uint32_t)((now_ms / 60000) & 0xFFFF); }

uint32_t tc__lfu_new(uint64_t now_ms) { return (minutes(now_ms) << 16) | TC__LFU_INIT; }

unsigned tc__lfu_value(uint32_t word, uint64_t now_ms) {
    unsigned counter = word & 0xFF;
    uint32_t idle = (minutes(now_ms) - (word >> 16)) & 0xFFFF;
    return idle >= counter ? 0 : counter - idle;
}

uint32_t tc__lfu_touch(uint32_t word, uint64_t now_ms, uint64_t *rng) {
    unsigned counter = tc__lfu_value(word, now_ms);
    if (counter < 255) {
        uint64_t x = *rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *rng = x;
        double r = (double)(x >> 11) * (1.0 / 9007199254740992.0);
        double base = counter > TC__LFU_INIT ? counter - TC__LFU_INIT : 0;
        if (r < 1.0 / (base * 10 + 1)) counter++;
    }
    return (minutes(now_ms) << 16) | counter;
}

uint64_t tc__evict_score(tc_policy p, uint32_t aux, uint32_t clock, uint64_t exp, uint64_t now_ms) {
    switch (p) {
    case TC_POLICY_ALLKEYS_LRU:
    case TC_POLICY_VOLATILE_LRU: return (uint32_t)(clock - aux);
    case TC_POLICY_ALLKEYS_LFU:
    case TC_POLICY_VOLATILE_LFU: return 255 - tc__lfu_value(aux, now_ms);
    case TC_POLICY_VOLATILE_TTL: return exp ? UINT64_MAX - exp : 0;
    default: return 0;
    }
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                 */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;  /* canonical, Redis-style */
    const char *other; /* Encore's spelling, or another accepted name */
} tc__policies[TC_POLICY__COUNT] = {
    [TC_POLICY_TINYLFU] = {"tinylfu", "w-tinylfu"},
    [TC_POLICY_ALLKEYS_LRU] = {"allkeys-lru", "AllKeysLRU"},
    [TC_POLICY_ALLKEYS_LFU] = {"allkeys-lfu", "AllKeysLFU"},
    [TC_POLICY_ALLKEYS_RANDOM] = {"allkeys-random", "AllKeysRandom"},
    [TC_POLICY_VOLATILE_LRU] = {"volatile-lru", "VolatileLRU"},
    [TC_POLICY_VOLATILE_LFU] = {"volatile-lfu", "VolatileLFU"},
    [TC_POLICY_VOLATILE_TTL] = {"volatile-ttl", "VolatileTTL"},
    [TC_POLICY_VOLATILE_RANDOM] = {"volatile-random", "VolatileRandom"},
    [TC_POLICY_NOEVICTION] = {"noeviction", "NoEviction"},
};

/* Case-insensitive match against both spellings of every policy; *out is untouched on
 * failure. Reads only static tables: thread-safe. */
TC_EXPORT int tc_policy_parse(const char *s, tc_policy *out) {
    if (s == NULL) return TC_EINVAL;
    for (int p = 0; p < TC_POLICY__COUNT; p++) {
        if (strcasecmp(s, tc__policies[p].name) == 0 || strcasecmp(s, tc__policies[p].other) == 0) {
            if (out != NULL) *out = (tc_policy)p;
            return 0;
        }
    }
    return TC_EINVAL;
}

/* A static string; "unknown" for a value outside the enum. Thread-safe. */
TC_EXPORT const char *tc_policy_name(tc_policy p) {
    if ((int)p < 0 || p >= TC_POLICY__COUNT) return "unknown";
    return tc__policies[p].name;
}
