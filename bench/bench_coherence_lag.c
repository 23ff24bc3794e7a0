/*
 * bench_coherence_lag -- cross-host invalidation lag (docs/COHERENCE.md, guarantee 2): how long
 * after a write through Redis another host's listener has moved the key's stripe in that
 * host's coherence table, so that no process of that host serves the old value any more.
 *
 * Two simulated hosts on this machine, one Redis server (the one the environment names:
 * REDIS_HOST/REDIS_PORT or REDIS_URL):
 *   host B  a child process: its own coherence segment, an L3 tier and its watchdog, which
 *           becomes B's listener;
 *   host A  this process: an L3 tier only, writing WRITES distinct keys one after another
 *           (SET with the value header, PX 60 s); after each, it watches B's invalidation word of
 *           that key (B's segment is on this machine: A maps it and polls it, spinning) until
 *           it moves.
 *
 *   REDIS_HOST=127.0.0.1 REDIS_PORT=P bench_coherence_lag [WRITES]     (default 10000)
 *
 * It uses the pieces directly (the L3 tier, the coherence table, the watchdog), not the public
 * API: the moment it measures is an invalidation word of another host's table moving, which no public
 * call shows, and it needs none of the orchestrator around them.
 *
 * Prints the configuration, then the lag from the write's completion (tc_set returned) to the
 * stripe moving -- what guarantee 2 bounds -- and from the write's start, as p50, p99, p999 and
 * max in microseconds, and the canary lag B's listener measured. A lag never seen within
 * CACHE_MAX_STALENESS counts as missed.
 */
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "coherence.h"
#include "config.h"
#include "l3_listen.h"
#include "tier.h"
#include "util.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *sorted, size_t n, double p) {
    if (n == 0) return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return sorted[i];
}

/* Host B: the table, the tier, the watchdog; says 'y' once it listens, runs until told. */
static void host_b(const tc__opts *o, int ready, int hold) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char err[256];
    tc__coh *coh = NULL;
    tc__tier *l3 = NULL;
    tc__l3_watch *w = NULL;
    char ok = 'n';
    if (tc__coh_open_shared(o, &coh, err, sizeof err) == 0 && tc__l3_open(o, &l3, err, sizeof err) == 0 &&
        tc__l3_watch_start(l3, coh, o, &w, err, sizeof err) == 0) {
        for (int i = 0; i < 5000 && (tc__coh_gap(coh) || !tc__l3_watch_listening(w)); i++) usleep(1000);
        if (!tc__coh_gap(coh)) ok = 'y';
    }
    if (ok != 'y') fprintf(stderr, "bench_coherence_lag: host B: %s\n", err);
    if (write(ready, &ok, 1) != 1) _exit(1);
    char c;
    if (read(hold, &c, 1) < 0) _exit(1);
    tc_stats st = {.size = sizeof st};
    if (w) tc__l3_watch_stats(w, &st);
    printf("host_b_lag_last_us=%llu host_b_lag_max_us=%llu host_b_gaps=%llu ", (unsigned long long)st.channel_lag_us,
           (unsigned long long)st.channel_lag_max_us, (unsigned long long)st.channel_gaps);
    printf("\n");
    fflush(stdout);
    tc__l3_watch_stop(w);
    if (l3) l3->ops->close(l3);
    tc__coh_close(coh);
    _exit(0);
}

