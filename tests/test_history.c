/*
 * test_history.c -- the history checker of tests/helpers/history.h, on its own: one hand-made
 * bad history per rule (each must be rejected under that rule), good histories it must
 * accept, both sides of every boundary, the loader (torn last lines, missing completions,
 * malformed records and histories), the writer across processes (kill -9, a write cut short
 * by the file size limit), a comparison with a direct O(n^2) reading of the rules on random
 * histories, and the time to check a generated valid history of 1,000,000 operations.
 *
 * Hand-made histories use B = 100 ns and small times; "P1@h1" is process P1 on host h1.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers/history.h"

#define B100 100

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                    */

static char report[16384];

static tc_hist *hist_of(const char *text) {
    tc_hist *h = NULL;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    int rc = tc_hist_add_text(h, text, err, sizeof err);
    if (rc != 0) fail_msg("add_text: %s", err);
    return h;
}

/* Checks text with B and strict, and asserts the rule of the first violation. */
static tc_hist_result expect(const char *text, int64_t bound, int strict, tc_hist_rule rule) {
    tc_hist *h = hist_of(text);
    tc_hist_opts o = {bound, strict};
    tc_hist_result r;
    int rc = tc_hist_check(h, &o, &r, report, sizeof report);
    if (rc != 0) fail_msg("check failed (%d): %s", rc, report);
    if (r.rule != rule)
        fail_msg("expected %s, got %s:\n%s", tc_hist_rule_name(rule), tc_hist_rule_name(r.rule), report);
    tc_hist_free(h); /* r's strings are not used after this */
    r.key = NULL;
    return r;
}

/* Like expect, but keeps the history so that r's strings stay valid; free it after. */
static tc_hist_result expect_keep(tc_hist **hp, const char *text, int64_t bound, int strict, tc_hist_rule rule) {
    *hp = hist_of(text);
    tc_hist_opts o = {bound, strict};
    tc_hist_result r;
    int rc = tc_hist_check(*hp, &o, &r, report, sizeof report);
    if (rc != 0) fail_msg("check failed (%d): %s", rc, report);
    if (r.rule != rule)
        fail_msg("expected %s, got %s:\n%s", tc_hist_rule_name(rule), tc_hist_rule_name(r.rule), report);
    return r;
}

/* The check of text must fail as a malformed history, with needle in the reason. */
static void expect_malformed(const char *text, const char *needle) {
    tc_hist *h = hist_of(text);
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, NULL, &r, report, sizeof report), -EINVAL);
    if (strstr(report, needle) == NULL) fail_msg("reason \"%s\" lacks \"%s\"", report, needle);
    tc_hist_free(h);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...) {
    static char bufs[4][4096];
    static int i;
    char *b = bufs[i++ & 3];
    va_list ap;
    va_start(ap, f);
    vsnprintf(b, sizeof bufs[0], f, ap);
    va_end(ap);
    return b;
}

/* P1@h1 sets v1 [0,10] then v2 [20,30] on key k: the base of the stale-read histories. */
#define TWO_SETS                                                                                   \
    "I P1 1 h1 set k v1 0\n"                                                                       \
    "C P1 1 ok - 10\n"                                                                             \
    "I P1 2 h1 set k v2 20\n"                                                                      \
    "C P1 2 ok - 30\n"

/* A read of key k by proc@host over [s, e] returning v ("-": a miss). */
static const char *read_of(const char *proc, const char *host, int s, int e, const char *v) {
    if (strcmp(v, "-") == 0) return fmt("I %s 1 %s get k - %d\nC %s 1 miss - %d\n", proc, host, s, proc, e);
    return fmt("I %s 1 %s get k - %d\nC %s 1 ok %s %d\n", proc, host, s, proc, v, e);
}

/* ---------------------------------------------------------------------------------------- */
/* Bad histories, one per rule                                                                */

static void test_g1_stale_read_same_host(void **state) {
    (void)state;
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, fmt("%s%s", TWO_SETS, read_of("P2", "h1", 31, 32, "v1")), B100, 0,
                                   TC_HIST_RULE_G1);
    assert_string_equal(r.read.proc, "P2");
    assert_string_equal(r.read.value, "v1");
    assert_string_equal(r.write.value, "v1");
    assert_string_equal(r.newer.value, "v2");
    assert_int_equal(r.delta_ns, 0);
    assert_int_equal(r.count[TC_HIST_RULE_G1], 1);
    assert_int_equal(r.violations, 1);
    assert_non_null(strstr(report, "first violation: G1"));
    assert_non_null(strstr(report, "P2@h1 #1 get k -> v1  [31, 32] ok"));
    assert_non_null(strstr(report, "P1@h1 #2 set k v2  [20, 30] ok"));
    tc_hist_free(h);
}

static void test_g1_boundary_end_equal_start_is_allowed(void **state) {
    (void)state;
    /* X.end + 0 == R.start: allowed; one ns later: a violation */
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 30, 32, "v1")), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 31, 32, "v1")), B100, 0, TC_HIST_RULE_G1);
    /* X.start == W.end does not supersede: W [0,10], X [10,20], read at 50 */
    const char *touch = "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\nI P1 2 h1 set k v2 10\nC P1 2 ok - 20\n";
    expect(fmt("%s%s", touch, read_of("P2", "h1", 50, 51, "v1")), B100, 0, TC_HIST_RULE_NONE);
    const char *apart = "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\nI P1 2 h1 set k v2 11\nC P1 2 ok - 20\n";
    expect(fmt("%s%s", apart, read_of("P2", "h1", 50, 51, "v1")), B100, 0, TC_HIST_RULE_G1);
}

static void test_g2_cross_host_within_and_beyond_bound(void **state) {
    (void)state;
    /* the superseding write ended at 30 on h1; a reader on h2 may see v1 until 30 + B */
    expect(fmt("%s%s", TWO_SETS, read_of("P3", "h2", 129, 130, "v1")), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%s%s", TWO_SETS, read_of("P3", "h2", 130, 131, "v1")), B100, 0, TC_HIST_RULE_NONE); /* == */
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, fmt("%s%s", TWO_SETS, read_of("P3", "h2", 131, 132, "v1")), B100, 0,
                                   TC_HIST_RULE_G2);
    assert_int_equal(r.delta_ns, B100);
    assert_string_equal(r.read.host, "h2");
    assert_string_equal(r.newer.host, "h1");
    assert_non_null(strstr(report, "delta         100 ns"));
    tc_hist_free(h);
    /* the bound is the option: with B = 200 the same read is within it */
    expect(fmt("%s%s", TWO_SETS, read_of("P3", "h2", 131, 132, "v1")), 200, 0, TC_HIST_RULE_NONE);
}

static void test_g7_own_write(void **state) {
    (void)state;
    /* P3@h2 sets v3 [200,210], then reads v2 at 211: within B of a write on h1, but its own */
    const char *text = TWO_SETS "I P3 1 h2 set k v3 200\nC P3 1 ok - 210\n"
                                "I P3 2 h2 get k - 211\nC P3 2 ok v2 212\n";
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, text, B100, 0, TC_HIST_RULE_G7);
    assert_string_equal(r.newer.proc, "P3");
    assert_int_equal(r.newer.seq, 1);
    assert_int_equal(r.delta_ns, 0);
    tc_hist_free(h);
    /* the same read by another process of h2 is G1 (same host), not G7 */
    const char *other = TWO_SETS "I P3 1 h2 set k v3 200\nC P3 1 ok - 210\n"
                                 "I P4 1 h2 get k - 211\nC P4 1 ok v2 212\n";
    expect(other, B100, 0, TC_HIST_RULE_G1);
    /* and reading at 210 (== its own write's end) is allowed */
    const char *edge = TWO_SETS "I P3 1 h2 set k v3 200\nC P3 1 ok - 210\n"
                                "I P3 2 h2 get k - 210\nC P3 2 ok v2 212\n";
    expect(edge, B100, 0, TC_HIST_RULE_NONE);
}

