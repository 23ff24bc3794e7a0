/*
 * l1_slab.c -- size-class allocation for L1 entries (see l1_slab.h for the layout and locks).
 *
 * Every operation on a class is O(1) per chunk: a class's partial list is doubly linked, a
 * page's free chunks are a singly linked list threaded through the chunks themselves, and
 * never-used space is carved by a bump offset, so a new page costs nothing until its chunks are
 * used. A shard's cache is a list per class in front of that, refilled and flushed in batches.
 */
#include <stdlib.h>
#include <sys/mman.h>

#include "l1_slab.h"

#define REFILL_MAX 32 /* chunks one refill takes from a class, at most */

struct tc__slab_region {
    tc__slab_region *next;
    void *map;  /* what mmap returned */
    size_t len; /* its length */
};

struct tc__slab_page {
    tc__slab_page *prev, *next; /* in a partial list of its class */
    void *free;                 /* freed chunks, linked through their first word */
    uint32_t cls;               /* class index: chunk size is (cls + 1) * TC__SLAB_STEP */
    uint32_t live;              /* chunks handed out (in entries or in shards' caches) */
    uint32_t bump;              /* offset of the first never-used chunk */
    int32_t list;               /* the partial list it is in, or -1 (full, or being set up) */
};

#define HEADER_SIZE ((sizeof(tc__slab_page) + 15) & ~(size_t)15)

static inline uint32_t class_of(size_t size) { return (uint32_t)((size + TC__SLAB_STEP - 1) / TC__SLAB_STEP) - 1; }
static inline size_t chunk_size(uint32_t cls) { return (size_t)(cls + 1) * TC__SLAB_STEP; }
static inline tc__slab_page *page_of(void *p) {
    return (tc__slab_page *)((uintptr_t)p & ~(uintptr_t)(TC__SLAB_PAGE - 1));
}

int tc__slab_init(tc__slab *s) {
    unsigned made = 0;
    if (pthread_mutex_init(&s->page_lock, NULL) != 0) return -1;
    for (; made < TC__SLAB_CLASSES; made++) {
        struct tc__slab_class *k = &s->cls[made];
        uint32_t per_page = (uint32_t)((TC__SLAB_PAGE - HEADER_SIZE) / chunk_size(made));
        for (unsigned q = 0; q < 4; q++) {
            k->partial[q] = NULL;
            k->quarter[q] = per_page * q / 4;
        }
        if (pthread_mutex_init(&k->lock, NULL) != 0) break;
    }
    if (made < TC__SLAB_CLASSES) {
        while (made-- > 0) pthread_mutex_destroy(&s->cls[made].lock);
        pthread_mutex_destroy(&s->page_lock);
        return -1;
    }
    s->regions = NULL;
    s->carve = s->carve_end = NULL;
    s->free_pages = NULL;
    s->nfree = s->free_cap = 0;
    s->pages = 0;
    return 0;
}

void tc__slab_cache_init(tc__slab_cache *c, size_t bound) {
    for (unsigned i = 0; i < TC__SLAB_CLASSES; i++) c->head[i] = NULL;
    c->bytes = 0;
    c->bound = bound;
}

/* ------------------------------------------------------------------------ */
/* Pages (under page_lock)                                                  */
/* ------------------------------------------------------------------------ */

/* Maps a new 2 MiB region aligned to 2 MiB (over-maps; the unused ends cost no memory). 0 or -1. */
static int region_new_locked(tc__slab *s) {
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
    pthread_mutex_lock(&s->page_lock);
    tc__slab_page *pg = NULL;
    if (s->nfree > 0) {
        pg = s->free_pages[--s->nfree];
    } else if (s->carve != s->carve_end || region_new_locked(s) == 0) {
        pg = (tc__slab_page *)s->carve;
        s->carve += TC__SLAB_PAGE;
    }
    if (pg != NULL) s->pages++;
    pthread_mutex_unlock(&s->page_lock);
    if (pg == NULL) return NULL;
    pg->prev = pg->next = NULL;
    pg->free = NULL;
    pg->cls = cls;
    pg->live = 0;
    pg->bump = (uint32_t)HEADER_SIZE;
    pg->list = -1;
    return pg;
}

