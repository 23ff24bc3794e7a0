/*
 * fuzz_l2_segment.c -- libFuzzer target for the writable part of an L2 segment (issue 8,
 * item 4): the shard headers, the index, the block headers and the lock words that every
 * process mapping the segment can write. An input is a program of 12-byte records; each
 * record either writes a *chosen* value somewhere in the writable part, or runs an operation
 * of the tier (get, set, a range of sets, del, clear-by-prefix, clear, check, repair). The
 * values written are picked from a table made of the segment's own geometry -- 0, the heap's
 * size and its neighbours, the shard's share of the limits and one past it, values that wrap
 * when added, the current value plus or minus a little -- or taken raw from the input, so that
 * a short run reaches the boundaries a random byte would almost never hit. A block header can
 * be rewritten with its header checksum recomputed, so that the forged header is believed and
 * the code behind the check is exercised too.
 *
 * Record (little-endian):  op u8 | a u8 | b u16 | v u64
 *
 *   op % 12   what                          a, b, v
 *    0        write a shard-header field    a: shard, b: field, v: value (see chosen())
 *    1        write an index slot word      a: shard, b: slot, v: bit 0 key/meta, rest value
 *    2        write a block-header field    a: shard, b: which block of the heap walk,
 *                                           v: bits 0-2 field, bit 3 recompute hcheck, rest value
 *    3        write a lock word             a: shard, b: 0 futex word, 1 type, 2 owner
 *    4        get                           b: key id
 *    5        set                           a: value size, b: key id
 *    6        set a range of new keys       a: value size, b: how many (0..4095), v: first id
 *                                           (4000 sets at most per input)
 *    7        del                           b: key id
 *    8        clear by prefix               a: which "key:<digit>" prefix
 *    9        clear
 *   10        check every shard             (its report must be produced, nothing else)
 *   11        repair shard a
 *
 * What must hold, whatever was written: no crash, no sanitizer report, no hang (libFuzzer's
 * -timeout), every result one of the tier's documented codes, every value returned intact and
 * the one stored for its key; and at the end, once each shard is rebuilt, the checker finds it
 * consistent and within the shard's share of the limits.
 *
 * Runs: `make test` runs it for TC_FUZZ_SECONDS (default 10) over its seed corpus
 * (tests/fuzz/corpus/l2_segment: the reproducers of the tampered max_entries, which spun for
 * ever in the index insert, and of the tampered max_bytes, which wrote past the heap, named
 * repro-max-entries and repro-max-bytes; a wrapping compaction intent; forged block headers;
 * lock words; a plain workload). A longer run: `make test-fuzz FUZZ_SECONDS=3600`, or by hand
 * after it, `build-fuzz/fuzz_l2_segment -max_total_time=3600 -timeout=10
 * build-fuzz/fuzz-corpus/l2_segment tests/fuzz/corpus/l2_segment`.
 */
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "l2_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Two shards of 256 entries and 64 KiB each (an index of 512 slots, a heap of 80 KiB), values
 * up to 4 KiB: with large values the byte limit binds, with small ones the entry limit. */
#define FZ_ENTRIES 512
#define FZ_BYTES (128u << 10)
#define FZ_VALUE_MAX 4096u
#define FZ_KEYS 65536u

static char fz_name[64];
static int fz_timed_out; /* a lock wait timed out: the handle may hold stall marks */
static tc__opts fz_opt;
static tc__tier *fz_tier;
static tc__l2_seg fz_seg; /* a second mapping: the "other process" that writes */
static uint8_t fz_val[FZ_VALUE_MAX + 8], fz_buf[FZ_VALUE_MAX + 8];

static void fz_destroy(void) {
    if (fz_name[0] != '\0') tc_shared_destroy(fz_name);
}

