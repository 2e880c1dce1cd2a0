/*
 * fuzz_entry_decode: one Redis Streams entry through decode_entry, then what
 * a worker does with the frame (frame_unpack, encode_update).
 *
 * Input: the first byte chooses the entry's shape, the rest is its content.
 *   bit 0     type: 0 odds_update, 1 opportunity
 *   bits 1-2  the stream's sport: none, basketball_nba, americanfootball_nfl,
 *             soccer_epl
 *   bit 3     1: the rest is the JSON value of a single field (the `data` /
 *             `payload` encoding); 0: the rest is field and value lines,
 *             alternating, split on '\n' (a last name alone gets "")
 *   bit 4     with bit 3: the field is `payload` rather than `data`
 *   bits 5-7  max_size, from fuzz_max_sizes
 *
 * Properties, when decode_entry succeeds:
 *  - the frame fits max_size, frame_unpack accepts it with the entry's type,
 *    and its filter keys are the entry's (the stream's sport when it has none
 *    or an empty one);
 *  - encode_update turns it into one JSON object of valid UTF-8 that cJSON
 *    accepts (the ring never carries a frame a worker cannot send);
 *  - flat: every field is in the payload, the seed's numeric fields as
 *    numbers or null, all others as the same string;
 *  - data/payload: the payload is the entry's JSON object, same members in
 *    the same order, numbers exactly; the text held no NUL byte and no
 *    object in it names a key twice.
 * When it fails: a reason, and an empty output buffer.
 */
#include "common/frame.h"
#include "common/json.h"
#include "common/decode.h"
#include "worker/encode.h"

#include "fuzz.h"
#include "../seed_fields.h"

#define FUZZ_MAX_PAIRS 300 /* more than DECODE_MAX_FIELDS, to reach that limit */

static const uint32_t fuzz_max_sizes[8] = {65536, 65536, 65536, 16384, 4096, 1024, 256, 48};

static const char *const fuzz_sports[4] = {NULL, "basketball_nba", "americanfootball_nfl",
                                           "soccer_epl"};

/* The contract's lists (README "Streams in"); decode_known in src/common/decode.c follows them. */
static const char *const fuzz_numeric[] = {SEED_NUMERIC_FIELD_NAMES};
static const char *const fuzz_seed_fields[] = {SEED_FIELD_NAMES};
/* Filter key of each dimension, in enum frame_key order. */
static const char *const fuzz_key_fields[FRAME_NKEYS] = {"sport_key", "event_id", "market_key",
                                                         "book_key"};

#define NELEMS(a) (sizeof(a) / sizeof((a)[0]))

struct entry {
    size_t n;
    const char *names[FUZZ_MAX_PAIRS];
    size_t name_lens[FUZZ_MAX_PAIRS];
    const char *values[FUZZ_MAX_PAIRS];
    size_t value_lens[FUZZ_MAX_PAIRS];
};

static int
name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int
in_list(const char *name, size_t len, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (name_is(name, len, list[i]))
            return 1;
    }
    return 0;
}

/* Members, types and values equal and in the same order. */
static int
json_same(const cJSON *a, const cJSON *b)
{
    const cJSON *x, *y;

    if ((a->type & 0xff) != (b->type & 0xff))
        return 0;
    if (cJSON_IsNumber(a))
        return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a))
        return strcmp(a->valuestring, b->valuestring) == 0;
    if (!cJSON_IsArray(a) && !cJSON_IsObject(a))
        return 1;
    for (x = a->child, y = b->child; x != NULL && y != NULL; x = x->next, y = y->next) {
        if (cJSON_IsObject(a) && strcmp(x->string, y->string) != 0)
            return 0;
        if (!json_same(x, y))
            return 0;
    }
    return x == NULL && y == NULL;
}

/* No object in v names a key twice (a plain quadratic model, independent
 * of decode.c's sort). */
