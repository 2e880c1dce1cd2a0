#include "conf_type.h"
#include "log.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Room for any setting's text form; the longest is a full SPORTS list. */
#define CONF_TEXT_MAX 4096
static_assert(CONF_MAX_SPORTS * CONF_NAME_MAX <= CONF_TEXT_MAX, "a SPORTS list fits");

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

/* The field a row describes, in c. */
static void *
conf_field(struct conf *c, const struct conf_key *k)
{
    return (char *)c + k->offset;
}

static const void *
conf_cfield(const struct conf *c, const struct conf_key *k)
{
    return (const char *)c + k->offset;
}

/* A STRING or SECRET row's value into its field.  A secret is not repeated
 * in the message: errors end up in logs. */
static int
conf_store_string(struct conf *c, const struct conf_key *k, const char *value, char *err,
                  size_t errlen)
{
    size_t len = strlen(value);

    if (len >= k->size && k->type == CONF_TYPE_SECRET)
        return conf_error(err, errlen, k->name, "value too long (%zu bytes, at most %zu)", len,
                          k->size - 1);
    if (len >= k->size)
        return conf_error(err, errlen, k->name, "value too long (%s)", value);
    memcpy(conf_field(c, k), value, len + 1);
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

/* A decimal number within the row's bounds. */
static int
conf_number(const struct conf_key *k, const char *value, uint32_t *out, char *err, size_t errlen)
{
    if (conf_parse_u32(value, k->min, k->max, out) != 0)
        return conf_error(err, errlen, k->name, "expected a whole number from %u to %u, got '%s'",
                          k->min, k->max, value);
    return 0;
}

/* ---- the types ------------------------------------------------------------ */

int
conf_type_row_ok(const struct conf_key *k)
{
    int ok = k->name != NULL && k->default_value != NULL && k->help != NULL &&
             k->offset + k->size <= sizeof(struct conf);

    switch (k->type) {
    case CONF_TYPE_U32:
        ok = ok && k->size == sizeof(uint32_t) && k->min <= k->max;
        break;
    case CONF_TYPE_INT:
        ok = ok && k->size == sizeof(int) && k->parse != NULL;
        break;
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET:
        ok = ok && k->size > 0;
        break;
    case CONF_TYPE_CUSTOM:
        ok = ok && k->parse != NULL && k->format != NULL;
        break;
    case CONF_TYPE_CHOICE:
        ok = ok && k->size == sizeof(int) && k->choices != NULL && k->choices[0] != NULL;
        break;
    default:
        ok = 0;
        break;
    }
    return ok;
}

int
conf_type_parse(struct conf *c, const struct conf_key *k, const char *value, char *err,
                size_t errlen)
{
    uint32_t v;

    if (k->parse != NULL)
        return k->parse(c, k, value, err, errlen);
    if (k->type == CONF_TYPE_CHOICE)
        return conf_type_parse_choice(c, k, value, err, errlen);
    if (k->type == CONF_TYPE_U32) {
        if (conf_number(k, value, &v, err, errlen) != 0)
            return -1;
        *(uint32_t *)conf_field(c, k) = v;
        return 0;
    }
    return conf_store_string(c, k, value, err, errlen); /* STRING, SECRET */
}

int
conf_type_format(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    const void *p = conf_cfield(c, k);
    int n;

    if (k->format != NULL)
        return k->format(c, k, buf, size);
    if (k->type == CONF_TYPE_CHOICE)
        return conf_type_format_choice(c, k, buf, size);
    switch (k->type) {
    case CONF_TYPE_U32:
        n = snprintf(buf, size, "%u", *(const uint32_t *)p);
        break;
    case CONF_TYPE_INT:
        n = snprintf(buf, size, "%d", *(const int *)p);
        break;
    case CONF_TYPE_SECRET:
        /* `-t` output and logs must not show it; whether it is set helps. */
        n = snprintf(buf, size, "%s", *(const char *)p != '\0' ? "(set)" : "");
        break;
    default:
        n = snprintf(buf, size, "%s", (const char *)p);
        break;
    }
    return n < 0 ? -1 : 0;
}

int
conf_type_same(const struct conf *a, const struct conf *b, const struct conf_key *k)
{
    const void *pa = conf_cfield(a, k), *pb = conf_cfield(b, k);
    char ta[CONF_TEXT_MAX], tb[CONF_TEXT_MAX];

    switch (k->type) {
    case CONF_TYPE_U32:
        return *(const uint32_t *)pa == *(const uint32_t *)pb;
    case CONF_TYPE_INT:
    case CONF_TYPE_CHOICE:
        return *(const int *)pa == *(const int *)pb;
    case CONF_TYPE_STRING:
    case CONF_TYPE_SECRET: /* the real value: conf_get's mask hides a change */
        return strncmp(pa, pb, k->size) == 0;
    default:
        if (conf_type_format(a, k, ta, sizeof(ta)) != 0 ||
            conf_type_format(b, k, tb, sizeof(tb)) != 0)
            return 0;
        return strcmp(ta, tb) == 0;
    }
}

/* ---- parse and format functions of the rows that need their own ---------- */

/* A listen address, :PORT (every interface, host empty) or HOST:PORT, stored
 * as k's string and split into host (CONF_HOST_MAX bytes) and *port;
 * expected says what k takes, for the error. */
static int
conf_parse_listen_addr(struct conf *c, const struct conf_key *k, const char *value, char *host,
                       int *port, const char *expected, char *err, size_t errlen)
{
    char h[CONF_HOST_MAX];
    int p;

    if (conf_store_string(c, k, value, err, errlen) != 0)
        return -1;
    if (conf_split_hostport(value, h, sizeof(h), &p, -1) != 0)
        return conf_error(err, errlen, k->name, "expected %s, got '%s'", expected, value);
    strcpy(host, h);
    *port = p;
    return 0;
}

int
conf_type_parse_server_addr(struct conf *c, const struct conf_key *k, const char *value, char *err,
                            size_t errlen)
{
    return conf_parse_listen_addr(c, k, value, c->server_host, &c->server_port,
                                  ":PORT or HOST:PORT", err, errlen);
}

/* METRICS_ADDR: as SERVER_ADDR, or empty for no listener of its own. */
int
conf_type_parse_metrics_addr(struct conf *c, const struct conf_key *k, const char *value, char *err,
                             size_t errlen)
{
    if (value[0] == '\0') {
        if (conf_store_string(c, k, value, err, errlen) != 0)
            return -1;
        c->metrics_host[0] = '\0';
        c->metrics_port = 0;
        return 0;
    }
    return conf_parse_listen_addr(c, k, value, c->metrics_host, &c->metrics_port,
                                  ":PORT, HOST:PORT or nothing", err, errlen);
}

/* A REDIS_URL as it may be shown: `-t`, the logs and error messages all end
 * up in journals and tickets.  The userinfo of a redis:// URL is what
 * conf_type_parse_redis_url reads as such (up to the last '@'); from its
 * first ':' on it is the password, shown as ***; without a ':' the whole
 * userinfo is hidden (a password typed without its leading ':' lands
 * there).  Any other form has no password (the parser refuses '@' in one). */
static void
conf_redis_url_shown(const char *url, char *buf, size_t size)
{
    const char *p = url + 8, *at, *colon;

    if (strncmp(url, "redis://", 8) != 0 || (at = strrchr(p, '@')) == NULL) {
        snprintf(buf, size, "%s", url);
        return;
    }
    colon = memchr(p, ':', (size_t)(at - p));
    if (colon != NULL)
        snprintf(buf, size, "redis://%.*s:***%s", (int)(colon - p), p, at);
    else
        snprintf(buf, size, "redis://***%s", at);
}

/* REDIS_URL: stored as given, and resolved into the fields that follow from
 * it.  Every one of them is reset first: a password or database of the
 * previous URL must not survive a reload to a new one.  No message repeats
 * the password (conf_redis_url_shown). */
int
conf_type_parse_redis_url(struct conf *c, const struct conf_key *k, const char *value, char *err,
                          size_t errlen)
{
    const char *p = value;
    char hostport[CONF_HOST_MAX + 8], shown[sizeof(c->redis_url) + 8];
    const char *at, *slash;
    size_t len = strlen(value);

    if (len >= sizeof(c->redis_url))
        return conf_error(err, errlen, k->name, "value too long (%zu bytes, at most %zu)", len,
                          sizeof(c->redis_url) - 1);
    conf_redis_url_shown(value, shown, sizeof(shown));
    if (conf_store_string(c, k, value, err, errlen) != 0)
        return -1;
    c->redis_host[0] = '\0';
    c->redis_unix[0] = '\0';
    c->redis_port = 6379;
    c->redis_db = 0;
    c->redis_url_password_set = 0;

    if (*value == '\0')
        return conf_error(err, errlen, k->name, "empty");
    if (strncmp(p, "unix://", 7) == 0)
        p += 7;
    if (*p == '/' || strncmp(p, "./", 2) == 0) {
        if (strlen(p) >= sizeof(c->redis_unix))
            return conf_error(err, errlen, k->name, "socket path too long (%s)", value);
        strcpy(c->redis_unix, p);
        return 0;
    }
    if (strncmp(p, "redis://", 8) == 0) {
        p += 8;
        /* [user]:password@ up to the last '@', so that a password may hold
         * '@' or '/' (a host or a database number holds neither); Redis 6
         * ACL users are not used here.  user@ alone carries no password. */
        at = strrchr(p, '@');
        if (at != NULL) {
            const char *colon = memchr(p, ':', (size_t)(at - p));
            const char *pw = colon ? colon + 1 : at;
            len = (size_t)(at - pw);
            if (len >= sizeof(c->redis_url_password))
                return conf_error(err, errlen, k->name, "password too long");
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
                    return conf_error(err, errlen, k->name, "bad database number in %s", shown);
                c->redis_db = (int)db;
            }
            len = (size_t)(slash - p);
        } else {
            len = strlen(p);
        }
    } else if (strchr(p, '@') != NULL) {
        /* user:password@host:port without the scheme would pass for a host
         * name, and be printed as one: refused without repeating it. */
        return conf_error(err, errlen, k->name,
                          "'@' in a host (a password goes in redis://:password@host:port)");
    } else {
        len = strlen(p);
    }
    if (len == 0 || len >= sizeof(hostport))
        return conf_error(err, errlen, k->name, "missing or too long host in %s", shown);
    memcpy(hostport, p, len);
    hostport[len] = '\0';
    if (conf_split_hostport(hostport, c->redis_host, sizeof(c->redis_host), &c->redis_port, 6379) !=
            0 ||
        c->redis_host[0] == '\0')
        return conf_error(err, errlen, k->name,
                          "expected host:port, redis://[:password@]host:port[/db] or a socket "
                          "path, got '%s'",
                          shown);
    return 0;
}

