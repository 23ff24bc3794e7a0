/*
 * history.c -- the history writer, loader and checker of history.h.
 *
 * Loading interns every name and value once (one open-addressing table over a string pool)
 * and keeps the records as they came. Checking builds, from scratch each time:
 *   1. the operations: each invoke joined to its completion by (process, number), both lists
 *      sorted and merged;
 *   2. per string: the set that wrote it (values are unique) and a dense index for keys and
 *      hosts;
 *   3. three indexes of the completed writes, each sorted by (key, group, start) with the
 *      suffix minimum of the end time inside each (key, group) run: group = the process
 *      (G7), the host (G1), or one group for all (G2). A clear_prefix becomes one entry per
 *      key it covers (the keys sorted by bytes make that a range). "Is there a write of the
 *      key that started after W ended and ended before t?" is then a binary search and a
 *      lookup: O(log n) per read;
 *   4. strict mode, per key and per reading host: clusters sorted by the time they were first
 *      observable from that host, swept with the host's reads in start order, keeping for
 *      each kind of "a precedes b" witness the two largest values seen (two, so that a read's
 *      own cluster can be excluded);
 *   5. the final reads against the oracle.
 * The first violation by read start wins; its events and the overlapping faults are
 * rendered into the caller's buffer.
 *
 * The writer formats each record into its own buffer and hands it to one write(2) on a file
 * opened O_APPEND by this process alone; a short write is cut back with ftruncate.
 */
#include "history.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NONE UINT32_MAX
#define TMAX (((int64_t)1 << 62) - 1) /* the largest time a record may carry */
#define TINF ((int64_t)1 << 62)       /* "never": the end of an indeterminate write */
#define BMAX ((int64_t)1 << 61)       /* the largest bound accepted */
#define RES_NONE 4                    /* no completion record */

/* Makes room for need elements in the array arr of capacity cap; rc = 0 or -ENOMEM. */
#define RESERVE(arr, cap, need, rc)                                                       \
    do {                                                                                  \
        (rc) = 0;                                                                         \
        if ((need) > (cap)) {                                                             \
            size_t nc_ = (cap) ? (cap)*2 : 64;                                            \
            while (nc_ < (need)) nc_ *= 2;                                                \
            void *p_ = realloc((arr), nc_ * sizeof *(arr));                               \
            if (p_ == NULL)                                                               \
                (rc) = -ENOMEM;                                                           \
            else {                                                                        \
                (arr) = p_;                                                               \
                (cap) = nc_;                                                              \
            }                                                                             \
        }                                                                                 \
    } while (0)

static const char *const op_names[] = {"get", "set", "del", "clear_prefix", "clear"};
static const char *const res_names[] = {"ok", "miss", "err", "timeout", "none"};
static const char *const rule_names[] = {"none", "NOWHERE", "FUTURE", "G7", "G1", "G2", "G5", "STRICT"};

const char *tc_hist_rule_name(tc_hist_rule r) {
    return (unsigned)r < TC_HIST_RULE_COUNT ? rule_names[r] : "?";
}

int64_t tc_hist_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 1 when s[0..n) is a token: one or more bytes in 0x21..0x7e. */
static int is_token(const char *s, size_t n) {
    if (n == 0) return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) return 0;
    return 1;
}

static int is_dash(const char *s, size_t n) { return n == 1 && s[0] == '-'; }

/* qsort, which may not be given a NULL array even when it is empty. */
static void sort_(void *a, size_t n, size_t size, int (*cmp)(const void *, const void *)) {
    if (n > 1) qsort(a, n, size, cmp);
}

static void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ======================================================================================== */
/* String table: every name and value interned once                                          */

typedef struct sinfo {
    size_t off; /* in pool */
    uint32_t len, hash;
} sinfo;

typedef struct strtab {
    char *pool; /* the strings, each NUL-terminated */
    size_t len, cap;
    sinfo *info; /* by id */
    size_t n, icap;
    uint32_t *slots; /* id + 1; 0 empty; power-of-two size, at most half full */
    size_t nslots;
} strtab;

static uint32_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

static const char *st_str(const strtab *t, uint32_t id) { return t->pool + t->info[id].off; }

static int st_rehash(strtab *t, size_t nslots) {
    uint32_t *s = calloc(nslots, sizeof *s);
    if (s == NULL) return -ENOMEM;
    for (size_t id = 0; id < t->n; id++) {
        size_t i = t->info[id].hash & (nslots - 1);
        while (s[i] != 0) i = (i + 1) & (nslots - 1);
        s[i] = (uint32_t)id + 1;
    }
    free(t->slots);
    t->slots = s;
    t->nslots = nslots;
    return 0;
}

/* The id of s[0..n), added when new. Returns 0 or -ENOMEM. O(n) expected. */
static int st_intern(strtab *t, const char *s, size_t n, uint32_t *id) {
    if (t->n + 1 > t->nslots / 2) {
        int rc = st_rehash(t, t->nslots ? t->nslots * 2 : 1024);
        if (rc != 0) return rc;
    }
    uint32_t h = hash_bytes(s, n);
    size_t i = h & (t->nslots - 1);
    while (t->slots[i] != 0) {
        uint32_t c = t->slots[i] - 1;
        if (t->info[c].hash == h && t->info[c].len == n && memcmp(st_str(t, c), s, n) == 0) {
            *id = c;
            return 0;
        }
        i = (i + 1) & (t->nslots - 1);
    }
    if (t->n >= NONE - 1 || n > UINT32_MAX) return -ENOMEM;
    int rc;
    RESERVE(t->pool, t->cap, t->len + n + 1, rc);
    if (rc == 0) RESERVE(t->info, t->icap, t->n + 1, rc);
    if (rc != 0) return rc;
    memcpy(t->pool + t->len, s, n);
    t->pool[t->len + n] = '\0';
    t->info[t->n] = (sinfo){t->len, (uint32_t)n, h};
    t->len += n + 1;
    t->slots[i] = (uint32_t)t->n + 1;
    *id = (uint32_t)t->n++;
    return 0;
}

static void st_free(strtab *t) {
    free(t->pool);
    free(t->info);
    free(t->slots);
}

/* ======================================================================================== */
/* Records                                                                                    */

typedef struct rec_i { /* invoke */
    int64_t t;
    uint64_t seq;
    uint32_t proc, host, key, arg; /* key, arg: NONE for "-" */
    uint32_t file, line;
    uint8_t op;
} rec_i;

typedef struct rec_c { /* completion */
    int64_t t;
    uint64_t seq;
    uint32_t proc, value, file, line;
    uint8_t res;
} rec_c;

typedef struct rec_f { /* fault */
    int64_t t0, t1;
    uint32_t kind, detail;
} rec_f;

typedef struct rec_r { /* final read */
    uint32_t host, proc, key, value, file, line;
} rec_r;

typedef struct rec_o { /* oracle */
    uint32_t key, value, file, line;
} rec_o;

struct tc_hist {
    strtab st;
    rec_i *inv;
    size_t ninv, cinv;
    rec_c *cmp;
    size_t ncmp, ccmp;
    rec_f *flt;
    size_t nflt, cflt;
    rec_r *fin;
    size_t nfin, cfin;
    rec_o *orc;
    size_t norc, corc;
    char **files; /* files[0]: lines added one by one */
    size_t nfiles, cfiles;
    uint32_t added_lines;
    uint64_t torn;
};

int tc_hist_new(tc_hist **out) {
    *out = NULL;
    tc_hist *h = calloc(1, sizeof *h);
    if (h == NULL) return -ENOMEM;
    int rc;
    RESERVE(h->files, h->cfiles, 1, rc);
    if (rc != 0 || (h->files[0] = strdup("")) == NULL) {
        free(h->files);
        free(h);
        return -ENOMEM;
    }
    h->nfiles = 1;
    *out = h;
    return 0;
}

void tc_hist_free(tc_hist *h) {
    if (h == NULL) return;
    st_free(&h->st);
    free(h->inv);
    free(h->cmp);
    free(h->flt);
    free(h->fin);
    free(h->orc);
    for (size_t i = 0; i < h->nfiles; i++) free(h->files[i]);
    free(h->files);
    free(h);
}

/* ======================================================================================== */
/* Parsing                                                                                    */

