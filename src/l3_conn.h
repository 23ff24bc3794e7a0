/*
 * l3_conn.h -- one connection to a Redis server, and the circuit breaker in front of them.
 *
 * A connection is our own socket (non-blocking, TCP_NODELAY), optionally wrapped in OpenSSL
 * TLS, with every wait done by poll() against an absolute deadline, so no call on a
 * connection blocks past the deadline its caller gives. Opening a connection resolves the
 * host (bounded by the deadline too), connects, does the TLS handshake (CA file or system
 * store, SNI, hostname or IP check, client certificate, or no verification at all when asked),
 * then AUTH (user and password, or password alone) and SELECT, or a PING when neither is
 * needed, so a connection handed out has proved that the server answers.
 *
 * A connection is used by one thread at a time (the pool hands it out). After an error --
 * I/O error, timeout, malformed reply -- the connection is marked broken: it may hold half a
 * reply, so it is never used again.
 *
 * Fork: every connection records the fork generation it was made in (a counter a
 * pthread_atfork child handler bumps). tc__rconn_close() on a connection inherited from the
 * parent only closes the descriptor: nothing is written on a socket the parent still uses.
 */
#ifndef TC_L3_CONN_H
#define TC_L3_CONN_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"
#include "l3_proto.h"
#include "tiercache.h"

/* Everything needed to open connections: copied from tc__opts once, plus the TLS context
 * built from the certificate files. Immutable after tc__rconn_cfg_init(); shared by every
 * connection of a tier. */
typedef struct tc__rconn_cfg {
    char host[TC_STR_MAX];
    int port;
    char username[TC_STR_MAX];
    char password[TC_STR_MAX]; /* secret: never formatted into any message */
    int db;
    uint64_t connect_timeout_ms;
    uint64_t command_timeout_ms;
    int use_tls;
    int tls_skip_verify;
    char tls_server_name[TC_STR_MAX]; /* SNI and the name checked; "" = host */
    SSL_CTX *ssl_ctx;                 /* NULL without TLS */
    tc_log_fn log_fn;
    void *log_ud;
} tc__rconn_cfg;

/* Copies the Redis fields of opt and builds the TLS context (loading the CA file, client
 * certificate and key). Returns 0, or TC_ECONFIG / TC_ETLS / TC_ENOMEM with a message naming
 * the variable and OpenSSL's reason in errbuf. */
int tc__rconn_cfg_init(tc__rconn_cfg *cfg, const tc__opts *opt, char *errbuf, size_t errlen);

/* Frees the TLS context and wipes the password from memory. */
void tc__rconn_cfg_free(tc__rconn_cfg *cfg);

typedef struct tc__rconn tc__rconn;

struct tc__rconn {
    int fd;
    SSL *ssl;
    tc__proto_reader *rd;
    tc__cmdbuf out;          /* the commands of the next tc__rconn_exec() */
    unsigned fork_gen;       /* tc__fork_gen() when it was made */
    int broken;              /* 1: must not be used again */
    int checked;             /* 1: the tier checked the fleet epoch on it (l3_redis.c) */
    tc__rconn *next;         /* the pool's idle list */
    int slot;                /* index in the pool's table of open connections */
    char rbuf[16384];
};

/* Opens a connection: resolve, connect, TLS, AUTH/SELECT/PING, all before deadline_ns
 * (tc__now_ns() clock). Returns 0 and *out, or:
 *   TC_ECONN      resolution failed, refused, reset, closed by the server
 *   TC_ETIMEDOUT  the deadline passed
 *   TC_ETLS       handshake or certificate verification failed (message has OpenSSL's reason)
 *   TC_EAUTH      the server refused AUTH, or wants a password and none is configured
 *   TC_ECONFIG    the server refused SELECT of REDIS_DB
 *   TC_EPROTO     the server answered something that is not RESP
 *   TC_ENOMEM
 * with a message in errbuf that never holds the password. */
int tc__rconn_open(const tc__rconn_cfg *cfg, uint64_t deadline_ns, tc__rconn **out,
                   char *errbuf, size_t errlen);

/* Sends c->out (then clears it) and reads exactly nreplies replies into replies[], all before
 * deadline_ns. Replies live until the next exec on this connection. Error replies from the
 * server are replies, not failures. max_reply_bytes bounds what the replies may take (0:
 * the reader's default). Returns 0, or TC_ECONN / TC_ETIMEDOUT / TC_EPROTO / TC_ETLS /
 * TC_ENOMEM after which c->broken is set. */
