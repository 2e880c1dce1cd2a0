#include "wsp.h"
#include "cmsg.h"
#include "encode.h"
#include "metrics.h"
#include "wsguard.h"
#include "../common/log.h"
#include "../common/timeutil.h"
#include "../common/utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#define WSP_QUEUE_INITIAL    8
/* Bounds one client's turn in the loop: at most this many writes of at most
 * WSP_COALESCE_BYTES each, well above what the worker queues per turn, so a
 * client that keeps up empties its queue every turn. */
#define WSP_WRITES_PER_ROUND 16
/* Frames gathered into one sendmsg(); well under IOV_MAX. */
#define WSP_IOV_MAX          256

static struct wsp_vhost *wsp_vh;

#define STAT_ADD(field, n)                                                                         \
    atomic_fetch_add_explicit(&wsp_vh->stats->field, (n), memory_order_relaxed)
#define STAT_SUB(field, n)                                                                         \
    atomic_fetch_sub_explicit(&wsp_vh->stats->field, (n), memory_order_relaxed)

void
wsp_bind(struct wsp_vhost *vh)
{
    wsp_vh = vh;
}

/* Write the header of an unmasked, final text frame (RFC 6455 5.2) in the
 * headroom just before the text. */
static void
wsp_msg_frame(struct wsp_msg *m)
{
    unsigned char hdr[10];
    size_t n = 0;
    uint64_t len = m->len;

    hdr[n++] = 0x81;
    if (len < 126) {
        hdr[n++] = (unsigned char)len;
    } else if (len < 65536) {
        hdr[n++] = 126;
        hdr[n++] = (unsigned char)(len >> 8);
        hdr[n++] = (unsigned char)len;
    } else {
        hdr[n++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[n++] = (unsigned char)(len >> (8 * i));
    }
    m->frame_off = (uint32_t)(LWS_PRE - n);
    m->frame_len = (uint32_t)(n + len);
    memcpy(m->buf + m->frame_off, hdr, n);
}

struct wsp_msg *
wsp_msg_adopt(char *buf, size_t len)
{
    struct wsp_msg *m = malloc(sizeof(*m));

    if (m == NULL) {
        free(buf);
        return NULL;
    }
    m->refs = 1;
    m->len = (uint32_t)len;
    m->buf = buf;
    wsp_msg_frame(m);
    return m;
}

struct wsp_msg *
wsp_msg_new(const char *text, size_t len)
{
    char *buf = malloc(LWS_PRE + len + 1);

    if (buf == NULL)
        return NULL;
    memcpy(buf + LWS_PRE, text, len);
    buf[LWS_PRE + len] = '\0';
    return wsp_msg_adopt(buf, len);
}

void
wsp_msg_unref(struct wsp_msg *m)
{
    if (m != NULL && --m->refs == 0) {
        free(m->buf);
        free(m);
    }
}

/* Close ss with code at its next writeable.  Messages already queued are
 * sent first (an error reply should reach the client before the close);
 * the caller clears close_flush for a client cut off for being slow, whose
 * queue is the problem. */
static void
wsp_schedule_close(struct wsp_session *ss, int code, const char *reason)
{
    if (ss->close_code != 0)
        return;
    ss->close_code = code;
    ss->close_flush = 1;
    snprintf(ss->close_reason, sizeof(ss->close_reason), "%s", reason);
    lws_callback_on_writable(ss->wsi);
}

static int wsp_send_queue(struct wsp_session *ss, int head_only);
static int wsp_send_direct(struct wsp_session *ss);

void
wsp_enqueue(struct wsp_session *ss, struct wsp_msg *m)
{
    uint32_t limit = wsp_vh->conf->client_buffer;

    if (ss->close_code != 0)
        return; /* on its way out: nothing more is sent */
    if (ss->queue_len >= limit) {
        STAT_ADD(dropped_messages, 1);
        STAT_ADD(slow_disconnects, 1);
        LOG_INFO("client %s too slow (%u messages queued); disconnecting", ss->client_id,
                 ss->queue_len);
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION,
                           "client too slow: send buffer full");
        ss->close_flush = 0;
        return;
    }
    if (ss->queue_len == ss->queue_cap) {
        /* Grow lazily: an idle client costs no queue memory. */
        uint32_t cap = ss->queue_cap ? ss->queue_cap * 2 : WSP_QUEUE_INITIAL;
        struct wsp_msg **q;
        if (cap > limit)
            cap = limit;
        q = malloc(cap * sizeof(*q));
        if (q == NULL) {
            STAT_ADD(dropped_messages, 1);
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
            return;
        }
        for (uint32_t i = 0; i < ss->queue_len; i++)
            q[i] = ss->queue[(ss->queue_head + i) % ss->queue_cap];
        free(ss->queue);
        ss->queue = q;
        ss->queue_cap = cap;
        ss->queue_head = 0;
    }
    ss->queue[(ss->queue_head + ss->queue_len) % ss->queue_cap] = m;
    ss->queue_len++;
    m->refs++;
    ss->messages_queued++;
    if (wsp_vh->batching) {
        if (!ss->dirty) {
            ss->dirty = 1;
            ss->dirty_next = wsp_vh->dirty;
            wsp_vh->dirty = ss;
        }
        /* A client that takes many of the slice's entries is written to as
         * soon as its queue nears CLIENT_BUFFER (7/8 of it), so the slice can go on for
         * the others, who get fewer, fuller writes.  If its socket is full,
         * the slice ends here: it gets a turn of the loop to drain before
         * anything more is queued to it (and is cut off only if it is still
         * full when its queue overflows). */
        if (ss->queue_len >= limit - limit / 8 && wsp_send_direct(ss) != 0 && !ss->ended_slice) {
            /* Once until its queue has been empty again: a client that reads
             * just enough to stay near CLIENT_BUFFER must not cut every slice
             * short for everyone else. */
            ss->ended_slice = 1;
            wsp_vh->slice_full = 1;
        }
    } else if (ss->queue_len == 1) {
        lws_callback_on_writable(ss->wsi);
    }
}

