/*
 * snaptab: the snapshot table, the latest value of every key, in shared
 * memory.  The ingest (its only writer) stores each keyed frame it
 * publishes; the workers (any number of readers) copy entries out of it to
 * send a newly subscribed client the current state of the board.
 *
 * A key is a type (odds or opportunity) and four strings: event, market,
 * book, outcome.  The sport is stored with the value, for filter matching,
 * but is not part of the key.  A value is the frame's bytes (msgpack), with
 * the Redis entry id and stream it came from and the ring sequence number
 * of the frame.  A key's value never goes back to an older entry id.
 *
 * The table lives inside a region the caller maps MAP_SHARED (and
 * MAP_NORESERVE: pages are touched only as the table grows) and zeroes
 * before the first fork: struct snaptab_header, a row per stream, an array
 * of max_keys fixed-size entries and a data area of chunks.  Offsets and
 * indexes only, no pointers, so it is valid at any address.  Each process
 * works on it through its own struct snaptab, a handle in private memory
 * holding the geometry its configuration gave it; the header repeats the
 * geometry for a debugger, and no process reads it back.  A reader bounds
 * every index and length it loads from the region by its own geometry, and
 * every loop by a count of its own, so garbage in the region (a torn read,
 * a writer's bug) can make it skip an entry but never read outside the
 * region or spin for ever.
 *
 * Across processes: each entry, and the header's applied/pos, is a seqlock
 * (include/linux/seqlock.h, with C11 fences as in addrtab.h); a reader
 * keeps a copy only if the counter was even and unchanged around it, so it
 * never returns a torn entry.  A new value is written into free chunks
 * first and switched in with a few stores under the entry's counter, so a
 * reader waits for a writer only for those stores.  The writer's index
 * (key -> entry), free lists and age lists are in its private memory and
 * rebuilt from the entries by snaptab_attach_writer: an ingest that starts
 * after its predecessor died mid-write repairs the table first.  The
 * protocol and memory orderings are described at the top of snaptab.c.
 *
 * Space: SNAPTAB_CHUNKS_PER_KEY chunks of SNAPTAB_CHUNK bytes per key, so
 * 512 data bytes per key on average (a value takes its five strings, 2
 * bytes of length each, plus the frame, rounded up to whole chunks of
 * SNAPTAB_CHUNK_DATA bytes); with larger values the chunks run out before
 * max_keys do.  Either way the least recently updated keys are evicted
 * first.  A value above snaptab_max_data() is refused.
 *
 * I/O-free and lock-free; the readers never block the writer.
 */
#ifndef WSB_SNAPTAB_H
#define WSB_SNAPTAB_H

#include "streamid.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPTAB_MAGIC          0x5753425350415431ULL /* "WSBSPAT1" */
#define SNAPTAB_CACHELINE      64
#define SNAPTAB_PAGE           4096
/* One chunk of the data area: a 4-byte link, then data. */
#define SNAPTAB_CHUNK          256
#define SNAPTAB_CHUNK_DATA     (SNAPTAB_CHUNK - 4)
#define SNAPTAB_CHUNKS_PER_KEY 2
/* Largest value (five strings with their lengths, plus the frame) an entry
 * may hold; a smaller table holds at most a quarter of its data area per
 * entry (snaptab_max_data), so one value never evicts the whole table. */
#define SNAPTAB_MAX_DATA       65536
#define SNAPTAB_MAX_KEYS       (1u << 28)
#define SNAPTAB_MAX_STREAMS    4096
/* End of a chunk chain, no entry, no stream. */
#define SNAPTAB_NONE           UINT32_MAX

/* The strings of a key, in the order they are stored. */
enum snaptab_str {
    SNAPTAB_SPORT = 0, /* stored, not part of the key */
    SNAPTAB_EVENT,
    SNAPTAB_MARKET,
    SNAPTAB_BOOK,
    SNAPTAB_OUTCOME,
    SNAPTAB_NSTR
};

/* Entry types: part of the key, and each has its own TTL. */
#define SNAPTAB_ODDS        0
#define SNAPTAB_OPPORTUNITY 1
#define SNAPTAB_NTYPES      2

