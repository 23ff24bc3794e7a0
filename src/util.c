/*
 * util.c -- small pieces every module uses: the error table, clocks, hashing, large tables and
 * message formatting.
 *
 * The error codes, their names and messages come from one list (TC_ERRNO_MAP in tiercache.h).
 * Hashing is XXH3 from the system's libxxhash, inlined so that a 16-byte key hashes in a few
 * nanoseconds with no call.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "util.h"

/* ------------------------------------------------------------------------ */
/* Errors                                                                   */
/* ------------------------------------------------------------------------ */

TC_EXPORT const char *tc_strerror(int err) {
    switch (err) {
    case TC_OK: return "success";
#define TC__ERR_MSG(name, val, msg) case TC_##name: return msg;
    TC_ERRNO_MAP(TC__ERR_MSG)
#undef TC__ERR_MSG
    default: return "unknown error";
    }
}

TC_EXPORT const char *tc_err_name(int err) {
    switch (err) {
    case TC_OK: return "TC_OK";
#define TC__ERR_NAME(name, val, msg) case TC_##name: return "TC_" #name;
    TC_ERRNO_MAP(TC__ERR_NAME)
#undef TC__ERR_NAME
    default: return "TC_EUNKNOWN";
    }
}

TC_EXPORT int tc_is_error(int err) { return err < 0 && err != TC_EMISS; }

TC_EXPORT int tc_version(void) { return TC_VERSION_NUMBER; }

void tc__put_sized(void *dst, size_t dsize, const void *src, size_t ssize) {
    size_t n = dsize < ssize ? dsize : ssize;
    if (n > sizeof(size_t)) memcpy((char *)dst + sizeof(size_t), (const char *)src + sizeof(size_t), n - sizeof(size_t));
}

TC_EXPORT void tc_free(void *p) { free(p); }

/* ------------------------------------------------------------------------ */
/* Clocks and hashing                                                       */
/* ------------------------------------------------------------------------ */

uint64_t tc__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t tc__now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t tc__hash(const void *key, size_t len) { return XXH3_64bits(key, len); }

/* ------------------------------------------------------------------------ */
/* Large tables                                                             */
/* ------------------------------------------------------------------------ */

void *tc__big_alloc(size_t bytes) {
    if (bytes == 0) bytes = 1;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= (2u << 20)) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

void tc__big_free(void *p, size_t bytes) {
    if (p != NULL) munmap(p, bytes ? bytes : 1);
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

int tc__errf(char *errbuf, size_t errlen, int code, const char *fmt, ...) {
    if (errbuf != NULL && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errbuf, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void tc__log(tc_log_fn fn, void *ud, tc_log_level level, const char *fmt, ...) {
    if (fn == NULL) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fn(ud, level, msg);
}
