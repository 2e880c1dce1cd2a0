#include "proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

static const unsigned char pp_v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                            0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* v2 byte 14 (family << 4 | transport): the values the spec defines. */
#define PP_V2_UNSPEC      0x00
#define PP_V2_TCP4        0x11
#define PP_V2_UDP4        0x12
#define PP_V2_TCP6        0x21
#define PP_V2_UDP6        0x22
#define PP_V2_UNIX_STREAM 0x31
#define PP_V2_UNIX_DGRAM  0x32

#define PP_V2_CMD_LOCAL 0x0
#define PP_V2_CMD_PROXY 0x1

/* Longest address texts in v1: "255.255.255.255", and six groups of four
 * hex digits then an IPv4 address (INET6_ADDRSTRLEN - 1).  The 107-byte
 * bound on the line still applies. */
#define PP_V1_IPV4_MAX 15
#define PP_V1_IPV6_MAX 45
#define PP_V1_PORT_MAX 5

static enum proxyproto_result
pp_invalid(char *err, size_t errlen, const char *why)
{
    if (errlen > 0)
        snprintf(err, errlen, "%s", why);
    return PROXYPROTO_INVALID;
}

/* ---- v1 ------------------------------------------------------------------ */

/* A v1 line as far as it has arrived, at most PROXYPROTO_V1_MAX bytes. */
struct pp_line {
    const unsigned char *p;
    size_t len;
    size_t pos;
    int capped; /* the caller had PROXYPROTO_V1_MAX bytes or more */
};

/* The line ends before its CRLF: more may come, unless the spec's bound has
 * been reached (it says to declare the line invalid then). */
static enum proxyproto_result
pp_short(const struct pp_line *l, char *err, size_t errlen)
{
    if (l->capped)
        return pp_invalid(err, errlen, "v1: no CRLF in the first 107 bytes");
    return PROXYPROTO_NEED_MORE;
}

/*
 * 1 if s[0..n) can begin an IPv4 address in the spec's form (four decimal
 * numbers 0..255 without leading zeros, single dots), and, if complete, is
 * one.  Checked here rather than left to inet_pton so that a prefix that
 * can never become an address is refused before the rest arrives (and
 * because the spec's no-leading-zero rule is its own).
 */
static int
pp_ipv4_ok(const unsigned char *s, size_t n, int complete)
{
    unsigned dots = 0, digits = 0, value = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (digits == 0 || dots == 3)
                return 0;
            dots++;
            digits = 0;
            value = 0;
        } else if (s[i] >= '0' && s[i] <= '9') {
            if (digits == 1 && value == 0)
                return 0; /* "0" then a digit: a leading zero */
            value = value * 10 + (unsigned)(s[i] - '0');
            digits++;
            if (value > 255)
                return 0;
        } else {
            return 0;
        }
    }
    return !complete || (dots == 3 && digits > 0);
}

static int
pp_is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * The same for IPv6: groups of 1 to 4 hex digits between single colons, at
 * most one "::", eight groups without it and at most seven with it; the
 * last two groups may be written as an IPv4 address ("::ffff:192.0.2.1",
 * as senders that print with inet_ntop write an IPv4 client of a
 * dual-stack listener, and as receivers that read with inet_pton take
 * it).  A prefix passes iff some continuation makes an address of that
 * form (inet_pton has the last word on a complete one).
 */
