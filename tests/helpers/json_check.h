/*
 * json_check.h -- test helper: parse the library's and the CLI's JSON output with jansson
 * (Debian libjansson-dev), strictly, and find members in it by a dotted path. The tests parse
 * JSON with this library only; they carry no JSON parser of their own.
 */
#ifndef TC_TEST_JSON_CHECK_H
#define TC_TEST_JSON_CHECK_H

#include <stddef.h>

#include <jansson.h>

/* Parses text[0..len) as exactly one JSON value (RFC 8259) with optional white space around
 * it. Strict: a member name twice in one object, invalid UTF-8, a lone surrogate escape, a raw
 * control character or anything after the value is refused; \u0000 is allowed in strings
 * (json_string_length gives their length); any value may be at the top. flags are added to
 * those (e.g. JSON_DECODE_INT_AS_REAL to read integers beyond int64 as doubles: jansson
 * refuses them otherwise). Returns a new reference the caller releases with json_decref, or
 * NULL with "invalid JSON at line L, column C (byte B): why" in err (may be NULL). */
json_t *tc_test_json_parse(const char *text, size_t len, size_t flags, char *err, size_t errlen);

/* The value at a dotted path of object member names ("tierMetrics.hits") under root, a
 * borrowed reference, or NULL when a step is missing or not an object. */
json_t *tc_test_json_path(json_t *root, const char *path);

#endif /* TC_TEST_JSON_CHECK_H */
