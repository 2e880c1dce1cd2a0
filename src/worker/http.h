/*
 * http: the plain HTTP side of a worker's port.
 *
 * GET /health and GET /metrics (JSON, or Prometheus text when asked for with
 * ?format=prometheus or an Accept header) are answered from shared memory by
 * any worker, for the whole instance; GET /livez is 200 {"status":"alive"}
 * whenever a worker answers at all (a container's liveness probe: it says
 * nothing of Redis or of a drain); GET /readyz is 200 or 503 (ready.h);
 * GET /ws without an upgrade gets 426, anything else 404, a method other
 * than GET 405.  On METRICS_ADDR's listener (wsp_on_metrics) only
 * /metrics and the health endpoints are served (/ws is 404 there); on
 * SERVER_ADDR /metrics is 404 with METRICS_PUBLIC off.  Every reply is
 * Cache-Control: no-store.  Headers go out at once, the body at the next
 * HTTP_WRITEABLE; the connection then waits for its next request (keep-alive).
 *
 * Worker role; single-threaded.  The reply in flight is held in the
 * connection's struct wsp_session (http_body, http_len).
 */
#ifndef WSB_HTTP_H
#define WSB_HTTP_H

#include "wsp.h"

/* lws's HTTP callback for path; 0, or -1 to hang up. */
int http_request(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss, const char *path);

/* lws's HTTP_WRITEABLE: the body.  0, or -1 to hang up. */
int http_writeable(struct lws *wsi, struct wsp_session *ss);

/* lws's CLOSED_HTTP: drop a reply never sent. */
void http_closed(struct wsp_session *ss);

#endif
