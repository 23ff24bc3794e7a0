/*
 * l3_conn.c -- a connection to Redis over our own socket, optionally TLS, and the circuit
 * breaker the pool puts in front of the server.
 *
 * Every blocking step waits in poll() for an absolute deadline on the monotonic clock:
 * name resolution (on a helper thread, so a dead DNS server cannot stall past the deadline),
 * connect(), the TLS handshake, writing a request and reading its replies. Sockets are
 * non-blocking, close-on-exec, TCP_NODELAY (a request is one write; Nagle would only add
 * delay) and SO_KEEPALIVE.
 *
 * TLS is OpenSSL with a BIO of our own over the socket: it sends with MSG_NOSIGNAL, so a
 * server that vanishes mid-write gives EPIPE instead of killing the process with SIGPIPE
 * (OpenSSL's socket BIO uses write()). Verification is on unless REDIS_TLS_SKIP_VERIFY: the
 * chain against REDIS_TLS_CA_FILE (or the system store) and the name REDIS_TLS_SERVER_NAME
 * (default: the host) as a DNS name or, for an address, as an IP SAN. SNI carries the name
 * unless it is an address (RFC 6066 forbids addresses in SNI).
 *
 * A host name is resolved by getaddrinfo() on a short-lived detached thread that the caller
 * waits for until its deadline; an address is used as it is, with no thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "l3_conn.h"
#include "tier.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* Fork generation                                                          */
/* ------------------------------------------------------------------------ */

static _Atomic unsigned tc__fork_counter;
static pthread_once_t tc__fork_once = PTHREAD_ONCE_INIT;

static void on_fork_child(void) { atomic_fetch_add(&tc__fork_counter, 1); }
static void fork_register(void) { pthread_atfork(NULL, NULL, on_fork_child); }

unsigned tc__fork_gen(void) {
    pthread_once(&tc__fork_once, fork_register);
    return atomic_load_explicit(&tc__fork_counter, memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Deadlines and waiting                                                    */
/* ------------------------------------------------------------------------ */

/* The descriptor that, once readable, ends every wait of this thread (tc__rconn_set_abort_fd);
 * -1 on every thread but a listener's. */
static _Thread_local int tl_abort_fd = -1;

void tc__rconn_set_abort_fd(int fd) { tl_abort_fd = fd; }

/* Waits until fd is ready for events or the deadline passes. Returns 0 (ready, including
 * error/hang-up conditions, which the following I/O call reports), TC_ETIMEDOUT, or TC_ECONN
 * when this thread's abort descriptor became readable. */
static int wait_fd(int fd, short events, uint64_t deadline_ns) {
    for (;;) {
        uint64_t now = tc__now_ns();
        if (now >= deadline_ns) return TC_ETIMEDOUT;
        uint64_t left = deadline_ns - now;
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = tl_abort_fd, .events = POLLIN}};
        int n = ppoll(p, tl_abort_fd >= 0 ? 2 : 1, &ts, NULL);
        if (n > 0 && tl_abort_fd >= 0 && p[1].revents) return TC_ECONN;
        if (n > 0) return 0;
        if (n < 0 && errno != EINTR) return TC_ECONN;
    }
}

static int is_ip_literal(const char *s) {
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, s, tmp) == 1 || inet_pton(AF_INET6, s, tmp) == 1;
}

/* ------------------------------------------------------------------------ */
/* Name resolution                                                          */
/* ------------------------------------------------------------------------ */

/* A lookup shared by the caller, who may give up at its deadline, and a detached thread
 * running getaddrinfo(), which cannot be interrupted: whoever lets go last frees it. */
typedef struct tc__lookup {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int refs;
    int done;
    int gai_rc;
    struct addrinfo *res;
    char name[TC_STR_MAX];
    char service[16];
} tc__lookup;

static void lookup_unref(tc__lookup *l) {
    pthread_mutex_lock(&l->mu);
    int last = --l->refs == 0;
    pthread_mutex_unlock(&l->mu);
    if (!last) return;
    if (l->res) freeaddrinfo(l->res);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l);
}

static void *lookup_main(void *arg) {
    tc__lookup *l = arg;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
    int rc = getaddrinfo(l->name, l->service, &hints, &res);
    pthread_mutex_lock(&l->mu);
    l->gai_rc = rc;
    l->res = rc == 0 ? res : NULL;
    l->done = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    lookup_unref(l);
    return NULL;
}

