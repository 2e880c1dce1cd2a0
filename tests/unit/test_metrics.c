/*
 * test_metrics: the /health and /metrics bodies.  Each case builds a real
 * shared-memory region with shm_create, writes counters where the ingest,
 * the workers and the supervisor would, moves the ring head with
 * ring_publish, and reads the bodies back: JSON through cJSON, Prometheus
 * text line by line.  Every counter gets a distinct value so a field that
 * reads the wrong counter cannot pass.
 */
#include "worker/metrics.h"
#include "common/timeutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#include "test.h"

#define SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

static struct shm *
region(uint32_t nworkers)
{
    struct shm *s = shm_create(nworkers, 1024, 65536, ADDRTAB_MIN_SLOTS);

    if (s == NULL) {
        printf("# shm_create(%u, 1024, 65536) failed\n", nworkers);
        abort();
    }
    return s;
}

static void
publish(struct shm *s, int n)
{
    static const char frame[] = "frame";
    struct ring_frame_meta meta = {0, 1762518896123ULL, 0, 0};

    for (int i = 0; i < n; i++) {
        meta.id_seq = (uint64_t)i;
        if (ring_publish(shm_ring(s), frame, sizeof(frame), &meta) < 0) {
            printf("# ring_publish failed\n");
            abort();
        }
    }
}

/* A worker as the supervisor and the worker itself leave it while it runs. */
static void
live_worker(struct shm *s, uint32_t i, int32_t pid, uint64_t ring_next)
{
    SET(s->workers[i].pid, pid);
    SET(s->workers[i].listening, 1);
    SET(s->workers[i].ring_next, ring_next);
}

/*
 * Two live workers and a dead one's retired totals, every counter distinct:
 *   worker 1: pid 101, clients 3, conns 10, msgs 1000, dropped 7, slow 1,
 *             next 7, missed 2, invalid 4, errors 5, restarts 1
 *   worker 2: pid 102, clients 2, conns 20, msgs 2000, dropped 8, slow 2,
 *             next 4, missed 3, invalid 6, errors 9, restarts 0
 *   retired:  conns 300, msgs 30000, dropped 40, slow 5, missed 11,
 *             invalid 12, errors 13
 *   ring:     10 frames published
 */
static struct shm *
busy_region(void)
{
    struct shm *s = region(2);
    struct shm_worker *w1 = &s->workers[0], *w2 = &s->workers[1];

    publish(s, 10);
    live_worker(s, 0, 101, 7);
    SET(w1->active_clients, 3);
    SET(w1->total_connections, 10);
    SET(w1->total_messages, 1000);
    SET(w1->dropped_messages, 7);
    SET(w1->slow_disconnects, 1);
    SET(w1->ring_missed, 2);
    SET(w1->invalid_frames, 4);
    SET(w1->client_errors, 5);
    SET(w1->restarts, 1);
    live_worker(s, 1, 102, 4);
    SET(w2->active_clients, 2);
    SET(w2->total_connections, 20);
    SET(w2->total_messages, 2000);
    SET(w2->dropped_messages, 8);
    SET(w2->slow_disconnects, 2);
    SET(w2->ring_missed, 3);
    SET(w2->invalid_frames, 6);
    SET(w2->client_errors, 9);
    SET(s->retired.total_connections, 300);
    SET(s->retired.total_messages, 30000);
    SET(s->retired.dropped_messages, 40);
    SET(s->retired.slow_disconnects, 5);
    SET(s->retired.ring_missed, 11);
    SET(s->retired.invalid_frames, 12);
    SET(s->retired.client_errors, 13);
    SET(s->retired.refused_connections, 14);
    SET(s->ingest.pid, 4242);
    SET(s->ingest.redis_up, 1);
    SET(s->ingest.entries_read, 15);
    SET(s->ingest.entries_published, 10);
    SET(s->ingest.invalid_entries, 16);
    SET(s->ingest.duplicates_skipped, 17);
    SET(s->ingest.redis_errors, 18);
    SET(s->ingest.restarts, 19);
    return s;
}

/* The body must be NUL-terminated text of exactly len bytes. */
static void
check_buf(const struct metrics_buf *b)
{
    CHECK(b->data != NULL);
    if (b->data != NULL) {
        CHECK_INT(strlen(b->data), b->len);
        CHECK(b->len < b->cap);
    }
}

