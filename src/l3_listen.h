/*
 * l3_listen.h -- the watchdog and the host's invalidation listener (docs/COHERENCE.md 2.4,
 * 2.5, 4.4), the Redis side of coherence.
 *
 * Every process that has L3 in its tiering and coherence on runs one watchdog thread. The
 * watchdogs of a host elect one listener through the lease in the host's coherence table; the
 * winner, in its watchdog thread, holds two connections of its own to the server (a subscriber
 * self-redirected for CLIENT TRACKING in BCAST mode on the namespace, and a data connection for
 * canaries, the clear records and the fleet epoch) and turns what the server reports into
 * stripe moves, prefix clears and epoch moves in the table that every process of the host
 * checks on every hit. Anything that may have lost an invalidation sets the table's GAP, so the
 * host serves nothing from L1 and L2 until the listener is healthy again; its recovery moves
 * the epoch.
 *
 * The orchestrator's part: after opening the L3 tier and the coherence table, call
 * tc__l3_watch_start() before serving anything (it sets GAP itself when nobody listens), and
 * tc__l3_watch_stop() before closing either. A child process after fork() has no watchdog:
 * stopping an inherited watch there only frees it (nothing is written on the parent's
 * connections and the parent's lease is left alone); the child opens its own.
 *
 * Thread-safety: start and stop from the thread that owns the cache handle (as open and
 * close); stats and the test hooks from any thread.
 */
#ifndef TC_L3_LISTEN_H
#define TC_L3_LISTEN_H

#include <stddef.h>

#include "coherence.h"
#include "config.h"
#include "l3_proto.h"
#include "tier.h"

typedef struct tc__l3_watch tc__l3_watch;

/* Starts this process's watchdog for the L3 tier l3 (tc__l3_open) and the host's table coh,
 * with B = opt->max_staleness_ms. Gives the tier the table (tc__l3_attach_coh: the host's
 * nonce for clear records, the fleet epoch's stripe). When the lease has expired -- nobody
 * listens -- sets GAP before it returns. Opens no connection itself: the thread does, with
 * the tier's settings (TLS, AUTH, SELECT, timeouts). Returns 0 and *out, or TC_EINVAL /
 * TC_ENOMEM / TC_EIO (no thread or eventfd) with a message. l3 and coh must outlive the
 * watch. */
int tc__l3_watch_start(tc__tier *l3, tc__coh *coh, const tc__opts *opt, tc__l3_watch **out, char *errbuf,
                       size_t errlen);

/* Stops the watchdog: wakes the thread (it never waits long on anything once woken: every
 * wait polls the wake-up descriptor), which, when it is the listener, sets GAP and releases
 * the lease, so another process of the host takes over within B/4; joins it; closes its
 * connections; detaches the table from the tier; frees. NULL does nothing. */
void tc__l3_watch_stop(tc__l3_watch *w);

/* Fills the coherence figures of out (tc_stats: channel, listener ... epoch_misses; not
 * coherence, which is the orchestrator's). Reads atomics only. */
void tc__l3_watch_stats(const tc__l3_watch *w, tc_stats *out);

/* Test hooks. listening: 1 while this watch is the host's listener. freeze: 1 parks the thread
 * at its next look at the hook (it reads nothing, renews nothing), as a stuck listener would;
 * 0 lets it go on. */
int tc__l3_watch_listening(const tc__l3_watch *w);
void tc__l3_watch_freeze(tc__l3_watch *w, int frozen);

/* The fuzz target's entry (tests/fuzz/fuzz_l3_listen.c): applies one message m of the
 * subscriber to coh as the listener of namespace ns holding the lease's ticket would, its
 * canary named by nonce and outstanding when outstanding is 1, without connections: a change
 * of the clear records, which the listener reads on its data connection, moves the epoch
 * instead. Returns 0, TC_ENOMEM, or a positive code: 2 the listener stands down (the lease is
 * not ticket's), 3 the channel is lost (GAP set). O(keys in m). */
int tc__l3_listen_message(tc__coh *coh, const char *ns, size_t nslen, uint32_t ticket, uint64_t nonce,
                          int outstanding, const tc__reply *m);

#endif /* TC_L3_LISTEN_H */
