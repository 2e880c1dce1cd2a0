/*
 * test_ring: the broadcast ring.  Every frame a test publishes carries its
 * own sequence number, length and a checksum in its bytes, so a reader can
 * prove that each frame it gets back is whole, is the one the slot claims,
 * and comes in order; `missed` is checked to the frame.  The threaded and
 * forked cases run the real writer and readers concurrently, in threads and
 * across processes, as the ingest and the workers do.
 */
#include "common/ring.h"
#include "common/timeutil.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* Test frame layout: seq (8 bytes), len (4), filler that depends on seq,
 * then FNV-1a of all the bytes before it (4).  A frame mixed from two
 * publishes, or cut short, fails at least one of the three checks. */
#define TF_MIN 16

static void
tf_make(void *buf, uint64_t seq, uint32_t len)
{
    unsigned char *p = buf;
    uint32_t h;

    memcpy(p, &seq, 8);
    memcpy(p + 8, &len, 4);
    for (uint32_t i = 12; i < len - 4; i++)
        p[i] = (unsigned char)(seq * 131 + i * 7);
    h = test_fnv1a(p, len - 4);
    memcpy(p + len - 4, &h, 4);
}

/* 0 if buf[0..len) is an intact test frame; its sequence goes to *seq. */
static int
tf_check(const void *buf, uint32_t len, uint64_t *seq)
{
    const unsigned char *p = buf;
    uint32_t inner_len, h;

    if (len < TF_MIN)
        return -1;
    memcpy(seq, p, 8);
    memcpy(&inner_len, p + 8, 4);
    memcpy(&h, p + len - 4, 4);
    if (inner_len != len || h != test_fnv1a(p, len - 4))
        return -1;
    for (uint32_t i = 12; i < len - 4; i++) {
        if (p[i] != (unsigned char)(*seq * 131 + i * 7))
            return -1;
    }
    return 0;
}

static struct ring_frame_meta
tf_meta(uint64_t seq)
{
    struct ring_frame_meta m = {(uint32_t)(seq % 61), 1700000000000ULL + seq, seq * 3 + 1, 0,
                                seq * 5 + 2};
    return m;
}

static int
tf_meta_ok(const struct ring_frame_meta *m, uint64_t seq)
{
    struct ring_frame_meta want = tf_meta(seq);

    return m->stream == want.stream && m->id_ms == want.id_ms && m->id_seq == want.id_seq &&
           m->published_us == want.published_us;
}

/* A deterministic spread of lengths in [TF_MIN, max]. */
static uint32_t
tf_len(uint64_t seq, uint32_t max)
{
    return TF_MIN + (uint32_t)((seq * 2654435761u) % (max - TF_MIN + 1));
}

/* Publish frame seq (which must be the ring's head) with length len. */
static int64_t
tf_publish(struct ring *r, uint64_t seq, uint32_t len)
{
    static unsigned char buf[1 << 16];
    struct ring_frame_meta m = tf_meta(seq);

    tf_make(buf, seq, len);
    return ring_publish(r, buf, len, &m);
}

/* A handle on an initialised ring in a zeroed, cache-line aligned region. */
static struct ring *
ring_new(uint32_t nslots, uint64_t data_size, uint32_t max_frame)
{
    size_t size = ring_region_size(nslots, data_size);
    struct ring *r = malloc(sizeof(*r));
    void *mem;

    size = (size + RING_CACHELINE - 1) & ~(size_t)(RING_CACHELINE - 1);
    mem = aligned_alloc(RING_CACHELINE, size);
    if (r == NULL || mem == NULL) {
        free(r);
        free(mem);
        return NULL;
    }
    memset(mem, 0, size);
    if (ring_init(r, mem, nslots, data_size, max_frame) != 0) {
        free(r);
        free(mem);
        return NULL;
    }
    return r;
}

static void
ring_free(struct ring *r)
{
    if (r != NULL)
        free(r->hdr);
    free(r);
}

static struct ring_slot *
slot_of(struct ring *r, uint64_t seq)
{
    return &r->slots[seq & (r->nslots - 1)];
}

/* Read one frame and check it: intact, the sequence the reader was due
 * (give or take the frames it reports missed), and the right metadata.
 * Returns ring_read's result; *seq gets the frame's sequence. */