static cJSON *
parse_body(const struct metrics_buf *b)
{
    cJSON *j;

    check_buf(b);
    if (b->data == NULL)
        return NULL;
    j = cJSON_ParseWithLengthOpts(b->data, b->len + 1, NULL, 1);
    if (j == NULL) {
        printf("#   body is not JSON: %.300s\n", b->data);
        test_failed_checks++;
    }
    return j;
}

/* obj[name] is a number equal to want. */
static void
check_num_at(int line, const cJSON *obj, const char *name, double want)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    if (!cJSON_IsNumber(v) || v->valuedouble != want) {
        printf("#   line %d: \"%s\" is %s%.17g, want %.17g\n", line, name,
               v == NULL            ? "missing "
               : !cJSON_IsNumber(v) ? "not a number "
                                    : "",
               cJSON_IsNumber(v) ? v->valuedouble : 0.0, want);
        test_failed_checks++;
    }
}

#define CHECK_NUM(obj, name, want) check_num_at(__LINE__, obj, name, (double)(want))

/* ---- /health ------------------------------------------------------------- */

static void
check_health_at(int line, struct shm *s, int want_status, const char *want_state,
                double want_clients)
{
    struct metrics_buf b = {0};
    int status = metrics_health(s, &b);
    cJSON *j = parse_body(&b);

    if (status != want_status) {
        printf("#   line %d: status %d, want %d\n", line, status, want_status);
        test_failed_checks++;
    }
    if (j != NULL) {
        CHECK_INT(cJSON_GetArraySize(j), 3);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "status")), want_state);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "service")),
                  "ws-broadcaster");
        check_num_at(line, j, "active_clients", want_clients);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
}

static void
test_health_healthy(void)
{
    struct shm *s = busy_region();

    check_health_at(__LINE__, s, 200, "healthy", 5);
    shm_destroy(s);
}

static void
test_health_degraded(void)
{
    struct shm *s = busy_region();

    /* Redis down, the ingest alive. */
    SET(s->ingest.redis_up, 0);
    check_health_at(__LINE__, s, 503, "degraded", 5);
    /* The ingest dead: its last redis_up must not count. */
    SET(s->ingest.redis_up, 1);
    SET(s->ingest.pid, 0);
    check_health_at(__LINE__, s, 503, "degraded", 5);
    SET(s->ingest.redis_up, 0);
    check_health_at(__LINE__, s, 503, "degraded", 5);
    /* And back. */
    SET(s->ingest.redis_up, 1);
    SET(s->ingest.pid, 4243);
    check_health_at(__LINE__, s, 200, "healthy", 5);
    shm_destroy(s);
}

static void
test_health_fresh_region(void)
{
    /* Before the ingest has started: degraded, nobody connected. */
    struct shm *s = region(1);

    check_health_at(__LINE__, s, 503, "degraded", 0);
    shm_destroy(s);
}

static void
test_health_after_worker_retired(void)
{
    /* A dead worker's clients are gone: the supervisor's retire zeroes them,
     * and the figure must follow. */
    struct shm *s = busy_region();

    shm_worker_retire(s, 0);
    check_health_at(__LINE__, s, 200, "healthy", 2);
    shm_destroy(s);
}

/* ---- /metrics as JSON ---------------------------------------------------- */

