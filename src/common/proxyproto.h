/*
 * proxyproto: the PROXY protocol header (HAProxy's proxy-protocol.txt,
 * version 1 text and version 2 binary) that a load balancer puts in front
 * of a connection it relays, to tell the server whose connection it is.
 *
 * A worker whose listener sits behind a trusted proxy peeks at the first
 * bytes of each accepted connection (recv with MSG_PEEK), hands them to
 * proxyproto_parse, and on PROXYPROTO_OK consumes exactly header_len bytes
 * and counts the client under the address the header gives, not the
 * proxy's.  The spec forbids guessing whether a header is there: a
 * listener configured for it requires one on every connection.
 *
 * Strict, as the spec asks ("any sequence which does not exactly match the
 * protocol must be discarded"): anything else is PROXYPROTO_INVALID, and is
 * found as early as the bytes allow, so that a caller waiting for more
 * (PROXYPROTO_NEED_MORE) never waits for a header that cannot come.
 *   v1  "PROXY TCP4 <ip> <ip> <port> <port>\r\n", TCP6 likewise, or
 *       "PROXY UNKNOWN" then the CRLF or a space and anything up to the
 *       CRLF (ignored, as the spec says); single spaces; IPv4 as
 *       four decimal numbers 0..255, IPv6 as hex groups and at most one
 *       "::" (and, as inet_pton takes it and HAProxy writes an IPv4 client
 *       of a dual-stack listener, an IPv4 address for the last two
 *       groups); numbers without leading zeros; the CRLF within the first
 *       PROXYPROTO_V1_MAX bytes.
 *   v2  the 12-byte signature, version 2, command LOCAL or PROXY; PROXY
 *       takes TCP over IPv4 or IPv6 only (UDP, UNIX and UNSPEC are
 *       refused), and the TLVs after the addresses must fill the announced
 *       length exactly; LOCAL (a proxy's health check) takes any family the
 *       spec defines and its address block is skipped unread, as the spec
 *       says.  Longer than PROXYPROTO_MAX_HEADER: refused.
 *
 * Pure: no I/O, no allocation, reads nothing past buf[len).  Any role.
 */
#ifndef WSB_PROXYPROTO_H
#define WSB_PROXYPROTO_H

#include <stddef.h>
#include <sys/socket.h>

/* The longest v1 line, CRLF included ("PROXY UNKNOWN" with two full IPv6
 * addresses and ports, the spec's worst case). */
#define PROXYPROTO_V1_MAX      107
/* v2: the fixed 16 bytes, then at most this much (addresses and TLVs).  The
 * length field allows 65535; 520 holds the IPv6 block and the TLVs proxies
 * send in practice (AWS's VPC endpoint id, a TLS summary, a unique id). */
#define PROXYPROTO_V2_MAX_DATA 520
#define PROXYPROTO_MAX_HEADER  (16 + PROXYPROTO_V2_MAX_DATA)

enum proxyproto_result { PROXYPROTO_OK, PROXYPROTO_NEED_MORE, PROXYPROTO_INVALID };

struct proxyproto_header {
    int local;                   /* v2 LOCAL or v1 UNKNOWN: no client address (use the peer's) */
    struct sockaddr_storage src; /* the client: AF_INET or AF_INET6, port included */
    socklen_t src_len;           /* 0 when local */
    struct sockaddr_storage dst; /* the address the client connected to, same family */
    socklen_t dst_len;
    size_t header_len; /* bytes the header takes: consume exactly these */
};

/*
 * Parse the header at the start of buf[0..len); bytes after it (the
 * client's first request) are not looked at.
 *   PROXYPROTO_OK          *out filled; out->header_len <= len.
 *   PROXYPROTO_NEED_MORE   buf[0..len) is the start of a valid header (len
 *                          may be 0); call again with more bytes.  Never
 *                          once len >= PROXYPROTO_MAX_HEADER.
 *   PROXYPROTO_INVALID     no valid header starts with these bytes; a
 *                          reason in err (for the log, never the client).
 * *out is zeroed unless OK.  err may be NULL when errlen is 0.  Never
 * blocks.
 */
enum proxyproto_result proxyproto_parse(const unsigned char *buf, size_t len,
                                        struct proxyproto_header *out, char *err, size_t errlen);

#endif
