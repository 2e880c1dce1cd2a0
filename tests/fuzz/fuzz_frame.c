/*
 * fuzz_frame: a worker's side of the ring.  The input is both a frame for
 * frame_unpack and the bytes and script of a run of ring_publish /
 * ring_read.
 *
 * Properties:
 *  - whatever frame_unpack accepts, encode_update turns into one JSON object
 *    of valid UTF-8 that cJSON accepts, with the frame's type and a payload
 *    of as many members as the frame's map;
 *  - the input published as one frame into a ring just large enough for it
 *    reads back byte for byte with its metadata, as do the frames after it;
 *  - a scripted run (frame lengths and read points taken from the input) on a
 *    small ring: a reader returns frames in order, each exactly as published,
 *    never one the writer overwrote, and every frame still intact (in the
 *    slot window, bytes not reused) that it has not read yet; missed counts
 *    the rest; ring_peek_meta answers for the last nslots frames only.
 */
#include "common/frame.h"
#include "common/ring.h"
#include "worker/encode.h"

#include "fuzz.h"

/* Headers 0xc4..0xdf: bytes of the length field that follows, fixed bytes
 * after it, and what the length counts (0 bytes, 1 elements, 2 pairs). */
static const struct {
    uint8_t lenbytes, fixed, counts;
} mp_headers[0xe0 - 0xc4] = {
    [0xc4 - 0xc4] = {1, 0, 0}, [0xc5 - 0xc4] = {2, 0, 0},  [0xc6 - 0xc4] = {4, 0, 0}, /* bin */
    [0xc7 - 0xc4] = {1, 1, 0}, [0xc8 - 0xc4] = {2, 1, 0},  [0xc9 - 0xc4] = {4, 1, 0}, /* ext */
    [0xca - 0xc4] = {0, 4, 0}, [0xcb - 0xc4] = {0, 8, 0},                             /* float */
    [0xcc - 0xc4] = {0, 1, 0}, [0xcd - 0xc4] = {0, 2, 0},  [0xce - 0xc4] = {0, 4, 0},
    [0xcf - 0xc4] = {0, 8, 0}, [0xd0 - 0xc4] = {0, 1, 0},  [0xd1 - 0xc4] = {0, 2, 0},
    [0xd2 - 0xc4] = {0, 4, 0}, [0xd3 - 0xc4] = {0, 8, 0}, /* ints */
    [0xd4 - 0xc4] = {0, 2, 0}, [0xd5 - 0xc4] = {0, 3, 0},  [0xd6 - 0xc4] = {0, 5, 0},
    [0xd7 - 0xc4] = {0, 9, 0}, [0xd8 - 0xc4] = {0, 17, 0},                            /* fixext */
    [0xd9 - 0xc4] = {1, 0, 0}, [0xda - 0xc4] = {2, 0, 0},  [0xdb - 0xc4] = {4, 0, 0}, /* str */
    [0xdc - 0xc4] = {2, 0, 1}, [0xdd - 0xc4] = {4, 0, 1},                             /* array */
    [0xde - 0xc4] = {2, 0, 2}, [0xdf - 0xc4] = {4, 0, 2},                             /* map */
};

/*
 * msgpack-c allocates a container's element array when it reads the header,
 * before it knows whether the elements are there, so a 5-byte input
 * claiming 2^32 elements asks malloc for ~100 GB.  A real allocator returns
 * NULL and msgpack fails cleanly; libFuzzer's malloc limit reports it as a
 * crash.  Every element takes at least one byte, so a complete object of n
 * bytes never claims more than n elements in all: skip inputs that do, they
 * cannot be frames.  Walks the first object's headers in order.
 */
