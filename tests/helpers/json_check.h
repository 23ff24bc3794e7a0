/*
 * json_check.h -- test helper: validate a JSON document (RFC 8259) and find members in it,
 * so tests can check the library's and the CLI's JSON output without a JSON library.
 */
#ifndef TC_TEST_JSON_CHECK_H
#define TC_TEST_JSON_CHECK_H

#include <stddef.h>

/* 1 when text[0..len) is exactly one JSON value with optional surrounding white space;
 * else 0 and a message with the byte offset in err (may be NULL). Nesting deeper than 64
 * levels is refused. */
int tc_test_json_valid(const char *text, size_t len, char *err, size_t errlen);

/* Finds a member by a dotted path of object member names ("tierMetrics.hits") in a valid
 * document. Returns a pointer to the first byte of the member's value and its length in
 * *vlen, or NULL when absent. Member names are compared as written (no unescaping). */
const char *tc_test_json_get(const char *text, size_t len, const char *path, size_t *vlen);

/* The member at path as a number; 1 when present and a number, else 0. */
int tc_test_json_number(const char *text, size_t len, const char *path, double *out);

#endif /* TC_TEST_JSON_CHECK_H */
