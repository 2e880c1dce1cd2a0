#include "worker.h"
#include "admit.h"
#include "auth.h"
#include "drain.h"
#include "feed.h"
#include "outbound.h"
#include "replay.h"
#include "rxguard.h"
#include "sub.h"
#include "wsp.h"
#include "../common/addrtab.h"
#include "../common/proxies.h"
#include "../common/proxyproto.h"
#include "../common/frame.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Frames read from the ring per turn of the loop at most; every client given
 * some of them is written to at the end of the slice, and one given 7/8 of
 * CLIENT_BUFFER of them on the way (outbound.h).  A slice
 * ends early when such a client's socket is full: it gets a turn of the
 * loop to drain, so a burst (say, the backlog after an ingest restart)
 * reaches a reading client in slices, while one whose socket stays full
 * overflows CLIENT_BUFFER and is cut off as slow.  Long slices are what a
 * worker that has fallen behind needs: clients that match few entries get
 * all of theirs in one write instead of one write per short slice.
 */
#define WORKER_FRAMES_PER_SLICE    1024
/* Bytes lws buffers per WebSocket connection for what the client sends. */
#define WORKER_RX_BUFFER           512
#define WORKER_ACCEPTS_PER_WAKE    64
/* The once-a-second sweep of the sessions, in this many parts spread over
 * the second (wsp_liveness_sweep). */
#define WORKER_SWEEP_PARTS         10
/* After the drain's deadline, the clients closed last have CLOSE_TIMEOUT
 * to finish; this much more and the worker exits whatever is left. */
#define WORKER_STOP_SLACK_MS       1000
/* Connections a worker holds open on METRICS_ADDR at once: scrapers and
 * probes, a handful; more are closed at accept. */
#define WORKER_METRICS_CONNECTIONS 64

enum worker_fd_kind { WORKER_FD_LISTEN = 1, WORKER_FD_WAKE, WORKER_FD_SIGNAL, WORKER_FD_METRICS };

struct worker {
    int index;
    struct shm *shm;
    struct ring *ring;
    struct conf conf;
    struct wsp_vhost vh;
    struct ev_loop *loop; /* lws runs on it (epoll) */
    struct lws_context *ctx;
    struct lws_vhost *vhost;
    int listen_fd, metrics_fd, wake_fd, signal_fd;
    struct lws *listen_wsi, *metrics_wsi;
    struct ring_reader reader;
    uint64_t slot_missed_base; /* the slot's ring_missed when this worker started */
    char *frame;
    msgpack_zone zone;
    int done;
    lws_sorted_usec_list_t liveness;
    unsigned sweep_part; /* the part of the sessions the next sweep checks */
    lws_sorted_usec_list_t accept_retry;
    lws_sorted_usec_list_t stop_deadline;
    struct log_ratelimit rl;
    struct log_ratelimit refused_rl; /* connections refused at accept */
};

static struct worker worker;
/* The opaque user data of METRICS_ADDR's connections (wsp_on_metrics): an
 * address of its own, unlike the raw descriptors' kinds, whose WSI_DESTROY
 * lws 4.1 also sends to wsp_callback. */
static const char worker_metrics_mark;

static int worker_kinds[5] = {0, WORKER_FD_LISTEN, WORKER_FD_WAKE, WORKER_FD_SIGNAL,
                              WORKER_FD_METRICS};

static void
worker_wake_self(struct worker *w)
{
    uint64_t one = 1;

    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        LOG_WARN("write(eventfd) failed: %s", strerror(errno));
}

static void
worker_kick(struct wsp_vhost *vh)
{
    (void)vh;
    worker_wake_self(&worker);
}

