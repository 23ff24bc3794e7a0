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
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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

typedef struct { char key[16]; char val[100]; } dm_slot;

static double run_direct_mapped(const uint32_t *trace, size_t n, char (*keys)[16], uint64_t cap) {
    dm_slot *tab = calloc(cap, sizeof *tab);
    char out[128], value[100];
    memset(value, 'v', sizeof value);
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        const char *k = keys[trace[i]];
        dm_slot *s = &tab[tc__hash(k, 16) % cap];
        if (memcmp(s->key, k, 16) == 0) memcpy(out, s->val, sizeof s->val);
        else { memcpy(s->key, k, 16); memcpy(s->val, value, sizeof value); }
    }
    double dt = now_s() - t0;
    free(tab);
    return dt * 1e9 / n;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: bench_l2 TRACE CAPACITY [PROCS] [RUNS]\n"); return 2; }
    size_t n;
    uint32_t *trace = load(argv[1], &n);
    uint64_t cap = strtoull(argv[2], NULL, 10);
    int procs = argc > 3 ? atoi(argv[3]) : 1, runs = argc > 4 ? atoi(argv[4]) : 3;
    uint32_t max = 0;
    for (size_t i = 0; i < n; i++) if (trace[i] > max) max = trace[i];
    char (*keys)[16] = malloc(16 * ((size_t)max + 1));
    for (uint32_t k = 0; k <= max; k++) {
        char tmp[17];
        snprintf(tmp, sizeof tmp, "key:%012u", k);
        memcpy(keys[k], tmp, 16);
    }
    tc__opts opt;
    char err[512];
    if (tc__opts_from_env(&opt, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
    opt.ntiers = 1;
    opt.tiers[0] = TC_TIER_L2;
    opt.shared_max_entries = cap;
    snprintf(opt.shared_name, sizeof opt.shared_name, "bench-l2-%ld", (long)getpid());
    printf("trace=%s requests=%zu capacity=%llu max_bytes=%llu policy=%s procs=%d\n", argv[1], n,
           (unsigned long long)cap, (unsigned long long)opt.shared_max_bytes,
           tc_policy_name(opt.shared_eviction), procs);
    double *res = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    for (int r = 0; r < runs; r++) {
        printf("mode=direct-mapped ns_per_op=%.1f\n", run_direct_mapped(trace, n, keys, cap));
        tc_cache *c;
        if (tc__open_opts(&opt, &c, err, sizeof err) != 0) { fprintf(stderr, "%s\n", err); return 2; }
        tc_clear(c);
        double t0 = now_s();
        for (int p = 0; p < procs; p++) {
            if (fork() != 0) continue;
            tc_cache *pc;
            if (tc__open_opts(&opt, &pc, err, sizeof err) != 0) _exit(1);
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
    tc_shared_destroy(opt.shared_name);
    return 0;
}
