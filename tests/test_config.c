/*
 * test_config.c -- options (src/config.c): defaults, every environment variable with valid
 * and invalid values, aliases and their precedence, REDIS_URL and its overrides, secrets kept
 * out of every message and of the summary, validation of a struct filled by hand, the
 * summary's format, the eviction policy names, and that docs/CONFIGURATION.md lists the
 * variables and defaults the code has.
 *
 * Every test starts from an environment with no CACHE_* or REDIS_* variable (setup_env).
 * Each refused value is checked for TC_ECONFIG and for a message naming the variable, showing
 * the value as NAME="value" and saying what is accepted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "duration.h"
#include "tier.h"

extern char **environ;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Removes every CACHE_* and REDIS_* variable (names collected first: unsetenv changes
 * environ). */
static int setup_env(void **state) {
    (void)state;
    char *names[512];
    size_t n = 0;
    for (char **e = environ; *e != NULL && n < 512; e++) {
        if (strncmp(*e, "CACHE_", 6) != 0 && strncmp(*e, "REDIS_", 6) != 0) continue;
        size_t len = strcspn(*e, "=");
        names[n] = strndup(*e, len);
        assert_non_null(names[n]);
        n++;
    }
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
    for (char **e = environ; *e != NULL; e++)
        assert_true(strncmp(*e, "CACHE_", 6) != 0 && strncmp(*e, "REDIS_", 6) != 0);
    return 0;
}

/* setenv from "NAME=value". */
static void put(const char *assignment) {
    char name[128];
    size_t len = strcspn(assignment, "=");
    assert_true(len < sizeof name && assignment[len] == '=');
    memcpy(name, assignment, len);
    name[len] = '\0';
    assert_int_equal(setenv(name, assignment + len + 1, 1), 0);
}

static char *describe(const tc__opts *o) {
    char *d = NULL;
    assert_int_equal(tc__opts_describe(o, &d), 0);
    assert_non_null(d);
    return d;
}

/* Fails unless desc holds `line` as a whole line. */
static void assert_has_line(const char *desc, const char *line) {
    size_t n = strlen(line);
    for (const char *p = desc; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl != NULL ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0) return;
        p += len + (nl != NULL);
    }
    fail_msg("line \"%s\" not in:\n%s", line, desc);
}

/* tc_options_from_env must fail with TC_ECONFIG and a message holding every needle. */
static void assert_env_error(const char *what, const char *const *needles, size_t nneedles,
                             const char *secret) {
    tc__opts o;
    char err[2048] = "";
    int rc = tc__opts_from_env(&o, err, sizeof err);
    if (rc != TC_ECONFIG) fail_msg("%s: rc %d (%s), want TC_ECONFIG; message: %s", what, rc, tc_err_name(rc), err);
    for (size_t i = 0; i < nneedles; i++)
        if (needles[i] != NULL && strstr(err, needles[i]) == NULL)
            fail_msg("%s: message lacks [%s]:\n%s", what, needles[i], err);
    if (secret != NULL && strstr(err, secret) != NULL) fail_msg("%s: message shows the secret:\n%s", what, err);
}

