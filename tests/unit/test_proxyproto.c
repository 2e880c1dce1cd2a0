/*
 * test_proxyproto: the PROXY protocol header, v1 and v2.
 *
 * A worker trusts the address in this header instead of the peer's, so a
 * header that is not exactly what the spec allows must be refused, and one
 * that is must give back its addresses and its exact length (the bytes
 * after it are the client's and must not be eaten).  A caller waits for
 * more bytes on NEED_MORE, so every prefix of a valid header must say
 * NEED_MORE, and a malformed header must not: across the prefixes of any
 * input the answers go NEED_MORE... then stay on one final answer.
 */
#include "common/proxyproto.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "test.h"

static const unsigned char v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                         0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Parse buf[0..len) from an exactly sized heap copy, so that valgrind and
 * ASan see any read past len. */
static enum proxyproto_result
parse(const void *buf, size_t len, struct proxyproto_header *h, char *err, size_t errlen)
{
    unsigned char *copy = calloc(1, len ? len : 1);
    enum proxyproto_result r;

    memcpy(copy, buf, len);
    r = proxyproto_parse(copy, len, h, err, errlen);
    free(copy);
    return r;
}

static enum proxyproto_result
parse_str(const char *s, struct proxyproto_header *h)
{
    char err[128];

    return parse(s, strlen(s), h, err, sizeof(err));
}

/* The address and port of sa as "a.b.c.d:p" / "[v6]:p". */
static const char *
addr_str(const struct sockaddr_storage *sa, socklen_t len, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];

    if (sa->ss_family == AF_INET && len == sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
        snprintf(buf, size, "%s:%u", text, ntohs(in->sin_port));
    } else if (sa->ss_family == AF_INET6 && len == sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
        snprintf(buf, size, "[%s]:%u", text, ntohs(in6->sin6_port));
    } else {
        snprintf(buf, size, "family %d len %u", sa->ss_family, (unsigned)len);
    }
    return buf;
}

#define CHECK_ADDRS(h, want_src, want_dst)                                                         \
    do {                                                                                           \
        char test_s_[80], test_d_[80];                                                             \
        CHECK_INT((h)->local, 0);                                                                  \
        CHECK_STR(addr_str(&(h)->src, (h)->src_len, test_s_, sizeof(test_s_)), want_src);          \
        CHECK_STR(addr_str(&(h)->dst, (h)->dst_len, test_d_, sizeof(test_d_)), want_dst);          \
    } while (0)

/* Over the prefixes of buf[0..len): NEED_MORE, then from some length on
 * always the same final answer (with the same header_len if OK).  Returns
 * that answer for the whole buffer. */
static enum proxyproto_result
check_prefixes(const void *buf, size_t len, int line)
{
    enum proxyproto_result first = PROXYPROTO_NEED_MORE;
    size_t first_at = 0, first_hlen = 0;
    struct proxyproto_header h;
    char err[128];

    for (size_t n = 0; n <= len; n++) {
        enum proxyproto_result r = parse(buf, n, &h, err, sizeof(err));
        if (first == PROXYPROTO_NEED_MORE && r != PROXYPROTO_NEED_MORE) {
            first = r;
            first_at = n;
            first_hlen = h.header_len;
            if (r == PROXYPROTO_INVALID && err[0] == '\0') {
                printf("#   line %d: INVALID without a reason at %zu bytes\n", line, n);
                test_failed_checks++;
            }
            if (r == PROXYPROTO_OK && h.header_len != n) {
                printf("#   line %d: OK at %zu bytes, header_len %zu\n", line, n, h.header_len);
                test_failed_checks++;
            }
        } else if (r != first || (r == PROXYPROTO_OK && h.header_len != first_hlen)) {
            printf("#   line %d: %d at %zu bytes, %d at %zu\n", line, (int)first, first_at, (int)r,
                   n);
            test_failed_checks++;
            return r;
        }
        if (n >= PROXYPROTO_MAX_HEADER && r == PROXYPROTO_NEED_MORE) {
            printf("#   line %d: NEED_MORE at %zu bytes\n", line, n);
            test_failed_checks++;
        }
    }
    return first;
}

