/*
 * l2_segment.c -- the L2 shared-memory segment: naming, geometry, atomic creation, attaching
 * with validation, the per-shard index and heap primitives, compaction, crash repair, the
 * invariant checker, and the public admin functions (tc_shared_*).
 *
 * Creation is atomic: the creator builds the whole segment in a private temporary file in
 * /dev/shm, then link()s it to its public name. link() fails with EEXIST when another process
 * won the race; the loser drops its copy and attaches to the winner's. So a segment that has
 * its name is always fully initialised, and a creator that dies mid-way leaves only a
 * temporary file. That file has a random name and is flock()ed by its creator while it lives,
 * so the next creator (or tc_shared_list) removes it once the lock is gone, whatever became of
 * the creator's pid; and a leftover can never block a new creation.
 *
 * Trust: a segment is used only when its file, checked with fstat() on the descriptor that was
 * opened (O_NOFOLLOW), belongs to this effective uid or to the configured group and has no
 * permission beyond the configured mode (tc__shm_trust). Once validated, the geometry is
 * copied into the process: no offset or limit is ever read from the mapping again, and every
 * value of the writable part is checked against that copy before use.
 *
 * Crash safety rests on one rule: within a shard, every change happens under the shard's
 * robust mutex and in an order that keeps the heap walkable from 0 to `used` at every
 * instant. The heap is then the truth and everything else (index, counters) can be rebuilt
 * from it. A process that dies holding the lock hands the next locker EOWNERDEAD; that
 * locker repairs the shard (tc__l2_repair_locked) before doing anything else. The only
 * multi-step heap change, compaction, logs each block move in an intent record first.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "coherence.h"
#include "l2_segment.h"
#include "util.h"

_Atomic int tc__l2_crash_at;
_Atomic int tc__l2_crash_signal = SIGKILL;
_Atomic unsigned tc__l2_admin_wait_ms = TC__L2_ADMIN_WAIT_MS;

void tc__l2_crash(void) {
    raise(atomic_load(&tc__l2_crash_signal));
}

/* ------------------------------------------------------------------------ */
/* Names and geometry                                                       */
/* ------------------------------------------------------------------------ */

int tc__l2_name_check(const char *name, char *errbuf, size_t errlen) {
    if (name == NULL || name[0] == '\0')
        return tc__errf(errbuf, errlen, TC_EINVAL, "shared segment name is empty (CACHE_SHARED_NAME)");
    size_t n = strlen(name);
    if (n > TC__L2_NAME_MAX)
        return tc__errf(errbuf, errlen, TC_EINVAL,
                        "shared segment name is %zu bytes long; at most %d are allowed", n,
                        TC__L2_NAME_MAX);
    if (name[0] == '.')
        return tc__errf(errbuf, errlen, TC_EINVAL,
                        "shared segment name '%s' must not start with '.'", name);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok)
            return tc__errf(errbuf, errlen, TC_EINVAL,
                            "shared segment name '%s' has character 0x%02x at %zu; allowed are "
                            "letters, digits, '.', '_' and '-'",
                            name, (unsigned char)c, i);
    }
    return 0;
}

static const char *policy_str(uint32_t p) {
    return p < TC_POLICY__COUNT ? tc_policy_name((tc_policy)p) : "unknown";
}

static uint64_t align_up(uint64_t n, uint64_t a) { return (n + a - 1) / a * a; }

static uint64_t next_pow2(uint64_t n) {
    uint64_t p = 1;
    while (p < n) p <<= 1;
    return p;
}

int tc__l2_geom_derive(tc__l2_geom *g, char *errbuf, size_t errlen) {
    if (g->max_key_bytes == 0 || g->max_key_bytes > UINT32_MAX)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_MAX_KEY_BYTES=%llu: the shared tier needs 1..%u",
                        (unsigned long long)g->max_key_bytes, UINT32_MAX);
    if (g->max_value_bytes > UINT32_MAX)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_MAX_VALUE_BYTES=%llu: the shared tier holds values up to %u bytes",
                        (unsigned long long)g->max_value_bytes, UINT32_MAX);
    if (g->max_entries == 0 || g->max_entries > (1ull << 32))
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_MAX_ENTRIES=%llu: accepted are 1..%llu",
                        (unsigned long long)g->max_entries, 1ull << 32);
    if ((unsigned)g->policy >= TC_POLICY__COUNT)
        return tc__errf(errbuf, errlen, TC_ECONFIG, "CACHE_SHARED_EVICTION: unknown policy %d",
                        (int)g->policy);
    if (g->policy == TC_POLICY_TINYLFU)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_EVICTION=tinylfu is not supported by the shared tier (its "
                        "admission sketch would be per process); use allkeys-lfu, or any Redis "
                        "policy");
    uint64_t max_block = tc__l2_blk_size(g->max_key_bytes, g->max_value_bytes);
    if (g->max_bytes < max_block || g->max_bytes > (1ull << 44))
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_MAX_BYTES=%llu: must be between one entry of the largest "
                        "allowed size (%llu bytes: 64 + CACHE_MAX_KEY_BYTES + "
                        "CACHE_MAX_VALUE_BYTES) and 16TiB",
                        (unsigned long long)g->max_bytes, (unsigned long long)max_block);

    /* The byte budget rules: no index slots for entries the heap could never hold. */
    uint64_t by_bytes = g->max_bytes / tc__l2_blk_size(0, 0);
    if (g->max_entries > by_bytes) g->max_entries = by_bytes > 0 ? by_bytes : 1;

    /* Shards: at least 128 when every shard can still hold 2 of the largest entries, 64 KiB
     * and 64 entries (so that processes rarely meet on a lock); more while a shard's heap would
     * exceed TC__L2_SHARD_TARGET (a repair or a compaction walks one heap). */
    uint32_t n = 1;
    for (;;) {
        uint32_t m = n * 2;
        if (m > TC__L2_MAX_SHARDS) break;
        uint64_t per = g->max_bytes / m;
        if (per < 2 * max_block || per < (64u << 10) || g->max_entries / m < 64) break;
        if (n >= 128 && g->max_bytes / n <= TC__L2_SHARD_TARGET) break;
        n = m;
    }
    g->nshards = n;
    uint64_t share_e = (g->max_entries + n - 1) / n;
    uint64_t share_b = (g->max_bytes + n - 1) / n;
    g->index_slots = next_pow2(share_e * 2 < 16 ? 16 : share_e * 2);
    uint64_t slack = share_b / 4 > max_block ? share_b / 4 : max_block;
    g->heap_bytes = align_up(share_b + slack, 64);
    if (g->heap_bytes / 8 >= 0xfffffffeull)
        return tc__errf(errbuf, errlen, TC_ECONFIG,
                        "CACHE_SHARED_MAX_BYTES=%llu: too large for %u shards",
                        (unsigned long long)g->max_bytes, n);
    g->off_shards = 4096;
    g->off_index = align_up(g->off_shards + (uint64_t)n * sizeof(tc__l2_shard), 4096);
    g->off_heap = align_up(g->off_index + (uint64_t)n * g->index_slots * sizeof(tc__l2_slot), 4096);
    g->total_bytes = align_up(g->off_heap + (uint64_t)n * g->heap_bytes, 4096);
    return 0;
}

_Static_assert(sizeof(tc__l2_hdr) <= 4096, "segment header must fit its page");
_Static_assert(sizeof(tc__l2_blk) == TC__L2_BLK_HDR, "block header is 72 bytes");

static uint64_t hdr_csum(const tc__l2_hdr *h) { return XXH3_64bits(h, offsetof(tc__l2_hdr, hcsum)); }

static void path_of(char *out, size_t n, const char *name) {
    snprintf(out, n, "%s/%s%s", TC__L2_DIR, TC__L2_FILE_PREFIX, name);
}

static int pid_alive(pid_t pid) { return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM); }

/* ------------------------------------------------------------------------ */
/* Trust                                                                    */
/* ------------------------------------------------------------------------ */

