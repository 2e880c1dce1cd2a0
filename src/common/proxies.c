#include "proxies.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PROXIES_KEY      "TRUSTED_PROXIES"
/* An item of the list, or a node of a header, longer than this is no
 * address: INET6_ADDRSTRLEN holds the longest IPv6 text with its NUL; "[",
 * "]:" and a 5-digit port, or "/128", fit in the rest. */
#define PROXIES_TEXT_MAX (INET6_ADDRSTRLEN + 16)
/* An item quoted in an error message is cut here, so that the message
 * keeps its end whatever was written. */
#define PROXIES_ERR_ITEM 64

static const unsigned char proxies_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* An address as the rules compare it: AF_INET in b[0..4) (IPv4-mapped
 * IPv6 folded to it), or AF_INET6; port in host order, 0 if none. */
struct proxies_addr {
    unsigned char b[16];
    int family;
    unsigned port;
};

static int
proxies_is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* An IPv4-mapped IPv6 address is the IPv4 address it maps: the client of a
 * dual-stack listener, and what the IPv4 entries are meant to match. */
static void
proxies_fold(struct proxies_addr *a)
{
    if (a->family == AF_INET6 && memcmp(a->b, proxies_v4mapped, sizeof(proxies_v4mapped)) == 0) {
        memmove(a->b, a->b + 12, 4);
        memset(a->b + 4, 0, 12);
        a->family = AF_INET;
    }
}

/* The address text s[0..n), no brackets and no port: IPv6 if it holds a
 * colon, else IPv4 (inet_pton's strict dotted quad: no leading zeros, no
 * "10.1" shorthand, no hex).  0 or -1. */
static int
proxies_addr_text(const char *s, size_t n, struct proxies_addr *a)
{
    char text[INET6_ADDRSTRLEN];

    memset(a, 0, sizeof(*a));
    if (n == 0 || n >= sizeof(text))
        return -1;
    memcpy(text, s, n);
    text[n] = '\0';
    a->family = memchr(s, ':', n) != NULL ? AF_INET6 : AF_INET;
    if (inet_pton(a->family, text, a->b) != 1)
        return -1;
    proxies_fold(a);
    return 0;
}

static int
proxies_from_sockaddr(const struct sockaddr *sa, socklen_t len, struct proxies_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        a->family = AF_INET;
        memcpy(a->b, &in->sin_addr, 4);
        a->port = ntohs(in->sin_port);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        a->family = AF_INET6;
        memcpy(a->b, &in6->sin6_addr, 16);
        a->port = ntohs(in6->sin6_port);
        proxies_fold(a);
        return 0;
    }
    return -1;
}

static socklen_t
proxies_to_sockaddr(const struct proxies_addr *a, struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (a->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)a->port);
        memcpy(&in->sin_addr, a->b, 4);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)a->port);
    memcpy(&in6->sin6_addr, a->b, 16);
    return sizeof(*in6);
}

/* Clear the bits of b[0..16) after prefix; 1 if any was set. */
static int
proxies_mask(unsigned char b[16], unsigned prefix)
{
    int changed = 0;

    for (unsigned bit = 0; bit < 128; bit += 8) {
        unsigned char keep;
        if (bit + 8 <= prefix)
            continue;
        keep = bit >= prefix ? 0 : (unsigned char)(0xff00 >> (prefix - bit));
        if (b[bit / 8] & ~keep)
            changed = 1;
        b[bit / 8] &= keep;
    }
    return changed;
}

static int
proxies_in_range(const struct proxies_range *r, const struct proxies_addr *a)
{
    unsigned full = r->prefix / 8, rest = r->prefix % 8;

    if (r->family != a->family || memcmp(r->addr, a->b, full) != 0)
        return 0;
    return rest == 0 || ((r->addr[full] ^ a->b[full]) & (0xff00 >> rest) & 0xff) == 0;
}

static int
proxies_addr_trusted(const struct proxies *p, const struct proxies_addr *a)
{
    if (p == NULL)
        return 0;
    for (unsigned i = 0; i < p->n && i < PROXIES_MAX; i++) {
        if (proxies_in_range(&p->range[i], a))
            return 1;
    }
    return 0;
}

/* ---- TRUSTED_PROXIES ------------------------------------------------------- */

static int
proxies_bad_item(const char *s, size_t n, char *err, size_t errlen)
{
    if (errlen > 0)
        snprintf(err, errlen, PROXIES_KEY ": '%.*s%s' is not an address or CIDR",
                 (int)(n > PROXIES_ERR_ITEM ? PROXIES_ERR_ITEM : n), s,
                 n > PROXIES_ERR_ITEM ? "..." : "");
    return -1;
}

