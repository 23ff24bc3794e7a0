/*
 * l1.c -- the L1 memory tier: a sharded, bounded, in-process hash table with TTLs and
 * W-TinyLFU (default) or Redis-style sampled eviction.
 *
 * Layout. The key's 64-bit hash picks a shard by its low bits; each shard is an independent
 * cache with its own lock, table, policy state and share of the entry and byte bounds. A
 * shard's table is open addressing with linear probing over 16-byte slots:
 *
 *   slot:  | h (32) | meta (32) | entry pointer (64) |
 *   meta:  | exp_s (28) | ttl (1) | win (1) | freq (2) |
 *
 *   h      the hash's high 32 bits: the home slot is (h * nslots) >> 32, and a probe compares
 *          h before it touches the entry, so a lookup reads one slot line and one entry
 *   freq   CLOCK reference count 0..3 (W-TinyLFU main region)
 *   win    the entry is in the W-TinyLFU admission window
 *   ttl    the entry has an expiry
 *   exp_s  expiry in whole seconds since the shard's epoch (saturating), so sweeps find
 *          definitely-expired entries without reading the entries
 *
 * The table has nslots = capacity * 4/3 slots: the load factor never exceeds 0.75, so no
 * resize ever happens. Deletion shifts later members of the probe run back (no tombstones).
 *
 * An entry is one block from the shard's slab allocator (l1_slab.c: 8-byte size classes, no
 * per-chunk header): a 16-byte header, then the key, then the value.
 *
 * W-TinyLFU. New entries enter a FIFO window (1% of the shard). An entry leaving the window is
 * a candidate for the main region; when main is full the candidate duels the CLOCK victim of
 * main (the first main entry at the hand whose reference count is 0, counts being decremented
 * as the hand passes): the one the frequency sketch has seen more often stays. Hits cost a
 * sketch increment and a 2-bit store into the slot; there are no lists to relink.
 *
 * Redis policies (allkeys-lru, ... noeviction) sample TC__L1_SAMPLES random entries and evict
 * the best candidate: least recently used (a per-shard logical clock), least frequently used
 * (Redis's logarithmic counter with decay), soonest to expire, or random; volatile-* only
 * consider entries with a TTL, and fall back to a bounded scan when sampling finds none.
 *
 * Expiry. An expired entry is never returned. Reclaiming is incremental: every insert
 * advances a sweep cursor over TC__L1_SWEEP slots, freeing entries whose exp_s is past, and the
 * eviction hand frees expired entries it meets before evicting a live one.
 *
 * Accounting. Each entry is charged the memory it really takes: its slab chunk (16-byte header,
 * key and value, rounded up to the 8-byte class; above the slab's largest class, malloc's
 * chunk), plus TC__L1_TABLE_OVERHEAD for its share of the slot table (4/3 slots of 16 bytes) and
 * of the sketch (3 words). tc__l1_charge() is that formula; tests and docs use it.
 *
 * Thread-safety: every operation takes exactly one shard lock (clear and stats take each in
 * turn, never two at once). Nothing else is shared between shards.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evict.h"
#include "l1_sketch.h"
#include "l1_slab.h"
#include "tier.h"
#include "util.h"

#define TC__L1_SAMPLES 8 /* Redis pairs 5 with a 16-entry pool; 8 without one is as close to exact */
#define TC__L1_SWEEP 4
#define TC__L1_TABLE_OVERHEAD 46 /* 4/3 slots x 16 bytes = 21.3, + sketch 3 words = 24, rounded up */

#define META_FREQ 3u
#define META_WIN 4u
#define META_TTL 8u
#define META_EXP_SHIFT 4
#define META_EXP_MAX ((1u << 28) - 1)

typedef struct l1_ent {
    uint64_t exp_klen; /* expiry (monotonic ms, 0 = never) << 16 | key length */
    uint32_t vlen;
    uint32_t aux;      /* window ring position | LRU clock | LFU counter and time */
    /* key bytes, then value bytes */
} l1_ent;

typedef struct l1_slot {
    uint32_t h;
    uint32_t meta;
    l1_ent *e;
} l1_slot;

/* The shard lock: test-and-test-and-set with a bounded spin, then sched_yield(). Critical
 * sections are tens of nanoseconds (the slot and entry are brought into the cache before the
 * lock is taken); an adaptive mutex put the waiter to sleep in the kernel for microseconds on
 * the hot shard of a skewed workload (measured: two threads no faster than one). */
typedef struct l1_lock {
    _Atomic int held;
} l1_lock;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline void l1_lock_acquire(l1_lock *l) {
    for (unsigned spins = 0;; spins++) {
        if (!atomic_load_explicit(&l->held, memory_order_relaxed) &&
            !atomic_exchange_explicit(&l->held, 1, memory_order_acquire))
            return;
        if (spins < 128) cpu_relax();
        else sched_yield();
    }
}

static inline void l1_lock_release(l1_lock *l) { atomic_store_explicit(&l->held, 0, memory_order_release); }

