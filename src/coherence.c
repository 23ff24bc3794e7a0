/*
 * coherence.c -- the host's coherence table (see coherence.h for the layout and the contract,
 * docs/COHERENCE.md for the design).
 *
 * The table is a fixed-size mapping: a header written once by its creator and checksummed, a
 * line of hot words (epoch, pgen), the listener lease and host-wide counters, the ring of the
 * last prefix clears under a robust process-shared mutex, and the stripe words. A shared table
 * is the file /dev/shm/tiercache-coh.<name>, created atomically (a temporary file filled in,
 * then link()ed into place) and trusted only when it is this user's (or the configured group's)
 * with permissions within CACHE_SHARED_MODE -- the L2 segment's rules.
 *
 * Nothing here takes a lock except the prefix ring, and its lock is only taken by a prefix
 * clear and by the slow path of an entry stamped before a prefix clear, each for the time it
 * takes to copy at most TC__COH_RING records, and with a deadline (CACHE_SHARED_LOCK_TIMEOUT):
 * a process stopped while holding it costs others spurious misses, never a wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "coherence.h"
#include "shm.h"
#include "util.h"

#define TC__COH_MAGIC 0x54434f4845524e31ull /* "TCOHERN1" */
#define TC__COH_VERSION 2u
#define TC__COH_DIR "/dev/shm"
#define TC__COH_FILE_PREFIX "tiercache-coh."
#define TC__COH_LOCK_WAIT_MS 100

_Atomic unsigned tc__coh_disable;

typedef struct tc__coh_rec {
    _Atomic uint64_t gen; /* the pgen this record made current; 0: never written */
    uint32_t len;
    uint8_t prefix[TC__COH_PREFIX_MAX];
    uint32_t pad;
} tc__coh_rec;

struct tc__coh_hdr {
    /* written once by the creator, covered by hcsum */
    uint64_t magic;
    uint32_t version;
    uint32_t hdr_bytes;
    uint64_t total_bytes;
    uint64_t off_words;
    uint32_t nstripes;
    uint32_t ring;
    uint64_t nonce;
    uint64_t created_unix_ms;
    char name[208];
    uint64_t hcsum;
    /* read by every hit */
    _Alignas(64) _Atomic uint64_t epoch;
    _Atomic uint64_t pgen;
    /* the listener's lease: | pid (32) | ticket (32) |, and its deadline */
    _Alignas(64) _Atomic uint64_t lease_owner;
    _Atomic uint64_t lease_deadline_ms;
    /* host-wide counters */
    _Alignas(64) _Atomic uint64_t keys_received, messages, epoch_moves, gaps, takeovers;
    _Atomic uint64_t lag_last_us, lag_max_us;
    /* the prefix ring */
    _Alignas(64) pthread_mutex_t ring_lock;
    tc__coh_rec recs[TC__COH_RING];
};

_Static_assert(sizeof(tc__coh_rec) == 256, "ring records are 256 bytes");

static uint64_t hdr_csum(const struct tc__coh_hdr *h) { return XXH3_64bits(h, offsetof(struct tc__coh_hdr, hcsum)); }

static size_t table_bytes(void) {
    size_t off = (sizeof(struct tc__coh_hdr) + 4095) / 4096 * 4096;
    return off + (size_t)TC__COH_STRIPES * 2 * sizeof(uint64_t);
}

static uint64_t random64(void) {
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x) x = tc__now_ns() ^ ((uint64_t)getpid() << 32);
    return x;
}

