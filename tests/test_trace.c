/*
 * test_trace.c -- the trace reader shared by the CLI and bench/ (tools/trace.c): ids decoded
 * little-endian whatever the host, the request limit, every refused file with a message naming
 * it and what was wrong, and the keys built for the ids.
 *
 * Traces are written byte by byte into temporary files under /tmp and removed by each test.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "trace.h"

/* Writes len bytes to a new temporary file; its name goes to path (at least 32 bytes). */
static void write_file(char *path, const void *bytes, size_t len) {
    strcpy(path, "/tmp/tc_test_trace_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bytes, len), (ssize_t)len);
    assert_int_equal(close(fd), 0);
}

static void test_trace_ids_are_little_endian(void **state) {
    (void)state;
    const unsigned char bytes[] = {1, 0, 0, 0, 0x04, 0x03, 0x02, 0x01, 0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0};
    char path[32], err[256] = "";
    write_file(path, bytes, sizeof bytes);
    trace_data t;
    assert_int_equal(trace_load(path, 0, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 4);
    assert_int_equal(t.ids[0], 1);
    assert_int_equal(t.ids[1], 0x01020304u);
    assert_int_equal(t.ids[2], 0xffffffffu);
    assert_int_equal(t.ids[3], 7);
    assert_int_equal(t.max_id, 0xffffffffu);
    trace_free(&t);
    assert_null(t.ids);
    assert_int_equal(t.n, 0);
    trace_free(&t); /* an emptied trace frees nothing twice */
    trace_free(NULL);
    unlink(path);
}

/* max_ids reads a prefix, and the largest id is the prefix's */
static void test_trace_request_limit_reads_a_prefix(void **state) {
    (void)state;
    const unsigned char bytes[] = {5, 0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0, 1, 0, 0};
    char path[32], err[256] = "";
    write_file(path, bytes, sizeof bytes);
    trace_data t;
    assert_int_equal(trace_load(path, 3, &t, err, sizeof err), 0);
    assert_int_equal(t.n, 3);
    assert_int_equal(t.ids[2], 3);
    assert_int_equal(t.max_id, 9);
    trace_free(&t);
    assert_int_equal(trace_load(path, 100, &t, err, sizeof err), 0); /* more than there is: all */
    assert_int_equal(t.n, 4);
    assert_int_equal(t.max_id, 256);
    trace_free(&t);
    unlink(path);
}

/* Asserts that loading path fails, leaves the trace empty, and says each of the words. */
static void assert_refused(const char *path, const char *why1, const char *why2) {
    char err[512] = "";
    trace_data t;
    memset(&t, 0xA5, sizeof t);
    assert_int_equal(trace_load(path, 0, &t, err, sizeof err), -1);
    assert_null(t.ids);
    assert_int_equal(t.n, 0);
    if (!strstr(err, path) || !strstr(err, why1) || (why2 && !strstr(err, why2)))
        fail_msg("message for %s lacks '%s'/'%s': %s", path, why1, why2 ? why2 : "", err);
    assert_int_equal(trace_load(path, 0, &t, NULL, 0), -1); /* no message buffer: still refused */
}

static void test_trace_refuses_bad_files_with_a_reason(void **state) {
    (void)state;
    assert_refused("/nonexistent/trace.u32", "cannot open", "No such file");
    assert_refused("/tmp", "not a regular file", NULL);
    char path[32];
    write_file(path, "", 0);
    assert_refused(path, "has 0 bytes", "4-byte little-endian");
    unlink(path);
    write_file(path, "\1\0\0\0\2", 5);
    assert_refused(path, "has 5 bytes", "4-byte little-endian");
    unlink(path);
}

/* Key k is "key:" + k in 12 zero-padded digits, 16 bytes, for every id up to the largest. */
static void test_trace_keys_for_every_id(void **state) {
    (void)state;
    const unsigned char bytes[] = {0xe8, 0x03, 0, 0, 2, 0, 0, 0}; /* 1000, 2 */
    char path[32], err[256] = "";
    write_file(path, bytes, sizeof bytes);
    trace_data t;
    assert_int_equal(trace_load(path, 0, &t, err, sizeof err), 0);
    char(*keys)[TRACE_KEY_LEN] = trace_keys(&t, err, sizeof err);
    assert_non_null(keys);
    for (unsigned k = 0; k <= 1000; k++) {
        char want[TRACE_KEY_LEN + 1];
        snprintf(want, sizeof want, "key:%012u", k);
        assert_memory_equal(keys[k], want, TRACE_KEY_LEN);
    }
    free(keys);
    trace_free(&t);
    /* a trace of id 0 alone has exactly one key */
    t.ids = NULL;
    t.n = 0;
    t.max_id = 0;
    keys = trace_keys(&t, err, sizeof err);
    assert_non_null(keys);
    assert_memory_equal(keys[0], "key:000000000000", TRACE_KEY_LEN);
    free(keys);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trace_ids_are_little_endian),
        cmocka_unit_test(test_trace_request_limit_reads_a_prefix),
        cmocka_unit_test(test_trace_refuses_bad_files_with_a_reason),
        cmocka_unit_test(test_trace_keys_for_every_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
