/*
 * test_metrics: the /health and /metrics bodies.  Each case builds a real
 * shared-memory region with shm_create, writes counters where the ingest,
 * the workers and the supervisor would, moves the ring head with
 * ring_publish, and reads the bodies back: JSON through cJSON, Prometheus
 * text line by line.  Every counter gets a distinct value so a field that
 * reads the wrong counter cannot pass.  The process figures come from a
 * fake reader (figures_set_proc_reader), so they are known exactly.
 *
 * The Prometheus text is held to the conventions (counters end in _total
 * and nothing else does, one TYPE and HELP per family before its samples,
 * histogram buckets cumulative up to +Inf == _count); that every JSON
 * figure is a sample and the reverse is checked on the running service
 * (tests/integration/test_metrics_exposition.py), and promtool there too.
 */
#include "worker/figures.h"
#include "worker/metrics.h"
#include "common/timeutil.h"

#include <cjson/cJSON.h>
#include <stdint.h>

#include "test.h"

#define SET(field, v) atomic_store_explicit(&(field), (v), memory_order_relaxed)

/* The process figures: derived from the pid, so each reads back known;
 * pid 999 cannot be read (a process that just died). */
static int
fake_proc(int pid, struct procstat *out)
{
    if (pid == 999)
        return -1;
    out->cpu_ms = (uint64_t)pid * 10 + 5;
    out->rss_bytes = (uint64_t)pid * 4096;
    out->open_fds = (uint64_t)pid % 100;
    out->max_fds = 1024;
    out->start_ms = 1700000000000ULL + (uint64_t)pid;
    return 0;
}

