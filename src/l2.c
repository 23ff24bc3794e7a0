/*
 * l2.c -- the L2 tier: a cache in a named shared-memory segment that every process on the
 * host opens by name (layout, creation and crash repair: l2_segment.c, docs/SHARED.md).
 *
 * A key's hash picks one of the segment's shards; every operation takes only that shard's
 * robust process-shared mutex, for a critical section of one O(1) index probe and one copy,
 * so processes and threads contend only when they touch the same shard. Nothing on the hot
 * path makes a system call: time is CLOCK_MONOTONIC_COARSE through the vDSO.
 *
 * Entries live in a per-shard heap written like a log: a new entry is appended at `used`; a
 * replaced, deleted or evicted entry becomes a DEAD block; when the heap's end is reached the
 * shard is compacted (LIVE blocks slide down). Each shard holds its share of the entry and
 * byte limits; a set that would exceed them evicts by the segment's policy, Redis-style:
 * sample a few entries, evict the best candidate (LRU: longest idle; LFU: Redis's logarithmic
 * counter with decay; volatile-ttl: soonest expiry; random), where volatile-* policies only
 * sample entries with a TTL and noeviction refuses with TC_EFULL.
 *
 * Expiry times are absolute CLOCK_MONOTONIC milliseconds: the one clock every process on the
 * host shares, that never jumps with the wall clock, and whose epoch (boot) is also the
 * lifetime of a /dev/shm segment. An expired entry is never returned; it is removed when met
 * and by a sweep of a few index slots on every set (bounded incremental work).
 *
 * No operation waits for ever on another process. A shard lock is waited for at most
 * CACHE_SHARED_LOCK_TIMEOUT; past it the operation fails with TC_ETIMEDOUT (a tier failure:
 * the orchestrator reads or writes the next tier) and the shard is marked stalled in this
 * handle: while the same holder keeps the lock, later operations on it only try the lock (a
 * stopped holder costs one full timeout per handle, not one per operation).
 * Every TC__L2_SIZE_CHECK_MS a handle checks that the segment's file still has its size: a
 * truncated segment fails the tier (TC_EIO) instead of killing the process with SIGBUS.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "l2_segment.h"
#include "util.h"

typedef struct tc__l2 {
    tc__tier base;
    tc__l2_seg seg;
    tc_policy policy;
    uint64_t default_ttl_ms;
    uint64_t max_key, max_value;
    uint64_t lock_wait_ns;          /* CACHE_SHARED_LOCK_TIMEOUT */
    _Atomic uint64_t size_check_ms; /* when the file's size is due to be checked again */
    _Atomic int gone;               /* 1: the file changed size; the mapping is never touched */
    _Atomic int32_t stalled[TC__L2_MAX_SHARDS]; /* holder that made this shard's lock time out
                                                    (thread id; -1 unknown), 0: none */
    _Atomic uint64_t invalidated; /* blocks found stale at a lookup by this handle */
    tc_log_fn log_fn;
    void *log_ud;
} tc__l2;

void tc__l2_fill_stats(const tc__l2_seg *s, tc_tier_stats *out);

#define TC__L2_SAMPLES 8        /* entries compared per eviction (Redis: maxmemory-samples 5) */
#define TC__L2_COMPACT_MIN (64u << 10) /* dead bytes worth a compaction before the heap is full */
#define TC__L2_SWEEP_SLOTS 4    /* index slots the expiry sweep visits per set */
#define TC__L2_LFU_INIT 5       /* Redis's LFU_INIT_VAL */
#define TC__L2_LFU_LOG_FACTOR 10
#define TC__L2_LFU_DECAY_MIN 1  /* minutes per decrement */

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void) {
    if (rng_state == 0) rng_state = tc__now_ns() ^ ((uint64_t)(uintptr_t)&rng_state << 16) ^ 0x9e3779b97f4a7c15ull;
    uint64_t x = rng_state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    rng_state = x;
    return x * 0x2545f4914f6cdd1dull;
}

static int is_volatile(tc_policy p) {
    return p == TC_POLICY_VOLATILE_LRU || p == TC_POLICY_VOLATILE_LFU ||
           p == TC_POLICY_VOLATILE_TTL || p == TC_POLICY_VOLATILE_RANDOM;
}
static int is_lfu(tc_policy p) { return p == TC_POLICY_ALLKEYS_LFU || p == TC_POLICY_VOLATILE_LFU; }

static int expired(const tc__l2_blk *b, uint64_t now) { return b->expire_ms != 0 && now >= b->expire_ms; }

/* LFU counter, as Redis keeps it (object.c/evict.c): 8 bits, incremented with probability
 * 1/((counter - LFU_INIT) * log_factor + 1), decremented once per decay period idle.
 *
 *   access:  | 31 ......... 24 | 23 ............ 8 | 7 ...... 0 |
 *            |     unused      | ldt: minutes (16) | counter (8)|
 */
