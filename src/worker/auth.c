#include "auth.h"
#include "cmsg.h"
#include "inbound.h"
#include "outbound.h"
#include "wsp.h"
#include "../common/addrtab.h"
#include "../common/hash.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
    struct authtoken_conf tok;
    int loaded;
    struct log_ratelimit rl;
} auth;

int
auth_enabled(const struct wsp_vhost *vh)
{
    return vh->conf->auth != CONF_AUTH_OFF;
}

/* Load the configured key into tok: the algorithm named, or with "auto"
 * HS256 for a secret file and else whichever of RS256 and ES256 the public
 * key is. */
static int
auth_load(const struct conf *c, struct authtoken_conf *tok, char *err, size_t errlen)
{
    const char *path =
        c->auth_hs256_secret_file[0] != '\0' ? c->auth_hs256_secret_file : c->auth_public_key_file;

    tok->leeway_s = c->auth_leeway;
    snprintf(tok->audience, sizeof(tok->audience), "%s", c->auth_audience);
    snprintf(tok->issuer, sizeof(tok->issuer), "%s", c->auth_issuer);
    if (strcmp(c->auth_algorithm, "auto") != 0) {
        tok->alg = jwt_str_alg(c->auth_algorithm);
        return authtoken_load_key(tok, path, err, errlen);
    }
    if (c->auth_hs256_secret_file[0] != '\0') {
        tok->alg = JWT_ALG_HS256;
        return authtoken_load_key(tok, path, err, errlen);
    }
    tok->alg = JWT_ALG_RS256;
    if (authtoken_load_key(tok, path, err, errlen) == 0)
        return 0;
    tok->alg = JWT_ALG_ES256;
    return authtoken_load_key(tok, path, err, errlen);
}

int
auth_check_config(const struct conf *c, char *err, size_t errlen)
{
    struct authtoken_conf tok;
    char why[400];
    int rc;

    if (c->auth == CONF_AUTH_OFF)
        return 0;
    memset(&tok, 0, sizeof(tok));
    rc = auth_load(c, &tok, why, sizeof(why));
    authtoken_conf_free(&tok);
    if (rc != 0)
        snprintf(err, errlen, "%s: %s",
                 c->auth_hs256_secret_file[0] ? "AUTH_HS256_SECRET_FILE" : "AUTH_PUBLIC_KEY_FILE",
                 why);
    return rc;
}

int
auth_init(struct wsp_vhost *vh)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
    char err[512];

    auth.rl = rl;
    if (!auth_enabled(vh))
        return 0;
    if (auth_load(vh->conf, &auth.tok, err, sizeof(err)) != 0) {
        LOG_ERROR("AUTH: cannot load the key: %s", err);
        return -1;
    }
    auth.loaded = 1;
    return 0;
}

void
auth_free(struct wsp_vhost *vh)
{
    (void)vh;
    authtoken_conf_free(&auth.tok);
    auth.loaded = 0;
}

void
auth_reload(struct wsp_vhost *vh)
{
    struct authtoken_conf next;
    char err[512];

    if (!auth_enabled(vh))
        return;
    memset(&next, 0, sizeof(next));
    if (auth_load(vh->conf, &next, err, sizeof(err)) != 0) {
        LOG_ERROR("reload: AUTH key not re-read, keeping the one in use: %s", err);
        authtoken_conf_free(&next);
        return;
    }
    authtoken_conf_free(&auth.tok);
    auth.tok = next;
    LOG_INFO("reload: AUTH key re-read");
}

size_t
auth_upgrade_token(struct lws *wsi, char *buf, size_t size)
{
    const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, (int)size);
    char hdr[AUTHTOKEN_MAX_TOKEN + 16];
    int n;

    if (v != NULL && *v != '\0') {
        size_t len = strlen(v);
        memmove(buf, v, len + 1);
        return len;
    }
    n = lws_hdr_copy(wsi, hdr, (int)sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION);
    if (n > 7 && strncasecmp(hdr, "Bearer ", 7) == 0 && (size_t)(n - 7) < size) {
        const char *t = hdr + 7;
        while (*t == ' ')
            t++;
        snprintf(buf, size, "%s", t);
        return strlen(buf);
    }
    return 0;
}

struct authtoken_claims *
auth_verify(struct wsp_vhost *vh, const char *token, size_t len, char *why, size_t whylen)
{
    struct authtoken_claims *c = calloc(1, sizeof(*c));

    (void)vh;
    if (c == NULL) {
        snprintf(why, whylen, "out of memory");
        return NULL;
    }
    if (!auth.loaded || authtoken_verify(&auth.tok, token, len, (int64_t)(time_now_ms() / 1000), c,
                                         why, whylen) != 0) {
        if (!auth.loaded)
            snprintf(why, whylen, "authentication is not configured");
        free(c);
        return NULL;
    }
    return c;
}

void
auth_claims_free(struct authtoken_claims *c)
{
    if (c == NULL)
        return;
    authtoken_claims_free(c);
    free(c);
}

