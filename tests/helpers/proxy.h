/*
 * proxy.h -- test harness: a loopback TCP proxy in front of a server, in a thread, that can
 * delay or swallow what the server sends: a slow network (the replies held back), or a
 * subscriber cut off behind a proxy while its TCP session stays up (tracking lost silently).
 * A pause holds what the server sends (to every connection, or to subscribers only) in the
 * kernel's buffers until it ends, then lets it through in order: a reply that arrives late,
 * invalidations that arrive late, nothing lost.
 */
#ifndef TC_TEST_PROXY_H
#define TC_TEST_PROXY_H

#include <pthread.h>
#include <stdatomic.h>

typedef struct tc_test_proxy {
    int listen_fd;
    int port;        /* where clients connect */
    int target;      /* the server's port */
    pthread_t thread;
    _Atomic int stop;
    _Atomic int hold_ms;         /* every chunk from the server waits this long first */
    _Atomic int mute_subscriber; /* 1: drop what the server sends to connections that sent SUBSCRIBE */
    _Atomic int pause_replies;    /* 1: hold what the server sends to connections that did not */
    _Atomic int pause_subscriber; /* 1: hold what the server sends to connections that did */
    _Atomic int held_bytes;       /* bytes held by a pause at the proxy's last look (0..20 ms old) */
} tc_test_proxy;

/* Starts a proxy to 127.0.0.1:target_port. 0 or -1. At most 16 connections. */
int tc_test_proxy_start(tc_test_proxy *p, int target_port);
void tc_test_proxy_stop(tc_test_proxy *p);

#endif /* TC_TEST_PROXY_H */
