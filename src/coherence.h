/*
 * coherence.h -- the host's coherence table (coherence.c): stripe words, the epoch, prefix
 * generations, and the lease of the host's invalidation listener. docs/COHERENCE.md is the
 * design; this header is the contract the orchestrator and the tiers use.
 *
 * The table lives in the coherence segment (/dev/shm/tiercache-coh.<name>) shared by every
 * process of a host, or in private memory when coherence is off. Layout:
 *
 *   +----------------------------+  0
 *   | tc__coh_hdr                |  magic, version, sizes, nonce, name, checksum (read-only
 *   |                            |  after creation); then, each on its own cache line:
 *   |   epoch  | GAP | ticket | counter |   read by every hit
 *   |   pgen, lease, host-wide counters  |
 *   |   prefix ring (64 records) + lock  |
 *   +----------------------------+  4096 * k
 *   | words[2 * TC__COH_STRIPES] |  per stripe: w (writes) and i (invalidations), 64-bit,
 *   +----------------------------+  monotonic, side by side; stripe of a key: its hash's
 *                                   high half mod TC__COH_STRIPES
 *
 *   epoch:  | 63: GAP | 62..48: listener ticket | 47..0: counter |
 *
 * A stripe word and the epoch counter only ever grow; nothing on a hot path takes a lock, and
 * nothing a process can leave half done exists (a process killed between two increments left
 * at most one increment too many: a spurious miss somewhere).
 *
 * Two words per stripe. A write made on this host replaces the key in the shared tier (L2)
 * itself, under its lock: it moves only the stripe's w word (tc__coh_mark), which process-local
 * copies (L1) and fills in flight check. An invalidation -- from another host through the
 * listener, or a write whose L2 part failed and so could not replace the key there -- moves the
 * i word (tc__coh_bump), which L2's blocks check too. So a write does not make L2 blocks of
 * other keys in its stripe stale; only invalidations do.
 *
 * Stamps (docs/COHERENCE.md 2.2). An L1 entry filled at stamp s is valid while the key's
 * w + i + epoch counter, less this process's own moves of w, still equals s.f; an L2 block
 * while i + epoch still equals s.s; both while pgen equals s.p (else the slow path
 * tc__coh_prefix_ok() looks at which prefixes were cleared) and GAP is clear. Entries keep the
 * low 32 bits of each. A fill's fence compares the whole s.k = w + i + epoch.
 *
 * Own moves. A write this process makes replaces the key in its own L1 itself (or removes it),
 * so its move of w need not invalidate this process's copies of the stripe's other keys: the
 * handle counts its own moves per stripe (in private memory, own[]), and its L1 entries check
 * w less that count -- the moves of w by every other process. Without this, each write made
 * every L1 entry of its stripe a miss in the writer itself (zipf99, L1L2: hit ratio 0.862 ->
 * 0.835). The count is kept twice, own_pre moved before w and own_post after, so that a stamp
 * is never captured too high (w read first, then own_pre) and never checked too low (own_post
 * read first, then w): a move in flight can only make an entry look stale, never make a stale
 * one look current.
 *
 * Thread-safety: every function is safe from any thread of any process sharing the table,
 * except open/close (one thread, as for the cache handle).
 */
#ifndef TC_COHERENCE_H
#define TC_COHERENCE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TC__COH_STRIPES (1u << 18)
#define TC__COH_RING 64          /* prefix-clear records kept */
#define TC__COH_PREFIX_MAX 240   /* a longer prefix moves the epoch instead */

#define TC__COH_GAP (1ull << 63)
#define TC__COH_TICKET_SHIFT 48
#define TC__COH_TICKET_MASK (0x7fffull << TC__COH_TICKET_SHIFT)
#define TC__COH_COUNTER_MASK ((1ull << TC__COH_TICKET_SHIFT) - 1)

typedef struct tc__coh tc__coh;

