/*
 * tiercache.h -- the public API of tiercache, a multi-tier cache.
 *
 * One API over up to three tiers, read in order and written through:
 *
 *   L1  memory   in this process; sharded, bounded by entries and bytes, W-TinyLFU by default
 *   L2  shared   a named segment in shared memory, shared by every process on the host
 *   L3  redis    a Redis/Valkey server over TCP or TLS
 *
 * Which tiers are used is set by CACHE_TIERING (L1, L2, L3, L1L2, L1L3, L2L3, L1L2L3).
 * A read that hits a lower tier back-fills the tiers above it with the entry's *remaining*
 * TTL. Writes, deletes and clears go to every tier.
 *
 * This header is the documentation: what is not declared here is not API.
 *
 * Conventions
 *   - Every function that can fail returns 0 or a negative TC_E* code. A miss is TC_EMISS,
 *     which is not an error (tc_is_error() tells the two apart).
 *   - Keys and values are opaque bytes; NUL is allowed; an empty value is a value.
 *   - The cache copies every key and value it is given; it never keeps a caller's pointer.
 *   - Memory the library returns is freed by the caller with tc_free().
 *   - A tc_cache handle is safe to use from any number of threads at once; a tc_options
 *     struct is plain data, owned by the caller, and not synchronised.
 *   - The library never prints and never aborts on out-of-memory; it reports through return
 *     codes and through the log callback, when the application installs one.
 *   - A child process after fork() must open its own handle; it must not use its parent's.
 *
 * Versioning: TC_VERSION_* below. Within a major version, functions keep their signatures
 * (a changed interface gets a new name, never a changed signature) and structs only grow
 * at their end.
 */
#ifndef TIERCACHE_H
#define TIERCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_VERSION_MAJOR 0
#define TC_VERSION_MINOR 1
#define TC_VERSION_PATCH 0
#define TC_VERSION_STRING "0.1.0"

#if defined(_WIN32)
#define TC_EXPORT
#elif defined(TC_BUILDING_LIBRARY)
#define TC_EXPORT __attribute__((visibility("default")))
#else
#define TC_EXPORT
#endif

/* ======================================================================== */
/* Errors                                                                   */
/* ======================================================================== */

/* XX(NAME, value, message). One list generates the codes, tc_strerror() and tc_err_name(). */
#define TC_ERRNO_MAP(XX)                                                                  \
    XX(EMISS, -1, "key not found")                                                        \
    XX(EINVAL, -2, "invalid argument")                                                    \
    XX(ENOMEM, -3, "out of memory")                                                       \
    XX(EKEYTOOBIG, -4, "key is longer than the configured maximum")                       \
    XX(EVALTOOBIG, -5, "value is longer than the configured maximum")                     \
    XX(ENOBUFS, -6, "buffer too small for the value")                                     \
    XX(EFULL, -7, "cache is full and its eviction policy is noeviction")                  \
    XX(ECONFIG, -8, "invalid configuration")                                              \
    XX(ENOTIER, -9, "tier not available in this build")                                  \
    XX(ETIER, -10, "a tier failed")                                                       \
    XX(EPARTIAL, -11, "the operation failed on some tiers but not all")                   \
    XX(ELOADER, -12, "the loader failed")                                                 \
    XX(ETIMEDOUT, -13, "operation timed out")                                             \
    XX(EIO, -14, "input/output error")                                                    \
    XX(EPROTO, -15, "protocol error")                                                     \
    XX(EAUTH, -16, "authentication failed")                                               \
    XX(ETLS, -17, "TLS error")                                                            \
    XX(ECONN, -18, "connection failed")                                                   \
    XX(EUNAVAIL, -19, "tier unavailable (circuit open)")                                  \
    XX(ECORRUPT, -20, "data is corrupt")                                                  \
    XX(EVERSION, -21, "incompatible layout version or geometry")                          \
    XX(EEXIST, -22, "already exists")                                                     \
    XX(ENOENT, -23, "does not exist")                                                     \
    XX(EPERM, -24, "permission denied")                                                   \
    XX(ETOOLARGE, -25, "entry larger than the tier can ever hold")

typedef enum {
    TC_OK = 0,
#define TC__ERR_ENUM(name, val, msg) TC_##name = (val),
    TC_ERRNO_MAP(TC__ERR_ENUM)
#undef TC__ERR_ENUM
    TC__ERR_MIN = -26
} tc_err;

