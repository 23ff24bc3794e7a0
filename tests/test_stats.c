/*
 * test_stats.c -- the statistics module: the log-linear histogram (bucket arithmetic, edge
 * values, quantile accuracy against exact quantiles of random data, merging), the string
 * buffer and its JSON escaping, and the three renderings of a snapshot.
 *
 * Renderings are checked two ways: by parsers written here (a strict JSON parser that builds a
 * tree, so keys, types and decoded strings can be compared with the snapshot; a line parser
 * of the Prometheus text format), and by independent parsers run through popen():
 * Python's json module and the prometheus_client package's text parser (Debian python3,
 * python3-prometheus-client; see DEB_TEST in the Makefile).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "histogram.h"
#include "render.h"
#include "strbuf.h"

#define PYTHON "/usr/bin/python3"

/* ======================================================================== */
/* Random numbers                                                           */
/* ======================================================================== */

static uint64_t rng_state;

static uint64_t rng_next(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double rng_unit(void) { return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0; }

/* exp(mu + sigma * N(0,1)), by Box-Muller. */
static uint64_t rng_lognormal(double mu, double sigma) {
    double z = sqrt(-2.0 * log(rng_unit())) * cos(6.283185307179586 * rng_unit());
    return (uint64_t)exp(mu + sigma * z);
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ======================================================================== */
/* Histogram                                                                */
/* ======================================================================== */

static void test_hist_edge_values(void **state) {
    (void)state;
    assert_int_equal(tc__hist_bucket(0), 0);
    assert_int_equal(tc__hist_bucket(1), 1);
    assert_int_equal(tc__hist_bucket(31), 31);
    assert_int_equal(tc__hist_bucket(32), 32);
    assert_int_equal(tc__hist_bucket(63), 63);
    assert_int_equal(tc__hist_bucket(64), 64);
    assert_int_equal(tc__hist_bucket(65), 64); /* first bucket of width 2 */
    assert_int_equal(tc__hist_bucket(66), 65);
    for (uint64_t v = 0; v < 64; v++) {
        assert_int_equal(tc__hist_bucket_low(tc__hist_bucket(v)), v);
        assert_int_equal(tc__hist_bucket_high(tc__hist_bucket(v)), v);
    }
    unsigned b42 = tc__hist_bucket(UINT64_C(1) << 42);
    assert_int_equal(tc__hist_bucket_low(b42), UINT64_C(1) << 42);
    assert_true(tc__hist_bucket_high(b42) - (UINT64_C(1) << 42) < (UINT64_C(1) << 42) / 32);
    /* everything above the last exponent is clamped into the last bucket */
    assert_int_equal(tc__hist_bucket(UINT64_MAX), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket(UINT64_C(1) << 43), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket((UINT64_C(1) << 43) - 1), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket((UINT64_C(1) << 63) + 12345), TC__HIST_NBUCKETS - 1);
    assert_int_equal(tc__hist_bucket_high(TC__HIST_NBUCKETS - 1), (UINT64_C(1) << 43) - 1);
    /* an out-of-range bucket index reads as the last bucket, never out of bounds */
    assert_int_equal(tc__hist_bucket_low(TC__HIST_NBUCKETS + 7),
                     tc__hist_bucket_low(TC__HIST_NBUCKETS - 1));
    assert_int_equal(tc__hist_bucket_high(UINT32_MAX), (UINT64_C(1) << 43) - 1);
}

/* The buckets tile [0, 2^43) without gap or overlap, each at most 1/32 of its low bound wide. */
static void test_hist_buckets_tile_the_range(void **state) {
    (void)state;
    uint64_t next = 0;
    for (unsigned b = 0; b < TC__HIST_NBUCKETS; b++) {
        uint64_t lo = tc__hist_bucket_low(b), hi = tc__hist_bucket_high(b);
        assert_int_equal(lo, next);
        assert_true(hi >= lo);
        assert_int_equal(tc__hist_bucket(lo), b);
        assert_int_equal(tc__hist_bucket(hi), b);
        assert_true((hi - lo) * 32 <= lo || lo < 64);
        next = hi + 1;
    }
    assert_int_equal(next, UINT64_C(1) << 43);
}

static void test_hist_random_values_in_their_bucket(void **state) {
    (void)state;
    rng_state = 42;
    for (int i = 0; i < 200000; i++) {
        uint64_t v = rng_next() >> (rng_next() % 64);
        unsigned b = tc__hist_bucket(v);
        assert_true(b < TC__HIST_NBUCKETS);
        if (v < (UINT64_C(1) << 43)) {
            assert_true(tc__hist_bucket_low(b) <= v);
            assert_true(tc__hist_bucket_high(b) >= v);
            assert_true(tc__hist_bucket_high(b) - v <= v / 32);
        } else {
            assert_int_equal(b, TC__HIST_NBUCKETS - 1);
        }
    }
}

static void test_hist_summary_empty(void **state) {
    (void)state;
    uint64_t acc[TC__HIST_NBUCKETS] = {0};
    uint64_t n = 9, p50 = 9, p95 = 9, p99 = 9, mx = 9;
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 0);
    assert_int_equal(p50, 0);
    assert_int_equal(p95, 0);
    assert_int_equal(p99, 0);
    assert_int_equal(mx, 0);
}

static void test_hist_summary_small_exact(void **state) {
    (void)state;
    tc__hist *h = calloc(1, sizeof *h);
    assert_non_null(h);
    uint64_t acc[TC__HIST_NBUCKETS] = {0};
    uint64_t n, p50, p95, p99, mx;

    tc__hist_record(h, 0);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 1);
    assert_int_equal(p50, 0);
    assert_int_equal(p99, 0);
    assert_int_equal(mx, 0);

    /* 1..100: nearest rank gives 50, 95, 99; all are exact or in width-2 buckets ending there */
    memset(h, 0, sizeof *h);
    memset(acc, 0, sizeof acc);
    for (uint64_t v = 1; v <= 100; v++) tc__hist_record(h, v);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 100);
    assert_int_equal(p50, 50);
    assert_int_equal(p95, 95);
    assert_int_equal(p99, 99);
    assert_int_equal(mx, 101); /* 100 is in the bucket 100..101 */

    /* NULL outputs are allowed */
    tc__hist_summary(acc, NULL, &p50, NULL, NULL, NULL);
    assert_int_equal(p50, 50);

    /* one huge value: clamped, reported as the last bucket's bound */
    memset(h, 0, sizeof *h);
    memset(acc, 0, sizeof acc);
    tc__hist_record(h, UINT64_MAX);
    tc__hist_merge(acc, h);
    tc__hist_summary(acc, &n, &p50, &p95, &p99, &mx);
    assert_int_equal(n, 1);
    assert_int_equal(p50, (UINT64_C(1) << 43) - 1);
    assert_int_equal(mx, (UINT64_C(1) << 43) - 1);
    free(h);
}

/* Quantiles of 100k lognormal latencies (median 50 us, heavy tail) against the exact
 * nearest-rank quantiles of the sorted data: never below, never more than 1/32 above, and
 * exactly the upper bound of the bucket that holds the exact quantile. */