static struct shm *
region(uint32_t nworkers)
{
    struct shm *s = shm_create(nworkers, 1024, 65536, ADDRTAB_MIN_SLOTS);

    figures_set_proc_reader(fake_proc);
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
    struct ring_frame_meta meta = {0, 1762518896123ULL, 0, 0, 0};

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
 * Two live workers, every counter distinct:
 *   worker 1: pid 101, clients 3, conns 10, msgs 1000, dropped 7, slow 1
 *             (keys), next 7, missed 2, invalid 4, errors 5, restarts 1
 *   worker 2: pid 102, clients 2, conns 20, msgs 2000, dropped 8, slow 2
 *             (lag), next 4, missed 3, invalid 6, errors 9, refused 14
 *   supervisor pid 100, ingest pid 4242
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
    SET(w1->slow_keys, 1);
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
    SET(w2->slow_lag, 2);
    SET(w2->ring_missed, 3);
    SET(w2->invalid_frames, 6);
    SET(w2->client_errors, 9);
    SET(w2->refused_connections, 14);
    s->hdr.supervisor_pid = 100;
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

static const cJSON *
obj_at(const cJSON *obj, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(obj, name);
}

static void
test_json_fields(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    const cJSON *ingest, *sup, *workers, *w, *snap;
    cJSON *j;

    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        /* The seed's five, first. */
        CHECK_STR(j->child->string, "active_clients");
        CHECK_NUM(j, "active_clients", 5);
        CHECK_NUM(j, "total_connections", 10 + 20);
        CHECK_NUM(j, "total_messages", 1000 + 2000);
        CHECK_NUM(j, "broadcast_capacity", 1024);
        /* head 10, slowest live worker at 4. */
        CHECK_NUM(j, "broadcast_usage", 6);
        CHECK_NUM(j, "dropped_messages", 7 + 8);
        CHECK_NUM(j, "invalid_entries", 16);
        /* the sum of the bounds' counts */
        CHECK_NUM(j, "slow_disconnects", 1 + 2);
        CHECK_NUM(j, "slow_disconnects_keys", 1);
        CHECK_NUM(j, "slow_disconnects_lag", 2);
        CHECK_NUM(j, "slow_disconnects_bytes", 0);
        CHECK_NUM(j, "ring_missed", 2 + 3);
        CHECK_NUM(j, "invalid_frames", 4 + 6);
        CHECK_NUM(j, "client_errors", 5 + 9);
        CHECK_NUM(j, "ring_head", 10);
        CHECK(cJSON_IsTrue(obj_at(j, "redis_connected")));
        CHECK_NUM(j, "entries_read", 15);
        CHECK_NUM(j, "entries_published", 10);
        CHECK_NUM(j, "duplicates_skipped", 17);
        CHECK_NUM(j, "redis_errors", 18);
        CHECK_NUM(j, "uptime_seconds", 0);
        CHECK_NUM(j, "refused_connections", 14);
        CHECK_NUM(j, "ping_timeouts", 0);
        CHECK_STR(cJSON_GetStringValue(obj_at(j, "version")), WSB_VERSION);
        CHECK(cJSON_IsObject(obj_at(j, "closes")));
        CHECK_NUM(obj_at(j, "closes"), "1008", 0);
        CHECK(cJSON_IsObject(obj_at(j, "upgrades_refused")));
        CHECK_NUM(obj_at(j, "upgrades_refused"), "origin", 0);
        ingest = obj_at(j, "ingest");
        CHECK(cJSON_IsObject(ingest));
        CHECK_NUM(ingest, "pid", 4242);
        CHECK_NUM(ingest, "restarts", 19);
        CHECK_NUM(ingest, "cpu_seconds_total", 42.425);
        CHECK_NUM(ingest, "resident_memory_bytes", 4242.0 * 4096);
        CHECK_NUM(ingest, "open_fds", 42);
        CHECK_NUM(ingest, "max_fds", 1024);
        CHECK_NUM(ingest, "start_time_seconds", 1700000004.242);
        CHECK(cJSON_IsObject(obj_at(ingest, "latency_seconds")));
        sup = obj_at(j, "supervisor");
        CHECK(cJSON_IsObject(sup));
        CHECK_NUM(sup, "pid", 100);
        CHECK_NUM(sup, "cpu_seconds_total", 1.005);
        CHECK(obj_at(sup, "restarts") == NULL); /* nothing restarts it */
        snap = obj_at(j, "snapshot");
        CHECK(cJSON_IsObject(snap));
        CHECK_NUM(snap, "sent", 0);
        CHECK_NUM(snap, "resumes_ok", 0);

        workers = obj_at(j, "workers");
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
        CHECK_NUM(w, "slow_disconnects_keys", 1);
        CHECK_NUM(w, "ring_lag", 3);
        CHECK_NUM(w, "ring_missed", 2);
        CHECK_NUM(w, "restarts", 1);
        CHECK_NUM(w, "cpu_seconds_total", 1.015);
        CHECK(cJSON_IsObject(obj_at(w, "snapshot")));
        CHECK(cJSON_IsObject(obj_at(w, "closes")));
        CHECK(cJSON_IsObject(obj_at(w, "delivery_latency_seconds")));
        w = cJSON_GetArrayItem(workers, 1);
        CHECK_NUM(w, "worker", 2);
        CHECK_NUM(w, "pid", 102);
        CHECK_NUM(w, "active_clients", 2);
        CHECK_NUM(w, "total_connections", 20);
        CHECK_NUM(w, "total_messages", 2000);
        CHECK_NUM(w, "dropped_messages", 8);
        CHECK_NUM(w, "slow_disconnects", 2);
        CHECK_NUM(w, "slow_disconnects_lag", 2);
        CHECK_NUM(w, "ring_lag", 6);
        CHECK_NUM(w, "ring_missed", 3);
        CHECK_NUM(w, "restarts", 0);
        CHECK_NUM(w, "refused_connections", 14);
        /* No stream is read: none listed. */
        CHECK_INT(cJSON_GetArraySize(obj_at(j, "streams")), 0);
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

/* Lines of body that start with prefix. */
static int
count_lines(const char *body, const char *prefix)
{
    size_t n = strlen(prefix);
    int count = 0;

    for (const char *p = body; p != NULL && *p != '\0';) {
        const char *nl = strchr(p, '\n');
        if (strncmp(p, prefix, n) == 0)
            count++;
        p = nl ? nl + 1 : NULL;
    }
    return count;
}

static int
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* Family i (typed[i], of types[i]) is the family of the sample `name`: the
 * same name, or for a histogram the name less _bucket, _sum or _count. */
static int
family_of(const char *name, const char *family, const char *type)
{
    static const char *const sfx[] = {"_bucket", "_sum", "_count"};
    size_t fl = strlen(family);

    if (strcmp(type, "histogram") != 0)
        return strcmp(name, family) == 0;
    for (size_t i = 0; i < 3; i++) {
        if (strncmp(name, family, fl) == 0 && strcmp(name + fl, sfx[i]) == 0)
            return 1;
    }
    return 0;
}

/*
 * The text exposition format and Prometheus's naming conventions, checked
 * line by line: "# HELP name text" and "# TYPE name gauge|counter|histogram"
 * once per family, before its samples; counters end in _total and no other
 * family does; a histogram's samples are its _bucket (with le), _sum and
 * _count; every name is ws_broadcaster_* or process_*; values are plain
 * decimals; the body ends with a newline.  Returns the number of samples.
 */
static int
check_exposition(const char *body)
{
    static char typed[128][96], types[128][32];
    int ntyped = 0, nhelp = 0, samples = 0;
    const char *p = body;

    CHECK(body[0] != '\0' && body[strlen(body) - 1] == '\n');
    while (*p != '\0') {
        const char *nl = strchr(p, '\n');
        char line[512], name[96];
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        int known = 0;

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
            nhelp++;
            continue;
        }
        if (strncmp(line, "# TYPE ", 7) == 0) {
            char type[32];
            if (sscanf(line, "# TYPE %95s %31s", name, type) != 2 ||
                (strcmp(type, "gauge") != 0 && strcmp(type, "counter") != 0 &&
                 strcmp(type, "histogram") != 0)) {
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
            if ((strcmp(type, "counter") == 0) != ends_with(name, "_total")) {
                printf("#   %s: a %s; only counters end in _total, and all do\n", name, type);
                test_failed_checks++;
            }
            if (strncmp(name, "ws_broadcaster_", 15) != 0 && strncmp(name, "process_", 8) != 0) {
                printf("#   %s: neither ws_broadcaster_ nor process_\n", name);
                test_failed_checks++;
            }
            if (ntyped < 128) {
                snprintf(typed[ntyped], sizeof(typed[0]), "%s", name);
                snprintf(types[ntyped++], sizeof(types[0]), "%s", type);
            }
            continue;
        }
        /* A sample, after its family's TYPE line. */
        size_t nlen = strcspn(line, "{ ");
        const char *value;
        char *end;

        if (nlen == 0 || nlen >= sizeof(name)) {
            printf("#   bad sample line: %s\n", line);
            test_failed_checks++;
            continue;
        }
        memcpy(name, line, nlen);
        name[nlen] = '\0';
        for (int i = 0; i < ntyped && !known; i++)
            known = family_of(name, typed[i], types[i]);
        if (!known) {
            printf("#   sample before its TYPE: %s\n", line);
            test_failed_checks++;
        }
        if (ends_with(name, "_bucket") && strstr(line, "le=\"") == NULL) {
            printf("#   bucket without le: %s\n", line);
            test_failed_checks++;
        }
        value = strrchr(line, ' ');
        if (value == NULL || value[1] == '\0' ||
            strspn(value + 1, "0123456789.") != strlen(value + 1) ||
            (strtod(value + 1, &end), *end != '\0')) {
            printf("#   bad value: %s\n", line);
            test_failed_checks++;
        }
        if (line[nlen] == '{' && strstr(line, "} ") == NULL) {
            printf("#   bad labels: %s\n", line);
            test_failed_checks++;
        }
        samples++;
    }
    if (nhelp != ntyped) {
        printf("#   %d HELP lines for %d families\n", nhelp, ntyped);
        test_failed_checks++;
    }
    return samples;
}

/* The value of the sample line that starts with prefix + ' ', or -1. */
static double
sample_value(const char *body, const char *prefix)
{
    char want[256];
    const char *p;

    snprintf(want, sizeof(want), "\n%s ", prefix);
    p = strstr(body, want);
    return p != NULL ? strtod(p + strlen(want), NULL) : -1;
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
        CHECK(check_exposition(t) > 100);
        /* Per-worker figures: one family, labelled; no aggregate beside it. */
        CHECK_LINE(t, "# TYPE ws_broadcaster_active_clients gauge");
        CHECK_LINE(t, "ws_broadcaster_active_clients{worker=\"1\"} 3");
        CHECK_LINE(t, "ws_broadcaster_active_clients{worker=\"2\"} 2");
        CHECK(!has_line(t, "ws_broadcaster_active_clients 5"));
        CHECK_INT(count_lines(t, "ws_broadcaster_worker_"), 0);
        CHECK_LINE(t, "# TYPE ws_broadcaster_connections_total counter");
        CHECK_LINE(t, "ws_broadcaster_connections_total{worker=\"1\"} 10");
        CHECK_LINE(t, "ws_broadcaster_connections_total{worker=\"2\"} 20");
        CHECK_LINE(t, "ws_broadcaster_messages_sent_total{worker=\"1\"} 1000");
        CHECK_LINE(t, "ws_broadcaster_messages_sent_total{worker=\"2\"} 2000");
        CHECK_LINE(t, "ws_broadcaster_messages_dropped_total{worker=\"2\"} 8");
        CHECK_LINE(t, "ws_broadcaster_ring_missed_frames_total{worker=\"1\"} 2");
        CHECK_LINE(t, "ws_broadcaster_invalid_frames_total{worker=\"2\"} 6");
        CHECK_LINE(t, "ws_broadcaster_client_errors_total{worker=\"2\"} 9");
        CHECK_LINE(t, "ws_broadcaster_connections_refused_total{worker=\"2\"} 14");
        CHECK_LINE(t, "ws_broadcaster_slow_disconnects_total{worker=\"1\",reason=\"keys\"} 1");
        CHECK_LINE(t, "ws_broadcaster_slow_disconnects_total{worker=\"1\",reason=\"lag\"} 0");
        CHECK_LINE(t, "ws_broadcaster_slow_disconnects_total{worker=\"2\",reason=\"lag\"} 2");
        CHECK_LINE(t,
                   "ws_broadcaster_slow_disconnects_total{worker=\"2\",reason=\"send_timeout\"} 0");
        CHECK_LINE(t, "# TYPE ws_broadcaster_ring_lag_frames gauge");
        CHECK_LINE(t, "ws_broadcaster_ring_lag_frames{worker=\"1\"} 3");
        CHECK_LINE(t, "ws_broadcaster_ring_lag_frames{worker=\"2\"} 6");
        CHECK(!has_line(t, "ws_broadcaster_active_clients{worker=\"0\"} 3"));
        CHECK(!has_line(t, "ws_broadcaster_active_clients{worker=\"3\"} 0"));
        /* Instance figures. */
        CHECK_LINE(t, "# TYPE ws_broadcaster_ring_capacity_frames gauge");
        CHECK_LINE(t, "ws_broadcaster_ring_capacity_frames 1024");
        CHECK_LINE(t, "ws_broadcaster_ring_usage_frames 6");
        CHECK_LINE(t, "ws_broadcaster_invalid_entries_total 16");
        CHECK_LINE(t, "# TYPE ws_broadcaster_ring_frames_total counter");
        CHECK_LINE(t, "ws_broadcaster_ring_frames_total 10");
        CHECK_LINE(t, "# TYPE ws_broadcaster_redis_connected gauge");
        CHECK_LINE(t, "ws_broadcaster_redis_connected 1");
        CHECK_LINE(t, "ws_broadcaster_entries_read_total 15");
        CHECK_LINE(t, "ws_broadcaster_entries_published_total 10");
        CHECK_LINE(t, "ws_broadcaster_duplicates_skipped_total 17");
        CHECK_LINE(t, "ws_broadcaster_redis_errors_total 18");
        CHECK_LINE(t, "# TYPE ws_broadcaster_uptime_seconds gauge");
        CHECK_LINE(t, "ws_broadcaster_uptime_seconds 0");
        CHECK_LINE(t, "ws_broadcaster_build_info{version=\"" WSB_VERSION "\"} 1");
        CHECK_LINE(t, "ws_broadcaster_snapshot_evictions_total{reason=\"ttl\"} 0");
        CHECK_LINE(t, "ws_broadcaster_resumes_total{worker=\"1\",result=\"ok\"} 0");
        /* Processes: one family per figure, by role (and worker). */
        CHECK_LINE(t, "# TYPE ws_broadcaster_pid gauge");
        CHECK_LINE(t, "ws_broadcaster_pid{role=\"supervisor\"} 100");
        CHECK_LINE(t, "ws_broadcaster_pid{role=\"ingest\"} 4242");
        CHECK_LINE(t, "ws_broadcaster_pid{role=\"worker\",worker=\"1\"} 101");
        CHECK_LINE(t, "ws_broadcaster_pid{role=\"worker\",worker=\"2\"} 102");
        CHECK_LINE(t, "# TYPE ws_broadcaster_restarts_total counter");
        CHECK_LINE(t, "ws_broadcaster_restarts_total{role=\"ingest\"} 19");
        CHECK_LINE(t, "ws_broadcaster_restarts_total{role=\"worker\",worker=\"1\"} 1");
        CHECK_LINE(t, "ws_broadcaster_restarts_total{role=\"worker\",worker=\"2\"} 0");
        CHECK_INT(count_lines(t, "ws_broadcaster_restarts_total{role=\"supervisor\"}"), 0);
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
    double v;

    s->hdr.started_ms = time_now_ms() - 3725500;
    CHECK_INT(metrics_prometheus(s, &b), 0);
    v = b.data != NULL ? sample_value(b.data, "ws_broadcaster_uptime_seconds") : -1;
    CHECK(v >= 3725 && v <= 3727);
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
    SET(s->ingest.pid, 7);
    for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
        live_worker(s, i, (int32_t)(1000 + i), i % 5);
        SET(s->workers[i].active_clients, i * 10);
    }
    CHECK_INT(metrics_prometheus(s, &b), 0);
    check_buf(&b);
    if (b.data != NULL) {
        CHECK(check_exposition(b.data) > 64 * 40);
        CHECK_INT(count_lines(b.data, "ws_broadcaster_active_clients{"), SHM_MAX_WORKERS);
        CHECK_INT(count_lines(b.data, "ws_broadcaster_closes_total{"),
                  SHM_MAX_WORKERS * SHM_CLOSE_SLOTS);
        CHECK_INT(count_lines(b.data, "ws_broadcaster_delivery_latency_seconds_bucket{"),
                  SHM_MAX_WORKERS * HIST_NBUCKETS);
        CHECK_INT(count_lines(b.data, "process_cpu_seconds_total{"), SHM_MAX_WORKERS + 2);
        for (uint32_t i = 0; i < SHM_MAX_WORKERS; i++) {
            snprintf(line, sizeof(line), "ws_broadcaster_active_clients{worker=\"%u\"} %u", i + 1,
                     i * 10);
            CHECK_LINE(b.data, line);
            /* A cursor past the head (3) shows as no lag, not a wrap-around. */
            snprintf(line, sizeof(line), "ws_broadcaster_ring_lag_frames{worker=\"%u\"} %u", i + 1,
                     i % 5 < 3 ? 3 - i % 5 : 0);
            CHECK_LINE(b.data, line);
        }
        /* The slowest cursor is 0. */
        CHECK_LINE(b.data, "ws_broadcaster_ring_usage_frames 3");
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
    if (j != NULL) {
        const cJSON *ingest = obj_at(j, "ingest");
        CHECK(cJSON_IsFalse(obj_at(j, "redis_connected")));
        /* Being restarted: its pid is 0, it has no process figures. */
        CHECK_NUM(ingest, "pid", 0);
        CHECK(obj_at(ingest, "cpu_seconds_total") == NULL);
        CHECK(obj_at(ingest, "open_fds") == NULL);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL) {
        CHECK_LINE(b.data, "ws_broadcaster_redis_connected 0");
        CHECK_LINE(b.data, "ws_broadcaster_pid{role=\"ingest\"} 0");
        CHECK_INT(count_lines(b.data, "process_open_fds{role=\"ingest\"}"), 0);
    }
    metrics_buf_free(&b);
    check_health_at(__LINE__, s, 503, "degraded", 5);
    shm_destroy(s);
}

/* ---- histograms, closes, streams, processes --------------------------------- */

static void
test_histograms(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    cJSON *j;

    /* Worker 1: 0.3 ms and 2 s; worker 2: 0.3 ms; the ingest: 4 ms, 90 s. */
    hist_observe(&s->workers[0].delivery_latency, 300);
    hist_observe(&s->workers[0].delivery_latency, 2000000);
    hist_observe(&s->workers[1].delivery_latency, 300);
    hist_observe(&s->ingest_latency, 4000);
    hist_observe(&s->ingest_latency, 90000000);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL) {
        const char *t = b.data;
        check_exposition(t);
        CHECK_LINE(t, "# TYPE ws_broadcaster_delivery_latency_seconds histogram");
        CHECK_LINE(t,
                   "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"1\",le=\"0.00025\"} 0");
        CHECK_LINE(t,
                   "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"1\",le=\"0.0005\"} 1");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"1\",le=\"1\"} 1");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"1\",le=\"2.5\"} 2");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"1\",le=\"+Inf\"} 2");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_sum{worker=\"1\"} 2.000300");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_count{worker=\"1\"} 2");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_bucket{worker=\"2\",le=\"+Inf\"} 1");
        CHECK_LINE(t, "ws_broadcaster_delivery_latency_seconds_count{worker=\"2\"} 1");
        CHECK_LINE(t, "# TYPE ws_broadcaster_ingest_latency_seconds histogram");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_bucket{le=\"0.0025\"} 0");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_bucket{le=\"0.005\"} 1");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_bucket{le=\"60\"} 1");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_bucket{le=\"+Inf\"} 2");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_sum 90.004000");
        CHECK_LINE(t, "ws_broadcaster_ingest_latency_seconds_count 2");
    }
    metrics_buf_free(&b);
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        /* At the top, the workers' histograms added up. */
        const cJSON *h = obj_at(j, "delivery_latency_seconds");
        const cJSON *w1 =
            obj_at(cJSON_GetArrayItem(obj_at(j, "workers"), 0), "delivery_latency_seconds");
        const cJSON *in = obj_at(obj_at(j, "ingest"), "latency_seconds");
        CHECK_NUM(h, "count", 3);
        CHECK_NUM(h, "sum", 2.0006);
        CHECK_NUM(obj_at(h, "buckets"), "0.0005", 2);
        CHECK_NUM(obj_at(h, "buckets"), "+Inf", 3);
        CHECK_INT(cJSON_GetArraySize(obj_at(h, "buckets")), HIST_NBUCKETS);
        CHECK_NUM(w1, "count", 2);
        CHECK_NUM(obj_at(w1, "buckets"), "2.5", 2);
        CHECK_NUM(in, "count", 2);
        CHECK_NUM(in, "sum", 90.004);
        CHECK_NUM(obj_at(in, "buckets"), "0.005", 1);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_closes_and_refusals(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    cJSON *j;

    SET(s->workers[0].closes[shm_close_slot(1008)], 3);
    SET(s->workers[1].closes[shm_close_slot(1008)], 4);
    SET(s->workers[1].closes[shm_close_slot(4001)], 1);
    SET(s->workers[1].closes[shm_close_slot(3999)], 6);
    SET(s->workers[0].upgrades_refused[SHM_REFUSED_ORIGIN], 2);
    SET(s->workers[1].upgrades_refused[SHM_REFUSED_MAX_CLIENTS_PER_IP], 5);
    SET(s->workers[1].ping_timeouts, 7);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL) {
        const char *t = b.data;
        CHECK_LINE(t, "ws_broadcaster_closes_total{worker=\"1\",code=\"1008\"} 3");
        CHECK_LINE(t, "ws_broadcaster_closes_total{worker=\"2\",code=\"1008\"} 4");
        CHECK_LINE(t, "ws_broadcaster_closes_total{worker=\"2\",code=\"4001\"} 1");
        CHECK_LINE(t, "ws_broadcaster_closes_total{worker=\"2\",code=\"other\"} 6");
        CHECK_LINE(t, "ws_broadcaster_closes_total{worker=\"1\",code=\"1001\"} 0");
        CHECK_LINE(t, "ws_broadcaster_upgrades_refused_total{worker=\"1\",reason=\"origin\"} 2");
        CHECK_LINE(t, "ws_broadcaster_upgrades_refused_total{worker=\"2\",reason="
                      "\"max_clients_per_ip\"} 5");
        CHECK_LINE(t, "ws_broadcaster_ping_timeouts_total{worker=\"2\"} 7");
    }
    metrics_buf_free(&b);
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        const cJSON *w2 = cJSON_GetArrayItem(obj_at(j, "workers"), 1);
        CHECK_NUM(obj_at(j, "closes"), "1008", 7);
        CHECK_NUM(obj_at(j, "closes"), "other", 6);
        CHECK_INT(cJSON_GetArraySize(obj_at(j, "closes")), SHM_CLOSE_SLOTS);
        CHECK_NUM(obj_at(w2, "closes"), "1008", 4);
        CHECK_NUM(obj_at(j, "upgrades_refused"), "origin", 2);
        CHECK_NUM(obj_at(j, "upgrades_refused"), "max_clients_per_ip", 5);
        CHECK_INT(cJSON_GetArraySize(obj_at(j, "upgrades_refused")), SHM_REFUSALS);
        CHECK_NUM(j, "ping_timeouts", 7);
        CHECK_NUM(w2, "ping_timeouts", 7);
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

