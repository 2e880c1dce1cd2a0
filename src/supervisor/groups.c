#include "groups.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- pure parts ---------------------------------------------------------- */

int
groups_parse_duration(const char *s, uint64_t *ms)
{
    uint64_t total = 0;

    if (*s == '\0')
        return -1;
    while (*s != '\0') {
        uint64_t n = 0, unit;
        const char *digits = s;

        while (isdigit((unsigned char)*s)) {
            if (n > UINT64_MAX / 10 / 86400000ULL)
                return -1;
            n = n * 10 + (uint64_t)(*s++ - '0');
        }
        if (s == digits)
            return -1;
        if (strncmp(s, "ms", 2) == 0) {
            unit = 1;
            s += 2;
        } else if (*s == 's' || *s == '\0') {
            unit = 1000; /* a bare number: seconds */
            s += *s == 's';
        } else if (*s == 'm') {
            unit = 60000;
            s++;
        } else if (*s == 'h') {
            unit = 3600000;
            s++;
        } else if (*s == 'd') {
            unit = 86400000;
            s++;
        } else {
            return -1;
        }
        if (total > UINT64_MAX - n * unit)
            return -1;
        total += n * unit;
    }
    if (total == 0)
        return -1;
    *ms = total;
    return 0;
}

void
groups_format_duration(uint64_t ms, char *buf, size_t size)
{
    uint64_t s = ms / 1000;

    if (ms < 1000)
        snprintf(buf, size, "%llums", (unsigned long long)ms);
    else if (s < 60)
        snprintf(buf, size, "%.1fs", (double)ms / 1000.0);
    else if (s < 3600)
        snprintf(buf, size, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else if (s < 86400)
        snprintf(buf, size, "%lluh%02llum", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60));
    else
        snprintf(buf, size, "%llud%02lluh", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600));
}

enum groups_verdict
groups_judge(const struct groups_entry *e, const char *own, uint64_t idle_ms)
{
    if (strcmp(e->name, own) == 0)
        return GROUPS_KEEP_OWN;
    if (e->consumers == 0 || e->idle_ms < 0)
        return GROUPS_KEEP_NEVER_READ;
    return (uint64_t)e->idle_ms > idle_ms ? GROUPS_DELETE : GROUPS_KEEP_ACTIVE;
}

/* ---- Redis ----------------------------------------------------------------- */

struct groups_list {
    struct groups_entry *v;
    size_t n, cap;
};

static struct groups_entry *
groups_add(struct groups_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        struct groups_entry *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    memset(&l->v[l->n], 0, sizeof(l->v[0]));
    return &l->v[l->n++];
}

/* A command's reply, or NULL with the failure on stderr. */
static redisReply *
groups_command(redisContext *rc, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(rc, argc, argv, NULL);

    if (r == NULL)
        fprintf(stderr, "ws-broadcaster: redis %s %s failed: %s\n", argv[0], argv[1],
                rc->errstr[0] ? rc->errstr : "connection lost");
    return r;
}

static redisContext *
groups_connect(const struct conf *c, const char *shown)
{
    struct timeval ct = {GROUPS_CONNECT_TIMEOUT_MS / 1000, GROUPS_CONNECT_TIMEOUT_MS % 1000 * 1000};
    struct timeval rt = {GROUPS_COMMAND_TIMEOUT_MS / 1000, GROUPS_COMMAND_TIMEOUT_MS % 1000 * 1000};
    const char *password = conf_redis_password(c);
    redisContext *rc;
    redisReply *r;

    if (c->redis_unix[0] != '\0')
        rc = redisConnectUnixWithTimeout(c->redis_unix, ct);
    else
        rc = redisConnectWithTimeout(c->redis_host, c->redis_port, ct);
    if (rc == NULL || rc->err) {
        fprintf(stderr, "ws-broadcaster: connect to redis %s failed: %s\n", shown,
                rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return NULL;
    }
    if (redisSetTimeout(rc, rt) != REDIS_OK) {
        fprintf(stderr, "ws-broadcaster: redis %s: cannot set a timeout\n", shown);
        redisFree(rc);
        return NULL;
    }
    if (password != NULL) {
        const char *argv[] = {"AUTH", password};
        r = redisCommandArgv(rc, 2, argv, NULL);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ws-broadcaster: redis AUTH failed: %s\n", r ? r->str : rc->errstr);
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    if (c->redis_db != 0) {
        char db[16];
        const char *argv[] = {"SELECT", db};
        snprintf(db, sizeof(db), "%d", c->redis_db);
        r = groups_command(rc, 2, argv);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            if (r != NULL)
                fprintf(stderr, "ws-broadcaster: redis SELECT %s failed: %s\n", db, r->str);
            freeReplyObject(r);
            redisFree(rc);
            return NULL;
        }
        freeReplyObject(r);
    }
    return rc;
}

/* The value of key in an XINFO map (a flat array of key, value), or NULL. */
static const redisReply *
groups_field(const redisReply *map, const char *key)
{
    if (map == NULL || map->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < map->elements; i += 2) {
        const redisReply *k = map->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) &&
            strcmp(k->str, key) == 0)
            return map->element[i + 1];
    }
    return NULL;
}

