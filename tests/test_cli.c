/*
 * test_cli.c -- the tiercache command-line tool, run as a separate process.
 *
 * Each test runs the built binary (TC_CLI_PATH) through tests/helpers/run_cmd with an
 * environment it spells out in full, and checks exit status, stdout and stderr. Each
 * invocation is its own process, so with CACHE_TIERING=L1 nothing persists between two
 * invocations: set/get round trips are tested through the L2 shared-memory tier, and skipped
 * (with a message) while this build has no L2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/json_check.h"
#include "helpers/rng.h"
#include "helpers/run_cmd.h"
#include "tiercache.h"

#define RUN_TIMEOUT_MS 120000
#define MAX_ARGS 24

/* Runs the CLI with env (NULL-terminated), stdin in/in_len, and the arguments that follow
 * (NULL-terminated). Fails the test when the process cannot be started or times out. */
static tc_test_run run_cli_v(const char *const *env, const void *in, size_t in_len, va_list ap) {
    const char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = TC_CLI_PATH;
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(n < MAX_ARGS);
        argv[n++] = a;
    }
    argv[n] = NULL;
    tc_test_run r;
    assert_int_equal(tc_test_run_cmd(argv, env, in, in_len, RUN_TIMEOUT_MS, &r), 0);
    assert_false(r.timed_out);
    return r;
}

static tc_test_run run_cli(const char *const *env, ...) {
    va_list ap;
    va_start(ap, env);
    tc_test_run r = run_cli_v(env, NULL, 0, ap);
    va_end(ap);
    return r;
}

static tc_test_run run_cli_in(const char *const *env, const void *in, size_t in_len, ...) {
    va_list ap;
    va_start(ap, in_len);
    tc_test_run r = run_cli_v(env, in, in_len, ap);
    va_end(ap);
    return r;
}

static const char *const env_l1[] = {"CACHE_TIERING=L1", NULL};

/* Asserts a usage error: exit 2, nothing on stdout, and on stderr two lines: `why`, then the
 * hint to use --help (not the whole help). */
static void assert_usage_error(tc_test_run *r, const char *why) {
    assert_int_equal(r->status, 2);
    assert_int_equal(r->out_len, 0);
    assert_true(tc_test_contains(r->err, "Try 'tiercache --help' for more information.\n"));
    assert_false(tc_test_contains(r->err, "usage: tiercache"));
    int lines = 0;
    for (const char *p = r->err; *p != '\0'; p++) lines += *p == '\n';
    assert_int_equal(lines, 2);
    if (why && !tc_test_contains(r->err, why)) fail_msg("stderr lacks '%s':\n%s", why, r->err);
}

/* ======================================================================== */
/* Helpers' own checks                                                      */
/* ======================================================================== */

/* The JSON helper's settings: strict where the tests rely on it (a duplicate member, invalid
 * UTF-8, a lone surrogate, trailing bytes are refused), and any value at the top. */
static void test_json_checker_accepts_and_rejects(void **state) {
    (void)state;
    const char *good[] = {"{}", "[]", " {\"a\": [1, -2.5e3, true, false, null, \"x\\n\\u00e9\"]} ",
                          "0", "\"s\"", "\"a\\u0000b\""};
    const char *bad[] = {"", "{", "{\"a\":1,}", "[1,]", "01", "{'a':1}", "\"\t\"", "1 2",
                         "{\"a\" 1}", "tru", "-", "1.", "\"\\x\"", "{\"a\":1,\"a\":2}",
                         "\"\xff\"", "\"\\ud800\"", "NaN"};
    char err[256];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        json_t *v = tc_test_json_parse(good[i], strlen(good[i]), 0, err, sizeof err);
        if (v == NULL) fail_msg("'%s' refused: %s", good[i], err);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        if (tc_test_json_parse(bad[i], strlen(bad[i]), 0, err, sizeof err) != NULL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(tc_test_contains(err, "invalid JSON at line 1"));
    }
    const char *doc = "{\"a\":{\"b\":[1,{\"c\":2}],\"c\":42.5},\"d\":\"x\"}";
    json_t *root = tc_test_json_parse(doc, strlen(doc), 0, NULL, 0);
    assert_non_null(root);
    assert_true(json_real_value(tc_test_json_path(root, "a.c")) == 42.5);
    assert_string_equal(json_string_value(tc_test_json_path(root, "d")), "x");
    assert_null(tc_test_json_path(root, "a.x"));
    assert_null(tc_test_json_path(root, "d.x")); /* not an object */
    json_decref(root);
}

/* ======================================================================== */
/* Usage                                                                    */
/* ======================================================================== */

