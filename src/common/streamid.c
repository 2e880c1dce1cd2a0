#include "streamid.h"

#include <stdio.h>

/* Digits of s[0..len) into *v.  Hand-written rather than strtoull, which
 * skips spaces, takes a sign (and negates "-1" into a huge number) and
 * needs a NUL after the digits. */
static int
streamid_parse_u64(const char *s, size_t len, uint64_t *v)
{
    uint64_t n = 0;

    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned char)s[i] - (unsigned)'0';
        if (d > 9 || n > (UINT64_MAX - d) / 10)
            return -1;
        n = n * 10 + d;
    }
    *v = n;
    return 0;
}

int
streamid_parse(const char *s, size_t len, struct streamid *out)
{
    struct streamid id = {0, 0};
    size_t dash = 0;

    while (dash < len && s[dash] != '-')
        dash++;
    if (streamid_parse_u64(s, dash, &id.ms) != 0)
        return -1;
    /* A second '-' or any other byte after it fails as a non-digit. */
    if (dash < len && streamid_parse_u64(s + dash + 1, len - dash - 1, &id.seq) != 0)
        return -1;
    *out = id;
    return 0;
}

int
streamid_cmp(const struct streamid *a, const struct streamid *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

size_t
streamid_format(const struct streamid *id, char *buf, size_t size)
{
    int n =
        snprintf(buf, size, "%llu-%llu", (unsigned long long)id->ms, (unsigned long long)id->seq);

    if (n < 0 || (size_t)n >= size) {
        if (size > 0)
            buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}
