/*
 * test_drain: the pacing of a drain and the reconnect delays (drain.h's
 * pure functions).
 *
 * drain_quota, called at every round with the clients left, must close
 * them evenly: after a share x of the window, about x of them, never all at
 * the start, all by the deadline; clients that leave on their own make the
 * rest spread over the time left; rounds that come late (a busy loop) catch
 * up; a deadline moved forward (a second signal) closes the rest.
 * drain_after_ms stays within 0..jitter and spreads over it.
 */
#include "worker/drain.h"

#include "test.h"

/* Run rounds every `tick` ms from 0 to `window` for n clients (leave: how
 * many leave on their own at each round); closed[t / 100] counts the
 * closes by each 100 ms step.  Returns the clients left at the deadline. */
static uint32_t
simulate(uint32_t n, uint64_t window, uint64_t tick, uint32_t leave, uint32_t *closed_by)
{
    uint64_t start = 1000000, last = start, deadline = start + window;
    uint32_t remaining = n, closed = 0;
    double owed = 0;

    for (uint64_t now = start + tick; now <= deadline; now += tick) {
        uint32_t k;

        remaining -= leave < remaining ? leave : remaining;
        k = drain_quota(remaining, last, now, deadline, &owed);
        CHECK(k <= remaining);
        remaining -= k;
        closed += k;
        last = now;
        if (closed_by != NULL)
            closed_by[(now - start) / 100] = closed;
    }
    return remaining;
}

static void
test_even_spread(void)
{
    uint32_t by[64] = {0};

    /* 40 clients over 4 s, rounds of 50 ms: one every 100 ms. */
    CHECK_INT(simulate(40, 4000, DRAIN_TICK_MS, 0, by), 0);
    for (int step = 1; step <= 40; step++) {
        int want = step; /* by step * 100 ms */
        CHECK(by[step] + 1 >= (uint32_t)want && by[step] <= (uint32_t)want + 1);
    }
    CHECK(by[10] <= 11); /* never all in the first second */

    /* 100,000 over 10 s: 500 a round, none left. */
    CHECK_INT(simulate(100000, 10000, DRAIN_TICK_MS, 0, NULL), 0);
    /* Fewer clients than rounds, more rounds than clients. */
    CHECK_INT(simulate(3, 10000, DRAIN_TICK_MS, 0, NULL), 0);
    CHECK_INT(simulate(1, 50, DRAIN_TICK_MS, 0, NULL), 0);
}

static void
test_clients_leaving_on_their_own(void)
{
    uint32_t by[64] = {0};

    /* One in ten rounds a client leaves by itself: the rest still end by
     * the deadline, not before half of the window. */
    CHECK_INT(simulate(400, 4000, DRAIN_TICK_MS, 1, by), 0);
    CHECK(by[20] < 400 - 40);
}

static void
test_edges(void)
{
    double owed = 0.7;

    /* Nobody left: nothing, and nothing owed. */
    CHECK_INT(drain_quota(0, 0, 100, 1000, &owed), 0);
    CHECK(owed == 0);
    /* The deadline passed (DRAIN_SECONDS=0, a second signal): all. */
    CHECK_INT(drain_quota(7, 100, 100, 100, &owed), 7);
    CHECK_INT(drain_quota(7, 50, 200, 100, &owed), 7);
    CHECK_INT(drain_quota(7, 150, 160, 100, &owed), 7);
    /* No time passed: nothing. */
    owed = 0;
    CHECK_INT(drain_quota(7, 100, 100, 1000, &owed), 0);
    /* A round late by most of the window catches up. */
    owed = 0;
    CHECK_INT(drain_quota(10, 0, 900, 1000, &owed), 9);
}

static void
test_after_ms(void)
{
    uint64_t state = 42;
    uint32_t lo = UINT32_MAX, hi = 0, buckets[10] = {0};

    for (int i = 0; i < 10000; i++) {
        uint32_t v = drain_after_ms(&state, 5000);
        CHECK(v <= 5000);
        if (v < lo)
            lo = v;
        if (v > hi)
            hi = v;
        buckets[v * 10 / 5001]++;
    }
    CHECK(lo < 50 && hi > 4950);
    for (int b = 0; b < 10; b++)
        CHECK(buckets[b] > 800 && buckets[b] < 1200);
    CHECK_INT(drain_after_ms(&state, 0), 0);
    /* Different states, different draws. */
    {
        uint64_t a = 1, b = 2;
        CHECK(drain_after_ms(&a, 1000000) != drain_after_ms(&b, 1000000));
    }
}

TEST_MAIN(TEST(test_even_spread), TEST(test_clients_leaving_on_their_own), TEST(test_edges),
          TEST(test_after_ms))