static long long
groups_int(const redisReply *map, const char *key, long long dflt)
{
    const redisReply *v = groups_field(map, key);

    if (v == NULL)
        return dflt;
    if (v->type == REDIS_REPLY_INTEGER)
        return v->integer;
    if (v->type == REDIS_REPLY_STRING)
        return strtoll(v->str, NULL, 10);
    return dflt;
}

static void
groups_str(const redisReply *map, const char *key, char *buf, size_t size)
{
    const redisReply *v = groups_field(map, key);

    if (v != NULL && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS))
        snprintf(buf, size, "%s", v->str);
    else
        snprintf(buf, size, "-");
}

/* e's consumers: count, names, the smallest idle.  0, -1 on a failure. */
static int
groups_consumers(redisContext *rc, struct groups_entry *e)
{
    const char *argv[] = {"XINFO", "CONSUMERS", e->stream, e->name};
    redisReply *r = groups_command(rc, 4, argv);
    size_t off = 0;

    if (r == NULL)
        return -1;
    e->idle_ms = -1;
    e->consumers = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "ws-broadcaster: XINFO CONSUMERS %s %s: %s\n", e->stream, e->name,
                r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *m = r->element[i];
        long long idle = groups_int(m, "idle", -1);
        char name[128];

        groups_str(m, "name", name, sizeof(name));
        e->consumers++;
        if (idle >= 0 && (e->idle_ms < 0 || idle < e->idle_ms))
            e->idle_ms = idle;
        if (off < sizeof(e->members))
            off += (size_t)snprintf(e->members + off, sizeof(e->members) - off, "%s%s",
                                    off ? "," : "", name);
    }
    if (e->consumers == 0)
        snprintf(e->members, sizeof(e->members), "-");
    freeReplyObject(r);
    return 0;
}

/* This service's groups on stream into l.  0; -1 on a failure (a stream
 * that does not exist has no groups: 0). */
static int
groups_of_stream(redisContext *rc, const char *stream, const char *prefix, struct groups_list *l)
{
    const char *argv[] = {"XINFO", "GROUPS", stream};
    redisReply *r = groups_command(rc, 3, argv);
    size_t plen = strlen(prefix);
    int rc2 = 0;

    if (r == NULL)
        return -1;
    if (r->type == REDIS_REPLY_ERROR) {
        int missing = strstr(r->str, "no such key") != NULL;
        if (!missing)
            fprintf(stderr, "ws-broadcaster: XINFO GROUPS %s: %s\n", stream, r->str);
        freeReplyObject(r);
        return missing ? 0 : -1;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *g = r->element[i];
        char name[256];
        struct groups_entry *e;

        groups_str(g, "name", name, sizeof(name));
        if (strncmp(name, prefix, plen) != 0)
            continue; /* another service's group */
        if ((e = groups_add(l)) == NULL) {
            fprintf(stderr, "ws-broadcaster: out of memory\n");
            rc2 = -1;
            break;
        }
        snprintf(e->stream, sizeof(e->stream), "%s", stream);
        snprintf(e->name, sizeof(e->name), "%s", name);
        e->pending = groups_int(g, "pending", 0);
        groups_str(g, "last-delivered-id", e->last_id, sizeof(e->last_id));
        if (groups_consumers(rc, e) != 0) {
            rc2 = -1;
            break;
        }
    }
    freeReplyObject(r);
    return rc2;
}

