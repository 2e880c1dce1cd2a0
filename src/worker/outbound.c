#include "outbound.h"
#include "encode.h"
#include "rxguard.h"
#include "../common/hash.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

/* Bounds one client's turn in the loop: at most this many writes of at most
 * OUTQ_WRITE_BYTES each, well above what the worker queues per turn, so a
 * client that keeps up empties its queue every turn. */
#define OUTBOUND_WRITES_PER_ROUND 16

static struct log_ratelimit outbound_rl = LOG_RATELIMIT_INIT(10000, 10);

static void outbound_conflate_off(struct wsp_vhost *vh, struct wsp_session *ss);

static void
outbound_mark_dirty(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (lws_dll2_is_detached(&ss->dirty))
        lws_dll2_add_head(&ss->dirty, &vh->dirty);
}

/*
 * Write ss's queue; counts what went out and notes an emptied queue.  -1 if
 * the connection is broken.
 *
 * A frame the socket took only part of is finished by lws: its rest is
 * handed over as raw bytes, which lws buffers and writes before anything
 * else on that connection.  lws answers a client's ping (and sends its own
 * close reply) at the next POLLOUT, ahead of our writeable callback; with the
 * rest of a frame still ours, that pong would land in the middle of it and
 * corrupt the client's stream.  Only a full socket leaves a frame half
 * sent, so the copy lws makes is rare.
 */
static int
outbound_write(struct wsp_vhost *vh, struct wsp_session *ss)
{
    uint32_t delivered;
    size_t bytes;
    int rc = outq_write(&ss->q, lws_get_socket_fd(ss->wsi), OUTBOUND_WRITES_PER_ROUND, &delivered,
                        &bytes, &vh->latency);

    if (rc == 0 && outq_mid_frame(&ss->q)) {
        size_t len;
        const unsigned char *rest = outq_head_rest(&ss->q, &len);
        if (lws_write(ss->wsi, (unsigned char *)rest, len, LWS_WRITE_RAW) < (int)len)
            rc = -1;
        outq_drop_head(&ss->q);
        delivered++;
    }
    if (bytes > 0)
        ss->progress_ms = time_mono_ms();
    if (delivered > 0)
        WSP_STAT_ADD(vh, total_messages, delivered);
    if (ss->q.len == 0)
        ss->ended_slice = 0;
    /* Back to normal once its queue has drained below a quarter of
     * CLIENT_BUFFER (by writing: a queue of few keys is short while it is
     * conflated, and the socket may be as full as ever). */
    if (ss->conflating && delivered > 0 && ss->q.len < vh->conf->client_buffer / 4)
        outbound_conflate_off(vh, ss);
    return rc;
}

/* Write ss's queue now, outside lws's writeable callback.  Anything but
 * plain data (a close, a ping, bytes lws holds) is left to that callback.
 * Returns 0 if the queue is empty afterwards. */
static int
outbound_send_direct(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (ss->close_code != 0 || ss->guard_code != 0 || ss->ping_due || ss->broken ||
        lws_partial_buffered(ss->wsi)) {
        lws_callback_on_writable(ss->wsi);
        return -1;
    }
    if (outbound_write(vh, ss) < 0)
        ss->broken = 1;
    ss->last_sent_ms = vh->batch_ms;
    if (ss->q.len > 0 || ss->broken) {
        ss->await_pollout = !ss->broken;
        lws_callback_on_writable(ss->wsi);
        return -1;
    }
    return 0;
}

/* Cut ss off as too slow, naming the bound it hit (counted per bound). */
static void
outbound_cut(struct wsp_vhost *vh, struct wsp_session *ss, _Atomic uint64_t *counter,
             const char *reason)
{
    char ip[ADDRTAB_KEY_STRLEN];

    WSP_STAT_ADD(vh, slow_disconnects, 1);
    /* What waits is never sent: the close goes first (wsp_schedule_close
     * without flush). */
    WSP_STAT_ADD(vh, dropped_messages, ss->q.len + ss->held.len);
    atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
    wsp_client_ip(ss, ip, sizeof(ip));
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_STR("client_ip", ip),
                           LOG_NUM("code", LWS_CLOSE_STATUS_POLICY_VIOLATION)),
                "client %s (%s) too slow (%u messages, %llu bytes queued): %s; disconnecting",
                ss->client_id, ip, ss->q.len, (unsigned long long)(ss->q.bytes + ss->held.bytes),
                reason);
    wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION, reason, 0);
}