/* A list claim of the ANONYMOUS JSON: -1 absent, else its values. */
static int
auth_anon_list(const cJSON *o, const char *name, char ***out)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name), *v;
    int n = 0;

    *out = NULL;
    if (!cJSON_IsArray(a))
        return -1;
    *out = calloc((size_t)cJSON_GetArraySize(a) + 1, sizeof(char *));
    if (*out == NULL)
        return 0;
    cJSON_ArrayForEach(v, a)
    {
        if (cJSON_IsString(v) && ((*out)[n] = strdup(v->valuestring)) != NULL)
            n++;
    }
    return n;
}

struct authtoken_claims *
auth_anonymous(struct wsp_vhost *vh)
{
    struct authtoken_claims *c = calloc(1, sizeof(*c));
    cJSON *o;
    const cJSON *v;

    if (c == NULL)
        return NULL;
    c->nbf = c->iat = INT64_MIN;
    c->exp = INT64_MAX; /* no token, no expiry */
    c->max_connections = -1;
    c->opportunities = 0;
    /* Empty: nothing at all (no sport is allowed). */
    c->nsports = 0;
    c->nbooks = c->nmarkets = -1;
    o = cJSON_Parse(vh->conf->anonymous);
    if (o == NULL)
        return c;
    c->nsports = auth_anon_list(o, "sports", &c->sports);
    c->nbooks = auth_anon_list(o, "books", &c->books);
    c->nmarkets = auth_anon_list(o, "markets", &c->markets);
    v = cJSON_GetObjectItemCaseSensitive(o, "opportunities");
    c->opportunities = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(o, "fields");
    c->fields_basic = !(cJSON_IsString(v) && strcmp(v->valuestring, "full") == 0);
    cJSON_Delete(o);
    return c;
}

int
auth_restrict(const struct authtoken_claims *c, struct sub_filter *f, char *why, size_t whylen)
{
    static const struct {
        int dim;
        const char *name;
    } dims[] = {
        {FRAME_KEY_SPORT, "sports"}, {FRAME_KEY_MARKET, "markets"}, {FRAME_KEY_BOOK, "books"}};

    if (c == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(dims) / sizeof(dims[0]); i++) {
        char *const *vals = dims[i].dim == FRAME_KEY_SPORT    ? c->sports
                            : dims[i].dim == FRAME_KEY_MARKET ? c->markets
                                                              : c->books;
        int n = dims[i].dim == FRAME_KEY_SPORT    ? c->nsports
                : dims[i].dim == FRAME_KEY_MARKET ? c->nmarkets
                                                  : c->nbooks;
        int rc = sub_filter_restrict(f, dims[i].dim, vals, n);
        if (rc == -2) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        if (rc != 0) {
            snprintf(why, whylen, "none of the %s asked for is allowed to this client",
                     dims[i].name);
            return -1;
        }
    }
    return 0;
}

/* ---- per sub, across the instance ------------------------------------------ */

/* A sub's count lives in the address tables (summed over the workers like
 * an address) under a key no address has: 7000::/8 is unassigned. */
static void
auth_sub_key(const char *sub, struct addrtab_key *key)
{
    uint64_t a = hash_bytes(sub, strlen(sub)), b = hash_bytes(&a, sizeof(a));

    memset(key, 0, sizeof(*key));
    key->b[0] = 0x73; /* "sub:" */
    key->b[1] = 0x75;
    key->b[2] = 0x62;
    key->b[3] = 0x3a;
    memcpy(key->b + 4, &a, 8);
    memcpy(key->b + 12, &b, 4);
}

int
auth_sub_acquire(struct wsp_vhost *vh, const char *sub, int64_t max)
{
    struct addrtab t = shm_addrtab(vh->shm, vh->worker);
    struct addrtab_key key;

    if (max < 0)
        return 0;
    auth_sub_key(sub, &key);
    /* Counted first, checked after, as for addresses: two upgrades racing on
     * two workers cannot both pass. */
    if (addrtab_add(&t, &key, ADDRTAB_CLIENTS, +1) != 0)
        return -1;
    atomic_thread_fence(memory_order_seq_cst);
    if ((int64_t)shm_addr_count(vh->shm, &key, ADDRTAB_CLIENTS) > max) {
        (void)addrtab_add(&t, &key, ADDRTAB_CLIENTS, -1);
        return -1;
    }
    return 0;
}

void
auth_sub_release(struct wsp_vhost *vh, const char *sub)
{
    struct addrtab t = shm_addrtab(vh->shm, vh->worker);
    struct addrtab_key key;

    auth_sub_key(sub, &key);
    (void)addrtab_add(&t, &key, ADDRTAB_CLIENTS, -1);
}

/* ---- sessions ---------------------------------------------------------------- */

static void
auth_timer(lws_sorted_usec_list_t *sul)
{
    struct wsp_session *ss = lws_container_of(sul, struct wsp_session, auth_timer);

    if (ss->close_code != 0)
        return;
    if (ss->claims == NULL) {
        outbound_send_error(ss->vh, ss, "unauthorized", "no token within AUTH_TIMEOUT");
        wsp_schedule_close(ss, AUTH_CLOSE_UNAUTHORIZED, "unauthorized", 1);
        return;
    }
    wsp_schedule_close(ss, AUTH_CLOSE_UNAUTHORIZED, "token expired", 1);
}

