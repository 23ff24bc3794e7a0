/*
 * history.h -- test helper: record the operations of many processes on a shared cache, and
 * check the recorded history against the coherence guarantees of docs/COHERENCE.md (§1, §8).
 *
 * It knows nothing of the cache: a harness records what each call did and when, and the
 * checker decides from the records alone. Values written are unique across a history, so
 * every read maps to the one write whose value it returned (the "read-mapping" case, which
 * makes checking polynomial: O(n log n) here).
 *
 * ------------------------------------------------------------------------------------------
 * RECORD FORMAT
 *
 * Text, one record per line, ending in '\n'; fields separated by one space. Keys, prefixes,
 * values, process and host names are tokens: one or more bytes in 0x21..0x7e (printable
 * ASCII, no space). "-" in a value, key or argument field means "none". Times are
 * CLOCK_MONOTONIC nanoseconds (one clock for every process of the machine), unsigned
 * decimal, below 2^62. Each process writes its own file (<dir>/<proc>.hist); the harness may
 * write more files of F, R and O records (also named *.hist: tc_hist_load_dir reads those).
 * Lines that are empty or begin with '#' are ignored.
 *
 *   I <proc> <seq> <host> <op> <key> <arg> <t_ns>      invoke, written before the call
 *       op   get | set | del | clear_prefix | clear
 *       key  the key; for clear_prefix the prefix; for clear "-"
 *       arg  for set the value written (unique in the whole history); otherwise "-"
 *       (proc, seq) names the operation; it is unique in the history.
 *   C <proc> <seq> <result> <value> <t_ns>             completion, written after the call
 *       result  ok       get: a hit, value is the value read; a write: the call returned 0
 *                        (it completed on every tier); value "-"
 *               miss     get only; value "-"
 *               err      the call failed; value "-"
 *               timeout  the call timed out; value "-"
 *   F <kind> <t_start_ns> <t_end_ns> <detail...>        a fault the harness injected; the
 *                                                        detail is the rest of the line (it may
 *                                                        hold spaces). Used in reports only.
 *   R <host> <proc> <key> <value>                       a final read after quiescence + B;
 *                                                        value "-" is a miss
 *   O <key> <value>                                     the oracle: what L3 holds at the end
 *                                                        (L2 without L3); "-" is nothing
 *
 * A write whose completion is err or timeout, or that has no completion (its process was
 * killed), is INDETERMINATE: it may take effect at any time after it started, or never. A
 * get whose completion is err or timeout, or missing, is ignored. A file's last line that
 * does not end in '\n' is a record torn by a kill during its write(2): it is treated as
 * absent (and counted). Values the writer cannot record as a token (a read that returned
 * bytes outside 0x21..0x7e, an empty value, "-") are recorded as "?hex:<len>:<hex of up to
 * 64 bytes>", which no set may write: such a read is reported as a value from nowhere.
 *
 * ------------------------------------------------------------------------------------------
 * RULES (per key; a clear_prefix is projected as a delete onto every key of the history that
 * starts with its prefix, a clear onto every key)
 *
 * Notation: R is a get that hit and returned value v, W the set that wrote v. A write X
 * SUPERSEDES W when X is a set, del, or projected clear/clear_prefix of R's key that completed
 * with "ok" and X.start > W.end. Indeterminate writes never supersede (their end is +inf)
 * and are never X; their values are legal to read, for ever.
 * Δ(X, R) = 0 when X and R were made on the same host, B otherwise.
 *
 *   NOWHERE  v was never written by a set of R's key (written to another key, or never).
 *   FUTURE   W.start > R.end: the value was read before its write began.
 *   G7       own writes: some X made by R's own process supersedes W and X.end < R.start.
 *   G1       no staleness on a host: some X made on R's host supersedes W and
 *            X.end < R.start (and not G7).
 *   G2       bounded staleness across hosts: some X made on another host supersedes W and
 *            X.end + B < R.start (and not G1, G7).
 *   G5       convergence: a final read R returned a value other than the oracle's value for
 *            its key (a final miss is always allowed); or the oracle holds a value never
 *            written to its key, or one superseded by a completed write (a write Redis lost
 *            must become a miss, never an older value). Each final read's key needs an O record.
 *   STRICT   only with opts.strict (below).
 *
 * BOUNDARIES. Every comparison is a strict inequality, as COHERENCE.md words the guarantees
 * ("completed before t - B"): X.end + Δ == R.start is ALLOWED (not a violation), X.end + Δ ==
 * R.start - 1 is a violation; X.start == W.end does not supersede; W.start == R.end is not
 * "future". The recorded interval of a call contains the real one (the invoke time is taken
 * before the call, the completion time after), so a violation on the records is a violation
 * in fact: the checker never rejects a correct cache, and gives up one nanosecond of detection.
 *
 * A miss is always allowed. Misses, and reads that failed, are never checked.
 *
 * STRICT MODE (opts.strict; off by default). COHERENCE.md anchors every guarantee at write
 * completion and says the default is not linearizability: two reads overlapping a write in
 * flight may see new then old. Strict mode adds the order the reads themselves reveal. Group
 * each set with the reads of its value (a "cluster"; a completed del or projected clear is a
 * cluster of its own). Op y PRECEDES op z when y completed and y.end + Δ < z.start, where
 * Δ = B when z is a read on another host than y, else 0 (into a write the order is real
 * time, as in the default rules). A read R of cluster a violates STRICT when some other
 * cluster b
 *   - was observed before R: an op of b (its completed write, or a read of its value)
 *     precedes R; and
 *   - came after a: an op of a precedes an op of b that started no later than R did.
 * The cycle a -> b -> a then lies in R's past: R is the read that closes it, and it is the
 * one reported. Example: set v1 [0,10], set v2 [5,100], read v2 [20,21], read v1 [30,31], all
 * on one host. The default rules accept it (v2's write had not completed); strict mode
 * rejects the second read (v1 came before v2, which was seen before that read). Every cycle
 * of two clusters is found, at the later of its reads. Each G1/G2/G7 violation is also such
 * a cycle; a read is reported under the default rule when one applies. With B = 0, or one
 * host, strict mode is exactly linearizability of each key as a register in which a miss is
 * always allowed (with unique values a history is linearizable iff no two clusters form a
 * cycle: the zone theorem of Gibbons and Korach); with B > 0 across hosts it checks cycles of
 * two clusters only.
 *
 * ------------------------------------------------------------------------------------------
 * REPORT
 *
 * tc_hist_check sets result->rule to the rule of the FIRST violation, ordered by the read's
 * start time (ties: the read recorded first); final reads (G5) come after every timed read.
 * It counts violations per rule (each violating read counted once, under its first rule),
 * fills the events of the first one (the read, the write it saw, the superseding write, the
 * op that observed it in strict mode, Δ), and writes a human-readable multi-line report into
 * the caller's buffer: the verdict and counts, the events with hosts and times (ns since the
 * history's first invoke), Δ and why the read is a violation, and every fault record that
 * overlaps [W.start, R.end].
 *
 * Work: O(n log n) time for n records (projected clears count once per key they cover);
 * memory about 250 bytes per operation, strings included. Strict mode adds O(n·H·(H + log n))
 * time for H hosts.
 *
 * Ownership and threads: a tc_hist and a tc_hist_writer are each used by one thread at a
 * time. Every string in a tc_hist_result points into the tc_hist and is valid until the
 * next record is added to it or it is freed. Errors are negative errno values (-EINVAL for
 * a malformed record or history, with the reason in the caller's buffer; -ENOMEM; a system
 * call's -errno). Nothing here prints, aborts or keeps global state.
 */
