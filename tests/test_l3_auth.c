/*
 * test_l3_auth.c -- authentication of the L3 tier against a real redis-server with
 * requirepass and an ACL user: right and wrong passwords, a missing password, a user whose
 * ACL forbids our keys, recovery once the server accepts the password, and that the
 * password never appears in a log message, an error message or the statistics -- also when
 * the server's reply to AUTH echoes it (AUTH renamed away, or a proxy that repeats it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "helpers/redis_server.h"
#include "tier.h"
#include "util.h"

#define PW "s3cret-Default-pw"
#define ALICE_PW "alice-Pa55word"
#define WRONG_PW "wrong-Pa55word"

static tc_test_redis srv;

typedef struct logbuf {
    char text[32768];
    size_t len;
} logbuf;

static void capture_log(void *ud, tc_log_level level, const char *msg) {
    logbuf *b = ud;
    (void)level;
    int n = snprintf(b->text + b->len, sizeof b->text - b->len, "%s\n", msg);
    if (n > 0 && b->len + (size_t)n < sizeof b->text) b->len += (size_t)n;
}

static logbuf lb;

static int setup(void **state) {
    (void)state;
    if (!tc_test_have_redis()) return -1;
    return tc_test_redis_start(&srv, "requirepass " PW "\n"
                                     "user alice on >" ALICE_PW " ~tctest:* &* +@all\n"
                                     "user bob on >bob-pw ~bob:* &* +@all\n");
}

static int teardown(void **state) {
    (void)state;
    tc_test_redis_stop(&srv);
    return 0;
}

static void opts(tc__opts *o, const char *user, const char *pw) {
    tc_test_l3_options(o, srv.port);
    if (user) snprintf(o->redis_username, sizeof o->redis_username, "%s", user);
    if (pw) snprintf(o->redis_password, sizeof o->redis_password, "%s", pw);
    o->log_fn = capture_log;
    o->log_userdata = &lb;
}

/* Stats extras as one string, to search for leaks. */
static void stats_text(tc__tier *t, char *out, size_t cap) {
    tc_tier_stats st = TC_TIER_STATS_INIT;
    memset(&st, 0, sizeof st);
    t->ops->stats(t, &st);
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < st.nextra; i++) {
        int n = snprintf(out + len, cap - len, "%s=%s;", st.extra[i].name, st.extra[i].value);
        if (n > 0 && len + (size_t)n < cap) len += (size_t)n;
    }
}

static void assert_no_secret(const char *text) {
    assert_null(strstr(text, PW));
    assert_null(strstr(text, ALICE_PW));
    assert_null(strstr(text, WRONG_PW));
}

static tc__tier *open_ok(tc__opts *o, char *err, size_t errlen) {
    tc__tier *t = NULL;
    int rc = tc__l3_open(o, &t, err, errlen);
    assert_int_equal(rc, 0);
    assert_no_secret(err);
    return t;
}

static void test_requirepass_right(void **state) {
    (void)state;
    tc__opts o;
    opts(&o, NULL, PW);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->set(t, &TC__KEY("a", 1), "v", 1, TC_TTL_NONE, NULL), 0);
    char buf[4];
    tc__sink s = {.buf = buf, .cap = sizeof buf};
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), &s, &ttl), 0);
    char st[4096];
    stats_text(t, st, sizeof st);
    assert_non_null(strstr(st, "circuit=closed"));
    assert_no_secret(st);
    t->ops->close(t);
}

static void test_requirepass_wrong(void **state) {
    (void)state;
    lb.len = 0;
    lb.text[0] = '\0';
    tc__opts o;
    opts(&o, NULL, WRONG_PW);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    /* the reason reached the log, clearly, and without the password */
    assert_non_null(strstr(lb.text, "authentication"));
    assert_non_null(strstr(lb.text, "REDIS_PASSWORD"));
    assert_non_null(strstr(lb.text, "TC_EAUTH"));
    /* calls fail with TC_EAUTH, at once */
    char buf[4];
    tc__sink s = {.buf = buf, .cap = sizeof buf};
    int64_t ttl;
    double t0 = tc_test_now_ms();
    for (int i = 0; i < 100; i++) assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), &s, &ttl), TC_EAUTH);
    assert_true(tc_test_now_ms() - t0 < 200);
    assert_int_equal(t->ops->set(t, &TC__KEY("a", 1), "v", 1, TC_TTL_NONE, NULL), TC_EAUTH);
    char st[4096];
    stats_text(t, st, sizeof st);
    assert_non_null(strstr(st, "circuit=open"));
    assert_no_secret(st);
    assert_no_secret(lb.text);
    t->ops->close(t);
}