static void test_value_from_nowhere(void **state) {
    (void)state;
    expect(TWO_SETS "I P2 1 h1 get k - 40\nC P2 1 ok v9 41\n", B100, 0, TC_HIST_RULE_NOWHERE);
    /* a value written to another key is from nowhere for this one */
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, TWO_SETS "I P3 1 h1 set k2 w1 0\nC P3 1 ok - 5\n"
                                                "I P2 1 h1 get k - 40\nC P2 1 ok w1 41\n",
                                   B100, 0, TC_HIST_RULE_NOWHERE);
    assert_string_equal(r.write.key, "k2");
    assert_non_null(strstr(report, "written to key k2, not k"));
    tc_hist_free(h);
}

static void test_value_from_the_future(void **state) {
    (void)state;
    /* the read ended at 5, the write began at 6 */
    const char *bad = "I P2 1 h1 get k - 0\nC P2 1 ok v1 5\nI P1 1 h1 set k v1 6\nC P1 1 ok - 10\n";
    expect(bad, B100, 0, TC_HIST_RULE_FUTURE);
    /* began at 5 == the read's end: allowed (the two may be one tick apart) */
    const char *edge = "I P2 1 h1 get k - 0\nC P2 1 ok v1 5\nI P1 1 h1 set k v1 5\nC P1 1 ok - 10\n";
    expect(edge, B100, 0, TC_HIST_RULE_NONE);
    /* an indeterminate write is no excuse either */
    const char *ind = "I P2 1 h1 get k - 0\nC P2 1 ok v1 5\nI P1 1 h1 set k v1 6\n";
    expect(ind, B100, 0, TC_HIST_RULE_FUTURE);
}

static void test_g5_convergence(void **state) {
    (void)state;
    /* h1 ends with v5, h2 with v6, L3 holds v6 */
    const char *writes = "I P1 1 h1 set k v5 0\nC P1 1 ok - 10\nI P2 1 h2 set k v6 5\nC P2 1 ok - 12\n";
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, fmt("%sR h1 P1 k v5\nR h2 P2 k v6\nO k v6\n", writes), B100, 0,
                                   TC_HIST_RULE_G5);
    assert_string_equal(r.read.op, "final");
    assert_string_equal(r.read.host, "h1");
    assert_string_equal(r.read.value, "v5");
    assert_int_equal(r.count[TC_HIST_RULE_G5], 1);
    tc_hist_free(h);
    /* every final read equal to the oracle, or a miss: converged */
    expect(fmt("%sR h1 P1 k -\nR h2 P2 k v6\nO k v6\n", writes), B100, 0, TC_HIST_RULE_NONE);
    /* the oracle empty (a write lost by a restart): every final read must miss */
    expect(fmt("%sR h1 P1 k -\nR h2 P2 k -\nO k -\n", writes), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%sR h1 P1 k -\nR h2 P2 k v6\nO k -\n", writes), B100, 0, TC_HIST_RULE_G5);
    /* the oracle holding a superseded value (v1 after v2 completed), or one never written */
    r = expect_keep(&h, TWO_SETS "O k v1\n", B100, 0, TC_HIST_RULE_G5);
    assert_string_equal(r.read.op, "oracle");
    assert_string_equal(r.newer.value, "v2");
    tc_hist_free(h);
    expect(TWO_SETS "O k v7\n", B100, 0, TC_HIST_RULE_G5);
    /* a key whose last write was indeterminate: judged against the oracle too */
    const char *ind = TWO_SETS "I P1 3 h1 set k v3 40\nC P1 3 timeout - 50\n";
    expect(fmt("%sR h1 P1 k v3\nO k v3\n", ind), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%sR h1 P1 k v2\nO k v2\n", ind), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%sR h1 P1 k v2\nO k v3\n", ind), B100, 0, TC_HIST_RULE_G5);
    /* timed violations come first: a G1 read is reported before a G5 final read */
    expect(fmt("%s%sR h1 P1 k v1\nO k v2\n", TWO_SETS, read_of("P2", "h1", 31, 32, "v1")), B100, 0,
           TC_HIST_RULE_G1);
}

/* set v1 [0,10] and set v2 [5,100] on h1; P2@h1 reads v2 [20,21], then P4 reads v1 [30,31]. */
#define INVERSION(host4)                                                                           \
    "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\n"                                                       \
    "I P3 1 h1 set k v2 5\nC P3 1 ok - 100\n"                                                      \
    "I P2 1 h1 get k - 20\nC P2 1 ok v2 21\n"                                                      \
    "I P4 1 " host4 " get k - 30\nC P4 1 ok v1 31\n"

static void test_strict_mode_rejects_new_old_inversion(void **state) {
    (void)state;
    /* the default guarantee is anchored at completion: v2's write was in flight, so accepted */
    expect(INVERSION("h1"), B100, 0, TC_HIST_RULE_NONE);
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, INVERSION("h1"), B100, 1, TC_HIST_RULE_STRICT);
    assert_string_equal(r.read.proc, "P4");
    assert_string_equal(r.write.value, "v1");
    assert_string_equal(r.newer.value, "v2");
    assert_string_equal(r.observer.proc, "P2"); /* the read that saw v2 first */
    assert_non_null(strstr(report, "first violation: STRICT"));
    tc_hist_free(h);
    /* on another host the observation of v2 reaches the reader only after B */
    expect(INVERSION("h2"), B100, 1, TC_HIST_RULE_NONE);
    expect(INVERSION("h2"), 0, 1, TC_HIST_RULE_STRICT);
    /* observed first on h2 (at 16, reaching h1 only at 16 + B), then on h1 itself (at 24):
     * h1's own observation counts from 24 */
    const char *twice = "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\n"
                        "I P3 1 h1 set k v2 5\nC P3 1 ok - 100\n"
                        "I P2 1 h2 get k - 15\nC P2 1 ok v2 16\n"
                        "I P6 1 h1 get k - 20\nC P6 1 ok v2 24\n";
    r = expect_keep(&h, fmt("%sI P4 1 h1 get k - 30\nC P4 1 ok v1 31\n", twice), B100, 1, TC_HIST_RULE_STRICT);
    assert_string_equal(r.observer.proc, "P6");
    assert_int_equal(r.delta_ns, 0);
    tc_hist_free(h);
    expect(fmt("%sI P4 1 h1 get k - 24\nC P4 1 ok v1 31\n", twice), B100, 1, TC_HIST_RULE_NONE);
    /* boundary: v2 observed at 21; a read of v1 starting at 21 is allowed, at 22 not */
    const char *base = "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\n"
                       "I P3 1 h1 set k v2 5\nC P3 1 ok - 100\n"
                       "I P2 1 h1 get k - 20\nC P2 1 ok v2 21\n";
    expect(fmt("%sI P4 1 h1 get k - 21\nC P4 1 ok v1 31\n", base), B100, 1, TC_HIST_RULE_NONE);
    expect(fmt("%sI P4 1 h1 get k - 22\nC P4 1 ok v1 31\n", base), B100, 1, TC_HIST_RULE_STRICT);
}