#define CHECK_PREFIXES_STR(s, want) CHECK_INT(check_prefixes(s, strlen(s), __LINE__), want)

/* ---- v1 -------------------------------------------------------------------- */

static void
test_v1_tcp4(void)
{
    static const char line[] = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    struct proxyproto_header h;

    CHECK_INT(parse_str(line, &h), PROXYPROTO_OK);
    CHECK_INT(h.header_len, strlen(line));
    CHECK_ADDRS(&h, "192.168.0.1:56324", "192.168.0.11:443");
    /* The spec's longest TCP4 line, 56 bytes, and the smallest values. */
    CHECK_INT(parse_str("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &h),
              PROXYPROTO_OK);
    CHECK_INT(h.header_len, 56);
    CHECK_ADDRS(&h, "255.255.255.255:65535", "255.255.255.255:65535");
    CHECK_INT(parse_str("PROXY TCP4 0.0.0.0 10.0.0.1 0 0\r\n", &h), PROXYPROTO_OK);
    CHECK_ADDRS(&h, "0.0.0.0:0", "10.0.0.1:0");
}

static void
test_v1_tcp6(void)
{
    static const char longest[] = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                  "FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF:FFFF 65535 65535\r\n";
    struct proxyproto_header h;

    CHECK_INT(parse_str("PROXY TCP6 2001:db8::1 2001:db8::2 40000 8443\r\n", &h), PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[2001:db8::1]:40000", "[2001:db8::2]:8443");
    CHECK_INT(parse_str(longest, &h), PROXYPROTO_OK);
    CHECK_INT(h.header_len, 104);
    CHECK_ADDRS(&h, "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
                "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    CHECK_INT(parse_str("PROXY TCP6 :: ::1 1 2\r\n", &h), PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[::]:1", "[::1]:2");
    CHECK_INT(parse_str("PROXY TCP6 1:2:3:4:5:6:7:: 0:0:0:0:0:0:0:0 1 2\r\n", &h), PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[1:2:3:4:5:6:7:0]:1", "[::]:2");
    CHECK_INT(parse_str("PROXY TCP6 0001:db8:0:0:0:0:0:1 ::ffff:102:304 1 2\r\n", &h),
              PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[1:db8::1]:1", "[::ffff:1.2.3.4]:2");
    /* An IPv4 client of a dual-stack proxy, as inet_ntop prints it. */
    CHECK_INT(parse_str("PROXY TCP6 ::ffff:192.0.2.1 ::ffff:198.51.100.7 51000 443\r\n", &h),
              PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[::ffff:192.0.2.1]:51000", "[::ffff:198.51.100.7]:443");
    CHECK_INT(parse_str("PROXY TCP6 1:2:3:4:5:6:1.2.3.4 1::0.0.0.0 1 2\r\n", &h), PROXYPROTO_OK);
    CHECK_ADDRS(&h, "[1:2:3:4:5:6:102:304]:1", "[1::]:2");
    /* The longest such address fits once; twice is over 107 bytes. */
    CHECK_INT(parse_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 ::1 65535 "
                        "65535\r\n",
                        &h),
              PROXYPROTO_OK);
    CHECK_INT(parse_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 "
                        "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255 65535 65535\r\n",
                        &h),
              PROXYPROTO_INVALID);
}

static void
test_v1_unknown(void)
{
    static const char worst[] = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    struct proxyproto_header h;

    CHECK_INT(parse_str("PROXY UNKNOWN\r\n", &h), PROXYPROTO_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.header_len, 15);
    CHECK_INT(h.src_len, 0);
    CHECK_INT(h.dst_len, 0);
    /* The spec's worst case, 107 bytes: the rest of the line is ignored. */
    CHECK_INT(strlen(worst), PROXYPROTO_V1_MAX);
    CHECK_INT(parse_str(worst, &h), PROXYPROTO_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.header_len, PROXYPROTO_V1_MAX);
    /* Ignored means ignored: not even well-formed. */
    CHECK_INT(parse_str("PROXY UNKNOWN whatever\tit is \r \n\r\n", &h), PROXYPROTO_OK);
    CHECK_INT(h.header_len, strlen("PROXY UNKNOWN whatever\tit is \r \n\r\n"));
}

static void
test_v1_prefixes(void)
{
    static const char *const lines[] = {
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0 65535\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 40000 8443\r\n",
        "PROXY TCP6 :: 1:2:3:4:5:6:7:8 1 2\r\n",
        "PROXY TCP6 a:: ::b 10 20\r\n",
        "PROXY TCP6 ::ffff:10.0.0.1 1:2:3:4:5:6:7.8.9.10 10 20\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN x y z\r\n",
    };
    struct proxyproto_header h;
    char err[128];

    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        size_t len = strlen(lines[i]);
        for (size_t n = 0; n < len; n++) {
            enum proxyproto_result r = parse(lines[i], n, &h, err, sizeof(err));
            if (r != PROXYPROTO_NEED_MORE) {
                printf("#   \"%.*s\": %d, want NEED_MORE (%s)\n", (int)n, lines[i], (int)r, err);
                test_failed_checks++;
            }
            CHECK_INT(h.header_len, 0);
        }
        CHECK_PREFIXES_STR(lines[i], PROXYPROTO_OK);
    }
}

static void
test_v1_malformed(void)
{
    static const char *const bad[] = {
        "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", /* double spaces, each place */
        "PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
        " PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", /* ports */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 99999 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 100000 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 00 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 0x1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1a 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
        "PROXY TCP4 256.2.3.4 5.6.7.8 1 2\r\n", /* IPv4 */
        "PROXY TCP4 1.2.3.4 5.6.7.300 1 2\r\n",
        "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.04 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1..3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3. 5.6.7.8 1 2\r\n",
        "PROXY TCP4 .1.2.3 5.6.7.8 1 2\r\n",
        "PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4 1.2.3.4 ::1 1 2\r\n", /* families mixed */
        "PROXY TCP6 ::1 1.2.3.4 1 2\r\n",
        "PROXY TCP4 ::1 ::2 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3 ::1 1 2\r\n", /* IPv6 */
        "PROXY TCP6 ::ffff:1.2.3.4.5 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3.256 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:1.2.3.4:1 ::1 1 2\r\n",
        "PROXY TCP6 :1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 1::2:3:4:5:6:1.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::ffff:a.2.3.4 ::1 1 2\r\n",
        "PROXY TCP6 ::: ::1 1 2\r\n",
        "PROXY TCP6 1::2::3 ::1 1 2\r\n",
        "PROXY TCP6 :1 ::1 1 2\r\n",
        "PROXY TCP6 1: ::1 1 2\r\n",
        "PROXY TCP6 12345:: ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n",
        "PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2\r\n",
        "PROXY TCP6 1::2:3:4:5:6:7:8 ::1 1 2\r\n",
        "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n",
        "PROXY TCP6 [::1] ::1 1 2\r\n",
        "PROXY TCP6 g::1 ::1 1 2\r\n",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", /* line ends */
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n",
        "PROXY UNKNOWN\rX\r\n",
        "PROXY UNKNOWN\n",
        "PROXY UNKNOWNX\r\n", /* protocols */
        "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP4\r\n",
        "PROXY \r\n",
        "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "GET / HTTP/1.1\r\n",
    };
    struct proxyproto_header h;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum proxyproto_result r = parse_str(bad[i], &h);
        if (r != PROXYPROTO_INVALID) {
            printf("#   \"%s\": %d, want INVALID\n", bad[i], (int)r);
            test_failed_checks++;
        }
        CHECK_INT(h.header_len, 0);
        CHECK_INT(h.src_len, 0);
        CHECK_PREFIXES_STR(bad[i], PROXYPROTO_INVALID);
    }
}

static void
test_v1_invalid_early(void)
{
    /* Refused as soon as the bytes cannot lead to a header: a caller never
     * waits for a CRLF that cannot help. */
    static const char *const early[] = {
        "G",
        "PROXZ",
        "PROXY X",
        "PROXY TCP4 256",
        "PROXY TCP4 01",
        "PROXY TCP4 1.2.3.4.",
        "PROXY TCP4 1.2.3.4 5.6.7.8 00",
        "PROXY TCP4 1.2.3.4 5.6.7.8 65536",
        "PROXY TCP4 1.2.3.4 5.6.7.8 655350",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX",
        "PROXY TCP6 :::",
        "PROXY TCP6 :1",
        "PROXY TCP6 1:2:3:4:5:6:7:8:",
        "PROXY TCP6 1::2:3:4:5:6:7:",
        "PROXY TCP6 ::ffff:1.2.3.4.",
        "PROXY TCP6 ::ffff:1.2.3.4:",
        "PROXY TCP6 1:2:1.",
        "PROXY TCP6 ::ffff:1.2a",
        "PROXY UNKNOWNX",
    };
    /* One byte short of each of the last few: still a possible header. */
    static const char *const wait[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 0",
        "PROXY TCP4 1.2.3.4 5.6.7.8 6553",
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r",
        "PROXY TCP6 ::",
        "PROXY TCP6 1:2:3:4:5:6:7:",
        "PROXY TCP6 1::2:3:4:5:6:",
        "PROXY TCP6 ::ffff:1",
        "PROXY TCP6 ::ffff:1.",
        "PROXY TCP6 ::ffff:1.2.3.4",
        "PROXY TCP6 1:2:3:4:5:6:1.",
        "PROXY UNKNOWN",
    };
    struct proxyproto_header h;

    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        enum proxyproto_result r = parse_str(early[i], &h);
        if (r != PROXYPROTO_INVALID) {
            printf("#   \"%s\": %d, want INVALID\n", early[i], (int)r);
            test_failed_checks++;
        }
    }
    for (size_t i = 0; i < sizeof(wait) / sizeof(wait[0]); i++) {
        enum proxyproto_result r = parse_str(wait[i], &h);
        if (r != PROXYPROTO_NEED_MORE) {
            printf("#   \"%s\": %d, want NEED_MORE\n", wait[i], (int)r);
            test_failed_checks++;
        }
    }
}

