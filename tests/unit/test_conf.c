/*
 * test_conf: settings, defaults and validation.  A bad value must be refused
 * with a message that starts with the key (operators grep for it), a reload
 * must report exactly the keys that need a restart, and the file format has
 * to read a .env file the same way a shell would.
 */
#include "common/conf.h"
#include "common/log.h"

#include <unistd.h>

#include "test.h"

static long
ncpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);

    return n < 1 ? 1 : n > CONF_MAX_WORKERS ? CONF_MAX_WORKERS : n;
}

/* The environment overrides the file; a variable inherited from the shell
 * running the tests must not leak into them. */
static void
clear_env(void)
{
    for (size_t i = 0; i < conf_nkeys; i++)
        unsetenv(conf_keys[i].name);
}

static int
starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* conf_set on a copy of the defaults; the error goes to err. */
static int
set_one(struct conf *c, const char *key, const char *value, char *err, size_t errlen)
{
    conf_defaults(c);
    err[0] = '\0';
    return conf_set(c, key, value, err, errlen);
}

/* Write text into a fresh file under /tmp; path receives its name. */
static int
write_temp(char *path, size_t size, const char *text)
{
    int fd;
    size_t len = strlen(text);

    snprintf(path, size, "/tmp/wsb-test-conf-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0)
        return -1;
    if (write(fd, text, len) != (ssize_t)len) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

static void
test_defaults(void)
{
    struct conf c;
    char stream[CONF_STREAM_MAX];

    conf_defaults(&c);
    CHECK_STR(c.server_addr, ":8080");
    CHECK_STR(c.server_host, "");
    CHECK_INT(c.server_port, 8080);
    CHECK_STR(c.redis_url, "localhost:6379");
    CHECK_STR(c.redis_host, "localhost");
    CHECK_INT(c.redis_port, 6379);
    CHECK_STR(c.redis_unix, "");
    CHECK_INT(c.redis_db, 0);
    CHECK(conf_redis_password(&c) == NULL);
    CHECK_INT(c.nsports, 1);
    CHECK_STR(c.sports[0], "basketball_nba");
    CHECK_INT(conf_sport_stream(&c, 0, stream, sizeof(stream)), 0);
    CHECK_STR(stream, "odds.normalized.basketball_nba");
    CHECK_STR(c.opportunities_stream, "opportunities");
    CHECK_STR(c.consumer_group, "ws-broadcaster");
    CHECK_STR(c.consumer_id, ""); /* auto: conf_resolve_auto derives it */
    CHECK_INT(c.workers, ncpus());
    CHECK_INT(c.client_buffer, 256);
    CHECK_INT(c.ring_size, 65536);
    CHECK_INT(c.max_message_size, 65536);
    CHECK_INT(c.max_entry_size, 65536);
    CHECK_INT(c.max_filter_values, 1024);
    CHECK_INT(c.max_filter_value_len, 256);
    CHECK_INT(c.read_count, 512);
    CHECK_INT(c.log_level, LOG_LEVEL_INFO);
    CHECK_INT(c.log_format, LOG_FORMAT_TEXT);
    CHECK_INT(c.drain_seconds, 10);
    CHECK_INT(c.reconnect_jitter_ms, 5000);
}

static void
test_defaults_table(void)
{
    /* Every key in the table parses its own default, conf_get knows it,
     * and names are unique. */
    struct conf c;
    char buf[1024], err[512];

    for (size_t i = 0; i < conf_nkeys; i++) {
        conf_defaults(&c);
        CHECK_INT(conf_set(&c, conf_keys[i].name, conf_keys[i].default_value, err, sizeof(err)), 0);
        CHECK_INT(conf_get(&c, conf_keys[i].name, buf, sizeof(buf)), 0);
        CHECK(conf_keys[i].help != NULL && conf_keys[i].help[0] != '\0');
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(conf_keys[i].name, conf_keys[j].name) != 0);
        /* conf_get prints a default the way the table (and the docs) spell
         * it; WORKERS resolves to a number and the password is hidden. */
        if (strcmp(conf_keys[i].name, "WORKERS") != 0 &&
            strcmp(conf_keys[i].name, "REDIS_PASSWORD") != 0)
            CHECK_STR(buf, conf_keys[i].default_value);
    }
}

static void
test_unknown_key(void)
{
    struct conf c;
    char err[512];

    CHECK_INT(set_one(&c, "NO_SUCH_KEY", "1", err, sizeof(err)), -1);
    CHECK(starts_with(err, "NO_SUCH_KEY:"));
    /* Keys are case-sensitive, as environment variables are. */
    CHECK_INT(set_one(&c, "server_addr", ":1", err, sizeof(err)), -1);
    CHECK(starts_with(err, "server_addr:"));
}

static void
test_server_addr(void)
{
    static const struct {
        const char *value;
        const char *host;
        int port;
    } good[] = {
        {":8080", "", 8080},         {"127.0.0.1:9000", "127.0.0.1", 9000},
        {"[::1]:9000", "::1", 9000}, {"localhost:1", "localhost", 1},
        {":65535", "", 65535},       {"0.0.0.0:80", "0.0.0.0", 80},
    };
    static const char *const bad[] = {"8080",   ":0",       ":70000", "host:",     "",
                                      ":",      "::1:9000", "[::1]",  "[::1]9000", "[]:80",
                                      ":8080x", ":-1",      ": 80",   ":+80",      "[::1:80"};
    struct conf c;
    char err[512];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK_INT(set_one(&c, "SERVER_ADDR", good[i].value, err, sizeof(err)), 0);
        CHECK_STR(c.server_addr, good[i].value);
        CHECK_STR(c.server_host, good[i].host);
        CHECK_INT(c.server_port, good[i].port);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = set_one(&c, "SERVER_ADDR", bad[i], err, sizeof(err));
        if (rc != -1)
            printf("#   SERVER_ADDR '%s' accepted\n", bad[i]);
        CHECK_INT(rc, -1);
        CHECK(starts_with(err, "SERVER_ADDR:"));
    }
}