static void test_strict_mode_concurrent_writes_read_back_and_forth(void **state) {
    (void)state;
    /* W1 and W2 overlap each other and every read: v2, then v1, then v2 again on one host can
     * be no order of the two writes (the second v2 needs W2 after W1, the v1 needs W1 after
     * W2). Neither write ended before the other began, so only the read-derived order sees it. */
    const char *text = "I P1 1 h1 set k v1 0\nI P2 1 h1 set k v2 1\n"
                       "I P3 1 h1 get k - 10\nC P3 1 ok v2 11\n"
                       "I P4 1 h1 get k - 20\nC P4 1 ok v1 21\n"
                       "I P5 1 h1 get k - 30\nC P5 1 ok v2 31\n"
                       "C P1 1 ok - 100\nC P2 1 ok - 100\n";
    expect(text, B100, 0, TC_HIST_RULE_NONE);
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, text, B100, 1, TC_HIST_RULE_STRICT);
    assert_string_equal(r.read.proc, "P5"); /* v2 then v1 is W2 then W1: the third read closes the cycle */
    assert_string_equal(r.observer.proc, "P4");
    tc_hist_free(h);
    /* two flips only (v2 then v1) is a legal order: W2 then W1 */
    const char *two = "I P1 1 h1 set k v1 0\nI P2 1 h1 set k v2 1\n"
                      "I P3 1 h1 get k - 10\nC P3 1 ok v2 11\n"
                      "I P4 1 h1 get k - 20\nC P4 1 ok v1 21\n"
                      "C P1 1 ok - 100\nC P2 1 ok - 100\n";
    expect(two, B100, 1, TC_HIST_RULE_NONE);
}

static void test_strict_mode_reports_default_rules_first(void **state) {
    (void)state;
    /* a plain stale read is also an order inversion; it keeps its own rule in strict mode */
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 31, 32, "v1")), B100, 1, TC_HIST_RULE_G1);
    expect(fmt("%s%s", TWO_SETS, read_of("P3", "h2", 131, 132, "v1")), B100, 1, TC_HIST_RULE_G2);
}

/* ---------------------------------------------------------------------------------------- */
/* Good histories                                                                             */

static void test_a_miss_is_always_allowed(void **state) {
    (void)state;
    /* misses before, during and after every write, on every host, by the writer too */
    const char *text = TWO_SETS "I P1 3 h1 get k - 31\nC P1 3 miss - 32\n"
                                "I P2 1 h1 get k - 0\nC P2 1 miss - 1\n"
                                "I P2 2 h1 get k - 25\nC P2 2 miss - 26\n"
                                "I P3 1 h2 get k - 500\nC P3 1 miss - 501\n"
                                "I P3 2 h2 get nokey - 500\nC P3 2 miss - 501\n";
    tc_hist_result r = expect(text, B100, 0, TC_HIST_RULE_NONE);
    assert_int_equal(r.reads, 0); /* misses are not reads of a value */
    expect(text, 0, 1, TC_HIST_RULE_NONE);
}

static void test_indeterminate_write_read_late(void **state) {
    (void)state;
    /* v2's set timed out, v3's process was killed before its completion, v4's set failed:
     * each may take effect any time after it started, so each is legal to read long after,
     * even after later completed writes */
    const char *writes = TWO_SETS "I P1 3 h1 set k v3 40\nC P1 3 timeout - 50\n"
                                  "I P5 1 h2 set k v4 60\n"
                                  "I P6 1 h2 set k v5 61\nC P6 1 err - 70\n"
                                  "I P1 4 h1 set k v6 80\nC P1 4 ok - 90\n";
    tc_hist_result r = expect(fmt("%sI P2 1 h1 get k - 10000\nC P2 1 ok v3 10001\n"
                                  "I P2 2 h1 get k - 10002\nC P2 2 ok v4 10003\n"
                                  "I P2 3 h1 get k - 10004\nC P2 3 ok v5 10005\n",
                                  writes),
                              B100, 0, TC_HIST_RULE_NONE);
    assert_int_equal(r.writes_indeterminate, 3);
    assert_int_equal(r.writes_ok, 3);
    /* but an indeterminate write never supersedes: v2 read after v3's "completion" is fine */
    expect(TWO_SETS "I P1 3 h1 set k v3 40\nC P1 3 timeout - 50\n"
                    "I P2 1 h1 get k - 10000\nC P2 1 ok v2 10001\n",
           B100, 0, TC_HIST_RULE_NONE);
    /* while a completed one does: v2 read after v6 completed on the same host */
    expect(fmt("%sI P2 1 h1 get k - 10000\nC P2 1 ok v2 10001\n", writes), B100, 0, TC_HIST_RULE_G1);
    /* failed reads are ignored, whatever they would have returned */
    expect(fmt("%sI P2 1 h1 get k - 10000\nC P2 1 err - 10001\nI P2 2 h1 get k - 10002\nC P2 2 timeout - 10003\n"
               "I P2 3 h1 get k - 10004\n",
               writes),
           B100, 1, TC_HIST_RULE_NONE);
}

static void test_concurrent_writes_read_in_either_order(void **state) {
    (void)state;
    /* W1@h1 [0,50] and W2@h2 [10,60] overlap: neither supersedes the other, so each host may
     * read them in either order, before and after both completed */
    const char *text = "I P1 1 h1 set k v1 0\nI P2 1 h2 set k v2 10\nC P1 1 ok - 50\nC P2 1 ok - 60\n"
                       "I P3 1 h1 get k - 70\nC P3 1 ok v2 71\n"
                       "I P3 2 h1 get k - 80\nC P3 2 ok v1 81\n"
                       "I P4 1 h2 get k - 72\nC P4 1 ok v1 73\n"
                       "I P4 2 h2 get k - 90\nC P4 2 ok v2 91\n";
    expect(text, B100, 0, TC_HIST_RULE_NONE);
    /* the readers' host need not match the writer's, within B */
    const char *cross = "I P1 1 h1 set k v1 0\nI P2 1 h2 set k v2 10\nC P1 1 ok - 50\nC P2 1 ok - 60\n"
                        "I P3 1 h1 get k - 70\nC P3 1 ok v1 71\n"
                        "I P4 1 h2 get k - 72\nC P4 1 ok v2 73\n";
    expect(cross, B100, 1, TC_HIST_RULE_NONE);
}

static void test_read_overlapping_the_superseding_write(void **state) {
    (void)state;
    /* X = v2's set runs over [20,30]: reads starting inside it may return v1 on any host */
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 25, 32, "v1")), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 29, 29, "v1")), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%s%s", TWO_SETS, read_of("P3", "h2", 15, 40, "v1")), B100, 0, TC_HIST_RULE_NONE);
    /* and may return v2 before X completed */
    expect(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 21, 22, "v2")), B100, 1, TC_HIST_RULE_NONE);
}

static void test_clear_prefix_is_projected_onto_its_keys(void **state) {
    (void)state;
    const char *writes = "I P1 1 h1 set a:1 va1 0\nC P1 1 ok - 10\n"
                         "I P1 2 h1 set a:2 va2 0\nC P1 2 ok - 10\n"
                         "I P1 3 h1 set b:1 vb1 0\nC P1 3 ok - 10\n"
                         "I P1 4 h1 set a 0a 0\nC P1 4 ok - 10\n"
                         "I P1 5 h1 clear_prefix a: - 20\nC P1 5 ok - 30\n";
    /* keys outside the prefix ("b:1", and "a", which is shorter than "a:") keep their values */
    expect(fmt("%sI P2 1 h1 get b:1 - 40\nC P2 1 ok vb1 41\nI P2 2 h1 get a - 42\nC P2 2 ok 0a 43\n"
               "I P2 3 h1 get a:1 - 44\nC P2 3 miss - 45\n",
               writes),
           B100, 0, TC_HIST_RULE_NONE);
    /* a key under it read after the clear completed: stale */
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, fmt("%sI P2 1 h1 get a:2 - 40\nC P2 1 ok va2 41\n", writes), B100, 0,
                                   TC_HIST_RULE_G1);
    assert_string_equal(r.newer.op, "clear_prefix");
    assert_string_equal(r.newer.key, "a:");
    assert_string_equal(r.key, "a:2");
    tc_hist_free(h);
    /* from another host: within B allowed, beyond it not */
    expect(fmt("%sI P3 1 h2 get a:2 - 130\nC P3 1 ok va2 131\n", writes), B100, 0, TC_HIST_RULE_NONE);
    expect(fmt("%sI P3 1 h2 get a:2 - 131\nC P3 1 ok va2 132\n", writes), B100, 0, TC_HIST_RULE_G2);
    /* a clear covers every key; an indeterminate clear none */
    const char *clear = "I P1 1 h1 set b:1 vb1 0\nC P1 1 ok - 10\nI P1 2 h2 clear - - 20\nC P1 2 ok - 30\n";
    expect(fmt("%sI P2 1 h2 get b:1 - 31\nC P2 1 ok vb1 32\n", clear), B100, 0, TC_HIST_RULE_G1);
    const char *lost = "I P1 1 h1 set b:1 vb1 0\nC P1 1 ok - 10\nI P1 2 h2 clear - - 20\nC P1 2 err - 30\n";
    expect(fmt("%sI P2 1 h2 get b:1 - 31\nC P2 1 ok vb1 32\n", lost), B100, 0, TC_HIST_RULE_NONE);
}