/* Strict unsigned decimal; 0 and *v, or -1. */
static int parse_u64(const char *s, size_t n, uint64_t *v) {
    if (n == 0 || n > 20) return -1;
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        unsigned d = (unsigned)(s[i] - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    *v = x;
    return 0;
}

static int parse_time(const char *s, size_t n, int64_t *t) {
    uint64_t v;
    if (parse_u64(s, n, &v) != 0 || v > (uint64_t)TMAX) return -1;
    *t = (int64_t)v;
    return 0;
}

typedef struct field {
    const char *s;
    size_t n;
} field;

/* Splits s[0..n) at single spaces into at most maxf fields (the last takes the rest of the
 * line). Returns the count, or -1 for an empty field (two spaces, a space at either end). */
static int split(const char *s, size_t n, field *f, int maxf) {
    int nf = 0;
    size_t i = 0;
    while (i <= n) {
        size_t b = i;
        if (nf == maxf - 1) {
            i = n;
        } else {
            while (i < n && s[i] != ' ') i++;
        }
        if (i == b) return -1;
        f[nf].s = s + b;
        f[nf].n = i - b;
        nf++;
        if (i == n) break;
        i++; /* the space */
        if (i == n) return -1;
    }
    return nf;
}

/* "path:N" for a record of a file, "line N" for one added by tc_hist_add_line. */
static const char *loc(const tc_hist *h, uint32_t file, uint32_t line, char *buf, size_t n) {
    if (file == 0)
        snprintf(buf, n, "line %u", line);
    else
        snprintf(buf, n, "%s:%u", h->files[file], line);
    return buf;
}

/* Writes "<loc>: " and the message into err. */
static void bad(const tc_hist *h, uint32_t file, uint32_t line, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static void bad(const tc_hist *h, uint32_t file, uint32_t line, char *err, size_t errlen, const char *fmt, ...) {
    if (err == NULL || errlen == 0) return;
    char lb[320];
    int n = snprintf(err, errlen, "%s: ", loc(h, file, line, lb, sizeof lb));
    if (n < 0 || (size_t)n >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Interns a token field; "-" gives NONE when dash_ok. Returns 0, -EINVAL or -ENOMEM. */
static int tok(tc_hist *h, const field *f, int dash_ok, uint32_t *id, const char *what, uint32_t file,
               uint32_t line, char *err, size_t errlen) {
    if (!is_token(f->s, f->n)) {
        bad(h, file, line, err, errlen, "%s \"%.*s\" is not a token (bytes 0x21..0x7e)", what, (int)f->n, f->s);
        return -EINVAL;
    }
    if (is_dash(f->s, f->n)) {
        if (!dash_ok) {
            bad(h, file, line, err, errlen, "%s may not be \"-\"", what);
            return -EINVAL;
        }
        *id = NONE;
        return 0;
    }
    return st_intern(&h->st, f->s, f->n, id);
}

static int name_index(const char *const *names, size_t count, const field *f) {
    for (size_t i = 0; i < count; i++)
        if (strlen(names[i]) == f->n && memcmp(names[i], f->s, f->n) == 0) return (int)i;
    return -1;
}

/* Adds the record s[0..n) (no '\n') read at file:line. Returns 0, -EINVAL or -ENOMEM. */
static int add_record(tc_hist *h, const char *s, size_t n, uint32_t file, uint32_t line, char *err,
                      size_t errlen) {
    if (n == 0 || s[0] == '#') return 0;
    if (memchr(s, '\n', n) != NULL) {
        bad(h, file, line, err, errlen, "a record holds a newline");
        return -EINVAL;
    }
    field f[9];
    int maxf = s[0] == 'F' ? 5 : 9;
    int nf = split(s, n, f, maxf);
    if (nf < 0) {
        bad(h, file, line, err, errlen, "empty field (fields are separated by one space): \"%.*s\"",
             (int)(n > 200 ? 200 : n), s);
        return -EINVAL;
    }
    static const int nfields[] = {['I'] = 8, ['C'] = 6, ['F'] = 5, ['R'] = 5, ['O'] = 3};
    unsigned char type = (unsigned char)s[0];
    if (f[0].n != 1 || type >= sizeof nfields / sizeof nfields[0] || nfields[type] == 0) {
        bad(h, file, line, err, errlen, "unknown record type \"%.*s\" (I, C, F, R or O)", (int)f[0].n, f[0].s);
        return -EINVAL;
    }
    if (nf != nfields[type]) {
        bad(h, file, line, err, errlen, "a %c record has %d fields; it needs %d", type, nf, nfields[type]);
        return -EINVAL;
    }
    int rc = 0;
    if (type == 'I') {
        rec_i r = {.file = file, .line = line};
        int op = name_index(op_names, 5, &f[4]);
        if (op < 0) {
            bad(h, file, line, err, errlen, "unknown operation \"%.*s\" (get, set, del, clear_prefix, clear)",
                 (int)f[4].n, f[4].s);
            return -EINVAL;
        }
        r.op = (uint8_t)op;
        if (parse_u64(f[2].s, f[2].n, &r.seq) != 0) {
            bad(h, file, line, err, errlen, "bad operation number \"%.*s\"", (int)f[2].n, f[2].s);
            return -EINVAL;
        }
        if (parse_time(f[7].s, f[7].n, &r.t) != 0) {
            bad(h, file, line, err, errlen, "bad time \"%.*s\" (decimal ns below 2^62)", (int)f[7].n, f[7].s);
            return -EINVAL;
        }
        if ((rc = tok(h, &f[1], 0, &r.proc, "process", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[3], 0, &r.host, "host", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[5], 1, &r.key, "key", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[6], 1, &r.arg, "argument", file, line, err, errlen)) != 0)
            return rc;
        if ((r.key == NONE) != (op == TC_HIST_OP_CLEAR)) {
            bad(h, file, line, err, errlen, "%s needs %s", op_names[op],
                 op == TC_HIST_OP_CLEAR ? "the key field \"-\"" : "a key (or prefix)");
            return -EINVAL;
        }
        if ((r.arg != NONE) != (op == TC_HIST_OP_SET)) {
            bad(h, file, line, err, errlen, "%s needs %s", op_names[op],
                 op == TC_HIST_OP_SET ? "a value" : "the argument \"-\"");
            return -EINVAL;
        }
        RESERVE(h->inv, h->cinv, h->ninv + 1, rc);
        if (rc == 0) h->inv[h->ninv++] = r;
    } else if (type == 'C') {
        rec_c r = {.file = file, .line = line};
        int res = name_index(res_names, 4, &f[3]);
        if (res < 0) {
            bad(h, file, line, err, errlen, "unknown result \"%.*s\" (ok, miss, err, timeout)", (int)f[3].n, f[3].s);
            return -EINVAL;
        }
        r.res = (uint8_t)res;
        if (parse_u64(f[2].s, f[2].n, &r.seq) != 0) {
            bad(h, file, line, err, errlen, "bad operation number \"%.*s\"", (int)f[2].n, f[2].s);
            return -EINVAL;
        }
        if (parse_time(f[5].s, f[5].n, &r.t) != 0) {
            bad(h, file, line, err, errlen, "bad time \"%.*s\" (decimal ns below 2^62)", (int)f[5].n, f[5].s);
            return -EINVAL;
        }
        if ((rc = tok(h, &f[1], 0, &r.proc, "process", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[4], 1, &r.value, "value", file, line, err, errlen)) != 0)
            return rc;
        if (r.res != TC_HIST_RES_OK && r.value != NONE) {
            bad(h, file, line, err, errlen, "a %s completion carries no value (\"-\")", res_names[res]);
            return -EINVAL;
        }
        RESERVE(h->cmp, h->ccmp, h->ncmp + 1, rc);
        if (rc == 0) h->cmp[h->ncmp++] = r;
    } else if (type == 'F') {
        rec_f r;
        if (parse_time(f[2].s, f[2].n, &r.t0) != 0 || parse_time(f[3].s, f[3].n, &r.t1) != 0 || r.t1 < r.t0) {
            bad(h, file, line, err, errlen, "bad fault interval \"%.*s %.*s\"", (int)f[2].n, f[2].s, (int)f[3].n,
                 f[3].s);
            return -EINVAL;
        }
        if ((rc = tok(h, &f[1], 0, &r.kind, "fault kind", file, line, err, errlen)) != 0) return rc;
        if ((rc = st_intern(&h->st, f[4].s, f[4].n, &r.detail)) != 0) return rc;
        RESERVE(h->flt, h->cflt, h->nflt + 1, rc);
        if (rc == 0) h->flt[h->nflt++] = r;
    } else if (type == 'R') {
        rec_r r = {.file = file, .line = line};
        if ((rc = tok(h, &f[1], 0, &r.host, "host", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[2], 0, &r.proc, "process", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[3], 0, &r.key, "key", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[4], 1, &r.value, "value", file, line, err, errlen)) != 0)
            return rc;
        RESERVE(h->fin, h->cfin, h->nfin + 1, rc);
        if (rc == 0) h->fin[h->nfin++] = r;
    } else {
        rec_o r = {.file = file, .line = line};
        if ((rc = tok(h, &f[1], 0, &r.key, "key", file, line, err, errlen)) != 0 ||
            (rc = tok(h, &f[2], 1, &r.value, "value", file, line, err, errlen)) != 0)
            return rc;
        RESERVE(h->orc, h->corc, h->norc + 1, rc);
        if (rc == 0) h->orc[h->norc++] = r;
    }
    if (rc != 0) bad(h, file, line, err, errlen, "out of memory");
    return rc;
}

int tc_hist_add_line(tc_hist *h, const char *line, size_t len, char *err, size_t errlen) {
    if (len > 0 && line[len - 1] == '\n') len--;
    int rc = add_record(h, line, len, 0, h->added_lines + 1, err, errlen);
    if (rc == 0) h->added_lines++;
    return rc;
}

int tc_hist_add_text(tc_hist *h, const char *text, char *err, size_t errlen) {
    while (*text != '\0') {
        const char *nl = strchr(text, '\n');
        size_t n = nl ? (size_t)(nl - text) : strlen(text);
        int rc = tc_hist_add_line(h, text, n, err, errlen);
        if (rc != 0) return rc;
        text += n + (nl != NULL);
    }
    return 0;
}

int tc_hist_load_file(tc_hist *h, const char *path, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        errf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    struct stat sb;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    size_t want = fstat(fd, &sb) == 0 && sb.st_size > 0 ? (size_t)sb.st_size + 1 : 65536;
    RESERVE(buf, cap, want, rc);
    while (rc == 0) {
        if (len == cap) RESERVE(buf, cap, len + 65536, rc);
        if (rc != 0) break;
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            rc = -errno;
            errf(err, errlen, "%s: %s", path, strerror(errno));
            break;
        }
        if (n == 0) break;
        len += (size_t)n;
    }
    close(fd);
    if (rc == 0) RESERVE(h->files, h->cfiles, h->nfiles + 1, rc);
    if (rc == 0 && (h->files[h->nfiles] = strdup(path)) == NULL) rc = -ENOMEM;
    if (rc == -ENOMEM) errf(err, errlen, "%s: out of memory", path);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    uint32_t file = (uint32_t)h->nfiles++;
    size_t pos = 0;
    uint32_t line = 0;
    while (pos < len) {
        char *nl = memchr(buf + pos, '\n', len - pos);
        line++;
        if (nl == NULL) { /* torn by a kill in the middle of its write(2): absent */
            h->torn++;
            break;
        }
        rc = add_record(h, buf + pos, (size_t)(nl - (buf + pos)), file, line, err, errlen);
        if (rc != 0) break;
        pos = (size_t)(nl - buf) + 1;
    }
    free(buf);
    return rc;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int tc_hist_load_dir(tc_hist *h, const char *dir, char *err, size_t errlen) {
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        errf(err, errlen, "%s: %s", dir, strerror(e));
        return -e;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".hist") != 0 || de->d_name[0] == '.') continue;
        char *p = malloc(strlen(dir) + l + 2);
        if (p == NULL) {
            rc = -ENOMEM;
            break;
        }
        sprintf(p, "%s/%s", dir, de->d_name);
        struct stat sb;
        if (stat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) {
            free(p);
            continue;
        }
        RESERVE(names, cap, n + 1, rc);
        if (rc != 0) {
            free(p);
            break;
        }
        names[n++] = p;
    }
    closedir(d);
    if (rc != 0) errf(err, errlen, "%s: out of memory", dir);
    sort_(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) rc = tc_hist_load_file(h, names[i], err, errlen);
        free(names[i]);
    }
    free(names);
    return rc;
}

