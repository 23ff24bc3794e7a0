/*
 * redis_server.c -- the test harness of redis_server.h: real redis-server processes on free
 * loopback ports, certificates made with the openssl command, a raw client and a fake server.
 *
 * Readiness is read from the server's own log ("Ready to accept connections"), which works
 * the same for plain and TLS servers and does not depend on the client code under test.
 */
#include "redis_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

double tc_test_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

void tc_test_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int tc_test_have_redis(void) { return system("command -v redis-server >/dev/null 2>&1") == 0; }

int tc_test_redis_setup(tc_test_redis *r, const char *extra) {
    if (!tc_test_have_redis()) {
        fprintf(stderr, "redis-server not found: install the redis-server package\n");
        return -1;
    }
    return tc_test_redis_start(r, extra);
}

int tc_test_free_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static int write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return -1;
    fputs(text, f);
    return fclose(f);
}

/* 1 when the log says the server is ready; -1 when it says it failed to bind. */
static int log_state(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return 0;
    char line[1024];
    int st = 0;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "Ready to accept connections")) st = 1;
        if (strstr(line, "Address already in use") || strstr(line, "Could not create server TCP") ||
            strstr(line, "Failed listening")) st = -1;
    }
    fclose(f);
    return st;
}

static void dump_log(const char *path) {
    FILE *f = fopen(path, "r");
    if (f == NULL) return;
    char line[1024];
    fprintf(stderr, "---- %s ----\n", path);
    while (fgets(line, sizeof line, f)) fputs(line, stderr);
    fclose(f);
}

/* Servers and directories still alive, so that a test that fails half-way (cmocka jumps out
 * of it, past its tc_test_redis_stop) leaves nothing behind when the process exits. */
#define TC_TEST_MAX_LIVE 64
static struct {
    pid_t pid;
    char dir[256];
} live[TC_TEST_MAX_LIVE];
static int live_registered;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw);

static void live_cleanup(void) {
    for (int i = 0; i < TC_TEST_MAX_LIVE; i++) {
        if (live[i].pid > 0) {
            kill(live[i].pid, SIGKILL);
            waitpid(live[i].pid, NULL, 0);
        }
        if (live[i].dir[0]) nftw(live[i].dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        live[i].pid = 0;
        live[i].dir[0] = '\0';
    }
}

/* Records dir's current server pid (0: none); dir "" entries are free. */
static void live_set(const char *dir, pid_t pid) {
    if (!live_registered) {
        atexit(live_cleanup);
        live_registered = 1;
    }
    int free_slot = -1;
    for (int i = 0; i < TC_TEST_MAX_LIVE; i++) {
        if (strcmp(live[i].dir, dir) == 0) {
            live[i].pid = pid;
            return;
        }
        if (free_slot < 0 && live[i].dir[0] == '\0') free_slot = i;
    }
    if (free_slot >= 0) {
        snprintf(live[free_slot].dir, sizeof live[free_slot].dir, "%s", dir);
        live[free_slot].pid = pid;
    }
}

static void live_forget(const char *dir) {
    for (int i = 0; i < TC_TEST_MAX_LIVE; i++)
        if (strcmp(live[i].dir, dir) == 0) {
            live[i].dir[0] = '\0';
            live[i].pid = 0;
        }
}

/* Starts redis-server on r->conf and waits for it. 0, -1 (failed), -2 (port taken). */
static int spawn_and_wait(tc_test_redis *r) {
    if (truncate(r->log, 0) != 0 && errno != ENOENT) return -1;
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        int dn = open("/dev/null", O_RDWR);
        if (dn >= 0) {
            dup2(dn, 0);
            dup2(dn, 1);
            dup2(dn, 2);
        }
        execlp("redis-server", "redis-server", r->conf, (char *)NULL);
        _exit(127);
    }
    r->pid = pid;
    live_set(r->dir, pid);
    double t0 = tc_test_now_ms();
    while (tc_test_now_ms() - t0 < 15000) {
        int st = log_state(r->log);
        if (st == 1) return 0;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            live_set(r->dir, 0);
            if (log_state(r->log) == -1) return -2;
            fprintf(stderr, "redis-server exited during start-up\n");
            dump_log(r->log);
            return -1;
        }
        tc_test_sleep_ms(5);
    }
    fprintf(stderr, "redis-server did not become ready within 15 s\n");
    dump_log(r->log);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    r->pid = 0;
    live_set(r->dir, 0);
    return -1;
}

