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
 *   - A tc_cache handle is safe to use from any number of threads at once; a tc_config is
 *     owned by its creator and used by one thread at a time (it may be shared read-only once
 *     filled: tc_open() only reads it).
 *   - The library never prints and never aborts on out-of-memory; it reports through return
 *     codes and through the log callback, when the application installs one.
 *   - A child process after fork() must open its own handle; it must not use its parent's.
 *
 * Stability (what an application compiled against this header can rely on)
 *   - Versions: TC_VERSION_MAJOR changes when a compiled application may stop working with the
 *     new library (a symbol removed or its signature changed, a struct field moved); MINOR when
 *     something is added (functions, struct fields at the end, error codes, settings); PATCH
 *     for fixes only. tc_version() is the library's own version at run time, to compare with
 *     the TC_VERSION_NUMBER the application was compiled with. While MAJOR is 0, a MINOR
 *     release may still break: the rules below hold from 1.0 on.
 *   - Functions keep their signatures: a changed interface gets a new name (the SQLite
 *     "_v2" rule), and the old one keeps working.
 *   - Handles are opaque (tc_cache, tc_config): their layout is the library's business.
 *   - Every struct that the caller allocates and the library fills begins with
 *     `size_t size`, which the caller sets to sizeof the struct it was compiled with (the
 *     TC_*_INIT macros do it). The library writes only the first `size` bytes, so an
 *     application built against an older, smaller layout keeps working with a newer library,
 *     and a newer application learns from the fields it sees set whether the library filled
 *     them. A size below sizeof(size_t) is TC_EINVAL. Fields are only ever added at the end.
 *   - Arrays of structs (tc_mget results, tc_mset items) are passed with their element size,
 *     for the same reason: the library steps through the array with the caller's stride and
 *     reads or writes only what the caller's layout holds (fields an older caller lacks read
 *     as zero).
 *   - Error codes are only added, with the next free negative value, and never renumbered;
 *     an application must treat an unknown negative code as an error (tc_is_error()).
 *   - Configuration variables (tc_config_set names) are only added; a renamed one keeps its
 *     old name as an alias.
 */
#ifndef TIERCACHE_H
#define TIERCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_VERSION_MAJOR 0
#define TC_VERSION_MINOR 2
#define TC_VERSION_PATCH 0
#define TC_VERSION_STRING "0.2.0"
#define TC_VERSION_NUMBER (TC_VERSION_MAJOR * 10000 + TC_VERSION_MINOR * 100 + TC_VERSION_PATCH)

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

/* A buffer of this many bytes holds any message the library writes into an errbuf, whole
 * (messages quote the offending value, cut at 120 bytes). Smaller buffers get a truncated,
 * NUL-terminated message. */
#define TC_ERRBUF_SIZE 2048

/* The library's version at run time, as TC_VERSION_NUMBER (e.g. 200 for 0.2.0). Thread-safe. */
TC_EXPORT int tc_version(void);

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

/* ======================================================================== */
/* Configuration                                                            */
/* ======================================================================== */

/* A configuration: every setting of docs/CONFIGURATION.md, by the name of its environment
 * variable. Opaque; created with the defaults by tc_config_new(), changed by name with
 * tc_config_set() or from the environment with tc_config_from_env(), read by tc_open()
 * (which copies it: the configuration may be freed or changed afterwards). One thread at a
 * time may change a configuration; once filled it may be read by several. */
typedef struct tc_config tc_config;

/* Creates a configuration holding the defaults. *out is freed with tc_config_free().
 * Returns 0 or TC_ENOMEM (*out NULL). */
TC_EXPORT int tc_config_new(tc_config **out);

/* Frees a configuration. NULL does nothing. */
TC_EXPORT void tc_config_free(tc_config *cfg);

/* Sets one variable, as if the environment held name=value: name is a variable of the
 * configuration table or one of its aliases (CACHE_ENCORE_*), value its text ("50000",
 * "5m", "L1L2", "redis://..."); a NULL value restores the default. Parsed as strictly as the
 * environment. Returns 0, TC_EINVAL for a NULL cfg or name, or TC_ECONFIG with a message
 * naming the variable, the value (secrets shown as "***") and what is accepted, in errbuf
 * (may be NULL; TC_ERRBUF_SIZE bytes hold it whole); on failure cfg is unchanged. Checks that
 * involve several variables (L3 needs REDIS_HOST ...) are made by tc_open(). */
