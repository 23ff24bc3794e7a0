/*
 * test_l2_limits.c -- the writable part of a segment cannot steer a process out of bounds
 * (issue 8, item 4). Another process can write every shard header, index slot and block; what
 * it writes there is checked against the geometry the checksummed segment header gives before
 * it is used. Each case tampers with one thing between operations, then runs operations in a
 * child process under an alarm: the red-team's findings were a spin for ever (a changed
 * max_entries) and a write past the heap (a changed max_bytes), so "the child exits normally
 * within the alarm" is what each case asserts, plus what check and repair say.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "l2_util.h"

typedef struct fixture {
    char name[64];
    tc__opts o;
    tc__l2_seg seg; /* a mapping of our own, to tamper with */
} fixture;

/* A segment of one shard (16 entries, index of 32 slots, all used) or, with many = 1, several
 * shards (1000 entries). nkeys: entries to put in, or 0 for those defaults. */
static void make_n(fixture *f, const char *tag, int many, uint64_t nkeys) {
    l2t_name(f->name, sizeof f->name, tag);
    if (many)
        l2t_opts(&f->o, f->name, 4096, 4 << 20, TC_POLICY_ALLKEYS_LRU);
    else
        l2t_opts(&f->o, f->name, 16, 64 << 10, TC_POLICY_ALLKEYS_LRU);
    f->o.max_value_bytes = 8192;
    tc__tier *t = NULL;
    char err[512];
    assert_int_equal(tc__l2_open(&f->o, &t, err, sizeof err), 0);
    char k[32];
    uint8_t v[256];
    if (nkeys == 0) nkeys = many ? 1000u : 16u;
    for (uint64_t id = 0; id < nkeys; id++) {
        l2t_value(v, 100, id, id);
        assert_int_equal(t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), v, 100, TC_TTL_NONE, NULL), 0);
    }
    t->ops->close(t);
    assert_int_equal(tc__l2_seg_open(f->name, NULL, NULL, 0, &f->seg, err, sizeof err), 0);
    if (!many) assert_int_equal(f->seg.nshards, 1);
}

static void make(fixture *f, const char *tag, int many) { make_n(f, tag, many, 0); }

static void done(fixture *f) {
    tc__l2_seg_close(&f->seg);
    assert_int_equal(tc_shared_destroy(f->name), 0);
}

typedef void (*work_fn)(fixture *f);

/* Runs work in a child with a 20 s alarm. The child exits 0 when the work returned; a spin
 * is ended by the alarm (SIGALRM), a wild write by SIGSEGV: both fail the test. */
static void in_child(fixture *f, work_fn work) {
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        /* cmocka's handlers would catch a crash and run the next tests in this child */
        int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) signal(sigs[i], SIG_DFL);
        alarm(20);
        work(f);
        _exit(0);
    }
    int st = l2t_wait(p);
    if (st != 0) fail_msg("the child %s (status %d)", st > 128 ? "was killed by a signal" : "failed", st);
}

/* Sets of new keys, more than the shard holds, of the given value size; every result must be
 * a result (0, or a tier error), and the tier's limits must hold afterwards. */
static void set_many(fixture *f, size_t vlen) {
    tc__tier *t = NULL;
    char err[512];
    if (tc__l2_open(&f->o, &t, err, sizeof err) != 0) _exit(3);
    char k[32];
    static uint8_t v[8192];
    for (uint64_t id = 100; id < 200; id++) {
        l2t_value(v, vlen, id, id);
        int rc = t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), v, vlen, TC_TTL_NONE, NULL);
        if (rc != 0 && rc != TC_ECORRUPT) {
            fprintf(stderr, "set of %zu bytes: %s\n", vlen, tc_err_name(rc));
            _exit(4);
        }
    }
    tc_tier_stats st;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    if (st.entries > f->o.shared_max_entries || st.bytes > f->o.shared_max_bytes) _exit(5);
    t->ops->close(t);
}
static void set_many_small(fixture *f) { set_many(f, 100); }
static void set_many_large(fixture *f) { set_many(f, 8000); }

static void check_is(const char *name, int code, const char *needle) {
    char rep[4096];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc != code || (needle && strstr(rep, needle) == NULL))
        fail_msg("check: %s: %s", tc_err_name(rc), rep);
}

/* The red-team's first case: max_entries raised in the shard header. Sets kept adding
 * entries past the index's capacity, and the 33rd spun for ever in the index insert holding
 * the lock. The limit now comes from the segment header; the shard header's copy is restored
 * by the next locker. */
