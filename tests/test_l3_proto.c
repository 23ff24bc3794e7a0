/*
 * test_l3_proto.c -- the RESP reader and command formatting of l3_proto.c, fed bytes
 * directly (no server): whole and partial replies, every type, nesting, nil, garbage,
 * limits, the glob escaping used by clear, and INFO field extraction.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "l3_proto.h"

static tc__proto_reader *feed_all(const char *s) {
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    assert_non_null(r);
    assert_int_equal(tc__proto_feed(r, s, strlen(s)), 0);
    return r;
}

static void test_simple_types(void **state) {
    (void)state;
    tc__proto_reader *r = feed_all("+OK\r\n-ERR bad thing\r\n:-42\r\n$5\r\nhello\r\n$-1\r\n$0\r\n\r\n");
    tc__reply *rep;
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_STATUS);
    assert_string_equal(rep->str, "OK");
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_ERROR);
    assert_string_equal(rep->str, "ERR bad thing");
    assert_true(tc__reply_is_error_code(rep, "ERR"));
    assert_false(tc__reply_is_error_code(rep, "ER"));
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_INTEGER);
    assert_int_equal(rep->integer, -42);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_STRING);
    assert_int_equal(rep->len, 5);
    assert_memory_equal(rep->str, "hello", 5);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_NIL);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_STRING);
    assert_int_equal(rep->len, 0);
    assert_int_equal(tc__proto_get(r, &rep), 0);
    assert_null(rep);
    assert_int_equal(tc__proto_buffered(r), 0);
    tc__proto_reader_free(r);
}

static void test_binary_bulk(void **state) {
    (void)state;
    const char bytes[] = "$6\r\na\0b\r\nc\r\n";
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    assert_int_equal(tc__proto_feed(r, bytes, sizeof bytes - 1), 0);
    tc__reply *rep;
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->len, 6);
    assert_memory_equal(rep->str, "a\0b\r\nc", 6);
    tc__proto_reader_free(r);
}

/* Every split point of a pipeline of replies gives the same replies. */
static void test_partial_every_split(void **state) {
    (void)state;
    const char *s = "*3\r\n$3\r\nfoo\r\n:7\r\n*2\r\n$-1\r\n+x\r\n:99\r\n";
    size_t n = strlen(s);
    for (size_t cut = 0; cut <= n; cut++) {
        tc__proto_reader *r = tc__proto_reader_new(NULL);
        tc__reply *rep;
        assert_int_equal(tc__proto_feed(r, s, cut), 0);
        int got = 0;
        tc__reply *first = NULL, *second = NULL;
        while (tc__proto_get(r, &rep) == 1) {
            if (got == 0) first = rep;
            else second = rep;
            got++;
        }
        assert_int_equal(tc__proto_feed(r, s + cut, n - cut), 0);
        while (tc__proto_get(r, &rep) == 1) {
            if (got == 0) first = rep;
            else second = rep;
            got++;
        }
        assert_int_equal(got, 2);
        assert_int_equal(first->type, TC__R_ARRAY);
        assert_int_equal(first->elements, 3);
        assert_string_equal(first->element[0]->str, "foo");
        assert_int_equal(first->element[1]->integer, 7);
        assert_int_equal(first->element[2]->type, TC__R_ARRAY);
        assert_int_equal(first->element[2]->element[0]->type, TC__R_NIL);
        assert_int_equal(first->element[2]->element[1]->type, TC__R_STATUS);
        assert_int_equal(second->integer, 99);
        tc__proto_reader_free(r);
    }
}

static void test_byte_by_byte(void **state) {
    (void)state;
    const char *s = "$11\r\nhello world\r\n";
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    tc__reply *rep = NULL;
    for (size_t i = 0; s[i]; i++) {
        assert_int_equal(tc__proto_get(r, &rep), 0);
        assert_int_equal(tc__proto_feed(r, s + i, 1), 0);
    }
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_string_equal(rep->str, "hello world");
    tc__proto_reader_free(r);
}

