/*
 * config.c -- the configuration: defaults, the environment, tc_config_set(), validation, the
 * printable summary and the warnings about look-alike variables.
 *
 * Every environment variable is one row of tc__vars[] below: its name (and alias), the kind
 * of value it takes, the tc__opts field it fills, the accepted range and the default (as
 * text). The same table drives tc__opts_init() (the defaults, parsed like the environment),
 * tc_config_set() and tc_config_from_env() (parse, range-check, store), tc__opts_validate()
 * (check a struct filled by hand against the same ranges), tc_config_describe() (one line per
 * row, in table order) and the "what is accepted" half of every message, so a default and a
 * limit are written down exactly once. docs/CONFIGURATION.md lists the rows in the same order,
 * which test_config checks.
 *
 * The original system turned unparsable values into defaults without a word (its defect 7).
 * Here every value that is set is parsed strictly; a failure is TC_ECONFIG with a message
 * NAME="value": what is accepted. A value too long for its field is refused, never cut.
 * Secrets (REDIS_PASSWORD, REDIS_TLS_KEY_PASSWORD, the password part of REDIS_URL) never
 * appear in a message or in the summary: they are shown as "***".
 *
 * REDIS_URL is applied before the other REDIS_* variables, so that an explicitly set
 * REDIS_HOST, REDIS_PORT, REDIS_USERNAME, REDIS_PASSWORD, REDIS_DB or REDIS_USE_TLS overrides
 * the corresponding part of the URL. For an aliased variable the primary name wins when both
 * are set, and the alias is then not read at all.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "duration.h"
#include "strbuf.h"
#include "tier.h"
#include "util.h"

/* ------------------------------------------------------------------------ */
/* The table of variables                                                   */
/* ------------------------------------------------------------------------ */

typedef enum {
    TC__K_TIERING,  /* CACHE_TIERING: ntiers + tiers[] */
    TC__K_SIZE,     /* a byte size (tc__size_parse), min..max */
    TC__K_COUNT,    /* a plain decimal integer, min..max */
    TC__K_AUTO,     /* 0 (automatic) or min..max */
    TC__K_POW2,     /* 0 (automatic) or a power of two up to max */
    TC__K_DURATION, /* a duration (tc__duration_parse) in ms, min..max; min 0: 0 = no expiry */
    TC__K_POLICY,   /* an eviction policy */
    TC__K_BOOL,     /* true/false 1/0 yes/no on/off */
    TC__K_NAME,     /* 1..cap characters of [A-Za-z0-9._-] */
    TC__K_MODE,     /* permission bits in octal: 0600 or 0660 */
    TC__K_HOST,     /* a host name or address, may be empty */
    TC__K_TEXT,     /* printable ASCII without spaces, may be empty */
    TC__K_PREFIX,   /* no control characters (spaces and UTF-8 allowed), may be empty */
    TC__K_PATH,     /* no control characters, may be empty */
    TC__K_SECRET,   /* any bytes, may be empty; never shown */
    TC__K_URL       /* REDIS_URL: no field of its own, fills the REDIS_* fields */
} tc__kind;

typedef enum {
    TC__C_NONE,
    TC__C_INT,
    TC__C_UINT,
    TC__C_U64,
    TC__C_SIZE,
    TC__C_POLICY,
    TC__C_STR
} tc__ctype;

typedef struct tc__var {
    const char *name;
    const char *alias; /* or NULL */
    tc__kind kind;
    tc__ctype ctype;
    size_t off;   /* offsetof the field in tc__opts */
    size_t cap;   /* strings: the most bytes accepted, NUL excluded (cap < fsize) */
    size_t fsize; /* strings: sizeof the field */
    uint64_t min, max;
    const char *def; /* the default, as the environment would give it; NULL: empty / 0 */
} tc__var;

#define TC__MIB (1024ull * 1024ull)
#define TC__MAX_TIMEOUT_MS 86400000ull /* 1 day */
#define TC__MAX_LOCK_WAIT_MS 60000ull /* a shard lock is held for microseconds */

#define TC__F(field) offsetof(tc__opts, field)
#define TC__FSIZE(field) sizeof(((tc__opts *)0)->field)
#define TC__NUM(name, alias, kind, ctype, field, min, max, def) \
    { name, alias, kind, ctype, TC__F(field), 0, 0, min, max, def }
#define TC__STR(name, kind, field, cap, def) \
    { name, NULL, kind, TC__C_STR, TC__F(field), cap, TC__FSIZE(field), 0, 0, def }

