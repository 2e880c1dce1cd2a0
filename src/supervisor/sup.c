#include "sup.h"
#include "../common/hash.h"
#include "../common/log.h"
#include "../common/shm.h"
#include "../common/timeutil.h"
#include "../ingest/ingest.h"
#include "../worker/worker.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

/*
 * Restarts back off (SUP_BACKOFF_MIN_MS doubling to SUP_BACKOFF_MAX_MS) when
 * a child dies sooner than SUP_QUICK_DEATH_MS after its start (it was
 * probably not going to work), or when it dies more than SUP_CRASH_LOOP_MAX
 * times in SUP_CRASH_WINDOW_MS, however long each life: then something keeps
 * killing it (an input that crashes it again, damaged shared memory), and
 * restarting it at once would only burn CPU and fill the log.  Five in a
 * minute: a worker's occasional fault (an OOM kill, a rare bug) is one or two,
 * and the first few restarts stay immediate, as most deaths are one-offs.
 * The cap stays at 5 s even in a crash loop: a worker slot's listener keeps
 * receiving its share of new connections, which wait in its accept queue
 * until a worker is back.
 */
#define SUP_STOP_DEADLINE_MS 5000
#define SUP_QUICK_DEATH_MS   1000
#define SUP_BACKOFF_MIN_MS   100
#define SUP_BACKOFF_MAX_MS   5000
#define SUP_CRASH_LOOP_MAX   5
#define SUP_CRASH_WINDOW_MS  60000
#define SUP_DEATHS_KEPT      32 /* deaths remembered per slot, to count those in the window */

enum sup_role { SUP_ROLE_INGEST, SUP_ROLE_WORKER };

struct sup_child {
    enum sup_role role;
    int index; /* worker number from 1; 0 for the ingest */
    pid_t pid;
    uint64_t started_ms; /* monotonic */
    uint64_t respawn_at; /* monotonic; 0 = not waiting */
    uint64_t backoff_ms;
    uint64_t deaths[SUP_DEATHS_KEPT]; /* monotonic ms of the last deaths, a ring */
    unsigned ndeaths;                 /* deaths since start; the ring's next is % KEPT */
    int restart_requested;            /* we stopped it (a reload): not a crash */
    int listen_fd;                    /* workers */
    int metrics_fd;                   /* workers, with METRICS_ADDR; else -1 */
    int wake_fd;                      /* workers */
};

struct sup {
    struct conf conf;
    const char *conf_path;
    struct shm *shm;
    struct sup_child children[1 + CONF_MAX_WORKERS];
    int nchildren;
    int wake_fds[CONF_MAX_WORKERS];
    int signal_fd;
    int timer_fd;
    int stopping;
    uint64_t stop_deadline; /* monotonic: SIGKILL for what is left (0: no stop begun) */
    int ingest_stopped;     /* the ingest has been sent SIGTERM (after the workers left) */
    int exit_status;
    int ready_sent;
};

static const char *
sup_role_name(const struct sup_child *ch, char *buf, size_t size)
{
    if (ch->role == SUP_ROLE_INGEST)
        snprintf(buf, size, "ingest");
    else
        snprintf(buf, size, "worker %d", ch->index);
    return buf;
}

/* ---- listeners ------------------------------------------------------------- */

