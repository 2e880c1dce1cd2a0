/*
 * fuzz_client_message: what a client sends, through the same steps as
 * inbound_message in src/worker/inbound.c (cmsg_parse, then for a subscribe sub_filter_parse,
 * sub_index_join and the "subscribed" reply), plus the index matching it
 * feeds.
 *
 * Properties:
 *  - cmsg_parse either fails with one of the two codes of cmsg.h and a
 *    reason, or returns an object payload (or none) and a known type;
 *  - every reply (error or "subscribed") is one JSON object, and is valid
 *    UTF-8 whenever the client's message was;
 *  - a parsed filter respects the limits and its lists are sorted and
 *    unique (sub.h); printing it and parsing the print gives it back;
 *  - sub_index_match visits exactly the members sub_filter_matches accepts,
 *    each once, and the index holds one group per distinct filter.
 */
#include "common/json.h"
#include "worker/cmsg.h"
#include "worker/encode.h"
#include "worker/sub.h"

#include "fuzz.h"

#define FUZZ_MAX_VALUES    64
#define FUZZ_MAX_VALUE_LEN 64

static const struct sub_limits fuzz_limits = {FUZZ_MAX_VALUES, FUZZ_MAX_VALUE_LEN};

/* Reasons are sent to the client inside an error message. */
static void
check_reason(const char *code, const char *msg, size_t msglen, int utf8_in)
{
    size_t len;
    char *buf;
    cJSON *root;

    FUZZ_CHECK(memchr(msg, '\0', msglen) != NULL);
    FUZZ_CHECK(msg[0] != '\0');
    if (utf8_in && !utf8_valid(msg, strlen(msg)))
        fprintf(stderr, "note: reason is not valid UTF-8: %s\n", msg);
    buf = encode_error(code, msg, FUZZ_NOW_MS, 16, &len);
    FUZZ_CHECK(buf != NULL);
    root = check_client_json(buf + 16, len, utf8_in);
    check_server_message(root, "error");
    cJSON_Delete(root);
    free(buf);
}

static void
check_list(const struct sub_list *l)
{
    FUZZ_CHECK(l->n <= FUZZ_MAX_VALUES);
    FUZZ_CHECK(l->n == 0 || (l->values != NULL && l->lens != NULL));
    for (uint32_t i = 0; i < l->n; i++) {
        FUZZ_CHECK(l->values[i] != NULL);
        FUZZ_CHECK(strlen(l->values[i]) == l->lens[i]);
        FUZZ_CHECK(l->lens[i] <= FUZZ_MAX_VALUE_LEN);
        if (i > 0) {
            /* sorted by length, then bytes, and unique */
            uint32_t a = l->lens[i - 1], b = l->lens[i];
            FUZZ_CHECK(a < b || (a == b && memcmp(l->values[i - 1], l->values[i], a) < 0));
        }
    }
}

static int
filter_empty(const struct sub_filter *f)
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (f->dims[d].n != 0 || f->dims[d].values != NULL || f->dims[d].lens != NULL)
            return 0;
    }
    return 1;
}

static int
filter_equal(const struct sub_filter *a, const struct sub_filter *b)
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (a->dims[d].n != b->dims[d].n)
            return 0;
        for (uint32_t i = 0; i < a->dims[d].n; i++) {
            if (a->dims[d].lens[i] != b->dims[d].lens[i] ||
                memcmp(a->dims[d].values[i], b->dims[d].values[i], a->dims[d].lens[i]) != 0)
                return 0;
        }
    }
    return 1;
}

/* The filter printed as the "subscribed" reply prints it, then parsed back. */
static void
check_filter_print(const struct sub_filter *f, int utf8_in)
{
    cJSON *json = sub_filter_to_json(f), *back;
    struct sub_filter again;
    char err[256];
    char *text;

    FUZZ_CHECK(json != NULL);
    text = cJSON_PrintUnformatted(json);
    FUZZ_CHECK(text != NULL);
    back = check_client_json(text, strlen(text), utf8_in);
    FUZZ_CHECK(sub_filter_parse(back, &fuzz_limits, &again, err, sizeof(err)) == 0);
    FUZZ_CHECK(filter_equal(f, &again));
    sub_filter_free(&again);
    cJSON_Delete(back);
    free(text);
    cJSON_Delete(json);
}

struct visit_ctx {
    struct sub_member *members;
    size_t nmembers;
    unsigned seen; /* bit i: members[i] was visited */
};

