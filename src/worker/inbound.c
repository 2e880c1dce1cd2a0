#include "inbound.h"
#include "admit.h"
#include "auth.h"
#include "cmsg.h"
#include "outbound.h"
#include "../common/timeutil.h"
#include "../common/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A reassembly buffer larger than this is given back after its message. */
#define INBOUND_KEEP_RX_BYTES 16384

static void
inbound_heartbeat(struct wsp_vhost *vh, struct wsp_session *ss)
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
    cJSON_AddNumberToObject(p, "buffer_size", vh->conf->client_buffer);
    cJSON_AddNumberToObject(
        p, "buffer_utilization",
        ss->q.len >= vh->conf->client_buffer ? 100.0 : 100.0 * ss->q.len / vh->conf->client_buffer);
    cJSON_AddBoolToObject(p, "conflated", ss->conflating);
    cJSON_AddNumberToObject(p, "queue_bytes", (double)(ss->q.bytes + ss->held.bytes));
    outbound_send_message(vh, ss, "heartbeat", p);
}

/* The values a filter holds (lists are free of duplicates): what the index
 * files, and what MAX_FILTER_VALUES_PER_IP counts. */
static uint32_t
inbound_filter_values(const struct sub_filter *f)
{
    uint32_t n = 0;

    for (int d = 0; d < SUB_NDIMS; d++)
        n += f->dims[d].n;
    return n;
}

/* "conflate_ms": a number of ms from 0 (off, the default) to
 * INBOUND_CONFLATE_MS_MAX.  0, or -1 with why. */
#define INBOUND_CONFLATE_MS_MAX 60000
static int
inbound_conflate_ms(const cJSON *payload, uint32_t *ms, char *why, size_t whylen)
{
    const cJSON *v =
        payload != NULL ? cJSON_GetObjectItemCaseSensitive(payload, "conflate_ms") : NULL;

    *ms = 0;
    if (v == NULL || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > INBOUND_CONFLATE_MS_MAX ||
        v->valuedouble != (double)(uint32_t)v->valuedouble) {
        snprintf(why, whylen, "conflate_ms must be a whole number of ms from 0 to %d",
                 INBOUND_CONFLATE_MS_MAX);
        return -1;
    }
    *ms = (uint32_t)v->valuedouble;
    return 0;
}

static void
inbound_subscribe(struct wsp_vhost *vh, struct wsp_session *ss, const cJSON *payload)
{
    struct sub_filter filter;
    struct feed_request req;
    cJSON *ack;
    uint32_t n, conflate_ms;
    char why[256];

    if (inbound_conflate_ms(payload, &conflate_ms, why, sizeof(why)) != 0) {
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_FILTER, why);
        return;
    }
    if (feed_request_parse(payload, &req, why, sizeof(why)) != 0) {
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_FILTER, why);
        return;
    }
    if (sub_filter_parse(payload, &vh->limits, &filter, why, sizeof(why)) != 0) {
        feed_request_free(&req);
        /* The previous filter stays in force. */
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_FILTER, why);
        return;
    }
    /* What it may see: the filter in force is the subscription narrowed to
     * its entitlements (the ack shows it). */
    if (auth_restrict(ss->claims, &filter, why, sizeof(why)) != 0) {
        feed_request_free(&req);
        sub_filter_free(&filter);
        outbound_send_error(vh, ss, "forbidden", why);
        return;
    }
    /* Each value costs memory and index work in every worker its clients
     * are on: an address gets MAX_FILTER_VALUES_PER_IP in all, however many
     * connections it spreads them over.  Checked and counted before the
     * swap, so a refusal leaves the previous filter in force. */
    n = inbound_filter_values(&filter);
    if (!admit_filter_values_fit(vh, ss, n)) {
        feed_request_free(&req);
        sub_filter_free(&filter);
        snprintf(why, sizeof(why),
                 "the clients of this address would hold more than %u filter values together",
                 vh->conf->max_filter_values_per_ip);
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_FILTER, why);
        return;
    }
    if (admit_hold_filter_values(vh, ss, n) != 0) {
        feed_request_free(&req);
        sub_filter_free(&filter);
        outbound_send_error(vh, ss, "internal_error", "address table full");
        return;
    }
    feed_stop(vh, ss);
    /* A new board: what was held for the old filter is not its business. */
    outbound_drop_held(ss);
    ss->conflate_ms = conflate_ms;
    sub_index_leave(vh->index, &ss->member);
    if (sub_index_join(vh->index, &ss->member, &filter) != 0) {
        feed_request_free(&req);
        (void)admit_hold_filter_values(vh, ss, 0); /* giving back never fails */
        outbound_send_error(vh, ss, "internal_error", "out of memory");
        return;
    }
    cJSON_Delete(ss->requested);
    ss->requested = payload != NULL ? cJSON_Duplicate(payload, 1) : NULL;
    /* The ack first, then the snapshot or the missed entries (feed_service). */
    ack = sub_filter_to_json(sub_member_filter(&ss->member));
    /* Echoed when asked for (the ack of a client that never heard of it
     * stays as it was). */
    if (ack != NULL && payload != NULL && cJSON_GetObjectItemCaseSensitive(payload, "conflate_ms"))
        cJSON_AddNumberToObject(ack, "conflate_ms", conflate_ms);
    if (feed_start(vh, ss, &req, ack) == 0)
        outbound_send_message(vh, ss, "subscribed", ack);
    feed_request_free(&req);
    vh->kick(vh);
}