static int
read_checked(struct ring *r, struct ring_reader *rd, uint64_t *seq)
{
    static unsigned char buf[1 << 16];
    struct ring_frame_meta meta;
    uint64_t next0 = rd->next, missed0 = rd->missed, s;
    uint32_t len = 0;
    int rc = ring_read(r, rd, buf, sizeof(buf), &len, &meta);

    if (rc == 0) {
        /* Nothing returned: every frame it stepped over is counted. */
        CHECK_INT(rd->next - next0, rd->missed - missed0);
        return 0;
    }
    CHECK_INT(rc, 1);
    if (tf_check(buf, len, &s) != 0) {
        printf("#   torn frame at reader position %llu, len %u\n", (unsigned long long)rd->next,
               len);
        CHECK(0);
        return rc;
    }
    CHECK_INT(s, rd->next - 1);
    CHECK_INT(rd->missed - missed0, s - next0);
    CHECK(tf_meta_ok(&meta, s));
    *seq = s;
    return rc;
}

static void
test_init_validation(void)
{
    size_t size = ring_region_size(16, 4096);
    char *mem = aligned_alloc(RING_CACHELINE, size);
    struct ring ring, *r = &ring;
    struct ring_header *h = (struct ring_header *)mem;

    CHECK(mem != NULL);
    if (mem == NULL)
        return;
    memset(mem, 0, size);
    CHECK_INT(ring_init(r, mem, 0, 4096, 1024), -1);
    CHECK_INT(ring_init(r, mem, 12, 4096, 1024), -1);
    CHECK_INT(ring_init(r, mem, 16, 0, 1024), -1);
    CHECK_INT(ring_init(r, mem, 16, 3000, 1024), -1);
    /* data_size must hold two frames of max_frame. */
    CHECK_INT(ring_init(r, mem, 16, 4096, 2049), -1);
    /* A refused geometry writes nothing into the ring's memory. */
    for (size_t i = 0; i < size; i++)
        CHECK(mem[i] == 0);
    CHECK_INT(ring_attach(r, mem, 12, 4096, 1024), -1);
    CHECK_INT(ring_attach(r, mem, 16, 4096, 2049), -1);
    CHECK_INT(ring_init(r, mem, 16, 4096, 2048), 0);
    /* The handle: its own geometry, pointers into the memory. */
    CHECK_INT(r->nslots, 16);
    CHECK_INT(r->max_frame, 2048);
    CHECK_INT(r->data_size, 4096);
    CHECK(r->hdr == h);
    CHECK((char *)r->slots == mem + sizeof(struct ring_header));
    CHECK(r->data == mem + sizeof(struct ring_header) + 16 * sizeof(struct ring_slot));
    CHECK(r->data + r->data_size == mem + size);
    /* The same, for a debugger, in the shared header. */
    CHECK_INT(h->nslots, 16);
    CHECK_INT(h->max_frame, 2048);
    CHECK_INT(h->data_size, 4096);
    CHECK_INT(h->slots_offset, sizeof(struct ring_header));
    CHECK_INT(h->data_offset, sizeof(struct ring_header) + 16 * sizeof(struct ring_slot));
    CHECK_INT(ring_head(r), 0);
    /* No slot may look like it holds frame 0 before it is written. */
    for (uint64_t i = 0; i < 16; i++)
        CHECK(atomic_load(&slot_of(r, i)->seq) == RING_SEQ_BUSY);
    free(mem);
}

static void
test_geometry_is_the_handles(void)
{
    /* Another process (a bug, a stray write) scribbles on the shared
     * header's geometry: neither the writer nor a reader attached with its
     * own handle indexes by it, and frames go on round-tripping intact,
     * laps included. */
    struct ring *w = ring_new(16, 8192, 1024);
    struct ring rd_ring;
    struct ring_reader rd;
    uint64_t seq = 0, got = 0;

    CHECK(w != NULL);
    if (w == NULL)
        return;
    CHECK_INT(ring_attach(&rd_ring, w->hdr, 16, 8192, 1024), 0);
    CHECK(rd_ring.slots == w->slots && rd_ring.data == w->data);
    ring_reader_init(&rd_ring, &rd);
    w->hdr->nslots = 1u << 30;
    w->hdr->max_frame = UINT32_MAX;
    w->hdr->data_size = 1ULL << 62;
    w->hdr->slots_offset = 1ULL << 44;
    w->hdr->data_offset = 1ULL << 45;
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 5; i++, seq++)
            CHECK_INT(tf_publish(w, seq, tf_len(seq, 1024)), (int64_t)seq);
        while (read_checked(&rd_ring, &rd, &got) == 1) {
        }
        CHECK_INT(rd.next, seq);
    }
    CHECK_INT(rd.missed, 0);
    /* A whole lap and more while the reader waits: counted, not misread. */
    for (int i = 0; i < 40; i++, seq++)
        CHECK_INT(tf_publish(w, seq, tf_len(seq, 1024)), (int64_t)seq);
    while (read_checked(&rd_ring, &rd, &got) == 1) {
    }
    CHECK_INT(got, seq - 1);
    CHECK(rd.missed >= 24);
    ring_free(w);
}

