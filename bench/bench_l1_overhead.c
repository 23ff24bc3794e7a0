/*
 * bench_l1_overhead -- the cost of the orchestrator: replays a trace through the L1 tier
 * called directly (internal interface) and through the public API with CACHE_TIERING=L1, on
 * the same configuration, alternating runs, and prints both.
 *
 *   bench_l1_overhead TRACE CAPACITY [RUNS]
 *
 * Keys are "key:" + 12 digits (16 bytes), values 100 bytes, built before timing; for each id a
 * get into a caller buffer, and on a miss a set -- as `tiercache bench` and the peers do. The
 * trace is read by tools/trace.c, as the CLI reads it.
 *
 * Why it reaches inside the library: the "direct" mode calls the L1 tier through the internal
 * tier interface (src/tier.h: tc__l1_open and the tier's ops), which the public API does not
 * expose; the difference between the two modes is the figure this benchmark exists for. It is
 * built with src/ on its include path for that reason alone (see CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "trace.h"
#include "util.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: bench_l1_overhead TRACE CAPACITY [RUNS]\n"); return 2; }
    trace_data tr;
    char err[256];
    if (trace_load(argv[1], 0, &tr, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    char (*keys)[TRACE_KEY_LEN] = trace_keys(&tr, err, sizeof err);
    if (keys == NULL) { fprintf(stderr, "%s\n", err); return 2; }
    const uint32_t *trace = tr.ids;
    size_t n = tr.n;
    uint64_t cap = strtoull(argv[2], NULL, 10);
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    char value[100], out[128];
    memset(value, 'v', sizeof value);
    tc__opts opt;
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
    free(keys);
    trace_free(&tr);
    return 0;
}