static void test_tampered_max_entries_cannot_make_set_spin(void **state) {
    (void)state;
    fixture f;
    make(&f, "maxent", 0);
    tc__l2_shard_at(&f.seg, 0)->max_entries = 1000000;
    in_child(&f, set_many_small);
    assert_int_equal(tc__l2_shard_at(&f.seg, 0)->max_entries, 16);
    check_is(f.name, 0, "consistent (1 shards, 16 entries");
    done(&f);
}

/* The red-team's second case: max_bytes raised in the shard header. Sets stopped evicting by
 * bytes, compaction could not make room, and the block was written past the heap (SIGSEGV
 * at the end of the mapping). */
static void test_tampered_max_bytes_cannot_write_past_the_heap(void **state) {
    (void)state;
    fixture f;
    make(&f, "maxbytes", 0);
    tc__l2_shard_at(&f.seg, 0)->max_bytes = UINT64_MAX / 2;
    in_child(&f, set_many_large);
    assert_int_equal(tc__l2_shard_at(&f.seg, 0)->max_bytes, 64 << 10);
    check_is(f.name, 0, "consistent");
    done(&f);
}

/* A byte counter set below what the heap holds: the eviction loop believes there is room,
 * compaction cannot make it; the write site itself refuses to go past the heap. */
static void test_tampered_byte_counter_cannot_write_past_the_heap(void **state) {
    (void)state;
    fixture f;
    make(&f, "live", 0);
    tc__l2_shard *sh = tc__l2_shard_at(&f.seg, 0);
    in_child(&f, set_many_large); /* fill the heap with large entries first */
    TC__L2_ST(sh->live_bytes, 64);
    TC__L2_ST(sh->entries, 1);
    in_child(&f, set_many_large);
    check_is(f.name, 0, "consistent");
    done(&f);
}

/* Counters and cursors out of range: each is bounded (the shard is rebuilt) before use. */
static void test_tampered_counters_and_cursor_are_bounded(void **state) {
    (void)state;
    static const struct {
        size_t off;
        uint64_t value;
    } cases[] = {
        {offsetof(tc__l2_shard, used), UINT64_MAX - 7},
        {offsetof(tc__l2_shard, used), 12345},          /* unaligned */
        {offsetof(tc__l2_shard, used), 0},              /* blocks beyond it are not walked */
        {offsetof(tc__l2_shard, entries), UINT64_MAX},
        {offsetof(tc__l2_shard, entries), 0},
        {offsetof(tc__l2_shard, live_bytes), UINT64_MAX},
        {offsetof(tc__l2_shard, cursor), UINT64_MAX},
        {offsetof(tc__l2_shard, seq), UINT64_MAX},
        {offsetof(tc__l2_shard, compacting), 7},
        {offsetof(tc__l2_shard, icur), UINT64_MAX},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        fixture f;
        make(&f, "counters", 0);
        memcpy((uint8_t *)tc__l2_shard_at(&f.seg, 0) + cases[c].off, &cases[c].value, 8);
        in_child(&f, set_many_small);
        in_child(&f, set_many_large);
        check_is(f.name, 0, "consistent");
        done(&f);
    }
}

/* A compaction intent whose destination lies past its source (sums that wrap): repair must
 * not write its hole outside the shard's heap -- here, into the end of shard 0's heap or the
 * start of shard 2's. */
static void test_tampered_compaction_intent_stays_in_the_heap(void **state) {
    (void)state;
    static const tc__l2_intent bad[] = {
        {64, UINT64_MAX - 55, 64},      /* dst + 64 wraps to 8: the hole would start 56 bytes
                                           before the heap */
        {128, 64, UINT64_MAX - 63},     /* src + len wraps */
        {UINT64_MAX - 7, 0, 16},        /* src past everything */
        {4096, 4000, 64},               /* dst too close to src */
    };
    for (size_t c = 0; c < sizeof bad / sizeof bad[0]; c++) {
        fixture f;
        make(&f, "intent", 1);
        tc__l2_shard *sh = tc__l2_shard_at(&f.seg, 1);
        uint8_t *h1 = tc__l2_heap_of(&f.seg, 1), *h2 = tc__l2_heap_of(&f.seg, 2);
        static uint8_t before[2][4096];
        memcpy(before[0], h1 - 4096, 4096);
        memcpy(before[1], h2, 4096);
        sh->intent[0] = bad[c];
        sh->intent[1] = bad[c];
        sh->compacting = 1;
        sh->damaged = 1;
        in_child(&f, set_many_small);
        assert_memory_equal(before[0], h1 - 4096, 4096);
        assert_memory_equal(before[1], h2, 4096);
        check_is(f.name, 0, "consistent");
        done(&f);
    }
}

/* Every index slot filled with something that is not an entry and not empty: a lookup must
 * end, and an insert must not spin looking for a free slot. */