static void test_help_and_version(void **state) {
    (void)state;
    const char *forms[] = {"help", "--help", "-h"};
    for (size_t i = 0; i < 3; i++) {
        tc_test_run r = run_cli(env_l1, forms[i], NULL);
        assert_int_equal(r.status, 0);
        assert_true(tc_test_contains(r.out, "usage: tiercache"));
        assert_true(tc_test_contains(r.out, "bench --trace FILE --capacity N"));
        assert_int_equal(r.err_len, 0);
        tc_test_run_free(&r);
    }
    tc_test_run r = run_cli(env_l1, "--version", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "tiercache " TC_VERSION_STRING "\n");
    tc_test_run_free(&r);
}

static void test_no_command_is_a_usage_error(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, NULL);
    assert_usage_error(&r, "missing command");
    tc_test_run_free(&r);
}

static void test_unknown_command_and_option_are_usage_errors(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "frobnicate", NULL);
    assert_usage_error(&r, "unknown command 'frobnicate'");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "--frobnicate", NULL);
    assert_usage_error(&r, "unknown option '--frobnicate'");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "get", "k", "--bogus", NULL);
    assert_usage_error(&r, "get: unknown option '--bogus'");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "stats", "--json=yes", NULL);
    assert_usage_error(&r, "option '--json' takes no value");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "stats", "--json", "--prometheus", NULL);
    assert_usage_error(&r, "exclude each other");
    tc_test_run_free(&r);
}

static void test_missing_and_extra_arguments_are_usage_errors(void **state) {
    (void)state;
    struct {
        const char *a[4];
        const char *why;
    } cases[] = {
        {{"get", NULL}, "get: missing KEY"},
        {{"get", "a", "b", NULL}, "get: unexpected argument 'b'"},
        {{"set", "k", NULL}, "set: missing KEY and VALUE"},
        {{"set", "k", "v", "x"}, "set: unexpected argument 'x'"},
        {{"set", "k", "v", "--ttl"}, "set: option '--ttl' needs a value"},
        {{"del", NULL}, "del: missing KEY"},
        {{"ttl", NULL}, "ttl: missing KEY"},
        {{"clear", "x", NULL}, "clear: unexpected argument 'x'"},
        {{"health", "x", NULL}, "health: unexpected argument 'x'"},
        {{"config", "x", NULL}, "config: unexpected argument 'x'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tc_test_run r = run_cli(env_l1, cases[i].a[0], cases[i].a[1], cases[i].a[2], cases[i].a[3], NULL);
        assert_usage_error(&r, cases[i].why);
        tc_test_run_free(&r);
    }
}

/* ======================================================================== */
/* Configuration                                                            */
/* ======================================================================== */

/* Writes a small trace (ids 0..n-1 once each) to a temporary file; the caller unlinks it. */
static void write_loop_trace(char *path, size_t cap, uint32_t keys, uint32_t requests) {
    snprintf(path, cap, "/tmp/tc_cli_trace_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    for (uint32_t i = 0; i < requests; i++) {
        uint32_t id = i % keys;
        unsigned char b[4] = {(unsigned char)id, (unsigned char)(id >> 8), (unsigned char)(id >> 16),
                              (unsigned char)(id >> 24)};
        assert_int_equal(fwrite(b, 1, 4, f), 4);
    }
    assert_int_equal(fclose(f), 0);
}

static void test_invalid_config_fails_every_command(void **state) {
    (void)state;
    char trace[64];
    write_loop_trace(trace, sizeof trace, 10, 10);
    const char *const env[] = {"CACHE_TIERING=L1", "CACHE_MEMORY_MAX_ENTRIES=abc", NULL};
    const char *cmds[][6] = {
        {"get", "k", NULL},      {"set", "k", "v", NULL}, {"del", "k", NULL},
        {"ttl", "k", NULL},      {"clear", NULL},         {"clear", "--prefix", "p", NULL},
        {"stats", NULL},         {"stats", "--json", NULL}, {"stats", "--prometheus", NULL},
        {"health", NULL},        {"config", NULL},
        {"bench", "--trace", trace, "--capacity", "10", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tc_test_run r = run_cli(env, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], cmds[i][4], NULL);
        if (r.status != 2 || r.out_len != 0 || !tc_test_contains(r.err, "CACHE_MEMORY_MAX_ENTRIES") ||
            !tc_test_contains(r.err, "abc"))
            fail_msg("'%s': status %d, stdout '%s', stderr '%s'", cmds[i][0], r.status, r.out, r.err);
        tc_test_run_free(&r);
    }
    /* a bad tiering too, whatever the command */
    const char *const env2[] = {"CACHE_TIERING=L9", NULL};
    tc_test_run r = run_cli(env2, "get", "k", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "CACHE_TIERING"));
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_config_prints_resolved_values_and_redacts_secrets(void **state) {
    (void)state;
    const char *const env[] = {"CACHE_TIERING=L1", "CACHE_MEMORY_MAX_ENTRIES=1234",
                               "REDIS_HOST=127.0.0.1", "REDIS_PASSWORD=hunter2", NULL};
    tc_test_run r = run_cli(env, "config", NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "CACHE_MEMORY_MAX_ENTRIES=1234"));
    assert_true(tc_test_contains(r.out, "REDIS_PASSWORD="));
    assert_false(tc_test_contains(r.out, "hunter2"));
    assert_false(tc_test_contains(r.err, "hunter2"));
    tc_test_run_free(&r);
    /* no other view shows it either */
    const char *views[][2] = {{"stats", NULL}, {"stats", "--json"}, {"stats", "--prometheus"}, {"health", NULL}};
    for (size_t i = 0; i < 4; i++) {
        r = run_cli(env, views[i][0], views[i][1], NULL);
        assert_false(tc_test_contains(r.out, "hunter2"));
        assert_false(tc_test_contains(r.err, "hunter2"));
        tc_test_run_free(&r);
    }
}

