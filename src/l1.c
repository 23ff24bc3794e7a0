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
 *   freq   CLOCK reference count 0..3 (W-TinyLFU main region; in the window: read since it
 *          entered or was last given a second chance)
 *   win    the entry is in the W-TinyLFU admission window
 *   ttl    the entry has an expiry
 *   exp_s  expiry in whole seconds since the shard's epoch (saturating), so sweeps find
 *          definitely-expired entries without reading the entries
 *
 * The table grows with what the shard holds, not with what it may hold: it starts small and
 * doubles when an insert would take the load factor above 0.75, up to capacity * 4/3 slots (the
 * shard's share of CACHE_MEMORY_MAX_ENTRIES), and only while the shard's byte allowance pays
 * for it; a table that cannot grow bounds the shard's entries instead. So a large
 * CACHE_MEMORY_MAX_ENTRIES under a small CACHE_MEMORY_MAX_BYTES costs nothing: a table sized by
 * entry count and touched at random was resident whole (87 MB under an 8 MiB limit). Tables
 * of every size lie in one reservation per shard, mapped for the largest and touched only as
 * far as used; a resize rehashes in place (O(slots), under the shard lock, amortised O(1) per
 * insert) and carries the sketch's counts over (tc__sketch_resize). A shard emptied to give
 * bytes to another, or by a clear, shrinks its table. Deletion shifts later members of the
 * probe run back (no tombstones).
 *
 * An entry is one chunk from the tier's slab allocator (l1_slab.c: 8-byte size classes shared
 * by the shards, a bounded cache of free chunks per shard, no per-chunk header): a 16-byte
 * header, then the key, then the value.
 *
 * W-TinyLFU. New entries enter a window, a FIFO ring of slot indices where an entry read while
 * in it gets a second chance (it goes back to the tail), so the window ages entries like an LRU.
 * An entry leaving the window is a candidate for the main region; when main is full the
 * candidate duels the CLOCK victim of main (the first main entry at the hand whose reference
 * count is 0, counts being decremented as the hand passes): the one the frequency sketch has
 * seen strictly more often stays, the victim on a tie. Hits cost a sketch increment and a 2-bit
 * store into the slot; there are no lists to relink.
 *
 * The window's size adapts (CACHE_MEMORY_WINDOW=0, the default): a hill climber (l1_climb.c)
 * moves it between 1 entry and 15/16 of the capacity -- small when frequency predicts reuse
 * (skewed, looping, scanning traffic), large when recency does -- by controlled trials on
 * subsets of the shards, judged against the measured noise. It is shared by the shards:
 * each reports its reads in batches to its subset's atomic counters (from its writes, and every
 * 256th hit: a shard whose reads all hit never writes), the thread that completes
 * a sampling period runs the climber (under a try-lock, never waiting), and every shard reads
 * the published plan when it next evicts. docs/EVICTION.md gives the design and measurements.
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
 * Accounting. CACHE_MEMORY_MAX_BYTES bounds what the tier really takes, so that a process sized
 * by it is not killed for exceeding it. Each entry is charged its chunk (16-byte header, key and
 * value, rounded up to the 8-byte class; above the slab's largest class, malloc's chunk; from
 * 64 KiB, whole pages): tc__l1_charge(), which tests and docs use. Each shard is charged its
 * own structures as they are: its header, its window ring, and its slot table and sketch at
 * their current size, in whole pages ("structure_bytes" in the statistics). What is not
 * charged is bounded by constants: the shards' caches of free chunks (1 MiB in all), the last
 * touched page of each size class (4 KiB x 256 classes), and the slack of partly used slab
 * pages (measured: a process filling a 32 MiB limit with values of 1 to 1000 bytes, 125
 * classes, grew 3.7 MiB more than the tier charged; tests/test_l1_memory.c holds the bound).
 *
 * Byte budget. Each shard has an allowance (max_bytes), at first its share of the limit; the
 * allowances and a tier-wide pool add up to CACHE_MEMORY_MAX_BYTES. A write evicts within its
 * own shard, as ever, except for a large entry (over an eighth of a share): it gathers the room
 * it lacks from the pool and from every shard in turn (each evicting its part under its own
 * lock, never two shard locks at once), so any entry that fits the whole tier can be stored
 * even when it is larger than a shard's share (a 1 MiB value was refused under 256 shards). A
 * shard whose allowance rose above its share gives the excess back to the pool as soon as it
 * holds less; a shard that gave takes back from the pool, up to its share, when it needs room.
 * The common write touches no shared state: the pool is read or written only on these paths.
 *
 * Thread-safety: every operation takes one shard lock at a time (clear, stats and the gathering
 * for a large entry take several in turn, never two at once). Between shards are shared only
 * the slab's classes (a mutex each, taken under a shard lock to refill or flush a shard's cache
 * of chunks), the byte pool (an atomic, used by large entries and shards that gave room), and
 * the window climber's atomic counters and plan, its state touched only by the holder of a
 * try-lock nobody waits for.
 */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "evict.h"
#include "l1_climb.h"
#include "l1_sketch.h"
#include "l1_slab.h"
#include "tier.h"
#include "util.h"

#define TC__L1_SAMPLES 8 /* Redis pairs 5 with a 16-entry pool; 8 without one is as close to exact */
#define TC__L1_SWEEP 4
#define TC__L1_START_SLOTS 64u           /* a new shard's table: 1 KiB of slots */
#define TC__L1_SHARD_MIN_BYTES (256u * 1024u) /* automatic sharding keeps shares at least this big */
#define TC__L1_CACHE_TOTAL (1024u * 1024u)    /* the shards' caches of free chunks, in all */
#define TC__HUGE (2u * 1024u * 1024u)          /* a table part this large is backed by huge pages */

#define META_FREQ 3u
#define META_WIN 4u
#define META_TTL 8u
#define META_EXP_SHIFT 4
#define META_EXP_MAX ((1u << 28) - 1)

typedef struct l1_ent {
    uint64_t exp_klen; /* stamped (1) | expiry (monotonic ms, 0 = never) (47) | key length (16) */
    uint32_t vlen;
    uint32_t aux;      /* window ring position | LRU clock | LFU counter and time */
    /* key bytes, then value bytes, then, when stamped, the stamps (kstamp, pstamp: 2 x 32 bits,
     * unaligned) the entry was filled under (docs/COHERENCE.md, 2.2) */
} l1_ent;

#define ENT_STAMPED (1ull << 63)
#define ENT_STAMP_BYTES 8

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
    uint64_t invalidated; /* entries found stale at a lookup (their stamps had moved) */
    /* written by writes (set, delete, eviction) */
    _Alignas(64) uint64_t count, bytes; /* bytes: entries' charges + fixed */
    uint64_t max_bytes;  /* the shard's byte allowance (see "Byte budget") */
    uint32_t gathering;  /* writers of this shard gathering room for a large entry */
    l1_ent *defer;       /* removed entries above the slab's sizes, freed after the lock (shard_unlock) */
    uint32_t hand;       /* CLOCK hand (tinylfu): a slot index, advanced by stride */
    uint32_t sweep;      /* expiry sweep cursor */
    uint32_t ring_head, ring_tail, ring_used; /* used = occupied positions incl. holes */
    uint32_t ring_cap;
    uint32_t *ring;      /* W-TinyLFU window: FIFO of the window's slot indices, RING_HOLE where one left */
    uint64_t wcount;     /* entries in the window */
    uint64_t wcap;       /* the window's size: its fraction of what the shard may hold now (cap) */
    uint64_t wseen, wcap_of; /* the tier's window word and the cap wcap was computed from */
    unsigned subset;     /* the shard's subset in window experiments (index % subsets) */
    uint64_t climb_reqs, climb_hits; /* hits + misses and hits already reported to the climber */
    uint64_t rng;
    /* written by resizes (rare), read by every operation */
    _Alignas(64) l1_slot *slots;
    uint32_t nslots;
    uint32_t stride;     /* coprime with nslots: the hand visits every slot once a turn */
    uint64_t cap;        /* entries the shard may hold now: cap_max, or less while the table is small */
    uint64_t fixed;      /* bytes of the shard's own structures (header, ring, table, sketch) */
    uint64_t table_cost; /* what the slot table and sketch take now (part of fixed) */
    size_t sk_off;       /* where the sketch lies in the reservation that begins at slots */
    void *tmap;          /* the reservation as mapped, and its length (see table_reserve) */
    size_t tmap_len;
    /* read-mostly: set at open */
    uint64_t cap_max;    /* its share of CACHE_MEMORY_MAX_ENTRIES, or less (see auto sizing) */
    uint32_t min_nslots; /* the first table: the largest is it doubled k times */
    uint32_t max_nslots; /* the table for cap_max entries */
    uint64_t base;       /* its share of CACHE_MEMORY_MAX_BYTES */
    uint64_t large;      /* an entry charged more is large: it gathers room tier-wide */
    uint64_t epoch_ms;   /* exp_s is relative to this */
    tc__slab *slab;      /* the tier's */
    tc__slab_cache slab_cache; /* free chunks this shard keeps (written by writes) */
    tc__sketch sketch;   /* (its additions counter is written by hits: last, on its own line) */
} __attribute__((aligned(64))) l1_shard;