static const tc__var tc__vars[] = {
    {"CACHE_TIERING", NULL, TC__K_TIERING, TC__C_NONE, 0, 0, 0, 0, 0, "L1"},
    TC__NUM("CACHE_MAX_KEY_BYTES", NULL, TC__K_SIZE, TC__C_SIZE, max_key_bytes, 1, 65535, "1024"),
    TC__NUM("CACHE_MAX_VALUE_BYTES", NULL, TC__K_SIZE, TC__C_SIZE, max_value_bytes, 1, 512 * TC__MIB, "1MiB"),
    TC__NUM("CACHE_MEMORY_MAX_ENTRIES", NULL, TC__K_COUNT, TC__C_U64, mem_max_entries, 1, UINT32_MAX, "10000"),
    TC__NUM("CACHE_MEMORY_MAX_BYTES", NULL, TC__K_SIZE, TC__C_U64, mem_max_bytes, 1, UINT64_MAX, "256MiB"),
    TC__NUM("CACHE_MEMORY_DEFAULT_TTL", NULL, TC__K_DURATION, TC__C_U64, mem_default_ttl_ms, 0, TC_TTL_MAX_MS,
            "120000"),
    TC__NUM("CACHE_MEMORY_MAX_TTL", NULL, TC__K_DURATION, TC__C_U64, mem_max_ttl_ms, 0, TC_TTL_MAX_MS, "0"),
    TC__NUM("CACHE_MEMORY_EVICTION", NULL, TC__K_POLICY, TC__C_POLICY, mem_eviction, 0, 0, "tinylfu"),
    TC__NUM("CACHE_MEMORY_SHARDS", NULL, TC__K_POW2, TC__C_UINT, mem_shards, 1, 1024, "0"),
    TC__NUM("CACHE_MEMORY_WINDOW", NULL, TC__K_AUTO, TC__C_UINT, mem_window, 1, 100, "0"),
    TC__STR("CACHE_SHARED_NAME", TC__K_NAME, shared_name, 200, "distributed_cache"),
    TC__NUM("CACHE_SHARED_MAX_ENTRIES", "CACHE_ENCORE_MAX_ENTRIES", TC__K_COUNT, TC__C_U64, shared_max_entries, 1,
            UINT32_MAX, "1000000"),
    TC__NUM("CACHE_SHARED_MAX_BYTES", NULL, TC__K_SIZE, TC__C_U64, shared_max_bytes, 1, UINT64_MAX, "16MiB"),
    TC__NUM("CACHE_SHARED_DEFAULT_TTL", "CACHE_ENCORE_DEFAULT_TTL", TC__K_DURATION, TC__C_U64, shared_default_ttl_ms,
            0, TC_TTL_MAX_MS, "5m"),
    TC__NUM("CACHE_SHARED_EVICTION", "CACHE_ENCORE_EVICTION", TC__K_POLICY, TC__C_POLICY, shared_eviction, 0, 0,
            "allkeys-lru"),
    TC__NUM("CACHE_SHARED_LOCK_TIMEOUT", NULL, TC__K_DURATION, TC__C_U64, shared_lock_timeout_ms, 1,
            TC__MAX_LOCK_WAIT_MS, "100ms"),
    TC__STR("CACHE_SHARED_GROUP", TC__K_TEXT, shared_group, TC_STR_MAX - 1, NULL),
    TC__NUM("CACHE_SHARED_MODE", NULL, TC__K_MODE, TC__C_UINT, shared_mode, 0600, 0660, "0600"),
    {"REDIS_URL", NULL, TC__K_URL, TC__C_NONE, 0, 0, 0, 0, 0, NULL},
    TC__STR("REDIS_HOST", TC__K_HOST, redis_host, TC_STR_MAX - 1, NULL),
    TC__NUM("REDIS_PORT", NULL, TC__K_COUNT, TC__C_INT, redis_port, 1, 65535, "6379"),
    TC__STR("REDIS_USERNAME", TC__K_TEXT, redis_username, TC_STR_MAX - 1, NULL),
    TC__STR("REDIS_PASSWORD", TC__K_SECRET, redis_password, TC_STR_MAX - 1, NULL),
    TC__NUM("REDIS_DB", NULL, TC__K_COUNT, TC__C_INT, redis_db, 0, INT32_MAX, "0"),
    TC__NUM("REDIS_USE_TLS", NULL, TC__K_BOOL, TC__C_INT, redis_use_tls, 0, 1, "false"),
    TC__NUM("REDIS_MAX_RETRIES", NULL, TC__K_COUNT, TC__C_INT, redis_max_retries, 0, 100, "3"),
    TC__NUM("REDIS_CONNECT_TIMEOUT", NULL, TC__K_DURATION, TC__C_U64, redis_connect_timeout_ms, 1,
            TC__MAX_TIMEOUT_MS, "5000"),
    TC__NUM("REDIS_COMMAND_TIMEOUT", NULL, TC__K_DURATION, TC__C_U64, redis_command_timeout_ms, 1,
            TC__MAX_TIMEOUT_MS, "1000"),
    TC__NUM("REDIS_DEFAULT_TTL", NULL, TC__K_DURATION, TC__C_U64, redis_default_ttl_ms, 0, TC_TTL_MAX_MS, "5m"),
    TC__STR("REDIS_KEY_PREFIX", TC__K_PREFIX, redis_key_prefix, 200, "tiercache:"),
    TC__NUM("REDIS_POOL_SIZE", NULL, TC__K_AUTO, TC__C_INT, redis_pool_size, 1, 1024, "0"),
    TC__STR("REDIS_TLS_CA_FILE", TC__K_PATH, redis_tls_ca_file, TC_PATH_MAX - 1, NULL),
    TC__STR("REDIS_TLS_SERVER_NAME", TC__K_TEXT, redis_tls_server_name, TC_STR_MAX - 1, NULL),
    TC__STR("REDIS_TLS_CERT_FILE", TC__K_PATH, redis_tls_cert_file, TC_PATH_MAX - 1, NULL),
    TC__STR("REDIS_TLS_KEY_FILE", TC__K_PATH, redis_tls_key_file, TC_PATH_MAX - 1, NULL),
    TC__STR("REDIS_TLS_KEY_PASSWORD", TC__K_SECRET, redis_tls_key_password, TC_STR_MAX - 1, NULL),
    TC__NUM("REDIS_TLS_SKIP_VERIFY", NULL, TC__K_BOOL, TC__C_INT, redis_tls_skip_verify, 0, 1, "false"),
    TC__NUM("CACHE_COHERENCE", NULL, TC__K_BOOL, TC__C_INT, coherence, 0, 1, "true"),
    TC__NUM("CACHE_MAX_STALENESS", NULL, TC__K_DURATION, TC__C_U64, max_staleness_ms, 10, 3600000, "1s"),
    TC__NUM("CACHE_METRICS_ENABLED", NULL, TC__K_BOOL, TC__C_INT, metrics_enabled, 0, 1, "true"),
    TC__NUM("CACHE_DEFENSIVE_INVALIDATION", NULL, TC__K_BOOL, TC__C_INT, defensive_invalidation, 0, 1, "false"),
};
#define TC__NVARS (sizeof tc__vars / sizeof tc__vars[0])
_Static_assert(TC__NVARS <= 128, "explicit_bits holds 128 variables");

/* The caps of 200 bytes need fields of more (the others are derived from the field sizes). */
_Static_assert(TC__FSIZE(shared_name) > 200 && TC__FSIZE(redis_key_prefix) > 200,
               "string fields too small for their caps");

static const tc__var *tc__var_named(const char *name) {
    for (size_t i = 0; i < TC__NVARS; i++)
        if (strcmp(tc__vars[i].name, name) == 0) return &tc__vars[i];
    return NULL;
}

/* The variable called name, or having it as alias; NULL when there is none. */
static const tc__var *tc__var_find(const char *name) {
    for (size_t i = 0; i < TC__NVARS; i++)
        if (strcmp(tc__vars[i].name, name) == 0 ||
            (tc__vars[i].alias != NULL && strcmp(tc__vars[i].alias, name) == 0))
            return &tc__vars[i];
    return NULL;
}

static void tc__mark_explicit(tc__opts *o, const tc__var *v, int on) {
    size_t i = (size_t)(v - tc__vars);
    uint64_t bit = 1ull << (i % 64);
    if (on) o->explicit_bits[i / 64] |= bit;
    else o->explicit_bits[i / 64] &= ~bit;
}

void tc__opts_mark_explicit(tc__opts *o, const char *name) {
    const tc__var *v = tc__var_find(name);
    if (v != NULL) tc__mark_explicit(o, v, 1);
}

int tc__opts_explicit(const tc__opts *o, const char *name) {
    const tc__var *v = tc__var_named(name);
    if (v == NULL) return 0;
    size_t i = (size_t)(v - tc__vars);
    return (o->explicit_bits[i / 64] >> (i % 64)) & 1;
}

/* ------------------------------------------------------------------------ */
/* Field access                                                             */
/* ------------------------------------------------------------------------ */