static uint32_t lfu_minutes(uint64_t now_ms) { return (uint32_t)((now_ms / 60000u) & 0xffffu); }

static uint32_t lfu_decayed(uint32_t access, uint64_t now_ms) {
    uint32_t ldt = (access >> 8) & 0xffffu, counter = access & 0xffu;
    uint32_t elapsed = (lfu_minutes(now_ms) - ldt) & 0xffffu;
    uint32_t periods = elapsed / TC__L2_LFU_DECAY_MIN;
    return periods >= counter ? 0 : counter - periods;
}

static uint32_t access_init(tc_policy p, uint64_t now) {
    return is_lfu(p) ? (lfu_minutes(now) << 8) | TC__L2_LFU_INIT : (uint32_t)now;
}

static uint32_t meta_access(uint64_t meta) { return (uint32_t)(meta >> 32); }
static uint32_t meta_exp32(uint64_t meta) { return (uint32_t)meta; }

/* Records an access in the slot's meta word (LRU clock, or LFU counter). */
static void touch(tc_policy p, tc__l2_slot *slot, uint64_t now) {
    uint32_t a;
    if (!is_lfu(p)) {
        a = (uint32_t)now;
    } else {
        uint32_t c = lfu_decayed(meta_access(slot->meta), now);
        if (c < 255) {
            uint32_t base = c > TC__L2_LFU_INIT ? c - TC__L2_LFU_INIT : 0;
            double r = (double)(rng_next() >> 11) * (1.0 / 9007199254740992.0);
            if (r < 1.0 / (base * TC__L2_LFU_LOG_FACTOR + 1.0)) c++;
        }
        a = (lfu_minutes(now) << 8) | c;
    }
    slot->meta = ((uint64_t)a << 32) | meta_exp32(slot->meta);
}

/* 1 when the slot's expiry (1024 ms buckets, rounded up) says the entry may have expired by
 * now: its exact expire_ms then decides. */
static int meta_maybe_expired(uint64_t meta, uint64_t now) {
    uint32_t e = meta_exp32(meta);
    return e != 0 && ((uint64_t)(e - 1) << 10) <= now;
}

static int64_t ttl_left(const tc__l2_blk *b, uint64_t now) {
    if (b->expire_ms == 0) return TC_TTL_NONE;
    return b->expire_ms > now ? (int64_t)(b->expire_ms - now) : 1;
}

/* Removes the LIVE block b referenced by index slot pos. Counters that would go below zero
 * were wrong (written by someone else): they stay at zero and the shard is flagged damaged,
 * to be recounted by the next locker (or at once by a set's eviction loop). */
static void remove_locked(tc__l2 *l2, uint32_t si, uint64_t pos, tc__l2_blk *b) {
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    uint64_t sz = (uint64_t)b->size8 * 8u;
    b->state = TC__L2_DEAD;
    TC__L2_ORDER();
    TC__L2_CRASHPOINT(TC__L2_CP_DEL_MARKED);
    tc__l2_index_delete_locked(&l2->seg, si, pos);
    uint64_t n = TC__L2_LD(sh->entries), live = TC__L2_LD(sh->live_bytes);
    if (__builtin_expect(n == 0 || live < sz, 0)) sh->damaged = 1;
    TC__L2_ST(sh->entries, n ? n - 1 : 0);
    TC__L2_ST(sh->live_bytes, live >= sz ? live - sz : 0);
}

/* The LIVE block of index slot pos, or NULL (shard flagged damaged). */
static tc__l2_blk *slot_blk_locked(tc__l2 *l2, uint32_t si, uint64_t slot) {
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    const tc__l2_blk *b = tc__l2_blk_at(&l2->seg, si, tc__l2_slot_off(slot), sh->used);
    if (b == NULL || b->kind != TC__L2_KIND_ENTRY || b->state != TC__L2_LIVE ||
        (b->hash >> 32) != (slot >> 32)) {
        sh->damaged = 1;
        return NULL;
    }
    return (tc__l2_blk *)b;
}

/* 0 while the segment's file keeps its size; TC_EIO once it changed (then for good: nothing
 * in the mapping is touched again, since pages past a file's end raise SIGBUS). now is the
 * caller's coarse clock; the fstat() runs once per TC__L2_SIZE_CHECK_MS per handle. */
static int segment_check(tc__l2 *l2, uint64_t now);

static inline int segment_ok(tc__l2 *l2, uint64_t now) {
    if (__builtin_expect(now < atomic_load_explicit(&l2->size_check_ms, memory_order_relaxed) &&
                             !atomic_load_explicit(&l2->gone, memory_order_relaxed),
                         1))
        return 0;
    return segment_check(l2, now);
}

