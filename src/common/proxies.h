/*
 * proxies: TRUSTED_PROXIES, and the client address of a request that came
 * through a reverse proxy (X-Forwarded-For, Forwarded).
 *
 * Behind a reverse proxy every connection's peer is the proxy, so the
 * per-address limits (MAX_CLIENTS_PER_IP and the others, admit.h) would
 * count all clients as one.  The proxy says who the client is in a header,
 * but anyone can send that header: it is believed only when the peer is a
 * proxy the operator named in TRUSTED_PROXIES, and only as far back as the
 * chain of proxies named there goes.  (PROXY_PROTOCOL, proxyproto.h, is the
 * other way for a proxy to say it, before the request instead of in it.)
 *
 * TRUSTED_PROXIES is a comma list of IPv4 and IPv6 addresses and CIDRs
 * ("10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"), at most PROXIES_MAX items,
 * empty by default (no proxy is trusted; headers are ignored).  An IPv4
 * entry also matches IPv4-mapped IPv6 peers (::ffff:a.b.c.d, an IPv4
 * client of a dual-stack listener), and an IPv6 entry inside ::ffff:0:0/96
 * is read as the IPv4 entry it maps; other IPv6 entries match IPv6 peers
 * only ("::/0" is every IPv6 peer; add "0.0.0.0/0" for every IPv4 one).
 *
 * The rule for the headers is "the right-most address that is not a
 * trusted proxy" (as nginx's real_ip_recursive and RFC 7239 section 7.5):
 * each trusted proxy appends the address it received the request from, so
 * walking from the right past trusted proxies reaches the first address no
 * trusted proxy vouches for further; whatever stands left of it was written
 * by the client and is ignored.  Where the walk stops on an element that is
 * not a usable address ("unknown", an obfuscated "_name", garbage), the
 * client cannot be named: the result is the peer, never something further
 * left (which the client could have chosen).  If every element is a
 * trusted address, the result is the left-most one.
 *
 * Pure: no I/O, no allocation, never logs.  Any role, any process.
 */
#ifndef WSB_PROXIES_H
#define WSB_PROXIES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Items of TRUSTED_PROXIES.  A fixed table keeps struct proxies a plain
 * value inside struct conf (copied on reload, no allocation); 64 ranges is
 * more than a deployment's proxies and their subnets need. */
#define PROXIES_MAX 64

/* One trusted range: family AF_INET (addr[0..4)) or AF_INET6 (addr[0..16)),
 * the bits after prefix cleared. */
struct proxies_range {
    unsigned char addr[16];
    uint8_t family;
    uint8_t prefix; /* 0..32 or 0..128 */
};

struct proxies {
    struct proxies_range range[PROXIES_MAX];
    unsigned n;
};

/*
 * Parse list (NULL, empty or blank: no trusted proxy) into *p.  Items are
 * separated by commas, with spaces and tabs around them; each is an
 * address, or an address, "/" and a prefix length (decimal, no leading
 * zero, at most 32 or 128) with no bits set after the prefix
 * ("10.1.2.3/8" is refused rather than guessed at).  0, or -1 with *p
 * empty and a message in err:
 *   "TRUSTED_PROXIES: '<item>' is not an address or CIDR"
 *   "TRUSTED_PROXIES: '<item>' has bits set after its prefix (<net>/<len>?)"
 *     (without the suggestion for ::ffff:a.b.c.d/N, N < 96)
 *   "TRUSTED_PROXIES: more than 64 items"
 * err may be NULL when errlen is 0.  Never blocks.
 */
int proxies_parse(struct proxies *p, const char *list, char *err, size_t errlen);

/* 1 if the address of sa (AF_INET, or AF_INET6 with IPv4-mapped folded to
 * IPv4) is in one of p's ranges; 0 otherwise, and for another family, a
 * len too short for its family, or p NULL.  The port is not looked at. */
int proxies_trusted(const struct proxies *p, const struct sockaddr *sa, socklen_t len);

/*
 * The client address of a request from peer (the connection's address, or
 * the one its PROXY protocol header gave).  xff and forwarded are the
 * X-Forwarded-For and Forwarded header values, NULL when absent; a header
 * sent on several lines is passed as its lines joined with ',' in order
 * (RFC 9110 section 5.3).
 *
 *   - peer not trusted: the peer; the headers are not read.
 *   - X-Forwarded-For with at least one non-empty element: decides alone.
 *     Elements are separated by ',', with spaces and tabs around them;
 *     each is "a.b.c.d", "a.b.c.d:port", an IPv6 address without
 *     brackets, "[v6]" or "[v6]:port".
 *   - else Forwarded (RFC 7239) with at least one non-empty element: the
 *     "for" parameter (name in any case) of each element, its value a
 *     token or a quoted string, the node as above (the port may be an
 *     obfuscated "_x").  An element without exactly one "for", or not well
 *     formed, counts as unusable, like "unknown" and "_hidden".
 *   - else the peer.
 * Then the rule of the top of this file.  An address from a header is
 * AF_INET (IPv4-mapped IPv6 folded) or AF_INET6, with its port if the
 * element gave a number, else 0; the peer is returned as given, port and
 * all.  Empty elements (", ,") are skipped, as HTTP lists allow.
 *
 * Returns 0 with *out and *out_len filled; -1 (out zeroed, *out_len 0)
 * only if peer is not an AF_INET or AF_INET6 address of at least its
 * family's length.  Whatever the headers hold, never fails, never reads
 * past their NUL.  Never blocks; time linear in the headers' length.
 */
int proxies_client_address(const struct proxies *p, const struct sockaddr *peer, socklen_t peer_len,
                           const char *xff, const char *forwarded, struct sockaddr_storage *out,
                           socklen_t *out_len);

#endif