/* Whether ss is past a bound no conflation can help with: then it is cut
 * off (1). */
static int
outbound_over_bounds(struct wsp_vhost *vh, struct wsp_session *ss)
{
    const struct conf *c = vh->conf;

    /* Keys are counted only while conflated (or holding): a client that
     * keeps up pays one comparison per message here. */
    if ((ss->conflating || ss->held.len > 0) && (outq_keys_waiting(&ss->q) > c->client_buffer ||
                                                 outq_keys_waiting(&ss->held) > c->client_buffer)) {
        outbound_cut(vh, ss, &vh->stats->slow_keys, "client too slow: too many keys waiting");
        return 1;
    }
    if (ss->q.bytes + ss->held.bytes > c->client_buffer_bytes) {
        outbound_cut(vh, ss, &vh->stats->slow_bytes,
                     "client too slow: queue over CLIENT_BUFFER_BYTES");
        return 1;
    }
    /* The age only matters for a queue that stays: a conflated client's
     * (else the sweep looks, once a second); no clock read per message for
     * a client that keeps up. */
    return (ss->conflating || ss->held.len > 0) && outq_head_made_ms(&ss->q) != 0 &&
           outbound_check_lag(vh, ss, time_mono_ms());
}

int
outbound_check_lag(struct wsp_vhost *vh, struct wsp_session *ss, uint64_t now)
{
    uint64_t made = outq_head_made_ms(&ss->q);

    if (made == 0 || ss->close_code != 0 || now < made ||
        now - made < (uint64_t)vh->conf->client_max_lag * 1000)
        return 0;
    outbound_cut(vh, ss, &vh->stats->slow_lag,
                 "client too slow: updates older than CLIENT_MAX_LAG");
    return 1;
}

/* Automatic conflation: from CONFLATE_AT messages queued, a newer update of
 * a key takes the place of the one waiting. */
static void
outbound_conflate_on(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (ss->conflating || outq_index_keys(&ss->q) != 0)
        return; /* no memory for the index: it goes on unconflated */
    ss->conflating = 1;
    WSP_STAT_ADD(vh, conflated_clients, 1);
}

static void
outbound_conflate_off(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (!ss->conflating)
        return;
    outq_unindex_keys(&ss->q);
    ss->conflating = 0;
    WSP_STAT_SUB(vh, conflated_clients, 1);
}

/* m in place of the waiting update of its key in q, marked "conflated";
 * 1 if it was, 0 if no update of its key waits there. */
static int
outbound_replace(struct wsp_vhost *vh, struct outq *q, struct outq_msg *m)
{
    struct outq_msg *mark = outq_msg_conflated(m), *old;

    if (mark == NULL || (old = outq_replace_key(q, mark)) == NULL)
        return 0;
    outq_msg_unref(old);
    WSP_STAT_ADD(vh, conflated_updates, 1);
    return 1;
}

static void outbound_hold_tick(lws_sorted_usec_list_t *sul);

#define OUTBOUND_HOLD_TICK_US (10 * LWS_US_PER_MS)

/* Requested conflation: keep the latest update of each key until the
 * session's next flush, at most one per conflate_ms. */
static void
outbound_hold(struct wsp_vhost *vh, struct wsp_session *ss, struct outq_msg *m)
{
    if (outbound_replace(vh, &ss->held, m))
        return;
    if ((ss->held.keys == NULL && outq_index_keys(&ss->held) != 0) ||
        outq_push(&ss->held, m, UINT32_MAX) != 0) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
        return;
    }
    if (lws_dll2_is_detached(&ss->hold_link)) {
        uint64_t due = ss->last_flush_ms + ss->conflate_ms, now = time_mono_ms();
        ss->next_flush_ms = due > now ? due : now;
        if (vh->holding.count == 0)
            lws_sul_schedule(vh->ctx, 0, &vh->hold_timer, outbound_hold_tick,
                             OUTBOUND_HOLD_TICK_US);
        lws_dll2_add_tail(&ss->hold_link, &vh->holding);
    }
    (void)outbound_over_bounds(vh, ss);
}

static void outbound_queue(struct wsp_vhost *vh, struct wsp_session *ss, struct outq_msg *m);

void
outbound_flush_held(struct wsp_vhost *vh, struct wsp_session *ss)
{
    struct outq held = ss->held;

    if (!lws_dll2_is_detached(&ss->hold_link))
        lws_dll2_remove(&ss->hold_link);
    memset(&ss->held, 0, sizeof(ss->held));
    ss->last_flush_ms = time_mono_ms();
    outq_unindex_keys(&held);
    for (uint32_t i = 0; i < held.len; i++)
        outbound_queue(vh, ss, held.slots[(held.head + i) % held.cap]);
    outq_clear(&held);
}