TC_EXPORT int tc_config_set(tc_config *cfg, const char *name, const char *value, char *errbuf, size_t errlen);

/* Applies every variable of the table that is set in the environment (for an alias and its
 * new name both set, the new name), in table order: REDIS_URL before the REDIS_* variables
 * that may override parts of it, over what cfg holds; then checks how the variables fit
 * together (a tiering with L3 needs REDIS_HOST, TLS files need TLS, ...). Stops at the first
 * bad value (TC_ECONFIG, cfg then holds the variables before it: do not use it). Variables that look like ours (CACHE_*, REDIS_*) but
 * are unknown, and aliases set beside their new name, become warnings (tc_config_warnings(),
 * and the log callback at tc_open()). Reads the environment with getenv(): not safe against
 * a concurrent setenv(). Returns 0, TC_EINVAL or TC_ECONFIG. */
TC_EXPORT int tc_config_from_env(tc_config *cfg, char *errbuf, size_t errlen);

/* Writes the value of variable name as text into buf (NUL-terminated, cut to len): a secret
 * is "***" when set, empty otherwise; durations in ms ("120000ms"). Returns 0, TC_EINVAL for
 * an unknown name, TC_ENOBUFS when len was too small (buf holds the cut text). */
TC_EXPORT int tc_config_get(const tc_config *cfg, const char *name, char *buf, size_t len);

/* Installs the log callback (NULL: silent, the default) used by caches opened from cfg. */
TC_EXPORT void tc_config_set_log(tc_config *cfg, tc_log_fn fn, void *userdata);

/* The resolved configuration as "NAME=value" lines in table order, secrets redacted ("***"),
 * in a buffer the library allocates (*out, freed with tc_free()). 0, TC_EINVAL or TC_ENOMEM. */
TC_EXPORT int tc_config_describe(const tc_config *cfg, char **out);

/* The warnings tc_config_from_env() found, one per line ("" when none), in *out, freed with
 * tc_free(); *count (may be NULL) receives how many. 0, TC_EINVAL or TC_ENOMEM. */
TC_EXPORT int tc_config_warnings(const tc_config *cfg, char **out, size_t *count);

/* ======================================================================== */
/* Opening and closing                                                      */
/* ======================================================================== */

typedef struct tc_cache tc_cache;

/* Opens a cache configured by cfg (read, not kept: the caller keeps ownership of cfg). On
 * failure returns a negative code, *out is NULL, and a message saying what was wrong is
 * written into errbuf (may be NULL; TC_ERRBUF_SIZE bytes hold it whole). TC_ECONFIG for
 * settings that do not fit together, TC_ENOTIER for a tier this build does not have, or a
 * tier's own error (L2: TC_EVERSION, TC_ECORRUPT, TC_EPERM ...). Warnings of the
 * configuration go to its log callback. With L3 in the tiering and CACHE_COHERENCE on, the
 * handle starts one background thread (the watchdog, docs/COHERENCE.md: it may become the
 * host's invalidation listener) with every signal blocked, and waits, at most the smaller of
 * the connect plus command timeouts and CACHE_MAX_STALENESS, for the host's channel to be
 * healthy (until then L1 and L2 serve nothing). Thread-safe. */
TC_EXPORT int tc_open(const tc_config *cfg, tc_cache **out, char *errbuf, size_t errlen);

/* tc_config_new() and tc_config_from_env(), then tc_open(). */
TC_EXPORT int tc_open_env(tc_cache **out, char *errbuf, size_t errlen);

/* Closes the cache and frees everything it owns, after stopping its watchdog thread if it has
 * one (at once: the thread never waits past a wake-up). NULL does nothing. No other call on
 * the handle may be running or follow. */
TC_EXPORT void tc_close(tc_cache *c);

/* Frees memory the library returned (values, rendered documents). NULL does nothing. */
TC_EXPORT void tc_free(void *p);

/* ======================================================================== */
/* Reading and writing                                                      */
/* ======================================================================== */

#define TC_TTL_NONE (-1) /* remaining TTL of an entry that never expires */

/* The longest TTL accepted anywhere: 36500 days (100 years), in milliseconds. One range for
 * every TTL: tc_set(), tc_mset(), tc_get_or_load() (its ttl_ms and the TTL its loader sets),
 * every tier, the CLI's --ttl and the *_TTL settings refuse a larger one with TC_EINVAL
 * (TC_ECONFIG for a setting) instead of storing an entry that would expire at another time
 * than asked. A TTL a lower tier reports above it (a Redis key another client wrote) is
 * back-filled as TC_TTL_MAX_MS. */
