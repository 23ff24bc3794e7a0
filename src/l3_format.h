/*
 * l3_format.h -- how tiercache lays out what it keeps in Redis (docs/COHERENCE.md section 3),
 * with no I/O: the header in front of every value it writes, the reserved keys under the
 * namespace (fleet epoch, clear records, canaries), and the text of the fleet epoch key and of
 * a clear record.
 *
 * The value header (all integers little-endian):
 *
 *    0  magic      FE 54 43 01      ("\xfeTC" + format 1)
 *    4  flags      u8   bit 0 negative entry, bit 1 tags follow, bit 2 grace set
 *    5  hlen       u8   header length, >= 24 (a later format may append fields)
 *    6  reserved   u16  0
 *    8  epoch      u64  the fleet epoch the value was written under
 *   16  soft_exp   u64  unix ms, logical expiry for fail-safe (0: none)
 *   24  [tags]     when flags bit 1: u16 count, then per tag u16 length and its bytes
 *    .  payload
 *
 * A value is ours only when it is at least 24 bytes long, begins with the magic, and its hlen
 * and tag block fit inside it; anything else is a plain value some other client wrote, and is
 * returned as it is.
 *
 * Reserved keys: every key whose bytes after the namespace begin with TC__L3_RESERVED
 * ("\xff__tiercache__:") belongs to tiercache itself. The tier refuses to write such a key for
 * the application and a clear never removes them.
 */
#ifndef TC_L3_FORMAT_H
#define TC_L3_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define TC__L3_HDR_LEN 24
#define TC__L3_HDR_FLAG_NEGATIVE 0x01u
#define TC__L3_HDR_FLAG_TAGS 0x02u
#define TC__L3_HDR_FLAG_GRACE 0x04u

/* The bytes a read fetches when it needs only the header (a TTL lookup): the fixed header and
 * a tag block of moderate size. */
#define TC__L3_HEAD_READ 256

/* What a header says. */
typedef struct tc__l3_hdr {
    unsigned flags;
    uint64_t epoch;
    uint64_t soft_exp_ms;
    size_t payload_off; /* where the payload starts */
} tc__l3_hdr;

/* Writes the 24-byte header of a value written under epoch (no flags, no tags, no soft
 * expiry) into out. */
void tc__l3_hdr_put(unsigned char out[TC__L3_HDR_LEN], uint64_t epoch);

/* Reads the header of a value of total length total, of which the first got bytes are in v
 * (got == total for a whole value; less for a head read). Returns 1 and *h when the value is
 * ours, 0 when it is plain. When got < total, a tag block that runs past the bytes at hand is
 * taken on trust as long as it fits in total. O(number of tags) up to got bytes. */
int tc__l3_hdr_parse(const void *v, size_t got, size_t total, tc__l3_hdr *h);

/* ------------------------------------------------------------------------ */
/* Reserved keys                                                            */
/* ------------------------------------------------------------------------ */

#define TC__L3_RESERVED "\xff__tiercache__:"
#define TC__L3_RESERVED_LEN (sizeof TC__L3_RESERVED - 1)
#define TC__L3_KEY_EPOCH TC__L3_RESERVED "epoch"          /* "<run_id>:<epoch>" */
#define TC__L3_KEY_CLEAR TC__L3_RESERVED "clear"          /* list of clear records */
#define TC__L3_KEY_CANARY TC__L3_RESERVED "canary:"       /* + the listener's nonce */
#define TC__L3_CLEAR_KEEP 64                              /* records the list keeps */

/* 1 when key (the part after the namespace) is a reserved key. */
int tc__l3_key_reserved(const void *key, size_t len);

/* ------------------------------------------------------------------------ */
/* The fleet epoch key                                                      */
/* ------------------------------------------------------------------------ */

/* A server's run_id: 40 characters [0-9a-f] (Redis); anything up to 64 of [0-9A-Za-z] is
 * accepted, so a compatible server with another format works. */
#define TC__L3_RUNID_MAX 64

/* Writes "<run_id>:<epoch as 16 hex digits>" into out (at least TC__L3_RUNID_MAX + 18 bytes),
 * NUL-terminated. Returns its length. */
size_t tc__l3_epoch_text(char *out, const char *run_id, uint64_t epoch);

/* Parses the value of the epoch key. Returns 1 and *epoch when it is "<run_id>:<16 hex>" with
 * this run_id and a non-zero epoch, 0 otherwise (another server's, or malformed). */
int tc__l3_epoch_parse(const char *v, size_t len, const char *run_id, uint64_t *epoch);

/* 1 when s (len bytes) is a plausible run_id (see TC__L3_RUNID_MAX). */
int tc__l3_runid_ok(const char *s, size_t len);

/* ------------------------------------------------------------------------ */
/* Clear records: "<host nonce>:<seq>:<prefix>"                             */
/* ------------------------------------------------------------------------ */

/* Bytes of a record before its prefix: 16 hex digits, ':', 16 hex digits, ':'. */
#define TC__L3_CLEAR_HEAD 34

/* Writes the head of a record into out (TC__L3_CLEAR_HEAD bytes, no NUL). */
void tc__l3_clear_head(char out[TC__L3_CLEAR_HEAD], uint64_t host, uint64_t seq);

/* Parses a record. Returns 1 with the host nonce and the prefix (pointing into rec), or 0 for
 * a record of another shape. */
int tc__l3_clear_parse(const char *rec, size_t len, uint64_t *host, const char **prefix, size_t *plen);

#endif /* TC_L3_FORMAT_H */
