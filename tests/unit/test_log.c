/*
 * test_log: the rate limiter for lines bad input can trigger at will.
 *
 * log_ratelimit_allow lets `burst` lines through per window of
 * `interval_ms` (wall clock, from the first line of the window), counts the
 * rest, and when a later call opens a new window writes one WARN line "N
 * similar messages suppressed" to stderr.  Windows are moved by editing
 * window_start_ms (a field of the public struct), so no case waits for the
 * clock but one that shows the real clock opens a window too.  stderr is
 * captured into a temporary file to see the summary lines.
 *
 * The JSON format (LOG_FORMAT=json): every line is one object that cJSON
 * parses, with ts, level, role (and worker), pid, msg and the fields the
 * call attached; quotes, control bytes and invalid UTF-8 in a message are
 * escaped; a message too long for a line is cut and the line stays valid
 * JSON with its fields; the text format is unchanged by fields.
 */
#include "common/log.h"
#include "common/timeutil.h"

#include <cjson/cJSON.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ---- stderr capture ---------------------------------------------------------- */

static int saved_stderr = -1;
static FILE *captured;

static void
capture_begin(void)
{
    fflush(stderr);
    captured = tmpfile();
    saved_stderr = dup(STDERR_FILENO);
    if (captured == NULL || saved_stderr < 0 || dup2(fileno(captured), STDERR_FILENO) < 0) {
        printf("# cannot capture stderr\n");
        abort();
    }
}

/* Stop capturing; what was written goes to buf (NUL-terminated). */
static void
capture_end(char *buf, size_t size)
{
    size_t n;

    fflush(stderr);
    if (dup2(saved_stderr, STDERR_FILENO) < 0)
        abort();
    close(saved_stderr);
    rewind(captured);
    n = fread(buf, 1, size - 1, captured);
    buf[n] = '\0';
    fclose(captured);
    captured = NULL;
}

static int
count_lines(const char *s)
{
    int n = 0;

    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* The window of rl began `ago` ms before now: it has run that long. */
static void
window_began(struct log_ratelimit *rl, uint64_t ago)
{
    rl->window_start_ms = time_now_ms() - ago;
}

/* ---- cases ------------------------------------------------------------------- */

static void
test_burst_then_suppressed(void)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 3);
    char out[1024];

    capture_begin();
    /* The first call opens a window (window_start_ms 0 is long ago). */
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    for (int i = 0; i < 100; i++)
        CHECK_INT(log_ratelimit_allow(&rl), 0);
    capture_end(out, sizeof(out));
    CHECK_INT(rl.printed, 3);
    CHECK_INT(rl.suppressed, 100);
    CHECK(rl.window_start_ms != 0);
    /* Nothing is written while the window lasts: the summary comes later. */
    CHECK_STR(out, "");
}

static void
test_new_window_summary(void)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 2);
    char out[1024];

    for (int i = 0; i < 7; i++)
        (void)log_ratelimit_allow(&rl);
    CHECK_INT(rl.suppressed, 5);
    /* Still inside the window a second before its end: still suppressed. */
    window_began(&rl, 9000);
    CHECK_INT(log_ratelimit_allow(&rl), 0);
    CHECK_INT(rl.suppressed, 6);
    /* The window is over: the line goes out, preceded by one summary. */
    window_began(&rl, 10000);
    capture_begin();
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    capture_end(out, sizeof(out));
    CHECK(strstr(out, " 6 similar messages suppressed\n") != NULL);
    CHECK_INT(count_lines(out), 1);
    /* A fresh window with a fresh burst and count. */
    CHECK_INT(rl.printed, 1);
    CHECK_INT(rl.suppressed, 0);
    CHECK(time_now_ms() - rl.window_start_ms < 5000);
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    CHECK_INT(log_ratelimit_allow(&rl), 0);
}

static void
test_no_summary_when_nothing_suppressed(void)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
    char out[1024];

    capture_begin();
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 5; i++)
            CHECK_INT(log_ratelimit_allow(&rl), 1);
        window_began(&rl, 20000);
    }
    capture_end(out, sizeof(out));
    CHECK_STR(out, "");
}

