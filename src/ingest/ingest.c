#include "ingest.h"
#include "../common/decode.h"
#include "../common/hist.h"
#include "../common/log.h"
#include "../common/snaptab.h"
#include "../common/streamid.h"
#include "../common/timeutil.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define INGEST_BLOCK_MS       500 /* bounds how long a SIGTERM (stop, or reload) waits */
#define INGEST_BACKOFF_MIN_MS 100
#define INGEST_BACKOFF_MAX_MS 2000

struct ingest_stream {
    char name[CONF_STREAM_MAX];
    const char *sport; /* default sport_key; NULL for the opportunities stream */
    enum frame_type type;
    int shm_index;
    struct streamid last;       /* last id published to the ring */
    char next_pending[48];      /* pending-phase cursor */
    uint64_t disabled_until_ms; /* monotonic; the key is not a usable stream until then */
};

struct ingest {
    struct shm *shm;
    struct ring *ring;
    struct conf conf;
    char redis_shown[sizeof(((struct conf *)0)->redis_url) + 8]; /* REDIS_URL, password masked */
    char group[2 * CONF_NAME_MAX + 2];
    struct ingest_stream streams[CONF_MAX_SPORTS + 1];
    int nstreams;
    const int *wake_fds;
    int nwake;
    redisContext *redis;
    msgpack_sbuffer frame;
    msgpack_zone zone; /* to find a published frame's key */
    struct snaptab snap;
    int have_snap;
    char epoch_key[CONF_NAME_MAX + 8];
    char epoch[SHM_EPOCH_MAX];
    int lost[CONF_MAX_SPORTS + 1]; /* streams whose history vanished, to announce */
    int nlost;
    uint64_t next_expire_ms;
    uint64_t next_epoch_ms; /* monotonic: when to look at the stored epoch again */
    uint64_t next_lag_ms;   /* monotonic: when to ask Redis for the groups' lag again */
    struct log_ratelimit invalid_rl;
    struct log_ratelimit error_rl;
};

static volatile sig_atomic_t ingest_stop;

static void ingest_note_loss(struct ingest *in, struct ingest_stream *st);
static int ingest_after_groups(struct ingest *in);
static int ingest_load_history(struct ingest *in, struct ingest_stream *st);

static void
ingest_on_signal(int sig)
{
    (void)sig;
    ingest_stop = 1;
}

#define STAT_ADD(field, n)                                                                         \
    atomic_fetch_add_explicit(&in->shm->ingest.field, (n), memory_order_relaxed)

static void
ingest_sleep_ms(uint64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    /* EINTR (SIGTERM) ends the sleep early, which is what we want. */
    (void)nanosleep(&ts, NULL);
}

#define INGEST_STREAM_RETRY_MS 5000
/* Entries of one stream's history read at most to fill the snapshot table
 * (ingest_load_history): a few seconds' work. */
#define INGEST_HISTORY_MAX     2000000
#define INGEST_EPOCH_CHECK_MS  2000

/* Give st its row in the stream table (shm_stream_index): 0, or -1 if none
 * is free, logged; st is then left out of reads and retried later, so one
 * stream without a row stops nothing else.  The supervisor refuses a reload
 * that would leave a stream without one (shm_streams_fit), so this happens
 * only if the table was damaged. */
static int
ingest_assign_row(struct ingest *in, struct ingest_stream *st)
{
    const char *names[CONF_MAX_SPORTS + 1];
    struct shm_stream *row;

    for (int i = 0; i < in->nstreams; i++)
        names[i] = in->streams[i].name;
    st->shm_index = shm_stream_index(in->shm, st->name, names, (size_t)in->nstreams);
    if (st->shm_index < 0) {
        if (log_ratelimit_allow(&in->error_rl))
            LOG_ERROR_KV(LOG_FIELDS(LOG_STR("stream", st->name)),
                         "no free row in the stream table (%d rows) for %s; not reading it, "
                         "retrying in %d s",
                         SHM_MAX_STREAMS, st->name, INGEST_STREAM_RETRY_MS / 1000);
        st->disabled_until_ms = time_mono_ms() + INGEST_STREAM_RETRY_MS;
        return -1;
    }
    row = &in->shm->streams[st->shm_index];
    atomic_store_explicit(&row->reading, 1, memory_order_relaxed);
    st->last.ms = atomic_load_explicit(&row->last_ms, memory_order_relaxed);
    st->last.seq = atomic_load_explicit(&row->last_seq, memory_order_relaxed);
    if (in->have_snap && st->last.ms == 0 && st->last.seq == 0) {
        /* A row given to another stream starts over (shm_stream_index): the
         * table must not keep its previous stream's keys under it. */
        struct streamid pos[SHM_MAX_STREAMS];
        uint64_t applied;
        (void)snaptab_read_header(&in->snap, &applied, pos,
                                  SHM_MAX_STREAMS); /* the writer: never torn */
        if (pos[st->shm_index].ms != 0 || pos[st->shm_index].seq != 0)
            snaptab_drop_stream(&in->snap, (uint32_t)st->shm_index);
    }
    return 0;
}

static void
ingest_setup_streams(struct ingest *in)
{
    const struct conf *c = &in->conf;

    in->nstreams = 0;
    for (int i = 0; i < c->nsports; i++) {
        struct ingest_stream *st = &in->streams[in->nstreams];
        conf_sport_stream(c, i, st->name, sizeof(st->name));
        st->sport = c->sports[i];
        st->type = FRAME_ODDS_UPDATE;
        in->nstreams++;
    }
    if (c->opportunities_stream[0] != '\0') {
        struct ingest_stream *st = &in->streams[in->nstreams++];
        snprintf(st->name, sizeof(st->name), "%s", c->opportunities_stream);
        st->sport = NULL;
        st->type = FRAME_OPPORTUNITY;
    }
    for (int i = 0; i < in->nstreams; i++)
        (void)ingest_assign_row(in, &in->streams[i]); /* logged; retried in ingest_read */
    /* Rows of streams a previous configuration read stop showing as read. */
    for (int r = 0; r < SHM_MAX_STREAMS; r++) {
        int mine = 0;
        for (int i = 0; i < in->nstreams; i++)
            mine |= in->streams[i].shm_index == r;
        atomic_store_explicit(&in->shm->streams[r].reading, (uint32_t)mine, memory_order_relaxed);
    }
}

