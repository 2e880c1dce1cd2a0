#include "admit.h"
#include "auth.h"
#include "../common/proxies.h"
#include "../common/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
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
admit_draining(struct wsp_vhost *vh)
{
    return vh->stopping || shm_draining(vh->shm, NULL, NULL);
}

/* A connection of METRICS_ADDR's listener: metrics and health, no clients. */
static int
admit_on_metrics(struct wsp_vhost *vh, struct lws *wsi)
{
    return wsp_on_metrics(vh, wsi);
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

/* What rides on a connection (lws's opaque user data of its wsi) until
 * WSI_DESTROY, or until ESTABLISHED if it only carried a reservation. */
struct admit_conn {
    struct addrtab_key key;          /* the peer's (or the PROXY header's) address: connections */
    struct addrtab_key client_key;   /* the client's: key, or from X-Forwarded-For (upgrade) */
    unsigned proxied : 1;            /* key came from a PROXY protocol header */
    unsigned connection : 1;         /* counted in ADDRTAB_CONNECTIONS */
    unsigned client : 1;             /* a client reservation ESTABLISHED has yet to take */
    unsigned sub_counted : 1;        /* claims->sub counted (max_connections) */
    struct authtoken_claims *claims; /* the upgrade's token, for ESTABLISHED to take */
};

/* Drop the claims an upgrade brought and never handed over. */
static void
admit_drop_claims(struct wsp_vhost *vh, struct admit_conn *ac)
{
    if (ac->claims != NULL && ac->sub_counted)
        auth_sub_release(vh, ac->claims->sub);
    auth_claims_free(ac->claims);
    ac->claims = NULL;
    ac->sub_counted = 0;
}

/* Refusals because the address table was full: rare by design, and each
 * one a client turned away, so worth a line; bounded, as a flood of new
 * addresses could trigger it. */
static struct log_ratelimit admit_full_rl = LOG_RATELIMIT_INIT(10000, 5);

static struct addrtab
admit_table(struct wsp_vhost *vh)
{
    return shm_addrtab(vh->shm, vh->worker);
}

static int
admit_table_add(struct wsp_vhost *vh, const struct addrtab_key *key, enum addrtab_counter c,
                int64_t delta)
{
    struct addrtab t = admit_table(vh);

    if (addrtab_add(&t, key, c, delta) == 0)
        return 0;
    if (log_ratelimit_allow(&admit_full_rl)) {
        char who[ADDRTAB_KEY_STRLEN];
        addrtab_key_format(key, vh->conf->ipv6_prefix, who, sizeof(who));
        LOG_WARN_KV(LOG_FIELDS(LOG_STR("client_ip", who)),
                    "address table full (%u entries, MAX_CONNECTIONS): refusing %s", t.nslots, who);
    }
    return -1;
}

/* The peer's address as a key: 0, or -1 if it has none (already gone). */
static int
admit_peer_key(struct wsp_vhost *vh, struct lws *wsi, struct addrtab_key *key)
{
    struct sockaddr_storage sa;
    socklen_t len = sizeof(sa);
    int fd = lws_get_socket_fd(wsi);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&sa, &len) != 0) {
        LOG_DEBUG("getpeername(fd %d) failed: %s", fd, strerror(errno));
        return -1;
    }
    return addrtab_key_from_sockaddr((struct sockaddr *)&sa, len, vh->conf->ipv6_prefix, key);
}

/* The connection's record: the one the accept path attached, else a new one
 * for the peer's address (attached by the caller).  NULL if the peer has no
 * address any more or memory ran out. */
static struct admit_conn *
admit_conn_of(struct wsp_vhost *vh, struct lws *wsi, int *fresh)
{
    struct admit_conn *ac = lws_get_opaque_user_data(wsi);

    *fresh = 0;
    if (ac != NULL)
        return ac;
    ac = calloc(1, sizeof(*ac));
    if (ac == NULL) {
        LOG_ERROR("out of memory admitting a connection");
        return NULL;
    }
    if (admit_peer_key(vh, wsi, &ac->key) != 0) {
        free(ac);
        return NULL;
    }
    *fresh = 1;
    return ac;
}

/* Detach and free ac once it holds nothing. */
static void
admit_conn_done(struct lws *wsi, struct admit_conn *ac)
{
    if (ac->connection || ac->client)
        return;
    lws_set_opaque_user_data(wsi, NULL);
    free(ac);
}

