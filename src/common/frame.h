/*
 * frame: the format of one stream entry in the ring, shared by the ingest
 * (which packs it) and the workers (which unpack it).
 *
 * A frame is one msgpack array:
 *
 *   [ FRAME_VERSION, type, [sport, event, market, book], payload ]
 *
 * type is enum frame_type.  The four keys are what filtering reads: a string,
 * or nil when the entry lacks that dimension (nil never excludes an entry).
 * payload is a msgpack map with string keys, delivered as the message's
 * "payload" object: nil, booleans, integers, finite doubles, valid UTF-8
 * strings without NUL bytes, arrays and maps, nested at most FRAME_MAX_DEPTH deep.
 * The filter keys are valid UTF-8 too.  The ingest
 * guarantees all of this; frame_unpack checks it again, so a worker never
 * sends what it cannot encode.  The stream and Redis id travel in the ring
 * slot (struct ring_frame_meta), not in the frame.
 */
#ifndef WSB_FRAME_H
#define WSB_FRAME_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define FRAME_VERSION   1
/* Containers in a payload may nest this deep (the payload map is depth 0).
 * msgpack-c unpacks at most 32 levels (MSGPACK_EMBED_STACK_SIZE) and the
 * frame's array and the payload map take two of them. */
#define FRAME_MAX_DEPTH 30

enum frame_type { FRAME_ODDS_UPDATE = 0, FRAME_OPPORTUNITY = 1, FRAME_NTYPES };

/* Keep in sync with the wire protocol's filter lists (sub.c). */
enum frame_key {
    FRAME_KEY_SPORT = 0,
    FRAME_KEY_EVENT,
    FRAME_KEY_MARKET,
    FRAME_KEY_BOOK,
    FRAME_NKEYS
};

struct frame_key_ref {
    const char *ptr; /* NULL: the entry lacks this dimension */
    uint32_t len;
};

struct frame_view {
    enum frame_type type;
    struct frame_key_ref keys[FRAME_NKEYS];
    const msgpack_object *payload; /* a map; lives in the zone given to frame_unpack */
};

/* "odds_update" or "opportunity". */
const char *frame_type_name(enum frame_type type);

/* Pack the frame header: array marker, version, type and the four keys (ptr
 * NULL packs nil).  The caller packs the payload map next. */
void frame_pack_head(msgpack_packer *pk, enum frame_type type,
                     const struct frame_key_ref keys[FRAME_NKEYS]);

/* The string field `name` of the payload map into *out (ptr NULL if the
 * payload has no such field or it is not a string).  0 if found, else -1. */
int frame_payload_string(const struct frame_view *v, const char *name, struct frame_key_ref *out);

/* The identity of a board key as one string: type, then event, market,
 * book and outcome (s[0..4), each len[i] bytes), separated by 0x1f.  Its
 * length, or 0 if it does not fit size. */
size_t frame_key_text(uint8_t type, const char *const s[4], const uint32_t len[4], char *out,
                      size_t size);

/* The board key of an unpacked entry (README "Consistency": event_id,
 * market_key, book_key, outcome_name) as frame_key_text into out: 0, or -1
 * if it has none (no event or no outcome: delivered live, never in a
 * snapshot, never conflated). */
int frame_board_key(const struct frame_view *v, char *out, size_t size, size_t *len);

/* Unpack and validate buf[0..len).  The view points into buf and zone, valid
 * until the zone is cleared.  Returns 0, or -1 with a reason in err. */
int frame_unpack(const char *buf, size_t len, msgpack_zone *zone, struct frame_view *out, char *err,
                 size_t errlen);

#endif
