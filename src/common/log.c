#include "log.h"
#include "timeutil.h"

#include <assert.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static enum log_role log_role = LOG_ROLE_SUPERVISOR;
static int log_index;
static enum log_level log_level = LOG_LEVEL_INFO;

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

void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
    char line[2048];
    char role[32];
    char label[8];
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

    log_level_label(level, label, sizeof(label));
    n = time_format_iso_ms(time_now_ms(), line, sizeof(line));
    /* Padded to the longest name: messages line up, and readers of the log
     * (tests/integration LOG_LINE_RE among them) expect "WARN " with its space. */
    r = snprintf(line + n, sizeof(line) - n, " %-5s %s: ", label, role);
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
