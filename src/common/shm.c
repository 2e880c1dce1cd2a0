#include "shm.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "timeutil.h"

/* Atomics must work across processes: lock-free ones are plain memory
 * operations, a lock-based fallback would lock a per-process table. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
static_assert(sizeof(struct shm_header) == RING_CACHELINE, "header is one cache line");
static_assert(sizeof(struct shm_ingest) == RING_CACHELINE, "ingest stats: one line");
static_assert(sizeof(struct shm_retired) == RING_CACHELINE,
              "retired totals: one line, so the stream table after it stays aligned");
static_assert(sizeof(struct shm_worker) == 2 * RING_CACHELINE, "worker stats: own lines");
static_assert(offsetof(struct shm, workers) % RING_CACHELINE == 0,
              "worker slots start on a cache line: no false sharing between workers");
static_assert(sizeof(struct shm) % RING_CACHELINE == 0, "ring starts on a cache line");
static_assert(sizeof(struct ring) == 2 * RING_CACHELINE, "ring header: config line + writer line");
static_assert(offsetof(struct ring, head) == RING_CACHELINE,
              "writer-owned words on their own line");
static_assert(sizeof(struct ring_slot) == RING_CACHELINE, "one slot per cache line");
static_assert(sizeof(struct shm_stream) == SHM_STREAM_NAME + 24, "stream table row");
static_assert(offsetof(struct shm, addrtabs) % RING_CACHELINE == 0 &&
                  offsetof(struct shm_addrtabs, w) == RING_CACHELINE,
              "address table geometry: a line of its own, written once");

static uint64_t
shm_round_up(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

struct shm *
shm_create(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots)
{
    uint64_t data_size = ring_data_size_for(nslots, 512, max_frame);
    long page = sysconf(_SC_PAGESIZE);
    uint64_t addr_offset, addr_stride, ring_offset;
    size_t size;
    struct shm *s;

    if (nworkers == 0 || nworkers > SHM_MAX_WORKERS || page <= 0 ||
        addr_slots < ADDRTAB_MIN_SLOTS || addr_slots > ADDRTAB_MAX_SLOTS ||
        (addr_slots & (addr_slots - 1)) != 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Each table on whole pages of its own: clearing one drops its pages
     * (addrtab_clear) without touching a neighbour's. */
    addr_offset = shm_round_up(sizeof(struct shm), (uint64_t)page);
    addr_stride = shm_round_up(addrtab_bytes(addr_slots), (uint64_t)page);
    ring_offset = addr_offset + nworkers * addr_stride;
    size = ring_offset + ring_region_size(nslots, data_size);
    /* Anonymous shared memory is zero-filled and untouched pages cost nothing,
     * so a large ring is cheap until it is used. */
    s = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED)
        return NULL;
    s->hdr.magic = SHM_MAGIC;
    s->hdr.version = SHM_VERSION;
    s->hdr.nworkers = nworkers;
    s->hdr.size = size;
    s->hdr.ring_offset = ring_offset;
    s->addrtabs.offset = addr_offset;
    s->addrtabs.stride = addr_stride;
    s->addrtabs.nslots = addr_slots;
    s->hdr.started_ms = time_now_ms();
    if (ring_init(shm_ring(s), nslots, data_size, max_frame) != 0) {
        munmap(s, size);
        return NULL;
    }
    return s;
}

void
shm_destroy(struct shm *s)
{
    if (s != NULL)
        munmap(s, s->hdr.size);
}

int
shm_stream_index(struct shm *s, const char *name)
{
    size_t len = strlen(name);
    int i;

    if (len >= SHM_STREAM_NAME)
        return -1;
    for (i = 0; i < SHM_MAX_STREAMS; i++) {
        struct shm_stream *st = &s->streams[i];
        if (!atomic_load_explicit(&st->used, memory_order_acquire))
            break;
        if (strcmp(st->name, name) == 0)
            return i;
    }
    if (i == SHM_MAX_STREAMS)
        return -1;
    memcpy(s->streams[i].name, name, len + 1);
    atomic_store_explicit(&s->streams[i].last_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&s->streams[i].last_seq, 0, memory_order_relaxed);
    atomic_store_explicit(&s->streams[i].grouped, 0, memory_order_relaxed);
    /* release: a reader that sees used=1 sees the name (pairs with the acquire above
     * and in shm_stream_name). */
    atomic_store_explicit(&s->streams[i].used, 1, memory_order_release);
    return i;
}