static char *repeat(char c, size_t n) {
    char *s = malloc(n + 1);
    assert_non_null(s);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

static void test_defaults(void **state) {
    (void)state;
    tc__opts o;
    memset(&o, 0x5a, sizeof o);
    tc__opts_init(&o);
    assert_int_equal(o.ntiers, 1);
    assert_int_equal(o.tiers[0], TC_TIER_L1);
    assert_int_equal(o.max_key_bytes, 1024);
    assert_int_equal(o.max_value_bytes, 1048576);
    assert_int_equal(o.mem_max_entries, 10000);
    assert_int_equal(o.mem_max_bytes, 268435456);
    assert_int_equal(o.mem_default_ttl_ms, 120000);
    assert_int_equal(o.mem_eviction, TC_POLICY_TINYLFU);
    assert_int_equal(o.mem_shards, 0);
    assert_int_equal(o.mem_window, 0);
    assert_string_equal(o.shared_name, "distributed_cache");
    assert_int_equal(o.shared_max_entries, 1000000);
    assert_int_equal(o.shared_max_bytes, 16777216);
    assert_int_equal(o.shared_default_ttl_ms, 300000);
    assert_int_equal(o.shared_eviction, TC_POLICY_ALLKEYS_LRU);
    assert_string_equal(o.redis_host, "");
    assert_int_equal(o.redis_port, 6379);
    assert_string_equal(o.redis_username, "");
    assert_string_equal(o.redis_password, "");
    assert_int_equal(o.redis_db, 0);
    assert_int_equal(o.redis_use_tls, 0);
    assert_int_equal(o.redis_max_retries, 3);
    assert_int_equal(o.redis_connect_timeout_ms, 5000);
    assert_int_equal(o.redis_command_timeout_ms, 1000);
    assert_string_equal(o.redis_key_prefix, "tiercache:");
    assert_int_equal(o.redis_pool_size, 0);
    assert_string_equal(o.redis_tls_ca_file, "");
    assert_string_equal(o.redis_tls_server_name, "");
    assert_string_equal(o.redis_tls_cert_file, "");
    assert_string_equal(o.redis_tls_key_file, "");
    assert_int_equal(o.redis_tls_skip_verify, 0);
    assert_int_equal(o.metrics_enabled, 1);
    assert_int_equal(o.defensive_invalidation, 0);
    assert_null(o.log_fn);
    assert_null(o.log_userdata);
    /* the defaults are valid */
    char err[512];
    assert_int_equal(tc__opts_validate(&o, err, sizeof err), 0);
    /* nothing counts as set explicitly */
    assert_int_equal(o.explicit_bits[0] | o.explicit_bits[1], 0);
}

/* With no variable set, the environment gives exactly the defaults; errbuf is cleared. */
static void test_empty_env_is_defaults(void **state) {
    (void)state;
    tc__opts a, b;
    char err[256] = "stale";
    tc__opts_init(&a);
    memset(&b, 0x5a, sizeof b);
    assert_int_equal(tc__opts_from_env(&b, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_memory_equal(&a, &b, sizeof a);
    assert_int_equal(tc__opts_from_env(&b, NULL, 0), 0);
    assert_int_equal(tc__opts_from_env(NULL, err, sizeof err), TC_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Every variable, valid values                                             */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *set;     /* NAME=value */
    const char *line;    /* the summary line it must produce */
    const char *pre[3];  /* other variables the case needs */
} good_case;

static const good_case good[] = {
    {"CACHE_TIERING=L1", "CACHE_TIERING=L1", {NULL}},
    {"CACHE_TIERING=l2", "CACHE_TIERING=L2", {NULL}},
    {"CACHE_TIERING=L1L2", "CACHE_TIERING=L1L2", {NULL}},
    {"CACHE_TIERING=l1L2", "CACHE_TIERING=L1L2", {NULL}},
    {"CACHE_TIERING=L3", "CACHE_TIERING=L3", {"REDIS_HOST=h"}},
    {"CACHE_TIERING=L1L3", "CACHE_TIERING=L1L3", {"REDIS_HOST=h"}},
    {"CACHE_TIERING=L2L3", "CACHE_TIERING=L2L3", {"REDIS_URL=redis://h"}},
    {"CACHE_TIERING=L1L2L3", "CACHE_TIERING=L1L2L3", {"REDIS_HOST=h"}},
    {"CACHE_MAX_KEY_BYTES=1", "CACHE_MAX_KEY_BYTES=1", {NULL}},
    {"CACHE_MAX_KEY_BYTES=65535", "CACHE_MAX_KEY_BYTES=65535", {NULL}},
    {"CACHE_MAX_KEY_BYTES=1kb", "CACHE_MAX_KEY_BYTES=1024", {NULL}},
    {"CACHE_MAX_KEY_BYTES=64k", "CACHE_MAX_KEY_BYTES=64000", {NULL}},
    {"CACHE_MAX_VALUE_BYTES=1", "CACHE_MAX_VALUE_BYTES=1", {NULL}},
    {"CACHE_MAX_VALUE_BYTES=2mb", "CACHE_MAX_VALUE_BYTES=2097152", {NULL}},
    {"CACHE_MAX_VALUE_BYTES=512MiB", "CACHE_MAX_VALUE_BYTES=536870912", {NULL}},
    {"CACHE_MEMORY_MAX_ENTRIES=1", "CACHE_MEMORY_MAX_ENTRIES=1", {NULL}},
    {"CACHE_MEMORY_MAX_ENTRIES=500", "CACHE_MEMORY_MAX_ENTRIES=500", {NULL}},
    {"CACHE_MEMORY_MAX_ENTRIES=007", "CACHE_MEMORY_MAX_ENTRIES=7", {NULL}},
    {"CACHE_MEMORY_MAX_ENTRIES=4294967295", "CACHE_MEMORY_MAX_ENTRIES=4294967295", {NULL}},
    {"CACHE_MEMORY_MAX_BYTES=1", "CACHE_MEMORY_MAX_BYTES=1", {NULL}},
    {"CACHE_MEMORY_MAX_BYTES=1gb", "CACHE_MEMORY_MAX_BYTES=1073741824", {NULL}},
    {"CACHE_MEMORY_MAX_BYTES=18446744073709551615", "CACHE_MEMORY_MAX_BYTES=18446744073709551615", {NULL}},
    {"CACHE_MEMORY_DEFAULT_TTL=0", "CACHE_MEMORY_DEFAULT_TTL=0ms", {NULL}},
    {"CACHE_MEMORY_DEFAULT_TTL=5s", "CACHE_MEMORY_DEFAULT_TTL=5000ms", {NULL}},
    {"CACHE_MEMORY_DEFAULT_TTL=120000", "CACHE_MEMORY_DEFAULT_TTL=120000ms", {NULL}},
    {"CACHE_MEMORY_DEFAULT_TTL=1h30m", "CACHE_MEMORY_DEFAULT_TTL=5400000ms", {NULL}},
    {"CACHE_MEMORY_DEFAULT_TTL=36500d", "CACHE_MEMORY_DEFAULT_TTL=3153600000000ms", {NULL}},
    {"CACHE_MEMORY_EVICTION=allkeys-lfu", "CACHE_MEMORY_EVICTION=allkeys-lfu", {NULL}},
    {"CACHE_MEMORY_EVICTION=W-TinyLFU", "CACHE_MEMORY_EVICTION=tinylfu", {NULL}},
    {"CACHE_MEMORY_EVICTION=NoEviction", "CACHE_MEMORY_EVICTION=noeviction", {NULL}},
    {"CACHE_MEMORY_EVICTION=VOLATILE-TTL", "CACHE_MEMORY_EVICTION=volatile-ttl", {NULL}},
    {"CACHE_MEMORY_SHARDS=0", "CACHE_MEMORY_SHARDS=0", {NULL}},
    {"CACHE_MEMORY_SHARDS=1", "CACHE_MEMORY_SHARDS=1", {NULL}},
    {"CACHE_MEMORY_SHARDS=64", "CACHE_MEMORY_SHARDS=64", {NULL}},
    {"CACHE_MEMORY_SHARDS=1024", "CACHE_MEMORY_SHARDS=1024", {NULL}},
    {"CACHE_MEMORY_WINDOW=0", "CACHE_MEMORY_WINDOW=0", {NULL}},
    {"CACHE_MEMORY_WINDOW=1", "CACHE_MEMORY_WINDOW=1", {NULL}},
    {"CACHE_MEMORY_WINDOW=100", "CACHE_MEMORY_WINDOW=100", {NULL}},
    {"CACHE_SHARED_NAME=a", "CACHE_SHARED_NAME=a", {NULL}},
    {"CACHE_SHARED_NAME=My.cache_01-x", "CACHE_SHARED_NAME=My.cache_01-x", {NULL}},
    {"CACHE_SHARED_MAX_ENTRIES=1", "CACHE_SHARED_MAX_ENTRIES=1", {NULL}},
    {"CACHE_SHARED_MAX_ENTRIES=4294967295", "CACHE_SHARED_MAX_ENTRIES=4294967295", {NULL}},
    {"CACHE_SHARED_MAX_BYTES=1mb", "CACHE_SHARED_MAX_BYTES=1048576", {NULL}},
    {"CACHE_SHARED_DEFAULT_TTL=0", "CACHE_SHARED_DEFAULT_TTL=0ms", {NULL}},
    {"CACHE_SHARED_DEFAULT_TTL=5m", "CACHE_SHARED_DEFAULT_TTL=300000ms", {NULL}},
    {"CACHE_SHARED_EVICTION=AllKeysRandom", "CACHE_SHARED_EVICTION=allkeys-random", {NULL}},
    {"CACHE_SHARED_EVICTION=volatile-random", "CACHE_SHARED_EVICTION=volatile-random", {NULL}},
    {"CACHE_SHARED_LOCK_TIMEOUT=1", "CACHE_SHARED_LOCK_TIMEOUT=1ms", {NULL}},
    {"CACHE_SHARED_LOCK_TIMEOUT=250ms", "CACHE_SHARED_LOCK_TIMEOUT=250ms", {NULL}},
    {"CACHE_SHARED_LOCK_TIMEOUT=1m", "CACHE_SHARED_LOCK_TIMEOUT=60000ms", {NULL}},
    {"CACHE_SHARED_GROUP=cache-users", "CACHE_SHARED_GROUP=cache-users", {"CACHE_SHARED_MODE=0660"}},
    {"CACHE_SHARED_GROUP=4242", "CACHE_SHARED_GROUP=4242", {"CACHE_SHARED_MODE=660"}},
    {"CACHE_SHARED_GROUP=", "CACHE_SHARED_GROUP=", {NULL}},
    {"CACHE_SHARED_MODE=0600", "CACHE_SHARED_MODE=0600", {NULL}},
    {"CACHE_SHARED_MODE=600", "CACHE_SHARED_MODE=0600", {NULL}},
    {"CACHE_SHARED_MODE=0660", "CACHE_SHARED_MODE=0660", {"CACHE_SHARED_GROUP=g"}},
    {"CACHE_ENCORE_MAX_ENTRIES=7", "CACHE_SHARED_MAX_ENTRIES=7", {NULL}},
    {"CACHE_ENCORE_DEFAULT_TTL=1m", "CACHE_SHARED_DEFAULT_TTL=60000ms", {NULL}},
    {"CACHE_ENCORE_DEFAULT_TTL=5000", "CACHE_SHARED_DEFAULT_TTL=5000ms", {NULL}},
    {"CACHE_ENCORE_EVICTION=VolatileLFU", "CACHE_SHARED_EVICTION=volatile-lfu", {NULL}},
    {"REDIS_URL=", "REDIS_URL=", {NULL}},
    {"REDIS_URL=redis://h", "REDIS_URL=redis://h:6379/0", {NULL}},
    {"REDIS_HOST=redis.example.com", "REDIS_HOST=redis.example.com", {NULL}},
    {"REDIS_HOST=10.0.0.1", "REDIS_HOST=10.0.0.1", {NULL}},
    {"REDIS_HOST=my_redis-1", "REDIS_HOST=my_redis-1", {NULL}},
    {"REDIS_HOST=::1", "REDIS_HOST=::1", {NULL}},
    {"REDIS_HOST=[fe80::1%25eth0]", "REDIS_HOST=fe80::1%25eth0", {NULL}},
    {"REDIS_HOST=[::1]", "REDIS_URL=redis://[::1]:6379/0", {NULL}},
    {"REDIS_HOST=", "REDIS_HOST=", {NULL}},
    {"REDIS_PORT=1", "REDIS_PORT=1", {NULL}},
    {"REDIS_PORT=65535", "REDIS_PORT=65535", {NULL}},
    {"REDIS_USERNAME=app", "REDIS_USERNAME=app", {NULL}},
    {"REDIS_USERNAME=", "REDIS_USERNAME=", {NULL}},
    {"REDIS_PASSWORD=x", "REDIS_PASSWORD=***", {NULL}},
    {"REDIS_PASSWORD=", "REDIS_PASSWORD=", {NULL}},
    {"REDIS_DB=0", "REDIS_DB=0", {NULL}},
    {"REDIS_DB=15", "REDIS_DB=15", {NULL}},
    {"REDIS_DB=2147483647", "REDIS_DB=2147483647", {NULL}},
    {"REDIS_USE_TLS=true", "REDIS_USE_TLS=true", {NULL}},
    {"REDIS_USE_TLS=FALSE", "REDIS_USE_TLS=false", {NULL}},
    {"REDIS_USE_TLS=1", "REDIS_USE_TLS=true", {NULL}},
    {"REDIS_USE_TLS=0", "REDIS_USE_TLS=false", {NULL}},
    {"REDIS_USE_TLS=Yes", "REDIS_USE_TLS=true", {NULL}},
    {"REDIS_USE_TLS=no", "REDIS_USE_TLS=false", {NULL}},
    {"REDIS_USE_TLS=ON", "REDIS_USE_TLS=true", {NULL}},
    {"REDIS_USE_TLS=off", "REDIS_USE_TLS=false", {NULL}},
    {"REDIS_MAX_RETRIES=0", "REDIS_MAX_RETRIES=0", {NULL}},
    {"REDIS_MAX_RETRIES=100", "REDIS_MAX_RETRIES=100", {NULL}},
    {"REDIS_CONNECT_TIMEOUT=1", "REDIS_CONNECT_TIMEOUT=1ms", {NULL}},
    {"REDIS_CONNECT_TIMEOUT=2s", "REDIS_CONNECT_TIMEOUT=2000ms", {NULL}},
    {"REDIS_CONNECT_TIMEOUT=1d", "REDIS_CONNECT_TIMEOUT=86400000ms", {NULL}},
    {"REDIS_COMMAND_TIMEOUT=250ms", "REDIS_COMMAND_TIMEOUT=250ms", {NULL}},
    {"REDIS_COMMAND_TIMEOUT=1.5s", "REDIS_COMMAND_TIMEOUT=1500ms", {NULL}},
    {"REDIS_KEY_PREFIX=", "REDIS_KEY_PREFIX=", {NULL}},
    {"REDIS_KEY_PREFIX=app:cache:", "REDIS_KEY_PREFIX=app:cache:", {NULL}},
    {"REDIS_KEY_PREFIX=with space:", "REDIS_KEY_PREFIX=with space:", {NULL}},
    {"REDIS_KEY_PREFIX=caf\xc3\xa9:", "REDIS_KEY_PREFIX=caf\xc3\xa9:", {NULL}},
    {"REDIS_POOL_SIZE=0", "REDIS_POOL_SIZE=0", {NULL}},
    {"REDIS_POOL_SIZE=1", "REDIS_POOL_SIZE=1", {NULL}},
    {"REDIS_POOL_SIZE=1024", "REDIS_POOL_SIZE=1024", {NULL}},
    {"REDIS_TLS_CA_FILE=/etc/ssl/ca.pem", "REDIS_TLS_CA_FILE=/etc/ssl/ca.pem", {"REDIS_USE_TLS=true"}},
    {"REDIS_TLS_CA_FILE=", "REDIS_TLS_CA_FILE=", {NULL}},
    {"REDIS_TLS_SERVER_NAME=redis.internal", "REDIS_TLS_SERVER_NAME=redis.internal", {"REDIS_USE_TLS=1"}},
    {"REDIS_TLS_CERT_FILE=/c.pem", "REDIS_TLS_CERT_FILE=/c.pem",
     {"REDIS_USE_TLS=true", "REDIS_TLS_KEY_FILE=/k.pem"}},
    {"REDIS_TLS_KEY_FILE=/k.pem", "REDIS_TLS_KEY_FILE=/k.pem",
     {"REDIS_URL=rediss://h", "REDIS_TLS_CERT_FILE=/my certs/c.pem"}},
    {"REDIS_TLS_KEY_PASSWORD=pass phrase", "REDIS_TLS_KEY_PASSWORD=***",
     {"REDIS_USE_TLS=true", "REDIS_TLS_CERT_FILE=/c.pem", "REDIS_TLS_KEY_FILE=/k.pem"}},
    {"REDIS_TLS_KEY_PASSWORD=", "REDIS_TLS_KEY_PASSWORD=", {NULL}},
    {"REDIS_TLS_SKIP_VERIFY=true", "REDIS_TLS_SKIP_VERIFY=true", {"REDIS_USE_TLS=true"}},
    {"REDIS_TLS_SKIP_VERIFY=false", "REDIS_TLS_SKIP_VERIFY=false", {NULL}},
    {"CACHE_METRICS_ENABLED=false", "CACHE_METRICS_ENABLED=false", {NULL}},
    {"CACHE_METRICS_ENABLED=on", "CACHE_METRICS_ENABLED=true", {NULL}},
    {"CACHE_DEFENSIVE_INVALIDATION=true", "CACHE_DEFENSIVE_INVALIDATION=true", {NULL}},
    {"CACHE_COHERENCE=off", "CACHE_COHERENCE=false", {NULL}},
    {"CACHE_MAX_STALENESS=10ms", "CACHE_MAX_STALENESS=10ms", {NULL}},
    {"CACHE_MAX_STALENESS=5s", "CACHE_MAX_STALENESS=5000ms", {NULL}},
    {"CACHE_MAX_STALENESS=1h", "CACHE_MAX_STALENESS=3600000ms", {NULL}},
    {"CACHE_DEFENSIVE_INVALIDATION=0", "CACHE_DEFENSIVE_INVALIDATION=false", {NULL}},
};

/* One row of good[] (its own test case, named after the row): accepted from the environment
 * and by tc_config_set(), with the same summary line. */
static void test_good_row(void **state) {
    const good_case *c = *state;
    for (size_t k = 0; k < 3 && c->pre[k] != NULL; k++) put(c->pre[k]);
    put(c->set);
    tc__opts o;
    char err[TC_ERRBUF_SIZE] = "";
    int rc = tc__opts_from_env(&o, err, sizeof err);
    if (rc != 0) fail_msg("%s: rc %d: %s", c->set, rc, err);
    char *d = describe(&o);
    assert_has_line(d, c->line);
    tc_free(d);
    /* the same through the public setter, variable by variable */
    tc_config *cfg;
    assert_int_equal(tc_config_new(&cfg), 0);
    for (size_t k = 0; k < 4; k++) {
        const char *set = k < 3 ? c->pre[k] : c->set;
        if (set == NULL) continue;
        char name[128];
        size_t len = strcspn(set, "=");
        snprintf(name, sizeof name, "%.*s", (int)len, set);
        if (tc_config_set(cfg, name, set + len + 1, err, sizeof err) != 0) fail_msg("tc_config_set %s: %s", set, err);
    }
    assert_int_equal(tc_config_describe(cfg, &d), 0);
    assert_has_line(d, c->line);
    tc_free(d);
    tc_config_free(cfg);
}

/* The fields themselves, for the values the summary prints in another form. */
static void test_fields_from_env(void **state) {
    (void)state;
    put("CACHE_TIERING=l1l2l3");
    put("REDIS_HOST=h");
    put("CACHE_MAX_KEY_BYTES=2kb");
    put("CACHE_MEMORY_DEFAULT_TTL=1.5s");
    put("CACHE_SHARED_EVICTION=VolatileTTL");
    put("REDIS_USE_TLS=yes");
    put("REDIS_PASSWORD=p w");
    put("CACHE_METRICS_ENABLED=OFF");
    tc__opts o;
    char err[512];
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.ntiers, 3);
    assert_int_equal(o.tiers[0], TC_TIER_L1);
    assert_int_equal(o.tiers[1], TC_TIER_L2);
    assert_int_equal(o.tiers[2], TC_TIER_L3);
    assert_int_equal(o.max_key_bytes, 2048);
    assert_int_equal(o.mem_default_ttl_ms, 1500);
    assert_int_equal(o.shared_eviction, TC_POLICY_VOLATILE_TTL);
    assert_int_equal(o.redis_use_tls, 1);
    assert_string_equal(o.redis_password, "p w");
    assert_int_equal(o.metrics_enabled, 0);

    setup_env(state);
    put("CACHE_TIERING=L2L3");
    put("REDIS_HOST=h");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.ntiers, 2);
    assert_int_equal(o.tiers[0], TC_TIER_L2);
    assert_int_equal(o.tiers[1], TC_TIER_L3);
    assert_int_equal(o.tiers[2], TC_TIER_NONE);
}

/* ------------------------------------------------------------------------ */
/* Every variable, invalid values                                           */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *value;
    const char *accepted; /* a part of the message saying what is accepted */
    const char *pre[3];
    const char *shown;    /* how the message shows the value, when not "value" verbatim */
} bad_case;

#define POS_INT "expected a positive integer (1..4294967295)"
#define TIERINGS "expected one of L1, L2, L3, L1L2, L1L3, L2L3, L1L2L3"
#define POLICIES "expected an eviction policy: tinylfu"
#define BOOLS "expected a boolean: true/false, 1/0, yes/no or on/off"

static const bad_case bad[] = {
    {"CACHE_TIERING", "", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L4", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L2L1", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L1L1", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L1,L2", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L1 L2", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", " L1", TIERINGS, {NULL}, NULL},
    {"CACHE_TIERING", "L1L2L3L1", TIERINGS, {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "", "empty", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "0", "expected a size of 1..65535 bytes", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "65536", "expected a size of 1..65535 bytes", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "64KiB", "expected a size of 1..65535 bytes", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "abc", "expected a number", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "-1", "negative sizes are not allowed", {NULL}, NULL},
    {"CACHE_MAX_KEY_BYTES", "1.5k", "a fraction is not allowed", {NULL}, NULL},
    {"CACHE_MAX_VALUE_BYTES", "0", "expected a size of 1..536870912 bytes", {NULL}, NULL},
    {"CACHE_MAX_VALUE_BYTES", "513MiB", "expected a size of 1..536870912 bytes", {NULL}, NULL},
    {"CACHE_MAX_VALUE_BYTES", "1gb", "expected a size of 1..536870912 bytes", {NULL}, NULL},
    {"CACHE_MAX_VALUE_BYTES", "5x", "unknown unit \"x\"", {NULL}, NULL},
    {"CACHE_MAX_VALUE_BYTES", "99999999999999999999", "too large", {NULL}, NULL},
    /* original defect 7: each of these silently removed the bound */
    {"CACHE_MEMORY_MAX_ENTRIES", "abc", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "0", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "-1", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "1e3", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "4294967296", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "99999999999999999999999", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", " 5", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "5.0", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "+5", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_ENTRIES", "10k", POS_INT, {NULL}, NULL},
    {"CACHE_MEMORY_MAX_BYTES", "0", "expected a size of at least 1 byte", {NULL}, NULL},
    {"CACHE_MEMORY_MAX_BYTES", "", "empty", {NULL}, NULL},
    {"CACHE_MEMORY_MAX_BYTES", "1x", "unknown unit \"x\"", {NULL}, NULL},
    {"CACHE_MEMORY_MAX_BYTES", "18446744073709551616", "too large", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "", "empty", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "abc", "expected a number at \"abc\"", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "5x", "unknown unit \"x\" (use ns, us, ms, s, m, h, d, or a bare integer of milliseconds)", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "-5s", "negative durations are not allowed", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "500us", "under 1 ms", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "1.5ms", "not a whole number of milliseconds", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "36501d", "expected 0 (no expiry) or a duration up to 36500d", {NULL}, NULL},
    {"CACHE_MEMORY_DEFAULT_TTL", "99999999999999999999", "too large", {NULL}, NULL},
    {"CACHE_MEMORY_EVICTION", "", POLICIES, {NULL}, NULL},
    {"CACHE_MEMORY_EVICTION", "lru", POLICIES, {NULL}, NULL},
    {"CACHE_MEMORY_EVICTION", "allkeys_lru", POLICIES, {NULL}, NULL},
    {"CACHE_MEMORY_EVICTION", "all-keys-lru", POLICIES, {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "3", "expected 0 (automatic) or a power of two (1..1024)", {NULL}, NULL},
    {"CACHE_MEMORY_WINDOW", "101", "expected 0 (automatic) or an integer (1..100)", {NULL}, NULL},
    {"CACHE_MEMORY_WINDOW", "-1", "expected 0 (automatic) or an integer (1..100)", {NULL}, NULL},
    {"CACHE_MEMORY_WINDOW", "1%", "expected 0 (automatic) or an integer (1..100)", {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "6", "power of two", {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "2048", "power of two", {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "-1", "power of two", {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "", "power of two", {NULL}, NULL},
    {"CACHE_MEMORY_SHARDS", "auto", "power of two", {NULL}, NULL},
    {"CACHE_SHARED_NAME", "", "empty; expected 1..200 characters of A-Z a-z 0-9 . _ -", {NULL}, NULL},
    {"CACHE_SHARED_NAME", "a/b", "character \"/\" is not allowed; expected 1..200 characters", {NULL}, NULL},
    {"CACHE_SHARED_NAME", "has space", "expected 1..200 characters", {NULL}, NULL},
    /* issue 8, item 13: it passed the configuration, then failed at open */
    {"CACHE_SHARED_NAME", ".hidden", "starts with \".\" (a hidden file); expected 1..200 characters", {NULL}, NULL},
    {"CACHE_SHARED_NAME", "na\xc3\xafve", "expected 1..200 characters", {NULL}, "\"na\\xc3\\xafve\""},
    {"CACHE_SHARED_MAX_ENTRIES", "0", POS_INT, {NULL}, NULL},
    {"CACHE_SHARED_MAX_ENTRIES", "abc", POS_INT, {NULL}, NULL},
    {"CACHE_ENCORE_MAX_ENTRIES", "abc", POS_INT, {NULL}, NULL},
    {"CACHE_ENCORE_MAX_ENTRIES", "-3", POS_INT, {NULL}, NULL},
    {"CACHE_SHARED_MAX_BYTES", "0", "expected a size of at least 1 byte", {NULL}, NULL},
    {"CACHE_SHARED_MAX_BYTES", "big", "expected a number", {NULL}, NULL},
    {"CACHE_SHARED_DEFAULT_TTL", "5x", "unknown unit \"x\"", {NULL}, NULL},
    {"CACHE_SHARED_DEFAULT_TTL", "", "empty", {NULL}, NULL},
    {"CACHE_ENCORE_DEFAULT_TTL", "soon", "expected a number at \"soon\"", {NULL}, NULL},
    {"CACHE_ENCORE_DEFAULT_TTL", "5 minutes", "unexpected \" \"", {NULL}, NULL},
    {"CACHE_SHARED_EVICTION", "x", POLICIES, {NULL}, NULL},
    {"CACHE_ENCORE_EVICTION", "AllKeysLRUX", POLICIES, {NULL}, NULL},
    {"CACHE_SHARED_LOCK_TIMEOUT", "0", "expected a duration of 1ms..1m", {NULL}, NULL},
    {"CACHE_SHARED_LOCK_TIMEOUT", "61s", "expected a duration of 1ms..1m", {NULL}, NULL},
    {"CACHE_SHARED_LOCK_TIMEOUT", "", "empty", {NULL}, NULL},
    {"CACHE_SHARED_LOCK_TIMEOUT", "fast", "expected a number at \"fast\"", {NULL}, NULL},
    {"CACHE_SHARED_LOCK_TIMEOUT", "-1ms", "negative durations are not allowed", {NULL}, NULL},
    {"CACHE_SHARED_GROUP", "a b", "printable ASCII characters without spaces", {"CACHE_SHARED_MODE=0660"}, NULL},
    {"CACHE_SHARED_GROUP", "g", "set CACHE_SHARED_MODE=0660 too", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "0666", "expected 0600 (the owner only) or 0660 (the owner and CACHE_SHARED_GROUP)", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "0644", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "0700", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "384", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "06600", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "1660", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "660 ", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "", "expected 0600", {NULL}, NULL},
    {"CACHE_SHARED_MODE", "0660", "shares the segment with a group: name it in CACHE_SHARED_GROUP", {NULL}, NULL},
    {"REDIS_HOST", "a b", "character \" \" is not allowed; expected a host name or IP address", {NULL}, NULL},
    {"REDIS_HOST", "host:6379", "looks like host:port", {NULL}, NULL},
    {"REDIS_HOST", "h\n", "expected a host name", {NULL}, "\"h\\x0a\""},
    {"REDIS_HOST", "[localhost]", "[brackets] are for IPv6 addresses only", {NULL}, NULL},
    {"REDIS_HOST", "redis://h", "expected a host name", {NULL}, NULL},
    {"REDIS_PORT", "0", "expected a positive integer (1..65535)", {NULL}, NULL},
    {"REDIS_PORT", "65536", "(1..65535)", {NULL}, NULL},
    {"REDIS_PORT", "", "(1..65535)", {NULL}, NULL},
    {"REDIS_PORT", "abc", "(1..65535)", {NULL}, NULL},
    {"REDIS_PORT", "-1", "(1..65535)", {NULL}, NULL},
    {"REDIS_PORT", "6379x", "(1..65535)", {NULL}, NULL},
    {"REDIS_USERNAME", "a b", "printable ASCII characters without spaces", {NULL}, NULL},
    {"REDIS_USERNAME", "tab\t", "without spaces", {NULL}, "\"tab\\x09\""},
    {"REDIS_DB", "-1", "expected an integer (0..2147483647)", {NULL}, NULL},
    {"REDIS_DB", "2147483648", "(0..2147483647)", {NULL}, NULL},
    {"REDIS_DB", "x", "(0..2147483647)", {NULL}, NULL},
    {"REDIS_DB", "", "(0..2147483647)", {NULL}, NULL},
    {"REDIS_USE_TLS", "", BOOLS, {NULL}, NULL},
    {"REDIS_USE_TLS", "maybe", BOOLS, {NULL}, NULL},
    {"REDIS_USE_TLS", "2", BOOLS, {NULL}, NULL},
    {"REDIS_USE_TLS", "tru", BOOLS, {NULL}, NULL},
    {"REDIS_USE_TLS", " true", BOOLS, {NULL}, NULL},
    {"REDIS_MAX_RETRIES", "101", "expected an integer (0..100)", {NULL}, NULL},
    {"REDIS_MAX_RETRIES", "-1", "(0..100)", {NULL}, NULL},
    {"REDIS_MAX_RETRIES", "", "(0..100)", {NULL}, NULL},
    {"REDIS_CONNECT_TIMEOUT", "0", "expected a duration of 1ms..1d", {NULL}, NULL},
    {"REDIS_CONNECT_TIMEOUT", "0s", "expected a duration of 1ms..1d", {NULL}, NULL},
    {"REDIS_CONNECT_TIMEOUT", "2d", "expected a duration of 1ms..1d", {NULL}, NULL},
    {"REDIS_CONNECT_TIMEOUT", "", "empty", {NULL}, NULL},
    {"REDIS_CONNECT_TIMEOUT", "5x", "unknown unit \"x\"", {NULL}, NULL},
    {"REDIS_COMMAND_TIMEOUT", "0", "expected a duration of 1ms..1d", {NULL}, NULL},
    {"REDIS_COMMAND_TIMEOUT", "-1s", "negative durations are not allowed", {NULL}, NULL},
    {"REDIS_KEY_PREFIX", "a\nb", "without control characters", {NULL}, "\"a\\x0ab\""},
    {"REDIS_KEY_PREFIX", "\x7f", "without control characters", {NULL}, "\"\\x7f\""},
    {"REDIS_POOL_SIZE", "1025", "expected 0 (automatic) or an integer (1..1024)", {NULL}, NULL},
    {"REDIS_POOL_SIZE", "-1", "(1..1024)", {NULL}, NULL},
    {"REDIS_POOL_SIZE", "", "(1..1024)", {NULL}, NULL},
    {"REDIS_POOL_SIZE", "x", "(1..1024)", {NULL}, NULL},
    {"REDIS_TLS_CA_FILE", "a\tb", "without control characters", {"REDIS_USE_TLS=true"}, "\"a\\x09b\""},
    {"REDIS_TLS_CA_FILE", "/ca.pem", "set while TLS is off (set REDIS_USE_TLS=true or use a rediss:// URL)", {NULL}, NULL},
    {"REDIS_TLS_CA_FILE", "/ca.pem", "set while TLS is off", {"REDIS_URL=rediss://h", "REDIS_USE_TLS=false"}, NULL},
    {"REDIS_TLS_SERVER_NAME", "a b", "without spaces", {"REDIS_USE_TLS=true"}, NULL},
    {"REDIS_TLS_SERVER_NAME", "x", "set while TLS is off", {NULL}, NULL},
    {"REDIS_TLS_CERT_FILE", "/c.pem", "REDIS_TLS_KEY_FILE must be set too", {"REDIS_USE_TLS=true"}, NULL},
    {"REDIS_TLS_CERT_FILE", "/c.pem", "set while TLS is off", {"REDIS_TLS_KEY_FILE=/k.pem"}, NULL},
    {"REDIS_TLS_KEY_FILE", "/k.pem", "REDIS_TLS_CERT_FILE must be set too", {"REDIS_USE_TLS=true"}, NULL},
    {"REDIS_TLS_KEY_FILE", "/k\x01.pem", "without control characters", {"REDIS_USE_TLS=true"}, "\"/k\\x01.pem\""},
    {"REDIS_TLS_SKIP_VERIFY", "maybe", BOOLS, {NULL}, NULL},
    {"REDIS_TLS_SKIP_VERIFY", "true", "set while TLS is off", {NULL}, NULL},
    {"CACHE_METRICS_ENABLED", "", BOOLS, {NULL}, NULL},
    {"CACHE_METRICS_ENABLED", "enabled", BOOLS, {NULL}, NULL},
    {"CACHE_DEFENSIVE_INVALIDATION", "nope", BOOLS, {NULL}, NULL},
    {"CACHE_COHERENCE", "host", BOOLS, {NULL}, NULL},
    {"CACHE_MAX_STALENESS", "9ms", "expected a duration of 10ms..1h", {NULL}, NULL},
    {"CACHE_MAX_STALENESS", "0", "expected a duration of 10ms..1h", {NULL}, NULL},
    {"CACHE_MAX_STALENESS", "2h", "expected a duration of 10ms..1h", {NULL}, NULL},
    {"CACHE_MAX_STALENESS", "soon", "expected a number", {NULL}, NULL},
    {"CACHE_DEFENSIVE_INVALIDATION", "yes please", BOOLS, {NULL}, NULL},
};

/* One row of bad[] (its own test case): refused, with a message naming the variable, showing
 * the value as NAME="value" and saying what is accepted. */
static void test_bad_row(void **state) {
    const bad_case *c = *state;
    char what[256], head[512];
    for (size_t k = 0; k < 3 && c->pre[k] != NULL; k++) put(c->pre[k]);
    assert_int_equal(setenv(c->name, c->value, 1), 0);
    snprintf(what, sizeof what, "%s=\"%s\"", c->name, c->value);
    if (c->shown != NULL) snprintf(head, sizeof head, "%s=%s: ", c->name, c->shown);
    else snprintf(head, sizeof head, "%s=\"%s\": ", c->name, c->value);
    const char *needles[] = {head, c->accepted};
    assert_env_error(what, needles, 2, NULL);
}

/* Values longer than their field are refused, never cut. */
static void test_too_long_values_refused(void **state) {
    static const struct {
        const char *name;
        size_t len;      /* the shortest refused length */
        const char *pre; /* needed context */
    } cases[] = {
        {"CACHE_SHARED_NAME", 201, NULL},
        {"CACHE_SHARED_GROUP", 256, "CACHE_SHARED_MODE=0660"},
        {"REDIS_HOST", 256, NULL},
        {"REDIS_USERNAME", 256, NULL},
        {"REDIS_KEY_PREFIX", 201, NULL},
        {"REDIS_TLS_CA_FILE", 1024, "REDIS_USE_TLS=true"},
        {"REDIS_TLS_SERVER_NAME", 256, "REDIS_USE_TLS=true"},
        {"REDIS_TLS_CERT_FILE", 1024, "REDIS_USE_TLS=true"},
        {"REDIS_TLS_KEY_FILE", 1024, "REDIS_USE_TLS=true"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* one byte less fits (the cert/key pairing aside) */
        setup_env(state);
        if (cases[i].pre != NULL) put(cases[i].pre);
        char *ok = repeat('a', cases[i].len - 1);
        assert_int_equal(setenv(cases[i].name, ok, 1), 0);
        if (strstr(cases[i].name, "CERT") != NULL) put("REDIS_TLS_KEY_FILE=/k");
        if (strstr(cases[i].name, "KEY_FILE") != NULL) put("REDIS_TLS_CERT_FILE=/c");
        tc__opts o;
        char err[1024];
        if (tc__opts_from_env(&o, err, sizeof err) != 0)
            fail_msg("%s of %zu bytes: %s", cases[i].name, cases[i].len - 1, err);
        char *d = describe(&o);
        char *line = malloc(strlen(cases[i].name) + cases[i].len + 2);
        assert_non_null(line);
        sprintf(line, "%s=%s", cases[i].name, ok);
        assert_has_line(d, line);
        free(line);
        tc_free(d);
        free(ok);

        char *long_value = repeat('a', cases[i].len);
        assert_int_equal(setenv(cases[i].name, long_value, 1), 0);
        char head[64], toolong[64];
        snprintf(head, sizeof head, "%s=\"aaaaaaaaaa", cases[i].name);
        snprintf(toolong, sizeof toolong, "too long (%zu bytes)", cases[i].len);
        const char *needles[] = {head, toolong};
        assert_env_error(cases[i].name, needles, 2, NULL);
        free(long_value);
    }
}

/* The example from the brief, word for word. */
static void test_memory_max_entries_message(void **state) {
    (void)state;
    tc__opts o;
    char err[512];
    put("CACHE_MEMORY_MAX_ENTRIES=abc");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
    assert_string_equal(err, "CACHE_MEMORY_MAX_ENTRIES=\"abc\": expected a positive integer (1..4294967295)");
    /* errbuf may be NULL, or too small: the code is the same, the text cut and terminated */
    assert_int_equal(tc__opts_from_env(&o, NULL, 0), TC_ECONFIG);
    char small[10];
    assert_int_equal(tc__opts_from_env(&o, small, sizeof small), TC_ECONFIG);
    assert_string_equal(small, "CACHE_MEM");
}

static void test_tiering_l3_needs_host(void **state) {
    static const char *const tierings[] = {"L3", "L1L3", "L2L3", "L1L2L3"};
    for (size_t i = 0; i < 4; i++) {
        setup_env(state);
        assert_int_equal(setenv("CACHE_TIERING", tierings[i], 1), 0);
        tc__opts o;
        char err[256], want[128];
        assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
        snprintf(want, sizeof want, "CACHE_TIERING=%s needs REDIS_HOST or REDIS_URL", tierings[i]);
        assert_string_equal(err, want);
        /* an explicitly empty REDIS_HOST is no host either */
        put("REDIS_HOST=");
        assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
        assert_string_equal(err, want);
    }
    /* a host without L3 in the tiering is fine (and unused) */
    setup_env(state);
    put("REDIS_HOST=h");
    tc__opts o;
    assert_int_equal(tc__opts_from_env(&o, NULL, 0), 0);
}

/* ------------------------------------------------------------------------ */
/* Aliases                                                                  */
/* ------------------------------------------------------------------------ */

static void test_aliases_and_precedence(void **state) {
    tc__opts o;
    char err[512];
    /* the alias alone applies */
    put("CACHE_ENCORE_MAX_ENTRIES=5");
    put("CACHE_ENCORE_DEFAULT_TTL=10s");
    put("CACHE_ENCORE_EVICTION=AllKeysLFU");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.shared_max_entries, 5);
    assert_int_equal(o.shared_default_ttl_ms, 10000);
    assert_int_equal(o.shared_eviction, TC_POLICY_ALLKEYS_LFU);
    /* both set: CACHE_SHARED_* wins */
    put("CACHE_SHARED_MAX_ENTRIES=6");
    put("CACHE_SHARED_DEFAULT_TTL=20s");
    put("CACHE_SHARED_EVICTION=noeviction");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.shared_max_entries, 6);
    assert_int_equal(o.shared_default_ttl_ms, 20000);
    assert_int_equal(o.shared_eviction, TC_POLICY_NOEVICTION);
    /* ... and a losing alias is not read at all, even when its value is bad */
    put("CACHE_ENCORE_MAX_ENTRIES=abc");
    put("CACHE_ENCORE_DEFAULT_TTL=5x");
    put("CACHE_ENCORE_EVICTION=nope");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.shared_max_entries, 6);
    /* a bad primary with a good alias: the error names the primary */
    setup_env(state);
    put("CACHE_SHARED_MAX_ENTRIES=0");
    put("CACHE_ENCORE_MAX_ENTRIES=5");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "CACHE_SHARED_MAX_ENTRIES=\"0\""));
    assert_null(strstr(err, "CACHE_ENCORE"));
    /* a bad alias alone: the error names the alias */
    setup_env(state);
    put("CACHE_ENCORE_EVICTION=lru");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "CACHE_ENCORE_EVICTION=\"lru\""));
    assert_null(strstr(err, "CACHE_SHARED"));
}

/* ------------------------------------------------------------------------ */
/* REDIS_URL                                                                */
/* ------------------------------------------------------------------------ */

typedef struct {
    const char *url;
    const char *host;
    int port;
    const char *user, *pass;
    int db, tls;
} url_case;

static const url_case urls[] = {
    {"redis://localhost", "localhost", 6379, "", "", 0, 0},
    {"redis://localhost:6380", "localhost", 6380, "", "", 0, 0},
    {"redis://localhost:6380/2", "localhost", 6380, "", "", 2, 0},
    {"redis://localhost/5", "localhost", 6379, "", "", 5, 0},
    {"redis://localhost/", "localhost", 6379, "", "", 0, 0},
    {"redis://10.1.2.3:1", "10.1.2.3", 1, "", "", 0, 0},
    {"rediss://cache.example.com:6380/1", "cache.example.com", 6380, "", "", 1, 1},
    {"REDIS://Host", "Host", 6379, "", "", 0, 0},
    {"RedisS://h", "h", 6379, "", "", 0, 1},
    {"redis://:secret@h", "h", 6379, "", "secret", 0, 0},
    {"redis://user:secret@h:1/0", "h", 1, "user", "secret", 0, 0},
    {"redis://user@h", "h", 6379, "user", "", 0, 0},
    {"redis://u:@h", "h", 6379, "u", "", 0, 0},
    {"redis://us%40er:p%3As%2Fs%25@h", "h", 6379, "us@er", "p:s/s%", 0, 0},
    {"redis://u:p@ss@h", "h", 6379, "u", "p@ss", 0, 0},
    {"redis://u:a:b@h", "h", 6379, "u", "a:b", 0, 0},
    {"redis://[::1]", "::1", 6379, "", "", 0, 0},
    {"redis://[::1]:6380/3", "::1", 6380, "", "", 3, 0},
    {"rediss://u:p@[2001:db8::1]:7000/2147483647", "2001:db8::1", 7000, "u", "p", 2147483647, 1},
};

static void test_redis_url_forms(void **state) {
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        const url_case *c = &urls[i];
        setup_env(state);
        assert_int_equal(setenv("REDIS_URL", c->url, 1), 0);
        tc__opts o;
        char err[1024];
        int rc = tc__opts_from_env(&o, err, sizeof err);
        if (rc != 0) fail_msg("%s: %s", c->url, err);
        if (strcmp(o.redis_host, c->host) != 0) fail_msg("%s: host %s", c->url, o.redis_host);
        assert_int_equal(o.redis_port, c->port);
        assert_string_equal(o.redis_username, c->user);
        assert_string_equal(o.redis_password, c->pass);
        assert_int_equal(o.redis_db, c->db);
        assert_int_equal(o.redis_use_tls, c->tls);
    }
}