static void check_accuracy(uint64_t seed, double mu, double sigma) {
    enum { N = 100000 };
    uint64_t *v = malloc(N * sizeof *v);
    tc__hist *h = calloc(1, sizeof *h);
    uint64_t *acc = calloc(TC__HIST_NBUCKETS, sizeof *acc);
    assert_non_null(v);
    assert_non_null(h);
    assert_non_null(acc);
    rng_state = seed;
    for (int i = 0; i < N; i++) {
        v[i] = rng_lognormal(mu, sigma);
        tc__hist_record(h, v[i]);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    tc__hist_merge(acc, h);
    uint64_t n, q[3], mx;
    tc__hist_summary(acc, &n, &q[0], &q[1], &q[2], &mx);
    assert_int_equal(n, N);
    const double qs[3] = {0.50, 0.95, 0.99};
    for (int k = 0; k < 3; k++) {
        uint64_t exact = v[(size_t)ceil(qs[k] * N) - 1];
        assert_true(q[k] >= exact);
        assert_true((double)(q[k] - exact) <= (double)exact / 32.0);
        assert_int_equal(q[k], tc__hist_bucket_high(tc__hist_bucket(exact)));
    }
    assert_true(mx >= v[N - 1]);
    assert_true((double)(mx - v[N - 1]) <= (double)v[N - 1] / 32.0);
    free(v);
    free(h);
    free(acc);
}

static void test_hist_quantile_accuracy(void **state) {
    (void)state;
    check_accuracy(1, log(50000.0), 1.5); /* around 50 us */
    check_accuracy(2, log(2000000.0), 0.7); /* around 2 ms, narrower */
    check_accuracy(3, log(40.0), 1.0);   /* partly in the exact range */
}

static void test_hist_merge(void **state) {
    (void)state;
    tc__hist *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *all = calloc(1, sizeof *all);
    uint64_t *acc = calloc(TC__HIST_NBUCKETS, sizeof *acc);
    uint64_t *ref = calloc(TC__HIST_NBUCKETS, sizeof *ref);
    assert_true(a && b && all && acc && ref);
    rng_state = 7;
    for (int i = 0; i < 20000; i++) {
        uint64_t x = rng_lognormal(log(1e5), 2.0);
        tc__hist_record(i % 3 ? a : b, x);
        tc__hist_record(all, x);
    }
    tc__hist_merge(acc, a);
    tc__hist_merge(acc, b);
    tc__hist_merge(ref, all);
    assert_memory_equal(acc, ref, TC__HIST_NBUCKETS * sizeof *acc);
    /* merging adds: a second merge of the same histogram doubles every count */
    tc__hist_merge(acc, a);
    tc__hist_merge(acc, b);
    for (unsigned i = 0; i < TC__HIST_NBUCKETS; i++) assert_int_equal(acc[i], 2 * ref[i]);
    uint64_t n1, n2, p1, p2;
    tc__hist_summary(acc, &n1, &p1, NULL, NULL, NULL);
    tc__hist_summary(ref, &n2, &p2, NULL, NULL, NULL);
    assert_int_equal(n1, 2 * n2);
    assert_int_equal(p1, p2);
    free(a);
    free(b);
    free(all);
    free(acc);
    free(ref);
}

/* ======================================================================== */
/* A strict JSON parser (RFC 8259) building a tree                          */
/* ======================================================================== */

enum { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

typedef struct jv {
    int t;
    int b;          /* J_BOOL */
    double num;     /* J_NUM */
    char raw[64];   /* J_NUM: the number's text */
    char *s;        /* J_STR: decoded bytes, NUL-terminated */
    size_t slen;
    size_t n;       /* J_ARR, J_OBJ */
    struct jv *items;
    char **keys;    /* J_OBJ */
} jv;

typedef struct jp {
    const char *p, *end;
    const char *err;
} jp;

static void jv_free(jv *v) {
    free(v->s);
    for (size_t i = 0; i < v->n; i++) {
        jv_free(&v->items[i]);
        if (v->keys) free(v->keys[i]);
    }
    free(v->items);
    free(v->keys);
}

static void j_ws(jp *p) {
    while (p->p < p->end && (*p->p == ' ' || *p->p == '\t' || *p->p == '\n' || *p->p == '\r')) p->p++;
}

static int j_fail(jp *p, const char *msg) {
    if (!p->err) p->err = msg;
    return -1;
}

/* Decodes one UTF-8 sequence strictly (own code, not the library's). Returns its length or 0. */
static int utf8_check(const unsigned char *s, size_t n) {
    unsigned c = s[0], len, cp;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) len = 2, cp = c & 0x1F;
    else if ((c & 0xF0) == 0xE0) len = 3, cp = c & 0x0F;
    else if ((c & 0xF8) == 0xF0) len = 4, cp = c & 0x07;
    else return 0;
    if (n < len) return 0;
    for (unsigned i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    static const unsigned minv[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < minv[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return (int)len;
}

static void put_utf8(char **buf, size_t *len, unsigned cp) {
    char *o = *buf + *len;
    if (cp < 0x80) o[0] = (char)cp, *len += 1;
    else if (cp < 0x800) o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 63)), *len += 2;
    else if (cp < 0x10000)
        o[0] = (char)(0xE0 | cp >> 12), o[1] = (char)(0x80 | (cp >> 6 & 63)),
        o[2] = (char)(0x80 | (cp & 63)), *len += 3;
    else
        o[0] = (char)(0xF0 | cp >> 18), o[1] = (char)(0x80 | (cp >> 12 & 63)),
        o[2] = (char)(0x80 | (cp >> 6 & 63)), o[3] = (char)(0x80 | (cp & 63)), *len += 4;
}

static int j_hex4(jp *p, unsigned *out) {
    if (p->end - p->p < 4) return j_fail(p, "short \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = *p->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return j_fail(p, "bad hex digit");
    }
    *out = v;
    return 0;
}

static int j_string(jp *p, char **out, size_t *outlen) {
    if (p->p >= p->end || *p->p != '"') return j_fail(p, "expected string");
    p->p++;
    char *buf = malloc((size_t)(p->end - p->p) * 2 + 8);
    size_t len = 0;
    assert_non_null(buf);
    for (;;) {
        if (p->p >= p->end) { free(buf); return j_fail(p, "unterminated string"); }
        unsigned char c = (unsigned char)*p->p;
        if (c == '"') { p->p++; break; }
        if (c < 0x20) { free(buf); return j_fail(p, "raw control character in string"); }
        if (c == '\\') {
            p->p++;
            if (p->p >= p->end) { free(buf); return j_fail(p, "bad escape"); }
            char e = *p->p++;
            unsigned cp;
            switch (e) {
            case '"': buf[len++] = '"'; break;
            case '\\': buf[len++] = '\\'; break;
            case '/': buf[len++] = '/'; break;
            case 'b': buf[len++] = '\b'; break;
            case 'f': buf[len++] = '\f'; break;
            case 'n': buf[len++] = '\n'; break;
            case 'r': buf[len++] = '\r'; break;
            case 't': buf[len++] = '\t'; break;
            case 'u':
                if (j_hex4(p, &cp)) { free(buf); return -1; }
                if (cp >= 0xDC00 && cp <= 0xDFFF) { free(buf); return j_fail(p, "lone low surrogate"); }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    unsigned lo;
                    if (p->end - p->p < 2 || p->p[0] != '\\' || p->p[1] != 'u') {
                        free(buf);
                        return j_fail(p, "lone high surrogate");
                    }
                    p->p += 2;
                    if (j_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        free(buf);
                        return j_fail(p, "bad surrogate pair");
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(&buf, &len, cp);
                break;
            default: free(buf); return j_fail(p, "unknown escape");
            }
            continue;
        }
        int l = utf8_check((const unsigned char *)p->p, (size_t)(p->end - p->p));
        if (l == 0) { free(buf); return j_fail(p, "invalid UTF-8 in string"); }
        memcpy(buf + len, p->p, (size_t)l);
        len += (size_t)l;
        p->p += l;
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    return 0;
}

static int j_number(jp *p, jv *v) {
    const char *s = p->p;
    if (p->p < p->end && *p->p == '-') p->p++;
    if (p->p >= p->end) return j_fail(p, "bad number");
    if (*p->p == '0') p->p++;
    else if (*p->p >= '1' && *p->p <= '9') while (p->p < p->end && *p->p >= '0' && *p->p <= '9') p->p++;
    else return j_fail(p, "bad number");
    if (p->p < p->end && *p->p == '.') {
        p->p++;
        if (p->p >= p->end || *p->p < '0' || *p->p > '9') return j_fail(p, "bad fraction");
        while (p->p < p->end && *p->p >= '0' && *p->p <= '9') p->p++;
    }
    if (p->p < p->end && (*p->p == 'e' || *p->p == 'E')) {
        p->p++;
        if (p->p < p->end && (*p->p == '+' || *p->p == '-')) p->p++;
        if (p->p >= p->end || *p->p < '0' || *p->p > '9') return j_fail(p, "bad exponent");
        while (p->p < p->end && *p->p >= '0' && *p->p <= '9') p->p++;
    }
    size_t n = (size_t)(p->p - s);
    if (n >= sizeof v->raw) return j_fail(p, "number too long");
    v->t = J_NUM;
    memcpy(v->raw, s, n);
    v->raw[n] = '\0';
    v->num = strtod(v->raw, NULL);
    return 0;
}

static int j_value(jp *p, jv *v, int depth);

static int j_container(jp *p, jv *v, int depth, int obj) {
    char close = obj ? '}' : ']';
    p->p++;
    v->t = obj ? J_OBJ : J_ARR;
    j_ws(p);
    if (p->p < p->end && *p->p == close) { p->p++; return 0; }
    for (;;) {
        v->items = realloc(v->items, (v->n + 1) * sizeof *v->items);
        assert_non_null(v->items);
        memset(&v->items[v->n], 0, sizeof v->items[0]);
        if (obj) {
            v->keys = realloc(v->keys, (v->n + 1) * sizeof *v->keys);
            assert_non_null(v->keys);
            v->keys[v->n] = NULL;
        }
        v->n++;
        if (obj) {
            size_t kl;
            j_ws(p);
            if (j_string(p, &v->keys[v->n - 1], &kl)) return -1;
            for (size_t i = 0; i + 1 < v->n; i++)
                if (strcmp(v->keys[i], v->keys[v->n - 1]) == 0) return j_fail(p, "duplicate key");
            j_ws(p);
            if (p->p >= p->end || *p->p != ':') return j_fail(p, "expected ':'");
            p->p++;
        }
        if (j_value(p, &v->items[v->n - 1], depth + 1)) return -1;
        j_ws(p);
        if (p->p < p->end && *p->p == ',') { p->p++; continue; }
        if (p->p < p->end && *p->p == close) { p->p++; return 0; }
        return j_fail(p, "expected ',' or close");
    }
}

static int j_value(jp *p, jv *v, int depth) {
    if (depth > 64) return j_fail(p, "too deep");
    j_ws(p);
    if (p->p >= p->end) return j_fail(p, "unexpected end");
    size_t left = (size_t)(p->end - p->p);
    switch (*p->p) {
    case '{': return j_container(p, v, depth, 1);
    case '[': return j_container(p, v, depth, 0);
    case '"': v->t = J_STR; return j_string(p, &v->s, &v->slen);
    case 't':
        if (left >= 4 && !memcmp(p->p, "true", 4)) { p->p += 4; v->t = J_BOOL; v->b = 1; return 0; }
        return j_fail(p, "bad literal");
    case 'f':
        if (left >= 5 && !memcmp(p->p, "false", 5)) { p->p += 5; v->t = J_BOOL; return 0; }
        return j_fail(p, "bad literal");
    case 'n':
        if (left >= 4 && !memcmp(p->p, "null", 4)) { p->p += 4; v->t = J_NULL; return 0; }
        return j_fail(p, "bad literal");
    default: return j_number(p, v);
    }
}

/* Parses the whole text; fails the test with the parser's message when it is not JSON. */
static jv json_parse(const char *text) {
    jv v;
    memset(&v, 0, sizeof v);
    jp p = {text, text + strlen(text), NULL};
    int rc = j_value(&p, &v, 0);
    if (rc == 0) {
        j_ws(&p);
        if (p.p != p.end) rc = j_fail(&p, "trailing bytes");
    }
    if (rc != 0) {
        print_error("invalid JSON (%s) at offset %ld: %.60s\n", p.err, (long)(p.p - text), p.p);
        fail();
    }
    return v;
}

static jv *jget(jv *o, const char *k) {
    if (o == NULL || o->t != J_OBJ) return NULL;
    for (size_t i = 0; i < o->n; i++)
        if (strcmp(o->keys[i], k) == 0) return &o->items[i];
    return NULL;
}

/* The member k of o, which must exist and have type t. */
static jv *jreq(jv *o, const char *k, int t) {
    jv *v = jget(o, k);
    if (v == NULL || v->t != t) {
        print_error("member \"%s\" missing or of type %d instead of %d\n", k, v ? v->t : -1, t);
        fail();
    }
    return v;
}

static uint64_t jreq_u64(jv *o, const char *k) {
    jv *v = jreq(o, k, J_NUM);
    assert_null(strpbrk(v->raw, ".eE-")); /* a plain non-negative integer */
    return strtoull(v->raw, NULL, 10);
}

/* ======================================================================== */
/* Independent checks through Python                                        */
/* ======================================================================== */

/* Runs a Python script with text on its standard input; returns its exit status. */
static int run_python(const char *script, const char *text) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s -c '%s'", PYTHON, script);
    FILE *f = popen(cmd, "w");
    assert_non_null(f);
    fwrite(text, 1, strlen(text), f);
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static const char py_json[] =
    "import json, sys\n"
    "def pairs(kv):\n"
    "    keys = [k for k, _ in kv]\n"
    "    if len(keys) != len(set(keys)): raise ValueError(\"duplicate key\")\n"
    "    return dict(kv)\n"
    "def const(c): raise ValueError(\"not JSON: \" + c)\n"
    "json.loads(sys.stdin.buffer.read().decode(\"utf-8\"), object_pairs_hook=pairs,"
    " parse_constant=const)\n";

/* Every sample line must come out of prometheus_client's parser as one sample. */
static const char py_prom[] =
    "import sys\n"
    "from prometheus_client.parser import text_string_to_metric_families as parse\n"
    "text = sys.stdin.buffer.read().decode(\"utf-8\")\n"
    "n = sum(len(f.samples) for f in parse(text))\n"
    "lines = [l for l in text.split(\"\\n\") if l and not l.startswith(\"#\")]\n"
    "sys.exit(0 if n == len(lines) else 3)\n";

static void check_json_python(const char *text) {
    int rc = run_python(py_json, text);
    if (rc != 0) print_error("python json rejected:\n%s\n", text);
    assert_int_equal(rc, 0);
}

static void check_prom_python(const char *text) {
    int rc = run_python(py_prom, text);
    if (rc != 0) print_error("prometheus_client rejected:\n%s\n", text);
    assert_int_equal(rc, 0);
}

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
/* String buffer                                                            */
/* ======================================================================== */

static char *json_of(const void *s, size_t n) {
    tc__strbuf sb = TC__STRBUF_INIT;
    char *out;
    tc__sb_json_str(&sb, s, n);
    assert_int_equal(tc__sb_finish(&sb, &out), 0);
    return out;
}

static void test_strbuf_grows_and_formats(void **state) {
    (void)state;
    tc__strbuf sb = TC__STRBUF_INIT;
    char *out;
    assert_int_equal(tc__sb_finish(&sb, &out), 0); /* empty: an allocated "" */
    assert_string_equal(out, "");
    free(out);
    for (int i = 0; i < 5000; i++) assert_int_equal(tc__sb_printf(&sb, "%d,", i % 10), 0);
    assert_int_equal(sb.len, 10000);
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(tc__sb_printf(&sb, "<%s>", big), 0); /* larger than the free space */
    assert_int_equal(sb.len, 10000 + 2 + sizeof big - 1);
    assert_int_equal(tc__sb_append(&sb, "a\0b", 3), 0); /* binary-safe */
    assert_int_equal(sb.len, 10000 + 2 + sizeof big - 1 + 3);
    assert_int_equal(tc__sb_finish(&sb, &out), 0);
    assert_memory_equal(out, "0,1,2,3,", 8);
    assert_int_equal(out[10000], '<');
    assert_int_equal(out[10000 + sizeof big], '>');
    assert_memory_equal(out + 10000 + sizeof big + 1, "a\0b", 4);
    assert_null(sb.data); /* finish leaves the buffer empty */
    free(out);
}

static void test_json_escaping(void **state) {
    (void)state;
    struct { const char *in; size_t n; const char *out; } cases[] = {
        {"plain", 5, "\"plain\""},
        {"", 0, "\"\""},
        {"q\"b\\s/", 6, "\"q\\\"b\\\\s/\""},
        {"\b\f\n\r\t", 5, "\"\\b\\f\\n\\r\\t\""},
        {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9, "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\""},
        {"\xe2\x80\xa8\xe2\x80\xa9", 6, "\"\\u2028\\u2029\""},
        {"\x80", 1, "\"\\ufffd\""},                        /* stray continuation */
        {"\xc1\xbf", 2, "\"\\ufffd\\ufffd\""},             /* overlong */
        {"\xe0\x80\xaf", 3, "\"\\ufffd\\ufffd\\ufffd\""},  /* overlong 3-byte */
        {"\xed\xa0\x80", 3, "\"\\ufffd\\ufffd\\ufffd\""},  /* surrogate */
        {"\xf4\x90\x80\x80", 4, "\"\\ufffd\\ufffd\\ufffd\\ufffd\""}, /* above U+10FFFF */
        {"\xf5", 1, "\"\\ufffd\""},
        {"x\xe2\x82", 3, "\"x\\ufffd\\ufffd\""},           /* truncated at the end */
        {"\xf0\x9f\x98" "a", 4, "\"\\ufffd\\ufffd\\ufffd" "a\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *out = json_of(cases[i].in, cases[i].n);
        assert_string_equal(out, cases[i].out);
        free(out);
    }
    /* every single byte and many random byte strings come out as valid JSON that decodes to
     * the input where the input was valid UTF-8 */
    for (unsigned c = 0; c < 256; c++) {
        unsigned char b = (unsigned char)c;
        char *out = json_of(&b, 1);
        jv v = json_parse(out);
        assert_int_equal(v.t, J_STR);
        if (c < 0x80) {
            assert_int_equal(v.slen, 1);
            assert_int_equal((unsigned char)v.s[0], c);
        } else {
            assert_string_equal(v.s, "\xef\xbf\xbd");
        }
        jv_free(&v);
        free(out);
    }
    rng_state = 99;
    for (int i = 0; i < 2000; i++) {
        unsigned char buf[24];
        size_t n = rng_next() % sizeof buf;
        for (size_t k = 0; k < n; k++) buf[k] = (unsigned char)rng_next();
        char *out = json_of(buf, n);
        jv v = json_parse(out);
        assert_int_equal(v.t, J_STR);
        int valid = 1;
        for (size_t k = 0; k < n && valid;) {
            int l = utf8_check(buf + k, n - k);
            valid = l > 0;
            k += (size_t)l;
        }
        if (valid) {
            assert_int_equal(v.slen, n);
            assert_memory_equal(v.s, buf, n);
        }
        jv_free(&v);
        free(out);
    }
}

static void test_utf8_seq_len(void **state) {
    (void)state;
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"a", 1), 1);
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"\xc2\x80", 2), 2);
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"\xc2\x80", 1), 0);
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"\xef\xbf\xbf", 3), 3);
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4), 4);
    assert_int_equal(tc__utf8_seq_len((const unsigned char *)"\xf0\x8f\xbf\xbf", 4), 0);
    /* agrees with the test's own decoder on every 3-byte prefix with a few tails */
    unsigned char s[4];
    for (unsigned a = 0x80; a < 0x100; a++)
        for (unsigned b = 0x70; b < 0xD0; b++)
            for (unsigned c = 0x70; c < 0xD0; c += 0x0F) {
                s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c, s[3] = 0x80;
                assert_int_equal(tc__utf8_seq_len(s, 4), (size_t)utf8_check(s, 4));
            }
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
    jv v = json_parse(out);
    jv *tiers = jreq(&v, "tiers", J_ARR);
    assert_int_equal(tiers->n, 3);
    assert_int_equal(jreq_u64(&v, "ntiers"), 3);
    jv *t = &tiers->items[2];
    assert_int_equal(jreq(t, "type", J_STR)->slen, sizeof st.tiers[2].type);
    jv *extra = jreq(t, "extra", J_OBJ);
    /* 16 extras read: the unterminated one, the hostile ones but the duplicate "path", and
     * the zeroed rest, all named "" like hostile[12], so dropped as duplicates */
    assert_int_equal(extra->n, 12);
    assert_int_equal(strlen(extra->keys[0]), sizeof st.tiers[2].extra[0].name);
    assert_int_equal(extra->items[0].slen, sizeof st.tiers[2].extra[0].value);
    jv_free(&v);
    free(out);
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    check_prom_python(out);
    free(out);

    st.st.ntiers = -5;
    st.st.uptime_s = NAN;
    assert_int_equal(tc__render_health(&st, NULL, &out), 0);
    v = json_parse(out);
    assert_string_equal(jreq(&v, "status", J_STR)->s, "unhealthy");
    jv *deps = jreq(&v, "dependencies", J_ARR);
    assert_int_equal(jreq(jreq(&deps->items[0], "stats", J_OBJ), "tiers", J_ARR)->n, 0);
    assert_string_equal(jreq(&v, "uptime", J_NUM)->raw, "0");
    jv_free(&v);
    free(out);
}

