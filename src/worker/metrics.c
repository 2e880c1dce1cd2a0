#include "metrics.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../common/hist.h"
#include "../common/snaptab.h"
#include "../common/timeutil.h"

#ifndef WSB_VERSION
#define WSB_VERSION "0.0.0"
#endif

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

static int (*metrics_proc_reader)(int pid, struct procstat *out) = procstat_read;

void
metrics_set_proc_reader(int (*reader)(int pid, struct procstat *out))
{
    metrics_proc_reader = reader != NULL ? reader : procstat_read;
}

/* ---- what one request reads ------------------------------------------------ */

enum metrics_role { METRICS_ROLE_SUPERVISOR, METRICS_ROLE_INGEST, METRICS_ROLE_WORKER };

static const char *const metrics_role_names[] = {"supervisor", "ingest", "worker"};

struct metrics_proc {
    enum metrics_role role;
    uint32_t worker; /* a worker's slot, from 0 */
    int32_t pid;     /* 0: being restarted */
    int have;        /* st was read */
    struct procstat st;
};

/* One reading of shm per request, so the figures that derive from the same
 * load (totals, the ring head) agree within a body. */
struct metrics_view {
    struct shm *s;
    struct shm_totals t;
    struct snaptab_stats snap; /* zero if the instance has no table */
    uint64_t head;
    uint64_t now_ms;
    uint32_t nworkers;
    uint32_t nprocs; /* supervisor, ingest, then the workers */
    struct metrics_proc procs[2 + SHM_MAX_WORKERS];
    uint32_t nstreams; /* the streams the ingest reads, in row order */
    struct metrics_stream {
        uint32_t row;
        char name[SHM_STREAM_NAME];
    } streams[SHM_MAX_STREAMS];
};

static void
metrics_proc_load(struct metrics_proc *p, enum metrics_role role, uint32_t worker, int32_t pid)
{
    p->role = role;
    p->worker = worker;
    p->pid = pid;
    p->have = pid > 0 && metrics_proc_reader(pid, &p->st) == 0;
}

static struct metrics_view *
metrics_view_new(struct shm *s)
{
    struct metrics_view *v = calloc(1, sizeof(*v));
    uint32_t max_keys;
    void *mem = shm_snaptab(s, &max_keys);
    struct snaptab table;

    if (v == NULL)
        return NULL;
    v->s = s;
    shm_totals(s, &v->t);
    if (mem != NULL && snaptab_attach_reader(&table, mem, max_keys, SHM_MAX_STREAMS) == 0)
        snaptab_stats(&table, &v->snap);
    v->head = ring_head(shm_ring(s));
    v->now_ms = time_now_ms();
    v->nworkers = shm_nworkers(s);
    metrics_proc_load(&v->procs[v->nprocs++], METRICS_ROLE_SUPERVISOR, 0, s->hdr.supervisor_pid);
    metrics_proc_load(&v->procs[v->nprocs++], METRICS_ROLE_INGEST, 0, LOAD(s->ingest.pid));
    for (uint32_t w = 0; w < v->nworkers; w++)
        metrics_proc_load(&v->procs[v->nprocs++], METRICS_ROLE_WORKER, w, LOAD(s->workers[w].pid));
    for (uint32_t r = 0; r < SHM_MAX_STREAMS; r++) {
        struct metrics_stream *st = &v->streams[v->nstreams];
        if (LOAD(s->streams[r].reading) && shm_stream_name(s, r, st->name, sizeof(st->name)) == 0) {
            st->row = r;
            v->nstreams++;
        }
    }
    return v;
}

/* ---- the one list of families ---------------------------------------------- */

enum metrics_type { METRICS_GAUGE, METRICS_COUNTER, METRICS_HISTOGRAM };

static const char *const metrics_type_names[] = {"gauge", "counter", "histogram"};

/* Whose figure it is: how many series, their labels, their JSON objects. */
enum metrics_scope {
    METRICS_INSTANCE, /* one series; the top JSON object */
    METRICS_WORKER,   /* {worker="n"}; workers[n-1], and their sum at the top */
    METRICS_STREAM,   /* {stream="..."}; streams[] */
    METRICS_PROCESS,  /* {role=...} (+ worker); supervisor, ingest, workers[n-1] */
};

#define METRICS_BOOL   1u /* JSON true/false, Prometheus 1/0 */
#define METRICS_NO_SUM 2u /* per worker only: no sum at the top of the JSON */
#define METRICS_INFO   4u /* value 1 with version="..."; JSON: the version text */

/* A family's one extra label and its values.  In JSON the values are the
 * keys of an object at the family's key (json NULL), or each a key of its
 * own (json[i]; the family's key, if any, then holds their sum). */
struct metrics_dim {
    const char *label;
    const char *const *values;
    unsigned n;
    const char *const *json;
};

/* Where a value is read: series (worker, or item of streams/procs) and the
 * dim's value; all: the sum over the workers (the top of the JSON). */
struct metrics_at {
    int all;
    uint32_t worker;
    uint32_t item;
    unsigned value;
};

struct metrics_family {
    const char *name; /* Prometheus */
    enum metrics_type type;
    enum metrics_scope scope;
    const char *json; /* key in its JSON object; "a.b" nests */
    unsigned flags;
    unsigned scale; /* the value's units per unit shown (1000: ms as seconds); 0 as 1 */
    const struct metrics_dim *dim;
    /* The value: get, or else the counter (array, for a dim) at off in
     * struct shm_worker.  -1: not known now (absent from both formats). */
    int (*get)(const struct metrics_view *v, const struct metrics_at *at, uint64_t *out);
    size_t off;
    /* Histograms: the one to show, or else the struct hist at off in the
     * worker's slot. */
    const struct hist *(*hist)(const struct metrics_view *v);
    const char *help;
};