/* ======================================================================== */
/* Data commands with an in-process tier                                    */
/* ======================================================================== */

static void test_get_miss_exits_1_with_empty_output(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "get", "no-such-key", NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    assert_int_equal(r.err_len, 0);
    tc_test_run_free(&r);
}

static void test_ttl_miss_exits_1(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "ttl", "no-such-key", NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    tc_test_run_free(&r);
}

static void test_set_del_clear_succeed(void **state) {
    (void)state;
    const char *cmds[][5] = {
        {"set", "k", "v", NULL},        {"set", "k", "v", "--ttl", "5s"}, {"set", "--ttl=250ms", "k", "v", NULL},
        {"set", "k", "", NULL},         {"del", "k", NULL},               {"clear", NULL},
        {"clear", "--prefix", "user:", NULL}, {"set", "--", "-k", "v", NULL},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        tc_test_run r = run_cli(env_l1, cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], cmds[i][4], NULL);
        if (r.status != 0 || r.out_len || r.err_len)
            fail_msg("%s %s: status %d, stderr '%s'", cmds[i][0], cmds[i][1], r.status, r.err);
        tc_test_run_free(&r);
    }
}

static void test_set_rejects_a_bad_ttl(void **state) {
    (void)state;
    const char *bad[] = {"soon", "-5s", "10x"};
    for (size_t i = 0; i < 3; i++) {
        tc_test_run r = run_cli(env_l1, "set", "k", "v", "--ttl", bad[i], NULL);
        assert_int_equal(r.status, 2);
        assert_int_equal(r.out_len, 0);
        assert_true(tc_test_contains(r.err, "--ttl"));
        if (!tc_test_contains(r.err, bad[i])) fail_msg("message does not quote '%s': %s", bad[i], r.err);
        tc_test_run_free(&r);
    }
}

/* Issue 8, item 12: --ttl accepted any duration (10000000d) while the configuration caps TTLs
 * at 36500d; one range for every TTL, and the message names the limit. */
static void test_set_refuses_a_ttl_beyond_36500d(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "set", "k", "v", "--ttl", "10000000d", NULL);
    assert_int_equal(r.status, 2);
    assert_int_equal(r.out_len, 0);
    if (!tc_test_contains(r.err, "10000000d") || !tc_test_contains(r.err, "36500d"))
        fail_msg("message does not name the TTL and the limit: %s", r.err);
    tc_test_run_free(&r);
    r = run_cli(env_l1, "set", "k", "v", "--ttl", "36500d", NULL);
    if (r.status != 0) fail_msg("--ttl 36500d: status %d, stderr '%s'", r.status, r.err);
    tc_test_run_free(&r);
}

static void test_set_value_from_stdin_is_binary_safe_and_bounded(void **state) {
    (void)state;
    unsigned char v[300];
    for (size_t i = 0; i < sizeof v; i++) v[i] = (unsigned char)(i * 7);
    v[0] = 0, v[100] = 0, v[299] = 0;
    tc_test_run r = run_cli_in(env_l1, v, sizeof v, "set", "bin", "-", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.err_len, 0);
    tc_test_run_free(&r);
    /* an empty stdin is an empty value */
    r = run_cli_in(env_l1, NULL, 0, "set", "empty", "-", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    /* exactly the maximum is accepted, one byte more is refused with a message */
    const char *const small[] = {"CACHE_TIERING=L1", "CACHE_MAX_VALUE_BYTES=64", NULL};
    r = run_cli_in(small, v, 64, "set", "k", "-", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli_in(small, v, 65, "set", "k", "-", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "CACHE_MAX_VALUE_BYTES"));
    tc_test_run_free(&r);
    /* a value on the command line over the limit: the library's error */
    char big[100];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    r = run_cli(small, "set", "k", big, NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "TC_EVALTOOBIG"));
    tc_test_run_free(&r);
}

