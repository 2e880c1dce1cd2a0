/*
 * inbound: what a WebSocket client sends, from lws's RECEIVE callback to
 * the reply.
 *
 * A message may arrive in fragments; they are reassembled up to
 * MAX_MESSAGE_SIZE (1009 beyond).  A complete message must be UTF-8 text
 * (1007 otherwise; binary: 1003) and within the client's rate
 * (RATE_LIMIT/RATE_BURST: refused with rate_limited, and after RATE_BURST
 * refusals in a row closed with 1008).  Then it is parsed (cmsg) and acted
 * on: subscribe, unsubscribe and heartbeat, each answered through outbound.
 * Framing rules lws does not check are rxguard's, before any of this.
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_INBOUND_H
#define WSB_INBOUND_H

#include "wsp.h"

#include <stddef.h>

/* len bytes of a message from ss (all of it, or a fragment: lws says which). */
void inbound_receive(struct wsp_vhost *vh, struct wsp_session *ss, const char *in, size_t len);

/* Free what a closing session holds for its messages. */
void inbound_release(struct wsp_session *ss);

/* ss's entitlements changed (auth, refresh): narrow its last subscription
 * to them again; updates from now on follow (no new ack, no snapshot). */
void inbound_reapply_filter(struct wsp_vhost *vh, struct wsp_session *ss);

#endif