static void
test_json_fields(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    const cJSON *ingest, *workers, *w;
    cJSON *j;

    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        /* The seed's five, first. */
        CHECK_NUM(j, "active_clients", 5);
        CHECK_NUM(j, "total_connections", 10 + 20 + 300);
        CHECK_NUM(j, "total_messages", 1000 + 2000 + 30000);
        CHECK_NUM(j, "broadcast_capacity", 1024);
        /* head 10, slowest live worker at 4. */
        CHECK_NUM(j, "broadcast_usage", 6);
        CHECK_NUM(j, "dropped_messages", 7 + 8 + 40);
        CHECK_NUM(j, "invalid_entries", 16);
        CHECK_NUM(j, "slow_disconnects", 1 + 2 + 5);
        CHECK_NUM(j, "ring_missed", 2 + 3 + 11);
        CHECK_NUM(j, "invalid_frames", 4 + 6 + 12);
        CHECK_NUM(j, "client_errors", 5 + 9 + 13);
        CHECK_NUM(j, "ring_head", 10);
        CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "redis_connected")));
        CHECK_NUM(j, "entries_read", 15);
        CHECK_NUM(j, "entries_published", 10);
        CHECK_NUM(j, "duplicates_skipped", 17);
        CHECK_NUM(j, "redis_errors", 18);
        CHECK_NUM(j, "uptime_seconds", 0);
        ingest = cJSON_GetObjectItemCaseSensitive(j, "ingest");
        CHECK(cJSON_IsObject(ingest));
        CHECK_NUM(ingest, "pid", 4242);
        CHECK_NUM(ingest, "restarts", 19);

        workers = cJSON_GetObjectItemCaseSensitive(j, "workers");
        CHECK(cJSON_IsArray(workers));
        CHECK_INT(cJSON_GetArraySize(workers), 2);
        w = cJSON_GetArrayItem(workers, 0);
        /* Workers are numbered from 1, as in the logs and process names. */
        CHECK_NUM(w, "worker", 1);
        CHECK_NUM(w, "pid", 101);
        CHECK_NUM(w, "active_clients", 3);
        CHECK_NUM(w, "total_connections", 10);
        CHECK_NUM(w, "total_messages", 1000);
        CHECK_NUM(w, "dropped_messages", 7);
        CHECK_NUM(w, "slow_disconnects", 1);
        CHECK_NUM(w, "ring_lag", 3);
        CHECK_NUM(w, "ring_missed", 2);
        CHECK_NUM(w, "restarts", 1);
        w = cJSON_GetArrayItem(workers, 1);
        CHECK_NUM(w, "worker", 2);
        CHECK_NUM(w, "pid", 102);
        CHECK_NUM(w, "active_clients", 2);
        CHECK_NUM(w, "total_connections", 20);
        CHECK_NUM(w, "total_messages", 2000);
        CHECK_NUM(w, "dropped_messages", 8);
        CHECK_NUM(w, "slow_disconnects", 2);
        CHECK_NUM(w, "ring_lag", 6);
        CHECK_NUM(w, "ring_missed", 3);
        CHECK_NUM(w, "restarts", 0);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    shm_destroy(s);
}

static double
json_usage(struct shm *s)
{
    struct metrics_buf b = {0};
    cJSON *j;
    double v = -1;

    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "broadcast_usage")))
        v = cJSON_GetObjectItemCaseSensitive(j, "broadcast_usage")->valuedouble;
    cJSON_Delete(j);
    metrics_buf_free(&b);
    return v;
}

static void
test_json_usage_counts_live_workers_only(void)
{
    struct shm *s = busy_region();

    CHECK(json_usage(s) == 6);
    /* Worker 2 stops listening (shutting down): worker 1 is the slowest. */
    SET(s->workers[1].listening, 0);
    CHECK(json_usage(s) == 3);
    SET(s->workers[1].listening, 1);
    /* Worker 2 dead (pid 0): its stale cursor must not count. */
    SET(s->workers[1].pid, 0);
    CHECK(json_usage(s) == 3);
    /* Nobody reading: nothing is waiting for a reader. */
    SET(s->workers[0].pid, 0);
    CHECK(json_usage(s) == 0);
    /* Both caught up. */
    live_worker(s, 0, 101, 10);
    live_worker(s, 1, 102, 10);
    CHECK(json_usage(s) == 0);
    /* More frames: usage follows the head. */
    publish(s, 25);
    CHECK(json_usage(s) == 25);
    shm_destroy(s);
}