static int
sup_listen_one(const struct sockaddr *sa, socklen_t salen, const char *label)
{
    int one = 1, zero = 0;
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        LOG_ERROR("socket(%s) failed: %s", label, strerror(errno));
        return -1;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        LOG_ERROR("setsockopt(%s, SO_REUSEPORT) failed: %s", label, strerror(errno));
        close(fd);
        return -1;
    }
    /* ":PORT" means every interface, IPv4 included. */
    if (sa->sa_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, sa, salen) != 0) {
        LOG_ERROR("bind(%s) failed: %s", label, strerror(errno));
        close(fd);
        return -1;
    }
    if (listen(fd, SOMAXCONN) != 0) {
        LOG_ERROR("listen(%s) failed: %s", label, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* One listener per worker slot, all bound to addr (host:port; host empty:
 * every interface) with SO_REUSEPORT: the kernel spreads connections across
 * them, and a restarted worker takes over its slot's.  Stored in each
 * worker child's listen_fd, or metrics_fd. */
static int
sup_listen_slots(struct sup *sp, const char *addr, const char *host, int port_number, int metrics)
{
    const struct conf *c = &sp->conf;
    struct addrinfo hints, *res = NULL, *ai;
    char port[8], label[CONF_HOST_MAX + 16];
    int rc;

    snprintf(port, sizeof(port), "%d", port_number);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (host[0] == '\0') {
        hints.ai_family = AF_INET6; /* dual-stack "::" if the host has IPv6 */
        rc = getaddrinfo(NULL, port, &hints, &res);
        if (rc == 0) {
            int probe = socket(AF_INET6, SOCK_STREAM, 0);
            if (probe < 0) {
                freeaddrinfo(res);
                res = NULL;
            } else {
                close(probe);
            }
        }
        if (res == NULL) {
            hints.ai_family = AF_INET;
            rc = getaddrinfo(NULL, port, &hints, &res);
        }
    } else {
        hints.ai_family = AF_UNSPEC;
        rc = getaddrinfo(host, port, &hints, &res);
    }
    if (rc != 0 || res == NULL) {
        LOG_ERROR("getaddrinfo(%s) failed: %s", addr, gai_strerror(rc));
        return -1;
    }
    ai = res;
    snprintf(label, sizeof(label), "%s", addr);
    for (int i = 0; i < c->workers; i++) {
        int fd = sup_listen_one(ai->ai_addr, ai->ai_addrlen, label);
        if (fd < 0) {
            freeaddrinfo(res);
            return -1;
        }
        if (metrics)
            sp->children[1 + i].metrics_fd = fd;
        else
            sp->children[1 + i].listen_fd = fd;
    }
    freeaddrinfo(res);
    LOG_INFO("listening on %s with %d SO_REUSEPORT sockets%s", addr, c->workers,
             metrics ? " (metrics and health only)" : "");
    return 0;
}

static int
sup_create_listeners(struct sup *sp)
{
    const struct conf *c = &sp->conf;

    if (sup_listen_slots(sp, c->server_addr, c->server_host, c->server_port, 0) != 0)
        return -1;
    if (c->metrics_port != 0 &&
        sup_listen_slots(sp, c->metrics_addr, c->metrics_host, c->metrics_port, 1) != 0)
        return -1;
    return 0;
}

/* ---- children ---------------------------------------------------------------- */

/* Right after fork, in the child: a clean signal state, death with the
 * supervisor, a name in ps, and only the fds this role needs. */
static void
sup_child_init(struct sup *sp, struct sup_child *ch, pid_t parent)
{
    char name[16], err[256];
    sigset_t empty;

    if (ch->role == SUP_ROLE_INGEST) {
        log_set_role(LOG_ROLE_INGEST, 0);
        snprintf(name, sizeof(name), "wsb-ingest");
    } else {
        log_set_role(LOG_ROLE_WORKER, ch->index);
        snprintf(name, sizeof(name), "wsb-worker-%d", ch->index);
    }
    close(sp->signal_fd);
    close(sp->timer_fd);
    /* Reloads are the supervisor's alone, but a SIGHUP also reaches the
     * children when sent to the process group or by a terminal hangup, and
     * its default action would kill them.  Ignored before the mask opens,
     * so one already pending is dropped rather than delivered. */
    if (signal(SIGHUP, SIG_IGN) == SIG_ERR)
        LOG_WARN("signal(SIGHUP, SIG_IGN) failed: %s", strerror(errno));
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    /* SIGPIPE stays ignored (inherited): a vanished peer is an EPIPE, not a death. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        LOG_WARN("prctl(PR_SET_PDEATHSIG) failed: %s", strerror(errno));
    if (getppid() != parent)
        _exit(0); /* the supervisor died before prctl took effect */
    if (prctl(PR_SET_NAME, name) != 0)
        LOG_WARN("prctl(PR_SET_NAME, %s) failed: %s", name, strerror(errno));
    /* The region was made from this very configuration (WORKERS, RING_SIZE
     * and MAX_ENTRY_SIZE need a restart), and this process's copy of its
     * geometry came with the fork. */
    WSB_ASSERT(shm_attach(sp->shm, (uint32_t)sp->conf.workers, sp->conf.ring_size,
                          sp->conf.max_entry_size,
                          shm_addr_slots_for(sp->conf.max_connections, sp->conf.max_clients)) == 0);
    /* Defence in depth: without it the child still works, so carry on. */
    if (shm_protect(sp->shm, ch->role == SUP_ROLE_INGEST ? SHM_ROLE_INGEST : SHM_ROLE_WORKER,
                    ch->role == SUP_ROLE_INGEST ? 0 : (uint32_t)(ch->index - 1), err,
                    sizeof(err)) != 0)
        LOG_WARN("shared memory left writable: %s", err);
    for (int i = 1; i < sp->nchildren; i++) {
        struct sup_child *other = &sp->children[i];
        if (other == ch)
            continue;
        close(other->listen_fd);
        if (other->metrics_fd >= 0)
            close(other->metrics_fd);
        if (ch->role == SUP_ROLE_WORKER)
            close(other->wake_fd);
    }
    if (ch->role == SUP_ROLE_INGEST)
        ch->listen_fd = ch->metrics_fd = -1;
}

static void
sup_spawn(struct sup *sp, struct sup_child *ch)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    char role[32];

    if (pid < 0) {
        LOG_ERROR("fork(%s) failed: %s", sup_role_name(ch, role, sizeof(role)), strerror(errno));
        ch->respawn_at = time_mono_ms() + SUP_BACKOFF_MAX_MS;
        return;
    }
    if (pid == 0) {
        int rc;
        sup_child_init(sp, ch, parent);
        if (ch->role == SUP_ROLE_INGEST)
            rc = ingest_main(sp->shm, &sp->conf, sp->wake_fds, sp->conf.workers);
        else
            rc = worker_main(sp->shm, &sp->conf, ch->index, ch->listen_fd, ch->metrics_fd,
                             ch->wake_fd);
        _exit(rc);
    }
    ch->pid = pid;
    ch->started_ms = time_mono_ms();
    ch->respawn_at = 0;
    if (ch->role == SUP_ROLE_INGEST)
        atomic_store_explicit(&sp->shm->ingest.pid, pid, memory_order_relaxed);
    else
        atomic_store_explicit(&sp->shm->workers[ch->index - 1].pid, pid, memory_order_relaxed);
    LOG_INFO("started %s (pid %d)", sup_role_name(ch, role, sizeof(role)), (int)pid);
}

static struct sup_child *
sup_find(struct sup *sp, pid_t pid)
{
    for (int i = 0; i < sp->nchildren; i++) {
        if (sp->children[i].pid == pid)
            return &sp->children[i];
    }
    return NULL;
}

/* Record a death of ch at now; the number of its deaths in the last
 * SUP_CRASH_WINDOW_MS, this one included (at most SUP_DEATHS_KEPT). */
static unsigned
sup_count_death(struct sup_child *ch, uint64_t now)
{
    unsigned n = 0, kept;

    ch->deaths[ch->ndeaths++ % SUP_DEATHS_KEPT] = now;
    kept = ch->ndeaths < SUP_DEATHS_KEPT ? ch->ndeaths : SUP_DEATHS_KEPT;
    for (unsigned i = 0; i < kept; i++)
        n += now - ch->deaths[i] < SUP_CRASH_WINDOW_MS;
    return n;
}

static void
sup_reap(struct sup *sp)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct sup_child *ch = sup_find(sp, pid);
        uint64_t now = time_mono_ms(), lived;
        char role[32];

        if (ch == NULL)
            continue;
        sup_role_name(ch, role, sizeof(role));
        lived = now - ch->started_ms;
        ch->pid = 0;
        if (ch->role == SUP_ROLE_INGEST) {
            /* pid 0 alone makes /health and redis_connected report the
             * ingest down; its redis_up is left to it (one writer), and the
             * next ingest clears it when it starts. */
            atomic_store_explicit(&sp->shm->ingest.pid, 0, memory_order_relaxed);
        } else {
            shm_worker_retire(sp->shm, (uint32_t)(ch->index - 1));
        }
        if (sp->stopping) {
            LOG_INFO("%s (pid %d) exited", role, (int)pid);
            /* Nobody will accept on its listener again: closed, it leaves the
             * SO_REUSEPORT group, and the kernel hands new connections to
             * the workers still draining, which answer them (503). */
            if (ch->role == SUP_ROLE_WORKER && ch->listen_fd >= 0) {
                close(ch->listen_fd);
                ch->listen_fd = -1;
            }
            if (ch->role == SUP_ROLE_WORKER && ch->metrics_fd >= 0) {
                close(ch->metrics_fd);
                ch->metrics_fd = -1;
            }
            continue;
        }
        if (WIFEXITED(status))
            LOG_WARN("%s (pid %d) exited with status %d after %llu ms", role, (int)pid,
                     WEXITSTATUS(status), (unsigned long long)lived);
        else if (WIFSIGNALED(status))
            LOG_WARN("%s (pid %d) killed by signal %d (%s) after %llu ms", role, (int)pid,
                     WTERMSIG(status), strsignal(WTERMSIG(status)), (unsigned long long)lived);
        if (WIFEXITED(status) && WEXITSTATUS(status) == SUP_EXIT_CONFIG) {
            LOG_ERROR("%s cannot run with this configuration; stopping", role);
            sp->exit_status = SUP_EXIT_CONFIG;
            sp->stopping = 1;
            continue;
        }
        if (ch->restart_requested) {
            /* We stopped it: neither a crash nor a reason to wait. */
            ch->restart_requested = 0;
            ch->backoff_ms = 0;
        } else {
            unsigned recent = sup_count_death(ch, now);
            int looping = recent > SUP_CRASH_LOOP_MAX;

            if (lived < SUP_QUICK_DEATH_MS || looping) {
                ch->backoff_ms = ch->backoff_ms ? ch->backoff_ms * 2 : SUP_BACKOFF_MIN_MS;
                if (ch->backoff_ms > SUP_BACKOFF_MAX_MS)
                    ch->backoff_ms = SUP_BACKOFF_MAX_MS;
            } else {
                ch->backoff_ms = 0;
            }
            if (looping)
                LOG_ERROR(
                    "%s died %u times in the last %d s: crash loop; restarting it in %llu ms, "
                    "backing off up to %d ms while this goes on (the other processes keep "
                    "serving)",
                    role, recent, SUP_CRASH_WINDOW_MS / 1000, (unsigned long long)ch->backoff_ms,
                    SUP_BACKOFF_MAX_MS);
        }
        if (ch->role == SUP_ROLE_INGEST)
            atomic_fetch_add_explicit(&sp->shm->ingest.restarts, 1, memory_order_relaxed);
        else
            atomic_fetch_add_explicit(&sp->shm->workers[ch->index - 1].restarts, 1,
                                      memory_order_relaxed);
        ch->respawn_at = now + ch->backoff_ms;
        if (ch->backoff_ms)
            LOG_WARN("restarting %s in %llu ms", role, (unsigned long long)ch->backoff_ms);
    }
}