/* A static message for a code ("key not found"); unknown codes give "unknown error". */
TC_EXPORT const char *tc_strerror(int err);
/* The code's name ("TC_EMISS"). Static string. */
TC_EXPORT const char *tc_err_name(int err);
/* 1 when err is an error: negative and not TC_EMISS. */
TC_EXPORT int tc_is_error(int err);

/* ======================================================================== */
/* Tiers and options                                                        */
/* ======================================================================== */

typedef enum { TC_TIER_NONE = 0, TC_TIER_L1 = 1, TC_TIER_L2 = 2, TC_TIER_L3 = 3 } tc_tier_id;
#define TC_MAX_TIERS 3

/* The name of a tier id ("L1", "L2", "L3", "none"). Static string. */
TC_EXPORT const char *tc_tier_name(int tier);

/* Eviction policies, one vocabulary for every tier (Redis's names; Encore's spellings such as
 * "AllKeysLRU" are accepted by tc_policy_parse too). TC_POLICY_TINYLFU is the L1 default. */
typedef enum {
    TC_POLICY_TINYLFU = 0,   /* W-TinyLFU: admission by frequency sketch, scan resistant */
    TC_POLICY_ALLKEYS_LRU,   /* evict the least recently used key (sampled, as Redis) */
    TC_POLICY_ALLKEYS_LFU,   /* evict the least frequently used key (Redis's log counter) */
    TC_POLICY_ALLKEYS_RANDOM,
    TC_POLICY_VOLATILE_LRU,  /* volatile-*: only keys with a TTL are candidates */
    TC_POLICY_VOLATILE_LFU,
    TC_POLICY_VOLATILE_TTL,  /* evict the key that expires soonest */
    TC_POLICY_VOLATILE_RANDOM,
    TC_POLICY_NOEVICTION,    /* a set into a full cache fails with TC_EFULL */
    TC_POLICY__COUNT
} tc_policy;

/* Parses a policy name, case-insensitively: "tinylfu", "w-tinylfu", Redis's "allkeys-lru" ...
 * "noeviction", and Encore's "AllKeysLRU" ... "NoEviction". Returns 0 or TC_EINVAL. */
TC_EXPORT int tc_policy_parse(const char *s, tc_policy *out);
/* The canonical (Redis-style) name of a policy. Static string. */
TC_EXPORT const char *tc_policy_name(tc_policy p);

/* Log levels for the log callback. */
typedef enum { TC_LOG_ERROR = 0, TC_LOG_WARN = 1, TC_LOG_INFO = 2, TC_LOG_DEBUG = 3 } tc_log_level;

/* Called for diagnostics; msg is valid only during the call. May be called from any thread,
 * including several at once; the callback must be thread-safe. */
typedef void (*tc_log_fn)(void *userdata, tc_log_level level, const char *msg);

#define TC_STR_MAX 256
#define TC_PATH_MAX 1024

/* Configuration of a cache. Plain data, owned by the caller: fill it with tc_options_init()
 * (defaults) or tc_options_from_env() (defaults overridden by the environment), adjust
 * fields, then pass it to tc_open(). Sizes are bytes, durations milliseconds. A TTL of 0 in
 * a *_default_ttl_ms field means "no expiry". The environment variable of each field is
 * named beside it; the README's configuration table gives defaults and accepted values. */
