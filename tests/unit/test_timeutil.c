/*
 * test_timeutil: the ISO-8601 forms the wire protocol and the logs print.
 * Clients parse these strings, so the exact text matters, and a buffer that
 * is one byte short must yield an empty string rather than a truncated time.
 */
#include "common/timeutil.h"

#include "test.h"

static void
test_iso_ms_epoch(void)
{
    char buf[64];

    CHECK_INT(time_format_iso_ms(0, buf, sizeof(buf)), 24);
    CHECK_STR(buf, "1970-01-01T00:00:00.000Z");
    CHECK_INT(strlen(buf), TIME_ISO_MS_LEN);
}

static void
test_iso_ms_known(void)
{
    char buf[64];

    /* Checked against `date -u -d @1700000000`. */
    CHECK_INT(time_format_iso_ms(1700000000123ULL, buf, sizeof(buf)), 24);
    CHECK_STR(buf, "2023-11-14T22:13:20.123Z");
    /* Milliseconds keep their leading zeros. */
    CHECK_INT(time_format_iso_ms(1700000000007ULL, buf, sizeof(buf)), 24);
    CHECK_STR(buf, "2023-11-14T22:13:20.007Z");
    /* A leap day, and the last millisecond of a day. */
    CHECK_INT(time_format_iso_ms(951782400000ULL, buf, sizeof(buf)), 24);
    CHECK_STR(buf, "2000-02-29T00:00:00.000Z");
    CHECK_INT(time_format_iso_ms(951868799999ULL, buf, sizeof(buf)), 24);
    CHECK_STR(buf, "2000-02-29T23:59:59.999Z");
}

static void
test_iso_ms_small_buffer(void)
{
    char buf[32];

    /* 24 characters need 25 bytes with the NUL. */
    memset(buf, 'x', sizeof(buf));
    CHECK_INT(time_format_iso_ms(1700000000123ULL, buf, 24), 0);
    CHECK_STR(buf, "");
    memset(buf, 'x', sizeof(buf));
    CHECK_INT(time_format_iso_ms(1700000000123ULL, buf, 1), 0);
    CHECK_STR(buf, "");
    /* size 0: nothing may be written at all. */
    memset(buf, 'x', sizeof(buf));
    CHECK_INT(time_format_iso_ms(1700000000123ULL, buf, 0), 0);
    CHECK_INT(buf[0], 'x');
    CHECK_INT(time_format_iso_ms(1700000000123ULL, buf, 25), 24);
    CHECK_STR(buf, "2023-11-14T22:13:20.123Z");
}

static void
test_iso_s(void)
{
    char buf[32];

    CHECK_INT(time_format_iso_s(0, buf, sizeof(buf)), 20);
    CHECK_STR(buf, "1970-01-01T00:00:00Z");
    /* The milliseconds are dropped, not rounded. */
    CHECK_INT(time_format_iso_s(1700000000999ULL, buf, sizeof(buf)), 20);
    CHECK_STR(buf, "2023-11-14T22:13:20Z");
    CHECK_INT(time_format_iso_s(1700000000999ULL, buf, 20), 0);
    CHECK_STR(buf, "");
    CHECK_INT(time_format_iso_s(1700000000999ULL, buf, 21), 20);
    CHECK_STR(buf, "2023-11-14T22:13:20Z");
}

static void
test_clocks(void)
{
    uint64_t now = time_now_ms();
    uint64_t m1 = time_mono_ms(), m2;

    /* 2020-01-01 .. 2100-01-01: the clock is in milliseconds, not seconds
     * or microseconds. */
    CHECK(now > 1577836800000ULL);
    CHECK(now < 4102444800000ULL);
    m2 = time_mono_ms();
    CHECK(m2 >= m1);
}

static void
test_clocks_us(void)
{
    uint64_t ms = time_now_ms(), us = time_now_us();
    uint64_t mono_ms = time_mono_ms(), mono_us = time_mono_us();

    /* The same clocks, a thousand times finer: within a second of each other. */
    CHECK(us / 1000 >= ms && us / 1000 - ms < 1000);
    CHECK(mono_us / 1000 >= mono_ms && mono_us / 1000 - mono_ms < 1000);
    CHECK(time_mono_us() >= mono_us);
}

TEST_MAIN(TEST(test_iso_ms_epoch), TEST(test_iso_ms_known), TEST(test_iso_ms_small_buffer),
          TEST(test_iso_s), TEST(test_clocks), TEST(test_clocks_us))