void
wsp_batch_begin(struct wsp_vhost *vh)
{
    vh->batching = 1;
    vh->slice_full = 0;
    vh->batch_ms = time_now_ms();
}

/* Write ss's queue now, outside lws's writeable callback.  Anything but
 * plain data (a close, a ping, bytes lws holds) is left to that callback.
 * Returns 0 if the queue is empty afterwards. */
static int
wsp_send_direct(struct wsp_session *ss)
{
    if (ss->close_code != 0 || ss->guard_code != 0 || ss->ping_due || ss->broken ||
        lws_partial_buffered(ss->wsi)) {
        lws_callback_on_writable(ss->wsi);
        return -1;
    }
    if (wsp_send_queue(ss, 0) < 0)
        ss->broken = 1;
    ss->last_sent_ms = wsp_vh->batch_ms;
    if (ss->queue_len > 0 || ss->broken) {
        ss->await_pollout = !ss->broken;
        lws_callback_on_writable(ss->wsi);
        return -1;
    }
    return 0;
}

void
wsp_batch_flush(struct wsp_vhost *vh)
{
    struct wsp_session *ss = vh->dirty;

    vh->batching = 0;
    vh->dirty = NULL;
    while (ss != NULL) {
        struct wsp_session *next = ss->dirty_next;
        ss->dirty = 0;
        ss->dirty_next = NULL;
        if (ss->await_pollout)
            lws_callback_on_writable(ss->wsi); /* still full: wait for POLLOUT */
        else
            (void)wsp_send_direct(ss);
        ss = next;
    }
}

static void
wsp_queue_pop(struct wsp_session *ss)
{
    wsp_msg_unref(ss->queue[ss->queue_head]);
    ss->queue_head = (ss->queue_head + 1) % ss->queue_cap;
    ss->queue_len--;
}

static void
wsp_queue_clear(struct wsp_session *ss)
{
    while (ss->queue_len > 0)
        wsp_queue_pop(ss);
    free(ss->queue);
    ss->queue = NULL;
    ss->queue_cap = 0;
    ss->head_off = 0;
}

void
wsp_liveness_sweep(struct wsp_vhost *vh)
{
    uint64_t now = time_mono_ms();
    uint64_t interval = (uint64_t)vh->conf->ping_interval * 1000;
    uint64_t timeout = (uint64_t)vh->conf->ping_timeout * 1000;

    for (struct wsp_session *ss = vh->sessions; ss != NULL; ss = ss->next) {
        if (ss->close_code != 0)
            continue;
        if (ss->ping_sent_ms != 0) {
            if (now - ss->ping_sent_ms >= timeout) {
                /* A dead peer will not read a close frame: just hang up. */
                LOG_DEBUG("client %s did not answer a ping; dropping", ss->client_id);
                lws_set_timeout(ss->wsi, PENDING_TIMEOUT_WS_PONG_CHECK_GET_PONG, LWS_TO_KILL_ASYNC);
            }
        } else if (now - ss->last_rx_ms >= interval) {
            ss->ping_sent_ms = now;
            ss->ping_due = 1;
            lws_callback_on_writable(ss->wsi);
        }
    }
}

