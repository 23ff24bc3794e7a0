/*
 * test_l2_corrupt.c -- damaged segments are detected, never followed into a crash: scribbles
 * over the header, over an entry's value and header, over an index offset, over the heap
 * cursor, and random scribbles over the whole index and heap. Every read returns either the
 * right value, a miss or TC_ECORRUPT; `check` reports the damage; after the damaged shards
 * are rebuilt, `check` finds the segment consistent again.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include "l2_util.h"
#include "util.h"

#define NKEYS 300

typedef struct fixture {
    char name[64];
    tc__tier *t;
    tc__l2_seg seg; /* a second mapping, to scribble on */
} fixture;

static void fill(fixture *f, const char *tag) {
    l2t_name(f->name, sizeof f->name, tag);
    tc__opts o;
    l2t_opts(&o, f->name, 2000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    char err[512];
    assert_int_equal(tc__l2_open(&o, &f->t, err, sizeof err), 0);
    uint8_t v[200];
    char k[32];
    for (uint64_t id = 0; id < NKEYS; id++) {
        l2t_value(v, 40 + id % 150, id, id * 7);
        assert_int_equal(f->t->ops->set(f->t, &TC__KEY(k, l2t_key(k, sizeof k, id)), v, 40 + id % 150, TC_TTL_NONE, NULL), 0);
    }
    assert_int_equal(tc__l2_seg_open(f->name, NULL, NULL, 0, &f->seg, err, sizeof err), 0);
}

static void done(fixture *f) {
    tc__l2_seg_close(&f->seg);
    f->t->ops->close(f->t);
    assert_int_equal(tc_shared_destroy(f->name), 0);
}

/* Reads every key: each is intact, missing or TC_ECORRUPT. Returns how many were corrupt. */
static int read_all(fixture *f, int *hits) {
    char k[32];
    uint8_t buf[256];
    size_t len;
    int bad = 0;
    *hits = 0;
    for (uint64_t id = 0; id < NKEYS; id++) {
        int rc = l2t_get(f->t, k, l2t_key(k, sizeof k, id), buf, sizeof buf, &len, NULL);
        if (rc == 0) {
            assert_true(l2t_value_ok(buf, len, id));
            (*hits)++;
        } else if (rc == TC_ECORRUPT) {
            bad++;
        } else {
            assert_int_equal(rc, TC_EMISS);
        }
    }
    return bad;
}

/* The block of key id, found through the index (under the shard lock). */
static tc__l2_blk *blk_of(fixture *f, uint64_t id, uint32_t *shard, uint64_t *slotpos) {
    char k[32];
    size_t kl = l2t_key(k, sizeof k, id);
    uint64_t h = tc__hash(k, kl);
    uint32_t si = tc__l2_shard_of(&f->seg, h);
    const tc__l2_blk *b = NULL;
    assert_int_equal(tc__l2_lock(&f->seg, si, 1000000000ull, NULL), 0);
    int64_t pos = tc__l2_index_find_locked(&f->seg, si, h, k, kl, &b);
    tc__l2_unlock(&f->seg, si);
    assert_true(pos >= 0);
    if (shard) *shard = si;
    if (slotpos) *slotpos = (uint64_t)pos;
    return (tc__l2_blk *)b;
}

static void check_is(const char *name, int code, const char *needle) {
    char rep[4096];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc != code || (needle && strstr(rep, needle) == NULL))
        fprintf(stderr, "check: %s: %s", tc_err_name(rc), rep);
    assert_int_equal(rc, code);
    if (needle) assert_non_null(strstr(rep, needle));
}