typedef struct tc_options {
    /* Tiers, top to bottom, in the order they are read: tiers[0..ntiers-1]. CACHE_TIERING */
    int ntiers;
    tc_tier_id tiers[TC_MAX_TIERS];

    /* Limits on every key and value (every tier). CACHE_MAX_KEY_BYTES, CACHE_MAX_VALUE_BYTES */
    size_t max_key_bytes;
    size_t max_value_bytes;

    /* L1 memory tier. */
    uint64_t mem_max_entries;    /* CACHE_MEMORY_MAX_ENTRIES (10000) */
    uint64_t mem_max_bytes;      /* CACHE_MEMORY_MAX_BYTES (256MiB): keys+values+per-entry overhead */
    uint64_t mem_default_ttl_ms; /* CACHE_MEMORY_DEFAULT_TTL (120000) */
    tc_policy mem_eviction;      /* CACHE_MEMORY_EVICTION (tinylfu) */
    unsigned mem_shards;         /* CACHE_MEMORY_SHARDS (0 = chosen from capacity and CPUs) */

    /* L2 shared-memory tier. */
    char shared_name[TC_STR_MAX];   /* CACHE_SHARED_NAME (distributed_cache) */
    uint64_t shared_max_entries;    /* CACHE_SHARED_MAX_ENTRIES, alias CACHE_ENCORE_MAX_ENTRIES (1000000) */
    uint64_t shared_max_bytes;      /* CACHE_SHARED_MAX_BYTES (256MiB) */
    uint64_t shared_default_ttl_ms; /* CACHE_SHARED_DEFAULT_TTL, alias CACHE_ENCORE_DEFAULT_TTL (5m) */
    tc_policy shared_eviction;      /* CACHE_SHARED_EVICTION, alias CACHE_ENCORE_EVICTION (allkeys-lru) */

    /* L3 Redis tier. */
    char redis_host[TC_STR_MAX];     /* REDIS_HOST (unset: no L3 server configured) */
    int redis_port;                  /* REDIS_PORT (6379) */
    char redis_username[TC_STR_MAX]; /* REDIS_USERNAME (ACL user; empty: "default") */
    char redis_password[TC_STR_MAX]; /* REDIS_PASSWORD (secret: never printed) */
    int redis_db;                    /* REDIS_DB (0) */
    int redis_use_tls;               /* REDIS_USE_TLS (false) */
    int redis_max_retries;           /* REDIS_MAX_RETRIES (3) */
    uint64_t redis_connect_timeout_ms; /* REDIS_CONNECT_TIMEOUT (5000) */
    uint64_t redis_command_timeout_ms; /* REDIS_COMMAND_TIMEOUT (1000) */
    char redis_key_prefix[TC_STR_MAX]; /* REDIS_KEY_PREFIX (tiercache:) */
    int redis_pool_size;               /* REDIS_POOL_SIZE (0 = one connection per CPU, at least 2) */
    char redis_tls_ca_file[TC_PATH_MAX];    /* REDIS_TLS_CA_FILE (system store when empty) */
    char redis_tls_server_name[TC_STR_MAX]; /* REDIS_TLS_SERVER_NAME (default: the host) */
    char redis_tls_cert_file[TC_PATH_MAX];  /* REDIS_TLS_CERT_FILE (mutual TLS) */
    char redis_tls_key_file[TC_PATH_MAX];   /* REDIS_TLS_KEY_FILE (mutual TLS) */
    int redis_tls_skip_verify;              /* REDIS_TLS_SKIP_VERIFY (false) */

    /* Orchestrator and metrics. */
    int metrics_enabled;         /* CACHE_METRICS_ENABLED (true): latency histograms on/off */
    int defensive_invalidation;  /* CACHE_DEFENSIVE_INVALIDATION (false): kept for applications */

    /* Not from the environment. */
    tc_log_fn log_fn;   /* NULL: silent */
    void *log_userdata;
} tc_options;

/* Fills *opt with the defaults. Never fails. */
TC_EXPORT void tc_options_init(tc_options *opt);

/* Fills *opt with the defaults, then applies every variable of the environment that is set.
 * Returns 0, or TC_ECONFIG with a message naming the variable, the value and what is
 * accepted written into errbuf (NUL-terminated, truncated to errlen; errbuf may be NULL).
 * Reads the environment: not safe against a concurrent setenv(). */
TC_EXPORT int tc_options_from_env(tc_options *opt, char *errbuf, size_t errlen);

/* Writes the resolved configuration as "NAME=value" lines, secrets redacted ("***"), into a
 * buffer the library allocates; *out is freed by the caller with tc_free(). 0 or TC_ENOMEM. */
TC_EXPORT int tc_options_describe(const tc_options *opt, char **out);

/* ======================================================================== */
/* Opening and closing                                                      */
/* ======================================================================== */

typedef struct tc_cache tc_cache;

/* Opens a cache with *opt (copied; the caller keeps ownership). On failure returns a
 * negative code, *out is NULL, and a message saying what was wrong is written into errbuf
 * (may be NULL). A tiering that names a tier this build does not have fails with
 * TC_ENOTIER. Thread-safe. */
TC_EXPORT int tc_open(const tc_options *opt, tc_cache **out, char *errbuf, size_t errlen);

