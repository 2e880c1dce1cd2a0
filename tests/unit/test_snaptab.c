/*
 * test_snaptab: the snapshot table.
 *
 * What must hold: a key (type, event, market, book, outcome; not the
 * sport) has at most one value, and never goes back to an older entry id;
 * the least recently updated keys make room, whether keys or chunks run
 * out; TTLs per type, within a budget; a dropped stream takes its keys
 * with it; the header's applied and pos say what the table reflects.  A
 * differential run against a plain model checks all of it together, and
 * re-attaches the writer along the way.  A writer that dies mid-write, or
 * a region full of garbage, leaves a table the next writer repairs without
 * losing a chunk, and that readers never read out of bounds.  Across
 * processes, with a writer running (and being killed), every copy a
 * reader gets is one whole value and every header it reads is one state.
 */
#include "common/snaptab.h"
#include "common/hash.h"
#include "common/timeutil.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"

/* ---- helpers ---------------------------------------------------------------- */

/* A zeroed MAP_SHARED region for the table that ends right before a page
 * the process may not touch: a read past the table's end faults. */
struct region {
    char *map;
    size_t maplen;
    void *mem;
    size_t size;
};

static int
region_new(struct region *r, uint32_t max_keys, uint32_t nstreams)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t whole;

    r->size = snaptab_region_size(max_keys, nstreams);
    if (r->size == 0)
        return -1;
    whole = (r->size + page - 1) / page * page;
    r->maplen = whole + page;
    r->map = mmap(NULL, r->maplen, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (r->map == MAP_FAILED)
        return -1;
    if (mprotect(r->map + whole, page, PROT_NONE) != 0) {
        munmap(r->map, r->maplen);
        return -1;
    }
    r->mem = r->map + (whole - r->size);
    return 0;
}

static void
region_free(struct region *r)
{
    munmap(r->map, r->maplen);
}

/* A region with an empty table in it, and t its writer. */
static int
table_new(struct region *r, struct snaptab *t, uint32_t max_keys, uint32_t nstreams)
{
    struct snaptab init;
    uint32_t repaired = 99;

    if (region_new(r, max_keys, nstreams) != 0)
        return -1;
    if (snaptab_init(&init, r->mem, max_keys, nstreams) != 0 ||
        snaptab_attach_writer(t, r->mem, max_keys, nstreams, &repaired) != 0 || repaired != 0) {
        region_free(r);
        return -1;
    }
    return 0;
}

static void
table_free(struct region *r, struct snaptab *t)
{
    snaptab_detach(t);
    region_free(r);
}

/* A key whose strings live in the struct. */
struct tkey {
    char str[SNAPTAB_NSTR][40];
    struct snaptab_key k;
};

static const struct snaptab_key *
tkey_set(struct tkey *tk, const char *sport, const char *event, const char *market,
         const char *book, const char *outcome)
{
    const char *s[SNAPTAB_NSTR] = {sport, event, market, book, outcome};

    for (int i = 0; i < SNAPTAB_NSTR; i++) {
        if (s[i] == NULL) {
            tk->k.s[i] = NULL;
            tk->k.len[i] = 0;
            continue;
        }
        snprintf(tk->str[i], sizeof(tk->str[i]), "%s", s[i]);
        tk->k.s[i] = tk->str[i];
        tk->k.len[i] = (uint32_t)strlen(tk->str[i]);
    }
    return &tk->k;
}

static int
str_is(const char *s, uint32_t len, const char *want)
{
    size_t n = want == NULL ? 0 : strlen(want);

    return len == n && (n == 0 || memcmp(s, want, n) == 0);
}

/* 1 if the copy holds key's identity (not the sport). */
static int
copy_has_key(const struct snaptab_copy *c, uint8_t type, const struct snaptab_key *k)
{
    if (c->type != type)
        return 0;
    for (int i = SNAPTAB_EVENT; i < SNAPTAB_NSTR; i++) {
        if (c->len[i] != k->len[i] || (k->len[i] > 0 && memcmp(c->s[i], k->s[i], k->len[i]) != 0))
            return 0;
    }
    return 1;
}

static char scan_buf[SNAPTAB_MAX_DATA];

/* Find key by scanning the table as a worker would.  1 with *out (pointing
 * into buf, SNAPTAB_MAX_DATA bytes) and *index, 0 if absent.  A key found
 * twice fails the test. */
static int
lookup(const struct snaptab *t, uint8_t type, const struct snaptab_key *k, struct snaptab_copy *out,
       char *buf, uint32_t *index)
{
    uint32_t found = SNAPTAB_NONE, n = 0;
    struct snaptab_copy c;

    for (uint32_t i = 0; i < snaptab_scan_end(t); i++) {
        int rc = snaptab_read(t, i, &c, scan_buf, sizeof(scan_buf), NULL);
        CHECK(rc == 0 || rc == 1);
        if (rc == 1 && copy_has_key(&c, type, k)) {
            found = i;
            n++;
        }
    }
    CHECK(n <= 1);
    if (n == 0)
        return 0;
    CHECK_INT(snaptab_read(t, found, out, buf, SNAPTAB_MAX_DATA, NULL), 1);
    if (index != NULL)
        *index = found;
    return 1;
}

static uint32_t
count_live(const struct snaptab *t)
{
    struct snaptab_copy c;
    uint32_t n = 0;

    for (uint32_t i = 0; i < snaptab_scan_end(t); i++) {
        if (snaptab_read(t, i, &c, scan_buf, sizeof(scan_buf), NULL) == 1)
            n++;
    }
    return n;
}

static int
put(struct snaptab *t, uint8_t type, const struct snaptab_key *k, uint32_t stream, uint64_t ms,
    uint64_t ring_seq, uint64_t now, const char *frame)
{
    struct streamid id = {ms, 0};

    return snaptab_apply(t, type, k, stream, &id, ring_seq, now, frame, (uint32_t)strlen(frame));
}

/* A value of len frame bytes, filled with c. */
static int
put_len(struct snaptab *t, uint8_t type, const struct snaptab_key *k, uint64_t ms,
        uint64_t ring_seq, uint32_t len, char c)
{
    static char frame[SNAPTAB_MAX_DATA];
    struct streamid id = {ms, 0};

    memset(frame, c, len);
    return snaptab_apply(t, type, k, 0, &id, ring_seq, ring_seq, frame, len);
}

/* Frame bytes for a value taking exactly n chunks with key k. */
static uint32_t
len_for_chunks(const struct snaptab_key *k, uint32_t n)
{
    uint32_t fixed = 2 * SNAPTAB_NSTR;

    for (int i = 0; i < SNAPTAB_NSTR; i++)
        fixed += k->len[i];
    return n * SNAPTAB_CHUNK_DATA - fixed;
}

static struct snaptab_stats
stats_of(const struct snaptab *t)
{
    struct snaptab_stats st;

    snaptab_stats(t, &st);
    return st;
}

/* ---- geometry ---------------------------------------------------------------- */

static void
test_geometry(void)
{
    struct snaptab t;
    struct region r;
    struct snaptab_header *h;

    CHECK_INT(snaptab_region_size(0, 1), 0);
    CHECK_INT(snaptab_region_size(1, 0), 0);
    CHECK_INT(snaptab_region_size(SNAPTAB_MAX_KEYS + 1, 1), 0);
    CHECK_INT(snaptab_region_size(1, SNAPTAB_MAX_STREAMS + 1), 0);
    /* Header and pos rows on the first page, entries from the second, then
     * the chunks: 64 + 512 bytes per key. */
    CHECK_INT(snaptab_region_size(16, 4), 4096 + 4096 + 16 * 512);
    CHECK_INT(snaptab_region_size(1000000, 128), 4096 + 64000000 + 512000000);
    CHECK_INT(snaptab_region_size(8, 250), 8192 + 4096 + 8 * 512);

    CHECK_INT(region_new(&r, 16, 4), 0);
    CHECK_INT(snaptab_init(&t, r.mem, 0, 4), -1);
    CHECK_INT(snaptab_init(&t, r.mem, 16, 0), -1);
    CHECK_INT(snaptab_init(&t, (char *)r.mem + 8, 16, 4), -1);
    CHECK_INT(snaptab_attach_reader(&t, NULL, 16, 4), -1);
    /* A refused geometry writes nothing. */
    for (size_t i = 0; i < r.size; i++) {
        if (((char *)r.mem)[i] != 0) {
            CHECK(0);
            break;
        }
    }
    CHECK_INT(snaptab_init(&t, r.mem, 16, 4), 0);
    h = r.mem;
    CHECK(t.hdr == h && t.w == NULL);
    CHECK_INT(h->magic, SNAPTAB_MAGIC);
    CHECK_INT(h->max_keys, 16);
    CHECK_INT(h->nstreams, 4);
    CHECK_INT(h->nchunks, 32);
    CHECK_INT(h->chunk_size, SNAPTAB_CHUNK);
    CHECK_INT(h->entries_offset, 4096);
    CHECK_INT(h->chunks_offset, 8192);
    CHECK((char *)t.pos == (char *)r.mem + sizeof(*h));
    CHECK((char *)t.entries == (char *)r.mem + 4096);
    CHECK((char *)(t.chunks + t.nchunks) == (char *)r.mem + r.size);
    /* A small table holds at most a quarter of its chunks in one value. */
    CHECK_INT(snaptab_max_data(&t), 32 * SNAPTAB_CHUNK_DATA / 4);
    CHECK_INT(snaptab_scan_end(&t), 0);
    region_free(&r);

    CHECK_INT(region_new(&r, 4096, 1), 0);
    CHECK_INT(snaptab_init(&t, r.mem, 4096, 1), 0);
    CHECK_INT(snaptab_max_data(&t), SNAPTAB_MAX_DATA);
    region_free(&r);
}

