/*
 * json_check.c -- test helper: a strict recursive-descent JSON validator and member lookup.
 *
 * skip_value() returns the end of one value or NULL; it checks the grammar of RFC 8259
 * (strings with their escapes and no raw control characters, numbers without leading zeros,
 * literals) and nothing else. Lookup walks objects member by member with the same skipper.
 */
#include "helpers/json_check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct jctx {
    const char *start, *end;
    const char *fail; /* where parsing failed */
    const char *why;
} jctx;

static const char *fail(jctx *j, const char *at, const char *why) {
    if (j->fail == NULL) j->fail = at, j->why = why;
    return NULL;
}

static const char *skip_ws(const jctx *j, const char *p) {
    while (p < j->end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static const char *skip_string(jctx *j, const char *p) {
    if (p >= j->end || *p != '"') return fail(j, p, "expected a string");
    for (p++; p < j->end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return fail(j, p, "control character in a string");
        if (c == '\\') {
            if (++p >= j->end) break;
            if (*p == 'u') {
                for (int k = 1; k <= 4; k++)
                    if (p + k >= j->end || !is_hex(p[k])) return fail(j, p, "bad \\u escape");
                p += 4;
            } else if (!strchr("\"\\/bfnrt", *p)) {
                return fail(j, p, "bad escape");
            }
        }
    }
    return fail(j, p, "unterminated string");
}

static const char *skip_digits(const jctx *j, const char *p) {
    while (p < j->end && *p >= '0' && *p <= '9') p++;
    return p;
}

static const char *skip_number(jctx *j, const char *p) {
    const char *q = p;
    if (q < j->end && *q == '-') q++;
    if (q >= j->end || *q < '0' || *q > '9') return fail(j, p, "bad number");
    if (*q == '0') q++;
    else q = skip_digits(j, q);
    if (q < j->end && *q == '.') {
        const char *d = skip_digits(j, q + 1);
        if (d == q + 1) return fail(j, q, "bad fraction");
        q = d;
    }
    if (q < j->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < j->end && (*q == '+' || *q == '-')) q++;
        const char *d = skip_digits(j, q);
        if (d == q) return fail(j, q, "bad exponent");
        q = d;
    }
    return q;
}

static const char *skip_value(jctx *j, const char *p, int depth);

static const char *skip_container(jctx *j, const char *p, int depth, char close, int object) {
    if (depth >= JSON_MAX_DEPTH) return fail(j, p, "nested too deep");
    p = skip_ws(j, p + 1);
    if (p < j->end && *p == close) return p + 1;
    for (;;) {
        if (object) {
            p = skip_string(j, p);
            if (p == NULL) return NULL;
            p = skip_ws(j, p);
            if (p >= j->end || *p != ':') return fail(j, p, "expected ':'");
            p = skip_ws(j, p + 1);
        }
        p = skip_value(j, p, depth + 1);
        if (p == NULL) return NULL;
        p = skip_ws(j, p);
        if (p < j->end && *p == ',') {
            p = skip_ws(j, p + 1);
            continue;
        }
        if (p < j->end && *p == close) return p + 1;
        return fail(j, p, object ? "expected ',' or '}'" : "expected ',' or ']'");
    }
}

static const char *skip_value(jctx *j, const char *p, int depth) {
    if (p >= j->end) return fail(j, p, "expected a value");
    switch (*p) {
    case '{': return skip_container(j, p, depth, '}', 1);
    case '[': return skip_container(j, p, depth, ']', 0);
    case '"': return skip_string(j, p);
    case 't': return (size_t)(j->end - p) >= 4 && !memcmp(p, "true", 4) ? p + 4 : fail(j, p, "bad literal");
    case 'f': return (size_t)(j->end - p) >= 5 && !memcmp(p, "false", 5) ? p + 5 : fail(j, p, "bad literal");
    case 'n': return (size_t)(j->end - p) >= 4 && !memcmp(p, "null", 4) ? p + 4 : fail(j, p, "bad literal");
    default: return skip_number(j, p);
    }
}

int tc_test_json_valid(const char *text, size_t len, char *err, size_t errlen) {
    jctx j = {text, text + len, NULL, NULL};
    const char *p = skip_ws(&j, text);
    p = skip_value(&j, p, 0);
    if (p != NULL) {
        p = skip_ws(&j, p);
        if (p == j.end) return 1;
        fail(&j, p, "trailing characters after the value");
    }
    if (err && errlen)
        snprintf(err, errlen, "invalid JSON at byte %zu: %s", (size_t)(j.fail - text), j.why);
    return 0;
}

/* Within the object at p, the value of the member named name[0..nlen), or NULL. */
static const char *find_member(jctx *j, const char *p, const char *name, size_t nlen) {
    p = skip_ws(j, p);
    if (p >= j->end || *p != '{') return NULL;
    p = skip_ws(j, p + 1);
    while (p < j->end && *p == '"') {
        const char *k = p + 1;
        const char *kend = skip_string(j, p);
        if (kend == NULL) return NULL;
        p = skip_ws(j, kend);
        if (p >= j->end || *p != ':') return NULL;
        p = skip_ws(j, p + 1);
        if ((size_t)(kend - 1 - k) == nlen && memcmp(k, name, nlen) == 0) return p;
        p = skip_value(j, p, 0);
        if (p == NULL) return NULL;
        p = skip_ws(j, p);
        if (p < j->end && *p == ',') p = skip_ws(j, p + 1);
    }
    return NULL;
}

const char *tc_test_json_get(const char *text, size_t len, const char *path, size_t *vlen) {
    jctx j = {text, text + len, NULL, NULL};
    const char *p = text;
    while (p != NULL) {
        const char *dot = strchr(path, '.');
        size_t nlen = dot ? (size_t)(dot - path) : strlen(path);
        p = find_member(&j, p, path, nlen);
        if (p == NULL || dot == NULL) break;
        path = dot + 1;
    }
    if (p == NULL) return NULL;
    const char *e = skip_value(&j, p, 0);
    if (e == NULL) return NULL;
    if (vlen) *vlen = (size_t)(e - p);
    return p;
}

int tc_test_json_number(const char *text, size_t len, const char *path, double *out) {
    size_t vlen;
    const char *v = tc_test_json_get(text, len, path, &vlen);
    if (v == NULL || !(*v == '-' || (*v >= '0' && *v <= '9'))) return 0;
    char tmp[64];
    if (vlen >= sizeof tmp) return 0;
    memcpy(tmp, v, vlen);
    tmp[vlen] = '\0';
    char *end;
    *out = strtod(tmp, &end);
    return *end == '\0';
}
