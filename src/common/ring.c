/*
 * The ring protocol.
 *
 * One writer (the ingest), any number of readers (the workers), no locks,
 * and the writer never looks at a reader.
 *
 * Frame seq lives in slot seq & (nslots - 1).  Its bytes live in a separate
 * data area at the free-running byte position data_pos; physical offset
 * data_pos & (data_size - 1).  A frame never wraps: if it would cross the end
 * of the data area, the writer skips to the start of the next lap.
 *
 * Writer, for frame s of len bytes:
 *   1. choose pos; store data_reserved = pos + len            (relaxed)
 *   2. store slot.seq = RING_SEQ_BUSY                          (relaxed)
 *   3. release fence: 1 and 2 are visible before any of 4
 *   4. write slot fields (relaxed) and copy the bytes
 *   5. store slot.seq = s                                      (release)
 *   6. store head = s + 1                                      (release)
 *
 * Reader, for frame s (a seqlock read, as include/linux/seqlock.h):
 *   a. load head (acquire, pairs with 6); s >= head: nothing new.
 *      head - s > nslots: lapped, skip to head - nslots.
 *   b. load slot.seq (acquire, pairs with 5); != s: frame s was
 *      overwritten (or is being): count it missed, go on with s + 1.
 *   c. read the fields, copy the bytes out
 *   d. acquire fence, then reload slot.seq (pairs with 2-3): != s means the
 *      writer began rewriting this slot during c; discard the copy and
 *      count the frame missed.
 *   e. load data_reserved (after the same fence, pairs with 1-3): if it is
 *      more than data_size past data_pos, a later frame's bytes may have
 *      landed on these; discard the copy and count the frame as missed.
 *
 * Every index and bound comes from the caller's handle (struct ring), never
 * from the shared header: slot = seq & (nslots - 1) and the data offsets stay
 * inside the mapping whatever another process wrote there.  What is shared
 * and changes (head, data_reserved, the slots) is checked before use: a
 * reader bounds a slot's data_pos and len by its own geometry.
 *
 * A discarded copy is never returned, so a reader sees each frame it returns
 * exactly as published.  If the ingest dies between 2 and 6, head was not
 * advanced, no reader can have seen the frame, and the next ingest simply
 * writes frame `head` again.  data_reserved stays ahead of any byte written,
 * so it doubles as the writer's allocation cursor across restarts.
 */
#include "ring.h"

#include <string.h>

size_t
ring_region_size(uint32_t nslots, uint64_t data_size)
{
    return sizeof(struct ring_header) + (size_t)nslots * sizeof(struct ring_slot) +
           (size_t)data_size;
}

uint64_t
ring_data_size_for(uint32_t nslots, uint32_t avg_frame, uint32_t max_frame)
{
    uint64_t want = (uint64_t)nslots * avg_frame;
    uint64_t size = 4096;

    if (want < (uint64_t)max_frame * 4)
        want = (uint64_t)max_frame * 4;
    while (size < want)
        size <<= 1;
    return size;
}

int
ring_attach(struct ring *r, void *mem, uint32_t nslots, uint64_t data_size, uint32_t max_frame)
{
    if (nslots == 0 || (nslots & (nslots - 1)) != 0 || data_size == 0 ||
        (data_size & (data_size - 1)) != 0 || (uint64_t)max_frame * 2 > data_size)
        return -1;
    r->hdr = mem;
    r->slots = (struct ring_slot *)((char *)mem + sizeof(struct ring_header));
    r->data = (char *)mem + sizeof(struct ring_header) + (size_t)nslots * sizeof(struct ring_slot);
    r->nslots = nslots;
    r->max_frame = max_frame;
    r->data_size = data_size;
    return 0;
}

int
ring_init(struct ring *r, void *mem, uint32_t nslots, uint64_t data_size, uint32_t max_frame)
{
    struct ring_header *h = mem;

    if (ring_attach(r, mem, nslots, data_size, max_frame) != 0)
        return -1;
    /* For a debugger only: the ring's code reads the handle's copy. */
    h->nslots = nslots;
    h->max_frame = max_frame;
    h->data_size = data_size;
    h->slots_offset = (uint64_t)((char *)r->slots - (char *)mem);
    h->data_offset = (uint64_t)(r->data - (char *)mem);
    atomic_store_explicit(&h->head, 0, memory_order_relaxed);
    atomic_store_explicit(&h->data_reserved, 0, memory_order_relaxed);
    /* Slot seq 0 would look like frame 0 before it is written. */
    for (uint32_t i = 0; i < nslots; i++)
        atomic_store_explicit(&r->slots[i].seq, RING_SEQ_BUSY, memory_order_relaxed);
    return 0;
}