static void
test_redis_url(void)
{
    static const struct {
        const char *value;
        const char *host;
        int port;
        const char *unix_path;
        const char *password; /* NULL: none */
        int db;
    } good[] = {
        {"localhost:6379", "localhost", 6379, "", NULL, 0},
        {"redis.internal:7000", "redis.internal", 7000, "", NULL, 0},
        {"myhost", "myhost", 6379, "", NULL, 0},
        {"[::1]:6380", "::1", 6380, "", NULL, 0},
        {"redis://host", "host", 6379, "", NULL, 0},
        {"redis://host:6380/", "host", 6380, "", NULL, 0},
        {"redis://:pw@host:1234/2", "host", 1234, "", "pw", 2},
        {"redis://user:pw@host", "host", 6379, "", "pw", 0},
        {"redis://[::1]:6390/3", "::1", 6390, "", NULL, 3},
        {"/tmp/r.sock", "", 6379, "/tmp/r.sock", NULL, 0},
        {"unix:///tmp/r.sock", "", 6379, "/tmp/r.sock", NULL, 0},
        {"./r.sock", "", 6379, "./r.sock", NULL, 0},
    };
    static const char *const bad[] = {"",
                                      "host:0",
                                      "host:99999",
                                      "host:abc",
                                      "host:",
                                      ":6379",
                                      "a:b:c",
                                      "redis://",
                                      "redis://:pw@",
                                      "redis://host:6379/x",
                                      "redis://host:6379/70000",
                                      "redis://host/-1",
                                      "unix://",
                                      "[::1"};
    struct conf c;
    char err[512], longpath[200];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *pw;

        if (set_one(&c, "REDIS_URL", good[i].value, err, sizeof(err)) != 0) {
            printf("#   REDIS_URL '%s' refused: %s\n", good[i].value, err);
            CHECK(0);
            continue;
        }
        CHECK_STR(c.redis_url, good[i].value);
        CHECK_STR(c.redis_unix, good[i].unix_path);
        if (good[i].unix_path[0] == '\0') {
            CHECK_STR(c.redis_host, good[i].host);
            CHECK_INT(c.redis_port, good[i].port);
        }
        CHECK_INT(c.redis_db, good[i].db);
        pw = conf_redis_password(&c);
        if (good[i].password == NULL)
            CHECK(pw == NULL);
        else
            CHECK_STR(pw, good[i].password);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = set_one(&c, "REDIS_URL", bad[i], err, sizeof(err));
        if (rc != -1)
            printf("#   REDIS_URL '%s' accepted\n", bad[i]);
        CHECK_INT(rc, -1);
        CHECK(starts_with(err, "REDIS_URL:"));
    }

    /* sun_path holds 108 bytes with the NUL. */
    memset(longpath, 'p', sizeof(longpath));
    longpath[0] = '/';
    longpath[108] = '\0';
    CHECK_INT(set_one(&c, "REDIS_URL", longpath, err, sizeof(err)), -1);
    CHECK(starts_with(err, "REDIS_URL:"));
    longpath[107] = '\0';
    CHECK_INT(set_one(&c, "REDIS_URL", longpath, err, sizeof(err)), 0);
    CHECK_STR(c.redis_unix, longpath);
}

static void
test_redis_url_reset(void)
{
    /* Parsing a URL replaces everything the previous one set: a password or
     * database from an old URL must not survive a reload to a new one. */
    struct conf c;
    char err[512];

    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "REDIS_URL", "redis://:old@a:1/5", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "old");
    CHECK_INT(conf_set(&c, "REDIS_URL", "b:2", err, sizeof(err)), 0);
    CHECK(conf_redis_password(&c) == NULL);
    CHECK_INT(c.redis_db, 0);
    CHECK_STR(c.redis_host, "b");
    CHECK_INT(c.redis_port, 2);
    CHECK_INT(conf_set(&c, "REDIS_URL", "/tmp/x.sock", err, sizeof(err)), 0);
    CHECK_STR(c.redis_unix, "/tmp/x.sock");
    CHECK_INT(conf_set(&c, "REDIS_URL", "c:3", err, sizeof(err)), 0);
    CHECK_STR(c.redis_unix, "");
    CHECK_STR(c.redis_host, "c");
}

static void
test_redis_password_precedence(void)
{
    struct conf c;
    char err[512];

    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "REDIS_URL", "redis://:urlpw@host", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "urlpw");
    CHECK_INT(conf_set(&c, "REDIS_PASSWORD", "envpw", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "envpw");
    /* Order does not matter: a URL set later does not win either. */
    CHECK_INT(conf_set(&c, "REDIS_URL", "redis://:other@host", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "envpw");
    /* An empty REDIS_PASSWORD means unset, so the URL's applies again. */
    CHECK_INT(conf_set(&c, "REDIS_PASSWORD", "", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "other");
    /* "redis://:@host" has an empty password: nothing to AUTH with. */
    CHECK_INT(conf_set(&c, "REDIS_URL", "redis://:@host", err, sizeof(err)), 0);
    CHECK(conf_redis_password(&c) == NULL);
}

static void
test_sports(void)
{
    struct conf c;
    char err[512], buf[4096];

    CHECK_INT(set_one(&c, "SPORTS", " a , b ,, c ", err, sizeof(err)), 0);
    CHECK_INT(c.nsports, 3);
    CHECK_STR(c.sports[0], "a");
    CHECK_STR(c.sports[1], "b");
    CHECK_STR(c.sports[2], "c");

    /* Duplicates collapse, first occurrence keeps its place. */
    CHECK_INT(set_one(&c, "SPORTS", "b,a,b,a", err, sizeof(err)), 0);
    CHECK_INT(c.nsports, 2);
    CHECK_STR(c.sports[0], "b");
    CHECK_STR(c.sports[1], "a");

    CHECK_INT(
        set_one(&c, "SPORTS", "soccer_epl,americanfootball_nfl,tennis-atp.v2:x", err, sizeof(err)),
        0);
    CHECK_INT(c.nsports, 3);
    CHECK_STR(c.sports[2], "tennis-atp.v2:x");

    {
        static const char *const bad[] = {"",     ",,,",   " , ",         "bad sport",
                                          "nba!", "a,b c", "caf\xc3\xa9", "a/b"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            int rc = set_one(&c, "SPORTS", bad[i], err, sizeof(err));
            if (rc != -1)
                printf("#   SPORTS '%s' accepted\n", bad[i]);
            CHECK_INT(rc, -1);
            CHECK(starts_with(err, "SPORTS:"));
        }
    }

    /* Names of CONF_NAME_MAX - 1 bytes fit, one more does not. */
    memset(buf, 's', CONF_NAME_MAX - 1);
    buf[CONF_NAME_MAX - 1] = '\0';
    CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), 0);
    CHECK_INT(strlen(c.sports[0]), CONF_NAME_MAX - 1);
    buf[CONF_NAME_MAX - 1] = 's';
    buf[CONF_NAME_MAX] = '\0';
    CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), -1);
    CHECK(starts_with(err, "SPORTS:"));

    /* CONF_MAX_SPORTS distinct ones fit; one more does not, but repeats of
     * those already listed do not count against the limit. */
    {
        size_t off = 0;
        for (int i = 0; i < CONF_MAX_SPORTS; i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%ss%d", i ? "," : "", i);
        CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), 0);
        CHECK_INT(c.nsports, CONF_MAX_SPORTS);
        CHECK_STR(c.sports[CONF_MAX_SPORTS - 1], "s31");
        snprintf(buf + off, sizeof(buf) - off, ",s0,s5");
        CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), 0);
        CHECK_INT(c.nsports, CONF_MAX_SPORTS);
        snprintf(buf + off, sizeof(buf) - off, ",s%d", CONF_MAX_SPORTS);
        CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), -1);
        CHECK(starts_with(err, "SPORTS:"));
    }

    /* Absurdly long input is refused, not truncated into a different list. */
    memset(buf, 'a', sizeof(buf) - 1);
    buf[sizeof(buf) - 1] = '\0';
    for (size_t i = 10; i < sizeof(buf) - 1; i += 11)
        buf[i] = ',';
    CHECK_INT(set_one(&c, "SPORTS", buf, err, sizeof(err)), -1);
    CHECK(starts_with(err, "SPORTS:"));
}

