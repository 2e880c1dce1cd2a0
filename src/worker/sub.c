#include "sub.h"
#include "../common/hash.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keep in sync with enum frame_key. */
const char *const sub_dim_names[SUB_NDIMS] = {"sports", "events", "markets", "books"};

/* Anchor preference: the dimension most likely to exclude an entry first. */
static const int sub_anchor_order[SUB_NDIMS] = {FRAME_KEY_EVENT, FRAME_KEY_BOOK, FRAME_KEY_MARKET,
                                                FRAME_KEY_SPORT};

/* ---- filters ---------------------------------------------------------- */

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

static int
sub_list_parse(const cJSON *arr, const char *name, const struct sub_limits *limits,
               struct sub_list *out, char *err, size_t errlen)
{
    struct sub_sort_item *items;
    const cJSON *v;
    uint32_t n = 0, k = 0;

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
    items = malloc(n * sizeof(*items));
    if (items == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    cJSON_ArrayForEach(v, arr)
    {
        items[k].s = v->valuestring;
        items[k].len = (uint32_t)strlen(v->valuestring);
        k++;
    }
    qsort(items, n, sizeof(*items), sub_sort_cmp);
    out->values = calloc(n, sizeof(char *));
    out->lens = calloc(n, sizeof(uint32_t));
    if (out->values == NULL || out->lens == NULL)
        goto oom;
    for (uint32_t i = 0; i < n; i++) {
        if (out->n > 0 && sub_value_cmp(out->values[out->n - 1], out->lens[out->n - 1], items[i].s,
                                        items[i].len) == 0)
            continue; /* duplicates would make a member match twice */
        out->values[out->n] = strdup(items[i].s);
        if (out->values[out->n] == NULL)
            goto oom;
        out->lens[out->n++] = items[i].len;
    }
    free(items);
    return 0;
oom:
    free(items);
    sub_list_free(out);
    snprintf(err, errlen, "out of memory");
    return -1;
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

static int
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

/* ---- a small chained hash map: byte string -> pointer ----------------- */

/* Keys are values clients chose (event ids, book names), hence hash_bytes,
 * keyed per instance: nobody can pick values that all land in one bucket
 * and turn every lookup of them into a walk down one long chain. */

struct sub_map_entry {
    struct sub_map_entry *next;
    uint64_t hash;
    void *value;
    uint32_t len;
    char key[];
};

struct sub_map {
    struct sub_map_entry **buckets;
    size_t nbuckets; /* power of two, or 0 before first use */
    size_t count;
};

static struct sub_map_entry **
sub_map_slot(struct sub_map *m, const char *key, size_t len, uint64_t h)
{
    struct sub_map_entry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            break;
    }
    return pp;
}

static void *
sub_map_get(struct sub_map *m, const char *key, size_t len)
{
    if (m->nbuckets == 0)
        return NULL;
    struct sub_map_entry *e = *sub_map_slot(m, key, len, hash_bytes(key, len));
    return e ? e->value : NULL;
}

static int
sub_map_grow(struct sub_map *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct sub_map_entry **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct sub_map_entry *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = n;
    return 0;
}

/* Insert key -> value; the key must not be present. */
static int
sub_map_put(struct sub_map *m, const char *key, size_t len, void *value)
{
    uint64_t h = hash_bytes(key, len);
    struct sub_map_entry *e;

    if (m->count + 1 > m->nbuckets && sub_map_grow(m) != 0)
        return -1;
    e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return -1;
    e->hash = h;
    e->value = value;
    e->len = (uint32_t)len;
    memcpy(e->key, key, len);
    e->next = m->buckets[h & (m->nbuckets - 1)];
    m->buckets[h & (m->nbuckets - 1)] = e;
    m->count++;
    return 0;
}

static void
sub_map_del(struct sub_map *m, const char *key, size_t len)
{
    struct sub_map_entry **pp, *e;

    if (m->nbuckets == 0)
        return;
    pp = sub_map_slot(m, key, len, hash_bytes(key, len));
    e = *pp;
    if (e == NULL)
        return;
    *pp = e->next;
    free(e);
    m->count--;
}

static void
sub_map_free(struct sub_map *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct sub_map_entry *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}

/* ---- the index --------------------------------------------------------- */

/* One (group, anchor value) pair, on the list of groups sharing that value. */
struct sub_posting {
    struct sub_posting *prev, *next;
    struct sub_group *group;
    struct sub_postings *list;
};

struct sub_postings {
    struct sub_posting *head;
};

struct sub_group {
    struct sub_group *prev, *next; /* on match_all or anchored[anchor] */
    struct sub_filter filter;
    int anchor; /* enum frame_key, or -1: matches everything */
    char *key;  /* canonical form of the filter, the groups map's key */
    size_t keylen;
    struct sub_member *members;
    size_t nmembers;
    struct sub_posting *postings; /* filter.dims[anchor].n of them */
};

struct sub_index {
    struct sub_map groups;                 /* canonical filter -> group */
    struct sub_map by_value[SUB_NDIMS];    /* anchor value -> struct sub_postings */
    struct sub_group *anchored[SUB_NDIMS]; /* every group anchored on d */
    struct sub_group *match_all;
};

struct sub_index *
sub_index_new(void)
{
    return calloc(1, sizeof(struct sub_index));
}

static void
sub_group_free(struct sub_group *g)
{
    sub_filter_free(&g->filter);
    free(g->postings);
    free(g->key);
    free(g);
}

static void
sub_dll_remove_group(struct sub_group **head, struct sub_group *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        *head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
}

static void
sub_dll_push_group(struct sub_group **head, struct sub_group *g)
{
    g->prev = NULL;
    g->next = *head;
    if (*head)
        (*head)->prev = g;
    *head = g;
}

static void
sub_group_unlink(struct sub_index *idx, struct sub_group *g)
{
    if (g->anchor < 0) {
        sub_dll_remove_group(&idx->match_all, g);
    } else {
        const struct sub_list *l = &g->filter.dims[g->anchor];
        sub_dll_remove_group(&idx->anchored[g->anchor], g);
        for (uint32_t i = 0; g->postings != NULL && i < l->n; i++) {
            struct sub_posting *p = &g->postings[i];
            if (p->list == NULL)
                continue; /* never linked: a failed link */
            if (p->prev)
                p->prev->next = p->next;
            else
                p->list->head = p->next;
            if (p->next)
                p->next->prev = p->prev;
            if (p->list->head == NULL) {
                sub_map_del(&idx->by_value[g->anchor], l->values[i], l->lens[i]);
                free(p->list);
            }
            p->list = NULL;
        }
    }
    sub_map_del(&idx->groups, g->key, g->keylen);
}

void
sub_index_free(struct sub_index *idx)
{
    if (idx == NULL)
        return;
    /* Members are owned by the caller; detach them so none points here. */
    for (int d = -1; d < SUB_NDIMS; d++) {
        struct sub_group **head = d < 0 ? &idx->match_all : &idx->anchored[d];
        while (*head != NULL) {
            struct sub_group *g = *head;
            for (struct sub_member *m = g->members; m != NULL; m = m->next)
                m->group = NULL;
            sub_group_unlink(idx, g);
            sub_group_free(g);
        }
    }
    sub_map_free(&idx->groups);
    for (int d = 0; d < SUB_NDIMS; d++)
        sub_map_free(&idx->by_value[d]);
    free(idx);
}

/* Length-prefixed values per dimension: equal filters, equal keys. */
static char *
sub_filter_key(const struct sub_filter *f, size_t *len)
{
    size_t n = 0, off = 0;
    char *key;

    for (int d = 0; d < SUB_NDIMS; d++) {
        n += 4;
        for (uint32_t i = 0; i < f->dims[d].n; i++)
            n += 4 + f->dims[d].lens[i];
    }
    key = malloc(n ? n : 1);
    if (key == NULL)
        return NULL;
    for (int d = 0; d < SUB_NDIMS; d++) {
        memcpy(key + off, &f->dims[d].n, 4);
        off += 4;
        for (uint32_t i = 0; i < f->dims[d].n; i++) {
            memcpy(key + off, &f->dims[d].lens[i], 4);
            memcpy(key + off + 4, f->dims[d].values[i], f->dims[d].lens[i]);
            off += 4 + f->dims[d].lens[i];
        }
    }
    *len = n;
    return key;
}

static struct sub_group *
sub_group_create(struct sub_index *idx, struct sub_filter *filter, char *key, size_t keylen)
{
    struct sub_group *g = calloc(1, sizeof(*g));
    const struct sub_list *l;

    if (g == NULL)
        return NULL;
    g->filter = *filter;
    memset(filter, 0, sizeof(*filter));
    g->key = key;
    g->keylen = keylen;
    g->anchor = -1;
    for (int i = 0; i < SUB_NDIMS; i++) {
        if (g->filter.dims[sub_anchor_order[i]].n > 0) {
            g->anchor = sub_anchor_order[i];
            break;
        }
    }
    if (sub_map_put(&idx->groups, key, keylen, g) != 0) {
        sub_group_free(g);
        return NULL;
    }
    if (g->anchor < 0) {
        sub_dll_push_group(&idx->match_all, g);
        return g;
    }
    sub_dll_push_group(&idx->anchored[g->anchor], g);
    l = &g->filter.dims[g->anchor];
    g->postings = calloc(l->n, sizeof(*g->postings));
    if (g->postings == NULL)
        goto fail;
    for (uint32_t i = 0; i < l->n; i++) {
        struct sub_posting *p = &g->postings[i];
        struct sub_postings *list =
            sub_map_get(&idx->by_value[g->anchor], l->values[i], l->lens[i]);
        if (list == NULL) {
            list = calloc(1, sizeof(*list));
            if (list == NULL)
                goto fail;
            if (sub_map_put(&idx->by_value[g->anchor], l->values[i], l->lens[i], list) != 0) {
                free(list);
                goto fail;
            }
        }
        p->group = g;
        p->list = list;
        p->prev = NULL;
        p->next = list->head;
        if (list->head)
            list->head->prev = p;
        list->head = p;
    }
    return g;
fail:
    sub_group_unlink(idx, g);
    sub_group_free(g);
    return NULL;
}

int
sub_index_join(struct sub_index *idx, struct sub_member *m, struct sub_filter *filter)
{
    struct sub_group *g;
    size_t keylen;
    char *key = sub_filter_key(filter, &keylen);

    if (key == NULL) {
        sub_filter_free(filter);
        return -1;
    }
    g = sub_map_get(&idx->groups, key, keylen);
    if (g != NULL) {
        free(key);
        sub_filter_free(filter);
    } else {
        g = sub_group_create(idx, filter, key, keylen);
        if (g == NULL) {
            sub_filter_free(filter);
            return -1;
        }
    }
    m->group = g;
    m->prev = NULL;
    m->next = g->members;
    if (g->members)
        g->members->prev = m;
    g->members = m;
    g->nmembers++;
    return 0;
}

void
sub_index_leave(struct sub_index *idx, struct sub_member *m)
{
    struct sub_group *g = m->group;

    if (g == NULL)
        return;
    if (m->prev)
        m->prev->next = m->next;
    else
        g->members = m->next;
    if (m->next)
        m->next->prev = m->prev;
    m->prev = m->next = NULL;
    m->group = NULL;
    if (--g->nmembers == 0) {
        sub_group_unlink(idx, g);
        sub_group_free(g);
    }
}

const struct sub_filter *
sub_member_filter(const struct sub_member *m)
{
    return m->group ? &m->group->filter : NULL;
}

static size_t
sub_visit_group(struct sub_group *g, sub_visit_fn fn, void *ctx)
{
    size_t n = 0;

    for (struct sub_member *m = g->members; m != NULL; m = m->next, n++)
        fn(m, ctx);
    return n;
}

size_t
sub_index_match(struct sub_index *idx, const struct frame_key_ref keys[SUB_NDIMS], sub_visit_fn fn,
                void *ctx)
{
    size_t n = 0;

    for (struct sub_group *g = idx->match_all; g != NULL; g = g->next)
        n += sub_visit_group(g, fn, ctx);
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (keys[d].ptr == NULL) {
            /* The entry lacks d, so d excludes no group anchored on it. */
            for (struct sub_group *g = idx->anchored[d]; g != NULL; g = g->next) {
                if (sub_filter_matches_except(&g->filter, keys, d))
                    n += sub_visit_group(g, fn, ctx);
            }
            continue;
        }
        struct sub_postings *list = sub_map_get(&idx->by_value[d], keys[d].ptr, keys[d].len);
        if (list == NULL)
            continue;
        for (struct sub_posting *p = list->head; p != NULL; p = p->next) {
            if (sub_filter_matches_except(&p->group->filter, keys, d))
                n += sub_visit_group(p->group, fn, ctx);
        }
    }
    return n;
}

size_t
sub_index_groups(const struct sub_index *idx)
{
    return idx->groups.count;
}
