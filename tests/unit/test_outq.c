/*
 * test_outq: the frames every client receives.  A wrong frame header or a
 * partly written frame resumed at the wrong byte corrupts a client's stream
 * for good, so the header is checked at each length boundary, and the
 * gathering write is driven over a socketpair whose receiver reads a little
 * at a time, the way a slow client does.
 */
#include "worker/outq.h"
#include "common/timeutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test.h"

static void
header_lengths(void)
{
    unsigned char h[10];

    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 0), 2);
    CHECK_INT(h[0], 0x81);
    CHECK_INT(h[1], 0);
    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 125), 2);
    CHECK_INT(h[1], 125);
    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 126), 4);
    CHECK_INT(h[1], 126);
    CHECK_INT(h[2], 0);
    CHECK_INT(h[3], 126);
    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 65535), 4);
    CHECK_INT(h[2], 0xff);
    CHECK_INT(h[3], 0xff);
    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 65536), 10);
    CHECK_INT(h[1], 127);
    for (int i = 2; i < 10; i++)
        CHECK_INT(h[i], i == 7 ? 1 : 0);
    CHECK_INT(outq_frame_header(h, OUTQ_OP_TEXT, 0x0102030405ULL), 10);
    CHECK_INT(h[5], 0x01);
    CHECK_INT(h[9], 0x05);
}

static void
msg_frame_in_headroom(void)
{
    struct outq_msg *m = outq_msg_new("hello", 5);
    const unsigned char *f;

    CHECK(m != NULL);
    CHECK_INT(m->frame_len, 7);
    CHECK_INT(m->frame_off + m->frame_len, OUTQ_HEADROOM + 5);
    f = (const unsigned char *)m->buf + m->frame_off;
    CHECK_INT(f[0], 0x81);
    CHECK_INT(f[1], 5);
    CHECK(memcmp(f + 2, "hello", 5) == 0);
    CHECK_INT(m->buf[OUTQ_HEADROOM + 5], '\0');
    outq_msg_unref(m);
}

static void
push_limit_and_refs(void)
{
    struct outq q = {0};
    struct outq_msg *m = outq_msg_new("x", 1);

    for (int i = 0; i < 3; i++)
        CHECK_INT(outq_push(&q, m, 3), 0);
    CHECK_INT(m->refs, 4);
    CHECK(outq_full(&q, 3));
    CHECK_INT(outq_push(&q, m, 3), -1);
    CHECK_INT(m->refs, 4);
    outq_clear(&q);
    CHECK_INT(m->refs, 1);
    CHECK_INT(q.len, 0);
    CHECK(q.slots == NULL);
    outq_msg_unref(m);
}

/* Read everything pending on fd into buf at off; returns the new offset. */
static size_t
drain(int fd, unsigned char *buf, size_t off, size_t cap, size_t at_most)
{
    while (off < cap && at_most > 0) {
        size_t want = cap - off < at_most ? cap - off : at_most;
        ssize_t n = read(fd, buf + off, want);
        if (n <= 0)
            break;
        off += (size_t)n;
        at_most -= (size_t)n;
    }
    return off;
}

/* Many messages of varied sizes through a small socket buffer, read a few
 * KB at a time: the bytes received are exactly the frames, in order. */