static int
json_keys_unique(const cJSON *v)
{
    const cJSON *x, *y;

    for (x = v->child; x != NULL; x = x->next) {
        if (!json_keys_unique(x))
            return 0;
        if (!cJSON_IsObject(v))
            continue;
        for (y = x->next; y != NULL; y = y->next) {
            if (strcmp(x->string, y->string) == 0)
                return 0;
        }
    }
    return 1;
}

static void
check_key(const struct frame_key_ref *k, const char *want, size_t len)
{
    FUZZ_CHECK(k->ptr != NULL);
    FUZZ_CHECK(k->len == len && memcmp(k->ptr, want, len) == 0);
}

static void
check_flat(const struct entry *e, const char *sport, const struct frame_view *v,
           const cJSON *payload)
{
    int seen_key[FRAME_NKEYS] = {0};
    size_t nextra = 0, want;

    for (size_t i = 0; i < e->n; i++) {
        /* names hold no NUL (decode refuses them), so C strings are exact */
        char name[DECODE_MAX_FIELD_NAME + 1];
        const cJSON *item;

        FUZZ_CHECK(e->name_lens[i] <= DECODE_MAX_FIELD_NAME);
        memcpy(name, e->names[i], e->name_lens[i]);
        name[e->name_lens[i]] = '\0';
        item = cJSON_GetObjectItemCaseSensitive(payload, name);
        if (strcmp(name, "sport_key") == 0 && e->value_lens[i] == 0) {
            /* counts as missing: the stream's sport, or no field at all */
            if (sport != NULL)
                FUZZ_CHECK(cJSON_IsString(item) && strcmp(item->valuestring, sport) == 0);
            else
                FUZZ_CHECK(item == NULL);
            continue;
        }
        FUZZ_CHECK(item != NULL);
        if (in_list(name, e->name_lens[i], fuzz_numeric, NELEMS(fuzz_numeric))) {
            FUZZ_CHECK(cJSON_IsNumber(item) || cJSON_IsNull(item));
            FUZZ_CHECK(cJSON_IsNull(item) ==
                       (e->value_lens[i] == 0 || name_is(e->values[i], e->value_lens[i], "null")));
        } else {
            FUZZ_CHECK(cJSON_IsString(item));
            FUZZ_CHECK(strlen(item->valuestring) == e->value_lens[i] &&
                       memcmp(item->valuestring, e->values[i], e->value_lens[i]) == 0);
        }
        if (!in_list(name, e->name_lens[i], fuzz_seed_fields, NELEMS(fuzz_seed_fields)))
            nextra++;
        for (int k = 0; k < FRAME_NKEYS; k++) {
            if (strcmp(name, fuzz_key_fields[k]) == 0) {
                check_key(&v->keys[k], e->values[i], e->value_lens[i]);
                seen_key[k] = 1;
            }
        }
    }
    for (int k = 0; k < FRAME_NKEYS; k++) {
        if (seen_key[k])
            continue;
        if (k == FRAME_KEY_SPORT && sport != NULL)
            check_key(&v->keys[k], sport, strlen(sport));
        else
            FUZZ_CHECK(v->keys[k].ptr == NULL);
    }
    /* every seed field (null when absent), except a sport_key nobody gave */
    want = NELEMS(fuzz_seed_fields) + nextra;
    if (!seen_key[FRAME_KEY_SPORT] && sport == NULL)
        want--;
    FUZZ_CHECK((size_t)cJSON_GetArraySize(payload) == want);
}

