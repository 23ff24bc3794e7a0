/*
 * l3_redis.h -- what the L3 tier (l3_redis.c) lets its own listener (l3_listen.c) use. The
 * tier itself is opened with tc__l3_open() (tier.h) and used through its tc__tier_ops; these
 * functions take that tier and nothing else.
 *
 * Thread-safety: every function may be called from any thread while the tier is open.
 */
#ifndef TC_L3_REDIS_H
#define TC_L3_REDIS_H

#include <stddef.h>
#include <stdint.h>

#include "coherence.h"
#include "l3_conn.h"
#include "tier.h"

/* 1 when t is a tier of tc__l3_open() (not a wrapper with L3's id, as tests build). */
int tc__l3_is(const tc__tier *t);

/* The tier's connection settings (TLS, AUTH, SELECT, timeouts), for connections of its own. */
const tc__rconn_cfg *tc__l3_conn_cfg(tc__tier *t);

/* REDIS_KEY_PREFIX, and its length. */
const char *tc__l3_namespace(tc__tier *t, size_t *len);

/* Gives the tier the host's coherence table (NULL takes it away; done before and after the
 * tier is used by other threads): its nonce then names the host in clear records, and the
 * stripe of the fleet epoch key (its invalidation word), moved by the listener when the key changes, makes the
 * tier check the epoch again on its next call. */
void tc__l3_attach_coh(tc__tier *t, tc__coh *coh);

/* The nonce clear records of this tier carry (the table's once attached, else random). */
uint64_t tc__l3_host_nonce(tc__tier *t);

/* Checks the fleet epoch on connection c (docs/COHERENCE.md 3): INFO server's run_id and the
 * epoch key; when the key is missing or names another run_id, a one-key compare-and-set
 * script replaces it with this run_id and a new random epoch. The tier then writes under, and
 * accepts only values of, that epoch. Returns 0, or a failure of c (TC_ECONN, TC_ETIMEDOUT,
 * TC_EPROTO ...; *answered 0) or the server's refusal (TC_EPERM for an ACL without EVAL ...;
 * *answered 1). At most five round trips, each before deadline_ns. */
int tc__l3_fleet_check(tc__tier *t, tc__rconn *c, uint64_t deadline_ns, int *answered, char *errbuf,
                       size_t errlen);

/* The fleet epoch the tier holds now (0: not checked yet). */
uint64_t tc__l3_fleet_epoch(tc__tier *t);

/* Reads of a value of ours written under another fleet epoch (misses), by this tier. */
uint64_t tc__l3_epoch_misses(tc__tier *t);

/* 1 when the tier wrote or deleted the key of this hash in the last within_ms; it keeps
 * the last 256 only while TC__COH_OFF_ECHO is set (test-only). */
int tc__l3_wrote_recently(tc__tier *t, uint64_t hash, uint64_t within_ms);

#endif /* TC_L3_REDIS_H */
