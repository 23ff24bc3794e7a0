/*
 * l1_slab.h -- memory for L1 entries: size classes of 8-byte steps carved from 64 KiB pages,
 * shared by every shard of the tier, with a small cache of free chunks per shard.
 *
 * malloc rounds a 132-byte entry (16-byte header, 16-byte key, 100-byte value) up to a 144-byte
 * chunk; a slab class of 136 bytes holds it with no per-chunk header.
 *
 *   page (64 KiB, aligned to 64 KiB):
 *   | header: class, live count, bump offset, free list, partial-list links | chunk | chunk | ...
 *
 * Why the classes are tier-wide. Each class keeps one partly used page whose last touched 4 KiB
 * is resident whether or not it holds entries. Per-shard classes multiplied that by the shard
 * count: 256 shards x a few hundred classes of mixed value sizes made 100+ MiB resident under a
 * 32 MiB limit. Shared classes bound that slack by the class count (at most 256 x 4 KiB = 1 MiB).
 *
 * Why a cache per shard. A shard allocates and frees under its own lock; taking a tier-wide
 * class lock for every chunk would put a global lock on the write path. So each shard keeps the
 * chunks it freed, per class, in a cache bounded in bytes (tc__slab_cache_init), allocates from
 * it first, and goes to the class (under the class's mutex) only to refill a batch or to flush
 * a cache that outgrew its bound. In the steady state of a cache at its limit every write frees
 * (an eviction) about what it allocates, so the class lock is seldom taken.
 *
 * Pages are carved from 2 MiB regions mapped with mmap and aligned to 2 MiB; pages not yet
 * carved are never touched, so they cost no resident memory. (Transparent huge pages for the
 * regions were measured: no speed gain, so they are not advised.) A page is found from any chunk
 * by masking the chunk's address. Each class keeps its pages that have free chunks in four lists
 * by fullness, and allocates from the fullest page: evictions hit every page alike, so a page
 * that is not refilled drains and is given back, instead of every page ending up sparsely used
 * (allocating from the page freed into last left mixed-size fills at 15 % page occupancy). A page
 * whose last chunk comes back is given back to the kernel whole (MADV_DONTNEED) and kept on a
 * stack of free pages, outside the pages, for any class to reuse; so resident memory follows
 * the live set, not its high-water mark. Sizes above TC__SLAB_MAX go to malloc, and from
 * TC__SLAB_MAP_MIN to a mapping of their own: malloc keeps freed large blocks on its heap (its
 * mmap threshold rises to the largest block freed), which held 10 MiB more than the entries
 * under a 32 MiB limit of values up to 200 KB; a mapping goes back to the kernel when freed.
 *
 * Locks: a shard's cache is used under that shard's lock; each class has a mutex; the free-page
 * stack and the region list have one mutex, taken only to get or give back a whole page. Order:
 * shard lock -> class mutex -> page mutex.
 */
#ifndef TC_L1_SLAB_H
#define TC_L1_SLAB_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define TC__SLAB_PAGE (64u * 1024u)
#define TC__SLAB_REGION (2u * 1024u * 1024u)
#define TC__SLAB_STEP 8u
#define TC__SLAB_MAX 2048u
#define TC__SLAB_CLASSES (TC__SLAB_MAX / TC__SLAB_STEP)
#define TC__SLAB_MAP_MIN (64u * 1024u)

typedef struct tc__slab_page tc__slab_page;
typedef struct tc__slab_region tc__slab_region;

/* The tier-wide part: the classes' pages. */
typedef struct tc__slab {
    struct tc__slab_class {
        pthread_mutex_t lock;
        /* pages of this class with a free or never-used chunk, by how full they are:
         * [q] holds those with q quarters or more of their chunks in use */
        tc__slab_page *partial[4];
        uint32_t quarter[4];    /* chunks in use from which a page is in partial[q] */
    } __attribute__((aligned(64))) cls[TC__SLAB_CLASSES];
    pthread_mutex_t page_lock;  /* the fields below */
    tc__slab_region *regions;   /* every mapping, for destroy */
    char *carve, *carve_end;    /* never-used pages of the newest region */
    void **free_pages;          /* pages given back (no resident memory), for any class */
    size_t nfree, free_cap;
    uint64_t pages;             /* pages in use by some class */
} tc__slab;

/* A shard's cache of free chunks: per class, a list linked through the chunks' first word. */
typedef struct tc__slab_cache {
    void *head[TC__SLAB_CLASSES];
    size_t bytes; /* chunk bytes held */
    size_t bound; /* flushed back to the classes above this */
} tc__slab_cache;

/* Sets up an empty slab. 0, or -1 when a mutex cannot be made. */
int tc__slab_init(tc__slab *s);

/* An empty cache that holds at most bound bytes of free chunks. */
void tc__slab_cache_init(tc__slab_cache *c, size_t bound);

/* The memory an allocation of size bytes really takes: its chunk up to TC__SLAB_MAX, malloc's
 * chunk (8 bytes of header, 16-byte multiples) up to TC__SLAB_MAP_MIN, whole pages above. */
static inline uint64_t tc__slab_cost(size_t size) {
    if (size <= TC__SLAB_MAX) return (size + TC__SLAB_STEP - 1) / TC__SLAB_STEP * TC__SLAB_STEP;
    if (size < TC__SLAB_MAP_MIN) return (size + 8 + 15) / 16 * 16;
    return ((uint64_t)size + 4095) & ~(uint64_t)4095;
}

/* A chunk of at least size bytes, 8-byte aligned, or NULL when out of memory. Caller holds the
 * lock that guards c. O(1): a pop from c, else one batch from the class (bounded by c's bound). */
void *tc__slab_alloc(tc__slab *s, tc__slab_cache *c, size_t size);

/* Returns a chunk into c; size must be the size it was allocated with. Caller holds the lock
 * that guards c. O(1), except when c outgrows its bound: then O(chunks c holds). */
void tc__slab_free(tc__slab *s, tc__slab_cache *c, void *p, size_t size);

/* An allocation above TC__SLAB_MAX, and its release, without a cache and without a lock (what
 * tc__slab_alloc and tc__slab_free do for these sizes). NULL when out of memory. */
void *tc__slab_alloc_big(size_t size);
void tc__slab_free_big(void *p, size_t size);

/* Gives every chunk c holds back to the classes (c is empty after). */
void tc__slab_cache_flush(tc__slab *s, tc__slab_cache *c);

/* Pages in use by some class (each TC__SLAB_PAGE bytes of address space, resident as far as
 * it was used). */
uint64_t tc__slab_pages(tc__slab *s);

/* Unmaps every region and destroys the mutexes. Chunks above TC__SLAB_MAX must have been freed
 * one by one; caches need not be flushed. */
void tc__slab_destroy(tc__slab *s);

#endif /* TC_L1_SLAB_H */