static int start_common(tc_test_redis *r, int tls, const tc_test_certs *c, const char *auth_clients,
                        const char *extra, int fixed_port) {
    if (r->dir[0] == '\0') {
        snprintf(r->dir, sizeof r->dir, "/tmp/tc-redis-XXXXXX");
        if (mkdtemp(r->dir) == NULL) {
            perror("mkdtemp");
            return -1;
        }
        live_set(r->dir, 0);
    }
    snprintf(r->conf, sizeof r->conf, "%s/redis.conf", r->dir);
    snprintf(r->log, sizeof r->log, "%s/redis.log", r->dir);
    r->tls = tls;
    for (int attempt = 0; attempt < 8; attempt++) {
        r->port = fixed_port ? fixed_port : tc_test_free_port();
        if (r->port <= 0) return -1;
        char *conf = NULL;
        size_t clen = 0;
        FILE *f = open_memstream(&conf, &clen);
        if (f == NULL) return -1;
        fprintf(f, "bind 127.0.0.1\n");
        if (tls) {
            fprintf(f, "port 0\ntls-port %d\n", r->port);
            fprintf(f, "tls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n", c->server_crt,
                    c->server_key, c->ca);
            fprintf(f, "tls-auth-clients %s\n", auth_clients ? auth_clients : "no");
        } else {
            fprintf(f, "port %d\n", r->port);
        }
        fprintf(f, "dir %s\nlogfile %s\nsave \"\"\nappendonly no\ndaemonize no\n", r->dir, r->log);
        if (extra) fprintf(f, "%s\n", extra);
        fclose(f);
        int w = write_file(r->conf, conf);
        free(conf);
        if (w != 0) return -1;
        int rc = spawn_and_wait(r);
        if (rc == 0) return 0;
        if (rc == -1 || fixed_port) return -1;
        /* -2: the port was taken between our probe and the server's bind; try another */
    }
    fprintf(stderr, "could not find a free port for redis-server\n");
    return -1;
}

int tc_test_redis_start(tc_test_redis *r, const char *extra) {
    memset(r, 0, sizeof *r);
    return start_common(r, 0, NULL, NULL, extra, 0);
}

int tc_test_redis_start_port(tc_test_redis *r, int port, const char *extra) {
    memset(r, 0, sizeof *r);
    return start_common(r, 0, NULL, NULL, extra, port);
}

int tc_test_redis_start_tls(tc_test_redis *r, const tc_test_certs *c, const char *auth_clients,
                            const char *extra) {
    memset(r, 0, sizeof *r);
    return start_common(r, 1, c, auth_clients, extra, 0);
}

int tc_test_redis_restart(tc_test_redis *r) {
    if (r->pid) tc_test_redis_signal(r, SIGKILL);
    /* the same port: retry briefly in case the old socket lingers */
    for (int i = 0; i < 50; i++) {
        int rc = spawn_and_wait(r);
        if (rc == 0) return 0;
        if (rc == -1) return -1;
        tc_test_sleep_ms(20);
    }
    return -1;
}

void tc_test_redis_signal(tc_test_redis *r, int sig) {
    if (r->pid <= 0) return;
    kill(r->pid, sig);
    if (sig == SIGKILL || sig == SIGTERM) {
        waitpid(r->pid, NULL, 0);
        r->pid = 0;
        live_set(r->dir, 0);
    }
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tc_test_redis_stop(tc_test_redis *r) {
    if (r->pid > 0) {
        kill(r->pid, SIGCONT);
        kill(r->pid, SIGTERM);
        double t0 = tc_test_now_ms();
        int done = 0;
        while (tc_test_now_ms() - t0 < 5000) {
            if (waitpid(r->pid, NULL, WNOHANG) == r->pid) {
                done = 1;
                break;
            }
            tc_test_sleep_ms(5);
        }
        if (!done) {
            kill(r->pid, SIGKILL);
            waitpid(r->pid, NULL, 0);
        }
        r->pid = 0;
    }
    if (r->dir[0]) {
        nftw(r->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        live_forget(r->dir);
    }
    r->dir[0] = '\0';
}

/* ------------------------------------------------------------------------ */
/* Certificates                                                             */
/* ------------------------------------------------------------------------ */

static int run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "%s >/dev/null 2>&1", cmd);
    int rc = system(full);
    if (rc != 0) fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc == 0 ? 0 : -1;
}

