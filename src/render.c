/*
 * render.c -- the three renderings of a statistics snapshot (render.h): the health document
 * shaped like the original /cache/health, a plain JSON dump of every field, and the Prometheus
 * text exposition format 0.0.4.
 *
 * Every rendering appends to a tc__strbuf and checks for out-of-memory once, at the end.
 * Numbers are printed from integers (latencies are integer nanoseconds, rates and the uptime
 * are scaled to integers first), never with %f/%g, so the output does not depend on the
 * process's LC_NUMERIC locale and never holds NaN or infinity where JSON forbids them.
 * Strings that come from tiers (type, extras) are treated as untrusted bytes: each is read
 * only up to its array's size (a tier may fill it without a NUL), and escaped for the
 * format -- JSON escaping with UTF-8 validation, Prometheus label escaping with invalid
 * UTF-8 replaced by U+FFFD, extra names sanitised into valid label names.
 *
 * Work is bounded by the snapshot: at most TC_MAX_TIERS tiers of TC_STATS_EXTRA_MAX extras,
 * each a few hundred bytes.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "render.h"
#include "strbuf.h"

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

static int clamp_ntiers(const tc_stats *st) {
    return st->ntiers < 0 ? 0 : st->ntiers > TC_MAX_TIERS ? TC_MAX_TIERS : st->ntiers;
}

static int clamp_nextra(const tc_tier_stats *t) {
    return t->nextra < 0 ? 0 : t->nextra > TC_STATS_EXTRA_MAX ? TC_STATS_EXTRA_MAX : t->nextra;
}

/* Appends v / 10^digits as a decimal without trailing zeros ("0.0421", "3", "1.5"). */
static void put_decimal(tc__strbuf *sb, uint64_t v, unsigned digits) {
    uint64_t div = 1;
    for (unsigned i = 0; i < digits; i++) div *= 10;
    uint64_t ip = v / div, fp = v % div;
    if (fp == 0) {
        tc__sb_printf(sb, "%llu", (unsigned long long)ip);
        return;
    }
    char frac[24];
    int n = snprintf(frac, sizeof frac, "%0*llu", (int)digits, (unsigned long long)fp);
    while (n > 0 && frac[n - 1] == '0') frac[--n] = '\0';
    tc__sb_printf(sb, "%llu.%s", (unsigned long long)ip, frac);
}

/* Seconds as an integer count of milliseconds: NaN and negatives give 0, absurd values are
 * capped (about 31 million years). */
static uint64_t uptime_ms(double s) {
    if (!(s > 0)) return 0;
    if (s > 1e15) s = 1e15;
    return (uint64_t)(s * 1000.0 + 0.5);
}

/* hits / (hits + misses) in millionths; 0 when there were no lookups. */
static uint64_t hit_rate_ppm(uint64_t hits, uint64_t misses) {
    double total = (double)hits + (double)misses;
    if (total <= 0) return 0;
    return (uint64_t)((double)hits / total * 1e6 + 0.5);
}

/* 1 when extra i has the same name as an earlier extra of the tier (the first one wins:
 * JSON object keys and Prometheus label names must be unique). */
static int extra_dup(const tc_tier_stats *t, int i) {
    size_t n = strnlen(t->extra[i].name, sizeof t->extra[i].name);
    for (int j = 0; j < i; j++) {
        size_t m = strnlen(t->extra[j].name, sizeof t->extra[j].name);
        if (m == n && memcmp(t->extra[i].name, t->extra[j].name, n) == 0) return 1;
    }
    return 0;
}

static const char *last_hit_name(int tier) {
    return tier == TC_TIER_L1 || tier == TC_TIER_L2 || tier == TC_TIER_L3 ? tc_tier_name(tier)
                                                                          : NULL;
}