/* Resolves host:port into *res (freed with freeaddrinfo). An address needs no lookup; a name
 * is looked up by a short-lived detached thread, and waited for until the deadline (a dead
 * DNS server cannot hold the caller past it; the thread finishes on its own later). */
static int resolve(const tc__rconn_cfg *cfg, uint64_t deadline_ns, struct addrinfo **res,
                   char *errbuf, size_t errlen) {
    char service[16];
    snprintf(service, sizeof service, "%d", cfg->port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
    int g = getaddrinfo(cfg->host, service, &hints, res);
    if (g == 0) return 0;
    if (g != EAI_NONAME)
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: cannot resolve '%s': %s", cfg->host,
                        gai_strerror(g));

    tc__lookup *l = calloc(1, sizeof *l);
    if (l == NULL) return TC_ENOMEM;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(l->name, sizeof l->name, "%s", cfg->host);
    memcpy(l->service, service, sizeof service);
    l->refs = 2;
    /* the thread runs with every signal blocked: the application's handlers stay on its own
     * threads */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t th;
    int prc = pthread_create(&th, &attr, lookup_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (prc != 0) {
        l->refs = 1;
        lookup_unref(l);
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: cannot resolve '%s': no thread for the lookup",
                        cfg->host);
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = tc__now_ns();
    uint64_t abs = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec +
                   (deadline_ns > now ? deadline_ns - now : 0);
    ts.tv_sec = (time_t)(abs / 1000000000u);
    ts.tv_nsec = (long)(abs % 1000000000u);
    pthread_mutex_lock(&l->mu);
    while (!l->done)
        if (pthread_cond_timedwait(&l->cv, &l->mu, &ts) == ETIMEDOUT) break;
    int done = l->done;
    g = l->gai_rc;
    if (done && g == 0) {
        *res = l->res;
        l->res = NULL;
    }
    pthread_mutex_unlock(&l->mu);
    lookup_unref(l);
    if (!done)
        return tc__errf(errbuf, errlen, TC_ETIMEDOUT,
                        "redis: resolving '%s' timed out (REDIS_CONNECT_TIMEOUT)", cfg->host);
    if (g != 0)
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: cannot resolve '%s': %s", cfg->host,
                        gai_strerror(g));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* TLS: a BIO that sends with MSG_NOSIGNAL                                  */
/* ------------------------------------------------------------------------ */

static BIO_METHOD *tc__bio_meth;
static pthread_once_t tc__bio_once = PTHREAD_ONCE_INIT;

static int bio_fd(BIO *b) { return (int)(intptr_t)BIO_get_data(b); }

static int bio_write(BIO *b, const char *buf, int len) {
    BIO_clear_retry_flags(b);
    ssize_t n = send(bio_fd(b), buf, (size_t)len, MSG_NOSIGNAL);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_write(b);
    return (int)n;
}

static int bio_read(BIO *b, char *buf, int len) {
    BIO_clear_retry_flags(b);
    ssize_t n = recv(bio_fd(b), buf, (size_t)len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        BIO_set_retry_read(b);
    return (int)n;
}

static int bio_puts(BIO *b, const char *s) { return bio_write(b, s, (int)strlen(s)); }

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
    (void)b, (void)num, (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_create(BIO *b) {
    BIO_set_init(b, 1);
    return 1;
}

static void bio_meth_make(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tiercache socket");
    if (m == NULL) return;
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_puts(m, bio_puts);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    tc__bio_meth = m;
}

/* The first queued OpenSSL error as text, or fallback. Clears the thread's queue. */
static const char *ssl_reason(char *buf, size_t len, const char *fallback) {
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, len, "%s", fallback);
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/* The passphrase of the client key, for OpenSSL's PEM reader. Without a callback of ours,
 * OpenSSL asks on the controlling terminal ("Enter PEM pass phrase:") and waits for an
 * answer for ever: tc_open would block and the library would print. This callback answers
 * with REDIS_TLS_KEY_PASSWORD or refuses, never prompts, and notes that it was asked, so the
 * error can say the key is encrypted. With no passphrase attached (after loading, for the
 * life of the context) it refuses. */
typedef struct pem_pass {
    const char *pw; /* REDIS_TLS_KEY_PASSWORD, "" when unset */
    int asked;
} pem_pass;

static int pem_passphrase(char *buf, int size, int rwflag, void *ud) {
    (void)rwflag;
    pem_pass *p = ud;
    if (p == NULL) return -1;
    p->asked = 1;
    size_t n = strlen(p->pw);
    if (n == 0 || size < 0 || n > (size_t)size) return -1;
    memcpy(buf, p->pw, n);
    return (int)n;
}

/* Loads the client certificate chain and key into ctx, with pem_passphrase() in place of
 * OpenSSL's prompt. Returns 0 or TC_ECONFIG with a message naming the file and the fix. */
static int load_client_cert(SSL_CTX *ctx, const tc__opts *opt, char *errbuf, size_t errlen) {
    char why[256];
    pem_pass pp = {opt->redis_tls_key_password, 0};
    SSL_CTX_set_default_passwd_cb(ctx, pem_passphrase);
    SSL_CTX_set_default_passwd_cb_userdata(ctx, &pp);
    int rc = 0;
    if (SSL_CTX_use_certificate_chain_file(ctx, opt->redis_tls_cert_file) != 1) {
        rc = tc__errf(errbuf, errlen, TC_ECONFIG, "REDIS_TLS_CERT_FILE=%s: cannot load the client certificate: %s",
                      opt->redis_tls_cert_file, ssl_reason(why, sizeof why, "unreadable"));
    } else {
        pp.asked = 0; /* from here on, a request for the passphrase is the key's */
        if (SSL_CTX_use_PrivateKey_file(ctx, opt->redis_tls_key_file, SSL_FILETYPE_PEM) != 1) {
            ssl_reason(why, sizeof why, "unreadable");
            if (pp.asked && pp.pw[0] == '\0')
                rc = tc__errf(errbuf, errlen, TC_ECONFIG,
                              "REDIS_TLS_KEY_FILE=%s: the key is encrypted (protected by a passphrase) and "
                              "REDIS_TLS_KEY_PASSWORD is not set: set REDIS_TLS_KEY_PASSWORD to its "
                              "passphrase, or give an unencrypted copy (openssl pkey -in <key> -out <copy>) "
                              "readable only by this service",
                              opt->redis_tls_key_file);
            else if (pp.asked)
                rc = tc__errf(errbuf, errlen, TC_ECONFIG,
                              "REDIS_TLS_KEY_FILE=%s: cannot decrypt the key with REDIS_TLS_KEY_PASSWORD "
                              "(wrong passphrase?): %s", opt->redis_tls_key_file, why);
            else
                rc = tc__errf(errbuf, errlen, TC_ECONFIG, "REDIS_TLS_KEY_FILE=%s: cannot load the client key: %s",
                              opt->redis_tls_key_file, why);
        } else if (SSL_CTX_check_private_key(ctx) != 1) {
            rc = tc__errf(errbuf, errlen, TC_ECONFIG,
                          "REDIS_TLS_KEY_FILE=%s: the key does not match REDIS_TLS_CERT_FILE: %s",
                          opt->redis_tls_key_file, ssl_reason(why, sizeof why, "mismatch"));
        }
    }
    /* the callback stays (nothing on this context may ever prompt); the passphrase goes */
    SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
    return rc;
}

int tc__rconn_cfg_init(tc__rconn_cfg *cfg, const tc__opts *opt, char *errbuf, size_t errlen) {
    memset(cfg, 0, sizeof *cfg);
    (void)tc__fork_gen();
    /* opt's ranges and relations were checked by the configuration (tc__opts_validate): a
     * host is set, without brackets around an IPv6 address */
    memcpy(cfg->host, opt->redis_host, sizeof cfg->host);
    cfg->host[sizeof cfg->host - 1] = '\0';
    cfg->port = opt->redis_port;
    memcpy(cfg->username, opt->redis_username, sizeof cfg->username);
    cfg->username[sizeof cfg->username - 1] = '\0';
    memcpy(cfg->password, opt->redis_password, sizeof cfg->password);
    cfg->password[sizeof cfg->password - 1] = '\0';
    cfg->db = opt->redis_db;
    cfg->connect_timeout_ms = opt->redis_connect_timeout_ms;
    cfg->command_timeout_ms = opt->redis_command_timeout_ms;
    cfg->use_tls = opt->redis_use_tls != 0;
    cfg->tls_skip_verify = opt->redis_tls_skip_verify != 0;
    snprintf(cfg->tls_server_name, sizeof cfg->tls_server_name, "%s",
             opt->redis_tls_server_name[0] ? opt->redis_tls_server_name : cfg->host);
    cfg->log_fn = opt->log_fn;
    cfg->log_ud = opt->log_userdata;
    if (opt->redis_tls_key_password[0] != '\0' && opt->redis_tls_key_file[0] == '\0')
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "REDIS_TLS_KEY_PASSWORD is set but REDIS_TLS_KEY_FILE is not: the passphrase is for an "
                        "encrypted client key");
    if (!cfg->use_tls) return 0;

    pthread_once(&tc__bio_once, bio_meth_make);
    if (tc__bio_meth == NULL) return TC_ENOMEM;
    char why[256];
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return tc__errf(errbuf, errlen, TC_ETLS, "REDIS_USE_TLS: cannot create a TLS context: %s",
                        ssl_reason(why, sizeof why, "unknown"));
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_default_passwd_cb(ctx, pem_passphrase); /* never OpenSSL's terminal prompt */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    int rc = 0;
    if (cfg->tls_skip_verify) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    } else {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (opt->redis_tls_ca_file[0]) {
            if (SSL_CTX_load_verify_locations(ctx, opt->redis_tls_ca_file, NULL) != 1)
                rc = tc__errf(errbuf, errlen, TC_ECONFIG,
                              "REDIS_TLS_CA_FILE=%s: cannot load the CA certificates: %s",
                              opt->redis_tls_ca_file, ssl_reason(why, sizeof why, "unreadable"));
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
            rc = tc__errf(errbuf, errlen, TC_ETLS, "REDIS_USE_TLS: cannot load the system CA store: %s",
                          ssl_reason(why, sizeof why, "unknown"));
        }
    }
    if (rc == 0 && (opt->redis_tls_cert_file[0] != '\0') != (opt->redis_tls_key_file[0] != '\0'))
        rc = tc__errf(errbuf, errlen, TC_ECONFIG,
                      "REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE must be set together (mutual TLS)");
    if (rc == 0 && opt->redis_tls_cert_file[0]) rc = load_client_cert(ctx, opt, errbuf, errlen);
    if (rc != 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    cfg->ssl_ctx = ctx;
    return 0;
}

void tc__rconn_cfg_free(tc__rconn_cfg *cfg) {
    if (cfg->ssl_ctx) SSL_CTX_free(cfg->ssl_ctx);
    cfg->ssl_ctx = NULL;
    explicit_bzero(cfg->password, sizeof cfg->password);
}

/* ------------------------------------------------------------------------ */
/* Connection I/O                                                           */
/* ------------------------------------------------------------------------ */

static int fail(tc__rconn *c, int code) {
    c->broken = 1;
    return code;
}

/* Maps an SSL_get_error() outcome of a read or write into a wait or an error. Returns 1 to
 * wait for readability, 2 for writability, or a negative code with the message set. */
static int ssl_io_outcome(tc__rconn *c, int ret, int err_no, char *errbuf, size_t errlen) {
    char why[256];
    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ: return 1;
    case SSL_ERROR_WANT_WRITE: return 2;
    case SSL_ERROR_ZERO_RETURN:
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: server closed the TLS connection");
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() != 0)
            return tc__errf(errbuf, errlen, TC_ETLS, "redis: TLS error: %s",
                            ssl_reason(why, sizeof why, "unknown"));
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: connection lost: %s",
                        ret == 0 || err_no == 0 ? "closed by the server" : strerror(err_no));
    default:
        return tc__errf(errbuf, errlen, TC_ETLS, "redis: TLS error: %s",
                        ssl_reason(why, sizeof why, "unknown"));
    }
}

