/*
 * wsb-load: WebSocket load generator for ws-broadcaster (and the ceiling
 * probe).  Opens thousands of clients with epoll (one thread by default, -t
 * for more), does the real handshake, subscribes each client with a filter
 * taken round-robin from a file, answers pings, parses the server's frames
 * and measures, per delivery, the time since the publisher stamped the entry
 * ("bench_ts", CLOCK_REALTIME nanoseconds, carried through as a string).
 *
 * Timeline: connect at --ramp per second until every client is subscribed or
 * has failed ("ready"; --ready-file is written then), --warmup seconds, a
 * measured window of --duration seconds, then --drain seconds so that entries
 * published at the end of the window still arrive and are counted in the
 * totals.  --idle: connect, subscribe, hold for --duration, answer pings.
 *
 * It never trusts the server: every frame is length-checked, oddities are
 * counted, and a frame it cannot make sense of closes that one connection.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
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
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define LOAD_READ_CHUNK    (256 * 1024)
#define LOAD_MAX_FRAME_DEF (1 << 20)
#define LOAD_HTTP_MAX      8192
#define LOAD_MAX_SOURCES   64
#define LOAD_EVENTS        512
#define LOAD_MAX_CODES     16
#define LOAD_TS_KEY        "\"bench_ts\":\""

enum load_state {
    ST_IDLE = 0,    /* not started yet */
    ST_CONNECTING,  /* connect() in progress */
    ST_HANDSHAKE,   /* request sent, reading the 101 */
    ST_SUBSCRIBING, /* subscribe sent, waiting for the ack */
    ST_SUBSCRIBED,
    ST_CLOSED,
};

/* Why a client never got subscribed; keep in sync with load_fail_names. */
enum load_fail {
    F_SOCKET = 0,
    F_CONNECT_REFUSED,
    F_CONNECT_ADDR,
    F_CONNECT_OTHER,
    F_HTTP_STATUS,
    F_BAD_ACCEPT,
    F_BAD_RESPONSE,
    F_EOF_HANDSHAKE,
    F_CLOSED_BEFORE_ACK,
    F_TIMEOUT,
    F_COUNT
};
static const char *const load_fail_names[F_COUNT] = {
    "socket",     "connect_refused", "connect_addrnotavail", "connect_other",     "http_status",
    "bad_accept", "bad_response",    "eof_in_handshake",     "closed_before_ack", "timeout"};

struct load_client {
    int fd;
    unsigned char state;
    unsigned char settled;   /* counted in the ready tally */
    unsigned char got_close; /* a close frame arrived */
    unsigned char frag_text; /* a fragmented text message is being assembled */
    unsigned char frag_drop; /* ... and it was too large: drop it */
    unsigned short close_code;
    int id;
    int source;
    int filter;
    int64_t t_connect; /* monotonic ns */
    uint64_t skip;     /* payload bytes of an oversized frame still to skip */
    char key[BENCH_KEY_LEN + 1];
    char *in; /* bytes of an incomplete frame or HTTP response */
    size_t in_len, in_cap;
    char *out; /* bytes the socket did not take yet */
    size_t out_len, out_cap;
    char *frag;
    size_t frag_len, frag_cap;
    uint64_t deliveries, win_deliveries;
};

struct load_stats {
    uint64_t connected, subscribed, failed[F_COUNT];
    uint64_t http_status[6]; /* by first digit of a non-101 status */
    uint64_t closed_by_server;
    uint64_t close_codes[LOAD_MAX_CODES];
    unsigned close_code_vals[LOAD_MAX_CODES];
    uint64_t close_other;
    uint64_t deliveries, win_deliveries;
    uint64_t no_ts;      /* text frame that looked like an update but had no bench_ts */
    uint64_t negative;   /* bench_ts in the future */
    uint64_t error_msgs; /* {"type":"error"} */
    uint64_t other_text; /* text messages of another type */
    uint64_t binary;     /* binary messages */
    uint64_t pings, pongs_sent, pongs_rcvd;
    uint64_t masked;     /* frames the server masked (it must not) */
    uint64_t bad_frames; /* RSV bits, reserved opcodes, stray continuations, bad control */
    uint64_t oversized;  /* frames or messages above --max-frame, skipped */
    uint64_t fragments;  /* continuation frames */
    uint64_t reads, bytes_in;
    uint64_t write_errors;
    struct bench_hist lat;   /* publish -> receipt, us, in the window */
    struct bench_hist setup; /* connect() -> subscribed ack, us */
};

struct load_thread {
    int index;
    pthread_t tid;
    int ep;
    struct load_client *clients;
    int nclients;
    int started;
    int open; /* clients not closed */
    char *rbuf;
    size_t rbuf_cap;
    struct bench_rng rng;
    struct load_stats st;
};

/* Settings, read-only once threads run. */
static struct {
    char host[256];
    int port;
    char path[512];
    char hostheader[300];
    int clients;
    int threads;
    double ramp;
    double warmup, duration, drain, connect_timeout;
    int idle;
    size_t max_frame;
    char **filters;
    int nfilters;
    struct sockaddr_in dst;
    struct sockaddr_in sources[LOAD_MAX_SOURCES];
    int nsources;
    const char *json_path;
    const char *ready_path;
    const char *label;
    int quiet;
} cfg;

/* Shared between the threads and main: relaxed atomics, each read on its own;
 * a window bound read a loop round late only moves it by that round. */
static atomic_int settled_count;
static atomic_llong t_measure_start = INT64_MAX, t_measure_end = INT64_MAX;
static atomic_llong t_stop = INT64_MAX;
static atomic_int stop_now;
static int64_t t_begin;

static void load_close(struct load_thread *t, struct load_client *c);

static void
load_usage(FILE *f)
{
    fprintf(f, "usage: wsb-load [options]\n"
               "  -u, --url URL           ws://HOST:PORT/PATH (default ws://127.0.0.1:8080/ws)\n"
               "      --host H --port P --path /ws   the same, piecewise\n"
               "  -c, --clients N         WebSocket clients (default 1000)\n"
               "  -t, --threads N         epoll threads (default 1)\n"
               "  -f, --filters FILE      one subscribe payload (JSON object) per line, given\n"
               "                          round-robin; '#' lines and blank lines skipped\n"
               "                          (default: every client subscribes to everything)\n"
               "  -r, --ramp N            connects per second (default 2000)\n"
               "  -w, --warmup S          seconds after all clients are subscribed before the\n"
               "                          measured window (default 5)\n"
               "  -d, --duration S        measured window, seconds (default 20)\n"
               "      --drain S           seconds after the window, counted in totals only (2)\n"
               "      --connect-timeout S a client not subscribed by then fails (default 30)\n"
               "      --idle              connect, subscribe, hold --duration seconds\n"
               "      --sources N         spread clients over N source addresses 127.0.0.1..N\n"
               "                          (default: one per 10,000 clients, loopback only)\n"
               "      --max-frame BYTES   larger frames are skipped and counted (default 1 MiB)\n"
               "      --json FILE         append one JSON line with the results ('-' = stdout)\n"
               "      --ready-file FILE   written once every client is subscribed or failed\n"
               "      --label TEXT        copied into the JSON line\n"
               "  -q, --quiet             no progress lines\n");
}

