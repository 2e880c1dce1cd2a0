#include "conf.h"
#include "conf_type.h"
#include "log.h"
#include "proxies.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Where a row's value lives.  The _Generic has one association only, so a
 * row whose type does not match its field (U32 on an int, STRING on a
 * number) does not compile; its operand is never evaluated, and a char
 * array decays to char * in it.  (clang-format 14 does not know _Generic.)
 */
/* clang-format off */
#define CONF_MEMBER(f)       (((struct conf *)0)->f)
#define CONF_FIELD(f, ctype) .offset = _Generic(CONF_MEMBER(f), ctype: offsetof(struct conf, f)), \
                             .size = sizeof(CONF_MEMBER(f))
/* clang-format on */
#define CONF_U32(f, lo, hi)   .type = CONF_TYPE_U32, CONF_FIELD(f, uint32_t), .min = (lo), .max = (hi)
#define CONF_INT(f)           .type = CONF_TYPE_INT, CONF_FIELD(f, int)
#define CONF_STRING(f)        .type = CONF_TYPE_STRING, CONF_FIELD(f, char *)
#define CONF_SECRET(f)        .type = CONF_TYPE_SECRET, CONF_FIELD(f, char *)
#define CONF_CHOICE(f, names) .type = CONF_TYPE_CHOICE, CONF_FIELD(f, int), .choices = (names)
#define CONF_CUSTOM(f)                                                                             \
    .type = CONF_TYPE_CUSTOM, .offset = offsetof(struct conf, f), .size = sizeof(CONF_MEMBER(f))

/*
 * A row: {name, default, reloadable, help, type and field, parse/format if
 * the type's own do not do}.  Keep in sync with the README's settings table,
 * env.template and etc/ws-broadcaster.conf (test_conf checks that each row
 * is in all three), and the reloadable flags with what sup_reload applies.
 */
static const char *const conf_auth_names[] = {"off", "required", "optional", NULL};
static const char *const conf_off_on[] = {"off", "on", NULL};
/* Indexed by enum log_format (log.h): keep in sync. */
static const char *const conf_log_formats[] = {"text", "json", NULL};
static_assert(LOG_FORMAT_TEXT == 0 && LOG_FORMAT_JSON == 1, "conf_log_formats follows log.h");

