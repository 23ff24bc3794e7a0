/*
 * l2_segment.h -- the layout of an L2 shared-memory segment and the primitives that keep it
 * consistent: opening/creating a segment by name, the per-shard hash index, block validation,
 * compaction, crash repair and the invariant checker.
 *
 * A segment is one file /dev/shm/tiercache.<name>, mapped MAP_SHARED by every process that
 * uses the cache. It holds offsets, never pointers. Layout (docs/SHARED.md draws it):
 *
 *   0               tc__l2_hdr       magic, layout version, geometry, header checksum,
 *                                     attached-process table
 *   off_shards      nshards x tc__l2_shard   robust mutex, heap cursor, counters, intent
 *   off_index       nshards x index_slots x uint64_t   open addressing, linear probing
 *   off_heap        nshards x heap_bytes      blocks, 8-byte aligned, walked from 0 to used
 *
 * Every shard is independent: its own lock, index, heap and share of the limits. Everything
 * a shard owns is changed only under its lock, in an order that keeps the heap walkable at
 * every instant, so that a process killed anywhere leaves a shard that the next locker
 * (which gets EOWNERDEAD) rebuilds from its heap: see tc__l2_repair_locked().
 *
 * Nothing in the mapping is trusted after it was validated at open: the geometry (offsets,
 * sizes, limits, policy) is copied into the process's own tc__l2_seg, and every accessor below
 * computes addresses from that copy, never from the mapped header. The writable part (shard
 * headers, index, heap) is checked against that copy before it is used: see
 * tc__l2_lock() and docs/SHARED.md, "Threat model".
 */
#ifndef TC_L2_SEGMENT_H
#define TC_L2_SEGMENT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "shm.h"
#include "tier.h"

#define TC__L2_MAGIC 0x314d485345524954ull /* "TIERSHM1" little-endian */
#define TC__L2_LAYOUT_VERSION 2u
#define TC__L2_DIR "/dev/shm"
#define TC__L2_FILE_PREFIX "tiercache."
#define TC__L2_NAME_MAX 200  /* bytes of a segment name: [A-Za-z0-9._-], not starting with '.' */
#define TC__L2_MAX_PROCS 128 /* attached-process table */
#define TC__L2_MAX_SHARDS 256
#define TC__L2_SHARD_TARGET (4u << 20) /* aim for heaps of about 4 MiB: bounds repair/compaction */
#define TC__L2_TMP_PREFIX ".tiercache-tmp." /* a creator's temporary file: see create_segment() */
#define TC__L2_TMP_GRACE_S 2     /* an unlocked temporary file this old is a dead creator's */
#define TC__L2_LOCK_MIN_WAIT_NS 1000000ull /* a call over many shards waits at least this for
                                              each lock, even when its budget is spent */
#define TC__L2_SIZE_CHECK_MS 10  /* how often a handle re-checks the segment's file size */
#define TC__L2_ADMIN_WAIT_MS 1000u /* check and repair wait this long for shard locks, in all */

/* ------------------------------------------------------------------------ */
/* Segment header                                                           */
/* ------------------------------------------------------------------------ */

/* Fields up to hcsum are written once by the creator, before the segment gets its name, and
 * are covered by hcsum. The asked-for geometry (max_*, policy) is what a process compares
 * with its own options; the derived geometry (nshards ... off_heap) is recomputed from it at
 * every open and must match, so that a damaged or foreign header is never followed. */
typedef struct tc__l2_hdr {
    uint64_t magic;
    uint32_t layout_version;
    uint32_t hdr_bytes;      /* sizeof(tc__l2_hdr) */
    uint32_t shard_bytes;    /* sizeof(tc__l2_shard): catches an ABI change (pthread_mutex_t) */
    uint32_t policy;         /* tc_policy */
    uint64_t total_bytes;    /* the file's size */
    uint64_t max_entries, max_bytes, max_key_bytes, max_value_bytes;
    uint32_t nshards;
    uint32_t reserved0;
    uint64_t index_slots;    /* per shard, a power of two */
    uint64_t heap_bytes;     /* per shard */
    uint64_t off_shards, off_index, off_heap;
    uint64_t created_unix_ms;
    char name[TC__L2_NAME_MAX + 8];
    uint64_t hcsum;          /* XXH3 of every byte above */
    /* Mutable part. */
    _Atomic int32_t procs[TC__L2_MAX_PROCS]; /* pids of attached processes, 0 = free */
} tc__l2_hdr;

