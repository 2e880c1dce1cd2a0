/*
 * test_decode: Redis stream entry -> ring frame.  Every case decodes an
 * entry, unpacks the result with frame_unpack (what a worker does) and
 * inspects the payload map: key order, types and values are what clients
 * receive, so they are checked exactly, not just "it decoded".
 */
#include "common/decode.h"

#include <math.h>

#include "test.h"
#include "../seed_fields.h"

#define ENTRY_MAX 300

struct entry {
    size_t n;
    const char *names[ENTRY_MAX];
    size_t name_lens[ENTRY_MAX];
    const char *values[ENTRY_MAX];
    size_t value_lens[ENTRY_MAX];
};

static void
entry_add_n(struct entry *e, const char *name, size_t nlen, const char *value, size_t vlen)
{
    if (e->n >= ENTRY_MAX) {
        CHECK(e->n < ENTRY_MAX);
        return;
    }
    e->names[e->n] = name;
    e->name_lens[e->n] = nlen;
    e->values[e->n] = value;
    e->value_lens[e->n] = vlen;
    e->n++;
}

static void
entry_add(struct entry *e, const char *name, const char *value)
{
    entry_add_n(e, name, strlen(name), value, strlen(value));
}

static struct decode_input
entry_input(const struct entry *e, enum frame_type type, const char *stream_sport)
{
    struct decode_input in = {type,         stream_sport, e->n,         e->names,
                              e->name_lens, e->values,    e->value_lens};
    return in;
}

/* One decode plus the worker's unpack of its output. */
struct decoded {
    msgpack_sbuffer sb;
    msgpack_zone zone;
    struct frame_view v;
    char err[256];
    int rc;        /* decode_entry */
    int unpack_rc; /* frame_unpack, when rc == 0 */
    char unpack_err[256];
};

#define BIG_MAX (1u << 20)

static void
decoded_run(struct decoded *d, const struct entry *e, enum frame_type type, const char *sport,
            uint32_t max_size)
{
    struct decode_input in = entry_input(e, type, sport);

    msgpack_sbuffer_init(&d->sb);
    msgpack_zone_init(&d->zone, 2048);
    d->err[0] = '\0';
    d->unpack_err[0] = '\0';
    d->unpack_rc = -1;
    d->rc = decode_entry(&in, max_size, &d->sb, d->err, sizeof(d->err));
    if (d->rc == 0)
        d->unpack_rc = frame_unpack(d->sb.data, d->sb.size, &d->zone, &d->v, d->unpack_err,
                                    sizeof(d->unpack_err));
}

static void
decoded_free(struct decoded *d)
{
    msgpack_zone_destroy(&d->zone);
    msgpack_sbuffer_destroy(&d->sb);
}

/* Decoded and unpacked; the caller may inspect d->v. */
#define CHECK_DECODED(d)                                                                           \
    do {                                                                                           \
        CHECK_STR((d)->rc == 0 ? "" : (d)->err, "");                                               \
        CHECK_INT((d)->rc, 0);                                                                     \
        CHECK_STR((d)->unpack_rc == 0 ? "" : (d)->unpack_err, "");                                 \
        CHECK_INT((d)->unpack_rc, 0);                                                              \
    } while (0)

/* Refused with a reason, and nothing left in the output buffer. */
#define CHECK_REFUSED(d)                                                                           \
    do {                                                                                           \
        CHECK_INT((d)->rc, -1);                                                                    \
        CHECK((d)->err[0] != '\0');                                                                \
        CHECK_INT((d)->sb.size, 0);                                                                \
    } while (0)

static int
ok(const struct decoded *d)
{
    return d->rc == 0 && d->unpack_rc == 0;
}

static int
obj_str_eq(const msgpack_object *o, const char *s)
{
    size_t len = strlen(s);

    return o != NULL && o->type == MSGPACK_OBJECT_STR && o->via.str.size == len &&
           memcmp(o->via.str.ptr, s, len) == 0;
}

static int
obj_double_eq(const msgpack_object *o, double want)
{
    return o != NULL && o->type == MSGPACK_OBJECT_FLOAT64 && o->via.f64 == want;
}

static int
obj_nil(const msgpack_object *o)
{
    return o != NULL && o->type == MSGPACK_OBJECT_NIL;
}

static int
key_eq(const struct frame_key_ref *k, const char *s)
{
    size_t len = strlen(s);

    return k->ptr != NULL && k->len == len && memcmp(k->ptr, s, len) == 0;
}

static uint32_t
payload_size(const struct decoded *d)
{
    return d->v.payload->via.map.size;
}

/* Position of key in the payload map, -1 if absent. */
static int
payload_index(const struct decoded *d, const char *key)
{
    for (uint32_t i = 0; i < d->v.payload->via.map.size; i++) {
        if (obj_str_eq(&d->v.payload->via.map.ptr[i].key, key))
            return (int)i;
    }
    return -1;
}

static const msgpack_object *
payload_get(const struct decoded *d, const char *key)
{
    int i = payload_index(d, key);

    return i < 0 ? NULL : &d->v.payload->via.map.ptr[i].val;
}