static void
test_names(void)
{
    static const char *const keys[] = {"CONSUMER_GROUP", "CONSUMER_ID"};
    struct conf c;
    char err[512], name[CONF_NAME_MAX + 2];

    for (size_t k = 0; k < 2; k++) {
        CHECK_INT(set_one(&c, keys[k], "grp-1.a:b_c", err, sizeof(err)), 0);
        CHECK_STR(k == 0 ? c.consumer_group : c.consumer_id, "grp-1.a:b_c");
        /* Setting one must not touch the other. */
        CHECK_STR(k == 0 ? c.consumer_id : c.consumer_group, k == 0 ? "" : "ws-broadcaster");
        CHECK_INT(set_one(&c, keys[k], "", err, sizeof(err)), -1);
        CHECK(starts_with(err, keys[k]));
        CHECK_INT(set_one(&c, keys[k], "a b", err, sizeof(err)), -1);
        CHECK(starts_with(err, keys[k]));
        CHECK_INT(set_one(&c, keys[k], "a\tb", err, sizeof(err)), -1);
        CHECK_INT(set_one(&c, keys[k], "a*", err, sizeof(err)), -1);

        memset(name, 'g', sizeof(name));
        name[CONF_NAME_MAX - 1] = '\0';
        CHECK_INT(set_one(&c, keys[k], name, err, sizeof(err)), 0);
        name[CONF_NAME_MAX - 1] = 'g';
        name[CONF_NAME_MAX] = '\0';
        CHECK_INT(set_one(&c, keys[k], name, err, sizeof(err)), -1);
        CHECK(starts_with(err, keys[k]));
    }
}

static void
test_opportunities_stream(void)
{
    struct conf c;
    char err[512], name[CONF_STREAM_MAX + 2];

    CHECK_INT(set_one(&c, "OPPORTUNITIES_STREAM", "", err, sizeof(err)), 0);
    CHECK_STR(c.opportunities_stream, "");
    CHECK_INT(set_one(&c, "OPPORTUNITIES_STREAM", "opps:v2", err, sizeof(err)), 0);
    CHECK_STR(c.opportunities_stream, "opps:v2");
    CHECK_INT(set_one(&c, "OPPORTUNITIES_STREAM", "bad name", err, sizeof(err)), -1);
    CHECK(starts_with(err, "OPPORTUNITIES_STREAM:"));

    memset(name, 'o', sizeof(name));
    name[CONF_STREAM_MAX - 1] = '\0';
    CHECK_INT(set_one(&c, "OPPORTUNITIES_STREAM", name, err, sizeof(err)), 0);
    name[CONF_STREAM_MAX - 1] = 'o';
    name[CONF_STREAM_MAX] = '\0';
    CHECK_INT(set_one(&c, "OPPORTUNITIES_STREAM", name, err, sizeof(err)), -1);
    CHECK(starts_with(err, "OPPORTUNITIES_STREAM:"));
}

static void
test_workers(void)
{
    static const char *const bad[] = {"0",  "65", "-1", "abc", " 4",
                                      "4 ", "+4", "4x", "1.5", "99999999999999999999"};
    struct conf c;
    char err[512];

    CHECK_INT(set_one(&c, "WORKERS", "", err, sizeof(err)), 0);
    CHECK_INT(c.workers, ncpus());
    CHECK_INT(set_one(&c, "WORKERS", "auto", err, sizeof(err)), 0);
    CHECK_INT(c.workers, ncpus());
    CHECK_INT(set_one(&c, "WORKERS", "1", err, sizeof(err)), 0);
    CHECK_INT(c.workers, 1);
    CHECK_INT(set_one(&c, "WORKERS", "64", err, sizeof(err)), 0);
    CHECK_INT(c.workers, 64);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = set_one(&c, "WORKERS", bad[i], err, sizeof(err));
        if (rc != -1)
            printf("#   WORKERS '%s' accepted\n", bad[i]);
        CHECK_INT(rc, -1);
        CHECK(starts_with(err, "WORKERS:"));
    }
}

static void
test_numeric_ranges(void)
{
    /* Each numeric key at both ends of its range and one past each end. */
    static const struct {
        const char *key;
        const char *lo, *hi, *below, *above;
    } cases[] = {
        {"CLIENT_BUFFER", "1", "1000000", "0", "1000001"},
        {"RING_SIZE", "1024", "16777216", "512", "33554432"},
        {"MAX_MESSAGE_SIZE", "256", "16777216", "255", "16777217"},
        {"MAX_ENTRY_SIZE", "1024", "4194304", "1023", "4194305"},
        {"MAX_FILTER_VALUES", "1", "100000", "0", "100001"},
        {"MAX_FILTER_VALUE_LEN", "1", "4096", "0", "4097"},
        {"READ_COUNT", "1", "100000", "0", "100001"},
        {"HANDSHAKE_TIMEOUT", "1", "3600", "0", "3601"},
        {"MAX_HEADER_SIZE", "1024", "65535", "1023", "65536"},
        {"PING_INTERVAL", "0", "86400", "-1", "86401"},
        {"PING_TIMEOUT", "1", "3600", "0", "3601"},
        {"MAX_CLIENTS", "1", "10000000", "0", "10000001"},
        {"MAX_CLIENTS_PER_IP", "1", "10000000", "0", "10000001"},
        {"RATE_LIMIT", "1", "1000000", "0", "1000001"},
        {"RATE_BURST", "1", "1000000", "0", "1000001"},
    };
    struct conf c;
    char err[512], buf[64];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *key = cases[i].key;

        CHECK_INT(set_one(&c, key, cases[i].lo, err, sizeof(err)), 0);
        CHECK_INT(conf_get(&c, key, buf, sizeof(buf)), 0);
        CHECK_STR(buf, cases[i].lo);
        CHECK_INT(set_one(&c, key, cases[i].hi, err, sizeof(err)), 0);
        CHECK_INT(conf_get(&c, key, buf, sizeof(buf)), 0);
        CHECK_STR(buf, cases[i].hi);
        CHECK_INT(set_one(&c, key, cases[i].below, err, sizeof(err)), -1);
        CHECK(starts_with(err, key) && err[strlen(key)] == ':');
        CHECK_INT(set_one(&c, key, cases[i].above, err, sizeof(err)), -1);
        CHECK(starts_with(err, key) && err[strlen(key)] == ':');
        CHECK_INT(set_one(&c, key, "", err, sizeof(err)), -1);
        CHECK(starts_with(err, key));
        CHECK_INT(set_one(&c, key, "12abc", err, sizeof(err)), -1);
        CHECK_INT(set_one(&c, key, "-5", err, sizeof(err)), -1);
        /* 2^64 + 1024 would wrap to 1024 in a careless parser. */
        CHECK_INT(set_one(&c, key, "18446744073709552640", err, sizeof(err)), -1);
        CHECK(starts_with(err, key));
    }
}

static void
test_ring_size_power_of_two(void)
{
    struct conf c;
    char err[512];

    CHECK_INT(set_one(&c, "RING_SIZE", "4096", err, sizeof(err)), 0);
    CHECK_INT(c.ring_size, 4096);
    CHECK_INT(set_one(&c, "RING_SIZE", "65535", err, sizeof(err)), -1);
    CHECK(starts_with(err, "RING_SIZE:"));
    CHECK(strstr(err, "power of two") != NULL);
    CHECK_INT(set_one(&c, "RING_SIZE", "3000", err, sizeof(err)), -1);
    CHECK(starts_with(err, "RING_SIZE:"));
    CHECK_INT(set_one(&c, "RING_SIZE", "1000", err, sizeof(err)), -1);
    CHECK(starts_with(err, "RING_SIZE:"));
}