/* ------------------------------------------------------------------------ */
/* Shards                                                                   */
/* ------------------------------------------------------------------------ */

/* The record of the compaction in flight: the block being moved from src to dst (len bytes).
 * Two copies, icur selects the valid one, so that it changes with one store. */
typedef struct tc__l2_intent {
    uint64_t src, dst, len;
} tc__l2_intent;

typedef struct tc__l2_shard {
    _Alignas(64) pthread_mutex_t lock; /* robust, process-shared */
    /* Under lock. Fields read by stats without the lock are atomics (relaxed). The fields a
     * get touches share the lock's cache line. */
    _Atomic uint64_t hits, misses;
    uint64_t used;             /* heap bytes holding blocks: [0, used) is walkable */
    _Atomic uint64_t live_bytes; /* sum of LIVE block sizes (the bytes charged) */
    _Atomic uint64_t entries;  /* LIVE blocks, each referenced by one index slot */
    uint64_t seq;              /* last sequence number given to a block */
    uint64_t max_entries;      /* this shard's share of the limits, written at creation and by */
    uint64_t max_bytes;        /* repair; informational: operations use tc__l2_share_*() */
    uint64_t cursor;           /* expiry sweep position in the index */
    uint64_t compacting;       /* 1 while a compaction runs */
    uint64_t icur;             /* intent[icur & 1] is valid */
    tc__l2_intent intent[2];
    uint64_t damaged;          /* 1: an op saw a broken invariant; repaired at next lock */
    /* Statistics: relaxed atomics, written under the lock (load+store, no locked insn). */
    _Atomic uint64_t sets, deletes, evictions, expirations;
    _Atomic uint64_t compactions, repairs;
} tc__l2_shard;

/* ------------------------------------------------------------------------ */
/* Blocks                                                                   */
/* ------------------------------------------------------------------------ */

/* A block: 72-byte header, then key, then value, padded to 8 bytes.
 *
 *   0  size8 u32 | klen u32 | vlen u32 | kind u32      \
 *  16  hash u64                                         |  covered by hcheck
 *  24  seq u64      (shard-wide, newer wins on repair)  |
 *  32  expire_ms u64 (CLOCK_MONOTONIC ms; 0 = never)    |
 *  40  csum u64     (XXH3 of the value, seeded by hash) /
 *  48  hcheck u64
 *  56  state u32 (LIVE/DEAD) | reserved u32 (LRU/LFU data live in the index slot)
 *  64  kstamp u32 | pstamp u32 (coherence stamps; outside hcheck, like state)
 *  72  key bytes, value bytes, padding
 *
 * kind is ENTRY for a key/value, HOLE for filler written by repair (always DEAD). */
typedef struct tc__l2_blk {
    uint32_t size8;
    uint32_t klen;
    uint32_t vlen;
    uint32_t kind;
    uint64_t hash;
    uint64_t seq;
    uint64_t expire_ms;
    uint64_t csum;
    uint64_t hcheck;
    uint32_t state;
    uint32_t reserved;
    /* the stamps the entry was written or filled under (docs/COHERENCE.md, 2.2): like state,
     * outside hcheck, since a lookup may re-stamp an entry that passed a prefix check */
    uint32_t kstamp;
    uint32_t pstamp;
} tc__l2_blk;

#define TC__L2_BLK_HDR 72u
#define TC__L2_KIND_ENTRY 0x59544e45u /* "ENTY" */
#define TC__L2_KIND_HOLE 0x454c4f48u  /* "HOLE" */
#define TC__L2_LIVE 0x4556494cu       /* "LIVE" */
#define TC__L2_DEAD 0x44414544u       /* "DEAD" */

static inline uint64_t tc__l2_align8(uint64_t n) { return (n + 7u) & ~(uint64_t)7u; }
static inline uint64_t tc__l2_blk_size(uint64_t klen, uint64_t vlen) {
    return tc__l2_align8(TC__L2_BLK_HDR + klen + vlen);
}

/* ------------------------------------------------------------------------ */
/* An attached segment                                                      */
/* ------------------------------------------------------------------------ */

/* What a process asks for. */
/* Bits of tc__l2_geom.adopt: a field the process did not set explicitly is taken from an
 * existing segment instead of being compared with it. */
#define TC__L2_ADOPT_ENTRIES 1u
#define TC__L2_ADOPT_BYTES 2u
#define TC__L2_ADOPT_KEY 4u
#define TC__L2_ADOPT_VALUE 8u
#define TC__L2_ADOPT_POLICY 16u