/* Reads a numeric field. *neg is set for a negative int (only a hand-filled struct has one). */
static uint64_t tc__num_get(const tc__opts *o, const tc__var *v, int *neg) {
    const char *base = (const char *)o + v->off;
    *neg = 0;
    switch (v->ctype) {
    case TC__C_INT: {
        int x;
        memcpy(&x, base, sizeof x);
        if (x < 0) {
            *neg = 1;
            return (uint64_t)(-(int64_t)x);
        }
        return (uint64_t)x;
    }
    case TC__C_UINT: {
        unsigned x;
        memcpy(&x, base, sizeof x);
        return x;
    }
    case TC__C_SIZE: {
        size_t x;
        memcpy(&x, base, sizeof x);
        return x;
    }
    case TC__C_POLICY: {
        tc_policy x;
        memcpy(&x, base, sizeof x);
        int ix = (int)x; /* the enum's type may be unsigned: read it as the int it was set from */
        if (ix < 0) {
            *neg = 1;
            return (uint64_t)(-(int64_t)ix);
        }
        return (uint64_t)ix;
    }
    case TC__C_U64: {
        uint64_t x;
        memcpy(&x, base, sizeof x);
        return x;
    }
    default: return 0;
    }
}

/* Stores a value already checked against the variable's range (so it fits the field). */
static void tc__num_set(tc__opts *o, const tc__var *v, uint64_t n) {
    char *base = (char *)o + v->off;
    switch (v->ctype) {
    case TC__C_INT: {
        int x = (int)n;
        memcpy(base, &x, sizeof x);
        break;
    }
    case TC__C_UINT: {
        unsigned x = (unsigned)n;
        memcpy(base, &x, sizeof x);
        break;
    }
    case TC__C_SIZE: {
        size_t x = (size_t)n;
        memcpy(base, &x, sizeof x);
        break;
    }
    case TC__C_POLICY: {
        tc_policy x = (tc_policy)n;
        memcpy(base, &x, sizeof x);
        break;
    }
    case TC__C_U64: memcpy(base, &n, sizeof n); break;
    default: break;
    }
}

static char *tc__str_field(tc__opts *o, const tc__var *v) { return (char *)o + v->off; }
static const char *tc__str_cfield(const tc__opts *o, const tc__var *v) {
    return (const char *)o + v->off;
}

/* ------------------------------------------------------------------------ */
/* What is accepted                                                         */
/* ------------------------------------------------------------------------ */

#define TC__TIERING_EXPECT                                                                        \
    "expected one of L1, L2, L3, L1L2, L1L3, L2L3, L1L2L3 (any case; the tiers top-down, in the " \
    "order they are read)"
#define TC__POLICY_EXPECT                                                                      \
    "expected an eviction policy: tinylfu (or w-tinylfu), allkeys-lru, allkeys-lfu, "          \
    "allkeys-random, volatile-lru, volatile-lfu, volatile-ttl, volatile-random or noeviction " \
    "(any case; Encore spellings such as AllKeysLRU too)"
#define TC__BOOL_EXPECT "expected a boolean: true/false, 1/0, yes/no or on/off (any case)"
#define TC__MODE_EXPECT \
    "expected 0600 (the owner only) or 0660 (the owner and CACHE_SHARED_GROUP), in octal"
#define TC__TLS_OFF "set while TLS is off (set REDIS_USE_TLS=true or use a rediss:// URL)"
#define TC__URL_FORM "expected redis://[user[:password]@]host[:port][/db], or rediss://... for TLS"

/* Writes what v accepts ("expected ...") into buf. */
static void tc__expect(const tc__var *v, char *buf, size_t len) {
    char a[32], b[32];
    unsigned long long min = v->min, max = v->max;
    switch (v->kind) {
    case TC__K_TIERING: snprintf(buf, len, TC__TIERING_EXPECT); break;
    case TC__K_SIZE:
        if (max == UINT64_MAX)
            snprintf(buf, len,
                     "expected a size of at least %llu byte%s (e.g. 268435456, 256mb, 256MiB)", min,
                     min == 1 ? "" : "s");
        else
            snprintf(buf, len, "expected a size of %llu..%llu bytes (e.g. 1024, 64kb, 1MiB)", min,
                     max);
        break;
    case TC__K_COUNT:
        snprintf(buf, len, "expected %s integer (%llu..%llu)", min > 0 ? "a positive" : "an", min,
                 max);
        break;
    case TC__K_AUTO:
        snprintf(buf, len, "expected 0 (automatic) or an integer (%llu..%llu)", min, max);
        break;
    case TC__K_POW2:
        snprintf(buf, len, "expected 0 (automatic) or a power of two (1..%llu)", max);
        break;
    case TC__K_DURATION:
        if (min == 0)
            snprintf(
                buf, len,
                "expected 0 (no expiry) or a duration up to %s (e.g. 30s, 5m, 1h30m, or a bare "
                "integer of milliseconds)",
                tc__format_duration(b, sizeof b, max));
        else
            snprintf(
                buf, len,
                "expected a duration of %s..%s (e.g. 500ms, 5s, or a bare integer of milliseconds)",
                tc__format_duration(a, sizeof a, min) /* "1ms" */,
                tc__format_duration(b, sizeof b, max));
        break;
    case TC__K_POLICY: snprintf(buf, len, TC__POLICY_EXPECT); break;
    case TC__K_BOOL: snprintf(buf, len, TC__BOOL_EXPECT); break;
    case TC__K_MODE: snprintf(buf, len, TC__MODE_EXPECT); break;
    case TC__K_NAME:
        snprintf(buf, len, "expected 1..%zu characters of A-Z a-z 0-9 . _ -, not starting with .", v->cap);
        break;
    case TC__K_HOST:
        snprintf(
            buf, len,
            "expected a host name or IP address of at most %zu bytes (letters, digits, . - _ : "
            "%%; IPv6 may be in [brackets]; the port goes in REDIS_PORT)",
            v->cap);
        break;
    case TC__K_TEXT:
        snprintf(buf, len, "expected at most %zu printable ASCII characters without spaces",
                 v->cap);
        break;
    case TC__K_PREFIX:
        snprintf(buf, len,
                 "expected at most %zu bytes without control characters (empty: no prefix)",
                 v->cap);
        break;
    case TC__K_PATH:
        snprintf(buf, len, "expected a file path of at most %zu bytes without control characters",
                 v->cap);
        break;
    case TC__K_SECRET: snprintf(buf, len, "expected at most %zu bytes", v->cap); break;
    case TC__K_URL: snprintf(buf, len, TC__URL_FORM); break;
    }
}

/* 1 when n is in v's range. */
static int tc__num_ok(const tc__var *v, uint64_t n) {
    switch (v->kind) {
    case TC__K_AUTO: return n == 0 || (n >= v->min && n <= v->max);
    case TC__K_POW2: return n == 0 || ((n & (n - 1)) == 0 && n <= v->max);
    case TC__K_BOOL: return 1;
    case TC__K_POLICY: return n < TC_POLICY__COUNT;
    case TC__K_MODE: return n == v->min || n == v->max;
    default: return n >= v->min && n <= v->max;
    }
}