static void test_no_password_when_required(void **state) {
    (void)state;
    lb.len = 0;
    lb.text[0] = '\0';
    tc__opts o;
    opts(&o, NULL, NULL);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_non_null(strstr(lb.text, "requires authentication"));
    assert_int_equal(t->ops->del(t, &TC__KEY("a", 1)), TC_EAUTH);
    t->ops->close(t);
}

static void test_acl_user_right(void **state) {
    (void)state;
    tc__opts o;
    opts(&o, "alice", ALICE_PW);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->set(t, &TC__KEY("x", 1), "v", 1, 5000, NULL), 0);
    char buf[4];
    tc__sink s = {.buf = buf, .cap = sizeof buf};
    int64_t ttl;
    assert_int_equal(t->ops->get(t, &TC__KEY("x", 1), &s, &ttl), 0);
    assert_true(ttl > 0 && ttl <= 5000);
    /* the server sees our pooled connection as alice's */
    redisReply *r = tc_test_raw(srv.port, PW, "CLIENT", "LIST", NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STRING);
    assert_non_null(strstr(r->str, "user=alice"));
    freeReplyObject(r);
    t->ops->close(t);
}

static void test_acl_user_wrong(void **state) {
    (void)state;
    lb.len = 0;
    lb.text[0] = '\0';
    tc__opts o;
    opts(&o, "alice", WRONG_PW);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_non_null(strstr(lb.text, "user 'alice'"));
    assert_non_null(strstr(lb.text, "WRONGPASS"));
    assert_int_equal(t->ops->set(t, &TC__KEY("x", 1), "v", 1, TC_TTL_NONE, NULL), TC_EAUTH);
    assert_no_secret(lb.text);
    t->ops->close(t);
    /* the right password of another user is still wrong for this one */
    lb.len = 0;
    opts(&o, "bob", ALICE_PW);
    t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->set(t, &TC__KEY("x", 1), "v", 1, TC_TTL_NONE, NULL), TC_EAUTH);
    assert_no_secret(lb.text);
    t->ops->close(t);
}

/* bob may only touch bob:*; our keys are tctest:* -> the server says NOPERM. */
static void test_acl_forbidden_keys(void **state) {
    (void)state;
    tc__opts o;
    opts(&o, "bob", "bob-pw");
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->set(t, &TC__KEY("x", 1), "v", 1, TC_TTL_NONE, NULL), TC_EPERM);
    /* the server answered: the tier is up, only the keys are forbidden */
    char st[4096];
    stats_text(t, st, sizeof st);
    assert_non_null(strstr(st, "circuit=closed"));
    t->ops->close(t);
    /* with the namespace the ACL allows, bob works */
    opts(&o, "bob", "bob-pw");
    snprintf(o.redis_key_prefix, sizeof o.redis_key_prefix, "bob:");
    t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->set(t, &TC__KEY("x", 1), "v", 1, TC_TTL_NONE, NULL), 0);
    assert_int_equal(t->ops->clear(t), 0);
    t->ops->close(t);
}

/* A password the server did not accept at start is retried: once the server accepts it
 * (here: the operator changes requirepass), the tier comes back by itself. */