/* Bad URLs: the message names REDIS_URL, says what is accepted, never shows the password. */
static void test_redis_url_invalid(void **state) {
    static const struct {
        const char *url, *why;
    } cases[] = {
        {"http://u:Pw0rdZq@h", "unsupported scheme"},
        {"redis:/u:Pw0rdZq@h", "unsupported scheme"},
        {"u:Pw0rdZq@h:6379", "unsupported scheme"},
        {"u:Pw0rdZq://x@h", "unsupported scheme"},
        {"redis://u:Pw0rdZq://x@h:0", "port must be 1..65535"},
        {"redis://u:Pw0rdZq@x:y@h:0", "port must be 1..65535"},
        {"redis://", "no host"},
        {"redis://u:Pw0rdZq@", "no host"},
        {"redis://:6379", "no host"},
        {"redis://u:Pw0rdZq@h:0", "port must be 1..65535"},
        {"redis://h:65536", "port must be 1..65535"},
        {"redis://h:abc", "port must be 1..65535"},
        {"redis://h:", "port must be 1..65535"},
        {"redis://h:-1", "port must be 1..65535"},
        {"redis://h/abc", "database must be 0..2147483647"},
        {"redis://h/-1", "database must be 0..2147483647"},
        {"redis://h/2147483648", "database must be 0..2147483647"},
        {"redis://h/1/2", "database must be"},
        {"redis://u:Pw0rdZq@h?ssl=true", "query parameters and fragments are not supported"},
        {"redis://h#x", "query parameters and fragments are not supported"},
        {"redis://[::1", "'[' without ']'"},
        {"redis://[::1]x", "unexpected text after ']'"},
        {"redis://::1", "an IPv6 address must be in [brackets]"},
        {"redis://[localhost]", "[brackets] are for IPv6 addresses only"},
        {"redis://u:Pw0rdZq%zz@h", "malformed percent-encoding in the password"},
        {"redis://u:Pw0rdZq%0@h", "malformed percent-encoding in the password"},
        {"redis://u:Pw0rdZq%00@h", "malformed percent-encoding in the password"},
        {"redis://u%zz:Pw0rdZq@h", "malformed percent-encoding in the user name"},
        {"redis://us%20er:Pw0rdZq@h", "user name: character \" \" is not allowed"},
        {"redis://u:Pw0rdZq@h h", "host: character \" \" is not allowed"},
        {"redis://u:Pw0rdZq@h\n", "host: character \"\\x0a\" is not allowed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        setup_env(state);
        assert_int_equal(setenv("REDIS_URL", cases[i].url, 1), 0);
        const char *needles[] = {"REDIS_URL=\"", cases[i].why,
                                 "expected redis://[user[:password]@]host[:port][/db], or rediss://... for TLS"};
        assert_env_error(cases[i].url, needles, 3, "Pw0rdZq");
    }
    /* the redacted URL is shown: user kept, password replaced */
    setup_env(state);
    put("REDIS_URL=redis://alice:Pw0rdZq@h:0");
    const char *needles[] = {"REDIS_URL=\"redis://alice:***@h:0\": port must be 1..65535"};
    assert_env_error("redacted", needles, 1, "Pw0rdZq");

    /* too long parts */
    setup_env(state);
    char *pass = repeat('p', TC_STR_MAX), *host = repeat('h', TC_STR_MAX), url[2048];
    snprintf(url, sizeof url, "redis://u:%s@h", pass);
    assert_int_equal(setenv("REDIS_URL", url, 1), 0);
    const char *n1[] = {"REDIS_URL=\"redis://u:***@h\": password longer than 255 bytes"};
    assert_env_error("long password", n1, 1, "pppppppp");
    snprintf(url, sizeof url, "redis://%s", host);
    assert_int_equal(setenv("REDIS_URL", url, 1), 0);
    const char *n2[] = {"REDIS_URL=\"redis://hhhh", "host too long"};
    assert_env_error("long host", n2, 2, NULL);
    free(pass);
    free(host);
}

/* A failing URL stores nothing. */
static void test_redis_url_all_or_nothing(void **state) {
    (void)state;
    put("REDIS_URL=redis://u:p@h:99999");
    tc__opts o;
    assert_int_equal(tc__opts_from_env(&o, NULL, 0), TC_ECONFIG);
    assert_string_equal(o.redis_host, "");
    assert_string_equal(o.redis_username, "");
    assert_string_equal(o.redis_password, "");
    assert_int_equal(o.redis_port, 6379);
}

/* Explicit REDIS_* variables override the parts of REDIS_URL. */
static void test_redis_url_overrides(void **state) {
    tc__opts o;
    char err[512];
    put("REDIS_URL=rediss://urluser:urlpass@urlhost:1111/4");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_string_equal(o.redis_host, "urlhost");
    put("REDIS_HOST=envhost");
    put("REDIS_PORT=2222");
    put("REDIS_DB=5");
    put("REDIS_USERNAME=envuser");
    put("REDIS_PASSWORD=envpass");
    put("REDIS_USE_TLS=false");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_string_equal(o.redis_host, "envhost");
    assert_int_equal(o.redis_port, 2222);
    assert_int_equal(o.redis_db, 5);
    assert_string_equal(o.redis_username, "envuser");
    assert_string_equal(o.redis_password, "envpass");
    assert_int_equal(o.redis_use_tls, 0);
    /* an explicitly empty password overrides the URL's */
    put("REDIS_PASSWORD=");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_string_equal(o.redis_password, "");
    /* a plain redis:// URL with REDIS_USE_TLS=true is TLS */
    setup_env(state);
    put("REDIS_URL=redis://h");
    put("REDIS_USE_TLS=true");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.redis_use_tls, 1);
    /* parts the URL leaves out keep their defaults, or their explicit values */
    setup_env(state);
    put("REDIS_URL=redis://h");
    put("REDIS_PASSWORD=kept");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.redis_port, 6379);
    assert_int_equal(o.redis_db, 0);
    assert_string_equal(o.redis_password, "kept");
}