/* ======================================================================== */
/* The health document                                                      */
/* ======================================================================== */

static void check_extras_json(jv *obj, const tc_tier_stats *t) {
    assert_int_equal(obj->t, J_OBJ);
    if (t->nextra == 0) {
        assert_int_equal(obj->n, 0);
        return;
    }
    if (t->nextra == 1) {
        assert_int_equal(obj->n, 1);
        assert_string_equal(jreq(obj, "shards", J_STR)->s, "16");
        return;
    }
    size_t expect = 0;
    for (size_t i = 0; i < NHOSTILE; i++) {
        if (hostile[i].json_value == NULL) continue; /* a duplicate name: the first one wins */
        expect++;
        jv *v = jreq(obj, hostile[i].name, J_STR);
        assert_int_equal(v->slen, strlen(hostile[i].json_value));
        assert_memory_equal(v->s, hostile[i].json_value, v->slen);
    }
    assert_int_equal(obj->n, expect);
}

static void check_health(int ntiers, int down, const char *want_status) {
    tc__snapshot st = make_stats(ntiers, down);
    const char *status = tc__health_status(&st);
    assert_string_equal(status, want_status);
    char *out;
    time_t before = time(NULL);
    assert_int_equal(tc__render_health(&st, status, &out), 0);
    time_t after = time(NULL);
    check_json_python(out);
    jv doc = json_parse(out);
    assert_int_equal(doc.t, J_OBJ);
    assert_string_equal(jreq(&doc, "service", J_STR)->s, "tiercache");
    assert_string_equal(jreq(&doc, "version", J_STR)->s, TC_VERSION_STRING);
    assert_string_equal(jreq(&doc, "status", J_STR)->s, want_status);

    jv *deps = jreq(&doc, "dependencies", J_ARR);
    assert_int_equal(deps->n, 1);
    jv *dep = &deps->items[0];
    assert_string_equal(jreq(dep, "name", J_STR)->s, "CacheBackend");
    assert_string_equal(jreq(dep, "status", J_STR)->s, want_status);
    jv *tiers = jreq(jreq(dep, "stats", J_OBJ), "tiers", J_ARR);
    assert_int_equal(tiers->n, (size_t)ntiers);
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        jv *o = &tiers->items[i];
        assert_string_equal(jreq(o, "tier", J_STR)->s, tc_tier_name(t->tier));
        assert_string_equal(jreq(o, "type", J_STR)->s, t->type);
        assert_int_equal(jreq(o, "available", J_BOOL)->b, i != down);
        assert_int_equal(jreq_u64(o, "entries"), t->entries);
        assert_int_equal(jreq_u64(o, "bytes"), t->bytes);
        assert_int_equal(jreq_u64(o, "maxEntries"), t->max_entries);
        assert_int_equal(jreq_u64(o, "maxBytes"), t->max_bytes);
        assert_int_equal(jreq_u64(o, "hits"), t->hits);
        assert_int_equal(jreq_u64(o, "misses"), t->misses);
        assert_int_equal(jreq_u64(o, "sets"), t->sets);
        assert_int_equal(jreq_u64(o, "deletes"), t->deletes);
        assert_int_equal(jreq_u64(o, "evictions"), t->evictions);
        assert_int_equal(jreq_u64(o, "expirations"), t->expirations);
        assert_int_equal(jreq_u64(o, "errors"), t->errors);
        jv *lat = jreq(o, "latency", J_OBJ);
        assert_int_equal(jreq_u64(lat, "samples"), t->latency_samples);
        assert_true(fabs(jreq(lat, "p50Ms", J_NUM)->num - (double)t->p50_ns / 1e6) < 1e-9);
        assert_true(fabs(jreq(lat, "p95Ms", J_NUM)->num - (double)t->p95_ns / 1e6) < 1e-9);
        assert_true(fabs(jreq(lat, "p99Ms", J_NUM)->num - (double)t->p99_ns / 1e6) < 1e-6);
        assert_true(fabs(jreq(lat, "maxMs", J_NUM)->num - (double)t->max_ns / 1e6) < 1e-6);
        check_extras_json(jreq(o, "metadata", J_OBJ), t);
    }
    /* 42100 ns + 1000 ns = 43100 ns is written exactly as 0.0431 ms */
    assert_string_equal(jreq(jreq(&tiers->items[0], "latency", J_OBJ), "p50Ms", J_NUM)->raw, "0.0431");

    const char *ts = jreq(&doc, "timestamp", J_STR)->s;
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

    assert_string_equal(jreq(&doc, "uptime", J_NUM)->raw, "3723.5");

    jv *tm_ = jreq(&doc, "tierMetrics", J_OBJ);
    assert_int_equal(jreq_u64(tm_, "hits"), 900);
    assert_int_equal(jreq_u64(tm_, "misses"), 100);
    assert_int_equal(jreq_u64(tm_, "errors"), 3);
    assert_string_equal(jreq(tm_, "hitRate", J_NUM)->raw, "0.9");
    assert_string_equal(jreq(tm_, "lastHitTier", J_STR)->s, "L2");
    assert_string_equal(jreq(tm_, "latencyP50", J_NUM)->raw, "0.0421");
    assert_string_equal(jreq(tm_, "latencyP95", J_NUM)->raw, "0.95");
    assert_string_equal(jreq(tm_, "latencyP99", J_NUM)->raw, "12.345678");
    jv_free(&doc);
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
    check_json_python(out);
    jv doc = json_parse(out);
    jv *tm = jreq(&doc, "tierMetrics", J_OBJ);
    assert_string_equal(jreq(tm, "hitRate", J_NUM)->raw, "0");
    assert_non_null(jreq(tm, "lastHitTier", J_NULL));
    assert_string_equal(jreq(tm, "latencyP50", J_NUM)->raw, "0");
    jv_free(&doc);
    free(out);
    /* all hits: exactly 1 */
    st.st.hits = 5;
    assert_int_equal(tc__render_health(&st, "healthy", &out), 0);
    doc = json_parse(out);
    assert_string_equal(jreq(jreq(&doc, "tierMetrics", J_OBJ), "hitRate", J_NUM)->raw, "1");
    jv_free(&doc);
    free(out);
}

