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
    tc_options o;
    tc_options_init(&o);
    /* 5% headroom: each shard bounds its own share, and hashing spreads keys unevenly, so with
     * exactly n a few shards would evict before all n keys are in */
    o.mem_max_entries = (uint64_t)n + (uint64_t)n / 20;
    o.mem_max_bytes = (uint64_t)n * 1024; /* not the binding bound */
    o.mem_default_ttl_ms = 0;
    tc_cache *c;
    char err[256];
    if (tc_open(&o, &c, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
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
    tc_stats st;
    tc_stats_get(c, &st);
    printf("entries=%llu key_bytes=16 value_bytes=100 rss_before_mb=%.1f rss_after_mb=%.1f rss_peak_mb=%.1f "
           "cache_rss_mb=%.1f bytes_per_entry=%.1f charged_mb=%.1f shards=%s\n",
           (unsigned long long)st.tiers[0].entries, before / 1024.0, after / 1024.0, hwm / 1024.0,
           (after - before) / 1024.0, (after - before) * 1024.0 / (double)n, st.tiers[0].bytes / 1e6,
           st.tiers[0].nextra > 1 ? st.tiers[0].extra[1].value : "?");
    tc_close(c);
    return 0;
}
