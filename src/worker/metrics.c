#include "metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

int
metrics_health(struct shm *s, struct metrics_buf *out)
{
    struct shm_totals t;
    int up = LOAD(s->ingest.redis_up) && LOAD(s->ingest.pid) != 0;

    shm_totals(s, &t);
    if (metrics_printf(out,
                       "{\"status\":\"%s\",\"service\":\"ws-broadcaster\",\"active_clients\":%llu}",
                       up ? "healthy" : "degraded", (unsigned long long)t.active_clients) != 0)
        return -1;
    return up ? 200 : 503;
}

int
metrics_json(struct shm *s, struct metrics_buf *out)
{
    struct shm_totals t;
    struct ring *r = shm_ring(s);
    uint64_t head = ring_head(r);
    uint64_t now_ms = time_now_ms(); /* wall clock: may step back below the start time */
    int rc;

    shm_totals(s, &t);
    rc = metrics_printf(
        out,
        "{\"active_clients\":%llu,\"total_connections\":%llu,\"total_messages\":%llu,"
        "\"broadcast_capacity\":%u,\"broadcast_usage\":%llu,\"dropped_messages\":%llu,"
        "\"invalid_entries\":%llu,\"slow_disconnects\":%llu,\"ring_missed\":%llu,"
        "\"invalid_frames\":%llu,\"client_errors\":%llu,\"ring_head\":%llu,"
        "\"redis_connected\":%s,\"entries_read\":%llu,\"entries_published\":%llu,"
        "\"duplicates_skipped\":%llu,\"redis_errors\":%llu,\"uptime_seconds\":%llu,"
        "\"ingest\":{\"pid\":%d,\"restarts\":%llu},\"workers\":[",
        (unsigned long long)t.active_clients, (unsigned long long)t.total_connections,
        (unsigned long long)t.total_messages, r->nslots, (unsigned long long)t.broadcast_usage,
        (unsigned long long)t.dropped_messages, (unsigned long long)LOAD(s->ingest.invalid_entries),
        (unsigned long long)t.slow_disconnects, (unsigned long long)t.ring_missed,
        (unsigned long long)t.invalid_frames, (unsigned long long)t.client_errors,
        (unsigned long long)head, LOAD(s->ingest.redis_up) ? "true" : "false",
        (unsigned long long)LOAD(s->ingest.entries_read),
        (unsigned long long)LOAD(s->ingest.entries_published),
        (unsigned long long)LOAD(s->ingest.duplicates_skipped),
        (unsigned long long)LOAD(s->ingest.redis_errors),
        (unsigned long long)(now_ms > s->hdr.started_ms ? (now_ms - s->hdr.started_ms) / 1000 : 0),
        LOAD(s->ingest.pid), (unsigned long long)LOAD(s->ingest.restarts));
    for (uint32_t i = 0; rc == 0 && i < s->hdr.nworkers; i++) {
        struct shm_worker *w = &s->workers[i];
        uint64_t next = LOAD(w->ring_next);
        rc = metrics_printf(
            out,
            "%s{\"worker\":%u,\"pid\":%d,\"active_clients\":%llu,\"total_connections\":%llu,"
            "\"total_messages\":%llu,\"dropped_messages\":%llu,\"slow_disconnects\":%llu,"
            "\"ring_lag\":%llu,\"ring_missed\":%llu,\"restarts\":%llu}",
            i ? "," : "", i + 1, LOAD(w->pid), (unsigned long long)LOAD(w->active_clients),
            (unsigned long long)LOAD(w->total_connections),
            (unsigned long long)LOAD(w->total_messages),
            (unsigned long long)LOAD(w->dropped_messages),
            (unsigned long long)LOAD(w->slow_disconnects),
            (unsigned long long)(head > next ? head - next : 0),
            (unsigned long long)LOAD(w->ring_missed), (unsigned long long)LOAD(w->restarts));
    }
    if (rc == 0)
        rc = metrics_printf(out, "]}");
    return rc;
}

static int
metrics_prom_one(struct metrics_buf *out, const char *name, const char *type, const char *help,
                 unsigned long long value)
{
    return metrics_printf(out,
                          "# HELP ws_broadcaster_%s %s\n# TYPE ws_broadcaster_%s %s\n"
                          "ws_broadcaster_%s %llu\n",
                          name, help, name, type, name, value);
}

/* Per-worker families of the Prometheus output; keep in sync with the
 * "workers" objects of metrics_json. */
#define METRICS_WORKER_GETTER(field)                                                               \
    static uint64_t metrics_get_##field(struct shm_worker *w, uint64_t head)                       \
    {                                                                                              \
        (void)head;                                                                                \
        return LOAD(w->field);                                                                     \
    }