static void
worker_drain_ring(struct worker *w)
{
    struct shm_worker *st = w->vh.stats;
    int budget = WORKER_FRAMES_PER_SLICE;
    uint64_t missed_before = w->reader.missed;

    outbound_batch_begin(&w->vh);

    while (budget-- > 0) {
        struct ring_frame_meta meta;
        struct frame_view view;
        struct feed_entry e;
        struct outq_msg *encoded[2];
        int full;
        uint64_t missed = w->reader.missed;
        uint32_t len;
        char err[128], name[SHM_STREAM_NAME], id[STREAMID_STR_MAX];

        if (ring_read(w->ring, &w->reader, w->frame, w->conf.max_entry_size, &len, &meta) == 0)
            break;
        if (w->reader.missed != missed) {
            /* Frames were lost before this worker read them: its clients'
             * boards are no longer right.  Each gets a fresh snapshot. */
            outbound_batch_flush(&w->vh);
            feed_lapped(&w->vh);
            outbound_batch_begin(&w->vh);
            continue;
        }
        e.seq = w->reader.next - 1;
        e.stream = meta.stream;
        e.id = (struct streamid){meta.id_ms, meta.id_seq};
        e.published_us = meta.published_us;
        feed_frame(&w->vh, meta.kind, &e, w->frame, len);
        if (meta.kind != RING_KIND_ENTRY) {
            feed_note(&w->vh, meta.kind, &e, NULL, NULL);
            continue;
        }
        if (shm_stream_name(w->shm, meta.stream, name, sizeof(name)) != 0)
            name[0] = '\0';
        streamid_format(&e.id, id, sizeof(id));
        e.stream_name = name;
        e.id_text = id;
        msgpack_zone_clear(&w->zone);
        if (frame_unpack(w->frame, len, &w->zone, &view, err, sizeof(err)) != 0) {
            atomic_fetch_add_explicit(&st->invalid_frames, 1, memory_order_relaxed);
            feed_note(&w->vh, meta.kind, &e, NULL, NULL);
            if (log_ratelimit_allow(&w->rl))
                LOG_WARN("skipping undecodable ring frame %llu: %s",
                         (unsigned long long)(w->reader.next - 1), err);
            continue;
        }
        full = outbound_broadcast(&w->vh, &view, &e, encoded);
        feed_note(&w->vh, meta.kind, &e, &view, encoded);
        if (full) {
            budget = -1; /* a busy client's socket is full: let it drain */
            break;
        }
    }
    outbound_batch_flush(&w->vh);
    /* Sessions that are not live yet catch up to where the worker is now. */
    if (feed_service(&w->vh))
        budget = -1;
    if (budget < 0)
        worker_wake_self(w); /* more to do: come back after one round of client I/O */
    if (w->reader.missed != missed_before && log_ratelimit_allow(&w->rl))
        LOG_WARN("fell behind the ring: %llu entries overwritten before this worker read "
                 "them (%llu in all); its clients never get them (more WORKERS or CPU, or a "
                 "larger RING_SIZE)",
                 (unsigned long long)(w->reader.missed - missed_before),
                 (unsigned long long)w->reader.missed);
    atomic_store_explicit(&st->ring_next, w->reader.next, memory_order_relaxed);
    /* The slot's count goes on from its previous workers' (shm.h). */
    atomic_store_explicit(&st->ring_missed, w->slot_missed_base + w->reader.missed,
                          memory_order_relaxed);
}

static void
worker_accept_resume(lws_sorted_usec_list_t *sul)
{
    struct worker *w = lws_container_of(sul, struct worker, accept_retry);

    /* Also while draining: connections are answered (503) until the end. */
    if (w->listen_wsi != NULL)
        lws_rx_flow_control(w->listen_wsi, 1);
    if (w->metrics_wsi != NULL)
        lws_rx_flow_control(w->metrics_wsi, 1);
}

/* Out of descriptors: the listener stays readable, so stop watching both
 * for a moment instead of spinning. */
static void
worker_accept_pause(struct worker *w)
{
    if (w->listen_wsi != NULL)
        lws_rx_flow_control(w->listen_wsi, 0);
    if (w->metrics_wsi != NULL)
        lws_rx_flow_control(w->metrics_wsi, 0);
    lws_sul_schedule(w->ctx, 0, &w->accept_retry, worker_accept_resume, 100 * LWS_US_PER_MS);
}

/* Whether the connection just accepted from key fits MAX_CONNECTIONS and
 * MAX_CONNECTIONS_PER_IP (counted if so).  Every TCP connection counts,
 * HTTP or WebSocket, upgraded or not: otherwise a few addresses holding idle
 * connections could use up the worker's file descriptors, and accepts
 * would pause for everyone. */
