/*
 * test_coherence.c -- the host's coherence table (src/coherence.c): stamps move with writes,
 * epochs and prefix clears and with nothing else; the prefix ring's slow path and its limits;
 * the listener lease and its tickets (a stopped owner that resumes cannot end a gap); the
 * shared table across processes; the trust and damage checks of the shared file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "coherence.h"
#include "util.h"

static tc__coh *private_table(void) {
    tc__coh *c = NULL;
    assert_int_equal(tc__coh_open_private(&c), 0);
    return c;
}

static void test_stamps_move_with_their_stripe_only(void **state) {
    (void)state;
    tc__coh *c = private_table();
    uint64_t a = tc__hash("a", 1), b = tc__hash("b", 1);
    assert_true(tc__coh_words(c, a) != tc__coh_words(c, b)); /* (for these two keys) */
    tc__stamp sa = tc__coh_stamp(c, a), sb = tc__coh_stamp(c, b);
    assert_true(tc__coh_valid(c, a, TC__COH_NOW_K, (uint32_t)sa.k, (uint32_t)sa.p, "a", 1, NULL));
    tc__stamp w = tc__coh_bump(c, a);
    assert_int_equal(w.k, sa.k + 1);
    assert_false(tc__coh_valid(c, a, TC__COH_NOW_K, (uint32_t)sa.k, (uint32_t)sa.p, "a", 1, NULL));
    assert_true(tc__coh_valid(c, a, TC__COH_NOW_K, (uint32_t)w.k, (uint32_t)w.p, "a", 1, NULL)); /* what the write installs */
    assert_true(tc__coh_valid(c, b, TC__COH_NOW_K, (uint32_t)sb.k, (uint32_t)sb.p, "b", 1, NULL));
    assert_false(tc__coh_unchanged(c, a, &sa));
    assert_true(tc__coh_unchanged(c, b, &sb));
    /* the epoch moves every stamp */
    tc__coh_epoch_move(c);
    assert_false(tc__coh_valid(c, b, TC__COH_NOW_K, (uint32_t)sb.k, (uint32_t)sb.p, "b", 1, NULL));
    assert_false(tc__coh_unchanged(c, b, &sb));
    tc__coh_close(c);
}

/* A write of this host (mark) makes process-local copies of its stripe stale, not the shared
 * tier's blocks of other keys (the write replaced its own block in place); an invalidation
 * (bump) makes both stale. */
static void test_mark_and_bump(void **state) {
    (void)state;
    tc__coh *c = private_table();
    uint64_t h = tc__hash("x", 1);
    tc__stamp s0 = tc__coh_stamp(c, h);
    tc__stamp m = tc__coh_mark(c, h);
    assert_int_equal(m.k, s0.k + 1);
    assert_int_equal(m.s, s0.s);
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)s0.k, (uint32_t)s0.p, "x", 1, NULL));
    assert_true(tc__coh_valid(c, h, TC__COH_NOW_S, (uint32_t)s0.s, (uint32_t)s0.p, "x", 1, NULL));
    assert_false(tc__coh_unchanged(c, h, &s0)); /* a fill across a write does not install */
    tc__stamp b = tc__coh_bump(c, h);
    assert_int_equal(b.k, m.k + 1);
    assert_int_equal(b.s, s0.s + 1);
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_S, (uint32_t)s0.s, (uint32_t)s0.p, "x", 1, NULL));
    assert_true(tc__coh_valid(c, h, TC__COH_NOW_S, (uint32_t)b.s, (uint32_t)b.p, "x", 1, NULL));
    tc__coh_close(c);
}

static void test_prefix_clear_invalidates_matching_keys_only(void **state) {
    (void)state;
    tc__coh *c = private_table();
    uint64_t h1 = tc__hash("user:1", 6), h2 = tc__hash("item:1", 6);
    tc__stamp s1 = tc__coh_stamp(c, h1), s2 = tc__coh_stamp(c, h2);
    assert_int_equal(tc__coh_prefix_clear(c, "user:", 5), 0);
    assert_false(tc__coh_valid(c, h1, TC__COH_NOW_K, (uint32_t)s1.k, (uint32_t)s1.p, "user:1", 6, NULL));
    uint32_t ps = 0;
    assert_true(tc__coh_valid(c, h2, TC__COH_NOW_K, (uint32_t)s2.k, (uint32_t)s2.p, "item:1", 6, &ps));
    assert_int_equal(ps, (uint32_t)(s2.p + 1)); /* re-stamp: the check is not repeated */
    assert_false(tc__coh_unchanged(c, h2, &s2));   /* a fill across the clear does not install */
    /* the empty prefix covers everything; a prefix longer than the ring holds moves the epoch */
    tc__stamp s3 = tc__coh_stamp(c, h2);
    assert_int_equal(tc__coh_prefix_clear(c, "", 0), 0);
    assert_false(tc__coh_valid(c, h2, TC__COH_NOW_K, (uint32_t)s3.k, (uint32_t)s3.p, "item:1", 6, NULL));
    char longp[TC__COH_PREFIX_MAX + 1];
    memset(longp, 'x', sizeof longp);
    tc__stamp s4 = tc__coh_stamp(c, h2);
    assert_int_equal(tc__coh_prefix_clear(c, longp, sizeof longp), 0);
    assert_false(tc__coh_valid(c, h2, TC__COH_NOW_K, (uint32_t)s4.k, (uint32_t)s4.p, "item:1", 6, NULL));
    tc__coh_close(c);
}

