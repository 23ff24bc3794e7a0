/*
 * cache.c -- the orchestrator: the public API over the configured tiers.
 *
 * Reads go through the tiers top-down; the first hit wins and back-fills every tier above it
 * with the entry's remaining TTL (a lower tier that reports "no expiry" back-fills with the
 * upper tier's default TTL, which bounds how long a process-local copy can go stale). Writes,
 * deletes and clears go to every tier.
 *
 * Coherence. Every set, del and clear marks the key's stripe (clears: every stripe) as written
 * when it starts and again when it has reached every tier (see write_begin). A read notes the
 * stripe's word before it reads a lower tier and passes it as a fence with each back-fill; the
 * tier applies the back-fill only if no write overlapped the read, checked inside the tier's
 * own critical section. So a delete or a write racing a back-fill always wins: stale data is
 * never re-inserted (defect 5 of the original).
 *
 * Failure contract (also in the header):
 *   get   a tier that fails is skipped and counted as an error; the read goes on below it.
 *   set   every tier is written; a tier that fails gets a delete so it holds no stale copy;
 *         the result is 0, TC_EPARTIAL (some failed) or TC_ETIER (all failed). A tier that can
 *         never hold the entry (TC_ETOOLARGE) is skipped without error; TC_EFULL is returned
 *         as is (noeviction).
 *   del, clear, clear_prefix: every tier is tried; 0, TC_EPARTIAL or TC_ETIER.
 *
 * Time. Each public call that reaches the tiers is marked as one call (tc__call_begin, tier.h),
 * so that all of its work on a tier that waits on a server shares one deadline: the SET of a
 * tc_set and its compensating delete, every batch of a tc_mset and its per-entry deletes, the
 * lookup and the re-check of tc_get_or_load. tc_get_or_load's store after the loader is a call
 * of its own (the loader's time is the application's). A clear is not marked: its round trips
 * are as many as the keys in the database, each bounded by the tier on its own, and it stops
 * at the first failure. The untimed L1 hit of tc_get returns before the mark.
 *
 * Statistics. Counters and latency histograms live in per-thread blocks, so the hot path does
 * plain stores into memory no other thread writes: no locked instruction, no shared cache
 * line. Latency is measured on one operation in TC__LAT_EVERY (64) per thread, the first one
 * included (a timed read costs two to four clock reads, a sizeable part of an L1 hit); the
 * histograms are real distributions of those samples.
 *
 * Single flight. tc_get_or_load keeps a table of loads in progress, keyed by the key; callers
 * that miss on a key being loaded wait on the load's condition variable and share its result.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "histogram.h"
#include "l3_listen.h"
#include "l3_redis.h"
#include "render.h"
#include "tier.h"
#include "util.h"

#define TC__LAT_EVERY 64
#define TC__FLIGHT_BUCKETS 64

/* ------------------------------------------------------------------------ */
/* Per-thread statistics blocks                                             */
/* ------------------------------------------------------------------------ */

enum { CNT_HITS, CNT_MISSES, CNT_LOADS, CNT_LOAD_ERRORS, CNT_LOAD_WAITS, CNT__N };

typedef struct tstats {
    struct tstats *next;
    pthread_t owner;
    uint32_t tick;                     /* latency sampling countdown (owner only) */
    _Atomic uint64_t cnt[CNT__N];
    _Atomic uint64_t tier_errors[TC_MAX_TIERS];
    _Atomic uint64_t tier_hits[TC_MAX_TIERS];   /* this handle's lookups, per tier */
    _Atomic uint64_t tier_misses[TC_MAX_TIERS];
    tc__hist lat_all;
    tc__hist lat_tier[TC_MAX_TIERS];
} tstats;

typedef struct flight {
    struct flight *next;
    uint64_t hash;
    void *key;
    size_t klen;
    int refs;
    int done;
    int rc, loader_rc;
    void *val;
    size_t vlen;
    int64_t ttl_ms; /* the value's TTL as stored, and where it came from, for every waiter's info */
    int tier;
    pthread_cond_t cond;
} flight;

struct tc_cache {
    tc__opts opt;
    int ntiers;
    tc__tier *tiers[TC_MAX_TIERS];
    uint64_t serial;                   /* unique per open, for the thread-local block cache */
    uint64_t started_ns;
    _Atomic int last_hit_tier;
    tc__coh *coh;                      /* stamps and fences (docs/COHERENCE.md); NULL: one tier */
    tc__l3_watch *watch;               /* the watchdog of the host's channel (L3 + host's table) */
    int has_shared;                    /* a tier other processes read (L2) */
    pthread_mutex_t blocks_lock;
    tstats *_Atomic blocks;            /* list of per-thread blocks */
    pthread_mutex_t flight_lock[TC__FLIGHT_BUCKETS];
    flight *flights[TC__FLIGHT_BUCKETS];
    int waits;                         /* a tier waits on a server (L3): calls are marked */
    _Atomic uint64_t log_last_ms[TC_MAX_TIERS];    /* rate limit of failure messages */
    _Atomic uint64_t log_suppressed[TC_MAX_TIERS];
    pthread_mutex_t err_lock;                      /* guards last_error*: taken only on a failure */
    char last_error[TC_MAX_TIERS][128];
    int64_t last_error_ms[TC_MAX_TIERS];
};

static _Atomic uint64_t open_serial = 1;

void (*tc__test_fill_hook)(const tc__key *k, int from_tier);
void (*tc__test_write_hook)(const tc__key *k, int tier);

/* A thread remembers its blocks for the last few caches it used. */
#define TL_SLOTS 4
static _Thread_local struct {
    uint64_t serial;
    tstats *block;
} tl_blocks[TL_SLOTS];
static _Thread_local unsigned tl_next;

static tstats *block_register(tc_cache *c) {
    pthread_t self = pthread_self();
    pthread_mutex_lock(&c->blocks_lock);
    tstats *b = atomic_load_explicit(&c->blocks, memory_order_relaxed);
    for (; b != NULL; b = b->next)
        if (pthread_equal(b->owner, self)) break;
    if (b == NULL) {
        b = aligned_alloc(64, (sizeof(tstats) + 63) / 64 * 64);
        if (b != NULL) {
            memset(b, 0, sizeof *b);
            b->owner = self;
            b->next = atomic_load_explicit(&c->blocks, memory_order_relaxed);
            atomic_store_explicit(&c->blocks, b, memory_order_release);
        }
    }
    pthread_mutex_unlock(&c->blocks_lock);
    if (b != NULL) {
        unsigned k = tl_next++ % TL_SLOTS;
        tl_blocks[k].serial = c->serial;
        tl_blocks[k].block = b;
    }
    return b;
}

/* This thread's statistics block for c; NULL only when out of memory (then nothing counts). */
static inline tstats *block_of(tc_cache *c) {
    for (unsigned k = 0; k < TL_SLOTS; k++)
        if (tl_blocks[k].serial == c->serial) return tl_blocks[k].block;
    return block_register(c);
}

/* Increment of a counter only its owner thread writes: a plain load and store. */
static inline void bump(_Atomic uint64_t *x) {
    atomic_store_explicit(x, atomic_load_explicit(x, memory_order_relaxed) + 1, memory_order_relaxed);
}

/* One read of tier idx by this handle: a hit (rc 0) or a miss (TC_EMISS); errors are counted
 * by tier_failed(). */
static inline void count_lookup(tstats *b, int idx, int rc) {
    if (b == NULL) return;
    if (rc == 0) bump(&b->tier_hits[idx]);
    else if (rc == TC_EMISS) bump(&b->tier_misses[idx]);
}

