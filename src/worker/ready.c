#include "ready.h"

#include "../common/timeutil.h"
#include "figures.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

/* Each reason a short phrase an operator reads in a probe's log. */
static int
ready_reason(cJSON *reasons, const char *text)
{
    cJSON *s = cJSON_CreateString(text);

    if (s == NULL)
        return -1;
    cJSON_AddItemToArray(reasons, s);
    return 0;
}

/*
 * One stream's verdict (shm.h, struct shm_stream): stale when entries wait
 * for it in Redis (lag > 0, a fresh answer) while the newest one read is
 * older than READY_MAX_LAG, or when the ingest has not asked about it for a
 * while.  A quiet stream (lag 0) is never stale, however old its last entry;
 * without a word from Redis on the lag (before 7.0), only silence counts.
 * Adds the stream to streams and a reason to reasons if stale; -1 on OOM.
 */
static int
ready_stream(const struct shm_stream *row, const struct conf *c, uint64_t now, cJSON *streams,
             cJSON *reasons)
{
    uint64_t read_ms = LOAD(row->read_ms), lag_at = LOAD(row->lag_at_ms), lag = LOAD(row->lag);
    uint64_t max_ms = (uint64_t)c->ready_max_lag * 1000;
    uint64_t age = read_ms != 0 && now > read_ms ? now - read_ms : 0;
    uint64_t silence = lag_at != 0 && now > lag_at ? now - lag_at : 0;
    int lag_fresh = LOAD(row->lag_known) && lag_at != 0 && silence <= SHM_LAG_FRESH_MS;
    cJSON *o = cJSON_CreateObject();
    char reason[SHM_STREAM_NAME + 128];
    int stale = 0;

    if (o == NULL)
        return -1;
    cJSON_AddItemToArray(streams, o);
    if (silence > SHM_LAG_FRESH_MS && silence > max_ms) {
        snprintf(reason, sizeof(reason), "%s: no word from the ingest for %llu s", row->name,
                 (unsigned long long)(silence / 1000));
        stale = 1;
    } else if (lag_fresh && lag > 0 && read_ms != 0 && age > max_ms) {
        snprintf(reason, sizeof(reason),
                 "%s: the newest entry read is %llu s old while %llu entries wait in Redis",
                 row->name, (unsigned long long)(age / 1000), (unsigned long long)lag);
        stale = 1;
    }
    if (cJSON_AddStringToObject(o, "stream", row->name) == NULL ||
        (read_ms != 0 &&
         cJSON_AddNumberToObject(o, "last_entry_age_seconds", (double)age / 1000.0) == NULL) ||
        (lag_fresh && cJSON_AddNumberToObject(o, "lag", (double)lag) == NULL) ||
        cJSON_AddBoolToObject(o, "stale", stale) == NULL)
        return -1;
    return stale ? ready_reason(reasons, reason) : 0;
}

int
ready_readyz(struct shm *s, const struct conf *c, struct metrics_buf *out)
{
    cJSON *body = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
    cJSON *streams = cJSON_CreateArray();
    uint64_t now = time_now_ms();
    uint32_t nworkers = shm_nworkers(s), listening = 0;
    int redis_up = figures_redis_up(s);
    int draining = shm_draining(s, NULL, NULL);
    int failed = 0, ready;
    char *text;

    if (body == NULL || reasons == NULL || streams == NULL) {
        cJSON_Delete(body);
        cJSON_Delete(reasons);
        cJSON_Delete(streams);
        return -1;
    }
    for (uint32_t i = 0; i < nworkers; i++)
        if (LOAD(s->workers[i].pid) != 0 && LOAD(s->workers[i].listening))
            listening++;
    if (draining)
        failed |= ready_reason(reasons, "draining: the instance is stopping");
    if (listening < nworkers && !draining)
        failed |= ready_reason(reasons, "not every worker listens yet");
    if (!redis_up)
        failed |= ready_reason(reasons, "Redis cannot be read");
    /* Without Redis, or without an ingest, the streams' figures are only the
     * last ones it left: the reason above says it all. */
    for (uint32_t i = 0; redis_up && i < SHM_MAX_STREAMS; i++)
        if (atomic_load_explicit(&s->streams[i].used, memory_order_acquire) &&
            LOAD(s->streams[i].reading))
            failed |= ready_stream(&s->streams[i], c, now, streams, reasons);
    ready = cJSON_GetArraySize(reasons) == 0;
    if (failed || cJSON_AddStringToObject(body, "status", ready ? "ready" : "not ready") == NULL ||
        !cJSON_AddItemToObject(body, "reasons", reasons)) {
        cJSON_Delete(reasons);
        cJSON_Delete(streams);
        cJSON_Delete(body);
        return -1;
    }
    if (!cJSON_AddItemToObject(body, "streams", streams)) {
        cJSON_Delete(streams);
        cJSON_Delete(body);
        return -1;
    }
    if (cJSON_AddNumberToObject(body, "workers", nworkers) == NULL ||
        cJSON_AddNumberToObject(body, "workers_listening", listening) == NULL ||
        cJSON_AddBoolToObject(body, "redis_connected", redis_up) == NULL ||
        cJSON_AddBoolToObject(body, "draining", draining) == NULL ||
        (text = cJSON_PrintUnformatted(body)) == NULL) {
        cJSON_Delete(body);
        return -1;
    }
    cJSON_Delete(body);
    free(out->data);
    out->data = text;
    out->len = out->cap = strlen(text);
    return ready ? 200 : 503;
}