/* A stream the ingest reads, at row `row`. */
static void
reading_stream(struct shm *s, int row, const char *name)
{
    CHECK_INT(shm_stream_index(s, name, NULL, 0), row);
    SET(s->streams[row].reading, 1);
}

static void
test_streams(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};
    uint64_t now = time_now_ms();
    cJSON *j;

    reading_stream(s, 0, "odds.normalized.basketball_nba");
    reading_stream(s, 1, "opportunities");
    reading_stream(s, 2, "odds.normalized.a\"b\\c");                    /* a name to escape */
    CHECK_INT(shm_stream_index(s, "odds.normalized.gone", NULL, 0), 3); /* not read now */
    /* nba: read 2.5 s ago, 12 entries waiting, answered just now. */
    SET(s->streams[0].entries_read, 40);
    SET(s->streams[0].read_ms, now - 2500);
    SET(s->streams[0].lag, 12);
    SET(s->streams[0].lag_known, 1);
    SET(s->streams[0].lag_at_ms, now);
    /* opportunities: nothing read; a lag Redis did not give. */
    SET(s->streams[1].lag, 3);
    SET(s->streams[1].lag_known, 0);
    SET(s->streams[1].lag_at_ms, now);
    /* the third: Redis's clock ahead of ours (age 0); an answer too old to
     * show. */
    SET(s->streams[2].read_ms, now + 2000);
    SET(s->streams[2].lag, 1);
    SET(s->streams[2].lag_known, 1);
    SET(s->streams[2].lag_at_ms, now - 60000);
    SET(s->streams[3].read_ms, now);
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL) {
        const char *t = b.data;
        double age;
        check_exposition(t);
        CHECK_LINE(t, "ws_broadcaster_stream_entries_read_total{stream=\"odds.normalized."
                      "basketball_nba\"} 40");
        CHECK_LINE(t,
                   "ws_broadcaster_stream_lag_entries{stream=\"odds.normalized.basketball_nba\"} "
                   "12");
        age = sample_value(t, "ws_broadcaster_stream_last_entry_age_seconds{stream=\"odds."
                              "normalized.basketball_nba\"}");
        CHECK(age >= 2.5 && age < 4);
        CHECK_LINE(t, "ws_broadcaster_stream_entries_read_total{stream=\"opportunities\"} 0");
        CHECK_INT(count_lines(t, "ws_broadcaster_stream_lag_entries{stream=\"opportunities\"}"), 0);
        CHECK_INT(count_lines(t, "ws_broadcaster_stream_last_entry_age_seconds{stream=\"opport"),
                  0);
        CHECK_INT(
            count_lines(t, "ws_broadcaster_stream_last_entry_timestamp_seconds{stream=\"opport"),
            0);
        CHECK_LINE(t, "ws_broadcaster_stream_last_entry_age_seconds{stream=\"odds.normalized."
                      "a\\\"b\\\\c\"} 0.000");
        CHECK_INT(count_lines(t, "ws_broadcaster_stream_lag_entries{stream=\"odds.normalized.a"),
                  0);
        CHECK_INT(count_lines(t, "ws_broadcaster_stream_entries_read_total{"), 3);
        CHECK_INT(
            count_lines(
                t, "ws_broadcaster_stream_entries_read_total{stream=\"odds.normalized.gone\"}"),
            0);
    }
    metrics_buf_free(&b);
    CHECK_INT(metrics_json(s, &b), 0);
    j = parse_body(&b);
    if (j != NULL) {
        const cJSON *streams = obj_at(j, "streams");
        const cJSON *nba = cJSON_GetArrayItem(streams, 0);
        const cJSON *opps = cJSON_GetArrayItem(streams, 1);
        CHECK_INT(cJSON_GetArraySize(streams), 3);
        CHECK_STR(cJSON_GetStringValue(obj_at(nba, "stream")), "odds.normalized.basketball_nba");
        CHECK_NUM(nba, "entries_read", 40);
        CHECK_NUM(nba, "lag", 12);
        CHECK_NUM(nba, "last_entry_timestamp_seconds", (double)(now - 2500) / 1000);
        CHECK_STR(cJSON_GetStringValue(obj_at(opps, "stream")), "opportunities");
        CHECK(obj_at(opps, "lag") == NULL);
        CHECK(obj_at(opps, "last_entry_age_seconds") == NULL);
        CHECK_STR(cJSON_GetStringValue(obj_at(cJSON_GetArrayItem(streams, 2), "stream")),
                  "odds.normalized.a\"b\\c");
    }
    cJSON_Delete(j);
    metrics_buf_free(&b);
    shm_destroy(s);
}

