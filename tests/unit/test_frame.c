/*
 * test_frame: the ring's frame format.  The ingest packs frames and every
 * worker unpacks them, and frame_unpack is the last check before a payload
 * is turned into JSON for clients, so each kind of malformed frame it must
 * refuse gets its own case here, built byte by byte with msgpack-c.
 */
#include "common/frame.h"

#include <math.h>

#include "test.h"

struct packed {
    msgpack_sbuffer sb;
    msgpack_packer pk;
};

static void
packed_init(struct packed *p)
{
    msgpack_sbuffer_init(&p->sb);
    msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

static void
packed_destroy(struct packed *p)
{
    msgpack_sbuffer_destroy(&p->sb);
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t len = strlen(s);

    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void
pack_bytes_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static const struct frame_key_ref no_keys[FRAME_NKEYS] = {
    {NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};

/* A valid head (all keys nil) for the refusal cases that only break the payload. */
static void
pack_good_head(msgpack_packer *pk)
{
    frame_pack_head(pk, FRAME_ODDS_UPDATE, no_keys);
}

/* 0 if buf unpacks; the zone is freed before returning, so only for cases
 * whose view is not inspected. */
static int
try_unpack(const char *buf, size_t len, char *err, size_t errlen)
{
    msgpack_zone zone;
    struct frame_view view;
    int rc;

    msgpack_zone_init(&zone, 2048);
    err[0] = '\0';
    rc = frame_unpack(buf, len, &zone, &view, err, errlen);
    msgpack_zone_destroy(&zone);
    return rc;
}

/* Unpacking p must fail and say why. */
#define CHECK_REFUSED(p)                                                                           \
    do {                                                                                           \
        char err_[256];                                                                            \
        CHECK_INT(try_unpack((p)->sb.data, (p)->sb.size, err_, sizeof(err_)), -1);                 \
        CHECK(err_[0] != '\0');                                                                    \
    } while (0)

#define CHECK_ACCEPTED(p)                                                                          \
    do {                                                                                           \
        char err_[256];                                                                            \
        CHECK_INT(try_unpack((p)->sb.data, (p)->sb.size, err_, sizeof(err_)), 0);                  \
    } while (0)

static int
obj_str_eq(const msgpack_object *o, const char *s)
{
    size_t len = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
           memcmp(o->via.str.ptr, s, len) == 0;
}

static int
key_eq(const struct frame_key_ref *k, const char *s)
{
    size_t len = strlen(s);

    return k->ptr != NULL && k->len == len && memcmp(k->ptr, s, len) == 0;
}

static void
test_type_name(void)
{
    CHECK_STR(frame_type_name(FRAME_ODDS_UPDATE), "odds_update");
    CHECK_STR(frame_type_name(FRAME_OPPORTUNITY), "opportunity");
}

static void
test_round_trip(void)
{
    struct frame_key_ref keys[FRAME_NKEYS] = {
        {"basketball_nba", 14}, {"evt-42", 6}, {"h2h", 3}, {"fanduel", 7}};
    struct packed p;
    struct frame_view v;
    msgpack_zone zone;
    const msgpack_object_kv *kv;
    const msgpack_object *arr;
    char err[256];

    packed_init(&p);
    frame_pack_head(&p.pk, FRAME_ODDS_UPDATE, keys);
    msgpack_pack_map(&p.pk, 8);
    pack_cstr(&p.pk, "price");
    msgpack_pack_double(&p.pk, -110.5);
    pack_cstr(&p.pk, "outcome_name");
    pack_cstr(&p.pk, "Caf\xc3\xa9 FC");
    pack_cstr(&p.pk, "point");
    msgpack_pack_nil(&p.pk);
    pack_cstr(&p.pk, "live");
    msgpack_pack_true(&p.pk);
    pack_cstr(&p.pk, "neg");
    msgpack_pack_int64(&p.pk, -3);
    pack_cstr(&p.pk, "pos");
    msgpack_pack_uint64(&p.pk, 7);
    pack_cstr(&p.pk, "f32");
    msgpack_pack_float(&p.pk, 1.5f);
    pack_cstr(&p.pk, "list");
    msgpack_pack_array(&p.pk, 3);
    msgpack_pack_uint8(&p.pk, 1);
    pack_cstr(&p.pk, "x");
    msgpack_pack_map(&p.pk, 1);
    pack_cstr(&p.pk, "k");
    msgpack_pack_false(&p.pk);

    msgpack_zone_init(&zone, 2048);
    CHECK_INT(frame_unpack(p.sb.data, p.sb.size, &zone, &v, err, sizeof(err)), 0);
    CHECK_INT(v.type, FRAME_ODDS_UPDATE);
    CHECK(key_eq(&v.keys[FRAME_KEY_SPORT], "basketball_nba"));
    CHECK(key_eq(&v.keys[FRAME_KEY_EVENT], "evt-42"));
    CHECK(key_eq(&v.keys[FRAME_KEY_MARKET], "h2h"));
    CHECK(key_eq(&v.keys[FRAME_KEY_BOOK], "fanduel"));
    /* The view points into the caller's buffer: no copy to free. */
    CHECK(v.keys[FRAME_KEY_SPORT].ptr >= p.sb.data &&
          v.keys[FRAME_KEY_SPORT].ptr < p.sb.data + p.sb.size);
    CHECK_INT(v.payload->type, MSGPACK_OBJECT_MAP);
    CHECK_INT(v.payload->via.map.size, 8);
    if (v.payload->type == MSGPACK_OBJECT_MAP && v.payload->via.map.size == 8) {
        kv = v.payload->via.map.ptr;
        /* Order is kept: clients see the keys as the ingest packed them. */
        CHECK(obj_str_eq(&kv[0].key, "price"));
        CHECK_INT(kv[0].val.type, MSGPACK_OBJECT_FLOAT64);
        CHECK(kv[0].val.via.f64 == -110.5);
        CHECK(obj_str_eq(&kv[1].key, "outcome_name"));
        CHECK(obj_str_eq(&kv[1].val, "Caf\xc3\xa9 FC"));
        CHECK(obj_str_eq(&kv[2].key, "point"));
        CHECK_INT(kv[2].val.type, MSGPACK_OBJECT_NIL);
        CHECK_INT(kv[3].val.type, MSGPACK_OBJECT_BOOLEAN);
        CHECK_INT(kv[3].val.via.boolean, 1);
        CHECK_INT(kv[4].val.type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
        CHECK_INT(kv[4].val.via.i64, -3);
        CHECK_INT(kv[5].val.type, MSGPACK_OBJECT_POSITIVE_INTEGER);
        CHECK_INT(kv[5].val.via.u64, 7);
        CHECK_INT(kv[6].val.type, MSGPACK_OBJECT_FLOAT32);
        CHECK(kv[6].val.via.f64 == 1.5);
        arr = &kv[7].val;
        CHECK_INT(arr->type, MSGPACK_OBJECT_ARRAY);
        if (arr->type == MSGPACK_OBJECT_ARRAY && arr->via.array.size == 3) {
            CHECK_INT(arr->via.array.ptr[0].via.u64, 1);
            CHECK(obj_str_eq(&arr->via.array.ptr[1], "x"));
            CHECK_INT(arr->via.array.ptr[2].type, MSGPACK_OBJECT_MAP);
        } else {
            CHECK(0);
        }
    }
    msgpack_zone_destroy(&zone);
    packed_destroy(&p);
}

static void
test_nil_and_empty_keys(void)
{
    /* NULL packs nil (entry lacks the dimension); "" is a real, empty value
     * and must stay distinguishable from nil. */
    struct frame_key_ref keys[FRAME_NKEYS] = {{NULL, 0}, {"evt", 3}, {"", 0}, {NULL, 0}};
    struct packed p;
    struct frame_view v;
    msgpack_zone zone;
    char err[256];

    packed_init(&p);
    frame_pack_head(&p.pk, FRAME_OPPORTUNITY, keys);
    msgpack_pack_map(&p.pk, 0);
    msgpack_zone_init(&zone, 2048);
    memset(&v, 0xa5, sizeof(v));
    CHECK_INT(frame_unpack(p.sb.data, p.sb.size, &zone, &v, err, sizeof(err)), 0);
    CHECK_INT(v.type, FRAME_OPPORTUNITY);
    CHECK(v.keys[FRAME_KEY_SPORT].ptr == NULL);
    CHECK_INT(v.keys[FRAME_KEY_SPORT].len, 0);
    CHECK(key_eq(&v.keys[FRAME_KEY_EVENT], "evt"));
    CHECK(v.keys[FRAME_KEY_MARKET].ptr != NULL);
    CHECK_INT(v.keys[FRAME_KEY_MARKET].len, 0);
    CHECK(v.keys[FRAME_KEY_BOOK].ptr == NULL);
    CHECK_INT(v.payload->type, MSGPACK_OBJECT_MAP);
    CHECK_INT(v.payload->via.map.size, 0);
    msgpack_zone_destroy(&zone);
    packed_destroy(&p);

    /* Empty strings as payload keys and values are fine (msgpack-c may give
     * them a NULL pointer: nothing may read through it). */
    packed_init(&p);
    frame_pack_head(&p.pk, FRAME_ODDS_UPDATE, keys);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_str(&p.pk, 0);
    msgpack_pack_str(&p.pk, 0);
    msgpack_zone_init(&zone, 2048);
    CHECK_INT(frame_unpack(p.sb.data, p.sb.size, &zone, &v, err, sizeof(err)), 0);
    msgpack_zone_destroy(&zone);
    packed_destroy(&p);
}

static void
test_head_bytes(void)
{
    /* The exact head layout is what both roles agree on; a change here is a
     * format change and needs FRAME_VERSION bumped. */
    static const unsigned char want[] = {0x94, 0x01, 0x01, 0x94, 0xa1, 's', 0xc0, 0xc0, 0xa1, 'b'};
    struct frame_key_ref keys[FRAME_NKEYS] = {{"s", 1}, {NULL, 0}, {NULL, 0}, {"b", 1}};
    struct packed p;

    packed_init(&p);
    frame_pack_head(&p.pk, FRAME_OPPORTUNITY, keys);
    CHECK_INT(p.sb.size, sizeof(want));
    CHECK(p.sb.size == sizeof(want) && memcmp(p.sb.data, want, sizeof(want)) == 0);
    packed_destroy(&p);
}

/* The key array with every dimension absent, for cases that build the rest
 * of the head by hand. */
static void
pack_nil_keys(msgpack_packer *pk)
{
    msgpack_pack_array(pk, FRAME_NKEYS);
    for (int i = 0; i < FRAME_NKEYS; i++)
        msgpack_pack_nil(pk);
}

static void
test_bad_version(void)
{
    struct packed p;

    for (int variant = 0; variant < 5; variant++) {
        packed_init(&p);
        msgpack_pack_array(&p.pk, 4);
        switch (variant) {
        case 0:
            msgpack_pack_uint32(&p.pk, 0);
            break;
        case 1:
            msgpack_pack_uint32(&p.pk, FRAME_VERSION + 1);
            break;
        case 2:
            msgpack_pack_int32(&p.pk, -1);
            break;
        case 3:
            pack_cstr(&p.pk, "1");
            break;
        default:
            msgpack_pack_nil(&p.pk);
            break;
        }
        msgpack_pack_uint32(&p.pk, FRAME_ODDS_UPDATE);
        pack_nil_keys(&p.pk);
        msgpack_pack_map(&p.pk, 0);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }

    /* The control case: the same bytes with version 1 are accepted, so the
     * refusals above are about the version and nothing else. */
    packed_init(&p);
    msgpack_pack_array(&p.pk, 4);
    msgpack_pack_uint32(&p.pk, FRAME_VERSION);
    msgpack_pack_uint32(&p.pk, FRAME_ODDS_UPDATE);
    pack_nil_keys(&p.pk);
    msgpack_pack_map(&p.pk, 0);
    CHECK_ACCEPTED(&p);
    packed_destroy(&p);
}

static void
test_bad_type(void)
{
    struct packed p;

    for (int variant = 0; variant < 5; variant++) {
        packed_init(&p);
        msgpack_pack_array(&p.pk, 4);
        msgpack_pack_uint32(&p.pk, FRAME_VERSION);
        switch (variant) {
        case 0:
            msgpack_pack_uint32(&p.pk, FRAME_NTYPES);
            break;
        case 1:
            msgpack_pack_uint64(&p.pk, 1ULL << 40);
            break;
        case 2:
            msgpack_pack_int32(&p.pk, -1);
            break;
        case 3:
            pack_cstr(&p.pk, "odds_update");
            break;
        default:
            msgpack_pack_double(&p.pk, 0.0);
            break;
        }
        pack_nil_keys(&p.pk);
        msgpack_pack_map(&p.pk, 0);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }
}

static void
test_bad_keys(void)
{
    struct packed p;

    for (int variant = 0; variant < 9; variant++) {
        packed_init(&p);
        msgpack_pack_array(&p.pk, 4);
        msgpack_pack_uint32(&p.pk, FRAME_VERSION);
        msgpack_pack_uint32(&p.pk, FRAME_ODDS_UPDATE);
        switch (variant) {
        case 0:   /* three keys */
        case 1:   /* five keys */
        case 2: { /* none */
            int n = variant == 0 ? FRAME_NKEYS - 1 : variant == 1 ? FRAME_NKEYS + 1 : 0;
            msgpack_pack_array(&p.pk, (size_t)n);
            for (int i = 0; i < n; i++)
                pack_cstr(&p.pk, "k");
            break;
        }
        case 3: /* a map instead of an array */
            msgpack_pack_map(&p.pk, 0);
            break;
        case 4: /* a string instead of an array */
            pack_cstr(&p.pk, "keys");
            break;
        case 5: /* an integer key */
        case 6: /* a boolean key */
        case 7: /* an array key */
        case 8: /* a bin key: bytes are not a string */
            msgpack_pack_array(&p.pk, FRAME_NKEYS);
            pack_cstr(&p.pk, "basketball_nba");
            pack_cstr(&p.pk, "evt");
            if (variant == 5)
                msgpack_pack_uint32(&p.pk, 7);
            else if (variant == 6)
                msgpack_pack_true(&p.pk);
            else if (variant == 7)
                msgpack_pack_array(&p.pk, 0);
            else {
                msgpack_pack_bin(&p.pk, 3);
                msgpack_pack_bin_body(&p.pk, "h2h", 3);
            }
            msgpack_pack_nil(&p.pk);
            break;
        }
        msgpack_pack_map(&p.pk, 0);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }
}

static void
test_bad_root(void)
{
    struct packed p;

    /* A map, not an array. */
    packed_init(&p);
    msgpack_pack_map(&p.pk, 0);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* Three and five elements. */
    packed_init(&p);
    msgpack_pack_array(&p.pk, 3);
    msgpack_pack_uint32(&p.pk, FRAME_VERSION);
    msgpack_pack_uint32(&p.pk, FRAME_ODDS_UPDATE);
    pack_nil_keys(&p.pk);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    packed_init(&p);
    msgpack_pack_array(&p.pk, 5);
    msgpack_pack_uint32(&p.pk, FRAME_VERSION);
    msgpack_pack_uint32(&p.pk, FRAME_ODDS_UPDATE);
    pack_nil_keys(&p.pk);
    msgpack_pack_map(&p.pk, 0);
    msgpack_pack_nil(&p.pk);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    packed_init(&p);
    msgpack_pack_uint32(&p.pk, 1);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* Nothing at all. */
    {
        char err[256];
        CHECK_INT(try_unpack("", 0, err, sizeof(err)), -1);
        CHECK(err[0] != '\0');
    }
}

static void
test_payload_not_map(void)
{
    struct packed p;

    for (int variant = 0; variant < 4; variant++) {
        packed_init(&p);
        pack_good_head(&p.pk);
        if (variant == 0)
            msgpack_pack_array(&p.pk, 0);
        else if (variant == 1)
            msgpack_pack_nil(&p.pk);
        else if (variant == 2)
            pack_cstr(&p.pk, "{}");
        else
            msgpack_pack_uint32(&p.pk, 0);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }
}

static void
test_map_key_not_string(void)
{
    struct packed p;

    /* Top-level map with an integer key. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_uint32(&p.pk, 1);
    pack_cstr(&p.pk, "x");
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* A nil key deeper down: JSON has no such thing. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_cstr(&p.pk, "outer");
    msgpack_pack_array(&p.pk, 1);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_nil(&p.pk);
    msgpack_pack_uint32(&p.pk, 1);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* A string key that is not UTF-8. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_bytes_str(&p.pk, "k\xff", 2);
    msgpack_pack_uint32(&p.pk, 1);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* A bin key holding text is still not a string key. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    msgpack_pack_bin(&p.pk, 1);
    msgpack_pack_bin_body(&p.pk, "k", 1);
    msgpack_pack_uint32(&p.pk, 1);
    CHECK_REFUSED(&p);
    packed_destroy(&p);
}

static void
test_non_finite(void)
{
    struct packed p;
    const double bad[] = {NAN, INFINITY, -INFINITY};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* As a direct value ... */
        packed_init(&p);
        pack_good_head(&p.pk);
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "price");
        msgpack_pack_double(&p.pk, bad[i]);
        CHECK_REFUSED(&p);
        packed_destroy(&p);

        /* ... as a float32 ... */
        packed_init(&p);
        pack_good_head(&p.pk);
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "price");
        msgpack_pack_float(&p.pk, (float)bad[i]);
        CHECK_REFUSED(&p);
        packed_destroy(&p);

        /* ... and inside an array in a nested map. */
        packed_init(&p);
        pack_good_head(&p.pk);
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "m");
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "a");
        msgpack_pack_array(&p.pk, 2);
        msgpack_pack_double(&p.pk, 1.0);
        msgpack_pack_double(&p.pk, bad[i]);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }

    /* The largest finite double is fine. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 2);
    pack_cstr(&p.pk, "big");
    msgpack_pack_double(&p.pk, 1.7976931348623157e308);
    pack_cstr(&p.pk, "tiny");
    msgpack_pack_double(&p.pk, -4.9e-324);
    CHECK_ACCEPTED(&p);
    packed_destroy(&p);
}

static void
test_invalid_utf8_value(void)
{
    static const char *const bad[] = {"\xff", "\xc0\x80", "\xed\xa0\x80", "ok\xe2\x82"};
    struct packed p;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        packed_init(&p);
        pack_good_head(&p.pk);
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "outcome_name");
        pack_cstr(&p.pk, bad[i]);
        CHECK_REFUSED(&p);
        packed_destroy(&p);

        packed_init(&p);
        pack_good_head(&p.pk);
        msgpack_pack_map(&p.pk, 1);
        pack_cstr(&p.pk, "list");
        msgpack_pack_array(&p.pk, 2);
        pack_cstr(&p.pk, "fine");
        pack_cstr(&p.pk, bad[i]);
        CHECK_REFUSED(&p);
        packed_destroy(&p);
    }

    /* Embedded NUL is valid UTF-8, but cJSON (the workers' encoder) would cut
     * the string there and deliver another value: refused, in values and keys. */
    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_cstr(&p.pk, "s");
    pack_bytes_str(&p.pk, "a\0b", 3);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_bytes_str(&p.pk, "a\0b", 3);
    pack_cstr(&p.pk, "s");
    CHECK_REFUSED(&p);
    packed_destroy(&p);
}

