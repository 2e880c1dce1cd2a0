/*
 * test_procstat: the /proc parsers behind the process_* metrics, on texts
 * copied from a Debian 12 host and on the awkward cases (a command name
 * with spaces and parentheses, "unlimited", truncated lines), then
 * procstat_read on this process itself against what it can tell otherwise.
 */
#include "common/procstat.h"
#include "common/timeutil.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <time.h>

#include "test.h"

static void
test_parse_stat(void)
{
    static const char line[] =
        "16041 (cat) R 16039 16039 6005 0 -1 4194304 101 0 0 0 7 3 0 0 20 0 1 0 2522639 "
        "3133440 376 18446744073709551615 94336707665920 94336707685801 0 0 0 0 0 0 0 0 0 17 0";
    uint64_t cpu = 0, start = 0;

    CHECK_INT(procstat_parse_stat(line, &cpu, &start), 0);
    CHECK_INT(cpu, 10); /* utime 7 + stime 3 */
    CHECK_INT(start, 2522639);
}

static void
test_parse_stat_odd_comm(void)
{
    /* PR_SET_NAME allows spaces and ')': fields count from the last ')'. */
    static const char line[] =
        "7 (a) b (c)) S 1 7 7 0 -1 4194560 5 0 0 0 120 45 0 0 20 0 1 0 999 1000 10 "
        "18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 17 1";
    uint64_t cpu = 0, start = 0;

    CHECK_INT(procstat_parse_stat(line, &cpu, &start), 0);
    CHECK_INT(cpu, 165);
    CHECK_INT(start, 999);
}

static void
test_parse_stat_bad(void)
{
    uint64_t cpu = 0, start = 0;

    CHECK_INT(procstat_parse_stat("", &cpu, &start), -1);
    CHECK_INT(procstat_parse_stat("12 (x) R 1 2 3", &cpu, &start), -1); /* cut short */
    CHECK_INT(procstat_parse_stat("12 (x) R 1 2 3 4 5 6 7 8 9 10 x 3 4 5 6 7 8 9 10", &cpu, &start),
              -1); /* utime not a number */
}

static void
test_parse_statm(void)
{
    uint64_t pages = 0;

    CHECK_INT(procstat_parse_statm("765 400 372 5 0 123 0\n", &pages), 0);
    CHECK_INT(pages, 400);
    CHECK_INT(procstat_parse_statm("765", &pages), -1);
    CHECK_INT(procstat_parse_statm("", &pages), -1);
}

static void
test_parse_limits(void)
{
    static const char limits[] =
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        "Max open files            20000                40000                files     \n"
        "Max locked memory         8388608              8388608              bytes     \n";
    static const char unlimited[] = "Max open files            unlimited            unlimited "
                                    "           files     \n";
    uint64_t n = 0;

    CHECK_INT(procstat_parse_limits(limits, &n), 0);
    CHECK_INT(n, 20000); /* the soft limit */
    CHECK_INT(procstat_parse_limits(unlimited, &n), 0);
    CHECK(n == UINT64_MAX);
    CHECK_INT(procstat_parse_limits("Max cpu time  unlimited\n", &n), -1);
}

static void
test_parse_btime(void)
{
    static const char stat[] = "cpu  1 2 3 4\ncpu0 1 2 3 4\nintr 5 6 7\nctxt 99\n"
                               "btime 1796286900\nprocesses 12\n";
    uint64_t b = 0;

    CHECK_INT(procstat_parse_btime(stat, &b), 0);
    CHECK_INT(b, 1796286900);
    CHECK_INT(procstat_parse_btime("cpu 1 2\n", &b), -1);
}

static void
test_read_self(void)
{
    struct procstat st;
    struct rlimit rl;
    int before, fds[3];
    int64_t now_ms = (int64_t)time_now_ms();

    CHECK_INT(procstat_read(getpid(), &st), 0);
    CHECK(st.rss_bytes > 0);
    /* This test started just now; the boot time is whole seconds, so the
     * start may read up to a second or two late. */
    CHECK((int64_t)st.start_ms - now_ms < 2000);
    CHECK(now_ms - (int64_t)st.start_ms < 3600 * 1000);
    CHECK_INT(getrlimit(RLIMIT_NOFILE, &rl), 0);
    /* /proc says the kernel's limit; under valgrind, getrlimit says a few
     * less (it keeps descriptors of its own above the program's). */
    if (rl.rlim_cur == RLIM_INFINITY)
        CHECK(st.max_fds == UINT64_MAX);
    else
        CHECK(st.max_fds >= rl.rlim_cur && st.max_fds <= rl.rlim_cur + 64);
    /* Three more descriptors are three more (the directory walk's own is
     * not counted). */
    before = (int)st.open_fds;
    for (int i = 0; i < 3; i++)
        fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    CHECK_INT(procstat_read(getpid(), &st), 0);
    CHECK_INT(st.open_fds, before + 3);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
}

static void
test_read_gone(void)
{
    struct procstat st;

    CHECK_INT(procstat_read(0, &st), -1);
    CHECK_INT(procstat_read(-5, &st), -1);
    /* Above the kernel's pid_max (at most 2^22): never a process. */
    CHECK_INT(procstat_read(1 << 23, &st), -1);
}

TEST_MAIN(TEST(test_parse_stat), TEST(test_parse_stat_odd_comm), TEST(test_parse_stat_bad),
          TEST(test_parse_statm), TEST(test_parse_limits), TEST(test_parse_btime),
          TEST(test_read_self), TEST(test_read_gone))
