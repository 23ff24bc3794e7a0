/*
 * duration.c -- the one parser of durations and byte sizes in tiercache.
 *
 * The system tiercache replaces had three TTL syntaxes and turned unparsable text into a
 * default without a word. Here there is one syntax, and anything that is not exactly it is
 * refused with a message that quotes the text and says what would have been accepted.
 *
 * Durations are Go-style: a sequence of decimal numbers, each followed by a unit ("1h30m",
 * "1.5s", ".5s", "250ms"; units ns us ms s m h d, case-sensitive, "µs" also accepted), or a
 * bare integer, which means milliseconds ("120000"). The sum is computed exactly in
 * nanoseconds in a 128-bit integer and must be a whole number of milliseconds that fits a
 * uint64_t: a non-zero duration under 1 ms, or one with a fraction of a millisecond
 * ("1.5ms"), is refused rather than rounded. No sign, no surrounding whitespace.
 *
 * Sizes are a whole number of bytes, optionally followed by a unit, case-insensitive, in
 * Redis's convention: k=1000 kb=1024 m=10^6 mb=2^20 g=10^9 gb=2^30, and the explicit
 * binary units KiB MiB GiB.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "duration.h"
#include "strbuf.h"
#include "util.h"

#ifndef __SIZEOF_INT128__
#error "tiercache needs a compiler with unsigned __int128 (GCC or Clang on a 64-bit target)"
#endif
typedef unsigned __int128 tc__u128;

/* ------------------------------------------------------------------------ */
/* Durations                                                                */
/* ------------------------------------------------------------------------ */

#define TC__NS_PER_MS 1000000u

static const struct {
    const char *name;
    uint64_t ns;
} tc__duration_units[] = {
    {"ns", 1},
    {"us", 1000},
    {"\xc2\xb5s", 1000}, /* U+00B5 MICRO SIGN, as Go accepts */
    {"\xce\xbcs", 1000}, /* U+03BC GREEK SMALL LETTER MU */
    {"ms", TC__NS_PER_MS},
    {"s", 1000ull * TC__NS_PER_MS},
    {"m", 60ull * 1000 * TC__NS_PER_MS},
    {"h", 3600ull * 1000 * TC__NS_PER_MS},
    {"d", 86400ull * 1000 * TC__NS_PER_MS},
};

static int tc__is_digit(char c) { return c >= '0' && c <= '9'; }

