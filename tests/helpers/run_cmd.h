/*
 * run_cmd.h -- test helper: run a program in a child process with a controlled environment
 * and standard input, and capture its standard output, standard error and exit status.
 *
 * The child gets exactly the environment the test gives (plus the sanitizer option variables
 * of the test's own environment, so that an ASan/TSan build behaves the same in the child),
 * so settings from the developer's shell never leak into a test.
 */
#ifndef TC_TEST_RUN_CMD_H
#define TC_TEST_RUN_CMD_H

#include <stddef.h>

typedef struct tc_test_run {
    int status;      /* exit status 0..255, or -N when killed by signal N */
    int timed_out;   /* 1: the child outlived the timeout and was killed */
    char *out;       /* stdout, NUL-terminated (the NUL is not counted in out_len) */
    size_t out_len;
    char *err;       /* stderr, NUL-terminated */
    size_t err_len;
} tc_test_run;

/* Runs argv[0] (a path; no PATH search) with arguments argv (NULL-terminated) and the
 * environment env (NULL-terminated "NAME=value" strings; NULL means an empty environment).
 * in/in_len is written to the child's stdin, which is then closed (in may be NULL).
 * The child is killed after timeout_ms. Returns 0 and fills *r (free it with
 * tc_test_run_free), or -1 when the child could not be started. */
int tc_test_run_cmd(const char *const *argv, const char *const *env, const void *in,
                    size_t in_len, int timeout_ms, tc_test_run *r);

void tc_test_run_free(tc_test_run *r);

/* 1 when the NUL-terminated haystack contains needle. */
int tc_test_contains(const char *haystack, const char *needle);

#endif /* TC_TEST_RUN_CMD_H */
