#include "figures.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/snaptab.h"
#include "../common/timeutil.h"

#ifndef WSB_VERSION
#define WSB_VERSION "0.0.0"
#endif

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

const char *const figures_version = WSB_VERSION;
const char *const figures_type_names[] = {"gauge", "counter", "histogram"};
const char *const figures_role_names[] = {"supervisor", "ingest", "worker"};

int
figures_redis_up(struct shm *s)
{
    /* redis_up is the ingest's own word and a dead ingest cannot clear it,
     * while pid is cleared by the supervisor when it reaps the ingest
     * (shm.h): every reader of "is the ingest up" asks both. */
    return LOAD(s->ingest.redis_up) && LOAD(s->ingest.pid) != 0;
}

static int (*figures_proc_reader)(int pid, struct procstat *out) = procstat_read;

void
figures_set_proc_reader(int (*reader)(int pid, struct procstat *out))
{
    figures_proc_reader = reader != NULL ? reader : procstat_read;
}

/* ---- what one request reads ------------------------------------------------ */

static void
figures_proc_load(struct figures_proc *p, enum figures_role role, uint32_t worker, int32_t pid)
{
    p->role = role;
    p->worker = worker;
    p->pid = pid;
    p->have = pid > 0 && figures_proc_reader(pid, &p->st) == 0;
}

struct figures_view *
figures_view_new(struct shm *s)
{
    struct figures_view *v = calloc(1, sizeof(*v));
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
    figures_proc_load(&v->procs[v->nprocs++], FIGURES_ROLE_SUPERVISOR, 0, s->hdr.supervisor_pid);
    figures_proc_load(&v->procs[v->nprocs++], FIGURES_ROLE_INGEST, 0, LOAD(s->ingest.pid));
    for (uint32_t w = 0; w < v->nworkers; w++)
        figures_proc_load(&v->procs[v->nprocs++], FIGURES_ROLE_WORKER, w, LOAD(s->workers[w].pid));
    for (uint32_t r = 0; r < SHM_MAX_STREAMS; r++) {
        struct figures_stream *st = &v->streams[v->nstreams];
        if (LOAD(s->streams[r].reading) && shm_stream_name(s, r, st->name, sizeof(st->name)) == 0) {
            st->row = r;
            v->nstreams++;
        }
    }
    return v;
}

/* -- getters -- */

#define FIGURES_GET(name)                                                                          \
    static int figures_get_##name(const struct figures_view *v, const struct figures_at *at,       \
                                  uint64_t *out)
#define FIGURES_UNUSED(v, at)                                                                      \
    do {                                                                                           \
        (void)(v);                                                                                 \
        (void)(at);                                                                                \
    } while (0)