static void
partial_writes_resume_at_the_right_byte(void)
{
    enum { N = 200 };
    int sv[2], size = 4096;
    struct outq q = {0};
    static unsigned char expect[N * 9000], got[N * 9000];
    size_t expect_len = 0, got_len = 0;
    uint32_t delivered_total = 0;
    size_t bytes_total = 0;

    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_INT(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
    CHECK_INT(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
    setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
    for (int i = 0; i < N; i++) {
        char text[8192];
        size_t len = (size_t)(i * 37) % 8000 + 1;
        struct outq_msg *m;
        memset(text, 'a' + i % 26, len);
        m = outq_msg_new(text, len);
        memcpy(expect + expect_len, m->buf + m->frame_off, m->frame_len);
        expect_len += m->frame_len;
        CHECK_INT(outq_push(&q, m, N), 0);
        outq_msg_unref(m);
    }
    for (int spins = 0; q.len > 0 && spins < 100000; spins++) {
        uint32_t delivered;
        size_t bytes;
        CHECK_INT(outq_write(&q, sv[0], 4, &delivered, &bytes, NULL), 0);
        delivered_total += delivered;
        bytes_total += bytes;
        got_len = drain(sv[1], got, got_len, sizeof(got), 3000);
    }
    got_len = drain(sv[1], got, got_len, sizeof(got), sizeof(got));
    CHECK_INT(q.len, 0);
    CHECK_INT(delivered_total, N);
    CHECK_INT(got_len, expect_len);
    CHECK_INT(bytes_total, expect_len);
    CHECK(memcmp(got, expect, expect_len) == 0);
    outq_clear(&q);
    close(sv[0]);
    close(sv[1]);
}

/*
 * Delivery latency: one timed delivery in OUTQ_LATENCY_SAMPLE, counting only
 * messages that came from the ring (published_us set), the first at once;
 * a delivery is timed when the write that completes its frame returns.
 */
static void
latency_sampled(void)
{
    enum { N = 40 };
    static struct hist h;
    struct outq_latency lat = {&h, 1};
    struct hist_counts c = {{0}, 0};
    struct outq q = {0};
    unsigned char got[N * 64];
    uint64_t published = time_mono_us() - 3000; /* 3 ms ago */
    uint32_t delivered;
    size_t bytes;
    int sv[2], timed = 0;

    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    CHECK_INT(fcntl(sv[1], F_SETFL, O_NONBLOCK), 0);
    for (int i = 0; i < N; i++) {
        struct outq_msg *m = outq_msg_new("{\"x\":1}", 7);
        /* Every third one is a reply: not from the ring, never timed. */
        if (i % 3 != 0) {
            m->published_us = published;
            timed++;
        }
        CHECK_INT(outq_push(&q, m, N), 0);
        outq_msg_unref(m);
    }
    CHECK_INT(outq_write(&q, sv[0], 4, &delivered, &bytes, &lat), 0);
    CHECK_INT(delivered, N);
    (void)drain(sv[1], got, 0, sizeof(got), sizeof(got));
    hist_read_add(&h, &c);
    /* timed deliveries 1, 9, 17, 25 of 26 */
    CHECK_INT(timed, 26);
    CHECK_INT(hist_count(&c), (timed + OUTQ_LATENCY_SAMPLE - 1) / OUTQ_LATENCY_SAMPLE);
    CHECK_INT(lat.countdown, OUTQ_LATENCY_SAMPLE - (timed - 1) % OUTQ_LATENCY_SAMPLE);
    /* Each at least 3 ms, and well under a second. */
    CHECK_INT(c.cumulative[hist_bucket(2500)], 0); /* none under 2.5 ms */
    CHECK_INT(c.cumulative[hist_bucket(999999)], hist_count(&c));
    CHECK(c.sum_us >= 3000 * hist_count(&c));
    outq_clear(&q);
    close(sv[0]);
    close(sv[1]);
}

/* A close frame: opcode 8, the code big-endian, the reason cut to fit the
 * 125 bytes of a control frame; queued past any limit. */
static void
close_frame(void)
{
    char reason[300];
    struct outq q = {0};
    struct outq_msg *m = outq_msg_close(1008, "client too slow"), *t = outq_msg_new("x", 1);
    const unsigned char *f = (const unsigned char *)m->buf + m->frame_off;

    CHECK_INT(f[0], 0x88);
    CHECK_INT(f[1], 2 + 15);
    CHECK_INT(f[2], 0x03);
    CHECK_INT(f[3], 0xf0);
    CHECK(memcmp(f + 4, "client too slow", 15) == 0);
    CHECK_INT(outq_push(&q, t, 1), 0);
    CHECK_INT(outq_push(&q, m, 1), -1);
    CHECK_INT(outq_push(&q, m, UINT32_MAX), 0);
    CHECK_INT(q.len, 2);
    outq_clear(&q);
    outq_msg_unref(m);
    outq_msg_unref(t);
    memset(reason, 'r', sizeof(reason) - 1);
    reason[sizeof(reason) - 1] = '\0';
    m = outq_msg_close(1001, reason);
    f = (const unsigned char *)m->buf + m->frame_off;
    CHECK_INT(f[1], 125);
    CHECK_INT(m->frame_len, 127);
    outq_msg_unref(m);
}

static void
broken_connection_is_reported(void)
{
    int sv[2];
    struct outq q = {0};
    struct outq_msg *m = outq_msg_new("x", 1);
    uint32_t delivered;

    CHECK_INT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    close(sv[1]);
    CHECK_INT(outq_push(&q, m, 8), 0);
    size_t bytes;

    CHECK_INT(outq_write(&q, sv[0], 4, &delivered, &bytes, NULL), -1);
    CHECK_INT(errno, EPIPE);
    CHECK_INT(q.len, 1);
    outq_clear(&q);
    outq_msg_unref(m);
    close(sv[0]);
}

static struct outq_msg *
keyed(const char *text, uint64_t key)
{
    struct outq_msg *m = outq_msg_new(text, strlen(text));

    if (m != NULL)
        m->key = key;
    return m;
}

static const char *
text_at(const struct outq *q, uint32_t i)
{
    const struct outq_msg *m = q->slots[(q->head + i) % q->cap];

    return m->buf + OUTQ_HEADROOM;
}

/* Conflation: a newer update of a waiting key takes its place, marked;
 * unkeyed messages are never replaced; bytes and the key count follow. */
static void
conflation_replaces_in_place(void)
{
    struct outq q = {0};
    struct outq_msg *a1 = keyed("{\"k\":\"a\",\"v\":1}", 11), *b1 = keyed("{\"k\":\"b\"}", 22),
                    *x = keyed("{\"opp\":1}", 0), *a2 = keyed("{\"k\":\"a\",\"v\":2}", 11),
                    *a3 = keyed("{\"k\":\"a\",\"v\":3}", 11), *old, *mark;
    uint64_t bytes;

    CHECK(outq_push(&q, a1, 100) == 0 && outq_push(&q, b1, 100) == 0 && outq_push(&q, x, 100) == 0);
    /* Not indexed: nothing is replaced. */
    CHECK(outq_replace_key(&q, a2) == NULL);
    CHECK_INT(outq_keys_waiting(&q), 0);
    CHECK_INT(outq_index_keys(&q), 0);
    CHECK_INT(outq_keys_waiting(&q), 2);
    bytes = q.bytes;
    mark = outq_msg_conflated(a2);
    CHECK(mark != NULL && mark == outq_msg_conflated(a2)); /* made once */
    CHECK_STR(mark->buf + OUTQ_HEADROOM, "{\"k\":\"a\",\"v\":2,\"conflated\":true}");
    CHECK_INT(mark->key, 11);
    old = outq_replace_key(&q, mark);
    CHECK(old == a1);
    outq_msg_unref(old);
    CHECK_INT(q.len, 3);
    CHECK_INT(q.bytes, bytes - a1->frame_len + mark->frame_len);
    CHECK_STR(text_at(&q, 0), "{\"k\":\"a\",\"v\":2,\"conflated\":true}");
    /* An unkeyed message is never replaced, and a new key is not found. */
    CHECK(outq_replace_key(&q, x) == NULL);
    /* The head partly written is left alone: the next goes behind it. */
    q.head_off = 1;
    CHECK(outq_replace_key(&q, a3) == NULL);
    q.head_off = 0;
    /* Once the head goes, its key no longer waits. */
    outq_drop_head(&q);
    CHECK_INT(outq_keys_waiting(&q), 1);
    CHECK(outq_replace_key(&q, a3) == NULL);
    CHECK(outq_push(&q, a3, 100) == 0);
    CHECK_INT(outq_keys_waiting(&q), 2);
    outq_unindex_keys(&q);
    CHECK_INT(outq_keys_waiting(&q), 0);
    outq_clear(&q);
    CHECK_INT(q.bytes, 0);
    outq_msg_unref(a1);
    outq_msg_unref(b1);
    outq_msg_unref(x);
    outq_msg_unref(a2);
    outq_msg_unref(a3);
}

/* Many keys through a small index: it grows, deletions keep every other
 * key findable (the index is open addressing), positions stay right. */
static void
conflation_index_many_keys(void)
{
    struct outq q = {0};
    struct outq_msg *m[600];
    char text[32];

    CHECK_INT(outq_index_keys(&q), 0);
    for (int i = 0; i < 600; i++) {
        snprintf(text, sizeof(text), "{\"i\":%d}", i);
        m[i] = keyed(text, (uint64_t)(i % 300) * 64 + 1); /* colliding low bits */
        if (i < 300)
            CHECK(outq_push(&q, m[i], UINT32_MAX) == 0);
    }
    CHECK_INT(outq_keys_waiting(&q), 300);
    for (int i = 0; i < 100; i++)
        outq_drop_head(&q);
    CHECK_INT(outq_keys_waiting(&q), 200);
    for (int i = 300; i < 600; i++) {
        struct outq_msg *old = outq_replace_key(&q, m[i]);
        if (i % 300 < 100) {
            CHECK(old == NULL); /* its key was sent */
            CHECK(outq_push(&q, m[i], UINT32_MAX) == 0);
        } else {
            CHECK(old == m[i - 300]);
            outq_msg_unref(old);
        }
    }
    CHECK_INT(q.len, 300);
    CHECK_INT(outq_keys_waiting(&q), 300);
    for (uint32_t i = 0; i < q.len; i++) {
        int v = atoi(strchr(text_at(&q, i), ':') + 1);
        CHECK(v >= 300); /* only the newest of each key */
    }
    outq_clear(&q);
    for (int i = 0; i < 600; i++)
        outq_msg_unref(m[i]);
}

TEST_MAIN(TEST(conflation_replaces_in_place), TEST(conflation_index_many_keys),
          TEST(header_lengths), TEST(msg_frame_in_headroom), TEST(push_limit_and_refs),
          TEST(partial_writes_resume_at_the_right_byte), TEST(close_frame),
          TEST(broken_connection_is_reported), TEST(latency_sampled))
