/*
 * sub: client filters and the index that matches entries to subscribers.
 *
 * A filter has four lists, one per dimension of enum frame_key (sports,
 * events, markets, books).  An entry matches when, in every dimension, the
 * list is empty, the entry lacks that dimension, or the entry's value is in
 * the list.
 *
 * The index groups members that hold an identical filter, and files each
 * group under one "anchor" dimension (the first non-empty of events, books,
 * markets, sports: the most selective first) in a hash of value -> groups.
 * Matching an entry looks up its value in each dimension, so the work grows
 * with the groups that share a value with the entry and the members that
 * match, not with every client.  A group with an empty filter matches
 * everything and sits on its own list.
 *
 * Worker-private (one index per worker process), not thread-safe, I/O-free.
 */
#ifndef WSB_SUB_H
#define WSB_SUB_H

#include "../common/frame.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#define SUB_NDIMS FRAME_NKEYS

/* The filter list names in the wire protocol, indexed by enum frame_key. */
extern const char *const sub_dim_names[SUB_NDIMS];

struct sub_list {
    uint32_t n;
    char **values; /* sorted (by length, then bytes), unique, NUL-terminated */
    uint32_t *lens;
};

struct sub_filter {
    struct sub_list dims[SUB_NDIMS];
};

struct sub_limits {
    uint32_t max_values;    /* per list */
    uint32_t max_value_len; /* bytes per value */
};

/* Parse a subscribe payload (an object, or NULL for none) into out.  Missing
 * or null lists are empty.  Returns 0, or -1 with a client-facing reason in
 * err if a list is not a list of strings or exceeds the limits; out is then
 * left empty.  The caller frees out with sub_filter_free. */
int sub_filter_parse(const cJSON *payload, const struct sub_limits *limits, struct sub_filter *out,
                     char *err, size_t errlen);

void sub_filter_free(struct sub_filter *f);

/* {"sports":[...],"events":[...],"markets":[...],"books":[...]}; NULL on OOM. */
cJSON *sub_filter_to_json(const struct sub_filter *f);

/* The definition of a match, without the index. */
int sub_filter_matches(const struct sub_filter *f, const struct frame_key_ref keys[SUB_NDIMS]);

struct sub_group;

/* Embedded in each subscriber (a worker session); owned by the caller. */
struct sub_member {
    struct sub_member *prev, *next;
    struct sub_group *group; /* NULL when not subscribed */
};

struct sub_index;

struct sub_index *sub_index_new(void);
void sub_index_free(struct sub_index *idx);

/* Subscribe m with filter (whose contents move into the index: *filter is
 * left empty).  m must not be subscribed.  Returns 0, -1 on OOM (m then stays
 * unsubscribed and *filter is freed). */
int sub_index_join(struct sub_index *idx, struct sub_member *m, struct sub_filter *filter);

/* Unsubscribe m; no-op if it is not subscribed. */
void sub_index_leave(struct sub_index *idx, struct sub_member *m);

/* The filter m is subscribed with, or NULL. */
const struct sub_filter *sub_member_filter(const struct sub_member *m);

/* Call fn once for every member whose filter matches keys; returns how many.
 * fn must not join or leave members. */
typedef void (*sub_visit_fn)(struct sub_member *m, void *ctx);
size_t sub_index_match(struct sub_index *idx, const struct frame_key_ref keys[SUB_NDIMS],
                       sub_visit_fn fn, void *ctx);

/* Distinct filters currently held. */
size_t sub_index_groups(const struct sub_index *idx);

#endif