static int
claims_fit(const uint8_t *p, size_t n)
{
    uint64_t pending = 1, claimed = 0;
    size_t off = 0;

    while (pending > 0 && off < n) {
        uint8_t b = p[off++];
        uint64_t count = 0, skip = 0;

        pending--;
        if (b >= 0x80 && b <= 0x8f) {
            count = 2 * (uint64_t)(b & 0x0f);
        } else if (b >= 0x90 && b <= 0x9f) {
            count = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else if (b >= 0xc4 && b <= 0xdf) {
            uint64_t len = 0;
            if (n - off < mp_headers[b - 0xc4].lenbytes)
                return 1;
            for (int i = 0; i < mp_headers[b - 0xc4].lenbytes; i++)
                len = (len << 8) | p[off++];
            if (mp_headers[b - 0xc4].counts)
                count = len * mp_headers[b - 0xc4].counts;
            else
                skip = len + mp_headers[b - 0xc4].fixed;
        } else if (b == 0xc1) {
            return 1; /* never used: msgpack refuses it before allocating */
        }
        claimed += count;
        if (claimed > n)
            return 0;
        pending += count;
        if (skip > n - off)
            return 1;
        off += (size_t)skip;
    }
    return 1;
}

/*
 * The view's keys are the frame's: a string key (the empty string too) is
 * present, nil is absent (frame.h).  The frame is unpacked again here, by
 * msgpack-c alone, to have something to compare with.
 */
static void
check_keys(const uint8_t *data, size_t size, const struct frame_view *v)
{
    const msgpack_object *keys;
    msgpack_object root;
    msgpack_zone zone;
    size_t off = 0;

    msgpack_zone_init(&zone, 2048);
    FUZZ_CHECK(msgpack_unpack((const char *)data, size, &off, &zone, &root) ==
               MSGPACK_UNPACK_SUCCESS);
    keys = &root.via.array.ptr[2];
    for (int k = 0; k < FRAME_NKEYS; k++) {
        const msgpack_object *o = &keys->via.array.ptr[k];
        if (o->type == MSGPACK_OBJECT_NIL) {
            FUZZ_CHECK(v->keys[k].ptr == NULL);
            continue;
        }
        FUZZ_CHECK(o->type == MSGPACK_OBJECT_STR);
        if (v->keys[k].ptr == NULL)
            fprintf(stderr, "note: filter key %d: a string of %u bytes came out absent\n", k,
                    o->via.str.size);
        FUZZ_CHECK(v->keys[k].ptr != NULL);
        FUZZ_CHECK(v->keys[k].len == o->via.str.size);
        if (o->via.str.size == 0)
            continue; /* msgpack-c gives an empty string a NULL or stale pointer */
        FUZZ_CHECK(memcmp(v->keys[k].ptr, o->via.str.ptr, o->via.str.size) == 0);
        FUZZ_CHECK(v->keys[k].ptr >= (const char *)data &&
                   v->keys[k].ptr + v->keys[k].len <= (const char *)data + size);
        FUZZ_CHECK(utf8_valid(v->keys[k].ptr, v->keys[k].len));
    }
    msgpack_zone_destroy(&zone);
}

static void
check_unpack(const uint8_t *data, size_t size)
{
    struct frame_view v;
    msgpack_zone zone;
    char err[256];
    size_t len;
    char *buf;
    cJSON *root;
    const cJSON *payload;

    if (!claims_fit(data, size))
        return;
    msgpack_zone_init(&zone, 2048);
    if (frame_unpack((const char *)data, size, &zone, &v, err, sizeof(err)) != 0) {
        FUZZ_CHECK(err[0] != '\0');
        msgpack_zone_destroy(&zone);
        return;
    }
    FUZZ_CHECK(v.type == FRAME_ODDS_UPDATE || v.type == FRAME_OPPORTUNITY);
    FUZZ_CHECK(v.payload != NULL && v.payload->type == MSGPACK_OBJECT_MAP);
    check_keys(data, size, &v);
    buf = encode_update(&v, NULL, FUZZ_NOW_MS, 16, &len, err, sizeof(err));
    if (buf == NULL)
        fprintf(stderr, "note: encode_update refused an unpacked frame: %s\n", err);
    FUZZ_CHECK(buf != NULL);
    root = check_client_json(buf + 16, len, 1);
    payload = check_server_message(root, frame_type_name(v.type));
    FUZZ_CHECK((uint32_t)cJSON_GetArraySize(payload) == v.payload->via.map.size);
    cJSON_Delete(root);
    free(buf);
    msgpack_zone_destroy(&zone);
}

/* A handle on a fresh ring in zeroed, cache-line aligned memory (free both
 * with ring_free). */
static struct ring *
ring_new(uint32_t nslots, uint64_t data_size, uint32_t max_frame)
{
    size_t size = ring_region_size(nslots, data_size);
    struct ring *r = malloc(sizeof(*r));
    void *mem;

    size = (size + RING_CACHELINE - 1) / RING_CACHELINE * RING_CACHELINE;
    mem = aligned_alloc(RING_CACHELINE, size);
    FUZZ_CHECK(r != NULL && mem != NULL);
    memset(mem, 0, size);
    FUZZ_CHECK(ring_init(r, mem, nslots, data_size, max_frame) == 0);
    return r;
}

static void
ring_free(struct ring *r)
{
    free(r->hdr);
    free(r);
}

static struct ring_frame_meta
meta_of(uint64_t seq)
{
    struct ring_frame_meta m = {(uint32_t)(seq * 3), FUZZ_NOW_MS + seq, seq, 0, 0};
    return m;
}

static int
meta_equal(const struct ring_frame_meta *a, const struct ring_frame_meta *b)
{
    return a->stream == b->stream && a->id_ms == b->id_ms && a->id_seq == b->id_seq;
}

/* The input as one frame, in a ring whose data area is just twice its size,
 * then two more copies of it so the third lands on the first's bytes. */
static void
check_ring_roundtrip(const uint8_t *data, size_t size)
{
    uint64_t data_size = 64;
    struct ring_reader rd;
    struct ring_frame_meta m, want;
    struct ring *r;
    uint32_t len;
    char *buf;

    while (data_size < 2 * (uint64_t)size)
        data_size <<= 1;
    r = ring_new(2, data_size, (uint32_t)size);
    buf = malloc(size ? size : 1);
    FUZZ_CHECK(buf != NULL);
    ring_reader_init(r, &rd);
    FUZZ_CHECK(ring_read(r, &rd, buf, size, &len, &m) == 0);
    for (uint64_t seq = 0; seq < 3; seq++) {
        want = meta_of(seq);
        FUZZ_CHECK(ring_publish(r, data, (uint32_t)size, &want) == (int64_t)seq);
        FUZZ_CHECK(ring_head(r) == seq + 1);
        FUZZ_CHECK(ring_read(r, &rd, buf, size, &len, &m) == 1);
        FUZZ_CHECK(len == size && memcmp(buf, data, size) == 0);
        FUZZ_CHECK(meta_equal(&m, &want));
        FUZZ_CHECK(rd.missed == 0 && rd.next == seq + 1);
        FUZZ_CHECK(ring_read(r, &rd, buf, size, &len, &m) == 0);
        FUZZ_CHECK(ring_peek_meta(r, seq, &m) == 0 && meta_equal(&m, &want));
    }
    FUZZ_CHECK(ring_peek_meta(r, 0, &m) == -1); /* slot 0 now holds frame 2 */
    FUZZ_CHECK(ring_peek_meta(r, 3, &m) == -1);
    free(buf);
    ring_free(r);
}

#define SCRIPT_NSLOTS    8
#define SCRIPT_DATA      1024
#define SCRIPT_MAX_FRAME 512
#define SCRIPT_STEPS     64

/* What the writer published, for checking what the reader gets. */
struct script_model {
    uint64_t head;
    uint64_t reserved; /* the documented allocation rule, replayed */
    uint64_t pos[SCRIPT_STEPS];
    uint32_t len[SCRIPT_STEPS];
    uint8_t bytes[SCRIPT_STEPS][SCRIPT_MAX_FRAME];
};

static int
model_intact(const struct script_model *mo, uint64_t s)
{
    return mo->head - s <= SCRIPT_NSLOTS && mo->reserved - mo->pos[s] <= SCRIPT_DATA;
}

/* Read until the ring says there is nothing new: the frames returned are
 * exactly the intact ones from rd->next on. */
static void
script_read_all(const struct ring *r, struct ring_reader *rd, const struct script_model *mo)
{
    static uint8_t buf[SCRIPT_MAX_FRAME];
    struct ring_frame_meta m, want;
    uint64_t s = rd->next, missed = rd->missed;
    uint32_t len;

    for (;;) {
        while (s < mo->head && !model_intact(mo, s)) {
            s++;
            missed++;
        }
        if (ring_read(r, rd, buf, sizeof(buf), &len, &m) == 0)
            break;
        FUZZ_CHECK(s < mo->head);
        FUZZ_CHECK(rd->next == s + 1);
        want = meta_of(s);
        FUZZ_CHECK(meta_equal(&m, &want));
        FUZZ_CHECK(len == mo->len[s] && memcmp(buf, mo->bytes[s], len) == 0);
        s++;
    }
    FUZZ_CHECK(s == mo->head && rd->next == mo->head);
    FUZZ_CHECK(rd->missed == missed);
}

/*
 * Byte 0 bit 0: read after every publish (nothing may be missed then).  Each
 * further byte c is one step: c % 4 == 0 reads everything new, else c / 4 *
 * 9 bytes of the input (from this byte on, cycled) are published (over
 * SCRIPT_MAX_FRAME: refused).
 */
static void
check_ring_script(const uint8_t *data, size_t size)
{
    static struct script_model mo;
    struct ring *r;
    struct ring_reader rd;
    struct ring_frame_meta m, want;
    int eager;

    if (size < 2)
        return;
    eager = data[0] & 1;
    memset(&mo, 0, offsetof(struct script_model, bytes));
    r = ring_new(SCRIPT_NSLOTS, SCRIPT_DATA, SCRIPT_MAX_FRAME);
    ring_reader_init(r, &rd);
    for (size_t i = 1; i < size && mo.head < SCRIPT_STEPS; i++) {
        uint32_t len = (uint32_t)(data[i] / 4) * 9;
        uint64_t s = mo.head, pos;

        if (data[i] % 4 == 0) {
            script_read_all(r, &rd, &mo);
            continue;
        }
        if (len > SCRIPT_MAX_FRAME) {
            want = meta_of(s);
            FUZZ_CHECK(ring_publish(r, data, len, &want) == -1);
            FUZZ_CHECK(ring_head(r) == s);
            continue;
        }
        for (uint32_t j = 0; j < len;) {
            size_t from = (i + j) % size, n = size - from < len - j ? size - from : len - j;
            memcpy(&mo.bytes[s][j], data + from, n);
            j += (uint32_t)n;
        }
        pos = mo.reserved;
        if ((pos & (SCRIPT_DATA - 1)) + len > SCRIPT_DATA)
            pos = (pos + SCRIPT_DATA) & ~(uint64_t)(SCRIPT_DATA - 1);
        mo.pos[s] = pos;
        mo.len[s] = len;
        mo.reserved = pos + len;
        want = meta_of(s);
        FUZZ_CHECK(ring_publish(r, mo.bytes[s], len, &want) == (int64_t)s);
        mo.head = s + 1;
        FUZZ_CHECK(ring_head(r) == mo.head);
        if (eager) {
            script_read_all(r, &rd, &mo);
            FUZZ_CHECK(rd.missed == 0);
        }
    }
    script_read_all(r, &rd, &mo);
    for (uint64_t s = 0; s <= mo.head; s++) {
        int live = s < mo.head && mo.head - s <= SCRIPT_NSLOTS;
        FUZZ_CHECK((ring_peek_meta(r, s, &m) == 0) == live);
        want = meta_of(s);
        FUZZ_CHECK(!live || meta_equal(&m, &want));
    }
    ring_free(r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_unpack(data, size);
    check_ring_roundtrip(data, size);
    check_ring_script(data, size);
    return 0;
}