static void
test_processes(void)
{
    struct shm *s = busy_region();
    struct metrics_buf b = {0};

    SET(s->workers[1].pid, 999); /* cannot be read */
    CHECK_INT(metrics_prometheus(s, &b), 0);
    if (b.data != NULL) {
        const char *t = b.data;
        CHECK_LINE(t, "# TYPE process_cpu_seconds_total counter");
        CHECK_LINE(t, "process_cpu_seconds_total{role=\"supervisor\"} 1.005");
        CHECK_LINE(t, "process_cpu_seconds_total{role=\"ingest\"} 42.425");
        CHECK_LINE(t, "process_cpu_seconds_total{role=\"worker\",worker=\"1\"} 1.015");
        CHECK_LINE(t, "# TYPE process_resident_memory_bytes gauge");
        CHECK_LINE(t, "process_resident_memory_bytes{role=\"worker\",worker=\"1\"} 413696");
        CHECK_LINE(t, "# TYPE process_open_fds gauge");
        CHECK_LINE(t, "process_open_fds{role=\"supervisor\"} 0");
        CHECK_LINE(t, "process_open_fds{role=\"worker\",worker=\"1\"} 1");
        CHECK_LINE(t, "process_max_fds{role=\"ingest\"} 1024");
        CHECK_LINE(t, "# TYPE process_start_time_seconds gauge");
        CHECK_LINE(t, "process_start_time_seconds{role=\"ingest\"} 1700000004.242");
        /* Worker 2 could not be read: its pid, and nothing of /proc. */
        CHECK_LINE(t, "ws_broadcaster_pid{role=\"worker\",worker=\"2\"} 999");
        CHECK_INT(count_lines(t, "process_cpu_seconds_total{role=\"worker\",worker=\"2\"}"), 0);
        CHECK_INT(count_lines(t, "process_open_fds{role=\"worker\",worker=\"2\"}"), 0);
    }
    metrics_buf_free(&b);
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
test_number_text(void)
{
    /* Exact decimals, the same in both formats: no binary floating point
     * between a counter and its text. */
    static const struct {
        uint64_t value;
        unsigned scale;
        const char *want;
    } cases[] = {
        {0, 0, "0"},
        {12, 1, "12"},
        {18446744073709551615ULL, 1, "18446744073709551615"},
        {0, 1000, "0.000"},
        {1500, 1000, "1.500"},
        {1700000004242ULL, 1000, "1700000004.242"},
        {572, 1000000, "0.000572"},
        {90004000, 1000000, "90.004000"},
    };
    char buf[48];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        figures_number(buf, sizeof(buf), cases[i].value, cases[i].scale);
        CHECK_STR(buf, cases[i].want);
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
          TEST(test_redis_connected_needs_live_ingest), TEST(test_histograms),
          TEST(test_closes_and_refusals), TEST(test_streams), TEST(test_processes),
          TEST(test_wants_prometheus), TEST(test_number_text), TEST(test_buf_free_empty))
