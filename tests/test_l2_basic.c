/*
 * test_l2_basic.c -- the L2 shared tier in one process: get/set/del, TTLs (sub-second and the
 * default), limits, clear and clear-by-prefix, compaction, configuration and geometry errors,
 * and the admin functions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "l2_util.h"

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tc__tier *open_l2(const tc__opts *o) {
    tc__tier *t = NULL;
    char err[512] = "";
    int rc = tc__l2_open(o, &t, err, sizeof err);
    if (rc != 0) fprintf(stderr, "tc__l2_open: %s: %s\n", tc_err_name(rc), err);
    assert_int_equal(rc, 0);
    assert_non_null(t);
    return t;
}

static void test_set_get_del(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "sgd");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = open_l2(&o);
    char buf[64];
    size_t len;
    int64_t ttl;
    assert_int_equal(l2t_get(t, "a", 1, buf, sizeof buf, &len, &ttl), TC_EMISS);
    assert_int_equal(t->ops->set(t, &TC__KEY("a", 1), "hello", 5, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "a", 1, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(ttl, TC_TTL_NONE);
    /* Overwrite, binary key with NUL, empty value. */
    assert_int_equal(t->ops->set(t, &TC__KEY("a", 1), "world!", 6, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "a", 1, buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 6);
    assert_memory_equal(buf, "world!", 6);
    assert_int_equal(t->ops->set(t, &TC__KEY("k\0x", 3), "", 0, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "k\0x", 3, buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 0);
    assert_int_equal(l2t_get(t, "k\0y", 3, buf, sizeof buf, &len, NULL), TC_EMISS);
    /* A buffer too small: the length is reported, nothing else. */
    assert_int_equal(l2t_get(t, "a", 1, buf, 2, &len, NULL), 0);
    assert_int_equal(len, 6);
    /* TTL-only lookup (no sink). */
    assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), NULL, &ttl), 0);
    /* Delete, and delete of a missing key. */
    assert_int_equal(t->ops->del(t, &TC__KEY("a", 1)), 0);
    assert_int_equal(l2t_get(t, "a", 1, buf, sizeof buf, &len, NULL), TC_EMISS);
    assert_int_equal(t->ops->del(t, &TC__KEY("a", 1)), 0);

    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.tier, TC_TIER_L2);
    assert_string_equal(st.type, "shared");
    assert_int_equal(st.sets, 3);
    assert_int_equal(st.deletes, 1);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.bytes, tc__l2_blk_size(3, 0));
    assert_true(st.hits >= 4);
    assert_true(st.misses >= 3);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_ttl(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "ttl");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    o.shared_default_ttl_ms = 150;
    tc__tier *t = open_l2(&o);
    char buf[16];
    size_t len;
    int64_t ttl;
    assert_int_equal(t->ops->set(t, &TC__KEY("short", 5), "v", 1, 40, NULL), 0);
    assert_int_equal(t->ops->set(t, &TC__KEY("dflt", 4), "v", 1, TC__TTL_DEFAULT, NULL), 0);
    assert_int_equal(t->ops->set(t, &TC__KEY("never", 5), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "short", 5, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 40);
    assert_int_equal(l2t_get(t, "dflt", 4, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl > 40 && ttl <= 150);
    sleep_ms(70);
    assert_int_equal(l2t_get(t, "short", 5, buf, sizeof buf, &len, NULL), TC_EMISS);
    assert_int_equal(l2t_get(t, "dflt", 4, buf, sizeof buf, &len, NULL), 0);
    sleep_ms(120);
    assert_int_equal(l2t_get(t, "dflt", 4, buf, sizeof buf, &len, NULL), TC_EMISS);
    assert_int_equal(l2t_get(t, "never", 5, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(ttl, TC_TTL_NONE);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.expirations, 2);
    assert_int_equal(st.entries, 1);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* Issue 8, item 12: one range for TTLs in every tier; above TC_TTL_MAX_MS a set is refused
 * and stores nothing. */
static void test_ttl_beyond_range_is_refused(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "ttlmax");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = open_l2(&o);
    char buf[16];
    size_t len;
    int64_t ttl;
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, (int64_t)TC_TTL_MAX_MS + 1, NULL), TC_EINVAL);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, (int64_t)(1ull << 48), NULL), TC_EINVAL);
    assert_int_equal(l2t_get(t, "k", 1, buf, sizeof buf, &len, &ttl), TC_EMISS);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, (int64_t)TC_TTL_MAX_MS, NULL), 0);
    assert_int_equal(l2t_get(t, "k", 1, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl > (int64_t)TC_TTL_MAX_MS - 60000);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* Expired entries that nobody reads are reclaimed by the sweep that every set does. */
static void test_expired_reclaimed_without_reads(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "sweep");
    tc__opts o;
    l2t_opts(&o, name, 100, 64 << 10, TC_POLICY_ALLKEYS_LRU); /* one shard */
    tc__tier *t = open_l2(&o);
    char k[32];
    for (int i = 0; i < 50; i++)
        assert_int_equal(t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, (uint64_t)i)), "x", 1, 20, NULL), 0);
    sleep_ms(40);
    /* 256 index slots, 4 steps per set (a step visits a slot or removes an entry):
     * (256 + 50) / 4 < 80 sets sweep the whole index. */
    for (int i = 0; i < 80; i++)
        assert_int_equal(t->ops->set(t, &TC__KEY("other", 5), "y", 1, TC_TTL_NONE, NULL), 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.expirations, 50);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_clear_and_prefix(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "clear");
    tc__opts o;
    l2t_opts(&o, name, 10000, 4 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = open_l2(&o);
    char k[32], buf[16];
    size_t len;
    for (int i = 0; i < 300; i++) {
        int n = snprintf(k, sizeof k, "%s:%d", i % 3 == 0 ? "user" : (i % 3 == 1 ? "us" : "item"), i);
        assert_int_equal(t->ops->set(t, &TC__KEY(k, (size_t)n), "v", 1, TC_TTL_NONE, NULL), 0);
    }
    assert_int_equal(t->ops->clear_prefix(t, "user:", 5), 0);
    for (int i = 0; i < 300; i++) {
        int n = snprintf(k, sizeof k, "%s:%d", i % 3 == 0 ? "user" : (i % 3 == 1 ? "us" : "item"), i);
        assert_int_equal(l2t_get(t, k, (size_t)n, buf, sizeof buf, &len, NULL), i % 3 == 0 ? TC_EMISS : 0);
    }
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.entries, 200);
    assert_int_equal(t->ops->clear(t), 0);
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    assert_int_equal(l2t_get(t, "item:2", 6, buf, sizeof buf, &len, NULL), TC_EMISS);
    assert_int_equal(t->ops->set(t, &TC__KEY("after", 5), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "after", 5, buf, sizeof buf, &len, NULL), 0);
    char rep[1024];
    assert_int_equal(tc_shared_check(name, rep, sizeof rep), 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* Both limits hold at every step; a value of the largest allowed size fits, a larger one is
 * refused; overwrites churn the heap through many compactions without losing a value. */
static void test_limits_and_compaction(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "limits");
    tc__opts o;
    l2t_opts(&o, name, 500, 256 << 10, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = open_l2(&o);
    uint8_t v[4096], buf[4096];
    char k[32];
    size_t len;
    tc_tier_stats st = TC_TIER_STATS_INIT;
    uint64_t seed = 1;
    for (int round = 0; round < 4000; round++) {
        uint64_t id = l2t_mix(seed++) % 700;
        size_t vl = 24 + l2t_mix(seed++) % 2000;
        l2t_value(v, vl, id, seed);
        assert_int_equal(t->ops->set(t, &TC__KEY(k, l2t_key(k, sizeof k, id)), v, vl, TC_TTL_NONE, NULL), 0);
        assert_int_equal(l2t_get(t, k, strlen(k), buf, sizeof buf, &len, NULL), 0);
        assert_int_equal(len, vl);
        assert_true(l2t_value_ok(buf, len, id));
        if (round % 100 == 0) {
            memset(&st, 0, sizeof st);
            t->ops->stats(t, &st);
            assert_true(st.entries <= 500);
            assert_true(st.bytes <= (256 << 10));
        }
    }
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_true(st.evictions > 0);
    int found = 0;
    for (uint64_t id = 0; id < 700; id++) {
        int rc = l2t_get(t, k, l2t_key(k, sizeof k, id), buf, sizeof buf, &len, NULL);
        assert_true(rc == 0 || rc == TC_EMISS);
        if (rc == 0) {
            assert_true(l2t_value_ok(buf, len, id));
            found++;
        }
    }
    assert_true(found > 50);
    /* Compactions happened (the extra counter) and the segment is consistent. */
    uint64_t compactions = 0;
    for (int i = 0; i < st.nextra; i++)
        if (strcmp(st.extra[i].name, "compactions") == 0) compactions = strtoull(st.extra[i].value, NULL, 10);
    assert_true(compactions > 0);
    char rep[2048];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc) fprintf(stderr, "%s", rep);
    assert_int_equal(rc, 0);
    /* Largest value fits; larger ones are refused. */
    memset(v, 'x', sizeof v);
    assert_int_equal(t->ops->set(t, &TC__KEY("big", 3), v, 4096, TC_TTL_NONE, NULL), 0);
    assert_int_equal(l2t_get(t, "big", 3, buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 4096);
    assert_int_equal(t->ops->set(t, &TC__KEY("big2", 4), v, 4097, TC_TTL_NONE, NULL), TC_ETOOLARGE);
    char bigkey[200];
    memset(bigkey, 'k', sizeof bigkey);
    assert_int_equal(t->ops->set(t, &TC__KEY(bigkey, 129), "v", 1, TC_TTL_NONE, NULL), TC_ETOOLARGE);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void expect_open_error(const tc__opts *o, int code, const char *needle) {
    tc__tier *t = (tc__tier *)1;
    char err[1024] = "";
    int rc = tc__l2_open(o, &t, err, sizeof err);
    if (rc != code || strstr(err, needle) == NULL)
        fprintf(stderr, "got %s: %s (wanted %s with '%s')\n", tc_err_name(rc), err,
                tc_err_name(code), needle);
    assert_int_equal(rc, code);
    assert_null(t);
    assert_non_null(strstr(err, needle));
}

static void test_config_errors(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "cfg");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_TINYLFU);
    expect_open_error(&o, TC_ECONFIG, "allkeys-lfu");
    l2t_opts(&o, name, 1000, 1000, TC_POLICY_ALLKEYS_LRU);
    expect_open_error(&o, TC_ECONFIG, "CACHE_SHARED_MAX_BYTES=1000");
    l2t_opts(&o, name, 0, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    expect_open_error(&o, TC_ECONFIG, "CACHE_SHARED_MAX_ENTRIES=0");
    l2t_opts(&o, "bad/name", 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    expect_open_error(&o, TC_EINVAL, "0x2f");
    l2t_opts(&o, ".hidden", 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    expect_open_error(&o, TC_EINVAL, "must not start with '.'");
    l2t_opts(&o, "", 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    expect_open_error(&o, TC_EINVAL, "empty");
    /* Nothing was created by the failed opens. */
    tc_tier_stats st = TC_TIER_STATS_INIT;
    char err[256];
    assert_int_equal(tc_shared_stats(name, &st, err, sizeof err), TC_ENOENT);
    assert_non_null(strstr(err, "does not exist"));
}

/* A second process (here: a second open) asking for another geometry gets TC_EVERSION naming
 * what differs and the command that fixes it; a segment of another layout version too. */
static void test_geometry_and_version(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "geom");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = open_l2(&o);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, TC_TTL_NONE, NULL), 0);
    tc__opts o2 = o;
    o2.shared_max_entries = 2000;
    expect_open_error(&o2, TC_EVERSION, "CACHE_SHARED_MAX_ENTRIES=1000 in the segment, 2000 asked");
    expect_open_error(&o2, TC_EVERSION, "tiercache shared destroy");
    o2 = o;
    o2.shared_eviction = TC_POLICY_VOLATILE_TTL;
    expect_open_error(&o2, TC_EVERSION, "CACHE_SHARED_EVICTION=allkeys-lru in the segment, volatile-ttl asked");
    o2 = o;
    o2.max_value_bytes = 100;
    expect_open_error(&o2, TC_EVERSION, "CACHE_MAX_VALUE_BYTES");
    /* The default TTL is per process, not geometry. */
    o2 = o;
    o2.shared_default_ttl_ms = 5000;
    tc__tier *t2 = open_l2(&o2);
    char buf[8];
    size_t len;
    assert_int_equal(l2t_get(t2, "k", 1, buf, sizeof buf, &len, NULL), 0);
    t2->ops->close(t2);

    /* Another layout version: rewrite the header's version field in the file. */
    tc__l2_seg seg;
    char err[512];
    assert_int_equal(tc__l2_seg_open(name, NULL, NULL, 0, &seg, err, sizeof err), 0);
    uint32_t *ver = (uint32_t *)(seg.base + offsetof(tc__l2_hdr, layout_version));
    *ver = TC__L2_LAYOUT_VERSION + 1;
    char want[64];
    snprintf(want, sizeof want, "layout version %u", (unsigned)TC__L2_LAYOUT_VERSION + 1);
    expect_open_error(&o, TC_EVERSION, want);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    assert_int_equal(tc_shared_stats(name, &st, err, sizeof err), TC_EVERSION);
    *ver = TC__L2_LAYOUT_VERSION;
    tc__l2_seg_close(&seg);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

static void test_admin(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "admin");
    tc__opts o;
    l2t_opts(&o, name, 1000, 1 << 20, TC_POLICY_VOLATILE_LRU);
    tc__tier *t = open_l2(&o);
    /* Owner-only permissions. */
    char path[256];
    snprintf(path, sizeof path, "/dev/shm/tiercache.%s", name);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char *list = NULL;
    size_t n = 0;
    assert_int_equal(tc_shared_list(&list, &n), 0);
    assert_true(n >= 1);
    char line[128];
    snprintf(line, sizeof line, "%s\n", name);
    assert_non_null(strstr(list, line));
    tc_free(list);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, 10000, NULL), 0);
    char buf[8];
    size_t len;
    assert_int_equal(l2t_get(t, "k", 1, buf, sizeof buf, &len, NULL), 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    char err[256];
    assert_int_equal(tc_shared_stats(name, &st, err, sizeof err), 0);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.sets, 1);
    assert_int_equal(st.max_entries, 1000);
    assert_int_equal(st.max_bytes, 1 << 20);
    int saw_policy = 0, saw_procs = 0;
    for (int i = 0; i < st.nextra; i++) {
        if (strcmp(st.extra[i].name, "policy") == 0) saw_policy = !strcmp(st.extra[i].value, "volatile-lru");
        if (strcmp(st.extra[i].name, "processes") == 0) saw_procs = !strcmp(st.extra[i].value, "1");
    }
    assert_true(saw_policy);
    assert_true(saw_procs);
    char rep[512];
    assert_int_equal(tc_shared_check(name, rep, sizeof rep), 0);
    assert_non_null(strstr(rep, "consistent"));
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
    assert_int_equal(tc_shared_destroy(name), TC_ENOENT);
    assert_int_equal(tc_shared_destroy("no/slash"), TC_EINVAL);
    assert_int_equal(tc_shared_check(name, rep, sizeof rep), TC_ENOENT);
    assert_non_null(strstr(rep, "does not exist"));
    assert_int_equal(tc_shared_stats("a b", &st, err, sizeof err), TC_EINVAL);
    assert_non_null(strstr(err, "0x20"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_ttl_beyond_range_is_refused),
        cmocka_unit_test(test_expired_reclaimed_without_reads),
        cmocka_unit_test(test_clear_and_prefix),
        cmocka_unit_test(test_limits_and_compaction),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_geometry_and_version),
        cmocka_unit_test(test_admin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