const struct conf_key conf_keys[] = {
    {"SERVER_ADDR", ":8080", 0, "listen address, :PORT (all interfaces) or HOST:PORT",
     CONF_STRING(server_addr), .parse = conf_type_parse_server_addr},
    {"METRICS_ADDR", "", 0,
     "a listener of its own for /metrics, /health, /livez, /readyz (e.g. 127.0.0.1:9090); "
     "empty: none",
     CONF_STRING(metrics_addr), .parse = conf_type_parse_metrics_addr},
    {"METRICS_PUBLIC", "on", 0, "off: /metrics is not served on SERVER_ADDR (health endpoints are)",
     CONF_CHOICE(metrics_public, conf_off_on)},
    {"READY_MAX_LAG", "10", 0,
     "/readyz is 503 while a stream's newest entry read is older than this many seconds "
     "and Redis has newer ones",
     CONF_U32(ready_max_lag, 1, 86400)},
    {"REDIS_URL", "localhost:6379", 0,
     "host:port, redis://[:password@]host:port[/db], or a unix socket path", CONF_STRING(redis_url),
     .parse = conf_type_parse_redis_url, .format = conf_type_format_redis_url},
    {"REDIS_PASSWORD", "", 0, "password for Redis AUTH; wins over one in REDIS_URL",
     CONF_SECRET(redis_password)},
    {"SPORTS", "basketball_nba", 1, "comma list; stream per sport odds.normalized.<sport>",
     CONF_CUSTOM(sports), .parse = conf_type_parse_sports, .format = conf_type_format_sports},
    {"OPPORTUNITIES_STREAM", "opportunities", 0, "stream of opportunities; empty disables",
     CONF_STRING(opportunities_stream), .parse = conf_type_parse_stream},
    {"CONSUMER_GROUP", "ws-broadcaster", 0,
     "consumer group prefix; the group read is <CONSUMER_GROUP>:<CONSUMER_ID>",
     CONF_STRING(consumer_group), .parse = conf_type_parse_name},
    {"CONSUMER_ID", "auto", 0,
     "this instance's consumer name, unique per instance; auto = <host name>-<port>",
     CONF_STRING(consumer_id), .parse = conf_type_parse_consumer_id,
     .format = conf_type_format_consumer_id},
    {"WORKERS", "", 0, "worker processes; empty = number of CPUs", CONF_INT(workers), .min = 1,
     .max = CONF_MAX_WORKERS, .parse = conf_type_parse_workers},
    {"CLIENT_BUFFER", "256", 0, "messages queued per client before it is disconnected",
     CONF_U32(client_buffer, 1, 1000000)},
    {"RING_SIZE", "65536", 0, "shared ring capacity in frames (power of two)",
     CONF_U32(ring_size, 1024, 1u << 24), .parse = conf_type_parse_power_of_two},
    {"MAX_MESSAGE_SIZE", "65536", 0, "largest client message in bytes",
     CONF_U32(max_message_size, 256, 16u << 20)},
    {"MAX_ENTRY_SIZE", "65536", 0, "largest stream entry in bytes once encoded",
     CONF_U32(max_entry_size, 1024, 4u << 20)},
    {"MAX_FILTER_VALUES", "1024", 0, "values per filter list",
     CONF_U32(max_filter_values, 1, 100000)},
    {"MAX_FILTER_VALUE_LEN", "256", 0, "bytes per filter value",
     CONF_U32(max_filter_value_len, 1, 4096)},
    {"READ_COUNT", "512", 0, "entries per XREADGROUP call", CONF_U32(read_count, 1, 100000)},
    {"ALLOWED_ORIGINS", "", 0, "comma list of allowed Origin values; empty = any",
     CONF_STRING(allowed_origins), .parse = conf_type_parse_text},
    {"HANDSHAKE_TIMEOUT", "10", 0, "seconds a client has to complete its upgrade request",
     CONF_U32(handshake_timeout, 1, 3600)},
    {"MAX_HEADER_SIZE", "8192", 0, "bytes of HTTP request headers",
     CONF_U32(max_header_size, 1024, 65535)},
    {"PING_INTERVAL", "30", 0, "seconds of silence before a ping; 0 = never",
     CONF_U32(ping_interval, 0, 86400)},
    {"PING_TIMEOUT", "10", 0, "seconds to answer that ping before the connection is dropped",
     CONF_U32(ping_timeout, 1, 3600)},
    {"MAX_CLIENTS", "100000", 0, "WebSocket clients per instance (503 beyond)",
     CONF_U32(max_clients, 1, 10000000)},
    {"MAX_CLIENTS_PER_IP", "1000", 0, "WebSocket clients per client address (429 beyond)",
     CONF_U32(max_clients_per_ip, 1, 10000000)},
    {"CONFLATE_AT", "auto", 0,
     "queued messages from which a client gets only the latest update per key; auto = "
     "CLIENT_BUFFER / 2",
     CONF_U32(conflate_at, 1, 1000000), .parse = conf_type_parse_u32_auto,
     .format = conf_type_format_u32_auto},
    {"CLIENT_BUFFER_BYTES", "4194304", 0, "bytes queued per client before it is disconnected",
     CONF_U32(client_buffer_bytes, 4096, 1u << 30)},
    {"CLIENT_MAX_LAG", "10", 0,
     "seconds the oldest message queued for a client may wait before it is disconnected",
     CONF_U32(client_max_lag, 1, 3600)},
    {"RATE_LIMIT", "20", 0, "client messages per second, sustained",
     CONF_U32(rate_limit, 1, 1000000)},
    {"RATE_BURST", "40", 0, "client messages in a burst", CONF_U32(rate_burst, 1, 1000000)},
    {"CLOSE_TIMEOUT", "2", 0,
     "seconds a closing client has to read its close frame before it is reset",
     CONF_U32(close_timeout, 1, 3600)},
    {"SEND_TIMEOUT", "10", 0,
     "seconds a client's socket may accept nothing while data waits before it is cut off",
     CONF_U32(send_timeout, 1, 86400)},
    {"MAX_CONNECTIONS", "auto", 0,
     "TCP connections per instance, upgraded or not; auto = MAX_CLIENTS + 1024",
     CONF_U32(max_connections, 1, 20000000), .parse = conf_type_parse_u32_auto,
     .format = conf_type_format_u32_auto},
    {"MAX_CONNECTIONS_PER_IP", "auto", 0,
     "TCP connections per client address; auto = MAX_CLIENTS_PER_IP + 16",
     CONF_U32(max_connections_per_ip, 1, 20000000), .parse = conf_type_parse_u32_auto,
     .format = conf_type_format_u32_auto},
    {"HTTP_IDLE_TIMEOUT", "5", 0, "seconds an HTTP keep-alive connection may wait for a request",
     CONF_U32(http_idle_timeout, 1, 3600)},
    {"IPV6_PREFIX", "64", 0, "IPv6 clients are counted per address prefix of this many bits",
     CONF_U32(ipv6_prefix, 1, 128)},
    {"MAX_FILTER_VALUES_PER_IP", "100000", 0,
     "filter values held by all the clients of one address together",
     CONF_U32(max_filter_values_per_ip, 1, 100000000)},
    {"AUTH", "off", 0, "off, required, or optional (anonymous clients get ANONYMOUS)",
     CONF_CHOICE(auth, conf_auth_names)},
    {"AUTH_ALGORITHM", "auto", 0,
     "HS256, RS256 or ES256; auto: HS256 with a secret file, else the public key's type",
     CONF_STRING(auth_algorithm), .parse = conf_type_parse_text},
    {"AUTH_HS256_SECRET_FILE", "", 0, "file holding the HS256 secret (re-read on SIGHUP)",
     CONF_STRING(auth_hs256_secret_file), .parse = conf_type_parse_text},
    {"AUTH_PUBLIC_KEY_FILE", "", 0, "PEM public key for RS256/ES256 (re-read on SIGHUP)",
     CONF_STRING(auth_public_key_file), .parse = conf_type_parse_text},
    {"AUTH_LEEWAY", "30", 0, "seconds of clock skew allowed for exp, nbf and iat",
     CONF_U32(auth_leeway, 0, 3600)},
    {"AUTH_AUDIENCE", "", 0, "required aud claim; empty: not checked", CONF_STRING(auth_audience),
     .parse = conf_type_parse_text},
    {"AUTH_ISSUER", "", 0, "required iss claim; empty: not checked", CONF_STRING(auth_issuer),
     .parse = conf_type_parse_text},
    {"AUTH_TIMEOUT", "5", 0, "seconds a client without a token in its upgrade has to send one",
     CONF_U32(auth_timeout, 1, 3600)},
    {"ANONYMOUS", "", 0,
     "entitlements of anonymous clients (AUTH=optional) as JSON claims; "
     "empty: nothing",
     CONF_STRING(anonymous), .parse = conf_type_parse_text},
    {"TRUSTED_PROXIES", "", 0,
     "comma list of proxy addresses and CIDRs whose X-Forwarded-For, Forwarded or PROXY header "
     "names the client",
     CONF_STRING(trusted_proxies), .parse = conf_type_parse_text},
    {"PROXY_PROTOCOL", "off", 0,
     "on: every connection from TRUSTED_PROXIES starts with a PROXY protocol v1/v2 header",
     CONF_CHOICE(proxy_protocol, conf_off_on)},
    {"SNAPSHOT_CHUNK", "500", 0, "items per snapshot message", CONF_U32(snapshot_chunk, 1, 100000)},
    {"SNAPSHOT_TTL", "21600", 0, "seconds an odds key stays in snapshots without an update",
     CONF_U32(snapshot_ttl, 1, 31536000)},
    {"SNAPSHOT_MAX_KEYS", "1000000", 0, "keys in the snapshot table; the oldest are evicted",
     CONF_U32(snapshot_max_keys, 16, 50000000)},
    {"OPPORTUNITY_TTL", "60", 0, "seconds an opportunity stays in snapshots",
     CONF_U32(opportunity_ttl, 1, 31536000)},
    {"RESUME_MAX_ENTRIES", "10000", 0,
     "matching entries a resume may replay from Redis; more: a snapshot instead",
     CONF_U32(resume_max_entries, 1, 10000000)},
    {"DRAIN_SECONDS", "10", 0,
     "SIGTERM: upgrades get 503 and clients are closed (1001) spread over this many seconds",
     CONF_U32(drain_seconds, 0, 3600)},
    {"RECONNECT_JITTER_MS", "5000", 0,
     "each client closed by a drain is told to reconnect after a random 0..this many ms",
     CONF_U32(reconnect_jitter_ms, 0, 600000)},
    {"LOG_LEVEL", "info", 1, "error, warn, info or debug", CONF_INT(log_level),
     .parse = conf_type_parse_log_level, .format = conf_type_format_log_level},
    {"LOG_FORMAT", "text", 0, "text, or json: one JSON object per line",
     CONF_CHOICE(log_format, conf_log_formats)},
};
const size_t conf_nkeys = sizeof(conf_keys) / sizeof(conf_keys[0]);

