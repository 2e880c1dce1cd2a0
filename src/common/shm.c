#include "shm.h"
#include "addrtab.h"
#include "conf.h"
#include "hash.h"
#include "log.h"
#include "snaptab.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sched.h>
#include <unistd.h>

#include "timeutil.h"

/* Atomics must work across processes: lock-free ones are plain memory
 * operations, a lock-based fallback would lock a per-process table. */
static_assert(ATOMIC_LLONG_LOCK_FREE == 2, "64-bit atomics must be lock-free");
static_assert(ATOMIC_INT_LOCK_FREE == 2, "32-bit atomics must be lock-free");
static_assert(sizeof(struct shm_header) == RING_CACHELINE, "header is one cache line");
static_assert(sizeof(struct shm_ingest) == RING_CACHELINE, "ingest stats: one line");
static_assert(sizeof(struct shm_epoch) == RING_CACHELINE, "epoch: one line");
static_assert(sizeof(struct shm_drain) == RING_CACHELINE &&
                  offsetof(struct shm, drain) % RING_CACHELINE == 0,
              "drain state: a line of its own");
static_assert(offsetof(struct shm_drain, draining) == 16, "drain: the flag after the times");
/* Each part on its own page: mprotect() works on pages, and a part that
 * shared a page with another role's could not be made read-only alone. */
static_assert(offsetof(struct shm, ingest) % SHM_PAGE == 0, "ingest part starts a page");
static_assert(offsetof(struct shm, workers) % SHM_PAGE == 0, "worker slots start a page");
static_assert(sizeof(struct shm_worker) == SHM_PAGE, "one page per worker slot");
static_assert(sizeof(struct shm) % SHM_PAGE == 0,
              "the address tables, each on whole pages, start on a page");
static_assert(sizeof(struct ring_header) == 2 * RING_CACHELINE,
              "ring header: config line + writer line");
static_assert(offsetof(struct ring_header, head) == RING_CACHELINE,
              "writer-owned words on their own line");
static_assert(sizeof(struct ring_slot) == RING_CACHELINE, "one slot per cache line");
static_assert(sizeof(struct shm_stream) == SHM_STREAM_NAME + 72, "stream table row");
static_assert(sizeof(struct hist) == 20 * 8, "a histogram: 19 buckets and the sum");
static_assert(offsetof(struct shm, ingest_latency) < offsetof(struct shm, workers),
              "the ingest's histogram is in the ingest's part");
static_assert(SHM_STREAM_NAME >= CONF_STREAM_MAX, "every configured stream name fits a row");
static_assert(SHM_MAX_STREAMS >= 2 * (CONF_MAX_SPORTS + 1),
              "a reload replacing every stream fits while the old rows are in the ring");
static_assert(SHM_MAX_WORKERS >= CONF_MAX_WORKERS, "a slot per worker");
static_assert(offsetof(struct shm, addrtabs) % RING_CACHELINE == 0 &&
                  offsetof(struct shm_addrtabs, clears) == RING_CACHELINE,
              "address table geometry: a line of its own, written once");

/*
 * This process's own view of the region, in the private page mapped just
 * below it (MAP_PRIVATE: fork gives each child its own copy; read-only once
 * shm_create has filled it).  Nothing here is ever read from the region.
 */
struct shm_local {
    uint64_t size; /* bytes of the shared region, from s */
    uint32_t nworkers;
    uint32_t nslots;
    uint32_t max_frame;
    uint32_t addr_slots;  /* entries per address table */
    uint64_t addr_offset; /* worker 0's address table, from s */
    uint64_t addr_stride; /* whole pages from one table to the next */
    uint64_t ring_offset;
    uint64_t data_size;
    struct ring ring;
    void *snap_mem; /* a mapping of its own (shm_add_snaptab), or NULL */
    uint64_t snap_size;
    uint32_t snap_keys;
};
static_assert(sizeof(struct shm_local) <= SHM_PAGE, "the private copy fits its page");

