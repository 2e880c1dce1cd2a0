/*
 * test_encode: the JSON text every client receives.  Updates go through the
 * same path as in a worker (frame_pack_head + a msgpack payload, then
 * frame_unpack, then encode_update), and the output is read back with cJSON
 * and compared with the payload that went in, so escaping, numbers, nesting
 * and the buffer's headroom are all checked on real bytes.
 */
#include "worker/encode.h"

#include <math.h>
#include <stdint.h>

#include "test.h"
#include "../seed_fields.h"

/* 2025-11-07T12:34:56.123Z, the seed README's example. */
#define NOW_MS 1762518896123ULL

/* ---- building frames ---------------------------------------------------- */

struct built {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_zone zone;
    struct frame_view view;
};

static const struct frame_key_ref no_keys[FRAME_NKEYS] = {
    {NULL, 0}, {NULL, 0}, {NULL, 0}, {NULL, 0}};

static void
built_begin(struct built *b, enum frame_type type)
{
    msgpack_sbuffer_init(&b->sb);
    msgpack_packer_init(&b->pk, &b->sb, msgpack_sbuffer_write);
    msgpack_zone_init(&b->zone, 4096);
    frame_pack_head(&b->pk, type, no_keys);
}

/* Unpack what was packed, as a worker does; 0 or -1. */
static int
built_end(struct built *b)
{
    char err[256];

    if (frame_unpack(b->sb.data, b->sb.size, &b->zone, &b->view, err, sizeof(err)) != 0) {
        printf("#   frame_unpack refused the test frame: %s\n", err);
        test_failed_checks++;
        return -1;
    }
    return 0;
}

static void
built_free(struct built *b)
{
    msgpack_zone_destroy(&b->zone);
    msgpack_sbuffer_destroy(&b->sb);
}

static void
pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void
pack_cstr(msgpack_packer *pk, const char *s)
{
    pack_str(pk, s, strlen(s));
}

/*
 * Check the buffer contract (text at buf + headroom, NUL-terminated, *len
 * its length), that the text is one JSON object with exactly type, payload
 * and timestamp, and return it parsed (NULL after a failed check).  The
 * headroom is written to, so ASan sees if it was not allocated.
 */
static cJSON *
check_message_at(int line, char *buf, size_t headroom, size_t len, const char *type,
                 const char *timestamp)
{
    cJSON *root, *t, *ts, *p;
    const char *text;

    if (buf == NULL) {
        printf("#   line %d: no output\n", line);
        test_failed_checks++;
        return NULL;
    }
    memset(buf, 0xee, headroom);
    text = buf + headroom;
    CHECK_INT(strlen(text), len);
    root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
    if (root == NULL) {
        printf("#   line %d: output is not JSON: %.200s\n", line, text);
        test_failed_checks++;
        return NULL;
    }
    t = cJSON_GetObjectItemCaseSensitive(root, "type");
    p = cJSON_GetObjectItemCaseSensitive(root, "payload");
    ts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");
    CHECK_INT(cJSON_GetArraySize(root), 3);
    CHECK_STR(cJSON_GetStringValue(t), type);
    CHECK(cJSON_IsObject(p));
    CHECK_STR(cJSON_GetStringValue(ts), timestamp);
    if (!cJSON_IsObject(p)) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

#define CHECK_MESSAGE(buf, headroom, len, type, ts)                                                \
    check_message_at(__LINE__, buf, headroom, len, type, ts)

/* The payload of msg equals want_json (order-insensitive, like a client's
 * parser; key order is checked separately where it matters). */
static void
check_payload_at(int line, cJSON *msg, const char *want_json)
{
    cJSON *want = cJSON_Parse(want_json);
    cJSON *got = cJSON_GetObjectItemCaseSensitive(msg, "payload");

    if (want == NULL) {
        printf("#   line %d: test JSON does not parse\n", line);
        abort();
    }
    if (!cJSON_Compare(want, got, 1)) {
        char *g = cJSON_PrintUnformatted(got);
        printf("#   line %d: payload\n#     got  %.300s\n#     want %.300s\n", line,
               g ? g : "(null)", want_json);
        free(g);
        test_failed_checks++;
    }
    cJSON_Delete(want);
}

#define CHECK_PAYLOAD(msg, want) check_payload_at(__LINE__, msg, want)

/* Encode b's frame; returns the parsed message, *out_buf the raw bytes. */
static cJSON *
encode_built_at(int line, struct built *b, uint64_t now, size_t headroom, const char *type,
                const char *ts, char **out_buf)
{
    char err[256] = "";
    size_t len = 0;
    char *buf = encode_update(&b->view, NULL, now, headroom, &len, err, sizeof(err));
    cJSON *msg;

    if (buf == NULL)
        printf("#   line %d: encode_update failed: %s\n", line, err);
    msg = check_message_at(line, buf, headroom, len, type, ts);
    if (out_buf != NULL)
        *out_buf = buf;
    else
        free(buf);
    return msg;
}

#define ENCODE_BUILT(b, now, headroom, type, ts, out_buf)                                          \
    encode_built_at(__LINE__, b, now, headroom, type, ts, out_buf)

/* ---- encode_update ------------------------------------------------------ */

static void
test_update_seed_example(void)
{
    static const char *const order[] = {SEED_FIELD_NAMES};
    struct built b;
    cJSON *msg, *c;
    char *buf = NULL;
    int i = 0;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 13);
    pack_cstr(&b.pk, "event_id");
    pack_cstr(&b.pk, "abc123");
    pack_cstr(&b.pk, "sport_key");
    pack_cstr(&b.pk, "basketball_nba");
    pack_cstr(&b.pk, "market_key");
    pack_cstr(&b.pk, "h2h");
    pack_cstr(&b.pk, "book_key");
    pack_cstr(&b.pk, "fanduel");
    pack_cstr(&b.pk, "outcome_name");
    pack_cstr(&b.pk, "Los Angeles Lakers");
    pack_cstr(&b.pk, "price");
    msgpack_pack_double(&b.pk, -110);
    pack_cstr(&b.pk, "point");
    msgpack_pack_nil(&b.pk);
    pack_cstr(&b.pk, "decimal_odds");
    msgpack_pack_double(&b.pk, 1.909);
    pack_cstr(&b.pk, "implied_probability");
    msgpack_pack_double(&b.pk, 0.5238);
    pack_cstr(&b.pk, "novig_probability");
    msgpack_pack_double(&b.pk, 0.50);
    pack_cstr(&b.pk, "fair_price");
    msgpack_pack_int64(&b.pk, -100);
    pack_cstr(&b.pk, "edge");
    msgpack_pack_double(&b.pk, 0.024);
    pack_cstr(&b.pk, "normalized_at");
    pack_cstr(&b.pk, "2025-11-07T12:34:56Z");
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 16, "odds_update", "2025-11-07T12:34:56.123Z", &buf);
        CHECK_PAYLOAD(msg, "{\"event_id\":\"abc123\",\"sport_key\":\"basketball_nba\","
                           "\"market_key\":\"h2h\",\"book_key\":\"fanduel\","
                           "\"outcome_name\":\"Los Angeles Lakers\",\"price\":-110,"
                           "\"point\":null,\"decimal_odds\":1.909,"
                           "\"implied_probability\":0.5238,\"novig_probability\":0.5,"
                           "\"fair_price\":-100,\"edge\":0.024,"
                           "\"normalized_at\":\"2025-11-07T12:34:56Z\"}");
        /* The ingest keeps the seed's field order; so must the text. */
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(msg, "payload"))
        {
            if (i < 13)
                CHECK_STR(c->string, order[i]);
            i++;
        }
        CHECK_INT(i, 13);
        /* Integral prices print as integers, as in the seed's example. */
        if (buf != NULL) {
            CHECK(strstr(buf + 16, "\"price\":-110,") != NULL);
            CHECK(strstr(buf + 16, "\"point\":null,") != NULL);
        }
        cJSON_Delete(msg);
        free(buf);
    }
    built_free(&b);
}

