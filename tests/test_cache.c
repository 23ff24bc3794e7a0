/*
 * test_cache.c -- the orchestrator through the public API: reads through tiers in order,
 * back-fill with the remaining TTL, the failure contract of get/set/del/clear, the race of a
 * delete with a back-fill, single-flight loading, size negotiation, limits and statistics.
 *
 * Multi-tier cases stack two real L1 tiers (the lower one presented as L2) behind a
 * fault-injecting wrapper, through the tc__open_tiers seam.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "helpers/faulty_tier.h"
#include "tier.h"
#include "util.h"
#include "helpers/snapshot.h"

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static tc_cache *open_default(void) {
    tc__opts o;
    tc__opts_init(&o);
    tc_cache *c = NULL;
    char err[256];
    if (tc__open_opts(&o, &c, err, sizeof err) != 0) fail_msg("tc_open: %s", err);
    return c;
}

typedef struct two_tiers {
    tc_cache *c;
    faulty_tier *up, *down;
} two_tiers;

/* upper: L1 with upper_ttl default; lower: an L1 presented as L2, default TTL none */
static two_tiers open_two(uint64_t upper_ttl_ms) {
    tc__opts o;
    tc__opts_init(&o);
    o.mem_default_ttl_ms = upper_ttl_ms;
    o.mem_shards = 1;
    two_tiers t;
    t.c = faulty_pair(&o, &t.up, &t.down);
    assert_non_null(t.c);
    return t;
}

/* Direct access to one tier, bypassing the orchestrator. */
static int tier_get_ttl(faulty_tier *f, const char *k, int64_t *ttl) {
    return f->inner->ops->get(f->inner, &TC__KEY(k, strlen(k)), NULL, ttl);
}

static int tier_put(faulty_tier *f, const char *k, const char *v, int64_t ttl) {
    return f->inner->ops->set(f->inner, &TC__KEY(k, strlen(k)), v, strlen(v), ttl, NULL);
}

/* ------------------------------------------------------------------------ */

static void test_basic_roundtrip_binary_and_empty(void **state) {
    (void)state;
    tc_cache *c = open_default();
    const char key[] = {'k', 0, 'y'};
    const char val[] = {'v', 0, 0, 'w'};
    assert_int_equal(tc_set(c, key, 3, val, 4, 0), 0);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(c, key, 3, buf, &len, &info), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(buf, val, 4);
    assert_int_equal(info.tier, TC_TIER_L1);
    assert_true(info.ttl_ms > 119000 && info.ttl_ms <= 120000); /* CACHE_MEMORY_DEFAULT_TTL */
    /* empty value: a hit of length 0, not a miss */
    assert_int_equal(tc_set(c, "empty", 5, "", 0, 0), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(c, "empty", 5, buf, &len, NULL), 0);
    assert_int_equal(len, 0);
    void *v = NULL;
    assert_int_equal(tc_get_alloc(c, "empty", 5, &v, &len, NULL), 0);
    assert_non_null(v);
    assert_int_equal(len, 0);
    tc_free(v);
    len = sizeof buf;
    assert_int_equal(tc_get(c, "absent", 6, buf, &len, NULL), TC_EMISS);
    assert_false(tc_is_error(TC_EMISS));
    assert_int_equal(tc_del(c, key, 3), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(c, key, 3, buf, &len, NULL), TC_EMISS);
    tc_close(c);
    tc_close(NULL);
}

static void test_size_negotiation(void **state) {
    (void)state;
    tc_cache *c = open_default();
    char big[300];
    memset(big, 'b', sizeof big);
    assert_int_equal(tc_set(c, "k", 1, big, sizeof big, 0), 0);
    char small[10];
    size_t len = sizeof small;
    assert_int_equal(tc_get(c, "k", 1, small, &len, NULL), TC_ENOBUFS);
    assert_int_equal(len, 300);
    len = 0;
    assert_int_equal(tc_get(c, "k", 1, NULL, &len, NULL), TC_ENOBUFS);
    assert_int_equal(len, 300);
    char *buf = malloc(len);
    assert_int_equal(tc_get(c, "k", 1, buf, &len, NULL), 0);
    assert_memory_equal(buf, big, 300);
    free(buf);
    void *v;
    assert_int_equal(tc_get_alloc(c, "k", 1, &v, &len, NULL), 0);
    assert_int_equal(len, 300);
    tc_free(v);
    tc_close(c);
}