static void test_nested_arrays(void **state) {
    (void)state;
    /* depth 7 works (hiredis's limit) */
    tc__proto_reader *r = feed_all("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:5\r\n");
    tc__reply *rep;
    assert_int_equal(tc__proto_get(r, &rep), 1);
    for (int d = 0; d < 7; d++) {
        assert_int_equal(rep->type, TC__R_ARRAY);
        rep = rep->element[0];
    }
    assert_int_equal(rep->integer, 5);
    tc__proto_reader_free(r);
    /* deeper is refused as a protocol error, not a crash */
    r = feed_all("*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:5\r\n");
    assert_int_equal(tc__proto_get(r, &rep), TC_EPROTO);
    assert_true(strlen(tc__proto_error(r)) > 0);
    tc__proto_reader_free(r);
}

static void test_nil_and_empty_array(void **state) {
    (void)state;
    tc__proto_reader *r = feed_all("*-1\r\n*0\r\n");
    tc__reply *rep;
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_NIL);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->type, TC__R_ARRAY);
    assert_int_equal(rep->elements, 0);
    tc__proto_reader_free(r);
}

static void expect_garbage(const char *bytes) {
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    tc__reply *rep;
    int rc = tc__proto_feed(r, bytes, strlen(bytes));
    if (rc == 0) rc = tc__proto_get(r, &rep);
    assert_int_equal(rc, TC_EPROTO);
    assert_true(strlen(tc__proto_error(r)) > 0);
    /* the reader stays in error */
    assert_int_equal(tc__proto_get(r, &rep), TC_EPROTO);
    assert_int_equal(tc__proto_feed(r, "+OK\r\n", 5), TC_EPROTO);
    /* until reset */
    assert_int_equal(tc__proto_reader_reset(r), 0);
    assert_string_equal(tc__proto_error(r), "");
    assert_int_equal(tc__proto_feed(r, "+OK\r\n", 5), 0);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_string_equal(rep->str, "OK");
    tc__proto_reader_free(r);
}

static void test_garbage(void **state) {
    (void)state;
    expect_garbage("HTTP/1.1 200 OK\r\n");
    expect_garbage("!garbage\r\n");
    expect_garbage(":12x\r\n");
    expect_garbage("$abc\r\n");
    expect_garbage("$-5\r\n");
    expect_garbage("*-7\r\n");
    expect_garbage("*2\r\n:1\r\n?\r\n");
}

/* An absurd element count is refused before anything is allocated for it. */
static void test_limits(void **state) {
    (void)state;
    tc__proto_limits lim = {.max_elements = 100, .max_pending = 4096};
    tc__proto_reader *r = tc__proto_reader_new(&lim);
    tc__reply *rep;
    assert_int_equal(tc__proto_feed(r, "*2147483647\r\n", 13), 0);
    assert_int_equal(tc__proto_get(r, &rep), TC_EPROTO);
    assert_non_null(strstr(tc__proto_error(r), "too many elements"));
    tc__proto_reader_free(r);

    r = tc__proto_reader_new(&lim);
    char big[5000];
    memset(big, 'x', sizeof big);
    assert_int_equal(tc__proto_feed(r, "$5000\r\n", 7), 0);
    assert_int_equal(tc__proto_feed(r, big, sizeof big), TC_EPROTO);
    assert_non_null(strstr(tc__proto_error(r), "limit"));
    tc__proto_reader_free(r);

    /* the per-request limit can be raised, and resets with the replies */
    r = tc__proto_reader_new(&lim);
    tc__proto_set_max_pending(r, 1 << 20);
    assert_int_equal(tc__proto_feed(r, "$5000\r\n", 7), 0);
    assert_int_equal(tc__proto_feed(r, big, sizeof big), 0);
    assert_int_equal(tc__proto_feed(r, "\r\n", 2), 0);
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->len, 5000);
    tc__proto_reader_free(r);
}