/* Entry states. */
#define SNAPTAB_EMPTY 0
#define SNAPTAB_LIVE  1

/*
 * One entry, one cache line.  Written by the ingest only, under version:
 * odd while it writes, one more at each end of a write (a value set,
 * replaced, deleted, or the entry reused for another key).  The workers
 * read it with snaptab_read.
 */
struct snaptab_entry {
    _Atomic uint64_t version;
    _Atomic uint64_t id_ms; /* Redis entry id of the value */
    _Atomic uint64_t id_seq;
    _Atomic uint64_t ring_seq;   /* ring sequence of the frame that set the value */
    _Atomic uint64_t updated_ms; /* wall clock when set, for the TTLs */
    _Atomic uint64_t hash;       /* the key's hash: for the writer's index only */
    _Atomic uint32_t stream;     /* index into the shm stream table */
    _Atomic uint32_t len;        /* data bytes: strings with their lengths, then the frame */
    _Atomic uint32_t first;      /* first chunk of the data */
    _Atomic uint8_t state;       /* SNAPTAB_EMPTY or SNAPTAB_LIVE */
    _Atomic uint8_t type;        /* SNAPTAB_ODDS or SNAPTAB_OPPORTUNITY */
    uint8_t pad[2];
};

/* One chunk of the data area.  Written by the ingest only, and only while
 * no entry holds it (a reader that still follows it finds its entry's
 * version changed). */
struct snaptab_chunk {
    _Atomic uint32_t next; /* next chunk of the chain, SNAPTAB_NONE at the end */
    unsigned char data[SNAPTAB_CHUNK_DATA];
};

/* Per stream: the id of the last entry of that stream applied. */
struct snaptab_pos {
    _Atomic uint64_t ms;
    _Atomic uint64_t seq;
};

/* The shared part, at the start of the table's memory. */
struct snaptab_header {
    /* Written once by snaptab_init() before any other process exists; never
     * read by the table's code (struct snaptab holds the trusted copy). */
    uint64_t magic;
    uint32_t max_keys;
    uint32_t nstreams;
    uint32_t nchunks;
    uint32_t chunk_size;
    uint32_t max_data;
    uint32_t reserved;
    uint64_t pos_offset; /* from the start of the header */
    uint64_t entries_offset;
    uint64_t chunks_offset;
    uint8_t pad0[SNAPTAB_CACHELINE - 56];

    /* Written by the ingest only.  version: seqlock over applied and the
     * pos rows (odd while the writer changes them).  The intent_* words say
     * what a change in progress will leave, so an ingest that finds version
     * odd after its predecessor died completes it.  used_entries: entries
     * 0 .. used_entries-1 may be live (release; the workers load it with
     * acquire). */
    _Atomic uint64_t version;
    _Atomic uint64_t applied; /* every ring frame with seq < applied is reflected */
    _Atomic uint64_t intent_applied;
    _Atomic uint64_t intent_ms;
    _Atomic uint64_t intent_seq;
    _Atomic uint32_t intent_stream; /* SNAPTAB_NONE: applied only */
    _Atomic uint32_t used_entries;
    uint8_t pad1[SNAPTAB_CACHELINE - 48];

    /* Stats: written by the ingest only, relaxed; read by anyone
     * (snaptab_stats).  Counters, nothing is ordered by them. */
    _Atomic uint64_t keys;              /* live entries */
    _Atomic uint64_t bytes;             /* data bytes of the live entries */
    _Atomic uint64_t chunks;            /* chunks held by the live entries */
    _Atomic uint64_t evicted_ttl;       /* total, by snaptab_expire */
    _Atomic uint64_t evicted_full;      /* total: max_keys live, or no chunks left */
    _Atomic uint64_t dropped_too_large; /* values above max_data, not stored */
    uint8_t pad2[SNAPTAB_CACHELINE - 48];
};

/* The writer's private state (snaptab.c). */
struct snaptab_writer;