static void test_limits_reject_and_store_nothing(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.max_key_bytes = 8;
    o.max_value_bytes = 16;
    tc_cache *c;
    assert_int_equal(tc__open_opts(&o, &c, NULL, 0), 0);
    assert_int_equal(tc_set(c, "123456789", 9, "v", 1, 0), TC_EKEYTOOBIG);
    char val[17] = "0123456789abcdef";
    assert_int_equal(tc_set(c, "k", 1, val, 17, 0), TC_EVALTOOBIG);
    assert_int_equal(tc_set(c, "k", 1, val, 16, 0), 0);
    assert_int_equal(tc_set(c, "k", 1, "x", 17, 0), TC_EVALTOOBIG); /* old value intact */
    char buf[32];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(c, "k", 1, buf, &len, NULL), 0);
    assert_int_equal(len, 16);
    len = sizeof buf;
    assert_int_equal(tc_get(c, "123456789", 9, buf, &len, NULL), TC_EKEYTOOBIG);
    assert_int_equal(tc_del(c, "123456789", 9), TC_EKEYTOOBIG);
    assert_string_equal(tc_err_name(TC_EKEYTOOBIG), "TC_EKEYTOOBIG");
    assert_string_equal(tc_strerror(TC_EVALTOOBIG), "value is longer than the configured maximum");
    tc_tier_stats st = TC_TIER_STATS_INIT;
    tc__snapshot s;
    assert_int_equal(snap_get(c, &s), 0);
    st = s.tiers[0];
    assert_int_equal(st.entries, 1);
    tc_close(c);
}

static void test_ttl_lookup(void **state) {
    (void)state;
    tc_cache *c = open_default();
    int64_t ttl;
    assert_int_equal(tc_ttl(c, "k", 1, &ttl), TC_EMISS);
    assert_int_equal(tc_set(c, "k", 1, "v", 1, 500), 0);
    assert_int_equal(tc_ttl(c, "k", 1, &ttl), 0);
    assert_true(ttl > 400 && ttl <= 500);
    sleep_ms(550);
    assert_int_equal(tc_ttl(c, "k", 1, &ttl), TC_EMISS);
    tc_close(c);
}

/* Issue 8, item 13: a NULL buffer of capacity 0 is enough for an empty value, which is a hit
 * of length 0 -- from the first tier and from a lower one (captured whole for the back-fill). */
static void test_get_null_buffer_empty_value_is_a_hit(void **state) {
    (void)state;
    tc_cache *c = open_default();
    assert_int_equal(tc_set(c, "empty", 5, "", 0, 0), 0);
    size_t len = 0;
    assert_int_equal(tc_get(c, "empty", 5, NULL, &len, NULL), 0);
    assert_int_equal(len, 0);
    tc_close(c);
    two_tiers t = open_two(60000);
    assert_int_equal(tier_put(t.down, "empty", "", 60000), 0);
    len = 0;
    tc_get_info info;
    assert_int_equal(tc_get(t.c, "empty", 5, NULL, &len, &info), 0);
    assert_int_equal(len, 0);
    assert_int_equal(info.tier, TC_TIER_L2);
    len = 0;
    assert_int_equal(tc_get(t.c, "empty", 5, NULL, &len, &info), 0); /* back-filled */
    assert_int_equal(info.tier, TC_TIER_L1);
    /* a non-empty value still needs a buffer */
    assert_int_equal(tc_set(t.c, "k", 1, "v", 1, 0), 0);
    len = 0;
    assert_int_equal(tc_get(t.c, "k", 1, NULL, &len, NULL), TC_ENOBUFS);
    assert_int_equal(len, 1);
    tc_close(t.c);
}

static int ttl_loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl) {
    (void)key, (void)klen;
    *val = malloc(1);
    memcpy(*val, "v", 1);
    *vlen = 1;
    *ttl = *(const uint64_t *)ud;
    return 0;
}

/* Issue 8, item 12: L1 kept the expiry in 48 bits, so a TTL of 2^48 ms was stored and then
 * missed, and 2^48 + 60000 ms became 60 s. One range, up to TC_TTL_MAX_MS, and TC_EINVAL
 * outside it from every write: nothing is stored and an older value stays. */
static void test_ttl_beyond_range_is_refused_not_truncated(void **state) {
    (void)state;
    tc_cache *c = open_default();
    const uint64_t bad[] = {1ull << 48, (1ull << 48) + 60000, TC_TTL_MAX_MS + 1, UINT64_MAX};
    char buf[8];
    size_t len;
    int64_t ttl;
    assert_int_equal(tc_set(c, "k", 1, "old", 3, 60000), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(tc_set(c, "k", 1, "new", 3, bad[i]), TC_EINVAL);
        len = sizeof buf;
        assert_int_equal(tc_get(c, "k", 1, buf, &len, NULL), 0);
        assert_memory_equal(buf, "old", 3);
        assert_int_equal(tc_set(c, "n", 1, "new", 3, bad[i]), TC_EINVAL);
        assert_int_equal(tc_ttl(c, "n", 1, &ttl), TC_EMISS);
    }
    /* the longest TTL is kept as given */
    assert_int_equal(tc_set(c, "max", 3, "v", 1, TC_TTL_MAX_MS), 0);
    assert_int_equal(tc_ttl(c, "max", 3, &ttl), 0);
    assert_true(ttl > (int64_t)TC_TTL_MAX_MS - 60000 && ttl <= (int64_t)TC_TTL_MAX_MS);
    /* mset: the entry out of range alone is refused */
    tc_mset_item items[2] = {{"a", 1, "1", 1, 1ull << 48}, {"b", 1, "2", 1, 0}};
    int rcs[2];
    assert_int_equal(tc_mset(c, 2, items, sizeof items[0], rcs), TC_EPARTIAL);
    assert_int_equal(rcs[0], TC_EINVAL);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(tc_ttl(c, "a", 1, &ttl), TC_EMISS);
    assert_int_equal(tc_ttl(c, "b", 1, &ttl), 0);
    /* get_or_load: its own TTL argument, and the TTL its loader sets */
    uint64_t lttl = 60000;
    void *v = NULL;
    int lerr = 0;
    assert_int_equal(tc_get_or_load(c, "l", 1, 1ull << 48, ttl_loader, &lttl, &v, &len, NULL, &lerr), TC_EINVAL);
    assert_null(v);
    lttl = (1ull << 48) + 60000;
    assert_int_equal(tc_get_or_load(c, "l", 1, 0, ttl_loader, &lttl, &v, &len, NULL, &lerr), TC_ELOADER);
    assert_int_equal(lerr, TC_EINVAL);
    assert_null(v);
    assert_int_equal(tc_ttl(c, "l", 1, &ttl), TC_EMISS);
    lttl = TC_TTL_MAX_MS;
    assert_int_equal(tc_get_or_load(c, "l", 1, 0, ttl_loader, &lttl, &v, &len, NULL, &lerr), 0);
    tc_free(v);
    assert_int_equal(tc_ttl(c, "l", 1, &ttl), 0);
    assert_true(ttl > (int64_t)TC_TTL_MAX_MS - 60000);
    tc_close(c);
}