void
wsp_close_all(struct wsp_vhost *vh, int code, const char *reason)
{
    for (struct wsp_session *ss = vh->sessions; ss != NULL; ss = ss->next)
        wsp_schedule_close(ss, code, reason);
}

/* ---- messages to one client ---------------------------------------------- */

static void
wsp_send_owned(struct wsp_session *ss, char *buf, size_t len)
{
    struct wsp_msg *m;

    if (buf == NULL)
        return;
    m = wsp_msg_adopt(buf, len);
    if (m == NULL)
        return;
    wsp_enqueue(ss, m);
    wsp_msg_unref(m);
}

static void
wsp_send_error(struct wsp_session *ss, const char *code, const char *message)
{
    size_t len = 0;
    char *buf = encode_error(code, message, time_now_ms(), LWS_PRE, &len);

    STAT_ADD(client_errors, 1);
    wsp_send_owned(ss, buf, len);
}

static void
wsp_send_message(struct wsp_session *ss, const char *type, cJSON *payload)
{
    size_t len = 0;
    char *buf = encode_message(type, payload, time_now_ms(), LWS_PRE, &len);

    wsp_send_owned(ss, buf, len);
}

static void
wsp_heartbeat(struct wsp_session *ss)
{
    cJSON *p = cJSON_CreateObject();
    char connected[32], last[32];

    if (p == NULL)
        return;
    time_format_iso_s(ss->connected_ms, connected, sizeof(connected));
    time_format_iso_s(ss->last_sent_ms ? ss->last_sent_ms : ss->connected_ms, last, sizeof(last));
    cJSON_AddStringToObject(p, "client_id", ss->client_id);
    cJSON_AddStringToObject(p, "connected_at", connected);
    /* Everything queued before this reply is sent before it: the client has
     * received exactly this many messages when the reply arrives. */
    cJSON_AddNumberToObject(p, "messages_sent", (double)ss->messages_queued);
    cJSON_AddNumberToObject(p, "messages_received", (double)ss->messages_received);
    cJSON_AddStringToObject(p, "last_message_at", last);
    cJSON_AddNumberToObject(p, "buffer_size", wsp_vh->conf->client_buffer);
    cJSON_AddNumberToObject(p, "buffer_utilization",
                            100.0 * ss->queue_len / wsp_vh->conf->client_buffer);
    wsp_send_message(ss, "heartbeat", p);
}

/* Token bucket: RATE_LIMIT messages a second, bursts of RATE_BURST.  1 if
 * the message may be handled. */
static int
wsp_rate_allow(struct wsp_session *ss)
{
    const struct conf *c = wsp_vh->conf;
    uint64_t now = time_mono_ms();

    if (ss->rate_refill_ms == 0) {
        ss->rate_tokens = c->rate_burst;
    } else {
        ss->rate_tokens += (double)(now - ss->rate_refill_ms) * c->rate_limit / 1000.0;
        if (ss->rate_tokens > c->rate_burst)
            ss->rate_tokens = c->rate_burst;
    }
    ss->rate_refill_ms = now;
    if (ss->rate_tokens < 1.0)
        return 0;
    ss->rate_tokens -= 1.0;
    return 1;
}

static void
wsp_handle_message(struct wsp_session *ss, const char *text, size_t len)
{
    struct sub_filter filter;
    struct cmsg msg;
    const char *code;
    char why[256];

    ss->messages_received++;
    /* RFC 6455 8.1: a text message that is not UTF-8 fails the connection. */
    if (!utf8_valid(text, len)) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text message is not UTF-8");
        return;
    }
    if (!wsp_rate_allow(ss)) {
        if (++ss->rate_rejected >= wsp_vh->conf->rate_burst) {
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded");
            return;
        }
        wsp_send_error(ss, "rate_limited", "too many messages; slow down");
        return;
    }
    ss->rate_rejected = 0;
    if (cmsg_parse(text, len, &msg, &code, why, sizeof(why)) != 0) {
        wsp_send_error(ss, code, why);
        return;
    }
    switch (msg.type) {
    case CMSG_SUBSCRIBE:
        if (sub_filter_parse(msg.payload, &wsp_vh->limits, &filter, why, sizeof(why)) != 0) {
            /* The previous filter stays in force. */
            wsp_send_error(ss, CMSG_ERR_INVALID_FILTER, why);
            break;
        }
        sub_index_leave(wsp_vh->index, &ss->member);
        if (sub_index_join(wsp_vh->index, &ss->member, &filter) != 0) {
            wsp_send_error(ss, "internal_error", "out of memory");
            break;
        }
        wsp_send_message(ss, "subscribed", sub_filter_to_json(sub_member_filter(&ss->member)));
        break;
    case CMSG_UNSUBSCRIBE:
        sub_index_leave(wsp_vh->index, &ss->member);
        wsp_send_message(ss, "unsubscribed", NULL);
        break;
    case CMSG_HEARTBEAT:
        wsp_heartbeat(ss);
        break;
    }
    cmsg_free(&msg);
}

