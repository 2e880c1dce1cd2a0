/*
 * timeutil: wall-clock and monotonic time, and the ISO-8601 forms the wire
 * protocol and the logs use.  Pure functions, safe in every role.
 */
#ifndef WSB_TIMEUTIL_H
#define WSB_TIMEUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME). */
uint64_t time_now_ms(void);

/* Milliseconds on CLOCK_MONOTONIC: for intervals, never for display. */
uint64_t time_mono_ms(void);

/* The same two clocks in microseconds, for latencies (hist.h). */
uint64_t time_now_us(void);
uint64_t time_mono_us(void);

/* "2025-11-07T12:34:56.123Z" (24 chars) into buf; returns the length written,
 * 0 if size is too small.  Always NUL-terminates when size > 0. */
size_t time_format_iso_ms(uint64_t epoch_ms, char *buf, size_t size);

/* "2025-11-07T12:34:56Z" (20 chars), as the seed's connected_at. */
size_t time_format_iso_s(uint64_t epoch_ms, char *buf, size_t size);

#define TIME_ISO_MS_LEN 24

#endif
