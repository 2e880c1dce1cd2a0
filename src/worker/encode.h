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

/* An odds_update / opportunity from an unpacked frame.  NULL with a reason in
 * err if the payload cannot be represented (frame_unpack has already refused
 * anything that could not), or on OOM. */
char *encode_update(const struct frame_view *f, uint64_t now_ms, size_t headroom, size_t *len,
                    char *err, size_t errlen);

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
