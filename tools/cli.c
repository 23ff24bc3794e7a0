/*
 * cli.c -- the `tiercache` command-line tool: one cache operation per invocation, the statistics,
 * health and configuration views, administration of L2 segments by name, and a trace-replay
 * benchmark.
 *
 * Every command but help/--version and shared (which works on segments by name) first
 * resolves the configuration from the environment (tc_config_from_env): an invalid variable
 * stops the command with the library's message and exit status 2. Commands that touch data
 * then open a cache with it, do one thing, print and close. The library's log messages (a
 * tier's failure and its cause, configuration warnings) go to stderr, unless -q. Because each invocation is its own process, an L1-only cache starts empty every
 * time: a set followed by a get in another invocation meets only what persists (L2, L3).
 *
 * Exit status: 0 done (a hit for get/ttl), 1 a miss (get, ttl: every tier answered "miss") or an
 * unhealthy tier (health), 2 usage error, invalid configuration or a failed operation (message
 * on stderr), and for get/ttl a miss while some tier failed (it may hold the key).
 *
 * bench replays a trace of little-endian uint32 key ids, read by tools/trace.c (shared with
 * bench/), the way the peer caches do: key "key:" + 12 zero-padded digits (16 bytes), get into
 * a caller buffer, set a B-byte value on a miss. Keys are built before timing; the wall clock
 * (CLOCK_MONOTONIC) runs around the replay only. With T threads each replays the whole trace
 * from its own offset. A progress bar is drawn on stderr, only when it is a terminal, by a
 * separate thread reading a counter the workers bump once every 2^16 requests.
 *
 * Only the public API (include/tiercache.h) is used.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tiercache.h"
#include "trace.h"

#define EXIT_MISS 1
#define EXIT_ERR 2

static const char usage_text[] =
    "usage: tiercache [-q] COMMAND [ARGS]\n"
    "\n"
    "Data (each invocation is its own process: an L1-only cache starts empty every time)\n"
    "  get KEY                        print the raw value (no newline added); exit 1 on a miss,\n"
    "                                 2 when nothing hit and a tier failed\n"
    "  set KEY VALUE [--ttl DURATION] store VALUE; VALUE '-' reads stdin (binary-safe, up to\n"
    "                                 CACHE_MAX_VALUE_BYTES); no --ttl or 0: the tiers' default TTL;\n"
    "                                 at most 36500d\n"
    "  del KEY                        delete KEY from every tier\n"
    "  ttl KEY                        remaining milliseconds, -1 for no expiry; exit 1 on a miss\n"
    "  clear [--prefix P]             remove every entry (or those whose key starts with P)\n"
    "\n"
    "Views\n"
    "  stats [--json | --prometheus]  per-tier counters, sizes and latency (a table by default)\n"
    "  health                         the health document (JSON); exit 1 when a tier is down\n"
    "  config                         the resolved configuration, secrets redacted\n"
    "\n"
    "Shared-memory segments (L2), by name, without opening a cache\n"
    "  shared list                    the segments on this host, one name per line\n"
    "  shared stats NAME              host-wide counters, size, policy, attached processes\n"
    "  shared check NAME              verify every invariant; exit 2 and the problems if any\n"
    "  shared repair NAME             check, then rebuild every shard that had a problem\n"
    "  shared destroy NAME            remove the segment (attached processes keep their mapping)\n"
    "\n"
    "Benchmark\n"
    "  bench --trace FILE --capacity N [--threads T] [--value-size B] [--requests R]\n"
    "        [--passes P] [--no-clear] [--json]\n"
    "      Replays FILE (little-endian uint32 key ids) or its first R requests: for each id a\n"
    "      get of \"key:%012u\", and on a miss a set of a B-byte value (default 100). N is the\n"
    "      capacity in entries of the first tier of CACHE_TIERING (no effect when it is L3).\n"
    "      Each of T threads (default 1) replays the whole trace from its own offset. Each of\n"
    "      P passes (default 1) uses a fresh, cleared cache; the last one is reported. L2 uses\n"
    "      a segment of its own (tiercache_bench.PID, removed at the end) and L3 the key prefix\n"
    "      tiercache-bench:, unless CACHE_SHARED_NAME or REDIS_KEY_PREFIX is set: the bench\n"
    "      clears what it uses. --no-clear replays over the cache as other processes left it\n"
    "      (a warm start; needs CACHE_SHARED_NAME or REDIS_KEY_PREFIX).\n"
    "\n"
    "  -q, --quiet                    do not print the library's warnings (a tier's failure)\n"
    "  help, --help, -h               this text\n"
    "  version, --version             the version\n"
    "\n"
    "Configuration comes from the environment (CACHE_TIERING, CACHE_MEMORY_MAX_ENTRIES, ...;\n"
    "see 'tiercache config'). Durations: 250ms, 90s, 5m, 1h30m, 2d or bare milliseconds.\n"
    "Exit status: 0 success, 1 miss (get, ttl) or unhealthy (health), 2 usage error, invalid\n"
    "configuration, failed operation, or a miss while a tier failed.\n";

/* -q: the library's warnings are not printed. */
static int quiet;

/* ======================================================================== */
/* Small helpers                                                            */
/* ======================================================================== */

static void errmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errmsg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tiercache: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Reports a usage error: the reason and where to read more, one line each on stderr.
 * Returns EXIT_ERR. */
static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("tiercache: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'tiercache --help' for more information.\n", stderr);
    va_end(ap);
    return EXIT_ERR;
}

/* Reports a failed library call: what was done, the message and the code's name. */
static int op_error(const char *what, int rc) {
    errmsg("%s: %s (%s)", what, tc_strerror(rc), tc_err_name(rc));
    return EXIT_ERR;
}

/* Writes len bytes to stdout and flushes. Returns 0, or EXIT_ERR after a message. */
static int write_stdout(const void *p, size_t len) {
    if ((len && fwrite(p, 1, len, stdout) != len) || fflush(stdout) != 0) {
        errmsg("writing to stdout: %s", strerror(errno));
        return EXIT_ERR;
    }
    return 0;
}

/* Writes a NUL-terminated document, adding a final newline when it has none. */
static int write_doc(const char *doc) {
    size_t n = strlen(doc);
    int rc = write_stdout(doc, n);
    if (rc == 0 && (n == 0 || doc[n - 1] != '\n')) rc = write_stdout("\n", 1);
    return rc;
}

/* Parses a decimal unsigned integer in [lo, hi], the whole string. Returns 0 or -1. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out) {
    if (s == NULL || *s < '0' || *s > '9') return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ======================================================================== */
/* Argument parsing                                                         */
/* ======================================================================== */

/* One option a command accepts: "--ttl" with a value, or a flag. value is set when seen
 * (to "" for a flag). */
typedef struct cli_opt {
    const char *name;
    int takes_value;
    const char *value;
} cli_opt;

