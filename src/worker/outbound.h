/*
 * outbound: everything the worker sends to its WebSocket clients.
 *
 * Each client's queue (struct outq) holds at most CLIENT_BUFFER shared,
 * already-framed messages; a client whose queue is full loses that message
 * (dropped_messages) and is closed with 1008: a slow client never holds up
 * the others or the worker's memory.
 *
 * Ring entries reach clients in batches: the worker opens a batch, hands
 * each decoded entry of a ring slice to outbound_broadcast(), which matches
 * it against the filter index, encodes it once on the first match and
 * queues the same message to every matching client; outbound_batch_flush()
 * then writes every client given something once, with all of it, in this
 * turn of the loop.  Waiting for each socket's writeable callback instead
 * lets the loop interleave small drains with writes, and a client would get
 * one write per entry at moderate rates.  A client whose queue reaches 7/8
 * of CLIENT_BUFFER during the batch is written there and then; if its
 * socket is full the slice should end, so it can drain (see
 * outbound_broadcast's return value).
 *
 * Everything else (replies, errors, pings, the close frame) goes out from
 * outbound_writeable(), lws's writeable callback, where control frames are
 * only ever written between complete data frames.
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_OUTBOUND_H
#define WSB_OUTBOUND_H

#include "wsp.h"
#include "../common/frame.h"

#include <cjson/cJSON.h>

/* Queue m to ss (a reference is taken), or drop it and cut ss off if its
 * queue is full.  Outside a batch, ss is written at its next writeable
 * callback; inside one, by outbound_batch_flush(). */
void outbound_enqueue(struct wsp_vhost *vh, struct wsp_session *ss, struct outq_msg *m);

/* A "type" message with payload (consumed; NULL means {}) to ss alone. */
void outbound_send_message(struct wsp_vhost *vh, struct wsp_session *ss, const char *type,
                           cJSON *payload);

/* The last message before a close (a drain's `reconnect`): a "type"
 * message with payload (consumed; NULL means {}) queued to ss whatever its
 * queue holds, beyond CLIENT_BUFFER and never conflated away, so that a
 * client with a full queue is not cut off (1008) for it.  Nothing is queued
 * if ss is closing already or memory ran out. */
void outbound_send_last(struct wsp_vhost *vh, struct wsp_session *ss, const char *type,
                        cJSON *payload);

/* An "error" message {code, message} to ss alone; counted in client_errors. */
void outbound_send_error(struct wsp_vhost *vh, struct wsp_session *ss, const char *code,
                         const char *message);

void outbound_batch_begin(struct wsp_vhost *vh);

/* Match the entry in view (ring frame `entry`) against the filter index and
 * queue it, encoded once, to every live client it matches (feed_wants).  Returns 1 if a client near
 * its CLIENT_BUFFER could not be written because its socket is full: the caller should end the ring
 * slice and give it a turn of the loop to drain.  0 otherwise (an entry that cannot be encoded is
 * counted in invalid_frames and logged). */
int outbound_broadcast(struct wsp_vhost *vh, const struct frame_view *view,
                       const struct feed_entry *entry, struct outq_msg *encoded[2]);

/* The message of the entry in view (frame e), encoded once with its key, in
 * the full or the basic projection (auth.h): refs = 1; NULL if it cannot be
 * encoded (counted in invalid_frames). */
struct outq_msg *outbound_encode_entry(struct wsp_vhost *vh, const struct frame_view *view,
                                       const struct feed_entry *e, int basic);

/* The conflation key of an entry's message: a hash of its board key, for
 * odds updates that have one; 0 (never conflated) for the rest. */
uint64_t outbound_key(const struct frame_view *view);

/* The entry in view, encoded for ss alone (a catch-up from the ring), and
 * queued to it. */
void outbound_send_entry(struct wsp_vhost *vh, struct wsp_session *ss,
                         const struct frame_view *view, const struct feed_entry *e);

void outbound_batch_flush(struct wsp_vhost *vh);

/* lws's SERVER_WRITEABLE for ss: the rest of its queue, then a pending
 * ping, then a scheduled close.  Returns -1 when lws is to close it. */
int outbound_writeable(struct wsp_vhost *vh, struct wsp_session *ss);

/* A closing session leaves the batch and frees its queues. */
void outbound_release(struct wsp_vhost *vh, struct wsp_session *ss);

/* Requested conflation: queue what ss holds now (its conflate_ms changed),
 * or drop it (it unsubscribed or subscribed anew). */
void outbound_flush_held(struct wsp_vhost *vh, struct wsp_session *ss);
void outbound_drop_held(struct wsp_session *ss);

/* Cut ss off if its oldest queued message is older than CLIENT_MAX_LAG
 * (the sweep asks, for clients that are sent nothing new): 1 if it was. */
int outbound_check_lag(struct wsp_vhost *vh, struct wsp_session *ss, uint64_t now);

#endif
