/*
 * test_proxies: TRUSTED_PROXIES and the client address behind a reverse
 * proxy (X-Forwarded-For, Forwarded).
 *
 * What must hold: the list accepts addresses and CIDRs and refuses
 * anything else with the item named; a peer matches by family and prefix,
 * an IPv4-mapped peer as the IPv4 address it maps; the headers count only
 * when the peer is trusted, and then give the right-most address that is
 * not a trusted proxy, never anything a client wrote left of it; where
 * that element is unusable the answer is the peer; a chain of trusted
 * addresses only gives its left-most.  A randomized run checks the
 * one-pass walk against the rule as written, from the right.
 */
#include "common/proxies.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "test.h"

#define DEFAULT_LIST "10.0.0.0/8, 127.0.0.1, ::1, fd00::/8"

/* ---- helpers ----------------------------------------------------------------- */

static struct proxies
list(const char *text)
{
    struct proxies p;
    char err[160];

    if (proxies_parse(&p, text, err, sizeof(err)) != 0) {
        printf("#   list \"%s\" refused: %s\n", text, err);
        test_failed_checks++;
    }
    return p;
}

/* A peer from "192.0.2.1" or "2001:db8::1", port 0. */
static socklen_t
peer_of(const char *text, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        CHECK_INT(inet_pton(AF_INET, text, &in->sin_addr), 1);
        return sizeof(*in);
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    CHECK_INT(inet_pton(AF_INET6, text, &in6->sin6_addr), 1);
    return sizeof(*in6);
}

static int
trusted(const struct proxies *p, const char *addr)
{
    struct sockaddr_storage ss;
    socklen_t len = peer_of(addr, &ss);

    return proxies_trusted(p, (struct sockaddr *)&ss, len);
}

/* addr is trusted by the list text. */
static int
trusted_in(const char *text, const char *addr)
{
    struct proxies p = list(text);

    return trusted(&p, addr);
}

/* sa as "a.b.c.d", "a.b.c.d:port", "v6" or "[v6]:port" (port 0 left out). */
static const char *
addr_str(const struct sockaddr_storage *sa, socklen_t len, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];

    if (sa->ss_family == AF_INET && len == sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        if (in->sin_port == 0)
            snprintf(buf, size, "%s", text);
        else
            snprintf(buf, size, "%s:%u", text, ntohs(in->sin_port));
    } else if (sa->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        if (in6->sin6_port == 0)
            snprintf(buf, size, "%s", text);
        else
            snprintf(buf, size, "[%s]:%u", text, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "family %d len %u", sa->ss_family, (unsigned)len);
    }
    return buf;
}

/* The client address proxies_client_address gives, as text. */
static const char *
client(const struct proxies *p, const char *peer, const char *xff, const char *fwd)
{
    static char buf[INET6_ADDRSTRLEN + 16];
    struct sockaddr_storage ss, out;
    socklen_t len = peer_of(peer, &ss), out_len = 12345;

    CHECK_INT(proxies_client_address(p, (struct sockaddr *)&ss, len, xff, fwd, &out, &out_len), 0);
    return addr_str(&out, out_len, buf, sizeof(buf));
}

/* proxies_parse refuses text with exactly the message want, and leaves the
 * list empty. */
static void
check_refused(const char *text, const char *want)
{
    struct proxies p;
    char err[160];

    memset(&p, 0xa5, sizeof(p));
    CHECK_INT(proxies_parse(&p, text, err, sizeof(err)), -1);
    CHECK_STR(err, want);
    CHECK_INT(p.n, 0);
}

#define BAD(item) "TRUSTED_PROXIES: '" item "' is not an address or CIDR"

/* ---- TRUSTED_PROXIES ------------------------------------------------------- */

