/*
 * fuzz_l3_reply.c -- libFuzzer target for the Redis reply path: the bytes a server sends, fed
 * to the reader (l3_proto.c) in chunks the way the connection feeds them, the replies read as
 * the L3 tier reads them (l3_read.c: the MULTI ... EXEC frame, then each key's STRLEN,
 * GETRANGE and PTTL), and every error or status reply turned into message text
 * (tc__reply_text), and a hit's bytes read as the tier reads a value (the header of
 * l3_format.h, which a plain value may imitate). Oversized, truncated, lying and hostile
 * replies are the point.
 *
 * Input: a 4-byte header, then the server's bytes.
 *   byte 0  bit 0: the read fetches whole values (else the head, as a TTL lookup does);
 *           bits 1-3: keys - 1 (1..8);
 *           bit 4: the request carried a secret (the replies are marked so)
 *   byte 1  the value limit (CACHE_MAX_VALUE_BYTES) - 1: 1..256 bytes, so that values over
 *           the limit are easy to find
 *   byte 2  bit 7 set: the reply budget is (bits 0-6) * 16 + 16 bytes (the budget limit path);
 *           clear: the tier's own budget, (keys + 1) * (limit + 4096) + 1 MiB
 *   byte 3  bytes per feed (0: everything at once)
 *
 * What must hold, whatever the bytes: no crash, no leak, no undefined behaviour (built with
 * ASan and UBSan); a hit is never longer than the limit and its bytes are readable; a value
 * over the limit is never a whole read's hit; a value header found is inside the value;
 * message text is NUL-terminated within its buffer and, for a
 * reply marked secret, never holds the server's bytes past the error code.
 *
 * The seed corpus (tests/fuzz/corpus/l3_reply) holds the reproducer of issue 8, item 8 (a
 * 100 MB value under the namespace, as the fixed read and as the old GET saw it), WRONGTYPE,
 * EXECABORT, an AUTH error that echoes a password, and absurd lengths. `make test` runs this
 * for TC_FUZZ_SECONDS; docs/REDIS.md says how to run it longer.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "l3_format.h"
#include "l3_proto.h"
#include "l3_read.h"
#include "tier.h"

#define MAX_KEYS 8

static void check(int ok) {
    if (!ok) abort(); /* libFuzzer reports the input */
}

/* Text of a reply for a message: always terminated inside the buffer. For a reply marked
 * secret, one of three forms only: our copy of a known message, which is then a prefix of
 * what the server said, short and free of quotes (Redis quotes what it echoes); the server's
 * leading code word (A-Z) and our words; or our words alone. */
static void check_text(const tc__reply *r) {
    char buf[256];
    const char *t = tc__reply_text(r, buf, sizeof buf);
    check(t == buf && memchr(buf, '\0', sizeof buf) != NULL);
    if (r->secret) {
        static const char rest[] = " (the rest withheld: the request carried a secret)";
        static const char all[] = "an error (withheld: the request carried a secret)";
        size_t n = strlen(buf);
        const char *srv = r->str != NULL ? r->str : "";
        size_t sl = r->str != NULL ? r->len : 0;
        if (strcmp(buf, all) == 0) {
        } else if (n > strlen(rest) && strcmp(buf + n - strlen(rest), rest) == 0) {
            size_t w = n - strlen(rest);
            check(w <= sl && memcmp(buf, srv, w) == 0);
            for (size_t i = 0; i < w; i++) check(buf[i] >= 'A' && buf[i] <= 'Z');
        } else {
            size_t k = n >= 3 && strcmp(buf + n - 3, "...") == 0 ? n - 3 : n;
            check(k <= sl && memcmp(buf, srv, k) == 0 && k <= 130 && memchr(buf, '\'', k) == NULL);
        }
    }
    char small[5];
    tc__reply_text(r, small, sizeof small);
    check(memchr(small, '\0', sizeof small) != NULL);
}