int tc_test_make_certs(const char *d, tc_test_certs *c) {
    snprintf(c->ca, sizeof c->ca, "%s/ca.crt", d);
    snprintf(c->ca_key, sizeof c->ca_key, "%s/ca.key", d);
    snprintf(c->server_crt, sizeof c->server_crt, "%s/server.crt", d);
    snprintf(c->server_key, sizeof c->server_key, "%s/server.key", d);
    snprintf(c->client_crt, sizeof c->client_crt, "%s/client.crt", d);
    snprintf(c->client_key, sizeof c->client_key, "%s/client.key", d);
    snprintf(c->other_ca, sizeof c->other_ca, "%s/other-ca.crt", d);
    const char *ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    char ext[600];
    snprintf(ext, sizeof ext, "%s/server.ext", d);
    if (write_file(ext, "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")) return -1;
    char cext[600];
    snprintf(cext, sizeof cext, "%s/client.ext", d);
    if (write_file(cext, "extendedKeyUsage=clientAuth\n")) return -1;
    if (run("openssl req -x509 %s -keyout %s -out %s -days 2 -subj /CN=tiercache-test-ca "
            "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
            ec, c->ca_key, c->ca))
        return -1;
    if (run("openssl req -x509 %s -keyout %s/other-ca.key -out %s -days 2 -subj /CN=unrelated-ca "
            "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign",
            ec, d, c->other_ca))
        return -1;
    if (run("openssl req %s -keyout %s -out %s/server.csr -subj /CN=localhost", ec, c->server_key, d)) return -1;
    if (run("openssl x509 -req -in %s/server.csr -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s",
            d, c->ca, c->ca_key, c->server_crt, ext))
        return -1;
    if (run("openssl req %s -keyout %s -out %s/client.csr -subj /CN=tiercache-client", ec, c->client_key, d))
        return -1;
    if (run("openssl x509 -req -in %s/client.csr -CA %s -CAkey %s -CAcreateserial -out %s -days 2 -extfile %s",
            d, c->ca, c->ca_key, c->client_crt, cext))
        return -1;
    /* redis-server reads the key as another user in some setups: keep them readable */
    chmod(c->server_key, 0644);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* The host's coherence segment a test process's L3 caches share: named after the process, and
 * removed when it exits (the first caller registers that; children after fork() do not own it). */
static pid_t coh_owner;
static void coh_cleanup(void) {
    if (getpid() != coh_owner) return;
    char name[64];
    snprintf(name, sizeof name, "tctest-%d", (int)coh_owner);
    (void)tc_shared_destroy(name);
}

void tc_test_l3_options(tc__opts *o, int port) {
    tc__opts_init(o);
    if (coh_owner == 0) {
        coh_owner = getpid();
        atexit(coh_cleanup);
    }
    snprintf(o->shared_name, sizeof o->shared_name, "tctest-%d", (int)coh_owner);
    o->ntiers = 1;
    o->tiers[0] = TC_TIER_L3;
    o->max_key_bytes = 4096;
    o->max_value_bytes = 8u << 20;
    snprintf(o->redis_host, sizeof o->redis_host, "127.0.0.1");
    o->redis_port = port;
    o->redis_max_retries = 3;
    o->redis_connect_timeout_ms = 1000;
    o->redis_command_timeout_ms = 1000;
    snprintf(o->redis_key_prefix, sizeof o->redis_key_prefix, "tctest:");
    o->redis_pool_size = 0;
    o->mem_default_ttl_ms = 0;
    o->redis_default_ttl_ms = 0;
}

/* ------------------------------------------------------------------------ */
/* Raw client                                                               */
/* ------------------------------------------------------------------------ */

static int raw_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static redisReply *raw_roundtrip(int fd, redisReader *rd, int argc, const char **argv, const size_t *lens) {
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0) return NULL;
    ssize_t w = send(fd, cmd, (size_t)n, MSG_NOSIGNAL);
    free(cmd);
    if (w != n) return NULL;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(rd, &reply) != REDIS_OK) return NULL;
        if (reply) return reply;
        char buf[16384];
        ssize_t got = recv(fd, buf, sizeof buf, 0);
        if (got <= 0) return NULL;
        redisReaderFeed(rd, buf, (size_t)got);
    }
}

redisReply *tc_test_raw_cmd(int port, const char *password, int argc, const char **argv, const size_t *lens) {
    int fd = raw_connect(port);
    if (fd < 0) return NULL;
    redisReader *rd = redisReaderCreate();
    redisReply *out = NULL;
    if (password) {
        const char *av[2] = {"AUTH", password};
        size_t al[2] = {4, strlen(password)};
        redisReply *a = raw_roundtrip(fd, rd, 2, av, al);
        if (a == NULL || a->type == REDIS_REPLY_ERROR) {
            if (a) freeReplyObject(a);
            goto done;
        }
        freeReplyObject(a);
    }
    out = raw_roundtrip(fd, rd, argc, argv, lens);
done:
    redisReaderFree(rd);
    close(fd);
    return out;
}