/* ---- what the table drives ------------------------------------------------ */

const struct conf_key *
conf_key_find(const char *name)
{
    for (size_t i = 0; i < conf_nkeys; i++) {
        if (strcmp(conf_keys[i].name, name) == 0)
            return &conf_keys[i];
    }
    return NULL;
}

int
conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    const struct conf_key *k = conf_key_find(key);

    if (k == NULL) {
        snprintf(err, errlen, "%s: unknown setting", key);
        return -1;
    }
    return conf_type_parse(c, k, value, err, errlen);
}

void
conf_defaults(struct conf *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];

        /* A row the types cannot serve is a bug in the table: caught here,
         * so by every unit test and every start. */
        if (!conf_type_row_ok(k)) {
            snprintf(err, sizeof(err), "conf_keys row %s does not fit its type",
                     k->name != NULL ? k->name : "(unnamed)");
            log_assert_failed(err, __FILE__, __LINE__);
        }
        /* The defaults table is ours; a default that does not parse is a bug. */
        if (conf_type_parse(c, k, k->default_value, err, sizeof(err)) != 0)
            log_assert_failed(err, __FILE__, __LINE__);
    }
}

static char *
conf_trim(char *s)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

int
conf_load_file(struct conf *c, const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    char why[512];
    int lineno = 0;

    if (fp == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *key, *value, *eq;
        size_t vlen;

        lineno++;
        if (strchr(line, '\n') == NULL && !feof(fp)) {
            snprintf(err, errlen, "%s:%d: line too long", path, lineno);
            fclose(fp);
            return -1;
        }
        key = conf_trim(line);
        if (*key == '\0' || *key == '#')
            continue;
        if (strncmp(key, "export ", 7) == 0)
            key = conf_trim(key + 7);
        eq = strchr(key, '=');
        if (eq == NULL) {
            /* The line is not repeated: it may be a secret (a password
             * pasted alone, "REDIS_URL redis://:pw@..."), and errors end up
             * in logs. */
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE (the line is not shown)", path,
                     lineno);
            fclose(fp);
            return -1;
        }
        *eq = '\0';
        key = conf_trim(key);
        value = conf_trim(eq + 1);
        vlen = strlen(value);
        if (vlen >= 2 && (value[0] == '"' || value[0] == '\'') && value[vlen - 1] == value[0]) {
            value[vlen - 1] = '\0';
            value++;
        }
        if (conf_set(c, key, value, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
            fclose(fp);
            return -1;
        }
    }
    fclose(fp);
    return 0;
}