static void test_faults_in_the_report(void **state) {
    (void)state;
    /* a read during a channel fault returns a value written after the fault began: fine */
    const char *good = "F client_kill 100 500 listener of h2\n"
                       "I P1 1 h1 set k v1 50\nC P1 1 ok - 60\n"
                       "I P1 2 h1 set k v2 200\nC P1 2 ok - 210\n"
                       "I P3 1 h2 get k - 300\nC P3 1 ok v2 310\n";
    expect(good, B100, 0, TC_HIST_RULE_NONE);
    /* a stale read: the report lists the faults overlapping [W.start, R.end] and only those */
    const char *bad = "F sigstop 5 8 listener of h2\n"
                      "F redis_restart 1000 2000 port 7000\n"
                      "F client_kill 132 140 after the read\n" TWO_SETS
                      "I P3 1 h2 get k - 131\nC P3 1 ok v1 132\n";
    tc_hist *h;
    tc_hist_result r = expect_keep(&h, bad, B100, 0, TC_HIST_RULE_G2);
    assert_int_equal(r.faults, 2);
    assert_non_null(strstr(report, "faults overlapping [0, 132]: 2"));
    assert_non_null(strstr(report, "sigstop [5, 8] listener of h2"));
    assert_non_null(strstr(report, "client_kill [132, 140] after the read"));
    assert_null(strstr(report, "redis_restart"));
    tc_hist_free(h);
}

static void test_report_fits_any_buffer(void **state) {
    (void)state;
    tc_hist *h = hist_of(fmt("%s%s", TWO_SETS, read_of("P2", "h1", 31, 32, "v1")));
    tc_hist_result r;
    char small[40];
    memset(small, 'x', sizeof small);
    assert_int_equal(tc_hist_check(h, NULL, &r, small, 24), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_G1);
    assert_int_equal(strlen(small), 23);
    assert_int_equal(small[24], 'x');
    assert_int_equal(tc_hist_check(h, NULL, &r, NULL, 0), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_G1);
    /* a check can be repeated with other options, and records added in between */
    tc_hist_opts strict = {B100, 1};
    assert_int_equal(tc_hist_check(h, &strict, &r, NULL, 0), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_G1);
    char err[256];
    assert_int_equal(tc_hist_add_text(h, "I P9 1 h1 get k - 0\nC P9 1 ok nothing 1\n", err, sizeof err), 0);
    assert_int_equal(tc_hist_check(h, NULL, &r, NULL, 0), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_NOWHERE); /* starts at 0: now the first */
    assert_int_equal(r.violations, 2);
    tc_hist_opts badopt = {-1, 0};
    assert_int_equal(tc_hist_check(h, &badopt, &r, report, sizeof report), -EINVAL);
    assert_non_null(strstr(report, "bound_ns"));
    tc_hist_free(h);
}

/* ---------------------------------------------------------------------------------------- */
/* Loader                                                                                     */

static char tmpdir[64];

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Setup and teardown of the tests that write files: the directory goes even when a test
 * fails half way. */
static int tmp_setup(void **state) {
    (void)state;
    strcpy(tmpdir, "/tmp/tc-history-XXXXXX");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int tmp_teardown(void **state) {
    (void)state;
    return nftw(tmpdir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *name, const char *text) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void test_loader_tolerates_torn_last_line_and_missing_completion(void **state) {
    (void)state;
    /* P1 set v2's completion was torn by a kill: v2 is indeterminate, v1 still legal */
    write_file("P1.hist", "I P1 1 h1 set k v1 0\nC P1 1 ok - 10\nI P1 2 h1 set k v2 20\nC P1 2 o");
    /* P2's last get was invoked, then the process died: ignored */
    write_file("P2.hist", "I P2 1 h1 get k - 40\nC P2 1 ok v1 41\nI P2 2 h1 get k - 50\n");
    /* P3's invoke itself is torn: absent */
    write_file("P3.hist", "I P3 1 h2 set k v");
    write_file("faults.hist", "F kill9 19 21 P1\nO k v2\nR h1 P2 k v2\n");
    write_file("notes.txt", "this is not a history file\n");
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    int rc = tc_hist_load_dir(h, tmpdir, err, sizeof err);
    if (rc != 0) fail_msg("load_dir: %s", err);
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, NULL, &r, report, sizeof report), 0);
    if (r.rule != TC_HIST_RULE_NONE) fail_msg("%s", report);
    assert_int_equal(r.torn_lines, 2);
    assert_int_equal(r.ops, 4);
    assert_int_equal(r.writes_ok, 1);
    assert_int_equal(r.writes_indeterminate, 1);
    assert_int_equal(r.reads, 1);
    assert_int_equal(r.final_reads, 1);
    tc_hist_free(h);
    /* a malformed line inside a file is refused, naming the file and line */
    write_file("P4.hist", "I P4 1 h1 get k - 40\nC P4 1 ok  v1 41\nI P4 2 h1 get k - 50\n");
    assert_int_equal(tc_hist_new(&h), 0);
    assert_int_equal(tc_hist_load_dir(h, tmpdir, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "P4.hist:2: empty field"));
    tc_hist_free(h);
    assert_int_equal(tc_hist_new(&h), 0);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none", tmpdir);
    assert_int_equal(tc_hist_load_dir(h, missing, err, sizeof err), -ENOENT);
    assert_int_equal(tc_hist_load_file(h, missing, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "none"));
    tc_hist_free(h);
}

static void test_loader_refuses_malformed_records(void **state) {
    (void)state;
    static const struct {
        const char *line, *needle;
    } cases[] = {
        {"X P1 1 h1 get k - 0", "unknown record type"},
        {"I P1 1 h1 get k - 0 9", "has 9 fields; it needs 8"},
        {"I P1 1 h1 put k - 0", "unknown operation"},
        {"I P1 x h1 get k - 0", "bad operation number"},
        {"I P1 1 h1 get k - -5", "bad time"},
        {"I P1 1 h1 get k - 4611686018427387904", "bad time"}, /* 2^62 */
        {"I P1 1 h1 get - - 0", "get needs a key"},
        {"I P1 1 h1 set k - 0", "set needs a value"},
        {"I P1 1 h1 get k v 0", "get needs the argument"},
        {"I P1 1 h1 clear k - 0", "clear needs the key field"},
        {"I - 1 h1 get k - 0", "process may not be"},
        {"I P1 1 h1 get k\x01 - 0", "is not a token"},
        {"I P1 1 h1 get k -  0", "empty field"},
        {" I P1 1 h1 get k - 0", "empty field"},
        {"C P1 1 fine - 0", "unknown result"},
        {"C P1 1 miss v 0", "carries no value"},
        {"F kill 10 5 x", "bad fault interval"},
        {"F kill 10 15", "has 4 fields"},
        {"R h1 P1 - v", "key may not be"},
        {"O k", "has 2 fields"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_hist *h;
        char err[512];
        assert_int_equal(tc_hist_new(&h), 0);
        int rc = tc_hist_add_line(h, cases[i].line, strlen(cases[i].line), err, sizeof err);
        if (rc != -EINVAL) fail_msg("\"%s\" accepted (%d)", cases[i].line, rc);
        if (strstr(err, cases[i].needle) == NULL || strstr(err, "line 1:") == NULL)
            fail_msg("\"%s\": \"%s\" lacks \"%s\"", cases[i].line, err, cases[i].needle);
        tc_hist_free(h);
    }
    /* comments and empty lines are skipped; a fault's detail may hold spaces */
    tc_hist *h = hist_of("# a comment\n\nF sigstop 1 2 the listener of h1, for 2 s\n");
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, NULL, &r, NULL, 0), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_NONE);
    tc_hist_free(h);
}

