/*
 * demo.c -- what `make run` shows: a cache in front of a slow database, under load.
 *
 * A product catalogue: WORKERS threads serve product pages. Which product is asked for
 * follows a Zipf law (a few products are very popular, most are rarely seen), as real
 * traffic does. Every page goes through tc_get_or_load(): a hit comes from the cache; a miss
 * calls load_product(), which sleeps LOADER_US microseconds to stand in for a database query
 * and counts its calls. When several workers miss the same product at once, only one calls
 * the loader and the others wait for its result (stampede protection).
 *
 * The cache is configured from the environment, as an application would be: CACHE_TIERING
 * (default L1), CACHE_MEMORY_MAX_ENTRIES (default 10000), ... Only the public API is used.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tiercache.h"

#define WORKERS 4
#define PRODUCTS 100000
#define ZIPF_S 0.99
#define REQUESTS_PER_WORKER 60000
#define LOADER_US 300

/* ======================================================================== */
/* The "database"                                                           */
/* ======================================================================== */

typedef struct database {
    _Atomic uint64_t calls;
    _Atomic uint64_t busy_ns; /* time spent in queries, to price the no-cache alternative */
} database;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* The loader tc_get_or_load() calls on a miss: a slow query that builds the product's
 * record. Returns 0 and a malloc'd value (the cache takes it), or -1 when out of memory. */
static int load_product(void *userdata, const void *key, size_t klen, void **val, size_t *vlen,
                        uint64_t *ttl_ms) {
    database *db = userdata;
    uint64_t t0 = now_ns();
    usleep(LOADER_US); /* the query */
    unsigned id = (unsigned)strtoul((const char *)key + strlen("product:"), NULL, 10);
    char *rec = malloc(96);
    if (rec == NULL) return -1;
    int n = snprintf(rec, 96, "{\"id\":%u,\"name\":\"Product %u\",\"price_cents\":%u}", id, id,
                     100 + id % 9900);
    *val = rec;
    *vlen = (size_t)n;
    atomic_fetch_add(&db->calls, 1);
    atomic_fetch_add(&db->busy_ns, now_ns() - t0);
    (void)klen, (void)ttl_ms; /* the cache's default TTL is fine for a catalogue */
    return 0;
}

/* ======================================================================== */
/* The workers                                                              */
/* ======================================================================== */

static double zipf_cdf[PRODUCTS]; /* cumulative popularity of products 0..PRODUCTS-1 */

typedef struct worker {
    pthread_t th;
    tc_cache *cache;
    database *db;
    uint64_t rng;
    _Atomic uint64_t done; /* requests served, read by the progress display */
    uint64_t errors;
    int first_error;
    char pad[64];
} worker;