redisReply *tc_test_raw(int port, const char *password, const char *a0, const char *a1, const char *a2,
                        const char *a3) {
    const char *argv[4] = {a0, a1, a2, a3};
    size_t lens[4];
    int argc = 0;
    while (argc < 4 && argv[argc] != NULL) {
        lens[argc] = strlen(argv[argc]);
        argc++;
    }
    return tc_test_raw_cmd(port, password, argc, argv, lens);
}

/* ------------------------------------------------------------------------ */
/* Fake server                                                              */
/* ------------------------------------------------------------------------ */

typedef struct fake_conn {
    int fd;
    int answered;
} fake_conn;

static void *fake_main(void *arg) {
    tc_test_fake *f = arg;
    fake_conn conns[64];
    int n = 0;
    while (!f->stop) {
        struct pollfd p[65];
        p[0].fd = f->listen_fd;
        p[0].events = POLLIN;
        for (int i = 0; i < n; i++) {
            p[i + 1].fd = conns[i].fd;
            p[i + 1].events = POLLIN;
        }
        int k = poll(p, (nfds_t)n + 1, 50);
        if (k <= 0) continue;
        if (p[0].revents & POLLIN) {
            int fd = accept(f->listen_fd, NULL, NULL);
            if (fd >= 0 && n < 64) {
                conns[n].fd = fd;
                conns[n].answered = 0;
                n++;
                f->connections++;
            } else if (fd >= 0) {
                close(fd);
            }
        }
        for (int i = 0; i < n; i++) {
            if (!(p[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char buf[4096];
            ssize_t got = recv(conns[i].fd, buf, sizeof buf, 0);
            if (got <= 0) {
                f->closed++;
                close(conns[i].fd);
                conns[i] = conns[--n];
                i--;
                continue;
            }
            /* a new connection's fleet epoch check: answered as a server whose epoch key is in
             * place, so the canned replies meet the request they are for */
            static const char check[] = "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n*2\r\n$3\r\nGET\r\n";
            static const char fleet[] = "$51\r\n# Server\r\nrun_id:0123456789abcdef0123456789abcdef\r\n\r\n"
                                        "$49\r\n0123456789abcdef0123456789abcdef:00000000000000e1\r\n";
            if (conns[i].answered && (size_t)got >= sizeof check - 1 && memcmp(buf, check, sizeof check - 1) == 0) {
                send(conns[i].fd, fleet, sizeof fleet - 1, MSG_NOSIGNAL);
                continue;
            }
            const char *out = conns[i].answered ? f->next : f->first;
            size_t len = conns[i].answered ? f->next_len : f->first_len;
            conns[i].answered = 1;
            if (out && len) send(conns[i].fd, out, len, MSG_NOSIGNAL);
        }
    }
    for (int i = 0; i < n; i++) close(conns[i].fd);
    return NULL;
}

int tc_test_fake_server_start(tc_test_fake *f, const char *first, size_t first_len, const char *next,
                              size_t next_len) {
    memset(f, 0, sizeof *f);
    f->first = first;
    f->first_len = first_len;
    f->next = next;
    f->next_len = next_len;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (f->listen_fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(f->listen_fd, 64) != 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        close(f->listen_fd);
        return -1;
    }
    f->port = ntohs(a.sin_port);
    if (pthread_create(&f->thread, NULL, fake_main, f) != 0) {
        close(f->listen_fd);
        return -1;
    }
    return 0;
}

void tc_test_fake_server_stop(tc_test_fake *f) {
    f->stop = 1;
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

uint64_t tc_test_invalidations(tc_cache *c) {
    tc_stats st = TC_STATS_INIT;
    return tc_stats_get(c, &st) == 0 ? st.invalidations_received : 0;
}

int tc_test_wait_invalidations(tc_cache *c, uint64_t at_least, int timeout_ms) {
    /* at_least may be reached early by other messages (a canary, an earlier test's late
     * invalidations): after it, wait for 100 ms without a new one as well */
    uint64_t last = 0;
    int reached = 0, quiet = 0;
    for (int waited = 0; waited <= timeout_ms; waited++) {
        uint64_t n = tc_test_invalidations(c);
        if (n >= at_least) {
            quiet = reached && n == last ? quiet + 1 : 0;
            reached = 1;
            if (quiet >= 100) return 1;
        }
        last = n;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return reached;
}
