/*
 * test_shm: the shared region's layout, its stream table and the totals the
 * /metrics endpoint reports.  Totals must survive a worker's death (its
 * counters stay in its slot for the next worker to add to) and
 * broadcast_usage must follow only the
 * workers that are alive and listening, or one dead slot would pin it at
 * the whole ring.  Client addresses are bucketed by the instance's keyed
 * hash: the same in every worker, different under another key.
 *
 * Geometry comes from each process's private copy, never from the region:
 * scribbling on the shared header changes nothing a process computes.  Each
 * role can write its own parts only (checked in forked children, where a
 * stray write must fault).  Stream rows are reused only once no frame naming
 * them is left in the ring, checked against an independent model over random
 * reloads.
 * Client addresses are counted in one table per worker
 * (addrtab.h, tested on its own in test_addrtab.c): here, where the tables
 * sit, that a count is the sum over the workers, and that a dead worker's
 * table is cleared without touching the others.
 */
#include "common/addrtab.h"
#include "common/hash.h"
#include "common/shm.h"
#include "common/timeutil.h"

#include <errno.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static void
test_create_layout(void)
{
    uint32_t nslots = 1024, max_frame = 65536;
    uint64_t data_size = ring_data_size_for(nslots, 512, max_frame);
    uint64_t before = time_now_ms();
    struct shm *s = shm_create(4, nslots, max_frame, ADDRTAB_MIN_SLOTS);
    struct ring *r;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(s->hdr.magic, SHM_MAGIC);
    CHECK_INT(s->hdr.version, SHM_VERSION);
    CHECK_INT(s->hdr.nworkers, 4);
    /* The address tables between the fixed part and the ring
     * (test_address_tables_layout). */
    CHECK_INT(s->hdr.ring_offset, s->addrtabs.offset + 4 * s->addrtabs.stride);
    CHECK_INT(s->hdr.size,
              (s->hdr.ring_offset + ring_region_size(nslots, data_size) + 4095) / 4096 * 4096);
    CHECK(s->hdr.started_ms >= before && s->hdr.started_ms <= time_now_ms());
    CHECK_INT(shm_nworkers(s), 4);
    /* Page-aligned mapping, each writer's part on its own pages, the ring
     * on a page. */
    CHECK_INT((uintptr_t)s % SHM_PAGE, 0);
    CHECK_INT((uintptr_t)&s->ingest % SHM_PAGE, 0);
    CHECK_INT((uintptr_t)&s->workers[1] % SHM_PAGE, 0);
    CHECK_INT(((uintptr_t)s + s->addrtabs.offset + s->addrtabs.stride) % SHM_PAGE, 0);
    CHECK((char *)&s->streams[SHM_MAX_STREAMS] <= (char *)&s->workers[0]);
    r = shm_ring(s);
    CHECK((char *)r->hdr == (char *)s + s->hdr.ring_offset);
    CHECK_INT((uintptr_t)r->hdr % SHM_PAGE, 0);
    CHECK(r->data + r->data_size <= (char *)s + s->hdr.size);
    CHECK_INT(r->nslots, nslots);
    CHECK_INT(r->max_frame, max_frame);
    CHECK_INT(r->data_size, data_size);
    CHECK(r->data_size >= 4ULL * max_frame);
    CHECK_INT(ring_head(r), 0);
    /* Fresh counters and an empty stream table. */
    CHECK_INT(s->ingest.entries_published, 0);
    CHECK_INT(s->workers[0].pid, 0);
    {
        char name[SHM_STREAM_NAME];
        CHECK_INT(shm_stream_name(s, 0, name, sizeof(name)), -1);
    }
    shm_destroy(s);
}

static void
test_create_ring_usable(void)
{
    /* The last byte of the data area is inside the mapping: a frame placed
     * at the very end can be written and read back. */
    struct shm *s = shm_create(1, 1024, 2048, ADDRTAB_MIN_SLOTS);
    struct ring *r;
    struct ring_reader rd;
    struct ring_frame_meta meta = {3, 1700000000000ULL, 7, 0, 0}, got;
    char frame[2048], buf[2048];
    uint32_t len;
    int64_t seq;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    r = shm_ring(s);
    CHECK((char *)r->hdr + ring_region_size(r->nslots, r->data_size) <= (char *)s + s->hdr.size);
    CHECK((char *)r->hdr + ring_region_size(r->nslots, r->data_size) + SHM_PAGE >
          (char *)s + s->hdr.size);
    ring_reader_init(r, &rd);
    memset(frame, 'f', sizeof(frame));
    /* Fill the data area exactly once so the last frame ends on its last byte. */
    for (uint64_t i = 0; i < r->data_size / sizeof(frame); i++) {
        seq = ring_publish(r, frame, sizeof(frame), &meta);
        CHECK_INT(seq, (int64_t)i);
    }
    for (uint64_t i = 0; i < r->data_size / sizeof(frame); i++) {
        CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
        CHECK_INT(len, sizeof(frame));
        CHECK(memcmp(buf, frame, sizeof(frame)) == 0);
        CHECK_INT(got.stream, 3);
        CHECK_INT(got.id_ms, 1700000000000ULL);
        CHECK_INT(got.id_seq, 7);
    }
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 0);
    CHECK_INT(rd.missed, 0);
    shm_destroy(s);
}

static void
test_create_refused(void)
{
    CHECK(shm_create(0, 1024, 4096, ADDRTAB_MIN_SLOTS) == NULL);
    CHECK(shm_create(SHM_MAX_WORKERS + 1, 1024, 4096, ADDRTAB_MIN_SLOTS) == NULL);
    /* The ring needs a power-of-two slot count. */
    CHECK(shm_create(1, 1000, 4096, ADDRTAB_MIN_SLOTS) == NULL);
    CHECK(shm_create(1, 0, 4096, ADDRTAB_MIN_SLOTS) == NULL);

    {
        struct shm *s = shm_create(SHM_MAX_WORKERS, 1024, 4096, ADDRTAB_MIN_SLOTS);
        CHECK(s != NULL);
        if (s != NULL)
            CHECK_INT(s->hdr.nworkers, SHM_MAX_WORKERS);
        shm_destroy(s);
    }
    /* shm_destroy(NULL) is a no-op, so error paths can call it freely. */
    shm_destroy(NULL);
}