/* The payload's keys must be exactly want[0..n), in that order. */
static void
check_payload_keys(const struct decoded *d, const char *const *want, size_t n)
{
    CHECK_INT(payload_size(d), n);
    for (size_t i = 0; i < n && i < payload_size(d); i++) {
        const msgpack_object *k = &d->v.payload->via.map.ptr[i].key;
        if (!obj_str_eq(k, want[i])) {
            printf("#   payload key %zu: want \"%s\", got \"%.*s\"\n", i, want[i],
                   k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size : 0,
                   k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "");
            CHECK(0);
        }
    }
}

/* The seed's fields in the seed's order (README "Streams in"). */
static const char *const seed_fields[] = {SEED_FIELD_NAMES};
#define NSEED (sizeof(seed_fields) / sizeof(seed_fields[0]))

static void
test_flat_full_entry(void)
{
    static const char *const want[] = {SEED_FIELD_NAMES, "source", "zeta", "alpha"};
    struct entry e = {0};
    struct decoded d;

    /* Shuffled, with extras before, between and after the seed fields. */
    entry_add(&e, "source", "feed-a");
    entry_add(&e, "price", "-110");
    entry_add(&e, "book_key", "fanduel");
    entry_add(&e, "edge", "0.031");
    entry_add(&e, "zeta", "1");
    entry_add(&e, "normalized_at", "2025-11-07T12:34:56.123Z");
    entry_add(&e, "market_key", "h2h");
    entry_add(&e, "event_id", "evt-1");
    entry_add(&e, "outcome_name", "Boston Celtics");
    entry_add(&e, "point", "2.5");
    entry_add(&e, "decimal_odds", "1.909");
    entry_add(&e, "implied_probability", "0.5238");
    entry_add(&e, "novig_probability", "0.51");
    entry_add(&e, "fair_price", "-104");
    entry_add(&e, "sport_key", "soccer_epl");
    entry_add(&e, "alpha", "x");

    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK_INT(d.v.type, FRAME_ODDS_UPDATE);
        /* The entry's own sport_key wins over the stream's sport. */
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "soccer_epl"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_EVENT], "evt-1"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_MARKET], "h2h"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_BOOK], "fanduel"));
        check_payload_keys(&d, want, sizeof(want) / sizeof(want[0]));
        CHECK(obj_str_eq(payload_get(&d, "event_id"), "evt-1"));
        CHECK(obj_str_eq(payload_get(&d, "sport_key"), "soccer_epl"));
        CHECK(obj_str_eq(payload_get(&d, "market_key"), "h2h"));
        CHECK(obj_str_eq(payload_get(&d, "book_key"), "fanduel"));
        CHECK(obj_str_eq(payload_get(&d, "outcome_name"), "Boston Celtics"));
        CHECK(obj_double_eq(payload_get(&d, "price"), -110.0));
        CHECK(obj_double_eq(payload_get(&d, "point"), 2.5));
        CHECK(obj_double_eq(payload_get(&d, "decimal_odds"), 1.909));
        CHECK(obj_double_eq(payload_get(&d, "implied_probability"), 0.5238));
        CHECK(obj_double_eq(payload_get(&d, "novig_probability"), 0.51));
        CHECK(obj_double_eq(payload_get(&d, "fair_price"), -104.0));
        CHECK(obj_double_eq(payload_get(&d, "edge"), 0.031));
        /* normalized_at is text, and extras stay text even when numeric. */
        CHECK(obj_str_eq(payload_get(&d, "normalized_at"), "2025-11-07T12:34:56.123Z"));
        CHECK(obj_str_eq(payload_get(&d, "source"), "feed-a"));
        CHECK(obj_str_eq(payload_get(&d, "zeta"), "1"));
        CHECK(obj_str_eq(payload_get(&d, "alpha"), "x"));
    }
    decoded_free(&d);
}

static void
test_flat_numbers(void)
{
    static const struct {
        const char *text;
        double want;
    } cases[] = {
        {"-110", -110.0}, {"2.5", 2.5},     {"+3", 3.0},         {".5", 0.5},
        {"1e3", 1000.0},  {"-0.25", -0.25}, {"0", 0.0},          {"1.909", 1.909},
        {"1E-2", 0.01},   {"150", 150.0},   {"-1.5e+2", -150.0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct entry e = {0};
        struct decoded d;

        entry_add(&e, "event_id", "e1");
        entry_add(&e, "price", cases[i].text);
        decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        if (ok(&d) && !obj_double_eq(payload_get(&d, "price"), cases[i].want)) {
            printf("#   price '%s' did not decode to %g\n", cases[i].text, cases[i].want);
            CHECK(0);
        }
        decoded_free(&d);
    }
}

static void
test_flat_nil_and_text(void)
{
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "event_id", "e1");
    entry_add(&e, "price", "");
    entry_add(&e, "point", "null");
    /* Only numeric fields treat these as absent: text fields keep them. */
    entry_add(&e, "outcome_name", "null");
    entry_add(&e, "market_key", "");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        /* All seed fields are present even when the entry lacks them. */
        check_payload_keys(&d, seed_fields, NSEED);
        CHECK(obj_nil(payload_get(&d, "price")));
        CHECK(obj_nil(payload_get(&d, "point")));
        CHECK(obj_nil(payload_get(&d, "decimal_odds")));
        CHECK(obj_nil(payload_get(&d, "edge")));
        CHECK(obj_nil(payload_get(&d, "book_key")));
        CHECK(obj_nil(payload_get(&d, "normalized_at")));
        CHECK(obj_str_eq(payload_get(&d, "outcome_name"), "null"));
        CHECK(obj_str_eq(payload_get(&d, "market_key"), ""));
        /* An absent book is nil (matches any filter); an empty market is a value. */
        CHECK(d.v.keys[FRAME_KEY_BOOK].ptr == NULL);
        CHECK(d.v.keys[FRAME_KEY_MARKET].ptr != NULL);
        CHECK_INT(d.v.keys[FRAME_KEY_MARKET].len, 0);
    }
    decoded_free(&d);
}

