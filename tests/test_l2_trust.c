/*
 * test_l2_trust.c -- who may write the segment: a segment pre-created by another user (the
 * squatting attack of issue 8, item 1) is refused by every process that did not choose to
 * trust that user, root included, with a message naming owner, mode and fix; a segment of
 * the process's own uid with a mode wider than configured is refused too; a symbolic link
 * planted under the name is never followed; and two users who configure one group share a
 * segment on purpose.
 *
 * The other users are real: processes started through setpriv(1) with another uid, running
 * the tiercache CLI. Needs root (to start them); skipped otherwise.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <sys/stat.h>

#include "helpers/run_cmd.h"
#include "l2_util.h"

#define SETPRIV "/usr/bin/setpriv"
#define NOBODY "65534"
#define OTHER_UID "4243" /* a uid with no account: setpriv needs none */
#define SHARE_GID "4242" /* a group with no entry in /etc/group: numeric gids need none */

static char seg_name[64], env_name[96];

/* The environment every CLI run gets: an L2-only cache on this test's segment, small. */
static void env_of(const char **env, const char *extra1, const char *extra2) {
    int n = 0;
    env[n++] = "CACHE_TIERING=L2";
    env[n++] = env_name;
    env[n++] = "CACHE_SHARED_MAX_ENTRIES=1000";
    env[n++] = "CACHE_SHARED_MAX_BYTES=1mb";
    env[n++] = "CACHE_MAX_VALUE_BYTES=4096";
    env[n++] = "CACHE_MAX_KEY_BYTES=128";
    if (extra1) env[n++] = extra1;
    if (extra2) env[n++] = extra2;
    env[n] = NULL;
}

/* Runs the CLI as uid (NULL: as ourselves), with extra supplementary group sgid (or NULL). */
static tc_test_run cli_as(const char *uid, const char *sgid, const char *const *env,
                          const char *a1, const char *a2, const char *a3) {
    char reuid[32], regid[32], groups[32];
    const char *argv[16];
    int n = 0;
    if (uid != NULL) {
        snprintf(reuid, sizeof reuid, "--reuid=%s", uid);
        snprintf(regid, sizeof regid, "--regid=%s", uid);
        argv[n++] = SETPRIV;
        argv[n++] = reuid;
        argv[n++] = regid;
        if (sgid != NULL) {
            snprintf(groups, sizeof groups, "--groups=%s", sgid);
            argv[n++] = groups;
        } else {
            argv[n++] = "--clear-groups";
        }
    }
    argv[n++] = TC_CLI_PATH;
    argv[n++] = a1;
    if (a2) argv[n++] = a2;
    if (a3) argv[n++] = a3;
    argv[n] = NULL;
    tc_test_run r;
    memset(&r, 0, sizeof r);
    if (tc_test_run_cmd(argv, env, NULL, 0, 20000, &r) != 0) fail_msg("cannot start %s", argv[0]);
    return r;
}

/* Runs a plain command as uid (chmod MODE PATH, ln -s TARGET PATH). Returns its exit status. */
static int cmd_as(const char *uid, const char *prog, const char *a1, const char *a2,
                  const char *a3) {
    char reuid[32], regid[32];
    snprintf(reuid, sizeof reuid, "--reuid=%s", uid);
    snprintf(regid, sizeof regid, "--regid=%s", uid);
    const char *argv[] = {SETPRIV, reuid, regid, "--clear-groups", prog, a1, a2, a3, NULL};
    tc_test_run r;
    if (tc_test_run_cmd(argv, NULL, NULL, 0, 20000, &r) != 0) return -1;
    int st = r.status;
    tc_test_run_free(&r);
    return st;
}

static int setup(void **state) {
    (void)state;
    if (geteuid() != 0 || access(SETPRIV, X_OK) != 0) return 0;
    l2t_name(seg_name, sizeof seg_name, "trust");
    snprintf(env_name, sizeof env_name, "CACHE_SHARED_NAME=%s", seg_name);
    (void)tc_shared_destroy(seg_name);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    if (seg_name[0] != '\0') (void)tc_shared_destroy(seg_name);
    return 0;
}

