/*
 * tier.h -- the internal interface every tier implements, and the small types it uses.
 *
 * The orchestrator (cache.c) knows tiers only through tc__tier_ops. A tier is opened from
 * tc__opts by its own constructor (tc__l1_open, ...) and from then on used through the
 * ops table. Each op is called concurrently from many threads: a tier is thread-safe.
 *
 * Values leave a tier through a tc__sink, so that an L1 hit copies straight into the
 * caller's buffer with no intermediate allocation, while a lower-tier hit that must be
 * back-filled can be captured whole even when the caller's buffer is too small.
 *
 * Coherence (docs/COHERENCE.md). A cache of more than one tier, or with L2, has a coherence
 * table (coherence.h), private or shared by the processes of the host. Entries of L1 and L2
 * carry the stamps of their key taken when they were filled, and are served only while the
 * stamps are current. Every write reaches the tiers with a tc__fence:
 *   - a fill (back-fill, a loader's result) carries the stamp captured before the lower tier
 *     was read; the tier installs only if it is still current, checked inside the critical
 *     section that inserts, and the entry carries it: a write or an invalidation that lands
 *     between the read and the install refuses it, one that lands after makes it invalid;
 *   - an application's write to a tier shared by processes (L2, tc__tier.shared) moves the
 *     key's stripe inside that critical section and reports the new stamp in wrote, so that
 *     no other process can serve or fill the old value from the moment the new one is there.
 *
 * Calls: the orchestrator marks where each public call begins and ends (tc__call_begin), so a
 * tier whose ops wait on a server (L3) can give all the work of one public call -- a set and
 * its compensating delete, every batch of an mset and its per-entry cleanups -- one deadline.
 */
#ifndef TC_TIER_H
#define TC_TIER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "coherence.h"
#include "config.h"
#include "tiercache.h"

/* ------------------------------------------------------------------------ */
/* Sinks: where a tier's get puts the value                                 */
/* ------------------------------------------------------------------------ */

typedef struct tc__sink {
    void *buf;       /* caller's buffer, may be NULL */
    size_t cap;      /* its capacity */
    size_t len;      /* set by tc__sink_put: the value's length */
    void *heap;      /* a malloc'd copy, when the value had to be captured whole */
    int want_whole;  /* 1: capture into heap whenever it does not fit buf (or always, when buf is NULL) */
    int oom;         /* 1: a heap copy was needed and malloc failed */
} tc__sink;

/* Delivers a value to the sink: copies into buf when it fits; otherwise, when want_whole,
 * into a new heap buffer (heap), else only records the length. Returns 0 or TC_ENOMEM.
 * Called by tiers, possibly under their locks: does no more than one malloc and one memcpy. */
int tc__sink_put(tc__sink *s, const void *val, size_t len);

/* The value the sink holds (buf or heap), or NULL when it holds only a length. */
const void *tc__sink_data(const tc__sink *s);

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

/* A key as it crosses the tier interface: its bytes and their tc__hash(), computed once by the
 * orchestrator, so no tier hashes the key again (L1 and L2 pick their shard and slot from it,
 * L2 stores it). p is the caller's memory: a tier copies what it keeps. */
typedef struct tc__key {
    const void *p;
    size_t len;
    uint64_t hash;
} tc__key;

/* A key object for a call site that has only the bytes (tests, tools); needs util.h. */
#define TC__KEY(p, len) ((tc__key){(p), (len), tc__hash((p), (len))})

/* ------------------------------------------------------------------------ */
/* Fences against delete/back-fill races                                    */
/* ------------------------------------------------------------------------ */

/* What a shared tier reports of an application's write: whether it moved the key's stripe,
 * and the stamp after the move (what the entry it wrote carries). */
typedef struct tc__wrote {
    tc__stamp stamp;
    int moved;
} tc__wrote;

typedef struct tc__fence {
    tc__coh *coh;      /* the table the stamps are from */
    uint64_t hash;     /* the key's */
    tc__stamp seen;    /* a fill: the stamp captured before the lower tier was read */
    tc__wrote *wrote;  /* an application's write (NULL for a fill): a shared tier moves the
                          stripe in its critical section and reports it here */
} tc__fence;

/* 1 when a write under f may proceed: no fence, an application's write, or a fill whose
 * stamp is still current. Called inside the tier's critical section. */