/* Splits args into positionals and the options in opts; "--name value" and "--name=value"
 * are accepted, "--" ends options, a lone "-" is a positional. An option given twice keeps
 * the last value. Returns the number of positionals (stored in pos, at most maxpos), or -1
 * after a usage error was printed. */
static int parse_args(const char *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
                      const char **pos, int maxpos) {
    int npos = 0, only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!only_pos && strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (!only_pos && (strcmp(a, "-q") == 0 || strcmp(a, "--quiet") == 0)) {
            quiet = 1; /* accepted by every command */
            continue;
        }
        if (!only_pos && a[0] == '-' && a[1] != '\0') {
            const char *eq = strchr(a, '=');
            size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
            cli_opt *o = NULL;
            for (size_t k = 0; k < nopts; k++)
                if (strlen(opts[k].name) == nlen && strncmp(opts[k].name, a, nlen) == 0) o = &opts[k];
            if (o == NULL) {
                usage_error("%s: unknown option '%.*s'", cmd, (int)nlen, a);
                return -1;
            }
            if (!o->takes_value) {
                if (eq) {
                    usage_error("%s: option '%s' takes no value", cmd, o->name);
                    return -1;
                }
                o->value = "";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                usage_error("%s: option '%s' needs a value", cmd, o->name);
                return -1;
            }
            continue;
        }
        if (npos == maxpos) {
            usage_error("%s: unexpected argument '%s'", cmd, a);
            return -1;
        }
        pos[npos++] = a;
    }
    return npos;
}

/* Parses args that must be exactly nwant positionals (named in 'what' for the message).
 * Returns 0 or EXIT_ERR after a usage error. */
static int want_args(const char *cmd, int argc, char **argv, cli_opt *opts, size_t nopts,
                     const char **pos, int nwant, const char *what) {
    int n = parse_args(cmd, argc, argv, opts, nopts, pos, nwant);
    if (n < 0) return EXIT_ERR;
    if (n < nwant) return usage_error("%s: missing %s", cmd, what);
    return 0;
}

/* ======================================================================== */
/* Configuration and opening                                                */
/* ======================================================================== */

/* The library's log messages, on stderr: warnings and errors, unless -q. */
static void log_to_stderr(void *ud, tc_log_level level, const char *msg) {
    (void)ud;
    if (quiet || level > TC_LOG_WARN) return;
    fprintf(stderr, "tiercache: %s: %s\n", level == TC_LOG_ERROR ? "error" : "warning", msg);
}

/* The configuration from the environment, in *cfg (freed by the caller). Returns 0, or
 * EXIT_ERR after printing the library's message (which names the variable). */
static int load_config(tc_config **cfg) {
    char err[TC_ERRBUF_SIZE] = "";
    int rc = tc_config_new(cfg);
    if (rc == 0) rc = tc_config_from_env(*cfg, err, sizeof err);
    if (rc != 0) {
        errmsg("%s (%s)", err[0] ? err : tc_strerror(rc), tc_err_name(rc));
        tc_config_free(*cfg);
        *cfg = NULL;
        return EXIT_ERR;
    }
    tc_config_set_log(*cfg, log_to_stderr, NULL);
    return 0;
}

/* The value of a configuration variable as text (the library's own rendering). */
static const char *cfg_text(const tc_config *cfg, const char *name, char *buf, size_t cap) {
    if (tc_config_get(cfg, name, buf, cap) != 0) buf[0] = '\0';
    return buf;
}

/* The value of a numeric configuration variable (a size or a count). */
static uint64_t cfg_u64(const tc_config *cfg, const char *name) {
    char buf[32];
    return strtoull(cfg_text(cfg, name, buf, sizeof buf), NULL, 10);
}

/* 1 when the configured tiering uses tier ("L2"). */
static int cfg_has_tier(const tc_config *cfg, const char *tier) {
    char buf[16];
    return strstr(cfg_text(cfg, "CACHE_TIERING", buf, sizeof buf), tier) != NULL;
}

/* Opens a cache with cfg. Returns 0 or EXIT_ERR after printing why it failed, followed by
 * hint (when not NULL) on a line of its own. */
static int open_cache(const tc_config *cfg, tc_cache **c, const char *hint) {
    char err[TC_ERRBUF_SIZE] = "";
    int rc = tc_open(cfg, c, err, sizeof err);
    if (rc != 0) {
        errmsg("cannot open the cache: %s (%s)", err[0] ? err : tc_strerror(rc), tc_err_name(rc));
        if (hint) errmsg("%s", hint);
        return EXIT_ERR;
    }
    return 0;
}

/* load_config() then open_cache(); *cfg is freed by the caller (NULL on failure to load). */
static int open_from_env(tc_config **cfg, tc_cache **c) {
    int rc = load_config(cfg);
    return rc ? rc : open_cache(*cfg, c, NULL);
}

/* Reports a failed operation on key: a key over the limit names the limit and its variable. */
static int key_op_error(const char *what, int rc, const tc_config *cfg, size_t klen) {
    if (rc == TC_EKEYTOOBIG) {
        errmsg("%s: the key is %zu bytes, longer than CACHE_MAX_KEY_BYTES=%llu (TC_EKEYTOOBIG)", what, klen,
               (unsigned long long)cfg_u64(cfg, "CACHE_MAX_KEY_BYTES"));
        return EXIT_ERR;
    }
    if (rc == TC_EVALTOOBIG) {
        errmsg("%s: the value is longer than CACHE_MAX_VALUE_BYTES=%llu (TC_EVALTOOBIG)", what,
               (unsigned long long)cfg_u64(cfg, "CACHE_MAX_VALUE_BYTES"));
        return EXIT_ERR;
    }
    return op_error(what, rc);
}

/* The exit status of a read that missed: EXIT_MISS when every tier answered, EXIT_ERR when a
 * tier failed (it may hold the key; its failure and cause were logged). */
static int miss_status(tc_cache *c) {
    tc_stats st = TC_STATS_INIT;
    if (tc_stats_get(c, &st) == 0 && st.errors > 0) {
        errmsg("no tier had the key, and some tier failed (%s): the key may exist there",
               quiet ? "run without -q to see which and why" : "see above");
        return EXIT_ERR;
    }
    return EXIT_MISS;
}

/* ======================================================================== */
/* Data commands                                                            */
/* ======================================================================== */

