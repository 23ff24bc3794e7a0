/*
 * l1_slab.h -- memory for L1 entries: size classes of 8-byte steps carved from 64 KiB pages.
 *
 * malloc rounds a 132-byte entry (16-byte header, 16-byte key, 100-byte value) up to a 144-byte
 * chunk; a slab class of 136 bytes holds it with no per-chunk header, and allocation is a pop
 * from a free list under the shard lock the caller already holds.
 *
 *   page (64 KiB, aligned to 64 KiB):
 *   | header: class, live count, bump offset, free list, partial-list links | chunk | chunk | ...
 *
 * Pages are carved from 2 MiB regions mapped with mmap and aligned to 2 MiB; pages not yet
 * carved are never touched, so they cost no resident memory. (Transparent huge pages for the
 * regions were measured: no speed gain, and up to one 2 MiB region per shard resident before
 * it is used -- 15 MiB more for 1M entries in 8 shards -- so they are not advised.) A page is
 * found from any chunk by masking the chunk's address. Each class keeps a list of pages that
 * have free chunks; allocation takes from the first of them (refilling holes before carving new
 * pages). A page whose last chunk is freed is given back to the kernel (MADV_DONTNEED, all but
 * its first 4 KiB, which holds the free-page link) and reused for any class, so resident memory
 * follows the live set, not its high-water mark. Sizes above TC__SLAB_MAX go to malloc.
 *
 * Not thread-safe: each L1 shard owns one slab and uses it under the shard lock.
 */
#ifndef TC_L1_SLAB_H
#define TC_L1_SLAB_H

#include <stddef.h>
#include <stdint.h>

#define TC__SLAB_PAGE (64u * 1024u)
#define TC__SLAB_REGION (2u * 1024u * 1024u)
#define TC__SLAB_STEP 8u
#define TC__SLAB_MAX 2048u
#define TC__SLAB_CLASSES (TC__SLAB_MAX / TC__SLAB_STEP)

typedef struct tc__slab_page tc__slab_page;
typedef struct tc__slab_region tc__slab_region;

typedef struct tc__slab {
    tc__slab_page *partial[TC__SLAB_CLASSES]; /* pages of each class with a free chunk */
    tc__slab_page *empty;                     /* pages given back, ready for any class */
    tc__slab_region *regions;                 /* every mapping, for destroy */
    char *carve, *carve_end;                  /* never-used pages of the newest region */
    uint64_t pages;                           /* pages in use by some class */
} tc__slab;

void tc__slab_init(tc__slab *s);

/* A chunk of at least size bytes, 8-byte aligned, or NULL when out of memory. */
void *tc__slab_alloc(tc__slab *s, size_t size);

/* Returns a chunk; size must be the size it was allocated with. */
void tc__slab_free(tc__slab *s, void *p, size_t size);

/* Unmaps every region. Chunks above TC__SLAB_MAX must have been freed one by one. */
void tc__slab_destroy(tc__slab *s);

#endif /* TC_L1_SLAB_H */