static void
test_json_fresh_region(void)
{
    struct shm *s = region(3);
    struct metrics_buf b = {0};
    cJSON *j;

    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        CHECK_NUM(j, "active_clients", 0);
        CHECK_NUM(j, "broadcast_capacity", 1024);
        CHECK_NUM(j, "broadcast_usage", 0);
        CHECK_NUM(j, "ring_head", 0);
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "redis_connected")));
        CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(j, "workers")), 3);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_json_many_workers(void)
{
    /* 64 workers make a body several times the first buffer size. */
    struct shm *s = region(SHM_MAX_WORKERS);
    struct metrics_buf b = {0};
    const cJSON *workers;
    cJSON *j;
    uint64_t sum = 0;

    publish(s, 3);
    for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
        live_worker(s, i, (int32_t)(1000 + i), i % 5);
        SET(s->workers[i].active_clients, 100000 + i);
        SET(s->workers[i].total_messages, 1000000000000ULL + i);
        sum += 100000 + i;
    }
    CHECK_INT(metrics_json(s, &b), 0);
    CHECK(b.len > 8192);
    j = parse_body(&b);
    if (j != NULL) {
        CHECK_NUM(j, "active_clients", sum);
        workers = cJSON_GetObjectItemCaseSensitive(j, "workers");
        CHECK_INT(cJSON_GetArraySize(workers), SHM_MAX_WORKERS);
        for (int i = 0; i < cJSON_GetArraySize(workers); i++) {
            const cJSON *w = cJSON_GetArrayItem(workers, i);
            CHECK_NUM(w, "worker", i + 1);
            CHECK_NUM(w, "pid", 1000 + i);
            CHECK_NUM(w, "active_clients", 100000 + i);
            CHECK_NUM(w, "total_messages", 1000000000000ULL + (unsigned)i);
            /* A cursor past the head (3) shows as no lag, not a wrap-around. */
            CHECK_NUM(w, "ring_lag", i % 5 < 3 ? 3 - i % 5 : 0);
        }
        CHECK_NUM(j, "broadcast_usage", 3);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_json_uptime(void)
{
    struct shm *s = region(1);
    struct metrics_buf b = {0};
    cJSON *j;

    s->hdr.started_ms = time_now_ms() - 3725500;
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "uptime_seconds");
        CHECK(cJSON_IsNumber(u) && u->valuedouble >= 3725 && u->valuedouble <= 3727);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_json_uptime_clock_stepped_back(void)
{
    /* started_ms is wall-clock time; if the clock is stepped back after the
     * start (NTP at boot, an operator), now - started is negative and must
     * not print as an unsigned wrap-around of about 584 million years. */
    struct shm *s = region(1);
    struct metrics_buf b = {0};
    cJSON *j;

    s->hdr.started_ms = time_now_ms() + 60000;
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(j, "uptime_seconds");
        if (!cJSON_IsNumber(u) || u->valuedouble < 0 || u->valuedouble > 86400) {
            printf("#   uptime_seconds is %.17g\n", cJSON_IsNumber(u) ? u->valuedouble : -1.0);
            test_failed_checks++;
        }
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

/* ---- /metrics as Prometheus text ----------------------------------------- */

static int
has_line(const char *body, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = body; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (len == n && memcmp(p, line, n) == 0)
            return 1;
        p = nl ? nl + 1 : NULL;
    }
    return 0;
}

#define CHECK_LINE(body, line)                                                                     \
    do {                                                                                           \
        if (!has_line(body, line)) {                                                               \
            printf("#   %s:%d: no line \"%s\"\n", __FILE__, __LINE__, line);                       \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

/*
 * The text exposition format, checked line by line: comments are "# HELP
 * name text" or "# TYPE name gauge|counter", each family typed once and
 * before its samples, samples are "name{labels} value" with an integer
 * value, and the body ends with a newline.  Returns the number of samples.
 */
static int
check_exposition(const char *body)
{
    char typed[64][96];
    int ntyped = 0, samples = 0;
    const char *p = body;

    CHECK(body[0] != '\0' && body[strlen(body) - 1] == '\n');
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        char line[512], name[96];
        size_t len = nl ? (size_t)(nl - p) : strlen(p);

        if (len >= sizeof(line)) {
            printf("#   line too long\n");
            test_failed_checks++;
            return samples;
        }
        memcpy(line, p, len);
        line[len] = '\0';
        p = nl ? nl + 1 : p + len;

        if (strncmp(line, "# HELP ", 7) == 0) {
            if (sscanf(line, "# HELP %95s", name) != 1 || strchr(line + 7, ' ') == NULL) {
                printf("#   bad HELP line: %s\n", line);
                test_failed_checks++;
            }
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];
            if (sscanf(line, "# TYPE %95s %31s", name, type) != 2 ||
                (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0)) {
                printf("#   bad TYPE line: %s\n", line);
                test_failed_checks++;
                continue;
            }
            for (int i = 0; i < ntyped; i++) {
                if (strcmp(typed[i], name) == 0) {
                    printf("#   %s typed twice\n", name);
                    test_failed_checks++;
                }
            }
            if (ntyped < 64)
                snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
            continue;
        }
        /* A sample. */
        size_t nlen = strcspn(line, "{ ");
        const char *value;
        char *end;
        int known = 0;

        if (nlen == 0 || nlen >= sizeof(name) || strncmp(line, "ws_broadcaster_", 15) != 0) {
            printf("#   bad sample line: %s\n", line);
            test_failed_checks++;
            continue;
        }
        memcpy(name, line, nlen);
        name[nlen] = '\0';
        for (int i = 0; i < ntyped; i++)
            known |= strcmp(typed[i], name) == 0;
        if (!known) {
            printf("#   sample before its TYPE: %s\n", line);
            test_failed_checks++;
        }
        value = strrchr(line, ' ');
        if (value == NULL || value[1] == '\0' || (strtoull(value + 1, &end, 10), *end != '\0')) {
            printf("#   bad value: %s\n", line);
            test_failed_checks++;
        }
        if (line[nlen] == '{' && strstr(line, "} ") == NULL) {
            printf("#   bad labels: %s\n", line);
            test_failed_checks++;
        }
        samples++;
    }
    return samples;
}

static void
test_prometheus_values(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};

    CHECK_INT(metrics_prometheus(s, &b), 0);
    check_buf(&b);
    if (b.data != NULL) {
        const char *t = b.data;
        /* 18 top-level figures and 2 of the ingest, then 9 per worker. */
        /* the top-level figures and the ingest's, 11 per worker, then the
         * 14 of the snapshot table and the consistent board */
        CHECK_INT(check_exposition(t), 28 + 11 * 2 + 14);
        CHECK_LINE(t, "# TYPE ws_broadcaster_active_clients gauge");
        CHECK_LINE(t, "ws_broadcaster_active_clients 5");
        CHECK_LINE(t, "# TYPE ws_broadcaster_total_connections counter");
        CHECK_LINE(t, "ws_broadcaster_total_connections 330");
        CHECK_LINE(t, "# TYPE ws_broadcaster_total_messages counter");
        CHECK_LINE(t, "ws_broadcaster_total_messages 33000");
        CHECK_LINE(t, "# TYPE ws_broadcaster_broadcast_capacity gauge");
        CHECK_LINE(t, "ws_broadcaster_broadcast_capacity 1024");
        CHECK_LINE(t, "# TYPE ws_broadcaster_broadcast_usage gauge");
        CHECK_LINE(t, "ws_broadcaster_broadcast_usage 6");
        CHECK_LINE(t, "# TYPE ws_broadcaster_dropped_messages counter");
        CHECK_LINE(t, "ws_broadcaster_dropped_messages 55");
        CHECK_LINE(t, "ws_broadcaster_invalid_entries 16");
        CHECK_LINE(t, "ws_broadcaster_slow_disconnects 8");
        CHECK_LINE(t, "ws_broadcaster_ring_missed 16");
        CHECK_LINE(t, "# TYPE ws_broadcaster_invalid_frames counter");
        CHECK_LINE(t, "ws_broadcaster_invalid_frames 22");
        CHECK_LINE(t, "ws_broadcaster_client_errors 27");
        CHECK_LINE(t, "# TYPE ws_broadcaster_redis_connected gauge");
        CHECK_LINE(t, "ws_broadcaster_redis_connected 1");
        CHECK_LINE(t, "ws_broadcaster_entries_read 15");
        CHECK_LINE(t, "ws_broadcaster_entries_published 10");
        CHECK_LINE(t, "ws_broadcaster_ring_head 10");
        CHECK_LINE(t, "# TYPE ws_broadcaster_duplicates_skipped counter");
        CHECK_LINE(t, "ws_broadcaster_duplicates_skipped 17");
        CHECK_LINE(t, "# TYPE ws_broadcaster_redis_errors counter");
        CHECK_LINE(t, "ws_broadcaster_redis_errors 18");
        CHECK_LINE(t, "# TYPE ws_broadcaster_uptime_seconds gauge");
        CHECK_LINE(t, "ws_broadcaster_uptime_seconds 0");
        CHECK_LINE(t, "# TYPE ws_broadcaster_ingest_pid gauge");
        CHECK_LINE(t, "ws_broadcaster_ingest_pid 4242");
        CHECK_LINE(t, "# TYPE ws_broadcaster_ingest_restarts counter");
        CHECK_LINE(t, "ws_broadcaster_ingest_restarts 19");
        CHECK_LINE(t, "# TYPE ws_broadcaster_worker_pid gauge");
        CHECK_LINE(t, "ws_broadcaster_worker_pid{worker=\"1\"} 101");
        CHECK_LINE(t, "ws_broadcaster_worker_pid{worker=\"2\"} 102");
        CHECK_LINE(t, "ws_broadcaster_worker_restarts{worker=\"1\"} 1");
        CHECK_LINE(t, "# TYPE ws_broadcaster_worker_active_clients gauge");
        CHECK_LINE(t, "ws_broadcaster_worker_active_clients{worker=\"1\"} 3");
        CHECK_LINE(t, "ws_broadcaster_worker_active_clients{worker=\"2\"} 2");
        CHECK_LINE(t, "# TYPE ws_broadcaster_worker_total_messages counter");
        CHECK_LINE(t, "ws_broadcaster_worker_total_messages{worker=\"1\"} 1000");
        CHECK_LINE(t, "ws_broadcaster_worker_total_messages{worker=\"2\"} 2000");
        CHECK_LINE(t, "# TYPE ws_broadcaster_worker_ring_lag gauge");
        CHECK_LINE(t, "ws_broadcaster_worker_ring_lag{worker=\"1\"} 3");
        CHECK_LINE(t, "ws_broadcaster_worker_ring_lag{worker=\"2\"} 6");
        CHECK(!has_line(t, "ws_broadcaster_worker_active_clients{worker=\"0\"} 3"));
        CHECK(!has_line(t, "ws_broadcaster_worker_active_clients{worker=\"3\"} 0"));
    }
    metrics_buf_free(&b);

    /* Redis down shows as 0. */
    SET(s->ingest.redis_up, 0);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL)
        CHECK_LINE(b.data, "ws_broadcaster_redis_connected 0");
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_prometheus_uptime(void)
{
    struct shm *s = region(1);
    struct metrics_buf b = {0};
    const char *p;

    s->hdr.started_ms = time_now_ms() - 3725500;
    CHECK_INT(metrics_prometheus(s, &b), 0);
    p = b.data ? strstr(b.data, "\nws_broadcaster_uptime_seconds ") : NULL;
    CHECK(p != NULL);
    if (p != NULL) {
        unsigned long long v = strtoull(p + strlen("\nws_broadcaster_uptime_seconds "), NULL, 10);
        CHECK(v >= 3725 && v <= 3727);
    }
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_prometheus_many_workers(void)
{
    struct shm *s = region(SHM_MAX_WORKERS);
    struct metrics_buf b = {0};
    char line[128];

    publish(s, 3);
    for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
        live_worker(s, i, (int32_t)(1000 + i), i % 5);
        SET(s->workers[i].active_clients, i * 10);
    }
    CHECK_INT(metrics_prometheus(s, &b), 0);
    check_buf(&b);
    if (b.data != NULL) {
        CHECK_INT(check_exposition(b.data), 28 + 11 * SHM_MAX_WORKERS + 14);
        for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
            snprintf(line, sizeof(line), "ws_broadcaster_worker_active_clients{worker=\"%u\"} %u",
                     i + 1, i * 10);
            CHECK_LINE(b.data, line);
            /* A cursor past the head (3) shows as no lag, not a wrap-around. */
            snprintf(line, sizeof(line), "ws_broadcaster_worker_ring_lag{worker=\"%u\"} %u", i + 1,
                     i % 5 < 3 ? 3 - i % 5 : 0);
            CHECK_LINE(b.data, line);
        }
        /* The slowest cursor is 0. */
        CHECK_LINE(b.data, "ws_broadcaster_broadcast_usage 3");
    }
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_redis_connected_needs_live_ingest(void)
{
    /* A dead ingest cannot clear its redis_up; the supervisor only zeroes
     * its pid.  Every reader must see it as down all the same. */
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    cJSON *j;

    SET(s->ingest.pid, 0);
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL)
        CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "redis_connected")));
    cJSON_Delete(j);
    metrics_buf_free(&b);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL)
        CHECK_LINE(b.data, "ws_broadcaster_redis_connected 0");
    metrics_buf_free(&b);
    check_health_at(__LINE__, s, 503, "degraded", 5);
    shm_destroy(s);
}