int
conf_apply_env(struct conf *c, char *err, size_t errlen)
{
    for (size_t i = 0; i < conf_nkeys; i++) {
        const char *value = getenv(conf_keys[i].name);
        char why[512];

        if (value == NULL)
            continue;
        if (conf_type_parse(c, &conf_keys[i], value, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "environment: %s", why);
            return -1;
        }
    }
    return 0;
}

int
conf_check(const struct conf *c, char *err, size_t errlen)
{
    char stream[CONF_STREAM_MAX];

    for (int i = 0; i < c->nsports; i++) {
        conf_sport_stream(c, i, stream, sizeof(stream));
        if (c->opportunities_stream[0] != '\0' && strcmp(stream, c->opportunities_stream) == 0) {
            snprintf(err, errlen, "OPPORTUNITIES_STREAM: '%s' is also the stream of sport '%s'",
                     c->opportunities_stream, c->sports[i]);
            return -1;
        }
    }
    /* SO_REUSEPORT would let both bind the same port, and the kernel would
     * deal the connections between the two listeners at random. */
    if (c->metrics_port != 0 && c->metrics_port == c->server_port &&
        (c->metrics_host[0] == '\0' || c->server_host[0] == '\0' ||
         strcmp(c->metrics_host, c->server_host) == 0)) {
        snprintf(err, errlen, "METRICS_ADDR: '%s' is SERVER_ADDR's port", c->metrics_addr);
        return -1;
    }
    if (c->auth != CONF_AUTH_OFF &&
        (c->auth_hs256_secret_file[0] != '\0') == (c->auth_public_key_file[0] != '\0')) {
        snprintf(err, errlen,
                 "AUTH: needs exactly one of AUTH_HS256_SECRET_FILE and "
                 "AUTH_PUBLIC_KEY_FILE");
        return -1;
    }
    if (strcmp(c->auth_algorithm, "auto") != 0 && strcmp(c->auth_algorithm, "HS256") != 0 &&
        strcmp(c->auth_algorithm, "RS256") != 0 && strcmp(c->auth_algorithm, "ES256") != 0) {
        snprintf(err, errlen, "AUTH_ALGORITHM: expected auto, HS256, RS256 or ES256, got '%s'",
                 c->auth_algorithm);
        return -1;
    }
    {
        struct proxies p;
        if (proxies_parse(&p, c->trusted_proxies, err, errlen) != 0)
            return -1;
        if (c->proxy_protocol && p.n == 0) {
            snprintf(err, errlen, "PROXY_PROTOCOL: on, but TRUSTED_PROXIES names no proxy");
            return -1;
        }
    }
    if (c->conflate_at > c->client_buffer) {
        snprintf(err, errlen, "CONFLATE_AT: larger than CLIENT_BUFFER (%u)", c->client_buffer);
        return -1;
    }
    if (c->max_message_size < c->max_filter_value_len) {
        snprintf(err, errlen, "MAX_FILTER_VALUE_LEN: larger than MAX_MESSAGE_SIZE");
        return -1;
    }
    return 0;
}