/* Stream name idx as a string, "" if shm_stream_name refuses it. */
static const char *
row_name(struct shm *s, uint32_t idx)
{
    static char buf[SHM_STREAM_NAME];

    if (shm_stream_name(s, idx, buf, sizeof(buf)) != 0)
        buf[0] = '\0';
    return buf;
}

/* Publish one frame naming row idx, as the ingest does: last_frame first. */
static void
publish_for(struct shm *s, int idx)
{
    struct ring_frame_meta meta = {(uint32_t)idx, 1, 0, 0, 0};
    char byte = 'x';

    atomic_store(&s->streams[idx].last_frame, ring_head(shm_ring(s)) + 1);
    CHECK(ring_publish(shm_ring(s), &byte, 1, &meta) >= 0);
}

static void
test_stream_index(void)
{
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *cfg[] = {"odds.normalized.basketball_nba", "opportunities", "odds.normalized"};
    char name[SHM_STREAM_NAME + 1], small[8];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, cfg[0], cfg, 3), 0);
    CHECK_INT(shm_stream_index(s, cfg[1], cfg, 3), 1);
    CHECK_INT(shm_stream_index(s, cfg[0], cfg, 3), 0);
    CHECK_INT(shm_stream_index(s, cfg[1], cfg, 3), 1);
    /* A prefix of an existing name is a different stream. */
    CHECK_INT(shm_stream_index(s, cfg[2], cfg, 3), 2);
    CHECK_STR(row_name(s, 0), "odds.normalized.basketball_nba");
    CHECK_STR(row_name(s, 1), "opportunities");
    CHECK_STR(row_name(s, 2), "odds.normalized");
    CHECK_INT(shm_stream_name(s, 3, name, sizeof(name)), -1);
    CHECK_INT(shm_stream_name(s, SHM_MAX_STREAMS, name, sizeof(name)), -1);
    CHECK_INT(shm_stream_name(s, UINT32_MAX, name, sizeof(name)), -1);
    /* A name longer than the caller's buffer is refused, not cut. */
    CHECK_INT(shm_stream_name(s, 1, small, sizeof(small)), -1);
    CHECK_INT(shm_stream_name(s, 1, small, 0), -1);

    /* SHM_STREAM_NAME - 1 bytes fit with the NUL; one more does not, and a
     * refused name takes no slot. */
    memset(name, 'n', sizeof(name));
    name[SHM_STREAM_NAME] = '\0';
    CHECK_INT(shm_stream_index(s, name, NULL, 0), -1);
    name[SHM_STREAM_NAME - 1] = '\0';
    CHECK_INT(shm_stream_index(s, name, NULL, 0), 3);
    CHECK_STR(row_name(s, 3), name);
    CHECK_INT(shm_stream_name(s, 4, name, sizeof(name)), -1);
    shm_destroy(s);
}

static void
test_stream_name_bounded(void)
{
    /* A row whose name has no NUL (damaged): never matched, never read past
     * its end, its name refused. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    char big[2 * SHM_STREAM_NAME];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, "a", NULL, 0), 0);
    CHECK_INT(shm_stream_index(s, "b", NULL, 0), 1);
    memset(s->streams[0].name, 'x', SHM_STREAM_NAME);
    CHECK_INT(shm_stream_name(s, 0, big, sizeof(big)), -1);
    memset(big, 'x', SHM_STREAM_NAME);
    big[SHM_STREAM_NAME - 1] = '\0';
    /* Not row 0's (unterminated) name: a new row. */
    CHECK_INT(shm_stream_index(s, big, NULL, 0), 2);
    CHECK_STR(row_name(s, 1), "b");
    shm_destroy(s);
}

static void
test_stream_table_full(void)
{
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *none[] = {"one-too-many"};
    char name[32];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    /* Every row named, each with a frame in the ring. */
    for (int i = 0; i < SHM_MAX_STREAMS; i++) {
        snprintf(name, sizeof(name), "stream-%d", i);
        CHECK_INT(shm_stream_index(s, name, NULL, 0), i);
        publish_for(s, i);
    }
    CHECK_INT(shm_stream_index(s, "one-too-many", none, 1), -1);
    /* A full table still finds what it holds. */
    CHECK_INT(shm_stream_index(s, "stream-0", none, 1), 0);
    CHECK_INT(shm_stream_index(s, "stream-127", none, 1), SHM_MAX_STREAMS - 1);
    CHECK_STR(row_name(s, SHM_MAX_STREAMS - 1), "stream-127");
    shm_destroy(s);
}