typedef struct l1_tier {
    tc__tier base;
    tc_policy policy;
    uint64_t default_ttl_ms;
    uint64_t max_ttl_ms; /* CACHE_MEMORY_MAX_TTL: no entry lives longer (0: no cap) */
    uint64_t cap, max_bytes;
    uint64_t fits;       /* the largest charge an entry may have: max_bytes less the structures at open */
    unsigned nshards;
    uint64_t shard_mask;
    l1_shard *shards;
    tc__slab *slab;      /* the entries' memory, shared by the shards */
    _Alignas(64) _Atomic uint64_t pool; /* byte allowance no shard holds (see "Byte budget") */
    _Atomic unsigned gather_next;       /* where the next gathering starts its round */
    /* W-TinyLFU window sizing, shared by the shards. Shards add their hits and requests to their
     * subset's climb_acc; the thread that completes a period and wins climb_busy feeds it to the
     * climber and publishes the plan of the next period in window, which every shard follows. */
    int window_fixed;                /* CACHE_MEMORY_WINDOW set: no climbing */
    uint64_t climb_misses, climb_reqs_max, climb_reqs_min; /* what ends a sampling period */
    tc__climb climb;                 /* written only by the climb_busy holder */
    unsigned climb_subsets;          /* 1, or an even number up to TC__CLIMB_SUBSETS */
    _Alignas(64) _Atomic uint64_t climb_acc[TC__CLIMB_SUBSETS]; /* per subset: hits << 32 | requests */
    _Atomic int climb_busy;
    _Alignas(64) _Atomic uint64_t window; /* the period's plan (window_word()) */
} l1_tier;

uint64_t tc__l1_charge(size_t klen, size_t vlen) {
    return tc__slab_cost(16 + klen + vlen); /* sizeof(l1_ent) + key + value */
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                  */
/* ------------------------------------------------------------------------ */

static inline size_t ent_klen(const l1_ent *e) { return (size_t)(e->exp_klen & 0xFFFF); }
static inline uint64_t ent_exp(const l1_ent *e) { return (e->exp_klen & ~ENT_STAMPED) >> 16; }
static inline const char *ent_key(const l1_ent *e) { return (const char *)(e + 1); }
static inline char *ent_val(l1_ent *e) { return (char *)(e + 1) + ent_klen(e); }
/* Bytes after key and value: the stamps of a cache with a coherence table, else none. */
static inline size_t ent_xb(const l1_ent *e) { return (e->exp_klen & ENT_STAMPED) ? ENT_STAMP_BYTES : 0; }
static inline size_t ent_size(size_t klen, size_t vlen, size_t xb) { return sizeof(l1_ent) + klen + vlen + xb; }
static inline size_t ent_bytes(const l1_ent *e) { return ent_size(ent_klen(e), e->vlen, ent_xb(e)); }
static inline uint64_t ent_charge(size_t klen, size_t vlen, size_t xb) { return tc__l1_charge(klen, vlen + xb); }
static inline uint64_t ent_charge_of(const l1_ent *e) { return ent_charge(ent_klen(e), e->vlen, ent_xb(e)); }
static inline unsigned char *ent_stamps(l1_ent *e) { return (unsigned char *)(e + 1) + ent_klen(e) + e->vlen; }

/* Writes an entry: header (expiry exp, in ms, 0 = never), key, value, and the stamps when st
 * is not NULL. */
static inline void ent_fill(l1_ent *e, uint64_t exp, const void *key, size_t klen, const void *val, size_t vlen,
                            const tc__stamp *st, int own) {
    e->exp_klen = (exp << 16) | klen | (st != NULL ? ENT_STAMPED : 0); /* exp < 2^47: TTLs are at most 2^41.6 ms */
    e->vlen = (uint32_t)vlen;
    e->aux = 0;
    memcpy((char *)(e + 1), key, klen);
    if (vlen) memcpy((char *)(e + 1) + klen, val, vlen);
    if (st != NULL) {
        uint32_t w[2] = {(uint32_t)(own ? st->f : st->k), (uint32_t)st->p};
        memcpy(ent_stamps(e), w, sizeof w);
    }
}

/* 1 when a stamped entry may be served: its stamps are current (an entry that passed only
 * after a prefix check is re-stamped, so the check is not made again). Under the shard lock. */
static inline int ent_valid_locked(const tc__coh *coh, int own, l1_ent *e, uint64_t hash) {
    uint32_t w[2], ps;
    memcpy(w, ent_stamps(e), sizeof w);
    ps = w[1];
    if (!tc__coh_valid(coh, hash, own ? TC__COH_NOW_F : TC__COH_NOW_K, w[0], w[1], ent_key(e), ent_klen(e), &ps))
        return 0;
    if (ps != w[1]) memcpy(ent_stamps(e) + 4, &ps, sizeof ps);
    return 1;
}

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
        sh->slots[i] = sh->slots[j];
        if (sh->slots[i].meta & META_WIN) sh->ring[sh->slots[i].e->aux] = i; /* the ring holds slots */
        i = j;
    }
}

/* ------------------------------------------------------------------------ */
/* Window ring (W-TinyLFU)                                                  */
/* ------------------------------------------------------------------------ */

/* The window is a FIFO ring of its entries' slot indices: 4 bytes a window entry. A window
 * entry's aux is its position in the ring, and remove_slot_locked() rewrites the item when a
 * back-shift moves the entry, so the ring is exact: RING_HOLE marks the position of an entry that
 * left early (deleted, expired), skipped when it reaches the head. The ring grows with the window
 * (it doubles, up to ring_max()) and shrinks when the window has stayed far below it, so a shard
 * pays for the window it has, not for the largest the climber may choose. */
#define RING_HOLE UINT32_MAX
#define RING_MIN 16     /* positions: the smallest ring */
#define RING_CHANCES 16 /* second chances one pop grants at most */

static inline uint32_t ring_next(const l1_shard *sh, uint32_t p) { return p + 1 == sh->ring_cap ? 0 : p + 1; }

/* The most positions the ring can need: the whole shard in the window (plus the entry being
 * inserted) and a third more, so that a full ring of this size is at least a quarter holes. */
static uint32_t ring_max(const l1_shard *sh) {
    uint64_t m = (sh->cap + 1) + (sh->cap + 1) / 3 + 2;
    return m > UINT32_MAX - 1 ? UINT32_MAX - 1 : (uint32_t)m;
}

/* Moves the ring's items, holes dropped, into dst of dcap positions (dcap >= the entries in the
 * window), updating each entry's aux. dst may be the ring itself (compaction in place, written
 * from the head: the write position never passes the read position); otherwise dst replaces
 * the ring. O(ring_used). */
static void ring_repack_locked(l1_shard *sh, uint32_t *dst, uint32_t dcap) {
    uint32_t w = dst == sh->ring ? sh->ring_head : 0, n = 0;
    for (uint32_t k = 0, p = sh->ring_head; k < sh->ring_used; k++, p = ring_next(sh, p)) {
        uint32_t i = sh->ring[p];
        if (i == RING_HOLE) continue;
        dst[w] = i;
        sh->slots[i].e->aux = w;
        w = w + 1 == dcap ? 0 : w + 1;
        n++;
    }
    if (dst != sh->ring) {
        free(sh->ring);
        uint64_t ob = (uint64_t)sh->ring_cap * sizeof(*sh->ring), nb = (uint64_t)dcap * sizeof(*sh->ring);
        sh->fixed = sh->fixed - ob + nb; /* the ring is one of the shard's charged structures */
        sh->bytes = sh->bytes - ob + nb;
        sh->ring = dst;
        sh->ring_cap = dcap;
        sh->ring_head = 0;
    }
    sh->ring_tail = w;
    sh->ring_used = n;
}

