/*
 * test_l2_containers.c -- the shared tier in a container (issue 7, item 9): with default
 * settings a segment fits the 64 MiB /dev/shm Docker gives a container; the geometry comes
 * from the settings alone, a process that did not set a geometry variable adopts an existing
 * segment's, one that set another value gets a clear error; a segment /dev/shm has no room
 * for says what it needs, what is free and which variables to lower.
 *
 * The container is a child process in a mount namespace of its own (unshare) with a 64 MiB
 * tmpfs mounted on /dev/shm, as `docker run` gives by default. That needs CAP_SYS_ADMIN: the
 * test is skipped, saying so, where the namespace cannot be made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "l2_segment.h"

/* Opens a cache with the given variables ("NAME=value", NULL-terminated) over the defaults. */
static int open_with(const char *const *vars, tc_cache **c, char *err, size_t errlen) {
    tc_config *cfg;
    int rc = tc_config_new(&cfg);
    for (size_t i = 0; rc == 0 && vars[i] != NULL; i++) {
        char name[64];
        size_t n = strcspn(vars[i], "=");
        snprintf(name, sizeof name, "%.*s", (int)n, vars[i]);
        rc = tc_config_set(cfg, name, vars[i] + n + 1, err, errlen);
    }
    if (rc == 0) rc = tc_open(cfg, c, err, errlen);
    tc_config_free(cfg);
    return rc;
}

/* The default geometry: 16 MiB of heap, the entry count ruled by it, under 32 MiB in all. */
static void test_default_segment_is_small(void **state) {
    (void)state;
    tc__opts o;
    tc__opts_init(&o);
    tc__l2_geom g = {.max_entries = o.shared_max_entries,
                     .max_bytes = o.shared_max_bytes,
                     .max_key_bytes = o.max_key_bytes,
                     .max_value_bytes = o.max_value_bytes,
                     .policy = o.shared_eviction};
    char err[TC_ERRBUF_SIZE];
    assert_int_equal(tc__l2_geom_derive(&g, err, sizeof err), 0);
    assert_true(g.total_bytes <= 32u << 20);
    assert_int_equal(g.max_entries, o.shared_max_bytes / tc__l2_blk_size(0, 0)); /* the byte budget rules */
    /* the same settings give the same geometry: it depends on nothing else */
    tc__l2_geom h = {.max_entries = o.shared_max_entries,
                     .max_bytes = o.shared_max_bytes,
                     .max_key_bytes = o.max_key_bytes,
                     .max_value_bytes = o.max_value_bytes,
                     .policy = o.shared_eviction};
    assert_int_equal(tc__l2_geom_derive(&h, err, sizeof err), 0);
    assert_memory_equal(&g, &h, sizeof g);
}

/* What the child in the 64 MiB /dev/shm found, for the parent to assert. */
enum { C_OK = 0, C_SKIP = 77, C_DEFAULT_FAILED = 10, C_BIG_OPENED, C_BIG_MESSAGE, C_IO };

static int child_in_small_shm(int fd) {
    if (unshare(CLONE_NEWNS) != 0) return C_SKIP;
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) return C_SKIP;
    if (mount("tmpfs", "/dev/shm", "tmpfs", 0, "size=64m") != 0) return C_SKIP;
    char err[TC_ERRBUF_SIZE] = "";
    tc_cache *c = NULL;
    /* the defaults, the default name included */
    const char *const dflt[] = {"CACHE_TIERING=L2", NULL};
    if (open_with(dflt, &c, err, sizeof err) != 0) {
        (void)!write(fd, err, strlen(err));
        return C_DEFAULT_FAILED;
    }
    char buf[8];
    size_t len = sizeof buf;
    if (tc_set(c, "k", 1, "v", 1, 0) != 0 || tc_get(c, "k", 1, buf, &len, NULL) != 0) return C_IO;
    tc_close(c);
    /* a segment that cannot fit: a clear error, and nothing left behind */
    const char *const big[] = {"CACHE_TIERING=L2", "CACHE_SHARED_NAME=too-big", "CACHE_SHARED_MAX_BYTES=100MiB", NULL};
    int rc = open_with(big, &c, err, sizeof err);
    (void)!write(fd, err, strlen(err));
    if (rc == 0) return C_BIG_OPENED;
    if (rc != TC_ENOMEM) return C_BIG_MESSAGE;
    char *names = NULL;
    if (tc_shared_list(&names, NULL) != 0 || strstr(names, "too-big") != NULL) return C_BIG_MESSAGE;
    tc_free(names);
    return C_OK;
}

