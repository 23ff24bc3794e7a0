/*
 * test_render.c -- the three renderings of a statistics snapshot (src/render.c): the health
 * document, the JSON dump and the Prometheus text exposition, for one to three tiers, a tier
 * down, no lookups yet, extreme counters, hostile strings a tier could report, counts out of
 * range, bad arguments and every allocation failing in turn.
 *
 * JSON is parsed with jansson (tests/helpers/json_check.h), so keys, types and decoded strings
 * are compared with the snapshot; Prometheus text is validated and read by the
 * prometheus_client package's parser (tests/helpers/prom_check.h). Where the exact spelling of
 * a number is the point (no trailing zeros, no exponent), the text itself is searched.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers/json_check.h"
#include "helpers/prom_check.h"
#include "render.h"
#include "strbuf.h"

/* ======================================================================== */
/* Snapshots                                                                */
/* ======================================================================== */

typedef struct extra_case {
    const char *name, *value;
    const char *json_value; /* the value as a JSON parser must decode it */
} extra_case;

/* Extras a tier could report: every character that needs escaping somewhere. */
static const extra_case hostile[] = {
    {"quote\"name", "say \"hi\"", "say \"hi\""},
    {"path", "C:\\dir\\", "C:\\dir\\"},
    {"multi line", "a\nb\r\nc", "a\nb\r\nc"},
    {"ctl", "\x01\x1f\t\x7f", "\x01\x1f\t\x7f"},
    {"utf8", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e", "h\xc3\xa9llo \xe2\x9c\x93 \xf0\x9d\x84\x9e"},
    {"bad_utf8", "\xff\xc0\x80\xed\xa0\x80 end",
     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd end"},
    {"truncated", "ab\xe2\x9c", "ab\xef\xbf\xbd\xef\xbf\xbd"},
    {"js_sep", "a\xe2\x80\xa8" "b\xe2\x80\xa9", "a\xe2\x80\xa8" "b\xe2\x80\xa9"},
    {"9lives", "cat", "cat"},
    {"__reserved", "r", "r"},
    {"tier", "not a tier label", "not a tier label"},
    {"path", "duplicate: dropped", NULL},
    {"", "empty name", "empty name"},
};
#define NHOSTILE (sizeof hostile / sizeof hostile[0])

static void fill_tier(tc_tier_stats *t, int tier, int available, uint64_t base) {
    memset(t, 0, sizeof *t);
    t->tier = tier;
    strcpy(t->type, tier == 1 ? "memory" : tier == 2 ? "shared" : "redis");
    t->available = available;
    t->hits = base + 1;
    t->misses = base + 2;
    t->sets = base + 3;
    t->deletes = base + 4;
    t->evictions = base + 5;
    t->expirations = base + 6;
    t->errors = base + 7;
    t->entries = base + 8;
    t->bytes = base + 9;
    t->max_entries = base + 10;
    t->max_bytes = base + 11;
    t->latency_samples = base + 12;
    t->p50_ns = 42100 + base;
    t->p95_ns = 1500000 + base;
    t->p99_ns = 2000000000 + base;
    t->max_ns = 3000000001 + base;
}

/* A snapshot with ntiers tiers (L1, L2, L3 order); tier `down` (or -1) is unavailable. The
 * last tier carries the hostile extras, the first one a plain extra. */
static tc__snapshot make_stats(int ntiers, int down) {
    tc__snapshot st;
    memset(&st, 0, sizeof st);
    st.st.hits = 900;
    st.st.misses = 100;
    st.st.errors = 3;
    st.st.loads = 40;
    st.st.load_errors = 2;
    st.st.load_waits = 17;
    st.st.last_hit_tier = TC_TIER_L2;
    st.st.latency_samples = 1000;
    st.st.p50_ns = 42100;
    st.st.p95_ns = 950000;
    st.st.p99_ns = 12345678;
    st.st.max_ns = 99999999999;
    st.st.uptime_s = 3723.5;
    st.st.ntiers = ntiers;
    for (int i = 0; i < ntiers; i++) fill_tier(&st.tiers[i], i + 1, i != down, (uint64_t)(i + 1) * 1000);
    tc_tier_stats *first = &st.tiers[0];
    strcpy(first->extra[0].name, "shards");
    strcpy(first->extra[0].value, "16");
    first->nextra = 1;
    if (ntiers > 1) {
        tc_tier_stats *last = &st.tiers[ntiers - 1];
        last->nextra = (int)NHOSTILE;
        for (size_t i = 0; i < NHOSTILE; i++) {
            strcpy(last->extra[i].name, hostile[i].name);
            strcpy(last->extra[i].value, hostile[i].value);
        }
    }
    return st;
}

/* ======================================================================== */
/* Reading the output                                                       */
/* ======================================================================== */

/* Parses a rendering, which must be one strict JSON document; fails the test otherwise. */
static json_t *parse_json(const char *text, size_t flags) {
    char err[256];
    json_t *v = tc_test_json_parse(text, strlen(text), flags, err, sizeof err);
    if (v == NULL) fail_msg("%s:\n%s", err, text);
    return v;
}

/* The member k of object o, which must exist and pass is(); fails the test otherwise. */
static json_t *jreq_is(json_t *o, const char *k, int (*is)(const json_t *), const char *what) {
    json_t *v = json_is_object(o) ? json_object_get(o, k) : NULL;
    if (v == NULL || !is(v)) fail_msg("member \"%s\" missing or not %s", k, what);
    return v;
}

static int is_object(const json_t *v) { return json_is_object(v); }
static int is_array(const json_t *v) { return json_is_array(v); }
static int is_string(const json_t *v) { return json_is_string(v); }
static int is_number(const json_t *v) { return json_is_number(v); }
static int is_bool(const json_t *v) { return json_is_boolean(v); }
static int is_null(const json_t *v) { return json_is_null(v); }
static int is_count(const json_t *v) { return json_is_integer(v) && json_integer_value(v) >= 0; }

static json_t *jobj(json_t *o, const char *k) { return jreq_is(o, k, is_object, "an object"); }
static json_t *jarr(json_t *o, const char *k) { return jreq_is(o, k, is_array, "an array"); }
static const char *jstr(json_t *o, const char *k) { return json_string_value(jreq_is(o, k, is_string, "a string")); }
static double jnum(json_t *o, const char *k) { return json_number_value(jreq_is(o, k, is_number, "a number")); }
static int jbool(json_t *o, const char *k) { return json_is_true(jreq_is(o, k, is_bool, "a boolean")); }
static void jnull(json_t *o, const char *k) { jreq_is(o, k, is_null, "null"); }

/* A count: written as a plain non-negative integer (no fraction, exponent or sign). */
static uint64_t jcount(json_t *o, const char *k) {
    return (uint64_t)json_integer_value(jreq_is(o, k, is_count, "a non-negative integer"));
}

/* Asserts that the text holds "name":value exactly (the number's spelling), the value ending
 * where the member does. The first such member counts. */
static void assert_member_text(const char *text, const char *name, const char *value) {
    char needle[256];
    snprintf(needle, sizeof needle, "\"%s\":%s", name, value);
    const char *p = strstr(text, needle);
    if (p == NULL || !strchr(",}]", p[strlen(needle)]))
        fail_msg("no member %s in:\n%s", needle, text);
}

/* Allocation failure: every allocation of every rendering is made to fail in turn; each must
 * return TC_ENOMEM with *out NULL and leak nothing (ASan builds check the leaks). */
static int fail_after;

static void *failing_realloc(void *p, size_t n) {
    if (fail_after-- <= 0) return NULL;
    return realloc(p, n);
}

static void test_render_out_of_memory(void **state) {
    (void)state;
    tc__snapshot st = make_stats(3, 1);
    for (int which = 0; which < 3; which++) {
        int ok = 0;
        for (int k = 0; k < 64 && !ok; k++) {
            char *out = (char *)1;
            fail_after = k;
            tc__sb_realloc = failing_realloc;
            int rc = which == 0   ? tc__render_health(&st, "degraded", &out)
                     : which == 1 ? tc__render_stats_json(&st, &out)
                                  : tc__render_prometheus(&st, &out);
            tc__sb_realloc = realloc;
            if (rc == 0) {
                ok = 1;
                assert_non_null(out);
                assert_true(k > 0); /* at least one allocation was needed */
                free(out);
            } else {
                assert_int_equal(rc, TC_ENOMEM);
                assert_string_equal(tc_strerror(rc), "out of memory");
                assert_null(out);
            }
        }
        assert_true(ok);
    }
}

/* ======================================================================== */
/* Health status and bad input                                              */
/* ======================================================================== */

static void test_health_status(void **state) {
    (void)state;
    tc__snapshot st = make_stats(0, -1);
    assert_string_equal(tc__health_status(&st), "unhealthy"); /* no tier at all */
    assert_string_equal(tc__health_status(NULL), "unhealthy");
    st = make_stats(1, -1);
    assert_string_equal(tc__health_status(&st), "healthy");
    st = make_stats(1, 0);
    assert_string_equal(tc__health_status(&st), "unhealthy");
    st = make_stats(3, -1);
    assert_string_equal(tc__health_status(&st), "healthy");
    st = make_stats(3, 2);
    assert_string_equal(tc__health_status(&st), "degraded");
    st.tiers[0].available = st.tiers[1].available = 0;
    assert_string_equal(tc__health_status(&st), "unhealthy");
    st = make_stats(2, -1);
    st.tiers[1].available = 7; /* any non-zero is available */
    assert_string_equal(tc__health_status(&st), "healthy");
}

static void test_render_bad_arguments(void **state) {
    (void)state;
    tc__snapshot st = make_stats(1, -1);
    char *out = (char *)1;
    assert_int_equal(tc__render_health(NULL, "healthy", &out), TC_EINVAL);
    assert_null(out);
    assert_string_equal(tc_strerror(TC_EINVAL), "invalid argument");
    out = (char *)1;
    assert_int_equal(tc__render_stats_json(NULL, &out), TC_EINVAL);
    assert_null(out);
    out = (char *)1;
    assert_int_equal(tc__render_prometheus(NULL, &out), TC_EINVAL);
    assert_null(out);
    assert_int_equal(tc__render_health(&st, "healthy", NULL), TC_EINVAL);
    assert_int_equal(tc__render_stats_json(&st, NULL), TC_EINVAL);
    assert_int_equal(tc__render_prometheus(&st, NULL), TC_EINVAL);
}

/* Counts out of range are clamped, never read past the arrays; strings filling their whole
 * array (no NUL) are read only up to the array's end. */
static void test_render_clamps_counts_and_unterminated_strings(void **state) {
    (void)state;
    tc__snapshot st = make_stats(3, -1);
    memset(st.tiers[2].type, 'T', sizeof st.tiers[2].type);
    memset(st.tiers[2].extra[0].name, 'n', sizeof st.tiers[2].extra[0].name);
    memset(st.tiers[2].extra[0].value, 'v', sizeof st.tiers[2].extra[0].value);
    st.tiers[2].nextra = 1000;
    st.st.ntiers = 99;
    char *out;
    assert_int_equal(tc__render_stats_json(&st, &out), 0);
    json_t *v = parse_json(out, 0);
    json_t *tiers = jarr(v, "tiers");
    assert_int_equal(json_array_size(tiers), 3);
    assert_int_equal(jcount(v, "ntiers"), 3);
    json_t *t = json_array_get(tiers, 2);
    assert_int_equal(json_string_length(jreq_is(t, "type", is_string, "a string")), sizeof st.tiers[2].type);
    json_t *extra = jobj(t, "extra");
    /* 16 extras read: the unterminated one, the hostile ones but the duplicate "path", and
     * the zeroed rest, all named "" like hostile[12], so dropped as duplicates */
    assert_int_equal(json_object_size(extra), 12);
    void *first = json_object_iter(extra);
    assert_int_equal(json_object_iter_key_len(first), sizeof st.tiers[2].extra[0].name);
    assert_int_equal(json_string_length(json_object_iter_value(first)), sizeof st.tiers[2].extra[0].value);
    json_decref(v);
    free(out);
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    char err[1024];
    json_t *prom = tc_test_prom_parse(out, err, sizeof err);
    if (prom == NULL) fail_msg("%s\n%s", err, out);
    json_decref(prom);
    free(out);

    st.st.ntiers = -5;
    st.st.uptime_s = NAN;
    assert_int_equal(tc__render_health(&st, NULL, &out), 0);
    v = parse_json(out, 0);
    assert_string_equal(jstr(v, "status"), "unhealthy");
    json_t *deps = jarr(v, "dependencies");
    assert_int_equal(json_array_size(jarr(jobj(json_array_get(deps, 0), "stats"), "tiers")), 0);
    assert_true(jnum(v, "uptime") == 0);
    assert_member_text(out, "uptime", "0");
    json_decref(v);
    free(out);
}

/* ======================================================================== */
/* The health document                                                      */
/* ======================================================================== */

static void check_extras_json(json_t *obj, const tc_tier_stats *t) {
    assert_true(json_is_object(obj));
    if (t->nextra == 0) {
        assert_int_equal(json_object_size(obj), 0);
        return;
    }
    if (t->nextra == 1) {
        assert_int_equal(json_object_size(obj), 1);
        assert_string_equal(jstr(obj, "shards"), "16");
        return;
    }
    size_t expect = 0;
    for (size_t i = 0; i < NHOSTILE; i++) {
        if (hostile[i].json_value == NULL) continue; /* a duplicate name: the first one wins */
        expect++;
        json_t *v = jreq_is(obj, hostile[i].name, is_string, "a string");
        assert_int_equal(json_string_length(v), strlen(hostile[i].json_value));
        assert_memory_equal(json_string_value(v), hostile[i].json_value, json_string_length(v));
    }
    assert_int_equal(json_object_size(obj), expect);
}

static void check_health(int ntiers, int down, const char *want_status) {
    tc__snapshot st = make_stats(ntiers, down);
    const char *status = tc__health_status(&st);
    assert_string_equal(status, want_status);
    char *out;
    time_t before = time(NULL);
    assert_int_equal(tc__render_health(&st, status, &out), 0);
    time_t after = time(NULL);
    json_t *doc = parse_json(out, 0);
    assert_true(json_is_object(doc));
    assert_string_equal(jstr(doc, "service"), "tiercache");
    assert_string_equal(jstr(doc, "version"), TC_VERSION_STRING);
    assert_string_equal(jstr(doc, "status"), want_status);

    json_t *deps = jarr(doc, "dependencies");
    assert_int_equal(json_array_size(deps), 1);
    json_t *dep = json_array_get(deps, 0);
    assert_string_equal(jstr(dep, "name"), "CacheBackend");
    assert_string_equal(jstr(dep, "status"), want_status);
    json_t *tiers = jarr(jobj(dep, "stats"), "tiers");
    assert_int_equal(json_array_size(tiers), (size_t)ntiers);
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        json_t *o = json_array_get(tiers, (size_t)i);
        assert_string_equal(jstr(o, "tier"), tc_tier_name(t->tier));
        assert_string_equal(jstr(o, "type"), t->type);
        assert_int_equal(jbool(o, "available"), i != down);
        assert_int_equal(jcount(o, "entries"), t->entries);
        assert_int_equal(jcount(o, "bytes"), t->bytes);
        assert_int_equal(jcount(o, "maxEntries"), t->max_entries);
        assert_int_equal(jcount(o, "maxBytes"), t->max_bytes);
        assert_int_equal(jcount(o, "hits"), t->hits);
        assert_int_equal(jcount(o, "misses"), t->misses);
        assert_int_equal(jcount(o, "sets"), t->sets);
        assert_int_equal(jcount(o, "deletes"), t->deletes);
        assert_int_equal(jcount(o, "evictions"), t->evictions);
        assert_int_equal(jcount(o, "expirations"), t->expirations);
        assert_int_equal(jcount(o, "errors"), t->errors);
        json_t *lat = jobj(o, "latency");
        assert_int_equal(jcount(lat, "samples"), t->latency_samples);
        assert_true(fabs(jnum(lat, "p50Ms") - (double)t->p50_ns / 1e6) < 1e-9);
        assert_true(fabs(jnum(lat, "p95Ms") - (double)t->p95_ns / 1e6) < 1e-9);
        assert_true(fabs(jnum(lat, "p99Ms") - (double)t->p99_ns / 1e6) < 1e-6);
        assert_true(fabs(jnum(lat, "maxMs") - (double)t->max_ns / 1e6) < 1e-6);
        check_extras_json(jobj(o, "metadata"), t);
    }
    /* 42100 ns + 1000 ns = 43100 ns is written exactly as 0.0431 ms (the first tier's p50) */
    assert_member_text(out, "p50Ms", "0.0431");

    const char *ts = jstr(doc, "timestamp");
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int ms = -1, consumed = 0;
    assert_int_equal(sscanf(ts, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ%n", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms, &consumed),
                     7);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(consumed, 24);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t when = timegm(&tm);
    assert_true(when >= before && when <= after);
    assert_true(ms >= 0 && ms <= 999);

    assert_true(jnum(doc, "uptime") == 3723.5);
    assert_member_text(out, "uptime", "3723.5");

    json_t *tm_ = jobj(doc, "tierMetrics");
    assert_int_equal(jcount(tm_, "hits"), 900);
    assert_int_equal(jcount(tm_, "misses"), 100);
    assert_int_equal(jcount(tm_, "errors"), 3);
    assert_true(jnum(tm_, "hitRate") == 0.9);
    assert_string_equal(jstr(tm_, "lastHitTier"), "L2");
    assert_true(jnum(tm_, "latencyP50") == 0.0421);
    assert_true(jnum(tm_, "latencyP95") == 0.95);
    assert_true(jnum(tm_, "latencyP99") == 12.345678);
    assert_member_text(out, "hitRate", "0.9");
    assert_member_text(out, "latencyP50", "0.0421");
    assert_member_text(out, "latencyP95", "0.95");
    assert_member_text(out, "latencyP99", "12.345678");
    json_decref(doc);
    free(out);
}

static void test_health_one_tier(void **state) {
    (void)state;
    check_health(1, -1, "healthy");
    check_health(1, 0, "unhealthy");
}

static void test_health_two_tiers(void **state) {
    (void)state;
    check_health(2, -1, "healthy");
    check_health(2, 0, "degraded");
}

static void test_health_three_tiers_one_down_is_degraded(void **state) {
    (void)state;
    check_health(3, 1, "degraded");
    check_health(3, -1, "healthy");
}

static void test_health_no_lookups_yet(void **state) {
    (void)state;
    tc__snapshot st = make_stats(1, -1);
    st.st.hits = st.st.misses = 0;
    st.st.last_hit_tier = TC_TIER_NONE;
    st.st.p50_ns = st.st.p95_ns = st.st.p99_ns = 0;
    char *out;
    assert_int_equal(tc__render_health(&st, "healthy", &out), 0);
    json_t *doc = parse_json(out, 0);
    json_t *tm = jobj(doc, "tierMetrics");
    assert_true(jnum(tm, "hitRate") == 0);
    jnull(tm, "lastHitTier");
    assert_true(jnum(tm, "latencyP50") == 0);
    assert_member_text(out, "hitRate", "0");
    assert_member_text(out, "latencyP50", "0");
    json_decref(doc);
    free(out);
    /* all hits: exactly 1 */
    st.st.hits = 5;
    assert_int_equal(tc__render_health(&st, "healthy", &out), 0);
    doc = parse_json(out, 0);
    assert_true(jnum(jobj(doc, "tierMetrics"), "hitRate") == 1);
    assert_member_text(out, "hitRate", "1");
    json_decref(doc);
    free(out);
}

/* ======================================================================== */
/* The JSON dump                                                            */
/* ======================================================================== */

static void check_stats_json(int ntiers, int down) {
    tc__snapshot st = make_stats(ntiers, down);
    char *out;
    assert_int_equal(tc__render_stats_json(&st, &out), 0);
    json_t *doc = parse_json(out, 0);
    assert_string_equal(jstr(doc, "status"), tc__health_status(&st));
    assert_int_equal(jcount(doc, "hits"), st.st.hits);
    assert_int_equal(jcount(doc, "misses"), st.st.misses);
    assert_int_equal(jcount(doc, "errors"), st.st.errors);
    assert_int_equal(jcount(doc, "loads"), st.st.loads);
    assert_int_equal(jcount(doc, "load_errors"), st.st.load_errors);
    assert_int_equal(jcount(doc, "load_waits"), st.st.load_waits);
    assert_string_equal(jstr(doc, "last_hit_tier"), "L2");
    assert_int_equal(jcount(doc, "latency_samples"), st.st.latency_samples);
    assert_int_equal(jcount(doc, "p50_ns"), st.st.p50_ns);
    assert_int_equal(jcount(doc, "p95_ns"), st.st.p95_ns);
    assert_int_equal(jcount(doc, "p99_ns"), st.st.p99_ns);
    assert_int_equal(jcount(doc, "max_ns"), st.st.max_ns);
    assert_true(jnum(doc, "uptime_s") == 3723.5);
    assert_true(jnum(doc, "hit_rate") == 0.9);
    assert_member_text(out, "uptime_s", "3723.5");
    assert_member_text(out, "hit_rate", "0.9");
    assert_int_equal(jcount(doc, "ntiers"), ntiers);
    json_t *tiers = jarr(doc, "tiers");
    assert_int_equal(json_array_size(tiers), (size_t)ntiers);
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        json_t *o = json_array_get(tiers, (size_t)i);
        assert_string_equal(jstr(o, "tier"), tc_tier_name(t->tier));
        assert_string_equal(jstr(o, "type"), t->type);
        assert_int_equal(jbool(o, "available"), i != down);
        assert_int_equal(jcount(o, "hits"), t->hits);
        assert_int_equal(jcount(o, "misses"), t->misses);
        assert_int_equal(jcount(o, "sets"), t->sets);
        assert_int_equal(jcount(o, "deletes"), t->deletes);
        assert_int_equal(jcount(o, "evictions"), t->evictions);
        assert_int_equal(jcount(o, "expirations"), t->expirations);
        assert_int_equal(jcount(o, "errors"), t->errors);
        assert_int_equal(jcount(o, "entries"), t->entries);
        assert_int_equal(jcount(o, "bytes"), t->bytes);
        assert_int_equal(jcount(o, "max_entries"), t->max_entries);
        assert_int_equal(jcount(o, "max_bytes"), t->max_bytes);
        assert_int_equal(jcount(o, "latency_samples"), t->latency_samples);
        assert_int_equal(jcount(o, "p50_ns"), t->p50_ns);
        assert_int_equal(jcount(o, "p95_ns"), t->p95_ns);
        assert_int_equal(jcount(o, "p99_ns"), t->p99_ns);
        assert_int_equal(jcount(o, "max_ns"), t->max_ns);
        check_extras_json(jobj(o, "extra"), t);
    }
    json_decref(doc);
    free(out);
}

static void test_stats_json_tiers(void **state) {
    (void)state;
    check_stats_json(1, -1);
    check_stats_json(2, 1);
    check_stats_json(3, 1);
}

/* Counters up to 2^64-1 are written in full, and a gauge the tier cannot know (entries of L3)
 * as null. jansson reads integers only up to 2^63-1, so this document is read with integers as
 * doubles and the digits are checked in the text. */
static void test_stats_json_extreme_counters(void **state) {
    (void)state;
    tc__snapshot st = make_stats(1, -1);
    st.st.hits = UINT64_MAX;
    st.st.misses = UINT64_MAX;
    st.tiers[0].bytes = UINT64_MAX - 1;
    st.tiers[0].entries = TC_STAT_UNKNOWN; /* a gauge the tier cannot know: null */
    st.st.last_hit_tier = 12345; /* not a tier: null */
    char *out;
    assert_int_equal(tc__render_stats_json(&st, &out), 0);
    json_t *doc = parse_json(out, JSON_DECODE_INT_AS_REAL);
    assert_true(jnum(doc, "hits") == 18446744073709551615.0);
    assert_member_text(out, "hits", "18446744073709551615");
    assert_true(jnum(doc, "hit_rate") == 0.5);
    assert_member_text(out, "hit_rate", "0.5");
    jnull(doc, "last_hit_tier");
    json_t *tier = json_array_get(jarr(doc, "tiers"), 0);
    assert_true(jnum(tier, "bytes") == 18446744073709551614.0);
    assert_member_text(out, "bytes", "18446744073709551614");
    jnull(tier, "entries");
    json_decref(doc);
    free(out);
}

/* ======================================================================== */
/* Prometheus                                                               */
/* ======================================================================== */

/* Validates the exposition and returns what prometheus_client read of it. */
static json_t *parse_prom(const char *text) {
    char err[1024];
    json_t *doc = tc_test_prom_parse(text, err, sizeof err);
    if (doc == NULL) fail_msg("%s\n%s", err, text);
    return doc;
}

/* The family named name (as in its TYPE line), or NULL. */
static json_t *pfind(json_t *doc, const char *name) {
    size_t i;
    json_t *f;
    json_array_foreach(doc, i, f) {
        if (strcmp(json_string_value(json_object_get(f, "name")), name) == 0) return f;
    }
    return NULL;
}

static const char *plabel(json_t *sample, const char *name) {
    return json_string_value(json_object_get(json_object_get(sample, "labels"), name));
}

static size_t pnlabels(json_t *sample) { return json_object_size(json_object_get(sample, "labels")); }

static double pvalue(json_t *sample) { return strtod(json_string_value(json_object_get(sample, "value")), NULL); }

/* The sample name{l1="v1"[,l2="v2"]}, which must exist exactly once. */
static json_t *pget(json_t *doc, const char *name, const char *l1, const char *v1, const char *l2,
                    const char *v2) {
    json_t *found = NULL, *f, *s;
    size_t i, k;
    json_array_foreach(doc, i, f) {
        json_array_foreach(json_object_get(f, "samples"), k, s) {
            if (strcmp(json_string_value(json_object_get(s, "name")), name)) continue;
            const char *a = l1 ? plabel(s, l1) : NULL, *b = l2 ? plabel(s, l2) : NULL;
            if ((l1 && (!a || strcmp(a, v1))) || (l2 && (!b || strcmp(b, v2)))) continue;
            if (found) fail_msg("sample %s found twice", name);
            found = s;
        }
    }
    if (!found)
        fail_msg("sample %s{%s=%s,%s=%s} missing", name, l1 ? l1 : "", v1 ? v1 : "", l2 ? l2 : "", v2 ? v2 : "");
    return found;
}

/* Asserts that the exposition holds this line exactly (printf format). */
static void assert_line(const char *text, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void assert_line(const char *text, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return;
    fail_msg("no line '%s' in:\n%s", line, text);
}

static void check_prometheus(int ntiers, int down) {
    tc__snapshot st = make_stats(ntiers, down);
    char *out;
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    json_t *d = parse_prom(out);

    static const struct { const char *name; size_t off; } counters[] = {
        {"tiercache_hits_total", offsetof(tc_tier_stats, hits)},
        {"tiercache_misses_total", offsetof(tc_tier_stats, misses)},
        {"tiercache_sets_total", offsetof(tc_tier_stats, sets)},
        {"tiercache_deletes_total", offsetof(tc_tier_stats, deletes)},
        {"tiercache_evictions_total", offsetof(tc_tier_stats, evictions)},
        {"tiercache_expirations_total", offsetof(tc_tier_stats, expirations)},
        {"tiercache_errors_total", offsetof(tc_tier_stats, errors)},
        {"tiercache_entries", offsetof(tc_tier_stats, entries)},
        {"tiercache_bytes", offsetof(tc_tier_stats, bytes)},
        {"tiercache_max_entries", offsetof(tc_tier_stats, max_entries)},
        {"tiercache_max_bytes", offsetof(tc_tier_stats, max_bytes)},
    };
    for (size_t c = 0; c < sizeof counters / sizeof counters[0]; c++) {
        json_t *f = pfind(d, counters[c].name);
        assert_non_null(f);
        assert_string_equal(json_string_value(json_object_get(f, "type")),
                            strstr(counters[c].name, "_total") ? "counter" : "gauge");
        assert_int_equal(json_array_size(json_object_get(f, "samples")), ntiers);
        for (int i = 0; i < ntiers; i++) {
            uint64_t want;
            memcpy(&want, (const char *)&st.tiers[i] + counters[c].off, sizeof want);
            json_t *s = pget(d, counters[c].name, "tier", tc_tier_name(i + 1), NULL, NULL);
            assert_int_equal(pnlabels(s), 1);
            assert_true(pvalue(s) == (double)want);
            /* written as an integer */
            assert_line(out, "%s{tier=\"%s\"} %llu", counters[c].name, tc_tier_name(i + 1),
                        (unsigned long long)want);
        }
    }
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        const char *tn = tc_tier_name(i + 1);
        assert_true(pvalue(pget(d, "tiercache_tier_up", "tier", tn, NULL, NULL)) == (i == down ? 0 : 1));
        json_t *q50 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.5");
        assert_true(fabs(pvalue(q50) - (double)t->p50_ns / 1e9) < 1e-12);
        json_t *q95 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.95");
        assert_true(fabs(pvalue(q95) - (double)t->p95_ns / 1e9) < 1e-12);
        json_t *q99 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.99");
        assert_true(fabs(pvalue(q99) - (double)t->p99_ns / 1e9) < 1e-9);
        assert_true(pvalue(pget(d, "tiercache_tier_latency_seconds_count", "tier", tn, NULL, NULL)) ==
                    (double)t->latency_samples);
        json_t *info = pget(d, "tiercache_tier_info", "tier", tn, NULL, NULL);
        assert_true(pvalue(info) == 1);
        assert_string_equal(plabel(info, "type"), t->type);
        if (t->nextra == 0) {
            assert_int_equal(pnlabels(info), 2);
        } else if (t->nextra == 1) {
            assert_int_equal(pnlabels(info), 3);
            assert_string_equal(plabel(info, "shards"), "16");
        } else {
            /* names sanitised; label values escaped and decoded back to the original bytes,
             * except invalid UTF-8, replaced by U+FFFD; "tier", the duplicate "path" and the
             * empty name are dropped */
            assert_string_equal(plabel(info, "quote_name"), "say \"hi\"");
            assert_string_equal(plabel(info, "path"), "C:\\dir\\");
            assert_string_equal(plabel(info, "multi_line"), "a\nb\r\nc");
            assert_string_equal(plabel(info, "ctl"), "\x01\x1f\t\x7f");
            assert_string_equal(plabel(info, "utf8"), hostile[4].value);
            assert_string_equal(plabel(info, "bad_utf8"), hostile[5].json_value);
            assert_string_equal(plabel(info, "truncated"), hostile[6].json_value);
            assert_string_equal(plabel(info, "js_sep"), hostile[7].value);
            assert_string_equal(plabel(info, "_9lives"), "cat");
            assert_string_equal(plabel(info, "_reserved"), "r");
            assert_string_equal(plabel(info, "tier"), tn);
            assert_int_equal(pnlabels(info), 2 + 10);
        }
    }
    assert_true(pvalue(pget(d, "tiercache_requests_total", "result", "hit", NULL, NULL)) == 900);
    assert_true(pvalue(pget(d, "tiercache_requests_total", "result", "miss", NULL, NULL)) == 100);
    assert_true(pvalue(pget(d, "tiercache_errors_overall_total", NULL, NULL, NULL, NULL)) == 3);
    assert_true(pvalue(pget(d, "tiercache_loads_total", NULL, NULL, NULL, NULL)) == 40);
    assert_true(pvalue(pget(d, "tiercache_load_errors_total", NULL, NULL, NULL, NULL)) == 2);
    assert_true(pvalue(pget(d, "tiercache_load_waits_total", NULL, NULL, NULL, NULL)) == 17);
    assert_true(pvalue(pget(d, "tiercache_uptime_seconds", NULL, NULL, NULL, NULL)) == 3723.5);
    assert_true(pvalue(pget(d, "tiercache_latency_seconds", "quantile", "0.5", NULL, NULL)) == 0.0000421);
    assert_true(pvalue(pget(d, "tiercache_latency_seconds", "quantile", "0.95", NULL, NULL)) == 0.00095);
    assert_true(pvalue(pget(d, "tiercache_latency_seconds", "quantile", "0.99", NULL, NULL)) == 0.012345678);
    assert_true(pvalue(pget(d, "tiercache_latency_seconds_count", NULL, NULL, NULL, NULL)) == 1000);
    assert_true(pvalue(pget(d, "tiercache_latency_max_seconds", NULL, NULL, NULL, NULL)) == 99.999999999);
    assert_true(pvalue(pget(d, "tiercache_build_info", "version", TC_VERSION_STRING, NULL, NULL)) == 1);
    /* numbers spelled in full, without an exponent or trailing zeros */
    assert_line(out, "tiercache_errors_overall_total 3");
    assert_line(out, "tiercache_uptime_seconds 3723.5");
    assert_line(out, "tiercache_latency_seconds{quantile=\"0.5\"} 0.0000421");
    assert_line(out, "tiercache_latency_seconds{quantile=\"0.95\"} 0.00095");
    assert_line(out, "tiercache_latency_seconds{quantile=\"0.99\"} 0.012345678");
    assert_line(out, "tiercache_latency_seconds_count 1000");
    assert_line(out, "tiercache_latency_max_seconds 99.999999999");
    assert_line(out, "tiercache_build_info{version=\"%s\"} 1", TC_VERSION_STRING);
    static const struct { const char *family, *type; } types[] = {
        {"tiercache_latency_seconds", "summary"}, {"tiercache_tier_latency_seconds", "summary"},
        {"tiercache_tier_up", "gauge"},           {"tiercache_tier_info", "gauge"},
        {"tiercache_uptime_seconds", "gauge"},    {"tiercache_requests_total", "counter"},
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        json_t *f = pfind(d, types[i].family);
        if (f == NULL) fail_msg("no family %s", types[i].family);
        assert_string_equal(json_string_value(json_object_get(f, "type")), types[i].type);
        assert_true(json_string_length(json_object_get(f, "help")) > 0);
    }
    json_decref(d);
    free(out);
}

static void test_prometheus_one_tier(void **state) {
    (void)state;
    check_prometheus(1, -1);
}

static void test_prometheus_two_tiers(void **state) {
    (void)state;
    check_prometheus(2, 0);
}

static void test_prometheus_three_tiers(void **state) {
    (void)state;
    check_prometheus(3, 1);
}

/* No tier: the per-tier families are left out (no family without samples); no latency yet:
 * quantiles are NaN, as Prometheus clients report an empty summary. */
static void test_prometheus_empty(void **state) {
    (void)state;
    tc__snapshot st;
    memset(&st, 0, sizeof st);
    char *out;
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    json_t *d = parse_prom(out);
    assert_null(pfind(d, "tiercache_hits_total"));
    assert_null(pfind(d, "tiercache_tier_info"));
    assert_true(isnan(pvalue(pget(d, "tiercache_latency_seconds", "quantile", "0.99", NULL, NULL))));
    assert_line(out, "tiercache_latency_seconds{quantile=\"0.99\"} NaN");
    assert_true(pvalue(pget(d, "tiercache_latency_seconds_count", NULL, NULL, NULL, NULL)) == 0);
    assert_line(out, "tiercache_latency_seconds_count 0");
    assert_line(out, "tiercache_requests_total{result=\"hit\"} 0");
    json_decref(d);
    free(out);

    st = make_stats(1, -1);
    st.tiers[0].latency_samples = 0;
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    d = parse_prom(out);
    assert_true(isnan(pvalue(pget(d, "tiercache_tier_latency_seconds", "tier", "L1", "quantile", "0.5"))));
    assert_line(out, "tiercache_tier_latency_seconds{tier=\"L1\",quantile=\"0.5\"} NaN");
    json_decref(d);
    free(out);
}

/* ======================================================================== */
/* Coherence                                                                */
/* ======================================================================== */

/* The coherence fields of tc_stats in all three documents: a fleet-coherent cache in a gap is
 * degraded even with every tier up; without a channel the channel families are left out. */
static void test_coherence_rendered(void **state) {
    (void)state;
    assert_string_equal(tc_coherence_name(TC_COHERENCE_FLEET), "fleet");
    assert_string_equal(tc_coherence_name(TC_COHERENCE_PROCESS), "process");
    assert_string_equal(tc_coherence_name(99), "none");
    assert_string_equal(tc_channel_name(TC_CHANNEL_GAP), "gap");
    assert_string_equal(tc_channel_name(-1), "none");

    tc__snapshot st = make_stats(3, -1);
    st.st.coherence = TC_COHERENCE_FLEET;
    st.st.channel = TC_CHANNEL_GAP;
    st.st.listener = 1;
    st.st.listener_pid = 4242;
    st.st.channel_lag_us = 1500;
    st.st.channel_lag_max_us = 250000;
    st.st.invalidations_received = 11;
    st.st.invalidations_applied = 7;
    st.st.epoch_moves = 5;
    st.st.channel_gaps = 3;
    st.st.listener_takeovers = 2;
    st.st.epoch_misses = 1;
    assert_string_equal(tc__health_status(&st), "degraded");

    char *out;
    assert_int_equal(tc__render_health(&st, tc__health_status(&st), &out), 0);
    json_t *doc = parse_json(out, 0);
    json_t *coh = jobj(jobj(json_array_get(jarr(doc, "dependencies"), 0), "stats"), "coherence");
    assert_string_equal(jstr(coh, "mode"), "fleet");
    assert_string_equal(jstr(coh, "channel"), "gap");
    assert_int_equal(jbool(coh, "listener"), 1);
    assert_true(jnum(coh, "lagMs") == 1.5);
    json_decref(doc);
    free(out);

    assert_int_equal(tc__render_stats_json(&st, &out), 0);
    doc = parse_json(out, 0);
    coh = jobj(doc, "coherence");
    assert_string_equal(jstr(coh, "mode"), "fleet");
    assert_string_equal(jstr(coh, "channel"), "gap");
    assert_int_equal(jcount(coh, "listener_pid"), 4242);
    assert_int_equal(jcount(coh, "invalidations_received"), 11);
    assert_int_equal(jcount(coh, "invalidations_applied"), 7);
    assert_int_equal(jcount(coh, "epoch_moves"), 5);
    assert_int_equal(jcount(coh, "channel_gaps"), 3);
    assert_int_equal(jcount(coh, "listener_takeovers"), 2);
    assert_int_equal(jcount(coh, "epoch_misses"), 1);
    json_decref(doc);
    free(out);

    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    json_t *d = parse_prom(out);
    assert_true(pvalue(pget(d, "tiercache_coherence_info", "mode", "fleet", NULL, NULL)) == 1);
    assert_true(pvalue(pget(d, "tiercache_channel_up", NULL, NULL, NULL, NULL)) == 0);
    assert_true(pvalue(pget(d, "tiercache_listener", NULL, NULL, NULL, NULL)) == 1);
    assert_true(pvalue(pget(d, "tiercache_invalidations_received_total", NULL, NULL, NULL, NULL)) == 11);
    assert_true(pvalue(pget(d, "tiercache_invalidations_applied_total", NULL, NULL, NULL, NULL)) == 7);
    assert_true(pvalue(pget(d, "tiercache_epoch_moves_total", NULL, NULL, NULL, NULL)) == 5);
    assert_true(pvalue(pget(d, "tiercache_channel_gaps_total", NULL, NULL, NULL, NULL)) == 3);
    assert_true(pvalue(pget(d, "tiercache_listener_takeovers_total", NULL, NULL, NULL, NULL)) == 2);
    assert_true(pvalue(pget(d, "tiercache_epoch_misses_total", NULL, NULL, NULL, NULL)) == 1);
    assert_true(pvalue(pget(d, "tiercache_channel_lag_seconds", NULL, NULL, NULL, NULL)) == 0.0015);
    assert_true(pvalue(pget(d, "tiercache_channel_lag_max_seconds", NULL, NULL, NULL, NULL)) == 0.25);
    json_decref(d);
    free(out);

    st.st.coherence = TC_COHERENCE_HOST;
    st.st.channel = TC_CHANNEL_NONE;
    assert_string_equal(tc__health_status(&st), "healthy");
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    d = parse_prom(out);
    assert_true(pvalue(pget(d, "tiercache_coherence_info", "mode", "host", NULL, NULL)) == 1);
    assert_null(pfind(d, "tiercache_channel_up"));
    assert_null(pfind(d, "tiercache_invalidations_received_total"));
    json_decref(d);
    free(out);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_out_of_memory),
        cmocka_unit_test(test_health_status),
        cmocka_unit_test(test_render_bad_arguments),
        cmocka_unit_test(test_render_clamps_counts_and_unterminated_strings),
        cmocka_unit_test(test_health_one_tier),
        cmocka_unit_test(test_health_two_tiers),
        cmocka_unit_test(test_health_three_tiers_one_down_is_degraded),
        cmocka_unit_test(test_health_no_lookups_yet),
        cmocka_unit_test(test_stats_json_tiers),
        cmocka_unit_test(test_stats_json_extreme_counters),
        cmocka_unit_test(test_prometheus_one_tier),
        cmocka_unit_test(test_prometheus_two_tiers),
        cmocka_unit_test(test_prometheus_three_tiers),
        cmocka_unit_test(test_prometheus_empty),
        cmocka_unit_test(test_coherence_rendered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
