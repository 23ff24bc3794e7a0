/*
 * test_l2_multiproc.c -- the L2 tier across processes: racing creation of one new segment by
 * many processes, writes seen by other processes, clear-by-prefix and TTL expiry seen by
 * another process, host-wide statistics, and a restarted process finding the cache warm.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <time.h>

#include "l2_util.h"

#define NPROC 8

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int count_files_containing(const char *needle) {
    DIR *d = opendir("/dev/shm");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, needle)) n++;
    if (d) closedir(d);
    return n;
}

/* N processes open the same new name at the same instant: one segment results, every
 * process writes its key, and every key is seen by all. */
static void test_racing_creation(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "race");
    for (int round = 0; round < 5; round++) {
        l2t_gate gate;
        assert_int_equal(l2t_gate_init(&gate), 0);
        pid_t pids[NPROC];
        for (int i = 0; i < NPROC; i++) {
            pids[i] = fork();
            assert_true(pids[i] >= 0);
            if (pids[i] == 0) {
                l2t_gate_wait(&gate);
                tc__opts o;
                l2t_opts(&o, name, 10000, 8 << 20, TC_POLICY_ALLKEYS_LRU);
                tc__tier *t = NULL;
                char err[512];
                if (tc__l2_open(&o, &t, err, sizeof err) != 0) {
                    fprintf(stderr, "child open: %s\n", err);
                    _exit(1);
                }
                char k[32];
                int kl = snprintf(k, sizeof k, "proc-%d", i);
                if (t->ops->set(t, &TC__KEY(k, (size_t)kl), &i, sizeof i, TC_TTL_NONE, NULL) != 0) _exit(2);
                /* Wait until every other process's key is visible. */
                for (int tries = 0; tries < 2000; tries++) {
                    int seen = 0;
                    for (int j = 0; j < NPROC; j++) {
                        char kj[32], buf[8];
                        size_t len;
                        int kjl = snprintf(kj, sizeof kj, "proc-%d", j);
                        if (l2t_get(t, kj, (size_t)kjl, buf, sizeof buf, &len, NULL) == 0) seen++;
                    }
                    if (seen == NPROC) {
                        t->ops->close(t);
                        _exit(0);
                    }
                    sleep_ms(1);
                }
                _exit(3);
            }
        }
        l2t_gate_open(&gate);
        for (int i = 0; i < NPROC; i++) assert_int_equal(l2t_wait(pids[i]), 0);
        assert_int_equal(count_files_containing(name), 1); /* no temporary file left */
        char rep[1024];
        assert_int_equal(tc_shared_check(name, rep, sizeof rep), 0);
        tc_tier_stats st = TC_TIER_STATS_INIT;
        assert_int_equal(tc_shared_stats(name, &st, NULL, 0), 0);
        assert_int_equal(st.entries, NPROC);
        assert_int_equal(st.sets, NPROC);
        assert_int_equal(tc_shared_destroy(name), 0);
    }
}

static tc__tier *open_named(const char *name) {
    tc__opts o;
    l2t_opts(&o, name, 10000, 8 << 20, TC_POLICY_ALLKEYS_LRU);
    tc__tier *t = NULL;
    char err[512];
    if (tc__l2_open(&o, &t, err, sizeof err) != 0) {
        fprintf(stderr, "open: %s\n", err);
        return NULL;
    }
    return t;
}

/* A child writes; the parent clears a prefix; a second child sees the result. */
static void test_prefix_clear_seen_by_others(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "prefix");
    pid_t p = fork();
    if (p == 0) {
        tc__tier *t = open_named(name);
        if (t == NULL) _exit(1);
        char k[32];
        for (int i = 0; i < 500; i++) {
            int kl = snprintf(k, sizeof k, "%s:%d", i % 2 ? "sess" : "user", i);
            if (t->ops->set(t, &TC__KEY(k, (size_t)kl), "v", 1, TC_TTL_NONE, NULL) != 0) _exit(2);
        }
        t->ops->close(t);
        _exit(0);
    }
    assert_int_equal(l2t_wait(p), 0);
    tc__tier *t = open_named(name);
    assert_non_null(t);
    assert_int_equal(t->ops->clear_prefix(t, "sess:", 5), 0);
    p = fork();
    if (p == 0) {
        tc__tier *c = open_named(name);
        if (c == NULL) _exit(1);
        char k[32], buf[4];
        size_t len;
        for (int i = 0; i < 500; i++) {
            int kl = snprintf(k, sizeof k, "%s:%d", i % 2 ? "sess" : "user", i);
            int rc = l2t_get(c, k, (size_t)kl, buf, sizeof buf, &len, NULL);
            if (rc != (i % 2 ? TC_EMISS : 0)) _exit(3);
        }
        if (c->ops->clear(c) != 0) _exit(4); /* and a clear by the child ... */
        c->ops->close(c);
        _exit(0);
    }
    assert_int_equal(l2t_wait(p), 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st); /* ... is seen by the parent */
    assert_int_equal(st.entries, 0);
    char buf[4];
    size_t len;
    assert_int_equal(l2t_get(t, "user:0", 6, buf, sizeof buf, &len, NULL), TC_EMISS);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* A TTL set by one process expires for another; the remaining TTL is the same for both. */