static void
test_flat_bad_numbers(void)
{
    static const char *const bad[] = {"abc",  "nan",      "NaN",   "-nan",   "inf",   "-inf",
                                      "+inf", "Infinity", "1e999", "-1e999", "0x10",  "0X1p3",
                                      " 5",   "5 ",       "1,5",   "--1",    "1.2.3", ".",
                                      "-",    "1e",       "5abc",  "\t5"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct entry e = {0};
        struct decoded d;

        entry_add(&e, "event_id", "e1");
        entry_add(&e, "edge", bad[i]);
        decoded_run(&d, &e, FRAME_OPPORTUNITY, NULL, BIG_MAX);
        if (d.rc != -1)
            printf("#   edge '%s' was accepted\n", bad[i]);
        CHECK_REFUSED(&d);
        /* The reason names the field, so the log line can be acted on. */
        CHECK(strstr(d.err, "edge") != NULL);
        decoded_free(&d);
    }

    /* A value with an embedded NUL is not a number either ("5\0" is not 5). */
    {
        struct entry e = {0};
        struct decoded d;

        entry_add(&e, "event_id", "e1");
        entry_add_n(&e, "price", 5, "5\0", 2);
        decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_REFUSED(&d);
        decoded_free(&d);
    }
}

static void
test_flat_event_id_digits(void)
{
    struct entry e = {0};
    struct decoded d;

    /* Event ids are opaque: "00123" must not become the number 123. */
    entry_add(&e, "event_id", "00123");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(obj_str_eq(payload_get(&d, "event_id"), "00123"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_EVENT], "00123"));
    }
    decoded_free(&d);
}

static void
test_flat_sport_from_stream(void)
{
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "event_id", "e1");
    entry_add(&e, "book_key", "dk");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "basketball_nba"));
        check_payload_keys(&d, seed_fields, NSEED);
        CHECK_INT(payload_index(&d, "sport_key"), 1);
        CHECK(obj_str_eq(payload_get(&d, "sport_key"), "basketball_nba"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_BOOK], "dk"));
        CHECK(d.v.keys[FRAME_KEY_MARKET].ptr == NULL);
    }
    decoded_free(&d);
}

static void
test_flat_opportunity_without_sport(void)
{
    static const char *const want[] = {"event_id",
                                       "market_key",
                                       "book_key",
                                       "outcome_name",
                                       "price",
                                       "point",
                                       "decimal_odds",
                                       "implied_probability",
                                       "novig_probability",
                                       "fair_price",
                                       "edge",
                                       "normalized_at",
                                       "kind"};
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "kind", "arb");
    entry_add(&e, "event_id", "e9");
    entry_add(&e, "edge", "0.02");
    decoded_run(&d, &e, FRAME_OPPORTUNITY, NULL, BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK_INT(d.v.type, FRAME_OPPORTUNITY);
        CHECK(d.v.keys[FRAME_KEY_SPORT].ptr == NULL);
        CHECK_INT(payload_index(&d, "sport_key"), -1);
        check_payload_keys(&d, want, sizeof(want) / sizeof(want[0]));
        CHECK(obj_double_eq(payload_get(&d, "edge"), 0.02));
        CHECK(obj_str_eq(payload_get(&d, "kind"), "arb"));
    }
    decoded_free(&d);

    /* With its own sport_key an opportunity carries it like an odds entry. */
    memset(&e, 0, sizeof(e));
    entry_add(&e, "sport_key", "tennis_atp");
    entry_add(&e, "event_id", "e9");
    decoded_run(&d, &e, FRAME_OPPORTUNITY, NULL, BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "tennis_atp"));
        check_payload_keys(&d, seed_fields, NSEED);
        CHECK(obj_str_eq(payload_get(&d, "sport_key"), "tennis_atp"));
    }
    decoded_free(&d);
}

static void
test_flat_duplicate_field(void)
{
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "price", "1");
    entry_add(&e, "event_id", "e1");
    entry_add(&e, "price", "2");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "price") != NULL);
    decoded_free(&d);

    memset(&e, 0, sizeof(e));
    entry_add(&e, "x", "1");
    entry_add(&e, "x", "1");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);

    /* Same prefix, different length: not a duplicate. */
    memset(&e, 0, sizeof(e));
    entry_add(&e, "x", "1");
    entry_add(&e, "xx", "2");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    decoded_free(&d);
}

