/*
 * l3_redis.c -- the L3 tier: a Redis (or Valkey) server behind the tc__tier_ops interface.
 *
 * Keys are stored as REDIS_KEY_PREFIX followed by the key's bytes; values are stored raw.
 * Every operation is one round trip on a pooled connection (l3_pool.c):
 *
 *   get          MULTI, STRLEN k, GETRANGE k 0 limit-1, PTTL k, EXEC (l3_read.h): the value,
 *                its real size and its remaining TTL, atomically, never more than
 *                CACHE_MAX_VALUE_BYTES of it on the wire
 *   set          SET k v [PX ms]               (millisecond TTLs; never SETEX 0)
 *   del          UNLINK k
 *   clear(_prefix) SCAN c MATCH <escaped ns+prefix>* COUNT 1000, each batch's UNLINK
 *                pipelined with the next SCAN; never KEYS, FLUSHDB or FLUSHALL
 *   mget         the same three commands per key inside one MULTI/EXEC, in batches of
 *                TC__L3_BATCH keys
 *   mset         SET ki vi [PX ms] for each entry, pipelined, in batches of TC__L3_BATCH
 *   stats        INFO server + INFO memory + DBSIZE, cached for a second
 *
 * A value over CACHE_MAX_VALUE_BYTES or a key of another type under the namespace (another
 * client wrote it) is a miss for that key, counted (foreign_keys) and reported at
 * most once a second; it never counts against the server.
 *
 * Failures: each request runs through l3_call(), which asks the circuit breaker first (an
 * open circuit fails it at once), bounds every wait by the budget of the public call it belongs
 * to -- REDIS_COMMAND_TIMEOUT shared by all the requests of that call, extended by the time
 * spent opening connections up to REDIS_CONNECT_TIMEOUT --, retries on a lost connection up to
 * REDIS_MAX_RETRIES times within that budget, and reports the outcome to the breaker. The
 * breaker's transitions are what gets logged, so a dead server produces a few log lines,
 * not one per call. docs/REDIS.md describes the whole contract.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/random.h>

#include "coherence.h"
#include "l3_conn.h"
#include "l3_format.h"
#include "l3_pool.h"
#include "l3_proto.h"
#include "l3_read.h"
#include "l3_redis.h"
#include "tier.h"
#include "util.h"

#define TC__L3_BATCH 256          /* keys per round trip in mget / mset */
#define TC__L3_SCAN_COUNT "1000"  /* SCAN COUNT hint in clear */
#define TC__L3_INFO_TTL_NS 1000000000ull
#define TC__L3_REPLY_SLACK ((size_t)64 << 20) /* reply bytes allowed beyond the values */

typedef struct l3 {
    tc__tier base;
    tc__rconn_cfg cfg;
    tc__rpool pool;
    char ns[TC_STR_MAX];
    size_t nslen;
    uint64_t default_ttl_ms; /* TC__TTL_DEFAULT resolves to this (0: no expiry) */
    int max_retries;
    size_t max_value;        /* CACHE_MAX_VALUE_BYTES: the longest payload a read returns */
    tc__l3_limit limit;      /* a whole read: max_value + the value header (l3_format.h) */
    tc__l3_limit head;       /* a TTL lookup: the first TC__L3_HEAD_READ bytes, for the header */

    /* Coherence (docs/COHERENCE.md 3, 4.4). fleet_epoch is what values are written under and
     * what a value read must carry; 0 until a connection checked it. coh is the host's table
     * once a watch attached it (l3_listen.c): the listener moves the epoch key's stripe (its
     * i word) when the key changes, and every process of the host then checks the epoch
     * again. */
    _Atomic uint64_t fleet_epoch;
    _Atomic(tc__coh *) coh;
    _Atomic uint64_t fleet_seen;   /* that i word when the epoch was last checked */
    uint64_t epoch_key_hash;       /* tc__hash of the epoch key's bytes after the namespace */
    _Atomic uint64_t host_nonce;   /* names this host in clear records */
    _Atomic uint64_t clear_seq;    /* this tier's clear records */
    _Atomic uint64_t epoch_misses; /* values of another fleet epoch, read as misses */

    /* The keys this tier wrote lately, kept only while TC__COH_OFF_ECHO is set (tests). */
    pthread_mutex_t echo_mu;
    struct {
        uint64_t hash, at_ms;
    } echo[256];
    unsigned echo_next;

    _Atomic uint64_t hits, misses, sets, deletes, errors;
    _Atomic uint64_t timeouts, conn_errors, proto_errors, auth_errors, tls_errors;
    _Atomic uint64_t fast_fails, retries, reply_errors;
    _Atomic uint64_t deadline_skips;    /* requests not sent: the public call's budget was spent */
    _Atomic uint64_t oversized, wrong_type; /* foreign keys read as misses */
    _Atomic uint64_t last_foreign_warn_ns;
    _Atomic int last_ok;                /* the last call reached the server */
    _Atomic uint64_t last_reply_warn_ns;

    pthread_mutex_t info_mu;            /* guards the cached INFO below */
    uint64_t info_at_ns;
    int info_valid;
    char version[32];
    char used_memory[24];
    long long db_keys;
} l3;

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

/* The namespaced key: on the stack when short, else on the heap. */
typedef struct keybuf {
    char *p;
    size_t len;
    char small[512];
} keybuf;

static int key_make(const l3 *t, keybuf *kb, const void *key, size_t klen) {
    kb->len = t->nslen + klen;
    kb->p = kb->len <= sizeof kb->small ? kb->small : malloc(kb->len);
    if (kb->p == NULL) return TC_ENOMEM;
    memcpy(kb->p, t->ns, t->nslen);
    if (klen) memcpy(kb->p + t->nslen, key, klen);
    return 0;
}

static void key_done(keybuf *kb) {
    if (kb->p != kb->small) free(kb->p);
}

/* A connection-layer message without its "redis: " lead (the tier adds its own). */
static const char *bare(const char *msg, int rc) {
    if (msg[0] == '\0') return tc_strerror(rc);
    return strncmp(msg, "redis: ", 7) == 0 ? msg + 7 : msg;
}

/* ------------------------------------------------------------------------ */
/* The fleet epoch (docs/COHERENCE.md 3)                                    */
/* ------------------------------------------------------------------------ */

static int reply_error(l3 *t, const tc__reply *r);

/* Compare and set of the epoch key, one key (ready for Redis Cluster): when the key still
 * holds what the caller saw (ARGV[1] '0': no string there; '1': the string ARGV[2]) it becomes
 * ARGV[3]; the reply is the string the key holds afterwards (nil: none). A key of another type
 * counts as none, so a list somebody pushed there cannot wedge every connection. */
static const char tc__l3_epoch_script[] =
    "local cur = false\n"
    "if redis.call('TYPE', KEYS[1]).ok == 'string' then cur = redis.call('GET', KEYS[1]) end\n"
    "if (ARGV[1] == '0' and cur == false) or (ARGV[1] == '1' and cur == ARGV[2]) then\n"
    "  redis.call('SET', KEYS[1], ARGV[3])\n"
    "  return ARGV[3]\n"
    "end\n"
    "return cur\n";

static uint64_t random_nonzero(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) x = tc__now_ns() * 0x9e3779b97f4a7c15ull;
    return x ? x : 1;
}

static tc__coh *coh_of(const l3 *t) { return atomic_load_explicit(&t->coh, memory_order_acquire); }

