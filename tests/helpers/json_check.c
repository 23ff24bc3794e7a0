/*
 * json_check.c -- test helper: jansson with the strict settings the tests want, and member
 * lookup by a dotted path. See json_check.h.
 */
#include "helpers/json_check.h"

#include <stdio.h>
#include <string.h>

json_t *tc_test_json_parse(const char *text, size_t len, size_t flags, char *err, size_t errlen) {
    json_error_t e;
    json_t *v = json_loadb(text, len, flags | JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (v == NULL && err != NULL && errlen > 0)
        snprintf(err, errlen, "invalid JSON at line %d, column %d (byte %d): %s", e.line, e.column,
                 e.position, e.text);
    return v;
}

json_t *tc_test_json_path(json_t *root, const char *path) {
    json_t *v = root;
    while (v != NULL) {
        const char *dot = strchr(path, '.');
        size_t n = dot ? (size_t)(dot - path) : strlen(path);
        v = json_is_object(v) ? json_object_getn(v, path, n) : NULL;
        if (dot == NULL) break;
        path = dot + 1;
    }
    return v;
}