static void
test_sizes(void)
{
    CHECK_INT(ring_region_size(16, 4096),
              sizeof(struct ring_header) + 16 * sizeof(struct ring_slot) + 4096);
    /* Power of two, at least 4 * max_frame and nslots * avg, at least a page. */
    CHECK_INT(ring_data_size_for(1024, 512, 65536), 524288);
    CHECK_INT(ring_data_size_for(65536, 512, 65536), 33554432);
    CHECK_INT(ring_data_size_for(16, 10, 100), 4096);
    CHECK_INT(ring_data_size_for(8, 100, 4096), 16384);
    CHECK_INT(ring_data_size_for(1000, 1000, 1024), 1048576);
    for (uint32_t mf = 1; mf < 200000; mf = mf * 3 + 1) {
        uint64_t d = ring_data_size_for(64, 300, mf);
        CHECK(d >= 4ULL * mf && d >= 64ULL * 300 && (d & (d - 1)) == 0);
    }
}

static void
test_empty(void)
{
    struct ring *r = ring_new(16, 4096, 1024);
    struct ring_reader rd;
    struct ring_frame_meta meta;
    char buf[1024];
    uint32_t len = 12345;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    CHECK_INT(rd.next, 0);
    CHECK_INT(rd.missed, 0);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &meta), 0);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &meta), 0);
    CHECK_INT(rd.next, 0);
    CHECK_INT(rd.missed, 0);
    CHECK_INT(len, 12345);
    ring_free(r);
}

static void
test_round_trip(void)
{
    struct ring *r = ring_new(16, 4096, 1024);
    struct ring_reader rd;
    struct ring_frame_meta m1 = {5, 1700000000123ULL, 0, RING_KIND_ENTRY, 123456789},
                           m2 = {63, UINT64_MAX, UINT64_MAX, RING_KIND_RESET, UINT64_MAX}, got;
    char buf[1024];
    uint32_t len;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    CHECK_INT(ring_publish(r, "hello", 5, &m1), 0);
    CHECK_INT(ring_head(r), 1);
    CHECK_INT(ring_publish(r, "second frame", 12, &m2), 1);
    CHECK_INT(ring_head(r), 2);

    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
    CHECK_INT(len, 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_INT(got.stream, 5);
    CHECK_INT(got.id_ms, 1700000000123ULL);
    CHECK_INT(got.id_seq, 0);
    CHECK_INT(got.kind, RING_KIND_ENTRY);
    CHECK_INT(got.published_us, 123456789);
    CHECK_INT(rd.next, 1);

    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
    CHECK_INT(len, 12);
    CHECK(memcmp(buf, "second frame", 12) == 0);
    CHECK_INT(got.stream, 63);
    /* All 64 bits of both id halves survive. */
    CHECK(got.id_ms == UINT64_MAX);
    CHECK(got.id_seq == UINT64_MAX);
    CHECK(got.published_us == UINT64_MAX);

    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 0);
    CHECK_INT(rd.missed, 0);
    CHECK_INT(rd.next, 2);
    ring_free(r);
}

static void
test_reader_starts_at_head(void)
{
    struct ring *r = ring_new(16, 4096, 1024);
    struct ring_reader rd;
    uint64_t seq = 0;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (uint64_t i = 0; i < 3; i++)
        CHECK_INT(tf_publish(r, i, 100), (int64_t)i);
    /* A worker that starts late gets only what comes next, not a replay. */
    ring_reader_init(r, &rd);
    CHECK_INT(rd.next, 3);
    CHECK_INT(read_checked(r, &rd, &seq), 0);
    CHECK_INT(tf_publish(r, 3, 200), 3);
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 3);
    CHECK_INT(read_checked(r, &rd, &seq), 0);
    CHECK_INT(rd.missed, 0);
    ring_free(r);
}

static void
test_frame_sizes(void)
{
    struct ring *r = ring_new(16, 4096, 1024);
    struct ring_reader rd;
    struct ring_frame_meta m = {0, 0, 0, 0, 0}, got;
    static char big[2048], buf[1024];
    uint32_t len = 99;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    memset(big, 'b', sizeof(big));
    /* Too big: refused, and the ring is untouched. */
    CHECK_INT(ring_publish(r, big, 1025, &m), -1);
    CHECK_INT(ring_publish(r, big, UINT32_MAX, &m), -1);
    CHECK_INT(ring_head(r), 0);
    CHECK_INT(atomic_load(&r->hdr->data_reserved), 0);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 0);
    /* max_frame exactly is fine, and so is an empty frame. */
    CHECK_INT(ring_publish(r, big, 1024, &m), 0);
    CHECK_INT(ring_publish(r, big, 0, &m), 1);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
    CHECK_INT(len, 1024);
    CHECK(memcmp(buf, big, 1024) == 0);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
    CHECK_INT(len, 0);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 0);
    CHECK_INT(rd.missed, 0);
    ring_free(r);
}

