/*
 * test_l3_threads_stress.c -- many threads on one L3 tier at once: 8 threads x 20000
 * operations (set, get, del, mget, mset) against a real redis-server, with a pool smaller
 * than the number of threads so callers also wait for connections. Every value read is
 * checked: a thread's own keys must hold exactly what it last wrote (or be missing after a
 * delete), and keys shared by all threads must hold a self-consistent value, which would
 * fail if replies were ever delivered to the wrong caller. Also run under TSan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/redis_server.h"
#include "tier.h"
#include "util.h"

enum { NTHREADS = 8, NOPS = 20000, OWN_KEYS = 64, SHARED_KEYS = 16 };

typedef struct worker {
    tc__tier *t;
    int id;
    pthread_t th;
    long errors, bad, hits, misses;
    char failure[160];
} worker;

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A shared value names its key and writer and repeats a digest, so a value of another key
 * or a torn value is recognised. */
static int shared_value(char *out, size_t cap, int key, int writer, long n) {
    uint64_t d = ((uint64_t)key * 1000003u) ^ ((uint64_t)writer << 32) ^ (uint64_t)n;
    return snprintf(out, cap, "S%d|%d|%ld|%016llx", key, writer, n, (unsigned long long)d);
}

static int shared_ok(const char *v, size_t len, int key) {
    char copy[128];
    if (len >= sizeof copy) return 0;
    memcpy(copy, v, len);
    copy[len] = '\0';
    int k, w;
    long n;
    unsigned long long d;
    if (sscanf(copy, "S%d|%d|%ld|%llx", &k, &w, &n, &d) != 4 || k != key) return 0;
    char want[128];
    shared_value(want, sizeof want, k, w, n);
    return strcmp(want, copy) == 0;
}

static void *work(void *arg) {
    worker *w = arg;
    tc__tier *t = w->t;
    uint64_t rng = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
    long expect[OWN_KEYS]; /* last value number written per own key; -1: absent */
    for (int i = 0; i < OWN_KEYS; i++) expect[i] = -1;
    char key[48], val[128], buf[128];
    for (long n = 0; n < NOPS; n++) {
        unsigned r = (unsigned)(rng_next(&rng) % 100);
        int own = (int)(rng_next(&rng) % OWN_KEYS);
        int sh = (int)(rng_next(&rng) % SHARED_KEYS);
        if (r < 35) { /* set own */
            int kl = snprintf(key, sizeof key, "t%d-k%d", w->id, own);
            int vl = snprintf(val, sizeof val, "t%d-k%d-n%ld", w->id, own, n);
            if (t->ops->set(t, &TC__KEY(key, (size_t)kl), val, (size_t)vl, TC_TTL_NONE, NULL) != 0) w->errors++;
            else expect[own] = n;
        } else if (r < 75) { /* get own */
            int kl = snprintf(key, sizeof key, "t%d-k%d", w->id, own);
            tc__sink s = {.buf = buf, .cap = sizeof buf};
            int64_t ttl;
            int rc = t->ops->get(t, &TC__KEY(key, (size_t)kl), &s, &ttl);
            if (rc == 0) {
                w->hits++;
                int vl = snprintf(val, sizeof val, "t%d-k%d-n%ld", w->id, own, expect[own]);
                if (expect[own] < 0 || s.len != (size_t)vl || memcmp(buf, val, (size_t)vl) != 0) {
                    w->bad++;
                    snprintf(w->failure, sizeof w->failure, "own key %s: got %.*s", key, (int)s.len, buf);
                }
            } else if (rc == TC_EMISS) {
                w->misses++;
                if (expect[own] >= 0) {
                    w->bad++;
                    snprintf(w->failure, sizeof w->failure, "own key %s missing", key);
                }
            } else {
                w->errors++;
            }
        } else if (r < 80) { /* del own */
            int kl = snprintf(key, sizeof key, "t%d-k%d", w->id, own);
            if (t->ops->del(t, &TC__KEY(key, (size_t)kl)) != 0) w->errors++;
            else expect[own] = -1;
        } else if (r < 88) { /* set shared */
            int kl = snprintf(key, sizeof key, "shared-%d", sh);
            int vl = shared_value(val, sizeof val, sh, w->id, n);
            if (t->ops->set(t, &TC__KEY(key, (size_t)kl), val, (size_t)vl, 60000, NULL) != 0) w->errors++;
        } else if (r < 96) { /* get shared */
            int kl = snprintf(key, sizeof key, "shared-%d", sh);
            tc__sink s = {.buf = buf, .cap = sizeof buf};
            int64_t ttl;
            int rc = t->ops->get(t, &TC__KEY(key, (size_t)kl), &s, &ttl);
            if (rc == 0 && !shared_ok(buf, s.len, sh)) {
                w->bad++;
                snprintf(w->failure, sizeof w->failure, "shared key %d: got %.*s", sh, (int)s.len, buf);
            } else if (tc_is_error(rc)) {
                w->errors++;
            }
        } else { /* mget of all shared keys */
            char keys[SHARED_KEYS][24];
            tc__key ks[SHARED_KEYS];
            char bufs[SHARED_KEYS][128];
            tc__sink outs[SHARED_KEYS];
            int64_t ttls[SHARED_KEYS];
            int rcs[SHARED_KEYS];
            for (int i = 0; i < SHARED_KEYS; i++) {
                size_t kl = (size_t)snprintf(keys[i], sizeof keys[i], "shared-%d", i);
                ks[i] = TC__KEY(keys[i], kl);
                outs[i] = (tc__sink){.buf = bufs[i], .cap = sizeof bufs[i]};
            }
            if (t->ops->mget(t, SHARED_KEYS, ks, outs, ttls, rcs) != 0) {
                w->errors++;
                continue;
            }
            for (int i = 0; i < SHARED_KEYS; i++)
                if (rcs[i] == 0 && !shared_ok(bufs[i], outs[i].len, i)) {
                    w->bad++;
                    snprintf(w->failure, sizeof w->failure, "mget shared %d: got %.*s", i,
                             (int)outs[i].len, bufs[i]);
                }
        }
    }
    return NULL;
}

