/*
 * wsb-ceiling: the ceiling probe.  A minimal epoll WebSocket server that does
 * the least a fan-out service can do with the same input: a reader thread
 * XREADs the benchmark's streams (its own cursor, no consumer group) and
 * renders each entry once into a complete WebSocket text frame holding the
 * entry's fields as JSON strings ("bench_ts" included, so wsb-load measures
 * it); the event loop writes that frame to every subscribed client.  No
 * filtering, no per-client JSON, no framework.  What the service reaches next
 * to this, measured in the same run, is the figure that matters.
 *
 * --mode each:      one write() per frame per client, as a server that issues
 *                   one write per message does.
 * --mode coalesce:  frames are queued to each client by reference (no copy)
 *                   and a client's pending frames go out in one writev() per
 *                   loop round, after all of the round's events.
 * In both modes a client the socket cannot take a frame from right away gets
 * a queue, flushed on EPOLLOUT; one whose pending bytes exceed --max-buffer
 * is dropped (counted).
 *
 * Speaks just enough of RFC 6455 for wsb-load and the service's clients:
 * handshake, masked client frames, subscribe/unsubscribe acks, ping/pong,
 * close; GET /health answers 200.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <hiredis.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define CEIL_HTTP_MAX    8192
#define CEIL_MSG_MAX     65536
#define CEIL_EVENTS      512
#define CEIL_MAX_STREAMS 32
#define CEIL_IOV_MAX     1024 /* IOV_MAX on Linux */

enum ceil_state { CS_HTTP = 0, CS_WS, CS_CLOSED };

struct ceil_client {
    int fd;
    int state;
    int sub_idx; /* index in subs[], -1 if not subscribed */
    int dirty;   /* in the dirty list of this round */
    int pollout; /* EPOLLOUT armed */
    int close_after_flush;
    char *in;
    size_t in_len, in_cap;
    /* Frames not yet written, oldest first; q_off bytes of the first are out. */
    struct ceil_frame **q;
    uint32_t q_head, q_len, q_cap;
    size_t q_off;
    size_t pending; /* bytes in the queue not yet written */
    struct ceil_client *next_dead;
};

/* A complete server frame, shared by every client it is queued to.  Made by
 * the reader thread; refs is touched by the event loop only. */
struct ceil_frame {
    uint32_t refs;
    size_t len;
    char data[];
};

static struct {
    char host[256];
    int port;
    char path[256];
    char redis[512];
    char *streams[CEIL_MAX_STREAMS];
    int nstreams;
    int coalesce;
    size_t max_buffer;
    long count;
    const char *json_path;
} cfg;

static struct {
    uint64_t accepted, upgraded, http_other, subscribes, closed_by_client, dropped_slow;
    uint64_t write_errors, protocol_errors, entries, frames_sent, writes, bytes_out;
    uint64_t max_clients, max_subs;
    uint64_t pings;
} st;

/* Reader thread -> loop: frames under the mutex, a wake-up on the eventfd. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ceil_frame **q_items;
static size_t q_len, q_cap;
static int q_efd;
static atomic_int reader_stop, reader_failed;

static struct ceil_client **subs;
static int nsubs, subs_cap;
static struct ceil_client **dirty;
static int ndirty, dirty_cap;
static struct ceil_client *dead;
static int ep, nclients;

static void
ceil_usage(FILE *f)
{
    fprintf(f, "usage: wsb-ceiling [options]\n"
               "  -l, --listen HOST:PORT  (default 127.0.0.1:8090)\n"
               "      --path /ws          WebSocket path (default /ws)\n"
               "  -m, --mode each|coalesce  (default coalesce)\n"
               "      --redis ADDR        host:port or a unix socket path (default "
               "127.0.0.1:6379)\n"
               "      --sports LIST       streams odds.normalized.<sport> (default "
               "basketball_nba,americanfootball_nfl,icehockey_nhl)\n"
               "      --max-buffer BYTES  drop a client with more pending (default 1 MiB)\n"
               "      --count N           entries per XREAD (default 512)\n"
               "      --json FILE         append one JSON line of counters at exit\n");
}

/* ---- reader thread -------------------------------------------------------- */