typedef struct tc__l2_geom {
    uint64_t max_entries, max_bytes, max_key_bytes, max_value_bytes;
    tc_policy policy;
    uint32_t adopt; /* TC__L2_ADOPT_* (0: every field must match an existing segment) */
    /* derived */
    uint32_t nshards;
    uint64_t index_slots, heap_bytes;
    uint64_t off_shards, off_index, off_heap, total_bytes;
} tc__l2_geom;

/* An attached segment. Everything but base points into this process's memory: the geometry
 * in g was validated against the header's checksum at open and is never read from the
 * mapping again (another process can write the mapping, header included). */
typedef struct tc__l2_seg {
    uint8_t *base;
    size_t size;
    const tc__l2_hdr *hdr; /* the mapped header: only its procs[] table is used after open */
    tc__l2_geom g;         /* the segment's geometry, as validated at open */
    uint32_t nshards, nshards_log2;
    uint64_t index_slots, heap_bytes;
    int fd;        /* the segment's file, kept open to notice a truncation (tc__l2_seg_size_ok) */
    int proc_slot; /* index in hdr->procs, or -1 */
    char name[TC__L2_NAME_MAX + 1];
    char path[TC__L2_NAME_MAX + 64];
} tc__l2_seg;


static inline tc__l2_shard *tc__l2_shard_at(const tc__l2_seg *s, uint32_t i) {
    return (tc__l2_shard *)(s->base + s->g.off_shards + (uint64_t)i * sizeof(tc__l2_shard));
}
/* Shard i's share of the segment's limits: the remainder of the division goes to the first
 * shards, so the shares add up to the limits (nshards is a power of two). */
static inline uint64_t tc__l2_share_entries(const tc__l2_seg *s, uint32_t i) {
    return (s->g.max_entries >> s->nshards_log2) + (i < (s->g.max_entries & (s->nshards - 1u)));
}
static inline uint64_t tc__l2_share_bytes(const tc__l2_seg *s, uint32_t i) {
    return (s->g.max_bytes >> s->nshards_log2) + (i < (s->g.max_bytes & (s->nshards - 1u)));
}
/* An index slot: the key word says where the entry is; the meta word carries what eviction
 * compares, so that sampling reads consecutive slots and no entry:
 *
 *   key:  | 63 ....... 32 | 31 ............. 0 |     meta: | 63 ...... 32 | 31 ........ 0 |
 *         | tag: hash>>32 | heap offset/8 + 1  |           | access (LRU/ | expiry: ms>>10 |
 *         |               | (0: empty slot)    |           | LFU, as blk) | + 1; 0 = never |
 */
typedef struct tc__l2_slot {
    uint64_t key;
    uint64_t meta;
} tc__l2_slot;

static inline tc__l2_slot *tc__l2_index_of(const tc__l2_seg *s, uint32_t i) {
    return (tc__l2_slot *)(s->base + s->g.off_index + (uint64_t)i * s->index_slots * sizeof(tc__l2_slot));
}
static inline uint32_t tc__l2_exp32(uint64_t expire_ms) {
    return expire_ms == 0 ? 0 : (uint32_t)((expire_ms >> 10) + 1);
}
static inline uint64_t tc__l2_meta(uint32_t access, uint64_t expire_ms) {
    return ((uint64_t)access << 32) | tc__l2_exp32(expire_ms);
}
static inline uint8_t *tc__l2_heap_of(const tc__l2_seg *s, uint32_t i) {
    return s->base + s->g.off_heap + (uint64_t)i * s->heap_bytes;
}
static inline uint32_t tc__l2_shard_of(const tc__l2_seg *s, uint64_t hash) {
    return (uint32_t)(hash & (s->nshards - 1u));
}

/* Index slot key words: 0 = empty, else tag (hash >> 32) in the high half and offset/8 + 1 in
 * the low half. The home slot is tag & (index_slots - 1), so a slot alone says where it
 * belongs. */
static inline uint64_t tc__l2_slot_make(uint64_t hash, uint64_t off) {
    return ((hash >> 32) << 32) | (off / 8u + 1u);
}
static inline uint64_t tc__l2_slot_off(uint64_t slot) { return ((slot & 0xffffffffu) - 1u) * 8u; }
static inline uint64_t tc__l2_slot_home(uint64_t slot, uint64_t mask) { return (slot >> 32) & mask; }
static inline uint64_t tc__l2_hash_home(uint64_t hash, uint64_t mask) { return (hash >> 32) & mask; }