/* ---- JSON and Prometheus: the same figures ---------------------------------- */

struct prom_sample {
    char name[96];
    int worker; /* the worker="n" label, 0 without labels */
    double value;
    int seen; /* matched by a JSON figure */
};

/* The samples of a Prometheus body whose form check_exposition has
 * checked; a label other than worker="n" reads as worker -1.  Returns the
 * count. */
static int
prom_samples(const char *body, struct prom_sample *out, int max)
{
    int n = 0;

    for (const char *p = body; *p != '\0';) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        size_t nlen = strcspn(p, "{ \n");

        if (p[0] != '#' && n < max && nlen < sizeof(out[n].name)) {
            const char *sp = memchr(p, ' ', len);
            memcpy(out[n].name, p, nlen);
            out[n].name[nlen] = '\0';
            out[n].worker = 0;
            if (p[nlen] == '{' && sscanf(p + nlen, "{worker=\"%d\"}", &out[n].worker) != 1)
                out[n].worker = -1;
            out[n].value = sp ? strtod(sp + 1, NULL) : -1;
            out[n].seen = 0;
            n++;
        }
        p = nl ? nl + 1 : p + len;
    }
    return n;
}

/* The sample name{worker} must exist, be unmatched so far, and hold v. */
static void
match_sample(struct prom_sample *smp, int n, const char *name, int worker, double v)
{
    for (int i = 0; i < n; i++) {
        if (strcmp(smp[i].name, name) != 0 || smp[i].worker != worker)
            continue;
        if (smp[i].seen) {
            printf("#   %s{worker=%d} matched twice\n", name, worker);
            test_failed_checks++;
        }
        smp[i].seen = 1;
        if (smp[i].value != v) {
            printf("#   %s{worker=%d} is %.17g, JSON says %.17g\n", name, worker, smp[i].value, v);
            test_failed_checks++;
        }
        return;
    }
    printf("#   JSON figure has no sample %s{worker=%d}\n", name, worker);
    test_failed_checks++;
}