/* A unit is a run of ASCII letters or non-ASCII bytes (for "µs"). */
static int tc__is_unit_byte(char c) {
    unsigned char u = (unsigned char)c;
    return (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || u >= 0x80;
}


/* Checks what every parser refuses before looking at the syntax: NULL, empty, whitespace
 * around, a sign. Returns 0 or TC_EINVAL with the reason. */
static int tc__precheck(const char *s, const char *what, const char *hint, char *why,
                        size_t whylen) {
    static const char space[] = " \t\n\r\v\f";
    if (s == NULL) return tc__errf(why, whylen, TC_EINVAL, "no %s given %s", what, hint);
    size_t n = strlen(s);
    if (n == 0) return tc__errf(why, whylen, TC_EINVAL, "empty %s", hint);
    if (strchr(space, s[0]) != NULL || strchr(space, s[n - 1]) != NULL)
        return tc__errf(why, whylen, TC_EINVAL, "whitespace around the %s is not allowed", what);
    if (s[0] == '-') return tc__errf(why, whylen, TC_EINVAL, "negative %ss are not allowed", what);
    if (s[0] == '+') return tc__errf(why, whylen, TC_EINVAL, "a sign is not allowed %s", hint);
    return 0;
}

int tc__duration_parse(const char *s, uint64_t *ms, char *why, size_t whylen) {
    /* The largest total, in ns, whose millisecond count fits a uint64_t. */
    const tc__u128 max_ns = (tc__u128)UINT64_MAX * TC__NS_PER_MS;
    char q[TC__QUOTE_BUF], q2[TC__QUOTE_BUF];
    int rc = tc__precheck(s, "duration", TC__DURATION_HINT, why, whylen);
    if (rc != 0) return rc;

    size_t n = strlen(s);
    if (strspn(s, "0123456789") == n) {
        /* A bare integer: milliseconds. */
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned d = (unsigned)(s[i] - '0');
            if (v > (UINT64_MAX - d) / 10)
                return tc__errf(why, whylen, TC_EINVAL, "too large (the maximum is %llu ms)",
                               (unsigned long long)UINT64_MAX);
            v = v * 10 + d;
        }
        if (ms != NULL) *ms = v;
        return 0;
    }

    /* Syntax errors are reported first, then overflow, then precision, whatever their order
     * in the text: the first thing to fix is that the text means something. */
    tc__u128 total = 0;
    int overflow = 0, inexact = 0;
    const char *p = s;
    while (*p != '\0') {
        const char *num = p;
        /* Integer part. Once above max_ns it stops growing (the component overflows
         * whatever its unit) but digits are still consumed. */
        tc__u128 ip = 0;
        int idigits = 0, fdigits = 0;
        for (; tc__is_digit(*p); p++, idigits++)
            if (ip <= max_ns) ip = ip * 10 + (unsigned)(*p - '0');
        /* Fraction: 18 digits are kept exactly (10^18 < 2^64); a non-zero digit beyond them
         * is under a nanosecond even in days, and only marks the value inexact. */
        uint64_t fp = 0, fscale = 1;
        if (*p == '.') {
            for (p++; tc__is_digit(*p); p++, fdigits++) {
                if (fdigits < 18) {
                    fp = fp * 10 + (unsigned)(*p - '0');
                    fscale *= 10;
                } else if (*p != '0') {
                    inexact = 1;
                }
            }
        }
        if (idigits == 0 && fdigits == 0)
            return tc__errf(why, whylen, TC_EINVAL, "expected a number at %s %s", tc__quote(q, sizeof q, num),
                           TC__DURATION_HINT);
        const char *unit = p;
        while (tc__is_unit_byte(*p))
            p++;
        size_t ulen = (size_t)(p - unit);
        if (ulen == 0) {
            if (*p == '\0')
                return tc__errf(why, whylen, TC_EINVAL, "missing unit after %s %s",
                               tc__quote_n(q, sizeof q, num, (size_t)(p - num)), TC__DURATION_HINT);
            return tc__errf(why, whylen, TC_EINVAL, "unexpected %s after %s %s", tc__quote_n(q, sizeof q, p, 1),
                           tc__quote_n(q2, sizeof q2, num, (size_t)(p - num)), TC__DURATION_HINT);
        }
        uint64_t unit_ns = 0;
        for (size_t u = 0; u < sizeof tc__duration_units / sizeof tc__duration_units[0]; u++) {
            const char *name = tc__duration_units[u].name;
            if (strlen(name) == ulen && memcmp(name, unit, ulen) == 0) {
                unit_ns = tc__duration_units[u].ns;
                break;
            }
        }
        if (unit_ns == 0)
            return tc__errf(why, whylen, TC_EINVAL, "unknown unit %s %s", tc__quote_n(q, sizeof q, unit, ulen),
                           TC__DURATION_HINT);
        if (*p != '\0' && !tc__is_digit(*p) && *p != '.')
            return tc__errf(why, whylen, TC_EINVAL, "unexpected %s after %s %s", tc__quote_n(q, sizeof q, p, 1),
                           tc__quote_n(q2, sizeof q2, num, (size_t)(p - num)), TC__DURATION_HINT);
        if (overflow) continue;
        /* ip <= max_ns / unit_ns keeps ip * unit_ns <= max_ns, well within 128 bits. */
        if (ip > max_ns / unit_ns) {
            overflow = 1;
            continue;
        }
        tc__u128 frac = (tc__u128)fp * unit_ns; /* < 10^18 * 8.64e13 < 2^127 */
        if (frac % fscale != 0) inexact = 1;
        total += ip * unit_ns + frac / fscale; /* both terms <= max_ns: no wrap */
        if (total > max_ns) overflow = 1;
    }
    if (overflow)
        return tc__errf(why, whylen, TC_EINVAL, "too large (the maximum is %llu ms)",
                       (unsigned long long)UINT64_MAX);
    if ((total > 0 || inexact) && total < TC__NS_PER_MS)
        return tc__errf(why, whylen, TC_EINVAL,
                       "a non-zero duration under 1 ms (the smallest is 1ms; 0 means none)");
    if (inexact || total % TC__NS_PER_MS != 0)
        return tc__errf(why, whylen, TC_EINVAL, "not a whole number of milliseconds (the resolution is 1ms)");
    if (ms != NULL) *ms = (uint64_t)(total / TC__NS_PER_MS);
    return 0;
}