/* ======================================================================== */
/* The JSON dump                                                            */
/* ======================================================================== */

static void check_stats_json(int ntiers, int down) {
    tc__snapshot st = make_stats(ntiers, down);
    char *out;
    assert_int_equal(tc__render_stats_json(&st, &out), 0);
    check_json_python(out);
    jv doc = json_parse(out);
    assert_string_equal(jreq(&doc, "status", J_STR)->s, tc__health_status(&st));
    assert_int_equal(jreq_u64(&doc, "hits"), st.st.hits);
    assert_int_equal(jreq_u64(&doc, "misses"), st.st.misses);
    assert_int_equal(jreq_u64(&doc, "errors"), st.st.errors);
    assert_int_equal(jreq_u64(&doc, "loads"), st.st.loads);
    assert_int_equal(jreq_u64(&doc, "load_errors"), st.st.load_errors);
    assert_int_equal(jreq_u64(&doc, "load_waits"), st.st.load_waits);
    assert_string_equal(jreq(&doc, "last_hit_tier", J_STR)->s, "L2");
    assert_int_equal(jreq_u64(&doc, "latency_samples"), st.st.latency_samples);
    assert_int_equal(jreq_u64(&doc, "p50_ns"), st.st.p50_ns);
    assert_int_equal(jreq_u64(&doc, "p95_ns"), st.st.p95_ns);
    assert_int_equal(jreq_u64(&doc, "p99_ns"), st.st.p99_ns);
    assert_int_equal(jreq_u64(&doc, "max_ns"), st.st.max_ns);
    assert_string_equal(jreq(&doc, "uptime_s", J_NUM)->raw, "3723.5");
    assert_string_equal(jreq(&doc, "hit_rate", J_NUM)->raw, "0.9");
    assert_int_equal(jreq_u64(&doc, "ntiers"), ntiers);
    jv *tiers = jreq(&doc, "tiers", J_ARR);
    assert_int_equal(tiers->n, (size_t)ntiers);
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        jv *o = &tiers->items[i];
        assert_string_equal(jreq(o, "tier", J_STR)->s, tc_tier_name(t->tier));
        assert_string_equal(jreq(o, "type", J_STR)->s, t->type);
        assert_int_equal(jreq(o, "available", J_BOOL)->b, i != down);
        assert_int_equal(jreq_u64(o, "hits"), t->hits);
        assert_int_equal(jreq_u64(o, "misses"), t->misses);
        assert_int_equal(jreq_u64(o, "sets"), t->sets);
        assert_int_equal(jreq_u64(o, "deletes"), t->deletes);
        assert_int_equal(jreq_u64(o, "evictions"), t->evictions);
        assert_int_equal(jreq_u64(o, "expirations"), t->expirations);
        assert_int_equal(jreq_u64(o, "errors"), t->errors);
        assert_int_equal(jreq_u64(o, "entries"), t->entries);
        assert_int_equal(jreq_u64(o, "bytes"), t->bytes);
        assert_int_equal(jreq_u64(o, "max_entries"), t->max_entries);
        assert_int_equal(jreq_u64(o, "max_bytes"), t->max_bytes);
        assert_int_equal(jreq_u64(o, "latency_samples"), t->latency_samples);
        assert_int_equal(jreq_u64(o, "p50_ns"), t->p50_ns);
        assert_int_equal(jreq_u64(o, "p95_ns"), t->p95_ns);
        assert_int_equal(jreq_u64(o, "p99_ns"), t->p99_ns);
        assert_int_equal(jreq_u64(o, "max_ns"), t->max_ns);
        check_extras_json(jreq(o, "extra", J_OBJ), t);
    }
    jv_free(&doc);
    free(out);
}