static redisContext *
ceil_redis_connect(void)
{
    struct timeval tv = {5, 0};
    redisContext *c;
    char host[256];
    int port;

    if (cfg.redis[0] == '/')
        c = redisConnectUnixWithTimeout(cfg.redis, tv);
    else if (bench_split_hostport(cfg.redis, host, sizeof(host), &port) == 0)
        c = redisConnectWithTimeout(host, port, tv);
    else
        return NULL;
    if (c == NULL || c->err) {
        fprintf(stderr, "wsb-ceiling: cannot connect to Redis at %s: %s\n", cfg.redis,
                c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        return NULL;
    }
    tv.tv_sec = 0;
    (void)redisSetTimeout(c, tv); /* block on reads: XREAD BLOCK bounds them */
    return c;
}

static size_t
ceil_json_escape(char *out, const char *s, size_t n)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)sprintf(out + o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    return o;
}

/* Renders one entry ([id, [f1, v1, ...]]) into a server text frame. */
static struct ceil_frame *
ceil_render(const redisReply *entry)
{
    const redisReply *kv;
    size_t need = 128, tlen = 0, h, n;
    struct ceil_frame *fr;
    char *text, iso[40];
    struct timespec ts;
    struct tm tm;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    kv = entry->element[1];
    for (size_t i = 0; i < kv->elements; i++) {
        if (kv->element[i]->type != REDIS_REPLY_STRING)
            return NULL;
        need += 6 * kv->element[i]->len + 4;
    }
    fr = malloc(sizeof(*fr) + need + 10);
    if (fr == NULL)
        return NULL;
    fr->refs = 1;         /* the queue's */
    text = fr->data + 10; /* room for the largest header */
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(iso + n, sizeof(iso) - n, ".%03ldZ", ts.tv_nsec / 1000000);
    tlen += (size_t)sprintf(text, "{\"type\":\"odds_update\",\"payload\":{");
    for (size_t i = 0; i + 1 < kv->elements; i += 2) {
        if (i > 0)
            text[tlen++] = ',';
        text[tlen++] = '"';
        tlen += ceil_json_escape(text + tlen, kv->element[i]->str, kv->element[i]->len);
        text[tlen++] = '"';
        text[tlen++] = ':';
        text[tlen++] = '"';
        tlen += ceil_json_escape(text + tlen, kv->element[i + 1]->str, kv->element[i + 1]->len);
        text[tlen++] = '"';
    }
    tlen += (size_t)sprintf(text + tlen, "},\"timestamp\":\"%s\"}", iso);
    /* Header right before the text. */
    if (tlen < 126) {
        h = 2;
        text[-2] = (char)0x81;
        text[-1] = (char)tlen;
    } else if (tlen < 65536) {
        h = 4;
        text[-4] = (char)0x81;
        text[-3] = 126;
        text[-2] = (char)(tlen >> 8);
        text[-1] = (char)tlen;
    } else {
        h = 10;
        text[-10] = (char)0x81;
        text[-9] = 127;
        for (int i = 0; i < 8; i++)
            text[-8 + i] = (char)((uint64_t)tlen >> (8 * (7 - i)));
    }
    memmove(fr->data, text - h, h + tlen);
    fr->len = h + tlen;
    return fr;
}

