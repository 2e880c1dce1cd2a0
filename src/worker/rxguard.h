/*
 * rxguard: every byte a WebSocket client sends passes RFC 6455's framing
 * checks (wsguard) before libwebsockets parses it.
 *
 * A table indexed by socket fd holds, for each established session, its
 * wsguard state.  rxguard_filter() is called with what recv() just read
 * (see recv_override.h, the only caller in the service); for an fd with no
 * session it does nothing.  For a session's fd it tells the session its
 * peer is alive, then follows the frames: at the first violation it reports
 * the close code to the session (wsp_frame_violation) and returns only the
 * bytes before the offending frame, so lws handles the good frames (and
 * their replies go out) first; from then on everything from that peer is
 * discarded unread, so lws cannot act on it (or hang up before our close
 * frame).
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_RXGUARD_H
#define WSB_RXGUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct wsp_session;

/* Start guarding fd for ss, at a frame boundary (right after the upgrade).
 * On OOM fd stays unguarded (lws still parses its frames). */
void rxguard_attach(int fd, struct wsp_session *ss, uint64_t max_message);

/* Stop guarding fd (if ss still owns it). */
void rxguard_detach(int fd, const struct wsp_session *ss);

/* From now on everything fd's peer sends is read and discarded (our close
 * frame is on its way); its end of stream still reaches lws. */
void rxguard_discard(int fd, const struct wsp_session *ss);

/* n > 0 bytes just read from fd into buf: how many of them to hand to lws.
 * Returns n, fewer (the frames before a violation), or -1 with errno EAGAIN
 * when nothing may be handed over. */
ssize_t rxguard_filter(int fd, void *buf, size_t n);

#endif