/* Every figure of a JSON object: name prefix+key, a number or a boolean. */
static void
match_object(struct prom_sample *smp, int n, const cJSON *obj, const char *prefix, int worker)
{
    const cJSON *item;

    cJSON_ArrayForEach(item, obj)
    {
        char name[128];
        if (worker > 0 && strcmp(item->string, "worker") == 0)
            continue; /* the label */
        snprintf(name, sizeof(name), "ws_broadcaster_%s%s", prefix, item->string);
        if (cJSON_IsBool(item))
            match_sample(smp, n, name, worker, cJSON_IsTrue(item) ? 1 : 0);
        else if (cJSON_IsNumber(item))
            match_sample(smp, n, name, worker, item->valuedouble);
        else if (worker == 0 && prefix[0] == '\0' && cJSON_IsObject(item)) {
            char sub[64];
            snprintf(sub, sizeof(sub), "%s_", item->string);
            match_object(smp, n, item, sub, 0);
        } else if (worker == 0 && prefix[0] == '\0' && cJSON_IsArray(item) &&
                   strcmp(item->string, "workers") == 0) {
            const cJSON *w;
            cJSON_ArrayForEach(w, item)
            {
                const cJSON *num = cJSON_GetObjectItemCaseSensitive(w, "worker");
                CHECK(cJSON_IsNumber(num) && num->valuedouble >= 1);
                if (cJSON_IsNumber(num))
                    match_object(smp, n, w, "worker_", (int)num->valuedouble);
            }
        } else {
            printf("#   JSON %s%s is neither a figure nor a known group\n", prefix, item->string);
            test_failed_checks++;
        }
    }
}

