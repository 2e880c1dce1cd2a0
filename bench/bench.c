#include "bench.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>

int64_t
bench_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int64_t
bench_real_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ---- histogram ------------------------------------------------------------ */

/*
 * Slot layout (HdrHistogram's): bucket 0 holds 0..255 one per slot; bucket
 * b >= 1 holds [128 << b, 256 << b) in 128 slots of width 1 << b, at slots
 * b * 128 + (v >> b).  So slot = b * 128 + (v >> b) for every bucket.
 */
static unsigned
bench_hist_slot(int64_t v)
{
    unsigned b;

    if (v < 2 * (int64_t)BENCH_HIST_SUB)
        return (unsigned)v;
    b = (unsigned)(63 - __builtin_clzll((unsigned long long)v)) - BENCH_HIST_SUB_BITS;
    return b * BENCH_HIST_SUB + (unsigned)(v >> b);
}

static int64_t
bench_hist_slot_high(unsigned slot)
{
    unsigned b, sub;

    if (slot < 2 * BENCH_HIST_SUB)
        return slot;
    b = slot / BENCH_HIST_SUB - 1;
    sub = slot - b * BENCH_HIST_SUB;
    return ((int64_t)(sub + 1) << b) - 1;
}

void
bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = INT64_MAX;
}

void
bench_hist_record(struct bench_hist *h, int64_t us)
{
    if (us < 0)
        us = 0;
    if (us < h->min)
        h->min = us;
    if (us > h->max)
        h->max = us;
    h->sum += (double)us;
    h->total++;
    if (us > BENCH_HIST_MAX_US) {
        h->clamped++;
        us = BENCH_HIST_MAX_US;
    }
    h->counts[bench_hist_slot(us)]++;
}

void
bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_SLOTS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->clamped += src->clamped;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

int64_t
bench_hist_percentile(const struct bench_hist *h, double q)
{
    uint64_t rank, seen = 0;

    if (h->total == 0)
        return 0;
    /* The smallest value with at least q% of the samples at or below it. */
    rank = (uint64_t)ceil(q / 100.0 * (double)h->total);
    if (rank < 1)
        rank = 1;
    if (rank >= h->total)
        return h->max;
    for (unsigned i = 0; i < BENCH_HIST_SLOTS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            int64_t v = bench_hist_slot_high(i);
            return v > h->max ? h->max : v;
        }
    }
    return h->max;
}

/* ---- SHA-1 (FIPS 180-4), enough for the handshake ------------------------- */

static uint32_t
bench_rol(uint32_t v, int n)
{
    return (v << n) | (v >> (32 - n));
}

static void
bench_sha1_block(uint32_t st[5], const unsigned char *p)
{
    uint32_t w[80], a = st[0], b = st[1], c = st[2], d = st[3], e = st[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = bench_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        t = bench_rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = bench_rol(b, 30);
        b = a;
        a = t;
    }
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
    st[4] += e;
}

void
bench_sha1(const void *data, size_t len, unsigned char out[20])
{
    uint32_t st[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    const unsigned char *p = data;
    unsigned char tail[128];
    size_t full = len / 64 * 64, rest = len - full, tlen;
    uint64_t bits = (uint64_t)len * 8;

    for (size_t i = 0; i < full; i += 64)
        bench_sha1_block(st, p + i);
    memset(tail, 0, sizeof(tail));
    memcpy(tail, p + full, rest);
    tail[rest] = 0x80;
    tlen = rest + 1 + 8 <= 64 ? 64 : 128;
    for (int i = 0; i < 8; i++)
        tail[tlen - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t i = 0; i < tlen; i += 64)
        bench_sha1_block(st, tail + i);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (unsigned char)(st[i] >> 24);
        out[4 * i + 1] = (unsigned char)(st[i] >> 16);
        out[4 * i + 2] = (unsigned char)(st[i] >> 8);
        out[4 * i + 3] = (unsigned char)st[i];
    }
}

size_t
bench_base64(const unsigned char *in, size_t len, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < len ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return o;
}

void
bench_ws_accept(const char *key, size_t keylen, char out[BENCH_ACCEPT_LEN + 1])
{
    char buf[256];
    unsigned char digest[20];
    size_t glen = sizeof(BENCH_WS_GUID) - 1;

    if (keylen > sizeof(buf) - glen)
        keylen = sizeof(buf) - glen;
    memcpy(buf, key, keylen);
    memcpy(buf + keylen, BENCH_WS_GUID, glen);
    bench_sha1(buf, keylen + glen, digest);
    bench_base64(digest, sizeof(digest), out);
}

size_t
bench_ws_header(const unsigned char *h, size_t avail, uint64_t *payload_len)
{
    size_t hlen = 2;
    uint64_t plen;

    if (avail < 2)
        return 0;
    plen = h[1] & 0x7f;
    if (plen == 126)
        hlen += 2;
    else if (plen == 127)
        hlen += 8;
    if (h[1] & 0x80)
        hlen += 4;
    if (avail < hlen)
        return 0;
    if (plen == 126) {
        plen = (uint64_t)h[2] << 8 | h[3];
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | h[2 + i];
    }
    *payload_len = plen;
    return hlen;
}

void
bench_ws_unmask(unsigned char *payload, uint64_t len, const unsigned char key[4])
{
    for (uint64_t i = 0; i < len; i++)
        payload[i] ^= key[i & 3];
}

/* ---- process, parsing ----------------------------------------------------- */

long
bench_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        /* Keep whatever we had if the kernel refuses (it should not). */
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -1;
    }
    return rl.rlim_cur == RLIM_INFINITY ? 1L << 20 : (long)rl.rlim_cur;
}

int
bench_split_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(s, ':');
    long p;
    size_t n;

    if (colon == NULL)
        return -1;
    n = (size_t)(colon - s);
    if (n >= hostlen)
        return -1;
    if (n == 0) {
        snprintf(host, hostlen, "127.0.0.1");
    } else {
        memcpy(host, s, n);
        host[n] = '\0';
    }
    if (bench_parse_long(colon + 1, 1, 65535, &p) != 0)
        return -1;
    *port = (int)p;
    return 0;
}

double
bench_parse_seconds(const char *s)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0) || v > 1e7)
        return -1;
    return v;
}

int
bench_parse_long(const char *s, long min, long max, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void
bench_rng_seed(struct bench_rng *r)
{
    uint64_t s = 0;

    if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s))
        s = (uint64_t)bench_real_ns() ^ (uint64_t)(uintptr_t)r;
    r->s = s ? s : 0x9e3779b97f4a7c15ULL;
}

uint64_t
bench_rng_next(struct bench_rng *r)
{
    uint64_t x = r->s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dULL;
}

void
bench_json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

long
bench_self_hwm_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "VmHWM:", 6) == 0) {
            kb = strtol(line + 6, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

const char *
bench_http_header(const char *head, size_t len, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = head, *end = head + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *lend = eol ? eol : end;
        if ((size_t)(lend - p) > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (v < lend && (*v == ' ' || *v == '\t'))
                v++;
            while (lend > v && (lend[-1] == '\r' || lend[-1] == ' '))
                lend--;
            *vlen = (size_t)(lend - v);
            return v;
        }
        p = eol ? eol + 1 : end;
    }
    return NULL;
}