/* A shard, laid out by who writes what: the first cache line holds what every operation
 * writes (the lock, the hit/miss counters, the LRU clock), so a get dirties one line of the
 * shard; read-mostly fields follow on lines no get writes, so they stay shared between cores. */
typedef struct l1_shard {
    /* written by every operation */
    l1_lock lock;
    uint32_t clock;      /* logical LRU clock */
    uint64_t hits, misses, sets, deletes, evictions, expirations;
    /* written by writes (set, delete, eviction) */
    _Alignas(64) uint64_t count, bytes;
    uint32_t hand;       /* CLOCK hand (tinylfu): a slot index, advanced by stride */
    uint32_t sweep;      /* expiry sweep cursor */
    uint32_t ring_head, ring_tail, ring_used; /* used = occupied positions incl. NULLs */
    uint64_t wcount;
    uint64_t rng;
    tc__slab slab;       /* the entries' memory */
    /* read-mostly: set at open */
    _Alignas(64) l1_slot *slots;
    uint32_t nslots;
    uint32_t stride;     /* coprime with nslots: the hand visits every slot once a turn */
    uint64_t cap, max_bytes;
    uint64_t wcap;
    uint64_t epoch_ms;   /* exp_s is relative to this */
    /* W-TinyLFU window: FIFO ring of entries with their slot hashes, NULL where an entry left early */
    struct ring_item { l1_ent *e; uint32_t h; } *ring;
    uint32_t ring_cap;
    tc__sketch sketch;   /* (its additions counter is written by hits: last, on its own line) */
} __attribute__((aligned(64))) l1_shard;

typedef struct l1_tier {
    tc__tier base;
    tc_policy policy;
    uint64_t default_ttl_ms;
    uint64_t max_ttl_ms; /* CACHE_MEMORY_MAX_TTL: no entry lives longer (0: no cap) */
    uint64_t cap, max_bytes;
    unsigned nshards;
    uint64_t shard_mask;
    l1_shard *shards;
    void *region;        /* every shard's slot table and sketch, one mapping (huge pages) */
    size_t region_bytes;
} l1_tier;

