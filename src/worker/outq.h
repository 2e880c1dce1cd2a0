/*
 * outq: framed server messages and one client's queue of them.
 *
 * Every server message is a refcounted struct outq_msg, encoded once and
 * framed once: the WebSocket frame header is written in the headroom right
 * before the text, so the whole frame (frame_len bytes at buf + frame_off)
 * goes out as is, and an update encoded once is queued to every matching
 * client without a copy.
 *
 * A struct outq is one client's FIFO of such messages.  outq_write() sends
 * its head in one gathering sendmsg() straight from the shared messages: on
 * loopback a write costs several microseconds whatever its size, and a copy
 * into a staging buffer cost as much CPU as the kernel's own copy, so writes
 * per delivered message decide throughput.  The socket may take part of a
 * frame; head_off remembers how much, and the caller must write nothing
 * else on that socket (no ping, pong or close frame) until outq_mid_frame()
 * is false again, or the client would see a frame cut in two.
 *
 * Worker role, single-threaded.  No policy here: the caller decides the
 * queue's bound (CLIENT_BUFFER) and what to do when it is reached.
 */
#ifndef WSB_OUTQ_H
#define WSB_OUTQ_H

#include "../common/hist.h"

#include <libwebsockets.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes of one gathering write (one larger frame goes out on its own).
 * Also the protocol's tx_packet_size, for the HTTP replies lws writes: it
 * cuts every write to that (else to the rx buffer size) and buffers the
 * rest. */
#define OUTQ_WRITE_BYTES 65536

/* The headroom in front of a message's text: LWS_PRE, so lws could frame
 * the same buffer too. */
#define OUTQ_HEADROOM LWS_PRE

struct outq_msg {
    uint32_t refs;
    uint32_t len;       /* bytes of text at buf + OUTQ_HEADROOM */
    uint32_t frame_off; /* the frame (header + text) starts here in buf */
    uint32_t frame_len;
    char *buf;        /* OUTQ_HEADROOM bytes of headroom, then the text */
    uint64_t key;     /* the board key of an update (a hash, never 0); 0: none, never conflated */
    uint64_t made_ms; /* monotonic: when it was made (CLIENT_MAX_LAG) */
    /* An update read from the ring: when the ingest published it there
     * (CLOCK_MONOTONIC, us; ring_frame_meta), for the delivery latency.
     * 0: not from the ring (replies, replays from Redis): not timed. */
    uint64_t published_us;
    struct outq_msg *conflated; /* the same with "conflated":true (outq_msg_conflated), or NULL */
};

#define OUTQ_OP_TEXT  0x1
#define OUTQ_OP_CLOSE 0x8

/* Write the header of an unmasked, final frame of opcode (RFC 6455 5.2) for
 * a payload of len bytes into hdr (at least 10 bytes); returns its length. */
size_t outq_frame_header(unsigned char *hdr, unsigned opcode, uint64_t len);

/* Take ownership of buf (OUTQ_HEADROOM bytes, then len bytes of text) and
 * frame it; refs = 1.  NULL on OOM (buf is freed). */
struct outq_msg *outq_msg_adopt(char *buf, size_t len);

/* A message of text[0..len) copied behind the headroom, refs = 1; NULL on OOM. */
struct outq_msg *outq_msg_new(const char *text, size_t len);

/* A close frame with code and reason (cut to fit a control frame's 125
 * bytes), refs = 1; NULL on OOM. */
struct outq_msg *outq_msg_close(unsigned code, const char *reason);

void outq_msg_ref(struct outq_msg *m);

/* m, marked as replacing older updates of its key: its JSON object with
 * "conflated":true added last, made once per message (m keeps it) and
 * shared like m.  Borrowed: take a reference to keep it.  NULL on OOM. */
struct outq_msg *outq_msg_conflated(struct outq_msg *m);

/* Drop one reference; frees m with the last.  NULL is a no-op. */
void outq_msg_unref(struct outq_msg *m);

/* One client's queue: a ring of message pointers that grows on demand, so an
 * idle client costs no queue memory.  Zero-initialised is empty. */
