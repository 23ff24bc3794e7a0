/*
 * l3_listen.c -- the watchdog thread of a process and, in the process that holds the host's
 * lease, the invalidation listener (l3_listen.h; docs/COHERENCE.md 2.4, 2.5, 4.4).
 *
 * The thread's life, B being CACHE_MAX_STALENESS:
 *
 *   watchdog:  every B/4, if the lease's deadline has passed (no listener, or a stopped, dead
 *              or stuck one): set GAP, try to take the lease; the winner listens.
 *   listener:  connect (subscriber + data connection, the tier's TLS/AUTH/SELECT), check the
 *              fleet epoch, CLIENT ID, CLIENT TRACKING on REDIRECT <id> BCAST PREFIX <ns>,
 *              CLIENT NO-EVICT on, SUBSCRIBE __redis__:invalidate; on the confirmation note
 *              where the clear records stand and recover (epoch move, GAP cleared) -- then
 *              loop: read messages, apply them; every B/4 a canary SET on the data
 *              connection, whose invalidation must come back within B/2; each confirmed
 *              canary renews the lease for B/2 (and ends a GAP someone else set meanwhile).
 *   loss:      an error or EOF on either connection, a missed canary, a message the reader
 *              cannot take: GAP, close, reconnect after 100 ms doubling to B.
 *   stand down: the lease is no longer this ticket's (the process was stopped or the thread
 *              stuck long enough for another process to take over): close, touch nothing,
 *              back to the watchdog.
 *
 * The canary goes every B/4 rather than B/2 (the design's first figure): the lease is renewed
 * only by a confirmed canary and held for B/2, so a period of B/2 left no slack and let the
 * lease lapse between two canaries whenever the second came back a little later than the
 * first; with B/4 a stalled channel is still seen within B/4 + B/2 and a frozen listener within
 * B/2 + B/4.
 *
 * Waits: every wait is a poll on a deadline that is at most B/4 away while listening, and on
 * the wake-up eventfd, which tc__l3_watch_stop() makes readable; connection code waits on it
 * too (tc__rconn_set_abort_fd), so a stop ends a connect or a request at once.
 *
 * Messages (RESP2, hiredis's reader in l3_proto.c): the subscriber is read by our own loop
 * (tc__rconn_pump), never by tc__rconn_exec, whose request/reply framing refuses unsolicited
 * bytes. The reader's arena is rewound after each complete message, before the next
 * tc__proto_get(), never while a message is half parsed (hiredis keeps pointers into it).
 * Its budget for one message is TC__LISTEN_MAX_MESSAGE; a message over it, or bytes it cannot
 * parse, move the epoch and count as a loss (the reader is in error and the connection goes).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "l3_conn.h"
#include "l3_format.h"
#include "l3_listen.h"
#include "l3_proto.h"
#include "l3_redis.h"
#include "util.h"

#define TC__LISTEN_MAX_MESSAGE ((size_t)32 << 20) /* Redis's own pubsub output limit */
#define TC__LISTEN_BACKOFF_MIN_MS 100
#define TC__LISTEN_CHANNEL "__redis__:invalidate"

/* Why a listening session ended. */
enum { R_STOP = 1, R_STANDDOWN, R_LOST };

struct tc__l3_watch {
    tc__tier *l3;
    tc__coh *coh;
    const tc__rconn_cfg *cfg;
    char ns[TC_STR_MAX];
    size_t nslen;
    uint64_t b_ms;     /* B */
    uint64_t req_ms;   /* the bound of one request of the listener: min(REDIS_COMMAND_TIMEOUT, B/4) */
    pthread_t thread;
    int wake_fd;
    unsigned fork_gen;
    _Atomic int stop;
    _Atomic int frozen;         /* test hook */
    _Atomic int listening;
    _Atomic uint64_t applied;   /* stripes this listener moved */

    /* the listener's state: the thread's own */
    tc__rconn *sub, *data;
    uint32_t ticket;
    uint64_t nonce;             /* this listener's: names its canary */
    uint64_t canary_seq;
    char canary_key[TC_STR_MAX + 64]; /* namespaced */
    size_t canary_len;
    int outstanding;            /* a canary was sent and has not come back */
    uint64_t canary_sent_ns;
    char *clear_pos;            /* the last clear record seen (a copy), or NULL: the list was empty */
    size_t clear_pos_len;
    int down_logged;            /* this outage was logged (the next ones are DEBUG until healthy) */
    char err[320];
};

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

