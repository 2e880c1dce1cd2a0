#include "replay.h"
#include "encode.h"
#include "outbound.h"
#include "sub_filter.h"
#include "wsp.h"
#include "../common/decode.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Entries per XRANGE call: a page costs the loop little to decode. */
#define REPLAY_PAGE "256"

struct replay_req {
    struct wsp_vhost *vh;
    struct replay_stream *streams;
    uint32_t nstreams, k;  /* the stream being read */
    struct streamid after; /* XRANGE's exclusive start in stream k */
    int basic, no_opps;    /* the owner's view (auth.h) */
    int checked;           /* stream k was checked for deletions */
    int in_flight;         /* a command of ours awaits its reply */
    int finished;          /* done was called, or the owner cancelled */
    const struct replay_owner *ops;
    void *owner;
    struct outq_msg **msgs;
    uint32_t n, cap;
    ev_timer timeout;
    ev_timer kick; /* starts it from the loop */
    msgpack_sbuffer frame;
    msgpack_zone zone;
};

static struct {
    struct wsp_vhost *vh;
    struct ev_loop *loop;
    redisAsyncContext *ctx;
    struct log_ratelimit rl;
} replay;

static void replay_next(struct replay_req *r);

static void
replay_free(struct replay_req *r)
{
    for (uint32_t i = 0; i < r->n; i++)
        outq_msg_unref(r->msgs[i]);
    free(r->msgs);
    free(r->streams);
    msgpack_sbuffer_destroy(&r->frame);
    msgpack_zone_destroy(&r->zone);
    free(r);
}

/* Finish r with the outcome (once); r is freed once no reply is pending. */
static void
replay_finish(struct replay_req *r, int ok, const char *reason)
{
    if (!r->finished) {
        r->finished = 1;
        ev_timer_stop(replay.loop, &r->timeout);
        ev_timer_stop(replay.loop, &r->kick);
        if (ok) {
            r->ops->done(r->vh, r->owner, 1, NULL, r->msgs, r->n);
            r->msgs = NULL; /* the owner's now */
            r->n = 0;
        } else {
            r->ops->done(r->vh, r->owner, 0, reason, NULL, 0);
        }
    }
    if (!r->in_flight)
        replay_free(r);
}

static void
replay_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct replay_req *r = (struct replay_req *)((char *)t - offsetof(struct replay_req, timeout));

    (void)loop;
    (void)revents;
    if (log_ratelimit_allow(&replay.rl))
        LOG_WARN("resume: Redis did not answer within %d ms; a snapshot instead",
                 REPLAY_TIMEOUT_MS);
    replay_finish(r, 0, "too_old");
}

static void
replay_on_kick(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct replay_req *r = (struct replay_req *)((char *)t - offsetof(struct replay_req, kick));

    (void)loop;
    (void)revents;
    if (!r->finished)
        replay_next(r);
}

static void
replay_on_connect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK) {
        if (log_ratelimit_allow(&replay.rl))
            LOG_WARN("resume: connecting to Redis failed: %s", ac->errstr);
        if (replay.ctx == ac)
            replay.ctx = NULL;
    }
}

static void
replay_on_disconnect(const redisAsyncContext *ac, int status)
{
    if (status != REDIS_OK && log_ratelimit_allow(&replay.rl))
        LOG_WARN("resume: Redis connection lost: %s", ac->errstr);
    if (replay.ctx == ac)
        replay.ctx = NULL;
}

static void
replay_on_setup(redisAsyncContext *ac, void *reply, void *privdata)
{
    redisReply *rep = reply;

    (void)ac;
    if (rep != NULL && rep->type == REDIS_REPLY_ERROR && log_ratelimit_allow(&replay.rl))
        LOG_WARN("resume: Redis %s failed: %s", (const char *)privdata, rep->str);
}

