/*
 * worker: one process serving its own WebSocket clients.
 *
 * Each worker runs one libwebsockets loop.  It accepts connections itself on
 * the SO_REUSEPORT listener the supervisor made for its slot (lws 4.1.6 cannot
 * share a port between processes on its own) and hands each fd to lws.  It
 * wakes on its eventfd when the ingest published frames, reads the ring at
 * its own pace, encodes each matching entry once and queues it to every
 * matching client.  SIGTERM/SIGINT (via a signalfd in the same loop) start
 * a drain (drain.h): upgrades are refused with 503, the clients are closed
 * with 1001 spread until the drain's deadline, and the worker exits 0 once
 * its last client is gone.
 */
#ifndef WSB_WORKER_H
#define WSB_WORKER_H

#include "../common/conf.h"
#include "../common/shm.h"

/* Run worker `index` (from 1) until stopped; returns the exit status.
 * listen_fd: this slot's listening socket; metrics_fd: its METRICS_ADDR listener
 * (-1: none), for the metrics and health endpoints only; wake_fd: this
 * slot's eventfd. */
int worker_main(struct shm *s, const struct conf *c, int index, int listen_fd, int metrics_fd,
                int wake_fd);

#endif