int
admit_connection(struct wsp_vhost *vh, const struct addrtab_key *key, int per_address,
                 const char **limit)
{
    struct shm_totals t;

    if (admit_table_add(vh, key, ADDRTAB_CONNECTIONS, +1) != 0) {
        *limit = "the address table";
        return -1;
    }
    WSP_STAT_ADD(vh, open_connections, 1);
    /* Counted first, checked after: of two workers admitting the same
     * address at the same instant, each sees the other's count (the fence
     * orders this worker's adds before its reads of the others' tables, as
     * theirs do), so the limit is never passed; at worst both refuse. */
    atomic_thread_fence(memory_order_seq_cst);
    shm_totals(vh->shm, &t);
    if (t.open_connections > vh->conf->max_connections)
        *limit = "MAX_CONNECTIONS";
    else if (per_address &&
             shm_addr_count(vh->shm, key, ADDRTAB_CONNECTIONS) > vh->conf->max_connections_per_ip)
        *limit = "MAX_CONNECTIONS_PER_IP";
    else
        return 0;
    admit_connection_undo(vh, key);
    return -1;
}

void
admit_connection_undo(struct wsp_vhost *vh, const struct addrtab_key *key)
{
    struct addrtab t = admit_table(vh);

    (void)addrtab_add(&t, key, ADDRTAB_CONNECTIONS, -1); /* a release never needs room */
    WSP_STAT_SUB(vh, open_connections, 1);
}

int
admit_conn_attach(struct wsp_vhost *vh, struct lws *wsi, const struct addrtab_key *key, int proxied)
{
    struct admit_conn *ac = calloc(1, sizeof(*ac));

    if (ac == NULL) {
        LOG_ERROR("out of memory admitting a connection");
        admit_connection_undo(vh, key);
        return -1;
    }
    ac->key = *key;
    ac->client_key = *key;
    ac->proxied = proxied != 0;
    ac->connection = 1;
    lws_set_opaque_user_data(wsi, ac);
    return 0;
}

/* Count ac's address as one more client, reserved on the connection. */
static int
admit_reserve(struct wsp_vhost *vh, struct lws *wsi, struct admit_conn *ac)
{
    if (admit_table_add(vh, &ac->client_key, ADDRTAB_CLIENTS, +1) != 0)
        return -1;
    ac->client = 1;
    WSP_STAT_ADD(vh, active_clients, 1);
    lws_set_opaque_user_data(wsi, ac);
    return 0;
}

static void
admit_unreserve(struct wsp_vhost *vh, const struct addrtab_key *key)
{
    struct addrtab t = admit_table(vh);

    (void)addrtab_add(&t, key, ADDRTAB_CLIENTS, -1); /* a release never needs room */
    WSP_STAT_SUB(vh, active_clients, 1);
}

/*
 * Refuse an upgrade with an HTTP status, then hang up.  The response is
 * written straight to the fresh socket: at this point lws has sent nothing,
 * and lws_return_http_status would answer an upgrade request as HTTP/1.0,
 * which some WebSocket clients refuse to parse.
 */