static void test_many_threads(void **state) {
    (void)state;
    tc_test_redis srv;
    assert_int_equal(tc_test_redis_start(&srv, NULL), 0);
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    o.redis_pool_size = 4; /* fewer connections than threads: callers wait for each other */
    o.redis_command_timeout_ms = 5000; /* slow sanitizer builds on a shared 2-core machine */
    tc__tier *t = NULL;
    char err[256];
    assert_int_equal(tc__l3_open(&o, &t, err, sizeof err), 0);
    worker w[NTHREADS];
    double t0 = tc_test_now_ms();
    for (int i = 0; i < NTHREADS; i++) {
        w[i] = (worker){.t = t, .id = i};
        assert_int_equal(pthread_create(&w[i].th, NULL, work, &w[i]), 0);
    }
    long errors = 0, bad = 0, hits = 0, misses = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(w[i].th, NULL);
        errors += w[i].errors;
        bad += w[i].bad;
        hits += w[i].hits;
        misses += w[i].misses;
        if (w[i].bad) fprintf(stderr, "thread %d: %s\n", i, w[i].failure);
    }
    double ms = tc_test_now_ms() - t0;
    fprintf(stderr, "%d threads x %d ops in %.0f ms (%.0f ops/s): %ld hits, %ld misses, %ld errors\n",
            NTHREADS, NOPS, ms, NTHREADS * NOPS / (ms / 1000.0), hits, misses, errors);
    assert_int_equal(bad, 0);
    assert_int_equal(errors, 0);
    assert_true(hits > 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    for (int i = 0; i < st.nextra; i++)
        if (strcmp(st.extra[i].name, "pool_open") == 0) assert_true(atoi(st.extra[i].value) <= 4);
    t->ops->close(t);
    tc_test_redis_stop(&srv);
}

int main(void) {
    if (!tc_test_have_redis()) return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
