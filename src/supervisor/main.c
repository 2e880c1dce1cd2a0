/*
 * ws-broadcaster: command line, configuration, then the supervisor.
 */
#include "sup.h"
#include "../common/conf.h"
#include "../common/log.h"

#include <stdio.h>
#include <string.h>

static void
usage(FILE *out)
{
    fprintf(out,
            "Usage: ws-broadcaster [-c PATH] [-t] [--help] [--version]\n"
            "\n"
            "Streams normalized odds from Redis Streams to WebSocket clients.\n"
            "\n"
            "  -c, --config PATH  config file of KEY=VALUE lines (default %s,\n"
            "                     used if present); environment variables of the\n"
            "                     same names override it\n"
            "  -t, --test         check the configuration and exit (0 if valid)\n"
            "  -h, --help         show this help\n"
            "  -v, --version      show the version\n"
            "\n"
            "Settings (default):\n",
            CONF_DEFAULT_PATH);
    for (size_t i = 0; i < conf_nkeys; i++)
        fprintf(out, "  %-22s %s (%s)\n", conf_keys[i].name, conf_keys[i].help,
                conf_keys[i].default_value[0] ? conf_keys[i].default_value : "empty");
    fprintf(out, "\nSignals: SIGHUP reloads SPORTS and LOG_LEVEL; SIGTERM/SIGINT stop.\n");
}

int
main(int argc, char **argv)
{
    const char *path = NULL;
    int test_only = 0;
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

    if (conf_load(&conf, path, err, sizeof(err)) != 0) {
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
