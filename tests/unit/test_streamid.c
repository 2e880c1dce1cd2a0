/*
 * test_streamid: Redis stream ids.  What Redis itself writes must parse;
 * what it never writes (signs, spaces, empty parts, overflow, trailing
 * bytes, the special ids) must not, since the ingest treats a parsed id as
 * the truth about which entries the ring holds.  Ordering is checked on
 * every pair of a sorted list, and formatting round-trips.
 */
#include "common/streamid.h"

#include <stdint.h>

#include "test.h"

/* Parse a C string; -1 on failure, else 0 with *id filled. */
static int
parse(const char *s, struct streamid *id)
{
    return streamid_parse(s, strlen(s), id);
}

#define CHECK_ID(s, want_ms, want_seq)                                                             \
    do {                                                                                           \
        struct streamid test_id_ = {12345, 678};                                                   \
        CHECK_INT(parse(s, &test_id_), 0);                                                         \
        CHECK(test_id_.ms == (uint64_t)(want_ms));                                                 \
        CHECK(test_id_.seq == (uint64_t)(want_seq));                                               \
    } while (0)

static void
test_parse_valid(void)
{
    CHECK_ID("1764750000000-0", 1764750000000ULL, 0);
    CHECK_ID("1764750000000-17", 1764750000000ULL, 17);
    CHECK_ID("0-0", 0, 0);
    CHECK_ID("0-1", 0, 1);
    /* The largest id Redis allows: both parts UINT64_MAX. */
    CHECK_ID("18446744073709551615-18446744073709551615", UINT64_MAX, UINT64_MAX);
    /* Leading zeros are numbers all the same (Redis reads them so too). */
    CHECK_ID("007-08", 7, 8);
}

static void
test_parse_missing_seq(void)
{
    /* "<ms>" alone: sequence 0, as XADD, XGROUP CREATE and XREAD read it. */
    CHECK_ID("1764750000000", 1764750000000ULL, 0);
    CHECK_ID("0", 0, 0);
    CHECK_ID("18446744073709551615", UINT64_MAX, 0);
}

static void
test_parse_overflow(void)
{
    struct streamid id;

    /* One past UINT64_MAX, in each part, and far past it. */
    CHECK_INT(parse("18446744073709551616-0", &id), -1);
    CHECK_INT(parse("0-18446744073709551616", &id), -1);
    CHECK_INT(parse("18446744073709551616", &id), -1);
    CHECK_INT(parse("99999999999999999999-0", &id), -1);
    CHECK_INT(parse("1-184467440737095516150", &id), -1);
    CHECK_INT(parse("100000000000000000000000000000-0", &id), -1);
    /* Leading zeros do not count towards overflow. */
    CHECK_ID("0000018446744073709551615-1", UINT64_MAX, 1);
}

static void
test_parse_garbage(void)
{
    /* The last one is a fullwidth digit one (U+FF11), a digit to Unicode. */
    static const char *const bad[] = {
        "",      "-",     "+",     "$",     ">",     "*",    "1-*",   "-1",      "1-",
        "-1-0",  "1--0",  "1-0-0", "1-+0",  "+1-0",  " 1-0", "1 -0",  "1- 0",    "1-0 ",
        "1-0\n", "0x1-0", "1e3-0", "1.5-0", "1-0.0", "abc",  "1-abc", "1_000-0", "\xef\xbc\x91-0",
    };
    struct streamid id = {12345, 678};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &id) != -1) {
            printf("#   \"%s\" parsed as %llu-%llu\n", bad[i], (unsigned long long)id.ms,
                   (unsigned long long)id.seq);
            test_failed_checks++;
        }
    }
    /* A refused id leaves *out as it was. */
    CHECK(id.ms == 12345 && id.seq == 678);
}

static void
test_parse_length_bounds(void)
{
    /* Only s[0..len) is read: the bytes after it, NUL or not, do not count. */
    static const char buf[] = "1764750000000-5XYZ";
    static const char nul[] = {'7', '-', '1', '\0', '9'};
    struct streamid id;

    CHECK_INT(streamid_parse(buf, 15, &id), 0);
    CHECK(id.ms == 1764750000000ULL && id.seq == 5);
    CHECK_INT(streamid_parse(buf, 16, &id), -1); /* trailing 'X' */
    CHECK_INT(streamid_parse(buf, 14, &id), -1); /* "...-": empty sequence */
    CHECK_INT(streamid_parse(buf, 13, &id), 0);  /* "<ms>" alone */
    CHECK(id.ms == 1764750000000ULL && id.seq == 0);
    CHECK_INT(streamid_parse(buf, 0, &id), -1);
    /* An embedded NUL is a byte like any other: not a digit. */
    CHECK_INT(streamid_parse(nul, 3, &id), 0);
    CHECK_INT(streamid_parse(nul, 4, &id), -1);
    CHECK_INT(streamid_parse(nul, sizeof(nul), &id), -1);
}