static __attribute__((noinline)) int segment_check(tc__l2 *l2, uint64_t now) {
    if (atomic_load_explicit(&l2->gone, memory_order_relaxed)) return TC_EIO;
    uint64_t due = atomic_load_explicit(&l2->size_check_ms, memory_order_relaxed);
    if (now < due) return 0;
    if (!atomic_compare_exchange_strong(&l2->size_check_ms, &due, now + TC__L2_SIZE_CHECK_MS))
        return 0; /* another thread checks */
    char msg[512];
    if (tc__l2_seg_size_ok(&l2->seg, msg, sizeof msg) == 0) return 0;
    if (!atomic_exchange(&l2->gone, 1))
        tc__log(l2->log_fn, l2->log_ud, TC_LOG_ERROR, "L2: %s", msg);
    return TC_EIO;
}

/* After tc__l2_lock() on shard si returned rc with flags fl, in a lock_shard() call that found
 * the shard marked stalled (holder thread id, or 0): marks or clears the stall and logs what
 * is worth logging. Returns rc. */
static int lock_after(tc__l2 *l2, uint32_t si, int rc, int fl, int32_t stalled, uint64_t wait_ns) {
    if (rc == TC_ETIMEDOUT) {
        long holder = tc__l2_lock_holder(&l2->seg, si);
        if (atomic_exchange(&l2->stalled[si], holder > 0 ? (int32_t)holder : -1) == 0)
            tc__log(l2->log_fn, l2->log_ud, TC_LOG_WARN,
                    "L2 '%s': shard %u lock held for more than %llu ms by thread %ld (a stopped "
                    "or hung process, or an overloaded host); operations on it fail over to the "
                    "next tier until it is released",
                    l2->seg.name, si, (unsigned long long)(wait_ns / 1000000u), holder);
        return rc;
    }
    if (rc != 0) {
        tc__log(l2->log_fn, l2->log_ud, TC_LOG_ERROR,
                "L2 '%s': shard %u lock is damaged or unrecoverable", l2->seg.name, si);
        return rc;
    }
    if (stalled != 0 && atomic_exchange(&l2->stalled[si], 0) != 0)
        tc__log(l2->log_fn, l2->log_ud, TC_LOG_INFO, "L2 '%s': shard %u lock released again",
                l2->seg.name, si);
    if (fl & TC__L2_LOCK_REPAIRED)
        tc__log(l2->log_fn, l2->log_ud, TC_LOG_WARN,
                "L2 '%s': shard %u rebuilt (a process died holding it, or it was found damaged)",
                l2->seg.name, si);
    return 0;
}

/* Takes the shard lock, waiting at most wait_ns -- or only trying it while the holder that
 * made the last wait on this shard time out still holds it (a stopped process then costs one
 * full timeout per handle, not one per operation). Logs a repair, the first timeout of a
 * stall and its end. *how (may be NULL): TC__L2_LOCK_* flags. The uncontended path is the
 * stall load, the type-word compare and the trylock. */
static inline int lock_shard(tc__l2 *l2, uint32_t si, uint64_t wait_ns, int *how) {
    int32_t stalled = atomic_load_explicit(&l2->stalled[si], memory_order_relaxed);
    if (__builtin_expect(stalled != 0, 0)) {
        long holder = tc__l2_lock_holder(&l2->seg, si);
        if (holder != 0 && (holder == stalled || stalled == -1)) wait_ns = 0;
    }
    int fl;
    int rc = tc__l2_lock(&l2->seg, si, wait_ns, &fl);
    if (how) *how = fl;
    if (__builtin_expect(rc == 0 && fl == 0 && stalled == 0, 1)) return 0;
    return lock_after(l2, si, rc, fl, stalled, wait_ns);
}

/* The check a set makes before it uses the shard's counters (after lock_shard): a shard header
 * outside what the geometry allows is rebuilt first. */
static void sane_or_rebuild_locked(tc__l2 *l2, uint32_t si) {
    if (__builtin_expect(tc__l2_shard_sane_locked(&l2->seg, si), 1)) return;
    tc__l2_repair_locked(&l2->seg, si);
    tc__log(l2->log_fn, l2->log_ud, TC_LOG_WARN,
            "L2 '%s': shard %u had counters or limits outside the segment's geometry; rebuilt",
            l2->seg.name, si);
}

/* Called with the lock held after an op found a broken invariant: rebuilds the shard now so
 * that the next op finds it consistent, and reports TC_ECORRUPT. */
static int corrupt_locked(tc__l2 *l2, uint32_t si, const char *what) {
    tc__l2_repair_locked(&l2->seg, si);
    tc__l2_unlock(&l2->seg, si);
    tc__log(l2->log_fn, l2->log_ud, TC_LOG_ERROR,
            "L2 '%s': shard %u: %s; the shard was rebuilt from its verified entries",
            l2->seg.name, si, what);
    return TC_ECORRUPT;
}

/* ------------------------------------------------------------------------ */
/* Expiry sweep and eviction                                                */
/* ------------------------------------------------------------------------ */

/* Visits up to budget index slots from the shard's cursor, removing expired entries.
 * Returns 0 or -1 (damage found, shard flagged). */
