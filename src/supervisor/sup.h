/*
 * sup: the supervisor: process table, spawning, reaping, respawn backoff,
 * listeners and signals.
 *
 * Before the first fork it maps the shared memory, creates one SO_REUSEPORT
 * listening socket and one eventfd per worker slot, and blocks every signal
 * it handles: they are read from a signalfd in a poll loop with a timerfd
 * (no asynchronous handlers).  It keeps every listener open, so a worker
 * that replaces a crashed one inherits the same socket and the connections
 * queued on it.  A child that exits is logged and restarted in its slot; one
 * that dies within a second of starting, or more than 5 times in a minute
 * (a crash loop, logged at ERROR), is restarted with exponential backoff.
 * Right after fork each child maps the shared parts it does not write
 * read-only (shm_protect).  Exit status 78 (EX_CONFIG) from a child means a
 * restart cannot help: the supervisor stops everything and exits 78.
 *
 * SIGHUP re-reads the config file: SPORTS and LOG_LEVEL apply at once (the
 * ingest is restarted with the new streams; workers and clients are not
 * touched); other changed keys are logged as needing a restart.  A reload
 * whose streams would find no row in the shared stream table is refused
 * whole, like a file that does not parse: the running configuration goes
 * on.
 * Children ignore SIGHUP (one sent to the process group must not kill
 * them).
 * SIGTERM/SIGINT drain (README "Operations"): the drain flag and deadline
 * go into shared memory (struct shm_drain), then the workers get SIGTERM,
 * refuse upgrades with 503 and close their clients (a `reconnect` message,
 * then 1001) spread over DRAIN_SECONDS; the ingest is stopped once the last
 * worker has gone, and the supervisor exits 0 when it has.  A second
 * signal ends the drain at once.  Whatever still runs DRAIN_SECONDS +
 * CLOSE_TIMEOUT + 5 s after the first signal is killed.  A worker that exits
 * during a stop has its listener closed, so new connections go to the
 * workers still draining.
 */
#ifndef WSB_SUP_H
#define WSB_SUP_H

#include "../common/conf.h"

#define SUP_EXIT_CONFIG 78 /* EX_CONFIG: a restart cannot help */

/* Run the service with configuration c (loaded from conf_path, NULL for the
 * default) until stopped.  Returns the process exit status. */
int sup_run(const struct conf *c, const char *conf_path);

#endif