static void
ceil_push(struct ceil_frame **batch, size_t n)
{
    uint64_t one = 1;

    pthread_mutex_lock(&q_lock);
    if (q_len + n > q_cap) {
        size_t cap = q_cap ? q_cap : 1024;
        while (cap < q_len + n)
            cap *= 2;
        struct ceil_frame **nq = realloc(q_items, cap * sizeof(*nq));
        if (nq == NULL) {
            pthread_mutex_unlock(&q_lock);
            for (size_t i = 0; i < n; i++)
                free(batch[i]);
            return;
        }
        q_items = nq;
        q_cap = cap;
    }
    memcpy(q_items + q_len, batch, n * sizeof(*batch));
    q_len += n;
    pthread_mutex_unlock(&q_lock);
    if (write(q_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        fprintf(stderr, "wsb-ceiling: write(eventfd) failed: %s\n", strerror(errno));
}

static void *
ceil_reader(void *arg)
{
    redisContext *rc = ceil_redis_connect();
    char ids[CEIL_MAX_STREAMS][64];
    const char *argv[8 + 2 * CEIL_MAX_STREAMS];
    char countbuf[24];
    struct ceil_frame **batch = NULL;
    size_t batch_cap = 0;

    (void)arg;
    if (rc == NULL) {
        atomic_store(&reader_failed, 1);
        return NULL;
    }
    /* Start after the last entry already there: like a new consumer group at $. */
    for (int i = 0; i < cfg.nstreams; i++) {
        redisReply *r = redisCommand(rc, "XREVRANGE %s + - COUNT 1", cfg.streams[i]);
        snprintf(ids[i], sizeof(ids[i]), "0-0");
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2 &&
            r->element[0]->element[0]->type == REDIS_REPLY_STRING)
            snprintf(ids[i], sizeof(ids[i]), "%s", r->element[0]->element[0]->str);
        if (r == NULL) {
            fprintf(stderr, "wsb-ceiling: XREVRANGE failed: %s\n", rc->errstr);
            atomic_store(&reader_failed, 1);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    snprintf(countbuf, sizeof(countbuf), "%ld", cfg.count);
    while (!atomic_load(&reader_stop)) {
        int argc = 0;
        redisReply *r;
        size_t nb = 0;

        argv[argc++] = "XREAD";
        argv[argc++] = "COUNT";
        argv[argc++] = countbuf;
        argv[argc++] = "BLOCK";
        argv[argc++] = "500";
        argv[argc++] = "STREAMS";
        for (int i = 0; i < cfg.nstreams; i++)
            argv[argc++] = cfg.streams[i];
        for (int i = 0; i < cfg.nstreams; i++)
            argv[argc++] = ids[i];
        r = redisCommandArgv(rc, argc, argv, NULL);
        if (r == NULL) {
            fprintf(stderr, "wsb-ceiling: XREAD failed: %s\n", rc->errstr);
            atomic_store(&reader_failed, 1);
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "wsb-ceiling: XREAD: %s\n", r->str);
            freeReplyObject(r);
            atomic_store(&reader_failed, 1);
            break;
        }
        if (r->type == REDIS_REPLY_ARRAY) {
            for (size_t s = 0; s < r->elements; s++) {
                const redisReply *sr = r->element[s];
                int idx = -1;
                if (sr->type != REDIS_REPLY_ARRAY || sr->elements != 2 ||
                    sr->element[0]->type != REDIS_REPLY_STRING ||
                    sr->element[1]->type != REDIS_REPLY_ARRAY)
                    continue;
                for (int i = 0; i < cfg.nstreams; i++) {
                    if (strcmp(cfg.streams[i], sr->element[0]->str) == 0)
                        idx = i;
                }
                if (idx < 0)
                    continue;
                for (size_t e = 0; e < sr->element[1]->elements; e++) {
                    const redisReply *en = sr->element[1]->element[e];
                    struct ceil_frame *fr;
                    if (en->type != REDIS_REPLY_ARRAY || en->elements != 2 ||
                        en->element[0]->type != REDIS_REPLY_STRING)
                        continue;
                    snprintf(ids[idx], sizeof(ids[idx]), "%s", en->element[0]->str);
                    fr = ceil_render(en);
                    if (fr == NULL)
                        continue;
                    if (nb == batch_cap) {
                        size_t cap = batch_cap ? batch_cap * 2 : 1024;
                        struct ceil_frame **nbp = realloc(batch, cap * sizeof(*nbp));
                        if (nbp == NULL) {
                            free(fr);
                            continue;
                        }
                        batch = nbp;
                        batch_cap = cap;
                    }
                    batch[nb++] = fr;
                }
            }
        }
        freeReplyObject(r);
        if (nb > 0)
            ceil_push(batch, nb);
    }
    free(batch);
    redisFree(rc);
    return NULL;
}

/* ---- clients -------------------------------------------------------------- */

static void
ceil_set_pollout(struct ceil_client *c, int on)
{
    struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.ptr = c};

    if (c->pollout == on || c->state == CS_CLOSED)
        return;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) != 0)
        fprintf(stderr, "wsb-ceiling: epoll_ctl(MOD, fd %d) failed: %s\n", c->fd, strerror(errno));
    c->pollout = on;
}

static void
ceil_unsubscribe(struct ceil_client *c)
{
    if (c->sub_idx < 0)
        return;
    subs[c->sub_idx] = subs[--nsubs];
    subs[c->sub_idx]->sub_idx = c->sub_idx;
    c->sub_idx = -1;
}