/* Gives the ring ncap positions (>= the entries in the window). When the allocation fails the
 * old ring stays: correct, only less room. */
static void ring_resize_locked(l1_shard *sh, uint32_t ncap) {
    uint32_t *fresh = malloc(sizeof(*fresh) * ncap);
    if (fresh != NULL) ring_repack_locked(sh, fresh, ncap);
}

/* Appends the entry at slot i to the window. Returns 0, or -1 when the ring is full and can be
 * neither compacted nor grown (out of memory): the caller then puts the entry in main. Amortised
 * O(1): a full ring is compacted when a quarter of it is holes (so a quarter of its positions
 * are free for as many pushes), else doubled. */
static int ring_push_locked(l1_shard *sh, uint32_t i) {
    if (sh->ring_used == sh->ring_cap) {
        uint32_t holes = sh->ring_used - (uint32_t)sh->wcount, max = ring_max(sh);
        if (holes < sh->ring_cap / 4 && sh->ring_cap < max)
            ring_resize_locked(sh, sh->ring_cap > max / 2 ? max : sh->ring_cap * 2);
        if (sh->ring_used == sh->ring_cap && holes > 0) ring_repack_locked(sh, sh->ring, sh->ring_cap);
        if (sh->ring_used == sh->ring_cap) return -1;
    }
    sh->ring[sh->ring_tail] = i;
    sh->slots[i].e->aux = sh->ring_tail;
    sh->ring_tail = ring_next(sh, sh->ring_tail);
    sh->ring_used++;
    sh->wcount++;
    return 0;
}

/* Halves a ring the window has left far behind (a quarter of it would still hold four times
 * the window). O(ring_used), when it happens; two compares when not. */
static void ring_trim_locked(l1_shard *sh) {
    if (sh->ring_cap > RING_MIN && sh->ring_used < sh->ring_cap / 8 && sh->wcap + 1 < sh->ring_cap / 4)
        ring_resize_locked(sh, sh->ring_cap / 2);
}

/* The slot of the entry that leaves the window now, or UINT32_MAX when the window is empty. The
 * oldest entry leaves, unless it was read while in the window: then it goes back to the tail
 * with its reference count cleared (a second chance, so that the window keeps what is being
 * read, as an LRU window would, where a FIFO one would not), at most RING_CHANCES times in one
 * call. The entry keep (the one being written, or NULL) never leaves while another is in the
 * window: a second chance puts an entry read before keep's write behind keep, and keep, then
 * at the head, would be the candidate and could lose the admission duel to its own write;
 * in an LRU window the entry just written is the most recent, so keep goes back to the tail
 * too (no chance consumed, its reference count kept). Amortised O(1): every hole skipped was
 * made by one departure, every second chance consumed a read, and keep goes back at most once
 * per second chance, plus once. */
static uint32_t ring_pop_locked(l1_shard *sh, const l1_ent *keep) {
    unsigned chances = 0;
    while (sh->ring_used > 0) {
        uint32_t i = sh->ring[sh->ring_head];
        sh->ring_head = ring_next(sh, sh->ring_head);
        sh->ring_used--;
        if (i == RING_HOLE) continue;
        l1_slot *s = &sh->slots[i];
        if (((s->meta & META_FREQ) && chances++ < RING_CHANCES) || (s->e == keep && sh->wcount > 1)) {
            if (s->e != keep) s->meta &= ~META_FREQ;
            sh->ring[sh->ring_tail] = i; /* into the position the head just left */
            s->e->aux = sh->ring_tail;
            sh->ring_tail = ring_next(sh, sh->ring_tail);
            sh->ring_used++;
            continue;
        }
        sh->wcount--;
        s->meta &= ~META_WIN;
        return i;
    }
    return UINT32_MAX;
}

/* Forgets the window entry at slot i, which leaves early. */
static void ring_forget_locked(l1_shard *sh, uint32_t i) {
    uint32_t p = sh->slots[i].e->aux;
    if (p < sh->ring_cap && sh->ring[p] == i) {
        sh->ring[p] = RING_HOLE;
        sh->wcount--;
    }
}

/* ------------------------------------------------------------------------ */
/* Removal and eviction                                                     */
/* ------------------------------------------------------------------------ */

/* Frees an entry no slot refers to any more: a slab chunk at once, a larger entry (a malloc
 * block or a mapping of its own) after the lock, by shard_unlock(), so that no munmap or large
 * free runs in a critical section. The link lives where the key was. */
static void ent_free_locked(l1_shard *sh, l1_ent *e) {
    size_t size = ent_bytes(e);
    if (size <= TC__SLAB_MAX) {
        tc__slab_free(sh->slab, &sh->slab_cache, e, size);
        return;
    }
    memcpy((unsigned char *)(e + 1), &sh->defer, sizeof sh->defer);
    sh->defer = e;
}

/* Releases the shard lock, then frees the large entries removed under it. */
static void shard_unlock(l1_shard *sh) {
    l1_ent *d = sh->defer;
    if (__builtin_expect(d != NULL, 0)) sh->defer = NULL;
    l1_lock_release(&sh->lock);
    while (__builtin_expect(d != NULL, 0)) {
        l1_ent *next;
        memcpy(&next, (const unsigned char *)(d + 1), sizeof next);
        tc__slab_free_big(d, ent_bytes(d));
        d = next;
    }
}