/* Orders stores for crash consistency: a process that dies stops at an instruction boundary
 * and every store it issued before stays visible, so only the compiler must keep program
 * order. (A signal fence is a compiler barrier, and TSan does not warn about it.) */
#define TC__L2_ORDER() atomic_signal_fence(memory_order_seq_cst)

/* Relaxed counter helpers: written under the shard lock, read by anyone. */
#define TC__L2_LD(x) atomic_load_explicit(&(x), memory_order_relaxed)
#define TC__L2_ST(x, v) atomic_store_explicit(&(x), (v), memory_order_relaxed)
#define TC__L2_INC(x, n) TC__L2_ST(x, TC__L2_LD(x) + (n))

/* Fault injection for the crash tests: when tc__l2_crash_at equals a crash point's number,
 * the process raises tc__l2_crash_signal there: SIGKILL (the default) to die at that point,
 * SIGSTOP to stop there (the lock-timeout tests stop a process holding a shard lock).
 * 0 (the default) disables every point. */
extern _Atomic int tc__l2_crash_at;
extern _Atomic int tc__l2_crash_signal;
/* The lock-wait budget of tc_shared_check/repair, TC__L2_ADMIN_WAIT_MS; the fuzz target
 * shortens it. */
extern _Atomic unsigned tc__l2_admin_wait_ms;
void tc__l2_crash(void);
#define TC__L2_CRASHPOINT(n)                                                                \
    do {                                                                                    \
        if (__builtin_expect(atomic_load_explicit(&tc__l2_crash_at, memory_order_relaxed) == \
                                 (n),                                                       \
                             0))                                                            \
            tc__l2_crash();                                                                 \
    } while (0)

enum {
    TC__L2_CP_LOCKED = 1,       /* holding a shard lock, nothing changed */
    TC__L2_CP_BLOCK_HALF,       /* new block's header written, value half copied */
    TC__L2_CP_BLOCK_PUBLISHED,  /* used bumped, index not yet pointing at the block */
    TC__L2_CP_REPLACED,         /* index points at the new block, old one still LIVE */
    TC__L2_CP_DEL_MARKED,       /* block marked DEAD, index slot not yet removed */
    TC__L2_CP_INDEX_SHIFT,      /* half-way through a backward-shift deletion */
    TC__L2_CP_COMPACT_INTENT,   /* intent recorded, block not yet moved */
    TC__L2_CP_COMPACT_HALF,     /* block half moved */
    TC__L2_CP_COMPACT_MOVED,    /* block moved, index not yet updated */
    TC__L2_CP_CLEAR,            /* clear: used reset, index not yet cleared */
    TC__L2_CP__COUNT
};

/* ------------------------------------------------------------------------ */
/* Segment functions (l2_segment.c)                                         */
/* ------------------------------------------------------------------------ */

/* Checks a segment name; 0 or TC_EINVAL with a message. */
int tc__l2_name_check(const char *name, char *errbuf, size_t errlen);

/* Derives the geometry from what is asked for: from the settings alone (never from the space
 * that happens to be free), so that processes with the same settings get the same geometry.
 * The byte budget rules the entry count: max_entries is capped at what max_bytes can hold
 * in the smallest entries (max_bytes / tc__l2_blk_size(0, 0)), so the index is not sized for
 * entries that could never fit. 0, or TC_ECONFIG with a message. */
int tc__l2_geom_derive(tc__l2_geom *g, char *errbuf, size_t errlen);

/* Opens the segment called name, creating it with geometry *g when it does not exist (g may
 * be NULL: attach only, any geometry, for the admin functions: TC_ENOENT when missing).
 * trust says which files are used (NULL: TC__SHM_TRUST_OWNER); a file that fails it is refused
 * with TC_EPERM and a message naming its owner, group and mode and the fix.
 * register_proc: record this pid in the attached-process table. On success fills *seg.
 * Errors: TC_EINVAL (name), TC_EVERSION (other layout or geometry: the message says what
 * differs), TC_ECORRUPT (damaged header), TC_EPERM, TC_ENOMEM, TC_EIO. Work: creation
 * reserves and initialises the whole segment; an attach maps it (MAP_POPULATE). */
int tc__l2_seg_open(const char *name, const tc__l2_geom *g, const tc__shm_trust *trust,
                    int register_proc, tc__l2_seg *seg, char *errbuf, size_t errlen);
void tc__l2_seg_close(tc__l2_seg *seg);

/* 0 when the segment's file still has the size it had at open; TC_EIO (message in errbuf)
 * when another process truncated or extended it: a mapping beyond the end of a file raises
 * SIGBUS, so the caller must stop touching the segment. One fstat(). */
