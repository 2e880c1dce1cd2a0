/*
 * wsguard: the RFC 6455 framing checks lws 4.1.6 leaves out.  Frames are
 * built by hand, fed whole, byte by byte, and split at every offset: the
 * verdict must not depend on how the bytes arrive.
 */
#include "test.h"
#include "worker/wsguard.h"

#include <stdint.h>

#define MAX_MSG 1000

struct buf {
    uint8_t b[70000];
    size_t n;
};

static void
put_frame(struct buf *out, int fin, int rsv, int opcode, int masked, uint64_t len, int fill)
{
    uint8_t *p = out->b + out->n;
    size_t h = 0;

    p[h++] = (uint8_t)((fin << 7) | (rsv << 4) | opcode);
    if (len < 126) {
        p[h++] = (uint8_t)((masked << 7) | len);
    } else if (len < 65536) {
        p[h++] = (uint8_t)((masked << 7) | 126);
        p[h++] = (uint8_t)(len >> 8);
        p[h++] = (uint8_t)len;
    } else {
        p[h++] = (uint8_t)((masked << 7) | 127);
        for (int i = 7; i >= 0; i--)
            p[h++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        for (int i = 0; i < 4; i++)
            p[h++] = (uint8_t)(0x11 * (i + 1));
    }
    out->n += h;
    if (fill) {
        memset(out->b + out->n, 'x', (size_t)len);
        out->n += (size_t)len;
    }
}

/* The verdict for b fed in one piece, byte by byte, and split in two at
 * every offset; all must agree.  Returns the code. */
static int
verdict(const struct buf *b, size_t *frame_start_whole)
{
    struct wsguard g;
    const char *why = NULL;
    size_t fs;
    int whole, code;

    wsguard_init(&g);
    whole = wsguard_feed(&g, b->b, b->n, MAX_MSG, &why, frame_start_whole);
    if (whole != 0)
        CHECK(why != NULL && why[0] != '\0');

    wsguard_init(&g);
    code = 0;
    for (size_t i = 0; i < b->n && code == 0; i++)
        code = wsguard_feed(&g, b->b + i, 1, MAX_MSG, &why, &fs);
    CHECK_INT(code, whole);

    for (size_t cut = 1; cut < b->n && b->n < 400; cut++) {
        wsguard_init(&g);
        code = wsguard_feed(&g, b->b, cut, MAX_MSG, &why, &fs);
        if (code == 0)
            code = wsguard_feed(&g, b->b + cut, b->n - cut, MAX_MSG, &why, &fs);
        CHECK_INT(code, whole);
    }
    return whole;
}

static void
test_valid_traffic(void)
{
    struct buf b = {.n = 0};
    size_t fs;

    put_frame(&b, 1, 0, 1, 1, 20, 1);  /* text */
    put_frame(&b, 1, 0, 9, 1, 4, 1);   /* ping */
    put_frame(&b, 0, 0, 1, 1, 10, 1);  /* fragmented text ... */
    put_frame(&b, 1, 0, 10, 1, 0, 1);  /* pong in between is allowed */
    put_frame(&b, 0, 0, 0, 1, 10, 1);  /* continuation */
    put_frame(&b, 1, 0, 0, 1, 10, 1);  /* final continuation */
    put_frame(&b, 1, 0, 1, 1, 300, 1); /* 16-bit length */
    put_frame(&b, 1, 0, 8, 1, 2, 1);   /* close */
    CHECK_INT(verdict(&b, &fs), 0);
}

static void
test_unmasked(void)
{
    struct buf b = {.n = 0};
    size_t fs;

    put_frame(&b, 1, 0, 1, 1, 5, 1);
    put_frame(&b, 1, 0, 1, 0, 5, 1);
    CHECK_INT(verdict(&b, &fs), 1002);
    CHECK_INT(fs, 11); /* the second frame starts after 2 + 4 + 5 bytes */
}

static void
test_protocol_errors(void)
{
    static const struct {
        int fin, rsv, opcode;
        uint64_t len;
    } bad[] = {
        {1, 4, 1, 2},   /* RSV1 without permessage-deflate */
        {1, 1, 1, 2},   /* RSV3 */
        {1, 0, 3, 2},   /* reserved data opcode */
        {1, 0, 0xb, 2}, /* reserved control opcode */
        {1, 0, 9, 126}, /* control frame over 125 bytes */
        {0, 0, 9, 2},   /* fragmented control frame */
        {1, 0, 0, 2},   /* continuation without a message */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct buf b = {.n = 0};
        size_t fs;
        put_frame(&b, bad[i].fin, bad[i].rsv, bad[i].opcode, 1, bad[i].len, 1);
        CHECK_INT(verdict(&b, &fs), 1002);
        CHECK_INT(fs, 0);
    }
}

static void
test_new_message_inside_fragmented(void)
{
    struct buf b = {.n = 0};
    size_t fs;

    put_frame(&b, 0, 0, 1, 1, 3, 1);
    put_frame(&b, 1, 0, 1, 1, 3, 1);
    CHECK_INT(verdict(&b, &fs), 1002);
}

static void
test_message_size(void)
{
    struct buf b = {.n = 0};
    size_t fs;

    /* Exactly the limit across fragments is fine. */
    put_frame(&b, 0, 0, 1, 1, 600, 1);
    put_frame(&b, 1, 0, 0, 1, 400, 1);
    CHECK_INT(verdict(&b, &fs), 0);

    /* One byte over, across fragments: refused at the header, before the
     * payload is even sent. */
    b.n = 0;
    put_frame(&b, 0, 0, 1, 1, 600, 1);
    put_frame(&b, 1, 0, 0, 1, 401, 0);
    CHECK_INT(verdict(&b, &fs), 1009);

    /* A 64-bit length, and one with the top bit set. */
    b.n = 0;
    put_frame(&b, 1, 0, 1, 1, 1ULL << 40, 0);
    CHECK_INT(verdict(&b, &fs), 1009);
    b.n = 0;
    put_frame(&b, 1, 0, 1, 1, 1ULL << 63, 0);
    CHECK_INT(verdict(&b, &fs), 1002);

    /* Control frames do not count toward the message. */
    b.n = 0;
    put_frame(&b, 0, 0, 1, 1, 900, 1);
    put_frame(&b, 1, 0, 9, 1, 125, 1);
    put_frame(&b, 1, 0, 0, 1, 100, 1);
    CHECK_INT(verdict(&b, &fs), 0);
}

TEST_MAIN(TEST(test_valid_traffic), TEST(test_unmasked), TEST(test_protocol_errors),
          TEST(test_new_message_inside_fragmented), TEST(test_message_size))