static void
ceil_close(struct ceil_client *c)
{
    if (c->state == CS_CLOSED)
        return;
    ceil_unsubscribe(c);
    while (c->q_len > 0) {
        struct ceil_frame *fr = c->q[c->q_head];
        c->q_head = (c->q_head + 1) % c->q_cap;
        c->q_len--;
        if (--fr->refs == 0)
            free(fr);
    }
    c->pending = 0;
    close(c->fd); /* leaves epoll too */
    c->state = CS_CLOSED;
    nclients--;
    /* Freed after the round: this round's events and dirty list may name it. */
    c->next_dead = dead;
    dead = c;
}

static void
ceil_frame_unref(struct ceil_frame *fr)
{
    if (--fr->refs == 0)
        free(fr);
}

static struct ceil_frame *
ceil_frame_copy(const char *p, size_t n)
{
    struct ceil_frame *fr = malloc(sizeof(*fr) + n);

    if (fr == NULL)
        return NULL;
    fr->refs = 1;
    fr->len = n;
    memcpy(fr->data, p, n);
    return fr;
}

/* Queues a reference to fr, off bytes of it already written; drops the
 * client past --max-buffer.  Returns -1 if the client was closed. */
static int
ceil_enqueue(struct ceil_client *c, struct ceil_frame *fr, size_t off)
{
    if (c->pending + fr->len - off > cfg.max_buffer) {
        st.dropped_slow++;
        ceil_close(c);
        return -1;
    }
    if (c->q_len == c->q_cap) {
        uint32_t cap = c->q_cap ? c->q_cap * 2 : 64;
        struct ceil_frame **nq = malloc(cap * sizeof(*nq));
        if (nq == NULL) {
            ceil_close(c);
            return -1;
        }
        for (uint32_t i = 0; i < c->q_len; i++)
            nq[i] = c->q[(c->q_head + i) % c->q_cap];
        free(c->q);
        c->q = nq;
        c->q_cap = cap;
        c->q_head = 0;
    }
    if (c->q_len == 0)
        c->q_off = off;
    c->q[(c->q_head + c->q_len) % c->q_cap] = fr;
    c->q_len++;
    fr->refs++;
    c->pending += fr->len - off;
    return 0;
}

/*
 * Writes the queue with writev(), IOV_MAX frames per call, until it is empty
 * or the socket is full (then EPOLLOUT).  Returns -1 if the client was closed.
 */
static int
ceil_flush(struct ceil_client *c)
{
    while (c->q_len > 0) {
        struct iovec iov[CEIL_IOV_MAX];
        int n = 0;
        ssize_t w;

        for (uint32_t i = 0; i < c->q_len && n < CEIL_IOV_MAX; i++, n++) {
            struct ceil_frame *fr = c->q[(c->q_head + i) % c->q_cap];
            size_t off = i == 0 ? c->q_off : 0;
            iov[n].iov_base = fr->data + off;
            iov[n].iov_len = fr->len - off;
        }
        w = writev(c->fd, iov, n);
        st.writes++;
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                ceil_set_pollout(c, 1);
                return 0;
            }
            st.write_errors++;
            ceil_close(c);
            return -1;
        }
        st.bytes_out += (uint64_t)w;
        c->pending -= (size_t)w;
        while (w > 0) {
            struct ceil_frame *fr = c->q[c->q_head];
            size_t left = fr->len - c->q_off;
            if ((size_t)w < left) {
                c->q_off += (size_t)w;
                break;
            }
            w -= (ssize_t)left;
            c->q_off = 0;
            c->q_head = (c->q_head + 1) % c->q_cap;
            c->q_len--;
            ceil_frame_unref(fr);
        }
        if (c->q_len > 0 && c->q_off > 0) {
            ceil_set_pollout(c, 1); /* the socket took part: it is full */
            return 0;
        }
    }
    ceil_set_pollout(c, 0);
    if (c->close_after_flush) {
        ceil_close(c);
        return -1;
    }
    return 0;
}

/* One write() now if nothing is queued, else behind the queue.  Returns -1
 * if the client was closed. */
static int
ceil_send_frame(struct ceil_client *c, struct ceil_frame *fr)
{
    ssize_t w;

    if (c->q_len > 0)
        return ceil_enqueue(c, fr, 0);
    w = write(c->fd, fr->data, fr->len);
    st.writes++;
    if (w < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            st.write_errors++;
            ceil_close(c);
            return -1;
        }
        w = 0;
    }
    st.bytes_out += (uint64_t)w;
    if ((size_t)w == fr->len)
        return 0;
    if (ceil_enqueue(c, fr, (size_t)w) != 0)
        return -1;
    ceil_set_pollout(c, 1);
    return 0;
}

