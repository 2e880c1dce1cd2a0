/*
 * The snapshot table's protocol.
 *
 * One writer (the ingest), any number of readers (the workers), no locks;
 * the writer never looks at a reader.
 *
 * An entry's value is a chain of chunks: its five strings, each a 2-byte
 * little-endian length and the bytes, then the frame.  Chunks and entries
 * are handed out from the writer's free lists first, lowest index first
 * after a rebuild, and from a bump index only when those are empty, so the
 * pages touched are those of the largest the table has been.
 *
 * Writer, setting entry e to a value (snaptab_apply):
 *   1. evict the least recently updated entries (other than e) until there
 *      is an entry for a new key and the chunks for the value
 *   2. take free chunks, copy the value into them: no entry holds them, so
 *      no reader that trusts what it copies can be reading them
 *   3. e.version odd (relaxed), then a release fence: a reader whose loads
 *      see any store from here on sees the odd version (or later) when it
 *      re-checks after its acquire fence
 *   4. e's fields (relaxed): id, stream, len, first chunk, state
 *   5. e.version even, one on from step 3 (release): a reader whose first
 *      load returns it sees all of step 4, and of step 2 before it
 *   6. put e's previous chunks on the free list: they are rewritten only
 *      after step 3, so a reader still copying them fails its re-check
 *   7. the header, the same way under its own version (snaptab_header_set)
 * Deleting an entry is steps 3-6 with state empty.
 *
 * Reader, for entry i (snaptab_read, a seqlock read):
 *   a. load version (acquire, pairs with 5); odd: the writer is in the
 *      entry; retry
 *   b. load the fields (relaxed), bound len and every chunk index by the
 *      handle's geometry, copy the chain's bytes with memcpy
 *   c. acquire fence (pairs with the release fence of 3), reload version
 *      (relaxed): changed means the writer began a write during b; discard
 *      the copy and retry
 * The bytes of a chunk are copied with memcpy while the writer may be
 * rewriting them, as ring.c copies frames: a data race by the letter of
 * C11, and the accepted practice for seqlocks (Boehm, "Can seqlocks get
 * along with programming language memory models?"): step c discards every
 * copy such a race could have touched.  The loop in b advances at least
 * one byte per chunk and stops at len, so a chain that loops or points out
 * of bounds (a torn read) ends the copy, it never runs away.  A reader
 * retries a bounded number of times, yielding the CPU after the first few:
 * a writer that stops or dies in an entry must not stop a worker.
 *
 * Crashes: the writer's index, free lists and age lists are private and
 * die with it.  snaptab_attach_writer rebuilds them from the entries: an
 * entry whose version is odd (its writer died between 3 and 5) or whose
 * chain is not whole is deleted; chunks no live entry holds are free (a
 * value copied at step 2 but never switched in, or a chain freed at step 6
 * but not yet listed).  The age lists are rebuilt in ring_seq order, which
 * is the order the frames were applied in.  For the header, the writer
 * records its intent before making the version odd; a successor that
 * finds it odd completes the change (it is always a step forward: the
 * entry it belongs to was written first).
 */
#include "snaptab.h"
#include "hash.h"
#include "log.h"

#include <assert.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static_assert(ATOMIC_LLONG_LOCK_FREE == 2 && ATOMIC_INT_LOCK_FREE == 2 &&
                  ATOMIC_CHAR_LOCK_FREE == 2,
              "the table is shared between processes: lock-free atomics only");
static_assert(sizeof(struct snaptab_entry) == SNAPTAB_CACHELINE, "one entry per cache line");
static_assert(sizeof(struct snaptab_chunk) == SNAPTAB_CHUNK, "chunks tile pages");
static_assert(SNAPTAB_PAGE % SNAPTAB_CHUNK == 0, "a chunk never straddles a page");
static_assert(sizeof(struct snaptab_header) == 3 * SNAPTAB_CACHELINE,
              "header: config line, writer line, stats line");
static_assert(offsetof(struct snaptab_header, version) == SNAPTAB_CACHELINE,
              "the header's seqlock on its own line");
static_assert(offsetof(struct snaptab_header, keys) == 2 * SNAPTAB_CACHELINE,
              "stats on their own line: a reader polling them does not touch the seqlock's");
static_assert(sizeof(struct snaptab_pos) == 16, "pos rows tile cache lines");
static_assert((uint64_t)SNAPTAB_MAX_KEYS * SNAPTAB_CHUNKS_PER_KEY < SNAPTAB_NONE,
              "chunk indexes fit below SNAPTAB_NONE");
static_assert(SNAPTAB_MAX_DATA <=
                  (uint64_t)SNAPTAB_CHUNK_DATA * SNAPTAB_CHUNKS_PER_KEY * SNAPTAB_MAX_KEYS / 4,
              "the largest value fits the largest table");
static_assert(SNAPTAB_MAX_DATA - 2 * SNAPTAB_NSTR <= UINT16_MAX,
              "any string of a value that fits has a length that fits its 2 bytes");

/* Five 2-byte lengths: the smallest value. */
#define SNAPTAB_MIN_DATA   (2 * SNAPTAB_NSTR)
/* Tries of snaptab_read and snaptab_read_header; the first SNAPTAB_SPINS
 * retry at once (a writer's switch is a few stores), the rest yield to the
 * writer, which may be descheduled mid-write on a busy machine. */
#define SNAPTAB_READ_TRIES 4096
#define SNAPTAB_SPINS      64

/* The writer's private state: process memory, never shared. */
struct snaptab_writer {
    uint32_t *bucket;  /* nbuckets chains of the index: entry + 1, 0 ends */
    uint32_t nbuckets; /* a power of two, >= max_keys */
    uint32_t *link;    /* per entry: next in its bucket's chain or in the free list, + 1 */
    uint32_t *prev;    /* per entry: age list of its type, SNAPTAB_NONE ends */
    uint32_t *next;
    uint32_t oldest[SNAPTAB_NTYPES];
    uint32_t newest[SNAPTAB_NTYPES];
    uint32_t free_entry;  /* first free entry + 1, 0: none */
    uint32_t entry_bump;  /* entries from here on were never used */
    uint32_t *free_chunk; /* stack of free chunks below chunk_bump */
    uint32_t nfree_chunks;
    uint32_t chunk_bump; /* chunks from here on were never used */
    uint64_t keys, bytes, chunks;
    unsigned char *scratch; /* max_data + 16: a key's bytes, for its hash */
};

