/*
 * test_duration.c -- the duration and size parsers (src/duration.c): every accepted form,
 * the edges near 2^64, and for every refused input the code and the message (which must
 * quote the text and say what is accepted).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "duration.h"
#include "strbuf.h"
#include "tier.h"

typedef struct {
    const char *in;
    uint64_t want;
} ok_case;

typedef struct {
    const char *in;
    const char *why; /* a part of the message that says what was wrong */
} bad_case;

/* ------------------------------------------------------------------------ */
/* Durations                                                                */
/* ------------------------------------------------------------------------ */

static const ok_case duration_ok[] = {
    {"0", 0},
    {"0s", 0},
    {"0ms", 0},
    {"0ns", 0},
    {"0h0m", 0},
    {"00", 0},
    {"5", 5},                 /* a bare integer is milliseconds */
    {"120000", 120000},
    {"250ms", 250},
    {"90s", 90000},
    {"5m", 300000},
    {"1h", 3600000},
    {"1h30m", 5400000},
    {"2d", 172800000},
    {"1d2h3m4s5ms", 86400000 + 7200000 + 180000 + 4000 + 5},
    {"1.5s", 1500},
    {".5s", 500},
    {"1.s", 1000},
    {"0.001s", 1},
    {"1.5h", 5400000},
    {"0.5m", 30000},
    {"1000us", 1},
    {"1000000ns", 1},
    {"1000\xc2\xb5s", 1},     /* micro sign, as Go accepts */
    {"2000\xce\xbcs", 2},     /* Greek mu */
    {"1s500ms", 1500},
    {"1.250000000000000000000s", 1250}, /* trailing zeros beyond 18 digits are exact */
    {"18446744073709551615", UINT64_MAX},
    {"18446744073709551615ms", UINT64_MAX},
    {"18446744073709551.615s", UINT64_MAX},
    {"18446744073709551614ms1ms", UINT64_MAX},
    {"213503982334d", 213503982334ull * 86400000ull},
    {"18446744073709551615000000ns", UINT64_MAX},
};

static const bad_case duration_bad[] = {
    {"", "empty"},
    {"abc", "expected a number at \"abc\""},
    {"ms", "expected a number at \"ms\""},
    {"5x", "unknown unit \"x\""},
    {"5S", "unknown unit \"S\""},   /* units are case-sensitive: no guessing between m and M */
    {"1e3", "unknown unit \"e\""},
    {"5 s", "unexpected \" \" after \"5\""},
    {"1h-3m", "unexpected \"-\" after \"1h\""},
    {"1h30", "missing unit after \"30\""},
    {"1.5", "missing unit after \"1.5\""},
    {"1h.", "expected a number at \".\""},
    {".s", "expected a number at \".s\""},
    {"-5s", "negative durations are not allowed"},
    {"-1s", "negative durations are not allowed"},
    {"-0", "negative durations are not allowed"},
    {"+5s", "a sign is not allowed"},
    {" 5s", "whitespace around the duration is not allowed"},
    {"5s ", "whitespace around the duration is not allowed"},
    {"\t5s", "whitespace around the duration is not allowed"},
    {"5s\n", "whitespace around the duration is not allowed"},
    {"500us", "a non-zero duration under 1 ms"},
    {"1ns", "a non-zero duration under 1 ms"},
    {"0.0001s", "a non-zero duration under 1 ms"},
    {"0.0000000000000000001s", "a non-zero duration under 1 ms"},
    {"1.5ms", "not a whole number of milliseconds"},
    {"1500us", "not a whole number of milliseconds"},
    {"1.0000000000000000001s", "not a whole number of milliseconds"},
    {"18446744073709551616", "too large"},
    {"99999999999999999999999999999999", "too large"},
    {"18446744073709551616ms", "too large"},
    {"18446744073709551.616s", "too large"},
    {"18446744073709551615ms1ms", "too large"},
    {"213503982335d", "too large"},
    {"18446744073709551615000001ns", "too large"},
    {"99999999999999999999999999999999999999999999999999d", "too large"},
    {"5\xe2\x82\xac", "unknown unit \"\\xe2\\x82\\xac\""}, /* non-ASCII is shown escaped */
};

static void test_duration_valid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof duration_ok / sizeof duration_ok[0]; i++) {
        uint64_t ms = 12345;
        char err[512] = "untouched";
        int rc = tc_parse_duration(duration_ok[i].in, &ms, err, sizeof err);
        if (rc != 0) fail_msg("\"%s\": rc %d: %s", duration_ok[i].in, rc, err);
        if (ms != duration_ok[i].want)
            fail_msg("\"%s\": got %llu, want %llu", duration_ok[i].in, (unsigned long long)ms,
                     (unsigned long long)duration_ok[i].want);
    }
}

