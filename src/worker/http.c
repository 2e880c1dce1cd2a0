#include "http.h"
#include "metrics.h"
#include "ready.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Headers now, body at the next HTTP_WRITEABLE.  upgrade: the value of an
 * Upgrade header (426 must name the protocol), or NULL. */
static int
http_respond(struct lws *wsi, struct wsp_session *ss, int status, const char *type,
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
http_respond_error(struct lws *wsi, struct wsp_session *ss, int status, const char *error,
                   const char *upgrade)
{
    char body[128];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", error);

    return http_respond(wsi, ss, status, "application/json", body, (size_t)n, upgrade);
}

int
http_request(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss, const char *path)
{
    struct metrics_buf body = {0};
    char accept[256] = "", format[64] = "";
    const char *type = "application/json";
    int status = 200, rc;
    /* METRICS_ADDR's listener: the metrics and health endpoints only. */
    int on_metrics = wsp_on_metrics(vh, wsi);

    memset(ss, 0, sizeof(*ss));
    if (lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) <= 0)
        return http_respond_error(wsi, ss, 405, "method not allowed", NULL);
    if (lws_hdr_copy(wsi, accept, sizeof(accept), WSI_TOKEN_HTTP_ACCEPT) < 0)
        accept[0] = '\0';
    /* The first format= argument, as "format=..." (what metrics expects). */
    if (lws_get_urlarg_by_name(wsi, "format=", format, sizeof(format)) == NULL)
        format[0] = '\0';
    if (strcmp(path, "/health") == 0) {
        status = metrics_health(vh->shm, &body);
        rc = status < 0 ? -1 : 0;
    } else if (strcmp(path, "/readyz") == 0) {
        status = ready_readyz(vh->shm, vh->conf, &body);
        rc = status < 0 ? -1 : 0;
    } else if (strcmp(path, "/metrics") == 0 && (on_metrics || vh->conf->metrics_public)) {
        if (metrics_wants_prometheus(accept, format)) {
            type = "text/plain; version=0.0.4; charset=utf-8";
            rc = metrics_prometheus(vh->shm, &body);
        } else {
            rc = metrics_json(vh->shm, &body);
        }
    } else if (strcmp(path, "/livez") == 0) {
        /* Liveness only: this process answers.  Whether it should get
         * traffic (Redis, a drain) is /health's and /readyz's question. */
        static const char alive[] = "{\"status\":\"alive\"}";
        return http_respond(wsi, ss, 200, "application/json", alive, sizeof(alive) - 1, NULL);
    } else if (strcmp(path, "/ws") == 0 && !on_metrics) {
        return http_respond_error(wsi, ss, 426, "WebSocket upgrade required", "websocket");
    } else {
        return http_respond_error(wsi, ss, 404, "not found", NULL);
    }
    if (rc != 0) {
        metrics_buf_free(&body);
        return -1;
    }
    rc = http_respond(wsi, ss, status, type, body.data, body.len, NULL);
    metrics_buf_free(&body);
    return rc;
}

int
http_writeable(struct lws *wsi, struct wsp_session *ss)
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

void
http_closed(struct wsp_session *ss)
{
    if (ss != NULL && !ss->is_ws) {
        free(ss->http_body);
        ss->http_body = NULL;
    }
}