/* ------------------------------------------------------------------------ */
/* Creating and attaching                                                   */
/* ------------------------------------------------------------------------ */

void tc__l2_sweep_tmp(void) {
    DIR *d = opendir(TC__L2_DIR);
    if (d == NULL) return;
    struct dirent *e;
    size_t plen = strlen(TC__L2_TMP_PREFIX);
    uid_t me = geteuid();
    time_t now = time(NULL);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, TC__L2_TMP_PREFIX, plen) != 0) continue;
        int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) continue;
        struct stat st;
        /* Ours, past the moment between its creator's open() and flock(), and not locked: its
         * creator is gone (a lock dies with its holder, whatever becomes of the pid). */
        if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == me &&
            now - st.st_mtime >= TC__L2_TMP_GRACE_S && flock(fd, LOCK_EX | LOCK_NB) == 0)
            unlinkat(dirfd(d), e->d_name, 0);
        close(fd);
    }
    closedir(d);
}

static int init_shard_lock(pthread_mutex_t *m) {
    pthread_mutexattr_t a;
    if (pthread_mutexattr_init(&a) != 0) return -1;
    int rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (rc == 0) rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (rc == 0) rc = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

/* The error for a segment /dev/shm has no room for: what it needs, what is free, and which
 * variables to lower (the heap follows CACHE_SHARED_MAX_BYTES, the index the entry count). */
static int no_room(const char *name, const tc__l2_geom *g, char *errbuf, size_t errlen) {
    struct statvfs fs;
    char freebuf[96] = "";
    if (statvfs(TC__L2_DIR, &fs) == 0)
        snprintf(freebuf, sizeof freebuf, " has %llu bytes free of %llu;",
                 (unsigned long long)fs.f_bavail * fs.f_frsize, (unsigned long long)fs.f_blocks * fs.f_frsize);
    else
        snprintf(freebuf, sizeof freebuf, " is full;");
    uint64_t index = g->off_heap - g->off_index;
    return tc__errf(errbuf, errlen, TC_ENOMEM,
                    "cannot create shared segment '%s': it needs %llu bytes and %s%s lower "
                    "CACHE_SHARED_MAX_BYTES (now %llu: the heap, %llu bytes) or CACHE_SHARED_MAX_ENTRIES (now "
                    "%llu: the index, %llu bytes), or give %s more room (docker run --shm-size)",
                    name, (unsigned long long)g->total_bytes, TC__L2_DIR, freebuf,
                    (unsigned long long)g->max_bytes, (unsigned long long)((uint64_t)g->nshards * g->heap_bytes),
                    (unsigned long long)g->max_entries, (unsigned long long)index, TC__L2_DIR);
}

static uint64_t random_u64(void) {
    static _Atomic uint64_t counter;
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = tc__now_ns() ^ ((uint64_t)getpid() << 32) ^ atomic_fetch_add(&counter, 0x9e3779b97f4a7c15ull);
    return r;
}

/* Opens a new temporary file for building segment name: a random name (a leftover of any
 * other creator never collides with it), O_EXCL and O_NOFOLLOW (nothing planted under the name
 * is opened), locked with flock() at once so that tc__l2_sweep_tmp() leaves it alone while we
 * live. Returns the descriptor, or -1 with errno set (EAGAIN: a sweeper took the file in the
 * instant before we locked it; try again). */
static int open_tmp(const char *name, char *tmp, size_t n) {
    int fd = -1;
    for (int attempt = 0; attempt < 8; attempt++) {
        snprintf(tmp, n, "%s/%s%ld.%016llx.%s", TC__L2_DIR, TC__L2_TMP_PREFIX, (long)getpid(),
                 (unsigned long long)random_u64(), name);
        fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0 || errno != EEXIST) break;
    }
    if (fd < 0) return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        errno = EAGAIN;
        return -1;
    }
    return fd;
}

/* Builds a complete segment under a temporary name and links it to path. The new file gets
 * the trusted group and mode before anything is written to it.
 * Returns 0 (we created it), 1 (the name was taken meanwhile, or our temporary file vanished:
 * the caller attaches or tries again), or an error. */
static int create_segment(const char *name, const char *path, const tc__l2_geom *g,
                          const tc__shm_trust *trust, char *errbuf, size_t errlen) {
    char tmp[TC__L2_NAME_MAX + 96];
    tc__l2_sweep_tmp();
    int fd = open_tmp(name, tmp, sizeof tmp);
    if (fd < 0) {
        if (errno == EAGAIN) return 1;
        return tc__errf(errbuf, errlen, errno == EACCES ? TC_EPERM : TC_EIO,
                        "cannot create %s: %s", tmp, strerror(errno));
    }
    /* The file we hold is the one we created: ours, alone, regular. Then its group and mode. */
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || st.st_nlink != 1)
        rc = tc__errf(errbuf, errlen, TC_EPERM, "temporary file %s is not the file this process "
                      "created: refused", tmp);
    else if (trust->has_group && st.st_gid != trust->gid && fchown(fd, (uid_t)-1, trust->gid) != 0)
        rc = tc__errf(errbuf, errlen, TC_EPERM,
                      "cannot give the new shared segment '%s' to group %s (CACHE_SHARED_GROUP): "
                      "%s; the process must be a member of that group",
                      name, trust->group, strerror(errno));
    else if (fchmod(fd, trust->mode) != 0)
        rc = tc__errf(errbuf, errlen, TC_EIO, "cannot set mode %04o on %s: %s", trust->mode, tmp,
                      strerror(errno));
    if (rc != 0) {
        unlink(tmp);
        close(fd);
        return rc;
    }
    rc = posix_fallocate(fd, 0, (off_t)g->total_bytes);
    if (rc != 0) {
        unlink(tmp);
        close(fd);
        if (rc == ENOSPC) return no_room(name, g, errbuf, errlen);
        return tc__errf(errbuf, errlen, TC_EIO, "cannot reserve %llu bytes in %s for shared segment '%s': %s",
                        (unsigned long long)g->total_bytes, TC__L2_DIR, name, strerror(rc));
    }
    uint8_t *base = mmap(NULL, g->total_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) {
        int e = errno;
        unlink(tmp);
        close(fd);
        return tc__errf(errbuf, errlen, TC_ENOMEM, "cannot map %llu bytes: %s",
                        (unsigned long long)g->total_bytes, strerror(e));
    }
    tc__l2_hdr *h = (tc__l2_hdr *)base;
    h->magic = TC__L2_MAGIC;
    h->layout_version = TC__L2_LAYOUT_VERSION;
    h->hdr_bytes = sizeof(tc__l2_hdr);
    h->shard_bytes = sizeof(tc__l2_shard);
    h->policy = (uint32_t)g->policy;
    h->total_bytes = g->total_bytes;
    h->max_entries = g->max_entries;
    h->max_bytes = g->max_bytes;
    h->max_key_bytes = g->max_key_bytes;
    h->max_value_bytes = g->max_value_bytes;
    h->nshards = g->nshards;
    h->index_slots = g->index_slots;
    h->heap_bytes = g->heap_bytes;
    h->off_shards = g->off_shards;
    h->off_index = g->off_index;
    h->off_heap = g->off_heap;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    snprintf(h->name, sizeof h->name, "%s", name);
    rc = 0;
    for (uint32_t i = 0; i < g->nshards && rc == 0; i++) {
        tc__l2_shard *sh = (tc__l2_shard *)(base + g->off_shards + (uint64_t)i * sizeof *sh);
        rc = init_shard_lock(&sh->lock);
        /* Shares of the limits: the remainder goes to the first shards, so the sum is exact
         * (the same arithmetic as tc__l2_share_entries/bytes). */
        sh->max_entries = g->max_entries / g->nshards + (i < g->max_entries % g->nshards);
        sh->max_bytes = g->max_bytes / g->nshards + (i < g->max_bytes % g->nshards);
    }
    h->hcsum = hdr_csum(h);
    munmap(base, g->total_bytes);
    if (rc != 0) {
        unlink(tmp);
        close(fd);
        return tc__errf(errbuf, errlen, TC_EIO, "cannot initialise a robust process-shared mutex: %s",
                        strerror(rc));
    }
    int linked = link(tmp, path), e = errno;
    unlink(tmp);
    close(fd); /* releases the flock */
    if (linked == 0) return 0;
    if (e == EEXIST || e == ENOENT) return 1; /* ENOENT: swept while we were stopped: again */
    return tc__errf(errbuf, errlen, e == EACCES ? TC_EPERM : TC_EIO, "cannot create %s: %s", path,
                    strerror(e));
}