static void
outbound_hold_tick(lws_sorted_usec_list_t *sul)
{
    struct wsp_vhost *vh = lws_container_of(sul, struct wsp_vhost, hold_timer);
    uint64_t now = time_mono_ms();
    uint32_t n = vh->holding.count;

    while (n-- > 0 && vh->holding.head != NULL) {
        struct wsp_session *ss = lws_container_of(vh->holding.head, struct wsp_session, hold_link);
        lws_dll2_remove(&ss->hold_link);
        if (ss->close_code != 0)
            outq_clear(&ss->held);
        else if (now >= ss->next_flush_ms)
            outbound_flush_held(vh, ss);
        else
            lws_dll2_add_tail(&ss->hold_link, &vh->holding);
    }
    if (vh->holding.count > 0)
        lws_sul_schedule(vh->ctx, 0, &vh->hold_timer, outbound_hold_tick, OUTBOUND_HOLD_TICK_US);
}

void
outbound_enqueue(struct wsp_vhost *vh, struct wsp_session *ss, struct outq_msg *m)
{
    if (ss->close_code != 0)
        return; /* on its way out: nothing more is sent */
    if (m->key != 0 && ss->conflate_ms > 0) {
        outbound_hold(vh, ss, m);
        return;
    }
    outbound_queue(vh, ss, m);
}

/* Queue m to ss now (conflated if ss is). */
static void
outbound_queue(struct wsp_vhost *vh, struct wsp_session *ss, struct outq_msg *m)
{
    const struct conf *c = vh->conf;
    uint32_t limit = c->client_buffer;

    if (ss->close_code != 0)
        return;
    if (ss->conflating && m->key != 0 && outbound_replace(vh, &ss->q, m)) {
        (void)outbound_over_bounds(vh, ss);
        return;
    }
    /* Conflated, the queue is bounded by its keys, bytes and age instead. */
    if (outq_push(&ss->q, m, ss->conflating ? UINT32_MAX : limit) != 0) {
        WSP_STAT_ADD(vh, dropped_messages, 1);
        if (outq_full(&ss->q, limit)) /* (conflation is off or had no memory) */
            outbound_cut(vh, ss, &vh->stats->slow_keys, "client too slow: send buffer full");
        else
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
        return;
    }
    ss->messages_queued++;
    if (outbound_over_bounds(vh, ss))
        return;
    if (ss->q.len == 1 && !lws_partial_buffered(ss->wsi))
        ss->progress_ms = time_mono_ms(); /* data starts to wait now (SEND_TIMEOUT) */
    if (!vh->batching) {
        if (ss->q.len == 1)
            lws_callback_on_writable(ss->wsi);
        if (!ss->conflating && ss->q.len >= c->conflate_at)
            outbound_conflate_on(vh, ss);
        return;
    }
    outbound_mark_dirty(vh, ss);
    /* A client that takes many of the slice's entries is written to as soon
     * as its queue reaches CONFLATE_AT, so the slice can go on for the
     * others, who get fewer, fuller writes, and so that a client that keeps
     * up is never conflated.  If its socket is full, it is conflated from
     * here on, and the slice ends: it gets a turn of the loop to drain.
     * Once until its queue has been empty again: a client that reads just
     * enough to stay near the mark must not cut every slice short for
     * everyone else. */
    if (!ss->conflating && ss->q.len >= c->conflate_at && outbound_send_direct(vh, ss) != 0 &&
        ss->q.len >= c->conflate_at) {
        outbound_conflate_on(vh, ss);
        if (!ss->ended_slice) {
            ss->ended_slice = 1;
            vh->slice_full = 1;
        }
    }
}

static void
outbound_send_owned(struct wsp_vhost *vh, struct wsp_session *ss, char *buf, size_t len)
{
    struct outq_msg *m;

    if (buf == NULL)
        return;
    m = outq_msg_adopt(buf, len);
    if (m == NULL)
        return;
    outbound_enqueue(vh, ss, m);
    outq_msg_unref(m);
}

void
outbound_send_message(struct wsp_vhost *vh, struct wsp_session *ss, const char *type,
                      cJSON *payload)
{
    size_t len = 0;
    char *buf = encode_message(type, payload, time_now_ms(), OUTQ_HEADROOM, &len);

    outbound_send_owned(vh, ss, buf, len);
}