static void
test_v1_length_bound(void)
{
    char line[PROXYPROTO_V1_MAX + 8];
    struct proxyproto_header h;
    size_t head = strlen("PROXY UNKNOWN ");

    /* No CRLF in 107 bytes: invalid, at 107 bytes and beyond. */
    memcpy(line, "PROXY UNKNOWN ", head);
    memset(line + head, 'x', sizeof(line) - head);
    CHECK_INT(parse(line, PROXYPROTO_V1_MAX - 1, &h, NULL, 0), PROXYPROTO_NEED_MORE);
    CHECK_INT(parse(line, PROXYPROTO_V1_MAX, &h, NULL, 0), PROXYPROTO_INVALID);
    CHECK_INT(parse(line, sizeof(line), &h, NULL, 0), PROXYPROTO_INVALID);
    /* A CRLF that ends at byte 107 is in; one byte later is not. */
    memcpy(line + PROXYPROTO_V1_MAX - 2, "\r\n", 2);
    CHECK_INT(parse(line, sizeof(line), &h, NULL, 0), PROXYPROTO_OK);
    CHECK_INT(h.header_len, PROXYPROTO_V1_MAX);
    memset(line + head, 'x', sizeof(line) - head);
    memcpy(line + PROXYPROTO_V1_MAX - 1, "\r\n", 2);
    CHECK_INT(parse(line, sizeof(line), &h, NULL, 0), PROXYPROTO_INVALID);
    /* The CR as byte 107, its LF beyond: invalid too. */
    CHECK_INT(parse(line, PROXYPROTO_V1_MAX, &h, NULL, 0), PROXYPROTO_INVALID);
}

