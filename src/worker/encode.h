/*
 * encode: server messages as JSON text, built with cJSON.
 *
 * Every server message is {"type": ..., "payload": {...}, "timestamp":
 * "<ISO-8601 UTC, ms>"}.  Updates are encoded once per worker per entry and
 * the same bytes are queued to every matching client, so the output buffer
 * reserves `headroom` bytes in front of the text for the transport's frame
 * header (LWS_PRE) and is never written per client.
 *
 * Worker-side, I/O-free.  Returned buffers are malloc'd: the text starts at
 * buf + headroom and is NUL-terminated; free(buf) releases it.
 */
#ifndef WSB_ENCODE_H
#define WSB_ENCODE_H

#include "../common/frame.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

/* Where an entry came from: its Redis stream and entry id ("<ms>-<seq>"),
 * the top-level "stream" and "id" of an update and the same two fields of a
 * snapshot item. */
struct encode_origin {
    const char *stream;
    const char *id;
    int basic; /* the "basic" projection: without ENCODE_PREMIUM_FIELDS */
};

/* The fields a client entitled to "basic" never sees (README
 * "Authentication"). */
#define ENCODE_PREMIUM_FIELDS "novig_probability", "fair_price", "edge"

/* An odds_update / opportunity from an unpacked frame, with origin's
 * "stream" and "id" beside its payload (origin NULL: without them).  NULL
 * with a reason in err if the payload cannot be represented (frame_unpack
 * has already refused anything that could not), or on OOM. */
char *encode_update(const struct frame_view *f, const struct encode_origin *origin, uint64_t now_ms,
                    size_t headroom, size_t *len, char *err, size_t errlen);

/* A snapshot item: the frame's payload object with origin's "stream" and
 * "id" added to it (replacing payload fields of those names), as text into
 * a malloc'd, NUL-terminated buffer without headroom; *len its length.  NULL
 * as for encode_update. */
char *encode_item(const struct frame_view *f, const struct encode_origin *origin, size_t *len,
                  char *err, size_t errlen);

/*
 * One "snapshot" message: {"type":"snapshot","payload":{"epoch":epoch,
 * "positions":positions,"items":[items...],"last":last[,"reason":reason]},
 * "timestamp":...}.  positions is JSON text of an object (made once per
 * snapshot, the same in every part); items[0..n) are encode_item texts,
 * copied in.  reason NULL: none.  NULL on OOM.
 */
char *encode_snapshot_part(const char *epoch, const char *positions, size_t positions_len,
                           char *const *items, const size_t *item_lens, size_t n, int last,
                           const char *reason, uint64_t now_ms, size_t headroom, size_t *len);

/* Any other message: payload (an object, consumed; NULL means {}) wrapped
 * with type and timestamp.  NULL on OOM. */
char *encode_message(const char *type, cJSON *payload, uint64_t now_ms, size_t headroom,
                     size_t *len);

/* {"code": code, "message": message} as an "error" message. */
char *encode_error(const char *code, const char *message, uint64_t now_ms, size_t headroom,
                   size_t *len);

/* msgpack value -> cJSON, for payloads; NULL if not representable. */
cJSON *encode_msgpack_to_json(const msgpack_object *o, int depth);

#endif