static void
test_log_level(void)
{
    static const struct {
        const char *value;
        int level;
    } good[] = {{"error", LOG_LEVEL_ERROR},
                {"warn", LOG_LEVEL_WARN},
                {"info", LOG_LEVEL_INFO},
                {"debug", LOG_LEVEL_DEBUG}};
    struct conf c;
    char err[512], buf[32];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK_INT(set_one(&c, "LOG_LEVEL", good[i].value, err, sizeof(err)), 0);
        CHECK_INT(c.log_level, good[i].level);
        CHECK_INT(conf_get(&c, "LOG_LEVEL", buf, sizeof(buf)), 0);
        CHECK_STR(buf, good[i].value);
    }
    CHECK_INT(set_one(&c, "LOG_LEVEL", "verbose", err, sizeof(err)), -1);
    CHECK(starts_with(err, "LOG_LEVEL:"));
    /* The message lists the names, from log.c's one list. */
    CHECK_STR(err, "LOG_LEVEL: expected error, warn, info or debug, got 'verbose'");
    CHECK_INT(set_one(&c, "LOG_LEVEL", "", err, sizeof(err)), -1);
    CHECK(starts_with(err, "LOG_LEVEL:"));
    /* Any case is read; conf_get prints log_level_name's spelling. */
    CHECK_INT(set_one(&c, "LOG_LEVEL", "DeBuG", err, sizeof(err)), 0);
    CHECK_INT(c.log_level, LOG_LEVEL_DEBUG);
    for (int i = 0; log_level_name(i) != NULL; i++) {
        CHECK_INT(log_level_parse(log_level_name(i)), i);
        CHECK_STR(log_level_name(i), good[i].value);
    }
    CHECK(log_level_name(-1) == NULL);
    CHECK(log_level_name(LOG_LEVEL_DEBUG + 1) == NULL);
}

static void
test_redis_password_value(void)
{
    struct conf c;
    char err[512], pw[300], buf[64];

    CHECK_INT(set_one(&c, "REDIS_PASSWORD", "s3cret with spaces", err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "s3cret with spaces");
    /* conf_get never prints the password itself (it ends up in `-t` output). */
    CHECK_INT(conf_get(&c, "REDIS_PASSWORD", buf, sizeof(buf)), 0);
    CHECK(strstr(buf, "s3cret") == NULL);
    CHECK(buf[0] != '\0');

    memset(pw, 'p', sizeof(pw));
    pw[sizeof(c.redis_password)] = '\0';
    CHECK_INT(set_one(&c, "REDIS_PASSWORD", pw, err, sizeof(err)), -1);
    CHECK(starts_with(err, "REDIS_PASSWORD:"));
    /* Errors get logged: the refused password is not in the message. */
    CHECK(strstr(err, "pppp") == NULL);
    pw[sizeof(c.redis_password) - 1] = '\0';
    CHECK_INT(set_one(&c, "REDIS_PASSWORD", pw, err, sizeof(err)), 0);
}

static void
test_allowed_origins(void)
{
    struct conf c;
    char err[512], long_value[1100];

    CHECK_INT(
        set_one(&c, "ALLOWED_ORIGINS", "https://a.example,https://b.example", err, sizeof(err)), 0);
    CHECK_STR(c.allowed_origins, "https://a.example,https://b.example");
    CHECK_INT(set_one(&c, "ALLOWED_ORIGINS", "https://a\tb", err, sizeof(err)), -1);
    CHECK(starts_with(err, "ALLOWED_ORIGINS:"));
    CHECK_INT(set_one(&c, "ALLOWED_ORIGINS", "https://a\nb", err, sizeof(err)), -1);
    memset(long_value, 'o', sizeof(long_value));
    long_value[sizeof(c.allowed_origins)] = '\0';
    CHECK_INT(set_one(&c, "ALLOWED_ORIGINS", long_value, err, sizeof(err)), -1);
    CHECK(starts_with(err, "ALLOWED_ORIGINS:"));
    long_value[sizeof(c.allowed_origins) - 1] = '\0';
    CHECK_INT(set_one(&c, "ALLOWED_ORIGINS", long_value, err, sizeof(err)), 0);
}

static void
test_get_round_trip(void)
{
    /* What conf_get prints, conf_set reads back to the same value: `-t`
     * output can be pasted into a config file. */
    static const struct {
        const char *key, *value;
    } set[] = {
        {"SERVER_ADDR", "[::1]:9000"},
        {"REDIS_URL", "redis://:pw@db:6380/4"},
        {"SPORTS", " x , y ,x"},
        {"OPPORTUNITIES_STREAM", ""},
        {"CONSUMER_GROUP", "g"},
        {"CONSUMER_ID", "i-2"},
        {"WORKERS", "3"},
        {"CLIENT_BUFFER", "17"},
        {"RING_SIZE", "2048"},
        {"MAX_MESSAGE_SIZE", "1000"},
        {"MAX_ENTRY_SIZE", "2000"},
        {"MAX_FILTER_VALUES", "9"},
        {"MAX_FILTER_VALUE_LEN", "99"},
        {"READ_COUNT", "7"},
        {"ALLOWED_ORIGINS", "https://x.example"},
        {"PING_INTERVAL", "0"},
        {"MAX_CLIENTS_PER_IP", "3"},
        {"RATE_BURST", "5"},
        {"LOG_LEVEL", "warn"},
    };
    struct conf a, b;
    char err[512], va[1024], vb[1024];

    conf_defaults(&a);
    for (size_t i = 0; i < sizeof(set) / sizeof(set[0]); i++)
        CHECK_INT(conf_set(&a, set[i].key, set[i].value, err, sizeof(err)), 0);
    conf_defaults(&b);
    for (size_t i = 0; i < conf_nkeys; i++) {
        const char *key = conf_keys[i].name;
        if (strcmp(key, "REDIS_PASSWORD") == 0)
            continue;
        CHECK_INT(conf_get(&a, key, va, sizeof(va)), 0);
        if (conf_set(&b, key, va, err, sizeof(err)) != 0) {
            printf("#   %s: conf_get gave '%s', conf_set refused it: %s\n", key, va, err);
            CHECK(0);
            continue;
        }
        CHECK_INT(conf_get(&b, key, vb, sizeof(vb)), 0);
        CHECK_STR(vb, va);
    }
    CHECK_INT(conf_get(&a, "SPORTS", va, sizeof(va)), 0);
    CHECK_STR(va, "x,y");
    CHECK_INT(conf_get(&a, "WORKERS", va, sizeof(va)), 0);
    CHECK_STR(va, "3");
    /* The URL's password is masked like a SECRET: the rest reads back. */
    CHECK_INT(conf_get(&a, "REDIS_URL", va, sizeof(va)), 0);
    CHECK_STR(va, "redis://:***@db:6380/4");
    CHECK_STR(b.redis_host, "db");
    CHECK_INT(b.redis_port, 6380);
    CHECK_INT(b.redis_db, 4);
}

static void
test_redis_url_password_hidden(void)
{
    /* Wherever REDIS_URL is shown (`-t`, the logs, error messages) its
     * password is ***; the password runs to the last '@', so one holding
     * '@' or '/' is hidden whole, and still used whole. */
    static const struct {
        const char *url, *shown, *password, *host;
        int db;
    } good[] = {
        {"redis://:SeCrEt@h:1/2", "redis://:***@h:1/2", "SeCrEt", "h", 2},
        {"redis://user:SeCrEt@h:1", "redis://user:***@h:1", "SeCrEt", "h", 0},
        {"redis://:Se@C/rEt@h:1/3", "redis://:***@h:1/3", "Se@C/rEt", "h", 3},
        {"redis://us:Se:CrEt@[::1]:1", "redis://us:***@[::1]:1", "Se:CrEt", "::1", 0},
        {"redis://SeCrEt@h", "redis://***@h", NULL, "h", 0}, /* a user alone: hidden too */
        {"redis://:@h", "redis://:***@h", NULL, "h", 0},
        {"redis://h:1/2", "redis://h:1/2", NULL, "h", 2},
        {"h:6379", "h:6379", NULL, "h", 0},
        {"/run/r@1.sock", "/run/r@1.sock", NULL, "", 0},
    };
    static const char *const bad[] = {
        "redis://:SeCrEt@h:notaport", "redis://:SeCrEt@h:1/x",
        "redis://:SeCrEt@",           ":SeCrEt@h:6379",
        "user:SeCrEt@h:6379",         "SeCrEt@h",
        "redis://u:SeCrEt@h:1:2",     "redis://:SeCrEt@h:99999/1",
    };
    struct conf c;
    char err[512], buf[1024], longurl[700], path[64];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *pw;

        if (set_one(&c, "REDIS_URL", good[i].url, err, sizeof(err)) != 0) {
            printf("#   REDIS_URL '%s' refused: %s\n", good[i].url, err);
            CHECK(0);
            continue;
        }
        CHECK_INT(conf_get(&c, "REDIS_URL", buf, sizeof(buf)), 0);
        CHECK_STR(buf, good[i].shown);
        CHECK(strstr(buf, "SeCrEt") == NULL && strstr(buf, "CrEt") == NULL);
        pw = conf_redis_password(&c);
        if (good[i].password == NULL)
            CHECK(pw == NULL);
        else
            CHECK_STR(pw, good[i].password);
        CHECK_STR(c.redis_host, good[i].host);
        CHECK_INT(c.redis_db, good[i].db);
        /* what is shown reads back to the same place */
        if (set_one(&c, "REDIS_URL", buf, err, sizeof(err)) != 0) {
            printf("#   shown '%s' refused: %s\n", buf, err);
            CHECK(0);
            continue;
        }
        CHECK_STR(c.redis_host, good[i].host);
        CHECK_INT(c.redis_db, good[i].db);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = set_one(&c, "REDIS_URL", bad[i], err, sizeof(err));
        if (rc != -1)
            printf("#   REDIS_URL '%s' accepted\n", bad[i]);
        CHECK_INT(rc, -1);
        CHECK(starts_with(err, "REDIS_URL:"));
        if (strstr(err, "CrEt") != NULL)
            printf("#   '%s': %s\n", bad[i], err);
        CHECK(strstr(err, "CrEt") == NULL);
    }
    /* Too long: not quoted either. */
    snprintf(longurl, sizeof(longurl), "redis://:SeCrEt%0600d@h", 0);
    CHECK_INT(set_one(&c, "REDIS_URL", longurl, err, sizeof(err)), -1);
    CHECK(starts_with(err, "REDIS_URL:"));
    CHECK(strstr(err, "CrEt") == NULL);
    /* A file line without '=' is not repeated: it may be the secret. */
    CHECK_INT(write_temp(path, sizeof(path), "REDIS_URL redis://:SeCrEt@h:1\n"), 0);
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "expected KEY=VALUE") != NULL);
    CHECK(strstr(err, "CrEt") == NULL);
    unlink(path);
}