METRICS_WORKER_GETTER(active_clients)
METRICS_WORKER_GETTER(total_connections)
METRICS_WORKER_GETTER(total_messages)
METRICS_WORKER_GETTER(dropped_messages)
METRICS_WORKER_GETTER(slow_disconnects)
METRICS_WORKER_GETTER(ring_missed)
METRICS_WORKER_GETTER(restarts)

static uint64_t
metrics_get_ring_lag(struct shm_worker *w, uint64_t head)
{
    uint64_t next = LOAD(w->ring_next);

    return head > next ? head - next : 0;
}

static const struct metrics_worker_field {
    const char *name;
    const char *type;
    const char *help;
    uint64_t (*get)(struct shm_worker *w, uint64_t head);
} metrics_worker_fields[] = {
    {"active_clients", "gauge", "Connected WebSocket clients per worker.",
     metrics_get_active_clients},
    {"total_connections", "counter", "WebSocket connections per worker since it started.",
     metrics_get_total_connections},
    {"total_messages", "counter", "Messages delivered per worker since it started.",
     metrics_get_total_messages},
    {"dropped_messages", "counter", "Messages dropped per worker (full client queue).",
     metrics_get_dropped_messages},
    {"slow_disconnects", "counter", "Slow clients disconnected per worker.",
     metrics_get_slow_disconnects},
    {"ring_lag", "gauge", "Frames published but not yet read by the worker.", metrics_get_ring_lag},
    {"ring_missed", "counter", "Frames the worker missed because the ring lapped it.",
     metrics_get_ring_missed},
    {"restarts", "counter", "Times the worker slot was restarted.", metrics_get_restarts},
};

int
metrics_prometheus(struct shm *s, struct metrics_buf *out)
{
    struct shm_totals t;
    struct ring *r = shm_ring(s);
    uint64_t head = ring_head(r);
    int rc = 0;

    shm_totals(s, &t);
    rc |= metrics_prom_one(out, "active_clients", "gauge", "Connected WebSocket clients.",
                           t.active_clients);
    rc |= metrics_prom_one(out, "total_connections", "counter",
                           "WebSocket connections accepted since start.", t.total_connections);
    rc |= metrics_prom_one(out, "total_messages", "counter",
                           "Messages delivered to clients since start.", t.total_messages);
    rc |=
        metrics_prom_one(out, "broadcast_capacity", "gauge", "Ring capacity in frames.", r->nslots);
    rc |= metrics_prom_one(out, "broadcast_usage", "gauge",
                           "Frames written but not yet read by the slowest worker.",
                           t.broadcast_usage);
    rc |=
        metrics_prom_one(out, "dropped_messages", "counter",
                         "Messages dropped because a client's queue was full.", t.dropped_messages);
    rc |= metrics_prom_one(out, "invalid_entries", "counter",
                           "Malformed stream entries skipped and acknowledged.",
                           LOAD(s->ingest.invalid_entries));
    rc |= metrics_prom_one(out, "slow_disconnects", "counter",
                           "Clients disconnected for a full queue.", t.slow_disconnects);
    rc |= metrics_prom_one(out, "ring_missed", "counter",
                           "Frames workers missed because the ring lapped them.", t.ring_missed);
    rc |= metrics_prom_one(out, "client_errors", "counter", "Error replies sent to clients.",
                           t.client_errors);
    rc |= metrics_prom_one(out, "redis_connected", "gauge", "1 while the ingest reads Redis.",
                           LOAD(s->ingest.redis_up));
    rc |= metrics_prom_one(out, "entries_read", "counter", "Stream entries read from Redis.",
                           LOAD(s->ingest.entries_read));
    rc |= metrics_prom_one(out, "entries_published", "counter", "Frames written to the ring.",
                           LOAD(s->ingest.entries_published));
    rc |= metrics_prom_one(out, "ring_head", "counter", "Sequence of the next ring frame.", head);
    for (size_t f = 0; f < sizeof(metrics_worker_fields) / sizeof(metrics_worker_fields[0]); f++) {
        const struct metrics_worker_field *wf = &metrics_worker_fields[f];
        rc |= metrics_printf(out,
                             "# HELP ws_broadcaster_worker_%s %s\n"
                             "# TYPE ws_broadcaster_worker_%s %s\n",
                             wf->name, wf->help, wf->name, wf->type);
        for (uint32_t i = 0; i < s->hdr.nworkers; i++)
            rc |= metrics_printf(out, "ws_broadcaster_worker_%s{worker=\"%u\"} %llu\n", wf->name,
                                 i + 1, (unsigned long long)wf->get(&s->workers[i], head));
    }
    return rc ? -1 : 0;
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
