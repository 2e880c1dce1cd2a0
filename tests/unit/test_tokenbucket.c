/*
 * test_tokenbucket: RATE_LIMIT / RATE_BURST as a client meets them.  The
 * clock is passed in, so time is exact here.
 */
#include "worker/tokenbucket.h"

#include "test.h"

static int
take_all(struct tokenbucket *tb, uint64_t now, uint32_t rate, uint32_t burst)
{
    int n = 0;

    while (n < 1000000 && tokenbucket_take(tb, now, rate, burst))
        n++;
    return n;
}

static void
starts_full(void)
{
    struct tokenbucket tb = {0};

    CHECK_INT(take_all(&tb, 1000, 20, 40), 40);
    CHECK_INT(tokenbucket_take(&tb, 1000, 20, 40), 0);
}

static void
refills_at_the_rate(void)
{
    struct tokenbucket tb = {0};

    take_all(&tb, 1000, 20, 40);
    CHECK_INT(tokenbucket_take(&tb, 1049, 20, 40), 0); /* 0.98 of a token */
    CHECK_INT(tokenbucket_take(&tb, 1050, 20, 40), 1); /* 50 ms at 20/s: one */
    CHECK_INT(take_all(&tb, 1550, 20, 40), 10);        /* 500 ms more: ten */
}

static void
never_holds_more_than_the_burst(void)
{
    struct tokenbucket tb = {0};

    take_all(&tb, 1000, 20, 40);
    CHECK_INT(take_all(&tb, 1000 + 3600 * 1000, 20, 40), 40);
}

static void
sustained_rate_is_the_limit(void)
{
    struct tokenbucket tb = {0};
    int allowed = 0;

    /* 100 messages a second for 10 s against 20/s with a burst of 40. */
    for (uint64_t t = 1000; t < 11000; t += 10)
        allowed += tokenbucket_take(&tb, t, 20, 40);
    CHECK(allowed >= 40 + 199 && allowed <= 40 + 200);
}

TEST_MAIN(TEST(starts_full), TEST(refills_at_the_rate), TEST(never_holds_more_than_the_burst),
          TEST(sustained_rate_is_the_limit))
