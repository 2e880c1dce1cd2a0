/*
 * figures: the one table of what GET /metrics shows, and how each figure
 * is read from shared memory (and /proc).  metrics.c renders it twice, as
 * JSON and as Prometheus text; nothing else lists figures, so the two
 * formats cannot drift.
 *
 * A family (struct figures_family) is one Prometheus metric family: its
 * name, type and help, whose figure it is (scope: the instance, each
 * worker slot, each stream read, each process), at most one more label
 * (dim: a close code, a reason, a result, with a fixed list of values),
 * and its place in the JSON.  A request first loads a view (struct
 * figures_view): the totals, the snapshot table's stats, the ring head,
 * the clock, the processes' /proc figures and the streams read, once, so
 * that figures derived from one load agree within a body.
 *
 * Worker role.  Relaxed loads of shm (each figure current, not a
 * consistent snapshot across processes); figures_view_new reads /proc
 * (procstat.h).  Not thread-safe (one loop per worker).
 */
#ifndef WSB_FIGURES_H
#define WSB_FIGURES_H

#include "../common/hist.h"
#include "../common/procstat.h"
#include "../common/shm.h"
#include "../common/snaptab.h"

#include <stddef.h>
#include <stdint.h>

enum figures_type { FIGURES_GAUGE, FIGURES_COUNTER, FIGURES_HISTOGRAM };

/* Whose figure it is: how many series, their labels, their JSON objects. */
enum figures_scope {
    FIGURES_INSTANCE, /* one series; the top JSON object */
    FIGURES_WORKER,   /* {worker="n"}; workers[n-1], and their sum at the top */
    FIGURES_STREAM,   /* {stream="..."}; streams[] */
    FIGURES_PROCESS,  /* {role=...} (+ worker); supervisor, ingest, workers[n-1] */
};

#define FIGURES_BOOL   1u /* JSON true/false, Prometheus 1/0 */
#define FIGURES_NO_SUM 2u /* per worker only: no sum at the top of the JSON */
#define FIGURES_INFO   4u /* value 1 with version="..."; JSON: the version text */

enum figures_role { FIGURES_ROLE_SUPERVISOR, FIGURES_ROLE_INGEST, FIGURES_ROLE_WORKER };

/* "gauge", "counter", "histogram"; "supervisor", "ingest", "worker". */
extern const char *const figures_type_names[];
extern const char *const figures_role_names[];

/* The version build_info names (WSB_VERSION). */
extern const char *const figures_version;

struct figures_proc {
    enum figures_role role;
    uint32_t worker; /* a worker's slot, from 0 */
    int32_t pid;     /* 0: being restarted */
    int have;        /* st was read */
    struct procstat st;
};

struct figures_view {
    struct shm *s;
    struct shm_totals t;
    struct snaptab_stats snap; /* zero if the instance has no table */
    uint64_t head;
    uint64_t now_ms;
    uint32_t nworkers;
    uint32_t nprocs; /* supervisor, ingest, then the workers */
    struct figures_proc procs[2 + SHM_MAX_WORKERS];
    uint32_t nstreams; /* the streams the ingest reads, in row order */
    struct figures_stream {
        uint32_t row;
        char name[SHM_STREAM_NAME];
    } streams[SHM_MAX_STREAMS];
};

/* A family's one extra label and its values.  In JSON the values are the
 * keys of an object at the family's key (json NULL), or each a key of its
 * own (json[i]; the family's key, if any, then holds their sum). */
struct figures_dim {
    const char *label;
    const char *const *values;
    unsigned n;
    const char *const *json;
};

/* Where a value is read: series (worker, or item of streams/procs) and the
 * dim's value; all: the sum over the workers (the top of the JSON). */
struct figures_at {
    int all;
    uint32_t worker;
    uint32_t item;
    unsigned value;
};

struct figures_family {
    const char *name; /* Prometheus */
    enum figures_type type;
    enum figures_scope scope;
    const char *json; /* key in its JSON object; "a.b" nests */
    unsigned flags;
    unsigned scale; /* the value's units per unit shown (1000: ms as seconds); 0 as 1 */
    const struct figures_dim *dim;
    /* The value: get, or else the counter (array, for a dim) at off in
     * struct shm_worker.  -1: not known now (absent from both formats). */
    int (*get)(const struct figures_view *v, const struct figures_at *at, uint64_t *out);
    size_t off;
    /* Histograms: the one to show, or else the struct hist at off in the
     * worker's slot. */
    const struct hist *(*hist)(const struct figures_view *v);
    const char *help;
};

/* Every family, in JSON order (the seed's five first).  JSON keys are the
 * interface: never rename one. */
extern const struct figures_family figures_families[];
extern const size_t figures_nfamilies;

/* The view of shm (and /proc) for one request: malloc'd, free() it; NULL
 * on OOM.  Reads /proc/<pid> of each process (procstat.h): a few small
 * file reads each, and a walk of its descriptors. */
struct figures_view *figures_view_new(struct shm *s);

/* Whether the ingest is up and reads Redis (/health, redis_connected). */
int figures_redis_up(struct shm *s);

/* Series of f in v, and where series k is read (value 0 of its dim). */
uint32_t figures_nseries(const struct figures_view *v, const struct figures_family *f);
struct figures_at figures_series_at(const struct figures_family *f, uint32_t k);

/* f's value at `at` (summed over the workers if at->all): 0, or -1 if it
 * is not known now (a process being restarted, a lag Redis does not give). */
int figures_value(const struct figures_view *v, const struct figures_family *f,
                  const struct figures_at *at, uint64_t *out);

/* Histogram f's counts at `at` (the workers' added up if at->all). */
void figures_hist_counts(const struct figures_view *v, const struct figures_family *f,
                         const struct figures_at *at, struct hist_counts *c);

/* value / scale as an exact decimal ("12", "1.500", "0.000572"): the same
 * text in both formats.  scale is 0 or 1, 1000 or 1000000. */
void figures_number(char *buf, size_t size, uint64_t value, unsigned scale);

/* Where the process figures come from: procstat_read unless a test sets
 * another reader (NULL restores it). */
void figures_set_proc_reader(int (*reader)(int pid, struct procstat *out));

#endif