/* -- getters -- */

#define METRICS_GET(name)                                                                          \
    static int metrics_get_##name(const struct metrics_view *v, const struct metrics_at *at,       \
                                  uint64_t *out)
#define METRICS_UNUSED(v, at)                                                                      \
    do {                                                                                           \
        (void)(v);                                                                                 \
        (void)(at);                                                                                \
    } while (0)

#define METRICS_INGEST(field)                                                                      \
    METRICS_GET(ingest_##field)                                                                    \
    {                                                                                              \
        (void)at;                                                                                  \
        *out = (uint64_t)LOAD(v->s->ingest.field);                                                 \
        return 0;                                                                                  \
    }
METRICS_INGEST(invalid_entries)
METRICS_INGEST(entries_read)
METRICS_INGEST(entries_published)
METRICS_INGEST(duplicates_skipped)
METRICS_INGEST(redis_errors)

#define METRICS_SNAP(field)                                                                        \
    METRICS_GET(snap_##field)                                                                      \
    {                                                                                              \
        (void)at;                                                                                  \
        *out = (uint64_t)v->snap.field;                                                            \
        return 0;                                                                                  \
    }
METRICS_SNAP(keys)
METRICS_SNAP(bytes)
METRICS_SNAP(max_keys)
METRICS_SNAP(capacity_bytes)
METRICS_SNAP(dropped_too_large)

METRICS_GET(snap_evicted)
{
    *out = at->value == 0 ? v->snap.evicted_ttl : v->snap.evicted_full;
    return 0;
}

METRICS_GET(one)
{
    METRICS_UNUSED(v, at);
    *out = 1;
    return 0;
}

METRICS_GET(capacity)
{
    (void)at;
    *out = shm_ring(v->s)->nslots;
    return 0;
}

METRICS_GET(usage)
{
    (void)at;
    *out = v->t.broadcast_usage;
    return 0;
}

METRICS_GET(ring_head)
{
    (void)at;
    *out = v->head;
    return 0;
}

METRICS_GET(redis_connected)
{
    (void)at;
    *out = (uint64_t)metrics_redis_up(v->s);
    return 0;
}

METRICS_GET(uptime)
{
    (void)at;
    /* Wall clock: stepped back below the start time, it reads 0, not an
     * unsigned wrap-around. */
    *out = v->now_ms > v->s->hdr.started_ms ? (v->now_ms - v->s->hdr.started_ms) / 1000 : 0;
    return 0;
}

METRICS_GET(ring_lag)
{
    uint64_t next = LOAD(v->s->workers[at->worker].ring_next);

    /* A cursor past the head (a worker that read up to it while the head
     * was loaded) is no lag, not a wrap-around. */
    *out = v->head > next ? v->head - next : 0;
    return 0;
}

/* The four bounds a slow client is cut at (outbound.h), in dim order. */
METRICS_GET(slow)
{
    const struct shm_worker *w = &v->s->workers[at->worker];
    const _Atomic uint64_t *c[] = {&w->slow_keys, &w->slow_bytes, &w->slow_lag,
                                   &w->slow_send_timeout};

    *out = atomic_load_explicit((_Atomic uint64_t *)c[at->value], memory_order_relaxed);
    return 0;
}

METRICS_GET(resumes)
{
    const struct shm_worker *w = &v->s->workers[at->worker];
    const _Atomic uint64_t *c[] = {&w->resumes_ok, &w->resumes_epoch_changed, &w->resumes_too_old,
                                   &w->resumes_unknown_stream};

    *out = atomic_load_explicit((_Atomic uint64_t *)c[at->value], memory_order_relaxed);
    return 0;
}

/* Processes (v->procs[at->item]). */
METRICS_GET(pid)
{
    *out = (uint64_t)v->procs[at->item].pid;
    return 0;
}

METRICS_GET(restarts)
{
    const struct metrics_proc *p = &v->procs[at->item];

    if (p->role == METRICS_ROLE_SUPERVISOR)
        return -1; /* nothing restarts it */
    *out = p->role == METRICS_ROLE_INGEST ? LOAD(v->s->ingest.restarts)
                                          : LOAD(v->s->workers[p->worker].restarts);
    return 0;
}

#define METRICS_PROC(field)                                                                        \
    METRICS_GET(proc_##field)                                                                      \
    {                                                                                              \
        const struct metrics_proc *p = &v->procs[at->item];                                        \
        if (!p->have)                                                                              \
            return -1;                                                                             \
        *out = p->st.field;                                                                        \
        return 0;                                                                                  \
    }
METRICS_PROC(cpu_ms)
METRICS_PROC(rss_bytes)
METRICS_PROC(open_fds)
METRICS_PROC(start_ms)

METRICS_GET(proc_max_fds)
{
    const struct metrics_proc *p = &v->procs[at->item];

    /* "unlimited" has no number: left out. */
    if (!p->have || p->st.max_fds == UINT64_MAX)
        return -1;
    *out = p->st.max_fds;
    return 0;
}

/* Streams (v->streams[at->item]'s row). */
static const struct shm_stream *
metrics_row(const struct metrics_view *v, const struct metrics_at *at)
{
    return &v->s->streams[v->streams[at->item].row];
}

METRICS_GET(stream_entries_read)
{
    *out = LOAD(((struct shm_stream *)metrics_row(v, at))->entries_read);
    return 0;
}

METRICS_GET(stream_last_ms)
{
    uint64_t ms = LOAD(((struct shm_stream *)metrics_row(v, at))->read_ms);

    if (ms == 0)
        return -1; /* nothing read yet */
    *out = ms;
    return 0;
}

METRICS_GET(stream_age_ms)
{
    uint64_t ms = LOAD(((struct shm_stream *)metrics_row(v, at))->read_ms);

    if (ms == 0)
        return -1;
    /* Redis's clock ahead of ours reads as fresh, not as a wrap-around. */
    *out = v->now_ms > ms ? v->now_ms - ms : 0;
    return 0;
}

/* An answer older than this is no longer the lag (the ingest is down or
 * cannot reach Redis): left out rather than shown stale. */
#define METRICS_LAG_FRESH_MS (5 * SHM_LAG_CHECK_MS)

METRICS_GET(stream_lag)
{
    struct shm_stream *row = (struct shm_stream *)metrics_row(v, at);
    uint64_t at_ms = LOAD(row->lag_at_ms);

    if (!LOAD(row->lag_known) || at_ms == 0 ||
        (v->now_ms > at_ms && v->now_ms - at_ms > METRICS_LAG_FRESH_MS))
        return -1;
    *out = LOAD(row->lag);
    return 0;
}

static const struct hist *
metrics_hist_ingest(const struct metrics_view *v)
{
    return &v->s->ingest_latency;
}

/* -- the extra labels -- */

static const char *const metrics_slow_values[] = {"keys", "bytes", "lag", "send_timeout"};
static const char *const metrics_slow_json[] = {"slow_disconnects_keys", "slow_disconnects_bytes",
                                                "slow_disconnects_lag",
                                                "slow_disconnects_send_timeout"};
static const struct metrics_dim metrics_dim_slow = {"reason", metrics_slow_values, 4,
                                                    metrics_slow_json};

static const char *const metrics_resume_values[] = {"ok", "epoch_changed", "too_old",
                                                    "unknown_stream"};
static const char *const metrics_resume_json[] = {
    "snapshot.resumes_ok", "snapshot.resumes_epoch_changed", "snapshot.resumes_too_old",
    "snapshot.resumes_unknown_stream"};
static const struct metrics_dim metrics_dim_resumes = {"result", metrics_resume_values, 4,
                                                       metrics_resume_json};

static const char *const metrics_evict_values[] = {"ttl", "full"};
static const char *const metrics_evict_json[] = {"snapshot.evicted_ttl", "snapshot.evicted_full"};
static const struct metrics_dim metrics_dim_evicted = {"reason", metrics_evict_values, 2,
                                                       metrics_evict_json};

static const struct metrics_dim metrics_dim_closes = {"code", shm_close_names, SHM_CLOSE_SLOTS,
                                                      NULL};

static const struct metrics_dim metrics_dim_refused = {"reason", shm_refusal_names, SHM_REFUSALS,
                                                       NULL};

#define W(field) offsetof(struct shm_worker, field)

/*
 * Every figure /metrics shows, in JSON order (the seed's five first).  Both
 * renderers walk this table and nothing else.  JSON keys are the
 * interface: never rename one; add new families where they belong.
 */
static const struct metrics_family metrics_families[] = {
    {"ws_broadcaster_active_clients", METRICS_GAUGE, METRICS_WORKER, "active_clients", 0, 0, NULL,
     NULL, W(active_clients), NULL, "Connected WebSocket clients."},
    {"ws_broadcaster_connections_total", METRICS_COUNTER, METRICS_WORKER, "total_connections", 0, 0,
     NULL, NULL, W(total_connections), NULL, "WebSocket connections established."},
    {"ws_broadcaster_messages_sent_total", METRICS_COUNTER, METRICS_WORKER, "total_messages", 0, 0,
     NULL, NULL, W(total_messages), NULL, "Messages written to clients."},
    {"ws_broadcaster_ring_capacity_frames", METRICS_GAUGE, METRICS_INSTANCE, "broadcast_capacity",
     0, 0, NULL, metrics_get_capacity, 0, NULL, "Ring capacity in frames (RING_SIZE)."},
    {"ws_broadcaster_ring_usage_frames", METRICS_GAUGE, METRICS_INSTANCE, "broadcast_usage", 0, 0,
     NULL, metrics_get_usage, 0, NULL,
     "Frames published to the ring and not yet read by the slowest worker."},
    {"ws_broadcaster_build_info", METRICS_GAUGE, METRICS_INSTANCE, "version", METRICS_INFO, 0, NULL,
     metrics_get_one, 0, NULL, "The version of ws-broadcaster running, as a label; always 1."},
    {"ws_broadcaster_messages_dropped_total", METRICS_COUNTER, METRICS_WORKER, "dropped_messages",
     0, 0, NULL, NULL, W(dropped_messages), NULL,
     "Messages never sent: a client's queue was full, or it was cut off with them queued."},
    {"ws_broadcaster_invalid_entries_total", METRICS_COUNTER, METRICS_INSTANCE, "invalid_entries",
     0, 0, NULL, metrics_get_ingest_invalid_entries, 0, NULL,
     "Malformed stream entries skipped and acknowledged."},
    {"ws_broadcaster_slow_disconnects_total", METRICS_COUNTER, METRICS_WORKER, "slow_disconnects",
     0, 0, &metrics_dim_slow, metrics_get_slow, 0, NULL,
     "Slow clients cut off (close 1008), by the bound they passed."},
    {"ws_broadcaster_ring_missed_frames_total", METRICS_COUNTER, METRICS_WORKER, "ring_missed", 0,
     0, NULL, NULL, W(ring_missed), NULL,
     "Frames a worker lost because the ring lapped it before it read them."},
    {"ws_broadcaster_invalid_frames_total", METRICS_COUNTER, METRICS_WORKER, "invalid_frames", 0, 0,
     NULL, NULL, W(invalid_frames), NULL, "Ring frames a worker could not decode or encode."},
    {"ws_broadcaster_client_errors_total", METRICS_COUNTER, METRICS_WORKER, "client_errors", 0, 0,
     NULL, NULL, W(client_errors), NULL,
     "Error replies sent to clients, and closes for a protocol violation."},
    {"ws_broadcaster_ring_frames_total", METRICS_COUNTER, METRICS_INSTANCE, "ring_head", 0, 0, NULL,
     metrics_get_ring_head, 0, NULL,
     "Frames ever published to the ring (entries and control frames): the next frame's "
     "sequence."},
    {"ws_broadcaster_redis_connected", METRICS_GAUGE, METRICS_INSTANCE, "redis_connected",
     METRICS_BOOL, 0, NULL, metrics_get_redis_connected, 0, NULL,
     "1 while the ingest is up and reads Redis."},
    {"ws_broadcaster_entries_read_total", METRICS_COUNTER, METRICS_INSTANCE, "entries_read", 0, 0,
     NULL, metrics_get_ingest_entries_read, 0, NULL, "Stream entries read from Redis."},
    {"ws_broadcaster_entries_published_total", METRICS_COUNTER, METRICS_INSTANCE,
     "entries_published", 0, 0, NULL, metrics_get_ingest_entries_published, 0, NULL,
     "Stream entries published to the ring."},
    {"ws_broadcaster_duplicates_skipped_total", METRICS_COUNTER, METRICS_INSTANCE,
     "duplicates_skipped", 0, 0, NULL, metrics_get_ingest_duplicates_skipped, 0, NULL,
     "Pending entries skipped after an ingest restart because the ring already held them."},
    {"ws_broadcaster_redis_errors_total", METRICS_COUNTER, METRICS_INSTANCE, "redis_errors", 0, 0,
     NULL, metrics_get_ingest_redis_errors, 0, NULL, "Failed Redis commands and lost connections."},
    {"ws_broadcaster_uptime_seconds", METRICS_GAUGE, METRICS_INSTANCE, "uptime_seconds", 0, 0, NULL,
     metrics_get_uptime, 0, NULL, "Seconds since the instance started."},
    {"ws_broadcaster_open_connections", METRICS_GAUGE, METRICS_WORKER, "open_connections", 0, 0,
     NULL, NULL, W(open_connections), NULL,
     "TCP connections open, HTTP or WebSocket, upgraded or not."},
    {"ws_broadcaster_connections_refused_total", METRICS_COUNTER, METRICS_WORKER,
     "refused_connections", 0, 0, NULL, NULL, W(refused_connections), NULL,
     "TCP connections closed at accept: MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, or no PROXY "
     "header."},
    {"ws_broadcaster_conflated_clients", METRICS_GAUGE, METRICS_WORKER, "conflated_clients", 0, 0,
     NULL, NULL, W(conflated_clients), NULL,
     "Clients in conflated mode now: queue past CONFLATE_AT, latest update per key only."},
    {"ws_broadcaster_conflated_updates_total", METRICS_COUNTER, METRICS_WORKER, "conflated_updates",
     0, 0, NULL, NULL, W(conflated_updates), NULL,
     "Updates replaced in a client's queue by a newer one of the same key, never sent."},
    {"ws_broadcaster_ping_timeouts_total", METRICS_COUNTER, METRICS_WORKER, "ping_timeouts", 0, 0,
     NULL, NULL, W(ping_timeouts), NULL,
     "Clients dropped for not answering a ping within PING_TIMEOUT."},
    {"ws_broadcaster_closes_total", METRICS_COUNTER, METRICS_WORKER, "closes", 0, 0,
     &metrics_dim_closes, NULL, W(closes), NULL,
     "WebSocket closes the service started, by the close code it sent."},
    {"ws_broadcaster_upgrades_refused_total", METRICS_COUNTER, METRICS_WORKER, "upgrades_refused",
     0, 0, &metrics_dim_refused, NULL, W(upgrades_refused), NULL,
     "WebSocket upgrades refused with an HTTP status, by reason."},
    {"ws_broadcaster_delivery_latency_seconds", METRICS_HISTOGRAM, METRICS_WORKER,
     "delivery_latency_seconds", 0, 0, NULL, NULL, W(delivery_latency), NULL,
     "Seconds from an update's publication in the ring to the write that completed it to a "
     "client; 1 delivery in 8 is timed."},
    {"ws_broadcaster_ring_lag_frames", METRICS_GAUGE, METRICS_WORKER, "ring_lag", METRICS_NO_SUM, 0,
     NULL, metrics_get_ring_lag, 0, NULL,
     "Frames published to the ring and not yet read by the "
     "worker."},
    {"ws_broadcaster_ingest_latency_seconds", METRICS_HISTOGRAM, METRICS_INSTANCE,
     "ingest.latency_seconds", 0, 0, NULL, NULL, 0, metrics_hist_ingest,
     "Seconds from a Redis entry's time (its id, Redis's clock) to its publication in the ring."},
    {"ws_broadcaster_pid", METRICS_GAUGE, METRICS_PROCESS, "pid", 0, 0, NULL, metrics_get_pid, 0,
     NULL, "Process id (0 while the process is being restarted)."},
    {"ws_broadcaster_restarts_total", METRICS_COUNTER, METRICS_PROCESS, "restarts", 0, 0, NULL,
     metrics_get_restarts, 0, NULL, "Times the supervisor restarted the process's slot."},
    {"process_cpu_seconds_total", METRICS_COUNTER, METRICS_PROCESS, "cpu_seconds_total", 0, 1000,
     NULL, metrics_get_proc_cpu_ms, 0, NULL,
     "User and system CPU time of the process (starts over when it is restarted)."},
    {"process_resident_memory_bytes", METRICS_GAUGE, METRICS_PROCESS, "resident_memory_bytes", 0, 0,
     NULL, metrics_get_proc_rss_bytes, 0, NULL, "Resident memory of the process."},
    {"process_open_fds", METRICS_GAUGE, METRICS_PROCESS, "open_fds", 0, 0, NULL,
     metrics_get_proc_open_fds, 0, NULL, "Open file descriptors of the process."},
    {"process_max_fds", METRICS_GAUGE, METRICS_PROCESS, "max_fds", 0, 0, NULL,
     metrics_get_proc_max_fds, 0, NULL, "The process's limit of open file descriptors."},
    {"process_start_time_seconds", METRICS_GAUGE, METRICS_PROCESS, "start_time_seconds", 0, 1000,
     NULL, metrics_get_proc_start_ms, 0, NULL,
     "When the process started, seconds since the Unix epoch."},
    {"ws_broadcaster_snapshot_keys", METRICS_GAUGE, METRICS_INSTANCE, "snapshot.keys", 0, 0, NULL,
     metrics_get_snap_keys, 0, NULL, "Keys in the snapshot table."},
    {"ws_broadcaster_snapshot_bytes", METRICS_GAUGE, METRICS_INSTANCE, "snapshot.bytes", 0, 0, NULL,
     metrics_get_snap_bytes, 0, NULL, "Bytes of values the snapshot table holds."},
    {"ws_broadcaster_snapshot_max_keys", METRICS_GAUGE, METRICS_INSTANCE, "snapshot.max_keys", 0, 0,
     NULL, metrics_get_snap_max_keys, 0, NULL,
     "Keys the snapshot table may hold (SNAPSHOT_MAX_KEYS)."},
    {"ws_broadcaster_snapshot_capacity_bytes", METRICS_GAUGE, METRICS_INSTANCE,
     "snapshot.capacity_bytes", 0, 0, NULL, metrics_get_snap_capacity_bytes, 0, NULL,
     "Bytes of values the snapshot table may hold."},
    {"ws_broadcaster_snapshot_evictions_total", METRICS_COUNTER, METRICS_INSTANCE, NULL, 0, 0,
     &metrics_dim_evicted, metrics_get_snap_evicted, 0, NULL,
     "Keys that left the snapshot table: ttl, not updated for SNAPSHOT_TTL (opportunities: "
     "OPPORTUNITY_TTL); full, the oldest when the table was full."},
    {"ws_broadcaster_snapshot_dropped_too_large_total", METRICS_COUNTER, METRICS_INSTANCE,
     "snapshot.dropped_too_large", 0, 0, NULL, metrics_get_snap_dropped_too_large, 0, NULL,
     "Entries too large to keep in the snapshot table."},
    {"ws_broadcaster_snapshots_sent_total", METRICS_COUNTER, METRICS_WORKER, "snapshot.sent", 0, 0,
     NULL, NULL, W(snapshots_sent), NULL, "Snapshots sent to clients in full."},
    {"ws_broadcaster_snapshot_items_sent_total", METRICS_COUNTER, METRICS_WORKER,
     "snapshot.items_sent", 0, 0, NULL, NULL, W(snapshot_items_sent), NULL,
     "Keys sent in snapshots."},
    {"ws_broadcaster_snapshots_lapped_total", METRICS_COUNTER, METRICS_WORKER, "snapshot.lapped", 0,
     0, NULL, NULL, W(lapped_snapshots), NULL,
     "Fresh snapshots sent because entries were lost before a worker read them."},
    {"ws_broadcaster_resumes_total", METRICS_COUNTER, METRICS_WORKER, NULL, 0, 0,
     &metrics_dim_resumes, metrics_get_resumes, 0, NULL,
     "Resumes: ok (replayed what was missed), or refused (epoch_changed, too_old, "
     "unknown_stream) and answered with a snapshot."},
    {"ws_broadcaster_stream_entries_read_total", METRICS_COUNTER, METRICS_STREAM, "entries_read", 0,
     0, NULL, metrics_get_stream_entries_read, 0, NULL, "Entries read from the stream."},
    {"ws_broadcaster_stream_last_entry_timestamp_seconds", METRICS_GAUGE, METRICS_STREAM,
     "last_entry_timestamp_seconds", 0, 1000, NULL, metrics_get_stream_last_ms, 0, NULL,
     "Time of the newest entry read from the stream (its id, Redis's clock), seconds since the "
     "Unix epoch; absent until one is read."},
    {"ws_broadcaster_stream_last_entry_age_seconds", METRICS_GAUGE, METRICS_STREAM,
     "last_entry_age_seconds", 0, 1000, NULL, metrics_get_stream_age_ms, 0, NULL,
     "Age of the newest entry read from the stream (now minus its id's time); absent until one is "
     "read."},
    {"ws_broadcaster_stream_lag_entries", METRICS_GAUGE, METRICS_STREAM, "lag", 0, 0, NULL,
     metrics_get_stream_lag, 0, NULL,
     "Entries in the stream not yet read by this instance's group (XINFO GROUPS lag, Redis 7); "
     "absent while Redis does not say."},
};

#define METRICS_N(a) (sizeof(a) / sizeof((a)[0]))

/* -- reading a family -- */

static int
metrics_value1(const struct metrics_view *v, const struct metrics_family *f,
               const struct metrics_at *at, uint64_t *out)
{
    const char *slot;

    if (f->get != NULL)
        return f->get(v, at, out);
    /* A counter (or an array of them, for a dim) in the worker's slot. */
    slot = (const char *)&v->s->workers[at->worker] + f->off;
    *out = atomic_load_explicit((_Atomic uint64_t *)slot + at->value, memory_order_relaxed);
    return 0;
}

/* The value at `at`, summed over the workers if at->all.  -1: absent. */
static int
metrics_value(const struct metrics_view *v, const struct metrics_family *f,
              const struct metrics_at *at, uint64_t *out)
{
    struct metrics_at one = *at;
    uint64_t sum = 0, x;

    if (!at->all)
        return metrics_value1(v, f, at, out);
    for (one.all = 0, one.worker = 0; one.worker < v->nworkers; one.worker++) {
        if (metrics_value1(v, f, &one, &x) != 0)
            return -1;
        sum += x;
    }
    *out = sum;
    return 0;
}

static void
metrics_hist_counts(const struct metrics_view *v, const struct metrics_family *f,
                    const struct metrics_at *at, struct hist_counts *c)
{
    memset(c, 0, sizeof(*c));
    if (f->hist != NULL) {
        hist_read_add(f->hist(v), c);
        return;
    }
    for (uint32_t w = 0; w < v->nworkers; w++) {
        if (at->all || w == at->worker)
            hist_read_add((const struct hist *)((const char *)&v->s->workers[w] + f->off), c);
    }
}

/* value / scale as an exact decimal ("12", "1.500"), the same text in both
 * formats. */
static void
metrics_number(char *buf, size_t size, uint64_t value, unsigned scale)
{
    if (scale <= 1) {
        snprintf(buf, size, "%llu", (unsigned long long)value);
        return;
    }
    snprintf(buf, size, "%llu.%0*llu", (unsigned long long)(value / scale), scale == 1000 ? 3 : 6,
             (unsigned long long)(value % scale));
}

static uint32_t
metrics_nseries(const struct metrics_view *v, const struct metrics_family *f)
{
    switch (f->scope) {
    case METRICS_WORKER:
        return v->nworkers;
    case METRICS_STREAM:
        return v->nstreams;
    case METRICS_PROCESS:
        return v->nprocs;
    case METRICS_INSTANCE:
        break;
    }
    return 1;
}

static struct metrics_at
metrics_series_at(const struct metrics_family *f, uint32_t k)
{
    struct metrics_at at = {0, 0, 0, 0};

    if (f->scope == METRICS_WORKER)
        at.worker = k;
    else
        at.item = k;
    return at;
}

/* ---- JSON ---------------------------------------------------------------- */

struct metrics_json {
    const struct metrics_view *v;
    cJSON *root;
    cJSON **workers; /* v->nworkers objects, attached to root at the end */
    cJSON **streams;
    int oom;
};

/* obj's member `key`, an object, made if missing. */
static cJSON *
metrics_json_object(struct metrics_json *j, cJSON *obj, const char *key, size_t len)
{
    char name[64];
    cJSON *o;

    snprintf(name, sizeof(name), "%.*s", (int)len, key);
    o = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (o != NULL)
        return o;
    o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToObject(obj, name, o)) {
        cJSON_Delete(o);
        j->oom = 1;
        return NULL;
    }
    return o;
}

/* item at path ("a" or "a.b") in obj; takes item. */
static void
metrics_json_put(struct metrics_json *j, cJSON *obj, const char *path, cJSON *item)
{
    const char *dot;

    while (obj != NULL && (dot = strchr(path, '.')) != NULL) {
        obj = metrics_json_object(j, obj, path, (size_t)(dot - path));
        path = dot + 1;
    }
    if (obj == NULL || item == NULL || !cJSON_AddItemToObject(obj, path, item)) {
        cJSON_Delete(item);
        j->oom = 1;
    }
}

static cJSON *
metrics_json_number(uint64_t value, unsigned scale)
{
    char text[48];

    metrics_number(text, sizeof(text), value, scale);
    return cJSON_CreateRaw(text);
}

static cJSON *
metrics_json_hist(const struct hist_counts *c)
{
    cJSON *h = cJSON_CreateObject(), *b = cJSON_CreateObject();
    int ok = h != NULL && b != NULL && cJSON_AddItemToObject(h, "buckets", b);
    char le[16];

    if (!ok) {
        if (h == NULL || cJSON_GetObjectItemCaseSensitive(h, "buckets") == NULL)
            cJSON_Delete(b);
        cJSON_Delete(h);
        return NULL;
    }
    for (unsigned i = 0; ok && i < HIST_NBUCKETS; i++) {
        cJSON *n = metrics_json_number(c->cumulative[i], 1);
        hist_format_bound(i, le, sizeof(le));
        ok = n != NULL && cJSON_AddItemToObject(b, le, n);
        if (!ok)
            cJSON_Delete(n);
    }
    if (ok) {
        cJSON *sum = metrics_json_number(c->sum_us, 1000000);
        ok = sum != NULL && cJSON_AddItemToObject(h, "sum", sum);
        if (!ok)
            cJSON_Delete(sum);
    }
    if (ok) {
        cJSON *count = metrics_json_number(hist_count(c), 1);
        ok = count != NULL && cJSON_AddItemToObject(h, "count", count);
        if (!ok)
            cJSON_Delete(count);
    }
    if (!ok) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

static cJSON *
metrics_json_value(const struct metrics_family *f, uint64_t value)
{
    if (f->flags & METRICS_BOOL)
        return cJSON_CreateBool(value != 0);
    return metrics_json_number(value, f->scale);
}

/* Family f's figures at `at` into obj. */
static void
metrics_json_family(struct metrics_json *j, cJSON *obj, const struct metrics_family *f,
                    const struct metrics_at *at)
{
    const struct metrics_dim *d = f->dim;
    struct metrics_at a = *at;
    uint64_t value, sum = 0;
    int any = 0;

    if (f->flags & METRICS_INFO) {
        metrics_json_put(j, obj, f->json, cJSON_CreateString(WSB_VERSION));
        return;
    }
    if (f->type == METRICS_HISTOGRAM) {
        struct hist_counts c;
        metrics_hist_counts(j->v, f, at, &c);
        metrics_json_put(j, obj, f->json, metrics_json_hist(&c));
        return;
    }
    if (d == NULL) {
        if (metrics_value(j->v, f, at, &value) == 0)
            metrics_json_put(j, obj, f->json, metrics_json_value(f, value));
        return;
    }
    if (d->json == NULL) {
        cJSON *o = cJSON_CreateObject();
        for (a.value = 0; o != NULL && a.value < d->n; a.value++) {
            if (metrics_value(j->v, f, &a, &value) == 0)
                metrics_json_put(j, o, d->values[a.value], metrics_json_value(f, value));
        }
        metrics_json_put(j, obj, f->json, o);
        return;
    }
    for (a.value = 0; a.value < d->n; a.value++) {
        if (metrics_value(j->v, f, &a, &value) != 0)
            continue;
        metrics_json_put(j, obj, d->json[a.value], metrics_json_value(f, value));
        sum += value;
        any = 1;
    }
    if (f->json != NULL && any)
        metrics_json_put(j, obj, f->json, metrics_json_value(f, sum));
}

static cJSON *
metrics_json_proc_object(struct metrics_json *j, const struct metrics_proc *p)
{
    switch (p->role) {
    case METRICS_ROLE_SUPERVISOR:
        return metrics_json_object(j, j->root, "supervisor", 10);
    case METRICS_ROLE_INGEST:
        return metrics_json_object(j, j->root, "ingest", 6);
    case METRICS_ROLE_WORKER:
        break;
    }
    return j->workers[p->worker];
}

/* An array of the n objects objs under key in root; takes them. */
static void
metrics_json_array(struct metrics_json *j, const char *key, cJSON **objs, uint32_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (uint32_t i = 0; i < n; i++) {
        if (a == NULL || !cJSON_AddItemToArray(a, objs[i])) {
            cJSON_Delete(objs[i]);
            j->oom = 1;
        }
        objs[i] = NULL;
    }
    metrics_json_put(j, j->root, key, a);
}

int
metrics_json(struct shm *s, struct metrics_buf *out)
{
    struct metrics_view *v = metrics_view_new(s);
    struct metrics_json j = {v, NULL, NULL, NULL, 0};
    char *text = NULL;
    int rc = -1;

    if (v == NULL)
        return -1;
    j.root = cJSON_CreateObject();
    j.workers = calloc(v->nworkers + 1, sizeof(cJSON *));
    j.streams = calloc(v->nstreams + 1, sizeof(cJSON *));
    if (j.root == NULL || j.workers == NULL || j.streams == NULL)
        goto done;
    for (uint32_t w = 0; w < v->nworkers; w++) {
        /* Workers are numbered from 1, as in the logs and process names. */
        if ((j.workers[w] = cJSON_CreateObject()) == NULL ||
            cJSON_AddNumberToObject(j.workers[w], "worker", w + 1) == NULL)
            goto done;
    }
    for (uint32_t k = 0; k < v->nstreams; k++) {
        if ((j.streams[k] = cJSON_CreateObject()) == NULL ||
            cJSON_AddStringToObject(j.streams[k], "stream", v->streams[k].name) == NULL)
            goto done;
    }
    for (size_t i = 0; i < METRICS_N(metrics_families); i++) {
        const struct metrics_family *f = &metrics_families[i];
        uint32_t n = metrics_nseries(v, f);

        if (f->scope == METRICS_INSTANCE) {
            struct metrics_at at = metrics_series_at(f, 0);
            metrics_json_family(&j, j.root, f, &at);
            continue;
        }
        if (f->scope == METRICS_WORKER && !(f->flags & METRICS_NO_SUM)) {
            struct metrics_at all = {1, 0, 0, 0};
            metrics_json_family(&j, j.root, f, &all);
        }
        for (uint32_t k = 0; k < n; k++) {
            struct metrics_at at = metrics_series_at(f, k);
            cJSON *obj = f->scope == METRICS_WORKER   ? j.workers[k]
                         : f->scope == METRICS_STREAM ? j.streams[k]
                                                      : metrics_json_proc_object(&j, &v->procs[k]);
            metrics_json_family(&j, obj, f, &at);
        }
    }
    metrics_json_array(&j, "workers", j.workers, v->nworkers);
    metrics_json_array(&j, "streams", j.streams, v->nstreams);
    if (!j.oom && (text = cJSON_PrintUnformatted(j.root)) != NULL)
        rc = metrics_printf(out, "%s", text);
done:
    cJSON_free(text);
    if (j.workers != NULL) {
        for (uint32_t w = 0; w < v->nworkers; w++)
            cJSON_Delete(j.workers[w]);
    }
    if (j.streams != NULL) {
        for (uint32_t k = 0; k < v->nstreams; k++)
            cJSON_Delete(j.streams[k]);
    }
    free(j.workers);
    free(j.streams);
    cJSON_Delete(j.root);
    free(v);
    return rc;
}

/* ---- Prometheus text ------------------------------------------------------- */

/* A label value, escaped as the text format wants (\\, \", \n). */
static int
metrics_label_value(struct metrics_buf *out, const char *value)
{
    int rc = 0;

    for (const char *p = value; rc == 0 && *p != '\0'; p++) {
        if (*p == '\\')
            rc = metrics_printf(out, "\\\\");
        else if (*p == '"')
            rc = metrics_printf(out, "\\\"");
        else if (*p == '\n')
            rc = metrics_printf(out, "\\n");
        else
            rc = metrics_printf(out, "%c", *p);
    }
    return rc;
}

/* name{labels} (no braces without labels): the series k's labels, then
 * the dim's, then `extra` (le="..."), whichever there are. */
static int
metrics_prom_name(struct metrics_buf *out, const struct metrics_view *v,
                  const struct metrics_family *f, const char *suffix, uint32_t k,
                  const struct metrics_at *at, const char *extra)
{
    const char *sep = "{";
    int rc = metrics_printf(out, "%s%s", f->name, suffix);

    if (rc == 0 && f->scope == METRICS_WORKER) {
        rc = metrics_printf(out, "%sworker=\"%u\"", sep, k + 1);
        sep = ",";
    } else if (rc == 0 && f->scope == METRICS_STREAM) {
        rc = metrics_printf(out, "%sstream=\"", sep);
        if (rc == 0)
            rc = metrics_label_value(out, v->streams[k].name);
        if (rc == 0)
            rc = metrics_printf(out, "\"");
        sep = ",";
    } else if (rc == 0 && f->scope == METRICS_PROCESS) {
        const struct metrics_proc *p = &v->procs[k];
        rc = metrics_printf(out, "%srole=\"%s\"", sep, metrics_role_names[p->role]);
        if (rc == 0 && p->role == METRICS_ROLE_WORKER)
            rc = metrics_printf(out, ",worker=\"%u\"", p->worker + 1);
        sep = ",";
    }
    if (rc == 0 && f->dim != NULL) {
        rc = metrics_printf(out, "%s%s=\"%s\"", sep, f->dim->label, f->dim->values[at->value]);
        sep = ",";
    }
    if (rc == 0 && f->flags & METRICS_INFO) {
        rc = metrics_printf(out, "%sversion=\"", sep);
        if (rc == 0)
            rc = metrics_label_value(out, WSB_VERSION);
        if (rc == 0)
            rc = metrics_printf(out, "\"");
        sep = ",";
    }
    if (rc == 0 && extra != NULL) {
        rc = metrics_printf(out, "%s%s", sep, extra);
        sep = ",";
    }
    if (rc == 0 && sep[0] == ',')
        rc = metrics_printf(out, "}");
    return rc;
}

static int
metrics_prom_hist(struct metrics_buf *out, const struct metrics_view *v,
                  const struct metrics_family *f, uint32_t k, const struct metrics_at *at)
{
    struct hist_counts c;
    char le[32], num[48];
    int rc = 0;

    metrics_hist_counts(v, f, at, &c);
    for (unsigned i = 0; rc == 0 && i < HIST_NBUCKETS; i++) {
        char extra[40];
        hist_format_bound(i, le, sizeof(le));
        snprintf(extra, sizeof(extra), "le=\"%s\"", le);
        rc = metrics_prom_name(out, v, f, "_bucket", k, at, extra);
        if (rc == 0)
            rc = metrics_printf(out, " %llu\n", (unsigned long long)c.cumulative[i]);
    }
    metrics_number(num, sizeof(num), c.sum_us, 1000000);
    if (rc == 0)
        rc = metrics_prom_name(out, v, f, "_sum", k, at, NULL);
    if (rc == 0)
        rc = metrics_printf(out, " %s\n", num);
    if (rc == 0)
        rc = metrics_prom_name(out, v, f, "_count", k, at, NULL);
    if (rc == 0)
        rc = metrics_printf(out, " %llu\n", (unsigned long long)hist_count(&c));
    return rc;
}

int
metrics_prometheus(struct shm *s, struct metrics_buf *out)
{
    struct metrics_view *v = metrics_view_new(s);
    int rc = 0;

    if (v == NULL)
        return -1;
    for (size_t i = 0; rc == 0 && i < METRICS_N(metrics_families); i++) {
        const struct metrics_family *f = &metrics_families[i];
        uint32_t n = metrics_nseries(v, f);

        rc = metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            metrics_type_names[f->type]);
        for (uint32_t k = 0; rc == 0 && k < n; k++) {
            struct metrics_at at = metrics_series_at(f, k);
            unsigned nvalues = f->dim != NULL ? f->dim->n : 1;

            if (f->type == METRICS_HISTOGRAM) {
                rc = metrics_prom_hist(out, v, f, k, &at);
                continue;
            }
            for (at.value = 0; rc == 0 && at.value < nvalues; at.value++) {
                uint64_t value;
                char num[48];
                if (metrics_value(v, f, &at, &value) != 0)
                    continue;
                metrics_number(num, sizeof(num), value, f->scale);
                rc = metrics_prom_name(out, v, f, "", k, &at, NULL);
                if (rc == 0)
                    rc = metrics_printf(out, " %s\n", num);
            }
        }
    }
    free(v);
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