/* ------------------------------------------------------------------------ */
/* Secrets                                                                  */
/* ------------------------------------------------------------------------ */

static void test_password_never_shown(void **state) {
    tc__opts o;
    char err[1024];
    put("REDIS_PASSWORD=TopSecret123");
    put("REDIS_URL=rediss://bob:TopSecret456@cache.example.com:6380/2");
    put("CACHE_TIERING=L1L3");
    /* REDIS_PASSWORD wins over the URL's */
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_string_equal(o.redis_password, "TopSecret123");
    char *d = describe(&o);
    assert_null(strstr(d, "TopSecret"));
    assert_has_line(d, "REDIS_PASSWORD=***");
    assert_has_line(d, "REDIS_URL=rediss://bob:***@cache.example.com:6380/2");
    tc_free(d);

    /* without REDIS_PASSWORD, the URL's password is used, and still never shown */
    unsetenv("REDIS_PASSWORD");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_string_equal(o.redis_password, "TopSecret456");
    d = describe(&o);
    assert_null(strstr(d, "TopSecret"));
    assert_has_line(d, "REDIS_PASSWORD=***");
    tc_free(d);

    /* an error in another variable does not show it */
    put("REDIS_PASSWORD=TopSecret123");
    put("CACHE_METRICS_ENABLED=perhaps");
    const char *n1[] = {"CACHE_METRICS_ENABLED=\"perhaps\""};
    assert_env_error("other variable", n1, 1, "TopSecret");

    /* a password too long: redacted, and the message says why */
    setup_env(state);
    char *longpw = repeat('S', TC_STR_MAX);
    memcpy(longpw, "TopSecret", 9);
    assert_int_equal(setenv("REDIS_PASSWORD", longpw, 1), 0);
    const char *n2[] = {"REDIS_PASSWORD=\"***\": too long (256 bytes); expected at most 255 bytes"};
    assert_env_error("long password", n2, 1, "TopSecret");
    /* 255 bytes fit */
    longpw[TC_STR_MAX - 1] = '\0';
    assert_int_equal(setenv("REDIS_PASSWORD", longpw, 1), 0);
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(strlen(o.redis_password), TC_STR_MAX - 1);
    free(longpw);

    /* a struct filled by hand with an unterminated password */
    tc__opts_init(&o);
    memset(o.redis_password, 'X', sizeof o.redis_password);
    memcpy(o.redis_password, "TopSecret", 9);
    assert_int_equal(tc__opts_validate(&o, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "REDIS_PASSWORD=\"***\": not NUL-terminated"));
    assert_null(strstr(err, "TopSecret"));

    /* unset: empty in the summary */
    tc__opts_init(&o);
    d = describe(&o);
    assert_has_line(d, "REDIS_PASSWORD=");
    tc_free(d);
}