static void
sup_signal_children(struct sup *sp, int sig)
{
    for (int i = 0; i < sp->nchildren; i++) {
        if (sp->children[i].pid > 0 && kill(sp->children[i].pid, sig) != 0 && errno != ESRCH)
            LOG_WARN("kill(%d, %d) failed: %s", (int)sp->children[i].pid, sig, strerror(errno));
    }
}

static int
sup_alive(const struct sup *sp)
{
    int n = 0;

    for (int i = 0; i < sp->nchildren; i++)
        n += sp->children[i].pid > 0;
    return n;
}

/* ---- reload ----------------------------------------------------------------- */

/* The streams an ingest forked with c reads, as the ingest names them
 * (ingest_setup_streams): into names[], pointed to by ptrs[].  Their count. */
static size_t
sup_stream_names(const struct conf *c, char names[][CONF_STREAM_MAX], const char **ptrs)
{
    size_t n = 0;

    for (int i = 0; i < c->nsports; i++) {
        (void)conf_sport_stream(c, i, names[n], CONF_STREAM_MAX); /* conf_check made it fit */
        ptrs[n] = names[n];
        n++;
    }
    if (c->opportunities_stream[0] != '\0') {
        snprintf(names[n], CONF_STREAM_MAX, "%s", c->opportunities_stream);
        ptrs[n] = names[n];
        n++;
    }
    return n;
}

