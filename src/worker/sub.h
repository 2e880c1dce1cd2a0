/*
 * sub: the index that matches entries to subscribers (filters themselves
 * are sub_filter.h's).
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

#include "sub_filter.h"
#include "../common/frame.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

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
