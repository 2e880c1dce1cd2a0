/*
 * wsp: the worker's libwebsockets protocol: WebSocket sessions on /ws, and
 * the HTTP endpoints /health and /metrics on the same port.
 *
 * Shaped like lws's minimal-ws-server-ring example: per-session state lives
 * in lws's per-session user space (struct wsp_session), sessions join the
 * worker's list in ESTABLISHED and leave it in CLOSED, and all sending
 * happens in SERVER_WRITEABLE.
 *
 * Every server message is a refcounted, already-encoded and already-framed
 * struct wsp_msg, so an update encoded once is queued to every matching
 * client without a copy.  When a client's socket is writable, everything
 * queued for it goes out in one gathering write straight from those
 * messages (lws only writes handshakes, pings and close frames): on
 * loopback a write() costs several microseconds whatever its size, so
 * writes per delivered message decide throughput.
 * Each client's queue holds at most CLIENT_BUFFER messages; a client whose
 * queue is full loses that message (dropped_messages) and is disconnected
 * with close code 1008: a slow client never holds up the others or the
 * worker's memory.
 *
 * Worker role only; single-threaded (the lws service loop).
 */
#ifndef WSB_WSP_H
#define WSB_WSP_H

#include "sub.h"
#include "../common/conf.h"
#include "../common/shm.h"

#include <libwebsockets.h>
#include <stdint.h>

/*
 * One server message, encoded once and shared by every client it is queued
 * to.  The WebSocket frame header is written once too, in the headroom right
 * before the text, so the whole frame (frame_len bytes at buf + frame_off)
 * can be copied as is into a client's coalesced write.
 */
struct wsp_msg {
    uint32_t refs;
    uint32_t len;       /* bytes of text at buf + LWS_PRE */
    uint32_t frame_off; /* the frame (header + text) starts here in buf */
    uint32_t frame_len;
    char *buf; /* LWS_PRE bytes of headroom, then the text */
};

struct wsp_session;

/* Bytes of one coalesced write of queued frames (one larger frame goes out
 * on its own).  Also the protocol's tx_packet_size, for the HTTP replies
 * lws writes: it cuts every write to that (else to the rx buffer size) and
 * buffers the rest. */
#define WSP_COALESCE_BYTES 65536

/* The worker's state that the protocol reads and updates. */
struct wsp_vhost {
    struct shm *shm;
    struct shm_worker *stats; /* this worker's slot */
    uint32_t worker;          /* this worker's index from 0 */
    const struct conf *conf;
    struct sub_index *index;
    struct sub_limits limits;
    struct wsp_session *sessions; /* established WebSocket sessions */
    uint32_t nsessions;
    int stopping;
    /* Between wsp_batch_begin() and wsp_batch_flush(): sessions that were
     * given messages, each once. */
    int batching;
    struct wsp_session *dirty;
    uint64_t batch_ms; /* wall clock at wsp_batch_begin() */
    int slice_full;    /* a client near CLIENT_BUFFER could not be written: stop */
};

struct wsp_session {
    struct sub_member member;
    struct wsp_session *prev, *next;
    struct lws *wsi;
    int is_ws;

    struct wsp_msg **queue; /* ring of queue_cap, grows up to CLIENT_BUFFER */
    uint32_t queue_cap, queue_head, queue_len;
    uint32_t head_off; /* bytes of the head message's frame already sent */
    struct wsp_session *dirty_next;
    int dirty;         /* on vh->dirty */
    int await_pollout; /* the socket was full: lws calls back when it is not */
    int broken;        /* a direct write failed: close at the next callback */
    int ended_slice;   /* cut a ring slice short since its queue was last empty */

    uint64_t connected_ms, last_sent_ms;
    uint64_t messages_queued; /* server messages accepted for this client */
    uint64_t messages_received;
    char client_id[37];

    struct shm_ip_key ip_key; /* counted in this worker's address table ... */
    int reserved;             /* ... and in active_clients, from the upgrade on */

    double rate_tokens; /* token bucket of RATE_LIMIT / RATE_BURST */
    uint64_t rate_refill_ms;
    uint32_t rate_rejected; /* messages refused in a row; RATE_BURST of them: cut off */

    int guard_code;        /* framing error found by the recv() guard ... */
    const char *guard_why; /* ... applied at the next writeable, after the frames
                            * before it were handled */
    uint64_t last_rx_ms;   /* monotonic: last frame from the client (pongs too) */
    uint64_t ping_sent_ms; /* monotonic; 0: no ping outstanding */
    int ping_due;          /* send a ping at the next writeable */

    int close_code;  /* non-zero: close with it at the next writeable */
    int close_flush; /* send what is queued before closing */
    char close_reason[96];

    char *rx; /* reassembly of a fragmented message */
    size_t rx_len, rx_cap;

    char *http_body; /* LWS_PRE headroom, then http_len bytes */
    size_t http_len;
};

/* Make vh the state every callback uses.  Call before creating the context. */
void wsp_bind(struct wsp_vhost *vh);

int wsp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len);

/* A message of text[0..len) copied behind LWS_PRE headroom, refs = 1. */
struct wsp_msg *wsp_msg_new(const char *text, size_t len);

/* Take ownership of buf (LWS_PRE headroom, then len bytes of text). */
struct wsp_msg *wsp_msg_adopt(char *buf, size_t len);

void wsp_msg_unref(struct wsp_msg *m);

/* Queue m to ss (a reference is taken), or drop it and cut ss off if its
 * queue is full.  Outside a batch, ss is written at its next writeable
 * callback; inside one, by wsp_batch_flush(). */
void wsp_enqueue(struct wsp_session *ss, struct wsp_msg *m);

/*
 * A batch: the worker queues a slice of the ring to its clients, then every
 * client given something gets one write with all of it, at once, in this
 * turn of the loop.  Waiting for each socket's writeable callback instead
 * lets the loop interleave small drains with writes, and a client would get
 * one write per entry at moderate rates: writes per delivered message
 * decide throughput.  A client whose queue reaches 7/8 of CLIENT_BUFFER during the
 * batch is written to there and then; if its socket is full, vh->slice_full
 * tells the worker to end the slice.  A client whose socket is full waits
 * for POLLOUT.
 */
void wsp_batch_begin(struct wsp_vhost *vh);
void wsp_batch_flush(struct wsp_vhost *vh);

/* Ping every client silent for PING_INTERVAL; hang up on those that have
 * not answered a ping within PING_TIMEOUT.  Call about once a second. */
void wsp_liveness_sweep(struct wsp_vhost *vh);

/* Close every session with code and reason (shutdown: 1001). */
void wsp_close_all(struct wsp_vhost *vh, int code, const char *reason);

#endif
