/*
 * shm: the one shared-memory region of an instance, and its layout.
 *
 * The supervisor maps it (MAP_SHARED | MAP_ANONYMOUS) before the first fork,
 * so it outlives every child and a restarted child inherits it as it was.
 * Everything in it is found by offset, never by pointer.
 *
 *   struct shm_header      magic, version, sizes   (writer: supervisor, before fork)
 *   struct shm_ingest      ingest stats and state  (writer: ingest; pid, restarts and
 *                                                    streams_since_ms: supervisor)
 *   struct shm_retired     totals of workers that died       (writer: supervisor)
 *   struct shm_stream[]    stream names and last Redis ids   (writer: ingest)
 *   struct shm_worker[]    one per worker slot, own lines    (writer: that worker;
 *                                                    pid, restarts: supervisor)
 *   struct shm_addrtabs    where the address tables are      (writer: supervisor, before fork)
 *   address tables         one per worker slot, from a page  (writer: that worker)
 *   struct ring            then its slots and data           (writer: ingest)
 *
 * Every shared field has exactly one writing role, named beside it.  The one
 * kind of exception: after reaping a worker, the supervisor folds and zeroes
 * that worker's slot and clears its address table (shm_worker_retire); the
 * writer is dead then and its successor not yet forked, so two writers never
 * overlap.
 * Stats are relaxed atomics: they are counters, nothing is ordered by them.
 * The sizes and offsets the other roles depend on are checked at compile
 * time in shm.c.
 */
#ifndef WSB_SHM_H
#define WSB_SHM_H

#include "addrtab.h"
#include "ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC       0x57534252494e4731ULL /* "WSBRING1" */
#define SHM_VERSION     1
#define SHM_MAX_WORKERS 64
#define SHM_MAX_STREAMS 64
#define SHM_STREAM_NAME 128

struct shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t nworkers; /* worker slots in use (WORKERS at start) */
    uint64_t size;     /* bytes of the whole region */
    uint64_t ring_offset;
    uint64_t started_ms; /* instance start, epoch ms */
    uint8_t pad[RING_CACHELINE - 40];
};

struct shm_ingest {
    _Atomic int32_t pid; /* writer: supervisor (at fork; 0 when dead) */
    /* writer: ingest only; 1 while reading Redis.  A dead ingest's last
     * value stays until the next one clears it on start: readers count
     * the ingest as up only while pid != 0 too. */
    _Atomic uint32_t redis_up;
    _Atomic uint64_t entries_read;       /* entries taken from Redis */
    _Atomic uint64_t entries_published;  /* frames written to the ring */
    _Atomic uint64_t invalid_entries;    /* malformed: skipped, acked */
    _Atomic uint64_t duplicates_skipped; /* pending entries already in the ring */
    _Atomic uint64_t redis_errors;       /* failed commands and lost connections */
    _Atomic uint64_t restarts;           /* writer: supervisor (at each respawn) */
    _Atomic uint64_t streams_since_ms;   /* writer: supervisor; when a reload last changed
                                          * SPORTS (0: never): where new groups start */
};

/* Cumulative counters of workers that exited, so totals survive a restart and
 * active_clients never counts a dead worker's clients.  Writer: supervisor
 * (shm_worker_retire). */
struct shm_retired {
    _Atomic uint64_t total_connections;
    _Atomic uint64_t total_messages;
    _Atomic uint64_t dropped_messages;
    _Atomic uint64_t slow_disconnects;
    _Atomic uint64_t ring_missed;
    _Atomic uint64_t invalid_frames;
    _Atomic uint64_t client_errors;
    _Atomic uint64_t worker_restarts; /* never written: restarts stay in each slot
                                       * (shm_worker.restarts); keeps the line full */
};

struct shm_stream {
    /* writer: ingest.  name is set (then used, release) once per index;
     * indices are never reused, so a frame's stream index stays meaningful. */
    char name[SHM_STREAM_NAME];
    _Atomic uint32_t used;
    _Atomic uint32_t grouped; /* this instance's group existed on it once: if
                               * it is missing now, it vanished (recreate at 0) */
    _Atomic uint64_t last_ms; /* last entry id published to the ring */
    _Atomic uint64_t last_seq;
};