static int sweep_locked(tc__l2 *l2, uint32_t si, uint64_t now, unsigned budget) {
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    tc__l2_slot *idx = tc__l2_index_of(&l2->seg, si);
    uint64_t mask = l2->seg.index_slots - 1;
    for (unsigned n = 0; n < budget; n++) {
        uint64_t pos = sh->cursor & mask;
        uint64_t slot = idx[pos].key;
        if (slot != 0 && meta_maybe_expired(idx[pos].meta, now)) {
            tc__l2_blk *b = slot_blk_locked(l2, si, slot);
            if (b == NULL) return -1;
            if (expired(b, now)) {
                remove_locked(l2, si, pos, b);
                TC__L2_INC(sh->expirations, 1);
                continue; /* a later slot may have shifted into pos */
            }
        }
        sh->cursor = pos + 1;
    }
    return 0;
}

/* Evicts one entry by the policy, never the block at keep_off. Samples TC__L2_SAMPLES
 * candidates from consecutive index slots after a random start, comparing the slots' meta
 * words only (no entry is read but the one evicted); when a volatile policy finds
 * no candidate nearby, the scan goes on, at worst over the whole index (O(index_slots)). An
 * expired entry met on the way is removed instead (counted as an expiration).
 * Returns 1 when something was removed, 0 when nothing can be, -1 on damage. */
