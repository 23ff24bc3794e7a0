/*
 * l2_util.h -- helpers for the L2 tests: options for a small segment with a unique name,
 * self-verifying values (a torn or mixed-up value fails its embedded checksum), and a
 * process barrier for fork-based tests.
 */
#ifndef TC_TEST_L2_UTIL_H
#define TC_TEST_L2_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "l2_segment.h"
#include "tier.h"
#include "util.h"

/* A unique segment name for this test process: tests run in parallel. */
static inline void l2t_name(char *out, size_t n, const char *tag) {
    snprintf(out, n, "test-%ld-%s", (long)getpid(), tag);
}

/* Options for an L2 tier only: the defaults, with a small geometry and no default TTL. */
static inline void l2t_opts(tc__opts *o, const char *name, uint64_t entries, uint64_t bytes,
                            tc_policy policy) {
    tc__opts_init(o);
    o->ntiers = 1;
    o->tiers[0] = TC_TIER_L2;
    o->max_key_bytes = 128;
    o->max_value_bytes = 4096;
    snprintf(o->shared_name, sizeof o->shared_name, "%s", name);
    o->shared_max_entries = entries;
    o->shared_max_bytes = bytes;
    o->shared_default_ttl_ms = 0;
    o->shared_eviction = policy;
    /* the geometry is asked for: compared with an existing segment's, not adopted */
    static const char *const geometry[] = {"CACHE_SHARED_MAX_ENTRIES", "CACHE_SHARED_MAX_BYTES",
                                           "CACHE_MAX_KEY_BYTES", "CACHE_MAX_VALUE_BYTES",
                                           "CACHE_SHARED_EVICTION"};
    for (size_t i = 0; i < sizeof geometry / sizeof geometry[0]; i++) tc__opts_mark_explicit(o, geometry[i]);
    /* Tests that are not about the lock timeout must not fail when an overloaded host leaves a
     * lock holder without a CPU for longer than the default 100 ms. */
    o->shared_lock_timeout_ms = 20000;
}

static inline uint64_t l2t_mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return x;
}

static inline uint64_t l2t_sum(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

/* A value of len bytes (len >= 24): [key id u64][seed u64][bytes from seed][FNV of the rest]. */
static inline void l2t_value(uint8_t *v, size_t len, uint64_t id, uint64_t seed) {
    memcpy(v, &id, 8);
    memcpy(v + 8, &seed, 8);
    uint64_t x = seed;
    for (size_t i = 16; i < len - 8; i++) {
        if ((i & 7) == 0) x = l2t_mix(x + i);
        v[i] = (uint8_t)(x >> ((i & 7) * 8));
    }
    uint64_t s = l2t_sum(v, len - 8);
    memcpy(v + len - 8, &s, 8);
}

/* 1 when v is an intact value written for key id. */
static inline int l2t_value_ok(const uint8_t *v, size_t len, uint64_t id) {
    if (len < 24) return 0;
    uint64_t got, s;
    memcpy(&got, v, 8);
    memcpy(&s, v + len - 8, 8);
    return got == id && s == l2t_sum(v, len - 8);
}

static inline size_t l2t_key(char *k, size_t n, uint64_t id) {
    return (size_t)snprintf(k, n, "key:%llu", (unsigned long long)id);
}

/* Reads key into buf; returns the tier's code, *len the value's length. */
static inline int l2t_get(tc__tier *t, const void *k, size_t kl, void *buf, size_t cap,
                          size_t *len, int64_t *ttl) {
    tc__sink s = {.buf = buf, .cap = cap};
    int64_t tt = 0;
    int rc = t->ops->get(t, &TC__KEY(k, kl), &s, &tt);
    *len = s.len;
    if (ttl) *ttl = tt;
    return rc;
}

/* A barrier for forked processes: children block reading until the parent closes the pipe. */
typedef struct l2t_gate {
    int fd[2];
} l2t_gate;
static inline int l2t_gate_init(l2t_gate *g) { return pipe(g->fd); }
static inline void l2t_gate_wait(l2t_gate *g) { /* in a child */
    char c;
    close(g->fd[1]);
    while (read(g->fd[0], &c, 1) > 0) {}
    close(g->fd[0]);
}
static inline void l2t_gate_open(l2t_gate *g) { /* in the parent */
    close(g->fd[0]);
    close(g->fd[1]);
}

/* Waits for pid; returns its exit status, or 128+signal. */
static inline int l2t_wait(pid_t pid) {
    int st = 0;
    while (waitpid(pid, &st, 0) < 0) {}
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return 255;
}

#endif /* TC_TEST_L2_UTIL_H */
