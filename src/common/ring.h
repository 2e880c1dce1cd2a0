/*
 * ring: the broadcast ring between the ingest (its only writer) and the
 * workers (any number of readers), in shared memory.
 *
 * Frames are variable-length byte strings, each numbered by a free-running
 * 64-bit sequence number and tagged with the stream it came from and its Redis
 * entry id.  The writer never waits for a reader: a reader that falls more
 * than a ring behind is told how many frames it missed and continues from the
 * oldest frame still intact.  A reader never returns a half-written or
 * overwritten frame.
 *
 * The ring lives inside a region the caller maps (struct ring_header followed
 * by its slot table and data area, offsets only, no pointers), so it is valid
 * at any address in any process that maps it.  Each process works on it
 * through its own struct ring, a handle in its private memory that holds the
 * geometry (slot count, data size, largest frame) the process was given by
 * its configuration.  The geometry is also written into the shared header,
 * for a debugger, but never read back from there: a process that scribbles
 * on the shared header (a bug, a stray write) cannot make another one index
 * out of the ring.  Protocol and memory orderings are described at the top
 * of ring.c.
 */
#ifndef WSB_RING_H
#define WSB_RING_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define RING_CACHELINE 64

/* One slot per frame.  Written by the ingest only. */
struct ring_slot {
    _Atomic uint64_t seq;      /* sequence of the frame in this slot; RING_SEQ_BUSY while written */
    _Atomic uint64_t data_pos; /* free-running byte position of the frame in the data area */
    _Atomic uint32_t len;      /* frame length in bytes */
    _Atomic uint32_t stream;   /* index into the shm stream table */
    _Atomic uint64_t id_ms;    /* Redis entry id <ms>-<seq> */
    _Atomic uint64_t id_seq;
    _Atomic uint32_t kind; /* enum ring_kind */
    uint32_t reserved0;
    _Atomic uint64_t published_us; /* CLOCK_MONOTONIC, us, at publication (ring_frame_meta) */
    uint64_t reserved[1];          /* room to grow without a layout break */
};

#define RING_SEQ_BUSY UINT64_MAX

/* The shared part, at the start of the ring's memory. */
struct ring_header {
    /* Written once by ring_init() before any other process exists; never
     * read by the ring's code (struct ring holds the trusted copy). */
    uint32_t nslots; /* power of two */
    uint32_t max_frame;
    uint64_t data_size;    /* power of two, >= 2 * max_frame */
    uint64_t slots_offset; /* from the start of struct ring */
    uint64_t data_offset;
    uint8_t pad0[RING_CACHELINE - 32];

    /* Written by the ingest only (release); read by the workers (acquire). */
    _Atomic uint64_t head;          /* sequence of the next frame to be published */
    _Atomic uint64_t data_reserved; /* end of the last byte range the writer may be filling */
    uint8_t pad1[RING_CACHELINE - 16];
};

/* A process's handle on a ring: private to the process, never in shared
 * memory.  Filled by ring_init() or ring_attach() from the caller's geometry;
 * the pointers are into the ring's memory. */
struct ring {
    struct ring_header *hdr;
    struct ring_slot *slots;
    char *data;
    uint32_t nslots; /* power of two */
    uint32_t max_frame;
    uint64_t data_size; /* power of two, >= 2 * max_frame */
};

/* What a frame is.  Keep the values: they are in shared memory. */
enum ring_kind {
    RING_KIND_ENTRY = 0,   /* a stream entry (common/frame.h) */
    RING_KIND_RESET = 1,   /* the history of `stream` was lost (deleted, Redis restarted empty):
                            * what came before is void; the frame is the new epoch's text */
    RING_KIND_HISTORY = 2, /* the snapshot table was loaded with `stream`'s history up to the
                            * frame's id, which is the stream's position from here on */
};

struct ring_frame_meta {
    uint32_t stream;
    uint64_t id_ms;
    uint64_t id_seq;
    uint32_t kind; /* enum ring_kind */
    /* When the writer published the frame (CLOCK_MONOTONIC, us: the same
     * clock in every process of the host), for the delivery latency; the
     * writer sets it, 0 if it does not care.  Carried as is. */
    uint64_t published_us;
};

/* Bytes the ring needs for nslots frames, data_size bytes of frame data. */
size_t ring_region_size(uint32_t nslots, uint64_t data_size);

/* Data area for nslots frames averaging avg_frame bytes, as a power of two no
 * smaller than 4 * max_frame. */
uint64_t ring_data_size_for(uint32_t nslots, uint32_t avg_frame, uint32_t max_frame);

/* Lay out an empty ring in mem (ring_region_size bytes, zeroed by the caller,
 * cache-line aligned) and point the handle r at it.  nslots and data_size
 * must be powers of two, and data_size at least 2 * max_frame.  0, or -1 if
 * the geometry is not valid (mem untouched). */
int ring_init(struct ring *r, void *mem, uint32_t nslots, uint64_t data_size, uint32_t max_frame);

/* Point the handle r at a ring already laid out in mem with this geometry
 * (another process's ring_init, before fork): nothing is read from mem.
 * 0, or -1 if the geometry is not valid. */
int ring_attach(struct ring *r, void *mem, uint32_t nslots, uint64_t data_size, uint32_t max_frame);

/* Writer: copy len bytes in as the next frame.  Returns its sequence number,
 * or -1 if len exceeds max_frame.  Never blocks.  Only one process may call
 * this at a time (the ingest). */
int64_t ring_publish(struct ring *r, const void *frame, uint32_t len,
                     const struct ring_frame_meta *meta);

/* Sequence number the next frame will have; frames 0 .. head-1 were published. */
uint64_t ring_head(const struct ring *r);

/* Writer, after a restart: the metadata of frame seq if it is still in the
 * ring and intact.  Returns 0, or -1 if it was overwritten or never written. */
int ring_peek_meta(const struct ring *r, uint64_t seq, struct ring_frame_meta *meta);

struct ring_reader {
    uint64_t next;   /* sequence of the next frame to read */
    uint64_t missed; /* frames skipped because the writer lapped this reader */
};

/* Start reading at the current head: only frames published from now on. */
void ring_reader_init(const struct ring *r, struct ring_reader *rd);

/*
 * Copy the next frame into buf (size bytes, at least max_frame).  Returns 1
 * with *len and *meta set, 0 if there is no new frame.  If the reader was
 * lapped, rd->missed grows and reading goes on from the oldest frame still
 * intact.  Never blocks, never returns a torn frame.
 */
int ring_read(const struct ring *r, struct ring_reader *rd, void *buf, size_t size, uint32_t *len,
              struct ring_frame_meta *meta);

#endif