/* Replies survive until the reset, and the arena is reused after it. */
static void test_arena_reuse(void **state) {
    (void)state;
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    for (int round = 0; round < 200; round++) {
        tc__proto_reset_replies(r);
        tc__reply *reps[50];
        char buf[64];
        for (int i = 0; i < 50; i++) {
            int n = snprintf(buf, sizeof buf, "$%d\r\n%0*d\r\n", 10, 10, round * 100 + i);
            assert_int_equal(tc__proto_feed(r, buf, (size_t)n), 0);
            assert_int_equal(tc__proto_get(r, &reps[i]), 1);
        }
        for (int i = 0; i < 50; i++) {
            snprintf(buf, sizeof buf, "%0*d", 10, round * 100 + i);
            assert_string_equal(reps[i]->str, buf);
        }
    }
    /* a big reply in between gets a chunk of its own and is freed by the reset */
    char *big = malloc(100000);
    memset(big, 'b', 100000);
    assert_int_equal(tc__proto_feed(r, "$100000\r\n", 9), 0);
    assert_int_equal(tc__proto_feed(r, big, 100000), 0);
    assert_int_equal(tc__proto_feed(r, "\r\n:1\r\n", 6), 0);
    tc__reply *a, *b;
    assert_int_equal(tc__proto_get(r, &a), 1);
    assert_int_equal(tc__proto_get(r, &b), 1);
    assert_int_equal(a->len, 100000);
    assert_memory_equal(a->str, big, 100000);
    assert_int_equal(b->integer, 1);
    free(big);
    tc__proto_reset_replies(r);
    tc__proto_reader_free(r);
}

static void test_format(void **state) {
    (void)state;
    tc__cmdbuf b = {0};
    assert_int_equal(tc__cmdbuf_cmd(&b, 3, "SET", (size_t)3, "k\0y", (size_t)3, "", (size_t)0), 0);
    assert_int_equal(tc__cmdbuf_cmd(&b, 1, "PING", (size_t)4), 0);
    const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$0\r\n\r\n*1\r\n$4\r\nPING\r\n";
    assert_int_equal(b.len, sizeof want - 1);
    assert_memory_equal(b.data, want, sizeof want - 1);
    assert_int_equal(b.ncmds, 2);
    assert_int_equal(tc__cmdbuf_cmd(&b, 0), TC_EINVAL);
    tc__cmdbuf_clear(&b, 1 << 20);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    tc__cmdbuf_clear(&b, 0);
    assert_null(b.data);
    tc__cmdbuf_free(&b);
}

/* Our formatter writes exactly what hiredis's redisFormatCommandArgv writes, for random
 * commands: 1..300 arguments of 0..70000 random bytes (lengths around powers of ten too). */
static void test_format_matches_hiredis(void **state) {
    (void)state;
    uint64_t rng = 0x1234567;
    static char pool[200000];
    for (size_t i = 0; i < sizeof pool; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        pool[i] = (char)(rng >> 56);
    }
    const size_t special[] = {0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 65535, 65536, 70000};
    tc__cmdbuf b = {0};
    for (int round = 0; round < 300; round++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int argc = 1 + (int)((rng >> 33) % (round % 10 == 0 ? 300 : 6));
        const char *argv[300];
        size_t lens[300];
        for (int i = 0; i < argc; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t len = (rng >> 40) % 3 == 0 ? special[(rng >> 20) % 13] : (size_t)((rng >> 33) % 300);
            argv[i] = pool + (rng >> 45) % (sizeof pool - len);
            lens[i] = len;
        }
        char *want = NULL;
        int n = redisFormatCommandArgv(&want, argc, argv, lens);
        assert_true(n > 0);
        tc__cmdbuf_clear(&b, 1 << 20);
        assert_int_equal(tc__cmdbuf_argv(&b, argc, argv, lens), 0);
        assert_int_equal(b.len, (size_t)n);
        assert_memory_equal(b.data, want, (size_t)n);
        free(want);
    }
    assert_int_equal(tc__cmdbuf_argv(&b, 0, NULL, NULL), TC_EINVAL);
    /* a secret buffer still formats the same bytes */
    tc__cmdbuf s = {0};
    s.secret = 1;
    const char *av[3] = {"AUTH", "user", "pw"};
    size_t al[3] = {4, 4, 2};
    for (int i = 0; i < 100; i++) assert_int_equal(tc__cmdbuf_argv(&s, 3, av, al), 0);
    assert_int_equal(s.len, 100 * strlen("*3\r\n$4\r\nAUTH\r\n$4\r\nuser\r\n$2\r\npw\r\n"));
    tc__cmdbuf_free(&s);
    tc__cmdbuf_free(&b);
}