/* ---- geometry -------------------------------------------------------------- */

struct snaptab_layout {
    uint64_t pos, entries, chunks, size;
};

static uint64_t
snaptab_round(uint64_t n, uint64_t to)
{
    return (n + to - 1) / to * to;
}

static int
snaptab_layout(uint32_t max_keys, uint32_t nstreams, struct snaptab_layout *l)
{
    if (max_keys == 0 || max_keys > SNAPTAB_MAX_KEYS || nstreams == 0 ||
        nstreams > SNAPTAB_MAX_STREAMS)
        return -1;
    l->pos = sizeof(struct snaptab_header);
    l->entries =
        snaptab_round(l->pos + (uint64_t)nstreams * sizeof(struct snaptab_pos), SNAPTAB_PAGE);
    l->chunks =
        snaptab_round(l->entries + (uint64_t)max_keys * sizeof(struct snaptab_entry), SNAPTAB_PAGE);
    l->size = l->chunks + (uint64_t)max_keys * SNAPTAB_CHUNKS_PER_KEY * SNAPTAB_CHUNK;
    return 0;
}

size_t
snaptab_region_size(uint32_t max_keys, uint32_t nstreams)
{
    struct snaptab_layout l;

    if (snaptab_layout(max_keys, nstreams, &l) != 0)
        return 0;
    return (size_t)l.size;
}

int
snaptab_attach_reader(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams)
{
    struct snaptab_layout l;
    uint64_t cap;

    if (snaptab_layout(max_keys, nstreams, &l) != 0 || mem == NULL ||
        (uintptr_t)mem % SNAPTAB_CACHELINE != 0)
        return -1;
    t->hdr = mem;
    t->pos = (struct snaptab_pos *)((char *)mem + l.pos);
    t->entries = (struct snaptab_entry *)((char *)mem + l.entries);
    t->chunks = (struct snaptab_chunk *)((char *)mem + l.chunks);
    t->max_keys = max_keys;
    t->nstreams = nstreams;
    t->nchunks = max_keys * SNAPTAB_CHUNKS_PER_KEY;
    cap = (uint64_t)t->nchunks * SNAPTAB_CHUNK_DATA / 4;
    t->max_data = cap < SNAPTAB_MAX_DATA ? (uint32_t)cap : SNAPTAB_MAX_DATA;
    t->w = NULL;
    return 0;
}

int
snaptab_init(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams)
{
    struct snaptab_header *h = mem;

    if (snaptab_attach_reader(t, mem, max_keys, nstreams) != 0)
        return -1;
    /* For a debugger only: the table's code reads the handle's copy. */
    h->magic = SNAPTAB_MAGIC;
    h->max_keys = max_keys;
    h->nstreams = nstreams;
    h->nchunks = t->nchunks;
    h->chunk_size = SNAPTAB_CHUNK;
    h->max_data = t->max_data;
    h->pos_offset = (uint64_t)((char *)t->pos - (char *)mem);
    h->entries_offset = (uint64_t)((char *)t->entries - (char *)mem);
    h->chunks_offset = (uint64_t)((char *)t->chunks - (char *)mem);
    atomic_store_explicit(&h->intent_stream, SNAPTAB_NONE, memory_order_relaxed);
    /* The rest is zero, as it should be: version 0, nothing applied, no
     * entry used, every entry empty.  The entries and chunks are not
     * written, so their pages stay untouched until the table grows. */
    return 0;
}

uint32_t
snaptab_max_data(const struct snaptab *t)
{
    return t->max_data;
}

static uint32_t
snaptab_chunks_for(uint32_t len)
{
    return (len + SNAPTAB_CHUNK_DATA - 1) / SNAPTAB_CHUNK_DATA;
}

/* ---- readers --------------------------------------------------------------- */

static void
snaptab_backoff(int tries)
{
    if (tries >= SNAPTAB_SPINS)
        sched_yield();
}

/* Copy len bytes of the chain from chunk c into buf.  1, or 0 if the chain
 * leaves the data area or ends before len bytes (a torn read, unless the
 * entry is corrupt).  Each step copies at least one byte, so it ends after
 * at most len steps whatever the links say. */
static int
snaptab_copy_chain(const struct snaptab *t, uint32_t c, uint32_t len, char *buf)
{
    uint32_t off = 0;

    while (off < len) {
        uint32_t n = len - off < SNAPTAB_CHUNK_DATA ? len - off : SNAPTAB_CHUNK_DATA;
        if (c >= t->nchunks)
            return 0;
        /* The writer may be rewriting these bytes: see the top of the file. */
        memcpy(buf + off, t->chunks[c].data, n);
        off += n;
        c = atomic_load_explicit(&t->chunks[c].next, memory_order_relaxed);
    }
    return 1;
}

/* Split a value's bytes into its strings and frame.  0, or -1 if they are
 * not five length-prefixed strings and a frame. */
static int
snaptab_parse(const char *buf, uint32_t len, const char *s[SNAPTAB_NSTR],
              uint32_t slen[SNAPTAB_NSTR], const char **frame, uint32_t *frame_len)
{
    const unsigned char *p = (const unsigned char *)buf;
    uint32_t off = 0;

    for (int i = 0; i < SNAPTAB_NSTR; i++) {
        uint32_t n;
        if (len - off < 2)
            return -1;
        n = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8;
        off += 2;
        if (n > len - off)
            return -1;
        s[i] = buf + off;
        slen[i] = n;
        off += n;
    }
    *frame = buf + off;
    *frame_len = len - off;
    return 0;
}

