/*
 * rng.c -- test helper: splitmix64 (Steele, Lea and Flood's mixer over a Weyl sequence); see
 * rng.h.
 */
#include "helpers/rng.h"

uint64_t tc_test_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double tc_test_rng_unit(uint64_t *state) {
    return ((double)(tc_test_rng_next(state) >> 11) + 0.5) / 9007199254740992.0;
}