/* A lower tier that reports a remaining TTL above the range (a Redis key another client wrote)
 * back-fills the upper tier with the longest TTL, instead of failing the back-fill. */
static void test_backfill_of_ttl_beyond_range_is_clamped(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    assert_int_equal(tier_put(t.down, "k", "v", 60000), 0);
    t.down->ttl_report = (int64_t)(1ull << 50);
    char buf[8];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0);
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), 0);
    assert_true(ttl > (int64_t)TC_TTL_MAX_MS - 60000 && ttl <= (int64_t)TC_TTL_MAX_MS);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_int_equal(st.tiers[0].errors, 0);
    tc_close(t.c);
}

/* A tiering that names L2 opens it (a build without L2 refuses with TC_ENOTIER). A segment of
 * this test's own: the default name would leave the application's segment behind. */
static void test_open_refuses_missing_tiers(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.ntiers = 2;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L2;
    snprintf(o.shared_name, sizeof o.shared_name, "test-open-%d", (int)getpid());
    o.shared_max_entries = 1000;
    o.shared_max_bytes = 8 << 20;
    tc_cache *c = (tc_cache *)1;
    char err[256] = "";
    int rc = tc__open_opts(&o, &c, err, sizeof err);
    if (rc == TC_ENOTIER) { /* this build has no L2 */
        assert_null(c);
        assert_non_null(strstr(err, "not available in this build"));
        assert_non_null(strstr(err, "L2"));
    } else {
        assert_int_equal(rc, 0);
        tc_close(c);
        assert_int_equal(tc_shared_destroy(o.shared_name), 0);
    }
}

/* ------------------------------------------------------------------------ */
/* Tiers                                                                    */
/* ------------------------------------------------------------------------ */

/* Defect 1 of the original: back-fill must carry the remaining TTL, not the upper default. */
static void test_backfill_keeps_remaining_ttl(void **state) {
    (void)state;
    two_tiers t = open_two(120000);
    assert_int_equal(tier_put(t.down, "k", "lower", 1000), 0);
    sleep_ms(300);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L2);
    assert_true(info.ttl_ms <= 700 && info.ttl_ms > 500);
    int64_t up_ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &up_ttl), 0);
    assert_true(up_ttl <= 700 && up_ttl > 500); /* not 120000 */
    /* the next read is served by L1 */
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L1);
    sleep_ms(750);
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, &info), TC_EMISS); /* gone from both together */
    tc_close(t.c);
}

/* A lower entry without expiry back-fills with the upper tier's default TTL. */
static void test_backfill_of_no_expiry_uses_upper_default(void **state) {
    (void)state;
    two_tiers t = open_two(5000);
    assert_int_equal(tier_put(t.down, "k", "v", TC_TTL_NONE), 0);
    void *v;
    size_t len;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get_alloc(t.c, "k", 1, &v, &len, &info), 0);
    tc_free(v);
    assert_int_equal(info.ttl_ms, TC_TTL_NONE);
    int64_t up_ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &up_ttl), 0);
    assert_true(up_ttl > 4000 && up_ttl <= 5000);
    tc_close(t.c);
}

/* Back-fill into the caller's too-small buffer: TC_ENOBUFS, but the upper tier is filled. */
static void test_backfill_with_small_buffer(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    assert_int_equal(tier_put(t.down, "k", "a fairly long value", 60000), 0);
    char buf[4];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), TC_ENOBUFS);
    assert_int_equal(len, strlen("a fairly long value"));
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), 0);
    tc_close(t.c);
}

static void test_read_order_upper_wins(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.up, "k", "upper", 60000);
    tier_put(t.down, "k", "lower", 60000);
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, &info), 0);
    assert_memory_equal(buf, "upper", 5);
    assert_int_equal(info.tier, TC_TIER_L1);
    assert_int_equal(t.down->gets, 0);
    tc_close(t.c);
}