static void
wsp_receive(struct wsp_session *ss, const char *in, size_t len)
{
    int final = lws_is_final_fragment(ss->wsi) && lws_remaining_packet_payload(ss->wsi) == 0;
    size_t limit = wsp_vh->conf->max_message_size;

    if (ss->close_code != 0)
        return;
    if (lws_frame_is_binary(ss->wsi)) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                           "binary messages are not supported");
        return;
    }
    if (ss->rx_len + len > limit) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large");
        return;
    }
    if (final && ss->rx_len == 0) {
        wsp_handle_message(ss, in, len); /* the common case: no copy */
        return;
    }
    if (ss->rx_len + len > ss->rx_cap) {
        size_t cap = ss->rx_cap ? ss->rx_cap : 1024;
        char *p;
        while (cap < ss->rx_len + len)
            cap *= 2;
        p = realloc(ss->rx, cap);
        if (p == NULL) {
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
            return;
        }
        ss->rx = p;
        ss->rx_cap = cap;
    }
    memcpy(ss->rx + ss->rx_len, in, len);
    ss->rx_len += len;
    if (final) {
        wsp_handle_message(ss, ss->rx, ss->rx_len);
        ss->rx_len = 0;
        /* Keep small buffers; give back large ones. */
        if (ss->rx_cap > 16384) {
            free(ss->rx);
            ss->rx = NULL;
            ss->rx_cap = 0;
        }
    }
}

/*
 * Everything queued for ss in as few system calls as possible: one
 * sendmsg() gathers up to WSP_IOV_MAX queued frames (at most
 * WSP_COALESCE_BYTES, or one larger frame) straight from the shared
 * messages, with no copy.  On loopback a write costs several microseconds
 * whatever its size, and a copy into a staging buffer cost as much CPU as
 * the kernel's own copy, so this is the worker's hot path.
 *
 * The socket may take part of a write; head_off remembers how much of the
 * head frame is out, and nothing else (a ping, a close frame from lws) may
 * be written until that frame is complete, or the client would see a
 * frame cut in two.
 */
static int
wsp_send_queue(struct wsp_session *ss, int head_only)
{
    int fd = (int)lws_get_socket_fd(ss->wsi);

    for (int round = 0; ss->queue_len > 0 && round < WSP_WRITES_PER_ROUND; round++) {
        struct iovec iov[WSP_IOV_MAX];
        struct msghdr mh;
        size_t total = 0, n;
        uint32_t count = 0, delivered = 0;
        ssize_t w;

        while (count < ss->queue_len && count < WSP_IOV_MAX) {
            struct wsp_msg *m = ss->queue[(ss->queue_head + count) % ss->queue_cap];
            size_t off = count == 0 ? ss->head_off : 0;
            if (count > 0 && (head_only || total + m->frame_len > WSP_COALESCE_BYTES))
                break;
            iov[count].iov_base = m->buf + m->frame_off + off;
            iov[count].iov_len = m->frame_len - off;
            total += m->frame_len - off;
            count++;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = count;
        w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0; /* full: wait for POLLOUT */
            if (errno == EINTR)
                continue;
            return -1; /* broken: lws closes it */
        }
        n = (size_t)w;
        while (n > 0) {
            struct wsp_msg *m = ss->queue[ss->queue_head];
            size_t left = m->frame_len - ss->head_off;
            if (n < left) {
                ss->head_off += (uint32_t)n;
                break;
            }
            n -= left;
            ss->head_off = 0;
            wsp_queue_pop(ss);
            delivered++;
        }
        if (delivered > 0)
            STAT_ADD(total_messages, delivered);
        if (ss->queue_len == 0)
            ss->ended_slice = 0;
        if ((size_t)w < total || head_only)
            return 0; /* the socket took part: it is full */
    }
    return 0;
}

