/*
 * metrics: the bodies of GET /health and GET /metrics, read from shared
 * memory, so any worker answers for the whole instance.
 *
 * /health is healthy while the ingest is alive (shm ingest.pid, kept by the
 * supervisor) and reads Redis (ingest.redis_up, kept by the ingest), and
 * degraded otherwise; redis_connected in /metrics says the same.
 *
 * /metrics is JSON, or the Prometheus text exposition format, both rendered
 * from the one table of metric families (figures.h), so a figure cannot be
 * in one format only.  Each family has a Prometheus name that follows its
 * conventions (counters end in _total, units in the name) and a place in
 * the JSON, whose keys are kept from release to release:
 *   - instance figures: one sample, one JSON key;
 *   - per-worker figures: one family with a worker="n" label; in JSON at
 *     the same key in each workers[] entry, and their sum at the top;
 *   - per-stream figures: {stream="..."}, JSON streams[];
 *   - per-process figures: {role="supervisor|ingest|worker"} (and worker),
 *     JSON under supervisor, ingest, workers[];
 *   - a family may have one more label (code, reason, result), whose
 *     values are JSON keys of an object, or each a key of its own;
 *   - histograms: _bucket{le}, _sum, _count; in JSON an object of
 *     "buckets" (cumulative, by le), "sum" and "count".
 * A figure that is not known (a process being restarted, a lag Redis does
 * not give) is absent from both.  README "HTTP endpoints" lists them all.
 *
 * Worker-side.  Reads shm with relaxed loads (figures from different
 * processes are each current, not a consistent snapshot), and /proc for
 * the process figures (figures.h).  Not thread-safe (one loop per worker).
 */
#ifndef WSB_METRICS_H
#define WSB_METRICS_H

#include "../common/shm.h"

#include <stddef.h>

struct metrics_buf {
    char *data; /* malloc'd */
    size_t len;
    size_t cap;
};

/* Render /health into out; returns the HTTP status (200 or 503), -1 on OOM. */
int metrics_health(struct shm *s, struct metrics_buf *out);

/* Render /metrics as JSON or Prometheus text; 0, or -1 on OOM. */
int metrics_json(struct shm *s, struct metrics_buf *out);
int metrics_prometheus(struct shm *s, struct metrics_buf *out);

void metrics_buf_free(struct metrics_buf *b);

/* 1 if the query string ("a=b&format=prometheus", or NULL) or else the
 * Accept header (or NULL) asks for the Prometheus text format. */
int metrics_wants_prometheus(const char *accept, const char *query);

#endif