int tc__l3_fleet_check(tc__tier *tt, tc__rconn *c, uint64_t deadline_ns, int *answered, char *errbuf,
                       size_t errlen) {
    l3 *t = (l3 *)tt;
    *answered = 0;
    char key[TC_STR_MAX + 32];
    size_t klen = t->nslen + sizeof TC__L3_KEY_EPOCH - 1;
    memcpy(key, t->ns, t->nslen);
    memcpy(key + t->nslen, TC__L3_KEY_EPOCH, sizeof TC__L3_KEY_EPOCH - 1);
    tc__reply *rep[2];
    int rc = tc__cmdbuf_cmd(&c->out, 2, "INFO", (size_t)4, "server", (size_t)6);
    if (rc == 0) rc = tc__cmdbuf_cmd(&c->out, 2, "GET", (size_t)3, key, klen);
    if (rc == 0) rc = tc__rconn_exec(c, deadline_ns, 2, rep, 1 << 20, errbuf, errlen);
    if (rc) {
        tc__cmdbuf_clear(&c->out, 64 * 1024);
        return rc;
    }
    *answered = 1;
    if (rep[0]->type == TC__R_ERROR) return reply_error(t, rep[0]);
    char run_id[TC__L3_RUNID_MAX + 1];
    if (rep[0]->type != TC__R_STRING || !tc__info_field(rep[0]->str, rep[0]->len, "run_id", run_id, sizeof run_id) ||
        !tc__l3_runid_ok(run_id, strlen(run_id))) {
        c->broken = 1;
        *answered = 0;
        return tc__errf(errbuf, errlen, TC_EPROTO, "redis: INFO server names no run_id");
    }
    /* what the key holds: have 0 none (or not a string), 1 the string cur (a copy: the reply
     * dies with the next request) */
    int have = 0;
    char *cur = NULL;
    size_t curlen = 0;
    if (rep[1]->type == TC__R_STRING) {
        have = 1;
        curlen = rep[1]->len;
        if ((cur = malloc(curlen + 1)) == NULL) return TC_ENOMEM;
        memcpy(cur, rep[1]->str, curlen);
    } else if (rep[1]->type == TC__R_ERROR && !tc__reply_is_error_code(rep[1], "WRONGTYPE")) {
        return reply_error(t, rep[1]);
    }
    uint64_t epoch = 0;
    char cand[TC__L3_RUNID_MAX + 32];
    size_t candlen = tc__l3_epoch_text(cand, run_id, random_nonzero());
    /* another client may replace the key between our read and our script: a few rounds */
    for (int round = 0; !(have && tc__l3_epoch_parse(cur, curlen, run_id, &epoch)); round++) {
        if (round == 4) {
            free(cur);
            c->broken = 1;
            *answered = 0;
            return tc__errf(errbuf, errlen, TC_EPROTO,
                            "redis: the fleet epoch key (\\xff__tiercache__:epoch under REDIS_KEY_PREFIX) keeps "
                            "changing under the compare-and-set");
        }
        const char *argv[7] = {"EVAL", tc__l3_epoch_script, "1", key, have ? "1" : "0", have ? cur : "", cand};
        size_t lens[7] = {4, sizeof tc__l3_epoch_script - 1, 1, klen, 1, curlen, candlen};
        rc = tc__cmdbuf_argv(&c->out, 7, argv, lens);
        free(cur);
        cur = NULL;
        curlen = 0;
        have = 0;
        *answered = 0;
        if (rc == 0) rc = tc__rconn_exec(c, deadline_ns, 1, rep, 1 << 20, errbuf, errlen);
        if (rc) {
            tc__cmdbuf_clear(&c->out, 64 * 1024);
            return rc;
        }
        *answered = 1;
        if (rep[0]->type == TC__R_ERROR) return reply_error(t, rep[0]);
        if (rep[0]->type == TC__R_STRING) {
            have = 1;
            curlen = rep[0]->len;
            if ((cur = malloc(curlen + 1)) == NULL) return TC_ENOMEM;
            memcpy(cur, rep[0]->str, curlen);
        } else if (rep[0]->type != TC__R_NIL) {
            c->broken = 1;
            *answered = 0;
            return tc__errf(errbuf, errlen, TC_EPROTO, "redis: a reply of an unexpected type to the fleet epoch script");
        }
    }
    free(cur);
    uint64_t old = atomic_exchange_explicit(&t->fleet_epoch, epoch, memory_order_acq_rel);
    if (old != 0 && old != epoch)
        tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_INFO,
                "redis: the fleet epoch changed (server run_id %s): values written before read as misses", run_id);
    c->checked = 1;
    return 0;
}

/* Makes sure the connection may carry values: the fleet epoch was checked on it, and not
 * invalidated since (the listener moved the epoch key's stripe). 0 or the check's failure
 * (*answered: the server answered it, with an error). */