/* ---- v2 -------------------------------------------------------------------- */

/* A v2 header: signature, ver_cmd, fam, length of block, then block. */
static size_t
v2_build(unsigned char *out, unsigned ver_cmd, unsigned fam, const void *block, size_t block_len,
         size_t len_field)
{
    memcpy(out, v2_sig, sizeof(v2_sig));
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(len_field >> 8);
    out[15] = (unsigned char)len_field;
    if (block_len > 0)
        memcpy(out + 16, block, block_len);
    return 16 + block_len;
}

/* 192.0.2.1:51000 -> 198.51.100.7:443 */
static const unsigned char v2_ipv4_block[12] = {192, 0, 2,    1,    198,  51,
                                                100, 7, 0xc7, 0x38, 0x01, 0xbb};

/* [2001:db8::1]:51000 -> [2001:db8::2]:8443 */
static const unsigned char v2_ipv6_block[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    1,    0x20, 0x01,
    0x0d, 0xb8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0xc7, 0x38, 0x20, 0xfb,
};

static void
test_v2_ipv4(void)
{
    unsigned char buf[64];
    struct proxyproto_header h;
    char err[128];
    size_t n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, 12);

    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, 28);
    CHECK_ADDRS(&h, "192.0.2.1:51000", "198.51.100.7:443");
    CHECK_INT(check_prefixes(buf, n, __LINE__), PROXYPROTO_OK);
}