/* ======================================================================================== */
/* Checking: the operations                                                                   */

typedef struct hop {
    int64_t start;
    int64_t end;  /* completion time; TINF for a write that is not ok-completed, or no completion */
    int64_t done; /* the completion's time, -1 without one */
    uint64_t seq;
    uint32_t proc, host, key, arg, rval; /* arg: set's value; rval: the value a get read */
    uint32_t cfile, cline;               /* the completion's source */
    uint8_t op, res;
} hop;

typedef struct went { /* one completed write of one key, in one of three indexes */
    int64_t start;
    int64_t smend; /* the least end among this entry and the later ones of its (key, group) */
    uint32_t key, group, op, smop;
} went;

typedef struct verdict {
    int rule;
    int src;           /* 0 a get (r = op), 1 a final read (r = fin index), 2 the oracle (r = orc index) */
    int64_t t;         /* the read's start; INT64_MAX for final reads and the oracle */
    uint64_t order;    /* ties: the order of recording */
    uint32_t r;
    uint32_t w, x, y;  /* the read's write, the newer write, the op that observed it (NONE) */
    uint32_t ax, by;   /* strict: op of a that precedes op of b (NONE) */
    int64_t delta, delta2;
} verdict;

typedef struct ck {
    tc_hist *h;
    int64_t B;
    int strict;
    hop *ops;
    size_t nops;
    int64_t t0;
    uint32_t *val_op;  /* by string id: the set that wrote it, or NONE */
    uint32_t *key_ix;  /* by string id: dense key index, or NONE */
    uint32_t *host_ix; /* by string id: dense host index, or NONE */
    uint32_t nkeys, nhosts;
    went *all, *byhost, *byproc;
    size_t nw, cw;
    size_t *wseg; /* all[wseg[k] .. wseg[k+1]) are key k's writes */
    uint8_t *rflag; /* by op: 1 a default violation, 2 not an observation (nowhere, future) */
    verdict first;
    int have_first;
    uint64_t count[TC_HIST_RULE_COUNT];
    uint64_t reads, writes_ok, writes_ind;
    int64_t flo, fhi; /* the first violation's window for faults: [W.start, R.end] */
} ck;

typedef struct pkey {
    uint32_t proc;
    uint32_t idx;
    uint64_t seq;
} pkey;

