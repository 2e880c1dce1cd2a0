/*
 * wsguard: RFC 6455 framing checks that libwebsockets 4.1.6 leaves out.
 *
 * lws 4.1.6 accepts unmasked client frames (the check came in lws 5) and
 * only enforces a message size limit after buffering.  wsguard follows the
 * raw bytes a client sends after the upgrade and reports the first frame
 * that breaks the rules, with the close code to send:
 *   1002  unmasked frame, RSV bits without an extension, reserved opcode,
 *         control frame longer than 125 bytes or fragmented, continuation
 *         without a message, new message inside a fragmented one, 64-bit
 *         length with the top bit set
 *   1009  a data message (all its fragments) longer than the limit
 *
 * Pure (no I/O), worker role; one struct wsguard per connection.
 */
#ifndef WSB_WSGUARD_H
#define WSB_WSGUARD_H

#include <stddef.h>
#include <stdint.h>

struct wsguard {
    uint8_t state;
    uint8_t need;   /* bytes still to come of the extended length or the mask */
    uint8_t opcode; /* of the frame being read */
    uint8_t fin;
    uint8_t in_message; /* a fragmented data message is open */
    uint64_t length;    /* payload length being assembled */
    uint64_t remaining; /* payload bytes still to skip */
    uint64_t message_bytes;
};

/* Start at a frame boundary (right after the upgrade). */
void wsguard_init(struct wsguard *g);

/* Follow n more bytes from the client.  Returns 0, or the close code (1002,
 * 1009) with *why set and *frame_start = the offset in p where the offending
 * frame began (0 if it began in an earlier call), at the first violation;
 * feeding after that is pointless (the connection is to be closed). */
int wsguard_feed(struct wsguard *g, const uint8_t *p, size_t n, uint64_t max_message,
                 const char **why, size_t *frame_start);

#endif