static void fz_die(const char *what, int rc) {
    fprintf(stderr, "fuzz_l2_segment: %s: %s\n", what, tc_err_name(rc));
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    snprintf(fz_name, sizeof fz_name, "fuzz-l2-%ld", (long)getpid());
    l2t_opts(&fz_opt, fz_name, FZ_ENTRIES, FZ_BYTES, TC_POLICY_ALLKEYS_LRU);
    fz_opt.max_key_bytes = 32;
    fz_opt.max_value_bytes = FZ_VALUE_MAX;
    fz_opt.shared_lock_timeout_ms = 1; /* a lock word written to look held costs 1 ms */
    atomic_store(&tc__l2_admin_wait_ms, 1);
    char err[512];
    tc_shared_destroy(fz_name);
    if (tc__l2_open(&fz_opt, &fz_tier, err, sizeof err) != 0 ||
        tc__l2_seg_open(fz_name, NULL, NULL, 0, &fz_seg, err, sizeof err) != 0) {
        fprintf(stderr, "fuzz_l2_segment: %s\n", err);
        abort();
    }
    atexit(fz_destroy);
    return 0;
}

/* Puts the segment back to a fresh state with a few entries: every writable byte zeroed,
 * locks and stored limits as creation writes them. */
static void fz_reset(void) {
    tc__l2_seg *s = &fz_seg;
    memset(s->base + s->g.off_shards, 0, s->size - s->g.off_shards);
    for (uint32_t i = 0; i < s->nshards; i++) {
        tc__l2_shard *sh = tc__l2_shard_at(s, i);
        pthread_mutexattr_t a;
        pthread_mutexattr_init(&a);
        pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
        pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
        pthread_mutex_init(&sh->lock, &a);
        pthread_mutexattr_destroy(&a);
        sh->max_entries = tc__l2_share_entries(s, i);
        sh->max_bytes = tc__l2_share_bytes(s, i);
    }
    /* the handle may have marked shards stalled: a new handle forgets that */
    if (fz_timed_out) {
        fz_tier->ops->close(fz_tier);
        char err[512];
        if (tc__l2_open(&fz_opt, &fz_tier, err, sizeof err) != 0) {
            fprintf(stderr, "fuzz_l2_segment: reopen: %s\n", err);
            abort();
        }
        fz_timed_out = 0;
    }
}

/* Values: the key id, then a byte pattern of the id and the length. Cheap to make and to
 * compare (memset, memcmp): instrumented byte loops would cost most of each run. */
static void fz_value(uint8_t *v, size_t len, uint32_t id) {
    memset(v, (int)((id * 131u + len) & 0xffu), len);
    memcpy(v, &id, len < 4 ? len : 4);
}
static int fz_value_ok(const uint8_t *v, size_t len, uint32_t id) {
    static uint8_t want[FZ_VALUE_MAX + 8];
    if (len > FZ_VALUE_MAX) return 0;
    fz_value(want, len, id);
    return memcmp(v, want, len) == 0;
}

static size_t fz_key(char *k, uint32_t id) { return (size_t)snprintf(k, 32, "key:%u", id % FZ_KEYS); }

static size_t fz_vsize(uint8_t a) {
    static const size_t special[] = {0, 1, 8, 100, 1000, 4000, 4095, FZ_VALUE_MAX};
    return a < 240 ? (size_t)a * 17 : special[(a - 240) % (sizeof special / sizeof special[0])];
}

static int fz_ok_code(int rc) {
    if (rc == TC_ETIMEDOUT) fz_timed_out = 1;
    return rc == 0 || rc == TC_EMISS || rc == TC_ECORRUPT || rc == TC_ETIMEDOUT || rc == TC_EFULL ||
           rc == TC_ETOOLARGE;
}

static unsigned fz_sets_left; /* a budget of sets per input, so that no input is slow */

static void fz_set(uint32_t id, size_t vlen) {
    if (fz_sets_left == 0) return;
    fz_sets_left--;
    char k[32];
    size_t kl = fz_key(k, id);
    fz_value(fz_val, vlen, id % FZ_KEYS);
    int rc = fz_tier->ops->set(fz_tier, &TC__KEY(k, kl), fz_val, vlen, TC_TTL_NONE, NULL);
    if (!fz_ok_code(rc)) fz_die("set", rc);
}