/* The stream table is updated after the ring's head moves, so only the
 * newest frame can be missing from it (a crash between the two). */
static void
ingest_recover_last_ids(struct ingest *in)
{
    uint64_t head = ring_head(in->ring);
    struct ring_frame_meta meta;

    if (head == 0 || ring_peek_meta(in->ring, head - 1, &meta) != 0)
        return;
    for (int i = 0; i < in->nstreams; i++) {
        struct ingest_stream *st = &in->streams[i];
        struct streamid id = {meta.id_ms, meta.id_seq};
        /* A row is not given to another stream while a frame naming it is
         * in the ring, so this frame is st's if it names st's row. */
        if (st->shm_index >= 0 && (uint32_t)st->shm_index == meta.stream &&
            streamid_cmp(&id, &st->last) > 0)
            st->last = id;
    }
}

static void
ingest_disconnect(struct ingest *in)
{
    if (in->redis != NULL) {
        redisFree(in->redis);
        in->redis = NULL;
    }
    atomic_store_explicit(&in->shm->ingest.redis_up, 0, memory_order_relaxed);
}

static redisReply *
ingest_command(struct ingest *in, int argc, const char **argv)
{
    redisReply *reply = redisCommandArgv(in->redis, argc, argv, NULL);

    if (reply == NULL) {
        if (log_ratelimit_allow(&in->error_rl))
            LOG_WARN("redis %s failed: %s", argv[0],
                     in->redis->errstr[0] ? in->redis->errstr : "connection lost");
        STAT_ADD(redis_errors, 1);
        ingest_disconnect(in);
    }
    return reply;
}

/*
 * Make sure our group exists on st (which has a row).  Where a group starts:
 *   "$"       a stream this instance never read: a new instance starts with
 *             new entries;
 *   "<ms>-0"  a stream added by a reload at <ms>: entries from the reload on;
 *   "0"       a stream whose group existed and is gone (Redis restarted
 *             empty, stream deleted): entries written since then must not
 *             be skipped.
 * Returns 0, -1 if the connection broke, 1 if the key cannot be used as a
 * stream (another type): the stream is left out of reads for a while, so one
 * bad key does not stop the others.  A group that existed and had to be
 * made again means the stream's history was lost: st is noted in in->lost
 * (ingest_announce_losses).
 */
static int
ingest_ensure_group(struct ingest *in, struct ingest_stream *st)
{
    _Atomic uint32_t *grouped = &in->shm->streams[st->shm_index].grouped;
    uint64_t since = atomic_load_explicit(&in->shm->ingest.streams_since_ms, memory_order_relaxed);
    char at[STREAMID_STR_MAX];
    const char *argv[] = {"XGROUP", "CREATE", st->name, in->group, at, "MKSTREAM"};
    redisReply *r;
    int rc = 0;

    if (atomic_load_explicit(grouped, memory_order_relaxed))
        snprintf(at, sizeof(at), "0");
    else if (since != 0)
        (void)streamid_format(&(struct streamid){since, 0}, at, sizeof(at)); /* always fits */
    else
        snprintf(at, sizeof(at), "$");
    r = ingest_command(in, 6, argv);
    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0) {
        if (log_ratelimit_allow(&in->error_rl))
            LOG_ERROR_KV(LOG_FIELDS(LOG_STR("stream", st->name), LOG_STR("group", in->group)),
                         "XGROUP CREATE %s %s %s failed: %s; not reading %s for %d s", st->name,
                         in->group, at, r->str, st->name, INGEST_STREAM_RETRY_MS / 1000);
        st->disabled_until_ms = time_mono_ms() + INGEST_STREAM_RETRY_MS;
        rc = 1;
    } else {
        if (r->type != REDIS_REPLY_ERROR) {
            LOG_INFO_KV(LOG_FIELDS(LOG_STR("stream", st->name), LOG_STR("group", in->group),
                                   LOG_STR("id", at)),
                        "created consumer group %s on %s at %s", in->group, st->name, at);
            if (atomic_load_explicit(grouped, memory_order_relaxed))
                ingest_note_loss(in, st);
        }
        atomic_store_explicit(grouped, 1, memory_order_relaxed);
        st->disabled_until_ms = 0;
    }
    freeReplyObject(r);
    return rc;
}

static int
ingest_stream_readable(const struct ingest_stream *st, uint64_t now)
{
    return st->shm_index >= 0 && (st->disabled_until_ms == 0 || st->disabled_until_ms <= now);
}