static inline void count(tstats *b, int which) {
    if (b != NULL) bump(&b->cnt[which]);
}

/* Counts a failure of tier idx and reports it through the log callback, at most once a second
 * per tier (with the number of failures not reported since), so an outage cannot flood the
 * application's log. */
static void tier_failed(tc_cache *c, tstats *b, int idx, const char *op, int rc) {
    if (b != NULL) bump(&b->tier_errors[idx]);
    /* the last error, for the statistics; a failure that finds the lock taken by another one
     * (an outage: every thread failing at once) leaves the record to that one */
    if (pthread_mutex_trylock(&c->err_lock) == 0) {
        struct timespec now;
        clock_gettime(CLOCK_REALTIME, &now);
        snprintf(c->last_error[idx], sizeof c->last_error[idx], "%s: %s (%s)", op, tc_strerror(rc), tc_err_name(rc));
        c->last_error_ms[idx] = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
        pthread_mutex_unlock(&c->err_lock);
    }
    atomic_fetch_add_explicit(&c->log_suppressed[idx], 1, memory_order_relaxed);
    if (c->opt.log_fn == NULL) return;
    uint64_t now = tc__now_ms();
    uint64_t last = atomic_load_explicit(&c->log_last_ms[idx], memory_order_relaxed);
    if (last != 0 && now - last < 1000) return;
    if (!atomic_compare_exchange_strong(&c->log_last_ms[idx], &last, now ? now : 1)) return;
    uint64_t n = atomic_exchange_explicit(&c->log_suppressed[idx], 0, memory_order_relaxed);
    tc__log(c->opt.log_fn, c->opt.log_userdata, TC_LOG_WARN, "%s %s failed: %s (%s); %llu failure(s) of %s in the last second",
            tc_tier_name(c->tiers[idx]->id), op, tc_strerror(rc), tc_err_name(rc), (unsigned long long)n,
            tc_tier_name(c->tiers[idx]->id));
}

