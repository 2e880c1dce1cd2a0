/*
 * test_groups: the pure parts of `--groups` and `--groups-delete-idle`:
 * durations as an operator writes them (units, sums, a bare number in
 * seconds; 0, garbage and overflow refused), durations as the listing shows
 * them, and which groups a deletion takes: never this configuration's own,
 * never one without consumers, only one whose every consumer is idle
 * longer than the threshold.
 */
#include "supervisor/groups.h"

#include <string.h>

#include "test.h"

static void
test_parse_duration(void)
{
    static const struct {
        const char *text;
        int rc;
        uint64_t ms;
    } cases[] = {
        {"90s", 0, 90000},
        {"30m", 0, 1800000},
        {"1h", 0, 3600000},
        {"2d", 0, 172800000},
        {"1h30m", 0, 5400000},
        {"500ms", 0, 500},
        {"45", 0, 45000},
        {"1m1ms", 0, 60001},
        {"0", -1, 0},
        {"0s", -1, 0},
        {"", -1, 0},
        {"h", -1, 0},
        {"1x", -1, 0},
        {"-1h", -1, 0},
        {"1 h", -1, 0},
        {"1.5h", -1, 0},
        {"99999999999999999999d", -1, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t ms = 12345;
        int rc = groups_parse_duration(cases[i].text, &ms);

        CHECK_INT(rc, cases[i].rc);
        if (rc != cases[i].rc)
            printf("#   duration '%s'\n", cases[i].text);
        if (cases[i].rc == 0)
            CHECK_INT(ms, cases[i].ms);
        else
            CHECK_INT(ms, 12345); /* untouched */
    }
}

static void
test_format_duration(void)
{
    char buf[32];

    groups_format_duration(850, buf, sizeof(buf));
    CHECK_STR(buf, "850ms");
    groups_format_duration(42300, buf, sizeof(buf));
    CHECK_STR(buf, "42.3s");
    groups_format_duration(312000, buf, sizeof(buf));
    CHECK_STR(buf, "5m12s");
    groups_format_duration(3 * 3600000 + 4 * 60000 + 59000, buf, sizeof(buf));
    CHECK_STR(buf, "3h04m");
    groups_format_duration(12ULL * 86400000 + 3 * 3600000, buf, sizeof(buf));
    CHECK_STR(buf, "12d03h");
}

static struct groups_entry
entry(const char *name, long long consumers, long long idle_ms)
{
    struct groups_entry e;

    memset(&e, 0, sizeof(e));
    snprintf(e.stream, sizeof(e.stream), "odds.normalized.nba");
    snprintf(e.name, sizeof(e.name), "%s", name);
    e.consumers = consumers;
    e.idle_ms = idle_ms;
    return e;
}

static void
test_judge(void)
{
    const char *own = "ws-broadcaster:web-1-8080";
    struct groups_entry e;

    /* This configuration's group, however idle. */
    e = entry(own, 1, 10LL * 86400000);
    CHECK_INT(groups_judge(&e, own, 1000), GROUPS_KEEP_OWN);
    /* Idle longer than the threshold: deleted; not longer: kept. */
    e = entry("ws-broadcaster:old-8080", 1, 7200000);
    CHECK_INT(groups_judge(&e, own, 3600000), GROUPS_DELETE);
    CHECK_INT(groups_judge(&e, own, 7200000), GROUPS_KEEP_ACTIVE);
    CHECK_INT(groups_judge(&e, own, 10800000), GROUPS_KEEP_ACTIVE);
    /* No consumer (being created, or emptied by hand): kept. */
    e = entry("ws-broadcaster:new-8080", 0, -1);
    CHECK_INT(groups_judge(&e, own, 1), GROUPS_KEEP_NEVER_READ);
    /* A name that only starts like ours is not ours. */
    e = entry("ws-broadcaster:web-1-80801", 1, 7200000);
    CHECK_INT(groups_judge(&e, own, 3600000), GROUPS_DELETE);
}

TEST_MAIN(TEST(test_parse_duration), TEST(test_format_duration), TEST(test_judge))
