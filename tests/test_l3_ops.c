/*
 * test_l3_ops.c -- every operation of the L3 Redis tier against a real redis-server started
 * by the harness: get/set/del with binary keys and values, TTLs (sub-second, remaining,
 * none, default), clear and clear_prefix confined to the namespace (foreign keys written with
 * a raw connection survive, glob characters in the prefix are escaped), mget/mset, stats.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/redis_server.h"
#include "tier.h"
#include "util.h"

static tc_test_redis srv;

typedef struct logbuf {
    char text[16384];
    size_t len;
} logbuf;

static void capture_log(void *ud, tc_log_level level, const char *msg) {
    logbuf *b = ud;
    (void)level;
    int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", msg);
    if (n > 0 && b->len + (size_t)n < sizeof b->text) b->len += (size_t)n;
}

static int setup(void **state) {
    (void)state;
    return tc_test_redis_setup(&srv, NULL);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    return 0;
}

static tc__tier *open_tier(tc__opts *o) {
    tc__tier *t = NULL;
    char err[256] = "";
    int rc = tc__l3_open(o, &t, err, sizeof err);
    if (rc != 0) fprintf(stderr, "tc__l3_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(t);
    assert_int_equal(t->id, TC_TIER_L3);
    return t;
}

static tc__tier *open_default(void) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    return open_tier(&o);
}

static void raw_flush(void) {
    redisReply *r = tc_test_raw(srv.port, NULL, "FLUSHALL", NULL, NULL, NULL);
    assert_non_null(r);
    freeReplyObject(r);
}

static redisReply *raw_get(const char *key, size_t klen) {
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, klen};
    return tc_test_raw_cmd(srv.port, NULL, 2, argv, lens);
}

static long long raw_int(const char *a0, const char *a1) {
    redisReply *r = tc_test_raw(srv.port, NULL, a0, a1, NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

static void raw_set(const char *k, const char *v) {
    redisReply *r = tc_test_raw(srv.port, NULL, "SET", k, v, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static int tget(tc__tier *t, const void *k, size_t kl, char *buf, size_t cap, size_t *len, int64_t *ttl) {
    tc__sink s = {.buf = buf, .cap = cap};
    int rc = t->ops->get(t, &TC__KEY(k, kl), &s, ttl);
    if (len) *len = s.len;
    return rc;
}

/* ------------------------------------------------------------------------ */

static void test_set_get_del(void **state) {
    (void)state;
    raw_flush();
    tc__tier *t = open_default();
    assert_int_equal(t->ops->set(t, &TC__KEY("k1", 2), "value-1", 7, TC_TTL_NONE, NULL), 0);
    char buf[64];
    size_t len;
    int64_t ttl = 0;
    assert_int_equal(tget(t, "k1", 2, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "value-1", 7);
    assert_int_equal(ttl, TC_TTL_NONE);
    /* stored under the prefix, behind the 24-byte value header (docs/COHERENCE.md 3) */
    redisReply *r = raw_get("tctest:k1", 9);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_int_equal(r->len, 24 + 7);
    assert_memory_equal(r->str, "\xfeTC\x01", 4);
    assert_memory_equal(r->str + 24, "value-1", 7);
    freeReplyObject(r);
    /* overwrite */
    assert_int_equal(t->ops->set(t, &TC__KEY("k1", 2), "v2", 2, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "k1", 2, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 2);
    assert_memory_equal(buf, "v2", 2);
    /* delete, and delete again */
    assert_int_equal(t->ops->del(t, &TC__KEY("k1", 2)), 0);
    assert_int_equal(tget(t, "k1", 2, buf, sizeof buf, &len, &ttl), TC_EMISS);
    assert_int_equal(t->ops->del(t, &TC__KEY("k1", 2)), 0);
    assert_int_equal(tget(t, "never", 5, buf, sizeof buf, &len, &ttl), TC_EMISS);

    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.hits, 2);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.sets, 2);
    assert_int_equal(st.deletes, 2);
    t->ops->close(t);
}