static void test_check_refuses_malformed_histories(void **state) {
    (void)state;
    expect_malformed("C P1 1 ok - 10\n", "completion of P1 #1 without its invoke");
    expect_malformed("I P1 1 h1 get k - 0\nI P1 1 h1 get k - 5\n", "invoked twice");
    expect_malformed("I P1 1 h1 get k - 0\nC P1 1 miss - 1\nC P1 1 miss - 2\n", "completed twice");
    expect_malformed("I P1 1 h1 set k v 0\nC P1 1 ok - 1\nI P2 1 h1 set k v 0\n", "value v written twice");
    expect_malformed("I P1 1 h1 get k - 10\nC P1 1 miss - 9\n", "earlier than its invoke");
    expect_malformed("I P1 1 h1 set k v 0\nC P1 1 miss - 1\n", "only a get can miss");
    expect_malformed("I P1 1 h1 get k - 0\nC P1 1 ok - 1\n", "needs the value read");
    expect_malformed("I P1 1 h1 del k - 0\nC P1 1 ok v 1\n", "carries no value");
    expect_malformed("R h1 P1 k v\n", "has no oracle record");
    expect_malformed("O k v\nO k -\n", "two oracle records");
}

/* ---------------------------------------------------------------------------------------- */
/* Writer                                                                                     */

/* A linearizable register per key in shared memory: a set is one atomic store, a get one
 * atomic load. Value id 0 is "nothing"; id = proc * 2^20 + seq + 1 names "p<proc>-<seq>". */
#define NKEYS 4
#define NPROCS 6

static void record_ops(const char *dir, int p, _Atomic uint64_t *reg, int nops, int slow) {
    char proc[16], host[16];
    snprintf(proc, sizeof proc, "p%d", p);
    snprintf(host, sizeof host, "h%d", p % 3);
    tc_hist_writer *w;
    if (tc_hist_writer_open(dir, proc, host, &w) != 0) _exit(10);
    uint64_t seed = 0x9e3779b97f4a7c15ull * (uint64_t)(p + 1);
    for (int i = 0; i < nops; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((seed >> 33) % NKEYS), what = (int)((seed >> 40) % 10);
        char key[8];
        snprintf(key, sizeof key, "k%d", k);
        uint64_t tok;
        if (what < 4) {
            char v[32];
            snprintf(v, sizeof v, "p%d-%d", p, i);
            if (tc_hist_invoke(w, TC_HIST_OP_SET, key, v, &tok) != 0) _exit(11);
            reg[k] = ((uint64_t)p << 20) + (uint64_t)i + 1;
            if (tc_hist_complete(w, tok, TC_HIST_RES_OK, NULL, 0) != 0) _exit(12);
        } else if (what == 4) {
            if (tc_hist_invoke(w, TC_HIST_OP_DEL, key, NULL, &tok) != 0) _exit(11);
            reg[k] = 0;
            if (tc_hist_complete(w, tok, TC_HIST_RES_OK, NULL, 0) != 0) _exit(12);
        } else {
            if (tc_hist_invoke(w, TC_HIST_OP_GET, key, NULL, &tok) != 0) _exit(11);
            uint64_t id = reg[k];
            char v[32];
            if (id == 0) {
                if (tc_hist_complete(w, tok, TC_HIST_RES_MISS, NULL, 0) != 0) _exit(12);
            } else {
                int n = snprintf(v, sizeof v, "p%d-%d", (int)(id >> 20), (int)((id & 0xfffff) - 1));
                if (tc_hist_complete(w, tok, TC_HIST_RES_OK, v, (size_t)n) != 0) _exit(12);
            }
        }
        if (slow) {
            struct timespec ts = {0, 20000};
            nanosleep(&ts, NULL);
        }
    }
    if (tc_hist_writer_close(w) != 0) _exit(13);
}

static void test_writer_across_processes_with_a_kill(void **state) {
    (void)state;
    _Atomic uint64_t *reg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(reg != MAP_FAILED);
    pid_t pids[NPROCS];
    for (int p = 0; p < NPROCS; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL); /* p0 is killed below, or with the test */
            record_ops(tmpdir, p, reg, p == 0 ? 100000 : 3000, p == 0);
            _exit(0);
        }
    }
    for (int p = 1; p < NPROCS; p++) {
        int st;
        assert_int_equal(waitpid(pids[p], &st, 0), pids[p]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    kill(pids[0], SIGKILL); /* in the middle of its run, maybe of a record */
    int st;
    assert_int_equal(waitpid(pids[0], &st, 0), pids[0]);
    /* the harness's own records: a fault, the final state */
    tc_hist_writer *w;
    assert_int_equal(tc_hist_writer_open(tmpdir, "harness", "h0", &w), 0);
    int64_t now = tc_hist_now_ns();
    assert_int_equal(tc_hist_fault(w, "kill9", now, now, "p0 with SIGKILL"), 0);
    for (int k = 0; k < NKEYS; k++) {
        char key[8], v[32];
        snprintf(key, sizeof key, "k%d", k);
        uint64_t id = reg[k];
        int n = id ? snprintf(v, sizeof v, "p%d-%d", (int)(id >> 20), (int)((id & 0xfffff) - 1)) : 0;
        assert_int_equal(tc_hist_oracle(w, key, id != 0, v, (size_t)n), 0);
        assert_int_equal(tc_hist_final_read(w, key, id != 0, v, (size_t)n), 0);
    }
    assert_int_equal(tc_hist_writer_close(w), 0);
    /* a process id is used once */
    assert_int_equal(tc_hist_writer_open(tmpdir, "p1", "h1", &w), -EEXIST);
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    int rc = tc_hist_load_dir(h, tmpdir, err, sizeof err);
    if (rc != 0) fail_msg("load_dir: %s", err);
    tc_hist_opts o = {0, 1}; /* the register is linearizable: strict, with B = 0, must pass */
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    if (r.rule != TC_HIST_RULE_NONE) fail_msg("%s", report);
    assert_true(r.ops > 5 * 3000);
    assert_true(r.reads > 1000);
    assert_int_equal(r.final_reads, NKEYS);
    print_message("writer: %llu operations from %d processes (one killed), %llu torn line(s)\n",
                  (unsigned long long)r.ops, NPROCS, (unsigned long long)r.torn_lines);
    tc_hist_free(h);
    munmap((void *)reg, 4096);
}

static void test_writer_refuses_bad_fields_and_escapes_odd_values(void **state) {
    (void)state;
    tc_hist_writer *w;
    assert_int_equal(tc_hist_writer_open(tmpdir, "a b", "h1", &w), -EINVAL);
    assert_int_equal(tc_hist_writer_open(tmpdir, "../p", "h1", &w), -EINVAL);
    assert_int_equal(tc_hist_writer_open(tmpdir, ".p", "h1", &w), -EINVAL);
    assert_int_equal(tc_hist_writer_open(tmpdir, "p", "-", &w), -EINVAL);
    assert_int_equal(tc_hist_writer_open(tmpdir, "p", "h1", &w), 0);
    uint64_t t;
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_GET, "a key", NULL, &t), -EINVAL);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_GET, "-", NULL, &t), -EINVAL);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_SET, "k", "-", &t), -EINVAL);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_SET, "k", "?x", &t), -EINVAL);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_SET, "k", NULL, &t), -EINVAL);
    assert_int_equal(tc_hist_invoke(w, (tc_hist_op)9, "k", NULL, &t), -EINVAL);
    assert_int_equal(tc_hist_fault(w, "kill", 5, 4, NULL), -EINVAL);
    assert_int_equal(tc_hist_fault(w, "kill", 4, 5, "two\nlines"), -EINVAL);
    /* a set of "v 1" cannot be recorded, but a read returning those bytes (a corrupted value)
     * can: it is escaped, and the checker calls it a value from nowhere */
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_SET, "k", "v1", &t), 0);
    assert_int_equal(tc_hist_complete(w, t, TC_HIST_RES_OK, NULL, 0), 0);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_GET, "k", NULL, &t), 0);
    assert_int_equal(tc_hist_complete(w, t, TC_HIST_RES_OK, "v 1", 3), 0);
    assert_int_equal(tc_hist_invoke(w, TC_HIST_OP_CLEAR, NULL, NULL, &t), 0);
    assert_int_equal(tc_hist_complete(w, t, TC_HIST_RES_ERR, NULL, 0), 0);
    assert_int_equal(tc_hist_writer_close(w), 0);
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    assert_int_equal(tc_hist_load_dir(h, tmpdir, err, sizeof err), 0);
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, NULL, &r, report, sizeof report), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_NOWHERE);
    assert_string_equal(r.read.value, "?hex:3:762031");
    assert_int_equal(r.ops, 3);
    assert_int_equal(r.writes_indeterminate, 1);
    tc_hist_free(h);
}

