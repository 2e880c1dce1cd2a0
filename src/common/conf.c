#include "conf.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Keep in sync with conf_set(), conf_get() and the README's settings table. */
const struct conf_key conf_keys[] = {
    {"SERVER_ADDR", ":8080", 0, "listen address, :PORT (all interfaces) or HOST:PORT"},
    {"REDIS_URL", "localhost:6379", 0,
     "host:port, redis://[:password@]host:port[/db], or a unix socket path"},
    {"REDIS_PASSWORD", "", 0, "password for Redis AUTH; wins over one in REDIS_URL"},
    {"SPORTS", "basketball_nba", 1, "comma list; stream per sport odds.normalized.<sport>"},
    {"OPPORTUNITIES_STREAM", "opportunities", 0, "stream of opportunities; empty disables"},
    {"CONSUMER_GROUP", "ws-broadcaster", 0,
     "consumer group prefix; the group read is <CONSUMER_GROUP>:<CONSUMER_ID>"},
    {"CONSUMER_ID", "broadcaster-1", 0, "this instance's consumer name; unique per instance"},
    {"WORKERS", "", 0, "worker processes; empty = number of CPUs"},
    {"CLIENT_BUFFER", "256", 0, "messages queued per client before it is disconnected"},
    {"RING_SIZE", "65536", 0, "shared ring capacity in frames (power of two)"},
    {"MAX_MESSAGE_SIZE", "65536", 0, "largest client message in bytes"},
    {"MAX_ENTRY_SIZE", "65536", 0, "largest stream entry in bytes once encoded"},
    {"MAX_FILTER_VALUES", "1024", 0, "values per filter list"},
    {"MAX_FILTER_VALUE_LEN", "256", 0, "bytes per filter value"},
    {"READ_COUNT", "512", 0, "entries per XREADGROUP call"},
    {"ALLOWED_ORIGINS", "", 0, "comma list of allowed Origin values; empty = any"},
    {"HANDSHAKE_TIMEOUT", "10", 0, "seconds a client has to complete its upgrade request"},
    {"MAX_HEADER_SIZE", "8192", 0, "bytes of HTTP request headers"},
    {"PING_INTERVAL", "30", 0, "seconds of silence before a ping; 0 = never"},
    {"PING_TIMEOUT", "10", 0, "seconds to answer that ping before the connection is dropped"},
    {"MAX_CLIENTS", "100000", 0, "WebSocket clients per instance (503 beyond)"},
    {"MAX_CLIENTS_PER_IP", "1000", 0, "WebSocket clients per client address (429 beyond)"},
    {"RATE_LIMIT", "20", 0, "client messages per second, sustained"},
    {"RATE_BURST", "40", 0, "client messages in a burst"},
    {"LOG_LEVEL", "info", 1, "error, warn, info or debug"},
};
const size_t conf_nkeys = sizeof(conf_keys) / sizeof(conf_keys[0]);