static void
test_flat_invalid_utf8(void)
{
    static const char *const bad[] = {"\xff", "Caf\xc3", "\xed\xa0\x80", "\xc0\xaf"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct entry e = {0};
        struct decoded d;

        /* In a seed text field ... */
        entry_add(&e, "event_id", "e1");
        entry_add(&e, "outcome_name", bad[i]);
        decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_REFUSED(&d);
        decoded_free(&d);

        /* ... in an extra field ... */
        memset(&e, 0, sizeof(e));
        entry_add(&e, "event_id", "e1");
        entry_add(&e, "note", bad[i]);
        decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_REFUSED(&d);
        decoded_free(&d);

        /* ... and as a field name. */
        memset(&e, 0, sizeof(e));
        entry_add(&e, "event_id", "e1");
        entry_add(&e, bad[i], "v");
        decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_REFUSED(&d);
        decoded_free(&d);
    }
}

static void
test_flat_field_names(void)
{
    char name[DECODE_MAX_FIELD_NAME + 2];
    struct entry e = {0};
    struct decoded d;

    /* Empty name. */
    entry_add(&e, "event_id", "e1");
    entry_add(&e, "", "v");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);

    /* A NUL inside a name would cut it short in C and in JSON keys. */
    memset(&e, 0, sizeof(e));
    entry_add_n(&e, "a\0b", 3, "v", 1);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);

    /* DECODE_MAX_FIELD_NAME bytes is the longest name allowed. */
    memset(name, 'n', sizeof(name));
    name[DECODE_MAX_FIELD_NAME] = '\0';
    memset(&e, 0, sizeof(e));
    entry_add(&e, name, "v");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK(obj_str_eq(payload_get(&d, name), "v"));
    decoded_free(&d);

    name[DECODE_MAX_FIELD_NAME] = 'n';
    name[DECODE_MAX_FIELD_NAME + 1] = '\0';
    memset(&e, 0, sizeof(e));
    entry_add(&e, name, "v");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
}

static void
test_flat_field_count(void)
{
    static char names[DECODE_MAX_FIELDS + 1][16];
    struct entry e = {0};
    struct decoded d;

    for (int i = 0; i <= DECODE_MAX_FIELDS; i++)
        snprintf(names[i], sizeof(names[i]), "f%d", i);

    for (int i = 0; i < DECODE_MAX_FIELDS; i++)
        entry_add(&e, names[i], "v");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        /* Seed fields first (sport_key from the stream), then all extras. */
        CHECK_INT(payload_size(&d), NSEED + DECODE_MAX_FIELDS);
        CHECK_INT(payload_index(&d, "f0"), NSEED);
        CHECK_INT(payload_index(&d, "f255"), NSEED + DECODE_MAX_FIELDS - 1);
    }
    decoded_free(&d);

    entry_add(&e, names[DECODE_MAX_FIELDS], "v");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
}

static void
test_flat_embedded_nul_value(void)
{
    struct entry e = {0};
    struct decoded d;
    const msgpack_object *o;

    /* The workers' JSON library would cut the value at the NUL and deliver
     * something else than was published: the entry is refused instead. */
    entry_add(&e, "event_id", "e1");
    entry_add_n(&e, "outcome_name", 12, "a\0b", 3);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "NUL") != NULL);
    (void)o;
    decoded_free(&d);
}

static void
test_no_fields(void)
{
    struct entry e = {0};
    struct decoded d;

    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
}

static void
test_max_size(void)
{
    struct entry e = {0};
    struct decoded d;
    size_t full;

    entry_add(&e, "event_id", "e1");
    entry_add(&e, "outcome_name", "Boston Celtics");
    entry_add(&e, "price", "-110");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    full = d.sb.size;
    decoded_free(&d);

    /* The bound is inclusive: a frame of exactly max_size bytes is fine. */
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", (uint32_t)full);
    CHECK_DECODED(&d);
    CHECK_INT(d.sb.size, full);
    decoded_free(&d);

    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", (uint32_t)full - 1);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "MAX_ENTRY_SIZE") != NULL);
    decoded_free(&d);
}

static void
test_output_cleared(void)
{
    struct entry e = {0};
    struct decode_input in;
    msgpack_sbuffer sb;
    msgpack_zone zone;
    struct frame_view v;
    char err[256];
    size_t fresh;

    entry_add(&e, "event_id", "e1");
    in = entry_input(&e, FRAME_ODDS_UPDATE, "basketball_nba");
    msgpack_sbuffer_init(&sb);
    CHECK_INT(decode_entry(&in, BIG_MAX, &sb, err, sizeof(err)), 0);
    fresh = sb.size;

    /* The ingest reuses one buffer; leftovers of the previous entry must not
     * stay in front of the next frame. */
    msgpack_sbuffer_clear(&sb);
    msgpack_sbuffer_write(&sb, "leftover", 8);
    CHECK_INT(decode_entry(&in, BIG_MAX, &sb, err, sizeof(err)), 0);
    CHECK_INT(sb.size, fresh);
    msgpack_zone_init(&zone, 2048);
    CHECK_INT(frame_unpack(sb.data, sb.size, &zone, &v, err, sizeof(err)), 0);
    msgpack_zone_destroy(&zone);

    /* A failure leaves the buffer empty even if it held a frame. */
    entry_add(&e, "event_id", "again");
    in = entry_input(&e, FRAME_ODDS_UPDATE, "basketball_nba");
    CHECK_INT(decode_entry(&in, BIG_MAX, &sb, err, sizeof(err)), -1);
    CHECK_INT(sb.size, 0);
    msgpack_sbuffer_destroy(&sb);
}