static void test_writer_cuts_back_a_short_write(void **state) {
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the file size limit makes the record that crosses it a short write, and the next
         * one fail: neither may leave a partial record in the file */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {150, 150};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(20);
        tc_hist_writer *w;
        if (tc_hist_writer_open(tmpdir, "p", "h1", &w) != 0) _exit(21);
        int i, rc = 0;
        for (i = 0; i < 100 && rc == 0; i++) {
            uint64_t t;
            char v[32];
            snprintf(v, sizeof v, "value-number-%d", i);
            rc = tc_hist_invoke(w, TC_HIST_OP_SET, "some-key", v, &t);
        }
        if (rc == 0) _exit(22);
        tc_hist_writer_close(w);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    char p[128];
    snprintf(p, sizeof p, "%s/p.hist", tmpdir);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(sb.st_size > 0 && sb.st_size < 150);
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    assert_int_equal(tc_hist_load_file(h, p, err, sizeof err), 0);
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, NULL, &r, report, sizeof report), 0);
    assert_int_equal(r.torn_lines, 0); /* the partial record was cut off */
    assert_true(r.ops >= 2);
    tc_hist_free(h);
}

/* ---------------------------------------------------------------------------------------- */
/* The rules read directly (O(n^2)) against the checker, on random histories                  */

typedef struct rop {
    int op, res, proc, host, key; /* key: index into rkeys; for clear_prefix the prefix index */
    int64_t s, e;                 /* e: completion time, -1 when none */
    int val;                      /* set: its value; get ok: the value read (-1 none) */
} rop;

static const char *const rkeys[] = {"a:1", "a:2", "b:1"};
static const char *const rprefixes[] = {"a:", "b", "a:1"};