/* Fills a new table's header; words are zero (fresh pages). */
static int init_table(struct tc__coh_hdr *h, const char *name) {
    memset(h, 0, sizeof *h);
    h->magic = TC__COH_MAGIC;
    h->version = TC__COH_VERSION;
    h->hdr_bytes = sizeof *h;
    h->total_bytes = table_bytes();
    h->off_words = (sizeof(struct tc__coh_hdr) + 4095) / 4096 * 4096;
    h->nstripes = TC__COH_STRIPES;
    h->ring = TC__COH_RING;
    h->nonce = random64();
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    h->created_unix_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    snprintf(h->name, sizeof h->name, "%s", name);
    /* the counters start from the nonce: a table recreated under the same name never meets
     * stamps of the old one (entries do not outlive their process, but a recreated table
     * with counters from 0 would be the only way for a stale stamp to come back) */
    atomic_store(&h->epoch, h->nonce & (TC__COH_COUNTER_MASK >> 1));
    atomic_store(&h->pgen, (h->nonce >> 16) & 0xffffffffull);
    h->hcsum = hdr_csum(h);
    pthread_mutexattr_t a;
    pthread_mutexattr_init(&a);
    pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    int rc = pthread_mutex_init(&h->ring_lock, &a);
    pthread_mutexattr_destroy(&a);
    return rc;
}

/* This handle's count of its own moves (coherence.h), in private memory: zero pages until a
 * stripe is written. */
static size_t own_bytes(void) { return 2 * (size_t)TC__COH_STRIPES * sizeof(uint32_t); }