static int
admit_refuse(struct wsp_vhost *vh, struct lws *wsi, const struct addrtab_key *key,
             enum shm_refusal counter, unsigned int status, const char *reason, const char *why)
{
    char resp[512];
    int body_len = (int)strlen(why) + 12;
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 %u %s\r\ncontent-type: application/json\r\n"
                     "content-length: %d\r\nconnection: close\r\n\r\n{\"error\":\"%s\"}",
                     status, reason, body_len, why);

    WSP_STAT_ADD(vh, upgrades_refused[counter], 1);

    if (log_get_level() >= LOG_LEVEL_DEBUG) {
        char who[ADDRTAB_KEY_STRLEN] = "?";
        if (key != NULL)
            addrtab_key_format(key, vh->conf->ipv6_prefix, who, sizeof(who));
        LOG_DEBUG_KV(LOG_FIELDS(LOG_STR("client_ip", who), LOG_NUM("status", status)),
                     "upgrade from %s refused: %u %s", who, status, why);
    }
    if (n > 0 && (size_t)n < sizeof(resp) &&
        send(lws_get_socket_fd(wsi), resp, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        LOG_DEBUG("send(refusal) failed: %s", strerror(errno));
    return -1;
}

/* Undo admit_reserve in admit_upgrade: the client is refused after all. */
static void
admit_unreserve_conn(struct wsp_vhost *vh, struct lws *wsi, struct admit_conn *ac, int fresh)
{
    admit_unreserve(vh, &ac->client_key);
    ac->client = 0;
    if (fresh) {
        lws_set_opaque_user_data(wsi, NULL);
        free(ac);
    }
}

/* The client's address for the per-address limits: the peer's, unless the
 * peer is a trusted proxy (TRUSTED_PROXIES) that says whose request this is
 * in X-Forwarded-For or Forwarded (proxies.h); a PROXY protocol header,
 * read at accept, has said it already. */
static void
admit_client_key(struct wsp_vhost *vh, struct lws *wsi, struct admit_conn *ac)
{
    struct sockaddr_storage peer, client;
    socklen_t plen = sizeof(peer), clen = sizeof(client);
    char xff[2048], fwd[2048];
    int fd = lws_get_socket_fd(wsi), n;

    ac->client_key = ac->key;
    if (ac->proxied || vh->proxies.n == 0 || fd < 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
        !proxies_trusted(&vh->proxies, (struct sockaddr *)&peer, plen))
        return;
    n = lws_hdr_copy(wsi, xff, sizeof(xff), WSI_TOKEN_X_FORWARDED_FOR);
    if (n < 0)
        xff[0] = '\0';
    n = lws_hdr_custom_copy(wsi, fwd, sizeof(fwd), "forwarded:", 10);
    if (n < 0)
        fwd[0] = '\0';
    if (proxies_client_address(&vh->proxies, (struct sockaddr *)&peer, plen, xff[0] ? xff : NULL,
                               fwd[0] ? fwd : NULL, &client, &clen) == 0)
        (void)addrtab_key_from_sockaddr((struct sockaddr *)&client, clen, vh->conf->ipv6_prefix,
                                        &ac->client_key);
}

/* The token an upgrade carries, if any: a bad one is refused with 401 (no
 * upgrade), a good one rides on the connection to ESTABLISHED.  Without
 * one, the client authenticates by message (auth.h). */
static int
admit_token(struct wsp_vhost *vh, struct lws *wsi, struct admit_conn *ac, int fresh,
            const struct addrtab_key *key)
{
    char token[AUTHTOKEN_MAX_TOKEN + 1], why[128], body[160];
    size_t len;

    if (!auth_enabled(vh) || (len = auth_upgrade_token(wsi, token, sizeof(token))) == 0)
        return 0;
    ac->claims = auth_verify(vh, token, len, why, sizeof(why));
    if (ac->claims == NULL) {
        admit_unreserve_conn(vh, wsi, ac, fresh);
        snprintf(body, sizeof(body), "unauthorized: %s", why);
        return admit_refuse(vh, wsi, key, SHM_REFUSED_UNAUTHORIZED, 401, "Unauthorized", body);
    }
    if (auth_sub_acquire(vh, ac->claims->sub, ac->claims->max_connections) != 0) {
        admit_drop_claims(vh, ac);
        admit_unreserve_conn(vh, wsi, ac, fresh);
        return admit_refuse(vh, wsi, key, SHM_REFUSED_SUB_MAX_CONNECTIONS, 429, "Too Many Requests",
                            "max_connections of this sub reached");
    }
    ac->sub_counted = ac->claims->max_connections >= 0;
    return 0;
}

int
admit_upgrade(struct wsp_vhost *vh, struct lws *wsi)
{
    struct shm_totals totals;
    struct admit_conn *ac;
    struct addrtab_key key;
    int fresh;

    if (admit_on_metrics(vh, wsi))
        return admit_refuse(vh, wsi, NULL, SHM_REFUSED_NOT_FOUND, 404, "Not Found",
                            "no WebSocket on METRICS_ADDR");
    /* The shared flag as well as the worker's own: the supervisor sets it
     * before its SIGTERM reaches this worker. */
    if (admit_draining(vh))
        return admit_refuse(vh, wsi, NULL, SHM_REFUSED_STOPPING, 503, "Service Unavailable",
                            "shutting down");
    if (!admit_path_is_ws(wsi))
        return admit_refuse(vh, wsi, NULL, SHM_REFUSED_NOT_FOUND, 404, "Not Found",
                            "the WebSocket endpoint is /ws");
    if (!admit_origin_allowed(vh, wsi))
        return admit_refuse(vh, wsi, NULL, SHM_REFUSED_ORIGIN, 403, "Forbidden",
                            "origin not allowed");
    ac = admit_conn_of(vh, wsi, &fresh);
    if (ac == NULL)
        return -1;  /* logged; the peer is gone or memory is out: just hang up */
    if (ac->client) /* a second upgrade on one connection: lws never does this */
        return 0;
    admit_client_key(vh, wsi, ac);
    key = ac->client_key;
    if (admit_reserve(vh, wsi, ac) != 0) {
        if (fresh)
            free(ac);
        return admit_refuse(vh, wsi, &key, SHM_REFUSED_ADDRESS_TABLE, 503, "Service Unavailable",
                            "too many client addresses");
    }
    /* Counted first, checked after, as for connections (admit_connection):
     * upgrades racing on other workers cannot pass the limits together. */
    atomic_thread_fence(memory_order_seq_cst);
    shm_totals(vh->shm, &totals);
    if (totals.active_clients > vh->conf->max_clients) {
        admit_unreserve_conn(vh, wsi, ac, fresh);
        return admit_refuse(vh, wsi, NULL, SHM_REFUSED_MAX_CLIENTS, 503, "Service Unavailable",
                            "too many clients");
    }
    if (shm_addr_count(vh->shm, &key, ADDRTAB_CLIENTS) > vh->conf->max_clients_per_ip) {
        admit_unreserve_conn(vh, wsi, ac, fresh);
        return admit_refuse(vh, wsi, &key, SHM_REFUSED_MAX_CLIENTS_PER_IP, 429, "Too Many Requests",
                            "too many connections from this address");
    }
    return admit_token(vh, wsi, ac, fresh, &key);
}

int
admit_filter(struct wsp_vhost *vh, struct lws *wsi)
{
    return admit_on_metrics(vh, wsi) || admit_draining(vh) || !admit_path_is_ws(wsi);
}

void
admit_take(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss)
{
    struct admit_conn *ac;
    int fresh;

    ac = lws_get_opaque_user_data(wsi);
    if (ac == NULL || !ac->client) {
        /* Not through CONFIRM_UPGRADE (lws 4.1 always calls it for a
         * server upgrade): count the client here. */
        ac = admit_conn_of(vh, wsi, &fresh);
        if (ac == NULL || admit_reserve(vh, wsi, ac) != 0) {
            LOG_WARN("a client established without an upgrade check could not be counted");
            if (ac != NULL) {
                ss->addr = ac->client_key;
                if (fresh)
                    free(ac);
            }
            return;
        }
    }
    ss->addr = ac->client_key;
    ss->reserved = 1;
    ss->claims = ac->claims; /* auth_session_start takes it from here */
    ss->sub_counted = ac->sub_counted;
    ac->claims = NULL;
    ac->sub_counted = 0;
    ac->client = 0;
    admit_conn_done(wsi, ac);
}

void
admit_abandon(struct wsp_vhost *vh, struct lws *wsi)
{
    const struct lws_protocols *p = lws_get_protocol(wsi);
    struct admit_conn *ac;

    /* lws 4.1 also sends the WSI_DESTROY of the worker's raw descriptors
     * (listener, eventfd, signalfd) here, whose opaque data is the worker's
     * own, not a struct admit_conn. */
    if (p == NULL || p->callback != wsp_callback)
        return;
    ac = lws_get_opaque_user_data(wsi);
    if (ac == NULL)
        return;
    if (ac->client)
        admit_unreserve(vh, &ac->client_key);
    if (ac->connection)
        admit_connection_undo(vh, &ac->key);
    admit_drop_claims(vh, ac);
    ac->client = 0;
    ac->connection = 0;
    admit_conn_done(wsi, ac);
}

void
admit_release(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (ss->reserved)
        admit_unreserve(vh, &ss->addr);
    ss->reserved = 0;
    /* Never fails: giving values back needs no room. */
    (void)admit_hold_filter_values(vh, ss, 0);
}

int
admit_filter_values_fit(struct wsp_vhost *vh, const struct wsp_session *ss, uint32_t n)
{
    int64_t total;

    if (n <= ss->filter_values)
        return 1;
    /* The total includes what ss holds now (its own worker's table). */
    total = (int64_t)shm_addr_count(vh->shm, &ss->addr, ADDRTAB_FILTER_VALUES);
    return total - ss->filter_values + n <= (int64_t)vh->conf->max_filter_values_per_ip;
}

int
admit_hold_filter_values(struct wsp_vhost *vh, struct wsp_session *ss, uint32_t n)
{
    int64_t delta = (int64_t)n - (int64_t)ss->filter_values;

    if (delta != 0 && admit_table_add(vh, &ss->addr, ADDRTAB_FILTER_VALUES, delta) != 0)
        return -1;
    ss->filter_values = n;
    return 0;
}
