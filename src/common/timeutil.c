#include "timeutil.h"

#include <stdio.h>
#include <time.h>

uint64_t
time_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
time_mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t
time_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
time_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static size_t
time_format(uint64_t epoch_ms, int with_ms, char *buf, size_t size)
{
    time_t secs = (time_t)(epoch_ms / 1000u);
    struct tm tm;
    int n;

    if (size == 0)
        return 0;
    if (gmtime_r(&secs, &tm) == NULL) {
        buf[0] = '\0';
        return 0;
    }
    if (with_ms)
        n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (unsigned)(epoch_ms % 1000u));
    else
        n = snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    if (n < 0 || (size_t)n >= size) {
        buf[0] = '\0';
        return 0;
    }
    return (size_t)n;
}

size_t
time_format_iso_ms(uint64_t epoch_ms, char *buf, size_t size)
{
    return time_format(epoch_ms, 1, buf, size);
}

size_t
time_format_iso_s(uint64_t epoch_ms, char *buf, size_t size)
{
    return time_format(epoch_ms, 0, buf, size);
}
