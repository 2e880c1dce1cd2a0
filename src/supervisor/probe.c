#include "probe.h"
#include "../common/timeutil.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int
probe_copy(char *dst, size_t size, const char *src, size_t len)
{
    if (len >= size)
        return -1;
    memcpy(dst, src, len);
    dst[len] = '\0';
    return 0;
}

int
probe_parse_url(const char *url, char *host, size_t hostsize, char *port, size_t portsize,
                char *path, size_t pathsize, char *err, size_t errlen)
{
    const char *p, *hend, *pstart, *slash;
    size_t hlen;

    for (p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f) {
            snprintf(err, errlen, "a space or control character in the URL");
            return -1;
        }
    }
    if (strncmp(url, "http://", 7) != 0) {
        snprintf(err, errlen, "only http:// URLs can be probed");
        return -1;
    }
    p = url + 7;
    slash = p + strcspn(p, "/?#");
    if (*p == '[') {
        hend = memchr(p, ']', (size_t)(slash - p));
        if (hend == NULL) {
            snprintf(err, errlen, "an IPv6 host needs its closing ']'");
            return -1;
        }
        hlen = (size_t)(hend - p - 1);
        pstart = hend + 1;
        p++;
    } else {
        const char *colon = memchr(p, ':', (size_t)(slash - p));
        hend = colon != NULL ? colon : slash;
        hlen = (size_t)(hend - p);
        pstart = hend;
    }
    if (hlen == 0 || probe_copy(host, hostsize, p, hlen) != 0) {
        snprintf(err, errlen, hlen == 0 ? "no host in the URL" : "the host is too long");
        return -1;
    }
    if (*pstart == ':') {
        size_t plen = (size_t)(slash - pstart - 1);
        long v;
        char *end;

        if (plen == 0 || plen > 5 || strspn(pstart + 1, "0123456789") < plen) {
            snprintf(err, errlen, "a bad port in the URL");
            return -1;
        }
        v = strtol(pstart + 1, &end, 10);
        if (v < 1 || v > 65535 || end != slash) {
            snprintf(err, errlen, "a bad port in the URL");
            return -1;
        }
        snprintf(port, portsize, "%ld", v);
    } else if (pstart != slash) {
        snprintf(err, errlen, "a bad host in the URL");
        return -1;
    } else {
        snprintf(port, portsize, "80");
    }
    /* The fragment is the client's, never sent; "?q" alone gets its "/". */
    {
        size_t plen = strcspn(slash, "#");
        int rc;

        if (*slash == '/')
            rc = probe_copy(path, pathsize, slash, plen);
        else if (plen + 2 <= pathsize)
            rc = snprintf(path, pathsize, "/%.*s", (int)plen, slash) < 0 ? -1 : 0;
        else
            rc = -1;
        if (rc != 0) {
            snprintf(err, errlen, "the path is too long");
            return -1;
        }
    }
    return 0;
}

int
probe_status(const char *buf, size_t len)
{
    const char *eol = memchr(buf, '\n', len);
    int status = 0;

    if (eol == NULL || len < 12 || memcmp(buf, "HTTP/1.", 7) != 0 ||
        !isdigit((unsigned char)buf[7]) || buf[8] != ' ')
        return -1;
    for (int i = 9; i < 12; i++) {
        if (!isdigit((unsigned char)buf[i]))
            return -1;
        status = status * 10 + (buf[i] - '0');
    }
    if (len > 12 && buf[12] != ' ' && buf[12] != '\r' && buf[12] != '\n')
        return -1;
    return status >= 100 ? status : -1;
}

/* ms left until deadline (monotonic), at least 0. */
static int
probe_left(uint64_t deadline)
{
    uint64_t now = time_mono_ms();

    return now >= deadline ? 0 : (int)(deadline - now);
}

/* Wait for events on fd until deadline: 1 ready, 0 timed out, -1 failed. */
static int
probe_wait(int fd, short events, uint64_t deadline)
{
    struct pollfd pfd = {fd, events, 0};
    int rc;

    do {
        rc = poll(&pfd, 1, probe_left(deadline));
    } while (rc < 0 && errno == EINTR);
    return rc;
}

