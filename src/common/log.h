/*
 * log: the only code that writes to stderr.
 *
 * One line per event: ISO-8601 UTC time with milliseconds, level, role and
 * index, message.  Every process sets its role once, right after fork, so a
 * line always says who wrote it:
 *
 *   2026-11-25T12:00:00.123Z INFO  worker 2: listening on fd 5
 *
 * With LOG_FORMAT=json (log_set_format, before the first fork) each line is
 * one JSON object instead, for log shippers:
 *
 *   {"ts":"2026-11-25T12:00:00.123Z","level":"info","role":"worker","worker":2,
 *    "pid":4242,"msg":"listening on fd 5"}
 *
 * plus the key/values the call attached (LOG_INFO_KV and friends: "stream",
 * "id", "client_ip", "code"...), so a shipper can index them without
 * parsing the message.  Text lines show the message only: it names the same
 * things in words.  Every byte of a JSON line is valid UTF-8 (an invalid
 * byte from untrusted input becomes U+FFFD) and the line is valid JSON even
 * when cut to size.
 *
 * Each call formats the whole line into one buffer and issues one write(), so
 * lines from different processes sharing stderr never interleave.  Safe in
 * every role; not async-signal-safe (it calls vsnprintf).
 */
#ifndef WSB_LOG_H
#define WSB_LOG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

enum log_role { LOG_ROLE_SUPERVISOR = 0, LOG_ROLE_INGEST, LOG_ROLE_WORKER, LOG_ROLE_TOOL };

/* LOG_FORMAT's values, in its order (conf.c's names follow this enum). */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Set once, in the supervisor before the first fork (children inherit it). */
void log_set_format(enum log_format format);

/* Set the role once after fork; index is the worker number (from 1). */
void log_set_role(enum log_role role, int index);

/* Lines above this level are not written. */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);

/* Parse a level's name, in any case ("warn", "WARN"); -1 if none matches. */
int log_level_parse(const char *name);

/* The lowercase name of a level ("error", "warn", "info", "debug"): what
 * LOG_LEVEL takes and `-t` prints.  Log lines show it uppercased.  NULL if
 * level is not an enum log_level, so callers can list the names by counting
 * up from 0. */
const char *log_level_name(int level);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/*
 * A key/value attached to one line, for the JSON format: a string (str), or
 * a number when str is NULL.  Build them with LOG_STR / LOG_NUM and pass
 * them with LOG_FIELDS, which makes the array and its count:
 *
 *   LOG_WARN_KV(LOG_FIELDS(LOG_STR("stream", name), LOG_STR("id", id)),
 *               "invalid entry %s %s: %s; skipped", name, id, err);
 *
 * The pointers are read during the call only.  A NULL string is shown as "".
 * Keys are the caller's constants, never input (they are not escaped).
 */
struct log_field {
    const char *key;
    const char *str;
    long long num;
};
#define LOG_STR(k, v) ((struct log_field){(k), (v) != NULL ? (v) : "", 0})
#define LOG_NUM(k, v) ((struct log_field){(k), NULL, (long long)(v)})
#define LOG_FIELDS(...)                                                                            \
    (const struct log_field[]){__VA_ARGS__},                                                       \
        sizeof((const struct log_field[]){__VA_ARGS__}) / sizeof(struct log_field)

void log_msg_kv(enum log_level level, const struct log_field *fields, size_t nfields,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void log_vmsg_kv(enum log_level level, const struct log_field *fields, size_t nfields,
                 const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));

/* libwebsockets' log sink, installed with lws_set_log_level(). */
void log_lws_emit(int lws_level, const char *line);

#define LOG_ERROR(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define LOG_INFO(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...)                                                                             \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__);                                                 \
    } while (0)
/* The same with key/values: the first argument is LOG_FIELDS(...). */
#define LOG_ERROR_KV(fields, ...) log_msg_kv(LOG_LEVEL_ERROR, fields, __VA_ARGS__)
#define LOG_WARN_KV(fields, ...)  log_msg_kv(LOG_LEVEL_WARN, fields, __VA_ARGS__)
#define LOG_INFO_KV(fields, ...)  log_msg_kv(LOG_LEVEL_INFO, fields, __VA_ARGS__)
#define LOG_DEBUG_KV(fields, ...)                                                                  \
    do {                                                                                           \
        if (log_get_level() >= LOG_LEVEL_DEBUG)                                                    \
            log_msg_kv(LOG_LEVEL_DEBUG, fields, __VA_ARGS__);                                      \
    } while (0)

/*
 * Rate limiter for lines that bad input can trigger at will (a malformed
 * stream entry, a hostile client): at most `burst` lines per `interval_ms`,
 * then one summary of how many were suppressed.  Not shared between processes.
 */
struct log_ratelimit {
    uint32_t interval_ms;
    uint32_t burst;
    uint64_t window_start_ms;
    uint32_t printed;
    uint64_t suppressed;
};

#define LOG_RATELIMIT_INIT(interval_ms, burst)                                                     \
    {                                                                                              \
        (interval_ms), (burst), 0, 0, 0                                                            \
    }

/* 1 if the caller may log now, 0 if this line is suppressed (and counted). */
int log_ratelimit_allow(struct log_ratelimit *rl);

/* Impossible states: log file:line and abort, in every build. */
#define WSB_ASSERT(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            log_assert_failed(#cond, __FILE__, __LINE__);                                          \
    } while (0)

void log_assert_failed(const char *expr, const char *file, int line) __attribute__((noreturn));

#endif
