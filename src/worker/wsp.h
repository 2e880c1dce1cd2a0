/*
 * wsp: the worker's libwebsockets protocol: the lws callback, the state it
 * shares with the worker (struct wsp_vhost), and the life cycle of one
 * WebSocket session (struct wsp_session), from the upgrade to the close.
 *
 * Shaped like lws's minimal-ws-server-ring example: per-session state lives
 * in lws's per-session user space, sessions join the worker's list in
 * ESTABLISHED and leave it in CLOSED.  The callback only dispatches; each
 * concern has its own module:
 *   admit     whether an upgrade is let through, and counting the client
 *   http      /health, /metrics and the other plain HTTP replies
 *   inbound   what a client sends: reassembly, rate limit, its messages
 *   outbound  what it is sent: queueing, batches, writes, broadcasts
 *   rxguard   the RFC 6455 checks on every byte a client sends
 * This file keeps what ties them together: scheduling a close, pings and
 * the liveness sweep (a stop is drain.c's).
 *
 * Worker role only; single-threaded (the lws service loop).
 */
#ifndef WSB_WSP_H
#define WSB_WSP_H

#include "feed.h"
#include "outq.h"
#include "sub.h"
#include "tokenbucket.h"
#include "../common/conf.h"
#include "../common/proxies.h"
#include "../common/shm.h"

#include <libwebsockets.h>
#include <stdatomic.h>
#include <stdint.h>

/* The worker's state that the protocol reads and updates. */
struct wsp_vhost {
    struct shm *shm;
    struct shm_worker *stats; /* this worker's slot */
    uint32_t worker;          /* this worker's index from 0 */
    const struct conf *conf;
    struct sub_index *index;
    struct sub_limits limits;
    struct proxies proxies;    /* TRUSTED_PROXIES */
    lws_dll2_owner_t sessions; /* established WebSocket sessions; .count */
    int stopping;
    /* Between outbound_batch_begin() and outbound_batch_flush(): sessions
     * that were given messages, each once. */
    int batching;
    lws_dll2_owner_t dirty;
    uint64_t batch_ms; /* wall clock at outbound_batch_begin() */
    int slice_full;    /* a client near CLIENT_BUFFER could not be written */
    struct feed_worker *feed;
    /* Sessions holding updates for their conflate_ms (outbound.c), and the
     * timer that flushes them. */
    lws_dll2_owner_t holding;
    lws_sorted_usec_list_t hold_timer;
    struct lws_context *ctx;
    /* METRICS_ADDR's connections carry metrics_mark as their opaque user
     * data (NULL: no such listener): only the metrics and health endpoints
     * there, no WebSocket; metrics_conns counts them.  (Not a vhost of
     * their own: lws 4.1 picks among vhosts that share a listen port, as
     * adopted sockets' vhosts all do, by the Host header.) */
    const void *metrics_mark;
    uint32_t metrics_conns;
    struct outq_latency latency; /* delivery latency sampling (outq_write) */
    /* Ask the worker for a turn of feed_service soon (a session not live
     * has room again, or was just subscribed). */
    void (*kick)(struct wsp_vhost *vh);
};

/* Whether wsi came in on METRICS_ADDR's listener. */
static inline int
wsp_on_metrics(const struct wsp_vhost *vh, struct lws *wsi)
{
    return vh->metrics_mark != NULL && lws_get_opaque_user_data(wsi) == vh->metrics_mark;
}

#define WSP_STAT_ADD(vh, field, n)                                                                 \
    atomic_fetch_add_explicit(&(vh)->stats->field, (n), memory_order_relaxed)
#define WSP_STAT_SUB(vh, field, n)                                                                 \
    atomic_fetch_sub_explicit(&(vh)->stats->field, (n), memory_order_relaxed)

struct wsp_session {
    struct sub_member member;
    struct feed_session feed; /* snapshot, resume, catch-up (feed.h) */
    lws_dll2_t list;          /* on vh->sessions */
    struct lws *wsi;
    int is_ws; /* else a plain HTTP connection: only http_body is used */
    char client_id[37];
    uint64_t connected_ms;

    /* outbound */
    struct outq q;
    lws_dll2_t dirty;  /* on vh->dirty during a batch */
    int await_pollout; /* the socket was full: lws calls back when it is not */
    int broken;        /* a direct write failed: close at the next callback */
    int ended_slice;   /* cut a ring slice short since its queue was last empty */
    uint64_t last_sent_ms;
    uint64_t messages_queued; /* server messages accepted for this client */
    uint64_t progress_ms;     /* monotonic: last time its socket took bytes, or
                               * when data started to wait (SEND_TIMEOUT) */
    /* conflation (outbound.h) */
    int conflating;         /* automatic: its queue passed CONFLATE_AT */
    uint32_t conflate_ms;   /* requested: at most one update per key per this many ms */
    struct outq held;       /* ... the latest update of each key until the next flush */
    uint64_t next_flush_ms; /* monotonic */
    uint64_t last_flush_ms;
    lws_dll2_t hold_link; /* on vh->holding while held is not empty */
    int outq_bytes;       /* the kernel's send queue at the last sweep */
    unsigned sweep_slot;  /* which part of the sweep checks it */