static int fleet_ready(l3 *t, tc__rconn *c, uint64_t deadline_ns, int *answered, char *errbuf, size_t errlen) {
    *answered = 0;
    tc__coh *coh = coh_of(t);
    uint64_t w = coh ? atomic_load_explicit(&tc__coh_words(coh, t->epoch_key_hash)[1], memory_order_acquire) : 0;
    if (c->checked && (coh == NULL || w == atomic_load_explicit(&t->fleet_seen, memory_order_relaxed))) return 0;
    int rc = tc__l3_fleet_check(&t->base, c, deadline_ns, answered, errbuf, errlen);
    if (rc == 0 && coh) atomic_store_explicit(&t->fleet_seen, w, memory_order_relaxed);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The call loop                                                            */
/* ------------------------------------------------------------------------ */

/* One request: build() writes its commands (it may run again on a retry), handle() reads
 * the nrep replies while the connection is still held (replies die with the next request). */
typedef struct l3_req {
    int (*build)(struct l3_req *rq, tc__cmdbuf *b);
    int (*handle)(struct l3_req *rq, tc__reply **rep);
    size_t nrep;
    tc__reply **rep;
    size_t max_bytes;
    l3 *t;
    uint64_t sent_ns; /* when the request was written (set by l3_call before each attempt) */
} l3_req;

static void count_failure(l3 *t, int rc) {
    switch (rc) {
    case TC_ETIMEDOUT: atomic_fetch_add(&t->timeouts, 1); break;
    case TC_EPROTO: atomic_fetch_add(&t->proto_errors, 1); break;
    case TC_EAUTH: atomic_fetch_add(&t->auth_errors, 1); break;
    case TC_ETLS: atomic_fetch_add(&t->tls_errors, 1); break;
    default: atomic_fetch_add(&t->conn_errors, 1); break;
    }
}

static void sleep_ns(uint64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* The time budget of the public call this thread is running (tier.h, tc__call_id): when its
 * first Redis work started, and how long it has spent opening connections. Every l3_call of
 * one public call draws on it, so a tc_set's SET and compensating UNLINK, or a tc_mset's
 * batches and per-entry UNLINKs, share one deadline. Outside a public call (call id 0: a tier
 * used directly) each l3_call has a budget of its own. Thread-local because the call is: one
 * thread runs all the ops of a public call, and no lock is needed. */
typedef struct call_budget {
    uint64_t call;      /* tc__call_id() it belongs to */
    uint64_t start_ns;  /* when that call's first Redis work started */
    uint64_t opened_ns; /* time spent opening connections since */
} call_budget;

static _Thread_local call_budget tl_budget;

/* This thread's budget for the running call, started now when the call has none yet. */
static call_budget *budget_of_call(uint64_t now) {
    uint64_t id = tc__call_id();
    if (id == 0 || tl_budget.call != id) {
        tl_budget.call = id;
        tl_budget.start_ns = now;
        tl_budget.opened_ns = 0;
    }
    return &tl_budget;
}

/* Runs a request with the breaker, the pool, the deadlines and the retries. Returns what
 * handle() returned, or the failure: TC_EUNAVAIL / TC_EAUTH / TC_ETLS / TC_ECONFIG at once
 * while the circuit is open, TC_ECONN, TC_ETIMEDOUT, TC_EPROTO, TC_ENOMEM.
 *
 * Time: the public call this request belongs to has REDIS_COMMAND_TIMEOUT from the start of
 * its first Redis work, for waiting for pooled connections, round trips and retries, shared
 * by all of its requests; time spent opening connections (each open bounded by
 * REDIS_CONNECT_TIMEOUT) extends that budget, but never past REDIS_COMMAND_TIMEOUT +
 * REDIS_CONNECT_TIMEOUT in total. A request that finds the budget spent fails at once with
 * TC_ETIMEDOUT without touching the server or the breaker (the server was not tried, so it
 * is not blamed; a half-open probe is never taken by a call with no time left). */
static int l3_call(l3 *t, l3_req *rq) {
    const uint64_t now0 = tc__now_ns();
    call_budget *cb = budget_of_call(now0);
    const uint64_t cmd_ns = t->cfg.command_timeout_ms * 1000000ull;
    const uint64_t conn_ns = t->cfg.connect_timeout_ms * 1000000ull;
    const uint64_t hard = cb->start_ns + cmd_ns + conn_ns;
    uint64_t budget = cb->start_ns + cmd_ns + cb->opened_ns; /* grows by the time spent opening */
    if (budget > hard) budget = hard;
    if (now0 >= budget) {
        atomic_fetch_add_explicit(&t->deadline_skips, 1, memory_order_relaxed);
        return TC_ETIMEDOUT;
    }
    int probe;
    int rc = tc__breaker_allow(&t->pool.brk, &probe);
    if (rc) {
        atomic_fetch_add_explicit(&t->fast_fails, 1, memory_order_relaxed);
        return rc;
    }
    char err[320];
    for (int attempt = 0;; attempt++) {
        tc__rconn *c = NULL;
        int fresh = 0, open_failed = 0;
        err[0] = '\0';
        uint64_t t0 = tc__now_ns();
        uint64_t cdl = t0 + conn_ns < hard ? t0 + conn_ns : hard;
        rc = tc__rpool_acquire(&t->pool, budget, cdl, &c, &fresh, &open_failed, err, sizeof err);
        if (fresh || open_failed) {
            uint64_t spent = tc__now_ns() - t0;
            cb->opened_ns += spent;
            budget += spent;
            if (budget > hard) budget = hard;
        }
        /* Three outcomes: the server answered (a success for the breaker, whatever the
         * answer), the server failed us (a failure), or neither -- every pooled connection
         * stayed busy, or memory ran out here -- which says nothing about the server. */
        int failed = open_failed, answered = 0;
        if (rc == 0) {
            /* a new connection (or every one, after the epoch key changed) checks the fleet
             * epoch before it carries a value */
            rc = fleet_ready(t, c, budget, &answered, err, sizeof err);
            if (rc != 0 && !answered && rc != TC_ENOMEM) failed = 1;
            if (rc == 0) rc = rq->build(rq, &c->out);
            if (rc != 0) {
                tc__cmdbuf_clear(&c->out, 64 * 1024);
            } else {
                rq->sent_ns = tc__now_ns();
                rc = tc__rconn_exec(c, budget, rq->nrep, rq->rep, rq->max_bytes, err, sizeof err);
                if (rc != 0 && rc != TC_ENOMEM) {
                    failed = 1;
                } else if (rc == 0) {
                    answered = 1;
                    rc = rq->handle(rq, rq->rep);
                    if (rc == TC_EPROTO) {
                        c->broken = 1;
                        failed = 1;
                        snprintf(err, sizeof err, "redis: a reply of an unexpected type");
                    }
                }
            }
            tc__rpool_release(&t->pool, c);
        }
        if (!failed && !answered) {
            /* a probe must report: one that could not even be tried counts as failed */
            if (!probe) return rc;
            failed = 1;
        }
        if (!failed) {
            if (tc__breaker_success(&t->pool.brk, probe))
                tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_INFO, "redis: L3 tier available again");
            atomic_store_explicit(&t->last_ok, 1, memory_order_relaxed);
            return rc;
        }
        count_failure(t, rc);
        atomic_store_explicit(&t->last_ok, 0, memory_order_relaxed);
        int fatal = rc == TC_EAUTH || rc == TC_ETLS || rc == TC_ECONFIG;
        if (tc__breaker_failure(&t->pool.brk, probe, rc, fatal)) {
            tc__rpool_drop_idle(&t->pool);
            uint64_t left = atomic_load(&t->pool.brk.open_until_ns);
            uint64_t now = tc__now_ns();
            tc__log(t->cfg.log_fn, t->cfg.log_ud, fatal ? TC_LOG_ERROR : TC_LOG_WARN,
                    "redis: L3 tier unavailable (%s): %s; calls fail at once for about %llu ms, "
                    "then one call probes the server",
                    tc_err_name(rc), bare(err, rc),
                    (unsigned long long)(left > now ? (left - now) / 1000000u : 0));
        } else {
            tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_DEBUG, "redis: call failed (%s): %s",
                    tc_err_name(rc), bare(err, rc));
        }
        probe = 0;
        if (rc != TC_ECONN || attempt >= t->max_retries) return rc;
        if (atomic_load(&t->pool.brk.state) != TC__BRK_CLOSED) return rc;
        /* The first retry is immediate (the usual case is a pooled connection the server
         * closed, e.g. after a restart); later ones back off 10, 20, 40 ... ms, jittered. */
        if (attempt > 0) {
            uint64_t wait = 10000000ull << (attempt - 1 < 5 ? attempt - 1 : 5);
            wait = wait / 2 + (tc__now_ns() % (wait / 2 + 1));
            if (tc__now_ns() + wait >= budget) return rc;
            sleep_ns(wait);
        }
        if (tc__now_ns() >= budget) return rc;
        atomic_fetch_add_explicit(&t->retries, 1, memory_order_relaxed);
    }
}

/* An error reply from the server: the server is up (no breaker failure); map it to a code
 * and log it, at most once a second. */
static int reply_error(l3 *t, const tc__reply *r) {
    atomic_fetch_add_explicit(&t->reply_errors, 1, memory_order_relaxed);
    int code = TC_ETIER;
    if (tc__reply_is_error_code(r, "OOM")) code = TC_EFULL;
    else if (tc__reply_is_error_code(r, "LOADING") || tc__reply_is_error_code(r, "BUSY") ||
             tc__reply_is_error_code(r, "MASTERDOWN") || tc__reply_is_error_code(r, "TRYAGAIN") ||
             tc__reply_is_error_code(r, "READONLY") || tc__reply_is_error_code(r, "CLUSTERDOWN"))
        code = TC_EUNAVAIL;
    else if (tc__reply_is_error_code(r, "NOPERM")) code = TC_EPERM;
    else if (tc__reply_is_error_code(r, "NOAUTH") || tc__reply_is_error_code(r, "WRONGPASS"))
        code = TC_EAUTH;
    uint64_t now = tc__now_ns(), last = atomic_load(&t->last_reply_warn_ns);
    if (now - last >= 1000000000ull &&
        atomic_compare_exchange_strong(&t->last_reply_warn_ns, &last, now)) {
        char text[256];
        tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_WARN, "redis: server answered an error: %s",
                tc__reply_text(r, text, sizeof text));
    }
    return code;
}

/* The PX argument for a TTL, or 0 when the entry must not expire; TC_EINVAL for nonsense and
 * for a TTL above TC_TTL_MAX_MS. */
static int resolve_ttl(const l3 *t, int64_t ttl_ms, uint64_t *px) {
    if (ttl_ms > (int64_t)TC_TTL_MAX_MS) return TC_EINVAL;
    if (ttl_ms > 0) *px = (uint64_t)ttl_ms;
    else if (ttl_ms == TC__TTL_DEFAULT) *px = t->default_ttl_ms;
    else if (ttl_ms == TC_TTL_NONE) *px = 0;
    else return TC_EINVAL;
    return 0;
}

/* Appends SET k <header>v [PX ms]: the value header carries the fleet epoch (l3_format.h). */
static int build_set(const l3 *t, tc__cmdbuf *b, const char *k, size_t kl, const void *v, size_t vl, uint64_t px) {
    unsigned char hdr[TC__L3_HDR_LEN];
    tc__l3_hdr_put(hdr, atomic_load_explicit(&t->fleet_epoch, memory_order_acquire));
    char ms[24];
    int n = px ? snprintf(ms, sizeof ms, "%llu", (unsigned long long)px) : 0;
    const char *argv[5] = {"SET", k, (const char *)v, "PX", ms};
    size_t lens[5] = {3, kl, vl, 2, (size_t)n};
    return tc__cmdbuf_argv_pre(b, px ? 5 : 3, argv, lens, 2, hdr, sizeof hdr);
}