static int
ingest_connect(struct ingest *in)
{
    const struct conf *c = &in->conf;
    struct timeval tv = {2, 0};
    const char *password = conf_redis_password(c);
    redisReply *r;

    if (c->redis_unix[0] != '\0')
        in->redis = redisConnectUnixWithTimeout(c->redis_unix, tv);
    else
        in->redis = redisConnectWithTimeout(c->redis_host, c->redis_port, tv);
    if (in->redis == NULL || in->redis->err) {
        if (log_ratelimit_allow(&in->error_rl))
            LOG_WARN("connect to redis %s failed: %s", in->redis_shown,
                     in->redis ? in->redis->errstr : "out of memory");
        ingest_disconnect(in);
        return -1;
    }
    /* The socket timeout must outlast BLOCK, or a healthy idle connection
     * would be declared dead on every quiet read. */
    tv.tv_sec = INGEST_BLOCK_MS / 1000 + 3;
    tv.tv_usec = 0;
    if (redisSetTimeout(in->redis, tv) != REDIS_OK) {
        ingest_disconnect(in);
        return -1;
    }
    if (password != NULL) {
        const char *argv[] = {"AUTH", password};
        if ((r = ingest_command(in, 2, argv)) == NULL)
            return -1;
        if (r->type == REDIS_REPLY_ERROR) {
            LOG_ERROR("redis AUTH failed: %s", r->str);
            freeReplyObject(r);
            ingest_disconnect(in);
            return -1;
        }
        freeReplyObject(r);
    }
    if (c->redis_db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%d", c->redis_db);
        if ((r = ingest_command(in, 2, argv)) == NULL)
            return -1;
        if (r->type == REDIS_REPLY_ERROR) {
            LOG_ERROR("redis SELECT %s failed: %s", db, r->str);
            freeReplyObject(r);
            ingest_disconnect(in);
            return -1;
        }
        freeReplyObject(r);
    }
    for (int i = 0; i < in->nstreams; i++) {
        struct ingest_stream *st = &in->streams[i];
        snprintf(st->next_pending, sizeof(st->next_pending), "0");
        if (st->shm_index < 0)
            continue; /* no row yet: left out (ingest_read retries) */
        if (ingest_ensure_group(in, st) < 0)
            return -1;
    }
    if (ingest_after_groups(in) != 0)
        return -1;
    for (int i = 0; i < in->nstreams; i++) {
        if (ingest_load_history(in, &in->streams[i]) != 0)
            return -1;
    }
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("group", in->group)),
                "connected to redis %s; reading %d streams with group %s", in->redis_shown,
                in->nstreams, in->group);
    return 0;
}

static void
ingest_wake_workers(struct ingest *in)
{
    uint64_t one = 1;

    for (int i = 0; i < in->nwake; i++) {
        /* EAGAIN means the counter is already non-zero: the worker will wake. */
        if (write(in->wake_fds[i], &one, sizeof(one)) < 0 && errno != EAGAIN)
            LOG_WARN("write(eventfd of worker %d) failed: %s", i + 1, strerror(errno));
    }
}

/* ---- the consistent board: epoch, snapshot table ------------------------- */

static void
ingest_note_loss(struct ingest *in, struct ingest_stream *st)
{
    for (int i = 0; i < in->nlost; i++) {
        if (in->lost[i] == st->shm_index)
            return;
    }
    if (in->nlost < (int)(sizeof(in->lost) / sizeof(in->lost[0])))
        in->lost[in->nlost++] = st->shm_index;
}