struct outq_keys;

struct outq {
    struct outq_msg **slots;
    uint32_t cap, head, len;
    uint32_t head_off;      /* bytes of the head message's frame already written */
    uint64_t bytes;         /* frame bytes queued (the head's in full) */
    uint64_t base;          /* messages ever taken off the head: the head's position */
    struct outq_keys *keys; /* while indexed: key -> position of its queued update */
};

/* Append m (a reference is taken) if fewer than limit messages are queued
 * (UINT32_MAX: no limit, for a close frame that must follow whatever is
 * queued).
 * 0, or -1 if the queue holds limit messages or memory ran out (m is not
 * queued either way; outq_full tells which). */
int outq_push(struct outq *q, struct outq_msg *m, uint32_t limit);

static inline int
outq_full(const struct outq *q, uint32_t limit)
{
    return q->len >= limit;
}

/* A frame is partly written: only the rest of it may go out next. */
static inline int
outq_mid_frame(const struct outq *q)
{
    return q->head_off > 0;
}

/* The unwritten rest of the head frame, and its length; NULL if the queue is
 * empty.  With outq_drop_head, for handing that rest to another writer. */
const unsigned char *outq_head_rest(const struct outq *q, size_t *len);

/* Drop the head message (the rest of its frame is someone else's now). */
void outq_drop_head(struct outq *q);

/* Drop every queued message and the ring itself (and the key index). */
void outq_clear(struct outq *q);

/*
 * Conflation (outbound.c decides when).  While q is indexed it knows, for
 * each key, where its queued update is; a newer update of that key can then
 * take the older one's place instead of queueing behind it.
 * outq_index_keys starts indexing (0, or -1 on OOM); outq_unindex_keys
 * stops it.  outq_keys_waiting: distinct keys queued (indexed queues).
 */
int outq_index_keys(struct outq *q);
void outq_unindex_keys(struct outq *q);
uint32_t outq_keys_waiting(const struct outq *q);

/* If q is indexed and an update of m's key waits (and is not partly
 * written), put m (a reference taken) in its place and return the one it
 * replaces (the caller's reference now); else NULL and q is unchanged. */
struct outq_msg *outq_replace_key(struct outq *q, struct outq_msg *m);

/* When the head message was made (monotonic ms); 0 if q is empty. */
static inline uint64_t
outq_head_made_ms(const struct outq *q)
{
    return q->len > 0 ? q->slots[q->head]->made_ms : 0;
}

/*
 * Delivery latency: from the ring to the write that completes a client's
 * frame, for one delivered update in OUTQ_LATENCY_SAMPLE.  Timing each one
 * costs a bucket search and two stores, 3 to 8 ns per delivery (measured
 * on a 2-vCPU EPYC VM), up to 1% of a delivery when writes carry many (0.9 us
 * each); one in 8 costs under 1 ns a delivery, and the sample is still
 * thousands a second on a busy worker (percentiles do not change with
 * uniform sampling; counts are 1/8 of the deliveries).  The clock (25 ns)
 * is read once per write that completes a sampled frame.
 */
#define OUTQ_LATENCY_SAMPLE 8

struct outq_latency {
    struct hist *hist;  /* the worker's (shm.h: delivery_latency) */
    uint32_t countdown; /* timed deliveries to go until the next sample; start at 1 */
};

/*
 * Write what is queued to the non-blocking socket fd: at most `rounds`
 * sendmsg() calls, each gathering frames up to OUTQ_WRITE_BYTES.  Stops
 * early when the socket takes less than offered (it is full).  *delivered
 * counts the frames that went out completely, *bytes every byte written.
 * Frames with a published_us completed by a write are sampled into lat
 * (NULL: not timed).  Returns 0 (the queue may still hold messages, the
 * head maybe in part), or -1 if the connection is broken (errno set).
 */
int outq_write(struct outq *q, int fd, int rounds, uint32_t *delivered, size_t *bytes,
               struct outq_latency *lat);

#endif