/* A handle with its own[] counts; NULL when out of memory. */
static tc__coh *handle_new(void) {
    tc__coh *c = calloc(1, sizeof *c);
    if (c == NULL) return NULL;
    c->own = tc__big_alloc(own_bytes());
    if (c->own == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void handle_free(tc__coh *c) {
    tc__big_free((void *)c->own, own_bytes());
    free(c);
}

static void attach(tc__coh *c, void *base, size_t bytes) {
    c->hdr = base;
    c->bytes = bytes;
    c->epoch = &c->hdr->epoch;
    c->pgen = &c->hdr->pgen;
    c->words = (_Atomic uint64_t *)((char *)base + c->hdr->off_words);
}

int tc__coh_open_private(tc__coh **out) {
    *out = NULL;
    tc__coh *c = handle_new();
    if (c == NULL) return TC_ENOMEM;
    size_t bytes = table_bytes();
    void *base = tc__big_alloc(bytes);
    if (base == NULL) {
        handle_free(c);
        return TC_ENOMEM;
    }
    if (init_table(base, "(private)") != 0) {
        tc__big_free(base, bytes);
        handle_free(c);
        return TC_ENOMEM;
    }
    c->fd = -1;
    attach(c, base, bytes);
    *out = c;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The shared table                                                         */
/* ------------------------------------------------------------------------ */

static void coh_path(char *buf, size_t n, const char *name) {
    snprintf(buf, n, "%s/%s%s", TC__COH_DIR, TC__COH_FILE_PREFIX, name);
}

/* The checks of a mapped table; 0 or TC_ECORRUPT / TC_EVERSION with a message. */
static int validate(const struct tc__coh_hdr *h, size_t fsize, const char *path, char *errbuf, size_t errlen) {
    if (fsize < sizeof *h || h->magic != TC__COH_MAGIC)
        return tc__errf(errbuf, errlen, TC_ECORRUPT, "%s is not a tiercache coherence segment; remove it", path);
    if (h->version != TC__COH_VERSION || h->hdr_bytes != sizeof *h || h->nstripes != TC__COH_STRIPES ||
        h->ring != TC__COH_RING)
        return tc__errf(errbuf, errlen, TC_EVERSION,
                        "%s has coherence layout %u (%u stripes) but this library uses %u (%u); stop the processes "
                        "using it and remove it (tiercache shared destroy)",
                        path, h->version, h->nstripes, TC__COH_VERSION, TC__COH_STRIPES);
    if (hdr_csum(h) != h->hcsum || h->total_bytes != fsize || h->off_words != (sizeof *h + 4095) / 4096 * 4096)
        return tc__errf(errbuf, errlen, TC_ECORRUPT, "%s is damaged (header checksum or size); remove it", path);
    return 0;
}

/* Creates the file atomically: a temporary file of our own, filled in, then linked into
 * place. 0 created, 1 someone else created it first, or an error. */
static int create_file(const char *path, const char *name, const tc__shm_trust *trust, char *errbuf,
                       size_t errlen) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/.tiercache-coh-tmp.%016llx", TC__COH_DIR, (unsigned long long)random64());
    int fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return tc__errf(errbuf, errlen, errno == EACCES ? TC_EPERM : TC_EIO, "cannot create %s: %s", tmp, strerror(errno));
    /* its group and mode before anything is in it, as for the L2 segment */
    if ((trust->has_group && fchown(fd, (uid_t)-1, trust->gid) != 0) || fchmod(fd, trust->mode) != 0) {
        int e = errno;
        unlink(tmp);
        close(fd);
        return tc__errf(errbuf, errlen, TC_EPERM, "cannot give %s group %s and mode %04o (CACHE_SHARED_GROUP, "
                        "CACHE_SHARED_MODE): %s", tmp, trust->has_group ? trust->group : "(own)", trust->mode,
                        strerror(e));
    }
    size_t bytes = table_bytes();
    int rc = posix_fallocate(fd, 0, (off_t)bytes);
    void *base = rc == 0 ? mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    if (base == MAP_FAILED) {
        int e = rc ? rc : errno;
        unlink(tmp);
        close(fd);
        return tc__errf(errbuf, errlen, e == ENOSPC ? TC_ENOMEM : TC_EIO,
                        "cannot reserve %zu bytes in %s for the coherence segment of '%s': %s", bytes, TC__COH_DIR,
                        name, strerror(e));
    }
    rc = init_table(base, name);
    munmap(base, bytes);
    close(fd);
    if (rc != 0) {
        unlink(tmp);
        return tc__errf(errbuf, errlen, TC_EIO, "cannot initialise the coherence segment of '%s': %s", name,
                        strerror(rc));
    }
    if (link(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        if (e == EEXIST) return 1;
        return tc__errf(errbuf, errlen, e == EACCES ? TC_EPERM : TC_EIO, "cannot create %s: %s", path, strerror(e));
    }
    unlink(tmp);
    return 0;
}

int tc__coh_open_shared(const tc__opts *opt, tc__coh **out, char *errbuf, size_t errlen) {
    *out = NULL;
    char path[512];
    coh_path(path, sizeof path, opt->shared_name);
    tc__shm_trust trust;
    int trc = tc__shm_trust_of(opt, &trust, errbuf, errlen);
    if (trc != 0) return trc;
    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0 && errno == ENOENT) {
            int rc = create_file(path, opt->shared_name, &trust, errbuf, errlen);
            if (rc < 0) return rc;
            continue; /* created by us or another: open it */
        }
        if (fd < 0)
            return tc__errf(errbuf, errlen, errno == EACCES ? TC_EPERM : TC_EIO, "cannot open %s: %s", path,
                            strerror(errno));
        struct stat st;
        if (fstat(fd, &st) != 0) {
            close(fd);
            return tc__errf(errbuf, errlen, TC_EIO, "cannot stat %s: %s", path, strerror(errno));
        }
        int rc = tc__shm_trust_check(&st, &trust, opt->shared_name, path, errbuf, errlen);
        if (rc != 0) {
            close(fd);
            return rc;
        }
        size_t bytes = (size_t)st.st_size;
        if (bytes < sizeof(struct tc__coh_hdr)) {
            close(fd);
            return tc__errf(errbuf, errlen, TC_ECORRUPT, "%s is truncated (%zu bytes); remove it", path, bytes);
        }
        void *base = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (base == MAP_FAILED) {
            int e = errno;
            close(fd);
            return tc__errf(errbuf, errlen, TC_ENOMEM, "cannot map %s: %s", path, strerror(e));
        }
        rc = validate(base, bytes, path, errbuf, errlen);
        if (rc != 0) {
            munmap(base, bytes);
            close(fd);
            return rc;
        }
        tc__coh *c = handle_new();
        if (c == NULL) {
            munmap(base, bytes);
            close(fd);
            return tc__errf(errbuf, errlen, TC_ENOMEM, "out of memory");
        }
        c->shared = 1;
        c->fd = fd;
        snprintf(c->name, sizeof c->name, "%s", opt->shared_name);
        attach(c, base, bytes);
        *out = c;
        return 0;
    }
    return tc__errf(errbuf, errlen, TC_EIO, "%s keeps disappearing while it is opened", path);
}

void tc__coh_close(tc__coh *c) {
    if (c == NULL) return;
    if (c->shared) {
        munmap(c->hdr, c->bytes);
        close(c->fd);
    } else {
        tc__big_free(c->hdr, c->bytes);
    }
    handle_free(c);
}

int tc__coh_destroy(const char *name) {
    char path[512];
    coh_path(path, sizeof path, name);
    if (unlink(path) == 0) return 0;
    return errno == ENOENT ? TC_ENOENT : errno == EACCES || errno == EPERM ? TC_EPERM : TC_EIO;
}

/* ------------------------------------------------------------------------ */
/* Writes, the epoch, prefixes                                              */
/* ------------------------------------------------------------------------ */

/* Moves word which (0: w, 1: i) of the key's stripe; the stamp after the move. A move of w is
 * this handle's own: own_pre moves before it and own_post after (coherence.h). */
static tc__stamp move(tc__coh *c, uint64_t hash, int which) {
    _Atomic uint64_t *w = tc__coh_words(c, hash);
    _Atomic uint32_t *own = &c->own[2 * tc__coh_stripe(hash)];
    if (which == 0) atomic_fetch_add_explicit(&own[0], 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&w[which], 1, memory_order_acq_rel);
    if (which == 0) atomic_fetch_add_explicit(&own[1], 1, memory_order_acq_rel);
    return tc__coh_stamp(c, hash);
}

tc__stamp tc__coh_mark(tc__coh *c, uint64_t hash) { return move(c, hash, 0); }
tc__stamp tc__coh_bump(tc__coh *c, uint64_t hash) { return move(c, hash, 1); }

void tc__coh_epoch_move(tc__coh *c) {
    atomic_fetch_add_explicit(c->epoch, 1, memory_order_acq_rel);
    atomic_fetch_add_explicit(&c->hdr->epoch_moves, 1, memory_order_relaxed);
}

/* The ring's lock, with a deadline; a holder that died leaves a consistent ring (a record is
 * complete before pgen names it). 0 or TC_ETIMEDOUT. */
static int ring_lock(tc__coh *c) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)TC__COH_LOCK_WAIT_MS * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    int rc = pthread_mutex_timedlock(&c->hdr->ring_lock, &ts);
    if (rc == EOWNERDEAD) {
        pthread_mutex_consistent(&c->hdr->ring_lock);
        return 0;
    }
    return rc == 0 ? 0 : TC_ETIMEDOUT;
}

