/*
 * test_shm: the shared region's layout, its stream table and the totals the
 * /metrics endpoint reports.  Totals must survive a worker's death (its
 * counters move to `retired`) and broadcast_usage must follow only the
 * workers that are alive and listening, or one dead slot would pin it at
 * the whole ring.  Client addresses are counted in one table per worker
 * (addrtab.h, tested on its own in test_addrtab.c): here, where the tables
 * sit, that a count is the sum over the workers, and that a dead worker's
 * table is cleared without touching the others.
 */
#include "common/hash.h"
#include "common/shm.h"
#include "common/timeutil.h"

#include "test.h"

#include <unistd.h>

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
    /* Four address tables between the fixed part and the ring
     * (test_address_tables_layout). */
    CHECK_INT(s->hdr.ring_offset, s->addrtabs.offset + 4 * s->addrtabs.stride);
    CHECK_INT(s->hdr.size, s->hdr.ring_offset + ring_region_size(nslots, data_size));
    CHECK(s->hdr.started_ms >= before && s->hdr.started_ms <= time_now_ms());
    /* Page-aligned mapping, and the ring on a cache line within it. */
    CHECK_INT((uintptr_t)s % 4096, 0);
    r = shm_ring(s);
    CHECK_INT((uintptr_t)r % RING_CACHELINE, 0);
    CHECK_INT(r->nslots, nslots);
    CHECK_INT(r->max_frame, max_frame);
    CHECK_INT(r->data_size, data_size);
    CHECK(r->data_size >= 4ULL * max_frame);
    CHECK_INT(ring_head(r), 0);
    /* Fresh counters and an empty stream table. */
    CHECK_INT(s->ingest.entries_published, 0);
    CHECK_INT(s->workers[0].pid, 0);
    CHECK(shm_stream_name(s, 0) == NULL);
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
    struct ring_frame_meta meta = {3, 1700000000000ULL, 7}, got;
    char frame[2048], buf[2048];
    uint32_t len;
    int64_t seq;

    CHECK(s != NULL);
    if (s == NULL)
        return;
    r = shm_ring(s);
    CHECK((char *)r + ring_region_size(r->nslots, r->data_size) == (char *)s + s->hdr.size);
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

static void
test_stream_index(void)
{
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    char name[SHM_STREAM_NAME + 1];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, "odds.normalized.basketball_nba"), 0);
    CHECK_INT(shm_stream_index(s, "opportunities"), 1);
    CHECK_INT(shm_stream_index(s, "odds.normalized.basketball_nba"), 0);
    CHECK_INT(shm_stream_index(s, "opportunities"), 1);
    /* A prefix of an existing name is a different stream. */
    CHECK_INT(shm_stream_index(s, "odds.normalized"), 2);
    CHECK_STR(shm_stream_name(s, 0), "odds.normalized.basketball_nba");
    CHECK_STR(shm_stream_name(s, 1), "opportunities");
    CHECK_STR(shm_stream_name(s, 2), "odds.normalized");
    CHECK(shm_stream_name(s, 3) == NULL);
    CHECK(shm_stream_name(s, SHM_MAX_STREAMS) == NULL);
    CHECK(shm_stream_name(s, UINT32_MAX) == NULL);

    /* SHM_STREAM_NAME - 1 bytes fit with the NUL; one more does not, and a
     * refused name takes no slot. */
    memset(name, 'n', sizeof(name));
    name[SHM_STREAM_NAME] = '\0';
    CHECK_INT(shm_stream_index(s, name), -1);
    name[SHM_STREAM_NAME - 1] = '\0';
    CHECK_INT(shm_stream_index(s, name), 3);
    CHECK_STR(shm_stream_name(s, 3), name);
    CHECK(shm_stream_name(s, 4) == NULL);
    shm_destroy(s);
}

static void
test_stream_table_full(void)
{
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);
    char name[32];

    CHECK(s != NULL);
    if (s == NULL)
        return;
    for (int i = 0; i < SHM_MAX_STREAMS; i++) {
        snprintf(name, sizeof(name), "stream-%d", i);
        CHECK_INT(shm_stream_index(s, name), i);
    }
    CHECK_INT(shm_stream_index(s, "one-too-many"), -1);
    /* A full table still finds what it holds. */
    CHECK_INT(shm_stream_index(s, "stream-0"), 0);
    CHECK_INT(shm_stream_index(s, "stream-63"), SHM_MAX_STREAMS - 1);
    CHECK_STR(shm_stream_name(s, SHM_MAX_STREAMS - 1), "stream-63");
    shm_destroy(s);
}