static void
test_v2_ipv6(void)
{
    unsigned char buf[64];
    struct proxyproto_header h;
    char err[128];
    size_t n = v2_build(buf, 0x21, 0x21, v2_ipv6_block, 36, 36);

    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, 52);
    CHECK_ADDRS(&h, "[2001:db8::1]:51000", "[2001:db8::2]:8443");
    CHECK_INT(check_prefixes(buf, n, __LINE__), PROXYPROTO_OK);
}

static void
test_v2_tlvs(void)
{
    /* ALPN "h2", an empty NOOP, an AWS-style 0xEA TLV: all skipped. */
    static const unsigned char tlvs[] = {0x01, 0x00, 0x02, 'h', '2', 0x04, 0x00, 0x00, 0xea, 0x00,
                                         0x08, 0x01, 'v',  'p', 'c', 'e',  '-',  '1',  '2'};
    unsigned char block[12 + sizeof(tlvs)], buf[128];
    struct proxyproto_header h;
    char err[128];
    size_t n;

    memcpy(block, v2_ipv4_block, 12);
    memcpy(block + 12, tlvs, sizeof(tlvs));
    n = v2_build(buf, 0x21, 0x11, block, 12 + sizeof(tlvs), 12 + sizeof(tlvs));
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, n);
    CHECK_ADDRS(&h, "192.0.2.1:51000", "198.51.100.7:443");
    CHECK_INT(check_prefixes(buf, n, __LINE__), PROXYPROTO_OK);

    /* A TLV longer than what the length leaves, found from its own three
     * bytes on, before the rest arrives. */
    n = v2_build(buf, 0x21, 0x11, block, 12 + 3, 12 + 5);
    buf[16 + 12 + 2] = 3; /* ALPN of 3 bytes in a 2-byte room */
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    CHECK_INT(check_prefixes(buf, n, __LINE__), PROXYPROTO_INVALID);
    /* One or two bytes left after the last TLV: not a TLV. */
    n = v2_build(buf, 0x21, 0x11, block, 12 + 5 + 1, 12 + 5 + 1);
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    n = v2_build(buf, 0x21, 0x11, block, 12 + 5 + 2, 12 + 5 + 2);
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    /* IPv6 with the same TLVs. */
    {
        unsigned char block6[36 + sizeof(tlvs)];
        memcpy(block6, v2_ipv6_block, 36);
        memcpy(block6 + 36, tlvs, sizeof(tlvs));
        n = v2_build(buf, 0x21, 0x21, block6, sizeof(block6), sizeof(block6));
        CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
        CHECK_INT(h.header_len, n);
        CHECK_ADDRS(&h, "[2001:db8::1]:51000", "[2001:db8::2]:8443");
    }
}

