/*
 * feed: how a client's board becomes right and stays right (README
 * "Consistency").
 *
 * A subscribe is answered with the latest value of every matching key (a
 * snapshot, from the ingest's table in shared memory, common/snaptab.h),
 * then the updates after it; a subscribe that names where the client's
 * board stopped (resume: epoch and a position per stream) gets exactly the
 * entries it missed instead, from the ring.  Between the two and the live
 * stream a session catches up by reading the ring itself, so nothing is
 * missed or repeated.  A session's phases:
 *
 *   SNAPSHOT  its snapshot's parts are being queued, as its queue has room
 *   CATCHUP   it reads the ring from where its snapshot (or resume) stands
 *             up to where the worker is
 *   LIVE      it gets what the worker broadcasts
 *
 * A snapshot reflects the ring up to one sequence T exactly: the table is
 * read entry by entry while the ingest writes it, so the copy is brought to
 * T with the ring's frames (the ingest puts a frame in the table only after
 * the ring); the session then takes live frames from T on.  Snapshots of one
 * filter taken close together are shared (encoded once, the same messages
 * queued to each), so a reconnect storm costs one snapshot per filter.
 *
 * A worker lapped by the ring, or a stream whose history was lost (a RESET
 * frame), gives every affected session a fresh snapshot with a reason.
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_FEED_H
#define WSB_FEED_H

#include "../common/ring.h"
#include "../common/streamid.h"

#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <stdint.h>

struct wsp_vhost;
struct wsp_session;
struct feed_snap;
struct feed_worker;

enum feed_phase {
    FEED_LIVE = 0,
    FEED_SNAPSHOT, /* its snapshot's parts go out as its queue has room */
    FEED_WAIT,     /* a resume waits for Redis (replay.h); its ack too */
    FEED_REPLAY,   /* the entries Redis gave back go out */
    FEED_CATCHUP,  /* it reads the ring up to the worker */
};

struct replay_req;
struct outq_msg;

/* Per session, embedded in struct wsp_session; zero is "live, no floors". */
struct feed_session {
    enum feed_phase phase;
    uint64_t from;          /* ring sequence: earlier frames are not this session's */
    struct feed_snap *snap; /* SNAPSHOT: what it is sent, parts from next_part on */
    uint32_t next_part;
    const char *reason;    /* on the snapshot's first part (lapped, epoch_changed), or NULL */
    struct ring_reader rd; /* CATCHUP: the next frame it reads */
    /* Resume: per stream row, frames of that stream up to this id are not
     * sent (the client has them).  NULL: no floors. */
    struct streamid *floor;
    /* WAIT / REPLAY: the request, the ack held back until it is answered,
     * where the ring catch-up starts, whether a refusal gets a snapshot,
     * and the entries to send. */
    struct replay_req *replay;
    cJSON *pending_ack;
    uint64_t catch_from;
    int want_snapshot;
    struct outq_msg **replayed;
    uint32_t nreplayed, next_replayed;
    lws_dll2_t link; /* on the worker's list of sessions not live */
};

/* One frame the worker read from the ring, as the feed and the broadcast
 * see it. */
struct feed_entry {
    uint64_t seq;
    uint32_t stream; /* row in the shm stream table */
    struct streamid id;
    const char *stream_name;
    const char *id_text;
    uint64_t published_us; /* when the ingest published it (ring_frame_meta) */
};

/* What a subscribe asks of the feed, parsed before the filter changes. */
struct feed_request {
    int snapshot; /* 0: "snapshot": false */
    int resume;   /* a "resume" object was given */
    char epoch[64];
    uint32_t npositions;
    struct feed_position {
        char stream[128];
        struct streamid id;
    } * positions; /* malloc'd; feed_request_free */
};

/* The worker's feed state (reader: the worker's ring reader, whose next
 * frame the worker's positions are up to).  Starts the reader where the
 * snapshot table stands, so the positions are exact from the first frame.
 * 0, or -1 on OOM (logged). */
int feed_init(struct wsp_vhost *vh, struct ring_reader *reader);
void feed_free(struct wsp_vhost *vh);

/* The worker read frame e (kind, of e->stream): keep its positions. */
void feed_frame(struct wsp_vhost *vh, uint32_t kind, const struct feed_entry *e, const char *data,
                uint32_t len);

/* The worker read frame e (of kind; view: the unpacked entry, NULL if it is
 * none or cannot be unpacked) and encoded it as msg[0] (full) and msg[1]
 * (basic), each NULL if no live client wanted it (msg NULL: neither): kept
 * for sessions that catch up over it.  Takes the references. */
struct frame_view;
void feed_note(struct wsp_vhost *vh, uint32_t kind, const struct feed_entry *e,
               const struct frame_view *view, struct outq_msg *msg[2]);

/* The worker was lapped: frames were lost before it read them.  Its reader
 * moves to where the snapshot table stands, and every subscribed session
 * gets a fresh snapshot ("lapped"). */
void feed_lapped(struct wsp_vhost *vh);

/* Whether a live broadcast of e is for ss (its phase, where its board
 * stands, the positions it resumed from). */
static inline int
feed_wants(const struct feed_session *fs, const struct feed_entry *e)
{
    if (fs->phase != FEED_LIVE || e->seq < fs->from)
        return 0;
    return fs->floor == NULL || streamid_cmp(&e->id, &fs->floor[e->stream]) > 0;
}

/* Parse the feed's part of a subscribe payload: "snapshot" (boolean) and
 * "resume" ({"epoch": string, "positions": {stream: id}}).  0, or -1 with a
 * client-facing reason in why. */
int feed_request_parse(const cJSON *payload, struct feed_request *req, char *why, size_t whylen);
void feed_request_free(struct feed_request *req);

/* ss was just (re)subscribed: decide between resume and snapshot, add
 * "epoch" (and "resumed", "reason" for a resume) to the ack's payload, and
 * start its feed.  Returns 0: the caller sends the ack next, and the
 * snapshot or the missed entries follow it (feed_service); or 1: the
 * answer needs Redis (entries older than the ring), and the feed took the
 * ack (it sends it once it knows).  ack may be NULL (out of memory). */
int feed_start(struct wsp_vhost *vh, struct wsp_session *ss, const struct feed_request *req,
               cJSON *ack);

/* ss unsubscribed or is closing: drop what its feed holds. */
void feed_stop(struct wsp_vhost *vh, struct wsp_session *ss);

/* Move the sessions that are not live forward, within a budget per call.
 * Returns 1 if work is left that can proceed now (call again after a turn
 * of the loop), 0 if not (what is left waits for queues to drain). */
int feed_service(struct wsp_vhost *vh);

#endif