int
snaptab_read(const struct snaptab *t, uint32_t i, struct snaptab_copy *out, char *buf, size_t size,
             size_t *needed)
{
    struct snaptab_entry *e;

    if (i >= t->max_keys)
        return 0;
    e = &t->entries[i];
    for (int tries = 0; tries < SNAPTAB_READ_TRIES; tries++) {
        uint64_t v = atomic_load_explicit(&e->version, memory_order_acquire);
        uint8_t state, type;
        uint32_t stream, len, first;
        int sane, copied = 0;

        if (v & 1) {
            snaptab_backoff(tries);
            continue;
        }
        state = atomic_load_explicit(&e->state, memory_order_relaxed);
        type = atomic_load_explicit(&e->type, memory_order_relaxed);
        stream = atomic_load_explicit(&e->stream, memory_order_relaxed);
        len = atomic_load_explicit(&e->len, memory_order_relaxed);
        first = atomic_load_explicit(&e->first, memory_order_relaxed);
        out->id.ms = atomic_load_explicit(&e->id_ms, memory_order_relaxed);
        out->id.seq = atomic_load_explicit(&e->id_seq, memory_order_relaxed);
        out->ring_seq = atomic_load_explicit(&e->ring_seq, memory_order_relaxed);
        out->updated_ms = atomic_load_explicit(&e->updated_ms, memory_order_relaxed);
        /* Fields loaded mid-write may come from two values: bound them by
         * the handle before using any (the re-check below discards them). */
        sane = state == SNAPTAB_LIVE && type < SNAPTAB_NTYPES && stream < t->nstreams &&
               len >= SNAPTAB_MIN_DATA && len <= t->max_data;
        if (sane && len <= size)
            copied = snaptab_copy_chain(t, first, len, buf);

        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->version, memory_order_relaxed) != v) {
            snaptab_backoff(tries);
            continue;
        }
        /* A stable copy.  What is not a value here was written so (a bug,
         * a stray write): skipped, never trusted. */
        if (!sane)
            return 0;
        if (len > size) {
            if (needed != NULL)
                *needed = len;
            return -1;
        }
        if (!copied || snaptab_parse(buf, len, out->s, out->len, &out->frame, &out->frame_len) != 0)
            return 0;
        out->type = type;
        out->stream = stream;
        return 1;
    }
    return -2;
}

int
snaptab_read_header(const struct snaptab *t, uint64_t *applied, struct streamid *pos, uint32_t n)
{
    struct snaptab_header *h = t->hdr;
    uint32_t m = n < t->nstreams ? n : t->nstreams;

    for (uint32_t s = m; s < n; s++)
        pos[s].ms = pos[s].seq = 0;
    for (int tries = 0; tries < SNAPTAB_READ_TRIES; tries++) {
        /* acquire: pairs with the release of the even version in
         * snaptab_header_set; the fence with its release fence. */
        uint64_t v = atomic_load_explicit(&h->version, memory_order_acquire);
        uint64_t a;

        if (v & 1) {
            snaptab_backoff(tries);
            continue;
        }
        a = atomic_load_explicit(&h->applied, memory_order_relaxed);
        for (uint32_t s = 0; s < m; s++) {
            pos[s].ms = atomic_load_explicit(&t->pos[s].ms, memory_order_relaxed);
            pos[s].seq = atomic_load_explicit(&t->pos[s].seq, memory_order_relaxed);
        }
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&h->version, memory_order_relaxed) == v) {
            *applied = a;
            return 0;
        }
        snaptab_backoff(tries);
    }
    return -1;
}

int
snaptab_peek(const struct snaptab *t, uint32_t i, uint32_t *stream, uint8_t *type)
{
    const struct snaptab_entry *e;

    if (i >= t->max_keys)
        return 0;
    e = &t->entries[i];
    /* No seqlock: a hint read racing the writer, for skipping entries a
     * scan cannot want; snaptab_read decides. */
    if (atomic_load_explicit(&e->state, memory_order_relaxed) != SNAPTAB_LIVE)
        return 0;
    *stream = atomic_load_explicit(&e->stream, memory_order_relaxed);
    *type = atomic_load_explicit(&e->type, memory_order_relaxed);
    return 1;
}

uint32_t
snaptab_scan_end(const struct snaptab *t)
{
    /* acquire: pairs with the release in snaptab_entry_alloc.  Not needed
     * for correctness (each entry has its own seqlock), only so a reader
     * that sees the mark also sees the entries below it as they were. */
    uint32_t n = atomic_load_explicit(&t->hdr->used_entries, memory_order_acquire);

    return n < t->max_keys ? n : t->max_keys;
}

void
snaptab_stats(const struct snaptab *t, struct snaptab_stats *out)
{
    struct snaptab_header *h = t->hdr;

    out->keys = atomic_load_explicit(&h->keys, memory_order_relaxed);
    out->bytes = atomic_load_explicit(&h->bytes, memory_order_relaxed);
    out->chunks = atomic_load_explicit(&h->chunks, memory_order_relaxed);
    out->evicted_ttl = atomic_load_explicit(&h->evicted_ttl, memory_order_relaxed);
    out->evicted_full = atomic_load_explicit(&h->evicted_full, memory_order_relaxed);
    out->dropped_too_large = atomic_load_explicit(&h->dropped_too_large, memory_order_relaxed);
    out->max_keys = t->max_keys;
    out->nchunks = t->nchunks;
    out->capacity_bytes = (uint64_t)t->nchunks * SNAPTAB_CHUNK_DATA;
}

/* ---- writer: shared stores --------------------------------------------------- */

/* Steps 3 and 5 of the protocol for entry e.  begin returns the version to
 * pass to end.  An entry found odd (its writer died in it) stays odd. */
static uint64_t
snaptab_entry_begin(struct snaptab_entry *e)
{
    uint64_t v = atomic_load_explicit(&e->version, memory_order_relaxed);

    if (!(v & 1)) {
        atomic_store_explicit(&e->version, v + 1, memory_order_relaxed);
        atomic_thread_fence(memory_order_release);
    }
    return v | 1;
}

static void
snaptab_entry_end(struct snaptab_entry *e, uint64_t odd)
{
    atomic_store_explicit(&e->version, odd + 1, memory_order_release);
}

/* Make e empty (its chunks are the caller's to free). */
static void
snaptab_entry_clear(struct snaptab_entry *e)
{
    uint64_t v = snaptab_entry_begin(e);

    atomic_store_explicit(&e->state, SNAPTAB_EMPTY, memory_order_relaxed);
    atomic_store_explicit(&e->len, 0, memory_order_relaxed);
    atomic_store_explicit(&e->first, SNAPTAB_NONE, memory_order_relaxed);
    snaptab_entry_end(e, v);
}

