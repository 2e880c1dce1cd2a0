/*
 * fuzz_proxy_header: the first bytes of a connection from a trusted proxy,
 * as a worker peeks at them (proxyproto_parse).
 *
 * Properties:
 *  - every call reads only buf[0..len): each prefix is parsed from a heap
 *    copy of exactly its length, so ASan sees any read past it;
 *  - over the prefixes of the input the answers are NEED_MORE, then one
 *    final answer that never changes (with the same header_len if OK): a
 *    caller that waits on NEED_MORE never waits for a header that cannot
 *    come, nor sees one change its mind; NEED_MORE never at
 *    PROXYPROTO_MAX_HEADER bytes or more;
 *  - OK: 0 < header_len <= len and <= PROXYPROTO_MAX_HEADER, and the first
 *    OK prefix is exactly header_len bytes; local has no addresses, anything
 *    else an AF_INET or AF_INET6 source and destination of the same family;
 *  - INVALID: a reason, terminated, also in 1..8 byte buffers;
 *  - round trip: the addresses of a non-local OK header, written back as a
 *    v1 line (IPv6 both as inet_ntop prints it, IPv4-mapped with a dotted
 *    tail, and as eight full groups) and as a v2 header, parse to the same
 *    addresses and ports.
 */
#include "common/proxyproto.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static enum proxyproto_result
parse_exact(const uint8_t *data, size_t n, struct proxyproto_header *h, char *err, size_t errlen)
{
    uint8_t *copy = malloc(n ? n : 1);
    enum proxyproto_result r;

    FUZZ_CHECK(copy != NULL);
    if (n > 0)
        memcpy(copy, data, n);
    r = proxyproto_parse(copy, n, h, err, errlen);
    free(copy);
    return r;
}

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* Two results of proxyproto_parse say the same (field by field: padding
 * bytes are not part of a result). */
static int
same_header(const struct proxyproto_header *a, const struct proxyproto_header *b)
{
    if (a->local != b->local || a->header_len != b->header_len || a->src_len != b->src_len ||
        a->dst_len != b->dst_len)
        return 0;
    return a->local || (same_addr(&a->src, &b->src) && same_addr(&a->dst, &b->dst));
}

static void
check_header(const struct proxyproto_header *h, size_t len)
{
    FUZZ_CHECK(h->header_len > 0 && h->header_len <= len);
    FUZZ_CHECK(h->header_len <= PROXYPROTO_MAX_HEADER);
    if (h->local) {
        FUZZ_CHECK(h->src_len == 0 && h->dst_len == 0);
        return;
    }
    FUZZ_CHECK(h->src.ss_family == h->dst.ss_family);
    if (h->src.ss_family == AF_INET) {
        FUZZ_CHECK(h->src_len == sizeof(struct sockaddr_in));
        FUZZ_CHECK(h->dst_len == sizeof(struct sockaddr_in));
    } else {
        FUZZ_CHECK(h->src.ss_family == AF_INET6);
        FUZZ_CHECK(h->src_len == sizeof(struct sockaddr_in6));
        FUZZ_CHECK(h->dst_len == sizeof(struct sockaddr_in6));
    }
}

/* Family, address and port of a and b are the same. */
static int
same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)a;
        const struct sockaddr_in *y = (const struct sockaddr_in *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)b;
    return x->sin6_port == y->sin6_port &&
           memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

/* The text of a's address; full: IPv6 as eight groups, no "::". */
static void
addr_text(const struct sockaddr_storage *a, int full, char *buf, size_t size)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)a;
        FUZZ_CHECK(inet_ntop(AF_INET, &in->sin_addr, buf, (socklen_t)size) != NULL);
        return;
    }
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)a;
    const uint8_t *b = in6->sin6_addr.s6_addr;
    if (!full) {
        FUZZ_CHECK(inet_ntop(AF_INET6, &in6->sin6_addr, buf, (socklen_t)size) != NULL);
        return;
    }
    snprintf(buf, size, "%x:%x:%x:%x:%x:%x:%x:%x", b[0] << 8 | b[1], b[2] << 8 | b[3],
             b[4] << 8 | b[5], b[6] << 8 | b[7], b[8] << 8 | b[9], b[10] << 8 | b[11],
             b[12] << 8 | b[13], b[14] << 8 | b[15]);
}

static unsigned
port_of(const struct sockaddr_storage *a)
{
    if (a->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)a)->sin_port);
    return ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

static void
check_same(const struct proxyproto_header *h, const uint8_t *buf, size_t n)
{
    struct proxyproto_header again;
    char err[128];

    if (parse_exact(buf, n, &again, err, sizeof(err)) != PROXYPROTO_OK)
        fprintf(stderr, "note: written back as %zu bytes, refused: %s\n", n, err);
    FUZZ_CHECK(parse_exact(buf, n, &again, err, sizeof(err)) == PROXYPROTO_OK);
    FUZZ_CHECK(!again.local && again.header_len == n);
    FUZZ_CHECK(same_addr(&again.src, &h->src) && same_addr(&again.dst, &h->dst));
    FUZZ_CHECK(again.src_len == h->src_len && again.dst_len == h->dst_len);
}