static int write_all(tc__rconn *c, const char *p, size_t len, uint64_t deadline_ns, char *errbuf,
                     size_t errlen) {
    while (len > 0) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            int chunk = len > (1u << 30) ? (1 << 30) : (int)len;
            int n = SSL_write(c->ssl, p, chunk);
            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            int o = ssl_io_outcome(c, n, errno, errbuf, errlen);
            if (o < 0) return o;
            int w = wait_fd(c->fd, o == 1 ? POLLIN : POLLOUT, deadline_ns);
            if (w) return tc__errf(errbuf, errlen, w, "redis: timed out sending a request");
            continue;
        }
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int w = wait_fd(c->fd, POLLOUT, deadline_ns);
            if (w) return tc__errf(errbuf, errlen, w, "redis: timed out sending a request");
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        return tc__errf(errbuf, errlen, TC_ECONN, "redis: connection lost while sending: %s",
                        n < 0 ? strerror(errno) : "closed");
    }
    return 0;
}

/* Reads what is available (waiting for it first when first is set, since right after a
 * request the answer cannot be there yet) and feeds it to the reader: tc__rconn_pump() until
 * it has fed something, waiting in between for what it needs. 0 or a code with the message. */
static int read_some(tc__rconn *c, int first, uint64_t deadline_ns, char *errbuf, size_t errlen) {
    if (c->ssl == NULL && first) {
        int w = wait_fd(c->fd, POLLIN, deadline_ns);
        if (w) return tc__errf(errbuf, errlen, w, "redis: timed out waiting for a reply");
    }
    for (;;) {
        int want_write;
        int p = tc__rconn_pump(c, &want_write, errbuf, errlen);
        if (p != 0) return p < 0 ? p : 0;
        int w = wait_fd(c->fd, want_write ? POLLOUT : POLLIN, deadline_ns);
        if (w) return tc__errf(errbuf, errlen, w, "redis: timed out waiting for a reply");
    }
}