static void
test_bin_ext_refused(void)
{
    struct packed p;

    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_cstr(&p.pk, "b");
    msgpack_pack_bin(&p.pk, 2);
    msgpack_pack_bin_body(&p.pk, "hi", 2);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 1);
    pack_cstr(&p.pk, "e");
    msgpack_pack_ext(&p.pk, 1, 5);
    msgpack_pack_ext_body(&p.pk, "x", 1);
    CHECK_REFUSED(&p);
    packed_destroy(&p);
}

/* Payload {"d": [[...[1]...]]} with `arrays` nested arrays: the payload map
 * is depth 0, the arrays depths 1..arrays, and the 1 sits at depth
 * arrays + 1 (the convention of frame_check_value and decode_json_value). */
static void
pack_nested(struct packed *p, int arrays)
{
    pack_good_head(&p->pk);
    msgpack_pack_map(&p->pk, 1);
    pack_cstr(&p->pk, "d");
    for (int i = 0; i < arrays; i++)
        msgpack_pack_array(&p->pk, 1);
    msgpack_pack_uint32(&p->pk, 1);
}

static void
test_depth_limit(void)
{
    struct packed p;

    packed_init(&p);
    pack_nested(&p, 10);
    CHECK_ACCEPTED(&p);
    packed_destroy(&p);

    /* A value one level deeper than FRAME_MAX_DEPTH. */
    packed_init(&p);
    pack_nested(&p, FRAME_MAX_DEPTH);
    CHECK_REFUSED(&p);
    packed_destroy(&p);

    /* Far deeper: must fail cleanly, not recurse without bound. */
    packed_init(&p);
    pack_nested(&p, 10000);
    CHECK_REFUSED(&p);
    packed_destroy(&p);
}

