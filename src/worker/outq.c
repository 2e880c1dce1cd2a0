#include "outq.h"
#include "../common/timeutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define OUTQ_INITIAL_CAP 8
/* Frames gathered into one sendmsg(); well under IOV_MAX. */
#define OUTQ_IOV_MAX     256

size_t
outq_frame_header(unsigned char *hdr, unsigned opcode, uint64_t len)
{
    size_t n = 0;

    hdr[n++] = (unsigned char)(0x80 | (opcode & 0x0f)); /* FIN */
    if (len < 126) {
        hdr[n++] = (unsigned char)len;
    } else if (len < 65536) {
        hdr[n++] = 126;
        hdr[n++] = (unsigned char)(len >> 8);
        hdr[n++] = (unsigned char)len;
    } else {
        hdr[n++] = 127;
        for (int i = 7; i >= 0; i--)
            hdr[n++] = (unsigned char)(len >> (8 * i));
    }
    return n;
}

static struct outq_msg *
outq_msg_frame(char *buf, unsigned opcode, size_t len)
{
    struct outq_msg *m = malloc(sizeof(*m));
    unsigned char hdr[10];
    size_t n;

    if (m == NULL) {
        free(buf);
        return NULL;
    }
    n = outq_frame_header(hdr, opcode, len);
    m->refs = 1;
    m->len = (uint32_t)len;
    m->buf = buf;
    m->key = 0;
    m->made_ms = time_mono_ms();
    m->published_us = 0;
    m->conflated = NULL;
    m->frame_off = (uint32_t)(OUTQ_HEADROOM - n);
    m->frame_len = (uint32_t)(n + len);
    memcpy(m->buf + m->frame_off, hdr, n);
    return m;
}

struct outq_msg *
outq_msg_adopt(char *buf, size_t len)
{
    return outq_msg_frame(buf, OUTQ_OP_TEXT, len);
}

struct outq_msg *
outq_msg_new(const char *text, size_t len)
{
    char *buf = malloc(OUTQ_HEADROOM + len + 1);

    if (buf == NULL)
        return NULL;
    memcpy(buf + OUTQ_HEADROOM, text, len);
    buf[OUTQ_HEADROOM + len] = '\0';
    return outq_msg_adopt(buf, len);
}

struct outq_msg *
outq_msg_close(unsigned code, const char *reason)
{
    /* RFC 6455 5.5: a control frame carries at most 125 bytes. */
    size_t len = strlen(reason) > 123 ? 123 : strlen(reason);
    char *buf = malloc(OUTQ_HEADROOM + 2 + len);

    if (buf == NULL)
        return NULL;
    buf[OUTQ_HEADROOM] = (char)(code >> 8);
    buf[OUTQ_HEADROOM + 1] = (char)code;
    memcpy(buf + OUTQ_HEADROOM + 2, reason, len);
    return outq_msg_frame(buf, OUTQ_OP_CLOSE, 2 + len);
}

void
outq_msg_ref(struct outq_msg *m)
{
    m->refs++;
}

void
outq_msg_unref(struct outq_msg *m)
{
    if (m != NULL && --m->refs == 0) {
        outq_msg_unref(m->conflated);
        free(m->buf);
        free(m);
    }
}

struct outq_msg *
outq_msg_conflated(struct outq_msg *m)
{
    static const char mark[] = ",\"conflated\":true}";
    size_t n = sizeof(mark) - 1;
    char *buf;

    if (m->conflated != NULL)
        return m->conflated;
    /* The text is one JSON object: the mark goes in place of its last '}'
     * (a copy of bytes, not another encoding). */
    if (m->len == 0 || m->buf[OUTQ_HEADROOM + m->len - 1] != '}' ||
        (buf = malloc(OUTQ_HEADROOM + m->len - 1 + n + 1)) == NULL)
        return NULL;
    memcpy(buf + OUTQ_HEADROOM, m->buf + OUTQ_HEADROOM, m->len - 1);
    memcpy(buf + OUTQ_HEADROOM + m->len - 1, mark, n + 1);
    if ((m->conflated = outq_msg_adopt(buf, m->len - 1 + n)) == NULL)
        return NULL;
    m->conflated->key = m->key;
    m->conflated->made_ms = m->made_ms;
    m->conflated->published_us = m->published_us;
    return m->conflated;
}