/* Gives an empty page back: its memory to the kernel, the page to the free stack. 0, or -1 when
 * the stack cannot grow (the page then stays with its class, empty but usable). */
static int page_release(tc__slab *s, tc__slab_page *pg) {
    pthread_mutex_lock(&s->page_lock);
    if (s->nfree == s->free_cap) {
        size_t cap = s->free_cap ? 2 * s->free_cap : 64;
        void **fresh = realloc(s->free_pages, cap * sizeof *fresh);
        if (fresh == NULL) {
            pthread_mutex_unlock(&s->page_lock);
            return -1;
        }
        s->free_pages = fresh;
        s->free_cap = cap;
    }
    (void)madvise(pg, TC__SLAB_PAGE, MADV_DONTNEED);
    s->free_pages[s->nfree++] = pg;
    s->pages--;
    pthread_mutex_unlock(&s->page_lock);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Classes (under the class's lock)                                         */
/* ------------------------------------------------------------------------ */

static void partial_add_locked(struct tc__slab_class *k, tc__slab_page *pg, int q) {
    pg->prev = NULL;
    pg->next = k->partial[q];
    if (pg->next != NULL) pg->next->prev = pg;
    k->partial[q] = pg;
    pg->list = q;
}

static void partial_remove_locked(struct tc__slab_class *k, tc__slab_page *pg) {
    if (pg->prev != NULL) pg->prev->next = pg->next;
    else k->partial[pg->list] = pg->next;
    if (pg->next != NULL) pg->next->prev = pg->prev;
    pg->prev = pg->next = NULL;
    pg->list = -1;
}

/* The partial list for a page with live chunks in use. */
static inline int list_of(const struct tc__slab_class *k, uint32_t live) {
    return (live >= k->quarter[1]) + (live >= k->quarter[2]) + (live >= k->quarter[3]);
}

/* Puts a page whose use changed into the list it belongs to now, or none when it is full. */
static void page_refile_locked(struct tc__slab_class *k, tc__slab_page *pg, size_t csize) {
    int full = pg->free == NULL && pg->bump + csize > TC__SLAB_PAGE;
    int q = full ? -1 : list_of(k, pg->live);
    if (q == pg->list) return;
    if (pg->list >= 0) partial_remove_locked(k, pg);
    if (q >= 0) partial_add_locked(k, pg, q);
}

/* One chunk of class cls from its fullest partial page (a new page when it has none), or NULL. */
static void *class_take_locked(tc__slab *s, uint32_t cls) {
    struct tc__slab_class *k = &s->cls[cls];
    size_t csize = chunk_size(cls);
    tc__slab_page *pg = NULL;
    for (int q = 3; q >= 0 && pg == NULL; q--) pg = k->partial[q];
    if (pg == NULL) {
        pg = page_new(s, cls);
        if (pg == NULL) return NULL;
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
    page_refile_locked(k, pg, csize);
    return p;
}

/* Returns one chunk to its page; a page left empty is given back. */
static void class_put_locked(tc__slab *s, void *p) {
    tc__slab_page *pg = page_of(p);
    struct tc__slab_class *k = &s->cls[pg->cls];
    *(void **)p = pg->free;
    pg->free = p;
    if (--pg->live == 0) {
        if (pg->list >= 0) partial_remove_locked(k, pg);
        if (page_release(s, pg) == 0) return;
    }
    page_refile_locked(k, pg, chunk_size(pg->cls));
}

/* ------------------------------------------------------------------------ */
/* Shards' caches                                                           */
/* ------------------------------------------------------------------------ */

/* Gives class cls's chunks in c back to the class. */
static void cache_flush_class(tc__slab *s, tc__slab_cache *c, uint32_t cls) {
    void *p = c->head[cls];
    if (p == NULL) return;
    size_t csize = chunk_size(cls);
    pthread_mutex_lock(&s->cls[cls].lock);
    while (p != NULL) {
        void *next = *(void **)p;
        class_put_locked(s, p);
        c->bytes -= csize;
        p = next;
    }
    pthread_mutex_unlock(&s->cls[cls].lock);
    c->head[cls] = NULL;
}

void tc__slab_cache_flush(tc__slab *s, tc__slab_cache *c) {
    for (uint32_t i = 0; i < TC__SLAB_CLASSES && c->bytes > 0; i++) cache_flush_class(s, c, i);
}

/* Takes a batch of class cls (half the room left in c, 1 to REFILL_MAX chunks), returns one
 * chunk of it and keeps the rest in c; NULL when out of memory. The bound holds here too: a
 * shard writing values of many sizes would otherwise keep a batch of every class, each chunk
 * pinning a page that could not be given back. */
static void *cache_refill(tc__slab *s, tc__slab_cache *c, uint32_t cls) {
    size_t csize = chunk_size(cls);
    size_t want = 1 + (c->bytes < c->bound ? (c->bound - c->bytes) / 2 / csize : 0);
    if (want > REFILL_MAX) want = REFILL_MAX;
    void *first = NULL;
    pthread_mutex_lock(&s->cls[cls].lock);
    for (size_t n = 0; n < want; n++) {
        void *p = class_take_locked(s, cls);
        if (p == NULL) break;
        if (first == NULL) {
            first = p;
            continue;
        }
        *(void **)p = c->head[cls];
        c->head[cls] = p;
        c->bytes += csize;
    }
    pthread_mutex_unlock(&s->cls[cls].lock);
    return first;
}

/* An allocation above TC__SLAB_MAX, and its release (see l1_slab.h). */
static void *big_alloc(size_t size) {
    if (size < TC__SLAB_MAP_MIN) return malloc(size);
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void big_free(void *p, size_t size) {
    if (size < TC__SLAB_MAP_MIN) free(p);
    else munmap(p, size);
}

void *tc__slab_alloc_big(size_t size) { return big_alloc(size); }
void tc__slab_free_big(void *p, size_t size) { big_free(p, size); }

void *tc__slab_alloc(tc__slab *s, tc__slab_cache *c, size_t size) {
    if (size == 0) size = 1;
    if (size > TC__SLAB_MAX) return big_alloc(size);
    uint32_t cls = class_of(size);
    void *p = c->head[cls];
    if (p == NULL) return cache_refill(s, c, cls);
    c->head[cls] = *(void **)p;
    c->bytes -= chunk_size(cls);
    return p;
}

void tc__slab_free(tc__slab *s, tc__slab_cache *c, void *p, size_t size) {
    if (p == NULL) return;
    if (size == 0) size = 1;
    if (size > TC__SLAB_MAX) {
        big_free(p, size);
        return;
    }
    uint32_t cls = class_of(size);
    *(void **)p = c->head[cls];
    c->head[cls] = p;
    c->bytes += chunk_size(cls);
    if (c->bytes > c->bound) {
        cache_flush_class(s, c, cls);
        if (c->bytes > c->bound) tc__slab_cache_flush(s, c); /* what other classes left */
    }
}

uint64_t tc__slab_pages(tc__slab *s) {
    pthread_mutex_lock(&s->page_lock);
    uint64_t n = s->pages;
    pthread_mutex_unlock(&s->page_lock);
    return n;
}

void tc__slab_destroy(tc__slab *s) {
    while (s->regions != NULL) {
        tc__slab_region *r = s->regions;
        s->regions = r->next;
        munmap(r->map, r->len);
        free(r);
    }
    free(s->free_pages);
    s->free_pages = NULL;
    s->nfree = s->free_cap = 0;
    s->carve = s->carve_end = NULL;
    s->pages = 0;
    for (unsigned i = 0; i < TC__SLAB_CLASSES; i++) pthread_mutex_destroy(&s->cls[i].lock);
    pthread_mutex_destroy(&s->page_lock);
}