static void
test_stream_index_stable(void)
{
    /* Indices are never reused and the last ids start at zero, so a
     * restarted ingest that adds streams in another order still agrees with
     * frames already in the ring. */
    struct shm *s = shm_create(1, 1024, 4096, ADDRTAB_MIN_SLOTS);

    CHECK(s != NULL);
    if (s == NULL)
        return;
    CHECK_INT(shm_stream_index(s, "b"), 0);
    atomic_store(&s->streams[0].last_ms, 42);
    CHECK_INT(shm_stream_index(s, "a"), 1);
    CHECK_INT(atomic_load(&s->streams[1].last_ms), 0);
    CHECK_INT(atomic_load(&s->streams[1].last_seq), 0);
    CHECK_INT(shm_stream_index(s, "b"), 0);
    CHECK_INT(atomic_load(&s->streams[0].last_ms), 42);
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
    struct ring_frame_meta meta = {0, 1, 0};
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
    atomic_store(&s->retired.total_connections, 1000000);
    atomic_store(&s->retired.total_messages, 2000000);
    atomic_store(&s->retired.dropped_messages, 3000000);
    atomic_store(&s->retired.slow_disconnects, 4000000);
    atomic_store(&s->retired.ring_missed, 5000000);
    atomic_store(&s->retired.invalid_frames, 6000000);
    atomic_store(&s->retired.client_errors, 7000000);

    memset(&t, 0xff, sizeof(t));
    shm_totals(s, &t);
    /* Retired workers have no clients: active_clients is live workers only. */
    CHECK_INT(t.active_clients, 101 + 2001 + 30001);
    CHECK_INT(t.total_connections, 1000000 + 102 + 2002 + 30002);
    CHECK_INT(t.total_messages, 2000000 + 103 + 2003 + 30003);
    CHECK_INT(t.dropped_messages, 3000000 + 104 + 2004 + 30004);
    CHECK_INT(t.slow_disconnects, 4000000 + 105 + 2005 + 30005);
    CHECK_INT(t.ring_missed, 5000000 + 106 + 2006 + 30006);
    CHECK_INT(t.invalid_frames, 6000000 + 107 + 2007 + 30007);
    CHECK_INT(t.client_errors, 7000000 + 108 + 2008 + 30008);
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
    atomic_store(&s->retired.total_messages, 50);
    for (int i = 0; i < 2; i++) {
        atomic_store(&s->workers[i].pid, 500 + i);
        atomic_store(&s->workers[i].listening, 1);
    }
    atomic_store(&s->workers[0].ring_next, 1);
    atomic_store(&s->workers[1].ring_next, 5);
    shm_totals(s, &before);
    CHECK_INT(before.broadcast_usage, 4);

    shm_worker_retire(s, 0);
    w = &s->workers[0];
    CHECK_INT(atomic_load(&w->pid), 0);
    CHECK_INT(atomic_load(&w->listening), 0);
    CHECK_INT(atomic_load(&w->active_clients), 0);
    CHECK_INT(atomic_load(&w->total_connections), 0);
    CHECK_INT(atomic_load(&w->total_messages), 0);
    CHECK_INT(atomic_load(&w->dropped_messages), 0);
    CHECK_INT(atomic_load(&w->slow_disconnects), 0);
    CHECK_INT(atomic_load(&w->ring_missed), 0);
    CHECK_INT(atomic_load(&w->invalid_frames), 0);
    CHECK_INT(atomic_load(&w->client_errors), 0);
    CHECK_INT(atomic_load(&s->retired.total_connections), 102);
    CHECK_INT(atomic_load(&s->retired.total_messages), 50 + 103);
    CHECK_INT(atomic_load(&s->retired.dropped_messages), 104);
    CHECK_INT(atomic_load(&s->retired.slow_disconnects), 105);
    CHECK_INT(atomic_load(&s->retired.ring_missed), 106);
    CHECK_INT(atomic_load(&s->retired.invalid_frames), 107);
    CHECK_INT(atomic_load(&s->retired.client_errors), 108);
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

    /* Retiring the same slot again (a second reap) adds nothing. */
    shm_worker_retire(s, 0);
    shm_totals(s, &after);
    CHECK_INT(after.total_messages, before.total_messages);

    /* A replacement worker starts from zero and adds on top. */
    atomic_store(&s->workers[0].pid, 600);
    atomic_store(&s->workers[0].total_messages, 9);
    shm_totals(s, &after);
    CHECK_INT(after.total_messages, before.total_messages + 9);
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
        CHECK(t.full == &s->addrtabs.w[i].full && t.clears == &s->addrtabs.w[i].clears);
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
    CHECK_INT(atomic_load(&s->addrtabs.w[2].clears) % 2, 0);
    for (uint32_t i = 0; i < ADDRTAB_MIN_SLOTS; i++)
        CHECK_INT(atomic_load(&t[2].slots[i].seq), 0);
    CHECK_INT(addrtab_add(&t[2], &other, ADDRTAB_CLIENTS, +1), 0);
    CHECK_INT(shm_addr_count(s, &other, ADDRTAB_CLIENTS), 1);
    CHECK_INT(addrtab_count(&t[0], &k, ADDRTAB_CLIENTS), 1);
    CHECK_INT(addrtab_count(&t[1], &k, ADDRTAB_CLIENTS), 1);
    shm_destroy(s);
}

TEST_MAIN(TEST(test_create_layout), TEST(test_create_ring_usable), TEST(test_create_refused),
          TEST(test_stream_index), TEST(test_stream_table_full), TEST(test_stream_index_stable),
          TEST(test_totals_sum), TEST(test_totals_broadcast_usage), TEST(test_worker_retire),
          TEST(test_address_tables_layout), TEST(test_address_counts_across_workers))