static const struct shm_local *
shm_local(const struct shm *s)
{
    return (const struct shm_local *)((const char *)s - SHM_PAGE);
}

static uint64_t
shm_round_up(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

/* The geometry the arguments give; -1 if they cannot be. */
static int
shm_geometry(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots,
             struct shm_local *g)
{
    memset(g, 0, sizeof(*g));
    if (nworkers == 0 || nworkers > SHM_MAX_WORKERS || nslots == 0 ||
        (nslots & (nslots - 1)) != 0 || addr_slots < ADDRTAB_MIN_SLOTS ||
        addr_slots > ADDRTAB_MAX_SLOTS || (addr_slots & (addr_slots - 1)) != 0)
        return -1;
    g->nworkers = nworkers;
    g->nslots = nslots;
    g->max_frame = max_frame;
    g->addr_slots = addr_slots;
    /* Each table on whole pages of its own: its worker alone may write
     * them (shm_protect), and clearing one drops its pages (addrtab_clear)
     * without touching a neighbour's. */
    g->addr_offset = sizeof(struct shm);
    g->addr_stride = shm_round_up(addrtab_bytes(addr_slots), SHM_PAGE);
    g->ring_offset = g->addr_offset + nworkers * g->addr_stride;
    g->data_size = ring_data_size_for(nslots, 512, max_frame);
    g->size = shm_round_up(g->ring_offset + ring_region_size(nslots, g->data_size), SHM_PAGE);
    return 0;
}

uint32_t
shm_addr_slots_for(uint32_t max_connections, uint32_t max_clients)
{
    return addrtab_slots_for(max_connections > max_clients ? max_connections : max_clients);
}

uint64_t
shm_region_size(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots)
{
    struct shm_local g;

    /* The configuration's checks refuse what shm_geometry would; an
     * impossible geometry needs no memory because it is never mapped. */
    if (shm_geometry(nworkers, nslots, max_frame, addr_slots, &g) != 0)
        return 0;
    return SHM_PAGE + g.size; /* with the private page */
}

struct shm *
shm_create(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots)
{
    struct shm_local g, *local;
    struct shm *s;
    char *base;

    if (shm_geometry(nworkers, nslots, max_frame, addr_slots, &g) != 0) {
        errno = EINVAL;
        return NULL;
    }
    /* Anonymous shared memory is zero-filled and untouched pages cost nothing,
     * so a large ring is cheap until it is used.  One mapping for the private
     * page and the region, then the private page is mapped over its first
     * page: the two stay adjacent, so the copy is found from s alone. */
    base = mmap(NULL, SHM_PAGE + g.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED)
        return NULL;
    if (mmap(base, SHM_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1,
             0) == MAP_FAILED) {
        int e = errno;
        munmap(base, SHM_PAGE + g.size);
        errno = e;
        return NULL;
    }
    s = (struct shm *)(base + SHM_PAGE);
    local = (struct shm_local *)base;
    *local = g;
    if (ring_init(&local->ring, (char *)s + g.ring_offset, nslots, g.data_size, max_frame) != 0) {
        munmap(base, SHM_PAGE + g.size);
        errno = EINVAL;
        return NULL;
    }
    s->hdr.magic = SHM_MAGIC;
    s->hdr.version = SHM_VERSION;
    s->hdr.nworkers = nworkers;
    s->hdr.size = g.size;
    s->hdr.ring_offset = g.ring_offset;
    s->addrtabs.offset = g.addr_offset;
    s->addrtabs.stride = g.addr_stride;
    s->addrtabs.nslots = g.addr_slots;
    s->hdr.started_ms = time_now_ms();
    s->hdr.supervisor_pid = (int32_t)getpid(); /* shm_create runs in the supervisor */
    /* The copy never changes again: a stray write to it faults at once. */
    if (mprotect(base, SHM_PAGE, PROT_READ) != 0) {
        int e = errno;
        munmap(base, SHM_PAGE + g.size);
        errno = e;
        return NULL;
    }
    return s;
}

void
shm_destroy(struct shm *s)
{
    if (s == NULL)
        return;
    if (shm_local(s)->snap_mem != NULL)
        munmap(shm_local(s)->snap_mem, shm_local(s)->snap_size);
    munmap((char *)s - SHM_PAGE, SHM_PAGE + shm_local(s)->size);
}

int
shm_add_snaptab(struct shm *s, uint32_t max_keys)
{
    struct shm_local *l = (struct shm_local *)((char *)s - SHM_PAGE);
    uint64_t size = shm_round_up(snaptab_region_size(max_keys, SHM_MAX_STREAMS), SHM_PAGE);
    struct snaptab t;
    void *mem;
    int rc = 0;

    if (l->snap_mem != NULL || size == 0) {
        errno = EINVAL;
        return -1;
    }
    /* Sized for every key at the average entry size; NORESERVE because it
     * is used as keys arrive, and most tables never fill. */
    mem =
        mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    if (snaptab_init(&t, mem, max_keys, SHM_MAX_STREAMS) != 0) {
        munmap(mem, size);
        errno = EINVAL;
        return -1;
    }
    if (mprotect(l, SHM_PAGE, PROT_READ | PROT_WRITE) != 0) {
        int e = errno;
        munmap(mem, size);
        errno = e;
        return -1;
    }
    l->snap_mem = mem;
    l->snap_size = size;
    l->snap_keys = max_keys;
    if (mprotect(l, SHM_PAGE, PROT_READ) != 0)
        rc = -1;
    return rc;
}

void *
shm_snaptab(const struct shm *s, uint32_t *max_keys)
{
    *max_keys = shm_local(s)->snap_keys;
    return shm_local(s)->snap_mem;
}

void
shm_epoch_get(const struct shm *s, char *buf, size_t size)
{
    struct shm_epoch *e = (struct shm_epoch *)&s->epoch;

    if (size == 0)
        return;
    for (;;) {
        uint64_t v = atomic_load_explicit(&e->version, memory_order_acquire);
        char copy[SHM_EPOCH_MAX];
        if ((v & 1) == 0) {
            /* Read while the writer may write: the version check below
             * throws a torn copy away (a seqlock, as the ring's frames). */
            memcpy(copy, e->text, sizeof(copy));
            atomic_thread_fence(memory_order_acquire);
            if (atomic_load_explicit(&e->version, memory_order_relaxed) == v) {
                copy[sizeof(copy) - 1] = '\0';
                snprintf(buf, size, "%s", copy);
                return;
            }
        }
        sched_yield();
    }
}

void
shm_epoch_set(struct shm *s, const char *text)
{
    uint64_t v = atomic_load_explicit(&s->epoch.version, memory_order_relaxed);

    /* Odd first (pairs with the reader's acquire load), then the text, then
     * even again (release: the text is visible before it). */
    atomic_store_explicit(&s->epoch.version, v + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    snprintf(s->epoch.text, sizeof(s->epoch.text), "%s", text);
    atomic_store_explicit(&s->epoch.version, v + 2, memory_order_release);
}

int
shm_attach(const struct shm *s, uint32_t nworkers, uint32_t nslots, uint32_t max_frame,
           uint32_t addr_slots)
{
    const struct shm_local *l = shm_local(s);
    struct shm_local g;

    if (shm_geometry(nworkers, nslots, max_frame, addr_slots, &g) != 0)
        return -1;
    return g.size == l->size && g.nworkers == l->nworkers && g.nslots == l->nslots &&
                   g.max_frame == l->max_frame && g.data_size == l->data_size &&
                   g.addr_slots == l->addr_slots
               ? 0
               : -1;
}

struct ring *
shm_ring(const struct shm *s)
{
    /* The handle is only read after shm_create: ring_* write through its
     * pointers, into the region, never into it. */
    return (struct ring *)&shm_local(s)->ring;
}

uint32_t
shm_nworkers(const struct shm *s)
{
    return shm_local(s)->nworkers;
}

int
shm_draining(const struct shm *s, uint64_t *started_ms, uint64_t *deadline_mono_ms)
{
    struct shm_drain *d = (struct shm_drain *)&s->drain;

    /* acquire: pairs with the release in shm_drain_begin, so the times
     * stored before the flag are seen with it. */
    if (!atomic_load_explicit(&d->draining, memory_order_acquire))
        return 0;
    if (started_ms != NULL)
        *started_ms = atomic_load_explicit(&d->started_ms, memory_order_relaxed);
    if (deadline_mono_ms != NULL)
        *deadline_mono_ms = atomic_load_explicit(&d->deadline_mono_ms, memory_order_relaxed);
    return 1;
}

void
shm_drain_begin(struct shm *s, uint64_t started_ms, uint64_t deadline_mono_ms)
{
    struct shm_drain *d = &s->drain;

    if (atomic_load_explicit(&d->draining, memory_order_relaxed)) {
        /* A second signal: sooner, never later.  Relaxed: the workers read
         * it after the SIGTERM that follows. */
        if (deadline_mono_ms < atomic_load_explicit(&d->deadline_mono_ms, memory_order_relaxed))
            atomic_store_explicit(&d->deadline_mono_ms, deadline_mono_ms, memory_order_relaxed);
        return;
    }
    atomic_store_explicit(&d->started_ms, started_ms, memory_order_relaxed);
    atomic_store_explicit(&d->deadline_mono_ms, deadline_mono_ms, memory_order_relaxed);
    /* release: pairs with the acquire in shm_draining. */
    atomic_store_explicit(&d->draining, 1, memory_order_release);
}

static int
shm_mprotect(void *addr, size_t len, int prot, const char *what, char *err, size_t errlen)
{
    if (mprotect(addr, len, prot) == 0)
        return 0;
    snprintf(err, errlen, "mprotect(%s, %zu bytes, %s) failed: %s", what, len,
             prot & PROT_WRITE ? "read-write" : "read-only", strerror(errno));
    return -1;
}

int
shm_protect(struct shm *s, enum shm_role role, uint32_t worker, char *err, size_t errlen)
{
    const struct shm_local *l = shm_local(s);
    long page = sysconf(_SC_PAGESIZE);
    const int rw = PROT_READ | PROT_WRITE;
    int rc;

    if (page != SHM_PAGE) {
        snprintf(err, errlen, "page size %ld, shared memory laid out for %d: left writable", page,
                 SHM_PAGE);
        return -1;
    }
    if (role == SHM_ROLE_WORKER && worker >= l->nworkers) {
        snprintf(err, errlen, "worker slot %u of %u: left writable", worker, l->nworkers);
        return -1;
    }
    if (shm_mprotect(s, l->size, PROT_READ, "region", err, errlen) != 0)
        return -1;
    if (role == SHM_ROLE_INGEST)
        rc = shm_mprotect(&s->ingest, offsetof(struct shm, workers) - offsetof(struct shm, ingest),
                          rw, "ingest part", err, errlen) ||
             shm_mprotect((char *)s + l->ring_offset, l->size - l->ring_offset, rw, "ring", err,
                          errlen);
    else
        rc = shm_mprotect(&s->workers[worker], sizeof(s->workers[worker]), rw, "worker slot", err,
                          errlen) ||
             shm_mprotect((char *)s + l->addr_offset + worker * l->addr_stride, l->addr_stride, rw,
                          "address table", err, errlen) ||
             /* The snapshot table is the ingest's: workers only read it. */
             (l->snap_mem != NULL &&
              shm_mprotect(l->snap_mem, l->snap_size, PROT_READ, "snapshot table", err, errlen));
    if (rc != 0 && mprotect(s, l->size, rw) != 0) {
        /* Neither protected nor writable where this role writes: going on
         * would crash at the first counter. */
        log_assert_failed("mprotect(region, read-write) after a failed shm_protect", __FILE__,
                          __LINE__);
    }
    return rc ? -1 : 0;
}

/* ---- the stream table ----------------------------------------------------- */

/* Length of row st's name, or -1 if the row is unused or its name is not
 * terminated within the row (a corrupted row matches no name). */
static int
shm_row_name_len(const struct shm_stream *st)
{
    const char *nul;

    if (!atomic_load_explicit(&((struct shm_stream *)st)->used, memory_order_acquire))
        return -1;
    nul = memchr(st->name, '\0', sizeof(st->name));
    return nul != NULL ? (int)(nul - st->name) : -1;
}

static int
shm_row_is(const struct shm_stream *st, const char *name, size_t len)
{
    int n = shm_row_name_len(st);

    return n >= 0 && (size_t)n == len && memcmp(st->name, name, len) == 0;
}

static int
shm_row_named_in(const struct shm_stream *st, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (shm_row_is(st, names[i], strlen(names[i])))
            return 1;
    }
    return 0;
}

/* Entries the ring must still take before no frame naming row st is left in
 * it: 0 if none is.  Frame f stays in its slot until frame f + nslots is
 * published.  A last_frame ahead of the head (a frame about to be published,
 * or a corrupted value) keeps the row for a whole ring. */
static uint64_t
shm_row_frames_left(const struct shm *s, const struct shm_stream *st)
{
    const struct ring *r = shm_ring(s);
    uint64_t last =
        atomic_load_explicit(&((struct shm_stream *)st)->last_frame, memory_order_relaxed);
    uint64_t head = ring_head(r);

    if (last == 0)
        return 0;
    if (last - 1 >= head)
        return r->nslots;
    return head - (last - 1) > r->nslots ? 0 : r->nslots - (head - (last - 1)) + 1;
}

int
shm_stream_index(struct shm *s, const char *name, const char *const *configured, size_t nconfigured)
{
    size_t len = strlen(name);
    int unused = -1, stale = -1;
    struct shm_stream *st;

    if (len >= SHM_STREAM_NAME)
        return -1;
    for (int i = 0; i < SHM_MAX_STREAMS; i++) {
        st = &s->streams[i];
        if (!atomic_load_explicit(&st->used, memory_order_acquire)) {
            if (unused < 0)
                unused = i;
        } else if (shm_row_is(st, name, len)) {
            return i;
        } else if (stale < 0 && !shm_row_named_in(st, configured, nconfigured) &&
                   shm_row_frames_left(s, st) == 0) {
            stale = i;
        }
    }
    /* A never-used row first: a removed stream keeps its row (and its last
     * ids) for as long as possible, in case it comes back. */
    if (unused < 0 && stale < 0)
        return -1;
    st = &s->streams[unused >= 0 ? unused : stale];
    /* used = 0 first (release): no reader takes the row for the old stream
     * while the name changes. */
    atomic_store_explicit(&st->used, 0, memory_order_release);
    memset(st->name, 0, sizeof(st->name));
    memcpy(st->name, name, len);
    atomic_store_explicit(&st->last_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&st->last_seq, 0, memory_order_relaxed);
    atomic_store_explicit(&st->last_frame, 0, memory_order_relaxed);
    atomic_store_explicit(&st->grouped, 0, memory_order_relaxed);
    atomic_store_explicit(&st->reading, 0, memory_order_relaxed);
    atomic_store_explicit(&st->lag_known, 0, memory_order_relaxed);
    atomic_store_explicit(&st->read_ms, 0, memory_order_relaxed);
    atomic_store_explicit(&st->entries_read, 0, memory_order_relaxed);
    atomic_store_explicit(&st->lag, 0, memory_order_relaxed);
    atomic_store_explicit(&st->lag_at_ms, 0, memory_order_relaxed);
    /* release: a reader that sees used=1 sees the name (pairs with the acquire
     * in shm_row_name_len). */
    atomic_store_explicit(&st->used, 1, memory_order_release);
    return (int)(st - s->streams);
}

/* Whether names[i] appeared before i in names, or in first[]. */
static int
shm_seen(const char *const *first, size_t nfirst, const char *const *names, size_t i)
{
    for (size_t j = 0; j < nfirst; j++) {
        if (strcmp(first[j], names[i]) == 0)
            return 1;
    }
    for (size_t j = 0; j < i; j++) {
        if (strcmp(names[j], names[i]) == 0)
            return 1;
    }
    return 0;
}

/* Whether some row is named names[i]. */
static int
shm_has_row(const struct shm *s, const char *name)
{
    size_t len = strlen(name);

    for (int r = 0; r < SHM_MAX_STREAMS; r++) {
        if (shm_row_is(&s->streams[r], name, len))
            return 1;
    }
    return 0;
}

int
shm_streams_fit(const struct shm *s, const char *const *running, size_t nrunning,
                const char *const *wanted, size_t nwanted, char *err, size_t errlen)
{
    uint64_t waits[SHM_MAX_STREAMS];
    size_t needed = 0, free_rows = 0, nwaits = 0;

    for (size_t i = 0; i < nwanted; i++)
        needed += !shm_seen(NULL, 0, wanted, i) && !shm_has_row(s, wanted[i]);
    for (size_t i = 0; i < nrunning; i++)
        needed += !shm_seen(wanted, nwanted, running, i) && !shm_has_row(s, running[i]);
    for (int r = 0; r < SHM_MAX_STREAMS; r++) {
        const struct shm_stream *st = &s->streams[r];
        uint64_t left;

        if (!atomic_load_explicit(&((struct shm_stream *)st)->used, memory_order_acquire)) {
            free_rows++;
            continue;
        }
        if (shm_row_named_in(st, running, nrunning) || shm_row_named_in(st, wanted, nwanted))
            continue;
        left = shm_row_frames_left(s, st);
        if (left == 0)
            free_rows++;
        else
            waits[nwaits++] = left;
    }
    if (needed <= free_rows)
        return 0;
    if (needed - free_rows <= nwaits) {
        /* The (needed - free)-th row to come free: a partial selection sort
         * of at most SHM_MAX_STREAMS numbers. */
        size_t k = needed - free_rows - 1;
        for (size_t i = 0; i <= k; i++) {
            for (size_t j = i + 1; j < nwaits; j++) {
                if (waits[j] < waits[i]) {
                    uint64_t t = waits[i];
                    waits[i] = waits[j];
                    waits[j] = t;
                }
            }
        }
        snprintf(err, errlen,
                 "%zu streams need a row in the stream table and %zu of its %d rows are free; "
                 "the rows of removed streams are reused once the ring has moved past their "
                 "last entries, here after %llu more entries",
                 needed, free_rows, SHM_MAX_STREAMS, (unsigned long long)waits[k]);
    } else {
        snprintf(err, errlen,
                 "%zu streams need a row in the stream table and %zu of its %d rows are free",
                 needed, free_rows, SHM_MAX_STREAMS);
    }
    return -1;
}

int
shm_stream_name(const struct shm *s, uint32_t idx, char *buf, size_t size)
{
    int n;

    if (idx >= SHM_MAX_STREAMS || size == 0)
        return -1;
    n = shm_row_name_len(&s->streams[idx]);
    if (n < 0 || (size_t)n >= size)
        return -1;
    memcpy(buf, s->streams[idx].name, (size_t)n);
    buf[n] = '\0';
    return 0;
}

#define LOAD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void
shm_totals(struct shm *s, struct shm_totals *t)
{
    uint64_t head = ring_head(shm_ring(s));
    uint64_t slowest = head;

    memset(t, 0, sizeof(*t));
    for (uint32_t i = 0; i < shm_nworkers(s); i++) {
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
        t->open_connections += LOAD(w->open_connections);
        t->refused_connections += LOAD(w->refused_connections);
        t->snapshots_sent += LOAD(w->snapshots_sent);
        t->snapshot_items_sent += LOAD(w->snapshot_items_sent);
        t->resumes_ok += LOAD(w->resumes_ok);
        t->resumes_epoch_changed += LOAD(w->resumes_epoch_changed);
        t->resumes_too_old += LOAD(w->resumes_too_old);
        t->resumes_unknown_stream += LOAD(w->resumes_unknown_stream);
        t->lapped_snapshots += LOAD(w->lapped_snapshots);
        t->conflated_clients += LOAD(w->conflated_clients);
        t->conflated_updates += LOAD(w->conflated_updates);
        t->slow_keys += LOAD(w->slow_keys);
        t->slow_bytes += LOAD(w->slow_bytes);
        t->slow_lag += LOAD(w->slow_lag);
        t->slow_send_timeout += LOAD(w->slow_send_timeout);
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

void
shm_worker_retire(struct shm *s, uint32_t i)
{
    struct shm_worker *w = &s->workers[i];
    struct addrtab t = shm_addrtab(s, i);

    /* What the dead worker held: its clients and connections are gone.
     * Its counters stay: the slot's next worker adds to them. */
    atomic_store_explicit(&w->conflated_clients, 0, memory_order_relaxed);
    atomic_store_explicit(&w->active_clients, 0, memory_order_relaxed);
    atomic_store_explicit(&w->open_connections, 0, memory_order_relaxed);
    atomic_store_explicit(&w->listening, 0, memory_order_relaxed);
    addrtab_clear(&t);
    atomic_store_explicit(&w->pid, 0, memory_order_relaxed);
}

/* The codes wsp_schedule_close is given (README "WebSocket protocol"), then
 * "other".  Keep the two tables in sync (test_shm checks it). */
const int shm_close_codes[SHM_CLOSE_SLOTS - 1] = {1000, 1001, 1002, 1003, 1007,
                                                  1008, 1009, 1011, 4001};
const char *const shm_close_names[SHM_CLOSE_SLOTS] = {"1000", "1001", "1002", "1003", "1007",
                                                      "1008", "1009", "1011", "4001", "other"};

unsigned
shm_close_slot(int code)
{
    for (unsigned i = 0; i < SHM_CLOSE_SLOTS - 1; i++) {
        if (shm_close_codes[i] == code)
            return i;
    }
    return SHM_CLOSE_SLOTS - 1;
}

/* Keep in sync with enum shm_refusal: these are label values in /metrics. */
const char *const shm_refusal_names[SHM_REFUSALS] = {
    "stopping",    "not_found",          "origin",       "address_table",
    "max_clients", "max_clients_per_ip", "unauthorized", "sub_max_connections"};

struct addrtab
shm_addrtab(struct shm *s, uint32_t i)
{
    struct addrtab t;

    const struct shm_local *l = shm_local(s);

    t.slots = (struct addrtab_entry *)((char *)s + l->addr_offset + i * l->addr_stride);
    t.nslots = l->addr_slots;
    t.full = &s->workers[i].addrtab_full;
    t.clears = &s->addrtabs.clears[i];
    return t;
}

uint64_t
shm_addr_count(struct shm *s, const struct addrtab_key *key, enum addrtab_counter c)
{
    uint64_t total = 0;

    for (uint32_t i = 0; i < shm_nworkers(s); i++) {
        struct addrtab t = shm_addrtab(s, i);
        total += addrtab_count(&t, key, c);
    }
    return total;
}