static int
ceil_send_now(struct ceil_client *c, const char *p, size_t n)
{
    struct ceil_frame *fr = ceil_frame_copy(p, n);
    int rc;

    if (fr == NULL) {
        ceil_close(c);
        return -1;
    }
    rc = ceil_send_frame(c, fr);
    ceil_frame_unref(fr);
    return rc;
}

static void
ceil_mark_dirty(struct ceil_client *c)
{
    if (c->dirty)
        return;
    if (ndirty == dirty_cap) {
        int cap = dirty_cap ? dirty_cap * 2 : 1024;
        struct ceil_client **nd = realloc(dirty, (size_t)cap * sizeof(*nd));
        if (nd == NULL)
            return; /* flushed on its next EPOLLOUT or round instead */
        dirty = nd;
        dirty_cap = cap;
    }
    dirty[ndirty++] = c;
    c->dirty = 1;
}

/* A server frame of our own (ack, pong, close). */
static void
ceil_send_control(struct ceil_client *c, int opcode, const char *payload, size_t len)
{
    char buf[256 + 4];

    if (len > 256)
        len = 256;
    buf[0] = (char)(0x80 | opcode);
    if (len < 126) {
        buf[1] = (char)len;
        memcpy(buf + 2, payload, len);
        (void)ceil_send_now(c, buf, len + 2); /* on failure the client is closed */
    } else {
        buf[1] = 126;
        buf[2] = (char)(len >> 8);
        buf[3] = (char)len;
        memcpy(buf + 4, payload, len);
        (void)ceil_send_now(c, buf, len + 4);
    }
}

static void
ceil_on_message(struct ceil_client *c, const char *msg, size_t len)
{
    if (memmem(msg, len, "\"unsubscribe\"", 13) != NULL) {
        static const char ack[] = "{\"type\":\"unsubscribed\",\"payload\":{}}";
        ceil_unsubscribe(c);
        ceil_send_control(c, 0x1, ack, sizeof(ack) - 1);
    } else if (memmem(msg, len, "\"subscribe\"", 11) != NULL) {
        static const char ack[] = "{\"type\":\"subscribed\",\"payload\":{}}";
        st.subscribes++;
        if (c->sub_idx < 0) {
            if (nsubs == subs_cap) {
                int cap = subs_cap ? subs_cap * 2 : 1024;
                struct ceil_client **ns = realloc(subs, (size_t)cap * sizeof(*ns));
                if (ns == NULL) {
                    ceil_close(c);
                    return;
                }
                subs = ns;
                subs_cap = cap;
            }
            c->sub_idx = nsubs;
            subs[nsubs++] = c;
            if ((uint64_t)nsubs > st.max_subs)
                st.max_subs = (uint64_t)nsubs;
        }
        /* The ack goes out before any update that follows it. */
        ceil_send_control(c, 0x1, ack, sizeof(ack) - 1);
    }
}

/* Parses masked client frames from c->in. */
static void
ceil_on_ws_data(struct ceil_client *c)
{
    size_t pos = 0;

    while (c->state == CS_WS && c->in_len - pos >= 2) {
        unsigned char *h = (unsigned char *)c->in + pos;
        size_t avail = c->in_len - pos, hlen;
        uint64_t plen;
        unsigned opcode = h[0] & 0x0f;

        if (!(h[1] & 0x80)) {
            st.protocol_errors++;
            ceil_close(c);
            return;
        }
        if ((hlen = bench_ws_header(h, avail, &plen)) == 0)
            break;
        if (plen > CEIL_MSG_MAX) {
            st.protocol_errors++;
            ceil_close(c);
            return;
        }
        if (avail - hlen < plen)
            break;
        bench_ws_unmask(h + hlen, plen, h + hlen - 4);
        switch (opcode) {
        case 0x1:
            ceil_on_message(c, (char *)h + hlen, (size_t)plen);
            break;
        case 0x8:
            st.closed_by_client++;
            ceil_send_control(c, 0x8, (char *)h + hlen, plen >= 2 ? 2 : 0);
            if (c->state != CS_CLOSED) {
                if (c->q_len == 0)
                    ceil_close(c);
                else
                    c->close_after_flush = 1;
            }
            return;
        case 0x9:
            st.pings++;
            ceil_send_control(c, 0xA, (char *)h + hlen, (size_t)plen);
            break;
        default:
            break; /* pongs, binary, fragments: not ours to care about */
        }
        pos += hlen + (size_t)plen;
    }
    if (c->state == CS_CLOSED)
        return;
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static void
ceil_http_reply(struct ceil_client *c, const char *status, const char *body)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%s",
                     status, strlen(body), body);

    st.http_other++;
    c->close_after_flush = 1;
    if (ceil_send_now(c, buf, (size_t)n) == 0 && c->q_len == 0)
        ceil_close(c);
}

