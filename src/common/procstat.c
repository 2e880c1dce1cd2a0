#include "procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read path whole into buf (NUL-terminated).  Its length, or -1 (errno
 * set; EFBIG if it does not fit). */
static ssize_t
procstat_slurp(const char *path, char *buf, size_t size)
{
    size_t len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    for (;;) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            (void)close(fd); /* read-only: nothing to lose */
            errno = e;
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == size - 1) {
            (void)close(fd);
            errno = EFBIG;
            return -1;
        }
    }
    (void)close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* The unsigned decimal at *p, moving p past it.  -1 if there is none. */
static int
procstat_number(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;

    if (*s < '0' || *s > '9')
        return -1;
    while (*s >= '0' && *s <= '9') {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
        s++;
    }
    *p = s;
    *out = v;
    return 0;
}

int
procstat_parse_stat(const char *text, uint64_t *cpu_ticks, uint64_t *start_ticks)
{
    const char *p = strrchr(text, ')');
    uint64_t utime = 0, stime = 0, start = 0;

    if (p == NULL)
        return -1;
    p++;
    /* Fields from 3 (state) on, space separated: utime is 14, stime 15,
     * starttime 22 (proc(5)). */
    for (int field = 3; field <= 22; field++) {
        if (*p != ' ')
            return -1;
        p++;
        if (field == 14 || field == 15 || field == 22) {
            uint64_t v;
            if (procstat_number(&p, &v) != 0)
                return -1;
            if (field == 14)
                utime = v;
            else if (field == 15)
                stime = v;
            else
                start = v;
        } else {
            size_t n = strcspn(p, " ");
            if (n == 0)
                return -1;
            p += n;
        }
    }
    *cpu_ticks = utime + stime;
    *start_ticks = start;
    return 0;
}

int
procstat_parse_statm(const char *text, uint64_t *resident_pages)
{
    const char *p = text;
    uint64_t size;

    if (procstat_number(&p, &size) != 0 || *p != ' ')
        return -1;
    p++;
    return procstat_number(&p, resident_pages);
}

int
procstat_parse_limits(const char *text, uint64_t *max_fds)
{
    static const char key[] = "Max open files";
    const char *line = text;

    while (line != NULL && *line != '\0') {
        if (strncmp(line, key, sizeof(key) - 1) == 0) {
            const char *p = line + sizeof(key) - 1;
            while (*p == ' ')
                p++;
            if (strncmp(p, "unlimited", 9) == 0) {
                *max_fds = UINT64_MAX;
                return 0;
            }
            return procstat_number(&p, max_fds);
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

int
procstat_parse_btime(const char *text, uint64_t *btime)
{
    const char *line = text;

    while (line != NULL && *line != '\0') {
        if (strncmp(line, "btime ", 6) == 0) {
            const char *p = line + 6;
            return procstat_number(&p, btime);
        }
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

/* The boot time, read once per process: it does not change, and /proc/stat
 * grows with the CPUs and interrupts of the host. */
static int
procstat_boot_time(uint64_t *btime)
{
    static uint64_t cached;
    char *buf;
    ssize_t n;
    int rc = -1;

    if (cached != 0) {
        *btime = cached;
        return 0;
    }
    if ((buf = malloc(1 << 20)) == NULL)
        return -1;
    n = procstat_slurp("/proc/stat", buf, 1 << 20);
    if (n >= 0 && procstat_parse_btime(buf, &cached) == 0) {
        *btime = cached;
        rc = 0;
    }
    free(buf);
    return rc;
}

static int
procstat_count_fds(int pid, uint64_t *n)
{
    char path[64];
    struct dirent *d;
    DIR *dir;
    uint64_t count = 0;

    snprintf(path, sizeof(path), "/proc/%d/fd", pid);
    if ((dir = opendir(path)) == NULL)
        return -1;
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] != '.')
            count++;
    }
    (void)closedir(dir); /* a directory read only */
    /* Reading our own, the directory's descriptor is one of them. */
    if (pid == getpid() && count > 0)
        count--;
    *n = count;
    return 0;
}

int
procstat_read(int pid, struct procstat *out)
{
    char path[64], buf[4096];
    uint64_t cpu, start, pages, btime;
    long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

    if (pid <= 0 || tck <= 0 || page <= 0) {
        errno = EINVAL;
        return -1;
    }
    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    if (procstat_slurp(path, buf, sizeof(buf)) < 0)
        return -1;
    if (procstat_parse_stat(buf, &cpu, &start) != 0)
        goto bad;
    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    if (procstat_slurp(path, buf, sizeof(buf)) < 0)
        return -1;
    if (procstat_parse_statm(buf, &pages) != 0)
        goto bad;
    snprintf(path, sizeof(path), "/proc/%d/limits", pid);
    if (procstat_slurp(path, buf, sizeof(buf)) < 0)
        return -1;
    if (procstat_parse_limits(buf, &out->max_fds) != 0)
        goto bad;
    if (procstat_count_fds(pid, &out->open_fds) != 0 || procstat_boot_time(&btime) != 0)
        return -1;
    out->cpu_ms = cpu * 1000 / (uint64_t)tck;
    out->rss_bytes = pages * (uint64_t)page;
    out->start_ms = btime * 1000 + start * 1000 / (uint64_t)tck;
    return 0;
bad:
    errno = EPROTO;
    return -1;
}