static void
parse_good_lists(void)
{
    struct proxies p = list(DEFAULT_LIST);
    char err[64] = "x";

    CHECK_INT(p.n, 4);
    CHECK_INT(p.range[0].family, AF_INET);
    CHECK_INT(p.range[0].prefix, 8);
    CHECK_INT(p.range[1].prefix, 32); /* a plain address: the whole of it */
    CHECK_INT(p.range[2].family, AF_INET6);
    CHECK_INT(p.range[2].prefix, 128);
    CHECK_INT(p.range[3].prefix, 8);
    /* blanks around items, tabs, no blanks at all */
    CHECK_INT(list(" \t10.0.0.1 ,\t::1\t, 192.168.0.0/16 ").n, 3);
    CHECK_INT(list("10.0.0.1,::1").n, 2);
    /* the edges of prefix lengths */
    p = list("0.0.0.0/0, 192.0.2.1/32, ::/0, 2001:db8::1/128, 2001:db8::/33");
    CHECK_INT(p.n, 5);
    CHECK_INT(p.range[0].prefix, 0);
    CHECK_INT(p.range[1].prefix, 32);
    CHECK_INT(p.range[2].prefix, 0);
    CHECK_INT(p.range[3].prefix, 128);
    CHECK_INT(p.range[4].prefix, 33);
    /* an IPv4-mapped IPv6 item is the IPv4 range it maps */
    p = list("::ffff:10.0.0.0/104, ::ffff:192.0.2.1");
    CHECK_INT(p.range[0].family, AF_INET);
    CHECK_INT(p.range[0].prefix, 8);
    CHECK_INT(p.range[1].family, AF_INET);
    CHECK_INT(p.range[1].prefix, 32);
    /* duplicates are harmless */
    CHECK_INT(list("10.0.0.1, 10.0.0.1").n, 2);
    /* empty, blank or absent: nothing trusted, no error */
    CHECK_INT(proxies_parse(&p, "", err, sizeof(err)), 0);
    CHECK_INT(p.n, 0);
    CHECK_STR(err, "");
    CHECK_INT(proxies_parse(&p, " \t ", err, sizeof(err)), 0);
    CHECK_INT(p.n, 0);
    CHECK_INT(proxies_parse(&p, NULL, NULL, 0), 0);
    CHECK_INT(p.n, 0);
}

static void
parse_bad_items(void)
{
    check_refused("10.0.0.0/33", BAD("10.0.0.0/33"));
    check_refused("::/129", BAD("::/129"));
    check_refused("10.0.0.0/", BAD("10.0.0.0/"));
    check_refused("10.0.0.0/08", BAD("10.0.0.0/08"));
    check_refused("10.0.0.0/-1", BAD("10.0.0.0/-1"));
    check_refused("10.0.0.0/+8", BAD("10.0.0.0/+8"));
    check_refused("10.0.0.0/8x", BAD("10.0.0.0/8x"));
    check_refused("10.0.0.0/8/8", BAD("10.0.0.0/8/8"));
    check_refused("10.0.0.0/ 8", BAD("10.0.0.0/ 8"));
    check_refused("10.0.0.0/1000", BAD("10.0.0.0/1000"));
    check_refused("/8", BAD("/8"));
    check_refused("10.0.0", BAD("10.0.0"));
    check_refused("010.0.0.1", BAD("010.0.0.1"));
    check_refused("10.0.0.256", BAD("10.0.0.256"));
    check_refused("0x0a.0.0.1", BAD("0x0a.0.0.1"));
    check_refused("proxy.example", BAD("proxy.example"));
    check_refused("fe80::1%eth0", BAD("fe80::1%eth0"));
    check_refused("[::1]", BAD("[::1]"));
    check_refused("2001:db8:::1", BAD("2001:db8:::1"));
    check_refused("10.0.0.1 10.0.0.2", BAD("10.0.0.1 10.0.0.2"));
    check_refused("10.0.0.1;10.0.0.2", BAD("10.0.0.1;10.0.0.2"));
    /* the first bad item is named, after good ones */
    check_refused("10.0.0.1, ::1, nope, also-bad", BAD("nope"));
    /* empty items: a stray comma is a typo */
    check_refused("10.0.0.1,", BAD(""));
    check_refused("10.0.0.1, ,::1", BAD(""));
    check_refused(",10.0.0.1", BAD(""));
    /* a long item is cut in the message, whose end survives */
    check_refused("1111111111111111111111111111111111111111111111111111111111111111111111111",
                  BAD("1111111111111111111111111111111111111111111111111111111111111111..."));
}