/* ======================================================================== */
/* Views                                                                    */
/* ======================================================================== */

static void test_health_is_json_with_the_required_keys(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "health", NULL);
    assert_int_equal(r.status, 0);
    char err[256];
    json_t *doc = tc_test_json_parse(r.out, r.out_len, 0, err, sizeof err);
    if (doc == NULL) fail_msg("%s:\n%s", err, r.out);
    const char *keys[] = {"service", "version", "status", "dependencies", "timestamp", "uptime",
                          "tierMetrics", "tierMetrics.hits", "tierMetrics.misses", "tierMetrics.errors",
                          "tierMetrics.lastHitTier", "tierMetrics.latencyP50", "tierMetrics.latencyP95",
                          "tierMetrics.latencyP99"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (!tc_test_json_path(doc, keys[i])) fail_msg("no '%s' in %s", keys[i], r.out);
    const char *st = json_string_value(tc_test_json_path(doc, "status"));
    assert_non_null(st);
    assert_string_equal(st, "healthy");
    json_decref(doc);
    tc_test_run_free(&r);
}

static void test_stats_views(void **state) {
    (void)state;
    tc_test_run r = run_cli(env_l1, "stats", "--json", NULL);
    assert_int_equal(r.status, 0);
    char err[256];
    json_t *doc = tc_test_json_parse(r.out, r.out_len, 0, err, sizeof err);
    if (doc == NULL) fail_msg("%s:\n%s", err, r.out);
    assert_true(json_is_object(doc));
    json_decref(doc);
    tc_test_run_free(&r);

    r = run_cli(env_l1, "stats", NULL);
    assert_int_equal(r.status, 0);
    const char *rows[] = {"tiering L1", "L1 memory", "available", "hits", "misses", "sets", "deletes",
                          "evictions", "expirations", "errors", "entries", "bytes", "latency p50",
                          "latency p95", "latency p99", "overall", "coherence      none, channel none"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (!tc_test_contains(r.out, rows[i])) fail_msg("no '%s' in:\n%s", rows[i], r.out);
    /* the L1 bound from the environment is shown */
    tc_test_run_free(&r);
    const char *const env[] = {"CACHE_TIERING=L1", "CACHE_MEMORY_MAX_ENTRIES=777", NULL};
    r = run_cli(env, "stats", NULL);
    assert_true(tc_test_contains(r.out, "0 / 777"));
    tc_test_run_free(&r);

    r = run_cli(env_l1, "stats", "--prometheus", NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "tiercache_"));
    tc_test_run_free(&r);
}

/* ======================================================================== */
/* bench                                                                    */
/* ======================================================================== */

static uint64_t rng_state;
static uint64_t rng_next(void) { return tc_test_rng_next(&rng_state); }