static void
auth_arm(struct wsp_session *ss, uint64_t in_us)
{
    lws_sul_schedule(lws_get_context(ss->wsi), 0, &ss->auth_timer, auth_timer, (lws_usec_t)in_us);
}

void
auth_session_set(struct wsp_vhost *vh, struct wsp_session *ss, struct authtoken_claims *claims)
{
    if (ss->claims != claims)
        auth_claims_free(ss->claims);
    ss->claims = claims;
    ss->no_opps = auth_enabled(vh) && (claims == NULL || claims->opportunities != 1);
    ss->basic = claims != NULL && claims->fields_basic;
    if (claims != NULL && claims->exp != INT64_MAX) {
        /* At exp itself (the leeway is for tokens presented, not for how
         * long a session may outlive its token). */
        int64_t now_ms = (int64_t)time_now_ms(), at_ms = claims->exp * 1000;
        auth_arm(ss, at_ms > now_ms ? (uint64_t)(at_ms - now_ms) * 1000 : 1);
    } else {
        lws_sul_cancel(&ss->auth_timer);
    }
}

void
auth_session_start(struct wsp_vhost *vh, struct wsp_session *ss)
{
    ss->vh = vh;
    if (!auth_enabled(vh))
        return;
    if (ss->claims != NULL) {
        auth_session_set(vh, ss, ss->claims);
        return;
    }
    ss->no_opps = 1;
    if (vh->conf->auth == CONF_AUTH_OPTIONAL) {
        auth_session_set(vh, ss, auth_anonymous(vh));
        ss->anonymous = 1;
        return;
    }
    auth_arm(ss, (uint64_t)vh->conf->auth_timeout * LWS_US_PER_SEC);
}

void
auth_session_end(struct wsp_vhost *vh, struct wsp_session *ss)
{
    lws_sul_cancel(&ss->auth_timer);
    if (ss->sub_counted && ss->claims != NULL)
        auth_sub_release(vh, ss->claims->sub);
    ss->sub_counted = 0;
    auth_claims_free(ss->claims);
    ss->claims = NULL;
}

static cJSON *
auth_reply(const struct authtoken_claims *c)
{
    cJSON *p = cJSON_CreateObject();

    if (p != NULL) {
        cJSON_AddStringToObject(p, "sub", c->sub);
        cJSON_AddNumberToObject(p, "exp", (double)c->exp);
    }
    return p;
}

void
auth_message(struct wsp_vhost *vh, struct wsp_session *ss, const cJSON *payload, int refresh)
{
    const cJSON *t = payload != NULL ? cJSON_GetObjectItemCaseSensitive(payload, "token") : NULL;
    struct authtoken_claims *c;
    char why[128];

    if (!auth_enabled(vh)) {
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_MESSAGE, "authentication is off");
        return;
    }
    if (!cJSON_IsString(t)) {
        snprintf(why, sizeof(why), "payload.token must be a string");
        c = NULL;
    } else {
        c = auth_verify(vh, t->valuestring, strlen(t->valuestring), why, sizeof(why));
    }
    if (refresh) {
        /* A refresh must come from an authenticated client, for the same
         * subject; a bad one leaves the old token (and its expiry) in force. */
        if (c != NULL &&
            (ss->claims == NULL || ss->anonymous || strcmp(c->sub, ss->claims->sub) != 0)) {
            snprintf(why, sizeof(why), "a refresh must be for the same sub");
            auth_claims_free(c);
            c = NULL;
        }
        if (c == NULL) {
            outbound_send_error(vh, ss, "unauthorized", why);
            return;
        }
        c->max_connections = ss->claims->max_connections; /* counted under the same sub */
        auth_session_set(vh, ss, c);
        outbound_send_message(vh, ss, "refreshed", auth_reply(c));
        /* New entitlements apply from here: the filter is narrowed again. */
        inbound_reapply_filter(vh, ss);
        return;
    }
    if (c == NULL) {
        outbound_send_error(vh, ss, "unauthorized", why);
        wsp_schedule_close(ss, AUTH_CLOSE_UNAUTHORIZED, "unauthorized", 1);
        return;
    }
    if (ss->claims != NULL && !ss->anonymous) {
        auth_claims_free(c);
        outbound_send_error(vh, ss, CMSG_ERR_INVALID_MESSAGE, "already authenticated; use refresh");
        return;
    }
    if (auth_sub_acquire(vh, c->sub, c->max_connections) != 0) {
        auth_claims_free(c);
        outbound_send_error(vh, ss, "forbidden", "max_connections of this sub reached");
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_POLICY_VIOLATION, "too many connections", 1);
        return;
    }
    ss->sub_counted = c->max_connections >= 0;
    ss->anonymous = 0;
    auth_session_set(vh, ss, c);
    outbound_send_message(vh, ss, "authenticated", auth_reply(c));
    inbound_reapply_filter(vh, ss);
}
