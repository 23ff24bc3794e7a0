/*
 * test_cli_redis.c -- what the CLI says when something is wrong (issue 7, item 7), against a
 * real redis-server the test starts with a password: each tier failure's cause on stderr
 * (quiet with -q), get's exit status telling "every tier said miss" (1) from "nothing hit and a
 * tier failed" (2), a key over the limit naming the limit and its variable, the statistics
 * saying what they do not know (L3 entries) and which counters are host-wide (L2), warnings
 * about look-alike variables, and a refused empty --prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/redis_server.h"
#include "helpers/run_cmd.h"

#define PW "cli-Secret-pw"
#define MAX_ARGS 16

static tc_test_redis srv;
static char port_env[32], shared_env[64];

static int setup(void **state) {
    (void)state;
    if (!tc_test_have_redis()) return -1;
    if (tc_test_redis_start(&srv, "requirepass " PW) != 0) return -1;
    snprintf(port_env, sizeof port_env, "REDIS_PORT=%d", srv.port);
    snprintf(shared_env, sizeof shared_env, "CACHE_SHARED_NAME=test-cli-redis-%d", (int)getpid());
    return 0;
}

static int teardown(void **state) {
    (void)state;
    (void)tc_shared_destroy(shared_env + strlen("CACHE_SHARED_NAME=")); /* and its coherence segment */
    tc_test_redis_stop(&srv);
    return 0;
}

/* Runs the CLI with env (NULL-terminated) and the arguments that follow (NULL-terminated). */
static tc_test_run run_cli(const char *const *env, ...) {
    const char *argv[MAX_ARGS + 2];
    int n = 0;
    argv[n++] = TC_CLI_PATH;
    va_list ap;
    va_start(ap, env);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        assert_true(n < MAX_ARGS);
        argv[n++] = a;
    }
    va_end(ap);
    argv[n] = NULL;
    tc_test_run r;
    assert_int_equal(tc_test_run_cmd(argv, env, NULL, 0, 60000, &r), 0);
    assert_false(r.timed_out);
    return r;
}

#define ENV_L3(pw) \
    (const char *const[]) { "CACHE_TIERING=L1L3", "REDIS_HOST=127.0.0.1", port_env, "REDIS_PASSWORD=" pw, \
                            "REDIS_CONNECT_TIMEOUT=2s", shared_env, NULL }

/* A wrong password: the set fails on L3, and stderr says why (the server's WRONGPASS), then
 * what failed; -q keeps only the last line. The password itself is never printed. */
static void test_cli_prints_each_tier_failure_cause(void **state) {
    (void)state;
    tc_test_run r = run_cli(ENV_L3("wrong-pw"), "set", "k", "v", NULL);
    assert_int_equal(r.status, 2);
    if (!tc_test_contains(r.err, "WRONGPASS")) fail_msg("stderr lacks the cause:\n%s", r.err);
    assert_true(tc_test_contains(r.err, "L3 set failed: authentication failed (TC_EAUTH)"));
    assert_true(tc_test_contains(r.err, "set: the operation failed on some tiers but not all (TC_EPARTIAL)"));
    assert_false(tc_test_contains(r.err, "wrong-pw"));
    tc_test_run_free(&r);
    r = run_cli(ENV_L3("wrong-pw"), "-q", "set", "k", "v", NULL);
    assert_int_equal(r.status, 2);
    assert_false(tc_test_contains(r.err, "WRONGPASS"));
    assert_true(tc_test_contains(r.err, "(TC_EPARTIAL)"));
    tc_test_run_free(&r);
    r = run_cli(ENV_L3("wrong-pw"), "set", "k", "v", "--quiet", NULL); /* after the command too */
    assert_false(tc_test_contains(r.err, "WRONGPASS"));
    tc_test_run_free(&r);
}

/* get: 0 on a hit, 1 when every tier answered "miss", 2 when nothing hit and a tier failed. */
static void test_cli_get_exit_status_tells_miss_from_failure(void **state) {
    (void)state;
    tc_test_run r = run_cli(ENV_L3(PW), "set", "present", "here", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(ENV_L3(PW), "get", "present", NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out_len, 4);
    tc_test_run_free(&r);
    r = run_cli(ENV_L3(PW), "get", "absent", NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "");
    tc_test_run_free(&r);
    r = run_cli(ENV_L3("wrong-pw"), "get", "present", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "some tier failed"));
    tc_test_run_free(&r);
    r = run_cli(ENV_L3("wrong-pw"), "ttl", "present", NULL);
    assert_int_equal(r.status, 2);
    tc_test_run_free(&r);
}