/* ---- output helpers ------------------------------------------------------- */

static int
load_out_append(struct load_client *c, const char *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 512;
        char *nb;
        while (cap < c->out_len + n)
            cap *= 2;
        nb = realloc(c->out, cap);
        if (nb == NULL)
            return -1;
        c->out = nb;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    return 0;
}

static void
load_epoll_mod(struct load_thread *t, struct load_client *c, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = c};

    if (epoll_ctl(t->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) {
        fprintf(stderr, "wsb-load: epoll_ctl(MOD, fd %d) failed: %s\n", c->fd, strerror(errno));
        t->st.write_errors++;
    }
}

/* Writes what it can now and keeps the rest for EPOLLOUT.  Returns -1 if the
 * connection is broken (the caller closes it). */
static int
load_send(struct load_thread *t, struct load_client *c, const char *p, size_t n)
{
    if (c->out_len == 0) {
        ssize_t w = write(c->fd, p, n);
        if (w < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                t->st.write_errors++;
                return -1;
            }
            w = 0;
        }
        p += w;
        n -= (size_t)w;
        if (n == 0)
            return 0;
        if (load_out_append(c, p, n) != 0)
            return -1;
        load_epoll_mod(t, c, EPOLLIN | EPOLLOUT);
        return 0;
    }
    return load_out_append(c, p, n);
}

static int
load_flush(struct load_thread *t, struct load_client *c)
{
    while (c->out_len > 0) {
        ssize_t w = write(c->fd, c->out, c->out_len);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            if (errno == EINTR)
                continue;
            t->st.write_errors++;
            return -1;
        }
        memmove(c->out, c->out + w, c->out_len - (size_t)w);
        c->out_len -= (size_t)w;
    }
    load_epoll_mod(t, c, EPOLLIN);
    return 0;
}

/* A masked client frame (RFC 6455 5.3): the server must refuse unmasked ones. */
static int
load_send_frame(struct load_thread *t, struct load_client *c, int opcode, const char *payload,
                size_t len)
{
    char stackbuf[1024], *buf = stackbuf;
    size_t h = 0;
    uint32_t mask = (uint32_t)bench_rng_next(&t->rng);
    unsigned char mk[4];
    int rc;

    if (len + 14 > sizeof(stackbuf) && (buf = malloc(len + 14)) == NULL)
        return -1;
    buf[h++] = (char)(0x80 | opcode);
    if (len < 126) {
        buf[h++] = (char)(0x80 | len);
    } else if (len < 65536) {
        buf[h++] = (char)(0x80 | 126);
        buf[h++] = (char)(len >> 8);
        buf[h++] = (char)len;
    } else {
        buf[h++] = (char)(0x80 | 127);
        for (int i = 7; i >= 0; i--)
            buf[h++] = (char)((uint64_t)len >> (8 * i));
    }
    memcpy(mk, &mask, 4);
    memcpy(buf + h, mk, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        buf[h + i] = (char)(payload[i] ^ mk[i & 3]);
    rc = load_send(t, c, buf, h + len);
    if (buf != stackbuf)
        free(buf);
    return rc;
}

/* ---- connection life ------------------------------------------------------- */

static void
load_settle(struct load_thread *t, struct load_client *c)
{
    (void)t;
    if (!c->settled) {
        c->settled = 1;
        atomic_fetch_add_explicit(&settled_count, 1, memory_order_relaxed);
    }
}

static void
load_fail(struct load_thread *t, struct load_client *c, enum load_fail why)
{
    t->st.failed[why]++;
    load_close(t, c);
}

static void
load_note_close_code(struct load_stats *st, unsigned code)
{
    for (int i = 0; i < LOAD_MAX_CODES; i++) {
        if (st->close_codes[i] != 0 && st->close_code_vals[i] == code) {
            st->close_codes[i]++;
            return;
        }
        if (st->close_codes[i] == 0) {
            st->close_code_vals[i] = code;
            st->close_codes[i] = 1;
            return;
        }
    }
    st->close_other++;
}

/* The server ended a subscribed connection (close frame, EOF or reset). */
static void
load_server_closed(struct load_thread *t, struct load_client *c)
{
    if (c->state == ST_SUBSCRIBED) {
        t->st.closed_by_server++;
        load_note_close_code(&t->st, c->got_close ? c->close_code : 1006);
        load_close(t, c);
    } else if (c->state == ST_SUBSCRIBING) {
        load_fail(t, c, F_CLOSED_BEFORE_ACK);
    } else {
        load_fail(t, c, F_EOF_HANDSHAKE);
    }
}

static void
load_close(struct load_thread *t, struct load_client *c)
{
    if (c->state == ST_CLOSED || c->state == ST_IDLE)
        return;
    if (c->fd >= 0) {
        /* No TIME_WAIT on our side: the next run reuses these ports. */
        struct linger lg = {1, 0};
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)); /* best effort */
        close(c->fd);                                                    /* leaves epoll too */
        c->fd = -1;
    }
    c->state = ST_CLOSED;
    t->open--;
    free(c->in);
    free(c->out);
    free(c->frag);
    c->in = c->out = c->frag = NULL;
    c->in_len = c->in_cap = c->out_len = c->out_cap = c->frag_len = c->frag_cap = 0;
    load_settle(t, c);
}