void
inbound_reapply_filter(struct wsp_vhost *vh, struct wsp_session *ss)
{
    struct sub_filter filter;
    char why[256];

    if (sub_member_filter(&ss->member) == NULL || ss->requested == NULL)
        return;
    if (sub_filter_parse(ss->requested, &vh->limits, &filter, why, sizeof(why)) != 0)
        return; /* it parsed when it came */
    if (auth_restrict(ss->claims, &filter, why, sizeof(why)) != 0) {
        sub_filter_free(&filter);
        feed_stop(vh, ss);
        sub_index_leave(vh->index, &ss->member);
        outbound_send_error(vh, ss, "forbidden", why);
        return;
    }
    /* Same values held or fewer (a narrowing): the address's count only
     * goes down, which never fails. */
    sub_index_leave(vh->index, &ss->member);
    if (sub_index_join(vh->index, &ss->member, &filter) != 0)
        outbound_send_error(vh, ss, "internal_error", "out of memory");
}

static void
inbound_message(struct wsp_vhost *vh, struct wsp_session *ss, const char *text, size_t len)
{
    const struct conf *c = vh->conf;
    struct cmsg msg;
    const char *code;
    char why[256];

    ss->messages_received++;
    /* RFC 6455 8.1: a text message that is not UTF-8 fails the connection. */
    if (!utf8_valid(text, len)) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text message is not UTF-8", 1);
        return;
    }
    if (!tokenbucket_take(&ss->rate, time_mono_ms(), c->rate_limit, c->rate_burst)) {
        if (++ss->rate_rejected >= c->rate_burst) {
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION, "rate limit exceeded", 1);
            return;
        }
        outbound_send_error(vh, ss, "rate_limited", "too many messages; slow down");
        return;
    }
    ss->rate_rejected = 0;
    if (cmsg_parse(text, len, &msg, &code, why, sizeof(why)) != 0) {
        outbound_send_error(vh, ss, code, why);
        return;
    }
    /* AUTH=required: a client that has not authenticated may only do so. */
    if (auth_enabled(vh) && ss->claims == NULL && msg.type != CMSG_AUTH) {
        outbound_send_error(vh, ss, "unauthorized", "authenticate first: {\"type\":\"auth\"}");
        wsp_schedule_close(ss, AUTH_CLOSE_UNAUTHORIZED, "unauthorized", 1);
        cmsg_free(&msg);
        return;
    }
    switch (msg.type) {
    case CMSG_AUTH:
        auth_message(vh, ss, msg.payload, 0);
        break;
    case CMSG_REFRESH:
        auth_message(vh, ss, msg.payload, 1);
        break;
    case CMSG_SUBSCRIBE:
        inbound_subscribe(vh, ss, msg.payload);
        break;
    case CMSG_UNSUBSCRIBE:
        feed_stop(vh, ss);
        outbound_drop_held(ss);
        sub_index_leave(vh->index, &ss->member);
        (void)admit_hold_filter_values(vh, ss, 0); /* giving back never fails */
        outbound_send_message(vh, ss, "unsubscribed", NULL);
        break;
    case CMSG_HEARTBEAT:
        inbound_heartbeat(vh, ss);
        break;
    }
    cmsg_free(&msg);
}

void
inbound_receive(struct wsp_vhost *vh, struct wsp_session *ss, const char *in, size_t len)
{
    int final = lws_is_final_fragment(ss->wsi) && lws_remaining_packet_payload(ss->wsi) == 0;
    size_t limit = vh->conf->max_message_size;

    if (ss->close_code != 0)
        return;
    if (lws_frame_is_binary(ss->wsi)) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
                           "binary messages are not supported", 1);
        return;
    }
    if (ss->rx_len + len > limit) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, "message too large", 1);
        return;
    }
    if (final && ss->rx_len == 0) {
        inbound_message(vh, ss, in, len); /* the common case: no copy */
        return;
    }
    if (ss->rx_len + len > ss->rx_cap) {
        size_t cap = ss->rx_cap ? ss->rx_cap : 1024;
        char *p;
        while (cap < ss->rx_len + len)
            cap *= 2;
        p = realloc(ss->rx, cap);
        if (p == NULL) {
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
            return;
        }
        ss->rx = p;
        ss->rx_cap = cap;
    }
    memcpy(ss->rx + ss->rx_len, in, len);
    ss->rx_len += len;
    if (final) {
        inbound_message(vh, ss, ss->rx, ss->rx_len);
        ss->rx_len = 0;
        if (ss->rx_cap > INBOUND_KEEP_RX_BYTES)
            inbound_release(ss);
    }
}

void
inbound_release(struct wsp_session *ss)
{
    free(ss->rx);
    ss->rx = NULL;
    ss->rx_len = 0;
    ss->rx_cap = 0;
}
