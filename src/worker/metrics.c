#include "metrics.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "figures.h"

static int metrics_printf(struct metrics_buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
metrics_printf(struct metrics_buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        int n;

        if (b->data != NULL) {
            va_start(ap, fmt);
            n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
            va_end(ap);
            if (n < 0)
                return -1;
            if ((size_t)n < b->cap - b->len) {
                b->len += (size_t)n;
                return 0;
            }
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return -1;
        b->data = p;
        b->cap = cap;
    }
}

void
metrics_buf_free(struct metrics_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

int
metrics_health(struct shm *s, struct metrics_buf *out)
{
    struct shm_totals t;
    int up = figures_redis_up(s);

    shm_totals(s, &t);
    if (metrics_printf(out,
                       "{\"status\":\"%s\",\"service\":\"ws-broadcaster\",\"active_clients\":%llu}",
                       up ? "healthy" : "degraded", (unsigned long long)t.active_clients) != 0)
        return -1;
    return up ? 200 : 503;
}

/* ---- JSON ---------------------------------------------------------------- */

struct metrics_json {
    const struct figures_view *v;
    cJSON *root;
    cJSON **workers; /* v->nworkers objects, attached to root at the end */
    cJSON **streams;
    int oom;
};

/* obj's member `key`, an object, made if missing. */
static cJSON *
metrics_json_object(struct metrics_json *j, cJSON *obj, const char *key, size_t len)
{
    char name[64];
    cJSON *o;

    snprintf(name, sizeof(name), "%.*s", (int)len, key);
    o = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (o != NULL)
        return o;
    o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddItemToObject(obj, name, o)) {
        cJSON_Delete(o);
        j->oom = 1;
        return NULL;
    }
    return o;
}

/* item at path ("a" or "a.b") in obj; takes item. */
static void
metrics_json_put(struct metrics_json *j, cJSON *obj, const char *path, cJSON *item)
{
    const char *dot;

    while (obj != NULL && (dot = strchr(path, '.')) != NULL) {
        obj = metrics_json_object(j, obj, path, (size_t)(dot - path));
        path = dot + 1;
    }
    if (obj == NULL || item == NULL || !cJSON_AddItemToObject(obj, path, item)) {
        cJSON_Delete(item);
        j->oom = 1;
    }
}

static cJSON *
metrics_json_number(uint64_t value, unsigned scale)
{
    char text[48];

    figures_number(text, sizeof(text), value, scale);
    return cJSON_CreateRaw(text);
}

static cJSON *
metrics_json_hist(const struct hist_counts *c)
{
    cJSON *h = cJSON_CreateObject(), *b = cJSON_CreateObject();
    int ok = h != NULL && b != NULL && cJSON_AddItemToObject(h, "buckets", b);
    char le[16];

    if (!ok) {
        if (h == NULL || cJSON_GetObjectItemCaseSensitive(h, "buckets") == NULL)
            cJSON_Delete(b);
        cJSON_Delete(h);
        return NULL;
    }
    for (unsigned i = 0; ok && i < HIST_NBUCKETS; i++) {
        cJSON *n = metrics_json_number(c->cumulative[i], 1);
        hist_format_bound(i, le, sizeof(le));
        ok = n != NULL && cJSON_AddItemToObject(b, le, n);
        if (!ok)
            cJSON_Delete(n);
    }
    if (ok) {
        cJSON *sum = metrics_json_number(c->sum_us, 1000000);
        ok = sum != NULL && cJSON_AddItemToObject(h, "sum", sum);
        if (!ok)
            cJSON_Delete(sum);
    }
    if (ok) {
        cJSON *count = metrics_json_number(hist_count(c), 1);
        ok = count != NULL && cJSON_AddItemToObject(h, "count", count);
        if (!ok)
            cJSON_Delete(count);
    }
    if (!ok) {
        cJSON_Delete(h);
        return NULL;
    }
    return h;
}

static cJSON *
metrics_json_value(const struct figures_family *f, uint64_t value)
{
    if (f->flags & FIGURES_BOOL)
        return cJSON_CreateBool(value != 0);
    return metrics_json_number(value, f->scale);
}

/* Family f's figures at `at` into obj. */
static void
metrics_json_family(struct metrics_json *j, cJSON *obj, const struct figures_family *f,
                    const struct figures_at *at)
{
    const struct figures_dim *d = f->dim;
    struct figures_at a = *at;
    uint64_t value, sum = 0;
    int any = 0;

    if (f->flags & FIGURES_INFO) {
        metrics_json_put(j, obj, f->json, cJSON_CreateString(figures_version));
        return;
    }
    if (f->type == FIGURES_HISTOGRAM) {
        struct hist_counts c;
        figures_hist_counts(j->v, f, at, &c);
        metrics_json_put(j, obj, f->json, metrics_json_hist(&c));
        return;
    }
    if (d == NULL) {
        if (figures_value(j->v, f, at, &value) == 0)
            metrics_json_put(j, obj, f->json, metrics_json_value(f, value));
        return;
    }
    if (d->json == NULL) {
        cJSON *o = cJSON_CreateObject();
        for (a.value = 0; o != NULL && a.value < d->n; a.value++) {
            if (figures_value(j->v, f, &a, &value) == 0)
                metrics_json_put(j, o, d->values[a.value], metrics_json_value(f, value));
        }
        metrics_json_put(j, obj, f->json, o);
        return;
    }
    for (a.value = 0; a.value < d->n; a.value++) {
        if (figures_value(j->v, f, &a, &value) != 0)
            continue;
        metrics_json_put(j, obj, d->json[a.value], metrics_json_value(f, value));
        sum += value;
        any = 1;
    }
    if (f->json != NULL && any)
        metrics_json_put(j, obj, f->json, metrics_json_value(f, sum));
}

static cJSON *
metrics_json_proc_object(struct metrics_json *j, const struct figures_proc *p)
{
    switch (p->role) {
    case FIGURES_ROLE_SUPERVISOR:
        return metrics_json_object(j, j->root, "supervisor", 10);
    case FIGURES_ROLE_INGEST:
        return metrics_json_object(j, j->root, "ingest", 6);
    case FIGURES_ROLE_WORKER:
        break;
    }
    return j->workers[p->worker];
}

/* An array of the n objects objs under key in root; takes them. */
static void
metrics_json_array(struct metrics_json *j, const char *key, cJSON **objs, uint32_t n)
{
    cJSON *a = cJSON_CreateArray();

    for (uint32_t i = 0; i < n; i++) {
        if (a == NULL || !cJSON_AddItemToArray(a, objs[i])) {
            cJSON_Delete(objs[i]);
            j->oom = 1;
        }
        objs[i] = NULL;
    }
    metrics_json_put(j, j->root, key, a);
}

int
metrics_json(struct shm *s, struct metrics_buf *out)
{
    struct figures_view *v = figures_view_new(s);
    struct metrics_json j = {v, NULL, NULL, NULL, 0};
    char *text = NULL;
    int rc = -1;

    if (v == NULL)
        return -1;
    j.root = cJSON_CreateObject();
    j.workers = calloc(v->nworkers + 1, sizeof(cJSON *));
    j.streams = calloc(v->nstreams + 1, sizeof(cJSON *));
    if (j.root == NULL || j.workers == NULL || j.streams == NULL)
        goto done;
    for (uint32_t w = 0; w < v->nworkers; w++) {
        /* Workers are numbered from 1, as in the logs and process names. */
        if ((j.workers[w] = cJSON_CreateObject()) == NULL ||
            cJSON_AddNumberToObject(j.workers[w], "worker", w + 1) == NULL)
            goto done;
    }
    for (uint32_t k = 0; k < v->nstreams; k++) {
        if ((j.streams[k] = cJSON_CreateObject()) == NULL ||
            cJSON_AddStringToObject(j.streams[k], "stream", v->streams[k].name) == NULL)
            goto done;
    }
    for (size_t i = 0; i < figures_nfamilies; i++) {
        const struct figures_family *f = &figures_families[i];
        uint32_t n = figures_nseries(v, f);

        if (f->scope == FIGURES_INSTANCE) {
            struct figures_at at = figures_series_at(f, 0);
            metrics_json_family(&j, j.root, f, &at);
            continue;
        }
        if (f->scope == FIGURES_WORKER && !(f->flags & FIGURES_NO_SUM)) {
            struct figures_at all = {1, 0, 0, 0};
            metrics_json_family(&j, j.root, f, &all);
        }
        for (uint32_t k = 0; k < n; k++) {
            struct figures_at at = figures_series_at(f, k);
            cJSON *obj = f->scope == FIGURES_WORKER   ? j.workers[k]
                         : f->scope == FIGURES_STREAM ? j.streams[k]
                                                      : metrics_json_proc_object(&j, &v->procs[k]);
            metrics_json_family(&j, obj, f, &at);
        }
    }
    metrics_json_array(&j, "workers", j.workers, v->nworkers);
    metrics_json_array(&j, "streams", j.streams, v->nstreams);
    if (!j.oom && (text = cJSON_PrintUnformatted(j.root)) != NULL)
        rc = metrics_printf(out, "%s", text);
done:
    cJSON_free(text);
    if (j.workers != NULL) {
        for (uint32_t w = 0; w < v->nworkers; w++)
            cJSON_Delete(j.workers[w]);
    }
    if (j.streams != NULL) {
        for (uint32_t k = 0; k < v->nstreams; k++)
            cJSON_Delete(j.streams[k]);
    }
    free(j.workers);
    free(j.streams);
    cJSON_Delete(j.root);
    free(v);
    return rc;
}

/* ---- Prometheus text ------------------------------------------------------- */

/* A label value, escaped as the text format wants (\\, \", \n). */
static int
metrics_label_value(struct metrics_buf *out, const char *value)
{
    int rc = 0;

    for (const char *p = value; rc == 0 && *p != '\0'; p++) {
        if (*p == '\\')
            rc = metrics_printf(out, "\\\\");
        else if (*p == '"')
            rc = metrics_printf(out, "\\\"");
        else if (*p == '\n')
            rc = metrics_printf(out, "\\n");
        else
            rc = metrics_printf(out, "%c", *p);
    }
    return rc;
}

/* name{labels} (no braces without labels): the series k's labels, then
 * the dim's, then `extra` (le="..."), whichever there are. */
static int
metrics_prom_name(struct metrics_buf *out, const struct figures_view *v,
                  const struct figures_family *f, const char *suffix, uint32_t k,
                  const struct figures_at *at, const char *extra)
{
    const char *sep = "{";
    int rc = metrics_printf(out, "%s%s", f->name, suffix);

    if (rc == 0 && f->scope == FIGURES_WORKER) {
        rc = metrics_printf(out, "%sworker=\"%u\"", sep, k + 1);
        sep = ",";
    } else if (rc == 0 && f->scope == FIGURES_STREAM) {
        rc = metrics_printf(out, "%sstream=\"", sep);
        if (rc == 0)
            rc = metrics_label_value(out, v->streams[k].name);
        if (rc == 0)
            rc = metrics_printf(out, "\"");
        sep = ",";
    } else if (rc == 0 && f->scope == FIGURES_PROCESS) {
        const struct figures_proc *p = &v->procs[k];
        rc = metrics_printf(out, "%srole=\"%s\"", sep, figures_role_names[p->role]);
        if (rc == 0 && p->role == FIGURES_ROLE_WORKER)
            rc = metrics_printf(out, ",worker=\"%u\"", p->worker + 1);
        sep = ",";
    }
    if (rc == 0 && f->dim != NULL) {
        rc = metrics_printf(out, "%s%s=\"%s\"", sep, f->dim->label, f->dim->values[at->value]);
        sep = ",";
    }
    if (rc == 0 && f->flags & FIGURES_INFO) {
        rc = metrics_printf(out, "%sversion=\"", sep);
        if (rc == 0)
            rc = metrics_label_value(out, figures_version);
        if (rc == 0)
            rc = metrics_printf(out, "\"");
        sep = ",";
    }
    if (rc == 0 && extra != NULL) {
        rc = metrics_printf(out, "%s%s", sep, extra);
        sep = ",";
    }
    if (rc == 0 && sep[0] == ',')
        rc = metrics_printf(out, "}");
    return rc;
}

static int
metrics_prom_hist(struct metrics_buf *out, const struct figures_view *v,
                  const struct figures_family *f, uint32_t k, const struct figures_at *at)
{
    struct hist_counts c;
    char le[32], num[48];
    int rc = 0;

    figures_hist_counts(v, f, at, &c);
    for (unsigned i = 0; rc == 0 && i < HIST_NBUCKETS; i++) {
        char extra[40];
        hist_format_bound(i, le, sizeof(le));
        snprintf(extra, sizeof(extra), "le=\"%s\"", le);
        rc = metrics_prom_name(out, v, f, "_bucket", k, at, extra);
        if (rc == 0)
            rc = metrics_printf(out, " %llu\n", (unsigned long long)c.cumulative[i]);
    }
    figures_number(num, sizeof(num), c.sum_us, 1000000);
    if (rc == 0)
        rc = metrics_prom_name(out, v, f, "_sum", k, at, NULL);
    if (rc == 0)
        rc = metrics_printf(out, " %s\n", num);
    if (rc == 0)
        rc = metrics_prom_name(out, v, f, "_count", k, at, NULL);
    if (rc == 0)
        rc = metrics_printf(out, " %llu\n", (unsigned long long)hist_count(&c));
    return rc;
}

int
metrics_prometheus(struct shm *s, struct metrics_buf *out)
{
    struct figures_view *v = figures_view_new(s);
    int rc = 0;

    if (v == NULL)
        return -1;
    for (size_t i = 0; rc == 0 && i < figures_nfamilies; i++) {
        const struct figures_family *f = &figures_families[i];
        uint32_t n = figures_nseries(v, f);

        rc = metrics_printf(out, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                            figures_type_names[f->type]);
        for (uint32_t k = 0; rc == 0 && k < n; k++) {
            struct figures_at at = figures_series_at(f, k);
            unsigned nvalues = f->dim != NULL ? f->dim->n : 1;

            if (f->type == FIGURES_HISTOGRAM) {
                rc = metrics_prom_hist(out, v, f, k, &at);
                continue;
            }
            for (at.value = 0; rc == 0 && at.value < nvalues; at.value++) {
                uint64_t value;
                char num[48];
                if (figures_value(v, f, &at, &value) != 0)
                    continue;
                figures_number(num, sizeof(num), value, f->scale);
                rc = metrics_prom_name(out, v, f, "", k, &at, NULL);
                if (rc == 0)
                    rc = metrics_printf(out, " %s\n", num);
            }
        }
    }
    free(v);
    return rc;
}

int
metrics_wants_prometheus(const char *accept, const char *query)
{
    /* An explicit ?format= wins over the Accept header. */
    for (const char *q = query; q != NULL && *q != '\0';) {
        size_t n = strcspn(q, "&");
        if (n == 17 && strncmp(q, "format=prometheus", 17) == 0)
            return 1;
        if (n == 11 && strncmp(q, "format=json", 11) == 0)
            return 0;
        q += n;
        if (*q == '&')
            q++;
    }
    if (accept == NULL)
        return 0;
    /* A browser sends text/html,...,* / *: that is not a request for text. */
    if (strcasestr(accept, "application/openmetrics-text") != NULL)
        return 1;
    if (strcasestr(accept, "text/plain") != NULL && strcasestr(accept, "application/json") == NULL)
        return 1;
    return 0;
}