static int
wsp_writeable(struct wsp_session *ss)
{
    int closing_now;

    ss->await_pollout = 0;
    if (ss->broken)
        return -1; /* a direct write found the connection broken */

    if (ss->guard_code != 0 && ss->close_code == 0)
        wsp_schedule_close(ss, ss->guard_code, ss->guard_why);
    /* lws still holds bytes of its own (a handshake reply, a ping): they
     * go first, and lws calls back when they are out. */
    if (lws_partial_buffered(ss->wsi)) {
        lws_callback_on_writable(ss->wsi);
        return 0;
    }
    closing_now = ss->close_code != 0 && (!ss->close_flush || ss->queue_len == 0);
    if (ss->head_off > 0 || !closing_now) {
        /* A slow client being cut still gets the rest of a frame it has
         * half of, and nothing more. */
        if (wsp_send_queue(ss, closing_now) < 0)
            return -1;
    }
    if (ss->head_off == 0) {
        if (closing_now) {
            lws_close_reason(ss->wsi, (enum lws_close_status)ss->close_code,
                             (unsigned char *)ss->close_reason, strlen(ss->close_reason));
            return -1;
        }
        if (ss->ping_due) {
            /* A payload, because lws 4.1 does not pass an empty pong up; any
             * bytes from the client count as an answer anyway (see recv()). */
            unsigned char ping[LWS_PRE + 4];
            memcpy(ping + LWS_PRE, "wsb!", 4);
            ss->ping_due = 0;
            if (lws_write(ss->wsi, ping + LWS_PRE, 4, LWS_WRITE_PING) < 0)
                return -1;
        }
    }
    if (ss->queue_len > 0 || ss->close_code != 0 || ss->ping_due)
        lws_callback_on_writable(ss->wsi);
    ss->last_sent_ms = time_now_ms();
    return 0;
}

static void
wsp_new_client_id(char *out)
{
    unsigned char b[16];

    if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
        /* Never fails for 16 bytes once the pool is up; fall back to time. */
        uint64_t t = time_now_ms() ^ (uint64_t)(uintptr_t)out;
        memcpy(b, &t, 8);
        memcpy(b + 8, &t, 8);
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* ---- HTTP ------------------------------------------------------------------ */

/* Headers now, body at the next HTTP_WRITEABLE.  upgrade: the value of an
 * Upgrade header (426 must name the protocol), or NULL. */
static int
wsp_http_respond(struct lws *wsi, struct wsp_session *ss, int status, const char *type,
                 const char *body, size_t len, const char *upgrade)
{
    unsigned char hdr[LWS_PRE + 1024], *start = hdr + LWS_PRE, *p = start,
                                       *end = hdr + sizeof(hdr) - 1;

    ss->http_body = malloc(LWS_PRE + len + 1);
    if (ss->http_body == NULL)
        return -1;
    memcpy(ss->http_body + LWS_PRE, body, len);
    ss->http_len = len;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, type, len, &p, end) ||
        lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                     (const unsigned char *)"no-store", 8, &p, end) ||
        (upgrade != NULL && lws_add_http_header_by_name(wsi, (const unsigned char *)"upgrade:",
                                                        (const unsigned char *)upgrade,
                                                        (int)strlen(upgrade), &p, end)) ||
        lws_finalize_write_http_header(wsi, start, &p, end))
        return -1;
    lws_callback_on_writable(wsi);
    return 0;
}

static int
wsp_http(struct lws *wsi, struct wsp_session *ss, const char *path)
{
    struct metrics_buf body = {0};
    char accept[256] = "", query[256] = "";
    const char *type = "application/json";
    int status = 200, rc;

    memset(ss, 0, sizeof(*ss));
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0) {
        const char *msg = "{\"error\":\"method not allowed\"}";
        return wsp_http_respond(wsi, ss, 405, type, msg, strlen(msg), NULL);
    }
    if (lws_hdr_copy(wsi, accept, sizeof(accept), WSI_TOKEN_HTTP_ACCEPT) < 0)
        accept[0] = '\0';
    /* lws hands the URI args over one by one: join them back. */
    for (int i = 0; i < 8; i++) {
        char arg[128];
        size_t used = strlen(query);
        if (lws_hdr_copy_fragment(wsi, arg, sizeof(arg), WSI_TOKEN_HTTP_URI_ARGS, i) < 0)
            break;
        snprintf(query + used, sizeof(query) - used, "%s%s", used ? "&" : "", arg);
    }
    if (strcmp(path, "/health") == 0) {
        status = metrics_health(wsp_vh->shm, &body);
        rc = status < 0 ? -1 : 0;
    } else if (strcmp(path, "/metrics") == 0) {
        if (metrics_wants_prometheus(accept, query)) {
            type = "text/plain; version=0.0.4; charset=utf-8";
            rc = metrics_prometheus(wsp_vh->shm, &body);
        } else {
            rc = metrics_json(wsp_vh->shm, &body);
        }
    } else if (strcmp(path, "/ws") == 0) {
        const char *msg = "{\"error\":\"WebSocket upgrade required\"}";
        return wsp_http_respond(wsi, ss, 426, type, msg, strlen(msg), "websocket");
    } else {
        const char *msg = "{\"error\":\"not found\"}";
        return wsp_http_respond(wsi, ss, 404, type, msg, strlen(msg), NULL);
    }
    if (rc != 0) {
        metrics_buf_free(&body);
        return -1;
    }
    rc = wsp_http_respond(wsi, ss, status, type, body.data, body.len, NULL);
    metrics_buf_free(&body);
    return rc;
}