int tc__rconn_send(tc__rconn *c, uint64_t deadline_ns, char *errbuf, size_t errlen) {
    if (c->broken) return tc__errf(errbuf, errlen, TC_ECONN, "redis: connection is broken");
    tc__proto_set_secret(c->rd, c->out.secret);
    int rc = write_all(c, c->out.data, c->out.len, deadline_ns, errbuf, errlen);
    tc__cmdbuf_clear(&c->out, 64 * 1024);
    return rc ? fail(c, rc) : 0;
}

/* Gives the reader the n bytes just read: 1, or a code (the connection is then broken). */
static int feed(tc__rconn *c, size_t n, char *errbuf, size_t errlen) {
    int rc = tc__proto_feed(c->rd, c->rbuf, n);
    if (rc == TC_EPROTO) tc__errf(errbuf, errlen, rc, "redis: bad reply: %s", tc__proto_error(c->rd));
    return rc ? fail(c, rc) : 1;
}

int tc__rconn_pump(tc__rconn *c, int *want_write, char *errbuf, size_t errlen) {
    *want_write = 0;
    if (c->broken) return tc__errf(errbuf, errlen, TC_ECONN, "redis: connection is broken");
    for (;;) {
        if (c->ssl != NULL) {
            ERR_clear_error();
            int n = SSL_read(c->ssl, c->rbuf, (int)sizeof c->rbuf);
            if (n > 0) return feed(c, (size_t)n, errbuf, errlen);
            int o = ssl_io_outcome(c, n, errno, errbuf, errlen);
            if (o < 0) return fail(c, o);
            *want_write = o == 2;
            return 0;
        }
        ssize_t n = recv(c->fd, c->rbuf, sizeof c->rbuf, 0);
        if (n > 0) return feed(c, (size_t)n, errbuf, errlen);
        if (n == 0) return fail(c, tc__errf(errbuf, errlen, TC_ECONN, "redis: server closed the connection"));
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return fail(c, tc__errf(errbuf, errlen, TC_ECONN, "redis: connection lost: %s", strerror(errno)));
    }
}