static void
test_update_opportunity(void)
{
    struct built b;
    cJSON *msg;

    built_begin(&b, FRAME_OPPORTUNITY);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "edge");
    msgpack_pack_double(&b.pk, 0.031);
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 0, "opportunity", "2025-11-07T12:34:56.123Z", NULL);
        CHECK_PAYLOAD(msg, "{\"edge\":0.031}");
        cJSON_Delete(msg);
    }
    built_free(&b);
}

static void
test_update_empty_payload(void)
{
    struct built b;
    cJSON *msg;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 0);
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 0, "odds_update", "2025-11-07T12:34:56.123Z", NULL);
        CHECK_PAYLOAD(msg, "{}");
        cJSON_Delete(msg);
    }
    built_free(&b);
}

static void
test_update_timestamps(void)
{
    static const struct {
        uint64_t ms;
        const char *want;
    } cases[] = {
        {0, "1970-01-01T00:00:00.000Z"},
        {5, "1970-01-01T00:00:00.005Z"},
        {1762518896123ULL, "2025-11-07T12:34:56.123Z"},
        {1762518896005ULL, "2025-11-07T12:34:56.005Z"},
        {1762518896999ULL, "2025-11-07T12:34:56.999Z"},
        {951782400999ULL, "2000-02-29T00:00:00.999Z"},
        {2147483648000ULL, "2038-01-19T03:14:08.000Z"},
        {253402300799999ULL, "9999-12-31T23:59:59.999Z"},
    };
    struct built b;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 0);
    if (built_end(&b) == 0) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            cJSON *msg = ENCODE_BUILT(&b, cases[i].ms, 0, "odds_update", cases[i].want, NULL);
            cJSON_Delete(msg);
        }
    }
    built_free(&b);
}

