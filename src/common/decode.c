#include "decode.h"
#include "json.h"
#include "utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The seed's fields, in the seed's order.  Keep in sync with README "Streams in". */
static const struct {
    const char *name;
    int numeric;
} decode_known[] = {
    {"event_id", 0},
    {"sport_key", 0},
    {"market_key", 0},
    {"book_key", 0},
    {"outcome_name", 0},
    {"price", 1},
    {"point", 1},
    {"decimal_odds", 1},
    {"implied_probability", 1},
    {"novig_probability", 1},
    {"fair_price", 1},
    {"edge", 1},
    {"normalized_at", 0},
};
#define DECODE_NKNOWN (sizeof(decode_known) / sizeof(decode_known[0]))
#define DECODE_SPORT  1 /* index of sport_key in decode_known */

/* Filter dimension of each known field, -1 for none.  Keep in sync with enum frame_key. */
static const int decode_key_of_known[DECODE_NKNOWN] = {FRAME_KEY_EVENT,
                                                       FRAME_KEY_SPORT,
                                                       FRAME_KEY_MARKET,
                                                       FRAME_KEY_BOOK,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1,
                                                       -1};

static const char *const decode_key_names[FRAME_NKEYS] = {"sport_key", "event_id", "market_key",
                                                          "book_key"};

static int decode_fail(msgpack_sbuffer *out, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
decode_fail(msgpack_sbuffer *out, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    msgpack_sbuffer_clear(out);
    return -1;
}

static void
decode_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

/* "" and "null" are absent; else the whole string must be a finite number. */
static int
decode_number(const char *s, size_t len, int *is_null, double *out)
{
    char buf[64];
    char *end;

    if (len == 0 || (len == 4 && memcmp(s, "null", 4) == 0)) {
        *is_null = 1;
        return 0;
    }
    *is_null = 0;
    if (len >= sizeof(buf))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod accepts "nan", "inf", hex floats and leading spaces; none of
     * them is a price. */
    if (!(buf[0] == '-' || buf[0] == '+' || buf[0] == '.' || (buf[0] >= '0' && buf[0] <= '9')))
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (buf[i] == 'x' || buf[i] == 'X' || buf[i] == 'n' || buf[i] == 'N')
            return -1;
    }
    errno = 0;
    *out = strtod(buf, &end);
    if (end != buf + len || !isfinite(*out))
        return -1;
    return 0;
}