/* An entry stamped more prefix clears ago than the ring keeps is invalid, even when none of
 * them matched it: the records that would say so are gone. */
static void test_prefix_ring_overflow_is_a_miss(void **state) {
    (void)state;
    tc__coh *c = private_table();
    uint64_t h = tc__hash("keep", 4);
    tc__stamp s = tc__coh_stamp(c, h);
    for (int i = 0; i < TC__COH_RING; i++) assert_int_equal(tc__coh_prefix_clear(c, "zz", 2), 0);
    assert_true(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)s.k, (uint32_t)s.p, "keep", 4, NULL));
    assert_int_equal(tc__coh_prefix_clear(c, "zz", 2), 0);
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)s.k, (uint32_t)s.p, "keep", 4, NULL));
    tc__coh_close(c);
}

/* The lease: one owner at a time; a new owner sets GAP; only the owner of the current ticket
 * ends it; a stopped owner whose lease was taken cannot renew or recover. */
static void test_lease_tickets(void **state) {
    (void)state;
    tc__coh *c = private_table();
    uint64_t h = tc__hash("k", 1);
    tc__stamp before = tc__coh_stamp(c, h);
    uint32_t t1 = 0, t2 = 0;
    assert_true(tc__coh_lease_expired(c, 1000));
    assert_int_equal(tc__coh_lease_take(c, 1000, 500, &t1), 1);
    assert_true(tc__coh_gap(c));
    assert_int_equal(tc__coh_stamp(c, h).k, TC__STAMP_GAP); /* nothing served, nothing filled */
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)before.k, (uint32_t)before.p, "k", 1, NULL));
    assert_int_equal(tc__coh_lease_take(c, 1200, 500, &t2), 0); /* held until 1500 */
    assert_int_equal(tc__coh_recover(c, t1), 1);
    assert_false(tc__coh_gap(c));
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)before.k, (uint32_t)before.p, "k", 1, NULL)); /* the epoch moved */
    assert_int_equal(tc__coh_lease_renew(c, t1, 1400, 500), 1); /* until 1900 */
    /* the owner stops; its lease runs out; another takes it */
    assert_int_equal(tc__coh_lease_take(c, 1800, 500, &t2), 0);
    assert_int_equal(tc__coh_lease_take(c, 2000, 500, &t2), 1);
    assert_true(t2 != t1);
    assert_true(tc__coh_gap(c));
    /* the old owner resumes: it cannot renew, and cannot end the gap */
    assert_int_equal(tc__coh_lease_renew(c, t1, 2001, 500), 0);
    assert_int_equal(tc__coh_recover(c, t1), 0);
    assert_true(tc__coh_gap(c));
    assert_int_equal(tc__coh_recover(c, t2), 1);
    tc__coh_counters n;
    tc__coh_counters_get(c, &n);
    assert_int_equal(n.takeovers, 2);
    assert_int_equal(n.gaps, 2);
    assert_int_equal(n.listener_pid, (uint32_t)getpid());
    tc__coh_close(c);
}

/* Two processes on one shared table: a bump in the child invalidates the parent's stamp. */
static void test_shared_table_across_processes(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    snprintf(o.shared_name, sizeof o.shared_name, "test-coh-%d", (int)getpid());
    char err[TC_ERRBUF_SIZE];
    tc__coh *c = NULL;
    if (tc__coh_open_shared(&o, &c, err, sizeof err) != 0) fail_msg("%s", err);
    uint64_t h = tc__hash("shared", 6);
    tc__stamp s = tc__coh_stamp(c, h);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        tc__coh *cc = NULL;
        if (tc__coh_open_shared(&o, &cc, err, sizeof err) != 0) _exit(1);
        tc__coh_bump(cc, h);
        tc__coh_close(cc);
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_false(tc__coh_valid(c, h, TC__COH_NOW_K, (uint32_t)s.k, (uint32_t)s.p, "shared", 6, NULL));
    tc__coh_close(c);
    assert_int_equal(tc__coh_destroy(o.shared_name), 0);
    assert_int_equal(tc__coh_destroy(o.shared_name), TC_ENOENT);
}

/* Own moves (coherence.h): a mark by this handle leaves its own L1 stamps (f) current, for
 * any key of the stripe, while the fence (k) sees it; a mark by another handle of the same
 * table (another process) makes them stale; a bump (an invalidation) makes them stale for
 * every handle. A mark's own counts are never seen half-done as current: stamps captured (f)
 * never run ahead of what a check computes. */
