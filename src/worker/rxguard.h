/*
 * rxguard: every byte a WebSocket client sends passes RFC 6455's framing
 * checks (wsguard) before libwebsockets parses it, from the first byte after
 * the upgrade request's headers, whatever the packet boundaries.
 *
 * A table indexed by socket fd follows each accepted connection from the
 * accept on (rxguard_accept).  While a request's headers arrive it looks for
 * their end, and for the word "websocket" in them (an upgrade); after an
 * upgrade request, every following byte is a frame to check: bytes a client
 * pipelines with its upgrade are checked like any others (lws parses them
 * from its own buffer, before the session exists).  After a plain HTTP
 * request it looks for the next request's headers.
 *
 * rxguard_filter() is called with what recv() just read (recv_override.h is
 * the only caller).  At the first violation it returns only the bytes before
 * the offending frame, so lws handles the good frames (and their replies go
 * out) first, and reports the close code to the session (wsp_frame_violation;
 * a violation found before the session exists is reported when it does).
 * From then on everything from that peer is read and discarded, so lws
 * cannot act on it; only the end of the stream still reaches lws.
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_RXGUARD_H
#define WSB_RXGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct wsp_session;

/* A connection was accepted on fd: follow it from its first byte.  Frames
 * longer than max_message are a violation (1009).  On OOM fd stays
 * unguarded (lws still parses its frames). */
void rxguard_accept(int fd, uint64_t max_message);

/* fd's upgrade completed: ss is told of its peer's activity and of a
 * violation (also one found before this call). */
void rxguard_established(int fd, struct wsp_session *ss);

/* ss's connection on fd ends: forget it. */
void rxguard_detach(int fd, const struct wsp_session *ss);

/* From now on everything fd's peer sends is read and discarded (our close
 * frame is on its way); its end of stream still reaches lws. */
void rxguard_discard(int fd, const struct wsp_session *ss);

/* 1 while fd is in a request's headers: recv() should peek first and take
 * only what rxguard_headers_take allows. */
int rxguard_in_headers(int fd);

/* Of n bytes peeked at on fd, how many to read now: up to the end of an
 * upgrade request's headers, so that lws takes the request alone and reads
 * what follows (frames pipelined with it) later, as frames: lws 4.1.6
 * mishandles frame bytes that arrive in the read completing headers that
 * began in an earlier one (it drops the connection), and they would be
 * checked before the session exists.  Does not change fd's state. */
size_t rxguard_headers_take(int fd, const void *peeked, size_t n);

/* n > 0 bytes just read from fd into buf: how many of them to hand to lws.
 * Returns n, fewer (the bytes before a violation), or -1 with errno EAGAIN
 * when nothing may be handed over. */
ssize_t rxguard_filter(int fd, void *buf, size_t n);

#endif
