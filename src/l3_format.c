/*
 * l3_format.c -- the layout of what tiercache keeps in Redis (l3_format.h): the value header,
 * the reserved keys, the fleet epoch key's text and the clear records. Pure functions of bytes,
 * each bounded by its input.
 */
#include <endian.h>
#include <stdio.h>
#include <string.h>

#include "l3_format.h"

static const unsigned char tc__l3_magic[4] = {0xfe, 0x54, 0x43, 0x01};

static void put_u64le(unsigned char *p, uint64_t v) {
    v = htole64(v);
    memcpy(p, &v, 8);
}

static uint64_t get_u64le(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return le64toh(v);
}

void tc__l3_hdr_put(unsigned char out[TC__L3_HDR_LEN], uint64_t epoch) {
    memcpy(out, tc__l3_magic, 4);
    out[4] = 0;
    out[5] = TC__L3_HDR_LEN;
    out[6] = out[7] = 0;
    put_u64le(out + 8, epoch);
    put_u64le(out + 16, 0);
}

int tc__l3_hdr_parse(const void *v, size_t got, size_t total, tc__l3_hdr *h) {
    const unsigned char *p = v;
    if (got > total || total < TC__L3_HDR_LEN || got < TC__L3_HDR_LEN || memcmp(p, tc__l3_magic, 4) != 0)
        return 0;
    size_t hlen = p[5];
    if (hlen < TC__L3_HDR_LEN || hlen > total) return 0;
    size_t off = hlen;
    if (p[4] & TC__L3_HDR_FLAG_TAGS) {
        /* u16 count, then per tag u16 length + bytes; what lies past the bytes at hand (a head
         * read) is only checked against the total length */
        if (off + 2 > total) return 0;
        if (off + 2 > got) {
            off = total; /* cannot see the count: trust it to fit */
        } else {
            unsigned count = (unsigned)p[off] | (unsigned)p[off + 1] << 8;
            off += 2;
            for (unsigned i = 0; i < count; i++) {
                if (off + 2 > total) return 0;
                if (off + 2 > got) {
                    off = total;
                    break;
                }
                size_t tl = (size_t)p[off] | (size_t)p[off + 1] << 8;
                off += 2 + tl;
                if (off > total) return 0;
            }
        }
    }
    h->flags = p[4];
    h->epoch = get_u64le(p + 8);
    h->soft_exp_ms = get_u64le(p + 16);
    h->payload_off = off;
    return 1;
}

int tc__l3_key_reserved(const void *key, size_t len) {
    return len >= TC__L3_RESERVED_LEN && memcmp(key, TC__L3_RESERVED, TC__L3_RESERVED_LEN) == 0;
}

/* ------------------------------------------------------------------------ */
/* The fleet epoch key                                                      */
/* ------------------------------------------------------------------------ */

int tc__l3_runid_ok(const char *s, size_t len) {
    if (len == 0 || len > TC__L3_RUNID_MAX) return 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))) return 0;
    }
    return 1;
}

size_t tc__l3_epoch_text(char *out, const char *run_id, uint64_t epoch) {
    int n = snprintf(out, TC__L3_RUNID_MAX + 18, "%s:%016llx", run_id, (unsigned long long)epoch);
    return n > 0 ? (size_t)n : 0;
}

/* 16 lower-case hex digits -> *v; 0 when s is not exactly that. */
static int hex16(const char *s, uint64_t *v) {
    uint64_t x = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        unsigned d;
        if (c >= '0' && c <= '9') d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') d = (unsigned)(c - 'a' + 10);
        else return 0;
        x = x << 4 | d;
    }
    *v = x;
    return 1;
}

int tc__l3_epoch_parse(const char *v, size_t len, const char *run_id, uint64_t *epoch) {
    size_t rl = strlen(run_id);
    if (len != rl + 17 || memcmp(v, run_id, rl) != 0 || v[rl] != ':') return 0;
    uint64_t e;
    if (!hex16(v + rl + 1, &e) || e == 0) return 0;
    *epoch = e;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* Clear records                                                            */
/* ------------------------------------------------------------------------ */

void tc__l3_clear_head(char out[TC__L3_CLEAR_HEAD], uint64_t host, uint64_t seq) {
    char tmp[TC__L3_CLEAR_HEAD + 1];
    snprintf(tmp, sizeof tmp, "%016llx:%016llx:", (unsigned long long)host, (unsigned long long)seq);
    memcpy(out, tmp, TC__L3_CLEAR_HEAD);
}

int tc__l3_clear_parse(const char *rec, size_t len, uint64_t *host, const char **prefix, size_t *plen) {
    uint64_t seq;
    if (len < TC__L3_CLEAR_HEAD || rec[16] != ':' || rec[33] != ':' || !hex16(rec, host) || !hex16(rec + 17, &seq))
        return 0;
    *prefix = rec + TC__L3_CLEAR_HEAD;
    *plen = len - TC__L3_CLEAR_HEAD;
    return 1;
}
