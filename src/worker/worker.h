/*
 * worker: one process serving its own WebSocket clients.
 *
 * Each worker runs one libwebsockets loop.  It accepts connections itself on
 * the SO_REUSEPORT listener the supervisor made for its slot (lws 4.1.6 cannot
 * share a port between processes on its own) and hands each fd to lws.  It
 * wakes on its eventfd when the ingest published frames, reads the ring at
 * its own pace, encodes each matching entry once and queues it to every
 * matching client.  SIGTERM/SIGINT (via a signalfd in the same loop) stop
 * accepting and close every client with 1001 before exiting 0.
 */
#ifndef WSB_WORKER_H
#define WSB_WORKER_H

#include "../common/conf.h"
#include "../common/shm.h"

/* Run worker `index` (from 1) until stopped; returns the exit status.
 * listen_fd: this slot's listening socket; wake_fd: this slot's eventfd. */
int worker_main(struct shm *s, const struct conf *c, int index, int listen_fd, int wake_fd);

#endif
