/*
 * l2_stress_util.h -- the worker loop shared by the L2 stress tests: random gets (every value
 * read is verified against its embedded checksum), sets of random sizes, deletes and rare
 * prefix clears, on a small cache so that eviction and compaction run all the time.
 */
#ifndef TC_TEST_L2_STRESS_UTIL_H
#define TC_TEST_L2_STRESS_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "l2_util.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define L2S_SLOW 1
#else
#define L2S_SLOW 0
#endif

#define L2S_KEYS 3000

/* Counters shared by every process of a test (an anonymous shared mapping). */
typedef struct l2s_shared {
    _Atomic int stop;
    _Atomic uint64_t ops, torn, errors;
} l2s_shared;

static inline l2s_shared *l2s_shared_new(void) {
    void *p = mmap(NULL, sizeof(l2s_shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : (l2s_shared *)p;
}

static inline void l2s_opts(tc__opts *o, const char *name) {
    l2t_opts(o, name, 2000, 512 << 10, TC_POLICY_ALLKEYS_LRU);
    o->max_value_bytes = 1024;
}

typedef struct l2s_worker {
    tc__tier *t;
    l2s_shared *sh;
    uint64_t seed;
    uint64_t max_ops; /* 0: until sh->stop */
} l2s_worker;

static inline void *l2s_run(void *arg) {
    l2s_worker *w = arg;
    uint8_t v[1024], buf[1024];
    char k[32];
    uint64_t x = w->seed | 1;
    for (uint64_t n = 0; w->max_ops == 0 || n < w->max_ops; n++) {
        if ((n & 63) == 0 && atomic_load(&w->sh->stop)) break;
        x = l2t_mix(x + n);
        uint64_t id = x % L2S_KEYS;
        size_t kl = l2t_key(k, sizeof k, id);
        unsigned op = (unsigned)((x >> 32) % 1000);
        int rc;
        if (op < 600) {
            size_t len;
            rc = l2t_get(w->t, k, kl, buf, sizeof buf, &len, NULL);
            if (rc == 0 && !l2t_value_ok(buf, len, id)) atomic_fetch_add(&w->sh->torn, 1);
            if (rc != 0 && rc != TC_EMISS) atomic_fetch_add(&w->sh->errors, 1);
        } else if (op < 950) {
            size_t vl = 24 + (x >> 40) % 1000;
            l2t_value(v, vl, id, x);
            rc = w->t->ops->set(w->t, &TC__KEY(k, kl), v, vl, (x >> 20) % 4 ? TC_TTL_NONE : 5, NULL);
            if (rc != 0) atomic_fetch_add(&w->sh->errors, 1);
        } else if (op < 999) {
            rc = w->t->ops->del(w->t, &TC__KEY(k, kl));
            if (rc != 0) atomic_fetch_add(&w->sh->errors, 1);
        } else {
            char p[16];
            int pl = snprintf(p, sizeof p, "key:%u", (unsigned)(x % 10));
            rc = w->t->ops->clear_prefix(w->t, p, (size_t)pl);
            if (rc != 0) atomic_fetch_add(&w->sh->errors, 1);
        }
        atomic_fetch_add_explicit(&w->sh->ops, 1, memory_order_relaxed);
    }
    return NULL;
}

/* A worker process: opens the tier, runs nthreads workers, exits 0 (or 1 if it cannot open). */
static inline void l2s_process(const char *name, l2s_shared *sh, int nthreads, uint64_t seed,
                               uint64_t max_ops) {
    tc__opts o;
    l2s_opts(&o, name);
    tc__tier *t = NULL;
    char err[512];
    if (tc__l2_open(&o, &t, err, sizeof err) != 0) {
        fprintf(stderr, "worker open: %s\n", err);
        _exit(1);
    }
    pthread_t th[8];
    l2s_worker w[8];
    for (int i = 0; i < nthreads; i++) {
        w[i] = (l2s_worker){t, sh, seed * 1000003u + (uint64_t)i * 7919u, max_ops};
        pthread_create(&th[i], NULL, l2s_run, &w[i]);
    }
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    t->ops->close(t);
    _exit(0);
}

/* Reads every key of the test's key space: each is intact or missing. Returns torn count. */
static inline int l2s_verify_all(const char *name) {
    tc__opts o;
    l2s_opts(&o, name);
    tc__tier *t = NULL;
    char err[512];
    if (tc__l2_open(&o, &t, err, sizeof err) != 0) return -1;
    int torn = 0;
    uint8_t buf[1024];
    char k[32];
    for (uint64_t id = 0; id < L2S_KEYS; id++) {
        size_t len;
        int rc = l2t_get(t, k, l2t_key(k, sizeof k, id), buf, sizeof buf, &len, NULL);
        if (rc == 0 && !l2t_value_ok(buf, len, id)) torn++;
        if (rc != 0 && rc != TC_EMISS) torn++;
    }
    t->ops->close(t);
    return torn;
}

#endif /* TC_TEST_L2_STRESS_UTIL_H */