int tc__coh_prefix_clear(tc__coh *c, const void *prefix, size_t plen) {
    if (plen > TC__COH_PREFIX_MAX) {
        tc__coh_epoch_move(c);
        return 0;
    }
    if (ring_lock(c) != 0) {
        tc__coh_epoch_move(c);
        return TC_ETIMEDOUT;
    }
    uint64_t gen = atomic_load_explicit(c->pgen, memory_order_relaxed) + 1;
    tc__coh_rec *r = &c->hdr->recs[gen % TC__COH_RING];
    atomic_store_explicit(&r->gen, 0, memory_order_relaxed);
    r->len = (uint32_t)plen;
    if (plen) memcpy(r->prefix, prefix, plen);
    atomic_store_explicit(&r->gen, gen, memory_order_release);
    atomic_store_explicit(c->pgen, gen, memory_order_release);
    pthread_mutex_unlock(&c->hdr->ring_lock);
    return 0;
}

/* The slow path of an entry stamped before some prefix clear: valid unless one of the prefixes
 * cleared since is a prefix of its key. An entry older than the ring reaches, or a ring whose
 * lock cannot be had in time, is invalid (a miss: always allowed). */
int tc__coh_prefix_ok(const tc__coh *c, uint32_t ps, const void *key, size_t klen, uint32_t *ps_now) {
    tc__coh *m = (tc__coh *)c;
    if (ring_lock(m) != 0) return 0;
    uint64_t now = atomic_load_explicit(c->pgen, memory_order_acquire);
    uint64_t behind = (uint32_t)((uint32_t)now - ps);
    int ok = behind <= TC__COH_RING;
    for (uint64_t g = now - behind + 1; ok && g <= now; g++) {
        const tc__coh_rec *r = &c->hdr->recs[g % TC__COH_RING];
        if (atomic_load_explicit(&r->gen, memory_order_acquire) != g) ok = 0; /* overwritten: too old */
        else if (r->len <= klen && memcmp(r->prefix, key, r->len) == 0) ok = 0;
    }
    pthread_mutex_unlock(&m->hdr->ring_lock);
    if (ok && ps_now != NULL) *ps_now = (uint32_t)now;
    return ok;
}