static void fz_get(uint32_t id) {
    char k[32];
    size_t kl = fz_key(k, id), len = 0;
    int rc = l2t_get(fz_tier, k, kl, fz_buf, sizeof fz_buf, &len, NULL);
    if (!fz_ok_code(rc)) fz_die("get", rc);
    if (rc == 0 && !fz_value_ok(fz_buf, len, id % FZ_KEYS)) fz_die("get returned a wrong value", rc);
}

/* A value for a field whose current value is cur, chosen by sel: boundaries of the geometry,
 * wrapping values, small moves, or raw. */
static uint64_t chosen(uint64_t sel, uint64_t cur, uint32_t shard) {
    const tc__l2_seg *s = &fz_seg;
    uint64_t hb = s->heap_bytes, se = tc__l2_share_entries(s, shard), sb = tc__l2_share_bytes(s, shard);
    const uint64_t table[] = {
        0, 1, 7, 8, 64, hb - 64, hb - 8, hb, hb + 8, hb * 2, s->index_slots, s->index_slots - 1,
        s->index_slots / 2, se, se + 1, se * 4, sb, sb + 1, sb * 4, UINT64_MAX, UINT64_MAX - 7,
        UINT64_MAX - 55, UINT64_MAX / 2, 1ull << 32, (1ull << 32) - 1, 1ull << 63, cur + 8,
        cur - 8, cur + 64, cur - 64, cur * 2, cur / 2,
    };
    uint64_t n = sizeof table / sizeof table[0];
    uint64_t pick = sel & 0xff;
    return pick < n * 6 ? table[pick % n] : sel >> 8; /* about three in four from the table */
}

static void poke_shard(uint32_t si, uint16_t field, uint64_t v) {
    tc__l2_shard *sh = tc__l2_shard_at(&fz_seg, si);
    uint64_t *fields[] = {
        &sh->used, (uint64_t *)&sh->live_bytes, (uint64_t *)&sh->entries, &sh->seq,
        &sh->max_entries, &sh->max_bytes, &sh->cursor, &sh->compacting, &sh->icur,
        &sh->intent[0].src, &sh->intent[0].dst, &sh->intent[0].len, &sh->intent[1].src,
        &sh->intent[1].dst, &sh->intent[1].len, &sh->damaged, (uint64_t *)&sh->hits,
        (uint64_t *)&sh->sets,
    };
    uint64_t *f = fields[field % (sizeof fields / sizeof fields[0])];
    *f = chosen(v, *f, si);
}

static void poke_slot(uint32_t si, uint16_t pos, uint64_t v) {
    tc__l2_slot *sl = &tc__l2_index_of(&fz_seg, si)[pos % fz_seg.index_slots];
    uint64_t *w = (v & 1) ? &sl->meta : &sl->key;
    uint64_t x = chosen(v >> 1, *w, si);
    /* half the time keep the tag (so that a lookup follows the slot) and change the offset */
    if ((v >> 9) & 1) x = (*w & 0xffffffff00000000ull) | (x & 0xffffffffu);
    *w = x;
}

static void poke_block(uint32_t si, uint16_t which, uint64_t v) {
    tc__l2_shard *sh = tc__l2_shard_at(&fz_seg, si);
    uint64_t used = sh->used, off = 0;
    if (used > fz_seg.heap_bytes) return;
    tc__l2_blk *b = NULL;
    for (uint16_t n = 0; off < used; n++) { /* the which-th parsable block */
        tc__l2_blk *c = (tc__l2_blk *)tc__l2_blk_at(&fz_seg, si, off, used);
        if (c == NULL) break;
        b = c;
        if (n == which) break;
        off += (uint64_t)c->size8 * 8u;
    }
    if (b == NULL) return;
    uint64_t x = chosen(v >> 4, 0, si);
    switch (v & 7) {
    case 0: b->size8 = (uint32_t)x; break;
    case 1: b->klen = (uint32_t)x; break;
    case 2: b->vlen = (uint32_t)x; break;
    case 3: b->kind = (v >> 4) & 1 ? TC__L2_KIND_HOLE : (uint32_t)x; break;
    case 4: b->state = (v >> 4) & 1 ? (b->state == TC__L2_LIVE ? TC__L2_DEAD : TC__L2_LIVE) : (uint32_t)x; break;
    case 5: b->seq = x; break;
    case 6: b->expire_ms = x; break;
    default: b->hash = x; break;
    }
    if ((v >> 3) & 1) b->hcheck = tc__l2_hcheck(b);
}

