/*
 * l1_sketch.c -- the TinyLFU count-min sketch (see l1_sketch.h for the layout).
 *
 * Keys are identified by the 32-bit hash their table slot already holds, so an eviction
 * never re-hashes a key. The block is chosen from a mix of that hash (the slot's position
 * depends on its top bits, the block on all of them); the four counters inside the block
 * come from a second, independent mix. An increment raises each of the four counters
 * that is below 15, in one pass over the block's cache line.
 */
#include <stddef.h>

#include "l1_sketch.h"

#define RESET_MASK 0x7777777777777777ULL

size_t tc__sketch_bytes(uint64_t capacity) {
    uint64_t blocks = (TC__SKETCH_WORDS_PER_ENTRY * capacity + 7) / 8;
    if (blocks == 0) blocks = 1;
    if (blocks > UINT32_MAX) blocks = UINT32_MAX;
    return (size_t)blocks * 8 * sizeof(uint64_t);
}

void tc__sketch_init(tc__sketch *s, uint64_t capacity, void *mem) {
    s->table = mem;
    s->nblocks = tc__sketch_bytes(capacity) / sizeof(uint64_t) / 8;
    s->additions = 0;
    s->sample = TC__SKETCH_SAMPLE_FACTOR * (capacity ? capacity : 1);
}

/* The counter-wise (4-bit) maximum of two words, eight counters at a time: with the even (then
 * the odd) counters spread one to a byte, 0x80 + x - y has its top bit set where x >= y. */
static uint64_t nibble_max(uint64_t a, uint64_t b) {
    const uint64_t lo = 0x0F0F0F0F0F0F0F0FULL, top = 0x8080808080808080ULL;
    uint64_t m = 0;
    for (unsigned sh = 0; sh < 8; sh += 4) {
        uint64_t x = (a >> sh) & lo, y = (b >> sh) & lo;
        uint64_t ge = (((x | top) - y) & top) >> 7; /* 1 in each byte where x >= y */
        uint64_t keep = ge * 0xFF;
        m |= ((x & keep) | (y & ~keep)) << sh;
    }
    return m;
}

void tc__sketch_resize(tc__sketch *s, uint64_t capacity, void *mem) {
    uint64_t *old = s->table, on = s->nblocks;
    uint64_t nn = tc__sketch_bytes(capacity) / sizeof(uint64_t) / 8;
    uint64_t *t = mem;
    /* a key's block is floor(y * nblocks / 2^32) for its 32-bit y: the keys of new block j
     * had old blocks floor(j * on / nn) .. floor(((j + 1) * on - 1) / nn); when the count
     * doubles, that is block j / 2 alone */
    if (nn == 2 * on) {
        for (uint64_t j = 0; j < nn; j++)
            for (unsigned w = 0; w < 8; w++) t[j * 8 + w] = old[(j / 2) * 8 + w];
    } else {
        for (uint64_t j = 0; j < nn; j++) {
            uint64_t a = j * on / nn, b = ((j + 1) * on - 1) / nn;
            for (unsigned w = 0; w < 8; w++) {
                uint64_t v = old[a * 8 + w];
                for (uint64_t k = a + 1; k <= b; k++) v = nibble_max(v, old[k * 8 + w]);
                t[j * 8 + w] = v;
            }
        }
    }
    s->table = t;
    s->nblocks = nn;
    s->sample = TC__SKETCH_SAMPLE_FACTOR * (capacity ? capacity : 1);
}

/* The word index (within the table) and nibble shift of counter i of a key. */
static inline void locate(const tc__sketch *s, uint32_t h, unsigned i, uint64_t *word, unsigned *shift) {
    uint64_t block = tc__sketch_block(s, h);
    uint64_t r = ((uint64_t)h + 0x632BE59BD9B4E019ULL) * 0x9E3779B97F4A7C15ULL;
    *word = block + ((r >> (61 - 3 * i)) & 7);
    *shift = (unsigned)((r >> (4 * i)) & 15) << 2;
}

unsigned tc__sketch_freq(const tc__sketch *s, uint32_t h) {
    unsigned min = 15;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w;
        unsigned sh;
        locate(s, h, i, &w, &sh);
        unsigned c = (unsigned)(s->table[w] >> sh) & 15;
        if (c < min) min = c;
    }
    return min;
}

static void sketch_reset(tc__sketch *s) {
    uint64_t n = s->nblocks * 8;
    for (uint64_t i = 0; i < n; i++) s->table[i] = (s->table[i] >> 1) & RESET_MASK;
    s->additions /= 2;
}

void tc__sketch_incr(tc__sketch *s, uint32_t h) {
    int added = 0;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t w;
        unsigned sh;
        locate(s, h, i, &w, &sh);
        if (((s->table[w] >> sh) & 15) != 15) {
            s->table[w] += 1ULL << sh;
            added = 1;
        }
    }
    if (added && ++s->additions >= s->sample) sketch_reset(s);
}