static void
test_check_memory(void)
{
    /* The shared region may take half of the memory the process may use. */
    struct conf c;
    char err[512];

    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "RING_SIZE", "16777216", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&c, "MAX_ENTRY_SIZE", "4194304", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&c, "WORKERS", "2", err, sizeof(err)), 0);
    err[0] = '\0';
    CHECK_INT(conf_check_memory(&c, 9ULL << 30, 18ULL << 30, "MemTotal", err, sizeof(err)), 0);
    CHECK_STR(err, "");
    CHECK_INT(conf_check_memory(&c, (9ULL << 30) + 1, 18ULL << 30, "MemTotal", err, sizeof(err)),
              -1);
    /* The message names the setting, the sizes and where the limit comes from. */
    CHECK(starts_with(err, "RING_SIZE:"));
    CHECK(strstr(err, "16777216") != NULL);
    CHECK(strstr(err, "MAX_ENTRY_SIZE 4194304") != NULL);
    CHECK(strstr(err, "9.0 GiB") != NULL);
    CHECK(strstr(err, "18.0 GiB") != NULL);
    CHECK(strstr(err, "MemTotal") != NULL);
    CHECK_INT(conf_check_memory(&c, 600ULL << 20, 1ULL << 30, "RLIMIT_AS", err, sizeof(err)), -1);
    CHECK(strstr(err, "600.0 MiB") != NULL && strstr(err, "RLIMIT_AS") != NULL);
    /* Truncated to a short buffer, still terminated. */
    memset(err, 'x', 16);
    CHECK_INT(conf_check_memory(&c, 2, 2, "MemTotal", err, 16), -1);
    CHECK_INT(strlen(err), 15);
}

static void
test_restart_keys_changed(void)
{
    struct conf a, b;
    char err[512], buf[1024], small[8];

    conf_defaults(&a);
    conf_defaults(&b);
    memset(buf, 'x', sizeof(buf));
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "");

    /* SPORTS and LOG_LEVEL apply on reload: not listed. */
    CHECK_INT(conf_set(&b, "SPORTS", "a,b", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&b, "LOG_LEVEL", "debug", err, sizeof(err)), 0);
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "");

    /* Listed in table order, whatever order they were changed in. */
    CHECK_INT(conf_set(&b, "RING_SIZE", "1024", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&b, "SERVER_ADDR", ":9999", err, sizeof(err)), 0);
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "SERVER_ADDR,RING_SIZE");

    /* Setting a key to the value it already has is not a change. */
    conf_defaults(&b);
    CHECK_INT(conf_set(&b, "CLIENT_BUFFER", "256", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&b, "WORKERS", "auto", err, sizeof(err)), 0);
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "");

    /* Two different passwords print the same in conf_get; still a change. */
    CHECK_INT(conf_set(&a, "REDIS_PASSWORD", "one", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&b, "REDIS_PASSWORD", "two", err, sizeof(err)), 0);
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "REDIS_PASSWORD");
    /* The password never appears in the list. */
    CHECK(strstr(buf, "one") == NULL && strstr(buf, "two") == NULL);

    /* A short buffer is truncated, still terminated, never overrun. */
    CHECK_INT(conf_set(&b, "REDIS_URL", "other:1", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&b, "READ_COUNT", "3", err, sizeof(err)), 0);
    memset(small, 'x', sizeof(small));
    conf_restart_keys_changed(&a, &b, small, sizeof(small));
    CHECK_INT(strlen(small), sizeof(small) - 1);
    CHECK(strncmp(small, "REDIS_URL", sizeof(small) - 1) == 0);
    conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
    CHECK_STR(buf, "REDIS_URL,REDIS_PASSWORD,READ_COUNT");
}