static void
test_stream_index_stable(void)
{
    /* A restarted ingest that adds streams in another order finds the rows
     * (and last ids) its streams had, and a new row starts from zero. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *cfg[] = {"a", "b"};

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, "b", cfg, 2), 0);
    atomic_store(&s->streams[0].last_ms, 42);
    atomic_store(&s->streams[0].grouped, 1);
    CHECK_INT(shm_stream_index(s, "a", cfg, 2), 1);
    CHECK_INT(atomic_load(&s->streams[1].last_ms), 0);
    CHECK_INT(atomic_load(&s->streams[1].last_seq), 0);
    CHECK_INT(shm_stream_index(s, "b", cfg, 2), 0);
    CHECK_INT(atomic_load(&s->streams[0].last_ms), 42);
    CHECK_INT(atomic_load(&s->streams[0].grouped), 1);
    shm_destroy(s);
}

/* Fill every row: stream-<i>, each given a frame in the ring. */
static void
fill_table(struct shm *s)
{
    char name[32];

    for (int i = 0; i < SHM_MAX_STREAMS; i++) {
        snprintf(name, sizeof(name), "stream-%d", i);
        CHECK_INT(shm_stream_index(s, name, NULL, 0), i);
        publish_for(s, i);
    }
}

static void
test_stream_row_reused_once_out_of_the_ring(void)
{
    uint32_t nslots = 1024;
    struct shm *s = shm_create(1, nslots, 4096, ADDRTAB_MIN_SLOTS);
    const char *cfg[] = {"new", "stream-0"};
    uint64_t head;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    fill_table(s);
    atomic_store(&s->streams[3].last_ms, 77);
    atomic_store(&s->streams[3].grouped, 1);
    /* Row 0 is configured; rows 1.. have frames in the ring: no row. */
    CHECK_INT(shm_stream_index(s, "new", cfg, 2), -1);
    /* Frames naming row 0 only, until row 1's last frame is one slot short
     * of being overwritten. */
    head = ring_head(shm_ring(s));
    while (ring_head(shm_ring(s)) < 1 + nslots)
        publish_for(s, 0);
    CHECK_INT(shm_stream_index(s, "new", cfg, 2), -1);
    /* One more: frame 1 (row 1's) is overwritten.  Row 1 is the first
     * whose frames are all gone; row 0 is configured, so never taken. */
    publish_for(s, 0);
    CHECK_INT(shm_stream_index(s, "new", cfg, 2), 1);
    CHECK_STR(row_name(s, 1), "new");
    CHECK_INT(atomic_load(&s->streams[1].last_frame), 0);
    CHECK_STR(row_name(s, 0), "stream-0");
    /* The next one takes the next row out of the ring, with its ids and
     * group flag starting over. */
    while (ring_head(shm_ring(s)) < 4 + nslots)
        publish_for(s, 0);
    {
        const char *cfg2[] = {"new", "stream-0", "newer", "newest"};
        CHECK_INT(shm_stream_index(s, "newer", cfg2, 4), 2);
        CHECK_INT(shm_stream_index(s, "newest", cfg2, 4), 3);
        CHECK_INT(atomic_load(&s->streams[3].last_ms), 0);
        CHECK_INT(atomic_load(&s->streams[3].grouped), 0);
        CHECK_INT(shm_stream_index(s, "more", cfg2, 4), -1);
    }
    (void)head;
    shm_destroy(s);
}

static void
test_stream_row_never_published_is_free(void)
{
    /* A removed stream that never had an entry has no frame to protect;
     * a never-used row is taken before any named one. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *cfg[] = {"c"};

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, "a", NULL, 0), 0);
    CHECK_INT(shm_stream_index(s, "b", NULL, 0), 1);
    publish_for(s, 1);
    CHECK_INT(shm_stream_index(s, "c", cfg, 1), 2); /* unused first */
    for (int i = 3; i < SHM_MAX_STREAMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "x%d", i);
        CHECK_INT(shm_stream_index(s, name, NULL, 0), i);
        publish_for(s, i);
    }
    {
        const char *cfg2[] = {"c", "d", "e"};
        CHECK_INT(shm_stream_index(s, "d", cfg2, 3), 0); /* "a": no frame */
        CHECK_STR(row_name(s, 0), "d");
        CHECK_INT(shm_stream_index(s, "e", cfg2, 3), -1);
    }
    shm_destroy(s);
}

static void
test_streams_fit(void)
{
    uint32_t nslots = 1024;
    struct shm *s = shm_create(1, nslots, 4096, ADDRTAB_MIN_SLOTS);
    const char *running[] = {"stream-0", "stream-1"};
    const char *wanted[] = {"stream-1", "w1", "w2"};
    const char *repeat[] = {"w1", "w1", "w1"};
    char err[512] = "";

    CHECK(s != NULL);
    if (s == NULL)
        return;
    /* An empty table fits anything the configuration allows. */
    CHECK_INT(shm_streams_fit(s, running, 2, wanted, 3, err, sizeof(err)), 0);
    fill_table(s);
    CHECK_INT(shm_streams_fit(s, running, 2, running, 2, err, sizeof(err)), 0);
    /* Two new streams, no free row: refused, with when it will fit.  Rows
     * 2 and 3 are the first of the others to leave the ring: after frame 3
     * is overwritten, nslots + 4 - head more entries. */
    CHECK_INT(shm_streams_fit(s, running, 2, wanted, 3, err, sizeof(err)), -1);
    printf("#   %s\n", err);
    CHECK(strstr(err, "2 streams need a row") != NULL);
    CHECK(strstr(err, "0 of its 128 rows are free") != NULL);
    {
        char want[64];
        snprintf(want, sizeof(want), "after %llu more entries",
                 (unsigned long long)(nslots + 4 - ring_head(shm_ring(s))));
        CHECK(strstr(err, want) != NULL);
    }
    /* A name asked for twice needs one row. */
    CHECK(strstr((shm_streams_fit(s, NULL, 0, repeat, 3, err, sizeof(err)), err),
                 "1 streams need a row") != NULL);
    /* Once the ring moved past them, rows 2 and 3 are free; the running
     * ingest's rows 0 and 1 never count, even out of the ring. */
    while (ring_head(shm_ring(s)) < nslots + 4)
        publish_for(s, 0);
    CHECK_INT(shm_streams_fit(s, running, 2, wanted, 3, err, sizeof(err)), 0);
    {
        const char *three[] = {"w1", "w2", "w3"};
        CHECK_INT(shm_streams_fit(s, running, 2, three, 3, err, sizeof(err)), -1);
    }
    shm_destroy(s);
}