static void test_writes_deletes_clears_reach_every_tier(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    assert_int_equal(tc_set(t.c, "a:1", 3, "v", 1, 0), 0);
    assert_int_equal(tc_set(t.c, "b:1", 3, "v", 1, 0), 0);
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "a:1", &ttl), 0);
    assert_int_equal(tier_get_ttl(t.down, "a:1", &ttl), 0);
    assert_int_equal(tc_del(t.c, "a:1", 3), 0);
    assert_int_equal(tier_get_ttl(t.up, "a:1", &ttl), TC_EMISS);
    assert_int_equal(tier_get_ttl(t.down, "a:1", &ttl), TC_EMISS);
    tc_set(t.c, "a:2", 3, "v", 1, 0);
    assert_int_equal(tc_clear_prefix(t.c, "a:", 2), 0);
    assert_int_equal(tier_get_ttl(t.down, "a:2", &ttl), TC_EMISS);
    assert_int_equal(tier_get_ttl(t.down, "b:1", &ttl), 0);
    assert_int_equal(tc_clear(t.c), 0);
    assert_int_equal(tier_get_ttl(t.up, "b:1", &ttl), TC_EMISS);
    assert_int_equal(tier_get_ttl(t.down, "b:1", &ttl), TC_EMISS);
    tc_close(t.c);
}

/* A tier that fails on a read is skipped and counted; the read goes on below it. */
static void test_failing_read_tier_is_skipped(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.down, "k", "lower", 60000);
    t.up->fail_get = TC_EIO;
    char buf[16];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, &info), 0);
    assert_int_equal(info.tier, TC_TIER_L2);
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "nope", 4, buf, &len, &info), TC_EMISS);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_int_equal(st.tiers[0].errors, 2);
    assert_int_equal(st.st.errors, 2);
    assert_int_equal(st.st.hits, 1);
    assert_int_equal(st.st.misses, 1);
    assert_int_equal(st.tiers[0].available, 0);
    char *doc;
    assert_int_equal(tc_health_json(t.c, &doc), 0);
    assert_non_null(strstr(doc, "\"degraded\""));
    tc_free(doc);
    tc_close(t.c);
}

typedef struct log_seen {
    int n;
    char last[512];
} log_seen;

static void log_cb(void *ud, tc_log_level level, const char *msg) {
    log_seen *l = ud;
    l->n++;
    assert_int_equal(level, TC_LOG_WARN);
    snprintf(l->last, sizeof l->last, "%s", msg);
}

/* Tier failures reach the log callback, at most once a second per tier. */
static void test_tier_failures_are_logged_rate_limited(void **state) {
    (void)state;
    log_seen seen = {0, ""};
    tc__opts o;
    tc__opts_init(&o);
    o.log_fn = log_cb;
    o.log_userdata = &seen;
    faulty_tier *up, *down;
    tc_cache *c = faulty_pair(&o, &up, &down);
    assert_non_null(c);
    down->fail_get = TC_ETIMEDOUT;
    char buf[8];
    for (int i = 0; i < 1000; i++) {
        size_t len = sizeof buf;
        assert_int_equal(tc_get(c, "k", 1, buf, &len, NULL), TC_EMISS);
    }
    assert_int_equal(seen.n, 1);
    assert_non_null(strstr(seen.last, "L2 get failed"));
    assert_non_null(strstr(seen.last, "TC_ETIMEDOUT"));
    sleep_ms(1100);
    size_t len = sizeof buf;
    tc_get(c, "k", 1, buf, &len, NULL);
    assert_int_equal(seen.n, 2);
    assert_non_null(strstr(seen.last, "1000 failure(s)")); /* the 999 suppressed + this one */
    tc__snapshot st;
    snap_get(c, &st);
    assert_int_equal(st.tiers[1].errors, 1001);
    tc_close(c);
}

/* set: TC_EPARTIAL when one tier fails, and the failing tier keeps no stale copy. */
static void test_set_partial_failure_removes_stale_copy(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    assert_int_equal(tc_set(t.c, "k", 1, "old", 3, 0), 0);
    t.down->fail_set = TC_EIO;
    assert_int_equal(tc_set(t.c, "k", 1, "new", 3, 0), TC_EPARTIAL);
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.down, "k", &ttl), TC_EMISS); /* no stale "old" below */
    char buf[8];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0);
    assert_memory_equal(buf, "new", 3);
    t.up->fail_set = TC_EIO;
    assert_int_equal(tc_set(t.c, "k2", 2, "v", 1, 0), TC_ETIER);
    t.up->fail_set = 0;
    t.down->fail_set = 0;
    t.down->fail_del = TC_EIO;
    assert_int_equal(tc_del(t.c, "k", 1), TC_EPARTIAL);
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), TC_EMISS); /* the upper tier is deleted anyway */
    t.up->fail_del = TC_EIO;
    assert_int_equal(tc_del(t.c, "k", 1), TC_ETIER);
    /* a clear of L1 and L2 is an epoch move of the coherence table (O(1)): the tiers' own clear
     * is not called, so it cannot fail, and every entry is gone at once */
    t.down->fail_clear = TC_EIO;
    t.up->fail_del = 0;
    t.down->fail_del = 0;
    assert_int_equal(tc_set(t.c, "k3", 2, "v", 1, 0), 0);
    assert_int_equal(tc_clear(t.c), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k3", 2, buf, &len, NULL), TC_EMISS);
    assert_int_equal(tier_get_ttl(t.down, "k3", &ttl), TC_EMISS);
    tc_close(t.c);
}

