/*
 * hist: latency histograms in shared memory, in the shape Prometheus
 * exposes (buckets with upper bounds in seconds, a sum and a count).
 *
 * The ingest keeps one (Redis entry time -> published to the ring) and each
 * worker one in its own stats slot (ring -> client socket).  Each histogram
 * has exactly one writing process at a time: a worker slot's successor is
 * forked only after its predecessor was reaped, and it goes on counting
 * where that one stopped, so the figures never go backwards.  One writer
 * means an increment needs no locked read-modify-write: hist_observe is a
 * relaxed load and a relaxed store per word, as cheap as a plain increment
 * on the hot path, while every reader still sees each word whole.
 *
 * Readers (any role, hist_read) take relaxed loads: a reader may see a
 * bucket counted and the sum not yet, or the reverse.  That is within what
 * monitoring needs; the count is derived from the buckets, so the +Inf
 * bucket and the count always agree and cumulative buckets never decrease.
 *
 * The bounds are fixed (hist_bounds_us), from 100 us to 60 s, so the
 * histograms of all the processes can be added up.  Pure functions, safe
 * in every role.
 */
#ifndef WSB_HIST_H
#define WSB_HIST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define HIST_NBOUNDS  18                 /* finite upper bounds */
#define HIST_NBUCKETS (HIST_NBOUNDS + 1) /* and +Inf */

/* Upper bounds of the finite buckets, microseconds, increasing. */
extern const uint64_t hist_bounds_us[HIST_NBOUNDS];

/* In shared memory; zero is empty. */
struct hist {
    /* Observations per bucket, not cumulative: bucket i counts values in
     * (bound[i-1], bound[i]]; the last one those above every bound. */
    _Atomic uint64_t buckets[HIST_NBUCKETS];
    _Atomic uint64_t sum_us;
};

/* A reader's copy: cumulative counts, as Prometheus shows them. */
struct hist_counts {
    uint64_t cumulative[HIST_NBUCKETS]; /* observations <= bound i; the last: all */
    uint64_t sum_us;
};

/* The bucket of an observation of us microseconds: the first whose bound
 * is at least us (Prometheus buckets are "less than or equal"). */
unsigned hist_bucket(uint64_t us);

/* Observations are capped here (an hour) before they are added to the sum:
 * a value from ids that are not times (a stream written with explicit ids
 * like "1-1") or a clock off by years would otherwise wrap the sum around
 * within a few thousand entries, and a counter must never go backwards. */
#define HIST_MAX_US 3600000000ULL

/* Count one observation.  Only the histogram's one writer may call it. */
static inline void
hist_observe(struct hist *h, uint64_t us)
{
    unsigned b;

    if (us > HIST_MAX_US)
        us = HIST_MAX_US;
    b = hist_bucket(us);

    /* relaxed: one writer (see above), so load + store is the increment;
     * nothing is ordered by these words. */
    atomic_store_explicit(&h->buckets[b],
                          atomic_load_explicit(&h->buckets[b], memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&h->sum_us, atomic_load_explicit(&h->sum_us, memory_order_relaxed) + us,
                          memory_order_relaxed);
}

/* Add h's counts to *acc (zero it first for one histogram's own); any
 * role.  Adding several gives their sum (the workers' together). */
void hist_read_add(const struct hist *h, struct hist_counts *acc);

/* Observations in c (the +Inf bucket). */
static inline uint64_t
hist_count(const struct hist_counts *c)
{
    return c->cumulative[HIST_NBUCKETS - 1];
}

/* Upper bound i (0 .. HIST_NBUCKETS - 1) as Prometheus's le label value:
 * seconds, shortest exact decimal ("0.0001", "2.5", "60"), or "+Inf" for
 * the last.  Returns the length; buf gets "" if size is too small. */
size_t hist_format_bound(unsigned i, char *buf, size_t size);

#endif
