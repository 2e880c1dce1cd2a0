#include "sub_filter.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in sync with enum frame_key. */
const char *const sub_dim_names[SUB_NDIMS] = {"sports", "events", "markets", "books"};

static int
sub_value_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
    if (alen != blen)
        return alen < blen ? -1 : 1;
    return memcmp(a, b, alen);
}

static int
sub_list_contains(const struct sub_list *l, const char *v, uint32_t len)
{
    uint32_t lo = 0, hi = l->n;

    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        int c = sub_value_cmp(l->values[mid], l->lens[mid], v, len);
        if (c == 0)
            return 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static void
sub_list_free(struct sub_list *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        free(l->values[i]);
    free(l->values);
    free(l->lens);
    memset(l, 0, sizeof(*l));
}

void
sub_filter_free(struct sub_filter *f)
{
    for (int d = 0; d < SUB_NDIMS; d++)
        sub_list_free(&f->dims[d]);
}

struct sub_sort_item {
    const char *s;
    uint32_t len;
};

static int
sub_sort_cmp(const void *a, const void *b)
{
    const struct sub_sort_item *x = a, *y = b;

    return sub_value_cmp(x->s, x->len, y->s, y->len);
}

/* values[0..n) as a sorted list without duplicates. */
static int
sub_list_from(char *const *values, uint32_t n, struct sub_list *out)
{
    struct sub_sort_item *items = malloc((n ? n : 1) * sizeof(*items));

    memset(out, 0, sizeof(*out));
    if (items == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        items[i].s = values[i];
        items[i].len = (uint32_t)strlen(values[i]);
    }
    qsort(items, n, sizeof(*items), sub_sort_cmp);
    out->values = calloc(n ? n : 1, sizeof(char *));
    out->lens = calloc(n ? n : 1, sizeof(uint32_t));
    if (out->values == NULL || out->lens == NULL)
        goto oom;
    for (uint32_t i = 0; i < n; i++) {
        if (out->n > 0 && sub_value_cmp(out->values[out->n - 1], out->lens[out->n - 1], items[i].s,
                                        items[i].len) == 0)
            continue;
        if ((out->values[out->n] = strdup(items[i].s)) == NULL)
            goto oom;
        out->lens[out->n++] = items[i].len;
    }
    free(items);
    return 0;
oom:
    free(items);
    sub_list_free(out);
    return -1;
}

static int
sub_list_parse(const cJSON *arr, const char *name, const struct sub_limits *limits,
               struct sub_list *out, char *err, size_t errlen)
{
    char **values;
    const cJSON *v;
    uint32_t n = 0, k = 0;
    int rc;

    memset(out, 0, sizeof(*out));
    if (arr == NULL || cJSON_IsNull(arr))
        return 0;
    if (!cJSON_IsArray(arr)) {
        snprintf(err, errlen, "%s must be a list of strings", name);
        return -1;
    }
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsString(v)) {
            snprintf(err, errlen, "%s must be a list of strings", name);
            return -1;
        }
        if (strlen(v->valuestring) > limits->max_value_len) {
            snprintf(err, errlen, "%s: a value is longer than %u bytes", name,
                     limits->max_value_len);
            return -1;
        }
        if (++n > limits->max_values) {
            snprintf(err, errlen, "%s: more than %u values", name, limits->max_values);
            return -1;
        }
    }
    if (n == 0)
        return 0;
    values = malloc(n * sizeof(*values));
    if (values == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(v, arr) values[k++] = v->valuestring;
    rc = sub_list_from(values, n, out);
    free(values);
    if (rc != 0)
        snprintf(err, errlen, "out of memory");
    return rc;
}

int
sub_filter_parse(const cJSON *payload, const struct sub_limits *limits, struct sub_filter *out,
                 char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (payload == NULL)
        return 0;
    for (int d = 0; d < SUB_NDIMS; d++) {
        const cJSON *arr = cJSON_GetObjectItemCaseSensitive(payload, sub_dim_names[d]);
        if (sub_list_parse(arr, sub_dim_names[d], limits, &out->dims[d], err, errlen) != 0) {
            sub_filter_free(out);
            return -1;
        }
    }
    return 0;
}

cJSON *
sub_filter_to_json(const struct sub_filter *f)
{
    cJSON *obj = cJSON_CreateObject();

    if (obj == NULL)
        return NULL;
    for (int d = 0; d < SUB_NDIMS; d++) {
        cJSON *arr = cJSON_AddArrayToObject(obj, sub_dim_names[d]);
        if (arr == NULL)
            goto oom;
        for (uint32_t i = 0; i < f->dims[d].n; i++) {
            cJSON *s = cJSON_CreateString(f->dims[d].values[i]);
            if (s == NULL)
                goto oom;
            cJSON_AddItemToArray(arr, s);
        }
    }
    return obj;
oom:
    cJSON_Delete(obj);
    return NULL;
}

int
sub_filter_matches_except(const struct sub_filter *f, const struct frame_key_ref keys[SUB_NDIMS],
                          int skip)
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (d == skip || f->dims[d].n == 0 || keys[d].ptr == NULL)
            continue;
        if (!sub_list_contains(&f->dims[d], keys[d].ptr, keys[d].len))
            return 0;
    }
    return 1;
}

int
sub_filter_matches(const struct sub_filter *f, const struct frame_key_ref keys[SUB_NDIMS])
{
    return sub_filter_matches_except(f, keys, -1);
}

int
sub_filter_restrict(struct sub_filter *f, int dim, char *const *allowed, int n)
{
    struct sub_list *l = &f->dims[dim], keep;

    if (n < 0)
        return 0;
    if (n == 0)
        return -1;
    if (l->n == 0) {
        /* "All" within the entitlement is the entitlement. */
        if (sub_list_from(allowed, (uint32_t)n, &keep) != 0)
            return -2;
        sub_list_free(l);
        *l = keep;
        return 0;
    }
    if (sub_list_from(allowed, (uint32_t)n, &keep) != 0)
        return -2;
    {
        uint32_t w = 0;
        for (uint32_t i = 0; i < l->n; i++) {
            if (sub_list_contains(&keep, l->values[i], l->lens[i])) {
                l->values[w] = l->values[i];
                l->lens[w++] = l->lens[i];
            } else {
                free(l->values[i]);
            }
        }
        l->n = w;
    }
    sub_list_free(&keep);
    return l->n > 0 ? 0 : -1;
}