/* A channel gap degrades: L1 and L2 serve nothing until it ends (docs/COHERENCE.md). */
const char *tc__health_status(const tc__snapshot *snap) {
    int n = snap ? clamp_ntiers(&snap->st) : 0, up = 0;
    for (int i = 0; i < n; i++) up += snap->tiers[i].available != 0;
    if (n == 0 || up == 0) return "unhealthy";
    return up == n && snap->st.channel != TC_CHANNEL_GAP ? "healthy" : "degraded";
}

TC_EXPORT const char *tc_coherence_name(int mode) {
    static const char *const names[] = {"none", "process", "host", "fleet"};
    return mode >= 0 && mode < 4 ? names[mode] : "none";
}

TC_EXPORT const char *tc_channel_name(int ch) {
    static const char *const names[] = {"none", "healthy", "gap"};
    return ch >= 0 && ch < 3 ? names[ch] : "none";
}

/* ------------------------------------------------------------------------ */
/* JSON writing                                                             */
/* ------------------------------------------------------------------------ */

/* A JSON object or array being written: whether a comma is due before the next member. */
typedef struct jw {
    tc__strbuf *sb;
    int first;
} jw;

static void j_open(jw *w, tc__strbuf *sb, char c) {
    w->sb = sb;
    w->first = 1;
    tc__sb_putc(sb, c);
}

static void j_key(jw *w, const char *k) {
    if (!w->first) tc__sb_putc(w->sb, ',');
    w->first = 0;
    if (k != NULL) {
        tc__sb_json_str(w->sb, k, strlen(k));
        tc__sb_putc(w->sb, ':');
    }
}

static void j_u64(jw *w, const char *k, uint64_t v) {
    j_key(w, k);
    tc__sb_printf(w->sb, "%llu", (unsigned long long)v);
}

/* A figure the tier may not know: null when it is TC_STAT_UNKNOWN. */
static void j_gauge(jw *w, const char *k, uint64_t v) {
    j_key(w, k);
    if (v == TC_STAT_UNKNOWN) tc__sb_puts(w->sb, "null");
    else tc__sb_printf(w->sb, "%llu", (unsigned long long)v);
}

static void j_bool(jw *w, const char *k, int v) {
    j_key(w, k);
    tc__sb_puts(w->sb, v ? "true" : "false");
}

/* A string member; NULL gives null. n bounds the read (strnlen). */
static void j_strn(jw *w, const char *k, const char *s, size_t n) {
    j_key(w, k);
    if (s == NULL)
        tc__sb_puts(w->sb, "null");
    else
        tc__sb_json_str(w->sb, s, strnlen(s, n));
}

static void j_str(jw *w, const char *k, const char *s) { j_strn(w, k, s, SIZE_MAX); }

/* v / 10^digits as a JSON number. */
static void j_dec(jw *w, const char *k, uint64_t v, unsigned digits) {
    j_key(w, k);
    put_decimal(w->sb, v, digits);
}

static void j_ms(jw *w, const char *k, uint64_t ns) { j_dec(w, k, ns, 6); }

/* The extras of a tier as one object {name: value}; duplicate names keep the first. */
static void j_extras(jw *w, const char *k, const tc_tier_stats *t) {
    jw o;
    j_key(w, k);
    j_open(&o, w->sb, '{');
    for (int i = 0; i < clamp_nextra(t); i++) {
        if (extra_dup(t, i)) continue;
        const tc_stat_extra *e = &t->extra[i];
        j_key(&o, NULL);
        tc__sb_json_str(o.sb, e->name, strnlen(e->name, sizeof e->name));
        tc__sb_putc(o.sb, ':');
        tc__sb_json_str(o.sb, e->value, strnlen(e->value, sizeof e->value));
    }
    tc__sb_putc(w->sb, '}');
}

