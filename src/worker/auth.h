/*
 * auth: who a client is and what it may see (README "Authentication").
 *
 * With AUTH=required or optional a client presents a JWT (authtoken.h): in
 * its upgrade (the `token` query parameter, or `Authorization: Bearer`),
 * where a bad one is refused with 401, or in a first message
 * {"type":"auth"} within AUTH_TIMEOUT.  Its claims are its entitlements:
 * the filter it subscribes with is narrowed to them, opportunities and the
 * full fields are sent only if they allow it, and at most max_connections
 * sessions of one `sub` exist across the instance.  At `exp` the session is
 * closed with 4001 unless a {"type":"refresh"} came first.  AUTH=optional
 * gives a client without a token the ANONYMOUS entitlements.
 *
 * The key files are read at start and again on SIGHUP (auth_reload).
 * Worker role; single-threaded.
 */
#ifndef WSB_AUTH_H
#define WSB_AUTH_H

#include "authtoken.h"
#include "sub_filter.h"

#include <cjson/cJSON.h>
#include <libwebsockets.h>
#include <stddef.h>

struct wsp_vhost;
struct wsp_session;

/* Close code for a client without a valid token (in the private range). */
#define AUTH_CLOSE_UNAUTHORIZED 4001

/* Whether c's AUTH key can be loaded (`-t` and start): 0, or -1 with
 * "KEY: why" in err. */
struct conf;
int auth_check_config(const struct conf *c, char *err, size_t errlen);

/* Load the key (and ANONYMOUS).  0, or -1 logged (the settings are wrong:
 * the worker cannot serve). */
int auth_init(struct wsp_vhost *vh);
void auth_free(struct wsp_vhost *vh);

/* SIGHUP: read the key files again; on failure the old key stays (logged). */
void auth_reload(struct wsp_vhost *vh);

/* Whether clients must (or may) authenticate. */
int auth_enabled(const struct wsp_vhost *vh);

/* The token an upgrade carries (query `token`, else Authorization: Bearer)
 * into buf; its length, 0 if none (or too long for buf). */
size_t auth_upgrade_token(struct lws *wsi, char *buf, size_t size);

/* Verify token: a new claims object (auth_claims_free), or NULL with a
 * client-safe reason in why. */
struct authtoken_claims *auth_verify(struct wsp_vhost *vh, const char *token, size_t len, char *why,
                                     size_t whylen);
void auth_claims_free(struct authtoken_claims *c);

/* The anonymous entitlements (AUTH=optional), as a new claims object. */
struct authtoken_claims *auth_anonymous(struct wsp_vhost *vh);

/* Narrow f to what c allows (sports, markets, books).  0, or -1 with a
 * client-facing reason (nothing it names is allowed: "forbidden"). */
int auth_restrict(const struct authtoken_claims *c, struct sub_filter *f, char *why, size_t whylen);

/* ss now holds claims (owned; NULL: AUTH off): its view of the data
 * (opportunities, fields) and its expiry follow. */
void auth_session_set(struct wsp_vhost *vh, struct wsp_session *ss,
                      struct authtoken_claims *claims);

/* ss has just been established: start waiting for an auth message if it
 * has no claims (AUTH_TIMEOUT), else arm its expiry. */
void auth_session_start(struct wsp_vhost *vh, struct wsp_session *ss);

/* ss is going: stop its timers, release its claims and its count per sub. */
void auth_session_end(struct wsp_vhost *vh, struct wsp_session *ss);

/* The auth and refresh messages. */
void auth_message(struct wsp_vhost *vh, struct wsp_session *ss, const cJSON *payload, int refresh);

/* Count one more session of sub across the instance if it has room under
 * max (< 0: no limit).  0, or -1 if it has not (nothing counted). */
int auth_sub_acquire(struct wsp_vhost *vh, const char *sub, int64_t max);
void auth_sub_release(struct wsp_vhost *vh, const char *sub);

#endif