static int can_run(void) {
    if (geteuid() == 0 && access(SETPRIV, X_OK) == 0) return 1;
    fprintf(stderr, "skipped: needs root and %s to start processes of other users\n", SETPRIV);
    return 0;
}

static void path_of_seg(char *p, size_t n) { snprintf(p, n, "/dev/shm/tiercache.%s", seg_name); }

/* Options of this process matching the CLI's environment. */
static void opts_of(tc__opts *o) {
    l2t_opts(o, seg_name, 1000, 1 << 20, TC_POLICY_ALLKEYS_LRU);
    o->max_value_bytes = 4096;
}

/* Another user creates the segment (a valid one, with a planted value) and opens it to
 * everybody (0666). Root must refuse it: it would otherwise read everything root caches
 * into it, serve the attacker's values, and run robust mutexes in memory the attacker
 * writes. */
static void test_segment_squatted_by_another_user_is_refused(void **state) {
    (void)state;
    if (!can_run()) {
        skip();
        return;
    }
    const char *env[10];
    env_of(env, NULL, NULL);
    tc_test_run r = cli_as(NOBODY, NULL, env, "set", "k", "planted");
    if (r.status != 0) fail_msg("nobody's set: %d %s", r.status, r.err);
    tc_test_run_free(&r);
    char path[256];
    path_of_seg(path, sizeof path);
    assert_int_equal(cmd_as(NOBODY, "/bin/chmod", "0666", path, NULL), 0);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_mode & 0777, 0666);

    /* root, through the library */
    tc__opts o;
    opts_of(&o);
    tc__tier *t = NULL;
    char err[1024];
    int rc = tc__l2_open(&o, &t, err, sizeof err);
    if (rc != TC_EPERM) {
        if (t) t->ops->close(t);
        fail_msg("root opened another user's segment: %s %s", tc_err_name(rc), err);
    }
    assert_non_null(strstr(err, "uid 65534 (nobody)"));
    assert_non_null(strstr(err, "mode 0666"));
    assert_non_null(strstr(err, "tiercache shared destroy"));
    assert_non_null(strstr(err, "CACHE_SHARED_GROUP"));
    /* the admin functions refuse it too (check takes its locks) */
    char rep[1024];
    assert_int_equal(tc_shared_check(seg_name, rep, sizeof rep), TC_EPERM);
    assert_non_null(strstr(rep, "uid 65534"));
    assert_int_equal(tc_shared_repair(seg_name, rep, sizeof rep), TC_EPERM);
    tc_tier_stats ts = TC_TIER_STATS_INIT;
    assert_int_equal(tc_shared_stats(seg_name, &ts, err, sizeof err), TC_EPERM);

    /* root, through the CLI: the planted value is never served */
    r = cli_as(NULL, NULL, env, "get", "k", NULL);
    assert_int_equal(r.status, 2);
    assert_false(tc_test_contains(r.out, "planted"));
    assert_true(tc_test_contains(r.err, "uid 65534 (nobody)"));
    assert_true(tc_test_contains(r.err, "mode 0666"));
    tc_test_run_free(&r);

    /* Not even with the attacker's mode narrowed: the owner is the problem. */
    assert_int_equal(cmd_as(NOBODY, "/bin/chmod", "0600", path, NULL), 0);
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_EPERM);
    assert_non_null(strstr(err, "trusts only segments it owns"));
    /* destroy needs no trust: it only removes the name */
    assert_int_equal(tc_shared_destroy(seg_name), 0);
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), 0);
    t->ops->close(t);
}

/* A symbolic link planted under the name (to a file of root's, say) is not followed. */
static void test_symlink_planted_under_the_name_is_refused(void **state) {
    (void)state;
    if (!can_run()) {
        skip();
        return;
    }
    char path[256];
    path_of_seg(path, sizeof path);
    assert_int_equal(cmd_as(NOBODY, "/bin/ln", "-s", "/etc/hostname", path), 0);
    tc__opts o;
    opts_of(&o);
    tc__tier *t = NULL;
    char err[1024];
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_EPERM);
    assert_non_null(strstr(err, "symbolic link"));
    assert_int_equal(unlink(path), 0);
}