static void test_glob_prefix(void **state) {
    (void)state;
    char out[64];
    size_t n = tc__glob_prefix(out, "ns:a*[b]?\\c", 11);
    assert_int_equal(n, 17);
    assert_memory_equal(out, "ns:a\\*\\[b\\]\\?\\\\c*", 17);
    n = tc__glob_prefix(out, "", 0);
    assert_int_equal(n, 1);
    assert_memory_equal(out, "*", 1);
    n = tc__glob_prefix(out, "a\0b", 3);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "a\0b*", 4);
}

static void test_info_field(void **state) {
    (void)state;
    const char *info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:0\r\nused_memory:123456\r\n"
                       "used_memory_human:120K\r\n";
    char v[32];
    assert_int_equal(tc__info_field(info, strlen(info), "redis_version", v, sizeof v), 1);
    assert_string_equal(v, "7.0.15");
    assert_int_equal(tc__info_field(info, strlen(info), "used_memory", v, sizeof v), 1);
    assert_string_equal(v, "123456");
    assert_int_equal(tc__info_field(info, strlen(info), "used_mem", v, sizeof v), 0);
    assert_int_equal(tc__info_field(info, strlen(info), "redis_version", v, 4), 1);
    assert_string_equal(v, "7.0");
}

/* A reply to a request that carried a secret is never shown as the server sent it: only our
 * copy of a known argument-free message, or the error code. Other replies are escaped. */
static void test_reply_text_redacts_secret_replies(void **state) {
    (void)state;
    const char *stream =
        "-ERR unknown command 'AUTH', with args beginning with: 'MyS3cretPassw0rd' \r\n"
        "-ERR bad credentials MyS3cretPassw0rd\r\n"
        "-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        "-MyS3cretPassw0rd\r\n"
        "-ERR invalid password MyS3cretPassw0rd\r\n";
    tc__proto_reader *r = tc__proto_reader_new(NULL);
    assert_non_null(r);
    tc__proto_set_secret(r, 1);
    assert_int_equal(tc__proto_feed(r, stream, strlen(stream)), 0);
    const char *want[] = {
        "ERR unknown command...",
        "ERR (the rest withheld: the request carried a secret)",
        "WRONGPASS invalid username-password pair or user is disabled.",
        "an error (withheld: the request carried a secret)",
        "ERR invalid password...",
    };
    char buf[256];
    for (int i = 0; i < 5; i++) {
        tc__reply *rep;
        assert_int_equal(tc__proto_get(r, &rep), 1);
        assert_int_equal(rep->secret, 1);
        assert_string_equal(tc__reply_text(rep, buf, sizeof buf), want[i]);
        assert_null(strstr(buf, "MyS3cret"));
    }
    /* a new request without a secret: shown, with control bytes escaped */
    tc__proto_reset_replies(r);
    tc__proto_set_secret(r, 0);
    const char *plain = "-ERR evil\x1b[2J\nline \\ \xff end\r\n";
    assert_int_equal(tc__proto_feed(r, plain, strlen(plain)), 0);
    tc__reply *rep;
    assert_int_equal(tc__proto_get(r, &rep), 1);
    assert_int_equal(rep->secret, 0);
    assert_string_equal(tc__reply_text(rep, buf, sizeof buf), "ERR evil\\x1b[2J\\x0aline \\x5c \\xff end");
    /* cut to the buffer, always terminated */
    char small[8];
    assert_true(strlen(tc__reply_text(rep, small, sizeof small)) < sizeof small);
    tc__proto_reader_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_types),
        cmocka_unit_test(test_binary_bulk),
        cmocka_unit_test(test_partial_every_split),
        cmocka_unit_test(test_byte_by_byte),
        cmocka_unit_test(test_nested_arrays),
        cmocka_unit_test(test_nil_and_empty_array),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_arena_reuse),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_matches_hiredis),
        cmocka_unit_test(test_glob_prefix),
        cmocka_unit_test(test_info_field),
        cmocka_unit_test(test_reply_text_redacts_secret_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