int tc__rconn_pending(const tc__rconn *c) { return c->ssl != NULL && SSL_pending(c->ssl) > 0; }

int tc__rconn_exec(tc__rconn *c, uint64_t deadline_ns, size_t nreplies, tc__reply **replies,
                   size_t max_reply_bytes, char *errbuf, size_t errlen) {
    if (c->broken) return tc__errf(errbuf, errlen, TC_ECONN, "redis: connection is broken");
    tc__proto_reset_replies(c->rd);
    tc__proto_set_max_pending(c->rd, max_reply_bytes);
    tc__proto_set_secret(c->rd, c->out.secret); /* its replies are never shown as sent */
    if (tc__proto_buffered(c->rd) != 0) {
        tc__cmdbuf_clear(&c->out, 64 * 1024);
        return fail(c, tc__errf(errbuf, errlen, TC_EPROTO,
                                "redis: unexpected bytes from the server before a request"));
    }
    int rc = write_all(c, c->out.data, c->out.len, deadline_ns, errbuf, errlen);
    tc__cmdbuf_clear(&c->out, 64 * 1024);
    if (rc) return fail(c, rc);
    size_t got = 0;
    int first = 1;
    while (got < nreplies) {
        tc__reply *r;
        int g = tc__proto_get(c->rd, &r);
        if (g == 1) {
            replies[got++] = r;
            continue;
        }
        if (g < 0) {
            if (g == TC_EPROTO)
                tc__errf(errbuf, errlen, g, "redis: bad reply: %s", tc__proto_error(c->rd));
            return fail(c, g);
        }
        rc = read_some(c, first, deadline_ns, errbuf, errlen);
        first = 0;
        if (rc) return fail(c, rc);
    }
    /* Bytes beyond the replies we asked for mean the stream is out of step. */
    if (tc__proto_buffered(c->rd) != 0)
        return fail(c, tc__errf(errbuf, errlen, TC_EPROTO, "redis: more replies than requests"));
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

static int connect_addr(const struct addrinfo *ai, uint64_t deadline_ns, int *fd_out, int *err_no) {
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err_no = errno;
        return TC_ECONN;
    }
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno != EINPROGRESS) {
        *err_no = errno;
        close(fd);
        return TC_ECONN;
    }
    if (rc != 0) {
        int w = wait_fd(fd, POLLOUT, deadline_ns);
        if (w) {
            close(fd);
            return w;
        }
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) soerr = errno;
        if (soerr != 0) {
            *err_no = soerr;
            close(fd);
            return TC_ECONN;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    *fd_out = fd;
    return 0;
}