/* Writes a Zipf(alpha) trace over `keys` ids to a temporary file. */
static void write_zipf_trace(char *path, size_t cap, uint32_t keys, double alpha, uint32_t requests) {
    double *cdf = malloc(keys * sizeof *cdf);
    assert_non_null(cdf);
    double sum = 0;
    for (uint32_t i = 0; i < keys; i++) cdf[i] = (sum += 1.0 / pow(i + 1.0, alpha));
    snprintf(path, cap, "/tmp/tc_cli_trace_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    rng_state = 42;
    for (uint32_t i = 0; i < requests; i++) {
        double u = (double)(rng_next() >> 11) / 9007199254740992.0 * sum;
        uint32_t lo = 0, hi = keys - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        unsigned char b[4] = {(unsigned char)lo, (unsigned char)(lo >> 8), (unsigned char)(lo >> 16),
                              (unsigned char)(lo >> 24)};
        assert_int_equal(fwrite(b, 1, 4, f), 4);
    }
    assert_int_equal(fclose(f), 0);
    free(cdf);
}

/* Runs bench --json and returns its parsed output in *r (valid JSON asserted). */
static tc_test_run bench_json(const char *const *env, const char *trace, const char *capacity,
                              const char *threads, const char *requests) {
    tc_test_run r = requests
        ? run_cli(env, "bench", "--trace", trace, "--capacity", capacity, "--threads", threads,
                  "--requests", requests, "--json", NULL)
        : run_cli(env, "bench", "--trace", trace, "--capacity", capacity, "--threads", threads, "--json", NULL);
    if (r.status != 0) fail_msg("bench exited %d: %s", r.status, r.err);
    char err[256];
    json_t *doc = tc_test_json_parse(r.out, r.out_len, 0, err, sizeof err);
    if (doc == NULL) fail_msg("%s:\n%s", err, r.out);
    json_decref(doc);
    return r;
}

/* The number at path in r's output (a bench --json document). */
static double jnum(const tc_test_run *r, const char *path) {
    json_t *doc = tc_test_json_parse(r->out, r->out_len, 0, NULL, 0);
    json_t *v = tc_test_json_path(doc, path);
    if (!json_is_number(v)) fail_msg("no number '%s' in %s", path, r->out);
    double d = json_number_value(v);
    json_decref(doc);
    return d;
}

/* 1 when the member at path in r's output is the string want. */
static int jstr_is(const tc_test_run *r, const char *path, const char *want) {
    json_t *doc = tc_test_json_parse(r->out, r->out_len, 0, NULL, 0);
    const char *v = json_string_value(tc_test_json_path(doc, path));
    int same = v != NULL && strcmp(v, want) == 0;
    json_decref(doc);
    return same;
}

static void test_bench_skewed_trace_hits(void **state) {
    (void)state;
    char trace[64];
    write_zipf_trace(trace, sizeof trace, 5000, 0.99, 50000);
    tc_test_run r = bench_json(env_l1, trace, "1000", "1", NULL);
    assert_true(jnum(&r, "requests") == 50000);
    assert_true(jnum(&r, "threads") == 1);
    assert_true(jnum(&r, "capacity") == 1000);
    double hr = jnum(&r, "hit_ratio");
    assert_true(hr > 0 && hr <= 1);
    /* every request is a hit or a miss, and the L1 tier saw every hit */
    double hits = jnum(&r, "hits"), misses = jnum(&r, "misses");
    assert_true(hits + misses == 50000);
    assert_true(fabs(hits / 50000 - hr) < 1e-5);
    assert_true(jnum(&r, "hits_L1") == hits);
    assert_true(jnum(&r, "tier_hits.L1") == hits);
    assert_true(jnum(&r, "ns_per_op") > 0 && jnum(&r, "mops") > 0);
    assert_true(jnum(&r, "p50_ns") <= jnum(&r, "p99_ns"));
    assert_true(jstr_is(&r, "tiering", "L1"));
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_bench_distinct_keys_never_hit(void **state) {
    (void)state;
    /* one request per key: whatever the policy, nothing can hit */
    char trace[64];
    write_loop_trace(trace, sizeof trace, 5000, 5000);
    tc_test_run r = bench_json(env_l1, trace, "1000", "1", NULL);
    assert_true(jnum(&r, "requests") == 5000);
    assert_true(jnum(&r, "hit_ratio") == 0);
    assert_true(jnum(&r, "hits_L1") == 0);
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_bench_loop_hits_are_bounded_by_capacity(void **state) {
    (void)state;
    /* A loop over K keys with room for C: a key can hit in a cycle only if it was resident at
     * the cycle's start, so at most C hits per cycle of K requests, whatever the policy. */
    char trace[64];
    write_loop_trace(trace, sizeof trace, 5000, 50000);
    tc_test_run r = bench_json(env_l1, trace, "1000", "1", NULL);
    double hr = jnum(&r, "hit_ratio");
    assert_true(hr >= 0 && hr <= 1000.0 / 5000 * 1.25);
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_bench_requests_and_threads(void **state) {
    (void)state;
    char trace[64];
    write_zipf_trace(trace, sizeof trace, 5000, 0.99, 50000);
    tc_test_run r = bench_json(env_l1, trace, "1000", "1", "20000");
    assert_true(jnum(&r, "requests") == 20000);
    tc_test_run_free(&r);
    r = bench_json(env_l1, trace, "1000", "2", "20000");
    assert_true(jnum(&r, "requests") == 40000);
    assert_true(jnum(&r, "threads") == 2);
    double hr = jnum(&r, "hit_ratio");
    assert_true(hr > 0 && hr <= 1);
    assert_true(jnum(&r, "hits") + jnum(&r, "misses") == 40000);
    tc_test_run_free(&r);
    /* R larger than the trace: the whole trace */
    r = bench_json(env_l1, trace, "1000", "1", "999999");
    assert_true(jnum(&r, "requests") == 50000);
    tc_test_run_free(&r);
    /* passes: the last pass is reported, over a fresh cache */
    r = run_cli(env_l1, "bench", "--trace", trace, "--capacity", "1000", "--passes", "2", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_true(jnum(&r, "requests") == 50000);
    assert_true(jnum(&r, "passes") == 2);
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_bench_human_line(void **state) {
    (void)state;
    char trace[64];
    write_zipf_trace(trace, sizeof trace, 5000, 0.99, 10000);
    tc_test_run r = run_cli(env_l1, "bench", "--trace", trace, "--capacity", "1000", "--value-size", "0", NULL);
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "peer=tiercache ", 15) == 0);
    const char *fields[] = {" capacity=1000 ", " threads=1 ", " requests=10000 ", " hit_ratio=0.",
                            " mops=", " ns_per_op=", " tiering=L1 "};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        if (!tc_test_contains(r.out, fields[i])) fail_msg("no '%s' in %s", fields[i], r.out);
    assert_true(r.out[r.out_len - 1] == '\n' && strchr(r.out, '\n') == r.out + r.out_len - 1);
    /* no progress bar when stderr is not a terminal */
    assert_int_equal(r.err_len, 0);
    tc_test_run_free(&r);
    unlink(trace);
}

static void test_bench_rejects_bad_arguments(void **state) {
    (void)state;
    char trace[64];
    write_loop_trace(trace, sizeof trace, 10, 10);
    struct {
        const char *a[8];
        const char *why;
    } usage[] = {
        {{"bench", "--capacity", "10", NULL}, "missing --trace"},
        {{"bench", "--trace", trace, NULL}, "missing --capacity"},
        {{"bench", "--trace", trace, "--capacity", "abc", NULL}, "--capacity 'abc'"},
        {{"bench", "--trace", trace, "--capacity", "0", NULL}, "--capacity '0'"},
        {{"bench", "--trace", trace, "--capacity", "10", "--threads", "0"}, "--threads '0'"},
        {{"bench", "--trace", trace, "--capacity", "10", "--requests", "-3"}, "--requests '-3'"},
        {{"bench", "--trace", trace, "--capacity", "10", "--passes", "x"}, "--passes 'x'"},
        {{"bench", "--trace", trace, "--capacity", "10", "--value-size", "1k"}, "--value-size '1k'"},
        {{"bench", "--trace", trace, "--capacity", "10", "extra", NULL}, "unexpected argument 'extra'"},
        {{"bench", "--trace", trace, "--capacity", "10", "--no-clear", NULL}, "--no-clear replays over what other processes left"},
    };
    for (size_t i = 0; i < sizeof usage / sizeof usage[0]; i++) {
        const char *const *a = usage[i].a;
        tc_test_run r = run_cli(env_l1, a[0], a[1], a[2], a[3], a[4], a[5], a[6], NULL);
        assert_usage_error(&r, usage[i].why);
        tc_test_run_free(&r);
    }
    /* files that are not traces */
    tc_test_run r = run_cli(env_l1, "bench", "--trace", "/nonexistent/trace.u32", "--capacity", "10", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "/nonexistent/trace.u32"));
    tc_test_run_free(&r);
    char odd[64];
    snprintf(odd, sizeof odd, "/tmp/tc_cli_odd_XXXXXX");
    int fd = mkstemp(odd);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abcde", 5), 5);
    close(fd);
    r = run_cli(env_l1, "bench", "--trace", odd, "--capacity", "10", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "4-byte"));
    tc_test_run_free(&r);
    unlink(odd);
    /* a capacity the first tier refuses: the library's message, and what --capacity set */
    r = run_cli(env_l1, "bench", "--trace", trace, "--capacity", "99999999999", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "CACHE_MEMORY_MAX_ENTRIES"));
    assert_true(tc_test_contains(r.err, "--capacity 99999999999"));
    tc_test_run_free(&r);
    /* a value larger than the configured maximum */
    const char *const small[] = {"CACHE_TIERING=L1", "CACHE_MAX_VALUE_BYTES=64", NULL};
    r = run_cli(small, "bench", "--trace", trace, "--capacity", "10", "--value-size", "65", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "CACHE_MAX_VALUE_BYTES"));
    tc_test_run_free(&r);
    unlink(trace);
}

