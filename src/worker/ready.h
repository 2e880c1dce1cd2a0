/*
 * ready: the body of GET /readyz, from shared memory, so any worker answers
 * for the whole instance.  (/livez, what a liveness probe restarts on, is
 * 200 whenever a worker answers at all: http.c.)
 *
 * /readyz is what a balancer routes on: 200 only while this instance can
 * serve a correct board, else 503.  Not ready: before every worker listens,
 * while Redis cannot be read (the ingest is down or disconnected), while a
 * stream is stale (its newest entry read is older than READY_MAX_LAG while
 * Redis has newer ones: the ingest is stuck or far behind), and from the
 * first moment of a drain.  The JSON body says why, in "reasons".
 *
 * Worker-side, I/O-free; reads shm with relaxed loads.
 */
#ifndef WSB_READY_H
#define WSB_READY_H

#include "../common/conf.h"
#include "../common/shm.h"
#include "metrics.h"

/* Render /readyz into out; returns the HTTP status (200 or 503), -1 on OOM. */
int ready_readyz(struct shm *s, const struct conf *c, struct metrics_buf *out);

#endif