/* ---- values -------------------------------------------------------------------- */

static void
test_insert_replace_lookup(void)
{
    struct region r;
    struct snaptab t;
    struct tkey a, b, c;
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    uint32_t ia = 0, ia2 = 0;
    struct snaptab_stats st;

    if (table_new(&r, &t, 16, 4) != 0) {
        CHECK(0);
        return;
    }
    tkey_set(&a, "nba", "ev1", "moneyline", "bk1", "home");
    tkey_set(&b, "nba", "ev1", "moneyline", "bk1", "away");
    tkey_set(&c, "nfl", "ev2", "total", "bk2", "over");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &a.k, 1, 100, 0, 5000, "a-1"), 1);
    CHECK_INT(put(&t, SNAPTAB_ODDS, &b.k, 1, 101, 1, 5001, "b-1"), 1);
    CHECK_INT(put(&t, SNAPTAB_OPPORTUNITY, &c.k, 2, 102, 2, 5002, "c-1"), 1);
    CHECK_INT(count_live(&t), 3);
    CHECK_INT(snaptab_scan_end(&t), 3);

    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &a.k, &cp, buf, &ia), 1);
    CHECK_INT(cp.type, SNAPTAB_ODDS);
    CHECK_INT(cp.stream, 1);
    CHECK_INT(cp.id.ms, 100);
    CHECK_INT(cp.id.seq, 0);
    CHECK_INT(cp.ring_seq, 0);
    CHECK_INT(cp.updated_ms, 5000);
    CHECK(str_is(cp.s[SNAPTAB_SPORT], cp.len[SNAPTAB_SPORT], "nba"));
    CHECK(str_is(cp.s[SNAPTAB_EVENT], cp.len[SNAPTAB_EVENT], "ev1"));
    CHECK(str_is(cp.s[SNAPTAB_MARKET], cp.len[SNAPTAB_MARKET], "moneyline"));
    CHECK(str_is(cp.s[SNAPTAB_BOOK], cp.len[SNAPTAB_BOOK], "bk1"));
    CHECK(str_is(cp.s[SNAPTAB_OUTCOME], cp.len[SNAPTAB_OUTCOME], "home"));
    CHECK(str_is(cp.frame, cp.frame_len, "a-1"));
    CHECK(cp.frame >= buf && cp.frame + cp.frame_len <= buf + sizeof(buf));

    CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &c.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "c-1"));
    CHECK_INT(cp.stream, 2);

    /* A newer id replaces, in the same entry, with a value of another size. */
    CHECK_INT(put(&t, SNAPTAB_ODDS, &a.k, 3, 200, 3, 6000, "a-2, a longer value this time"), 1);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &a.k, &cp, buf, &ia2), 1);
    CHECK_INT(ia2, ia);
    CHECK(str_is(cp.frame, cp.frame_len, "a-2, a longer value this time"));
    CHECK_INT(cp.id.ms, 200);
    CHECK_INT(cp.stream, 3);
    CHECK_INT(cp.ring_seq, 3);
    CHECK_INT(cp.updated_ms, 6000);
    CHECK_INT(count_live(&t), 3);

    /* An id with a larger sequence in the same millisecond is newer too. */
    {
        struct streamid id = {200, 1};
        CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, &a.k, 3, &id, 4, 6001, "a-3", 3), 1);
        CHECK_INT(lookup(&t, SNAPTAB_ODDS, &a.k, &cp, buf, NULL), 1);
        CHECK(str_is(cp.frame, cp.frame_len, "a-3"));
        CHECK_INT(cp.id.seq, 1);
    }

    st = stats_of(&t);
    CHECK_INT(st.keys, 3);
    CHECK_INT(st.bytes,
              3 * 10 + (3 + 3 + 9 + 3 + 4 + 3) + (3 + 3 + 9 + 3 + 4 + 3) + (3 + 3 + 5 + 3 + 4 + 3));
    CHECK_INT(st.chunks, 3);
    CHECK_INT(st.evicted_full + st.evicted_ttl + st.dropped_too_large, 0);
    CHECK_INT(st.max_keys, 16);
    CHECK_INT(st.nchunks, 32);
    CHECK_INT(st.capacity_bytes, 32 * SNAPTAB_CHUNK_DATA);
    table_free(&r, &t);
}

static void
test_older_id_ignored(void)
{
    struct region r;
    struct snaptab t;
    struct tkey a;
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    struct streamid pos[2];
    uint64_t applied = 0;
    struct streamid id = {500, 5};

    if (table_new(&r, &t, 16, 2) != 0) {
        CHECK(0);
        return;
    }
    tkey_set(&a, "nba", "ev1", "spread", "bk1", "home");
    CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, &a.k, 0, &id, 10, 1, "new", 3), 1);
    /* Equal, older in seq, older in ms: never go back. */
    id.seq = 5;
    CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, &a.k, 0, &id, 11, 2, "same", 4), 0);
    id.seq = 4;
    CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, &a.k, 0, &id, 12, 3, "olderseq", 8), 0);
    id.ms = 499;
    id.seq = 99;
    CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, &a.k, 1, &id, 13, 4, "olderms", 7), 0);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &a.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "new"));
    CHECK_INT(cp.id.ms, 500);
    CHECK_INT(cp.id.seq, 5);
    CHECK_INT(cp.ring_seq, 10);
    CHECK_INT(cp.updated_ms, 1);
    /* The frames were still applied: the header moves on. */
    CHECK_INT(snaptab_read_header(&t, &applied, pos, 2), 0);
    CHECK_INT(applied, 14);
    CHECK_INT(pos[0].ms, 500);
    CHECK_INT(pos[0].seq, 4);
    CHECK_INT(pos[1].ms, 499);
    CHECK_INT(pos[1].seq, 99);
    CHECK_INT(stats_of(&t).keys, 1);
    table_free(&r, &t);
}

static void
test_key_identity(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k1, k2;
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];

    if (table_new(&r, &t, 32, 1) != 0) {
        CHECK(0);
        return;
    }
    tkey_set(&k1, "nba", "ev1", "moneyline", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k1.k, 0, 1, 0, 0, "odds"), 1);
    /* The type is part of the key. */
    CHECK_INT(put(&t, SNAPTAB_OPPORTUNITY, &k1.k, 0, 2, 1, 0, "opp"), 1);
    CHECK_INT(count_live(&t), 2);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k1.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "odds"));
    CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &k1.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "opp"));

    /* The sport is not: another sport replaces, and is stored; an absent
     * one too. */
    tkey_set(&k2, "basketball", "ev1", "moneyline", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 3, 2, 0, "odds-2"), 1);
    CHECK_INT(count_live(&t), 2);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k1.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "odds-2"));
    CHECK(str_is(cp.s[SNAPTAB_SPORT], cp.len[SNAPTAB_SPORT], "basketball"));
    tkey_set(&k2, NULL, "ev1", "moneyline", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 4, 3, 0, "odds-3"), 1);
    CHECK_INT(count_live(&t), 2);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k1.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "odds-3"));
    CHECK_INT(cp.len[SNAPTAB_SPORT], 0);

    /* A point move is a new value of the same key (the line is in the
     * frame, not in the key). */
    tkey_set(&k2, "nba", "ev1", "spread", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 5, 4, 0, "{line:-3.5,price:1.91}"), 1);
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 6, 5, 0, "{line:-4.0,price:1.95}"), 1);
    CHECK_INT(count_live(&t), 3);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k2.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "{line:-4.0,price:1.95}"));

    /* Each string counts on its own: moving bytes from one to the next, or
     * changing any one of them, is another key. */
    tkey_set(&k2, "nba", "ev1m", "oneyline", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 7, 6, 0, "shifted"), 1);
    tkey_set(&k2, "nba", "ev1", "moneyline", "bk2", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 8, 7, 0, "book"), 1);
    tkey_set(&k2, "nba", "ev2", "moneyline", "bk1", "home");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 9, 8, 0, "event"), 1);
    tkey_set(&k2, "nba", "ev1", "moneyline", "bk1", "");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 10, 9, 0, "empty outcome"), 1);
    tkey_set(&k2, "nba", "ev1", "moneyline", "bk1", "homes");
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k2.k, 0, 11, 10, 0, "longer outcome"), 1);
    CHECK_INT(count_live(&t), 8);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k1.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "odds-3"));
    tkey_set(&k2, "nba", "ev1", "moneyline", "bk1", "");
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k2.k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "empty outcome"));
    table_free(&r, &t);
}

