/*
 * admit: whether a WebSocket upgrade is let through, and counting the
 * clients that are.
 *
 * An upgrade is refused with a real HTTP status (not a hang-up) when the
 * instance is draining (503: the supervisor's shm drain flag, or this
 * worker's own stop), the path is not /ws (404), the Origin is not in
 * ALLOWED_ORIGINS (403), the instance has MAX_CLIENTS (503), the client's
 * address has MAX_CLIENTS_PER_IP (429) across all workers, or this worker's
 * address table has no room for a new address (503, counted and logged;
 * the table is sized so that this does not happen: addrtab.h).
 *
 * Addresses are counted exactly, per IPv4 address or IPv6 prefix of
 * IPV6_PREFIX bits, in this worker's table in shared memory (addrtab.h),
 * summed over all the workers' tables.  Three counts per address: its
 * WebSocket clients, its TCP connections (admit_conn_open, for the accept
 * path) and the filter values its clients hold (MAX_FILTER_VALUES_PER_IP).
 *
 * A client is counted (active_clients, and as a client of its address)
 * from the moment its upgrade is let through, not at ESTABLISHED: lws sends
 * the 101 before that callback, so a client could open its next connection,
 * on another worker, before being counted and slip past the limits.  The
 * count is a reservation that ESTABLISHED takes over (admit_take) or
 * WSI_DESTROY releases for an upgrade that never completed (admit_abandon).
 * Until then it rides on the connection (lws's opaque user data of the wsi:
 * a struct admit_conn, which also carries the connection's count).
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

/* lws's FILTER_PROTOCOL_CONNECTION: non-zero refuses (not /ws, or draining). */
int admit_filter(struct wsp_vhost *vh, struct lws *wsi);

/* ESTABLISHED: move wsi's reservation into ss (ss->addr, ss->reserved).
 * A connection that did not pass admit_upgrade is counted here. */
void admit_take(struct wsp_vhost *vh, struct lws *wsi, struct wsp_session *ss);

/* WSI_DESTROY: release what the connection still holds: the reservation of
 * an upgrade never established, its count as a connection. */
void admit_abandon(struct wsp_vhost *vh, struct lws *wsi);

/* The session stops counting, as a client and for its filter values (at
 * CLOSED, or as soon as its close is decided).  Calling it again does
 * nothing. */
void admit_release(struct wsp_vhost *vh, struct wsp_session *ss);

/* The accept path: count a new TCP connection from key (ADDRTAB_CONNECTIONS
 * and open_connections), then check MAX_CONNECTIONS and, if per_address
 * (not a trusted proxy's own address), MAX_CONNECTIONS_PER_IP.  0 if it fits (counted: attach it
 * with admit_conn_attach, or undo with admit_connection_undo), or -1 with *limit naming what it hit
 * (nothing counted): close it unread. */
int admit_connection(struct wsp_vhost *vh, const struct addrtab_key *key, int per_address,
                     const char **limit);
void admit_connection_undo(struct wsp_vhost *vh, const struct addrtab_key *key);

/* The connection counted by admit_connection is wsi: its count is released
 * at WSI_DESTROY (admit_abandon).  proxied: key came from a PROXY protocol
 * header (X-Forwarded-For is not looked at then).  0, or -1 on OOM (count
 * undone: close it). */
int admit_conn_attach(struct wsp_vhost *vh, struct lws *wsi, const struct addrtab_key *key,
                      int proxied);

/* Whether ss may hold n filter values in place of those it holds now:
 * always if n is no more, else if its address's clients (on every worker)
 * would hold no more than MAX_FILTER_VALUES_PER_IP together.  1 or 0. */
int admit_filter_values_fit(struct wsp_vhost *vh, const struct wsp_session *ss, uint32_t n);

/* ss now holds n filter values (0 once unsubscribed): its address's count
 * follows.  Returns 0, or -1 if that needed an entry the address table has
 * no room for (nothing changed). */
int admit_hold_filter_values(struct wsp_vhost *vh, struct wsp_session *ss, uint32_t n);

/* 1 if list (ALLOWED_ORIGINS: comma-separated, spaces around items ignored)
 * is empty or names origin, compared without case (browsers send
 * "scheme://host[:port]"); origin NULL (no header) matches only an empty
 * list.  Pure. */
int admit_origin_listed(const char *list, const char *origin);

#endif