static void
test_many_readers(void)
{
    struct ring *r = ring_new(32, 16384, 512);
    struct ring_reader rd[5];
    uint64_t seq;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (int i = 0; i < 5; i++)
        ring_reader_init(r, &rd[i]);
    for (uint64_t i = 0; i < 20; i++)
        CHECK_INT(tf_publish(r, i, tf_len(i, 512)), (int64_t)i);
    /* Readers are independent: reading with one consumes nothing of another,
     * whatever order they interleave in. */
    for (uint64_t i = 0; i < 20; i++) {
        for (int k = 0; k < 5; k++) {
            if (k == 4 && i % 2 == 1)
                continue; /* reader 4 lags behind the others */
            seq = UINT64_MAX;
            CHECK_INT(read_checked(r, &rd[k], &seq), 1);
            CHECK_INT(seq, k == 4 ? i / 2 : i);
        }
    }
    for (uint64_t i = 10; i < 20; i++) {
        CHECK_INT(read_checked(r, &rd[4], &seq), 1);
        CHECK_INT(seq, i);
    }
    for (int k = 0; k < 5; k++) {
        CHECK_INT(read_checked(r, &rd[k], &seq), 0);
        CHECK_INT(rd[k].missed, 0);
        CHECK_INT(rd[k].next, 20);
    }
    ring_free(r);
}

static void
test_lapped_reader(void)
{
    /* Plenty of data area, so only the slots lap. */
    struct ring *r = ring_new(8, 65536, 256);
    struct ring_reader rd;
    uint64_t seq = 0;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    for (uint64_t i = 0; i < 20; i++)
        CHECK_INT(tf_publish(r, i, 100), (int64_t)i);
    /* 20 published, 8 slots: frames 0..11 are gone, 12 is the oldest left. */
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 12);
    CHECK_INT(rd.missed, 12);
    for (uint64_t i = 13; i < 20; i++) {
        CHECK_INT(read_checked(r, &rd, &seq), 1);
        CHECK_INT(seq, i);
    }
    CHECK_INT(read_checked(r, &rd, &seq), 0);
    CHECK_INT(rd.missed, 12);

    /* Read 2 of the next 8, then fall behind by 3 more than the ring holds:
     * the count of missed frames adds up exactly. */
    for (uint64_t i = 20; i < 28; i++)
        CHECK_INT(tf_publish(r, i, 100), (int64_t)i);
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 20);
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 21);
    for (uint64_t i = 28; i < 33; i++)
        CHECK_INT(tf_publish(r, i, 100), (int64_t)i);
    /* Head 33, ring holds 25..32; the reader was at 22. */
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 25);
    CHECK_INT(rd.missed, 12 + 3);
    ring_free(r);
}

static void
test_lapped_exactly_one_ring(void)
{
    /* nslots behind is still readable: nothing missed at the boundary. */
    struct ring *r = ring_new(8, 65536, 256);
    struct ring_reader rd;
    uint64_t seq = 0;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    for (uint64_t i = 0; i < 8; i++)
        CHECK_INT(tf_publish(r, i, 64), (int64_t)i);
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 0);
    CHECK_INT(rd.missed, 0);
    /* One more frame overwrites frame 1's slot: 1 is the only one lost. */
    CHECK_INT(tf_publish(r, 8, 64), 8);
    CHECK_INT(tf_publish(r, 9, 64), 9);
    CHECK_INT(read_checked(r, &rd, &seq), 1);
    CHECK_INT(seq, 2);
    CHECK_INT(rd.missed, 1);
    ring_free(r);
}

static void
test_data_lapping(void)
{
    /* 64 slots but room for only four 1000-byte frames of data: the bytes
     * lap long before the slots do.  Positions: frames 0-3 at 0, 1000, 2000,
     * 3000; frame 4 would cross the end, so it starts the next lap at 4096;
     * 5-7 at 5096, 6096, 7096; 8 skips to 8192, 9 at 9192.  With bytes
     * reserved up to 10192, only frames at 6096 and later (6..9) are intact. */
    struct ring *r = ring_new(64, 4096, 1024);
    struct ring_reader rd;
    uint64_t seq = 0;
    static const uint64_t want_pos[10] = {0, 1000, 2000, 3000, 4096, 5096, 6096, 7096, 8192, 9192};

    CHECK(r != NULL);
    if (r == NULL)
        return;
    ring_reader_init(r, &rd);
    for (uint64_t i = 0; i < 10; i++) {
        CHECK_INT(tf_publish(r, i, 1000), (int64_t)i);
        CHECK_INT(atomic_load(&slot_of(r, i)->data_pos), want_pos[i]);
    }
    CHECK_INT(atomic_load(&r->hdr->data_reserved), 10192);
    for (uint64_t i = 6; i < 10; i++) {
        CHECK_INT(read_checked(r, &rd, &seq), 1);
        CHECK_INT(seq, i);
    }
    CHECK_INT(rd.missed, 6);
    CHECK_INT(read_checked(r, &rd, &seq), 0);
    CHECK_INT(rd.missed, 6);
    CHECK_INT(rd.next, 10);
    ring_free(r);
}