int tc__l2_seg_size_ok(const tc__l2_seg *s, char *errbuf, size_t errlen);

/* Removes the temporary files of creators that died before linking their segment: files
 * named TC__L2_TMP_PREFIX... that this uid owns, older than TC__L2_TMP_GRACE_S and not locked
 * by a live creator. Work: one pass over the directory. */
void tc__l2_sweep_tmp(void);

/* Flags tc__l2_lock() reports in *how. */
#define TC__L2_LOCK_REPAIRED 1 /* the shard was rebuilt before use */
#define TC__L2_LOCK_WAITED 2   /* the lock was busy: the caller's clock reading is stale */

/* Locks shard i, waiting at most wait_ns for a holder (0: only a try). The shard is rebuilt
 * before use (tc__l2_repair_locked) when its last owner died holding the lock or an op flagged
 * it damaged; an operation that uses the shard's counters checks them first with
 * tc__l2_shard_sane_locked(). how (may be NULL) receives TC__L2_LOCK_* flags. Returns 0
 * (locked), TC_ETIMEDOUT (held by another process for the whole wait: a stopped or hung
 * process), or TC_ECORRUPT (the lock itself is damaged or unrecoverable). Never blocks longer
 * than the wait plus one repair. */
int tc__l2_lock(const tc__l2_seg *s, uint32_t i, uint64_t wait_ns, int *how);
void tc__l2_unlock(const tc__l2_seg *s, uint32_t i);

/* The thread id the shard's lock records as its holder (0 when free or unknown): for
 * messages about a lock that timed out. */
long tc__l2_lock_holder(const tc__l2_seg *s, uint32_t i);

/* 1 when shard i's writable header is within what the geometry allows: the heap cursor in the
 * heap and aligned, the counters within the cursor and the shard's share of the limits, the
 * stored limits equal to the shares, no compaction marked in progress. Caller holds the lock. */
int tc__l2_shard_sane_locked(const tc__l2_seg *s, uint32_t i);

/* Rebuilds shard i from its heap: finishes or rolls back an interrupted compaction, walks the
 * blocks (truncating at the first one that cannot be parsed), drops blocks whose checksums
 * fail, keeps the newest of duplicate keys, drops what exceeds the shard's share of the limits,
 * rebuilds the index and counters, and rewrites the stored limits from the geometry. Work:
 * O(heap_bytes + index_slots). Caller holds the lock. */
void tc__l2_repair_locked(const tc__l2_seg *s, uint32_t i);

/* Validates the header of the block at off (bounds, hcheck, kind, state, sizes). Returns the
 * block or NULL. Does not read the key or value. */
const tc__l2_blk *tc__l2_blk_at(const tc__l2_seg *s, uint32_t i, uint64_t off, uint64_t used);
/* 1 when the block's key hashes to its hash and its value matches its checksum. */
int tc__l2_blk_verify(const tc__l2_blk *b);
uint64_t tc__l2_hcheck(const tc__l2_blk *b);

/* Index operations, caller holds the lock. find: returns the slot position of key, or -1 when
 * absent, or -2 when a slot on the probe path points at a broken block (shard is then flagged
 * damaged). */
int64_t tc__l2_index_find_locked(const tc__l2_seg *s, uint32_t i, uint64_t hash, const void *key,
                                 size_t klen, const tc__l2_blk **out);
/* insert: 0, or TC_ECORRUPT when no slot is free (the index holds at most half its slots in a
 * sound shard, so a full one was written by someone else; the shard is flagged damaged).
 * Work: at most index_slots probes. */
int tc__l2_index_insert_locked(const tc__l2_seg *s, uint32_t i, uint64_t slot, uint64_t meta);
void tc__l2_index_delete_locked(const tc__l2_seg *s, uint32_t i, uint64_t pos);

/* Makes the heap's free space contiguous at its end by sliding LIVE blocks down over DEAD
 * ones, logging each move in the intent record first. Work: O(used) bytes moved.
 * 0, or TC_ECORRUPT (shard flagged damaged). */
int tc__l2_compact_locked(const tc__l2_seg *s, uint32_t i);

/* Walks shard i and appends every broken invariant to rep (at most replen). Returns the number
 * of problems. Caller holds the lock. */
int tc__l2_check_shard_locked(const tc__l2_seg *s, uint32_t i, char *rep, size_t replen);

#endif /* TC_L2_SEGMENT_H */
