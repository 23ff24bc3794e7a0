/*
 * l3_proto.c -- RESP2 parsing and command formatting, with no I/O.
 *
 * Parsing is hiredis's reader (read.h) driven with reply-object functions of our own. They
 * allocate tc__reply nodes, strings and element vectors from a chunked arena that belongs to
 * the reader: chunks never move, so a parent's element vector may hold pointers to children
 * allocated later. tc__proto_reset_replies() rewinds the arena at the start of each request,
 * keeping up to TC__ARENA_KEEP bytes of chunks, so steady-state requests allocate nothing.
 *
 * hiredis 0.14 treats a NULL from an object function as out-of-memory. We also return NULL
 * when a limit is exceeded (too many array elements, too many bytes for one request) and
 * remember why, so tc__proto_get() reports TC_EPROTO with our reason instead of TC_ENOMEM.
 *
 * Formatting writes RESP straight into a reusable tc__cmdbuf: byte for byte what hiredis's
 * redisFormatCommandArgv produces (the unit tests compare the two), without its per-command
 * malloc and sprintf.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/read.h>

#include "l3_proto.h"
#include "tiercache.h"

/* ------------------------------------------------------------------------ */
/* Arena                                                                    */
/* ------------------------------------------------------------------------ */

#define TC__ARENA_CHUNK 8192          /* a fresh chunk's usable size */
#define TC__ARENA_KEEP (64 * 1024)    /* chunk bytes kept across resets */

typedef struct tc__chunk {
    struct tc__chunk *next;
    size_t cap, used;
    _Alignas(16) unsigned char data[];
} tc__chunk;

typedef struct tc__arena {
    tc__chunk *head;  /* the chunk allocations come from; older ones follow */
    size_t total;     /* bytes handed out since the last reset (for max_pending) */
} tc__arena;