static void
parse_refuses_host_bits(void)
{
    check_refused("10.1.2.3/8",
                  "TRUSTED_PROXIES: '10.1.2.3/8' has bits set after its prefix (10.0.0.0/8?)");
    check_refused("192.168.1.1/24",
                  "TRUSTED_PROXIES: '192.168.1.1/24' has bits set after its prefix "
                  "(192.168.1.0/24?)");
    check_refused("fd00::1/8", "TRUSTED_PROXIES: 'fd00::1/8' has bits set after its prefix "
                               "(fd00::/8?)");
    check_refused("2001:db8:4000::/33", "TRUSTED_PROXIES: '2001:db8:4000::/33' has bits set after "
                                        "its prefix (2001:db8::/33?)");
    /* a mapped item shorter than /96 would cut into the ffff */
    check_refused("::ffff:10.0.0.0/95",
                  "TRUSTED_PROXIES: '::ffff:10.0.0.0/95' has bits set after its prefix");
    check_refused("::ffff:10.0.0.1/104", "TRUSTED_PROXIES: '::ffff:10.0.0.1/104' has bits set "
                                         "after its prefix (10.0.0.0/8?)");
}

static void
parse_limit_and_small_buffers(void)
{
    char text[64 * 16 + 32], err[160];
    struct proxies p;
    size_t off = 0;

    for (int i = 0; i < PROXIES_MAX; i++)
        off += (size_t)snprintf(text + off, sizeof(text) - off, "%s10.0.%d.1", i ? ", " : "", i);
    CHECK_INT(proxies_parse(&p, text, err, sizeof(err)), 0);
    CHECK_INT(p.n, PROXIES_MAX);
    CHECK(trusted(&p, "10.0.63.1"));
    snprintf(text + off, sizeof(text) - off, ", 10.0.64.1");
    CHECK_INT(proxies_parse(&p, text, err, sizeof(err)), -1);
    CHECK_STR(err, "TRUSTED_PROXIES: more than 64 items");
    CHECK_INT(p.n, 0);
    /* a message always fits its buffer, terminated, however small */
    for (size_t errlen = 1; errlen <= 8; errlen++) {
        char *small = malloc(errlen);
        CHECK_INT(proxies_parse(&p, "nope", small, errlen), -1);
        CHECK(memchr(small, '\0', errlen) != NULL);
        CHECK(strncmp(small, "TRUSTED_PROXIES", errlen - 1) == 0);
        free(small);
    }
    CHECK_INT(proxies_parse(&p, "nope", NULL, 0), -1);
}

/* ---- matching ---------------------------------------------------------------- */

static void
match_ipv4_and_ipv6(void)
{
    struct proxies p = list(DEFAULT_LIST ", 2001:db8::/33, 192.0.2.128/25");

    CHECK(trusted(&p, "10.0.0.0"));
    CHECK(trusted(&p, "10.255.255.255"));
    CHECK(!trusted(&p, "11.0.0.0"));
    CHECK(!trusted(&p, "9.255.255.255"));
    CHECK(trusted(&p, "127.0.0.1"));
    CHECK(!trusted(&p, "127.0.0.2"));
    CHECK(trusted(&p, "192.0.2.128"));
    CHECK(!trusted(&p, "192.0.2.127"));
    CHECK(trusted(&p, "::1"));
    CHECK(!trusted(&p, "::2"));
    CHECK(trusted(&p, "fd00::1"));
    CHECK(trusted(&p, "fdff:ffff::1"));
    CHECK(!trusted(&p, "fc00::1"));
    CHECK(!trusted(&p, "fe00::1"));
    /* /33: the top bit of the third group */
    CHECK(trusted(&p, "2001:db8:7fff::1"));
    CHECK(!trusted(&p, "2001:db8:8000::1"));
    /* families never cross: ::1 is not 0.0.0.1, ::a00:1 not 10.0.0.1 */
    CHECK(!trusted(&p, "::a00:1"));
    CHECK(!trusted_in("0.0.0.1", "::1"));
    /* /0 is everyone of its family, and only of it */
    CHECK(trusted_in("0.0.0.0/0", "203.0.113.7"));
    CHECK(!trusted_in("0.0.0.0/0", "2001:db8::1"));
    CHECK(trusted_in("::/0", "2001:db8::1"));
    CHECK(!trusted_in("::/0", "203.0.113.7"));
    /* nothing trusted */
    CHECK(!trusted_in("", "127.0.0.1"));
    CHECK(!trusted_in("", "::1"));
}

