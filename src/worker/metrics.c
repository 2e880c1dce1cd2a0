#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/snaptab.h"
#include "../common/timeutil.h"

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

static int metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        int n;

        if (b->data != NULL) {
            va_start(ap, fmt);
            n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
            va_end(ap);
            if (n < 0)
                return -1;
            if ((size_t)n < b->cap - b->len) {
                b->len += (size_t)n;
                return 0;
            }
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
}

void
metrics_buf_free(struct metrics_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

/* What every reader of "is the ingest up" uses: redis_up is the ingest's
 * own word and a dead ingest cannot clear it, while pid is cleared by the
 * supervisor when it reaps the ingest (shm.h). */
static int
metrics_redis_up(struct shm *s)
{
    return LOAD(s->ingest.redis_up) && LOAD(s->ingest.pid) != 0;
}

int
metrics_health(struct shm *s, struct metrics_buf *out)
{
    struct shm_totals t;
    int up = metrics_redis_up(s);

    shm_totals(s, &t);
    if (metrics_printf(out,
                       "{\"status\":\"%s\",\"service\":\"ws-broadcaster\",\"active_clients\":%llu}",
                       up ? "healthy" : "degraded", (unsigned long long)t.active_clients) != 0)
        return -1;
    return up ? 200 : 503;
}

/* ---- the one list of figures -------------------------------------------------- */

/* One reading of shm per request, so the figures that derive from the same
 * load (totals, the ring head) agree within a body. */
struct metrics_view {
    struct shm *s;
    struct shm_totals t;
    struct snaptab_stats snap; /* zero if the instance has no table */
    uint64_t head;
    uint64_t now_ms;
};

enum metrics_type { METRICS_GAUGE, METRICS_COUNTER };

struct metrics_field {
    const char *name; /* the JSON key; Prometheus: ws_broadcaster_<prefix><name> */
    enum metrics_type type;
    int boolean; /* JSON true/false, Prometheus 1/0 */
    const char *help;
    /* worker is the slot (from 0) for per-worker figures, unused otherwise */
    uint64_t (*get)(const struct metrics_view *v, uint32_t worker);
};

#define METRICS_TOTAL(field)                                                                       \
    static uint64_t metrics_total_##field(const struct metrics_view *v, uint32_t worker)           \
    {                                                                                              \
        (void)worker;                                                                              \
        return v->t.field;                                                                         \
    }
#define METRICS_INGEST(field)                                                                      \
    static uint64_t metrics_ingest_##field(const struct metrics_view *v, uint32_t worker)          \
    {                                                                                              \
        (void)worker;                                                                              \
        return (uint64_t)LOAD(v->s->ingest.field);                                                 \
    }
#define METRICS_WORKER(field)                                                                      \
    static uint64_t metrics_worker_##field(const struct metrics_view *v, uint32_t worker)          \
    {                                                                                              \
        return (uint64_t)LOAD(v->s->workers[worker].field);                                        \
    }

METRICS_TOTAL(active_clients)
METRICS_TOTAL(total_connections)
METRICS_TOTAL(total_messages)
METRICS_TOTAL(broadcast_usage)
METRICS_TOTAL(dropped_messages)
METRICS_TOTAL(slow_disconnects)
METRICS_TOTAL(ring_missed)
METRICS_TOTAL(invalid_frames)
METRICS_TOTAL(client_errors)
METRICS_TOTAL(open_connections)
METRICS_TOTAL(refused_connections)
METRICS_INGEST(invalid_entries)
METRICS_INGEST(entries_read)
METRICS_INGEST(entries_published)
METRICS_INGEST(duplicates_skipped)
METRICS_INGEST(redis_errors)
METRICS_INGEST(pid)
METRICS_INGEST(restarts)
METRICS_WORKER(pid)
METRICS_WORKER(active_clients)
METRICS_WORKER(total_connections)
METRICS_WORKER(total_messages)
METRICS_WORKER(dropped_messages)
METRICS_WORKER(slow_disconnects)
METRICS_WORKER(ring_missed)
METRICS_WORKER(restarts)
METRICS_WORKER(open_connections)

#define METRICS_SNAP(field)                                                                        \
    static uint64_t metrics_snap_##field(const struct metrics_view *v, uint32_t worker)            \
    {                                                                                              \
        (void)worker;                                                                              \
        return (uint64_t)v->snap.field;                                                            \
    }
METRICS_SNAP(keys)
METRICS_SNAP(bytes)
METRICS_SNAP(max_keys)
METRICS_SNAP(capacity_bytes)
METRICS_SNAP(evicted_ttl)
METRICS_SNAP(evicted_full)
METRICS_SNAP(dropped_too_large)
METRICS_TOTAL(conflated_clients)
METRICS_TOTAL(conflated_updates)
METRICS_TOTAL(slow_keys)
METRICS_TOTAL(slow_bytes)
METRICS_TOTAL(slow_lag)
METRICS_TOTAL(slow_send_timeout)
METRICS_WORKER(conflated_clients)
METRICS_TOTAL(snapshots_sent)
METRICS_TOTAL(snapshot_items_sent)
METRICS_TOTAL(lapped_snapshots)
METRICS_TOTAL(resumes_ok)
METRICS_TOTAL(resumes_epoch_changed)
METRICS_TOTAL(resumes_too_old)
METRICS_TOTAL(resumes_unknown_stream)

static uint64_t
metrics_capacity(const struct metrics_view *v, uint32_t worker)
{
    (void)worker;
    return shm_ring(v->s)->nslots;
}

static uint64_t
metrics_ring_head(const struct metrics_view *v, uint32_t worker)
{
    (void)worker;
    return v->head;
}

static uint64_t
metrics_redis_connected(const struct metrics_view *v, uint32_t worker)
{
    (void)worker;
    return (uint64_t)metrics_redis_up(v->s);
}

static uint64_t
metrics_uptime(const struct metrics_view *v, uint32_t worker)
{
    (void)worker;
    /* Wall clock: stepped back below the start time, it reads 0, not an
     * unsigned wrap-around. */
    return v->now_ms > v->s->hdr.started_ms ? (v->now_ms - v->s->hdr.started_ms) / 1000 : 0;
}

static uint64_t
metrics_worker_ring_lag(const struct metrics_view *v, uint32_t worker)
{
    uint64_t next = LOAD(v->s->workers[worker].ring_next);

    /* A cursor past the head (a worker that read up to it while the head
     * was loaded) is no lag, not a wrap-around. */
    return v->head > next ? v->head - next : 0;
}

/*
 * Every figure /metrics shows, in JSON order.  Both renderers walk these
 * tables and nothing else, so a figure cannot be in one format only.  The
 * JSON keys are the interface (clients, tests, the seed's five first): never
 * rename one; add new figures at the end of their table.
 */
static const struct metrics_field metrics_top_fields[] = {
    {"active_clients", METRICS_GAUGE, 0, "Connected WebSocket clients.",
     metrics_total_active_clients},
    {"total_connections", METRICS_COUNTER, 0, "WebSocket connections accepted since start.",
     metrics_total_total_connections},
    {"total_messages", METRICS_COUNTER, 0, "Messages delivered to clients since start.",
     metrics_total_total_messages},
    {"broadcast_capacity", METRICS_GAUGE, 0, "Ring capacity in frames.", metrics_capacity},
    {"broadcast_usage", METRICS_GAUGE, 0, "Frames written but not yet read by the slowest worker.",
     metrics_total_broadcast_usage},
    {"dropped_messages", METRICS_COUNTER, 0, "Messages dropped because a client's queue was full.",
     metrics_total_dropped_messages},
    {"invalid_entries", METRICS_COUNTER, 0, "Malformed stream entries skipped and acknowledged.",
     metrics_ingest_invalid_entries},
    {"slow_disconnects", METRICS_COUNTER, 0,
     "Clients disconnected as too slow, for any reason (the slow_disconnects_* add up to it).",
     metrics_total_slow_disconnects},
    {"ring_missed", METRICS_COUNTER, 0, "Frames workers missed because the ring lapped them.",
     metrics_total_ring_missed},
    {"invalid_frames", METRICS_COUNTER, 0, "Ring frames a worker could not decode or encode.",
     metrics_total_invalid_frames},
    {"client_errors", METRICS_COUNTER, 0, "Error replies sent to clients.",
     metrics_total_client_errors},
    {"ring_head", METRICS_COUNTER, 0, "Sequence of the next ring frame.", metrics_ring_head},
    {"redis_connected", METRICS_GAUGE, 1, "1 while the ingest reads Redis.",
     metrics_redis_connected},
    {"entries_read", METRICS_COUNTER, 0, "Stream entries read from Redis.",
     metrics_ingest_entries_read},
    {"entries_published", METRICS_COUNTER, 0, "Frames written to the ring.",
     metrics_ingest_entries_published},
    {"duplicates_skipped", METRICS_COUNTER, 0,
     "Pending entries skipped after an ingest restart because the ring already held them.",
     metrics_ingest_duplicates_skipped},
    {"redis_errors", METRICS_COUNTER, 0, "Failed Redis commands and lost connections.",
     metrics_ingest_redis_errors},
    {"uptime_seconds", METRICS_GAUGE, 0, "Seconds since the instance started.", metrics_uptime},
    {"open_connections", METRICS_GAUGE, 0,
     "TCP connections open, HTTP or WebSocket, upgraded or not.", metrics_total_open_connections},
    {"refused_connections", METRICS_COUNTER, 0,
     "Connections closed at accept: MAX_CONNECTIONS or MAX_CONNECTIONS_PER_IP.",
     metrics_total_refused_connections},
    {"conflated_clients", METRICS_GAUGE, 0,
     "Clients in conflated mode now: queue past CONFLATE_AT, latest update per key only.",
     metrics_total_conflated_clients},
    {"conflated_updates", METRICS_COUNTER, 0,
     "Updates replaced in a client's queue by a newer one of the same key, never sent.",
     metrics_total_conflated_updates},
    {"slow_disconnects_keys", METRICS_COUNTER, 0,
     "Slow clients cut off: more distinct keys waiting than CLIENT_BUFFER.",
     metrics_total_slow_keys},
    {"slow_disconnects_bytes", METRICS_COUNTER, 0,
     "Slow clients cut off: more than CLIENT_BUFFER_BYTES queued.", metrics_total_slow_bytes},
    {"slow_disconnects_lag", METRICS_COUNTER, 0,
     "Slow clients cut off: oldest queued message older than CLIENT_MAX_LAG.",
     metrics_total_slow_lag},
    {"slow_disconnects_send_timeout", METRICS_COUNTER, 0,
     "Slow clients cut off: socket took nothing for SEND_TIMEOUT while data waited.",
     metrics_total_slow_send_timeout},
};

static const struct metrics_field metrics_ingest_fields[] = {
    {"pid", METRICS_GAUGE, 0, "Process id of the ingest (0 while it is restarted).",
     metrics_ingest_pid},
    {"restarts", METRICS_COUNTER, 0, "Times the ingest was restarted.", metrics_ingest_restarts},
};

static const struct metrics_field metrics_worker_fields[] = {
    {"pid", METRICS_GAUGE, 0, "Process id per worker (0 while it is restarted).",
     metrics_worker_pid},
    {"active_clients", METRICS_GAUGE, 0, "Connected WebSocket clients per worker.",
     metrics_worker_active_clients},
    {"total_connections", METRICS_COUNTER, 0, "WebSocket connections per worker since it started.",
     metrics_worker_total_connections},
    {"total_messages", METRICS_COUNTER, 0, "Messages delivered per worker since it started.",
     metrics_worker_total_messages},
    {"dropped_messages", METRICS_COUNTER, 0, "Messages dropped per worker (full client queue).",
     metrics_worker_dropped_messages},
    {"slow_disconnects", METRICS_COUNTER, 0, "Slow clients disconnected per worker.",
     metrics_worker_slow_disconnects},
    {"ring_lag", METRICS_GAUGE, 0, "Frames published but not yet read by the worker.",
     metrics_worker_ring_lag},
    {"ring_missed", METRICS_COUNTER, 0, "Frames the worker missed because the ring lapped it.",
     metrics_worker_ring_missed},
    {"restarts", METRICS_COUNTER, 0, "Times the worker slot was restarted.",
     metrics_worker_restarts},
    {"open_connections", METRICS_GAUGE, 0, "TCP connections open per worker.",
     metrics_worker_open_connections},
    {"conflated_clients", METRICS_GAUGE, 0, "Clients in conflated mode now per worker.",
     metrics_worker_conflated_clients},
};

/* The consistent board: the ingest's table and what the workers sent. */
static const struct metrics_field metrics_snapshot_fields[] = {
    {"keys", METRICS_GAUGE, 0, "Keys in the snapshot table.", metrics_snap_keys},
    {"bytes", METRICS_GAUGE, 0, "Bytes of values the snapshot table holds.", metrics_snap_bytes},
    {"max_keys", METRICS_GAUGE, 0, "Keys the snapshot table may hold (SNAPSHOT_MAX_KEYS).",
     metrics_snap_max_keys},
    {"capacity_bytes", METRICS_GAUGE, 0, "Bytes of values the snapshot table may hold.",
     metrics_snap_capacity_bytes},
    {"evicted_ttl", METRICS_COUNTER, 0,
     "Keys that left the table: not updated for SNAPSHOT_TTL (opportunities: OPPORTUNITY_TTL).",
     metrics_snap_evicted_ttl},
    {"evicted_full", METRICS_COUNTER, 0, "Oldest keys evicted because the table was full.",
     metrics_snap_evicted_full},
    {"dropped_too_large", METRICS_COUNTER, 0, "Entries too large to keep in the table.",
     metrics_snap_dropped_too_large},
    {"sent", METRICS_COUNTER, 0, "Snapshots sent to clients in full.",
     metrics_total_snapshots_sent},
    {"items_sent", METRICS_COUNTER, 0, "Keys sent in snapshots.",
     metrics_total_snapshot_items_sent},
    {"lapped", METRICS_COUNTER, 0,
     "Fresh snapshots sent because entries were lost before a worker read them.",
     metrics_total_lapped_snapshots},
    {"resumes_ok", METRICS_COUNTER, 0, "Resumes that replayed exactly what was missed.",
     metrics_total_resumes_ok},
    {"resumes_epoch_changed", METRICS_COUNTER, 0, "Resumes refused: another epoch.",
     metrics_total_resumes_epoch_changed},
    {"resumes_too_old", METRICS_COUNTER, 0,
     "Resumes refused: the missed entries are no longer at hand (or too many).",
     metrics_total_resumes_too_old},
    {"resumes_unknown_stream", METRICS_COUNTER, 0,
     "Resumes refused: a stream the filter reads had no position.",
     metrics_total_resumes_unknown_stream},
};

#define METRICS_N(a) (sizeof(a) / sizeof((a)[0]))

enum metrics_shape {
    METRICS_TOP,        /* plain top-level keys; ws_broadcaster_<name> */
    METRICS_OBJECT,     /* "key":{...}; ws_broadcaster_<prefix><name> */
    METRICS_PER_WORKER, /* "key":[{"worker":n,...}]; ws_broadcaster_<prefix><name>{worker="n"} */
};

static const struct metrics_section {
    enum metrics_shape shape;
    const char *key;    /* JSON key of the object or array; NULL at the top */
    const char *prefix; /* Prometheus name prefix after ws_broadcaster_ */
    const struct metrics_field *fields;
    size_t nfields;
} metrics_sections[] = {
    {METRICS_TOP, NULL, "", metrics_top_fields, METRICS_N(metrics_top_fields)},
    {METRICS_OBJECT, "ingest", "ingest_", metrics_ingest_fields, METRICS_N(metrics_ingest_fields)},
    {METRICS_PER_WORKER, "workers", "worker_", metrics_worker_fields,
     METRICS_N(metrics_worker_fields)},
    {METRICS_OBJECT, "snapshot", "snapshot_", metrics_snapshot_fields,
     METRICS_N(metrics_snapshot_fields)},
};

static void
metrics_view_load(struct metrics_view *v, struct shm *s)
{
    uint32_t max_keys;
    void *mem = shm_snaptab(s, &max_keys);
    struct snaptab table;

    v->s = s;
    shm_totals(s, &v->t);
    memset(&v->snap, 0, sizeof(v->snap));
    if (mem != NULL && snaptab_attach_reader(&table, mem, max_keys, SHM_MAX_STREAMS) == 0)
        snaptab_stats(&table, &v->snap);
    v->head = ring_head(shm_ring(s));
    v->now_ms = time_now_ms();
}

/* ---- JSON ---------------------------------------------------------------- */

/* The fields of one section as "k":v pairs, each after a comma but the
 * first when first is set. */
static int
metrics_json_fields(struct metrics_buf *out, const struct metrics_view *v,
                    const struct metrics_section *sec, uint32_t worker, int first)
{
    int rc = 0;

    for (size_t f = 0; rc == 0 && f < sec->nfields; f++) {
        const struct metrics_field *fd = &sec->fields[f];
        uint64_t value = fd->get(v, worker);
        const char *sep = first && f == 0 ? "" : ",";

        if (fd->boolean)
            rc = metrics_printf(out, "%s\"%s\":%s", sep, fd->name, value ? "true" : "false");
        else
            rc = metrics_printf(out, "%s\"%s\":%llu", sep, fd->name, (unsigned long long)value);
    }
    return rc;
}

int
metrics_json(struct shm *s, struct metrics_buf *out)
{
    struct metrics_view v;
    int rc = metrics_printf(out, "{");

    metrics_view_load(&v, s);
    for (size_t i = 0; rc == 0 && i < METRICS_N(metrics_sections); i++) {
        const struct metrics_section *sec = &metrics_sections[i];

        switch (sec->shape) {
        case METRICS_TOP:
            rc = metrics_json_fields(out, &v, sec, 0, i == 0);
            break;
        case METRICS_OBJECT:
            rc = metrics_printf(out, "%s\"%s\":{", i ? "," : "", sec->key);
            if (rc == 0)
                rc = metrics_json_fields(out, &v, sec, 0, 1);
            if (rc == 0)
                rc = metrics_printf(out, "}");
            break;
        case METRICS_PER_WORKER:
            rc = metrics_printf(out, "%s\"%s\":[", i ? "," : "", sec->key);
            for (uint32_t w = 0; rc == 0 && w < shm_nworkers(s); w++) {
                /* Workers are numbered from 1, as in the logs and process names. */
                rc = metrics_printf(out, "%s{\"worker\":%u", w ? "," : "", w + 1);
                if (rc == 0)
                    rc = metrics_json_fields(out, &v, sec, w, 0);
                if (rc == 0)
                    rc = metrics_printf(out, "}");
            }
            if (rc == 0)
                rc = metrics_printf(out, "]");
            break;
        }
    }
    if (rc == 0)
        rc = metrics_printf(out, "}");
    return rc;
}

/* ---- Prometheus text ------------------------------------------------------- */

int
metrics_prometheus(struct shm *s, struct metrics_buf *out)
{
    struct metrics_view v;
    int rc = 0;

    metrics_view_load(&v, s);
    for (size_t i = 0; rc == 0 && i < METRICS_N(metrics_sections); i++) {
        const struct metrics_section *sec = &metrics_sections[i];

        for (size_t f = 0; rc == 0 && f < sec->nfields; f++) {
            const struct metrics_field *fd = &sec->fields[f];
            const char *type = fd->type == METRICS_COUNTER ? "counter" : "gauge";

            rc = metrics_printf(out,
                                "# HELP ws_broadcaster_%s%s %s\n"
                                "# TYPE ws_broadcaster_%s%s %s\n",
                                sec->prefix, fd->name, fd->help, sec->prefix, fd->name, type);
            if (sec->shape != METRICS_PER_WORKER) {
                if (rc == 0)
                    rc = metrics_printf(out, "ws_broadcaster_%s%s %llu\n", sec->prefix, fd->name,
                                        (unsigned long long)fd->get(&v, 0));
                continue;
            }
            for (uint32_t w = 0; rc == 0 && w < shm_nworkers(s); w++)
                rc = metrics_printf(out, "ws_broadcaster_%s%s{worker=\"%u\"} %llu\n", sec->prefix,
                                    fd->name, w + 1, (unsigned long long)fd->get(&v, w));
        }
    }
    return rc;
}

int
metrics_wants_prometheus(const char *accept, const char *query)
{
    /* An explicit ?format= wins over the Accept header. */
    for (const char *q = query; q != NULL && *q != '\0';) {
        size_t n = strcspn(q, "&");
        if (n == 17 && strncmp(q, "format=prometheus", 17) == 0)
            return 1;
        if (n == 11 && strncmp(q, "format=json", 11) == 0)
            return 0;
        q += n;
        if (*q == '&')
            q++;
    }
    if (accept == NULL)
        return 0;
    /* A browser sends text/html,...,* / *: that is not a request for text. */
    if (strcasestr(accept, "application/openmetrics-text") != NULL)
        return 1;
    if (strcasestr(accept, "text/plain") != NULL && strcasestr(accept, "application/json") == NULL)
        return 1;
    return 0;
}
