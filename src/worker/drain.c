#include "drain.h"
#include "outbound.h"
#include "../common/log.h"
#include "../common/timeutil.h"

#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

struct drain {
    struct wsp_vhost *vh;
    lws_sorted_usec_list_t tick;
    uint64_t deadline_ms; /* monotonic; 0: no drain */
    uint64_t last_ms;     /* monotonic: the previous round */
    double owed;          /* closes owed in fractions (drain_quota) */
    uint64_t rng;         /* splitmix64 state for after_ms */
    uint64_t closed;      /* clients this drain closed */
};

static struct drain drain;

uint32_t
drain_quota(uint32_t remaining, uint64_t last, uint64_t now, uint64_t deadline, double *owed)
{
    double due;

    if (remaining == 0) {
        *owed = 0;
        return 0;
    }
    if (now >= deadline || last >= deadline)
        return remaining;
    if (now <= last)
        return 0;
    /* The clients left at `last` spread over what was left of the window
     * then: this round's share of it.  The fraction carries over, so 40
     * clients over 4 s at 50 ms rounds close one every other round. */
    due = *owed + (double)remaining * (double)(now - last) / (double)(deadline - last);
    if (due >= (double)remaining) {
        *owed = 0;
        return remaining;
    }
    *owed = due - (double)(uint32_t)due;
    return (uint32_t)due;
}

uint32_t
drain_after_ms(uint64_t *state, uint32_t jitter_ms)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    /* The modulo's bias is below 2^-32 for any jitter that fits 32 bits. */
    return jitter_ms == 0 ? 0 : (uint32_t)(z % ((uint64_t)jitter_ms + 1));
}

/* Tell ss when to come back, then close it with 1001. */
static void
drain_close(struct wsp_vhost *vh, struct wsp_session *ss)
{
    uint32_t after = drain_after_ms(&drain.rng, vh->conf->reconnect_jitter_ms);
    cJSON *payload = cJSON_CreateObject();

    /* Without memory for the message the close still goes out: a client
     * then reconnects on its own schedule. */
    if (payload != NULL && cJSON_AddNumberToObject(payload, "after_ms", (double)after) == NULL) {
        cJSON_Delete(payload);
        payload = NULL;
    }
    if (payload != NULL)
        outbound_send_last(vh, ss, "reconnect", payload);
    LOG_DEBUG_KV(LOG_FIELDS(LOG_STR("client_id", ss->client_id), LOG_NUM("after_ms", after)),
                 "client %s told to reconnect after %u ms", ss->client_id, after);
    wsp_schedule_close(ss, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down", 1);
    drain.closed++;
}

/*
 * Close up to n clients, oldest first.  Sessions join the list at its head,
 * so the tail is the oldest; each one looked at moves to the head, so the
 * next round starts where this one stopped and a session already closing
 * (on its own, or by an earlier round) is passed over once per lap, not
 * once per round.  Returns how many were closed.
 */
static uint32_t
drain_close_some(struct wsp_vhost *vh, uint32_t n)
{
    uint32_t closed = 0, looked = 0, count = vh->sessions.count;

    while (closed < n && looked++ < count) {
        struct lws_dll2 *d = lws_dll2_get_tail(&vh->sessions);
        struct wsp_session *ss;

        if (d == NULL)
            break;
        ss = lws_container_of(d, struct wsp_session, list);
        lws_dll2_remove(d);
        lws_dll2_add_head(d, &vh->sessions);
        if (ss->close_code != 0)
            continue;
        drain_close(vh, ss);
        closed++;
    }
    return closed;
}

static void
drain_round(lws_sorted_usec_list_t *sul)
{
    struct wsp_vhost *vh = drain.vh;
    uint64_t now = time_mono_ms();
    /* The worker's clients not yet closing (admit counts them from the
     * upgrade and stops as soon as a close is decided). */
    uint64_t left = atomic_load_explicit(&vh->stats->active_clients, memory_order_relaxed);
    uint32_t remaining = left > UINT32_MAX ? UINT32_MAX : (uint32_t)left;
    uint32_t n = drain_quota(remaining, drain.last_ms, now, drain.deadline_ms, &drain.owed);

    (void)sul;
    drain.last_ms = now;
    if (n > 0)
        (void)drain_close_some(vh, n);
    if (now < drain.deadline_ms) {
        lws_sul_schedule(vh->ctx, 0, &drain.tick, drain_round, DRAIN_TICK_MS * LWS_US_PER_MS);
        return;
    }
    /* The deadline: whoever is left goes now, and then there is nothing
     * more to pace.  (An upgrade let through just before the drain began
     * and established after it is closed here, or by the worker's stop.) */
    (void)drain_close_some(vh, UINT32_MAX);
    LOG_INFO("drain: deadline reached; %llu clients closed with 1001",
             (unsigned long long)drain.closed);
}

void
drain_start(struct wsp_vhost *vh, uint64_t deadline_mono_ms)
{
    uint64_t now = time_mono_ms();

    if (drain.deadline_ms != 0 && deadline_mono_ms >= drain.deadline_ms)
        return; /* the same drain, signalled again */
    if (drain.deadline_ms == 0) {
        drain.vh = vh;
        drain.last_ms = now;
        drain.owed = 0;
        if (getrandom(&drain.rng, sizeof(drain.rng), GRND_NONBLOCK) != (ssize_t)sizeof(drain.rng))
            drain.rng = now ^ ((uint64_t)getpid() << 32); /* only spreads reconnects */
        LOG_INFO("draining: closing %u clients over %llu ms, each told to reconnect within "
                 "%u ms",
                 vh->sessions.count,
                 (unsigned long long)(deadline_mono_ms > now ? deadline_mono_ms - now : 0),
                 vh->conf->reconnect_jitter_ms);
    } else {
        LOG_INFO("drain: deadline brought forward by %llu ms; closing the rest sooner",
                 (unsigned long long)(drain.deadline_ms - deadline_mono_ms));
    }
    drain.deadline_ms = deadline_mono_ms;
    /* The first round at once: with the deadline passed (DRAIN_SECONDS=0,
     * a second signal) everything is closed now. */
    lws_sul_schedule(vh->ctx, 0, &drain.tick, drain_round, 1);
}

uint64_t
drain_deadline(void)
{
    return drain.deadline_ms;
}

void
drain_cancel(void)
{
    lws_sul_cancel(&drain.tick);
}