/* Frees the entry at slot i. */
static void drop_slot_locked(l1_shard *sh, uint32_t i) {
    l1_ent *e = sh->slots[i].e;
    if (sh->slots[i].meta & META_WIN) ring_forget_locked(sh, i);
    sh->count--;
    sh->bytes -= ent_charge_of(e);
    remove_slot_locked(sh, i);
    ent_free_locked(sh, e);
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
    if (sh->count == sh->wcount) return UINT32_MAX; /* main is empty: no turn of the hand finds one */
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

/* The word shards read their window from: the plan of the period (l1_climb.h) in one atomic
 * word -- the held window, the trial window (0 .. TC__CLIMB_ONE fit 20 bits each) and the mask
 * of the subsets that run the trial:
 *
 *   | trial_mask (8) at bit 40 | trial (20) at bit 20 | base (20) at bit 0 |
 */
static inline uint64_t window_word(const tc__climb_plan *p) {
    return (uint64_t)p->base | (uint64_t)p->trial << 20 | (uint64_t)p->trial_mask << 40;
}

/* The shard's window size: its subset's fraction of the shard's capacity (the trial's when the
 * plan names its subset), at least one entry and at most 15/16 of the shard (main keeps 1/16,
 * so that its CLOCK finds a victim within ~21 steps of the hand). Recomputed only when the plan
 * changed (once a sampling period at most). */
static inline uint64_t window_cap_locked(l1_tier *t, l1_shard *sh) {
    uint64_t v = atomic_load_explicit(&t->window, memory_order_relaxed);
    if (v != sh->wseen || sh->cap != sh->wcap_of) { /* a new plan, or the table grew or shrank */
        uint64_t f = (v >> (40 + sh->subset)) & 1 ? (v >> 20) & 0xFFFFF : v & 0xFFFFF;
        uint64_t w = (sh->cap * f + TC__CLIMB_ONE / 2) / TC__CLIMB_ONE;
        sh->wseen = v;
        sh->wcap_of = sh->cap;
        uint64_t wmax = sh->cap - sh->cap / 16;
        sh->wcap = w < 1 ? 1 : w > wmax ? wmax : w;
    }
    return sh->wcap;
}

/* Evicts until the shard is within its bounds. For W-TinyLFU, first moves entries out of an
 * over-full window (at most WINDOW_POPS of them: one for the entry just inserted, the others
 * shrink a window the climber made smaller, a few per write) through the admission duel.
 * keep (the entry being written, or NULL) is never the window's candidate while another entry
 * is in the window (ring_pop_locked). Returns 0 or TC_EFULL (noeviction, or nothing evictable
 * under a volatile policy). */
#define WINDOW_POPS 4
static inline __attribute__((always_inline)) int make_room_locked(l1_tier *t, l1_shard *sh, uint64_t now_ms, const l1_ent *keep) {
    uint64_t now_s = now_ms > sh->epoch_ms ? (now_ms - sh->epoch_ms) / 1000 : 0;
    if (t->policy == TC_POLICY_TINYLFU) {
        uint64_t wcap = window_cap_locked(t, sh);
        for (int pops = 0; sh->wcount > wcap && pops < WINDOW_POPS; pops++) {
            uint32_t ci = ring_pop_locked(sh, keep); /* the candidate, now outside the window */
            if (ci == UINT32_MAX) break;
            sh->slots[ci].meta = (sh->slots[ci].meta & ~META_FREQ) | 1; /* in main: one turn of grace */
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
            int admit = cf > vf;
            drop_slot_locked(sh, admit ? vi : ci);
            sh->evictions++;
        }
        while (sh->count > sh->cap || sh->bytes > sh->max_bytes) {
            int freed = 0;
            uint32_t vi = clock_victim_locked(sh, now_s, &freed);
            if (freed) continue;
            if (vi == UINT32_MAX) { /* main is empty: the window's oldest goes */
                vi = ring_pop_locked(sh, keep);
                if (vi == UINT32_MAX) return TC_EFULL;
            }
            drop_slot_locked(sh, vi);
            sh->evictions++;
        }
        ring_trim_locked(sh);
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
/* Window sizing (W-TinyLFU)                                                */
/* ------------------------------------------------------------------------ */

/* A sampling period ends after as many misses as half the capacity (half a turnover: a window
 * changes the cache only through insertions, and a trial's move is at most half the capacity),
 * but not before climb_reqs_min requests (enough for a hit ratio) nor after climb_reqs_max (a
 * cache that rarely misses is still measured). Within 2^30 requests, so that a period's hits and
 * requests each fit the 32 bits they have in climb_acc. */
#define CLIMB_PERIOD_MAX (1ull << 30)
static void climb_periods(l1_tier *t, uint64_t cap) {
    t->climb_misses = cap / 2 ? cap / 2 : 1;
    t->climb_reqs_max = t->climb_misses * 20;
    t->climb_reqs_min = 1024;
    if (t->climb_reqs_max > CLIMB_PERIOD_MAX) t->climb_reqs_max = CLIMB_PERIOD_MAX;
    if (t->climb_reqs_min > t->climb_reqs_max) t->climb_reqs_min = t->climb_reqs_max;
    if (t->climb_misses > t->climb_reqs_max) t->climb_misses = t->climb_reqs_max;
}

/* Requests a shard gathers before adding them to its subset's period (one atomic add a batch). */
#define CLIMB_BATCH 64

#define ACC_REQS(a) ((a) & 0xFFFFFFFFu)
#define ACC_HITS(a) ((a) >> 32)

/* 1 when the period whose subsets have gathered acc[] is complete. */
static inline int climb_due(const l1_tier *t, const uint64_t *acc) {
    uint64_t reqs = 0, hits = 0;
    for (unsigned k = 0; k < t->climb_subsets; k++) {
        reqs += ACC_REQS(acc[k]);
        hits += ACC_HITS(acc[k]);
    }
    return reqs >= t->climb_reqs_max || (reqs >= t->climb_reqs_min && reqs - hits >= t->climb_misses);
}

/* The statistic of a subset's period: the log of its hits-to-misses odds (higher is better; a
 * move that saves a tenth of the misses, or adds a tenth to the hits, scores about the same at
 * any hit ratio), with half a hit and half a miss added so that a period without either scores
 * finitely; and its sampling variance, 1/hits + 1/misses (Woolf's, for a log odds ratio): a
 * period with few hits or few misses says little, and the climber weighs it so. */
static inline double acc_score(uint64_t a) {
    return log(((double)ACC_HITS(a) + 0.5) / ((double)(ACC_REQS(a) - ACC_HITS(a)) + 0.5));
}

static inline double acc_var(uint64_t a) {
    return 1 / ((double)ACC_HITS(a) + 0.5) + 1 / ((double)(ACC_REQS(a) - ACC_HITS(a)) + 0.5);
}

/* Ends the period if it is complete and no other thread is ending it: the climber takes the
 * subsets' statistics and plans the next period. O(TC__CLIMB_SUBSETS); never waits (a thread
 * that finds climb_busy taken leaves the work to its holder). */
static void climb_step(l1_tier *t) {
    int idle = 0;
    if (!atomic_compare_exchange_strong_explicit(&t->climb_busy, &idle, 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    uint64_t acc[TC__CLIMB_SUBSETS];
    for (unsigned k = 0; k < t->climb_subsets; k++) acc[k] = atomic_load_explicit(&t->climb_acc[k], memory_order_relaxed);
    if (climb_due(t, acc)) {
        /* subtract what this sample consumed: batches added meanwhile count for the next one */
        int empty = 0;
        double x[TC__CLIMB_SUBSETS], var[TC__CLIMB_SUBSETS];
        for (unsigned k = 0; k < t->climb_subsets; k++) {
            atomic_fetch_sub_explicit(&t->climb_acc[k], acc[k], memory_order_relaxed);
            empty |= ACC_REQS(acc[k]) == 0;
            x[k] = acc_score(acc[k]);
            var[k] = acc_var(acc[k]);
        }
        /* a subset that saw no request this period says nothing: the plan stays */
        if (!empty) {
            tc__climb_plan plan;
            tc__climb_period(&t->climb, x, var, &plan);
            atomic_store_explicit(&t->window, window_word(&plan), memory_order_relaxed);
        }
    }
    atomic_store_explicit(&t->climb_busy, 0, memory_order_release);
}

/* Reports the shard's reads since its last report to its subset's period, once there are
 * CLIMB_BATCH of them, and ends the period when that completes it. Only a full shard reports:
 * before its first eviction the window changes nothing. O(TC__CLIMB_SUBSETS). */
static inline void climb_report_locked(l1_tier *t, l1_shard *sh) {
    uint64_t reqs = sh->hits + sh->misses;
    uint64_t d = reqs - sh->climb_reqs;
    if (d < CLIMB_BATCH || t->window_fixed) return;
    uint64_t dh = sh->hits - sh->climb_hits;
    sh->climb_reqs = reqs;
    sh->climb_hits = sh->hits;
    if (sh->evictions == 0) return;
    if (d > t->climb_reqs_max) { /* a long run of reads without writes: keep its hit ratio, in range */
        dh = dh * t->climb_reqs_max / d;
        d = t->climb_reqs_max;
    }
    uint64_t add = dh << 32 | d;
    uint64_t acc[TC__CLIMB_SUBSETS];
    for (unsigned k = 0; k < t->climb_subsets; k++)
        acc[k] = k == sh->subset ? atomic_fetch_add_explicit(&t->climb_acc[k], add, memory_order_relaxed) + add
                                 : atomic_load_explicit(&t->climb_acc[k], memory_order_relaxed);
    if (climb_due(t, acc)) climb_step(t);
}

/* climb_report_locked from the read path, out of line (it runs once every CLIMB_HIT_BATCH
 * hits of a shard). */
#define CLIMB_HIT_BATCH 256
static __attribute__((noinline, cold)) void climb_report_hits_locked(l1_tier *t, l1_shard *sh) {
    if (t->policy == TC_POLICY_TINYLFU) climb_report_locked(t, sh);
}

/* ------------------------------------------------------------------------ */
/* Table size                                                               */
/* ------------------------------------------------------------------------ */

/* Entries a table of n slots holds at load 0.75. */
static inline uint64_t table_cap(uint32_t n) { return (uint64_t)n * 3 / 4; }

/* Slots of the table for cap entries (load at most 0.75, never full: table_cap of it >= cap). */
static uint64_t shard_nslots(uint64_t cap) { return cap + cap / 3 + 2; }

/* The capacity the sketch of a table of n slots is sized for: table_cap(n), except along the
 * doublings of the shard's first table (first << j), where it is the capacity whose sketch has
 * exactly 2^j times the first one's blocks: growing then copies the counts (each old block
 * feeds two new ones) instead of folding them. (A capacity of 8B/3, rounded down, gives B
 * blocks of 3/8 of a block per entry.) */
static uint64_t sketch_cap(uint32_t first, uint32_t n) {
    uint64_t m = first;
    unsigned j = 0;
    while (m < n) m *= 2, j++;
    if (m != n) return table_cap(n);
    uint64_t b0 = tc__sketch_bytes(table_cap(first)) / 64;
    return 8 * (b0 << j) / 3;
}

/* Bytes of the sketch of a table of n slots (0 without W-TinyLFU). */
static size_t sketch_bytes(tc_policy p, uint32_t first, uint32_t n) {
    return p == TC_POLICY_TINYLFU ? tc__sketch_bytes(sketch_cap(first, n)) : 0;
}

/* What b bytes of a table's reservation cost when used: whole pages, and whole huge pages from
 * TC__HUGE (where they are advised). */
static uint64_t part_cost(size_t b) {
    uint64_t unit = b >= TC__HUGE ? TC__HUGE : 4096;
    return ((uint64_t)b + unit - 1) / unit * unit;
}

/* What a table of n slots and its sketch cost: the shard is charged this. */
static uint64_t table_cost(tc_policy p, uint32_t first, uint32_t n) {
    return part_cost((size_t)n * sizeof(l1_slot)) + part_cost(sketch_bytes(p, first, n));
}

/* The address space for a shard's largest table and sketch, mapped once for the shard's life:
 * the slots from its start, the sketch from off. Tables of any size are laid out in it, in
 * place, so the slot read that warms a lookup before the lock (warm_locked_path) always reads
 * mapped memory, whatever resize runs meanwhile. Only what a table uses is ever touched;
 * resizes give the rest back. Aligned to 2 MiB when that large, for huge pages. NULL when out
 * of memory. */
static char *table_reserve(size_t len, void **map, size_t *map_len) {
    size_t extra = len >= TC__HUGE ? TC__HUGE : 0;
    char *m = mmap(NULL, len + extra, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return NULL;
    *map = m;
    *map_len = len + extra;
    return extra ? (char *)(((uintptr_t)m + TC__HUGE - 1) & ~(uintptr_t)(TC__HUGE - 1)) : m;
}

/* Gives back the pages of b bytes at p (a table part that is being rewritten, or left), and
 * advises huge pages for the next use when it will be that large. */
static void part_reset(char *p, size_t b, size_t next) {
    if (b > 0) (void)madvise(p, part_cost(b), MADV_DONTNEED);
#ifdef MADV_HUGEPAGE
    if (next >= TC__HUGE) (void)madvise(p, part_cost(next), MADV_HUGEPAGE);
#endif
}

static uint32_t gcd32(uint32_t a, uint32_t b) {
    while (b != 0) {
        uint32_t r = a % b;
        a = b;
        b = r;
    }
    return a;
}

/* The CLOCK hand's step for n slots: coprime with n, near n / the golden ratio. */
static uint32_t stride_for(uint32_t n) {
    uint32_t st = (uint32_t)(n * 0.6180339887) | 1;
    while (gcd32(st, n) != 1) st += 2;
    return st >= n ? 1 : st;
}

/* 1 when the policy can always find a victim (not noeviction, not volatile-*). */
static inline int evicts_any(tc_policy p) {
    return p == TC_POLICY_TINYLFU || p == TC_POLICY_ALLKEYS_LRU || p == TC_POLICY_ALLKEYS_LFU ||
           p == TC_POLICY_ALLKEYS_RANDOM;
}

/* Moves the shard's entries into a table of n slots (table_cap(n) >= count) and the sketch's
 * counts into one sized for it, in the shard's reservation, and charges the difference: the old
 * table and sketch are copied aside, their pages given back, and the entries rehashed into the
 * zeroed space. Readers warming a lookup meanwhile see zeros or half a table: a hint, no more.
 * 0, or TC_ENOMEM (nothing changed). O(old slots + n + sketch blocks). */
static int table_resize_locked(l1_tier *t, l1_shard *sh, uint32_t n) {
    uint32_t on = sh->nslots, first = sh->min_nslots;
    size_t oslots = (size_t)on * sizeof(l1_slot), nslots_b = (size_t)n * sizeof(l1_slot);
    size_t osk = sketch_bytes(t->policy, first, on), nsk = sketch_bytes(t->policy, first, n);
    l1_slot *old = malloc(oslots);
    uint64_t *sk = nsk ? aligned_alloc(64, nsk) : NULL;
    if (old == NULL || (nsk && sk == NULL)) {
        free(old);
        free(sk);
        return TC_ENOMEM;
    }
    memcpy(old, sh->slots, oslots);
    if (nsk) tc__sketch_resize(&sh->sketch, sketch_cap(first, n), sk); /* reads the old one in place */
    char *base = (char *)sh->slots;
    part_reset(base, oslots, nslots_b);
    part_reset(base + sh->sk_off, osk, nsk);
    sh->nslots = n;
    /* inserting into an empty table keeps every probe run unbroken, in any order */
    for (uint32_t i = 0; i < on; i++) {
        if (old[i].e == NULL) continue;
        uint32_t j = home_of(sh, old[i].h);
        while (sh->slots[j].e != NULL) j = next_slot(sh, j);
        sh->slots[j] = old[i];
        if (old[i].meta & META_WIN) sh->ring[old[i].e->aux] = j; /* the window ring holds slots */
    }
    if (nsk) {
        memcpy(base + sh->sk_off, sk, nsk);
        sh->sketch.table = (uint64_t *)(base + sh->sk_off);
    }
    free(old);
    free(sk);
    uint64_t oc = sh->table_cost, nc = table_cost(t->policy, first, n);
    sh->fixed = sh->fixed - oc + nc;
    sh->bytes = sh->bytes - oc + nc;
    sh->table_cost = nc;
    sh->stride = stride_for(n);
    sh->hand = 0;
    sh->sweep = 0;
    sh->cap = table_cap(n) < sh->cap_max ? table_cap(n) : sh->cap_max;
    return 0;
}

/* Called when one more entry would pass the table's load bound. Grows the table (up to the one
 * for cap_max; by 2, 1.5 or 1.25 times, the most that pays) when that lets the shard hold at
 * least an eighth more entries of the size it holds on average: its allowance, less its
 * structures after growing, over that average, against the entries its table bounds it to now.
 * Else the table stays and bounds the shard's entries (eviction then goes by count). Growth is
 * paid for by evicting, like any charge. */
static __attribute__((noinline)) void table_grow_locked(l1_tier *t, l1_shard *sh, uint64_t charge) {
    uint64_t other = sh->fixed - sh->table_cost; /* header and ring */
    uint64_t avg = (sh->bytes - sh->fixed + charge) / (sh->count + 1);
    if (avg == 0) avg = 1;
    uint64_t want = sh->cap + sh->cap / 8 + 1;
    if (want > sh->cap_max) want = sh->cap_max; /* the last step, to the full table, may be small */
    static const unsigned grow8[] = {16, 12, 10}; /* in eighths: 2, 1.5, 1.25 times */
    for (unsigned g = 0; g < sizeof grow8 / sizeof grow8[0]; g++) {
        uint64_t n = (uint64_t)sh->nslots * grow8[g] / 8;
        if (n > sh->max_nslots) n = sh->max_nslots;
        if (n <= sh->nslots) return;
        uint64_t fixed = other + table_cost(t->policy, sh->min_nslots, (uint32_t)n);
        if (fixed >= sh->max_bytes) continue;
        uint64_t fit = (sh->max_bytes - fixed) / avg, held = table_cap((uint32_t)n);
        if ((fit < held ? fit : held) < want) continue;
        /* a policy that may find nothing to evict grows only into room it has */
        if (!evicts_any(t->policy) && sh->bytes - sh->fixed + fixed + charge > sh->max_bytes) continue;
        (void)table_resize_locked(t, sh, (uint32_t)n); /* out of memory: the table bounds the entries */
        return;
    }
}

/* Shrinks a table that holds less than a quarter of what it could, by halves, to about twice
 * what it holds (not below the first table): what a shard emptied to give room to another, or
 * by a clear, keeps. */
static void table_fit_locked(l1_tier *t, l1_shard *sh) {
    uint32_t n = sh->nslots;
    if (sh->count >= table_cap(n) / 4) return;
    while (n / 2 >= sh->min_nslots && table_cap(n / 2) >= 2 * sh->count + 2) n /= 2;
    if (n < sh->nslots) (void)table_resize_locked(t, sh, n);
}

/* ------------------------------------------------------------------------ */
/* Byte budget                                                              */
/* ------------------------------------------------------------------------ */

/* Takes up to want bytes of allowance from the pool. */
static uint64_t pool_take(l1_tier *t, uint64_t want) {
    uint64_t cur = atomic_load_explicit(&t->pool, memory_order_relaxed);
    while (cur > 0 && want > 0) {
        uint64_t take = cur < want ? cur : want;
        if (atomic_compare_exchange_weak_explicit(&t->pool, &cur, cur - take, memory_order_relaxed,
                                                  memory_order_relaxed))
            return take;
    }
    return 0;
}

static void pool_put(l1_tier *t, uint64_t n) {
    if (n > 0) atomic_fetch_add_explicit(&t->pool, n, memory_order_relaxed);
}

/* A shard above its share keeps only what it holds; the rest goes back to the pool. */
static inline void give_back_locked(l1_tier *t, l1_shard *sh) {
    if (sh->max_bytes <= sh->base) return;
    uint64_t keep = sh->bytes > sh->base ? sh->bytes : sh->base;
    if (sh->max_bytes > keep) {
        pool_put(t, sh->max_bytes - keep);
        sh->max_bytes = keep;
    }
}

/* make_room_locked for the rare path that gives room to another shard, out of line: the write
 * path keeps make_room_locked inlined (a call there cost 1 % more instructions per operation). */
static __attribute__((noinline, cold)) int make_room_cold_locked(l1_tier *t, l1_shard *sh, uint64_t now_ms) {
    return make_room_locked(t, sh, now_ms, NULL);
}

/* Gives up to want bytes of the shard's allowance away: first what it does not use, then, when
 * evict is set, what evicting its entries by its policy (not under noeviction) and shrinking its
 * emptied table free. Returns the bytes given. Work: the entries evicted, at most one resize. */
static uint64_t give_locked(l1_tier *t, l1_shard *sh, uint64_t want, int evict, uint64_t now_ms) {
    if (sh->gathering) return 0; /* its room is counted on by a large entry on its way in */
    uint64_t limit = sh->max_bytes;
    uint64_t unused = sh->bytes < limit ? limit - sh->bytes : 0;
    if (unused < want && evict && t->policy != TC_POLICY_NOEVICTION) {
        uint64_t target = limit > want ? limit - want : 0;
        sh->max_bytes = target > sh->fixed ? target : sh->fixed;
        (void)make_room_cold_locked(t, sh, now_ms); /* as far as the policy can (volatile-*: with a TTL) */
        table_fit_locked(t, sh);
        unused = sh->bytes < limit ? limit - sh->bytes : 0;
    }
    uint64_t give = unused < want ? unused : want;
    sh->max_bytes = limit - give;
    return give;
}

/* Gathers need bytes of allowance for a large entry of shard self, in rounds over the other
 * shards, one shard lock at a time (self's own room is what need leaves out): first the pool and what shards hold unused (an
 * eviction of a large entry can leave a shard much more than it was asked for); then each
 * shard evicts an equal part of what is still missing; then, in a last round, all of it.
 * Called with no shard lock held. Returns the bytes gathered, fewer than need only when the
 * policy cannot evict enough (noeviction, volatile-*) or other writers took the room first.
 * At most 3 x nshards lock acquisitions, plus the evictions. */
static uint64_t gather(l1_tier *t, const l1_shard *self, uint64_t need, uint64_t now_ms) {
    uint64_t got = pool_take(t, need);
    unsigned n = t->nshards;
    for (int round = 0; round < 3 && got < need; round++) {
        unsigned start = atomic_fetch_add_explicit(&t->gather_next, 1, memory_order_relaxed);
        for (unsigned v = 0; v < n && got < need; v++) {
            l1_shard *sh = &t->shards[(start + v) % n];
            if (sh == self) continue;
            uint64_t ask = need - got;
            if (round == 1) ask = (ask + (n - v) - 1) / (n - v);
            l1_lock_acquire(&sh->lock);
            got += give_locked(t, sh, ask, round > 0, now_ms);
            shard_unlock(sh);
        }
    }
    return got;
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

/* Brings the key's sketch block, slot and entry into the cache *before* the shard lock is taken,
 * so the lock is held for cache hits only: with the loads inside, two threads on one shard wait
 * out each other's memory latency (measured: two threads slower than one). The slot is read
 * without the lock -- a deliberate, benign race: the table may be being resized, but it lies in
 * a reservation that stays mapped (table_reserve), so the read never faults; the pointer read
 * is only a prefetch hint (a prefetch of freed memory does not fault), never dereferenced; the
 * real lookup is redone under the lock. Hence no ThreadSanitizer instrumentation here. */
__attribute__((no_sanitize("thread"))) static inline void warm_locked_path(const l1_tier *t, const l1_shard *sh,
                                                                        uint32_t h) {
    if (t->policy == TC_POLICY_TINYLFU) tc__sketch_prefetch(&sh->sketch, h);
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
    warm_locked_path(t, sh, h);
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
        shard_unlock(sh);
        return TC_EMISS;
    }
    if ((e->exp_klen & ENT_STAMPED) && !ent_valid_locked(t->base.coh, t->base.own_ok, e, hash)) {
        /* written, deleted or invalidated since it was filled, by some process of the host */
        drop_slot_locked(sh, i);
        sh->invalidated++;
        sh->misses++;
        shard_unlock(sh);
        return TC_EMISS;
    }
    sh->hits++;
    /* a shard whose reads all hit writes nothing, and so never reports from the write path:
     * its hits are reported here, a batch every CLIMB_HIT_BATCH of them */
    if (__builtin_expect((sh->hits & (CLIMB_HIT_BATCH - 1)) == 0, 0)) climb_report_hits_locked(t, sh);
    touch_locked(t, sh, s, now);
    if (ttl_ms != NULL) *ttl_ms = exp ? (int64_t)(exp - now) : TC_TTL_NONE;
    if (out != NULL) rc = tc__sink_put(out, ent_val(e), e->vlen);
    l1_lock_release(&sh->lock);
    return rc;
}

/* Called when an entry of the given charge does not fit the shard's allowance. A shard that gave
 * room takes it back from the pool (up to its share). A large entry takes its room from the
 * whole tier, not from this shard alone: gathered while the shard lock is released (the shard
 * gives none meanwhile: its room is counted on), and gathered again, a few times, when other
 * writers of the shard used some of it. Returns 1 when it gathered. Out of line: the write
 * path seldom comes here. */
static __attribute__((noinline)) int room_locked(l1_tier *t, l1_shard *sh, uint64_t charge, uint64_t now) {
    if (charge <= sh->large) {
        if (sh->max_bytes < sh->base) sh->max_bytes += pool_take(t, sh->base - sh->max_bytes);
        return 0;
    }
    for (int round = 0; round < 4 && sh->bytes + charge > sh->max_bytes; round++) {
        uint64_t need = sh->bytes + charge - sh->max_bytes;
        sh->gathering++;
        shard_unlock(sh);
        uint64_t got = gather(t, sh, need, now);
        l1_lock_acquire(&sh->lock);
        sh->gathering--;
        sh->max_bytes += got;
        if (got == 0) break; /* nothing more to be had (noeviction, volatile-*) */
    }
    return 1;
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
    /* with a coherence table every entry carries the stamps it was filled under */
    tc__stamp st;
    size_t xb = 0;
    if (t->base.coh != NULL) {
        st = tc__fence_stamp(fence, t->base.coh, hash);
        xb = ENT_STAMP_BYTES;
    }
    uint64_t charge = ent_charge(klen, vlen, xb);
    if (charge > t->fits) return TC_ETOOLARGE;
    uint64_t now = tc__now_ms();
    uint64_t exp = 0;
    if (ttl_ms == TC__TTL_DEFAULT) exp = t->default_ttl_ms ? now + t->default_ttl_ms : 0;
    else if (ttl_ms > 0) exp = now + (uint64_t)ttl_ms;
    /* the cap bounds every entry, back-fills of a lower tier's value included (HybridCache's
     * LocalCacheExpiration): how long this process may keep a copy */
    if (t->max_ttl_ms != 0 && (exp == 0 || exp > now + t->max_ttl_ms)) exp = now + t->max_ttl_ms;
    /* an entry larger than the slab's chunks is allocated and filled before the lock: a copy of
     * a megabyte, and a mapping's page faults, held every reader of the shard waiting */
    size_t esize = ent_size(klen, vlen, xb);
    l1_ent *fresh = NULL;
    if (__builtin_expect(esize > TC__SLAB_MAX, 0)) {
        fresh = tc__slab_alloc_big(esize);
        if (fresh == NULL) return TC_ENOMEM;
        ent_fill(fresh, exp, key, klen, val, vlen, xb ? &st : NULL, t->base.own_ok);
    }
    int gathered = 0;
    l1_lock_acquire(&sh->lock);
    if (__builtin_expect(sh->bytes + charge > sh->max_bytes, 0)) gathered = room_locked(t, sh, charge, now);
    if (!tc__fence_ok(fence)) {
        /* Refused: the key's stripe moved since the stamp was taken. A copy of the key already
         * here goes too: when this is the application's write and the move was this process's
         * own (another key of the stripe, written by another thread), that copy's stamp still
         * looks current, yet the value is the one this write replaces (coherence.h, own moves).
         * For a fill the copy is at worst one a racing reader installed: a miss next time. */
        uint32_t old = find_locked(sh, h, key, klen, NULL);
        if (old != UINT32_MAX) {
            drop_slot_locked(sh, old);
            sh->deletes++;
        }
        give_back_locked(t, sh);
        shard_unlock(sh);
        if (fresh != NULL) tc__slab_free_big(fresh, esize);
        return 0;
    }
    uint64_t now_s = now > sh->epoch_ms ? (now - sh->epoch_ms) / 1000 : 0;
    sweep_locked(sh, now_s); /* before the lookup: its removals move slots */
    if (sh->count + 1 > sh->cap && sh->nslots < sh->max_nslots) table_grow_locked(t, sh, charge);
    uint32_t empty = 0;
    uint32_t i = find_locked(sh, h, key, klen, &empty);
    if (i == UINT32_MAX && t->policy == TC_POLICY_NOEVICTION &&
        (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes)) {
        /* expired entries do not hold capacity: reclaim before refusing */
        for (uint32_t n = 0; n < sh->nslots && (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes); n++)
            sweep_locked(sh, now_s);
        if (sh->count + 1 > sh->cap || sh->bytes + charge > sh->max_bytes) {
            give_back_locked(t, sh);
            shard_unlock(sh);
            if (fresh != NULL) tc__slab_free_big(fresh, esize);
            return TC_EFULL;
        }
        find_locked(sh, h, key, klen, &empty); /* the sweeps moved slots */
    }
    if (i != UINT32_MAX && t->policy == TC_POLICY_NOEVICTION &&
        sh->bytes - ent_charge_of(sh->slots[i].e) + charge > sh->max_bytes) {
        give_back_locked(t, sh);
        shard_unlock(sh);
        if (fresh != NULL) tc__slab_free_big(fresh, esize);
        return TC_EFULL;
    }
    if (fresh == NULL) {
        fresh = tc__slab_alloc(sh->slab, &sh->slab_cache, esize);
        if (fresh == NULL) {
            give_back_locked(t, sh);
            shard_unlock(sh);
            return TC_ENOMEM;
        }
        ent_fill(fresh, exp, key, klen, val, vlen, xb ? &st : NULL, t->base.own_ok);
    }
    if (i != UINT32_MAX) {
        /* overwrite: same slot, same policy position */
        l1_slot *s = &sh->slots[i];
        l1_ent *old = s->e;
        sh->bytes += charge - ent_charge_of(old);
        fresh->aux = old->aux; /* the window ring holds the slot, which stays */
        s->e = fresh;
        s->meta = (s->meta & (META_FREQ | META_WIN)) | meta_exp(sh, exp);
        touch_locked(t, sh, s, now);
        ent_free_locked(sh, old);
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
            if (ring_push_locked(sh, i) == 0) s->meta |= META_WIN;
            else s->meta |= 1; /* no room to track it in the window (out of memory): main */
            tc__sketch_incr(&sh->sketch, h);
            climb_report_locked(t, sh);
            break;
        case TC_POLICY_ALLKEYS_LRU:
        case TC_POLICY_VOLATILE_LRU: fresh->aux = ++sh->clock; break;
        case TC_POLICY_ALLKEYS_LFU:
        case TC_POLICY_VOLATILE_LFU: fresh->aux = tc__lfu_new(now); break;
        default: break;
        }
    }
    sh->sets++;
    int rc = make_room_locked(t, sh, now, fresh);
    if (rc != 0) {
        /* a volatile policy found nothing to evict: undo this write, keep the bounds */
        uint32_t j = find_locked(sh, h, key, klen, NULL);
        if (j != UINT32_MAX && sh->slots[j].e == fresh) drop_slot_locked(sh, j);
        sh->sets--;
    } else if (gathered) {
        /* the room gathered was taken by other writers meanwhile, and the entry was the one
         * evicted to keep the bound: say so rather than report it stored */
        uint32_t j = find_locked(sh, h, key, klen, NULL);
        if (j == UINT32_MAX || sh->slots[j].e != fresh) rc = TC_EFULL;
    }
    give_back_locked(t, sh);
    shard_unlock(sh);
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
        give_back_locked(t, sh);
    }
    shard_unlock(sh);
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
        table_fit_locked(t, sh);
        give_back_locked(t, sh);
        shard_unlock(sh);
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
    uint64_t fixed = 0, invalidated = 0;
    for (unsigned k = 0; k < t->nshards; k++) {
        l1_shard *sh = &t->shards[k];
        l1_lock_acquire(&sh->lock);
        invalidated += sh->invalidated;
        out->hits += sh->hits;
        out->misses += sh->misses;
        out->sets += sh->sets;
        out->deletes += sh->deletes;
        out->evictions += sh->evictions;
        out->expirations += sh->expirations;
        out->entries += sh->count;
        out->bytes += sh->bytes;
        fixed += sh->fixed;
        l1_lock_release(&sh->lock);
    }
    tc__stat_extra(out, "policy", "%s", tc_policy_name(t->policy));
    tc__stat_extra(out, "shards", "%u", t->nshards);
    /* of bytes: the tier's own structures (shard headers, window rings, slot tables, sketches) */
    tc__stat_extra(out, "structure_bytes", "%llu", (unsigned long long)fixed);
    /* the entries' pages (64 KiB each, resident as far as used) */
    tc__stat_extra(out, "slab_pages", "%llu", (unsigned long long)tc__slab_pages(t->slab));
    /* entries dropped at a lookup because a write, a delete, a clear or an invalidation made by
     * any process of the host (or another host, through the listener) came after their fill */
    if (t->base.coh != NULL) tc__stat_extra(out, "invalidated", "%llu", (unsigned long long)invalidated);
}

static void shard_free(l1_shard *sh) {
    if (sh->slots == NULL) return;
    /* chunks of the slab go with it; larger entries were malloc'd one by one */
    for (uint32_t i = 0; i < sh->nslots; i++) {
        l1_ent *e = sh->slots[i].e;
        if (e != NULL && ent_bytes(e) > TC__SLAB_MAX) tc__slab_free_big(e, ent_bytes(e));
    }
    munmap(sh->tmap, sh->tmap_len);
    free(sh->ring);
}

static void l1_close(tc__tier *tier) {
    l1_tier *t = (l1_tier *)tier;
    if (t == NULL) return;
    for (unsigned k = 0; k < t->nshards; k++) shard_free(&t->shards[k]);
    free(t->shards);
    if (t->slab != NULL) tc__slab_destroy(t->slab);
    free(t->slab);
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

/* The least an entry can cost: the smallest chunk (header only) and its slots and sketch at
 * load 0.75. A byte limit holds at most max_bytes / this many entries, whatever
 * CACHE_MEMORY_MAX_ENTRIES says: what is sized by entry count (the window ring, the largest
 * table) is sized by the smaller of the two. */
static uint64_t min_entry_cost(tc_policy p) {
    return sizeof(l1_ent) + (sizeof(l1_slot) * 4 + 2) / 3 +
           (p == TC_POLICY_TINYLFU ? 8 * TC__SKETCH_WORDS_PER_ENTRY : 0);
}

/* Shards: one per 1024 entries (a power of two, at most 256), and at least 4 per CPU when the
 * capacity allows. Many shards keep two threads off one lock (measured on zipf99, capacity
 * 100000, 2 threads: 8 shards ran slower than one thread, 64 shards 1.2x faster), and each
 * shard of >= 1024 entries keeps its own W-TinyLFU as good as a global one (hit ratio 0.8085
 * with 64 shards, 0.8073 with 8, 0.7977 with 1). cap is the entries the byte limit allows, and
 * every share is at least TC__L1_SHARD_MIN_BYTES: a small limit split 256 ways gave shards
 * whose own structures took a large part of their share and whose largest entry was small. */
static unsigned auto_shards(uint64_t cap, uint64_t max_bytes) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) ncpu = 1;
    uint64_t want = cap / 1024;
    if (want < (uint64_t)ncpu * 4) want = (uint64_t)ncpu * 4;
    if (want > cap / 64) want = cap / 64; /* never shards of fewer than 64 entries */
    if (want > max_bytes / TC__L1_SHARD_MIN_BYTES) want = max_bytes / TC__L1_SHARD_MIN_BYTES;
    unsigned n = 1;
    while ((uint64_t)n * 2 <= want && n < 256) n *= 2;
    return n;
}

/* Sets up shard sh of tier t with its share of the entries (cap_max) and of the bytes (base):
 * a small table that grows as it fills, the window ring, an empty cache of free chunks. */
static int shard_init(l1_tier *t, l1_shard *sh, uint64_t cap_max, uint64_t base, size_t cache_bound,
                      uint64_t seed, uint64_t epoch) {
    memset(sh, 0, sizeof *sh);
    atomic_init(&sh->lock.held, 0);
    sh->cap_max = cap_max;
    sh->base = sh->max_bytes = base;
    sh->large = base / 8;
    sh->epoch_ms = epoch;
    sh->rng = seed | 1;
    sh->slab = t->slab;
    tc__slab_cache_init(&sh->slab_cache, cache_bound);
    /* the largest table is the first doubled k times, so that growing to it only doubles (and
     * the sketch with it, see sketch_cap). The first is the table for cap_max over 2^k, rounded
     * up, about TC__L1_START_SLOTS. */
    uint64_t max_nslots = shard_nslots(cap_max);
    unsigned k = 0;
    while ((max_nslots >> (k + 1)) >= TC__L1_START_SLOTS) k++;
    uint64_t first = (max_nslots + (1ull << k) - 1) >> k;
    max_nslots = first << k;
    if (max_nslots > UINT32_MAX - 1) return TC_EINVAL;
    sh->max_nslots = (uint32_t)max_nslots;
    sh->min_nslots = (uint32_t)first;
    uint32_t n = (uint32_t)first;
    size_t sk_max = sketch_bytes(t->policy, n, sh->max_nslots);
    if (t->policy == TC_POLICY_TINYLFU && tc__sketch_bytes(table_cap(sh->max_nslots)) > sk_max)
        sk_max = tc__sketch_bytes(table_cap(sh->max_nslots)); /* a table off the doublings */
    sh->sk_off = part_cost((size_t)sh->max_nslots * sizeof(l1_slot));
    char *mem = table_reserve(sh->sk_off + part_cost(sk_max), &sh->tmap, &sh->tmap_len);
    if (mem == NULL) return TC_ENOMEM;
    sh->slots = (l1_slot *)mem;
    sh->nslots = n;
    sh->table_cost = table_cost(t->policy, n, n);
    sh->stride = stride_for(n);
    sh->cap = table_cap(n) < cap_max ? table_cap(n) : cap_max;
    if (t->policy == TC_POLICY_TINYLFU) {
        sh->wseen = UINT64_MAX; /* no window word yet: the first write computes wcap */
        sh->wcap = (sh->cap * TC__CLIMB_START + TC__CLIMB_ONE / 2) / TC__CLIMB_ONE;
        uint64_t rc = 2 * sh->wcap + 2;
        sh->ring_cap = rc < RING_MIN ? RING_MIN : rc > ring_max(sh) ? ring_max(sh) : (uint32_t)rc;
        sh->ring = malloc(sizeof(*sh->ring) * sh->ring_cap);
        if (sh->ring == NULL) return TC_ENOMEM;
        tc__sketch_init(&sh->sketch, sketch_cap(n, n), mem + sh->sk_off);
    }
    sh->fixed = sizeof(l1_shard) + (uint64_t)sh->ring_cap * sizeof(*sh->ring) + sh->table_cost;
    sh->bytes = sh->fixed;
    return 0;
}

int tc__l1_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen) {
    *out = NULL; /* opt's ranges were checked by the configuration table (tc__opts_validate) */
    l1_tier *t = aligned_alloc(64, (sizeof *t + 63) & ~(size_t)63);
    tc__slab *slab = aligned_alloc(64, (sizeof *slab + 63) & ~(size_t)63);
    if (t == NULL || slab == NULL || tc__slab_init(slab) != 0) {
        free(t);
        free(slab);
        return tc__errf(errbuf, errlen, TC_ENOMEM, "L1: out of memory");
    }
    memset(t, 0, sizeof *t);
    t->slab = slab;
    t->base.ops = &l1_ops;
    t->base.id = TC_TIER_L1;
    t->policy = opt->mem_eviction;
    t->default_ttl_ms = opt->mem_default_ttl_ms;
    t->max_ttl_ms = opt->mem_max_ttl_ms;
    t->cap = opt->mem_max_entries;
    t->max_bytes = opt->mem_max_bytes;
    atomic_init(&t->pool, 0);
    atomic_init(&t->gather_next, 0);
    uint64_t cost = min_entry_cost(t->policy);
    uint64_t cap_eff = t->max_bytes / cost < t->cap ? t->max_bytes / cost : t->cap;
    unsigned n = opt->mem_shards ? opt->mem_shards : auto_shards(cap_eff, t->max_bytes);
    while (n > 1 && n > t->cap) n /= 2;
    t->nshards = n;
    t->shard_mask = n - 1;
    t->shards = aligned_alloc(64, sizeof(l1_shard) * n);
    if (t->shards == NULL) {
        t->nshards = 0;
        l1_close(&t->base);
        return tc__errf(errbuf, errlen, TC_ENOMEM, "L1: out of memory");
    }
    size_t cache_bound = TC__L1_CACHE_TOTAL / n;
    if (cache_bound < 2 * TC__SLAB_MAX) cache_bound = 2 * TC__SLAB_MAX;
    if (cache_bound > 64 * 1024) cache_bound = 64 * 1024;
    uint64_t epoch = tc__now_ms();
    uint64_t seed = tc__hash(&t, sizeof t) ^ tc__now_ns();
    uint32_t window = TC__CLIMB_START;
    t->window_fixed = opt->mem_window != 0;
    if (t->window_fixed) window = (uint32_t)((uint64_t)TC__CLIMB_ONE * (opt->mem_window > 100 ? 100 : opt->mem_window) / 100);
    /* an experiment must move a shard's window by a few entries to be seen at all */
    uint64_t shard_cap = cap_eff / n;
    uint64_t dmin = shard_cap ? 2 * (uint64_t)TC__CLIMB_ONE / shard_cap : TC__CLIMB_ONE;
    if (dmin < TC__CLIMB_DELTA_MIN) dmin = TC__CLIMB_DELTA_MIN;
    tc__climb_plan plan;
    t->climb_subsets = n < 2 ? 1 : n < TC__CLIMB_SUBSETS ? n : TC__CLIMB_SUBSETS;
    tc__climb_init(&t->climb, window, (uint32_t)(dmin > TC__CLIMB_ONE ? TC__CLIMB_ONE : dmin), t->climb_subsets, &plan);
    atomic_init(&t->window, window_word(&plan));
    for (unsigned k = 0; k < TC__CLIMB_SUBSETS; k++) atomic_init(&t->climb_acc[k], 0);
    atomic_init(&t->climb_busy, 0);
    climb_periods(t, cap_eff);
    uint64_t fixed = 0;
    unsigned made = 0;
    int rc = 0;
    for (; made < n && rc == 0; made++) {
        uint64_t cap = t->cap / n + (made < t->cap % n);
        uint64_t base = t->max_bytes / n + (made < t->max_bytes % n);
        if (cap > base / cost) cap = base / cost ? base / cost : 1;
        rc = shard_init(t, &t->shards[made], cap, base, cache_bound, seed + made * 0x9E3779B97F4A7C15ULL, epoch);
        t->shards[made].subset = made % t->climb_subsets;
        fixed += t->shards[made].fixed;
    }
    if (rc != 0) {
        t->nshards = made;
        l1_close(&t->base);
        return tc__errf(errbuf, errlen, rc, "L1: cannot allocate %llu entries: %s",
                        (unsigned long long)opt->mem_max_entries, tc_strerror(rc));
    }
    if (fixed >= t->max_bytes) { /* no room for a single entry */
        l1_close(&t->base);
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_MEMORY_MAX_BYTES=%llu is too small for L1's own structures (%llu bytes in %u "
                        "shards): raise it%s",
                        (unsigned long long)opt->mem_max_bytes, (unsigned long long)fixed, n,
                        opt->mem_shards ? ", or lower CACHE_MEMORY_SHARDS" : "");
    }
    t->fits = t->max_bytes - fixed;
    *out = &t->base;
    return 0;
}