int
conf_type_format_redis_url(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    conf_redis_url_shown((const char *)conf_cfield(c, k), buf, size);
    return 0;
}

/* SPORTS: a comma list; blanks around names are dropped, repeats collapse
 * (first place kept), so the list conf_get prints reads back the same. */
int
conf_type_parse_sports(struct conf *c, const struct conf_key *k, const char *value, char *err,
                       size_t errlen)
{
    char buf[CONF_MAX_SPORTS * CONF_NAME_MAX + 64];
    char *save = NULL, *tok;
    int n = 0;

    if (strlen(value) >= sizeof(buf))
        return conf_error(err, errlen, k->name, "too long");
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
            return conf_error(err, errlen, k->name,
                              "bad sport key '%s' (letters, digits, _ - . : only, under 64 bytes)",
                              tok);
        for (int i = 0; i < n; i++) {
            if (strcmp(c->sports[i], tok) == 0)
                goto duplicate;
        }
        if (n == CONF_MAX_SPORTS)
            return conf_error(err, errlen, k->name, "more than %d sports", CONF_MAX_SPORTS);
        strcpy(c->sports[n++], tok);
    duplicate:;
    }
    if (n == 0)
        return conf_error(err, errlen, k->name, "needs at least one sport");
    c->nsports = n;
    return 0;
}