/*
 * Step 7: applied, and pos[stream] unless stream is SNAPTAB_NONE.  The
 * intent goes first, ordered before the odd version by the release store:
 * if this process dies with the version odd, the next writer finds the
 * intent whole and completes it (snaptab_header_repair).  The release
 * fence then orders the odd version before the rows, for the readers (see
 * snaptab_read_header).
 */
static void
snaptab_header_set(struct snaptab *t, uint32_t stream, uint64_t ms, uint64_t seq, uint64_t applied)
{
    struct snaptab_header *h = t->hdr;
    uint64_t v = atomic_load_explicit(&h->version, memory_order_relaxed);

    atomic_store_explicit(&h->intent_stream, stream, memory_order_relaxed);
    atomic_store_explicit(&h->intent_ms, ms, memory_order_relaxed);
    atomic_store_explicit(&h->intent_seq, seq, memory_order_relaxed);
    atomic_store_explicit(&h->intent_applied, applied, memory_order_relaxed);
    atomic_store_explicit(&h->version, v + 1, memory_order_release);
    atomic_thread_fence(memory_order_release);
    if (stream != SNAPTAB_NONE) {
        atomic_store_explicit(&t->pos[stream].ms, ms, memory_order_relaxed);
        atomic_store_explicit(&t->pos[stream].seq, seq, memory_order_relaxed);
    }
    atomic_store_explicit(&h->applied, applied, memory_order_relaxed);
    atomic_store_explicit(&h->version, v + 2, memory_order_release);
}

static void
snaptab_publish_stats(struct snaptab *t)
{
    struct snaptab_writer *w = t->w;

    atomic_store_explicit(&t->hdr->keys, w->keys, memory_order_relaxed);
    atomic_store_explicit(&t->hdr->bytes, w->bytes, memory_order_relaxed);
    atomic_store_explicit(&t->hdr->chunks, w->chunks, memory_order_relaxed);
}

/* ---- writer: chunks ----------------------------------------------------------- */

static uint32_t
snaptab_free_chunks(const struct snaptab *t)
{
    return t->w->nfree_chunks + (t->nchunks - t->w->chunk_bump);
}

/* A chain of n chunks (n <= snaptab_free_chunks), linked, data unwritten. */
static uint32_t
snaptab_chain_alloc(struct snaptab *t, uint32_t n)
{
    struct snaptab_writer *w = t->w;
    uint32_t first = SNAPTAB_NONE, last = SNAPTAB_NONE;

    for (uint32_t k = 0; k < n; k++) {
        uint32_t c = w->nfree_chunks > 0 ? w->free_chunk[--w->nfree_chunks] : w->chunk_bump++;
        WSB_ASSERT(c < t->nchunks);
        atomic_store_explicit(&t->chunks[c].next, SNAPTAB_NONE, memory_order_relaxed);
        if (last == SNAPTAB_NONE)
            first = c;
        else
            atomic_store_explicit(&t->chunks[last].next, c, memory_order_relaxed);
        last = c;
    }
    return first;
}

/* Free the n chunks of the chain from first.  The caller has already
 * switched the entry away from them (step 6). */
static void
snaptab_chain_free(struct snaptab *t, uint32_t first, uint32_t n)
{
    struct snaptab_writer *w = t->w;
    uint32_t c = first;

    for (uint32_t k = 0; k < n; k++) {
        WSB_ASSERT(c < t->nchunks && w->nfree_chunks < t->nchunks);
        w->free_chunk[w->nfree_chunks++] = c;
        c = atomic_load_explicit(&t->chunks[c].next, memory_order_relaxed);
    }
}

/* A position in one of the writer's own chains, which it trusts: it wrote
 * them, or checked them when it attached. */
struct snaptab_cursor {
    struct snaptab *t;
    uint32_t chunk;
    uint32_t off; /* within the chunk's data */
};

static void
snaptab_cursor_step(struct snaptab_cursor *cur)
{
    if (cur->off == SNAPTAB_CHUNK_DATA) {
        cur->chunk = atomic_load_explicit(&cur->t->chunks[cur->chunk].next, memory_order_relaxed);
        cur->off = 0;
    }
    WSB_ASSERT(cur->chunk < cur->t->nchunks);
}

static void
snaptab_cursor_put(struct snaptab_cursor *cur, const void *src, uint32_t n)
{
    const char *p = src;

    while (n > 0) {
        uint32_t k;
        snaptab_cursor_step(cur);
        k = SNAPTAB_CHUNK_DATA - cur->off < n ? SNAPTAB_CHUNK_DATA - cur->off : n;
        memcpy(cur->t->chunks[cur->chunk].data + cur->off, p, k);
        cur->off += k;
        p += k;
        n -= k;
    }
}

/* Walk n bytes from the cursor: copy them into copy, or compare them with
 * cmp, or (both NULL) step over them.  0 at the first byte that differs
 * from cmp, else 1. */
static int
snaptab_cursor_walk(struct snaptab_cursor *cur, uint32_t n, char *copy, const char *cmp)
{
    while (n > 0) {
        uint32_t k;
        const unsigned char *src;
        snaptab_cursor_step(cur);
        k = SNAPTAB_CHUNK_DATA - cur->off < n ? SNAPTAB_CHUNK_DATA - cur->off : n;
        src = cur->t->chunks[cur->chunk].data + cur->off;
        if (copy != NULL) {
            memcpy(copy, src, k);
            copy += k;
        }
        if (cmp != NULL) {
            if (memcmp(cmp, src, k) != 0)
                return 0;
            cmp += k;
        }
        cur->off += k;
        n -= k;
    }
    return 1;
}

static uint32_t
snaptab_cursor_len(struct snaptab_cursor *cur)
{
    unsigned char b[2];

    snaptab_cursor_walk(cur, 2, (char *)b, NULL);
    return (uint32_t)b[0] | (uint32_t)b[1] << 8;
}

/* ---- writer: the index and the age lists ------------------------------------------ */

/* The key's hash: its type and the four strings of the key, each with its
 * length, so that ("ab", "c") and ("a", "bc") differ.  The sport is not
 * part of it. */
static uint64_t
snaptab_key_hash(struct snaptab *t, uint8_t type, const struct snaptab_key *key)
{
    unsigned char *p = t->w->scratch;
    size_t n = 0;

    p[n++] = type;
    for (int i = SNAPTAB_EVENT; i < SNAPTAB_NSTR; i++) {
        p[n++] = (unsigned char)(key->len[i] & 0xff);
        p[n++] = (unsigned char)(key->len[i] >> 8);
        if (key->len[i] > 0)
            memcpy(p + n, key->s[i], key->len[i]);
        n += key->len[i];
    }
    return hash_bytes(p, n);
}