/* A connected non-blocking socket to ai, or -1 with why in err. */
static int
probe_connect(const struct addrinfo *ai, uint64_t deadline, char *err, size_t errlen)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), soerr = 0;
    socklen_t len = sizeof(soerr);

    if (fd < 0) {
        snprintf(err, errlen, "socket() failed: %s", strerror(errno));
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        snprintf(err, errlen, "connect() failed: %s", strerror(errno));
        close(fd);
        return -1;
    }
    switch (probe_wait(fd, POLLOUT, deadline)) {
    case 1:
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0)
            soerr = errno;
        if (soerr == 0)
            return fd;
        snprintf(err, errlen, "connect() failed: %s", strerror(soerr));
        break;
    case 0:
        snprintf(err, errlen, "no connection within the timeout");
        break;
    default:
        snprintf(err, errlen, "poll() failed: %s", strerror(errno));
        break;
    }
    close(fd);
    return -1;
}

/* Send req and read up to the end of the status line: the status, or -1
 * with why in err. */
static int
probe_exchange(int fd, const char *req, size_t reqlen, uint64_t deadline, char *err, size_t errlen)
{
    char buf[512];
    size_t off = 0, got = 0;

    while (off < reqlen) {
        ssize_t n;
        if (probe_wait(fd, POLLOUT, deadline) <= 0) {
            snprintf(err, errlen, "could not send the request within the timeout");
            return -1;
        }
        n = send(fd, req + off, reqlen - off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0) {
            snprintf(err, errlen, "send() failed: %s", strerror(errno));
            return -1;
        }
        off += (size_t)n;
    }
    for (;;) {
        ssize_t n;
        int status = probe_status(buf, got);

        if (status > 0)
            return status;
        if (memchr(buf, '\n', got) != NULL || got == sizeof(buf)) {
            snprintf(err, errlen, "the answer is not HTTP/1.x");
            return -1;
        }
        if (probe_wait(fd, POLLIN, deadline) <= 0) {
            snprintf(err, errlen, "no answer within the timeout");
            return -1;
        }
        n = recv(fd, buf + got, sizeof(buf) - got, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n == 0) {
            snprintf(err, errlen, "connection closed before an answer");
            return -1;
        }
        if (n < 0) {
            snprintf(err, errlen, "recv() failed: %s", strerror(errno));
            return -1;
        }
        got += (size_t)n;
    }
}

int
probe_run(const char *url, int timeout_ms)
{
    char host[256], port[8], path[1024], err[256], req[1536];
    struct addrinfo hints, *res = NULL;
    uint64_t deadline = time_mono_ms() + (uint64_t)(timeout_ms > 0 ? timeout_ms : 1);
    int rc, status = -1, n;

    if (probe_parse_url(url, host, sizeof(host), port, sizeof(port), path, sizeof(path), err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "ws-broadcaster: --probe %s: %s\n", url, err);
        return 1;
    }
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "ws-broadcaster: --probe %s: getaddrinfo(%s) failed: %s\n", url, host,
                gai_strerror(rc));
        return 1;
    }
    /* HTTP/1.1 with Connection: close: a plain answer, then the end. */
    n = snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: ws-broadcaster-probe\r\n"
                 "Accept: */*\r\nConnection: close\r\n\r\n",
                 path, strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    snprintf(err, sizeof(err), "no address to connect to");
    for (struct addrinfo *ai = res; ai != NULL && status < 0 && probe_left(deadline) > 0;
         ai = ai->ai_next) {
        int fd = probe_connect(ai, deadline, err, sizeof(err));
        if (fd < 0)
            continue;
        status = probe_exchange(fd, req, (size_t)n, deadline, err, sizeof(err));
        close(fd);
    }
    freeaddrinfo(res);
    if (status < 0) {
        fprintf(stderr, "ws-broadcaster: --probe %s: %s\n", url, err);
        return 1;
    }
    if (status < 200 || status > 299) {
        fprintf(stderr, "ws-broadcaster: --probe %s: HTTP %d\n", url, status);
        return 1;
    }
    printf("ws-broadcaster: --probe %s: HTTP %d\n", url, status);
    return 0;
}