/* The reply bytes a read of n keys may take: each value is at most the limit (GETRANGE), held
 * once in the reader's buffer and once as a reply, plus the small replies around it. An honest
 * server cannot exceed it; a lying one is cut off there. */
static size_t value_budget(const l3 *t, size_t n) {
    return (n + 1) * (t->limit.bytes + 4096) + ((size_t)1 << 20);
}

/* Milliseconds since the request was written, rounded up: what a remaining TTL loses so that a
 * copy made from the reply never outlives the Redis key (docs/COHERENCE.md 4.1, step 4). */
static int64_t since_sent_ms(const l3_req *rq) {
    uint64_t now = tc__now_ns();
    return now > rq->sent_ns ? (int64_t)((now - rq->sent_ns + 999999u) / 1000000u) : 0;
}

/* The keys this tier wrote lately, for TC__COH_OFF_ECHO (test-only): recorded only while the
 * switch is on, so the write path pays one relaxed load otherwise. */
static void echo_note(l3 *t, uint64_t hash) {
    if (!(atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_ECHO)) return;
    pthread_mutex_lock(&t->echo_mu);
    t->echo[t->echo_next % 256].hash = hash;
    t->echo[t->echo_next % 256].at_ms = tc__now_ms();
    t->echo_next++;
    pthread_mutex_unlock(&t->echo_mu);
}

int tc__l3_wrote_recently(tc__tier *tt, uint64_t hash, uint64_t within_ms) {
    l3 *t = (l3 *)tt;
    uint64_t now = tc__now_ms();
    int found = 0;
    pthread_mutex_lock(&t->echo_mu);
    for (unsigned i = 0; i < 256 && !found; i++)
        found = t->echo[i].at_ms != 0 && t->echo[i].hash == hash && now - t->echo[i].at_ms <= within_ms;
    pthread_mutex_unlock(&t->echo_mu);
    return found;
}

/* ------------------------------------------------------------------------ */
/* get / set / del                                                          */
/* ------------------------------------------------------------------------ */

/* Reports a key under the namespace that is not a value of ours (kind, and size for an
 * oversized one), at most once a second. */
static void foreign_warn(l3 *t, tc__l3_kind kind, long long size) {
    uint64_t now = tc__now_ns(), last = atomic_load(&t->last_foreign_warn_ns);
    if (now - last < 1000000000ull || !atomic_compare_exchange_strong(&t->last_foreign_warn_ns, &last, now))
        return;
    if (kind == TC__L3_OVERSIZED)
        tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_WARN,
                "redis: a value under REDIS_KEY_PREFIX is %lld bytes, more than CACHE_MAX_VALUE_BYTES=%zu: "
                "read as a miss (did another client write it?)", size, t->max_value);
    else
        tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_WARN,
                "redis: a key under REDIS_KEY_PREFIX holds another type than a string: read as a miss "
                "(did another client write it?)");
}

/* One key's read -> 0 (a hit: the payload delivered to out when out is set, its remaining
 * TTL in *ttl), TC_EMISS, or the error the server answered for it. A value of ours (header,
 * l3_format.h) is a hit only under the current fleet epoch, and delivers its payload; a plain
 * one is delivered whole. Either is a miss when its payload is over CACHE_MAX_VALUE_BYTES (the
 * read fetched up to that plus the header), or when its TTL runs out within since_ms, the time
 * since the request was written. A reserved key (reserved: 1) is never the application's. */
static int deliver(l3 *t, const tc__l3_value *v, tc__sink *out, int64_t *ttl, int64_t since_ms, int reserved) {
    switch (v->kind) {
    case TC__L3_HIT: {
        if (reserved) return TC_EMISS;
        const char *p = v->data;
        size_t n = v->total;
        tc__l3_hdr h;
        if (tc__l3_hdr_parse(v->data, v->len, v->total, &h)) {
            if (h.epoch != atomic_load_explicit(&t->fleet_epoch, memory_order_acquire) ||
                (h.flags & TC__L3_HDR_FLAG_NEGATIVE)) {
                atomic_fetch_add_explicit(&t->epoch_misses, 1, memory_order_relaxed);
                return TC_EMISS;
            }
            p += h.payload_off;
            n -= h.payload_off;
        }
        if (n > t->max_value) {
            atomic_fetch_add_explicit(&t->oversized, 1, memory_order_relaxed);
            foreign_warn(t, TC__L3_OVERSIZED, (long long)v->total);
            return TC_EMISS;
        }
        int64_t left = v->ttl_ms;
        if (left != TC_TTL_NONE) {
            if (left <= since_ms) return TC_EMISS; /* gone by the time the reply was read */
            left -= since_ms;
        }
        *ttl = left;
        return out != NULL ? tc__sink_put(out, p, n) : 0;
    }
    case TC__L3_ABSENT: return TC_EMISS;
    case TC__L3_OVERSIZED:
        atomic_fetch_add_explicit(&t->oversized, 1, memory_order_relaxed);
        foreign_warn(t, v->kind, v->size);
        return TC_EMISS;
    case TC__L3_WRONGTYPE:
        atomic_fetch_add_explicit(&t->wrong_type, 1, memory_order_relaxed);
        foreign_warn(t, v->kind, 0);
        return TC_EMISS;
    default: return reply_error(t, v->err);
    }
}

/* 1 when the namespaced key k names one of tiercache's own keys. */
static int ns_key_reserved(const l3 *t, const char *k, size_t kl) {
    return kl >= t->nslen && tc__l3_key_reserved(k + t->nslen, kl - t->nslen);
}

typedef struct get_req {
    l3_req rq;
    keybuf kb;
    tc__sink *out;
    int64_t ttl;
} get_req;

static int get_build(l3_req *rq, tc__cmdbuf *b) {
    get_req *g = (get_req *)rq;
    int rc = tc__l3_multi(b);
    if (rc == 0) rc = tc__l3_read_cmds(b, g->kb.p, g->kb.len, g->out != NULL ? &rq->t->limit : &rq->t->head);
    if (rc == 0) rc = tc__l3_exec(b);
    return rc;
}

static int get_handle(l3_req *rq, tc__reply **rep) {
    get_req *g = (get_req *)rq;
    tc__reply *const *res;
    const tc__reply *err;
    int rc = tc__l3_tx_results(rep, TC__L3_READ_CMDS, &res, &err);
    if (rc == 1) return reply_error(rq->t, err);
    if (rc != 0) return rc;
    tc__l3_value v;
    const tc__l3_limit *lim = g->out != NULL ? &rq->t->limit : &rq->t->head;
    if ((rc = tc__l3_read_value(res, lim->bytes, g->out != NULL, &v))) return rc;
    return deliver(rq->t, &v, g->out, &g->ttl, since_sent_ms(rq), 0);
}

