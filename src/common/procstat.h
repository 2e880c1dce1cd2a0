/*
 * procstat: a process's CPU time, resident memory, open and allowed file
 * descriptors and start time, read from /proc/<pid>, for the process_*
 * metrics (README "HTTP endpoints").
 *
 * The worker that answers /metrics reads them for every process of the
 * instance (the pids are in shm) at the moment it answers, rather than
 * each process recording its own into shared memory once a second: they
 * cost nothing while nobody asks; they are the kernel's figures, right
 * even for a process whose loop is stuck (one recording its own would go
 * stale exactly then); and no role's loop carries periodic /proc work.
 * The price: counting a process's descriptors walks /proc/<pid>/fd, which
 * grows with its connections (tens of milliseconds at 100,000), once per
 * scrape.  Every process of an instance runs as the same user, so the
 * answering worker may read them all.
 *
 * The parsers are pure; procstat_read does file I/O (a few small reads
 * and one directory walk) and never blocks on anything but the kernel.
 * Any role.
 */
#ifndef WSB_PROCSTAT_H
#define WSB_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

struct procstat {
    uint64_t cpu_ms;    /* user + system CPU time */
    uint64_t rss_bytes; /* resident set size */
    uint64_t open_fds;
    uint64_t max_fds;  /* soft RLIMIT_NOFILE ("unlimited": UINT64_MAX) */
    uint64_t start_ms; /* when it started, ms since the Unix epoch */
};

/* Fill *out for process pid.  0, or -1 (errno set) if it cannot be read:
 * gone, not ours, or /proc not mounted. */
int procstat_read(int pid, struct procstat *out);

/* From the text of /proc/<pid>/stat: utime + stime and starttime, in clock
 * ticks.  The command name may hold spaces and parentheses: fields are
 * counted after the last ')'.  0, or -1 if the text is not such a line. */
int procstat_parse_stat(const char *text, uint64_t *cpu_ticks, uint64_t *start_ticks);

/* From /proc/<pid>/statm: the resident pages (second field).  0 or -1. */
int procstat_parse_statm(const char *text, uint64_t *resident_pages);

/* From /proc/<pid>/limits: the soft limit of "Max open files" (UINT64_MAX
 * for "unlimited").  0 or -1. */
int procstat_parse_limits(const char *text, uint64_t *max_fds);

/* From /proc/stat: the boot time, seconds since the Unix epoch ("btime").
 * 0 or -1. */
int procstat_parse_btime(const char *text, uint64_t *btime);

#endif