/* "1.5 GiB" or "36.3 MiB": sizes in messages an operator reads. */
static void
conf_format_bytes(uint64_t n, char *buf, size_t size)
{
    if (n >= (1ULL << 30))
        snprintf(buf, size, "%.1f GiB", (double)n / (double)(1ULL << 30));
    else
        snprintf(buf, size, "%.1f MiB", (double)n / (double)(1ULL << 20));
}

int
conf_check_memory(const struct conf *c, uint64_t region, uint64_t memory, const char *memory_name,
                  char *err, size_t errlen)
{
    char need[32], have[32];

    if (region <= memory / 2)
        return 0;
    conf_format_bytes(region, need, sizeof(need));
    conf_format_bytes(memory, have, sizeof(have));
    snprintf(err, errlen,
             "RING_SIZE: a ring of %u frames (MAX_ENTRY_SIZE %u, WORKERS %d) needs %s of shared "
             "memory, more than half of the %s this process may use (%s); lower RING_SIZE",
             c->ring_size, c->max_entry_size, c->workers, need, have, memory_name);
    return -1;
}

int
conf_load(struct conf *c, const char *path, char *err, size_t errlen)
{
    conf_defaults(c);
    if (path != NULL) {
        if (conf_load_file(c, path, err, errlen) != 0)
            return -1;
    } else if (access(CONF_DEFAULT_PATH, F_OK) == 0) {
        if (conf_load_file(c, CONF_DEFAULT_PATH, err, errlen) != 0)
            return -1;
    }
    if (conf_apply_env(c, err, errlen) != 0)
        return -1;
    conf_resolve_auto(c);
    return conf_check(c, err, errlen);
}