static void test_default_segment_fits_a_container_shm(void **state) {
    (void)state;
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        _exit(child_in_small_shm(p[1]));
    }
    close(p[1]);
    char msg[TC_ERRBUF_SIZE + 1] = "";
    ssize_t n, got = 0;
    while ((n = read(p[0], msg + got, sizeof msg - 1 - (size_t)got)) > 0) got += n;
    msg[got] = '\0';
    close(p[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    int code = WEXITSTATUS(status);
    if (code == C_SKIP) {
        print_message("skipped: no mount namespace here (needs CAP_SYS_ADMIN)\n");
        skip();
    }
    if (code != C_OK) fail_msg("child: code %d: %s", code, msg);
    /* the message of the segment that did not fit */
    assert_non_null(strstr(msg, "cannot create shared segment 'too-big': it needs"));
    assert_non_null(strstr(msg, "bytes free of"));
    assert_non_null(strstr(msg, "lower CACHE_SHARED_MAX_BYTES (now 104857600"));
    assert_non_null(strstr(msg, "CACHE_SHARED_MAX_ENTRIES"));
}

/* A process that did not set a geometry variable adopts the existing segment's value; one
 * that set another value is refused, naming it. */
static void test_unset_geometry_adopts_the_segment(void **state) {
    (void)state;
    char name[64], name_env[96], err[TC_ERRBUF_SIZE];
    snprintf(name, sizeof name, "test-adopt-%d", (int)getpid());
    snprintf(name_env, sizeof name_env, "CACHE_SHARED_NAME=%s", name);
    const char *const creator[] = {"CACHE_TIERING=L2", name_env, "CACHE_SHARED_MAX_BYTES=8MiB",
                                   "CACHE_SHARED_MAX_ENTRIES=5000", "CACHE_SHARED_EVICTION=allkeys-lfu", NULL};
    tc_cache *a = NULL, *b = NULL, *x = NULL;
    assert_int_equal(open_with(creator, &a, err, sizeof err), 0);
    assert_int_equal(tc_set(a, "k", 1, "v", 1, 0), 0);
    /* defaults everywhere: adopts 8 MiB, 5000 entries, allkeys-lfu */
    const char *const plain[] = {"CACHE_TIERING=L2", name_env, NULL};
    if (open_with(plain, &b, err, sizeof err) != 0) fail_msg("%s", err);
    tc_tier_stats ts = TC_TIER_STATS_INIT;
    assert_int_equal(tc_tier_stats_get(b, 0, &ts), 0);
    assert_int_equal(ts.max_bytes, 8u << 20);
    assert_int_equal(ts.max_entries, 5000);
    char buf[8];
    size_t len = sizeof buf;
    assert_int_equal(tc_get(b, "k", 1, buf, &len, NULL), 0);
    /* another value set on purpose: refused, naming what differs */
    const char *const other[] = {"CACHE_TIERING=L2", name_env, "CACHE_SHARED_MAX_BYTES=4MiB", NULL};
    assert_int_equal(open_with(other, &x, err, sizeof err), TC_EVERSION);
    assert_null(x);
    assert_non_null(strstr(err, "CACHE_SHARED_MAX_BYTES=8388608 in the segment, 4194304 asked"));
    assert_null(strstr(err, "CACHE_SHARED_MAX_ENTRIES")); /* not set: not compared */
    /* the same value set explicitly is fine */
    const char *const same[] = {"CACHE_TIERING=L2", name_env, "CACHE_SHARED_MAX_BYTES=8MiB", NULL};
    assert_int_equal(open_with(same, &x, err, sizeof err), 0);
    tc_close(x);
    tc_close(b);
    tc_close(a);
    assert_int_equal(tc_shared_destroy(name), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_segment_is_small),
        cmocka_unit_test(test_default_segment_fits_a_container_shm),
        cmocka_unit_test(test_unset_geometry_adopts_the_segment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