#define TC_TTL_MAX_MS (UINT64_C(36500) * 86400000u)

/* What a get reports besides the value. Set size first (TC_GET_INFO_INIT): see Stability. */
typedef struct tc_get_info {
    size_t size;    /* sizeof(tc_get_info), set by the caller */
    int64_t ttl_ms; /* remaining TTL in ms, or TC_TTL_NONE */
    int tier;       /* the tc_tier_id that served the hit; TC_TIER_NONE for a loaded value */
} tc_get_info;
#define TC_GET_INFO_INIT {.size = sizeof(tc_get_info)}

/* Looks a key up through the tiers in order; a hit in a lower tier back-fills the tiers above
 * it with the remaining TTL. The value is copied into buf:
 *   on entry *len is the capacity of buf (buf may be NULL when *len is 0);
 *   on return *len is the value's length.
 * Returns 0 (hit), TC_EMISS, TC_ENOBUFS (value longer than the buffer: *len says how long,
 * buf holds nothing useful; call again with a larger buffer), TC_EKEYTOOBIG, TC_EINVAL.
 * A tier that fails on a read is skipped (counted as an error); the read goes on below it.
 * info may be NULL (else its size must be set: TC_EINVAL otherwise). Thread-safe. */
TC_EXPORT int tc_get(tc_cache *c, const void *key, size_t klen, void *buf, size_t *len,
                     tc_get_info *info);

/* As tc_get(), but the value is returned in a buffer the library allocates: *val is freed by
 * the caller with tc_free(). An empty value gives a non-NULL *val and *len == 0. Thread-safe. */
TC_EXPORT int tc_get_alloc(tc_cache *c, const void *key, size_t klen, void **val, size_t *len,
                           tc_get_info *info);

/* Stores a copy of key and value in every tier. ttl_ms 0 means each tier's default TTL; at
 * most TC_TTL_MAX_MS.
 * Returns 0 when every tier stored it; TC_EKEYTOOBIG / TC_EVALTOOBIG / TC_EINVAL (a NULL value
 * with vlen > 0, a TTL above TC_TTL_MAX_MS: nothing stored anywhere); TC_ETOOLARGE when no tier
 * can ever hold the entry (for L1: larger than CACHE_MEMORY_MAX_BYTES less L1's own
 * structures), while a tier that cannot hold it when others can is skipped and holds no copy;
 * TC_EFULL when a noeviction tier is full; TC_EPARTIAL when some tiers stored it and others
 * failed -- the failing tiers hold no copy of the key (a stale one is deleted), so a later
 * read never returns an older value; TC_ETIER when every tier failed. Thread-safe.
 * When L2 fails because the key's shard lock stayed held past CACHE_SHARED_LOCK_TIMEOUT (a
 * stopped process), it cannot delete its old copy under that lock either: the copy is made
 * stale instead, through the coherence table, which needs no lock (docs/COHERENCE.md), so it
 * is never read again. With CACHE_COHERENCE=false that copy is readable again once the holder
 * runs on, until its TTL ends or the key is written again (docs/SHARED.md). */
TC_EXPORT int tc_set(tc_cache *c, const void *key, size_t klen, const void *val, size_t vlen,
                     uint64_t ttl_ms);

/* Deletes the key from every tier. Returns 0 when it was deleted everywhere it was (deleting a
 * missing key is 0: the result is the same), TC_EPARTIAL when a tier failed to delete it (the
 * tiers above the failing one are deleted anyway), TC_ETIER when every tier failed. A delete
 * that fails on L2 because the key's shard lock stayed held keeps L2's copy, as for tc_set(). */
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

/* The result of one key of tc_mget(). An array of them is passed with its element size
 * (sizeof(tc_mget_result)): see Stability. */
typedef struct tc_mget_result {
    int rc;         /* 0 (hit), TC_EMISS, or this key's error (TC_EKEYTOOBIG, TC_EINVAL,
                       TC_ENOMEM) */
    void *val;      /* on a hit: the value, allocated by the library, freed by the caller
                       with tc_free() (non-NULL even for an empty value); else NULL */
    size_t len;     /* the value's length */
    int64_t ttl_ms; /* on a hit: remaining TTL in ms, or TC_TTL_NONE */
    int tier;       /* on a hit: the tc_tier_id that served it */
} tc_mget_result;