static void
match_mapped(void)
{
    struct proxies p = list("10.0.0.0/8, fd00::/8");

    /* an IPv4 client of a dual-stack listener is that IPv4 client */
    CHECK(trusted(&p, "::ffff:10.1.2.3"));
    CHECK(!trusted(&p, "::ffff:11.1.2.3"));
    /* ::/0 is IPv6 peers, not IPv4 ones in their mapped form */
    CHECK(!trusted_in("::/0", "::ffff:10.1.2.3"));
    CHECK(trusted_in("0.0.0.0/0", "::ffff:203.0.113.7"));
    /* a mapped entry is the IPv4 entry: it matches both forms of the peer */
    CHECK(trusted_in("::ffff:10.0.0.0/104", "10.9.9.9"));
    CHECK(trusted_in("::ffff:10.0.0.0/104", "::ffff:10.9.9.9"));
    CHECK(!trusted_in("::ffff:10.0.0.0/104", "::ffff:11.9.9.9"));
}

static void
match_refuses_other_peers(void)
{
    struct proxies p = list("0.0.0.0/0, ::/0");
    struct sockaddr_storage ss;
    struct sockaddr_un un;
    socklen_t len;

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    CHECK(!proxies_trusted(&p, (struct sockaddr *)&un, sizeof(un)));
    len = peer_of("10.0.0.1", &ss);
    CHECK(proxies_trusted(&p, (struct sockaddr *)&ss, len));
    CHECK(!proxies_trusted(&p, (struct sockaddr *)&ss, len - 1));
    len = peer_of("::1", &ss);
    CHECK(!proxies_trusted(&p, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)));
    CHECK(!proxies_trusted(&p, NULL, 0));
    CHECK(!proxies_trusted(NULL, (struct sockaddr *)&ss, len));
}

/* ---- X-Forwarded-For --------------------------------------------------------- */

static void
xff_rightmost_untrusted(void)
{
    struct proxies p = list(DEFAULT_LIST);

    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7", NULL), "203.0.113.7");
    /* several trusted hops, each appending who it got the request from */
    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7, 10.0.0.2, 10.0.0.3", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "::1", "2001:db8::1, fd00::2, 127.0.0.1", NULL), "2001:db8::1");
    /* two untrusted: the right one is where the trusted chain starts */
    CHECK_STR(client(&p, "10.0.0.1", "198.51.100.1, 203.0.113.7", NULL), "203.0.113.7");
}