static void
test_data_lapping_random(void)
{
    /* Random sizes, readers at random distances: whatever mix of slot laps
     * and data laps, a returned frame is intact and the counts add up. */
    struct ring *r = ring_new(64, 8192, 2048);
    struct ring_reader rd[4];
    uint64_t published = 0, rng = 12345, returned[4] = {0};

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (int k = 0; k < 4; k++)
        ring_reader_init(r, &rd[k]);
    for (int round = 0; round < 2000; round++) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int burst = (int)((rng >> 33) % 12);
        for (int i = 0; i < burst; i++, published++)
            CHECK_INT(tf_publish(r, published, tf_len(published * 7 + (rng >> 40), 2048)),
                      (int64_t)published);
        for (int k = 0; k < 4; k++) {
            /* Reader k reads at most k + 1 frames a round. */
            for (int j = 0; j <= k; j++) {
                uint64_t seq;
                int rc = read_checked(r, &rd[k], &seq);
                if (rc == 0)
                    break;
                returned[k]++;
            }
        }
    }
    for (int k = 0; k < 4; k++) {
        uint64_t seq;
        while (read_checked(r, &rd[k], &seq) == 1)
            returned[k]++;
        CHECK_INT(rd[k].next, published);
        CHECK_INT(returned[k] + rd[k].missed, published);
        CHECK(returned[k] > 0);
    }
    /* The slow readers were lapped, or this test proved nothing. */
    CHECK(rd[0].missed > 0);
    ring_free(r);
}

static void
test_frames_never_wrap(void)
{
    struct ring *r = ring_new(32, 4096, 2048);
    uint64_t mask;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    mask = r->data_size - 1;
    for (uint64_t i = 0; i < 5000; i++) {
        uint32_t len = tf_len(i * 31, 2048);
        struct ring_slot *s;
        uint64_t pos;

        CHECK_INT(tf_publish(r, i, len), (int64_t)i);
        s = slot_of(r, i);
        pos = atomic_load(&s->data_pos);
        CHECK_INT(atomic_load(&s->len), len);
        if ((pos & mask) + len > r->data_size) {
            printf("#   frame %llu at offset %llu + %u crosses the end\n", (unsigned long long)i,
                   (unsigned long long)(pos & mask), len);
            CHECK(0);
            break;
        }
        /* Positions only move forward, and the reservation covers the frame. */
        CHECK(atomic_load(&r->hdr->data_reserved) == pos + len);
        if (i > 0) {
            struct ring_slot *prev = slot_of(r, i - 1);
            CHECK(pos >= atomic_load(&prev->data_pos) + atomic_load(&prev->len));
        }
    }
    ring_free(r);
}

static void
test_peek_meta(void)
{
    struct ring *r = ring_new(4, 65536, 256);
    struct ring_frame_meta m;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    CHECK_INT(ring_peek_meta(r, 0, &m), -1);
    for (uint64_t i = 0; i < 3; i++)
        CHECK_INT(tf_publish(r, i, 32), (int64_t)i);
    for (uint64_t i = 0; i < 3; i++) {
        memset(&m, 0, sizeof(m));
        CHECK_INT(ring_peek_meta(r, i, &m), 0);
        CHECK(tf_meta_ok(&m, i));
    }
    /* Not yet published. */
    CHECK_INT(ring_peek_meta(r, 3, &m), -1);
    CHECK_INT(ring_peek_meta(r, 100, &m), -1);

    /* After a lap the old frames are gone even though their slots hold
     * something: the slot's sequence must match, not just the index. */
    for (uint64_t i = 3; i < 10; i++)
        CHECK_INT(tf_publish(r, i, 32), (int64_t)i);
    for (uint64_t i = 0; i < 6; i++)
        CHECK_INT(ring_peek_meta(r, i, &m), -1);
    for (uint64_t i = 6; i < 10; i++) {
        CHECK_INT(ring_peek_meta(r, i, &m), 0);
        CHECK(tf_meta_ok(&m, i));
    }
    CHECK_INT(ring_peek_meta(r, 10, &m), -1);
    ring_free(r);
}

