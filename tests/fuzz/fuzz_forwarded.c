/*
 * fuzz_forwarded: TRUSTED_PROXIES and the client address behind a reverse
 * proxy (proxies_parse, proxies_client_address).
 *
 * Input: the first byte's low 3 bits pick the peer (PEERS below: trusted
 * and untrusted, IPv4, IPv6 and IPv4-mapped); the rest, split at its first
 * two '\n', is a TRUSTED_PROXIES list, an X-Forwarded-For value and a
 * Forwarded value (a missing part is an absent header).  A list that is
 * refused or empty is replaced by DEFAULT_LIST, so that the headers are
 * read.  Printable first bytes: '0' to '7'.
 *
 * Properties:
 *  - proxies_parse answers 0 or -1; -1 with a reason, terminated, also in
 *    1..8 byte buffers, and an empty list; 0 with at most PROXIES_MAX
 *    ranges, each of a family, a prefix within its length and no bits set
 *    after it, and the ranges printed back as a list parse to the same;
 *  - proxies_client_address never fails for a valid peer, and reads no
 *    header past its NUL (each is an exact heap copy);
 *  - the result is an AF_INET or AF_INET6 address of its family's length,
 *    never IPv4-mapped unless it is the peer as given;
 *  - an untrusted peer is the answer, byte for byte, whatever the headers
 *    say; a trusted peer with both headers absent too;
 *  - an X-Forwarded-For with an element decides alone: Forwarded changes
 *    nothing then;
 *  - when the answer is an untrusted address from a header (the client),
 *    what a client can write does not change it: elements put in front of
 *    the deciding header ("6.6.6.6", "unknown", a trusted address), nor a
 *    trusted hop appended to X-Forwarded-For.
 */
#include "common/proxies.h"

#include "fuzz.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#define DEFAULT_LIST "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"

/* Trusted by DEFAULT_LIST: 0, 1, 2, 5, 6. */
static const char *const PEERS[8] = {
    "10.1.2.3",    "::1",     "::ffff:10.9.9.9", "203.0.113.9",
    "2001:db8::9", "fd00::5", "127.0.0.1",       "::ffff:198.51.100.1",
};

/* s[0..n) as a NUL-terminated heap copy of exactly n + 1 bytes (cut at an
 * inner NUL: a C string ends there anyway). */
static char *
copy_part(const uint8_t *s, size_t n)
{
    const uint8_t *nul = memchr(s, '\0', n);
    char *c;

    if (nul != NULL)
        n = (size_t)(nul - s);
    c = malloc(n + 1);
    FUZZ_CHECK(c != NULL);
    memcpy(c, s, n);
    c[n] = '\0';
    return c;
}

static socklen_t
peer_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(40000);
        FUZZ_CHECK(inet_pton(AF_INET, text, &in->sin_addr) == 1);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(40000);
    FUZZ_CHECK(inet_pton(AF_INET6, text, &in6->sin6_addr) == 1);
    return sizeof(*in6);
}

static int
same_result(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b,
            socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

static void
print_result(const char *what, const struct sockaddr_storage *a)
{
    char text[INET6_ADDRSTRLEN] = "?";

    if (a->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)a)->sin_addr, text, sizeof(text));
    else if (a->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)a)->sin6_addr, text, sizeof(text));
    fprintf(stderr, "note: %s: %s\n", what, text);
}

/* One call, with the properties every answer has. */
static void
client(const struct proxies *p, const struct sockaddr_storage *peer, socklen_t peer_len,
       const char *xff, const char *fwd, struct sockaddr_storage *out, socklen_t *out_len)
{
    FUZZ_CHECK(proxies_client_address(p, (const struct sockaddr *)peer, peer_len, xff, fwd, out,
                                      out_len) == 0);
    if (out->ss_family == AF_INET) {
        FUZZ_CHECK(*out_len == sizeof(struct sockaddr_in));
    } else {
        FUZZ_CHECK(out->ss_family == AF_INET6);
        FUZZ_CHECK(*out_len == sizeof(struct sockaddr_in6));
        FUZZ_CHECK(!IN6_IS_ADDR_V4MAPPED(&((const struct sockaddr_in6 *)out)->sin6_addr) ||
                   same_result(out, *out_len, peer, peer_len));
    }
}

/* A parsed list, as valid ranges, prints back to itself. */
static void
check_list(const struct proxies *p)
{
    char text[PROXIES_MAX * (INET6_ADDRSTRLEN + 8)], err[160];
    struct proxies again;
    size_t off = 0;

    FUZZ_CHECK(p->n <= PROXIES_MAX);
    for (unsigned i = 0; i < p->n; i++) {
        const struct proxies_range *r = &p->range[i];
        unsigned max = r->family == AF_INET ? 32 : 128;
        char addr[INET6_ADDRSTRLEN];
        FUZZ_CHECK(r->family == AF_INET || r->family == AF_INET6);
        FUZZ_CHECK(r->prefix <= max);
        for (unsigned bit = r->prefix; bit < 128; bit++)
            FUZZ_CHECK(!(r->addr[bit / 8] & (0x80 >> (bit % 8))));
        FUZZ_CHECK(inet_ntop(r->family, r->addr, addr, sizeof(addr)) != NULL);
        off += (size_t)snprintf(text + off, sizeof(text) - off, "%s%s/%u", i ? "," : "", addr,
                                r->prefix);
        FUZZ_CHECK(off < sizeof(text));
    }
    text[off] = '\0';
    FUZZ_CHECK(proxies_parse(&again, text, err, sizeof(err)) == 0);
    FUZZ_CHECK(again.n == p->n);
    for (unsigned i = 0; i < p->n; i++) {
        FUZZ_CHECK(again.range[i].family == p->range[i].family);
        FUZZ_CHECK(again.range[i].prefix == p->range[i].prefix);
        FUZZ_CHECK(memcmp(again.range[i].addr, p->range[i].addr, 16) == 0);
    }
}

