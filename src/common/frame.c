#include "frame.h"
#include "utf8.h"

#include <math.h>
#include <string.h>
#include <stdio.h>

const char *
frame_type_name(enum frame_type type)
{
    return type == FRAME_OPPORTUNITY ? "opportunity" : "odds_update";
}

void
frame_pack_head(msgpack_packer *pk, enum frame_type type,
                const struct frame_key_ref keys[FRAME_NKEYS])
{
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint32(pk, FRAME_VERSION);
    msgpack_pack_uint32(pk, (uint32_t)type);
    msgpack_pack_array(pk, FRAME_NKEYS);
    for (int i = 0; i < FRAME_NKEYS; i++) {
        if (keys[i].ptr == NULL) {
            msgpack_pack_nil(pk);
        } else {
            msgpack_pack_str(pk, keys[i].len);
            msgpack_pack_str_body(pk, keys[i].ptr, keys[i].len);
        }
    }
}

static int
frame_check_value(const msgpack_object *o, int depth)
{
    if (depth > FRAME_MAX_DEPTH)
        return -1;
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_BOOLEAN:
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return isfinite(o->via.f64) ? 0 : -1;
    case MSGPACK_OBJECT_STR:
        /* NUL would cut the string short in cJSON, the encoder's library. */
        /* size 0: ptr may be NULL, and memchr(NULL, .., 0) is undefined. */
        return o->via.str.size == 0 || (utf8_valid(o->via.str.ptr, o->via.str.size) &&
                                        memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL)
                   ? 0
                   : -1;
    case MSGPACK_OBJECT_ARRAY:
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (frame_check_value(&o->via.array.ptr[i], depth + 1) != 0)
                return -1;
        }
        return 0;
    case MSGPACK_OBJECT_MAP:
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR || !utf8_valid(k->via.str.ptr, k->via.str.size) ||
                (k->via.str.size && memchr(k->via.str.ptr, '\0', k->via.str.size) != NULL) ||
                frame_check_value(&o->via.map.ptr[i].val, depth + 1) != 0)
                return -1;
        }
        return 0;
    default:
        return -1; /* bin, ext: never produced by the ingest */
    }
}

int
frame_unpack(const char *buf, size_t len, msgpack_zone *zone, struct frame_view *out, char *err,
             size_t errlen)
{
    msgpack_object root;
    const msgpack_object *keys;
    size_t off = 0;

    if (msgpack_unpack(buf, len, &off, zone, &root) != MSGPACK_UNPACK_SUCCESS || off != len) {
        snprintf(err, errlen, "not one msgpack object");
        return -1;
    }
    if (root.type != MSGPACK_OBJECT_ARRAY || root.via.array.size != 4 ||
        root.via.array.ptr[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        root.via.array.ptr[0].via.u64 != FRAME_VERSION) {
        snprintf(err, errlen, "not a version %d frame", FRAME_VERSION);
        return -1;
    }
    if (root.via.array.ptr[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
        root.via.array.ptr[1].via.u64 >= FRAME_NTYPES) {
        snprintf(err, errlen, "bad frame type");
        return -1;
    }
    out->type = (enum frame_type)root.via.array.ptr[1].via.u64;
    keys = &root.via.array.ptr[2];
    if (keys->type != MSGPACK_OBJECT_ARRAY || keys->via.array.size != FRAME_NKEYS) {
        snprintf(err, errlen, "bad filter keys");
        return -1;
    }
    for (int i = 0; i < FRAME_NKEYS; i++) {
        const msgpack_object *k = &keys->via.array.ptr[i];
        if (k->type == MSGPACK_OBJECT_NIL) {
            out->keys[i].ptr = NULL;
            out->keys[i].len = 0;
        } else if (k->type == MSGPACK_OBJECT_STR && utf8_valid(k->via.str.ptr, k->via.str.size)) {
            /* msgpack-c leaves ptr NULL (or stale) for "": NULL would mean
             * "the entry lacks this dimension" and match every filter. */
            out->keys[i].ptr = k->via.str.size ? k->via.str.ptr : "";
            out->keys[i].len = k->via.str.size;
        } else {
            snprintf(err, errlen, "bad filter key %d", i);
            return -1;
        }
    }
    out->payload = &root.via.array.ptr[3];
    if (out->payload->type != MSGPACK_OBJECT_MAP || frame_check_value(out->payload, 0) != 0) {
        snprintf(err, errlen, "payload is not a valid map");
        return -1;
    }
    return 0;
}

int
frame_payload_string(const struct frame_view *v, const char *name, struct frame_key_ref *out)
{
    const msgpack_object_map *m = &v->payload->via.map;
    size_t n = strlen(name);

    out->ptr = NULL;
    out->len = 0;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *val = &m->ptr[i].val;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
            memcmp(k->via.str.ptr, name, n) == 0) {
            if (val->type != MSGPACK_OBJECT_STR)
                return -1;
            out->ptr = val->via.str.size ? val->via.str.ptr : "";
            out->len = val->via.str.size;
            return 0;
        }
    }
    return -1;
}

size_t
frame_key_text(uint8_t type, const char *const s[4], const uint32_t len[4], char *out, size_t size)
{
    size_t n = 0;

    if (size < 2)
        return 0;
    out[n++] = (char)('0' + type);
    for (int i = 0; i < 4; i++) {
        if (n + len[i] + 1 > size)
            return 0;
        out[n++] = '\x1f';
        if (len[i] > 0)
            memcpy(out + n, s[i], len[i]);
        n += len[i];
    }
    return n;
}

int
frame_board_key(const struct frame_view *v, char *out, size_t size, size_t *len)
{
    struct frame_key_ref outcome;
    const char *s[4];
    uint32_t l[4];

    if (v->keys[FRAME_KEY_EVENT].ptr == NULL ||
        frame_payload_string(v, "outcome_name", &outcome) != 0)
        return -1;
    s[0] = v->keys[FRAME_KEY_EVENT].ptr;
    l[0] = v->keys[FRAME_KEY_EVENT].len;
    s[1] = v->keys[FRAME_KEY_MARKET].ptr;
    l[1] = v->keys[FRAME_KEY_MARKET].len;
    s[2] = v->keys[FRAME_KEY_BOOK].ptr;
    l[2] = v->keys[FRAME_KEY_BOOK].len;
    s[3] = outcome.ptr;
    l[3] = outcome.len;
    *len = frame_key_text((uint8_t)v->type, s, l, out, size);
    return *len > 0 ? 0 : -1;
}
