/*
 * test_utf8: strict UTF-8 validation.  Every string a worker sends passes
 * through utf8_valid, and a browser drops the connection on one bad byte, so
 * each class of invalid input RFC 3629 names is checked here, along with the
 * boundaries on either side of it.
 */
#include "common/utf8.h"

#include "test.h"

/* Literals with embedded NULs need their real length, not strlen(). */
#define VALID(lit) utf8_valid(lit, sizeof(lit) - 1)

static void
test_ascii(void)
{
    CHECK_INT(VALID(""), 1);
    CHECK_INT(VALID("hello, world"), 1);
    CHECK_INT(VALID("\x01\x7f"), 1);
}

static void
test_multibyte(void)
{
    CHECK_INT(VALID("\xc2\x80"), 1);         /* U+0080, smallest 2-byte */
    CHECK_INT(VALID("caf\xc3\xa9"), 1);      /* "cafe" with e-acute */
    CHECK_INT(VALID("\xdf\xbf"), 1);         /* U+07FF, largest 2-byte */
    CHECK_INT(VALID("\xe0\xa0\x80"), 1);     /* U+0800, smallest 3-byte */
    CHECK_INT(VALID("\xe2\x82\xac"), 1);     /* euro sign */
    CHECK_INT(VALID("\xed\x9f\xbf"), 1);     /* U+D7FF, just below the surrogates */
    CHECK_INT(VALID("\xee\x80\x80"), 1);     /* U+E000, just above them */
    CHECK_INT(VALID("\xef\xbf\xbf"), 1);     /* U+FFFF */
    CHECK_INT(VALID("\xf0\x90\x80\x80"), 1); /* U+10000, smallest 4-byte */
    CHECK_INT(VALID("\xf0\x9f\x8f\x80"), 1); /* basketball emoji */
    CHECK_INT(VALID("\xf4\x8f\xbf\xbf"), 1); /* U+10FFFF, the last code point */
    CHECK_INT(VALID("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x8f\x80z"), 1);
}

static void
test_overlong(void)
{
    CHECK_INT(VALID("\xc0\x80"), 0); /* NUL in two bytes (Java's "modified UTF-8") */
    CHECK_INT(VALID("\xc1\xbf"), 0);
    CHECK_INT(VALID("\xe0\x80\x80"), 0);
    CHECK_INT(VALID("\xe0\x9f\xbf"), 0); /* U+07FF in three bytes */
    CHECK_INT(VALID("\xf0\x80\x80\x80"), 0);
    CHECK_INT(VALID("\xf0\x8f\xbf\xbf"), 0); /* U+FFFF in four bytes */
    CHECK_INT(VALID("\xc0\xaf"), 0);         /* the classic overlong '/' */
}

static void
test_surrogates(void)
{
    CHECK_INT(VALID("\xed\xa0\x80"), 0); /* U+D800 */
    CHECK_INT(VALID("\xed\xaf\xbf"), 0); /* U+DBFF */
    CHECK_INT(VALID("\xed\xb0\x80"), 0); /* U+DC00 */
    CHECK_INT(VALID("\xed\xbf\xbf"), 0); /* U+DFFF */
    /* A CESU-8 pair is two surrogates, not one 4-byte character. */
    CHECK_INT(VALID("\xed\xa0\xbd\xed\xb8\x80"), 0);
}

static void
test_above_max(void)
{
    CHECK_INT(VALID("\xf4\x90\x80\x80"), 0); /* U+110000 */
    CHECK_INT(VALID("\xf5\x80\x80\x80"), 0);
    CHECK_INT(VALID("\xf7\xbf\xbf\xbf"), 0);
    CHECK_INT(VALID("\xf8\x88\x80\x80\x80"), 0); /* old 5-byte form */
    CHECK_INT(VALID("\xfc\x84\x80\x80\x80\x80"), 0);
    CHECK_INT(VALID("\xfe"), 0);
    CHECK_INT(VALID("\xff"), 0);
}

static void
test_truncated(void)
{
    CHECK_INT(VALID("\xc3"), 0);
    CHECK_INT(VALID("\xe2\x82"), 0);
    CHECK_INT(VALID("\xe2"), 0);
    CHECK_INT(VALID("\xf0\x9f\x8f"), 0);
    CHECK_INT(VALID("\xf0\x9f"), 0);
    CHECK_INT(VALID("abc\xf0"), 0);
    /* A lead byte followed by a non-continuation byte is cut short too. */
    CHECK_INT(VALID("\xc3"
                    "a"),
              0);
    CHECK_INT(VALID("\xe2\x82"
                    "a"),
              0);
    CHECK_INT(VALID("\xf0\x9f\x8f"
                    "a"),
              0);
    /* The length given is the end even if the buffer goes on: the euro
     * sign cut after two bytes is invalid although its third byte follows. */
    CHECK_INT(utf8_valid("\xe2\x82\xac", 2), 0);
    CHECK_INT(utf8_valid("\xe2\x82\xac", 3), 1);
}

static void
test_stray_continuation(void)
{
    CHECK_INT(VALID("\x80"), 0);
    CHECK_INT(VALID("\xbf"), 0);
    CHECK_INT(VALID("a\x80z"), 0);
    CHECK_INT(VALID("\xc3\xa9\xa9"), 0); /* one continuation too many */
    CHECK_INT(VALID("\xe2\x82\xac\x80"), 0);
}

static void
test_embedded_nul(void)
{
    CHECK_INT(VALID("\0"), 1);
    CHECK_INT(VALID("a\0b"), 1);
    CHECK_INT(VALID("\xc3\xa9\0\xe2\x82\xac"), 1);
    /* A NUL does not end the check: bad bytes after it still count. */
    CHECK_INT(VALID("a\0\xff"), 0);
}

static void
test_prefix(void)
{
    /* "aé€😀": 1 + 2 + 3 + 4 bytes; a prefix never ends inside a character. */
    const char *s = "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    static const size_t want[] = {0, 1, 1, 3, 3, 3, 6, 6, 6, 6, 10, 10};

    for (size_t max = 0; max < sizeof(want) / sizeof(want[0]); max++) {
        size_t n = utf8_prefix(s, 10, max);
        CHECK_INT(n, want[max]);
        CHECK(utf8_valid(s, n));
    }
    CHECK_INT(utf8_prefix("abc", 3, 64), 3);
}

TEST_MAIN(TEST(test_prefix), TEST(test_ascii), TEST(test_multibyte), TEST(test_overlong),
          TEST(test_surrogates), TEST(test_above_max), TEST(test_truncated),
          TEST(test_stray_continuation), TEST(test_embedded_nul))