/* A fresh epoch: 128 random bits as hex. */
static int
ingest_new_epoch(char *buf, size_t size)
{
    unsigned char r[16];

    if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
        return -1;
    for (size_t i = 0; i < sizeof(r) && 2 * i + 2 < size; i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/*
 * Agree on the epoch with every other instance on this Redis, in one
 * atomic step: keep the stored one, unless it is missing (Redis lost it:
 * restarted empty, flushed) or this instance lost a stream's history while
 * it was the one we knew; then store a fresh one.  An instance that finds
 * the stored epoch already moved on from the one it knew adopts it, so two
 * instances that see the same loss agree on one new epoch.
 */
static const char ingest_epoch_script[] = "local cur = redis.call('GET', KEYS[1]) "
                                          "if cur and cur ~= ARGV[1] then return cur end "
                                          "redis.call('SET', KEYS[1], ARGV[2]) "
                                          "return ARGV[2]";

/* 0, or -1 if the connection broke or Redis refused (logged). */
static int
ingest_sync_epoch(struct ingest *in)
{
    char fresh[SHM_EPOCH_MAX];
    const char *argv[] = {
        "EVAL", ingest_epoch_script, "1", in->epoch_key, in->nlost > 0 ? in->epoch : "", fresh};
    redisReply *r;

    if (ingest_new_epoch(fresh, sizeof(fresh)) != 0) {
        LOG_ERROR("getrandom(16 bytes) failed: %s", strerror(errno));
        return -1;
    }
    if ((r = ingest_command(in, 6, argv)) == NULL)
        return -1;
    if (r->type != REDIS_REPLY_STRING || r->len == 0 || r->len >= SHM_EPOCH_MAX) {
        if (log_ratelimit_allow(&in->error_rl))
            LOG_ERROR("reading the epoch (%s) failed: %s", in->epoch_key,
                      r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    if (strcmp(in->epoch, r->str) != 0) {
        if (in->epoch[0] != '\0')
            LOG_WARN("epoch %s -> %s: %s", in->epoch, r->str,
                     in->nlost > 0 ? "stream history lost" : "changed by another instance");
        else
            LOG_INFO("epoch %s", r->str);
        snprintf(in->epoch, sizeof(in->epoch), "%s", r->str);
        shm_epoch_set(in->shm, in->epoch);
    }
    freeReplyObject(r);
    return 0;
}

/* Tell the workers, in ring order, that each lost stream's history is void
 * (a RESET frame carrying the new epoch), and forget its keys. */
static void
ingest_announce_losses(struct ingest *in)
{
    for (int i = 0; i < in->nlost; i++) {
        struct ring_frame_meta meta = {(uint32_t)in->lost[i], 0, 0, RING_KIND_RESET, 0};
        struct shm_stream *row = &in->shm->streams[in->lost[i]];
        uint64_t seq = ring_head(in->ring);

        for (int k = 0; k < in->nstreams; k++) {
            if (in->streams[k].shm_index == in->lost[i])
                in->streams[k].last = (struct streamid){0, 0};
        }
        atomic_store_explicit(&row->last_frame, seq + 1, memory_order_relaxed);
        WSB_ASSERT(ring_publish(in->ring, in->epoch, (uint32_t)strlen(in->epoch), &meta) >= 0);
        atomic_store_explicit(&row->last_ms, 0, memory_order_relaxed);
        atomic_store_explicit(&row->last_seq, 0, memory_order_relaxed);
        /* The stream starts over: its freshness is its new entries'. */
        atomic_store_explicit(&row->read_ms, 0, memory_order_relaxed);
        if (in->have_snap) {
            snaptab_drop_stream(&in->snap, (uint32_t)in->lost[i]);
            snaptab_set_applied(&in->snap, seq + 1);
        }
    }
    if (in->nlost > 0)
        ingest_wake_workers(in);
    in->nlost = 0;
}

/* After a reconnect or a failed read: agree on the epoch (a new one if a
 * history was lost), then announce the losses.  0, or -1 (disconnected). */
static int
ingest_after_groups(struct ingest *in)
{
    if (ingest_sync_epoch(in) != 0) {
        ingest_disconnect(in);
        return -1;
    }
    ingest_announce_losses(in);
    return 0;
}

/* The key of the frame in in->frame, or NULL if it has none: keyed by
 * event, market, book and outcome, so a moved line (new point) replaces the
 * old one; without an event or an outcome an entry is delivered live but is
 * no key of the board. */
static const struct snaptab_key *
ingest_frame_key(struct ingest *in, struct snaptab_key *key)
{
    static const int dims[] = {FRAME_KEY_SPORT, FRAME_KEY_EVENT, FRAME_KEY_MARKET, FRAME_KEY_BOOK};
    struct frame_view view;
    struct frame_key_ref outcome;
    char err[64];

    msgpack_zone_clear(&in->zone);
    if (frame_unpack(in->frame.data, in->frame.size, &in->zone, &view, err, sizeof(err)) != 0 ||
        view.keys[FRAME_KEY_EVENT].ptr == NULL ||
        frame_payload_string(&view, "outcome_name", &outcome) != 0)
        return NULL;
    for (int i = 0; i < 4; i++) {
        key->s[i] = view.keys[dims[i]].ptr;
        key->len[i] = view.keys[dims[i]].len;
    }
    key->s[SNAPTAB_OUTCOME] = outcome.ptr;
    key->len[SNAPTAB_OUTCOME] = outcome.len;
    return key;
}

/* Record frame seq (just published, in in->frame) in the snapshot table. */
static void
ingest_snapshot_apply(struct ingest *in, const struct ingest_stream *st, const struct streamid *id,
                      uint64_t seq)
{
    struct snaptab_key key;

    if (!in->have_snap)
        return;
    (void)snaptab_apply(&in->snap, (uint8_t)st->type, ingest_frame_key(in, &key),
                        (uint32_t)st->shm_index, id, seq, time_now_ms(), in->frame.data,
                        (uint32_t)in->frame.size);
}

/* Where st's history ends for our group: just before its first pending
 * entry (pending entries go through the ring as usual: they may never have
 * been delivered), else the id it has delivered up to (XINFO GROUPS).  0, 1
 * if there is no history (no such group, nothing delivered), -1 if the
 * connection broke. */
static int
ingest_group_start(struct ingest *in, const struct ingest_stream *st, struct streamid *out)
{
    const char *info_argv[] = {"XINFO", "GROUPS", st->name};
    const char *pending_argv[] = {"XPENDING", st->name, in->group};
    redisReply *r = ingest_command(in, 3, info_argv);
    int rc = 1;

    if (r == NULL)
        return -1;
    for (size_t g = 0; r->type == REDIS_REPLY_ARRAY && g < r->elements && rc == 1; g++) {
        const redisReply *info = r->element[g];
        const redisReply *name = NULL, *last = NULL;
        for (size_t i = 0; info->type == REDIS_REPLY_ARRAY && i + 1 < info->elements; i += 2) {
            const redisReply *k = info->element[i];
            if (k->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(k->str, "name") == 0)
                name = info->element[i + 1];
            else if (strcmp(k->str, "last-delivered-id") == 0)
                last = info->element[i + 1];
        }
        if (name != NULL && last != NULL && name->type == REDIS_REPLY_STRING &&
            last->type == REDIS_REPLY_STRING && strcmp(name->str, in->group) == 0 &&
            streamid_parse(last->str, last->len, out) == 0 && (out->ms != 0 || out->seq != 0))
            rc = 0;
    }
    freeReplyObject(r);
    if (rc != 0)
        return rc;
    if ((r = ingest_command(in, 3, pending_argv)) == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[0]->integer > 0 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        struct streamid first;
        if (streamid_parse(r->element[1]->str, r->element[1]->len, &first) == 0 &&
            streamid_cmp(&first, out) <= 0) {
            /* The id just before it. */
            if (first.seq > 0)
                *out = (struct streamid){first.ms, first.seq - 1};
            else if (first.ms > 0)
                *out = (struct streamid){first.ms - 1, UINT64_MAX};
            else
                rc = 1;
        }
    }
    freeReplyObject(r);
    return rc;
}

/*
 * A stream the table knows nothing of (a new instance, a stream added by a
 * reload) whose group starts after entries already in it: load the latest
 * value of each key from that history (XRANGE over the last SNAPSHOT_TTL, or
 * OPPORTUNITY_TTL), so the first client's snapshot holds the current board,
 * not only what moved since.  The values go into the table at the ring
 * sequence of a HISTORY frame published after them, which tells the
 * workers, in ring order, that the stream's position is now the group's
 * start; a worker leaves such values out of a snapshot until that frame is
 * in the ring.  0, or -1 if the connection broke.
 */
static int
ingest_load_history(struct ingest *in, struct ingest_stream *st)
{
    struct streamid pos[SHM_MAX_STREAMS], upto, id;
    uint64_t applied, ttl_ms, now = time_now_ms(), seq = ring_head(in->ring), loaded = 0, kept = 0;
    struct ring_frame_meta meta;
    struct shm_stream *row = &in->shm->streams[st->shm_index];
    char start[STREAMID_STR_MAX + 1], end[STREAMID_STR_MAX], count[16];
    int rc;

    if (!in->have_snap || st->shm_index < 0 || st->disabled_until_ms != 0)
        return 0;
    (void)snaptab_read_header(&in->snap, &applied, pos,
                              SHM_MAX_STREAMS); /* the writer: never torn */
    if (pos[st->shm_index].ms != 0 || pos[st->shm_index].seq != 0)
        return 0;
    if ((rc = ingest_group_start(in, st, &upto)) != 0)
        return rc < 0 ? -1 : 0;
    ttl_ms = (uint64_t)(st->type == FRAME_OPPORTUNITY ? in->conf.opportunity_ttl
                                                      : in->conf.snapshot_ttl) *
             1000;
    snprintf(start, sizeof(start), "%llu-0", (unsigned long long)(now > ttl_ms ? now - ttl_ms : 0));
    streamid_format(&upto, end, sizeof(end));
    snprintf(count, sizeof(count), "%u", in->conf.read_count);
    while (!ingest_stop && loaded < INGEST_HISTORY_MAX) {
        const char *argv[] = {"XRANGE", st->name, start, end, "COUNT", count};
        redisReply *r = ingest_command(in, 6, argv);
        size_t n;

        if (r == NULL)
            return -1;
        n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            struct snaptab_key key;
            const struct snaptab_key *k;
            char err[128];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                streamid_parse(e->element[0]->str, e->element[0]->len, &id) != 0)
                continue;
            start[0] = '(';
            streamid_format(&id, start + 1, sizeof(start) - 1);
            loaded++;
            if (decode_reply_fields(e->element[1], st->type, st->sport, in->conf.max_entry_size,
                                    &in->frame, err, sizeof(err)) != 0 ||
                (k = ingest_frame_key(in, &key)) == NULL)
                continue;
            kept +=
                (uint64_t)snaptab_put(&in->snap, (uint8_t)st->type, k, (uint32_t)st->shm_index, &id,
                                      seq, id.ms, in->frame.data, (uint32_t)in->frame.size);
        }
        freeReplyObject(r);
        if (n < in->conf.read_count)
            break;
    }
    if (loaded >= INGEST_HISTORY_MAX)
        LOG_WARN_KV(LOG_FIELDS(LOG_STR("stream", st->name)),
                    "%s: loaded the table from the first %d entries of its history only", st->name,
                    INGEST_HISTORY_MAX);
    /* In ring order: the stream's position is the group's start now. */
    meta =
        (struct ring_frame_meta){(uint32_t)st->shm_index, upto.ms, upto.seq, RING_KIND_HISTORY, 0};
    atomic_store_explicit(&row->last_frame, seq + 1, memory_order_relaxed);
    WSB_ASSERT(ring_publish(in->ring, "", 0, &meta) >= 0);
    (void)snaptab_apply(&in->snap, (uint8_t)st->type, NULL, (uint32_t)st->shm_index, &upto, seq,
                        now, NULL, 0);
    if (streamid_cmp(&upto, &st->last) > 0) {
        /* Pending entries up to here are in the table already. */
        st->last = upto;
        atomic_store_explicit(&row->last_ms, upto.ms, memory_order_relaxed);
        atomic_store_explicit(&row->last_seq, upto.seq, memory_order_relaxed);
    }
    ingest_wake_workers(in);
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("stream", st->name)),
                "%s: %llu entries of history read, %llu keys kept for snapshots", st->name,
                (unsigned long long)loaded, (unsigned long long)kept);
    return 0;
}