static void
test_cmp_ordering(void)
{
    /* Strictly increasing: ms first, then seq, both unsigned 64-bit. */
    static const struct streamid sorted[] = {
        {0, 0},
        {0, 1},
        {0, UINT64_MAX},
        {1, 0},
        {9, 0},
        {10, 0}, /* numeric, not text order: "10" < "9" as strings */
        {1764750000000ULL, 0},
        {1764750000000ULL, 2},
        {1764750000000ULL, 10},
        {1764750000001ULL, 0},
        {UINT64_MAX, 0},
        {UINT64_MAX, UINT64_MAX},
    };
    size_t n = sizeof(sorted) / sizeof(sorted[0]);

    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = streamid_cmp(&sorted[i], &sorted[j]);
            int want = i < j ? -1 : i > j ? 1 : 0;
            if ((c > 0) - (c < 0) != want) {
                printf("#   cmp(#%zu, #%zu) = %d, want sign %d\n", i, j, c, want);
                test_failed_checks++;
            }
        }
    }
}

static void
test_cmp_parsed(void)
{
    /* What the ingest does after a restart: an entry is new only if its id
     * is after the last one published. */
    struct streamid last, id;

    CHECK_INT(parse("1764750000000-5", &last), 0);
    CHECK_INT(parse("1764750000000-6", &id), 0);
    CHECK(streamid_cmp(&id, &last) > 0);
    CHECK_INT(parse("1764750000000-5", &id), 0);
    CHECK(streamid_cmp(&id, &last) == 0);
    CHECK_INT(parse("1764749999999-99", &id), 0);
    CHECK(streamid_cmp(&id, &last) < 0);
    CHECK_INT(parse("1764750000001", &id), 0);
    CHECK(streamid_cmp(&id, &last) > 0);
}

static void
test_format(void)
{
    struct streamid max = {UINT64_MAX, UINT64_MAX}, id = {1764750000000ULL, 3}, back;
    char buf[STREAMID_STR_MAX];

    CHECK_INT(streamid_format(&id, buf, sizeof(buf)), 15);
    CHECK_STR(buf, "1764750000000-3");
    /* The longest form fits STREAMID_STR_MAX exactly, and parses back. */
    CHECK_INT(streamid_format(&max, buf, sizeof(buf)), STREAMID_STR_MAX - 1);
    CHECK_STR(buf, "18446744073709551615-18446744073709551615");
    CHECK_INT(streamid_parse(buf, strlen(buf), &back), 0);
    CHECK(streamid_cmp(&back, &max) == 0);
    /* Too small: 0 and an empty string, never a cut id that parses. */
    CHECK_INT(streamid_format(&id, buf, 15), 0);
    CHECK_STR(buf, "");
    CHECK_INT(streamid_format(&id, buf, 16), 15);
    CHECK_INT(streamid_format(&id, NULL, 0), 0);
}

static void
test_format_parse_roundtrip(void)
{
    /* Random ids (a fixed LCG: reproducible) survive format then parse. */
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    char buf[STREAMID_STR_MAX];

    for (int i = 0; i < 10000; i++) {
        struct streamid id, back;
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        id.ms = x >> (i % 64);
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        id.seq = x >> ((i * 7) % 64);
        if (streamid_format(&id, buf, sizeof(buf)) == 0 ||
            streamid_parse(buf, strlen(buf), &back) != 0 || streamid_cmp(&id, &back) != 0) {
            printf("#   %llu-%llu did not round-trip (\"%s\")\n", (unsigned long long)id.ms,
                   (unsigned long long)id.seq, buf);
            test_failed_checks++;
            return;
        }
    }
}

TEST_MAIN(TEST(test_parse_valid), TEST(test_parse_missing_seq), TEST(test_parse_overflow),
          TEST(test_parse_garbage), TEST(test_parse_length_bounds), TEST(test_cmp_ordering),
          TEST(test_cmp_parsed), TEST(test_format), TEST(test_format_parse_roundtrip))