const char *
shm_stream_name(const struct shm *s, uint32_t idx)
{
    struct shm *sw = (struct shm *)s;

    if (idx >= SHM_MAX_STREAMS ||
        !atomic_load_explicit(&sw->streams[idx].used, memory_order_acquire))
        return NULL;
    return s->streams[idx].name;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void
shm_totals(struct shm *s, struct shm_totals *t)
{
    uint64_t head = ring_head(shm_ring(s));
    uint64_t slowest = head;

    t->active_clients = 0;
    t->total_connections = LOAD(s->retired.total_connections);
    t->total_messages = LOAD(s->retired.total_messages);
    t->dropped_messages = LOAD(s->retired.dropped_messages);
    t->slow_disconnects = LOAD(s->retired.slow_disconnects);
    t->ring_missed = LOAD(s->retired.ring_missed);
    t->invalid_frames = LOAD(s->retired.invalid_frames);
    t->client_errors = LOAD(s->retired.client_errors);
    for (uint32_t i = 0; i < s->hdr.nworkers; i++) {
        struct shm_worker *w = &s->workers[i];
        uint64_t next;

        t->active_clients += LOAD(w->active_clients);
        t->total_connections += LOAD(w->total_connections);
        t->total_messages += LOAD(w->total_messages);
        t->dropped_messages += LOAD(w->dropped_messages);
        t->slow_disconnects += LOAD(w->slow_disconnects);
        t->ring_missed += LOAD(w->ring_missed);
        t->invalid_frames += LOAD(w->invalid_frames);
        t->client_errors += LOAD(w->client_errors);
        if (LOAD(w->pid) == 0 || !LOAD(w->listening))
            continue;
        next = LOAD(w->ring_next);
        if (next < slowest)
            slowest = next;
    }
    /* A worker more than a ring behind has lost the excess: the ring holds
     * at most nslots unread frames. */
    t->broadcast_usage = head - slowest;
    if (t->broadcast_usage > shm_ring(s)->nslots)
        t->broadcast_usage = shm_ring(s)->nslots;
}

#define FOLD(field)                                                                                \
    atomic_fetch_add_explicit(&s->retired.field, LOAD(w->field), memory_order_relaxed);            \
    atomic_store_explicit(&w->field, 0, memory_order_relaxed)

void
shm_worker_retire(struct shm *s, uint32_t i)
{
    struct shm_worker *w = &s->workers[i];
    struct addrtab t = shm_addrtab(s, i);

    FOLD(total_connections);
    FOLD(total_messages);
    FOLD(dropped_messages);
    FOLD(slow_disconnects);
    FOLD(ring_missed);
    FOLD(invalid_frames);
    FOLD(client_errors);
    atomic_store_explicit(&w->active_clients, 0, memory_order_relaxed);
    atomic_store_explicit(&w->listening, 0, memory_order_relaxed);
    addrtab_clear(&t);
    atomic_store_explicit(&w->pid, 0, memory_order_relaxed);
}

struct addrtab
shm_addrtab(struct shm *s, uint32_t i)
{
    struct addrtab t;

    t.slots = (struct addrtab_entry *)((char *)s + s->addrtabs.offset + i * s->addrtabs.stride);
    t.nslots = s->addrtabs.nslots;
    t.full = &s->addrtabs.w[i].full;
    t.clears = &s->addrtabs.w[i].clears;
    return t;
}

uint64_t
shm_addr_count(struct shm *s, const struct addrtab_key *key, enum addrtab_counter c)
{
    uint64_t total = 0;

    for (uint32_t i = 0; i < s->hdr.nworkers; i++) {
        struct addrtab t = shm_addrtab(s, i);
        total += addrtab_count(&t, key, c);
    }
    return total;
}
