/*
 * test_probe: the pure parts of `--probe URL`: splitting the URL into host,
 * port and path (schemes, IPv6 literals, default port and path, query kept,
 * fragment dropped, bad ports and hosts refused), and reading the status of
 * an HTTP/1.x answer from its first line only.
 */
#include "supervisor/probe.h"

#include <string.h>

#include "test.h"

struct url_case {
    const char *url;
    int rc;
    const char *host, *port, *path;
};

static void
test_parse_url(void)
{
    static const struct url_case cases[] = {
        {"http://127.0.0.1:8080/livez", 0, "127.0.0.1", "8080", "/livez"},
        {"http://localhost/", 0, "localhost", "80", "/"},
        {"http://localhost", 0, "localhost", "80", "/"},
        {"http://[::1]:9000/health?x=1#frag", 0, "::1", "9000", "/health?x=1"},
        {"http://[::1]/", 0, "::1", "80", "/"},
        {"http://h:1?q=2", 0, "h", "1", "/?q=2"},
        {"http://h:65535/a/b", 0, "h", "65535", "/a/b"},
        {"http://h:080/", 0, "h", "80", "/"},
        {"https://h/", -1, NULL, NULL, NULL},
        {"ftp://h/", -1, NULL, NULL, NULL},
        {"127.0.0.1:8080/livez", -1, NULL, NULL, NULL},
        {"http://", -1, NULL, NULL, NULL},
        {"http:///livez", -1, NULL, NULL, NULL},
        {"http://h:/", -1, NULL, NULL, NULL},
        {"http://h:0/", -1, NULL, NULL, NULL},
        {"http://h:65536/", -1, NULL, NULL, NULL},
        {"http://h:12a/", -1, NULL, NULL, NULL},
        {"http://[::1/", -1, NULL, NULL, NULL},
        {"http://[::1]x/", -1, NULL, NULL, NULL},
        {"http://h/a b", -1, NULL, NULL, NULL},
        {"http://h/a\r\nX: y", -1, NULL, NULL, NULL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct url_case *c = &cases[i];
        char host[64] = "", port[8] = "", path[64] = "", err[128] = "";
        int rc = probe_parse_url(c->url, host, sizeof(host), port, sizeof(port), path, sizeof(path),
                                 err, sizeof(err));

        CHECK_INT(rc, c->rc);
        if (rc != c->rc)
            printf("#   url %s\n", c->url);
        if (c->rc == 0 && rc == 0) {
            CHECK_STR(host, c->host);
            CHECK_STR(port, c->port);
            CHECK_STR(path, c->path);
        } else if (c->rc != 0) {
            CHECK(err[0] != '\0');
        }
    }
}

/* Parts longer than the caller's buffers are refused, never cut. */
static void
test_parse_url_too_long(void)
{
    char url[300], host[16], port[8], path[16], err[128];

    snprintf(url, sizeof(url), "http://%s/", "a-very-long-host-name.example");
    CHECK_INT(probe_parse_url(url, host, sizeof(host), port, sizeof(port), path, sizeof(path), err,
                              sizeof(err)),
              -1);
    snprintf(url, sizeof(url), "http://h/%s", "a-path-longer-than-sixteen-bytes");
    CHECK_INT(probe_parse_url(url, host, sizeof(host), port, sizeof(port), path, sizeof(path), err,
                              sizeof(err)),
              -1);
}

static int
status_of(const char *s)
{
    return probe_status(s, strlen(s));
}

static void
test_status(void)
{
    CHECK_INT(status_of("HTTP/1.1 200 OK\r\n"), 200);
    CHECK_INT(status_of("HTTP/1.0 204 No Content\r\ncontent-length: 0\r\n\r\n"), 204);
    CHECK_INT(status_of("HTTP/1.1 503 Service Unavailable\r\n"), 503);
    CHECK_INT(status_of("HTTP/1.1 404\r\n"), 404);
    CHECK_INT(status_of("HTTP/1.1 299 X\n"), 299);
    /* Not (yet) a status line. */
    CHECK_INT(status_of(""), -1);
    CHECK_INT(status_of("HTTP/1.1 200 OK"), -1); /* the line is not complete */
    CHECK_INT(status_of("HTTP/2 200\r\n"), -1);
    CHECK_INT(status_of("HTTP/1.1 2000 OK\r\n"), -1);
    CHECK_INT(status_of("HTTP/1.1 20 OK\r\n"), -1);
    CHECK_INT(status_of("HTTP/1.1 abc OK\r\n"), -1);
    CHECK_INT(status_of("HTTP/1.1 099 Odd\r\n"), -1);
    CHECK_INT(status_of("SSH-2.0-OpenSSH\r\n"), -1);
}

TEST_MAIN(TEST(test_parse_url), TEST(test_parse_url_too_long), TEST(test_status))