#ifndef TC_TEST_HISTORY_H
#define TC_TEST_HISTORY_H

#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------------------------------- */
/* Writing a history: one writer per process (a sequential client)                           */

typedef enum tc_hist_op {
    TC_HIST_OP_GET,
    TC_HIST_OP_SET,
    TC_HIST_OP_DEL,
    TC_HIST_OP_CLEAR_PREFIX,
    TC_HIST_OP_CLEAR,
} tc_hist_op;

typedef enum tc_hist_res {
    TC_HIST_RES_OK,      /* get: hit; write: returned 0 */
    TC_HIST_RES_MISS,    /* get only */
    TC_HIST_RES_ERR,     /* failed: a write is indeterminate, a read ignored */
    TC_HIST_RES_TIMEOUT, /* timed out: the same */
} tc_hist_res;

typedef struct tc_hist_writer tc_hist_writer;

/* CLOCK_MONOTONIC now, in ns: the clock of every record. */
int64_t tc_hist_now_ns(void);

/* Creates <dir>/<proc>.hist (it must not exist: a process id is used once, so operation
 * numbers stay unique) for a process named proc on host host (tokens; proc also must not
 * contain '/' or begin with '.'). Open it in the process that records, after fork. Returns 0
 * and *out, -EINVAL for a bad name, -EEXIST, -ENOMEM or another -errno of open(2). */
