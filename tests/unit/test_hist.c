/*
 * test_hist: the latency histograms' bucket choice, their cumulative
 * reading and the le label text.  Prometheus reads "le" as "less than or
 * equal": a value exactly on a bound belongs to that bound's bucket, and a
 * bucket off by one would shift every percentile drawn from it.
 */
#include "common/hist.h"

#include "test.h"

static void
test_bounds_increase(void)
{
    for (unsigned i = 1; i < HIST_NBOUNDS; i++)
        CHECK(hist_bounds_us[i] > hist_bounds_us[i - 1]);
    CHECK_INT(hist_bounds_us[0], 100);
    CHECK_INT(hist_bounds_us[HIST_NBOUNDS - 1], 60000000);
}

static void
test_bucket_edges(void)
{
    CHECK_INT(hist_bucket(0), 0);
    CHECK_INT(hist_bucket(100), 0); /* on the bound: its bucket */
    CHECK_INT(hist_bucket(101), 1);
    CHECK_INT(hist_bucket(250), 1);
    CHECK_INT(hist_bucket(999), 3);
    CHECK_INT(hist_bucket(1000), 3);
    CHECK_INT(hist_bucket(1001), 4);
    CHECK_INT(hist_bucket(60000000), HIST_NBOUNDS - 1);
    CHECK_INT(hist_bucket(60000001), HIST_NBOUNDS); /* +Inf */
    CHECK_INT(hist_bucket(UINT64_MAX), HIST_NBOUNDS);
    /* Every bound and its neighbours, against the definition. */
    for (unsigned i = 0; i < HIST_NBOUNDS; i++) {
        CHECK_INT(hist_bucket(hist_bounds_us[i]), i);
        CHECK_INT(hist_bucket(hist_bounds_us[i] + 1), i + 1);
        if (i > 0)
            CHECK_INT(hist_bucket(hist_bounds_us[i - 1] + 1), i);
    }
}

static void
test_observe_and_read(void)
{
    static struct hist h; /* zero is empty */
    struct hist_counts c = {{0}, 0};

    hist_observe(&h, 50);       /* bucket 0 */
    hist_observe(&h, 100);      /* bucket 0 */
    hist_observe(&h, 700);      /* bucket 3 (1 ms) */
    hist_observe(&h, 90000000); /* +Inf */
    hist_read_add(&h, &c);
    CHECK_INT(c.cumulative[0], 2);
    CHECK_INT(c.cumulative[1], 2);
    CHECK_INT(c.cumulative[2], 2);
    CHECK_INT(c.cumulative[3], 3);
    CHECK_INT(c.cumulative[HIST_NBOUNDS - 1], 3);
    CHECK_INT(hist_count(&c), 4);
    CHECK_INT(c.sum_us, 50 + 100 + 700 + 90000000);
    /* Beyond the cap: +Inf, and the cap in the sum, so it cannot wrap. */
    hist_observe(&h, UINT64_MAX);
    memset(&c, 0, sizeof(c));
    hist_read_add(&h, &c);
    CHECK_INT(hist_count(&c), 5);
    CHECK_INT(c.cumulative[HIST_NBOUNDS - 1], 3);
    CHECK_INT(c.sum_us, 50 + 100 + 700 + 90000000 + HIST_MAX_US);
    for (unsigned i = 1; i < HIST_NBUCKETS; i++)
        CHECK(c.cumulative[i] >= c.cumulative[i - 1]);
}

static void
test_read_adds_up(void)
{
    static struct hist a, b;
    struct hist_counts c = {{0}, 0};

    hist_observe(&a, 300);
    hist_observe(&b, 300);
    hist_observe(&b, 2000000);
    hist_read_add(&a, &c);
    hist_read_add(&b, &c);
    CHECK_INT(c.cumulative[2], 2); /* le 0.0005 */
    CHECK_INT(hist_count(&c), 3);
    CHECK_INT(c.sum_us, 2000600);
}

static void
test_format_bounds(void)
{
    static const char *const want[HIST_NBUCKETS] = {
        "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1",
        "0.25",   "0.5",     "1",      "2.5",   "5",      "10",    "30",   "60",    "+Inf"};
    char buf[32];

    for (unsigned i = 0; i < HIST_NBUCKETS; i++) {
        CHECK_INT(hist_format_bound(i, buf, sizeof(buf)), strlen(want[i]));
        CHECK_STR(buf, want[i]);
    }
    /* Too small: nothing rather than a cut number. */
    CHECK_INT(hist_format_bound(0, buf, 4), 0);
    CHECK_STR(buf, "");
}

TEST_MAIN(TEST(test_bounds_increase), TEST(test_bucket_edges), TEST(test_observe_and_read),
          TEST(test_read_adds_up), TEST(test_format_bounds))
