/*
 * l1_slab.c -- size-class allocation for L1 entries (see l1_slab.h for the layout).
 *
 * Every operation is O(1): a class's partial list is doubly linked, a page's free chunks are a
 * singly linked list threaded through the chunks themselves, and never-used space is carved by
 * a bump offset, so a new page costs nothing until its chunks are used.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "l1_slab.h"

struct tc__slab_region {
    tc__slab_region *next;
    void *map;  /* what mmap returned */
    size_t len; /* its length */
};

struct tc__slab_page {
    tc__slab_page *prev, *next; /* in the class's partial list */
    void *free;                 /* freed chunks, linked through their first word */
    uint32_t cls;               /* class index: chunk size is (cls + 1) * TC__SLAB_STEP */
    uint32_t live;              /* chunks in use */
    uint32_t bump;              /* offset of the first never-used chunk */
    uint32_t in_partial;
};

#define HEADER_SIZE ((sizeof(tc__slab_page) + 15) & ~(size_t)15)

static inline uint32_t class_of(size_t size) { return (uint32_t)((size + TC__SLAB_STEP - 1) / TC__SLAB_STEP) - 1; }
static inline size_t chunk_size(uint32_t cls) { return (size_t)(cls + 1) * TC__SLAB_STEP; }
static inline tc__slab_page *page_of(void *p) {
    return (tc__slab_page *)((uintptr_t)p & ~(uintptr_t)(TC__SLAB_PAGE - 1));
}

void tc__slab_init(tc__slab *s) {
    for (unsigned i = 0; i < TC__SLAB_CLASSES; i++) s->partial[i] = NULL;
    s->empty = NULL;
    s->regions = NULL;
    s->carve = s->carve_end = NULL;
    s->pages = 0;
}

/* Maps a new 2 MiB region aligned to 2 MiB (over-maps and trims). 0 or -1. */
static int region_new(tc__slab *s) {
    tc__slab_region *r = malloc(sizeof *r);
    if (r == NULL) return -1;
    size_t len = 2 * (size_t)TC__SLAB_REGION;
    char *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        free(r);
        return -1;
    }
    char *base = (char *)(((uintptr_t)map + TC__SLAB_REGION - 1) & ~(uintptr_t)(TC__SLAB_REGION - 1));
    r->map = map;
    r->len = len;
    r->next = s->regions;
    s->regions = r;
    s->carve = base;
    s->carve_end = base + TC__SLAB_REGION;
    return 0;
}

/* A page for class cls: a given-back page, else a never-used one, else from a new region. */
static tc__slab_page *page_new(tc__slab *s, uint32_t cls) {
    tc__slab_page *pg = s->empty;
    if (pg != NULL) {
        s->empty = pg->next;
    } else {
        if (s->carve == s->carve_end && region_new(s) != 0) return NULL;
        pg = (tc__slab_page *)s->carve;
        s->carve += TC__SLAB_PAGE;
    }
    pg->free = NULL;
    pg->cls = cls;
    pg->live = 0;
    pg->bump = (uint32_t)HEADER_SIZE;
    pg->in_partial = 0;
    s->pages++;
    return pg;
}

static void partial_add(tc__slab *s, tc__slab_page *pg) {
    pg->prev = NULL;
    pg->next = s->partial[pg->cls];
    if (pg->next != NULL) pg->next->prev = pg;
    s->partial[pg->cls] = pg;
    pg->in_partial = 1;
}

static void partial_remove(tc__slab *s, tc__slab_page *pg) {
    if (pg->prev != NULL) pg->prev->next = pg->next;
    else s->partial[pg->cls] = pg->next;
    if (pg->next != NULL) pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
    pg->in_partial = 0;
}

void *tc__slab_alloc(tc__slab *s, size_t size) {
    if (size == 0) size = 1;
    if (size > TC__SLAB_MAX) return malloc(size);
    uint32_t cls = class_of(size);
    size_t csize = chunk_size(cls);
    tc__slab_page *pg = s->partial[cls];
    if (pg == NULL) {
        pg = page_new(s, cls);
        if (pg == NULL) return NULL;
        partial_add(s, pg);
    }
    void *p;
    if (pg->free != NULL) {
        p = pg->free;
        pg->free = *(void **)p;
    } else {
        p = (char *)pg + pg->bump;
        pg->bump += (uint32_t)csize;
    }
    pg->live++;
    if (pg->free == NULL && pg->bump + csize > TC__SLAB_PAGE) partial_remove(s, pg); /* now full */
    return p;
}

void tc__slab_free(tc__slab *s, void *p, size_t size) {
    if (p == NULL) return;
    if (size == 0) size = 1;
    if (size > TC__SLAB_MAX) {
        free(p);
        return;
    }
    tc__slab_page *pg = page_of(p);
    *(void **)p = pg->free;
    pg->free = p;
    if (--pg->live == 0) { /* empty: its memory back to the kernel, the page to the pool */
        if (pg->in_partial) partial_remove(s, pg);
        s->pages--;
        (void)madvise((char *)pg + 4096, TC__SLAB_PAGE - 4096, MADV_DONTNEED);
        pg->next = s->empty;
        s->empty = pg;
        return;
    }
    if (!pg->in_partial) partial_add(s, pg);
}

void tc__slab_destroy(tc__slab *s) {
    while (s->regions != NULL) {
        tc__slab_region *r = s->regions;
        s->regions = r->next;
        munmap(r->map, r->len);
        free(r);
    }
    tc__slab_init(s);
}