/* Looks n keys up as tc_get_alloc() would, each through the tiers in order with back-fill,
 * but in batches: a tier that can (L3) answers all the keys still missing in one round trip
 * (Redis: one transaction reading each key's size, at most CACHE_MAX_VALUE_BYTES of its value,
 * and its TTL; 256 keys per round trip, all sharing the call's REDIS_COMMAND_TIMEOUT).
 * keys[i] / klens[i] is key i (binary-safe); results[i] receives its outcome; results has n
 * elements of result_size bytes (sizeof(tc_mget_result) of the caller's header; at least
 * sizeof(int), for rc). Returns 0 when every key was looked
 * up (then each rc says hit, miss or error), TC_EINVAL for NULL arrays with n > 0 or a
 * result_size too small (results untouched), or TC_ENOMEM (every rc is TC_ENOMEM, nothing to
 * free). A tier that fails is skipped for the keys it could not answer, as in tc_get().
 * Thread-safe. */
TC_EXPORT int tc_mget(tc_cache *c, size_t n, const void *const *keys, const size_t *klens,
                      tc_mget_result *results, size_t result_size);

/* One entry of tc_mset(). ttl_ms as in tc_set() (0: each tier's default; an entry with a TTL
 * above TC_TTL_MAX_MS gets TC_EINVAL and is stored nowhere). An array of them is passed with
 * its element size (sizeof(tc_mset_item)): see Stability. */
typedef struct tc_mset_item {
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    uint64_t ttl_ms;
} tc_mset_item;

/* Stores n entries as tc_set() would, in batches per tier (L3: one pipelined round trip of
 * SET ... PX per batch). items has n elements of item_size bytes (sizeof(tc_mset_item) of the
 * caller's header; fields beyond item_size read as 0). rcs (may be NULL) receives each
 * entry's tc_set() result. Returns 0 when every entry was stored in every tier, TC_EPARTIAL
 * when some entry's result is not 0 (see rcs), TC_EINVAL for a NULL items with n > 0 or an
 * item_size that does not hold key and klen (nothing stored). Thread-safe. */
TC_EXPORT int tc_mset(tc_cache *c, size_t n, const tc_mset_item *items, size_t item_size, int *rcs);

/* ======================================================================== */
/* Single-flight loading                                                    */
/* ======================================================================== */

/* The application's loader, called on a miss. It returns 0 and a value it allocated with
 * malloc() in *val / *vlen (the cache takes ownership and frees it), and may set *ttl_ms (it
 * starts as the ttl_ms given to tc_get_or_load; at most TC_TTL_MAX_MS). Any other return is
 * the loader's error: it reaches every waiter as TC_ELOADER and nothing is cached. A loader that
 * returns 0 with a NULL *val and *vlen > 0, or with *ttl_ms above TC_TTL_MAX_MS, broke this
 * contract: that is TC_ELOADER too, with TC_EINVAL as the loader's code. Called without any
 * cache lock held; it may use the cache, but not load the same key again (that would wait for
 * itself). */
typedef int (*tc_loader_fn)(void *userdata, const void *key, size_t klen, void **val,
                            size_t *vlen, uint64_t *ttl_ms);

/* Gets the key; on a miss calls loader once, however many threads of this process ask for the
 * same key at the same time: the others wait for that load and share its result. The value
 * is returned as in tc_get_alloc() (freed with tc_free()). info->tier is TC_TIER_NONE when
 * the value came from the loader. Returns 0, TC_ELOADER (loader_err, when not NULL, receives
 * the loader's own return code), TC_EINVAL (ttl_ms above TC_TTL_MAX_MS: the loader is not
 * called), or the errors of tc_get_alloc() and tc_set(). A loaded value the cache could not
 * store (too big, tier failure) is still returned. Thread-safe. */
TC_EXPORT int tc_get_or_load(tc_cache *c, const void *key, size_t klen, uint64_t ttl_ms,
                             tc_loader_fn loader, void *userdata, void **val, size_t *len,
                             tc_get_info *info, int *loader_err);

/* ======================================================================== */
/* Statistics and health                                                    */
/* ======================================================================== */

#define TC_STATS_EXTRA_MAX 16

/* A figure the tier cannot know (L3 does not count the keys under its namespace). */
#define TC_STAT_UNKNOWN UINT64_MAX

/* A tier-specific fact (connection state, server version, segment name ...). Its layout is
 * frozen: it is an element of tc_tier_stats's array. */