/* Defect 5 of the original: a delete racing a back-fill must not let stale data back in.
 * The delete is staged exactly between the lower tier's answer and the back-fill. */
static void delete_now(void *arg) {
    tc_cache *c = arg;
    assert_int_equal(tc_del(c, "k", 1), 0);
}

static void test_delete_racing_backfill_wins(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.down, "k", "stale", 60000);
    t.down->get_hook = delete_now;
    t.down->hook_arg = t.c;
    char buf[16];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0); /* this read saw the old value */
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), TC_EMISS); /* but it was not back-filled */
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), TC_EMISS);
    tc_close(t.c);
}

static void set_now(void *arg) {
    tc_cache *c = arg;
    assert_int_equal(tc_set(c, "k", 1, "fresh", 5, 0), 0);
}

static void test_set_racing_backfill_wins(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.down, "k", "stale", 60000);
    t.down->get_hook = set_now;
    t.down->hook_arg = t.c;
    char buf[16];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0);
    len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0);
    assert_memory_equal(buf, "fresh", 5);
    tc_close(t.c);
}

/* The interleaving a fence taken only when a write *starts* lets through: a delete has begun;
 * a reader notes the fence, then reads the stale value from the lower tier before the delete
 * reaches it; the delete finishes; the reader back-fills. Staged with two threads:
 *   deleter: tc_del -> (lower tier's del hook) "started", wait for "read" -> deletes, "done"
 *   reader:  waits "started" -> tc_get -> (lower tier's get hook) "read", wait for "done" ->
 *            back-fill, which must be refused. */
#include <semaphore.h>

typedef struct race3 {
    two_tiers *t;
    sem_t started, read, done;
} race3;

static void del_started(void *arg) {
    race3 *r = arg;
    sem_post(&r->started);
    sem_wait(&r->read);
}

static void get_read(void *arg) {
    race3 *r = arg;
    sem_post(&r->read);
    sem_wait(&r->done);
}

static void *deleter(void *arg) {
    race3 *r = arg;
    assert_int_equal(tc_del(r->t->c, "k", 1), 0);
    sem_post(&r->done);
    return NULL;
}

static void test_delete_in_progress_blocks_backfill(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.down, "k", "stale", 60000);
    race3 r;
    r.t = &t;
    sem_init(&r.started, 0, 0);
    sem_init(&r.read, 0, 0);
    sem_init(&r.done, 0, 0);
    t.down->del_hook = del_started;
    t.down->del_hook_arg = &r;
    t.down->get_hook = get_read;
    t.down->hook_arg = &r;
    pthread_t th;
    pthread_create(&th, NULL, deleter, &r);
    sem_wait(&r.started);
    char buf[16];
    size_t len = sizeof buf;
    /* the delete marked the key's stripe before it reached the lower tier: the read may see the
     * old value (it is concurrent with the delete) or already a miss; either is allowed */
    int rc = tc_get(t.c, "k", 1, buf, &len, NULL);
    assert_true(rc == 0 || rc == TC_EMISS);
    pthread_join(th, NULL);
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), TC_EMISS);   /* but not back-filled */
    assert_int_equal(tier_get_ttl(t.down, "k", &ttl), TC_EMISS);
    sem_destroy(&r.started);
    sem_destroy(&r.read);
    sem_destroy(&r.done);
    tc_close(t.c);
}

/* ------------------------------------------------------------------------ */
/* Single flight                                                            */
/* ------------------------------------------------------------------------ */

typedef struct loader_ctx {
    _Atomic int calls;
    int fail;          /* return this from the loader when nonzero */
    int delay_ms;
    tc_cache *del_during; /* delete the key from inside the load */
} loader_ctx;

static int slow_loader(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl) {
    loader_ctx *l = ud;
    atomic_fetch_add(&l->calls, 1);
    sleep_ms(l->delay_ms);
    if (l->del_during != NULL) tc_del(l->del_during, key, klen);
    if (l->fail) return l->fail;
    *val = malloc(klen + 7);
    memcpy(*val, "loaded:", 7);
    memcpy((char *)*val + 7, key, klen);
    *vlen = klen + 7;
    *ttl = 60000;
    return 0;
}

typedef struct waiter {
    tc_cache *c;
    loader_ctx *l;
    int rc, loader_err;
    void *val;
    size_t len;
} waiter;

static void *waiter_main(void *arg) {
    waiter *w = arg;
    w->rc = tc_get_or_load(w->c, "hot", 3, 0, slow_loader, w->l, &w->val, &w->len, NULL, &w->loader_err);
    return NULL;
}