/* ------------------------------------------------------------------------ */
/* Validation of a struct filled by hand                                    */
/* ------------------------------------------------------------------------ */

typedef void (*mutator)(tc__opts *o);

typedef struct {
    const char *what;
    mutator mutate;
    const char *needle1, *needle2;
} hand_case;

static void m_ntiers0(tc__opts *o) { o->ntiers = 0; }
static void m_ntiers4(tc__opts *o) { o->ntiers = 4; }
static void m_dup(tc__opts *o) { o->ntiers = 2; o->tiers[0] = TC_TIER_L1; o->tiers[1] = TC_TIER_L1; }
static void m_order(tc__opts *o) { o->ntiers = 2; o->tiers[0] = TC_TIER_L2; o->tiers[1] = TC_TIER_L1; }
static void m_badid(tc__opts *o) { o->ntiers = 2; o->tiers[1] = (tc_tier_id)7; }
static void m_noneid(tc__opts *o) { o->tiers[0] = TC_TIER_NONE; }
static void m_l3nohost(tc__opts *o) { o->ntiers = 2; o->tiers[1] = TC_TIER_L3; }
static void m_key0(tc__opts *o) { o->max_key_bytes = 0; }
static void m_key64k(tc__opts *o) { o->max_key_bytes = 65536; }
static void m_val(tc__opts *o) { o->max_value_bytes = 512 * 1024 * 1024 + 1; }
static void m_ment0(tc__opts *o) { o->mem_max_entries = 0; }
static void m_ment2e32(tc__opts *o) { o->mem_max_entries = 4294967296ull; }
static void m_mbytes(tc__opts *o) { o->mem_max_bytes = 0; }
static void m_mttl(tc__opts *o) { o->mem_default_ttl_ms = 36500ull * 86400000ull + 1; }
static void m_mevict(tc__opts *o) { o->mem_eviction = TC_POLICY__COUNT; }
static void m_mevictneg(tc__opts *o) { o->mem_eviction = (tc_policy)-1; }
static void m_shards(tc__opts *o) { o->mem_shards = 3; }
static void m_shards2k(tc__opts *o) { o->mem_shards = 2048; }
static void m_window(tc__opts *o) { o->mem_window = 101; }
static void m_sname(tc__opts *o) { o->shared_name[0] = '\0'; }
static void m_sname2(tc__opts *o) { strcpy(o->shared_name, "a b"); }
static void m_sname_unterminated(tc__opts *o) { memset(o->shared_name, 'n', sizeof o->shared_name); }
static void m_sent(tc__opts *o) { o->shared_max_entries = 0; }
static void m_sbytes(tc__opts *o) { o->shared_max_bytes = 0; }
static void m_sttl(tc__opts *o) { o->shared_default_ttl_ms = UINT64_MAX; }
static void m_sevict(tc__opts *o) { o->shared_eviction = (tc_policy)42; }
static void m_slock0(tc__opts *o) { o->shared_lock_timeout_ms = 0; }
static void m_slockbig(tc__opts *o) { o->shared_lock_timeout_ms = 60001; }
static void m_smode(tc__opts *o) { o->shared_mode = 0666; }
static void m_smode_group(tc__opts *o) { o->shared_mode = 0660; }
static void m_sgroup(tc__opts *o) { strcpy(o->shared_group, "staff"); }
static void m_host(tc__opts *o) { strcpy(o->redis_host, "h:1"); }
static void m_port0(tc__opts *o) { o->redis_port = 0; }
static void m_portneg(tc__opts *o) { o->redis_port = -1; }
static void m_portbig(tc__opts *o) { o->redis_port = 65536; }
static void m_user(tc__opts *o) { strcpy(o->redis_username, "a b"); }
static void m_db(tc__opts *o) { o->redis_db = -1; }
static void m_retries(tc__opts *o) { o->redis_max_retries = 101; }
static void m_ctimeout(tc__opts *o) { o->redis_connect_timeout_ms = 0; }
static void m_ctimeout2(tc__opts *o) { o->redis_connect_timeout_ms = 86400001; }
static void m_cmdtimeout(tc__opts *o) { o->redis_command_timeout_ms = 0; }
static void m_prefix(tc__opts *o) { strcpy(o->redis_key_prefix, "a\nb"); }
static void m_prefix_long(tc__opts *o) { memset(o->redis_key_prefix, 'p', 201); o->redis_key_prefix[201] = '\0'; }
static void m_pool(tc__opts *o) { o->redis_pool_size = 1025; }
static void m_poolneg(tc__opts *o) { o->redis_pool_size = -1; }
static void m_ca(tc__opts *o) { o->redis_use_tls = 1; strcpy(o->redis_tls_ca_file, "a\x01"); }
static void m_ca_notls(tc__opts *o) { strcpy(o->redis_tls_ca_file, "/ca.pem"); }
static void m_sni_notls(tc__opts *o) { strcpy(o->redis_tls_server_name, "sni"); }
static void m_cert_only(tc__opts *o) { o->redis_use_tls = 1; strcpy(o->redis_tls_cert_file, "/c.pem"); }
static void m_key_only(tc__opts *o) { o->redis_use_tls = 1; strcpy(o->redis_tls_key_file, "/k.pem"); }
static void m_skip_notls(tc__opts *o) { o->redis_tls_skip_verify = 1; }