static int
decode_flat(const struct decode_input *in, msgpack_packer *pk, msgpack_sbuffer *out, char *err,
            size_t errlen)
{
    ssize_t known_at[DECODE_NKNOWN], empty_sport_at = -1;
    struct frame_key_ref keys[FRAME_NKEYS] = {{0}};
    uint32_t nextra = 0, npairs;
    char why[192];

    for (size_t k = 0; k < DECODE_NKNOWN; k++)
        known_at[k] = -1;
    if (in->nfields > DECODE_MAX_FIELDS) {
        snprintf(why, sizeof(why), "%zu fields (at most %d)", in->nfields, DECODE_MAX_FIELDS);
        return decode_fail(out, err, errlen, "%s", why);
    }
    for (size_t i = 0; i < in->nfields; i++) {
        const char *name = in->names[i];
        size_t nlen = in->name_lens[i];
        size_t k;

        if (nlen == 0 || nlen > DECODE_MAX_FIELD_NAME || !utf8_valid(name, nlen) ||
            memchr(name, '\0', nlen) != NULL)
            return decode_fail(out, err, errlen, "bad field name");
        if (!utf8_valid(in->values[i], in->value_lens[i]))
            return decode_fail(out, err, errlen, "field %.*s: value is not valid UTF-8", (int)nlen,
                               name);
        if (memchr(in->values[i], '\0', in->value_lens[i]) != NULL)
            return decode_fail(out, err, errlen, "field %.*s: value contains a NUL byte", (int)nlen,
                               name);
        for (size_t j = 0; j < i; j++) {
            if (in->name_lens[j] == nlen && memcmp(in->names[j], name, nlen) == 0)
                return decode_fail(out, err, errlen, "field %.*s appears twice", (int)nlen, name);
        }
        for (k = 0; k < DECODE_NKNOWN; k++) {
            if (strlen(decode_known[k].name) == nlen &&
                memcmp(decode_known[k].name, name, nlen) == 0)
                break;
        }
        if (k == DECODE_NKNOWN) {
            nextra++;
            continue;
        }
        /* An empty sport_key is a sport no client filters by: it counts as
         * missing, so the stream's sport fills it (README "Streams in"). */
        if (k == DECODE_SPORT && in->value_lens[i] == 0) {
            empty_sport_at = (ssize_t)i;
            continue;
        }
        known_at[k] = (ssize_t)i;
        if (decode_key_of_known[k] >= 0) {
            keys[decode_key_of_known[k]].ptr = in->values[i];
            keys[decode_key_of_known[k]].len = (uint32_t)in->value_lens[i];
        }
    }
    if (keys[FRAME_KEY_SPORT].ptr == NULL && in->stream_sport != NULL) {
        keys[FRAME_KEY_SPORT].ptr = in->stream_sport;
        keys[FRAME_KEY_SPORT].len = (uint32_t)strlen(in->stream_sport);
    }

    frame_pack_head(pk, in->type, keys);
    /* Every seed field is present in the payload (null when absent), except
     * that an opportunity without sport_key and stream sport carries none. */
    npairs = nextra;
    for (size_t k = 0; k < DECODE_NKNOWN; k++) {
        if (!(k == DECODE_SPORT && keys[FRAME_KEY_SPORT].ptr == NULL && known_at[k] < 0))
            npairs++;
    }
    msgpack_pack_map(pk, npairs);
    for (size_t k = 0; k < DECODE_NKNOWN; k++) {
        const char *name = decode_known[k].name;
        ssize_t i = known_at[k];

        if (k == DECODE_SPORT && i < 0) {
            if (keys[FRAME_KEY_SPORT].ptr == NULL)
                continue;
            decode_pack_str(pk, name, strlen(name));
            decode_pack_str(pk, keys[FRAME_KEY_SPORT].ptr, keys[FRAME_KEY_SPORT].len);
            continue;
        }
        decode_pack_str(pk, name, strlen(name));
        if (i < 0) {
            msgpack_pack_nil(pk);
        } else if (decode_known[k].numeric) {
            int is_null;
            double v;
            if (decode_number(in->values[i], in->value_lens[i], &is_null, &v) != 0) {
                int vlen = in->value_lens[i] > 40 ? 40 : (int)in->value_lens[i];
                snprintf(why, sizeof(why), "field %s: '%.*s' is not a finite number", name, vlen,
                         in->values[i]);
                return decode_fail(out, err, errlen, "%s", why);
            }
            if (is_null)
                msgpack_pack_nil(pk);
            else
                msgpack_pack_double(pk, v);
        } else {
            decode_pack_str(pk, in->values[i], in->value_lens[i]);
        }
    }
    for (size_t i = 0; i < in->nfields && nextra > 0; i++) {
        int known = (ssize_t)i == empty_sport_at; /* neither known nor extra */
        for (size_t k = 0; k < DECODE_NKNOWN; k++)
            known |= known_at[k] == (ssize_t)i;
        if (known)
            continue;
        decode_pack_str(pk, in->names[i], in->name_lens[i]);
        decode_pack_str(pk, in->values[i], in->value_lens[i]);
    }
    return 0;
}

static int decode_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
decode_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    return -1;
}

static int
decode_strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* -1 with the reason in why if two members of object o share a name.
 * Filtering reads the first sport_key (cJSON_GetObjectItemCaseSensitive)
 * while a browser's JSON.parse keeps the last, so such an object would be
 * routed by one value and shown with another.  Sorting the names keeps a
 * 64 KB object of tiny keys at O(n log n); names are NUL-free here
 * (decode_json refuses raw NULs, json_parse_exact the \u0000 escape). */
