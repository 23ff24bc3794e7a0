/*
 * test_l3_fleet_epoch.c -- the Redis value format (docs/COHERENCE.md 3) against a real
 * redis-server: a value Redis restored from an older snapshot reads as a miss, never as the
 * older value; values other clients write are read as they are, including ones that merely
 * look like ours; the value limit counts the payload; the fleet epoch key changed behind the
 * tier's back is checked again once the host's listener has seen it; tiercache's own keys are
 * not the application's; the remaining TTL of a hit is anchored at the request (through a
 * proxy that holds the server's replies back).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/listen_host.h"
#include "helpers/proxy.h"
#include "helpers/redis_server.h"
#include "l3_format.h"
#include "l3_redis.h"
#include "util.h"

static tc_test_redis srv;

static int setup(void **state) {
    (void)state;
    return tc_test_redis_setup(&srv, NULL);
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    return 0;
}

static tc__tier *open_tier(size_t max_value) {
    tc__opts o;
    tc_test_l3_options(&o, srv.port);
    if (max_value) o.max_value_bytes = max_value;
    tc__tier *t = NULL;
    char err[256] = "";
    int rc = tc__l3_open(&o, &t, err, sizeof err);
    if (rc) fprintf(stderr, "tc__l3_open: %s\n", err);
    assert_int_equal(rc, 0);
    return t;
}

static void raw_ok(const char *a0, const char *a1, const char *a2, const char *a3) {
    redisReply *r = tc_test_raw(srv.port, NULL, a0, a1, a2, a3);
    assert_non_null(r);
    assert_int_not_equal(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

static void raw_set_bin(const char *k, const void *v, size_t vl) {
    const char *argv[3] = {"SET", k, v};
    size_t lens[3] = {3, strlen(k), vl};
    redisReply *r = tc_test_raw_cmd(srv.port, NULL, 3, argv, lens);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
}

static int tget(tc__tier *t, const char *k, char *buf, size_t cap, size_t *len, int64_t *ttl) {
    tc__sink s = {.buf = buf, .cap = cap};
    int64_t dummy;
    int rc = t->ops->get(t, &TC__KEY(k, strlen(k)), &s, ttl ? ttl : &dummy);
    if (len) *len = s.len;
    return rc;
}

static int tset(tc__tier *t, const char *k, const char *v) {
    return t->ops->set(t, &TC__KEY(k, strlen(k)), v, strlen(v), TC_TTL_NONE, NULL);
}

/* ------------------------------------------------------------------------ */

/* Written, saved, overwritten; then the server restarts from the snapshot, which holds the
 * older value (as a restart with persistence, or a failover to a lagging replica, would): the
 * tier reads a miss, never the older value, and works on under the new epoch. */
static void test_value_restored_from_an_older_snapshot_reads_as_a_miss(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    tc__tier *t = open_tier(0);
    assert_int_equal(tset(t, "k", "older"), 0);
    raw_ok("SAVE", NULL, NULL, NULL);
    assert_int_equal(tset(t, "k", "newer"), 0);
    char buf[32];
    size_t len;
    assert_int_equal(tget(t, "k", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "newer", 5);
    uint64_t e0 = tc__l3_fleet_epoch(t);
    assert_int_not_equal(e0, 0);

    tc_test_redis_signal(&srv, SIGKILL);
    assert_int_equal(tc_test_redis_restart(&srv), 0);
    redisReply *r = tc_test_raw(srv.port, NULL, "STRLEN", "tctest:k", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->integer, 24 + 5); /* the older value is back in Redis */
    freeReplyObject(r);

    int rc = TC_ECONN;
    for (int i = 0; i < 50 && rc != 0 && rc != TC_EMISS; i++) { /* the tier reconnects */
        rc = tget(t, "k", buf, sizeof buf, &len, NULL);
        if (rc != 0 && rc != TC_EMISS) tc_test_sleep_ms(50);
    }
    assert_int_equal(rc, TC_EMISS);
    assert_int_not_equal(tc__l3_fleet_epoch(t), e0);
    assert_int_equal(tc__l3_epoch_misses(t), 1); /* counted as what it is */
    /* a TTL lookup says the same */
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY("k", 1), NULL, &ttl), TC_EMISS);
    /* and the key is usable again */
    assert_int_equal(tset(t, "k", "third"), 0);
    assert_int_equal(tget(t, "k", buf, sizeof buf, &len, NULL), 0);
    assert_memory_equal(buf, "third", 5);
    t->ops->close(t);
}

/* Values other clients write are returned as they are: text, binary, and bytes that begin
 * with the magic but are not a well-formed header (too short, a header length outside the
 * value, a tag block that runs past it). */