static void test_stats_json_tiers(void **state) {
    (void)state;
    check_stats_json(1, -1);
    check_stats_json(2, 1);
    check_stats_json(3, 1);
}

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
    check_json_python(out);
    jv doc = json_parse(out);
    assert_string_equal(jreq(&doc, "hits", J_NUM)->raw, "18446744073709551615");
    assert_string_equal(jreq(&doc, "hit_rate", J_NUM)->raw, "0.5");
    assert_non_null(jreq(&doc, "last_hit_tier", J_NULL));
    assert_string_equal(jreq(&jreq(&doc, "tiers", J_ARR)->items[0], "bytes", J_NUM)->raw,
                        "18446744073709551614");
    assert_non_null(jreq(&jreq(&doc, "tiers", J_ARR)->items[0], "entries", J_NULL));
    jv_free(&doc);
    free(out);
}

/* ======================================================================== */
/* Prometheus                                                               */
/* ======================================================================== */

typedef struct plabel {
    char name[64];
    char value[512];
} plabel;

typedef struct psample {
    char name[128];
    char family[128];
    int nlabels;
    plabel labels[24];
    double value;
    char raw[64];
} psample;

typedef struct pfamily {
    char name[128];
    char type[16];
    int help, typed, nsamples;
    int closed; /* samples of another family came after this one's */
} pfamily;