#define FIGURES_INGEST(field)                                                                      \
    FIGURES_GET(ingest_##field)                                                                    \
    {                                                                                              \
        (void)at;                                                                                  \
        *out = (uint64_t)LOAD(v->s->ingest.field);                                                 \
        return 0;                                                                                  \
    }
FIGURES_INGEST(invalid_entries)
FIGURES_INGEST(entries_read)
FIGURES_INGEST(entries_published)
FIGURES_INGEST(duplicates_skipped)
FIGURES_INGEST(redis_errors)

#define FIGURES_SNAP(field)                                                                        \
    FIGURES_GET(snap_##field)                                                                      \
    {                                                                                              \
        (void)at;                                                                                  \
        *out = (uint64_t)v->snap.field;                                                            \
        return 0;                                                                                  \
    }
FIGURES_SNAP(keys)
FIGURES_SNAP(bytes)
FIGURES_SNAP(max_keys)
FIGURES_SNAP(capacity_bytes)
FIGURES_SNAP(dropped_too_large)

FIGURES_GET(snap_evicted)
{
    *out = at->value == 0 ? v->snap.evicted_ttl : v->snap.evicted_full;
    return 0;
}

FIGURES_GET(one)
{
    FIGURES_UNUSED(v, at);
    *out = 1;
    return 0;
}

FIGURES_GET(capacity)
{
    (void)at;
    *out = shm_ring(v->s)->nslots;
    return 0;
}

FIGURES_GET(usage)
{
    (void)at;
    *out = v->t.broadcast_usage;
    return 0;
}

FIGURES_GET(ring_head)
{
    (void)at;
    *out = v->head;
    return 0;
}

FIGURES_GET(redis_connected)
{
    (void)at;
    *out = (uint64_t)figures_redis_up(v->s);
    return 0;
}

FIGURES_GET(uptime)
{
    (void)at;
    /* Wall clock: stepped back below the start time, it reads 0, not an
     * unsigned wrap-around. */
    *out = v->now_ms > v->s->hdr.started_ms ? (v->now_ms - v->s->hdr.started_ms) / 1000 : 0;
    return 0;
}

FIGURES_GET(ring_lag)
{
    uint64_t next = LOAD(v->s->workers[at->worker].ring_next);

    /* A cursor past the head (a worker that read up to it while the head
     * was loaded) is no lag, not a wrap-around. */
    *out = v->head > next ? v->head - next : 0;
    return 0;
}

/* The four bounds a slow client is cut at (outbound.h), in dim order. */
FIGURES_GET(slow)
{
    const struct shm_worker *w = &v->s->workers[at->worker];
    const _Atomic uint64_t *c[] = {&w->slow_keys, &w->slow_bytes, &w->slow_lag,
                                   &w->slow_send_timeout};

    *out = atomic_load_explicit((_Atomic uint64_t *)c[at->value], memory_order_relaxed);
    return 0;
}

FIGURES_GET(resumes)
{
    const struct shm_worker *w = &v->s->workers[at->worker];
    const _Atomic uint64_t *c[] = {&w->resumes_ok, &w->resumes_epoch_changed, &w->resumes_too_old,
                                   &w->resumes_unknown_stream};

    *out = atomic_load_explicit((_Atomic uint64_t *)c[at->value], memory_order_relaxed);
    return 0;
}

/* Processes (v->procs[at->item]). */
FIGURES_GET(pid)
{
    *out = (uint64_t)v->procs[at->item].pid;
    return 0;
}

FIGURES_GET(restarts)
{
    const struct figures_proc *p = &v->procs[at->item];

    if (p->role == FIGURES_ROLE_SUPERVISOR)
        return -1; /* nothing restarts it */
    *out = p->role == FIGURES_ROLE_INGEST ? LOAD(v->s->ingest.restarts)
                                          : LOAD(v->s->workers[p->worker].restarts);
    return 0;
}

#define FIGURES_PROC(field)                                                                        \
    FIGURES_GET(proc_##field)                                                                      \
    {                                                                                              \
        const struct figures_proc *p = &v->procs[at->item];                                        \
        if (!p->have)                                                                              \
            return -1;                                                                             \
        *out = p->st.field;                                                                        \
        return 0;                                                                                  \
    }
FIGURES_PROC(cpu_ms)
FIGURES_PROC(rss_bytes)
FIGURES_PROC(open_fds)
FIGURES_PROC(start_ms)

FIGURES_GET(proc_max_fds)
{
    const struct figures_proc *p = &v->procs[at->item];

    /* "unlimited" has no number: left out. */
    if (!p->have || p->st.max_fds == UINT64_MAX)
        return -1;
    *out = p->st.max_fds;
    return 0;
}

/* Streams (v->streams[at->item]'s row). */
static const struct shm_stream *
figures_row(const struct figures_view *v, const struct figures_at *at)
{
    return &v->s->streams[v->streams[at->item].row];
}

FIGURES_GET(stream_entries_read)
{
    *out = LOAD(((struct shm_stream *)figures_row(v, at))->entries_read);
    return 0;
}

FIGURES_GET(stream_last_ms)
{
    uint64_t ms = LOAD(((struct shm_stream *)figures_row(v, at))->read_ms);

    if (ms == 0)
        return -1; /* nothing read yet */
    *out = ms;
    return 0;
}

FIGURES_GET(stream_age_ms)
{
    uint64_t ms = LOAD(((struct shm_stream *)figures_row(v, at))->read_ms);

    if (ms == 0)
        return -1;
    /* Redis's clock ahead of ours reads as fresh, not as a wrap-around. */
    *out = v->now_ms > ms ? v->now_ms - ms : 0;
    return 0;
}

FIGURES_GET(stream_lag)
{
    struct shm_stream *row = (struct shm_stream *)figures_row(v, at);
    uint64_t at_ms = LOAD(row->lag_at_ms);

    if (!LOAD(row->lag_known) || at_ms == 0 ||
        (v->now_ms > at_ms && v->now_ms - at_ms > SHM_LAG_FRESH_MS))
        return -1;
    *out = LOAD(row->lag);
    return 0;
}

static const struct hist *
figures_hist_ingest(const struct figures_view *v)
{
    return &v->s->ingest_latency;
}

/* -- the extra labels -- */

static const char *const figures_slow_values[] = {"keys", "bytes", "lag", "send_timeout"};
static const char *const figures_slow_json[] = {"slow_disconnects_keys", "slow_disconnects_bytes",
                                                "slow_disconnects_lag",
                                                "slow_disconnects_send_timeout"};
static const struct figures_dim figures_dim_slow = {"reason", figures_slow_values, 4,
                                                    figures_slow_json};

static const char *const figures_resume_values[] = {"ok", "epoch_changed", "too_old",
                                                    "unknown_stream"};
static const char *const figures_resume_json[] = {
    "snapshot.resumes_ok", "snapshot.resumes_epoch_changed", "snapshot.resumes_too_old",
    "snapshot.resumes_unknown_stream"};
static const struct figures_dim figures_dim_resumes = {"result", figures_resume_values, 4,
                                                       figures_resume_json};

static const char *const figures_evict_values[] = {"ttl", "full"};
static const char *const figures_evict_json[] = {"snapshot.evicted_ttl", "snapshot.evicted_full"};
static const struct figures_dim figures_dim_evicted = {"reason", figures_evict_values, 2,
                                                       figures_evict_json};

static const struct figures_dim figures_dim_closes = {"code", shm_close_names, SHM_CLOSE_SLOTS,
                                                      NULL};

static const struct figures_dim figures_dim_refused = {"reason", shm_refusal_names, SHM_REFUSALS,
                                                       NULL};

#define W(field) offsetof(struct shm_worker, field)

/*
 * Every figure /metrics shows, in JSON order (the seed's five first).  Both
 * renderers walk this table and nothing else.  JSON keys are the
 * interface: never rename one; add new families where they belong.
 */
const struct figures_family figures_families[] = {
    {"ws_broadcaster_active_clients", FIGURES_GAUGE, FIGURES_WORKER, "active_clients", 0, 0, NULL,
     NULL, W(active_clients), NULL, "Connected WebSocket clients."},
    {"ws_broadcaster_connections_total", FIGURES_COUNTER, FIGURES_WORKER, "total_connections", 0, 0,
     NULL, NULL, W(total_connections), NULL, "WebSocket connections established."},
    {"ws_broadcaster_messages_sent_total", FIGURES_COUNTER, FIGURES_WORKER, "total_messages", 0, 0,
     NULL, NULL, W(total_messages), NULL, "Messages written to clients."},
    {"ws_broadcaster_ring_capacity_frames", FIGURES_GAUGE, FIGURES_INSTANCE, "broadcast_capacity",
     0, 0, NULL, figures_get_capacity, 0, NULL, "Ring capacity in frames (RING_SIZE)."},
    {"ws_broadcaster_ring_usage_frames", FIGURES_GAUGE, FIGURES_INSTANCE, "broadcast_usage", 0, 0,
     NULL, figures_get_usage, 0, NULL,
     "Frames published to the ring and not yet read by the slowest worker."},
    {"ws_broadcaster_build_info", FIGURES_GAUGE, FIGURES_INSTANCE, "version", FIGURES_INFO, 0, NULL,
     figures_get_one, 0, NULL, "The version of ws-broadcaster running, as a label; always 1."},
    {"ws_broadcaster_messages_dropped_total", FIGURES_COUNTER, FIGURES_WORKER, "dropped_messages",
     0, 0, NULL, NULL, W(dropped_messages), NULL,
     "Messages never sent: a client's queue was full, or it was cut off with them queued."},
    {"ws_broadcaster_invalid_entries_total", FIGURES_COUNTER, FIGURES_INSTANCE, "invalid_entries",
     0, 0, NULL, figures_get_ingest_invalid_entries, 0, NULL,
     "Malformed stream entries skipped and acknowledged."},
    {"ws_broadcaster_slow_disconnects_total", FIGURES_COUNTER, FIGURES_WORKER, "slow_disconnects",
     0, 0, &figures_dim_slow, figures_get_slow, 0, NULL,
     "Slow clients cut off (close 1008), by the bound they passed."},
    {"ws_broadcaster_ring_missed_frames_total", FIGURES_COUNTER, FIGURES_WORKER, "ring_missed", 0,
     0, NULL, NULL, W(ring_missed), NULL,
     "Frames a worker lost because the ring lapped it before it read them."},
    {"ws_broadcaster_invalid_frames_total", FIGURES_COUNTER, FIGURES_WORKER, "invalid_frames", 0, 0,
     NULL, NULL, W(invalid_frames), NULL, "Ring frames a worker could not decode or encode."},
    {"ws_broadcaster_client_errors_total", FIGURES_COUNTER, FIGURES_WORKER, "client_errors", 0, 0,
     NULL, NULL, W(client_errors), NULL,
     "Error replies sent to clients, and closes for a protocol violation."},
    {"ws_broadcaster_ring_frames_total", FIGURES_COUNTER, FIGURES_INSTANCE, "ring_head", 0, 0, NULL,
     figures_get_ring_head, 0, NULL,
     "Frames ever published to the ring (entries and control frames): the next frame's "
     "sequence."},
    {"ws_broadcaster_redis_connected", FIGURES_GAUGE, FIGURES_INSTANCE, "redis_connected",
     FIGURES_BOOL, 0, NULL, figures_get_redis_connected, 0, NULL,
     "1 while the ingest is up and reads Redis."},
    {"ws_broadcaster_entries_read_total", FIGURES_COUNTER, FIGURES_INSTANCE, "entries_read", 0, 0,
     NULL, figures_get_ingest_entries_read, 0, NULL, "Stream entries read from Redis."},
    {"ws_broadcaster_entries_published_total", FIGURES_COUNTER, FIGURES_INSTANCE,
     "entries_published", 0, 0, NULL, figures_get_ingest_entries_published, 0, NULL,
     "Stream entries published to the ring."},
    {"ws_broadcaster_duplicates_skipped_total", FIGURES_COUNTER, FIGURES_INSTANCE,
     "duplicates_skipped", 0, 0, NULL, figures_get_ingest_duplicates_skipped, 0, NULL,
     "Pending entries skipped after an ingest restart because the ring already held them."},
    {"ws_broadcaster_redis_errors_total", FIGURES_COUNTER, FIGURES_INSTANCE, "redis_errors", 0, 0,
     NULL, figures_get_ingest_redis_errors, 0, NULL, "Failed Redis commands and lost connections."},
    {"ws_broadcaster_uptime_seconds", FIGURES_GAUGE, FIGURES_INSTANCE, "uptime_seconds", 0, 0, NULL,
     figures_get_uptime, 0, NULL, "Seconds since the instance started."},
    {"ws_broadcaster_open_connections", FIGURES_GAUGE, FIGURES_WORKER, "open_connections", 0, 0,
     NULL, NULL, W(open_connections), NULL,
     "TCP connections open, HTTP or WebSocket, upgraded or not."},
    {"ws_broadcaster_connections_refused_total", FIGURES_COUNTER, FIGURES_WORKER,
     "refused_connections", 0, 0, NULL, NULL, W(refused_connections), NULL,
     "TCP connections closed at accept: MAX_CONNECTIONS, MAX_CONNECTIONS_PER_IP, or no PROXY "
     "header."},
    {"ws_broadcaster_conflated_clients", FIGURES_GAUGE, FIGURES_WORKER, "conflated_clients", 0, 0,
     NULL, NULL, W(conflated_clients), NULL,
     "Clients in conflated mode now: queue past CONFLATE_AT, latest update per key only."},
    {"ws_broadcaster_conflated_updates_total", FIGURES_COUNTER, FIGURES_WORKER, "conflated_updates",
     0, 0, NULL, NULL, W(conflated_updates), NULL,
     "Updates replaced in a client's queue by a newer one of the same key, never sent."},
    {"ws_broadcaster_ping_timeouts_total", FIGURES_COUNTER, FIGURES_WORKER, "ping_timeouts", 0, 0,
     NULL, NULL, W(ping_timeouts), NULL,
     "Clients dropped for not answering a ping within PING_TIMEOUT."},
    {"ws_broadcaster_closes_total", FIGURES_COUNTER, FIGURES_WORKER, "closes", 0, 0,
     &figures_dim_closes, NULL, W(closes), NULL,
     "WebSocket closes the service started, by the close code it sent."},
    {"ws_broadcaster_upgrades_refused_total", FIGURES_COUNTER, FIGURES_WORKER, "upgrades_refused",
     0, 0, &figures_dim_refused, NULL, W(upgrades_refused), NULL,
     "WebSocket upgrades refused with an HTTP status, by reason."},
    {"ws_broadcaster_delivery_latency_seconds", FIGURES_HISTOGRAM, FIGURES_WORKER,
     "delivery_latency_seconds", 0, 0, NULL, NULL, W(delivery_latency), NULL,
     "Seconds from an update's publication in the ring to the write that completed it to a "
     "client; 1 delivery in 8 is timed."},
    {"ws_broadcaster_ring_lag_frames", FIGURES_GAUGE, FIGURES_WORKER, "ring_lag", FIGURES_NO_SUM, 0,
     NULL, figures_get_ring_lag, 0, NULL,
     "Frames published to the ring and not yet read by the "
     "worker."},
    {"ws_broadcaster_ingest_latency_seconds", FIGURES_HISTOGRAM, FIGURES_INSTANCE,
     "ingest.latency_seconds", 0, 0, NULL, NULL, 0, figures_hist_ingest,
     "Seconds from a Redis entry's time (its id, Redis's clock) to its publication in the ring."},
    {"ws_broadcaster_pid", FIGURES_GAUGE, FIGURES_PROCESS, "pid", 0, 0, NULL, figures_get_pid, 0,
     NULL, "Process id (0 while the process is being restarted)."},
    {"ws_broadcaster_restarts_total", FIGURES_COUNTER, FIGURES_PROCESS, "restarts", 0, 0, NULL,
     figures_get_restarts, 0, NULL, "Times the supervisor restarted the process's slot."},
    {"process_cpu_seconds_total", FIGURES_COUNTER, FIGURES_PROCESS, "cpu_seconds_total", 0, 1000,
     NULL, figures_get_proc_cpu_ms, 0, NULL,
     "User and system CPU time of the process (starts over when it is restarted)."},
    {"process_resident_memory_bytes", FIGURES_GAUGE, FIGURES_PROCESS, "resident_memory_bytes", 0, 0,
     NULL, figures_get_proc_rss_bytes, 0, NULL, "Resident memory of the process."},
    {"process_open_fds", FIGURES_GAUGE, FIGURES_PROCESS, "open_fds", 0, 0, NULL,
     figures_get_proc_open_fds, 0, NULL, "Open file descriptors of the process."},
    {"process_max_fds", FIGURES_GAUGE, FIGURES_PROCESS, "max_fds", 0, 0, NULL,
     figures_get_proc_max_fds, 0, NULL, "The process's limit of open file descriptors."},
    {"process_start_time_seconds", FIGURES_GAUGE, FIGURES_PROCESS, "start_time_seconds", 0, 1000,
     NULL, figures_get_proc_start_ms, 0, NULL,
     "When the process started, seconds since the Unix epoch."},
    {"ws_broadcaster_snapshot_keys", FIGURES_GAUGE, FIGURES_INSTANCE, "snapshot.keys", 0, 0, NULL,
     figures_get_snap_keys, 0, NULL, "Keys in the snapshot table."},
    {"ws_broadcaster_snapshot_bytes", FIGURES_GAUGE, FIGURES_INSTANCE, "snapshot.bytes", 0, 0, NULL,
     figures_get_snap_bytes, 0, NULL, "Bytes of values the snapshot table holds."},
    {"ws_broadcaster_snapshot_max_keys", FIGURES_GAUGE, FIGURES_INSTANCE, "snapshot.max_keys", 0, 0,
     NULL, figures_get_snap_max_keys, 0, NULL,
     "Keys the snapshot table may hold (SNAPSHOT_MAX_KEYS)."},
    {"ws_broadcaster_snapshot_capacity_bytes", FIGURES_GAUGE, FIGURES_INSTANCE,
     "snapshot.capacity_bytes", 0, 0, NULL, figures_get_snap_capacity_bytes, 0, NULL,
     "Bytes of values the snapshot table may hold."},
    {"ws_broadcaster_snapshot_evictions_total", FIGURES_COUNTER, FIGURES_INSTANCE, NULL, 0, 0,
     &figures_dim_evicted, figures_get_snap_evicted, 0, NULL,
     "Keys that left the snapshot table: ttl, not updated for SNAPSHOT_TTL (opportunities: "
     "OPPORTUNITY_TTL); full, the oldest when the table was full."},
    {"ws_broadcaster_snapshot_dropped_too_large_total", FIGURES_COUNTER, FIGURES_INSTANCE,
     "snapshot.dropped_too_large", 0, 0, NULL, figures_get_snap_dropped_too_large, 0, NULL,
     "Entries too large to keep in the snapshot table."},
    {"ws_broadcaster_snapshots_sent_total", FIGURES_COUNTER, FIGURES_WORKER, "snapshot.sent", 0, 0,
     NULL, NULL, W(snapshots_sent), NULL, "Snapshots sent to clients in full."},
    {"ws_broadcaster_snapshot_items_sent_total", FIGURES_COUNTER, FIGURES_WORKER,
     "snapshot.items_sent", 0, 0, NULL, NULL, W(snapshot_items_sent), NULL,
     "Keys sent in snapshots."},
    {"ws_broadcaster_snapshots_lapped_total", FIGURES_COUNTER, FIGURES_WORKER, "snapshot.lapped", 0,
     0, NULL, NULL, W(lapped_snapshots), NULL,
     "Fresh snapshots sent because entries were lost before a worker read them."},
    {"ws_broadcaster_resumes_total", FIGURES_COUNTER, FIGURES_WORKER, NULL, 0, 0,
     &figures_dim_resumes, figures_get_resumes, 0, NULL,
     "Resumes: ok (replayed what was missed), or refused (epoch_changed, too_old, "
     "unknown_stream) and answered with a snapshot."},
    {"ws_broadcaster_stream_entries_read_total", FIGURES_COUNTER, FIGURES_STREAM, "entries_read", 0,
     0, NULL, figures_get_stream_entries_read, 0, NULL, "Entries read from the stream."},
    {"ws_broadcaster_stream_last_entry_timestamp_seconds", FIGURES_GAUGE, FIGURES_STREAM,
     "last_entry_timestamp_seconds", 0, 1000, NULL, figures_get_stream_last_ms, 0, NULL,
     "Time of the newest entry read from the stream (its id, Redis's clock), seconds since the "
     "Unix epoch; absent until one is read."},
    {"ws_broadcaster_stream_last_entry_age_seconds", FIGURES_GAUGE, FIGURES_STREAM,
     "last_entry_age_seconds", 0, 1000, NULL, figures_get_stream_age_ms, 0, NULL,
     "Age of the newest entry read from the stream (now minus its id's time); absent until one is "
     "read."},
    {"ws_broadcaster_stream_lag_entries", FIGURES_GAUGE, FIGURES_STREAM, "lag", 0, 0, NULL,
     figures_get_stream_lag, 0, NULL,
     "Entries in the stream not yet read by this instance's group (XINFO GROUPS lag, Redis 7); "
     "absent while Redis does not say."},
};

const size_t figures_nfamilies = sizeof(figures_families) / sizeof(figures_families[0]);

/* -- reading a family -- */

static int
figures_value1(const struct figures_view *v, const struct figures_family *f,
               const struct figures_at *at, uint64_t *out)
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
int
figures_value(const struct figures_view *v, const struct figures_family *f,
              const struct figures_at *at, uint64_t *out)
{
    struct figures_at one = *at;
    uint64_t sum = 0, x;

    if (!at->all)
        return figures_value1(v, f, at, out);
    for (one.all = 0, one.worker = 0; one.worker < v->nworkers; one.worker++) {
        if (figures_value1(v, f, &one, &x) != 0)
            return -1;
        sum += x;
    }
    *out = sum;
    return 0;
}

void
figures_hist_counts(const struct figures_view *v, const struct figures_family *f,
                    const struct figures_at *at, struct hist_counts *c)
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
void
figures_number(char *buf, size_t size, uint64_t value, unsigned scale)
{
    if (scale <= 1) {
        snprintf(buf, size, "%llu", (unsigned long long)value);
        return;
    }
    snprintf(buf, size, "%llu.%0*llu", (unsigned long long)(value / scale), scale == 1000 ? 3 : 6,
             (unsigned long long)(value % scale));
}

uint32_t
figures_nseries(const struct figures_view *v, const struct figures_family *f)
{
    switch (f->scope) {
    case FIGURES_WORKER:
        return v->nworkers;
    case FIGURES_STREAM:
        return v->nstreams;
    case FIGURES_PROCESS:
        return v->nprocs;
    case FIGURES_INSTANCE:
        break;
    }
    return 1;
}

struct figures_at
figures_series_at(const struct figures_family *f, uint32_t k)
{
    struct figures_at at = {0, 0, 0, 0};

    if (f->scope == FIGURES_WORKER)
        at.worker = k;
    else
        at.item = k;
    return at;
}