static void test_plain_values_read_as_they_are(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    tc__tier *t = open_tier(0);
    raw_ok("SET", "tctest:plain", "hello", NULL);
    char buf[128];
    size_t len;
    int64_t ttl;
    assert_int_equal(tget(t, "plain", buf, sizeof buf, &len, &ttl), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(ttl, TC_TTL_NONE);
    assert_int_equal(t->ops->get(t, &TC__KEY("plain", 5), NULL, &ttl), 0);

    unsigned char v[64];
    /* the magic, but 20 bytes: shorter than a header */
    memset(v, 'x', sizeof v);
    memcpy(v, "\xfeTC\x01", 4);
    raw_set_bin("tctest:short", v, 20);
    assert_int_equal(tget(t, "short", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 20);
    assert_memory_equal(buf, v, 20);
    /* header length under 24, and over the value's length */
    v[5] = 23;
    raw_set_bin("tctest:hlen-small", v, 40);
    assert_int_equal(tget(t, "hlen-small", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 40);
    v[5] = 60;
    raw_set_bin("tctest:hlen-big", v, 40);
    assert_int_equal(tget(t, "hlen-big", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 40);
    /* a tag block whose tags run past the end */
    v[4] = TC__L3_HDR_FLAG_TAGS;
    v[5] = 24;
    v[24] = 1;
    v[25] = 0;  /* one tag */
    v[26] = 50;
    v[27] = 0; /* of 50 bytes, in a 40-byte value */
    raw_set_bin("tctest:tags", v, 40);
    assert_int_equal(tget(t, "tags", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 40);
    assert_memory_equal(buf, v, 40);

    /* a well-formed header of another epoch is ours: a miss; of this epoch, its payload */
    unsigned char hdr[TC__L3_HDR_LEN + 3];
    tc__l3_hdr_put(hdr, tc__l3_fleet_epoch(t) + 1);
    memcpy(hdr + TC__L3_HDR_LEN, "abc", 3);
    raw_set_bin("tctest:other-epoch", hdr, sizeof hdr);
    assert_int_equal(tget(t, "other-epoch", buf, sizeof buf, &len, NULL), TC_EMISS);
    tc__l3_hdr_put(hdr, tc__l3_fleet_epoch(t));
    raw_set_bin("tctest:this-epoch", hdr, sizeof hdr);
    assert_int_equal(tget(t, "this-epoch", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(buf, "abc", 3);

    /* the same through mget, values and TTL-only */
    tc__key keys[4] = {TC__KEY("plain", 5), TC__KEY("tags", 4), TC__KEY("other-epoch", 11), TC__KEY("this-epoch", 10)};
    char b[4][64];
    tc__sink outs[4];
    int64_t ttls[4];
    int rcs[4];
    for (int i = 0; i < 4; i++) outs[i] = (tc__sink){.buf = b[i], .cap = sizeof b[i]};
    assert_int_equal(t->ops->mget(t, 4, keys, outs, ttls, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(outs[0].len, 5);
    assert_int_equal(rcs[1], 0);
    assert_int_equal(outs[1].len, 40);
    assert_int_equal(rcs[2], TC_EMISS);
    assert_int_equal(rcs[3], 0);
    assert_int_equal(outs[3].len, 3);
    assert_int_equal(t->ops->mget(t, 4, keys, NULL, ttls, rcs), 0);
    assert_int_equal(rcs[0], 0);
    assert_int_equal(rcs[2], TC_EMISS);
    assert_int_equal(rcs[3], 0);
    t->ops->close(t);
}

/* CACHE_MAX_VALUE_BYTES is the payload's limit: a value of ours at the limit is a hit (its
 * header does not count), a plain value over it a miss. */
static void test_value_limit_counts_the_payload_only(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    tc__tier *t = open_tier(100);
    char v[200], buf[256];
    memset(v, 'p', sizeof v);
    size_t len;
    assert_int_equal(t->ops->set(t, &TC__KEY("at", 2), v, 100, TC_TTL_NONE, NULL), 0);
    assert_int_equal(tget(t, "at", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 100);
    raw_set_bin("tctest:plain100", v, 100);
    assert_int_equal(tget(t, "plain100", buf, sizeof buf, &len, NULL), 0);
    assert_int_equal(len, 100);
    raw_set_bin("tctest:plain101", v, 101);
    assert_int_equal(tget(t, "plain101", buf, sizeof buf, &len, NULL), TC_EMISS);
    raw_set_bin("tctest:plain124", v, 124);
    assert_int_equal(tget(t, "plain124", buf, sizeof buf, &len, NULL), TC_EMISS);
    t->ops->close(t);
}

/* Another client replaces the fleet epoch key (as a tiercache of another server would after a
 * failover behind a proxy, where no connection drops): the host's listener sees the key
 * change, every process of the host checks the epoch again on its next call, and values
 * written under the old epoch read as misses. */
static void test_epoch_key_changed_behind_the_tier_is_checked_again(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    char name[64];
    tc_test_host_name(name, sizeof name, "epoch");
    tc_test_host h;
    assert_int_equal(tc_test_host_open(&h, name, srv.port, 400, 1), 0);
    tc__tier *t = h.l3;
    assert_int_equal(tset(t, "k", "before"), 0);
    char buf[32];
    size_t len;
    assert_int_equal(tget(t, "k", buf, sizeof buf, &len, NULL), 0);
    for (int i = 0; i < 200 && tc__coh_gap(h.coh); i++) tc_test_sleep_ms(10); /* listening */
    assert_false(tc__coh_gap(h.coh));
    uint64_t e0 = tc__l3_fleet_epoch(t);
    raw_ok("SET", "tctest:\xff__tiercache__:epoch", "ffffffffffffffffffffffffffffffffffffffff:0000000000000001", NULL);
    tc_test_sleep_ms(100);
    assert_int_equal(tget(t, "k", buf, sizeof buf, &len, NULL), TC_EMISS);
    assert_int_not_equal(tc__l3_fleet_epoch(t), e0);
    assert_int_equal(tset(t, "k", "after"), 0);
    assert_int_equal(tget(t, "k", buf, sizeof buf, &len, NULL), 0);
    assert_memory_equal(buf, "after", 5);
    tc_test_host_close(&h, 1);
}

/* tiercache's own keys under the namespace are not the application's: not written, not read,
 * not deleted, and a clear leaves them. */
static void test_reserved_keys_are_not_the_applications(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    tc__tier *t = open_tier(0);
    const char *k = "\xff__tiercache__:epoch";
    char buf[128];
    size_t len;
    assert_int_equal(tset(t, k, "x"), TC_EINVAL);
    assert_int_equal(tget(t, k, buf, sizeof buf, &len, NULL), TC_EMISS);
    tc__key keys[2] = {TC__KEY(k, strlen(k)), TC__KEY("plain", 5)};
    tc__sink outs[2] = {{.buf = buf, .cap = sizeof buf}, {.buf = buf, .cap = sizeof buf}};
    int64_t ttls[2];
    int rcs[2];
    assert_int_equal(t->ops->mget(t, 2, keys, outs, ttls, rcs), 0);
    assert_int_equal(rcs[0], TC_EMISS);
    assert_int_equal(t->ops->del(t, &TC__KEY(k, strlen(k))), 0);
    assert_int_equal(t->ops->clear(t), 0);
    redisReply *r = tc_test_raw(srv.port, NULL, "EXISTS", "tctest:\xff__tiercache__:epoch", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->integer, 1);
    freeReplyObject(r);
    t->ops->close(t);
}

/* The remaining TTL a hit reports is PTTL less the time from writing the request to reading
 * the reply, so a copy made from it never outlives the key: here the reply is held back 300 ms
 * after the server computed PTTL. */
static void test_remaining_ttl_is_anchored_at_the_request(void **state) {
    (void)state;
    raw_ok("FLUSHALL", NULL, NULL, NULL);
    tc_test_proxy px;
    assert_int_equal(tc_test_proxy_start(&px, srv.port), 0);
    tc__opts o;
    tc_test_l3_options(&o, px.port);
    tc__tier *t = NULL;
    char err[256];
    assert_int_equal(tc__l3_open(&o, &t, err, sizeof err), 0);
    const int64_t px_ms = 2000;
    assert_int_equal(t->ops->set(t, &TC__KEY("ttl", 3), "v", 1, px_ms, NULL), 0);
    double set_ms = tc_test_now_ms();
    px.hold_ms = 300;
    char buf[16];
    tc__sink s = {.buf = buf, .cap = sizeof buf};
    int64_t ttl = 0;
    assert_int_equal(t->ops->get(t, &TC__KEY("ttl", 3), &s, &ttl), 0);
    double done_ms = tc_test_now_ms();
    px.hold_ms = 0;
    /* when the copy would expire, on our clock, is no later than when the key does */
    double copy_ends = done_ms + (double)ttl, key_ends = set_ms + (double)px_ms;
    printf("get took %.0f ms; remaining TTL %lld ms; the copy ends %.1f ms before the key\n", done_ms - set_ms,
           (long long)ttl, key_ends - copy_ends);
    assert_true(done_ms - set_ms >= 300); /* the reply was held back */
    assert_true(copy_ends <= key_ends + 1); /* (ms rounding of PTTL) */
    /* a key whose TTL runs out while its reply is held back is a miss */
    assert_int_equal(t->ops->set(t, &TC__KEY("short", 5), "v", 1, 200, NULL), 0);
    px.hold_ms = 300;
    s.len = 0;
    assert_int_equal(t->ops->get(t, &TC__KEY("short", 5), &s, &ttl), TC_EMISS);
    px.hold_ms = 0;
    t->ops->close(t);
    tc_test_proxy_stop(&px);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_value_restored_from_an_older_snapshot_reads_as_a_miss),
        cmocka_unit_test(test_plain_values_read_as_they_are),
        cmocka_unit_test(test_value_limit_counts_the_payload_only),
        cmocka_unit_test(test_epoch_key_changed_behind_the_tier_is_checked_again),
        cmocka_unit_test(test_reserved_keys_are_not_the_applications),
        cmocka_unit_test(test_remaining_ttl_is_anchored_at_the_request),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
