/*
 * bench_redis -- the L3 tier through the public API, one thread, against the Redis server the
 * environment names (REDIS_HOST/REDIS_PORT or REDIS_URL), to compare with redis-benchmark on the
 * same server:
 *
 *   get   CACHE_TIERING=L3, tc_get of 100-byte values, one at a time
 *         (compare: redis-benchmark -c 1 -P 1 -t get -d 100)
 *   mget  tc_mget of 16 keys per call (compare: redis-benchmark -c 1 -P 16 -t get -d 100,
 *         in keys per second)
 *
 *   CACHE_TIERING=L3 REDIS_HOST=127.0.0.1 REDIS_PORT=P bench_redis [REQUESTS]   (default 100000)
 *
 * Writes 1000 keys under the prefix tiercache-bench: (REDIS_KEY_PREFIX overrides) and reads them
 * round-robin. Prints one line of name=value pairs per mode.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <tiercache.h>

#define NKEYS 1000
#define BATCH 16

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    long requests = argc > 1 ? atol(argv[1]) : 100000;
    char err[TC_ERRBUF_SIZE];
    if (getenv("REDIS_KEY_PREFIX") == NULL) setenv("REDIS_KEY_PREFIX", "tiercache-bench:", 1);
    tc_cache *c;
    if (tc_open_env(&c, err, sizeof err) != 0) {
        fprintf(stderr, "bench_redis: %s\n", err);
        return 2;
    }
    static char keys[NKEYS][17];
    const void *kp[NKEYS];
    size_t kl[NKEYS];
    char val[100];
    memset(val, 'v', sizeof val);
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof keys[i], "key:%012d", i);
        kp[i] = keys[i];
        kl[i] = 16;
        if (tc_set(c, keys[i], 16, val, sizeof val, 3600000) != 0) {
            fprintf(stderr, "bench_redis: set failed: is the server up?\n");
            return 2;
        }
    }
    char buf[128];
    long hits = 0;
    double t0 = now_s();
    for (long i = 0; i < requests; i++) {
        size_t len = sizeof buf;
        if (tc_get(c, keys[i % NKEYS], 16, buf, &len, NULL) == 0) hits++;
    }
    double dt = now_s() - t0;
    printf("mode=get tiering=%s requests=%ld hits=%ld ops_per_s=%.0f us_per_op=%.2f\n", getenv("CACHE_TIERING"),
           requests, hits, requests / dt, dt * 1e6 / requests);
    tc_mget_result res[BATCH];
    long calls = requests / BATCH;
    hits = 0;
    t0 = now_s();
    for (long i = 0; i < calls; i++) {
        int off = (int)((i * BATCH) % (NKEYS - BATCH));
        if (tc_mget(c, BATCH, kp + off, kl + off, res, sizeof res[0]) != 0) continue;
        for (int k = 0; k < BATCH; k++) {
            if (res[k].rc == 0) hits++;
            tc_free(res[k].val);
        }
    }
    dt = now_s() - t0;
    printf("mode=mget%d tiering=%s keys=%ld hits=%ld keys_per_s=%.0f calls_per_s=%.0f\n", BATCH, getenv("CACHE_TIERING"),
           calls * BATCH, hits, calls * BATCH / dt, calls / dt);
    tc_clear(c);
    tc_close(c);
    return 0;
}