static void
load_start(struct load_thread *t, struct load_client *c)
{
    struct epoll_event ev;
    int fd, one = 1;

    c->t_connect = bench_mono_ns();
    c->state = ST_CONNECTING;
    t->open++;
    for (int attempt = 0; attempt < cfg.nsources; attempt++) {
        int src = (c->source + attempt) % cfg.nsources;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            c->fd = -1;
            load_fail(t, c, F_SOCKET);
            return;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* best effort */
        if (cfg.nsources > 1) {
            /* Pick the port at connect() time, from the 4-tuple: a bound port
             * would be reserved for every destination. */
            (void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
            if (bind(fd, (struct sockaddr *)&cfg.sources[src], sizeof(cfg.sources[src])) != 0) {
                close(fd);
                continue;
            }
        }
        if (connect(fd, (struct sockaddr *)&cfg.dst, sizeof(cfg.dst)) != 0 &&
            errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            if (e == EADDRNOTAVAIL || e == EADDRINUSE)
                continue; /* this source ran out of ports; try the next */
            c->fd = -1;
            load_fail(t, c, e == ECONNREFUSED ? F_CONNECT_REFUSED : F_CONNECT_OTHER);
            return;
        }
        c->fd = fd;
        c->source = src;
        ev.events = EPOLLOUT;
        ev.data.ptr = c;
        if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            fprintf(stderr, "wsb-load: epoll_ctl(ADD, fd %d) failed: %s\n", fd, strerror(errno));
            load_fail(t, c, F_SOCKET);
        }
        return;
    }
    c->fd = -1;
    load_fail(t, c, F_CONNECT_ADDR);
}

static void
load_send_request(struct load_thread *t, struct load_client *c)
{
    unsigned char nonce[16];
    char req[1024];
    int n;

    for (int i = 0; i < 16; i += 8) {
        uint64_t r = bench_rng_next(&t->rng);
        memcpy(nonce + i, &r, 8);
    }
    bench_base64(nonce, sizeof(nonce), c->key);
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "User-Agent: wsb-load\r\n"
                 "\r\n",
                 cfg.path, cfg.hostheader, c->key);
    c->state = ST_HANDSHAKE;
    load_epoll_mod(t, c, EPOLLIN);
    if (load_send(t, c, req, (size_t)n) != 0)
        load_fail(t, c, F_EOF_HANDSHAKE);
}

static void
load_send_subscribe(struct load_thread *t, struct load_client *c)
{
    const char *filter = cfg.nfilters ? cfg.filters[c->filter] : "{}";
    size_t flen = strlen(filter);
    char *msg = malloc(flen + 64);
    int n;

    if (msg == NULL) {
        load_fail(t, c, F_SOCKET);
        return;
    }
    n = snprintf(msg, flen + 64, "{\"type\":\"subscribe\",\"payload\":%s}", filter);
    c->state = ST_SUBSCRIBING;
    if (load_send_frame(t, c, 0x1, msg, (size_t)n) != 0)
        load_fail(t, c, F_CLOSED_BEFORE_ACK);
    free(msg);
}

/* Checks the 101 in buf[0..hlen); returns 0 or a failure reason. */
static int
load_check_response(struct load_thread *t, struct load_client *c, const char *buf, size_t hlen)
{
    char expect[BENCH_ACCEPT_LEN + 1];
    const char *v;
    size_t vlen;
    int status;

    if (hlen < 12 || strncmp(buf, "HTTP/1.1 ", 9) != 0 || buf[9] < '1' || buf[9] > '5')
        return F_BAD_RESPONSE;
    status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (status != 101) {
        t->st.http_status[buf[9] - '0']++;
        return F_HTTP_STATUS;
    }
    bench_ws_accept(c->key, strlen(c->key), expect);
    v = bench_http_header(buf, hlen, "Sec-WebSocket-Accept", &vlen);
    if (v == NULL || vlen != BENCH_ACCEPT_LEN || memcmp(v, expect, BENCH_ACCEPT_LEN) != 0)
        return F_BAD_ACCEPT;
    return 0;
}

/* ---- messages ------------------------------------------------------------- */

static const char *
load_find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    return memmem(hay, len, needle, nlen);
}

static void
load_on_text(struct load_thread *t, struct load_client *c, const char *msg, size_t len,
             int64_t now_real, int64_t now_mono)
{
    const char *p;
    size_t klen = sizeof(LOAD_TS_KEY) - 1;

    if (c->state == ST_SUBSCRIBING) {
        if (load_find(msg, len, "\"subscribed\"", 12) != NULL) {
            c->state = ST_SUBSCRIBED;
            t->st.subscribed++;
            bench_hist_record(&t->st.setup, (now_mono - c->t_connect) / 1000);
            load_settle(t, c);
            return;
        }
        if (load_find(msg, len, "\"error\"", 7) != NULL) {
            t->st.error_msgs++;
            return;
        }
    }
    /* The stamp is the last payload field in the service's order (extras come
     * after the 13 known fields): look near the end first. */
    p = NULL;
    if (len > 200)
        p = load_find(msg + len - 200, 200, LOAD_TS_KEY, klen);
    if (p == NULL)
        p = load_find(msg, len, LOAD_TS_KEY, klen);
    if (p != NULL) {
        const char *d = p + klen, *end = msg + len;
        int64_t ts = 0;
        int digits = 0;
        while (d < end && *d >= '0' && *d <= '9' && digits < 19) {
            ts = ts * 10 + (*d - '0');
            d++;
            digits++;
        }
        if (digits == 0 || d >= end || *d != '"') {
            t->st.no_ts++;
            return;
        }
        c->deliveries++;
        t->st.deliveries++;
        if (now_mono >= atomic_load_explicit(&t_measure_start, memory_order_relaxed) &&
            now_mono < atomic_load_explicit(&t_measure_end, memory_order_relaxed)) {
            int64_t lat = now_real - ts;
            if (lat < 0)
                t->st.negative++;
            c->win_deliveries++;
            t->st.win_deliveries++;
            bench_hist_record(&t->st.lat, lat / 1000);
        }
        return;
    }
    if (load_find(msg, len, "\"type\":\"error\"", 14) != NULL)
        t->st.error_msgs++;
    else if (load_find(msg, len, "update", 6) != NULL || load_find(msg, len, "opportunity", 11))
        t->st.no_ts++;
    else
        t->st.other_text++;
}