static int
worker_connection_fits(struct worker *w, const struct addrtab_key *key, int per_address)
{
    const char *limit;

    if (admit_connection(&w->vh, key, per_address, &limit) == 0)
        return 1;
    atomic_fetch_add_explicit(&w->vh.stats->refused_connections, 1, memory_order_relaxed);
    if (log_ratelimit_allow(&w->refused_rl)) {
        char addr[ADDRTAB_KEY_STRLEN];
        addrtab_key_format(key, w->conf.ipv6_prefix, addr, sizeof(addr));
        LOG_INFO_KV(LOG_FIELDS(LOG_STR("client_ip", addr), LOG_STR("limit", limit)),
                    "connection from %s refused: %s reached", addr, limit);
    }
    return 0;
}

/* Hand an accepted connection, counted under key, to lws. */
static void
worker_handoff(struct worker *w, int fd, const struct addrtab_key *key, int proxied)
{
    int one = 1;
    struct lws *wsi;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        LOG_DEBUG("setsockopt(TCP_NODELAY) failed: %s", strerror(errno));
    /* From its first byte: what a client pipelines with its upgrade
     * request is checked too. */
    rxguard_accept(fd, w->conf.max_message_size);
    /* On failure lws closes fd itself. */
    wsi = lws_adopt_socket_vhost(w->vhost, fd);
    if (wsi == NULL) {
        admit_connection_undo(&w->vh, key);
        if (log_ratelimit_allow(&w->rl))
            LOG_WARN("lws_adopt_socket_vhost(fd %d) failed", fd);
        return;
    }
    /* Counted until lws destroys the connection (admit_abandon). */
    if (admit_conn_attach(&w->vh, wsi, key, proxied) != 0)
        lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
}

/*
 * A connection from a trusted proxy with PROXY_PROTOCOL on: nothing of it
 * reaches lws until its PROXY header (v1 or v2) is read whole, within
 * HANDSHAKE_TIMEOUT; the header names the client, whose address the
 * connection is counted and limited under.  No header, a bad one, or none
 * in time: closed (counted in refused_connections).
 */
struct worker_proxy_conn {
    ev_io io;
    ev_timer timer;
    int fd;
};

static void
worker_proxy_done(struct worker *w, struct worker_proxy_conn *pc, const char *why)
{
    ev_io_stop(w->loop, &pc->io);
    ev_timer_stop(w->loop, &pc->timer);
    if (why != NULL) {
        atomic_fetch_add_explicit(&w->vh.stats->refused_connections, 1, memory_order_relaxed);
        if (log_ratelimit_allow(&w->refused_rl))
            LOG_INFO("connection from a trusted proxy closed: %s", why);
        close(pc->fd);
    }
    free(pc);
}

static void
worker_proxy_readable(struct ev_loop *loop, ev_io *io, int revents)
{
    struct worker *w = &worker;
    struct worker_proxy_conn *pc = (struct worker_proxy_conn *)io;
    unsigned char buf[PROXYPROTO_MAX_HEADER];
    struct proxyproto_header h;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof(peer);
    struct addrtab_key key;
    char err[128];
    ssize_t n;
    int fd = pc->fd;

    (void)loop;
    (void)revents;
    n = recvfrom(fd, buf, sizeof(buf), MSG_PEEK, NULL, NULL);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        worker_proxy_done(w, pc, "closed before its PROXY header");
        return;
    }
    switch (proxyproto_parse(buf, (size_t)n, &h, err, sizeof(err))) {
    case PROXYPROTO_NEED_MORE:
        if ((size_t)n < sizeof(buf))
            return;
        worker_proxy_done(w, pc, "PROXY header too long");
        return;
    case PROXYPROTO_INVALID:
        worker_proxy_done(w, pc, err);
        return;
    case PROXYPROTO_OK:
        break;
    }
    /* Take exactly the header: the request behind it is lws's.  recvfrom,
     * not recv: the process's recv is rxguard's (recv_override.h), for
     * connections lws owns, and this one is not lws's yet. */
    if (recvfrom(fd, buf, h.header_len, 0, NULL, NULL) != (ssize_t)h.header_len) {
        worker_proxy_done(w, pc, "reading its PROXY header failed");
        return;
    }
    if (h.local) { /* the proxy's own connection (a health check): its address */
        if (getpeername(fd, (struct sockaddr *)&peer, &plen) != 0) {
            worker_proxy_done(w, pc, "no peer address");
            return;
        }
    } else {
        peer = h.src;
        plen = h.src_len;
    }
    if (addrtab_key_from_sockaddr((struct sockaddr *)&peer, plen, w->conf.ipv6_prefix, &key) != 0 ||
        !worker_connection_fits(w, &key, 1)) {
        worker_proxy_done(w, pc, NULL);
        close(fd);
        return;
    }
    worker_proxy_done(w, pc, NULL);
    worker_handoff(w, fd, &key, 1);
}

