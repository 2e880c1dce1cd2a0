/*
 * drain: a worker's part of a stop (README "Operations").
 *
 * From the worker's first SIGTERM or SIGINT on, upgrades are refused with
 * 503 (admit.h) and the clients are closed a few at a time, spread evenly
 * until the drain's deadline: each is sent {"type":"reconnect","payload":
 * {"after_ms":N}}, N drawn uniformly from 0..RECONNECT_JITTER_MS, then close
 * 1001.  A client library that waits N ms before it reconnects (to another
 * instance, behind the load balancer) makes 100,000 clients come back
 * spread over DRAIN_SECONDS plus the jitter instead of in the same second.
 * The clients still there at the deadline are closed together.
 *
 * The deadline is the supervisor's (struct shm_drain), read again at each
 * signal: a second SIGTERM or SIGINT to the supervisor brings it to that
 * moment (the drain ends early).  A worker signalled directly, before the
 * supervisor began the drain, counts DRAIN_SECONDS from its own signal.
 *
 * Worker role; single-threaded (the lws loop).  One drain per process.
 */
#ifndef WSB_DRAIN_H
#define WSB_DRAIN_H

#include "wsp.h"

#include <stdint.h>

/* Milliseconds between two rounds of closes: short beside any DRAIN_SECONDS
 * worth setting, long enough that a round closes a batch at high counts. */
#define DRAIN_TICK_MS 50

/*
 * Begin (or, called again, re-time) the drain of vh's clients, to end by
 * deadline_mono_ms (CLOCK_MONOTONIC ms); a deadline later than the one in
 * force is ignored.  Clients are closed from the next round on, at once if
 * the deadline has passed.  The caller has set vh->stopping.
 */
void drain_start(struct wsp_vhost *vh, uint64_t deadline_mono_ms);

/* The deadline in force (monotonic ms); 0 before drain_start. */
uint64_t drain_deadline(void);

/* Cancel the drain's timer (the worker is exiting). */
void drain_cancel(void);

/*
 * How many of `remaining` clients to close in the round at `now`, the
 * previous round having been at `last`: the share of the time left until
 * `deadline` (as seen at `last`) that has passed since, times `remaining`,
 * plus what earlier rounds owed in fractions (*owed, in and out).  All of
 * them once now >= deadline.  Pure.
 */
uint32_t drain_quota(uint32_t remaining, uint64_t last, uint64_t now, uint64_t deadline,
                     double *owed);

/* The after_ms a client is told: uniform in 0..jitter_ms, from *state (a
 * splitmix64 state, advanced).  Pure. */
uint32_t drain_after_ms(uint64_t *state, uint32_t jitter_ms);

#endif
