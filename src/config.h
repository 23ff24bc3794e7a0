/*
 * config.h -- the resolved configuration as the library uses it inside (tc__opts), and the
 * opaque public tc_config around it (config.c).
 *
 * Every field of tc__opts is one row of the variable table in config.c, which gives its
 * environment variable, its default (as text, parsed like the environment), its range and its
 * description; tc__opts_init() applies the defaults from there, so no default is written
 * twice. The tiers read tc__opts (never the environment) and trust its ranges: they were
 * checked by the table when the value was set and again by tc__opts_validate() at open.
 */
#ifndef TC_CONFIG_H
#define TC_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "tiercache.h"

#define TC_STR_MAX 256
#define TC_PATH_MAX 1024

typedef struct tc__opts {
    /* Tiers, top to bottom, in the order they are read: tiers[0..ntiers-1]. CACHE_TIERING */
    int ntiers;
    tc_tier_id tiers[TC_MAX_TIERS];

    /* Limits on every key and value (every tier). CACHE_MAX_KEY_BYTES, CACHE_MAX_VALUE_BYTES */
    size_t max_key_bytes;
    size_t max_value_bytes;

    /* L1 memory tier. */
    uint64_t mem_max_entries;    /* CACHE_MEMORY_MAX_ENTRIES */
    uint64_t mem_max_bytes;      /* CACHE_MEMORY_MAX_BYTES: all L1 allocates (entries, tables, sketches) */
    uint64_t mem_default_ttl_ms; /* CACHE_MEMORY_DEFAULT_TTL */
    uint64_t mem_max_ttl_ms;     /* CACHE_MEMORY_MAX_TTL: cap on any L1 entry's TTL (0: none) */
    tc_policy mem_eviction;      /* CACHE_MEMORY_EVICTION */
    unsigned mem_shards;         /* CACHE_MEMORY_SHARDS (0 = chosen from capacity, CPUs, bytes) */
    unsigned mem_window;         /* CACHE_MEMORY_WINDOW (0 = sized by the climber; 1..100 = fixed, % of capacity) */

    /* L2 shared-memory tier. */
    char shared_name[TC_STR_MAX];   /* CACHE_SHARED_NAME */
    uint64_t shared_max_entries;    /* CACHE_SHARED_MAX_ENTRIES, alias CACHE_ENCORE_MAX_ENTRIES */
    uint64_t shared_max_bytes;      /* CACHE_SHARED_MAX_BYTES */
    uint64_t shared_default_ttl_ms; /* CACHE_SHARED_DEFAULT_TTL, alias CACHE_ENCORE_DEFAULT_TTL */
    tc_policy shared_eviction;      /* CACHE_SHARED_EVICTION, alias CACHE_ENCORE_EVICTION */
    uint64_t shared_lock_timeout_ms; /* CACHE_SHARED_LOCK_TIMEOUT: longest wait for a shard lock */
    char shared_group[TC_STR_MAX];   /* CACHE_SHARED_GROUP: group (name or gid) trusted to share */
    unsigned shared_mode;            /* CACHE_SHARED_MODE: 0600, or 0660 with the group */

    /* L3 Redis tier. */
    char redis_host[TC_STR_MAX];       /* REDIS_HOST (empty: no L3 server configured) */
    int redis_port;                    /* REDIS_PORT */
    char redis_username[TC_STR_MAX];   /* REDIS_USERNAME (ACL user; empty: "default") */
    char redis_password[TC_STR_MAX];   /* REDIS_PASSWORD (secret: never printed) */
    int redis_db;                      /* REDIS_DB */
    int redis_use_tls;                 /* REDIS_USE_TLS */
    int redis_max_retries;             /* REDIS_MAX_RETRIES */
    uint64_t redis_connect_timeout_ms; /* REDIS_CONNECT_TIMEOUT */
    uint64_t redis_command_timeout_ms; /* REDIS_COMMAND_TIMEOUT */
    uint64_t redis_default_ttl_ms;     /* REDIS_DEFAULT_TTL */
    char redis_key_prefix[TC_STR_MAX]; /* REDIS_KEY_PREFIX */
    int redis_pool_size;               /* REDIS_POOL_SIZE (0 = one connection per CPU, at least 2) */
    char redis_tls_ca_file[TC_PATH_MAX];    /* REDIS_TLS_CA_FILE (system store when empty) */
    char redis_tls_server_name[TC_STR_MAX]; /* REDIS_TLS_SERVER_NAME (default: the host) */
    char redis_tls_cert_file[TC_PATH_MAX];  /* REDIS_TLS_CERT_FILE (mutual TLS) */
    char redis_tls_key_file[TC_PATH_MAX];   /* REDIS_TLS_KEY_FILE (mutual TLS) */
    char redis_tls_key_password[TC_STR_MAX]; /* REDIS_TLS_KEY_PASSWORD (secret: the passphrase of an
                                              * encrypted REDIS_TLS_KEY_FILE; never printed) */
    int redis_tls_skip_verify;              /* REDIS_TLS_SKIP_VERIFY */

    /* Coherence (docs/COHERENCE.md). */
    int coherence;             /* CACHE_COHERENCE: processes of a host share generations, hosts a channel */
    uint64_t max_staleness_ms; /* CACHE_MAX_STALENESS: cross-host bound, and how fast a lost channel is seen */

    /* Orchestrator and metrics. */
    int metrics_enabled;        /* CACHE_METRICS_ENABLED: latency histograms on/off */
    int defensive_invalidation; /* CACHE_DEFENSIVE_INVALIDATION: kept for applications */

    /* Not from the environment. */
    tc_log_fn log_fn; /* NULL: silent */
    void *log_userdata;

    /* Which variables were set (by the environment or tc_config_set), one bit per table row:
     * see tc__opts_explicit(). */
    uint64_t explicit_bits[2];
} tc__opts;

/* Fills *o with the defaults of the variable table. Never fails. */
void tc__opts_init(tc__opts *o);

/* Checks every field of o against the table's rules and the relations between fields
 * (tiering non-empty with no tier twice, L3 needs a host, TLS files only with TLS, ...).
 * Returns 0, or TC_ECONFIG with a message naming the variable and what is accepted. */
int tc__opts_validate(const tc__opts *o, char *errbuf, size_t errlen);

/* 1 when variable name (a table name, not an alias) was set explicitly, rather than left at
 * its default: a tier may then adopt what it finds (L2 adopts an existing segment's geometry
 * unless a geometry variable was set). */
int tc__opts_explicit(const tc__opts *o, const char *name);

/* Marks variable name as set, for options filled field by field (the tests). */
void tc__opts_mark_explicit(tc__opts *o, const char *name);

/* Sets variable name (or an alias) of o from its text, as tc_config_set() does. */
int tc__opts_set(tc__opts *o, const char *name, const char *value, char *errbuf, size_t errlen);

/* Fills *o with the defaults, then the environment, as tc_config_from_env() does on a new
 * configuration (its warnings are dropped). For the benchmarks and tests that work on options
 * directly. */
int tc__opts_from_env(tc__opts *o, char *errbuf, size_t errlen);

/* The summary of tc_config_describe() for options. */
int tc__opts_describe(const tc__opts *o, char **out);

/* The options inside a public configuration. */
const tc__opts *tc__config_opts(const tc_config *cfg);

/* Opens a cache from resolved options: tc_open() without the configuration object. The seam
 * the tests use to open with options they filled field by field. */
int tc__open_opts(const tc__opts *o, tc_cache **out, char *errbuf, size_t errlen);

#endif /* TC_CONFIG_H */
