#include "wsp.h"
#include "admit.h"
#include "auth.h"
#include "http.h"
#include "inbound.h"
#include "outbound.h"
#include "rxguard.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <errno.h>
#include <linux/sockios.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>

static struct wsp_vhost *wsp_vh;
static unsigned wsp_sessions_ever;

void
wsp_bind(struct wsp_vhost *vh)
{
    wsp_vh = vh;
}

void
wsp_client_ip(const struct wsp_session *ss, char *buf, size_t size)
{
    addrtab_key_format(&ss->addr, wsp_vh->conf->ipv6_prefix, buf, size);
}

void
wsp_reset(struct wsp_session *ss)
{
    struct linger lg = {1, 0};
    int fd = lws_get_socket_fd(ss->wsi);

    if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) != 0)
        LOG_DEBUG("setsockopt(fd %d, SO_LINGER 0) failed: %s", fd, strerror(errno));
    /* lws treats a timeout as a violent death: no flush, no close
     * handshake, straight to close(), which the linger turns into a reset. */
    lws_set_timeout(ss->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static void
wsp_close_deadline(lws_sorted_usec_list_t *sul)
{
    struct wsp_session *ss = lws_container_of(sul, struct wsp_session, close_deadline);

    LOG_DEBUG("client %s did not finish closing within CLOSE_TIMEOUT; resetting", ss->client_id);
    wsp_reset(ss);
}

void
wsp_schedule_close(struct wsp_session *ss, int code, const char *reason, int flush)
{
    if (ss->close_code != 0)
        return;
    WSP_STAT_ADD(wsp_vh, closes[shm_close_slot(code)], 1);
    ss->close_code = code;
    ss->close_flush = flush;
    snprintf(ss->close_reason, sizeof(ss->close_reason), "%s", reason);
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char ip[ADDRTAB_KEY_STRLEN];
        wsp_client_ip(ss, ip, sizeof(ip));
        LOG_DEBUG_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_STR("client_ip", ip),
                                LOG_NUM("code", code)),
                     "client %s (%s): closing with %d (%s)", ss->client_id, ip, code, reason);
    }
    /* Not a client any more: it frees its place at once, whatever the peer
     * does with its socket from here on.  (It leaves the filter index when
     * its close frame is queued: this may run inside a match of the index,
     * which must not change under it; outbound_enqueue skips it meanwhile.) */
    admit_release(wsp_vh, ss);
    lws_sul_schedule(lws_get_context(ss->wsi), 0, &ss->close_deadline, wsp_close_deadline,
                     (lws_usec_t)wsp_vh->conf->close_timeout * LWS_US_PER_SEC);
    lws_callback_on_writable(ss->wsi);
}

void
wsp_peer_active(struct wsp_session *ss)
{
    ss->last_rx_ms = time_mono_ms();
    ss->ping_sent_ms = 0;
}

void
wsp_frame_violation(struct wsp_session *ss, int code, const char *why)
{
    WSP_STAT_ADD(wsp_vh, client_errors, 1);
    /* lws has yet to parse the good frames rxguard hands over: close only
     * once it has, at the next writeable (replies to them go out first). */
    ss->guard_code = code;
    ss->guard_why = why;
    lws_callback_on_writable(ss->wsi);
}

static void
wsp_check_liveness(struct wsp_session *ss, uint64_t now, uint64_t interval, uint64_t timeout)
{
    if (ss->ping_sent_ms != 0) {
        if (now - ss->ping_sent_ms >= timeout) {
            int unsent = 0;
            /* A slow reader's ping waits behind its data (ours, lws's, the
             * kernel's), and so does its pong: it is not dead, it is slow,
             * and the slow bounds judge it (SEND_TIMEOUT: its socket takes
             * nothing; CLIENT_MAX_LAG).  Only a peer with nothing waiting
             * for it that does not answer is dead. */
            if (ss->q.len > 0 || lws_partial_buffered(ss->wsi) ||
                (ioctl(lws_get_socket_fd(ss->wsi), SIOCOUTQ, &unsent) == 0 && unsent > 0)) {
                ss->ping_sent_ms = now;
                return;
            }
            /* A dead peer will not read a close frame: just hang up. */
            LOG_DEBUG("client %s did not answer a ping; dropping", ss->client_id);
            WSP_STAT_ADD(wsp_vh, ping_timeouts, 1);
            wsp_reset(ss);
        }
    } else if (interval > 0 && now - ss->last_rx_ms >= interval) {
        ss->ping_sent_ms = now;
        ss->ping_due = 1;
        lws_callback_on_writable(ss->wsi);
    }
}

/* Does data wait for ss (in its queue, in lws's buffer, or in the kernel's
 * send queue, not yet acknowledged by the peer), and has its socket taken
 * any of it lately?  The kernel's queue changing since the last sweep says
 * so: bytes written into it, or bytes the peer acknowledged.  A peer that
 * reads nothing leaves it full and still; an idle one leaves it empty. */