static int tls_handshake(tc__rconn *c, const tc__rconn_cfg *cfg, uint64_t deadline_ns,
                         char *errbuf, size_t errlen) {
    char why[256];
    ERR_clear_error();
    c->ssl = SSL_new(cfg->ssl_ctx);
    BIO *bio = c->ssl ? BIO_new(tc__bio_meth) : NULL;
    if (bio == NULL) return TC_ENOMEM;
    BIO_set_data(bio, (void *)(intptr_t)c->fd);
    SSL_set_bio(c->ssl, bio, bio);
    const char *name = cfg->tls_server_name;
    int ip = is_ip_literal(name);
    if (!ip) SSL_set_tlsext_host_name(c->ssl, name);
    if (!cfg->tls_skip_verify) {
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), name)
                    : SSL_set1_host(c->ssl, name);
        if (ok != 1)
            return tc__errf(errbuf, errlen, TC_ETLS, "redis: TLS: cannot check the name '%s': %s",
                            name, ssl_reason(why, sizeof why, "invalid name"));
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    SSL_set_connect_state(c->ssl);
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(c->ssl);
        if (r == 1) return 0;
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            int w = wait_fd(c->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_ns);
            if (w)
                return tc__errf(errbuf, errlen, w,
                                "redis: TLS handshake with %s:%d timed out (REDIS_CONNECT_TIMEOUT=%llums); "
                                "is it a TLS port?", cfg->host, cfg->port,
                                (unsigned long long)cfg->connect_timeout_ms);
            continue;
        }
        long vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
            return tc__errf(errbuf, errlen, TC_ETLS,
                            "redis: TLS certificate verification failed: %s (server name '%s'; "
                            "check REDIS_TLS_CA_FILE and REDIS_TLS_SERVER_NAME)",
                            X509_verify_cert_error_string(vr), name);
        int err_no = errno;
        if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
            return tc__errf(errbuf, errlen, TC_ETLS, "redis: TLS handshake failed: connection %s",
                            r == 0 || err_no == 0 ? "closed by the server" : strerror(err_no));
        return tc__errf(errbuf, errlen, TC_ETLS, "redis: TLS handshake failed: %s",
                        ssl_reason(why, sizeof why, "unknown reason"));
    }
}

