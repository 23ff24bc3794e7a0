/*
 * l3_read.h -- how the L3 tier reads a value, with no I/O: the commands of the request, and
 * what their replies mean, checked against a server that lies or a namespace that holds
 * values this cache did not write.
 *
 * A value is read by a transaction, one round trip:
 *
 *   MULTI
 *   STRLEN k                 the value's real size, or WRONGTYPE for a key of another type
 *   GETRANGE k 0 <limit-1>   at most CACHE_MAX_VALUE_BYTES of it ("" when k is absent)
 *   PTTL k                   -2 when k is absent (this is what tells an absent key from an
 *                            empty value), -1 when it never expires, else the ms left
 *   EXEC
 *
 * (a TTL-only lookup asks GETRANGE for the first TC__L3_HEAD_READ bytes only, enough for the
 * value header of l3_format.h; mget repeats the three commands per key inside one MULTI). The transaction makes the three answers describe one state of the key: without it a
 * write by another client between GETRANGE and STRLEN could pass a truncated value off as a
 * whole one, and a key created between GETRANGE and PTTL would read as an empty value. So at
 * most the limit crosses the wire for one value, whatever another client stored, and a value
 * over the limit or a key of another type is an answer about that key -- a miss -- never a
 * protocol error that would blame the server.
 *
 * Everything here is a pure function of replies: l3_redis.c uses it on the wire, the fuzz
 * target (tests/fuzz/fuzz_l3_reply.c) on bytes of its choosing.
 */
#ifndef TC_L3_READ_H
#define TC_L3_READ_H

#include <stddef.h>
#include <stdint.h>

#include "l3_proto.h"

/* Commands queued per key: STRLEN, GETRANGE, PTTL. */
#define TC__L3_READ_CMDS 3u

/* How much of a value a read fetches, with GETRANGE's end index (limit - 1) formatted once,
 * not per read. */
typedef struct tc__l3_limit {
    size_t bytes;  /* a whole read: CACHE_MAX_VALUE_BYTES + the value header; a head read:
                    * TC__L3_HEAD_READ; >= 1 */
    char end[24];  /* bytes - 1 in decimal */
    size_t endlen;
} tc__l3_limit;

/* Fills *lim for a limit of bytes (0 is taken as 1). */
void tc__l3_limit_init(tc__l3_limit *lim, size_t bytes);

/* Appends the commands that read one key (namespaced already), without MULTI and EXEC:
 * STRLEN, GETRANGE 0 limit-1, PTTL. Returns 0 or TC_ENOMEM. */
int tc__l3_read_cmds(tc__cmdbuf *b, const char *key, size_t klen, const tc__l3_limit *lim);

/* Appends MULTI or EXEC. */
int tc__l3_multi(tc__cmdbuf *b);
int tc__l3_exec(tc__cmdbuf *b);

/* Checks the replies of a transaction of nq queued commands: rep[0] answers MULTI, rep[1..nq]
 * the queued commands, rep[nq + 1] EXEC (nq + 2 replies in all). Returns
 *   0         *results is EXEC's array of nq results;
 *   1         the server refused instead of running the transaction (MULTI refused, say by
 *             an ACL, or a command refused when queued -- NOPERM, OOM, LOADING -- and EXEC
 *             then EXECABORT): *err is the most telling error reply;
 *   TC_EPROTO a shape no server sends for this request (a lying or broken server). */
int tc__l3_tx_results(tc__reply *const *rep, size_t nq, tc__reply *const **results, const tc__reply **err);

/* What one key's results say. */
typedef enum {
    TC__L3_HIT = 0,     /* data/len hold the value (a whole read) or its first bytes (a head
                         * read), total its length, ttl_ms its remaining TTL */
    TC__L3_ABSENT,      /* no such key (or it expires right now) */
    TC__L3_OVERSIZED,   /* a string longer than the limit: size is its length */
    TC__L3_WRONGTYPE,   /* a key of another type (a list, a hash ...) */
    TC__L3_ERRREPLY     /* the server answered an error for this key: err */
} tc__l3_kind;

typedef struct tc__l3_value {
    tc__l3_kind kind;
    const char *data;    /* HIT: the value, in the reply (valid as long as the replies are) */
    size_t len;          /* HIT: the bytes at data (<= limit) */
    size_t total;        /* HIT: the value's length (== len for a whole read) */
    int64_t ttl_ms;      /* HIT: > 0, or TC_TTL_NONE */
    long long size;      /* OVERSIZED: the length STRLEN reported */
    const tc__reply *err; /* ERRREPLY: the error reply */
} tc__l3_value;

/* Interprets the results res[0..TC__L3_READ_CMDS-1] of one key read with a limit of limit
 * bytes. whole: the read wants the whole value, and a longer one is TC__L3_OVERSIZED; else it
 * is a head read, and a longer value is a hit with its first limit bytes. Returns 0 and *out,
 * or TC_EPROTO when the results cannot all be true of one key at one instant (a STRLEN that
 * disagrees with the bytes GETRANGE returned, more bytes than asked for, a negative size, a
 * type no such command answers): a hit is never made of such replies. O(1); nothing is
 * copied. */
int tc__l3_read_value(tc__reply *const *res, size_t limit, int whole, tc__l3_value *out);

#endif /* TC_L3_READ_H */
