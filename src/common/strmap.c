#include "strmap.h"
#include "hash.h"

#include <stdlib.h>
#include <string.h>

static struct strmap_entry **
strmap_slot(struct strmap *m, const char *key, size_t len, uint64_t h)
{
    struct strmap_entry **pp = &m->buckets[h & (m->nbuckets - 1)];

    for (; *pp != NULL; pp = &(*pp)->next) {
        if ((*pp)->hash == h && (*pp)->len == len && memcmp((*pp)->key, key, len) == 0)
            break;
    }
    return pp;
}

void *
strmap_get(struct strmap *m, const char *key, size_t len)
{
    if (m->nbuckets == 0)
        return NULL;
    struct strmap_entry *e = *strmap_slot(m, key, len, hash_bytes(key, len));
    return e ? e->value : NULL;
}

static int
strmap_grow(struct strmap *m)
{
    size_t n = m->nbuckets ? m->nbuckets * 2 : 16;
    struct strmap_entry **b = calloc(n, sizeof(*b));

    if (b == NULL)
        return -1;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i], *next;
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

int
strmap_put(struct strmap *m, const char *key, size_t len, void *value)
{
    uint64_t h = hash_bytes(key, len);
    struct strmap_entry *e;

    if (m->count + 1 > m->nbuckets && strmap_grow(m) != 0)
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

void
strmap_del(struct strmap *m, const char *key, size_t len)
{
    struct strmap_entry **pp, *e;

    if (m->nbuckets == 0)
        return;
    pp = strmap_slot(m, key, len, hash_bytes(key, len));
    e = *pp;
    if (e == NULL)
        return;
    *pp = e->next;
    free(e);
    m->count--;
}

void
strmap_free(struct strmap *m)
{
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct strmap_entry *e = m->buckets[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            free(e);
        }
    }
    free(m->buckets);
    memset(m, 0, sizeof(*m));
}