static void run_waiters(tc_cache *c, loader_ctx *l, waiter *w, int n) {
    pthread_t th[16];
    for (int i = 0; i < n; i++) {
        w[i] = (waiter){c, l, 0, 0, NULL, 0};
        pthread_create(&th[i], NULL, waiter_main, &w[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
}

static void test_single_flight_one_load_for_all(void **state) {
    (void)state;
    tc_cache *c = open_default();
    loader_ctx l = {0, 0, 200, NULL};
    waiter w[8];
    run_waiters(c, &l, w, 8);
    assert_int_equal(atomic_load(&l.calls), 1);
    for (int i = 0; i < 8; i++) {
        assert_int_equal(w[i].rc, 0);
        assert_int_equal(w[i].len, 10);
        assert_memory_equal(w[i].val, "loaded:hot", 10);
        tc_free(w[i].val);
    }
    tc__snapshot st;
    snap_get(c, &st);
    assert_int_equal(st.st.loads, 1);
    /* every caller that missed but the leader waited for its load (a thread the scheduler
     * started after the load ended hits instead: on a loaded machine some do) */
    assert_int_equal(st.st.load_waits, st.st.misses - 1);
    assert_int_equal(st.st.hits + st.st.misses, 8); /* one lookup per caller: the leader's re-check is not counted */
    /* cached now: no further load */
    void *v;
    size_t len;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get_or_load(c, "hot", 3, 0, slow_loader, &l, &v, &len, &info, NULL), 0);
    assert_int_equal(info.tier, TC_TIER_L1);
    tc_free(v);
    assert_int_equal(atomic_load(&l.calls), 1);
    tc_close(c);
}

static void test_single_flight_error_reaches_all_and_caches_nothing(void **state) {
    (void)state;
    tc_cache *c = open_default();
    loader_ctx l = {0, -42, 200, NULL};
    waiter w[6];
    run_waiters(c, &l, w, 6);
    assert_int_equal(atomic_load(&l.calls), 1);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(w[i].rc, TC_ELOADER);
        assert_int_equal(w[i].loader_err, -42);
        assert_null(w[i].val);
    }
    char buf[16];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(c, "hot", 3, buf, &len, NULL), TC_EMISS);
    tc__snapshot st;
    snap_get(c, &st);
    assert_int_equal(st.st.load_errors, 1);
    tc_close(c);
}

/* A delete during the load means the source changed: the loaded value is returned but not
 * cached. (Needs a multi-tier cache: with one tier there is no fence to check.) */
static void test_delete_during_load_is_not_cached(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    loader_ctx l = {0, 0, 0, t.c};
    void *v;
    size_t len;
    assert_int_equal(tc_get_or_load(t.c, "hot", 3, 0, slow_loader, &l, &v, &len, NULL, NULL), 0);
    tc_free(v);
    int64_t ttl;
    assert_int_equal(tier_get_ttl(t.up, "hot", &ttl), TC_EMISS);
    assert_int_equal(tier_get_ttl(t.down, "hot", &ttl), TC_EMISS);
    tc_close(t.c);
}

/* A load's re-check looks only at the first tier: one miss costs each lower tier one lookup
 * (for L1L3: one Redis round trip, not two). */
static void test_load_costs_one_lookup_per_lower_tier(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    loader_ctx l = {0, 0, 0, NULL};
    void *v;
    size_t len;
    assert_int_equal(tc_get_or_load(t.c, "x", 1, 0, slow_loader, &l, &v, &len, NULL, NULL), 0);
    tc_free(v);
    assert_int_equal(t.down->gets, 1);
    assert_int_equal(t.up->gets, 2); /* the lookup, and the leader's re-check */
    assert_int_equal(atomic_load(&l.calls), 1);
    tc_close(t.c);
}

/* ------------------------------------------------------------------------ */
/* Statistics                                                               */
/* ------------------------------------------------------------------------ */

static void test_stats_and_renderings(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tier_put(t.down, "low", "v", 60000);
    char buf[8];
    for (int i = 0; i < 100; i++) {
        size_t len = sizeof buf;
        tc_set(t.c, "k", 1, "v", 1, 0);
        tc_get(t.c, "k", 1, buf, &len, NULL);
        len = sizeof buf;
        tc_get(t.c, "miss", 4, buf, &len, NULL);
    }
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "low", 3, buf, &len, NULL), 0);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_int_equal(st.st.hits, 101);
    assert_int_equal(st.st.misses, 100);
    assert_int_equal(st.st.last_hit_tier, TC_TIER_L2);
    assert_int_equal(st.st.ntiers, 2);
    assert_int_equal(st.tiers[0].tier, TC_TIER_L1);
    assert_int_equal(st.tiers[1].tier, TC_TIER_L2);
    assert_int_equal(st.tiers[0].hits, 100);
    assert_int_equal(st.tiers[1].hits, 1);
    assert_int_equal(st.tiers[1].misses, 100);
    assert_true(st.st.latency_samples > 0);
    assert_true(st.st.p50_ns > 0 && st.st.p50_ns <= st.st.p95_ns && st.st.p95_ns <= st.st.p99_ns && st.st.p99_ns <= st.st.max_ns);
    assert_true(st.tiers[0].latency_samples > 0);
    char *doc;
    assert_int_equal(tc_health_json(t.c, &doc), 0);
    assert_non_null(strstr(doc, "\"service\":\"tiercache\""));
    assert_non_null(strstr(doc, "\"lastHitTier\":\"L2\""));
    assert_non_null(strstr(doc, "\"status\":\"healthy\""));
    tc_free(doc);
    assert_int_equal(tc_stats_prometheus(t.c, &doc), 0);
    assert_non_null(strstr(doc, "tiercache_hits_total{tier=\"L1\"} 100"));
    tc_free(doc);
    assert_int_equal(tc_stats_json(t.c, &doc), 0);
    assert_non_null(strstr(doc, "\"hits\":101"));
    tc_free(doc);
    tc_close(t.c);
}