/* Checks the n bytes of s against a string variable's rules. Returns 0, or 1 with the
 * reason (ending with what is accepted) in why. */
static int tc__str_check(const tc__var *v, const char *s, size_t n, char *why, size_t whylen) {
    char expect[256], tmp[64], q[16];
    const char *problem = NULL;
    tc__expect(v, expect, sizeof expect);
    if (n > v->cap) {
        snprintf(tmp, sizeof tmp, "too long (%zu bytes)", n);
        problem = tmp;
    } else if (v->kind == TC__K_NAME && n == 0) {
        problem = "empty";
    } else if (v->kind == TC__K_NAME && s[0] == '.') {
        problem = "starts with \".\" (a hidden file)";
    } else {
        int colons = 0;
        for (size_t i = 0; i < n && problem == NULL; i++) {
            unsigned char c = (unsigned char)s[i];
            int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
            int bad = 0;
            switch (v->kind) {
            case TC__K_NAME: bad = !alnum && c != '.' && c != '_' && c != '-'; break;
            case TC__K_HOST:
                colons += c == ':';
                bad = !alnum && (c == 0 || strchr(".-_:%", c) == NULL);
                break;
            case TC__K_TEXT: bad = c <= 0x20 || c >= 0x7f; break;
            case TC__K_PREFIX:
            case TC__K_PATH: bad = c < 0x20 || c == 0x7f; break;
            default: break;
            }
            if (bad) {
                snprintf(tmp, sizeof tmp, "character %s is not allowed",
                         tc__quote(q, sizeof q, (char[2]){(char)c, '\0'}));
                problem = tmp;
            }
        }
        if (problem == NULL && v->kind == TC__K_HOST && colons == 1)
            problem = "looks like host:port";
    }
    if (problem == NULL) return 0;
    snprintf(why, whylen, "%s; %s", problem, expect);
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* Writes `NAME=VALUE: reason` (VALUE already quoted or redacted) and returns TC_ECONFIG. */
static int tc__bad(char *errbuf, size_t errlen, const char *name, const char *shown,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static int tc__bad(char *errbuf, size_t errlen, const char *name, const char *shown,
                   const char *fmt, ...) {
    char reason[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return tc__errf(errbuf, errlen, TC_ECONFIG, "%s=%s: %s", name, shown, reason);
}

/* The value of v as a message may show it: quoted, or "***" for a secret. */
static const char *tc__shown(const tc__var *v, const char *val, char *buf, size_t len) {
    if (v->kind == TC__K_SECRET) {
        snprintf(buf, len, "\"***\"");
        return buf;
    }
    return tc__quote(buf, len, val);
}

/* A copy of a Redis URL with the password part replaced by "***", for messages. The
 * userinfo runs from after "scheme://" (or from the start, when the text has no scheme) to
 * the last '@' (a password may hold an unescaped '@'); the password is what follows its
 * first ':'. Works on malformed text too: it is used to report malformed URLs. */
static void tc__redact_url(const char *url, char *out, size_t len) {
    size_t slen = strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-");
    const char *auth = slen > 0 && strncmp(url + slen, "://", 3) == 0 ? url + slen + 3 : url;
    const char *at = strrchr(auth, '@');
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon == NULL) {
        snprintf(out, len, "%s", url);
        return;
    }
    snprintf(out, len, "%.*s***%s", (int)(colon + 1 - url), url, at);
}

/* ------------------------------------------------------------------------ */
/* Small parsers                                                            */
/* ------------------------------------------------------------------------ */

/* A plain decimal integer: digits only, no sign, no space, fits uint64_t. */
static int tc__parse_uint(const char *s, uint64_t *out) {
    uint64_t v = 0;
    if (*s == '\0') return -1;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') return -1;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int tc__parse_bool(const char *s, int *out) {
    static const char *const yes[] = {"true", "1", "yes", "on"};
    static const char *const no[] = {"false", "0", "no", "off"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

static const char *const tc__tierings[] = {"L1", "L2", "L3", "L1L2", "L1L3", "L2L3", "L1L2L3"};

/* Writes the tiering of o as text ("L1L2"); an id that is not a tier shows as "?". */
static void tc__tiering_text(const tc__opts *o, char *buf, size_t len) {
    size_t at = 0;
    buf[0] = '\0';
    for (int i = 0; i < o->ntiers && i < TC_MAX_TIERS && at + 3 < len; i++) {
        int t = o->tiers[i];
        at += (size_t)snprintf(buf + at, len - at, "%s",
                               t >= TC_TIER_L1 && t <= TC_TIER_L3 ? tc_tier_name(t) : "?");
    }
}

/* Decodes %XX escapes of the n bytes at s into out (cap bytes, NUL-terminated). Returns 0,
 * -1 on a malformed escape or an encoded NUL, -2 when the result does not fit. */
static int tc__pct_decode(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int v = 0;
            if (i + 2 >= n) return -1;
            for (int k = 1; k <= 2; k++) {
                char h = s[i + (size_t)k];
                v <<= 4;
                if (h >= '0' && h <= '9')
                    v |= h - '0';
                else if (h >= 'a' && h <= 'f')
                    v |= h - 'a' + 10;
                else if (h >= 'A' && h <= 'F')
                    v |= h - 'A' + 10;
                else
                    return -1;
            }
            if (v == 0) return -1;
            c = (unsigned char)v;
            i += 2;
        }
        if (o + 1 >= cap) return -2;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* REDIS_URL                                                                */
/* ------------------------------------------------------------------------ */

/* Parses redis://[user[:password]@]host[:port][/db] (rediss:// for TLS) into the REDIS_*
 * fields of o. Nothing is stored unless the whole URL is valid. An empty URL does nothing. */
static int tc__apply_url(tc__opts *o, const char *name, const char *url, char *errbuf,
                         size_t errlen) {
    char red[TC__QUOTE_BUF], shown[TC__QUOTE_BUF], why[512], chk[400];
    char host[TC_STR_MAX], user[TC_STR_MAX], pass[TC_STR_MAX];
    int tls, have_user = 0, have_pass = 0, port = -1, db = -1;
    const tc__var *vhost = tc__var_named("REDIS_HOST"), *vuser = tc__var_named("REDIS_USERNAME");

    if (*url == '\0') return 0;
    tc__redact_url(url, red, sizeof red);
    tc__quote(shown, sizeof shown, red);
#define TC__URL_BAD(...)                                                          \
    do {                                                                          \
        snprintf(why, sizeof why, __VA_ARGS__);                                   \
        return tc__bad(errbuf, errlen, name, shown, "%s; %s", why, TC__URL_FORM); \
    } while (0)

    const char *p;
    if (strncasecmp(url, "redis://", 8) == 0) {
        tls = 0;
        p = url + 8;
    } else if (strncasecmp(url, "rediss://", 9) == 0) {
        tls = 1;
        p = url + 9;
    } else {
        TC__URL_BAD("unsupported scheme");
    }

    /* userinfo: up to the last '@' */
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = (size_t)((colon != NULL ? colon : at) - p);
        int rc = tc__pct_decode(p, ulen, user, sizeof user);
        if (rc == -1) TC__URL_BAD("malformed percent-encoding in the user name");
        if (rc == -2) TC__URL_BAD("user name longer than %zu bytes", vuser->cap);
        if (tc__str_check(vuser, user, strlen(user), chk, sizeof chk))
            TC__URL_BAD("user name: %s", chk);
        have_user = 1;
        if (colon != NULL) {
            rc = tc__pct_decode(colon + 1, (size_t)(at - colon - 1), pass, sizeof pass);
            if (rc == -1) TC__URL_BAD("malformed percent-encoding in the password");
            if (rc == -2) TC__URL_BAD("password longer than %d bytes", TC_STR_MAX - 1);
            have_pass = 1;
        }
        p = at + 1;
    }
    if (strpbrk(p, "?#") != NULL) TC__URL_BAD("query parameters and fragments are not supported");

    /* host */
    const char *hend;
    if (*p == '[') {
        const char *close = strchr(p, ']');
        if (close == NULL) TC__URL_BAD("'[' without ']' around an IPv6 address");
        if ((size_t)(close - p - 1) >= sizeof host) TC__URL_BAD("host too long");
        memcpy(host, p + 1, (size_t)(close - p - 1));
        host[close - p - 1] = '\0';
        if (strchr(host, ':') == NULL) TC__URL_BAD("[brackets] are for IPv6 addresses only");
        hend = close + 1;
        if (*hend != '\0' && *hend != ':' && *hend != '/') TC__URL_BAD("unexpected text after ']'");
    } else {
        size_t alen = strcspn(p, "/"); /* host[:port] */
        const char *c1 = memchr(p, ':', alen);
        if (c1 != NULL && memchr(c1 + 1, ':', alen - (size_t)(c1 + 1 - p)) != NULL)
            TC__URL_BAD("an IPv6 address must be in [brackets]");
        hend = p + strcspn(p, ":/");
        if ((size_t)(hend - p) >= sizeof host) TC__URL_BAD("host too long");
        memcpy(host, p, (size_t)(hend - p));
        host[hend - p] = '\0';
    }
    if (host[0] == '\0') TC__URL_BAD("no host");
    if (tc__str_check(vhost, host, strlen(host), chk, sizeof chk)) TC__URL_BAD("host: %s", chk);
    p = hend;

    /* port */
    if (*p == ':') {
        char digits[16];
        size_t n = strcspn(p + 1, "/");
        uint64_t v;
        if (n == 0 || n >= sizeof digits) TC__URL_BAD("port must be 1..65535");
        memcpy(digits, p + 1, n);
        digits[n] = '\0';
        if (tc__parse_uint(digits, &v) != 0 || v < 1 || v > 65535)
            TC__URL_BAD("port must be 1..65535");
        port = (int)v;
        p += 1 + n;
    }

    /* database */
    if (*p == '/') {
        uint64_t v;
        p++;
        if (*p != '\0') {
            if (tc__parse_uint(p, &v) != 0 || v > INT32_MAX)
                TC__URL_BAD("database must be 0..%d", INT32_MAX);
            db = (int)v;
        }
    }
#undef TC__URL_BAD

    snprintf(o->redis_host, sizeof o->redis_host, "%s", host);
    o->redis_use_tls = tls;
    if (port >= 0) o->redis_port = port;
    if (db >= 0) o->redis_db = db;
    if (have_user) snprintf(o->redis_username, sizeof o->redis_username, "%s", user);
    if (have_pass) snprintf(o->redis_password, sizeof o->redis_password, "%s", pass);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Applying one variable                                                    */
/* ------------------------------------------------------------------------ */

/* Parses val, the value of the variable `name` (v's name or its alias), into o. Returns 0 or
 * TC_ECONFIG with the message in errbuf. */
static int tc__apply(tc__opts *o, const tc__var *v, const char *name, const char *val,
                     char *errbuf, size_t errlen) {
    char shown[TC__QUOTE_BUF], expect[512], why[512];
    uint64_t n = 0;
    if (v->kind == TC__K_URL) return tc__apply_url(o, name, val, errbuf, errlen);
    tc__shown(v, val, shown, sizeof shown);
    tc__expect(v, expect, sizeof expect);

    switch (v->kind) {
    case TC__K_TIERING:
        for (size_t i = 0; i < sizeof tc__tierings / sizeof tc__tierings[0]; i++) {
            if (strcasecmp(val, tc__tierings[i]) == 0) {
                o->ntiers = 0;
                for (const char *c = tc__tierings[i]; *c != '\0'; c += 2)
                    o->tiers[o->ntiers++] = (tc_tier_id)(c[1] - '0');
                for (int k = o->ntiers; k < TC_MAX_TIERS; k++)
                    o->tiers[k] = TC_TIER_NONE;
                return 0;
            }
        }
        return tc__bad(errbuf, errlen, name, shown, "%s", expect);

    case TC__K_SIZE:
        if (tc__size_parse(val, &n, why, sizeof why) != 0)
            return tc__bad(errbuf, errlen, name, shown, "%s", why);
        goto range;
    case TC__K_DURATION:
        if (tc__duration_parse(val, &n, why, sizeof why) != 0)
            return tc__bad(errbuf, errlen, name, shown, "%s", why);
        goto range;
    case TC__K_COUNT:
    case TC__K_AUTO:
    case TC__K_POW2:
        if (tc__parse_uint(val, &n) != 0) return tc__bad(errbuf, errlen, name, shown, "%s", expect);
    range:
        if (!tc__num_ok(v, n)) return tc__bad(errbuf, errlen, name, shown, "%s", expect);
        tc__num_set(o, v, n);
        return 0;

    case TC__K_POLICY: {
        tc_policy p;
        if (tc_policy_parse(val, &p) != 0)
            return tc__bad(errbuf, errlen, name, shown, "%s", expect);
        tc__num_set(o, v, (uint64_t)p);
        return 0;
    }
    case TC__K_BOOL: {
        int b;
        if (tc__parse_bool(val, &b) != 0) return tc__bad(errbuf, errlen, name, shown, "%s", expect);
        tc__num_set(o, v, (uint64_t)b);
        return 0;
    }
    case TC__K_MODE: {
        /* three or four octal digits ("660", "0660"), nothing else */
        size_t len = strlen(val);
        n = 0;
        if (len < 3 || len > 4 || (len == 4 && val[0] != '0'))
            return tc__bad(errbuf, errlen, name, shown, "%s", expect);
        for (size_t i = 0; i < len; i++) {
            if (val[i] < '0' || val[i] > '7')
                return tc__bad(errbuf, errlen, name, shown, "%s", expect);
            n = n * 8 + (uint64_t)(val[i] - '0');
        }
        goto range;
    }

    case TC__K_HOST: {
        /* "[::1]" is accepted for an IPv6 literal, as in a URL, and stored without brackets */
        size_t len = strlen(val);
        const char *s = val;
        if (len >= 2 && val[0] == '[' && val[len - 1] == ']') {
            s = val + 1;
            len -= 2;
            if (memchr(s, ':', len) == NULL)
                return tc__bad(errbuf, errlen, name, shown,
                               "[brackets] are for IPv6 addresses only; %s", expect);
        }
        if (tc__str_check(v, s, len, why, sizeof why))
            return tc__bad(errbuf, errlen, name, shown, "%s", why);
        memcpy(tc__str_field(o, v), s, len);
        tc__str_field(o, v)[len] = '\0';
        return 0;
    }
    case TC__K_NAME:
    case TC__K_TEXT:
    case TC__K_PREFIX:
    case TC__K_PATH:
    case TC__K_SECRET:
        if (tc__str_check(v, val, strlen(val), why, sizeof why))
            return tc__bad(errbuf, errlen, name, shown, "%s", why);
        memcpy(tc__str_field(o, v), val, strlen(val) + 1);
        return 0;

    case TC__K_URL: break; /* handled above */
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

/* Restores v's field in o to the table's default (zero or empty without one). */
static void tc__reset(tc__opts *o, const tc__var *v) {
    if (v->kind == TC__K_URL) return; /* no field of its own */
    if (v->ctype == TC__C_STR) tc__str_field(o, v)[0] = '\0';
    else if (v->ctype != TC__C_NONE) tc__num_set(o, v, 0);
    if (v->def != NULL) {
        int rc = tc__apply(o, v, v->name, v->def, NULL, 0);
        (void)rc; /* a table default always parses: test_config checks every row */
    }
    tc__mark_explicit(o, v, 0);
}

void tc__opts_init(tc__opts *o) {
    memset(o, 0, sizeof *o);
    for (size_t i = 0; i < TC__NVARS; i++) tc__reset(o, &tc__vars[i]);
}

int tc__opts_set(tc__opts *o, const char *name, const char *value, char *errbuf, size_t errlen) {
    const tc__var *v = name != NULL ? tc__var_find(name) : NULL;
    if (v == NULL) {
        char shown[TC__QUOTE_BUF];
        return tc__errf(errbuf, errlen, TC_ECONFIG, "%s is not a tiercache variable (docs/CONFIGURATION.md lists them)",
                        tc__quote(shown, sizeof shown, name != NULL ? name : "(null)"));
    }
    if (value == NULL) {
        tc__reset(o, v);
        return 0;
    }
    int rc = tc__apply(o, v, name, value, errbuf, errlen);
    if (rc == 0) tc__mark_explicit(o, v, 1);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* The public configuration object                                          */
/* ------------------------------------------------------------------------ */

struct tc_config {
    tc__opts o;
    tc__strbuf warnings; /* one line per warning of tc_config_from_env() */
    size_t nwarnings;
};

const tc__opts *tc__config_opts(const tc_config *cfg) { return &cfg->o; }

TC_EXPORT int tc_config_new(tc_config **out) {
    if (out == NULL) return TC_EINVAL;
    tc_config *cfg = calloc(1, sizeof *cfg);
    *out = cfg;
    if (cfg == NULL) return TC_ENOMEM;
    tc__opts_init(&cfg->o);
    tc__sb_init(&cfg->warnings);
    return 0;
}

TC_EXPORT void tc_config_free(tc_config *cfg) {
    if (cfg == NULL) return;
    tc__sb_free(&cfg->warnings);
    free(cfg);
}

/* Applied to a copy first, so that a failure leaves cfg as it was. */
TC_EXPORT int tc_config_set(tc_config *cfg, const char *name, const char *value, char *errbuf, size_t errlen) {
    if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
    if (cfg == NULL || name == NULL)
        return tc__errf(errbuf, errlen, TC_EINVAL, "tc_config_set: %s is NULL", cfg == NULL ? "cfg" : "name");
    tc__opts tmp = cfg->o;
    int rc = tc__opts_set(&tmp, name, value, errbuf, errlen);
    if (rc == 0) cfg->o = tmp;
    return rc;
}

TC_EXPORT void tc_config_set_log(tc_config *cfg, tc_log_fn fn, void *userdata) {
    if (cfg == NULL) return;
    cfg->o.log_fn = fn;
    cfg->o.log_userdata = userdata;
}

/* Edit distance of two short names, for "did you mean"; capped at 9 (longer names than 63
 * bytes count as far). */
static unsigned tc__distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 9;
    unsigned row[64];
    for (size_t j = 0; j <= lb; j++) row[j] = (unsigned)j;
    for (size_t i = 1; i <= la; i++) {
        unsigned diag = row[0];
        row[0] = (unsigned)i;
        for (size_t j = 1; j <= lb; j++) {
            unsigned up = row[j];
            unsigned best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best) best = up + 1;
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb] > 9 ? 9 : row[lb];
}

static void tc__warn(tc_config *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tc__warn(tc_config *cfg, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    tc__sb_puts(&cfg->warnings, line);
    tc__sb_putc(&cfg->warnings, '\n');
    cfg->nwarnings++;
}

/* Families of names that are ours even when far from every variable. */
static const char *const tc__our_prefixes[] = {"CACHE_MEMORY_", "CACHE_SHARED_", "CACHE_ENCORE_", "REDIS_TLS_"};

/* Warns about environment variables that look like ours but are not: a name of the CACHE_ or
 * REDIS_ family within two edits of a variable (CACHE_TEIRING), or any name in one of our own
 * families (CACHE_MEMORY_...). Other CACHE_* and REDIS_* names belong to other software and
 * are left alone. Work: the environment's size times the table's. */
static void tc__warn_unknown(tc_config *cfg) {
    extern char **environ;
    for (char **e = environ; e != NULL && *e != NULL; e++) {
        char name[128];
        size_t n = strcspn(*e, "=");
        if (n == 0 || n >= sizeof name) continue;
        memcpy(name, *e, n);
        name[n] = '\0';
        if (strncmp(name, "CACHE_", 6) != 0 && strncmp(name, "REDIS_", 6) != 0) continue;
        if (tc__var_find(name) != NULL) continue;
        const tc__var *near = NULL;
        unsigned best = 3;
        for (size_t i = 0; i < TC__NVARS; i++) {
            unsigned d = tc__distance(name, tc__vars[i].name);
            if (d < best) {
                best = d;
                near = &tc__vars[i];
            }
        }
        int ours = near != NULL;
        for (size_t k = 0; k < sizeof tc__our_prefixes / sizeof tc__our_prefixes[0]; k++)
            ours |= strncmp(name, tc__our_prefixes[k], strlen(tc__our_prefixes[k])) == 0;
        if (!ours) continue;
        if (near != NULL)
            tc__warn(cfg, "%s is set but is not a tiercache variable (did you mean %s?); it is ignored", name,
                     near->name);
        else
            tc__warn(cfg, "%s is set but is not a tiercache variable (docs/CONFIGURATION.md lists them); it is ignored",
                     name);
    }
}

TC_EXPORT int tc_config_from_env(tc_config *cfg, char *errbuf, size_t errlen) {
    if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
    if (cfg == NULL) return tc__errf(errbuf, errlen, TC_EINVAL, "tc_config_from_env: cfg is NULL");
    tc__sb_free(&cfg->warnings);
    cfg->nwarnings = 0;
    for (size_t i = 0; i < TC__NVARS; i++) {
        const tc__var *v = &tc__vars[i];
        const char *name = v->name, *val = getenv(name);
        const char *aval = v->alias != NULL ? getenv(v->alias) : NULL;
        if (val != NULL && aval != NULL)
            tc__warn(cfg, "%s and its old name %s are both set: %s is used, %s is ignored", v->name, v->alias,
                     v->name, v->alias);
        if (val == NULL && aval != NULL) {
            val = aval;
            name = v->alias;
        }
        if (val == NULL) continue;
        int rc = tc__apply(&cfg->o, v, name, val, errbuf, errlen);
        if (rc != 0) return rc;
        tc__mark_explicit(&cfg->o, v, 1);
    }
    tc__warn_unknown(cfg);
    return tc__opts_validate(&cfg->o, errbuf, errlen);
}

int tc__opts_from_env(tc__opts *o, char *errbuf, size_t errlen) {
    if (o == NULL) return tc__errf(errbuf, errlen, TC_EINVAL, "tc__opts_from_env: o is NULL");
    tc_config tmp;
    tc__opts_init(&tmp.o);
    tc__sb_init(&tmp.warnings);
    tmp.nwarnings = 0;
    int rc = tc_config_from_env(&tmp, errbuf, errlen);
    tc__sb_free(&tmp.warnings);
    *o = tmp.o;
    return rc;
}

TC_EXPORT int tc_config_warnings(const tc_config *cfg, char **out, size_t *count) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (cfg == NULL) return TC_EINVAL;
    if (cfg->warnings.oom) return TC_ENOMEM;
    *out = strdup(cfg->warnings.data != NULL ? cfg->warnings.data : "");
    if (*out == NULL) return TC_ENOMEM;
    if (count != NULL) *count = cfg->nwarnings;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

static int tc__validate_tiering(const tc__opts *o, char *errbuf, size_t errlen) {
    char text[32], shown[64];
    tc__tiering_text(o, text, sizeof text);
    tc__quote(shown, sizeof shown, text);
    if (o->ntiers < 1 || o->ntiers > TC_MAX_TIERS)
        return tc__bad(errbuf, errlen, "CACHE_TIERING", shown,
                       "%d tiers (ntiers must be 1..%d); %s", o->ntiers, TC_MAX_TIERS,
                       TC__TIERING_EXPECT);
    for (int i = 0; i < o->ntiers; i++) {
        int t = o->tiers[i];
        if (t < TC_TIER_L1 || t > TC_TIER_L3)
            return tc__bad(errbuf, errlen, "CACHE_TIERING", shown,
                           "tiers[%d] is %d, not a tier; %s", i, t, TC__TIERING_EXPECT);
        for (int j = 0; j < i; j++) {
            if (o->tiers[j] == o->tiers[i])
                return tc__bad(errbuf, errlen, "CACHE_TIERING", shown, "tier %s appears twice; %s",
                               tc_tier_name(t), TC__TIERING_EXPECT);
        }
        if (i > 0 && o->tiers[i - 1] > o->tiers[i])
            return tc__bad(errbuf, errlen, "CACHE_TIERING", shown,
                           "tiers must be listed top-down (L1 before L2 before L3); %s",
                           TC__TIERING_EXPECT);
    }
    return 0;
}

int tc__opts_validate(const tc__opts *opt, char *errbuf, size_t errlen) {
    char shown[TC__QUOTE_BUF], expect[512], why[512], text[64];
    if (opt == NULL) return tc__errf(errbuf, errlen, TC_EINVAL, "options are NULL");

    for (size_t i = 0; i < TC__NVARS; i++) {
        const tc__var *v = &tc__vars[i];
        int neg;
        switch (v->kind) {
        case TC__K_TIERING: {
            int rc = tc__validate_tiering(opt, errbuf, errlen);
            if (rc != 0) return rc;
            break;
        }
        case TC__K_URL: break;
        case TC__K_SIZE:
        case TC__K_COUNT:
        case TC__K_AUTO:
        case TC__K_POW2:
        case TC__K_DURATION:
        case TC__K_POLICY:
        case TC__K_BOOL:
        case TC__K_MODE: {
            uint64_t n = tc__num_get(opt, v, &neg);
            if (!neg && tc__num_ok(v, n)) break;
            if (v->kind == TC__K_MODE)
                snprintf(text, sizeof text, "%04llo", (unsigned long long)n);
            else
                snprintf(text, sizeof text, "%s%llu%s", neg ? "-" : "", (unsigned long long)n,
                         v->kind == TC__K_DURATION ? "ms" : "");
            tc__expect(v, expect, sizeof expect);
            return tc__bad(errbuf, errlen, v->name, tc__quote(shown, sizeof shown, text), "%s",
                           expect);
        }
        default: {
            /* a string field: NUL-terminated within its array, then the variable's rules */
            const char *s = tc__str_cfield(opt, v);
            size_t n = strnlen(s, v->fsize);
            if (n == v->fsize) {
                char head[64];
                snprintf(head, sizeof head, "%.40s", s);
                return tc__bad(errbuf, errlen, v->name,
                               v->kind == TC__K_SECRET ? "\"***\""
                                                       : tc__quote(shown, sizeof shown, head),
                               "not NUL-terminated within its %zu-byte field", v->fsize);
            }
            if (tc__str_check(v, s, n, why, sizeof why))
                return tc__bad(errbuf, errlen, v->name, tc__shown(v, s, shown, sizeof shown), "%s",
                               why);
            break;
        }
        }
    }

    /* Relations between fields. */
    for (int i = 0; i < opt->ntiers; i++) {
        if (opt->tiers[i] == TC_TIER_L3 && opt->redis_host[0] == '\0') {
            tc__tiering_text(opt, text, sizeof text);
            return tc__errf(errbuf, errlen, TC_ECONFIG,
                            "CACHE_TIERING=%s needs REDIS_HOST or REDIS_URL", text);
        }
    }
    if ((opt->shared_group[0] != '\0') != (opt->shared_mode == 0660)) {
        snprintf(text, sizeof text, "%04o", opt->shared_mode);
        if (opt->shared_group[0] == '\0')
            return tc__bad(errbuf, errlen, "CACHE_SHARED_MODE", tc__quote(shown, sizeof shown, text),
                           "0660 shares the segment with a group: name it in CACHE_SHARED_GROUP");
        return tc__bad(errbuf, errlen, "CACHE_SHARED_GROUP",
                       tc__quote(shown, sizeof shown, opt->shared_group),
                       "set CACHE_SHARED_MODE=0660 too (with mode %04o the group gets no access)",
                       opt->shared_mode);
    }
    if ((opt->redis_tls_cert_file[0] != '\0') != (opt->redis_tls_key_file[0] != '\0')) {
        int cert = opt->redis_tls_cert_file[0] != '\0';
        return tc__bad(
            errbuf, errlen, cert ? "REDIS_TLS_CERT_FILE" : "REDIS_TLS_KEY_FILE",
            tc__quote(shown, sizeof shown,
                      cert ? opt->redis_tls_cert_file : opt->redis_tls_key_file),
            "%s must be set too (a client certificate needs its key, and a key its certificate)",
            cert ? "REDIS_TLS_KEY_FILE" : "REDIS_TLS_CERT_FILE");
    }
    if (!opt->redis_use_tls) {
        static const char *const tls_only[] = {"REDIS_TLS_CA_FILE", "REDIS_TLS_SERVER_NAME",
                                               "REDIS_TLS_CERT_FILE", "REDIS_TLS_KEY_FILE"};
        for (size_t i = 0; i < sizeof tls_only / sizeof tls_only[0]; i++) {
            const tc__var *v = tc__var_named(tls_only[i]);
            const char *s = tc__str_cfield(opt, v);
            if (s[0] != '\0')
                return tc__bad(errbuf, errlen, v->name, tc__quote(shown, sizeof shown, s), "%s",
                               TC__TLS_OFF);
        }
        if (opt->redis_tls_skip_verify)
            return tc__bad(errbuf, errlen, "REDIS_TLS_SKIP_VERIFY", "\"true\"", "%s", TC__TLS_OFF);
    }
    if (errbuf != NULL && errlen > 0) errbuf[0] = '\0';
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Describe                                                                 */
/* ------------------------------------------------------------------------ */

/* Appends the n bytes of s with control characters and '\\' written as \\xNN, so that a value
 * never breaks the one-line-per-variable format. */
static void tc__out_text(tc__strbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || c == '\\') tc__sb_printf(b, "\\x%02x", c);
        else tc__sb_putc(b, (char)c);
    }
}

/* Appends s percent-encoded (everything but RFC 3986's unreserved characters). */
static void tc__out_pct(tc__strbuf *b, const char *s) {
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c) != NULL)
            tc__sb_putc(b, (char)c);
        else
            tc__sb_printf(b, "%%%02X", c);
    }
}

/* Appends the value of v in opt as the summary shows it. */
static void tc__describe_var(tc__strbuf *b, const tc__opts *opt, const tc__var *v) {
    int neg;
    switch (v->kind) {
    case TC__K_TIERING: {
        char text[32];
        tc__tiering_text(opt, text, sizeof text);
        tc__sb_puts(b, text);
        break;
    }
    case TC__K_URL: {
        /* The URL equivalent to the resolved fields; the password only as "***". */
        size_t hl = strnlen(opt->redis_host, sizeof opt->redis_host);
        if (hl == 0 || hl == sizeof opt->redis_host) break;
        tc__sb_printf(b, "%s://", opt->redis_use_tls ? "rediss" : "redis");
        int user = opt->redis_username[0] != '\0' && strnlen(opt->redis_username, TC_STR_MAX) < TC_STR_MAX;
        int pass = opt->redis_password[0] != '\0';
        if (user) tc__out_pct(b, opt->redis_username);
        if (pass) tc__sb_puts(b, ":***");
        if (user || pass) tc__sb_putc(b, '@');
        int v6 = memchr(opt->redis_host, ':', hl) != NULL;
        if (v6) tc__sb_putc(b, '[');
        tc__out_text(b, opt->redis_host, hl);
        if (v6) tc__sb_putc(b, ']');
        tc__sb_printf(b, ":%d/%d", opt->redis_port, opt->redis_db);
        break;
    }
    case TC__K_SIZE:
    case TC__K_COUNT:
    case TC__K_AUTO:
    case TC__K_POW2: {
        uint64_t n = tc__num_get(opt, v, &neg);
        tc__sb_printf(b, "%s%llu", neg ? "-" : "", (unsigned long long)n);
        break;
    }
    case TC__K_DURATION: tc__sb_printf(b, "%llums", (unsigned long long)tc__num_get(opt, v, &neg)); break;
    case TC__K_MODE: tc__sb_printf(b, "%04llo", (unsigned long long)tc__num_get(opt, v, &neg)); break;
    case TC__K_POLICY: {
        tc_policy p;
        memcpy(&p, (const char *)opt + v->off, sizeof p);
        tc__sb_puts(b, tc_policy_name(p));
        break;
    }
    case TC__K_BOOL: {
        int x;
        memcpy(&x, (const char *)opt + v->off, sizeof x);
        tc__sb_puts(b, x ? "true" : "false");
        break;
    }
    case TC__K_SECRET:
        if (tc__str_cfield(opt, v)[0] != '\0') tc__sb_puts(b, "***");
        break;
    default: {
        const char *s = tc__str_cfield(opt, v);
        tc__out_text(b, s, strnlen(s, v->fsize));
        break;
    }
    }
}

int tc__opts_describe(const tc__opts *o, char **out) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (o == NULL) return TC_EINVAL;
    tc__strbuf b = TC__STRBUF_INIT;
    for (size_t i = 0; i < TC__NVARS; i++) {
        tc__sb_printf(&b, "%s=", tc__vars[i].name);
        tc__describe_var(&b, o, &tc__vars[i]);
        tc__sb_putc(&b, '\n');
    }
    return tc__sb_finish(&b, out);
}

/* Reads only *cfg: safe from several threads as long as nobody changes it meanwhile. */
TC_EXPORT int tc_config_describe(const tc_config *cfg, char **out) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (cfg == NULL) return TC_EINVAL;
    return tc__opts_describe(&cfg->o, out);
}

TC_EXPORT int tc_config_get(const tc_config *cfg, const char *name, char *buf, size_t len) {
    const tc__var *v = name != NULL ? tc__var_find(name) : NULL;
    if (cfg == NULL || v == NULL || (buf == NULL && len > 0)) return TC_EINVAL;
    tc__strbuf b = TC__STRBUF_INIT;
    tc__sb_puts(&b, "");
    tc__describe_var(&b, &cfg->o, v);
    char *text;
    int rc = tc__sb_finish(&b, &text);
    if (rc != 0) return rc;
    size_t n = strlen(text);
    if (len > 0) snprintf(buf, len, "%s", text);
    free(text);
    return n < len ? 0 : TC_ENOBUFS;
}