/* Frames the ring holds that the table does not (the previous ingest died
 * between the two): put them in. */
static void
ingest_snapshot_catch_up(struct ingest *in)
{
    struct streamid pos[SHM_MAX_STREAMS];
    uint64_t applied = 0;
    uint64_t head = ring_head(in->ring);
    struct ring_reader rd;
    char *buf = malloc(in->conf.max_entry_size);
    uint32_t len;
    struct ring_frame_meta meta;

    (void)snaptab_read_header(&in->snap, &applied, pos,
                              SHM_MAX_STREAMS); /* the writer: never torn */
    if (buf == NULL || applied >= head) {
        free(buf);
        return;
    }
    rd.next = applied;
    rd.missed = 0;
    while (rd.next < head && ring_read(in->ring, &rd, buf, in->conf.max_entry_size, &len, &meta)) {
        uint64_t seq = rd.next - 1;
        struct streamid id = {meta.id_ms, meta.id_seq};
        if (meta.kind == RING_KIND_RESET) {
            snaptab_drop_stream(&in->snap, meta.stream);
            snaptab_set_applied(&in->snap, seq + 1);
            continue;
        }
        for (int i = 0; i < in->nstreams; i++) {
            if (in->streams[i].shm_index >= 0 &&
                (uint32_t)in->streams[i].shm_index == meta.stream) {
                msgpack_sbuffer_clear(&in->frame);
                msgpack_sbuffer_write(&in->frame, buf, len);
                ingest_snapshot_apply(in, &in->streams[i], &id, seq);
                break;
            }
        }
    }
    snaptab_set_applied(&in->snap, head);
    free(buf);
    LOG_INFO("snapshot table: %llu frames from the ring applied after a restart",
             (unsigned long long)(head - applied));
}

/* Keys past SNAPSHOT_TTL / OPPORTUNITY_TTL leave the table, a few at a time. */
static void
ingest_snapshot_expire(struct ingest *in)
{
    uint64_t now = time_now_ms();

    if (!in->have_snap || now < in->next_expire_ms)
        return;
    in->next_expire_ms = now + 100;
    (void)snaptab_expire(&in->snap, now, (uint64_t)in->conf.snapshot_ttl * 1000,
                         (uint64_t)in->conf.opportunity_ttl * 1000, 4096);
}