static void
wsp_check_progress(struct wsp_vhost *vh, struct wsp_session *ss, uint64_t now)
{
    int queued = 0;

    if (ioctl(lws_get_socket_fd(ss->wsi), SIOCOUTQ, &queued) != 0)
        queued = 0;
    if (queued != ss->outq_bytes ||
        (queued == 0 && ss->q.len == 0 && !lws_partial_buffered(ss->wsi))) {
        ss->outq_bytes = queued;
        ss->progress_ms = now;
        return;
    }
    if (now - ss->progress_ms >= (uint64_t)vh->conf->send_timeout * 1000) {
        char ip[ADDRTAB_KEY_STRLEN];

        WSP_STAT_ADD(vh, slow_disconnects, 1);
        WSP_STAT_ADD(vh, slow_send_timeout, 1);
        wsp_client_ip(ss, ip, sizeof(ip));
        LOG_INFO_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_STR("client_ip", ip),
                               LOG_NUM("code", LWS_CLOSE_STATUS_POLICY_VIOLATION)),
                    "client %s (%s) took nothing for %u s while data waited; disconnecting",
                    ss->client_id, ip, vh->conf->send_timeout);
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION, "client too slow: send timeout",
                           0);
    }
}

void
wsp_liveness_sweep(struct wsp_vhost *vh, unsigned part, unsigned nparts)
{
    uint64_t now = time_mono_ms();
    uint64_t interval = (uint64_t)vh->conf->ping_interval * 1000;
    uint64_t timeout = (uint64_t)vh->conf->ping_timeout * 1000;
    lws_start_foreach_dll(struct lws_dll2 *, d, lws_dll2_get_head(&vh->sessions))
    {
        struct wsp_session *ss = lws_container_of(d, struct wsp_session, list);
        /* A closing session has its own deadline (wsp_schedule_close). */
        if (ss->sweep_slot % nparts == part && ss->close_code == 0) {
            wsp_check_liveness(ss, now, interval, timeout);
            if (ss->close_code == 0 && !outbound_check_lag(vh, ss, now))
                wsp_check_progress(vh, ss, now);
        }
    }
    lws_end_foreach_dll(d);
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

static void
wsp_established(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss)
{
    memset(ss, 0, sizeof(*ss));
    admit_take(vh, wsi, ss);
    ss->wsi = wsi;
    ss->is_ws = 1;
    ss->connected_ms = time_now_ms();
    ss->last_rx_ms = time_mono_ms();
    ss->progress_ms = ss->last_rx_ms;
    ss->sweep_slot = wsp_sessions_ever++; /* spreads them over the sweep's parts */
    wsp_new_client_id(ss->client_id);
    lws_dll2_add_head(&ss->list, &vh->sessions);
    rxguard_established(lws_get_socket_fd(wsi), ss);
    auth_session_start(vh, ss);
    WSP_STAT_ADD(vh, total_connections, 1);
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char ip[ADDRTAB_KEY_STRLEN];
        wsp_client_ip(ss, ip, sizeof(ip));
        LOG_DEBUG_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_STR("client_ip", ip)),
                     "client %s (%s) connected", ss->client_id, ip);
    }
}

static void
wsp_closed(struct wsp_vhost *vh, struct wsp_session *ss)
{
    lws_sul_cancel(&ss->close_deadline);
    rxguard_detach(lws_get_socket_fd(ss->wsi), ss);
    feed_stop(vh, ss);
    sub_index_leave(vh->index, &ss->member);
    auth_session_end(vh, ss);
    cJSON_Delete(ss->requested);
    ss->requested = NULL;
    outbound_release(vh, ss);
    inbound_release(ss);
    lws_dll2_remove(&ss->list);
    ss->is_ws = 0;
    admit_release(vh, ss);
    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char ip[ADDRTAB_KEY_STRLEN];
        wsp_client_ip(ss, ip, sizeof(ip));
        LOG_DEBUG_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_STR("client_ip", ip),
                                LOG_NUM("code", ss->close_code)),
                     "client %s (%s) disconnected%s", ss->client_id, ip,
                     ss->close_code != 0 ? "" : " (closed by the client or the network)");
    }
}

int
wsp_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
    struct wsp_vhost *vh = wsp_vh;
    struct wsp_session *ss = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return http_request(vh, wsi, ss, in ? (const char *)in : "/");

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return http_writeable(wsi, ss);

    case LWS_CALLBACK_CLOSED_HTTP:
        http_closed(ss);
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return admit_upgrade(vh, wsi);

    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
        return admit_filter(vh, wsi);

    case LWS_CALLBACK_ESTABLISHED:
        wsp_established(vh, wsi, ss);
        break;

    case LWS_CALLBACK_WSI_DESTROY:
        if (wsp_on_metrics(vh, wsi)) {
            vh->metrics_conns--;
            break;
        }
        admit_abandon(vh, wsi); /* let through, never established */
        break;

    case LWS_CALLBACK_CLOSED:
        if (ss != NULL && ss->is_ws)
            wsp_closed(vh, ss);
        break;

    case LWS_CALLBACK_RECEIVE:
        wsp_peer_active(ss);
        inbound_receive(vh, ss, in, len);
        break;

    case LWS_CALLBACK_RECEIVE_PONG:
        wsp_peer_active(ss);
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (outbound_writeable(vh, ss) != 0)
            return -1;
        /* Its queue drained: the rest of its snapshot or catch-up can go. */
        if (ss->feed.phase != FEED_LIVE)
            vh->kick(vh);
        return 0;

    default:
        break;
    }
    return 0;
}
