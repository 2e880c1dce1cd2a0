#include "log.h"
#include "timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_role log_role = LOG_ROLE_SUPERVISOR;
static int log_index;
static enum log_level log_level = LOG_LEVEL_INFO;

static const char *const log_level_names[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

void
log_set_role(enum log_role role, int index)
{
    log_role = role;
    log_index = index;
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
    static const char *const names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, names[i]) == 0)
            return i;
    }
    return -1;
}

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    char role[32];
    size_t n;
    int r;

    if (level > log_level)
        return;

    switch (log_role) {
    case LOG_ROLE_SUPERVISOR:
        snprintf(role, sizeof(role), "supervisor");
        break;
    case LOG_ROLE_INGEST:
        snprintf(role, sizeof(role), "ingest");
        break;
    case LOG_ROLE_WORKER:
        snprintf(role, sizeof(role), "worker %d", log_index);
        break;
    default:
        snprintf(role, sizeof(role), "tool");
        break;
    }

    n = time_format_iso_ms(time_now_ms(), line, sizeof(line));
    r = snprintf(line + n, sizeof(line) - n, " %s %s: ", log_level_names[level], role);
    if (r > 0)
        n += (size_t)r;
    r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
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

    /* One write per line: atomic for pipes up to PIPE_BUF, so processes sharing
     * stderr do not interleave.  A failed log write has nowhere to be reported. */
    (void)!write(STDERR_FILENO, line, n);
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vmsg(level, fmt, ap);
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