typedef struct tc_stat_extra {
    char name[32];
    char value[96];
} tc_stat_extra;

/* One tier's statistics. Set size first (TC_TIER_STATS_INIT): see Stability. */
typedef struct tc_tier_stats {
    size_t size;         /* sizeof(tc_tier_stats), set by the caller */
    int tier;            /* tc_tier_id */
    char type[16];       /* "memory", "shared", "redis" */
    int available;       /* 1 when the tier answers */
    /* hits, misses and errors are always this handle's reads and failures through the tier.
     * sets ... expirations, entries and bytes are this handle's (L1), or every process's
     * attached to the tier when host_wide is 1 (L2, whose counters live in the segment), or
     * the server's as far as it tells (L3). */
    uint64_t hits, misses, sets, deletes, evictions, expirations, errors;
    int host_wide;
    uint64_t entries;    /* entries held now, or TC_STAT_UNKNOWN */
    uint64_t bytes;      /* bytes charged now (keys + values + per-entry overhead), or TC_STAT_UNKNOWN */
    uint64_t max_entries, max_bytes; /* 0: unbounded; TC_STAT_UNKNOWN: not known */
    /* Latency of this tier's operations, nanoseconds, from a log-linear histogram (relative
     * error under 4%); 0 when nothing was measured. */
    uint64_t latency_samples;
    uint64_t p50_ns, p95_ns, p99_ns, max_ns;
    /* The last failure of this tier seen by this handle: "set: authentication failed
     * (TC_EAUTH)", "" when none; never a secret. last_error_ms is its wall-clock time in ms
     * since the Unix epoch, 0 when none. */
    char last_error[128];
    int64_t last_error_ms;
    int nextra;
    tc_stat_extra extra[TC_STATS_EXTRA_MAX];
} tc_tier_stats;
#define TC_TIER_STATS_INIT {.size = sizeof(tc_tier_stats)}

/* How far a cache keeps its tiers coherent (tc_stats.coherence). */
typedef enum tc_coherence {
    TC_COHERENCE_NONE = 0,    /* one tier of this process alone: nothing to keep coherent */
    TC_COHERENCE_PROCESS = 1, /* CACHE_COHERENCE=false: writes and fills of this handle only */
    TC_COHERENCE_HOST = 2,    /* every process of the host sharing CACHE_SHARED_NAME */
    TC_COHERENCE_FLEET = 3    /* the host, and other hosts through Redis's invalidations */
} tc_coherence;

/* The state of the host's invalidation channel (tc_stats.channel). */
typedef enum tc_channel {
    TC_CHANNEL_NONE = 0,      /* no channel: coherence is not TC_COHERENCE_FLEET */
    TC_CHANNEL_HEALTHY = 1,   /* a listener of the host receives every invalidation */
    TC_CHANNEL_GAP = 2        /* lost, or not yet up: L1 and L2 serve nothing until it is back */
} tc_channel;

/* The names used in the health and stats documents: "none", "process", "host", "fleet";
 * "none", "healthy", "gap". Static strings ("none" for an unknown value). Thread-safe. */
TC_EXPORT const char *tc_coherence_name(int coherence);
TC_EXPORT const char *tc_channel_name(int channel);

/* The statistics of the cache as the application sees them; each tier's own through
 * tc_tier_stats_get(). Set size first (TC_STATS_INIT): see Stability. */
typedef struct tc_stats {
    size_t size;                   /* sizeof(tc_stats), set by the caller */
    uint64_t hits, misses, errors; /* overall, as the application saw them */
    uint64_t loads, load_errors, load_waits; /* tc_get_or_load: loader calls, their failures,
                                                callers that shared another caller's load */
    int last_hit_tier;             /* tc_tier_id, TC_TIER_NONE before the first hit */
    uint64_t latency_samples;      /* overall get latency, nanoseconds */
    uint64_t p50_ns, p95_ns, p99_ns, max_ns;
    double uptime_s;
    int ntiers;                    /* tiers in the cache: tc_tier_stats_get() takes 0..ntiers-1 */
    /* Coherence (docs/COHERENCE.md). Figures marked host-wide are kept in the host's
     * coherence table and shared by every process on it; the others are this process's. */
    int coherence;                 /* tc_coherence: how far this cache's tiers are kept coherent */
    int channel;                   /* tc_channel: the host's invalidation channel through Redis */
    int listener;                  /* 1 when this process is the host's listener */
    uint32_t listener_pid;         /* host-wide: the process holding the listener lease, 0 none */
    uint64_t channel_lag_us;       /* host-wide: the last canary round trip, microseconds */
    uint64_t channel_lag_max_us;   /* host-wide: the largest canary round trip */
    uint64_t invalidations_received; /* host-wide: keys the host's listeners were told of */
    uint64_t invalidations_applied;  /* stripes this process's listener moved */
    uint64_t epoch_moves;          /* host-wide: flushes (clear, FLUSHALL, channel recoveries) */
    uint64_t channel_gaps;         /* host-wide: channel losses (each a gap, then a flush) */
    uint64_t listener_takeovers;   /* host-wide: listener leases taken */
    uint64_t epoch_misses;         /* L3 reads of values written under another fleet epoch */
} tc_stats;
#define TC_STATS_INIT {.size = sizeof(tc_stats)}