static void
check_formats_agree(struct shm *s)
{
    struct metrics_buf jb = {0}, pb = {0};
    struct prom_sample smp[1024];
    cJSON *j;
    int n;

    CHECK_INT(metrics_json(s, &jb), 0);
    CHECK_INT(metrics_prometheus(s, &pb), 0);
    j = parse_body(&jb);
    check_buf(&pb);
    if (j != NULL && pb.data != NULL) {
        check_exposition(pb.data);
        n = prom_samples(pb.data, smp, 1024);
        CHECK(n > 0 && n < 1024);
        /* JSON -> Prometheus */
        match_object(smp, n, j, "", 0);
        /* Prometheus -> JSON: nothing left over, and every family described. */
        for (int i = 0; i < n; i++) {
            char help[sizeof(smp[i].name) + 16];
            if (!smp[i].seen) {
                printf("#   sample %s{worker=%d} is not in the JSON\n", smp[i].name, smp[i].worker);
                test_failed_checks++;
            }
            snprintf(help, sizeof(help), "# HELP %.95s ", smp[i].name);
            if (strstr(pb.data, help) == NULL) {
                printf("#   no HELP line for %s\n", smp[i].name);
                test_failed_checks++;
            }
        }
    }
    cJSON_Delete(j);
    metrics_buf_free(&jb);
    metrics_buf_free(&pb);
}