/* ------------------------------------------------------------------------ */
/* The channel                                                              */
/* ------------------------------------------------------------------------ */

void tc__coh_gap_set(tc__coh *c) {
    if (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_GAP) return;
    uint64_t e = atomic_load_explicit(c->epoch, memory_order_acquire);
    while (!(e & TC__COH_GAP)) {
        if (atomic_compare_exchange_weak_explicit(c->epoch, &e, e | TC__COH_GAP, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            atomic_fetch_add_explicit(&c->hdr->gaps, 1, memory_order_relaxed);
            return;
        }
    }
}

int tc__coh_lease_expired(const tc__coh *c, uint64_t now_ms) {
    return atomic_load_explicit(&c->hdr->lease_deadline_ms, memory_order_acquire) <= now_ms;
}

int tc__coh_lease_take(tc__coh *c, uint64_t now_ms, uint64_t hold_ms, uint32_t *ticket) {
    uint64_t cur = atomic_load_explicit(&c->hdr->lease_owner, memory_order_acquire);
    if (!tc__coh_lease_expired(c, now_ms)) return 0;
    uint32_t t = (uint32_t)cur + 1;
    if ((t & 0x7fff) == 0) t++; /* the ticket in the epoch word is 15 bits and never 0 */
    uint64_t mine = ((uint64_t)(uint32_t)getpid() << 32) | t;
    if (!atomic_compare_exchange_strong_explicit(&c->hdr->lease_owner, &cur, mine, memory_order_acq_rel,
                                                 memory_order_acquire))
        return 0;
    atomic_store_explicit(&c->hdr->lease_deadline_ms, now_ms + hold_ms, memory_order_release);
    atomic_fetch_add_explicit(&c->hdr->takeovers, 1, memory_order_relaxed);
    /* the channel is down until this owner has verified it; the epoch word names the owner, so
     * that only this owner's recovery can end the gap */
    uint64_t gap = (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_GAP) ? 0 : TC__COH_GAP;
    uint64_t e = atomic_load_explicit(c->epoch, memory_order_acquire);
    for (;;) {
        uint64_t n = (e & TC__COH_COUNTER_MASK) | gap | ((uint64_t)(t & 0x7fff) << TC__COH_TICKET_SHIFT);
        if (atomic_compare_exchange_weak_explicit(c->epoch, &e, n, memory_order_acq_rel, memory_order_acquire)) break;
    }
    if (gap && !(e & TC__COH_GAP)) atomic_fetch_add_explicit(&c->hdr->gaps, 1, memory_order_relaxed);
    *ticket = t;
    return 1;
}

static int owns(const tc__coh *c, uint32_t ticket) {
    uint64_t cur = atomic_load_explicit(&c->hdr->lease_owner, memory_order_acquire);
    return (uint32_t)cur == ticket && (uint32_t)(cur >> 32) == (uint32_t)getpid();
}

int tc__coh_lease_held(const tc__coh *c, uint32_t ticket) { return owns(c, ticket); }

int tc__coh_lease_renew(tc__coh *c, uint32_t ticket, uint64_t now_ms, uint64_t hold_ms) {
    if (!owns(c, ticket)) return 0;
    atomic_store_explicit(&c->hdr->lease_deadline_ms, now_ms + hold_ms, memory_order_release);
    return owns(c, ticket);
}

void tc__coh_lease_release(tc__coh *c, uint32_t ticket) {
    if (owns(c, ticket)) atomic_store_explicit(&c->hdr->lease_deadline_ms, 0, memory_order_release);
}

int tc__coh_recover(tc__coh *c, uint32_t ticket) {
    uint64_t tag = (uint64_t)(ticket & 0x7fff) << TC__COH_TICKET_SHIFT;
    /* the test-only variant that keeps the epoch (TC__COH_OFF_RECOVER) shows why it moves */
    uint64_t step = (atomic_load_explicit(&tc__coh_disable, memory_order_relaxed) & TC__COH_OFF_RECOVER) ? 0 : 1;
    uint64_t e = atomic_load_explicit(c->epoch, memory_order_acquire);
    for (;;) {
        if ((e & TC__COH_TICKET_MASK) != tag || !owns(c, ticket)) return 0;
        uint64_t n = (((e & TC__COH_COUNTER_MASK) + step) & TC__COH_COUNTER_MASK) | tag; /* GAP cleared */
        if (atomic_compare_exchange_weak_explicit(c->epoch, &e, n, memory_order_acq_rel, memory_order_acquire)) {
            if (step) atomic_fetch_add_explicit(&c->hdr->epoch_moves, 1, memory_order_relaxed);
            return 1;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Counters                                                                 */
/* ------------------------------------------------------------------------ */

void tc__coh_count_message(tc__coh *c, uint64_t keys) {
    atomic_fetch_add_explicit(&c->hdr->messages, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&c->hdr->keys_received, keys, memory_order_relaxed);
}

void tc__coh_count_lag(tc__coh *c, uint64_t lag_us) {
    atomic_store_explicit(&c->hdr->lag_last_us, lag_us, memory_order_relaxed);
    uint64_t m = atomic_load_explicit(&c->hdr->lag_max_us, memory_order_relaxed);
    while (lag_us > m &&
           !atomic_compare_exchange_weak_explicit(&c->hdr->lag_max_us, &m, lag_us, memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

uint64_t tc__coh_nonce(const tc__coh *c) { return c->hdr->nonce; }

void tc__coh_counters_get(const tc__coh *c, tc__coh_counters *out) {
    const struct tc__coh_hdr *h = c->hdr;
    out->keys_received = atomic_load_explicit(&h->keys_received, memory_order_relaxed);
    out->messages = atomic_load_explicit(&h->messages, memory_order_relaxed);
    out->epoch_moves = atomic_load_explicit(&h->epoch_moves, memory_order_relaxed);
    out->gaps = atomic_load_explicit(&h->gaps, memory_order_relaxed);
    out->takeovers = atomic_load_explicit(&h->takeovers, memory_order_relaxed);
    out->lag_last_us = atomic_load_explicit(&h->lag_last_us, memory_order_relaxed);
    out->lag_max_us = atomic_load_explicit(&h->lag_max_us, memory_order_relaxed);
    out->listener_pid = (uint32_t)(atomic_load_explicit(&h->lease_owner, memory_order_relaxed) >> 32);
    out->gap = tc__coh_gap(c);
}