static int conf_error(char *err, size_t errlen, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
conf_error(char *err, size_t errlen, const char *key, const char *fmt, ...)
{
    char why[384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    snprintf(err, errlen, "%s: %s", key, why);
    return -1;
}

static int
conf_copy(char *dst, size_t size, const char *value, const char *key, char *err, size_t errlen)
{
    size_t len = strlen(value);

    if (len >= size)
        return conf_error(err, errlen, key, "value too long (%s)", value);
    memcpy(dst, value, len + 1);
    return 0;
}

/* Names that go into Redis keys and commands: no spaces, no control bytes. */
static int
conf_valid_name(const char *s)
{
    if (*s == '\0')
        return 0;
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (!(isalnum(ch) || ch == '_' || ch == '-' || ch == '.' || ch == ':'))
            return 0;
    }
    return 1;
}

static int
conf_parse_u32(const char *value, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    unsigned long long v;

    if (*value == '\0' || *value == '-' || *value == '+' || isspace((unsigned char)*value))
        return -1;
    errno = 0;
    v = strtoull(value, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

static int
conf_parse_port(const char *s, int *port)
{
    uint32_t v;

    if (conf_parse_u32(s, 1, 65535, &v) != 0)
        return -1;
    *port = (int)v;
    return 0;
}

/* "HOST:PORT", "[V6]:PORT" or ":PORT" (empty host).  default_port < 0 means
 * the port is required. */
static int
conf_split_hostport(const char *s, char *host, size_t hostsize, int *port, int default_port)
{
    const char *colon;
    size_t hostlen;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL)
            return -1;
        hostlen = (size_t)(close - s - 1);
        if (hostlen == 0 || hostlen >= hostsize)
            return -1;
        memcpy(host, s + 1, hostlen);
        host[hostlen] = '\0';
        if (close[1] == '\0') {
            if (default_port < 0)
                return -1;
            *port = default_port;
            return 0;
        }
        if (close[1] != ':')
            return -1;
        return conf_parse_port(close + 2, port);
    }
    colon = strrchr(s, ':');
    if (colon == NULL) {
        if (default_port < 0 || *s == '\0' || strlen(s) >= hostsize)
            return -1;
        strcpy(host, s);
        *port = default_port;
        return 0;
    }
    if (memchr(s, ':', (size_t)(colon - s)) != NULL)
        return -1; /* a bare IPv6 address needs brackets */
    hostlen = (size_t)(colon - s);
    if (hostlen >= hostsize)
        return -1;
    memcpy(host, s, hostlen);
    host[hostlen] = '\0';
    return conf_parse_port(colon + 1, port);
}

static int
conf_parse_redis_url(struct conf *c, const char *value, char *err, size_t errlen)
{
    const char *p = value;
    char hostport[CONF_HOST_MAX + 8];
    const char *at, *slash;
    size_t len;

    c->redis_host[0] = '\0';
    c->redis_unix[0] = '\0';
    c->redis_port = 6379;
    c->redis_db = 0;
    c->redis_url_password_set = 0;

    if (*value == '\0')
        return conf_error(err, errlen, "REDIS_URL", "empty");
    if (strncmp(p, "unix://", 7) == 0)
        p += 7;
    if (*p == '/' || strncmp(p, "./", 2) == 0) {
        if (strlen(p) >= sizeof(c->redis_unix))
            return conf_error(err, errlen, "REDIS_URL", "socket path too long (%s)", value);
        strcpy(c->redis_unix, p);
        return 0;
    }
    if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
        slash = strchr(p, '/');
        at = strchr(p, '@');
        if (at != NULL && (slash == NULL || at < slash)) {
            /* [user]:password@ ; Redis 6 ACL users are not used here. */
            /* user@ alone carries no password. */
            const char *colon = memchr(p, ':', (size_t)(at - p));
            const char *pw = colon ? colon + 1 : at;
            len = (size_t)(at - pw);
            if (len >= sizeof(c->redis_url_password))
                return conf_error(err, errlen, "REDIS_URL", "password too long");
            memcpy(c->redis_url_password, pw, len);
            c->redis_url_password[len] = '\0';
            c->redis_url_password_set = 1;
            p = at + 1;
        }
        slash = strchr(p, '/');
        if (slash != NULL) {
            uint32_t db;
            if (slash[1] != '\0') {
                if (conf_parse_u32(slash + 1, 0, 65535, &db) != 0)
                    return conf_error(err, errlen, "REDIS_URL", "bad database number in %s", value);
                c->redis_db = (int)db;
            }
            len = (size_t)(slash - p);
        } else {
            len = strlen(p);
        }
    } else {
        len = strlen(p);
    }
    if (len == 0 || len >= sizeof(hostport))
        return conf_error(err, errlen, "REDIS_URL", "missing or too long host in %s", value);
    memcpy(hostport, p, len);
    hostport[len] = '\0';
    if (conf_split_hostport(hostport, c->redis_host, sizeof(c->redis_host), &c->redis_port, 6379) !=
            0 ||
        c->redis_host[0] == '\0')
        return conf_error(err, errlen, "REDIS_URL",
                          "expected host:port, redis://[:password@]host:port[/db] or a socket "
                          "path, got '%s'",
                          value);
    return 0;
}

