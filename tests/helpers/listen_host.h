/*
 * listen_host.h -- test harness for the coherence listener: a simulated host (a coherence
 * segment of its own name, an L3 tier on a test redis-server, and this process's watchdog),
 * and waiting for a condition with a deadline.
 *
 * Segment names are unique per process and call (tc_test_host_name), and
 * tc_test_host_close(.., 1) removes the segment, so nothing is left in /dev/shm.
 */
#ifndef TC_TEST_LISTEN_HOST_H
#define TC_TEST_LISTEN_HOST_H

#include <stdint.h>

#include "coherence.h"
#include "config.h"
#include "l3_listen.h"
#include "tier.h"

typedef struct tc_test_host {
    char name[64];
    tc__opts opt;
    tc__coh *coh;
    tc__tier *l3;
    tc__l3_watch *w; /* NULL until started */
} tc_test_host;

/* A segment name unique to this process: "tclisten-<pid>-<tag>". */
void tc_test_host_name(char *out, size_t n, const char *tag);

/* Opens the host's table (shared, named name), an L3 tier on 127.0.0.1:port with prefix
 * "tctest:" and CACHE_MAX_STALENESS b_ms, and, when start, the watchdog. Returns 0 or -1 with
 * the reason on stderr. */
int tc_test_host_open(tc_test_host *h, const char *name, int port, uint64_t b_ms, int start);

/* The same with REDIS_CONNECT_TIMEOUT and REDIS_COMMAND_TIMEOUT of the caller's choosing (the
 * other opens use 300 ms for both). */
int tc_test_host_open_with(tc_test_host *h, const char *name, int port, uint64_t b_ms, uint64_t connect_ms,
                           uint64_t command_ms, int start);

/* Starts the watchdog of an opened host. 0 or -1. */
int tc_test_host_start(tc_test_host *h);

/* Stops the watchdog, closes the tier and the table; destroy: removes the segment too. */
void tc_test_host_close(tc_test_host *h, int destroy);

/* Waits until cond(arg) is true, polling every 0.2 ms, for at most ms. Returns the time it
 * took in ms, or -1 when it never became true. */
double tc_test_wait_until(int (*cond)(void *), void *arg, double ms);

/* The epoch counter of a table (GAP and ticket masked off). */
uint64_t tc_test_epoch_counter(const tc__coh *c);

#endif /* TC_TEST_LISTEN_HOST_H */