static void
test_update_strings_escaped(void)
{
    /* Each string goes in as raw UTF-8 bytes and must come back identical
     * through a JSON parser. */
    static const struct {
        const char *s;
        size_t len;
    } cases[] = {
#define S(lit) {lit, sizeof(lit) - 1}
        S("plain"),
        S(""),
        S("say \"hi\""),
        S("back\\slash\\"),
        S("\\\"\\\""),
        S("line\nbreak\ttab\rcr\bbs\fff"),
        S("\x01\x02\x1f ctl"),
        S("\x7f del"),
        S("/slash/ </script>"),
        S("Caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), /* e-acute, euro, an emoji */
        S("\xe2\x80\xa8 line separator \xe2\x80\xa9"),
        S("\xef\xbb\xbf bom"),
        S("\xf4\x8f\xbf\xbf max"), /* U+10FFFF */
#undef S
    };
    enum { N = sizeof(cases) / sizeof(cases[0]) };
    struct built b;
    char *buf = NULL;
    cJSON *msg;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, N + 1);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        pack_cstr(&b.pk, key);
        pack_str(&b.pk, cases[i].s, cases[i].len);
    }
    /* Keys are strings too and need the same escaping. */
    pack_cstr(&b.pk, "k\"e\\y\n\x01");
    pack_cstr(&b.pk, "v");
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 0, "odds_update", "2025-11-07T12:34:56.123Z", &buf);
        if (msg != NULL) {
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(msg, "payload");
            for (int i = 0; i < N; i++) {
                char key[16];
                const char *got;
                snprintf(key, sizeof(key), "k%d", i);
                got = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, key));
                if (got == NULL || strlen(got) != cases[i].len ||
                    memcmp(got, cases[i].s, cases[i].len) != 0) {
                    printf("#   string %d came back as \"%s\"\n", i, got ? got : "(null)");
                    test_failed_checks++;
                }
            }
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(p, "k\"e\\y\n\x01")),
                      "v");
            /* No raw control character may reach the wire (RFC 8259 section 7). */
            for (const char *q = buf; *q != '\0'; q++) {
                if ((unsigned char)*q < 0x20) {
                    printf("#   raw control byte 0x%02x in output\n", (unsigned char)*q);
                    test_failed_checks++;
                    break;
                }
            }
            CHECK(strstr(buf, "\"say \\\"hi\\\"\"") != NULL);
            CHECK(strstr(buf, "\"back\\\\slash\\\\\"") != NULL);
            CHECK(strstr(buf, "\\u0001\\u0002\\u001f ctl") != NULL);
        }
        cJSON_Delete(msg);
        free(buf);
    }
    built_free(&b);
}

/* Encode a payload {"ints": [...], "doubles": [...]} and check that every
 * number a client parses back is the one packed, bit for bit. */
static void
check_numbers_at(int line, const int64_t *ints, int ni, const double *doubles, int nd,
                 char **out_buf)
{
    struct built b;
    cJSON *msg;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 2);
    pack_cstr(&b.pk, "ints");
    msgpack_pack_array(&b.pk, (size_t)ni);
    for (int i = 0; i < ni; i++)
        msgpack_pack_int64(&b.pk, ints[i]); /* msgpack picks the smallest encoding */
    pack_cstr(&b.pk, "doubles");
    msgpack_pack_array(&b.pk, (size_t)nd);
    for (int i = 0; i < nd; i++)
        msgpack_pack_double(&b.pk, doubles[i]);
    *out_buf = NULL;
    if (built_end(&b) != 0) {
        built_free(&b);
        return;
    }
    msg = encode_built_at(line, &b, NOW_MS, 0, "odds_update", "2025-11-07T12:34:56.123Z", out_buf);
    if (msg != NULL) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(msg, "payload");
        const cJSON *ia = cJSON_GetObjectItemCaseSensitive(p, "ints");
        const cJSON *da = cJSON_GetObjectItemCaseSensitive(p, "doubles");
        CHECK_INT(cJSON_GetArraySize(ia), ni);
        CHECK_INT(cJSON_GetArraySize(da), nd);
        for (int i = 0; i < ni && i < cJSON_GetArraySize(ia); i++) {
            const cJSON *v = cJSON_GetArrayItem(ia, i);
            if (!cJSON_IsNumber(v) || v->valuedouble != (double)ints[i]) {
                printf("#   line %d: integer %lld came back as %.17g\n", line, (long long)ints[i],
                       cJSON_IsNumber(v) ? v->valuedouble : NAN);
                test_failed_checks++;
            }
        }
        for (int i = 0; i < nd && i < cJSON_GetArraySize(da); i++) {
            const cJSON *v = cJSON_GetArrayItem(da, i);
            if (!cJSON_IsNumber(v) || v->valuedouble != doubles[i]) {
                printf("#   line %d: double %.17g came back as %.17g\n", line, doubles[i],
                       cJSON_IsNumber(v) ? v->valuedouble : NAN);
                test_failed_checks++;
            }
        }
    }
    cJSON_Delete(msg);
    built_free(&b);
}

