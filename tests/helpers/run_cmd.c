/*
 * run_cmd.c -- test helper: fork/exec a program with pipes on its three standard streams.
 *
 * The parent feeds stdin and drains stdout and stderr in one poll() loop, so a child that
 * writes a lot before reading (or never reads) cannot deadlock the test. SIGPIPE is ignored
 * in the parent while it writes (a child that exits without reading its input is normal) and
 * restored to the default in the child before exec.
 */
#include "helpers/run_cmd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Variables passed from the test's environment to the child, so sanitizer builds keep their
 * settings in the child processes they test. */
static const char *const passthrough[] = {"ASAN_OPTIONS", "UBSAN_OPTIONS", "TSAN_OPTIONS",
                                          "LSAN_OPTIONS", NULL};

typedef struct buf {
    char *p;
    size_t len, cap;
} buf;

static int buf_append(buf *b, const char *p, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1) cap *= 2;
        char *q = realloc(b->p, cap);
        if (q == NULL) return -1;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static long long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The child's environment: env, then the passthrough variables the test process has and env
 * does not set. Returns a malloc'd array of borrowed strings, or NULL. */
static char **build_env(const char *const *env) {
    size_t n = 0;
    while (env && env[n]) n++;
    char **e = calloc(n + sizeof passthrough / sizeof passthrough[0] + 1, sizeof *e);
    if (e == NULL) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) e[k++] = (char *)env[i];
    for (size_t i = 0; passthrough[i]; i++) {
        size_t nl = strlen(passthrough[i]);
        int given = 0;
        for (size_t j = 0; j < n; j++)
            if (strncmp(env[j], passthrough[i], nl) == 0 && env[j][nl] == '=') given = 1;
        const char *v = given ? NULL : getenv(passthrough[i]);
        if (v == NULL) continue;
        /* environ's own "NAME=value" string: find it so no allocation is needed */
        extern char **environ;
        for (char **p = environ; *p; p++)
            if (strncmp(*p, passthrough[i], nl) == 0 && (*p)[nl] == '=') {
                e[k++] = *p;
                break;
            }
    }
    e[k] = NULL;
    return e;
}

int tc_test_run_cmd(const char *const *argv, const char *const *env, const void *in,
                    size_t in_len, int timeout_ms, tc_test_run *r) {
    memset(r, 0, sizeof *r);
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC) != 0) return -1;
    if (pipe2(pout, O_CLOEXEC) != 0) {
        close(pin[0]), close(pin[1]);
        return -1;
    }
    if (pipe2(perr, O_CLOEXEC) != 0) {
        close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
        return -1;
    }
    char **envp = build_env(env);
    if (envp == NULL) return -1;

    pid_t pid = fork();
    if (pid < 0) {
        free(envp);
        return -1;
    }
    if (pid == 0) {
        signal(SIGPIPE, SIG_DFL);
        dup2(pin[0], STDIN_FILENO);
        dup2(pout[1], STDOUT_FILENO);
        dup2(perr[1], STDERR_FILENO);
        execve(argv[0], (char *const *)argv, envp);
        _exit(127);
    }
    free(envp);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);

    struct sigaction ign = {0}, old;
    ign.sa_handler = SIG_IGN;
    sigaction(SIGPIPE, &ign, &old);

    buf out = {0}, err = {0};
    int in_fd = pin[1];
    size_t in_off = 0;
    if (in == NULL || in_len == 0) {
        close(in_fd);
        in_fd = -1;
    } else {
        fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    }
    int out_fd = pout[0], err_fd = perr[0];
    long long deadline = now_ms() + timeout_ms;
    int failed = 0;
    while (out_fd >= 0 || err_fd >= 0) {
        struct pollfd pf[3];
        int np = 0, i_out = -1, i_err = -1, i_in = -1;
        if (out_fd >= 0) i_out = np, pf[np++] = (struct pollfd){out_fd, POLLIN, 0};
        if (err_fd >= 0) i_err = np, pf[np++] = (struct pollfd){err_fd, POLLIN, 0};
        if (in_fd >= 0) i_in = np, pf[np++] = (struct pollfd){in_fd, POLLOUT, 0};
        long long left = deadline - now_ms();
        if (left <= 0) {
            r->timed_out = 1;
            kill(pid, SIGKILL);
            break;
        }
        int n = poll(pf, (nfds_t)np, (int)left);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            failed = 1;
            kill(pid, SIGKILL);
            break;
        }
        char chunk[65536];
        if (i_out >= 0 && pf[i_out].revents) {
            ssize_t k = read(out_fd, chunk, sizeof chunk);
            if (k > 0) failed |= buf_append(&out, chunk, (size_t)k) != 0;
            else if (k == 0 || errno != EINTR) close(out_fd), out_fd = -1;
        }
        if (i_err >= 0 && pf[i_err].revents) {
            ssize_t k = read(err_fd, chunk, sizeof chunk);
            if (k > 0) failed |= buf_append(&err, chunk, (size_t)k) != 0;
            else if (k == 0 || errno != EINTR) close(err_fd), err_fd = -1;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t k = write(in_fd, (const char *)in + in_off, in_len - in_off);
            if (k > 0) in_off += (size_t)k;
            if ((k < 0 && errno != EINTR && errno != EAGAIN) || in_off == in_len)
                close(in_fd), in_fd = -1;
        }
    }
    if (in_fd >= 0) close(in_fd);
    if (out_fd >= 0) close(out_fd);
    if (err_fd >= 0) close(err_fd);
    sigaction(SIGPIPE, &old, NULL);

    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : WIFSIGNALED(ws) ? -WTERMSIG(ws) : -1;
    /* empty captures are "" rather than NULL, so tests can use string functions directly */
    if (out.p == NULL) failed |= buf_append(&out, "", 0) != 0;
    if (err.p == NULL) failed |= buf_append(&err, "", 0) != 0;
    r->out = out.p, r->out_len = out.len;
    r->err = err.p, r->err_len = err.len;
    if (failed) {
        tc_test_run_free(r);
        return -1;
    }
    return 0;
}

void tc_test_run_free(tc_test_run *r) {
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
    r->out_len = r->err_len = 0;
}

int tc_test_contains(const char *haystack, const char *needle) {
    return haystack != NULL && strstr(haystack, needle) != NULL;
}