static void check_tree(const tc__reply *r, int depth) {
    check(r != NULL && depth < 64);
    if (r->type == TC__R_ERROR || r->type == TC__R_STATUS) check_text(r);
    if (r->type == TC__R_ARRAY)
        for (size_t i = 0; i < r->elements; i++) check_tree(r->element[i], depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    const int with_value = data[0] & 1;
    const size_t nkeys = (size_t)((data[0] >> 1) & 7) + 1;
    const int secret = (data[0] >> 4) & 1;
    const size_t limit = (size_t)data[1] + 1;
    const size_t budget = (data[2] & 0x80) ? (size_t)(data[2] & 0x7f) * 16 + 16
                                           : (nkeys + 1) * (limit + 4096) + ((size_t)1 << 20);
    const size_t chunk = data[3] ? data[3] : size;
    data += 4;
    size -= 4;

    const size_t per = TC__L3_READ_CMDS, nq = nkeys * per, nrep = nq + 2;
    tc__proto_reader *rd = tc__proto_reader_new(NULL);
    if (rd == NULL) return 0;
    tc__proto_reset_replies(rd);
    tc__proto_set_max_pending(rd, budget);
    tc__proto_set_secret(rd, secret);

    /* as tc__rconn_exec: feed what arrived, take complete replies, stop at an error */
    tc__reply *rep[MAX_KEYS * 3 + 2];
    size_t got = 0, off = 0;
    int rc = 0;
    while (got < nrep && rc == 0) {
        tc__reply *r;
        int g = tc__proto_get(rd, &r);
        if (g == 1) {
            check(r != NULL);
            rep[got++] = r;
            continue;
        }
        if (g < 0) {
            check(g == TC_EPROTO || g == TC_ENOMEM);
            check(g != TC_EPROTO || tc__proto_error(rd)[0] != '\0');
            rc = g;
            break;
        }
        if (off == size) break; /* the server said no more: the caller would time out */
        size_t n = size - off < chunk ? size - off : chunk;
        rc = tc__proto_feed(rd, data + off, n);
        off += n;
    }
    for (size_t i = 0; i < got; i++) check_tree(rep[i], 0);

    if (rc == 0 && got == nrep) {
        tc__reply *const *res;
        const tc__reply *err;
        int t = tc__l3_tx_results(rep, nq, &res, &err);
        check(t == 0 || t == 1 || t == TC_EPROTO);
        if (t == 1) check(err != NULL && err->type == TC__R_ERROR);
        if (t == 0) {
            for (size_t k = 0; k < nkeys; k++) {
                tc__l3_value v;
                int vr = tc__l3_read_value(res + k * per, limit, with_value, &v);
                check(vr == 0 || vr == TC_EPROTO);
                if (vr != 0) continue;
                switch (v.kind) {
                case TC__L3_HIT: {
                    check(v.len <= limit && v.len <= v.total && v.data != NULL);
                    check(with_value ? v.len == v.total : v.len == (v.total < limit ? v.total : limit));
                    check(v.ttl_ms > 0 || v.ttl_ms == TC_TTL_NONE);
                    tc__l3_hdr h;
                    if (tc__l3_hdr_parse(v.data, v.len, v.total, &h))
                        check(h.payload_off >= TC__L3_HDR_LEN && h.payload_off <= v.total);
                    {
                        /* deliver it as the tier does: into a small buffer, else whole */
                        char small[8];
                        tc__sink s = {.buf = small, .cap = sizeof small, .want_whole = 1};
                        if (tc__sink_put(&s, v.data, v.len) == 0) {
                            check(s.len == v.len);
                            const void *d = tc__sink_data(&s);
                            check(d != NULL && memcmp(d, v.data, v.len) == 0);
                        }
                        free(s.heap);
                    }
                    break;
                }
                case TC__L3_OVERSIZED:
                    check(with_value && v.size > 0 && (unsigned long long)v.size > limit);
                    break;
                case TC__L3_ERRREPLY: check(v.err != NULL && v.err->type == TC__R_ERROR); break;
                case TC__L3_ABSENT:
                case TC__L3_WRONGTYPE: break;
                default: check(0);
                }
            }
        }
    }
    tc__proto_reader_free(rd);
    return 0;
}
