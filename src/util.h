/*
 * util.h -- small helpers every module uses (util.c): clocks, hashing, large zeroed tables,
 * error messages into a caller's buffer, and logging through the application's callback.
 */
#ifndef TC_UTIL_H
#define TC_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "tiercache.h"

/* Monotonic clock in milliseconds and nanoseconds. */
uint64_t tc__now_ms(void);
uint64_t tc__now_ns(void);

/* 64-bit hash of a byte string (fast, well mixed; not cryptographic). */
uint64_t tc__hash(const void *key, size_t len);

/* Zeroed memory for large, long-lived tables (hash tables, sketches): mmap'd and, from 2 MiB
 * up, advised to use transparent huge pages, so random probes do not miss the TLB. Freed with
 * tc__big_free(p, same size). NULL when out of memory. */
void *tc__big_alloc(size_t bytes);
void tc__big_free(void *p, size_t bytes);

/* snprintf into errbuf when errbuf is not NULL. Returns code, for "return tc__errf(...)". */
int tc__errf(char *errbuf, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Logs through opt's callback, when one is installed. */
void tc__log(tc_log_fn fn, void *ud, tc_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Copies into a caller's struct of dsize bytes what it holds of the library's full struct src
 * (ssize bytes), leaving its leading size field alone: a caller's older, smaller layout is
 * never written past (include/tiercache.h, Stability). Both begin with `size_t size`. */
void tc__put_sized(void *dst, size_t dsize, const void *src, size_t ssize);

#endif /* TC_UTIL_H */