static void
test_update_numbers(void)
{
    /* Each msgpack integer width, both signs, and the largest integers
     * that 15 significant digits still print exactly. */
    static const int64_t ints[] = {0,
                                   1,
                                   -1,
                                   -110,
                                   127,
                                   128,
                                   -32,
                                   -33,
                                   255,
                                   65535,
                                   65536,
                                   INT32_MIN,
                                   INT32_MAX,
                                   4294967296LL,
                                   999999999999999LL,
                                   -999999999999999LL};
    static const double doubles[] = {1.909, 0.5238,     -0.024, 0.5,  1e-7,    -1e-300,
                                     1e300, 123456.789, -110.5, 0.25, 1.5e-10, 2.5e15};
    char *buf;

    check_numbers_at(__LINE__, ints, (int)(sizeof(ints) / sizeof(ints[0])), doubles,
                     (int)(sizeof(doubles) / sizeof(doubles[0])), &buf);
    /* Integers print as integers: no exponent, no fraction. */
    if (buf != NULL)
        CHECK(strstr(buf, "[0,1,-1,-110,127,128,-32,-33,255,65535,65536,-2147483648,"
                          "2147483647,4294967296,999999999999999,-999999999999999]") != NULL);
    free(buf);

    /* Float32 values arrive widened to double. */
    struct built b;
    cJSON *msg;
    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 2);
    pack_cstr(&b.pk, "f32");
    msgpack_pack_float(&b.pk, 1.5f);
    pack_cstr(&b.pk, "u64");
    msgpack_pack_uint64(&b.pk, 1ULL << 63);
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 0, "odds_update", "2025-11-07T12:34:56.123Z", NULL);
        CHECK_PAYLOAD(msg, "{\"f32\":1.5,\"u64\":9223372036854775808}");
        cJSON_Delete(msg);
    }
    built_free(&b);
}

static void
test_update_numbers_full_precision(void)
{
    /*
     * A client must parse back the double the ingest stored, as an encoder
     * that prints the shortest round-trip form (or 17 digits) gives.
     * cJSON first tries 15 significant digits and keeps them when they read
     * back within DBL_EPSILON (relative) of the value, which is not equality:
     * 0.1 + 0.2 arrives as 0.3, 2^53 as 9007199254740990, and the largest
     * double as text that parses as infinity.  The values that need 16 or 17
     * digits by more than that margin (1 / 1.909, a microsecond timestamp)
     * are here so a fix keeps them right.
     */
    static const int64_t ints[] = {1762518896123456LL, 9007199254740992LL, -9007199254740992LL,
                                   1000000000000001LL};
    static const double doubles[] = {
        1 / 1.909, 0.1 + 0.2, 2.0 / 3.0, 0.5238344683080147, 1.7976931348623157e308, 5e-324};
    char *buf;

    check_numbers_at(__LINE__, ints, (int)(sizeof(ints) / sizeof(ints[0])), doubles,
                     (int)(sizeof(doubles) / sizeof(doubles[0])), &buf);
    free(buf);
}

static void
test_update_nested_values(void)
{
    struct built b;
    cJSON *msg, *c;
    int i = 0;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 7);
    pack_cstr(&b.pk, "t");
    msgpack_pack_true(&b.pk);
    pack_cstr(&b.pk, "f");
    msgpack_pack_false(&b.pk);
    pack_cstr(&b.pk, "n");
    msgpack_pack_nil(&b.pk);
    pack_cstr(&b.pk, "empty_map");
    msgpack_pack_map(&b.pk, 0);
    pack_cstr(&b.pk, "empty_list");
    msgpack_pack_array(&b.pk, 0);
    pack_cstr(&b.pk, "outcomes");
    msgpack_pack_array(&b.pk, 2);
    msgpack_pack_map(&b.pk, 2);
    pack_cstr(&b.pk, "name");
    pack_cstr(&b.pk, "Lakers");
    pack_cstr(&b.pk, "price");
    msgpack_pack_int32(&b.pk, -110);
    msgpack_pack_map(&b.pk, 2);
    pack_cstr(&b.pk, "name");
    pack_cstr(&b.pk, "Celtics");
    pack_cstr(&b.pk, "price");
    msgpack_pack_int32(&b.pk, -105);
    pack_cstr(&b.pk, "mixed");
    msgpack_pack_array(&b.pk, 5);
    msgpack_pack_nil(&b.pk);
    msgpack_pack_true(&b.pk);
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_array(&b.pk, 1);
    msgpack_pack_uint8(&b.pk, 7);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "z");
    msgpack_pack_map(&b.pk, 0);
    pack_cstr(&b.pk, "s");
    if (built_end(&b) == 0) {
        msg = ENCODE_BUILT(&b, NOW_MS, 0, "odds_update", "2025-11-07T12:34:56.123Z", NULL);
        CHECK_PAYLOAD(msg, "{\"t\":true,\"f\":false,\"n\":null,\"empty_map\":{},\"empty_list\":[],"
                           "\"outcomes\":[{\"name\":\"Lakers\",\"price\":-110},"
                           "{\"name\":\"Celtics\",\"price\":-105}],"
                           "\"mixed\":[null,true,[[7]],{\"z\":{}},\"s\"]}");
        /* Arrays keep their order (cJSON_Compare checks it); so do maps. */
        cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(msg, "payload"))
        {
            static const char *const keys[] = {"t",          "f",        "n",    "empty_map",
                                               "empty_list", "outcomes", "mixed"};
            if (i < 7)
                CHECK_STR(c->string, keys[i]);
            i++;
        }
        cJSON_Delete(msg);
    }
    built_free(&b);
}

static void
test_update_headroom(void)
{
    static const size_t headrooms[] = {0, 1, 16, 1000, 70000};
    struct built b;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "a");
    msgpack_pack_uint8(&b.pk, 1);
    if (built_end(&b) == 0) {
        for (size_t i = 0; i < sizeof(headrooms) / sizeof(headrooms[0]); i++) {
            char *buf = NULL;
            cJSON *msg = ENCODE_BUILT(&b, NOW_MS, headrooms[i], "odds_update",
                                      "2025-11-07T12:34:56.123Z", &buf);
            CHECK_PAYLOAD(msg, "{\"a\":1}");
            /* The text starts right at the headroom: a transport writes its
             * header just before it and sends both in one piece. */
            if (buf != NULL)
                CHECK(buf[headrooms[i]] == '{');
            cJSON_Delete(msg);
            free(buf);
        }
    }
    built_free(&b);
}