static void
visit(struct sub_member *m, void *arg)
{
    struct visit_ctx *ctx = arg;
    size_t i = (size_t)(m - ctx->members);

    FUZZ_CHECK(m >= ctx->members && i < ctx->nmembers);
    FUZZ_CHECK((ctx->seen & (1u << i)) == 0);
    ctx->seen |= 1u << i;
}

/* Match keys against the index and against each member's filter alone. */
static void
check_match(struct sub_index *idx, struct visit_ctx *ctx, const struct frame_key_ref *keys)
{
    size_t n, want = 0;
    unsigned want_seen = 0;

    ctx->seen = 0;
    n = sub_index_match(idx, keys, visit, ctx);
    for (size_t i = 0; i < ctx->nmembers; i++) {
        const struct sub_filter *f = sub_member_filter(&ctx->members[i]);
        if (f != NULL && sub_filter_matches(f, keys)) {
            want++;
            want_seen |= 1u << i;
        }
    }
    FUZZ_CHECK(n == want);
    FUZZ_CHECK(ctx->seen == want_seen);
}

static void
set_key(struct frame_key_ref *k, const char *s, uint32_t len)
{
    k->ptr = s;
    k->len = len;
}

/* Fixed entries, plus entries made of the filter's own values so that
 * matches happen, and near misses (a value cut by one byte). */
static void
check_matches(struct sub_index *idx, struct visit_ctx *ctx, const struct sub_filter *f)
{
    static const char *const fixed[][SUB_NDIMS] = {
        {NULL, NULL, NULL, NULL},
        {"basketball_nba", "evt-1", "h2h", "draftkings"},
        {"basketball_nba", NULL, "spreads", NULL},
        {"soccer_epl", "evt-2", NULL, "fanduel"},
        {"", "", "", ""},
    };
    struct frame_key_ref keys[SUB_NDIMS];

    for (size_t t = 0; t < sizeof(fixed) / sizeof(fixed[0]); t++) {
        for (int d = 0; d < SUB_NDIMS; d++)
            set_key(&keys[d], fixed[t][d], fixed[t][d] ? (uint32_t)strlen(fixed[t][d]) : 0);
        check_match(idx, ctx, keys);
    }
    /* first values of every list; absent where a list is empty */
    for (int d = 0; d < SUB_NDIMS; d++) {
        const struct sub_list *l = &f->dims[d];
        set_key(&keys[d], l->n ? l->values[0] : NULL, l->n ? l->lens[0] : 0);
    }
    check_match(idx, ctx, keys);
    /* the last value of one list at a time, the others absent, then cut short */
    for (int d = 0; d < SUB_NDIMS; d++) {
        const struct sub_list *l = &f->dims[d];
        if (l->n == 0)
            continue;
        for (int e = 0; e < SUB_NDIMS; e++)
            set_key(&keys[e], NULL, 0);
        set_key(&keys[d], l->values[l->n - 1], l->lens[l->n - 1]);
        check_match(idx, ctx, keys);
        if (l->lens[l->n - 1] > 0) {
            keys[d].len--;
            check_match(idx, ctx, keys);
        }
    }
}

/*
 * Three members: one with no filter (it matches everything), two with the
 * client's filter (they share one group).  The filters are moved into the
 * index, so copies are kept for matching the fixed keys.
 */