static void
test_streams_fit_counts_running_without_rows(void)
{
    /* The running ingest may be taking rows for its streams right now: a
     * running stream that has none yet needs one too. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *running[] = {"r1", "r2"};
    const char *wanted[] = {"w1"};
    char err[512] = "", name[32];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int i = 0; i < SHM_MAX_STREAMS - 2; i++) {
        snprintf(name, sizeof(name), "stream-%d", i);
        CHECK_INT(shm_stream_index(s, name, NULL, 0), i);
        publish_for(s, i);
    }
    CHECK_INT(shm_streams_fit(s, running, 2, NULL, 0, err, sizeof(err)), 0);
    CHECK_INT(shm_streams_fit(s, running, 2, wanted, 1, err, sizeof(err)), -1);
    CHECK(strstr(err, "3 streams need a row") != NULL);
    shm_destroy(s);
}

/*
 * Random reloads against a model written from the rule alone: a row keeps
 * its stream while any frame naming it can be in the ring (head - seq <=
 * nslots for its newest frame seq); a reload fits iff the new streams
 * without a row are no more than the rows neither running nor wanted whose
 * frames are gone.  Every reload the table accepts must find a row for each
 * stream, and no row may change name while a frame of its old name is in
 * the ring.
 */
#define MODEL_NAMES 300
#define MODEL_SLOTS 512

struct model_row {
    int name; /* index into the pool, -1: unused */
    int64_t last;
};

static int
model_frames_gone(const struct model_row *row, uint64_t head)
{
    return row->last < 0 || head - (uint64_t)row->last > MODEL_SLOTS;
}

static int
model_in(int name, const int *set, int n)
{
    for (int i = 0; i < n; i++) {
        if (set[i] == name)
            return 1;
    }
    return 0;
}

static void
test_stream_table_random_reloads(void)
{
    static char pool[MODEL_NAMES][24];
    struct model_row rows[SHM_MAX_STREAMS];
    struct shm *s = shm_create(1, MODEL_SLOTS, 256, ADDRTAB_MIN_SLOTS);
    int running[33], nrunning = 0, accepted = 0, refused = 0, reused = 0;
    unsigned seed = 12345;
    char err[512];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int i = 0; i < MODEL_NAMES; i++)
        snprintf(pool[i], sizeof(pool[i]), "odds.normalized.s%d", i);
    for (int i = 0; i < SHM_MAX_STREAMS; i++)
        rows[i] = (struct model_row){-1, -1};

    for (int step = 0; step < 3000; step++) {
        int wanted[33], nwanted = 1 + (int)(rand_r(&seed) % 33);
        const char *rp[33], *wp[33];
        int expect_fit, needed = 0, free_rows = 0, got;
        uint64_t head = ring_head(shm_ring(s));

        /* The new configuration: some of the running streams, some new. */
        for (int i = 0; i < nwanted; i++) {
            int pick;
            do {
                pick = nrunning && rand_r(&seed) % 2 ? running[rand_r(&seed) % (unsigned)nrunning]
                                                     : (int)(rand_r(&seed) % MODEL_NAMES);
            } while (model_in(pick, wanted, i));
            wanted[i] = pick;
        }
        for (int i = 0; i < nrunning; i++)
            rp[i] = pool[running[i]];
        for (int i = 0; i < nwanted; i++)
            wp[i] = pool[wanted[i]];

        /* The model's verdict. */
        for (int i = 0; i < nwanted + nrunning; i++) {
            int name = i < nwanted ? wanted[i] : running[i - nwanted];
            int has = 0;
            if (i >= nwanted && model_in(name, wanted, nwanted))
                continue;
            for (int r = 0; r < SHM_MAX_STREAMS; r++)
                has |= rows[r].name == name;
            needed += !has;
        }
        for (int r = 0; r < SHM_MAX_STREAMS; r++)
            free_rows += rows[r].name < 0 || (!model_in(rows[r].name, running, nrunning) &&
                                              !model_in(rows[r].name, wanted, nwanted) &&
                                              model_frames_gone(&rows[r], head));
        expect_fit = needed <= free_rows;
        got = shm_streams_fit(s, rp, (size_t)nrunning, wp, (size_t)nwanted, err, sizeof(err)) == 0;
        CHECK_INT(got, expect_fit);
        if (got != expect_fit)
            break;

        if (got) {
            /* The new ingest takes its rows. */
            accepted++;
            for (int i = 0; i < nwanted; i++) {
                int r = shm_stream_index(s, pool[wanted[i]], wp, (size_t)nwanted);
                CHECK(r >= 0);
                if (r < 0)
                    break;
                if (rows[r].name != wanted[i]) {
                    /* Taken: unused, or no frame of its old stream left. */
                    CHECK(rows[r].name < 0 || (!model_in(rows[r].name, wanted, nwanted) &&
                                               model_frames_gone(&rows[r], head)));
                    reused += rows[r].name >= 0;
                    rows[r] = (struct model_row){wanted[i], -1};
                }
                CHECK_STR(row_name(s, (uint32_t)r), pool[wanted[i]]);
            }
            memcpy(running, wanted, sizeof(wanted));
            nrunning = nwanted;
        } else {
            refused++;
        }
        /* Entries on a few of the running streams. */
        for (int n = (int)(rand_r(&seed) % 40); n > 0; n--) {
            int name = running[rand_r(&seed) % (unsigned)nrunning];
            for (int r = 0; r < SHM_MAX_STREAMS; r++) {
                if (rows[r].name == name) {
                    rows[r].last = (int64_t)ring_head(shm_ring(s));
                    publish_for(s, r);
                }
            }
        }
    }
    printf("#   %d reloads applied, %d refused, %d rows reused\n", accepted, refused, reused);
    CHECK(accepted > 100 && refused > 100 && reused > 100);
    shm_destroy(s);
}

/* Worker i's counters, each a distinct value derived from base. */
static void
set_worker(struct shm *s, uint32_t i, uint64_t base)
{
    struct shm_worker *w = &s->workers[i];

    atomic_store(&w->active_clients, base + 1);
    atomic_store(&w->total_connections, base + 2);
    atomic_store(&w->total_messages, base + 3);
    atomic_store(&w->dropped_messages, base + 4);
    atomic_store(&w->slow_disconnects, base + 5);
    atomic_store(&w->ring_missed, base + 6);
    atomic_store(&w->invalid_frames, base + 7);
    atomic_store(&w->client_errors, base + 8);
}

static void
publish_n(struct ring *r, int n)
{
    struct ring_frame_meta meta = {0, 1, 0, 0, 0};
    char byte = 'x';

    for (int i = 0; i < n; i++)
        ring_publish(r, &byte, 1, &meta);
}

static void
test_totals_sum(void)
{
    struct shm *s = shm_create(3, 1024, 4096, ADDRTAB_MIN_SLOTS);
    struct shm_totals t;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    set_worker(s, 0, 100);
    set_worker(s, 1, 2000);
    set_worker(s, 2, 30000);

    memset(&t, 0xff, sizeof(t));
    shm_totals(s, &t);
    CHECK_INT(t.active_clients, 101 + 2001 + 30001);
    CHECK_INT(t.total_connections, 102 + 2002 + 30002);
    CHECK_INT(t.total_messages, 103 + 2003 + 30003);
    CHECK_INT(t.dropped_messages, 104 + 2004 + 30004);
    CHECK_INT(t.slow_disconnects, 105 + 2005 + 30005);
    CHECK_INT(t.ring_missed, 106 + 2006 + 30006);
    CHECK_INT(t.invalid_frames, 107 + 2007 + 30007);
    CHECK_INT(t.client_errors, 108 + 2008 + 30008);
    CHECK_INT(t.broadcast_usage, 0);
    shm_destroy(s);
}

