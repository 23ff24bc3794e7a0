/*
 * trace.h -- the benchmark trace format (.u32) and the keys a replay uses for it, shared by the
 * CLI's `bench --trace` (tools/cli.c) and the benchmarks in bench/. Not library API: it is
 * compiled into each of those programs (tools/trace.c) and never into libtiercache.
 *
 * A trace is a file of 4-byte little-endian key ids, one per request and nothing else (as
 * /work/shared/bench/gentrace.c and the peers' tools write it). Id k stands for the 16-byte key
 * "key:" + k in 12 zero-padded decimal digits, the key every peer replays for it.
 */
#ifndef TC_TOOLS_TRACE_H
#define TC_TOOLS_TRACE_H

#include <stddef.h>
#include <stdint.h>

#define TRACE_KEY_LEN 16 /* bytes of a trace key, no terminating NUL */

typedef struct trace_data {
    uint32_t *ids;   /* ids[0..n), in request order; owned, freed by trace_free */
    size_t n;        /* requests read, >= 1 */
    uint32_t max_id; /* the largest id in ids */
} trace_data;

/* Reads the first max_ids ids of the trace at path (0: all of them) into *t. Returns 0, or -1
 * with a message in err (may be NULL) naming the file and what was wrong with it: cannot be
 * opened, not a regular file, empty or not a multiple of 4 bytes, short read, out of memory.
 * On error *t is left empty. Reads the file once; holds 4 bytes per id read. */
int trace_load(const char *path, uint64_t max_ids, trace_data *t, char *err, size_t errlen);

/* Frees what trace_load allocated and empties *t. NULL or an empty trace does nothing. */
void trace_free(trace_data *t);

/* The key of every id from 0 to t->max_id, indexed by id (TRACE_KEY_LEN bytes each, not
 * NUL-terminated). Returns a malloc'd array the caller frees, or NULL with a message in err
 * when it cannot be allocated. Work and memory: 16 bytes per id up to the largest. */
char (*trace_keys(const trace_data *t, char *err, size_t errlen))[TRACE_KEY_LEN];

#endif /* TC_TOOLS_TRACE_H */