static void
test_formats_agree(void)
{
    /* Every JSON figure is a Prometheus sample of the same value and the
     * other way round, top-level, in "ingest" and per worker.  A start in
     * the future pins uptime_seconds at 0 in both bodies, rendered a moment
     * apart. */
    struct shm *s = busy_region();

    s->hdr.started_ms = time_now_ms() + 3600000;
    check_formats_agree(s);
    /* The ingest dead, Redis's flag stale: both say disconnected. */
    SET(s->ingest.pid, 0);
    check_formats_agree(s);
    shm_destroy(s);

    s = region(SHM_MAX_WORKERS);
    s->hdr.started_ms = time_now_ms() + 3600000;
    for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
        live_worker(s, i, (int32_t)(1000 + i), 0);
        SET(s->workers[i].total_messages, 7 * i);
    }
    check_formats_agree(s);
    shm_destroy(s);
}

static void
test_wants_prometheus(void)
{
    static const struct {
        const char *accept, *query;
        int want;
    } cases[] = {
        {"text/plain", NULL, 1},
        {"text/plain; version=0.0.4", NULL, 1},
        {"TEXT/PLAIN", NULL, 1},
        {"application/openmetrics-text", NULL, 1},
        /* What Prometheus 2.x sends when it scrapes. */
        {"application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
         "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
         NULL, 1},
        {"application/json", NULL, 0},
        {"text/plain, application/json", NULL, 0},
        /* Browsers and curl: JSON, the seed's format. */
        {"text/html,application/xhtml+xml,*/*", NULL, 0},
        {"text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8",
         NULL, 0},
        {"*/*", NULL, 0},
        {"", NULL, 0},
        {NULL, NULL, 0},
        /* The query overrides the header, both ways. */
        {NULL, "format=prometheus", 1},
        {"application/json", "format=prometheus", 1},
        {"text/plain", "format=json", 0},
        {"application/openmetrics-text", "format=json", 0},
        {"text/plain", "x=1&format=json", 0},
        {NULL, "a=b&format=prometheus", 1},
        {"text/plain", "", 1},
        {NULL, "format=json", 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = metrics_wants_prometheus(cases[i].accept, cases[i].query);
        if (got != cases[i].want) {
            printf("#   Accept %s, query %s: got %d, want %d\n",
                   cases[i].accept ? cases[i].accept : "(none)",
                   cases[i].query ? cases[i].query : "(none)", got, cases[i].want);
            test_failed_checks++;
        }
    }
}

static void
test_buf_free_empty(void)
{
    struct metrics_buf b = {0};

    metrics_buf_free(&b);
    CHECK(b.data == NULL);
    CHECK_INT(b.len, 0);
    CHECK_INT(b.cap, 0);
}

TEST_MAIN(TEST(test_health_healthy), TEST(test_health_degraded), TEST(test_health_fresh_region),
          TEST(test_health_after_worker_retired), TEST(test_json_fields),
          TEST(test_json_usage_counts_live_workers_only), TEST(test_json_fresh_region),
          TEST(test_json_many_workers), TEST(test_json_uptime),
          TEST(test_json_uptime_clock_stepped_back), TEST(test_prometheus_values),
          TEST(test_prometheus_many_workers), TEST(test_prometheus_uptime),
          TEST(test_redis_connected_needs_live_ingest), TEST(test_formats_agree),
          TEST(test_wants_prometheus), TEST(test_buf_free_empty))