/* The connection, opened (with AUTH and SELECT queued) if there is none. */
static redisAsyncContext *
replay_conn(void)
{
    const struct conf *c = replay.vh->conf;
    const char *password = conf_redis_password(c);
    redisAsyncContext *ac;

    if (replay.ctx != NULL)
        return replay.ctx;
    ac = c->redis_unix[0] != '\0' ? redisAsyncConnectUnix(c->redis_unix)
                                  : redisAsyncConnect(c->redis_host, c->redis_port);
    if (ac == NULL || ac->err) {
        if (log_ratelimit_allow(&replay.rl))
            LOG_WARN("resume: connecting to Redis failed: %s", ac ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        return NULL;
    }
    if (redisLibevAttach(replay.loop, ac) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, replay_on_connect);
    redisAsyncSetDisconnectCallback(ac, replay_on_disconnect);
    if (password != NULL)
        redisAsyncCommand(ac, replay_on_setup, "AUTH", "AUTH %s", password);
    if (c->redis_db != 0)
        redisAsyncCommand(ac, replay_on_setup, "SELECT", "SELECT %d", c->redis_db);
    replay.ctx = ac;
    return ac;
}

/* A field of an XINFO STREAM reply (a flat name/value array), or NULL. */
static const redisReply *
replay_info_field(const redisReply *info, const char *name)
{
    if (info->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < info->elements; i += 2) {
        const redisReply *k = info->element[i];
        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0)
            return info->element[i + 1];
    }
    return NULL;
}

/* An id field of an XINFO STREAM reply into *id: 0, or -1. */
static int
replay_info_id(const redisReply *info, const char *name, struct streamid *id)
{
    const redisReply *v = replay_info_field(info, name);

    if (v == NULL || v->type != REDIS_REPLY_STRING)
        return -1;
    return streamid_parse(v->str, v->len, id);
}

static int
replay_push(struct replay_req *r, struct outq_msg *m)
{
    if (r->n == r->cap) {
        uint32_t cap = r->cap ? 2 * r->cap : 64;
        struct outq_msg **p = realloc(r->msgs, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        r->msgs = p;
        r->cap = cap;
    }
    r->msgs[r->n++] = m;
    return 0;
}

/* One XRANGE entry: decoded, matched, encoded.  0, or -1 on OOM; an entry
 * the ingest would refuse is skipped as it was (never delivered live). */
static int
replay_entry(struct replay_req *r, const struct replay_stream *st, const redisReply *e,
             const struct sub_filter *f)
{
    const redisReply *id = e->element[0], *fields = e->element[1];
    struct frame_view view;
    struct encode_origin origin = {st->name, id->str, r->basic};
    struct outq_msg *m;
    char err[128];
    size_t len = 0;
    char *buf;

    msgpack_zone_clear(&r->zone);
    if (decode_reply_fields(fields, st->type, st->type == FRAME_ODDS_UPDATE ? st->sport : NULL,
                            r->vh->conf->max_entry_size, &r->frame, err, sizeof(err)) != 0 ||
        frame_unpack(r->frame.data, r->frame.size, &r->zone, &view, err, sizeof(err)) != 0 ||
        !sub_filter_matches(f, view.keys) || (r->no_opps && view.type == FRAME_OPPORTUNITY))
        return 0;
    buf = encode_update(&view, &origin, time_now_ms(), OUTQ_HEADROOM, &len, err, sizeof(err));
    if (buf == NULL || (m = outq_msg_adopt(buf, len)) == NULL)
        return -1;
    m->key = outbound_key(&view);
    if (replay_push(r, m) != 0) {
        outq_msg_unref(m);
        return -1;
    }
    return 0;
}

static void
replay_on_range(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct replay_req *r = privdata;
    redisReply *rep = reply;
    const struct replay_stream *st;
    const struct sub_filter *f;

    (void)ac;
    r->in_flight = 0;
    if (r->finished) {
        replay_finish(r, 0, NULL);
        return;
    }
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY) {
        if (log_ratelimit_allow(&replay.rl))
            LOG_WARN("resume: XRANGE failed: %s", rep == NULL ? "connection lost"
                                                  : rep->type == REDIS_REPLY_ERROR
                                                      ? rep->str
                                                      : "unexpected reply");
        replay_finish(r, 0, "too_old");
        return;
    }
    st = &r->streams[r->k];
    if ((f = r->ops->filter(r->owner)) == NULL) {
        replay_finish(r, 0, "too_old");
        return;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            streamid_parse(e->element[0]->str, e->element[0]->len, &r->after) != 0)
            continue;
        if (replay_entry(r, st, e, f) != 0) {
            replay_finish(r, 0, "too_old");
            return;
        }
        if (r->n > r->vh->conf->resume_max_entries) {
            replay_finish(r, 0, "too_old");
            return;
        }
    }
    if (rep->elements == 0 || streamid_cmp(&r->after, &st->upto) >= 0) {
        r->k++; /* this stream is done */
        r->checked = 0;
        if (r->k < r->nstreams)
            r->after = r->streams[r->k].after;
    }
    replay_next(r);
}