/* Takes a snapshot of the statistics. Counters are read without stopping writers, so a
 * snapshot taken during traffic is consistent per counter, not across counters. Returns 0,
 * TC_EINVAL (NULL, or out->size below sizeof(size_t)) or TC_ENOMEM. Thread-safe. */
TC_EXPORT int tc_stats_get(tc_cache *c, tc_stats *out);

/* The statistics of tier index (0 = the first tier read, ntiers-1 the last): counters the
 * tier keeps, this handle's hits and misses through it, its errors and latency. Returns 0,
 * TC_EINVAL (NULL, size, or index out of range) or TC_ENOMEM. Thread-safe. */
TC_EXPORT int tc_tier_stats_get(tc_cache *c, int index, tc_tier_stats *out);

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
 * digits, '.', '_' and '-', not starting with '.'. All are thread-safe. Except for
 * tc_shared_destroy(), they use only segments the calling process's effective uid owns, with
 * no permission for others: another user's segment is refused with TC_EPERM and a message
 * naming its owner and mode (run them as the segment's owner). */

/* The names of the segments on this host, one per line ("a\nb\n"), in *out, freed by the
 * caller with tc_free(); *count (may be NULL) receives how many. 0 or TC_ENOMEM. */
TC_EXPORT int tc_shared_list(char **out, size_t *count);

/* Host-wide statistics of segment name, as the L2 tier reports them (counters are kept in
 * the segment by every process), with extras: segment, path, segment_bytes, policy, shards,
 * processes (attached now), layout_version, compactions, repairs. out->size must be set
 * (TC_TIER_STATS_INIT). Does not attach as a user.
 * Returns 0, TC_ENOENT, TC_EINVAL, TC_EVERSION, TC_ECORRUPT, TC_EPERM; a message in errbuf
 * (may be NULL). */
TC_EXPORT int tc_shared_stats(const char *name, tc_tier_stats *out, char *errbuf, size_t errlen);

/* Verifies every invariant of segment name (docs/SHARED.md lists them), shard by shard under
 * each shard's lock; a shard whose last owner died holding its lock is repaired first, as any
 * user would. Lock waits share a budget of one second: a shard whose lock stays held (a
 * stopped process) is reported with the holder's thread id and skipped, so the call returns
 * after about one second plus 1 ms per shard at worst. Returns 0 with a one-line summary in
 * report, TC_ECORRUPT with one line per problem, TC_ETIMEDOUT when some shard could not be
 * locked (and nothing else was found), TC_EIO when the file changed size meanwhile, or the
 * errors of tc_shared_stats() with their message. report may be NULL. */
TC_EXPORT int tc_shared_check(const char *name, char *report, size_t len);

/* As tc_shared_check(), then rebuilds every shard that had a problem from its verified entries
 * (restoring the limits and counters the segment header gives; entries that fail their
 * checksums, or exceed the shard's share of the limits, are dropped). report lists what was
 * found, then a summary. Returns 0 when every shard is consistent afterwards, TC_ETIMEDOUT when
 * some shard could not be locked, else as tc_shared_check(). */
TC_EXPORT int tc_shared_repair(const char *name, char *report, size_t len);

/* Removes segment name. Processes attached to it keep using their mapping until they close
 * it; the next open by name creates a new segment. Returns 0, TC_ENOENT, TC_EPERM, TC_EINVAL. */
TC_EXPORT int tc_shared_destroy(const char *name);

#ifdef __cplusplus
}
#endif
#endif /* TIERCACHE_H */