/* 0 if an ingest reading next's SPORTS finds a row in the stream table for
 * each of its streams; -1 with why in err.  The running ingest may publish
 * to its streams until it is stopped, so their rows do not count as free
 * (shm_streams_fit). */
static int
sup_reload_fits(struct sup *sp, const struct conf *next, char *err, size_t errlen)
{
    static char running[CONF_MAX_SPORTS + 1][CONF_STREAM_MAX],
        wanted[CONF_MAX_SPORTS + 1][CONF_STREAM_MAX];
    static struct conf want;
    const char *rp[CONF_MAX_SPORTS + 1], *wp[CONF_MAX_SPORTS + 1];
    size_t nr, nw;

    /* Only SPORTS changes on reload: the rest of the new ingest's streams
     * come from the running configuration. */
    want = sp->conf;
    memcpy(want.sports, next->sports, sizeof(next->sports));
    want.nsports = next->nsports;
    nr = sup_stream_names(&sp->conf, running, rp);
    nw = sup_stream_names(&want, wanted, wp);
    return shm_streams_fit(sp->shm, rp, nr, wp, nw, err, errlen);
}

static void
sup_reload(struct sup *sp)
{
    struct conf next;
    char err[512], changed[512];
    int sports_changed;

    if (conf_load(&next, sp->conf_path, err, sizeof(err)) != 0) {
        LOG_ERROR("reload refused, keeping the running configuration: %s", err);
        return;
    }
    sports_changed = sp->conf.nsports != next.nsports ||
                     memcmp(sp->conf.sports, next.sports, sizeof(next.sports)) != 0;
    /* Like a file that does not parse: nothing of it is applied, and the
     * ingest is not touched (nginx keeps its old cycle the same way). */
    if (sports_changed && sup_reload_fits(sp, &next, err, sizeof(err)) != 0) {
        LOG_ERROR("reload refused, keeping the running configuration: SPORTS: %s", err);
        return;
    }
    conf_restart_keys_changed(&sp->conf, &next, changed, sizeof(changed));
    if (changed[0] != '\0')
        LOG_WARN("reload: %s changed; these take effect only after a restart", changed);
    /* Apply only what reload supports; keep the rest as running. */
    memcpy(sp->conf.sports, next.sports, sizeof(next.sports));
    sp->conf.nsports = next.nsports;
    sp->conf.log_level = next.log_level;
    log_set_level((enum log_level)next.log_level);
    if (sports_changed) {
        char list[CONF_MAX_SPORTS * CONF_NAME_MAX];
        conf_get(&sp->conf, "SPORTS", list, sizeof(list));
        LOG_INFO("reload: SPORTS is now %s; restarting the ingest", list);
        /* The ingest restarts crash-safely (pending re-read, ring dedupe), so
         * a restart is how it picks up new streams; clients never notice. */
        /* Groups on the new streams start from now, not from when the new
         * ingest gets to create them. */
        atomic_store_explicit(&sp->shm->ingest.streams_since_ms, time_now_ms(),
                              memory_order_relaxed);
        for (int i = 0; i < sp->nchildren; i++) {
            struct sup_child *ch = &sp->children[i];
            if (ch->role != SUP_ROLE_INGEST)
                continue;
            if (ch->pid > 0 && kill(ch->pid, SIGTERM) == 0)
                ch->restart_requested = 1;
            ch->backoff_ms = 0; /* a deliberate restart, not a crash loop */
        }
    } else {
        LOG_INFO("reload: configuration re-read");
    }
    /* Workers read the AUTH key files again (their contents may change on a
     * reload; their paths need a restart). */
    for (int i = 0; i < sp->nchildren; i++) {
        struct sup_child *ch = &sp->children[i];
        if (ch->role == SUP_ROLE_WORKER && ch->pid > 0 && kill(ch->pid, SIGHUP) != 0)
            LOG_WARN("kill(worker %d, SIGHUP) failed: %s", ch->index, strerror(errno));
    }
}