static void
test_error_quotes_only_given_bytes(void)
{
    /* Names and values come with lengths (hiredis gives NUL-terminated
     * strings, a fuzzer hands out slices of one buffer).  An error message
     * must quote the field, not whatever follows it in memory. */
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "event_id", "e1");
    entry_add_n(&e, "price", 5, "abcSECRET", 3);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "abc") != NULL);
    if (strstr(d.err, "SECRET") != NULL) {
        printf("#   err: %s\n", d.err);
        CHECK(strstr(d.err, "SECRET") == NULL);
    }
    decoded_free(&d);

    memset(&e, 0, sizeof(e));
    entry_add_n(&e, "noteSECRET", 4, "1", 1);
    entry_add_n(&e, "noteSECRET", 4, "2", 1);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "note") != NULL);
    if (strstr(d.err, "SECRET") != NULL) {
        printf("#   err: %s\n", d.err);
        CHECK(strstr(d.err, "SECRET") == NULL);
    }
    decoded_free(&d);

    memset(&e, 0, sizeof(e));
    entry_add_n(&e, "noteSECRET", 4, "\xff", 1);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    if (strstr(d.err, "SECRET") != NULL) {
        printf("#   err: %s\n", d.err);
        CHECK(strstr(d.err, "SECRET") == NULL);
    }
    decoded_free(&d);
}

/* JSON mode: the one field `name` holds json. */
static void
json_run(struct decoded *d, const char *name, const char *json, enum frame_type type,
         const char *sport, uint32_t max_size)
{
    struct entry e = {0};

    entry_add(&e, name, json);
    decoded_run(d, &e, type, sport, max_size);
}

static void
test_json_object(void)
{
    static const char *const want[] = {"event_id", "sport_key", "market_key", "book_key", "price",
                                       "live",     "note",      "tags",       "meta"};
    static const char *const fields[] = {"data", "payload"};

    for (size_t f = 0; f < 2; f++) {
        struct decoded d;
        const msgpack_object *o;

        json_run(&d, fields[f],
                 "{\"event_id\":\"e1\",\"sport_key\":\"soccer_epl\",\"market_key\":\"h2h\","
                 "\"book_key\":\"fd\",\"price\":-110,\"live\":true,\"note\":null,"
                 "\"tags\":[\"a\",1.5,false],\"meta\":{\"k\":\"v\\u00e9\"}}",
                 FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        if (!ok(&d)) {
            decoded_free(&d);
            continue;
        }
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "soccer_epl"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_EVENT], "e1"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_MARKET], "h2h"));
        CHECK(key_eq(&d.v.keys[FRAME_KEY_BOOK], "fd"));
        /* Passed on as is: the JSON's keys in the JSON's order, nothing added. */
        check_payload_keys(&d, want, sizeof(want) / sizeof(want[0]));
        CHECK(obj_double_eq(payload_get(&d, "price"), -110.0));
        o = payload_get(&d, "live");
        CHECK(o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean);
        CHECK(obj_nil(payload_get(&d, "note")));
        o = payload_get(&d, "tags");
        CHECK(o != NULL && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3);
        if (o != NULL && o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 3) {
            CHECK(obj_str_eq(&o->via.array.ptr[0], "a"));
            CHECK(obj_double_eq(&o->via.array.ptr[1], 1.5));
            CHECK_INT(o->via.array.ptr[2].type, MSGPACK_OBJECT_BOOLEAN);
            CHECK_INT(o->via.array.ptr[2].via.boolean, 0);
        }
        o = payload_get(&d, "meta");
        CHECK(o != NULL && o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 1);
        if (o != NULL && o->type == MSGPACK_OBJECT_MAP && o->via.map.size == 1) {
            CHECK(obj_str_eq(&o->via.map.ptr[0].key, "k"));
            CHECK(obj_str_eq(&o->via.map.ptr[0].val, "v\xc3\xa9"));
        }
        decoded_free(&d);
    }
}