static int l3_get(tc__tier *tt, const tc__key *k, tc__sink *out, int64_t *ttl_ms) {
    l3 *t = (l3 *)tt;
    tc__reply *rep[2 + TC__L3_READ_CMDS];
    get_req g = {.rq = {get_build, get_handle, 2 + TC__L3_READ_CMDS, rep, value_budget(t, 1), t, 0}, .out = out};
    if (tc__l3_key_reserved(k->p, k->len)) {
        atomic_fetch_add_explicit(&t->misses, 1, memory_order_relaxed);
        return TC_EMISS; /* tiercache's own keys are not the application's */
    }
    int rc = key_make(t, &g.kb, k->p, k->len);
    if (rc) return rc;
    rc = l3_call(t, &g.rq);
    key_done(&g.kb);
    if (rc == 0) {
        if (ttl_ms) *ttl_ms = g.ttl;
        atomic_fetch_add_explicit(&t->hits, 1, memory_order_relaxed);
    } else if (rc == TC_EMISS) {
        atomic_fetch_add_explicit(&t->misses, 1, memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    }
    return rc;
}

typedef struct set_req {
    l3_req rq;
    keybuf kb;
    const void *val;
    size_t vlen;
    uint64_t px;
    const tc__fence *fence;
    int skipped;
} set_req;

static int set_build(l3_req *rq, tc__cmdbuf *b) {
    set_req *s = (set_req *)rq;
    /* Redis has no critical section we can enter: the fence is checked as late as we can,
     * right before the command is written. */
    if (!tc__fence_ok(s->fence)) {
        s->skipped = 1;
        rq->nrep = 0;
        return 0;
    }
    return build_set(rq->t, b, s->kb.p, s->kb.len, s->val, s->vlen, s->px);
}

static int status_ok(l3 *t, const tc__reply *r) {
    if (r->type == TC__R_STATUS) return 0;
    if (r->type == TC__R_ERROR) return reply_error(t, r);
    return TC_EPROTO;
}

static int set_handle(l3_req *rq, tc__reply **rep) {
    set_req *s = (set_req *)rq;
    if (s->skipped) return 0;
    return status_ok(rq->t, rep[0]);
}

static int l3_set(tc__tier *tt, const tc__key *k, const void *val, size_t vlen, int64_t ttl_ms,
                  const tc__fence *fence) {
    l3 *t = (l3 *)tt;
    tc__reply *rep[1];
    set_req s = {.rq = {set_build, set_handle, 1, rep, 1 << 20, t, 0}, .val = val, .vlen = vlen, .fence = fence};
    int rc = resolve_ttl(t, ttl_ms, &s.px);
    if (rc) return rc;
    if (tc__l3_key_reserved(k->p, k->len)) return TC_EINVAL; /* tiercache's own keys */
    if ((rc = key_make(t, &s.kb, k->p, k->len))) return rc;
    echo_note(t, k->hash);
    rc = l3_call(t, &s.rq);
    key_done(&s.kb);
    if (rc == 0) atomic_fetch_add_explicit(&t->sets, 1, memory_order_relaxed);
    else atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    return rc;
}

typedef struct del_req {
    l3_req rq;
    keybuf kb;
} del_req;

static int del_build(l3_req *rq, tc__cmdbuf *b) {
    del_req *d = (del_req *)rq;
    return tc__cmdbuf_cmd(b, 2, "UNLINK", (size_t)6, d->kb.p, d->kb.len);
}

static int int_ok(l3 *t, const tc__reply *r) {
    if (r->type == TC__R_INTEGER) return 0;
    if (r->type == TC__R_ERROR) return reply_error(t, r);
    return TC_EPROTO;
}

static int del_handle(l3_req *rq, tc__reply **rep) { return int_ok(rq->t, rep[0]); }

static int l3_del(tc__tier *tt, const tc__key *k) {
    l3 *t = (l3 *)tt;
    tc__reply *rep[1];
    del_req d = {.rq = {del_build, del_handle, 1, rep, 1 << 20, t, 0}};
    if (tc__l3_key_reserved(k->p, k->len)) return 0; /* never the application's: nothing to delete */
    int rc = key_make(t, &d.kb, k->p, k->len);
    if (rc) return rc;
    echo_note(t, k->hash);
    rc = l3_call(t, &d.rq);
    key_done(&d.kb);
    if (rc == 0) atomic_fetch_add_explicit(&t->deletes, 1, memory_order_relaxed);
    else atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* clear / clear_prefix                                                     */
/* ------------------------------------------------------------------------ */

/* The keys of the last SCAN batch, copied out of the reply arena so that they can be
 * UNLINKed in the next round trip. */
typedef struct clear_req {
    l3_req rq;
    char *pattern;
    size_t plen;
    char cursor[24];
    size_t cursor_len;
    /* keys to unlink with the next SCAN */
    char *kdata;
    size_t kdata_len, kdata_cap;
    size_t *koff, *klen;
    size_t nkeys, kcap;
    /* argv scratch for UNLINK */
    const char **argv;
    size_t *lens;
    size_t argcap;
    int sent_unlink;
    int scan; /* 0: only UNLINK the pending keys (the last round) */
} clear_req;

static int clear_build(l3_req *rq, tc__cmdbuf *b) {
    clear_req *c = (clear_req *)rq;
    int rc;
    c->sent_unlink = 0;
    rq->nrep = 0;
    if (c->nkeys > 0) {
        if (c->argcap < c->nkeys + 1) {
            const char **a = realloc(c->argv, (c->nkeys + 1) * sizeof *a);
            if (a == NULL) return TC_ENOMEM;
            c->argv = a;
            size_t *l = realloc(c->lens, (c->nkeys + 1) * sizeof *l);
            if (l == NULL) return TC_ENOMEM;
            c->lens = l;
            c->argcap = c->nkeys + 1;
        }
        c->argv[0] = "UNLINK";
        c->lens[0] = 6;
        for (size_t i = 0; i < c->nkeys; i++) {
            c->argv[i + 1] = c->kdata + c->koff[i];
            c->lens[i + 1] = c->klen[i];
        }
        if ((rc = tc__cmdbuf_argv(b, (int)c->nkeys + 1, c->argv, c->lens))) return rc;
        c->sent_unlink = 1;
        rq->nrep++;
    }
    if (c->scan) {
        rc = tc__cmdbuf_cmd(b, 6, "SCAN", (size_t)4, c->cursor, c->cursor_len, "MATCH", (size_t)5,
                            c->pattern, c->plen, "COUNT", (size_t)5, TC__L3_SCAN_COUNT,
                            strlen(TC__L3_SCAN_COUNT));
        if (rc) return rc;
        rq->nrep++;
    }
    return 0;
}

static int clear_keep_key(clear_req *c, const char *k, size_t kl) {
    if (c->nkeys == c->kcap) {
        size_t cap = c->kcap ? c->kcap * 2 : 1024;
        size_t *o = realloc(c->koff, cap * sizeof *o);
        if (o == NULL) return TC_ENOMEM;
        c->koff = o;
        size_t *l = realloc(c->klen, cap * sizeof *l);
        if (l == NULL) return TC_ENOMEM;
        c->klen = l;
        c->kcap = cap;
    }
    if (c->kdata_cap - c->kdata_len < kl) {
        size_t cap = c->kdata_cap ? c->kdata_cap : 16384;
        while (cap - c->kdata_len < kl) cap *= 2;
        char *d = realloc(c->kdata, cap);
        if (d == NULL) return TC_ENOMEM;
        c->kdata = d;
        c->kdata_cap = cap;
    }
    memcpy(c->kdata + c->kdata_len, k, kl);
    c->koff[c->nkeys] = c->kdata_len;
    c->klen[c->nkeys] = kl;
    c->kdata_len += kl;
    c->nkeys++;
    return 0;
}

static int clear_handle(l3_req *rq, tc__reply **rep) {
    clear_req *c = (clear_req *)rq;
    size_t i = 0;
    if (c->sent_unlink) {
        int rc = int_ok(rq->t, rep[i++]);
        if (rc) return rc;
    }
    c->nkeys = 0;
    c->kdata_len = 0;
    if (!c->scan) return 0;
    tc__reply *r = rep[i];
    if (r->type == TC__R_ERROR) return reply_error(rq->t, r);
    if (r->type != TC__R_ARRAY || r->elements != 2 || r->element[0]->type != TC__R_STRING ||
        r->element[1]->type != TC__R_ARRAY || r->element[0]->len >= sizeof c->cursor)
        return TC_EPROTO;
    memcpy(c->cursor, r->element[0]->str, r->element[0]->len);
    c->cursor_len = r->element[0]->len;
    tc__reply *keys = r->element[1];
    for (size_t k = 0; k < keys->elements; k++) {
        if (keys->element[k]->type != TC__R_STRING) return TC_EPROTO;
        if (ns_key_reserved(rq->t, keys->element[k]->str, keys->element[k]->len)) continue; /* ours */
        int rc = clear_keep_key(c, keys->element[k]->str, keys->element[k]->len);
        if (rc) return rc;
    }
    if (c->cursor_len == 1 && c->cursor[0] == '0') c->scan = 0; /* the scan is complete */
    return 0;
}

/* The clear record other hosts apply (docs/COHERENCE.md 4.4): RPUSH of
 * "<host nonce>:<seq>:<prefix>" to the list, trimmed to the last TC__L3_CLEAR_KEEP. */
typedef struct record_req {
    l3_req rq;
    keybuf list;
    char *rec;
    size_t reclen;
} record_req;

static int record_build(l3_req *rq, tc__cmdbuf *b) {
    record_req *r = (record_req *)rq;
    int rc = tc__cmdbuf_cmd(b, 3, "RPUSH", (size_t)5, r->list.p, r->list.len, r->rec, r->reclen);
    char keep[24];
    int kl = snprintf(keep, sizeof keep, "-%d", TC__L3_CLEAR_KEEP);
    if (rc == 0) rc = tc__cmdbuf_cmd(b, 4, "LTRIM", (size_t)5, r->list.p, r->list.len, keep, (size_t)kl, "-1", (size_t)2);
    return rc;
}

static int record_handle(l3_req *rq, tc__reply **rep) {
    int rc = int_ok(rq->t, rep[0]);
    return rc ? rc : status_ok(rq->t, rep[1]);
}

static int push_clear_record(l3 *t, const void *prefix, size_t plen) {
    tc__reply *rep[2];
    record_req r = {.rq = {record_build, record_handle, 2, rep, 1 << 20, t, 0}};
    int rc = key_make(t, &r.list, TC__L3_KEY_CLEAR, sizeof TC__L3_KEY_CLEAR - 1);
    if (rc) return rc;
    r.reclen = TC__L3_CLEAR_HEAD + plen;
    r.rec = malloc(r.reclen);
    if (r.rec == NULL) {
        key_done(&r.list);
        return TC_ENOMEM;
    }
    tc__l3_clear_head(r.rec, atomic_load(&t->host_nonce), atomic_fetch_add(&t->clear_seq, 1));
    if (plen) memcpy(r.rec + TC__L3_CLEAR_HEAD, prefix, plen);
    rc = l3_call(t, &r.rq);
    free(r.rec);
    key_done(&r.list);
    return rc;
}

/* Removes every key under ns+prefix, after telling the other hosts (a clear record). One
 * round trip for the record, then one per SCAN batch, each bounded by the command timeout; the
 * whole clear is proportional to the database size (SCAN visits every key; MATCH filters on
 * the server). tiercache's own keys (l3_format.h) stay. */
static int l3_clear_prefix(tc__tier *tt, const void *prefix, size_t plen) {
    l3 *t = (l3 *)tt;
    tc__reply *rep[2];
    clear_req c = {.rq = {clear_build, clear_handle, 0, rep, TC__L3_REPLY_SLACK, t, 0},
                   .cursor = "0", .cursor_len = 1, .scan = 1};
    int rc = push_clear_record(t, prefix, plen);
    if (rc) {
        atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
        return rc;
    }
    keybuf kb;
    if ((rc = key_make(t, &kb, prefix, plen))) return rc;
    c.pattern = malloc(2 * kb.len + 1);
    if (c.pattern == NULL) {
        key_done(&kb);
        return TC_ENOMEM;
    }
    c.plen = tc__glob_prefix(c.pattern, kb.p, kb.len);
    key_done(&kb);
    while (rc == 0 && (c.scan || c.nkeys > 0)) rc = l3_call(t, &c.rq);
    free(c.pattern);
    free(c.kdata);
    free(c.koff);
    free(c.klen);
    free(c.argv);
    free(c.lens);
    if (rc) atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    return rc;
}

static int l3_clear(tc__tier *tt) { return l3_clear_prefix(tt, "", 0); }

/* ------------------------------------------------------------------------ */
/* mget / mset                                                              */
/* ------------------------------------------------------------------------ */

typedef struct mget_req {
    l3_req rq;
    size_t n;
    const char **keys; /* namespaced keys */
    size_t *lens;
    tc__sink *outs;    /* NULL: TTL-only */
    int64_t *ttls;
    int *rcs;
} mget_req;

static int mget_build(l3_req *rq, tc__cmdbuf *b) {
    mget_req *m = (mget_req *)rq;
    int rc = tc__l3_multi(b);
    for (size_t i = 0; rc == 0 && i < m->n; i++)
        rc = tc__l3_read_cmds(b, m->keys[i], m->lens[i], m->outs != NULL ? &rq->t->limit : &rq->t->head);
    if (rc == 0) rc = tc__l3_exec(b);
    return rc;
}

static int mget_handle(l3_req *rq, tc__reply **rep) {
    mget_req *m = (mget_req *)rq;
    const unsigned per = TC__L3_READ_CMDS;
    const size_t limit = m->outs != NULL ? rq->t->limit.bytes : rq->t->head.bytes;
    const int64_t since = since_sent_ms(rq);
    tc__reply *const *res;
    const tc__reply *err;
    int rc = tc__l3_tx_results(rep, m->n * per, &res, &err);
    if (rc == 1) return reply_error(rq->t, err);
    if (rc != 0) return rc;
    /* every key's results are checked before any is delivered: a reply that lies about one
     * key fails the batch, and no value of it reaches the caller */
    for (size_t i = 0; i < m->n; i++) {
        tc__l3_value v;
        if ((rc = tc__l3_read_value(res + i * per, limit, m->outs != NULL, &v))) return rc;
    }
    for (size_t i = 0; i < m->n; i++) {
        tc__l3_value v;
        (void)tc__l3_read_value(res + i * per, limit, m->outs != NULL, &v);
        m->rcs[i] = deliver(rq->t, &v, m->outs ? &m->outs[i] : NULL, &m->ttls[i], since,
                            ns_key_reserved(rq->t, m->keys[i], m->lens[i]));
    }
    return 0;
}

static void fill_rcs(int *rcs, size_t n, int rc) {
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
}

static int l3_mget(tc__tier *tt, size_t n, const tc__key *keys, tc__sink *outs, int64_t *ttls, int *rcs) {
    l3 *t = (l3 *)tt;
    if (n == 0) return 0;
    size_t batch = n < TC__L3_BATCH ? n : TC__L3_BATCH;
    const unsigned per = TC__L3_READ_CMDS;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) total += t->nslen + keys[i].len;
    char *kdata = malloc(total ? total : 1);
    const char **kp = malloc(batch * sizeof *kp);
    size_t *lens = malloc(batch * sizeof *lens);
    tc__reply **rep = malloc((batch * per + 2) * sizeof *rep);
    int rc = 0;
    if (kdata == NULL || kp == NULL || lens == NULL || rep == NULL) rc = TC_ENOMEM;
    size_t off = 0;
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += batch) {
        size_t nb = n - i0 < batch ? n - i0 : batch;
        for (size_t j = 0; j < nb; j++) {
            char *k = kdata + off;
            memcpy(k, t->ns, t->nslen);
            if (keys[i0 + j].len) memcpy(k + t->nslen, keys[i0 + j].p, keys[i0 + j].len);
            kp[j] = k;
            lens[j] = t->nslen + keys[i0 + j].len;
            off += lens[j];
        }
        mget_req m = {.rq = {mget_build, mget_handle, nb * per + 2, rep, value_budget(t, nb), t, 0},
                      .n = nb, .keys = kp, .lens = lens, .outs = outs ? outs + i0 : NULL,
                      .ttls = ttls + i0, .rcs = rcs + i0};
        rc = l3_call(t, &m.rq);
        if (rc == 0) {
            for (size_t j = 0; j < nb; j++) {
                if (rcs[i0 + j] == 0) atomic_fetch_add_explicit(&t->hits, 1, memory_order_relaxed);
                else if (rcs[i0 + j] == TC_EMISS) atomic_fetch_add_explicit(&t->misses, 1, memory_order_relaxed);
                else atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
            }
        }
    }
    free(kdata);
    free(kp);
    free(lens);
    free(rep);
    if (rc) {
        fill_rcs(rcs, n, rc);
        atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    }
    return rc;
}