/* Per-tier hits and misses are this handle's reads; a tier that counts for the whole host (L2)
 * keeps its totals as extras. Two handles on one shared segment in one process. */
static const char *extra_of(const tc_tier_stats *t, const char *name) {
    for (int i = 0; i < t->nextra; i++)
        if (strcmp(t->extra[i].name, name) == 0) return t->extra[i].value;
    return NULL;
}

static void test_tier_counts_are_per_handle(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.ntiers = 2;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L2;
    snprintf(o.shared_name, sizeof o.shared_name, "test-cache-%d", (int)getpid());
    o.shared_max_entries = 1000;
    o.shared_max_bytes = 8 << 20;
    tc_cache *a, *b;
    char err[256];
    if (tc__open_opts(&o, &a, err, sizeof err) != 0) fail_msg("%s", err);
    if (tc__open_opts(&o, &b, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(tc_set(a, "k", 1, "v", 1, 0), 0);
    char buf[4];
    size_t len = sizeof buf;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get(b, "k", 1, buf, &len, &info), 0); /* b: L1 miss, L2 hit */
    assert_int_equal(info.tier, TC_TIER_L2);
    len = sizeof buf;
    assert_int_equal(tc_get(a, "absent", 6, buf, &len, NULL), TC_EMISS); /* a: misses in both */
    tc__snapshot sb;
    assert_int_equal(snap_get(b, &sb), 0);
    assert_int_equal(sb.tiers[1].hits, 1);
    assert_int_equal(sb.tiers[1].misses, 0);
    assert_int_equal(sb.tiers[0].misses, 1);
    const char *all = extra_of(&sb.tiers[1], "misses_all_handles");
    assert_non_null(all); /* the segment saw a's miss too */
    assert_string_equal(all, "1");
    tc_close(a);
    tc_close(b);
    tc_shared_destroy(o.shared_name);
}

static void test_metrics_disabled_records_no_latency(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.metrics_enabled = 0;
    tc_cache *c;
    assert_int_equal(tc__open_opts(&o, &c, NULL, 0), 0);
    char buf[4];
    for (int i = 0; i < 100; i++) {
        size_t len = sizeof buf;
        tc_get(c, "k", 1, buf, &len, NULL);
    }
    tc__snapshot st;
    snap_get(c, &st);
    assert_int_equal(st.st.latency_samples, 0);
    assert_int_equal(st.st.misses, 100);
    tc_close(c);
}

/* Issue 7, item 8: CACHE_MEMORY_MAX_TTL bounds how long L1 keeps any copy -- a back-fill of a
 * lower tier's long-lived value, a write with a long TTL and one with no expiry alike -- while
 * the lower tier keeps the TTL it was given. */
static void test_memory_max_ttl_caps_every_l1_entry(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    o.mem_default_ttl_ms = 0;
    o.mem_max_ttl_ms = 2000;
    o.mem_shards = 1;
    two_tiers t;
    t.c = faulty_pair(&o, &t.up, &t.down);
    assert_non_null(t.c);
    int64_t ttl;
    assert_int_equal(tier_put(t.down, "k", "lower", TC_TTL_NONE), 0);
    char buf[16];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), 0); /* back-fills L1 */
    assert_int_equal(tier_get_ttl(t.up, "k", &ttl), 0);
    assert_true(ttl > 0 && ttl <= 2000);
    assert_int_equal(tc_set(t.c, "long", 4, "v", 1, 3600000), 0);
    assert_int_equal(tier_get_ttl(t.up, "long", &ttl), 0);
    assert_true(ttl > 0 && ttl <= 2000);
    assert_int_equal(tier_get_ttl(t.down, "long", &ttl), 0);
    assert_true(ttl > 3500000);
    assert_int_equal(tc_set(t.c, "forever", 7, "v", 1, 0), 0);
    assert_int_equal(tier_get_ttl(t.up, "forever", &ttl), 0);
    assert_true(ttl > 0 && ttl <= 2000);
    assert_int_equal(tier_get_ttl(t.down, "forever", &ttl), 0);
    assert_int_equal(ttl, TC_TTL_NONE);
    tc_close(t.c);
}

static int load_30s(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl_ms) {
    (void)ud, (void)key, (void)klen;
    *val = malloc(1);
    *vlen = 1;
    memcpy(*val, "x", 1);
    *ttl_ms = 30000;
    return 0;
}