/* tc_options_from_env() followed by tc_open(). */
TC_EXPORT int tc_open_env(tc_cache **out, char *errbuf, size_t errlen);

/* Closes the cache and frees everything it owns. NULL does nothing. No other call on the
 * handle may be running or follow. */
TC_EXPORT void tc_close(tc_cache *c);

/* Frees memory the library returned (values, rendered documents). NULL does nothing. */
TC_EXPORT void tc_free(void *p);

/* ======================================================================== */
/* Reading and writing                                                      */
/* ======================================================================== */

#define TC_TTL_NONE (-1) /* remaining TTL of an entry that never expires */

/* What a get reports besides the value. */
typedef struct tc_get_info {
    int64_t ttl_ms; /* remaining TTL in ms, or TC_TTL_NONE */
    int tier;       /* the tc_tier_id that served the hit */
} tc_get_info;

/* Looks a key up through the tiers in order; a hit in a lower tier back-fills the tiers above
 * it with the remaining TTL. The value is copied into buf:
 *   on entry *len is the capacity of buf (buf may be NULL when *len is 0);
 *   on return *len is the value's length.
 * Returns 0 (hit), TC_EMISS, TC_ENOBUFS (value longer than the buffer: *len says how long,
 * buf holds nothing useful; call again with a larger buffer), TC_EKEYTOOBIG, TC_EINVAL.
 * A tier that fails on a read is skipped (counted as an error); the read goes on below it.
 * info may be NULL. Thread-safe. */
TC_EXPORT int tc_get(tc_cache *c, const void *key, size_t klen, void *buf, size_t *len,
                     tc_get_info *info);

/* As tc_get(), but the value is returned in a buffer the library allocates: *val is freed by
 * the caller with tc_free(). An empty value gives a non-NULL *val and *len == 0. Thread-safe. */
TC_EXPORT int tc_get_alloc(tc_cache *c, const void *key, size_t klen, void **val, size_t *len,
                           tc_get_info *info);

/* Stores a copy of key and value in every tier. ttl_ms 0 means each tier's default TTL.
 * Returns 0 when every tier stored it; TC_EKEYTOOBIG / TC_EVALTOOBIG (nothing stored anywhere);
 * TC_EFULL when a noeviction tier is full; TC_EPARTIAL when some tiers stored it and others
 * failed -- the failing tiers hold no copy of the key (a stale one is deleted), so a later
 * read never returns an older value; TC_ETIER when every tier failed. Thread-safe. */
TC_EXPORT int tc_set(tc_cache *c, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ttl_ms);

/* Deletes the key from every tier. Returns 0 when it was deleted everywhere it was (deleting a
 * missing key is 0: the result is the same), TC_EPARTIAL when a tier failed to delete it (the
 * tiers above the failing one are deleted anyway), TC_ETIER when every tier failed. */
TC_EXPORT int tc_del(tc_cache *c, const void *key, size_t klen);

/* Removes every entry of this cache from every tier (for L3: only keys under REDIS_KEY_PREFIX;
 * never FLUSHDB). Returns as tc_del(). */
TC_EXPORT int tc_clear(tc_cache *c);

/* Removes every entry whose key starts with prefix (plen bytes, binary-safe) from every tier.
 * plen 0 is tc_clear(). Returns as tc_del(). */
TC_EXPORT int tc_clear_prefix(tc_cache *c, const void *prefix, size_t plen);

/* The remaining TTL of a key: *ttl_ms is set to milliseconds or TC_TTL_NONE. Looks through the
 * tiers in order without copying the value and without back-filling. Returns 0 or TC_EMISS. */
TC_EXPORT int tc_ttl(tc_cache *c, const void *key, size_t klen, int64_t *ttl_ms);

/* ======================================================================== */
/* Several keys at once                                                     */
/* ======================================================================== */

/* The result of one key of tc_mget(). */
typedef struct tc_mget_result {
    int rc;           /* 0 (hit), TC_EMISS, or this key's error (TC_EKEYTOOBIG, TC_EINVAL,
                         TC_ENOMEM) */
    void *val;        /* on a hit: the value, allocated by the library, freed by the caller
                         with tc_free() (non-NULL even for an empty value); else NULL */
    size_t len;       /* the value's length */
    tc_get_info info; /* on a hit: remaining TTL and the tier that served it */
} tc_mget_result;