/* A stamp: what a fill captured, and what an entry carries (as 32-bit halves). */
typedef struct tc__stamp {
    uint64_t k; /* w + i + epoch counter (what fences compare); TC__STAMP_GAP in a gap */
    uint64_t s; /* i + epoch counter (what L2 checks); TC__STAMP_GAP in a gap */
    uint64_t p; /* pgen */
    uint64_t f; /* k less this handle's own moves of w (what L1 checks); TC__STAMP_GAP in a gap */
} tc__stamp;

/* A stamp no entry is ever valid with: fills during a gap install nothing. */
#define TC__STAMP_GAP UINT64_MAX

/* The words, for the inline functions below. */
struct tc__coh {
    _Atomic uint64_t *words;   /* 2 * TC__COH_STRIPES: w and i of each stripe */
    _Atomic uint32_t *own;     /* 2 * TC__COH_STRIPES, private: this handle's moves of w, counted
                                  before (pre) and after (post) each move */
    _Atomic uint64_t *epoch;
    _Atomic uint64_t *pgen;
    struct tc__coh_hdr *hdr;   /* the segment (or private memory) */
    size_t bytes;
    int shared;                /* 1: a named segment; 0: private memory */
    int fd;
    char name[256];
};

/* ------------------------------------------------------------------------ */
/* Opening                                                                  */
/* ------------------------------------------------------------------------ */

/* The host's table for opt->shared_name, created atomically when missing, under the same
 * trust rules as the L2 segment (owner, group, mode). 0, or TC_EPERM / TC_EVERSION /
 * TC_ECORRUPT / TC_ENOMEM / TC_EIO with a message. */
int tc__coh_open_shared(const tc__opts *opt, tc__coh **out, char *errbuf, size_t errlen);

/* A table in this process's memory only (CACHE_COHERENCE=off, or one tier). */
int tc__coh_open_private(tc__coh **out);

void tc__coh_close(tc__coh *c);

/* Removes the coherence segment of name (with tc_shared_destroy). 0 or TC_ENOENT. */
int tc__coh_destroy(const char *name);

/* ------------------------------------------------------------------------ */
/* Stamps, the hot path                                                     */
/* ------------------------------------------------------------------------ */

/* The stripe's two words: [0] w (writes), [1] i (invalidations). */
static inline _Atomic uint64_t *tc__coh_words(const tc__coh *c, uint64_t hash) {
    /* bits 32.. of the hash: the high half L1 and L2 keep in their slots, so a tier can find
     * an entry's stripe without reading the entry */
    return &c->words[2 * ((hash >> 32) & (TC__COH_STRIPES - 1))];
}

/* The index of a key's stripe. */
static inline size_t tc__coh_stripe(uint64_t hash) { return (size_t)((hash >> 32) & (TC__COH_STRIPES - 1)); }

/* The stamp of a key with this hash, now, as a fill captures it: f never above the true count
 * (w read before own_pre, which moves first). */
static inline tc__stamp tc__coh_stamp(const tc__coh *c, uint64_t hash) {
    tc__stamp s;
    s.p = atomic_load_explicit(c->pgen, memory_order_acquire);
    uint64_t e = atomic_load_explicit(c->epoch, memory_order_acquire);
    if (e & TC__COH_GAP) {
        s.k = s.s = s.f = TC__STAMP_GAP;
        return s;
    }
    _Atomic uint64_t *w = tc__coh_words(c, hash);
    uint64_t i = atomic_load_explicit(&w[1], memory_order_acquire);
    s.s = i + (e & TC__COH_COUNTER_MASK);
    s.k = s.s + atomic_load_explicit(&w[0], memory_order_acquire);
    s.f = s.k - atomic_load_explicit(&c->own[2 * tc__coh_stripe(hash)], memory_order_acquire);
    return s;
}

/* The part of a key's stamp a check compares, now: s (i + epoch, what an L2 block checks), k
 * (w + i + epoch, what a fence and a tier that counts every move check) or f (k less this
 * handle's own moves, what the first tier's L1 entries check); TC__STAMP_GAP when the channel
 * is down. For f, own_post is read before w, which moves first: f is never below the true
 * count, so a move in flight makes entries look stale, never current. Three to four loads; part
 * is a constant or a tier's fixed choice, so its branches are predicted. */