static void
test_restart_keys_each_number(void)
{
    /* Every plain number, changed alone, is reported alone if it needs a
     * restart, and not at all if reload applies it: the reload check reads
     * the table, not a list of its own. */
    struct conf a, b;
    char err[512], buf[1024], value[32];

    conf_defaults(&a);
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];
        uint32_t v;

        if (k->type != CONF_TYPE_U32 || k->parse != NULL)
            continue;
        v = strcmp(k->default_value, "1") == 0 ? 2 : k->min;
        if (v == (uint32_t)strtoul(k->default_value, NULL, 10))
            v = k->max;
        snprintf(value, sizeof(value), "%u", v);
        b = a;
        CHECK_INT(conf_set(&b, k->name, value, err, sizeof(err)), 0);
        conf_restart_keys_changed(&a, &b, buf, sizeof(buf));
        CHECK_STR(buf, k->reloadable ? "" : k->name);
    }
}

static void
test_sport_stream(void)
{
    struct conf c;
    char err[512], buf[CONF_STREAM_MAX];

    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "SPORTS", "soccer_epl,tennis_atp", err, sizeof(err)), 0);
    CHECK_INT(conf_sport_stream(&c, 0, buf, sizeof(buf)), 0);
    CHECK_STR(buf, "odds.normalized.soccer_epl");
    CHECK_INT(conf_sport_stream(&c, 1, buf, sizeof(buf)), 0);
    CHECK_STR(buf, "odds.normalized.tennis_atp");
    /* One byte short of the name and its NUL. */
    CHECK_INT(conf_sport_stream(&c, 1, buf, strlen("odds.normalized.tennis_atp")), -1);
    CHECK_INT(conf_sport_stream(&c, 1, buf, strlen("odds.normalized.tennis_atp") + 1), 0);
}

static void
test_check(void)
{
    struct conf c;
    char err[512];

    conf_defaults(&c);
    CHECK_INT(conf_check(&c, err, sizeof(err)), 0);

    /* The opportunities stream may not be one of the odds streams. */
    CHECK_INT(conf_set(&c, "SPORTS", "soccer_epl,basketball_nba", err, sizeof(err)), 0);
    CHECK_INT(
        conf_set(&c, "OPPORTUNITIES_STREAM", "odds.normalized.basketball_nba", err, sizeof(err)),
        0);
    err[0] = '\0';
    CHECK_INT(conf_check(&c, err, sizeof(err)), -1);
    CHECK(starts_with(err, "OPPORTUNITIES_STREAM:"));
    CHECK(strstr(err, "basketball_nba") != NULL);

    /* Disabled (empty) never clashes. */
    CHECK_INT(conf_set(&c, "OPPORTUNITIES_STREAM", "", err, sizeof(err)), 0);
    CHECK_INT(conf_check(&c, err, sizeof(err)), 0);

    /* CONFLATE_AT: auto is half of CLIENT_BUFFER; never above it. */
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "CLIENT_BUFFER", "100", err, sizeof(err)), 0);
    conf_resolve_auto(&c);
    CHECK_INT(c.conflate_at, 50);
    CHECK_INT(conf_check(&c, err, sizeof(err)), 0);
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "CLIENT_BUFFER", "1", err, sizeof(err)), 0);
    conf_resolve_auto(&c);
    CHECK_INT(c.conflate_at, 1);
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "CONFLATE_AT", "300", err, sizeof(err)), 0);
    conf_resolve_auto(&c);
    err[0] = '\0';
    CHECK_INT(conf_check(&c, err, sizeof(err)), -1);
    CHECK(starts_with(err, "CONFLATE_AT:"));

    /* A filter value larger than a whole message could never be sent. */
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "MAX_MESSAGE_SIZE", "256", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&c, "MAX_FILTER_VALUE_LEN", "4096", err, sizeof(err)), 0);
    CHECK_INT(conf_check(&c, err, sizeof(err)), -1);
    CHECK(starts_with(err, "MAX_FILTER_VALUE_LEN:"));
    CHECK_INT(conf_set(&c, "MAX_FILTER_VALUE_LEN", "256", err, sizeof(err)), 0);
    CHECK_INT(conf_check(&c, err, sizeof(err)), 0);
}

/* CONSUMER_ID=auto: "<host>-<port>", the host made a valid name and cut to
 * fit; an explicit id is kept; `-t` shows the derived one. */
static void
test_consumer_id_auto(void)
{
    struct conf c;
    char buf[CONF_NAME_MAX], err[512], host[256], want[CONF_NAME_MAX + 16], shown[128];
    char longhost[200];

    conf_consumer_id("myhost", 8080, buf, sizeof(buf));
    CHECK_STR(buf, "myhost-8080");
    conf_consumer_id("web-1.example.org", 80, buf, sizeof(buf));
    CHECK_STR(buf, "web-1.example.org-80");
    /* Bytes a name may not hold, ':' included (the group's separator). */
    conf_consumer_id("a b:c/d\xc3\xa9", 9, buf, sizeof(buf));
    CHECK_STR(buf, "a-b-c-d---9");
    conf_consumer_id("", 8080, buf, sizeof(buf));
    CHECK_STR(buf, "localhost-8080");
    /* Cut to fit, the port whole: a valid name of at most 63 bytes. */
    memset(longhost, 'h', sizeof(longhost) - 1);
    longhost[sizeof(longhost) - 1] = '\0';
    conf_consumer_id(longhost, 65535, buf, sizeof(buf));
    CHECK_INT(strlen(buf), CONF_NAME_MAX - 1);
    CHECK(strcmp(buf + strlen(buf) - 6, "-65535") == 0);
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "CONSUMER_ID", buf, err, sizeof(err)), 0);

    /* Resolved from this host and SERVER_ADDR's port. */
    conf_defaults(&c);
    CHECK_INT(conf_get(&c, "CONSUMER_ID", shown, sizeof(shown)), 0);
    CHECK_STR(shown, "auto");
    CHECK_INT(conf_set(&c, "SERVER_ADDR", "127.0.0.1:9123", err, sizeof(err)), 0);
    conf_resolve_auto(&c);
    CHECK_INT(gethostname(host, sizeof(host)), 0);
    host[sizeof(host) - 1] = '\0';
    conf_consumer_id(host, 9123, want, sizeof(want));
    CHECK_STR(c.consumer_id, want);
    CHECK_INT(conf_get(&c, "CONSUMER_ID", shown, sizeof(shown)), 0);
    CHECK_STR(shown, want);
    CHECK_INT(conf_set(&c, "CONSUMER_ID", c.consumer_id, err, sizeof(err)), 0);

    /* "auto" explicitly is the default; a given id stays as given. */
    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "CONSUMER_ID", "fixed-1", err, sizeof(err)), 0);
    conf_resolve_auto(&c);
    CHECK_STR(c.consumer_id, "fixed-1");
    CHECK_INT(conf_set(&c, "CONSUMER_ID", "auto", err, sizeof(err)), 0);
    CHECK_STR(c.consumer_id, "");
}