static void test_own_marks_leave_own_l1_stamps_current(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    snprintf(o.shared_name, sizeof o.shared_name, "test-cohown-%d", (int)getpid());
    char err[TC_ERRBUF_SIZE];
    tc__coh *a = NULL, *b = NULL;
    if (tc__coh_open_shared(&o, &a, err, sizeof err) != 0) fail_msg("%s", err);
    if (tc__coh_open_shared(&o, &b, err, sizeof err) != 0) fail_msg("%s", err);
    uint64_t h = tc__hash("x", 1);
    tc__stamp sa = tc__coh_stamp(a, h), sb = tc__coh_stamp(b, h);
    assert_int_equal(sa.k, sb.k);
    tc__stamp m = tc__coh_mark(a, h); /* a writes the key (or another key of its stripe) */
    assert_int_equal(m.k, sa.k + 1);
    assert_int_equal(m.f, sa.f);
    assert_true(tc__coh_valid(a, h, TC__COH_NOW_F, (uint32_t)sa.f, (uint32_t)sa.p, "x", 1, NULL));
    assert_false(tc__coh_valid(a, h, TC__COH_NOW_K, (uint32_t)sa.k, (uint32_t)sa.p, "x", 1, NULL));
    assert_false(tc__coh_unchanged(a, h, &sa)); /* a fill across a's own write still fails */
    assert_false(tc__coh_valid(b, h, TC__COH_NOW_F, (uint32_t)sb.f, (uint32_t)sb.p, "x", 1, NULL));
    sb = tc__coh_stamp(b, h);
    tc__coh_mark(b, h); /* b's write: stale for a, current for b */
    assert_false(tc__coh_valid(a, h, TC__COH_NOW_F, (uint32_t)sa.f, (uint32_t)sa.p, "x", 1, NULL));
    assert_true(tc__coh_valid(b, h, TC__COH_NOW_F, (uint32_t)sb.f, (uint32_t)sb.p, "x", 1, NULL));
    sa = tc__coh_stamp(a, h);
    sb = tc__coh_stamp(b, h);
    tc__coh_bump(a, h); /* an invalidation: stale everywhere */
    assert_false(tc__coh_valid(a, h, TC__COH_NOW_F, (uint32_t)sa.f, (uint32_t)sa.p, "x", 1, NULL));
    assert_false(tc__coh_valid(b, h, TC__COH_NOW_F, (uint32_t)sb.f, (uint32_t)sb.p, "x", 1, NULL));
    /* a move in flight (own_pre moved, w not yet; then w moved, own_post not yet): a capture
     * never exceeds the settled count, a check never falls below it */
    sa = tc__coh_stamp(a, h);
    size_t st = tc__coh_stripe(h);
    atomic_fetch_add(&a->own[2 * st], 1);
    assert_true(tc__coh_stamp(a, h).f <= sa.f);
    assert_true(tc__coh_now(a, h, TC__COH_NOW_F) >= sa.f);
    atomic_fetch_add(&tc__coh_words(a, h)[0], 1);
    assert_true(tc__coh_stamp(a, h).f <= sa.f);
    assert_true(tc__coh_now(a, h, TC__COH_NOW_F) >= sa.f);
    atomic_fetch_add(&a->own[2 * st + 1], 1);
    assert_int_equal(tc__coh_stamp(a, h).f, sa.f);
    assert_int_equal(tc__coh_now(a, h, TC__COH_NOW_F), sa.f);
    tc__coh_close(a);
    tc__coh_close(b);
    assert_int_equal(tc__coh_destroy(o.shared_name), 0);
}

/* A table file another user could write, or a damaged one, is refused with a clear error. */
static void test_shared_table_trust_and_damage(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    snprintf(o.shared_name, sizeof o.shared_name, "test-cohbad-%d", (int)getpid());
    char path[512], err[TC_ERRBUF_SIZE];
    snprintf(path, sizeof path, "/dev/shm/tiercache-coh.%s", o.shared_name);
    tc__coh *c = NULL;
    assert_int_equal(tc__coh_open_shared(&o, &c, err, sizeof err), 0);
    tc__coh_close(c);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(tc__coh_open_shared(&o, &c, err, sizeof err), TC_EPERM);
    assert_non_null(strstr(err, "mode 0666"));
    assert_int_equal(chmod(path, 0600), 0);
    /* scribble on the checksummed header */
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "X", 1, 40), 1);
    close(fd);
    assert_int_equal(tc__coh_open_shared(&o, &c, err, sizeof err), TC_ECORRUPT);
    assert_non_null(strstr(err, "damaged"));
    assert_int_equal(tc__coh_destroy(o.shared_name), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stamps_move_with_their_stripe_only),
        cmocka_unit_test(test_mark_and_bump),
        cmocka_unit_test(test_prefix_clear_invalidates_matching_keys_only),
        cmocka_unit_test(test_prefix_ring_overflow_is_a_miss),
        cmocka_unit_test(test_lease_tickets),
        cmocka_unit_test(test_shared_table_across_processes),
        cmocka_unit_test(test_shared_table_trust_and_damage),
        cmocka_unit_test(test_own_marks_leave_own_l1_stamps_current),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
