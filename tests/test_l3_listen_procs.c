/*
 * test_l3_listen_procs.c -- the election of a host's listener across processes: processes that
 * share a coherence segment elect exactly one listener, which keeps the lease without
 * flapping; when it is stopped (SIGSTOP) or killed (SIGKILL) another process sets GAP and takes
 * over within B; the stopped one, resumed, stands down and leaves the new listener's channel
 * alone. The test process watches the segment itself (it opens the table, runs no watchdog).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/listen_host.h"
#include "helpers/redis_server.h"
#include "util.h"

#define B_MS 400

static tc_test_redis srv;

static int setup(void **state) {
    (void)state;
    return tc_test_redis_setup(&srv, NULL);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    return 0;
}

/* A process of the host: opens the table, the tier and its watchdog, says so on ready, and
 * runs until the test writes a byte to hold (or kills it). A byte, not the pipe's end: the
 * members forked later hold copies of it. */
typedef struct member {
    pid_t pid;
    int hold; /* the test's end */
} member;

static member spawn(const char *name) {
    int ready[2], hold[2];
    assert_int_equal(pipe(ready), 0);
    assert_int_equal(pipe(hold), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(ready[0]);
        close(hold[1]);
        tc_test_host h;
        char ok = tc_test_host_open(&h, name, srv.port, B_MS, 1) == 0 ? 'y' : 'n';
        if (write(ready[1], &ok, 1) != 1 || ok != 'y') _exit(1);
        char c;
        (void)read(hold[0], &c, 1);
        tc_test_host_close(&h, 0);
        _exit(0); /* not exit(): the test's atexit handlers are the parent's */
    }
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    assert_int_equal(read(ready[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    close(ready[0]);
    member m = {pid, hold[1]};
    return m;
}

static void finish(member *m) {
    char q = 'q';
    if (write(m->hold, &q, 1) != 1) kill(m->pid, SIGKILL);
    close(m->hold);
    int st;
    waitpid(m->pid, &st, 0);
}

typedef struct view {
    tc__coh *coh;
    pid_t want; /* 0: anyone */
    pid_t not;
} view;

static int healthy_with(void *arg) {
    view *v = arg;
    tc__coh_counters c;
    tc__coh_counters_get(v->coh, &c);
    return !c.gap && c.listener_pid != 0 && (v->want == 0 || c.listener_pid == (uint32_t)v->want) &&
           c.listener_pid != (uint32_t)v->not;
}

static int gap(void *arg) { return tc__coh_gap(((view *)arg)->coh); }

static tc__coh *observe(const char *name) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    snprintf(o.shared_name, sizeof o.shared_name, "%s", name);
    tc__coh *c = NULL;
    char err[256];
    assert_int_equal(tc__coh_open_shared(&o, &c, err, sizeof err), 0);
    return c;
}

static uint32_t listener_of(tc__coh *c) {
    tc__coh_counters k;
    tc__coh_counters_get(c, &k);
    return k.listener_pid;
}

/* For span ms: the listener stays who it is, GAP stays clear, nobody takes the lease. */
static void assert_steady(tc__coh *c, uint32_t pid, int span_ms) {
    tc__coh_counters k0, k;
    tc__coh_counters_get(c, &k0);
    for (int i = 0; i < span_ms / 5; i++) {
        tc_test_sleep_ms(5);
        tc__coh_counters_get(c, &k);
        assert_int_equal(k.listener_pid, pid);
        assert_false(k.gap);
        assert_int_equal(k.takeovers, k0.takeovers);
    }
}

/* The server's subscribers (listeners' connections) now. */
static int subscribers(void) {
    redisReply *r = tc_test_raw(srv.port, NULL, "CLIENT", "LIST", "TYPE", "pubsub");
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    int n = 0;
    for (const char *p = r->str; (p = strstr(p, "id=")) != NULL; p += 3) n++;
    freeReplyObject(r);
    return n;
}

/* ------------------------------------------------------------------------ */

static void test_processes_of_a_host_elect_one_listener_that_keeps_the_lease(void **state) {
    (void)state;
    char name[64];
    tc_test_host_name(name, sizeof name, "elect");
    tc__coh *c = observe(name);
    member m[3] = {spawn(name), spawn(name), spawn(name)};
    view v = {c, 0, 0};
    assert_true(tc_test_wait_until(healthy_with, &v, 5000) >= 0);
    uint32_t l = listener_of(c);
    assert_true(l == (uint32_t)m[0].pid || l == (uint32_t)m[1].pid || l == (uint32_t)m[2].pid);
    tc__coh_counters k;
    tc__coh_counters_get(c, &k);
    assert_int_equal(k.takeovers, 1);
    assert_steady(c, l, 3 * B_MS);
    assert_int_equal(subscribers(), 1); /* one per host, not per process */
    for (int i = 0; i < 3; i++) finish(&m[i]);
    tc__coh_close(c);
    tc__coh_destroy(name);
}

/* Two processes of a host; the listener gets sig (SIGSTOP or SIGKILL): GAP within B, and the
 * other process listens (within B/4 of the lease running out). */
typedef struct takeover {
    char name[64];
    tc__coh *c;
    member m[2];
    pid_t listener, other;
} takeover;

static void takeover_start(takeover *t, const char *tag, int sig, const char *what) {
    tc_test_host_name(t->name, sizeof t->name, tag);
    t->c = observe(t->name);
    t->m[0] = spawn(t->name);
    t->m[1] = spawn(t->name);
    view v = {t->c, 0, 0};
    assert_true(tc_test_wait_until(healthy_with, &v, 5000) >= 0);
    t->listener = (pid_t)listener_of(t->c);
    t->other = t->listener == t->m[0].pid ? t->m[1].pid : t->m[0].pid;
    kill(t->listener, sig);
    double t0 = tc_test_now_ms();
    assert_true(tc_test_wait_until(gap, &v, 2 * B_MS) >= 0);
    double gap_ms = tc_test_now_ms() - t0;
    view other = {t->c, t->other, 0};
    assert_true(tc_test_wait_until(healthy_with, &other, 5000) >= 0);
    printf("listener process %s: GAP after %.1f ms, pid %d listens %.1f ms after the signal (B = %d)\n", what, gap_ms,
           (int)t->other, tc_test_now_ms() - t0, B_MS);
    assert_true(gap_ms <= B_MS);
}

static void takeover_end(takeover *t) {
    for (int i = 0; i < 2; i++) finish(&t->m[i]);
    tc__coh_close(t->c);
    tc__coh_destroy(t->name);
}

static void test_stopped_listener_process_is_replaced_within_bound_and_stands_down(void **state) {
    (void)state;
    takeover t;
    takeover_start(&t, "sigstop", SIGSTOP, "stopped");
    /* resumed: it finds the lease gone and stands down -- it closes its subscriber, so the
     * server has one left -- and the new listener's channel stays up */
    kill(t.listener, SIGCONT);
    assert_steady(t.c, (uint32_t)t.other, B_MS);
    assert_int_equal(subscribers(), 1);
    assert_steady(t.c, (uint32_t)t.other, 2 * B_MS);
    takeover_end(&t);
}

static void test_killed_listener_process_is_replaced_within_bound(void **state) {
    (void)state;
    takeover t;
    takeover_start(&t, "sigkill", SIGKILL, "killed");
    assert_steady(t.c, (uint32_t)t.other, B_MS);
    takeover_end(&t);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* finish() of a member that was killed */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_processes_of_a_host_elect_one_listener_that_keeps_the_lease),
        cmocka_unit_test(test_stopped_listener_process_is_replaced_within_bound_and_stands_down),
        cmocka_unit_test(test_killed_listener_process_is_replaced_within_bound),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