/* Now, wall clock, as "2026-11-24T06:16:09.123Z". */
static void j_timestamp(jw *w, const char *k) {
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t sec = ts.tv_sec;
    j_key(w, k);
    if (gmtime_r(&sec, &tm) == NULL) {
        tc__sb_puts(w->sb, "null");
        return;
    }
    tc__sb_printf(w->sb, "\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  (long)(ts.tv_nsec / 1000000));
}

/* ------------------------------------------------------------------------ */
/* The health document                                                      */
/* ------------------------------------------------------------------------ */

static void health_tier(jw *arr, const tc_tier_stats *t) {
    jw o, lat;
    j_key(arr, NULL);
    j_open(&o, arr->sb, '{');
    j_str(&o, "tier", tc_tier_name(t->tier));
    j_strn(&o, "type", t->type, sizeof t->type);
    j_bool(&o, "available", t->available);
    j_gauge(&o, "entries", t->entries);
    j_gauge(&o, "bytes", t->bytes);
    j_gauge(&o, "maxEntries", t->max_entries);
    j_gauge(&o, "maxBytes", t->max_bytes);
    j_bool(&o, "hostWide", t->host_wide);
    j_strn(&o, "lastError", t->last_error, sizeof t->last_error);
    j_u64(&o, "lastErrorAt", t->last_error_ms > 0 ? (uint64_t)t->last_error_ms : 0);
    j_u64(&o, "hits", t->hits);
    j_u64(&o, "misses", t->misses);
    j_u64(&o, "sets", t->sets);
    j_u64(&o, "deletes", t->deletes);
    j_u64(&o, "evictions", t->evictions);
    j_u64(&o, "expirations", t->expirations);
    j_u64(&o, "errors", t->errors);
    j_key(&o, "latency");
    j_open(&lat, o.sb, '{');
    j_u64(&lat, "samples", t->latency_samples);
    j_ms(&lat, "p50Ms", t->p50_ns);
    j_ms(&lat, "p95Ms", t->p95_ns);
    j_ms(&lat, "p99Ms", t->p99_ns);
    j_ms(&lat, "maxMs", t->max_ns);
    tc__sb_putc(o.sb, '}');
    j_extras(&o, "metadata", t);
    tc__sb_putc(o.sb, '}');
}

int tc__render_health(const tc__snapshot *snap, const char *status, char **out) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (snap == NULL) return TC_EINVAL;
    const tc_stats *st = &snap->st;
    if (status == NULL) status = tc__health_status(snap);
    tc__strbuf sb = TC__STRBUF_INIT;
    jw doc, deps, dep, stats, tiers, tm;
    j_open(&doc, &sb, '{');
    j_str(&doc, "service", "tiercache");
    j_str(&doc, "version", TC_VERSION_STRING);
    j_str(&doc, "status", status);

    j_key(&doc, "dependencies");
    j_open(&deps, &sb, '[');
    j_key(&deps, NULL);
    j_open(&dep, &sb, '{');
    j_str(&dep, "name", "CacheBackend");
    j_str(&dep, "status", status);
    j_key(&dep, "stats");
    j_open(&stats, &sb, '{');
    j_key(&stats, "tiers");
    j_open(&tiers, &sb, '[');
    for (int i = 0; i < clamp_ntiers(st); i++) health_tier(&tiers, &snap->tiers[i]);
    tc__sb_putc(&sb, ']');
    jw coh;
    j_key(&stats, "coherence");
    j_open(&coh, &sb, '{');
    j_str(&coh, "mode", tc_coherence_name(st->coherence));
    j_str(&coh, "channel", tc_channel_name(st->channel));
    j_bool(&coh, "listener", st->listener);
    j_ms(&coh, "lagMs", st->channel_lag_us * 1000);
    tc__sb_puts(&sb, "}}}]");

    j_timestamp(&doc, "timestamp");
    j_dec(&doc, "uptime", uptime_ms(st->uptime_s), 3);

    j_key(&doc, "tierMetrics");
    j_open(&tm, &sb, '{');
    j_u64(&tm, "hits", st->hits);
    j_u64(&tm, "misses", st->misses);
    j_u64(&tm, "errors", st->errors);
    j_dec(&tm, "hitRate", hit_rate_ppm(st->hits, st->misses), 6);
    j_str(&tm, "lastHitTier", last_hit_name(st->last_hit_tier));
    j_ms(&tm, "latencyP50", st->p50_ns);
    j_ms(&tm, "latencyP95", st->p95_ns);
    j_ms(&tm, "latencyP99", st->p99_ns);
    tc__sb_puts(&sb, "}}");
    return tc__sb_finish(&sb, out);
}

