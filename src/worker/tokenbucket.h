/*
 * tokenbucket: the per-client message rate limit (RATE_LIMIT messages a
 * second, bursts of RATE_BURST).
 *
 * A bucket holds up to `burst` tokens and refills at `rate` tokens a second;
 * each message takes one.  A new bucket starts full, so a client may send
 * its first `burst` messages at once.  Worker role, I/O-free; the caller
 * passes a monotonic clock so tests can drive it.
 */
#ifndef WSB_TOKENBUCKET_H
#define WSB_TOKENBUCKET_H

#include <stdint.h>

struct tokenbucket {
    double tokens;
    uint64_t refill_ms; /* 0: never used (full) */
};

/* Take one token at time now_ms (monotonic, > 0): 1 if there was one, 0 if
 * the message exceeds the rate. */
int tokenbucket_take(struct tokenbucket *tb, uint64_t now_ms, uint32_t rate, uint32_t burst);

#endif