typedef struct pdoc {
    int nsamples, nfamilies;
    psample samples[512];
    pfamily families[64];
} pdoc;

static int metric_name_ok(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static int label_name_ok(const char *s, size_t n) {
    if (n == 0 || (n >= 2 && s[0] == '_' && s[1] == '_')) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                 (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

static pfamily *pfind(pdoc *d, const char *name) {
    for (int i = 0; i < d->nfamilies; i++)
        if (strcmp(d->families[i].name, name) == 0) return &d->families[i];
    return NULL;
}

static pfamily *padd(pdoc *d, const char *name, size_t n) {
    char buf[128];
    assert_true(n < sizeof buf);
    memcpy(buf, name, n);
    buf[n] = '\0';
    pfamily *f = pfind(d, buf);
    if (f) return f;
    assert_true(d->nfamilies < 64);
    f = &d->families[d->nfamilies++];
    memset(f, 0, sizeof *f);
    strcpy(f->name, buf);
    return f;
}

#define PFAIL(...)                                                   \
    do {                                                             \
        print_error("line %d: ", lineno);                            \
        print_error(__VA_ARGS__);                                    \
        print_error("\n");                                           \
        fail();                                                      \
    } while (0)

/* Parses the exposition text strictly: every line a HELP, a TYPE or a sample; HELP and TYPE
 * once per family and before its samples; a family's samples contiguous; counters named
 * *_total; label names valid, unique per sample; label values with only \\ \" \n escapes and
 * valid UTF-8; values that parse as floats; the text ends with a newline. */
static void prom_parse(const char *text, pdoc *d) {
    memset(d, 0, sizeof *d);
    size_t tlen = strlen(text);
    assert_true(tlen > 0 && text[tlen - 1] == '\n');
    const char *p = text;
    int lineno = 0;
    pfamily *current = NULL;
    while (*p) {
        const char *eol = strchr(p, '\n');
        size_t n = (size_t)(eol - p);
        lineno++;
        if (n == 0) PFAIL("empty line");
        if (*p == '#') {
            int help = n > 7 && !strncmp(p, "# HELP ", 7), type = n > 7 && !strncmp(p, "# TYPE ", 7);
            if (!help && !type) PFAIL("comment that is neither HELP nor TYPE");
            const char *name = p + 7;
            const char *sp = memchr(name, ' ', (size_t)(eol - name));
            if (sp == NULL || !metric_name_ok(name, (size_t)(sp - name))) PFAIL("bad family name");
            pfamily *f = padd(d, name, (size_t)(sp - name));
            if (f->nsamples) PFAIL("HELP/TYPE after samples of %s", f->name);
            if (help) {
                if (f->help++) PFAIL("second HELP for %s", f->name);
                if (sp + 1 >= eol) PFAIL("empty HELP");
            } else {
                if (f->typed++) PFAIL("second TYPE for %s", f->name);
                size_t tl = (size_t)(eol - sp - 1);
                if (tl >= sizeof f->type) PFAIL("bad type");
                memcpy(f->type, sp + 1, tl);
                if (strcmp(f->type, "counter") && strcmp(f->type, "gauge") &&
                    strcmp(f->type, "summary") && strcmp(f->type, "histogram") &&
                    strcmp(f->type, "untyped"))
                    PFAIL("unknown type %s", f->type);
                if (!strcmp(f->type, "counter") &&
                    (strlen(f->name) < 6 || strcmp(f->name + strlen(f->name) - 6, "_total")))
                    PFAIL("counter %s does not end in _total", f->name);
            }
            p = eol + 1;
            continue;
        }
        assert_true(d->nsamples < 512);
        psample *s = &d->samples[d->nsamples++];
        memset(s, 0, sizeof *s);
        const char *q = p;
        while (q < eol && *q != '{' && *q != ' ') q++;
        if (!metric_name_ok(p, (size_t)(q - p)) || (size_t)(q - p) >= sizeof s->name)
            PFAIL("bad metric name");
        memcpy(s->name, p, (size_t)(q - p));
        if (q < eol && *q == '{') {
            q++;
            while (q < eol && *q != '}') {
                assert_true(s->nlabels < 24);
                plabel *l = &s->labels[s->nlabels++];
                const char *eq = memchr(q, '=', (size_t)(eol - q));
                if (!eq || !label_name_ok(q, (size_t)(eq - q)) || (size_t)(eq - q) >= sizeof l->name)
                    PFAIL("bad label name");
                memcpy(l->name, q, (size_t)(eq - q));
                for (int i = 0; i + 1 < s->nlabels; i++)
                    if (!strcmp(s->labels[i].name, l->name)) PFAIL("duplicate label %s", l->name);
                q = eq + 1;
                if (q >= eol || *q != '"') PFAIL("label value not quoted");
                q++;
                size_t vl = 0;
                while (q < eol && *q != '"') {
                    if (vl + 4 >= sizeof l->value) PFAIL("label value too long");
                    if (*q == '\\') {
                        q++;
                        if (q >= eol) PFAIL("escape at end of line");
                        if (*q == '\\') l->value[vl++] = '\\';
                        else if (*q == '"') l->value[vl++] = '"';
                        else if (*q == 'n') l->value[vl++] = '\n';
                        else PFAIL("bad escape \\%c", *q);
                        q++;
                        continue;
                    }
                    int ul = utf8_check((const unsigned char *)q, (size_t)(eol - q));
                    if (ul == 0) PFAIL("invalid UTF-8 in label value");
                    memcpy(l->value + vl, q, (size_t)ul);
                    vl += (size_t)ul;
                    q += ul;
                }
                if (q >= eol) PFAIL("unterminated label value");
                q++;
                if (q < eol && *q == ',') q++;
                else if (q < eol && *q != '}') PFAIL("expected , or }");
            }
            if (q >= eol) PFAIL("unterminated label set");
            q++;
        }
        if (q >= eol || *q != ' ') PFAIL("no space before the value");
        q++;
        size_t vl = (size_t)(eol - q);
        if (vl == 0 || vl >= sizeof s->raw || memchr(q, ' ', vl)) PFAIL("bad value field");
        memcpy(s->raw, q, vl);
        if (!strcmp(s->raw, "NaN")) s->value = NAN;
        else {
            char *end;
            s->value = strtod(s->raw, &end);
            if (*end) PFAIL("value %s is not a number", s->raw);
        }
        /* the family: the name itself, or a summary's _count / _sum */
        pfamily *f = pfind(d, s->name);
        if (f == NULL) {
            char base[128];
            size_t nl = strlen(s->name);
            strcpy(base, s->name);
            if (nl > 6 && !strcmp(base + nl - 6, "_count")) base[nl - 6] = '\0';
            else if (nl > 4 && !strcmp(base + nl - 4, "_sum")) base[nl - 4] = '\0';
            f = pfind(d, base);
            if (f == NULL || strcmp(f->type, "summary")) PFAIL("sample %s of no family", s->name);
        } else if (!strcmp(f->type, "summary")) {
            int has_q = 0;
            for (int i = 0; i < s->nlabels; i++) has_q |= !strcmp(s->labels[i].name, "quantile");
            if (!has_q) PFAIL("summary sample without quantile");
        }
        if (!f->help || !f->typed) PFAIL("sample of %s before its HELP and TYPE", f->name);
        if (f != current) {
            if (current) current->closed = 1;
            if (f->closed) PFAIL("samples of %s are not contiguous", f->name);
            current = f;
        }
        f->nsamples++;
        strcpy(s->family, f->name);
        p = eol + 1;
    }
    for (int i = 0; i < d->nfamilies; i++) {
        pfamily *f = &d->families[i];
        if (!f->help || !f->typed || !f->nsamples) {
            print_error("family %s: help %d type %d samples %d\n", f->name, f->help, f->typed,
                        f->nsamples);
            fail();
        }
    }
}

static const char *plabel_get(const psample *s, const char *name) {
    for (int i = 0; i < s->nlabels; i++)
        if (!strcmp(s->labels[i].name, name)) return s->labels[i].value;
    return NULL;
}

/* The sample name{l1="v1"[,l2="v2"]}: must exist once. */
static const psample *pget(const pdoc *d, const char *name, const char *l1, const char *v1,
                           const char *l2, const char *v2) {
    const psample *found = NULL;
    for (int i = 0; i < d->nsamples; i++) {
        const psample *s = &d->samples[i];
        if (strcmp(s->name, name)) continue;
        const char *a = l1 ? plabel_get(s, l1) : NULL, *b = l2 ? plabel_get(s, l2) : NULL;
        if ((l1 && (!a || strcmp(a, v1))) || (l2 && (!b || strcmp(b, v2)))) continue;
        if (found) {
            print_error("sample %s found twice\n", name);
            fail();
        }
        found = s;
    }
    if (!found) {
        print_error("sample %s{%s=%s,%s=%s} missing\n", name, l1 ? l1 : "", v1 ? v1 : "",
                    l2 ? l2 : "", v2 ? v2 : "");
        fail();
    }
    return found;
}

static void check_prometheus(int ntiers, int down) {
    tc__snapshot st = make_stats(ntiers, down);
    char *out;
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    check_prom_python(out);
    pdoc *d = malloc(sizeof *d);
    assert_non_null(d);
    prom_parse(out, d);

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
        pfamily *f = pfind(d, counters[c].name);
        assert_non_null(f);
        assert_string_equal(f->type, strstr(counters[c].name, "_total") ? "counter" : "gauge");
        assert_int_equal(f->nsamples, ntiers);
        for (int i = 0; i < ntiers; i++) {
            uint64_t want;
            memcpy(&want, (const char *)&st.tiers[i] + counters[c].off, sizeof want);
            const psample *s = pget(d, counters[c].name, "tier", tc_tier_name(i + 1), NULL, NULL);
            assert_int_equal(s->nlabels, 1);
            assert_int_equal(strtoull(s->raw, NULL, 10), want);
        }
    }
    for (int i = 0; i < ntiers; i++) {
        const tc_tier_stats *t = &st.tiers[i];
        const char *tn = tc_tier_name(i + 1);
        assert_string_equal(pget(d, "tiercache_tier_up", "tier", tn, NULL, NULL)->raw,
                            i == down ? "0" : "1");
        const psample *q50 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.5");
        assert_true(fabs(q50->value - (double)t->p50_ns / 1e9) < 1e-12);
        const psample *q95 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.95");
        assert_true(fabs(q95->value - (double)t->p95_ns / 1e9) < 1e-12);
        const psample *q99 = pget(d, "tiercache_tier_latency_seconds", "tier", tn, "quantile", "0.99");
        assert_true(fabs(q99->value - (double)t->p99_ns / 1e9) < 1e-9);
        assert_int_equal(
            strtoull(pget(d, "tiercache_tier_latency_seconds_count", "tier", tn, NULL, NULL)->raw, NULL, 10),
            t->latency_samples);
        const psample *info = pget(d, "tiercache_tier_info", "tier", tn, NULL, NULL);
        assert_string_equal(info->raw, "1");
        assert_string_equal(plabel_get(info, "type"), t->type);
        if (t->nextra == 0) {
            assert_int_equal(info->nlabels, 2);
        } else if (t->nextra == 1) {
            assert_int_equal(info->nlabels, 3);
            assert_string_equal(plabel_get(info, "shards"), "16");
        } else {
            /* names sanitised; label values escaped and decoded back to the original bytes,
             * except invalid UTF-8, replaced by U+FFFD; "tier", the duplicate "path" and the
             * empty name are dropped */
            assert_string_equal(plabel_get(info, "quote_name"), "say \"hi\"");
            assert_string_equal(plabel_get(info, "path"), "C:\\dir\\");
            assert_string_equal(plabel_get(info, "multi_line"), "a\nb\r\nc");
            assert_string_equal(plabel_get(info, "ctl"), "\x01\x1f\t\x7f");
            assert_string_equal(plabel_get(info, "utf8"), hostile[4].value);
            assert_string_equal(plabel_get(info, "bad_utf8"), hostile[5].json_value);
            assert_string_equal(plabel_get(info, "truncated"), hostile[6].json_value);
            assert_string_equal(plabel_get(info, "js_sep"), hostile[7].value);
            assert_string_equal(plabel_get(info, "_9lives"), "cat");
            assert_string_equal(plabel_get(info, "_reserved"), "r");
            assert_string_equal(plabel_get(info, "tier"), tn);
            assert_int_equal(info->nlabels, 2 + 10);
        }
    }
    assert_int_equal(pget(d, "tiercache_requests_total", "result", "hit", NULL, NULL)->value, 900);
    assert_int_equal(pget(d, "tiercache_requests_total", "result", "miss", NULL, NULL)->value, 100);
    assert_string_equal(pget(d, "tiercache_errors_overall_total", NULL, NULL, NULL, NULL)->raw, "3");
    assert_string_equal(pget(d, "tiercache_loads_total", NULL, NULL, NULL, NULL)->raw, "40");
    assert_string_equal(pget(d, "tiercache_load_errors_total", NULL, NULL, NULL, NULL)->raw, "2");
    assert_string_equal(pget(d, "tiercache_load_waits_total", NULL, NULL, NULL, NULL)->raw, "17");
    assert_string_equal(pget(d, "tiercache_uptime_seconds", NULL, NULL, NULL, NULL)->raw, "3723.5");
    assert_string_equal(pget(d, "tiercache_latency_seconds", "quantile", "0.5", NULL, NULL)->raw,
                        "0.0000421");
    assert_string_equal(pget(d, "tiercache_latency_seconds", "quantile", "0.95", NULL, NULL)->raw,
                        "0.00095");
    assert_string_equal(pget(d, "tiercache_latency_seconds", "quantile", "0.99", NULL, NULL)->raw,
                        "0.012345678");
    assert_string_equal(pget(d, "tiercache_latency_seconds_count", NULL, NULL, NULL, NULL)->raw,
                        "1000");
    assert_string_equal(pget(d, "tiercache_latency_max_seconds", NULL, NULL, NULL, NULL)->raw,
                        "99.999999999");
    assert_string_equal(pget(d, "tiercache_build_info", "version", TC_VERSION_STRING, NULL, NULL)->raw,
                        "1");
    assert_string_equal(pfind(d, "tiercache_latency_seconds")->type, "summary");
    assert_string_equal(pfind(d, "tiercache_tier_latency_seconds")->type, "summary");
    assert_string_equal(pfind(d, "tiercache_tier_up")->type, "gauge");
    assert_string_equal(pfind(d, "tiercache_tier_info")->type, "gauge");
    assert_string_equal(pfind(d, "tiercache_uptime_seconds")->type, "gauge");
    free(d);
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
    check_prom_python(out);
    pdoc *d = malloc(sizeof *d);
    assert_non_null(d);
    prom_parse(out, d);
    assert_null(pfind(d, "tiercache_hits_total"));
    assert_null(pfind(d, "tiercache_tier_info"));
    assert_string_equal(pget(d, "tiercache_latency_seconds", "quantile", "0.99", NULL, NULL)->raw,
                        "NaN");
    assert_string_equal(pget(d, "tiercache_latency_seconds_count", NULL, NULL, NULL, NULL)->raw, "0");
    assert_string_equal(pget(d, "tiercache_requests_total", "result", "hit", NULL, NULL)->raw, "0");
    free(d);
    free(out);

    st = make_stats(1, -1);
    st.tiers[0].latency_samples = 0;
    assert_int_equal(tc__render_prometheus(&st, &out), 0);
    d = malloc(sizeof *d);
    assert_non_null(d);
    prom_parse(out, d);
    assert_string_equal(
        pget(d, "tiercache_tier_latency_seconds", "tier", "L1", "quantile", "0.5")->raw, "NaN");
    free(d);
    free(out);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* a Python that dies early fails its check, not the process */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hist_edge_values),
        cmocka_unit_test(test_hist_buckets_tile_the_range),
        cmocka_unit_test(test_hist_random_values_in_their_bucket),
        cmocka_unit_test(test_hist_summary_empty),
        cmocka_unit_test(test_hist_summary_small_exact),
        cmocka_unit_test(test_hist_quantile_accuracy),
        cmocka_unit_test(test_hist_merge),
        cmocka_unit_test(test_strbuf_grows_and_formats),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_utf8_seq_len),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
