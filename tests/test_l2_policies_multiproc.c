/*
 * test_l2_policies_multiproc.c -- the eight eviction policies of L2 across processes: a child
 * process fills the segment and uses some keys (its own handle, then exits); the parent opens
 * its own handle and writes, and the evictions it causes must follow the child's use of the
 * keys. Sampling policies are asserted only where a wrong choice has negligible probability
 * (see the bounds in each case).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <time.h>

#include "l2_util.h"

#define CAP 400

static tc__tier *open_named(const char *name, tc_policy p) {
    tc__opts o;
    l2t_opts(&o, name, CAP, 120 << 10, p);
    tc__tier *t = NULL;
    char err[512];
    if (tc__l2_open(&o, &t, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return t;
}

static int has(tc__tier *t, uint64_t id) {
    char k[32], buf[64];
    size_t len;
    return l2t_get(t, k, l2t_key(k, sizeof k, id), buf, sizeof buf, &len, NULL) == 0;
}

static int put(tc__tier *t, uint64_t id, int64_t ttl) {
    char k[32];
    return t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), "value-bytes", 11, ttl, NULL);
}

/* What the child does before the parent writes. */
typedef enum { FILL, FILL_TOUCH_HOT, FILL_FREQ_HOT, FILL_HALF_TTL, FILL_SOON_LATE } setup;

#define HOT 40

/* Runs in the child: its own handle on the segment. Exit status 0 when every write worked. */
static int child_setup(const char *name, tc_policy p, setup s) {
    tc__tier *t = open_named(name, p);
    if (t == NULL) return 10;
    for (uint64_t i = 0; i < CAP; i++) {
        int64_t ttl = TC_TTL_NONE;
        if (s == FILL_HALF_TTL) ttl = i < CAP / 4 ? TC_TTL_NONE : 3600000; /* 100 keys without a TTL */
        if (s == FILL_SOON_LATE) ttl = i < CAP / 2 ? 60000 : 3600000;      /* 200 expiring soon */
        if (put(t, i, ttl) != 0) return 11;
    }
    if (s == FILL_TOUCH_HOT) {
        /* L2's LRU clock is the host's monotonic milliseconds (Redis's resolution is 1 s):
         * accesses must be apart in time to be ordered */
        struct timespec gap = {0, 20 * 1000000L};
        nanosleep(&gap, NULL);
        for (uint64_t i = 0; i < HOT; i++) (void)has(t, i);
        nanosleep(&gap, NULL);
    }
    if (s == FILL_FREQ_HOT)
        for (int r = 0; r < 30; r++)
            for (uint64_t i = 0; i < HOT; i++) (void)has(t, i);
    t->ops->close(t);
    return 0;
}

/* Forks the child, waits for it, and returns the parent's own handle on the filled segment. */
static tc__tier *filled_by_child(char *name, size_t nl, const char *tag, tc_policy p, setup s) {
    l2t_name(name, nl, tag);
    tc__tier *mine = open_named(name, p); /* creates the segment; the child attaches */
    assert_non_null(mine);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) _exit(child_setup(name, p, s));
    assert_int_equal(l2t_wait(pid), 0);
    return mine;
}

static void finish(tc__tier *t, const char *name) {
    char rep[2048];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc) fprintf(stderr, "%s", rep);
    assert_int_equal(rc, 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_noeviction_across_processes(void **state) {
    (void)state;
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, "mp-noev", TC_POLICY_NOEVICTION, FILL);
    assert_int_equal(put(t, 100000, TC_TTL_NONE), TC_EFULL);
    assert_false(has(t, 100000));
    for (uint64_t i = 0; i < CAP; i++) assert_true(has(t, i));
    finish(t, name);
}

/* The child read 40 keys after filling; the parent's 40 new keys evict others. An eviction
 * takes a hot key only if all 8 samples are hot: (40/400)^8 = 1e-8. */