/* 1 if entry i (live, the writer's) holds key. */
static int
snaptab_same_key(struct snaptab *t, uint32_t i, const struct snaptab_key *key)
{
    struct snaptab_entry *e = &t->entries[i];
    struct snaptab_cursor cur = {t, atomic_load_explicit(&e->first, memory_order_relaxed), 0};

    /* The sport first: stored with the key, not part of it. */
    snaptab_cursor_walk(&cur, snaptab_cursor_len(&cur), NULL, NULL);
    for (int s = SNAPTAB_EVENT; s < SNAPTAB_NSTR; s++) {
        if (snaptab_cursor_len(&cur) != key->len[s])
            return 0;
        if (key->len[s] > 0 && !snaptab_cursor_walk(&cur, key->len[s], NULL, key->s[s]))
            return 0;
    }
    return 1;
}

static uint32_t
snaptab_find(struct snaptab *t, uint64_t h, uint8_t type, const struct snaptab_key *key)
{
    struct snaptab_writer *w = t->w;

    for (uint32_t x = w->bucket[h & (w->nbuckets - 1)]; x != 0; x = w->link[x - 1]) {
        struct snaptab_entry *e = &t->entries[x - 1];
        if (atomic_load_explicit(&e->hash, memory_order_relaxed) == h &&
            atomic_load_explicit(&e->type, memory_order_relaxed) == type &&
            snaptab_same_key(t, x - 1, key))
            return x - 1;
    }
    return SNAPTAB_NONE;
}

static void
snaptab_index_insert(struct snaptab_writer *w, uint32_t i, uint64_t h)
{
    uint32_t *b = &w->bucket[h & (w->nbuckets - 1)];

    w->link[i] = *b;
    *b = i + 1;
}

static void
snaptab_index_remove(struct snaptab_writer *w, uint32_t i, uint64_t h)
{
    uint32_t *p = &w->bucket[h & (w->nbuckets - 1)];

    while (*p != 0 && *p != i + 1)
        p = &w->link[*p - 1];
    WSB_ASSERT(*p == i + 1);
    *p = w->link[i];
}

static void
snaptab_age_append(struct snaptab_writer *w, uint8_t type, uint32_t i)
{
    w->prev[i] = w->newest[type];
    w->next[i] = SNAPTAB_NONE;
    if (w->newest[type] == SNAPTAB_NONE)
        w->oldest[type] = i;
    else
        w->next[w->newest[type]] = i;
    w->newest[type] = i;
}

static void
snaptab_age_unlink(struct snaptab_writer *w, uint8_t type, uint32_t i)
{
    if (w->prev[i] == SNAPTAB_NONE)
        w->oldest[type] = w->next[i];
    else
        w->next[w->prev[i]] = w->next[i];
    if (w->next[i] == SNAPTAB_NONE)
        w->newest[type] = w->prev[i];
    else
        w->prev[w->next[i]] = w->prev[i];
}

/* The least recently updated entry of either type, or SNAPTAB_NONE.  The
 * two lists are each in update order; the frames' ring sequence orders
 * their heads against each other. */
static uint32_t
snaptab_oldest(struct snaptab *t)
{
    uint32_t a = t->w->oldest[SNAPTAB_ODDS], b = t->w->oldest[SNAPTAB_OPPORTUNITY];

    if (a == SNAPTAB_NONE)
        return b;
    if (b == SNAPTAB_NONE)
        return a;
    return atomic_load_explicit(&t->entries[b].ring_seq, memory_order_relaxed) <
                   atomic_load_explicit(&t->entries[a].ring_seq, memory_order_relaxed)
               ? b
               : a;
}

/* Delete live entry i: empty it for the readers, then give back its chunks
 * and its slot. */
static void
snaptab_delete(struct snaptab *t, uint32_t i)
{
    struct snaptab_writer *w = t->w;
    struct snaptab_entry *e = &t->entries[i];
    uint8_t type = atomic_load_explicit(&e->type, memory_order_relaxed);
    uint32_t len = atomic_load_explicit(&e->len, memory_order_relaxed);
    uint32_t first = atomic_load_explicit(&e->first, memory_order_relaxed);

    snaptab_index_remove(w, i, atomic_load_explicit(&e->hash, memory_order_relaxed));
    snaptab_age_unlink(w, type, i);
    snaptab_entry_clear(e);
    snaptab_chain_free(t, first, snaptab_chunks_for(len));
    w->link[i] = w->free_entry;
    w->free_entry = i + 1;
    w->keys--;
    w->bytes -= len;
    w->chunks -= snaptab_chunks_for(len);
}

static void
snaptab_evict_oldest(struct snaptab *t)
{
    uint32_t i = snaptab_oldest(t);

    /* Callers evict only what the geometry guarantees exists: a full table
     * has max_keys live entries, and a value of max_data (a quarter of the
     * chunks) fits beside the one it replaces once all others are gone. */
    WSB_ASSERT(i != SNAPTAB_NONE);
    snaptab_delete(t, i);
    atomic_fetch_add_explicit(&t->hdr->evicted_full, 1, memory_order_relaxed);
}

/* A free entry for a new key: the free list, then a never used one, then
 * the least recently updated entry's. */
static uint32_t
snaptab_entry_alloc(struct snaptab *t)
{
    struct snaptab_writer *w = t->w;
    uint32_t i;

    if (w->free_entry == 0 && w->entry_bump < t->max_keys) {
        /* release: pairs with the acquire in snaptab_scan_end. */
        atomic_store_explicit(&t->hdr->used_entries, w->entry_bump + 1, memory_order_release);
        return w->entry_bump++;
    }
    if (w->free_entry == 0)
        snaptab_evict_oldest(t);
    i = w->free_entry - 1;
    w->free_entry = w->link[i];
    return i;
}

/* ---- writer: operations ----------------------------------------------------------- */

static void
snaptab_put_len(struct snaptab_cursor *cur, uint32_t n)
{
    unsigned char b[2] = {(unsigned char)(n & 0xff), (unsigned char)(n >> 8)};

    snaptab_cursor_put(cur, b, 2);
}

