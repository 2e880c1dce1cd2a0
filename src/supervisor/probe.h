/*
 * probe: `ws-broadcaster --probe URL`, a tiny blocking HTTP client for
 * health checks where no curl is installed (the Docker image's
 * HEALTHCHECK on /livez).
 *
 * One GET of an http:// URL (no TLS, no redirects, no proxy), the whole
 * exchange bounded by a timeout; the answer is judged by its status line
 * alone.  Runs in the command-line process, before and without any
 * configuration; no role, nothing shared.  Blocks (getaddrinfo may block
 * longer on a host name that needs a resolver: use an address).
 */
#ifndef WSB_PROBE_H
#define WSB_PROBE_H

#include <stddef.h>

/* The whole exchange: connect, request, status line. */
#define PROBE_TIMEOUT_MS 3000

/*
 * Split "http://HOST[:PORT][/PATH]" (HOST a name, an IPv4 address or
 * "[IPv6]"; PORT default 80; PATH default "/", query kept) into host, port
 * and path, each NUL-terminated within its buffer.  0, or -1 with why in err
 * (another scheme, no host, a bad port, a part too long, a space or control
 * byte anywhere).  Pure.
 */
int probe_parse_url(const char *url, char *host, size_t hostsize, char *port, size_t portsize,
                    char *path, size_t pathsize, char *err, size_t errlen);

/* The status code of an HTTP/1.x response whose first line is in
 * buf[0..len) ("HTTP/1.1 200 OK\r\n..."), or -1 if it is not one (yet). Pure. */
int probe_status(const char *buf, size_t len);

/* GET url within timeout_ms: the process's exit status, 0 for a 2xx answer
 * and 1 for anything else (another status, refused, timed out, a bad URL),
 * with one line saying which on stdout (0) or stderr (1). */
int probe_run(const char *url, int timeout_ms);

#endif