/* A frame whose payload is {"s": <len bytes of c>}. */
static cJSON *
encode_long_string_at(int line, size_t len, char c, size_t *out_len)
{
    struct built b;
    char *s = malloc(len), *buf = NULL;
    cJSON *msg = NULL;

    memset(s, c, len);
    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "s");
    pack_str(&b.pk, s, len);
    if (built_end(&b) == 0) {
        msg =
            encode_built_at(line, &b, NOW_MS, 16, "odds_update", "2025-11-07T12:34:56.123Z", &buf);
        if (buf != NULL)
            *out_len = strlen(buf + 16);
        if (msg != NULL) {
            const char *got = cJSON_GetStringValue(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItem(msg, "payload"), "s"));
            CHECK(got != NULL && strlen(got) == len && memcmp(got, s, len) == 0);
        }
        free(buf);
    }
    built_free(&b);
    free(s);
    return msg;
}

static void
test_update_large_payload(void)
{
    size_t len = 0;
    cJSON *msg = encode_long_string_at(__LINE__, 100 * 1024, 'x', &len);

    CHECK(msg != NULL);
    CHECK(len > 100 * 1024);
    cJSON_Delete(msg);
}

static void
test_update_output_over_128k(void)
{
    /*
     * The text of an update can be much larger than its frame: a control
     * character is one byte in the frame and six ("\u0001") in JSON.  40000
     * of them fit the default MAX_ENTRY_SIZE (65536) and make 240 KB of
     * text; MAX_ENTRY_SIZE may be raised to 4 MB, so a 1 MB plain string is
     * a valid frame too.  Both must be delivered, not dropped as
     * unencodable.
     */
    size_t len = 0;
    cJSON *msg = encode_long_string_at(__LINE__, 40000, '\x01', &len);

    CHECK(msg != NULL);
    CHECK(len > 240000);
    cJSON_Delete(msg);

    len = 0;
    msg = encode_long_string_at(__LINE__, 1024 * 1024, 'y', &len);
    CHECK(msg != NULL);
    CHECK(len > 1024 * 1024);
    cJSON_Delete(msg);
}

static void
test_update_nul_in_string(void)
{
    /*
     * cJSON cuts strings at a NUL, so a frame holding one would reach clients
     * as a different value (or two keys as one key twice).  The guarantee is
     * that no such frame reaches the encoder: frame_unpack refuses it.
     */
    struct built b;
    char err[256] = "";

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "outcome_name");
    pack_str(&b.pk, "Lakers\0 (void)", 14);
    CHECK(frame_unpack(b.sb.data, b.sb.size, &b.zone, &b.view, err, sizeof(err)) != 0);
    built_free(&b);

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 2);
    pack_str(&b.pk, "a\0x", 3);
    msgpack_pack_uint8(&b.pk, 1);
    pack_str(&b.pk, "a\0y", 3);
    msgpack_pack_uint8(&b.pk, 2);
    CHECK(frame_unpack(b.sb.data, b.sb.size, &b.zone, &b.view, err, sizeof(err)) != 0);
    built_free(&b);
}

static void
test_update_unrepresentable(void)
{
    /* frame_unpack refuses NaN, so only a hand-made view reaches the
     * encoder's own refusal; it must say why and leak nothing. */
    msgpack_object_kv kv[2];
    msgpack_object map;
    struct frame_view v;
    char err[256] = "";
    size_t len = 12345;

    memset(kv, 0, sizeof(kv));
    kv[0].key.type = MSGPACK_OBJECT_STR;
    kv[0].key.via.str.ptr = "ok";
    kv[0].key.via.str.size = 2;
    kv[0].val.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv[0].val.via.u64 = 1;
    kv[1].key.type = MSGPACK_OBJECT_STR;
    kv[1].key.via.str.ptr = "bad";
    kv[1].key.via.str.size = 3;
    kv[1].val.type = MSGPACK_OBJECT_FLOAT64;
    kv[1].val.via.f64 = NAN;
    memset(&map, 0, sizeof(map));
    map.type = MSGPACK_OBJECT_MAP;
    map.via.map.size = 2;
    map.via.map.ptr = kv;
    memset(&v, 0, sizeof(v));
    v.type = FRAME_ODDS_UPDATE;
    v.payload = &map;
    CHECK(encode_update(&v, NULL, NOW_MS, 16, &len, err, sizeof(err)) == NULL);
    CHECK(err[0] != '\0');
}

/* ---- encode_msgpack_to_json --------------------------------------------- */

/* A chain of n nested containers (alternating array and map) around nil:
 * the nil sits at depth n. */