/* 1 when this operation's latency should be measured. */
static inline int lat_sample(tc_cache *c, tstats *b) {
    if (b == NULL || !c->opt.metrics_enabled) return 0;
    if (b->tick == 0) {
        b->tick = TC__LAT_EVERY;
        return 1;
    }
    b->tick--;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Generations                                                              */
/* ------------------------------------------------------------------------ */

/* The fence of a read of the key with this hash that starts now: the key's stamp, captured
 * before a lower tier is read (docs/COHERENCE.md, 2.3). */
static inline tc__fence fence_capture(tc_cache *c, uint64_t hash) {
    tc__fence f = {c->coh, hash, {TC__STAMP_GAP, TC__STAMP_GAP, 0, TC__STAMP_GAP}, NULL};
    if (c->coh != NULL) f.seen = tc__coh_stamp(c->coh, hash);
    return f;
}

/* ------------------------------------------------------------------------ */
/* Public calls                                                             */
/* ------------------------------------------------------------------------ */

/* Marks a public call for the tiers that give all of one call's work one deadline (tier.h,
 * tc__call_begin). Only L3 does; a cache without it skips the thread-local stores (about 20
 * instructions of an L1 set). Returns what call_end() must be given. */
static inline uint64_t call_begin(const tc_cache *c) { return c->waits ? tc__call_begin() : 0; }

static inline void call_end(const tc_cache *c, uint64_t outer) {
    if (c->waits) tc__call_end(outer);
}

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

typedef int (*tier_ctor)(const tc__opts *, tc__tier **, char *, size_t);

/* Constructors by tier id; NULL where this build has no such tier. */
static const tier_ctor tier_ctors[TC_MAX_TIERS + 1] = {
    [TC_TIER_L1] = tc__l1_open,
    [TC_TIER_L2] = tc__l2_open,
    [TC_TIER_L3] = tc__l3_open,
};

/* The coherence table of a cache over these tiers (docs/COHERENCE.md): none for one tier that
 * is not shared; the host's, named after CACHE_SHARED_NAME, when a tier is seen by other
 * processes (L2) or hosts (L3) and coherence is on; else one of this process's own. */
static int open_coherence(const tc__opts *opt, tc__tier **tiers, int n, tc__coh **out, char *errbuf, size_t errlen) {
    int shared = 0;
    for (int i = 0; i < n; i++) shared |= tiers[i]->shared || tiers[i]->id == TC_TIER_L3;
    *out = NULL;
    if (n == 1 && !tiers[0]->shared) return 0;
    if (shared && opt->coherence && !(atomic_load(&tc__coh_disable) & TC__COH_OFF_SHARED))
        return tc__coh_open_shared(opt, out, errbuf, errlen);
    int rc = tc__coh_open_private(out);
    return rc ? tc__errf(errbuf, errlen, rc, "cannot allocate the coherence table: %s", tc_strerror(rc)) : 0;
}

/* When nobody listened for the host (the first process, or the listener died), L1 and L2 serve
 * nothing until this process's watchdog has connected: a few milliseconds on a healthy
 * server. Opening waits for that, up to one connection attempt and one request (and never
 * longer than CACHE_MAX_STALENESS), so that a cache is not slow for its first calls; a
 * server that does not answer costs that wait once, and the cache then works without its
 * L1 and L2 until the channel is up. */
static void wait_channel(const tc_cache *c) {
    uint64_t bound = c->opt.redis_connect_timeout_ms + c->opt.redis_command_timeout_ms;
    if (bound > c->opt.max_staleness_ms) bound = c->opt.max_staleness_ms;
    uint64_t end = tc__now_ms() + bound;
    while (tc__coh_gap(c->coh) && tc__now_ms() < end) {
        struct timespec ts = {0, 500 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Allocates a cache over tiers already opened (it takes them over, also on failure). */
static int assemble(const tc__opts *opt, tc__tier **tiers, int n, tc_cache **out, char *errbuf, size_t errlen) {
    tc__coh *coh = NULL;
    int rc = open_coherence(opt, tiers, n, &coh, errbuf, errlen);
    tc_cache *c = rc == 0 ? calloc(1, sizeof *c) : NULL;
    if (c == NULL) {
        tc__coh_close(coh);
        for (int i = 0; i < n; i++) tiers[i]->ops->close(tiers[i]);
        return rc ? rc : tc__errf(errbuf, errlen, TC_ENOMEM, "out of memory");
    }
    c->opt = *opt;
    c->serial = atomic_fetch_add(&open_serial, 1);
    c->started_ns = tc__now_ns();
    c->coh = coh;
    pthread_mutex_init(&c->blocks_lock, NULL);
    pthread_mutex_init(&c->err_lock, NULL);
    for (int i = 0; i < TC__FLIGHT_BUCKETS; i++) pthread_mutex_init(&c->flight_lock[i], NULL);
    for (int i = 0; i < n; i++) {
        c->tiers[i] = tiers[i];
        /* L3 keeps no stamps: Redis is not invalidated through the table, it is the source */
        tc__coh *tc = tiers[i]->id == TC_TIER_L3 ? NULL : coh;
        tiers[i]->coh = tc;
        tiers[i]->own_ok = tc != NULL && i == 0 && !tiers[i]->shared;
        if (tiers[i]->ops->attach != NULL) tiers[i]->ops->attach(tiers[i], tc);
        if (tiers[i]->id == TC_TIER_L3) c->waits = 1;
        if (tiers[i]->shared) c->has_shared = 1;
    }
    c->ntiers = n;
    /* other hosts reach this one through Redis: the watchdog (and maybe the host's listener) */
    for (int i = 0; i < n && coh != NULL && coh->shared; i++)
        if (tc__l3_is(tiers[i]) && (rc = tc__l3_watch_start(tiers[i], coh, opt, &c->watch, errbuf, errlen)) != 0) {
            tc_close(c);
            return rc;
        }
    if (c->watch != NULL) wait_channel(c);
    *out = c;
    return 0;
}

int tc__open_opts(const tc__opts *opt, tc_cache **out, char *errbuf, size_t errlen) {
    if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
    if (out == NULL || opt == NULL) return tc__errf(errbuf, errlen, TC_EINVAL, "tc_open: NULL argument");
    *out = NULL;
    int rc = tc__opts_validate(opt, errbuf, errlen);
    if (rc != 0) return rc;
    for (int i = 0; i < opt->ntiers; i++) {
        tc_tier_id id = opt->tiers[i];
        if (tier_ctors[id] == NULL)
            return tc__errf(errbuf, errlen, TC_ENOTIER,
                            "CACHE_TIERING names %s, which is not available in this build", tc_tier_name(id));
    }
    tc__tier *tiers[TC_MAX_TIERS];
    for (int i = 0; i < opt->ntiers; i++) {
        rc = tier_ctors[opt->tiers[i]](opt, &tiers[i], errbuf, errlen);
        if (rc != 0) {
            while (i-- > 0) tiers[i]->ops->close(tiers[i]);
            return rc;
        }
    }
    return assemble(opt, tiers, opt->ntiers, out, errbuf, errlen);
}

int tc__open_tiers(const tc__opts *opt, tc__tier **tiers, int n, tc_cache **out, char *errbuf, size_t errlen) {
    if (n < 1 || n > TC_MAX_TIERS) return tc__errf(errbuf, errlen, TC_EINVAL, "1 to %d tiers", TC_MAX_TIERS);
    *out = NULL;
    return assemble(opt, tiers, n, out, errbuf, errlen);
}

/* The configuration's warnings go to its log callback, one message each, before the tiers
 * open (so they are seen even when the open fails). */
TC_EXPORT int tc_open(const tc_config *cfg, tc_cache **out, char *errbuf, size_t errlen) {
    if (cfg == NULL) {
        if (out != NULL) *out = NULL;
        return tc__errf(errbuf, errlen, TC_EINVAL, "tc_open: cfg is NULL");
    }
    const tc__opts *o = tc__config_opts(cfg);
    if (o->log_fn != NULL) {
        char *w = NULL;
        if (tc_config_warnings(cfg, &w, NULL) == 0)
            for (char *line = w, *nl; line != NULL && *line != '\0'; line = nl + 1) {
                nl = strchr(line, '\n');
                *nl = '\0';
                o->log_fn(o->log_userdata, TC_LOG_WARN, line);
            }
        free(w);
    }
    return tc__open_opts(o, out, errbuf, errlen);
}

TC_EXPORT int tc_open_env(tc_cache **out, char *errbuf, size_t errlen) {
    if (out != NULL) *out = NULL;
    tc_config *cfg;
    int rc = tc_config_new(&cfg);
    if (rc != 0) return tc__errf(errbuf, errlen, rc, "out of memory");
    rc = tc_config_from_env(cfg, errbuf, errlen);
    if (rc == 0) rc = tc_open(cfg, out, errbuf, errlen);
    tc_config_free(cfg);
    return rc;
}

TC_EXPORT void tc_close(tc_cache *c) {
    if (c == NULL) return;
    tc__l3_watch_stop(c->watch); /* before the L3 tier and the table it uses */
    for (int i = 0; i < c->ntiers; i++) c->tiers[i]->ops->close(c->tiers[i]);
    tstats *b = atomic_load(&c->blocks);
    while (b != NULL) {
        tstats *next = b->next;
        free(b);
        b = next;
    }
    /* forget this cache in the calling thread's block cache (other threads match by serial,
     * which is never reused) */
    for (unsigned k = 0; k < TL_SLOTS; k++)
        if (tl_blocks[k].serial == c->serial) tl_blocks[k].serial = 0;
    pthread_mutex_destroy(&c->blocks_lock);
    pthread_mutex_destroy(&c->err_lock);
    for (int i = 0; i < TC__FLIGHT_BUCKETS; i++) pthread_mutex_destroy(&c->flight_lock[i]);
    tc__coh_close(c->coh);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Reads                                                                    */
/* ------------------------------------------------------------------------ */

static inline int check_key(const tc_cache *c, const void *key, size_t klen) {
    if (key == NULL && klen > 0) return TC_EINVAL;
    if (klen > c->opt.max_key_bytes) return TC_EKEYTOOBIG;
    return 0;
}

/* Back-fills tiers [0, upto) with a value found in tier upto. */
static void backfill(tc_cache *c, tstats *b, int upto, const tc__key *k, const void *val, size_t vlen,
                     int64_t ttl_ms, const tc__fence *fence) {
    /* a remaining TTL above the range (a Redis key another client wrote) is held as the longest
     * TTL the tiers accept */
    if (ttl_ms > (int64_t)TC_TTL_MAX_MS) ttl_ms = (int64_t)TC_TTL_MAX_MS;
    for (int i = upto - 1; i >= 0; i--) {
        int64_t ttl = ttl_ms > 0 ? ttl_ms : TC__TTL_DEFAULT;
        int rc = c->tiers[i]->ops->set(c->tiers[i], k, val, vlen, ttl, fence);
        if (rc != 0 && rc != TC_ETOOLARGE && rc != TC_EFULL) tier_failed(c, b, i, "back-fill", rc);
    }
}

/* Records the tier of the latest hit: stored only when it changes, so that threads hitting the
 * same tier share the cache line instead of fighting over it. */
static inline void note_hit_tier(tc_cache *c, int id) {
    if (atomic_load_explicit(&c->last_hit_tier, memory_order_relaxed) != id)
        atomic_store_explicit(&c->last_hit_tier, id, memory_order_relaxed);
}

/* ------------------------------------------------------------------------ */
/* Structs the caller sized (include/tiercache.h, Stability)                */
/* ------------------------------------------------------------------------ */

/* 0 when a sized struct's size field can be trusted (at least the field itself). */
#define SIZED_OK(p) ((p) == NULL || (p)->size >= sizeof(size_t))
#define put_sized tc__put_sized

static inline void info_put(tc_get_info *info, int64_t ttl, int tier) {
    if (info == NULL) return;
    tc_get_info full = {sizeof full, ttl, tier};
    put_sized(info, info->size, &full, sizeof full);
}

/* Reports a hit in tier i to the caller and the statistics. Returns 0, or TC_ENOBUFS when the
 * value did not fit the caller's buffer (an empty value fits any, a NULL one included) and was
 * not captured whole either. */
static inline int hit_done(tc_cache *c, tstats *b, int i, int64_t ttl, const tc__sink *sink, tc_get_info *info,
                           int counted) {
    int id = (int)c->tiers[i]->id;
    info_put(info, ttl, id);
    note_hit_tier(c, id);
    if (counted) count(b, CNT_HITS);
    if (sink->len > sink->cap || (sink->buf == NULL && sink->len > 0)) return sink->heap != NULL ? 0 : TC_ENOBUFS;
    return 0;
}

static int get_lower(tc_cache *c, const tc__key *kp, tstats *b, tc__sink *sink, tc_get_info *info, int counted,
                     int timed, int start);

/* The read path shared by tc_get and tc_get_alloc. counted: 0 for the library's own lookups
 * (the single-flight re-check), which are not the application's hits and misses. */
static int get_into(tc_cache *c, const void *key, size_t klen, tc__sink *sink, tc_get_info *info, int counted) {
    int rc = check_key(c, key, klen);
    if (rc != 0) return rc;
    tc__key k = {key, klen, tc__hash(key, klen)};
    tstats *b = block_of(c);
    int timed = lat_sample(c, b);
    int start = 0;
    if (!timed) {
        /* fast path: an untimed hit in the first tier needs no fence and no back-fill */
        int64_t ttl = TC_TTL_NONE;
        rc = c->tiers[0]->ops->get(c->tiers[0], &k, sink, &ttl);
        count_lookup(b, 0, rc);
        if (rc == 0) return hit_done(c, b, 0, ttl, sink, info, counted);
        if (rc != TC_EMISS) tier_failed(c, b, 0, "get", rc);
        if (c->ntiers == 1) {
            if (rc == TC_ENOMEM && sink->oom) return TC_ENOMEM;
            if (counted) count(b, CNT_MISSES);
            return TC_EMISS;
        }
        start = 1; /* go on below; the fence taken now still covers the tiers read next */
    }
    uint64_t outer = call_begin(c);
    rc = get_lower(c, &k, b, sink, info, counted, timed, start);
    call_end(c, outer);
    return rc;
}

/* The rest of get_into(): the tiers from start down, with a fence and back-fill. */
static int get_lower(tc_cache *c, const tc__key *kp, tstats *b, tc__sink *sink, tc_get_info *info, int counted,
                     int timed, int start) {
    const tc__key k = *kp;
    int rc = TC_EMISS;
    uint64_t t0 = timed ? tc__now_ns() : 0, tprev = t0;
    tc__fence fence = fence_capture(c, k.hash);
    for (int i = start; i < c->ntiers; i++) {
        int64_t ttl = TC_TTL_NONE;
        if (i > 0) sink->want_whole = 1; /* a lower-tier hit is captured whole to back-fill */
        rc = c->tiers[i]->ops->get(c->tiers[i], &k, sink, &ttl);
        count_lookup(b, i, rc);
        if (timed) {
            uint64_t t = tc__now_ns();
            tc__hist_record(&b->lat_tier[i], t - tprev);
            tprev = t;
        }
        if (rc == TC_EMISS) continue;
        if (rc != 0) {
            tier_failed(c, b, i, "get", rc);
            if (rc == TC_ENOMEM && sink->oom) break;
            continue;
        }
        /* a hit */
        if (i > 0) {
            const void *data = tc__sink_data(sink);
            if (tc__test_fill_hook != NULL) tc__test_fill_hook(&k, (int)c->tiers[i]->id);
            if (data != NULL) backfill(c, b, i, &k, data, sink->len, ttl, &fence);
        }
        if (timed) tc__hist_record(&b->lat_all, tc__now_ns() - t0);
        return hit_done(c, b, i, ttl, sink, info, counted);
    }
    if (rc == TC_ENOMEM && sink->oom) return TC_ENOMEM;
    if (counted) count(b, CNT_MISSES);
    if (timed) tc__hist_record(&b->lat_all, tc__now_ns() - t0);
    return TC_EMISS;
}

TC_EXPORT int tc_get(tc_cache *c, const void *key, size_t klen, void *buf, size_t *len, tc_get_info *info) {
    if (c == NULL || len == NULL || (buf == NULL && *len > 0) || !SIZED_OK(info)) return TC_EINVAL;
    tc__sink sink = {buf, *len, 0, NULL, 0, 0};
    int rc = get_into(c, key, klen, &sink, info, 1);
    if (rc == 0 || rc == TC_ENOBUFS) {
        *len = sink.len;
        if (sink.heap != NULL) {
            /* a lower tier's value, captured whole for the back-fill */
            if (sink.len == 0) rc = 0; /* an empty value fits any buffer, NULL included */
            else if (buf != NULL && sink.len <= sink.cap) memcpy(buf, sink.heap, sink.len);
            else rc = TC_ENOBUFS;
        }
    }
    if (sink.heap != NULL) free(sink.heap); /* (rare: only a lower-tier hit allocates) */
    return rc;
}

static int get_alloc(tc_cache *c, const void *key, size_t klen, void **val, size_t *len, tc_get_info *info,
                     int counted) {
    if (c == NULL || val == NULL || len == NULL || !SIZED_OK(info)) return TC_EINVAL;
    *val = NULL;
    *len = 0;
    tc__sink sink = {NULL, 0, 0, NULL, 1, 0};
    int rc = get_into(c, key, klen, &sink, info, counted);
    if (rc == 0) {
        *val = sink.heap;
        *len = sink.len;
        return 0;
    }
    free(sink.heap);
    return rc;
}

TC_EXPORT int tc_get_alloc(tc_cache *c, const void *key, size_t klen, void **val, size_t *len, tc_get_info *info) {
    return get_alloc(c, key, klen, val, len, info, 1);
}

TC_EXPORT int tc_ttl(tc_cache *c, const void *key, size_t klen, int64_t *ttl_ms) {
    if (c == NULL || ttl_ms == NULL) return TC_EINVAL;
    int rc = check_key(c, key, klen);
    if (rc != 0) return rc;
    tc__key k = {key, klen, tc__hash(key, klen)};
    tstats *b = block_of(c);
    uint64_t outer = call_begin(c);
    rc = TC_EMISS;
    for (int i = 0; i < c->ntiers; i++) {
        int r = c->tiers[i]->ops->get(c->tiers[i], &k, NULL, ttl_ms);
        count_lookup(b, i, r);
        if (r == 0) {
            rc = 0;
            break;
        }
        if (r != TC_EMISS) tier_failed(c, b, i, "ttl", r);
    }
    call_end(c, outer);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                   */
/* ------------------------------------------------------------------------ */

/* Combines per-tier outcomes: 0 when all succeeded, TC_ETIER when all failed, else EPARTIAL. */
static int combine(int ok, int failed) {
    if (failed == 0) return 0;
    return ok == 0 ? TC_ETIER : TC_EPARTIAL;
}

/* The outcomes of one entry's write over every tier, and the one rule that turns them into the
 * result of tc_set() (and of each entry of tc_mset()). */
typedef struct write_tally {
    int ok, failed, full, toolarge;
} write_tally;

/* Records tier ti's result rc for a write of key. A tier that did not store the entry gets a
 * delete, so that it holds no stale copy; a failure is counted and reported. */
static void tally_add(tc_cache *c, tstats *b, int ti, const tc__key *k, int rc, write_tally *ty, const char *op) {
    if (rc == 0) {
        ty->ok++;
        return;
    }
    tc__tier *t = c->tiers[ti];
    t->ops->del(t, k);
    if (rc == TC_ETOOLARGE) ty->toolarge++;
    else if (rc == TC_EFULL) ty->full++;
    else {
        ty->failed++;
        tier_failed(c, b, ti, op, rc);
    }
}

/* TC_EFULL when a noeviction tier was full; TC_ETOOLARGE when no tier could ever hold it (and
 * none failed); else 0, TC_EPARTIAL or TC_ETIER as combine() says. A tier that can never hold
 * the entry does not count as a failure. */
static int tally_rc(const write_tally *ty) {
    if (ty->full) return TC_EFULL;
    if (ty->ok == 0 && ty->failed == 0 && ty->toolarge) return TC_ETOOLARGE;
    return combine(ty->ok, ty->failed);
}

/* The checks every write of one entry makes before it touches a tier. */
static int check_entry(const tc_cache *c, const void *key, size_t klen, const void *val, size_t vlen,
                       uint64_t ttl_ms) {
    int rc = check_key(c, key, klen);
    if (rc != 0) return rc;
    if (val == NULL && vlen > 0) return TC_EINVAL;
    if (vlen > c->opt.max_value_bytes) return TC_EVALTOOBIG;
    if (ttl_ms > TC_TTL_MAX_MS) return TC_EINVAL;
    return 0;
}

/* Writes key k (its hash already made) to every tier. fence: NULL for the application's write,
 * or the fence of a load whose result this is. */
/* An application's write of one key, tier by tier (docs/COHERENCE.md, 4.2): the stamp its
 * entries carry, once the key's stripe moved. */
typedef struct write_state {
    tc__wrote w;
    uint64_t inv_before; /* the key's invalidation stamp (s) before the write reached L3 */
    int fleet;           /* 1: L3 below, whose invalidations arrive from other hosts */
} write_state;

/* Before an application's write reaches L3: notes the key's invalidation stamp (the stripe's i
 * word plus the epoch, docs/COHERENCE.md 2.2), for write_finish(). */
static inline void write_begin(tc_cache *c, const tc__key *k, write_state *ws) {
    ws->fleet = c->coh != NULL && c->tiers[c->ntiers - 1]->id == TC_TIER_L3;
    if (ws->fleet) ws->inv_before = tc__coh_stamp(c->coh, k->hash).s;
}

/* After the write reached every tier: when an invalidation of the key's stripe (or an epoch
 * move, or a gap) came in while it was under way, invalidates the stripe once more. Another
 * host may have written the key in L3 after this write did, and its invalidation reached this
 * host before this write installed its value in L2 and L1: the copies then carry a stamp taken
 * after that invalidation and would outlive the newer value (docs/COHERENCE.md 4.2). The
 * check follows the installs, so an invalidation either precedes it (seen here) or follows the
 * installs (and invalidates them itself). Costs one more miss on this host when the write's own
 * echo was what came in, which its arrival after the installs costs anyway. O(1). */
static inline void write_finish(tc_cache *c, const tc__key *k, write_state *ws) {
    if (ws->fleet && tc__coh_stamp(c->coh, k->hash).s != ws->inv_before) (void)tc__coh_bump(c->coh, k->hash);
}

/* Makes sure the write moved its key's stripe, so that no process of the host serves or fills
 * the old value from now on. A shared tier that wrote or deleted the key did it inside its
 * critical section. Without one, this marks the stripe's writes word. With one that failed
 * (its lock timed out, it was full), the old copy may still be there: this invalidates the
 * stripe, which makes that copy stale too -- the invalidation that needs no lock. */
static void write_move(tc_cache *c, const tc__key *k, write_state *ws) {
    if (c->coh != NULL && !ws->w.moved) {
        ws->w.stamp = c->has_shared ? tc__coh_bump(c->coh, k->hash) : tc__coh_mark(c->coh, k->hash);
        ws->w.moved = 1;
    }
}

/* Writes key k to tier i as the application's write. L3 holds no stamps; a shared tier (L2)
 * moves the stripe itself; a process-local tier (L1) installs under a fence made of the stamp
 * after the move, so that a write of the key by anyone in between refuses it. */
static int write_tier(tc_cache *c, int i, const tc__key *k, const void *val, size_t vlen, int64_t ttl,
                      write_state *ws) {
    tc__tier *t = c->tiers[i];
    if (c->coh == NULL || t->id == TC_TIER_L3) return t->ops->set(t, k, val, vlen, ttl, NULL);
    if (t->shared) {
        tc__wrote w = {{0, 0, 0, 0}, 0};
        tc__fence f = {c->coh, k->hash, {0, 0, 0, 0}, &w};
        int rc = t->ops->set(t, k, val, vlen, ttl, &f);
        if (w.moved) ws->w = w;
        return rc;
    }
    write_move(c, k, ws);
    tc__fence f = {c->coh, k->hash, ws->w.stamp, NULL};
    return t->ops->set(t, k, val, vlen, ttl, &f);
}

/* Writes key k (its hash already made) to every tier, bottom-up. fence: NULL for the
 * application's write, or the fence of a load whose result this is (a fill: installed only
 * where no write or invalidation of the key came since the load began). */
static int set_internal(tc_cache *c, const tc__key *k, const void *val, size_t vlen, uint64_t ttl_ms,
                        const tc__fence *fence) {
    int rc = check_entry(c, k->p, k->len, val, vlen, ttl_ms);
    if (rc != 0) return rc;
    tstats *b = block_of(c);
    int timed = lat_sample(c, b);
    uint64_t tprev = timed ? tc__now_ns() : 0;
    uint64_t outer = call_begin(c);
    write_tally ty = {0, 0, 0, 0};
    write_state ws = {{{0, 0, 0, 0}, 0}, 0, 0};
    if (fence == NULL) write_begin(c, k, &ws);
    for (int i = c->ntiers - 1; i >= 0; i--) {
        tc__tier *t = c->tiers[i];
        if (fence != NULL) rc = t->ops->set(t, k, val, vlen, (int64_t)ttl_ms, fence);
        else rc = write_tier(c, i, k, val, vlen, (int64_t)ttl_ms, &ws);
        if (timed) {
            uint64_t now = tc__now_ns();
            tc__hist_record(&b->lat_tier[i], now - tprev);
            tprev = now;
        }
        tally_add(c, b, i, k, rc, &ty, "set");
        if (fence == NULL && tc__test_write_hook != NULL) tc__test_write_hook(k, (int)t->id);
    }
    if (fence == NULL) {
        write_move(c, k, &ws);
        write_finish(c, k, &ws);
    }
    call_end(c, outer);
    return tally_rc(&ty);
}

TC_EXPORT int tc_set(tc_cache *c, const void *key, size_t klen, const void *val, size_t vlen, uint64_t ttl_ms) {
    if (c == NULL) return TC_EINVAL;
    int rc = check_key(c, key, klen);
    if (rc != 0) return rc;
    tc__key k = {key, klen, tc__hash(key, klen)};
    return set_internal(c, &k, val, vlen, ttl_ms, NULL);
}

TC_EXPORT int tc_del(tc_cache *c, const void *key, size_t klen) {
    if (c == NULL) return TC_EINVAL;
    int rc = check_key(c, key, klen);
    if (rc != 0) return rc;
    tstats *b = block_of(c);
    tc__key k = {key, klen, tc__hash(key, klen)};
    uint64_t outer = call_begin(c);
    int ok = 0, failed = 0;
    write_state ws = {{{0, 0, 0, 0}, 0}, 0, 0};
    /* bottom-up, as a write: a shared tier that deleted moved the stripe inside its critical
     * section (a delete that failed there did not, and the move is made here); a process's own
     * tier is emptied after the move */
    for (int i = c->ntiers - 1; i >= 0; i--) {
        tc__tier *t = c->tiers[i];
        if (c->coh != NULL && !t->shared && t->id != TC_TIER_L3) write_move(c, &k, &ws);
        rc = t->ops->del(t, &k);
        if (rc == 0) {
            ok++;
            if (t->shared && c->coh != NULL) ws.w.moved = 1;
        } else {
            failed++;
            tier_failed(c, b, i, "del", rc);
        }
    }
    write_move(c, &k, &ws);
    call_end(c, outer);
    return combine(ok, failed);
}

/* Invalidates every entry (plen 0) or those under prefix, in O(1) on this host: the epoch or
 * the prefix generation moves (docs/COHERENCE.md, 4.4). */
static void clear_move(tc_cache *c, const void *prefix, size_t plen) {
    if (plen == 0) tc__coh_epoch_move(c->coh);
    else (void)tc__coh_prefix_clear(c->coh, prefix, plen); /* a timeout moved the epoch instead */
}

/* With a coherence table, L1 and L2 are cleared by the move alone (their entries are invalid
 * from then on and reclaimed as they are met); L3 removes the keys (SCAN + UNLINK). The move
 * is made again at the end, so that a fill that read L3 before a key was removed cannot
 * install after. Without one (a single process-local tier), the tier removes its entries. */
static int clear_all(tc_cache *c, const void *prefix, size_t plen) {
    tstats *b = block_of(c);
    int ok = 0, failed = 0;
    if (c->coh != NULL) clear_move(c, prefix, plen);
    for (int i = c->ntiers - 1; i >= 0; i--) {
        tc__tier *t = c->tiers[i];
        if (c->coh != NULL && t->id != TC_TIER_L3) {
            ok++;
            continue;
        }
        int rc = plen ? t->ops->clear_prefix(t, prefix, plen) : t->ops->clear(t);
        if (rc == 0) ok++;
        else {
            failed++;
            tier_failed(c, b, i, "clear", rc);
        }
    }
    if (c->coh != NULL) clear_move(c, prefix, plen);
    return combine(ok, failed);
}

TC_EXPORT int tc_clear(tc_cache *c) {
    if (c == NULL) return TC_EINVAL;
    return clear_all(c, "", 0);
}

TC_EXPORT int tc_clear_prefix(tc_cache *c, const void *prefix, size_t plen) {
    if (c == NULL || (prefix == NULL && plen > 0)) return TC_EINVAL;
    return clear_all(c, prefix, plen);
}

/* ------------------------------------------------------------------------ */
/* Several keys at once                                                     */
/* ------------------------------------------------------------------------ */

/* Looks keys ks[0..m-1] up in tier ti: in one call of its mget when it has one, else one get
 * per key. Results go to sinks/ttls/rcs, indexed like ks. */
static void tier_mget(tc_cache *c, int ti, size_t m, const tc__key *ks, tc__sink *sinks, int64_t *ttls, int *rcs) {
    tc__tier *t = c->tiers[ti];
    if (t->ops->mget != NULL) {
        (void)t->ops->mget(t, m, ks, sinks, ttls, rcs); /* a whole-batch failure sets every rcs[j] to it */
        return;
    }
    for (size_t j = 0; j < m; j++) rcs[j] = t->ops->get(t, &ks[j], &sinks[j], &ttls[j]);
}

/* Latency is not sampled for tc_mget / tc_mset: one batch is not one operation, and the
 * histograms describe single-key operations. Counters (hits, misses, tier errors) are kept
 * per key. */
/* The i-th element of the caller's result array, whose elements are rsize bytes. */
#define MGET_AT(out, i, rsize) ((tc_mget_result *)((char *)(out) + (i) * (rsize)))

TC_EXPORT int tc_mget(tc_cache *c, size_t n, const void *const *keys, const size_t *klens, tc_mget_result *out,
                      size_t rsize) {
    if (c == NULL || (n > 0 && (keys == NULL || klens == NULL || out == NULL)) || rsize < sizeof(int))
        return TC_EINVAL;
    if (n == 0) return 0;
    tc_mget_result *res = malloc(n * sizeof *res); /* the library's layout, copied out at the end */
    if (res == NULL) {
        for (size_t i = 0; i < n; i++) MGET_AT(out, i, rsize)->rc = TC_ENOMEM;
        return TC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) res[i] = (tc_mget_result){TC_EMISS, NULL, 0, TC_TTL_NONE, TC_TIER_NONE};
    /* the keys still missing, compacted after each tier: ks[j] is key idx[j] */
    size_t *idx = malloc(n * sizeof *idx);
    tc__key *ks = malloc(n * sizeof *ks);
    tc__sink *sinks = malloc(n * sizeof *sinks);
    int64_t *ttls = malloc(n * sizeof *ttls);
    int *rcs = malloc(n * sizeof *rcs);
    tc__fence *fences = malloc(n * sizeof *fences);
    if (!idx || !ks || !sinks || !ttls || !rcs || !fences) {
        free(idx), free(ks), free(sinks), free(ttls), free(rcs), free(fences), free(res);
        for (size_t i = 0; i < n; i++) MGET_AT(out, i, rsize)->rc = TC_ENOMEM;
        return TC_ENOMEM;
    }
    tstats *b = block_of(c);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = check_key(c, keys[i], klens[i]);
        if (rc != 0) {
            res[i].rc = rc;
            continue;
        }
        ks[m] = (tc__key){keys[i], klens[i], tc__hash(keys[i], klens[i])};
        fences[m] = fence_capture(c, ks[m].hash);
        idx[m++] = i;
    }
    uint64_t outer = call_begin(c);
    for (int ti = 0; ti < c->ntiers && m > 0; ti++) {
        for (size_t j = 0; j < m; j++) {
            sinks[j] = (tc__sink){NULL, 0, 0, NULL, 1, 0};
            ttls[j] = TC_TTL_NONE;
        }
        tier_mget(c, ti, m, ks, sinks, ttls, rcs);
        size_t keep = 0;
        for (size_t j = 0; j < m; j++) {
            size_t k = idx[j];
            count_lookup(b, ti, rcs[j]);
            if (rcs[j] == 0 && sinks[j].heap != NULL) {
                if (ti > 0)
                    backfill(c, b, ti, &ks[j], sinks[j].heap, sinks[j].len, ttls[j], c->coh ? &fences[j] : NULL);
                res[k] = (tc_mget_result){0, sinks[j].heap, sinks[j].len, ttls[j], c->tiers[ti]->id};
                note_hit_tier(c, (int)c->tiers[ti]->id);
                count(b, CNT_HITS);
                continue;
            }
            free(sinks[j].heap);
            if ((rcs[j] == 0 || rcs[j] == TC_ENOMEM) && sinks[j].oom) {
                res[k].rc = TC_ENOMEM;
                continue;
            }
            if (rcs[j] != TC_EMISS) tier_failed(c, b, ti, "mget", rcs[j]);
            idx[keep] = k;
            ks[keep] = ks[j];
            fences[keep] = fences[j];
            keep++;
        }
        m = keep;
    }
    call_end(c, outer);
    for (size_t j = 0; j < m; j++) count(b, CNT_MISSES); /* res[idx[j]] is already TC_EMISS */
    for (size_t i = 0; i < n; i++) {
        /* a caller whose layout has no room for the value pointer cannot free it */
        if (rsize < offsetof(tc_mget_result, val) + sizeof(void *)) {
            free(res[i].val);
            res[i].val = NULL;
        }
        memcpy(MGET_AT(out, i, rsize), &res[i], rsize < sizeof res[i] ? rsize : sizeof res[i]);
    }
    free(idx), free(ks), free(sinks), free(ttls), free(rcs), free(fences), free(res);
    return 0;
}

TC_EXPORT int tc_mset(tc_cache *c, size_t n, const tc_mset_item *items, size_t isize, int *rcs_out) {
    if (c == NULL || (n > 0 && items == NULL) || isize < offsetof(tc_mset_item, klen) + sizeof(size_t))
        return TC_EINVAL;
    if (n == 0) return 0;
    /* the valid entries, in order: ks[j], vp[j] ... are entry idx[j] */
    size_t *idx = malloc(n * sizeof *idx);
    tc__key *ks = malloc(n * sizeof *ks);
    const void **vp = malloc(n * sizeof *vp);
    size_t *vl = malloc(n * sizeof *vl);
    int64_t *ttls = malloc(n * sizeof *ttls);
    int *trc = malloc(n * sizeof *trc), *rcs = malloc(n * sizeof *rcs);
    write_tally *tally = calloc(n, sizeof *tally);
    write_state *ws = malloc(n * sizeof *ws);
    if (!idx || !ks || !vp || !vl || !ttls || !trc || !rcs || !tally || !ws) {
        free(idx), free(ks), free(vp), free(vl), free(ttls), free(trc), free(rcs), free(tally), free(ws);
        if (rcs_out)
            for (size_t i = 0; i < n; i++) rcs_out[i] = TC_ENOMEM;
        return TC_ENOMEM;
    }
    tstats *b = block_of(c);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        /* the caller's element, in the library's layout: fields past isize read as 0 */
        tc_mset_item item = {0};
        memcpy(&item, (const char *)items + i * isize, isize < sizeof item ? isize : sizeof item);
        const tc_mset_item *it = &item;
        rcs[i] = check_entry(c, it->key, it->klen, it->val, it->vlen, it->ttl_ms);
        if (rcs[i] != 0) continue;
        ks[m] = (tc__key){it->key, it->klen, tc__hash(it->key, it->klen)};
        ws[m] = (write_state){{{0, 0, 0, 0}, 0}, 0, 0};
        write_begin(c, &ks[m], &ws[m]);
        vp[m] = it->val;
        vl[m] = it->vlen;
        ttls[m] = (int64_t)it->ttl_ms;
        idx[m++] = i;
    }
    uint64_t outer = call_begin(c);
    /* bottom-up, each entry as tc_set writes it; a tier with a batch operation (L3) gets the
     * whole batch */
    for (int ti = c->ntiers - 1; ti >= 0 && m > 0; ti--) {
        tc__tier *t = c->tiers[ti];
        if (t->ops->mset != NULL && (c->coh == NULL || t->id == TC_TIER_L3))
            (void)t->ops->mset(t, m, ks, vp, vl, ttls, NULL, trc);
        else
            for (size_t j = 0; j < m; j++) trc[j] = write_tier(c, ti, &ks[j], vp[j], vl[j], ttls[j], &ws[j]);
        for (size_t j = 0; j < m; j++) tally_add(c, b, ti, &ks[j], trc[j], &tally[j], "mset");
    }
    for (size_t j = 0; j < m; j++) {
        write_move(c, &ks[j], &ws[j]);
        write_finish(c, &ks[j], &ws[j]);
    }
    call_end(c, outer);
    for (size_t j = 0; j < m; j++) rcs[idx[j]] = tally_rc(&tally[j]);
    int all_ok = 1;
    for (size_t i = 0; i < n; i++) {
        if (rcs[i] != 0) all_ok = 0;
        if (rcs_out) rcs_out[i] = rcs[i];
    }
    free(idx), free(ks), free(vp), free(vl), free(ttls), free(trc), free(rcs), free(tally), free(ws);
    return all_ok ? 0 : TC_EPARTIAL;
}

/* ------------------------------------------------------------------------ */
/* Single flight                                                            */
/* ------------------------------------------------------------------------ */

static void flight_release_locked(flight *f) {
    if (--f->refs > 0) return;
    pthread_cond_destroy(&f->cond);
    free(f->key);
    free(f->val);
    free(f);
}

/* Copies a flight's result for one caller. */
static int flight_result(const flight *f, void **val, size_t *len, tc_get_info *info, int *loader_err) {
    if (loader_err != NULL) *loader_err = f->loader_rc;
    if (f->rc != 0) return f->rc;
    info_put(info, f->ttl_ms, f->tier);
    void *copy = malloc(f->vlen ? f->vlen : 1);
    if (copy == NULL) return TC_ENOMEM;
    if (f->vlen) memcpy(copy, f->val, f->vlen);
    *val = copy;
    *len = f->vlen;
    return 0;
}

TC_EXPORT int tc_get_or_load(tc_cache *c, const void *key, size_t klen, uint64_t ttl_ms, tc_loader_fn loader,
                             void *userdata, void **val, size_t *len, tc_get_info *info, int *loader_err) {
    if (c == NULL || loader == NULL || val == NULL || len == NULL || ttl_ms > TC_TTL_MAX_MS) return TC_EINVAL;
    if (loader_err != NULL) *loader_err = 0;
    /* the lookup and the re-check below are one call; the store after the loader another */
    uint64_t outer = call_begin(c);
    int rc = tc_get_alloc(c, key, klen, val, len, info);
    if (rc != TC_EMISS) {
        call_end(c, outer);
        return rc;
    }
    info_put(info, TC_TTL_NONE, TC_TIER_NONE);
    tstats *b = block_of(c);
    uint64_t hash = tc__hash(key, klen);
    unsigned bucket = (unsigned)(hash >> 40) % TC__FLIGHT_BUCKETS;
    pthread_mutex_t *lock = &c->flight_lock[bucket];

    pthread_mutex_lock(lock);
    flight *f = c->flights[bucket];
    while (f != NULL && !(f->hash == hash && f->klen == klen && memcmp(f->key, key, klen) == 0)) f = f->next;
    if (f != NULL) {
        /* someone is loading it: wait and share */
        call_end(c, outer);
        f->refs++;
        count(b, CNT_LOAD_WAITS);
        while (!f->done) pthread_cond_wait(&f->cond, lock);
        rc = flight_result(f, val, len, info, loader_err);
        flight_release_locked(f);
        pthread_mutex_unlock(lock);
        return rc;
    }
    f = calloc(1, sizeof *f);
    void *kcopy = malloc(klen ? klen : 1);
    if (f == NULL || kcopy == NULL) {
        pthread_mutex_unlock(lock);
        call_end(c, outer);
        free(f);
        free(kcopy);
        return TC_ENOMEM;
    }
    if (klen) memcpy(kcopy, key, klen);
    f->key = kcopy;
    f->klen = klen;
    f->hash = hash;
    f->refs = 1;
    pthread_cond_init(&f->cond, NULL);
    f->next = c->flights[bucket];
    c->flights[bucket] = f;
    pthread_mutex_unlock(lock);

    /* A load that finished between our miss and our registration has stored the value in every
     * tier, the first included: looking there is enough (for L1L3, no second Redis round trip). */
    void *v = NULL;
    size_t vlen = 0;
    tc__sink sink = {NULL, 0, 0, NULL, 1, 0};
    int64_t ttl_left = TC_TTL_NONE;
    int from = TC_TIER_NONE;
    tc__key k = {key, klen, hash};
    rc = c->tiers[0]->ops->get(c->tiers[0], &k, &sink, &ttl_left);
    call_end(c, outer);
    if (rc == 0 && sink.heap != NULL) {
        v = sink.heap;
        vlen = sink.len;
        from = c->tiers[0]->id;
        info_put(info, ttl_left, from);
    } else {
        free(sink.heap); /* (a hit whose copy could not be made: load instead) */
        tc__fence fence = fence_capture(c, hash);
        uint64_t ttl = ttl_ms;
        count(b, CNT_LOADS);
        int lrc = loader(userdata, key, klen, &v, &vlen, &ttl);
        if (lrc != 0) {
            count(b, CNT_LOAD_ERRORS);
            free(v);
            v = NULL;
            vlen = 0;
            f->loader_rc = lrc;
            rc = TC_ELOADER;
        } else {
            if ((v == NULL && vlen > 0) || ttl > TC_TTL_MAX_MS) {
                /* the loader broke its contract: its error, nothing cached */
                free(v);
                v = NULL;
                vlen = 0;
                f->loader_rc = TC_EINVAL;
                rc = TC_ELOADER;
            } else {
                /* stored only if no set/del/clear of this key happened during the load */
                (void)set_internal(c, &k, v, vlen, ttl, c->coh != NULL ? &fence : NULL);
                /* the TTL the value was stored with: the loader's, or the first tier's default
                 * as that tier applied it */
                ttl_left = ttl > 0 ? (int64_t)ttl : TC_TTL_NONE;
                if (ttl == 0 && c->tiers[0]->ops->get(c->tiers[0], &k, NULL, &ttl_left) != 0) ttl_left = TC_TTL_NONE;
                info_put(info, ttl_left, TC_TIER_NONE);
                rc = 0;
            }
        }
    }
    if (rc == 0 && v == NULL) v = malloc(1); /* an empty value is a value */
    if (rc == 0 && v == NULL) rc = TC_ENOMEM;

    pthread_mutex_lock(lock);
    flight **pp = &c->flights[bucket];
    while (*pp != f) pp = &(*pp)->next;
    *pp = f->next;
    f->rc = rc;
    f->done = 1;
    if (rc == 0 && f->refs > 1) {
        f->val = malloc(vlen ? vlen : 1);
        if (f->val == NULL) f->rc = TC_ENOMEM;
        else if (vlen) memcpy(f->val, v, vlen);
        f->vlen = vlen;
        f->ttl_ms = ttl_left;
        f->tier = from;
    }
    if (loader_err != NULL) *loader_err = f->loader_rc;
    pthread_cond_broadcast(&f->cond);
    flight_release_locked(f);
    pthread_mutex_unlock(lock);
    if (rc != 0) {
        free(v);
        return rc;
    }
    *val = v;
    *len = vlen;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

/* Takes a snapshot: the overall figures, and the figures of the tiers whose bit is in
 * tier_mask (a tier's own stats may cost a round trip: L3 asks the server). */
/* The coherence figures of tc_stats: the watchdog's when there is one, else the table's. */
static void coherence_stats(const tc_cache *c, tc_stats *st) {
    st->coherence = c->coh == NULL ? TC_COHERENCE_NONE
                    : !c->coh->shared ? TC_COHERENCE_PROCESS
                    : c->watch != NULL ? TC_COHERENCE_FLEET
                                       : TC_COHERENCE_HOST;
    if (c->watch != NULL) {
        tc__l3_watch_stats(c->watch, st);
    } else if (c->coh != NULL) {
        tc__coh_counters k;
        tc__coh_counters_get(c->coh, &k);
        st->epoch_moves = k.epoch_moves;
    }
}

static int snapshot(tc_cache *c, tc__snapshot *snap, unsigned tier_mask) {
    memset(snap, 0, sizeof *snap);
    tc_stats *st = &snap->st;
    st->size = sizeof *st;
    uint64_t *acc = calloc((size_t)(TC_MAX_TIERS + 1) * TC__HIST_NBUCKETS, sizeof(uint64_t));
    if (acc == NULL) return TC_ENOMEM;
    uint64_t errs[TC_MAX_TIERS] = {0}, thits[TC_MAX_TIERS] = {0}, tmisses[TC_MAX_TIERS] = {0};
    for (tstats *b = atomic_load_explicit(&c->blocks, memory_order_acquire); b != NULL; b = b->next) {
        st->hits += atomic_load_explicit(&b->cnt[CNT_HITS], memory_order_relaxed);
        st->misses += atomic_load_explicit(&b->cnt[CNT_MISSES], memory_order_relaxed);
        st->loads += atomic_load_explicit(&b->cnt[CNT_LOADS], memory_order_relaxed);
        st->load_errors += atomic_load_explicit(&b->cnt[CNT_LOAD_ERRORS], memory_order_relaxed);
        st->load_waits += atomic_load_explicit(&b->cnt[CNT_LOAD_WAITS], memory_order_relaxed);
        for (int i = 0; i < TC_MAX_TIERS; i++) {
            errs[i] += atomic_load_explicit(&b->tier_errors[i], memory_order_relaxed);
            thits[i] += atomic_load_explicit(&b->tier_hits[i], memory_order_relaxed);
            tmisses[i] += atomic_load_explicit(&b->tier_misses[i], memory_order_relaxed);
            tc__hist_merge(acc + (size_t)(i + 1) * TC__HIST_NBUCKETS, &b->lat_tier[i]);
        }
        tc__hist_merge(acc, &b->lat_all);
    }
    tc__hist_summary(acc, &st->latency_samples, &st->p50_ns, &st->p95_ns, &st->p99_ns, &st->max_ns);
    st->last_hit_tier = atomic_load_explicit(&c->last_hit_tier, memory_order_relaxed);
    st->uptime_s = (double)(tc__now_ns() - c->started_ns) / 1e9;
    st->ntiers = c->ntiers;
    coherence_stats(c, st);
    for (int i = 0; i < c->ntiers; i++) {
        st->errors += errs[i];
        if (!(tier_mask & (1u << i))) continue;
        tc_tier_stats *ts = &snap->tiers[i];
        c->tiers[i]->ops->stats(c->tiers[i], ts);
        ts->size = sizeof *ts;
        ts->tier = c->tiers[i]->id;
        ts->errors += errs[i];
        /* hits and misses are this handle's reads through the tier; a tier that counts more
         * (L2 counts every process on the host) keeps its totals as extras */
        if (ts->hits != thits[i] || ts->misses != tmisses[i]) {
            tc__stat_extra(ts, "hits_all_handles", "%llu", (unsigned long long)ts->hits);
            tc__stat_extra(ts, "misses_all_handles", "%llu", (unsigned long long)ts->misses);
        }
        ts->hits = thits[i];
        ts->misses = tmisses[i];
        pthread_mutex_lock(&c->err_lock);
        memcpy(ts->last_error, c->last_error[i], sizeof ts->last_error);
        ts->last_error_ms = c->last_error_ms[i];
        pthread_mutex_unlock(&c->err_lock);
        tc__hist_summary(acc + (size_t)(i + 1) * TC__HIST_NBUCKETS, &ts->latency_samples, &ts->p50_ns, &ts->p95_ns,
                         &ts->p99_ns, &ts->max_ns);
    }
    free(acc);
    return 0;
}

TC_EXPORT int tc_stats_get(tc_cache *c, tc_stats *out) {
    if (c == NULL || out == NULL || !SIZED_OK(out)) return TC_EINVAL;
    tc__snapshot snap;
    int rc = snapshot(c, &snap, 0);
    if (rc == 0) put_sized(out, out->size, &snap.st, sizeof snap.st);
    return rc;
}

TC_EXPORT int tc_tier_stats_get(tc_cache *c, int index, tc_tier_stats *out) {
    if (c == NULL || out == NULL || !SIZED_OK(out) || index < 0 || index >= c->ntiers) return TC_EINVAL;
    tc__snapshot snap;
    int rc = snapshot(c, &snap, 1u << index);
    if (rc == 0) put_sized(out, out->size, &snap.tiers[index], sizeof snap.tiers[index]);
    return rc;
}

typedef int (*renderer)(const tc__snapshot *, char **);

static int render_with(tc_cache *c, char **out, renderer r) {
    if (c == NULL || out == NULL) return TC_EINVAL;
    *out = NULL;
    tc__snapshot snap;
    int rc = snapshot(c, &snap, (1u << TC_MAX_TIERS) - 1);
    if (rc != 0) return rc;
    return r(&snap, out);
}

static int render_health(const tc__snapshot *snap, char **out) {
    return tc__render_health(snap, tc__health_status(snap), out);
}

TC_EXPORT int tc_health_json(tc_cache *c, char **out) { return render_with(c, out, render_health); }
TC_EXPORT int tc_stats_json(tc_cache *c, char **out) { return render_with(c, out, tc__render_stats_json); }
TC_EXPORT int tc_stats_prometheus(tc_cache *c, char **out) { return render_with(c, out, tc__render_prometheus); }
