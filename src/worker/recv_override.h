/*
 * recv_override: THIS REPLACES LIBC'S recv() FOR THE WHOLE PROCESS.
 *
 * recv_override.c defines a global recv().  Linked into an executable, that
 * definition takes precedence over libc's for every shared library the
 * executable loads, libwebsockets.so included: lws 4.1.6 reads every socket
 * with recv(), and this is the only way to see a client's bytes before lws
 * parses them, because lws does not check that client frames are masked
 * (nor a few other RFC 6455 rules; see wsguard.h).
 *
 * What it does: the real system call (recvfrom), then, for a socket that
 * rxguard guards, rxguard_filter() on what was read.  While a connection is
 * in a request's headers it peeks first and reads only up to their end
 * (rxguard_headers_take), so what a client pipelines after an upgrade
 * request reaches lws in a read of its own, checked as frames.  Every other fd (HTTP
 * before the upgrade, Redis, eventfds) and MSG_PEEK reads are passed
 * through untouched, with the system call's result and errno.
 *
 * Linked only into bin/ws-broadcaster (see the Makefile): unit tests, the
 * fuzzers and the benchmark tools get libc's recv().  Nothing calls into
 * this file; the header exists to say what it does.
 */
#ifndef WSB_RECV_OVERRIDE_H
#define WSB_RECV_OVERRIDE_H

#include <sys/types.h>

ssize_t recv(int fd, void *buf, size_t len, int flags);

#endif