/* Appends "field: segment X, asked Y" for each asked-for field that differs. */
static int geom_diff(const tc__l2_hdr *h, const tc__l2_geom *g, char *out, size_t n) {
    size_t o = 0;
    int diffs = 0;
#define TC__L2_DIFF(field, var, bit)                                                         \
    if (!(g->adopt & (bit)) && h->field != g->field) {                                   \
        int w = snprintf(out + o, o < n ? n - o : 0, "%s%s=%llu in the segment, %llu asked",  \
                         diffs ? "; " : "", var, (unsigned long long)h->field,              \
                         (unsigned long long)g->field);                                    \
        if (w > 0) o += (size_t)w;                                                         \
        diffs++;                                                                           \
    }
    TC__L2_DIFF(max_entries, "CACHE_SHARED_MAX_ENTRIES", TC__L2_ADOPT_ENTRIES)
    TC__L2_DIFF(max_bytes, "CACHE_SHARED_MAX_BYTES", TC__L2_ADOPT_BYTES)
    TC__L2_DIFF(max_key_bytes, "CACHE_MAX_KEY_BYTES", TC__L2_ADOPT_KEY)
    TC__L2_DIFF(max_value_bytes, "CACHE_MAX_VALUE_BYTES", TC__L2_ADOPT_VALUE)
#undef TC__L2_DIFF
    if (!(g->adopt & TC__L2_ADOPT_POLICY) && h->policy != (uint32_t)g->policy) {
        int w = snprintf(out + o, o < n ? n - o : 0, "%sCACHE_SHARED_EVICTION=%s in the segment, %s asked",
                         diffs ? "; " : "",
                         policy_str(h->policy), policy_str((uint32_t)g->policy));
        if (w > 0) o += (size_t)w;
        diffs++;
    }
    return diffs;
}

/* Validates a copy of a segment's header against the file's size and, when g is not NULL,
 * against the geometry asked for. On success *out is the segment's geometry. */
static int validate_hdr(const tc__l2_hdr *h, size_t fsize, const char *name, const tc__l2_geom *g,
                        tc__l2_geom *out, char *errbuf, size_t errlen) {
    if (h->magic != TC__L2_MAGIC)
        return tc__errf(errbuf, errlen, TC_ECORRUPT,
                        "shared segment '%s' is corrupt or not a tiercache segment (bad magic); "
                        "remove it with `tiercache shared destroy %s`",
                        name, name);
    if (h->layout_version != TC__L2_LAYOUT_VERSION || h->hdr_bytes != sizeof(tc__l2_hdr) ||
        h->shard_bytes != sizeof(tc__l2_shard))
        return tc__errf(errbuf, errlen, TC_EVERSION,
                        "shared segment '%s' has layout version %u (header %u bytes, shard %u "
                        "bytes) but this library uses version %u (%zu, %zu); stop the processes "
                        "using it and run `tiercache shared destroy %s`",
                        name, h->layout_version, h->hdr_bytes, h->shard_bytes,
                        TC__L2_LAYOUT_VERSION, sizeof(tc__l2_hdr), sizeof(tc__l2_shard), name);
    if (hdr_csum(h) != h->hcsum)
        return tc__errf(errbuf, errlen, TC_ECORRUPT,
                        "shared segment '%s' is corrupt: header checksum mismatch; remove it "
                        "with `tiercache shared destroy %s`",
                        name, name);
    tc__l2_geom d = {.max_entries = h->max_entries,
                     .max_bytes = h->max_bytes,
                     .max_key_bytes = h->max_key_bytes,
                     .max_value_bytes = h->max_value_bytes,
                     .policy = (tc_policy)h->policy};
    if (h->policy >= TC_POLICY__COUNT || tc__l2_geom_derive(&d, NULL, 0) != 0 ||
        d.nshards != h->nshards || d.index_slots != h->index_slots ||
        d.heap_bytes != h->heap_bytes || d.off_shards != h->off_shards ||
        d.off_index != h->off_index || d.off_heap != h->off_heap ||
        d.total_bytes != h->total_bytes)
        return tc__errf(errbuf, errlen, TC_EVERSION,
                        "shared segment '%s' was laid out differently by another build of "
                        "tiercache (same version %u, other geometry); stop the processes using "
                        "it and run `tiercache shared destroy %s`",
                        name, h->layout_version, name);
    if (h->total_bytes != fsize)
        return tc__errf(errbuf, errlen, TC_ECORRUPT,
                        "shared segment '%s' is corrupt: %zu bytes on disk, header says %llu; "
                        "remove it with `tiercache shared destroy %s`",
                        name, fsize, (unsigned long long)h->total_bytes, name);
    if (g != NULL) {
        char diff[768];
        if (geom_diff(h, g, diff, sizeof diff) > 0)
            return tc__errf(errbuf, errlen, TC_EVERSION,
                            "shared segment '%s' exists with another geometry (%s); use the "
                            "segment's settings, another CACHE_SHARED_NAME, or stop the "
                            "processes using it and run `tiercache shared destroy %s`",
                            name, diff, name);
    }
    *out = d;
    return 0;
}

static void register_proc(tc__l2_seg *seg) {
    tc__l2_hdr *h = (tc__l2_hdr *)seg->base;
    int32_t me = (int32_t)getpid();
    seg->proc_slot = -1;
    for (int pass = 0; pass < 2 && seg->proc_slot < 0; pass++) {
        for (int i = 0; i < TC__L2_MAX_PROCS; i++) {
            int32_t cur = atomic_load(&h->procs[i]);
            /* First pass: free slots; second: slots of processes that are gone. */
            if (pass == 0 ? cur != 0 : (cur == 0 || pid_alive(cur))) continue;
            if (atomic_compare_exchange_strong(&h->procs[i], &cur, me)) {
                seg->proc_slot = i;
                break;
            }
        }
    }
}