/* A prefix length: decimal, no sign, no leading zero, at most max. */
static int
proxies_prefix_text(const char *s, size_t n, unsigned max, unsigned *out)
{
    unsigned v = 0;

    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > max)
        return -1;
    *out = v;
    return 0;
}

/* One item s[0..n), blanks already trimmed, into r. */
static int
proxies_parse_item(const char *s, size_t n, struct proxies_range *r, char *err, size_t errlen)
{
    const char *slash = memchr(s, '/', n);
    size_t alen = slash != NULL ? (size_t)(slash - s) : n;
    struct proxies_addr a;
    unsigned prefix, max;
    int mapped;

    if (n > PROXIES_TEXT_MAX || proxies_addr_text(s, alen, &a) != 0)
        return proxies_bad_item(s, n, err, errlen);
    /* Written as IPv6 but mapping an IPv4 address: an IPv4 entry, its
     * prefix counted from the IPv4 part. */
    mapped = a.family == AF_INET && memchr(s, ':', alen) != NULL;
    max = a.family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        prefix = max;
    } else {
        if (proxies_prefix_text(slash + 1, n - alen - 1, mapped ? 128 : max, &prefix) != 0)
            return proxies_bad_item(s, n, err, errlen);
        if (mapped) {
            /* ::ffff:a.b.c.d/N with N < 96 ends inside the ffff, whose
             * bits then lie after the prefix: refused like any such item
             * (the folded form checked below no longer holds them). */
            if (prefix < 96) {
                if (errlen > 0)
                    snprintf(err, errlen, PROXIES_KEY ": '%.*s' has bits set after its prefix",
                             (int)n, s);
                return -1;
            }
            prefix -= 96;
        }
    }
    memset(r, 0, sizeof(*r));
    r->family = (uint8_t)a.family;
    r->prefix = (uint8_t)prefix;
    memcpy(r->addr, a.b, sizeof(r->addr));
    if (proxies_mask(r->addr, prefix)) {
        /* "10.1.2.3/8" may mean 10.0.0.0/8 or 10.1.2.3/32: which one is
         * the operator's to say, not ours to guess. */
        char net[INET6_ADDRSTRLEN];
        if (inet_ntop(a.family, r->addr, net, sizeof(net)) == NULL)
            snprintf(net, sizeof(net), "?");
        if (errlen > 0)
            snprintf(err, errlen, PROXIES_KEY ": '%.*s' has bits set after its prefix (%s/%u?)",
                     (int)n, s, net, prefix);
        return -1;
    }
    return 0;
}

int
proxies_parse(struct proxies *p, const char *list, char *err, size_t errlen)
{
    const char *s = list != NULL ? list : "";

    memset(p, 0, sizeof(*p));
    if (errlen > 0)
        err[0] = '\0';
    /* Blank: no proxy trusted.  Otherwise every item must be there: an
     * empty one (",," or a trailing comma) is a typo worth a refusal. */
    if (s[strspn(s, " \t")] == '\0')
        return 0;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t n = end != NULL ? (size_t)(end - s) : strlen(s);
        while (n > 0 && proxies_is_ows(*s)) {
            s++;
            n--;
        }
        while (n > 0 && proxies_is_ows(s[n - 1]))
            n--;
        if (p->n == PROXIES_MAX) {
            memset(p, 0, sizeof(*p));
            if (errlen > 0)
                snprintf(err, errlen, PROXIES_KEY ": more than %d items", PROXIES_MAX);
            return -1;
        }
        if (proxies_parse_item(s, n, &p->range[p->n], err, errlen) != 0) {
            memset(p, 0, sizeof(*p));
            return -1;
        }
        p->n++;
        if (end == NULL)
            return 0;
        s = end + 1;
    }
}

int
proxies_trusted(const struct proxies *p, const struct sockaddr *sa, socklen_t len)
{
    struct proxies_addr a;

    if (proxies_from_sockaddr(sa, len, &a) != 0)
        return 0;
    return proxies_addr_trusted(p, &a);
}

/* ---- headers ------------------------------------------------------------- */

/* A port: 1 to 5 digits, at most 65535; with obf_ok, also RFC 7239's
 * obfuscated "_" 1*(ALPHA / DIGIT / "." / "_" / "-"), as port 0. */
