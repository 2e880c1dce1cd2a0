#include "ready.h"

#include <cjson/cJSON.h>
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

int
ready_readyz(struct shm *s, const struct conf *c, struct metrics_buf *out)
{
    cJSON *body = cJSON_CreateObject(), *reasons = cJSON_CreateArray();
    uint32_t nworkers = shm_nworkers(s), listening = 0;
    int redis_up = LOAD(s->ingest.redis_up) && LOAD(s->ingest.pid) != 0;
    int draining = shm_draining(s, NULL, NULL);
    int failed = 0, ready;
    char *text;

    (void)c;
    if (body == NULL || reasons == NULL) {
        cJSON_Delete(body);
        cJSON_Delete(reasons);
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
    ready = cJSON_GetArraySize(reasons) == 0;
    if (failed || cJSON_AddStringToObject(body, "status", ready ? "ready" : "not ready") == NULL ||
        !cJSON_AddItemToObject(body, "reasons", reasons)) {
        cJSON_Delete(reasons);
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