static void
worker_proxy_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    struct worker_proxy_conn *pc =
        (struct worker_proxy_conn *)((char *)t - offsetof(struct worker_proxy_conn, timer));

    (void)loop;
    (void)revents;
    worker_proxy_done(&worker, pc, "no PROXY header within HANDSHAKE_TIMEOUT");
}

static void
worker_proxy_wait(struct worker *w, int fd)
{
    struct worker_proxy_conn *pc = calloc(1, sizeof(*pc));

    if (pc == NULL) {
        close(fd);
        return;
    }
    pc->fd = fd;
    ev_io_init(&pc->io, worker_proxy_readable, fd, EV_READ);
    ev_timer_init(&pc->timer, worker_proxy_timeout, (double)w->conf.handshake_timeout, 0.);
    ev_io_start(w->loop, &pc->io);
    ev_timer_start(w->loop, &pc->timer);
}

static void
worker_accept(struct worker *w)
{
    for (int i = 0; i < WORKER_ACCEPTS_PER_WAKE; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        struct addrtab_key key;
        int trusted;
        int fd = accept4(w->listen_fd, (struct sockaddr *)&peer, &peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (log_ratelimit_allow(&w->rl))
                    LOG_WARN("accept4() failed: %s; pausing accepts for 100 ms", strerror(errno));
                worker_accept_pause(w);
                return;
            }
            /* ECONNABORTED and friends: that one connection is gone. */
            continue;
        }
        trusted = w->vh.proxies.n > 0 &&
                  proxies_trusted(&w->vh.proxies, (struct sockaddr *)&peer, peer_len);
        if (trusted && w->conf.proxy_protocol) {
            /* The client's address comes first, in a PROXY header. */
            worker_proxy_wait(w, fd);
            continue;
        }
        /* Refused before anything is read from it.  A trusted proxy carries
         * many clients: its own address is not held to the per-address
         * limit (the clients are, at their upgrade: X-Forwarded-For). */
        if (addrtab_key_from_sockaddr((struct sockaddr *)&peer, peer_len, w->conf.ipv6_prefix,
                                      &key) != 0 ||
            !worker_connection_fits(w, &key, !trusted)) {
            close(fd);
            continue;
        }
        worker_handoff(w, fd, &key, 0);
    }
}

/* METRICS_ADDR: operators' scrapers and probes, not clients, so not held
 * to the clients' limits (MAX_CONNECTIONS...), only to a few at a time. */
static void
worker_accept_metrics(struct worker *w)
{
    for (int i = 0; i < WORKER_ACCEPTS_PER_WAKE; i++) {
        int one = 1, fd = accept4(w->metrics_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct lws *wsi;

        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                return;
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                worker_accept_pause(w);
                return;
            }
            continue;
        }
        if (w->vh.metrics_conns >= WORKER_METRICS_CONNECTIONS) {
            atomic_fetch_add_explicit(&w->vh.stats->refused_connections, 1, memory_order_relaxed);
            if (log_ratelimit_allow(&w->refused_rl))
                LOG_INFO("metrics connection refused: %d open", WORKER_METRICS_CONNECTIONS);
            close(fd);
            continue;
        }
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        rxguard_accept(fd, w->conf.max_message_size);
        /* On failure lws closes fd itself. */
        wsi = lws_adopt_socket_vhost(w->vhost, fd);
        if (wsi != NULL) {
            lws_set_opaque_user_data(wsi, (void *)w->vh.metrics_mark);
            w->vh.metrics_conns++;
        }
    }
}

