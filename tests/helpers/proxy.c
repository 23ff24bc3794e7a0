/*
 * proxy.c -- the test proxy (proxy.h): one thread polls every pair of sockets and copies
 * bytes across, waiting hold_ms before each chunk from the server (so a held-back reply
 * delays the others: fine for tests that hold one request at a time), and dropping the
 * server's bytes to a subscriber while mute_subscriber is set. While a pause is set it does
 * not read the paused connections' server sockets (the bytes wait in the kernel) and counts
 * what waits there (FIONREAD) in held_bytes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "helpers/proxy.h"

#define MAXC 16

static void *proxy_main(void *arg) {
    tc_test_proxy *px = arg;
    int cfd[MAXC], sfd[MAXC], sub[MAXC], n = 0;
    while (!px->stop) {
        struct pollfd p[1 + 2 * MAXC];
        p[0] = (struct pollfd){.fd = px->listen_fd, .events = POLLIN};
        int held = 0;
        for (int i = 0; i < n; i++) {
            int paused = sub[i] ? px->pause_subscriber : px->pause_replies;
            p[1 + 2 * i] = (struct pollfd){.fd = cfd[i], .events = POLLIN};
            p[2 + 2 * i] = (struct pollfd){.fd = sfd[i], .events = paused ? 0 : POLLIN};
            int waiting = 0;
            if (paused && ioctl(sfd[i], FIONREAD, &waiting) == 0) held += waiting;
        }
        px->held_bytes = held;
        if (poll(p, (nfds_t)(1 + 2 * n), 20) <= 0) continue;
        if ((p[0].revents & POLLIN) && n < MAXC) {
            int c = accept(px->listen_fd, NULL, NULL);
            struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)px->target),
                                    .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            int sv = socket(AF_INET, SOCK_STREAM, 0);
            if (c >= 0 && sv >= 0 && connect(sv, (struct sockaddr *)&a, sizeof a) == 0) {
                cfd[n] = c;
                sfd[n] = sv;
                sub[n] = 0;
                n++;
            } else {
                if (c >= 0) close(c);
                if (sv >= 0) close(sv);
            }
        }
        for (int i = 0; i < n; i++) {
            char buf[65536];
            int gone = 0;
            if (p[1 + 2 * i].revents) {
                ssize_t k = recv(cfd[i], buf, sizeof buf, 0);
                if (k > 0) {
                    if (memmem(buf, (size_t)k, "SUBSCRIBE", 9) != NULL) sub[i] = 1;
                    send(sfd[i], buf, (size_t)k, MSG_NOSIGNAL);
                } else {
                    gone = 1;
                }
            }
            if (!gone && p[2 + 2 * i].revents) {
                ssize_t k = recv(sfd[i], buf, sizeof buf, 0);
                if (k > 0) {
                    int ms = px->hold_ms;
                    if (ms > 0) {
                        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
                        nanosleep(&ts, NULL);
                    }
                    if (!(sub[i] && px->mute_subscriber)) send(cfd[i], buf, (size_t)k, MSG_NOSIGNAL);
                } else {
                    gone = 1;
                }
            }
            if (gone) {
                close(cfd[i]);
                close(sfd[i]);
                cfd[i] = cfd[n - 1];
                sfd[i] = sfd[n - 1];
                sub[i] = sub[n - 1];
                n--;
                i--;
                break; /* the poll slots moved: poll again */
            }
        }
    }
    for (int i = 0; i < n; i++) {
        close(cfd[i]);
        close(sfd[i]);
    }
    return NULL;
}

int tc_test_proxy_start(tc_test_proxy *px, int target_port) {
    memset(px, 0, sizeof *px);
    px->target = target_port;
    px->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    if (px->listen_fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (bind(px->listen_fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(px->listen_fd, 16) != 0 ||
        getsockname(px->listen_fd, (struct sockaddr *)&a, &al) != 0) {
        close(px->listen_fd);
        return -1;
    }
    px->port = ntohs(a.sin_port);
    if (pthread_create(&px->thread, NULL, proxy_main, px) != 0) {
        close(px->listen_fd);
        return -1;
    }
    return 0;
}

void tc_test_proxy_stop(tc_test_proxy *px) {
    px->stop = 1;
    pthread_join(px->thread, NULL);
    close(px->listen_fd);
}