static int cmp_pkey(const void *a, const void *b) {
    const pkey *x = a, *y = b;
    if (x->proc != y->proc) return x->proc < y->proc ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static int is_write(int op) { return op != TC_HIST_OP_GET; }

/* Joins invokes and completions into c->ops (in invoke order). Returns 0, -EINVAL with the
 * reason in msg, or -ENOMEM. O(n log n). */
static int build_ops(ck *c, char *msg, size_t msglen) {
    tc_hist *h = c->h;
    if (h->ninv >= NONE || h->ncmp >= NONE) {
        errf(msg, msglen, "more than 2^32 - 2 operations");
        return -EINVAL;
    }
    c->nops = h->ninv;
    c->ops = calloc(h->ninv ? h->ninv : 1, sizeof *c->ops);
    pkey *ki = malloc((h->ninv ? h->ninv : 1) * sizeof *ki);
    pkey *kc = malloc((h->ncmp ? h->ncmp : 1) * sizeof *kc);
    int rc = 0;
    if (c->ops == NULL || ki == NULL || kc == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    c->t0 = h->ninv ? TINF : 0;
    for (size_t i = 0; i < h->ninv; i++) {
        const rec_i *r = &h->inv[i];
        hop *o = &c->ops[i];
        o->start = r->t;
        o->end = TINF;
        o->done = -1;
        o->seq = r->seq;
        o->proc = r->proc;
        o->host = r->host;
        o->key = r->key;
        o->arg = r->arg;
        o->rval = NONE;
        o->op = r->op;
        o->res = RES_NONE;
        if (r->t < c->t0) c->t0 = r->t;
        ki[i] = (pkey){r->proc, (uint32_t)i, r->seq};
    }
    for (size_t i = 0; i < h->ncmp; i++) kc[i] = (pkey){h->cmp[i].proc, (uint32_t)i, h->cmp[i].seq};
    sort_(ki, h->ninv, sizeof *ki, cmp_pkey);
    sort_(kc, h->ncmp, sizeof *kc, cmp_pkey);
    for (size_t i = 1; i < h->ninv; i++) {
        if (ki[i].proc == ki[i - 1].proc && ki[i].seq == ki[i - 1].seq) {
            const rec_i *a = &h->inv[ki[i - 1].idx], *b = &h->inv[ki[i].idx];
            char l1[320], l2[320];
            errf(msg, msglen, "operation %s #%llu invoked twice (%s and %s)", st_str(&h->st, a->proc),
                 (unsigned long long)a->seq, loc(h, a->file, a->line, l1, sizeof l1),
                 loc(h, b->file, b->line, l2, sizeof l2));
            rc = -EINVAL;
            goto out;
        }
    }
    size_t j = 0;
    for (size_t i = 0; i < h->ncmp; i++) {
        const rec_c *cr = &h->cmp[kc[i].idx];
        char l1[320], l2[320];
        while (j < h->ninv && (ki[j].proc < kc[i].proc || (ki[j].proc == kc[i].proc && ki[j].seq < kc[i].seq)))
            j++;
        if (j == h->ninv || ki[j].proc != kc[i].proc || ki[j].seq != kc[i].seq) {
            errf(msg, msglen, "%s: completion of %s #%llu without its invoke", loc(h, cr->file, cr->line, l1, sizeof l1),
                 st_str(&h->st, cr->proc), (unsigned long long)cr->seq);
            rc = -EINVAL;
            goto out;
        }
        hop *o = &c->ops[ki[j].idx];
        if (o->res != RES_NONE) {
            errf(msg, msglen, "%s: operation %s #%llu completed twice (also at %s)",
                 loc(h, cr->file, cr->line, l1, sizeof l1), st_str(&h->st, cr->proc), (unsigned long long)cr->seq,
                 loc(h, o->cfile, o->cline, l2, sizeof l2));
            rc = -EINVAL;
            goto out;
        }
        const char *bad = NULL;
        if (cr->t < o->start)
            bad = "its completion is earlier than its invoke";
        else if (cr->res == TC_HIST_RES_MISS && o->op != TC_HIST_OP_GET)
            bad = "only a get can miss";
        else if (cr->res == TC_HIST_RES_OK && o->op == TC_HIST_OP_GET && cr->value == NONE)
            bad = "a get that hit needs the value read (a miss is \"miss -\")";
        else if (cr->res == TC_HIST_RES_OK && o->op != TC_HIST_OP_GET && cr->value != NONE)
            bad = "a write's completion carries no value";
        if (bad != NULL) {
            errf(msg, msglen, "%s: %s #%llu (%s): %s", loc(h, cr->file, cr->line, l1, sizeof l1),
                 st_str(&h->st, cr->proc), (unsigned long long)cr->seq, op_names[o->op], bad);
            rc = -EINVAL;
            goto out;
        }
        o->res = cr->res;
        o->done = cr->t;
        o->cfile = cr->file;
        o->cline = cr->line;
        o->rval = cr->value;
        if (cr->res == TC_HIST_RES_OK) o->end = cr->t; /* ok reads and ok writes */
    }
out:
    free(ki);
    free(kc);
    return rc;
}

/* ======================================================================================== */
/* Checking: indexes                                                                          */

typedef struct skey {
    const char *s;
    size_t n;
    uint32_t ix;
} skey;

static int cmp_bytes(const char *a, size_t an, const char *b, size_t bn) {
    int d = memcmp(a, b, an < bn ? an : bn);
    if (d != 0) return d;
    return an < bn ? -1 : an > bn;
}

static int cmp_skey(const void *a, const void *b) {
    const skey *x = a, *y = b;
    return cmp_bytes(x->s, x->n, y->s, y->n);
}

static int cmp_went(const void *a, const void *b) {
    const went *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

static int add_went(ck *c, uint32_t key, uint32_t op) {
    int rc;
    RESERVE(c->all, c->cw, c->nw + 1, rc);
    if (rc != 0) return rc;
    c->all[c->nw++] = (went){c->ops[op].start, 0, key, 0, op, op};
    return 0;
}

/* Fills smend/smop of a sorted index: O(n). */
static void suffix_min(went *a, size_t n, const hop *ops) {
    for (size_t i = n; i-- > 0;) {
        a[i].smend = ops[a[i].op].end;
        a[i].smop = a[i].op;
        if (i + 1 < n && a[i + 1].key == a[i].key && a[i + 1].group == a[i].group &&
            a[i + 1].smend < a[i].smend) {
            a[i].smend = a[i + 1].smend;
            a[i].smop = a[i + 1].smop;
        }
    }
}

/* The completed write of key in group, among those that started after t, with the least end:
 * 1 and *end, *op; 0 when there is none. Every index is sorted by key first, so the key's
 * entries are a[wseg[key] .. wseg[key + 1]) in each. O(log n). */
static int query(const ck *c, const went *a, uint32_t key, uint32_t group, int64_t t, int64_t *end, uint32_t *op) {
    size_t lo = c->wseg[key], hi = c->wseg[key + 1], n = hi;
    while (lo < hi) { /* first entry > (group, t) */
        size_t mid = lo + (hi - lo) / 2;
        const went *e = &a[mid];
        if (e->group < group || (e->group == group && e->start <= t))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == n || a[lo].group != group) return 0;
    *end = a[lo].smend;
    *op = a[lo].smop;
    return 1;
}

/* Builds value, key and host maps and the three write indexes. Returns 0, -EINVAL (a value
 * written twice) or -ENOMEM. O(n log n) plus one entry per key a clear covers. */
static int build_indexes(ck *c, char *msg, size_t msglen) {
    tc_hist *h = c->h;
    size_t ns = h->st.n ? h->st.n : 1;
    c->val_op = malloc(ns * sizeof *c->val_op);
    c->key_ix = malloc(ns * sizeof *c->key_ix);
    c->host_ix = malloc(ns * sizeof *c->host_ix);
    c->rflag = calloc(c->nops ? c->nops : 1, 1);
    if (c->val_op == NULL || c->key_ix == NULL || c->host_ix == NULL || c->rflag == NULL) return -ENOMEM;
    memset(c->val_op, 0xff, ns * sizeof *c->val_op);
    memset(c->key_ix, 0xff, ns * sizeof *c->key_ix);
    memset(c->host_ix, 0xff, ns * sizeof *c->host_ix);
    for (size_t i = 0; i < c->nops; i++) {
        const hop *o = &c->ops[i];
        if (c->host_ix[o->host] == NONE) c->host_ix[o->host] = c->nhosts++;
        if (o->op == TC_HIST_OP_GET || o->op == TC_HIST_OP_SET || o->op == TC_HIST_OP_DEL)
            if (c->key_ix[o->key] == NONE) c->key_ix[o->key] = c->nkeys++;
        if (o->op == TC_HIST_OP_SET) {
            if (c->val_op[o->arg] != NONE) {
                const rec_i *a = &h->inv[c->val_op[o->arg]], *b = &h->inv[i];
                char l1[320], l2[320];
                errf(msg, msglen, "value %s written twice (%s and %s): values must be unique", st_str(&h->st, o->arg),
                     loc(h, a->file, a->line, l1, sizeof l1), loc(h, b->file, b->line, l2, sizeof l2));
                return -EINVAL;
            }
            c->val_op[o->arg] = (uint32_t)i;
        }
        if (is_write(o->op)) {
            if (o->res == TC_HIST_RES_OK)
                c->writes_ok++;
            else
                c->writes_ind++;
        } else if (o->res == TC_HIST_RES_OK) {
            c->reads++;
        }
    }
    /* keys in byte order: a prefix covers a contiguous range */
    skey *sk = malloc((c->nkeys ? c->nkeys : 1) * sizeof *sk);
    if (sk == NULL) return -ENOMEM;
    for (uint32_t id = 0; id < h->st.n; id++)
        if (c->key_ix[id] != NONE) sk[c->key_ix[id]] = (skey){st_str(&h->st, id), h->st.info[id].len, c->key_ix[id]};
    sort_(sk, c->nkeys, sizeof *sk, cmp_skey);
    int rc = 0;
    for (size_t i = 0; i < c->nops && rc == 0; i++) {
        const hop *o = &c->ops[i];
        if (!is_write(o->op) || o->res != TC_HIST_RES_OK) continue;
        if (o->op == TC_HIST_OP_SET || o->op == TC_HIST_OP_DEL) {
            rc = add_went(c, c->key_ix[o->key], (uint32_t)i);
        } else if (o->op == TC_HIST_OP_CLEAR) {
            for (uint32_t k = 0; k < c->nkeys && rc == 0; k++) rc = add_went(c, k, (uint32_t)i);
        } else {
            const char *p = st_str(&h->st, o->key);
            size_t pn = h->st.info[o->key].len;
            size_t lo = 0, hi = c->nkeys;
            while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (cmp_bytes(sk[mid].s, sk[mid].n, p, pn) < 0)
                    lo = mid + 1;
                else
                    hi = mid;
            }
            for (; lo < c->nkeys && sk[lo].n >= pn && memcmp(sk[lo].s, p, pn) == 0 && rc == 0; lo++)
                rc = add_went(c, sk[lo].ix, (uint32_t)i);
        }
    }
    free(sk);
    if (rc != 0) return rc;
    size_t nw = c->nw ? c->nw : 1;
    c->byhost = malloc(nw * sizeof *c->byhost);
    c->byproc = malloc(nw * sizeof *c->byproc);
    c->wseg = calloc((size_t)c->nkeys + 1, sizeof *c->wseg);
    if (c->byhost == NULL || c->byproc == NULL || c->wseg == NULL) return -ENOMEM;
    for (size_t i = 0; i < c->nw; i++) {
        c->byhost[i] = c->all[i];
        c->byhost[i].group = c->ops[c->all[i].op].host;
        c->byproc[i] = c->all[i];
        c->byproc[i].group = c->ops[c->all[i].op].proc;
    }
    sort_(c->all, c->nw, sizeof *c->all, cmp_went);
    sort_(c->byhost, c->nw, sizeof *c->byhost, cmp_went);
    sort_(c->byproc, c->nw, sizeof *c->byproc, cmp_went);
    suffix_min(c->all, c->nw, c->ops);
    suffix_min(c->byhost, c->nw, c->ops);
    suffix_min(c->byproc, c->nw, c->ops);
    for (size_t i = 0; i < c->nw; i++) c->wseg[c->all[i].key + 1]++;
    for (uint32_t k = 0; k < c->nkeys; k++) c->wseg[k + 1] += c->wseg[k];
    return 0;
}

/* ======================================================================================== */
/* Checking: the rules                                                                        */

static void note(ck *c, const verdict *v) {
    c->count[v->rule]++;
    if (!c->have_first || v->t < c->first.t || (v->t == c->first.t && v->order < c->first.order)) {
        c->first = *v;
        c->have_first = 1;
    }
}

static verdict mkv(int rule, int src, int64_t t, uint64_t order, uint32_t r) {
    verdict v = {rule, src, t, order, r, NONE, NONE, NONE, NONE, NONE, -1, -1};
    return v;
}

/* NOWHERE, FUTURE, G7, G1, G2 for every get that hit. O(log n) per read. */
static void check_reads(ck *c) {
    for (size_t i = 0; i < c->nops; i++) {
        const hop *r = &c->ops[i];
        if (r->op != TC_HIST_OP_GET || r->res != TC_HIST_RES_OK) continue;
        verdict v = mkv(TC_HIST_RULE_NONE, 0, r->start, i, (uint32_t)i);
        uint32_t w = c->val_op[r->rval];
        v.w = w;
        if (w == NONE || c->ops[w].key != r->key) {
            v.rule = TC_HIST_RULE_NOWHERE;
        } else if (c->ops[w].start > r->end) {
            v.rule = TC_HIST_RULE_FUTURE;
        } else if (c->ops[w].end < TINF) {
            uint32_t k = c->key_ix[r->key], x;
            int64_t we = c->ops[w].end, xe;
            if (query(c, c->byproc, k, r->proc, we, &xe, &x) && xe < r->start)
                v.rule = TC_HIST_RULE_G7, v.delta = 0;
            else if (query(c, c->byhost, k, r->host, we, &xe, &x) && xe < r->start)
                v.rule = TC_HIST_RULE_G1, v.delta = 0;
            else if (query(c, c->all, k, 0, we, &xe, &x) && xe + c->B < r->start)
                v.rule = TC_HIST_RULE_G2, v.delta = c->B;
            if (v.rule != TC_HIST_RULE_NONE) v.x = v.y = x;
        }
        if (v.rule == TC_HIST_RULE_NONE) continue;
        c->rflag[i] = v.rule == TC_HIST_RULE_NOWHERE || v.rule == TC_HIST_RULE_FUTURE ? 2 : 1;
        note(c, &v);
    }
}

/* ---- strict mode ----
 *
 * A read R of cluster a (host h, start t) violates STRICT when another cluster b was
 * observed from h before t (some op y of b: y.end + Δ(y, R) < t) and some op x of a precedes
 * some op y' of b that started no later than t (x.end + Δ(x, y') < y'.start <= t): the whole
 * cycle a -> b -> a lies in R's past, so R is the read that closes it. Every cycle of two
 * clusters is found this way, at the read among its two witnesses' targets that starts last
 * (that target cannot be a write: a write starting last would need a read of its value that
 * ended before the write began, which FUTURE already rejects and which is no observation).
 *
 * Per key and per reading host, a sweep in time order over three streams: the starts of all
 * ops of the key (each raising its cluster's latest start of its kind: kind 0 its write,
 * kind 1 + h' its reads on host h'), the instants each cluster becomes observed from h, and
 * h's reads. For each kind, the two clusters with the latest start among those observed are
 * kept (two, to exclude R's own cluster); the values only grow, so two suffice. */

typedef struct sread { /* a read that is an observation, for the strict sweep */
    uint32_t key, host;
    int64_t start;
    uint32_t op;
} sread;

static int cmp_sread(const void *a, const void *b) {
    const sread *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->host != y->host) return x->host < y->host ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

typedef struct sev { /* the start of an op of a cluster */
    int64_t t;
    uint32_t c, q, op; /* cluster, kind, op */
} sev;

static int cmp_sev(const void *a, const void *b) {
    const sev *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    return x->op < y->op ? -1 : x->op > y->op;
}

typedef struct eord { /* when a cluster became observed from the host swept */
    int64_t e;
    uint32_t c;
} eord;

static int cmp_eord(const void *a, const void *b) {
    const eord *x = a, *y = b;
    if (x->e != y->e) return x->e < y->e ? -1 : 1;
    return x->c < y->c ? -1 : x->c > y->c;
}

typedef struct top2 { /* the two largest values, of distinct clusters */
    int64_t v1, v2;
    uint32_t c1, c2;
} top2;

/* Raises cluster b's value to g (values only grow). O(1). */
static void top2_raise(top2 *t, uint32_t b, int64_t g) {
    if (t->c1 == b) {
        t->v1 = g;
    } else if (t->c2 == b) {
        t->v2 = g;
        if (t->v2 > t->v1) {
            top2 s = *t;
            t->v1 = s.v2, t->c1 = s.c2, t->v2 = s.v1, t->c2 = s.c1;
        }
    } else if (g > t->v1) {
        t->v2 = t->v1, t->c2 = t->c1, t->v1 = g, t->c1 = b;
    } else if (g > t->v2) {
        t->v2 = g, t->c2 = b;
    }
}

typedef struct cl { /* the clusters of one key (scratch, grown to the largest key) */
    uint32_t *wop;      /* by cluster: its write */
    int64_t *e;         /* least end of its completed ops (TINF: none) */
    uint32_t *eop;
    int64_t *eh;        /* by cluster * H + host: the same, on that host */
    uint32_t *ehop;
    int64_t *cur;       /* by cluster * K + kind: latest start so far (-1: none), and its op */
    uint32_t *curop;
    uint8_t *elig;      /* observed from the host swept */
    eord *ord;
    size_t cap;
    sev *ev;            /* the starts of the key's ops */
    size_t evcap;
    top2 *top;          /* by kind */
} cl;

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* When cluster a was first observed from host h: E(a, h) = min(its least end on h, its least
 * end anywhere + B), with the op and the Δ; TINF when never. */
static int64_t observed(const cl *s, uint32_t H, int64_t B, uint32_t a, uint32_t h, uint32_t *op, int64_t *delta) {
    int64_t eh = s->eh[(size_t)a * H + h], e = s->e[a];
    if (eh <= e + B) {
        *op = s->ehop[(size_t)a * H + h];
        *delta = 0;
        return eh;
    }
    *op = s->eop[a];
    *delta = B;
    return min64(e + B, TINF);
}

static void cl_free(cl *s) {
    free(s->wop), free(s->e), free(s->eop), free(s->eh), free(s->ehop), free(s->cur), free(s->curop);
    free(s->elig), free(s->ord), free(s->ev), free(s->top);
}

/* Room for n clusters and nev start events. Returns 0 or -ENOMEM. */
static int cl_reserve(cl *s, size_t n, size_t nev, uint32_t H) {
    size_t K = (size_t)H + 1;
    if (n > s->cap) {
        size_t cap = s->cap ? s->cap : 64;
        while (cap < n) cap *= 2;
        free(s->wop), free(s->e), free(s->eop), free(s->eh), free(s->ehop), free(s->cur), free(s->curop);
        free(s->elig), free(s->ord);
        s->wop = malloc(cap * sizeof *s->wop);
        s->e = malloc(cap * sizeof *s->e);
        s->eop = malloc(cap * sizeof *s->eop);
        s->eh = malloc(cap * H * sizeof *s->eh);
        s->ehop = malloc(cap * H * sizeof *s->ehop);
        s->cur = malloc(cap * K * sizeof *s->cur);
        s->curop = malloc(cap * K * sizeof *s->curop);
        s->elig = malloc(cap);
        s->ord = malloc(cap * sizeof *s->ord);
        s->cap = cap;
        if (!s->wop || !s->e || !s->eop || !s->eh || !s->ehop || !s->cur || !s->curop || !s->elig || !s->ord) {
            s->cap = 0;
            return -ENOMEM;
        }
    }
    if (nev > s->evcap) {
        int rc;
        RESERVE(s->ev, s->evcap, nev, rc);
        if (rc != 0) return rc;
    }
    return 0;
}

static void cl_observe(cl *s, uint32_t H, uint32_t a, uint32_t host, int64_t end, uint32_t op) {
    size_t ah = (size_t)a * H + host;
    if (end < s->e[a]) s->e[a] = end, s->eop[a] = op;
    if (end < s->eh[ah]) s->eh[ah] = end, s->ehop[ah] = op;
}

/* STRICT for every read not already a violation. O(n·H·(H + log n)) for H hosts. */
static int check_strict(ck *c) {
    const uint32_t H = c->nhosts ? c->nhosts : 1, K = H + 1;
    const int64_t B = c->B;
    size_t nr = 0;
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].op == TC_HIST_OP_GET && c->ops[i].res == TC_HIST_RES_OK && c->rflag[i] != 2) nr++;
    sread *rd = malloc((nr ? nr : 1) * sizeof *rd);
    uint32_t *clid = malloc((c->nops ? c->nops : 1) * sizeof *clid);
    size_t *sseg = calloc((size_t)c->nkeys + 1, sizeof *sseg); /* sets by key (counting sort) */
    size_t *fill = calloc((size_t)c->nkeys + 1, sizeof *fill);
    uint32_t *sets = malloc((c->nops ? c->nops : 1) * sizeof *sets);
    size_t *rseg = calloc((size_t)c->nkeys + 1, sizeof *rseg);
    cl s = {0};
    s.top = malloc(K * sizeof *s.top);
    int rc = 0;
    if (rd == NULL || clid == NULL || sseg == NULL || fill == NULL || sets == NULL || rseg == NULL || s.top == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    nr = 0;
    for (size_t i = 0; i < c->nops; i++) {
        const hop *o = &c->ops[i];
        if (o->op == TC_HIST_OP_GET && o->res == TC_HIST_RES_OK && c->rflag[i] != 2)
            rd[nr++] = (sread){c->key_ix[o->key], c->host_ix[o->host], o->start, (uint32_t)i};
        if (o->op == TC_HIST_OP_SET) sseg[c->key_ix[o->key] + 1]++;
    }
    sort_(rd, nr, sizeof *rd, cmp_sread);
    for (size_t i = 0; i < nr; i++) rseg[rd[i].key + 1]++;
    for (uint32_t k = 0; k < c->nkeys; k++) sseg[k + 1] += sseg[k], rseg[k + 1] += rseg[k];
    memcpy(fill, sseg, ((size_t)c->nkeys + 1) * sizeof *fill);
    for (size_t i = 0; i < c->nops; i++)
        if (c->ops[i].op == TC_HIST_OP_SET) sets[fill[c->key_ix[c->ops[i].key]]++] = (uint32_t)i;
    for (uint32_t k = 0; k < c->nkeys; k++) {
        size_t r0 = rseg[k], r1 = rseg[k + 1];
        if (r0 == r1) continue; /* no reads: nothing to check */
        /* the clusters: each set of k, and each completed del or clear covering k */
        size_t nc = sseg[k + 1] - sseg[k];
        for (size_t i = c->wseg[k]; i < c->wseg[k + 1]; i++)
            if (c->ops[c->all[i].op].op != TC_HIST_OP_SET) nc++;
        if ((rc = cl_reserve(&s, nc, nc + (r1 - r0), H)) != 0) goto out;
        uint32_t n = 0;
        for (size_t i = sseg[k]; i < sseg[k + 1]; i++) s.wop[n++] = sets[i];
        for (size_t i = c->wseg[k]; i < c->wseg[k + 1]; i++)
            if (c->ops[c->all[i].op].op != TC_HIST_OP_SET) s.wop[n++] = c->all[i].op;
        size_t nev = 0;
        for (uint32_t a = 0; a < n; a++) {
            const hop *w = &c->ops[s.wop[a]];
            s.e[a] = TINF;
            s.eop[a] = NONE;
            for (uint32_t h = 0; h < H; h++) s.eh[(size_t)a * H + h] = TINF, s.ehop[(size_t)a * H + h] = NONE;
            if (w->op == TC_HIST_OP_SET) clid[s.wop[a]] = a;
            if (w->end < TINF) cl_observe(&s, H, a, c->host_ix[w->host], w->end, s.wop[a]);
            s.ev[nev++] = (sev){w->start, a, 0, s.wop[a]};
        }
        for (size_t i = r0; i < r1; i++) {
            const hop *r = &c->ops[rd[i].op];
            uint32_t a = clid[c->val_op[r->rval]];
            cl_observe(&s, H, a, rd[i].host, r->end, rd[i].op);
            s.ev[nev++] = (sev){r->start, a, 1 + rd[i].host, rd[i].op};
        }
        sort_(s.ev, nev, sizeof *s.ev, cmp_sev);
        /* per reading host */
        for (size_t i = r0; i < r1;) {
            uint32_t h = rd[i].host;
            size_t iend = i;
            while (iend < r1 && rd[iend].host == h) iend++;
            uint32_t m = 0;
            for (uint32_t b = 0; b < n; b++) {
                uint32_t op;
                int64_t d, e = observed(&s, H, B, b, h, &op, &d);
                if (e < TINF) s.ord[m++] = (eord){e, b};
                s.elig[b] = 0;
                for (uint32_t q = 0; q < K; q++) s.cur[(size_t)b * K + q] = -1;
            }
            sort_(s.ord, m, sizeof *s.ord, cmp_eord);
            for (uint32_t q = 0; q < K; q++) s.top[q] = (top2){-1, -1, NONE, NONE};
            size_t si = 0;
            uint32_t oi = 0;
            for (; i < iend; i++) {
                const hop *r = &c->ops[rd[i].op];
                for (; si < nev && s.ev[si].t <= r->start; si++) { /* ops started by now */
                    const sev *ev = &s.ev[si];
                    size_t bq = (size_t)ev->c * K + ev->q;
                    s.cur[bq] = ev->t;
                    s.curop[bq] = ev->op;
                    if (s.elig[ev->c]) top2_raise(&s.top[ev->q], ev->c, ev->t);
                }
                for (; oi < m && s.ord[oi].e < r->start; oi++) { /* clusters observed before now */
                    uint32_t b = s.ord[oi].c;
                    s.elig[b] = 1;
                    for (uint32_t q = 0; q < K; q++)
                        if (s.cur[(size_t)b * K + q] >= 0) top2_raise(&s.top[q], b, s.cur[(size_t)b * K + q]);
                }
                if (c->rflag[rd[i].op] != 0) continue;
                uint32_t a = clid[c->val_op[r->rval]];
                for (uint32_t q = 0; q < K; q++) {
                    const top2 *t = &s.top[q];
                    uint32_t b = t->c1 != a ? t->c1 : t->c2;
                    int64_t g = t->c1 != a ? t->v1 : t->v2;
                    if (b == NONE) continue;
                    uint32_t xop = NONE;
                    int64_t d2 = 0, f = q == 0 ? s.e[a] : observed(&s, H, B, a, q - 1, &xop, &d2);
                    if (!(f < g)) continue;
                    verdict v = mkv(TC_HIST_RULE_STRICT, 0, r->start, rd[i].op, rd[i].op);
                    v.w = s.wop[a];
                    v.x = s.wop[b];
                    observed(&s, H, B, b, h, &v.y, &v.delta);
                    v.ax = q == 0 ? s.eop[a] : xop;
                    v.by = s.curop[(size_t)b * K + q];
                    v.delta2 = d2;
                    c->rflag[rd[i].op] = 1;
                    note(c, &v);
                    break;
                }
            }
        }
    }
out:
    free(rd);
    free(clid);
    free(sseg);
    free(fill);
    free(sets);
    free(rseg);
    cl_free(&s);
    return rc;
}

/* G5: the oracle, then every final read. Returns 0, -EINVAL (no oracle for a final read's
 * key, or two for one key) or -ENOMEM. O(n). */
static int check_final(ck *c, char *msg, size_t msglen) {
    tc_hist *h = c->h;
    uint32_t *orc_of = malloc((h->st.n ? h->st.n : 1) * sizeof *orc_of);
    if (orc_of == NULL) return -ENOMEM;
    memset(orc_of, 0xff, (h->st.n ? h->st.n : 1) * sizeof *orc_of);
    int rc = 0;
    for (size_t i = 0; i < h->norc && rc == 0; i++) {
        const rec_o *o = &h->orc[i];
        if (orc_of[o->key] != NONE) {
            const rec_o *p = &h->orc[orc_of[o->key]];
            char l1[320], l2[320];
            errf(msg, msglen, "two oracle records for key %s (%s and %s)", st_str(&h->st, o->key),
                 loc(h, p->file, p->line, l1, sizeof l1), loc(h, o->file, o->line, l2, sizeof l2));
            rc = -EINVAL;
            break;
        }
        orc_of[o->key] = (uint32_t)i;
        if (o->value == NONE) continue;
        verdict v = mkv(TC_HIST_RULE_G5, 2, INT64_MAX, i, (uint32_t)i);
        uint32_t w = c->val_op[o->value], x;
        v.w = w;
        int64_t xe;
        if (w == NONE || c->ops[w].key != o->key ||
            (c->ops[w].end < TINF && query(c, c->all, c->key_ix[o->key], 0, c->ops[w].end, &xe, &x))) {
            if (w != NONE && c->ops[w].key == o->key) v.x = x;
            note(c, &v);
        }
    }
    for (size_t i = 0; i < h->nfin && rc == 0; i++) {
        const rec_r *f = &h->fin[i];
        uint32_t oi = orc_of[f->key];
        if (oi == NONE) {
            char l1[320];
            errf(msg, msglen, "%s: final read of key %s, which has no oracle record (O)",
                 loc(h, f->file, f->line, l1, sizeof l1), st_str(&h->st, f->key));
            rc = -EINVAL;
            break;
        }
        if (f->value == NONE || f->value == h->orc[oi].value) continue;
        verdict v = mkv(TC_HIST_RULE_G5, 1, INT64_MAX, h->norc + i, (uint32_t)i);
        v.w = c->val_op[f->value];
        note(c, &v);
    }
    free(orc_of);
    return rc;
}

/* ======================================================================================== */
/* Checking: the report                                                                       */

typedef struct rbuf {
    char *b;
    size_t cap, len;
} rbuf;

static void rb(rbuf *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rb(rbuf *r, const char *fmt, ...) {
    if (r->b == NULL || r->len + 1 >= r->cap) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(r->b + r->len, r->cap - r->len, fmt, ap);
    va_end(ap);
    if (n > 0) r->len = r->len + (size_t)n < r->cap ? r->len + (size_t)n : r->cap - 1;
}

static const char *sn(const tc_hist *h, uint32_t id) { return id == NONE ? "-" : st_str(&h->st, id); }

static void fill_event(const ck *c, uint32_t op, tc_hist_event *e) {
    memset(e, 0, sizeof *e);
    if (op == NONE) return;
    const hop *o = &c->ops[op];
    const tc_hist *h = c->h;
    e->op = op_names[o->op];
    e->proc = sn(h, o->proc);
    e->host = sn(h, o->host);
    e->seq = o->seq;
    e->key = sn(h, o->key);
    e->value = o->op == TC_HIST_OP_SET ? sn(h, o->arg) : o->rval == NONE ? NULL : sn(h, o->rval);
    e->result = res_names[o->res];
    e->start_ns = o->start;
    e->end_ns = o->done;
}

/* One line: "label  P@h #seq op key [-> value]  [start, end] result" (times since t0). */
static void put_op(rbuf *r, const ck *c, const char *label, uint32_t op) {
    if (op == NONE) return;
    const hop *o = &c->ops[op];
    const tc_hist *h = c->h;
    rb(r, "  %-13s %s@%s #%llu %s", label, sn(h, o->proc), sn(h, o->host), (unsigned long long)o->seq,
       op_names[o->op]);
    if (o->op != TC_HIST_OP_CLEAR) rb(r, " %s", sn(h, o->key));
    if (o->op == TC_HIST_OP_SET) rb(r, " %s", sn(h, o->arg));
    if (o->op == TC_HIST_OP_GET && o->res == TC_HIST_RES_OK) rb(r, " -> %s", sn(h, o->rval));
    rb(r, "  [%lld, ", (long long)(o->start - c->t0));
    if (o->done >= 0)
        rb(r, "%lld] %s\n", (long long)(o->done - c->t0), res_names[o->res]);
    else
        rb(r, "...] no completion\n");
}

static const char *rule_text(int rule) {
    switch (rule) {
    case TC_HIST_RULE_NOWHERE: return "value from nowhere: never written to this key";
    case TC_HIST_RULE_FUTURE: return "value from the future: its write began after the read ended";
    case TC_HIST_RULE_G7: return "own writes: the reading process's completed write was not seen";
    case TC_HIST_RULE_G1: return "stale read on the host of a completed newer write";
    case TC_HIST_RULE_G2: return "stale read beyond the bound B after a newer write on another host";
    case TC_HIST_RULE_G5: return "convergence: the end state disagrees with the oracle";
    case TC_HIST_RULE_STRICT: return "strict order: a read returned an older value than one already observed";
    default: return "";
    }
}

static int64_t rel(const ck *c, int64_t t) { return t - c->t0; }

static void render(ck *c, const tc_hist_opts *o, tc_hist_result *res, rbuf *r) {
    tc_hist *h = c->h;
    rb(r, "history check: %s", c->have_first ? "VIOLATION" : "passed");
    if (c->have_first) {
        rb(r, ", %llu violation(s):", (unsigned long long)res->violations);
        for (int i = 1; i < TC_HIST_RULE_COUNT; i++)
            if (c->count[i]) rb(r, " %s %llu", rule_names[i], (unsigned long long)c->count[i]);
    }
    rb(r, "\n  %llu operations, %llu reads checked, %llu writes ok, %llu indeterminate, %llu final reads, "
          "%llu torn lines; B %lld ns, strict %s\n",
       (unsigned long long)res->ops, (unsigned long long)res->reads, (unsigned long long)res->writes_ok,
       (unsigned long long)res->writes_indeterminate, (unsigned long long)res->final_reads,
       (unsigned long long)res->torn_lines, (long long)o->bound_ns, o->strict ? "on" : "off");
    if (!c->have_first) return;
    const verdict *v = &c->first;
    rb(r, "first violation: %s -- %s\n", rule_names[v->rule], rule_text(v->rule));
    rb(r, "  times are ns since the first invoke (t0 = %lld ns)\n", (long long)c->t0);
    rb(r, "  key           %s\n", res->key ? res->key : "-");
    if (v->src == 0) {
        put_op(r, c, "read", v->r);
    } else if (v->src == 1) {
        const rec_r *f = &h->fin[v->r];
        const rec_o *or = NULL;
        for (size_t i = 0; i < h->norc; i++)
            if (h->orc[i].key == f->key) or = &h->orc[i];
        char l1[320];
        rb(r, "  %-13s %s@%s %s -> %s (%s)\n", "final read", sn(h, f->proc), sn(h, f->host), sn(h, f->key),
           sn(h, f->value), loc(h, f->file, f->line, l1, sizeof l1));
        rb(r, "  %-13s %s\n", "oracle", or ? sn(h, or->value) : "-");
    } else {
        const rec_o *or = &h->orc[v->r];
        char l1[320];
        rb(r, "  %-13s %s holds %s (%s)\n", "oracle", sn(h, or->key), sn(h, or->value),
           loc(h, or->file, or->line, l1, sizeof l1));
    }
    if (v->w != NONE) {
        put_op(r, c, v->rule == TC_HIST_RULE_NOWHERE ? "written by" : "its write", v->w);
    } else {
        rb(r, "  %-13s none: no set wrote this value\n", "its write");
    }
    const hop *R = v->src == 0 ? &c->ops[v->r] : NULL;
    const hop *W = v->w != NONE ? &c->ops[v->w] : NULL;
    switch (v->rule) {
    case TC_HIST_RULE_NOWHERE:
        if (W) rb(r, "  why           the value was written to key %s, not %s\n", sn(h, W->key), res->key);
        break;
    case TC_HIST_RULE_FUTURE:
        rb(r, "  why           the write started at %lld, after the read ended at %lld\n", (long long)rel(c, W->start),
           (long long)rel(c, R->done));
        break;
    case TC_HIST_RULE_G1:
    case TC_HIST_RULE_G2:
    case TC_HIST_RULE_G7: {
        const hop *X = &c->ops[v->x];
        put_op(r, c, "superseded by", v->x);
        rb(r, "  why           the newer write started at %lld, after the read's write ended (%lld),\n"
              "                and ended at %lld: %lld + delta %lld < %lld, the read's start\n",
           (long long)rel(c, X->start), (long long)rel(c, W->done), (long long)rel(c, X->done),
           (long long)rel(c, X->done), (long long)v->delta, (long long)rel(c, R->start));
        rb(r, "  delta         %lld ns: %s\n", (long long)v->delta,
           v->rule == TC_HIST_RULE_G7   ? "the newer write is the reading process's own"
           : v->rule == TC_HIST_RULE_G1 ? "same host"
                                        : "the newer write was made on another host");
        rb(r, "  hosts         read on %s, newer write on %s, read's write on %s\n", sn(h, R->host), sn(h, X->host),
           sn(h, W->host));
        break;
    }
    case TC_HIST_RULE_STRICT: {
        put_op(r, c, "newer value", v->x);
        put_op(r, c, "observed by", v->y);
        put_op(r, c, "order: first", v->ax);
        put_op(r, c, "order: then", v->by);
        const hop *Y = &c->ops[v->y], *AX = &c->ops[v->ax], *BY = &c->ops[v->by];
        rb(r, "  why           the read's value came first (order: %lld + delta %lld < %lld), and the\n"
              "                newer one was observed before the read began (%lld + delta %lld < %lld)\n",
           (long long)rel(c, AX->done), (long long)v->delta2, (long long)rel(c, BY->start), (long long)rel(c, Y->done),
           (long long)v->delta, (long long)rel(c, R->start));
        rb(r, "  hosts         read on %s, observer on %s\n", sn(h, R->host), sn(h, Y->host));
        break;
    }
    case TC_HIST_RULE_G5:
        if (v->src == 1)
            rb(r, "  why           a final read must return the oracle's value or miss\n");
        else if (v->x != NONE) {
            put_op(r, c, "superseded by", v->x);
            rb(r, "  why           the oracle holds a value a completed write replaced (a lost write must become a "
                  "miss)\n");
        } else
            rb(r, "  why           the oracle holds a value never written to this key\n");
        break;
    default: break;
    }
    rb(r, "  faults overlapping [%lld, ", (long long)rel(c, c->flo));
    if (c->fhi >= TINF)
        rb(r, "end]: %llu\n", (unsigned long long)res->faults);
    else
        rb(r, "%lld]: %llu\n", (long long)rel(c, c->fhi), (unsigned long long)res->faults);
    for (size_t i = 0; i < h->nflt; i++) {
        const rec_f *f = &h->flt[i];
        if (f->t1 >= c->flo && f->t0 <= c->fhi)
            rb(r, "    %s [%lld, %lld] %s\n", sn(h, f->kind), (long long)rel(c, f->t0), (long long)rel(c, f->t1),
               sn(h, f->detail));
    }
}

static void free_ck(ck *c) {
    free(c->ops);
    free(c->val_op);
    free(c->key_ix);
    free(c->host_ix);
    free(c->all);
    free(c->byhost);
    free(c->byproc);
    free(c->wseg);
    free(c->rflag);
}

int tc_hist_check(tc_hist *h, const tc_hist_opts *opts, tc_hist_result *res, char *report, size_t reportlen) {
    const tc_hist_opts dflt = TC_HIST_OPTS_DEFAULT;
    if (opts == NULL) opts = &dflt;
    memset(res, 0, sizeof *res);
    res->delta_ns = -1;
    if (report != NULL && reportlen > 0) report[0] = '\0';
    if (opts->bound_ns < 0 || opts->bound_ns > BMAX || (opts->strict != 0 && opts->strict != 1)) {
        errf(report, reportlen, "bad options: bound_ns %lld (0 .. 2^61), strict %d (0 or 1)",
             (long long)opts->bound_ns, opts->strict);
        return -EINVAL;
    }
    ck c = {.h = h, .B = opts->bound_ns, .strict = opts->strict};
    int rc = build_ops(&c, report, reportlen);
    if (rc == 0) rc = build_indexes(&c, report, reportlen);
    if (rc == 0) check_reads(&c);
    if (rc == 0 && c.strict) rc = check_strict(&c);
    if (rc == 0) rc = check_final(&c, report, reportlen);
    if (rc == -ENOMEM) errf(report, reportlen, "out of memory");
    if (rc != 0) {
        free_ck(&c);
        return rc;
    }
    res->ops = c.nops;
    res->reads = c.reads;
    res->writes_ok = c.writes_ok;
    res->writes_indeterminate = c.writes_ind;
    res->final_reads = h->nfin;
    res->torn_lines = h->torn;
    for (int i = 0; i < TC_HIST_RULE_COUNT; i++) {
        res->count[i] = c.count[i];
        res->violations += c.count[i];
    }
    if (c.have_first) {
        const verdict *v = &c.first;
        res->rule = (tc_hist_rule)v->rule;
        res->delta_ns = v->delta;
        int64_t lo = TINF, hi = TINF;
        if (v->src == 0) {
            fill_event(&c, v->r, &res->read);
            res->key = res->read.key;
            lo = c.ops[v->r].start;
            hi = c.ops[v->r].done;
        } else {
            const rec_r *f = v->src == 1 ? &h->fin[v->r] : NULL;
            const rec_o *o = v->src == 2 ? &h->orc[v->r] : NULL;
            res->read = (tc_hist_event){
                .op = f ? "final" : "oracle",
                .proc = f ? sn(h, f->proc) : NULL,
                .host = f ? sn(h, f->host) : NULL,
                .key = sn(h, f ? f->key : o->key),
                .value = (f ? f->value : o->value) == NONE ? NULL : sn(h, f ? f->value : o->value),
                .result = (f ? f->value : o->value) == NONE ? "miss" : "ok",
                .start_ns = -1,
                .end_ns = -1,
            };
            res->key = res->read.key;
        }
        fill_event(&c, v->w, &res->write);
        fill_event(&c, v->x, &res->newer);
        fill_event(&c, v->y, &res->observer);
        if (v->w != NONE) lo = min64(lo, c.ops[v->w].start);
        if (v->rule == TC_HIST_RULE_STRICT) {
            lo = min64(lo, min64(c.ops[v->x].start, c.ops[v->y].start));
            lo = min64(lo, min64(c.ops[v->ax].start, c.ops[v->by].start));
        } else if (v->x != NONE) {
            lo = min64(lo, c.ops[v->x].start);
        }
        if (lo >= TINF) lo = c.t0;
        c.flo = lo;
        c.fhi = hi;
        for (size_t i = 0; i < h->nflt; i++)
            if (h->flt[i].t1 >= lo && h->flt[i].t0 <= hi) res->faults++;
    }
    rbuf r = {report, reportlen, 0};
    render(&c, opts, res, &r);
    free_ck(&c);
    return 0;
}

/* ======================================================================================== */
/* Writer                                                                                     */

struct tc_hist_writer {
    int fd;
    int broken;     /* a short write could not be cut back: refuse further records */
    uint64_t next_seq;
    off_t off;      /* bytes in the file: where a short write is cut back to */
    char *proc, *host;
    char *buf;
    size_t cap;
};

int tc_hist_writer_open(const char *dir, const char *proc, const char *host, tc_hist_writer **out) {
    *out = NULL;
    if (dir == NULL || proc == NULL || host == NULL || !is_token(proc, strlen(proc)) ||
        !is_token(host, strlen(host)) || strchr(proc, '/') != NULL || proc[0] == '.' || is_dash(proc, strlen(proc)) ||
        is_dash(host, strlen(host)))
        return -EINVAL;
    tc_hist_writer *w = calloc(1, sizeof *w);
    char *path = malloc(strlen(dir) + strlen(proc) + 8);
    if (w == NULL || path == NULL || (w->proc = strdup(proc)) == NULL || (w->host = strdup(host)) == NULL) {
        free(path);
        if (w) free(w->proc);
        free(w);
        return -ENOMEM;
    }
    sprintf(path, "%s/%s.hist", dir, proc);
    w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
    int e = errno;
    free(path);
    if (w->fd < 0) {
        free(w->proc);
        free(w->host);
        free(w);
        return -e;
    }
    *out = w;
    return 0;
}

int tc_hist_writer_close(tc_hist_writer *w) {
    if (w == NULL) return 0;
    int rc = close(w->fd) == 0 ? 0 : -errno;
    free(w->proc);
    free(w->host);
    free(w->buf);
    free(w);
    return rc;
}

/* Formats one record into w->buf and writes it with one write(2). Returns 0, -ENOMEM, -EIO
 * (a short write, cut back) or -errno of write(2). */
static int emit(tc_hist_writer *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int emit(tc_hist_writer *w, const char *fmt, ...) {
    if (w->broken) return -EIO;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(w->buf, w->cap, fmt, ap);
    va_end(ap);
    if (n < 0) return -EINVAL;
    if ((size_t)n >= w->cap) {
        size_t cap = w->cap;
        int rc;
        RESERVE(w->buf, cap, (size_t)n + 1, rc);
        if (rc != 0) return rc;
        w->cap = cap;
        va_start(ap, fmt);
        vsnprintf(w->buf, w->cap, fmt, ap);
        va_end(ap);
    }
    ssize_t wr;
    do
        wr = write(w->fd, w->buf, (size_t)n);
    while (wr < 0 && errno == EINTR);
    if (wr == n) {
        w->off += wr;
        return 0;
    }
    int e = wr < 0 ? errno : EIO;
    if (wr > 0 && ftruncate(w->fd, w->off) != 0) w->broken = 1;
    return -e;
}

/* The value field of a read: the bytes when they are a plain token (not "-", not beginning
 * with '?'), else "?hex:<len>:<hex of up to 64 bytes>" in tmp (160 bytes). Sets *n. */
static const char *value_field(const void *v, size_t len, char *tmp, int *n) {
    const char *s = v;
    if (len > 0 && len <= 1 << 30 && is_token(s, len) && !is_dash(s, len) && s[0] != '?') {
        *n = (int)len;
        return s;
    }
    int k = snprintf(tmp, 32, "?hex:%zu:", len);
    for (size_t i = 0; i < len && i < 64; i++) k += snprintf(tmp + k, 3, "%02x", (unsigned char)s[i]);
    *n = k;
    return tmp;
}

int tc_hist_invoke(tc_hist_writer *w, tc_hist_op op, const char *key, const char *value, uint64_t *token) {
    if ((unsigned)op > TC_HIST_OP_CLEAR) return -EINVAL;
    if (op == TC_HIST_OP_CLEAR)
        key = "-";
    else if (key == NULL || !is_token(key, strlen(key)) || is_dash(key, strlen(key)))
        return -EINVAL;
    if (op == TC_HIST_OP_SET) {
        if (value == NULL || !is_token(value, strlen(value)) || is_dash(value, strlen(value)) || value[0] == '?')
            return -EINVAL;
    } else {
        value = "-";
    }
    uint64_t seq = w->next_seq++;
    int rc = emit(w, "I %s %llu %s %s %s %s %lld\n", w->proc, (unsigned long long)seq, w->host, op_names[op], key,
                  value, (long long)tc_hist_now_ns());
    if (rc == 0) *token = seq;
    return rc;
}

int tc_hist_complete(tc_hist_writer *w, uint64_t token, tc_hist_res res, const void *value, size_t len) {
    int64_t t = tc_hist_now_ns();
    if ((unsigned)res > TC_HIST_RES_TIMEOUT) return -EINVAL;
    char tmp[160];
    const char *vf = "-";
    int vn = 1;
    if (res == TC_HIST_RES_OK && value != NULL) vf = value_field(value, len, tmp, &vn);
    return emit(w, "C %s %llu %s %.*s %lld\n", w->proc, (unsigned long long)token, res_names[res], vn, vf,
                (long long)t);
}

int tc_hist_fault(tc_hist_writer *w, const char *kind, int64_t t_start_ns, int64_t t_end_ns, const char *detail) {
    if (kind == NULL || !is_token(kind, strlen(kind)) || t_start_ns < 0 || t_end_ns < t_start_ns ||
        t_end_ns > TMAX)
        return -EINVAL;
    if (detail == NULL || detail[0] == '\0') detail = "-";
    if (strchr(detail, '\n') != NULL) return -EINVAL;
    return emit(w, "F %s %lld %lld %s\n", kind, (long long)t_start_ns, (long long)t_end_ns, detail);
}

int tc_hist_final_read(tc_hist_writer *w, const char *key, int hit, const void *value, size_t len) {
    if (key == NULL || !is_token(key, strlen(key)) || is_dash(key, strlen(key))) return -EINVAL;
    char tmp[160];
    int vn = 1;
    const char *vf = hit ? value_field(value, len, tmp, &vn) : "-";
    return emit(w, "R %s %s %s %.*s\n", w->host, w->proc, key, vn, vf);
}

int tc_hist_oracle(tc_hist_writer *w, const char *key, int hit, const void *value, size_t len) {
    if (key == NULL || !is_token(key, strlen(key)) || is_dash(key, strlen(key))) return -EINVAL;
    char tmp[160];
    int vn = 1;
    const char *vf = hit ? value_field(value, len, tmp, &vn) : "-";
    return emit(w, "O %s %.*s\n", key, vn, vf);
}