static int
decode_json_unique_keys(const cJSON *o, uint32_t n, char *why, size_t whylen)
{
    const char **names;
    const cJSON *c;
    uint32_t i = 0;
    int rc = 0;

    if (n < 2)
        return 0;
    names = malloc(n * sizeof(*names));
    if (names == NULL)
        return decode_why(why, whylen, "out of memory checking %u keys", n);
    cJSON_ArrayForEach(c, o) names[i++] = c->string;
    qsort(names, n, sizeof(*names), decode_strcmp_ptr);
    for (i = 1; i < n && rc == 0; i++) {
        size_t len = strlen(names[i]);
        if (strcmp(names[i - 1], names[i]) != 0)
            continue;
        /* Quoted only when short: the reason is one line of a log. */
        if (len <= 64)
            rc = decode_why(why, whylen, "key \"%s\" appears twice in an object", names[i]);
        else
            rc = decode_why(why, whylen, "a key of %zu bytes appears twice in an object", len);
    }
    free(names);
    return rc;
}

static int
decode_json_value(msgpack_packer *pk, const cJSON *v, int depth, char *why, size_t whylen)
{
    if (depth > FRAME_MAX_DEPTH)
        return decode_why(why, whylen, "nested more than %d deep", FRAME_MAX_DEPTH);
    if (cJSON_IsNull(v)) {
        msgpack_pack_nil(pk);
    } else if (cJSON_IsTrue(v)) {
        msgpack_pack_true(pk);
    } else if (cJSON_IsFalse(v)) {
        msgpack_pack_false(pk);
    } else if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return decode_why(why, whylen, "a number is not finite");
        msgpack_pack_double(pk, v->valuedouble);
    } else if (cJSON_IsString(v)) {
        size_t len = strlen(v->valuestring);
        if (!utf8_valid(v->valuestring, len))
            return decode_why(why, whylen, "a string is not valid UTF-8");
        decode_pack_str(pk, v->valuestring, len);
    } else if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
        uint32_t n = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, v) n++;
        if (cJSON_IsArray(v))
            msgpack_pack_array(pk, n);
        else
            msgpack_pack_map(pk, n);
        cJSON_ArrayForEach(c, v)
        {
            if (cJSON_IsObject(v)) {
                size_t klen = strlen(c->string);
                if (!utf8_valid(c->string, klen))
                    return decode_why(why, whylen, "a key is not valid UTF-8");
                decode_pack_str(pk, c->string, klen);
            }
            if (decode_json_value(pk, c, depth + 1, why, whylen) != 0)
                return -1;
        }
        /* After the loop: every name is known to be valid UTF-8 by then, so
         * the reason may quote one. */
        if (cJSON_IsObject(v) && decode_json_unique_keys(v, n, why, whylen) != 0)
            return -1;
    } else {
        return decode_why(why, whylen, "a value of unknown type");
    }
    return 0;
}

/* A filter key of a JSON payload: a string as is, an integral number in
 * decimal (event ids are sometimes numbers); anything else is absent. */
static void
decode_json_key(const cJSON *obj, const char *name, char *scratch, size_t size,
                struct frame_key_ref *ref)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

    ref->ptr = NULL;
    ref->len = 0;
    if (cJSON_IsString(v)) {
        ref->ptr = v->valuestring;
        ref->len = (uint32_t)strlen(v->valuestring);
    } else if (cJSON_IsNumber(v) && isfinite(v->valuedouble) &&
               v->valuedouble == floor(v->valuedouble) &&
               fabs(v->valuedouble) < 9007199254740992.0) {
        int n = snprintf(scratch, size, "%.0f", v->valuedouble);
        ref->ptr = scratch;
        ref->len = (uint32_t)n;
    }
}

