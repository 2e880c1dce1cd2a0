/*
 * replay: the entries a resuming client missed that the ring no longer
 * holds, read back from Redis.
 *
 * A worker has one asynchronous Redis connection of its own (hiredis on the
 * worker's libev loop), opened on first need and again after it breaks.  A
 * request names, per stream, the positions (after, upto] it wants; the
 * reply is every entry in that range that matches the requester's filter,
 * decoded and encoded as the ring's would be, in stream order, or a reason
 * why that cannot be had: the stream was trimmed past `after` (Redis 7's
 * max-deleted-entry-id), more than RESUME_MAX_ENTRIES entries match, Redis
 * does not answer within REPLAY_TIMEOUT_MS.  Nothing here blocks the loop.
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_REPLAY_H
#define WSB_REPLAY_H

#include "outq.h"
#include "../common/conf.h"
#include "../common/frame.h"
#include "../common/streamid.h"

#include <ev.h>
#include <stdint.h>

#define REPLAY_TIMEOUT_MS 5000

struct wsp_vhost;
struct sub_filter;

struct replay_stream {
    char name[CONF_STREAM_MAX];
    enum frame_type type;
    char sport[CONF_NAME_MAX]; /* default sport_key of an odds stream; "" for opportunities */
    struct streamid after, upto;
};

struct replay_req;

/*
 * The outcome of a request.  ok: msgs[0..n) are the matching entries
 * (references the callee keeps: it takes them over and unrefs them when
 * done); else reason says why ("too_old") and msgs is NULL.  `filter`
 * gives the filter to match at completion; NULL means the owner is gone.
 */
struct replay_owner {
    const struct sub_filter *(*filter)(void *owner);
    void (*done)(struct wsp_vhost *vh, void *owner, int ok, const char *reason,
                 struct outq_msg **msgs, uint32_t n);
};

/* Remember where Redis is and the loop to run on.  Connects lazily. */
void replay_init(struct wsp_vhost *vh, struct ev_loop *loop);

/* Ask for streams[0..n) on behalf of owner, in the basic projection or not,
 * without opportunities if no_opps (auth.h).  NULL on OOM (nothing asked).
 * done is called exactly once, later, from the loop (never from here),
 * unless replay_cancel comes first. */
struct replay_req *replay_start(struct wsp_vhost *vh, const struct replay_stream *streams,
                                uint32_t n, int basic, int no_opps, const struct replay_owner *ops,
                                void *owner);

/* The owner is gone or no longer wants the answer: done is never called. */
void replay_cancel(struct replay_req *r);

/* Close the connection (worker exit); pending requests are cancelled. */
void replay_shutdown(void);

#endif