/* The process's own segment, but with more permission than CACHE_SHARED_MODE: refused, with
 * the owner's fix; narrowed again, it is used. */
static void test_own_segment_with_a_wider_mode_is_refused(void **state) {
    (void)state;
    if (!can_run()) {
        skip();
        return;
    }
    tc__opts o;
    opts_of(&o);
    tc__tier *t = NULL;
    char err[1024];
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), 0);
    t->ops->close(t);
    char path[256];
    path_of_seg(path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_EPERM);
    assert_non_null(strstr(err, "has mode 0644, wider than the 0600 allowed"));
    assert_non_null(strstr(err, "chmod 0600"));
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(seg_name), 0);
}

/* Two users configured with one group share a segment on purpose: the first creates it with
 * that group and mode 0660, the second reads and writes it; a third process, not configured
 * with the group, refuses it. */
static void test_group_shared_segment_works_across_users(void **state) {
    (void)state;
    if (!can_run()) {
        skip();
        return;
    }
    const char *env[10], *plain[10];
    env_of(env, "CACHE_SHARED_GROUP=" SHARE_GID, "CACHE_SHARED_MODE=0660");
    env_of(plain, NULL, NULL);
    tc_test_run r = cli_as(NOBODY, SHARE_GID, env, "set", "k", "from-nobody");
    if (r.status != 0) fail_msg("nobody's set: %d %s", r.status, r.err);
    tc_test_run_free(&r);
    char path[256];
    path_of_seg(path, sizeof path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_uid, 65534);
    assert_int_equal(st.st_gid, 4242);
    assert_int_equal(st.st_mode & 07777, 0660);

    r = cli_as(OTHER_UID, SHARE_GID, env, "get", "k", NULL);
    if (r.status != 0) fail_msg("the second user's get: %d %s", r.status, r.err);
    assert_string_equal(r.out, "from-nobody");
    tc_test_run_free(&r);
    r = cli_as(OTHER_UID, SHARE_GID, env, "set", "k", "from-4243");
    assert_int_equal(r.status, 0);
    tc_test_run_free(&r);
    r = cli_as(NOBODY, SHARE_GID, env, "get", "k", NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "from-4243");
    tc_test_run_free(&r);

    /* root configured with the group uses it too */
    tc__opts o;
    opts_of(&o);
    strcpy(o.shared_group, SHARE_GID);
    o.shared_mode = 0660;
    tc__tier *t = NULL;
    char err[1024];
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), 0);
    char buf[64];
    size_t len;
    assert_int_equal(l2t_get(t, "k", 1, buf, sizeof buf, &len, NULL), 0);
    assert_memory_equal(buf, "from-4243", len);
    t->ops->close(t);

    /* without the group setting: refused, by the other member and by root */
    r = cli_as(OTHER_UID, SHARE_GID, plain, "get", "k", NULL);
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "belongs to uid 65534"));
    tc_test_run_free(&r);
    opts_of(&o);
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_EPERM);
    /* a group that is not the segment's: refused as well */
    strcpy(o.shared_group, "4241");
    o.shared_mode = 0660;
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_EPERM);
    /* a group name that does not exist: a configuration error naming the variable */
    strcpy(o.shared_group, "no-such-group-tc");
    assert_int_equal(tc__l2_open(&o, &t, err, sizeof err), TC_ECONFIG);
    assert_non_null(strstr(err, "CACHE_SHARED_GROUP=\"no-such-group-tc\": no such group"));
    assert_int_equal(tc_shared_destroy(seg_name), 0);

    /* A member who is not in the group cannot create a segment for it. */
    r = cli_as(OTHER_UID, NULL, env, "set", "k", "v");
    assert_int_equal(r.status, 2);
    assert_true(tc_test_contains(r.err, "must be a member of that group"));
    tc_test_run_free(&r);
    assert_int_equal(tc_shared_destroy(seg_name), TC_ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_segment_squatted_by_another_user_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_symlink_planted_under_the_name_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_own_segment_with_a_wider_mode_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_shared_segment_works_across_users, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