/* The stop and log settings: their ranges and names. */
static void
test_drain_and_log_format(void)
{
    struct conf c;
    char err[512], shown[32];

    conf_defaults(&c);
    CHECK_INT(conf_set(&c, "DRAIN_SECONDS", "0", err, sizeof(err)), 0);
    CHECK_INT(c.drain_seconds, 0);
    CHECK_INT(conf_set(&c, "DRAIN_SECONDS", "3600", err, sizeof(err)), 0);
    CHECK_INT(conf_set(&c, "DRAIN_SECONDS", "3601", err, sizeof(err)), -1);
    CHECK(starts_with(err, "DRAIN_SECONDS:"));
    CHECK_INT(conf_set(&c, "DRAIN_SECONDS", "-1", err, sizeof(err)), -1);
    CHECK_INT(conf_set(&c, "RECONNECT_JITTER_MS", "0", err, sizeof(err)), 0);
    CHECK_INT(c.reconnect_jitter_ms, 0);
    CHECK_INT(conf_set(&c, "RECONNECT_JITTER_MS", "600001", err, sizeof(err)), -1);
    CHECK(starts_with(err, "RECONNECT_JITTER_MS:"));
    CHECK_INT(conf_set(&c, "LOG_FORMAT", "json", err, sizeof(err)), 0);
    CHECK_INT(c.log_format, LOG_FORMAT_JSON);
    CHECK_INT(conf_get(&c, "LOG_FORMAT", shown, sizeof(shown)), 0);
    CHECK_STR(shown, "json");
    CHECK_INT(conf_set(&c, "LOG_FORMAT", "logfmt", err, sizeof(err)), -1);
    CHECK(starts_with(err, "LOG_FORMAT:"));
    CHECK(strstr(err, "text or json") != NULL);
}

static void
test_load_file(void)
{
    static const char text[] = "# ws-broadcaster settings\n"
                               "\n"
                               "   \n"
                               "  # indented comment\n"
                               "SERVER_ADDR=127.0.0.1:9000\n"
                               "export REDIS_URL = \"redis://:secret@db:6380/1\"\n"
                               "SPORTS='a, b'\n"
                               "  LOG_LEVEL=debug  \r\n"
                               "OPPORTUNITIES_STREAM=\n"
                               "REDIS_PASSWORD=a=b#c\n"
                               "CLIENT_BUFFER=\"64\"\n"
                               "READ_COUNT=100";
    struct conf c;
    char path[64], err[512];

    if (write_temp(path, sizeof(path), text) != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    err[0] = '\0';
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), 0);
    CHECK_STR(err, "");
    unlink(path);
    CHECK_STR(c.server_host, "127.0.0.1");
    CHECK_INT(c.server_port, 9000);
    CHECK_STR(c.redis_url, "redis://:secret@db:6380/1");
    CHECK_STR(c.redis_host, "db");
    CHECK_INT(c.redis_port, 6380);
    CHECK_INT(c.redis_db, 1);
    CHECK_INT(c.nsports, 2);
    CHECK_STR(c.sports[0], "a");
    CHECK_STR(c.sports[1], "b");
    CHECK_INT(c.log_level, LOG_LEVEL_DEBUG);
    CHECK_STR(c.opportunities_stream, "");
    /* No inline comments: '#' and '=' inside a value are part of it. */
    CHECK_STR(conf_redis_password(&c), "a=b#c");
    CHECK_INT(c.client_buffer, 64);
    /* The last line has no newline and still counts. */
    CHECK_INT(c.read_count, 100);
    /* Untouched keys keep their defaults. */
    CHECK_STR(c.consumer_id, "");
    CHECK_INT(c.ring_size, 65536);
}

static void
test_load_file_quotes(void)
{
    static const char text[] = "CONSUMER_GROUP=\"g1'\n";
    struct conf c;
    char path[64], err[512], want[128];

    /* Quotes are stripped before validation: "" is an empty name, refused
     * like an empty value, and the error names the line. */
    if (write_temp(path, sizeof(path), "SERVER_ADDR=:1\nCONSUMER_ID=\"\"\n") != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2: CONSUMER_ID:", path);
    CHECK(starts_with(err, want));
    unlink(path);

    /* Mismatched quotes are not stripped: the value is refused as a name. */
    if (write_temp(path, sizeof(path), text) != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "CONSUMER_GROUP:") != NULL);
    unlink(path);

    /* One quote character alone is a value, not an empty pair. */
    if (write_temp(path, sizeof(path), "REDIS_PASSWORD=\"\n") != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "\"");
    unlink(path);
}

static void
test_load_file_errors(void)
{
    static const struct {
        const char *text;
        int line;
        const char *what; /* expected right after "PATH:LINE: " */
    } cases[] = {
        {"SERVER_ADDR=:1\nBOGUS_KEY=1\n", 2, "BOGUS_KEY:"},
        {"# c\n\ngarbage line\n", 3, "expected KEY=VALUE"},
        {"WORKERS=0\n", 1, "WORKERS:"},
        {"RING_SIZE=1000\n", 1, "RING_SIZE:"},
        {"=value\n", 1, ":"}, /* an empty key: "PATH:1: : unknown setting" */
        {"export\n", 1, "expected KEY=VALUE"},
    };
    struct conf c;
    char path[64], err[512], want[128];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (write_temp(path, sizeof(path), cases[i].text) != 0) {
            CHECK(0);
            return;
        }
        conf_defaults(&c);
        err[0] = '\0';
        CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
        snprintf(want, sizeof(want), "%s:%d: %s", path, cases[i].line, cases[i].what);
        if (!starts_with(err, want)) {
            printf("#   err '%s' does not start with '%s'\n", err, want);
            CHECK(0);
        }
        unlink(path);
    }
}

static void
test_load_file_long_line(void)
{
    char *text = malloc(6000);
    struct conf c;
    char path[64], err[512], want[128];

    if (text == NULL) {
        CHECK(0);
        return;
    }
    strcpy(text, "SERVER_ADDR=:1\nREDIS_PASSWORD=");
    memset(text + strlen(text), 'x', 5000);
    strcpy(text + 30 + 5000, "\n");
    if (write_temp(path, sizeof(path), text) != 0) {
        free(text);
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:2:", path);
    CHECK(starts_with(err, want));
    unlink(path);
    free(text);
}

static void
test_load_file_missing(void)
{
    struct conf c;
    char err[512];
    const char *path = "/tmp/wsb-test-conf-does-not-exist/none.conf";

    conf_defaults(&c);
    err[0] = '\0';
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), -1);
    CHECK(starts_with(err, path));
    CHECK(strstr(err, "No such file") != NULL);
}

static void
test_load_file_empty(void)
{
    struct conf c, d;
    char path[64], err[512];

    if (write_temp(path, sizeof(path), "") != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    conf_defaults(&d);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), 0);
    CHECK(memcmp(&c, &d, sizeof(c)) == 0);
    unlink(path);
}

static void
test_apply_env(void)
{
    struct conf c;
    char path[64], err[512];

    clear_env();
    if (write_temp(path, sizeof(path), "SERVER_ADDR=:9000\nCLIENT_BUFFER=10\n") != 0) {
        CHECK(0);
        return;
    }
    conf_defaults(&c);
    CHECK_INT(conf_load_file(&c, path, err, sizeof(err)), 0);
    unlink(path);

    /* No variables: nothing changes. */
    CHECK_INT(conf_apply_env(&c, err, sizeof(err)), 0);
    CHECK_INT(c.server_port, 9000);

    setenv("SERVER_ADDR", ":9100", 1);
    setenv("SPORTS", "x,y", 1);
    /* Set but empty is a value: OPPORTUNITIES_STREAM="" disables it. */
    setenv("OPPORTUNITIES_STREAM", "", 1);
    CHECK_INT(conf_apply_env(&c, err, sizeof(err)), 0);
    CHECK_INT(c.server_port, 9100);
    CHECK_INT(c.nsports, 2);
    CHECK_STR(c.opportunities_stream, "");
    CHECK_INT(c.client_buffer, 10); /* from the file, not overridden */

    setenv("WORKERS", "0", 1);
    err[0] = '\0';
    CHECK_INT(conf_apply_env(&c, err, sizeof(err)), -1);
    CHECK(strstr(err, "WORKERS:") != NULL);
    clear_env();
}

