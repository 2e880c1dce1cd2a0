/*
 * decode: one Redis Streams entry -> one ring frame (see common/frame.h).
 *
 * Two encodings are accepted (the README's "Streams in"):
 *  - flat fields: event_id, sport_key, market_key, book_key, outcome_name,
 *    price, point, decimal_odds, implied_probability, novig_probability,
 *    fair_price, edge, normalized_at, plus any extra fields.  The numeric
 *    ones become numbers ("", "null" or absent -> nil; anything else that is
 *    not a finite number makes the entry malformed); all others stay strings.
 *    The seed's fields come first in the seed's order, extras follow in entry
 *    order.  An odds entry without sport_key gets the stream's sport.  A
 *    field given twice, or a NUL byte in a name or value, makes the entry
 *    malformed.
 *  - a single field `data` or `payload` holding a JSON object, passed on as
 *    is; sport_key absent -> the stream's sport, for filtering only.  A raw
 *    NUL byte anywhere in the text, or an object (at any depth) naming a
 *    key twice, makes the entry malformed.
 *
 * In both, an empty sport_key counts as missing.
 *
 * Pure (no I/O, no logging), used by the ingest; the fuzzers and unit tests
 * call it directly.  Malformed input returns -1 with the reason in err and
 * leaves nothing in the output buffer.
 */
#ifndef WSB_DECODE_H
#define WSB_DECODE_H

#include "frame.h"

#include <hiredis/hiredis.h>
#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

#define DECODE_MAX_FIELDS     256 /* field/value pairs in a flat entry */
#define DECODE_MAX_FIELD_NAME 128

struct decode_input {
    enum frame_type type;
    const char *stream_sport; /* default sport_key (odds streams); NULL for opportunities */
    size_t nfields;           /* number of field/value pairs */
    const char *const *names;
    const size_t *name_lens;
    const char *const *values;
    const size_t *value_lens;
};

/* Decode in into out (cleared first).  max_size bounds the frame.  Returns 0
 * with the frame in out, or -1 with a one-line reason in err. */
int decode_entry(const struct decode_input *in, uint32_t max_size, msgpack_sbuffer *out, char *err,
                 size_t errlen);

/* The same from an entry's field list as hiredis returns it (XREADGROUP,
 * XRANGE: a flat array of name, value strings), for a stream of type with
 * default sport stream_sport (NULL for opportunities).  A list that is not
 * such an array (a trimmed pending entry has none), or has more than
 * DECODE_MAX_FIELDS pairs, is malformed too. */
int decode_reply_fields(const redisReply *fields, enum frame_type type, const char *stream_sport,
                        uint32_t max_size, msgpack_sbuffer *out, char *err, size_t errlen);

#endif