/* ---- concurrent cases ---- */

struct stress {
    struct ring *r;
    _Atomic int done;
    _Atomic uint64_t published;
    uint64_t run_ms;
};

struct stress_reader {
    struct stress *st;
    int id;
    struct ring_reader rd;
    uint64_t returned, bad, disorder;
};

static void
sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void *
stress_writer(void *arg)
{
    struct stress *st = arg;
    uint64_t start = time_mono_ms(), seq = 0;

    while (time_mono_ms() - start < st->run_ms) {
        for (int i = 0; i < 64; i++, seq++) {
            if (tf_publish(st->r, seq, tf_len(seq, st->r->max_frame)) != (int64_t)seq) {
                atomic_store(&st->published, seq);
                atomic_store(&st->done, 1);
                return NULL;
            }
        }
        /* Give the readers a chance on a machine with few cores. */
        sched_yield();
    }
    /* release: a reader that sees done sees every frame published. */
    atomic_store_explicit(&st->published, seq, memory_order_release);
    atomic_store_explicit(&st->done, 1, memory_order_release);
    return NULL;
}

static void *
stress_reader_run(void *arg)
{
    struct stress_reader *sr = arg;
    static _Thread_local unsigned char buf[1 << 16];
    uint64_t last = UINT64_MAX;

    for (;;) {
        struct ring_frame_meta meta;
        uint64_t next0 = sr->rd.next, missed0 = sr->rd.missed, seq;
        uint32_t len;
        int rc = ring_read(sr->st->r, &sr->rd, buf, sizeof(buf), &len, &meta);

        if (rc == 1) {
            sr->returned++;
            if (tf_check(buf, len, &seq) != 0) {
                sr->bad++;
                continue;
            }
            if (!tf_meta_ok(&meta, seq) || seq != sr->rd.next - 1 ||
                sr->rd.missed - missed0 != seq - next0)
                sr->bad++;
            if (last != UINT64_MAX && seq <= last)
                sr->disorder++;
            last = seq;
            /* Readers 1 and 2 are slow, so the writer laps them. */
            if (sr->id == 1 && sr->returned % 16 == 0)
                sleep_us(100);
            if (sr->id == 2 && sr->returned % 64 == 0)
                sleep_us(1000);
            continue;
        }
        if (sr->rd.missed - missed0 != sr->rd.next - next0)
            sr->bad++;
        /* acquire: pairs with the writer's release of done. */
        if (atomic_load_explicit(&sr->st->done, memory_order_acquire) &&
            sr->rd.next >= atomic_load_explicit(&sr->st->published, memory_order_acquire))
            break;
        sched_yield();
    }
    return NULL;
}

static void
test_stress_threads(void)
{
    struct stress st;
    struct stress_reader sr[3];
    pthread_t wt, rt[3];
    uint64_t published;

    /* A ring so small that every reader gets lapped, in slots and in bytes. */
    st.r = ring_new(16, 4096, 1024);
    CHECK(st.r != NULL);
    if (st.r == NULL)
        return;
    atomic_init(&st.done, 0);
    atomic_init(&st.published, 0);
    st.run_ms = 800;
    for (int k = 0; k < 3; k++) {
        memset(&sr[k], 0, sizeof(sr[k]));
        sr[k].st = &st;
        sr[k].id = k;
        ring_reader_init(st.r, &sr[k].rd);
    }
    for (int k = 0; k < 3; k++)
        CHECK_INT(pthread_create(&rt[k], NULL, stress_reader_run, &sr[k]), 0);
    CHECK_INT(pthread_create(&wt, NULL, stress_writer, &st), 0);
    pthread_join(wt, NULL);
    for (int k = 0; k < 3; k++)
        pthread_join(rt[k], NULL);

    published = atomic_load(&st.published);
    CHECK_INT(ring_head(st.r), published);
    CHECK(published > 1000);
    for (int k = 0; k < 3; k++) {
        printf("#   reader %d: %llu returned, %llu missed of %llu\n", k,
               (unsigned long long)sr[k].returned, (unsigned long long)sr[k].rd.missed,
               (unsigned long long)published);
        CHECK_INT(sr[k].bad, 0);
        CHECK_INT(sr[k].disorder, 0);
        CHECK_INT(sr[k].returned + sr[k].rd.missed, published);
        CHECK(sr[k].returned > 0);
    }
    /* Reader 2 sleeps 1 ms every 64 frames: it must have been lapped. */
    CHECK(sr[2].rd.missed > 0);
    ring_free(st.r);
}

#define FORK_FRAMES 5000