    /* inbound */
    uint64_t messages_received;
    struct tokenbucket rate;
    uint32_t rate_rejected; /* messages refused in a row; RATE_BURST of them: cut off */
    char *rx;               /* reassembly of a fragmented message */
    size_t rx_len, rx_cap;

    /* admission (admit.c): counted in active_clients and as a client of
     * its address in this worker's address table from the upgrade on
     * (reserved), and the filter values it holds, against the address too */
    struct addrtab_key addr;
    int reserved;
    uint32_t filter_values;

    /* liveness */
    uint64_t last_rx_ms;   /* monotonic: last bytes from the client */
    uint64_t ping_sent_ms; /* monotonic; 0: no ping outstanding */
    int ping_due;          /* send a ping at the next writeable */

    /* closing: see wsp_schedule_close */
    int guard_code;        /* framing error found by rxguard ... */
    const char *guard_why; /* ... applied at the next writeable, after the
                            * frames before it were handled */
    int close_code;        /* non-zero: close with it at the next writeable */
    int close_flush;       /* send what is queued before closing */
    int close_queued;      /* our close frame is queued; input is discarded */
    int lingering;         /* ... and out, with our FIN: waiting for the peer's */
    char close_reason[96];
    lws_sorted_usec_list_t close_deadline; /* CLOSE_TIMEOUT: reset */

    /* auth (auth.h) */
    struct wsp_vhost *vh;
    struct authtoken_claims *claims;   /* NULL: AUTH off, or no token yet */
    int anonymous;                     /* claims are ANONYMOUS's (AUTH=optional) */
    int no_opps;                       /* opportunities are not sent to it */
    int basic;                         /* fields: basic (no novig_probability, fair_price, edge) */
    int sub_counted;                   /* counted under claims->sub (max_connections) */
    lws_sorted_usec_list_t auth_timer; /* AUTH_TIMEOUT, then exp */
    cJSON *requested;                  /* the last subscribe's payload, to narrow again */

    char *http_body; /* plain HTTP: LWS_PRE, then http_len bytes */
    size_t http_len;
};

/* Make vh the state every callback uses.  Call before creating the context. */
void wsp_bind(struct wsp_vhost *vh);

int wsp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                 size_t len);

/*
 * Close ss with code.  From now on it no longer counts as a client
 * (active_clients, MAX_CLIENTS, MAX_CLIENTS_PER_IP) and gets no updates.
 * At its next writeable, messages already queued are sent first (an error
 * reply should reach the client before the close) unless flush is 0 (a
 * client cut off for being slow: its queue is the problem), then our close
 * frame, then a FIN; what the client sends meanwhile is read and discarded
 * (a lingering close, as nginx does: closing a socket with unread input
 * sends a reset, and the client would never read its close code).  The
 * connection ends when the client closes its side, or is reset CLOSE_TIMEOUT
 * after this call whatever the client does.  A second close of the same
 * session is ignored.
 */
void wsp_schedule_close(struct wsp_session *ss, int code, const char *reason, int flush);

/* ss's client address as the logs show it (its IPv6 prefix for IPv6; the
 * address behind a trusted proxy), into buf (ADDRTAB_KEY_STRLEN bytes). */
void wsp_client_ip(const struct wsp_session *ss, char *buf, size_t size);

/* Tear ss's connection down now with a TCP reset (SO_LINGER 0), which frees
 * the kernel's buffers at once: for a peer that is gone or will not read. */
void wsp_reset(struct wsp_session *ss);

/* Ping every client silent for PING_INTERVAL; hang up on those that have
 * not answered a ping within PING_TIMEOUT; cut off those whose socket has
 * taken nothing for SEND_TIMEOUT while data waits.  Each call checks part
 * `part` of `nparts` of the sessions (those whose sweep_slot is part,
 * modulo nparts):
 * with 10,000 clients a whole sweep (an ioctl each) stalled the loop for
 * milliseconds at once, which showed in delivery latency; called for each
 * part in turn, nparts times a second, every session is checked about once
 * a second. */
void wsp_liveness_sweep(struct wsp_vhost *vh, unsigned part, unsigned nparts);

/* Called by rxguard for bytes from ss's peer: it is alive (an outstanding
 * ping counts as answered). */
void wsp_peer_active(struct wsp_session *ss);

/* Called by rxguard when ss broke RFC 6455 framing: close with code once
 * lws has handled the frames before the offending one. */
void wsp_frame_violation(struct wsp_session *ss, int code, const char *why);

#endif