static int stopping(const tc__l3_watch *w) { return atomic_load_explicit(&w->stop, memory_order_acquire); }

/* Waits for fd (or, with fd < 0, only for time) until deadline_ns or a wake-up. Returns 1 when
 * fd is ready, 0 at the deadline, -1 when woken (stop). */
static int wait_for(tc__l3_watch *w, int fd, short events, uint64_t deadline_ns) {
    for (;;) {
        if (stopping(w)) return -1;
        uint64_t now = tc__now_ns();
        if (now >= deadline_ns) return 0;
        uint64_t left = deadline_ns - now;
        struct timespec ts = {(time_t)(left / 1000000000u), (long)(left % 1000000000u)};
        struct pollfd p[2] = {{.fd = w->wake_fd, .events = POLLIN}, {.fd = fd, .events = events}};
        int n = ppoll(p, fd >= 0 ? 2 : 1, &ts, NULL);
        if (n < 0 && errno != EINTR) return -1;
        if (n > 0 && p[0].revents) return -1;
        if (n > 0 && fd >= 0 && p[1].revents) return 1;
    }
}

static void sleep_ms(tc__l3_watch *w, uint64_t ms) { (void)wait_for(w, -1, 0, tc__now_ns() + ms * 1000000u); }

/* The test hook: parks while frozen (reading nothing, renewing nothing). */
static void maybe_park(tc__l3_watch *w) {
    while (atomic_load(&w->frozen) && !stopping(w)) sleep_ms(w, 5);
}

/* ------------------------------------------------------------------------ */
/* The lease                                                                */
/* ------------------------------------------------------------------------ */

/* Keeps the lease for what the next step may take plus B/2. 0 when it is not ours any more. */
static int hold_for(tc__l3_watch *w, uint64_t step_ms) {
    return tc__coh_lease_renew(w->coh, w->ticket, tc__now_ms(), step_ms + w->b_ms / 2);
}

static int held(const tc__l3_watch *w) { return tc__coh_lease_held(w->coh, w->ticket); }

/* ------------------------------------------------------------------------ */
/* Logging                                                                  */
/* ------------------------------------------------------------------------ */