int tc__rconn_exec(tc__rconn *c, uint64_t deadline_ns, size_t nreplies, tc__reply **replies,
                   size_t max_reply_bytes, char *errbuf, size_t errlen);

/* Sends c->out (then clears it) before deadline_ns without reading anything: for a listener,
 * whose replies and messages are read by tc__rconn_pump(). Returns 0, or an error after
 * which c->broken is set. */
int tc__rconn_send(tc__rconn *c, uint64_t deadline_ns, char *errbuf, size_t errlen);

/* Reads what the server has sent, without waiting, and feeds it to c->rd (the caller then
 * takes the replies with tc__proto_get). Returns 1 when bytes were fed (call again: there may
 * be more), 0 when there was nothing to read (*want_write is 1 when TLS needs the socket
 * writable first), or TC_ECONN (closed, reset) / TC_ETLS / TC_EPROTO / TC_ENOMEM after which
 * c->broken is set. At most sizeof c->rbuf bytes per call. */
int tc__rconn_pump(tc__rconn *c, int *want_write, char *errbuf, size_t errlen);

/* 1 when TLS holds decrypted bytes that poll() on the socket cannot see. */
int tc__rconn_pending(const tc__rconn *c);

/* Makes every wait of the calling thread on any connection (opening, sending, reading) end
 * with TC_ECONN as soon as fd is readable; -1 turns it off. For a background thread that must
 * stop promptly (the listener's wake-up eventfd). */
void tc__rconn_set_abort_fd(int fd);

/* Closes and frees. On a connection that is not broken and was made in this process, a TLS
 * close_notify is sent (best effort, never blocks); otherwise only the descriptor is closed,
 * so nothing is ever written on a socket inherited across fork(). NULL does nothing. */
void tc__rconn_close(tc__rconn *c);

/* A counter bumped in every child process right after fork(). */
unsigned tc__fork_gen(void);

/* ------------------------------------------------------------------------ */
/* Circuit breaker                                                          */
/* ------------------------------------------------------------------------ */

/*
 * closed --(threshold consecutive failures)--> open --(cool-down elapsed)--> half-open
 * half-open --(the one probe call succeeds)--> closed
 * half-open --(the probe fails)--> open, with the cool-down doubled (up to max_ms)
 *
 * The cool-down is jittered by +-20% so that many processes do not probe in step. While open
 * (and, for every caller but the probe, while half-open) calls fail at once. A success resets
 * the cool-down to min_ms. This is also the reconnect backoff: once the circuit is open,
 * reconnection is tried only by probes, at exponentially growing, jittered intervals.
 */
enum { TC__BRK_CLOSED = 0, TC__BRK_OPEN = 1, TC__BRK_HALF_OPEN = 2 };

typedef struct tc__breaker {
    _Atomic int state;
    _Atomic int fails;            /* consecutive failures while closed */
    _Atomic uint64_t open_until_ns;
    _Atomic int last_err;         /* the failure that opened it (TC_E*) */
    _Atomic uint64_t opens;       /* times it opened */
    pthread_mutex_t mu;           /* serialises transitions and the fields below */
    int threshold;
    uint64_t min_ms, max_ms, cooldown_ms;
    uint64_t rng;
} tc__breaker;

void tc__breaker_init(tc__breaker *b, int threshold, uint64_t min_ms, uint64_t max_ms);
void tc__breaker_destroy(tc__breaker *b);

/* May this call go to the server? Returns 0 (yes; *probe is 1 when this caller is the
 * half-open probe and must report its outcome), or the code to fail with at once: the
 * failure that opened the circuit when it was TC_EAUTH or TC_ETLS (a configuration problem
 * the caller should see), else TC_EUNAVAIL. Lock-free when closed. */
int tc__breaker_allow(tc__breaker *b, int *probe);

/* Reports a call that reached the server and got an answer. Lock-free when closed with no
 * recent failure. Returns 1 when this closed the circuit (was open or half-open). */
int tc__breaker_success(tc__breaker *b, int probe);

/* Reports a failure to reach the server (code is its TC_E*). fatal (a configuration problem
 * such as a refused password or certificate, which retrying cannot fix) opens the circuit at
 * once instead of after threshold failures. Returns 1 when this opened the circuit, so the
 * caller can log once and drop idle connections. */
int tc__breaker_failure(tc__breaker *b, int probe, int code, int fatal);

/* Opens the circuit now (used when the server is down at start). */
void tc__breaker_trip(tc__breaker *b, int code);

/* "closed", "open" or "half-open". */
const char *tc__breaker_state_name(int state);

#endif /* TC_L3_CONN_H */
