/*
 * listen_host.c -- simulated hosts for the listener's tests (listen_host.h).
 */
#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tiercache.h"

#include "helpers/listen_host.h"
#include "helpers/redis_server.h"

static pid_t names_owner;

/* At exit of the process that named hosts: removes every segment it named, also those of a test
 * that failed half-way (cmocka goes on with the next test). Children (fork) remove nothing. */
static void destroy_named_hosts(void) {
    if (getpid() != names_owner) return;
    char prefix[64];
    snprintf(prefix, sizeof prefix, "tclisten-%d-", (int)names_owner);
    DIR *d = opendir("/dev/shm");
    if (d == NULL) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *p = strstr(e->d_name, prefix);
        if (p != NULL && (p - e->d_name == (ptrdiff_t)strlen("tiercache.") ||
                          p - e->d_name == (ptrdiff_t)strlen("tiercache-coh.")))
            (void)tc_shared_destroy(p);
    }
    closedir(d);
}

void tc_test_host_name(char *out, size_t n, const char *tag) {
    static int seq;
    if (names_owner != getpid()) {
        names_owner = getpid();
        atexit(destroy_named_hosts);
    }
    snprintf(out, n, "tclisten-%d-%s-%d", (int)getpid(), tag, seq++);
}

int tc_test_host_start(tc_test_host *h) {
    char err[256] = "";
    if (tc__l3_watch_start(h->l3, h->coh, &h->opt, &h->w, err, sizeof err) != 0) {
        fprintf(stderr, "tc__l3_watch_start: %s\n", err);
        return -1;
    }
    return 0;
}

int tc_test_host_open(tc_test_host *h, const char *name, int port, uint64_t b_ms, int start) {
    return tc_test_host_open_with(h, name, port, b_ms, 300, 300, start);
}

int tc_test_host_open_with(tc_test_host *h, const char *name, int port, uint64_t b_ms, uint64_t connect_ms,
                           uint64_t command_ms, int start) {
    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    tc_test_l3_options(&h->opt, port);
    snprintf(h->opt.shared_name, sizeof h->opt.shared_name, "%s", name);
    h->opt.max_staleness_ms = b_ms;
    h->opt.redis_command_timeout_ms = command_ms;
    h->opt.redis_connect_timeout_ms = connect_ms;
    char err[256] = "";
    if (tc__coh_open_shared(&h->opt, &h->coh, err, sizeof err) != 0) {
        fprintf(stderr, "tc__coh_open_shared: %s\n", err);
        return -1;
    }
    if (tc__l3_open(&h->opt, &h->l3, err, sizeof err) != 0) {
        fprintf(stderr, "tc__l3_open: %s\n", err);
        tc__coh_close(h->coh);
        return -1;
    }
    return start ? tc_test_host_start(h) : 0;
}

void tc_test_host_close(tc_test_host *h, int destroy) {
    tc__l3_watch_stop(h->w);
    h->w = NULL;
    if (h->l3) h->l3->ops->close(h->l3);
    h->l3 = NULL;
    tc__coh_close(h->coh);
    h->coh = NULL;
    if (destroy) tc__coh_destroy(h->name);
}

double tc_test_wait_until(int (*cond)(void *), void *arg, double ms) {
    double t0 = tc_test_now_ms();
    for (;;) {
        if (cond(arg)) return tc_test_now_ms() - t0;
        if (tc_test_now_ms() - t0 > ms) return -1;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

uint64_t tc_test_epoch_counter(const tc__coh *c) {
    return atomic_load(c->epoch) & TC__COH_COUNTER_MASK;
}