static void
test_totals_broadcast_usage(void)
{
    struct shm *s = shm_create(4, 1024, 4096, ADDRTAB_MIN_SLOTS);
    struct shm_totals t;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    publish_n(shm_ring(s), 10);

    /* Nobody alive: nothing is waiting to be read. */
    shm_totals(s, &t);
    CHECK_INT(t.broadcast_usage, 0);

    /* Two live listening workers at 4 and 8: the slowest sets the usage. */
    atomic_store(&s->workers[0].pid, 1001);
    atomic_store(&s->workers[0].listening, 1);
    atomic_store(&s->workers[0].ring_next, 8);
    atomic_store(&s->workers[1].pid, 1002);
    atomic_store(&s->workers[1].listening, 1);
    atomic_store(&s->workers[1].ring_next, 4);
    /* Dead (pid 0) with a stale cursor at 0: ignored. */
    atomic_store(&s->workers[2].pid, 0);
    atomic_store(&s->workers[2].listening, 1);
    atomic_store(&s->workers[2].ring_next, 0);
    /* Alive but not listening yet (still starting): ignored. */
    atomic_store(&s->workers[3].pid, 1004);
    atomic_store(&s->workers[3].listening, 0);
    atomic_store(&s->workers[3].ring_next, 1);
    shm_totals(s, &t);
    CHECK_INT(t.broadcast_usage, 6);

    /* Once worker 3 listens, it is the slowest. */
    atomic_store(&s->workers[3].listening, 1);
    shm_totals(s, &t);
    CHECK_INT(t.broadcast_usage, 9);

    /* Everyone caught up. */
    for (int i = 0; i < 4; i++)
        atomic_store(&s->workers[i].ring_next, 10);
    shm_totals(s, &t);
    CHECK_INT(t.broadcast_usage, 0);
    shm_destroy(s);
}

static void
test_worker_retire(void)
{
    struct shm *s = shm_create(2, 1024, 4096, ADDRTAB_MIN_SLOTS);
    struct shm_totals before, after;
    struct shm_worker *w;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    publish_n(shm_ring(s), 5);
    set_worker(s, 0, 100);
    set_worker(s, 1, 2000);
    for (int i = 0; i < 2; i++) {
        atomic_store(&s->workers[i].pid, 500 + i);
        atomic_store(&s->workers[i].listening, 1);
    }
    atomic_store(&s->workers[0].ring_next, 1);
    atomic_store(&s->workers[1].ring_next, 5);
    atomic_store(&s->workers[0].open_connections, 7);
    atomic_store(&s->workers[0].conflated_clients, 2);
    atomic_store(&s->workers[0].closes[shm_close_slot(1008)], 3);
    hist_observe(&s->workers[0].delivery_latency, 700);
    shm_totals(s, &before);
    CHECK_INT(before.broadcast_usage, 4);

    shm_worker_retire(s, 0);
    w = &s->workers[0];
    /* What it held of the present is gone ... */
    CHECK_INT(atomic_load(&w->pid), 0);
    CHECK_INT(atomic_load(&w->listening), 0);
    CHECK_INT(atomic_load(&w->active_clients), 0);
    CHECK_INT(atomic_load(&w->open_connections), 0);
    CHECK_INT(atomic_load(&w->conflated_clients), 0);
    /* ... its counters stay in the slot, for the next worker to add to:
     * per-slot counters never go backwards (Prometheus's worker="n"). */
    CHECK_INT(atomic_load(&w->total_connections), 102);
    CHECK_INT(atomic_load(&w->total_messages), 103);
    CHECK_INT(atomic_load(&w->dropped_messages), 104);
    CHECK_INT(atomic_load(&w->slow_disconnects), 105);
    CHECK_INT(atomic_load(&w->ring_missed), 106);
    CHECK_INT(atomic_load(&w->invalid_frames), 107);
    CHECK_INT(atomic_load(&w->client_errors), 108);
    CHECK_INT(atomic_load(&w->closes[shm_close_slot(1008)]), 3);
    CHECK_INT(atomic_load(&w->delivery_latency.buckets[hist_bucket(700)]), 1);
    /* The other worker is untouched. */
    CHECK_INT(atomic_load(&s->workers[1].pid), 501);
    CHECK_INT(atomic_load(&s->workers[1].total_messages), 2003);

    /* Cumulative totals do not move; the dead worker's clients and its ring
     * position stop counting. */
    shm_totals(s, &after);
    CHECK_INT(after.total_connections, before.total_connections);
    CHECK_INT(after.total_messages, before.total_messages);
    CHECK_INT(after.dropped_messages, before.dropped_messages);
    CHECK_INT(after.slow_disconnects, before.slow_disconnects);
    CHECK_INT(after.ring_missed, before.ring_missed);
    CHECK_INT(after.invalid_frames, before.invalid_frames);
    CHECK_INT(after.client_errors, before.client_errors);
    CHECK_INT(after.active_clients, 2001);
    CHECK_INT(after.broadcast_usage, 0);

    /* Retiring the same slot again (a second reap) changes nothing. */
    shm_worker_retire(s, 0);
    shm_totals(s, &after);
    CHECK_INT(after.total_messages, before.total_messages);

    /* A replacement worker adds on top of the slot's counts. */
    atomic_store(&s->workers[0].pid, 600);
    atomic_fetch_add(&s->workers[0].total_messages, 9);
    shm_totals(s, &after);
    CHECK_INT(after.total_messages, before.total_messages + 9);
    shm_destroy(s);
}

static void
test_close_slots_and_refusal_names(void)
{
    /* Every code the service closes with has its own slot, in table order;
     * anything else shares the last. */
    for (unsigned i = 0; i < SHM_CLOSE_SLOTS - 1; i++) {
        char code[16];
        CHECK_INT(shm_close_slot(shm_close_codes[i]), i);
        snprintf(code, sizeof(code), "%d", shm_close_codes[i]);
        CHECK_STR(shm_close_names[i], code); /* the label is the code */
    }
    CHECK_STR(shm_close_names[SHM_CLOSE_SLOTS - 1], "other");
    CHECK_INT(shm_close_slot(1008), 5);
    CHECK_INT(shm_close_slot(4001), 8);
    CHECK_INT(shm_close_slot(0), SHM_CLOSE_SLOTS - 1);
    CHECK_INT(shm_close_slot(1006), SHM_CLOSE_SLOTS - 1);
    CHECK_INT(shm_close_slot(4999), SHM_CLOSE_SLOTS - 1);
    /* Label values: present, distinct, lower-case words. */
    for (unsigned i = 0; i < SHM_REFUSALS; i++) {
        CHECK(shm_refusal_names[i] != NULL);
        if (shm_refusal_names[i] == NULL)
            continue;
        CHECK(strspn(shm_refusal_names[i], "abcdefghijklmnopqrstuvwxyz_") ==
              strlen(shm_refusal_names[i]));
        for (unsigned j = 0; j < i; j++)
            CHECK(strcmp(shm_refusal_names[i], shm_refusal_names[j]) != 0);
    }
}