static int
snaptab_store(struct snaptab *t, uint8_t type, const struct snaptab_key *key, uint32_t stream,
              const struct streamid *id, uint64_t ring_seq, uint64_t now_ms, const void *frame,
              uint32_t len)
{
    struct snaptab_writer *w = t->w;
    uint64_t total = SNAPTAB_MIN_DATA + (uint64_t)len, h, v;
    uint32_t i, need, first, old_len = 0, old_first = SNAPTAB_NONE;
    struct snaptab_entry *e;
    struct snaptab_cursor cur;
    int replace;

    for (int s = 0; s < SNAPTAB_NSTR; s++) {
        WSB_ASSERT(key->s[s] != NULL || key->len[s] == 0);
        total += key->len[s];
    }
    if (total > t->max_data) {
        atomic_fetch_add_explicit(&t->hdr->dropped_too_large, 1, memory_order_relaxed);
        return 0;
    }
    h = snaptab_key_hash(t, type, key);
    i = snaptab_find(t, h, type, key);
    replace = i != SNAPTAB_NONE;
    if (replace) {
        struct streamid old;
        e = &t->entries[i];
        old.ms = atomic_load_explicit(&e->id_ms, memory_order_relaxed);
        old.seq = atomic_load_explicit(&e->id_seq, memory_order_relaxed);
        if (streamid_cmp(id, &old) <= 0)
            return 0;
        /* Out of the age list while its chunks are found: it must not be
         * evicted to make room for its own value. */
        snaptab_age_unlink(w, type, i);
        old_len = atomic_load_explicit(&e->len, memory_order_relaxed);
        old_first = atomic_load_explicit(&e->first, memory_order_relaxed);
    } else {
        i = snaptab_entry_alloc(t);
        e = &t->entries[i];
    }

    /* Steps 1 and 2: the new value in chunks no entry holds. */
    need = snaptab_chunks_for((uint32_t)total);
    while (snaptab_free_chunks(t) < need)
        snaptab_evict_oldest(t);
    first = snaptab_chain_alloc(t, need);
    cur = (struct snaptab_cursor){t, first, 0};
    for (int s = 0; s < SNAPTAB_NSTR; s++) {
        snaptab_put_len(&cur, key->len[s]);
        if (key->len[s] > 0)
            snaptab_cursor_put(&cur, key->s[s], key->len[s]);
    }
    if (len > 0)
        snaptab_cursor_put(&cur, frame, len);

    /* Steps 3-5: switch the entry to it. */
    v = snaptab_entry_begin(e);
    atomic_store_explicit(&e->id_ms, id->ms, memory_order_relaxed);
    atomic_store_explicit(&e->id_seq, id->seq, memory_order_relaxed);
    atomic_store_explicit(&e->ring_seq, ring_seq, memory_order_relaxed);
    atomic_store_explicit(&e->updated_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&e->hash, h, memory_order_relaxed);
    atomic_store_explicit(&e->stream, stream, memory_order_relaxed);
    atomic_store_explicit(&e->len, (uint32_t)total, memory_order_relaxed);
    atomic_store_explicit(&e->first, first, memory_order_relaxed);
    atomic_store_explicit(&e->type, type, memory_order_relaxed);
    atomic_store_explicit(&e->state, SNAPTAB_LIVE, memory_order_relaxed);
    snaptab_entry_end(e, v);

    /* Step 6. */
    if (replace) {
        snaptab_chain_free(t, old_first, snaptab_chunks_for(old_len));
        w->bytes -= old_len;
        w->chunks -= snaptab_chunks_for(old_len);
    } else {
        snaptab_index_insert(w, i, h);
        w->keys++;
    }
    snaptab_age_append(w, type, i);
    w->bytes += total;
    w->chunks += need;
    return 1;
}

int
snaptab_apply(struct snaptab *t, uint8_t type, const struct snaptab_key *key, uint32_t stream,
              const struct streamid *id, uint64_t ring_seq, uint64_t now_ms, const void *frame,
              uint32_t len)
{
    int stored = 0;

    WSB_ASSERT(t->w != NULL);
    WSB_ASSERT(stream < t->nstreams);
    WSB_ASSERT(type < SNAPTAB_NTYPES);
    if (key != NULL) {
        stored = snaptab_store(t, type, key, stream, id, ring_seq, now_ms, frame, len);
        snaptab_publish_stats(t);
    }
    /* After the entry: applied never covers a frame the table does not
     * yet reflect, so a worker that sends the snapshot and then the ring
     * from applied on may repeat a frame, never miss one. */
    snaptab_header_set(t, stream, id->ms, id->seq, ring_seq + 1);
    return stored;
}

int
snaptab_put(struct snaptab *t, uint8_t type, const struct snaptab_key *key, uint32_t stream,
            const struct streamid *id, uint64_t ring_seq, uint64_t updated_ms, const void *frame,
            uint32_t len)
{
    int stored;

    WSB_ASSERT(t->w != NULL);
    WSB_ASSERT(stream < t->nstreams);
    WSB_ASSERT(type < SNAPTAB_NTYPES);
    stored = snaptab_store(t, type, key, stream, id, ring_seq, updated_ms, frame, len);
    snaptab_publish_stats(t);
    return stored;
}

uint32_t
snaptab_expire(struct snaptab *t, uint64_t now_ms, uint64_t odds_ttl_ms, uint64_t opp_ttl_ms,
               uint32_t budget)
{
    struct snaptab_writer *w = t->w;
    uint64_t ttl[SNAPTAB_NTYPES] = {odds_ttl_ms, opp_ttl_ms};
    int done[SNAPTAB_NTYPES] = {odds_ttl_ms == 0, opp_ttl_ms == 0};
    uint32_t deleted = 0;

    WSB_ASSERT(w != NULL);
    /* Turns between the types, so that a long run of one type's expired
     * entries does not use up the budget of the other. */
    while (budget > 0 && !(done[SNAPTAB_ODDS] && done[SNAPTAB_OPPORTUNITY])) {
        for (uint8_t type = 0; type < SNAPTAB_NTYPES && budget > 0; type++) {
            uint32_t i = w->oldest[type];
            uint64_t updated;

            if (done[type])
                continue;
            if (i == SNAPTAB_NONE) {
                done[type] = 1;
                continue;
            }
            budget--;
            updated = atomic_load_explicit(&t->entries[i].updated_ms, memory_order_relaxed);
            if (updated > now_ms || now_ms - updated < ttl[type]) {
                done[type] = 1;
                continue;
            }
            snaptab_delete(t, i);
            atomic_fetch_add_explicit(&t->hdr->evicted_ttl, 1, memory_order_relaxed);
            deleted++;
        }
    }
    snaptab_publish_stats(t);
    return deleted;
}

