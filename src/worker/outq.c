#include "outq.h"

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
        free(m->buf);
        free(m);
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
    q->slots[(q->head + q->len) % q->cap] = m;
    q->len++;
    outq_msg_ref(m);
    return 0;
}

static void
outq_pop(struct outq *q)
{
    outq_msg_unref(q->slots[q->head]);
    q->head = (q->head + 1) % q->cap;
    q->len--;
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
    while (q->len > 0)
        outq_pop(q);
    free(q->slots);
    memset(q, 0, sizeof(*q));
}

int
outq_write(struct outq *q, int fd, int rounds, uint32_t *delivered, size_t *bytes)
{
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
            outq_pop(q);
            (*delivered)++;
        }
        if ((size_t)w < total)
            return 0; /* the socket took part: it is full */
    }
    return 0;
}
