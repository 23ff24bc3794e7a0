/*
 * bench_l1_hot -- the CPU cost of an L1 hit with everything in the CPU cache: 64 keys read over
 * and over, through the L1 tier called directly and through tc_get (CACHE_TIERING=L1), three
 * alternating rounds. The difference is the orchestrator's fixed cost per call.
 *
 *   bench_l1_hot [GETS]     (default 20000000 per round)
 *
 * Why it reaches inside the library: the "direct" figure calls the L1 tier through the internal
 * tier interface (src/tier.h: tc__l1_open, the tier's ops, tc__sink, TC__KEY), which the public
 * API does not expose and which is the baseline the API figure is compared with. It is built
 * with src/ on its include path for that reason alone (see CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tier.h"
#include "util.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    tc__opts o;
    char err[256];
    tc__opts_init(&o);
    tc__tier *t;
    tc_cache *c;
    if (tc__l1_open(&o, &t, err, sizeof err) != 0 || tc__open_opts(&o, &c, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    char keys[64][17], v[100] = {0}, out[128];
    for (int i = 0; i < 64; i++) {
        snprintf(keys[i], sizeof keys[i], "key:%012d", i);
        t->ops->set(t, &TC__KEY(keys[i], 16), v, sizeof v, TC__TTL_DEFAULT, NULL);
        tc_set(c, keys[i], 16, v, sizeof v, 0);
    }
    for (int r = 0; r < 3; r++) {
        int64_t ttl;
        double t0 = now_s();
        for (long i = 0; i < n; i++) {
            tc__sink s = {out, sizeof out, 0, NULL, 0, 0};
            t->ops->get(t, &TC__KEY(keys[i & 63], 16), &s, &ttl);
        }
        double direct = now_s() - t0;
        t0 = now_s();
        for (long i = 0; i < n; i++) {
            size_t len = sizeof out;
            tc_get(c, keys[i & 63], 16, out, &len, NULL);
        }
        double api = now_s() - t0;
        printf("round=%d direct_ns=%.1f api_ns=%.1f\n", r + 1, direct * 1e9 / (double)n, api * 1e9 / (double)n);
    }
    t->ops->close(t);
    tc_close(c);
    return 0;
}