/* Looks n keys up as tc_get_alloc() would, each through the tiers in order with back-fill,
 * but in batches: a tier that can (L3) answers all the keys still missing in one round trip
 * (Redis: MGET and PTTLs pipelined). keys[i] / klens[i] is key i (binary-safe); results[i]
 * receives its outcome. Returns 0 when every key was looked up (then each results[i].rc says
 * hit, miss or error), TC_EINVAL for NULL arrays with n > 0 (results untouched), or TC_ENOMEM
 * (every results[i].rc is TC_ENOMEM, nothing to free). A tier that fails is skipped for the
 * keys it could not answer, as in tc_get(). Thread-safe. */
TC_EXPORT int tc_mget(tc_cache *c, size_t n, const void *const *keys, const size_t *klens,
                      tc_mget_result *results);

/* One entry of tc_mset(). ttl_ms as in tc_set() (0: each tier's default). */
typedef struct tc_mset_item {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    uint64_t ttl_ms;
} tc_mset_item;

/* Stores n entries as tc_set() would, in batches per tier (L3: one pipelined round trip of
 * SET ... PX per batch). rcs (may be NULL) receives each entry's tc_set() result. Returns 0
 * when every entry was stored in every tier, TC_EPARTIAL when some entry's result is not 0
 * (see rcs), TC_EINVAL for a NULL items with n > 0 (nothing stored). Thread-safe. */
TC_EXPORT int tc_mset(tc_cache *c, size_t n, const tc_mset_item *items, int *rcs);

/* ======================================================================== */
/* Single-flight loading                                                    */
/* ======================================================================== */

/* The application's loader, called on a miss. It returns 0 and a value it allocated with
 * malloc() in *val / *vlen (the cache takes ownership and frees it), and may set *ttl_ms (it
 * starts as the ttl_ms given to tc_get_or_load). Any other return is the loader's error: it
 * reaches every waiter as TC_ELOADER and nothing is cached. Called without any cache lock
 * held; it may use the cache, but not load the same key again (that would wait for itself). */
typedef int (*tc_loader_fn)(void *userdata, const void *key, size_t klen, void **val,
                            size_t *vlen, uint64_t *ttl_ms);

/* Gets the key; on a miss calls loader once, however many threads of this process ask for the
 * same key at the same time: the others wait for that load and share its result. The value
 * is returned as in tc_get_alloc() (freed with tc_free()). info->tier is TC_TIER_NONE when
 * the value came from the loader. Returns 0, TC_ELOADER (loader_err, when not NULL, receives
 * the loader's own return code), or the errors of tc_get_alloc() and tc_set(). A loaded value
 * the cache could not store (too big, tier failure) is still returned. Thread-safe. */
TC_EXPORT int tc_get_or_load(tc_cache *c, const void *key, size_t klen, uint64_t ttl_ms,
                             tc_loader_fn loader, void *userdata, void **val, size_t *len,
                             tc_get_info *info, int *loader_err);

/* ======================================================================== */
/* Statistics and health                                                    */
/* ======================================================================== */

#define TC_STATS_EXTRA_MAX 16

/* A tier-specific fact (connection state, server version, segment name ...). */
typedef struct tc_stat_extra {
    char name[32];
    char value[96];
} tc_stat_extra;

typedef struct tc_tier_stats {
    int tier;            /* tc_tier_id */
    char type[16];       /* "memory", "shared", "redis" */
    int available;       /* 1 when the tier answers */
    uint64_t hits, misses, sets, deletes, evictions, expirations, errors;
    uint64_t entries;    /* entries held now */
    uint64_t bytes;      /* bytes charged now (keys + values + per-entry overhead) */
    uint64_t max_entries, max_bytes; /* 0: unbounded or unknown */
    /* Latency of this tier's operations, nanoseconds, from a log-linear histogram (relative
     * error under 4%); 0 when nothing was measured. */
    uint64_t latency_samples;
    uint64_t p50_ns, p95_ns, p99_ns, max_ns;
    int nextra;
    tc_stat_extra extra[TC_STATS_EXTRA_MAX];
} tc_tier_stats;