static void
test_depth_max_accepted(void)
{
    struct packed p;

    /* The header allows nesting up to FRAME_MAX_DEPTH, and decode_entry
     * produces payloads with a value at depth FRAME_MAX_DEPTH; frame_unpack
     * must accept what the ingest publishes, or workers drop it as invalid. */
    for (int arrays = FRAME_MAX_DEPTH - 3; arrays <= FRAME_MAX_DEPTH - 1; arrays++) {
        char err[256];
        packed_init(&p);
        pack_nested(&p, arrays);
        if (try_unpack(p.sb.data, p.sb.size, err, sizeof(err)) != 0) {
            printf("#   value at depth %d refused: %s\n", arrays + 1, err);
            CHECK(0);
        }
        packed_destroy(&p);
    }
}

static void
test_trailing_bytes(void)
{
    struct packed p;
    size_t one;

    packed_init(&p);
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 0);
    one = p.sb.size;
    CHECK_ACCEPTED(&p);
    msgpack_pack_nil(&p.pk);
    CHECK_REFUSED(&p);
    /* Two whole frames back to back are not one frame either. */
    p.sb.size = one;
    pack_good_head(&p.pk);
    msgpack_pack_map(&p.pk, 0);
    CHECK_INT(p.sb.size, 2 * one);
    CHECK_REFUSED(&p);
    packed_destroy(&p);
}