static void
nest(msgpack_object *objs, msgpack_object_kv *kvs, int n)
{
    memset(objs, 0, (size_t)(n + 1) * sizeof(*objs));
    memset(kvs, 0, (size_t)n * sizeof(*kvs));
    objs[n].type = MSGPACK_OBJECT_NIL;
    /* Innermost first: a map holds its value by copy. */
    for (int i = n - 1; i >= 0; i--) {
        if (i % 2 == 0) {
            objs[i].type = MSGPACK_OBJECT_ARRAY;
            objs[i].via.array.size = 1;
            objs[i].via.array.ptr = &objs[i + 1];
        } else {
            kvs[i].key.type = MSGPACK_OBJECT_STR;
            kvs[i].key.via.str.ptr = "k";
            kvs[i].key.via.str.size = 1;
            kvs[i].val = objs[i + 1];
            objs[i].type = MSGPACK_OBJECT_MAP;
            objs[i].via.map.size = 1;
            objs[i].via.map.ptr = &kvs[i];
        }
    }
}

static int
json_depth(const cJSON *j)
{
    int d = 0;

    while (j != NULL && (cJSON_IsArray(j) || cJSON_IsObject(j))) {
        j = j->child;
        d++;
    }
    return j != NULL && cJSON_IsNull(j) ? d : -1;
}

static void
test_to_json_depth_limit(void)
{
    enum { MAX = FRAME_MAX_DEPTH + 4 };
    msgpack_object objs[MAX + 1];
    msgpack_object_kv kvs[MAX];
    cJSON *j;

    /* Depth FRAME_MAX_DEPTH is the deepest the frame format allows... */
    nest(objs, kvs, FRAME_MAX_DEPTH);
    j = encode_msgpack_to_json(&objs[0], 0);
    CHECK(j != NULL);
    CHECK_INT(json_depth(j), FRAME_MAX_DEPTH);
    cJSON_Delete(j);
    /* ...one more is refused, as a whole and without leaking the part
     * already converted. */
    nest(objs, kvs, FRAME_MAX_DEPTH + 1);
    CHECK(encode_msgpack_to_json(&objs[0], 0) == NULL);
    nest(objs, kvs, MAX);
    CHECK(encode_msgpack_to_json(&objs[0], 0) == NULL);
    /* The depth argument counts: a value converted at depth d may nest
     * FRAME_MAX_DEPTH - d more. */
    nest(objs, kvs, 2);
    j = encode_msgpack_to_json(&objs[0], FRAME_MAX_DEPTH - 2);
    CHECK(j != NULL);
    cJSON_Delete(j);
    CHECK(encode_msgpack_to_json(&objs[0], FRAME_MAX_DEPTH - 1) == NULL);
}

static void
test_to_json_refusals(void)
{
    msgpack_object bad[8], arr, wrap[2];
    msgpack_object_kv kv;
    int nbad = 0;
    cJSON *j;

    memset(bad, 0, sizeof(bad));
    bad[nbad].type = MSGPACK_OBJECT_FLOAT64;
    bad[nbad++].via.f64 = NAN;
    bad[nbad].type = MSGPACK_OBJECT_FLOAT64;
    bad[nbad++].via.f64 = INFINITY;
    bad[nbad].type = MSGPACK_OBJECT_FLOAT64;
    bad[nbad++].via.f64 = -INFINITY;
    bad[nbad].type = MSGPACK_OBJECT_FLOAT32;
    bad[nbad++].via.f64 = NAN;
    bad[nbad].type = MSGPACK_OBJECT_BIN;
    bad[nbad].via.bin.ptr = "ab";
    bad[nbad++].via.bin.size = 2;
    bad[nbad].type = MSGPACK_OBJECT_EXT;
    bad[nbad].via.ext.ptr = "ab";
    bad[nbad++].via.ext.size = 2;

    for (int i = 0; i < nbad; i++) {
        /* Alone, and after a good element inside an array (the partial
         * array must be freed: the leak checkers see it). */
        CHECK(encode_msgpack_to_json(&bad[i], 0) == NULL);
        memset(wrap, 0, sizeof(wrap));
        wrap[0].type = MSGPACK_OBJECT_BOOLEAN;
        wrap[0].via.boolean = true;
        wrap[1] = bad[i];
        memset(&arr, 0, sizeof(arr));
        arr.type = MSGPACK_OBJECT_ARRAY;
        arr.via.array.size = 2;
        arr.via.array.ptr = wrap;
        if (encode_msgpack_to_json(&arr, 0) != NULL) {
            printf("#   bad value %d accepted inside an array\n", i);
            test_failed_checks++;
        }
    }

    /* A map key that is not a string has no JSON form. */
    memset(&kv, 0, sizeof(kv));
    kv.key.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
    kv.key.via.u64 = 1;
    kv.val.type = MSGPACK_OBJECT_NIL;
    memset(&arr, 0, sizeof(arr));
    arr.type = MSGPACK_OBJECT_MAP;
    arr.via.map.size = 1;
    arr.via.map.ptr = &kv;
    CHECK(encode_msgpack_to_json(&arr, 0) == NULL);

    /* Finite doubles and float32 values are fine. */
    bad[0].type = MSGPACK_OBJECT_FLOAT32;
    bad[0].via.f64 = 0.25;
    j = encode_msgpack_to_json(&bad[0], 0);
    CHECK(j != NULL);
    if (j != NULL) {
        char *text = cJSON_PrintUnformatted(j);
        CHECK_STR(text, "0.25");
        free(text);
    }
    cJSON_Delete(j);
}