static int
conf_parse_sports(struct conf *c, const char *value, char *err, size_t errlen)
{
    char buf[CONF_MAX_SPORTS * CONF_NAME_MAX + 64];
    char *save = NULL, *tok;
    int n = 0;

    if (strlen(value) >= sizeof(buf))
        return conf_error(err, errlen, "SPORTS", "too long%s", "");
    strcpy(buf, value);
    for (tok = strtok_r(buf, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        while (isspace((unsigned char)*tok))
            tok++;
        end = tok + strlen(tok);
        while (end > tok && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*tok == '\0')
            continue;
        if (!conf_valid_name(tok) || strlen(tok) >= CONF_NAME_MAX)
            return conf_error(err, errlen, "SPORTS",
                              "bad sport key '%s' (letters, digits, _ - . : only, under 64 bytes)",
                              tok);
        for (int i = 0; i < n; i++) {
            if (strcmp(c->sports[i], tok) == 0)
                goto duplicate;
        }
        if (n == CONF_MAX_SPORTS)
            return conf_error(err, errlen, "SPORTS", "more than %d sports", CONF_MAX_SPORTS);
        strcpy(c->sports[n++], tok);
    duplicate:;
    }
    if (n == 0)
        return conf_error(err, errlen, "SPORTS", "needs at least one sport");
    c->nsports = n;
    return 0;
}

static int
conf_set_u32(uint32_t *dst, const char *key, const char *value, uint32_t min, uint32_t max,
             char *err, size_t errlen)
{
    if (conf_parse_u32(value, min, max, dst) != 0)
        return conf_error(err, errlen, key, "expected a whole number from %u to %u, got '%s'", min,
                          max, value);
    return 0;
}

int
conf_set(struct conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    if (strcmp(key, "SERVER_ADDR") == 0) {
        char host[CONF_HOST_MAX];
        int port;
        if (conf_copy(c->server_addr, sizeof(c->server_addr), value, key, err, errlen) != 0)
            return -1;
        if (conf_split_hostport(value, host, sizeof(host), &port, -1) != 0)
            return conf_error(err, errlen, key, "expected :PORT or HOST:PORT, got '%s'", value);
        strcpy(c->server_host, host);
        c->server_port = port;
        return 0;
    }
    if (strcmp(key, "REDIS_URL") == 0) {
        if (conf_copy(c->redis_url, sizeof(c->redis_url), value, key, err, errlen) != 0)
            return -1;
        return conf_parse_redis_url(c, value, err, errlen);
    }
    if (strcmp(key, "REDIS_PASSWORD") == 0)
        return conf_copy(c->redis_password, sizeof(c->redis_password), value, key, err, errlen);
    if (strcmp(key, "SPORTS") == 0)
        return conf_parse_sports(c, value, err, errlen);
    if (strcmp(key, "OPPORTUNITIES_STREAM") == 0) {
        if (*value != '\0' && !conf_valid_name(value))
            return conf_error(err, errlen, key, "bad stream name '%s'", value);
        return conf_copy(c->opportunities_stream, sizeof(c->opportunities_stream), value, key, err,
                         errlen);
    }
    if (strcmp(key, "CONSUMER_GROUP") == 0 || strcmp(key, "CONSUMER_ID") == 0) {
        char *dst = key[9] == 'G' ? c->consumer_group : c->consumer_id;
        if (!conf_valid_name(value))
            return conf_error(err, errlen, key,
                              "bad name '%s' (letters, digits, _ - . : only, not empty)", value);
        return conf_copy(dst, CONF_NAME_MAX, value, key, err, errlen);
    }
    if (strcmp(key, "WORKERS") == 0) {
        uint32_t v;
        if (*value == '\0' || strcmp(value, "auto") == 0) {
            long n = sysconf(_SC_NPROCESSORS_ONLN);
            c->workers = n < 1 ? 1 : n > CONF_MAX_WORKERS ? CONF_MAX_WORKERS : (int)n;
            return 0;
        }
        if (conf_set_u32(&v, key, value, 1, CONF_MAX_WORKERS, err, errlen) != 0)
            return -1;
        c->workers = (int)v;
        return 0;
    }
    if (strcmp(key, "CLIENT_BUFFER") == 0)
        return conf_set_u32(&c->client_buffer, key, value, 1, 1000000, err, errlen);
    if (strcmp(key, "RING_SIZE") == 0) {
        if (conf_set_u32(&c->ring_size, key, value, 1024, 1u << 24, err, errlen) != 0)
            return -1;
        if ((c->ring_size & (c->ring_size - 1)) != 0)
            return conf_error(err, errlen, key, "must be a power of two, got '%s'", value);
        return 0;
    }
    if (strcmp(key, "MAX_MESSAGE_SIZE") == 0)
        return conf_set_u32(&c->max_message_size, key, value, 256, 16u << 20, err, errlen);
    if (strcmp(key, "MAX_ENTRY_SIZE") == 0)
        return conf_set_u32(&c->max_entry_size, key, value, 1024, 4u << 20, err, errlen);
    if (strcmp(key, "MAX_FILTER_VALUES") == 0)
        return conf_set_u32(&c->max_filter_values, key, value, 1, 100000, err, errlen);
    if (strcmp(key, "MAX_FILTER_VALUE_LEN") == 0)
        return conf_set_u32(&c->max_filter_value_len, key, value, 1, 4096, err, errlen);
    if (strcmp(key, "READ_COUNT") == 0)
        return conf_set_u32(&c->read_count, key, value, 1, 100000, err, errlen);
    if (strcmp(key, "ALLOWED_ORIGINS") == 0) {
        for (const char *p = value; *p; p++) {
            if ((unsigned char)*p < ' ')
                return conf_error(err, errlen, key, "control character in '%s'", value);
        }
        return conf_copy(c->allowed_origins, sizeof(c->allowed_origins), value, key, err, errlen);
    }
    if (strcmp(key, "HANDSHAKE_TIMEOUT") == 0)
        return conf_set_u32(&c->handshake_timeout, key, value, 1, 3600, err, errlen);
    if (strcmp(key, "MAX_HEADER_SIZE") == 0)
        return conf_set_u32(&c->max_header_size, key, value, 1024, 65535, err, errlen);
    if (strcmp(key, "PING_INTERVAL") == 0)
        return conf_set_u32(&c->ping_interval, key, value, 0, 86400, err, errlen);
    if (strcmp(key, "PING_TIMEOUT") == 0)
        return conf_set_u32(&c->ping_timeout, key, value, 1, 3600, err, errlen);
    if (strcmp(key, "MAX_CLIENTS") == 0)
        return conf_set_u32(&c->max_clients, key, value, 1, 10000000, err, errlen);
    if (strcmp(key, "MAX_CLIENTS_PER_IP") == 0)
        return conf_set_u32(&c->max_clients_per_ip, key, value, 1, 10000000, err, errlen);
    if (strcmp(key, "RATE_LIMIT") == 0)
        return conf_set_u32(&c->rate_limit, key, value, 1, 1000000, err, errlen);
    if (strcmp(key, "RATE_BURST") == 0)
        return conf_set_u32(&c->rate_burst, key, value, 1, 1000000, err, errlen);
    if (strcmp(key, "LOG_LEVEL") == 0) {
        int level = log_level_parse(value);
        if (level < 0)
            return conf_error(err, errlen, key, "expected error, warn, info or debug, got '%s'",
                              value);
        c->log_level = level;
        return 0;
    }
    snprintf(err, errlen, "%s: unknown setting", key);
    return -1;
}

void
conf_defaults(struct conf *c)
{
    char err[256];

    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < conf_nkeys; i++) {
        /* The defaults table is ours; a default that does not parse is a bug. */
        if (conf_set(c, conf_keys[i].name, conf_keys[i].default_value, err, sizeof(err)) != 0)
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
            snprintf(err, errlen, "%s:%d: expected KEY=VALUE, got '%.64s'", path, lineno, key);
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
        if (conf_set(c, conf_keys[i].name, value, why, sizeof(why)) != 0) {
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
    if (c->max_message_size < c->max_filter_value_len) {
        snprintf(err, errlen, "MAX_FILTER_VALUE_LEN: larger than MAX_MESSAGE_SIZE");
        return -1;
    }
    return 0;
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
    return conf_check(c, err, errlen);
}

int
conf_get(const struct conf *c, const char *key, char *buf, size_t size)
{
    int n = -1;

    if (strcmp(key, "SERVER_ADDR") == 0)
        n = snprintf(buf, size, "%s", c->server_addr);
    else if (strcmp(key, "REDIS_URL") == 0)
        n = snprintf(buf, size, "%s", c->redis_url);
    else if (strcmp(key, "REDIS_PASSWORD") == 0)
        n = snprintf(buf, size, "%s", c->redis_password[0] ? "(set)" : "");
    else if (strcmp(key, "SPORTS") == 0) {
        size_t off = 0;
        buf[0] = '\0';
        for (int i = 0; i < c->nsports && off < size; i++)
            off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "", c->sports[i]);
        n = (int)off;
    } else if (strcmp(key, "OPPORTUNITIES_STREAM") == 0)
        n = snprintf(buf, size, "%s", c->opportunities_stream);
    else if (strcmp(key, "CONSUMER_GROUP") == 0)
        n = snprintf(buf, size, "%s", c->consumer_group);
    else if (strcmp(key, "CONSUMER_ID") == 0)
        n = snprintf(buf, size, "%s", c->consumer_id);
    else if (strcmp(key, "WORKERS") == 0)
        n = snprintf(buf, size, "%d", c->workers);
    else if (strcmp(key, "CLIENT_BUFFER") == 0)
        n = snprintf(buf, size, "%u", c->client_buffer);
    else if (strcmp(key, "RING_SIZE") == 0)
        n = snprintf(buf, size, "%u", c->ring_size);
    else if (strcmp(key, "MAX_MESSAGE_SIZE") == 0)
        n = snprintf(buf, size, "%u", c->max_message_size);
    else if (strcmp(key, "MAX_ENTRY_SIZE") == 0)
        n = snprintf(buf, size, "%u", c->max_entry_size);
    else if (strcmp(key, "MAX_FILTER_VALUES") == 0)
        n = snprintf(buf, size, "%u", c->max_filter_values);
    else if (strcmp(key, "MAX_FILTER_VALUE_LEN") == 0)
        n = snprintf(buf, size, "%u", c->max_filter_value_len);
    else if (strcmp(key, "READ_COUNT") == 0)
        n = snprintf(buf, size, "%u", c->read_count);
    else if (strcmp(key, "ALLOWED_ORIGINS") == 0)
        n = snprintf(buf, size, "%s", c->allowed_origins);
    else if (strcmp(key, "HANDSHAKE_TIMEOUT") == 0)
        n = snprintf(buf, size, "%u", c->handshake_timeout);
    else if (strcmp(key, "MAX_HEADER_SIZE") == 0)
        n = snprintf(buf, size, "%u", c->max_header_size);
    else if (strcmp(key, "PING_INTERVAL") == 0)
        n = snprintf(buf, size, "%u", c->ping_interval);
    else if (strcmp(key, "PING_TIMEOUT") == 0)
        n = snprintf(buf, size, "%u", c->ping_timeout);
    else if (strcmp(key, "MAX_CLIENTS") == 0)
        n = snprintf(buf, size, "%u", c->max_clients);
    else if (strcmp(key, "MAX_CLIENTS_PER_IP") == 0)
        n = snprintf(buf, size, "%u", c->max_clients_per_ip);
    else if (strcmp(key, "RATE_LIMIT") == 0)
        n = snprintf(buf, size, "%u", c->rate_limit);
    else if (strcmp(key, "RATE_BURST") == 0)
        n = snprintf(buf, size, "%u", c->rate_burst);
    else if (strcmp(key, "LOG_LEVEL") == 0) {
        static const char *const names[] = {"error", "warn", "info", "debug"};
        n = snprintf(buf, size, "%s", names[c->log_level & 3]);
    }
    return n < 0 ? -1 : 0;
}

void
conf_restart_keys_changed(const struct conf *a, const struct conf *b, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < conf_nkeys; i++) {
        char va[1024], vb[1024];
        const char *name = conf_keys[i].name;

        if (conf_keys[i].reloadable)
            continue;
        conf_get(a, name, va, sizeof(va));
        conf_get(b, name, vb, sizeof(vb));
        /* conf_get hides the password; compare the real ones. */
        if (strcmp(name, "REDIS_PASSWORD") == 0) {
            strcpy(va, a->redis_password);
            strcpy(vb, b->redis_password);
        }
        if (strcmp(va, vb) != 0 && off < size)
            off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? "," : "", name);
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