/* ---- the loop --------------------------------------------------------------- */

static void
sup_arm_timer(struct sup *sp)
{
    struct itimerspec its;
    uint64_t now = time_mono_ms(), next = 0;

    for (int i = 0; i < sp->nchildren; i++) {
        uint64_t at = sp->children[i].respawn_at;
        if (sp->children[i].pid == 0 && at != 0 && (next == 0 || at < next))
            next = at;
    }
    if (sp->stopping && (next == 0 || sp->stop_deadline < next))
        next = sp->stop_deadline;
    if (!sp->ready_sent && !sp->stopping && (next == 0 || now + 50 < next))
        next = now + 50; /* poll for the workers' listening flags */
    memset(&its, 0, sizeof(its));
    if (next != 0) {
        uint64_t delay = next > now ? next - now : 1;
        its.it_value.tv_sec = (time_t)(delay / 1000);
        its.it_value.tv_nsec = (long)(delay % 1000) * 1000000L;
    }
    if (timerfd_settime(sp->timer_fd, 0, &its, NULL) != 0)
        LOG_ERROR("timerfd_settime() failed: %s", strerror(errno));
}

static void
sup_check_ready(struct sup *sp)
{
    if (sp->ready_sent)
        return;
    for (int i = 0; i < sp->conf.workers; i++) {
        if (!atomic_load_explicit(&sp->shm->workers[i].listening, memory_order_relaxed))
            return;
    }
    sp->ready_sent = 1;
    /* No-op without NOTIFY_SOCKET, i.e. outside systemd. */
    if (sd_notify(0, "READY=1\nSTATUS=serving") < 0)
        LOG_WARN("sd_notify(READY=1) failed");
    LOG_INFO("ready: %d workers serving", sp->conf.workers);
}