static inline int tc__fence_ok(const tc__fence *f) {
    if (f == NULL || f->wrote != NULL) return 1;
    if (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_FENCE) return f->seen.k != TC__STAMP_GAP;
    return tc__coh_unchanged(f->coh, f->hash, &f->seen);
}

/* The stamp an entry written under f carries; for a write with no fence (a test's direct
 * call), the current one. */
static inline tc__stamp tc__fence_stamp(const tc__fence *f, const tc__coh *coh, uint64_t hash) {
    if (f != NULL && f->wrote == NULL) return f->seen;
    return tc__coh_stamp(coh, hash);
}

/* ------------------------------------------------------------------------ */
/* The public call a tier op belongs to                                     */
/* ------------------------------------------------------------------------ */

/*
 * One public call (tc_set, tc_mset ...) may make several ops on one tier: tc_set writes, and
 * deletes again when the write failed; tc_mset writes batch after batch and then deletes each
 * entry that failed. A tier that waits on a server must bound all of that by one deadline, not
 * one per op. Ops always run on the thread of the public call that makes them (no tier hands
 * work to another thread), so the orchestrator marks the call in a thread-local: begin gives
 * the thread a new call id, end takes it away. Calls nest into the outermost one: the lookup
 * and the re-check of tc_get_or_load, or a public call made from a log callback, share the
 * deadline of the call they run inside. A tier keys its per-call state (L3: when the call's
 * first Redis work started) by tc__call_id().
 *
 * Why a thread-local and not a deadline argument to every op: the deadline is L3's business
 * (REDIS_COMMAND_TIMEOUT, REDIS_CONNECT_TIMEOUT), L1 and L2 never wait on a network, and an
 * argument would change every op of every tier and test for one tier's need. Begin and end
 * are two thread-local stores; no clock is read unless a tier needs one.
 */
extern _Thread_local uint64_t tc__call_cur;  /* the running public call; 0: none */
extern _Thread_local uint64_t tc__call_next; /* ids handed out on this thread */

/* Marks the start of a public call on this thread (a new id, unless a call is running: then
 * this one is part of it). Returns what tc__call_end() must be given when the call returns. */
static inline uint64_t tc__call_begin(void) {
    uint64_t outer = tc__call_cur;
    if (outer == 0) tc__call_cur = ++tc__call_next;
    return outer;
}

static inline void tc__call_end(uint64_t outer) { tc__call_cur = outer; }

/* The public call this thread is running, or 0 when a tier is used directly (tests, tools):
 * then each op is a call of its own. */
static inline uint64_t tc__call_id(void) { return tc__call_cur; }

/* ------------------------------------------------------------------------ */
/* The tier interface                                                       */
/* ------------------------------------------------------------------------ */

typedef struct tc__tier tc__tier;

/* TTLs inside the interface: ttl_ms > 0 is a TTL, at most TC_TTL_MAX_MS (every tier's set and
 * mset refuse a larger one with TC_EINVAL); TC__TTL_DEFAULT asks for the tier's default;
 * TC_TTL_NONE (-1) means never expires. Remaining TTLs come back as > 0 or TC_TTL_NONE. */
#define TC__TTL_DEFAULT 0