static void
xff_spoofed_leftmost_ignored(void)
{
    struct proxies p = list(DEFAULT_LIST);

    /* the client sent "X-Forwarded-For: 1.1.1.1, 10.0.0.9" itself; the
     * proxy appended its real address */
    CHECK_STR(client(&p, "10.0.0.1", "1.1.1.1, 10.0.0.9, 203.0.113.7", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", "127.0.0.1, ::1, 203.0.113.7, 10.0.0.2", NULL), "203.0.113.7");
    /* nor can garbage or "unknown" left of it change anything */
    CHECK_STR(client(&p, "10.0.0.1", "unknown, ???, [, 203.0.113.7", NULL), "203.0.113.7");
}

static void
xff_forms(void)
{
    struct proxies p = list(DEFAULT_LIST);

    /* blanks, tabs, a header repeated and joined */
    CHECK_STR(client(&p, "10.0.0.1", " \t203.0.113.7\t ,  10.0.0.2 ", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", "198.51.100.1,203.0.113.7,10.0.0.2", NULL), "203.0.113.7");
    /* empty elements are skipped, as HTTP lists allow */
    CHECK_STR(client(&p, "10.0.0.1", ", ,203.0.113.7, ,, 10.0.0.2,", NULL), "203.0.113.7");
    /* ports, brackets */
    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7:51000", NULL), "203.0.113.7:51000");
    CHECK_STR(client(&p, "10.0.0.1", "2001:db8::1", NULL), "2001:db8::1");
    CHECK_STR(client(&p, "10.0.0.1", "[2001:db8::1]", NULL), "2001:db8::1");
    CHECK_STR(client(&p, "10.0.0.1", "[2001:db8::1]:4711", NULL), "[2001:db8::1]:4711");
    CHECK_STR(client(&p, "10.0.0.1", "[2001:db8::1]:4711, [fd00::1]:80, 10.0.0.2:1", NULL),
              "[2001:db8::1]:4711");
    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7:0", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7:65535", NULL), "203.0.113.7:65535");
    /* IPv4-mapped: the IPv4 client, and trusted as such */
    CHECK_STR(client(&p, "10.0.0.1", "::ffff:203.0.113.7", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", "203.0.113.7, ::ffff:10.0.0.2", NULL), "203.0.113.7");
    /* a trusted proxy on IPv6 relaying an IPv4 client, and the reverse */
    CHECK_STR(client(&p, "fd00::1", "203.0.113.7, fd00::2", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", "2001:db8::5, 10.0.0.2", NULL), "2001:db8::5");
}

static void
xff_all_trusted_gives_leftmost(void)
{
    struct proxies p = list(DEFAULT_LIST);

    CHECK_STR(client(&p, "10.0.0.1", "10.0.0.5, 10.0.0.6", NULL), "10.0.0.5");
    CHECK_STR(client(&p, "10.0.0.1", "fd00::5, 127.0.0.1, 10.0.0.6", NULL), "fd00::5");
    CHECK_STR(client(&p, "10.0.0.1", "10.0.0.5:1234", NULL), "10.0.0.5:1234");
}

static void
xff_unusable_gives_peer(void)
{
    struct proxies p = list(DEFAULT_LIST);
    static const char *const garbage[] = {
        "unknown",
        "_hidden",
        "garbage",
        "1.2.3",
        "1.2.3.4.5",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:-1",
        "1.2.3.4:8o",
        "1.2.3.4:_obf",
        "[1.2.3.4]",
        "[2001:db8::1",
        "2001:db8::1]",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
        "[]",
        "fe80::1%eth0",
        "\"203.0.113.7\"",
        "203.0.113.7 198.51.100.1",
        "2001:db8::1:4711:1:2:3:4:5",
        "010.0.0.1",
        ":",
        "::::",
        "0x7f000001",
        "203.0.113.7;",
        "1111111111111111111111111111111111111111111111111111111111",
    };

    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        char xff[128];
        CHECK_STR(client(&p, "10.0.0.1", garbage[i], NULL), "10.0.0.1");
        /* right of an untrusted address, it is where the walk stops */
        snprintf(xff, sizeof(xff), "203.0.113.7, %s, 10.0.0.2", garbage[i]);
        CHECK_STR(client(&p, "10.0.0.1", xff, NULL), "10.0.0.1");
        /* left of it, it never matters */
        snprintf(xff, sizeof(xff), "%s, 203.0.113.7, 10.0.0.2", garbage[i]);
        CHECK_STR(client(&p, "10.0.0.1", xff, NULL), "203.0.113.7");
    }
    /* the peer as it came, port and all (here the listener's mapped form) */
    CHECK_STR(client(&p, "::ffff:10.0.0.1", "unknown", NULL), "::ffff:10.0.0.1");
}

static void
xff_long_headers(void)
{
    struct proxies p = list(DEFAULT_LIST);
    size_t n = 20000 * 10 + 64, off;
    char *xff = malloc(n);

    /* no limit on the number of hops: one pass, no list */
    off = (size_t)snprintf(xff, n, "203.0.113.7");
    for (int i = 0; i < 20000; i++)
        off += (size_t)snprintf(xff + off, n - off, ", 10.0.0.2");
    CHECK_STR(client(&p, "10.0.0.1", xff, NULL), "203.0.113.7");
    /* one element far too long for an address */
    memset(xff, '1', n - 1);
    xff[n - 1] = '\0';
    CHECK_STR(client(&p, "10.0.0.1", xff, NULL), "10.0.0.1");
    free(xff);
}

/* ---- Forwarded ----------------------------------------------------------------- */

static void
forwarded_elements(void)
{
    struct proxies p = list(DEFAULT_LIST);

    /* RFC 7239's examples */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=192.0.2.60;proto=http;by=203.0.113.43"),
              "192.0.2.60");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "For=\"[2001:db8:cafe::17]:4711\""),
              "[2001:db8:cafe::17]:4711");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=192.0.2.43, for=198.51.100.17"), "198.51.100.17");
    /* names in any case; blanks around ';', '=' and ',' */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "FOR=192.0.2.60"), "192.0.2.60");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "proto=https ; fOr = 192.0.2.60 ;by=x"), "192.0.2.60");
    /* trusted hops on the right are passed over; spoofed ones on the left
     * never reached */
    CHECK_STR(client(&p, "10.0.0.1", NULL,
                     "for=1.1.1.1, for=10.0.0.9, for=203.0.113.7;proto=https, for=10.0.0.2, "
                     "for=\"[fd00::3]\""),
              "203.0.113.7");
    /* all trusted: the left-most */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=10.0.0.5, for=\"[::1]:99\""), "10.0.0.5");
    /* ports: a number is kept, an obfuscated one is port 0 */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"192.0.2.60:8080\""), "192.0.2.60:8080");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"[2001:db8::1]:_abc-1.x\""), "2001:db8::1");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"192.0.2.60:_p\""), "192.0.2.60");
    /* empty elements and empty pairs */
    CHECK_STR(client(&p, "10.0.0.1", NULL, " , for=203.0.113.7;;, ,"), "203.0.113.7");
    /* IPv4-mapped, folded */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"[::ffff:203.0.113.7]\""), "203.0.113.7");
}