static void
test_max_keys_eviction(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k[10];
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    char name[16];
    uint64_t seq = 0;

    if (table_new(&r, &t, 8, 1) != 0) {
        CHECK(0);
        return;
    }
    /* Both types, interleaved: one age order across the two. */
    for (int i = 0; i < 10; i++) {
        snprintf(name, sizeof(name), "o%d", i);
        tkey_set(&k[i], "nba", "ev", "ml", "bk", name);
    }
    for (int i = 0; i < 8; i++, seq++)
        CHECK_INT(put(&t, (uint8_t)(i % 2), &k[i].k, 0, seq + 1, seq, seq, "v1"), 1);
    CHECK_INT(snaptab_scan_end(&t), 8);
    /* Key 0 updated: key 1 is now the least recently updated. */
    CHECK_INT(put(&t, 0, &k[0].k, 0, seq + 1, seq, seq, "v2"), 1);
    seq++;
    CHECK_INT(put(&t, 0, &k[8].k, 0, seq + 1, seq, seq, "v1"), 1);
    seq++;
    CHECK_INT(stats_of(&t).evicted_full, 1);
    CHECK_INT(lookup(&t, 1, &k[1].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, 0, &k[0].k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "v2"));
    CHECK_INT(lookup(&t, 0, &k[8].k, &cp, buf, NULL), 1);
    /* Then key 2 (an odds), then key 3 (an opportunity). */
    CHECK_INT(put(&t, 1, &k[9].k, 0, seq + 1, seq, seq, "v1"), 1);
    seq++;
    CHECK_INT(lookup(&t, 0, &k[2].k, &cp, buf, NULL), 0);
    CHECK_INT(put(&t, 1, &k[1].k, 0, seq + 1, seq, seq, "back"), 1);
    seq++;
    CHECK_INT(lookup(&t, 1, &k[3].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, 1, &k[1].k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "back"));
    CHECK_INT(stats_of(&t).evicted_full, 3);
    CHECK_INT(stats_of(&t).keys, 8);
    CHECK_INT(count_live(&t), 8);
    /* The table never grew past its entries. */
    CHECK_INT(snaptab_scan_end(&t), 8);
    table_free(&r, &t);
}

static void
test_chunk_eviction(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k[8];
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    char name[16];
    uint32_t big;
    struct snaptab_stats st;

    /* 16 keys, 32 chunks: values of 8 chunks fill it with 4 keys. */
    if (table_new(&r, &t, 16, 1) != 0) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 8; i++) {
        snprintf(name, sizeof(name), "o%d", i);
        tkey_set(&k[i], "nba", "ev", "ml", "bk", name);
    }
    big = len_for_chunks(&k[0].k, 8);
    CHECK_INT(big + 10 + 3 + 2 + 2 + 2 + 2, snaptab_max_data(&t));
    for (uint64_t i = 0; i < 4; i++)
        CHECK_INT(put_len(&t, 0, &k[i].k, i + 1, i, big, (char)('a' + i)), 1);
    st = stats_of(&t);
    CHECK_INT(st.chunks, 32);
    CHECK_INT(st.evicted_full, 0);
    /* A fifth big value makes room by evicting the least recently updated. */
    CHECK_INT(put_len(&t, 0, &k[4].k, 5, 4, big, 'e'), 1);
    st = stats_of(&t);
    CHECK_INT(st.evicted_full, 1);
    CHECK_INT(st.keys, 4);
    CHECK_INT(lookup(&t, 0, &k[0].k, &cp, buf, NULL), 0);
    for (int i = 1; i < 5; i++) {
        CHECK_INT(lookup(&t, 0, &k[i].k, &cp, buf, NULL), 1);
        CHECK_INT(cp.frame_len, big);
        CHECK(cp.frame[0] == 'a' + i && cp.frame[big - 1] == 'a' + i);
    }
    /* A key that replaces its own big value needs room for both while the
     * new one is written: the least recently updated other key goes. */
    CHECK_INT(put_len(&t, 0, &k[4].k, 6, 5, big, 'f'), 1);
    CHECK_INT(stats_of(&t).evicted_full, 2);
    CHECK_INT(lookup(&t, 0, &k[1].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, 0, &k[4].k, &cp, buf, NULL), 1);
    CHECK(cp.frame[0] == 'f' && cp.frame[big - 1] == 'f');
    /* Small values then fit many to a table again, without evictions. */
    for (int i = 0; i < 8; i++)
        CHECK_INT(put_len(&t, 1, &k[i].k, 10 + (uint64_t)i, 10 + (uint64_t)i, 10, 's'), 1);
    CHECK_INT(stats_of(&t).evicted_full, 2);
    CHECK_INT(stats_of(&t).keys, 11);
    table_free(&r, &t);
}