static int
proxies_port_text(const char *s, size_t n, int obf_ok, unsigned *port)
{
    unsigned v = 0;

    *port = 0;
    if (obf_ok && n >= 2 && s[0] == '_') {
        for (size_t i = 1; i < n; i++) {
            char c = s[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                return -1;
        }
        return 0;
    }
    if (n == 0 || n > 5)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

/*
 * A node s[0..n): "a.b.c.d", "a.b.c.d:port", IPv6 bare, "[v6]",
 * "[v6]:port".  Bare IPv6 takes no port (its last group would be one).
 * Anything else, "unknown" and "_hidden" included, is -1: no address to
 * use.
 */
static int
proxies_node(const char *s, size_t n, int obf_ok, struct proxies_addr *a)
{
    const char *colon;
    unsigned port = 0;

    memset(a, 0, sizeof(*a));
    if (n == 0 || n > PROXIES_TEXT_MAX)
        return -1;
    if (s[0] == '[') {
        const char *close = memchr(s, ']', n);
        size_t alen, after;
        if (close == NULL)
            return -1;
        alen = (size_t)(close - s) - 1;
        after = n - alen - 2;
        /* brackets hold IPv6 only: "[192.0.2.1]" is no address */
        if (memchr(s + 1, ':', alen) == NULL || proxies_addr_text(s + 1, alen, a) != 0)
            return -1;
        if (after > 0 &&
            (close[1] != ':' || proxies_port_text(close + 2, after - 1, obf_ok, &port) != 0))
            return -1;
        a->port = port;
        return 0;
    }
    colon = memchr(s, ':', n);
    if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) == NULL) {
        /* one colon: IPv4 and a port (IPv6 has at least two) */
        size_t alen = (size_t)(colon - s);
        if (proxies_addr_text(s, alen, a) != 0 || a->family != AF_INET ||
            proxies_port_text(colon + 1, n - alen - 1, obf_ok, &port) != 0)
            return -1;
        a->port = port;
        return 0;
    }
    return proxies_addr_text(s, n, a);
}

/*
 * The walk over a header's elements, left to right in one pass, computing
 * what the right-to-left rule gives for the elements seen so far:
 *   NONE         no element yet (the header counts as absent);
 *   ALL_TRUSTED  every element a trusted address; addr: the left-most;
 *   FOUND        addr: the right-most untrusted address, with only trusted
 *                addresses right of it;
 *   PEER         the right-most element not a trusted address is unusable.
 * A trusted address keeps the state (the walk from the right passes over
 * it), except that it makes NONE ALL_TRUSTED; an untrusted one is FOUND
 * whatever came before; an unusable one is PEER.  One pass, no list of
 * elements: a header of any length costs no memory.
 */
enum proxies_state { PROXIES_NONE, PROXIES_ALL_TRUSTED, PROXIES_FOUND, PROXIES_PEER };

struct proxies_walk {
    const struct proxies *p;
    enum proxies_state state;
    struct proxies_addr addr;
};

/* The next element: a, or NULL when unusable. */
static void
proxies_step(struct proxies_walk *w, const struct proxies_addr *a)
{
    if (a == NULL) {
        w->state = PROXIES_PEER;
    } else if (!proxies_addr_trusted(w->p, a)) {
        w->state = PROXIES_FOUND;
        w->addr = *a;
    } else if (w->state == PROXIES_NONE) {
        w->state = PROXIES_ALL_TRUSTED;
        w->addr = *a;
    }
}

static void
proxies_walk_xff(struct proxies_walk *w, const char *s)
{
    while (*s != '\0') {
        size_t n = strcspn(s, ",");
        const char *next = s + n + (s[n] == ',');
        struct proxies_addr a;
        while (n > 0 && proxies_is_ows(*s)) {
            s++;
            n--;
        }
        while (n > 0 && proxies_is_ows(s[n - 1]))
            n--;
        if (n > 0)
            proxies_step(w, proxies_node(s, n, 0, &a) == 0 ? &a : NULL);
        s = next;
    }
}

/* RFC 7230 tchar: the characters of a token (a parameter name). */
static int
proxies_is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* From s, past the rest of a Forwarded element: to its ',' (outside quoted
 * strings) or the end. */
static const char *
proxies_skip_element(const char *s)
{
    int quoted = 0;

    for (; *s != '\0'; s++) {
        if (quoted && *s == '\\' && s[1] != '\0')
            s++;
        else if (*s == '"')
            quoted = !quoted;
        else if (!quoted && *s == ',')
            break;
    }
    return s;
}