/* Decode and publish one entry.  Returns 1 if a frame was published. */
static int
ingest_entry(struct ingest *in, struct ingest_stream *st, const redisReply *entry, int pending)
{
    const redisReply *id = entry->element[0], *fields = entry->element[1];
    struct shm_stream *row = &in->shm->streams[st->shm_index];
    struct ring_frame_meta meta;
    struct streamid sid;
    char err[256];
    uint64_t seq, now_us;

    STAT_ADD(entries_read, 1);
    atomic_fetch_add_explicit(&row->entries_read, 1, memory_order_relaxed);
    if (streamid_parse(id->str, id->len, &sid) != 0) {
        STAT_ADD(invalid_entries, 1);
        if (log_ratelimit_allow(&in->invalid_rl))
            LOG_WARN_KV(LOG_FIELDS(LOG_STR("stream", st->name), LOG_STR("id", id->str)),
                        "entry %s with a malformed id %.*s; skipped", st->name, (int)id->len,
                        id->str);
        return 0;
    }
    /* The newest id read, whatever becomes of the entry: how fresh the
     * stream is (pending entries re-read after a restart are older). */
    if (sid.ms > atomic_load_explicit(&row->read_ms, memory_order_relaxed))
        atomic_store_explicit(&row->read_ms, sid.ms, memory_order_relaxed);
    if (pending && streamid_cmp(&sid, &st->last) <= 0) {
        /* Already in the ring: published before a crash, never acked. */
        STAT_ADD(duplicates_skipped, 1);
        return 0;
    }
    /* A pending entry trimmed from the stream comes back with nil fields. */
    if (decode_reply_fields(fields, st->type, st->sport, in->conf.max_entry_size, &in->frame, err,
                            sizeof(err)) != 0) {
        STAT_ADD(invalid_entries, 1);
        if (log_ratelimit_allow(&in->invalid_rl))
            LOG_WARN_KV(LOG_FIELDS(LOG_STR("stream", st->name), LOG_STR("id", id->str)),
                        "invalid entry %s %s: %s; skipped", st->name, id->str, err);
        return 0;
    }
    meta.stream = (uint32_t)st->shm_index;
    meta.id_ms = sid.ms;
    meta.id_seq = sid.seq;
    /* Before the frame is in the ring: the row must never look free while a
     * frame naming it can be read (shm_stream_index).  Only this process
     * publishes, so the head is the frame's sequence. */
    meta.kind = RING_KIND_ENTRY;
    meta.published_us = time_mono_us();
    seq = ring_head(in->ring);
    atomic_store_explicit(&row->last_frame, seq + 1, memory_order_relaxed);
    WSB_ASSERT(ring_publish(in->ring, in->frame.data, (uint32_t)in->frame.size, &meta) >= 0);
    /* From the time Redis gave the entry (its id, on Redis's clock) to now,
     * on ours: a clock behind Redis's counts as no time at all. */
    now_us = time_now_us();
    hist_observe(&in->shm->ingest_latency, sid.ms <= now_us / 1000 ? now_us - sid.ms * 1000 : 0);
    /* After the ring: a frame is in the table only once it can be read
     * from the ring (a worker patches a snapshot from the ring). */
    ingest_snapshot_apply(in, st, &sid, seq);
    st->last = sid;
    atomic_store_explicit(&row->last_ms, sid.ms, memory_order_relaxed);
    atomic_store_explicit(&row->last_seq, sid.seq, memory_order_relaxed);
    STAT_ADD(entries_published, 1);
    return 1;
}

static struct ingest_stream *
ingest_find_stream(struct ingest *in, const redisReply *name)
{
    for (int i = 0; i < in->nstreams; i++) {
        /* A stream without a row is not read: a reply naming it is not ours. */
        if (in->streams[i].shm_index < 0)
            continue;
        if (name->type == REDIS_REPLY_STRING && strlen(in->streams[i].name) == name->len &&
            memcmp(in->streams[i].name, name->str, name->len) == 0)
            return &in->streams[i];
    }
    return NULL;
}

/* Handle one XREADGROUP reply: publish, wake, then ack (pipelined).
 * Returns the number of entries seen, or -1 if the connection broke. */
static long
ingest_batch(struct ingest *in, const redisReply *reply, int pending)
{
    long seen = 0;
    int published = 0, acks = 0;

    if (reply->type != REDIS_REPLY_ARRAY)
        return 0; /* nil: BLOCK timed out */
    for (size_t s = 0; s < reply->elements; s++) {
        const redisReply *sr = reply->element[s];
        struct ingest_stream *st;
        const redisReply *entries;

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
            continue;
        st = ingest_find_stream(in, sr->element[0]);
        entries = sr->element[1];
        if (st == NULL || entries->type != REDIS_REPLY_ARRAY)
            continue;
        for (size_t e = 0; e < entries->elements; e++) {
            const redisReply *entry = entries->element[e];
            if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
                entry->element[0]->type != REDIS_REPLY_STRING)
                continue;
            published += ingest_entry(in, st, entry, pending);
            seen++;
            if (pending)
                snprintf(st->next_pending, sizeof(st->next_pending), "%s", entry->element[0]->str);
        }
    }
    if (published > 0)
        ingest_wake_workers(in);

    /* Acknowledge only now that every frame is in the ring. */
    for (size_t s = 0; s < reply->elements; s++) {
        const redisReply *sr = reply->element[s];
        struct ingest_stream *st;
        const redisReply *entries;
        const char **argv;
        size_t argc = 0;

        if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2)
            continue;
        st = ingest_find_stream(in, sr->element[0]);
        entries = sr->element[1];
        if (st == NULL || entries->type != REDIS_REPLY_ARRAY || entries->elements == 0)
            continue;
        argv = malloc((entries->elements + 3) * sizeof(*argv));
        WSB_ASSERT(argv != NULL);
        argv[argc++] = "XACK";
        argv[argc++] = st->name;
        argv[argc++] = in->group;
        for (size_t e = 0; e < entries->elements; e++) {
            const redisReply *entry = entries->element[e];
            if (entry->type == REDIS_REPLY_ARRAY && entry->elements == 2 &&
                entry->element[0]->type == REDIS_REPLY_STRING)
                argv[argc++] = entry->element[0]->str;
        }
        if (argc > 3 && redisAppendCommandArgv(in->redis, (int)argc, argv, NULL) == REDIS_OK)
            acks++;
        free(argv);
    }
    for (int i = 0; i < acks; i++) {
        redisReply *r = NULL;
        if (redisGetReply(in->redis, (void **)&r) != REDIS_OK) {
            LOG_WARN("XACK failed: %s", in->redis->errstr);
            STAT_ADD(redis_errors, 1);
            ingest_disconnect(in);
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR)
            LOG_WARN("XACK failed: %s", r->str);
        freeReplyObject(r);
    }
    return seen;
}

