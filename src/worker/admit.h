/*
 * admit: whether a WebSocket upgrade is let through, and counting the
 * clients that are.
 *
 * An upgrade is refused with a real HTTP status (not a hang-up) when the
 * worker is stopping (503), the path is not /ws (404), the Origin is not in
 * ALLOWED_ORIGINS (403), the instance has MAX_CLIENTS (503) or the client's
 * address has MAX_CLIENTS_PER_IP (429) across all workers.
 *
 * A client is counted (active_clients, and its address in this worker's
 * table in shared memory) from the moment its upgrade is let through, not
 * at ESTABLISHED: lws sends the 101 before that callback, so a client could
 * open its next connection, on another worker, before being counted and
 * slip past the limits.  The count is a reservation that ESTABLISHED takes
 * over (admit_take) or WSI_DESTROY releases for an upgrade that never
 * completed (admit_abandon).
 *
 * Worker role; single-threaded.
 */
#ifndef WSB_ADMIT_H
#define WSB_ADMIT_H

#include "wsp.h"

#include <stddef.h>

/* lws's HTTP_CONFIRM_UPGRADE: 0 to let it through (the client is then
 * counted), or -1 after writing the refusal (lws then hangs up). */
int admit_upgrade(struct wsp_vhost *vh, struct lws *wsi);

/* lws's FILTER_PROTOCOL_CONNECTION: non-zero refuses (not /ws, or stopping). */
int admit_filter(struct wsp_vhost *vh, struct lws *wsi);

/* ESTABLISHED: move wsi's reservation into ss (ss->ip_key, ss->reserved).
 * A connection that did not pass admit_upgrade is counted here. */
void admit_take(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss);

/* WSI_DESTROY: release the reservation of an upgrade never established. */
void admit_abandon(struct wsp_vhost *vh, struct lws *wsi);

/* CLOSED: the session stops counting. */
void admit_release(struct wsp_vhost *vh, struct wsp_session *ss);

/* 1 if list (ALLOWED_ORIGINS: comma-separated, spaces around items ignored)
 * is empty or names origin, compared without case (browsers send
 * "scheme://host[:port]"); origin NULL (no header) matches only an empty
 * list.  Pure. */
int admit_origin_listed(const char *list, const char *origin);

#endif
