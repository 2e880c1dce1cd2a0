/*
 * shm: the one shared-memory region of an instance, and its layout.
 *
 * The supervisor maps it (MAP_SHARED | MAP_ANONYMOUS) before the first fork,
 * so it outlives every child and a restarted child inherits it as it was.
 * Everything in it is found by offset, never by pointer.  It is laid out in
 * parts, each starting on a page and written by one role, so that each child
 * can map what it does not write read-only (shm_protect):
 *
 *   supervisor  struct shm_header      magic, version, sizes (before fork)
 *               struct shm_drain       whether the instance is draining (stop)
 *   ingest      struct shm_ingest      ingest stats and state (pid, restarts,
 *                                        streams_since_ms: supervisor)
 *               struct shm_stream[]    stream names, last Redis ids, freshness
 *               struct hist            Redis entry time -> ring (hist.h)
 *   supervisor  struct shm_addrtabs    where the address tables are (before
 *                                        fork), and a clear in progress
 *   worker i    struct shm_worker      its own page (pid, restarts: supervisor)
 *   worker i    its address table      exact counts per client address
 *                                        (addrtab.h), on pages of its own
 *   ingest      the ring               struct ring_header, slots, data
 *
 * Every shared field has exactly one writing role, named beside it.  The one
 * kind of exception: after reaping a worker, the supervisor zeroes what that
 * worker's slot holds of the present (its clients, connections) and clears
 * its address table (shm_worker_retire); the writer is dead then and its
 * successor not yet forked, so two writers never overlap.  A slot's counters
 * are the slot's, not one process's: the successor goes on counting where
 * its predecessor stopped, so no counter ever goes backwards and the sum
 * over the slots is the instance's total, restarts included.
 * The supervisor maps everything writable; it writes only the fields named
 * for it.  Stats are relaxed atomics: they are counters, nothing is ordered
 * by them.  The sizes and offsets the other roles depend on are checked at
 * compile time in shm.c.
 *
 * Geometry is never read from the region.  Each process has its own copy of
 * the worker count, the region's size, where the address tables are and
 * the ring's geometry (a struct ring handle), made by shm_create from the configuration and kept in
 * a private page mapped just below the region: after fork every child has its own copy of that
 * page, read-only.  hdr.nworkers, hdr.size, hdr.ring_offset and the ring's header say the same for
 * a debugger, but a process that scribbles on them (a bug, a stray write) cannot make another one
 * read out of bounds.
 */
#ifndef WSB_SHM_H
#define WSB_SHM_H

#include "addrtab.h"
#include "hist.h"
#include "ring.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SHM_MAGIC       0x57534252494e4731ULL /* "WSBRING1" */
#define SHM_VERSION     4
#define SHM_MAX_WORKERS 64
/* Two whole configurations (CONF_MAX_SPORTS + 1 streams each; checked in
 * shm.c) and as much again: a reload that replaces every stream fits even
 * while the replaced streams' rows still have entries in the ring, and so
 * does a second one; a third within the same lap of the ring may be refused
 * (shm_streams_fit).  A row is 200 bytes. */
#define SHM_MAX_STREAMS 128
#define SHM_STREAM_NAME 128
/* The parts are laid out for 4 KiB pages; on a host with larger pages the
 * region still works, unprotected (shm_protect says so). */
#define SHM_PAGE        4096

/* Written by the supervisor before the first fork, read-only after.  The
 * sizes are for a debugger: no process reads them (see above). */