static uint64_t rnd(uint64_t *s) {
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static int covers(const rop *x, int key) {
    if (x->op == TC_HIST_OP_CLEAR) return 1;
    if (x->op == TC_HIST_OP_CLEAR_PREFIX) return strncmp(rkeys[key], rprefixes[x->key], strlen(rprefixes[x->key])) == 0;
    return (x->op == TC_HIST_OP_SET || x->op == TC_HIST_OP_DEL) && x->key == key;
}

static int ok_done(const rop *o) { return o->res == TC_HIST_RES_OK && o->e >= 0; }

static int set_of(const rop *ops, int n, int val) {
    for (int i = 0; i < n; i++)
        if (ops[i].op == TC_HIST_OP_SET && ops[i].val == val) return i;
    return -1;
}

/* The cluster of op j (a set or a read of its value), or -1: reads that are NOWHERE/FUTURE
 * belong to none. Dels and clears are clusters of their own (their index + 1000). */
static int cluster_of(const rop *ops, int n, int j, int key) {
    const rop *o = &ops[j];
    if (o->op == TC_HIST_OP_SET) return o->key == key ? j : -1;
    if (o->op == TC_HIST_OP_GET) {
        if (o->res != TC_HIST_RES_OK || o->key != key) return -1;
        int w = set_of(ops, n, o->val);
        if (w < 0 || ops[w].key != key || ops[w].s > o->e) return -1;
        return w;
    }
    return ok_done(o) && covers(o, key) ? j + 1000 : -1;
}

/* y precedes z (y completed; Δ = B into a read on another host) */
static int precedes(const rop *y, const rop *z, int64_t B) {
    if (y->op == TC_HIST_OP_GET ? y->res != TC_HIST_RES_OK : !ok_done(y)) return 0;
    int64_t d = z->op == TC_HIST_OP_GET && z->host != y->host ? B : 0;
    return y->e + d < z->s;
}

/* The rule of read i, straight from the definitions in history.h. */
static int naive_rule(const rop *ops, int n, int i, int64_t B, int strict) {
    const rop *r = &ops[i];
    int w = set_of(ops, n, r->val);
    if (w < 0 || ops[w].key != r->key) return TC_HIST_RULE_NOWHERE;
    if (ops[w].s > r->e) return TC_HIST_RULE_FUTURE;
    if (ok_done(&ops[w])) {
        int rule = TC_HIST_RULE_NONE;
        for (int x = 0; x < n; x++) {
            const rop *X = &ops[x];
            if (x == w || !ok_done(X) || !covers(X, r->key) || !(X->s > ops[w].e)) continue;
            if (X->proc == r->proc && X->e < r->s) return TC_HIST_RULE_G7;
            if (X->host == r->host && X->e < r->s) rule = TC_HIST_RULE_G1;
            if (rule == TC_HIST_RULE_NONE && X->host != r->host && X->e + B < r->s) rule = TC_HIST_RULE_G2;
        }
        if (rule != TC_HIST_RULE_NONE) return rule;
    }
    if (!strict) return TC_HIST_RULE_NONE;
    int a = cluster_of(ops, n, i, r->key);
    for (int y = 0; y < n; y++) { /* an op y of another cluster b observed before r */
        int b = cluster_of(ops, n, y, r->key);
        if (b < 0 || b == a || !precedes(&ops[y], r, B)) continue;
        for (int x = 0; x < n; x++) { /* a precedes b, through an op z of b started by r's start */
            if (cluster_of(ops, n, x, r->key) != a) continue;
            for (int z = 0; z < n; z++)
                if (cluster_of(ops, n, z, r->key) == b && ops[z].s <= r->s && precedes(&ops[x], &ops[z], B))
                    return TC_HIST_RULE_STRICT;
        }
    }
    return TC_HIST_RULE_NONE;
}

static void test_checker_matches_the_rules_read_directly(void **state) {
    (void)state;
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    long rejected = 0, by_rule[TC_HIST_RULE_COUNT] = {0};
    for (int round = 0; round < 3000; round++) {
        rop ops[40];
        int n = 8 + (int)(rnd(&seed) % 30), nval = 0;
        int64_t B = (int64_t)(rnd(&seed) % 4) * 10;
        int strict = (int)(rnd(&seed) % 2);
        char used[400] = {0};
        for (int i = 0; i < n; i++) {
            rop *o = &ops[i];
            int k = (int)(rnd(&seed) % 10);
            o->op = k < 4 ? TC_HIST_OP_GET : k < 7 ? TC_HIST_OP_SET : k < 8 ? TC_HIST_OP_DEL
                  : k < 9 ? TC_HIST_OP_CLEAR_PREFIX : TC_HIST_OP_CLEAR;
            o->proc = (int)(rnd(&seed) % 5);
            o->host = o->proc % 2;
            o->key = (int)(rnd(&seed) % 3);
            do o->s = (int64_t)(rnd(&seed) % 400); /* distinct starts: the first read is unique */
            while (used[o->s]);
            used[o->s] = 1;
            o->e = o->s + (int64_t)(rnd(&seed) % 60);
            int q = (int)(rnd(&seed) % 10);
            o->res = q < 7 ? TC_HIST_RES_OK : q < 8 ? TC_HIST_RES_ERR : q < 9 ? TC_HIST_RES_TIMEOUT : 4;
            if (o->res == 4) o->e = -1;
            o->val = -1;
            if (o->op == TC_HIST_OP_SET) o->val = nval++;
            if (o->op == TC_HIST_OP_GET && o->res == TC_HIST_RES_OK) o->val = -2; /* filled below */
        }
        for (int i = 0; i < n; i++) { /* what each get that hit returned */
            rop *o = &ops[i];
            if (o->op != TC_HIST_OP_GET || o->res != TC_HIST_RES_OK) continue;
            int cand[40], nc = 0, any = (int)(rnd(&seed) % 8) == 0; /* 1 in 8: any set, of any time */
            for (int j = 0; j < n; j++)
                if (ops[j].op == TC_HIST_OP_SET && (any || (ops[j].key == o->key && ops[j].s <= o->e))) cand[nc++] = j;
            if (rnd(&seed) % 40 == 0)
                o->val = nval; /* a value nobody wrote */
            else if (nc > 0)
                o->val = ops[cand[rnd(&seed) % (unsigned)nc]].val;
            else
                o->res = TC_HIST_RES_MISS;
        }
        /* the history text: each op's invoke and completion; seq = index */
        static char text[65536];
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            const rop *o = &ops[i];
            char v[16] = "-";
            if (o->op == TC_HIST_OP_SET) snprintf(v, sizeof v, "v%d", o->val);
            const char *key = o->op == TC_HIST_OP_CLEAR ? "-" : o->op == TC_HIST_OP_CLEAR_PREFIX ? rprefixes[o->key]
                                                                                                : rkeys[o->key];
            static const char *const ops_s[] = {"get", "set", "del", "clear_prefix", "clear"};
            len += (size_t)snprintf(text + len, sizeof text - len, "I P%d %d h%d %s %s %s %lld\n", o->proc, i, o->host,
                                    ops_s[o->op], key, v, (long long)o->s);
        }
        for (int i = 0; i < n; i++) {
            const rop *o = &ops[i];
            if (o->e < 0) continue;
            static const char *const res_s[] = {"ok", "miss", "err", "timeout"};
            char v[16] = "-";
            if (o->op == TC_HIST_OP_GET && o->res == TC_HIST_RES_OK) snprintf(v, sizeof v, "v%d", o->val);
            len += (size_t)snprintf(text + len, sizeof text - len, "C P%d %d %s %s %lld\n", o->proc, i,
                                    res_s[o->res], v, (long long)o->e);
        }
        /* the expected verdict */
        long cnt[TC_HIST_RULE_COUNT] = {0};
        int first = -1, first_rule = TC_HIST_RULE_NONE;
        for (int i = 0; i < n; i++) {
            if (ops[i].op != TC_HIST_OP_GET || ops[i].res != TC_HIST_RES_OK) continue;
            int rule = naive_rule(ops, n, i, B, strict);
            if (rule == TC_HIST_RULE_NONE) continue;
            cnt[rule]++;
            if (first < 0 || ops[i].s < ops[first].s) first = i, first_rule = rule;
        }
        tc_hist *h = hist_of(text);
        tc_hist_opts o = {B, strict};
        tc_hist_result r;
        assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
        int same = (int)r.rule == first_rule;
        for (int k = 0; k < TC_HIST_RULE_COUNT; k++) same = same && (long)r.count[k] == cnt[k];
        if (same && first >= 0) same = r.read.seq == (uint64_t)first;
        if (!same)
            fail_msg("round %d (B %lld, strict %d): expected %s at op %d, got:\n%s\nhistory:\n%s", round, (long long)B,
                     strict, tc_hist_rule_name((tc_hist_rule)first_rule), first, report, text);
        if (first >= 0) rejected++;
        for (int k = 1; k < TC_HIST_RULE_COUNT; k++) by_rule[k] += cnt[k] > 0;
        tc_hist_free(h);
    }
    /* the random histories exercised every timed rule */
    for (int k = 1; k < TC_HIST_RULE_COUNT; k++)
        if (k != TC_HIST_RULE_G5 && by_rule[k] == 0) fail_msg("no random history violated %s", tc_hist_rule_name(k));
    print_message("3000 random histories, %ld rejected; with NOWHERE %ld FUTURE %ld G7 %ld G1 %ld G2 %ld STRICT %ld\n",
                  rejected, by_rule[1], by_rule[2], by_rule[3], by_rule[4], by_rule[5], by_rule[7]);
}

/* ---------------------------------------------------------------------------------------- */
/* A valid history of 1,000,000 operations                                                   */

/* 1,000,000 operations; 200,000 in sanitizer builds, whose times mean nothing and which
 * would spend most of a minute on it (the plain build is the one that measures). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PERF_OPS 200000
#else
#define PERF_OPS 1000000
#endif
#define PERF_PROCS 16
#define PERF_KEYS 1000

typedef struct pproc {
    FILE *f;
    uint64_t rng;
    int64_t s, lin, e; /* the pending op: start, the instant it takes effect, end */
    int op, key, res;
    uint64_t seq;
} pproc;

static void perf_next(pproc *p, int64_t after) {
    p->s = after + 1 + (int64_t)(rnd(&p->rng) % 5000);
    p->lin = p->s + 1 + (int64_t)(rnd(&p->rng) % 20000);
    p->e = p->lin + 1 + (int64_t)(rnd(&p->rng) % 20000);
    int k = (int)(rnd(&p->rng) % 1000);
    p->op = k < 550 ? TC_HIST_OP_GET : k < 940 ? TC_HIST_OP_SET : k < 999 ? TC_HIST_OP_DEL : TC_HIST_OP_CLEAR_PREFIX;
    p->key = (int)(rnd(&p->rng) % PERF_KEYS);
    p->res = rnd(&p->rng) % 100 == 0 ? TC_HIST_RES_TIMEOUT : TC_HIST_RES_OK;
}

/* Simulates PERF_PROCS sequential processes on 3 hosts over one linearizable store (every
 * operation takes effect at one instant inside its interval, applied in that order) and
 * writes their files into tmpdir: a valid history of PERF_OPS operations. */