static void test_duration_invalid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof duration_bad / sizeof duration_bad[0]; i++) {
        const bad_case *c = &duration_bad[i];
        uint64_t ms = 777;
        char err[1024], quoted[TC__QUOTE_BUF], prefix[TC__QUOTE_BUF + 32];
        int rc = tc_parse_duration(c->in, &ms, err, sizeof err);
        if (rc != TC_EINVAL) fail_msg("\"%s\": rc %d, want TC_EINVAL", c->in, rc);
        assert_int_equal(ms, 777); /* the output is untouched on failure */
        /* the message quotes the offending text (escaped) ... */
        snprintf(prefix, sizeof prefix, "invalid duration %s: ", tc__quote(quoted, sizeof quoted, c->in));
        if (strncmp(err, prefix, strlen(prefix)) != 0) fail_msg("\"%s\": message %s", c->in, err);
        /* ... and says what was wrong */
        if (strstr(err, c->why) == NULL) fail_msg("\"%s\": message %s lacks %s", c->in, err, c->why);
    }
}

/* The message the brief gives as the example, word for word. */
static void test_duration_message_lists_units(void **state) {
    (void)state;
    char err[512];
    assert_int_equal(tc_parse_duration("5x", NULL, err, sizeof err), TC_EINVAL);
    assert_string_equal(err, "invalid duration \"5x\": unknown unit \"x\" (use ns, us, ms, s, m, h, d, "
                             "or a bare integer of milliseconds)");
    assert_int_equal(tc_parse_duration("", NULL, err, sizeof err), TC_EINVAL);
    assert_non_null(strstr(err, TC__DURATION_HINT));
}

static void test_duration_null_and_small_buffers(void **state) {
    (void)state;
    uint64_t ms = 1;
    char tiny[8];
    assert_int_equal(tc_parse_duration(NULL, &ms, NULL, 0), TC_EINVAL);
    assert_int_equal(tc_parse_duration("abc", &ms, NULL, 0), TC_EINVAL);          /* no errbuf */
    assert_int_equal(tc_parse_duration("abc", &ms, tiny, sizeof tiny), TC_EINVAL); /* truncated */
    assert_int_equal(strlen(tiny), sizeof tiny - 1);
    assert_int_equal(tc_parse_duration("7s", NULL, NULL, 0), 0); /* the result may be dropped */
    /* a very long input is cut in the message, which stays NUL-terminated */
    char longin[4096], err[256];
    memset(longin, '9', sizeof longin - 2);
    longin[sizeof longin - 2] = 'x';
    longin[sizeof longin - 1] = '\0';
    assert_int_equal(tc_parse_duration(longin, &ms, err, sizeof err), TC_EINVAL);
    assert_true(strlen(err) < sizeof err);
    assert_non_null(strstr(err, "invalid duration \"999"));
}

static void test_duration_format(void **state) {
    (void)state;
    char buf[32];
    assert_string_equal(tc__format_duration(buf, sizeof buf, 0), "0");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 1), "1ms");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 1500), "1500ms");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 90000), "90s");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 5400000), "90m");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 7200000), "2h");
    assert_string_equal(tc__format_duration(buf, sizeof buf, 86400000), "1d");
    /* every formatted value parses back to itself */
    static const uint64_t samples[] = {0, 1, 999, 1000, 61000, 3600000, 90061001, UINT64_MAX};
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++) {
        uint64_t back = 0;
        tc__format_duration(buf, sizeof buf, samples[i]);
        assert_int_equal(tc_parse_duration(buf, &back, NULL, 0), 0);
        assert_true(back == samples[i]);
    }
}

/* ------------------------------------------------------------------------ */
/* Sizes                                                                    */
/* ------------------------------------------------------------------------ */

static const ok_case size_ok[] = {
    {"0", 0},
    {"1", 1},
    {"1024", 1024},
    {"1k", 1000},
    {"1K", 1000},
    {"1kb", 1024},
    {"1KB", 1024},
    {"1Kb", 1024},
    {"1KiB", 1024},
    {"1kib", 1024},
    {"2m", 2000000},
    {"2mb", 2097152},
    {"2MiB", 2097152},
    {"3g", 3000000000ull},
    {"3gb", 3221225472ull},
    {"3GiB", 3221225472ull},
    {"512MiB", 536870912},
    {"256mb", 268435456},
    {"18446744073709551615", UINT64_MAX},
    {"18446744073709551k", 18446744073709551000ull},
    {"17179869183gb", 17179869183ull * 1073741824ull},
};

