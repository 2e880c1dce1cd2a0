#include "log.h"
#include "timeutil.h"
#include "utf8.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static enum log_role log_role = LOG_ROLE_SUPERVISOR;
static int log_index;
static enum log_level log_level = LOG_LEVEL_INFO;
static enum log_format log_format = LOG_FORMAT_TEXT;

/* The one list of level names, indexed by enum log_level: LOG_LEVEL parses
 * it, `-t` prints it, log lines uppercase it. */
static const char *const log_level_names[] = {"error", "warn", "info", "debug"};
static_assert(sizeof(log_level_names) / sizeof(log_level_names[0]) == LOG_LEVEL_DEBUG + 1,
              "one name per enum log_level");

void
log_set_role(enum log_role role, int index)
{
    log_role = role;
    log_index = index;
}

void
log_set_format(enum log_format format)
{
    log_format = format;
}

void
log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level
log_get_level(void)
{
    return log_level;
}

int
log_level_parse(const char *name)
{
    for (int i = 0; i <= LOG_LEVEL_DEBUG; i++) {
        if (strcasecmp(name, log_level_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *
log_level_name(int level)
{
    if (level < 0 || level > LOG_LEVEL_DEBUG)
        return NULL;
    return log_level_names[level];
}

/* A level as log lines show it: its name in capitals. */
static void
log_level_label(enum log_level level, char *buf, size_t size)
{
    const char *name = log_level_name(level);
    size_t i;

    for (i = 0; name != NULL && name[i] != '\0' && i < size - 1; i++)
        buf[i] = (char)toupper((unsigned char)name[i]);
    buf[i] = '\0';
}

/* The role's name; for a worker, its index goes beside it (text: "worker
 * 2"; JSON: "role":"worker","worker":2). */
static const char *
log_role_name(void)
{
    switch (log_role) {
    case LOG_ROLE_SUPERVISOR:
        return "supervisor";
    case LOG_ROLE_INGEST:
        return "ingest";
    case LOG_ROLE_WORKER:
        return "worker";
    default:
        return "tool";
    }
}

/* One write per line: atomic for pipes up to PIPE_BUF, so processes sharing
 * stderr do not interleave.  A failed log write has nowhere to be reported. */
static void
log_write_line(const char *line, size_t n)
{
    (void)!write(STDERR_FILENO, line, n);
}

static void
log_text_line(enum log_level level, const char *msg)
{
    char line[2048];
    char role[32];
    char label[8];
    size_t n;
    int r;

    if (log_role == LOG_ROLE_WORKER)
        snprintf(role, sizeof(role), "worker %d", log_index);
    else
        snprintf(role, sizeof(role), "%s", log_role_name());
    log_level_label(level, label, sizeof(label));
    n = time_format_iso_ms(time_now_ms(), line, sizeof(line));
    /* Padded to the longest name: messages line up, and readers of the log
     * (tests/integration LOG_LINE_RE among them) expect "WARN " with its space. */
    r = snprintf(line + n, sizeof(line) - n, " %-5s %s: %s", label, role, msg);
    if (r > 0)
        n += (size_t)r;
    if (n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep it one line */
    /* Control characters from untrusted input must not forge extra lines. */
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)line[i] < 0x20)
            line[i] = ' ';
    }
    line[n++] = '\n';
    log_write_line(line, n);
}

/* ---- JSON lines ---------------------------------------------------------------- */

/* A line being built: never more than cap bytes, and never cut inside a
 * token, so what is written is always valid JSON once closed. */
struct log_out {
    char *buf;
    size_t n, cap;
};

/* Append s[0..len) whole, or nothing (0 if it did not fit). */
static int
log_put(struct log_out *o, const char *s, size_t len)
{
    if (o->n + len > o->cap)
        return 0;
    memcpy(o->buf + o->n, s, len);
    o->n += len;
    return 1;
}

/* Length of the valid UTF-8 character at s (1 to 4), or 0 if s[0] does not
 * start one within len bytes. */
static size_t
log_utf8_char(const unsigned char *s, size_t len)
{
    size_t want = s[0] < 0x80             ? 1
                  : (s[0] & 0xe0) == 0xc0 ? 2
                  : (s[0] & 0xf0) == 0xe0 ? 3
                  : (s[0] & 0xf8) == 0xf0 ? 4
                                          : 0;

    return want != 0 && want <= len && utf8_valid((const char *)s, want) ? want : 0;
}

/*
 * s[0..len) as a JSON string, quotes included, cut (at a character) where
 * the line would pass its cap: quotes, backslashes and control characters
 * escaped, a byte that is not UTF-8 as U+FFFD.  0 if not even "" fits.
 */
static int
log_put_string(struct log_out *o, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    if (o->n + 2 > o->cap)
        return 0;
    o->buf[o->n++] = '"';
    while (i < len) {
        char esc[8];
        const char *piece = esc;
        size_t plen, step = log_utf8_char(p + i, len - i);

        if (step == 0) {
            piece = "\xef\xbf\xbd"; /* U+FFFD */
            plen = 3;
            step = 1;
        } else if (p[i] == '"' || p[i] == '\\') {
            esc[0] = '\\';
            esc[1] = (char)p[i];
            plen = 2;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            plen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", p[i]);
        } else {
            piece = s + i;
            plen = step;
        }
        if (o->n + plen + 1 > o->cap)
            break; /* the closing quote always has its byte */
        memcpy(o->buf + o->n, piece, plen);
        o->n += plen;
        i += step;
    }
    o->buf[o->n++] = '"';
    return 1;
}

/* ,"key":value: whole, or not at all. */
static void
log_put_member(struct log_out *o, const struct log_field *f)
{
    char num[32];
    size_t before = o->n, klen = strlen(f->key);
    int ok = log_put(o, ",\"", 2) && log_put(o, f->key, klen) && log_put(o, "\":", 2);

    if (ok && f->str == NULL) {
        ok = log_put(o, num, (size_t)snprintf(num, sizeof(num), "%lld", f->num));
    } else if (ok) {
        /* A value may be cut, but a member with no room for its value at
         * all is left out. */
        ok = log_put_string(o, f->str, strlen(f->str));
    }
    if (!ok)
        o->n = before;
}

#define LOG_JSON_LINE   4096 /* PIPE_BUF: one write() stays atomic */
#define LOG_FIELDS_ROOM 1024 /* the fields are written first, into at most this */

static void
log_json_line(enum log_level level, const struct log_field *fields, size_t nfields, const char *msg)
{
    char line[LOG_JSON_LINE], tail[LOG_FIELDS_ROOM], ts[32], head[160];
    /* '}' and '\n' always fit. */
    struct log_out o = {line, 0, sizeof(line) - 2}, t = {tail, 0, sizeof(tail)};
    int n;

    /* The key/values first, bounded: a long message must not push them out. */
    for (size_t i = 0; i < nfields; i++)
        log_put_member(&t, &fields[i]);
    time_format_iso_ms(time_now_ms(), ts, sizeof(ts));
    if (log_role == LOG_ROLE_WORKER)
        n = snprintf(head, sizeof(head),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"worker\",\"worker\":%d,\"pid\":%d,"
                     "\"msg\":",
                     ts, log_level_name(level), log_index, (int)getpid());
    else
        n = snprintf(head, sizeof(head),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"role\":\"%s\",\"pid\":%d,\"msg\":", ts,
                     log_level_name(level), log_role_name(), (int)getpid());
    (void)log_put(&o, head, (size_t)n); /* 160 bytes of a 4 KiB line */
    o.cap -= t.n;
    (void)log_put_string(&o, msg, strlen(msg)); /* room for "" is left */
    o.cap += t.n;
    (void)log_put(&o, tail, t.n);
    line[o.n++] = '}';
    line[o.n++] = '\n';
    log_write_line(line, o.n);
}

void
log_vmsg_kv(enum log_level level, const struct log_field *fields, size_t nfields, const char *fmt,
            va_list ap)
{
    char msg[2048];

    if (level > log_level)
        return;
    if (vsnprintf(msg, sizeof(msg), fmt, ap) < 0)
        msg[0] = '\0';
    if (log_format == LOG_FORMAT_JSON)
        log_json_line(level, fields, nfields, msg);
    else
        log_text_line(level, msg);
}

void
log_msg_kv(enum log_level level, const struct log_field *fields, size_t nfields, const char *fmt,
           ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg_kv(level, fields, nfields, fmt, ap);
    va_end(ap);
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    log_vmsg_kv(level, NULL, 0, fmt, ap);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg_kv(level, NULL, 0, fmt, ap);
    va_end(ap);
}

void
log_lws_emit(int lws_level, const char *line)
{
    /* lws logs some client misbehaviour (oversized headers, say) at ERROR:
     * a hostile client must not be able to flood the log through it. */
    static struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 20);
    size_t len = strlen(line);
    enum log_level level = (lws_level & 1) ? LOG_LEVEL_ERROR : LOG_LEVEL_WARN;

    if (!log_ratelimit_allow(&rl))
        return;

    /* lws lines end in '\n'; ours add their own. */
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        len--;
    log_msg(level, "lws: %.*s", (int)len, line);
}

int
log_ratelimit_allow(struct log_ratelimit *rl)
{
    uint64_t now = time_now_ms();

    if (now - rl->window_start_ms >= rl->interval_ms) {
        if (rl->suppressed > 0)
            log_msg(LOG_LEVEL_WARN, "%llu similar messages suppressed",
                    (unsigned long long)rl->suppressed);
        rl->window_start_ms = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed < rl->burst) {
        rl->printed++;
        return 1;
    }
    rl->suppressed++;
    return 0;
}

void
log_assert_failed(const char *expr, const char *file, int line)
{
    log_msg(LOG_LEVEL_ERROR, "assertion failed: %s at %s:%d", expr, file, line);
    abort();
}