static void test_ttl_across_processes(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "ttlx");
    tc__tier *t = open_named(name);
    assert_non_null(t);
    assert_int_equal(t->ops->set(t, &TC__KEY("k", 1), "v", 1, 300, NULL), 0);
    pid_t p = fork();
    if (p == 0) {
        tc__tier *c = open_named(name);
        char buf[4];
        size_t len;
        int64_t ttl;
        if (c == NULL || l2t_get(c, "k", 1, buf, sizeof buf, &len, &ttl) != 0) _exit(1);
        if (ttl <= 0 || ttl > 300) _exit(2);
        sleep_ms(350);
        if (l2t_get(c, "k", 1, buf, sizeof buf, &len, NULL) != TC_EMISS) _exit(3);
        c->ops->close(c);
        _exit(0);
    }
    assert_int_equal(l2t_wait(p), 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* A process that exits and starts again finds what it wrote (the cache is warm); statistics
 * count every process's operations; attached processes are counted. */
static void test_warm_restart_and_stats(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "warm");
    for (int gen = 0; gen < 3; gen++) {
        pid_t p = fork();
        if (p == 0) {
            tc__tier *t = open_named(name);
            if (t == NULL) _exit(1);
            char k[32], buf[64];
            size_t len;
            for (int i = 0; i < 100; i++) {
                int kl = snprintf(k, sizeof k, "gen%d-%d", gen, i);
                if (t->ops->set(t, &TC__KEY(k, (size_t)kl), k, (size_t)kl, TC_TTL_NONE, NULL) != 0) _exit(2);
            }
            for (int g = 0; g < gen; g++)
                for (int i = 0; i < 100; i++) {
                    int kl = snprintf(k, sizeof k, "gen%d-%d", g, i);
                    if (l2t_get(t, k, (size_t)kl, buf, sizeof buf, &len, NULL) != 0) _exit(3);
                    if (len != (size_t)kl || memcmp(buf, k, len) != 0) _exit(4);
                }
            t->ops->close(t);
            _exit(0);
        }
        assert_int_equal(l2t_wait(p), 0);
    }
    tc_tier_stats st = TC_TIER_STATS_INIT;
    assert_int_equal(tc_shared_stats(name, &st, NULL, 0), 0);
    assert_int_equal(st.sets, 300);
    assert_int_equal(st.hits, 300); /* generation 1 read 100, generation 2 read 200 */
    assert_int_equal(st.entries, 300);
    /* Attached processes: this one plus a child holding the segment open. */
    tc__tier *t = open_named(name);
    assert_non_null(t);
    int pipefd[2];
    assert_int_equal(pipe(pipefd), 0);
    pid_t p = fork();
    if (p == 0) {
        close(pipefd[1]);
        tc__tier *c = open_named(name);
        char ch;
        if (read(pipefd[0], &ch, 1) < 0) _exit(1); /* parent closes: EOF */
        c->ops->close(c);
        _exit(0);
    }
    close(pipefd[0]);
    const char *procs = NULL;
    for (int tries = 0; tries < 1000; tries++) {
        assert_int_equal(tc_shared_stats(name, &st, NULL, 0), 0);
        for (int i = 0; i < st.nextra; i++)
            if (strcmp(st.extra[i].name, "processes") == 0) procs = st.extra[i].value;
        if (procs && strcmp(procs, "2") == 0) break;
        sleep_ms(2);
    }
    assert_string_equal(procs, "2");
    close(pipefd[1]);
    assert_int_equal(l2t_wait(p), 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_stats(name, &st, NULL, 0), 0);
    for (int i = 0; i < st.nextra; i++)
        if (strcmp(st.extra[i].name, "processes") == 0) assert_string_equal(st.extra[i].value, "0");
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* A creator that dies before naming its segment leaves only a temporary file, which the next
 * creation removes (once it is older than the grace period and unlocked); the name is created
 * afresh. */
static void test_creator_death_leaves_no_segment(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "dead-creator");
    pid_t p = fork();
    if (p == 0) {
        /* Simulate a creator killed mid-initialisation: a temporary file of a dead pid, left a
         * minute ago. */
        char tmp[256];
        snprintf(tmp, sizeof tmp, "/dev/shm/.tiercache-tmp.%ld.0.%s", (long)getpid(), name);
        FILE *f = fopen(tmp, "w");
        if (f == NULL) _exit(1);
        fputs("half-built", f);
        fclose(f);
        struct timespec old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
        if (utimensat(AT_FDCWD, tmp, old, 0) != 0) _exit(2);
        _exit(0);
    }
    assert_int_equal(l2t_wait(p), 0);
    assert_int_equal(count_files_containing(name), 1);
    tc__tier *t = open_named(name);
    assert_non_null(t);
    assert_int_equal(count_files_containing(name), 1); /* the stale one is gone, ours is there */
    char rep[512];
    assert_int_equal(tc_shared_check(name, rep, sizeof rep), 0);
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
}