static void
test_json_numeric_event_id(void)
{
    static const struct {
        const char *json;
        const char *want; /* NULL: no event filter key */
    } cases[] = {
        {"{\"event_id\":123}", "123"},     {"{\"event_id\":-7}", "-7"},
        {"{\"event_id\":4.0}", "4"},       {"{\"event_id\":1.5}", NULL},
        {"{\"event_id\":1e20}", NULL}, /* past 2^53: not an exact integer */
        {"{\"event_id\":true}", NULL},     {"{\"event_id\":null}", NULL},
        {"{\"event_id\":\"123\"}", "123"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct decoded d;

        json_run(&d, "data", cases[i].json, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        if (ok(&d)) {
            int good = cases[i].want == NULL ? d.v.keys[FRAME_KEY_EVENT].ptr == NULL
                                             : key_eq(&d.v.keys[FRAME_KEY_EVENT], cases[i].want);
            if (!good) {
                printf("#   %s: event key \"%.*s\", want %s\n", cases[i].json,
                       (int)d.v.keys[FRAME_KEY_EVENT].len,
                       d.v.keys[FRAME_KEY_EVENT].ptr ? d.v.keys[FRAME_KEY_EVENT].ptr : "(nil)",
                       cases[i].want ? cases[i].want : "nil");
                CHECK(0);
            }
        }
        decoded_free(&d);
    }

    /* The payload keeps the number a number. */
    {
        struct decoded d;

        json_run(&d, "data", "{\"event_id\":123}", FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        if (ok(&d))
            CHECK(obj_double_eq(payload_get(&d, "event_id"), 123.0));
        decoded_free(&d);
    }
}

static void
test_json_sport_from_stream(void)
{
    struct decoded d;

    json_run(&d, "data", "{\"event_id\":\"e1\",\"price\":2}", FRAME_ODDS_UPDATE, "basketball_nba",
             BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        /* The stream's sport is for filtering only: the payload is as sent. */
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "basketball_nba"));
        CHECK_INT(payload_size(&d), 2);
        CHECK_INT(payload_index(&d, "sport_key"), -1);
        CHECK(d.v.keys[FRAME_KEY_MARKET].ptr == NULL);
        CHECK(d.v.keys[FRAME_KEY_BOOK].ptr == NULL);
    }
    decoded_free(&d);

    json_run(&d, "payload", "{\"edge\":0.5}", FRAME_OPPORTUNITY, NULL, BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK_INT(d.v.type, FRAME_OPPORTUNITY);
        CHECK(d.v.keys[FRAME_KEY_SPORT].ptr == NULL);
        CHECK(d.v.keys[FRAME_KEY_EVENT].ptr == NULL);
        CHECK_INT(payload_size(&d), 1);
        CHECK(obj_double_eq(payload_get(&d, "edge"), 0.5));
    }
    decoded_free(&d);

    json_run(&d, "data", "{}", FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK_INT(payload_size(&d), 0);
    decoded_free(&d);
}

static void
test_json_refused(void)
{
    static const char *const bad[] = {
        "[1,2]",
        "\"text\"",
        "5",
        "null",
        "true",
        "",
        "{",
        "{\"a\":}",
        "{a:1}",
        "{\"a\":1,}",
        "{\"a\":1e999}",
        "{\"a\":-1e999}",
        "{\"a\":[1,2,1e999]}",
        "{\"a\":{\"b\":1e400}}",
        "{\"\xff\":1}",
        "{\"a\":\"\xff\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":[\"ok\",\"\xc0\xaf\"]}",
        "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00x\"}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct decoded d;

        json_run(&d, "data", bad[i], FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        if (d.rc != -1)
            printf("#   data '%s' was accepted\n", bad[i]);
        CHECK_REFUSED(&d);
        decoded_free(&d);
    }
}

static void
test_json_trailing_garbage(void)
{
    /* The field must hold one JSON object; a second one or junk after it is
     * not valid JSON and would otherwise be silently dropped. */
    static const char *const bad[] = {"{\"a\":1}x", "{\"a\":1}{\"b\":2}", "{\"a\":1}}"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct decoded d;

        json_run(&d, "data", bad[i], FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        if (d.rc != -1)
            printf("#   data '%s' was accepted\n", bad[i]);
        CHECK_REFUSED(&d);
        decoded_free(&d);
    }

    /* Surrounding whitespace is fine. */
    {
        struct decoded d;

        json_run(&d, "data", " {\"a\":1}\n", FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        decoded_free(&d);
    }
}

static void
test_json_length_honoured(void)
{
    /* Only value_len bytes are JSON: what follows in memory is not read. */
    struct entry e = {0};
    struct decoded d;

    entry_add_n(&e, "data", 4, "{\"a\":1}{\"b\":", 7);
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK_INT(payload_size(&d), 1);
        CHECK(obj_double_eq(payload_get(&d, "a"), 1.0));
    }
    decoded_free(&d);
}

/* {"d":[[...[1]...]]}: the 1 sits at depth arrays + 1 below the root object. */
static char *
json_nested(int arrays)
{
    size_t len = 6 + 2 * (size_t)arrays + 2;
    char *s = malloc(len + 1), *p = s;

    if (s == NULL)
        return NULL;
    p += sprintf(p, "{\"d\":");
    for (int i = 0; i < arrays; i++)
        *p++ = '[';
    *p++ = '1';
    for (int i = 0; i < arrays; i++)
        *p++ = ']';
    *p++ = '}';
    *p = '\0';
    return s;
}

static void
test_json_depth_limit(void)
{
    struct decoded d;
    char *json;

    json = json_nested(10);
    json_run(&d, "data", json, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    decoded_free(&d);
    free(json);

    /* A value at depth 33. */
    json = json_nested(FRAME_MAX_DEPTH);
    json_run(&d, "data", json, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
    free(json);

    json = json_nested(5000);
    json_run(&d, "data", json, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
    free(json);
}

static void
test_json_max_depth_reaches_workers(void)
{
    /* Whatever nesting decode_entry accepts, the frame it publishes must
     * unpack in the workers, or every worker drops it as invalid after the
     * ingest has acked it. */
    for (int arrays = 20; arrays <= FRAME_MAX_DEPTH + 1; arrays++) {
        struct decoded d;
        char *json = json_nested(arrays);

        json_run(&d, "data", json, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        /* Moderate nesting is accepted, or this case would prove nothing. */
        if (arrays == 20)
            CHECK_INT(d.rc, 0);
        if (d.rc == 0 && d.unpack_rc != 0) {
            printf("#   value at depth %d: decoded, but frame_unpack says: %s\n", arrays + 1,
                   d.unpack_err);
            CHECK_INT(d.unpack_rc, 0);
        }
        decoded_free(&d);
        free(json);
    }
}

static void
test_json_max_size(void)
{
    struct decoded d;

    /* The raw JSON is bounded before parsing ... */
    json_run(&d, "data", "{\"a\":   1}", FRAME_ODDS_UPDATE, "basketball_nba", 9);
    CHECK_REFUSED(&d);
    decoded_free(&d);

    /* ... and the encoded frame after: here the JSON fits, the frame does not. */
    json_run(&d, "data", "{\"a\":1}", FRAME_ODDS_UPDATE, "basketball_nba", 12);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "MAX_ENTRY_SIZE") != NULL);
    decoded_free(&d);

    json_run(&d, "data", "{\"a\":1}", FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    decoded_free(&d);
}

static void
test_json_field_among_others_is_flat(void)
{
    /* `data` is JSON only when it is the entry's single field. */
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "data", "{\"a\":1}");
    entry_add(&e, "event_id", "e1");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK_INT(payload_size(&d), NSEED + 1);
        CHECK(obj_str_eq(payload_get(&d, "data"), "{\"a\":1}"));
        CHECK(obj_str_eq(payload_get(&d, "event_id"), "e1"));
    }
    decoded_free(&d);

    /* A single field of another name is a flat entry too. */
    memset(&e, 0, sizeof(e));
    entry_add(&e, "datum", "{\"a\":1}");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK(obj_str_eq(payload_get(&d, "datum"), "{\"a\":1}"));
    decoded_free(&d);
}

static void
test_json_raw_nul(void)
{
    /* cJSON keeps strings NUL-terminated and skips a NUL as whitespace: a raw
     * NUL would cut a string short or pass between tokens.  JSON never holds
     * one, so the entry is malformed wherever the byte is. */
    static const struct {
        const char *json;
        size_t len;
    } cases[] = {
#define RAW(s) {s, sizeof(s) - 1}
        RAW("{\"a\":\"abc\0def\"}"), RAW("{\"a\":[\"x\",\"y\0\"]}"),
        RAW("{\"a\0b\":1}"),         RAW("{\"a\":1,\0\"b\":2}"),
        RAW("\0{\"a\":1}"),          RAW("{\"a\":1}\0"),
        RAW("{\"a\":1\0}"),
#undef RAW
    };
    static const char *const fields[] = {"data", "payload"};

    for (size_t f = 0; f < 2; f++) {
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            struct entry e = {0};
            struct decoded d;

            entry_add_n(&e, fields[f], strlen(fields[f]), cases[i].json, cases[i].len);
            decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
            if (d.rc != -1)
                printf("#   %s case %zu was accepted\n", fields[f], i);
            CHECK_REFUSED(&d);
            CHECK(strstr(d.err, "NUL") != NULL);
            decoded_free(&d);
        }
    }
}

static void
test_json_duplicate_keys(void)
{
    /* Filtering would read the first sport_key and a browser's JSON.parse
     * the last: an object that names a key twice is malformed, at any depth
     * and however the key is spelled. */
    static const char *const bad[] = {
        "{\"a\":1,\"a\":2}",         "{\"sport_key\":\"x\",\"event_id\":\"e\",\"sport_key\":\"y\"}",
        "{\"m\":{\"k\":1,\"k\":2}}", "{\"m\":[1,{\"k\":1,\"j\":0,\"k\":2}]}",
        "{\"k\":1,\"\\u006b\":2}",   "{\"\":1,\"\":2}",
    };
    static const char *const good[] = {
        "{\"a\":1,\"A\":2,\"aa\":3,\"m\":{\"a\":1},\"n\":[{\"a\":1},{\"a\":2}]}",
        "{\"a\":{\"a\":{\"a\":1}}}",
        "{\"\":1,\"\\u0001\":2}",
    };
    static char many[40000];
    char key[201];
    struct decoded d;
    size_t off;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_run(&d, "data", bad[i], FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        if (d.rc != -1)
            printf("#   data '%s' was accepted\n", bad[i]);
        CHECK_REFUSED(&d);
        CHECK(strstr(d.err, "twice") != NULL);
        decoded_free(&d);
    }
    json_run(&d, "data", bad[0], FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK(strstr(d.err, "\"a\"") != NULL);
    decoded_free(&d);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        json_run(&d, "data", good[i], FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        decoded_free(&d);
    }

    /* 3000 distinct keys pass; the same plus one repeat of a middle one does not. */
    off = (size_t)snprintf(many, sizeof(many), "{");
    for (int i = 0; i < 3000; i++)
        off += (size_t)snprintf(many + off, sizeof(many) - off, "\"k%d\":%d,", i, i);
    snprintf(many + off - 1, sizeof(many) - off + 1, "}");
    json_run(&d, "data", many, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK_INT(payload_size(&d), 3000);
    decoded_free(&d);
    snprintf(many + off - 1, sizeof(many) - off + 1, ",\"k1500\":0}");
    json_run(&d, "data", many, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "k1500") != NULL);
    decoded_free(&d);

    /* A long key is not quoted (the message stays one short line). */
    memset(key, 'x', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    snprintf(many, sizeof(many), "{\"%s\":1,\"%s\":2}", key, key);
    json_run(&d, "data", many, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    CHECK(strstr(d.err, "twice") != NULL);
    CHECK(strstr(d.err, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx") ==
          NULL);
    decoded_free(&d);
}

static void
test_empty_sport_key_is_missing(void)
{
    /* An empty sport_key would be a sport no client filters by: it counts as
     * missing, and the stream's sport fills it like an absent one. */
    struct entry e = {0};
    struct decoded d;

    entry_add(&e, "event_id", "e1");
    entry_add(&e, "sport_key", "");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "basketball_nba"));
        check_payload_keys(&d, seed_fields, NSEED);
        CHECK(obj_str_eq(payload_get(&d, "sport_key"), "basketball_nba"));
    }
    decoded_free(&d);

    /* With extra fields around it: the empty field is not one of them. */
    {
        const char *want[NSEED + 2];
        struct entry x = {0};

        memcpy(want, seed_fields, sizeof(seed_fields));
        want[NSEED] = "note";
        want[NSEED + 1] = "n";
        entry_add(&x, "note", "a");
        entry_add(&x, "sport_key", "");
        entry_add(&x, "n", "1");
        decoded_run(&d, &x, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
        CHECK_DECODED(&d);
        if (ok(&d)) {
            check_payload_keys(&d, want, NSEED + 2);
            CHECK(obj_str_eq(payload_get(&d, "sport_key"), "basketball_nba"));
        }
        decoded_free(&d);
    }

    /* An opportunity (no stream sport) then lacks the dimension, as without
     * the field: nil key, no sport_key in the payload. */
    decoded_run(&d, &e, FRAME_OPPORTUNITY, NULL, BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(d.v.keys[FRAME_KEY_SPORT].ptr == NULL);
        CHECK_INT(payload_index(&d, "sport_key"), -1);
        CHECK_INT(payload_size(&d), NSEED - 1);
    }
    decoded_free(&d);

    /* JSON: the stream's sport for filtering, the payload as sent. */
    json_run(&d, "data", "{\"event_id\":\"e1\",\"sport_key\":\"\"}", FRAME_ODDS_UPDATE,
             "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d)) {
        CHECK(key_eq(&d.v.keys[FRAME_KEY_SPORT], "basketball_nba"));
        CHECK_INT(payload_size(&d), 2);
        CHECK(obj_str_eq(payload_get(&d, "sport_key"), ""));
    }
    decoded_free(&d);
    json_run(&d, "payload", "{\"sport_key\":\"\"}", FRAME_OPPORTUNITY, NULL, BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK(d.v.keys[FRAME_KEY_SPORT].ptr == NULL);
    decoded_free(&d);

    /* Only sport_key: an empty event_id is still a value of its own. */
    memset(&e, 0, sizeof(e));
    entry_add(&e, "event_id", "");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_DECODED(&d);
    if (ok(&d))
        CHECK(key_eq(&d.v.keys[FRAME_KEY_EVENT], ""));
    decoded_free(&d);

    /* Empty twice is still a duplicate field. */
    memset(&e, 0, sizeof(e));
    entry_add(&e, "sport_key", "");
    entry_add(&e, "sport_key", "");
    decoded_run(&d, &e, FRAME_ODDS_UPDATE, "basketball_nba", BIG_MAX);
    CHECK_REFUSED(&d);
    decoded_free(&d);
}

TEST_MAIN(TEST(test_flat_full_entry), TEST(test_flat_numbers), TEST(test_flat_nil_and_text),
          TEST(test_flat_bad_numbers), TEST(test_flat_event_id_digits),
          TEST(test_flat_sport_from_stream), TEST(test_flat_opportunity_without_sport),
          TEST(test_flat_duplicate_field), TEST(test_flat_invalid_utf8),
          TEST(test_flat_field_names), TEST(test_flat_field_count),
          TEST(test_flat_embedded_nul_value), TEST(test_no_fields), TEST(test_max_size),
          TEST(test_output_cleared), TEST(test_error_quotes_only_given_bytes),
          TEST(test_json_object), TEST(test_json_numeric_event_id),
          TEST(test_json_sport_from_stream), TEST(test_json_refused),
          TEST(test_json_trailing_garbage), TEST(test_json_length_honoured),
          TEST(test_json_depth_limit), TEST(test_json_max_depth_reaches_workers),
          TEST(test_json_max_size), TEST(test_json_field_among_others_is_flat),
          TEST(test_json_raw_nul), TEST(test_json_duplicate_keys),
          TEST(test_empty_sport_key_is_missing))