int64_t
ring_publish(struct ring *r, const void *frame, uint32_t len, const struct ring_frame_meta *meta)
{
    struct ring_header *h = r->hdr;
    uint64_t seq = atomic_load_explicit(&h->head, memory_order_relaxed);
    struct ring_slot *slot = &r->slots[seq & (r->nslots - 1)];
    uint64_t pos = atomic_load_explicit(&h->data_reserved, memory_order_relaxed);
    uint64_t mask = r->data_size - 1;

    if (len > r->max_frame)
        return -1;
    if ((pos & mask) + len > r->data_size)
        pos = (pos + r->data_size) & ~mask; /* skip the tail: frames never wrap */

    atomic_store_explicit(&h->data_reserved, pos + len, memory_order_relaxed);
    atomic_store_explicit(&slot->seq, RING_SEQ_BUSY, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);

    atomic_store_explicit(&slot->data_pos, pos, memory_order_relaxed);
    atomic_store_explicit(&slot->len, len, memory_order_relaxed);
    atomic_store_explicit(&slot->stream, meta->stream, memory_order_relaxed);
    atomic_store_explicit(&slot->id_ms, meta->id_ms, memory_order_relaxed);
    atomic_store_explicit(&slot->id_seq, meta->id_seq, memory_order_relaxed);
    atomic_store_explicit(&slot->kind, meta->kind, memory_order_relaxed);
    atomic_store_explicit(&slot->published_us, meta->published_us, memory_order_relaxed);
    memcpy(r->data + (pos & mask), frame, len);

    atomic_store_explicit(&slot->seq, seq, memory_order_release);
    atomic_store_explicit(&h->head, seq + 1, memory_order_release);
    return (int64_t)seq;
}

uint64_t
ring_head(const struct ring *r)
{
    return atomic_load_explicit(&r->hdr->head, memory_order_acquire);
}

int
ring_peek_meta(const struct ring *r, uint64_t seq, struct ring_frame_meta *meta)
{
    struct ring_slot *slot = &r->slots[seq & (r->nslots - 1)];

    if (seq >= ring_head(r))
        return -1;
    if (atomic_load_explicit(&slot->seq, memory_order_acquire) != seq)
        return -1;
    meta->stream = atomic_load_explicit(&slot->stream, memory_order_relaxed);
    meta->id_ms = atomic_load_explicit(&slot->id_ms, memory_order_relaxed);
    meta->id_seq = atomic_load_explicit(&slot->id_seq, memory_order_relaxed);
    meta->kind = atomic_load_explicit(&slot->kind, memory_order_relaxed);
    meta->published_us = atomic_load_explicit(&slot->published_us, memory_order_relaxed);
    /* The slot may have been rewritten while we read it. */
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != seq)
        return -1;
    return 0;
}

void
ring_reader_init(const struct ring *r, struct ring_reader *rd)
{
    rd->next = ring_head(r);
    rd->missed = 0;
}

int
ring_read(const struct ring *r, struct ring_reader *rd, void *buf, size_t size, uint32_t *len,
          struct ring_frame_meta *meta)
{
    for (;;) {
        uint64_t head = ring_head(r);
        uint64_t s = rd->next;
        struct ring_slot *slot;
        uint64_t pos, reserved;
        uint32_t n;

        if (s >= head)
            return 0;
        if (head - s > r->nslots) {
            rd->missed += head - r->nslots - s;
            rd->next = s = head - r->nslots;
        }
        slot = &r->slots[s & (r->nslots - 1)];
        if (atomic_load_explicit(&slot->seq, memory_order_acquire) != s) {
            /* Frame s is gone: the slot holds a later frame, or is being
             * rewritten for one (a writer that stalls or dies there must not
             * make us spin).  Count it and move on. */
            rd->missed++;
            rd->next = s + 1;
            continue;
        }

        pos = atomic_load_explicit(&slot->data_pos, memory_order_relaxed);
        n = atomic_load_explicit(&slot->len, memory_order_relaxed);
        meta->stream = atomic_load_explicit(&slot->stream, memory_order_relaxed);
        meta->id_ms = atomic_load_explicit(&slot->id_ms, memory_order_relaxed);
        meta->id_seq = atomic_load_explicit(&slot->id_seq, memory_order_relaxed);
        meta->kind = atomic_load_explicit(&slot->kind, memory_order_relaxed);
        meta->published_us = atomic_load_explicit(&slot->published_us, memory_order_relaxed);
        /* pos and n may come from two different frames if the writer rewrote
         * the slot meanwhile (the re-check below catches that), so bound the
         * copy by themselves before trusting them. */
        int sane = n <= size && n <= r->max_frame && (pos & (r->data_size - 1)) + n <= r->data_size;
        if (sane)
            memcpy(buf, r->data + (pos & (r->data_size - 1)), n);

        atomic_thread_fence(memory_order_acquire);
        rd->next = s + 1;
        if (atomic_load_explicit(&slot->seq, memory_order_relaxed) != s) {
            rd->missed++;
            continue;
        }
        reserved = atomic_load_explicit(&r->hdr->data_reserved, memory_order_relaxed);
        if (reserved - pos > r->data_size || !sane) {
            /* Bytes overwritten while we copied, or a frame that cannot be:
             * skip it rather than hand out garbage. */
            rd->missed++;
            continue;
        }
        *len = n;
        return 1;
    }
}