/* The crash loop of issue 8, item 6: a creator killed during posix_fallocate leaves
 * .tiercache-tmp.<pid>.0.<name>; a later process with the same pid (PID 1 in a container that
 * keeps /dev/shm) must still be able to create the segment. Planted with this test's own pid:
 * creation succeeds; the leftover is removed once it is older than the grace period and
 * nobody holds its lock; a temporary file a live creator holds locked is left alone. */
static void test_leftover_temporary_file_of_a_reused_pid_cannot_block_creation(void **state) {
    (void)state;
    char name[64], tmp[256], old_tmp[256], held[256];
    l2t_name(name, sizeof name, "reused-pid");
    snprintf(tmp, sizeof tmp, "/dev/shm/.tiercache-tmp.%ld.0.%s", (long)getpid(), name);
    snprintf(old_tmp, sizeof old_tmp, "/dev/shm/.tiercache-tmp.%ld.1.%s", (long)getpid(), name);
    snprintf(held, sizeof held, "/dev/shm/.tiercache-tmp.%ld.2.%s", (long)getpid(), name);
    const char *const plant[] = {tmp, old_tmp, held};
    for (int i = 0; i < 3; i++) {
        int fd = open(plant[i], O_RDWR | O_CREAT | O_EXCL, 0600);
        assert_true(fd >= 0);
        assert_int_equal(ftruncate(fd, 1 << 20), 0); /* half-reserved */
        close(fd);
    }
    struct timespec old[2] = {{time(NULL) - 60, 0}, {time(NULL) - 60, 0}};
    assert_int_equal(utimensat(AT_FDCWD, old_tmp, old, 0), 0);
    assert_int_equal(utimensat(AT_FDCWD, held, old, 0), 0);
    /* a live creator holds its temporary file locked (here: a child that sleeps) */
    int gate[2];
    assert_int_equal(pipe(gate), 0);
    pid_t p = fork();
    if (p == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a failed test */
        int fd = open(held, O_RDWR);
        if (fd < 0 || flock(fd, LOCK_EX) != 0) _exit(1);
        char c = 'x';
        if (write(gate[1], &c, 1) != 1) _exit(1);
        pause();
        _exit(0);
    }
    char c;
    assert_int_equal(read(gate[0], &c, 1), 1);

    tc__tier *t = open_named(name); /* the old code failed here for good: TC_EIO */
    assert_non_null(t);
    assert_int_equal(access(old_tmp, F_OK), -1); /* old and unlocked: a dead creator's */
    assert_int_equal(access(held, F_OK), 0);     /* locked: a live creator's */
    assert_int_equal(access(tmp, F_OK), 0);      /* too recent to judge */
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);
    assert_non_null(t = open_named(name)); /* and again, with the leftover still there */
    t->ops->close(t);
    assert_int_equal(tc_shared_destroy(name), 0);

    kill(p, SIGKILL);
    l2t_wait(p);
    close(gate[0]);
    close(gate[1]);
    /* the holder is gone: the next sweep (tc_shared_list sweeps too) removes its file */
    char *names = NULL;
    assert_int_equal(tc_shared_list(&names, NULL), 0);
    tc_free(names);
    assert_int_equal(access(held, F_OK), -1);
    assert_int_equal(unlink(tmp), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_racing_creation),
        cmocka_unit_test(test_prefix_clear_seen_by_others),
        cmocka_unit_test(test_ttl_across_processes),
        cmocka_unit_test(test_warm_restart_and_stats),
        cmocka_unit_test(test_creator_death_leaves_no_segment),
        cmocka_unit_test(test_leftover_temporary_file_of_a_reused_pid_cannot_block_creation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
