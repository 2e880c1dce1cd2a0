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
 * --go-file holds the warmup back until a file exists, so that two
 * processes (and the publisher) start their clocks together.
 *
 * Snapshots: the service answers a subscribe with an ack, then the board
 * ("snapshot" messages, the last with "last":true), then live updates.
 * Snapshot parts are counted apart, never as deliveries.  --board keeps each
 * client's board position (the epoch, and per stream the id of the last
 * entry it holds: the snapshot's positions, advanced by each update's id)
 * and settles a client only once its first snapshot is complete.
 *
 * Reconnect storm (--reconnect-at S, implies --board): S seconds into the
 * window every subscribed client drops its connection at once (RST, like a
 * network cut) and reconnects at once; a --resume-share of them subscribe
 * with "resume":{epoch, positions}, the others fresh.  Per client it
 * measures, from the moment its reconnect starts (t0, just before its
 * socket() call), the time to a complete board: the ack, the last snapshot
 * part if one comes (a fresh subscribe, or resumed:false), and a position,
 * on every stream it had one for, at or after t0's millisecond; that is,
 * the board holds every entry Redis accepted before the client started
 * reconnecting (Redis ids are milliseconds of the same clock).  A resumed
 * client gets there through the replayed entries and the first live entry
 * after t0; a snapshot taken after t0 gets there at its last part.
 *
 * Slow readers (--read-rate BYTES): each client reads at most that many bytes
 * per second (a token bucket per client; an empty bucket takes the socket
 * out of EPOLLIN until it holds half its depth again), with a small
 * SO_RCVBUF (--rcvbuf) so that what it does not read backs up into the
 * server, and optionally a small advertised MSS (--mss): Linux sizes a
 * socket's send buffer from the peer's MSS, so on loopback (MSS 65,483) the
 * server's kernel may hold up to tcp_wmem's maximum (4 MB by default), 80 s
 * of data at 50 KB/s that no queue policy in the server can reach; a real
 * network path's MSS (1,460) keeps it several times smaller.  --drain-quiet
 * S ends the drain once every open client has read nothing for S seconds,
 * so slow clients read their backlog to the end.
 *
 * Final state (--final-check REDIS): each client keeps, per odds key
 * (event_id, market_key, book_key, outcome_name), the id and price of the
 * last update or snapshot item it received.  After the drain, the truth,
 * the last entry per key in --final-streams, is read from Redis with XRANGE
 * and every client that is still connected is compared with it: keys right,
 * stale (an older id), wrong (same id, another price; or a key Redis does
 * not have) and missing.  It assumes the clients' filters take every key of
 * those streams.  Every update's age (receive time - bench_ts) from the
 * window's start to the end of the drain, and those marked "conflated":true,
 * are counted in every run.
 *
 * It never trusts the server: every frame is length-checked, oddities are
 * counted, and a frame it cannot make sense of closes that one connection.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#define LOAD_MAX_POS       8  /* streams per board */
#define LOAD_STREAM_MAX    96 /* bytes of a stream name, NUL included */
#define LOAD_EPOCH_MAX     64
#define LOAD_MAX_REASONS   8
#define LOAD_REASON_MAX    32
#define LOAD_MAX_STREAMS   16 /* --final-streams */
#define LOAD_XRANGE_COUNT  10000
#define LOAD_CONFLATED     "\"conflated\":true"

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

/* A board's position on one stream: the id of the last entry it holds. */
struct load_pos {
    char stream[LOAD_STREAM_MAX];
    uint64_t ms, seq;
};

/* One client's board (--board only). */
struct load_board {
    char epoch[LOAD_EPOCH_MAX];
    struct load_pos pos[LOAD_MAX_POS];
    int npos;
    unsigned char acked;         /* this connection's subscribe was acked */
    unsigned char want_snapshot; /* a snapshot is coming or being read */
    unsigned char complete;      /* first board loaded / storm board complete */
    unsigned char resume;        /* resumes in the storm (else subscribes fresh) */
    unsigned char dropped;       /* dropped by the storm, reconnect not started yet */
    signed char resumed;         /* the ack's "resumed": -1 absent, 0, 1 */
    int64_t t0_mono;             /* its reconnect started; 0 before the storm */
    uint64_t t0_ms;              /* the same moment, CLOCK_REALTIME ms (Redis ids) */
};

/* One odds key's last value (--final-check): the key (event_id, market_key,
 * book_key, outcome_name) as a 64-bit hash, never 0; the id and price of the
 * last update or snapshot item of that key. */
struct load_kv {
    uint64_t h; /* 0: an empty slot */
    uint64_t ms, seq;
    double price;
    int has_price;
};

/* Open addressing, linear probing, at most half full. */
struct load_keys {
    struct load_kv *slots;
    uint32_t cap, n;
};

struct load_client {
    int fd;
    unsigned char state;
    unsigned char settled;        /* counted in the ready tally */
    unsigned char got_close;      /* a close frame arrived */
    unsigned char frag_text;      /* a fragmented text message is being assembled */
    unsigned char frag_drop;      /* ... and it was too large: drop it */
    unsigned char paused;         /* --read-rate: out of EPOLLIN until t_resume */
    unsigned char was_subscribed; /* its subscribe was acked once */
    unsigned char cut;            /* the server closed it once subscribed */
    unsigned short close_code;
    int id;
    int source;
    int filter;
    int64_t t_connect;   /* monotonic ns */
    int64_t t_last_byte; /* monotonic ns of its last read of data (--drain-quiet) */
    int64_t t_refill;    /* --read-rate: the bucket was last filled then */
    int64_t t_resume;    /* ... and, paused, reads again from then */
    double tokens;       /* ... bytes it may read now */
    uint64_t skip;       /* payload bytes of an oversized frame still to skip */
    char key[BENCH_KEY_LEN + 1];
    char *in; /* bytes of an incomplete frame or HTTP response */
    size_t in_len, in_cap;
    char *out; /* bytes the socket did not take yet */
    size_t out_len, out_cap;
    char *frag;
    size_t frag_len, frag_cap;
    uint64_t deliveries, win_deliveries;
    struct load_board *board; /* NULL without --board */
    struct load_keys *keys;   /* NULL without --final-check */
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
    uint64_t snap_parts, snap_bytes, snap_last; /* snapshot messages; those with last:true */
    uint64_t id_regress;     /* --board: an update at or before its stream's position */
    uint64_t no_origin;      /* --board: an update without a readable stream and id */
    uint64_t conflated;      /* updates marked "conflated":true */
    uint64_t key_regress;    /* --final-check: an update at or before its key's last id */
    uint64_t key_unparsed;   /* --final-check: an update or item without a readable key or id */
    uint64_t rate_pauses;    /* --read-rate: times a client's bucket ran dry */
    struct bench_hist age;   /* publish -> receipt, us, from the window's start to the end */
    struct bench_hist lat;   /* publish -> receipt, us, in the window */
    struct bench_hist setup; /* connect() -> subscribed ack, us */
    /* The storm (--reconnect-at). */
    uint64_t rc_dropped, rc_resume_asked, rc_fresh_asked;
    uint64_t rc_acked, rc_resumed_true, rc_resumed_false, rc_fresh;
    uint64_t rc_failed[F_COUNT];
    uint64_t rc_closed; /* closed by the server after its reconnect began */
    uint64_t rc_complete;
    uint64_t rc_complete_late; /* ... only after the window, when the flow had stopped */
    uint64_t rc_catchup;       /* updates received after t0 with an id before t0 */
    char rc_reason_names[LOAD_MAX_REASONS][LOAD_REASON_MAX];
    uint64_t rc_reasons[LOAD_MAX_REASONS];
    uint64_t rc_reason_other;
    int64_t rc_storm_start;          /* monotonic ns the drop began (first thread) */
    int64_t rc_last_complete;        /* monotonic ns of the last board completed */
    struct bench_hist rc_ack;        /* t0 -> ack, us */
    struct bench_hist rc_board;      /* t0 -> complete board, us, every client */
    struct bench_hist rc_board_res;  /* ... those resumed */
    struct bench_hist rc_board_snap; /* ... those that took a snapshot */
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
    int stormed; /* this thread's clients were dropped and reconnected */
    int npaused; /* clients out of EPOLLIN (--read-rate) */
    int64_t last_quiet_check;
    /* --drain-quiet: 1 once, after the window, every open client of this
     * thread has read nothing for that long.  Written by the thread, read
     * by the controller; relaxed: a late read only ends the drain a round
     * of the controller's loop later. */
    atomic_int quiet;
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
    const char *go_path;
    const char *label;
    int quiet;
    int no_snapshot;
    int board;
    double reconnect_at; /* < 0: no storm */
    double resume_share;
    double read_rate;   /* bytes/s per client; 0: no limit */
    double read_depth;  /* bytes the bucket holds at most */
    long rcvbuf;        /* SO_RCVBUF; 0: the kernel's */
    long mss;           /* TCP_MAXSEG; 0: the kernel's */
    double drain_quiet; /* s; 0: the drain lasts --drain */
    const char *check_redis;
    char *check_streams[LOAD_MAX_STREAMS];
    int ncheck_streams;
} cfg;

/* --tokens: one token per line; client i presents line i mod n as the
 * `token` query parameter of its upgrade (AUTH=required services). */
static char **load_tokens;
static int load_ntokens;


/* Shared between the threads and main: relaxed atomics, each read on its own;
 * a window bound read a loop round late only moves it by that round. */