static void
forwarded_quoting(void)
{
    struct proxies p = list(DEFAULT_LIST);

    /* a quoted string may hold ',' and ';': they split nothing */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=203.0.113.7;by=\"x, for=6.6.6.6; y\""),
              "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "ext=\",\", for=203.0.113.7"), "203.0.113.7");
    /* quoted-pairs: the next character as it is */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"\\[2001:db8::1\\]\""), "2001:db8::1");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=203.0.113.7;by=\"a\\\"b, for=6.6.6.6\""),
              "203.0.113.7");
    /* a quoted IPv4 address, and IPv6 left unquoted (not the RFC's, but
     * still the proxy's word) */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=\"203.0.113.7\""), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=[2001:db8::1]:4711"), "[2001:db8::1]:4711");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=2001:db8::1"), "2001:db8::1");
}

static void
forwarded_unusable_gives_peer(void)
{
    struct proxies p = list(DEFAULT_LIST);
    static const char *const bad[] = {
        "for=unknown",
        "for=UNKNOWN",
        "for=\"unknown\"",
        "for=_hidden",
        "for=\"_gazonk\"",
        "for=\"_hidden:_port\"",
        "proto=https",                      /* no for */
        "for=203.0.113.7;for=198.51.100.1", /* two */
        "for=",
        "for=\"\"",
        "for",
        "=203.0.113.7",
        "for 203.0.113.7",
        "for=203.0.113.7 x",
        "for=203.0.113.7\"",
        "for=\"203.0.113.7",   /* unterminated */
        "for=\"203.0.113.7\\", /* and ending in a backslash */
        "for=\"203.0.113.7\"x",
        "f(r=203.0.113.7",
        "for=\"[2001:db8::1]:\"",
        "for=\"[2001:db8::1]:_\"",
        "for=\"[2001:db8::1]:_a b\"",
        "for=\"[192.0.2.1]\"",
        "for=\"1111111111111111111111111111111111111111111111111111111111111111111111\"",
        ";",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char fwd[160];
        CHECK_STR(client(&p, "10.0.0.1", NULL, bad[i]), "10.0.0.1");
        snprintf(fwd, sizeof(fwd), "for=203.0.113.7, %s", bad[i]);
        CHECK_STR(client(&p, "10.0.0.1", NULL, fwd), "10.0.0.1");
    }
    /* behind a trusted hop, as much as right */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=_hidden, for=10.0.0.2"), "10.0.0.1");
    /* left of the client: never reached */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=unknown, for=_x, proto=http, for=203.0.113.7"),
              "203.0.113.7");
    /* a bad pair spoils its element only; the next one is read */
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=6.6.6.6 junk, for=203.0.113.7"), "203.0.113.7");
}

/* ---- choosing the header ---------------------------------------------------- */

