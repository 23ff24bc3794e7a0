/*
 * proxy.h -- test harness: a loopback TCP proxy in front of a server, in a thread, that can
 * delay or swallow what the server sends: a slow network (the replies held back), or a
 * subscriber cut off behind a proxy while its TCP session stays up (tracking lost silently).
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
} tc_test_proxy;

/* Starts a proxy to 127.0.0.1:target_port. 0 or -1. At most 16 connections. */
int tc_test_proxy_start(tc_test_proxy *p, int target_port);
void tc_test_proxy_stop(tc_test_proxy *p);

#endif /* TC_TEST_PROXY_H */
