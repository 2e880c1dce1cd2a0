/*
 * Helpers shared by the benchmark tools (wsb-load, wsb-publish, wsb-ceiling):
 * clocks, a log-linear latency histogram, SHA-1 and base64 for the WebSocket
 * handshake, address parsing, the open-files limit and small text output
 * helpers.  Not part of the service: nothing under src/ includes this.
 * Single-threaded use per object; a histogram is owned by one thread and
 * merged by the caller after that thread has finished.
 */
#ifndef WSB_BENCH_H
#define WSB_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define BENCH_WS_GUID    "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define BENCH_ACCEPT_LEN 28 /* base64 of a 20-byte SHA-1 */
#define BENCH_KEY_LEN    24 /* base64 of a 16-byte nonce */

/* Nanoseconds: CLOCK_MONOTONIC for pacing and windows, CLOCK_REALTIME for the
 * publish timestamp carried in entries (the only clock two processes share). */
int64_t bench_mono_ns(void);
int64_t bench_real_ns(void);

/*
 * Histogram of values in microseconds, HdrHistogram's layout with 128
 * half-bucket slots: values below 256 are exact, larger ones are kept with a
 * relative error below 1/128 (two significant decimal digits and more).
 * Values above BENCH_HIST_MAX_US are counted in the top slot and in
 * `clamped`; the exact maximum is kept apart.
 */
#define BENCH_HIST_SUB_BITS 7
#define BENCH_HIST_SUB      (1u << BENCH_HIST_SUB_BITS) /* 128 */
#define BENCH_HIST_MAX_US   60000000LL                  /* 60 s */
#define BENCH_HIST_BUCKETS  20                          /* 256 << 19 > 60e6 */
#define BENCH_HIST_SLOTS    ((BENCH_HIST_BUCKETS + 1) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t counts[BENCH_HIST_SLOTS];
    uint64_t total;
    uint64_t clamped;
    int64_t min, max;
    double sum;
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, int64_t us);
/* Adds src's counts into dst. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);
/* Value at percentile q (0..100): the highest value equivalent to the slot
 * holding it, capped at the exact maximum; 0 for an empty histogram. */
int64_t bench_hist_percentile(const struct bench_hist *h, double q);

/* SHA-1 of len bytes into out (20 bytes).  For the handshake only. */
void bench_sha1(const void *data, size_t len, unsigned char out[20]);
/* Base64 of len bytes into out (NUL-terminated); returns the length written.
 * out must hold 4 * ((len + 2) / 3) + 1 bytes. */
size_t bench_base64(const unsigned char *in, size_t len, char *out);
/* Sec-WebSocket-Accept for a key of keylen bytes, into out (29 bytes with NUL). */
void bench_ws_accept(const char *key, size_t keylen, char out[BENCH_ACCEPT_LEN + 1]);

/* The header of the WebSocket frame at h[0..avail) (RFC 6455 5.2): its
 * length, mask key included, with the payload length in *payload_len; 0 if
 * the header is not all there yet. */
size_t bench_ws_header(const unsigned char *h, size_t avail, uint64_t *payload_len);

/* XORs a masked payload with its key, in place. */
void bench_ws_unmask(unsigned char *payload, uint64_t len, const unsigned char key[4]);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the new soft
 * limit, or -1 (errno set) if getrlimit fails. */
long bench_raise_nofile(void);

/* Splits "host:port" (or ":port", host then "127.0.0.1") into host (hostlen
 * bytes) and *port.  Returns 0, or -1 if it is not of that form. */
int bench_split_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Parses a non-negative decimal number of seconds ("2", "0.5"); -1 if bad. */
double bench_parse_seconds(const char *s);
/* Parses a whole number in [min, max]; returns 0, or -1 if bad. */
int bench_parse_long(const char *s, long min, long max, long *out);

/* Fast non-cryptographic generator (xorshift64*), seeded from getrandom(). */
struct bench_rng {
    uint64_t s;
};
void bench_rng_seed(struct bench_rng *r);
uint64_t bench_rng_next(struct bench_rng *r);

/* Case-insensitive search for header `name` in an HTTP head[0..len);
 * returns the value (surrounding blanks trimmed) and its length, or NULL. */
const char *bench_http_header(const char *head, size_t len, const char *name, size_t *vlen);

/* Writes s to f as a JSON string (quotes included). */
void bench_json_str(FILE *f, const char *s);

/* Peak resident set of this process in kB (VmHWM), or -1. */
long bench_self_hwm_kb(void);

#endif