static void test_binary_and_empty(void **state) {
    (void)state;
    tc__tier *t = open_default();
    const char key[] = {'a', 0, 'b', '\r', '\n', (char)0xff};
    unsigned char val[1000];
    for (size_t i = 0; i < sizeof val; i++) val[i] = (unsigned char)(i * 7);
    assert_int_equal(t->ops->set(t, &TC__KEY(key, sizeof key), val, sizeof val, TC_TTL_NONE, NULL), 0);
    char buf[2000];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, key, sizeof key, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, sizeof val);
    assert_memory_equal(buf, val, sizeof val);
    /* an empty value is a value */
    assert_int_equal(t->ops->set(t, &TC__KEY("empty", 5), "", 0, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "empty", 5, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 0);
    /* an empty key works too (it is the bare prefix in Redis) */
    assert_int_equal(t->ops->set(t, &TC__KEY("", 0), "x", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "", 0, buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 1);
    /* a buffer too small: the length is reported; a whole-capturing sink gets a heap copy */
    tc__sink s = {.buf = buf, .cap = 10};
    assert_int_equal(t->ops->get(t, &TC__KEY(key, sizeof key), &s, &ttl), 0);
    assert_int_equal(s.len, sizeof val);
    assert_null(s.heap);
    tc__sink w = {.buf = buf, .cap = 10, .want_whole = 1};
    assert_int_equal(t->ops->get(t, &TC__KEY(key, sizeof key), &w, &ttl), 0);
    assert_non_null(w.heap);
    assert_memory_equal(w.heap, val, sizeof val);
    free(w.heap);
    /* TTL-only lookup */
    assert_int_equal(t->ops->get(t, &TC__KEY(key, sizeof key), NULL, &ttl), 0);
    assert_int_equal(ttl, TC_TTL_NONE);
    /* a large value, bigger than one read */
    size_t big = 3u << 20;
    char *bv = malloc(big), *bb = malloc(big);
    for (size_t i = 0; i < big; i++) bv[i] = (char)(i % 251);
    assert_int_equal(t->ops->set(t, &TC__KEY("big", 3), bv, big, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "big", 3, bb, big, &len, &ttl), 0);
    assert_int_equal(len, big);
    assert_memory_equal(bb, bv, big);
    free(bv);
    free(bb);
    t->ops->close(t);
}

static void test_subsecond_ttl(void **state) {
    (void)state;
    tc__tier *t = open_default();
    assert_int_equal(t->ops->set(t, &TC__KEY("short", 5), "v", 1, 150, NULL), 0);
    long long pttl = raw_int("PTTL", "tctest:short");
    assert_true(pttl > 0 && pttl <= 150);
    char buf[8];
    size_t len;
    int64_t ttl = 0;
    assert_int_equal(tget(t, "short", 5, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 150);
    tc_test_sleep_ms(200);
    assert_int_equal(tget(t, "short", 5, buf, sizeof buf, &len, &ttl), TC_EMISS);
    /* 1 ms works too: never SETEX 0 */
    assert_int_equal(t->ops->set(t, &TC__KEY("one", 3), "v", 1, 1, NULL), 0);
    tc_test_sleep_ms(20);
    assert_int_equal(tget(t, "one", 3, buf, sizeof buf, &len, &ttl), TC_EMISS);
    t->ops->close(t);
}

static void test_remaining_ttl(void **state) {
    (void)state;
    tc__tier *t = open_default();
    assert_int_equal(t->ops->set(t, &TC__KEY("ten", 3), "v", 1, 10000, NULL), 0);
    tc_test_sleep_ms(120);
    char buf[8];
    size_t len;
    int64_t ttl = 0;
    assert_int_equal(tget(t, "ten", 3, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl <= 10000 - 100);
    assert_true(ttl > 8000);
    /* a key someone else gave a TTL reports it */
    redisReply *r = tc_test_raw(srv.port, NULL, "SET", "tctest:ext", "x", NULL);
    freeReplyObject(r);
    r = tc_test_raw(srv.port, NULL, "PEXPIRE", "tctest:ext", "60000", NULL);
    freeReplyObject(r);
    assert_int_equal(tget(t, "ext", 3, buf, sizeof buf, &len, &ttl), 0);
    assert_true(ttl > 50000 && ttl <= 60000);
    t->ops->close(t);
}

static void test_default_ttl(void **state) {
    (void)state;
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    /* TC__TTL_DEFAULT with REDIS_DEFAULT_TTL 0: no expiry */
    tc__tier *t = open_tier(&o);
    assert_int_equal(t->ops->set(t, &TC__KEY("d0", 2), "v", 1, TC__TTL_DEFAULT, NULL), 0);
    assert_int_equal(raw_int("PTTL", "tctest:d0"), -1);
    t->ops->close(t);
    /* with REDIS_DEFAULT_TTL = 5 s; L1's default is not L3's */
    o.redis_default_ttl_ms = 5000;
    o.mem_default_ttl_ms = 777;
    t = open_tier(&o);
    assert_int_equal(t->ops->set(t, &TC__KEY("d5", 2), "v", 1, TC__TTL_DEFAULT, NULL), 0);
    long long p = raw_int("PTTL", "tctest:d5");
    assert_true(p > 4000 && p <= 5000);
    /* an explicit no-expiry wins over the default */
    assert_int_equal(t->ops->set(t, &TC__KEY("dn", 2), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(raw_int("PTTL", "tctest:dn"), -1);
    /* nonsense TTLs are refused */
    assert_int_equal(t->ops->set(t, &TC__KEY("bad", 3), "v", 1, -5, NULL), TC_EINVAL);
    t->ops->close(t);
}

/* Issue 8, item 12: one range for TTLs in every tier; above TC_TTL_MAX_MS a set or an mset
 * entry is refused and nothing is written. */
static void test_ttl_beyond_range_is_refused(void **state) {
    (void)state;
    tc__tier *t = open_default();
    raw_flush();
    assert_int_equal(t->ops->set(t, &TC__KEY("big", 3), "v", 1, (int64_t)TC_TTL_MAX_MS + 1, NULL), TC_EINVAL);
    assert_int_equal(raw_int("EXISTS", "tctest:big"), 0);
    tc__key keys[2] = {TC__KEY("m1", 2), TC__KEY("m2", 2)};
    const void *vals[2] = {"a", "b"};
    size_t vlens[2] = {1, 1};
    int64_t ttls[2] = {(int64_t)(1ull << 48), 60000};
    int rcs[2];
    assert_int_equal(t->ops->mset(t, 2, keys, vals, vlens, ttls, NULL, rcs), 0);
    assert_int_equal(rcs[0], TC_EINVAL);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(raw_int("EXISTS", "tctest:m1"), 0);
    assert_int_equal(raw_int("EXISTS", "tctest:m2"), 1);
    assert_int_equal(t->ops->set(t, &TC__KEY("max", 3), "v", 1, (int64_t)TC_TTL_MAX_MS, NULL), 0);
    assert_true(raw_int("PTTL", "tctest:max") > (long long)TC_TTL_MAX_MS - 60000);
    t->ops->close(t);
}

static void test_fence(void **state) {
    (void)state;
    tc__tier *t = open_default();
    tc__coh *coh;
    assert_int_equal(tc__coh_open_private(&coh), 0);
    uint64_t h = tc__hash("fenced", 6);
    tc__fence stale = {coh, h, tc__coh_stamp(coh, h), NULL};
    tc__coh_bump(coh, h);
    tc__fence fresh = {coh, h, tc__coh_stamp(coh, h), NULL};
    assert_int_equal(t->ops->set(t, &TC__KEY("fenced", 6), "v", 1, TC_TTL_NONE, &stale), 0);
    char buf[8];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, "fenced", 6, buf, sizeof buf, &len, &ttl), TC_EMISS);
    assert_int_equal(t->ops->set(t, &TC__KEY("fenced", 6), "v", 1, TC_TTL_NONE, &fresh), 0);
    assert_int_equal(tget(t, "fenced", 6, buf, sizeof buf, &len, &ttl), 0);
    t->ops->close(t);
    tc__coh_close(coh);
}

static void test_wrong_type_is_miss(void **state) {
    (void)state;
    tc__tier *t = open_default();
    redisReply *r = tc_test_raw(srv.port, NULL, "LPUSH", "tctest:alist", "x", NULL);
    freeReplyObject(r);
    char buf[8];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, "alist", 5, buf, sizeof buf, &len, &ttl), TC_EMISS);
    /* and a set replaces it */
    assert_int_equal(t->ops->set(t, &TC__KEY("alist", 5), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "alist", 5, buf, sizeof buf, &len, &ttl), 0);
    t->ops->close(t);
}

static int raw_exists(const char *k) { return (int)raw_int("EXISTS", k); }

static void test_clear_namespace_only(void **state) {
    (void)state;
    raw_flush();
    tc__tier *t = open_default();
    raw_set("foreign:x", "1");
    raw_set("tctest", "2");      /* the prefix without its colon */
    raw_set("tctestX:y", "3");
    raw_set("TCTEST:z", "4");
    for (int i = 0; i < 2500; i++) {
        char k[32];
        int n = snprintf(k, sizeof k, "key-%d", i);
        assert_int_equal(t->ops->set(t, &TC__KEY(k, (size_t)n), "v", 1, TC_TTL_NONE, NULL), 0);
    }
    /* and tiercache's own keys under the namespace: the fleet epoch, then the clear records */
    assert_int_equal(raw_int("DBSIZE", NULL), 2504 + 1);
    assert_int_equal(t->ops->clear(t), 0);
    assert_int_equal(raw_int("DBSIZE", NULL), 4 + 2);
    assert_int_equal(raw_exists("foreign:x"), 1);
    assert_int_equal(raw_exists("tctest"), 1);
    assert_int_equal(raw_exists("tctestX:y"), 1);
    assert_int_equal(raw_exists("TCTEST:z"), 1);
    /* clearing an empty namespace is fine */
    assert_int_equal(t->ops->clear(t), 0);
    t->ops->close(t);
}

static void test_clear_prefix_glob_chars(void **state) {
    (void)state;
    raw_flush();
    tc__tier *t = open_default();
    const char *ours_gone[] = {"a*[b]?1", "a*[b]?", "a*[b]?\\x"};
    const char *ours_kept[] = {"aXbY1", "a*[b]", "ab", "a*[c]?1", "other"};
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(t->ops->set(t, &TC__KEY(ours_gone[i], strlen(ours_gone[i])), "v", 1, TC_TTL_NONE, NULL), 0);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(t->ops->set(t, &TC__KEY(ours_kept[i], strlen(ours_kept[i])), "v", 1, TC_TTL_NONE, NULL), 0);
    raw_set("a*[b]?foreign", "x"); /* outside the namespace, though it starts with the prefix */
    assert_int_equal(t->ops->clear_prefix(t, "a*[b]?", 6), 0);
    char buf[8];
    size_t len;
    int64_t ttl;
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(tget(t, ours_gone[i], strlen(ours_gone[i]), buf, sizeof buf, &len, &ttl), TC_EMISS);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(tget(t, ours_kept[i], strlen(ours_kept[i]), buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(raw_exists("a*[b]?foreign"), 1);
    /* a binary prefix */
    assert_int_equal(t->ops->set(t, &TC__KEY("p\0q1", 4), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(t->ops->set(t, &TC__KEY("p\0r1", 4), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(t->ops->clear_prefix(t, "p\0q", 3), 0);
    assert_int_equal(tget(t, "p\0q1", 4, buf, sizeof buf, &len, &ttl), TC_EMISS);
    assert_int_equal(tget(t, "p\0r1", 4, buf, sizeof buf, &len, &ttl), 0);
    t->ops->close(t);
}

static void test_namespace_with_glob_chars(void **state) {
    (void)state;
    raw_flush();
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    snprintf(o.redis_key_prefix, sizeof o.redis_key_prefix, "n[s]*?:");
    tc__tier *t = open_tier(&o);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, TC_TTL_NONE, NULL), 0);
    raw_set("ns:k", "foreign");      /* would match the unescaped pattern n[s]*?:* */
    raw_set("nsXY:k", "foreign");
    assert_int_equal(t->ops->clear(t), 0);
    assert_int_equal(raw_exists("n[s]*?:k"), 0);
    assert_int_equal(raw_exists("ns:k"), 1);
    assert_int_equal(raw_exists("nsXY:k"), 1);
    t->ops->close(t);
}

static void test_empty_namespace_warns(void **state) {
    (void)state;
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    o.redis_key_prefix[0] = '\0';
    logbuf lb = {.len = 0};
    o.log_fn = capture_log;
    o.log_userdata = &lb;
    tc__tier *t = open_tier(&o);
    assert_non_null(strstr(lb.text, "REDIS_KEY_PREFIX is empty"));
    t->ops->close(t);
}

static void test_mget_mset(void **state) {
    (void)state;
    raw_flush();
    tc__tier *t = open_default();
    enum { N = 600 }; /* more than one batch */
    static char keys[N][16], vals[N][32];
    const void *kp[N], *vp[N];
    size_t kl[N], vl[N];
    tc__key ks[N];
    int64_t ttls[N];
    int rcs[N];
    for (int i = 0; i < N; i++) {
        kl[i] = (size_t)snprintf(keys[i], sizeof keys[i], "m%d", i);
        vl[i] = (size_t)snprintf(vals[i], sizeof vals[i], "value-%d", i * 3);
        kp[i] = keys[i];
        ks[i] = TC__KEY(kp[i], kl[i]);
        vp[i] = vals[i];
        ttls[i] = i % 3 == 0 ? TC_TTL_NONE : 20000 + i;
    }
    /* every 5th key is not written: it must come back as a miss */
    size_t nw = 0;
    tc__key wk[N];
    const void *wv[N];
    size_t wvl[N];
    int64_t wt[N];
    for (int i = 0; i < N; i++) {
        if (i % 5 == 4) continue;
        wk[nw] = ks[i];
        wv[nw] = vp[i];
        wvl[nw] = vl[i];
        wt[nw] = ttls[i];
        nw++;
    }
    assert_int_equal(t->ops->mset(t, nw, wk, wv, wvl, wt, NULL, rcs), 0);
    for (size_t i = 0; i < nw; i++) assert_int_equal(rcs[i], 0);

    tc__sink outs[N];
    static char bufs[N][32];
    int64_t got_ttl[N];
    for (int i = 0; i < N; i++) outs[i] = (tc__sink){.buf = bufs[i], .cap = sizeof bufs[i]};
    assert_int_equal(t->ops->mget(t, N, ks, outs, got_ttl, rcs), 0);
    for (int i = 0; i < N; i++) {
        if (i % 5 == 4) {
            assert_int_equal(rcs[i], TC_EMISS);
            continue;
        }
        assert_int_equal(rcs[i], 0);
        assert_int_equal(outs[i].len, vl[i]);
        assert_memory_equal(bufs[i], vals[i], vl[i]);
        if (i % 3 == 0) assert_int_equal(got_ttl[i], TC_TTL_NONE);
        else assert_true(got_ttl[i] > 10000 && got_ttl[i] <= ttls[i]);
    }
    /* TTL-only mget */
    assert_int_equal(t->ops->mget(t, 3, ks, NULL, got_ttl, rcs), 0);
    assert_int_equal(rcs[0], 0);
    /* fences: a stale one skips its entry */
    tc__coh *coh;
    assert_int_equal(tc__coh_open_private(&coh), 0);
    tc__fence stale = {coh, tc__hash("f2", 2), tc__coh_stamp(coh, tc__hash("f2", 2)), NULL};
    tc__coh_bump(coh, stale.hash);
    const tc__fence *fences[2] = {NULL, &stale};
    tc__key fk[2] = {TC__KEY("f1", 2), TC__KEY("f2", 2)};
    const void *fv[2] = {"a", "b"};
    size_t fvl[2] = {1, 1};
    assert_int_equal(t->ops->mset(t, 2, fk, fv, fvl, NULL, fences, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(raw_exists("tctest:f1"), 1);
    assert_int_equal(raw_exists("tctest:f2"), 0);
    /* a bad TTL fails its entry only */
    int64_t bt[2] = {-7, 1000};
    assert_int_equal(t->ops->mset(t, 2, fk, fv, fvl, bt, NULL, rcs), 0);
    assert_int_equal(rcs[0], TC_EINVAL);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(t->ops->mget(t, 0, NULL, NULL, NULL, NULL), 0);
    t->ops->close(t);
    tc__coh_close(coh);
}

static const char *find_extra(const tc_tier_stats *st, const char *name) {
    for (int i = 0; i < st->nextra; i++)
        if (strcmp(st->extra[i].name, name) == 0) return st->extra[i].value;
    return NULL;
}

static void test_stats(void **state) {
    (void)state;
    raw_flush();
    tc__tier *t = open_default();
    raw_set("foreign", "x");
    assert_int_equal(t->ops->set(t, &TC__KEY("s", 1), "v", 1, TC_TTL_NONE, NULL), 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    assert_int_equal(st.tier, TC_TIER_L3);
    assert_string_equal(st.type, "redis");
    assert_int_equal(st.available, 1);
    assert_string_equal(find_extra(&st, "circuit"), "closed");
    assert_string_equal(find_extra(&st, "connection"), "connected");
    assert_string_equal(find_extra(&st, "db_keys"), "3"); /* with the fleet epoch key */
    /* the version is parsed from INFO, and matches the server's */
    redisReply *r = tc_test_raw(srv.port, NULL, "INFO", "server", NULL, NULL);
    const char *v = find_extra(&st, "server_version");
    assert_non_null(v);
    char want[64];
    snprintf(want, sizeof want, "redis_version:%s\r", v);
    assert_non_null(strstr(r->str, want));
    freeReplyObject(r);
    const char *mem = find_extra(&st, "used_memory");
    assert_non_null(mem);
    assert_true(strtoull(mem, NULL, 10) > 0);
    /* nothing raw: no host, no INFO text */
    for (int i = 0; i < st.nextra; i++) {
        assert_null(strstr(st.extra[i].value, "127.0.0.1"));
        assert_null(strchr(st.extra[i].value, '\n'));
        assert_null(strchr(st.extra[i].value, ':'));
    }
    t->ops->close(t);
}

/* Ranges are the configuration table's: a hand-filled struct out of range is refused when a
 * cache opens, with the variable's name, before the tier sees it. */
static void test_bad_options(void **state) {
    (void)state;
    tc__opts o;
    tc__tier *t = NULL;
    tc_cache *c = NULL;
    char err[TC_ERRBUF_SIZE];
    tc_test_l3_options(&o, srv.port);
    o.redis_host[0] = '\0';
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_HOST"));
    assert_null(c);
    tc_test_l3_options(&o, 0);
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_PORT"));
    tc_test_l3_options(&o, srv.port);
    o.redis_max_retries = -1;
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_MAX_RETRIES"));
    tc_test_l3_options(&o, srv.port);
    o.redis_command_timeout_ms = 0;
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_COMMAND_TIMEOUT"));
    tc_test_l3_options(&o, srv.port);
    o.redis_pool_size = -3;
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_POOL_SIZE"));
    tc_test_l3_options(&o, srv.port);
    o.redis_db = -1;
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_DB"));
    /* a database the server does not have: the tier opens, reports why, and refuses calls */
    tc_test_l3_options(&o, srv.port);
    o.redis_db = 999;
    logbuf lb = {.len = 0};
    o.log_fn = capture_log;
    o.log_userdata = &lb;
    assert_int_equal(tc__l3_open(&o, &t, err, sizeof err), 0);
    assert_non_null(strstr(lb.text, "REDIS_DB=999"));
    char buf[4];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, "x", 1, buf, sizeof buf, &len, &ttl), TC_ECONFIG);
    t->ops->close(t);
}

/* A name that does not resolve: the open returns within the connect timeout, says why, and
 * the tier starts unavailable. */
static void test_unresolvable_host(void **state) {
    (void)state;
    tc__opts o;
    tc_test_l3_options(&o, 6379);
    snprintf(o.redis_host, sizeof o.redis_host, "no-such-host.invalid");
    o.redis_connect_timeout_ms = 500;
    logbuf lb = {.len = 0};
    o.log_fn = capture_log;
    o.log_userdata = &lb;
    double t0 = tc_test_now_ms();
    tc__tier *t = open_tier(&o);
    assert_true(tc_test_now_ms() - t0 < 500 + 300);
    assert_non_null(strstr(lb.text, "resolv"));
    assert_non_null(strstr(lb.text, "no-such-host.invalid"));
    assert_int_equal(t->ops->del(t, &TC__KEY("k", 1)), TC_EUNAVAIL);
    t->ops->close(t);
}

static void test_db_select(void **state) {
    (void)state;
    raw_flush();
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    o.redis_db = 3;
    tc__tier *t = open_tier(&o);
    assert_int_equal(t->ops->set(t, &TC__KEY("indb3", 5), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(raw_exists("tctest:indb3"), 0); /* the raw client is on db 0 */
    char buf[4];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, "indb3", 5, buf, sizeof buf, &len, &ttl), 0);
    tc__tier *t0 = open_default();
    assert_int_equal(tget(t0, "indb3", 5, buf, sizeof buf, &len, &ttl), TC_EMISS);
    t0->ops->close(t0);
    t->ops->close(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_del),
        cmocka_unit_test(test_binary_and_empty),
        cmocka_unit_test(test_subsecond_ttl),
        cmocka_unit_test(test_remaining_ttl),
        cmocka_unit_test(test_default_ttl),
        cmocka_unit_test(test_ttl_beyond_range_is_refused),
        cmocka_unit_test(test_fence),
        cmocka_unit_test(test_wrong_type_is_miss),
        cmocka_unit_test(test_clear_namespace_only),
        cmocka_unit_test(test_clear_prefix_glob_chars),
        cmocka_unit_test(test_namespace_with_glob_chars),
        cmocka_unit_test(test_empty_namespace_warns),
        cmocka_unit_test(test_mget_mset),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_unresolvable_host),
        cmocka_unit_test(test_db_select),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