static void
sup_signal_workers(struct sup *sp, int sig)
{
    for (int i = 0; i < sp->nchildren; i++) {
        struct sup_child *ch = &sp->children[i];
        if (ch->role == SUP_ROLE_WORKER && ch->pid > 0 && kill(ch->pid, sig) != 0 && errno != ESRCH)
            LOG_WARN("kill(worker %d, %d) failed: %s", ch->index, sig, strerror(errno));
    }
}

static int
sup_workers_alive(const struct sup *sp)
{
    int n = 0;

    for (int i = 0; i < sp->nchildren; i++)
        n += sp->children[i].role == SUP_ROLE_WORKER && sp->children[i].pid > 0;
    return n;
}

/*
 * Begin the stop, draining for drain_ms (README "Operations"): the drain
 * flag and deadline go into shared memory first (so /readyz and every
 * worker's upgrade check see it at once), then the workers get SIGTERM and
 * close their clients spread until the deadline.  The ingest keeps feeding
 * them meanwhile: it is stopped once the last worker has gone
 * (sup_stop_ingest).  What is still running at stop_deadline is killed:
 * the drain, the CLOSE_TIMEOUT of the clients closed last, and
 * SUP_STOP_DEADLINE_MS for the processes to exit.
 *
 * A second SIGTERM or SIGINT during the drain ends it now: the deadline in
 * shared memory becomes this moment and the workers, signalled again,
 * close the clients they have left at once (each still told to
 * reconnect).  An operator who wants out sooner than DRAIN_SECONDS (a
 * second Ctrl-C, `systemctl kill`) gets it without losing the orderly
 * close; SIGKILL remains for a stop that must not wait at all.
 */
