/*
 * redis_server.h -- test harness: a real redis-server on a free 127.0.0.1 port.
 *
 * tc_test_redis_start() writes a configuration (loopback only, no persistence, the caller's
 * extra lines) into a fresh temporary directory, starts `redis-server` with it and waits
 * until the server logs that it accepts connections. The server is the test's child and is
 * sent SIGKILL by the kernel if the thread that started it dies (PR_SET_PDEATHSIG), so a
 * crashed or timed-out test never leaves a server behind. Start servers from the test's main
 * thread. tc_test_redis_stop() stops it and removes the directory; a test that fails before
 * its stop has its servers killed and directories removed when the process exits (atexit).
 *
 * Faults: tc_test_redis_signal() sends SIGSTOP / SIGCONT / SIGKILL (a SIGKILL is waited
 * for); tc_test_redis_restart() starts the server again on the same port and configuration.
 *
 * TLS: tc_test_make_certs() generates, with the openssl command, a CA, a server certificate
 * for DNS:localhost and IP:127.0.0.1, a client certificate, and a second, unrelated CA.
 *
 * tc_test_raw_cmd() is a minimal blocking client (plain TCP, hiredis's reader) so tests can
 * write and read keys without going through the code under test.
 *
 * tc_test_fake_server_start() runs a loopback server in a thread that answers every read
 * with canned bytes: for protocol-error tests.
 */
#ifndef TC_TEST_REDIS_SERVER_H
#define TC_TEST_REDIS_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>

#include "config.h"

typedef struct tc_test_redis {
    pid_t pid;            /* 0 when not running */
    int port;             /* the port clients use: the TLS port when tls */
    int tls;
    char dir[256];        /* temporary directory: config, log, certificates */
    char conf[512];       /* path of the configuration file */
    char log[512];        /* path of the server's log */
} tc_test_redis;

/* Paths of generated certificates (inside a directory). */
typedef struct tc_test_certs {
    char ca[512], ca_key[512];
    char server_crt[512], server_key[512];
    char client_crt[512], client_key[512];
    char other_ca[512];
} tc_test_certs;

/* Returns 1 when redis-server is on PATH. */
int tc_test_have_redis(void);

/* A test group's setup: tc_test_redis_start() after checking that redis-server is installed
 * (-1 with the package to install on stderr when it is not). */
int tc_test_redis_setup(tc_test_redis *r, const char *extra);

/* Starts a plain server. extra: configuration lines appended (may be NULL). Returns 0, or -1
 * with the reason printed to stderr. */
int tc_test_redis_start(tc_test_redis *r, const char *extra);

/* Starts a plain server on the given port (for "the server comes up later" tests). */
int tc_test_redis_start_port(tc_test_redis *r, int port, const char *extra);

/* Starts a TLS-only server (port 0, tls-port free) with the certificates of c. auth_clients
 * is "no", "yes" or "optional". */
int tc_test_redis_start_tls(tc_test_redis *r, const tc_test_certs *c, const char *auth_clients,
                            const char *extra);

/* Starts the server again on the same port with the same configuration (after a SIGKILL or
 * stop). Returns 0 or -1. */
int tc_test_redis_restart(tc_test_redis *r);

/* Sends sig; SIGKILL and SIGTERM are waited for (the port is free on return). */
void tc_test_redis_signal(tc_test_redis *r, int sig);

/* Stops the server (SIGCONT, SIGTERM, then SIGKILL after 5 s) and removes its directory. */
void tc_test_redis_stop(tc_test_redis *r);

/* Generates certificates into dir (which must exist). Returns 0 or -1. */
int tc_test_make_certs(const char *dir, tc_test_certs *out);

/* Fills opt (tc__opts_init, then) for a cache whose only tier is L3 on 127.0.0.1:port.
 * Timeouts are 1 s, key prefix "tctest:", no default TTL, values up to 8 MiB. */
void tc_test_l3_options(tc__opts *opt, int port);

/* Keys the host's listener of cache c has been told of so far (tc_stats), and a wait until
 * that count reaches at_least and then stays still for 100 ms (1), or timeout_ms passed (0;
 * 1 if at_least was reached but the count kept moving). Other messages (the canary, an earlier
 * test's late invalidations) count too, hence the quiet period. Another process's write reaches
 * this host's L1 through the listener: a test that expects a fill after such a write to stay
 * in L1 waits for its invalidation first, or the fill may rightly be dropped by it. */
uint64_t tc_test_invalidations(tc_cache *c);
int tc_test_wait_invalidations(tc_cache *c, uint64_t at_least, int timeout_ms);

/* Runs one command on a new plain connection to port and returns the reply (free with
 * freeReplyObject), or NULL on failure. password may be NULL. */
redisReply *tc_test_raw_cmd(int port, const char *password, int argc, const char **argv,
                            const size_t *lens);

/* Same, for the common case of NUL-terminated arguments. */
redisReply *tc_test_raw(int port, const char *password, const char *a0, const char *a1,
                        const char *a2, const char *a3);

/* A fake server: every connection gets first_reply in answer to its first read, then
 * next_reply to every later read (NULL: say nothing) -- except the fleet epoch check a new
 * connection makes after its handshake (INFO server + GET of the epoch key), answered as a
 * server whose epoch key is in place (run_id 0123...ef, epoch 0xe1). */
typedef struct tc_test_fake {
    int listen_fd;
    int port;
    pthread_t thread;
    const char *first;
    size_t first_len;
    const char *next;
    size_t next_len;
    _Atomic int stop;
    _Atomic int connections; /* accepted */
    _Atomic int closed;      /* closed by the client */
} tc_test_fake;

int tc_test_fake_server_start(tc_test_fake *f, const char *first, size_t first_len,
                              const char *next, size_t next_len);
void tc_test_fake_server_stop(tc_test_fake *f);

/* A free loopback TCP port (bound and released: it may be taken again by someone else). */
int tc_test_free_port(void);

/* Milliseconds on the monotonic clock. */
double tc_test_now_ms(void);

/* Sleeps ms milliseconds, resumed after a signal. */
void tc_test_sleep_ms(int ms);

#endif /* TC_TEST_REDIS_SERVER_H */