/* ---- the key index: open addressing, key -> absolute queue position ----- */

struct outq_keys {
    uint32_t cap; /* power of two */
    uint32_t count;
    struct outq_key_slot {
        uint64_t key; /* 0: empty */
        uint64_t pos;
    } * slots;
};

static struct outq_key_slot *
outq_keys_find(const struct outq_keys *k, uint64_t key)
{
    for (uint32_t i = (uint32_t)key & (k->cap - 1);; i = (i + 1) & (k->cap - 1)) {
        if (k->slots[i].key == key || k->slots[i].key == 0)
            return &k->slots[i];
    }
}

static int
outq_keys_grow(struct outq_keys *k)
{
    struct outq_key_slot *old = k->slots;
    uint32_t oldcap = k->cap, cap = k->cap ? 2 * k->cap : 64;

    if ((k->slots = calloc(cap, sizeof(*k->slots))) == NULL) {
        k->slots = old;
        return -1;
    }
    k->cap = cap;
    for (uint32_t i = 0; i < oldcap; i++) {
        if (old[i].key != 0)
            *outq_keys_find(k, old[i].key) = old[i];
    }
    free(old);
    return 0;
}

static int
outq_keys_put(struct outq_keys *k, uint64_t key, uint64_t pos)
{
    struct outq_key_slot *s;

    if ((k->count + 1) * 4 > k->cap * 3 && outq_keys_grow(k) != 0)
        return -1;
    s = outq_keys_find(k, key);
    if (s->key == 0)
        k->count++;
    s->key = key;
    s->pos = pos;
    return 0;
}