static const char *
groups_note(enum groups_verdict v, int delete)
{
    switch (v) {
    case GROUPS_KEEP_OWN:
        return "this instance";
    case GROUPS_KEEP_NEVER_READ:
        return "no consumer: kept";
    case GROUPS_DELETE:
        return delete ? "idle: deleting" : "";
    default:
        return "";
    }
}

static void
groups_print(const struct groups_list *l, const char *own, int delete, uint64_t idle_ms)
{
    int ws = 6, wg = 5, wc = 9;

    for (size_t i = 0; i < l->n; i++) {
        int n;
        if ((n = (int)strlen(l->v[i].stream)) > ws)
            ws = n;
        if ((n = (int)strlen(l->v[i].name)) > wg)
            wg = n;
        if ((n = (int)strlen(l->v[i].members)) > wc)
            wc = n;
    }
    printf("%-*s  %-*s  %-*s  %8s  %9s  %-21s  %s\n", ws, "STREAM", wg, "GROUP", wc, "CONSUMERS",
           "PENDING", "IDLE", "LAST-DELIVERED", "NOTE");
    for (size_t i = 0; i < l->n; i++) {
        const struct groups_entry *e = &l->v[i];
        char idle[32];

        if (e->idle_ms < 0)
            snprintf(idle, sizeof(idle), "-");
        else
            groups_format_duration((uint64_t)e->idle_ms, idle, sizeof(idle));
        printf("%-*s  %-*s  %-*s  %8lld  %9s  %-21s  %s\n", ws, e->stream, wg, e->name, wc,
               e->members, e->pending, idle, e->last_id,
               groups_note(groups_judge(e, own, delete ? idle_ms : UINT64_MAX), delete));
    }
}

int
groups_main(const struct conf *c, int delete, uint64_t idle_ms)
{
    char own[2 * CONF_NAME_MAX + 2], prefix[CONF_NAME_MAX + 2], shown[600];
    struct groups_list l = {NULL, 0, 0};
    redisContext *rc;
    size_t deleted = 0, failed = 0;
    int status = 0;

    snprintf(own, sizeof(own), "%s:%s", c->consumer_group, c->consumer_id);
    snprintf(prefix, sizeof(prefix), "%s:", c->consumer_group);
    if (conf_get(c, "REDIS_URL", shown, sizeof(shown)) != 0)
        snprintf(shown, sizeof(shown), "?");
    rc = groups_connect(c, shown);
    if (rc == NULL)
        return 1;
    for (int i = 0; i <= c->nsports && status == 0; i++) {
        char stream[CONF_STREAM_MAX];

        if (i < c->nsports)
            (void)conf_sport_stream(c, i, stream, sizeof(stream)); /* conf_check: it fits */
        else if (c->opportunities_stream[0] != '\0')
            snprintf(stream, sizeof(stream), "%s", c->opportunities_stream);
        else
            break;
        if (groups_of_stream(rc, stream, prefix, &l) != 0)
            status = 1;
    }
    if (status == 0) {
        printf("Groups %s* on the streams of this configuration (redis %s); this instance's "
               "group is %s.\n",
               prefix, shown, own);
        groups_print(&l, own, delete, idle_ms);
    }
    for (size_t i = 0; status == 0 && delete &&i < l.n; i++) {
        const struct groups_entry *e = &l.v[i];
        const char *argv[] = {"XGROUP", "DESTROY", e->stream, e->name};
        char idle[32];
        redisReply *r;

        if (groups_judge(e, own, idle_ms) != GROUPS_DELETE)
            continue;
        groups_format_duration((uint64_t)e->idle_ms, idle, sizeof(idle));
        r = groups_command(rc, 4, argv);
        if (r == NULL) {
            status = 1;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "ws-broadcaster: XGROUP DESTROY %s %s: %s\n", e->stream, e->name,
                    r->str);
            failed++;
        } else {
            printf("deleted group %s on %s (idle %s, %lld pending)\n", e->name, e->stream, idle,
                   e->pending);
            deleted++;
        }
        freeReplyObject(r);
    }
    if (status == 0 && delete) {
        char limit[32];
        groups_format_duration(idle_ms, limit, sizeof(limit));
        printf("%zu groups idle longer than %s deleted", deleted, limit);
        if (failed > 0)
            printf(", %zu could not be", failed);
        printf("\n");
        if (failed > 0)
            status = 1;
    }
    free(l.v);
    redisFree(rc);
    return status;
}