static void
parse_list(const char *text, struct proxies *p)
{
    char err[160];
    int rc;

    err[0] = 'x';
    rc = proxies_parse(p, text, err, sizeof(err));
    FUZZ_CHECK(rc == 0 || rc == -1);
    if (rc == 0) {
        check_list(p);
    } else {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        FUZZ_CHECK(p->n == 0);
        for (size_t errlen = 1; errlen <= 8; errlen++) {
            char *small = malloc(errlen);
            FUZZ_CHECK(small != NULL);
            FUZZ_CHECK(proxies_parse(p, text, small, errlen) == -1);
            FUZZ_CHECK(memchr(small, '\0', errlen) != NULL);
            free(small);
        }
    }
    if (rc != 0 || p->n == 0)
        FUZZ_CHECK(proxies_parse(p, DEFAULT_LIST, err, sizeof(err)) == 0);
}

/* 1 if the X-Forwarded-For value has an element (it then decides alone). */
static int
has_element(const char *s)
{
    return s != NULL && s[strspn(s, " \t,")] != '\0';
}

static char *
concat(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);

    FUZZ_CHECK(s != NULL);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage peer, other, out, again;
    socklen_t peer_len, other_len, out_len, again_len;
    char *part[3] = {NULL, NULL, NULL};
    const char *xff, *fwd;
    struct proxies p;
    size_t pos = 1;
    int peer_trusted;

    if (size == 0)
        return 0;
    for (int i = 0; i < 3 && pos <= size; i++) {
        const uint8_t *nl = i < 2 ? memchr(data + pos, '\n', size - pos) : NULL;
        size_t n = nl != NULL ? (size_t)(nl - (data + pos)) : size - pos;
        part[i] = copy_part(data + pos, n);
        pos += n + 1;
        if (nl == NULL)
            break;
    }
    parse_list(part[0] != NULL ? part[0] : "", &p);
    xff = part[1];
    fwd = part[2];
    peer_len = peer_of(PEERS[data[0] & 7], &peer);
    peer_trusted = proxies_trusted(&p, (struct sockaddr *)&peer, peer_len);

    client(&p, &peer, peer_len, xff, fwd, &out, &out_len);
    if (!peer_trusted)
        FUZZ_CHECK(same_result(&out, out_len, &peer, peer_len));
    client(&p, &peer, peer_len, NULL, NULL, &again, &again_len);
    FUZZ_CHECK(same_result(&again, again_len, &peer, peer_len));

    /* A peer nobody trusts, whatever the list (a unique-local address
     * outside fd00::/8 unless the list covers it). */
    other_len = peer_of("fc00::77", &other);
    if (!proxies_trusted(&p, (struct sockaddr *)&other, other_len)) {
        client(&p, &other, other_len, xff, fwd, &again, &again_len);
        FUZZ_CHECK(same_result(&again, again_len, &other, other_len));
    }

    if (has_element(xff)) {
        client(&p, &peer, peer_len, xff, NULL, &again, &again_len);
        FUZZ_CHECK(same_result(&again, again_len, &out, out_len));
    }

    /* The client, found: what stands in front of it cannot move it. */
    if (peer_trusted && !proxies_trusted(&p, (struct sockaddr *)&out, out_len)) {
        char *spoofed, *x;
        if (has_element(xff)) {
            /* a client's own X-Forwarded-For, in front of what the trusted
             * chain appended */
            spoofed = concat("6.6.6.6, unknown, ", PEERS[0], ", ");
            x = concat(spoofed, xff, "");
            client(&p, &peer, peer_len, x, fwd, &again, &again_len);
            if (!same_result(&again, again_len, &out, out_len))
                print_result("with a spoofed X-Forwarded-For", &again);
            FUZZ_CHECK(same_result(&again, again_len, &out, out_len));
            free(x);
            /* one more trusted hop */
            x = concat(xff, ", ", PEERS[data[0] & 7]);
            client(&p, &peer, peer_len, x, fwd, &again, &again_len);
            FUZZ_CHECK(same_result(&again, again_len, &out, out_len));
        } else {
            spoofed = concat(
                "for=6.6.6.6;by=\"a, for=7.7.7.7\", for=unknown, for=_x, for=", PEERS[0], ", ");
            x = concat(spoofed, fwd != NULL ? fwd : "", "");
            client(&p, &peer, peer_len, xff, x, &again, &again_len);
            if (!same_result(&again, again_len, &out, out_len))
                print_result("with a spoofed Forwarded", &again);
            FUZZ_CHECK(same_result(&again, again_len, &out, out_len));
        }
        free(x);
        free(spoofed);
    }
    for (int i = 0; i < 3; i++)
        free(part[i]);
    return 0;
}