/*
 * One Forwarded element from s (RFC 7239: pairs token=value separated by
 * ';', the value a token or a quoted string), tolerating blanks around ';'
 * and '=' and an unquoted value with characters a token does not allow (a
 * proxy that writes for=[2001:db8::1] unquoted still means that address).
 * Returns where it ends (its ',' or the end); *nonempty: anything but
 * blanks was there; *a: the address of its one "for" pair, *usable 1 if
 * there was exactly one and it was an address.
 */
static const char *
proxies_forwarded_element(const char *s, int *nonempty, int *usable, struct proxies_addr *a)
{
    char value[PROXIES_TEXT_MAX + 1];
    int nfor = 0, addr_ok = 0;

    *nonempty = 0;
    *usable = 0;
    for (;;) {
        const char *name;
        size_t name_len, vlen = 0;
        int too_long = 0;

        while (proxies_is_ows(*s))
            s++;
        if (*s == '\0' || *s == ',')
            break;
        *nonempty = 1;
        if (*s == ';') {
            s++; /* an empty pair, as the grammar allows */
            continue;
        }
        name = s;
        while (proxies_is_tchar(*s))
            s++;
        name_len = (size_t)(s - name);
        while (proxies_is_ows(*s))
            s++;
        if (name_len == 0 || *s != '=')
            return proxies_skip_element(s);
        s++;
        while (proxies_is_ows(*s))
            s++;
        if (*s == '"') {
            for (s++; *s != '"'; s++) {
                if (*s == '\\' && s[1] != '\0')
                    s++; /* quoted-pair: the next character as it is */
                if (*s == '\0')
                    return s; /* unterminated: the element is lost */
                if (vlen < sizeof(value) - 1)
                    value[vlen++] = *s;
                else
                    too_long = 1;
            }
            s++;
        } else {
            while (*s != '\0' && *s != ';' && *s != ',' && !proxies_is_ows(*s)) {
                if (*s == '"')
                    return proxies_skip_element(s);
                if (vlen < sizeof(value) - 1)
                    value[vlen++] = *s;
                else
                    too_long = 1;
                s++;
            }
            if (vlen == 0)
                return proxies_skip_element(s);
        }
        while (proxies_is_ows(*s))
            s++;
        if (*s != '\0' && *s != ';' && *s != ',')
            return proxies_skip_element(s);
        if (name_len == 3 && strncasecmp(name, "for", 3) == 0) {
            nfor++;
            addr_ok = !too_long && proxies_node(value, vlen, 1, a) == 0;
        }
    }
    /* RFC 7239 4: a parameter occurs at most once per element; two "for"
     * are two claims, and neither can be taken. */
    *usable = nfor == 1 && addr_ok;
    return s;
}

static void
proxies_walk_forwarded(struct proxies_walk *w, const char *s)
{
    while (*s != '\0') {
        int nonempty, usable;
        struct proxies_addr a;
        s = proxies_forwarded_element(s, &nonempty, &usable, &a);
        if (nonempty)
            proxies_step(w, usable ? &a : NULL);
        if (*s == ',')
            s++;
    }
}

int
proxies_client_address(const struct proxies *p, const struct sockaddr *peer, socklen_t peer_len,
                       const char *xff, const char *forwarded, struct sockaddr_storage *out,
                       socklen_t *out_len)
{
    struct proxies_walk w;
    struct proxies_addr pa;

    memset(out, 0, sizeof(*out));
    *out_len = 0;
    if (proxies_from_sockaddr(peer, peer_len, &pa) != 0)
        return -1;
    memset(&w, 0, sizeof(w));
    w.p = p;
    w.state = PROXIES_NONE;
    if (proxies_addr_trusted(p, &pa)) {
        if (xff != NULL)
            proxies_walk_xff(&w, xff);
        /* X-Forwarded-For decides alone when it has an element: mixing two
         * chains would let either vouch for the other's hops. */
        if (w.state == PROXIES_NONE && forwarded != NULL)
            proxies_walk_forwarded(&w, forwarded);
    }
    if (w.state == PROXIES_FOUND || w.state == PROXIES_ALL_TRUSTED) {
        *out_len = proxies_to_sockaddr(&w.addr, out);
        return 0;
    }
    /* The peer as given (a mapped address stays mapped, the port stays):
     * the caller sees its own connection's address unchanged. */
    *out_len =
        peer->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    memcpy(out, peer, *out_len);
    return 0;
}