/* Handles one complete frame; returns -1 if the connection was closed. */
static int
load_on_frame(struct load_thread *t, struct load_client *c, unsigned b0, char *payload, size_t len,
              int64_t now_real, int64_t now_mono)
{
    unsigned opcode = b0 & 0x0f;
    int fin = (b0 & 0x80) != 0;

    if (b0 & 0x70)
        t->st.bad_frames++;
    switch (opcode) {
    case 0x0: /* continuation */
        t->st.fragments++;
        if (!c->frag_text && !c->frag_drop) {
            t->st.bad_frames++;
            break;
        }
        if (!c->frag_drop) {
            if (c->frag_len + len > cfg.max_frame) {
                c->frag_drop = 1;
                t->st.oversized++;
            } else {
                if (c->frag_len + len > c->frag_cap) {
                    size_t cap = (c->frag_len + len) * 2;
                    char *nb = realloc(c->frag, cap);
                    if (nb == NULL) {
                        load_close(t, c);
                        return -1;
                    }
                    c->frag = nb;
                    c->frag_cap = cap;
                }
                memcpy(c->frag + c->frag_len, payload, len);
                c->frag_len += len;
            }
        }
        if (fin) {
            if (!c->frag_drop)
                load_on_text(t, c, c->frag, c->frag_len, now_real, now_mono);
            c->frag_text = c->frag_drop = 0;
            c->frag_len = 0;
        }
        break;
    case 0x1: /* text */
        if (c->frag_text || c->frag_drop) {
            t->st.bad_frames++; /* a new message before the last one ended */
            c->frag_text = c->frag_drop = 0;
            c->frag_len = 0;
        }
        if (fin) {
            load_on_text(t, c, payload, len, now_real, now_mono);
        } else {
            t->st.fragments++;
            c->frag_text = 1;
            c->frag_len = 0;
            if (len > c->frag_cap) {
                char *nb = realloc(c->frag, len * 2);
                if (nb == NULL) {
                    load_close(t, c);
                    return -1;
                }
                c->frag = nb;
                c->frag_cap = len * 2;
            }
            memcpy(c->frag, payload, len);
            c->frag_len = len;
        }
        break;
    case 0x2: /* binary */
        t->st.binary++;
        if (!fin) {
            c->frag_drop = 1; /* its continuations are skipped */
            c->frag_text = 0;
        }
        break;
    case 0x8: /* close */
        if (len >= 2)
            c->close_code =
                (unsigned short)((unsigned char)payload[0] << 8 | (unsigned char)payload[1]);
        else
            c->close_code = 1005;
        c->got_close = 1;
        if (len == 1 || len > 125 || !fin)
            t->st.bad_frames++;
        {
            /* Echo the code, as RFC 6455 5.5.1 asks; the socket closes next. */
            char code[2] = {(char)(c->close_code >> 8), (char)c->close_code};
            (void)load_send_frame(t, c, 0x8, code, len >= 2 ? 2 : 0); /* best effort */
        }
        load_server_closed(t, c);
        return -1;
    case 0x9: /* ping */
        t->st.pings++;
        if (len > 125 || !fin) {
            t->st.bad_frames++;
            break;
        }
        if (load_send_frame(t, c, 0xA, payload, len) != 0) {
            load_server_closed(t, c);
            return -1;
        }
        t->st.pongs_sent++;
        break;
    case 0xA:
        t->st.pongs_rcvd++;
        break;
    default:
        t->st.bad_frames++;
        break;
    }
    return 0;
}

/*
 * Parses the frames in buf[0..len); keeps an incomplete tail in c->in.
 * Returns -1 if the connection was closed.
 */
static int
load_parse(struct load_thread *t, struct load_client *c, char *buf, size_t len, int64_t now_real,
           int64_t now_mono)
{
    size_t pos = 0;

    while (pos < len) {
        unsigned char *h = (unsigned char *)buf + pos;
        size_t avail = len - pos, hlen;
        uint64_t plen;
        int masked;

        if (c->skip > 0) {
            size_t n = c->skip < avail ? (size_t)c->skip : avail;
            c->skip -= n;
            pos += n;
            continue;
        }
        if ((hlen = bench_ws_header(h, avail, &plen)) == 0)
            break;
        masked = (h[1] & 0x80) != 0;
        if (plen >> 62) {
            /* Nonsense length: no way to find the next frame. */
            t->st.bad_frames++;
            load_server_closed(t, c);
            return -1;
        }
        if (masked)
            t->st.masked++;
        if (plen > cfg.max_frame) {
            t->st.oversized++;
            if ((h[0] & 0x0f) == 0x0 || (h[0] & 0x0f) == 0x1) {
                /* Drop the whole message it belongs to. */
                c->frag_drop = !(h[0] & 0x80);
                c->frag_text = 0;
                c->frag_len = 0;
            }
            pos += hlen;
            c->skip = plen;
            continue;
        }
        if (avail - hlen < plen)
            break;
        if (masked)
            bench_ws_unmask(h + hlen, plen, h + hlen - 4);
        if (load_on_frame(t, c, h[0], (char *)h + hlen, (size_t)plen, now_real, now_mono) != 0)
            return -1;
        pos += hlen + (size_t)plen;
    }
    /* Keep the tail (at most one frame, bounded by max_frame + 14). */
    if (pos < len) {
        size_t rest = len - pos;
        if (rest > c->in_cap) {
            size_t cap = rest < 1024 ? 1024 : rest * 2;
            char *nb = malloc(cap);
            if (nb == NULL) {
                load_close(t, c);
                return -1;
            }
            free(c->in);
            c->in = nb;
            c->in_cap = cap;
        }
        memmove(c->in, buf + pos, rest);
        c->in_len = rest;
    } else {
        c->in_len = 0;
        if (c->in_cap > 65536) {
            free(c->in);
            c->in = NULL;
            c->in_cap = 0;
        }
    }
    return 0;
}

static void
load_on_readable(struct load_thread *t, struct load_client *c)
{
    size_t off = c->in_len;
    ssize_t n;
    int64_t now_real, now_mono;
    char *buf = t->rbuf;

    /* The tail of the last read goes first, then new bytes after it. */
    if (off > 0)
        memcpy(buf, c->in, off);
    n = read(c->fd, buf + off, LOAD_READ_CHUNK);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        load_server_closed(t, c);
        return;
    }
    if (n == 0) {
        load_server_closed(t, c);
        return;
    }
    now_real = bench_real_ns();
    now_mono = bench_mono_ns();
    t->st.reads++;
    t->st.bytes_in += (uint64_t)n;
    if (c->state == ST_HANDSHAKE) {
        size_t total = off + (size_t)n;
        const char *end = memmem(buf, total, "\r\n\r\n", 4);
        size_t hlen;
        int why;
        if (end == NULL) {
            if (total > LOAD_HTTP_MAX) {
                load_fail(t, c, F_BAD_RESPONSE);
                return;
            }
            if (total > c->in_cap) {
                char *nb = realloc(c->in, LOAD_HTTP_MAX);
                if (nb == NULL) {
                    load_fail(t, c, F_SOCKET);
                    return;
                }
                c->in = nb;
                c->in_cap = LOAD_HTTP_MAX;
            }
            memcpy(c->in, buf, total);
            c->in_len = total;
            return;
        }
        hlen = (size_t)(end - buf) + 4;
        why = load_check_response(t, c, buf, hlen);
        if (why != 0) {
            load_fail(t, c, (enum load_fail)why);
            return;
        }
        t->st.connected++;
        c->in_len = 0;
        load_send_subscribe(t, c);
        if (c->state == ST_CLOSED)
            return;
        if (total > hlen)
            (void)load_parse(t, c, buf + hlen, total - hlen, now_real, now_mono);
        return;
    }
    (void)load_parse(t, c, buf, off + (size_t)n, now_real, now_mono);
}