static void
test_too_large(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k;
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    uint32_t max;
    size_t needed = 0;
    static char small[64];

    if (table_new(&r, &t, 1024, 1) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(snaptab_max_data(&t), SNAPTAB_MAX_DATA);
    tkey_set(&k, "nba", "ev", "ml", "bk", "o");
    max = SNAPTAB_MAX_DATA - (10 + 3 + 2 + 2 + 2 + 1);
    CHECK_INT(put_len(&t, 0, &k.k, 1, 0, max + 1, 'x'), 0);
    CHECK_INT(stats_of(&t).dropped_too_large, 1);
    CHECK_INT(count_live(&t), 0);
    CHECK_INT(put_len(&t, 0, &k.k, 2, 1, max, 'y'), 1);
    CHECK_INT(lookup(&t, 0, &k.k, &cp, buf, NULL), 1);
    CHECK_INT(cp.frame_len, max);
    CHECK(cp.frame[0] == 'y' && cp.frame[max - 1] == 'y');
    /* A too large replacement leaves the old value. */
    CHECK_INT(put_len(&t, 0, &k.k, 3, 2, SNAPTAB_MAX_DATA, 'z'), 0);
    CHECK_INT(stats_of(&t).dropped_too_large, 2);
    CHECK_INT(lookup(&t, 0, &k.k, &cp, buf, NULL), 1);
    CHECK(cp.frame[0] == 'y');
    /* A reader's buffer too small: told how much it needs. */
    CHECK_INT(snaptab_read(&t, 0, &cp, small, sizeof(small), &needed), -1);
    CHECK_INT(needed, SNAPTAB_MAX_DATA);
    CHECK_INT(snaptab_read(&t, 0, &cp, small, sizeof(small), NULL), -1);
    /* Out of range, and never used. */
    CHECK_INT(snaptab_read(&t, 1024, &cp, buf, sizeof(buf), NULL), 0);
    CHECK_INT(snaptab_read(&t, UINT32_MAX, &cp, buf, sizeof(buf), NULL), 0);
    CHECK_INT(snaptab_read(&t, 5, &cp, buf, sizeof(buf), NULL), 0);
    table_free(&r, &t);
}

static void
test_ttl(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k[12];
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    char name[16];

    if (table_new(&r, &t, 32, 1) != 0) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 12; i++) {
        snprintf(name, sizeof(name), "o%d", i);
        tkey_set(&k[i], "nba", "ev", "ml", "bk", name);
    }
    /* Keys 0-5 odds updated at 1000, 2000 .. 6000; keys 6-11 opportunities
     * at the same times. */
    for (uint64_t i = 0; i < 6; i++) {
        CHECK_INT(put(&t, SNAPTAB_ODDS, &k[i].k, 0, 2 * i + 1, 2 * i, 1000 * (i + 1), "o"), 1);
        CHECK_INT(
            put(&t, SNAPTAB_OPPORTUNITY, &k[6 + i].k, 0, 2 * i + 2, 2 * i + 1, 1000 * (i + 1), "p"),
            1);
    }
    /* TTL 0: never. */
    CHECK_INT(snaptab_expire(&t, 1000000, 0, 0, 100), 0);
    /* At 7000, odds TTL 3500: odds updated at or before 3500 (1000-3000);
     * opportunities TTL 5000: those at or before 2000. */
    CHECK_INT(snaptab_expire(&t, 7000, 3500, 5000, 100), 5);
    CHECK_INT(stats_of(&t).evicted_ttl, 5);
    for (int i = 0; i < 6; i++) {
        CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k[i].k, &cp, buf, NULL), i >= 3);
        CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &k[6 + i].k, &cp, buf, NULL), i >= 2);
    }
    /* Exactly at the TTL expires. */
    CHECK_INT(snaptab_expire(&t, 7000, 3000, 4000, 100), 2);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k[3].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &k[8].k, &cp, buf, NULL), 0);
    /* An update makes a key young again: it moves to the young end. */
    CHECK_INT(put(&t, SNAPTAB_ODDS, &k[4].k, 0, 100, 100, 9000, "o2"), 1);
    /* Odds left: key 5 (6000), key 4 (9000); opportunities: 9 (4000), 10,
     * 11.  A budget of 3 examines turn by turn: odds 5 (expired), opps 9
     * (expired), odds 4 (young: odds done), so opp 10 waits. */
    CHECK_INT(snaptab_expire(&t, 20000, 12000, 1000, 3), 2);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k[5].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, SNAPTAB_ODDS, &k[4].k, &cp, buf, NULL), 1);
    CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &k[9].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&t, SNAPTAB_OPPORTUNITY, &k[10].k, &cp, buf, NULL), 1);
    /* Odds take the first turn: a budget of 1 is spent on key 4. */
    CHECK_INT(snaptab_expire(&t, 20000, 12000, 1000, 1), 0);
    CHECK_INT(snaptab_expire(&t, 20000, 12000, 1000, 2), 1);
    CHECK_INT(snaptab_expire(&t, 20000, 12000, 1000, 0), 0);
    CHECK_INT(snaptab_expire(&t, 20000, 12000, 1000, 100), 1);
    CHECK_INT(count_live(&t), 1);
    /* A clock that went back expires nothing. */
    CHECK_INT(snaptab_expire(&t, 10, 1, 1, 100), 0);
    CHECK_INT(stats_of(&t).evicted_ttl, 11);
    CHECK_INT(stats_of(&t).keys, 1);
    CHECK_INT(stats_of(&t).chunks, 1);
    table_free(&r, &t);
}

static void
test_drop_stream(void)
{
    struct region r;
    struct snaptab t;
    struct tkey k[9];
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    struct streamid pos[3];
    uint64_t applied = 0;
    char name[16];

    if (table_new(&r, &t, 16, 3) != 0) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < 9; i++) {
        snprintf(name, sizeof(name), "o%d", i);
        tkey_set(&k[i], "nba", "ev", "ml", "bk", name);
        CHECK_INT(put(&t, (uint8_t)(i % 2), &k[i].k, (uint32_t)(i % 3), 10 + (uint64_t)i,
                      (uint64_t)i, 0, "v"),
                  1);
    }
    snaptab_drop_stream(&t, 1);
    CHECK_INT(count_live(&t), 6);
    CHECK_INT(stats_of(&t).keys, 6);
    for (int i = 0; i < 9; i++)
        CHECK_INT(lookup(&t, (uint8_t)(i % 2), &k[i].k, &cp, buf, NULL), i % 3 != 1);
    CHECK_INT(snaptab_read_header(&t, &applied, pos, 3), 0);
    CHECK_INT(applied, 9);
    CHECK_INT(pos[0].ms, 16);
    CHECK_INT(pos[1].ms, 0);
    CHECK_INT(pos[1].seq, 0);
    CHECK_INT(pos[2].ms, 18);
    /* Not evictions. */
    CHECK_INT(stats_of(&t).evicted_full + stats_of(&t).evicted_ttl, 0);
    /* The stream's keys may come back, with any id. */
    CHECK_INT(put(&t, 1, &k[1].k, 1, 1, 9, 0, "again"), 1);
    CHECK_INT(lookup(&t, 1, &k[1].k, &cp, buf, NULL), 1);
    CHECK(str_is(cp.frame, cp.frame_len, "again"));
    table_free(&r, &t);
}

static void
test_header(void)
{
    struct region r;
    struct snaptab t, rd;
    struct streamid pos[6], id = {77, 3};
    uint64_t applied = 1;

    if (table_new(&r, &t, 16, 4) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(snaptab_attach_reader(&rd, r.mem, 16, 4), 0);
    memset(pos, 0xff, sizeof(pos));
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 6), 0);
    CHECK_INT(applied, 0);
    for (int s = 0; s < 6; s++)
        CHECK(pos[s].ms == 0 && pos[s].seq == 0);
    /* A frame without a key still moves applied and its stream's pos. */
    CHECK_INT(snaptab_apply(&t, SNAPTAB_ODDS, NULL, 2, &id, 41, 0, "x", 1), 0);
    memset(pos, 0xff, sizeof(pos));
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 6), 0);
    CHECK_INT(applied, 42);
    CHECK_INT(pos[2].ms, 77);
    CHECK_INT(pos[2].seq, 3);
    CHECK_INT(pos[0].ms, 0);
    /* Rows past nstreams read 0-0. */
    CHECK(pos[4].ms == 0 && pos[4].seq == 0 && pos[5].ms == 0 && pos[5].seq == 0);
    CHECK_INT(count_live(&rd), 0);
    snaptab_set_applied(&t, 100);
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 3), 0);
    CHECK_INT(applied, 100);
    CHECK_INT(pos[2].ms, 77);
    /* n smaller than nstreams: only those rows. */
    pos[1].ms = 12345;
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 1), 0);
    CHECK_INT(pos[1].ms, 12345);
    /* The header survives a new writer. */
    snaptab_detach(&t);
    CHECK_INT(snaptab_attach_writer(&t, r.mem, 16, 4, NULL), 0);
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 3), 0);
    CHECK_INT(applied, 100);
    CHECK_INT(pos[2].ms, 77);
    table_free(&r, &t);
}

/* ---- crashes and garbage -------------------------------------------------------- */

struct stuck {
    struct snaptab *t;
    uint32_t i;
};

static int
read_stuck_child(void *arg)
{
    struct stuck *st = arg;
    struct snaptab *t = st->t;
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    struct streamid pos[1];
    uint64_t applied;

    /* An entry, and the header, left odd by a dead writer: the reader gives
     * up on them instead of spinning. */
    if (snaptab_read(t, st->i, &cp, buf, sizeof(buf), NULL) != -2)
        return 1;
    if (snaptab_read_header(t, &applied, pos, 1) != -1)
        return 2;
    return 0;
}