/* AUTH / SELECT / PING, pipelined in one round trip. */
static int handshake(tc__rconn *c, const tc__rconn_cfg *cfg, uint64_t deadline_ns, char *errbuf,
                     size_t errlen) {
    int nrep = 0, auth = 0, sel = 0, rc;
    if (cfg->password[0]) {
        /* AUTH holds the password: every copy of the request is wiped, and no reply to it is
         * ever shown as the server sent it (tc__reply_text) */
        c->out.secret = 1;
        if (cfg->username[0])
            rc = tc__cmdbuf_cmd(&c->out, 3, "AUTH", (size_t)4, cfg->username, strlen(cfg->username),
                                cfg->password, strlen(cfg->password));
        else
            rc = tc__cmdbuf_cmd(&c->out, 2, "AUTH", (size_t)4, cfg->password, strlen(cfg->password));
        if (rc) return rc;
        auth = 1;
        nrep++;
    }
    if (cfg->db != 0) {
        char db[16];
        int n = snprintf(db, sizeof db, "%d", cfg->db);
        if ((rc = tc__cmdbuf_cmd(&c->out, 2, "SELECT", (size_t)6, db, (size_t)n))) return rc;
        sel = 1;
        nrep++;
    }
    if (nrep == 0) {
        if ((rc = tc__cmdbuf_cmd(&c->out, 1, "PING", (size_t)4))) return rc;
        nrep++;
    }
    tc__reply *rep[2];
    rc = tc__rconn_exec(c, deadline_ns, (size_t)nrep, rep, 1 << 20, errbuf, errlen);
    tc__cmdbuf_free(&c->out); /* wiped: it held the password */
    if (rc) return rc;
    int i = 0;
    char text[256];
    if (auth) {
        tc__reply *r = rep[i++];
        if (r->type == TC__R_ERROR) {
            int unknown = strncmp(r->str, "ERR unknown command", 19) == 0;
            return tc__errf(errbuf, errlen, TC_EAUTH,
                            "redis: authentication as user '%s' failed: %s (%s)",
                            cfg->username[0] ? cfg->username : "default", tc__reply_text(r, text, sizeof text),
                            unknown ? "the server does not accept AUTH: is the command renamed or disabled?"
                                    : "check REDIS_USERNAME and REDIS_PASSWORD");
        }
    }
    for (; i < nrep; i++) {
        tc__reply *r = rep[i];
        if (r->type != TC__R_ERROR) continue;
        if (tc__reply_is_error_code(r, "NOAUTH"))
            return tc__errf(errbuf, errlen, TC_EAUTH,
                            "redis: the server requires authentication and REDIS_PASSWORD is not set");
        if (sel && i == nrep - 1)
            return tc__errf(errbuf, errlen, TC_ECONFIG, "redis: REDIS_DB=%d refused by the server: %s",
                            cfg->db, tc__reply_text(r, text, sizeof text));
        return tc__errf(errbuf, errlen, TC_EPROTO, "redis: handshake refused: %s",
                        tc__reply_text(r, text, sizeof text));
    }
    return 0;
}