static void
worker_stop_deadline(lws_sorted_usec_list_t *sul)
{
    struct worker *w = lws_container_of(sul, struct worker, stop_deadline);

    if (w->vh.sessions.count > 0)
        LOG_WARN("%u clients still open after the drain and CLOSE_TIMEOUT; closing",
                 w->vh.sessions.count);
    w->done = 1;
    lws_cancel_service(w->ctx);
}

/*
 * SIGTERM or SIGINT: drain (drain.h).  The worker goes on accepting, so
 * that a connection arriving on its listener during the drain is answered
 * (an upgrade with 503, /health, /metrics) rather than left in the accept
 * queue, and goes on reading the ring, so its clients get every update
 * until their turn to be closed.  It exits once its last client is gone.
 * A further signal re-reads the supervisor's deadline, which a second
 * signal to the supervisor brings forward.
 */
static void
worker_begin_stop(struct worker *w)
{
    uint64_t deadline, now = time_mono_ms(), exit_at;

    if (!shm_draining(w->shm, NULL, &deadline)) {
        /* Signalled directly (kill -TERM -PGID), before the supervisor. */
        deadline =
            drain_deadline() != 0 ? drain_deadline() : now + (uint64_t)w->conf.drain_seconds * 1000;
    }
    if (!w->vh.stopping) {
        w->vh.stopping = 1;
        /* Not taking new clients any more (shm.h). */
        atomic_store_explicit(&w->vh.stats->listening, 0, memory_order_relaxed);
    } else if (drain_deadline() != 0 && deadline >= drain_deadline()) {
        return;
    }
    drain_start(&w->vh, deadline);
    exit_at = (deadline > now ? deadline - now : 0) + (uint64_t)w->conf.close_timeout * 1000 +
              WORKER_STOP_SLACK_MS;
    lws_sul_schedule(w->ctx, 0, &w->stop_deadline, worker_stop_deadline,
                     (lws_usec_t)exit_at * LWS_US_PER_MS);
}

/* Once a second: ping the silent, hang up on the dead, cut off the stuck
 * (wsp.h). */
static void
worker_liveness(lws_sorted_usec_list_t *sul)
{
    struct worker *w = lws_container_of(sul, struct worker, liveness);

    wsp_liveness_sweep(&w->vh, w->sweep_part, WORKER_SWEEP_PARTS);
    w->sweep_part = (w->sweep_part + 1) % WORKER_SWEEP_PARTS;
    lws_sul_schedule(w->ctx, 0, &w->liveness, worker_liveness,
                     LWS_USEC_PER_SEC / WORKER_SWEEP_PARTS);
}

