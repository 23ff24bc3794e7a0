/*
 * test_l2_stress.c -- many processes with several threads each hammer one small L2 segment
 * (gets, sets of random sizes, deletes, prefix clears; eviction and compaction all the time).
 * Every value read carries its own checksum: none may be torn or belong to another key.
 * Afterwards the segment checks consistent. Also run under TSan (label "stress").
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "l2_stress_util.h"

static void test_concurrent_readers_writers(void **state) {
    (void)state;
    char name[64];
    l2t_name(name, sizeof name, "stress");
    l2s_shared *sh = l2s_shared_new();
    assert_non_null(sh);
    const int nproc = 3, nthreads = 3;
    const uint64_t ops = L2S_SLOW ? 20000 : 200000;
    pid_t pids[8];
    for (int p = 0; p < nproc; p++) {
        pids[p] = fork();
        assert_true(pids[p] >= 0);
        if (pids[p] == 0) l2s_process(name, sh, nthreads, (uint64_t)p + 1, ops);
    }
    for (int p = 0; p < nproc; p++) assert_int_equal(l2t_wait(pids[p]), 0);
    assert_int_equal(atomic_load(&sh->ops), (uint64_t)nproc * nthreads * ops);
    assert_int_equal(atomic_load(&sh->torn), 0);
    assert_int_equal(atomic_load(&sh->errors), 0);
    char rep[4096];
    int rc = tc_shared_check(name, rep, sizeof rep);
    if (rc) fprintf(stderr, "%s", rep);
    assert_int_equal(rc, 0);
    assert_int_equal(l2s_verify_all(name), 0);
    tc_tier_stats st = TC_TIER_STATS_INIT;
    assert_int_equal(tc_shared_stats(name, &st, NULL, 0), 0);
    assert_true(st.evictions > 0);
    assert_true(st.entries <= 2000);
    assert_true(st.bytes <= (512 << 10));
    assert_int_equal(tc_shared_destroy(name), 0);
    munmap(sh, sizeof *sh);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_readers_writers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
