/*
 * bench_l2 -- the L2 shared tier through the public API (CACHE_TIERING=L2), replayed by one or
 * more processes at once on one segment, next to a direct-mapped table (the floor: one probe,
 * no locks) on the same trace.
 *
 *   bench_l2 TRACE CAPACITY [PROCS] [RUNS]
 *
 * Keys are "key:" + 12 digits (16 bytes), values 100 bytes, built before timing; for each id
 * a get into a caller buffer and, on a miss, a set -- as bench_l1_overhead does. Prints ns per
 * operation of each process and the aggregate throughput. The segment is named
 * bench-l2-<pid> and destroyed at the end; other settings come from the environment.
 *
 * Public API only; the trace is read by tools/trace.c, as the CLI reads it. The direct-mapped
 * table hashes with XXH3 from the system's libxxhash, the hash the library uses, so the floor
 * pays the same hashing cost as the tier.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <tiercache.h>

#include "trace.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct { char key[16]; char val[100]; } dm_slot;

static double run_direct_mapped(const uint32_t *trace, size_t n, char (*keys)[TRACE_KEY_LEN], uint64_t cap) {
    dm_slot *tab = calloc(cap, sizeof *tab);
    char out[128], value[100];
    memset(value, 'v', sizeof value);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[trace[i]];
        dm_slot *s = &tab[XXH3_64bits(k, 16) % cap];
        if (memcmp(s->key, k, 16) == 0) memcpy(out, s->val, sizeof s->val);
        else { memcpy(s->key, k, 16); memcpy(s->val, value, sizeof value); }
    }
    double dt = now_s() - t0;
    free(tab);
    return dt * 1e9 / n;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: bench_l2 TRACE CAPACITY [PROCS] [RUNS]\n"); return 2; }
    trace_data tr;
    char err[TC_ERRBUF_SIZE];
    if (trace_load(argv[1], 0, &tr, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    char (*keys)[TRACE_KEY_LEN] = trace_keys(&tr, err, sizeof err);
    if (keys == NULL) { fprintf(stderr, "%s\n", err); return 2; }
    const uint32_t *trace = tr.ids;
    size_t n = tr.n;
    uint64_t cap = strtoull(argv[2], NULL, 10);
    int procs = argc > 3 ? atoi(argv[3]) : 1, runs = argc > 4 ? atoi(argv[4]) : 3;
    /* the environment's settings, then this run's: L2 alone, the capacity, a segment of its own */
    char name[64], capacity[32], max_bytes[32] = "?", policy[32] = "?";
    snprintf(name, sizeof name, "bench-l2-%ld", (long)getpid());
    snprintf(capacity, sizeof capacity, "%llu", (unsigned long long)cap);
    tc_config *cfg;
    if (tc_config_new(&cfg) != 0) { fprintf(stderr, "out of memory\n"); return 2; }
    if (tc_config_from_env(cfg, err, sizeof err) != 0 ||
        tc_config_set(cfg, "CACHE_TIERING", "L2", err, sizeof err) != 0 ||
        tc_config_set(cfg, "CACHE_SHARED_MAX_ENTRIES", capacity, err, sizeof err) != 0 ||
        tc_config_set(cfg, "CACHE_SHARED_NAME", name, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    (void)tc_config_get(cfg, "CACHE_SHARED_MAX_BYTES", max_bytes, sizeof max_bytes);
    (void)tc_config_get(cfg, "CACHE_SHARED_EVICTION", policy, sizeof policy);
    printf("trace=%s requests=%zu capacity=%llu max_bytes=%s policy=%s procs=%d\n", argv[1], n,
           (unsigned long long)cap, max_bytes, policy, procs);
    double *res = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int r = 0; r < runs; r++) {
        printf("mode=direct-mapped ns_per_op=%.1f\n", run_direct_mapped(trace, n, keys, cap));
        tc_cache *c;
        if (tc_open(cfg, &c, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
        tc_clear(c);
        double t0 = now_s();
        for (int p = 0; p < procs; p++) {
            if (fork() != 0) continue;
            tc_cache *pc;
            if (tc_open(cfg, &pc, err, sizeof err) != 0) _exit(1);
            char out[128], value[100];
            memset(value, 'v', sizeof value);
            size_t hits = 0;
            double s0 = now_s();
            for (size_t i = 0; i < n; i++) {
                const char *k = keys[trace[(i + (size_t)p * 7919) % n]];
                size_t len = sizeof out;
                if (tc_get(pc, k, 16, out, &len, NULL) == 0) hits++;
                else tc_set(pc, k, 16, value, sizeof value, 0);
            }
            res[2 * p] = (now_s() - s0) * 1e9 / n;
            res[2 * p + 1] = (double)hits / n;
            tc_close(pc);
            _exit(0);
        }
        for (int p = 0; p < procs; p++) wait(NULL);
        double wall = now_s() - t0;
        for (int p = 0; p < procs; p++)
            printf("mode=l2-api proc=%d hit_ratio=%.4f ns_per_op=%.1f\n", p, res[2 * p + 1], res[2 * p]);
        printf("mode=l2-api procs=%d throughput_mops=%.2f\n", procs, procs * (double)n / wall / 1e6);
        tc_close(c);
    }
    tc_shared_destroy(name);
    tc_config_free(cfg);
    free(keys);
    trace_free(&tr);
    return 0;
}