int main(int argc, char **argv) {
    long writes = argc > 1 ? atol(argv[1]) : 10000;
    if (writes <= 0) writes = 10000;
    if (getenv("REDIS_KEY_PREFIX") == NULL) setenv("REDIS_KEY_PREFIX", "tiercache-bench-lag:", 1);
    tc__opts o;
    char err[256];
    if (tc__opts_from_env(&o, err, sizeof err) != 0) {
        fprintf(stderr, "bench_coherence_lag: %s\n", err);
        return 2;
    }
    if (o.redis_host[0] == '\0') snprintf(o.redis_host, sizeof o.redis_host, "127.0.0.1");
    snprintf(o.shared_name, sizeof o.shared_name, "tcbench-lag-%d", (int)getpid());

    int ready[2], hold[2];
    if (pipe(ready) != 0 || pipe(hold) != 0) return 2;
    pid_t b = fork();
    if (b == 0) {
        close(ready[0]);
        close(hold[1]);
        host_b(&o, ready[1], hold[0]);
    }
    close(ready[1]);
    close(hold[0]);
    char ok = 0;
    if (read(ready[0], &ok, 1) != 1 || ok != 'y') {
        fprintf(stderr, "bench_coherence_lag: host B never listened (is the server up?)\n");
        waitpid(b, NULL, 0);
        tc__coh_destroy(o.shared_name);
        return 2;
    }
    tc__coh *bcoh = NULL;
    tc__tier *a = NULL;
    if (tc__coh_open_shared(&o, &bcoh, err, sizeof err) != 0 || tc__l3_open(&o, &a, err, sizeof err) != 0) {
        fprintf(stderr, "bench_coherence_lag: %s\n", err);
        return 2;
    }
    printf("bench=coherence_lag redis=%s:%d max_staleness_ms=%llu writes=%ld value_bytes=100\n", o.redis_host,
           o.redis_port, (unsigned long long)o.max_staleness_ms, writes);
    uint64_t *from_done = malloc((size_t)writes * sizeof *from_done);
    uint64_t *from_start = malloc((size_t)writes * sizeof *from_start);
    uint64_t *set_ns = malloc((size_t)writes * sizeof *set_ns);
    if (!from_done || !from_start || !set_ns) return 2;
    char val[100];
    memset(val, 'v', sizeof val);
    long missed = 0, failed = 0;
    size_t n = 0;
    const uint64_t bound_ns = o.max_staleness_ms * 1000000u;
    for (long i = 0; i < writes; i++) {
        char key[40];
        int kl = snprintf(key, sizeof key, "lag:%ld:%d", i, (int)getpid());
        tc__key k = TC__KEY(key, (size_t)kl);
        const _Atomic uint64_t *word = &tc__coh_words(bcoh, k.hash)[1]; /* invalidations */
        uint64_t before = atomic_load(word);
        uint64_t t0 = tc__now_ns();
        if (a->ops->set(a, &k, val, sizeof val, 60000, NULL) != 0) {
            failed++;
            continue;
        }
        uint64_t t1 = tc__now_ns(), t2;
        while (atomic_load(word) == before && (t2 = tc__now_ns()) - t1 < bound_ns) sched_yield();
        t2 = tc__now_ns();
        if (atomic_load(word) == before) {
            missed++;
            continue;
        }
        from_done[n] = t2 - t1;
        from_start[n] = t2 - t0;
        set_ns[n] = t1 - t0;
        n++;
    }
    qsort(from_done, n, sizeof *from_done, cmp_u64);
    qsort(from_start, n, sizeof *from_start, cmp_u64);
    qsort(set_ns, n, sizeof *set_ns, cmp_u64);
    printf("lag_from_completion_us p50=%.1f p99=%.1f p999=%.1f max=%.1f\n", pct(from_done, n, 0.5) / 1e3,
           pct(from_done, n, 0.99) / 1e3, pct(from_done, n, 0.999) / 1e3, pct(from_done, n, 1.0) / 1e3);
    printf("lag_from_start_us p50=%.1f p99=%.1f p999=%.1f max=%.1f\n", pct(from_start, n, 0.5) / 1e3,
           pct(from_start, n, 0.99) / 1e3, pct(from_start, n, 0.999) / 1e3, pct(from_start, n, 1.0) / 1e3);
    printf("set_us p50=%.1f p99=%.1f max=%.1f measured=%zu missed=%ld failed=%ld\n", pct(set_ns, n, 0.5) / 1e3,
           pct(set_ns, n, 0.99) / 1e3, pct(set_ns, n, 1.0) / 1e3, n, missed, failed);
    fflush(stdout);
    char q = 'q';
    if (write(hold[1], &q, 1) != 1) kill(b, SIGKILL);
    waitpid(b, NULL, 0);
    a->ops->close(a);
    tc__coh_close(bcoh);
    tc__coh_destroy(o.shared_name);
    free(from_done);
    free(from_start);
    free(set_ns);
    return missed || failed ? 1 : 0;
}