static void
test_to_json_long_keys_and_strings(void)
{
    /* Short strings and keys use a stack buffer, long ones the heap: check
     * both sides of each boundary. */
    static const size_t lens[] = {0, 1, 126, 127, 128, 129, 254, 255, 256, 257, 5000};
    enum { N = sizeof(lens) / sizeof(lens[0]) };
    msgpack_object_kv kv[N];
    msgpack_object map;
    char *keys[N], *vals[N];
    cJSON *j;

    for (int i = 0; i < N; i++) {
        keys[i] = malloc(lens[i] + 16);
        vals[i] = malloc(lens[i] + 1);
        memset(keys[i], 'a' + i, lens[i]);
        /* Make the keys distinct even at length 0 and 1. */
        snprintf(keys[i] + lens[i], 16, "#%d", i);
        memset(vals[i], 'A' + i, lens[i]);
        vals[i][lens[i]] = '\0';
        memset(&kv[i], 0, sizeof(kv[i]));
        kv[i].key.type = MSGPACK_OBJECT_STR;
        kv[i].key.via.str.ptr = keys[i];
        kv[i].key.via.str.size = (uint32_t)strlen(keys[i]);
        kv[i].val.type = MSGPACK_OBJECT_STR;
        kv[i].val.via.str.ptr = vals[i];
        kv[i].val.via.str.size = (uint32_t)lens[i];
    }
    memset(&map, 0, sizeof(map));
    map.type = MSGPACK_OBJECT_MAP;
    map.via.map.size = N;
    map.via.map.ptr = kv;
    j = encode_msgpack_to_json(&map, 0);
    CHECK(j != NULL);
    CHECK_INT(cJSON_GetArraySize(j), N);
    for (int i = 0; i < N; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, keys[i]);
        CHECK_STR(cJSON_GetStringValue(v), vals[i]);
        free(keys[i]);
        free(vals[i]);
    }
    cJSON_Delete(j);
}

/* ---- encode_message and encode_error ------------------------------------ */

static void
test_message_null_payload(void)
{
    size_t len = 0;
    char *buf = encode_message("unsubscribed", NULL, NOW_MS, 16, &len);
    cJSON *msg = CHECK_MESSAGE(buf, 16, len, "unsubscribed", "2025-11-07T12:34:56.123Z");

    CHECK_PAYLOAD(msg, "{}");
    cJSON_Delete(msg);
    free(buf);
}

static void
test_message_payload_consumed(void)
{
    /* The payload belongs to encode_message from the call on: the leak
     * checkers and ASan see a missing or a double free. */
    cJSON *p = cJSON_CreateObject();
    size_t len = 0;
    char *buf;
    cJSON *msg;

    cJSON_AddStringToObject(p, "client_id", "c-1");
    cJSON_AddNumberToObject(p, "messages_sent", 1234);
    cJSON_AddNumberToObject(p, "buffer_utilization", 12.5);
    buf = encode_message("heartbeat", p, NOW_MS, 0, &len);
    msg = CHECK_MESSAGE(buf, 0, len, "heartbeat", "2025-11-07T12:34:56.123Z");
    CHECK_PAYLOAD(msg,
                  "{\"client_id\":\"c-1\",\"messages_sent\":1234,\"buffer_utilization\":12.5}");
    cJSON_Delete(msg);
    free(buf);
}

static void
test_message_large_payload(void)
{
    /* A "subscribed" reply echoes the filter in force, which is as large as
     * the subscribe that set it: up to MAX_MESSAGE_SIZE (16 MB at most) within
     * the filter limits.  Here 1024 values of 100 bytes, about 100 KB; the
     * reply must not be dropped because its text outgrew a fixed bound. */
    cJSON *p = cJSON_CreateObject();
    cJSON *arr = cJSON_AddArrayToObject(p, "events");
    char v[101];
    size_t len = 0;
    char *buf;
    cJSON *msg;

    for (int i = 0; i < 1024; i++) {
        memset(v, 'e', 100);
        snprintf(v, sizeof(v), "%04d", i);
        v[4] = 'e';
        v[100] = '\0';
        cJSON_AddItemToArray(arr, cJSON_CreateString(v));
    }
    buf = encode_message("subscribed", p, NOW_MS, 16, &len);
    msg = CHECK_MESSAGE(buf, 16, len, "subscribed", "2025-11-07T12:34:56.123Z");
    if (msg != NULL) {
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(msg, "payload"), "events");
        CHECK_INT(cJSON_GetArraySize(e), 1024);
        CHECK(len > 1024 * 100);
    }
    cJSON_Delete(msg);
    free(buf);
}

static void
test_error_message(void)
{
    size_t len = 0;
    char *buf =
        encode_error("invalid_filter", "sports must be a list of strings", NOW_MS, 16, &len);
    cJSON *msg = CHECK_MESSAGE(buf, 16, len, "error", "2025-11-07T12:34:56.123Z");

    CHECK_PAYLOAD(msg, "{\"code\":\"invalid_filter\","
                       "\"message\":\"sports must be a list of strings\"}");
    CHECK_INT(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(msg, "payload")), 2);
    cJSON_Delete(msg);
    free(buf);

    /* A reason quoting client input (an unknown type) is escaped. */
    buf = encode_error("invalid_message", "unknown type \"a\\b\n\"", NOW_MS, 0, &len);
    msg = CHECK_MESSAGE(buf, 0, len, "error", "2025-11-07T12:34:56.123Z");
    CHECK_PAYLOAD(msg,
                  "{\"code\":\"invalid_message\",\"message\":\"unknown type \\\"a\\\\b\\n\\\"\"}");
    cJSON_Delete(msg);
    free(buf);
}