typedef struct mset_req {
    l3_req rq;
    size_t n;
    const tc__key *keys;
    const void *const *vals;
    const size_t *vlens;
    const int64_t *ttls;
    const tc__fence *const *fences;
    int *rcs;
    unsigned char *sent; /* entry i was written in this round */
    char *kbuf;
    size_t kcap;
    const l3 *t;
} mset_req;

static int mset_build(l3_req *rq, tc__cmdbuf *b) {
    mset_req *m = (mset_req *)rq;
    rq->nrep = 0;
    for (size_t i = 0; i < m->n; i++) {
        m->sent[i] = 0;
        uint64_t px;
        int rc = resolve_ttl(m->t, m->ttls ? m->ttls[i] : TC__TTL_DEFAULT, &px);
        if (rc) {
            m->rcs[i] = rc;
            continue;
        }
        if (tc__l3_key_reserved(m->keys[i].p, m->keys[i].len)) {
            m->rcs[i] = TC_EINVAL; /* tiercache's own keys */
            continue;
        }
        if (m->fences != NULL && !tc__fence_ok(m->fences[i])) {
            m->rcs[i] = 0;
            continue;
        }
        size_t kl = m->t->nslen + m->keys[i].len;
        if (kl > m->kcap) {
            char *k = realloc(m->kbuf, kl);
            if (k == NULL) return TC_ENOMEM;
            m->kbuf = k;
            m->kcap = kl;
        }
        memcpy(m->kbuf, m->t->ns, m->t->nslen);
        if (m->keys[i].len) memcpy(m->kbuf + m->t->nslen, m->keys[i].p, m->keys[i].len);
        if ((rc = build_set(m->t, b, m->kbuf, kl, m->vals[i], m->vlens[i], px))) return rc;
        echo_note((l3 *)m->t, m->keys[i].hash);
        m->sent[i] = 1;
        rq->nrep++;
    }
    return 0;
}