static void
check_index(const cJSON *payload, const struct sub_filter *parsed, int utf8_in)
{
    struct sub_member members[3];
    struct visit_ctx ctx = {members, 3, 0};
    struct sub_filter f1, f2, none;
    struct sub_index *idx = sub_index_new();
    size_t groups, len;
    char err[256];
    char *buf;
    cJSON *root;

    FUZZ_CHECK(idx != NULL);
    memset(members, 0, sizeof(members));
    FUZZ_CHECK(sub_filter_parse(payload, &fuzz_limits, &f1, err, sizeof(err)) == 0);
    FUZZ_CHECK(sub_filter_parse(payload, &fuzz_limits, &f2, err, sizeof(err)) == 0);
    FUZZ_CHECK(sub_filter_parse(NULL, &fuzz_limits, &none, err, sizeof(err)) == 0);
    groups = filter_equal(parsed, &none) ? 1 : 2;

    FUZZ_CHECK(sub_index_join(idx, &members[0], &none) == 0);
    FUZZ_CHECK(sub_index_join(idx, &members[1], &f1) == 0);
    FUZZ_CHECK(sub_index_join(idx, &members[2], &f2) == 0);
    FUZZ_CHECK(filter_empty(&none) && filter_empty(&f1) && filter_empty(&f2));
    FUZZ_CHECK(sub_index_groups(idx) == groups);
    FUZZ_CHECK(filter_equal(sub_member_filter(&members[1]), parsed));
    FUZZ_CHECK(sub_member_filter(&members[1]) == sub_member_filter(&members[2]));
    check_matches(idx, &ctx, parsed);

    /* the reply wsp sends after joining */
    buf = encode_message("subscribed", sub_filter_to_json(sub_member_filter(&members[1])),
                         FUZZ_NOW_MS, 16, &len);
    FUZZ_CHECK(buf != NULL);
    root = check_client_json(buf + 16, len, utf8_in);
    check_server_message(root, "subscribed");
    cJSON_Delete(root);
    free(buf);

    sub_index_leave(idx, &members[1]);
    FUZZ_CHECK(sub_member_filter(&members[1]) == NULL);
    FUZZ_CHECK(sub_index_groups(idx) == groups);
    check_matches(idx, &ctx, parsed);
    sub_index_leave(idx, &members[2]);
    sub_index_leave(idx, &members[2]); /* not subscribed: a no-op */
    FUZZ_CHECK(sub_index_groups(idx) == 1);
    check_matches(idx, &ctx, parsed);

    /* the index detaches members still subscribed when it is freed */
    FUZZ_CHECK(sub_filter_parse(payload, &fuzz_limits, &f1, err, sizeof(err)) == 0);
    FUZZ_CHECK(sub_index_join(idx, &members[1], &f1) == 0);
    FUZZ_CHECK(sub_index_groups(idx) == groups);
    sub_index_free(idx);
    FUZZ_CHECK(members[0].group == NULL && members[1].group == NULL);
}

static void
check_subscribe(const cJSON *payload, int utf8_in)
{
    struct sub_filter f;
    char err[256];

    if (sub_filter_parse(payload, &fuzz_limits, &f, err, sizeof(err)) != 0) {
        FUZZ_CHECK(filter_empty(&f));
        check_reason(CMSG_ERR_INVALID_FILTER, err, sizeof(err), utf8_in);
        return;
    }
    for (int d = 0; d < SUB_NDIMS; d++)
        check_list(&f.dims[d]);
    check_filter_print(&f, utf8_in);
    check_index(payload, &f, utf8_in);
    sub_filter_free(&f);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    int utf8_in = utf8_valid(text, size);
    const char *code = NULL;
    struct cmsg m;
    char msg[256];
    int rc;

    rc = cmsg_parse(text, size, &m, &code, msg, sizeof(msg));
    if (rc != 0) {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(m.root == NULL && m.payload == NULL);
        FUZZ_CHECK(code != NULL);
        FUZZ_CHECK(strcmp(code, CMSG_ERR_INVALID_JSON) == 0 ||
                   strcmp(code, CMSG_ERR_INVALID_MESSAGE) == 0);
        /* invalid_json exactly when the text is not one JSON value */
        cJSON *whole = json_parse_exact(text, size);
        FUZZ_CHECK((whole == NULL) == (strcmp(code, CMSG_ERR_INVALID_JSON) == 0));
        cJSON_Delete(whole);
        check_reason(code, msg, sizeof(msg), utf8_in);
    } else {
        FUZZ_CHECK(cJSON_IsObject(m.root));
        FUZZ_CHECK(m.type == CMSG_SUBSCRIBE || m.type == CMSG_UNSUBSCRIBE ||
                   m.type == CMSG_HEARTBEAT);
        FUZZ_CHECK(m.payload == NULL || cJSON_IsObject(m.payload));
        if (m.type == CMSG_SUBSCRIBE)
            check_subscribe(m.payload, utf8_in);
        cmsg_free(&m);
        FUZZ_CHECK(m.root == NULL);
    }

    /* A reason buffer of any size is filled within its bounds (the heap
     * copy lets ASan see one byte too many). */
    if (size > 0) {
        size_t small = 1 + data[size - 1] % 8;
        char *tiny = malloc(small);
        FUZZ_CHECK(tiny != NULL);
        if (cmsg_parse(text, size, &m, &code, tiny, small) == 0)
            cmsg_free(&m);
        else
            FUZZ_CHECK(memchr(tiny, '\0', small) != NULL);
        free(tiny);
    }
    return 0;
}
