#include "rxguard.h"
#include "wsguard.h"
#include "wsp.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum rxguard_phase {
    RXGUARD_OFF = 0, /* not a connection we follow */
    RXGUARD_HEADERS, /* in a request's headers */
    RXGUARD_FRAMES,  /* after an upgrade request: WebSocket frames */
    RXGUARD_DISCARD  /* after a violation or our close frame */
};

struct rxguard_slot {
    struct wsp_session *ss; /* NULL until the upgrade completes */
    struct wsguard g;
    uint64_t max_message;
    uint8_t phase;
    uint8_t crlf;     /* bytes of "\r\n\r\n" matched so far */
    uint8_t word;     /* bytes of "websocket" matched so far */
    uint8_t upgrade;  /* "websocket" seen in these headers */
    int pending_code; /* a violation before the session existed */
    const char *pending_why;
};

static struct rxguard_slot *rxguard_slots;
static size_t rxguard_nslots;

static struct rxguard_slot *
rxguard_slot(int fd)
{
    if (fd < 0 || (size_t)fd >= rxguard_nslots)
        return NULL;
    return &rxguard_slots[fd];
}

void
rxguard_accept(int fd, uint64_t max_message)
{
    if (fd < 0)
        return;
    if ((size_t)fd >= rxguard_nslots) {
        size_t n = rxguard_nslots ? rxguard_nslots : 1024;
        struct rxguard_slot *p;
        while (n <= (size_t)fd)
            n *= 2;
        p = realloc(rxguard_slots, n * sizeof(*p));
        if (p == NULL)
            return; /* unguarded, not broken: lws still parses the frames */
        memset(p + rxguard_nslots, 0, (n - rxguard_nslots) * sizeof(*p));
        rxguard_slots = p;
        rxguard_nslots = n;
    }
    memset(&rxguard_slots[fd], 0, sizeof(rxguard_slots[fd]));
    rxguard_slots[fd].max_message = max_message;
    rxguard_slots[fd].phase = RXGUARD_HEADERS;
}

void
rxguard_established(int fd, struct wsp_session *ss)
{
    struct rxguard_slot *slot = rxguard_slot(fd);

    if (slot == NULL || slot->phase == RXGUARD_OFF)
        return;
    if (slot->phase == RXGUARD_HEADERS) {
        /* lws upgraded a request our scan did not take for one: check
         * from here on rather than not at all. */
        slot->phase = RXGUARD_FRAMES;
        wsguard_init(&slot->g);
    }
    slot->ss = ss;
    if (slot->pending_code != 0)
        wsp_frame_violation(ss, slot->pending_code, slot->pending_why);
}

void
rxguard_detach(int fd, const struct wsp_session *ss)
{
    struct rxguard_slot *slot = rxguard_slot(fd);

    if (slot != NULL && slot->ss == ss)
        memset(slot, 0, sizeof(*slot));
}

void
rxguard_discard(int fd, const struct wsp_session *ss)
{
    struct rxguard_slot *slot = rxguard_slot(fd);

    if (slot != NULL && slot->ss == ss && slot->phase != RXGUARD_OFF)
        slot->phase = RXGUARD_DISCARD;
}

/* Follow header bytes p[0..n): the offset just past the end of an upgrade
 * request's headers (the slot is then in RXGUARD_FRAMES), or n. */
static size_t
rxguard_headers(struct rxguard_slot *slot, const unsigned char *p, size_t n)
{
    static const char end[] = "\r\n\r\n", word[] = "websocket";

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = p[i];
        if ((unsigned char)tolower(ch) == (unsigned char)word[slot->word]) {
            if (++slot->word == sizeof(word) - 1) {
                slot->upgrade = 1;
                slot->word = 0;
            }
        } else {
            slot->word = (unsigned char)tolower(ch) == (unsigned char)word[0];
        }
        if (ch == (unsigned char)end[slot->crlf])
            slot->crlf++;
        else
            slot->crlf = ch == '\r';
        if (slot->crlf == 4) {
            int upgrade = slot->upgrade;
            slot->crlf = slot->word = slot->upgrade = 0;
            if (upgrade) {
                slot->phase = RXGUARD_FRAMES;
                wsguard_init(&slot->g);
                return i + 1;
            }
            /* A plain request: the next one's headers may follow. */
        }
    }
    return n;
}

int
rxguard_in_headers(int fd)
{
    struct rxguard_slot *slot = rxguard_slot(fd);

    return slot != NULL && slot->phase == RXGUARD_HEADERS;
}

size_t
rxguard_headers_take(int fd, const void *peeked, size_t n)
{
    struct rxguard_slot *slot = rxguard_slot(fd), scratch;

    if (slot == NULL || slot->phase != RXGUARD_HEADERS)
        return n;
    scratch = *slot;
    return rxguard_headers(&scratch, peeked, n);
}

ssize_t
rxguard_filter(int fd, void *buf, size_t n)
{
    struct rxguard_slot *slot = rxguard_slot(fd);
    const char *why = NULL;
    size_t off = 0, frame_start;
    int code;

    if (slot == NULL || slot->phase == RXGUARD_OFF)
        return (ssize_t)n;
    if (slot->ss != NULL)
        wsp_peer_active(slot->ss);
    if (slot->phase == RXGUARD_DISCARD) {
        errno = EAGAIN;
        return -1;
    }
    if (slot->phase == RXGUARD_HEADERS) {
        off = rxguard_headers(slot, buf, n);
        if (off == n)
            return (ssize_t)n;
    }
    code = wsguard_feed(&slot->g, (const uint8_t *)buf + off, n - off, slot->max_message, &why,
                        &frame_start);
    if (code == 0)
        return (ssize_t)n;
    slot->phase = RXGUARD_DISCARD;
    if (slot->ss != NULL) {
        wsp_frame_violation(slot->ss, code, why);
    } else {
        slot->pending_code = code;
        slot->pending_why = why;
    }
    if (off + frame_start == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)(off + frame_start); /* the headers and frames before the offending one */
}