enum { TC__COH_NOW_S, TC__COH_NOW_K, TC__COH_NOW_F };
static inline uint64_t tc__coh_now(const tc__coh *c, uint64_t hash, int part) {
    size_t st = tc__coh_stripe(hash);
    uint32_t own = part == TC__COH_NOW_F ? atomic_load_explicit(&c->own[2 * st + 1], memory_order_acquire) : 0;
    uint64_t e = atomic_load_explicit(c->epoch, memory_order_acquire);
    if (e & TC__COH_GAP) return TC__STAMP_GAP;
    _Atomic uint64_t *w = &c->words[2 * st];
    uint64_t v = atomic_load_explicit(&w[1], memory_order_acquire) + (e & TC__COH_COUNTER_MASK);
    if (part != TC__COH_NOW_S) v += atomic_load_explicit(&w[0], memory_order_acquire);
    return v - own;
}

/* 1 when an entry of this key stamped (ks, ps) may be served now: ks is the low half of the
 * stamp's part (tc__coh_now: f for the first tier's L1, whose own moves do not count
 * (tc__tier.own_ok), s for an L2 block, whose host's writes replaced it in place). *ps_now
 * receives the current pgen's low half when the entry is valid only after a prefix check it
 * passed (the caller then re-stamps the entry with it, so the check is not repeated). key/klen
 * are the entry's key bytes, for that check. The fast path is four or five loads and two
 * compares. */
int tc__coh_prefix_ok(const tc__coh *c, uint32_t ps, const void *key, size_t klen, uint32_t *ps_now);
static inline int tc__coh_valid(const tc__coh *c, uint64_t hash, int part, uint32_t ks, uint32_t ps, const void *key,
                                size_t klen, uint32_t *ps_now) {
    uint64_t k = tc__coh_now(c, hash, part);
    if (k == TC__STAMP_GAP || (uint32_t)k != ks) return 0;
    uint64_t p = atomic_load_explicit(c->pgen, memory_order_acquire);
    if ((uint32_t)p == ps) return 1;
    return tc__coh_prefix_ok(c, ps, key, klen, ps_now);
}

/* 1 when a fill that captured s may still install (nothing moved since, no gap). */
static inline int tc__coh_unchanged(const tc__coh *c, uint64_t hash, const tc__stamp *s) {
    if (s->k == TC__STAMP_GAP) return 0;
    return tc__coh_now(c, hash, TC__COH_NOW_K) == s->k && atomic_load_explicit(c->pgen, memory_order_acquire) == s->p;
}

/* ------------------------------------------------------------------------ */
/* Writes and invalidations                                                 */
/* ------------------------------------------------------------------------ */

/* A write or delete of the key made on this host, which replaced it (or failed to) in the
 * shared tier itself: moves the stripe's w word, so that every process-local copy of the
 * stripe and every fill in flight is stale. Returns the stamp an entry written by this very
 * write carries (the words after the move). */
tc__stamp tc__coh_mark(tc__coh *c, uint64_t hash);

/* An invalidation of the key (another host's write, Redis's expiry, or a write of this host
 * that could not reach the shared tier): moves the stripe's i word, so that L1 copies, L2
 * blocks and fills of the stripe are all stale. Returns the stamp after the move. */
tc__stamp tc__coh_bump(tc__coh *c, uint64_t hash);

/* Moves the epoch counter: every entry of the host is invalid (tc_clear, FLUSHALL, a message
 * the listener could not read). Keeps GAP as it is. */
void tc__coh_epoch_move(tc__coh *c);

/* Records a cleared prefix: entries whose key starts with it are invalid from now on. A
 * prefix longer than TC__COH_PREFIX_MAX moves the epoch instead. Returns 0, or TC_ETIMEDOUT
 * when the ring's lock could not be had in time (then the epoch was moved instead: every
 * entry invalid, which is also correct). */
