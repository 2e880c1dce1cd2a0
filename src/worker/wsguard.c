#include "wsguard.h"

enum { WSG_HDR0 = 0, WSG_HDR1, WSG_EXTLEN, WSG_MASK, WSG_PAYLOAD };

void
wsguard_init(struct wsguard *g)
{
    g->state = WSG_HDR0;
    g->need = 0;
    g->opcode = 0;
    g->fin = 0;
    g->in_message = 0;
    g->length = 0;
    g->remaining = 0;
    g->message_bytes = 0;
}

/* The frame's length is known: check it, then skip its payload. */
static int
wsguard_frame_length(struct wsguard *g, uint64_t max_message, const char **why)
{
    if (g->opcode >= 8) {
        if (g->length > 125) {
            *why = "control frame longer than 125 bytes";
            return 1002;
        }
    } else {
        g->message_bytes += g->length;
        if (g->message_bytes > max_message) {
            *why = "message too large";
            return 1009;
        }
    }
    g->remaining = g->length;
    g->state = WSG_MASK;
    g->need = 4;
    return 0;
}

int
wsguard_feed(struct wsguard *g, const uint8_t *p, size_t n, uint64_t max_message, const char **why,
             size_t *frame_start)
{
    size_t i = 0;

    *frame_start = 0;
    while (i < n) {
        uint8_t b = p[i];

        switch (g->state) {
        case WSG_HDR0:
            *frame_start = i;
            g->fin = b >> 7;
            g->opcode = b & 0x0f;
            i++;
            if (b & 0x70) {
                *why = "reserved bits set without an extension";
                return 1002;
            }
            if ((g->opcode >= 3 && g->opcode <= 7) || g->opcode >= 0x0b) {
                *why = "reserved opcode";
                return 1002;
            }
            if (g->opcode >= 8) {
                if (!g->fin) {
                    *why = "fragmented control frame";
                    return 1002;
                }
            } else if (g->opcode == 0) {
                if (!g->in_message) {
                    *why = "continuation frame without a message";
                    return 1002;
                }
            } else {
                if (g->in_message) {
                    *why = "new message inside a fragmented one";
                    return 1002;
                }
                g->message_bytes = 0;
            }
            if (g->opcode < 8)
                g->in_message = !g->fin;
            g->state = WSG_HDR1;
            break;
        case WSG_HDR1: {
            int rc;
            i++;
            if (!(b & 0x80)) {
                *why = "client frames must be masked";
                return 1002;
            }
            g->length = b & 0x7f;
            if (g->length == 126 || g->length == 127) {
                g->need = g->length == 126 ? 2 : 8;
                g->length = 0;
                g->state = WSG_EXTLEN;
                break;
            }
            rc = wsguard_frame_length(g, max_message, why);
            if (rc != 0)
                return rc;
            break;
        }
        case WSG_EXTLEN:
            g->length = (g->length << 8) | b;
            i++;
            if (--g->need == 0) {
                int rc;
                if (g->length >> 63) {
                    *why = "frame length with the top bit set";
                    return 1002;
                }
                rc = wsguard_frame_length(g, max_message, why);
                if (rc != 0)
                    return rc;
            }
            break;
        case WSG_MASK:
            i++;
            if (--g->need == 0)
                g->state = g->remaining ? WSG_PAYLOAD : WSG_HDR0;
            break;
        case WSG_PAYLOAD: {
            size_t take = n - i;
            if (take > g->remaining)
                take = (size_t)g->remaining;
            g->remaining -= take;
            i += take;
            if (g->remaining == 0)
                g->state = WSG_HDR0;
            break;
        }
        }
    }
    return 0;
}
