/*
 * strbuf.c -- the growable string buffer of strbuf.h, and JSON string escaping.
 *
 * The buffer doubles its capacity as it grows (amortised O(1) per appended byte) and keeps a
 * NUL after the text. An allocation failure freezes the buffer (sticky oom flag) so that a
 * renderer checks once, in tc__sb_finish(). JSON escaping validates UTF-8 as it goes
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) so that bytes from
 * anywhere -- a tier's extras, a key -- always come out as valid JSON.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strbuf.h"
#include "tiercache.h"

void *(*tc__sb_realloc)(void *p, size_t n) = realloc;

void tc__sb_init(tc__strbuf *sb) {
    sb->data = NULL;
    sb->len = 0;
    sb->cap = 0;
    sb->oom = 0;
}

void tc__sb_free(tc__strbuf *sb) {
    free(sb->data);
    tc__sb_init(sb);
}

int tc__sb_reserve(tc__strbuf *sb, size_t n) {
    if (sb->oom) return TC_ENOMEM;
    if (sb->cap != 0 && n < sb->cap - sb->len) return 0; /* len + n + NUL fit */
    if (n > SIZE_MAX / 2 - sb->len - 1) {
        sb->oom = 1;
        return TC_ENOMEM;
    }
    size_t need = sb->len + n + 1;
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need) cap *= 2;
    char *p = tc__sb_realloc(sb->data, cap);
    if (p == NULL) {
        sb->oom = 1;
        return TC_ENOMEM;
    }
    if (sb->data == NULL) p[0] = '\0';
    sb->data = p;
    sb->cap = cap;
    return 0;
}

int tc__sb_append(tc__strbuf *sb, const void *s, size_t n) {
    if (tc__sb_reserve(sb, n) != 0) return TC_ENOMEM;
    if (n) memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
    return 0;
}

int tc__sb_puts(tc__strbuf *sb, const char *s) { return tc__sb_append(sb, s, strlen(s)); }

int tc__sb_putc(tc__strbuf *sb, char c) { return tc__sb_append(sb, &c, 1); }

int tc__sb_printf(tc__strbuf *sb, const char *fmt, ...) {
    if (tc__sb_reserve(sb, 64) != 0) return TC_ENOMEM;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
    va_end(ap);
    if (n < 0) { /* only on an invalid format: keep the text as it was */
        sb->data[sb->len] = '\0';
        return TC_EINVAL;
    }
    if ((size_t)n >= sb->cap - sb->len) {
        if (tc__sb_reserve(sb, (size_t)n) != 0) {
            sb->data[sb->len] = '\0';
            return TC_ENOMEM;
        }
        va_start(ap, fmt);
        vsnprintf(sb->data + sb->len, sb->cap - sb->len, fmt, ap);
        va_end(ap);
    }
    sb->len += (size_t)n;
    return 0;
}

int tc__sb_finish(tc__strbuf *sb, char **out) {
    *out = NULL;
    if (!sb->oom && sb->data == NULL) tc__sb_reserve(sb, 0);
    if (sb->oom) {
        tc__sb_free(sb);
        return TC_ENOMEM;
    }
    *out = sb->data;
    tc__sb_init(sb);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* UTF-8 and JSON                                                           */
/* ------------------------------------------------------------------------ */

size_t tc__utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    if (c < 0xC2) return 0; /* continuation byte, or overlong 2-byte form (C0, C1) */
    if (c < 0xE0) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c < 0xF0) {
        if (n < 3 || (s[2] & 0xC0) != 0x80) return 0;
        unsigned lo = c == 0xE0 ? 0xA0 : 0x80; /* E0 80..9F would be overlong */
        unsigned hi = c == 0xED ? 0x9F : 0xBF; /* ED A0..BF would be a surrogate */
        return s[1] >= lo && s[1] <= hi ? 3 : 0;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        unsigned lo = c == 0xF0 ? 0x90 : 0x80; /* F0 80..8F would be overlong */
        unsigned hi = c == 0xF4 ? 0x8F : 0xBF; /* F4 90.. would be above U+10FFFF */
        return s[1] >= lo && s[1] <= hi ? 4 : 0;
    }
    return 0;
}

int tc__sb_json_str(tc__strbuf *sb, const void *str, size_t n) {
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = str;
    size_t run = 0; /* start of the pending run of bytes copied as they are */
    size_t i = 0;
    tc__sb_putc(sb, '"');
    while (i < n) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
            i++;
            continue;
        }
        size_t seq = c >= 0x80 ? tc__utf8_seq_len(s + i, n - i) : 1;
        /* U+2028 and U+2029 are valid JSON but end a line in JavaScript: escape them too */
        int js_sep = seq == 3 && c == 0xE2 && s[i + 1] == 0x80 && (s[i + 2] | 1) == 0xA9;
        if (c >= 0x80 && seq > 0 && !js_sep) {
            i += seq;
            continue;
        }
        tc__sb_append(sb, s + run, i - run);
        char esc[8];
        size_t elen = 2;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: {
            unsigned cp = js_sep ? (s[i + 2] == 0xA8 ? 0x2028u : 0x2029u) : c < 0x80 ? c : 0xFFFDu;
            esc[1] = 'u';
            esc[2] = hex[(cp >> 12) & 15];
            esc[3] = hex[(cp >> 8) & 15];
            esc[4] = hex[(cp >> 4) & 15];
            esc[5] = hex[cp & 15];
            elen = 6;
        }
        }
        tc__sb_append(sb, esc, elen);
        i += js_sep ? 3 : 1;
        run = i;
    }
    tc__sb_append(sb, s + run, i - run);
    return tc__sb_putc(sb, '"');
}

/* ------------------------------------------------------------------------ */
/* Quoting                                                                  */
/* ------------------------------------------------------------------------ */

/* tc__quote() of the n bytes at s (stopping early at a NUL). */
char *tc__quote_n(char *buf, size_t size, const char *s, size_t n) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0, i;
    if (size == 0) return buf;
#define TC__PUT(c)                              \
    do {                                        \
        if (o + 1 < size) buf[o++] = (char)(c); \
    } while (0)
    TC__PUT('"');
    for (i = 0; s != NULL && i < n && s[i] != '\0'; i++) {
        unsigned char c = (unsigned char)s[i];
        /* stop while the longest escape (4), "..." and the closing quote still fit */
        if (i == TC__QUOTE_MAX || o + 9 >= size) {
            TC__PUT('.');
            TC__PUT('.');
            TC__PUT('.');
            break;
        }
        if (c == '"' || c == '\\') {
            TC__PUT('\\');
            TC__PUT(c);
        } else if (c < 0x20 || c >= 0x7f) {
            TC__PUT('\\');
            TC__PUT('x');
            TC__PUT(hex[c >> 4]);
            TC__PUT(hex[c & 15]);
        } else {
            TC__PUT(c);
        }
    }
    TC__PUT('"');
#undef TC__PUT
    buf[o] = '\0';
    return buf;
}

char *tc__quote(char *buf, size_t size, const char *s) {
    return tc__quote_n(buf, size, s, SIZE_MAX);
}