static void
test_summary_once_per_window(void)
{
    /* Each window that suppressed something gets its own summary, with its
     * own count, written when the next window opens. */
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(1000, 1);
    char out[1024];

    capture_begin();
    for (int i = 0; i < 4; i++)
        (void)log_ratelimit_allow(&rl); /* 1 allowed, 3 suppressed */
    window_began(&rl, 1000);
    for (int i = 0; i < 2; i++)
        (void)log_ratelimit_allow(&rl); /* summary of 3; 1 allowed, 1 suppressed */
    window_began(&rl, 1000);
    (void)log_ratelimit_allow(&rl); /* summary of 1 */
    capture_end(out, sizeof(out));
    CHECK_INT(count_lines(out), 2);
    CHECK(strstr(out, " 3 similar messages suppressed\n") != NULL);
    CHECK(strstr(out, " 1 similar messages suppressed\n") != NULL);
    CHECK(strstr(out, "3 similar") < strstr(out, "1 similar"));
}

static void
test_real_clock(void)
{
    /* No window editing: a short interval passes on the wall clock. */
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(30, 1);
    struct timespec ts = {0, 60 * 1000000L};
    char out[1024];

    capture_begin();
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    CHECK_INT(log_ratelimit_allow(&rl), 0);
    (void)nanosleep(&ts, NULL); /* no signal handler here: nothing cuts it short */
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    capture_end(out, sizeof(out));
    CHECK(strstr(out, " 1 similar messages suppressed\n") != NULL);
}

static void
test_clock_stepped_back(void)
{
    /* The wall clock stepped back past the window's start: the elapsed
     * time wraps to a huge number, so a new window opens at once rather
     * than everything being suppressed until the clock catches up. */
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 1);
    char out[1024];

    CHECK_INT(log_ratelimit_allow(&rl), 1);
    CHECK_INT(log_ratelimit_allow(&rl), 0);
    rl.window_start_ms = time_now_ms() + 3600000;
    capture_begin();
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    capture_end(out, sizeof(out));
    CHECK(strstr(out, " 1 similar messages suppressed\n") != NULL);
    CHECK(rl.window_start_ms <= time_now_ms());
}

static void
test_zero_burst(void)
{
    /* burst 0 lets nothing through, and still counts and summarises. */
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 0);
    char out[1024];

    for (int i = 0; i < 4; i++)
        CHECK_INT(log_ratelimit_allow(&rl), 0);
    CHECK_INT(rl.suppressed, 4);
    window_began(&rl, 10000);
    capture_begin();
    CHECK_INT(log_ratelimit_allow(&rl), 0);
    capture_end(out, sizeof(out));
    CHECK(strstr(out, " 4 similar messages suppressed\n") != NULL);
    CHECK_INT(rl.suppressed, 1);
}

static void
test_limiters_independent(void)
{
    /* One limiter per source of lines: one flooded source must not silence
     * another. */
    struct log_ratelimit a = LOG_RATELIMIT_INIT(10000, 2);
    struct log_ratelimit b = LOG_RATELIMIT_INIT(10000, 2);

    for (int i = 0; i < 50; i++)
        (void)log_ratelimit_allow(&a);
    CHECK_INT(log_ratelimit_allow(&a), 0);
    CHECK_INT(log_ratelimit_allow(&b), 1);
    CHECK_INT(log_ratelimit_allow(&b), 1);
    CHECK_INT(log_ratelimit_allow(&b), 0);
    CHECK_INT(a.suppressed, 49);
    CHECK_INT(b.suppressed, 1);
}

static void
test_summary_follows_log_level(void)
{
    /* The summary is a WARN line: below WARN it is not written, but the
     * window still resets. */
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 1);
    enum log_level before = log_get_level();
    char out[1024];

    (void)log_ratelimit_allow(&rl);
    (void)log_ratelimit_allow(&rl);
    window_began(&rl, 10000);
    log_set_level(LOG_LEVEL_ERROR);
    capture_begin();
    CHECK_INT(log_ratelimit_allow(&rl), 1);
    capture_end(out, sizeof(out));
    log_set_level(before);
    CHECK_STR(out, "");
    CHECK_INT(rl.suppressed, 0);
}

/* ---- the JSON format --------------------------------------------------------- */

/* The one line in buf, parsed (NULL if buf is not exactly one valid JSON
 * object and a newline). */
static cJSON *
one_json_line(const char *buf)
{
    size_t len = strlen(buf);

    if (len == 0 || buf[len - 1] != '\n' || memchr(buf, '\n', len - 1) != NULL)
        return NULL;
    return cJSON_ParseWithLength(buf, len - 1);
}

static const char *
str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsString(v) ? v->valuestring : "(missing)";
}