int tc__rconn_open(const tc__rconn_cfg *cfg, uint64_t deadline_ns, tc__rconn **out, char *errbuf,
                   size_t errlen) {
    *out = NULL;
    tc__rconn *c = calloc(1, sizeof *c);
    if (c == NULL) return TC_ENOMEM;
    c->fd = -1;
    c->fork_gen = tc__fork_gen();
    c->rd = tc__proto_reader_new(NULL);
    if (c->rd == NULL) {
        free(c);
        return TC_ENOMEM;
    }
    struct addrinfo *res = NULL;
    int rc = resolve(cfg, deadline_ns, &res, errbuf, errlen);
    if (rc == 0) {
        int err_no = 0;
        rc = TC_ECONN;
        for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
            rc = connect_addr(ai, deadline_ns, &c->fd, &err_no);
            if (rc == 0 || rc == TC_ETIMEDOUT) break;
        }
        freeaddrinfo(res);
        if (rc == TC_ETIMEDOUT)
            tc__errf(errbuf, errlen, rc, "redis: connecting to %s:%d timed out (REDIS_CONNECT_TIMEOUT=%llums)",
                     cfg->host, cfg->port, (unsigned long long)cfg->connect_timeout_ms);
        else if (rc != 0)
            tc__errf(errbuf, errlen, rc, "redis: cannot connect to %s:%d: %s", cfg->host, cfg->port,
                     err_no ? strerror(err_no) : "no address");
    }
    if (rc == 0 && cfg->use_tls) rc = tls_handshake(c, cfg, deadline_ns, errbuf, errlen);
    if (rc == 0) {
        rc = handshake(c, cfg, deadline_ns, errbuf, errlen);
        if (rc == TC_ETIMEDOUT)
            tc__errf(errbuf, errlen, rc,
                     "redis: %s:%d accepted the connection but did not answer within "
                     "REDIS_CONNECT_TIMEOUT=%llums", cfg->host, cfg->port,
                     (unsigned long long)cfg->connect_timeout_ms);
    }
    if (rc != 0) {
        c->broken = 1;
        tc__rconn_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void tc__rconn_close(tc__rconn *c) {
    if (c == NULL) return;
    int ours = c->fork_gen == tc__fork_gen();
    if (c->ssl != NULL) {
        /* close_notify only on a healthy connection of this process; SSL_free writes nothing */
        if (ours && !c->broken) {
            SSL_set_quiet_shutdown(c->ssl, 0);
            ERR_clear_error();
            (void)SSL_shutdown(c->ssl);
            ERR_clear_error();
        }
        SSL_free(c->ssl);
    }
    if (c->fd >= 0) close(c->fd);
    tc__proto_reader_free(c->rd);
    tc__cmdbuf_free(&c->out);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Circuit breaker                                                          */
/* ------------------------------------------------------------------------ */

void tc__breaker_init(tc__breaker *b, int threshold, uint64_t min_ms, uint64_t max_ms) {
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    b->threshold = threshold > 0 ? threshold : 1;
    b->min_ms = min_ms;
    b->max_ms = max_ms > min_ms ? max_ms : min_ms;
    b->cooldown_ms = min_ms;
    b->rng = tc__now_ns() ^ (uint64_t)(uintptr_t)b ^ ((uint64_t)getpid() << 32);
}

void tc__breaker_destroy(tc__breaker *b) { pthread_mutex_destroy(&b->mu); }

/* The cool-down jittered by +-20%, in ns. Caller holds mu. */
static uint64_t jittered_ns_locked(tc__breaker *b, uint64_t ms) {
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    uint64_t ns = ms * 1000000u;
    uint64_t span = ns / 5; /* 20% */
    return ns - span + (span ? b->rng % (2 * span + 1) : 0);
}

static void open_locked(tc__breaker *b, int code) {
    atomic_store(&b->last_err, code);
    atomic_store(&b->open_until_ns, tc__now_ns() + jittered_ns_locked(b, b->cooldown_ms));
    atomic_store(&b->state, TC__BRK_OPEN);
    atomic_fetch_add(&b->opens, 1);
}

static int fast_fail_code(tc__breaker *b) {
    int e = atomic_load(&b->last_err);
    return e == TC_EAUTH || e == TC_ETLS || e == TC_ECONFIG ? e : TC_EUNAVAIL;
}

int tc__breaker_allow(tc__breaker *b, int *probe) {
    *probe = 0;
    int s = atomic_load_explicit(&b->state, memory_order_acquire);
    if (s == TC__BRK_CLOSED) return 0;
    uint64_t now = tc__now_ns();
    if (now < atomic_load(&b->open_until_ns)) return fast_fail_code(b);
    /* Cool-down over (or a half-open probe outstanding for longer than its grace, which only
     * a caller that never reported could cause): this caller probes. */
    pthread_mutex_lock(&b->mu);
    int ok = 0;
    s = atomic_load(&b->state);
    if (s != TC__BRK_CLOSED && now >= atomic_load(&b->open_until_ns)) {
        atomic_store(&b->state, TC__BRK_HALF_OPEN);
        /* grace for the probe: the longest a call can take, with room */
        atomic_store(&b->open_until_ns, now + (b->max_ms + 60000) * 1000000u);
        *probe = 1;
        ok = 1;
    } else if (s == TC__BRK_CLOSED) {
        ok = 1;
    }
    pthread_mutex_unlock(&b->mu);
    return ok ? 0 : fast_fail_code(b);
}

int tc__breaker_success(tc__breaker *b, int probe) {
    if (!probe && atomic_load_explicit(&b->state, memory_order_relaxed) == TC__BRK_CLOSED &&
        atomic_load_explicit(&b->fails, memory_order_relaxed) == 0)
        return 0;
    pthread_mutex_lock(&b->mu);
    int closed_now = atomic_load(&b->state) != TC__BRK_CLOSED;
    atomic_store(&b->fails, 0);
    b->cooldown_ms = b->min_ms;
    atomic_store(&b->state, TC__BRK_CLOSED);
    pthread_mutex_unlock(&b->mu);
    return closed_now;
}

int tc__breaker_failure(tc__breaker *b, int probe, int code, int fatal) {
    int opened = 0;
    pthread_mutex_lock(&b->mu);
    int s = atomic_load(&b->state);
    if (probe) {
        if (s != TC__BRK_OPEN) {
            b->cooldown_ms = b->cooldown_ms * 2 > b->max_ms ? b->max_ms : b->cooldown_ms * 2;
            open_locked(b, code);
            opened = 1;
        }
    } else if (s == TC__BRK_CLOSED) {
        if (atomic_fetch_add(&b->fails, 1) + 1 >= b->threshold || fatal) {
            atomic_store(&b->fails, 0);
            open_locked(b, code);
            opened = 1;
        }
    }
    pthread_mutex_unlock(&b->mu);
    return opened;
}

void tc__breaker_trip(tc__breaker *b, int code) {
    pthread_mutex_lock(&b->mu);
    atomic_store(&b->fails, 0);
    open_locked(b, code);
    pthread_mutex_unlock(&b->mu);
}

const char *tc__breaker_state_name(int state) {
    switch (state) {
    case TC__BRK_CLOSED: return "closed";
    case TC__BRK_OPEN: return "open";
    default: return "half-open";
    }
}
