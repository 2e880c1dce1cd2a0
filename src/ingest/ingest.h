/*
 * ingest: the process that reads Redis Streams and writes the ring.
 *
 * It is the ring's only writer.  For each configured stream it reads with
 * its own consumer group <CONSUMER_GROUP>:<CONSUMER_ID> (created at `$` with
 * MKSTREAM, so a new instance starts with new entries and every instance gets
 * every entry), decodes each entry into a frame, publishes it, wakes the
 * workers, and only then acknowledges it.  On start it first re-reads its
 * pending entries and skips those the ring already holds (the ring and the
 * shm stream table record the last id published per stream), so a crash
 * loses nothing and repeats nothing.  Redis being unreachable is reported in
 * shm (ingest.redis_up) and retried with capped exponential backoff.
 */
#ifndef WSB_INGEST_H
#define WSB_INGEST_H

#include "../common/conf.h"
#include "../common/shm.h"

/* Run the ingest until SIGTERM/SIGINT; returns the process exit status.
 * wake_fds are the workers' eventfds (nwake of them), written after frames
 * are published. */
int ingest_main(struct shm *s, const struct conf *c, const int *wake_fds, int nwake);

#endif