static void
load_on_event(struct load_thread *t, struct load_client *c, uint32_t ev)
{
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);
        if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0)
            err = errno;
        if (err != 0) {
            load_fail(t, c,
                      err == ECONNREFUSED    ? F_CONNECT_REFUSED
                      : err == EADDRNOTAVAIL ? F_CONNECT_ADDR
                                             : F_CONNECT_OTHER);
            return;
        }
        load_send_request(t, c);
        return;
    }
    if (ev & EPOLLOUT) {
        if (load_flush(t, c) != 0) {
            load_server_closed(t, c);
            return;
        }
    }
    if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP))
        load_on_readable(t, c);
}

/* ---- threads -------------------------------------------------------------- */

static void
load_check_timeouts(struct load_thread *t, int64_t now)
{
    int64_t limit = (int64_t)(cfg.connect_timeout * 1e9);

    for (int i = 0; i < t->started; i++) {
        struct load_client *c = &t->clients[i];
        if (c->state >= ST_CONNECTING && c->state < ST_SUBSCRIBED && now - c->t_connect > limit)
            load_fail(t, c, F_TIMEOUT);
    }
}

static void *
load_thread_main(void *arg)
{
    struct load_thread *t = arg;
    struct epoll_event evs[LOAD_EVENTS];
    double rate = cfg.ramp / cfg.threads;
    int64_t last_timeout_check = 0;

    for (;;) {
        int64_t now = bench_mono_ns();
        int timeout_ms = 50, n;

        if (atomic_load_explicit(&stop_now, memory_order_relaxed) ||
            now >= atomic_load_explicit(&t_stop, memory_order_relaxed))
            break;
        if (t->started < t->nclients) {
            int due = (int)((double)(now - t_begin) / 1e9 * rate) + 1;
            if (due > t->nclients)
                due = t->nclients;
            while (t->started < due)
                load_start(t, &t->clients[t->started++]);
            timeout_ms = 1;
        }
        if (now - last_timeout_check > 500000000LL) {
            load_check_timeouts(t, now);
            last_timeout_check = now;
        }
        n = epoll_wait(t->ep, evs, LOAD_EVENTS, timeout_ms);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "wsb-load: epoll_wait() failed: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            struct load_client *c = evs[i].data.ptr;
            if (c->state != ST_CLOSED)
                load_on_event(t, c, evs[i].events);
        }
    }
    for (int i = 0; i < t->started; i++)
        load_close(t, &t->clients[i]);
    return NULL;
}

/* ---- settings ------------------------------------------------------------- */

static int
load_parse_url(const char *url)
{
    const char *p = url, *slash, *colon;
    size_t hlen;

    if (strncmp(p, "ws://", 5) != 0) {
        fprintf(stderr, "wsb-load: only ws:// URLs are supported: %s\n", url);
        return -1;
    }
    p += 5;
    slash = strchr(p, '/');
    if (slash == NULL)
        slash = p + strlen(p);
    colon = memchr(p, ':', (size_t)(slash - p));
    hlen = (size_t)((colon ? colon : slash) - p);
    if (hlen == 0 || hlen >= sizeof(cfg.host))
        return -1;
    memcpy(cfg.host, p, hlen);
    cfg.host[hlen] = '\0';
    if (colon) {
        char port[8];
        long v;
        size_t plen = (size_t)(slash - colon - 1);
        if (plen == 0 || plen >= sizeof(port))
            return -1;
        memcpy(port, colon + 1, plen);
        port[plen] = '\0';
        if (bench_parse_long(port, 1, 65535, &v) != 0)
            return -1;
        cfg.port = (int)v;
    } else {
        cfg.port = 80;
    }
    snprintf(cfg.path, sizeof(cfg.path), "%s", *slash ? slash : "/");
    return 0;
}

static int
load_read_filters(const char *path)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    if (f == NULL) {
        fprintf(stderr, "wsb-load: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        char *s = line, **nf;
        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' '))
            s[--n] = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        if (*s != '{') {
            fprintf(stderr, "wsb-load: %s: not a JSON object: %s\n", path, s);
            fclose(f);
            free(line);
            return -1;
        }
        nf = realloc(cfg.filters, (size_t)(cfg.nfilters + 1) * sizeof(*nf));
        if (nf == NULL || (nf[cfg.nfilters] = strdup(s)) == NULL) {
            fclose(f);
            free(line);
            return -1;
        }
        cfg.filters = nf;
        cfg.nfilters++;
    }
    free(line);
    fclose(f);
    if (cfg.nfilters == 0) {
        fprintf(stderr, "wsb-load: %s has no filter lines\n", path);
        return -1;
    }
    return 0;
}

/* ---- report --------------------------------------------------------------- */

static int
load_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void
load_merge(struct load_stats *dst, const struct load_stats *src)
{
    dst->connected += src->connected;
    dst->subscribed += src->subscribed;
    for (int i = 0; i < F_COUNT; i++)
        dst->failed[i] += src->failed[i];
    for (int i = 0; i < 6; i++)
        dst->http_status[i] += src->http_status[i];
    dst->closed_by_server += src->closed_by_server;
    for (int i = 0; i < LOAD_MAX_CODES && src->close_codes[i]; i++) {
        for (uint64_t k = 0; k < src->close_codes[i]; k++)
            load_note_close_code(dst, src->close_code_vals[i]);
    }
    dst->close_other += src->close_other;
    dst->deliveries += src->deliveries;
    dst->win_deliveries += src->win_deliveries;
    dst->no_ts += src->no_ts;
    dst->negative += src->negative;
    dst->error_msgs += src->error_msgs;
    dst->other_text += src->other_text;
    dst->binary += src->binary;
    dst->pings += src->pings;
    dst->pongs_sent += src->pongs_sent;
    dst->pongs_rcvd += src->pongs_rcvd;
    dst->masked += src->masked;
    dst->bad_frames += src->bad_frames;
    dst->oversized += src->oversized;
    dst->fragments += src->fragments;
    dst->reads += src->reads;
    dst->bytes_in += src->bytes_in;
    dst->write_errors += src->write_errors;
    bench_hist_merge(&dst->lat, &src->lat);
    bench_hist_merge(&dst->setup, &src->setup);
}