/* A process's handle on the table: private to the process, never in shared
 * memory.  Filled by snaptab_init() or snaptab_attach_*() from the caller's
 * geometry; the four pointers are into the table's memory. */
struct snaptab {
    struct snaptab_header *hdr;
    struct snaptab_pos *pos;       /* nstreams */
    struct snaptab_entry *entries; /* max_keys */
    struct snaptab_chunk *chunks;  /* nchunks */
    uint32_t max_keys;
    uint32_t nstreams;
    uint32_t nchunks;         /* SNAPTAB_CHUNKS_PER_KEY * max_keys */
    uint32_t max_data;        /* largest value an entry may hold */
    struct snaptab_writer *w; /* the writer's index; NULL in a reader */
};

/* A key: the five strings, not NUL-terminated.  s[i] may be NULL only with
 * len[i] 0 (an absent sport, say).  The key is the type plus event,
 * market, book and outcome. */
struct snaptab_key {
    const char *s[SNAPTAB_NSTR];
    uint32_t len[SNAPTAB_NSTR];
};

/* What snaptab_read copied: the pointers are into the caller's buffer. */
struct snaptab_copy {
    uint8_t type;
    uint32_t stream;
    struct streamid id;
    uint64_t ring_seq;
    uint64_t updated_ms;
    const char *s[SNAPTAB_NSTR];
    uint32_t len[SNAPTAB_NSTR];
    const char *frame;
    uint32_t frame_len;
};

struct snaptab_stats {
    uint64_t keys;
    uint64_t bytes;
    uint64_t chunks;
    uint64_t evicted_ttl;
    uint64_t evicted_full;
    uint64_t dropped_too_large;
    uint32_t max_keys;
    uint32_t nchunks;
    uint64_t capacity_bytes; /* data bytes the chunks hold: nchunks * SNAPTAB_CHUNK_DATA */
};

/* Bytes the table needs for max_keys keys and nstreams streams (page
 * multiples: the parts start on pages), or 0 if the geometry is not valid
 * (max_keys 1 .. SNAPTAB_MAX_KEYS, nstreams 1 .. SNAPTAB_MAX_STREAMS). */
size_t snaptab_region_size(uint32_t max_keys, uint32_t nstreams);

/* Lay out an empty table in mem (snaptab_region_size bytes, zeroed by the
 * caller, SNAPTAB_CACHELINE aligned) and point the handle t at it as a
 * reader.  The supervisor, before the first fork.  0, or -1 if the geometry
 * or the alignment is not valid (mem untouched). */
int snaptab_init(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams);

/* Point the handle t at a table laid out in mem with this geometry, as a
 * reader: nothing is read from mem.  Any process.  0, or -1 as
 * snaptab_init. */
int snaptab_attach_reader(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams);

/*
 * Make t the table's writer: build the private index, free lists and age
 * lists from the entries, repairing what a writer that died mid-write left
 * (an entry it was writing, or one whose chunk chain is out of bounds,
 * loops, is too short or shares chunks, is deleted; chunks no live entry
 * holds are free; the header's applied/pos are completed).  The ingest, once
 * per start, while the workers go on reading.  *repaired (if not NULL): the
 * number of repairs made, 0 for a table left whole.  0, or -1 if the
 * geometry is not valid or memory runs out (nothing written then).  Reads
 * the whole used part of the table: O(keys).  Release with snaptab_detach.
 */
int snaptab_attach_writer(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams,
                          uint32_t *repaired);

/* Free the writer's private state, if any; t is then a reader handle. */
void snaptab_detach(struct snaptab *t);

/* Largest value an entry of t may hold: five strings with 2 bytes of length
 * each, plus the frame.  A reader's buffer of this size is never too small. */
uint32_t snaptab_max_data(const struct snaptab *t);

