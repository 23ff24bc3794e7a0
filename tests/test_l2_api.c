/*
 * test_l2_api.c -- the L2 tier through the public API: CACHE_TIERING=L2 alone, L1L2 where a
 * value written by one process is served to another from L2 and back-filled into its L1 with
 * the remaining TTL, and configuration errors reported by tc_open().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "l2_util.h"
#include "helpers/snapshot.h"

static void api_opts(tc__opts *o, const char *name, int with_l1) {
    tc__opts_init(o);
    o->ntiers = 0;
    if (with_l1) o->tiers[o->ntiers++] = TC_TIER_L1;
    o->tiers[o->ntiers++] = TC_TIER_L2;
    snprintf(o->shared_name, sizeof o->shared_name, "%s", name);
    o->shared_max_entries = 10000;
    o->shared_max_bytes = 8 << 20;
    o->max_value_bytes = 64 << 10;
    tc__opts_mark_explicit(o, "CACHE_SHARED_MAX_ENTRIES");
    tc__opts_mark_explicit(o, "CACHE_SHARED_MAX_BYTES");
    tc__opts_mark_explicit(o, "CACHE_MAX_VALUE_BYTES");
}

static void test_l2_only(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "api");
    tc__opts o;
    api_opts(&o, name, 0);
    tc_cache *c = NULL;
    char err[512];
    int rc = tc__open_opts(&o, &c, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(tc_set(c, "user:1", 6, "alice", 5, 0), 0);
    assert_int_equal(tc_set(c, "user:2", 6, "bob", 3, 2000), 0);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(c, "user:1", 6, buf, &len, &info), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "alice", 5);
    assert_int_equal(info.tier, TC_TIER_L2);
    assert_true(info.ttl_ms > 0 && info.ttl_ms <= 300000); /* CACHE_SHARED_DEFAULT_TTL 5m */
    int64_t ttl;
    assert_int_equal(tc_ttl(c, "user:2", 6, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 2000);
    assert_int_equal(tc_clear_prefix(c, "user:", 5), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(c, "user:1", 6, buf, &len, NULL), TC_EMISS);
    tc__snapshot st;
    assert_int_equal(snap_get(c, &st), 0);
    assert_int_equal(st.st.ntiers, 1);
    assert_string_equal(st.tiers[0].type, "shared");
    assert_int_equal(st.tiers[0].sets, 2);
    tc_close(c);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_l1l2_across_processes(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "apix");
    pid_t p = fork();
    if (p == 0) {
        tc__opts o;
        api_opts(&o, name, 1);
        tc_cache *c = NULL;
        if (tc__open_opts(&o, &c, NULL, 0) != 0) _exit(1);
        if (tc_set(c, "k", 1, "shared-value", 12, 3000) != 0) _exit(2);
        tc_close(c);
        _exit(0);
    }
    assert_int_equal(l2t_wait(p), 0);
    tc__opts o;
    api_opts(&o, name, 1);
    tc_cache *c = NULL;
    assert_int_equal(tc__open_opts(&o, &c, NULL, 0), 0);
    char buf[32];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(c, "k", 1, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L2);
    assert_memory_equal(buf, "shared-value", 12);
    assert_true(info.ttl_ms > 0 && info.ttl_ms <= 3000);
    int64_t first = info.ttl_ms;
    len = sizeof buf;
    assert_int_equal(tc_get(c, "k", 1, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L1); /* back-filled */
    assert_true(info.ttl_ms > 0 && info.ttl_ms <= first);
    tc_close(c);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_open_errors(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "apierr");
    tc__opts o;
    api_opts(&o, name, 0);
    o.shared_eviction = TC_POLICY_TINYLFU;
    tc_cache *c = NULL;
    char err[512] = "";
    int rc = tc__open_opts(&o, &c, err, sizeof err);
    assert_true(rc == TC_ECONFIG);
    assert_non_null(strstr(err, "tinylfu"));
    assert_null(c);
    /* Another geometry than the segment's. */
    api_opts(&o, name, 0);
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), 0);
    tc_cache *c2 = NULL;
    o.shared_max_entries = 20000;
    assert_int_equal(tc__open_opts(&o, &c2, err, sizeof err), TC_EVERSION);
    assert_non_null(strstr(err, "tiercache shared destroy"));
    tc_close(c);
    assert_int_equal(tc_shared_destroy(name), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l2_only),
        cmocka_unit_test(test_l1l2_across_processes),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