static void
load_report(struct load_stats *st, struct load_thread *threads, double ready_s, double window_s)
{
    uint64_t *per = malloc((size_t)cfg.clients * sizeof(*per));
    uint64_t failed = 0, pmin = 0, pmed = 0, pmax = 0, nper = 0;
    double dps = window_s > 0 ? (double)st->win_deliveries / window_s : 0;
    struct bench_hist *h = &st->lat;
    int64_t p50 = bench_hist_percentile(h, 50), p90 = bench_hist_percentile(h, 90),
            p99 = bench_hist_percentile(h, 99), p999 = bench_hist_percentile(h, 99.9);
    FILE *out;

    for (int i = 0; i < F_COUNT; i++)
        failed += st->failed[i];
    /* Fairness over the clients that stayed subscribed through the window. */
    if (per != NULL) {
        for (int k = 0; k < cfg.threads; k++) {
            for (int i = 0; i < threads[k].nclients; i++) {
                const struct load_client *c = &threads[k].clients[i];
                if (c->state == ST_SUBSCRIBED || (c->state == ST_CLOSED && c->deliveries > 0))
                    per[nper++] = c->win_deliveries;
            }
        }
        if (nper > 0) {
            qsort(per, nper, sizeof(*per), load_cmp_u64);
            pmin = per[0];
            pmed = per[nper / 2];
            pmax = per[nper - 1];
        }
    }
    free(per);

    if (!cfg.quiet || cfg.json_path == NULL || strcmp(cfg.json_path, "-") != 0) {
        printf("wsb-load: %s:%d%s  clients %d  threads %d  %s\n", cfg.host, cfg.port, cfg.path,
               cfg.clients, cfg.threads, cfg.idle ? "idle" : "streaming");
        printf("  connected %llu  subscribed %llu  failed %llu  (all settled after %.2f s, "
               "setup p50 %.1f ms p99 %.1f ms)\n",
               (unsigned long long)st->connected, (unsigned long long)st->subscribed,
               (unsigned long long)failed, ready_s,
               (double)bench_hist_percentile(&st->setup, 50) / 1000.0,
               (double)bench_hist_percentile(&st->setup, 99) / 1000.0);
        for (int i = 0; i < F_COUNT; i++) {
            if (st->failed[i])
                printf("    failed %-22s %llu\n", load_fail_names[i],
                       (unsigned long long)st->failed[i]);
        }
        for (int i = 1; i < 6; i++) {
            if (st->http_status[i])
                printf("    http %dxx %llu\n", i, (unsigned long long)st->http_status[i]);
        }
        printf("  closed by server %llu", (unsigned long long)st->closed_by_server);
        for (int i = 0; i < LOAD_MAX_CODES && st->close_codes[i]; i++)
            printf("  [%u: %llu]", st->close_code_vals[i], (unsigned long long)st->close_codes[i]);
        printf("\n");
        if (!cfg.idle) {
            printf("  window %.2f s: %llu deliveries, %.0f/s;  total deliveries %llu\n", window_s,
                   (unsigned long long)st->win_deliveries, dps, (unsigned long long)st->deliveries);
            printf("  latency us: p50 %lld  p90 %lld  p99 %lld  p99.9 %lld  max %lld  "
                   "mean %.0f  (n=%llu)\n",
                   (long long)p50, (long long)p90, (long long)p99, (long long)p999,
                   (long long)h->max * (h->total > 0), h->total ? h->sum / (double)h->total : 0.0,
                   (unsigned long long)h->total);
            printf("  per client in window: min %llu  median %llu  max %llu  (%llu clients)\n",
                   (unsigned long long)pmin, (unsigned long long)pmed, (unsigned long long)pmax,
                   (unsigned long long)nper);
        }
        printf("  pings %llu  pongs sent %llu  errors %llu  other text %llu  binary %llu  "
               "no bench_ts %llu  bad frames %llu  masked %llu  oversized %llu  fragments "
               "%llu  negative %llu\n",
               (unsigned long long)st->pings, (unsigned long long)st->pongs_sent,
               (unsigned long long)st->error_msgs, (unsigned long long)st->other_text,
               (unsigned long long)st->binary, (unsigned long long)st->no_ts,
               (unsigned long long)st->bad_frames, (unsigned long long)st->masked,
               (unsigned long long)st->oversized, (unsigned long long)st->fragments,
               (unsigned long long)st->negative);
        fflush(stdout);
    }
    if (cfg.json_path == NULL)
        return;
    out = strcmp(cfg.json_path, "-") == 0 ? stdout : fopen(cfg.json_path, "a");
    if (out == NULL) {
        fprintf(stderr, "wsb-load: cannot open %s: %s\n", cfg.json_path, strerror(errno));
        return;
    }
    fprintf(out, "{\"tool\":\"wsb-load\",\"label\":");
    bench_json_str(out, cfg.label ? cfg.label : "");
    fprintf(out, ",\"url\":\"ws://%s:%d", cfg.host, cfg.port);
    fprintf(out, "%s\",\"mode\":\"%s\",\"clients\":%d,\"threads\":%d,\"filters\":%d,", cfg.path,
            cfg.idle ? "idle" : "stream", cfg.clients, cfg.threads, cfg.nfilters);
    fprintf(out,
            "\"connected\":%llu,\"subscribed\":%llu,\"failed\":%llu,\"ready_s\":%.3f,"
            "\"setup_p50_us\":%lld,\"setup_p99_us\":%lld,\"setup_max_us\":%lld,",
            (unsigned long long)st->connected, (unsigned long long)st->subscribed,
            (unsigned long long)failed, ready_s, (long long)bench_hist_percentile(&st->setup, 50),
            (long long)bench_hist_percentile(&st->setup, 99),
            (long long)(st->setup.total ? st->setup.max : 0));
    fprintf(out, "\"failed_by\":{");
    for (int i = 0, first = 1; i < F_COUNT; i++) {
        if (st->failed[i]) {
            fprintf(out, "%s\"%s\":%llu", first ? "" : ",", load_fail_names[i],
                    (unsigned long long)st->failed[i]);
            first = 0;
        }
    }
    fprintf(out, "},\"closed_by_server\":%llu,\"close_codes\":{",
            (unsigned long long)st->closed_by_server);
    for (int i = 0; i < LOAD_MAX_CODES && st->close_codes[i]; i++)
        fprintf(out, "%s\"%u\":%llu", i ? "," : "", st->close_code_vals[i],
                (unsigned long long)st->close_codes[i]);
    fprintf(out,
            "},\"warmup_s\":%.3f,\"duration_s\":%.3f,\"window_s\":%.3f,"
            "\"deliveries_window\":%llu,\"deliveries_total\":%llu,\"deliveries_per_s\":%.1f,",
            cfg.warmup, cfg.duration, window_s, (unsigned long long)st->win_deliveries,
            (unsigned long long)st->deliveries, dps);
    fprintf(out,
            "\"lat_n\":%llu,\"lat_p50_us\":%lld,\"lat_p90_us\":%lld,\"lat_p99_us\":%lld,"
            "\"lat_p999_us\":%lld,\"lat_max_us\":%lld,\"lat_mean_us\":%.1f,",
            (unsigned long long)h->total, (long long)p50, (long long)p90, (long long)p99,
            (long long)p999, (long long)(h->total ? h->max : 0),
            h->total ? h->sum / (double)h->total : 0.0);
    fprintf(out,
            "\"per_client_min\":%llu,\"per_client_median\":%llu,\"per_client_max\":%llu,"
            "\"per_client_n\":%llu,",
            (unsigned long long)pmin, (unsigned long long)pmed, (unsigned long long)pmax,
            (unsigned long long)nper);
    fprintf(out,
            "\"pings\":%llu,\"pongs_sent\":%llu,\"error_msgs\":%llu,\"other_text\":%llu,"
            "\"binary\":%llu,\"no_ts\":%llu,\"bad_frames\":%llu,\"masked\":%llu,"
            "\"oversized\":%llu,\"fragments\":%llu,\"negative_lat\":%llu,\"bytes_in\":%llu,"
            "\"reads\":%llu,\"load_rss_kb\":%ld}\n",
            (unsigned long long)st->pings, (unsigned long long)st->pongs_sent,
            (unsigned long long)st->error_msgs, (unsigned long long)st->other_text,
            (unsigned long long)st->binary, (unsigned long long)st->no_ts,
            (unsigned long long)st->bad_frames, (unsigned long long)st->masked,
            (unsigned long long)st->oversized, (unsigned long long)st->fragments,
            (unsigned long long)st->negative, (unsigned long long)st->bytes_in,
            (unsigned long long)st->reads, bench_self_hwm_kb());
    if (out != stdout)
        fclose(out);
    else
        fflush(out);
}