int tc__coh_prefix_clear(tc__coh *c, const void *prefix, size_t plen);

/* ------------------------------------------------------------------------ */
/* The channel (the host's listener)                                        */
/* ------------------------------------------------------------------------ */

/* 1 while the channel is down (GAP set): nothing is served from or filled into L1 and L2. */
static inline int tc__coh_gap(const tc__coh *c) {
    return (atomic_load_explicit(c->epoch, memory_order_acquire) & TC__COH_GAP) != 0;
}

/* Sets GAP (a lost channel noticed by anyone). */
void tc__coh_gap_set(tc__coh *c);

/* The listener lease. A process takes it with tc__coh_lease_take() when it is free or its
 * deadline passed (the owner stopped, died or hung); the owner keeps it with
 * tc__coh_lease_renew() and ends a gap with tc__coh_recover(). Each take gets a new ticket:
 * a stopped owner that resumes finds its ticket gone, and its renew and recover fail, so it
 * stands down before applying anything. now_ms is CLOCK_MONOTONIC (one clock for the host). */
int tc__coh_lease_take(tc__coh *c, uint64_t now_ms, uint64_t hold_ms, uint32_t *ticket);
int tc__coh_lease_renew(tc__coh *c, uint32_t ticket, uint64_t now_ms, uint64_t hold_ms);
void tc__coh_lease_release(tc__coh *c, uint32_t ticket);
/* 1 while ticket (of this process) still owns the lease, whatever its deadline: a listener
 * that finds it 0 was replaced and stands down. */
int tc__coh_lease_held(const tc__coh *c, uint32_t ticket);
/* The lease's deadline has passed (nobody listens). */
int tc__coh_lease_expired(const tc__coh *c, uint64_t now_ms);
/* Ends a gap: moves the epoch and clears GAP in one step, only while ticket owns the lease.
 * 1 done, 0 not the owner any more. */
int tc__coh_recover(tc__coh *c, uint32_t ticket);

/* Host-wide counters kept in the table, for the statistics. */
typedef struct tc__coh_counters {
    uint64_t keys_received;   /* invalidated keys the listener received */
    uint64_t messages;        /* invalidation messages */
    uint64_t epoch_moves;     /* flushes: clear, FLUSHALL, recoveries */
    uint64_t gaps;            /* channel losses */
    uint64_t takeovers;       /* listener leases taken */
    uint64_t lag_last_us, lag_max_us; /* canary round trips */
    uint32_t listener_pid;
    int gap;
} tc__coh_counters;

void tc__coh_counters_get(const tc__coh *c, tc__coh_counters *out);

/* The table's random nonce, fixed at its creation: names the host (the processes sharing the
 * segment) in what it writes for other hosts (the clear records of docs/COHERENCE.md 4.4). */
uint64_t tc__coh_nonce(const tc__coh *c);
void tc__coh_count_message(tc__coh *c, uint64_t keys);
void tc__coh_count_lag(tc__coh *c, uint64_t lag_us);

/* ------------------------------------------------------------------------ */
/* Test-only switches                                                       */
/* ------------------------------------------------------------------------ */

/* Each bit disables one mechanism, so that a staged scenario can show the history checker
 * failing without it (docs/COHERENCE.md, section 8). Never set outside the tests; read with
 * relaxed loads where the mechanism acts. */
enum {
    TC__COH_OFF_SHARED = 1u << 0,  /* each process uses a private table instead of the host's */
    TC__COH_OFF_FENCE = 1u << 1,   /* fills install without checking their fence */
    TC__COH_OFF_GAP = 1u << 2,     /* a lost channel never sets GAP */
    TC__COH_OFF_CANARY = 1u << 3,  /* the listener trusts a silent channel (no canary) */
    TC__COH_OFF_ECHO = 1u << 4,    /* the listener skips invalidations of keys its host just wrote */
    TC__COH_OFF_RECOVER = 1u << 5, /* recovery clears GAP without moving the epoch */
};
extern _Atomic unsigned tc__coh_disable;

#endif /* TC_COHERENCE_H */
