/*
 * rng.h -- test helper: a small reproducible random number stream (splitmix64), so a failing
 * randomized test fails the same way on every run and machine.
 */
#ifndef TC_TEST_RNG_H
#define TC_TEST_RNG_H

#include <stdint.h>

/* The next 64-bit number of the stream whose state is *state (any seed is a valid state). */
uint64_t tc_test_rng_next(uint64_t *state);

/* A double uniform in (0, 1), never exactly 0 or 1 (safe to take the log of). */
double tc_test_rng_unit(uint64_t *state);

#endif /* TC_TEST_RNG_H */