static int
worker_raw_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    struct worker *w = &worker;
    int *kind = lws_get_opaque_user_data(wsi);

    (void)user;
    (void)in;
    (void)len;
    switch (reason) {
    case LWS_CALLBACK_RAW_RX_FILE:
        if (kind == NULL)
            break;
        if (*kind == WORKER_FD_LISTEN) {
            worker_accept(w);
        } else if (*kind == WORKER_FD_METRICS) {
            worker_accept_metrics(w);
        } else if (*kind == WORKER_FD_WAKE) {
            uint64_t n;
            if (read(w->wake_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
                LOG_WARN("read(eventfd) failed: %s", strerror(errno));
            worker_drain_ring(w);
        } else if (*kind == WORKER_FD_SIGNAL) {
            struct signalfd_siginfo si;
            while (read(w->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
                    worker_begin_stop(w);
                else if (si.ssi_signo == SIGHUP)
                    auth_reload(&w->vh); /* the key files (the supervisor's reload) */
            }
        }
        break;
    case LWS_CALLBACK_RAW_CLOSE_FILE:
        if (kind != NULL && *kind == WORKER_FD_LISTEN)
            w->listen_wsi = NULL;
        else if (kind != NULL && *kind == WORKER_FD_METRICS)
            w->metrics_wsi = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const lws_retry_bo_t worker_no_validity = {.secs_since_valid_ping = 0,
                                                  .secs_since_valid_hangup = 0};

static const struct lws_protocols worker_protocols[] = {
    /* First: lws serves HTTP with protocol 0 and gives a WebSocket client that
     * names no subprotocol the vhost's default, also protocol 0. */
    /* lws gives every WebSocket connection an rx buffer of this size for
     * its whole life; client messages are small (subscribe, heartbeat) and
     * longer ones arrive in pieces that wsp reassembles, so a small buffer
     * is most of the memory an idle connection costs. */
    {"wsb", wsp_callback, sizeof(struct wsp_session), WORKER_RX_BUFFER, 0, NULL, OUTQ_WRITE_BYTES},
    {"wsb-raw", worker_raw_callback, 0, 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0}};

static struct lws *
worker_adopt_fd(struct worker *w, int fd, int *kind)
{
    lws_adopt_desc_t desc;
    struct lws *wsi;

    memset(&desc, 0, sizeof(desc));
    desc.vh = w->vhost;
    desc.type = LWS_ADOPT_RAW_FILE_DESC;
    desc.fd.filefd = fd;
    desc.vh_prot_name = "wsb-raw";
    desc.opaque = kind;
    wsi = lws_adopt_descriptor_vhost_via_info(&desc);
    if (wsi == NULL)
        LOG_ERROR("lws_adopt_descriptor_vhost(fd %d) failed", fd);
    return wsi;
}

int
worker_main(struct shm *s, const struct conf *c, int index, int listen_fd, int metrics_fd,
            int wake_fd)
{
    struct worker *w = &worker;
    struct lws_context_creation_info info;
    void *foreign_loops[1];
    struct log_ratelimit rl = LOG_RATELIMIT_INIT(10000, 10);
    sigset_t mask;

    w->index = index;
    w->shm = s;
    w->ring = shm_ring(s);
    w->conf = *c;
    w->listen_fd = listen_fd;
    w->metrics_fd = metrics_fd;
    w->wake_fd = wake_fd;
    w->rl = rl;
    w->refused_rl = rl;
    w->vh.shm = s;
    w->vh.stats = &s->workers[index - 1];
    w->vh.worker = (uint32_t)(index - 1);
    w->vh.latency.hist = &w->vh.stats->delivery_latency;
    w->vh.latency.countdown = 1;
    w->slot_missed_base = atomic_load_explicit(&w->vh.stats->ring_missed, memory_order_relaxed);
    w->vh.conf = &w->conf;
    w->vh.limits.max_values = c->max_filter_values;
    w->vh.limits.max_value_len = c->max_filter_value_len;
    {
        char err[256];
        if (proxies_parse(&w->vh.proxies, c->trusted_proxies, err, sizeof(err)) != 0) {
            LOG_ERROR("%s", err); /* conf_check refused it already: cannot happen */
            return 78;
        }
    }
    w->vh.index = sub_index_new();
    w->frame = malloc(c->max_entry_size);
    if (w->vh.index == NULL || w->frame == NULL || !msgpack_zone_init(&w->zone, 4096)) {
        LOG_ERROR("out of memory at start");
        return 1;
    }
    w->vh.kick = worker_kick;
    if (auth_init(&w->vh) != 0)
        return 78; /* EX_CONFIG: the key cannot be read; a restart cannot help */
    wsp_bind(&w->vh);

    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0 ||
        (w->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
        LOG_ERROR("signalfd() failed: %s", strerror(errno));
        return 1;
    }

    lws_set_log_level(LLL_ERR | LLL_WARN, log_lws_emit);
    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = worker_protocols;
    info.gid = (gid_t)-1;
    info.uid = (uid_t)-1;
    info.vhost_name = "wsb";
    /* A client must finish its request within HANDSHAKE_TIMEOUT (slowloris),
     * with headers of at most MAX_HEADER_SIZE bytes. */
    info.timeout_secs = c->handshake_timeout;
    info.timeout_secs_ah_idle = c->handshake_timeout;
    info.max_http_header_data = (unsigned short)c->max_header_size;
    /* An HTTP keep-alive connection waits at most this long for its next
     * request (lws's own default is 5 s; the setting makes it explicit). */
    info.keepalive_timeout = (int)c->http_idle_timeout;
    /* Pings are ours (wsp_liveness_sweep), not lws's validity policy: lws
     * 4.1 keeps one timer per connection in a single sorted list, and every
     * (re)arm walks that list to its end, which made connecting 15,000
     * clients take seconds.  Without a policy lws falls back to a default
     * one (ping after 300 s), so an explicit policy with no hangup time is
     * what turns the per-connection timer off. */
    info.retry_and_idle_policy = &worker_no_validity;
    /* lws's own loop is poll(): every turn scans every connection, which at
     * 10,000 clients and 1,000 entries/s took 70% of the worker.  lws runs
     * on a libev loop of ours instead, on epoll, where a turn costs what is
     * ready. */
    w->loop = ev_loop_new(EVBACKEND_EPOLL | EVFLAG_NOENV);
    if (w->loop == NULL) {
        LOG_ERROR("ev_loop_new(epoll) failed");
        return 1;
    }
    foreign_loops[0] = w->loop;
    info.options |= LWS_SERVER_OPTION_LIBEV;
    info.foreign_loops = foreign_loops;
    w->ctx = lws_create_context(&info);
    if (w->ctx == NULL) {
        LOG_ERROR("lws_create_context() failed");
        return 1;
    }
    w->vh.ctx = w->ctx;
    w->vhost = lws_create_vhost(w->ctx, &info);
    if (w->vhost == NULL) {
        LOG_ERROR("lws_create_vhost() failed");
        lws_context_destroy(w->ctx);
        return 1;
    }
    if (metrics_fd >= 0)
        w->vh.metrics_mark = &worker_metrics_mark;

    ring_reader_init(w->ring, &w->reader);
    if (feed_init(&w->vh, &w->reader) != 0) {
        lws_context_destroy(w->ctx);
        return 1;
    }
    replay_init(&w->vh, w->loop);
    atomic_store_explicit(&w->vh.stats->ring_next, w->reader.next, memory_order_relaxed);
    if (worker_adopt_fd(w, wake_fd, &worker_kinds[WORKER_FD_WAKE]) == NULL ||
        worker_adopt_fd(w, w->signal_fd, &worker_kinds[WORKER_FD_SIGNAL]) == NULL ||
        (w->listen_wsi = worker_adopt_fd(w, listen_fd, &worker_kinds[WORKER_FD_LISTEN])) == NULL ||
        (metrics_fd >= 0 && (w->metrics_wsi = worker_adopt_fd(
                                 w, metrics_fd, &worker_kinds[WORKER_FD_METRICS])) == NULL)) {
        lws_context_destroy(w->ctx);
        return 1;
    }
    atomic_store_explicit(&w->vh.stats->listening, 1, memory_order_relaxed);
    LOG_INFO("serving (pid %d)", (int)getpid());
    /* Frames published before we listened were for the previous worker, if any. */
    worker_drain_ring(w);
    lws_sul_schedule(w->ctx, 0, &w->liveness, worker_liveness,
                     LWS_USEC_PER_SEC / WORKER_SWEEP_PARTS);

    while (!w->done) {
        ev_run(w->loop, EVRUN_ONCE);
        if (w->vh.stopping && w->vh.sessions.count == 0)
            w->done = 1;
    }
    lws_sul_cancel(&w->stop_deadline);
    drain_cancel();
    lws_sul_cancel(&w->liveness);
    lws_sul_cancel(&w->accept_retry);
    lws_sul_cancel(&w->vh.hold_timer);
    replay_shutdown();
    lws_context_destroy(w->ctx);
    ev_loop_destroy(w->loop);
    feed_free(&w->vh);
    auth_free(&w->vh);
    sub_index_free(w->vh.index);
    msgpack_zone_destroy(&w->zone);
    free(w->frame);
    LOG_INFO("stopped");
    return 0;
}
