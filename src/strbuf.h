/*
 * strbuf.h -- a small growable string buffer for building documents (JSON, Prometheus text,
 * configuration dumps).
 *
 * Appends never fail loudly: the first allocation failure sets a sticky flag, every later
 * append does nothing, and tc__sb_finish() reports TC_ENOMEM. A renderer can therefore append
 * a whole document without checking each call and look at the result once at the end.
 * The text is always NUL-terminated once anything was appended.
 *
 * Not thread-safe: a buffer belongs to one thread at a time.
 */
#ifndef TC_STRBUF_H
#define TC_STRBUF_H

#include <stddef.h>

typedef struct tc__strbuf {
    char *data; /* NUL-terminated text, or NULL before the first append */
    size_t len; /* bytes of text, without the NUL */
    size_t cap; /* bytes allocated */
    int oom;    /* 1 once an allocation failed: the buffer is frozen */
} tc__strbuf;

#define TC__STRBUF_INIT {NULL, 0, 0, 0}

/* The allocator every buffer grows with: realloc() unless a test swapped in one that fails, to
 * inject out-of-memory. Tests only; not synchronised (set it while no buffer is in use). */
extern void *(*tc__sb_realloc)(void *p, size_t n);

void tc__sb_init(tc__strbuf *sb);
/* Frees the text. The buffer can be used again afterwards (it is re-initialised). */
void tc__sb_free(tc__strbuf *sb);

/* Makes room for n more bytes (plus the NUL). 0, or TC_ENOMEM (and the buffer is frozen). */
int tc__sb_reserve(tc__strbuf *sb, size_t n);

/* Appends n bytes / a C string / one byte / printf-formatted text. Each returns 0 or TC_ENOMEM;
 * after a failure the buffer ignores every append (see above). */
int tc__sb_append(tc__strbuf *sb, const void *s, size_t n);
int tc__sb_puts(tc__strbuf *sb, const char *s);
int tc__sb_putc(tc__strbuf *sb, char c);
int tc__sb_printf(tc__strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends s (n bytes, may hold anything, NUL included) as a quoted JSON string: '"' and '\'
 * escaped, control characters as \n \t ... or \u00XX, DEL and U+2028/U+2029 as \uXXXX (safe to
 * embed in JavaScript too), valid UTF-8 passed through, and every byte that is not part of a
 * valid UTF-8 sequence (stray continuation, overlong form, surrogate, above U+10FFFF,
 * truncated) replaced by \uFFFD. The output is therefore always valid JSON and valid UTF-8.
 * Work is linear in n. Returns 0 or TC_ENOMEM. */
int tc__sb_json_str(tc__strbuf *sb, const void *s, size_t n);

/* Length of the valid UTF-8 sequence at s[0..n) (1 to 4), or 0 when s[0] does not start one
 * (ASCII bytes count as valid sequences of length 1). Used by every escaper. */
size_t tc__utf8_seq_len(const unsigned char *s, size_t n);

/* Hands the text over: returns 0 and the NUL-terminated text in *out (the caller frees it with
 * free(); an empty buffer gives an allocated ""), or TC_ENOMEM when any append failed (*out is
 * NULL). Either way the buffer is left empty and initialised. */
int tc__sb_finish(tc__strbuf *sb, char **out);

/* Quoting a value for a message (configuration, durations) without letting it break the
 * message. */
/* Writes s into buf as a double-quoted string: '"' and '\' are escaped with a backslash, other
 * bytes outside printable ASCII as \xNN, and text beyond TC__QUOTE_MAX bytes of s is cut and
 * marked "...". buf is always NUL-terminated (when size > 0). Returns buf, for use as a
 * printf argument. A buffer of TC__QUOTE_BUF bytes never truncates the quoted text. */
#define TC__QUOTE_MAX 120
#define TC__QUOTE_BUF (TC__QUOTE_MAX * 4 + 8)
char *tc__quote(char *buf, size_t size, const char *s);
/* tc__quote() of the n bytes at s (stopping early at a NUL). */
char *tc__quote_n(char *buf, size_t size, const char *s, size_t n);

#endif /* TC_STRBUF_H */