static void
test_stream_row_freshness_reset_on_reuse(void)
{
    /* A row given to another stream starts its freshness over: the new
     * stream must not inherit the old one's lag or newest entry. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    const char *const none[] = {"b"};
    int r;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int i = 0; i < SHM_MAX_STREAMS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "s%d", i);
        CHECK_INT(shm_stream_index(s, name, NULL, 0), i);
    }
    atomic_store(&s->streams[0].reading, 1);
    atomic_store(&s->streams[0].lag_known, 1);
    atomic_store(&s->streams[0].lag, 12);
    atomic_store(&s->streams[0].lag_at_ms, 1000);
    atomic_store(&s->streams[0].read_ms, 1700000000000ULL);
    atomic_store(&s->streams[0].entries_read, 5);
    /* The table is full and none of its frames is in the ring: "b" takes
     * the first row. */
    r = shm_stream_index(s, "b", none, 1);
    CHECK_INT(r, 0);
    CHECK_INT(atomic_load(&s->streams[0].reading), 0);
    CHECK_INT(atomic_load(&s->streams[0].lag_known), 0);
    CHECK_INT(atomic_load(&s->streams[0].lag), 0);
    CHECK_INT(atomic_load(&s->streams[0].lag_at_ms), 0);
    CHECK_INT(atomic_load(&s->streams[0].read_ms), 0);
    CHECK_INT(atomic_load(&s->streams[0].entries_read), 0);
    shm_destroy(s);
}

static void
test_geometry_is_the_process_copy(void)
{
    /* A stray write (or a hostile process) rewrites the region's header and
     * the ring's geometry: nothing any process computes changes. */
    struct shm *s = shm_create(3, 1024, 4096, ADDRTAB_MIN_SLOTS);
    struct ring *r;
    struct ring_reader rd;
    struct ring_frame_meta meta = {0, 5, 6, 0, 0}, got;
    struct shm_totals t;
    char buf[4096];
    uint32_t len;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    r = shm_ring(s);
    ring_reader_init(r, &rd);
    s->hdr.nworkers = 0x7ffffff0;
    s->hdr.size = 1ULL << 50;
    s->hdr.ring_offset = 1ULL << 44;
    r->hdr->nslots = 1u << 30;
    r->hdr->max_frame = UINT32_MAX;
    r->hdr->data_size = 1ULL << 62;
    r->hdr->slots_offset = 1ULL << 44;
    r->hdr->data_offset = 1ULL << 45;
    CHECK_INT(shm_nworkers(s), 3);
    CHECK(shm_ring(s) == r);
    CHECK_INT(r->nslots, 1024);
    CHECK_INT(r->max_frame, 4096);
    CHECK_INT(shm_attach(s, 3, 1024, 4096, ADDRTAB_MIN_SLOTS), 0);
    for (int i = 0; i < 2000; i++)
        CHECK(ring_publish(r, "frame", 5, &meta) == i);
    for (int i = 0; i < 3; i++) {
        atomic_store(&s->workers[i].pid, 100 + i);
        atomic_store(&s->workers[i].listening, 1);
        atomic_store(&s->workers[i].ring_next, 1990);
        atomic_store(&s->workers[i].active_clients, 1);
    }
    shm_totals(s, &t);
    CHECK_INT(t.active_clients, 3);
    CHECK_INT(t.broadcast_usage, 10);
    CHECK_INT(ring_read(r, &rd, buf, sizeof(buf), &len, &got), 1);
    CHECK_INT(rd.missed, 2000 - 1024);
    CHECK_INT(len, 5);
    CHECK(memcmp(buf, "frame", 5) == 0);
    /* shm_destroy unmaps by the private size too. */
    shm_destroy(s);
}

static void
test_attach_checks_the_configuration(void)
{
    struct shm *s = shm_create(2, 2048, 8192, ADDRTAB_MIN_SLOTS);

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_attach(s, 2, 2048, 8192, ADDRTAB_MIN_SLOTS), 0);
    CHECK_INT(shm_attach(s, 3, 2048, 8192, ADDRTAB_MIN_SLOTS), -1);
    CHECK_INT(shm_attach(s, 2, 4096, 8192, ADDRTAB_MIN_SLOTS), -1);
    CHECK_INT(shm_attach(s, 2, 2048, 1 << 20, ADDRTAB_MIN_SLOTS), -1);
    CHECK_INT(shm_attach(s, 0, 2048, 8192, ADDRTAB_MIN_SLOTS), -1);
    shm_destroy(s);
}

/* What a child tries to write after shm_protect. */
enum probe_target {
    PROBE_HEADER,
    PROBE_SUPERVISOR_PART,
    PROBE_DRAIN,
    PROBE_INGEST,
    PROBE_STREAMS,
    PROBE_OWN_SLOT,
    PROBE_OTHER_SLOT,
    PROBE_OWN_IPTABLE,
    PROBE_OTHER_IPTABLE,
    PROBE_RING_HEAD,
    PROBE_RING_DATA_END,
    PROBE_LOCAL_COPY,
    PROBE_INGEST_HIST,
    PROBE_OWN_HIST,
};

struct probe {
    struct shm *s;
    enum shm_role role;
    uint32_t worker;
    enum probe_target target;
};

/* The exit status of a probe whose write faulted: its own handler, so a
 * sanitizer's SIGSEGV report (exit 1) cannot pass for one. */
#define PROBE_FAULTED 42

static void
probe_on_segv(int sig)
{
    (void)sig;
    _exit(PROBE_FAULTED);
}

