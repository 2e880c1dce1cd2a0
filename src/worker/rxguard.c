#include "rxguard.h"
#include "wsguard.h"
#include "wsp.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct rxguard_slot {
    struct wsp_session *ss;
    struct wsguard g;
    uint64_t max_message;
    int blocked;
};

static struct rxguard_slot *rxguard_slots;
static size_t rxguard_nslots;

void
rxguard_attach(int fd, struct wsp_session *ss, uint64_t max_message)
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
    rxguard_slots[fd].ss = ss;
    rxguard_slots[fd].max_message = max_message;
    rxguard_slots[fd].blocked = 0;
    wsguard_init(&rxguard_slots[fd].g);
}

void
rxguard_detach(int fd, const struct wsp_session *ss)
{
    if (fd >= 0 && (size_t)fd < rxguard_nslots && rxguard_slots[fd].ss == ss)
        rxguard_slots[fd].ss = NULL;
}

void
rxguard_discard(int fd, const struct wsp_session *ss)
{
    if (fd >= 0 && (size_t)fd < rxguard_nslots && rxguard_slots[fd].ss == ss)
        rxguard_slots[fd].blocked = 1;
}

ssize_t
rxguard_filter(int fd, void *buf, size_t n)
{
    struct rxguard_slot *slot;
    const char *why = NULL;
    size_t frame_start;
    int code;

    if (fd < 0 || (size_t)fd >= rxguard_nslots || rxguard_slots[fd].ss == NULL)
        return (ssize_t)n;
    slot = &rxguard_slots[fd];
    wsp_peer_active(slot->ss);
    if (slot->blocked) {
        errno = EAGAIN;
        return -1;
    }
    code = wsguard_feed(&slot->g, buf, n, slot->max_message, &why, &frame_start);
    if (code == 0)
        return (ssize_t)n;
    wsp_frame_violation(slot->ss, code, why);
    slot->blocked = 1;
    if (frame_start == 0) {
        errno = EAGAIN;
        return -1;
    }
    return (ssize_t)frame_start; /* the frames before the offending one are fine */
}