int
conf_type_format_sports(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    size_t off = 0;

    (void)k; /* the list and its count are two fields: named directly */
    buf[0] = '\0';
    for (int i = 0; i < c->nsports && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", i ? "," : "", c->sports[i]);
    return 0;
}

/* A stream name, or empty to disable that stream. */
int
conf_type_parse_stream(struct conf *c, const struct conf_key *k, const char *value, char *err,
                       size_t errlen)
{
    if (*value != '\0' && !conf_valid_name(value))
        return conf_error(err, errlen, k->name, "bad stream name '%s'", value);
    return conf_store_string(c, k, value, err, errlen);
}

/* A name for Redis (consumer group, consumer); not empty. */
int
conf_type_parse_name(struct conf *c, const struct conf_key *k, const char *value, char *err,
                     size_t errlen)
{
    if (!conf_valid_name(value))
        return conf_error(err, errlen, k->name,
                          "bad name '%s' (letters, digits, _ - . : only, not empty)", value);
    return conf_store_string(c, k, value, err, errlen);
}

/* CONSUMER_ID: a name as above, or "auto" (stored empty, resolved by
 * conf_resolve_auto from the host name and the port). */
int
conf_type_parse_consumer_id(struct conf *c, const struct conf_key *k, const char *value, char *err,
                            size_t errlen)
{
    if (strcmp(value, "auto") == 0)
        return conf_store_string(c, k, "", err, errlen);
    return conf_type_parse_name(c, k, value, err, errlen);
}

int
conf_type_format_consumer_id(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    const char *v = conf_cfield(c, k);

    return snprintf(buf, size, "%s", v[0] != '\0' ? v : "auto") < 0 ? -1 : 0;
}

/* Text compared with what clients send (Origin): no control characters. */
int
conf_type_parse_text(struct conf *c, const struct conf_key *k, const char *value, char *err,
                     size_t errlen)
{
    for (const char *p = value; *p; p++) {
        if ((unsigned char)*p < ' ')
            return conf_error(err, errlen, k->name, "control character in '%s'", value);
    }
    return conf_store_string(c, k, value, err, errlen);
}

/* A count within the row's bounds, or empty / "auto" for the number of CPUs
 * (clamped to the same bounds). */
int
conf_type_parse_workers(struct conf *c, const struct conf_key *k, const char *value, char *err,
                        size_t errlen)
{
    uint32_t v;

    if (*value == '\0' || strcmp(value, "auto") == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        v = n < (long)k->min ? k->min : n > (long)k->max ? k->max : (uint32_t)n;
    } else if (conf_number(k, value, &v, err, errlen) != 0) {
        return -1;
    }
    *(int *)conf_field(c, k) = (int)v;
    return 0;
}

/* A count within the row's bounds, or "auto": 0, resolved by conf_load from
 * the setting it derives from (conf_resolve_auto). */
int
conf_type_parse_u32_auto(struct conf *c, const struct conf_key *k, const char *value, char *err,
                         size_t errlen)
{
    uint32_t v = 0;

    if (strcmp(value, "auto") != 0 && conf_number(k, value, &v, err, errlen) != 0)
        return -1;
    *(uint32_t *)conf_field(c, k) = v;
    return 0;
}

int
conf_type_format_u32_auto(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    uint32_t v = *(const uint32_t *)conf_cfield(c, k);
    int n = v == 0 ? snprintf(buf, size, "auto") : snprintf(buf, size, "%u", v);

    return n < 0 ? -1 : 0;
}

/* RING_SIZE: the ring finds a slot as seq & (size - 1). */
int
conf_type_parse_power_of_two(struct conf *c, const struct conf_key *k, const char *value, char *err,
                             size_t errlen)
{
    uint32_t v;

    if (conf_number(k, value, &v, err, errlen) != 0)
        return -1;
    if ((v & (v - 1)) != 0)
        return conf_error(err, errlen, k->name, "must be a power of two, got '%s'", value);
    *(uint32_t *)conf_field(c, k) = v;
    return 0;
}

/* The names are log.c's (log_level_name), the message lists them from there. */
int
conf_type_parse_log_level(struct conf *c, const struct conf_key *k, const char *value, char *err,
                          size_t errlen)
{
    int level = log_level_parse(value);
    char names[64];
    size_t off = 0;

    if (level >= 0) {
        *(int *)conf_field(c, k) = level;
        return 0;
    }
    names[0] = '\0';
    for (int i = 0; log_level_name(i) != NULL && off < sizeof(names); i++) {
        const char *sep = i == 0 ? "" : log_level_name(i + 1) == NULL ? " or " : ", ";
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", sep, log_level_name(i));
    }
    return conf_error(err, errlen, k->name, "expected %s, got '%s'", names, value);
}

int
conf_type_format_log_level(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    const char *name = log_level_name(*(const int *)conf_cfield(c, k));

    return snprintf(buf, size, "%s", name != NULL ? name : "?") < 0 ? -1 : 0;
}

int
conf_type_parse_choice(struct conf *c, const struct conf_key *k, const char *value, char *err,
                       size_t errlen)
{
    char names[128];
    size_t off = 0;

    for (int i = 0; k->choices[i] != NULL; i++) {
        if (strcmp(value, k->choices[i]) == 0) {
            *(int *)conf_field(c, k) = i;
            return 0;
        }
    }
    names[0] = '\0';
    for (int i = 0; k->choices[i] != NULL && off < sizeof(names); i++) {
        const char *sep = i == 0 ? "" : k->choices[i + 1] == NULL ? " or " : ", ";
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", sep, k->choices[i]);
    }
    return conf_error(err, errlen, k->name, "expected %s, got '%s'", names, value);
}

int
conf_type_format_choice(const struct conf *c, const struct conf_key *k, char *buf, size_t size)
{
    int i = *(const int *)conf_cfield(c, k);

    for (int j = 0; k->choices[j] != NULL; j++) {
        if (j == i)
            return snprintf(buf, size, "%s", k->choices[j]) < 0 ? -1 : 0;
    }
    return snprintf(buf, size, "?") < 0 ? -1 : 0;
}