void
outbound_send_last(struct wsp_vhost *vh, struct wsp_session *ss, const char *type, cJSON *payload)
{
    size_t len = 0;
    char *buf;
    struct outq_msg *m;

    if (ss->close_code != 0) {
        cJSON_Delete(payload);
        return;
    }
    buf = encode_message(type, payload, time_now_ms(), OUTQ_HEADROOM, &len);
    if (buf == NULL || (m = outq_msg_adopt(buf, len)) == NULL)
        return;
    /* No limit: it is the last message (the close frame follows it the
     * same way), so the queue cannot grow by more than it. */
    if (outq_push(&ss->q, m, UINT32_MAX) == 0) {
        ss->messages_queued++;
        if (ss->q.len == 1 && !lws_partial_buffered(ss->wsi))
            ss->progress_ms = time_mono_ms();
        lws_callback_on_writable(ss->wsi);
    } else {
        WSP_STAT_ADD(vh, dropped_messages, 1); /* out of memory */
    }
    outq_msg_unref(m);
}

void
outbound_send_error(struct wsp_vhost *vh, struct wsp_session *ss, const char *code,
                    const char *message)
{
    size_t len = 0;
    char *buf = encode_error(code, message, time_now_ms(), OUTQ_HEADROOM, &len);

    WSP_STAT_ADD(vh, client_errors, 1);
    outbound_send_owned(vh, ss, buf, len);
}

void
outbound_batch_begin(struct wsp_vhost *vh)
{
    vh->batching = 1;
    vh->slice_full = 0;
    vh->batch_ms = time_now_ms();
}

struct outbound_delivery {
    struct wsp_vhost *vh;
    const struct frame_view *view;
    const struct feed_entry *entry;
    struct outq_msg *msg[2]; /* full, basic: each encoded once, on its first match */
    int failed[2];
};

uint64_t
outbound_key(const struct frame_view *view)
{
    char text[1024];
    size_t len;
    uint64_t h;

    /* Opportunities are never conflated away: each is its own news. */
    if (view->type != FRAME_ODDS_UPDATE || frame_board_key(view, text, sizeof(text), &len) != 0)
        return 0;
    h = hash_bytes(text, len);
    return h != 0 ? h : 1;
}

struct outq_msg *
outbound_encode_entry(struct wsp_vhost *vh, const struct frame_view *view,
                      const struct feed_entry *e, int basic)
{
    struct encode_origin origin = {e->stream_name, e->id_text, basic};
    struct outq_msg *m;
    char err[128];
    size_t len = 0;
    char *buf = encode_update(view, &origin, time_now_ms(), OUTQ_HEADROOM, &len, err, sizeof(err));

    if (buf == NULL || (m = outq_msg_adopt(buf, len)) == NULL) {
        WSP_STAT_ADD(vh, invalid_frames, 1);
        if (log_ratelimit_allow(&outbound_rl))
            LOG_WARN("cannot encode frame: %s", buf == NULL ? err : "out of memory");
        return NULL;
    }
    m->key = outbound_key(view);
    m->published_us = e->published_us;
    return m;
}

void
outbound_send_entry(struct wsp_vhost *vh, struct wsp_session *ss, const struct frame_view *view,
                    const struct feed_entry *e)
{
    struct outq_msg *m = outbound_encode_entry(vh, view, e, ss->basic);

    if (m == NULL)
        return;
    outbound_enqueue(vh, ss, m);
    outq_msg_unref(m);
}

static void
outbound_deliver(struct sub_member *member, void *arg)
{
    struct outbound_delivery *d = arg;
    struct wsp_session *ss = lws_container_of(member, struct wsp_session, member);

    int p = ss->basic;

    if (d->failed[p] || !feed_wants(&ss->feed, d->entry) ||
        (ss->no_opps && d->view->type == FRAME_OPPORTUNITY))
        return;
    if (d->msg[p] == NULL) {
        /* Encoded once per projection, on the first match: entries nobody
         * wants cost no JSON. */
        if ((d->msg[p] = outbound_encode_entry(d->vh, d->view, d->entry, p)) == NULL) {
            d->failed[p] = 1;
            return;
        }
    }
    outbound_enqueue(d->vh, ss, d->msg[p]);
}