/* The reason from tc__duration_parse(), prefixed with the quoted text. *ms is written only on
 * success. Thread-safe. */
TC_EXPORT int tc_parse_duration(const char *s, uint64_t *ms, char *errbuf, size_t errlen) {
    char why[512], q[TC__QUOTE_BUF];
    int rc = tc__duration_parse(s, ms, why, sizeof why);
    if (rc != 0)
        return tc__errf(errbuf, errlen, rc, "invalid duration %s: %s", tc__quote(q, sizeof q, s),
                        why);
    return 0;
}

char *tc__format_duration(char *buf, size_t size, uint64_t ms) {
    static const struct {
        const char *name;
        uint64_t ms;
    } units[] = {
        {"d", 86400000},
        {"h", 3600000},
        {"m", 60000},
        {"s", 1000},
    };
    if (ms == 0) {
        snprintf(buf, size, "0");
        return buf;
    }
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (ms % units[i].ms == 0) {
            snprintf(buf, size, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].name);
            return buf;
        }
    }
    snprintf(buf, size, "%llums", (unsigned long long)ms);
    return buf;
}

/* ------------------------------------------------------------------------ */
/* Sizes                                                                    */
/* ------------------------------------------------------------------------ */

static const struct {
    const char *name;
    uint64_t mult;
} tc__size_units[] = {
    {"k", 1000ull},       {"kb", 1024ull},       {"kib", 1024ull},
    {"m", 1000000ull},    {"mb", 1048576ull},    {"mib", 1048576ull},
    {"g", 1000000000ull}, {"gb", 1073741824ull}, {"gib", 1073741824ull},
};

int tc__size_parse(const char *s, uint64_t *bytes, char *why, size_t whylen) {
    char q[TC__QUOTE_BUF];
    int rc = tc__precheck(s, "size", TC__SIZE_HINT, why, whylen);
    if (rc != 0) return rc;

    const char *p = s;
    uint64_t v = 0;
    int overflow = 0;
    for (; tc__is_digit(*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            overflow = 1;
        else
            v = v * 10 + d;
    }
    if (p == s)
        return tc__errf(why, whylen, TC_EINVAL, "expected a number at %s %s", tc__quote(q, sizeof q, p),
                       TC__SIZE_HINT);
    uint64_t mult = 1;
    if (*p != '\0') {
        mult = 0;
        for (size_t u = 0; u < sizeof tc__size_units / sizeof tc__size_units[0]; u++) {
            if (strcasecmp(p, tc__size_units[u].name) == 0) {
                mult = tc__size_units[u].mult;
                break;
            }
        }
        if (mult == 0) {
            if (*p == '.')
                return tc__errf(why, whylen, TC_EINVAL, "a fraction is not allowed %s", TC__SIZE_HINT);
            return tc__errf(why, whylen, TC_EINVAL, "unknown unit %s %s", tc__quote(q, sizeof q, p),
                           TC__SIZE_HINT);
        }
    }
    if (overflow || v > UINT64_MAX / mult)
        return tc__errf(why, whylen, TC_EINVAL, "too large (the maximum is %llu bytes)",
                       (unsigned long long)UINT64_MAX);
    if (bytes != NULL) *bytes = v * mult;
    return 0;
}

/* As tc_parse_duration(), for sizes. */
TC_EXPORT int tc_parse_size(const char *s, uint64_t *bytes, char *errbuf, size_t errlen) {
    char why[512], q[TC__QUOTE_BUF];
    int rc = tc__size_parse(s, bytes, why, sizeof why);
    if (rc != 0)
        return tc__errf(errbuf, errlen, rc, "invalid size %s: %s", tc__quote(q, sizeof q, s), why);
    return 0;
}
