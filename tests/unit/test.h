/*
 * test.h: the unit tests' harness.  Each test binary defines test functions
 * and lists them in TEST_MAIN; every check prints its operands and file:line
 * when it fails.  Output is TAP ("ok N - name" / "not ok N - name") and a
 * last line "# N passed, N failed" that tests/unit/run.sh adds up.
 */
#ifndef WSB_TEST_H
#define WSB_TEST_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int test_failed_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("#   %s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond);                    \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long test_a_ = (long long)(a), test_b_ = (long long)(b);                              \
        if (test_a_ != test_b_) {                                                                  \
            printf("#   %s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b,       \
                   test_a_, test_b_);                                                              \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *test_a_ = (a), *test_b_ = (b);                                                 \
        if (test_a_ == NULL || test_b_ == NULL || strcmp(test_a_, test_b_) != 0) {                 \
            printf("#   %s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b,   \
                   test_a_ ? test_a_ : "(null)", test_b_ ? test_b_ : "(null)");                    \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

/* Run fn in a child process with a timeout (so a hang fails one case, not
 * the whole binary).  Returns the child's exit code, 128 + signal if it was
 * killed, -1 if fork or waitpid failed. */
static inline int
test_run_in_child(int (*fn)(void *), void *arg, unsigned timeout_s)
{
    pid_t pid;
    int status;

    fflush(stdout);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int rc;
        alarm(timeout_s);
        rc = fn(arg);
        fflush(stdout);
        _exit(rc);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR)
            return -1;
    }
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

/* FNV-1a of p[0..n): test frames carry it to prove they are whole. */
static inline uint32_t
test_fnv1a(const unsigned char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 16777619u;
    }
    return h;
}

struct test_case {
    const char *name;
    void (*fn)(void);
};

#define TEST_MAIN(...)                                                                             \
    int main(void)                                                                                 \
    {                                                                                              \
        static const struct test_case cases[] = {__VA_ARGS__};                                     \
        int n = (int)(sizeof(cases) / sizeof(cases[0])), passed = 0, failed = 0;                   \
        printf("1..%d\n", n);                                                                      \
        for (int i = 0; i < n; i++) {                                                              \
            int before = test_failed_checks;                                                       \
            cases[i].fn();                                                                         \
            if (test_failed_checks == before) {                                                    \
                printf("ok %d - %s\n", i + 1, cases[i].name);                                      \
                passed++;                                                                          \
            } else {                                                                               \
                printf("not ok %d - %s\n", i + 1, cases[i].name);                                  \
                failed++;                                                                          \
            }                                                                                      \
        }                                                                                          \
        printf("# %d passed, %d failed\n", passed, failed);                                        \
        return failed ? 1 : 0;                                                                     \
    }

#define TEST(fn)                                                                                   \
    {                                                                                              \
#fn, fn                                                                                    \
    }

#endif