/* ------------------------------------------------------------------------ */
/* The plain JSON dump                                                      */
/* ------------------------------------------------------------------------ */

static void stats_tier(jw *arr, const tc_tier_stats *t) {
    jw o;
    j_key(arr, NULL);
    j_open(&o, arr->sb, '{');
    j_str(&o, "tier", tc_tier_name(t->tier));
    j_strn(&o, "type", t->type, sizeof t->type);
    j_bool(&o, "available", t->available);
    j_u64(&o, "hits", t->hits);
    j_u64(&o, "misses", t->misses);
    j_u64(&o, "sets", t->sets);
    j_u64(&o, "deletes", t->deletes);
    j_u64(&o, "evictions", t->evictions);
    j_u64(&o, "expirations", t->expirations);
    j_u64(&o, "errors", t->errors);
    j_bool(&o, "host_wide", t->host_wide);
    j_gauge(&o, "entries", t->entries);
    j_gauge(&o, "bytes", t->bytes);
    j_gauge(&o, "max_entries", t->max_entries);
    j_gauge(&o, "max_bytes", t->max_bytes);
    j_strn(&o, "last_error", t->last_error, sizeof t->last_error);
    j_u64(&o, "last_error_ms", t->last_error_ms > 0 ? (uint64_t)t->last_error_ms : 0);
    j_u64(&o, "latency_samples", t->latency_samples);
    j_u64(&o, "p50_ns", t->p50_ns);
    j_u64(&o, "p95_ns", t->p95_ns);
    j_u64(&o, "p99_ns", t->p99_ns);
    j_u64(&o, "max_ns", t->max_ns);
    j_extras(&o, "extra", t);
    tc__sb_putc(o.sb, '}');
}

int tc__render_stats_json(const tc__snapshot *snap, char **out) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (snap == NULL) return TC_EINVAL;
    const tc_stats *st = &snap->st;
    tc__strbuf sb = TC__STRBUF_INIT;
    jw doc, tiers;
    j_open(&doc, &sb, '{');
    j_str(&doc, "status", tc__health_status(snap));
    j_u64(&doc, "hits", st->hits);
    j_u64(&doc, "misses", st->misses);
    j_u64(&doc, "errors", st->errors);
    j_dec(&doc, "hit_rate", hit_rate_ppm(st->hits, st->misses), 6);
    j_u64(&doc, "loads", st->loads);
    j_u64(&doc, "load_errors", st->load_errors);
    j_u64(&doc, "load_waits", st->load_waits);
    j_str(&doc, "last_hit_tier", last_hit_name(st->last_hit_tier));
    j_u64(&doc, "latency_samples", st->latency_samples);
    j_u64(&doc, "p50_ns", st->p50_ns);
    j_u64(&doc, "p95_ns", st->p95_ns);
    j_u64(&doc, "p99_ns", st->p99_ns);
    j_u64(&doc, "max_ns", st->max_ns);
    j_dec(&doc, "uptime_s", uptime_ms(st->uptime_s), 3);
    j_u64(&doc, "ntiers", (uint64_t)clamp_ntiers(st));
    jw coh;
    j_key(&doc, "coherence");
    j_open(&coh, &sb, '{');
    j_str(&coh, "mode", tc_coherence_name(st->coherence));
    j_str(&coh, "channel", tc_channel_name(st->channel));
    j_bool(&coh, "listener", st->listener);
    j_u64(&coh, "listener_pid", st->listener_pid);
    j_u64(&coh, "channel_lag_us", st->channel_lag_us);
    j_u64(&coh, "channel_lag_max_us", st->channel_lag_max_us);
    j_u64(&coh, "invalidations_received", st->invalidations_received);
    j_u64(&coh, "invalidations_applied", st->invalidations_applied);
    j_u64(&coh, "epoch_moves", st->epoch_moves);
    j_u64(&coh, "channel_gaps", st->channel_gaps);
    j_u64(&coh, "listener_takeovers", st->listener_takeovers);
    j_u64(&coh, "epoch_misses", st->epoch_misses);
    tc__sb_putc(&sb, '}');
    j_key(&doc, "tiers");
    j_open(&tiers, &sb, '[');
    for (int i = 0; i < clamp_ntiers(st); i++) stats_tier(&tiers, &snap->tiers[i]);
    tc__sb_puts(&sb, "]}");
    return tc__sb_finish(&sb, out);
}