static void
untrusted_peer_ignores_headers(void)
{
    struct proxies p = list(DEFAULT_LIST);

    CHECK_STR(client(&p, "203.0.113.9", "198.51.100.1", "for=198.51.100.2"), "203.0.113.9");
    CHECK_STR(client(&p, "2001:db8::9", "10.0.0.2", NULL), "2001:db8::9");
    CHECK_STR(client(&p, "::ffff:203.0.113.9", "198.51.100.1", NULL), "::ffff:203.0.113.9");
    /* nothing trusted at all */
    p = list("");
    CHECK_STR(client(&p, "127.0.0.1", "198.51.100.1", "for=198.51.100.2"), "127.0.0.1");
    CHECK_STR(client(NULL, "127.0.0.1", "198.51.100.1", NULL), "127.0.0.1");
}

static void
headers_absent_or_empty(void)
{
    struct proxies p = list(DEFAULT_LIST);

    CHECK_STR(client(&p, "10.0.0.1", NULL, NULL), "10.0.0.1");
    CHECK_STR(client(&p, "10.0.0.1", "", ""), "10.0.0.1");
    CHECK_STR(client(&p, "::1", " \t", " , "), "::1");
    /* an X-Forwarded-For with no element leaves it to Forwarded */
    CHECK_STR(client(&p, "10.0.0.1", " , ,", "for=203.0.113.7"), "203.0.113.7");
    CHECK_STR(client(&p, "10.0.0.1", NULL, "for=203.0.113.7"), "203.0.113.7");
}

static void
xff_decides_alone(void)
{
    struct proxies p = list(DEFAULT_LIST);

    CHECK_STR(client(&p, "10.0.0.1", "198.51.100.1", "for=203.0.113.7"), "198.51.100.1");
    /* even when it says nothing usable */
    CHECK_STR(client(&p, "10.0.0.1", "unknown", "for=203.0.113.7"), "10.0.0.1");
    CHECK_STR(client(&p, "10.0.0.1", "10.0.0.5", "for=203.0.113.7"), "10.0.0.5");
}

static void
peer_refused_and_mapped(void)
{
    struct proxies p = list(DEFAULT_LIST);
    struct sockaddr_storage out, ss;
    struct sockaddr_un un;
    socklen_t out_len = 99, len;

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    CHECK_INT(proxies_client_address(&p, (struct sockaddr *)&un, sizeof(un), "203.0.113.7", NULL,
                                     &out, &out_len),
              -1);
    CHECK_INT(out_len, 0);
    CHECK_INT(out.ss_family, 0);
    len = peer_of("10.0.0.1", &ss);
    CHECK_INT(
        proxies_client_address(&p, (struct sockaddr *)&ss, len - 1, NULL, NULL, &out, &out_len),
        -1);
    CHECK_INT(proxies_client_address(&p, NULL, 0, NULL, NULL, &out, &out_len), -1);
    /* a trusted proxy reaching a dual-stack listener over IPv4 */
    CHECK_STR(client(&p, "::ffff:10.0.0.1", "203.0.113.7", NULL), "203.0.113.7");
    CHECK_STR(client(&p, "::ffff:127.0.0.1", "2001:db8::1", NULL), "2001:db8::1");
    /* the peer's port survives when it is the answer */
    len = peer_of("10.0.0.1", &ss);
    ((struct sockaddr_in *)&ss)->sin_port = htons(40000);
    CHECK_INT(
        proxies_client_address(&p, (struct sockaddr *)&ss, sizeof(ss), NULL, NULL, &out, &out_len),
        0);
    CHECK_INT(out_len, sizeof(struct sockaddr_in));
    CHECK(memcmp(&out, &ss, sizeof(struct sockaddr_in)) == 0);
}

/* ---- randomized: the one-pass walk against the rule from the right ----------- */

/* An element as X-Forwarded-For and Forwarded write it, and what it is. */
struct hop {
    const char *xff, *fwd; /* fwd: the value of for= */
    const char *addr;      /* as client() prints it; NULL: unusable */
    int trusted;
};

