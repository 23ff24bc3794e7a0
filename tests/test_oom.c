/*
 * test_oom.c -- allocation failure injection. Every malloc/calloc/realloc/aligned_alloc/mmap
 * of the library is routed through this file (-Wl,--wrap); a scenario of ordinary calls is
 * run again and again, failing the 1st, 2nd, 3rd ... allocation, until a run completes with no
 * failure. Each call must return 0 or TC_ENOMEM (or the codes its contract allows after a
 * failed allocation), never crash, and never leak (the sanitizer build checks leaks).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <cmocka.h>

#include "tiercache.h"
#include "helpers/snapshot.h"

static long fail_at = -1; /* the allocation number that fails; -1: none */
static long count;
static int injected;

void *__real_malloc(size_t);
void *__real_calloc(size_t, size_t);
void *__real_realloc(void *, size_t);
void *__real_aligned_alloc(size_t, size_t);
void *__real_mmap(void *, size_t, int, int, int, off_t);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t a, size_t b);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t al, size_t n);
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off);

static int should_fail(void) {
    if (fail_at < 0) return 0;
    if (count++ == fail_at) {
        injected = 1;
        return 1;
    }
    return 0;
}

void *__wrap_malloc(size_t n) { return should_fail() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t a, size_t b) { return should_fail() ? NULL : __real_calloc(a, b); }
void *__wrap_realloc(void *p, size_t n) { return should_fail() ? NULL : __real_realloc(p, n); }
void *__wrap_aligned_alloc(size_t al, size_t n) { return should_fail() ? NULL : __real_aligned_alloc(al, n); }
void *__wrap_mmap(void *a, size_t n, int prot, int flags, int fd, off_t off) {
    return should_fail() ? MAP_FAILED : __real_mmap(a, n, prot, flags, fd, off);
}

static int loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl) {
    (void)ud;
    (void)key;
    (void)klen;
    (void)ttl;
    *val = __real_malloc(5);
    memcpy(*val, "hello", 5);
    *vlen = 5;
    return 0;
}

#define OK_OR_NOMEM(expr)                                                                     \
    do {                                                                                      \
        int rc_ = (expr);                                                                     \
        if (rc_ != 0 && rc_ != TC_ENOMEM) fail_msg("%s -> %s at fail_at=%ld", #expr, tc_err_name(rc_), fail_at); \
    } while (0)

/* One run of the scenario. */
static void scenario(void) {
    tc_config *cfg = NULL;
    int rc = tc_config_new(&cfg);
    if (rc != 0) {
        assert_int_equal(rc, TC_ENOMEM);
        assert_null(cfg);
        return;
    }
    char err[TC_ERRBUF_SIZE];
    assert_int_equal(tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", "50", err, sizeof err), 0);
    tc_cache *c = NULL;
    rc = tc_open(cfg, &c, err, sizeof err);
    if (rc != 0) {
        assert_int_equal(rc, TC_ENOMEM);
        assert_null(c);
        tc_config_free(cfg);
        return;
    }
    char key[16], buf[64];
    for (int i = 0; i < 80; i++) {
        int n = snprintf(key, sizeof key, "k%d", i);
        rc = tc_set(c, key, (size_t)n, "value", 5, 0);
        /* one tier: a failed allocation is a failure of every tier */
        if (rc != 0 && rc != TC_ENOMEM && rc != TC_ETIER) fail_msg("tc_set -> %s", tc_err_name(rc));
        size_t len = sizeof buf;
        rc = tc_get(c, key, (size_t)n, buf, &len, NULL);
        if (rc != 0 && rc != TC_EMISS && rc != TC_ENOMEM) fail_msg("tc_get -> %s", tc_err_name(rc));
    }
    void *v = NULL;
    size_t len;
    rc = tc_get_alloc(c, "k79", 3, &v, &len, NULL);
    if (rc != 0 && rc != TC_EMISS && rc != TC_ENOMEM) fail_msg("tc_get_alloc -> %s", tc_err_name(rc));
    tc_free(v);
    v = NULL;
    rc = tc_get_or_load(c, "new", 3, 0, loader, NULL, &v, &len, NULL, NULL);
    if (rc != 0 && rc != TC_ENOMEM) fail_msg("tc_get_or_load -> %s", tc_err_name(rc));
    tc_free(v);
    tc__snapshot st;
    OK_OR_NOMEM(snap_get(c, &st));
    char *doc = NULL;
    OK_OR_NOMEM(tc_health_json(c, &doc));
    tc_free(doc);
    doc = NULL;
    OK_OR_NOMEM(tc_stats_prometheus(c, &doc));
    tc_free(doc);
    doc = NULL;
    OK_OR_NOMEM(tc_config_describe(cfg, &doc));
    tc_free(doc);
    tc_config_free(cfg);
    OK_OR_NOMEM(tc_clear(c));
    tc_close(c);
}

static void test_every_allocation_failure_is_survived(void **state) {
    (void)state;
    long runs = 0;
    for (fail_at = 0;; fail_at++) {
        count = 0;
        injected = 0;
        scenario();
        runs++;
        if (!injected) break; /* the scenario needed fewer allocations than fail_at */
    }
    fail_at = -1;
    print_message("survived %ld injected allocation failures\n", runs - 1);
    assert_true(runs > 20); /* the scenario makes dozens of allocations: each failed once */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_allocation_failure_is_survived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