static void
test_v2_local(void)
{
    unsigned char buf[64];
    struct proxyproto_header h;
    char err[128];
    size_t n;

    /* LOCAL, UNSPEC, no block: a health check. */
    n = v2_build(buf, 0x20, 0x00, NULL, 0, 0);
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.header_len, 16);
    CHECK_INT(h.src_len, 0);
    /* LOCAL with addresses and TLVs: the block is skipped, whatever it says
     * (the spec: receivers must not assume zero for LOCAL). */
    n = v2_build(buf, 0x20, 0x11, v2_ipv4_block, 12, 12);
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.header_len, 28);
    CHECK_INT(h.src_len, 0);
    CHECK_INT(check_prefixes(buf, n, __LINE__), PROXYPROTO_OK);
    n = v2_build(buf, 0x20, 0x31, "\x01\x00\x05xyz", 6, 6);
    CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.local, 1);
    CHECK_INT(h.header_len, 22);
}

static void
test_v2_refused(void)
{
    static const struct {
        unsigned ver_cmd, fam;
        size_t len;
        const char *what;
    } bad[] = {
        {0x11, 0x11, 12, "version 1"},
        {0x31, 0x11, 12, "version 3"},
        {0x01, 0x11, 12, "version 0"},
        {0x22, 0x11, 12, "command 2"},
        {0x2f, 0x11, 12, "command 15"},
        {0x21, 0x31, 216, "UNIX stream"},
        {0x21, 0x32, 216, "UNIX dgram"},
        {0x21, 0x12, 12, "UDP over IPv4"},
        {0x21, 0x22, 36, "UDP over IPv6"},
        {0x21, 0x00, 0, "PROXY with UNSPEC"},
        {0x21, 0x13, 12, "transport 3"},
        {0x21, 0x41, 12, "family 4"},
        {0x20, 0x41, 0, "LOCAL, family 4"},
        {0x20, 0x10, 0, "LOCAL, transport 0 with AF_INET"},
        {0x21, 0x11, 11, "IPv4 in 11 bytes"},
        {0x21, 0x21, 35, "IPv6 in 35 bytes"},
        {0x21, 0x21, 12, "IPv6 in IPv4's length"},
    };
    unsigned char block[256] = {0}, buf[512];
    struct proxyproto_header h;
    char err[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = v2_build(buf, bad[i].ver_cmd, bad[i].fam, block, bad[i].len, bad[i].len);
        enum proxyproto_result r = parse(buf, n, &h, err, sizeof(err));
        if (r != PROXYPROTO_INVALID) {
            printf("#   %s: %d, want INVALID\n", bad[i].what, (int)r);
            test_failed_checks++;
        }
        /* All of these are known from the first 16 bytes. */
        CHECK_INT(parse(buf, 16, &h, err, sizeof(err)), PROXYPROTO_INVALID);
        CHECK(err[0] != '\0');
    }
    /* A signature that is wrong in any byte. */
    for (size_t i = 0; i < sizeof(v2_sig); i++) {
        size_t n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, 12);
        buf[i] ^= 0x20;
        CHECK_INT(parse(buf, n, &h, err, sizeof(err)), PROXYPROTO_INVALID);
        CHECK_INT(parse(buf, i + 1, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    }
}

static void
test_v2_length_bound(void)
{
    static unsigned char buf[16 + 65535];
    struct proxyproto_header h;
    char err[128];
    size_t n;

    /* Overflowing lengths are refused from the 16 fixed bytes on, however
     * much follows. */
    memset(buf, 0, sizeof(buf));
    n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, 65535);
    CHECK_INT(parse(buf, 16, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    CHECK_INT(parse(buf, sizeof(buf), &h, err, sizeof(err)), PROXYPROTO_INVALID);
    n = v2_build(buf, 0x20, 0x00, NULL, 0, PROXYPROTO_V2_MAX_DATA + 1);
    CHECK_INT(parse(buf, 16, &h, err, sizeof(err)), PROXYPROTO_INVALID);
    /* The largest accepted: 520 bytes after the fixed 16, one NOOP TLV
     * filling what the addresses leave. */
    n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, PROXYPROTO_V2_MAX_DATA);
    buf[n] = 0x04;
    buf[n + 1] = (unsigned char)((PROXYPROTO_V2_MAX_DATA - 12 - 3) >> 8);
    buf[n + 2] = (unsigned char)(PROXYPROTO_V2_MAX_DATA - 12 - 3);
    CHECK_INT(parse(buf, PROXYPROTO_MAX_HEADER - 1, &h, err, sizeof(err)), PROXYPROTO_NEED_MORE);
    CHECK_INT(parse(buf, PROXYPROTO_MAX_HEADER, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, PROXYPROTO_MAX_HEADER);
    CHECK_ADDRS(&h, "192.0.2.1:51000", "198.51.100.7:443");
}

/* ---- both -------------------------------------------------------------------- */

static void
test_application_bytes_follow(void)
{
    static const char req[] = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char *const v1[] = {
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n",
        "PROXY TCP6 ::1 ::2 1 2\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN 1.2.3.4\r\n",
    };
    unsigned char buf[256];
    struct proxyproto_header h;
    char err[128];
    size_t n;

    for (size_t i = 0; i < sizeof(v1) / sizeof(v1[0]); i++) {
        n = strlen(v1[i]);
        memcpy(buf, v1[i], n);
        memcpy(buf + n, req, sizeof(req) - 1);
        CHECK_INT(parse(buf, n + sizeof(req) - 1, &h, err, sizeof(err)), PROXYPROTO_OK);
        CHECK_INT(h.header_len, n);
        /* The request's CRLFs are not the header's. */
        CHECK_INT(parse(buf, n + 5, &h, err, sizeof(err)), PROXYPROTO_OK);
        CHECK_INT(h.header_len, n);
    }
    n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, 12);
    memcpy(buf + n, req, sizeof(req) - 1);
    CHECK_INT(parse(buf, n + sizeof(req) - 1, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, 28);
    /* Application bytes that happen to look like more TLVs are not read. */
    n = v2_build(buf, 0x21, 0x11, v2_ipv4_block, 12, 12);
    memcpy(buf + n, "\x04\xff\xff", 3);
    CHECK_INT(parse(buf, n + 3, &h, err, sizeof(err)), PROXYPROTO_OK);
    CHECK_INT(h.header_len, 28);
}

static void
test_not_a_header(void)
{
    static const struct {
        const char *bytes;
        size_t len;
    } starts[] = {
        {"\x16\x03\x01", 3},      /* TLS */
        {"GET ", 4},              /* HTTP without the proxy */
        {"\r\n\r\n\x00\r\nX", 8}, /* v2 signature, wrong at byte 8 */
        {"\x00", 1},
        {"p", 1},
    };
    struct proxyproto_header h;
    char err[8];

    CHECK_INT(parse("", 0, &h, err, sizeof(err)), PROXYPROTO_NEED_MORE);
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        CHECK_INT(parse(starts[i].bytes, starts[i].len, &h, err, sizeof(err)), PROXYPROTO_INVALID);
        /* A short buffer holds a cut reason, still terminated. */
        CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
    }
    /* No reason buffer at all. */
    CHECK_INT(parse("GET", 3, &h, NULL, 0), PROXYPROTO_INVALID);
}

TEST_MAIN(TEST(test_v1_tcp4), TEST(test_v1_tcp6), TEST(test_v1_unknown), TEST(test_v1_prefixes),
          TEST(test_v1_malformed), TEST(test_v1_invalid_early), TEST(test_v1_length_bound),
          TEST(test_v2_ipv4), TEST(test_v2_ipv6), TEST(test_v2_tlvs), TEST(test_v2_local),
          TEST(test_v2_refused), TEST(test_v2_length_bound), TEST(test_application_bytes_follow),
          TEST(test_not_a_header))
