/*
 * streamid: Redis stream entry ids ("1764750000000-0"): parse, compare,
 * format.
 *
 * An id is two unsigned 64-bit numbers, milliseconds and a sequence within
 * the millisecond; entries of a stream are ordered by (ms, seq).  The ingest
 * uses these to tell an entry already in the ring from a new one after a
 * restart; a worker can use them to compare a client's id with the ring's.
 * Pure functions, no I/O, safe in every role.
 */
#ifndef WSB_STREAMID_H
#define WSB_STREAMID_H

#include <stddef.h>
#include <stdint.h>

struct streamid {
    uint64_t ms;
    uint64_t seq;
};

/* Longest text form: two 20-digit numbers, '-' and the NUL. */
#define STREAMID_STR_MAX 42

/*
 * Parse s[0..len) (need not be NUL-terminated) as "<ms>-<seq>" or "<ms>",
 * each part one or more decimal digits that fit in 64 bits.  "<ms>" alone
 * means sequence 0, as XADD, XGROUP CREATE and XREAD read it (XRANGE reads
 * a bare end id as the last sequence: a caller that needs that sets seq
 * itself).  Signs, spaces, empty parts, trailing bytes and the special ids
 * ("-", "+", "$", ">", "*") are refused.  Returns 0 and fills *out, or -1
 * leaving *out unchanged.
 */
int streamid_parse(const char *s, size_t len, struct streamid *out);

/* <0, 0 or >0 as a is before, equal to or after b in a stream. */
int streamid_cmp(const struct streamid *a, const struct streamid *b);

/* "<ms>-<seq>" into buf (STREAMID_STR_MAX bytes always suffice); returns the
 * length, or 0 (buf then "" if size > 0) when size is too small. */
size_t streamid_format(const struct streamid *id, char *buf, size_t size);

#endif