static void wlog(const tc__l3_watch *w, tc_log_level level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void wlog(const tc__l3_watch *w, tc_log_level level, const char *fmt, ...) {
    if (w->cfg->log_fn == NULL) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    w->cfg->log_fn(w->cfg->log_ud, level, msg);
}

static const char *bare(const char *msg) { return strncmp(msg, "redis: ", 7) == 0 ? msg + 7 : msg; }

/* A loss of the channel: GAP (while the lease is ours: a replaced listener must not darken the
 * new one's healthy channel); a WARN once per outage, DEBUG for the attempts after it. */
static int lost(tc__l3_watch *w, const char *why) {
    if (!held(w)) return R_STANDDOWN;
    tc__coh_gap_set(w->coh);
    if (!w->down_logged)
        wlog(w, TC_LOG_WARN,
             "redis: invalidation channel down (%s); L1 and L2 serve nothing until it is back", why);
    else
        wlog(w, TC_LOG_DEBUG, "redis: invalidation channel still down (%s)", why);
    w->down_logged = 1;
    return R_LOST;
}

/* ------------------------------------------------------------------------ */
/* The subscriber's messages                                                */
/* ------------------------------------------------------------------------ */

/* The next complete reply on the subscriber, reading as needed until deadline_ns. Returns 1
 * and *r, 0 at the deadline, -1 when woken, or the connection's error. */
static int sub_next(tc__l3_watch *w, uint64_t deadline_ns, tc__reply **r) {
    for (;;) {
        int g = tc__proto_get(w->sub->rd, r);
        if (g != 0) {
            if (g < 0) snprintf(w->err, sizeof w->err, "bad message: %s", tc__proto_error(w->sub->rd));
            return g;
        }
        int want_write = 0;
        int p = tc__rconn_pump(w->sub, &want_write, w->err, sizeof w->err);
        if (p < 0) return p;
        if (p == 1 || tc__rconn_pending(w->sub)) continue;
        int k = wait_for(w, w->sub->fd, want_write ? POLLOUT : POLLIN, deadline_ns);
        if (k <= 0) return k;
    }
}

static int is_str(const tc__reply *r, const char *s) {
    size_t n = strlen(s);
    return r != NULL && (r->type == TC__R_STRING || r->type == TC__R_STATUS) && r->len == n && memcmp(r->str, s, n) == 0;
}

/* The data connection's one request: cmds already in w->data->out, nrep replies. */
static int data_exec(tc__l3_watch *w, size_t nrep, tc__reply **rep, size_t max_bytes) {
    return tc__rconn_exec(w->data, tc__now_ns() + w->req_ms * 1000000u, nrep, rep, max_bytes, w->err, sizeof w->err);
}

/* Remembers rec as the last clear record seen (NULL: the list was empty). 0 or TC_ENOMEM. */
static int clear_pos_set(tc__l3_watch *w, const tc__reply *rec) {
    free(w->clear_pos);
    w->clear_pos = NULL;
    w->clear_pos_len = 0;
    if (rec == NULL) return 0;
    if ((w->clear_pos = malloc(rec->len ? rec->len : 1)) == NULL) return TC_ENOMEM;
    memcpy(w->clear_pos, rec->str, rec->len);
    w->clear_pos_len = rec->len;
    return 0;
}

/* Reads the clear list (LRANGE 0 -1). Returns 0 and *list (an array of strings, valid until the
 * next request on the data connection), or a failure. */
static int clear_list(tc__l3_watch *w, tc__reply **list) {
    char key[TC_STR_MAX + 32];
    memcpy(key, w->ns, w->nslen);
    memcpy(key + w->nslen, TC__L3_KEY_CLEAR, sizeof TC__L3_KEY_CLEAR - 1);
    int rc = tc__cmdbuf_cmd(&w->data->out, 4, "LRANGE", (size_t)6, key, w->nslen + sizeof TC__L3_KEY_CLEAR - 1, "0",
                            (size_t)1, "-1", (size_t)2);
    if (rc == 0) rc = data_exec(w, 1, list, (size_t)16 << 20);
    if (rc) return rc;
    tc__reply *l = *list;
    if (l->type == TC__R_ERROR) {
        char text[256];
        snprintf(w->err, sizeof w->err, "reading the clear records: %s", tc__reply_text(l, text, sizeof text));
        return TC_EPROTO;
    }
    if (l->type == TC__R_NIL) { /* no list: as empty */
        l->type = TC__R_ARRAY;
        l->elements = 0;
    }
    if (l->type != TC__R_ARRAY) {
        snprintf(w->err, sizeof w->err, "the clear records are not a list");
        return TC_EPROTO;
    }
    for (size_t i = 0; i < l->elements; i++)
        if (l->element[i]->type != TC__R_STRING) {
            snprintf(w->err, sizeof w->err, "a clear record is not a string");
            return TC_EPROTO;
        }
    return 0;
}

/* The clear list changed: applies the records after the last one seen, other hosts' only (this
 * host applied its own when it made them). When the last one seen is gone (more than
 * TC__L3_CLEAR_KEEP records since, or the list was removed), or the list was empty before and
 * is full now, what was missed cannot be told: the epoch moves. O(records). */
static int clear_records_changed(tc__l3_watch *w) {
    if (w->data == NULL) { /* tc__l3_listen_message(): the records cannot be read: everything */
        tc__coh_epoch_move(w->coh);
        return 0;
    }
    tc__reply *l;
    int rc = clear_list(w, &l);
    if (rc) return rc;
    size_t n = l->elements, from = 0;
    int move = 0;
    if (w->clear_pos == NULL) {
        move = n == 0 || n >= TC__L3_CLEAR_KEEP;
    } else {
        size_t i = n;
        while (i > 0 && !(l->element[i - 1]->len == w->clear_pos_len &&
                          memcmp(l->element[i - 1]->str, w->clear_pos, w->clear_pos_len) == 0))
            i--;
        if (i == 0) move = 1;
        from = i;
    }
    if (move) {
        tc__coh_epoch_move(w->coh);
    } else {
        uint64_t me = tc__l3_host_nonce(w->l3);
        for (size_t i = from; i < n; i++) {
            uint64_t host;
            const char *prefix;
            size_t plen;
            if (!tc__l3_clear_parse(l->element[i]->str, l->element[i]->len, &host, &prefix, &plen)) {
                tc__coh_epoch_move(w->coh); /* a record of another shape: everything */
                continue;
            }
            if (host == me) continue;
            if (plen == 0) tc__coh_epoch_move(w->coh);
            else (void)tc__coh_prefix_clear(w->coh, prefix, plen); /* on a timeout it moved the epoch */
        }
    }
    return clear_pos_set(w, n ? l->element[n - 1] : NULL);
}

/* Names this listener's canary: <ns>\xff__tiercache__:canary:<nonce in hex>. */
static void canary_name(tc__l3_watch *w, uint64_t nonce) {
    w->nonce = nonce;
    char tail[40];
    int tl = snprintf(tail, sizeof tail, "%016llx", (unsigned long long)nonce);
    memcpy(w->canary_key, w->ns, w->nslen);
    memcpy(w->canary_key + w->nslen, TC__L3_KEY_CANARY, sizeof TC__L3_KEY_CANARY - 1);
    memcpy(w->canary_key + w->nslen + sizeof TC__L3_KEY_CANARY - 1, tail, (size_t)tl);
    w->canary_len = w->nslen + sizeof TC__L3_KEY_CANARY - 1 + (size_t)tl;
}

/* Sends the next canary: SET <ns>\xff__tiercache__:canary:<nonce> <seq> PX B. */
static int send_canary(tc__l3_watch *w) {
    char seq[24], px[24];
    int sl = snprintf(seq, sizeof seq, "%llu", (unsigned long long)++w->canary_seq);
    int pl = snprintf(px, sizeof px, "%llu", (unsigned long long)w->b_ms);
    tc__reply *rep[1];
    w->canary_sent_ns = tc__now_ns();
    int rc = tc__cmdbuf_cmd(&w->data->out, 5, "SET", (size_t)3, w->canary_key, w->canary_len, seq, (size_t)sl, "PX",
                            (size_t)2, px, (size_t)pl);
    if (rc == 0) rc = data_exec(w, 1, rep, 1 << 20);
    if (rc) return rc;
    if (rep[0]->type != TC__R_STATUS) {
        char text[256];
        snprintf(w->err, sizeof w->err, "the canary SET was refused: %s", tc__reply_text(rep[0], text, sizeof text));
        return TC_EPROTO;
    }
    w->outstanding = 1;
    return 0;
}

/* The canary came back: the channel is healthy now. Renews the lease and ends a GAP someone
 * set meanwhile (a watchdog that found the lease late while this listener was slow). */
static int canary_back(tc__l3_watch *w) {
    if (!w->outstanding) return 0; /* its expiry, or a late echo: proves nothing new */
    w->outstanding = 0;
    uint64_t now = tc__now_ns();
    tc__coh_count_lag(w->coh, (now - w->canary_sent_ns) / 1000u);
    if (!tc__coh_lease_renew(w->coh, w->ticket, tc__now_ms(), w->b_ms / 2)) return R_STANDDOWN;
    if (tc__coh_gap(w->coh) && !tc__coh_recover(w->coh, w->ticket)) return R_STANDDOWN;
    return 0;
}

/* Applies one invalidation message's keys. Returns 0, R_STANDDOWN / R_LOST, or a failure of
 * the data connection (reading the clear records). */
static int apply_keys(tc__l3_watch *w, const tc__reply *keys) {
    tc__coh_count_message(w->coh, keys->elements);
    const int skip_echo = (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_ECHO) != 0;
    int rc = 0, clear_changed = 0;
    for (size_t i = 0; i < keys->elements; i++) {
        const tc__reply *k = keys->element[i];
        if (k->len < w->nslen || memcmp(k->str, w->ns, w->nslen) != 0) continue; /* not ours */
        const char *user = k->str + w->nslen;
        size_t ul = k->len - w->nslen;
        if (tc__l3_key_reserved(user, ul)) {
            if (k->len == w->canary_len && memcmp(k->str, w->canary_key, k->len) == 0) {
                if ((rc = canary_back(w))) return rc;
            } else if (ul == sizeof TC__L3_KEY_CLEAR - 1 && memcmp(user, TC__L3_KEY_CLEAR, ul) == 0) {
                clear_changed = 1;
            } else if (ul == sizeof TC__L3_KEY_EPOCH - 1 && memcmp(user, TC__L3_KEY_EPOCH, ul) == 0) {
                /* every process of the host checks the fleet epoch again on its next call */
                (void)tc__coh_bump(w->coh, tc__hash(user, ul));
            }
            continue; /* other hosts' canaries */
        }
        uint64_t h = tc__hash(user, ul);
        if (skip_echo && tc__l3_wrote_recently(w->l3, h, w->b_ms)) continue; /* test-only */
        (void)tc__coh_bump(w->coh, h);
        atomic_fetch_add_explicit(&w->applied, 1, memory_order_relaxed);
    }
    /* after the keys: the records' replies reuse the data connection, not the subscriber */
    if (clear_changed) rc = clear_records_changed(w);
    return rc;
}

/* One complete message from the subscriber. */
static int handle_message(tc__l3_watch *w, const tc__reply *m) {
    if (m->type == TC__R_ERROR) {
        char text[256];
        snprintf(w->err, sizeof w->err, "the server said %s", tc__reply_text(m, text, sizeof text));
        return lost(w, w->err);
    }
    if (m->type != TC__R_ARRAY || m->elements < 1) {
        tc__coh_epoch_move(w->coh); /* a shape we do not know: everything may have changed */
        return 0;
    }
    const tc__reply *kind = m->element[0];
    if (is_str(kind, "message") && m->elements == 3 && is_str(m->element[1], TC__LISTEN_CHANNEL)) {
        const tc__reply *p = m->element[2];
        if (p->type == TC__R_ARRAY) {
            int all_strings = 1;
            for (size_t i = 0; i < p->elements && all_strings; i++) all_strings = p->element[i]->type == TC__R_STRING;
            if (all_strings) {
                int rc = apply_keys(w, p);
                if (rc < 0) return lost(w, w->err);
                return rc;
            }
        }
        /* a null payload (FLUSHALL, FLUSHDB of any database) or anything else: everything */
        tc__coh_count_message(w->coh, 0);
        tc__coh_epoch_move(w->coh);
        return 0;
    }
    if (is_str(kind, "unsubscribe")) return lost(w, "unsubscribed by the server");
    if (is_str(kind, "subscribe") || is_str(kind, "pong")) return 0;
    tc__coh_epoch_move(w->coh);
    return 0;
}

int tc__l3_listen_message(tc__coh *coh, const char *ns, size_t nslen, uint32_t ticket, uint64_t nonce,
                          int outstanding, const tc__reply *m) {
    static const tc__rconn_cfg quiet; /* no log callback */
    tc__l3_watch *w = calloc(1, sizeof *w);
    if (w == NULL) return TC_ENOMEM;
    w->coh = coh;
    w->cfg = &quiet;
    w->nslen = nslen < TC_STR_MAX ? nslen : TC_STR_MAX - 1;
    memcpy(w->ns, ns, w->nslen);
    w->b_ms = 1000;
    w->req_ms = 250;
    w->ticket = ticket;
    w->outstanding = outstanding;
    w->canary_sent_ns = tc__now_ns();
    canary_name(w, nonce);
    int rc = handle_message(w, m);
    free(w->clear_pos);
    free(w);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* A session: connect, subscribe, recover, listen                           */
/* ------------------------------------------------------------------------ */

static void close_conns(tc__l3_watch *w) {
    tc__rconn_close(w->sub);
    tc__rconn_close(w->data);
    w->sub = w->data = NULL;
    w->outstanding = 0;
}

/* A reply that must be +OK (or, for optional commands, anything but a failure of ours). */
static int want_ok(tc__l3_watch *w, const tc__reply *r, const char *what) {
    if (r->type == TC__R_STATUS) return 0;
    char text[256];
    snprintf(w->err, sizeof w->err, "%s refused: %s (an ACL user needs +client|id +client|tracking +subscribe "
             "and the channel &" TC__LISTEN_CHANNEL ")", what, tc__reply_text(r, text, sizeof text));
    return TC_EPROTO;
}

/* Connects and subscribes. 0 with the channel healthy and the epoch moved, or R_*. */
static int connect_session(tc__l3_watch *w) {
    const uint64_t k_ms = w->cfg->connect_timeout_ms;
    tc__reply *rep[2];
    int rc;
    if (!hold_for(w, k_ms)) return R_STANDDOWN;
    if ((rc = tc__rconn_open(w->cfg, tc__now_ns() + k_ms * 1000000u, &w->sub, w->err, sizeof w->err)))
        return stopping(w) ? R_STOP : lost(w, bare(w->err));
    if (!hold_for(w, k_ms)) return R_STANDDOWN;
    if ((rc = tc__rconn_open(w->cfg, tc__now_ns() + k_ms * 1000000u, &w->data, w->err, sizeof w->err)))
        return stopping(w) ? R_STOP : lost(w, bare(w->err));
    /* the data connection is a new connection: it checks the fleet epoch as the pool's do */
    if (!hold_for(w, 5 * w->req_ms)) return R_STANDDOWN;
    int answered;
    if ((rc = tc__l3_fleet_check(w->l3, w->data, tc__now_ns() + w->req_ms * 1000000u, &answered, w->err,
                                 sizeof w->err)))
        return stopping(w) ? R_STOP : lost(w, bare(w->err));

    /* CLIENT ID, then tracking redirected to itself; then SUBSCRIBE */
    if (!hold_for(w, 3 * w->req_ms)) return R_STANDDOWN;
    uint64_t dl = tc__now_ns() + w->req_ms * 1000000u;
    rc = tc__cmdbuf_cmd(&w->sub->out, 2, "CLIENT", (size_t)6, "ID", (size_t)2);
    if (rc == 0) rc = tc__rconn_exec(w->sub, dl, 1, rep, 1 << 20, w->err, sizeof w->err);
    if (rc) return stopping(w) ? R_STOP : lost(w, bare(w->err));
    if (rep[0]->type != TC__R_INTEGER) {
        want_ok(w, rep[0], "CLIENT ID");
        return lost(w, w->err);
    }
    char id[24];
    int il = snprintf(id, sizeof id, "%lld", rep[0]->integer);
    const char *argv[7] = {"CLIENT", "TRACKING", "on", "REDIRECT", id, "BCAST", "PREFIX"};
    size_t lens[7] = {6, 8, 2, 8, (size_t)il, 5, 6};
    /* PREFIX <ns>: an empty namespace tracks every key (the cache owns the database) */
    const char *targv[8];
    size_t tlens[8];
    memcpy(targv, argv, sizeof argv);
    memcpy(tlens, lens, sizeof lens);
    targv[7] = w->ns;
    tlens[7] = w->nslen;
    rc = tc__cmdbuf_argv(&w->sub->out, w->nslen ? 8 : 6, targv, tlens);
    if (rc == 0) rc = tc__cmdbuf_cmd(&w->sub->out, 3, "CLIENT", (size_t)6, "NO-EVICT", (size_t)8, "on", (size_t)2);
    if (rc == 0) rc = tc__rconn_exec(w->sub, dl, 2, rep, 1 << 20, w->err, sizeof w->err);
    if (rc) return stopping(w) ? R_STOP : lost(w, bare(w->err));
    if (want_ok(w, rep[0], "CLIENT TRACKING")) return lost(w, w->err);
    /* rep[1]: CLIENT NO-EVICT exists from Redis 7.0 on; an error only means it is older */

    tc__proto_reset_replies(w->sub->rd);
    tc__proto_set_max_pending(w->sub->rd, TC__LISTEN_MAX_MESSAGE);
    rc = tc__cmdbuf_cmd(&w->sub->out, 2, "SUBSCRIBE", (size_t)9, TC__LISTEN_CHANNEL, strlen(TC__LISTEN_CHANNEL));
    if (rc == 0) rc = tc__rconn_send(w->sub, dl, w->err, sizeof w->err);
    if (rc) return stopping(w) ? R_STOP : lost(w, bare(w->err));
    tc__reply *r;
    int g = sub_next(w, dl, &r);
    if (g < 0 && stopping(w)) return R_STOP;
    if (g == 0) return lost(w, "no answer to SUBSCRIBE");
    if (g < 0) return lost(w, w->err);
    if (!(r->type == TC__R_ARRAY && r->elements == 3 && is_str(r->element[0], "subscribe"))) {
        if (r->type == TC__R_ERROR) want_ok(w, r, "SUBSCRIBE");
        else snprintf(w->err, sizeof w->err, "an unexpected answer to SUBSCRIBE");
        return lost(w, w->err);
    }
    tc__proto_reset_replies(w->sub->rd); /* r is complete: nothing half parsed refers to the arena */

    /* Subscribed: from now on every write under the namespace reaches us. Where the clear
     * records stand, then the recovery: the epoch move covers every record before this one. */
    if (!hold_for(w, w->req_ms)) return R_STANDDOWN;
    tc__reply *l;
    if ((rc = clear_list(w, &l))) return stopping(w) ? R_STOP : lost(w, bare(w->err));
    if ((rc = clear_pos_set(w, l->elements ? l->element[l->elements - 1] : NULL))) return lost(w, "out of memory");
    if (!tc__coh_recover(w->coh, w->ticket)) return R_STANDDOWN;
    if (!hold_for(w, 0)) return R_STANDDOWN;
    wlog(w, TC_LOG_INFO, "redis: invalidation channel healthy (this process, pid %d, listens for the host)",
         (int)getpid());
    w->down_logged = 0;
    return 0;
}

/* Listens until the channel is lost, the lease is gone, or the watch stops. */
static int run_session(tc__l3_watch *w) {
    const uint64_t quarter = w->b_ms * 1000000u / 4, half = w->b_ms * 1000000u / 2;
    uint64_t next_canary = tc__now_ns();
    for (;;) {
        if (stopping(w)) return R_STOP;
        maybe_park(w);
        if (!held(w)) return R_STANDDOWN;
        uint64_t now = tc__now_ns();
        if (w->outstanding && now >= w->canary_sent_ns + half) return lost(w, "the canary did not come back in time");
        if (!w->outstanding && now >= next_canary) {
            if (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_CANARY) {
                /* test-only: a silent channel is trusted */
                if (!tc__coh_lease_renew(w->coh, w->ticket, tc__now_ms(), w->b_ms / 2)) return R_STANDDOWN;
                if (tc__coh_gap(w->coh) && !tc__coh_recover(w->coh, w->ticket)) return R_STANDDOWN;
                next_canary = now + quarter;
            } else {
                if (send_canary(w)) return stopping(w) ? R_STOP : lost(w, bare(w->err));
                next_canary = w->canary_sent_ns + quarter;
            }
            continue;
        }
        uint64_t until = w->outstanding ? w->canary_sent_ns + half : next_canary;
        if (until > now + quarter) until = now + quarter;
        tc__reply *m;
        int g = sub_next(w, until, &m);
        if (g == 0) continue;
        if (g < 0 && stopping(w)) return R_STOP;
        if (g == TC_EPROTO || g == TC_ENOMEM) {
            /* the reader is in error (bytes it cannot parse, a message over its budget): what
             * it held may have been invalidations */
            tc__coh_epoch_move(w->coh);
            return lost(w, w->err);
        }
        if (g < 0) return lost(w, bare(w->err));
        int rc = handle_message(w, m);
        tc__proto_reset_replies(w->sub->rd); /* m is done with; nothing is half parsed */
        if (rc) return rc;
    }
}

/* The listener, from a lease just taken until it stops, stands down or is stopped. */
static void listen_with(tc__l3_watch *w, uint32_t ticket) {
    w->ticket = ticket;
    w->down_logged = 0;
    atomic_store(&w->listening, 1);
    uint64_t backoff = TC__LISTEN_BACKOFF_MIN_MS;
    int r;
    for (;;) {
        r = connect_session(w);
        if (r == 0) {
            backoff = TC__LISTEN_BACKOFF_MIN_MS;
            r = run_session(w);
        }
        close_conns(w);
        if (r != R_LOST) break;
        /* reconnect after the backoff; alive meanwhile, so the lease is kept */
        uint64_t until = tc__now_ms() + backoff;
        while (r == R_LOST && !stopping(w)) {
            maybe_park(w);
            uint64_t now = tc__now_ms();
            if (now >= until) break;
            uint64_t slice = until - now < w->b_ms / 4 + 1 ? until - now : w->b_ms / 4 + 1;
            if (!hold_for(w, slice)) r = R_STANDDOWN;
            else sleep_ms(w, slice);
        }
        if (r != R_LOST) break;
        if (stopping(w)) {
            r = R_STOP;
            break;
        }
        backoff = backoff * 2 < w->b_ms ? backoff * 2 : w->b_ms;
    }
    if (r == R_STOP && held(w)) {
        /* nobody listens from now on until another process takes over: say so first */
        tc__coh_gap_set(w->coh);
        tc__coh_lease_release(w->coh, w->ticket);
    } else if (r == R_STANDDOWN) {
        wlog(w, TC_LOG_INFO, "redis: another process of the host listens now; this one stands down");
    }
    atomic_store(&w->listening, 0);
}

/* ------------------------------------------------------------------------ */
/* The watchdog                                                             */
/* ------------------------------------------------------------------------ */

static void *watch_main(void *arg) {
    tc__l3_watch *w = arg;
    tc__rconn_set_abort_fd(w->wake_fd);
    const uint64_t quarter = w->b_ms / 4 ? w->b_ms / 4 : 1;
    while (!stopping(w)) {
        maybe_park(w);
        uint64_t now = tc__now_ms();
        if (tc__coh_lease_expired(w->coh, now)) {
            tc__coh_gap_set(w->coh); /* nobody has been listening since the deadline */
            uint32_t ticket;
            /* hold it long enough to connect: it is renewed step by step from there */
            if (tc__coh_lease_take(w->coh, now, w->cfg->connect_timeout_ms + w->b_ms / 2, &ticket)) {
                listen_with(w, ticket);
                continue;
            }
        }
        sleep_ms(w, quarter);
    }
    return NULL;
}

static uint64_t random_nonce(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) x = tc__now_ns() ^ ((uint64_t)getpid() << 32);
    return x;
}

int tc__l3_watch_start(tc__tier *l3, tc__coh *coh, const tc__opts *opt, tc__l3_watch **out, char *errbuf,
                       size_t errlen) {
    *out = NULL;
    if (l3 == NULL || coh == NULL || l3->id != TC_TIER_L3)
        return tc__errf(errbuf, errlen, TC_EINVAL, "coherence: the listener needs the L3 tier and the host's table");
    if (opt->max_staleness_ms < 4)
        return tc__errf(errbuf, errlen, TC_EINVAL, "CACHE_MAX_STALENESS=%llums is too short for the listener",
                        (unsigned long long)opt->max_staleness_ms);
    tc__l3_watch *w = calloc(1, sizeof *w);
    if (w == NULL) return tc__errf(errbuf, errlen, TC_ENOMEM, "out of memory");
    w->l3 = l3;
    w->coh = coh;
    w->cfg = tc__l3_conn_cfg(l3);
    const char *ns = tc__l3_namespace(l3, &w->nslen);
    memcpy(w->ns, ns, w->nslen);
    w->b_ms = opt->max_staleness_ms;
    w->req_ms = w->cfg->command_timeout_ms < w->b_ms / 4 ? w->cfg->command_timeout_ms : w->b_ms / 4;
    if (w->req_ms == 0) w->req_ms = 1;
    canary_name(w, random_nonce());
    w->fork_gen = tc__fork_gen();
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (w->wake_fd < 0) {
        int e = errno;
        free(w);
        return tc__errf(errbuf, errlen, TC_EIO, "coherence: no eventfd for the listener: %s", strerror(e));
    }
    tc__l3_attach_coh(l3, coh);
    /* nobody listens: nothing cached may be served until somebody does (synchronously, before
     * this process serves anything) */
    if (tc__coh_lease_expired(coh, tc__now_ms())) tc__coh_gap_set(coh);
    /* the thread runs with every signal blocked: the application's handlers stay on its own
     * threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&w->thread, NULL, watch_main, w);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        tc__l3_attach_coh(l3, NULL);
        close(w->wake_fd);
        free(w);
        return tc__errf(errbuf, errlen, TC_EIO, "coherence: cannot start the listener's thread: %s", strerror(rc));
    }
    *out = w;
    return 0;
}

void tc__l3_watch_stop(tc__l3_watch *w) {
    if (w == NULL) return;
    if (w->fork_gen == tc__fork_gen()) {
        atomic_store_explicit(&w->stop, 1, memory_order_release);
        uint64_t one = 1;
        ssize_t n = write(w->wake_fd, &one, sizeof one);
        (void)n;
        pthread_join(w->thread, NULL);
        tc__l3_attach_coh(w->l3, NULL);
    }
    /* in a child after fork() the thread does not exist: only the descriptors go (the
     * connections see the fork and write nothing), and the parent's lease stays the parent's */
    close_conns(w);
    close(w->wake_fd);
    free(w->clear_pos);
    free(w);
}

/* ------------------------------------------------------------------------ */
/* Statistics and test hooks                                                */
/* ------------------------------------------------------------------------ */

void tc__l3_watch_stats(const tc__l3_watch *w, tc_stats *out) {
    tc__coh_counters c;
    tc__coh_counters_get(w->coh, &c);
    out->channel = c.gap ? TC_CHANNEL_GAP : TC_CHANNEL_HEALTHY;
    out->listener = atomic_load(&w->listening) && c.listener_pid == (uint32_t)getpid();
    out->listener_pid = c.listener_pid;
    out->channel_lag_us = c.lag_last_us;
    out->channel_lag_max_us = c.lag_max_us;
    out->invalidations_received = c.keys_received;
    out->invalidations_applied = atomic_load(&w->applied);
    out->epoch_moves = c.epoch_moves;
    out->channel_gaps = c.gaps;
    out->listener_takeovers = c.takeovers;
    out->epoch_misses = tc__l3_epoch_misses(w->l3);
}

int tc__l3_watch_listening(const tc__l3_watch *w) { return atomic_load(&w->listening); }

void tc__l3_watch_freeze(tc__l3_watch *w, int frozen) { atomic_store(&w->frozen, frozen != 0); }