static int load_default(void *ud, const void *key, size_t klen, void **val, size_t *vlen, uint64_t *ttl_ms) {
    (void)ud, (void)key, (void)klen, (void)ttl_ms;
    *val = malloc(1);
    *vlen = 1;
    memcpy(*val, "y", 1);
    return 0;
}

/* Issue 7, item 10: a loaded value reports the TTL it was stored with, not "no expiry". */
static void test_get_or_load_reports_stored_ttl(void **state) {
    (void)state;
    tc_cache *c = open_default(); /* L1, default TTL 120 s */
    void *v;
    size_t len;
    tc_get_info info = TC_GET_INFO_INIT;
    assert_int_equal(tc_get_or_load(c, "a", 1, 0, load_30s, NULL, &v, &len, &info, NULL), 0);
    tc_free(v);
    assert_int_equal(info.tier, TC_TIER_NONE);
    assert_true(info.ttl_ms > 29000 && info.ttl_ms <= 30000);
    assert_int_equal(tc_get_or_load(c, "b", 1, 0, load_default, NULL, &v, &len, &info, NULL), 0);
    tc_free(v);
    assert_true(info.ttl_ms > 110000 && info.ttl_ms <= 120000);
    assert_int_equal(tc_get_or_load(c, "a", 1, 0, load_30s, NULL, &v, &len, &info, NULL), 0); /* cached */
    tc_free(v);
    assert_int_equal(info.tier, TC_TIER_L1);
    assert_true(info.ttl_ms > 29000 && info.ttl_ms <= 30000);
    tc_close(c);
}

/* Issue 7, item 7: each tier's last failure (what, and when) is in its statistics and in the
 * health document, and clears nothing else. */
static void test_tier_last_error_in_stats_and_health(void **state) {
    (void)state;
    two_tiers t = open_two(60000);
    tc__snapshot st;
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_string_equal(st.tiers[0].last_error, "");
    assert_int_equal(st.tiers[0].last_error_ms, 0);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t before = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
    t.down->fail_get = TC_EIO;
    char buf[8];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(t.c, "k", 1, buf, &len, NULL), TC_EMISS);
    assert_int_equal(snap_get(t.c, &st), 0);
    assert_string_equal(st.tiers[1].last_error, "get: input/output error (TC_EIO)");
    assert_true(st.tiers[1].last_error_ms >= before && st.tiers[1].last_error_ms < before + 60000);
    assert_string_equal(st.tiers[0].last_error, "");
    char *doc;
    assert_int_equal(tc_health_json(t.c, &doc), 0);
    assert_non_null(strstr(doc, "\"lastError\":\"get: input/output error (TC_EIO)\""));
    tc_free(doc);
    assert_int_equal(tc_stats_json(t.c, &doc), 0);
    assert_non_null(strstr(doc, "\"last_error\":\"get: input/output error (TC_EIO)\""));
    tc_free(doc);
    tc_close(t.c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic_roundtrip_binary_and_empty),
        cmocka_unit_test(test_memory_max_ttl_caps_every_l1_entry),
        cmocka_unit_test(test_get_or_load_reports_stored_ttl),
        cmocka_unit_test(test_tier_last_error_in_stats_and_health),
        cmocka_unit_test(test_size_negotiation),
        cmocka_unit_test(test_limits_reject_and_store_nothing),
        cmocka_unit_test(test_ttl_lookup),
        cmocka_unit_test(test_get_null_buffer_empty_value_is_a_hit),
        cmocka_unit_test(test_ttl_beyond_range_is_refused_not_truncated),
        cmocka_unit_test(test_backfill_of_ttl_beyond_range_is_clamped),
        cmocka_unit_test(test_open_refuses_missing_tiers),
        cmocka_unit_test(test_backfill_keeps_remaining_ttl),
        cmocka_unit_test(test_backfill_of_no_expiry_uses_upper_default),
        cmocka_unit_test(test_backfill_with_small_buffer),
        cmocka_unit_test(test_read_order_upper_wins),
        cmocka_unit_test(test_writes_deletes_clears_reach_every_tier),
        cmocka_unit_test(test_failing_read_tier_is_skipped),
        cmocka_unit_test(test_set_partial_failure_removes_stale_copy),
        cmocka_unit_test(test_tier_failures_are_logged_rate_limited),
        cmocka_unit_test(test_delete_racing_backfill_wins),
        cmocka_unit_test(test_set_racing_backfill_wins),
        cmocka_unit_test(test_delete_in_progress_blocks_backfill),
        cmocka_unit_test(test_single_flight_one_load_for_all),
        cmocka_unit_test(test_single_flight_error_reaches_all_and_caches_nothing),
        cmocka_unit_test(test_delete_during_load_is_not_cached),
        cmocka_unit_test(test_load_costs_one_lookup_per_lower_tier),
        cmocka_unit_test(test_stats_and_renderings),
        cmocka_unit_test(test_metrics_disabled_records_no_latency),
        cmocka_unit_test(test_tier_counts_are_per_handle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