/* Remove key if it maps to pos (a later update of it may have its own). */
static void
outq_keys_del(struct outq_keys *k, uint64_t key, uint64_t pos)
{
    struct outq_key_slot *s = outq_keys_find(k, key);
    uint32_t i, j;

    if (s->key == 0 || s->pos != pos)
        return;
    /* Backward-shift deletion: no tombstones. */
    i = (uint32_t)(s - k->slots);
    s->key = 0;
    k->count--;
    for (j = (i + 1) & (k->cap - 1); k->slots[j].key != 0; j = (j + 1) & (k->cap - 1)) {
        uint32_t home = (uint32_t)k->slots[j].key & (k->cap - 1);
        /* Move j back to i if its home is not in (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            k->slots[i] = k->slots[j];
            k->slots[j].key = 0;
            i = j;
        }
    }
}

int
outq_push(struct outq *q, struct outq_msg *m, uint32_t limit)
{
    if (q->len >= limit)
        return -1;
    if (q->len == q->cap) {
        uint32_t cap = q->cap ? q->cap * 2 : OUTQ_INITIAL_CAP;
        struct outq_msg **slots;
        if (cap > limit)
            cap = limit;
        slots = malloc(cap * sizeof(*slots));
        if (slots == NULL)
            return -1;
        for (uint32_t i = 0; i < q->len; i++)
            slots[i] = q->slots[(q->head + i) % q->cap];
        free(q->slots);
        q->slots = slots;
        q->cap = cap;
        q->head = 0;
    }
    if (q->keys != NULL && m->key != 0 && outq_keys_put(q->keys, m->key, q->base + q->len) != 0)
        return -1;
    q->slots[(q->head + q->len) % q->cap] = m;
    q->len++;
    q->bytes += m->frame_len;
    outq_msg_ref(m);
    return 0;
}

static void
outq_pop(struct outq *q)
{
    struct outq_msg *m = q->slots[q->head];

    if (q->keys != NULL && m->key != 0)
        outq_keys_del(q->keys, m->key, q->base);
    q->bytes -= m->frame_len;
    outq_msg_unref(m);
    q->head = (q->head + 1) % q->cap;
    q->len--;
    q->base++;
}

int
outq_index_keys(struct outq *q)
{
    if (q->keys != NULL)
        return 0;
    if ((q->keys = calloc(1, sizeof(*q->keys))) == NULL || outq_keys_grow(q->keys) != 0) {
        free(q->keys);
        q->keys = NULL;
        return -1;
    }
    for (uint32_t i = 0; i < q->len; i++) {
        struct outq_msg *m = q->slots[(q->head + i) % q->cap];
        if (m->key != 0 && outq_keys_put(q->keys, m->key, q->base + i) != 0) {
            outq_unindex_keys(q);
            return -1;
        }
    }
    return 0;
}

void
outq_unindex_keys(struct outq *q)
{
    if (q->keys != NULL)
        free(q->keys->slots);
    free(q->keys);
    q->keys = NULL;
}

uint32_t
outq_keys_waiting(const struct outq *q)
{
    return q->keys != NULL ? q->keys->count : 0;
}

struct outq_msg *
outq_replace_key(struct outq *q, struct outq_msg *m)
{
    struct outq_key_slot *s;
    struct outq_msg **slot, *old;
    uint64_t at;

    if (q->keys == NULL || m->key == 0)
        return NULL;
    s = outq_keys_find(q->keys, m->key);
    if (s->key == 0 || s->pos < q->base || s->pos >= q->base + q->len)
        return NULL;
    at = s->pos - q->base;
    if (at == 0 && q->head_off > 0)
        return NULL; /* partly written: the rest must go out as it is */
    slot = &q->slots[(q->head + at) % q->cap];
    old = *slot;
    *slot = m;
    outq_msg_ref(m);
    q->bytes = q->bytes - old->frame_len + m->frame_len;
    return old;
}

const unsigned char *
outq_head_rest(const struct outq *q, size_t *len)
{
    const struct outq_msg *m;

    if (q->len == 0) {
        *len = 0;
        return NULL;
    }
    m = q->slots[q->head];
    *len = m->frame_len - q->head_off;
    return (const unsigned char *)m->buf + m->frame_off + q->head_off;
}

void
outq_drop_head(struct outq *q)
{
    if (q->len == 0)
        return;
    q->head_off = 0;
    outq_pop(q);
}

void
outq_clear(struct outq *q)
{
    outq_unindex_keys(q);
    while (q->len > 0)
        outq_pop(q);
    free(q->slots);
    memset(q, 0, sizeof(*q));
}

/* One delivered frame m, written by the write that just returned: time it
 * if it is the sample's turn.  *now is read once per write, when needed. */
static void
outq_time_delivery(struct outq_latency *lat, const struct outq_msg *m, uint64_t *now)
{
    if (lat == NULL || m->published_us == 0 || --lat->countdown > 0)
        return;
    lat->countdown = OUTQ_LATENCY_SAMPLE;
    if (*now == 0)
        *now = time_mono_us();
    hist_observe(lat->hist, *now > m->published_us ? *now - m->published_us : 0);
}

int
outq_write(struct outq *q, int fd, int rounds, uint32_t *delivered, size_t *bytes,
           struct outq_latency *lat)
{
    uint64_t now = 0;

    *delivered = 0;
    *bytes = 0;
    for (int round = 0; q->len > 0 && round < rounds; round++) {
        struct iovec iov[OUTQ_IOV_MAX];
        struct msghdr mh;
        size_t total = 0, n;
        uint32_t count = 0;
        ssize_t w;

        while (count < q->len && count < OUTQ_IOV_MAX) {
            struct outq_msg *m = q->slots[(q->head + count) % q->cap];
            size_t off = count == 0 ? q->head_off : 0;
            if (count > 0 && total + m->frame_len > OUTQ_WRITE_BYTES)
                break;
            iov[count].iov_base = m->buf + m->frame_off + off;
            iov[count].iov_len = m->frame_len - off;
            total += m->frame_len - off;
            count++;
        }
        memset(&mh, 0, sizeof(mh));
        mh.msg_iov = iov;
        mh.msg_iovlen = count;
        w = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0; /* full: wait for POLLOUT */
            if (errno == EINTR)
                continue;
            return -1;
        }
        n = (size_t)w;
        *bytes += n;
        while (n > 0) {
            struct outq_msg *m = q->slots[q->head];
            size_t left = m->frame_len - q->head_off;
            if (n < left) {
                q->head_off += (uint32_t)n;
                break;
            }
            n -= left;
            q->head_off = 0;
            outq_time_delivery(lat, m, &now);
            outq_pop(q);
            (*delivered)++;
        }
        if ((size_t)w < total)
            return 0; /* the socket took part: it is full */
    }
    return 0;
}