static int cmd_get(int argc, char **argv) {
    const char *pos[1];
    int rc = want_args("get", argc, argv, NULL, 0, pos, 1, "KEY");
    if (rc) return rc;
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    void *val = NULL;
    size_t len = 0;
    int r = tc_get_alloc(c, pos[0], strlen(pos[0]), &val, &len, NULL);
    if (r == 0) rc = write_stdout(val, len);
    else if (r == TC_EMISS) rc = miss_status(c);
    else rc = key_op_error("get", r, cfg, strlen(pos[0]));
    tc_free(val);
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

/* Reads all of stdin into a malloc'd buffer, refusing more than max bytes. Returns 0 with
 * *buf (non-NULL, freed by the caller) and *len, or EXIT_ERR after a message. Reads at most
 * max + 1 bytes before giving up. */
static int read_stdin(size_t max, unsigned char **buf, size_t *len) {
    size_t cap = 65536, n = 0;
    unsigned char *b = malloc(cap);
    if (b == NULL) {
        errmsg("set: out of memory reading stdin");
        return EXIT_ERR;
    }
    for (;;) {
        if (n == cap) {
            size_t ncap = cap * 2;
            unsigned char *nb = ncap > cap ? realloc(b, ncap) : NULL;
            if (nb == NULL) {
                free(b);
                errmsg("set: out of memory reading stdin (%zu bytes so far)", n);
                return EXIT_ERR;
            }
            b = nb;
            cap = ncap;
        }
        ssize_t r = read(STDIN_FILENO, b + n, cap - n);
        if (r < 0) {
            if (errno == EINTR) continue;
            errmsg("set: reading stdin: %s", strerror(errno));
            free(b);
            return EXIT_ERR;
        }
        if (r == 0) break;
        n += (size_t)r;
        if (n > max) {
            errmsg("set: the value on stdin is longer than the configured maximum of %zu bytes "
                   "(CACHE_MAX_VALUE_BYTES)", max);
            free(b);
            return EXIT_ERR;
        }
    }
    *buf = b;
    *len = n;
    return 0;
}

static int cmd_set(int argc, char **argv) {
    cli_opt opts[] = {{"--ttl", 1, NULL}};
    const char *pos[2];
    int rc = want_args("set", argc, argv, opts, 1, pos, 2, "KEY and VALUE");
    if (rc) return rc;
    uint64_t ttl = 0;
    char err[512] = "";
    if (opts[0].value && tc_parse_duration(opts[0].value, &ttl, err, sizeof err) != 0) {
        errmsg("set: --ttl: %s", err[0] ? err : "invalid duration");
        return EXIT_ERR;
    }
    if (ttl > TC_TTL_MAX_MS) {
        errmsg("set: --ttl: %s is longer than the longest TTL, %llud (TC_TTL_MAX_MS)", opts[0].value,
               (unsigned long long)(TC_TTL_MAX_MS / 86400000u));
        return EXIT_ERR;
    }
    tc_config *cfg;
    if ((rc = load_config(&cfg))) return rc;
    const void *val = pos[1];
    size_t vlen = strlen(pos[1]);
    unsigned char *in = NULL;
    if (strcmp(pos[1], "-") == 0 && (rc = read_stdin((size_t)cfg_u64(cfg, "CACHE_MAX_VALUE_BYTES"), &in, &vlen))) {
        tc_config_free(cfg);
        return rc;
    }
    if (in != NULL) val = in;
    tc_cache *c;
    if ((rc = open_cache(cfg, &c, NULL)) == 0) {
        int r = tc_set(c, pos[0], strlen(pos[0]), val, vlen, ttl);
        if (r != 0) rc = key_op_error("set", r, cfg, strlen(pos[0]));
        tc_close(c);
    }
    free(in);
    tc_config_free(cfg);
    return rc;
}

static int cmd_del(int argc, char **argv) {
    const char *pos[1];
    int rc = want_args("del", argc, argv, NULL, 0, pos, 1, "KEY");
    if (rc) return rc;
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    int r = tc_del(c, pos[0], strlen(pos[0]));
    if (r != 0) rc = key_op_error("del", r, cfg, strlen(pos[0]));
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

static int cmd_ttl(int argc, char **argv) {
    const char *pos[1];
    int rc = want_args("ttl", argc, argv, NULL, 0, pos, 1, "KEY");
    if (rc) return rc;
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    int64_t ttl = 0;
    int r = tc_ttl(c, pos[0], strlen(pos[0]), &ttl);
    if (r == 0) {
        char line[32];
        int n = snprintf(line, sizeof line, "%" PRId64 "\n", ttl);
        rc = write_stdout(line, (size_t)n);
    } else if (r == TC_EMISS) {
        rc = miss_status(c);
    } else {
        rc = key_op_error("ttl", r, cfg, strlen(pos[0]));
    }
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

static int cmd_clear(int argc, char **argv) {
    cli_opt opts[] = {{"--prefix", 1, NULL}};
    const char *pos[1];
    int rc = want_args("clear", argc, argv, opts, 1, pos, 0, "");
    if (rc) return rc;
    const char *p = opts[0].value;
    if (p != NULL && p[0] == '\0')
        return usage_error("clear: --prefix \"\" would clear everything; run 'tiercache clear' for that");
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    int r = p ? tc_clear_prefix(c, p, strlen(p)) : tc_clear(c);
    if (r != 0) rc = op_error("clear", r);
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

/* ======================================================================== */
/* Views                                                                    */
/* ======================================================================== */

/* A latency in the unit that reads best ("850ns", "1.2us", "3.4ms"); "-" for 0. */
static const char *fmt_ns(uint64_t ns, char *buf, size_t cap) {
    if (ns == 0) snprintf(buf, cap, "-");
    else if (ns < 1000) snprintf(buf, cap, "%" PRIu64 "ns", ns);
    else if (ns < 1000000) snprintf(buf, cap, "%.1fus", (double)ns / 1e3);
    else if (ns < 1000000000) snprintf(buf, cap, "%.1fms", (double)ns / 1e6);
    else snprintf(buf, cap, "%.2fs", (double)ns / 1e9);
    return buf;
}

/* A byte count in binary units ("512B", "4.0KiB", "256.0MiB"). */
static const char *fmt_bytes(uint64_t b, char *buf, size_t cap) {
    static const char *unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (b < 1024) {
        snprintf(buf, cap, "%" PRIu64 "B", b);
        return buf;
    }
    double v = (double)b / 1024;
    int u = 0;
    while (v >= 1024 && u < 3) {
        v /= 1024;
        u++;
    }
    snprintf(buf, cap, "%.1f%s", v, unit[u]);
    return buf;
}

/* "hits / (hits + misses)" as a percentage, "-" with no lookups. */
static const char *fmt_ratio(uint64_t hits, uint64_t misses, char *buf, size_t cap) {
    if (hits + misses == 0) snprintf(buf, cap, "-");
    else snprintf(buf, cap, "%.1f%%", 100.0 * (double)hits / (double)(hits + misses));
    return buf;
}

/* Prints tier statistics as a table: one column per tier, one row per measure, then each
 * tier's extra facts. */
static void print_tier_table(const tc_tier_stats *tiers, int ntiers) {
    char a[40], b[40], line[64];
    printf("%-14s", "");
    for (int i = 0; i < ntiers; i++) {
        snprintf(line, sizeof line, "%s %s", tc_tier_name(tiers[i].tier), tiers[i].type);
        printf("  %-22s", line);
    }
    printf("\n");
#define ROW(label, expr)                                                                      \
    do {                                                                                      \
        printf("%-14s", label);                                                               \
        for (int i = 0; i < ntiers; i++) {                                                    \
            const tc_tier_stats *t = &tiers[i];                                               \
            expr;                                                                             \
            printf("  %-22s", line);                                                          \
        }                                                                                     \
        printf("\n");                                                                         \
    } while (0)
#define COUNT(label, field) ROW(label, snprintf(line, sizeof line, "%" PRIu64, t->field))
/* a counter of every process attached to a shared tier is marked "(host)" */
#define SHARED(label, field)                                                                              \
    ROW(label, snprintf(line, sizeof line, "%" PRIu64 "%s", t->field, t->host_wide ? " (host)" : ""))
    ROW("available", snprintf(line, sizeof line, "%s", t->available ? "yes" : "NO"));
    ROW("hit ratio", snprintf(line, sizeof line, "%s", fmt_ratio(t->hits, t->misses, a, sizeof a)));
    COUNT("hits", hits);
    COUNT("misses", misses);
    SHARED("sets", sets);
    SHARED("deletes", deletes);
    SHARED("evictions", evictions);
    SHARED("expirations", expirations);
    COUNT("errors", errors);
    ROW("entries", t->entries == TC_STAT_UNKNOWN ? snprintf(line, sizeof line, "unknown")
                   : t->max_entries && t->max_entries != TC_STAT_UNKNOWN
                       ? snprintf(line, sizeof line, "%" PRIu64 " / %" PRIu64 "%s", t->entries, t->max_entries,
                                  t->host_wide ? " (host)" : "")
                       : snprintf(line, sizeof line, "%" PRIu64, t->entries));
    ROW("bytes", t->bytes == TC_STAT_UNKNOWN ? snprintf(line, sizeof line, "unknown")
                 : t->max_bytes && t->max_bytes != TC_STAT_UNKNOWN
                     ? snprintf(line, sizeof line, "%s / %s", fmt_bytes(t->bytes, a, sizeof a),
                                fmt_bytes(t->max_bytes, b, sizeof b))
                     : snprintf(line, sizeof line, "%s", fmt_bytes(t->bytes, a, sizeof a)));
    ROW("latency p50", snprintf(line, sizeof line, "%s", fmt_ns(t->p50_ns, a, sizeof a)));
    ROW("latency p95", snprintf(line, sizeof line, "%s", fmt_ns(t->p95_ns, a, sizeof a)));
    ROW("latency p99", snprintf(line, sizeof line, "%s", fmt_ns(t->p99_ns, a, sizeof a)));
    COUNT("samples", latency_samples);
#undef SHARED
#undef COUNT
#undef ROW
    for (int i = 0; i < ntiers; i++)
        if (tiers[i].last_error[0] != '\0') {
            time_t at = (time_t)(tiers[i].last_error_ms / 1000);
            struct tm tm;
            char when[32] = "";
            if (gmtime_r(&at, &tm) != NULL) strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            printf("%-14s %s, at %s\n", i == 0 ? "last error" : "", tiers[i].last_error, when);
        }
    for (int i = 0; i < ntiers; i++)
        if (tiers[i].host_wide) {
            printf("(host): counted for every process attached to %s; hits, misses and errors are this "
                   "process's\n", tc_tier_name(tiers[i].tier));
            break;
        }
    for (int i = 0; i < ntiers; i++)
        for (int k = 0; k < tiers[i].nextra && k < TC_STATS_EXTRA_MAX; k++)
            printf("%-14s %s: %s\n", k == 0 ? tc_tier_name(tiers[i].tier) : "", tiers[i].extra[k].name,
                   tiers[i].extra[k].value);
}

/* Every tier's statistics, in tiers[0..st->ntiers-1]. Returns 0 or the library's error. */
static int get_tier_stats(tc_cache *c, const tc_stats *st, tc_tier_stats *tiers) {
    for (int i = 0; i < st->ntiers && i < TC_MAX_TIERS; i++) {
        tiers[i] = (tc_tier_stats)TC_TIER_STATS_INIT;
        int r = tc_tier_stats_get(c, i, &tiers[i]);
        if (r != 0) return r;
    }
    return 0;
}

/* The whole statistics of a cache: the overall figures and every tier's. */
typedef struct cli_stats {
    tc_stats st;
    tc_tier_stats tiers[TC_MAX_TIERS];
} cli_stats;

static int get_all_stats(tc_cache *c, cli_stats *cs) {
    cs->st = (tc_stats)TC_STATS_INIT;
    int r = tc_stats_get(c, &cs->st);
    return r ? r : get_tier_stats(c, &cs->st, cs->tiers);
}

/* Prints a cache's statistics: the tier table, then the overall figures. */
static void print_stats_table(const tc_stats *st, const tc_tier_stats *tiers, const char *tiering) {
    char a[40], b[40];
    printf("tiercache %s  tiering %s  uptime %.1f s\n\n", TC_VERSION_STRING, tiering, st->uptime_s);
    print_tier_table(tiers, st->ntiers);
    printf("\noverall        hits %" PRIu64 ", misses %" PRIu64 ", errors %" PRIu64
           ", hit ratio %s, last hit tier %s\n",
           st->hits, st->misses, st->errors, fmt_ratio(st->hits, st->misses, a, sizeof a),
           tc_tier_name(st->last_hit_tier));
    printf("loads          %" PRIu64 " loader calls, %" PRIu64 " failed, %" PRIu64
           " callers waited for another's load\n",
           st->loads, st->load_errors, st->load_waits);
    printf("get latency    p50 %s, ", fmt_ns(st->p50_ns, a, sizeof a));
    printf("p95 %s, ", fmt_ns(st->p95_ns, a, sizeof a));
    printf("p99 %s, ", fmt_ns(st->p99_ns, a, sizeof a));
    printf("max %s (%" PRIu64 " samples)\n", fmt_ns(st->max_ns, a, sizeof a), st->latency_samples);
    printf("coherence      %s, channel %s", tc_coherence_name(st->coherence), tc_channel_name(st->channel));
    if (st->channel != TC_CHANNEL_NONE)
        printf(" (listener pid %" PRIu32 "%s, lag %s, max %s), %" PRIu64 " invalidations received, "
               "%" PRIu64 " gaps", st->listener_pid, st->listener ? ", this process" : "",
               fmt_ns(st->channel_lag_us * 1000, a, sizeof a), fmt_ns(st->channel_lag_max_us * 1000, b, sizeof b),
               st->invalidations_received, st->channel_gaps);
    printf(", %" PRIu64 " epoch moves\n", st->epoch_moves);
}

static int cmd_stats(int argc, char **argv) {
    cli_opt opts[] = {{"--json", 0, NULL}, {"--prometheus", 0, NULL}};
    const char *pos[1];
    int rc = want_args("stats", argc, argv, opts, 2, pos, 0, "");
    if (rc) return rc;
    if (opts[0].value && opts[1].value) return usage_error("stats: --json and --prometheus exclude each other");
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    char *doc = NULL;
    if (opts[0].value || opts[1].value) {
        int r = opts[0].value ? tc_stats_json(c, &doc) : tc_stats_prometheus(c, &doc);
        rc = r ? op_error("stats", r) : write_doc(doc);
        tc_free(doc);
    } else {
        tc_stats st = TC_STATS_INIT;
        tc_tier_stats tiers[TC_MAX_TIERS];
        int r = tc_stats_get(c, &st);
        if (r == 0) r = get_tier_stats(c, &st, tiers);
        if (r != 0) {
            rc = op_error("stats", r);
        } else {
            char tiering[16];
            print_stats_table(&st, tiers, cfg_text(cfg, "CACHE_TIERING", tiering, sizeof tiering));
            rc = write_stdout(NULL, 0);
        }
    }
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

static int cmd_health(int argc, char **argv) {
    const char *pos[1];
    int rc = want_args("health", argc, argv, NULL, 0, pos, 0, "");
    if (rc) return rc;
    tc_config *cfg;
    tc_cache *c;
    if ((rc = open_from_env(&cfg, &c))) {
        tc_config_free(cfg);
        return rc;
    }
    char *doc = NULL;
    tc_stats st = TC_STATS_INIT;
    tc_tier_stats tiers[TC_MAX_TIERS];
    int r = tc_health_json(c, &doc);
    if (r != 0) {
        rc = op_error("health", r);
    } else if ((rc = write_doc(doc)) == 0) {
        /* The exit status says whether every tier answers, so scripts need not parse JSON. */
        r = tc_stats_get(c, &st);
        if (r == 0) r = get_tier_stats(c, &st, tiers);
        if (r != 0) rc = op_error("health", r);
        for (int i = 0; r == 0 && i < st.ntiers; i++)
            if (!tiers[i].available) rc = EXIT_MISS;
    }
    tc_free(doc);
    tc_close(c);
    tc_config_free(cfg);
    return rc;
}

static int cmd_config(int argc, char **argv) {
    const char *pos[1];
    int rc = want_args("config", argc, argv, NULL, 0, pos, 0, "");
    if (rc) return rc;
    tc_config *cfg;
    if ((rc = load_config(&cfg))) return rc;
    char *doc = NULL, *warn = NULL;
    int r = tc_config_describe(cfg, &doc);
    if (r == 0) r = tc_config_warnings(cfg, &warn, NULL);
    rc = r ? op_error("config", r) : write_doc(doc);
    /* the warnings follow the summary, on stderr, as '# warning: ...' so that stdout stays
     * NAME=value lines; -q does not hide them: showing them is what this command is for */
    for (char *line = warn, *nl; rc == 0 && line != NULL && *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        *nl = '\0';
        fprintf(stderr, "tiercache: warning: %s\n", line);
    }
    tc_free(doc);
    tc_free(warn);
    tc_config_free(cfg);
    return rc;
}

/* ======================================================================== */
/* bench                                                                    */
/* ======================================================================== */

#define BENCH_KEY_LEN TRACE_KEY_LEN
#define BENCH_PROGRESS_STEP 65536u /* workers publish progress once per this many requests */

typedef struct bench_run {
    tc_cache *c;
    const uint32_t *trace;
    size_t n;                          /* requests each thread replays */
    const char (*keys)[BENCH_KEY_LEN]; /* keys[id] */
    const unsigned char *value;
    size_t vsize;
    pthread_mutex_t lock; /* with go_cv: the start line the workers wait at */
    pthread_cond_t go_cv;
    int go;               /* 1: start replaying; -1: give up (a thread could not start) */
    _Atomic uint64_t progress; /* requests done, in steps of BENCH_PROGRESS_STEP */
    _Atomic int done;
} bench_run;

typedef struct bench_worker {
    bench_run *run;
    pthread_t th;
    size_t off;
    uint64_t hits, misses, get_errors, set_errors;
    int first_get_error, first_set_error;
    int oom;
} bench_worker;

/* Replays the whole trace once from the worker's offset, wrapping around: get into a buffer
 * of vsize bytes, set on a miss (and after a failed get, as an application would). */
static void *bench_worker_main(void *arg) {
    bench_worker *w = arg;
    bench_run *r = w->run;
    unsigned char *buf = malloc(r->vsize ? r->vsize : 1);
    if (buf == NULL) w->oom = 1;
    pthread_mutex_lock(&r->lock);
    while (r->go == 0) pthread_cond_wait(&r->go_cv, &r->lock);
    int go = r->go;
    pthread_mutex_unlock(&r->lock);
    if (buf == NULL || go < 0) {
        free(buf);
        return NULL;
    }
    /* counters in locals: workers' structs share cache lines, and counting into them from
     * several threads would cost the false sharing the benchmark is meant to measure without */
    uint64_t hits = 0, misses = 0, get_errors = 0, set_errors = 0;
    size_t i = w->off;
    for (size_t k = 0; k < r->n; k++) {
        const char *key = r->keys[r->trace[i]];
        if (++i == r->n) i = 0;
        size_t len = r->vsize;
        int rc = tc_get(r->c, key, BENCH_KEY_LEN, buf, &len, NULL);
        if (rc == 0) {
            hits++;
        } else {
            if (rc == TC_EMISS) {
                misses++;
            } else if (get_errors++ == 0) {
                w->first_get_error = rc;
            }
            rc = tc_set(r->c, key, BENCH_KEY_LEN, r->value, r->vsize, 0);
            if (rc != 0 && set_errors++ == 0) w->first_set_error = rc;
        }
        if ((k & (BENCH_PROGRESS_STEP - 1)) == BENCH_PROGRESS_STEP - 1)
            atomic_fetch_add_explicit(&r->progress, BENCH_PROGRESS_STEP, memory_order_relaxed);
    }
    w->hits = hits;
    w->misses = misses;
    w->get_errors = get_errors;
    w->set_errors = set_errors;
    free(buf);
    return NULL;
}

typedef struct bench_progress {
    bench_run *run;
    uint64_t total;
    int pass, passes;
} bench_progress;

/* Draws the progress bar on stderr five times a second until the run is done, then erases
 * it. Runs only when stderr is a terminal. */
static void *bench_progress_main(void *arg) {
    bench_progress *p = arg;
    const struct timespec tick = {0, 200 * 1000 * 1000};
    while (!atomic_load_explicit(&p->run->done, memory_order_acquire)) {
        nanosleep(&tick, NULL);
        uint64_t d = atomic_load_explicit(&p->run->progress, memory_order_relaxed);
        double f = p->total ? (double)d / (double)p->total : 1;
        if (f > 1) f = 1;
        char bar[31];
        int fill = (int)(f * 30);
        for (int k = 0; k < 30; k++) bar[k] = k < fill ? '#' : '.';
        bar[30] = '\0';
        if (p->passes > 1)
            fprintf(stderr, "\rbench pass %d/%d [%s] %3.0f%% %.1fM/%.1fM requests", p->pass,
                    p->passes, bar, f * 100, (double)d / 1e6, (double)p->total / 1e6);
        else
            fprintf(stderr, "\rbench [%s] %3.0f%% %.1fM/%.1fM requests", bar, f * 100,
                    (double)d / 1e6, (double)p->total / 1e6);
    }
    fputs("\r\033[K", stderr);
    return NULL;
}

/* Writes s as a JSON string literal. */
static void json_str(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

typedef struct bench_result {
    uint64_t requests, hits, misses, get_errors, set_errors;
    int first_get_error, first_set_error;
    double wall_s;
} bench_result;

/* One pass: opens a fresh cache, clears it, replays the trace with 'threads' workers and
 * takes the statistics. Returns 0 or EXIT_ERR after a message. */
static int bench_pass(const tc_config *cfg, const char *hint, int own_segment, int clear, bench_run *run,
                      int threads, int pass, int passes, bench_result *res, cli_stats *cs) {
    /* a segment of the bench's own is made anew, with the geometry this run asks for */
    char name[256];
    if (own_segment) (void)tc_shared_destroy(cfg_text(cfg, "CACHE_SHARED_NAME", name, sizeof name));
    int rc = open_cache(cfg, &run->c, hint);
    if (rc) return rc;
    int r = clear ? tc_clear(run->c) : 0;
    if (r != 0) {
        tc_close(run->c);
        return op_error("bench: clearing the cache before the run", r);
    }
    bench_worker *w = calloc((size_t)threads, sizeof *w);
    if (w == NULL) {
        tc_close(run->c);
        errmsg("bench: out of memory for %d threads", threads);
        return EXIT_ERR;
    }
    atomic_store(&run->progress, 0);
    atomic_store(&run->done, 0);
    run->go = 0;
    int started = 0;
    for (; started < threads; started++) {
        w[started].run = run;
        w[started].off = (size_t)((uint64_t)run->n * (uint64_t)started / (uint64_t)threads);
        if (pthread_create(&w[started].th, NULL, bench_worker_main, &w[started]) != 0) break;
    }
    if (started < threads) {
        pthread_mutex_lock(&run->lock);
        run->go = -1;
        pthread_cond_broadcast(&run->go_cv);
        pthread_mutex_unlock(&run->lock);
        for (int t = 0; t < started; t++) pthread_join(w[t].th, NULL);
        free(w);
        tc_close(run->c);
        errmsg("bench: cannot start thread %d of %d", started + 1, threads);
        return EXIT_ERR;
    }
    bench_progress prog = {run, (uint64_t)run->n * (uint64_t)threads, pass, passes};
    pthread_t pth;
    int have_progress = isatty(STDERR_FILENO) && pthread_create(&pth, NULL, bench_progress_main, &prog) == 0;

    double t0 = now_s();
    pthread_mutex_lock(&run->lock);
    run->go = 1;
    pthread_cond_broadcast(&run->go_cv);
    pthread_mutex_unlock(&run->lock);
    for (int t = 0; t < threads; t++) pthread_join(w[t].th, NULL);
    double t1 = now_s();

    atomic_store_explicit(&run->done, 1, memory_order_release);
    if (have_progress) pthread_join(pth, NULL);

    memset(res, 0, sizeof *res);
    res->wall_s = t1 - t0;
    res->requests = (uint64_t)run->n * (uint64_t)threads;
    int oom = 0;
    for (int t = 0; t < threads; t++) {
        res->hits += w[t].hits;
        res->misses += w[t].misses;
        if (w[t].get_errors && !res->get_errors) res->first_get_error = w[t].first_get_error;
        if (w[t].set_errors && !res->set_errors) res->first_set_error = w[t].first_set_error;
        res->get_errors += w[t].get_errors;
        res->set_errors += w[t].set_errors;
        oom |= w[t].oom;
    }
    free(w);
    r = get_all_stats(run->c, cs);
    tc_close(run->c);
    run->c = NULL;
    if (oom) {
        errmsg("bench: out of memory for a worker's buffer");
        return EXIT_ERR;
    }
    return r ? op_error("bench: statistics", r) : 0;
}

static void bench_print(const char *trace, const char *tiering, uint64_t capacity, int cap_applies,
                        int threads, int passes, size_t vsize, const bench_result *res,
                        const cli_stats *cs, int json) {
    const tc_stats *st = &cs->st;
    double hit_ratio = res->requests ? (double)res->hits / (double)res->requests : 0;
    double ns_per_op = res->requests ? res->wall_s * 1e9 / (double)res->requests : 0;
    double mops = res->wall_s > 0 ? (double)res->requests / res->wall_s / 1e6 : 0;
    if (!json) {
        printf("peer=tiercache version=%s tiering=%s capacity=%" PRIu64 " threads=%d requests=%" PRIu64
               " hit_ratio=%.4f mops=%.3f ns_per_op=%.1f p50_ns=%" PRIu64 " p99_ns=%" PRIu64,
               TC_VERSION_STRING, tiering, capacity, threads, res->requests, hit_ratio, mops,
               ns_per_op, st->p50_ns, st->p99_ns);
        for (int i = 0; i < st->ntiers; i++)
            printf(" hits_%s=%" PRIu64, tc_tier_name(cs->tiers[i].tier), cs->tiers[i].hits);
        if (res->get_errors || res->set_errors)
            printf(" get_errors=%" PRIu64 " set_errors=%" PRIu64, res->get_errors, res->set_errors);
        printf("\n");
        return;
    }
    printf("{\"peer\":\"tiercache\",\"version\":\"%s\",\"trace\":", TC_VERSION_STRING);
    json_str(stdout, trace);
    printf(",\"tiering\":\"%s\",\"capacity\":%" PRIu64 ",\"capacity_applies\":%s,\"threads\":%d"
           ",\"passes\":%d,\"value_size\":%zu,\"requests\":%" PRIu64 ",\"hits\":%" PRIu64
           ",\"misses\":%" PRIu64 ",\"get_errors\":%" PRIu64 ",\"set_errors\":%" PRIu64
           ",\"hit_ratio\":%.6f,\"wall_s\":%.6f,\"ns_per_op\":%.2f,\"mops\":%.4f"
           ",\"p50_ns\":%" PRIu64 ",\"p95_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64
           ",\"max_ns\":%" PRIu64 ",\"latency_samples\":%" PRIu64,
           tiering, capacity, cap_applies ? "true" : "false", threads, passes, vsize, res->requests,
           res->hits, res->misses, res->get_errors, res->set_errors, hit_ratio, res->wall_s,
           ns_per_op, mops, st->p50_ns, st->p95_ns, st->p99_ns, st->max_ns, st->latency_samples);
    if (res->get_errors) printf(",\"first_get_error\":\"%s\"", tc_err_name(res->first_get_error));
    if (res->set_errors) printf(",\"first_set_error\":\"%s\"", tc_err_name(res->first_set_error));
    for (int i = 0; i < st->ntiers; i++)
        printf(",\"hits_%s\":%" PRIu64, tc_tier_name(cs->tiers[i].tier), cs->tiers[i].hits);
    printf(",\"tier_hits\":{");
    for (int i = 0; i < st->ntiers; i++)
        printf("%s\"%s\":%" PRIu64, i ? "," : "", tc_tier_name(cs->tiers[i].tier), cs->tiers[i].hits);
    printf("},\"tiers\":[");
    for (int i = 0; i < st->ntiers; i++) {
        const tc_tier_stats *t = &cs->tiers[i];
        printf("%s{\"tier\":\"%s\",\"hits\":%" PRIu64 ",\"misses\":%" PRIu64 ",\"sets\":%" PRIu64
               ",\"evictions\":%" PRIu64 ",\"expirations\":%" PRIu64 ",\"errors\":%" PRIu64
               ",\"entries\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"max_entries\":%" PRIu64
               ",\"max_bytes\":%" PRIu64 ",\"p50_ns\":%" PRIu64 ",\"p99_ns\":%" PRIu64 "}",
               i ? "," : "", tc_tier_name(t->tier), t->hits, t->misses, t->sets, t->evictions,
               t->expirations, t->errors, t->entries, t->bytes, t->max_entries, t->max_bytes,
               t->p50_ns, t->p99_ns);
    }
    printf("]}\n");
}

static int cmd_bench(int argc, char **argv) {
    enum { O_TRACE, O_CAP, O_THREADS, O_VSIZE, O_REQ, O_PASSES, O_JSON, O_NOCLEAR, O_N };
    cli_opt opts[O_N] = {{"--trace", 1, NULL},   {"--capacity", 1, NULL}, {"--threads", 1, NULL},
                         {"--value-size", 1, NULL}, {"--requests", 1, NULL}, {"--passes", 1, NULL},
                         {"--json", 0, NULL},       {"--no-clear", 0, NULL}};
    const char *pos[1];
    int rc = want_args("bench", argc, argv, opts, O_N, pos, 0, "");
    if (rc) return rc;
    if (!opts[O_TRACE].value) return usage_error("bench: missing --trace FILE");
    if (!opts[O_CAP].value) return usage_error("bench: missing --capacity N");
    uint64_t capacity, threads = 1, vsize = 100, requests = 0, passes = 1;
    if (parse_u64(opts[O_CAP].value, 1, UINT64_MAX, &capacity))
        return usage_error("bench: --capacity '%s': expected a number of entries >= 1", opts[O_CAP].value);
    if (opts[O_THREADS].value && parse_u64(opts[O_THREADS].value, 1, 1024, &threads))
        return usage_error("bench: --threads '%s': expected 1..1024", opts[O_THREADS].value);
    if (opts[O_VSIZE].value && parse_u64(opts[O_VSIZE].value, 0, SIZE_MAX, &vsize))
        return usage_error("bench: --value-size '%s': expected a number of bytes", opts[O_VSIZE].value);
    if (opts[O_REQ].value && parse_u64(opts[O_REQ].value, 1, UINT64_MAX, &requests))
        return usage_error("bench: --requests '%s': expected a number >= 1", opts[O_REQ].value);
    if (opts[O_PASSES].value && parse_u64(opts[O_PASSES].value, 1, 100, &passes))
        return usage_error("bench: --passes '%s': expected 1..100", opts[O_PASSES].value);
    int json = opts[O_JSON].value != NULL;
    int no_clear = opts[O_NOCLEAR].value != NULL;
    if (no_clear && getenv("CACHE_SHARED_NAME") == NULL && getenv("REDIS_KEY_PREFIX") == NULL)
        return usage_error("bench: --no-clear replays over what other processes left: it needs "
                           "CACHE_SHARED_NAME (L2) or REDIS_KEY_PREFIX (L3) to name that cache");

    tc_config *cfg;
    if ((rc = load_config(&cfg))) return rc;
    uint64_t max_value = cfg_u64(cfg, "CACHE_MAX_VALUE_BYTES");
    if (vsize > max_value) {
        errmsg("bench: --value-size %" PRIu64 " is larger than CACHE_MAX_VALUE_BYTES=%" PRIu64, vsize, max_value);
        tc_config_free(cfg);
        return EXIT_ERR;
    }
    /* N is the capacity of the first tier; L3's bound is the Redis server's own. */
    int cap_applies = 1;
    char hint[128] = "", tiering[16], num[24], err[TC_ERRBUF_SIZE];
    cfg_text(cfg, "CACHE_TIERING", tiering, sizeof tiering);
    const char *cap_var = strncmp(tiering, "L1", 2) == 0 ? "CACHE_MEMORY_MAX_ENTRIES"
                          : strncmp(tiering, "L2", 2) == 0 ? "CACHE_SHARED_MAX_ENTRIES"
                                                           : NULL;
    if (cap_var != NULL) {
        snprintf(num, sizeof num, "%" PRIu64, capacity);
        if (tc_config_set(cfg, cap_var, num, err, sizeof err) != 0) {
            errmsg("bench: --capacity %" PRIu64 " sets %s: %s", capacity, cap_var, err);
            tc_config_free(cfg);
            return EXIT_ERR;
        }
        snprintf(hint, sizeof hint, "bench: --capacity %" PRIu64 " sets %s", capacity, cap_var);
    } else {
        cap_applies = 0;
        fprintf(stderr, "tiercache: bench: note: the first tier is L3 (Redis): --capacity has no "
                        "effect, the server's maxmemory bounds it\n");
    }
    /* The bench clears what it uses: keep it out of an application's namespace by default.
     * Its own segment is named after the process, so that runs with other capacities (another
     * geometry) or at the same time never meet, and it is removed at the end. */
    int own_segment = 0;
    if (getenv("CACHE_SHARED_NAME") == NULL) {
        snprintf(num, sizeof num, "tiercache_bench.%d", (int)getpid());
        (void)tc_config_set(cfg, "CACHE_SHARED_NAME", num, NULL, 0);
        own_segment = cfg_has_tier(cfg, "L2");
    }
    if (getenv("REDIS_KEY_PREFIX") == NULL) (void)tc_config_set(cfg, "REDIS_KEY_PREFIX", "tiercache-bench:", NULL, 0);

    bench_run run;
    memset(&run, 0, sizeof run);
    trace_data trace;
    char terr[512];
    if (trace_load(opts[O_TRACE].value, requests, &trace, terr, sizeof terr) != 0) {
        errmsg("bench: %s", terr);
        tc_config_free(cfg);
        return EXIT_ERR;
    }
    run.n = trace.n;
    char(*keys)[BENCH_KEY_LEN] = trace_keys(&trace, terr, sizeof terr);
    unsigned char *value = malloc(vsize ? (size_t)vsize : 1);
    if (keys == NULL || value == NULL) {
        if (keys == NULL) errmsg("bench: %s", terr);
        else errmsg("bench: out of memory for the value");
        trace_free(&trace);
        free(keys);
        free(value);
        tc_config_free(cfg);
        return EXIT_ERR;
    }
    memset(value, 'v', (size_t)vsize);
    run.trace = trace.ids;
    run.keys = (const char(*)[BENCH_KEY_LEN])keys;
    run.value = value;
    run.vsize = (size_t)vsize;
    pthread_mutex_init(&run.lock, NULL);
    pthread_cond_init(&run.go_cv, NULL);

    bench_result res;
    cli_stats cs;
    for (int p = 1; p <= (int)passes && rc == 0; p++)
        rc = bench_pass(cfg, hint[0] ? hint : NULL, own_segment, !no_clear, &run, (int)threads, p, (int)passes,
                        &res, &cs);
    if (own_segment) (void)tc_shared_destroy(num);
    if (rc == 0) {
        bench_print(opts[O_TRACE].value, tiering, capacity, cap_applies, (int)threads, (int)passes,
                    (size_t)vsize, &res, &cs, json);
        rc = write_stdout(NULL, 0);
        if (res.get_errors)
            fprintf(stderr, "tiercache: bench: warning: %" PRIu64 " gets failed (first: %s)\n",
                    res.get_errors, tc_strerror(res.first_get_error));
        if (res.set_errors)
            fprintf(stderr, "tiercache: bench: warning: %" PRIu64 " sets failed (first: %s)\n",
                    res.set_errors, tc_strerror(res.first_set_error));
        const tc_tier_stats *t0 = cs.st.ntiers > 0 ? &cs.tiers[0] : NULL;
        if (cap_applies && t0 && t0->max_bytes && t0->bytes >= t0->max_bytes / 10 * 9 &&
            t0->entries < capacity)
            fprintf(stderr, "tiercache: bench: warning: %s held %" PRIu64 " of %" PRIu64
                            " entries at the end: its byte bound (%" PRIu64 " bytes) binds first\n",
                    tc_tier_name(t0->tier), t0->entries, capacity, t0->max_bytes);
    }
    trace_free(&trace);
    free(keys);
    free(value);
    pthread_cond_destroy(&run.go_cv);
    pthread_mutex_destroy(&run.lock);
    tc_config_free(cfg);
    return rc;
}

/* ======================================================================== */
/* Entry point                                                              */
/* ======================================================================== */

/* shared list | stats NAME | check NAME | repair NAME | destroy NAME: the L2 segments on this
 * host, by name, without opening a cache (tc_shared_* of the public API). */
static int cmd_shared(int argc, char **argv) {
    const char *pos[2] = {NULL, NULL};
    int n = parse_args("shared", argc, argv, NULL, 0, pos, 2);
    if (n < 0) return EXIT_ERR;
    if (n == 0)
        return usage_error("shared: missing list, stats NAME, check NAME, repair NAME or destroy NAME");
    const char *sub = pos[0], *name = pos[1];
    if (strcmp(sub, "list") == 0) {
        if (n != 1) return usage_error("shared list: unexpected argument '%s'", name);
        char *names = NULL;
        int r = tc_shared_list(&names, NULL);
        if (r != 0) return op_error("shared list", r);
        int rc = write_stdout(names, strlen(names));
        tc_free(names);
        return rc;
    }
    if (strcmp(sub, "stats") && strcmp(sub, "check") && strcmp(sub, "repair") && strcmp(sub, "destroy"))
        return usage_error("shared: unknown subcommand '%s'", sub);
    if (n != 2) return usage_error("shared %s: missing NAME", sub);
    if (strcmp(sub, "stats") == 0) {
        tc_tier_stats st = TC_TIER_STATS_INIT;
        char err[TC_ERRBUF_SIZE] = "";
        int r = tc_shared_stats(name, &st, err, sizeof err);
        if (r != 0) {
            errmsg("shared stats %s: %s (%s)", name, err[0] ? err : tc_strerror(r), tc_err_name(r));
            return EXIT_ERR;
        }
        print_tier_table(&st, 1);
        return write_stdout(NULL, 0);
    }
    if (strcmp(sub, "check") == 0 || strcmp(sub, "repair") == 0) {
        char report[16384] = "";
        int r = strcmp(sub, "check") == 0 ? tc_shared_check(name, report, sizeof report)
                                          : tc_shared_repair(name, report, sizeof report);
        if (r == 0) {
            fputs(report, stdout);
            return write_stdout(NULL, 0);
        }
        fputs(report, stderr);
        if (report[0] == '\0' || report[strlen(report) - 1] != '\n') fputc('\n', stderr);
        errmsg("shared %s %s: %s (%s)", sub, name, tc_strerror(r), tc_err_name(r));
        return EXIT_ERR;
    }
    int r = tc_shared_destroy(name);
    if (r != 0) {
        errmsg("shared destroy %s: %s (%s)", name, tc_strerror(r), tc_err_name(r));
        return EXIT_ERR;
    }
    return 0;
}

typedef struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
} command;

static const command commands[] = {
    {"get", cmd_get},       {"set", cmd_set},     {"del", cmd_del},       {"ttl", cmd_ttl},
    {"clear", cmd_clear},   {"stats", cmd_stats}, {"health", cmd_health}, {"config", cmd_config},
    {"bench", cmd_bench},   {"shared", cmd_shared},
};

int main(int argc, char **argv) {
    while (argc > 1 && (!strcmp(argv[1], "-q") || !strcmp(argv[1], "--quiet"))) {
        quiet = 1;
        argv++;
        argc--;
    }
    if (argc < 2) return usage_error("missing command");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        return write_stdout(NULL, 0);
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("tiercache %s\n", TC_VERSION_STRING);
        return write_stdout(NULL, 0);
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(cmd, commands[i].name)) return commands[i].fn(argc - 2, argv + 2);
    if (cmd[0] == '-') return usage_error("unknown option '%s'", cmd);
    return usage_error("unknown command '%s'", cmd);
}