static int
decode_json(const struct decode_input *in, msgpack_packer *pk, msgpack_sbuffer *out, char *err,
            size_t errlen, uint32_t max_size)
{
    struct frame_key_ref keys[FRAME_NKEYS];
    char scratch[FRAME_NKEYS][32];
    const char *field = in->names[0][0] == 'd' ? "data" : "payload";
    char why[128];
    cJSON *root;
    int rc;

    if (in->value_lens[0] > max_size)
        return decode_fail(out, err, errlen, "%s too large", field);
    /* JSON never holds a raw NUL (not whitespace, and a control character
     * in a string must be escaped), but cJSON skips one as whitespace and
     * ends a string at it: "abc\0def" would arrive as "abc". */
    if (memchr(in->values[0], '\0', in->value_lens[0]) != NULL)
        return decode_fail(out, err, errlen, "%s holds a NUL byte", field);
    root = json_parse_exact(in->values[0], in->value_lens[0]);
    if (root == NULL)
        return decode_fail(out, err, errlen, "%s is not valid JSON (or holds \\u0000)", field);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return decode_fail(out, err, errlen, "%s is not a JSON object", field);
    }
    for (int k = 0; k < FRAME_NKEYS; k++)
        decode_json_key(root, decode_key_names[k], scratch[k], sizeof(scratch[k]), &keys[k]);
    /* An empty sport_key counts as missing, as in a flat entry; the payload
     * keeps it as sent. */
    if (keys[FRAME_KEY_SPORT].ptr != NULL && keys[FRAME_KEY_SPORT].len == 0)
        keys[FRAME_KEY_SPORT].ptr = NULL;
    if (keys[FRAME_KEY_SPORT].ptr == NULL && in->stream_sport != NULL) {
        keys[FRAME_KEY_SPORT].ptr = in->stream_sport;
        keys[FRAME_KEY_SPORT].len = (uint32_t)strlen(in->stream_sport);
    }
    frame_pack_head(pk, in->type, keys);
    rc = decode_json_value(pk, root, 0, why, sizeof(why));
    cJSON_Delete(root);
    if (rc != 0)
        return decode_fail(out, err, errlen, "%s: %s", field, why);
    return 0;
}

int
decode_entry(const struct decode_input *in, uint32_t max_size, msgpack_sbuffer *out, char *err,
             size_t errlen)
{
    msgpack_packer pk;
    int rc;

    msgpack_sbuffer_clear(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    if (in->nfields == 0)
        return decode_fail(out, err, errlen, "entry has no fields");
    if (in->nfields == 1 && ((in->name_lens[0] == 4 && memcmp(in->names[0], "data", 4) == 0) ||
                             (in->name_lens[0] == 7 && memcmp(in->names[0], "payload", 7) == 0)))
        rc = decode_json(in, &pk, out, err, errlen, max_size);
    else
        rc = decode_flat(in, &pk, out, err, errlen);
    if (rc != 0)
        return -1;
    if (out->size > max_size) {
        char why[96];
        snprintf(why, sizeof(why), "entry is %zu bytes encoded (MAX_ENTRY_SIZE %u)", out->size,
                 max_size);
        return decode_fail(out, err, errlen, "%s", why);
    }
    return 0;
}

int
decode_reply_fields(const redisReply *fields, enum frame_type type, const char *stream_sport,
                    uint32_t max_size, msgpack_sbuffer *out, char *err, size_t errlen)
{
    const char *names[DECODE_MAX_FIELDS], *values[DECODE_MAX_FIELDS];
    size_t name_lens[DECODE_MAX_FIELDS], value_lens[DECODE_MAX_FIELDS];
    struct decode_input di;
    size_t n;

    msgpack_sbuffer_clear(out);
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY) {
        snprintf(err, errlen, "has no fields (trimmed?)");
        return -1;
    }
    n = fields->elements / 2;
    if (n > DECODE_MAX_FIELDS || fields->elements % 2 != 0) {
        snprintf(err, errlen, "%zu fields (at most %d)", fields->elements / 2, DECODE_MAX_FIELDS);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *k = fields->element[2 * i], *v = fields->element[2 * i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            snprintf(err, errlen, "a field name or value is not a string");
            return -1;
        }
        names[i] = k->str;
        name_lens[i] = k->len;
        values[i] = v->str;
        value_lens[i] = v->len;
    }
    di.type = type;
    di.stream_sport = stream_sport;
    di.nfields = n;
    di.names = names;
    di.name_lens = name_lens;
    di.values = values;
    di.value_lens = value_lens;
    return decode_entry(&di, max_size, out, err, errlen);
}
