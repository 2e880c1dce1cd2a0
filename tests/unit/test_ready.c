/*
 * test_ready: the /readyz verdict.  Each case builds a real shared-memory
 * region with shm_create, sets what the supervisor, the ingest and the
 * workers would (listening workers, Redis up, a drain, per-stream read
 * times and lags), and reads the status and the JSON body back.  The stale
 * stream with lag > 0 is the case an integration test cannot make: a live
 * ingest that goes round its loop but reads nothing of a stream.
 */
#include "worker/ready.h"
#include "common/timeutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "test.h"

#define SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

static struct conf conf;

/* Two workers listening, the ingest up, one stream read a moment ago. */
static struct shm *
ready_region(void)
{
    struct shm *s = shm_create(2, 1024, 65536, ADDRTAB_MIN_SLOTS);
    uint64_t now = time_now_ms();

    if (s == NULL)
        abort();
    conf_defaults(&conf);
    conf.ready_max_lag = 10;
    for (uint32_t i = 0; i < 2; i++) {
        SET(s->workers[i].pid, 100 + (int32_t)i);
        SET(s->workers[i].listening, 1);
    }
    SET(s->ingest.pid, 99);
    SET(s->ingest.redis_up, 1);
    strcpy(s->streams[0].name, "odds.normalized.nba");
    atomic_store_explicit(&s->streams[0].used, 1, memory_order_release);
    SET(s->streams[0].reading, 1);
    SET(s->streams[0].read_ms, now - 500);
    SET(s->streams[0].lag_known, 1);
    SET(s->streams[0].lag, 0);
    SET(s->streams[0].lag_at_ms, now - 200);
    return s;
}

/* The status, with the body parsed into *body (to cJSON_Delete). */
static int
readyz(struct shm *s, cJSON **body)
{
    struct metrics_buf b = {0};
    int status = ready_readyz(s, &conf, &b);

    CHECK(status == 200 || status == 503);
    *body = cJSON_ParseWithLength(b.data, b.len);
    CHECK(*body != NULL);
    metrics_buf_free(&b);
    return status;
}

/* Whether a reason of the body contains text. */
static int
has_reason(cJSON *body, const char *text)
{
    cJSON *r;

    cJSON_ArrayForEach(r, cJSON_GetObjectItem(body, "reasons")) if (cJSON_IsString(r) &&
                                                                    strstr(r->valuestring, text) !=
                                                                        NULL) return 1;
    return 0;
}

static void
test_ready(void)
{
    struct shm *s = ready_region();
    cJSON *body;

    CHECK_INT(readyz(s, &body), 200);
    CHECK_STR(cJSON_GetObjectItem(body, "status")->valuestring, "ready");
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItem(body, "reasons")), 0);
    CHECK_INT(cJSON_GetObjectItem(body, "workers_listening")->valueint, 2);
    CHECK(cJSON_IsFalse(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "streams"), 0), "stale")));
    cJSON_Delete(body);
    shm_destroy(s);
}

static void
test_worker_not_listening(void)
{
    struct shm *s = ready_region();
    cJSON *body;

    SET(s->workers[1].listening, 0); /* still starting */
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "not every worker listens"));
    cJSON_Delete(body);
    SET(s->workers[1].listening, 1);
    SET(s->workers[1].pid, 0); /* died, not restarted yet */
    CHECK_INT(readyz(s, &body), 503);
    cJSON_Delete(body);
    shm_destroy(s);
}

static void
test_redis_down(void)
{
    struct shm *s = ready_region();
    cJSON *body;

    SET(s->ingest.redis_up, 0);
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "Redis cannot be read"));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(body, "redis_connected")));
    cJSON_Delete(body);
    SET(s->ingest.redis_up, 1);
    SET(s->ingest.pid, 0); /* the ingest is being restarted */
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "Redis cannot be read"));
    cJSON_Delete(body);
    shm_destroy(s);
}

static void
test_stale_stream(void)
{
    struct shm *s = ready_region();
    uint64_t now = time_now_ms();
    cJSON *body;

    /* Entries wait, and the newest read is 30 s old: stale. */
    SET(s->streams[0].read_ms, now - 30000);
    SET(s->streams[0].lag, 42);
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "odds.normalized.nba: the newest entry read is 30 s old while 42"));
    CHECK(cJSON_IsTrue(
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(body, "streams"), 0), "stale")));
    cJSON_Delete(body);
    /* The same age with nothing waiting: a quiet stream, not a stale one. */
    SET(s->streams[0].lag, 0);
    CHECK_INT(readyz(s, &body), 200);
    cJSON_Delete(body);
    /* Waiting entries, but the last read is recent: catching up. */
    SET(s->streams[0].lag, 42);
    SET(s->streams[0].read_ms, now - 2000);
    CHECK_INT(readyz(s, &body), 200);
    cJSON_Delete(body);
    /* Redis does not say the lag (before 7.0): no verdict from it. */
    SET(s->streams[0].read_ms, now - 30000);
    SET(s->streams[0].lag_known, 0);
    CHECK_INT(readyz(s, &body), 200);
    cJSON_Delete(body);
    /* A stream the configuration no longer names does not count. */
    SET(s->streams[0].lag_known, 1);
    SET(s->streams[0].reading, 0);
    CHECK_INT(readyz(s, &body), 200);
    cJSON_Delete(body);
    shm_destroy(s);
}

static void
test_silent_ingest(void)
{
    struct shm *s = ready_region();
    uint64_t now = time_now_ms();
    cJSON *body;

    /* The ingest last asked about the lag 20 s ago (READY_MAX_LAG 10): it is
     * not going round its loop, whatever redis_up still says. */
    SET(s->streams[0].lag_at_ms, now - 20000);
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "odds.normalized.nba: no word from the ingest for 20 s"));
    cJSON_Delete(body);
    /* 8 s: within READY_MAX_LAG. */
    SET(s->streams[0].lag_at_ms, now - 8000);
    CHECK_INT(readyz(s, &body), 200);
    cJSON_Delete(body);
    shm_destroy(s);
}

static void
test_draining(void)
{
    struct shm *s = ready_region();
    cJSON *body;

    shm_drain_begin(s, time_now_ms(), time_mono_ms() + 10000);
    SET(s->workers[0].listening, 0); /* a draining worker takes no new clients */
    CHECK_INT(readyz(s, &body), 503);
    CHECK(has_reason(body, "draining"));
    CHECK(!has_reason(body, "not every worker listens"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(body, "draining")));
    cJSON_Delete(body);
    shm_destroy(s);
}

TEST_MAIN(TEST(test_ready), TEST(test_worker_not_listening), TEST(test_redis_down),
          TEST(test_stale_stream), TEST(test_silent_ingest), TEST(test_draining))
