/*
 * groups: `ws-broadcaster --groups` and `--groups-delete-idle DURATION`.
 *
 * Every instance reads each stream with a group of its own,
 * <CONSUMER_GROUP>:<CONSUMER_ID> (README "Streams in").  An instance that
 * goes away for good (a replica scaled down, a container whose host name,
 * and so its default CONSUMER_ID, will not come back) leaves its groups
 * behind, and Redis keeps each one's pending entries list forever.
 * --groups lists this service's groups (those named with the CONSUMER_GROUP
 * prefix) on the configured streams: consumers, pending entries, and how
 * long ago their consumers last read.  --groups-delete-idle removes those
 * whose every consumer has been idle longer than DURATION, never the group
 * of this configuration's CONSUMER_ID, and never a group that has no
 * consumer at all (an instance that created it is still loading its
 * history: deleting it would make that instance recreate it at 0 and
 * change the epoch).
 *
 * Command line only: runs before and without any service process, with a
 * synchronous hiredis connection (connect and command timeouts below).
 * Output on stdout; failures on stderr.
 */
#ifndef WSB_GROUPS_H
#define WSB_GROUPS_H

#include "../common/conf.h"

#include <stddef.h>
#include <stdint.h>

#define GROUPS_CONNECT_TIMEOUT_MS 2000
#define GROUPS_COMMAND_TIMEOUT_MS 5000

/* What --groups knows of one group on one stream. */
struct groups_entry {
    char stream[CONF_STREAM_MAX];
    char name[256];
    long long consumers;
    long long pending;
    long long idle_ms; /* the smallest idle of its consumers; -1: it has none */
    char members[256]; /* its consumers' names, comma-separated (cut to fit) */
    char last_id[48];  /* last-delivered-id */
};

/* Why a group is kept or deleted (groups_judge). */
enum groups_verdict {
    GROUPS_KEEP_OWN,        /* this configuration's group */
    GROUPS_KEEP_ACTIVE,     /* a consumer read within the duration */
    GROUPS_KEEP_NEVER_READ, /* no consumer: being created, or emptied by hand */
    GROUPS_DELETE,          /* every consumer idle longer than the duration */
};

/* "90s", "30m", "1h", "2d", "1h30m", "500ms"; a bare number is seconds.
 * Into *ms; 0, or -1 if s is not one or is 0 (a zero duration would
 * delete every other instance's group, running or not).  Pure. */
int groups_parse_duration(const char *s, uint64_t *ms);

/* ms as the listing shows it: "850ms", "42s", "5m12s", "3h04m", "12d03h".
 * Pure. */
void groups_format_duration(uint64_t ms, char *buf, size_t size);

/* e against own (the full name of this configuration's group) and a
 * threshold of idle_ms.  Pure. */
enum groups_verdict groups_judge(const struct groups_entry *e, const char *own, uint64_t idle_ms);

/* List (delete == 0) or delete the idle groups of c's streams (idle_ms):
 * the process's exit status, 0 done, 1 if Redis could not be reached or a
 * command failed. */
int groups_main(const struct conf *c, int delete, uint64_t idle_ms);

#endif