static const hand_case hand[] = {
    {"ntiers 0", m_ntiers0, "CACHE_TIERING=\"\": 0 tiers (ntiers must be 1..3)", TIERINGS},
    {"ntiers 4", m_ntiers4, "CACHE_TIERING=", "4 tiers (ntiers must be 1..3)"},
    {"duplicate", m_dup, "CACHE_TIERING=\"L1L1\": tier L1 appears twice", TIERINGS},
    {"order", m_order, "CACHE_TIERING=\"L2L1\": tiers must be listed top-down", TIERINGS},
    {"bad id", m_badid, "CACHE_TIERING=\"L1?\": tiers[1] is 7, not a tier", TIERINGS},
    {"none id", m_noneid, "CACHE_TIERING=\"?\": tiers[0] is 0, not a tier", TIERINGS},
    {"L3 without host", m_l3nohost, "CACHE_TIERING=L1L3 needs REDIS_HOST or REDIS_URL", NULL},
    {"key 0", m_key0, "CACHE_MAX_KEY_BYTES=\"0\"", "1..65535 bytes"},
    {"key 64k", m_key64k, "CACHE_MAX_KEY_BYTES=\"65536\"", "1..65535 bytes"},
    {"value", m_val, "CACHE_MAX_VALUE_BYTES=\"536870913\"", "1..536870912 bytes"},
    {"mem entries 0", m_ment0, "CACHE_MEMORY_MAX_ENTRIES=\"0\"", POS_INT},
    {"mem entries 2^32", m_ment2e32, "CACHE_MEMORY_MAX_ENTRIES=\"4294967296\"", POS_INT},
    {"mem bytes", m_mbytes, "CACHE_MEMORY_MAX_BYTES=\"0\"", "at least 1 byte"},
    {"mem ttl", m_mttl, "CACHE_MEMORY_DEFAULT_TTL=\"3153600000001ms\"", "up to 36500d"},
    {"mem eviction", m_mevict, "CACHE_MEMORY_EVICTION=\"9\"", POLICIES},
    {"mem eviction -1", m_mevictneg, "CACHE_MEMORY_EVICTION=\"-1\"", POLICIES},
    {"shards 3", m_shards, "CACHE_MEMORY_SHARDS=\"3\"", "power of two"},
    {"shards 2048", m_shards2k, "CACHE_MEMORY_SHARDS=\"2048\"", "power of two"},
    {"window 101", m_window, "CACHE_MEMORY_WINDOW=\"101\"", "1..100"},
    {"shared name empty", m_sname, "CACHE_SHARED_NAME=\"\": empty", "1..200 characters"},
    {"shared name space", m_sname2, "CACHE_SHARED_NAME=\"a b\"", "1..200 characters"},
    {"shared name unterminated", m_sname_unterminated, "CACHE_SHARED_NAME=\"nnnn",
     "not NUL-terminated within its 256-byte field"},
    {"shared entries", m_sent, "CACHE_SHARED_MAX_ENTRIES=\"0\"", POS_INT},
    {"shared bytes", m_sbytes, "CACHE_SHARED_MAX_BYTES=\"0\"", "at least 1 byte"},
    {"shared lock timeout 0", m_slock0, "CACHE_SHARED_LOCK_TIMEOUT=\"0ms\"", "1ms..1m"},
    {"shared lock timeout big", m_slockbig, "CACHE_SHARED_LOCK_TIMEOUT=\"60001ms\"", "1ms..1m"},
    {"shared mode 0666", m_smode, "CACHE_SHARED_MODE=\"0666\"", "expected 0600 (the owner only)"},
    {"shared mode 0660 alone", m_smode_group, "CACHE_SHARED_MODE=\"0660\"", "name it in CACHE_SHARED_GROUP"},
    {"shared group alone", m_sgroup, "CACHE_SHARED_GROUP=\"staff\"", "set CACHE_SHARED_MODE=0660 too"},
    {"shared ttl", m_sttl, "CACHE_SHARED_DEFAULT_TTL=\"18446744073709551615ms\"", "up to 36500d"},
    {"shared eviction", m_sevict, "CACHE_SHARED_EVICTION=\"42\"", POLICIES},
    {"host", m_host, "REDIS_HOST=\"h:1\": looks like host:port", NULL},
    {"port 0", m_port0, "REDIS_PORT=\"0\"", "(1..65535)"},
    {"port -1", m_portneg, "REDIS_PORT=\"-1\"", "(1..65535)"},
    {"port big", m_portbig, "REDIS_PORT=\"65536\"", "(1..65535)"},
    {"user", m_user, "REDIS_USERNAME=\"a b\"", "without spaces"},
    {"db", m_db, "REDIS_DB=\"-1\"", "(0..2147483647)"},
    {"retries", m_retries, "REDIS_MAX_RETRIES=\"101\"", "(0..100)"},
    {"connect timeout 0", m_ctimeout, "REDIS_CONNECT_TIMEOUT=\"0ms\"", "1ms..1d"},
    {"connect timeout big", m_ctimeout2, "REDIS_CONNECT_TIMEOUT=\"86400001ms\"", "1ms..1d"},
    {"command timeout", m_cmdtimeout, "REDIS_COMMAND_TIMEOUT=\"0ms\"", "1ms..1d"},
    {"prefix", m_prefix, "REDIS_KEY_PREFIX=\"a\\x0ab\"", "without control characters"},
    {"prefix long", m_prefix_long, "REDIS_KEY_PREFIX=\"ppp", "too long (201 bytes)"},
    {"pool", m_pool, "REDIS_POOL_SIZE=\"1025\"", "(1..1024)"},
    {"pool -1", m_poolneg, "REDIS_POOL_SIZE=\"-1\"", "(1..1024)"},
    {"ca", m_ca, "REDIS_TLS_CA_FILE=\"a\\x01\"", "without control characters"},
    {"ca without tls", m_ca_notls, "REDIS_TLS_CA_FILE=\"/ca.pem\"", "set while TLS is off"},
    {"sni without tls", m_sni_notls, "REDIS_TLS_SERVER_NAME=\"sni\"", "set while TLS is off"},
    {"cert only", m_cert_only, "REDIS_TLS_CERT_FILE=\"/c.pem\"", "REDIS_TLS_KEY_FILE must be set too"},
    {"key only", m_key_only, "REDIS_TLS_KEY_FILE=\"/k.pem\"", "REDIS_TLS_CERT_FILE must be set too"},
    {"skip verify without tls", m_skip_notls, "REDIS_TLS_SKIP_VERIFY=\"true\"", "set while TLS is off"},
};