int tc_hist_writer_open(const char *dir, const char *proc, const char *host, tc_hist_writer **out);

/* Closes the file and frees w (NULL: nothing). Returns 0 or -errno of close(2). */
int tc_hist_writer_close(tc_hist_writer *w);

/* Records an invoke: call it just before the operation (it reads the clock, then writes the
 * record). key: the key, the prefix for clear_prefix, NULL for clear. value: the value of a
 * set (a token, not "-", not beginning with '?'; unique in the history), NULL otherwise.
 * *token receives the operation's number for tc_hist_complete. Each record is one write(2)
 * on an O_APPEND file: a kill -9 can at worst tear the last line, which the loader ignores;
 * a short write (disk full) is cut back off the file before returning -EIO, so no torn record
 * ever sits in the middle of the file. Returns 0, -EINVAL (bad op, key or value), -EIO. */
int tc_hist_invoke(tc_hist_writer *w, tc_hist_op op, const char *key, const char *value,
                   uint64_t *token);

/* Records the completion of the operation token, just after it returned (the clock is read
 * first). value/len: for a get that hit, the bytes read (any bytes; see the escape rule in
 * the format above); ignored otherwise. Returns 0, -EINVAL or -EIO as tc_hist_invoke. */
int tc_hist_complete(tc_hist_writer *w, uint64_t token, tc_hist_res res, const void *value,
                     size_t len);

/* Records a fault the harness injected over [t_start_ns, t_end_ns]. kind: a token; detail:
 * free text without a newline (NULL: none). Returns 0, -EINVAL or -EIO. */
int tc_hist_fault(tc_hist_writer *w, const char *kind, int64_t t_start_ns, int64_t t_end_ns,
                  const char *detail);

/* Records a final read of key by this writer's process and host, after quiescence: hit 1
 * with value/len, or hit 0 for a miss. Returns 0, -EINVAL or -EIO. */
int tc_hist_final_read(tc_hist_writer *w, const char *key, int hit, const void *value, size_t len);

/* Records the oracle's value of key (what L3 holds at the end; L2's without L3); hit 0:
 * nothing. Returns 0, -EINVAL or -EIO. */
int tc_hist_oracle(tc_hist_writer *w, const char *key, int hit, const void *value, size_t len);

/* ---------------------------------------------------------------------------------------- */
/* Loading and checking                                                                       */

typedef struct tc_hist tc_hist;

/* A new empty history. Returns 0 and *out, or -ENOMEM. */
int tc_hist_new(tc_hist **out);
/* Frees h and everything it holds (NULL: nothing). */
void tc_hist_free(tc_hist *h);

/* Adds one record (line, without or with its final '\n'; len bytes). A malformed record is
 * refused with -EINVAL and the reason ("line N: ...") in err (errlen bytes, may be NULL);
 * the history is unchanged. Returns 0, -EINVAL or -ENOMEM. */
int tc_hist_add_line(tc_hist *h, const char *line, size_t len, char *err, size_t errlen);

/* Adds every line of the NUL-terminated text (the last one need not end in '\n': text is
 * not a file a kill can tear). Stops at the first malformed line. Returns as
 * tc_hist_add_line. */
int tc_hist_add_text(tc_hist *h, const char *text, char *err, size_t errlen);

/* Adds the records of one file; a last line without '\n' is torn and ignored. Errors name
 * the file and line. Returns 0, -EINVAL, -ENOMEM or -errno of open/read. */
int tc_hist_load_file(tc_hist *h, const char *path, char *err, size_t errlen);

/* Adds every regular file named *.hist in dir, in name order. Returns as tc_hist_load_file
 * (stopping at the first error), or -errno of opendir. */
int tc_hist_load_dir(tc_hist *h, const char *dir, char *err, size_t errlen);

