#include "admit.h"
#include "../common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int
admit_origin_listed(const char *list, const char *origin)
{
    size_t origin_len;

    if (list[0] == '\0')
        return 1;
    if (origin == NULL)
        return 0;
    origin_len = strlen(origin);
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
        if (len > 0 && len == origin_len && strncasecmp(item, origin, len) == 0)
            return 1;
        list += n;
        if (*list == ',')
            list++;
    }
    return 0;
}

static int
admit_path_is_ws(struct lws *wsi)
{
    char uri[64];

    if (lws_hdr_copy(wsi, uri, sizeof(uri), WSI_TOKEN_GET_URI) <= 0)
        return 0;
    return strcmp(uri, "/ws") == 0;
}

static int
admit_origin_allowed(struct wsp_vhost *vh, struct lws *wsi)
{
    char origin[256];

    if (lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) <= 0)
        return admit_origin_listed(vh->conf->allowed_origins, NULL);
    return admit_origin_listed(vh->conf->allowed_origins, origin);
}

/* The peer's address as raw bytes (IPv4-mapped IPv6 folded to IPv4). */
static struct shm_ip_key
admit_peer_key(struct lws *wsi)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int fd = lws_get_socket_fd(wsi);

    memset(&sa, 0, sizeof(sa));
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&sa, &len) != 0)
        return shm_ip_key("", 0);
    if (sa.ss_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&sa;
        return shm_ip_key(&in->sin_addr, 4);
    }
    if (sa.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return shm_ip_key(&in6->sin6_addr.s6_addr[12], 4);
        return shm_ip_key(&in6->sin6_addr, 16);
    }
    return shm_ip_key("", 0);
}

/*
 * At the upgrade lws has no session memory for the connection yet, so the
 * reservation rides in the wsi's opaque pointer (the address's two buckets
 * and a set bit) until ESTABLISHED takes it over.
 */
#define ADMIT_RESERVED_BIT (1ULL << 40)

static void
admit_reserve(struct wsp_vhost *vh, struct lws *wsi)
{
    struct shm_ip_key key = admit_peer_key(wsi);

    shm_ip_add(vh->shm, vh->worker, key, +1);
    WSP_STAT_ADD(vh, active_clients, 1);
    lws_set_opaque_user_data(
        wsi, (void *)(uintptr_t)(ADMIT_RESERVED_BIT | ((uint64_t)key.b1 << 16) | key.b2));
}

/* Take over the reservation of wsi, if it has one: 1 and *key set. */
static int
admit_take_reservation(struct lws *wsi, struct shm_ip_key *key)
{
    uint64_t v = (uint64_t)(uintptr_t)lws_get_opaque_user_data(wsi);

    if (!(v & ADMIT_RESERVED_BIT))
        return 0;
    key->b1 = (uint16_t)(v >> 16);
    key->b2 = (uint16_t)v;
    lws_set_opaque_user_data(wsi, NULL);
    return 1;
}

static void
admit_unreserve(struct wsp_vhost *vh, struct shm_ip_key key)
{
    shm_ip_add(vh->shm, vh->worker, key, -1);
    WSP_STAT_SUB(vh, active_clients, 1);
}

/*
 * Refuse an upgrade with an HTTP status, then hang up.  The response is
 * written straight to the fresh socket: at this point lws has sent nothing,
 * and lws_return_http_status would answer an upgrade request as HTTP/1.0,
 * which some WebSocket clients refuse to parse.
 */
static int
admit_refuse(struct lws *wsi, unsigned int status, const char *reason, const char *why)
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
admit_upgrade(struct wsp_vhost *vh, struct lws *wsi)
{
    struct shm_totals totals;

    if (vh->stopping)
        return admit_refuse(wsi, 503, "Service Unavailable", "shutting down");
    if (!admit_path_is_ws(wsi))
        return admit_refuse(wsi, 404, "Not Found", "the WebSocket endpoint is /ws");
    if (!admit_origin_allowed(vh, wsi))
        return admit_refuse(wsi, 403, "Forbidden", "origin not allowed");
    shm_totals(vh->shm, &totals);
    if (totals.active_clients >= vh->conf->max_clients)
        return admit_refuse(wsi, 503, "Service Unavailable", "too many clients");
    if (shm_ip_count(vh->shm, admit_peer_key(wsi)) >= vh->conf->max_clients_per_ip)
        return admit_refuse(wsi, 429, "Too Many Requests",
                            "too many connections from this address");
    admit_reserve(vh, wsi);
    return 0;
}

int
admit_filter(struct wsp_vhost *vh, struct lws *wsi)
{
    return vh->stopping || !admit_path_is_ws(wsi);
}

void
admit_take(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss)
{
    if (!admit_take_reservation(wsi, &ss->ip_key)) {
        admit_reserve(vh, wsi); /* not through CONFIRM_UPGRADE: count it here */
        admit_take_reservation(wsi, &ss->ip_key);
    }
    ss->reserved = 1;
}

void
admit_abandon(struct wsp_vhost *vh, struct lws *wsi)
{
    struct shm_ip_key key;

    if (admit_take_reservation(wsi, &key))
        admit_unreserve(vh, key);
}

void
admit_release(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (ss->reserved)
        admit_unreserve(vh, ss->ip_key);
    ss->reserved = 0;
}