static void *arena_alloc(tc__arena *a, size_t n) {
    n = (n + 15) & ~(size_t)15;
    if (a->head != NULL && a->head->cap - a->head->used >= n) {
        void *p = a->head->data + a->head->used;
        a->head->used += n;
        a->total += n;
        return p;
    }
    /* A new chunk: big requests get a chunk of their own size. The new chunk goes in front
     * when it is the ordinary size (it becomes the allocation chunk); a dedicated big chunk
     * goes second so the current chunk's free space is not abandoned. */
    size_t cap = n > TC__ARENA_CHUNK ? n : TC__ARENA_CHUNK;
    tc__chunk *c = malloc(sizeof *c + cap);
    if (c == NULL) return NULL;
    c->cap = cap;
    c->used = n;
    if (a->head != NULL && cap > TC__ARENA_CHUNK) {
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    a->total += n;
    return c->data;
}

/* Rewinds: keeps ordinary chunks up to TC__ARENA_KEEP bytes, frees the rest. */
static void arena_reset(tc__arena *a) {
    tc__chunk *keep = NULL, *c = a->head;
    size_t kept = 0;
    while (c != NULL) {
        tc__chunk *next = c->next;
        if (c->cap == TC__ARENA_CHUNK && kept + c->cap <= TC__ARENA_KEEP) {
            c->used = 0;
            c->next = keep;
            keep = c;
            kept += c->cap;
        } else {
            free(c);
        }
        c = next;
    }
    a->head = keep;
    a->total = 0;
}

static void arena_free(tc__arena *a) {
    tc__chunk *c = a->head;
    while (c != NULL) {
        tc__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
    a->total = 0;
}

/* ------------------------------------------------------------------------ */
/* Reader                                                                   */
/* ------------------------------------------------------------------------ */

struct tc__proto_reader {
    redisReader *rd;
    tc__arena arena;
    tc__proto_limits lim;
    size_t max_pending;    /* in force for the current request */
    int secret;            /* replies made now answer a request that carried a secret */
    const char *limit_err; /* set by an object function that refused on a limit */
    char err[160];
};

static int over_budget(tc__proto_reader *pr, size_t more) {
    size_t buffered = pr->rd->len - pr->rd->pos;
    return pr->arena.total + buffered + more > pr->max_pending;
}

/* Allocates a node and links it into its parent's element vector. */
static tc__reply *new_node(const redisReadTask *task, int type, size_t extra) {
    tc__proto_reader *pr = task->privdata;
    if (over_budget(pr, sizeof(tc__reply) + extra)) {
        pr->limit_err = "reply larger than the limit for one request";
        return NULL;
    }
    tc__reply *r = arena_alloc(&pr->arena, sizeof *r);
    if (r == NULL) return NULL;
    memset(r, 0, sizeof *r);
    r->type = type;
    r->secret = pr->secret;
    if (task->parent != NULL) {
        tc__reply *parent = task->parent->obj;
        /* hiredis only gives children to arrays, and idx < elements; a failed check here
         * would be a reader bug, so refuse the input rather than write out of bounds */
        if (parent == NULL || parent->type != TC__R_ARRAY || task->idx < 0 ||
            (size_t)task->idx >= parent->elements) {
            pr->limit_err = "inconsistent reply nesting";
            return NULL;
        }
        parent->element[task->idx] = r;
    }
    return r;
}

static void *obj_string(const redisReadTask *task, char *str, size_t len) {
    tc__proto_reader *pr = task->privdata;
    tc__reply *r = new_node(task, task->type, len + 1);
    if (r == NULL) return NULL;
    char *s = arena_alloc(&pr->arena, len + 1);
    if (s == NULL) return NULL;
    if (len) memcpy(s, str, len);
    s[len] = '\0';
    r->str = s;
    r->len = len;
    return r;
}

static void *obj_array(const redisReadTask *task, int elements) {
    tc__proto_reader *pr = task->privdata;
    if (elements < 0 || (size_t)elements > pr->lim.max_elements) {
        pr->limit_err = "array reply with too many elements";
        return NULL;
    }
    size_t vec = (size_t)elements * sizeof(tc__reply *);
    tc__reply *r = new_node(task, TC__R_ARRAY, vec);
    if (r == NULL) return NULL;
    if (elements > 0) {
        r->element = arena_alloc(&pr->arena, vec);
        if (r->element == NULL) return NULL;
        memset(r->element, 0, vec);
    }
    r->elements = (size_t)elements;
    return r;
}

static void *obj_integer(const redisReadTask *task, long long value) {
    tc__reply *r = new_node(task, TC__R_INTEGER, 0);
    if (r != NULL) r->integer = value;
    return r;
}

static void *obj_nil(const redisReadTask *task) { return new_node(task, TC__R_NIL, 0); }

/* Replies live in the arena: nothing to free one by one. */
static void obj_free(void *p) { (void)p; }

static redisReplyObjectFunctions tc__reply_fns = {
    obj_string, obj_array, obj_integer, obj_nil, obj_free,
};

static redisReader *new_hiredis_reader(tc__proto_reader *pr) {
    redisReader *rd = redisReaderCreateWithFunctions(&tc__reply_fns);
    if (rd == NULL) return NULL;
    rd->privdata = pr;
    /* keep up to 64 KiB of read buffer between replies instead of 16 KiB */
    rd->maxbuf = 64 * 1024;
    return rd;
}

tc__proto_reader *tc__proto_reader_new(const tc__proto_limits *lim) {
    tc__proto_reader *pr = calloc(1, sizeof *pr);
    if (pr == NULL) return NULL;
    pr->lim.max_elements = lim && lim->max_elements ? lim->max_elements : (size_t)1 << 20;
    pr->lim.max_pending = lim && lim->max_pending ? lim->max_pending : (size_t)1 << 30;
    if (pr->lim.max_elements > (size_t)INT32_MAX) pr->lim.max_elements = INT32_MAX;
    pr->max_pending = pr->lim.max_pending;
    pr->rd = new_hiredis_reader(pr);
    if (pr->rd == NULL) {
        free(pr);
        return NULL;
    }
    return pr;
}

void tc__proto_reader_free(tc__proto_reader *pr) {
    if (pr == NULL) return;
    redisReaderFree(pr->rd);
    arena_free(&pr->arena);
    free(pr);
}

void tc__proto_reset_replies(tc__proto_reader *pr) { arena_reset(&pr->arena); }

void tc__proto_set_secret(tc__proto_reader *pr, int secret) { pr->secret = secret != 0; }

void tc__proto_set_max_pending(tc__proto_reader *pr, size_t max_pending) {
    pr->max_pending = max_pending ? max_pending : pr->lim.max_pending;
}

int tc__proto_reader_reset(tc__proto_reader *pr) {
    redisReader *rd = new_hiredis_reader(pr);
    if (rd == NULL) return TC_ENOMEM;
    redisReaderFree(pr->rd);
    pr->rd = rd;
    pr->limit_err = NULL;
    pr->err[0] = '\0';
    arena_reset(&pr->arena);
    return 0;
}

int tc__proto_feed(tc__proto_reader *pr, const void *buf, size_t len) {
    if (pr->rd->err || pr->err[0]) return TC_EPROTO;
    if (over_budget(pr, len)) {
        snprintf(pr->err, sizeof pr->err, "reply larger than the limit for one request (%zu bytes)",
                 pr->max_pending);
        return TC_EPROTO;
    }
    if (redisReaderFeed(pr->rd, buf, len) != REDIS_OK) {
        if (pr->rd->err == REDIS_ERR_OOM) return TC_ENOMEM;
        snprintf(pr->err, sizeof pr->err, "%s", pr->rd->errstr);
        return TC_EPROTO;
    }
    return 0;
}

int tc__proto_get(tc__proto_reader *pr, tc__reply **out) {
    *out = NULL;
    if (pr->err[0]) return TC_EPROTO;
    void *reply = NULL;
    if (redisReaderGetReply(pr->rd, &reply) != REDIS_OK) {
        if (pr->limit_err != NULL) {
            snprintf(pr->err, sizeof pr->err, "%s", pr->limit_err);
            return TC_EPROTO;
        }
        if (pr->rd->err == REDIS_ERR_OOM) return TC_ENOMEM;
        snprintf(pr->err, sizeof pr->err, "%s", pr->rd->errstr[0] ? pr->rd->errstr : "protocol error");
        return TC_EPROTO;
    }
    if (reply == NULL) return 0;
    *out = reply;
    return 1;
}

const char *tc__proto_error(const tc__proto_reader *pr) { return pr->err; }

size_t tc__proto_buffered(const tc__proto_reader *pr) { return pr->rd->len - pr->rd->pos; }

/* ------------------------------------------------------------------------ */
/* Command buffer                                                           */
/* ------------------------------------------------------------------------ */

void tc__cmdbuf_clear(tc__cmdbuf *b, size_t keep) {
    if (b->secret && b->data) explicit_bzero(b->data, b->cap);
    if (b->cap > keep) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->len = 0;
    b->ncmds = 0;
}

void tc__cmdbuf_free(tc__cmdbuf *b) {
    if (b->secret && b->data) explicit_bzero(b->data, b->cap);
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int cmdbuf_reserve(tc__cmdbuf *b, size_t more) {
    if (b->cap - b->len >= more) return 0;
    size_t need = b->len + more;
    if (need < b->len) return TC_ENOMEM;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (p == NULL) return TC_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

/* As cmdbuf_reserve, but a secret buffer never goes through realloc (which could leave a
 * copy behind): it is copied into a new buffer and the old one wiped. */
static int secret_reserve(tc__cmdbuf *b, size_t more) {
    if (b->cap - b->len >= more) return 0;
    size_t cap = b->len + more < 256 ? 256 : (b->len + more) * 2;
    char *p = malloc(cap);
    if (p == NULL) return TC_ENOMEM;
    if (b->data) {
        memcpy(p, b->data, b->len);
        explicit_bzero(b->data, b->cap);
        free(b->data);
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

/* Writes v in decimal at p; returns the end. */
static char *put_size(char *p, size_t v) {
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0) *p++ = tmp[--n];
    return p;
}

/* RESP: "*<argc>\r\n" then "$<len>\r\n<bytes>\r\n" per argument -- the same bytes as
 * hiredis's redisFormatCommandArgv (test_l3_proto checks them against it), written straight
 * into the reusable buffer. hiredis 0.14 mallocs a buffer per command and sprintf()s every
 * length: with a pipelined MGET + n PTTL that was most of the client's CPU time. Argument pi
 * is sent as pre followed by argv[pi]; inlined into both callers, so the plain one (pi -1)
 * pays nothing for it. */
static inline __attribute__((always_inline)) int format_argv(tc__cmdbuf *b, int argc, const char *const *argv,
                                                             const size_t *lens, int pi, const void *pre,
                                                             size_t prelen) {
    if (argc < 1) return TC_EINVAL;
    size_t need = 1 + 20 + 2 + prelen;
    for (int i = 0; i < argc; i++) {
        size_t more = 1 + 20 + 2 + lens[i] + 2;
        if (more < lens[i] || need + more < need) return TC_ENOMEM;
        need += more;
    }
    int rc = b->secret ? secret_reserve(b, need) : cmdbuf_reserve(b, need);
    if (rc != 0) return rc;
    char *p = b->data + b->len;
    *p++ = '*';
    p = put_size(p, (size_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    for (int i = 0; i < argc; i++) {
        size_t extra = i == pi ? prelen : 0;
        *p++ = '$';
        p = put_size(p, lens[i] + extra);
        *p++ = '\r';
        *p++ = '\n';
        if (extra) {
            memcpy(p, pre, extra);
            p += extra;
        }
        if (lens[i]) memcpy(p, argv[i], lens[i]);
        p += lens[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    b->len = (size_t)(p - b->data);
    b->ncmds++;
    return 0;
}

int tc__cmdbuf_argv(tc__cmdbuf *b, int argc, const char *const *argv, const size_t *lens) {
    return format_argv(b, argc, argv, lens, -1, NULL, 0);
}

int tc__cmdbuf_argv_pre(tc__cmdbuf *b, int argc, const char *const *argv, const size_t *lens, int pi,
                        const void *pre, size_t prelen) {
    if (pre == NULL || pi < 0 || pi >= argc) return format_argv(b, argc, argv, lens, -1, NULL, 0);
    return format_argv(b, argc, argv, lens, pi, pre, prelen);
}

int tc__cmdbuf_cmd(tc__cmdbuf *b, int argc, ...) {
    const char *argv[6];
    size_t lens[6];
    if (argc < 1 || argc > 6) return TC_EINVAL;
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = va_arg(ap, size_t);
    }
    va_end(ap);
    return tc__cmdbuf_argv(b, argc, argv, lens);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Messages a server sends in answer to AUTH, HELLO or SELECT that hold none of the
 * request's arguments (Redis 2.x to 7.x, Valkey). A reply to a request that carried a secret
 * is shown only as the one of these it begins with: our copy, never the server's bytes. */
static const char *const tc__argument_free[] = {
    "WRONGPASS invalid username-password pair or user is disabled.",
    "WRONGPASS invalid username-password pair",
    "NOAUTH Authentication required.",
    "NOAUTH HELLO must be called with the client already authenticated",
    ("ERR AUTH <password> called without any password configured for the default user. "
     "Are you sure your configuration is correct?"),
    "ERR Client sent AUTH, but no password is set",
    "ERR invalid password",
    "ERR invalid username-password pair",
    "ERR unknown command",
    "ERR unknown subcommand",
    "ERR wrong number of arguments",
    "ERR DB index is out of range",
    "ERR invalid DB index",
    "ERR SELECT is not allowed in cluster mode",
    "NOPROTO unsupported protocol version",
    "NOPERM",
    "LOADING",
    "BUSY",
    "MASTERDOWN",
};

const char *tc__reply_text(const tc__reply *r, char *buf, size_t len) {
    if (len == 0) return buf;
    buf[0] = '\0';
    if (r == NULL) return buf;
    const char *s = r->str != NULL ? r->str : "";
    size_t n = r->str != NULL ? r->len : 0;
    if (r->secret) {
        for (size_t i = 0; i < sizeof tc__argument_free / sizeof tc__argument_free[0]; i++) {
            size_t k = strlen(tc__argument_free[i]);
            if (n >= k && memcmp(s, tc__argument_free[i], k) == 0) {
                snprintf(buf, len, "%s%s", tc__argument_free[i], n > k ? "..." : "");
                return buf;
            }
        }
        /* the leading code word (upper-case letters), if it is one */
        size_t w = 0;
        while (w < n && w < 24 && s[w] >= 'A' && s[w] <= 'Z') w++;
        if (w == 0 || (w < n && s[w] != ' '))
            snprintf(buf, len, "an error (withheld: the request carried a secret)");
        else
            snprintf(buf, len, "%.*s (the rest withheld: the request carried a secret)", (int)w, s);
        return buf;
    }
    size_t o = 0, shown = 0;
    for (size_t i = 0; i < n && shown < 200; i++, shown++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c > 0x7e || c == '\\') {
            if (o + 5 > len) break;
            snprintf(buf + o, 5, "\\x%02x", c);
            o += 4;
        } else {
            if (o + 2 > len) break;
            buf[o++] = (char)c;
        }
    }
    buf[o] = '\0';
    return buf;
}

int tc__reply_is_error_code(const tc__reply *r, const char *code) {
    if (r == NULL || r->type != TC__R_ERROR) return 0;
    size_t n = strlen(code);
    return r->len >= n && memcmp(r->str, code, n) == 0 && (r->len == n || r->str[n] == ' ');
}

int tc__info_field(const char *info, size_t len, const char *field, char *out, size_t outlen) {
    size_t flen = strlen(field);
    const char *p = info, *end = info + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL) eol = end;
        if ((size_t)(eol - p) > flen && memcmp(p, field, flen) == 0 && p[flen] == ':') {
            const char *v = p + flen + 1, *ve = eol;
            if (ve > v && ve[-1] == '\r') ve--;
            size_t n = (size_t)(ve - v);
            if (outlen == 0) return 1;
            if (n > outlen - 1) n = outlen - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
        p = eol + 1;
    }
    return 0;
}

size_t tc__glob_prefix(char *out, const void *p, size_t n) {
    const unsigned char *s = p;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '*' || c == '?' || c == '[' || c == ']' || c == '\\') out[o++] = '\\';
        out[o++] = (char)c;
    }
    out[o++] = '*';
    return o;
}
