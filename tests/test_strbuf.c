/*
 * test_strbuf.c -- the string builder (src/strbuf.c): growth and formatting, binary-safe
 * appends, JSON string escaping and the UTF-8 sequence reader it relies on.
 *
 * Escaped output is decoded back with jansson (tests/helpers/json_check.h), and what is valid
 * UTF-8 is decided by jansson's own validator, so neither check shares code with the library.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "helpers/json_check.h"
#include "helpers/rng.h"
#include "strbuf.h"

static char *json_of(const void *s, size_t n) {
    tc__strbuf sb = TC__STRBUF_INIT;
    char *out;
    tc__sb_json_str(&sb, s, n);
    assert_int_equal(tc__sb_finish(&sb, &out), 0);
    return out;
}

/* Decodes text, which must be one JSON string; fails the test otherwise. */
static json_t *json_string_of(const char *text) {
    char err[256];
    json_t *v = tc_test_json_parse(text, strlen(text), 0, err, sizeof err);
    if (v == NULL) fail_msg("%s: %s", err, text);
    if (!json_is_string(v)) fail_msg("not a JSON string: %s", text);
    return v;
}

/* 1 when s[0..n) is valid UTF-8 (jansson builds a string of it only then). */
static int utf8_valid(const void *s, size_t n) {
    json_t *j = json_stringn(s, n);
    json_decref(j);
    return j != NULL;
}

/* The length of the UTF-8 sequence at the start of s[0..n) by jansson's validator: the
 * shortest prefix it accepts (a lead byte alone never is one), or 0 when none is. */
static size_t utf8_first_len(const unsigned char *s, size_t n) {
    for (size_t l = 1; l <= 4 && l <= n; l++)
        if (utf8_valid(s, l)) return l;
    return 0;
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
        json_t *v = json_string_of(out);
        if (c < 0x80) {
            assert_int_equal(json_string_length(v), 1);
            assert_int_equal((unsigned char)json_string_value(v)[0], c);
        } else {
            assert_string_equal(json_string_value(v), "\xef\xbf\xbd");
        }
        json_decref(v);
        free(out);
    }
    uint64_t rng = 99;
    for (int i = 0; i < 2000; i++) {
        unsigned char buf[24];
        size_t n = tc_test_rng_next(&rng) % sizeof buf;
        for (size_t k = 0; k < n; k++) buf[k] = (unsigned char)tc_test_rng_next(&rng);
        char *out = json_of(buf, n);
        json_t *v = json_string_of(out);
        if (utf8_valid(buf, n)) {
            assert_int_equal(json_string_length(v), n);
            assert_memory_equal(json_string_value(v), buf, n);
        }
        json_decref(v);
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
    /* agrees with jansson's validator on every 3-byte prefix with a few tails */
    unsigned char s[4];
    for (unsigned a = 0x80; a < 0x100; a++)
        for (unsigned b = 0x70; b < 0xD0; b++)
            for (unsigned c = 0x70; c < 0xD0; c += 0x0F) {
                s[0] = (unsigned char)a, s[1] = (unsigned char)b, s[2] = (unsigned char)c, s[3] = 0x80;
                assert_int_equal(tc__utf8_seq_len(s, 4), utf8_first_len(s, 4));
            }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strbuf_grows_and_formats),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_utf8_seq_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