static void
ceil_on_http(struct ceil_client *c)
{
    const char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4), *key, *sp;
    char path[256], accept[BENCH_ACCEPT_LEN + 1], resp[256];
    size_t hlen, klen, plen;
    int n;

    if (end == NULL) {
        if (c->in_len >= CEIL_HTTP_MAX)
            ceil_close(c);
        return;
    }
    hlen = (size_t)(end - c->in) + 4;
    if (c->in_len < 5 || strncmp(c->in, "GET ", 4) != 0 ||
        (sp = memchr(c->in + 4, ' ', hlen - 4)) == NULL) {
        ceil_http_reply(c, "400 Bad Request", "{}");
        return;
    }
    plen = (size_t)(sp - (c->in + 4));
    if (plen >= sizeof(path))
        plen = sizeof(path) - 1;
    memcpy(path, c->in + 4, plen);
    path[plen] = '\0';
    if (strchr(path, '?'))
        *strchr(path, '?') = '\0';
    if (strcmp(path, "/health") == 0) {
        char body[128];
        snprintf(body, sizeof(body),
                 "{\"status\":\"healthy\",\"service\":\"wsb-ceiling\",\"active_clients\":%d}",
                 nsubs);
        ceil_http_reply(c, "200 OK", body);
        return;
    }
    key = bench_http_header(c->in, hlen, "Sec-WebSocket-Key", &klen);
    if (strcmp(path, cfg.path) != 0 || key == NULL || klen == 0 || klen > 64) {
        ceil_http_reply(c, strcmp(path, cfg.path) != 0 ? "404 Not Found" : "426 Upgrade Required",
                        "{}");
        return;
    }
    bench_ws_accept(key, klen, accept);
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                 accept);
    st.upgraded++;
    c->state = CS_WS;
    memmove(c->in, c->in + hlen, c->in_len - hlen);
    c->in_len -= hlen;
    if (ceil_send_now(c, resp, (size_t)n) != 0)
        return;
    if (c->in_len > 0)
        ceil_on_ws_data(c);
}

static void
ceil_on_readable(struct ceil_client *c)
{
    ssize_t n;

    if (c->in_cap - c->in_len < 4096) {
        size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
        char *nb;
        if (cap > CEIL_MSG_MAX + CEIL_HTTP_MAX + 16) {
            st.protocol_errors++;
            ceil_close(c);
            return;
        }
        nb = realloc(c->in, cap);
        if (nb == NULL) {
            ceil_close(c);
            return;
        }
        c->in = nb;
        c->in_cap = cap;
    }
    n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        ceil_close(c);
        return;
    }
    c->in_len += (size_t)n;
    if (c->state == CS_HTTP)
        ceil_on_http(c);
    else if (c->state == CS_WS)
        ceil_on_ws_data(c);
}

static void
ceil_accept(int lfd)
{
    for (;;) {
        int one = 1;
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct ceil_client *c;
        struct epoll_event ev;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                fprintf(stderr, "wsb-ceiling: accept4() failed: %s\n", strerror(errno));
            return;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as the service */
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        c->fd = fd;
        c->sub_idx = -1;
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fprintf(stderr, "wsb-ceiling: epoll_ctl(ADD) failed: %s\n", strerror(errno));
            close(fd);
            free(c);
            continue;
        }
        st.accepted++;
        nclients++;
        if ((uint64_t)nclients > st.max_clients)
            st.max_clients = (uint64_t)nclients;
    }
}