static int
pp_ipv6_ok(const unsigned char *s, size_t n, int complete)
{
    unsigned groups = 0, digits = 0, colons = 0; /* colons: the run ending here */
    const unsigned char *dot = memchr(s, '.', n);
    size_t end = n, tail = n;
    int dc = 0;

    if (dot != NULL) {
        /* The IPv4 part starts after the last colon before the dot; what
         * precedes it is checked as groups, and leaves room for two. */
        tail = (size_t)(dot - s);
        while (tail > 0 && s[tail - 1] != ':')
            tail--;
        if (tail == 0 || !pp_ipv4_ok(s + tail, n - tail, complete))
            return 0;
        end = tail;
    }
    for (size_t i = 0; i < end; i++) {
        if (s[i] == ':') {
            digits = 0;
            if (++colons == 2) {
                if (dc)
                    return 0; /* a second "::" */
                dc = 1;
            } else if (colons > 2) {
                return 0;
            }
        } else if (pp_is_hex(s[i])) {
            if (i == 1 && colons == 1)
                return 0; /* ":1": a lone leading colon */
            colons = 0;
            if (digits++ == 0)
                groups++;
            if (digits > 4)
                return 0;
        } else {
            return 0;
        }
        if (groups > (dc ? 7u : 8u))
            return 0;
    }
    if (dot != NULL) {
        /* Nothing can be added before the IPv4 part any more: without a
         * "::", six groups must already be there.  ":1.2.3.4" has a lone
         * leading colon too. */
        return tail > 1 && (dc ? groups + 2 <= 7 : groups == 6);
    }
    /* A single colon after a group asks for one more group (or a "::"),
     * which must still fit. */
    if (colons == 1 && n > 1 && groups >= (dc ? 7u : 8u))
        return 0;
    if (!complete)
        return 1;
    return n > 0 && colons != 1 && (dc || groups == 8);
}

/* A port: decimal 0..65535 without leading zeros. */
static int
pp_port_ok(const unsigned char *s, size_t n, int complete, unsigned *port)
{
    unsigned value = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || (i == 1 && value == 0))
            return 0;
        value = value * 10 + (unsigned)(s[i] - '0');
        if (value > 65535)
            return 0;
    }
    *port = value;
    return !complete || n > 0;
}

enum pp_field_kind { PP_FIELD_IPV4, PP_FIELD_IPV6, PP_FIELD_PORT };

/*
 * One field of a TCP4/TCP6 line and the byte that ends it (delim): checked
 * as far as it has arrived, converted once complete into addr (the bytes of
 * an in_addr or in6_addr) or *port.
 */
static enum proxyproto_result
pp_v1_field(struct pp_line *l, enum pp_field_kind kind, unsigned char delim, void *addr,
            unsigned *port, const char *bad, char *err, size_t errlen)
{
    size_t max = kind == PP_FIELD_IPV4   ? PP_V1_IPV4_MAX
                 : kind == PP_FIELD_IPV6 ? PP_V1_IPV6_MAX
                                         : PP_V1_PORT_MAX;
    const unsigned char *s = l->p + l->pos;
    size_t n = 0;
    int complete, ok;
    char text[PP_V1_IPV6_MAX + 1];

    while (l->pos + n < l->len && s[n] != delim && n <= max)
        n++;
    if (n > max)
        return pp_invalid(err, errlen, bad);
    complete = l->pos + n < l->len;
    if (kind == PP_FIELD_IPV4)
        ok = pp_ipv4_ok(s, n, complete);
    else if (kind == PP_FIELD_IPV6)
        ok = pp_ipv6_ok(s, n, complete);
    else
        ok = pp_port_ok(s, n, complete, port);
    if (!ok)
        return pp_invalid(err, errlen, bad);
    if (!complete)
        return pp_short(l, err, errlen);
    if (kind != PP_FIELD_PORT) {
        memcpy(text, s, n);
        text[n] = '\0';
        if (inet_pton(kind == PP_FIELD_IPV4 ? AF_INET : AF_INET6, text, addr) != 1)
            return pp_invalid(err, errlen, bad);
    }
    l->pos += n + 1;
    return PROXYPROTO_OK;
}

static void
pp_set_inet(struct sockaddr_storage *ss, socklen_t *len, int family, const void *addr,
            unsigned port)
{
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        memcpy(&in->sin_addr, addr, sizeof(in->sin_addr));
        *len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        memcpy(&in6->sin6_addr, addr, sizeof(in6->sin6_addr));
        *len = sizeof(*in6);
    }
}

static const char *const pp_v1_protocols[] = {"TCP4", "TCP6", "UNKNOWN"};

