/*
 * fuzz_config: the input as a config file (conf_load_file), and the same
 * lines split at their first '=' and handed to conf_set as they are.
 *
 * Properties (beyond no crash, no leak, no overflow):
 *  - a failed load or set says why, in bounds;
 *  - after a successful conf_set, and for every key after a successful
 *    load, conf_get gives a text conf_set accepts and that reproduces the
 *    same struct conf (conf.h: "as conf_set accepts it"); REDIS_PASSWORD is
 *    shown masked, so it is left out, and so is REDIS_URL's password (the
 *    rest of the URL must read back);
 *  - the helpers that read a struct conf (conf_check, conf_sport_stream,
 *    conf_restart_keys_changed, conf_redis_password) stay in bounds, also
 *    with buffers too small for their answer.
 *
 * conf_load_file wants a path: the file is an anonymous memfd, created once
 * per process, rewritten each run and opened through /proc/self/fd, so
 * nothing is left behind whatever happens to the process.
 */
#include "common/conf.h"

#include "fuzz.h"

#include <sys/mman.h>
#include <unistd.h>

static int fuzz_fd = -1;
static char fuzz_path[64];

/* conf_defaults asks sysconf for the CPU count (a file read) each time:
 * made once, copied after. */
static void
defaults(struct conf *c)
{
    static struct conf made;
    static int have;

    if (!have) {
        conf_defaults(&made);
        have = 1;
    }
    *c = made;
}

static void
write_file(const uint8_t *data, size_t size)
{
    size_t off = 0;

    if (fuzz_fd < 0) {
        fuzz_fd = memfd_create("fuzz_config", 0);
        FUZZ_CHECK(fuzz_fd >= 0);
        snprintf(fuzz_path, sizeof(fuzz_path), "/proc/self/fd/%d", fuzz_fd);
    }
    FUZZ_CHECK(ftruncate(fuzz_fd, 0) == 0);
    while (off < size) {
        ssize_t n = pwrite(fuzz_fd, data + off, size - off, (off_t)off);
        FUZZ_CHECK(n > 0);
        off += (size_t)n;
    }
}

/* conf_get(key) fed back to conf_set reproduces c. */
static void
check_get_set(const struct conf *c, const char *key)
{
    static struct conf again;
    char text[8192], err[512];

    if (strcmp(key, "REDIS_PASSWORD") == 0)
        return;
    FUZZ_CHECK(conf_get(c, key, text, sizeof(text)) == 0);
    again = *c;
    if (conf_set(&again, key, text, err, sizeof(err)) != 0)
        fprintf(stderr, "note: %s: conf_get gave '%s', conf_set refused it: %s\n", key, text, err);
    FUZZ_CHECK(conf_set(&again, key, text, err, sizeof(err)) == 0);
    if (strcmp(key, "REDIS_URL") == 0 && strcmp(text, c->redis_url) != 0) {
        /* shown with its password as ***: only the text and the password differ */
        FUZZ_CHECK(strstr(text, "***") != NULL);
        memcpy(again.redis_url, c->redis_url, sizeof(again.redis_url));
        memcpy(again.redis_url_password, c->redis_url_password, sizeof(again.redis_url_password));
    }
    FUZZ_CHECK(memcmp(&again, c, sizeof(again)) == 0);
}

static void
check_check(const struct conf *c)
{
    char err[512], stream[CONF_STREAM_MAX];

    err[0] = '\0';
    if (conf_check(c, err, sizeof(err)) != 0)
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
    FUZZ_CHECK(c->nsports >= 1 && c->nsports <= CONF_MAX_SPORTS);
    for (int i = 0; i < c->nsports; i++)
        FUZZ_CHECK(conf_sport_stream(c, i, stream, sizeof(stream)) == 0);
}

/* Slow (every conf_get compares key names): once per run. */
static void
check_readers(const struct conf *c)
{
    struct conf base;
    char err[512], small[16];
    const char *pw;

    defaults(&base);
    check_check(c);
    conf_restart_keys_changed(&base, c, err, sizeof(err));
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    conf_restart_keys_changed(&base, c, small, sizeof(small));
    FUZZ_CHECK(memchr(small, '\0', sizeof(small)) != NULL);
    for (size_t i = 0; i < conf_nkeys; i++)
        FUZZ_CHECK(conf_get(c, conf_keys[i].name, small, sizeof(small)) == 0);
    pw = conf_redis_password(c);
    FUZZ_CHECK(pw == NULL || pw[0] != '\0');
}

static void
check_file(const uint8_t *data, size_t size)
{
    static struct conf c;
    char err[512];

    write_file(data, size);
    defaults(&c);
    err[0] = '\0';
    if (conf_load_file(&c, fuzz_path, err, sizeof(err)) != 0) {
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
        return;
    }
    for (size_t i = 0; i < conf_nkeys; i++)
        check_get_set(&c, conf_keys[i].name);
    check_readers(&c);
}

/* Each line split at its first '=', nothing trimmed or unquoted. */
static void
check_set(const uint8_t *data, size_t size)
{
    static struct conf c;
    char *text = malloc(size + 1), *line, *next;
    char err[512];

    FUZZ_CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    defaults(&c);
    for (line = text; line != NULL; line = next) {
        char *eq;

        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        eq = strchr(line, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        err[0] = '\0';
        if (conf_set(&c, line, eq + 1, err, sizeof(err)) != 0) {
            FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL);
            /* a failed set may leave its key half-written (conf.h promises
             * nothing else, and the supervisor drops such a struct): start over */
            defaults(&c);
            continue;
        }
        check_get_set(&c, line);
    }
    check_check(&c);
    free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_file(data, size);
    check_set(data, size);
    return 0;
}