static int
wsp_http_writeable(struct lws *wsi, struct wsp_session *ss)
{
    int n;

    if (ss->http_body == NULL)
        return 0;
    n = lws_write(wsi, (unsigned char *)ss->http_body + LWS_PRE, ss->http_len,
                  LWS_WRITE_HTTP_FINAL);
    free(ss->http_body);
    ss->http_body = NULL;
    if (n < (int)ss->http_len)
        return -1;
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

/* ---- the frame guard ------------------------------------------------------ */

/*
 * lws 4.1.6 reads every socket with recv() and does not check that client
 * frames are masked (nor a few other RFC 6455 rules; see wsguard.h).  This
 * definition of recv() in the executable takes precedence over libc's for
 * libwebsockets.so too, so every byte a WebSocket client sends passes
 * through wsguard before lws parses it.  A violation schedules the close
 * with the right code; the bytes still go to lws, and wsp_receive ignores
 * whatever they decode to once a close is pending.  Other fds (HTTP before
 * the upgrade, Redis, eventfds) are passed through untouched.
 */
struct wsp_guard_slot {
    struct wsp_session *ss;
    struct wsguard g;
    int blocked;
};

static struct wsp_guard_slot *wsp_guard_slots;
static size_t wsp_guard_nslots;

static void
wsp_guard_attach(struct wsp_session *ss)
{
    int fd = lws_get_socket_fd(ss->wsi);

    if (fd < 0)
        return;
    if ((size_t)fd >= wsp_guard_nslots) {
        size_t n = wsp_guard_nslots ? wsp_guard_nslots : 1024;
        struct wsp_guard_slot *p;
        while (n <= (size_t)fd)
            n *= 2;
        p = realloc(wsp_guard_slots, n * sizeof(*p));
        if (p == NULL)
            return; /* unguarded, not broken: lws still parses the frames */
        memset(p + wsp_guard_nslots, 0, (n - wsp_guard_nslots) * sizeof(*p));
        wsp_guard_slots = p;
        wsp_guard_nslots = n;
    }
    wsp_guard_slots[fd].ss = ss;
    wsp_guard_slots[fd].blocked = 0;
    wsguard_init(&wsp_guard_slots[fd].g);
}

static void
wsp_guard_detach(struct wsp_session *ss)
{
    int fd = lws_get_socket_fd(ss->wsi);

    if (fd >= 0 && (size_t)fd < wsp_guard_nslots && wsp_guard_slots[fd].ss == ss)
        wsp_guard_slots[fd].ss = NULL;
}

ssize_t recv(int fd, void *buf, size_t len, int flags);

ssize_t
recv(int fd, void *buf, size_t len, int flags)
{
    ssize_t n = syscall(SYS_recvfrom, fd, buf, len, flags, NULL, NULL);
    struct wsp_guard_slot *slot;
    const char *why = NULL;
    size_t frame_start;
    int code;

    if (n <= 0 || (flags & MSG_PEEK) || fd < 0 || (size_t)fd >= wsp_guard_nslots)
        return n;
    slot = &wsp_guard_slots[fd];
    if (slot->ss == NULL)
        return n;
    /* The peer is alive: no ping needed, an outstanding one is answered. */
    slot->ss->last_rx_ms = time_mono_ms();
    slot->ss->ping_sent_ms = 0;
    if (slot->blocked) {
        /* Closing for a framing error: what follows is discarded unread, so
         * lws cannot act on it (and hang up before our close frame). */
        errno = EAGAIN;
        return -1;
    }
    code =
        wsguard_feed(&slot->g, buf, (size_t)n, wsp_vh->conf->max_message_size, &why, &frame_start);
    if (code == 0)
        return n;
    STAT_ADD(client_errors, 1);
    /* lws has yet to parse the good frames we return: close only once it
     * has, at the next writeable (replies to them go out first). */
    slot->ss->guard_code = code;
    slot->ss->guard_why = why;
    lws_callback_on_writable(slot->ss->wsi);
    slot->blocked = 1;
    if (frame_start == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)frame_start; /* the frames before the offending one are fine */
}

/* ---- the callback --------------------------------------------------------- */

static int
wsp_upgrade_allowed(struct lws *wsi)
{
    char uri[64];

    if (wsp_vh->stopping)
        return 0;
    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return 0;
    return strcmp(uri, "/ws") == 0;
}

/* 1 if ALLOWED_ORIGINS is empty or lists the request's Origin (compared
 * without case; browsers send "scheme://host[:port]"). */
static int
wsp_origin_allowed(struct lws *wsi)
{
    const char *list = wsp_vh->conf->allowed_origins;
    char origin[256];

    if (list[0] == '\0')
        return 1;
    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return 0;
    while (*list != '\0') {
        size_t n = strcspn(list, ",");
        const char *item = list;
        size_t len = n;
        while (len > 0 && *item == ' ') {
            item++;
            len--;
        }
        while (len > 0 && item[len - 1] == ' ')
            len--;
        if (len == strlen(origin) && strncasecmp(item, origin, len) == 0)
            return 1;
        list += n;
        if (*list == ',')
            list++;
    }
    return 0;
}

/* The peer's address as raw bytes (IPv4-mapped IPv6 folded to IPv4). */
static struct shm_ip_key
wsp_peer_key(struct lws *wsi)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int fd = lws_get_socket_fd(wsi);

    memset(&ss, 0, sizeof(ss));
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &len) != 0)
        return shm_ip_key("", 0);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        return shm_ip_key(&in->sin_addr, 4);
    }
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return shm_ip_key(&in6->sin6_addr.s6_addr[12], 4);
        return shm_ip_key(&in6->sin6_addr, 16);
    }
    return shm_ip_key("", 0);
}

