/*
 * quickstart.c -- the README's API snippets, as one program that runs (a test runs it).
 *
 *   cc quickstart.c $(pkg-config --cflags --libs tiercache)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiercache.h>

/* The application's loader: called once per missing key, however many threads ask for it. */
static int load_product(void *db, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl_ms) {
    (void)db;
    char *v = malloc(64);
    if (v == NULL) return -1;
    *vlen = (size_t)snprintf(v, 64, "product %.*s from the database", (int)klen, (const char *)key);
    *val = v;       /* the cache takes ownership and frees it */
    *ttl_ms = 30000; /* may override the TTL per value */
    return 0;
}

int main(void) {
    /* Open: from the environment (CACHE_TIERING, CACHE_MEMORY_*, REDIS_*, ...). */
    tc_cache *cache;
    char err[TC_ERRBUF_SIZE];
    if (tc_open_env(&cache, err, sizeof err) != 0) {
        fprintf(stderr, "cache: %s\n", err); /* names the variable, the value, what is accepted */
        return 1;
    }
    /* or: tc_config *cfg; tc_config_new(&cfg); tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", "50000", err,
     * sizeof err); tc_open(cfg, &cache, err, sizeof err); tc_config_free(cfg); */

    /* Write and read: keys and values are bytes; TTL in ms (0: the tier's default). */
    if (tc_set(cache, "user:42", 7, "{\"name\":\"Ada\"}", 14, 60000) != 0) return 1;
    char buf[256];
    size_t len = sizeof buf; /* in: capacity; out: the value's length */
    tc_get_info info = TC_GET_INFO_INIT; /* sized structs: see "Stability" in tiercache.h */
    int rc = tc_get(cache, "user:42", 7, buf, &len, &info);
    if (rc == 0)
        printf("hit from %s: %.*s (expires in %lld ms)\n", tc_tier_name(info.tier), (int)len, buf,
               (long long)info.ttl_ms);
    else if (rc == TC_EMISS)
        printf("miss\n");
    else
        printf("error: %s\n", tc_strerror(rc));

    /* Values of unknown size: let the library allocate. */
    void *val;
    if (tc_get_alloc(cache, "user:42", 7, &val, &len, NULL) == 0) tc_free(val);

    /* Read-through with stampede protection. */
    rc = tc_get_or_load(cache, "sku-1", 5, 0, load_product, NULL, &val, &len, &info, NULL);
    if (rc == 0) {
        printf("%.*s (%s)\n", (int)len, (char *)val, info.tier ? "cached" : "loaded");
        tc_free(val);
    }

    /* Invalidate: one key, a prefix, everything -- in every tier. */
    tc_del(cache, "user:42", 7);
    tc_clear_prefix(cache, "sku-", 4);

    /* Observe: counters per tier, and the health document. */
    tc_stats st = TC_STATS_INIT;
    tc_tier_stats l1 = TC_TIER_STATS_INIT;
    tc_stats_get(cache, &st);
    tc_tier_stats_get(cache, 0, &l1);
    printf("hits %llu, misses %llu, L1 entries %llu\n", (unsigned long long)st.hits,
           (unsigned long long)st.misses, (unsigned long long)l1.entries);
    char *health;
    if (tc_health_json(cache, &health) == 0) {
        printf("%.60s...\n", health);
        tc_free(health);
    }
    tc_close(cache);
    return 0;
}