static void
replay_on_info(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct replay_req *r = privdata;
    redisReply *rep = reply;
    const redisReply *length, *added;
    struct streamid max_deleted, first;

    (void)ac;
    r->in_flight = 0;
    if (r->finished) {
        replay_finish(r, 0, NULL);
        return;
    }
    /* An entry after the client's position was deleted or trimmed away:
     * what it missed can no longer be told.  Redis 7 records the largest
     * id deleted (XDEL); trimming shows as a first entry after the
     * position in a stream that has lost entries (more added than held). */
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY ||
        replay_info_id(rep, "max-deleted-entry-id", &max_deleted) != 0 ||
        replay_info_id(rep, "recorded-first-entry-id", &first) != 0 ||
        (length = replay_info_field(rep, "length")) == NULL ||
        length->type != REDIS_REPLY_INTEGER ||
        (added = replay_info_field(rep, "entries-added")) == NULL ||
        added->type != REDIS_REPLY_INTEGER ||
        streamid_cmp(&max_deleted, &r->streams[r->k].after) > 0 ||
        (added->integer > length->integer && streamid_cmp(&first, &r->streams[r->k].after) > 0)) {
        replay_finish(r, 0, "too_old");
        return;
    }
    r->checked = 1;
    replay_next(r);
}

/* Issue the next command of r, or finish it. */
static void
replay_next(struct replay_req *r)
{
    redisAsyncContext *ac;
    const struct replay_stream *st;
    char start[STREAMID_STR_MAX + 1], end[STREAMID_STR_MAX];
    int rc;

    if (r->k >= r->nstreams) {
        replay_finish(r, 1, NULL);
        return;
    }
    if ((ac = replay_conn()) == NULL) {
        replay_finish(r, 0, "too_old");
        return;
    }
    st = &r->streams[r->k];
    if (!r->checked) {
        /* First: whether anything after the position was deleted. */
        rc = redisAsyncCommand(ac, replay_on_info, r, "XINFO STREAM %s", st->name);
    } else {
        start[0] = '(';
        streamid_format(&r->after, start + 1, sizeof(start) - 1);
        streamid_format(&st->upto, end, sizeof(end));
        rc = redisAsyncCommand(ac, replay_on_range, r, "XRANGE %s %s %s COUNT " REPLAY_PAGE,
                               st->name, start, end);
    }
    if (rc != REDIS_OK) {
        replay_finish(r, 0, "too_old");
        return;
    }
    r->in_flight = 1;
}

void
replay_init(struct wsp_vhost *vh, struct ev_loop *loop)
{
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 5);

    replay.vh = vh;
    replay.loop = loop;
    replay.rl = rl;
}

struct replay_req *
replay_start(struct wsp_vhost *vh, const struct replay_stream *streams, uint32_t n, int basic,
             int no_opps, const struct replay_owner *ops, void *owner)
{
    struct replay_req *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    if ((r->streams = malloc(n * sizeof(*streams))) == NULL || !msgpack_zone_init(&r->zone, 4096)) {
        free(r->streams);
        free(r);
        return NULL;
    }
    memcpy(r->streams, streams, n * sizeof(*streams));
    msgpack_sbuffer_init(&r->frame);
    r->vh = vh;
    r->basic = basic;
    r->no_opps = no_opps;
    r->nstreams = n;
    r->ops = ops;
    r->owner = owner;
    r->after = n > 0 ? streams[0].after : (struct streamid){0, 0};
    ev_timer_init(&r->timeout, replay_on_timeout, REPLAY_TIMEOUT_MS / 1000.0, 0.);
    ev_timer_start(replay.loop, &r->timeout);
    /* From the loop, never from here: the caller is still answering the
     * subscribe, and done must come after that answer. */
    ev_timer_init(&r->kick, replay_on_kick, 0., 0.);
    ev_timer_start(replay.loop, &r->kick);
    return r;
}

void
replay_cancel(struct replay_req *r)
{
    if (r == NULL)
        return;
    r->finished = 1;
    ev_timer_stop(replay.loop, &r->timeout);
    ev_timer_stop(replay.loop, &r->kick);
    if (!r->in_flight)
        replay_free(r);
}

void
replay_shutdown(void)
{
    if (replay.ctx != NULL) {
        redisAsyncContext *ac = replay.ctx;
        replay.ctx = NULL;
        redisAsyncFree(ac); /* pending callbacks run with no reply */
    }
}
