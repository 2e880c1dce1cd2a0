/*
 * sub_filter: one client's filter, as the subscribe message gives it.
 *
 * A filter has four lists, one per dimension of enum frame_key (sports,
 * events, markets, books).  An entry matches when, in every dimension, the
 * list is empty, the entry lacks that dimension, or the entry's value is in
 * the list.  Lists are kept sorted and without duplicates, so two clients
 * asking for the same thing hold equal filters (the index groups them).
 *
 * Worker-side, I/O-free.
 */
#ifndef WSB_SUB_FILTER_H
#define WSB_SUB_FILTER_H

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

/* Narrow dimension dim of f to the allowed values (an entitlement):
 * n < 0 means unrestricted (f unchanged); an empty list in f (all values)
 * becomes the allowed ones; otherwise what f names outside them is
 * dropped.  0, -1 if nothing is left (or n == 0: nothing is allowed), -2
 * on OOM.  On -1, f's list may have lost values: the caller discards f. */
int sub_filter_restrict(struct sub_filter *f, int dim, char *const *allowed, int n);

/* The definition of a match, without the index. */
int sub_filter_matches(const struct sub_filter *f, const struct frame_key_ref keys[SUB_NDIMS]);

/* The same, ignoring dimension skip (-1: none); the index has already
 * matched that one through its hash. */
int sub_filter_matches_except(const struct sub_filter *f,
                              const struct frame_key_ref keys[SUB_NDIMS], int skip);

#endif