/* ======================================================================== */
/* Round trips through the shared-memory tier                               */
/* ======================================================================== */

static char shared_env_name[64];

/* The environment of an L2-only cache on a segment private to this test run. Returns NULL
 * (after printing why) when this build has no L2 tier. */
static const char *const *l2_env(void) {
    static const char *env[3];
    snprintf(shared_env_name, sizeof shared_env_name, "CACHE_SHARED_NAME=tc_cli_test_%d", (int)getpid());
    env[0] = "CACHE_TIERING=L2";
    env[1] = shared_env_name;
    env[2] = NULL;
    tc_test_run r = run_cli(env, "clear", NULL);
    if (r.status == 2 && tc_test_contains(r.err, "TC_ENOTIER")) {
        print_message("L2 is not in this build: skipping round trips (%s)", r.err);
        tc_test_run_free(&r);
        return NULL;
    }
    if (r.status != 0) fail_msg("clear on L2 exited %d: %s", r.status, r.err);
    tc_test_run_free(&r);
    return env;
}

static void test_l2_round_trip_is_binary_safe(void **state) {
    (void)state;
    const char *const *env = l2_env();
    if (env == NULL) {
        skip();
        return;
    }
    unsigned char v[5000];
    for (size_t i = 0; i < sizeof v; i++) v[i] = (unsigned char)(rng_next() & 0xff);
    v[0] = 0, v[1] = '\n', v[sizeof v - 1] = 0;
    tc_test_run r = run_cli_in(env, v, sizeof v, "set", "bin", "-", "--ttl", "60s", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "bin", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out_len, sizeof v);
    assert_memory_equal(r.out, v, sizeof v);
    tc_test_run_free(&r);
    r = run_cli(env, "ttl", "bin", NULL);
    assert_int_equal(r.status, 0);
    long ttl = strtol(r.out, NULL, 10);
    assert_true(ttl > 0 && ttl <= 60000);
    tc_test_run_free(&r);

    /* an empty value is a value */
    r = run_cli(env, "set", "empty", "", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "empty", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out_len, 0);
    tc_test_run_free(&r);

    r = run_cli(env, "del", "bin", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "bin", NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    tc_test_run_free(&r);

    /* clear --prefix takes only the matching keys */
    r = run_cli(env, "set", "user:1", "a", NULL);
    tc_test_run_free(&r);
    r = run_cli(env, "set", "order:1", "b", NULL);
    tc_test_run_free(&r);
    r = run_cli(env, "clear", "--prefix", "user:", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "user:1", NULL);
    assert_int_equal(r.status, 1);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "order:1", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "b");
    tc_test_run_free(&r);
    r = run_cli(env, "clear", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "get", "order:1", NULL);
    assert_int_equal(r.status, 1);
    tc_test_run_free(&r);
    r = run_cli(env, "shared", "destroy", shared_env_name + strlen("CACHE_SHARED_NAME="), NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
}

static void test_shared_segment_commands(void **state) {
    (void)state;
    const char *const *env = l2_env();
    if (env == NULL) {
        skip();
        return;
    }
    const char *name = shared_env_name + strlen("CACHE_SHARED_NAME=");
    tc_test_run r = run_cli(env, "set", "k1", "v1", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);

    r = run_cli(env, "shared", "list", NULL);
    assert_int_equal(r.status, 0);
    char line[128];
    snprintf(line, sizeof line, "%s\n", name);
    if (!tc_test_contains(r.out, line)) fail_msg("'%s' not listed in:\n%s", name, r.out);
    tc_test_run_free(&r);

    /* by name, whatever the environment says */
    r = run_cli(env_l1, "shared", "stats", name, NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "L2 shared"));
    assert_true(tc_test_contains(r.out, "1 / ")); /* entries: the one key set above */
    tc_test_run_free(&r);

    r = run_cli(env_l1, "shared", "check", name, NULL);
    assert_int_equal(r.status, 0);
    assert_true(r.out_len > 0);
    tc_test_run_free(&r);

    r = run_cli(env_l1, "shared", "repair", name, NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "consistent"));
    tc_test_run_free(&r);

    r = run_cli(env_l1, "shared", "destroy", name, NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    /* gone: every subcommand says so */
    const char *subs[] = {"destroy", "stats", "check", "repair"};
    for (size_t i = 0; i < 4; i++) {
        r = run_cli(env_l1, "shared", subs[i], name, NULL);
        if (r.status != 2 || !tc_test_contains(r.err, "TC_ENOENT"))
            fail_msg("shared %s of a missing segment: %d %s", subs[i], r.status, r.err);
        tc_test_run_free(&r);
    }
    r = run_cli(env, "shared", "list", NULL);
    assert_false(tc_test_contains(r.out, line));
    tc_test_run_free(&r);

    /* bad names and usage */
    r = run_cli(env_l1, "shared", "stats", "../etc", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "TC_EINVAL"));
    tc_test_run_free(&r);
    r = run_cli(env_l1, "shared", NULL);
    assert_usage_error(&r, "shared: missing");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "shared", "frob", NULL);
    assert_usage_error(&r, "unknown subcommand 'frob'");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "shared", "list", "x", NULL);
    assert_usage_error(&r, "unexpected argument 'x'");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "shared", "stats", NULL);
    assert_usage_error(&r, "shared stats: missing NAME");
    tc_test_run_free(&r);
    r = run_cli(env_l1, "shared", "destroy", name, "--json", NULL);
    assert_usage_error(&r, "unknown option '--json'");
    tc_test_run_free(&r);
}

