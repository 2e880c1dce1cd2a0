#include "hist.h"

#include <stdio.h>

/*
 * From 100 us (a delivery on an idle worker) to 60 s (an ingest catching up
 * after an outage), about three per decade, as Prometheus's defaults.  Redis
 * ids carry milliseconds, so the ingest histogram's values below 1 ms are
 * only as good as that.  Keep in sync with README "HTTP endpoints".
 */
const uint64_t hist_bounds_us[HIST_NBOUNDS] = {
    100,    250,    500,    1000,    2500,    5000,    10000,    25000,    50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, 60000000,
};

unsigned
hist_bucket(uint64_t us)
{
    /* Linear, from the small end: most observations are small, and this
     * runs on the hot path, where an early exit beats a binary search. */
    for (unsigned i = 0; i < HIST_NBOUNDS; i++) {
        if (us <= hist_bounds_us[i])
            return i;
    }
    return HIST_NBOUNDS;
}

void
hist_read_add(const struct hist *h, struct hist_counts *acc)
{
    uint64_t running = 0;

    for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
        running += atomic_load_explicit(&((struct hist *)h)->buckets[i], memory_order_relaxed);
        acc->cumulative[i] += running;
    }
    acc->sum_us += atomic_load_explicit(&((struct hist *)h)->sum_us, memory_order_relaxed);
}

size_t
hist_format_bound(unsigned i, char *buf, size_t size)
{
    uint64_t us, whole, frac;
    int n, digits = 6;

    if (size == 0)
        return 0;
    if (i >= HIST_NBOUNDS) {
        n = snprintf(buf, size, "+Inf");
    } else {
        us = hist_bounds_us[i];
        whole = us / 1000000;
        frac = us % 1000000;
        if (frac == 0) {
            n = snprintf(buf, size, "%llu", (unsigned long long)whole);
        } else {
            /* Exact: no binary floating point between the bound and its text. */
            while (frac % 10 == 0) {
                frac /= 10;
                digits--;
            }
            n = snprintf(buf, size, "%llu.%0*llu", (unsigned long long)whole, digits,
                         (unsigned long long)frac);
        }
    }
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