typedef struct tc__tier_ops {
    /* Looks key up; on a hit delivers the value to out (out may be NULL: TTL lookup only) and
     * the remaining TTL to *ttl_ms. Returns 0, TC_EMISS, or an error (the orchestrator counts
     * it and goes on to the next tier). */
    int (*get)(tc__tier *t, const tc__key *key, tc__sink *out, int64_t *ttl_ms);
    /* Stores a copy. fence may be NULL; when set and no longer ok inside the tier's critical
     * section, nothing is written and 0 is returned. Returns 0, TC_EFULL, TC_ETOOLARGE,
     * TC_ENOMEM or a tier error. */
    int (*set)(tc__tier *t, const tc__key *key, const void *val, size_t vlen, int64_t ttl_ms,
               const tc__fence *fence);
    /* Removes key; 0 whether or not it was there. */
    int (*del)(tc__tier *t, const tc__key *key);
    /* Removes every entry of this tier (only this cache's namespace). */
    int (*clear)(tc__tier *t);
    /* Removes every entry whose key starts with prefix. */
    int (*clear_prefix)(tc__tier *t, const void *prefix, size_t plen);
    /* Fills the tier's part of a statistics snapshot: counters the tier keeps itself (hits,
     * misses, sets, deletes, evictions, expirations, entries, bytes, availability, extras).
     * The orchestrator adds its own error counts and latency. */
    void (*stats)(tc__tier *t, tc_tier_stats *out);
    /* Frees the tier. */
    void (*close)(tc__tier *t);
    /* Optional: told the cache's coherence table (also in t->coh) once, before any other op:
     * a tier that wraps another passes it on. */
    void (*attach)(tc__tier *t, tc__coh *coh);

    /* Optional multi-key operations (NULL when the tier has none: the orchestrator then calls
     * get/set once per key). Both must be appended here, at the end, so tiers that do not set
     * them keep working with designated initialisers.
     *
     * mget looks n keys up in as few round trips as the tier can. For each i: rcs[i] is 0
     * (hit: value delivered to outs[i], which may be NULL for a TTL-only lookup, and the
     * remaining TTL to ttls[i]), TC_EMISS, or an error for that key. Returns 0 when the
     * batch was carried out (per-key results in rcs), or an error for the whole batch, in
     * which case every rcs[i] holds that error too. */
    int (*mget)(tc__tier *t, size_t n, const tc__key *keys, tc__sink *outs, int64_t *ttls, int *rcs);
    /* mset stores n entries (ttls[i] as set's ttl_ms). fences may be NULL, and so may any
     * fences[i]: a fence no longer ok skips that entry (rcs[i] = 0). rcs[i] is each entry's
     * result; the return is 0 or an error for the whole batch (every rcs[i] set to it). */
    int (*mset)(tc__tier *t, size_t n, const tc__key *keys, const void *const *vals, const size_t *vlens,
                const int64_t *ttls, const tc__fence *const *fences, int *rcs);
} tc__tier_ops;

struct tc__tier {
    const tc__tier_ops *ops;
    tc_tier_id id;
    int shared;   /* 1: other processes see what this tier holds (L2): it moves stripes itself */
    tc__coh *coh; /* the cache's coherence table, set by the orchestrator before any op; NULL
                     for a cache of one tier without L2 (no stamps, no fences) */
    int own_ok;   /* set with coh: 1 for a process-local first tier (L1), whose entries may
                     ignore this handle's own moves of w (coherence.h): every write of the
                     handle replaces or removes the key in it, and no tier above fills from it */
};

/* Test-only: when set, called by a read between a lower tier's hit (from_tier, a tc_tier_id)
 * and the back-fill of the tiers above, so that a test can stage a write or an invalidation in
 * that window. NULL (always, outside the tests). */
extern void (*tc__test_fill_hook)(const tc__key *k, int from_tier);

/* Test-only: when set, called by an application's tc_set after each tier (a tc_tier_id) took
 * its part of the write, bottom-up, so that a test can hold a write between its L3 and its L2
 * part. NULL (always, outside the tests). */
extern void (*tc__test_write_hook)(const tc__key *k, int tier);

/* Tier constructors. Each returns 0 and the tier in *out, or a negative code and a message in
 * errbuf. They copy what they need from opt. */
int tc__l1_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen);

/* The bytes L1 charges an entry against CACHE_MEMORY_MAX_BYTES: the memory it takes (slab chunk
 * of header + key + value) plus its share of the slot table and sketch. */
uint64_t tc__l1_charge(size_t klen, size_t vlen);
/* L2: attaches to (or atomically creates) the segment opt->shared_name. TC_EVERSION when it
 * exists with another layout or geometry, TC_ECORRUPT when its header is damaged, TC_ECONFIG
 * for settings it cannot hold (tinylfu is refused: use allkeys-lfu). */
int tc__l2_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen);
/* The Redis tier (l3_redis.c). Succeeds when the server is down (the tier then reports
 * unavailable and recovers by itself); fails only on configuration it cannot use. */
int tc__l3_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen);

/* Opens a cache over tiers the caller opened, top-down, taking them over (they are closed with
 * the cache, or at once on failure). The seam the tests use to stack tiers of their choosing;
 * tc_open() is this after opening the tiers CACHE_TIERING names. */
int tc__open_tiers(const tc__opts *opt, tc__tier **tiers, int n, tc_cache **out, char *errbuf, size_t errlen);

/* Appends a tier-specific fact to a statistics snapshot (ignored when the extras are full). */
void tc__stat_extra(tc_tier_stats *out, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif /* TC_TIER_H */