/* XREADGROUP over the readable streams; NULL if the connection broke or,
 * with *none set, if no stream is readable now. */
static redisReply *
ingest_read(struct ingest *in, int pending, int *none)
{
    const char *argv[9 + 2 * (CONF_MAX_SPORTS + 1)];
    char count[16], block[16];
    uint64_t now = time_mono_ms();
    int argc = 0, n = 0;

    *none = 0;
    for (int i = 0; i < in->nstreams; i++) {
        struct ingest_stream *st = &in->streams[i];
        /* A left-out stream is retried once its time is up: first its row,
         * if it has none, then its group. */
        if (st->disabled_until_ms == 0 || st->disabled_until_ms > now)
            continue;
        if (st->shm_index < 0 && ingest_assign_row(in, st) != 0)
            continue;
        if (ingest_ensure_group(in, st) < 0)
            return NULL;
    }

    snprintf(count, sizeof(count), "%u", in->conf.read_count);
    snprintf(block, sizeof(block), "%d", INGEST_BLOCK_MS);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = in->group;
    argv[argc++] = in->conf.consumer_id;
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    if (!pending) {
        argv[argc++] = "BLOCK";
        argv[argc++] = block;
    }
    argv[argc++] = "STREAMS";
    for (int i = 0; i < in->nstreams; i++) {
        if (ingest_stream_readable(&in->streams[i], now)) {
            argv[argc++] = in->streams[i].name;
            n++;
        }
    }
    if (n == 0) {
        *none = 1;
        return NULL;
    }
    for (int i = 0; i < in->nstreams; i++) {
        if (ingest_stream_readable(&in->streams[i], now))
            argv[argc++] = pending ? in->streams[i].next_pending : ">";
    }
    return ingest_command(in, argc, argv);
}

/* Our group's lag in one XINFO GROUPS reply: 1 with *lag set if Redis
 * says it (7.0 and later; nil after deletions it cannot see past), else 0. */
static int
ingest_group_lag(const struct ingest *in, const redisReply *r, uint64_t *lag)
{
    if (r->type != REDIS_REPLY_ARRAY)
        return 0;
    for (size_t g = 0; g < r->elements; g++) {
        const redisReply *grp = r->element[g];
        const redisReply *lagv = NULL;
        int ours = 0;

        if (grp->type != REDIS_REPLY_ARRAY)
            continue;
        /* Field, value, field, value ... (RESP2's form of a map). */
        for (size_t f = 0; f + 1 < grp->elements; f += 2) {
            const redisReply *k = grp->element[f], *v = grp->element[f + 1];
            if (k->type != REDIS_REPLY_STRING && k->type != REDIS_REPLY_STATUS)
                continue;
            if (strcmp(k->str, "name") == 0)
                ours = v->type == REDIS_REPLY_STRING && strcmp(v->str, in->group) == 0;
            else if (strcmp(k->str, "lag") == 0)
                lagv = v;
        }
        if (ours) {
            if (lagv == NULL || lagv->type != REDIS_REPLY_INTEGER || lagv->integer < 0)
                return 0;
            *lag = (uint64_t)lagv->integer;
            return 1;
        }
    }
    return 0;
}

/*
 * How far our group is behind on each stream it reads: XINFO GROUPS, whose
 * "lag" (Redis 7) counts the entries not yet delivered to the group, for
 * /metrics and readiness (shm.h, struct shm_stream).  Pipelined on the
 * reading connection between two reads, like the epoch check: one round
 * trip every SHM_LAG_CHECK_MS, cheap for Redis (it walks the groups, not
 * the entries), and the read loop waits on nothing else.  0, or -1 if the
 * connection broke (disconnected).
 */
static int
ingest_check_lag(struct ingest *in)
{
    struct ingest_stream *asked[CONF_MAX_SPORTS + 1];
    uint64_t now = time_mono_ms();
    int n = 0;

    for (int i = 0; i < in->nstreams; i++) {
        struct ingest_stream *st = &in->streams[i];
        const char *argv[] = {"XINFO", "GROUPS", st->name};
        if (!ingest_stream_readable(st, now))
            continue;
        if (redisAppendCommandArgv(in->redis, 3, argv, NULL) != REDIS_OK)
            break; /* out of memory: ask for the ones appended */
        asked[n++] = st;
    }
    for (int i = 0; i < n; i++) {
        struct shm_stream *row = &in->shm->streams[asked[i]->shm_index];
        redisReply *r = NULL;
        uint64_t lag = 0;
        int known;

        if (redisGetReply(in->redis, (void **)&r) != REDIS_OK) {
            if (log_ratelimit_allow(&in->error_rl))
                LOG_WARN("redis XINFO GROUPS failed: %s", in->redis->errstr);
            STAT_ADD(redis_errors, 1);
            ingest_disconnect(in);
            return -1;
        }
        /* An error (the key is not a stream) or no group of ours: unknown. */
        known = ingest_group_lag(in, r, &lag);
        freeReplyObject(r);
        atomic_store_explicit(&row->lag, lag, memory_order_relaxed);
        atomic_store_explicit(&row->lag_known, (uint32_t)known, memory_order_relaxed);
        atomic_store_explicit(&row->lag_at_ms, time_now_ms(), memory_order_relaxed);
    }
    return 0;
}

/* A read failed: a stream or group vanished (Redis restarted empty, stream
 * deleted), or a key is not a stream.  Recreate what is missing, leave out
 * what cannot be read. */
static void
ingest_recreate_groups(struct ingest *in)
{
    for (int i = 0; i < in->nstreams && in->redis != NULL; i++) {
        if (in->streams[i].shm_index >= 0 && in->streams[i].disabled_until_ms == 0)
            (void)ingest_ensure_group(in, &in->streams[i]);
    }
    if (in->redis != NULL)
        (void)ingest_after_groups(in); /* -1: disconnected, reconnected next round */
}