/* Written by the child into the shared mapping; read by the parent after
 * waitpid (which orders the accesses). */
struct fork_result {
    uint64_t returned, missed, bad, last;
};

struct fork_args {
    struct ring *r;
    struct fork_result *res;
    struct ring_reader rd;
};

static int
fork_reader(void *arg)
{
    struct fork_args *fa = arg;
    static unsigned char buf[1 << 16];
    uint64_t expect = 0;

    while (fa->rd.next < FORK_FRAMES) {
        struct ring_frame_meta meta;
        uint64_t seq;
        uint32_t len;

        if (ring_read(fa->r, &fa->rd, buf, sizeof(buf), &len, &meta) == 0) {
            sched_yield();
            continue;
        }
        if (tf_check(buf, len, &seq) != 0 || seq != expect || !tf_meta_ok(&meta, seq) ||
            len != tf_len(seq, fa->r->max_frame))
            fa->res->bad++;
        fa->res->returned++;
        fa->res->last = seq;
        expect = seq + 1;
    }
    fa->res->missed = fa->rd.missed;
    return 0;
}

static void
test_fork_reader(void)
{
    /* The ring lives in MAP_SHARED memory as in the service; a child that
     * mapped nothing itself reads what the parent publishes after the fork.
     * The ring holds every frame, so the child must get all of them. */
    uint32_t nslots = 8192, max_frame = 512;
    uint64_t data_size = ring_data_size_for(nslots, max_frame, max_frame);
    size_t ring_off = 4096, size = ring_off + ring_region_size(nslots, data_size);
    char *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    struct ring ring; /* private: the child gets its own copy, as a worker does */
    struct fork_args fa;
    pid_t pid;
    int status = 0, rc;

    CHECK(map != MAP_FAILED);
    if (map == MAP_FAILED)
        return;
    fa.r = &ring;
    fa.res = (struct fork_result *)map;
    CHECK_INT(ring_init(fa.r, map + ring_off, nslots, data_size, max_frame), 0);
    ring_reader_init(fa.r, &fa.rd);

    fflush(stdout);
    pid = fork();
    CHECK(pid >= 0);
    if (pid < 0) {
        munmap(map, size);
        return;
    }
    if (pid == 0) {
        alarm(5);
        rc = fork_reader(&fa);
        fflush(stdout);
        _exit(rc);
    }
    /* Publish while the child reads: in bursts, with pauses, so it catches
     * up with the head many times along the way. */
    for (uint64_t i = 0; i < FORK_FRAMES; i++) {
        CHECK_INT(tf_publish(fa.r, i, tf_len(i, max_frame)), (int64_t)i);
        if (i % 500 == 499)
            sleep_us(2000);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    CHECK(WIFEXITED(status));
    if (WIFSIGNALED(status))
        printf("#   reader child killed by signal %d\n", WTERMSIG(status));
    CHECK_INT(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0);
    CHECK_INT(fa.res->returned, FORK_FRAMES);
    CHECK_INT(fa.res->missed, 0);
    CHECK_INT(fa.res->bad, 0);
    CHECK_INT(fa.res->last, FORK_FRAMES - 1);
    munmap(map, size);
}

/* Steps 1-3 of ring_publish for frame `head`, as an ingest that dies right
 * after them leaves the ring: bytes reserved, slot marked busy, head not
 * advanced. */
static void
publish_begin_only(struct ring *r, uint32_t len)
{
    uint64_t seq = ring_head(r);
    uint64_t pos = atomic_load(&r->hdr->data_reserved), mask = r->data_size - 1;

    if ((pos & mask) + len > r->data_size)
        pos = (pos + r->data_size) & ~mask;
    atomic_store(&r->hdr->data_reserved, pos + len);
    atomic_store(&slot_of(r, seq)->seq, RING_SEQ_BUSY);
}

static int
dead_writer_reader(void *arg)
{
    struct ring *r = arg;
    struct ring_reader rd = {0, 0};
    uint64_t seq = UINT64_MAX;
    static unsigned char buf[1024];
    struct ring_frame_meta meta;
    uint32_t len;
    int rc;

    /* The reader is a whole ring behind: its next frame, 0, shares a slot
     * with the frame the dead writer was writing. */
    rc = ring_read(r, &rd, buf, sizeof(buf), &len, &meta);
    if (rc != 1 || tf_check(buf, len, &seq) != 0)
        return 1;
    /* Frame 0 is lost with its slot; 1 is the oldest intact frame. */
    return seq == 1 && rd.missed == 1 && rd.next == 2 ? 0 : 2;
}

static void
test_reader_survives_dead_writer(void)
{
    /* ring_read "never blocks": a worker must keep serving its clients
     * while the ingest is down, even if it died in the middle of a publish. */
    struct ring *r = ring_new(4, 4096, 256);
    int rc;

    CHECK(r != NULL);
    if (r == NULL)
        return;
    for (uint64_t i = 0; i < 4; i++)
        CHECK_INT(tf_publish(r, i, 100), (int64_t)i);
    publish_begin_only(r, 100);
    rc = test_run_in_child(dead_writer_reader, r, 1);
    if (rc == 128 + SIGALRM)
        printf("#   ring_read did not return within 1 s after the writer died mid-publish\n");
    CHECK_INT(rc, 0);
    ring_free(r);
}

/* Frames whose lengths alternate so that one slot's old length at the new
 * position (or the reverse) reaches past the data area: 2047 bytes at
 * offset 0, 1 byte at 2047, 2047 at 2048, 1 at 4095, and again.  The bytes
 * are prepared once: the faster the writer, the more rewrites a reader
 * overlaps. */
static void *
torn_writer(void *arg)
{
    static unsigned char frame[2047];
    struct stress *st = arg;
    struct ring_frame_meta meta = {0, 0, 0, 0, 0};
    uint64_t start = time_mono_ms(), seq = 0;

    memset(frame, 'w', sizeof(frame));
    while (time_mono_ms() - start < st->run_ms) {
        for (int i = 0; i < 64; i++, seq++)
            ring_publish(st->r, frame, (seq & 1) ? 1 : 2047, &meta);
    }
    atomic_store(&st->done, 1);
    return NULL;
}

static int
torn_child(void *arg)
{
    /* The data area ends at a page the process may not read: a copy that
     * strays past the ring's end faults instead of going unnoticed. */
    (void)arg;
    long page = sysconf(_SC_PAGESIZE);
    uint64_t data_size = 4096;
    size_t region = ring_region_size(1, data_size);
    size_t maplen = ((region + (size_t)page - 1) / (size_t)page + 1) * (size_t)page;
    char *map = mmap(NULL, maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct stress st;
    struct ring ring;
    struct ring_reader rd;
    pthread_t wt;
    uint64_t bad = 0, deadline;

    if (map == MAP_FAILED || mprotect(map + maplen - page, (size_t)page, PROT_NONE) != 0)
        return 3;
    st.r = &ring;
    /* One slot: every frame reuses the slot the reader is copying from. */
    if (ring_init(st.r, map + maplen - page - region, 1, data_size, 2048) != 0)
        return 3;
    atomic_init(&st.done, 0);
    st.run_ms = 1000;
    ring_reader_init(st.r, &rd);
    if (pthread_create(&wt, NULL, torn_writer, &st) != 0)
        return 3;
    /* The deadline matters only under a slow scheduler (valgrind runs one
     * thread at a time): the reader stops even if the writer lags. */
    deadline = time_mono_ms() + st.run_ms + 500;
    while (!atomic_load(&st.done) && time_mono_ms() < deadline) {
        static unsigned char buf[2048];
        struct ring_frame_meta meta;
        uint32_t len;

        if (ring_read(st.r, &rd, buf, sizeof(buf), &len, &meta) == 1) {
            /* Whatever was returned is one whole frame of the writer's. */
            if ((len != 1 && len != 2047) || buf[0] != 'w' || buf[len - 1] != 'w')
                bad++;
        }
    }
    pthread_join(wt, NULL);
    return bad == 0 ? 0 : 4;
}

static void
test_torn_slot_stays_in_bounds(void)
{
    /* A reader that loads a slot while the writer rewrites it can see the
     * new position with the old length.  It discards that copy afterwards,
     * but the copy itself must stay inside the data area: in the service the
     * data area ends where the shared mapping ends. */
    int rc = test_run_in_child(torn_child, NULL, 10);

    if (rc != 0)
        printf("#   reader child ended with %d: 139 is SIGSEGV, a copy past the end of the data "
               "area (under ASan: exit 1 with a SEGV report on stderr)\n",
               rc);
    CHECK_INT(rc, 0);
}

TEST_MAIN(TEST(test_init_validation), TEST(test_geometry_is_the_handles), TEST(test_sizes),
          TEST(test_empty), TEST(test_round_trip), TEST(test_reader_starts_at_head),
          TEST(test_frame_sizes), TEST(test_many_readers), TEST(test_lapped_reader),
          TEST(test_lapped_exactly_one_ring), TEST(test_data_lapping),
          TEST(test_data_lapping_random), TEST(test_frames_never_wrap), TEST(test_peek_meta),
          TEST(test_stress_threads), TEST(test_fork_reader), TEST(test_reader_survives_dead_writer),
          TEST(test_torn_slot_stays_in_bounds))