static void test_validate_by_hand(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof hand / sizeof hand[0]; i++) {
        tc__opts o;
        char err[1024] = "";
        tc__opts_init(&o);
        hand[i].mutate(&o);
        int rc = tc__opts_validate(&o, err, sizeof err);
        if (rc != TC_ECONFIG) fail_msg("%s: rc %d, want TC_ECONFIG (%s)", hand[i].what, rc, err);
        if (strstr(err, hand[i].needle1) == NULL) fail_msg("%s: message lacks [%s]:\n%s", hand[i].what, hand[i].needle1, err);
        if (hand[i].needle2 != NULL && strstr(err, hand[i].needle2) == NULL)
            fail_msg("%s: message lacks [%s]:\n%s", hand[i].what, hand[i].needle2, err);
    }
    /* hand-filled structs that are fine */
    tc__opts o;
    char err[256];
    tc__opts_init(&o);
    o.ntiers = 3;
    o.tiers[0] = TC_TIER_L1;
    o.tiers[1] = TC_TIER_L2;
    o.tiers[2] = TC_TIER_L3;
    strcpy(o.redis_host, "::1");
    o.redis_use_tls = 1;
    strcpy(o.redis_tls_cert_file, "/c");
    strcpy(o.redis_tls_key_file, "/k");
    o.redis_tls_skip_verify = 1;
    o.mem_default_ttl_ms = 0;
    o.mem_shards = 512;
    o.redis_key_prefix[0] = '\0';
    assert_int_equal(tc__opts_validate(&o, err, sizeof err), 0);
    o.ntiers = 1; /* entries past ntiers are not looked at */
    o.tiers[0] = TC_TIER_L2;
    assert_int_equal(tc__opts_validate(&o, err, sizeof err), 0);
    assert_int_equal(tc__opts_validate(NULL, err, sizeof err), TC_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Describe                                                                 */
/* ------------------------------------------------------------------------ */

static const char *const var_order[] = {
    "CACHE_TIERING", "CACHE_MAX_KEY_BYTES", "CACHE_MAX_VALUE_BYTES",
    "CACHE_MEMORY_MAX_ENTRIES", "CACHE_MEMORY_MAX_BYTES", "CACHE_MEMORY_DEFAULT_TTL",
    "CACHE_MEMORY_MAX_TTL", "CACHE_MEMORY_EVICTION", "CACHE_MEMORY_SHARDS", "CACHE_MEMORY_WINDOW",
    "CACHE_SHARED_NAME",
    "CACHE_SHARED_MAX_ENTRIES", "CACHE_SHARED_MAX_BYTES", "CACHE_SHARED_DEFAULT_TTL",
    "CACHE_SHARED_EVICTION", "CACHE_SHARED_LOCK_TIMEOUT", "CACHE_SHARED_GROUP",
    "CACHE_SHARED_MODE", "REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_USERNAME",
    "REDIS_PASSWORD", "REDIS_DB", "REDIS_USE_TLS", "REDIS_MAX_RETRIES", "REDIS_CONNECT_TIMEOUT",
    "REDIS_COMMAND_TIMEOUT", "REDIS_DEFAULT_TTL", "REDIS_KEY_PREFIX", "REDIS_POOL_SIZE", "REDIS_TLS_CA_FILE",
    "REDIS_TLS_SERVER_NAME", "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE", "REDIS_TLS_KEY_PASSWORD",
    "REDIS_TLS_SKIP_VERIFY", "CACHE_COHERENCE", "CACHE_MAX_STALENESS", "CACHE_METRICS_ENABLED", "CACHE_DEFENSIVE_INVALIDATION",
};
#define NVARS (sizeof var_order / sizeof var_order[0])

static void test_describe_defaults(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    char *d = describe(&o);
    static const char want[] =
        "CACHE_TIERING=L1\n"
        "CACHE_MAX_KEY_BYTES=1024\n"
        "CACHE_MAX_VALUE_BYTES=1048576\n"
        "CACHE_MEMORY_MAX_ENTRIES=10000\n"
        "CACHE_MEMORY_MAX_BYTES=268435456\n"
        "CACHE_MEMORY_DEFAULT_TTL=120000ms\n"
        "CACHE_MEMORY_MAX_TTL=0ms\n"
        "CACHE_MEMORY_EVICTION=tinylfu\n"
        "CACHE_MEMORY_SHARDS=0\n"
        "CACHE_MEMORY_WINDOW=0\n"
        "CACHE_SHARED_NAME=distributed_cache\n"
        "CACHE_SHARED_MAX_ENTRIES=1000000\n"
        "CACHE_SHARED_MAX_BYTES=16777216\n"
        "CACHE_SHARED_DEFAULT_TTL=300000ms\n"
        "CACHE_SHARED_EVICTION=allkeys-lru\n"
        "CACHE_SHARED_LOCK_TIMEOUT=100ms\n"
        "CACHE_SHARED_GROUP=\n"
        "CACHE_SHARED_MODE=0600\n"
        "REDIS_URL=\n"
        "REDIS_HOST=\n"
        "REDIS_PORT=6379\n"
        "REDIS_USERNAME=\n"
        "REDIS_PASSWORD=\n"
        "REDIS_DB=0\n"
        "REDIS_USE_TLS=false\n"
        "REDIS_MAX_RETRIES=3\n"
        "REDIS_CONNECT_TIMEOUT=5000ms\n"
        "REDIS_COMMAND_TIMEOUT=1000ms\n"
        "REDIS_DEFAULT_TTL=300000ms\n"
        "REDIS_KEY_PREFIX=tiercache:\n"
        "REDIS_POOL_SIZE=0\n"
        "REDIS_TLS_CA_FILE=\n"
        "REDIS_TLS_SERVER_NAME=\n"
        "REDIS_TLS_CERT_FILE=\n"
        "REDIS_TLS_KEY_FILE=\n"
        "REDIS_TLS_KEY_PASSWORD=\n"
        "REDIS_TLS_SKIP_VERIFY=false\n"
        "CACHE_COHERENCE=true\n"
        "CACHE_MAX_STALENESS=1000ms\n"
        "CACHE_METRICS_ENABLED=true\n"
        "CACHE_DEFENSIVE_INVALIDATION=false\n";
    assert_string_equal(d, want);
    /* the names, in order, one per line */
    const char *p = d;
    for (size_t i = 0; i < NVARS; i++) {
        size_t n = strlen(var_order[i]);
        assert_memory_equal(p, var_order[i], n);
        assert_int_equal(p[n], '=');
        p = strchr(p, '\n') + 1;
    }
    assert_int_equal(*p, '\0');
    tc_free(d);
}

/* The summary of a loaded environment, read back as an environment, gives the same options
 * (the password aside: it is shown as "***"). */
static void test_describe_round_trip(void **state) {
    put("CACHE_TIERING=L1L2L3");
    put("CACHE_MAX_KEY_BYTES=2kb");
    put("CACHE_MEMORY_DEFAULT_TTL=1h30m");
    put("CACHE_MEMORY_EVICTION=AllKeysLFU");
    put("CACHE_MEMORY_SHARDS=16");
    put("CACHE_ENCORE_DEFAULT_TTL=2d");
    put("REDIS_URL=rediss://u%2Bx@[::1]:7000/9");
    put("REDIS_KEY_PREFIX=app:");
    put("REDIS_TLS_SKIP_VERIFY=on");
    put("CACHE_METRICS_ENABLED=no");
    tc__opts a, b;
    char err[512];
    if (tc__opts_from_env(&a, err, sizeof err) != 0) fail_msg("%s", err);
    char *d = describe(&a);
    assert_has_line(d, "REDIS_URL=rediss://u%2Bx@[::1]:7000/9");
    assert_has_line(d, "REDIS_USERNAME=u+x");
    assert_has_line(d, "REDIS_HOST=::1");
    setup_env(state);
    for (char *line = d, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1) {
        *nl = '\0';
        char *eq = strchr(line, '=');
        *eq = '\0';
        if (strcmp(line, "REDIS_URL") != 0 && strcmp(line, "REDIS_PASSWORD") != 0)
            assert_int_equal(setenv(line, eq + 1, 1), 0);
    }
    tc_free(d);
    assert_int_equal(tc__opts_from_env(&b, err, sizeof err), 0);
    /* b had every variable set, a only some: compare the values */
    memset(a.explicit_bits, 0, sizeof a.explicit_bits);
    memset(b.explicit_bits, 0, sizeof b.explicit_bits);
    assert_memory_equal(&a, &b, sizeof a);
}

static void test_describe_escapes_and_args(void **state) {
    (void)state;
    tc__opts o;
    char *d = (char *)1;
    tc__opts_init(&o);
    strcpy(o.redis_key_prefix, "a\nb\\c"); /* invalid, but describe shows what it is given */
    strcpy(o.redis_host, "h");
    strcpy(o.redis_username, "u:x");
    d = describe(&o);
    assert_has_line(d, "REDIS_KEY_PREFIX=a\\x0ab\\x5cc");
    assert_has_line(d, "REDIS_URL=redis://u%3Ax@h:6379/0");
    size_t lines = 0;
    for (const char *p = d; *p != '\0'; p++) lines += *p == '\n';
    assert_int_equal(lines, NVARS);
    tc_free(d);
    /* an unterminated field is shown up to its size, never read past it */
    memset(o.shared_name, 'n', sizeof o.shared_name);
    d = describe(&o);
    assert_non_null(strstr(d, "CACHE_SHARED_NAME=nnnn"));
    tc_free(d);

    d = (char *)1;
    assert_int_equal(tc__opts_describe(NULL, &d), TC_EINVAL);
    assert_null(d);
    assert_int_equal(tc__opts_describe(&o, NULL), TC_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Policies                                                                 */
/* ------------------------------------------------------------------------ */

static void test_policies(void **state) {
    (void)state;
    static const struct {
        const char *s;
        tc_policy p;
    } ok[] = {
        {"tinylfu", TC_POLICY_TINYLFU},           {"w-tinylfu", TC_POLICY_TINYLFU},
        {"W-TinyLFU", TC_POLICY_TINYLFU},         {"TINYLFU", TC_POLICY_TINYLFU},
        {"allkeys-lru", TC_POLICY_ALLKEYS_LRU},   {"AllKeysLRU", TC_POLICY_ALLKEYS_LRU},
        {"allkeys-lfu", TC_POLICY_ALLKEYS_LFU},   {"AllKeysLFU", TC_POLICY_ALLKEYS_LFU},
        {"allkeys-random", TC_POLICY_ALLKEYS_RANDOM}, {"AllKeysRandom", TC_POLICY_ALLKEYS_RANDOM},
        {"volatile-lru", TC_POLICY_VOLATILE_LRU}, {"VolatileLRU", TC_POLICY_VOLATILE_LRU},
        {"volatile-lfu", TC_POLICY_VOLATILE_LFU}, {"VolatileLFU", TC_POLICY_VOLATILE_LFU},
        {"volatile-ttl", TC_POLICY_VOLATILE_TTL}, {"VolatileTTL", TC_POLICY_VOLATILE_TTL},
        {"volatile-random", TC_POLICY_VOLATILE_RANDOM}, {"VolatileRandom", TC_POLICY_VOLATILE_RANDOM},
        {"noeviction", TC_POLICY_NOEVICTION},     {"NoEviction", TC_POLICY_NOEVICTION},
        {"ALLKEYS-LRU", TC_POLICY_ALLKEYS_LRU},   {"allkeyslru", TC_POLICY_ALLKEYS_LRU},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        tc_policy p = (tc_policy)-1;
        if (tc_policy_parse(ok[i].s, &p) != 0) fail_msg("\"%s\" refused", ok[i].s);
        assert_int_equal(p, ok[i].p);
    }
    static const char *const no[] = {"", "lru", "lfu", "random", "allkeys_lru", "all-keys-lru",
                                     "allkeys-lru ", " noeviction", "tinylfu2", "AllKeys LRU"};
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        tc_policy p = TC_POLICY_VOLATILE_TTL;
        if (tc_policy_parse(no[i], &p) != TC_EINVAL) fail_msg("\"%s\" accepted", no[i]);
        assert_int_equal(p, TC_POLICY_VOLATILE_TTL);
    }
    assert_int_equal(tc_policy_parse(NULL, NULL), TC_EINVAL);
    assert_int_equal(tc_policy_parse("noeviction", NULL), 0);

    static const char *const names[TC_POLICY__COUNT] = {
        "tinylfu", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru",
        "volatile-lfu", "volatile-ttl", "volatile-random", "noeviction"};
    for (int p = 0; p < TC_POLICY__COUNT; p++) {
        assert_string_equal(tc_policy_name((tc_policy)p), names[p]);
        tc_policy back;
        assert_int_equal(tc_policy_parse(tc_policy_name((tc_policy)p), &back), 0);
        assert_int_equal(back, p);
    }
    assert_string_equal(tc_policy_name(TC_POLICY__COUNT), "unknown");
    assert_string_equal(tc_policy_name((tc_policy)-1), "unknown");
}

/* ------------------------------------------------------------------------ */
/* The documentation matches the code                                       */
/* ------------------------------------------------------------------------ */

/* A document's configuration table lists every variable in the summary's order, and its default
 * column (first `code` span, or "(empty)") is what the summary prints for the defaults. When the
 * document marks its table with <!-- config-table --> ... <!-- /config-table -->, only the rows
 * between the markers count. */
static void check_table(const char *doc) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TC_SOURCE_DIR, doc);
    FILE *f = fopen(path, "r");
    if (f == NULL) fail_msg("cannot open %s", path);
    tc__opts o;
    tc__opts_init(&o);
    char *d = describe(&o);
    const char *want = d;
    char line[4096];
    size_t rows = 0;
    int marked = 0, inside = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, "<!-- config-table -->") != NULL) marked = 1;
    rewind(f);
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, "<!-- config-table -->") != NULL) inside = 1;
        if (strstr(line, "<!-- /config-table -->") != NULL) inside = 0;
        if (marked && !inside) continue;
        if (strncmp(line, "| `", 3) != 0) continue;
        /* column 1: `NAME` ...; column 2: `default` or (empty) */
        char *name = line + 3, *end = strchr(name, '`');
        assert_non_null(end);
        *end = '\0';
        char *col2 = strchr(end + 1, '|');
        assert_non_null(col2);
        col2++;
        while (*col2 == ' ') col2++;
        char def[512];
        if (strncmp(col2, "(empty)", 7) == 0) {
            def[0] = '\0';
        } else {
            if (*col2 != '`') fail_msg("%s: default column does not start with `: %s", name, col2);
            char *dend = strchr(col2 + 1, '`');
            assert_non_null(dend);
            snprintf(def, sizeof def, "%.*s", (int)(dend - col2 - 1), col2 + 1);
        }
        char expect[1024];
        snprintf(expect, sizeof expect, "%.200s=%.500s\n", name, def);
        if (strncmp(want, expect, strlen(expect)) != 0) {
            const char *nl = strchr(want, '\n');
            fail_msg("%s row %zu is %s (default \"%s\"), the code says %.*s", doc, rows + 1, name, def,
                     nl != NULL ? (int)(nl - want) : 0, want);
        }
        want += strlen(expect);
        rows++;
    }
    fclose(f);
    assert_int_equal(rows, NVARS);
    assert_int_equal(*want, '\0');
    tc_free(d);
}

static void test_docs_table_matches(void **state) {
    (void)state;
    check_table("docs/CONFIGURATION.md");
    check_table("README.md");
}

/* ------------------------------------------------------------------------ */
/* The public configuration object                                          */
/* ------------------------------------------------------------------------ */

static void test_config_object(void **state) {
    (void)state;
    tc_config *cfg;
    char err[TC_ERRBUF_SIZE], buf[64];
    assert_int_equal(tc_config_new(&cfg), 0);
    /* defaults, read back by name (aliases too) */
    assert_int_equal(tc_config_get(cfg, "CACHE_TIERING", buf, sizeof buf), 0);
    assert_string_equal(buf, "L1");
    assert_int_equal(tc_config_get(cfg, "CACHE_ENCORE_MAX_ENTRIES", buf, sizeof buf), 0);
    assert_string_equal(buf, "1000000");
    assert_int_equal(tc_config_get(cfg, "CACHE_MEMORY_DEFAULT_TTL", buf, sizeof buf), 0);
    assert_string_equal(buf, "120000ms");
    /* set, by name or alias, then back to the default with NULL */
    assert_int_equal(tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", "50000", err, sizeof err), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_ENCORE_EVICTION", "AllKeysLFU", err, sizeof err), 0);
    assert_int_equal(tc_config_get(cfg, "CACHE_MEMORY_MAX_ENTRIES", buf, sizeof buf), 0);
    assert_string_equal(buf, "50000");
    assert_int_equal(tc_config_get(cfg, "CACHE_SHARED_EVICTION", buf, sizeof buf), 0);
    assert_string_equal(buf, "allkeys-lfu");
    assert_int_equal(tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", NULL, err, sizeof err), 0);
    assert_int_equal(tc_config_get(cfg, "CACHE_MEMORY_MAX_ENTRIES", buf, sizeof buf), 0);
    assert_string_equal(buf, "10000");
    /* a secret reads back as *** */
    assert_int_equal(tc_config_set(cfg, "REDIS_PASSWORD", "hunter2", err, sizeof err), 0);
    assert_int_equal(tc_config_get(cfg, "REDIS_PASSWORD", buf, sizeof buf), 0);
    assert_string_equal(buf, "***");
    /* unknown names, short buffers, NULLs */
    assert_int_equal(tc_config_set(cfg, "CACHE_TEIRING", "L1", err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "\"CACHE_TEIRING\" is not a tiercache variable"));
    assert_int_equal(tc_config_get(cfg, "NOPE", buf, sizeof buf), TC_EINVAL);
    char tiny[4];
    assert_int_equal(tc_config_get(cfg, "CACHE_SHARED_NAME", tiny, sizeof tiny), TC_ENOBUFS);
    assert_string_equal(tiny, "dis");
    assert_int_equal(tc_config_set(NULL, "CACHE_TIERING", "L1", err, sizeof err), TC_EINVAL);
    assert_int_equal(tc_config_set(cfg, NULL, "L1", err, sizeof err), TC_EINVAL);
    assert_int_equal(tc_config_new(NULL), TC_EINVAL);
    char *d = NULL;
    assert_int_equal(tc_config_describe(NULL, &d), TC_EINVAL);
    assert_null(d);
    /* a configuration opens a cache, and may be freed while the cache lives */
    tc_cache *c;
    assert_int_equal(tc_open(cfg, &c, err, sizeof err), 0);
    tc_config_free(cfg);
    assert_int_equal(tc_set(c, "k", 1, "v", 1, 0), 0);
    tc_close(c);
    tc_config_free(NULL);
    assert_int_equal(tc_open(NULL, &c, err, sizeof err), TC_EINVAL);
    assert_null(c);
}