static void test_recovers_when_password_accepted(void **state) {
    (void)state;
    lb.len = 0;
    tc__opts o;
    opts(&o, NULL, WRONG_PW);
    char err[256] = "";
    tc__tier *t = open_ok(&o, err, sizeof err);
    assert_int_equal(t->ops->del(t, &TC__KEY("a", 1)), TC_EAUTH);
    redisReply *r = tc_test_raw(srv.port, PW, "CONFIG", "SET", "requirepass", WRONG_PW);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    double t0 = tc_test_now_ms();
    int rc;
    while ((rc = t->ops->del(t, &TC__KEY("a", 1))) != 0 && tc_test_now_ms() - t0 < 5000) {
        struct timespec ts = {0, 20000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(rc, 0);
    assert_true(tc_test_now_ms() - t0 < 2500);
    assert_non_null(strstr(lb.text, "available again"));
    t->ops->close(t);
    r = tc_test_raw(srv.port, WRONG_PW, "CONFIG", "SET", "requirepass", PW);
    assert_non_null(r);
    freeReplyObject(r);
    assert_no_secret(lb.text);
}

/* The password of test_reply_echoing_password_never_logged (the reproducer). */
#define ECHO_PW "MyS3cretPassw0rd"

static void assert_no_echo(const char *text) {
    assert_null(strstr(text, ECHO_PW));
    assert_null(strstr(text, "MyS3cret")); /* nor the start of it */
}

/* A server started with `rename-command AUTH ""` answers our AUTH with "ERR unknown command
 * 'AUTH', with args beginning with: '<password>'". Every message the library produces -- the
 * open, the probes that retry the handshake, the statistics, the public API's -- is captured:
 * the password is in none of them, and the log still says what is wrong. */
static void test_reply_echoing_password_never_logged(void **state) {
    (void)state;
    tc_test_redis renamed;
    assert_int_equal(tc_test_redis_start(&renamed, "rename-command AUTH \"\""), 0);
    /* the server does echo it: without the fix the test sees it in the log */
    redisReply *r = tc_test_raw(renamed.port, NULL, "AUTH", ECHO_PW, NULL, NULL);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_ERROR);
    assert_non_null(strstr(r->str, ECHO_PW));
    freeReplyObject(r);
    const char *users[] = {NULL, "alice"};
    for (int u = 0; u < 2; u++) {
        lb.len = 0;
        lb.text[0] = '\0';
        tc__opts o;
        opts(&o, users[u], ECHO_PW);
        o.redis_port = renamed.port;
        char err[512] = "";
        tc__tier *t = NULL;
        assert_int_equal(tc__l3_open(&o, &t, err, sizeof err), 0);
        char buf[4];
        tc__sink s = {.buf = buf, .cap = sizeof buf};
        int64_t ttl;
        assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), &s, &ttl), TC_EAUTH);
        /* past the cool-down, a probe does the handshake again, and logs again */
        struct timespec ts = {0, 750 * 1000000L};
        nanosleep(&ts, NULL);
        assert_int_equal(t->ops->get(t, &TC__KEY("a", 1), &s, &ttl), TC_EAUTH);
        char st[4096];
        stats_text(t, st, sizeof st);
        t->ops->close(t);
        fprintf(stderr, "%s", lb.text);
        assert_no_echo(lb.text);
        assert_no_echo(err);
        assert_no_echo(st);
        /* and the log still says what is wrong */
        assert_non_null(strstr(lb.text, "ERR unknown command"));
        assert_non_null(strstr(lb.text, "renamed or disabled"));
    }
    /* the public API over the same server: open, calls, documents */
    lb.len = 0;
    lb.text[0] = '\0';
    tc__opts o;
    opts(&o, NULL, ECHO_PW);
    o.redis_port = renamed.port;
    tc_cache *c = NULL;
    char err[512] = "";
    assert_int_equal(tc__open_opts(&o, &c, err, sizeof err), 0);
    assert_int_equal(tc_set(c, "k", 1, "v", 1, 0), TC_ETIER);
    char *doc = NULL;
    assert_int_equal(tc_stats_json(c, &doc), 0);
    assert_no_echo(doc);
    tc_free(doc);
    assert_int_equal(tc_health_json(c, &doc), 0);
    assert_no_echo(doc);
    tc_free(doc);
    tc_close(c);
    assert_no_echo(lb.text);
    assert_no_echo(err);
    tc_test_redis_stop(&renamed);
}

/* Something in front of Redis (a proxy) that repeats the password without quotes: still
 * never shown; the code word is. */
static void test_proxy_echoing_password_never_logged(void **state) {
    (void)state;
    const char *answer = "-ERR bad credentials for default: " ECHO_PW "\r\n";
    tc_test_fake f;
    assert_int_equal(tc_test_fake_server_start(&f, answer, strlen(answer), NULL, 0), 0);
    lb.len = 0;
    lb.text[0] = '\0';
    tc__opts o;
    opts(&o, NULL, ECHO_PW);
    o.redis_port = f.port;
    char err[512] = "";
    tc__tier *t = NULL;
    assert_int_equal(tc__l3_open(&o, &t, err, sizeof err), 0);
    t->ops->close(t);
    tc_test_fake_server_stop(&f);
    assert_non_null(strstr(lb.text, "authentication as user 'default' failed: ERR"));
    assert_no_echo(lb.text);
    assert_no_echo(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requirepass_right),
        cmocka_unit_test(test_requirepass_wrong),
        cmocka_unit_test(test_no_password_when_required),
        cmocka_unit_test(test_acl_user_right),
        cmocka_unit_test(test_acl_user_wrong),
        cmocka_unit_test(test_acl_forbidden_keys),
        cmocka_unit_test(test_recovers_when_password_accepted),
        cmocka_unit_test(test_reply_echoing_password_never_logged),
        cmocka_unit_test(test_proxy_echoing_password_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