static void test_full_index_cannot_make_insert_spin(void **state) {
    (void)state;
    fixture f;
    make_n(&f, "fullidx", 0, 4); /* room for more entries: a set inserts without evicting */
    tc__l2_slot *idx = tc__l2_index_of(&f.seg, 0);
    for (uint64_t i = 0; i < f.seg.index_slots; i++) idx[i].key = (0x7777ull << 32) | (i + 1);
    in_child(&f, set_many_small);
    check_is(f.name, 0, "consistent");
    done(&f);
}

/* check reports limits that differ from the segment header's, and repair restores them
 * without losing an entry. */
static void test_check_reports_and_repair_restores_tampered_limits(void **state) {
    (void)state;
    fixture f;
    make(&f, "report", 1);
    assert_true(f.seg.nshards > 1);
    tc__l2_shard *sh = tc__l2_shard_at(&f.seg, 1);
    uint64_t se = sh->max_entries, sb = sh->max_bytes;
    sh->max_entries = 1000000;
    sh->max_bytes = 7;
    char rep[4096], want[256];
    assert_int_equal(tc_shared_check(f.name, rep, sizeof rep), TC_ECORRUPT);
    snprintf(want, sizeof want, "shard 1: entry limit 1000000 in the shard header, the segment header gives %llu",
             (unsigned long long)se);
    if (strstr(rep, want) == NULL) fail_msg("report lacks \"%s\":\n%s", want, rep);
    snprintf(want, sizeof want, "shard 1: byte limit 7 in the shard header, the segment header gives %llu",
             (unsigned long long)sb);
    if (strstr(rep, want) == NULL) fail_msg("report lacks \"%s\":\n%s", want, rep);
    /* check only reports: the values are still there */
    assert_int_equal(sh->max_entries, 1000000);
    assert_int_equal(tc_shared_repair(f.name, rep, sizeof rep), 0);
    assert_non_null(strstr(rep, "entry limit 1000000"));
    assert_non_null(strstr(rep, "consistent (")); /* the summary after the repair */
    assert_non_null(strstr(rep, "1 shard rebuilt"));
    assert_int_equal(sh->max_entries, se);
    assert_int_equal(sh->max_bytes, sb);
    check_is(f.name, 0, "1000 entries");
    done(&f);
}

/* Repair itself bounds the shard: more LIVE, verified entries in a heap than the shard's share
 * (a writer that ignored the limits) are dropped beyond the share, and the index stays at most
 * half full. */
static void test_repair_drops_entries_beyond_the_limits(void **state) {
    (void)state;
    fixture f;
    make(&f, "overfull", 0);
    /* Forge 40 more valid entries past `used`, as a writer ignoring the limits would. */
    tc__l2_shard *sh = tc__l2_shard_at(&f.seg, 0);
    uint8_t *heap = tc__l2_heap_of(&f.seg, 0);
    uint64_t off = sh->used;
    for (uint64_t id = 500; id < 540; id++) {
        char k[32];
        uint8_t v[100];
        size_t kl = l2t_key(k, sizeof k, id);
        l2t_value(v, sizeof v, id, id);
        tc__l2_blk *b = (tc__l2_blk *)(heap + off);
        uint64_t need = tc__l2_blk_size(kl, sizeof v);
        memset(b, 0, sizeof *b);
        b->size8 = (uint32_t)(need / 8);
        b->klen = (uint32_t)kl;
        b->vlen = sizeof v;
        b->kind = TC__L2_KIND_ENTRY;
        b->hash = tc__hash(k, kl);
        b->seq = 1000 + id;
        b->csum = XXH3_64bits_withSeed(v, sizeof v, b->hash);
        b->hcheck = tc__l2_hcheck(b);
        b->state = TC__L2_LIVE;
        memcpy(b + 1, k, kl);
        memcpy((uint8_t *)(b + 1) + kl, v, sizeof v);
        off += need;
        if (off + need > f.seg.heap_bytes) break;
    }
    sh->used = off;
    sh->damaged = 1;
    char rep[4096];
    assert_int_equal(tc_shared_repair(f.name, rep, sizeof rep), 0);
    assert_true(TC__L2_LD(sh->entries) <= 16);
    check_is(f.name, 0, "consistent");
    done(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tampered_max_entries_cannot_make_set_spin),
        cmocka_unit_test(test_tampered_max_bytes_cannot_write_past_the_heap),
        cmocka_unit_test(test_tampered_byte_counter_cannot_write_past_the_heap),
        cmocka_unit_test(test_tampered_counters_and_cursor_are_bounded),
        cmocka_unit_test(test_tampered_compaction_intent_stays_in_the_heap),
        cmocka_unit_test(test_full_index_cannot_make_insert_spin),
        cmocka_unit_test(test_check_reports_and_repair_restores_tampered_limits),
        cmocka_unit_test(test_repair_drops_entries_beyond_the_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