int tc__l2_seg_open(const char *name, const tc__l2_geom *g, const tc__shm_trust *trust, int reg,
                    tc__l2_seg *seg, char *errbuf, size_t errlen) {
    tc__shm_trust owner = TC__SHM_TRUST_OWNER;
    if (trust == NULL) trust = &owner;
    memset(seg, 0, sizeof *seg);
    seg->proc_slot = -1;
    seg->fd = -1;
    int rc = tc__l2_name_check(name, errbuf, errlen);
    if (rc) return rc;
    snprintf(seg->name, sizeof seg->name, "%s", name);
    path_of(seg->path, sizeof seg->path, name);
    for (int attempt = 0;; attempt++) {
        /* O_NONBLOCK: a FIFO planted under the name cannot block the open; O_NOFOLLOW: nor can
         * a symbolic link redirect it. Everything after is judged on this descriptor. */
        int fd = open(seg->path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0) {
            int e = errno;
            if (e == ENOENT && g != NULL && attempt < 8) {
                rc = create_segment(name, seg->path, g, trust, errbuf, errlen);
                if (rc < 0) return rc;
                continue; /* ours or the race winner's: attach to whatever has the name */
            }
            if (e == ENOENT)
                return tc__errf(errbuf, errlen, TC_ENOENT, "shared segment '%s' does not exist (%s)",
                                name, seg->path);
            if (e == ELOOP)
                return tc__errf(errbuf, errlen, TC_EPERM,
                                "%s is a symbolic link, not a shared segment: refused; remove it",
                                seg->path);
            return tc__errf(errbuf, errlen, e == EACCES || e == EPERM ? TC_EPERM : TC_EIO,
                            "cannot open shared segment %s: %s", seg->path, strerror(e));
        }
        struct stat st;
        if (fstat(fd, &st) != 0) {
            int e = errno;
            close(fd);
            return tc__errf(errbuf, errlen, TC_EIO, "cannot stat %s: %s", seg->path, strerror(e));
        }
        rc = tc__shm_trust_check(&st, trust, name, seg->path, errbuf, errlen);
        if (rc) {
            close(fd);
            return rc;
        }
        if ((size_t)st.st_size < sizeof(tc__l2_hdr)) {
            close(fd);
            return tc__errf(errbuf, errlen, TC_ECORRUPT,
                            "shared segment '%s' is corrupt: %lld bytes is too small for a "
                            "segment; remove it with `tiercache shared destroy %s`",
                            name, (long long)st.st_size, name);
        }
        /* The header is copied out of a small mapping and validated as a copy (so another
         * writer cannot change it between the check and the use); only then is the whole
         * segment mapped, pre-faulted so that no operation takes a page fault. */
        tc__l2_hdr h;
        uint8_t *base = mmap(NULL, sizeof(tc__l2_hdr), PROT_READ, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) {
            int e = errno;
            close(fd);
            return tc__errf(errbuf, errlen, TC_ENOMEM, "cannot map %s: %s", seg->path, strerror(e));
        }
        memcpy(&h, base, sizeof h);
        munmap(base, sizeof(tc__l2_hdr));
        rc = validate_hdr(&h, (size_t)st.st_size, name, g, &seg->g, errbuf, errlen);
        if (rc) {
            close(fd);
            return rc;
        }
        base = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
        if (base == MAP_FAILED) {
            int e = errno;
            close(fd);
            return tc__errf(errbuf, errlen, TC_ENOMEM, "cannot map %s: %s", seg->path, strerror(e));
        }
        seg->base = base;
        seg->size = (size_t)st.st_size;
        seg->fd = fd;
        /* The geometry validated above must be the mapped one's (unchanged since the copy), and
         * the file must not have shrunk under the new mapping. */
        if (memcmp(base, &h, offsetof(tc__l2_hdr, hcsum) + sizeof h.hcsum) != 0 ||
            tc__l2_seg_size_ok(seg, errbuf, errlen) != 0) {
            tc__l2_seg_close(seg);
            return tc__errf(errbuf, errlen, TC_ECORRUPT,
                            "shared segment '%s' changed while it was being opened; remove it with "
                            "`tiercache shared destroy %s`",
                            name, name);
        }
        seg->hdr = (const tc__l2_hdr *)base;
        seg->nshards = seg->g.nshards;
        seg->nshards_log2 = (uint32_t)__builtin_ctz(seg->g.nshards);
        seg->index_slots = seg->g.index_slots;
        seg->heap_bytes = seg->g.heap_bytes;
        if (reg) register_proc(seg);
        return 0;
    }
}

int tc__l2_seg_size_ok(const tc__l2_seg *s, char *errbuf, size_t errlen) {
    struct stat st;
    if (fstat(s->fd, &st) != 0)
        return tc__errf(errbuf, errlen, TC_EIO, "shared segment '%s': cannot stat: %s", s->name,
                        strerror(errno));
    if ((uint64_t)st.st_size != (uint64_t)s->size)
        return tc__errf(errbuf, errlen, TC_EIO,
                        "shared segment '%s' was truncated or extended to %lld bytes while in use "
                        "(it has %zu); this process no longer touches it. Stop the processes "
                        "using it and run `tiercache shared destroy %s`",
                        s->name, (long long)st.st_size, s->size, s->name);
    return 0;
}

void tc__l2_seg_close(tc__l2_seg *seg) {
    if (seg == NULL || seg->base == NULL) return;
    if (seg->proc_slot >= 0) {
        tc__l2_hdr *h = (tc__l2_hdr *)seg->base;
        int32_t me = (int32_t)getpid();
        atomic_compare_exchange_strong(&h->procs[seg->proc_slot], &me, 0);
    }
    munmap(seg->base, seg->size);
    seg->base = NULL;
    if (seg->fd >= 0) close(seg->fd);
    seg->fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Blocks                                                                   */
/* ------------------------------------------------------------------------ */

uint64_t tc__l2_hcheck(const tc__l2_blk *b) {
    return XXH3_64bits(b, offsetof(tc__l2_blk, hcheck)) | 1u;
}

/* Written so that no sum can wrap: off and used come from the writable part (an index slot, a
 * shard's cursor, a compaction's intent) and may hold any value. */
const tc__l2_blk *tc__l2_blk_at(const tc__l2_seg *s, uint32_t i, uint64_t off, uint64_t used) {
    if ((off & 7u) != 0 || used > s->heap_bytes || off >= used || used - off < TC__L2_BLK_HDR)
        return NULL;
    const tc__l2_blk *b = (const tc__l2_blk *)(tc__l2_heap_of(s, i) + off);
    uint64_t size = (uint64_t)b->size8 * 8u;
    if (size < TC__L2_BLK_HDR || size > used - off) return NULL;
    if (b->kind == TC__L2_KIND_ENTRY) {
        if (tc__l2_blk_size(b->klen, b->vlen) != size) return NULL;
        if (b->state != TC__L2_LIVE && b->state != TC__L2_DEAD) return NULL;
    } else if (b->kind == TC__L2_KIND_HOLE) {
        if (b->klen != 0 || b->vlen != 0 || b->state != TC__L2_DEAD) return NULL;
    } else {
        return NULL;
    }
    if (b->hcheck != tc__l2_hcheck(b)) return NULL;
    return b;
}

int tc__l2_blk_verify(const tc__l2_blk *b) {
    const uint8_t *k = (const uint8_t *)(b + 1);
    return tc__hash(k, b->klen) == b->hash &&
           XXH3_64bits_withSeed(k + b->klen, b->vlen, b->hash) == b->csum;
}

static void write_hole(uint8_t *heap, uint64_t off, uint64_t len) {
    tc__l2_blk *b = (tc__l2_blk *)(heap + off);
    memset(b, 0, sizeof *b);
    b->size8 = (uint32_t)(len / 8u);
    b->kind = TC__L2_KIND_HOLE;
    b->state = TC__L2_DEAD;
    b->hcheck = tc__l2_hcheck(b);
}

/* ------------------------------------------------------------------------ */
/* Locks                                                                    */
/* ------------------------------------------------------------------------ */

/* The type word glibc keeps in a robust process-shared mutex (pthread_mutex_init wrote it at
 * creation). A mutex whose type word was changed would send glibc down another locking
 * protocol (priority inheritance, recursion) over memory anyone with write access controls,
 * where glibc may assert; so the type is compared before the mutex is used. */
#ifdef __GLIBC__
static _Atomic int mutex_kind_expected = -2; /* -2: not known yet; -1: unknown, not compared */
static pthread_once_t mutex_kind_once = PTHREAD_ONCE_INIT;
static void mutex_kind_init(void) {
    pthread_mutex_t m;
    int k = -1;
    if (init_shard_lock(&m) == 0) {
        k = m.__data.__kind;
        pthread_mutex_destroy(&m);
    }
    atomic_store(&mutex_kind_expected, k);
}
static inline int mutex_kind_ok(const pthread_mutex_t *m) {
    int want = atomic_load_explicit(&mutex_kind_expected, memory_order_relaxed);
    if (__builtin_expect(want == -2, 0)) {
        pthread_once(&mutex_kind_once, mutex_kind_init);
        want = atomic_load(&mutex_kind_expected);
    }
    return want == -1 ||
           atomic_load_explicit((const _Atomic int *)&m->__data.__kind, memory_order_relaxed) == want;
}
#else
static inline int mutex_kind_ok(const pthread_mutex_t *m) { return 1; }
#endif

long tc__l2_lock_holder(const tc__l2_seg *s, uint32_t i) {
#ifdef __GLIBC__
    const pthread_mutex_t *m = &tc__l2_shard_at(s, i)->lock;
    return (long)atomic_load_explicit((const _Atomic int *)&m->__data.__owner, memory_order_relaxed);
#else
    return 0;
#endif
}

#if defined(__SANITIZE_THREAD__)
#define TC__L2_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TC__L2_TSAN 1
#endif
#endif

/* Waits for a busy mutex until wait_ns from now on CLOCK_MONOTONIC (a wall-clock step cannot
 * stretch the wait). Returns what the lock call returned (0, EOWNERDEAD, ETIMEDOUT, ...).
 * ThreadSanitizer intercepts neither clocklock nor an EOWNERDEAD from timedlock (it would
 * then see the unlock of a mutex it never saw locked), so its builds poll trylock, which it
 * does understand, every 100 us until the deadline. */
static int mutex_wait(pthread_mutex_t *m, uint64_t wait_ns) {
#ifdef TC__L2_TSAN
    uint64_t deadline = tc__now_ns() + wait_ns;
    for (;;) {
        int rc = pthread_mutex_trylock(m);
        if (rc != EBUSY) return rc;
        if (tc__now_ns() >= deadline) return ETIMEDOUT;
        struct timespec nap = {0, 100000};
        nanosleep(&nap, NULL);
    }
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_ns;
    ts.tv_sec += (time_t)(ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#endif
}

int tc__l2_shard_sane_locked(const tc__l2_seg *s, uint32_t i) {
    const tc__l2_shard *sh = tc__l2_shard_at(s, i);
    uint64_t used = sh->used, live = TC__L2_LD(sh->live_bytes), ent = TC__L2_LD(sh->entries);
    uint64_t se = tc__l2_share_entries(s, i), sb = tc__l2_share_bytes(s, i);
    return used <= s->heap_bytes && (used & 7u) == 0 && live <= used && live <= sb && ent <= se &&
           ent * TC__L2_BLK_HDR <= live && sh->max_entries == se && sh->max_bytes == sb &&
           sh->compacting == 0;
}

/* The lock alone: repairs only what it must (a holder that died: the shard is in an unknown
 * state and the mutex must be marked consistent). The checker uses it to see the shard as it
 * is; everyone else goes through tc__l2_lock(). The uncontended path is one type-word compare
 * and one trylock. */
static int lock_contended(const tc__l2_seg *s, uint32_t i, int rc, uint64_t wait_ns, int *how) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    if (rc == EBUSY) {
        *how |= TC__L2_LOCK_WAITED;
        rc = wait_ns ? mutex_wait(&sh->lock, wait_ns) : ETIMEDOUT;
        if (rc == ETIMEDOUT) return TC_ETIMEDOUT;
    }
    if (rc == EOWNERDEAD) {
        tc__l2_repair_locked(s, i);
        pthread_mutex_consistent(&sh->lock);
        *how |= TC__L2_LOCK_REPAIRED;
        return 0;
    }
    return rc == 0 ? 0 : TC_ECORRUPT;
}

static inline int lock_raw(const tc__l2_seg *s, uint32_t i, uint64_t wait_ns, int *how) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    *how = 0;
    if (__builtin_expect(!mutex_kind_ok(&sh->lock), 0)) return TC_ECORRUPT;
    int rc = pthread_mutex_trylock(&sh->lock);
    return __builtin_expect(rc == 0, 1) ? 0 : lock_contended(s, i, rc, wait_ns, how);
}