static enum proxyproto_result
pp_v1(const unsigned char *buf, size_t len, struct proxyproto_header *out, char *err, size_t errlen)
{
    struct pp_line l = {buf, len < PROXYPROTO_V1_MAX ? len : PROXYPROTO_V1_MAX, 0,
                        len >= PROXYPROTO_V1_MAX};
    unsigned char src[16], dst[16];
    unsigned sport = 0, dport = 0;
    enum proxyproto_result r;
    enum pp_field_kind kind;
    size_t proto, n, avail;
    int family;

    n = l.len < 6 ? l.len : 6;
    if (memcmp(buf, "PROXY ", n) != 0)
        return pp_invalid(err, errlen, "not a PROXY protocol header");
    if (l.len < 6)
        return pp_short(&l, err, errlen);
    l.pos = 6;
    /* No protocol name is a prefix of another: at most one can match. */
    avail = l.len - l.pos;
    for (proto = 0; proto < 3; proto++) {
        n = strlen(pp_v1_protocols[proto]);
        if (memcmp(buf + l.pos, pp_v1_protocols[proto], avail < n ? avail : n) == 0)
            break;
    }
    if (proto == 3)
        return pp_invalid(err, errlen, "v1: protocol not TCP4, TCP6 or UNKNOWN");
    if (avail <= n)
        return pp_short(&l, err, errlen);
    l.pos += n;

    if (proto == 2) {
        /* UNKNOWN: the spec has the receiver ignore whatever comes before
         * the CRLF, but it must come after a space. */
        if (buf[l.pos] != ' ' && buf[l.pos] != '\r')
            return pp_invalid(err, errlen, "v1: UNKNOWN not followed by a space or CRLF");
        if (buf[l.pos] == '\r' && l.pos + 1 < l.len && buf[l.pos + 1] != '\n')
            return pp_invalid(err, errlen, "v1: CR without LF");
        for (size_t i = l.pos; i + 1 < l.len; i++) {
            if (buf[i] == '\r' && buf[i + 1] == '\n') {
                out->local = 1;
                out->header_len = i + 2;
                return PROXYPROTO_OK;
            }
        }
        return pp_short(&l, err, errlen);
    }

    if (buf[l.pos] != ' ')
        return pp_invalid(err, errlen, "v1: protocol not followed by one space");
    l.pos++;
    family = proto == 0 ? AF_INET : AF_INET6;
    kind = proto == 0 ? PP_FIELD_IPV4 : PP_FIELD_IPV6;
    r = pp_v1_field(&l, kind, ' ', src, NULL, "v1: bad source address", err, errlen);
    if (r == PROXYPROTO_OK)
        r = pp_v1_field(&l, kind, ' ', dst, NULL, "v1: bad destination address", err, errlen);
    if (r == PROXYPROTO_OK)
        r = pp_v1_field(&l, PP_FIELD_PORT, ' ', NULL, &sport, "v1: bad source port", err, errlen);
    if (r == PROXYPROTO_OK)
        r = pp_v1_field(&l, PP_FIELD_PORT, '\r', NULL, &dport, "v1: bad destination port", err,
                        errlen);
    if (r != PROXYPROTO_OK)
        return r;
    /* The CR has been taken as the port's end; a lone CR is not a line end. */
    if (l.pos == l.len)
        return pp_short(&l, err, errlen);
    if (buf[l.pos] != '\n')
        return pp_invalid(err, errlen, "v1: CR without LF");
    pp_set_inet(&out->src, &out->src_len, family, src, sport);
    pp_set_inet(&out->dst, &out->dst_len, family, dst, dport);
    out->header_len = l.pos + 1;
    return PROXYPROTO_OK;
}

/* ---- v2 ------------------------------------------------------------------ */