void
snaptab_drop_stream(struct snaptab *t, uint32_t stream)
{
    struct snaptab_writer *w = t->w;

    WSB_ASSERT(w != NULL);
    WSB_ASSERT(stream < t->nstreams);
    for (uint8_t type = 0; type < SNAPTAB_NTYPES; type++) {
        uint32_t i = w->oldest[type];
        while (i != SNAPTAB_NONE) {
            uint32_t next = w->next[i];
            if (atomic_load_explicit(&t->entries[i].stream, memory_order_relaxed) == stream)
                snaptab_delete(t, i);
            i = next;
        }
    }
    snaptab_publish_stats(t);
    snaptab_header_set(t, stream, 0, 0,
                       atomic_load_explicit(&t->hdr->applied, memory_order_relaxed));
}

void
snaptab_set_applied(struct snaptab *t, uint64_t applied)
{
    WSB_ASSERT(t->w != NULL);
    snaptab_header_set(t, SNAPTAB_NONE, 0, 0, applied);
}

/* ---- writer: attach and rebuild ------------------------------------------------------ */

static void
snaptab_writer_free(struct snaptab_writer *w)
{
    if (w == NULL)
        return;
    free(w->bucket);
    free(w->link);
    free(w->prev);
    free(w->next);
    free(w->free_chunk);
    free(w->scratch);
    free(w);
}

static struct snaptab_writer *
snaptab_writer_new(const struct snaptab *t)
{
    struct snaptab_writer *w = calloc(1, sizeof(*w));

    if (w == NULL)
        return NULL;
    w->nbuckets = 1;
    while (w->nbuckets < t->max_keys)
        w->nbuckets *= 2;
    /* calloc: large arrays come as untouched zero pages, so a big table's
     * index costs memory only as it fills. */
    w->bucket = calloc(w->nbuckets, sizeof(*w->bucket));
    w->link = calloc(t->max_keys, sizeof(*w->link));
    w->prev = calloc(t->max_keys, sizeof(*w->prev));
    w->next = calloc(t->max_keys, sizeof(*w->next));
    w->free_chunk = calloc(t->nchunks, sizeof(*w->free_chunk));
    w->scratch = malloc((size_t)t->max_data + 16);
    if (w->bucket == NULL || w->link == NULL || w->prev == NULL || w->next == NULL ||
        w->free_chunk == NULL || w->scratch == NULL) {
        snaptab_writer_free(w);
        return NULL;
    }
    for (int type = 0; type < SNAPTAB_NTYPES; type++)
        w->oldest[type] = w->newest[type] = SNAPTAB_NONE;
    return w;
}

/* Mark (set) or unmark the n chunks of a chain in the bitmap. */
static void
snaptab_chain_mark(const struct snaptab *t, uint32_t first, uint32_t n, uint8_t *map, int set)
{
    uint32_t c = first;

    for (uint32_t k = 0; k < n; k++) {
        if (set)
            map[c / 8] |= (uint8_t)(1u << (c % 8));
        else
            map[c / 8] &= (uint8_t) ~(1u << (c % 8));
        c = atomic_load_explicit(&t->chunks[c].next, memory_order_relaxed);
    }
}

/* Claim the n chunks of the chain from first in map.  1, or 0 (nothing
 * claimed) if a link leaves the data area or reaches a chunk already
 * claimed, by this chain (a loop) or another entry's. */
static int
snaptab_chain_claim(const struct snaptab *t, uint32_t first, uint32_t n, uint8_t *map)
{
    uint32_t c = first;

    for (uint32_t k = 0; k < n; k++) {
        if (c >= t->nchunks || (map[c / 8] & (1u << (c % 8)))) {
            snaptab_chain_mark(t, first, k, map, 0);
            return 0;
        }
        map[c / 8] |= (uint8_t)(1u << (c % 8));
        c = atomic_load_explicit(&t->chunks[c].next, memory_order_relaxed);
    }
    return 1;
}

struct snaptab_order {
    uint64_t ring_seq;
    uint32_t i;
};

static int
snaptab_order_cmp(const void *pa, const void *pb)
{
    const struct snaptab_order *a = pa, *b = pb;

    if (a->ring_seq != b->ring_seq)
        return a->ring_seq < b->ring_seq ? -1 : 1;
    return a->i < b->i ? -1 : a->i > b->i;
}

/* The header left odd by a writer that died changing it: complete the
 * change from its intent (see snaptab_header_set).  1 if it did. */