static void test_header_scribble(void **state) {
    (void)state;
    fixture f;
    fill(&f, "hdr");
    tc__opts o;
    l2t_opts(&o, f.name, 2000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t2 = NULL;
    char err[512];
    /* A geometry field: the header checksum catches it. */
    uint8_t *p = f.seg.base + offsetof(tc__l2_hdr, heap_bytes);
    p[1] ^= 0x40;
    assert_int_equal(tc__l2_open(&o, &t2, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "header checksum"));
    assert_non_null(strstr(err, "tiercache shared destroy"));
    check_is(f.name, TC_ECORRUPT, "header checksum");
    tc_tier_stats st = TC_TIER_STATS_INIT;
    assert_int_equal(tc_shared_stats(f.name, &st, err, sizeof err), TC_ECORRUPT);
    p[1] ^= 0x40;
    /* The magic number. */
    f.seg.base[0] ^= 0xff;
    assert_int_equal(tc__l2_open(&o, &t2, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "bad magic"));
    f.seg.base[0] ^= 0xff;
    check_is(f.name, 0, "consistent");
    done(&f);
}

static void test_truncated_file(void **state) {
    (void)state;
    fixture f;
    fill(&f, "trunc");
    char path[256], err[512];
    snprintf(path, sizeof path, "/dev/shm/tiercache.%s", f.name);
    tc__l2_seg_close(&f.seg);
    assert_int_equal(truncate(path, 8192), 0);
    tc__opts o;
    l2t_opts(&o, f.name, 2000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t2 = NULL;
    assert_int_equal(tc__l2_open(&o, &t2, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "8192 bytes on disk"));
    assert_int_equal(truncate(path, 100), 0);
    assert_int_equal(tc__l2_open(&o, &t2, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "too small"));
    /* Not a segment at all. */
    int fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    char junk[8192];
    memset(junk, 'j', sizeof junk);
    assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
    close(fd);
    assert_int_equal(tc__l2_open(&o, &t2, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "bad magic"));
    f.t->ops->close(f.t);
    assert_int_equal(tc_shared_destroy(f.name), 0);
}

/* Issue 8, item 7: a segment truncated while processes are attached. Pages past a file's end
 * raise SIGBUS, so an attached process must stop touching the mapping: within
 * TC__L2_SIZE_CHECK_MS it notices the new size and fails the tier (TC_EIO, logged once), and
 * it keeps running. Run in a child, whose death by SIGBUS would fail the test. */
static char trunc_log[1024];
static void trunc_collect(void *ud, tc_log_level level, const char *msg) {
    (void)ud;
    (void)level;
    if (trunc_log[0] == '\0') snprintf(trunc_log, sizeof trunc_log, "%s", msg);
}

static void test_truncated_segment_fails_the_tier_not_the_process(void **state) {
    (void)state;
    char name[64], path[256];
    l2t_name(name, sizeof name, "shrunk");
    snprintf(path, sizeof path, "/dev/shm/tiercache.%s", name);
    pid_t p = fork();
    assert_true(p >= 0);
    if (p == 0) {
        signal(SIGBUS, SIG_DFL); /* cmocka's handler would turn the death into a report */
        tc__opts o;
        l2t_opts(&o, name, 2000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
        o.log_fn = trunc_collect;
        tc__tier *t = NULL;
        char err[512], k[32];
        uint8_t v[200];
        if (tc__l2_open(&o, &t, err, sizeof err) != 0) _exit(1);
        for (uint64_t id = 0; id < NKEYS; id++) {
            l2t_value(v, 100, id, id);
            if (t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), v, 100, TC_TTL_NONE, NULL) != 0) _exit(2);
        }
        if (truncate(path, 8192) != 0) _exit(3); /* as `truncate -s 8k` by another process would */
        struct timespec ts = {0, (TC__L2_SIZE_CHECK_MS + 20) * 1000000L};
        nanosleep(&ts, NULL);
        size_t len;
        for (uint64_t id = 0; id < NKEYS; id++) {
            size_t kl = l2t_key(k, sizeof k, id);
            if (l2t_get(t, k, kl, v, sizeof v, &len, NULL) != TC_EIO) _exit(4);
            if (t->ops->set(t, &TC__KEY(k, kl), v, 100, TC_TTL_NONE, NULL) != TC_EIO) _exit(5);
            if (t->ops->del(t, &TC__KEY(k, kl)) != TC_EIO) _exit(6);
        }
        if (t->ops->clear(t) != TC_EIO) _exit(7);
        tc_tier_stats st;
        memset(&st, 0, sizeof st);
        t->ops->stats(t, &st);
        if (st.available) _exit(8);
        if (strstr(trunc_log, "was truncated or extended to 8192 bytes") == NULL) _exit(9);
        t->ops->close(t);
        _exit(0);
    }
    int st = l2t_wait(p);
    if (st != 0) fail_msg("the attached process %s %d", st > 128 ? "died of signal" : "failed with", st > 128 ? st - 128 : st);
    /* the truncated file is refused by a new open, and removed by destroy */
    char rep[512];
    assert_int_equal(tc_shared_check(name, rep, sizeof rep), TC_ECORRUPT);
    assert_non_null(strstr(rep, "8192 bytes on disk"));
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_value_scribble(void **state) {
    (void)state;
    fixture f;
    fill(&f, "val");
    tc__l2_blk *b = blk_of(&f, 42, NULL, NULL);
    ((uint8_t *)(b + 1))[b->klen + 20] ^= 0x01;
    check_is(f.name, TC_ECORRUPT, "checksum");
    char k[32];
    uint8_t buf[256];
    size_t len;
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 42), buf, sizeof buf, &len, NULL), TC_ECORRUPT);
    /* The shard was rebuilt without the damaged entry; everything else is intact. */
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 42), buf, sizeof buf, &len, NULL), TC_EMISS);
    int hits;
    assert_int_equal(read_all(&f, &hits), 0);
    assert_int_equal(hits, NKEYS - 1);
    check_is(f.name, 0, "consistent");
    done(&f);
}