static const bad_case size_bad[] = {
    {"", "empty"},
    {"abc", "expected a number at \"abc\""},
    {"kb", "expected a number at \"kb\""},
    {"5x", "unknown unit \"x\""},
    {"1e3", "unknown unit \"e3\""},
    {"5 mb", "unknown unit \" mb\""},
    {"1t", "unknown unit \"t\""},
    {"1kbb", "unknown unit \"kbb\""},
    {"1.5mb", "a fraction is not allowed"},
    {"-1", "negative sizes are not allowed"},
    {"-5mb", "negative sizes are not allowed"},
    {"+5", "a sign is not allowed"},
    {" 5", "whitespace around the size is not allowed"},
    {"5\n", "whitespace around the size is not allowed"},
    {"18446744073709551616", "too large"},
    {"99999999999999999999999999", "too large"},
    {"18446744073709552k", "too large"},
    {"17179869184gb", "too large"},
};

static void test_size_valid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof size_ok / sizeof size_ok[0]; i++) {
        uint64_t b = 12345;
        char err[512] = "";
        int rc = tc_parse_size(size_ok[i].in, &b, err, sizeof err);
        if (rc != 0) fail_msg("\"%s\": rc %d: %s", size_ok[i].in, rc, err);
        if (b != size_ok[i].want)
            fail_msg("\"%s\": got %llu, want %llu", size_ok[i].in, (unsigned long long)b,
                     (unsigned long long)size_ok[i].want);
    }
}

static void test_size_invalid(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof size_bad / sizeof size_bad[0]; i++) {
        const bad_case *c = &size_bad[i];
        uint64_t b = 777;
        char err[1024], quoted[TC__QUOTE_BUF], prefix[TC__QUOTE_BUF + 32];
        int rc = tc_parse_size(c->in, &b, err, sizeof err);
        if (rc != TC_EINVAL) fail_msg("\"%s\": rc %d, want TC_EINVAL", c->in, rc);
        assert_int_equal(b, 777);
        snprintf(prefix, sizeof prefix, "invalid size %s: ", tc__quote(quoted, sizeof quoted, c->in));
        if (strncmp(err, prefix, strlen(prefix)) != 0) fail_msg("\"%s\": message %s", c->in, err);
        if (strstr(err, c->why) == NULL) fail_msg("\"%s\": message %s lacks %s", c->in, err, c->why);
    }
    char err[512];
    assert_int_equal(tc_parse_size("5x", NULL, err, sizeof err), TC_EINVAL);
    assert_non_null(strstr(err, TC__SIZE_HINT));
    assert_int_equal(tc_parse_size(NULL, NULL, NULL, 0), TC_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Quoting                                                                  */
/* ------------------------------------------------------------------------ */

static void test_quote(void **state) {
    (void)state;
    char buf[TC__QUOTE_BUF];
    assert_string_equal(tc__quote(buf, sizeof buf, "abc"), "\"abc\"");
    assert_string_equal(tc__quote(buf, sizeof buf, ""), "\"\"");
    assert_string_equal(tc__quote(buf, sizeof buf, "a\"b\\c"), "\"a\\\"b\\\\c\"");
    assert_string_equal(tc__quote(buf, sizeof buf, "a\nb\x7f\xff"), "\"a\\x0ab\\x7f\\xff\"");
    /* long input: cut at TC__QUOTE_MAX with "..." and still closed */
    char longin[1000];
    memset(longin, 'a', sizeof longin - 1);
    longin[sizeof longin - 1] = '\0';
    tc__quote(buf, sizeof buf, longin);
    assert_int_equal(strlen(buf), TC__QUOTE_MAX + 5);
    assert_memory_equal(buf + TC__QUOTE_MAX + 1, "...\"", 4);
    /* a small buffer: truncated but terminated and closed */
    char small[12];
    tc__quote(small, sizeof small, "abcdefghijklmnop");
    assert_true(strlen(small) < sizeof small);
    assert_int_equal(small[0], '"');
    assert_int_equal(small[strlen(small) - 1], '"');
    assert_non_null(strstr(small, "..."));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duration_valid),
        cmocka_unit_test(test_duration_invalid),
        cmocka_unit_test(test_duration_message_lists_units),
        cmocka_unit_test(test_duration_null_and_small_buffers),
        cmocka_unit_test(test_duration_format),
        cmocka_unit_test(test_size_valid),
        cmocka_unit_test(test_size_invalid),
        cmocka_unit_test(test_quote),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