static uint64_t rng_next(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A product id drawn from the Zipf law: binary search of a uniform number in the CDF. */
static unsigned pick_product(uint64_t *rng) {
    double u = (double)(rng_next(rng) >> 11) / 9007199254740992.0;
    unsigned lo = 0, hi = PRODUCTS - 1;
    while (lo < hi) {
        unsigned mid = lo + (hi - lo) / 2;
        if (zipf_cdf[mid] < u) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    for (int i = 0; i < REQUESTS_PER_WORKER; i++) {
        char key[32];
        int klen = snprintf(key, sizeof key, "product:%u", pick_product(&w->rng));
        void *page = NULL;
        size_t len = 0;
        int rc = tc_get_or_load(w->cache, key, (size_t)klen, 0, load_product, w->db, &page, &len,
                                NULL, NULL);
        if (rc != 0 && w->errors++ == 0) w->first_error = rc;
        tc_free(page); /* a real server would render the page here */
        atomic_store_explicit(&w->done, (uint64_t)i + 1, memory_order_relaxed);
    }
    return NULL;
}

/* ======================================================================== */
/* Display                                                                  */
/* ======================================================================== */

/* 1234567 -> "1,234,567". */
static const char *count(uint64_t v, char *buf, size_t cap) {
    char tmp[32];
    int n = snprintf(tmp, sizeof tmp, "%" PRIu64, v), o = 0;
    for (int i = 0; i < n && (size_t)o + 2 < cap; i++) {
        if (i > 0 && (n - i) % 3 == 0) buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
    return buf;
}

static const char *duration(uint64_t ns, char *buf, size_t cap) {
    if (ns == 0) snprintf(buf, cap, "-");
    else if (ns < 1000) snprintf(buf, cap, "%" PRIu64 " ns", ns);
    else if (ns < 1000000) snprintf(buf, cap, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, cap, "%.1f ms", (double)ns / 1e6);
    else snprintf(buf, cap, "%.1f s", (double)ns / 1e9);
    return buf;
}

static double pct(uint64_t part, uint64_t whole) { return whole ? 100.0 * (double)part / (double)whole : 0; }

/* Shows progress until every worker is done: in place on a terminal, else a line per 25%. */
static void show_progress(worker *w, uint64_t total, uint64_t t0) {
    int tty = isatty(STDOUT_FILENO);
    int next_quarter = 1;
    for (;;) {
        uint64_t done = 0;
        for (int i = 0; i < WORKERS; i++) done += atomic_load_explicit(&w[i].done, memory_order_relaxed);
        double f = (double)done / (double)total, secs = (double)(now_ns() - t0) / 1e9;
        char c[32];
        if (tty) {
            char bar[21];
            for (int k = 0; k < 20; k++) bar[k] = k < (int)(f * 20) ? '#' : '.';
            bar[20] = '\0';
            printf("\r  [%s] %3.0f%%  %s requests  %.1f s", bar, f * 100, count(done, c, sizeof c), secs);
            fflush(stdout);
        } else {
            while (next_quarter <= 4 && f >= next_quarter / 4.0) {
                printf("  %3d%%  %s requests  %.1f s\n", next_quarter * 25, count(done, c, sizeof c), secs);
                next_quarter++;
            }
        }
        if (done == total) break;
        usleep(100 * 1000);
    }
    if (tty) printf("\n");
}

int main(void) {
    tc_config *cfg;
    char err[TC_ERRBUF_SIZE] = "";
    if (tc_config_new(&cfg) != 0 || tc_config_from_env(cfg, err, sizeof err) != 0) {
        fprintf(stderr, "demo: %s\n", err[0] ? err : "out of memory");
        return 1;
    }
    tc_cache *cache;
    int rc = tc_open(cfg, &cache, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "demo: cannot open the cache: %s (%s)\n", err, tc_err_name(rc));
        return 1;
    }
    char tiering[16] = "", entries[24] = "";
    tc_config_get(cfg, "CACHE_TIERING", tiering, sizeof tiering);
    tc_config_get(cfg, "CACHE_MEMORY_MAX_ENTRIES", entries, sizeof entries);
    tc_config_free(cfg);

    double sum = 0;
    for (int i = 0; i < PRODUCTS; i++) zipf_cdf[i] = (sum += 1.0 / pow(i + 1.0, ZIPF_S));
    for (int i = 0; i < PRODUCTS; i++) zipf_cdf[i] /= sum;

    uint64_t total = (uint64_t)WORKERS * REQUESTS_PER_WORKER;
    char a[32], b[32], c[32];
    printf("tiercache demo: a product catalogue behind a cache\n");
    printf("  %d workers serve %s product pages; popularity follows a Zipf law over %s products.\n",
           WORKERS, count(total, a, sizeof a), count(PRODUCTS, b, sizeof b));
    printf("  Each page is tc_get_or_load(): a miss calls a loader that sleeps %d us (the database).\n",
           LOADER_US);
    printf("  Cache: CACHE_TIERING=%s", tiering);
    if (strncmp(tiering, "L1", 2) == 0) printf(", L1 holds %s entries", count(strtoull(entries, NULL, 10), a, sizeof a));
    printf(" (change with CACHE_* variables)\n\n");

    database db = {0};
    static worker w[WORKERS];
    uint64_t t0 = now_ns();
    for (int i = 0; i < WORKERS; i++) {
        w[i].cache = cache;
        w[i].db = &db;
        w[i].rng = 1000 + (uint64_t)i;
        if (pthread_create(&w[i].th, NULL, worker_main, &w[i]) != 0) {
            fprintf(stderr, "demo: cannot start worker %d\n", i);
            return 1;
        }
    }
    show_progress(w, total, t0);
    uint64_t errors = 0;
    int first_error = 0;
    for (int i = 0; i < WORKERS; i++) {
        pthread_join(w[i].th, NULL);
        if (w[i].errors && !errors) first_error = w[i].first_error;
        errors += w[i].errors;
    }
    uint64_t wall = now_ns() - t0;

    tc_stats st = TC_STATS_INIT;
    if ((rc = tc_stats_get(cache, &st)) != 0) {
        fprintf(stderr, "demo: statistics: %s\n", tc_strerror(rc));
        tc_close(cache);
        return 1;
    }
    uint64_t calls = atomic_load(&db.calls);
    uint64_t per_call = calls ? atomic_load(&db.busy_ns) / calls : (uint64_t)LOADER_US * 1000;

    printf("\nResults\n");
    printf("  %-22s %s (%d workers)\n", "requests", count(total, a, sizeof a), WORKERS);
    /* Ratios of requests: each request counts once, whichever tier (or the loader) served it. */
    printf("  %-22s %.1f%% (%s of %s requests served by the cache)\n", "hit ratio", pct(st.hits, total),
           count(st.hits, a, sizeof a), count(total, b, sizeof b));
    for (int i = 0; i < st.ntiers; i++) {
        tc_tier_stats ts = TC_TIER_STATS_INIT;
        if (tc_tier_stats_get(cache, i, &ts) != 0) continue;
        const tc_tier_stats *t = &ts;
        char label[40];
        snprintf(label, sizeof label, "  %s (%.15s)", tc_tier_name(t->tier), t->type);
        printf("  %-22s %.1f%% (%s)\n", label, pct(t->hits, total), count(t->hits, a, sizeof a));
    }
    printf("  %-22s %s instead of %s: the cache saved %s queries (%.1f%%)\n", "database calls",
           count(calls, a, sizeof a), count(total, b, sizeof b), count(total - calls, c, sizeof c),
           pct(total - calls, total));
    printf("  %-22s %s requests waited for a load already in flight instead of querying again\n",
           "stampede protection", count(st.load_waits, a, sizeof a));
    printf("  %-22s p50 %s, ", "cache latency", duration(st.p50_ns, a, sizeof a));
    printf("p95 %s, ", duration(st.p95_ns, a, sizeof a));
    printf("p99 %s (a get, sampled; tc_stats_get)\n", duration(st.p99_ns, a, sizeof a));
    printf("  %-22s %s\n", "wall time", duration(wall, a, sizeof a));
    printf("  %-22s %s x %s = %s of database time (%s over %d workers)\n", "without the cache",
           count(total, a, sizeof a), duration(per_call, b, sizeof b), duration(total * per_call, c, sizeof c),
           duration(total * per_call / WORKERS, err, sizeof err), WORKERS);
    if (errors)
        printf("  %-22s %s requests failed (first: %s)\n", "errors", count(errors, a, sizeof a),
               tc_strerror(first_error));
    tc_close(cache);
    return errors ? 1 : 0;
}