int
outbound_broadcast(struct wsp_vhost *vh, const struct frame_view *view,
                   const struct feed_entry *entry, struct outq_msg *encoded[2])
{
    struct outbound_delivery d = {vh, view, entry, {NULL, NULL}, {0, 0}};
    int full;

    vh->slice_full = 0;
    sub_index_match(vh->index, view->keys, outbound_deliver, &d);
    encoded[0] = d.msg[0]; /* the caller's references now */
    encoded[1] = d.msg[1];
    full = vh->slice_full;
    vh->slice_full = 0;
    return full;
}

void
outbound_batch_flush(struct wsp_vhost *vh)
{
    vh->batching = 0;
    while (vh->dirty.head != NULL) {
        struct wsp_session *ss = lws_container_of(vh->dirty.head, struct wsp_session, dirty);
        lws_dll2_remove(&ss->dirty);
        if (ss->await_pollout)
            lws_callback_on_writable(ss->wsi); /* still full: wait for POLLOUT */
        else
            (void)outbound_send_direct(vh, ss);
    }
}

/* Our close frame after what is queued (all of it, or nothing if the close
 * does not flush), and from now on input is discarded unread. */
static int
outbound_queue_close(struct wsp_vhost *vh, struct wsp_session *ss)
{
    struct outq_msg *m = outq_msg_close((unsigned)ss->close_code, ss->close_reason);

    sub_index_leave(vh->index, &ss->member);
    if (m == NULL)
        return -1;
    if (!ss->close_flush)
        outq_clear(&ss->q);
    (void)outq_push(&ss->q, m, UINT32_MAX); /* no limit: cannot fail */
    outq_msg_unref(m);
    ss->close_queued = 1;
    rxguard_discard(lws_get_socket_fd(ss->wsi), ss);
    return 0;
}

int
outbound_writeable(struct wsp_vhost *vh, struct wsp_session *ss)
{
    ss->await_pollout = 0;
    if (ss->broken)
        return -1; /* a direct write found the connection broken */
    if (ss->lingering)
        return 0; /* all said: waiting for the peer to close (rxguard reads) */

    if (ss->guard_code != 0 && ss->close_code == 0)
        wsp_schedule_close(ss, ss->guard_code, ss->guard_why, 1);
    /* lws still holds bytes of its own (a handshake reply, the rest of a
     * frame): they go first, and lws calls back when they are out. */
    if (lws_partial_buffered(ss->wsi)) {
        lws_callback_on_writable(ss->wsi);
        return 0;
    }
    if (ss->close_code != 0 && !ss->close_queued && (!ss->close_flush || ss->q.len == 0) &&
        outbound_queue_close(vh, ss) != 0)
        return -1; /* out of memory: no close frame, then */
    if (outbound_write(vh, ss) < 0)
        return -1;
    if (ss->close_queued) {
        if (ss->q.len == 0 && !lws_partial_buffered(ss->wsi)) {
            /* The close frame is out: our FIN follows it, and the peer's
             * answer ends the connection (or the CLOSE_TIMEOUT reset). */
            if (shutdown(lws_get_socket_fd(ss->wsi), SHUT_WR) != 0)
                return -1;
            ss->lingering = 1;
            return 0;
        }
        lws_callback_on_writable(ss->wsi);
        return 0;
    }
    if (ss->ping_due && ss->close_code == 0) {
        /* A payload, because lws 4.1 does not pass an empty pong up; any
         * bytes from the client count as an answer anyway (rxguard). */
        unsigned char ping[LWS_PRE + 4];
        memcpy(ping + LWS_PRE, "wsb!", 4);
        ss->ping_due = 0;
        if (lws_write(ss->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
            return -1;
    }
    if (ss->q.len > 0 || ss->close_code != 0 || ss->ping_due)
        lws_callback_on_writable(ss->wsi);
    ss->last_sent_ms = time_now_ms();
    return 0;
}

void
outbound_release(struct wsp_vhost *vh, struct wsp_session *ss)
{
    /* Not expected (batches do not reach lws), but a session freed while
     * on the dirty list would be written after it is gone. */
    if (!lws_dll2_is_detached(&ss->dirty))
        lws_dll2_remove(&ss->dirty);
    if (!lws_dll2_is_detached(&ss->hold_link))
        lws_dll2_remove(&ss->hold_link);
    outbound_conflate_off(vh, ss);
    outq_clear(&ss->held);
    outq_clear(&ss->q);
}

void
outbound_drop_held(struct wsp_session *ss)
{
    if (!lws_dll2_is_detached(&ss->hold_link))
        lws_dll2_remove(&ss->hold_link);
    outq_clear(&ss->held);
}