struct shm_header {
    uint64_t magic;
    uint32_t version;
    uint32_t nworkers; /* worker slots in use (WORKERS at start) */
    uint64_t size;     /* bytes of the whole region */
    uint64_t ring_offset;
    uint64_t started_ms;    /* instance start, epoch ms */
    int32_t supervisor_pid; /* for the process metrics (procstat.h) */
    uint8_t pad[RING_CACHELINE - 44];
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

/*
 * The epoch (README "Consistency"): the name of the one continuous history
 * of the streams that entry ids are positions in, kept in Redis so every
 * instance on it reports the same one.  writer: ingest, under a seqlock
 * (version odd while the text changes); readers copy it with shm_epoch_get.
 * Empty until the ingest has read it from Redis.
 */
#define SHM_EPOCH_MAX 56
struct shm_epoch {
    _Atomic uint64_t version;
    char text[SHM_EPOCH_MAX]; /* NUL-terminated when version is even */
};

/*
 * The stop of the instance (README "Operations"): SIGTERM or SIGINT starts
 * a drain, in which upgrades are refused with 503 and the clients are
 * closed (1001, after a `reconnect` message) spread until deadline_mono_ms.
 *
 * writer: supervisor, when the signal arrives, before it forwards SIGTERM
 * to the workers; a second signal moves deadline_mono_ms to that moment
 * (the drain ends early).  Never cleared: a drain ends with the processes.
 * readers: every worker (its closes are paced to deadline_mono_ms, read
 * again at each SIGTERM it gets), and anything that must say "not ready"
 * the moment a stop begins, without waiting for a signal to reach a worker:
 * /readyz answers 503 once `draining` is 1.
 *
 * The times are stored first (relaxed), then draining = 1 with release; a
 * reader loads draining with acquire and, if it is 1, sees both times.  A
 * later store to deadline_mono_ms is relaxed and followed by the SIGTERM
 * that makes the workers read it (the kill() is the ordering).
 */
struct shm_drain {
    _Atomic uint64_t started_ms;       /* epoch ms the drain began (0: none) */
    _Atomic uint64_t deadline_mono_ms; /* CLOCK_MONOTONIC ms (the same in every process of the
                                        * host) by which every client is to be closed */
    _Atomic uint32_t draining;         /* 1 from the first SIGTERM/SIGINT on */
    uint8_t pad[RING_CACHELINE - 20];
};

/*
 * One row per stream the ingest reads or has read; a frame names its stream
 * by row index.  writer: ingest.  A row is given to another stream (renamed)
 * only when its stream is no longer configured and no frame naming it is
 * left in the ring, so a frame's index names the same stream for as long as
 * anyone can read that frame (shm_stream_index).  Readers never trust a
 * name to be terminated.
 */
struct shm_stream {
    char name[SHM_STREAM_NAME];
    _Atomic uint32_t used;    /* 1 once name is set (release, after the name) */
    _Atomic uint32_t grouped; /* this instance's group existed on it once: if
                               * it is missing now, it vanished (recreate at 0) */
    _Atomic uint64_t last_ms; /* last entry id published to the ring */
    _Atomic uint64_t last_seq;
    /* 1 + the ring sequence of the newest frame naming this row, stored
     * before that frame is published (so it is never behind); 0: none. */
    _Atomic uint64_t last_frame;
    /*
     * Freshness, for /metrics and for readiness.  A stream is stale when
     * Redis holds entries for it that the ingest has not read while the
     * newest one it did read is old:
     *   reading && lag_known && lag > 0 && lag_at_ms is recent (a few
     *   seconds: the ingest asks every SHM_LAG_CHECK_MS) &&
     *   now - read_ms > N   (read_ms == 0: nothing read yet, all waits)
     * lag_known 0 means Redis did not say (before 7.0, or a lag it cannot
     * compute after XDEL or trimming past the group): no verdict then.
     * lag > 0 only says entries wait; a stream with lag 0 and an old
     * read_ms is quiet, not stale.
     */
    _Atomic uint32_t reading;      /* 1 while the running ingest's configuration names it */
    _Atomic uint32_t lag_known;    /* 1 if lag is Redis's word, as of lag_at_ms */
    _Atomic uint64_t read_ms;      /* time part of the newest entry id read (valid or not);
                                    * 0: none yet.  Redis's clock, not ours */
    _Atomic uint64_t entries_read; /* entries of this stream taken from Redis */
    _Atomic uint64_t lag;          /* XINFO GROUPS "lag" of our group: entries not yet read */
    _Atomic uint64_t lag_at_ms;    /* our wall clock at the last XINFO GROUPS answer; 0: never */
};

/* How often the ingest asks Redis for the lag of its group on each stream
 * (XINFO GROUPS, between reads, like the epoch). */
#define SHM_LAG_CHECK_MS 1000
/* An answer older than this is no longer the lag: the ingest is not going
 * round its loop (stuck, stopped, or without Redis).  /metrics then leaves
 * the lag out, and /readyz calls the ingest silent. */
#define SHM_LAG_FRESH_MS (5 * SHM_LAG_CHECK_MS)

/* The close codes a worker counts its closes by (closes[]), and their
 * labels in /metrics; the last slot takes any other code ("other"). */
#define SHM_CLOSE_SLOTS 10
extern const int shm_close_codes[SHM_CLOSE_SLOTS - 1];
extern const char *const shm_close_names[SHM_CLOSE_SLOTS];

/* Slot of closes[] for a close code. */
unsigned shm_close_slot(int code);

/* Why an upgrade was refused (upgrades_refused[]); the labels /metrics
 * shows are shm_refusal_names, in this order. */
enum shm_refusal {
    SHM_REFUSED_STOPPING,            /* 503: the worker is stopping */
    SHM_REFUSED_NOT_FOUND,           /* 404: not /ws */
    SHM_REFUSED_ORIGIN,              /* 403: ALLOWED_ORIGINS */
    SHM_REFUSED_ADDRESS_TABLE,       /* 503: no room for a new address */
    SHM_REFUSED_MAX_CLIENTS,         /* 503: MAX_CLIENTS */
    SHM_REFUSED_MAX_CLIENTS_PER_IP,  /* 429: MAX_CLIENTS_PER_IP */
    SHM_REFUSED_UNAUTHORIZED,        /* 401: a bad token in the upgrade */
    SHM_REFUSED_SUB_MAX_CONNECTIONS, /* 429: the token's max_connections */
    SHM_REFUSALS
};
extern const char *const shm_refusal_names[SHM_REFUSALS];

struct shm_worker {
    /* writer: the worker itself, where no other is named.  Once it has
     * died, the supervisor zeroes active_clients, open_connections,
     * conflated_clients and listening (shm_worker_retire); the counters stay,
     * and the slot's next worker adds to them (cumulative per slot). */
    _Atomic int32_t pid;        /* writer: supervisor (at fork; 0 when dead) */
    _Atomic uint32_t listening; /* 1 while it takes new clients (0 from its
                                 * drain on, while it still reads the ring) */
    _Atomic uint64_t active_clients;
    _Atomic uint64_t total_connections;
    _Atomic uint64_t total_messages;   /* messages written to clients */
    _Atomic uint64_t dropped_messages; /* not queued: client buffer full, or no memory */
    _Atomic uint64_t slow_disconnects;
    _Atomic uint64_t ring_next;           /* next ring sequence this worker will read */
    _Atomic uint64_t ring_missed;         /* frames lost to a lap (stored: the worker adds
                                           * what it found at start) */
    _Atomic uint64_t invalid_frames;      /* ring frames it could not decode or encode */
    _Atomic uint64_t client_errors;       /* error replies sent, connections closed for a
                                           * protocol violation */
    _Atomic uint64_t restarts;            /* writer: supervisor (at each respawn) */
    _Atomic uint64_t open_connections;    /* TCP connections accepted and not yet
                                           * closed, upgraded or not (MAX_CONNECTIONS) */
    _Atomic uint64_t refused_connections; /* closed at accept: a connection limit */
    _Atomic uint64_t addrtab_full;        /* new addresses refused: its table was full */
    /* The consistent board (worker/feed.h). */
    _Atomic uint64_t snapshots_sent;         /* snapshots queued whole to a client */
    _Atomic uint64_t snapshot_items_sent;    /* keys in them */
    _Atomic uint64_t resumes_ok;             /* resumes that replayed what was missed */
    _Atomic uint64_t resumes_epoch_changed;  /* refused: another epoch */
    _Atomic uint64_t resumes_too_old;        /* refused: entries no longer at hand */
    _Atomic uint64_t resumes_unknown_stream; /* refused: a stream without a position */
    _Atomic uint64_t lapped_snapshots;       /* fresh snapshots after frames were lost */
    /* Slow clients (outbound.h): conflation, and cuts by the bound hit. */
    _Atomic uint64_t conflated_clients; /* in conflated mode now */
    _Atomic uint64_t conflated_updates; /* updates replaced by a newer one, never sent */
    _Atomic uint64_t slow_keys;         /* cut: more distinct keys waiting than CLIENT_BUFFER */
    _Atomic uint64_t slow_bytes;        /* cut: more than CLIENT_BUFFER_BYTES queued */
    _Atomic uint64_t slow_lag;          /* cut: oldest queued message over CLIENT_MAX_LAG */
    _Atomic uint64_t slow_send_timeout; /* cut: socket took nothing for SEND_TIMEOUT */
    /* Closing (wsp.h): closes this worker started, by the code it sent
     * (shm_close_slot); peers dropped for not answering a ping; upgrades
     * refused with an HTTP status (enum shm_refusal). */
    _Atomic uint64_t closes[SHM_CLOSE_SLOTS];
    _Atomic uint64_t ping_timeouts;
    _Atomic uint64_t upgrades_refused[SHM_REFUSALS];
    /* Ring publication -> the write that completed the frame to a client,
     * one delivery in OUTQ_LATENCY_SAMPLE (outq.h). */
    struct hist delivery_latency;
    uint8_t pad[SHM_PAGE - 528]; /* a page each: writable by its worker alone */
};

/*
 * Exact counts per client address (addrtab.h), for the per-address limits
 * across workers: one table per worker slot, `stride` bytes apart from
 * `offset`, each nslots entries.  A table starts on a page and fills whole
 * pages, so a dead worker's table can be given back to the system
 * (addrtab_clear).  The geometry is written by the supervisor before the
 * first fork and never changes.
 */

struct shm_addrtabs {
    /* For a debugger, like hdr: processes use their own copy (shm_addrtab). */
    uint64_t offset; /* of worker 0's table from the start of the region */
    uint64_t stride; /* bytes from one worker's table to the next */
    uint32_t nslots; /* entries per table */
    uint8_t pad[RING_CACHELINE - 20];
    _Atomic uint64_t clears[SHM_MAX_WORKERS]; /* writer: supervisor; odd while it clears
                                               * worker i's table (addrtab_clear) */
};

/* Each part starts on a page (SHM_PAGE), so shm_protect can give each
 * process write access to its own parts only. */
struct shm {
    /* supervisor */
    struct shm_header hdr;
    _Alignas(RING_CACHELINE) struct shm_drain drain;
    _Alignas(RING_CACHELINE) struct shm_addrtabs addrtabs;
    /* ingest */
    _Alignas(SHM_PAGE) struct shm_ingest ingest;
    struct shm_epoch epoch;
    struct shm_stream streams[SHM_MAX_STREAMS];
    /* Redis entry time (its id) -> published to the ring, per entry. */
    _Alignas(RING_CACHELINE) struct hist ingest_latency;
    /* worker i: workers[i], then its address table after the struct */
    _Alignas(SHM_PAGE) struct shm_worker workers[SHM_MAX_WORKERS];
    /* address tables, one per worker on pages of their own (addrtabs), then
     * the ring (struct ring_header, slots, data), on a page: ingest */
};

/* Entries of each worker's address table for a configuration: room for
 * every address a worker may hold at once (addrtab_slots_for). */
uint32_t shm_addr_slots_for(uint32_t max_connections, uint32_t max_clients);

/* Bytes shm_create maps for these arguments (the region and this process's
 * private page; the ring's data area is sized for frames of 512 bytes on
 * average).  Pure, any role: `-t` and start-up compare it with the host's
 * memory before mapping anything.  0 if they make no region. */
uint64_t shm_region_size(uint32_t nworkers, uint32_t nslots, uint32_t max_frame,
                         uint32_t addr_slots);

/* Map a zeroed region for nworkers, a ring of nslots frames of at most
 * max_frame bytes and one address table of addr_slots entries per worker,
 * and this process's private copy of that geometry.  Supervisor only, before
 * the first fork.  NULL on failure (errno set). */
struct shm *shm_create(uint32_t nworkers, uint32_t nslots, uint32_t max_frame, uint32_t addr_slots);

/* Unmap the region and the private copy (supervisor, at exit). */
void shm_destroy(struct shm *s);

/* 0 if nworkers, nslots and max_frame (a child's configuration) give the
 * geometry of this process's copy, -1 if not: the child was forked with a
 * configuration the region was not made for.  Any role, after fork. */
int shm_attach(const struct shm *s, uint32_t nworkers, uint32_t nslots, uint32_t max_frame,
               uint32_t addr_slots);

/* Map the snapshot table (common/snaptab.h) for max_keys keys beside the
 * region, laid out empty: its pages cost memory only once used.
 * Supervisor only, after shm_create and before the first fork.  0, or -1
 * (errno set). */
int shm_add_snaptab(struct shm *s, uint32_t max_keys);

/* The snapshot table's memory and its key count (0 and NULL if none was
 * added).  Any role: the ingest attaches to it as the writer, the workers
 * as readers. */
void *shm_snaptab(const struct shm *s, uint32_t *max_keys);

/* The epoch's text into buf (at least SHM_EPOCH_MAX bytes); "" if the
 * ingest has not read it yet.  Any role. */
void shm_epoch_get(const struct shm *s, char *buf, size_t size);

/* Ingest: publish a new epoch text (cut to SHM_EPOCH_MAX - 1 bytes). */
void shm_epoch_set(struct shm *s, const char *text);

/* Who a child is, for shm_protect. */
enum shm_role { SHM_ROLE_INGEST, SHM_ROLE_WORKER };

/* In a child right after fork: map the region read-only except the parts
 * its role writes (the ingest: its part and the ring; worker i, from 0: its
 * slot and its address table).  A stray write elsewhere then kills only the
 * process that made it.  0, or -1 with the failed call in err, the region
 * left writable as it was. */
int shm_protect(struct shm *s, enum shm_role role, uint32_t worker, char *err, size_t errlen);

/* This process's handle on the ring (its own geometry).  Any role. */
struct ring *shm_ring(const struct shm *s);

/* Worker slots in use, from this process's copy.  Any role. */
uint32_t shm_nworkers(const struct shm *s);

/* 1 if a drain has begun (struct shm_drain), with when it began (epoch ms)
 * and its deadline (monotonic ms) in the pointers (either may be NULL);
 * else 0, the pointers untouched.  Any role. */
int shm_draining(const struct shm *s, uint64_t *started_ms, uint64_t *deadline_mono_ms);

/* Supervisor: a drain begins now (epoch ms started_ms), to end by
 * deadline_mono_ms; called again, only the deadline moves (never later
 * than it was). */
void shm_drain_begin(struct shm *s, uint64_t started_ms, uint64_t deadline_mono_ms);

/*
 * Row of stream `name`, giving it one if it has none: a never-used row, or
 * else the row of a stream not in configured[] (the streams the calling
 * ingest reads, name included) whose frames have all left the ring, renamed
 * (its ids and group flag start over).  -1 if no row is free or the name is
 * too long.  Ingest only.
 */
int shm_stream_index(struct shm *s, const char *name, const char *const *configured,
                     size_t nconfigured);

/*
 * Whether an ingest reading wanted[] could get a row for each of its streams
 * while the running ingest, reading running[], may still publish to its rows
 * (their rows are not counted as free; a running stream without a row yet is
 * counted as needing one).  0 if so; -1 with the counts, and how many more
 * entries the ring must take before enough rows are free, in err.  Any role
 * (the supervisor, before it applies a reload).
 */
int shm_streams_fit(const struct shm *s, const char *const *running, size_t nrunning,
                    const char *const *wanted, size_t nwanted, char *err, size_t errlen);

/* Copy the name of stream idx into buf (size bytes).  0, or -1 if idx is
 * out of range or unused, or the name is not terminated within its row or
 * does not fit.  A reader resolving a frame's stream does so while it holds
 * that frame, freshly read from the ring: the row is not renamed then.  Any
 * role. */
int shm_stream_name(const struct shm *s, uint32_t idx, char *buf, size_t size);

/* Sums over the worker slots (the shm_nworkers of them): the limits'
 * counts (active_clients, open_connections) and what /health and /metrics
 * show.  Any role. */
struct shm_totals {
    uint64_t active_clients;
    uint64_t total_connections;
    uint64_t total_messages;
    uint64_t dropped_messages;
    uint64_t slow_disconnects;
    uint64_t ring_missed;
    uint64_t invalid_frames;
    uint64_t client_errors;
    uint64_t open_connections;
    uint64_t refused_connections;
    uint64_t broadcast_usage; /* frames published but not read by the slowest live worker */
    uint64_t snapshots_sent;
    uint64_t snapshot_items_sent;
    uint64_t resumes_ok;
    uint64_t resumes_epoch_changed;
    uint64_t resumes_too_old;
    uint64_t resumes_unknown_stream;
    uint64_t lapped_snapshots;
    uint64_t conflated_clients;
    uint64_t conflated_updates;
    uint64_t slow_keys;
    uint64_t slow_bytes;
    uint64_t slow_lag;
    uint64_t slow_send_timeout;
};
void shm_totals(struct shm *s, struct shm_totals *t);

/* Worker i's (from 0) address table.  Any role; only worker i may add to it
 * (addrtab_add). */
struct addrtab shm_addrtab(struct shm *s, uint32_t i);

/* Counter c of address key summed over every worker's table.  Any role. */
uint64_t shm_addr_count(struct shm *s, const struct addrtab_key *key, enum addrtab_counter c);

/* Supervisor, after reaping worker i: zero what its slot says of the
 * present (clients, connections, conflated clients, listening, pid) and
 * clear its address table.  The counters stay for the slot's next worker
 * to add to. */
void shm_worker_retire(struct shm *s, uint32_t i);

#endif