static void test_bench_through_two_tiers_uses_its_own_segment(void **state) {
    (void)state;
    const char *const *probe = l2_env();
    if (probe == NULL) {
        skip();
        return;
    }
    tc_test_run r = run_cli(probe, "shared", "destroy", shared_env_name + strlen("CACHE_SHARED_NAME="), NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    char trace[64];
    write_zipf_trace(trace, sizeof trace, 5000, 0.99, 50000);
    const char *const env[] = {"CACHE_TIERING=L1L2", NULL};
    r = bench_json(env, trace, "500", "2", NULL);
    assert_true(jnum(&r, "requests") == 100000);
    double hits = jnum(&r, "hits"), h1 = jnum(&r, "hits_L1"), h2 = jnum(&r, "hits_L2");
    assert_true(h1 + h2 == hits);
    assert_true(h2 > 0); /* L1 holds 500 of 5000 keys: L2 serves some of the rest */
    assert_true(jstr_is(&r, "tiering", "L1L2"));
    tc_test_run_free(&r);
    /* its segment was removed at the end; a second run with another capacity works */
    r = run_cli(env, "shared", "list", NULL);
    assert_false(tc_test_contains(r.out, "tiercache_bench."));
    tc_test_run_free(&r);
    const char *const env2[] = {"CACHE_TIERING=L2", NULL};
    r = bench_json(env2, trace, "700", "1", "10000");
    assert_true(jnum(&r, "requests") == 10000);
    tc_test_run_free(&r);
    unlink(trace);
}

/* --no-clear replays over the cache another process left: a second bench on the same named
 * segment hits on every request; without it, the bench clears first and misses again. */
static void test_bench_no_clear_replays_over_a_warm_segment(void **state) {
    (void)state;
    const char *const *env = l2_env();
    if (env == NULL) {
        skip();
        return;
    }
    const char *name = shared_env_name + strlen("CACHE_SHARED_NAME=");
    tc_test_run r = run_cli(env, "shared", "destroy", name, NULL); /* bench sizes it anew */
    tc_test_run_free(&r);
    char trace[64];
    write_zipf_trace(trace, sizeof trace, 2000, 0.99, 20000);
    r = bench_json(env, trace, "5000", "1", NULL);
    assert_true(jnum(&r, "misses") > 0); /* cold: every distinct key misses once */
    tc_test_run_free(&r);
    r = run_cli(env, "bench", "--trace", trace, "--capacity", "5000", "--no-clear", "--json", NULL);
    if (r.status != 0) fail_msg("bench --no-clear exited %d: %s", r.status, r.err);
    assert_true(jnum(&r, "misses") == 0);
    assert_true(jnum(&r, "hits") == 20000);
    tc_test_run_free(&r);
    r = bench_json(env, trace, "5000", "1", NULL);
    assert_true(jnum(&r, "misses") > 0); /* without --no-clear: cleared first */
    tc_test_run_free(&r);
    (void)tc_shared_destroy(name);
    unlink(trace);
}

/* Removes this run's segment even when a test failed half-way (0 when there is none). */
static int remove_test_segment(void **state) {
    (void)state;
    if (shared_env_name[0] != '\0') (void)tc_shared_destroy(shared_env_name + strlen("CACHE_SHARED_NAME="));
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_checker_accepts_and_rejects),
        cmocka_unit_test(test_help_and_version),
        cmocka_unit_test(test_no_command_is_a_usage_error),
        cmocka_unit_test(test_unknown_command_and_option_are_usage_errors),
        cmocka_unit_test(test_missing_and_extra_arguments_are_usage_errors),
        cmocka_unit_test(test_invalid_config_fails_every_command),
        cmocka_unit_test(test_config_prints_resolved_values_and_redacts_secrets),
        cmocka_unit_test(test_get_miss_exits_1_with_empty_output),
        cmocka_unit_test(test_ttl_miss_exits_1),
        cmocka_unit_test(test_set_del_clear_succeed),
        cmocka_unit_test(test_set_rejects_a_bad_ttl),
        cmocka_unit_test(test_set_refuses_a_ttl_beyond_36500d),
        cmocka_unit_test(test_set_value_from_stdin_is_binary_safe_and_bounded),
        cmocka_unit_test(test_health_is_json_with_the_required_keys),
        cmocka_unit_test(test_stats_views),
        cmocka_unit_test(test_bench_skewed_trace_hits),
        cmocka_unit_test(test_bench_distinct_keys_never_hit),
        cmocka_unit_test(test_bench_loop_hits_are_bounded_by_capacity),
        cmocka_unit_test(test_bench_requests_and_threads),
        cmocka_unit_test(test_bench_human_line),
        cmocka_unit_test(test_bench_rejects_bad_arguments),
        cmocka_unit_test(test_l2_round_trip_is_binary_safe),
        cmocka_unit_test(test_shared_segment_commands),
        cmocka_unit_test(test_bench_through_two_tiers_uses_its_own_segment),
        cmocka_unit_test(test_bench_no_clear_replays_over_a_warm_segment),
    };
    return cmocka_run_group_tests(tests, NULL, remove_test_segment);
}