void
conf_resolve_auto(struct conf *c)
{
    /* Room for HTTP requests and upgrades in progress beside the clients. */
    if (c->max_connections == 0)
        c->max_connections = c->max_clients + 1024;
    if (c->max_connections_per_ip == 0)
        c->max_connections_per_ip = c->max_clients_per_ip + 16;
    if (c->conflate_at == 0)
        c->conflate_at = c->client_buffer / 2 > 0 ? c->client_buffer / 2 : 1;
    if (c->consumer_id[0] == '\0') {
        char host[CONF_HOST_MAX];
        /* Without a name the id is still unique per port on this host. */
        if (gethostname(host, sizeof(host)) != 0)
            host[0] = '\0';
        host[sizeof(host) - 1] = '\0';
        conf_consumer_id(host, c->server_port, c->consumer_id, sizeof(c->consumer_id));
    }
}

void
conf_consumer_id(const char *host, int port, char *buf, size_t size)
{
    char suffix[16];
    size_t n = 0, room;

    snprintf(suffix, sizeof(suffix), "-%d", port);
    if (host[0] == '\0')
        host = "localhost";
    /* ':' is left out too, though names may hold it: the group is
     * "<CONSUMER_GROUP>:<CONSUMER_ID>", and --groups reads the id back
     * from after the prefix. */
    room = size > strlen(suffix) ? size - strlen(suffix) - 1 : 0;
    for (; host[n] != '\0' && n < room; n++) {
        unsigned char ch = (unsigned char)host[n];
        buf[n] = isalnum(ch) || ch == '_' || ch == '-' || ch == '.' ? (char)ch : '-';
    }
    snprintf(buf + n, size - n, "%s", suffix);
}

int
conf_get(const struct conf *c, const char *key, char *buf, size_t size)
{
    const struct conf_key *k = conf_key_find(key);

    return k == NULL ? -1 : conf_type_format(c, k, buf, size);
}

void
conf_restart_keys_changed(const struct conf *a, const struct conf *b, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];

        if (k->reloadable || conf_type_same(a, b, k))
            continue;
        if (off < size)
            off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? "," : "", k->name);
    }
}

int
conf_sport_stream(const struct conf *c, int i, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s%s", CONF_ODDS_PREFIX, c->sports[i]);

    return n < 0 || (size_t)n >= size ? -1 : 0;
}

const char *
conf_redis_password(const struct conf *c)
{
    if (c->redis_password[0] != '\0')
        return c->redis_password;
    if (c->redis_url_password_set && c->redis_url_password[0] != '\0')
        return c->redis_url_password;
    return NULL;
}