typedef enum tc_hist_rule {
    TC_HIST_RULE_NONE,    /* no violation */
    TC_HIST_RULE_NOWHERE, /* value never written to the key */
    TC_HIST_RULE_FUTURE,  /* value whose write started after the read ended */
    TC_HIST_RULE_G7,      /* own completed write not seen */
    TC_HIST_RULE_G1,      /* stale read on the superseding write's host */
    TC_HIST_RULE_G2,      /* stale read on another host, beyond B */
    TC_HIST_RULE_G5,      /* final read differs from the oracle, or the oracle is wrong */
    TC_HIST_RULE_STRICT,  /* read-derived order inverted (strict mode) */
    TC_HIST_RULE_COUNT
} tc_hist_rule;

/* The rule's name ("G1", "NOWHERE", ...; "none"). Static string. */
const char *tc_hist_rule_name(tc_hist_rule r);

typedef struct tc_hist_opts {
    int64_t bound_ns; /* B: cross-host staleness bound, 0 .. 2^61 ns */
    int strict;       /* 1: also check the read-derived order (STRICT) */
} tc_hist_opts;

/* B = 1 s (CACHE_MAX_STALENESS's default), strict off. */
#define TC_HIST_OPTS_DEFAULT {1000000000, 0}

/* One event of a report. Strings point into the history; NULL when absent. */
typedef struct tc_hist_event {
    const char *op;       /* "get", "set", "del", "clear_prefix", "clear"; "final" (an R
                             record), "oracle" (an O record); NULL: no such event */
    const char *proc;     /* NULL for the oracle */
    const char *host;     /* NULL for the oracle */
    uint64_t seq;         /* the operation's number (0 for R and O records) */
    const char *key;      /* key; prefix of a clear_prefix; "-" for a clear */
    const char *value;    /* set: the value written; get/R/O: the value read; NULL: none/miss */
    const char *result;   /* "ok", "miss", "err", "timeout", or "none" (no completion) */
    int64_t start_ns;     /* -1 for R and O records */
    int64_t end_ns;       /* -1 without a completion, for R and O */
} tc_hist_event;

typedef struct tc_hist_result {
    tc_hist_rule rule;                  /* the first violation's rule; NONE: the history passed */
    uint64_t count[TC_HIST_RULE_COUNT]; /* violations per rule (count[NONE] is 0) */
    uint64_t violations;                /* their sum */
    /* the first violation (zeroed when none) */
    const char *key;                    /* the key it is about */
    tc_hist_event read;                 /* the read: a get, a final read or the oracle */
    tc_hist_event write;                /* the set whose value it returned */
    tc_hist_event newer;                /* the superseding write (G1/G2/G7, G5 of the oracle);
                                           strict: the write of the later cluster */
    tc_hist_event observer;             /* strict: the op of the later cluster that preceded the
                                           read; G1/G2/G7: the same as newer */
    int64_t delta_ns;                   /* the Δ applied (0 or B), -1 when none applies */
    uint64_t faults;                    /* fault records overlapping [W.start, R.end] */
    /* what was checked */
    uint64_t ops;                       /* invokes */
    uint64_t reads;                     /* gets that hit (the reads checked) */
    uint64_t writes_ok;                 /* sets, dels and clears that completed with ok */
    uint64_t writes_indeterminate;      /* the others */
    uint64_t final_reads;               /* R records */
    uint64_t torn_lines;                /* torn last lines ignored by the loader */
} tc_hist_result;

/* Checks h under opts (NULL: TC_HIST_OPTS_DEFAULT). Returns 0 with the verdict in *r (rule
 * TC_HIST_RULE_NONE when every rule holds), and the report in report (reportlen bytes,
 * NUL-terminated, cut when too small; may be NULL). Returns -EINVAL when the history itself
 * is malformed (a completion without its invoke, an operation number used twice, a value
 * written twice, a completion earlier than its invoke, a result that does not fit the op,
 * a final read without an oracle record, bad opts), with the reason in report; or -ENOMEM.
 * Can be called again, with other options; records may be added in between. */
int tc_hist_check(tc_hist *h, const tc_hist_opts *opts, tc_hist_result *r, char *report,
                  size_t reportlen);

#endif /* TC_TEST_HISTORY_H */
