/*
 * ws-broadcaster: command line, configuration, then the supervisor.
 */
#include "groups.h"
#include "probe.h"
#include "sup.h"
#include "../worker/auth.h"
#include "../common/conf.h"
#include "../common/log.h"
#include "../common/shm.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sysinfo.h>

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: ws-broadcaster [-c PATH] [-t] [--help] [--version]\n"
            "       ws-broadcaster [-c PATH] --groups | --groups-delete-idle DURATION\n"
            "       ws-broadcaster --probe URL\n"
            "\n"
            "Streams normalized odds from Redis Streams to WebSocket clients.\n"
            "\n"
            "  -c, --config PATH  config file of KEY=VALUE lines (default %s,\n"
            "                     used if present); environment variables of the\n"
            "                     same names override it\n"
            "  -t, --test         check the configuration and exit (0 if valid)\n"
            "  --groups           list this service's consumer groups (CONSUMER_GROUP\n"
            "                     prefix) on the configured streams: consumers,\n"
            "                     pending entries, idle time\n"
            "  --groups-delete-idle DURATION\n"
            "                     delete those whose consumers have all been idle\n"
            "                     longer than DURATION (90s, 30m, 1h, 2d), never this\n"
            "                     configuration's own (CONSUMER_ID)\n"
            "  --probe URL        GET an http:// URL (within %d ms); exit 0 on a 2xx\n"
            "                     answer, 1 otherwise (a health check without curl)\n"
            "  -h, --help         show this help\n"
            "  -v, --version      show the version\n"
            "\n"
            "Settings (default):\n",
            CONF_DEFAULT_PATH, PROBE_TIMEOUT_MS);
    for (size_t i = 0; i < conf_nkeys; i++)
        fprintf(out, "  %-22s %s (%s)\n", conf_keys[i].name, conf_keys[i].help,
                conf_keys[i].default_value[0] ? conf_keys[i].default_value : "empty");
    fprintf(out, "\nSignals: SIGHUP reloads SPORTS and LOG_LEVEL; SIGTERM/SIGINT drain and stop\n"
                 "(a second one ends the drain at once).\n");
}

/*
 * Refuse a ring the host cannot hold, before anything is mapped.  Found only
 * at start, it is an mmap() failure and exit 1, which systemd restarts
 * forever; as a configuration error it is exit 78, from `-t` too.
 *
 * The measure is MemTotal (sysinfo), not MemAvailable: the ring's pages are
 * touched only as it fills, days after the start perhaps, so what happens
 * to be free at the moment of `-t` says nothing about it, and a
 * configuration must pass or fail alike on the same host.  RLIMIT_AS, when
 * lower (ulimit -v, systemd LimitAS=), bounds every mapping of the process
 * whatever the host has.  Neither sees a cgroup's memory limit.
 */
static int
main_check_memory(const struct conf *c, char *err, size_t errlen)
{
    uint64_t region = shm_region_size((uint32_t)c->workers, c->ring_size, c->max_entry_size,
                                      shm_addr_slots_for(c->max_connections, c->max_clients));
    uint64_t memory = 0;
    const char *name = "MemTotal";
    struct sysinfo si;
    struct rlimit rl;

    if (sysinfo(&si) == 0)
        memory = (uint64_t)si.totalram * si.mem_unit;
    else
        fprintf(stderr, "ws-broadcaster: sysinfo() failed: %s\n", strerror(errno));
    if (getrlimit(RLIMIT_AS, &rl) != 0) {
        fprintf(stderr, "ws-broadcaster: getrlimit(RLIMIT_AS) failed: %s\n", strerror(errno));
    } else if (rl.rlim_cur != RLIM_INFINITY && (memory == 0 || rl.rlim_cur < memory)) {
        memory = rl.rlim_cur;
        name = "RLIMIT_AS";
    }
    if (memory == 0) {
        fprintf(stderr, "ws-broadcaster: the memory of this host is unknown; RING_SIZE "
                        "not checked against it\n");
        return 0;
    }
    return conf_check_memory(c, region, memory, name, err, errlen);
}

int
main(int argc, char **argv)
{
    const char *path = NULL;
    int test_only = 0, groups = 0, groups_delete = 0;
    uint64_t idle_ms = 0;
    struct conf conf;
    char err[512];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "-v") == 0 || strcmp(a, "--version") == 0) {
            printf("ws-broadcaster %s\n", WSB_VERSION);
            return 0;
        } else if (strcmp(a, "-t") == 0 || strcmp(a, "--test") == 0) {
            test_only = 1;
        } else if (strcmp(a, "--probe") == 0 && i + 1 < argc) {
            /* No configuration: a health check must work wherever the
             * binary does. */
            return probe_run(argv[i + 1], PROBE_TIMEOUT_MS);
        } else if (strcmp(a, "--groups") == 0) {
            groups = 1;
        } else if (strcmp(a, "--groups-delete-idle") == 0 && i + 1 < argc) {
            if (groups_parse_duration(argv[++i], &idle_ms) != 0) {
                fprintf(stderr,
                        "ws-broadcaster: --groups-delete-idle: '%s' is not a duration above 0 "
                        "(90s, 30m, 1h, 2d, 1h30m)\n",
                        argv[i]);
                return 2;
            }
            groups = groups_delete = 1;
        } else if ((strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else {
            fprintf(stderr, "ws-broadcaster: unknown or incomplete option '%s'\n\n", a);
            usage(stderr);
            return 2;
        }
    }

    if (groups) {
        /* Only what Redis needs: no memory to map, no keys to read. */
        if (conf_load(&conf, path, err, sizeof(err)) != 0) {
            fprintf(stderr, "ws-broadcaster: invalid configuration: %s\n", err);
            return SUP_EXIT_CONFIG;
        }
        return groups_main(&conf, groups_delete, idle_ms);
    }
    if (conf_load(&conf, path, err, sizeof(err)) != 0 ||
        main_check_memory(&conf, err, sizeof(err)) != 0 ||
        auth_check_config(&conf, err, sizeof(err)) != 0) {
        fprintf(stderr, "ws-broadcaster: invalid configuration: %s\n", err);
        return SUP_EXIT_CONFIG;
    }
    if (test_only) {
        fprintf(stderr, "ws-broadcaster: configuration %s is valid\n",
                path ? path : CONF_DEFAULT_PATH);
        for (size_t i = 0; i < conf_nkeys; i++) {
            char value[1024];
            conf_get(&conf, conf_keys[i].name, value, sizeof(value));
            fprintf(stderr, "  %s=%s\n", conf_keys[i].name, value);
        }
        return 0;
    }
    return sup_run(&conf, path);
}