/* Fans the queued frames out to every subscribed client. */
static void
ceil_deliver(void)
{
    struct ceil_frame **items;
    size_t n;
    uint64_t v;

    if (read(q_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        fprintf(stderr, "wsb-ceiling: read(eventfd) failed: %s\n", strerror(errno));
    pthread_mutex_lock(&q_lock);
    items = q_items;
    n = q_len;
    q_items = NULL;
    q_len = q_cap = 0;
    pthread_mutex_unlock(&q_lock);
    for (size_t k = 0; k < n; k++) {
        struct ceil_frame *fr = items[k];
        st.entries++;
        /* Backwards: a client dropped here swaps the last one into its slot. */
        for (int i = nsubs - 1; i >= 0; i--) {
            struct ceil_client *c = subs[i];
            if (cfg.coalesce) {
                if (ceil_enqueue(c, fr, 0) == 0)
                    ceil_mark_dirty(c);
            } else {
                (void)ceil_send_frame(c, fr); /* closes c on error */
            }
            st.frames_sent++;
        }
        ceil_frame_unref(fr); /* the clients' queues hold their own references */
    }
    free(items);
}

static int
ceil_listen(void)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg.port);
    if (inet_pton(AF_INET, cfg.host, &sa.sin_addr) != 1) {
        fprintf(stderr, "wsb-ceiling: listen host must be an IPv4 address: %s\n", cfg.host);
        close(fd);
        return -1;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 4096) != 0) {
        fprintf(stderr, "wsb-ceiling: bind/listen(%s:%d) failed: %s\n", cfg.host, cfg.port,
                strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void
ceil_report(void)
{
    FILE *out;

    fprintf(stderr,
            "wsb-ceiling: mode %s  accepted %llu  upgraded %llu  max clients %llu  entries "
            "%llu  frames %llu  writes %llu  bytes %llu  dropped %llu  write errors %llu\n",
            cfg.coalesce ? "coalesce" : "each", (unsigned long long)st.accepted,
            (unsigned long long)st.upgraded, (unsigned long long)st.max_clients,
            (unsigned long long)st.entries, (unsigned long long)st.frames_sent,
            (unsigned long long)st.writes, (unsigned long long)st.bytes_out,
            (unsigned long long)st.dropped_slow, (unsigned long long)st.write_errors);
    if (cfg.json_path == NULL)
        return;
    out = fopen(cfg.json_path, "a");
    if (out == NULL) {
        fprintf(stderr, "wsb-ceiling: cannot open %s: %s\n", cfg.json_path, strerror(errno));
        return;
    }
    fprintf(out,
            "{\"tool\":\"wsb-ceiling\",\"mode\":\"%s\",\"accepted\":%llu,\"upgraded\":%llu,"
            "\"max_clients\":%llu,\"entries\":%llu,\"frames\":%llu,\"writes\":%llu,"
            "\"bytes_out\":%llu,\"dropped_slow\":%llu,\"write_errors\":%llu,"
            "\"protocol_errors\":%llu}\n",
            cfg.coalesce ? "coalesce" : "each", (unsigned long long)st.accepted,
            (unsigned long long)st.upgraded, (unsigned long long)st.max_clients,
            (unsigned long long)st.entries, (unsigned long long)st.frames_sent,
            (unsigned long long)st.writes, (unsigned long long)st.bytes_out,
            (unsigned long long)st.dropped_slow, (unsigned long long)st.write_errors,
            (unsigned long long)st.protocol_errors);
    fclose(out);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'}, {"path", required_argument, NULL, 'p'},
        {"mode", required_argument, NULL, 'm'},   {"redis", required_argument, NULL, 'R'},
        {"sports", required_argument, NULL, 'S'}, {"max-buffer", required_argument, NULL, 'B'},
        {"count", required_argument, NULL, 'n'},  {"json", required_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    static int marks[3];
    const char *sports = "basketball_nba,americanfootball_nfl,icehockey_nhl";
    struct epoll_event evs[CEIL_EVENTS];
    pthread_t reader;
    sigset_t mask;
    int opt, lfd, sfd, done = 0;
    long v;

    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 8090;
    snprintf(cfg.path, sizeof(cfg.path), "/ws");
    snprintf(cfg.redis, sizeof(cfg.redis), "127.0.0.1:6379");
    cfg.coalesce = 1;
    cfg.max_buffer = 1 << 20;
    cfg.count = 512;
    while ((opt = getopt_long(argc, argv, "l:m:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'l':
            if (bench_split_hostport(optarg, cfg.host, sizeof(cfg.host), &cfg.port) != 0)
                goto bad;
            break;
        case 'p':
            snprintf(cfg.path, sizeof(cfg.path), "%s", optarg);
            break;
        case 'm':
            if (strcmp(optarg, "each") == 0)
                cfg.coalesce = 0;
            else if (strcmp(optarg, "coalesce") == 0)
                cfg.coalesce = 1;
            else
                goto bad;
            break;
        case 'R':
            snprintf(cfg.redis, sizeof(cfg.redis), "%s", optarg);
            break;
        case 'S':
            sports = optarg;
            break;
        case 'B':
            if (bench_parse_long(optarg, 1024, 1L << 34, &v) != 0)
                goto bad;
            cfg.max_buffer = (size_t)v;
            break;
        case 'n':
            if (bench_parse_long(optarg, 1, 100000, &cfg.count) != 0)
                goto bad;
            break;
        case 'j':
            cfg.json_path = optarg;
            break;
        case 'h':
            ceil_usage(stdout);
            return 0;
        default:
            ceil_usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wsb-ceiling: bad value for option: %s\n", optarg);
        return 2;
    }
    {
        char *copy = strdup(sports), *save = NULL;
        if (copy == NULL)
            return 1;
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            if (cfg.nstreams == CEIL_MAX_STREAMS)
                break;
            if (asprintf(&cfg.streams[cfg.nstreams], "odds.normalized.%s", tok) < 0)
                return 1;
            cfg.nstreams++;
        }
        free(copy);
        if (cfg.nstreams == 0)
            goto bad;
    }

    (void)bench_raise_nofile(); /* failure leaves the default: fewer clients, still correct */
    signal(SIGPIPE, SIG_IGN);
    /* Before the reader thread starts, so that it inherits the blocked mask. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0 ||
        (sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        fprintf(stderr, "wsb-ceiling: signalfd() failed: %s\n", strerror(errno));
        return 1;
    }
    lfd = ceil_listen();
    q_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (lfd < 0 || q_efd < 0 || ep < 0)
        return 1;
    {
        struct epoll_event ev = {.events = EPOLLIN};
        ev.data.ptr = &marks[0];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
            return 1;
        ev.data.ptr = &marks[1];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, q_efd, &ev) != 0)
            return 1;
        ev.data.ptr = &marks[2];
        if (epoll_ctl(ep, EPOLL_CTL_ADD, sfd, &ev) != 0)
            return 1;
    }
    if (pthread_create(&reader, NULL, ceil_reader, NULL) != 0) {
        fprintf(stderr, "wsb-ceiling: pthread_create failed\n");
        return 1;
    }
    fprintf(stderr, "wsb-ceiling: listening on %s:%d%s, mode %s, %d streams\n", cfg.host, cfg.port,
            cfg.path, cfg.coalesce ? "coalesce" : "each", cfg.nstreams);

    while (!done) {
        int n = epoll_wait(ep, evs, CEIL_EVENTS, 1000);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "wsb-ceiling: epoll_wait() failed: %s\n", strerror(errno));
            break;
        }
        if (atomic_load(&reader_failed)) {
            fprintf(stderr, "wsb-ceiling: Redis reader stopped\n");
            break;
        }
        for (int i = 0; i < n; i++) {
            void *ptr = evs[i].data.ptr;
            if (ptr == &marks[0]) {
                ceil_accept(lfd);
            } else if (ptr == &marks[1]) {
                ceil_deliver();
            } else if (ptr == &marks[2]) {
                done = 1;
            } else {
                struct ceil_client *c = ptr;
                if (c->state != CS_CLOSED && (evs[i].events & EPOLLOUT))
                    (void)ceil_flush(c); /* closes c on error */
                if (c->state != CS_CLOSED && (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)))
                    ceil_on_readable(c);
            }
        }
        /* Coalesce: one write per client per round, whatever piled up. */
        for (int i = 0; i < ndirty; i++) {
            struct ceil_client *c = dirty[i];
            c->dirty = 0;
            if (c->state != CS_CLOSED && !c->pollout)
                (void)ceil_flush(c);
        }
        ndirty = 0;
        while (dead != NULL) {
            struct ceil_client *c = dead;
            dead = c->next_dead;
            free(c->in);
            free(c->q);
            free(c);
        }
    }
    atomic_store(&reader_stop, 1);
    pthread_join(reader, NULL);
    ceil_report();
    return 0;
}
