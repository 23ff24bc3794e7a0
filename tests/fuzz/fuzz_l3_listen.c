/*
 * fuzz_l3_listen.c -- libFuzzer target for what the host's invalidation listener does with the
 * bytes its subscriber connection receives (src/l3_listen.c): the bytes are fed to the reader
 * (l3_proto.c) in chunks, as the connection feeds them, with the listener's message budget;
 * each complete message is applied to a coherence table (tc__l3_listen_message, the listener's
 * own handler without its connections); the reader's arena is rewound after each, as the
 * listener does. Lying shapes, keys outside or inside the namespace, reserved keys (the
 * canary, the clear list, the fleet epoch), errors, unknown message kinds and huge arrays are
 * the point.
 *
 * Input: a 3-byte header, then the server's bytes.
 *   byte 0  bits 0-1: the namespace ("", "tc:", "app:v1:", 200 bytes of 'n');
 *           bit 2: the lease is this listener's (else another's: it must stand down);
 *           bit 3: a canary is outstanding
 *   byte 1  bytes per feed - 1 (1..256)
 *   byte 2  the reader's budget for one message: (byte + 1) * 64 bytes, or the listener's own
 *           (32 MiB) when 255
 *
 * What must hold, whatever the bytes: no crash, no leak, no undefined behaviour (built with
 * ASan and UBSan); the handler returns 0, 2 (stand down) or 3 (lost); it never stands down
 * while the lease is its own and never goes on (0) after a message it could not read; the
 * epoch counter and the stripe words of the keys only grow; a loss sets GAP while the lease is
 * its own; the listener's lease is never taken from another owner.
 *
 * The seed corpus (tests/fuzz/corpus/l3_listen) holds an invalidation of two keys, a null
 * payload (FLUSHALL), the canary's echo, the clear list's and the epoch key's invalidations, a
 * subscribe confirmation, an unsubscribe, an error, and an array whose length lies. `make test`
 * runs this for TC_FUZZ_SECONDS; docs/REDIS.md says how to run it longer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coherence.h"
#include "l3_listen.h"
#include "l3_proto.h"
#include "util.h"

static void check(int ok) {
    if (!ok) abort(); /* libFuzzer reports the input */
}

static tc__coh *coh; /* one private table for every input: opening one per input costs more than the run */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 3) return 0;
    static char big_ns[201];
    if (big_ns[0] == 0) memset(big_ns, 'n', sizeof big_ns - 1);
    const char *const nss[4] = {"", "tc:", "app:v1:", big_ns};
    const char *ns = nss[data[0] & 3];
    const int mine = (data[0] >> 2) & 1, outstanding = (data[0] >> 3) & 1;
    const size_t chunk = (size_t)data[1] + 1;
    const size_t budget = data[2] == 255 ? (size_t)32 << 20 : ((size_t)data[2] + 1) * 64;
    data += 3;
    size -= 3;

    /* the lease is taken once, for the whole run: an input either holds its ticket or not */
    static uint32_t owner;
    if (coh == NULL) {
        if (tc__coh_open_private(&coh) != 0) return 0;
        check(tc__coh_lease_take(coh, tc__now_ms(), (uint64_t)1 << 40, &owner) == 1);
        check(tc__coh_recover(coh, owner) == 1);
    }
    const uint32_t ticket = mine ? owner : owner + 1;
    const int held = tc__coh_lease_held(coh, ticket);
    check(held == mine);

    tc__proto_reader *rd = tc__proto_reader_new(NULL);
    if (rd == NULL) return 0;
    tc__proto_reset_replies(rd);
    tc__proto_set_max_pending(rd, budget);
    size_t off = 0;
    for (;;) {
        tc__reply *m;
        int g = tc__proto_get(rd, &m);
        if (g < 0) {
            check(g == TC_EPROTO || g == TC_ENOMEM);
            break; /* the listener moves the epoch and drops the connection */
        }
        if (g == 1) {
            tc__coh_counters before, after;
            tc__coh_counters_get(coh, &before);
            uint64_t k0 = tc__coh_stamp(coh, tc__hash("k", 1)).k;
            int rc = tc__l3_listen_message(coh, ns, strlen(ns), ticket, 0x1234, outstanding, m);
            tc__proto_reset_replies(rd);
            check(rc == 0 || rc == 2 || rc == 3 || rc == TC_ENOMEM);
            if (mine) check(rc != 2); /* the lease is its own: never a reason to stand down */
            if (rc == 2) check(!tc__coh_lease_held(coh, ticket));
            if (rc == 3) check(tc__coh_gap(coh));
            tc__coh_counters_get(coh, &after);
            check(after.epoch_moves >= before.epoch_moves && after.keys_received >= before.keys_received);
            uint64_t k1 = tc__coh_stamp(coh, tc__hash("k", 1)).k;
            check(k1 == TC__STAMP_GAP || k0 == TC__STAMP_GAP || k1 >= k0);
            check(tc__coh_lease_held(coh, owner)); /* nobody else's lease is ever taken */
            if (rc != 0) break; /* the listener ends the session */
            continue;
        }
        if (off == size) break;
        size_t n = size - off < chunk ? size - off : chunk;
        if (tc__proto_feed(rd, data + off, n) != 0) break;
        off += n;
    }
    tc__proto_reader_free(rd);
    /* the next input starts with the channel healthy and the lease held for the run */
    check(tc__coh_lease_held(coh, owner));
    check(tc__coh_lease_renew(coh, owner, tc__now_ms(), (uint64_t)1 << 40) == 1);
    if (tc__coh_gap(coh)) check(tc__coh_recover(coh, owner) == 1);
    return 0;
}