static void
test_truncated(void)
{
    struct frame_key_ref keys[FRAME_NKEYS] = {
        {"basketball_nba", 14}, {"e1", 2}, {"h2h", 3}, {NULL, 0}};
    struct packed p;

    packed_init(&p);
    frame_pack_head(&p.pk, FRAME_ODDS_UPDATE, keys);
    msgpack_pack_map(&p.pk, 2);
    pack_cstr(&p.pk, "outcome_name");
    pack_cstr(&p.pk, "Boston Celtics");
    pack_cstr(&p.pk, "price");
    msgpack_pack_double(&p.pk, 1.91);
    CHECK_ACCEPTED(&p);
    /* Every proper prefix is incomplete; none may pass, none may crash. */
    for (size_t n = 0; n < p.sb.size; n++) {
        char err[256];
        int rc = try_unpack(p.sb.data, n, err, sizeof(err));
        if (rc != -1) {
            printf("#   prefix of %zu of %zu bytes accepted\n", n, p.sb.size);
            CHECK_INT(rc, -1);
        }
    }
    packed_destroy(&p);
}

TEST_MAIN(TEST(test_type_name), TEST(test_round_trip), TEST(test_nil_and_empty_keys),
          TEST(test_head_bytes), TEST(test_bad_version), TEST(test_bad_type), TEST(test_bad_keys),
          TEST(test_bad_root), TEST(test_payload_not_map), TEST(test_map_key_not_string),
          TEST(test_non_finite), TEST(test_invalid_utf8_value), TEST(test_bin_ext_refused),
          TEST(test_depth_limit), TEST(test_depth_max_accepted), TEST(test_trailing_bytes),
          TEST(test_truncated))