/* ------------------------------------------------------------------------ */
/* Prometheus text format 0.0.4                                             */
/* ------------------------------------------------------------------------ */

/* Appends s[0..n) as the inside of a label value: backslash, double quote and line feed
 * escaped as the format requires; invalid UTF-8 replaced by U+FFFD (the format's label
 * values are UTF-8). */
static void prom_escape(tc__strbuf *sb, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, run = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t seq = c < 0x80 ? 1 : tc__utf8_seq_len(s + i, n - i);
        if (seq > 1 || (seq == 1 && c != '\\' && c != '"' && c != '\n')) {
            i += seq;
            continue;
        }
        tc__sb_append(sb, s + run, i - run);
        tc__sb_puts(sb, c == '\\' ? "\\\\" : c == '"' ? "\\\"" : c == '\n' ? "\\n" : "\xEF\xBF\xBD");
        run = ++i;
    }
    tc__sb_append(sb, s + run, i - run);
}

/* Writes s[0..n) as a label name into out (n + 2 bytes): characters outside [A-Za-z0-9_]
 * become '_', a leading digit gets a '_' in front, and a leading "__" (reserved by Prometheus)
 * is cut to "_". Returns the name's length (0: no usable name). */
static size_t prom_label_name(const char *s, size_t n, char *out) {
    size_t o = 0;
    if (n > 0 && s[0] >= '0' && s[0] <= '9') out[o++] = '_';
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        out[o++] = ok ? c : '_';
    }
    size_t skip = 0;
    while (o - skip >= 2 && out[skip] == '_' && out[skip + 1] == '_') skip++;
    memmove(out, out + skip, o - skip);
    o -= skip;
    out[o] = '\0';
    return o;
}

