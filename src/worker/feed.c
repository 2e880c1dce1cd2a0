#include "feed.h"
#include "encode.h"
#include "outbound.h"
#include "replay.h"
#include "wsp.h"
#include "../common/frame.h"
#include "../common/log.h"
#include "../common/snaptab.h"
#include "../common/strmap.h"
#include "../common/timeutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Work per feed_service call, in units of a catch-up frame taken from the
 * worker's notes (a snapshot item encoded or a frame read from the ring
 * counts several): a few milliseconds, so a 10,000-key snapshot or a
 * thousand sessions catching up never hold the loop (and the other
 * clients' updates) for long. */
#define FEED_WORK_PER_TURN    16000
/* Snapshots kept for sharing with the next subscribers of the same filter
 * (a reconnect storm: many subscribes answered in one turn of the loop). */
#define FEED_RECENT           8
#define FEED_SHARE_MS         500
/* Item texts a worker keeps for the next snapshots, at most. */
#define FEED_ITEM_CACHE_BYTES (64u << 20)
/* Attempts at a snapshot whose patch frames were overwritten meanwhile. */
#define FEED_SNAPSHOT_TRIES   4

struct feed_item {
    uint64_t seq;
    uint32_t stream;
    uint32_t tab; /* the table entry it was copied from (the item cache), or UINT32_MAX */
    uint8_t type;
    int dead; /* removed by a RESET while patching */
    struct streamid id;
    uint32_t len;
    char *frame;
};

struct feed_snap {
    uint32_t refs;
    char *filter_key;   /* the filter's canonical text and the view: who may share it */
    int basic, no_opps; /* the view (auth.h): fields, opportunities */
    uint64_t at;        /* reflects every frame before this ring sequence */
    uint64_t made_ms;   /* monotonic */
    char epoch[SHM_EPOCH_MAX];
    char *positions; /* JSON text, the same in every part */
    size_t positions_len;
    struct feed_item *items;
    uint32_t nitems;
    uint32_t nparts;
    struct outq_msg **parts;      /* encoded on first need, shared */
    char *names[SHM_MAX_STREAMS]; /* stream names by row, as of the snapshot */
};

/*
 * What the worker knows of each of its last FEED_RECENT_FRAMES frames: enough
 * for a session catching up to take a frame without reading the ring,
 * unpacking and encoding it again (in a reconnect storm a thousand sessions
 * catch up over the same frames): its kind, stream, id, filter keys, and the
 * encoded update once anyone needed it.
 */
#define FEED_RECENT_FRAMES 16384
#define FEED_RECENT_KEYS   192 /* bytes of filter keys a slot holds; longer: not kept */
struct feed_recent {
    uint64_t seq; /* UINT64_MAX: empty */
    uint32_t kind, stream;
    struct streamid id;
    int keyed; /* keys[] hold the frame's filter keys (else: read the ring) */
    struct frame_key_ref keys[FRAME_NKEYS];
    char keybuf[FEED_RECENT_KEYS];
    struct outq_msg *msg[2]; /* the encoded update (full, basic), or NULL until needed */
    int opportunity;
};

/* One table entry's value as a snapshot item's text (feed_encode_part). */
struct feed_item_text {
    uint64_t seq;
    struct streamid id;
    char *text;
    uint32_t len;
};

struct feed_worker {
    struct feed_recent *recent_frames; /* FEED_RECENT_FRAMES, by sequence */
    struct feed_item_text *itext;      /* by table entry */
    uint32_t nitext;
    uint64_t itext_bytes;
    struct snaptab table;
    int have_table;
    struct ring_reader *reader;
    struct streamid pos[SHM_MAX_STREAMS]; /* as of reader->next */
    lws_dll2_owner_t feeding;             /* sessions not live */
    char *buf;                            /* scratch: table entries, ring frames */
    size_t bufsize;
    msgpack_zone zone;
    struct feed_snap *recent[FEED_RECENT];
    unsigned recent_next;
    struct log_ratelimit rl;
};

static struct feed_worker feed_worker_state;

#define FEED_STAT_ADD(vh, f, n) WSP_STAT_ADD(vh, f, n)

/* The table's applied sequence (and positions, if pos): a header the
 * writer left mid-change (it died there) reads as the last good one the
 * next ingest completes; until then the worker's own position stands. */
static uint64_t
feed_table_applied(struct feed_worker *fw, struct streamid *pos, uint32_t n, uint64_t fallback)
{
    uint64_t applied;

    if (snaptab_read_header(&fw->table, &applied, pos, n) != 0)
        return fallback;
    return applied;
}

/* ---- the streams a filter reads ---------------------------------------- */

struct feed_streams {
    uint32_t n;
    int rows[CONF_MAX_SPORTS + 1]; /* -1: no row yet (nothing read from it) */
    char names[CONF_MAX_SPORTS + 1][CONF_STREAM_MAX];
};

static int
feed_row_of(const struct wsp_vhost *vh, const char *name)
{
    char buf[SHM_STREAM_NAME];

    for (uint32_t r = 0; r < SHM_MAX_STREAMS; r++) {
        if (shm_stream_name(vh->shm, r, buf, sizeof(buf)) == 0 && strcmp(buf, name) == 0)
            return (int)r;
    }
    return -1;
}

static int
feed_list_has(const struct sub_list *l, const char *v)
{
    size_t n = strlen(v);

    for (uint32_t i = 0; i < l->n; i++) {
        if (l->lens[i] == n && memcmp(l->values[i], v, n) == 0)
            return 1;
    }
    return 0;
}

/* The odds streams of the filter's sports (all, if it names none) and the
 * opportunities stream. */
static void
feed_filter_streams(const struct wsp_vhost *vh, const struct sub_filter *f,
                    struct feed_streams *out)
{
    const struct conf *c = vh->conf;
    const struct sub_list *sports = &f->dims[FRAME_KEY_SPORT];

    out->n = 0;
    for (int i = 0; i < c->nsports; i++) {
        if (sports->n > 0 && !feed_list_has(sports, c->sports[i]))
            continue;
        conf_sport_stream(c, i, out->names[out->n], sizeof(out->names[out->n]));
        out->rows[out->n] = feed_row_of(vh, out->names[out->n]);
        out->n++;
    }
    if (c->opportunities_stream[0] != '\0') {
        snprintf(out->names[out->n], sizeof(out->names[out->n]), "%s", c->opportunities_stream);
        out->rows[out->n] = feed_row_of(vh, out->names[out->n]);
        out->n++;
    }
}

static int
feed_reads_row(const struct feed_streams *st, uint32_t row)
{
    for (uint32_t i = 0; i < st->n; i++) {
        if (st->rows[i] >= 0 && (uint32_t)st->rows[i] == row)
            return 1;
    }
    return 0;
}

/* ---- snapshots ------------------------------------------------------------ */

static void
feed_snap_unref(struct feed_snap *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    for (uint32_t i = 0; i < s->nitems; i++)
        free(s->items[i].frame);
    for (uint32_t i = 0; i < s->nparts; i++)
        outq_msg_unref(s->parts[i]);
    for (uint32_t i = 0; i < SHM_MAX_STREAMS; i++)
        free(s->names[i]);
    free(s->items);
    free(s->parts);
    free(s->positions);
    free(s->filter_key);
    free(s);
}

static int
feed_grow_buf(struct feed_worker *fw, size_t need)
{
    char *p;

    if (need <= fw->bufsize)
        return 0;
    if ((p = realloc(fw->buf, need)) == NULL)
        return -1;
    fw->buf = p;
    fw->bufsize = need;
    return 0;
}

static int
feed_item_set(struct feed_item *it, uint64_t seq, uint32_t stream, uint32_t tab, uint8_t type,
              const struct streamid *id, const char *frame, uint32_t len)
{
    char *copy = malloc(len ? len : 1);

    if (copy == NULL)
        return -1;
    if (len > 0)
        memcpy(copy, frame, len);
    free(it->frame);
    it->frame = copy;
    it->len = len;
    it->seq = seq;
    it->stream = stream;
    it->tab = tab;
    it->type = type;
    it->id = *id;
    it->dead = 0;
    return 0;
}

struct feed_build {
    struct feed_item *items;
    uint32_t n, cap;
    struct strmap index; /* key text -> item index + 1 */
};

static void
feed_build_free(struct feed_build *b)
{
    for (uint32_t i = 0; i < b->n; i++)
        free(b->items[i].frame);
    free(b->items);
    strmap_free(&b->index);
    memset(b, 0, sizeof(*b));
}

/* Item for key (a new one if absent); NULL on OOM. */
static struct feed_item *
feed_build_slot(struct feed_build *b, const char *key, size_t klen, int *is_new)
{
    uintptr_t at = (uintptr_t)strmap_get(&b->index, key, klen);

    *is_new = 0;
    if (at != 0)
        return &b->items[at - 1];
    if (b->n == b->cap) {
        uint32_t cap = b->cap ? 2 * b->cap : 256;
        struct feed_item *p = realloc(b->items, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        b->items = p;
        b->cap = cap;
    }
    if (strmap_put(&b->index, key, klen, (void *)(uintptr_t)(b->n + 1)) != 0)
        return NULL;
    memset(&b->items[b->n], 0, sizeof(b->items[b->n]));
    *is_new = 1;
    return &b->items[b->n++];
}

static int
feed_item_order(const void *a, const void *b)
{
    const struct feed_item *x = a, *y = b;
    int c;

    /* Ring order; values loaded from history share one sequence, so then
     * per stream, by id. */
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    c = streamid_cmp(&x->id, &y->id);
    return c;
}

/* Copy every live, young-enough entry of the table that matches f.  Values
 * loaded from history whose HISTORY frame is not in the ring yet (sequence
 * at or past the head) are left out: the positions cannot show them yet. */
static int
feed_scan_table(struct wsp_vhost *vh, const struct sub_filter *f, const uint8_t *rows, int no_opps,
                struct feed_build *b)
{
    struct feed_worker *fw = vh->feed;
    uint64_t now = time_now_ms();
    uint64_t odds_ttl = (uint64_t)vh->conf->snapshot_ttl * 1000;
    uint64_t opp_ttl = (uint64_t)vh->conf->opportunity_ttl * 1000;
    uint32_t end = snaptab_scan_end(&fw->table);

    for (uint32_t i = 0; i < end; i++) {
        struct snaptab_copy c;
        struct frame_key_ref keys[FRAME_NKEYS];
        size_t needed = 0, klen;
        char key[1024];
        struct feed_item *it;
        uint32_t stream;
        uint8_t type;
        int rc, is_new;

        /* Entries of streams the filter does not read are not copied (an
         * entry that changes meanwhile is the patch's business). */
        if (!snaptab_peek(&fw->table, i, &stream, &type) || stream >= SHM_MAX_STREAMS ||
            !rows[stream])
            continue;
        rc = snaptab_read(&fw->table, i, &c, fw->buf, fw->bufsize, &needed);
        if (rc < 0) {
            if (feed_grow_buf(fw, needed) != 0)
                return -1;
            rc = snaptab_read(&fw->table, i, &c, fw->buf, fw->bufsize, &needed);
        }
        if (rc != 1 || c.ring_seq >= ring_head(shm_ring(vh->shm)))
            continue;
        if (now > c.updated_ms &&
            now - c.updated_ms > (c.type == FRAME_OPPORTUNITY ? opp_ttl : odds_ttl))
            continue;
        if (no_opps && c.type == FRAME_OPPORTUNITY)
            continue;
        for (int d = 0; d < FRAME_NKEYS; d++) {
            keys[d].ptr = c.s[d];
            keys[d].len = c.len[d];
        }
        if (!sub_filter_matches(f, keys))
            continue;
        klen = frame_key_text(c.type, &c.s[SNAPTAB_EVENT], &c.len[SNAPTAB_EVENT], key, sizeof(key));
        if (klen == 0)
            continue;
        if ((it = feed_build_slot(b, key, klen, &is_new)) == NULL)
            return -1;
        if (!is_new && it->seq >= c.ring_seq)
            continue;
        if (feed_item_set(it, c.ring_seq, c.stream, i, c.type, &c.id, c.frame, c.frame_len) != 0)
            return -1;
    }
    return 0;
}

/*
 * Bring the copy to `to` with the ring's frames from `lo`: what the ingest
 * applied to the table while it was read, and the positions the worker has
 * not reached yet (frames from pos_from on).  -1 if a frame was overwritten
 * before it could be read (the caller tries again), or on OOM.
 */
static int
feed_patch(struct wsp_vhost *vh, const struct sub_filter *f, int no_opps, struct feed_build *b,
           uint64_t lo, uint64_t to, uint64_t pos_from, struct streamid *pos)
{
    struct feed_worker *fw = vh->feed;
    struct ring *ring = shm_ring(vh->shm);
    struct ring_reader rd = {lo, 0};

    if (feed_grow_buf(fw, vh->conf->max_entry_size) != 0)
        return -1;
    while (rd.next < to) {
        struct ring_frame_meta meta;
        struct frame_view view;
        uint32_t len;
        uint64_t seq;
        char key[1024], err[64];
        size_t klen;
        struct feed_item *it;
        struct streamid id;
        int is_new;

        if (ring_read(ring, &rd, fw->buf, fw->bufsize, &len, &meta) == 0 || rd.missed > 0)
            return -1;
        seq = rd.next - 1;
        id = (struct streamid){meta.id_ms, meta.id_seq};
        if (meta.stream >= SHM_MAX_STREAMS)
            continue;
        if (meta.kind == RING_KIND_RESET) {
            for (uint32_t i = 0; i < b->n; i++) {
                if (b->items[i].stream == meta.stream && b->items[i].seq < seq)
                    b->items[i].dead = 1;
            }
            if (seq >= pos_from)
                pos[meta.stream] = (struct streamid){0, 0};
            continue;
        }
        if (seq >= pos_from)
            pos[meta.stream] = id;
        if (meta.kind != RING_KIND_ENTRY)
            continue;
        msgpack_zone_clear(&fw->zone);
        if (frame_unpack(fw->buf, len, &fw->zone, &view, err, sizeof(err)) != 0 ||
            !sub_filter_matches(f, view.keys) || (no_opps && view.type == FRAME_OPPORTUNITY) ||
            frame_board_key(&view, key, sizeof(key), &klen) != 0)
            continue;
        if ((it = feed_build_slot(b, key, klen, &is_new)) == NULL)
            return -1;
        if (!is_new && it->seq >= seq && !it->dead)
            continue;
        if (feed_item_set(it, seq, meta.stream, UINT32_MAX, (uint8_t)view.type, &id, fw->buf,
                          len) != 0)
            return -1;
    }
    return 0;
}

static char *
feed_positions_text(const struct feed_streams *st, const struct streamid *pos, size_t *len)
{
    cJSON *o = cJSON_CreateObject();
    char *text;

    if (o == NULL)
        return NULL;
    for (uint32_t i = 0; i < st->n; i++) {
        char id[STREAMID_STR_MAX];
        struct streamid zero = {0, 0};
        streamid_format(st->rows[i] >= 0 ? &pos[st->rows[i]] : &zero, id, sizeof(id));
        if (cJSON_AddStringToObject(o, st->names[i], id) == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

static char *
feed_filter_key(const struct sub_filter *f)
{
    cJSON *j = sub_filter_to_json(f);
    char *text = j != NULL ? cJSON_PrintUnformatted(j) : NULL;

    cJSON_Delete(j);
    return text;
}

/* A snapshot of filter f as of at least the worker's position.  NULL on OOM
 * (logged). */
static struct feed_snap *
feed_snapshot_take(struct wsp_vhost *vh, const struct sub_filter *f, char *filter_key, int basic,
                   int no_opps)
{
    struct feed_worker *fw = vh->feed;
    struct feed_streams st;
    struct feed_build b;
    struct feed_snap *s = calloc(1, sizeof(*s));
    uint8_t rows[SHM_MAX_STREAMS];
    int ok = 0;

    if (s == NULL)
        goto fail;
    s->refs = 1;
    s->filter_key = filter_key;
    s->basic = basic;
    s->no_opps = no_opps;
    filter_key = NULL;
    shm_epoch_get(vh->shm, s->epoch, sizeof(s->epoch));
    feed_filter_streams(vh, f, &st);
    memset(rows, 0, sizeof(rows));
    for (uint32_t i = 0; i < st.n; i++) {
        if (st.rows[i] >= 0)
            rows[st.rows[i]] = 1;
    }
    for (int attempt = 0; attempt < FEED_SNAPSHOT_TRIES && !ok; attempt++) {
        struct streamid pos[SHM_MAX_STREAMS];
        uint64_t r = fw->reader->next, a1, a2, to;

        memset(&b, 0, sizeof(b));
        memcpy(pos, fw->pos, sizeof(pos));
        a1 = fw->have_table ? feed_table_applied(fw, NULL, 0, r) : r;
        if (fw->have_table && feed_scan_table(vh, f, rows, s->no_opps, &b) != 0) {
            feed_build_free(&b);
            goto fail;
        }
        a2 = fw->have_table ? feed_table_applied(fw, NULL, 0, r) : r;
        to = a2 > r ? a2 : r;
        for (uint32_t i = 0; i < b.n; i++) {
            if (b.items[i].seq >= to)
                to = b.items[i].seq + 1;
        }
        if (feed_patch(vh, f, s->no_opps, &b, a1 < r ? a1 : r, to, r, pos) != 0) {
            feed_build_free(&b);
            continue;
        }
        s->at = to;
        s->positions = feed_positions_text(&st, pos, &s->positions_len);
        if (s->positions == NULL) {
            feed_build_free(&b);
            goto fail;
        }
        ok = 1;
    }
    if (!ok)
        goto fail;
    /* Dead items out, the rest in ring order (per stream, id order). */
    s->items = b.items;
    for (uint32_t i = 0; i < b.n; i++) {
        if (b.items[i].dead) {
            free(b.items[i].frame);
            continue;
        }
        s->items[s->nitems++] = b.items[i];
    }
    b.items = NULL;
    b.n = 0;
    feed_build_free(&b);
    if (s->nitems > 0)
        qsort(s->items, s->nitems, sizeof(*s->items), feed_item_order);
    s->nparts =
        s->nitems == 0 ? 1 : (s->nitems + vh->conf->snapshot_chunk - 1) / vh->conf->snapshot_chunk;
    if ((s->parts = calloc(s->nparts, sizeof(*s->parts))) == NULL)
        goto fail;
    for (uint32_t i = 0; i < s->nitems; i++) {
        uint32_t row = s->items[i].stream;
        char name[SHM_STREAM_NAME];
        if (s->names[row] == NULL && shm_stream_name(vh->shm, row, name, sizeof(name)) == 0 &&
            (s->names[row] = strdup(name)) == NULL)
            goto fail;
    }
    s->made_ms = time_mono_ms();
    return s;
fail:
    free(filter_key);
    if (s != NULL) {
        s->refs = 1;
        feed_snap_unref(s);
    }
    if (log_ratelimit_allow(&fw->rl))
        LOG_WARN("cannot take a snapshot: %s", ok ? "out of memory" : "out of memory or lapped");
    return NULL;
}

/* Where item's text is cached: one slot per table entry and view. */
static uint32_t
feed_item_slot(const struct feed_item *it, int basic)
{
    return it->tab == UINT32_MAX || it->tab >= UINT32_MAX / 2 ? UINT32_MAX
                                                              : 2 * it->tab + (basic ? 1 : 0);
}

/* The cached text of table entry tab's value (item), or NULL. */
static struct feed_item_text *
feed_item_cached(struct feed_worker *fw, const struct feed_item *it, int basic)
{
    struct feed_item_text *t;
    uint32_t slot = feed_item_slot(it, basic);

    if (slot == UINT32_MAX || slot >= fw->nitext)
        return NULL;
    t = &fw->itext[slot];
    return t->text != NULL && t->seq == it->seq && streamid_cmp(&t->id, &it->id) == 0 ? t : NULL;
}

static void
feed_item_cache_clear(struct feed_worker *fw)
{
    for (uint32_t i = 0; i < fw->nitext; i++)
        free(fw->itext[i].text);
    free(fw->itext);
    fw->itext = NULL;
    fw->nitext = 0;
    fw->itext_bytes = 0;
}

/* Keep text (encode_item's, for it) for the next snapshots; 0 if the cache
 * took it (it owns it now), -1 if not (the caller frees it). */
static int
feed_item_cache_put(struct feed_worker *fw, const struct feed_item *it, int basic, char *text,
                    size_t len)
{
    struct feed_item_text *t;
    uint32_t slot = feed_item_slot(it, basic);

    if (slot == UINT32_MAX)
        return -1;
    if (fw->itext_bytes + len > FEED_ITEM_CACHE_BYTES)
        feed_item_cache_clear(fw); /* crude, but bounded: a full table rarely fits */
    if (slot >= fw->nitext) {
        uint32_t n = slot + 1 > 2 * fw->nitext ? slot + 1 : 2 * fw->nitext;
        struct feed_item_text *p = realloc(fw->itext, n * sizeof(*p));
        if (p == NULL)
            return -1;
        memset(p + fw->nitext, 0, (n - fw->nitext) * sizeof(*p));
        fw->itext = p;
        fw->nitext = n;
    }
    t = &fw->itext[slot];
    fw->itext_bytes -= t->len;
    free(t->text);
    t->text = text;
    t->len = (uint32_t)len;
    t->seq = it->seq;
    t->id = it->id;
    fw->itext_bytes += len;
    return 0;
}

/* The text of item it of s (encode_item), malloc'd; NULL if it cannot be
 * encoded (counted). */
static char *
feed_item_encode(struct wsp_vhost *vh, const struct feed_snap *s, const struct feed_item *it,
                 size_t *len)
{
    struct feed_worker *fw = vh->feed;
    struct frame_view view;
    struct encode_origin origin;
    char id[STREAMID_STR_MAX], err[128], *text;

    msgpack_zone_clear(&fw->zone);
    if (frame_unpack(it->frame, it->len, &fw->zone, &view, err, sizeof(err)) != 0)
        return NULL; /* the ingest checked it: cannot happen */
    streamid_format(&it->id, id, sizeof(id));
    origin.stream = s->names[it->stream] != NULL ? s->names[it->stream] : "";
    origin.id = id;
    origin.basic = s->basic;
    if ((text = encode_item(&view, &origin, len, err, sizeof(err))) == NULL)
        WSP_STAT_ADD(vh, invalid_frames, 1);
    return text;
}

/* Encode part k of s (with reason on a first part: that one is not
 * shared).  An item's text is made once per worker per value: the next
 * snapshots that hold the same value (a reconnect storm: many snapshots of
 * one table) take it from the cache.  Returns the number of items encoded,
 * -1 on failure. */
static int
feed_encode_part(struct wsp_vhost *vh, struct feed_snap *s, uint32_t k, const char *reason,
                 struct outq_msg **out)
{
    struct feed_worker *fw = vh->feed;
    uint32_t chunk = vh->conf->snapshot_chunk;
    uint32_t lo = k * chunk, hi = lo + chunk < s->nitems ? lo + chunk : s->nitems;
    uint32_t n = hi > lo ? hi - lo : 0, done = 0;
    char **texts = calloc(n ? n : 1, sizeof(*texts));
    size_t *lens = calloc(n ? n : 1, sizeof(*lens));
    char **owned = calloc(n ? n : 1, sizeof(*owned)); /* texts the cache did not take, by item */
    char *buf = NULL;
    size_t len = 0;
    int rc = -1;

    if (texts == NULL || lens == NULL || owned == NULL)
        goto out;
    /* Texts are taken from the cache only after every miss is in it, so
     * a clear (the budget) cannot free a text already collected: first the
     * misses, then the part. */
    for (uint32_t i = lo; i < hi; i++) {
        struct feed_item *it = &s->items[i];
        size_t tlen;
        char *text;

        if (feed_item_cached(fw, it, s->basic) != NULL ||
            (text = feed_item_encode(vh, s, it, &tlen)) == NULL)
            continue;
        if (feed_item_cache_put(fw, it, s->basic, text, tlen) != 0)
            owned[i - lo] = text;
    }
    for (uint32_t i = lo; i < hi; i++) {
        struct feed_item_text *t =
            owned[i - lo] == NULL ? feed_item_cached(fw, &s->items[i], s->basic) : NULL;
        size_t tlen;

        if (owned[i - lo] == NULL && t == NULL) {
            /* Its text went with a clear of the cache in the loop above. */
            if ((owned[i - lo] = feed_item_encode(vh, s, &s->items[i], &tlen)) == NULL)
                continue;
        }
        if (owned[i - lo] != NULL) {
            texts[done] = owned[i - lo];
            lens[done++] = strlen(owned[i - lo]);
        } else {
            texts[done] = t->text;
            lens[done++] = t->len;
        }
    }
    buf = encode_snapshot_part(s->epoch, s->positions, s->positions_len, texts, lens, done,
                               k + 1 == s->nparts, reason, time_now_ms(), OUTQ_HEADROOM, &len);
    if (buf != NULL && (*out = outq_msg_adopt(buf, len)) != NULL)
        rc = (int)(hi - lo);
out:
    for (uint32_t i = 0; owned != NULL && i < n; i++)
        free(owned[i]);
    free(owned);
    free(texts);
    free(lens);
    return rc;
}

/* ---- sessions ------------------------------------------------------------- */

static void
feed_count_refusal(struct wsp_vhost *vh, const char *why)
{
    if (strcmp(why, "epoch_changed") == 0)
        WSP_STAT_ADD(vh, resumes_epoch_changed, 1);
    else if (strcmp(why, "too_old") == 0)
        WSP_STAT_ADD(vh, resumes_too_old, 1);
    else
        WSP_STAT_ADD(vh, resumes_unknown_stream, 1);
}

static void
feed_enlist(struct wsp_vhost *vh, struct wsp_session *ss)
{
    if (lws_dll2_is_detached(&ss->feed.link))
        lws_dll2_add_tail(&ss->feed.link, &vh->feed->feeding);
}

static void
feed_delist(struct wsp_session *ss)
{
    if (!lws_dll2_is_detached(&ss->feed.link))
        lws_dll2_remove(&ss->feed.link);
}

static void
feed_clear_replay(struct wsp_session *ss)
{
    replay_cancel(ss->feed.replay);
    ss->feed.replay = NULL;
    cJSON_Delete(ss->feed.pending_ack);
    ss->feed.pending_ack = NULL;
    for (uint32_t i = ss->feed.next_replayed; i < ss->feed.nreplayed; i++)
        outq_msg_unref(ss->feed.replayed[i]);
    free(ss->feed.replayed);
    ss->feed.replayed = NULL;
    ss->feed.nreplayed = ss->feed.next_replayed = 0;
}

static void
feed_clear(struct wsp_session *ss)
{
    feed_snap_unref(ss->feed.snap);
    ss->feed.snap = NULL;
    free(ss->feed.floor);
    ss->feed.floor = NULL;
    ss->feed.reason = NULL;
    ss->feed.next_part = 0;
    feed_clear_replay(ss);
}

/* A recent snapshot of the same filter and view to share, or a fresh one. */
static struct feed_snap *
feed_snapshot_for(struct wsp_vhost *vh, const struct sub_filter *f, int basic, int no_opps)
{
    struct feed_worker *fw = vh->feed;
    char *key = feed_filter_key(f);
    char epoch[SHM_EPOCH_MAX];
    uint64_t now = time_mono_ms();
    struct feed_snap *s;

    if (key == NULL)
        return NULL;
    shm_epoch_get(vh->shm, epoch, sizeof(epoch));
    for (unsigned i = 0; i < FEED_RECENT; i++) {
        s = fw->recent[i];
        /* Only while the worker has read nothing since it was taken: a
         * subscriber then gets exactly what a fresh snapshot would give
         * (an older one would be right too, followed by what changed, but
         * a new board should not start with updates it may already show). */
        if (s != NULL && strcmp(s->filter_key, key) == 0 && s->basic == basic &&
            s->no_opps == no_opps && strcmp(s->epoch, epoch) == 0 &&
            now - s->made_ms <= FEED_SHARE_MS && s->at >= fw->reader->next) {
            free(key);
            s->refs++;
            return s;
        }
    }
    if ((s = feed_snapshot_take(vh, f, key, basic, no_opps)) == NULL)
        return NULL;
    feed_snap_unref(fw->recent[fw->recent_next]);
    fw->recent[fw->recent_next] = s;
    fw->recent_next = (fw->recent_next + 1) % FEED_RECENT;
    s->refs++;
    return s;
}

/* Give ss a snapshot of its filter (reason on its first part, or NULL). */
static void
feed_begin_snapshot(struct wsp_vhost *vh, struct wsp_session *ss, const char *reason)
{
    const struct sub_filter *f = sub_member_filter(&ss->member);

    if (ss->feed.pending_ack != NULL) {
        /* A resume still waiting for Redis gives up: its ack says so. */
        cJSON *ack = ss->feed.pending_ack;
        ss->feed.pending_ack = NULL;
        feed_count_refusal(vh, "too_old");
        cJSON_AddBoolToObject(ack, "resumed", 0);
        cJSON_AddStringToObject(ack, "reason", "too_old");
        outbound_send_message(vh, ss, "subscribed", ack);
    }
    feed_clear(ss);
    if (f == NULL) {
        ss->feed.phase = FEED_LIVE;
        feed_delist(ss);
        return;
    }
    ss->feed.snap = feed_snapshot_for(vh, f, ss->basic, ss->no_opps);
    if (ss->feed.snap == NULL) {
        wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
        return;
    }
    ss->feed.phase = FEED_SNAPSHOT;
    ss->feed.reason = reason;
    ss->feed.next_part = 0;
    feed_enlist(vh, ss);
}

static void
feed_begin_catchup(struct wsp_vhost *vh, struct wsp_session *ss, uint64_t from)
{
    ss->feed.phase = FEED_CATCHUP;
    ss->feed.rd.next = from;
    ss->feed.rd.missed = 0;
    ss->feed.from = from;
    feed_enlist(vh, ss);
}

static void
feed_go_live(struct wsp_session *ss, uint64_t from)
{
    ss->feed.phase = FEED_LIVE;
    ss->feed.from = from;
    feed_delist(ss);
}

/* ---- resume --------------------------------------------------------------- */

static const struct feed_position *
feed_request_position(const struct feed_request *req, const char *stream)
{
    for (uint32_t i = 0; i < req->npositions; i++) {
        if (strcmp(req->positions[i].stream, stream) == 0)
            return &req->positions[i];
    }
    return NULL;
}

/*
 * Where a resume starts: for each stream f reads, either the ring still
 * holds every entry after the client's position (a frame of it at or before
 * that position is still there), or the entries up to the worker's position
 * must come from Redis (into redis[], *nredis of them).  Sets the floors and
 * *from, where the ring catch-up starts.  NULL, or the reason it cannot
 * resume.
 */
static const char *
feed_plan_resume(struct wsp_vhost *vh, struct wsp_session *ss, const struct feed_request *req,
                 uint64_t *from, struct replay_stream *redis, uint32_t *nredis)
{
    struct feed_worker *fw = vh->feed;
    struct ring *ring = shm_ring(vh->shm);
    const struct sub_filter *f = sub_member_filter(&ss->member);
    const struct conf *c = vh->conf;
    struct feed_streams st;
    struct streamid want[SHM_MAX_STREAMS];
    int need[SHM_MAX_STREAMS] = {0}, nneed = 0;
    char epoch[SHM_EPOCH_MAX];
    uint64_t r = fw->reader->next, start = r, head;

    *nredis = 0;
    shm_epoch_get(vh->shm, epoch, sizeof(epoch));
    if (epoch[0] == '\0' || strcmp(epoch, req->epoch) != 0)
        return "epoch_changed";
    feed_filter_streams(vh, f, &st);
    memset(want, 0, sizeof(want));
    for (uint32_t i = 0; i < st.n; i++) {
        const struct feed_position *p = feed_request_position(req, st.names[i]);
        int row = st.rows[i];
        if (p == NULL)
            return "unknown_stream";
        if (row < 0)
            continue; /* nothing was ever read from it here */
        want[row] = p->id;
        if (streamid_cmp(&p->id, &fw->pos[row]) < 0 && !need[row]) {
            need[row] = 1;
            nneed++;
        }
    }
    /* Back through the ring from the worker's position. */
    head = ring_head(ring);
    for (uint64_t seq = r; nneed > 0 && seq > 0 && head - (seq - 1) <= ring->nslots; seq--) {
        struct ring_frame_meta meta;
        struct streamid id;
        if (ring_peek_meta(ring, seq - 1, &meta) != 0)
            break;
        if (meta.stream >= SHM_MAX_STREAMS || !need[meta.stream])
            continue;
        if (meta.kind == RING_KIND_RESET)
            return "epoch_changed"; /* its history since the position is void */
        id = (struct streamid){meta.id_ms, meta.id_seq};
        if (streamid_cmp(&id, &want[meta.stream]) <= 0) {
            need[meta.stream] = 0;
            nneed--;
            start = seq;
        }
    }
    if ((ss->feed.floor = calloc(SHM_MAX_STREAMS, sizeof(*ss->feed.floor))) == NULL)
        return "too_old";
    for (uint32_t i = 0; i < st.n; i++) {
        int row = st.rows[i];
        struct replay_stream *rs;
        if (row < 0)
            continue;
        ss->feed.floor[row] = want[row];
        if (!need[row])
            continue;
        /* The rest from Redis: (position, worker's position]; the ring
         * has what follows. */
        rs = &redis[(*nredis)++];
        memset(rs, 0, sizeof(*rs));
        snprintf(rs->name, sizeof(rs->name), "%s", st.names[i]);
        rs->after = want[row];
        rs->upto = fw->pos[row];
        ss->feed.floor[row] = fw->pos[row];
        rs->type = FRAME_ODDS_UPDATE;
        if (c->opportunities_stream[0] != '\0' && strcmp(st.names[i], c->opportunities_stream) == 0)
            rs->type = FRAME_OPPORTUNITY;
        for (int k = 0; k < c->nsports && rs->type == FRAME_ODDS_UPDATE; k++) {
            char name[CONF_STREAM_MAX];
            conf_sport_stream(c, k, name, sizeof(name));
            if (strcmp(name, st.names[i]) == 0)
                snprintf(rs->sport, sizeof(rs->sport), "%s", c->sports[k]);
        }
    }
    *from = start;
    return NULL;
}

int
feed_request_parse(const cJSON *payload, struct feed_request *req, char *why, size_t whylen)
{
    const cJSON *snap, *resume, *epoch, *positions, *p;
    uint32_t n = 0;

    memset(req, 0, sizeof(*req));
    req->snapshot = 1;
    if (payload == NULL)
        return 0;
    snap = cJSON_GetObjectItemCaseSensitive(payload, "snapshot");
    if (snap != NULL && !cJSON_IsNull(snap)) {
        if (!cJSON_IsBool(snap)) {
            snprintf(why, whylen, "snapshot must be true or false");
            return -1;
        }
        req->snapshot = cJSON_IsTrue(snap);
    }
    resume = cJSON_GetObjectItemCaseSensitive(payload, "resume");
    if (resume == NULL || cJSON_IsNull(resume))
        return 0;
    epoch = cJSON_GetObjectItemCaseSensitive(resume, "epoch");
    positions = cJSON_GetObjectItemCaseSensitive(resume, "positions");
    if (!cJSON_IsObject(resume) || !cJSON_IsString(epoch) ||
        strlen(epoch->valuestring) >= sizeof(req->epoch) || !cJSON_IsObject(positions)) {
        snprintf(why, whylen,
                 "resume must be {\"epoch\": string, \"positions\": {stream: id, ...}}");
        return -1;
    }
    cJSON_ArrayForEach(p, positions) n++;
    if (n > SHM_MAX_STREAMS) {
        snprintf(why, whylen, "resume names more than %d streams", SHM_MAX_STREAMS);
        return -1;
    }
    req->resume = 1;
    snprintf(req->epoch, sizeof(req->epoch), "%s", epoch->valuestring);
    if (n > 0 && (req->positions = calloc(n, sizeof(*req->positions))) == NULL) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(p, positions)
    {
        struct feed_position *fp = &req->positions[req->npositions];
        if (!cJSON_IsString(p) || strlen(p->string) >= sizeof(fp->stream) ||
            streamid_parse(p->valuestring, strlen(p->valuestring), &fp->id) != 0) {
            snprintf(why, whylen, "resume position of %.64s must be a stream id \"<ms>-<seq>\"",
                     p->string);
            feed_request_free(req);
            return -1;
        }
        snprintf(fp->stream, sizeof(fp->stream), "%s", p->string);
        req->npositions++;
    }
    return 0;
}

void
feed_request_free(struct feed_request *req)
{
    free(req->positions);
    req->positions = NULL;
    req->npositions = 0;
}

/* A resume was refused: say why in the ack, then a snapshot (or, for a
 * client that asked for none, the live stream). */
static void
feed_refuse(struct wsp_vhost *vh, struct wsp_session *ss, const char *why, int want_snapshot,
            cJSON *ack)
{
    feed_count_refusal(vh, why);
    free(ss->feed.floor);
    ss->feed.floor = NULL;
    if (ack != NULL) {
        cJSON_AddBoolToObject(ack, "resumed", 0);
        cJSON_AddStringToObject(ack, "reason", why);
    }
    if (want_snapshot)
        feed_begin_snapshot(vh, ss, NULL);
    else
        feed_go_live(ss, vh->feed->reader->next);
}

static const struct sub_filter *
feed_owner_filter(void *owner)
{
    struct wsp_session *ss = owner;

    return sub_member_filter(&ss->member);
}

/* Redis answered a resume (replay.h). */
static void
feed_replayed(struct wsp_vhost *vh, void *owner, int ok, const char *reason, struct outq_msg **msgs,
              uint32_t n)
{
    struct wsp_session *ss = owner;
    cJSON *ack = ss->feed.pending_ack;

    ss->feed.replay = NULL;
    ss->feed.pending_ack = NULL;
    if (ss->close_code != 0) {
        for (uint32_t i = 0; i < n; i++)
            outq_msg_unref(msgs[i]);
        free(msgs);
        cJSON_Delete(ack);
        return;
    }
    if (ok) {
        WSP_STAT_ADD(vh, resumes_ok, 1);
        if (ack != NULL)
            cJSON_AddBoolToObject(ack, "resumed", 1);
        outbound_send_message(vh, ss, "subscribed", ack);
        ss->feed.replayed = msgs;
        ss->feed.nreplayed = n;
        ss->feed.next_replayed = 0;
        ss->feed.phase = FEED_REPLAY;
        feed_enlist(vh, ss);
    } else {
        feed_refuse(vh, ss, reason, ss->feed.want_snapshot, ack);
        outbound_send_message(vh, ss, "subscribed", ack);
    }
    vh->kick(vh);
}

static const struct replay_owner feed_replay_ops = {feed_owner_filter, feed_replayed};

int
feed_start(struct wsp_vhost *vh, struct wsp_session *ss, const struct feed_request *req, cJSON *ack)
{
    struct feed_worker *fw = vh->feed;
    char epoch[SHM_EPOCH_MAX];
    struct replay_stream redis[CONF_MAX_SPORTS + 1];
    uint32_t nredis = 0;
    uint64_t from;
    const char *why;

    feed_clear(ss);
    shm_epoch_get(vh->shm, epoch, sizeof(epoch));
    if (ack != NULL)
        cJSON_AddStringToObject(ack, "epoch", epoch);
    if (!req->resume) {
        if (req->snapshot)
            feed_begin_snapshot(vh, ss, NULL);
        else
            feed_go_live(ss, fw->reader->next);
        return 0;
    }
    why = feed_plan_resume(vh, ss, req, &from, redis, &nredis);
    if (why != NULL) {
        feed_refuse(vh, ss, why, req->snapshot, ack);
        return 0;
    }
    if (nredis == 0) {
        WSP_STAT_ADD(vh, resumes_ok, 1);
        if (ack != NULL)
            cJSON_AddBoolToObject(ack, "resumed", 1);
        feed_begin_catchup(vh, ss, from);
        return 0;
    }
    /* Older than the ring: Redis has them.  The ack waits for its answer
     * (it says whether the resume worked); live frames wait in the ring. */
    ss->feed.replay = replay_start(vh, redis, nredis, ss->basic, ss->no_opps, &feed_replay_ops, ss);
    if (ss->feed.replay == NULL) {
        feed_refuse(vh, ss, "too_old", req->snapshot, ack);
        return 0;
    }
    ss->feed.phase = FEED_WAIT;
    ss->feed.pending_ack = ack;
    ss->feed.catch_from = from;
    ss->feed.from = from;
    ss->feed.want_snapshot = req->snapshot;
    return 1;
}

void
feed_stop(struct wsp_vhost *vh, struct wsp_session *ss)
{
    (void)vh;
    feed_clear(ss);
    feed_delist(ss);
    ss->feed.phase = FEED_LIVE;
    ss->feed.from = 0;
}

/* ---- the worker's frames ------------------------------------------------------ */

void
feed_frame(struct wsp_vhost *vh, uint32_t kind, const struct feed_entry *e, const char *data,
           uint32_t len)
{
    struct feed_worker *fw = vh->feed;
    lws_dll2_t *d;

    (void)data;
    (void)len;
    if (e->stream >= SHM_MAX_STREAMS)
        return;
    if (kind == RING_KIND_ENTRY) {
        fw->pos[e->stream] = e->id;
        return;
    }
    /* RESET: the stream's history is void; HISTORY: the table now holds the
     * stream's history.  Either way the boards that read it start again. */
    fw->pos[e->stream] = kind == RING_KIND_RESET ? (struct streamid){0, 0} : e->id;
    for (d = vh->sessions.head; d != NULL; d = d->next) {
        struct wsp_session *ss = lws_container_of(d, struct wsp_session, list);
        const struct sub_filter *f = sub_member_filter(&ss->member);
        struct feed_streams st;
        if (f == NULL || ss->close_code != 0)
            continue;
        feed_filter_streams(vh, f, &st);
        if (feed_reads_row(&st, e->stream))
            feed_begin_snapshot(vh, ss,
                                kind == RING_KIND_RESET ? "epoch_changed" : "history_loaded");
    }
}

void
feed_note(struct wsp_vhost *vh, uint32_t kind, const struct feed_entry *e,
          const struct frame_view *view, struct outq_msg *msg[2])
{
    struct feed_recent *r = &vh->feed->recent_frames[e->seq % FEED_RECENT_FRAMES];
    size_t used = 0;

    outq_msg_unref(r->msg[0]);
    outq_msg_unref(r->msg[1]);
    r->seq = e->seq;
    r->kind = kind;
    r->stream = e->stream;
    r->id = e->id;
    r->msg[0] = msg != NULL ? msg[0] : NULL;
    r->msg[1] = msg != NULL ? msg[1] : NULL;
    r->opportunity = view != NULL && view->type == FRAME_OPPORTUNITY;
    r->keyed = view != NULL;
    for (int d = 0; view != NULL && d < FRAME_NKEYS; d++) {
        const struct frame_key_ref *k = &view->keys[d];
        if (k->ptr == NULL) {
            r->keys[d].ptr = NULL;
            r->keys[d].len = 0;
            continue;
        }
        if (used + k->len > sizeof(r->keybuf)) {
            r->keyed = 0;
            break;
        }
        memcpy(r->keybuf + used, k->ptr, k->len);
        r->keys[d].ptr = r->keybuf + used;
        r->keys[d].len = k->len;
        used += k->len;
    }
}

void
feed_lapped(struct wsp_vhost *vh)
{
    struct feed_worker *fw = vh->feed;
    lws_dll2_t *d;

    if (fw->have_table) {
        /* Where the table stands, the positions are exact again. */
        fw->reader->next = feed_table_applied(fw, fw->pos, SHM_MAX_STREAMS, fw->reader->next);
    }
    for (d = vh->sessions.head; d != NULL; d = d->next) {
        struct wsp_session *ss = lws_container_of(d, struct wsp_session, list);
        if (sub_member_filter(&ss->member) != NULL && ss->close_code == 0) {
            WSP_STAT_ADD(vh, lapped_snapshots, 1);
            feed_begin_snapshot(vh, ss, "lapped");
        }
    }
}

/* ---- moving sessions forward ---------------------------------------------- */

/* Room in ss's queue for more of its snapshot or catch-up: under half its
 * bounds, so a slow reader is never cut off (nor conflated) by its own
 * snapshot. */
static int
feed_room(const struct wsp_vhost *vh, const struct wsp_session *ss)
{
    uint32_t limit = vh->conf->conflate_at / 2;

    return ss->q.len < (limit > 0 ? limit : 1) && ss->q.bytes < vh->conf->client_buffer_bytes / 2;
}

/* Queue ss's next snapshot parts; returns the work done. */
static uint32_t
feed_serve_snapshot(struct wsp_vhost *vh, struct wsp_session *ss, uint32_t budget)
{
    struct feed_snap *s = ss->feed.snap;
    uint32_t work = 0;

    while (work < budget && feed_room(vh, ss) && ss->close_code == 0) {
        uint32_t k = ss->feed.next_part;
        struct outq_msg *m = NULL;
        int n;

        if (k == 0 && ss->feed.reason != NULL) {
            n = feed_encode_part(vh, s, 0, ss->feed.reason, &m);
        } else if (s->parts[k] != NULL) {
            m = s->parts[k];
            outq_msg_ref(m);
            n = 1;
        } else {
            n = feed_encode_part(vh, s, k, NULL, &s->parts[k]);
            if (n >= 0) {
                m = s->parts[k];
                outq_msg_ref(m);
            }
        }
        if (n < 0) {
            wsp_schedule_close(ss, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory", 1);
            return work + 1;
        }
        outbound_enqueue(vh, ss, m);
        outq_msg_unref(m);
        work += 4 * (uint32_t)n + 1;
        ss->feed.next_part++;
        if (ss->feed.next_part == s->nparts) {
            uint64_t at = s->at;
            WSP_STAT_ADD(vh, snapshots_sent, 1);
            WSP_STAT_ADD(vh, snapshot_items_sent, s->nitems);
            feed_snap_unref(s);
            ss->feed.snap = NULL;
            ss->feed.reason = NULL;
            feed_begin_catchup(vh, ss, at);
            break;
        }
    }
    return work;
}

/* Queue the entries Redis gave back; then the ring catch-up. */
static uint32_t
feed_serve_replay(struct wsp_vhost *vh, struct wsp_session *ss, uint32_t budget)
{
    uint32_t work = 0;

    while (work < budget && feed_room(vh, ss) && ss->close_code == 0 &&
           ss->feed.next_replayed < ss->feed.nreplayed) {
        struct outq_msg *m = ss->feed.replayed[ss->feed.next_replayed++];
        outbound_enqueue(vh, ss, m);
        outq_msg_unref(m);
        work++;
    }
    if (ss->feed.next_replayed == ss->feed.nreplayed) {
        free(ss->feed.replayed);
        ss->feed.replayed = NULL;
        ss->feed.nreplayed = ss->feed.next_replayed = 0;
        feed_begin_catchup(vh, ss, ss->feed.catch_from);
        work++;
    }
    return work;
}

/*
 * Frame ss->feed.rd.next for ss from what the worker noted of it, if it
 * still has it: 1 if taken care of (sent, or not ss's), and rd moved past
 * it; 0 if the ring must be read (a frame too old for the note, a kind that
 * restarts the board, an update nobody has encoded yet).
 */
static int
feed_catchup_recent(struct wsp_vhost *vh, struct wsp_session *ss, const struct sub_filter *f)
{
    uint64_t seq = ss->feed.rd.next;
    struct feed_recent *r = &vh->feed->recent_frames[seq % FEED_RECENT_FRAMES];

    if (r->seq != seq || r->kind != RING_KIND_ENTRY || r->stream >= SHM_MAX_STREAMS)
        return 0;
    if (ss->feed.floor != NULL && streamid_cmp(&r->id, &ss->feed.floor[r->stream]) <= 0) {
        ss->feed.rd.next++;
        return 1;
    }
    if (!r->keyed)
        return 0;
    if (!sub_filter_matches(f, r->keys) || (ss->no_opps && r->opportunity)) {
        ss->feed.rd.next++;
        return 1;
    }
    if (r->msg[ss->basic] == NULL)
        return 0;
    outbound_enqueue(vh, ss, r->msg[ss->basic]);
    ss->feed.rd.next++;
    return 1;
}

/* Read the ring for ss from where its board stands; returns the work done. */
static uint32_t
feed_serve_catchup(struct wsp_vhost *vh, struct wsp_session *ss, uint32_t budget)
{
    struct feed_worker *fw = vh->feed;
    struct ring *ring = shm_ring(vh->shm);
    const struct sub_filter *f = sub_member_filter(&ss->member);
    uint32_t work = 0;

    if (f == NULL) {
        feed_go_live(ss, fw->reader->next);
        return 1;
    }
    if (feed_grow_buf(fw, vh->conf->max_entry_size) != 0)
        return 1;
    while (work < budget && ss->close_code == 0) {
        struct ring_frame_meta meta;
        struct frame_view view;
        struct feed_entry e;
        uint32_t len;
        char err[64], name[SHM_STREAM_NAME], id[STREAMID_STR_MAX];

        if (ss->feed.rd.next >= fw->reader->next) {
            feed_go_live(ss, ss->feed.rd.next);
            break;
        }
        if (!feed_room(vh, ss))
            break;
        work++;
        if (feed_catchup_recent(vh, ss, f))
            continue;
        if (ring_read(ring, &ss->feed.rd, fw->buf, fw->bufsize, &len, &meta) == 0)
            break;
        if (ss->feed.rd.missed > 0) {
            WSP_STAT_ADD(vh, lapped_snapshots, 1);
            free(ss->feed.floor);
            ss->feed.floor = NULL;
            feed_begin_snapshot(vh, ss, "lapped");
            break;
        }
        e.seq = ss->feed.rd.next - 1;
        e.stream = meta.stream;
        e.id = (struct streamid){meta.id_ms, meta.id_seq};
        e.published_us = meta.published_us;
        if (e.stream >= SHM_MAX_STREAMS)
            continue;
        if (meta.kind != RING_KIND_ENTRY) {
            struct feed_streams st;
            feed_filter_streams(vh, f, &st);
            if (feed_reads_row(&st, e.stream)) {
                feed_begin_snapshot(
                    vh, ss, meta.kind == RING_KIND_RESET ? "epoch_changed" : "history_loaded");
                break;
            }
            continue;
        }
        if (ss->feed.floor != NULL && streamid_cmp(&e.id, &ss->feed.floor[e.stream]) <= 0)
            continue;
        msgpack_zone_clear(&fw->zone);
        if (frame_unpack(fw->buf, len, &fw->zone, &view, err, sizeof(err)) != 0 ||
            !sub_filter_matches(f, view.keys) || (ss->no_opps && view.type == FRAME_OPPORTUNITY) ||
            shm_stream_name(vh->shm, e.stream, name, sizeof(name)) != 0)
            continue;
        streamid_format(&e.id, id, sizeof(id));
        e.stream_name = name;
        e.id_text = id;
        {
            struct outq_msg *m = outbound_encode_entry(vh, &view, &e, ss->basic);
            struct feed_recent *r = &fw->recent_frames[e.seq % FEED_RECENT_FRAMES];
            if (m == NULL)
                continue;
            outbound_enqueue(vh, ss, m);
            /* The next session catching up over this frame takes it from
             * here. */
            if (r->seq == e.seq && r->msg[ss->basic] == NULL) {
                r->msg[ss->basic] = m;
            } else {
                outq_msg_unref(m);
            }
        }
        work += 8; /* a read, an unpack and an encode */
    }
    return work;
}

int
feed_service(struct wsp_vhost *vh)
{
    struct feed_worker *fw = vh->feed;
    uint32_t work = 0, n = fw->feeding.count;
    int progressed = 0;

    /* Round robin: each session served goes to the back. */
    while (n-- > 0 && work < FEED_WORK_PER_TURN && fw->feeding.head != NULL) {
        struct wsp_session *ss = lws_container_of(fw->feeding.head, struct wsp_session, feed.link);
        uint32_t done;

        lws_dll2_remove(&ss->feed.link);
        if (ss->close_code != 0) {
            feed_clear(ss);
            ss->feed.phase = FEED_LIVE;
            continue;
        }
        if (ss->feed.phase == FEED_SNAPSHOT)
            done = feed_serve_snapshot(vh, ss, FEED_WORK_PER_TURN - work);
        else if (ss->feed.phase == FEED_REPLAY)
            done = feed_serve_replay(vh, ss, FEED_WORK_PER_TURN - work);
        else if (ss->feed.phase == FEED_CATCHUP)
            done = feed_serve_catchup(vh, ss, FEED_WORK_PER_TURN - work);
        else
            done = 0;
        work += done;
        if (done > 0)
            progressed = 1;
        if (ss->feed.phase != FEED_LIVE)
            feed_enlist(vh, ss);
    }
    return progressed && fw->feeding.count > 0;
}

/* ---- start ----------------------------------------------------------------- */

int
feed_init(struct wsp_vhost *vh, struct ring_reader *reader)
{
    struct feed_worker *fw = &feed_worker_state;
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);
    uint32_t max_keys;
    void *mem = shm_snaptab(vh->shm, &max_keys);

    memset(fw, 0, sizeof(*fw));
    fw->rl = rl;
    fw->reader = reader;
    fw->recent_frames = calloc(FEED_RECENT_FRAMES, sizeof(*fw->recent_frames));
    for (uint32_t i = 0; fw->recent_frames != NULL && i < FEED_RECENT_FRAMES; i++)
        fw->recent_frames[i].seq = UINT64_MAX;
    if (fw->recent_frames == NULL || !msgpack_zone_init(&fw->zone, 4096) ||
        feed_grow_buf(fw, vh->conf->max_entry_size) != 0) {
        LOG_ERROR("out of memory at start");
        return -1;
    }
    if (mem != NULL && snaptab_attach_reader(&fw->table, mem, max_keys, SHM_MAX_STREAMS) == 0) {
        fw->have_table = 1;
        /* Positions are exact from the first frame on: start where the
         * table stands (frames after it are in the ring). */
        reader->next = feed_table_applied(fw, fw->pos, SHM_MAX_STREAMS, reader->next);
    }
    vh->feed = fw;
    return 0;
}

void
feed_free(struct wsp_vhost *vh)
{
    struct feed_worker *fw = vh->feed;

    if (fw == NULL)
        return;
    for (unsigned i = 0; i < FEED_RECENT; i++)
        feed_snap_unref(fw->recent[i]);
    feed_item_cache_clear(fw);
    for (uint32_t i = 0; fw->recent_frames != NULL && i < FEED_RECENT_FRAMES; i++) {
        outq_msg_unref(fw->recent_frames[i].msg[0]);
        outq_msg_unref(fw->recent_frames[i].msg[1]);
    }
    free(fw->recent_frames);
    msgpack_zone_destroy(&fw->zone);
    free(fw->buf);
    vh->feed = NULL;
}