typedef struct tc_stats {
    uint64_t hits, misses, errors; /* overall, as the application saw them */
    uint64_t loads, load_errors, load_waits; /* tc_get_or_load: loader calls, their failures,
                                                callers that shared another caller's load */
    int last_hit_tier;             /* tc_tier_id, TC_TIER_NONE before the first hit */
    uint64_t latency_samples;      /* overall get latency, nanoseconds */
    uint64_t p50_ns, p95_ns, p99_ns, max_ns;
    double uptime_s;
    int ntiers;
    tc_tier_stats tiers[TC_MAX_TIERS];
} tc_stats;

/* Takes a snapshot of the statistics. Counters are read without stopping writers, so a
 * snapshot taken during traffic is consistent per counter, not across counters. Thread-safe. */
TC_EXPORT int tc_stats_get(tc_cache *c, tc_stats *out);

/* Renders the health document, shaped as the original /cache/health:
 * {service, version, status, dependencies:[{name:"CacheBackend", status, stats:{tiers}}],
 *  timestamp, uptime, tierMetrics:{hits, misses, errors, lastHitTier, latencyP50, latencyP95,
 *  latencyP99}}. No host names, passwords or raw server output. *out is freed with tc_free(). */
TC_EXPORT int tc_health_json(tc_cache *c, char **out);

/* Renders the statistics as one JSON object. *out is freed with tc_free(). */
TC_EXPORT int tc_stats_json(tc_cache *c, char **out);

/* Renders the statistics in the Prometheus text exposition format (metric names prefixed
 * "tiercache_"). *out is freed with tc_free(). */
TC_EXPORT int tc_stats_prometheus(tc_cache *c, char **out);

/* ======================================================================== */
/* Durations and sizes (the one parser the whole project uses)              */
/* ======================================================================== */

/* Parses a duration into milliseconds: a Go-style sequence of number+unit ("250ms", "90s",
 * "5m", "1h30m", "2d", "1.5s"; units ns us ms s m h d) or a bare integer meaning milliseconds.
 * Junk, negative values and overflow give TC_EINVAL with a message quoting the text in errbuf
 * (may be NULL). A non-zero duration under 1 ms is refused. */
TC_EXPORT int tc_parse_duration(const char *s, uint64_t *ms, char *errbuf, size_t errlen);

/* Parses a byte size: a bare integer (bytes), or with a unit, case-insensitive, Redis-style:
 * k=1000 kb=1024 m=10^6 mb=2^20 g=10^9 gb=2^30, and KiB/MiB/GiB (1024-based). */
TC_EXPORT int tc_parse_size(const char *s, uint64_t *bytes, char *errbuf, size_t errlen);

/* ======================================================================== */
/* Shared-memory segments (administration of the L2 tier)                   */
/* ======================================================================== */

/* These work on L2 segments by name, without a tc_cache (the CLI's `tiercache shared ...`).
 * A segment is the file /dev/shm/tiercache.<name>; names are 1..200 bytes of letters,
 * digits, '.', '_' and '-', not starting with '.'. All are thread-safe. */

/* The names of the segments on this host, one per line ("a\nb\n"), in *out, freed by the
 * caller with tc_free(); *count (may be NULL) receives how many. 0 or TC_ENOMEM. */
TC_EXPORT int tc_shared_list(char **out, size_t *count);

/* Host-wide statistics of segment name, as the L2 tier reports them (counters are kept in
 * the segment by every process), with extras: segment, path, segment_bytes, policy, shards,
 * processes (attached now), layout_version, compactions, repairs. Does not attach as a user.
 * Returns 0, TC_ENOENT, TC_EINVAL, TC_EVERSION, TC_ECORRUPT, TC_EPERM; a message in errbuf
 * (may be NULL). */
TC_EXPORT int tc_shared_stats(const char *name, tc_tier_stats *out, char *errbuf, size_t errlen);

/* Verifies every invariant of segment name (docs/SHARED.md lists them), shard by shard under
 * each shard's lock; a shard whose last owner died holding its lock is repaired first, as any
 * user would. Returns 0 with a one-line summary in report, TC_ECORRUPT with one line per
 * problem, or the errors of tc_shared_stats() with their message. report may be NULL. */
TC_EXPORT int tc_shared_check(const char *name, char *report, size_t len);

/* Removes segment name. Processes attached to it keep using their mapping until they close
 * it; the next open by name creates a new segment. Returns 0, TC_ENOENT, TC_EPERM, TC_EINVAL. */
TC_EXPORT int tc_shared_destroy(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* TIERCACHE_H */
