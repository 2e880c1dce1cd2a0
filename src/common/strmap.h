/*
 * strmap: a chained hash map from byte strings to pointers.
 *
 * Keys are often values clients chose (event ids, book names), so buckets
 * come from hash_bytes, keyed per instance: nobody can pick keys that all
 * land in one bucket and turn every lookup of them into a walk down one
 * long chain.  The map copies keys; values are the caller's.
 *
 * Any role; not thread-safe; I/O-free.  Zero-initialised is an empty map.
 */
#ifndef WSB_STRMAP_H
#define WSB_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct strmap_entry {
    struct strmap_entry *next;
    uint64_t hash;
    void *value;
    uint32_t len;
    char key[];
};

struct strmap {
    struct strmap_entry **buckets;
    size_t nbuckets; /* power of two, or 0 before first use */
    size_t count;
};

/* The value stored under key, or NULL. */
void *strmap_get(struct strmap *m, const char *key, size_t len);

/* Insert key -> value; the key must not be present.  0, or -1 on OOM. */
int strmap_put(struct strmap *m, const char *key, size_t len, void *value);

/* Remove key if present. */
void strmap_del(struct strmap *m, const char *key, size_t len);

/* Remove everything and free the buckets (not the values). */
void strmap_free(struct strmap *m);

#endif