/* A key over the limit names the limit and its variable. */
static void test_cli_key_over_limit_names_the_variable(void **state) {
    (void)state;
    const char *const env[] = {"CACHE_TIERING=L1", "CACHE_MAX_KEY_BYTES=4", NULL};
    static const char *const cmds[] = {"get", "set", "del", "ttl"};
    for (size_t i = 0; i < 4; i++) {
        tc_test_run r = i == 1 ? run_cli(env, cmds[i], "longkey", "v", NULL) : run_cli(env, cmds[i], "longkey", NULL);
        assert_int_equal(r.status, 2);
        if (!tc_test_contains(r.err, "the key is 7 bytes, longer than CACHE_MAX_KEY_BYTES=4 (TC_EKEYTOOBIG)"))
            fail_msg("%s: %s", cmds[i], r.err);
        tc_test_run_free(&r);
    }
}

/* The stats table: unknown is not zero (L3 does not count its keys), and the L2 counters that
 * every attached process shares are marked as host-wide. */
static void test_cli_stats_says_unknown_and_host_wide(void **state) {
    (void)state;
    const char *const env[] = {"CACHE_TIERING=L1L2L3", "REDIS_HOST=127.0.0.1", port_env, "REDIS_PASSWORD=" PW,
                               shared_env, "CACHE_SHARED_MAX_ENTRIES=1000", "CACHE_SHARED_MAX_BYTES=4MiB", NULL};
    tc_test_run r = run_cli(env, "set", "s", "v", NULL);
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = run_cli(env, "stats", NULL);
    assert_int_equal(r.status, 0);
    char *entries = strstr(r.out, "\nentries");
    assert_non_null(entries);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)strcspn(entries + 1, "\n"), entries + 1);
    if (!tc_test_contains(line, "unknown")) fail_msg("L3 entries are not 'unknown': %s", line);
    if (!tc_test_contains(line, "(host)")) fail_msg("L2 entries are not marked host-wide: %s", line);
    assert_true(tc_test_contains(r.out, "(host): counted for every process attached to L2"));
    /* coherence across hosts, and the host's channel (healthy once the listener is up) */
    if (!tc_test_contains(r.out, "coherence      fleet, channel ") || !tc_test_contains(r.out, "(listener pid "))
        fail_msg("no fleet channel in:\n%s", r.out);
    tc_test_run_free(&r);
    r = run_cli(env, "stats", "--json", NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "\"host_wide\":true"));
    assert_true(tc_test_contains(r.out, "\"entries\":null"));
    tc_test_run_free(&r);
    const char *destroy[] = {TC_CLI_PATH, "shared", "destroy", shared_env + strlen("CACHE_SHARED_NAME="), NULL};
    assert_int_equal(tc_test_run_cmd(destroy, env, NULL, 0, 60000, &r), 0);
    tc_test_run_free(&r);
}

/* `config` prints the summary on stdout and the warnings on stderr; every other command warns
 * through the log callback. */
static void test_cli_warns_about_lookalike_variables(void **state) {
    (void)state;
    const char *const env[] = {"CACHE_TEIRING=L1L2", "CACHE_SHARED_MAX_ENTRIES=10", "CACHE_ENCORE_MAX_ENTRIES=20",
                               NULL};
    tc_test_run r = run_cli(env, "config", NULL);
    assert_int_equal(r.status, 0);
    assert_true(tc_test_contains(r.out, "CACHE_TIERING=L1\n"));
    assert_true(tc_test_contains(r.out, "CACHE_SHARED_MAX_ENTRIES=10\n"));
    assert_true(tc_test_contains(r.err, "CACHE_TEIRING is set but is not a tiercache variable (did you mean CACHE_TIERING?)"));
    assert_true(tc_test_contains(r.err, "CACHE_SHARED_MAX_ENTRIES and its old name CACHE_ENCORE_MAX_ENTRIES"));
    tc_test_run_free(&r);
    r = run_cli(env, "get", "k", NULL);
    assert_int_equal(r.status, 1);
    assert_true(tc_test_contains(r.err, "did you mean CACHE_TIERING?"));
    tc_test_run_free(&r);
}

/* Issue 8, item 13: `clear --prefix ""` would clear everything without saying so. */
static void test_cli_clear_empty_prefix_is_refused(void **state) {
    (void)state;
    const char *const env[] = {"CACHE_TIERING=L1", NULL};
    tc_test_run r = run_cli(env, "clear", "--prefix", "", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "would clear everything"));
    tc_test_run_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cli_prints_each_tier_failure_cause),
        cmocka_unit_test(test_cli_get_exit_status_tells_miss_from_failure),
        cmocka_unit_test(test_cli_key_over_limit_names_the_variable),
        cmocka_unit_test(test_cli_stats_says_unknown_and_host_wide),
        cmocka_unit_test(test_cli_warns_about_lookalike_variables),
        cmocka_unit_test(test_cli_clear_empty_prefix_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