static int
snaptab_header_repair(struct snaptab *t)
{
    struct snaptab_header *h = t->hdr;
    uint64_t v = atomic_load_explicit(&h->version, memory_order_relaxed);
    uint32_t stream = atomic_load_explicit(&h->intent_stream, memory_order_relaxed);

    if (!(v & 1))
        return 0;
    if (stream < t->nstreams) {
        atomic_store_explicit(&t->pos[stream].ms,
                              atomic_load_explicit(&h->intent_ms, memory_order_relaxed),
                              memory_order_relaxed);
        atomic_store_explicit(&t->pos[stream].seq,
                              atomic_load_explicit(&h->intent_seq, memory_order_relaxed),
                              memory_order_relaxed);
    }
    atomic_store_explicit(&h->applied,
                          atomic_load_explicit(&h->intent_applied, memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&h->version, v + 1, memory_order_release);
    return 1;
}

/*
 * Entry i, live and even, as the previous writer left it: 1 if it holds a
 * whole value (its chunks are then claimed in map, its key filed in the
 * index and its hash corrected if need be), 0 if it must be deleted.
 * *fixed counts a corrected hash.  buf: max_data bytes.
 */
static int
snaptab_adopt(struct snaptab *t, uint32_t i, uint8_t *map, char *buf, uint32_t *fixed)
{
    struct snaptab_writer *w = t->w;
    struct snaptab_entry *e = &t->entries[i];
    uint8_t type = atomic_load_explicit(&e->type, memory_order_relaxed);
    uint32_t len = atomic_load_explicit(&e->len, memory_order_relaxed);
    uint32_t first = atomic_load_explicit(&e->first, memory_order_relaxed);
    uint32_t stream = atomic_load_explicit(&e->stream, memory_order_relaxed);
    struct snaptab_key key;
    const char *frame;
    uint32_t frame_len, dup;
    uint64_t h;

    if (type >= SNAPTAB_NTYPES || stream >= t->nstreams || len < SNAPTAB_MIN_DATA ||
        len > t->max_data)
        return 0;
    if (!snaptab_chain_claim(t, first, snaptab_chunks_for(len), map))
        return 0;
    if (!snaptab_copy_chain(t, first, len, buf) ||
        snaptab_parse(buf, len, key.s, key.len, &frame, &frame_len) != 0) {
        snaptab_chain_mark(t, first, snaptab_chunks_for(len), map, 0);
        return 0;
    }
    /* Hashed again: the stored hash is only what the last writer wrote,
     * and this process's hash key decides where the index files it. */
    h = snaptab_key_hash(t, type, &key);
    dup = snaptab_find(t, h, type, &key);
    if (dup != SNAPTAB_NONE) {
        /* Two entries of one key cannot come from a writer: keep the later. */
        uint64_t mine = atomic_load_explicit(&e->ring_seq, memory_order_relaxed);
        struct snaptab_entry *d = &t->entries[dup];
        if (atomic_load_explicit(&d->ring_seq, memory_order_relaxed) >= mine) {
            snaptab_chain_mark(t, first, snaptab_chunks_for(len), map, 0);
            return 0;
        }
        snaptab_index_remove(w, dup, h);
        snaptab_chain_mark(t, atomic_load_explicit(&d->first, memory_order_relaxed),
                           snaptab_chunks_for(atomic_load_explicit(&d->len, memory_order_relaxed)),
                           map, 0);
        snaptab_entry_clear(d);
        (*fixed)++;
    }
    if (atomic_load_explicit(&e->hash, memory_order_relaxed) != h) {
        uint64_t v = snaptab_entry_begin(e);
        atomic_store_explicit(&e->hash, h, memory_order_relaxed);
        snaptab_entry_end(e, v);
        (*fixed)++;
    }
    snaptab_index_insert(w, i, h);
    return 1;
}

int
snaptab_attach_writer(struct snaptab *t, void *mem, uint32_t max_keys, uint32_t nstreams,
                      uint32_t *repaired)
{
    struct snaptab_writer *w;
    struct snaptab_order *order = NULL;
    uint8_t *map = NULL;
    char *buf = NULL;
    uint32_t used, nlive = 0, fixed = 0, nchunks_used = 0;

    if (snaptab_attach_reader(t, mem, max_keys, nstreams) != 0)
        return -1;
    w = snaptab_writer_new(t);
    used = atomic_load_explicit(&t->hdr->used_entries, memory_order_relaxed);
    if (used > max_keys)
        used = max_keys;
    if (w != NULL) {
        map = calloc((size_t)t->nchunks / 8 + 1, 1);
        order = malloc(((size_t)used + 1) * sizeof(*order));
        buf = malloc(t->max_data);
    }
    if (w == NULL || map == NULL || order == NULL || buf == NULL) {
        snaptab_writer_free(w);
        free(map);
        free(order);
        free(buf);
        return -1;
    }
    t->w = w;

    fixed += (uint32_t)snaptab_header_repair(t);
    if (used != atomic_load_explicit(&t->hdr->used_entries, memory_order_relaxed)) {
        atomic_store_explicit(&t->hdr->used_entries, used, memory_order_relaxed);
        fixed++;
    }
    for (uint32_t i = 0; i < used; i++) {
        struct snaptab_entry *e = &t->entries[i];
        uint64_t v = atomic_load_explicit(&e->version, memory_order_relaxed);
        uint8_t state = atomic_load_explicit(&e->state, memory_order_relaxed);

        if (!(v & 1) && state == SNAPTAB_EMPTY)
            continue;
        if (!(v & 1) && state == SNAPTAB_LIVE && snaptab_adopt(t, i, map, buf, &fixed)) {
            order[nlive].ring_seq = atomic_load_explicit(&e->ring_seq, memory_order_relaxed);
            order[nlive].i = i;
            nlive++;
            continue;
        }
        /* Died in it (odd), or not a value: delete it. */
        snaptab_entry_clear(e);
        fixed++;
    }

    /* An entry adopted and then dropped as an older duplicate is empty now. */
    qsort(order, nlive, sizeof(*order), snaptab_order_cmp);
    for (uint32_t k = 0; k < nlive; k++) {
        struct snaptab_entry *e = &t->entries[order[k].i];
        uint32_t len;
        if (atomic_load_explicit(&e->state, memory_order_relaxed) != SNAPTAB_LIVE)
            continue;
        len = atomic_load_explicit(&e->len, memory_order_relaxed);
        snaptab_age_append(w, atomic_load_explicit(&e->type, memory_order_relaxed), order[k].i);
        w->keys++;
        w->bytes += len;
        w->chunks += snaptab_chunks_for(len);
    }
    /* Free lists, lowest index on top. */
    w->entry_bump = used;
    for (uint32_t i = used; i-- > 0;) {
        if (atomic_load_explicit(&t->entries[i].state, memory_order_relaxed) == SNAPTAB_EMPTY) {
            w->link[i] = w->free_entry;
            w->free_entry = i + 1;
        }
    }
    for (uint32_t c = 0; c < t->nchunks; c++) {
        if (map[c / 8] & (1u << (c % 8)))
            nchunks_used = c + 1;
    }
    w->chunk_bump = nchunks_used;
    for (uint32_t c = nchunks_used; c-- > 0;) {
        if (!(map[c / 8] & (1u << (c % 8))))
            w->free_chunk[w->nfree_chunks++] = c;
    }
    snaptab_publish_stats(t);
    free(map);
    free(order);
    free(buf);
    if (repaired != NULL)
        *repaired = fixed;
    return 0;
}

void
snaptab_detach(struct snaptab *t)
{
    snaptab_writer_free(t->w);
    t->w = NULL;
}
