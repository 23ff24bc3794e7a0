/*
 * l3_proto.h -- the Redis wire protocol (RESP2) without any I/O: bytes in, replies out.
 *
 * The reader wraps hiredis's reader (redisReaderFeed / redisReaderGetReply) with reply-object
 * functions of our own that build replies in an arena owned by the reader, so a request's
 * replies cost no malloc once the arena has grown to the working size, and they all die
 * together when the next request resets the arena. The arena also lets us refuse hostile
 * input that hiredis 0.14 would accept: arrays with absurd element counts and replies that
 * grow past a byte limit are protocol errors, not giant allocations.
 *
 * Commands are formatted into a reusable output buffer -- the same bytes as hiredis's
 * redisFormatCommandArgv, without its allocation per command -- so a pipeline of several
 * commands goes out in one write.
 *
 * Nothing here is thread-safe: a reader and a command buffer belong to one connection, and a
 * connection is used by one thread at a time.
 */
#ifndef TC_L3_PROTO_H
#define TC_L3_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "tiercache.h"

/* Reply types: the same numbers as hiredis's REDIS_REPLY_*. */
enum {
    TC__R_STRING = 1,
    TC__R_ARRAY = 2,
    TC__R_INTEGER = 3,
    TC__R_NIL = 4,
    TC__R_STATUS = 5,
    TC__R_ERROR = 6
};

/* One reply. Lives in the reader's arena: valid until the next tc__proto_reset_replies()
 * or tc__proto_reader_free(). str is NUL-terminated (len excludes the NUL) for strings,
 * statuses and errors; element[] has elements entries for arrays (a nil array is TC__R_NIL).
 * secret is 1 when the reply answers a request that carried a secret (see tc__reply_text). */
typedef struct tc__reply {
    int type;
    int secret;
    long long integer;
    size_t len;
    char *str;
    size_t elements;
    struct tc__reply **element;
} tc__reply;

typedef struct tc__proto_reader tc__proto_reader;

/* Limits a reader enforces; 0 takes the default. */
typedef struct tc__proto_limits {
    size_t max_elements; /* elements of one array (default 1M) */
    size_t max_pending;  /* bytes buffered or held by the replies of one request (default 1 GiB) */
} tc__proto_limits;

/* Creates a reader. Returns NULL on out-of-memory. */
tc__proto_reader *tc__proto_reader_new(const tc__proto_limits *lim);

/* Frees the reader and every reply it returned. NULL does nothing. */
void tc__proto_reader_free(tc__proto_reader *r);

/* Forgets every reply returned so far (their memory is reused) and the byte count that
 * max_pending bounds. Buffered unparsed bytes are kept. O(number of arena chunks). */
void tc__proto_reset_replies(tc__proto_reader *r);

/* Sets max_pending for the next request (0: back to the limit given at creation). */
void tc__proto_set_max_pending(tc__proto_reader *r, size_t max_pending);

/* Marks every reply parsed from now on (until the next call) as the answer to a request that
 * carried a secret -- AUTH's password -- or not. The connection sets it from the request's
 * command buffer before each request (tc__cmdbuf.secret). */
void tc__proto_set_secret(tc__proto_reader *r, int secret);

/* Drops buffered bytes and any error: the reader is as new (the arena is kept). Used when a
 * connection is replaced. Returns 0 or TC_ENOMEM. */
int tc__proto_reader_reset(tc__proto_reader *r);

/* Appends bytes received from the server. Returns 0, TC_ENOMEM, or TC_EPROTO when the
 * reader is in error or the bytes would exceed max_pending. */
int tc__proto_feed(tc__proto_reader *r, const void *buf, size_t len);

/* Parses the next complete reply. Returns 1 and *out when one is complete, 0 when more bytes
 * are needed, TC_EPROTO on malformed input or a limit exceeded, TC_ENOMEM. After an error
 * the reader stays in error until tc__proto_reader_reset(); tc__proto_error() says why.
 * Work is bounded by the bytes buffered. */