static int evict_one_locked(tc__l2 *l2, uint32_t si, uint64_t now, uint64_t keep_off) {
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    tc__l2_slot *idx = tc__l2_index_of(&l2->seg, si);
    uint64_t mask = l2->seg.index_slots - 1;
    tc_policy p = l2->policy;
    int vol = is_volatile(p);
    uint64_t pos = rng_next() & mask;
    int64_t best = -1;
    uint64_t best_score = 0;
    unsigned samples = 0;
    for (uint64_t n = 0; n < l2->seg.index_slots && samples < TC__L2_SAMPLES; n++, pos = (pos + 1) & mask) {
        uint64_t slot = idx[pos].key, meta = idx[pos].meta;
        if (slot == 0 || tc__l2_slot_off(slot) == keep_off) continue;
        if (meta_maybe_expired(meta, now)) { /* read the entry only when it may be expired */
            tc__l2_blk *b = slot_blk_locked(l2, si, slot);
            if (b == NULL) return -1;
            if (expired(b, now)) {
                remove_locked(l2, si, pos, b);
                TC__L2_INC(sh->expirations, 1);
                return 1;
            }
        }
        if (vol && meta_exp32(meta) == 0) continue;
        uint64_t score; /* higher = better to evict */
        switch (p) {
        case TC_POLICY_ALLKEYS_LRU:
        case TC_POLICY_VOLATILE_LRU: score = (uint32_t)((uint32_t)now - meta_access(meta)); break;
        case TC_POLICY_ALLKEYS_LFU:
        case TC_POLICY_VOLATILE_LFU: score = 255u - lfu_decayed(meta_access(meta), now); break;
        case TC_POLICY_VOLATILE_TTL: score = UINT64_MAX - meta_exp32(meta); break;
        default: score = rng_next(); break; /* random */
        }
        if (best < 0 || score > best_score) {
            best = (int64_t)pos;
            best_score = score;
        }
        samples++;
    }
    if (best < 0) return 0;
    tc__l2_blk *b = slot_blk_locked(l2, si, idx[best].key);
    if (b == NULL) return -1;
    remove_locked(l2, si, (uint64_t)best, b);
    TC__L2_INC(sh->evictions, 1);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

static int l2_get(tc__tier *t, const tc__key *k, tc__sink *out, int64_t *ttl_ms) {
    tc__l2 *l2 = (tc__l2 *)t;
    const void *key = k->p;
    size_t klen = k->len;
    if (klen > l2->max_key) return TC_EMISS; /* can never have been stored */
    uint64_t now = tc__now_ms();
    int rc = segment_ok(l2, now);
    if (rc) return rc;
    uint64_t h = k->hash;
    uint32_t si = tc__l2_shard_of(&l2->seg, h);
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    /* The home slot's line is fetched while the lock is being taken. */
    __builtin_prefetch(&tc__l2_index_of(&l2->seg, si)[tc__l2_hash_home(h, l2->seg.index_slots - 1)]);
    int how;
    rc = lock_shard(l2, si, l2->lock_wait_ns, &how);
    if (rc) return rc;
    if (how) now = tc__now_ms(); /* waited, or repaired: the clock moved */
    const tc__l2_blk *cb = NULL;
    int64_t pos = tc__l2_index_find_locked(&l2->seg, si, h, key, klen, &cb);
    if (pos == -2) return corrupt_locked(l2, si, "an index slot points at a broken block");
    if (pos < 0) {
        TC__L2_INC(sh->misses, 1);
        tc__l2_unlock(&l2->seg, si);
        return TC_EMISS;
    }
    tc__l2_blk *b = (tc__l2_blk *)cb;
    if (expired(b, now)) {
        remove_locked(l2, si, (uint64_t)pos, b);
        TC__L2_INC(sh->expirations, 1);
        TC__L2_INC(sh->misses, 1);
        tc__l2_unlock(&l2->seg, si);
        return TC_EMISS;
    }
    if (l2->base.coh != NULL) {
        /* written, deleted or invalidated since (stripe, epoch, prefix), or the host's channel
         * is down: not served, and its room is reclaimed */
        uint32_t ps = b->pstamp;
        if (!tc__coh_valid(l2->base.coh, h, TC__COH_NOW_S, b->kstamp, b->pstamp, key, klen, &ps)) {
            remove_locked(l2, si, (uint64_t)pos, b);
            TC__L2_INC(sh->misses, 1);
            atomic_fetch_add_explicit(&l2->invalidated, 1, memory_order_relaxed);
            tc__l2_unlock(&l2->seg, si);
            return TC_EMISS;
        }
        b->pstamp = ps;
    }
    const uint8_t *val = (const uint8_t *)(b + 1) + klen;
    if (XXH3_64bits_withSeed(val, b->vlen, h) != b->csum)
        return corrupt_locked(l2, si, "an entry's value does not match its checksum");
    touch(l2->policy, &tc__l2_index_of(&l2->seg, si)[pos], now);
    rc = out ? tc__sink_put(out, val, b->vlen) : 0;
    if (ttl_ms) *ttl_ms = ttl_left(b, now);
    TC__L2_INC(sh->hits, 1);
    tc__l2_unlock(&l2->seg, si);
    return rc;
}

static int l2_set(tc__tier *t, const tc__key *k, const void *val, size_t vlen, int64_t ttl_ms,
                  const tc__fence *fence) {
    tc__l2 *l2 = (tc__l2 *)t;
    const void *key = k->p;
    size_t klen = k->len;
    if (klen > l2->max_key || vlen > l2->max_value) return TC_ETOOLARGE;
    if (ttl_ms > (int64_t)TC_TTL_MAX_MS) return TC_EINVAL;
    uint64_t need = tc__l2_blk_size(klen, vlen);
    uint64_t h = k->hash;
    uint64_t csum = XXH3_64bits_withSeed(val, vlen, h);
    uint32_t si = tc__l2_shard_of(&l2->seg, h);
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    uint8_t *heap = tc__l2_heap_of(&l2->seg, si);
    /* The shard's limits come from the geometry validated at open, never from the shard. */
    uint64_t max_entries = tc__l2_share_entries(&l2->seg, si);
    uint64_t max_bytes = tc__l2_share_bytes(&l2->seg, si);
    if (need > max_bytes) return TC_ETOOLARGE;
    uint64_t now = tc__now_ms();
    int rc = segment_ok(l2, now);
    if (rc) return rc;
    int how;
    rc = lock_shard(l2, si, l2->lock_wait_ns, &how);
    if (rc) return rc;
    if (!tc__fence_ok(fence)) {
        tc__l2_unlock(&l2->seg, si);
        return 0;
    }
    /* The stamps the block carries: a fill's, captured before its lower tier was read; an
     * application's write marks the key's stripe when the block is published (below). */
    int writing = l2->base.coh != NULL && fence != NULL && fence->wrote != NULL;
    tc__stamp st = {0, 0, 0, 0};
    if (l2->base.coh != NULL && !writing) st = tc__fence_stamp(fence, l2->base.coh, h);
    sane_or_rebuild_locked(l2, si);
    if (how) now = tc__now_ms(); /* waited, or repaired: the clock moved */
    uint64_t expire = 0;
    if (ttl_ms == TC__TTL_DEFAULT)
        expire = l2->default_ttl_ms ? now + l2->default_ttl_ms : 0;
    else if (ttl_ms > 0)
        expire = now + (uint64_t)ttl_ms;
    if (sweep_locked(l2, si, now, TC__L2_SWEEP_SLOTS) != 0)
        return corrupt_locked(l2, si, "the expiry sweep met a broken block");

    /* The entry this set replaces, if any: kept until the new one is in place. */
    const tc__l2_blk *ob = NULL;
    int64_t pos = tc__l2_index_find_locked(&l2->seg, si, h, key, klen, &ob);
    if (pos == -2) return corrupt_locked(l2, si, "an index slot points at a broken block");
    if (pos >= 0 && expired(ob, now)) {
        remove_locked(l2, si, (uint64_t)pos, (tc__l2_blk *)ob);
        TC__L2_INC(sh->expirations, 1);
        pos = -1;
    }
    uint64_t old_off = pos >= 0 ? tc__l2_slot_off(tc__l2_index_of(&l2->seg, si)[pos].key) : UINT64_MAX;
    uint64_t old_size = pos >= 0 ? (uint64_t)ob->size8 * 8u : 0;

    /* Limits: evict until the shard's share of entries and bytes holds the new entry. Each
     * round removes one entry, so the loop ends after at most `entries` rounds (entries was
     * bounded by max_entries when the lock was taken, and live_bytes by max_bytes). */
    int moved = 0;
    if (TC__L2_LD(sh->live_bytes) < old_size)
        return corrupt_locked(l2, si, "the byte counter is below the replaced entry's size");
    while (TC__L2_LD(sh->entries) - (pos >= 0) + 1 > max_entries ||
           TC__L2_LD(sh->live_bytes) - old_size + need > max_bytes) {
        if (l2->policy == TC_POLICY_NOEVICTION) {
            tc__l2_unlock(&l2->seg, si);
            return TC_EFULL;
        }
        int e = evict_one_locked(l2, si, now, old_off);
        if (e < 0 || sh->damaged) return corrupt_locked(l2, si, "eviction met a broken block or counter");
        if (e == 0) {
            /* allkeys-*: an empty index while the counters say the shard is full means the
             * counters are wrong (written by someone else): recount */
            if (!is_volatile(l2->policy))
                return corrupt_locked(l2, si, "the counters disagree with the index");
            tc__l2_unlock(&l2->seg, si);
            return TC_EFULL; /* volatile-*: no entry with a TTL to evict */
        }
        moved = 1;
    }
    /* Room in the heap: compact when the free tail is too short, and also as soon as the DEAD
     * bytes outweigh the live ones, so that the heap's touched part stays within about twice
     * the live bytes (cache- and TLB-friendly) and a compaction moves at most one byte per
     * byte it reclaims. */
    uint64_t dead = sh->used - TC__L2_LD(sh->live_bytes);
    if (sh->used + need > l2->seg.heap_bytes ||
        (dead > TC__L2_LD(sh->live_bytes) && dead >= TC__L2_COMPACT_MIN)) {
        if (tc__l2_compact_locked(&l2->seg, si) != 0)
            return corrupt_locked(l2, si, "compaction met a broken block");
        moved = 1;
    }
    if (moved && pos >= 0) { /* evictions shift index slots, compaction moves blocks */
        pos = tc__l2_index_find_locked(&l2->seg, si, h, key, klen, &ob);
        if (pos < 0) return corrupt_locked(l2, si, "the replaced entry vanished");
        old_off = tc__l2_slot_off(tc__l2_index_of(&l2->seg, si)[pos].key);
    }

    /* Write the block past `used`, where no walk looks, then publish it. Whatever the
     * counters said, the block must fit the heap: checked here, where the write happens. */
    uint64_t off = sh->used;
    if (off > l2->seg.heap_bytes || need > l2->seg.heap_bytes - off)
        return corrupt_locked(l2, si, "the heap has no room where the counters said it had");
    tc__l2_blk *b = (tc__l2_blk *)(heap + off);
    b->size8 = (uint32_t)(need / 8u);
    b->klen = (uint32_t)klen;
    b->vlen = (uint32_t)vlen;
    b->kind = TC__L2_KIND_ENTRY;
    b->hash = h;
    b->seq = ++sh->seq;
    b->expire_ms = expire;
    b->csum = csum;
    b->hcheck = tc__l2_hcheck(b);
    b->state = TC__L2_LIVE;
    b->reserved = 0;
    if (writing) {
        /* An application's write marks the key's stripe here, in the critical section, before
         * the block can be read: from now on no process of the host serves or fills the old
         * value from its L1, and a fill that read the old value elsewhere is refused when it
         * installs (docs/COHERENCE.md, 4.2). Blocks of other keys of the stripe stay valid:
         * they check invalidations only. */
        st = tc__coh_mark(l2->base.coh, h);
        fence->wrote->stamp = st;
        fence->wrote->moved = 1;
    }
    b->kstamp = (uint32_t)st.s;
    b->pstamp = (uint32_t)st.p;
    uint8_t *p = (uint8_t *)(b + 1);
    memcpy(p, key, klen);
    if (atomic_load_explicit(&tc__l2_crash_at, memory_order_relaxed) == TC__L2_CP_BLOCK_HALF) {
        memcpy(p + klen, val, vlen / 2);
        tc__l2_crash();
    }
    memcpy(p + klen, val, vlen);
    TC__L2_ORDER();
    sh->used = off + need;
    TC__L2_ORDER();
    TC__L2_CRASHPOINT(TC__L2_CP_BLOCK_PUBLISHED);
    uint64_t slot = tc__l2_slot_make(h, off);
    uint64_t meta = tc__l2_meta(access_init(l2->policy, now), expire);
    if (pos >= 0) {
        tc__l2_slot *sp = &tc__l2_index_of(&l2->seg, si)[pos];
        sp->meta = meta;
        sp->key = slot;
        TC__L2_ORDER();
        TC__L2_CRASHPOINT(TC__L2_CP_REPLACED);
        ((tc__l2_blk *)(heap + old_off))->state = TC__L2_DEAD;
        TC__L2_ST(sh->live_bytes, TC__L2_LD(sh->live_bytes) - old_size + need);
    } else {
        if (tc__l2_index_insert_locked(&l2->seg, si, slot, meta) != 0)
            return corrupt_locked(l2, si, "the index has no free slot");
        TC__L2_ST(sh->entries, TC__L2_LD(sh->entries) + 1);
        TC__L2_ST(sh->live_bytes, TC__L2_LD(sh->live_bytes) + need);
    }
    TC__L2_INC(sh->sets, 1);
    tc__l2_unlock(&l2->seg, si);
    return 0;
}

/* With a coherence table, a delete moves the key's stripe inside the critical section (whether
 * or not the key was here): no process of the host serves or fills the old value afterwards. */
static int l2_del(tc__tier *t, const tc__key *k) {
    tc__l2 *l2 = (tc__l2 *)t;
    const void *key = k->p;
    size_t klen = k->len;
    if (klen > l2->max_key) {
        if (l2->base.coh != NULL) tc__coh_mark(l2->base.coh, k->hash); /* never here; L1s may have it */
        return 0;
    }
    int rc = segment_ok(l2, tc__now_ms());
    if (rc) return rc;
    uint64_t h = k->hash;
    uint32_t si = tc__l2_shard_of(&l2->seg, h);
    tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
    rc = lock_shard(l2, si, l2->lock_wait_ns, NULL);
    if (rc) return rc;
    const tc__l2_blk *b = NULL;
    int64_t pos = tc__l2_index_find_locked(&l2->seg, si, h, key, klen, &b);
    if (pos == -2) return corrupt_locked(l2, si, "an index slot points at a broken block");
    if (pos >= 0) {
        remove_locked(l2, si, (uint64_t)pos, (tc__l2_blk *)b);
        TC__L2_INC(sh->deletes, 1);
    }
    if (l2->base.coh != NULL) tc__coh_mark(l2->base.coh, h);
    tc__l2_unlock(&l2->seg, si);
    return 0;
}

/* What is left of a call's lock-wait budget (it ends at deadline_ns), but at least the
 * minimum wait: once one stopped holder has spent the budget, the other shards' locks are
 * still waited for long enough to ride out ordinary contention. */
static uint64_t budget_left(uint64_t deadline_ns) {
    uint64_t now = tc__now_ns();
    uint64_t left = deadline_ns > now ? deadline_ns - now : 0;
    return left > TC__L2_LOCK_MIN_WAIT_NS ? left : TC__L2_LOCK_MIN_WAIT_NS;
}

/* Empties every shard, one at a time. The call's lock waits share one
 * CACHE_SHARED_LOCK_TIMEOUT: a shard whose lock stays held is skipped (TC_ETIMEDOUT). Work:
 * O(index_slots) per shard. */
static int l2_clear(tc__tier *t) {
    tc__l2 *l2 = (tc__l2 *)t;
    int ret = segment_ok(l2, tc__now_ms());
    if (ret) return ret;
    uint64_t deadline = tc__now_ns() + l2->lock_wait_ns;
    for (uint32_t si = 0; si < l2->seg.nshards; si++) {
        tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
        int rc = lock_shard(l2, si, budget_left(deadline), NULL);
        if (rc) {
            ret = rc;
            continue;
        }
        sh->used = 0; /* first: a crash from here on repairs to an empty shard */
        TC__L2_ORDER();
        TC__L2_CRASHPOINT(TC__L2_CP_CLEAR);
        memset(tc__l2_index_of(&l2->seg, si), 0, l2->seg.index_slots * sizeof(tc__l2_slot));
        TC__L2_ST(sh->entries, 0);
        TC__L2_ST(sh->live_bytes, 0);
        sh->cursor = 0;
        tc__l2_unlock(&l2->seg, si);
    }
    return ret;
}

/* Removes every entry whose key starts with prefix, shard by shard, the lock waits sharing one
 * CACHE_SHARED_LOCK_TIMEOUT as in l2_clear. Work: O(index_slots) per shard, under that shard's
 * lock only; a shard found damaged is rebuilt and walked again, at most twice. */
static int l2_clear_prefix(tc__tier *t, const void *prefix, size_t plen) {
    tc__l2 *l2 = (tc__l2 *)t;
    if (plen == 0) return l2_clear(t);
    int ret = segment_ok(l2, tc__now_ms());
    if (ret) return ret;
    uint64_t deadline = tc__now_ns() + l2->lock_wait_ns;
    for (uint32_t si = 0; si < l2->seg.nshards; si++) {
        tc__l2_shard *sh = tc__l2_shard_at(&l2->seg, si);
        tc__l2_slot *idx = tc__l2_index_of(&l2->seg, si);
        int rc = lock_shard(l2, si, budget_left(deadline), NULL);
        if (rc) {
            ret = rc;
            continue;
        }
        int rebuilt = 0;
        for (uint64_t pos = 0; pos < l2->seg.index_slots; pos++) {
            uint64_t slot;
            while ((slot = idx[pos].key) != 0) {
                tc__l2_blk *b = slot_blk_locked(l2, si, slot);
                if (b == NULL) {
                    tc__l2_repair_locked(&l2->seg, si);
                    ret = TC_ECORRUPT;
                    if (++rebuilt > 2) { /* damaged again under us: leave it to the next op */
                        pos = l2->seg.index_slots;
                        break;
                    }
                    pos = 0; /* the index was rebuilt: start over */
                    continue;
                }
                if (b->klen < plen || memcmp(b + 1, prefix, plen) != 0) break;
                /* Deletion shifts a later slot into pos: look at pos again. */
                remove_locked(l2, si, pos, b);
                TC__L2_INC(sh->deletes, 1);
            }
        }
        tc__l2_unlock(&l2->seg, si);
    }
    return ret;
}

static void l2_stats(tc__tier *t, tc_tier_stats *out) {
    tc__l2 *l2 = (tc__l2 *)t;
    if (segment_ok(l2, tc__now_ms()) != 0) { /* the counters live in the mapping */
        out->tier = TC_TIER_L2;
        snprintf(out->type, sizeof out->type, "shared");
        out->available = 0;
        tc__stat_extra(out, "segment", "%s", l2->seg.name);
        tc__stat_extra(out, "state", "file changed size; not used");
        return;
    }
    tc__l2_fill_stats(&l2->seg, out);
    if (l2->base.coh != NULL)
        tc__stat_extra(out, "invalidated", "%llu",
                       (unsigned long long)atomic_load_explicit(&l2->invalidated, memory_order_relaxed));
}

static void l2_close(tc__tier *t) {
    tc__l2 *l2 = (tc__l2 *)t;
    if (l2 == NULL) return;
    tc__l2_seg_close(&l2->seg);
    free(l2);
}

static const tc__tier_ops l2_ops = {
    .get = l2_get,
    .set = l2_set,
    .del = l2_del,
    .clear = l2_clear,
    .clear_prefix = l2_clear_prefix,
    .stats = l2_stats,
    .close = l2_close,
};

int tc__l2_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen) {
    *out = NULL;
    tc__l2_geom g = {.max_entries = opt->shared_max_entries,
                     .max_bytes = opt->shared_max_bytes,
                     .max_key_bytes = opt->max_key_bytes,
                     .max_value_bytes = opt->max_value_bytes,
                     .policy = opt->shared_eviction};
    /* a geometry variable left at its default adopts what an existing segment has: only the
     * ones the process set must agree */
    if (!tc__opts_explicit(opt, "CACHE_SHARED_MAX_ENTRIES")) g.adopt |= TC__L2_ADOPT_ENTRIES;
    if (!tc__opts_explicit(opt, "CACHE_SHARED_MAX_BYTES")) g.adopt |= TC__L2_ADOPT_BYTES;
    if (!tc__opts_explicit(opt, "CACHE_MAX_KEY_BYTES")) g.adopt |= TC__L2_ADOPT_KEY;
    if (!tc__opts_explicit(opt, "CACHE_MAX_VALUE_BYTES")) g.adopt |= TC__L2_ADOPT_VALUE;
    if (!tc__opts_explicit(opt, "CACHE_SHARED_EVICTION")) g.adopt |= TC__L2_ADOPT_POLICY;
    int rc = tc__l2_geom_derive(&g, errbuf, errlen);
    if (rc) return rc;
    if (opt->shared_lock_timeout_ms == 0)
        return tc__errf(errbuf, errlen, TC_ECONFIG, "CACHE_SHARED_LOCK_TIMEOUT=0: expected 1ms or more");
    tc__shm_trust trust;
    rc = tc__shm_trust_of(opt, &trust, errbuf, errlen);
    if (rc) return rc;
    tc__l2 *l2 = calloc(1, sizeof *l2);
    if (l2 == NULL) return tc__errf(errbuf, errlen, TC_ENOMEM, "out of memory opening L2");
    rc = tc__l2_seg_open(opt->shared_name, &g, &trust, 1, &l2->seg, errbuf, errlen);
    if (rc) {
        free(l2);
        return rc;
    }
    l2->base.ops = &l2_ops;
    l2->base.id = TC_TIER_L2;
    l2->base.shared = 1;
    l2->policy = l2->seg.g.policy;
    l2->default_ttl_ms = opt->shared_default_ttl_ms;
    l2->max_key = l2->seg.g.max_key_bytes;
    l2->max_value = l2->seg.g.max_value_bytes;
    l2->lock_wait_ns = opt->shared_lock_timeout_ms * 1000000u;
    l2->size_check_ms = tc__now_ms() + TC__L2_SIZE_CHECK_MS;
    l2->log_fn = opt->log_fn;
    l2->log_ud = opt->log_userdata;
    *out = &l2->base;
    return 0;
}
