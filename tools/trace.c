/*
 * trace.c -- reads benchmark traces (.u32: 4-byte little-endian key ids) and builds the keys
 * a replay uses for them; see trace.h. Used by the CLI and bench/, not part of the library.
 *
 * The file is read with one fread into the id array and decoded in place (le32toh), so a trace
 * costs its own size in memory once and reads the same on any host.
 */
#include "trace.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void set_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int trace_load(const char *path, uint64_t max_ids, trace_data *t, char *err, size_t errlen) {
    memset(t, 0, sizeof *t);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        set_err(err, errlen, "cannot open trace '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        set_err(err, errlen, "trace '%s' is not a regular file", path);
        fclose(f);
        return -1;
    }
    if (sb.st_size % 4 != 0 || sb.st_size == 0) {
        set_err(err, errlen,
                "trace '%s' has %lld bytes: expected a non-empty sequence of 4-byte little-endian key ids",
                path, (long long)sb.st_size);
        fclose(f);
        return -1;
    }
    uint64_t count = (uint64_t)sb.st_size / 4;
    if (max_ids && count > max_ids) count = max_ids;
    uint32_t *ids = count <= SIZE_MAX / sizeof *ids ? malloc((size_t)count * sizeof *ids) : NULL;
    if (ids == NULL) {
        set_err(err, errlen, "out of memory for the %" PRIu64 " requests of trace '%s'", count, path);
        fclose(f);
        return -1;
    }
    if (fread(ids, 4, (size_t)count, f) != (size_t)count) {
        set_err(err, errlen, "reading trace '%s': %s", path, ferror(f) ? strerror(errno) : "short read");
        free(ids);
        fclose(f);
        return -1;
    }
    fclose(f);
    uint32_t max = 0;
    for (size_t i = 0; i < (size_t)count; i++) {
        uint32_t id = le32toh(ids[i]); /* nothing to do on a little-endian host */
        ids[i] = id;
        if (id > max) max = id;
    }
    t->ids = ids;
    t->n = (size_t)count;
    t->max_id = max;
    return 0;
}

void trace_free(trace_data *t) {
    if (t == NULL) return;
    free(t->ids);
    memset(t, 0, sizeof *t);
}

char (*trace_keys(const trace_data *t, char *err, size_t errlen))[TRACE_KEY_LEN] {
    size_t nkeys = (size_t)t->max_id + 1;
    char(*keys)[TRACE_KEY_LEN] = malloc(nkeys * TRACE_KEY_LEN);
    if (keys == NULL) {
        set_err(err, errlen, "out of memory for the keys of ids up to %" PRIu32 " (%zu bytes)",
                t->max_id, nkeys * TRACE_KEY_LEN);
        return NULL;
    }
    for (size_t k = 0; k < nkeys; k++) {
        uint64_t id = k;
        memcpy(keys[k], "key:", 4);
        for (int d = TRACE_KEY_LEN - 1; d >= 4; d--) {
            keys[k][d] = (char)('0' + id % 10);
            id /= 10;
        }
    }
    return keys;
}