int tc__l2_lock(const tc__l2_seg *s, uint32_t i, uint64_t wait_ns, int *how) {
    int fl;
    int rc = lock_raw(s, i, wait_ns, &fl);
    if (__builtin_expect(rc == 0, 1)) {
        if (__builtin_expect(tc__l2_shard_at(s, i)->damaged != 0, 0)) {
            tc__l2_repair_locked(s, i);
            fl |= TC__L2_LOCK_REPAIRED;
        }
        TC__L2_CRASHPOINT(TC__L2_CP_LOCKED);
    }
    if (how) *how = fl;
    return rc;
}

void tc__l2_unlock(const tc__l2_seg *s, uint32_t i) {
    pthread_mutex_unlock(&tc__l2_shard_at(s, i)->lock);
}

/* ------------------------------------------------------------------------ */
/* Index                                                                    */
/* ------------------------------------------------------------------------ */

int64_t tc__l2_index_find_locked(const tc__l2_seg *s, uint32_t i, uint64_t hash, const void *key,
                                 size_t klen, const tc__l2_blk **out) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    const tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint64_t mask = s->index_slots - 1, tag = hash >> 32;
    uint64_t pos = tc__l2_hash_home(hash, mask);
    for (uint64_t n = 0; n < s->index_slots; n++, pos = (pos + 1) & mask) {
        uint64_t slot = idx[pos].key;
        if (slot == 0) return -1;
        if ((slot >> 32) != tag) continue;
        const tc__l2_blk *b = tc__l2_blk_at(s, i, tc__l2_slot_off(slot), sh->used);
        if (b == NULL || b->state != TC__L2_LIVE || b->kind != TC__L2_KIND_ENTRY ||
            (b->hash >> 32) != tag) {
            sh->damaged = 1;
            return -2;
        }
        if (b->hash == hash && b->klen == klen && memcmp(b + 1, key, klen) == 0) {
            if (out) *out = b;
            return (int64_t)pos;
        }
    }
    return -1;
}

int tc__l2_index_insert_locked(const tc__l2_seg *s, uint32_t i, uint64_t slot, uint64_t meta) {
    tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint64_t mask = s->index_slots - 1;
    uint64_t pos = tc__l2_slot_home(slot, mask);
    for (uint64_t n = 0; idx[pos].key != 0; n++, pos = (pos + 1) & mask) {
        if (n + 1 >= s->index_slots) {
            tc__l2_shard_at(s, i)->damaged = 1;
            return TC_ECORRUPT;
        }
    }
    idx[pos].meta = meta;
    TC__L2_ORDER();
    idx[pos].key = slot;
    return 0;
}

/* Backward-shift deletion (linear probing without tombstones): later slots of the probe run
 * move back into the hole when their home allows, so lookups stay O(run length). */
void tc__l2_index_delete_locked(const tc__l2_seg *s, uint32_t i, uint64_t pos) {
    tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint64_t mask = s->index_slots - 1;
    uint64_t hole = pos;
    for (uint64_t j = (hole + 1) & mask, n = 0; n < s->index_slots; j = (j + 1) & mask, n++) {
        uint64_t slot = idx[j].key;
        if (slot == 0) break;
        uint64_t home = tc__l2_slot_home(slot, mask);
        /* slot may fill the hole unless its home lies cyclically in (hole, j]. */
        int in_between = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!in_between) {
            idx[hole] = idx[j];
            TC__L2_CRASHPOINT(TC__L2_CP_INDEX_SHIFT);
            hole = j;
        }
    }
    idx[hole].key = 0;
}

/* Finds the slot pointing at off (a block with this hash) and points it at noff. */
static int index_relocate_locked(const tc__l2_seg *s, uint32_t i, uint64_t hash, uint64_t off,
                                 uint64_t noff) {
    tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint64_t mask = s->index_slots - 1;
    uint64_t want = tc__l2_slot_make(hash, off);
    uint64_t pos = tc__l2_hash_home(hash, mask);
    for (uint64_t n = 0; n < s->index_slots; n++, pos = (pos + 1) & mask) {
        if (idx[pos].key == 0) break;
        if (idx[pos].key == want) {
            idx[pos].key = tc__l2_slot_make(hash, noff);
            return 0;
        }
    }
    return TC_ECORRUPT;
}

/* ------------------------------------------------------------------------ */
/* Compaction                                                               */
/* ------------------------------------------------------------------------ */

