/*
 * l3_pool.h -- a pool of connections to one Redis server, with its circuit breaker.
 *
 * Threads take a connection for one request and give it back, so concurrent requests run on
 * separate connections instead of queueing behind one. The pool grows lazily up to its size
 * (REDIS_POOL_SIZE; 0 = one per CPU, at least 2); when every connection is busy a caller waits
 * for one until its deadline. Idle connections are reused most-recently-released first, so a
 * lightly loaded process keeps using one warm connection.
 *
 * Fork: the pool remembers the fork generation it last ran in. The first use in a child
 * (acquire, release, drop, destroy) re-initialises the locks and discards every inherited
 * connection by closing its descriptor only -- nothing is sent on a socket the parent owns --
 * and the child then opens connections of its own.
 *
 * Lock order: pool->mu, then nothing (connections are opened and closed outside it). The
 * breaker's mutex is never held together with pool->mu.
 */
#ifndef TC_L3_POOL_H
#define TC_L3_POOL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "l3_conn.h"

typedef struct tc__rpool {
    const tc__rconn_cfg *cfg;
    tc__breaker brk;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    tc__rconn *idle;       /* stack of idle connections */
    tc__rconn **all;       /* every open connection by slot (NULL: free slot) */
    int max;               /* pool size */
    int nopen;             /* connections open or being opened (<= max) */
    int nidle;
    _Atomic unsigned fork_gen;
    _Atomic int resetting;
    _Atomic uint64_t connects;         /* successful opens */
    _Atomic uint64_t connect_failures; /* failed opens */
    _Atomic uint64_t drops;            /* connections closed because they broke */
    _Atomic uint64_t reconnects;       /* opens that replaced a dropped connection */
} tc__rpool;

/* Prepares a pool of size connections (0: max(2, number of CPUs)) for the server of cfg (kept
 * by pointer: it must outlive the pool). Opens nothing. Returns 0 or TC_ENOMEM. */
int tc__rpool_init(tc__rpool *p, const tc__rconn_cfg *cfg, int size);

/* Closes every connection and frees the pool. No call may be running or follow. */
void tc__rpool_destroy(tc__rpool *p);

/* Takes a connection: an idle one, else a new one when the pool is not full (opened with
 * connect_deadline_ns), else waits for one to be released until wait_deadline_ns. Returns 0
 * and *out, or TC_ETIMEDOUT (every connection stayed busy; *open_failed = 0), or the error of
 * opening a connection (*open_failed = 1, message in errbuf). *fresh is 1 when *out was
 * opened by this call. Thread-safe. */
int tc__rpool_acquire(tc__rpool *p, uint64_t wait_deadline_ns, uint64_t connect_deadline_ns,
                      tc__rconn **out, int *fresh, int *open_failed, char *errbuf, size_t errlen);

/* Gives a connection back; a broken one is closed. Thread-safe. */
void tc__rpool_release(tc__rpool *p, tc__rconn *c);

/* Closes every idle connection (the server is believed gone). Thread-safe. */
void tc__rpool_drop_idle(tc__rpool *p);

/* Connections open now, and the pool size. Thread-safe (a racy snapshot). */
int tc__rpool_open_count(tc__rpool *p);

#endif /* TC_L3_POOL_H */