/* Read until the pending entries list is drained.  0, or -1 if the
 * connection broke. */
static int
ingest_drain_pending(struct ingest *in)
{
    while (!ingest_stop) {
        int none;
        redisReply *r = ingest_read(in, 1, &none);
        long n;

        if (r == NULL)
            return none ? 0 : -1;
        if (r->type == REDIS_REPLY_ERROR) {
            LOG_WARN("XREADGROUP (pending) failed: %s", r->str);
            freeReplyObject(r);
            ingest_recreate_groups(in);
            return in->redis ? 0 : -1;
        }
        n = ingest_batch(in, r, 1);
        freeReplyObject(r);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
    }
    return 0;
}

int
ingest_main(struct shm *s, const struct conf *c, const int *wake_fds, int nwake)
{
    static struct ingest ingest;
    struct ingest *in = &ingest;
    struct log_ratelimit invalid_rl = LOG_RATELIMIT_INIT(10000, 10);
    struct log_ratelimit error_rl = LOG_RATELIMIT_INIT(10000, 5);
    struct sigaction sa;
    uint64_t backoff = INGEST_BACKOFF_MIN_MS;

    /* First thing: redis_up has no other writer (shm.h), so a predecessor
     * that died connected left its 1 there; until this process has
     * connected, the truth is 0. */
    atomic_store_explicit(&s->ingest.redis_up, 0, memory_order_relaxed);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = ingest_on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    in->shm = s;
    in->ring = shm_ring(s);
    in->conf = *c;
    /* Every line that names the server uses this form: the logs must never
     * carry a password from REDIS_URL. */
    WSB_ASSERT(conf_get(c, "REDIS_URL", in->redis_shown, sizeof(in->redis_shown)) == 0);
    in->wake_fds = wake_fds;
    in->nwake = nwake;
    in->invalid_rl = invalid_rl;
    in->error_rl = error_rl;
    snprintf(in->group, sizeof(in->group), "%s:%s", c->consumer_group, c->consumer_id);
    msgpack_sbuffer_init(&in->frame);
    if (!msgpack_zone_init(&in->zone, 4096)) {
        LOG_ERROR("out of memory at start");
        return 1;
    }
    snprintf(in->epoch_key, sizeof(in->epoch_key), "%s:epoch", c->consumer_group);
    /* What this instance knew before a restart of this process: a loss is
     * judged against it. */
    shm_epoch_get(s, in->epoch, sizeof(in->epoch));
    {
        uint32_t max_keys;
        void *mem = shm_snaptab(s, &max_keys);
        uint32_t repaired = 0;
        if (mem != NULL) {
            if (snaptab_attach_writer(&in->snap, mem, max_keys, SHM_MAX_STREAMS, &repaired) != 0) {
                LOG_ERROR("out of memory attaching the snapshot table (%u keys)", max_keys);
                return 1;
            }
            in->have_snap = 1;
            if (repaired > 0)
                LOG_WARN("snapshot table: %u entries left half-written by the previous ingest "
                         "dropped",
                         repaired);
        }
    }
    ingest_setup_streams(in);
    ingest_recover_last_ids(in);
    if (in->have_snap)
        ingest_snapshot_catch_up(in);

    while (!ingest_stop) {
        redisReply *r;
        int none;

        if (in->redis == NULL) {
            if (ingest_connect(in) != 0 || ingest_drain_pending(in) != 0) {
                ingest_disconnect(in);
                ingest_sleep_ms(backoff);
                backoff = backoff * 2 > INGEST_BACKOFF_MAX_MS ? INGEST_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            backoff = INGEST_BACKOFF_MIN_MS;
            atomic_store_explicit(&s->ingest.redis_up, 1, memory_order_relaxed);
        }
        r = ingest_read(in, 0, &none);
        if (r == NULL) {
            if (none) {
                /* Every stream is left out for now: nothing can be read. */
                atomic_store_explicit(&s->ingest.redis_up, 0, memory_order_relaxed);
                ingest_sleep_ms(INGEST_BLOCK_MS);
            }
            continue; /* else disconnected; reconnect on the next round */
        }
        if (r->type == REDIS_REPLY_ERROR) {
            /* NOGROUP, or "UNBLOCKED ... no longer exists": the stream or group
             * is gone.  A failing XREADGROUP returns at once, so wait before
             * trying again: BLOCK does not pace an error. */
            if (log_ratelimit_allow(&in->error_rl))
                LOG_WARN("XREADGROUP failed: %s", r->str);
            STAT_ADD(redis_errors, 1);
            atomic_store_explicit(&s->ingest.redis_up, 0, memory_order_relaxed);
            freeReplyObject(r);
            ingest_recreate_groups(in);
            ingest_sleep_ms(INGEST_BACKOFF_MIN_MS);
            continue;
        }
        atomic_store_explicit(&s->ingest.redis_up, 1, memory_order_relaxed);
        (void)ingest_batch(in, r, 0);
        freeReplyObject(r);
        ingest_snapshot_expire(in);
        if (time_mono_ms() >= in->next_epoch_ms) {
            /* Another instance may have moved the epoch on (a loss it saw on
             * a stream this one does not read), or Redis lost it: every
             * instance on one Redis reports the same epoch, within this. */
            in->next_epoch_ms = time_mono_ms() + INGEST_EPOCH_CHECK_MS;
            if (ingest_sync_epoch(in) != 0)
                ingest_disconnect(in);
        }
        if (in->redis != NULL && time_mono_ms() >= in->next_lag_ms) {
            in->next_lag_ms = time_mono_ms() + SHM_LAG_CHECK_MS;
            (void)ingest_check_lag(in); /* -1: disconnected, reconnected next round */
        }
    }
    ingest_disconnect(in);
    if (in->have_snap)
        snaptab_detach(&in->snap);
    msgpack_zone_destroy(&in->zone);
    msgpack_sbuffer_destroy(&in->frame);
    LOG_INFO("stopped");
    return 0;
}
