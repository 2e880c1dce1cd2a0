/*
 * metrics: the bodies of GET /health and GET /metrics, read from shared
 * memory, so any worker answers for the whole instance.
 *
 * /health is healthy while the ingest is alive (shm ingest.pid, kept by the
 * supervisor) and reads Redis (ingest.redis_up, kept by the ingest), and
 * degraded otherwise; redis_connected in /metrics says the same.  /metrics
 * is JSON, or the Prometheus text exposition format, both rendered from one
 * table of figures in metrics.c: a JSON key k is ws_broadcaster_k in the
 * text, ingest.k is ws_broadcaster_ingest_k, and workers[].k is
 * ws_broadcaster_worker_k{worker="n"}.  Worker-side, I/O-free; reads shm
 * with relaxed loads (figures from different processes are each current,
 * not a consistent snapshot).
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