static enum proxyproto_result
pp_v2(const unsigned char *buf, size_t len, struct proxyproto_header *out, char *err, size_t errlen)
{
    size_t n = len < sizeof(pp_v2_sig) ? len : sizeof(pp_v2_sig);
    size_t addr_len, total, avail, off;
    unsigned cmd, fam;

    if (memcmp(buf, pp_v2_sig, n) != 0)
        return pp_invalid(err, errlen, "not a PROXY protocol header");
    if (len < 13)
        return PROXYPROTO_NEED_MORE;
    if (buf[12] >> 4 != 2)
        return pp_invalid(err, errlen, "v2: version not 2");
    cmd = buf[12] & 0x0f;
    if (cmd != PP_V2_CMD_LOCAL && cmd != PP_V2_CMD_PROXY)
        return pp_invalid(err, errlen, "v2: command neither LOCAL nor PROXY");
    if (len < 14)
        return PROXYPROTO_NEED_MORE;
    fam = buf[13];
    switch (fam) {
    case PP_V2_TCP4:
    case PP_V2_TCP6:
        break;
    case PP_V2_UNSPEC:
    case PP_V2_UDP4:
    case PP_V2_UDP6:
    case PP_V2_UNIX_STREAM:
    case PP_V2_UNIX_DGRAM:
        /* A health check's family is ignored; a relayed connection must be
         * TCP with an IP client, or there is no client address to use. */
        if (cmd == PP_V2_CMD_PROXY)
            return pp_invalid(err, errlen, "v2: PROXY command not for TCP over IPv4 or IPv6");
        break;
    default:
        return pp_invalid(err, errlen, "v2: undefined family or transport");
    }
    if (len < 16)
        return PROXYPROTO_NEED_MORE;
    total = 16 + ((size_t)buf[14] << 8 | buf[15]);
    if (total > PROXYPROTO_MAX_HEADER)
        return pp_invalid(err, errlen, "v2: header longer than accepted");
    if (cmd == PP_V2_CMD_LOCAL) {
        /* The spec: use the real endpoints, discard the block unread. */
        if (len < total)
            return PROXYPROTO_NEED_MORE;
        out->local = 1;
        out->header_len = total;
        return PROXYPROTO_OK;
    }
    addr_len = fam == PP_V2_TCP4 ? 2 * 4 + 2 * 2 : 2 * 16 + 2 * 2;
    if (total < 16 + addr_len)
        return pp_invalid(err, errlen, "v2: length shorter than the addresses");
    /* TLVs (type, 16-bit length, value) must fill the rest exactly; each is
     * checked as soon as its own 3 bytes are in. */
    avail = len < total ? len : total;
    for (off = 16 + addr_len; off < total;) {
        if (total - off < 3)
            return pp_invalid(err, errlen, "v2: bytes after the last TLV");
        if (off + 3 > avail)
            return PROXYPROTO_NEED_MORE;
        n = (size_t)buf[off + 1] << 8 | buf[off + 2];
        if (n > total - off - 3)
            return pp_invalid(err, errlen, "v2: TLV longer than the header");
        off += 3 + n;
    }
    if (len < total)
        return PROXYPROTO_NEED_MORE;
    if (fam == PP_V2_TCP4) {
        pp_set_inet(&out->src, &out->src_len, AF_INET, buf + 16, (unsigned)buf[24] << 8 | buf[25]);
        pp_set_inet(&out->dst, &out->dst_len, AF_INET, buf + 20, (unsigned)buf[26] << 8 | buf[27]);
    } else {
        pp_set_inet(&out->src, &out->src_len, AF_INET6, buf + 16, (unsigned)buf[48] << 8 | buf[49]);
        pp_set_inet(&out->dst, &out->dst_len, AF_INET6, buf + 32, (unsigned)buf[50] << 8 | buf[51]);
    }
    out->header_len = total;
    return PROXYPROTO_OK;
}

enum proxyproto_result
proxyproto_parse(const unsigned char *buf, size_t len, struct proxyproto_header *out, char *err,
                 size_t errlen)
{
    enum proxyproto_result r;

    memset(out, 0, sizeof(*out));
    if (errlen > 0)
        err[0] = '\0';
    if (len == 0)
        return PROXYPROTO_NEED_MORE;
    /* 'P' and CR: the two versions differ from the first byte on. */
    if (buf[0] == 'P')
        r = pp_v1(buf, len, out, err, errlen);
    else
        r = pp_v2(buf, len, out, err, errlen);
    if (r != PROXYPROTO_OK)
        memset(out, 0, sizeof(*out));
    return r;
}