/* ---- main ----------------------------------------------------------------- */

static void
load_on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_now, 1);
}

static void
load_write_ready(int64_t now)
{
    FILE *f;
    char tmp[4096];

    if (cfg.ready_path == NULL)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", cfg.ready_path);
    f = fopen(tmp, "w");
    if (f == NULL) {
        fprintf(stderr, "wsb-load: cannot write %s: %s\n", tmp, strerror(errno));
        return;
    }
    fprintf(f, "ready %.3f\n", (double)(now - t_begin) / 1e9);
    fclose(f);
    if (rename(tmp, cfg.ready_path) != 0)
        fprintf(stderr, "wsb-load: rename(%s) failed: %s\n", tmp, strerror(errno));
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {{"url", required_argument, NULL, 'u'},
                                         {"host", required_argument, NULL, 'H'},
                                         {"port", required_argument, NULL, 'P'},
                                         {"path", required_argument, NULL, 'A'},
                                         {"clients", required_argument, NULL, 'c'},
                                         {"threads", required_argument, NULL, 't'},
                                         {"filters", required_argument, NULL, 'f'},
                                         {"ramp", required_argument, NULL, 'r'},
                                         {"warmup", required_argument, NULL, 'w'},
                                         {"duration", required_argument, NULL, 'd'},
                                         {"drain", required_argument, NULL, 'D'},
                                         {"connect-timeout", required_argument, NULL, 'T'},
                                         {"idle", no_argument, NULL, 'I'},
                                         {"sources", required_argument, NULL, 'S'},
                                         {"max-frame", required_argument, NULL, 'M'},
                                         {"json", required_argument, NULL, 'j'},
                                         {"ready-file", required_argument, NULL, 'R'},
                                         {"label", required_argument, NULL, 'L'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_thread *threads;
    struct load_stats total;
    long v, nofile, sources = 0;
    int opt, per, rem, ready_reported = 0, last_settled = -1;
    int64_t t_ready = 0, t_ms = 0, t_me = 0, last_progress;
    double window_s = 0;
    struct sigaction sa;

    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 8080;
    snprintf(cfg.path, sizeof(cfg.path), "/ws");
    cfg.clients = 1000;
    cfg.threads = 1;
    cfg.ramp = 2000;
    cfg.warmup = 5;
    cfg.duration = 20;
    cfg.drain = 2;
    cfg.connect_timeout = 30;
    cfg.max_frame = LOAD_MAX_FRAME_DEF;
    while ((opt = getopt_long(argc, argv, "u:c:t:f:r:w:d:qh", opts, NULL)) != -1) {
        double s;
        switch (opt) {
        case 'u':
            if (load_parse_url(optarg) != 0) {
                fprintf(stderr, "wsb-load: bad URL %s\n", optarg);
                return 2;
            }
            break;
        case 'H':
            snprintf(cfg.host, sizeof(cfg.host), "%s", optarg);
            break;
        case 'P':
            if (bench_parse_long(optarg, 1, 65535, &v) != 0)
                goto bad;
            cfg.port = (int)v;
            break;
        case 'A':
            snprintf(cfg.path, sizeof(cfg.path), "%s", optarg);
            break;
        case 'c':
            if (bench_parse_long(optarg, 1, 10000000, &v) != 0)
                goto bad;
            cfg.clients = (int)v;
            break;
        case 't':
            if (bench_parse_long(optarg, 1, 256, &v) != 0)
                goto bad;
            cfg.threads = (int)v;
            break;
        case 'f':
            if (load_read_filters(optarg) != 0)
                return 2;
            break;
        case 'r':
            if ((s = bench_parse_seconds(optarg)) <= 0)
                goto bad;
            cfg.ramp = s;
            break;
        case 'w':
        case 'd':
        case 'D':
        case 'T':
            if ((s = bench_parse_seconds(optarg)) < 0)
                goto bad;
            if (opt == 'w')
                cfg.warmup = s;
            else if (opt == 'd')
                cfg.duration = s;
            else if (opt == 'D')
                cfg.drain = s;
            else
                cfg.connect_timeout = s;
            break;
        case 'I':
            cfg.idle = 1;
            break;
        case 'S':
            if (bench_parse_long(optarg, 1, LOAD_MAX_SOURCES, &sources) != 0)
                goto bad;
            break;
        case 'M':
            if (bench_parse_long(optarg, 1024, 1L << 30, &v) != 0)
                goto bad;
            cfg.max_frame = (size_t)v;
            break;
        case 'j':
            cfg.json_path = optarg;
            break;
        case 'R':
            cfg.ready_path = optarg;
            break;
        case 'L':
            cfg.label = optarg;
            break;
        case 'q':
            cfg.quiet = 1;
            break;
        case 'h':
            load_usage(stdout);
            return 0;
        default:
            load_usage(stderr);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "wsb-load: bad value for option: %s\n", optarg);
        return 2;
    }
    if (optind < argc) {
        load_usage(stderr);
        return 2;
    }
    if (cfg.threads > cfg.clients)
        cfg.threads = cfg.clients;

    memset(&cfg.dst, 0, sizeof(cfg.dst));
    cfg.dst.sin_family = AF_INET;
    cfg.dst.sin_port = htons((uint16_t)cfg.port);
    if (strcmp(cfg.host, "localhost") == 0 ? inet_pton(AF_INET, "127.0.0.1", &cfg.dst.sin_addr) != 1
                                           : inet_pton(AF_INET, cfg.host, &cfg.dst.sin_addr) != 1) {
        fprintf(stderr, "wsb-load: host must be an IPv4 address (or localhost): %s\n", cfg.host);
        return 2;
    }
    if (cfg.port == 80)
        snprintf(cfg.hostheader, sizeof(cfg.hostheader), "%s", cfg.host);
    else
        snprintf(cfg.hostheader, sizeof(cfg.hostheader), "%s:%d", cfg.host, cfg.port);
    /* Source addresses: only on loopback, where all of 127/8 is ours. */
    if ((ntohl(cfg.dst.sin_addr.s_addr) >> 24) == 127) {
        if (sources == 0)
            sources = (cfg.clients + 9999) / 10000;
        cfg.nsources = (int)sources;
    } else {
        cfg.nsources = 1;
    }
    for (int i = 0; i < cfg.nsources; i++) {
        cfg.sources[i].sin_family = AF_INET;
        cfg.sources[i].sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)i);
    }

    nofile = bench_raise_nofile();
    if (nofile >= 0 && nofile < (long)cfg.clients + 64) {
        fprintf(stderr,
                "wsb-load: open-files limit %ld is too low for %d clients (hard limit; raise it "
                "with ulimit -Hn as root)\n",
                nofile, cfg.clients);
        return 2;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = load_on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    threads = calloc((size_t)cfg.threads, sizeof(*threads));
    if (threads == NULL)
        return 1;
    per = cfg.clients / cfg.threads;
    rem = cfg.clients % cfg.threads;
    for (int k = 0, id = 0; k < cfg.threads; k++) {
        struct load_thread *t = &threads[k];
        t->index = k;
        t->nclients = per + (k < rem);
        t->clients = calloc((size_t)t->nclients, sizeof(*t->clients));
        t->rbuf_cap = cfg.max_frame + 64 + LOAD_READ_CHUNK;
        t->rbuf = malloc(t->rbuf_cap);
        t->ep = epoll_create1(EPOLL_CLOEXEC);
        if (t->clients == NULL || t->rbuf == NULL || t->ep < 0) {
            fprintf(stderr, "wsb-load: out of memory or epoll_create1 failed\n");
            return 1;
        }
        bench_rng_seed(&t->rng);
        bench_hist_init(&t->st.lat);
        bench_hist_init(&t->st.setup);
        for (int i = 0; i < t->nclients; i++, id++) {
            struct load_client *c = &t->clients[i];
            /* Global client id: filters and sources round-robin over all threads. */
            c->fd = -1;
            c->id = id;
            c->filter = cfg.nfilters ? id % cfg.nfilters : 0;
            c->source = id % cfg.nsources;
        }
    }
    t_begin = bench_mono_ns();
    for (int k = 0; k < cfg.threads; k++) {
        if (pthread_create(&threads[k].tid, NULL, load_thread_main, &threads[k]) != 0) {
            fprintf(stderr, "wsb-load: pthread_create failed\n");
            return 1;
        }
    }

    /* Controller: notice "ready", set the window, report progress. */
    last_progress = t_begin;
    while (!atomic_load(&stop_now)) {
        int64_t now = bench_mono_ns();
        int s = atomic_load_explicit(&settled_count, memory_order_relaxed);

        if (!ready_reported && s >= cfg.clients) {
            ready_reported = 1;
            t_ready = now;
            if (cfg.idle) {
                t_ms = now;
                t_me = now + (int64_t)(cfg.duration * 1e9);
                atomic_store(&t_stop, t_me);
            } else {
                t_ms = now + (int64_t)(cfg.warmup * 1e9);
                t_me = t_ms + (int64_t)(cfg.duration * 1e9);
                atomic_store(&t_measure_end, t_me);
                atomic_store(&t_measure_start, t_ms);
                atomic_store(&t_stop, t_me + (int64_t)(cfg.drain * 1e9));
            }
            if (!cfg.quiet)
                fprintf(stderr, "wsb-load: %d clients settled after %.2f s\n", s,
                        (double)(now - t_begin) / 1e9);
            load_write_ready(now);
        }
        if (!cfg.quiet && !ready_reported && now - last_progress >= 1000000000LL &&
            s != last_settled) {
            fprintf(stderr, "wsb-load: %d/%d settled\n", s, cfg.clients);
            last_progress = now;
            last_settled = s;
        }
        if (ready_reported && now >= atomic_load(&t_stop))
            break;
        usleep(10000);
    }
    atomic_store(&stop_now, 1);
    for (int k = 0; k < cfg.threads; k++)
        pthread_join(threads[k].tid, NULL);

    memset(&total, 0, sizeof(total));
    bench_hist_init(&total.lat);
    bench_hist_init(&total.setup);
    for (int k = 0; k < cfg.threads; k++)
        load_merge(&total, &threads[k].st);
    if (ready_reported) {
        int64_t end = bench_mono_ns();
        if (end > t_me)
            end = t_me;
        window_s = end > t_ms ? (double)(end - t_ms) / 1e9 : 0;
    }
    load_report(&total, threads, ready_reported ? (double)(t_ready - t_begin) / 1e9 : -1, window_s);
    for (int k = 0; k < cfg.threads; k++) {
        free(threads[k].clients);
        free(threads[k].rbuf);
        close(threads[k].ep);
    }
    free(threads);
    for (int i = 0; i < cfg.nfilters; i++)
        free(cfg.filters[i]);
    free(cfg.filters);
    return ready_reported ? 0 : 1;
}