static void prom_family(tc__strbuf *sb, const char *name, const char *type, const char *help) {
    tc__sb_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Opens a per-tier sample: name{tier="L1" -- the caller adds more labels and closes it with
 * prom_close(). */
static void prom_tier_open(tc__strbuf *sb, const char *name, const tc_tier_stats *t) {
    const char *tn = tc_tier_name(t->tier);
    tc__sb_printf(sb, "%s{tier=\"", name);
    prom_escape(sb, tn, strlen(tn));
    tc__sb_putc(sb, '"');
}

static void prom_close(tc__strbuf *sb) { tc__sb_puts(sb, "} "); }

/* Latency in seconds, or NaN when nothing was measured (as Prometheus clients report an
 * empty summary). */
static void prom_seconds(tc__strbuf *sb, uint64_t samples, uint64_t ns) {
    if (samples == 0)
        tc__sb_puts(sb, "NaN");
    else
        put_decimal(sb, ns, 9);
    tc__sb_putc(sb, '\n');
}

typedef struct prom_u64_field {
    const char *name, *type, *help;
    size_t off; /* offset of a uint64_t in tc_tier_stats */
} prom_u64_field;

#define TC__TF(field) offsetof(tc_tier_stats, field)

static const prom_u64_field tier_fields[] = {
    {"tiercache_hits_total", "counter", "Lookups this tier answered with a value.", TC__TF(hits)},
    {"tiercache_misses_total", "counter", "Lookups this tier did not hold.", TC__TF(misses)},
    {"tiercache_sets_total", "counter", "Values written into this tier.", TC__TF(sets)},
    {"tiercache_deletes_total", "counter", "Deletes applied to this tier.", TC__TF(deletes)},
    {"tiercache_evictions_total", "counter", "Entries this tier evicted to make room.",
     TC__TF(evictions)},
    {"tiercache_expirations_total", "counter", "Entries this tier dropped because their TTL ran out.",
     TC__TF(expirations)},
    {"tiercache_errors_total", "counter", "Operations on this tier that failed.", TC__TF(errors)},
    {"tiercache_entries", "gauge", "Entries this tier holds now.", TC__TF(entries)},
    {"tiercache_bytes", "gauge", "Bytes this tier charges now (keys, values, overhead).",
     TC__TF(bytes)},
    {"tiercache_max_entries", "gauge", "Entry capacity of this tier (0: unbounded).",
     TC__TF(max_entries)},
    {"tiercache_max_bytes", "gauge", "Byte capacity of this tier (0: unbounded).",
     TC__TF(max_bytes)},
};

static uint64_t field_u64(const tc_tier_stats *t, size_t off) {
    uint64_t v;
    memcpy(&v, (const char *)t + off, sizeof v);
    return v;
}

static void prom_tier_info(tc__strbuf *sb, const tc_tier_stats *t) {
    /* label names already used on this sample: tier, type, then the extras kept so far */
    char names[TC_STATS_EXTRA_MAX + 2][sizeof t->extra[0].name + 2];
    int nnames = 0;
    strcpy(names[nnames++], "tier");
    strcpy(names[nnames++], "type");
    prom_tier_open(sb, "tiercache_tier_info", t);
    tc__sb_puts(sb, ",type=\"");
    prom_escape(sb, t->type, strnlen(t->type, sizeof t->type));
    tc__sb_putc(sb, '"');
    for (int i = 0; i < clamp_nextra(t); i++) {
        const tc_stat_extra *e = &t->extra[i];
        char *ln = names[nnames];
        if (prom_label_name(e->name, strnlen(e->name, sizeof e->name), ln) == 0) continue;
        int dup = 0;
        for (int j = 0; j < nnames && !dup; j++) dup = strcmp(names[j], ln) == 0;
        if (dup) continue;
        nnames++;
        tc__sb_printf(sb, ",%s=\"", ln);
        prom_escape(sb, e->value, strnlen(e->value, sizeof e->value));
        tc__sb_putc(sb, '"');
    }
    prom_close(sb);
    tc__sb_puts(sb, "1\n");
}

/* The coherence families (docs/COHERENCE.md, Observability). The channel's only with one. */
static void prom_coherence(tc__strbuf *sb, const tc_stats *st) {
    prom_family(sb, "tiercache_coherence_info", "gauge",
                "Always 1; how far the tiers are kept coherent (none, process, host, fleet), as a label.");
    tc__sb_printf(sb, "tiercache_coherence_info{mode=\"%s\"} 1\n", tc_coherence_name(st->coherence));
    prom_family(sb, "tiercache_epoch_moves_total", "counter",
                "Host-wide flushes of L1 and L2: clears, FLUSHALL, channel recoveries.");
    tc__sb_printf(sb, "tiercache_epoch_moves_total %llu\n", (unsigned long long)st->epoch_moves);
    if (st->channel == TC_CHANNEL_NONE) return;
    prom_family(sb, "tiercache_channel_up", "gauge", "1 while the host's invalidation channel is healthy, 0 in a gap.");
    tc__sb_printf(sb, "tiercache_channel_up %d\n", st->channel == TC_CHANNEL_HEALTHY);
    prom_family(sb, "tiercache_listener", "gauge", "1 when this process is the host's invalidation listener.");
    tc__sb_printf(sb, "tiercache_listener %d\n", st->listener != 0);
    static const struct {
        const char *name, *help;
        size_t off; /* of a uint64_t in tc_stats */
    } counters[] = {
        {"tiercache_invalidations_received_total", "Host-wide: keys the host's listeners were told of.",
         offsetof(tc_stats, invalidations_received)},
        {"tiercache_invalidations_applied_total", "Stripes this process's listener moved.",
         offsetof(tc_stats, invalidations_applied)},
        {"tiercache_channel_gaps_total", "Host-wide: channel losses.", offsetof(tc_stats, channel_gaps)},
        {"tiercache_listener_takeovers_total", "Host-wide: listener leases taken.",
         offsetof(tc_stats, listener_takeovers)},
        {"tiercache_epoch_misses_total", "L3 reads of values written under another fleet epoch.",
         offsetof(tc_stats, epoch_misses)},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        uint64_t v;
        memcpy(&v, (const char *)st + counters[i].off, sizeof v);
        prom_family(sb, counters[i].name, "counter", counters[i].help);
        tc__sb_printf(sb, "%s %llu\n", counters[i].name, (unsigned long long)v);
    }
    prom_family(sb, "tiercache_channel_lag_seconds", "gauge", "Host-wide: the last canary round trip.");
    tc__sb_puts(sb, "tiercache_channel_lag_seconds ");
    prom_seconds(sb, 1, st->channel_lag_us * 1000);
    prom_family(sb, "tiercache_channel_lag_max_seconds", "gauge", "Host-wide: the largest canary round trip.");
    tc__sb_puts(sb, "tiercache_channel_lag_max_seconds ");
    prom_seconds(sb, 1, st->channel_lag_max_us * 1000);
}

int tc__render_prometheus(const tc__snapshot *snap, char **out) {
    static const char *const qname[3] = {"0.5", "0.95", "0.99"};
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (snap == NULL) return TC_EINVAL;
    const tc_stats *st = &snap->st;
    tc__strbuf sb = TC__STRBUF_INIT;
    int nt = clamp_ntiers(st);

    prom_family(&sb, "tiercache_build_info", "gauge", "The tiercache version, as a label.");
    tc__sb_puts(&sb, "tiercache_build_info{version=\"" TC_VERSION_STRING "\"} 1\n");

    /* per-tier families: skipped when there is no tier (a family without samples says
     * nothing) */
    if (nt > 0) {
        for (size_t f = 0; f < sizeof tier_fields / sizeof tier_fields[0]; f++) {
            const prom_u64_field *pf = &tier_fields[f];
            prom_family(&sb, pf->name, pf->type, pf->help);
            for (int i = 0; i < nt; i++) {
                uint64_t v = field_u64(&snap->tiers[i], pf->off);
                if (v == TC_STAT_UNKNOWN) continue; /* a gauge the tier cannot know has no sample */
                prom_tier_open(&sb, pf->name, &snap->tiers[i]);
                prom_close(&sb);
                tc__sb_printf(&sb, "%llu\n", (unsigned long long)v);
            }
        }
        prom_family(&sb, "tiercache_tier_up", "gauge", "1 when the tier answers, else 0.");
        for (int i = 0; i < nt; i++) {
            prom_tier_open(&sb, "tiercache_tier_up", &snap->tiers[i]);
            prom_close(&sb);
            tc__sb_puts(&sb, snap->tiers[i].available ? "1\n" : "0\n");
        }
        prom_family(&sb, "tiercache_tier_latency_seconds", "summary",
                    "Latency of the tier's operations (log-linear histogram, error under 1/32).");
        for (int i = 0; i < nt; i++) {
            const tc_tier_stats *t = &snap->tiers[i];
            const uint64_t q[3] = {t->p50_ns, t->p95_ns, t->p99_ns};
            for (int k = 0; k < 3; k++) {
                prom_tier_open(&sb, "tiercache_tier_latency_seconds", t);
                tc__sb_printf(&sb, ",quantile=\"%s\"", qname[k]);
                prom_close(&sb);
                prom_seconds(&sb, t->latency_samples, q[k]);
            }
            prom_tier_open(&sb, "tiercache_tier_latency_seconds_count", t);
            prom_close(&sb);
            tc__sb_printf(&sb, "%llu\n", (unsigned long long)t->latency_samples);
        }
        prom_family(&sb, "tiercache_tier_latency_max_seconds", "gauge",
                    "Largest latency of the tier's operations (upper bound of its bucket).");
        for (int i = 0; i < nt; i++) {
            prom_tier_open(&sb, "tiercache_tier_latency_max_seconds", &snap->tiers[i]);
            prom_close(&sb);
            prom_seconds(&sb, snap->tiers[i].latency_samples, snap->tiers[i].max_ns);
        }
        prom_family(&sb, "tiercache_tier_info", "gauge",
                    "Always 1; the tier's type and facts (extras) as labels.");
        for (int i = 0; i < nt; i++) prom_tier_info(&sb, &snap->tiers[i]);
    }

    prom_family(&sb, "tiercache_requests_total", "counter",
                "Lookups as the application saw them, by result.");
    tc__sb_printf(&sb, "tiercache_requests_total{result=\"hit\"} %llu\n",
                  (unsigned long long)st->hits);
    tc__sb_printf(&sb, "tiercache_requests_total{result=\"miss\"} %llu\n",
                  (unsigned long long)st->misses);
    prom_family(&sb, "tiercache_errors_overall_total", "counter",
                "Operations that returned an error to the application.");
    tc__sb_printf(&sb, "tiercache_errors_overall_total %llu\n", (unsigned long long)st->errors);
    prom_family(&sb, "tiercache_loads_total", "counter", "Loader calls made on a miss.");
    tc__sb_printf(&sb, "tiercache_loads_total %llu\n", (unsigned long long)st->loads);
    prom_family(&sb, "tiercache_load_errors_total", "counter", "Loader calls that failed.");
    tc__sb_printf(&sb, "tiercache_load_errors_total %llu\n", (unsigned long long)st->load_errors);
    prom_family(&sb, "tiercache_load_waits_total", "counter",
                "Callers that shared another caller's load instead of loading.");
    tc__sb_printf(&sb, "tiercache_load_waits_total %llu\n", (unsigned long long)st->load_waits);
    prom_family(&sb, "tiercache_uptime_seconds", "gauge", "Seconds since the cache was opened.");
    tc__sb_puts(&sb, "tiercache_uptime_seconds ");
    put_decimal(&sb, uptime_ms(st->uptime_s), 3);
    tc__sb_putc(&sb, '\n');
    prom_family(&sb, "tiercache_latency_seconds", "summary",
                "Latency of lookups as the application saw them (error under 1/32).");
    const uint64_t q[3] = {st->p50_ns, st->p95_ns, st->p99_ns};
    for (int k = 0; k < 3; k++) {
        tc__sb_printf(&sb, "tiercache_latency_seconds{quantile=\"%s\"} ", qname[k]);
        prom_seconds(&sb, st->latency_samples, q[k]);
    }
    tc__sb_printf(&sb, "tiercache_latency_seconds_count %llu\n",
                  (unsigned long long)st->latency_samples);
    prom_family(&sb, "tiercache_latency_max_seconds", "gauge",
                "Largest lookup latency (upper bound of its bucket).");
    tc__sb_puts(&sb, "tiercache_latency_max_seconds ");
    prom_seconds(&sb, st->latency_samples, st->max_ns);
    prom_coherence(&sb, st);
    return tc__sb_finish(&sb, out);
}