static void test_allkeys_lru_across_processes(void **state) {
    (void)state;
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, "mp-lru", TC_POLICY_ALLKEYS_LRU, FILL_TOUCH_HOT);
    for (uint64_t i = 0; i < HOT; i++) assert_int_equal(put(t, 100000 + i, TC_TTL_NONE), 0);
    int kept = 0;
    for (uint64_t i = 0; i < HOT; i++) kept += has(t, i);
    assert_true(kept >= HOT - 1);
    finish(t, name);
}

static void test_allkeys_lfu_across_processes(void **state) {
    (void)state;
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, "mp-lfu", TC_POLICY_ALLKEYS_LFU, FILL_FREQ_HOT);
    for (uint64_t i = 0; i < 2 * HOT; i++) assert_int_equal(put(t, 100000 + i, TC_TTL_NONE), 0);
    int kept = 0;
    for (uint64_t i = 0; i < HOT; i++) kept += has(t, i);
    assert_true(kept >= HOT - 1);
    finish(t, name);
}

/* Random: the parent's own new keys are evicted as readily as the child's old ones. With 400
 * new keys into a full cache of 400, each set evicts a uniformly random key: about half of each
 * set remains; fewer than 50 of either would need a deviation of over 10 sigma. */
static void test_allkeys_random_across_processes(void **state) {
    (void)state;
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, "mp-rand", TC_POLICY_ALLKEYS_RANDOM, FILL_TOUCH_HOT);
    for (uint64_t i = 0; i < CAP; i++) assert_int_equal(put(t, 100000 + i, TC_TTL_NONE), 0);
    int old = 0, fresh = 0;
    for (uint64_t i = 0; i < CAP; i++) {
        old += has(t, i);
        fresh += has(t, 100000 + i);
    }
    assert_true(old >= 50);
    assert_true(CAP - fresh >= 50); /* some of the parent's own writes were evicted too */
    finish(t, name);
}

/* volatile-*: the 100 keys the child wrote without a TTL survive any number of the parent's
 * writes with a TTL. */
static void volatile_case(tc_policy p, const char *tag) {
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, tag, p, FILL_HALF_TTL);
    for (uint64_t i = 0; i < 2 * CAP; i++) assert_int_equal(put(t, 100000 + i, 3600000), 0);
    for (uint64_t i = 0; i < CAP / 4; i++) assert_true(has(t, i));
    finish(t, name);
}

static void test_volatile_lru_across_processes(void **state) {
    (void)state;
    volatile_case(TC_POLICY_VOLATILE_LRU, "mp-vlru");
}
static void test_volatile_lfu_across_processes(void **state) {
    (void)state;
    volatile_case(TC_POLICY_VOLATILE_LFU, "mp-vlfu");
}
static void test_volatile_random_across_processes(void **state) {
    (void)state;
    volatile_case(TC_POLICY_VOLATILE_RANDOM, "mp-vrand");
}

/* volatile-ttl: the child wrote 200 keys expiring in a minute and 200 in an hour; the parent's
 * 40 writes evict the soon ones. A late key goes only if none of 8 samples is soon: at most
 * (240/400)^8 = 1.7 % per eviction while at least 160 soon keys remain; 5 or more of 40 has
 * binomial probability below 0.5 %. */
static void test_volatile_ttl_across_processes(void **state) {
    (void)state;
    char name[128];
    tc__tier *t = filled_by_child(name, sizeof name, "mp-vttl", TC_POLICY_VOLATILE_TTL, FILL_SOON_LATE);
    for (uint64_t i = 0; i < HOT; i++) assert_int_equal(put(t, 100000 + i, 3600000), 0);
    int late_gone = 0;
    for (uint64_t i = CAP / 2; i < CAP; i++) late_gone += !has(t, i);
    assert_true(late_gone <= 4);
    finish(t, name);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_noeviction_across_processes),
        cmocka_unit_test(test_allkeys_lru_across_processes),
        cmocka_unit_test(test_allkeys_lfu_across_processes),
        cmocka_unit_test(test_allkeys_random_across_processes),
        cmocka_unit_test(test_volatile_lru_across_processes),
        cmocka_unit_test(test_volatile_lfu_across_processes),
        cmocka_unit_test(test_volatile_random_across_processes),
        cmocka_unit_test(test_volatile_ttl_across_processes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