static void
sup_begin_stop(struct sup *sp, const char *why, uint64_t drain_ms)
{
    uint64_t now = time_mono_ms(), close_ms = (uint64_t)sp->conf.close_timeout * 1000;
    struct shm_totals t;

    if (sp->stop_deadline != 0) {
        uint64_t deadline;
        if (!shm_draining(sp->shm, NULL, &deadline) || deadline <= now || sp->ingest_stopped)
            return; /* nothing left to shorten */
        LOG_INFO_KV(LOG_FIELDS(LOG_STR("signal", why)),
                    "%s during the drain: ending it now; the remaining clients are closed at once",
                    why);
        shm_drain_begin(sp->shm, 0, now);
        if (now + close_ms + SUP_STOP_DEADLINE_MS < sp->stop_deadline)
            sp->stop_deadline = now + close_ms + SUP_STOP_DEADLINE_MS;
        sup_signal_workers(sp, SIGTERM);
        return;
    }
    sp->stopping = 1;
    shm_drain_begin(sp->shm, time_now_ms(), now + drain_ms);
    sp->stop_deadline = now + drain_ms + close_ms + SUP_STOP_DEADLINE_MS;
    (void)sd_notify(0, "STOPPING=1");
    shm_totals(sp->shm, &t);
    LOG_INFO_KV(LOG_FIELDS(LOG_STR("signal", why), LOG_NUM("clients", t.active_clients),
                           LOG_NUM("drain_ms", drain_ms)),
                "%s: stopping: draining %llu clients over %llu ms (upgrades refused with 503)", why,
                (unsigned long long)t.active_clients, (unsigned long long)drain_ms);
    sup_signal_workers(sp, SIGTERM);
}

/* Once no worker is left, the ingest has nobody to feed: stop it. */
static void
sup_stop_ingest(struct sup *sp)
{
    uint64_t now = time_mono_ms();

    if (sp->ingest_stopped || sup_workers_alive(sp) > 0)
        return;
    sp->ingest_stopped = 1;
    for (int i = 0; i < sp->nchildren; i++) {
        struct sup_child *ch = &sp->children[i];
        if (ch->role == SUP_ROLE_INGEST && ch->pid > 0 && kill(ch->pid, SIGTERM) != 0 &&
            errno != ESRCH)
            LOG_WARN("kill(ingest, SIGTERM) failed: %s", strerror(errno));
    }
    if (now + SUP_STOP_DEADLINE_MS < sp->stop_deadline)
        sp->stop_deadline = now + SUP_STOP_DEADLINE_MS;
}