struct shm_worker {
    /* writer: the worker itself, where no other is named.  Once it has
     * died, the supervisor folds its counters into shm_retired and zeroes
     * them, active_clients and listening (shm_worker_retire). */
    _Atomic int32_t pid;        /* writer: supervisor (at fork; 0 when dead) */
    _Atomic uint32_t listening; /* 1 while it accepts and reads the ring */
    _Atomic uint64_t active_clients;
    _Atomic uint64_t total_connections;
    _Atomic uint64_t total_messages;   /* messages written to clients */
    _Atomic uint64_t dropped_messages; /* not queued: client buffer full, or no memory */
    _Atomic uint64_t slow_disconnects;
    _Atomic uint64_t ring_next;      /* next ring sequence this worker will read */
    _Atomic uint64_t ring_missed;    /* frames lost to a lap */
    _Atomic uint64_t invalid_frames; /* ring frames it could not decode or encode */
    _Atomic uint64_t client_errors;  /* error replies sent, connections closed for a
                                      * protocol violation */
    _Atomic uint64_t restarts;       /* writer: supervisor (at each respawn) */
    uint8_t pad[2 * RING_CACHELINE - 88];
};

/*
 * Exact counts per client address (addrtab.h), for the per-address limits
 * across workers: one table per worker slot, `stride` bytes apart from
 * `offset`, each nslots entries.  A table starts on a page and fills whole
 * pages, so a dead worker's table can be given back to the system
 * (addrtab_clear).  The geometry is written by the supervisor before the
 * first fork and never changes.
 */
struct shm_addrtab_stats {
    _Atomic uint64_t full;   /* writer: the worker; new addresses refused, table full */
    _Atomic uint64_t clears; /* writer: supervisor; odd while it clears the table */
};

struct shm_addrtabs {
    uint64_t offset; /* of worker 0's table from the start of the region */
    uint64_t stride; /* bytes from one worker's table to the next */
    uint32_t nslots; /* entries per table */
    uint8_t pad[RING_CACHELINE - 20];
    struct shm_addrtab_stats w[SHM_MAX_WORKERS];
};

struct shm {
    struct shm_header hdr;
    struct shm_ingest ingest;
    struct shm_retired retired;
    struct shm_stream streams[SHM_MAX_STREAMS];
    struct shm_worker workers[SHM_MAX_WORKERS];
    struct shm_addrtabs addrtabs;
    /* the address tables follow at addrtabs.offset, struct ring at hdr.ring_offset */
};

/* Map a zeroed region for nworkers, a ring of nslots frames, and one address
 * table of addr_slots entries (addrtab_slots_for) per worker.  Supervisor
 * only, before the first fork.  NULL on failure (errno set). */
struct shm *shm_create(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots);

/* Unmap (supervisor, at exit). */
void shm_destroy(struct shm *s);

static inline struct ring *
shm_ring(struct shm *s)
{
    return (struct ring *)((char *)s + s->hdr.ring_offset);
}

/* Index of stream `name`, adding it if new; -1 if the table is full.
 * Ingest only. */
int shm_stream_index(struct shm *s, const char *name);

/* Name of stream idx, or NULL if unused.  Any role. */
const char *shm_stream_name(const struct shm *s, uint32_t idx);

/* Sum of all workers' and retired counters.  Any role. */
struct shm_totals {
    uint64_t active_clients;
    uint64_t total_connections;
    uint64_t total_messages;
    uint64_t dropped_messages;
    uint64_t slow_disconnects;
    uint64_t ring_missed;
    uint64_t invalid_frames;
    uint64_t client_errors;
    uint64_t broadcast_usage; /* frames published but not read by the slowest live worker */
};
void shm_totals(struct shm *s, struct shm_totals *t);

/* Worker i's (from 0) address table.  Any role; only worker i may add to it
 * (addrtab_add). */
struct addrtab shm_addrtab(struct shm *s, uint32_t i);

/* Counter c of address key summed over every worker's table.  Any role. */
uint64_t shm_addr_count(struct shm *s, const struct addrtab_key *key, enum addrtab_counter c);

/* Supervisor, after reaping worker i: fold its counters into retired and
 * zero its slot (active_clients included) and clear its address table. */
void shm_worker_retire(struct shm *s, uint32_t i);

#endif
