/*
 * l3_pool.c -- connection pool and fork handling for the Redis tier.
 *
 * A mutex-protected stack of idle connections plus a table of every open connection (so a
 * child after fork() can find and discard the connections that were busy in the parent).
 * Connections are opened and closed outside the mutex: a slow connect never blocks threads
 * that only want an idle connection. A caller that finds the pool full waits on a condition
 * variable (monotonic clock) until its deadline.
 *
 * The breaker opens after TC__BRK_THRESHOLD consecutive failures, for a cool-down that starts
 * at TC__BRK_MIN_MS and doubles on each failed probe up to TC__BRK_MAX_MS.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "l3_pool.h"
#include "tier.h"
#include "util.h"

#define TC__BRK_THRESHOLD 5
#define TC__BRK_MIN_MS 500
#define TC__BRK_MAX_MS 30000

static void init_locks(tc__rpool *p) {
    pthread_mutex_init(&p->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cv, &ca);
    pthread_condattr_destroy(&ca);
}

int tc__rpool_init(tc__rpool *p, const tc__rconn_cfg *cfg, int size) {
    memset(p, 0, sizeof *p);
    if (size <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        size = n > 2 ? (int)n : 2;
    }
    p->all = calloc((size_t)size, sizeof *p->all);
    if (p->all == NULL) return TC_ENOMEM;
    p->cfg = cfg;
    p->max = size;
    init_locks(p);
    tc__breaker_init(&p->brk, TC__BRK_THRESHOLD, TC__BRK_MIN_MS, TC__BRK_MAX_MS);
    atomic_store(&p->fork_gen, tc__fork_gen());
    return 0;
}

/* In a child after fork(): only the forking thread exists, locks may have been held by
 * threads that are gone, and every connection belongs to the parent. One thread re-creates
 * the locks and discards the connections (closing descriptors only; tc__rconn_close sees the
 * generation change and sends nothing); the others wait for it. */
static void check_fork(tc__rpool *p) {
    unsigned g = tc__fork_gen();
    if (atomic_load_explicit(&p->fork_gen, memory_order_acquire) == g) return;
    int expected = 0;
    if (atomic_compare_exchange_strong(&p->resetting, &expected, 1)) {
        if (atomic_load(&p->fork_gen) != g) {
            init_locks(p);
            pthread_mutex_init(&p->brk.mu, NULL);
            for (int i = 0; i < p->max; i++) {
                tc__rconn_close(p->all[i]);
                p->all[i] = NULL;
            }
            p->idle = NULL;
            p->nidle = 0;
            p->nopen = 0;
            atomic_store(&p->fork_gen, g);
        }
        atomic_store(&p->resetting, 0);
    } else {
        while (atomic_load(&p->resetting)) sched_yield();
    }
}

void tc__rpool_destroy(tc__rpool *p) {
    if (p->all == NULL) return;
    check_fork(p);
    for (int i = 0; i < p->max; i++) tc__rconn_close(p->all[i]);
    free(p->all);
    p->all = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    tc__breaker_destroy(&p->brk);
}

/* Takes a free slot for a connection about to be opened. Caller holds mu. */
static int take_slot_locked(tc__rpool *p) {
    for (int i = 0; i < p->max; i++)
        if (p->all[i] == NULL) return i;
    return -1;
}

int tc__rpool_acquire(tc__rpool *p, uint64_t wait_deadline_ns, uint64_t connect_deadline_ns,
                      tc__rconn **out, int *fresh, int *open_failed, char *errbuf, size_t errlen) {
    *out = NULL;
    *fresh = 0;
    *open_failed = 0;
    check_fork(p);
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (p->idle != NULL) {
            tc__rconn *c = p->idle;
            p->idle = c->next;
            c->next = NULL;
            p->nidle--;
            pthread_mutex_unlock(&p->mu);
            *out = c;
            return 0;
        }
        if (p->nopen < p->max) {
            p->nopen++; /* reserve; the slot is filled once the connection exists */
            pthread_mutex_unlock(&p->mu);
            tc__rconn *c = NULL;
            int rc = tc__rconn_open(p->cfg, connect_deadline_ns, &c, errbuf, errlen);
            pthread_mutex_lock(&p->mu);
            if (rc != 0) {
                p->nopen--;
                pthread_cond_signal(&p->cv); /* a waiter may try to open in our place */
                pthread_mutex_unlock(&p->mu);
                atomic_fetch_add_explicit(&p->connect_failures, 1, memory_order_relaxed);
                *open_failed = 1;
                return rc;
            }
            c->slot = take_slot_locked(p);
            p->all[c->slot] = c;
            if (atomic_load(&p->drops) > atomic_load(&p->reconnects)) atomic_fetch_add(&p->reconnects, 1);
            pthread_mutex_unlock(&p->mu);
            atomic_fetch_add_explicit(&p->connects, 1, memory_order_relaxed);
            *out = c;
            *fresh = 1;
            return 0;
        }
        uint64_t now = tc__now_ns();
        if (now >= wait_deadline_ns) {
            pthread_mutex_unlock(&p->mu);
            return tc__errf(errbuf, errlen, TC_ETIMEDOUT,
                            "redis: all %d pooled connections stayed busy (REDIS_POOL_SIZE)", p->max);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec + (wait_deadline_ns - now);
        ts.tv_sec = (time_t)(abs / 1000000000u);
        ts.tv_nsec = (long)(abs % 1000000000u);
        pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    }
}

void tc__rpool_release(tc__rpool *p, tc__rconn *c) {
    if (c == NULL) return;
    check_fork(p);
    if (c->fork_gen != atomic_load(&p->fork_gen)) return; /* discarded by the fork reset */
    pthread_mutex_lock(&p->mu);
    if (c->broken) {
        atomic_fetch_add(&p->drops, 1);
        p->all[c->slot] = NULL;
        p->nopen--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
        tc__rconn_close(c);
        return;
    }
    c->next = p->idle;
    p->idle = c;
    p->nidle++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void tc__rpool_drop_idle(tc__rpool *p) {
    check_fork(p);
    pthread_mutex_lock(&p->mu);
    tc__rconn *list = p->idle;
    for (tc__rconn *c = list; c != NULL; c = c->next) {
        atomic_fetch_add(&p->drops, 1);
        p->all[c->slot] = NULL;
        p->nopen--;
    }
    p->idle = NULL;
    p->nidle = 0;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    while (list != NULL) {
        tc__rconn *next = list->next;
        list->broken = 1; /* the server is believed gone: no close_notify */
        tc__rconn_close(list);
        list = next;
    }
}

int tc__rpool_open_count(tc__rpool *p) {
    check_fork(p);
    pthread_mutex_lock(&p->mu);
    int n = p->nopen;
    pthread_mutex_unlock(&p->mu);
    return n;
}