/* A refused value leaves the configuration as it was, REDIS_URL included (all or nothing). */
static void test_config_set_leaves_config_on_failure(void **state) {
    (void)state;
    tc_config *cfg;
    char err[TC_ERRBUF_SIZE];
    char *before, *after;
    assert_int_equal(tc_config_new(&cfg), 0);
    assert_int_equal(tc_config_set(cfg, "REDIS_URL", "redis://u:p@h:7000/3", err, sizeof err), 0);
    assert_int_equal(tc_config_describe(cfg, &before), 0);
    assert_int_equal(tc_config_set(cfg, "REDIS_URL", "redis://x:y@other:99999/1", err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "port must be 1..65535"));
    assert_null(strstr(err, "y@")); /* the password is not shown */
    assert_int_equal(tc_config_set(cfg, "CACHE_MEMORY_MAX_ENTRIES", "0", err, sizeof err), TC_ECONFIG);
    assert_int_equal(tc_config_describe(cfg, &after), 0);
    assert_string_equal(before, after);
    tc_free(before);
    tc_free(after);
    /* relations are checked at open: L3 without a host */
    assert_int_equal(tc_config_set(cfg, "REDIS_HOST", NULL, err, sizeof err), 0);
    assert_int_equal(tc_config_set(cfg, "CACHE_TIERING", "L1L3", err, sizeof err), 0);
    tc_cache *c;
    assert_int_equal(tc_open(cfg, &c, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "needs REDIS_HOST or REDIS_URL"));
    tc_config_free(cfg);
}

/* Which variables were set, from the environment or the setter, is known (L2 adopts an
 * existing segment's geometry unless a geometry variable was set). */
static void test_explicit_variables(void **state) {
    (void)state;
    put("CACHE_ENCORE_MAX_ENTRIES=5000");
    tc__opts o;
    char err[TC_ERRBUF_SIZE];
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(tc__opts_explicit(&o, "CACHE_SHARED_MAX_ENTRIES"), 1);
    assert_int_equal(tc__opts_explicit(&o, "CACHE_SHARED_MAX_BYTES"), 0);
    assert_int_equal(tc__opts_explicit(&o, "NOT_A_VARIABLE"), 0);
    /* set to its default value is still set */
    assert_int_equal(tc__opts_set(&o, "CACHE_SHARED_MAX_BYTES", "256MiB", err, sizeof err), 0);
    assert_int_equal(tc__opts_explicit(&o, "CACHE_SHARED_MAX_BYTES"), 1);
    /* reset is not */
    assert_int_equal(tc__opts_set(&o, "CACHE_SHARED_MAX_BYTES", NULL, err, sizeof err), 0);
    assert_int_equal(tc__opts_explicit(&o, "CACHE_SHARED_MAX_BYTES"), 0);
}

static int count_lines(const char *s) {
    int n = 0;
    for (; *s != '\0'; s++) n += *s == '\n';
    return n;
}

typedef struct {
    int n;
    char msgs[8][512];
} log_capture;

static void capture_log(void *ud, tc_log_level level, const char *msg) {
    log_capture *lc = ud;
    assert_int_equal(level, TC_LOG_WARN);
    if (lc->n < 8) snprintf(lc->msgs[lc->n++], sizeof lc->msgs[0], "%s", msg);
}

/* Set variables that look like ours but are unknown, and an alias beside its new name, are
 * warned about: in tc_config_warnings() and through the log callback at open. Names of
 * other software (CACHE_DIR, REDIS_VERSION) are not. */
static void test_warnings_lookalike_and_alias(void **state) {
    (void)state;
    put("CACHE_TEIRING=L1L2");
    put("CACHE_MEMORY_MAXENTRIES=5");
    put("CACHE_MEMORY_COLOUR=blue");
    put("CACHE_DIR=/var/cache/app");
    put("REDIS_VERSION=7.0.15");
    put("CACHE_SHARED_MAX_ENTRIES=100");
    put("CACHE_ENCORE_MAX_ENTRIES=200");
    tc_config *cfg;
    char err[TC_ERRBUF_SIZE], *w = NULL;
    size_t count = 0;
    assert_int_equal(tc_config_new(&cfg), 0);
    assert_int_equal(tc_config_from_env(cfg, err, sizeof err), 0);
    assert_int_equal(tc_config_warnings(cfg, &w, &count), 0);
    assert_int_equal(count, 4);
    assert_int_equal(count_lines(w), 4);
    assert_non_null(strstr(w, "CACHE_TEIRING is set but is not a tiercache variable (did you mean CACHE_TIERING?)"));
    assert_non_null(strstr(w, "CACHE_MEMORY_MAXENTRIES is set but is not a tiercache variable (did you mean "
                              "CACHE_MEMORY_MAX_ENTRIES?)"));
    assert_non_null(strstr(w, "CACHE_MEMORY_COLOUR is set but is not a tiercache variable"));
    assert_non_null(strstr(w, "CACHE_SHARED_MAX_ENTRIES and its old name CACHE_ENCORE_MAX_ENTRIES are both set"));
    assert_null(strstr(w, "CACHE_DIR"));
    assert_null(strstr(w, "REDIS_VERSION"));
    tc_free(w);
    char buf[32];
    assert_int_equal(tc_config_get(cfg, "CACHE_SHARED_MAX_ENTRIES", buf, sizeof buf), 0);
    assert_string_equal(buf, "100"); /* the new name wins */
    /* the warnings reach the log callback when the cache opens */
    log_capture lc = {0};
    tc_config_set_log(cfg, capture_log, &lc);
    tc_cache *c;
    assert_int_equal(tc_open(cfg, &c, err, sizeof err), 0);
    assert_int_equal(lc.n, 4);
    assert_non_null(strstr(lc.msgs[0], "CACHE_SHARED_MAX_ENTRIES and its old name"));
    tc_close(c);
    /* no warning without look-alikes */
    setup_env(state);
    assert_int_equal(tc_config_from_env(cfg, err, sizeof err), 0);
    assert_int_equal(tc_config_warnings(cfg, &w, &count), 0);
    assert_int_equal(count, 0);
    assert_string_equal(w, "");
    tc_free(w);
    tc_config_free(cfg);
}

/* TC_ERRBUF_SIZE holds every message whole: the longest value of every variable, as hostile
 * as it gets (every byte escaped), gives a message that fits with room to spare. */
static void test_messages_fit_errbuf_size(void **state) {
    static const char *const names[] = {
        "CACHE_TIERING", "CACHE_MAX_KEY_BYTES", "CACHE_MEMORY_MAX_ENTRIES", "CACHE_MEMORY_DEFAULT_TTL",
        "CACHE_MEMORY_EVICTION", "CACHE_MEMORY_SHARDS", "CACHE_SHARED_NAME", "REDIS_URL", "REDIS_HOST",
        "REDIS_USERNAME", "REDIS_PASSWORD", "REDIS_KEY_PREFIX", "REDIS_TLS_CA_FILE", "REDIS_USE_TLS",
    };
    char *hostile = repeat('\x01', 5000);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        setup_env(state);
        if (strstr(names[i], "TLS_CA") != NULL) put("REDIS_USE_TLS=true");
        assert_int_equal(setenv(names[i], hostile, 1), 0);
        tc__opts o;
        char err[TC_ERRBUF_SIZE * 2];
        memset(err, 0, sizeof err);
        assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
        size_t n = strlen(err);
        if (n + 1 >= TC_ERRBUF_SIZE) fail_msg("%s: message of %zu bytes does not fit TC_ERRBUF_SIZE", names[i], n);
        assert_non_null(strstr(err, names[i]));
    }
    free(hostile);
}

/* REDIS_DEFAULT_TTL gives L3 its own default; CACHE_MEMORY_MAX_TTL caps L1's (0: no cap). */
static void test_new_ttl_variables(void **state) {
    (void)state;
    tc__opts o;
    char err[TC_ERRBUF_SIZE];
    put("REDIS_DEFAULT_TTL=10m");
    put("CACHE_MEMORY_MAX_TTL=30s");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), 0);
    assert_int_equal(o.redis_default_ttl_ms, 600000);
    assert_int_equal(o.mem_max_ttl_ms, 30000);
    assert_int_equal(o.mem_default_ttl_ms, 120000); /* independent of each other */
    put("CACHE_MEMORY_MAX_TTL=36501d");
    assert_int_equal(tc__opts_from_env(&o, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "CACHE_MEMORY_MAX_TTL=\"36501d\": expected 0 (no expiry) or a duration up to 36500d"));
}

/* Names of the per-row cases, kept for the run. */
static char row_names[sizeof good / sizeof good[0] + sizeof bad / sizeof bad[0]][160];

int main(void) {
#define T(f) cmocka_unit_test_setup(f, setup_env)
    const struct CMUnitTest fixed[] = {
        T(test_defaults),
        T(test_empty_env_is_defaults),
        T(test_fields_from_env),
        T(test_too_long_values_refused),
        T(test_memory_max_entries_message),
        T(test_tiering_l3_needs_host),
        T(test_aliases_and_precedence),
        T(test_redis_url_forms),
        T(test_redis_url_invalid),
        T(test_redis_url_all_or_nothing),
        T(test_redis_url_overrides),
        T(test_password_never_shown),
        T(test_validate_by_hand),
        T(test_describe_defaults),
        T(test_describe_round_trip),
        T(test_describe_escapes_and_args),
        T(test_policies),
        T(test_docs_table_matches),
        T(test_config_object),
        T(test_config_set_leaves_config_on_failure),
        T(test_explicit_variables),
        T(test_warnings_lookalike_and_alias),
        T(test_messages_fit_errbuf_size),
        T(test_new_ttl_variables),
    };
#undef T
    /* every row of the good and bad tables is a case of its own, so a bad row does not hide
     * the rows after it */
    size_t ngood = sizeof good / sizeof good[0], nbad = sizeof bad / sizeof bad[0];
    size_t nfixed = sizeof fixed / sizeof fixed[0], n = nfixed + ngood + nbad;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    if (tests == NULL) return 1;
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < ngood; i++) {
        snprintf(row_names[i], sizeof row_names[i], "good: %s", good[i].set);
        tests[nfixed + i] = (struct CMUnitTest){row_names[i], test_good_row, setup_env, NULL, (void *)&good[i]};
    }
    for (size_t i = 0; i < nbad; i++) {
        char *nm = row_names[ngood + i];
        snprintf(nm, sizeof row_names[0], "bad: %s=%s", bad[i].name, bad[i].value);
        for (char *p = nm; *p != '\0'; p++)
            if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) *p = '?';
        tests[nfixed + ngood + i] = (struct CMUnitTest){nm, test_bad_row, setup_env, NULL, (void *)&bad[i]};
    }
    int rc = _cmocka_run_group_tests("test_config", tests, n, NULL, NULL);
    free(tests);
    return rc;
}