static void
check_roundtrip(const struct proxyproto_header *h)
{
    char src[INET6_ADDRSTRLEN + 8], dst[INET6_ADDRSTRLEN + 8], line[160];
    int v4 = h->src.ss_family == AF_INET;
    uint8_t v2[16 + 36];
    size_t alen = v4 ? 4 : 16;
    int n;

    for (int full = 0; full < 2; full++) {
        addr_text(&h->src, full, src, sizeof(src));
        addr_text(&h->dst, full, dst, sizeof(dst));
        n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", src, dst,
                     port_of(&h->src), port_of(&h->dst));
        FUZZ_CHECK(n > 0 && (size_t)n <= PROXYPROTO_V1_MAX);
        check_same(h, (const uint8_t *)line, (size_t)n);
    }
    memcpy(v2, "\r\n\r\n\0\r\nQUIT\n", 12);
    v2[12] = 0x21;
    v2[13] = v4 ? 0x11 : 0x21;
    v2[14] = 0;
    v2[15] = (uint8_t)(2 * alen + 4);
    if (v4) {
        memcpy(v2 + 16, &((const struct sockaddr_in *)&h->src)->sin_addr, 4);
        memcpy(v2 + 20, &((const struct sockaddr_in *)&h->dst)->sin_addr, 4);
        memcpy(v2 + 24, &((const struct sockaddr_in *)&h->src)->sin_port, 2);
        memcpy(v2 + 26, &((const struct sockaddr_in *)&h->dst)->sin_port, 2);
    } else {
        memcpy(v2 + 16, &((const struct sockaddr_in6 *)&h->src)->sin6_addr, 16);
        memcpy(v2 + 32, &((const struct sockaddr_in6 *)&h->dst)->sin6_addr, 16);
        memcpy(v2 + 48, &((const struct sockaddr_in6 *)&h->src)->sin6_port, 2);
        memcpy(v2 + 50, &((const struct sockaddr_in6 *)&h->dst)->sin6_port, 2);
    }
    check_same(h, v2, 16 + 2 * alen + 4);
}

/* A reason in buffers of 1 to 8 bytes, on the heap so ASan sees overruns. */
static void
check_small_err(const uint8_t *data, size_t size)
{
    struct proxyproto_header h;

    for (size_t errlen = 1; errlen <= 8; errlen++) {
        char *err = malloc(errlen);
        FUZZ_CHECK(err != NULL);
        FUZZ_CHECK(proxyproto_parse(data, size, &h, err, errlen) == PROXYPROTO_INVALID);
        FUZZ_CHECK(memchr(err, '\0', errlen) != NULL);
        free(err);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum proxyproto_result first = PROXYPROTO_NEED_MORE, r;
    struct proxyproto_header h, final;
    size_t limit = size < PROXYPROTO_MAX_HEADER + 1 ? size : PROXYPROTO_MAX_HEADER + 1;
    char err[128];

    memset(&final, 0, sizeof(final));
    for (size_t n = 0; n <= limit; n++) {
        err[0] = 'x';
        r = parse_exact(data, n, &h, err, sizeof(err));
        FUZZ_CHECK(r == PROXYPROTO_OK || r == PROXYPROTO_NEED_MORE || r == PROXYPROTO_INVALID);
        if (r == PROXYPROTO_NEED_MORE) {
            FUZZ_CHECK(first == PROXYPROTO_NEED_MORE);
            FUZZ_CHECK(n < PROXYPROTO_MAX_HEADER);
            FUZZ_CHECK(h.header_len == 0 && h.src_len == 0);
            continue;
        }
        if (r == PROXYPROTO_INVALID) {
            FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
            FUZZ_CHECK(h.header_len == 0 && h.src_len == 0);
        } else {
            check_header(&h, n);
        }
        if (first == PROXYPROTO_NEED_MORE) {
            first = r;
            final = h;
            if (r == PROXYPROTO_OK && h.header_len != n)
                fprintf(stderr, "note: OK at %zu bytes with header_len %zu\n", n, h.header_len);
            FUZZ_CHECK(r != PROXYPROTO_OK || h.header_len == n);
        }
        if (r != first)
            fprintf(stderr, "note: %d from %zu bytes on, %d at %zu\n", (int)first,
                    first == PROXYPROTO_OK ? final.header_len : 0, (int)r, n);
        FUZZ_CHECK(r == first);
        FUZZ_CHECK(r != PROXYPROTO_OK || same_header(&h, &final));
    }
    /* The whole input, however long: the same final answer. */
    r = proxyproto_parse(data, size, &h, err, sizeof(err));
    FUZZ_CHECK(r == first);
    if (r == PROXYPROTO_OK) {
        FUZZ_CHECK(same_header(&h, &final));
        if (!h.local)
            check_roundtrip(&h);
    } else if (r == PROXYPROTO_INVALID) {
        check_small_err(data, size);
    }
    return 0;
}