uint64_t tc__l1_charge(size_t klen, size_t vlen) {
    size_t size = 16 + klen + vlen; /* sizeof(l1_ent) */
    size_t chunk = size <= TC__SLAB_MAX ? (size + TC__SLAB_STEP - 1) / TC__SLAB_STEP * TC__SLAB_STEP
                                        : (size + 8 + 15) / 16 * 16; /* malloc's chunk */
    return chunk + TC__L1_TABLE_OVERHEAD;
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                  */
/* ------------------------------------------------------------------------ */

static inline size_t ent_klen(const l1_ent *e) { return (size_t)(e->exp_klen & 0xFFFF); }
static inline uint64_t ent_exp(const l1_ent *e) { return e->exp_klen >> 16; }
static inline const char *ent_key(const l1_ent *e) { return (const char *)(e + 1); }
static inline char *ent_val(l1_ent *e) { return (char *)(e + 1) + ent_klen(e); }
static inline size_t ent_size(size_t klen, size_t vlen) { return sizeof(l1_ent) + klen + vlen; }
static inline uint64_t ent_charge(size_t klen, size_t vlen) { return tc__l1_charge(klen, vlen); }

static inline uint64_t rng_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* The meta word for an entry with expiry exp (ms, 0 = never) in shard sh. */
static inline uint32_t meta_exp(const l1_shard *sh, uint64_t exp) {
    if (exp == 0) return 0;
    uint64_t s = exp > sh->epoch_ms ? (exp - sh->epoch_ms) / 1000 : 0;
    if (s > META_EXP_MAX) s = META_EXP_MAX;
    return META_TTL | ((uint32_t)s << META_EXP_SHIFT);
}

/* 1 when the slot's entry has certainly expired at now_s (seconds since the epoch). */
static inline int meta_expired(uint32_t meta, uint64_t now_s) {
    if (!(meta & META_TTL)) return 0;
    uint32_t es = meta >> META_EXP_SHIFT;
    return es != META_EXP_MAX && es < now_s;
}

/* ------------------------------------------------------------------------ */
/* Table                                                                    */
/* ------------------------------------------------------------------------ */

static inline uint32_t home_of(const l1_shard *sh, uint32_t h) {
    return (uint32_t)(((uint64_t)h * sh->nslots) >> 32);
}

static inline uint32_t next_slot(const l1_shard *sh, uint32_t i) { return i + 1 == sh->nslots ? 0 : i + 1; }

/* Key equality; 16-byte and shorter keys are compared inline, without a call. */
static inline int key_eq(const char *a, const char *b, size_t n) {
    if (n == 16) {
        uint64_t a0, a1, b0, b1;
        memcpy(&a0, a, 8);
        memcpy(&a1, a + 8, 8);
        memcpy(&b0, b, 8);
        memcpy(&b1, b + 8, 8);
        return ((a0 ^ b0) | (a1 ^ b1)) == 0;
    }
    return memcmp(a, b, n) == 0;
}

/* Index of the slot holding key, or UINT32_MAX; *empty (may be NULL) receives the empty slot
 * that ended an unsuccessful probe, where the key would be inserted. */
static uint32_t find_locked(const l1_shard *sh, uint32_t h, const void *key, size_t klen, uint32_t *empty) {
    uint32_t i = home_of(sh, h);
    for (;;) {
        const l1_slot *s = &sh->slots[i];
        if (s->e == NULL) {
            if (empty != NULL) *empty = i;
            return UINT32_MAX;
        }
        if (s->h == h && ent_klen(s->e) == klen && key_eq(ent_key(s->e), key, klen)) return i;
        i = next_slot(sh, i);
    }
}

/* Index of the slot holding entry e (known to be in the table) -- pointer compare only. */
static uint32_t slot_of_entry_locked(const l1_shard *sh, uint32_t h, const l1_ent *e) {
    uint32_t i = home_of(sh, h);
    while (sh->slots[i].e != e) i = next_slot(sh, i);
    return i;
}

/* 1 when position j lies cyclically in (i, k]. */
static inline int cyc_between(uint32_t i, uint32_t j, uint32_t k) {
    return i <= k ? (i < j && j <= k) : (i < j || j <= k);
}

/* Empties slot i and shifts later members of its probe run back (no tombstones). */
static void remove_slot_locked(l1_shard *sh, uint32_t i) {
    uint32_t j = i;
    for (;;) {
        sh->slots[i].e = NULL;
        for (;;) {
            j = next_slot(sh, j);
            if (sh->slots[j].e == NULL) return;
            uint32_t k = home_of(sh, sh->slots[j].h);
            /* the member at j may move to i unless its home lies cyclically in (i, j] */
            if (!cyc_between(i, k, j)) break;
        }
        sh->slots[i] = sh->slots[j]; /* the window ring refers to entries, not slots */
        i = j;
    }
}

/* ------------------------------------------------------------------------ */
/* Window ring (W-TinyLFU)                                                  */
/* ------------------------------------------------------------------------ */

static void ring_compact_locked(l1_shard *sh) {
    uint32_t n = 0;
    struct ring_item *tmp = sh->ring;
    struct ring_item *fresh = malloc(sizeof(*fresh) * sh->ring_cap);
    if (fresh == NULL) return; /* keep the old ring: correct, only less compact */
    for (uint32_t k = 0, p = sh->ring_head; k < sh->ring_used; k++, p = (p + 1) % sh->ring_cap) {
        if (tmp[p].e != NULL) {
            fresh[n] = tmp[p];
            fresh[n].e->aux = n;
            n++;
        }
    }
    free(tmp);
    sh->ring = fresh;
    sh->ring_head = 0;
    sh->ring_tail = n % sh->ring_cap;
    sh->ring_used = n;
}

/* Appends e to the window. The ring holds twice the window's capacity, so positions emptied
 * by early departures (deletes, overwrites) are only compacted once per wcap pushes. */
static void ring_push_locked(l1_shard *sh, l1_ent *e, uint32_t h) {
    if (sh->ring_used == sh->ring_cap) ring_compact_locked(sh);
    if (sh->ring_used == sh->ring_cap) return; /* compaction failed (OOM): leaves the window untracked */
    sh->ring[sh->ring_tail].e = e;
    sh->ring[sh->ring_tail].h = h;
    e->aux = sh->ring_tail;
    sh->ring_tail = (sh->ring_tail + 1) % sh->ring_cap;
    sh->ring_used++;
    sh->wcount++;
}

/* The slot of the oldest window entry, which leaves the ring (and the window), or UINT32_MAX. */
static uint32_t ring_pop_locked(l1_shard *sh) {
    while (sh->ring_used > 0) {
        struct ring_item it = sh->ring[sh->ring_head];
        sh->ring[sh->ring_head].e = NULL;
        sh->ring_head = (sh->ring_head + 1) % sh->ring_cap;
        sh->ring_used--;
        if (it.e != NULL) {
            sh->wcount--;
            uint32_t i = slot_of_entry_locked(sh, it.h, it.e);
            sh->slots[i].meta &= ~META_WIN;
            return i;
        }
    }
    return UINT32_MAX;
}

/* Forgets a window entry that leaves early. */
static void ring_forget_locked(l1_shard *sh, l1_ent *e) {
    if (e->aux < sh->ring_cap && sh->ring[e->aux].e == e) {
        sh->ring[e->aux].e = NULL;
        sh->wcount--;
    }
}

/* ------------------------------------------------------------------------ */
/* Removal and eviction                                                     */
/* ------------------------------------------------------------------------ */

/* Frees the entry at slot i. */
static void drop_slot_locked(l1_shard *sh, uint32_t i) {
    l1_ent *e = sh->slots[i].e;
    if (sh->slots[i].meta & META_WIN) ring_forget_locked(sh, e);
    sh->count--;
    sh->bytes -= ent_charge(ent_klen(e), e->vlen);
    remove_slot_locked(sh, i);
    tc__slab_free(&sh->slab, e, ent_size(ent_klen(e), e->vlen));
}

/* The hand's next position. The hand visits slots in a fixed pseudo-random cyclic order, not
 * in slot order: evicting in slot order would leave a sparse band behind the hand and a band
 * near load 1.0 ahead of it, where linear-probing runs grow to thousands of slots (measured:
 * mean displacement 7.3 instead of 1.5 at load 0.75). */
static inline uint32_t hand_next(const l1_shard *sh, uint32_t i) {
    uint32_t n = i + sh->stride;
    return n >= sh->nslots || n < i ? n - sh->nslots : n;
}

/* CLOCK over main: the slot of the first main entry with reference count 0 (decrementing the
 * others), freeing expired entries it passes (counted in *freed). Bounded: at most four full
 * turns, since every turn lowers every passed count. UINT32_MAX when main is empty. */
static uint32_t clock_victim_locked(l1_shard *sh, uint64_t now_s, int *freed) {
    uint64_t limit = (uint64_t)sh->nslots * 4 + 4;
    for (uint64_t step = 0; step < limit; step++) {
        uint32_t i = sh->hand;
        l1_slot *s = &sh->slots[i];
        if (s->e == NULL || (s->meta & META_WIN)) {
            sh->hand = hand_next(sh, i);
            continue;
        }
        if (meta_expired(s->meta, now_s)) {
            drop_slot_locked(sh, i); /* a later member may have moved into i: look again */
            sh->expirations++;
            (*freed)++;
            continue;
        }
        if (s->meta & META_FREQ) {
            s->meta--;
            sh->hand = hand_next(sh, i);
            continue;
        }
        return i;
    }
    return UINT32_MAX;
}

/* A slot index chosen at random among occupied slots (volatile: with a TTL), or UINT32_MAX. */
static uint32_t random_slot_locked(l1_shard *sh, int volatile_only) {
    for (int tries = 0; tries < 32; tries++) {
        uint32_t i = (uint32_t)(((rng_next(&sh->rng) >> 32) * sh->nslots) >> 32);
        const l1_slot *s = &sh->slots[i];
        if (s->e != NULL && (!volatile_only || (s->meta & META_TTL))) return i;
    }
    /* sparse table or few volatile keys: scan from a random place (bounded by nslots) */
    uint32_t start = (uint32_t)(((rng_next(&sh->rng) >> 32) * sh->nslots) >> 32);
    for (uint32_t k = 0, i = start; k < sh->nslots; k++, i = next_slot(sh, i)) {
        const l1_slot *s = &sh->slots[i];
        if (s->e != NULL && (!volatile_only || (s->meta & META_TTL))) return i;
    }
    return UINT32_MAX;
}

/* Redis-style victim: the best of TC__L1_SAMPLES sampled entries under the policy. */
static uint32_t sampled_victim_locked(l1_shard *sh, tc_policy p, uint64_t now_ms) {
    int volatile_only = tc__policy_is_volatile(p);
    uint32_t best = UINT32_MAX;
    uint64_t best_score = 0;
    for (int k = 0; k < TC__L1_SAMPLES; k++) {
        uint32_t i = random_slot_locked(sh, volatile_only);
        if (i == UINT32_MAX) break;
        const l1_ent *e = sh->slots[i].e;
        uint64_t score = tc__evict_score(p, e->aux, sh->clock, ent_exp(e), now_ms);
        if (best == UINT32_MAX || score > best_score) {
            best = i;
            best_score = score;
        }
        if (p == TC_POLICY_ALLKEYS_RANDOM || p == TC_POLICY_VOLATILE_RANDOM) break;
    }
    return best;
}

/* Frees up to TC__L1_SWEEP slots' worth of expired entries at the sweep cursor. */
static void sweep_locked(l1_shard *sh, uint64_t now_s) {
    for (int k = 0; k < TC__L1_SWEEP; k++) {
        uint32_t i = sh->sweep;
        l1_slot *s = &sh->slots[i];
        if (s->e != NULL && meta_expired(s->meta, now_s)) {
            drop_slot_locked(sh, i);
            sh->expirations++;
            continue; /* slot i may hold a shifted member now */
        }
        sh->sweep = next_slot(sh, i);
    }
}

/* Evicts until the shard is within its bounds; for W-TinyLFU, first moves entries out of an
 * over-full window through the admission duel. Returns 0 or TC_EFULL (noeviction, or nothing
 * evictable under a volatile policy). */
static int make_room_locked(l1_tier *t, l1_shard *sh, uint64_t now_ms) {
    uint64_t now_s = now_ms > sh->epoch_ms ? (now_ms - sh->epoch_ms) / 1000 : 0;
    if (t->policy == TC_POLICY_TINYLFU) {
        while (sh->wcount > sh->wcap) {
            uint32_t ci = ring_pop_locked(sh); /* the candidate, now outside the window */
            if (ci == UINT32_MAX) break;
            if (sh->count <= sh->cap && sh->bytes <= sh->max_bytes) continue; /* main has room */
            l1_ent *c = sh->slots[ci].e;
            uint32_t ch = sh->slots[ci].h;
            int freed = 0;
            uint32_t vi = clock_victim_locked(sh, now_s, &freed);
            if (freed) {
                if (sh->count <= sh->cap && sh->bytes <= sh->max_bytes) continue;
                ci = slot_of_entry_locked(sh, ch, c); /* removals may have shifted it */
                if (vi != UINT32_MAX) vi = clock_victim_locked(sh, now_s, &freed);
            }
            if (vi == UINT32_MAX) {
                drop_slot_locked(sh, ci);
                sh->evictions++;
                continue;
            }
            unsigned cf = tc__sketch_freq(&sh->sketch, ch);
            unsigned vf = tc__sketch_freq(&sh->sketch, sh->slots[vi].h);
            int admit = cf > vf || (cf > 5 && (rng_next(&sh->rng) & 127) == 0);
            if (admit) sh->slots[ci].meta = (sh->slots[ci].meta & ~META_FREQ) | 1; /* one turn of grace */
            drop_slot_locked(sh, admit ? vi : ci);
            sh->evictions++;
        }
        while (sh->count > sh->cap || sh->bytes > sh->max_bytes) {
            int freed = 0;
            uint32_t vi = clock_victim_locked(sh, now_s, &freed);
            if (freed) continue;
            if (vi == UINT32_MAX) { /* main is empty: the window's oldest goes */
                vi = ring_pop_locked(sh);
                if (vi == UINT32_MAX) return TC_EFULL;
            }
            drop_slot_locked(sh, vi);
            sh->evictions++;
        }
        return 0;
    }
    while (sh->count > sh->cap || sh->bytes > sh->max_bytes) {
        if (t->policy == TC_POLICY_NOEVICTION) return TC_EFULL;
        uint32_t vi = sampled_victim_locked(sh, t->policy, now_ms);
        if (vi == UINT32_MAX) return TC_EFULL;
        int expired = meta_expired(sh->slots[vi].meta, now_s);
        drop_slot_locked(sh, vi);
        if (expired) sh->expirations++;
        else sh->evictions++;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Tier operations                                                          */
/* ------------------------------------------------------------------------ */

static inline l1_shard *shard_of(l1_tier *t, uint64_t hash) { return &t->shards[hash & t->shard_mask]; }

/* Records an access for the policy (hit path: slot line and sketch line only). */
static inline void touch_locked(l1_tier *t, l1_shard *sh, l1_slot *s, uint64_t now_ms) {
    switch (t->policy) {
    case TC_POLICY_TINYLFU:
        if ((s->meta & META_FREQ) != META_FREQ) s->meta++;
        tc__sketch_incr(&sh->sketch, s->h);
        break;
    case TC_POLICY_ALLKEYS_LRU:
    case TC_POLICY_VOLATILE_LRU:
        s->e->aux = ++sh->clock;
        break;
    case TC_POLICY_ALLKEYS_LFU:
    case TC_POLICY_VOLATILE_LFU:
        s->e->aux = tc__lfu_touch(s->e->aux, now_ms, &sh->rng);
        break;
    default:
        break;
    }
}

/* Brings the key's slot and entry into the cache *before* the shard lock is taken, so the lock is
 * held for cache hits only: with the loads inside, two threads on one shard wait out each
 * other's memory latency (measured: two threads slower than one). The slot is read without the
 * lock -- a deliberate, benign race: the pointer read is only a prefetch hint (a prefetch of
 * freed memory does not fault), never dereferenced; the real lookup is redone under the lock.
 * Hence no ThreadSanitizer instrumentation here. */
__attribute__((no_sanitize("thread"))) static inline void warm_locked_path(const l1_shard *sh, uint32_t h) {
    const l1_slot *s = &sh->slots[home_of(sh, h)];
    const l1_ent *e = s->h == h ? s->e : NULL;
    if (e != NULL) {
        __builtin_prefetch(e, 0, 3);
        __builtin_prefetch((const char *)e + 64, 0, 3);
    }
}

static int l1_get(tc__tier *tier, const tc__key *k, tc__sink *out, int64_t *ttl_ms) {
    l1_tier *t = (l1_tier *)tier;
    const void *key = k->p;
    size_t klen = k->len;
    uint64_t hash = k->hash;
    uint32_t h = (uint32_t)(hash >> 32);
    l1_shard *sh = shard_of(t, hash);
    if (t->policy == TC_POLICY_TINYLFU) tc__sketch_prefetch(&sh->sketch, h);
    warm_locked_path(sh, h);
    uint64_t now = tc__now_ms();
    int rc = 0;
    l1_lock_acquire(&sh->lock);
    uint32_t i = find_locked(sh, h, key, klen, NULL);
    if (i == UINT32_MAX) {
        sh->misses++;
        l1_lock_release(&sh->lock);
        return TC_EMISS;
    }
    l1_slot *s = &sh->slots[i];
    l1_ent *e = s->e;
    uint64_t exp = ent_exp(e);
    if (exp != 0 && exp <= now) {
        drop_slot_locked(sh, i);
        sh->expirations++;
        sh->misses++;
        l1_lock_release(&sh->lock);
        return TC_EMISS;
    }
    sh->hits++;
    touch_locked(t, sh, s, now);
    if (ttl_ms != NULL) *ttl_ms = exp ? (int64_t)(exp - now) : TC_TTL_NONE;
    if (out != NULL) rc = tc__sink_put(out, ent_val(e), e->vlen);
    l1_lock_release(&sh->lock);
    return rc;
}

static int l1_set(tc__tier *tier, const tc__key *k, const void *val, size_t vlen, int64_t ttl_ms,
                  const tc__fence *fence) {
    l1_tier *t = (l1_tier *)tier;
    const void *key = k->p;
    size_t klen = k->len;
    if (klen > 0xFFFF || vlen > UINT32_MAX) return TC_ETOOLARGE;
    if (ttl_ms > (int64_t)TC_TTL_MAX_MS) return TC_EINVAL;
    uint64_t hash = k->hash;
    uint32_t h = (uint32_t)(hash >> 32);
    l1_shard *sh = shard_of(t, hash);
    uint64_t charge = ent_charge(klen, vlen);
    if (charge > sh->max_bytes) return TC_ETOOLARGE;
    uint64_t now = tc__now_ms();
    uint64_t exp = 0;
    if (ttl_ms == TC__TTL_DEFAULT) exp = t->default_ttl_ms ? now + t->default_ttl_ms : 0;
    else if (ttl_ms > 0) exp = now + (uint64_t)ttl_ms;
    /* the cap bounds every entry, back-fills of a lower tier's value included (HybridCache's
     * LocalCacheExpiration): how long this process may keep a copy */
    if (t->max_ttl_ms != 0 && (exp == 0 || exp > now + t->max_ttl_ms)) exp = now + t->max_ttl_ms;
    l1_lock_acquire(&sh->lock);
    if (!tc__fence_ok(fence)) {
        l1_lock_release(&sh->lock);
        return 0;
    }
    uint64_t now_s = now > sh->epoch_ms ? (now - sh->epoch_ms) / 1000 : 0;
    sweep_locked(sh, now_s); /* before the lookup: its removals move slots */
    uint32_t empty = 0;
    uint32_t i = find_locked(sh, h, key, klen, &empty);
    if (i == UINT32_MAX && t->policy == TC_POLICY_NOEVICTION &&
        (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes)) {
        /* expired entries do not hold capacity: reclaim before refusing */
        for (uint32_t n = 0; n < sh->nslots && (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes); n++)
            sweep_locked(sh, now_s);
        if (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes) {
            l1_lock_release(&sh->lock);
            return TC_EFULL;
        }
        find_locked(sh, h, key, klen, &empty); /* the sweeps moved slots */
    }
    if (i != UINT32_MAX && t->policy == TC_POLICY_NOEVICTION &&
        sh->bytes - ent_charge(klen, sh->slots[i].e->vlen) + charge > sh->max_bytes) {
        l1_lock_release(&sh->lock);
        return TC_EFULL;
    }
    l1_ent *fresh = tc__slab_alloc(&sh->slab, ent_size(klen, vlen));
    if (fresh == NULL) {
        l1_lock_release(&sh->lock);
        return TC_ENOMEM;
    }
    fresh->exp_klen = (exp << 16) | klen;
    fresh->vlen = (uint32_t)vlen;
    fresh->aux = 0;
    memcpy((char *)(fresh + 1), key, klen);
    if (vlen) memcpy((char *)(fresh + 1) + klen, val, vlen);
    if (i != UINT32_MAX) {
        /* overwrite: same slot, same policy position */
        l1_slot *s = &sh->slots[i];
        l1_ent *old = s->e;
        sh->bytes += charge - ent_charge(klen, old->vlen);
        fresh->aux = old->aux;
        if ((s->meta & META_WIN) && old->aux < sh->ring_cap && sh->ring[old->aux].e == old)
            sh->ring[old->aux].e = fresh;
        s->e = fresh;
        s->meta = (s->meta & (META_FREQ | META_WIN)) | meta_exp(sh, exp);
        touch_locked(t, sh, s, now);
        tc__slab_free(&sh->slab, old, ent_size(klen, old->vlen));
    } else {
        i = empty;
        l1_slot *s = &sh->slots[i];
        s->h = h;
        s->e = fresh;
        s->meta = meta_exp(sh, exp);
        sh->count++;
        sh->bytes += charge;
        switch (t->policy) {
        case TC_POLICY_TINYLFU:
            s->meta |= META_WIN;
            ring_push_locked(sh, fresh, h);
            tc__sketch_incr(&sh->sketch, h);
            break;
        case TC_POLICY_ALLKEYS_LRU:
        case TC_POLICY_VOLATILE_LRU: fresh->aux = ++sh->clock; break;
        case TC_POLICY_ALLKEYS_LFU:
        case TC_POLICY_VOLATILE_LFU: fresh->aux = tc__lfu_new(now); break;
        default: break;
        }
    }
    sh->sets++;
    int rc = make_room_locked(t, sh, now);
    if (rc != 0) {
        /* a volatile policy found nothing to evict: undo this write, keep the bounds */
        uint32_t j = find_locked(sh, h, key, klen, NULL);
        if (j != UINT32_MAX && sh->slots[j].e == fresh) drop_slot_locked(sh, j);
        sh->sets--;
    }
    l1_lock_release(&sh->lock);
    return rc;
}

static int l1_del(tc__tier *tier, const tc__key *k) {
    l1_tier *t = (l1_tier *)tier;
    const void *key = k->p;
    size_t klen = k->len;
    uint64_t hash = k->hash;
    l1_shard *sh = shard_of(t, hash);
    l1_lock_acquire(&sh->lock);
    uint32_t i = find_locked(sh, (uint32_t)(hash >> 32), key, klen, NULL);
    if (i != UINT32_MAX) {
        drop_slot_locked(sh, i);
        sh->deletes++;
    }
    l1_lock_release(&sh->lock);
    return 0;
}

/* Removes every entry for which match() holds, shard by shard. The scan starts just after an
 * empty slot: back-shifts never move a member across an empty slot, so every member is seen
 * exactly once even though deletions move members back. */
static void remove_matching(l1_tier *t, const void *prefix, size_t plen) {
    for (unsigned k = 0; k < t->nshards; k++) {
        l1_shard *sh = &t->shards[k];
        l1_lock_acquire(&sh->lock);
        uint32_t start = 0;
        while (sh->slots[start].e != NULL) start++;
        uint32_t i = next_slot(sh, start);
        for (uint32_t seen = 0; seen < sh->nslots;) {
            l1_ent *e = sh->slots[i].e;
            if (e != NULL && ent_klen(e) >= plen && memcmp(ent_key(e), prefix, plen) == 0) {
                drop_slot_locked(sh, i);
                sh->deletes++;
                continue; /* slot i may now hold the next member of the run */
            }
            i = next_slot(sh, i);
            seen++;
        }
        l1_lock_release(&sh->lock);
    }
}

static int l1_clear(tc__tier *tier) {
    remove_matching((l1_tier *)tier, "", 0);
    return 0;
}

static int l1_clear_prefix(tc__tier *tier, const void *prefix, size_t plen) {
    remove_matching((l1_tier *)tier, prefix, plen);
    return 0;
}

static void l1_stats(tc__tier *tier, tc_tier_stats *out) {
    l1_tier *t = (l1_tier *)tier;
    memset(out, 0, sizeof *out);
    out->tier = TC_TIER_L1;
    strcpy(out->type, "memory");
    out->available = 1;
    out->max_entries = t->cap;
    out->max_bytes = t->max_bytes;
    for (unsigned k = 0; k < t->nshards; k++) {
        l1_shard *sh = &t->shards[k];
        l1_lock_acquire(&sh->lock);
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->sets += sh->sets;
        out->deletes += sh->deletes;
        out->evictions += sh->evictions;
        out->expirations += sh->expirations;
        out->entries += sh->count;
        out->bytes += sh->bytes;
        l1_lock_release(&sh->lock);
    }
    tc__stat_extra(out, "policy", "%s", tc_policy_name(t->policy));
    tc__stat_extra(out, "shards", "%u", t->nshards);
    tc__stat_extra(out, "table_bytes_per_entry", "%d", TC__L1_TABLE_OVERHEAD);
}

static void shard_free(l1_shard *sh) {
    if (sh->slots != NULL) {
        for (uint32_t i = 0; i < sh->nslots; i++) {
            l1_ent *e = sh->slots[i].e;
            if (e != NULL) tc__slab_free(&sh->slab, e, ent_size(ent_klen(e), e->vlen));
        }
    }
    tc__slab_destroy(&sh->slab);
    free(sh->ring);
}

static void l1_close(tc__tier *tier) {
    l1_tier *t = (l1_tier *)tier;
    if (t == NULL) return;
    for (unsigned k = 0; k < t->nshards; k++) shard_free(&t->shards[k]);
    free(t->shards);
    tc__big_free(t->region, t->region_bytes);
    free(t);
}

static const tc__tier_ops l1_ops = {
    .get = l1_get,
    .set = l1_set,
    .del = l1_del,
    .clear = l1_clear,
    .clear_prefix = l1_clear_prefix,
    .stats = l1_stats,
    .close = l1_close,
};

/* ------------------------------------------------------------------------ */
/* Construction                                                             */
/* ------------------------------------------------------------------------ */

/* Shards: one per 1024 entries (a power of two, at most 256), and at least 4 per CPU when the
 * capacity allows. Many shards keep two threads off one lock (measured on zipf99, capacity
 * 100000, 2 threads: 8 shards ran slower than one thread, 64 shards 1.2x faster), and each
 * shard of >= 1024 entries keeps its own W-TinyLFU as good as a global one (hit ratio 0.8085
 * with 64 shards, 0.8073 with 8, 0.7977 with 1). */
static unsigned auto_shards(uint64_t cap) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    uint64_t want = cap / 1024;
    if (want < (uint64_t)ncpu * 4) want = (uint64_t)ncpu * 4;
    if (want > cap / 64) want = cap / 64; /* never shards of fewer than 64 entries */
    unsigned n = 1;
    while ((uint64_t)n * 2 <= want && n < 256) n *= 2;
    return n;
}

static uint32_t gcd32(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

static uint64_t shard_nslots(uint64_t cap) { return cap + cap / 3 + 2; }

/* Bytes of the region a shard of cap entries uses: its slot table, then its sketch. */
static size_t shard_region_bytes(tc_policy policy, uint64_t cap) {
    size_t b = (size_t)shard_nslots(cap) * sizeof(l1_slot);
    b = (b + 63) & ~(size_t)63;
    if (policy == TC_POLICY_TINYLFU) b += tc__sketch_bytes(cap);
    return b;
}

static int shard_init(l1_shard *sh, tc_policy policy, uint64_t cap, uint64_t max_bytes, uint64_t seed,
                      uint64_t epoch, char *mem) {
    memset(sh, 0, sizeof *sh);
    atomic_init(&sh->lock.held, 0);
    sh->cap = cap;
    sh->max_bytes = max_bytes;
    sh->epoch_ms = epoch;
    sh->rng = seed | 1;
    tc__slab_init(&sh->slab);
    uint64_t nslots = shard_nslots(cap);
    if (nslots > UINT32_MAX - 1) return TC_EINVAL;
    sh->nslots = (uint32_t)nslots;
    sh->stride = (uint32_t)(nslots * 0.6180339887) | 1;
    while (gcd32(sh->stride, sh->nslots) != 1) sh->stride += 2;
    if (sh->stride >= sh->nslots) sh->stride = 1;
    sh->slots = (l1_slot *)mem;
    if (policy == TC_POLICY_TINYLFU) {
        sh->wcap = cap / 100 ? cap / 100 : 1;
        sh->ring_cap = (uint32_t)(2 * sh->wcap + 2);
        sh->ring = calloc(sh->ring_cap, sizeof(*sh->ring));
        if (sh->ring == NULL) return TC_ENOMEM;
        size_t off = ((size_t)nslots * sizeof(l1_slot) + 63) & ~(size_t)63;
        tc__sketch_init(&sh->sketch, cap, mem + off);
    }
    return 0;
}

int tc__l1_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen) {
    *out = NULL; /* opt's ranges were checked by the configuration table (tc__opts_validate) */
    l1_tier *t = calloc(1, sizeof *t);
    if (t == NULL) return tc__errf(errbuf, errlen, TC_ENOMEM, "L1: out of memory");
    t->base.ops = &l1_ops;
    t->base.id = TC_TIER_L1;
    t->policy = opt->mem_eviction;
    t->default_ttl_ms = opt->mem_default_ttl_ms;
    t->max_ttl_ms = opt->mem_max_ttl_ms;
    t->cap = opt->mem_max_entries;
    t->max_bytes = opt->mem_max_bytes;
    unsigned n = opt->mem_shards ? opt->mem_shards : auto_shards(t->cap);
    while (n > 1 && n > t->cap) n /= 2;
    t->nshards = n;
    t->shard_mask = n - 1;
    t->shards = aligned_alloc(64, sizeof(l1_shard) * n);
    if (t->shards == NULL) {
        free(t);
        return tc__errf(errbuf, errlen, TC_ENOMEM, "L1: out of memory");
    }
    uint64_t epoch = tc__now_ms();
    uint64_t seed = tc__hash(&t, sizeof t) ^ tc__now_ns();
    for (unsigned k = 0; k < n; k++) t->region_bytes += shard_region_bytes(t->policy, t->cap / n + (k < t->cap % n));
    t->region = tc__big_alloc(t->region_bytes);
    unsigned made = 0;
    int rc = t->region == NULL ? TC_ENOMEM : 0;
    char *mem = t->region;
    for (; made < n && rc == 0; made++) {
        uint64_t cap = t->cap / n + (made < t->cap % n);
        uint64_t bytes = t->max_bytes / n + (made < t->max_bytes % n);
        rc = shard_init(&t->shards[made], t->policy, cap, bytes, seed + made * 0x9E3779B97F4A7C15ULL, epoch, mem);
        mem += shard_region_bytes(t->policy, cap);
    }
    if (rc != 0) {
        t->nshards = made;
        l1_close(&t->base);
        return tc__errf(errbuf, errlen, rc, "L1: cannot allocate %llu entries: %s",
                        (unsigned long long)opt->mem_max_entries, tc_strerror(rc));
    }
    *out = &t->base;
    return 0;
}