static int
sup_setup(struct sup *sp)
{
    struct rlimit rl;
    sigset_t mask;
    uint32_t addr_slots;

    /* Every connection is an fd: take all the kernel allows us. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            LOG_WARN("setrlimit(RLIMIT_NOFILE) failed: %s", strerror(errno));
    }
    signal(SIGPIPE, SIG_IGN);

    /* Before the first fork, so every child inherits the one key: workers
     * count client addresses in tables that are summed across them, and
     * must all look for an address in the same slots.  A new key per start. */
    if (hash_init() != 0) {
        LOG_ERROR("getrandom(%d bytes) failed: %s", HASH_KEY_LEN, strerror(errno));
        return -1;
    }
    /* A worker's address table must hold every address it can serve at
     * once: each one holds a connection (MAX_CONNECTIONS) or a client. */
    addr_slots = shm_addr_slots_for(sp->conf.max_connections, sp->conf.max_clients);
    sp->shm = shm_create((uint32_t)sp->conf.workers, sp->conf.ring_size, sp->conf.max_entry_size,
                         addr_slots);
    if (sp->shm == NULL) {
        LOG_ERROR("mmap(shared memory for %u frames (RING_SIZE) and %d address tables of %u "
                  "entries (MAX_CONNECTIONS)) failed: %s",
                  sp->conf.ring_size, sp->conf.workers, addr_slots, strerror(errno));
        return -1;
    }
    /* Outlives every child, like the ring: a restarted worker serves
     * complete snapshots at once, a restarted ingest goes on filling it. */
    if (shm_add_snaptab(sp->shm, sp->conf.snapshot_max_keys) != 0) {
        LOG_ERROR("mmap(snapshot table of %u keys (SNAPSHOT_MAX_KEYS)) failed: %s",
                  sp->conf.snapshot_max_keys, strerror(errno));
        return -1;
    }
    sp->nchildren = 1 + sp->conf.workers;
    sp->children[0].role = SUP_ROLE_INGEST;
    sp->children[0].listen_fd = -1;
    sp->children[0].metrics_fd = -1;
    sp->children[0].wake_fd = -1;
    for (int i = 0; i < sp->conf.workers; i++) {
        struct sup_child *ch = &sp->children[1 + i];
        ch->role = SUP_ROLE_WORKER;
        ch->index = i + 1;
        ch->metrics_fd = -1;
        ch->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (ch->wake_fd < 0) {
            LOG_ERROR("eventfd() failed: %s", strerror(errno));
            return -1;
        }
        sp->wake_fds[i] = ch->wake_fd;
    }
    if (sup_create_listeners(sp) != 0)
        return -1;

    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
        LOG_ERROR("sigprocmask() failed: %s", strerror(errno));
        return -1;
    }
    sp->signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    sp->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (sp->signal_fd < 0 || sp->timer_fd < 0) {
        LOG_ERROR("signalfd()/timerfd_create() failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int
sup_run(const struct conf *c, const char *conf_path)
{
    static struct sup sup;
    struct sup *sp = &sup;
    char redis[sizeof(c->redis_url) + 8];

    sp->conf = *c;
    sp->conf_path = conf_path;
    log_set_role(LOG_ROLE_SUPERVISOR, 0);
    log_set_format((enum log_format)c->log_format);
    log_set_level((enum log_level)c->log_level);
    if (prctl(PR_SET_NAME, "wsb-supervisor") != 0)
        LOG_WARN("prctl(PR_SET_NAME) failed: %s", strerror(errno));
    /* conf_get: the URL with its password masked. */
    WSB_ASSERT(conf_get(c, "REDIS_URL", redis, sizeof(redis)) == 0);
    LOG_INFO("ws-broadcaster %s starting: %d workers, ring of %u frames, redis %s", WSB_VERSION,
             c->workers, c->ring_size, redis);
    if (sup_setup(sp) != 0)
        return 1;

    for (int i = 0; i < sp->nchildren; i++)
        sup_spawn(sp, &sp->children[i]);

    for (;;) {
        struct pollfd pfd[2] = {{sp->signal_fd, POLLIN, 0}, {sp->timer_fd, POLLIN, 0}};
        struct signalfd_siginfo si;
        uint64_t expirations, now;

        if (sp->stopping && sup_alive(sp) == 0)
            break;
        sup_arm_timer(sp);
        if (poll(pfd, 2, -1) < 0 && errno != EINTR) {
            LOG_ERROR("poll() failed: %s", strerror(errno));
            break;
        }
        if (read(sp->timer_fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
            LOG_WARN("read(timerfd) failed: %s", strerror(errno));
        while (read(sp->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
            switch (si.ssi_signo) {
            case SIGCHLD:
                break; /* reaped below, with any other exits */
            case SIGHUP:
                if (!sp->stopping)
                    sup_reload(sp);
                break;
            case SIGTERM:
            case SIGINT:
                sup_begin_stop(sp, si.ssi_signo == SIGTERM ? "SIGTERM" : "SIGINT",
                               (uint64_t)sp->conf.drain_seconds * 1000);
                break;
            default:
                break;
            }
        }
        sup_reap(sp);
        if (sp->stopping && sp->stop_deadline == 0)
            sup_begin_stop(sp, "a child cannot run", 0); /* no drain: it cannot go on */
        now = time_mono_ms();
        if (sp->stopping) {
            sup_stop_ingest(sp);
            if (now >= sp->stop_deadline && sup_alive(sp) > 0) {
                LOG_WARN("children still running past the stop deadline (the drain, "
                         "CLOSE_TIMEOUT and %d ms); killing them",
                         SUP_STOP_DEADLINE_MS);
                sup_signal_children(sp, SIGKILL);
                sp->stop_deadline = now + 1000;
            }
            continue;
        }
        for (int i = 0; i < sp->nchildren; i++) {
            struct sup_child *ch = &sp->children[i];
            if (ch->pid == 0 && ch->respawn_at != 0 && ch->respawn_at <= now)
                sup_spawn(sp, ch);
        }
        sup_check_ready(sp);
    }
    LOG_INFO("stopped");
    shm_destroy(sp->shm);
    return sp->exit_status;
}