static void set_intent(tc__l2_shard *sh, uint64_t src, uint64_t dst, uint64_t len) {
    uint64_t nxt = (sh->icur + 1) & 1u;
    sh->intent[nxt].src = src;
    sh->intent[nxt].dst = dst;
    sh->intent[nxt].len = len;
    TC__L2_ORDER();
    sh->icur = nxt;
    TC__L2_ORDER();
}

int tc__l2_compact_locked(const tc__l2_seg *s, uint32_t i) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    uint8_t *heap = tc__l2_heap_of(s, i);
    uint64_t used = sh->used, r = 0;
    /* Skip the LIVE prefix: it stays where it is. */
    while (r < used) {
        const tc__l2_blk *b = tc__l2_blk_at(s, i, r, used);
        if (b == NULL) goto corrupt;
        if (b->state == TC__L2_DEAD) break;
        r += (uint64_t)b->size8 * 8u;
    }
    uint64_t w = r;
    set_intent(sh, r, r, 0);
    sh->compacting = 1;
    TC__L2_ORDER();
    while (r < used) {
        const tc__l2_blk *b = tc__l2_blk_at(s, i, r, used);
        if (b == NULL) goto corrupt;
        uint64_t sz = (uint64_t)b->size8 * 8u;
        if (b->state == TC__L2_LIVE) {
            uint64_t hash = b->hash;
            set_intent(sh, r, w, sz);
            TC__L2_CRASHPOINT(TC__L2_CP_COMPACT_INTENT);
            if (atomic_load_explicit(&tc__l2_crash_at, memory_order_relaxed) ==
                TC__L2_CP_COMPACT_HALF) {
                memmove(heap + w, heap + r, sz / 2);
                tc__l2_crash();
            }
            memmove(heap + w, heap + r, sz);
            TC__L2_ORDER();
            TC__L2_CRASHPOINT(TC__L2_CP_COMPACT_MOVED);
            if (index_relocate_locked(s, i, hash, r, w) != 0) goto corrupt;
            w += sz;
        }
        r += sz;
    }
    sh->used = w;
    TC__L2_ORDER();
    sh->compacting = 0;
    TC__L2_INC(sh->compactions, 1);
    return 0;
corrupt:
    sh->damaged = 1;
    return TC_ECORRUPT;
}

/* ------------------------------------------------------------------------ */
/* Repair                                                                   */
/* ------------------------------------------------------------------------ */

/* Settles an interrupted compaction. intent[icur] names the last block move started: if it
 * may not have finished, the copy at dst is kept only when it verifies, and everything from
 * the end of what is kept up to the end of the source becomes one hole (it holds stale or
 * half-overwritten copies). Blocks after src+len were never touched. When src+len is past
 * `used` the compaction had already finished and set `used`; nothing is to be done. */
static void settle_compaction(const tc__l2_seg *s, uint32_t i, uint64_t used) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    uint8_t *heap = tc__l2_heap_of(s, i);
    tc__l2_intent it = sh->intent[sh->icur & 1u];
    /* The intent is writable by anyone: every comparison is written so that nothing wraps, and
     * the hole written below lies within [dst, src + len), inside [0, used). */
    if (it.len == 0 || ((it.src | it.dst | it.len) & 7u) != 0 || it.dst >= it.src ||
        it.src - it.dst < TC__L2_BLK_HDR || it.src > used || it.len > used - it.src)
        return;
    uint64_t start = it.dst;
    const tc__l2_blk *b = tc__l2_blk_at(s, i, it.dst, it.dst + it.len);
    if (b != NULL && (uint64_t)b->size8 * 8u == it.len &&
        (b->state == TC__L2_DEAD || tc__l2_blk_verify(b)))
        start = it.dst + it.len;
    write_hole(heap, start, it.src + it.len - start);
}

void tc__l2_repair_locked(const tc__l2_seg *s, uint32_t i) {
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint32_t now32 = (uint32_t)tc__now_ms();
    uint64_t share_e = tc__l2_share_entries(s, i), share_b = tc__l2_share_bytes(s, i);
    uint64_t used = sh->used;
    if (used > s->heap_bytes) used = s->heap_bytes;
    used &= ~(uint64_t)7u;
    if (sh->compacting) {
        settle_compaction(s, i, used);
        TC__L2_ORDER();
        sh->compacting = 0;
    }
    sh->used = used;
    sh->max_entries = share_e; /* the limits as the checksummed header sets them */
    sh->max_bytes = share_b;
    memset(idx, 0, s->index_slots * sizeof *idx);
    uint64_t off = 0, entries = 0, live = 0, maxseq = sh->seq;
    while (off < used) {
        tc__l2_blk *b = (tc__l2_blk *)tc__l2_blk_at(s, i, off, used);
        if (b == NULL) { /* cannot find the next block: drop the rest of the heap */
            used = off;
            sh->used = used;
            break;
        }
        uint64_t sz = (uint64_t)b->size8 * 8u;
        if (b->seq > maxseq) maxseq = b->seq;
        if (b->state == TC__L2_LIVE) {
            if (!tc__l2_blk_verify(b)) {
                b->state = TC__L2_DEAD;
            } else {
                const tc__l2_blk *o = NULL;
                int64_t pos = tc__l2_index_find_locked(s, i, b->hash, b + 1, b->klen, &o);
                uint64_t osz = pos >= 0 ? (uint64_t)o->size8 * 8u : 0;
                if (pos >= 0 && o->seq > b->seq) { /* duplicate key: the newer block wins */
                    b->state = TC__L2_DEAD;
                } else if (live - osz + sz > share_b || (pos < 0 && entries + 1 > share_e)) {
                    /* More than the shard's share of the limits: only a writer that ignored
                     * them can have put it there. Dropping it bounds the index's load. */
                    b->state = TC__L2_DEAD;
                } else if (pos >= 0) {
                    ((tc__l2_blk *)o)->state = TC__L2_DEAD;
                    idx[pos].key = tc__l2_slot_make(b->hash, off);
                    idx[pos].meta = tc__l2_meta(now32, b->expire_ms);
                    live += sz - osz;
                } else {
                    /* cannot fail: at most share_e <= index_slots / 2 slots are used */
                    (void)tc__l2_index_insert_locked(s, i, tc__l2_slot_make(b->hash, off),
                                                     tc__l2_meta(now32, b->expire_ms));
                    entries++;
                    live += sz;
                }
            }
        }
        off += sz;
    }
    sh->seq = maxseq;
    sh->cursor = 0;
    TC__L2_ST(sh->entries, entries);
    TC__L2_ST(sh->live_bytes, live);
    sh->damaged = 0;
    TC__L2_INC(sh->repairs, 1);
}

