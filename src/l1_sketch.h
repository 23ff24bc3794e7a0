/*
 * l1_sketch.h -- the TinyLFU frequency sketch: a count-min sketch of 4-bit counters.
 *
 * Each key hashes to one 64-byte block of eight 64-bit words; its four counters live in
 * four (usually different) words of that block, so an increment or an estimate touches a
 * single cache line. Counters saturate at 15. After TC__SKETCH_SAMPLE_FACTOR x capacity
 * increments every counter is halved ("reset"), so the sketch forgets old popularity:
 * frequencies are of the recent past, which is what admission needs.
 *
 * Sizing, chosen by measurement on the shared traces (docs/EVICTION.md): 2 words (32
 * counters) per entry and a reset every 40 x capacity increments. Caffeine uses 1 word and
 * 10 x; at our sizes the larger sketch and longer memory gave +0.2 to +0.8 points of hit
 * ratio on zipf, scan and loop traces.
 *
 *   word (64 bits) = 16 counters of 4 bits:  | c15 | c14 | ... | c1 | c0 |
 *   block          = 8 words = 64 bytes, aligned to a cache line
 *
 * Not thread-safe: each L1 shard owns one sketch and uses it under the shard lock.
 */
#ifndef TC_L1_SKETCH_H
#define TC_L1_SKETCH_H

#include <stdint.h>

#define TC__SKETCH_WORDS_PER_ENTRY 3
#define TC__SKETCH_SAMPLE_FACTOR 40

typedef struct tc__sketch {
    uint64_t *table;     /* nblocks * 8 words, 64-byte aligned */
    uint64_t nblocks;
    uint64_t additions;  /* increments since the last reset */
    uint64_t sample;     /* reset when additions reaches this */
} tc__sketch;

/* Bytes of table a sketch for capacity entries needs (TC__SKETCH_WORDS_PER_ENTRY words per
 * entry, in whole blocks: no power-of-two rounding, blocks are picked by multiply-shift). */
size_t tc__sketch_bytes(uint64_t capacity);

/* Sets the sketch up over mem: tc__sketch_bytes(capacity) zeroed bytes, 64-byte aligned, owned
 * by the caller and outliving the sketch. */
void tc__sketch_init(tc__sketch *s, uint64_t capacity, void *mem);

/* Moves the sketch onto mem, tc__sketch_bytes(capacity) zeroed bytes, 64-byte aligned, for a
 * table that grew or shrank to capacity entries; the caller frees the old table after. Each new
 * block takes, counter by counter, the largest value of the old blocks whose keys now map to it:
 * exact when the block count doubles (each old block feeds two new ones), an over-estimate
 * otherwise, as a count-min sketch may give. O(old blocks + new blocks). */
void tc__sketch_resize(tc__sketch *s, uint64_t capacity, void *mem);

/* The first word of the block of the key with 32-bit hash h. */
static inline uint64_t tc__sketch_block(const tc__sketch *s, uint32_t h) {
    uint64_t x = (uint64_t)h * 0xD6E8FEB86659FD93ULL;
    return (((x >> 32) * s->nblocks) >> 32) << 3;
}

/* Starts loading the key's block into the cache, ahead of an increment or estimate. */
static inline void tc__sketch_prefetch(const tc__sketch *s, uint32_t h) {
    __builtin_prefetch(&s->table[tc__sketch_block(s, h)], 1, 3);
}

/* Counts one more occurrence of the key with 32-bit hash h. O(1), plus O(table) once every
 * 10 x capacity calls (the reset). */
void tc__sketch_incr(tc__sketch *s, uint32_t h);

/* Estimated occurrences (0..15) of the key with hash h. */
unsigned tc__sketch_freq(const tc__sketch *s, uint32_t h);

#endif /* TC_L1_SKETCH_H */