/*
 * A client is counted (active_clients, and its address's table) from the
 * moment its upgrade is let through, not at ESTABLISHED: lws sends the 101
 * before that callback, so a client could open its next connection, on
 * another worker, before being counted and slip past the limits.  At the
 * upgrade lws has no session memory for the connection yet, so the
 * reservation rides in the wsi's opaque pointer (the address's two buckets
 * and a set bit) until ESTABLISHED takes it over, or WSI_DESTROY releases it
 * for an upgrade that never completed.
 */
#define WSP_RESERVED_BIT (1ULL << 40)

static void
wsp_reserve(struct lws *wsi)
{
    struct shm_ip_key key = wsp_peer_key(wsi);

    shm_ip_add(wsp_vh->shm, wsp_vh->worker, key, +1);
    STAT_ADD(active_clients, 1);
    lws_set_opaque_user_data(
        wsi, (void *)(uintptr_t)(WSP_RESERVED_BIT | ((uint64_t)key.b1 << 16) | key.b2));
}

/* Take over the reservation of wsi, if it has one: 1 and *key set. */
static int
wsp_take_reservation(struct lws *wsi, struct shm_ip_key *key)
{
    uint64_t v = (uint64_t)(uintptr_t)lws_get_opaque_user_data(wsi);

    if (!(v & WSP_RESERVED_BIT))
        return 0;
    key->b1 = (uint16_t)(v >> 16);
    key->b2 = (uint16_t)v;
    lws_set_opaque_user_data(wsi, NULL);
    return 1;
}

static void
wsp_unreserve(struct shm_ip_key key)
{
    shm_ip_add(wsp_vh->shm, wsp_vh->worker, key, -1);
    STAT_SUB(active_clients, 1);
}

/*
 * Refuse an upgrade with an HTTP status, then hang up.  The response is
 * written straight to the fresh socket: at this point lws has sent nothing,
 * and lws_return_http_status would answer an upgrade request as HTTP/1.0,
 * which some WebSocket clients refuse to parse.
 */