static void test_block_header_scribble(void **state) {
    (void)state;
    fixture f;
    fill(&f, "bhdr");
    tc__l2_blk *b = blk_of(&f, 7, NULL, NULL);
    b->size8 += 3; /* breaks the walk after it as well */
    check_is(f.name, TC_ECORRUPT, "unreadable");
    char k[32];
    uint8_t buf[256];
    size_t len;
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 7), buf, sizeof buf, &len, NULL), TC_ECORRUPT);
    int hits;
    assert_int_equal(read_all(&f, &hits), 0);
    assert_true(hits < NKEYS); /* the blocks after the broken one in its shard are lost */
    check_is(f.name, 0, "consistent");
    done(&f);
}

static void test_index_offset_scribble(void **state) {
    (void)state;
    fixture f;
    fill(&f, "idx");
    uint32_t si;
    uint64_t pos;
    blk_of(&f, 99, &si, &pos);
    tc__l2_slot *idx = tc__l2_index_of(&f.seg, si);
    idx[pos].key += 1; /* now points 8 bytes into the block */
    check_is(f.name, TC_ECORRUPT, "not a live entry");
    char k[32];
    uint8_t buf[256];
    size_t len;
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 99), buf, sizeof buf, &len, NULL), TC_ECORRUPT);
    /* Repair re-indexes the block from the heap: the entry itself was fine. */
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 99), buf, sizeof buf, &len, NULL), 0);
    assert_true(l2t_value_ok(buf, len, 99));
    /* An offset far outside the heap. */
    blk_of(&f, 100, &si, &pos);
    idx = tc__l2_index_of(&f.seg, si);
    idx[pos].key = (idx[pos].key & 0xffffffff00000000ull) | 0xfffffff0u;
    check_is(f.name, TC_ECORRUPT, "not a live entry");
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 100), buf, sizeof buf, &len, NULL), TC_ECORRUPT);
    int hits;
    assert_int_equal(read_all(&f, &hits), 0);
    assert_int_equal(hits, NKEYS);
    check_is(f.name, 0, "consistent");
    done(&f);
}

static void test_cursor_scribble(void **state) {
    (void)state;
    fixture f;
    fill(&f, "cur");
    uint32_t si;
    blk_of(&f, 5, &si, NULL);
    tc__l2_shard *sh = tc__l2_shard_at(&f.seg, si);
    uint64_t keep = sh->used;
    sh->used = f.seg.heap_bytes + 4096;
    check_is(f.name, TC_ECORRUPT, "outside the heap");
    char k[32];
    uint8_t buf[256];
    size_t len;
    assert_int_equal(l2t_get(f.t, k, l2t_key(k, sizeof k, 5), buf, sizeof buf, &len, NULL), TC_ECORRUPT);
    assert_true(sh->used <= f.seg.heap_bytes);
    (void)keep;
    int hits;
    assert_int_equal(read_all(&f, &hits), 0);
    check_is(f.name, 0, "consistent");
    done(&f);
}

/* Random scribbles anywhere in the index and heap: reads never crash and never return a
 * wrong value; once every shard is rebuilt, the segment checks consistent. */
static void test_random_scribbles(void **state) {
    (void)state;
    for (int round = 0; round < 20; round++) {
        fixture f;
        fill(&f, "rand");
        uint64_t lo = f.seg.hdr->off_index, hi = f.seg.size;
        uint64_t seed = (uint64_t)round * 7919 + 1;
        for (int n = 0; n < 40; n++) {
            seed = l2t_mix(seed);
            uint64_t at = lo + seed % (hi - lo);
            f.seg.base[at] ^= (uint8_t)(1u << (seed >> 61));
        }
        int hits;
        read_all(&f, &hits);
        for (int i = 0; i < 100; i++) { /* writes into a damaged segment are safe too */
            uint8_t v[64];
            char k[32];
            l2t_value(v, sizeof v, 1000 + (uint64_t)i, 1);
            int rc = f.t->ops->set(f.t, &TC__KEY(k, l2t_key(k, sizeof k, 1000 + (uint64_t)i)), v, sizeof v, TC_TTL_NONE, NULL);
            assert_true(rc == 0 || rc == TC_ECORRUPT);
        }
        read_all(&f, &hits);
        for (uint32_t si = 0; si < f.seg.nshards; si++) {
            assert_int_equal(tc__l2_lock(&f.seg, si, 1000000000ull, NULL), 0);
            tc__l2_repair_locked(&f.seg, si);
            tc__l2_unlock(&f.seg, si);
        }
        check_is(f.name, 0, "consistent");
        assert_int_equal(read_all(&f, &hits), 0);
        done(&f);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_scribble),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_truncated_segment_fails_the_tier_not_the_process),
        cmocka_unit_test(test_value_scribble),
        cmocka_unit_test(test_block_header_scribble),
        cmocka_unit_test(test_index_offset_scribble),
        cmocka_unit_test(test_cursor_scribble),
        cmocka_unit_test(test_random_scribbles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
