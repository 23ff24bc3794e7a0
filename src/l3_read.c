/*
 * l3_read.c -- the value-reading transaction of the L3 tier (l3_read.h): its commands, and
 * the rules that turn its replies into a hit, a miss, or "not a value of ours".
 *
 * The rules trust nothing the server says unless it fits the request: GETRANGE may return at
 * most the bytes asked for, STRLEN must agree with them, an absent key has no size and no
 * bytes, PTTL is -2, -1 or >= 0. A reply that breaks one is TC_EPROTO, which the caller
 * treats as the server failing (the connection is dropped). What an honest server may say
 * about a key another client wrote -- a longer string, a list -- is a per-key answer.
 */
#include <stdio.h>
#include <string.h>

#include "l3_read.h"

void tc__l3_limit_init(tc__l3_limit *lim, size_t bytes) {
    lim->bytes = bytes ? bytes : 1;
    int n = snprintf(lim->end, sizeof lim->end, "%zu", lim->bytes - 1);
    lim->endlen = (size_t)n;
}

int tc__l3_read_cmds(tc__cmdbuf *b, const char *key, size_t klen, const tc__l3_limit *lim) {
    const char *strlen_argv[2] = {"STRLEN", key}, *pttl_argv[2] = {"PTTL", key};
    const char *range_argv[4] = {"GETRANGE", key, "0", lim->end};
    size_t strlen_lens[2] = {6, klen}, pttl_lens[2] = {4, klen}, range_lens[4] = {8, klen, 1, lim->endlen};
    int rc = tc__cmdbuf_argv(b, 2, strlen_argv, strlen_lens);
    if (rc == 0) rc = tc__cmdbuf_argv(b, 4, range_argv, range_lens);
    if (rc == 0) rc = tc__cmdbuf_argv(b, 2, pttl_argv, pttl_lens);
    return rc;
}

int tc__l3_multi(tc__cmdbuf *b) { return tc__cmdbuf_cmd(b, 1, "MULTI", (size_t)5); }

int tc__l3_exec(tc__cmdbuf *b) { return tc__cmdbuf_cmd(b, 1, "EXEC", (size_t)4); }

static int is_status(const tc__reply *r, const char *text) {
    size_t n = strlen(text);
    return r->type == TC__R_STATUS && r->len == n && memcmp(r->str, text, n) == 0;
}

int tc__l3_tx_results(tc__reply *const *rep, size_t nq, tc__reply *const **results, const tc__reply **err) {
    *results = NULL;
    *err = NULL;
    const tc__reply *multi = rep[0], *exec = rep[nq + 1];
    if (multi->type == TC__R_ERROR) {
        /* no transaction: the commands ran one by one and EXEC said "without MULTI"; the
         * refusal of MULTI is the reason worth reporting */
        *err = multi;
        return 1;
    }
    if (!is_status(multi, "OK")) return TC_EPROTO;
    for (size_t i = 1; i <= nq; i++) {
        const tc__reply *q = rep[i];
        if (q->type == TC__R_ERROR) {
            if (*err == NULL) *err = q; /* refused when queued: the transaction is void */
        } else if (!is_status(q, "QUEUED")) {
            return TC_EPROTO;
        }
    }
    if (*err != NULL) return exec->type == TC__R_ERROR ? 1 : TC_EPROTO; /* EXECABORT */
    if (exec->type == TC__R_ERROR) {
        *err = exec;
        return 1;
    }
    if (exec->type != TC__R_ARRAY || exec->elements != nq) return TC_EPROTO;
    for (size_t i = 0; i < nq; i++)
        if (exec->element[i] == NULL) return TC_EPROTO;
    *results = exec->element;
    return 0;
}

int tc__l3_read_value(tc__reply *const *res, size_t limit, int whole, tc__l3_value *out) {
    memset(out, 0, sizeof *out);
    const tc__reply *sz = res[0], *range = res[1], *pttl = res[2];

    /* A key of another type: every command on it says WRONGTYPE but PTTL. */
    if (sz->type == TC__R_ERROR && tc__reply_is_error_code(sz, "WRONGTYPE")) {
        if (range->type != TC__R_ERROR) return TC_EPROTO;
        out->kind = TC__L3_WRONGTYPE;
        return 0;
    }
    const tc__reply *errs[3] = {sz, range, pttl};
    for (int i = 0; i < 3; i++)
        if (errs[i]->type == TC__R_ERROR) {
            out->kind = TC__L3_ERRREPLY;
            out->err = errs[i];
            return 0;
        }
    if (sz->type != TC__R_INTEGER || sz->integer < 0) return TC_EPROTO;
    if (pttl->type != TC__R_INTEGER || pttl->integer < -2) return TC_EPROTO;
    /* GETRANGE answers "" for an absent key; a nil is taken as the same */
    if (range->type != TC__R_STRING && range->type != TC__R_NIL) return TC_EPROTO;
    size_t got = range->type == TC__R_STRING ? range->len : 0;
    if (got > limit) return TC_EPROTO;

    const unsigned long long size = (unsigned long long)sz->integer;
    if (pttl->integer == -2) {
        if (size != 0 || got != 0) return TC_EPROTO; /* absent, yet it has bytes */
        out->kind = TC__L3_ABSENT;
        return 0;
    }
    if (size > limit) {
        if (got != limit) return TC_EPROTO; /* it must have sent the limit */
        if (whole) {
            out->kind = TC__L3_OVERSIZED;
            out->size = sz->integer;
            return 0;
        }
    } else if (got != size) {
        return TC_EPROTO; /* the bytes are not the whole value */
    }
    if (pttl->integer == 0) { /* expires right now */
        out->kind = TC__L3_ABSENT;
        return 0;
    }
    out->kind = TC__L3_HIT;
    out->data = got ? range->str : "";
    out->len = got;
    out->total = (size_t)size;
    out->ttl_ms = pttl->integer == -1 ? TC_TTL_NONE : (int64_t)pttl->integer;
    return 0;
}