static void
test_crash_repair(void)
{
    struct region r;
    struct snaptab t, rd;
    struct tkey k[32];
    struct snaptab_copy cp;
    static char buf[SNAPTAB_MAX_DATA];
    char name[16];
    uint32_t repaired = 0, len2, idx[12];
    struct snaptab_entry *e;
    struct snaptab_header *h;
    struct streamid pos[2];
    uint64_t applied = 0, seq = 0;
    struct stuck stuck;
    int rc;

    if (table_new(&r, &t, 16, 2) != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(snaptab_attach_reader(&rd, r.mem, 16, 2), 0);
    for (int i = 0; i < 32; i++) {
        snprintf(name, sizeof(name), "o%02d", i);
        tkey_set(&k[i], "nba", "ev", "ml", "bk", name);
    }
    len2 = len_for_chunks(&k[0].k, 2);
    for (int i = 0; i < 12; i++, seq++)
        CHECK_INT(put_len(&t, (uint8_t)(i % 2), &k[i].k, seq + 1, seq, len2, (char)('A' + i)), 1);
    for (int i = 0; i < 12; i++)
        CHECK_INT(lookup(&t, (uint8_t)(i % 2), &k[i].k, &cp, buf, &idx[i]), 1);
    CHECK_INT(stats_of(&t).chunks, 24);
    /* The writer dies: its private index goes with it. */
    snaptab_detach(&t);

    /* Entry of key 2: killed while switching it (odd), its chain garbage. */
    e = &t.entries[idx[2]];
    atomic_store(&e->version, atomic_load(&e->version) + 1);
    atomic_store(&e->first, 9999);
    /* Key 3: killed between the first and the last store of a switch:
     * odd, everything else as whole as it looks.  Deleted all the same:
     * which of its fields are the new value's is unknown. */
    e = &t.entries[idx[3]];
    atomic_store(&e->version, atomic_load(&e->version) + 1);
    /* Key 5: a chain that loops on itself. */
    e = &t.entries[idx[5]];
    atomic_store(&t.chunks[atomic_load(&e->first)].next, atomic_load(&e->first));
    /* Key 7: a length its chain is too short for. */
    e = &t.entries[idx[7]];
    atomic_store(&e->len, 3 * SNAPTAB_CHUNK_DATA);
    /* Key 9: a chain that runs out of the data area. */
    e = &t.entries[idx[9]];
    atomic_store(&t.chunks[atomic_load(&e->first)].next, 1u << 30);
    /* A value copied into free chunks but never switched in. */
    for (uint32_t c = 24; c < 28; c++) {
        atomic_store(&t.chunks[c].next, c + 1);
        memset(t.chunks[c].data, 'G', SNAPTAB_CHUNK_DATA);
    }
    /* And the header left mid-change, its intent written. */
    h = r.mem;
    atomic_store(&h->intent_stream, 1);
    atomic_store(&h->intent_ms, 4242);
    atomic_store(&h->intent_seq, 7);
    atomic_store(&h->intent_applied, 12);
    atomic_store(&h->version, atomic_load(&h->version) + 1);

    /* Readers meanwhile: never stuck, never handed the garbage. */
    stuck.t = &rd;
    stuck.i = idx[2];
    rc = test_run_in_child(read_stuck_child, &stuck, 10);
    CHECK_INT(rc, 0);
    /* (Key 5's loop still reads as a value: a reader cannot tell a chain
     * that revisits a chunk from one that does not, only the writer can.) */
    CHECK_INT(snaptab_read(&rd, idx[7], &cp, buf, sizeof(buf), NULL), 0);
    CHECK_INT(snaptab_read(&rd, idx[9], &cp, buf, sizeof(buf), NULL), 0);

    CHECK_INT(snaptab_attach_writer(&t, r.mem, 16, 2, &repaired), 0);
    CHECK_INT(repaired, 6); /* five entries and the header */
    CHECK_INT(atomic_load(&t.entries[idx[2]].version) % 2, 0);
    CHECK_INT(snaptab_read_header(&rd, &applied, pos, 2), 0);
    CHECK_INT(applied, 12);
    CHECK_INT(pos[1].ms, 4242);
    CHECK_INT(pos[1].seq, 7);
    for (int i = 0; i < 12; i++) {
        int gone = i == 2 || i == 3 || i == 5 || i == 7 || i == 9;
        CHECK_INT(lookup(&rd, (uint8_t)(i % 2), &k[i].k, &cp, buf, NULL), !gone);
        if (gone)
            continue;
        CHECK_INT(cp.frame_len, len2);
        CHECK(cp.frame[0] == 'A' + i && cp.frame[len2 - 1] == 'A' + i);
        CHECK_INT(cp.id.ms, (uint64_t)i + 1);
    }
    CHECK_INT(stats_of(&t).keys, 7);
    CHECK_INT(stats_of(&t).chunks, 14);
    CHECK_INT(count_live(&rd), 7);
    /* The same table again: nothing left to repair. */
    snaptab_detach(&t);
    CHECK_INT(snaptab_attach_writer(&t, r.mem, 16, 2, &repaired), 0);
    CHECK_INT(repaired, 0);

    /* No chunk or entry leaked: 9 more keys of 2 chunks fill the table
     * exactly, without an eviction. */
    for (int i = 12; i < 21; i++, seq++)
        CHECK_INT(put_len(&t, 0, &k[i].k, seq + 1, seq, len2, 'n'), 1);
    CHECK_INT(stats_of(&t).evicted_full, 0);
    CHECK_INT(stats_of(&t).keys, 16);
    CHECK_INT(stats_of(&t).chunks, 32);
    CHECK_INT(count_live(&rd), 16);
    /* And the age order survived the rebuild: the next key evicts key 0,
     * the least recently updated before the crash. */
    CHECK_INT(put_len(&t, 1, &k[21].k, seq + 1, seq, len2, 'n'), 1);
    seq++;
    CHECK_INT(stats_of(&t).evicted_full, 1);
    CHECK_INT(lookup(&rd, 0, &k[0].k, &cp, buf, NULL), 0);
    CHECK_INT(lookup(&rd, 1, &k[1].k, &cp, buf, NULL), 1);
    table_free(&r, &t);
}

static uint64_t
rng_next(uint64_t *s)
{
    /* xorshift64*: deterministic, good enough to pick keys and sizes. */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* Read every entry and the header of t; whatever the region holds, each
 * call returns, and a copy it returns lies inside buf.  0 if so. */
static int
read_everything(const struct snaptab *t)
{
    static char buf[SNAPTAB_MAX_DATA];
    struct streamid pos[8];
    struct snaptab_copy cp;
    uint64_t applied;
    int bad = 0;

    for (uint32_t i = 0; i < t->max_keys; i++) {
        size_t needed = 0;
        int rc = snaptab_read(t, i, &cp, buf, sizeof(buf), &needed);
        if (rc == 1) {
            for (int s = 0; s < SNAPTAB_NSTR; s++)
                bad |= cp.s[s] < buf || cp.s[s] + cp.len[s] > buf + sizeof(buf);
            bad |= cp.frame < buf || cp.frame + cp.frame_len > buf + sizeof(buf);
            bad |= cp.type >= SNAPTAB_NTYPES || cp.stream >= t->nstreams;
        } else if (rc == -1) {
            bad |= needed <= sizeof(buf);
        } else {
            bad |= rc != 0 && rc != -2;
        }
    }
    (void)snaptab_read_header(t, &applied, pos, 8);
    return bad;
}

static int
garbage_child(void *arg)
{
    struct region r;
    struct snaptab t, rd;
    struct tkey k[16];
    char name[16];
    uint64_t rng = 0x9e3779b97f4a7c15ULL + (uintptr_t)arg;
    uint32_t repaired = 0, len2;
    struct snaptab_stats st;
    char *p;

    if (table_new(&r, &t, 16, 2) != 0)
        return 10;
    for (int i = 0; i < 16; i++) {
        snprintf(name, sizeof(name), "k%02d", i);
        tkey_set(&k[i], "s", "ev", "ml", "bk", name);
    }
    for (uint64_t n = 0; n < 40; n++) {
        uint64_t x = rng_next(&rng);
        put_len(&t, (uint8_t)(x & 1), &k[(x >> 8) % 16].k, n + 1, n, (uint32_t)((x >> 20) % 900),
                'v');
    }
    snaptab_detach(&t);
    /* Scribble over the entries, the links and the header's writer line:
     * random words at random places, then whole random bytes. */
    p = (char *)t.entries;
    for (int n = 0; n < 200; n++) {
        uint64_t x = rng_next(&rng);
        p[x % (16 * sizeof(struct snaptab_entry))] = (char)(x >> 40);
        atomic_store(&t.chunks[(x >> 16) % 32].next, (uint32_t)(x >> 32) % 40);
    }
    memset((char *)t.hdr + SNAPTAB_CACHELINE, 0xa5, SNAPTAB_CACHELINE);
    if ((uintptr_t)arg % 2 == 1) {
        for (size_t i = 0; i < 16 * sizeof(struct snaptab_entry); i++)
            p[i] = (char)rng_next(&rng);
    }
    if (snaptab_attach_reader(&rd, r.mem, 16, 2) != 0 || read_everything(&rd) != 0)
        return 11;
    if (snaptab_attach_writer(&t, r.mem, 16, 2, &repaired) != 0)
        return 12;
    /* Repaired: the readers find only whole values, and the writer can
     * still use every chunk: 16 new keys of 2 chunks each replace all. */
    if (read_everything(&rd) != 0)
        return 13;
    st = stats_of(&t);
    if (st.keys != count_live(&rd) || st.keys > 16 || st.chunks > 32)
        return 14;
    len2 = SNAPTAB_CHUNK_DATA * 2 - (10 + 1 + 2 + 2 + 2 + 4);
    for (int i = 0; i < 16; i++) {
        struct tkey nk;
        snprintf(name, sizeof(name), "nw%02d", i);
        tkey_set(&nk, "s", "ev", "ml", "bk", name);
        if (put_len(&t, 0, &nk.k, 1000 + (uint64_t)i, 1000 + (uint64_t)i, len2, 'n') != 1)
            return 15;
    }
    st = stats_of(&t);
    if (st.keys != 16 || st.chunks != 32 || count_live(&rd) != 16)
        return 16;
    snaptab_detach(&t);
    if (snaptab_attach_writer(&t, r.mem, 16, 2, &repaired) != 0 || repaired != 0)
        return 17;
    table_free(&r, &t);
    return 0;
}

static void
test_garbage(void)
{
    /* In children: a read out of bounds faults on the guard page, and a
     * loop that never ends is cut by the alarm. */
    for (uintptr_t round = 0; round < 12; round++) {
        int rc = test_run_in_child(garbage_child, (void *)round, 10);
        if (rc != 0)
            printf("#   round %u: child ended with %d (139: SIGSEGV, 142: SIGALRM)\n",
                   (unsigned)round, rc);
        CHECK_INT(rc, 0);
    }
}

/* ---- differential run against a model ------------------------------------------ */

#define MODEL_KEYS     40
#define MODEL_MAX_KEYS 24
#define MODEL_STREAMS  3

struct model_entry {
    int live;
    uint32_t stream;
    uint64_t ms, ring_seq, updated;
    uint32_t total, frame_len, sport;
    unsigned char frame[4096];
};

struct model {
    struct model_entry e[MODEL_KEYS];
    uint64_t evicted_full, evicted_ttl, dropped, applied;
    struct streamid pos[MODEL_STREAMS];
};

/* Key k of the model: type k / 20, the strings from k % 20, so keys k and
 * k + 20 differ by type alone; the sport varies with the value. */
static void
model_key(struct tkey *tk, int k, uint32_t sport)
{
    char ev[16], out[16], sp[16];

    snprintf(ev, sizeof(ev), "ev%d", k % 20 % 7);
    snprintf(out, sizeof(out), "out%d", k % 20);
    snprintf(sp, sizeof(sp), "sport%u", sport);
    tkey_set(tk, sport == 0 ? NULL : sp, ev, k % 20 % 3 ? "ml" : "spread", "book", out);
}

static uint32_t
model_chunks(uint32_t total)
{
    return (total + SNAPTAB_CHUNK_DATA - 1) / SNAPTAB_CHUNK_DATA;
}

static uint32_t
model_free_chunks(const struct model *m)
{
    uint32_t used = 0;

    for (int k = 0; k < MODEL_KEYS; k++) {
        if (m->e[k].live)
            used += model_chunks(m->e[k].total);
    }
    return MODEL_MAX_KEYS * SNAPTAB_CHUNKS_PER_KEY - used;
}

static void
model_evict_oldest(struct model *m, int except)
{
    int oldest = -1;

    for (int k = 0; k < MODEL_KEYS; k++) {
        if (m->e[k].live && k != except && (oldest < 0 || m->e[k].ring_seq < m->e[oldest].ring_seq))
            oldest = k;
    }
    CHECK(oldest >= 0);
    if (oldest >= 0)
        m->e[oldest].live = 0;
    m->evicted_full++;
}

static int
model_apply(struct model *m, int k, uint32_t sport, uint32_t stream, uint64_t ms, uint64_t ring_seq,
            uint64_t now, const unsigned char *frame, uint32_t len, uint32_t max_data)
{
    struct tkey tk;
    struct model_entry *e = &m->e[k];
    uint32_t total = 10, live = 0;

    model_key(&tk, k, sport);
    for (int s = 0; s < SNAPTAB_NSTR; s++)
        total += tk.k.len[s];
    total += len;
    m->applied = ring_seq + 1;
    m->pos[stream].ms = ms;
    m->pos[stream].seq = 0;
    if (total > max_data) {
        m->dropped++;
        return 0;
    }
    if (e->live && ms <= e->ms)
        return 0;
    for (int j = 0; j < MODEL_KEYS; j++)
        live += m->e[j].live;
    if (!e->live && live == MODEL_MAX_KEYS)
        model_evict_oldest(m, k);
    while (model_free_chunks(m) < model_chunks(total))
        model_evict_oldest(m, k);
    e->live = 1;
    e->stream = stream;
    e->ms = ms;
    e->ring_seq = ring_seq;
    e->updated = now;
    e->total = total;
    e->sport = sport;
    e->frame_len = len;
    memcpy(e->frame, frame, len);
    return 1;
}

/* The table, as a reader sees it, is the model: one scan, each live entry
 * matched to its model key by type and outcome. */
static void
model_compare(const struct model *m, const struct snaptab *t)
{
    static char buf[SNAPTAB_MAX_DATA];
    struct snaptab_copy cp;
    struct snaptab_stats st;
    struct streamid pos[MODEL_STREAMS];
    uint64_t applied = 0, bytes = 0, chunks = 0;
    uint32_t live = 0;
    int seen[MODEL_KEYS] = {0};

    for (uint32_t i = 0; i < snaptab_scan_end(t); i++) {
        const struct model_entry *e;
        struct tkey tk;
        char out[16];
        int k = -1, rc = snaptab_read(t, i, &cp, buf, sizeof(buf), NULL);

        CHECK(rc == 0 || rc == 1);
        if (rc != 1)
            continue;
        snprintf(out, sizeof(out), "%.*s", (int)cp.len[SNAPTAB_OUTCOME], cp.s[SNAPTAB_OUTCOME]);
        if (sscanf(out, "out%d", &k) != 1 || k < 0 || k >= 20) {
            CHECK(0);
            continue;
        }
        k += 20 * cp.type;
        e = &m->e[k];
        model_key(&tk, k, e->sport);
        if (!e->live || seen[k] || !copy_has_key(&cp, cp.type, &tk.k)) {
            printf("#   entry %u: key %d in the table, not in the model (or twice)\n", i, k);
            CHECK(0);
            continue;
        }
        seen[k] = 1;
        CHECK_INT(cp.stream, e->stream);
        CHECK_INT(cp.id.ms, e->ms);
        CHECK_INT(cp.ring_seq, e->ring_seq);
        CHECK_INT(cp.updated_ms, e->updated);
        CHECK_INT(cp.len[SNAPTAB_SPORT], tk.k.len[SNAPTAB_SPORT]);
        CHECK(cp.len[SNAPTAB_SPORT] == 0 ||
              memcmp(cp.s[SNAPTAB_SPORT], tk.k.s[SNAPTAB_SPORT], tk.k.len[SNAPTAB_SPORT]) == 0);
        CHECK_INT(cp.frame_len, e->frame_len);
        CHECK(cp.frame_len != e->frame_len || memcmp(cp.frame, e->frame, e->frame_len) == 0);
    }
    for (int k = 0; k < MODEL_KEYS; k++) {
        if (!m->e[k].live)
            continue;
        if (!seen[k]) {
            printf("#   key %d in the model, not in the table\n", k);
            CHECK(0);
        }
        live++;
        bytes += m->e[k].total;
        chunks += model_chunks(m->e[k].total);
    }
    st = stats_of(t);
    CHECK_INT(st.keys, live);
    CHECK_INT(st.bytes, bytes);
    CHECK_INT(st.chunks, chunks);
    CHECK_INT(st.evicted_full, m->evicted_full);
    CHECK_INT(st.evicted_ttl, m->evicted_ttl);
    CHECK_INT(st.dropped_too_large, m->dropped);
    CHECK_INT(snaptab_read_header(t, &applied, pos, MODEL_STREAMS), 0);
    CHECK_INT(applied, m->applied);
    for (int s = 0; s < MODEL_STREAMS; s++)
        CHECK(pos[s].ms == m->pos[s].ms && pos[s].seq == m->pos[s].seq);
}

static void
test_differential(void)
{
    static struct model m;
    static unsigned char frame[4096];
    struct region r;
    struct snaptab t;
    uint64_t rng = 12345, ms = 1000, now = 0;
    uint32_t max_data;
    int before = test_failed_checks;

    memset(&m, 0, sizeof(m));
    if (table_new(&r, &t, MODEL_MAX_KEYS, MODEL_STREAMS) != 0) {
        CHECK(0);
        return;
    }
    max_data = snaptab_max_data(&t);
    for (uint64_t op = 0; op < 6000 && test_failed_checks == before; op++) {
        uint64_t x = rng_next(&rng), what = x % 100;

        now += 1 + (x >> 8) % 20;
        if (what < 85) {
            int k = (int)((x >> 16) % MODEL_KEYS);
            uint32_t sport = (uint32_t)((x >> 24) % 3), stream = (uint32_t)((x >> 28) % 3);
            uint32_t len =
                (x >> 32) % 4 == 0 ? (uint32_t)((x >> 34) % 3200) : (uint32_t)((x >> 34) % 300);
            uint64_t id = (x >> 50) % 8 == 0 ? ms - (x >> 53) % 40 : ++ms;
            struct tkey tk;
            struct streamid sid = {id, 0};

            for (uint32_t i = 0; i < len; i++)
                frame[i] = (unsigned char)rng_next(&rng);
            model_key(&tk, k, sport);
            CHECK_INT(
                snaptab_apply(&t, (uint8_t)(k / 20), &tk.k, stream, &sid, op, now, frame, len),
                model_apply(&m, k, sport, stream, id, op, now, frame, len, max_data));
        } else if (what < 90) {
            uint64_t ttl0 = 200 + (x >> 8) % 2000, ttl1 = 100 + (x >> 24) % 1000;
            uint32_t n = 0;
            for (int k = 0; k < MODEL_KEYS; k++) {
                struct model_entry *e = &m.e[k];
                if (e->live && now - e->updated >= (k < 20 ? ttl0 : ttl1)) {
                    e->live = 0;
                    n++;
                }
            }
            m.evicted_ttl += n;
            CHECK_INT(snaptab_expire(&t, now, ttl0, ttl1, UINT32_MAX), n);
        } else if (what < 92) {
            uint32_t s = (uint32_t)((x >> 8) % MODEL_STREAMS);
            for (int k = 0; k < MODEL_KEYS; k++) {
                if (m.e[k].stream == s)
                    m.e[k].live = 0;
            }
            m.pos[s].ms = m.pos[s].seq = 0;
            snaptab_drop_stream(&t, s);
        } else if (what < 95) {
            struct streamid sid = {++ms, 0};
            uint32_t s = (uint32_t)((x >> 8) % MODEL_STREAMS);
            m.applied = op + 1;
            m.pos[s] = sid;
            CHECK_INT(snaptab_apply(&t, 0, NULL, s, &sid, op, now, NULL, 0), 0);
        } else {
            /* The writer restarts: the rebuilt index, lists and free lists
             * must carry on exactly as the old ones would have. */
            uint32_t repaired = 1;
            snaptab_detach(&t);
            CHECK_INT(snaptab_attach_writer(&t, r.mem, MODEL_MAX_KEYS, MODEL_STREAMS, &repaired),
                      0);
            CHECK_INT(repaired, 0);
        }
        model_compare(&m, &t);
    }
    printf("#   model: %llu evicted full, %llu by ttl, %llu too large\n",
           (unsigned long long)m.evicted_full, (unsigned long long)m.evicted_ttl,
           (unsigned long long)m.dropped);
    CHECK(m.evicted_full > 100 && m.evicted_ttl > 50 && m.dropped > 10);
    table_free(&r, &t);
}

/* ---- across processes ---------------------------------------------------------- */

#define CONC_KEYS    24
#define CONC_MAXKEYS 16
#define CONC_STREAMS 4
#define CONC_READERS 3

/* Keys in use: CONC_KEYS (more than the table holds: evictions), or 1 (one
 * hot entry, switched under the readers all the time).  Set before the
 * processes fork. */
static int conc_nkeys = CONC_KEYS;

/* Frame n: key k = conc_key(n) (none if -1), stream n % CONC_STREAMS, id
 * (n + 1)-(7n + 3), sport "s<n % 7>"; its bytes are n, k, its length, a
 * filler from n and k, and FNV-1a of all of them.  A copy mixed from two
 * values fails one of the checks. */
static int
conc_key(uint64_t n)
{
    uint64_t x = n * 0x9e3779b97f4a7c15ULL;

    if (n % 5 == 4)
        return -1;
    return (int)((x >> 40) % (uint64_t)conc_nkeys);
}

static uint32_t
conc_len(uint64_t n)
{
    /* Short values on the hot key: more switches per second under the
     * readers. */
    return 24 + (uint32_t)((n * 2654435761u) % (conc_nkeys == 1 ? 100 : 1500));
}

static void
conc_frame(unsigned char *p, uint64_t n, int k, uint32_t len)
{
    uint32_t h;

    memcpy(p, &n, 8);
    memcpy(p + 8, &k, 4);
    memcpy(p + 12, &len, 4);
    for (uint32_t i = 16; i < len - 4; i++)
        p[i] = (unsigned char)(n * 31 + (uint64_t)k * 7 + i);
    h = test_fnv1a(p, len - 4);
    memcpy(p + len - 4, &h, 4);
}

static void
conc_tkey(struct tkey *tk, int k, uint64_t n)
{
    char ev[16], sp[16], out[16];

    snprintf(ev, sizeof(ev), "event-%d", k);
    snprintf(out, sizeof(out), "outcome-%d", k * 13);
    snprintf(sp, sizeof(sp), "s%u", (unsigned)(n % 7));
    tkey_set(tk, sp, ev, "market", k % 3 == 0 ? "book-a" : "bk", out);
}

/* Apply frame n as the ingest would. */
static void
conc_apply(struct snaptab *t, uint64_t n)
{
    static unsigned char frame[2048];
    int k = conc_key(n);
    uint32_t len = conc_len(n);
    struct streamid id = {n + 1, 7 * n + 3};
    struct tkey tk;

    conc_frame(frame, n, k, len);
    conc_tkey(&tk, k < 0 ? 0 : k, n);
    snaptab_apply(t, (uint8_t)(k < 0 ? 0 : k & 1), k < 0 ? NULL : &tk.k,
                  (uint32_t)(n % CONC_STREAMS), &id, n, n, frame, len);
    if (n % 64 == 63)
        snaptab_expire(t, n, 150, 80, 8);
}

/* 0 if the copy is exactly frame n's value, n returned in *pn. */
static int
conc_check_copy(const struct snaptab_copy *cp, uint64_t *pn)
{
    uint64_t n;
    int k;
    uint32_t len, h;
    struct tkey tk;
    const unsigned char *p = (const unsigned char *)cp->frame;

    if (cp->frame_len < 20)
        return 1;
    memcpy(&n, p, 8);
    memcpy(&k, p + 8, 4);
    memcpy(&len, p + 12, 4);
    memcpy(&h, p + cp->frame_len - 4, 4);
    if (len != cp->frame_len || h != test_fnv1a(p, len - 4) || k != conc_key(n) ||
        len != conc_len(n))
        return 2;
    for (uint32_t i = 16; i < len - 4; i++) {
        if (p[i] != (unsigned char)(n * 31 + (uint64_t)k * 7 + i))
            return 3;
    }
    conc_tkey(&tk, k, n);
    if (!copy_has_key(cp, (uint8_t)(k & 1), &tk.k) ||
        !str_is(cp->s[SNAPTAB_SPORT], cp->len[SNAPTAB_SPORT], tk.str[SNAPTAB_SPORT]))
        return 4;
    if (cp->stream != n % CONC_STREAMS || cp->id.ms != n + 1 || cp->id.seq != 7 * n + 3 ||
        cp->ring_seq != n || cp->updated_ms != n)
        return 5;
    *pn = n;
    return 0;
}

/* 0 if applied and pos are one state of the writer's: pos[s] is the id of
 * the last frame of stream s before applied (every frame is on the stream
 * n % CONC_STREAMS, keyed or not). */
static int
conc_check_header(uint64_t applied, const struct streamid *pos)
{
    for (uint32_t s = 0; s < CONC_STREAMS; s++) {
        uint64_t last, n;
        if (applied == 0 || applied - 1 < s) {
            if (pos[s].ms != 0 || pos[s].seq != 0)
                return 1;
            continue;
        }
        last = applied - 1;
        n = last - (last - s) % CONC_STREAMS;
        if (pos[s].ms != n + 1 || pos[s].seq != 7 * n + 3)
            return 2;
    }
    return 0;
}

/* Written by each child into the shared control page; read by the parent
 * after waitpid (which orders the accesses). */
struct conc_result {
    uint64_t reads, copies, headers, bad, backwards, busy, too_small;
};

struct conc_ctl {
    _Atomic int done;
    _Atomic uint64_t frames;
    struct conc_result res[CONC_READERS];
};

static void
conc_reader(struct snaptab *t, struct conc_ctl *ctl, struct conc_result *res)
{
    static char buf[SNAPTAB_MAX_DATA];
    uint64_t last[CONC_KEYS], last_applied = 0;

    for (int k = 0; k < CONC_KEYS; k++)
        last[k] = 0;
    /* acquire: pairs with the writer's release of done. */
    while (!atomic_load_explicit(&ctl->done, memory_order_acquire)) {
        struct streamid pos[CONC_STREAMS];
        uint64_t applied = 0;
        uint32_t end = snaptab_scan_end(t);

        if (snaptab_read_header(t, &applied, pos, CONC_STREAMS) != 0) {
            res->busy++;
        } else {
            res->headers++;
            if (conc_check_header(applied, pos) != 0)
                res->bad++;
            if (applied < last_applied)
                res->backwards++;
            last_applied = applied;
        }
        if (end > CONC_MAXKEYS)
            res->bad++;
        for (uint32_t i = 0; i < end; i++) {
            struct snaptab_copy cp;
            uint64_t n = 0;
            int rc = snaptab_read(t, i, &cp, buf, sizeof(buf), NULL), k;

            res->reads++;
            if (rc == -2) {
                res->busy++;
                continue;
            }
            if (rc == -1) {
                res->too_small++;
                continue;
            }
            if (rc != 1)
                continue;
            res->copies++;
            if (conc_check_copy(&cp, &n) != 0) {
                res->bad++;
                continue;
            }
            /* A key's value never goes back, across entries too. */
            k = conc_key(n);
            if (n + 1 < last[k])
                res->backwards++;
            last[k] = n + 1;
        }
    }
}

static int
conc_run(void *arg)
{
    struct region r;
    struct snaptab t;
    struct conc_ctl *ctl;
    pid_t pid[CONC_READERS + 1];
    int failed = 0;
    uint64_t bad = 0, run_ms = 500;

    conc_nkeys = (int)(uintptr_t)arg;
    ctl = mmap(NULL, sizeof(*ctl), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (ctl == MAP_FAILED || region_new(&r, CONC_MAXKEYS, CONC_STREAMS) != 0)
        return 20;
    if (snaptab_init(&t, r.mem, CONC_MAXKEYS, CONC_STREAMS) != 0)
        return 21;
    fflush(stdout);
    for (int c = 0; c <= CONC_READERS; c++) {
        pid[c] = fork();
        if (pid[c] < 0)
            return 22;
        if (pid[c] > 0)
            continue;
        /* Not inherited from the case's child: each ends by itself. */
        alarm(20);
        if (c < CONC_READERS) {
            conc_reader(&t, ctl, &ctl->res[c]);
            _exit(0);
        } else {
            /* The writer: attaches as the ingest does, applies for a while. */
            uint64_t start = time_mono_ms(), n = 0;
            if (snaptab_attach_writer(&t, r.mem, CONC_MAXKEYS, CONC_STREAMS, NULL) != 0)
                _exit(1);
            while (time_mono_ms() - start < run_ms) {
                for (int i = 0; i < 32; i++, n++)
                    conc_apply(&t, n);
            }
            atomic_store_explicit(&ctl->frames, n, memory_order_relaxed);
            /* release: the readers' last scan sees the final table. */
            atomic_store_explicit(&ctl->done, 1, memory_order_release);
            snaptab_detach(&t);
            _exit(0);
        }
    }
    for (int c = 0; c <= CONC_READERS; c++) {
        int status = 0;
        while (waitpid(pid[c], &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
    }
    printf("#   writer: %llu frames\n", (unsigned long long)atomic_load(&ctl->frames));
    for (int c = 0; c < CONC_READERS; c++) {
        struct conc_result *res = &ctl->res[c];
        printf("#   reader %d: %llu reads, %llu copies, %llu headers, %llu bad, %llu backwards, "
               "%llu busy\n",
               c, (unsigned long long)res->reads, (unsigned long long)res->copies,
               (unsigned long long)res->headers, (unsigned long long)res->bad,
               (unsigned long long)res->backwards, (unsigned long long)res->busy);
        bad += res->bad + res->backwards + res->too_small + res->busy;
        if (res->copies < 100 || res->headers < 10)
            failed++;
    }
    if (atomic_load(&ctl->frames) < 1000)
        failed++;
    region_free(&r);
    munmap(ctl, sizeof(*ctl));
    return failed ? 1 : bad ? 2 : 0;
}

static void
test_concurrent(void)
{
    int rc = test_run_in_child(conc_run, (void *)(uintptr_t)CONC_KEYS, 30);

    if (rc != 0)
        printf("#   concurrent run ended with %d (1: a child failed or did too little, 2: a "
               "reader saw a torn or stale value, 142: timeout)\n",
               rc);
    CHECK_INT(rc, 0);
}

static void
test_concurrent_hot_key(void)
{
    /* One key: every frame switches the entry the readers are reading, so
     * a switch not guarded by the entry's version shows within the run. */
    int rc = test_run_in_child(conc_run, (void *)(uintptr_t)1, 30);

    if (rc != 0)
        printf("#   hot-key run ended with %d\n", rc);
    CHECK_INT(rc, 0);
}

/* The writer is killed at random points while readers keep reading; each
 * successor repairs the table, checks it, and goes on from applied. */
static int
kill_run(void *arg)
{
    struct region r;
    struct snaptab t, rd;
    static char buf[SNAPTAB_MAX_DATA];
    uint64_t rng = 777, total_repaired = 0;

    (void)arg;
    if (region_new(&r, CONC_MAXKEYS, CONC_STREAMS) != 0 ||
        snaptab_init(&rd, r.mem, CONC_MAXKEYS, CONC_STREAMS) != 0)
        return 30;
    for (int round = 0; round < 25; round++) {
        struct timespec ts = {0, (long)(1 + rng_next(&rng) % 8) * 1000000L};
        struct streamid pos[CONC_STREAMS];
        uint64_t applied = 0, live = 0;
        uint32_t repaired = 0;
        struct snaptab_stats st;
        pid_t pid;
        int status;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
            return 31;
        if (pid == 0) {
            uint64_t n;
            if (snaptab_attach_writer(&t, r.mem, CONC_MAXKEYS, CONC_STREAMS, NULL) != 0 ||
                snaptab_read_header(&t, &n, pos, 0) != 0)
                _exit(1);
            for (;; n++)
                conc_apply(&t, n);
        }
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
        }
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        if (!WIFSIGNALED(status))
            return 32;
        if (read_everything(&rd) != 0)
            return 33;
        if (snaptab_attach_writer(&t, r.mem, CONC_MAXKEYS, CONC_STREAMS, &repaired) != 0)
            return 34;
        total_repaired += repaired;
        if (snaptab_read_header(&rd, &applied, pos, CONC_STREAMS) != 0 ||
            conc_check_header(applied, pos) != 0)
            return 35;
        for (uint32_t i = 0; i < snaptab_scan_end(&rd); i++) {
            struct snaptab_copy cp;
            uint64_t n;
            int rc = snaptab_read(&rd, i, &cp, buf, sizeof(buf), NULL);
            if (rc == 0)
                continue;
            /* The entry of frame `applied` may be in: it is written before
             * the header. */
            if (rc != 1 || conc_check_copy(&cp, &n) != 0 || n > applied)
                return 36;
            live++;
        }
        st = stats_of(&t);
        if (st.keys != live)
            return 37;
        snaptab_detach(&t);
    }
    printf("#   25 writers killed, %llu repairs\n", (unsigned long long)total_repaired);
    region_free(&r);
    return 0;
}

static void
test_killed_writer(void)
{
    int rc = test_run_in_child(kill_run, NULL, 30);

    if (rc != 0)
        printf("#   killed-writer run ended with %d\n", rc);
    CHECK_INT(rc, 0);
}

static void
test_init_hash(void)
{
    /* As the supervisor does before forking: every child hashes alike. */
    CHECK_INT(hash_init(), 0);
}

TEST_MAIN(TEST(test_init_hash), TEST(test_geometry), TEST(test_insert_replace_lookup),
          TEST(test_older_id_ignored), TEST(test_key_identity), TEST(test_max_keys_eviction),
          TEST(test_chunk_eviction), TEST(test_too_large), TEST(test_ttl), TEST(test_drop_stream),
          TEST(test_header), TEST(test_crash_repair), TEST(test_garbage), TEST(test_differential),
          TEST(test_concurrent), TEST(test_concurrent_hot_key), TEST(test_killed_writer))
