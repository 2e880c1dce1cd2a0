#include "encode.h"
#include "../common/timeutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * cJSON prints 15 significant digits and keeps them when they read back
 * "close enough", so 0.1 + 0.2 or 2^53 would not survive the trip.  Print
 * the shortest form that reads back exactly instead (17 digits always do).
 */
static cJSON *
encode_number(double v)
{
    char buf[40];

    for (int digits = 15; digits <= 17; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, v);
        if (strtod(buf, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(buf);
}

cJSON *
encode_msgpack_to_json(const msgpack_object *o, int depth)
{
    cJSON *out;

    if (depth > FRAME_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN:
        return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: {
        char buf[24];
        snprintf(buf, sizeof(buf), "%llu", (unsigned long long)o->via.u64);
        return cJSON_CreateRaw(buf);
    }
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: {
        char buf[24];
        snprintf(buf, sizeof(buf), "%lld", (long long)o->via.i64);
        return cJSON_CreateRaw(buf);
    }
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        /* cJSON would print NaN or Infinity as null silently; refuse instead. */
        if (!isfinite(o->via.f64))
            return NULL;
        return encode_number(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        /* cJSON wants a NUL-terminated string. */
        char small[256];
        char *s = o->via.str.size < sizeof(small) ? small : malloc(o->via.str.size + 1);
        if (s == NULL)
            return NULL;
        if (o->via.str.size) /* ptr may be NULL for "" */
            memcpy(s, o->via.str.ptr, o->via.str.size);
        s[o->via.str.size] = '\0';
        out = cJSON_CreateString(s);
        if (s != small)
            free(s);
        return out;
    }
    case MSGPACK_OBJECT_ARRAY:
        out = cJSON_CreateArray();
        for (uint32_t i = 0; out != NULL && i < o->via.array.size; i++) {
            cJSON *item = encode_msgpack_to_json(&o->via.array.ptr[i], depth + 1);
            if (item == NULL) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, item);
        }
        return out;
    case MSGPACK_OBJECT_MAP:
        out = cJSON_CreateObject();
        for (uint32_t i = 0; out != NULL && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char small[128];
            char *name;
            cJSON *item;

            if (k->type != MSGPACK_OBJECT_STR)
                goto map_fail;
            item = encode_msgpack_to_json(&o->via.map.ptr[i].val, depth + 1);
            if (item == NULL)
                goto map_fail;
            name = k->via.str.size < sizeof(small) ? small : malloc(k->via.str.size + 1);
            if (name == NULL) {
                cJSON_Delete(item);
                goto map_fail;
            }
            if (k->via.str.size)
                memcpy(name, k->via.str.ptr, k->via.str.size);
            name[k->via.str.size] = '\0';
            cJSON_AddItemToObject(out, name, item);
            if (name != small)
                free(name);
        }
        return out;
    map_fail:
        cJSON_Delete(out);
        return NULL;
    default:
        return NULL;
    }
}

/* Print root behind headroom bytes of a fresh buffer.  One copy of the
 * text, made once per entry per worker, never per client. */
static char *
encode_print(cJSON *root, size_t headroom, size_t *len)
{
    char *text = cJSON_PrintUnformatted(root);
    char *buf;

    if (text == NULL)
        return NULL;
    *len = strlen(text);
    buf = malloc(headroom + *len + 1);
    if (buf != NULL)
        memcpy(buf + headroom, text, *len + 1);
    free(text);
    return buf;
}

static char *
encode_wrap_origin(const char *type, cJSON *payload, const struct encode_origin *origin,
                   uint64_t now_ms, size_t headroom, size_t *len)
{
    char ts[32];
    cJSON *root = cJSON_CreateObject();
    char *buf;

    if (root == NULL) {
        cJSON_Delete(payload);
        return NULL;
    }
    if (payload == NULL)
        payload = cJSON_CreateObject();
    time_format_iso_ms(now_ms, ts, sizeof(ts));
    if (payload == NULL || cJSON_AddStringToObject(root, "type", type) == NULL) {
        cJSON_Delete(payload);
        cJSON_Delete(root);
        return NULL;
    }
    cJSON_AddItemToObject(root, "payload", payload);
    if ((origin != NULL && (cJSON_AddStringToObject(root, "stream", origin->stream) == NULL ||
                            cJSON_AddStringToObject(root, "id", origin->id) == NULL)) ||
        cJSON_AddStringToObject(root, "timestamp", ts) == NULL) {
        cJSON_Delete(root);
        return NULL;
    }
    buf = encode_print(root, headroom, len);
    cJSON_Delete(root);
    return buf;
}

static char *
encode_wrap(const char *type, cJSON *payload, uint64_t now_ms, size_t headroom, size_t *len)
{
    return encode_wrap_origin(type, payload, NULL, now_ms, headroom, len);
}

/* The basic projection: the premium fields go (at the top of the payload,
 * where the ingest puts them). */
static void
encode_project(cJSON *payload, const struct encode_origin *origin)
{
    static const char *const premium[] = {ENCODE_PREMIUM_FIELDS};

    if (origin == NULL || !origin->basic)
        return;
    for (size_t i = 0; i < sizeof(premium) / sizeof(premium[0]); i++)
        cJSON_DeleteItemFromObjectCaseSensitive(payload, premium[i]);
}

char *
encode_update(const struct frame_view *f, const struct encode_origin *origin, uint64_t now_ms,
              size_t headroom, size_t *len, char *err, size_t errlen)
{
    cJSON *payload = encode_msgpack_to_json(f->payload, 0);
    char *buf;

    if (payload == NULL) {
        snprintf(err, errlen, "payload not representable as JSON");
        return NULL;
    }
    encode_project(payload, origin);
    buf = encode_wrap_origin(frame_type_name(f->type), payload, origin, now_ms, headroom, len);
    if (buf == NULL)
        snprintf(err, errlen, "out of memory");
    return buf;
}

char *
encode_item(const struct frame_view *f, const struct encode_origin *origin, size_t *len, char *err,
            size_t errlen)
{
    cJSON *item = encode_msgpack_to_json(f->payload, 0);
    char *text;

    if (item == NULL) {
        snprintf(err, errlen, "payload not representable as JSON");
        return NULL;
    }
    encode_project(item, origin);
    /* A payload field of the same name gives way: the client keys its board
     * by these two. */
    cJSON_DeleteItemFromObjectCaseSensitive(item, "stream");
    cJSON_DeleteItemFromObjectCaseSensitive(item, "id");
    if (cJSON_AddStringToObject(item, "stream", origin->stream) == NULL ||
        cJSON_AddStringToObject(item, "id", origin->id) == NULL ||
        (text = cJSON_PrintUnformatted(item)) == NULL) {
        cJSON_Delete(item);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cJSON_Delete(item);
    *len = strlen(text);
    return text;
}

/* A growing text buffer with headroom in front, for messages assembled from
 * pieces already encoded (snapshot parts can hold thousands of items: no
 * cJSON tree of them). */
struct encode_buf {
    char *buf;
    size_t len, cap; /* len counts the headroom */
    int failed;
};

static void
encode_buf_put(struct encode_buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        char *p;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((p = realloc(b->buf, cap)) == NULL) {
            b->failed = 1;
            return;
        }
        b->buf = p;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void
encode_buf_str(struct encode_buf *b, const char *s)
{
    encode_buf_put(b, s, strlen(s));
}

/* s as a JSON string literal (cJSON's escaping). */
static void
encode_buf_json_string(struct encode_buf *b, const char *s)
{
    cJSON *str = cJSON_CreateString(s);
    char *text = str != NULL ? cJSON_PrintUnformatted(str) : NULL;

    if (text == NULL)
        b->failed = 1;
    else
        encode_buf_str(b, text);
    free(text);
    cJSON_Delete(str);
}

char *
encode_snapshot_part(const char *epoch, const char *positions, size_t positions_len,
                     char *const *items, const size_t *item_lens, size_t n, int last,
                     const char *reason, uint64_t now_ms, size_t headroom, size_t *len)
{
    struct encode_buf b = {NULL, 0, 0, 0};
    size_t total = headroom + positions_len + 256;
    char ts[32];

    for (size_t i = 0; i < n; i++)
        total += item_lens[i] + 1;
    if ((b.buf = malloc(total)) == NULL)
        return NULL;
    b.cap = total;
    b.len = headroom;
    encode_buf_str(&b, "{\"type\":\"snapshot\",\"payload\":{\"epoch\":");
    encode_buf_json_string(&b, epoch);
    encode_buf_str(&b, ",\"positions\":");
    encode_buf_put(&b, positions, positions_len);
    encode_buf_str(&b, ",\"items\":[");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            encode_buf_put(&b, ",", 1);
        encode_buf_put(&b, items[i], item_lens[i]);
    }
    encode_buf_str(&b, last ? "],\"last\":true" : "],\"last\":false");
    if (reason != NULL) {
        encode_buf_str(&b, ",\"reason\":");
        encode_buf_json_string(&b, reason);
    }
    time_format_iso_ms(now_ms, ts, sizeof(ts));
    encode_buf_str(&b, "},\"timestamp\":\"");
    encode_buf_str(&b, ts);
    encode_buf_str(&b, "\"}");
    if (b.failed) {
        free(b.buf);
        return NULL;
    }
    *len = b.len - headroom;
    return b.buf;
}

char *
encode_message(const char *type, cJSON *payload, uint64_t now_ms, size_t headroom, size_t *len)
{
    return encode_wrap(type, payload, now_ms, headroom, len);
}

char *
encode_error(const char *code, const char *message, uint64_t now_ms, size_t headroom, size_t *len)
{
    cJSON *payload = cJSON_CreateObject();

    if (payload == NULL)
        return NULL;
    cJSON_AddStringToObject(payload, "code", code);
    cJSON_AddStringToObject(payload, "message", message);
    return encode_message("error", payload, now_ms, headroom, len);
}