static atomic_int settled_count;
static atomic_llong t_measure_start = INT64_MAX, t_measure_end = INT64_MAX;
static atomic_llong t_stop = INT64_MAX;
static atomic_llong t_reconnect = INT64_MAX;
static atomic_int stop_now;
static int64_t t_begin;

static void load_close(struct load_thread *t, struct load_client *c);

static void
load_usage(FILE *f)
{
    fprintf(f, "usage: wsb-load [options]\n"
               "  -u, --url URL           ws://HOST:PORT/PATH (default ws://127.0.0.1:8080/ws)\n"
               "      --host H --port P --path /ws   the same, piecewise\n"
               "      --tokens FILE        one token per line; client i presents line i mod n\n"
               "                          as ?token= in its upgrade (AUTH=required)\n"
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
               "      --go-file FILE      once ready, wait for FILE to exist before the warmup\n"
               "      --no-snapshot       subscribe with \"snapshot\":false (live updates only)\n"
               "      --board             keep each client's board position; a client is ready\n"
               "                          once its first snapshot is complete\n"
               "      --reconnect-at S    S seconds into the window, every client drops its\n"
               "                          connection and reconnects at once (implies --board)\n"
               "      --resume-share F    share of them that resume, 0..1 (default 0.5); the\n"
               "                          others subscribe fresh and take a snapshot\n"
               "      --read-rate BYTES   each client reads at most BYTES per second\n"
               "      --rcvbuf BYTES      SO_RCVBUF of each socket (default: 16384 with\n"
               "                          --read-rate, else the kernel's; 0 = the kernel's)\n"
               "      --mss BYTES         TCP_MAXSEG, the MSS each client advertises (default:\n"
               "                          the kernel's; 1460 is a real network path's)\n"
               "      --drain-quiet S     end the drain once every open client has read\n"
               "                          nothing for S seconds (--drain is then the most)\n"
               "      --final-check ADDR  after the drain, compare each connected client's\n"
               "                          last value per odds key with the last entry per key\n"
               "                          in Redis at ADDR (host:port or a socket path)\n"
               "      --final-streams L   comma list of the streams to read for it\n"
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

/* The events a client waits for: input unless its read budget is spent,
 * output while it has bytes the socket did not take. */
static uint32_t
load_events(const struct load_client *c)
{
    return (c->paused ? 0 : EPOLLIN) | (c->out_len > 0 ? EPOLLOUT : 0);
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
        load_epoll_mod(t, c, load_events(c));
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
    load_epoll_mod(t, c, load_events(c));
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

/* A client that never got (re)subscribed: a failure of its reconnect once
 * the storm has started it, of its first connection before. */
static void
load_fail(struct load_thread *t, struct load_client *c, enum load_fail why)
{
    if (c->board != NULL && c->board->t0_mono != 0)
        t->st.rc_failed[why]++;
    else
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
        c->cut = 1;
        t->st.closed_by_server++;
        if (c->board != NULL && c->board->t0_mono != 0)
            t->st.rc_closed++;
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
    if (c->paused) {
        c->paused = 0;
        t->npaused--;
    }
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
    c->t_last_byte = c->t_refill = c->t_connect;
    c->tokens = cfg.read_depth;
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
        /* Both before connect(): the window scale and the MSS go out in
         * the SYN.  A client that cannot set them would measure something
         * else than asked, so it fails. */
        if ((cfg.rcvbuf > 0 &&
             setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &(int){(int)cfg.rcvbuf}, sizeof(int)) != 0) ||
            (cfg.mss > 0 &&
             setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &(int){(int)cfg.mss}, sizeof(int)) != 0)) {
            fprintf(stderr, "wsb-load: setsockopt(SO_RCVBUF %ld / TCP_MAXSEG %ld) failed: %s\n",
                    cfg.rcvbuf, cfg.mss, strerror(errno));
            close(fd);
            c->fd = -1;
            load_fail(t, c, F_SOCKET);
            return;
        }
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
    char req[4096];
    int n;

    for (int i = 0; i < 16; i += 8) {
        uint64_t r = bench_rng_next(&t->rng);
        memcpy(nonce + i, &r, 8);
    }
    bench_base64(nonce, sizeof(nonce), c->key);
    n = snprintf(req, sizeof(req),
                 "GET %s%s%s HTTP/1.1\r\n"
                 "Host: %s\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "User-Agent: wsb-load\r\n"
                 "\r\n",
                 cfg.path, load_ntokens > 0 ? "?token=" : "",
                 load_ntokens > 0 ? load_tokens[c->id % load_ntokens] : "", cfg.hostheader, c->key);
    c->state = ST_HANDSHAKE;
    load_epoll_mod(t, c, load_events(c));
    if (load_send(t, c, req, (size_t)n) != 0)
        load_fail(t, c, F_EOF_HANDSHAKE);
}

/*
 * The subscribe message: the client's filter (a JSON object) with, inside
 * it, "snapshot":false (--no-snapshot) or, for a client resuming in the
 * storm, "resume":{"epoch":E,"positions":{stream:id,...}}.
 */
static void
load_send_subscribe(struct load_thread *t, struct load_client *c)
{
    const char *filter = cfg.nfilters ? cfg.filters[c->filter] : "{}";
    const char *close = strrchr(filter, '}');
    const struct load_board *b = c->board;
    size_t flen = strlen(filter), cap = flen + 128, n;
    int empty = 1, resume = b != NULL && b->t0_mono != 0 && b->resume && b->epoch[0] != '\0';
    char *msg;

    if (resume)
        cap += sizeof(b->epoch) + (size_t)b->npos * (LOAD_STREAM_MAX + 48);
    if (close == NULL || (msg = malloc(cap)) == NULL) {
        load_fail(t, c, F_SOCKET);
        return;
    }
    /* The filter's members, if any, come before the extras. */
    for (const char *p = filter + 1; p < close; p++) {
        if (*p != ' ' && *p != '\t')
            empty = 0;
    }
    n = (size_t)snprintf(msg, cap, "{\"type\":\"subscribe\",\"payload\":%.*s",
                         (int)(close - filter), filter);
    if (cfg.no_snapshot) {
        n += (size_t)snprintf(msg + n, cap - n, "%s\"snapshot\":false", empty ? "" : ",");
        empty = 0;
    }
    if (resume) {
        n += (size_t)snprintf(msg + n, cap - n, "%s\"resume\":{\"epoch\":\"%s\",\"positions\":{",
                              empty ? "" : ",", b->epoch);
        for (int i = 0; i < b->npos; i++)
            n += (size_t)snprintf(msg + n, cap - n, "%s\"%s\":\"%llu-%llu\"", i ? "," : "",
                                  b->pos[i].stream, (unsigned long long)b->pos[i].ms,
                                  (unsigned long long)b->pos[i].seq);
        n += (size_t)snprintf(msg + n, cap - n, "}}");
    }
    n += (size_t)snprintf(msg + n, cap - n, "}}");
    if (n >= cap) { /* cannot happen: cap counts every part */
        free(msg);
        load_fail(t, c, F_SOCKET);
        return;
    }
    c->state = ST_SUBSCRIBING;
    if (load_send_frame(t, c, 0x1, msg, n) != 0)
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

static const char *
load_find(const char *hay, size_t len, const char *needle, size_t nlen)
{
    return memmem(hay, len, needle, nlen);
}

/* ---- boards (--board) ------------------------------------------------------- */

/* Parses "<ms>-<seq>" at p (before end) up to the closing quote; returns
 * the position after the quote, or NULL. */
static const char *
load_parse_id(const char *p, const char *end, uint64_t *ms, uint64_t *seq)
{
    uint64_t *v = ms;
    int digits = 0;

    *ms = *seq = 0;
    for (; p < end; p++) {
        if (*p >= '0' && *p <= '9' && digits < 20) {
            *v = *v * 10 + (uint64_t)(*p - '0');
            digits++;
        } else if (*p == '-' && v == ms && digits > 0) {
            v = seq;
            digits = 0;
        } else if (*p == '"' && v == seq && digits > 0) {
            return p + 1;
        } else {
            return NULL;
        }
    }
    return NULL;
}

/* The string value of "key":"..." in msg[0..len), copied into out (cap
 * bytes) if it fits and has no escapes; 0, or -1 if absent. */
static int
load_str_field(const char *msg, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    int plen = snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    const char *p = load_find(msg, len, pat, (size_t)plen), *q, *end = msg + len;

    if (p == NULL)
        return -1;
    p += plen;
    for (q = p; q < end && *q != '"' && *q != '\\'; q++)
        ;
    if (q >= end || *q != '"' || (size_t)(q - p) >= cap)
        return -1;
    memcpy(out, p, (size_t)(q - p));
    out[q - p] = '\0';
    return 0;
}

/* The board's row of stream name[0..nlen), added if new; NULL if the
 * board is full or the name too long. */
static struct load_pos *
load_board_pos(struct load_board *b, const char *name, size_t nlen)
{
    for (int i = 0; i < b->npos; i++) {
        if (strlen(b->pos[i].stream) == nlen && memcmp(b->pos[i].stream, name, nlen) == 0)
            return &b->pos[i];
    }
    if (b->npos == LOAD_MAX_POS || nlen >= LOAD_STREAM_MAX)
        return NULL;
    memcpy(b->pos[b->npos].stream, name, nlen);
    b->pos[b->npos].stream[nlen] = '\0';
    b->pos[b->npos].ms = b->pos[b->npos].seq = 0;
    return &b->pos[b->npos++];
}

/* A snapshot part's "positions":{stream:id,...} become the board's. */
static void
load_board_positions(struct load_thread *t, struct load_board *b, const char *msg, size_t len)
{
    static const char key[] = "\"positions\":{";
    /* Positions come before the items: look only at the head. */
    const char *p = load_find(msg, len < 4096 ? len : 4096, key, sizeof(key) - 1);
    const char *end = msg + len;
    int first = 1;

    if (p == NULL) {
        t->st.no_origin++;
        return;
    }
    b->npos = 0;
    p += sizeof(key) - 1;
    while (p < end && *p != '}') {
        const char *name, *q;
        struct load_pos *pos;
        uint64_t ms, seq;
        if (*p == ',' && !first)
            p++;
        first = 0;
        name = p + 1;
        if (p >= end || *p != '"' || (q = memchr(name, '"', (size_t)(end - name))) == NULL ||
            q + 2 >= end || q[1] != ':' || q[2] != '"' ||
            (p = load_parse_id(q + 3, end, &ms, &seq)) == NULL) {
            t->st.no_origin++;
            return;
        }
        if ((pos = load_board_pos(b, name, (size_t)(q - name))) != NULL) {
            pos->ms = ms;
            pos->seq = seq;
        }
    }
}

/* An update's "stream" and "id" (after its payload, near the end) advance
 * the board; returns the id's ms (0 if unreadable). */
static uint64_t
load_board_update(struct load_thread *t, struct load_board *b, const char *msg, size_t len)
{
    static const char skey[] = "},\"stream\":\"", ikey[] = "\",\"id\":\"";
    size_t tail = len < 400 ? len : 400;
    const char *end = msg + len, *name, *q,
               *p = load_find(end - tail, tail, skey, sizeof(skey) - 1);
    struct load_pos *pos;
    uint64_t ms, seq;

    if (p == NULL) {
        t->st.no_origin++;
        return 0;
    }
    name = p + sizeof(skey) - 1;
    q = load_find(name, (size_t)(end - name), ikey, sizeof(ikey) - 1);
    if (q == NULL || load_parse_id(q + sizeof(ikey) - 1, end, &ms, &seq) == NULL) {
        t->st.no_origin++;
        return 0;
    }
    if ((pos = load_board_pos(b, name, (size_t)(q - name))) == NULL) {
        t->st.no_origin++;
        return ms;
    }
    if (ms < pos->ms || (ms == pos->ms && seq <= pos->seq)) {
        t->st.id_regress++; /* already on the board: a duplicate or out of order */
    } else {
        pos->ms = ms;
        pos->seq = seq;
    }
    return ms;
}

static void
load_note_reason(struct load_stats *st, const char *reason, uint64_t n)
{
    for (int i = 0; i < LOAD_MAX_REASONS; i++) {
        if (st->rc_reasons[i] != 0 && strcmp(st->rc_reason_names[i], reason) == 0) {
            st->rc_reasons[i] += n;
            return;
        }
        if (st->rc_reasons[i] == 0) {
            snprintf(st->rc_reason_names[i], LOAD_REASON_MAX, "%s", reason);
            st->rc_reasons[i] = n;
            return;
        }
    }
    st->rc_reason_other += n;
}

/* Is the board complete now?  First board: the ack and the whole snapshot
 * (the client is then ready).  In the storm: also a position at or after
 * t0's millisecond on every stream the board holds entries of. */
static void
load_board_check(struct load_thread *t, struct load_client *c, int64_t now_mono)
{
    struct load_board *b = c->board;
    int64_t us;
    int any = 0;

    if (b->complete || !b->acked || b->want_snapshot)
        return;
    if (b->t0_mono == 0) {
        b->complete = 1;
        load_settle(t, c);
        return;
    }
    for (int i = 0; i < b->npos; i++) {
        if (b->pos[i].ms == 0 && b->pos[i].seq == 0)
            continue; /* a stream with no entry yet (opportunities, here) */
        if (b->pos[i].ms < b->t0_ms)
            return;
        any = 1;
    }
    if (!any)
        return;
    b->complete = 1;
    us = (now_mono - b->t0_mono) / 1000;
    t->st.rc_complete++;
    /* After the window the publisher has stopped: a board that was still
     * catching up with the flow then stops having to, so its time is
     * bounded by the run, not by the service. */
    if (now_mono >= atomic_load_explicit(&t_measure_end, memory_order_relaxed))
        t->st.rc_complete_late++;
    bench_hist_record(&t->st.rc_board, us);
    bench_hist_record(b->resumed == 1 ? &t->st.rc_board_res : &t->st.rc_board_snap, us);
    if (now_mono > t->st.rc_last_complete)
        t->st.rc_last_complete = now_mono;
}

/* The subscribe ack of a client with a board. */
static void
load_board_ack(struct load_thread *t, struct load_client *c, const char *msg, size_t len,
               int64_t now_mono)
{
    struct load_board *b = c->board;
    char reason[LOAD_REASON_MAX];

    if (load_str_field(msg, len, "epoch", b->epoch, sizeof(b->epoch)) != 0)
        b->epoch[0] = '\0';
    b->resumed = load_find(msg, len, "\"resumed\":true", 14)    ? 1
                 : load_find(msg, len, "\"resumed\":false", 15) ? 0
                                                                : -1;
    b->acked = 1;
    b->want_snapshot = b->resumed != 1;
    if (b->t0_mono == 0)
        return;
    t->st.rc_acked++;
    bench_hist_record(&t->st.rc_ack, (now_mono - b->t0_mono) / 1000);
    if (b->resumed == 1) {
        t->st.rc_resumed_true++;
    } else if (b->resumed == 0) {
        t->st.rc_resumed_false++;
        if (load_str_field(msg, len, "reason", reason, sizeof(reason)) != 0)
            snprintf(reason, sizeof(reason), "(none)");
        load_note_reason(&t->st, reason, 1);
    } else {
        t->st.rc_fresh++;
    }
}

/* ---- last value per key (--final-check) ------------------------------------ */

/* FNV-1a over the four parts of an odds key, a 0 byte after each (so that
 * "ab"+"c" and "a"+"bc" differ); never 0, the empty slot's mark. */
static uint64_t
load_key_hash(const char *const part[4], const size_t len[4])
{
    uint64_t h = 1469598103934665603ULL;

    for (int i = 0; i < 4; i++) {
        for (size_t k = 0; k < len[i]; k++)
            h = (h ^ (unsigned char)part[i][k]) * 1099511628211ULL;
        h *= 1099511628211ULL; /* the 0 byte: h ^ 0 is h */
    }
    return h != 0 ? h : 1;
}

/* The slot of key h in k: its own, or with insert the empty one it gets
 * (n counts it once its h is set by the caller).  NULL if absent (or, with
 * insert, out of memory). */
static struct load_kv *
load_keys_slot(struct load_keys *k, uint64_t h, int insert)
{
    uint32_t i;

    if (insert && (k->n + 1) * 2 > k->cap) {
        uint32_t cap = k->cap ? k->cap * 2 : 256;
        struct load_kv *old = k->slots, *nslots = calloc(cap, sizeof(*nslots));
        if (nslots == NULL)
            return NULL;
        for (uint32_t j = 0; j < k->cap; j++) {
            if (old[j].h == 0)
                continue;
            for (i = (uint32_t)old[j].h & (cap - 1); nslots[i].h != 0; i = (i + 1) & (cap - 1))
                ;
            nslots[i] = old[j];
        }
        free(old);
        k->slots = nslots;
        k->cap = cap;
    }
    if (k->cap == 0)
        return NULL;
    for (i = (uint32_t)h & (k->cap - 1); k->slots[i].h != 0; i = (i + 1) & (k->cap - 1)) {
        if (k->slots[i].h == h)
            return &k->slots[i];
    }
    return insert ? &k->slots[i] : NULL;
}

/* The value of member "name" in the flat JSON object text o[0..len): a
 * string's bytes without its quotes, or a scalar's token.  Escaped strings
 * are not expected (odds keys are plain text) and count as absent.
 * Returns 0, or -1 if absent. */
static int
load_member(const char *o, size_t len, const char *name, const char **v, size_t *vlen)
{
    char pat[40];
    int plen = snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = load_find(o, len, pat, (size_t)plen), *end = o + len, *q;

    if (p == NULL)
        return -1;
    p += plen;
    if (p < end && *p == '"') {
        p++;
        for (q = p; q < end && *q != '"' && *q != '\\'; q++)
            ;
        if (q >= end || *q != '"')
            return -1;
    } else {
        for (q = p; q < end && *q != ',' && *q != '}' && *q != ']'; q++)
            ;
        if (q == p)
            return -1;
    }
    *v = p;
    *vlen = (size_t)(q - p);
    return 0;
}

/* A price as text (a JSON number, or Redis's string of one) to a double:
 * the service may write 1.590 as 1.59, so values are compared, not text. */
static int
load_price(const char *v, size_t len, double *out)
{
    char tmp[48], *end;

    if (len == 0 || len >= sizeof(tmp))
        return -1;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    *out = strtod(tmp, &end);
    return *end == '\0' ? 0 : -1;
}

/* Notes the odds key in the flat object o[0..len) (an update's whole text,
 * whose top-level "id" follows its payload, or a snapshot item) with its id
 * and price.  An id at or before the key's last one is counted: per key,
 * ids only increase, conflated or not. */
static void
load_keys_note(struct load_thread *t, struct load_keys *k, const char *o, size_t len)
{
    static const char *const names[4] = {"event_id", "market_key", "book_key", "outcome_name"};
    const char *part[4], *idv, *pv;
    size_t plen[4], idlen, pvlen;
    uint64_t ms, seq;
    struct load_kv *kv;
    uint64_t h;

    for (int i = 0; i < 4; i++) {
        if (load_member(o, len, names[i], &part[i], &plen[i]) != 0) {
            t->st.key_unparsed++;
            return;
        }
    }
    /* The id's closing quote is inside o: load_parse_id stops on it. */
    if (load_member(o, len, "id", &idv, &idlen) != 0 ||
        load_parse_id(idv, idv + idlen + 1, &ms, &seq) == NULL) {
        t->st.key_unparsed++;
        return;
    }
    h = load_key_hash(part, plen);
    if ((kv = load_keys_slot(k, h, 1)) == NULL) {
        t->st.key_unparsed++; /* out of memory: the check will show it missing */
        return;
    }
    if (kv->h == 0) {
        kv->h = h;
        k->n++;
    } else if (ms < kv->ms || (ms == kv->ms && seq <= kv->seq)) {
        t->st.key_regress++;
        return;
    }
    kv->ms = ms;
    kv->seq = seq;
    kv->has_price =
        load_member(o, len, "price", &pv, &pvlen) == 0 && load_price(pv, pvlen, &kv->price) == 0;
}

/* Each item of a snapshot part ("items":[{...},...]), flat objects. */
static void
load_keys_snapshot(struct load_thread *t, struct load_keys *k, const char *msg, size_t len)
{
    static const char key[] = "\"items\":[";
    const char *p = load_find(msg, len, key, sizeof(key) - 1), *end = msg + len;

    if (p == NULL)
        return;
    p += sizeof(key) - 1;
    while (p < end && *p == '{') {
        const char *q = p + 1;
        int in_str = 0;
        /* The item ends at the first brace outside a string. */
        for (; q < end && (in_str || *q != '}'); q++) {
            if (*q == '\\' && in_str)
                q++;
            else if (*q == '"')
                in_str = !in_str;
        }
        if (q >= end) {
            t->st.key_unparsed++;
            return;
        }
        load_keys_note(t, k, p, (size_t)(q + 1 - p));
        p = q + 1;
        if (p < end && *p == ',')
            p++;
    }
}

/* ---- messages ------------------------------------------------------------- */

static void
load_on_text(struct load_thread *t, struct load_client *c, const char *msg, size_t len,
             int64_t now_real, int64_t now_mono)
{
    struct load_board *b = c->board;
    const char *p;
    size_t klen = sizeof(LOAD_TS_KEY) - 1;

    if (c->state == ST_SUBSCRIBING) {
        if (load_find(msg, len, "\"subscribed\"", 12) != NULL) {
            c->state = ST_SUBSCRIBED;
            if (b != NULL)
                load_board_ack(t, c, msg, len, now_mono);
            c->was_subscribed = 1;
            if (b == NULL || b->t0_mono == 0) {
                t->st.subscribed++;
                bench_hist_record(&t->st.setup, (now_mono - c->t_connect) / 1000);
            }
            if (b == NULL)
                load_settle(t, c);
            else
                load_board_check(t, c, now_mono);
            return;
        }
        if (load_find(msg, len, "\"error\"", 7) != NULL) {
            t->st.error_msgs++;
            return;
        }
    }
    /* A snapshot part carries its items' bench_ts too: not a delivery. */
    if (load_find(msg, len < 32 ? len : 32, "\"type\":\"snapshot\"", 17) != NULL) {
        static const char last[] = "\"last\":true";
        size_t tail = len < 160 ? len : 160;
        int is_last = load_find(msg + len - tail, tail, last, sizeof(last) - 1) != NULL;
        t->st.snap_parts++;
        t->st.snap_bytes += len;
        t->st.snap_last += (uint64_t)is_last;
        if (b != NULL) {
            load_board_positions(t, b, msg, len);
            if (is_last) {
                b->want_snapshot = 0;
                load_board_check(t, c, now_mono);
            }
        }
        if (c->keys != NULL)
            load_keys_snapshot(t, c->keys, msg, len);
        return;
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
        /* The mark is the message's last member (outq_msg_conflated). */
        if (len >= sizeof(LOAD_CONFLATED) &&
            memcmp(msg + len - sizeof(LOAD_CONFLATED), LOAD_CONFLATED "}",
                   sizeof(LOAD_CONFLATED)) == 0)
            t->st.conflated++;
        if (now_mono >= atomic_load_explicit(&t_measure_start, memory_order_relaxed)) {
            int64_t lat = now_real - ts;
            /* Age: also after the window, while a backlog drains. */
            bench_hist_record(&t->st.age, lat / 1000);
            if (now_mono < atomic_load_explicit(&t_measure_end, memory_order_relaxed)) {
                if (lat < 0)
                    t->st.negative++;
                c->win_deliveries++;
                t->st.win_deliveries++;
                bench_hist_record(&t->st.lat, lat / 1000);
            }
        }
        if (c->keys != NULL)
            load_keys_note(t, c->keys, msg, len);
        if (b != NULL) {
            uint64_t ms = load_board_update(t, b, msg, len);
            if (b->t0_mono != 0 && ms != 0 && ms < b->t0_ms)
                t->st.rc_catchup++;
            load_board_check(t, c, now_mono);
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
    /* Keep the tail (at most one frame, bounded by max_frame + 14).  buf may
     * be c->in itself (load_on_readable): then rest fits, and it moves down
     * only if a frame before it was consumed. */
    if (pos < len) {
        size_t rest = len - pos;
        if (buf + pos == c->in) {
            c->in_len = rest;
            return 0;
        }
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

/* --read-rate: the bucket gains read_rate bytes a second, up to its depth. */
static void
load_refill(struct load_client *c, int64_t now)
{
    c->tokens += cfg.read_rate * (double)(now - c->t_refill) / 1e9;
    if (c->tokens > cfg.read_depth)
        c->tokens = cfg.read_depth;
    c->t_refill = now;
}

/* The bucket is dry: stop reading (the kernel's receive buffer fills, then
 * the window closes, then the server's send buffer and its queue fill) until
 * it holds half its depth, so reads stay few and large. */
static void
load_pause(struct load_thread *t, struct load_client *c, int64_t now)
{
    if (c->paused)
        return;
    c->paused = 1;
    t->npaused++;
    t->st.rate_pauses++;
    c->t_resume = now + (int64_t)((cfg.read_depth / 2 - c->tokens) / cfg.read_rate * 1e9);
    load_epoll_mod(t, c, load_events(c));
}

/* Paused clients whose time has come read again; returns the earliest
 * resume time still ahead (INT64_MAX if none). */
static int64_t
load_resume_due(struct load_thread *t, int64_t now)
{
    int64_t next = INT64_MAX;

    for (int i = 0; i < t->started && t->npaused > 0; i++) {
        struct load_client *c = &t->clients[i];
        if (!c->paused)
            continue;
        if (c->t_resume <= now) {
            c->paused = 0;
            t->npaused--;
            load_refill(c, now);
            load_epoll_mod(t, c, load_events(c));
        } else if (c->t_resume < next) {
            next = c->t_resume;
        }
    }
    return next;
}

static void
load_on_readable(struct load_thread *t, struct load_client *c)
{
    size_t off = c->in_len, want = LOAD_READ_CHUNK;
    ssize_t n;
    int64_t now_real, now_mono;
    char *buf = t->rbuf;

    if (cfg.read_rate > 0) {
        now_mono = bench_mono_ns();
        load_refill(c, now_mono);
        if (c->tokens < 1) {
            load_pause(t, c, now_mono);
            return;
        }
        if ((double)want > c->tokens)
            want = (size_t)c->tokens;
    }
    if (off > 0 && c->state != ST_HANDSHAKE) {
        /* A frame is still incomplete: read on after it, in c->in, so a
         * large frame (a snapshot part of 200 KB comes in several reads) is
         * copied once rather than once per read.  load_parse keeps its tail
         * there in place. */
        if (c->in_cap < off + LOAD_READ_CHUNK) {
            size_t cap =
                c->in_cap * 2 > off + LOAD_READ_CHUNK ? c->in_cap * 2 : off + LOAD_READ_CHUNK;
            char *nb = realloc(c->in, cap);
            if (nb == NULL) {
                load_close(t, c);
                return;
            }
            c->in = nb;
            c->in_cap = cap;
        }
        buf = c->in;
    } else if (off > 0) {
        /* The tail of the last read goes first, then new bytes after it. */
        memcpy(buf, c->in, off);
    }
    n = read(c->fd, buf + off, want);
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
    c->t_last_byte = now_mono;
    if (cfg.read_rate > 0) {
        c->tokens -= (double)n;
        if (c->tokens < 1)
            load_pause(t, c, now_mono); /* before parsing, which may close c */
    }
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
    /* A paused client is told only of errors (a reset): nothing is left
     * to read then, and waiting for its budget would spin on the event. */
    if (c->paused && (ev & (EPOLLERR | EPOLLHUP))) {
        load_server_closed(t, c);
        return;
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

/*
 * The storm: every subscribed client of this thread drops its connection
 * (all first, so the server sees them go together), then all reconnect, each
 * t0 taken just before its socket() call.  Clients that were not subscribed
 * (failed, closed by the server) stay out.
 */
static void
load_storm(struct load_thread *t)
{
    int dropped = 0;

    t->st.rc_storm_start = bench_mono_ns();
    for (int i = 0; i < t->started; i++) {
        struct load_client *c = &t->clients[i];
        if (c->state != ST_SUBSCRIBED || c->board == NULL)
            continue;
        load_close(t, c);
        c->board->dropped = 1;
        dropped++;
    }
    t->st.rc_dropped += (uint64_t)dropped;
    for (int i = 0; i < t->started; i++) {
        struct load_client *c = &t->clients[i];
        struct load_board *b = c->board;
        if (b == NULL || !b->dropped)
            continue;
        b->dropped = 0;
        b->complete = 0;
        b->acked = 0;
        b->want_snapshot = 0;
        b->resumed = -1;
        if (b->resume)
            t->st.rc_resume_asked++;
        else
            t->st.rc_fresh_asked++;
        c->got_close = c->frag_text = c->frag_drop = 0;
        c->close_code = 0;
        c->skip = 0;
        b->t0_mono = bench_mono_ns();
        b->t0_ms = (uint64_t)(bench_real_ns() / 1000000);
        load_start(t, c);
    }
}

/* --drain-quiet: whether every open client of t has read nothing for that
 * long.  A paused client read just before it paused, so it is never quiet. */
static int
load_quiet(struct load_thread *t, int64_t now)
{
    int64_t gap = (int64_t)(cfg.drain_quiet * 1e9);

    for (int i = 0; i < t->started; i++) {
        const struct load_client *c = &t->clients[i];
        if (c->state != ST_CLOSED && c->state != ST_IDLE && now - c->t_last_byte < gap)
            return 0;
    }
    return 1;
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
        if (!t->stormed && now >= atomic_load_explicit(&t_reconnect, memory_order_relaxed)) {
            t->stormed = 1;
            load_storm(t);
        }
        if (now - last_timeout_check > 500000000LL) {
            load_check_timeouts(t, now);
            last_timeout_check = now;
        }
        if (t->npaused > 0) {
            int64_t next = load_resume_due(t, now);
            if (next != INT64_MAX && (next - now) / 1000000 < timeout_ms)
                timeout_ms = (int)((next - now) / 1000000) + 1;
        }
        if (cfg.drain_quiet > 0 &&
            now >= atomic_load_explicit(&t_measure_end, memory_order_relaxed) &&
            now - t->last_quiet_check >= 100000000LL) {
            atomic_store_explicit(&t->quiet, load_quiet(t, now), memory_order_relaxed);
            t->last_quiet_check = now;
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


/* The lines of a file, each trimmed of surrounding blanks, empty lines and
 * '#' comments left out, appended to *lines (*n of them).  0, or -1 (told). */
static int
load_read_lines(const char *path, char ***lines, int *n)
{
    FILE *f = fopen(path, "r");
    char *line = NULL, **more;
    size_t cap = 0;
    ssize_t len;

    if (f == NULL) {
        fprintf(stderr, "wsb-load: cannot open %s: %s\n", path, strerror(errno));
        return -1;
    }
    while ((len = getline(&line, &cap, f)) >= 0) {
        char *s = line;
        while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
            s[--len] = '\0';
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s == '\0' || *s == '#')
            continue;
        more = realloc(*lines, (size_t)(*n + 1) * sizeof(*more));
        if (more == NULL || (more[*n] = strdup(s)) == NULL) {
            if (more != NULL)
                *lines = more;
            fclose(f);
            free(line);
            return -1;
        }
        *lines = more;
        (*n)++;
    }
    free(line);
    fclose(f);
    return 0;
}

static int
load_read_tokens(const char *path)
{
    return load_read_lines(path, &load_tokens, &load_ntokens) == 0 && load_ntokens > 0 ? 0 : -1;
}

static int
load_read_filters(const char *path)
{
    if (load_read_lines(path, &cfg.filters, &cfg.nfilters) != 0)
        return -1;
    for (int i = 0; i < cfg.nfilters; i++) {
        if (cfg.filters[i][0] != '{') {
            fprintf(stderr, "wsb-load: %s: not a JSON object: %s\n", path, cfg.filters[i]);
            return -1;
        }
    }
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
    dst->snap_parts += src->snap_parts;
    dst->snap_bytes += src->snap_bytes;
    dst->snap_last += src->snap_last;
    dst->id_regress += src->id_regress;
    dst->no_origin += src->no_origin;
    dst->conflated += src->conflated;
    dst->key_regress += src->key_regress;
    dst->key_unparsed += src->key_unparsed;
    dst->rate_pauses += src->rate_pauses;
    bench_hist_merge(&dst->age, &src->age);
    bench_hist_merge(&dst->lat, &src->lat);
    bench_hist_merge(&dst->setup, &src->setup);
    dst->rc_dropped += src->rc_dropped;
    dst->rc_resume_asked += src->rc_resume_asked;
    dst->rc_fresh_asked += src->rc_fresh_asked;
    dst->rc_acked += src->rc_acked;
    dst->rc_resumed_true += src->rc_resumed_true;
    dst->rc_resumed_false += src->rc_resumed_false;
    dst->rc_fresh += src->rc_fresh;
    for (int i = 0; i < F_COUNT; i++)
        dst->rc_failed[i] += src->rc_failed[i];
    dst->rc_closed += src->rc_closed;
    dst->rc_complete += src->rc_complete;
    dst->rc_complete_late += src->rc_complete_late;
    dst->rc_catchup += src->rc_catchup;
    for (int i = 0; i < LOAD_MAX_REASONS && src->rc_reasons[i]; i++)
        load_note_reason(dst, src->rc_reason_names[i], src->rc_reasons[i]);
    dst->rc_reason_other += src->rc_reason_other;
    if (src->rc_storm_start != 0 &&
        (dst->rc_storm_start == 0 || src->rc_storm_start < dst->rc_storm_start))
        dst->rc_storm_start = src->rc_storm_start;
    if (src->rc_last_complete > dst->rc_last_complete)
        dst->rc_last_complete = src->rc_last_complete;
    bench_hist_merge(&dst->rc_ack, &src->rc_ack);
    bench_hist_merge(&dst->rc_board, &src->rc_board);
    bench_hist_merge(&dst->rc_board_res, &src->rc_board_res);
    bench_hist_merge(&dst->rc_board_snap, &src->rc_board_snap);
}

/* ---- final state (--final-check) -------------------------------------------- */

#define LOAD_NOT_RIGHT_MAX 100 /* clients listed by id when not all right */

/* The check's outcome: over the clients connected to the end ("checked"),
 * keys right, stale (an older id than Redis's last), wrong (same id and
 * another price, an id Redis does not have as the key's last but newer, or
 * a key Redis does not have) and missing. */
struct load_final {
    int ran;         /* the truth was read */
    char error[200]; /* why not */
    double drain_s;  /* window end -> end of the drain */
    uint64_t truth_entries, truth_keys, truth_unparsed;
    uint64_t checked, all_right, cut, never_subscribed;
    uint64_t correct, stale, wrong, missing;
    uint64_t min_correct;
    int nnot_right;
    struct {
        int id;
        uint64_t correct, stale, wrong, missing;
    } not_right[LOAD_NOT_RIGHT_MAX];
};

static redisContext *
load_redis_connect(const char *addr, char *err, size_t errlen)
{
    struct timeval tv = {5, 0};
    redisContext *rc;
    char host[256];
    int port;

    if (addr[0] == '/' || strncmp(addr, "unix:", 5) == 0) {
        rc = redisConnectUnixWithTimeout(addr[0] == '/' ? addr : addr + 5, tv);
    } else {
        if (bench_split_hostport(addr, host, sizeof(host), &port) != 0) {
            snprintf(err, errlen, "bad Redis address %s", addr);
            return NULL;
        }
        rc = redisConnectWithTimeout(host, port, tv);
    }
    if (rc == NULL || rc->err) {
        snprintf(err, errlen, "cannot connect to Redis at %s: %s", addr,
                 rc ? rc->errstr : "out of memory");
        if (rc)
            redisFree(rc);
        return NULL;
    }
    return rc;
}

/* One XRANGE entry ([id, [field, value, ...]]) into the truth: the key's
 * last entry wins (XRANGE gives them in order). */
static void
load_truth_entry(struct load_keys *truth, struct load_final *f, const redisReply *e)
{
    static const char *const names[4] = {"event_id", "market_key", "book_key", "outcome_name"};
    const char *part[4] = {NULL, NULL, NULL, NULL}, *price = NULL;
    size_t plen[4] = {0, 0, 0, 0}, pricelen = 0;
    const redisReply *fv;
    struct load_kv *kv;
    uint64_t ms, seq, h;
    char idbuf[64];

    f->truth_entries++;
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len + 2 > sizeof(idbuf) ||
        e->element[1]->type != REDIS_REPLY_ARRAY) {
        f->truth_unparsed++;
        return;
    }
    /* load_parse_id wants the closing quote of the JSON it usually reads. */
    snprintf(idbuf, sizeof(idbuf), "%s\"", e->element[0]->str);
    if (load_parse_id(idbuf, idbuf + strlen(idbuf), &ms, &seq) == NULL) {
        f->truth_unparsed++;
        return;
    }
    fv = e->element[1];
    for (size_t i = 0; i + 1 < fv->elements; i += 2) {
        const redisReply *k = fv->element[i], *v = fv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        for (int n = 0; n < 4; n++) {
            if (strcmp(k->str, names[n]) == 0) {
                part[n] = v->str;
                plen[n] = v->len;
            }
        }
        if (strcmp(k->str, "price") == 0) {
            price = v->str;
            pricelen = v->len;
        }
    }
    for (int n = 0; n < 4; n++) {
        if (part[n] == NULL) {
            f->truth_unparsed++; /* no key: in no board, never compared */
            return;
        }
    }
    h = load_key_hash(part, plen);
    if ((kv = load_keys_slot(truth, h, 1)) == NULL) {
        f->truth_unparsed++;
        return;
    }
    if (kv->h == 0) {
        kv->h = h;
        truth->n++;
    }
    kv->ms = ms;
    kv->seq = seq;
    kv->has_price = price != NULL && load_price(price, pricelen, &kv->price) == 0;
}

/* Reads the truth from Redis: every entry of each stream, in pages.
 * Returns 0, or -1 with f->error set. */
static int
load_truth_read(struct load_keys *truth, struct load_final *f)
{
    redisContext *rc = load_redis_connect(cfg.check_redis, f->error, sizeof(f->error));

    if (rc == NULL)
        return -1;
    for (int s = 0; s < cfg.ncheck_streams; s++) {
        char start[64] = "-";
        for (;;) {
            redisReply *r = redisCommand(rc, "XRANGE %s %s + COUNT %d", cfg.check_streams[s], start,
                                         LOAD_XRANGE_COUNT);
            size_t n;
            if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
                snprintf(f->error, sizeof(f->error), "XRANGE %s failed: %s", cfg.check_streams[s],
                         r == NULL                      ? rc->errstr
                         : r->type == REDIS_REPLY_ERROR ? r->str
                                                        : "not an array");
                if (r != NULL)
                    freeReplyObject(r);
                redisFree(rc);
                return -1;
            }
            n = r->elements;
            for (size_t i = 0; i < n; i++)
                load_truth_entry(truth, f, r->element[i]);
            /* The next page starts after the last id ("(" excludes it). */
            if (n == LOAD_XRANGE_COUNT && r->element[n - 1]->type == REDIS_REPLY_ARRAY &&
                r->element[n - 1]->elements == 2 &&
                r->element[n - 1]->element[0]->type == REDIS_REPLY_STRING)
                snprintf(start, sizeof(start), "(%s", r->element[n - 1]->element[0]->str);
            else
                n = 0;
            freeReplyObject(r);
            if (n == 0)
                break;
        }
    }
    redisFree(rc);
    return 0;
}

/* Compares every connected client's last values with the truth. */
static void
load_final_check(struct load_thread *threads, struct load_final *f)
{
    struct load_keys truth = {NULL, 0, 0};

    if (load_truth_read(&truth, f) != 0) {
        free(truth.slots);
        return;
    }
    f->ran = 1;
    f->truth_keys = truth.n;
    f->min_correct = UINT64_MAX;
    for (int k = 0; k < cfg.threads; k++) {
        for (int i = 0; i < threads[k].nclients; i++) {
            const struct load_client *c = &threads[k].clients[i];
            uint64_t correct = 0, stale = 0, wrong = 0, missing = 0;
            if (c->keys == NULL)
                continue;
            if (!c->was_subscribed) {
                f->never_subscribed++;
                continue;
            }
            if (c->cut) {
                f->cut++;
                continue;
            }
            for (uint32_t s = 0; s < truth.cap; s++) {
                const struct load_kv *want = &truth.slots[s], *got;
                if (want->h == 0)
                    continue;
                got = load_keys_slot(c->keys, want->h, 0);
                if (got == NULL)
                    missing++;
                else if (got->ms < want->ms || (got->ms == want->ms && got->seq < want->seq))
                    stale++;
                else if (got->ms == want->ms && got->seq == want->seq &&
                         got->has_price == want->has_price &&
                         (!got->has_price || got->price == want->price))
                    correct++;
                else
                    wrong++;
            }
            for (uint32_t s = 0; s < c->keys->cap; s++) {
                if (c->keys->slots[s].h != 0 &&
                    load_keys_slot(&truth, c->keys->slots[s].h, 0) == NULL)
                    wrong++; /* a key Redis does not have */
            }
            f->checked++;
            f->correct += correct;
            f->stale += stale;
            f->wrong += wrong;
            f->missing += missing;
            if (correct < f->min_correct)
                f->min_correct = correct;
            if (stale == 0 && wrong == 0 && missing == 0) {
                f->all_right++;
            } else if (f->nnot_right < LOAD_NOT_RIGHT_MAX) {
                f->not_right[f->nnot_right].id = c->id;
                f->not_right[f->nnot_right].correct = correct;
                f->not_right[f->nnot_right].stale = stale;
                f->not_right[f->nnot_right].wrong = wrong;
                f->not_right[f->nnot_right].missing = missing;
                f->nnot_right++;
            }
        }
    }
    if (f->checked == 0)
        f->min_correct = 0;
    free(truth.slots);
}

static void
load_print_final(const struct load_final *f)
{
    if (!f->ran) {
        printf("  final check failed: %s\n", f->error);
        return;
    }
    printf("  final state after a drain of %.2f s: truth %llu keys (%llu entries, %llu without a "
           "key);  clients checked %llu, all keys right %llu, cut %llu, never subscribed %llu\n",
           f->drain_s, (unsigned long long)f->truth_keys, (unsigned long long)f->truth_entries,
           (unsigned long long)f->truth_unparsed, (unsigned long long)f->checked,
           (unsigned long long)f->all_right, (unsigned long long)f->cut,
           (unsigned long long)f->never_subscribed);
    printf("    keys over the checked clients: right %llu  stale %llu  wrong %llu  missing %llu  "
           "(fewest right in one client %llu)\n",
           (unsigned long long)f->correct, (unsigned long long)f->stale,
           (unsigned long long)f->wrong, (unsigned long long)f->missing,
           (unsigned long long)f->min_correct);
    for (int i = 0; i < f->nnot_right && i < 10; i++)
        printf("    client %d: right %llu stale %llu wrong %llu missing %llu\n", f->not_right[i].id,
               (unsigned long long)f->not_right[i].correct,
               (unsigned long long)f->not_right[i].stale, (unsigned long long)f->not_right[i].wrong,
               (unsigned long long)f->not_right[i].missing);
}

static void
load_json_final(FILE *out, const struct load_final *f)
{
    fprintf(out, ",\"final\":{\"ran\":%s,\"error\":", f->ran ? "true" : "false");
    bench_json_str(out, f->error);
    fprintf(out,
            ",\"drain_s\":%.3f,\"truth_keys\":%llu,\"truth_entries\":%llu,"
            "\"truth_unparsed\":%llu,\"checked\":%llu,\"all_right\":%llu,\"cut\":%llu,"
            "\"never_subscribed\":%llu,\"correct\":%llu,\"stale\":%llu,\"wrong\":%llu,"
            "\"missing\":%llu,\"min_correct\":%llu,\"not_right\":[",
            f->drain_s, (unsigned long long)f->truth_keys, (unsigned long long)f->truth_entries,
            (unsigned long long)f->truth_unparsed, (unsigned long long)f->checked,
            (unsigned long long)f->all_right, (unsigned long long)f->cut,
            (unsigned long long)f->never_subscribed, (unsigned long long)f->correct,
            (unsigned long long)f->stale, (unsigned long long)f->wrong,
            (unsigned long long)f->missing, (unsigned long long)f->min_correct);
    for (int i = 0; i < f->nnot_right; i++)
        fprintf(
            out, "%s[%d,%llu,%llu,%llu,%llu]", i ? "," : "", f->not_right[i].id,
            (unsigned long long)f->not_right[i].correct, (unsigned long long)f->not_right[i].stale,
            (unsigned long long)f->not_right[i].wrong, (unsigned long long)f->not_right[i].missing);
    fprintf(out, "]}");
}

/* Text lines on the storm (--reconnect-at). */
static void
load_print_storm(const struct load_stats *st, uint64_t incomplete, double storm_s)
{
    uint64_t rc_failed = 0;

    for (int i = 0; i < F_COUNT; i++)
        rc_failed += st->rc_failed[i];
    printf("  storm at %.2f s into the window: %llu dropped, %llu asked to resume, %llu fresh\n",
           cfg.reconnect_at, (unsigned long long)st->rc_dropped,
           (unsigned long long)st->rc_resume_asked, (unsigned long long)st->rc_fresh_asked);
    printf("    acked %llu: resumed true %llu, false %llu", (unsigned long long)st->rc_acked,
           (unsigned long long)st->rc_resumed_true, (unsigned long long)st->rc_resumed_false);
    for (int i = 0; i < LOAD_MAX_REASONS && st->rc_reasons[i]; i++)
        printf(" [%s: %llu]", st->rc_reason_names[i], (unsigned long long)st->rc_reasons[i]);
    printf(", fresh %llu;  failed %llu  closed by server %llu\n", (unsigned long long)st->rc_fresh,
           (unsigned long long)rc_failed, (unsigned long long)st->rc_closed);
    for (int i = 0; i < F_COUNT; i++) {
        if (st->rc_failed[i])
            printf("      failed %-22s %llu\n", load_fail_names[i],
                   (unsigned long long)st->rc_failed[i]);
    }
    printf("    complete boards %llu (%llu only after the window), incomplete %llu, last after "
           "%.3f s;  ack p50 %.1f ms p99 %.1f ms\n",
           (unsigned long long)st->rc_complete, (unsigned long long)st->rc_complete_late,
           (unsigned long long)incomplete, storm_s,
           (double)bench_hist_percentile(&st->rc_ack, 50) / 1000.0,
           (double)bench_hist_percentile(&st->rc_ack, 99) / 1000.0);
    printf("    time to a complete board ms: p50 %.1f  p99 %.1f  max %.1f;  resumed (n=%llu) p50 "
           "%.1f p99 %.1f;  snapshot (n=%llu) p50 %.1f p99 %.1f\n",
           (double)bench_hist_percentile(&st->rc_board, 50) / 1000.0,
           (double)bench_hist_percentile(&st->rc_board, 99) / 1000.0,
           (double)(st->rc_board.total ? st->rc_board.max : 0) / 1000.0,
           (unsigned long long)st->rc_board_res.total,
           (double)bench_hist_percentile(&st->rc_board_res, 50) / 1000.0,
           (double)bench_hist_percentile(&st->rc_board_res, 99) / 1000.0,
           (unsigned long long)st->rc_board_snap.total,
           (double)bench_hist_percentile(&st->rc_board_snap, 50) / 1000.0,
           (double)bench_hist_percentile(&st->rc_board_snap, 99) / 1000.0);
    printf("    replayed updates (ids before t0) %llu\n", (unsigned long long)st->rc_catchup);
}

/* The "reconnect" member of the JSON line. */
static void
load_json_storm(FILE *out, const struct load_stats *st, uint64_t incomplete, double storm_s)
{
    uint64_t rc_failed = 0;

    for (int i = 0; i < F_COUNT; i++)
        rc_failed += st->rc_failed[i];
    fprintf(out,
            ",\"reconnect\":{\"at_s\":%.3f,\"resume_share\":%.3f,\"dropped\":%llu,"
            "\"resume_asked\":%llu,\"fresh_asked\":%llu,\"acked\":%llu,\"resumed_true\":%llu,"
            "\"resumed_false\":%llu,\"fresh\":%llu,\"reasons\":{",
            cfg.reconnect_at, cfg.resume_share, (unsigned long long)st->rc_dropped,
            (unsigned long long)st->rc_resume_asked, (unsigned long long)st->rc_fresh_asked,
            (unsigned long long)st->rc_acked, (unsigned long long)st->rc_resumed_true,
            (unsigned long long)st->rc_resumed_false, (unsigned long long)st->rc_fresh);
    for (int i = 0; i < LOAD_MAX_REASONS && st->rc_reasons[i]; i++) {
        fprintf(out, "%s", i ? "," : "");
        bench_json_str(out, st->rc_reason_names[i]);
        fprintf(out, ":%llu", (unsigned long long)st->rc_reasons[i]);
    }
    fprintf(out, "},\"failed\":%llu,\"failed_by\":{", (unsigned long long)rc_failed);
    for (int i = 0, first = 1; i < F_COUNT; i++) {
        if (st->rc_failed[i]) {
            fprintf(out, "%s\"%s\":%llu", first ? "" : ",", load_fail_names[i],
                    (unsigned long long)st->rc_failed[i]);
            first = 0;
        }
    }
    fprintf(out,
            "},\"closed_by_server\":%llu,\"complete\":%llu,\"complete_after_window\":%llu,"
            "\"incomplete\":%llu,"
            "\"storm_s\":%.3f,\"replayed_updates\":%llu,\"ack_p50_us\":%lld,\"ack_p99_us\":%lld,",
            (unsigned long long)st->rc_closed, (unsigned long long)st->rc_complete,
            (unsigned long long)st->rc_complete_late, (unsigned long long)incomplete, storm_s,
            (unsigned long long)st->rc_catchup, (long long)bench_hist_percentile(&st->rc_ack, 50),
            (long long)bench_hist_percentile(&st->rc_ack, 99));
    fprintf(out,
            "\"board_n\":%llu,\"board_p50_us\":%lld,\"board_p90_us\":%lld,"
            "\"board_p99_us\":%lld,\"board_max_us\":%lld,",
            (unsigned long long)st->rc_board.total,
            (long long)bench_hist_percentile(&st->rc_board, 50),
            (long long)bench_hist_percentile(&st->rc_board, 90),
            (long long)bench_hist_percentile(&st->rc_board, 99),
            (long long)(st->rc_board.total ? st->rc_board.max : 0));
    fprintf(out,
            "\"resumed_n\":%llu,\"resumed_p50_us\":%lld,\"resumed_p99_us\":%lld,"
            "\"snapshot_n\":%llu,\"snapshot_p50_us\":%lld,\"snapshot_p99_us\":%lld}",
            (unsigned long long)st->rc_board_res.total,
            (long long)bench_hist_percentile(&st->rc_board_res, 50),
            (long long)bench_hist_percentile(&st->rc_board_res, 99),
            (unsigned long long)st->rc_board_snap.total,
            (long long)bench_hist_percentile(&st->rc_board_snap, 50),
            (long long)bench_hist_percentile(&st->rc_board_snap, 99));
}

static void
load_report(struct load_stats *st, struct load_thread *threads, double ready_s, double window_s,
            double drain_s, const struct load_final *final)
{
    uint64_t *per = malloc((size_t)cfg.clients * sizeof(*per));
    uint64_t failed = 0, pmin = 0, pmed = 0, pmax = 0, nper = 0, incomplete = 0;
    double storm_s = 0, dps = window_s > 0 ? (double)st->win_deliveries / window_s : 0;
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
                if (c->board != NULL && c->board->t0_mono != 0 && !c->board->complete)
                    incomplete++;
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
    if (st->rc_storm_start != 0 && st->rc_last_complete > st->rc_storm_start)
        storm_s = (double)(st->rc_last_complete - st->rc_storm_start) / 1e9;

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
        printf("  snapshot parts %llu (%llu last, %.1f MB)", (unsigned long long)st->snap_parts,
               (unsigned long long)st->snap_last, (double)st->snap_bytes / 1e6);
        if (cfg.board)
            printf("  board: ids at or before the position %llu, updates without stream/id %llu",
                   (unsigned long long)st->id_regress, (unsigned long long)st->no_origin);
        printf("\n");
        if (!cfg.idle) {
            printf("  age us (window start to end of drain): p50 %lld  p90 %lld  p99 %lld  max %lld"
                   "  (n=%llu);  conflated updates %llu;  drain %.2f s\n",
                   (long long)bench_hist_percentile(&st->age, 50),
                   (long long)bench_hist_percentile(&st->age, 90),
                   (long long)bench_hist_percentile(&st->age, 99),
                   (long long)(st->age.total ? st->age.max : 0), (unsigned long long)st->age.total,
                   (unsigned long long)st->conflated, drain_s);
        }
        if (cfg.read_rate > 0)
            printf("  read rate %.0f B/s per client (rcvbuf %ld, mss %ld): budget ran dry %llu "
                   "times\n",
                   cfg.read_rate, cfg.rcvbuf, cfg.mss, (unsigned long long)st->rate_pauses);
        if (cfg.check_redis != NULL) {
            printf("  keys: ids at or before the key's last %llu, without key or id %llu\n",
                   (unsigned long long)st->key_regress, (unsigned long long)st->key_unparsed);
            load_print_final(final);
        }
        if (cfg.reconnect_at >= 0)
            load_print_storm(st, incomplete, storm_s);
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
            "\"reads\":%llu,\"load_rss_kb\":%ld,",
            (unsigned long long)st->pings, (unsigned long long)st->pongs_sent,
            (unsigned long long)st->error_msgs, (unsigned long long)st->other_text,
            (unsigned long long)st->binary, (unsigned long long)st->no_ts,
            (unsigned long long)st->bad_frames, (unsigned long long)st->masked,
            (unsigned long long)st->oversized, (unsigned long long)st->fragments,
            (unsigned long long)st->negative, (unsigned long long)st->bytes_in,
            (unsigned long long)st->reads, bench_self_hwm_kb());
    fprintf(out, "\"snapshot_parts\":%llu,\"snapshot_last\":%llu,\"snapshot_bytes\":%llu",
            (unsigned long long)st->snap_parts, (unsigned long long)st->snap_last,
            (unsigned long long)st->snap_bytes);
    if (cfg.board)
        fprintf(out, ",\"board_id_regress\":%llu,\"board_no_origin\":%llu",
                (unsigned long long)st->id_regress, (unsigned long long)st->no_origin);
    fprintf(out,
            ",\"conflated_rcvd\":%llu,\"age_n\":%llu,\"age_p50_us\":%lld,\"age_p90_us\":%lld,"
            "\"age_p99_us\":%lld,\"age_max_us\":%lld,\"drain_s\":%.3f",
            (unsigned long long)st->conflated, (unsigned long long)st->age.total,
            (long long)bench_hist_percentile(&st->age, 50),
            (long long)bench_hist_percentile(&st->age, 90),
            (long long)bench_hist_percentile(&st->age, 99),
            (long long)(st->age.total ? st->age.max : 0), drain_s);
    if (cfg.read_rate > 0)
        fprintf(out, ",\"read_rate\":%.0f,\"rcvbuf\":%ld,\"mss\":%ld,\"rate_pauses\":%llu",
                cfg.read_rate, cfg.rcvbuf, cfg.mss, (unsigned long long)st->rate_pauses);
    if (cfg.check_redis != NULL) {
        fprintf(out, ",\"key_regress\":%llu,\"key_unparsed\":%llu",
                (unsigned long long)st->key_regress, (unsigned long long)st->key_unparsed);
        load_json_final(out, final);
    }
    if (cfg.reconnect_at >= 0)
        load_json_storm(out, st, incomplete, storm_s);
    fprintf(out, "}\n");
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
                                         {"go-file", required_argument, NULL, 'G'},
                                         {"no-snapshot", no_argument, NULL, 'N'},
                                         {"board", no_argument, NULL, 'B'},
                                         {"reconnect-at", required_argument, NULL, 'C'},
                                         {"resume-share", required_argument, NULL, 'E'},
                                         {"read-rate", required_argument, NULL, 'Z'},
                                         {"tokens", required_argument, NULL, 'J'},
                                         {"rcvbuf", required_argument, NULL, 'V'},
                                         {"mss", required_argument, NULL, 'm'},
                                         {"drain-quiet", required_argument, NULL, 'Q'},
                                         {"final-check", required_argument, NULL, 'K'},
                                         {"final-streams", required_argument, NULL, 'F'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct load_thread *threads;
    struct load_stats total;
    long v, nofile, sources = 0;
    int opt, per, rem, ready_reported = 0, clock_started = 0, last_settled = -1;
    int64_t t_ready = 0, t_ms = 0, t_me = 0, t_done = 0, last_progress;
    double window_s = 0, drain_s = -1;
    struct sigaction sa;
    static struct load_final final; /* large-ish: not on the stack */
    long rcvbuf = -1;

    snprintf(cfg.host, sizeof(cfg.host), "127.0.0.1");
    cfg.port = 8080;
    snprintf(cfg.path, sizeof(cfg.path), "/ws");
    cfg.clients = 1000;
    cfg.threads = 1;
    cfg.ramp = 2000;
    cfg.warmup = 5;
    cfg.duration = 20;
    cfg.drain = 2;
    cfg.reconnect_at = -1;
    cfg.resume_share = 0.5;
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
        case 'G':
            cfg.go_path = optarg;
            break;
        case 'N':
            cfg.no_snapshot = 1;
            break;
        case 'B':
            cfg.board = 1;
            break;
        case 'C':
            if ((s = bench_parse_seconds(optarg)) < 0)
                goto bad;
            cfg.reconnect_at = s;
            cfg.board = 1;
            break;
        case 'E':
            if ((s = bench_parse_seconds(optarg)) < 0 || s > 1)
                goto bad;
            cfg.resume_share = s;
            break;
        case 'Z':
            if (bench_parse_long(optarg, 1, 1L << 40, &v) != 0)
                goto bad;
            cfg.read_rate = (double)v;
            break;
        case 'J':
            if (load_read_tokens(optarg) != 0)
                return 2;
            break;
        case 'V':
            if (bench_parse_long(optarg, 0, 1L << 30, &rcvbuf) != 0)
                goto bad;
            break;
        case 'm':
            /* TCP refuses an MSS below 88 bytes; above 65,535 is not one. */
            if (bench_parse_long(optarg, 0, 65535, &cfg.mss) != 0 || (cfg.mss > 0 && cfg.mss < 88))
                goto bad;
            break;
        case 'Q':
            if ((s = bench_parse_seconds(optarg)) < 0)
                goto bad;
            cfg.drain_quiet = s;
            break;
        case 'K':
            cfg.check_redis = optarg;
            break;
        case 'F': {
            char *copy = strdup(optarg), *save = NULL;
            if (copy == NULL)
                return 1;
            for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                if (*tok == '\0')
                    continue;
                if (cfg.ncheck_streams == LOAD_MAX_STREAMS ||
                    (cfg.check_streams[cfg.ncheck_streams] = strdup(tok)) == NULL) {
                    free(copy);
                    goto bad;
                }
                cfg.ncheck_streams++;
            }
            free(copy);
            break;
        }
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
    if (cfg.board && (cfg.no_snapshot || cfg.idle)) {
        fprintf(stderr, "wsb-load: --board and --reconnect-at need snapshots and a stream "
                        "(not --no-snapshot, not --idle)\n");
        return 2;
    }
    if ((cfg.check_redis != NULL) != (cfg.ncheck_streams > 0) ||
        (cfg.check_redis != NULL && cfg.idle)) {
        fprintf(stderr, "wsb-load: --final-check and --final-streams go together, not with "
                        "--idle\n");
        return 2;
    }
    /* A small receive buffer makes a slow reader felt by the server at once
     * rather than after the kernel's default (128 KB here, autotuned up). */
    cfg.rcvbuf = rcvbuf >= 0 ? rcvbuf : cfg.read_rate > 0 ? 16384 : 0;
    /* A tenth of a second of reading at most in one go; at least a frame
     * header and some, so that a read is never pointless. */
    cfg.read_depth = cfg.read_rate / 10 > 1024 ? cfg.read_rate / 10 : 1024;

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
        bench_hist_init(&t->st.age);
        bench_hist_init(&t->st.rc_ack);
        bench_hist_init(&t->st.rc_board);
        bench_hist_init(&t->st.rc_board_res);
        bench_hist_init(&t->st.rc_board_snap);
        for (int i = 0; i < t->nclients; i++, id++) {
            struct load_client *c = &t->clients[i];
            /* Global client id: filters and sources round-robin over all threads. */
            c->fd = -1;
            c->id = id;
            c->filter = cfg.nfilters ? id % cfg.nfilters : 0;
            c->source = id % cfg.nsources;
            if (cfg.board) {
                if ((c->board = calloc(1, sizeof(*c->board))) == NULL) {
                    fprintf(stderr, "wsb-load: out of memory\n");
                    return 1;
                }
                /* Resumers spread evenly over the ids (and so over filters
                 * and threads): id resumes when floor(share * id) steps. */
                c->board->resume =
                    (int64_t)(cfg.resume_share * (id + 1)) > (int64_t)(cfg.resume_share * id);
            }
            if (cfg.check_redis != NULL && (c->keys = calloc(1, sizeof(*c->keys))) == NULL) {
                fprintf(stderr, "wsb-load: out of memory\n");
                return 1;
            }
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
            if (!cfg.quiet)
                fprintf(stderr, "wsb-load: %d clients settled after %.2f s\n", s,
                        (double)(now - t_begin) / 1e9);
            load_write_ready(now);
        }
        /* The clock starts at ready, or once the go file exists. */
        if (ready_reported && !clock_started &&
            (cfg.go_path == NULL || access(cfg.go_path, F_OK) == 0)) {
            clock_started = 1;
            if (cfg.idle) {
                t_ms = now;
                t_me = now + (int64_t)(cfg.duration * 1e9);
                atomic_store(&t_stop, t_me);
            } else {
                t_ms = now + (int64_t)(cfg.warmup * 1e9);
                t_me = t_ms + (int64_t)(cfg.duration * 1e9);
                atomic_store(&t_measure_end, t_me);
                atomic_store(&t_measure_start, t_ms);
                if (cfg.reconnect_at >= 0)
                    atomic_store(&t_reconnect, t_ms + (int64_t)(cfg.reconnect_at * 1e9));
                atomic_store(&t_stop, t_me + (int64_t)(cfg.drain * 1e9));
            }
        }
        if (!cfg.quiet && !ready_reported && now - last_progress >= 1000000000LL &&
            s != last_settled) {
            fprintf(stderr, "wsb-load: %d/%d settled\n", s, cfg.clients);
            last_progress = now;
            last_settled = s;
        }
        if (clock_started && now >= atomic_load(&t_stop))
            break;
        if (clock_started && cfg.drain_quiet > 0 && !cfg.idle && now >= t_me) {
            int quiet = 0;
            for (int k = 0; k < cfg.threads; k++)
                quiet += atomic_load_explicit(&threads[k].quiet, memory_order_relaxed);
            if (quiet == cfg.threads)
                break;
        }
        usleep(10000);
    }
    t_done = bench_mono_ns();
    if (clock_started && !cfg.idle)
        drain_s = t_done > t_me ? (double)(t_done - t_me) / 1e9 : 0;
    atomic_store(&stop_now, 1);
    for (int k = 0; k < cfg.threads; k++)
        pthread_join(threads[k].tid, NULL);

    memset(&total, 0, sizeof(total));
    bench_hist_init(&total.lat);
    bench_hist_init(&total.setup);
    bench_hist_init(&total.age);
    bench_hist_init(&total.rc_ack);
    bench_hist_init(&total.rc_board);
    bench_hist_init(&total.rc_board_res);
    bench_hist_init(&total.rc_board_snap);
    for (int k = 0; k < cfg.threads; k++)
        load_merge(&total, &threads[k].st);
    if (clock_started) {
        int64_t end = bench_mono_ns();
        if (end > t_me)
            end = t_me;
        window_s = end > t_ms ? (double)(end - t_ms) / 1e9 : 0;
    }
    final.drain_s = drain_s;
    if (cfg.check_redis != NULL && clock_started)
        load_final_check(threads, &final);
    else if (cfg.check_redis != NULL)
        snprintf(final.error, sizeof(final.error), "the clients never got ready");
    load_report(&total, threads, ready_reported ? (double)(t_ready - t_begin) / 1e9 : -1, window_s,
                drain_s, &final);
    for (int k = 0; k < cfg.threads; k++) {
        for (int i = 0; i < threads[k].nclients; i++) {
            free(threads[k].clients[i].board);
            if (threads[k].clients[i].keys != NULL)
                free(threads[k].clients[i].keys->slots);
            free(threads[k].clients[i].keys);
        }
        free(threads[k].clients);
        free(threads[k].rbuf);
        close(threads[k].ep);
    }
    free(threads);
    for (int i = 0; i < cfg.nfilters; i++)
        free(cfg.filters[i]);
    free(cfg.filters);
    for (int i = 0; i < cfg.ncheck_streams; i++)
        free(cfg.check_streams[i]);
    return ready_reported ? 0 : 1;
}