static void
test_env_password_wins(void)
{
    struct conf c;
    char path[64], err[512];

    clear_env();
    if (write_temp(path, sizeof(path), "REDIS_URL=redis://:filepw@db:6379\n") != 0) {
        CHECK(0);
        return;
    }
    setenv("REDIS_PASSWORD", "envpw", 1);
    CHECK_INT(conf_load(&c, path, err, sizeof(err)), 0);
    CHECK_STR(conf_redis_password(&c), "envpw");
    CHECK_STR(c.redis_host, "db");
    clear_env();
    unlink(path);
}

static void
test_load(void)
{
    struct conf c;
    char path[64], err[512];

    clear_env();
    /* The file alone is valid; the environment makes the combination clash,
     * which only conf_check (run last by conf_load) can see. */
    if (write_temp(path, sizeof(path), "SPORTS=soccer_epl\nRING_SIZE=2048\n") != 0) {
        CHECK(0);
        return;
    }
    CHECK_INT(conf_load(&c, path, err, sizeof(err)), 0);
    CHECK_STR(c.sports[0], "soccer_epl");
    CHECK_INT(c.ring_size, 2048);
    CHECK_STR(c.server_addr, ":8080");

    setenv("OPPORTUNITIES_STREAM", "odds.normalized.soccer_epl", 1);
    err[0] = '\0';
    CHECK_INT(conf_load(&c, path, err, sizeof(err)), -1);
    CHECK(starts_with(err, "OPPORTUNITIES_STREAM:"));
    clear_env();

    /* conf_load starts from the defaults: nothing of a previous load stays. */
    memset(&c, 0x5a, sizeof(c));
    CHECK_INT(conf_load(&c, path, err, sizeof(err)), 0);
    CHECK_INT(c.client_buffer, 256);
    unlink(path);

    CHECK_INT(conf_load(&c, "/tmp/wsb-test-conf-does-not-exist/x.conf", err, sizeof(err)), -1);
}

/* ---- the docs list every setting -------------------------------------------- */

static int
report_missing(const char *path, const unsigned char *seen)
{
    int missing = 0;

    for (size_t i = 0; i < conf_nkeys; i++) {
        if (!seen[i]) {
            printf("#   %s: no line for %s\n", path, conf_keys[i].name);
            missing++;
        }
    }
    return missing;
}

/*
 * A KEY=VALUE file of examples (env.template, etc/ws-broadcaster.conf):
 * "KEY=VALUE" lines, commented out ("#KEY=", "# KEY=") or not.  Each KEY
 * must be a setting, each setting must have a line, and where the file says
 * its values are the defaults (all lines, or the commented ones) they must
 * be.  Returns the number of problems, printed.
 */
static int
check_key_file(const char *path, int defaults_everywhere)
{
    unsigned char seen[256] = {0};
    char line[1024];
    int bad = 0;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        printf("#   cannot open %s: the unit tests run from the repository root\n", path);
        return 1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *p = line;
        const struct conf_key *k;
        size_t len;
        int commented = 0;

        line[strcspn(line, "\r\n")] = '\0';
        if (*p == '#') {
            commented = 1;
            for (p++; *p == ' '; p++)
                ;
        }
        len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (len == 0 || p[len] != '=')
            continue; /* prose */
        p[len] = '\0';
        k = conf_key_find(p);
        if (k == NULL) {
            printf("#   %s: %s is not a setting\n", path, p);
            bad++;
            continue;
        }
        seen[k - conf_keys] = 1;
        if ((defaults_everywhere || commented) && strcmp(p + len + 1, k->default_value) != 0) {
            printf("#   %s: %s=%s, but the default is '%s'\n", path, p, p + len + 1,
                   k->default_value);
            bad++;
        }
    }
    fclose(fp);
    return bad + report_missing(path, seen);
}

/*
 * README.md's table under "## Settings": rows "| KEY | `default` | meaning |"
 * (the KEY may be in backticks).  Every setting has a row, every row is a
 * setting, and a non-empty default is shown as `default`.
 */
static int
check_readme(const char *path)
{
    unsigned char seen[256] = {0};
    char line[1024];
    int bad = 0, in_settings = 0;
    FILE *fp = fopen(path, "r");

    if (fp == NULL) {
        printf("#   cannot open %s: the unit tests run from the repository root\n", path);
        return 1;
    }
    while (fgets(line, sizeof(line), fp) != NULL) {
        char *cell, *end, want[256];
        const struct conf_key *k;

        line[strcspn(line, "\r\n")] = '\0';
        if (strncmp(line, "## ", 3) == 0)
            in_settings = strcmp(line, "## Settings") == 0;
        if (!in_settings || line[0] != '|')
            continue;
        cell = line + 1 + strspn(line + 1, " `");
        end = cell + strspn(cell, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_");
        if (end == cell || strspn(end, " `") == 0 || end[strspn(end, " `")] != '|')
            continue; /* the header and the |---| line */
        *end = '\0';
        k = conf_key_find(cell);
        if (k == NULL) {
            printf("#   %s: %s is not a setting\n", path, cell);
            bad++;
            continue;
        }
        seen[k - conf_keys] = 1;
        snprintf(want, sizeof(want), "| `%s` |", k->default_value);
        if (k->default_value[0] != '\0' && strstr(end + 1, want) == NULL) {
            printf("#   %s: the row of %s does not show its default `%s`\n", path, cell,
                   k->default_value);
            bad++;
        }
    }
    fclose(fp);
    return bad + report_missing(path, seen);
}

static void
test_docs_list_every_setting(void)
{
    CHECK(conf_nkeys <= 256); /* seen[] above */
    /* env.template: "Every value below is the built-in default". */
    CHECK_INT(check_key_file("env.template", 1), 0);
    /* The config file: "Commented-out lines show the built-in defaults". */
    CHECK_INT(check_key_file(CONF_DEFAULT_PATH, 0), 0);
    CHECK_INT(check_readme("README.md"), 0);
}

TEST_MAIN(TEST(test_defaults), TEST(test_defaults_table), TEST(test_unknown_key),
          TEST(test_server_addr), TEST(test_redis_url), TEST(test_redis_url_reset),
          TEST(test_redis_password_precedence), TEST(test_sports), TEST(test_names),
          TEST(test_opportunities_stream), TEST(test_workers), TEST(test_numeric_ranges),
          TEST(test_ring_size_power_of_two), TEST(test_log_level), TEST(test_redis_password_value),
          TEST(test_allowed_origins), TEST(test_get_round_trip),
          TEST(test_redis_url_password_hidden), TEST(test_check_memory),
          TEST(test_restart_keys_changed), TEST(test_restart_keys_each_number),
          TEST(test_sport_stream), TEST(test_check), TEST(test_consumer_id_auto),
          TEST(test_drain_and_log_format), TEST(test_load_file), TEST(test_load_file_quotes),
          TEST(test_load_file_errors), TEST(test_load_file_long_line), TEST(test_load_file_missing),
          TEST(test_load_file_empty), TEST(test_apply_env), TEST(test_env_password_wins),
          TEST(test_load), TEST(test_docs_list_every_setting))