/*
 * Writer: set key's value (insert or replace) to frame[0..len), then record
 * applied = ring_seq + 1 and pos[stream] = *id in the header.  key NULL: the
 * frame has no key; only the header changes.  A value whose id is not after
 * the one the key holds is ignored (a key never goes back), as is one
 * larger than snaptab_max_data (counted in dropped_too_large).  When
 * max_keys entries are live or the chunks run out, the least recently
 * updated entries are deleted first (evicted_full).  type must be
 * SNAPTAB_ODDS or SNAPTAB_OPPORTUNITY and stream < nstreams (asserted).
 * Returns 1 if the value was stored, 0 if not; nothing else can fail.  Never
 * blocks.
 */
int snaptab_apply(struct snaptab *t, uint8_t type, const struct snaptab_key *key, uint32_t stream,
                  const struct streamid *id, uint64_t ring_seq, uint64_t now_ms, const void *frame,
                  uint32_t len);

/* Writer: store key's value like snaptab_apply, but leave the header
 * (applied, pos) alone: for values loaded from Redis's history, which are
 * in no ring frame.  updated_ms is when the value was set (its entry id's
 * time), for the TTLs.  Returns as snaptab_apply. */
int snaptab_put(struct snaptab *t, uint8_t type, const struct snaptab_key *key, uint32_t stream,
                const struct streamid *id, uint64_t ring_seq, uint64_t updated_ms,
                const void *frame, uint32_t len);

/*
 * Writer: delete the odds not updated for odds_ttl_ms and the opportunities
 * not updated for opp_ttl_ms (a TTL of 0: that type never expires), as of
 * now_ms, counting them in evicted_ttl.  Examines at most budget entries,
 * the least recently updated of each type first, taking turns between the
 * types; a type's walk stops at its first entry still young, so a clock
 * that went back delays expiry rather than skipping ahead.  Returns the
 * number of entries deleted.
 */
uint32_t snaptab_expire(struct snaptab *t, uint64_t now_ms, uint64_t odds_ttl_ms,
                        uint64_t opp_ttl_ms, uint32_t budget);

/* Writer: delete every entry of stream (its history was lost) and set
 * pos[stream] to 0-0.  O(keys).  stream < nstreams (asserted). */
void snaptab_drop_stream(struct snaptab *t, uint32_t stream);

/* Writer: set applied, nothing else (frames the table does not keep). */
void snaptab_set_applied(struct snaptab *t, uint64_t applied);

/*
 * Any process: a consistent copy of applied and of pos[0 .. n) (rows from
 * nstreams on read 0-0).  Returns 0, or -1 if every try found the writer
 * changing them (stopped or dead mid-change; the next ingest completes it).
 * Never blocks for long: spins briefly, then yields.
 */
int snaptab_read_header(const struct snaptab *t, uint64_t *applied, struct streamid *pos,
                        uint32_t n);

/* Any process: a hint, without copying: 1 with the stream and type of entry
 * i if it looks live, 0 if it looks empty (or i is out of range).  Racing
 * the writer, it may be wrong either way; for skipping entries a scan
 * cannot want before a snaptab_read, which alone is exact. */
int snaptab_peek(const struct snaptab *t, uint32_t i, uint32_t *stream, uint8_t *type);

/* Any process: the entries that may be live are 0 .. snaptab_scan_end()-1
 * (never more than max_keys). */
uint32_t snaptab_scan_end(const struct snaptab *t);

/*
 * Any process: copy entry i whole into buf (size bytes) and describe it in
 * *out (its pointers are into buf).  Returns 1 if it is live and copied; 0
 * if it is empty, i >= max_keys, or what it holds cannot be a value (never
 * trusted); -1 if buf is too small (*needed, if not NULL, set to the bytes
 * needed: at most snaptab_max_data); -2 if every try found the writer in
 * it (stopped or dead mid-write; the next ingest repairs it).  Never
 * returns a torn copy.  Never blocks for long: retries at once while the
 * writer is in the entry, then yields the CPU between tries.
 */
int snaptab_read(const struct snaptab *t, uint32_t i, struct snaptab_copy *out, char *buf,
                 size_t size, size_t *needed);

/* Any process: the stats (each counter exact, not one snapshot of all). */
void snaptab_stats(const struct snaptab *t, struct snaptab_stats *out);

#endif
