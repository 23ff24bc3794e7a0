/*
 * duration.h -- internal side of the duration and size parsers (duration.c).
 *
 * The public tc_parse_duration() and tc_parse_size() prefix their message with
 * `invalid duration "TEXT": `. The configuration code reports the same failures under the
 * name of an environment variable instead, so the parsers are also available here in a form
 * that writes only the reason ("unknown unit "x" (use ...)").
 */
#ifndef TC_DURATION_H
#define TC_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The hint that ends every message about a malformed duration. */
#define TC__DURATION_HINT "(use ns, us, ms, s, m, h, d, or a bare integer of milliseconds)"
/* The hint that ends every message about a malformed size. */
#define TC__SIZE_HINT \
    "(use a whole number of bytes, optionally followed by k, kb, m, mb, g, gb, KiB, MiB or GiB)"

/* As tc_parse_duration(), but on failure writes only the reason into why (may be NULL) and
 * returns TC_EINVAL. Work is linear in strlen(s). */
int tc__duration_parse(const char *s, uint64_t *ms, char *why, size_t whylen);

/* As tc_parse_size(), with the reason only. */
int tc__size_parse(const char *s, uint64_t *bytes, char *why, size_t whylen);

/* Writes ms as the shortest exact duration text ("1d", "90s", "1500ms", "0"). Returns buf. */
char *tc__format_duration(char *buf, size_t size, uint64_t ms);

#endif /* TC_DURATION_H */