/* ---- origin, snapshot items and parts -------------------------------------- */

static void
test_update_with_origin(void)
{
    struct built b;
    struct encode_origin origin = {"odds.normalized.basketball_nba", "1764750000000-7", 0};
    char err[128];
    size_t len = 0;
    char *buf;
    cJSON *root;

    built_begin(&b, FRAME_ODDS_UPDATE);
    msgpack_pack_map(&b.pk, 1);
    pack_cstr(&b.pk, "event_id");
    pack_cstr(&b.pk, "e1");
    if (built_end(&b) == 0) {
        buf = encode_update(&b.view, &origin, NOW_MS, 16, &len, err, sizeof(err));
        CHECK(buf != NULL);
        root = buf ? cJSON_Parse(buf + 16) : NULL;
        CHECK(root != NULL);
        if (root != NULL) {
            CHECK_INT(cJSON_GetArraySize(root), 5);
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "stream")),
                      "odds.normalized.basketball_nba");
            CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, "id")),
                      "1764750000000-7");
            CHECK_PAYLOAD(root, "{\"event_id\":\"e1\"}");
        }
        cJSON_Delete(root);
        free(buf);
    }
    built_free(&b);
}

static void
test_item_adds_stream_and_id(void)
{
    struct built b;
    struct encode_origin origin = {"opportunities", "5-0", 0};
    char err[128];
    size_t len = 0;
    char *text;
    cJSON *item, *want;

    built_begin(&b, FRAME_OPPORTUNITY);
    msgpack_pack_map(&b.pk, 3);
    pack_cstr(&b.pk, "event_id");
    pack_cstr(&b.pk, "e\"1");
    pack_cstr(&b.pk, "id");
    pack_cstr(&b.pk, "the payload's own id");
    pack_cstr(&b.pk, "edge");
    msgpack_pack_double(&b.pk, 0.1);
    if (built_end(&b) == 0) {
        text = encode_item(&b.view, &origin, &len, err, sizeof(err));
        CHECK(text != NULL);
        item = text ? cJSON_Parse(text) : NULL;
        want = cJSON_Parse("{\"event_id\":\"e\\\"1\",\"edge\":0.1,\"stream\":\"opportunities\","
                           "\"id\":\"5-0\"}");
        CHECK(item != NULL && want != NULL && cJSON_Compare(item, want, 1));
        if (text != NULL)
            CHECK_INT(strlen(text), len);
        cJSON_Delete(item);
        cJSON_Delete(want);
        free(text);
    }
    built_free(&b);
}

static void
test_snapshot_part(void)
{
    char *items[2] = {"{\"a\":1}", "{\"b\":\"x\"}"};
    size_t lens[2] = {7, 9};
    const char *pos = "{\"s1\":\"1-0\"}";
    size_t len = 0;
    char *buf = encode_snapshot_part("ep\"och", pos, strlen(pos), items, lens, 2, 0, NULL, NOW_MS,
                                     16, &len);
    cJSON *msg = CHECK_MESSAGE(buf, 16, len, "snapshot", "2025-11-07T12:34:56.123Z");

    CHECK_PAYLOAD(msg, "{\"epoch\":\"ep\\\"och\",\"positions\":{\"s1\":\"1-0\"},"
                       "\"items\":[{\"a\":1},{\"b\":\"x\"}],\"last\":false}");
    cJSON_Delete(msg);
    free(buf);
    /* No items, last, with a reason. */
    buf = encode_snapshot_part("e", "{}", 2, NULL, NULL, 0, 1, "lapped", NOW_MS, 0, &len);
    msg = CHECK_MESSAGE(buf, 0, len, "snapshot", "2025-11-07T12:34:56.123Z");
    CHECK_PAYLOAD(msg, "{\"epoch\":\"e\",\"positions\":{},\"items\":[],\"last\":true,"
                       "\"reason\":\"lapped\"}");
    cJSON_Delete(msg);
    free(buf);
}

TEST_MAIN(TEST(test_update_seed_example), TEST(test_update_opportunity),
          TEST(test_update_empty_payload), TEST(test_update_timestamps),
          TEST(test_update_strings_escaped), TEST(test_update_numbers),
          TEST(test_update_numbers_full_precision), TEST(test_update_nested_values),
          TEST(test_update_headroom), TEST(test_update_large_payload),
          TEST(test_update_output_over_128k), TEST(test_update_nul_in_string),
          TEST(test_update_unrepresentable), TEST(test_to_json_depth_limit),
          TEST(test_to_json_refusals), TEST(test_to_json_long_keys_and_strings),
          TEST(test_message_null_payload), TEST(test_message_payload_consumed),
          TEST(test_message_large_payload), TEST(test_error_message), TEST(test_update_with_origin),
          TEST(test_item_adds_stream_and_id), TEST(test_snapshot_part))