static const struct hop hops[] = {
    {"10.0.0.2", "10.0.0.2", "10.0.0.2", 1},
    {"10.0.0.3:8080", "\"10.0.0.3:8080\"", "10.0.0.3:8080", 1},
    {"::1", "\"[::1]\"", "::1", 1},
    {"[fd00::7]:443", "\"[fd00::7]:443\"", "[fd00::7]:443", 1},
    {"::ffff:127.0.0.1", "\"[::ffff:127.0.0.1]\"", "127.0.0.1", 1},
    {"203.0.113.7", "203.0.113.7", "203.0.113.7", 0},
    {"198.51.100.1:5000", "\"198.51.100.1:5000\"", "198.51.100.1:5000", 0},
    {"[2001:db8::1]:4711", "\"[2001:db8::1]:4711\"", "[2001:db8::1]:4711", 0},
    {"2001:db8::2", "\"2001:db8::2\"", "2001:db8::2", 0},
    {"::ffff:192.0.2.9", "\"[::ffff:192.0.2.9]\"", "192.0.2.9", 0},
    {"unknown", "unknown", NULL, 0},
    {"1.2.3", "\"1.2.3\"", NULL, 0},
    {"_hidden", "_hidden", NULL, 0},
    {"[10.0.0.2]", "\"[10.0.0.2]\"", NULL, 0},
};
#define NHOPS (sizeof(hops) / sizeof(hops[0]))

static const char *const seps[] = {",", ", ", " ,\t", ",, ", " , , "};
static const char *const pre_params[] = {"", "proto=https;", "by=\"a,b;c\"; ", "host=x.example;"};
static const char *const post_params[] = {"", ";proto=http", " ; by=_p", ";ext=\"q\\\"r, s\""};

static unsigned
rnd(uint64_t *state, unsigned n)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (unsigned)((*state >> 33) % n);
}

static void
randomized_against_model(void)
{
    struct proxies p = list(DEFAULT_LIST);
    uint64_t state = 20240611;
    int mismatches = 0;

    for (int round = 0; round < 20000 && mismatches < 5; round++) {
        unsigned n = 1 + rnd(&state, 8), pick[8];
        char xff[512] = "", fwd[1024] = "";
        const char *want = "10.0.0.1";
        size_t xo = 0, fo = 0;

        for (unsigned i = 0; i < n; i++) {
            const char *sep = i ? seps[rnd(&state, 5)] : "";
            pick[i] = rnd(&state, NHOPS);
            xo += (size_t)snprintf(xff + xo, sizeof(xff) - xo, "%s%s", sep, hops[pick[i]].xff);
            fo += (size_t)snprintf(fwd + fo, sizeof(fwd) - fo, "%s%sfor=%s%s", sep,
                                   pre_params[rnd(&state, 4)], hops[pick[i]].fwd,
                                   post_params[rnd(&state, 4)]);
        }
        /* the rule as written: from the right, past trusted addresses; an
         * unusable element gives the peer; all trusted, the left-most */
        for (unsigned i = n; i-- > 0;) {
            const struct hop *h = &hops[pick[i]];
            if (h->addr == NULL) {
                want = "10.0.0.1";
                break;
            }
            want = h->addr;
            if (!h->trusted)
                break;
        }
        const char *got_xff = client(&p, "10.0.0.1", xff, NULL);
        if (strcmp(got_xff, want) != 0) {
            printf("#   X-Forwarded-For: %s -> %s, want %s\n", xff, got_xff, want);
            mismatches++;
        }
        const char *got_fwd = client(&p, "10.0.0.1", NULL, fwd);
        if (strcmp(got_fwd, want) != 0) {
            printf("#   Forwarded: %s -> %s, want %s\n", fwd, got_fwd, want);
            mismatches++;
        }
    }
    CHECK_INT(mismatches, 0);
}

TEST_MAIN(TEST(parse_good_lists), TEST(parse_bad_items), TEST(parse_refuses_host_bits),
          TEST(parse_limit_and_small_buffers), TEST(match_ipv4_and_ipv6), TEST(match_mapped),
          TEST(match_refuses_other_peers), TEST(xff_rightmost_untrusted),
          TEST(xff_spoofed_leftmost_ignored), TEST(xff_forms), TEST(xff_all_trusted_gives_leftmost),
          TEST(xff_unusable_gives_peer), TEST(xff_long_headers), TEST(forwarded_elements),
          TEST(forwarded_quoting), TEST(forwarded_unusable_gives_peer),
          TEST(untrusted_peer_ignores_headers), TEST(headers_absent_or_empty),
          TEST(xff_decides_alone), TEST(peer_refused_and_mapped), TEST(randomized_against_model))
