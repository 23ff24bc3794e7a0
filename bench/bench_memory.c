/*
 * bench_memory -- resident memory of the L1 tier holding N entries of 16-byte keys and 100-byte
 * values (issue target: 1M entries in at most 180 MB), through the public API.
 *
 *   bench_memory [N]     (default 1000000)
 *
 * Prints the process's resident set before opening and after filling (from /proc/self/status),
 * the difference per entry, and the bytes the tier charges for what it holds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tiercache.h>

static long rss_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long v = -1;
    size_t n = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, n) == 0) v = strtol(line + n, NULL, 10);
    if (f != NULL) fclose(f);
    return v;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    long before = rss_kb("VmRSS:");
    tc_config *cfg;
    char err[TC_ERRBUF_SIZE] = "", entries[32], bytes[32];
    /* 5% headroom: each shard bounds its own share, and hashing spreads keys unevenly, so with
     * exactly n a few shards would evict before all n keys are in */
    snprintf(entries, sizeof entries, "%ld", n + n / 20);
    snprintf(bytes, sizeof bytes, "%ld", n * 1024); /* not the binding bound */
    tc_cache *c;
    if (tc_config_new(&cfg) != 0 || tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", entries, err, sizeof err) != 0 ||
        tc_config_set(cfg, "CACHE_MEMORY_MAX_BYTES", bytes, err, sizeof err) != 0 ||
        tc_config_set(cfg, "CACHE_MEMORY_DEFAULT_TTL", "0", err, sizeof err) != 0 ||
        tc_open(cfg, &c, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    tc_config_free(cfg);
    char key[32], val[100];
    memset(val, 'v', sizeof val);
    for (long i = 0; i < n; i++) {
        snprintf(key, sizeof key, "key:%012ld", i % 1000000000000L);
        if (tc_set(c, key, 16, val, sizeof val, 0) != 0) {
            fprintf(stderr, "set failed at %ld\n", i);
            return 1;
        }
    }
    long after = rss_kb("VmRSS:"), hwm = rss_kb("VmHWM:");
    tc_tier_stats l1 = TC_TIER_STATS_INIT;
    tc_tier_stats_get(c, 0, &l1);
    printf("entries=%llu key_bytes=16 value_bytes=100 rss_before_mb=%.1f rss_after_mb=%.1f rss_peak_mb=%.1f "
           "cache_rss_mb=%.1f bytes_per_entry=%.1f charged_mb=%.1f shards=%s\n",
           (unsigned long long)l1.entries, before / 1024.0, after / 1024.0, hwm / 1024.0,
           (after - before) / 1024.0, (after - before) * 1024.0 / (double)n, l1.bytes / 1e6,
           l1.nextra > 1 ? l1.extra[1].value : "?");
    tc_close(c);
    return 0;
}