static int mset_handle(l3_req *rq, tc__reply **rep) {
    mset_req *m = (mset_req *)rq;
    size_t r = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (!m->sent[i]) continue;
        int rc = status_ok(rq->t, rep[r++]);
        if (rc == TC_EPROTO) return rc;
        m->rcs[i] = rc;
    }
    return 0;
}

static int l3_mset(tc__tier *tt, size_t n, const tc__key *keys, const void *const *vals, const size_t *vlens,
                   const int64_t *ttls, const tc__fence *const *fences, int *rcs) {
    l3 *t = (l3 *)tt;
    if (n == 0) return 0;
    size_t batch = n < TC__L3_BATCH ? n : TC__L3_BATCH;
    tc__reply **rep = malloc(batch * sizeof *rep);
    unsigned char *sent = malloc(batch);
    int rc = rep && sent ? 0 : TC_ENOMEM;
    char *kbuf = NULL;
    size_t kcap = 0;
    for (size_t i0 = 0; rc == 0 && i0 < n; i0 += batch) {
        size_t nb = n - i0 < batch ? n - i0 : batch;
        mset_req m = {.rq = {mset_build, mset_handle, 0, rep, 1 << 20, t, 0}, .n = nb, .keys = keys + i0,
                      .vals = vals + i0, .vlens = vlens + i0,
                      .ttls = ttls ? ttls + i0 : NULL, .fences = fences ? fences + i0 : NULL,
                      .rcs = rcs + i0, .sent = sent, .kbuf = kbuf, .kcap = kcap, .t = t};
        rc = l3_call(t, &m.rq);
        kbuf = m.kbuf;
        kcap = m.kcap;
        if (rc == 0)
            for (size_t j = 0; j < nb; j++) {
                if (rcs[i0 + j] == 0) atomic_fetch_add_explicit(&t->sets, 1, memory_order_relaxed);
                else atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
            }
    }
    free(kbuf);
    free(rep);
    free(sent);
    if (rc) {
        fill_rcs(rcs, n, rc);
        atomic_fetch_add_explicit(&t->errors, 1, memory_order_relaxed);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* stats                                                                    */
/* ------------------------------------------------------------------------ */

typedef struct info_req {
    l3_req rq;
    char version[32];
    char used_memory[24];
    long long db_keys;
} info_req;

static int info_build(l3_req *rq, tc__cmdbuf *b) {
    int rc = tc__cmdbuf_cmd(b, 2, "INFO", (size_t)4, "server", (size_t)6);
    if (rc == 0) rc = tc__cmdbuf_cmd(b, 2, "INFO", (size_t)4, "memory", (size_t)6);
    if (rc == 0) rc = tc__cmdbuf_cmd(b, 1, "DBSIZE", (size_t)6);
    return rc;
}

/* Keeps only digits, letters, '.', '-' and '_' of a value copied from INFO. */
static void sanitize(char *s) {
    char *o = s;
    for (; *s; s++)
        if ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
            *s == '.' || *s == '-' || *s == '_')
            *o++ = *s;
    *o = '\0';
}

static int info_handle(l3_req *rq, tc__reply **rep) {
    info_req *q = (info_req *)rq;
    for (int i = 0; i < 2; i++) {
        if (rep[i]->type == TC__R_ERROR) return reply_error(rq->t, rep[i]);
        if (rep[i]->type != TC__R_STRING) return TC_EPROTO;
    }
    char v[24];
    if (tc__info_field(rep[0]->str, rep[0]->len, "valkey_version", v, sizeof v)) {
        sanitize(v);
        snprintf(q->version, sizeof q->version, "valkey-%s", v);
    } else if (tc__info_field(rep[0]->str, rep[0]->len, "redis_version", v, sizeof v)) {
        sanitize(v);
        snprintf(q->version, sizeof q->version, "%s", v);
    }
    if (tc__info_field(rep[1]->str, rep[1]->len, "used_memory", q->used_memory, sizeof q->used_memory))
        sanitize(q->used_memory);
    if (rep[2]->type == TC__R_INTEGER) q->db_keys = rep[2]->integer;
    else if (rep[2]->type == TC__R_ERROR) return reply_error(rq->t, rep[2]);
    else return TC_EPROTO;
    return 0;
}

/* Refreshes the cached INFO facts when older than a second. Only one thread refreshes; the
 * others use the cached values. A refresh is an ordinary call: while the circuit is open it
 * fails at once, and when the cool-down is over it may be the probe. */
static void refresh_info(l3 *t) {
    uint64_t now = tc__now_ns();
    if (pthread_mutex_trylock(&t->info_mu) != 0) return;
    if (t->info_at_ns != 0 && now - t->info_at_ns < TC__L3_INFO_TTL_NS) {
        pthread_mutex_unlock(&t->info_mu);
        return;
    }
    t->info_at_ns = now;
    pthread_mutex_unlock(&t->info_mu);
    tc__reply *rep[3];
    info_req q = {.rq = {info_build, info_handle, 3, rep, 1 << 20, t, 0}, .db_keys = -1};
    if (l3_call(t, &q.rq) != 0) return;
    pthread_mutex_lock(&t->info_mu);
    memcpy(t->version, q.version, sizeof t->version);
    memcpy(t->used_memory, q.used_memory, sizeof t->used_memory);
    t->db_keys = q.db_keys;
    t->info_valid = 1;
    pthread_mutex_unlock(&t->info_mu);
}


static void l3_stats(tc__tier *tt, tc_tier_stats *out) {
    l3 *t = (l3 *)tt;
    refresh_info(t);
    int state = atomic_load(&t->pool.brk.state);
    int open = tc__rpool_open_count(&t->pool);
    out->tier = TC_TIER_L3;
    snprintf(out->type, sizeof out->type, "redis");
    out->available = state == TC__BRK_CLOSED && atomic_load(&t->last_ok);
    out->hits = atomic_load(&t->hits);
    out->misses = atomic_load(&t->misses);
    out->sets = atomic_load(&t->sets);
    out->deletes = atomic_load(&t->deletes);
    /* unknown: counting the namespace would need a full SCAN, and the bytes are the server's */
    out->entries = out->bytes = out->max_entries = out->max_bytes = TC_STAT_UNKNOWN;
    out->nextra = 0;
    tc__stat_extra(out, "connection", "%s", out->available && open > 0 ? "connected" : "disconnected");
    tc__stat_extra(out, "circuit", "%s", tc__breaker_state_name(state));
    tc__stat_extra(out, "pool_open", "%d", open);
    tc__stat_extra(out, "pool_size", "%d", t->pool.max);
    pthread_mutex_lock(&t->info_mu);
    if (t->info_valid) {
        tc__stat_extra(out, "server_version", "%s", t->version[0] ? t->version : "unknown");
        tc__stat_extra(out, "used_memory", "%s", t->used_memory[0] ? t->used_memory : "unknown");
        tc__stat_extra(out, "db_keys", "%lld", t->db_keys);
    }
    pthread_mutex_unlock(&t->info_mu);
    tc__stat_extra(out, "errors", "%llu", (unsigned long long)atomic_load(&t->errors));
    tc__stat_extra(out, "timeouts", "%llu", (unsigned long long)atomic_load(&t->timeouts));
    tc__stat_extra(out, "conn_errors", "%llu", (unsigned long long)atomic_load(&t->conn_errors));
    tc__stat_extra(out, "proto_errors", "%llu", (unsigned long long)atomic_load(&t->proto_errors));
    tc__stat_extra(out, "auth_tls_errors", "%llu",
          (unsigned long long)(atomic_load(&t->auth_errors) + atomic_load(&t->tls_errors)));
    tc__stat_extra(out, "reconnects", "%llu", (unsigned long long)atomic_load(&t->pool.reconnects));
    tc__stat_extra(out, "circuit_opens", "%llu", (unsigned long long)atomic_load(&t->pool.brk.opens));
    /* requests that failed without trying the server: refused by the open circuit, or not
     * sent because their public call's budget was spent */
    tc__stat_extra(out, "fast_fails", "%llu",
          (unsigned long long)(atomic_load(&t->fast_fails) + atomic_load(&t->deadline_skips)));
    /* reads of a key under the namespace that is not a value of ours: misses, not errors */
    tc__stat_extra(out, "foreign_keys", "%llu",
          (unsigned long long)(atomic_load(&t->oversized) + atomic_load(&t->wrong_type)));
    /* TC_STATS_EXTRA_MAX is 16: that is all of them (the TLS setting is in the configuration) */
}

/* ------------------------------------------------------------------------ */
/* open / close                                                             */
/* ------------------------------------------------------------------------ */

static void l3_close(tc__tier *tt) {
    l3 *t = (l3 *)tt;
    if (t == NULL) return;
    tc__rpool_destroy(&t->pool);
    tc__rconn_cfg_free(&t->cfg);
    pthread_mutex_destroy(&t->info_mu);
    pthread_mutex_destroy(&t->echo_mu);
    free(t);
}

/* ------------------------------------------------------------------------ */
/* What the listener (l3_listen.c) uses                                     */
/* ------------------------------------------------------------------------ */

const tc__rconn_cfg *tc__l3_conn_cfg(tc__tier *tt) { return &((l3 *)tt)->cfg; }

const char *tc__l3_namespace(tc__tier *tt, size_t *len) {
    l3 *t = (l3 *)tt;
    *len = t->nslen;
    return t->ns;
}

void tc__l3_attach_coh(tc__tier *tt, tc__coh *coh) {
    l3 *t = (l3 *)tt;
    if (coh != NULL) {
        atomic_store(&t->host_nonce, tc__coh_nonce(coh));
        /* the word as it is now: the epoch was checked already by the connections open */
        atomic_store(&t->fleet_seen, atomic_load(&tc__coh_words(coh, t->epoch_key_hash)[1]));
    }
    atomic_store_explicit(&t->coh, coh, memory_order_release);
}

uint64_t tc__l3_host_nonce(tc__tier *tt) { return atomic_load(&((l3 *)tt)->host_nonce); }

uint64_t tc__l3_fleet_epoch(tc__tier *tt) { return atomic_load(&((l3 *)tt)->fleet_epoch); }

uint64_t tc__l3_epoch_misses(tc__tier *tt) { return atomic_load(&((l3 *)tt)->epoch_misses); }

static const tc__tier_ops l3_ops = {
    .get = l3_get,
    .set = l3_set,
    .del = l3_del,
    .clear = l3_clear,
    .clear_prefix = l3_clear_prefix,
    .stats = l3_stats,
    .close = l3_close,
    .mget = l3_mget,
    .mset = l3_mset,
};

int tc__l3_is(const tc__tier *t) { return t != NULL && t->ops == &l3_ops; }


int tc__l3_open(const tc__opts *opt, tc__tier **out, char *errbuf, size_t errlen) {
    *out = NULL; /* opt's ranges were checked by the configuration table (tc__opts_validate) */
    l3 *t = calloc(1, sizeof *t);
    if (t == NULL) return TC_ENOMEM;
    int rc = tc__rconn_cfg_init(&t->cfg, opt, errbuf, errlen);
    if (rc) {
        tc__rconn_cfg_free(&t->cfg);
        free(t);
        return rc;
    }
    if ((rc = tc__rpool_init(&t->pool, &t->cfg, opt->redis_pool_size))) {
        tc__rconn_cfg_free(&t->cfg);
        free(t);
        return rc;
    }
    pthread_mutex_init(&t->info_mu, NULL);
    t->base.ops = &l3_ops;
    t->base.id = TC_TIER_L3;
    t->nslen = strlen(opt->redis_key_prefix);
    memcpy(t->ns, opt->redis_key_prefix, t->nslen);
    t->default_ttl_ms = opt->redis_default_ttl_ms;
    t->max_retries = opt->redis_max_retries;
    t->max_value = opt->max_value_bytes ? opt->max_value_bytes : ((size_t)1 << 20);
    tc__l3_limit_init(&t->limit, t->max_value + TC__L3_HDR_LEN);
    tc__l3_limit_init(&t->head, TC__L3_HEAD_READ);
    pthread_mutex_init(&t->echo_mu, NULL);
    t->epoch_key_hash = tc__hash(TC__L3_KEY_EPOCH, sizeof TC__L3_KEY_EPOCH - 1);
    atomic_store(&t->host_nonce, random_nonzero()); /* until a watch names the host */
    atomic_store(&t->clear_seq, random_nonzero() >> 16);
    if (t->nslen == 0)
        tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_WARN,
                "redis: REDIS_KEY_PREFIX is empty: the cache owns the whole database %d, and a clear "
                "removes every key in it", t->cfg.db);

    /* One connection now, so a bad password or certificate is reported at start; a server
     * that is down is not an error: the tier starts unavailable and recovers by itself. */
    tc__rconn *c = NULL;
    int fresh, open_failed;
    char err[320] = "";
    uint64_t dl = tc__now_ns() + t->cfg.connect_timeout_ms * 1000000ull;
    rc = tc__rpool_acquire(&t->pool, dl, dl, &c, &fresh, &open_failed, err, sizeof err);
    if (rc == 0) {
        /* and the fleet epoch, so the first write need not wait for it; a refusal here (an ACL
         * without EVAL) is the first call's error, and logged now */
        int answered;
        int frc = tc__l3_fleet_check(&t->base, c, dl, &answered, err, sizeof err);
        tc__rpool_release(&t->pool, c);
        atomic_store(&t->last_ok, 1);
        if (frc)
            tc__log(t->cfg.log_fn, t->cfg.log_ud, TC_LOG_WARN, "redis: cannot check the fleet epoch (%s): %s",
                    tc_err_name(frc), bare(err, frc));
    } else {
        count_failure(t, rc);
        tc__breaker_trip(&t->pool.brk, rc);
        int cfgerr = rc == TC_EAUTH || rc == TC_ETLS || rc == TC_ECONFIG;
        tc__log(t->cfg.log_fn, t->cfg.log_ud, cfgerr ? TC_LOG_ERROR : TC_LOG_WARN,
                "redis: L3 tier starts unavailable (%s): %s; it retries by itself", tc_err_name(rc),
                bare(err, rc));
    }
    *out = &t->base;
    return 0;
}