static int
wsp_refuse(struct lws *wsi, unsigned int status, const char *reason, const char *why)
{
    char resp[512];
    int body_len = (int)strlen(why) + 12;
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\n"
                     "content-length: %d\r\nconnection: close\r\n\r\n{\"error\":\"%s\"}",
                     status, reason, body_len, why);

    LOG_DEBUG("upgrade refused: %u %s", status, why);
    if (n > 0 && (size_t)n < sizeof(resp) &&
        send(lws_get_socket_fd(wsi), resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        LOG_DEBUG("send(refusal) failed: %s", strerror(errno));
    return -1;
}

int
wsp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct wsp_session *ss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return wsp_http(wsi, ss, in ? (const char *)in : "/");

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return wsp_http_writeable(wsi, ss);

    case LWS_CALLBACK_CLOSED_HTTP:
        if (ss != NULL && !ss->is_ws) {
            free(ss->http_body);
            ss->http_body = NULL;
        }
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        /* Refuse with a real HTTP status rather than a hang-up. */
        struct shm_totals totals;
        if (wsp_vh->stopping)
            return wsp_refuse(wsi, 503, "Service Unavailable", "shutting down");
        if (!wsp_upgrade_allowed(wsi))
            return wsp_refuse(wsi, 404, "Not Found", "the WebSocket endpoint is /ws");
        if (!wsp_origin_allowed(wsi))
            return wsp_refuse(wsi, 403, "Forbidden", "origin not allowed");
        shm_totals(wsp_vh->shm, &totals);
        if (totals.active_clients >= wsp_vh->conf->max_clients)
            return wsp_refuse(wsi, 503, "Service Unavailable", "too many clients");
        if (shm_ip_count(wsp_vh->shm, wsp_peer_key(wsi)) >= wsp_vh->conf->max_clients_per_ip)
            return wsp_refuse(wsi, 429, "Too Many Requests",
                              "too many connections from this address");
        /* Counted from now on: see wsp_reserve. */
        wsp_reserve(wsi);
        return 0;
    }

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        /* Non-zero refuses the upgrade. */
        return wsp_upgrade_allowed(wsi) ? 0 : 1;

    case LWS_CALLBACK_ESTABLISHED:
        memset(ss, 0, sizeof(*ss));
        if (!wsp_take_reservation(wsi, &ss->ip_key)) {
            wsp_reserve(wsi); /* not through CONFIRM_UPGRADE: count it here */
            wsp_take_reservation(wsi, &ss->ip_key);
        }
        ss->reserved = 1;
        ss->wsi = wsi;
        ss->is_ws = 1;
        ss->connected_ms = time_now_ms();
        ss->last_rx_ms = time_mono_ms();
        wsp_new_client_id(ss->client_id);
        ss->next = wsp_vh->sessions;
        if (ss->next)
            ss->next->prev = ss;
        wsp_vh->sessions = ss;
        wsp_vh->nsessions++;
        wsp_guard_attach(ss);
        STAT_ADD(total_connections, 1);
        LOG_DEBUG("client %s connected", ss->client_id);
        break;

    case LWS_CALLBACK_WSI_DESTROY: {
        struct shm_ip_key key;
        if (wsp_take_reservation(wsi, &key))
            wsp_unreserve(key); /* let through, never established */
        break;
    }

    case LWS_CALLBACK_CLOSED:
        if (ss == NULL || !ss->is_ws)
            break;
        wsp_guard_detach(ss);
        sub_index_leave(wsp_vh->index, &ss->member);
        if (ss->dirty) { /* not expected: batches do not reach lws */
            struct wsp_session **pp = &wsp_vh->dirty;
            while (*pp != NULL && *pp != ss)
                pp = &(*pp)->dirty_next;
            if (*pp == ss)
                *pp = ss->dirty_next;
            ss->dirty = 0;
        }
        wsp_queue_clear(ss);
        free(ss->rx);
        ss->rx = NULL;
        if (ss->prev)
            ss->prev->next = ss->next;
        else
            wsp_vh->sessions = ss->next;
        if (ss->next)
            ss->next->prev = ss->prev;
        ss->is_ws = 0;
        if (ss->reserved)
            wsp_unreserve(ss->ip_key);
        ss->reserved = 0;
        wsp_vh->nsessions--;
        LOG_DEBUG("client %s disconnected", ss->client_id);
        break;

    case LWS_CALLBACK_RECEIVE:
        ss->last_rx_ms = time_mono_ms();
        ss->ping_sent_ms = 0;
        wsp_receive(ss, in, len);
        break;

    case LWS_CALLBACK_RECEIVE_PONG:
        ss->last_rx_ms = time_mono_ms();
        ss->ping_sent_ms = 0;
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return wsp_writeable(ss);

    default:
        break;
    }
    return 0;
}