/* ------------------------------------------------------------------------ */
/* Checker                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct report {
    char *buf;
    size_t cap, len;
    int problems;
} report;

static void rep_add(report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rep_add(report *r, const char *fmt, ...) {
    r->problems++;
    if (r->buf == NULL || r->len + 1 >= r->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(r->buf + r->len, r->cap - r->len, fmt, ap);
    va_end(ap);
    if (w > 0) r->len = r->len + (size_t)w < r->cap ? r->len + (size_t)w : r->cap - 1;
}

int tc__l2_check_shard_locked(const tc__l2_seg *s, uint32_t i, char *rb, size_t rl) {
    report r = {rb, rl, rb ? strlen(rb) : 0, 0};
    tc__l2_shard *sh = tc__l2_shard_at(s, i);
    const tc__l2_slot *idx = tc__l2_index_of(s, i);
    uint64_t used = sh->used, mask = s->index_slots - 1;
    uint64_t share_e = tc__l2_share_entries(s, i), share_b = tc__l2_share_bytes(s, i);
    if (sh->compacting) rep_add(&r, "shard %u: compaction left unfinished\n", i);
    if (sh->damaged) rep_add(&r, "shard %u: flagged damaged by an operation\n", i);
    /* The limits stored in the shard are not used, but a different value means someone wrote
     * where only repair writes. */
    if (sh->max_entries != share_e)
        rep_add(&r, "shard %u: entry limit %llu in the shard header, the segment header gives "
                    "%llu (tampered or damaged)\n",
                i, (unsigned long long)sh->max_entries, (unsigned long long)share_e);
    if (sh->max_bytes != share_b)
        rep_add(&r, "shard %u: byte limit %llu in the shard header, the segment header gives "
                    "%llu (tampered or damaged)\n",
                i, (unsigned long long)sh->max_bytes, (unsigned long long)share_b);
    if (used > s->heap_bytes || (used & 7u)) {
        rep_add(&r, "shard %u: heap cursor %llu outside the heap (%llu bytes)\n", i,
                (unsigned long long)used, (unsigned long long)s->heap_bytes);
        return r.problems;
    }
    /* Walk the heap: every block parses, the walk ends exactly at used. */
    size_t nbits = (size_t)(s->heap_bytes / 8u);
    uint8_t *start = calloc(nbits / 8u + 1, 1), *seen = calloc(nbits / 8u + 1, 1);
    if (start == NULL || seen == NULL) {
        free(start);
        free(seen);
        rep_add(&r, "shard %u: out of memory while checking\n", i);
        return r.problems;
    }
    uint64_t off = 0, nlive = 0, live_bytes = 0;
    while (off < used) {
        const tc__l2_blk *b = tc__l2_blk_at(s, i, off, used);
        if (b == NULL) {
            rep_add(&r, "shard %u: block at heap offset %llu is unreadable (bad header, size or "
                        "checksum); %llu bytes after it cannot be walked\n",
                    i, (unsigned long long)off, (unsigned long long)(used - off));
            break;
        }
        if (b->state == TC__L2_LIVE) {
            start[off / 64u] |= (uint8_t)(1u << ((off / 8u) % 8u));
            nlive++;
            live_bytes += (uint64_t)b->size8 * 8u;
            if (!tc__l2_blk_verify(b))
                rep_add(&r, "shard %u: entry at heap offset %llu fails its key hash or value "
                            "checksum\n",
                        i, (unsigned long long)off);
        }
        off += (uint64_t)b->size8 * 8u;
    }
    /* Walk the index: every slot points at the start of a LIVE block carrying its tag,
     * reachable from its home slot, found by its key, and no block twice. */
    uint64_t nslots = 0, empty = 0;
    while (empty < s->index_slots && idx[empty].key != 0) empty++;
    if (empty == s->index_slots) {
        rep_add(&r, "shard %u: index has no empty slot (at most half of it is ever used)\n", i);
        empty = 0;
    }
    /* The walk starts after an empty slot, so that run_start is where the probe run holding
     * pos begins: a slot is reachable iff its home lies in [run_start, pos] (cyclically). */
    uint64_t run_start = (empty + 1) & mask;
    for (uint64_t k = 1; k <= s->index_slots; k++) {
        uint64_t pos = (empty + k) & mask;
        uint64_t slot = idx[pos].key;
        if (slot == 0) {
            run_start = (pos + 1) & mask;
            continue;
        }
        nslots++;
        uint64_t boff = tc__l2_slot_off(slot);
        if (boff >= s->heap_bytes || !(start[boff / 64u] & (1u << ((boff / 8u) % 8u)))) {
            rep_add(&r, "shard %u: index slot %llu points at heap offset %llu, which is not a "
                        "live entry\n",
                    i, (unsigned long long)pos, (unsigned long long)boff);
            continue;
        }
        if (seen[boff / 64u] & (1u << ((boff / 8u) % 8u))) {
            rep_add(&r, "shard %u: heap offset %llu is referenced by two index slots\n", i,
                    (unsigned long long)boff);
            continue;
        }
        seen[boff / 64u] |= (uint8_t)(1u << ((boff / 8u) % 8u));
        const tc__l2_blk *b = tc__l2_blk_at(s, i, boff, used);
        if ((b->hash >> 32) != (slot >> 32)) {
            rep_add(&r, "shard %u: index slot %llu has a tag that does not match its entry\n", i,
                    (unsigned long long)pos);
            continue;
        }
        if ((uint32_t)idx[pos].meta != tc__l2_exp32(b->expire_ms))
            rep_add(&r, "shard %u: index slot %llu has an expiry that is not its entry's\n", i,
                    (unsigned long long)pos);
        uint64_t home = tc__l2_slot_home(slot, mask);
        if (((home - run_start) & mask) > ((pos - run_start) & mask))
            rep_add(&r, "shard %u: index slot %llu is unreachable from its home slot %llu\n", i,
                    (unsigned long long)pos, (unsigned long long)home);
        const tc__l2_blk *f = NULL;
        uint64_t keep_damaged = sh->damaged;
        int64_t fp = tc__l2_index_find_locked(s, i, b->hash, b + 1, b->klen, &f);
        sh->damaged = keep_damaged;
        if (fp >= 0 && (uint64_t)fp != pos)
            rep_add(&r, "shard %u: key of index slot %llu is also at slot %lld (duplicate key)\n",
                    i, (unsigned long long)pos, (long long)fp);
    }
    if (nslots != nlive)
        rep_add(&r, "shard %u: %llu live entries in the heap but %llu index slots\n", i,
                (unsigned long long)nlive, (unsigned long long)nslots);
    if (TC__L2_LD(sh->entries) != nlive)
        rep_add(&r, "shard %u: entry counter %llu, heap holds %llu live entries\n", i,
                (unsigned long long)TC__L2_LD(sh->entries), (unsigned long long)nlive);
    if (TC__L2_LD(sh->live_bytes) != live_bytes)
        rep_add(&r, "shard %u: byte counter %llu, live entries take %llu bytes\n", i,
                (unsigned long long)TC__L2_LD(sh->live_bytes), (unsigned long long)live_bytes);
    if (nlive > share_e)
        rep_add(&r, "shard %u: %llu entries exceed the shard's limit %llu\n", i,
                (unsigned long long)nlive, (unsigned long long)share_e);
    if (live_bytes > share_b)
        rep_add(&r, "shard %u: %llu bytes exceed the shard's limit %llu\n", i,
                (unsigned long long)live_bytes, (unsigned long long)share_b);
    free(start);
    free(seen);
    return r.problems;
}

/* ------------------------------------------------------------------------ */
/* Statistics shared by the tier and the admin API                          */
/* ------------------------------------------------------------------------ */


int tc__l2_attached(const tc__l2_seg *s);
int tc__l2_attached(const tc__l2_seg *s) {
    tc__l2_hdr *h = (tc__l2_hdr *)s->base;
    int n = 0;
    for (int i = 0; i < TC__L2_MAX_PROCS; i++) {
        int32_t pid = atomic_load_explicit(&h->procs[i], memory_order_relaxed);
        if (pid != 0 && pid_alive(pid)) n++;
    }
    return n;
}

void tc__l2_fill_stats(const tc__l2_seg *s, tc_tier_stats *out);
void tc__l2_fill_stats(const tc__l2_seg *s, tc_tier_stats *out) {
    out->tier = TC_TIER_L2;
    snprintf(out->type, sizeof out->type, "shared");
    out->available = 1;
    out->host_wide = 1;
    uint64_t compactions = 0, repairs = 0;
    for (uint32_t i = 0; i < s->nshards; i++) {
        tc__l2_shard *sh = tc__l2_shard_at(s, i);
        out->hits += TC__L2_LD(sh->hits);
        out->misses += TC__L2_LD(sh->misses);
        out->sets += TC__L2_LD(sh->sets);
        out->deletes += TC__L2_LD(sh->deletes);
        out->evictions += TC__L2_LD(sh->evictions);
        out->expirations += TC__L2_LD(sh->expirations);
        out->entries += TC__L2_LD(sh->entries);
        out->bytes += TC__L2_LD(sh->live_bytes);
        compactions += TC__L2_LD(sh->compactions);
        repairs += TC__L2_LD(sh->repairs);
    }
    out->max_entries = s->g.max_entries;
    out->max_bytes = s->g.max_bytes;
    tc__stat_extra(out, "segment", "%s", s->name);
    tc__stat_extra(out, "path", "%s", s->path);
    tc__stat_extra(out, "segment_bytes", "%zu", s->size);
    tc__stat_extra(out, "policy", "%s", policy_str((uint32_t)s->g.policy));
    tc__stat_extra(out, "shards", "%u", s->nshards);
    tc__stat_extra(out, "processes", "%d", tc__l2_attached(s));
    tc__stat_extra(out, "layout_version", "%u", TC__L2_LAYOUT_VERSION);
    tc__stat_extra(out, "compactions", "%llu", (unsigned long long)compactions);
    tc__stat_extra(out, "repairs", "%llu", (unsigned long long)repairs);
}