static double
num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static void
test_json_line_and_fields(void)
{
    char out[8192];
    cJSON *o;

    log_set_format(LOG_FORMAT_JSON);
    log_set_role(LOG_ROLE_WORKER, 3);
    capture_begin();
    LOG_WARN_KV(LOG_FIELDS(LOG_STR("stream", "odds.normalized.nba"), LOG_STR("id", "1-0"),
                           LOG_NUM("code", 1001), LOG_STR("client_ip", NULL)),
                "invalid entry %s: %s", "1-0", "bad \"number\"");
    capture_end(out, sizeof(out));
    log_set_format(LOG_FORMAT_TEXT);
    log_set_role(LOG_ROLE_SUPERVISOR, 0);
    o = one_json_line(out);
    CHECK(o != NULL);
    if (o == NULL) {
        printf("# %s", out);
        return;
    }
    CHECK(strlen(str_of(o, "ts")) == 24 && str_of(o, "ts")[23] == 'Z');
    CHECK_STR(str_of(o, "level"), "warn");
    CHECK_STR(str_of(o, "role"), "worker");
    CHECK(num_of(o, "worker") == 3);
    CHECK(num_of(o, "pid") == (double)getpid());
    CHECK_STR(str_of(o, "msg"), "invalid entry 1-0: bad \"number\"");
    CHECK_STR(str_of(o, "stream"), "odds.normalized.nba");
    CHECK_STR(str_of(o, "id"), "1-0");
    CHECK(num_of(o, "code") == 1001);
    CHECK_STR(str_of(o, "client_ip"), "");
    cJSON_Delete(o);
}

/* Bytes from untrusted input: control characters escaped (one line), a
 * byte that is not UTF-8 replaced, valid UTF-8 kept. */
static void
test_json_escapes(void)
{
    char out[8192];
    cJSON *o;

    log_set_format(LOG_FORMAT_JSON);
    capture_begin();
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("id", "a\nb\xff")),
                "x\ny\tz\\ \xc3\xa9 \xc3 \xed\xa0\x80 \x7f end");
    capture_end(out, sizeof(out));
    log_set_format(LOG_FORMAT_TEXT);
    o = one_json_line(out);
    CHECK(o != NULL);
    if (o == NULL) {
        printf("# %s", out);
        return;
    }
    CHECK_STR(str_of(o, "role"), "supervisor");
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "worker") == NULL);
    CHECK_STR(str_of(o, "msg"),
              "x\ny\tz\\ \xc3\xa9 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd \x7f end");
    CHECK_STR(str_of(o, "id"), "a\nb\xef\xbf\xbd");
    cJSON_Delete(o);
}

/* A message longer than a line: cut, with the fields kept and the line
 * valid JSON of at most PIPE_BUF bytes (one atomic write). */
static void
test_json_long_message(void)
{
    static char big[6000];
    char out[16384];
    cJSON *o;

    memset(big, '"', sizeof(big) - 1); /* each takes two bytes escaped */
    log_set_format(LOG_FORMAT_JSON);
    capture_begin();
    LOG_ERROR_KV(LOG_FIELDS(LOG_STR("stream", "s1"), LOG_NUM("code", 1009)), "%s", big);
    capture_end(out, sizeof(out));
    log_set_format(LOG_FORMAT_TEXT);
    CHECK(strlen(out) <= 4096);
    o = one_json_line(out);
    CHECK(o != NULL);
    if (o == NULL)
        return;
    CHECK_STR(str_of(o, "stream"), "s1");
    CHECK(num_of(o, "code") == 1009);
    CHECK(strlen(str_of(o, "msg")) > 1000);
    CHECK(strspn(str_of(o, "msg"), "\"") == strlen(str_of(o, "msg")));
    cJSON_Delete(o);
}

/* The text format shows the message only, as before fields existed. */
static void
test_text_ignores_fields(void)
{
    char out[4096];

    capture_begin();
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("stream", "s9")), "plain %d", 7);
    capture_end(out, sizeof(out));
    CHECK(strstr(out, " INFO  supervisor: plain 7\n") != NULL);
    CHECK(strstr(out, "s9") == NULL);
    CHECK(out[0] != '{');
}

TEST_MAIN(TEST(test_burst_then_suppressed), TEST(test_new_window_summary),
          TEST(test_no_summary_when_nothing_suppressed), TEST(test_summary_once_per_window),
          TEST(test_real_clock), TEST(test_clock_stepped_back), TEST(test_zero_burst),
          TEST(test_limiters_independent), TEST(test_summary_follows_log_level),
          TEST(test_json_line_and_fields), TEST(test_json_escapes), TEST(test_json_long_message),
          TEST(test_text_ignores_fields))