static int
probe_child(void *arg)
{
    struct probe *p = arg;
    struct shm *s = p->s;
    struct ring *r = shm_ring(s);
    struct sigaction sa;
    char err[256];
    uint32_t own = p->worker, other = p->worker ? 0 : 1;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = probe_on_segv;
    if (sigaction(SIGSEGV, &sa, NULL) != 0)
        return 5;

    if (shm_protect(s, p->role, p->worker, err, sizeof(err)) != 0) {
        printf("#   %s\n", err);
        return 3;
    }
    /* Reading anything is fine. */
    if (s->hdr.magic != SHM_MAGIC || ring_head(r) != 0)
        return 4;
    switch (p->target) {
    case PROBE_HEADER:
        s->hdr.nworkers = 99;
        break;
    case PROBE_SUPERVISOR_PART:
        atomic_store(&s->addrtabs.clears[0], 2);
        break;
    case PROBE_INGEST_HIST:
        hist_observe(&s->ingest_latency, 5);
        break;
    case PROBE_OWN_HIST:
        hist_observe(&s->workers[own].delivery_latency, 5);
        break;
    case PROBE_DRAIN:
        atomic_store(&s->drain.draining, 1);
        break;
    case PROBE_INGEST:
        atomic_store(&s->ingest.entries_read, 1);
        break;
    case PROBE_STREAMS:
        s->streams[SHM_MAX_STREAMS - 1].name[0] = 'x';
        break;
    case PROBE_OWN_SLOT:
        atomic_store(&s->workers[own].total_messages, 1);
        break;
    case PROBE_OTHER_SLOT:
        atomic_store(&s->workers[other].total_messages, 1);
        break;
    case PROBE_OWN_IPTABLE:
        memset((char *)s + s->addrtabs.offset + own * s->addrtabs.stride, 0, s->addrtabs.stride);
        break;
    case PROBE_OTHER_IPTABLE:
        memset((char *)s + s->addrtabs.offset + other * s->addrtabs.stride, 0, s->addrtabs.stride);
        break;
    case PROBE_RING_HEAD:
        atomic_store(&r->hdr->head, 0);
        break;
    case PROBE_RING_DATA_END:
        r->data[r->data_size - 1] = 1;
        break;
    case PROBE_LOCAL_COPY:
        r->nslots = 1;
        break;
    }
    return 0;
}

static void
test_protect_each_role_writes_its_own_parts(void)
{
    static const struct {
        enum shm_role role;
        enum probe_target target;
        int faults;
    } cases[] = {
        {SHM_ROLE_WORKER, PROBE_HEADER, 1},          {SHM_ROLE_WORKER, PROBE_SUPERVISOR_PART, 1},
        {SHM_ROLE_WORKER, PROBE_INGEST, 1},          {SHM_ROLE_WORKER, PROBE_STREAMS, 1},
        {SHM_ROLE_WORKER, PROBE_OWN_SLOT, 0},        {SHM_ROLE_WORKER, PROBE_OTHER_SLOT, 1},
        {SHM_ROLE_WORKER, PROBE_OWN_IPTABLE, 0},     {SHM_ROLE_WORKER, PROBE_OTHER_IPTABLE, 1},
        {SHM_ROLE_WORKER, PROBE_RING_HEAD, 1},       {SHM_ROLE_WORKER, PROBE_RING_DATA_END, 1},
        {SHM_ROLE_WORKER, PROBE_LOCAL_COPY, 1},      {SHM_ROLE_INGEST, PROBE_HEADER, 1},
        {SHM_ROLE_INGEST, PROBE_SUPERVISOR_PART, 1}, {SHM_ROLE_INGEST, PROBE_INGEST, 0},
        {SHM_ROLE_INGEST, PROBE_STREAMS, 0},         {SHM_ROLE_INGEST, PROBE_OWN_SLOT, 1},
        {SHM_ROLE_INGEST, PROBE_OTHER_IPTABLE, 1},   {SHM_ROLE_INGEST, PROBE_RING_HEAD, 0},
        {SHM_ROLE_INGEST, PROBE_RING_DATA_END, 0},   {SHM_ROLE_INGEST, PROBE_LOCAL_COPY, 1},
        {SHM_ROLE_WORKER, PROBE_INGEST_HIST, 1},     {SHM_ROLE_WORKER, PROBE_OWN_HIST, 0},
        {SHM_ROLE_INGEST, PROBE_INGEST_HIST, 0},     {SHM_ROLE_INGEST, PROBE_OWN_HIST, 1},
        {SHM_ROLE_WORKER, PROBE_DRAIN, 1},           {SHM_ROLE_INGEST, PROBE_DRAIN, 1},
    };
    struct shm *s = shm_create(3, 1024, 4096, ADDRTAB_MIN_SLOTS);
    char err[256];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct probe p = {s, cases[i].role, 1, cases[i].target};
        int rc = test_run_in_child(probe_child, &p, 5);

        if (rc != (cases[i].faults ? PROBE_FAULTED : 0))
            printf("#   case %zu (role %d, target %d): child ended with %d\n", i, cases[i].role,
                   cases[i].target, rc);
        CHECK_INT(rc, cases[i].faults ? PROBE_FAULTED : 0);
    }
    /* The parent (the supervisor) is untouched: it writes everything. */
    atomic_store(&s->addrtabs.clears[2], 0);
    s->streams[0].name[0] = 'x';
    /* A slot that does not exist is refused, and nothing is protected. */
    CHECK_INT(shm_protect(s, SHM_ROLE_WORKER, 3, err, sizeof(err)), -1);
    CHECK(strstr(err, "worker slot 3 of 3") != NULL);
    atomic_store(&s->addrtabs.clears[2], 0);
    shm_destroy(s);
}

/* The drain (struct shm_drain): none at first; begun with its times; a
 * later call moves the deadline forward only, never the start. */
static void
test_drain_flag(void)
{
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    uint64_t started = 7, deadline = 7;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_draining(s, &started, &deadline), 0);
    CHECK_INT(started, 7); /* untouched */
    shm_drain_begin(s, 1700000000000ULL, 5000);
    CHECK_INT(shm_draining(s, &started, &deadline), 1);
    CHECK_INT(started, 1700000000000ULL);
    CHECK_INT(deadline, 5000);
    CHECK_INT(shm_draining(s, NULL, NULL), 1);
    shm_drain_begin(s, 1800000000000ULL, 9000); /* later: ignored */
    CHECK_INT(shm_draining(s, &started, &deadline), 1);
    CHECK_INT(started, 1700000000000ULL);
    CHECK_INT(deadline, 5000);
    shm_drain_begin(s, 0, 3000); /* a second signal: sooner */
    CHECK_INT(shm_draining(s, &started, &deadline), 1);
    CHECK_INT(started, 1700000000000ULL);
    CHECK_INT(deadline, 3000);
    shm_destroy(s);
}