static void
check_json(const char *value, size_t len, const char *sport, const struct frame_view *v,
           const cJSON *payload)
{
    cJSON *in = json_parse_exact(value, len);

    FUZZ_CHECK(memchr(value, '\0', len) == NULL);
    FUZZ_CHECK(in != NULL && cJSON_IsObject(in));
    FUZZ_CHECK(json_keys_unique(in));
    FUZZ_CHECK(json_same(in, payload));
    for (int k = 0; k < FRAME_NKEYS; k++) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(in, fuzz_key_fields[k]);
        /* an empty sport_key counts as missing */
        int missing =
            s == NULL || (k == FRAME_KEY_SPORT && cJSON_IsString(s) && s->valuestring[0] == '\0');
        if (!missing && cJSON_IsString(s))
            check_key(&v->keys[k], s->valuestring, strlen(s->valuestring));
        else if (missing && k == FRAME_KEY_SPORT && sport != NULL)
            check_key(&v->keys[k], sport, strlen(sport));
        else if (missing)
            FUZZ_CHECK(v->keys[k].ptr == NULL);
    }
    cJSON_Delete(in);
}

static void
run(const struct entry *e, enum frame_type type, const char *sport, uint32_t max_size)
{
    struct decode_input in = {type, sport, e->n, e->names, e->name_lens, e->values, e->value_lens};
    msgpack_sbuffer out;
    msgpack_zone zone;
    struct frame_view v;
    char err[256];
    size_t len;
    char *buf;
    cJSON *root;
    const cJSON *payload;
    int rc;

    msgpack_sbuffer_init(&out);
    err[0] = '\0';
    if (decode_entry(&in, max_size, &out, err, sizeof(err)) != 0) {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        FUZZ_CHECK(out.size == 0);
        msgpack_sbuffer_destroy(&out);
        return;
    }
    FUZZ_CHECK(out.size > 0 && out.size <= max_size);

    msgpack_zone_init(&zone, 2048);
    rc = frame_unpack(out.data, out.size, &zone, &v, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "note: frame_unpack refused a decoded entry: %s\n", err);
    FUZZ_CHECK(rc == 0);
    FUZZ_CHECK(v.type == type);
    if (sport != NULL)
        FUZZ_CHECK(v.keys[FRAME_KEY_SPORT].ptr != NULL);

    buf = encode_update(&v, NULL, FUZZ_NOW_MS, 16, &len, err, sizeof(err));
    if (buf == NULL)
        fprintf(stderr, "note: encode_update refused a decoded entry: %s\n", err);
    FUZZ_CHECK(buf != NULL);
    root = check_client_json(buf + 16, len, 1);
    payload = check_server_message(root, frame_type_name(type));
    if (e->n == 1 && (name_is(e->names[0], e->name_lens[0], "data") ||
                      name_is(e->names[0], e->name_lens[0], "payload")))
        check_json(e->values[0], e->value_lens[0], sport, &v, payload);
    else
        check_flat(e, sport, &v, payload);

    cJSON_Delete(root);
    free(buf);
    msgpack_zone_destroy(&zone);
    msgpack_sbuffer_destroy(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct entry e; /* large; one run at a time */
    const char *p, *end;
    uint8_t flags;

    if (size == 0)
        return 0;
    flags = data[0];
    p = (const char *)data + 1;
    end = (const char *)data + size;
    memset(&e, 0, sizeof(e));

    if (flags & 8) {
        e.names[0] = (flags & 16) ? "payload" : "data";
        e.name_lens[0] = strlen(e.names[0]);
        e.values[0] = p;
        e.value_lens[0] = (size_t)(end - p);
        e.n = 1;
    } else {
        int is_value = 0;
        while (p < end && e.n < FUZZ_MAX_PAIRS) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *stop = nl ? nl : end;
            if (!is_value) {
                e.names[e.n] = p;
                e.name_lens[e.n] = (size_t)(stop - p);
                e.values[e.n] = "";
                e.value_lens[e.n] = 0;
            } else {
                e.values[e.n] = p;
                e.value_lens[e.n] = (size_t)(stop - p);
                e.n++;
            }
            is_value = !is_value;
            p = nl ? nl + 1 : end;
        }
        if (is_value)
            e.n++; /* a name without its value */
    }
    run(&e, (flags & 1) ? FRAME_OPPORTUNITY : FRAME_ODDS_UPDATE, fuzz_sports[(flags >> 1) & 3],
        fuzz_max_sizes[flags >> 5]);
    return 0;
}