static void poke_lock(uint32_t si, uint16_t which, uint64_t v) {
#ifdef __GLIBC__
    pthread_mutex_t *m = &tc__l2_shard_at(&fz_seg, si)->lock;
    int x = (int)(v >> 8);
    switch (which % 3) {
    case 0: m->__data.__lock = (v & 1) ? (int)0x40000000 | x : x; break; /* owner died, or a tid */
    case 1: m->__data.__kind = x; break;
    default: m->__data.__owner = x; break;
    }
#else
    (void)si, (void)which, (void)v;
#endif
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_reset();
    fz_sets_left = 4000;
    for (uint32_t id = 0; id < 24; id++) fz_set(id, fz_vsize((uint8_t)(id * 37)));
    for (size_t at = 0; at + 12 <= size; at += 12) {
        uint8_t op = data[at], a = data[at + 1];
        uint16_t b;
        uint64_t v;
        memcpy(&b, data + at + 2, 2);
        memcpy(&v, data + at + 4, 8);
        uint32_t si = a % fz_seg.nshards;
        switch (op % 12) {
        case 0: poke_shard(si, b, v); break;
        case 1: poke_slot(si, b, v); break;
        case 2: poke_block(si, b, v); break;
        case 3: poke_lock(si, b, v); break;
        case 4: fz_get(b); break;
        case 5: fz_set(b, fz_vsize(a)); break;
        case 6:
            for (uint32_t n = 0; n < (b & 4095u); n++) fz_set((uint32_t)v + n, fz_vsize(a));
            break;
        case 7: {
            char k[32];
            size_t kl = fz_key(k, b);
            int rc = fz_tier->ops->del(fz_tier, &TC__KEY(k, kl));
            if (!fz_ok_code(rc)) fz_die("del", rc);
            break;
        }
        case 8: {
            char p[8];
            int pl = snprintf(p, sizeof p, "key:%u", a % 10u);
            int rc = fz_tier->ops->clear_prefix(fz_tier, p, (size_t)pl);
            if (!fz_ok_code(rc)) fz_die("clear_prefix", rc);
            break;
        }
        case 9: {
            int rc = fz_tier->ops->clear(fz_tier);
            if (!fz_ok_code(rc)) fz_die("clear", rc);
            break;
        }
        case 10: {
            static char rep[1 << 16];
            int rc = tc_shared_check(fz_name, rep, sizeof rep);
            if (rc != 0 && rc != TC_ECORRUPT && rc != TC_ETIMEDOUT) fz_die("check", rc);
            if (rc == TC_ETIMEDOUT) fz_timed_out = 1;
            break;
        }
        default:
            if (tc__l2_lock(&fz_seg, si, 0, NULL) == 0) {
                tc__l2_repair_locked(&fz_seg, si);
                tc__l2_unlock(&fz_seg, si);
            }
            break;
        }
    }
    /* Whatever happened, a rebuilt shard is consistent and within its share of the limits. */
    for (uint32_t si = 0; si < fz_seg.nshards; si++) {
        if (tc__l2_lock(&fz_seg, si, 0, NULL) != 0) { /* a lock word written to look held or broken */
            fz_timed_out = 1;
            continue;
        }
        tc__l2_repair_locked(&fz_seg, si);
        static char rep[1 << 16];
        rep[0] = '\0';
        int problems = tc__l2_check_shard_locked(&fz_seg, si, rep, sizeof rep);
        tc__l2_shard *sh = tc__l2_shard_at(&fz_seg, si);
        if (problems != 0 || TC__L2_LD(sh->entries) > tc__l2_share_entries(&fz_seg, si) ||
            TC__L2_LD(sh->live_bytes) > tc__l2_share_bytes(&fz_seg, si)) {
            fprintf(stderr, "shard %u after repair:\n%s", si, rep);
            abort();
        }
        tc__l2_unlock(&fz_seg, si);
    }
    return 0;
}
