/*
 * bench_l1_overhead -- the cost of the orchestrator: replays a trace through the L1 tier
 * called directly (internal interface) and through the public API with CACHE_TIERING=L1, on
 * the same configuration, alternating runs, and prints both.
 *
 *   bench_l1_overhead TRACE CAPACITY [RUNS]
 *
 * Keys are "key:" + 12 digits (16 bytes), values 100 bytes, built before timing; for each id a
 * get into a caller buffer, and on a miss a set -- as `tiercache bench` and the peers do.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "util.h"

static uint32_t *load(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) { perror(path); exit(2); }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint32_t *t = malloc((size_t)sz);
    if (t == NULL || fread(t, 1, (size_t)sz, f) != (size_t)sz) { perror("read"); exit(2); }
    fclose(f);
    *n = (size_t)sz / 4;
    return t;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: bench_l1_overhead TRACE CAPACITY [RUNS]\n"); return 2; }
    size_t n;
    uint32_t *trace = load(argv[1], &n);
    uint64_t cap = strtoull(argv[2], NULL, 10);
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) if (trace[i] > max) max = trace[i];
    char (*keys)[16] = malloc(16 * ((size_t)max + 1));
    for (uint32_t k = 0; k <= max; k++) {
        char tmp[17];
        snprintf(tmp, sizeof tmp, "key:%012u", k);
        memcpy(keys[k], tmp, 16);
    }
    char value[100], out[128];
    memset(value, 'v', sizeof value);
    tc__opts opt;
    char err[256];
    if (tc__opts_from_env(&opt, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    opt.ntiers = 1;
    opt.tiers[0] = TC_TIER_L1;
    opt.mem_max_entries = cap;
    printf("trace=%s requests=%zu capacity=%llu policy=%s\n", argv[1], n, (unsigned long long)cap,
           tc_policy_name(opt.mem_eviction));
    for (int r = 0; r < runs; r++) {
        /* direct */
        tc__tier *t;
        if (tc__l1_open(&opt, &t, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
        size_t hits = 0;
        double t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            const char *k = keys[trace[i]];
            tc__sink s = {out, sizeof out, 0, NULL, 0, 0};
            int64_t ttl;
            if (t->ops->get(t, &TC__KEY(k, 16), &s, &ttl) == 0) hits++;
            else t->ops->set(t, &TC__KEY(k, 16), value, sizeof value, TC__TTL_DEFAULT, NULL);
        }
        double dt = now_s() - t0;
        printf("mode=direct   hit_ratio=%.4f ns_per_op=%.1f\n", (double)hits / n, dt * 1e9 / n);
        t->ops->close(t);
        /* public API */
        tc_cache *c;
        if (tc__open_opts(&opt, &c, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
        hits = 0;
        t0 = now_s();
        for (size_t i = 0; i < n; i++) {
            const char *k = keys[trace[i]];
            size_t len = sizeof out;
            if (tc_get(c, k, 16, out, &len, NULL) == 0) hits++;
            else tc_set(c, k, 16, value, sizeof value, 0);
        }
        dt = now_s() - t0;
        printf("mode=api      hit_ratio=%.4f ns_per_op=%.1f\n", (double)hits / n, dt * 1e9 / n);
        tc_close(c);
    }
    return 0;
}