static void
test_address_tables_layout(void)
{
    long page = sysconf(_SC_PAGESIZE);
    uint32_t slots = addrtab_slots_for(100000);
    struct shm *s = shm_create(3, 1024, 4096, slots);

    CHECK(s != NULL);
    if (s == NULL)
        return;
    /* After the fixed part, each table on pages of its own, then the ring:
     * nothing overlaps, and a table can be dropped page by page. */
    CHECK(s->addrtabs.offset >= sizeof(struct shm));
    CHECK_INT(s->addrtabs.offset % page, 0);
    CHECK_INT(s->addrtabs.stride % page, 0);
    CHECK(s->addrtabs.stride >= addrtab_bytes(slots));
    CHECK_INT(s->addrtabs.nslots, slots);
    CHECK_INT(s->hdr.ring_offset, s->addrtabs.offset + 3 * s->addrtabs.stride);
    for (uint32_t i = 0; i < 3; i++) {
        struct addrtab t = shm_addrtab(s, i);
        CHECK((char *)t.slots == (char *)s + s->addrtabs.offset + i * s->addrtabs.stride);
        CHECK_INT(t.nslots, slots);
        CHECK(t.full == &s->workers[i].addrtab_full && t.clears == &s->addrtabs.clears[i]);
        /* The last entry is inside the mapping and before the next table. */
        CHECK((char *)&t.slots[slots - 1] + sizeof(struct addrtab_entry) <=
              (char *)s + s->addrtabs.offset + (i + 1) * s->addrtabs.stride);
    }
    shm_destroy(s);

    /* Table sizes that are not a power of two, or below the minimum. */
    CHECK(shm_create(1, 1024, 4096, 0) == NULL);
    CHECK(shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS / 2) == NULL);
    CHECK(shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS + 1) == NULL);
}

static struct addrtab_key
v6_key(unsigned char last)
{
    struct addrtab_key k = {{0x20, 0x01, 0x0d, 0xb8, [15] = 0}};

    k.b[7] = last;
    return k;
}

static void
test_address_counts_across_workers(void)
{
    unsigned char hkey[HASH_KEY_LEN] = {7};
    struct shm *s = shm_create(3, 1024, 2048, ADDRTAB_MIN_SLOTS);
    struct addrtab_key k = v6_key(1), other = v6_key(2);
    struct addrtab t[3];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    hash_set_key(hkey);
    for (uint32_t i = 0; i < 3; i++)
        t[i] = shm_addrtab(s, i);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_CLIENTS), 0);
    CHECK_INT(addrtab_add(&t[0], &k, ADDRTAB_CLIENTS, +1), 0);
    CHECK_INT(addrtab_add(&t[1], &k, ADDRTAB_CLIENTS, +2), 0);
    CHECK_INT(addrtab_add(&t[2], &k, ADDRTAB_CLIENTS, +1), 0);
    CHECK_INT(addrtab_add(&t[2], &k, ADDRTAB_FILTER_VALUES, +900), 0);
    CHECK_INT(addrtab_add(&t[2], &other, ADDRTAB_CLIENTS, +5), 0);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_CLIENTS), 4);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_FILTER_VALUES), 900);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_CONNECTIONS), 0);
    CHECK_INT(addrtab_add(&t[1], &k, ADDRTAB_CLIENTS, -1), 0);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_CLIENTS), 3);
    /* A dead worker's clients and values are gone with it, and only its;
     * its table (given back to the system) counts from zero again. */
    shm_worker_retire(s, 2);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_CLIENTS), 2);
    CHECK_INT(shm_addr_count(s, &k, ADDRTAB_FILTER_VALUES), 0);
    CHECK_INT(shm_addr_count(s, &other, ADDRTAB_CLIENTS), 0);
    CHECK_INT(atomic_load(&s->addrtabs.clears[2]) % 2, 0);
    for (uint32_t i = 0; i < ADDRTAB_MIN_SLOTS; i++)
        CHECK_INT(atomic_load(&t[2].slots[i].seq), 0);
    CHECK_INT(addrtab_add(&t[2], &other, ADDRTAB_CLIENTS, +1), 0);
    CHECK_INT(shm_addr_count(s, &other, ADDRTAB_CLIENTS), 1);
    CHECK_INT(addrtab_count(&t[0], &k, ADDRTAB_CLIENTS), 1);
    CHECK_INT(addrtab_count(&t[1], &k, ADDRTAB_CLIENTS), 1);
    shm_destroy(s);
}

static void
test_region_size(void)
{
    /* What `-t` judges is what shm_create maps. */
    struct shm *s = shm_create(2, 2048, 8192, ADDRTAB_MIN_SLOTS);

    CHECK(s != NULL);
    if (s != NULL) {
        CHECK_INT(s->hdr.size + SHM_PAGE,
                  shm_region_size(2, 2048, 8192, ADDRTAB_MIN_SLOTS)); /* + private page */
        shm_destroy(s);
    }
    /* The largest ring, computed without mapping it: 16M slots of 64 bytes
     * and 512 bytes of data per slot, 9 GiB in all, plus the fixed parts
     * (pages rounded up). */
    CHECK(shm_region_size(64, 1u << 24, 4u << 20, ADDRTAB_MIN_SLOTS) >=
          (64ULL << 24) + (512ULL << 24));
    CHECK(shm_region_size(64, 1u << 24, 4u << 20, ADDRTAB_MIN_SLOTS) <=
          (64ULL << 24) + (512ULL << 24) + sizeof(struct shm) +
              64 * (addrtab_bytes(ADDRTAB_MIN_SLOTS) + SHM_PAGE) + 4 * SHM_PAGE);
    /* The address tables count: a larger table, a larger region. */
    CHECK(shm_region_size(2, 1024, 4096, 1u << 20) >
          shm_region_size(2, 1024, 4096, ADDRTAB_MIN_SLOTS) + 2 * (31ULL << 20));
}

TEST_MAIN(TEST(test_create_layout), TEST(test_create_ring_usable), TEST(test_create_refused),
          TEST(test_geometry_is_the_process_copy), TEST(test_attach_checks_the_configuration),
          TEST(test_protect_each_role_writes_its_own_parts), TEST(test_stream_index),
          TEST(test_stream_name_bounded), TEST(test_stream_table_full),
          TEST(test_stream_index_stable), TEST(test_stream_row_reused_once_out_of_the_ring),
          TEST(test_stream_row_never_published_is_free), TEST(test_streams_fit),
          TEST(test_streams_fit_counts_running_without_rows),
          TEST(test_stream_table_random_reloads), TEST(test_totals_sum),
          TEST(test_totals_broadcast_usage), TEST(test_worker_retire),
          TEST(test_close_slots_and_refusal_names), TEST(test_stream_row_freshness_reset_on_reuse),
          TEST(test_address_tables_layout), TEST(test_address_counts_across_workers),
          TEST(test_region_size), TEST(test_drain_flag))