int tc__proto_get(tc__proto_reader *r, tc__reply **out);

/* A description of the reader's last error ("" when none); valid until the next reset. */
const char *tc__proto_error(const tc__proto_reader *r);

/* Bytes fed but not yet consumed by a complete reply. */
size_t tc__proto_buffered(const tc__proto_reader *r);

/* ------------------------------------------------------------------------ */
/* Command buffer                                                           */
/* ------------------------------------------------------------------------ */

/* A growable byte buffer holding one or more formatted commands. Zero-initialise it; free
 * with tc__cmdbuf_free(). */
typedef struct tc__cmdbuf {
    char *data;
    size_t len, cap;
    size_t ncmds; /* commands appended since the last clear */
    int secret;   /* 1: holds a secret (AUTH): every copy is wiped before it is freed, and the
                   * replies to it are marked secret (tc__reply_text) */
} tc__cmdbuf;

/* Empties the buffer, keeping its memory (up to keep bytes; a larger buffer is freed so one
 * huge value does not pin memory for the life of a connection). */
void tc__cmdbuf_clear(tc__cmdbuf *b, size_t keep);
void tc__cmdbuf_free(tc__cmdbuf *b);

/* Appends one command given as argc (>= 1) binary-safe arguments. Returns 0, TC_EINVAL or
 * TC_ENOMEM. */
int tc__cmdbuf_argv(tc__cmdbuf *b, int argc, const char *const *argv, const size_t *lens);

/* The same, with the argument at index pi sent as pre[0..prelen-1] followed by argv[pi]: a
 * value and the header in front of it go out without being copied together first. */
int tc__cmdbuf_argv_pre(tc__cmdbuf *b, int argc, const char *const *argv, const size_t *lens, int pi,
                        const void *pre, size_t prelen);

/* Convenience for up to 6 arguments passed as (ptr, len) pairs after argc. */
int tc__cmdbuf_cmd(tc__cmdbuf *b, int argc, ...);

/* ------------------------------------------------------------------------ */
/* Helpers on replies                                                       */
/* ------------------------------------------------------------------------ */

/* The text of an error or status reply as a log or error message may show it, in buf (at
 * least 64 bytes; NUL-terminated, cut to len). This is the only way a server's words reach a
 * message, and it is what keeps secrets out of them:
 *   - a reply to a request that carried a secret (r->secret) is never shown as the server
 *     sent it: a server may echo its arguments ("ERR unknown command 'AUTH', with args
 *     beginning with: '<password>'" when AUTH is renamed; a proxy may say anything). Only
 *     our own copy of a known, argument-free message it begins with is shown (a list of
 *     Redis's AUTH, HELLO and SELECT errors: "WRONGPASS invalid username-password pair",
 *     "ERR unknown command" ...), followed by "..." when the server said more; else only
 *     its leading error code ("ERR", "NOPERM") and "(the rest withheld)";
 *   - any other reply is shown with control characters, '\' and bytes over 0x7e written as
 *     \xNN (a server cannot forge log lines or terminal escapes), at most 200 bytes.
 * Returns buf. */
const char *tc__reply_text(const tc__reply *r, char *buf, size_t len);

/* 1 when reply is an error whose text starts with the given code word ("WRONGPASS"). */
int tc__reply_is_error_code(const tc__reply *r, const char *code);

/* Finds "field:value" in an INFO reply text and copies value (up to the line end) into out,
 * NUL-terminated, at most outlen-1 bytes. Returns 1 when found, 0 otherwise. Never copies
 * anything but the one value. */
int tc__info_field(const char *info, size_t len, const char *field, char *out, size_t outlen);

/* Writes into out (at least 2*n+1 bytes) a glob pattern that matches exactly the keys that
 * start with the bytes p[0..n-1]: each of * ? [ ] \ is escaped with a backslash, then '*' is
 * appended. Returns the pattern's length. Not NUL-terminated (the pattern is binary-safe). */
size_t tc__glob_prefix(char *out, const void *p, size_t n);

#endif /* TC_L3_PROTO_H */