/* ------------------------------------------------------------------------ */
/* Public admin API                                                         */
/* ------------------------------------------------------------------------ */

TC_EXPORT int tc_shared_list(char **out, size_t *count) {
    if (out == NULL) return TC_EINVAL;
    *out = NULL;
    if (count) *count = 0;
    tc__l2_sweep_tmp();
    DIR *d = opendir(TC__L2_DIR);
    size_t cap = 256, len = 0, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL) {
        if (d) closedir(d);
        return TC_ENOMEM;
    }
    buf[0] = '\0';
    if (d != NULL) {
        struct dirent *e;
        size_t plen = strlen(TC__L2_FILE_PREFIX);
        while ((e = readdir(d)) != NULL) {
            if (strncmp(e->d_name, TC__L2_FILE_PREFIX, plen) != 0) continue;
            const char *name = e->d_name + plen;
            if (tc__l2_name_check(name, NULL, 0) != 0) continue;
            size_t nl = strlen(name);
            if (len + nl + 2 > cap) {
                while (len + nl + 2 > cap) cap *= 2;
                char *nb = realloc(buf, cap);
                if (nb == NULL) {
                    free(buf);
                    closedir(d);
                    return TC_ENOMEM;
                }
                buf = nb;
            }
            memcpy(buf + len, name, nl);
            len += nl;
            buf[len++] = '\n';
            buf[len] = '\0';
            n++;
        }
        closedir(d);
    }
    *out = buf;
    if (count) *count = n;
    return 0;
}

TC_EXPORT int tc_shared_stats(const char *name, tc_tier_stats *out, char *errbuf, size_t errlen) {
    if (out == NULL || out->size < sizeof(size_t))
        return tc__errf(errbuf, errlen, TC_EINVAL, "out is NULL or its size is not set (TC_TIER_STATS_INIT)");
    tc_tier_stats full;
    memset(&full, 0, sizeof full);
    tc__l2_seg seg;
    int rc = tc__l2_seg_open(name, NULL, NULL, 0, &seg, errbuf, errlen);
    if (rc) return rc;
    tc__l2_fill_stats(&seg, &full);
    tc__l2_seg_close(&seg);
    full.size = sizeof full;
    tc__put_sized(out, out->size, &full, sizeof full);
    return 0;
}

/* Checks (repair 0) or rebuilds (repair 1) every shard of segment name, one lock at a time.
 * Locks are waited for TC__L2_ADMIN_WAIT_MS in all (each at least TC__L2_LOCK_MIN_WAIT_NS); a shard whose lock stays held is reported
 * (with the holder's thread id) and skipped. Work: O(heap_bytes + index_slots) per shard. Returns 0, TC_ECORRUPT (problems found and, for a check, left in
 * place), TC_ETIMEDOUT (some shard could not be locked, nothing else found), TC_EIO (the file
 * changed size), or the errors of opening. */
static int check_or_repair(const char *name, int repair, char *report_buf, size_t len) {
    if (report_buf != NULL && len > 0) report_buf[0] = '\0';
    tc__l2_seg seg;
    int rc = tc__l2_seg_open(name, NULL, NULL, 0, &seg, report_buf, len);
    if (rc) return rc;
    report r = {report_buf, len, 0, 0};
    int problems = 0, locked_out = 0, repaired = 0;
    /* One budget of lock waiting for the whole call (each lock still gets the minimum wait),
     * so that a segment whose every lock is held costs about TC__L2_ADMIN_WAIT_MS plus
     * nshards x TC__L2_LOCK_MIN_WAIT_NS, not nshards times the budget. */
    unsigned budget_ms = atomic_load(&tc__l2_admin_wait_ms);
    uint64_t deadline = tc__now_ns() + budget_ms * 1000000ull;
    for (uint32_t i = 0; i < seg.nshards; i++) {
        r.len = report_buf ? strlen(report_buf) : 0;
        if (tc__l2_seg_size_ok(&seg, NULL, 0) != 0) {
            tc__l2_seg_size_ok(&seg, report_buf + r.len, r.cap > r.len ? r.cap - r.len : 0);
            tc__l2_seg_close(&seg);
            return TC_EIO;
        }
        int how = 0;
        uint64_t now = tc__now_ns();
        uint64_t left = deadline > now ? deadline - now : 0;
        rc = lock_raw(&seg, i, left > TC__L2_LOCK_MIN_WAIT_NS ? left : TC__L2_LOCK_MIN_WAIT_NS, &how);
        if (rc == TC_ETIMEDOUT) {
            rep_add(&r, "shard %u: lock held for more than %u ms by thread %ld (a stopped or hung "
                        "process?); not %s\n",
                    i, budget_ms, tc__l2_lock_holder(&seg, i),
                    repair ? "repaired" : "checked");
            locked_out++;
            continue;
        }
        if (rc != 0) {
            rep_add(&r, "shard %u: lock is damaged or unrecoverable\n", i);
            problems++;
            continue;
        }
        if (how & TC__L2_LOCK_REPAIRED) repaired++;
        int found = tc__l2_check_shard_locked(&seg, i, report_buf, len);
        if (repair && found) {
            tc__l2_repair_locked(&seg, i);
            repaired++;
            if (tc__l2_check_shard_locked(&seg, i, NULL, 0) != 0) problems++;
        } else {
            problems += found;
        }
        tc__l2_unlock(&seg, i);
    }
    r.len = report_buf ? strlen(report_buf) : 0;
    if (problems == 0 && locked_out == 0 && report_buf != NULL && len > 0) {
        uint64_t entries = 0, bytes = 0;
        for (uint32_t i = 0; i < seg.nshards; i++) {
            entries += TC__L2_LD(tc__l2_shard_at(&seg, i)->entries);
            bytes += TC__L2_LD(tc__l2_shard_at(&seg, i)->live_bytes);
        }
        char rebuilt[48] = "";
        if (repaired)
            snprintf(rebuilt, sizeof rebuilt, "; %d shard%s rebuilt", repaired, repaired == 1 ? "" : "s");
        rep_add(&r, "segment '%s': consistent (%u shards, %llu entries, %llu bytes, layout "
                    "version %u%s)\n",
                seg.name, seg.nshards, (unsigned long long)entries, (unsigned long long)bytes,
                TC__L2_LAYOUT_VERSION, rebuilt);
    }
    tc__l2_seg_close(&seg);
    return problems ? TC_ECORRUPT : locked_out ? TC_ETIMEDOUT : 0;
}

TC_EXPORT int tc_shared_check(const char *name, char *report_buf, size_t len) {
    return check_or_repair(name, 0, report_buf, len);
}

TC_EXPORT int tc_shared_repair(const char *name, char *report_buf, size_t len) {
    return check_or_repair(name, 1, report_buf, len);
}

TC_EXPORT int tc_shared_destroy(const char *name) {
    if (tc__l2_name_check(name, NULL, 0) != 0) return TC_EINVAL;
    char path[TC__L2_NAME_MAX + 64];
    path_of(path, sizeof path, name);
    /* the host's coherence segment of the same name goes with it (a cache without L2 has only
     * that one) */
    int coh = tc__coh_destroy(name);
    if (unlink(path) == 0) return 0;
    if (errno == ENOENT) return coh == 0 ? 0 : TC_ENOENT;
    if (errno == EACCES || errno == EPERM) return TC_EPERM;
    return TC_EIO;
}