static void perf_generate(void) {
    static uint64_t store[PERF_KEYS]; /* 0: nothing; else 1 + the writer's proc * 2^32 + seq */
    memset(store, 0, sizeof store);
    pproc pp[PERF_PROCS];
    for (int i = 0; i < PERF_PROCS; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/P%d.hist", tmpdir, i);
        pp[i].f = fopen(path, "w");
        assert_non_null(pp[i].f);
        pp[i].rng = 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
        pp[i].seq = 0;
        perf_next(&pp[i], 1000000000000ll);
    }
    for (int n = 0; n < PERF_OPS; n++) {
        int i = 0;
        for (int j = 1; j < PERF_PROCS; j++)
            if (pp[j].lin < pp[i].lin) i = j;
        pproc *p = &pp[i];
        char key[32];
        if (p->op == TC_HIST_OP_CLEAR_PREFIX)
            snprintf(key, sizeof key, "g%d:", p->key % 10);
        else
            snprintf(key, sizeof key, "g%d:k%d", p->key % 10, p->key);
        static const char *const ops_s[] = {"get", "set", "del", "clear_prefix", "clear"};
        char val[32] = "-";
        if (p->op == TC_HIST_OP_SET) snprintf(val, sizeof val, "P%d-%llu", i, (unsigned long long)p->seq);
        fprintf(p->f, "I P%d %llu h%d %s %s %s %lld\n", i, (unsigned long long)p->seq, i % 3, ops_s[p->op], key, val,
                (long long)p->s);
        int applied = p->res == TC_HIST_RES_OK || rnd(&p->rng) % 2; /* a timeout may or may not apply */
        if (p->op == TC_HIST_OP_GET) {
            uint64_t v = store[p->key];
            if (v == 0 || rnd(&p->rng) % 8 == 0) /* caches may always miss */
                fprintf(p->f, "C P%d %llu miss - %lld\n", i, (unsigned long long)p->seq, (long long)p->e);
            else
                fprintf(p->f, "C P%d %llu ok P%d-%llu %lld\n", i, (unsigned long long)p->seq, (int)((v - 1) >> 32),
                        (unsigned long long)((v - 1) & 0xffffffffu), (long long)p->e);
        } else {
            if (applied && p->op == TC_HIST_OP_SET) store[p->key] = 1 + ((uint64_t)i << 32) + p->seq;
            if (applied && p->op == TC_HIST_OP_DEL) store[p->key] = 0;
            if (applied && p->op == TC_HIST_OP_CLEAR_PREFIX)
                for (int k = p->key % 10; k < PERF_KEYS; k += 10) store[k] = 0;
            fprintf(p->f, "C P%d %llu %s - %lld\n", i, (unsigned long long)p->seq,
                    p->res == TC_HIST_RES_OK ? "ok" : "timeout", (long long)p->e);
        }
        p->seq++;
        perf_next(p, p->e);
    }
    /* one process is killed in the middle of a set, its last record torn */
    fprintf(pp[0].f, "I P0 %llu h0 set g0:k0 P0-last %lld\nC P0 %llu o", (unsigned long long)pp[0].seq,
            (long long)pp[0].s, (unsigned long long)pp[0].seq);
    FILE *fin = pp[1].f; /* the final state, read by P1 */
    for (int k = 0; k < PERF_KEYS; k++) {
        uint64_t v = store[k];
        if (v == 0)
            fprintf(fin, "O g%d:k%d -\nR h1 P1 g%d:k%d -\n", k % 10, k, k % 10, k);
        else
            fprintf(fin, "O g%d:k%d P%d-%llu\nR h1 P1 g%d:k%d P%d-%llu\n", k % 10, k, (int)((v - 1) >> 32),
                    (unsigned long long)((v - 1) & 0xffffffffu), k % 10, k, (int)((v - 1) >> 32),
                    (unsigned long long)((v - 1) & 0xffffffffu));
    }
    for (int i = 0; i < PERF_PROCS; i++) assert_int_equal(fclose(pp[i].f), 0);
}

static double secs(const struct timespec *a, const struct timespec *b) {
    return (double)(b->tv_sec - a->tv_sec) + (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void test_million_operation_history(void **state) {
    (void)state;
    perf_generate();
    struct timespec t0, t1, t2, t3, c0, c1, c2, c3;
    tc_hist *h;
    char err[512];
    assert_int_equal(tc_hist_new(&h), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    int rc = tc_hist_load_dir(h, tmpdir, err, sizeof err);
    if (rc != 0) fail_msg("load_dir: %s", err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    tc_hist_opts o = {1000000, 0}; /* B = 1 ms */
    tc_hist_result r;
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c2);
    if (r.rule != TC_HIST_RULE_NONE) fail_msg("%s", report);
    assert_int_equal(r.ops, PERF_OPS + 1);
    assert_int_equal(r.torn_lines, 1);
    assert_int_equal(r.final_reads, PERF_KEYS);
    assert_true(r.reads > PERF_OPS / 4);
    o.strict = 1;
    o.bound_ns = 0;
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    clock_gettime(CLOCK_MONOTONIC, &t3);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c3);
    if (r.rule != TC_HIST_RULE_NONE) fail_msg("%s", report);
    print_message("%d operations (%llu reads checked, %llu writes ok, %llu indeterminate), wall (cpu) seconds: "
                  "load %.2f (%.2f), check %.2f (%.2f), strict check %.2f (%.2f)\n",
                  PERF_OPS, (unsigned long long)r.reads, (unsigned long long)r.writes_ok,
                  (unsigned long long)r.writes_indeterminate, secs(&t0, &t1), secs(&c0, &c1), secs(&t1, &t2),
                  secs(&c1, &c2), secs(&t2, &t3), secs(&c2, &c3));
    /* one stale read added at the end is found among them */
    assert_int_equal(tc_hist_add_text(h, "I Q 0 h0 set g1:k1 Q-a 1\nC Q 0 ok - 2\nI Q 1 h0 set g1:k1 Q-b 3\n"
                                         "C Q 1 ok - 4\nI Q 2 h0 get g1:k1 - 5\nC Q 2 ok Q-a 6\n",
                                      err, sizeof err),
                     0);
    o.strict = 0;
    assert_int_equal(tc_hist_check(h, &o, &r, report, sizeof report), 0);
    assert_int_equal(r.rule, TC_HIST_RULE_G7);
    assert_int_equal(r.violations, 1);
    tc_hist_free(h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g1_stale_read_same_host),
        cmocka_unit_test(test_g1_boundary_end_equal_start_is_allowed),
        cmocka_unit_test(test_g2_cross_host_within_and_beyond_bound),
        cmocka_unit_test(test_g7_own_write),
        cmocka_unit_test(test_value_from_nowhere),
        cmocka_unit_test(test_value_from_the_future),
        cmocka_unit_test(test_g5_convergence),
        cmocka_unit_test(test_strict_mode_rejects_new_old_inversion),
        cmocka_unit_test(test_strict_mode_concurrent_writes_read_back_and_forth),
        cmocka_unit_test(test_strict_mode_reports_default_rules_first),
        cmocka_unit_test(test_a_miss_is_always_allowed),
        cmocka_unit_test(test_indeterminate_write_read_late),
        cmocka_unit_test(test_concurrent_writes_read_in_either_order),
        cmocka_unit_test(test_read_overlapping_the_superseding_write),
        cmocka_unit_test(test_clear_prefix_is_projected_onto_its_keys),
        cmocka_unit_test(test_faults_in_the_report),
        cmocka_unit_test(test_report_fits_any_buffer),
        cmocka_unit_test_setup_teardown(test_loader_tolerates_torn_last_line_and_missing_completion, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_loader_refuses_malformed_records),
        cmocka_unit_test(test_check_refuses_malformed_histories),
        cmocka_unit_test_setup_teardown(test_writer_across_processes_with_a_kill, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_writer_refuses_bad_fields_and_escapes_odd_values, tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_writer_cuts_back_a_short_write, tmp_setup, tmp_teardown),
        cmocka_unit_test(test_checker_matches_the_rules_read_directly),
        cmocka_unit_test_setup_teardown(test_million_operation_history, tmp_setup, tmp_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
