#include "sub.h"
#include "../common/strmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Anchor preference: the dimension most likely to exclude an entry first. */
static const int sub_anchor_order[SUB_NDIMS] = {FRAME_KEY_EVENT, FRAME_KEY_BOOK, FRAME_KEY_MARKET,
                                                FRAME_KEY_SPORT};

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
    struct strmap groups;                  /* canonical filter -> group */
    struct strmap by_value[SUB_NDIMS];     /* anchor value -> struct sub_postings */
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
                strmap_del(&idx->by_value[g->anchor], l->values[i], l->lens[i]);
                free(p->list);
            }
            p->list = NULL;
        }
    }
    strmap_del(&idx->groups, g->key, g->keylen);
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
    strmap_free(&idx->groups);
    for (int d = 0; d < SUB_NDIMS; d++)
        strmap_free(&idx->by_value[d]);
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
    if (strmap_put(&idx->groups, key, keylen, g) != 0) {
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
        struct sub_postings *list = strmap_get(&idx->by_value[g->anchor], l->values[i], l->lens[i]);
        if (list == NULL) {
            list = calloc(1, sizeof(*list));
            if (list == NULL)
                goto fail;
            if (strmap_put(&idx->by_value[g->anchor], l->values[i], l->lens[i], list) != 0) {
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
    g = strmap_get(&idx->groups, key, keylen);
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
        struct sub_postings *list = strmap_get(&idx->by_value[d], keys[d].ptr, keys[d].len);
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
