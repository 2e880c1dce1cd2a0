/*
 * test_sub: subscribe filters and the index that matches entries to members.
 *
 * The index only exists to avoid testing every filter against every entry,
 * so its answer must be exactly what that brute-force loop gives: the same
 * members, each once.  The hand-written cases pin the corners (anchors,
 * missing dimensions, values that are prefixes of each other, groups that
 * share an anchor value); the randomized case compares the index with
 * sub_filter_matches and with a bitmask model that shares no code with sub.c,
 * through thousands of joins, leaves and entries.
 */
#include "worker/sub.h"

#include <stddef.h>
#include <stdint.h>

#include "test.h"

static const struct sub_limits limits = {8, 16};

struct client {
    struct sub_member m;
    int id;
    int visits;
};

static struct client *
client_of(struct sub_member *m)
{
    return (struct client *)((char *)m - offsetof(struct client, m));
}

static void
count_visit(struct sub_member *m, void *ctx)
{
    int *total = ctx;

    client_of(m)->visits++;
    (*total)++;
}

/* Parse JSON text (NULL: no payload) as a subscribe payload with lim.  The
 * cJSON tree is deleted before returning, so a filter that kept pointers
 * into it would show up under ASan. */
static int
parse_with(const char *json, const struct sub_limits *lim, struct sub_filter *f, char *err,
           size_t errlen)
{
    cJSON *p = NULL;
    int rc;

    if (json != NULL) {
        p = cJSON_Parse(json);
        if (p == NULL) {
            printf("# test JSON does not parse: %s\n", json);
            abort();
        }
    }
    err[0] = '\0';
    rc = sub_filter_parse(p, lim, f, err, errlen);
    cJSON_Delete(p);
    return rc;
}

static int
parse(const char *json, struct sub_filter *f, char *err, size_t errlen)
{
    return parse_with(json, &limits, f, err, errlen);
}

/* A filter the test knows to be valid. */
static struct sub_filter
filter_of(const char *json)
{
    struct sub_filter f;
    char err[256];

    if (parse(json, &f, err, sizeof(err)) != 0) {
        printf("# test filter refused: %s: %s\n", json, err);
        abort();
    }
    return f;
}

/* "v1,v2,..." of a list, to compare contents and order in one check. */
static const char *
list_str(const struct sub_list *l, char *buf, size_t size)
{
    size_t off = 0;

    buf[0] = '\0';
    for (uint32_t i = 0; i < l->n; i++) {
        int n = snprintf(buf + off, size - off, "%s%s", i ? "," : "", l->values[i]);
        if (n < 0 || (size_t)n >= size - off)
            break;
        off += (size_t)n;
    }
    return buf;
}

static int
filter_is_empty(const struct sub_filter *f)
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (f->dims[d].n != 0 || f->dims[d].values != NULL || f->dims[d].lens != NULL)
            return 0;
    }
    return 1;
}

/*
 * An entry's keys.  Each value is stored followed by "2zz" and no NUL, so
 * code that read a key with strlen or strcmp instead of ptr/len would see
 * "nba2zz" where the entry says "nba".
 */
struct entry {
    char bufs[SUB_NDIMS][64];
    struct frame_key_ref keys[SUB_NDIMS];
};

static void
entry_set(struct entry *e, const char *sport, const char *event, const char *market,
          const char *book)
{
    const char *v[SUB_NDIMS];

    v[FRAME_KEY_SPORT] = sport;
    v[FRAME_KEY_EVENT] = event;
    v[FRAME_KEY_MARKET] = market;
    v[FRAME_KEY_BOOK] = book;
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (v[d] == NULL) {
            e->keys[d].ptr = NULL;
            e->keys[d].len = 0;
            continue;
        }
        size_t len = strlen(v[d]);
        memcpy(e->bufs[d], v[d], len);
        memcpy(e->bufs[d] + len, "2zz", 3);
        e->keys[d].ptr = e->bufs[d];
        e->keys[d].len = (uint32_t)len;
    }
}

static int
err_names(const char *err, const char *list)
{
    return strstr(err, list) != NULL;
}

/* json must be refused, with a reason that names list, and leave out empty. */
static void
check_refused(const char *json, const char *list)
{
    struct sub_filter f;
    char err[256];

    CHECK_INT(parse(json, &f, err, sizeof(err)), -1);
    if (!err_names(err, list)) {
        printf("#   %s: error \"%s\" does not name the list\n", json, err);
        test_failed_checks++;
    }
    CHECK(filter_is_empty(&f));
}

/* ---- parsing ----------------------------------------------------------- */

static void
test_parse_null_payload(void)
{
    struct sub_filter f;
    char err[256];

    memset(&f, 0xa5, sizeof(f));
    CHECK_INT(parse(NULL, &f, err, sizeof(err)), 0);
    CHECK(filter_is_empty(&f));
    sub_filter_free(&f);
}

static void
test_parse_missing_and_null_lists(void)
{
    static const char *const payloads[] = {
        "{}",
        "{\"sports\":null,\"events\":null,\"markets\":null,\"books\":null}",
        "{\"sports\":[],\"events\":[],\"markets\":[],\"books\":[]}",
        "{\"other\":[\"x\"],\"Sports\":[\"nba\"]}",
    };

    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        struct sub_filter f;
        char err[256];

        CHECK_INT(parse(payloads[i], &f, err, sizeof(err)), 0);
        for (int d = 0; d < SUB_NDIMS; d++)
            CHECK_INT(f.dims[d].n, 0);
        sub_filter_free(&f);
    }

    /* One list given, the others missing or null. */
    struct sub_filter f;
    char err[256], buf[256];
    CHECK_INT(parse("{\"markets\":[\"h2h\"],\"books\":null}", &f, err, sizeof(err)), 0);
    CHECK_INT(f.dims[FRAME_KEY_SPORT].n, 0);
    CHECK_INT(f.dims[FRAME_KEY_EVENT].n, 0);
    CHECK_STR(list_str(&f.dims[FRAME_KEY_MARKET], buf, sizeof(buf)), "h2h");
    CHECK_INT(f.dims[FRAME_KEY_BOOK].n, 0);
    sub_filter_free(&f);
}

static void
test_parse_refuses_non_list(void)
{
    static const struct {
        const char *json, *list;
    } cases[] = {
        {"{\"sports\":\"nba\"}", "sports"},
        {"{\"events\":42}", "events"},
        {"{\"markets\":{\"h2h\":true}}", "markets"},
        {"{\"books\":true}", "books"},
        {"{\"books\":\"\"}", "books"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_refused(cases[i].json, cases[i].list);
}

static void
test_parse_refuses_non_string_values(void)
{
    static const struct {
        const char *json, *list;
    } cases[] = {
        {"{\"events\":[1,2]}", "events"},         {"{\"sports\":[\"nba\",null]}", "sports"},
        {"{\"markets\":[[\"h2h\"]]}", "markets"}, {"{\"books\":[\"dk\",{\"b\":1}]}", "books"},
        {"{\"books\":[\"dk\",false]}", "books"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        check_refused(cases[i].json, cases[i].list);
}

static void
test_parse_error_frees_earlier_lists(void)
{
    /* sports and events are parsed before books fails: they must be freed
     * (the leak checkers see it) and out left empty. */
    struct sub_filter f;
    char err[256];

    CHECK_INT(parse("{\"sports\":[\"nba\",\"nfl\"],\"events\":[\"e1\"],\"books\":[\"dk\",7]}", &f,
                    err, sizeof(err)),
              -1);
    CHECK(err_names(err, "books"));
    CHECK(filter_is_empty(&f));
    /* Freeing a refused filter again must be harmless. */
    sub_filter_free(&f);
}

static void
test_parse_sorts_and_dedups(void)
{
    struct sub_filter f;
    char err[256], buf[256];

    CHECK_INT(parse("{\"books\":[\"fd\",\"dk\",\"fd\",\"b\",\"fanduel\",\"dk\",\"b\"],"
                    "\"sports\":[\"nba\",\"nba\",\"nba\"],\"events\":[\"e10\",\"e2\",\"e1\"]}",
                    &f, err, sizeof(err)),
              0);
    /* Sorted by length, then bytes, as the header says. */
    CHECK_STR(list_str(&f.dims[FRAME_KEY_BOOK], buf, sizeof(buf)), "b,dk,fd,fanduel");
    CHECK_INT(f.dims[FRAME_KEY_BOOK].n, 4);
    CHECK_STR(list_str(&f.dims[FRAME_KEY_SPORT], buf, sizeof(buf)), "nba");
    CHECK_INT(f.dims[FRAME_KEY_SPORT].n, 1);
    CHECK_STR(list_str(&f.dims[FRAME_KEY_EVENT], buf, sizeof(buf)), "e1,e2,e10");
    for (int d = 0; d < SUB_NDIMS; d++) {
        for (uint32_t i = 0; i < f.dims[d].n; i++)
            CHECK_INT(f.dims[d].lens[i], strlen(f.dims[d].values[i]));
    }
    sub_filter_free(&f);
}

static void
test_parse_max_values(void)
{
    struct sub_filter f;
    char err[256], buf[256];

    /* limits.max_values is 8. */
    CHECK_INT(parse("{\"markets\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]}", &f, err,
                    sizeof(err)),
              0);
    CHECK_STR(list_str(&f.dims[FRAME_KEY_MARKET], buf, sizeof(buf)), "a,b,c,d,e,f,g,h");
    sub_filter_free(&f);

    CHECK_INT(parse("{\"markets\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\",\"i\"]}", &f,
                    err, sizeof(err)),
              -1);
    CHECK(err_names(err, "markets"));
    CHECK(filter_is_empty(&f));

    /* The limit is per list: 8 in each of the four lists is fine. */
    CHECK_INT(parse("{\"sports\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"],"
                    "\"events\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"],"
                    "\"markets\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"],"
                    "\"books\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\"]}",
                    &f, err, sizeof(err)),
              0);
    for (int d = 0; d < SUB_NDIMS; d++)
        CHECK_INT(f.dims[d].n, 8);
    sub_filter_free(&f);

    /* A smaller limit from the caller is the one that applies. */
    struct sub_limits one = {1, 16};
    CHECK_INT(parse_with("{\"books\":[\"dk\"]}", &one, &f, err, sizeof(err)), 0);
    sub_filter_free(&f);
    CHECK_INT(parse_with("{\"books\":[\"dk\",\"fd\"]}", &one, &f, err, sizeof(err)), -1);
    CHECK(err_names(err, "books"));
    CHECK(filter_is_empty(&f));
}

static void
test_parse_max_value_len(void)
{
    struct sub_filter f;
    char err[256];

    /* limits.max_value_len is 16 bytes. */
    CHECK_INT(parse("{\"events\":[\"0123456789abcdef\"]}", &f, err, sizeof(err)), 0);
    CHECK_INT(f.dims[FRAME_KEY_EVENT].n, 1);
    CHECK_INT(f.dims[FRAME_KEY_EVENT].lens[0], 16);
    sub_filter_free(&f);

    CHECK_INT(parse("{\"events\":[\"ok\",\"0123456789abcdefg\"]}", &f, err, sizeof(err)), -1);
    CHECK(err_names(err, "events"));
    CHECK(filter_is_empty(&f));

    /* Bytes, not characters: eight 2-byte characters fit, nine do not. */
    CHECK_INT(parse("{\"sports\":[\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\"]}",
                    &f, err, sizeof(err)),
              0);
    CHECK_INT(f.dims[FRAME_KEY_SPORT].n, 1);
    CHECK_INT(f.dims[FRAME_KEY_SPORT].lens[0], 16);
    sub_filter_free(&f);
    CHECK_INT(parse("{\"sports\":[\"\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9"
                    "\\u00e9\"]}",
                    &f, err, sizeof(err)),
              -1);
    CHECK(err_names(err, "sports"));
    CHECK(filter_is_empty(&f));
}

static void
test_parse_error_fits_small_buffer(void)
{
    struct sub_filter f;
    char err[8];

    memset(err, 'x', sizeof(err));
    CHECK_INT(parse("{\"sports\":\"nba\"}", &f, err, sizeof(err)), -1);
    CHECK(memchr(err, '\0', sizeof(err)) != NULL);
    CHECK(err[0] != '\0');
}

/* ---- sub_filter_to_json ------------------------------------------------ */

static void
check_json_equals(cJSON *got, const char *want_text)
{
    cJSON *want = cJSON_Parse(want_text);
    char *got_text = got ? cJSON_PrintUnformatted(got) : NULL;

    CHECK(want != NULL);
    CHECK(got != NULL);
    if (!cJSON_Compare(want, got, 1)) {
        printf("#   want %s\n#   got  %s\n", want_text, got_text ? got_text : "(null)");
        CHECK(0);
    }
    free(got_text);
    cJSON_Delete(want);
}

static void
test_to_json_empty_filter(void)
{
    struct sub_filter f = filter_of(NULL);
    cJSON *j = sub_filter_to_json(&f);

    /* All four lists are present even when empty, so a client can read its
     * subscription back without guessing defaults. */
    check_json_equals(j, "{\"sports\":[],\"events\":[],\"markets\":[],\"books\":[]}");
    CHECK_INT(cJSON_GetArraySize(j), 4);
    cJSON_Delete(j);
    sub_filter_free(&f);
}

static void
test_to_json_values_in_force(void)
{
    struct sub_filter f = filter_of("{\"books\":[\"fd\",\"dk\",\"fd\"],\"markets\":null,"
                                    "\"sports\":[\"nba\"],\"unknown\":[1]}");
    cJSON *j = sub_filter_to_json(&f);
    struct sub_filter again;
    char err[256];

    check_json_equals(
        j, "{\"sports\":[\"nba\"],\"events\":[],\"markets\":[],\"books\":[\"dk\",\"fd\"]}");

    /* What a client reads back subscribes it to the same filter. */
    CHECK_INT(sub_filter_parse(j, &limits, &again, err, sizeof(err)), 0);
    for (int d = 0; d < SUB_NDIMS; d++) {
        char a[256], b[256];
        CHECK_STR(list_str(&again.dims[d], a, sizeof(a)), list_str(&f.dims[d], b, sizeof(b)));
    }
    sub_filter_free(&again);
    cJSON_Delete(j);
    sub_filter_free(&f);
}

/* ---- sub_filter_matches ------------------------------------------------ */

static void
test_matches_definition(void)
{
    static const struct {
        const char *filter;
        const char *sport, *event, *market, *book;
        int want;
    } cases[] = {
        /* empty filter: everything */
        {"{}", "nba", "e1", "h2h", "dk", 1},
        {"{}", NULL, NULL, NULL, NULL, 1},
        /* one list */
        {"{\"sports\":[\"nba\"]}", "nba", "e1", "h2h", "dk", 1},
        {"{\"sports\":[\"nba\"]}", "nfl", "e1", "h2h", "dk", 0},
        {"{\"sports\":[\"nba\",\"nfl\"]}", "nfl", NULL, NULL, NULL, 1},
        /* a missing dimension never excludes */
        {"{\"sports\":[\"nba\"]}", NULL, "e1", "h2h", "dk", 1},
        {"{\"sports\":[\"nba\"],\"books\":[\"dk\"]}", NULL, NULL, NULL, NULL, 1},
        {"{\"sports\":[\"nba\"],\"books\":[\"dk\"]}", NULL, NULL, NULL, "fd", 0},
        /* every non-empty list must hold the entry's value */
        {"{\"sports\":[\"nba\"],\"markets\":[\"h2h\",\"spreads\"]}", "nba", "e9", "spreads", "x",
         1},
        {"{\"sports\":[\"nba\"],\"markets\":[\"h2h\",\"spreads\"]}", "nba", "e9", "totals", "x", 0},
        {"{\"sports\":[\"nba\"],\"markets\":[\"h2h\",\"spreads\"]}", "nfl", "e9", "h2h", "x", 0},
        /* prefixes and extensions are different values */
        {"{\"sports\":[\"nba\"]}", "nba2", NULL, NULL, NULL, 0},
        {"{\"sports\":[\"nba2\"]}", "nba", NULL, NULL, NULL, 0},
        {"{\"sports\":[\"nba\"]}", "nb", NULL, NULL, NULL, 0},
        {"{\"events\":[\"e1\",\"e10\"]}", "nba", "e100", NULL, NULL, 0},
        {"{\"events\":[\"e1\",\"e10\"]}", "nba", "e10", NULL, NULL, 1},
        /* case matters */
        {"{\"books\":[\"DK\"]}", NULL, NULL, NULL, "dk", 0},
        /* "" is a value like any other, not a missing dimension */
        {"{\"markets\":[\"\"]}", NULL, NULL, "", NULL, 1},
        {"{\"markets\":[\"\"]}", NULL, NULL, "h2h", NULL, 0},
        {"{\"markets\":[\"h2h\"]}", NULL, NULL, "", NULL, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sub_filter f = filter_of(cases[i].filter);
        struct entry e;
        int got;

        entry_set(&e, cases[i].sport, cases[i].event, cases[i].market, cases[i].book);
        got = sub_filter_matches(&f, e.keys);
        if (got != cases[i].want)
            printf("#   case %zu: filter %s\n", i, cases[i].filter);
        CHECK_INT(got, cases[i].want);
        sub_filter_free(&f);
    }
}

/* ---- the index --------------------------------------------------------- */

/* Run a match and check that it visits exactly the clients in want (a
 * bitmask over cl[0..n)), each once, and returns their number. */
static void
check_match_at(int line, struct sub_index *idx, struct client *cl, int n, const struct entry *e,
               unsigned long want)
{
    int total = 0, expected = 0;
    size_t rc;

    for (int i = 0; i < n; i++)
        cl[i].visits = 0;
    rc = sub_index_match(idx, e->keys, count_visit, &total);
    for (int i = 0; i < n; i++) {
        int w = (want >> i) & 1;
        expected += w;
        if (cl[i].visits != w) {
            printf("#   line %d: client %d visited %d times, want %d\n", line, i, cl[i].visits, w);
            test_failed_checks++;
        }
    }
    CHECK_INT(rc, expected);
    CHECK_INT(total, expected);
}

#define CHECK_MATCH(idx, cl, n, e, want) check_match_at(__LINE__, idx, cl, n, e, want)

static void
join(struct sub_index *idx, struct client *c, const char *json)
{
    struct sub_filter f = filter_of(json);

    CHECK_INT(sub_index_join(idx, &c->m, &f), 0);
    CHECK(c->m.group != NULL);
}

static void
test_index_join_leave_rejoin(void)
{
    struct sub_index *idx = sub_index_new();
    struct client c[1];
    struct entry nba, nfl;
    char buf[256];

    memset(c, 0, sizeof(c));
    entry_set(&nba, "nba", "e1", "h2h", "dk");
    entry_set(&nfl, "nfl", "e1", "h2h", "dk");
    CHECK(sub_member_filter(&c[0].m) == NULL);
    CHECK_MATCH(idx, c, 1, &nba, 0);

    join(idx, c, "{\"sports\":[\"nba\"]}");
    CHECK(sub_member_filter(&c[0].m) != NULL);
    CHECK_STR(list_str(&sub_member_filter(&c[0].m)->dims[FRAME_KEY_SPORT], buf, sizeof(buf)),
              "nba");
    CHECK_INT(sub_index_groups(idx), 1);
    CHECK_MATCH(idx, c, 1, &nba, 1);
    CHECK_MATCH(idx, c, 1, &nfl, 0);

    sub_index_leave(idx, &c[0].m);
    CHECK(c[0].m.group == NULL);
    CHECK(sub_member_filter(&c[0].m) == NULL);
    CHECK_INT(sub_index_groups(idx), 0);
    CHECK_MATCH(idx, c, 1, &nba, 0);
    /* Leaving twice is a no-op. */
    sub_index_leave(idx, &c[0].m);
    CHECK_INT(sub_index_groups(idx), 0);

    /* Rejoin with another filter: only the new one applies. */
    join(idx, c, "{\"sports\":[\"nfl\"]}");
    CHECK_MATCH(idx, c, 1, &nba, 0);
    CHECK_MATCH(idx, c, 1, &nfl, 1);
    sub_index_leave(idx, &c[0].m);

    /* And with the same filter as before. */
    join(idx, c, "{\"sports\":[\"nba\"]}");
    CHECK_MATCH(idx, c, 1, &nba, 1);
    CHECK_MATCH(idx, c, 1, &nfl, 0);
    sub_index_leave(idx, &c[0].m);
    CHECK_INT(sub_index_groups(idx), 0);
    sub_index_free(idx);
}

static void
test_index_join_moves_filter(void)
{
    struct sub_index *idx = sub_index_new();
    struct client a, b;
    struct sub_filter f = filter_of("{\"events\":[\"e1\",\"e2\"],\"books\":[\"dk\"]}");
    struct sub_filter g = filter_of("{\"events\":[\"e2\",\"e1\"],\"books\":[\"dk\",\"dk\"]}");
    char buf[256];

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    /* The new group takes f's contents... */
    CHECK_INT(sub_index_join(idx, &a.m, &f), 0);
    CHECK(filter_is_empty(&f));
    /* ...and a join into an existing group frees g's: both leave *filter
     * empty, so the caller's sub_filter_free is always safe and never a
     * double free. */
    CHECK_INT(sub_index_join(idx, &b.m, &g), 0);
    CHECK(filter_is_empty(&g));
    sub_filter_free(&f);
    sub_filter_free(&g);
    CHECK_STR(list_str(&sub_member_filter(&b.m)->dims[FRAME_KEY_EVENT], buf, sizeof(buf)), "e1,e2");
    sub_index_leave(idx, &a.m);
    sub_index_leave(idx, &b.m);
    sub_index_free(idx);
}

static void
test_index_identical_filters_share_group(void)
{
    struct sub_index *idx = sub_index_new();
    struct client c[5];
    struct entry e;

    memset(c, 0, sizeof(c));
    entry_set(&e, "nba", "e1", "h2h", "dk");
    /* The same filter spelled three ways: order, duplicates, null lists. */
    join(idx, &c[0], "{\"sports\":[\"nba\",\"nfl\"],\"books\":[\"dk\"]}");
    join(idx, &c[1], "{\"books\":[\"dk\",\"dk\"],\"sports\":[\"nfl\",\"nba\"],\"events\":null}");
    join(idx, &c[2], "{\"sports\":[\"nfl\",\"nba\",\"nfl\"],\"books\":[\"dk\"],\"markets\":[]}");
    CHECK_INT(sub_index_groups(idx), 1);
    CHECK(sub_member_filter(&c[0].m) == sub_member_filter(&c[1].m));
    CHECK(sub_member_filter(&c[0].m) == sub_member_filter(&c[2].m));

    /* Same values in another dimension: a different filter. */
    join(idx, &c[3], "{\"sports\":[\"nba\",\"nfl\"],\"markets\":[\"dk\"]}");
    CHECK_INT(sub_index_groups(idx), 2);
    /* Same multiset of bytes, split differently between values. */
    join(idx, &c[4], "{\"sports\":[\"nban\",\"fl\"],\"books\":[\"dk\"]}");
    CHECK_INT(sub_index_groups(idx), 3);
    CHECK_MATCH(idx, c, 5, &e, 0x07);

    sub_index_leave(idx, &c[1].m);
    CHECK_INT(sub_index_groups(idx), 3);
    CHECK_MATCH(idx, c, 5, &e, 0x05);
    sub_index_leave(idx, &c[0].m);
    CHECK_INT(sub_index_groups(idx), 3);
    CHECK_MATCH(idx, c, 5, &e, 0x04);
    /* The last member of the group leaves: the group goes. */
    sub_index_leave(idx, &c[2].m);
    CHECK_INT(sub_index_groups(idx), 2);
    CHECK_MATCH(idx, c, 5, &e, 0);
    /* A new member with that filter makes a new group that works. */
    join(idx, &c[1], "{\"sports\":[\"nba\"],\"books\":[\"dk\"]}");
    CHECK_INT(sub_index_groups(idx), 3);
    CHECK_MATCH(idx, c, 5, &e, 0x02);

    sub_index_leave(idx, &c[1].m);
    sub_index_leave(idx, &c[3].m);
    sub_index_leave(idx, &c[4].m);
    CHECK_INT(sub_index_groups(idx), 0);
    sub_index_free(idx);
}

/* Members anchored on every dimension, plus one on the match-all list. */
static const char *const anchor_filters[] = {
    /* 0 */ "{}",
    /* 1 */ "{\"events\":[\"e1\"]}",
    /* 2 */ "{\"books\":[\"dk\"]}",
    /* 3 */ "{\"markets\":[\"h2h\"]}",
    /* 4 */ "{\"sports\":[\"nba\"]}",
    /* 5 */
    ("{\"sports\":[\"nba\"],\"events\":[\"e1\",\"e2\"],\"markets\":[\"h2h\"],"
     "\"books\":[\"dk\",\"fd\"]}"),
    /* 6 */ "{\"sports\":[\"nfl\"],\"books\":[\"fd\"]}",
    /* 7 */ "{\"markets\":[\"spreads\"],\"books\":[\"dk\"]}",
    /* 8 */ "{\"sports\":[\"nba\"],\"markets\":[\"h2h\",\"totals\"]}",
    /* 9 */ "{\"events\":[\"e2\"],\"sports\":[\"nfl\"]}",
};
#define NANCHOR ((int)(sizeof(anchor_filters) / sizeof(anchor_filters[0])))

static void
test_index_anchors(void)
{
    static const struct {
        const char *sport, *event, *market, *book;
        unsigned long want;
    } cases[] = {
        {"nba", "e1", "h2h", "dk", 0x13f},     /* 0-5, 8 */
        {"nba", "e1", "h2h", "fd", 0x13b},     /* 0, 1, 3, 4, 5, 8 */
        {"nba", "e2", "totals", "fd", 0x111},  /* 0, 4, 8 */
        {"nfl", "e2", "spreads", "dk", 0x285}, /* 0, 2, 7, 9 */
        {"nfl", "e3", "spreads", "fd", 0x041}, /* 0, 6 */
        {"mlb", "e9", "props", "bet", 0x001},  /* only the empty filter */
        {"nfl", "e2", "h2h", "fd", 0x249},     /* 0, 3, 6, 9 */
    };
    struct sub_index *idx = sub_index_new();
    struct client c[NANCHOR];
    struct entry e;

    memset(c, 0, sizeof(c));
    for (int i = 0; i < NANCHOR; i++)
        join(idx, &c[i], anchor_filters[i]);
    CHECK_INT(sub_index_groups(idx), NANCHOR);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        entry_set(&e, cases[i].sport, cases[i].event, cases[i].market, cases[i].book);
        CHECK_MATCH(idx, c, NANCHOR, &e, cases[i].want);
    }
    for (int i = 0; i < NANCHOR; i++)
        sub_index_leave(idx, &c[i].m);
    CHECK_INT(sub_index_groups(idx), 0);
    sub_index_free(idx);
}

static void
test_index_missing_dimensions(void)
{
    /* An entry without the anchor dimension must still reach the groups
     * anchored on it, if their other lists allow. */
    static const struct {
        const char *sport, *event, *market, *book;
        unsigned long want;
    } cases[] = {
        {NULL, NULL, NULL, NULL, 0x3ff},      /* nothing to exclude anyone */
        {"nba", NULL, NULL, NULL, 0x1bf},     /* not 6, 9: they want nfl */
        {NULL, "e1", NULL, NULL, 0x1ff},      /* not 9: it wants e2 */
        {NULL, NULL, "spreads", NULL, 0x2d7}, /* not 3, 5, 8 */
        {NULL, NULL, NULL, "fd", 0x37b},      /* not 2, 7 */
        {"nfl", NULL, "h2h", NULL, 0x24f},    /* 0, 1, 2, 3, 6, 9 */
        {"nba", "e2", NULL, "dk", 0x1bd},     /* 0, 2, 3, 4, 5, 7, 8 */
    };
    struct sub_index *idx = sub_index_new();
    struct client c[NANCHOR];
    struct entry e;

    memset(c, 0, sizeof(c));
    for (int i = 0; i < NANCHOR; i++)
        join(idx, &c[i], anchor_filters[i]);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sub_filter f;
        unsigned long brute = 0;

        entry_set(&e, cases[i].sport, cases[i].event, cases[i].market, cases[i].book);
        /* The expectations are hand-computed; cross-check them against the
         * definition so a typo in the table cannot hide a bug. */
        for (int k = 0; k < NANCHOR; k++) {
            f = filter_of(anchor_filters[k]);
            if (sub_filter_matches(&f, e.keys))
                brute |= 1UL << k;
            sub_filter_free(&f);
        }
        CHECK_INT(brute, cases[i].want);
        CHECK_MATCH(idx, c, NANCHOR, &e, cases[i].want);
    }
    for (int i = 0; i < NANCHOR; i++)
        sub_index_leave(idx, &c[i].m);
    sub_index_free(idx);
}

static void
test_index_prefix_values(void)
{
    struct sub_index *idx = sub_index_new();
    struct client c[6];
    struct entry e;

    memset(c, 0, sizeof(c));
    join(idx, &c[0], "{\"sports\":[\"nba\"]}");
    join(idx, &c[1], "{\"sports\":[\"nba2\"]}");
    join(idx, &c[2], "{\"events\":[\"e1\"]}");
    join(idx, &c[3], "{\"events\":[\"e10\"]}");
    join(idx, &c[4], "{\"events\":[\"e1\",\"e10\"]}");
    join(idx, &c[5], "{\"books\":[\"\"]}");

    entry_set(&e, "nba", NULL, NULL, "x");
    CHECK_MATCH(idx, c, 6, &e, 0x1d); /* 0, and events-anchored 2, 3, 4 (no event) */
    entry_set(&e, "nba2", "e1", NULL, "x");
    CHECK_MATCH(idx, c, 6, &e, 0x16);
    entry_set(&e, "nb", "e10", NULL, "x");
    CHECK_MATCH(idx, c, 6, &e, 0x18);
    entry_set(&e, "nba", "e100", NULL, "");
    CHECK_MATCH(idx, c, 6, &e, 0x21);
    entry_set(&e, NULL, "e", NULL, NULL);
    CHECK_MATCH(idx, c, 6, &e, 0x23);
    for (int i = 0; i < 6; i++)
        sub_index_leave(idx, &c[i].m);
    sub_index_free(idx);
}

static void
test_index_each_member_once(void)
{
    /* Filters that hold the entry's value in every list, so a wrong index
     * could reach them through several dimensions or several values. */
    struct sub_index *idx = sub_index_new();
    struct client c[4];
    struct entry e;

    memset(c, 0, sizeof(c));
    join(idx, &c[0],
         "{\"sports\":[\"nba\",\"nfl\"],\"events\":[\"e1\",\"e2\"],"
         "\"markets\":[\"h2h\",\"totals\"],\"books\":[\"dk\",\"fd\"]}");
    join(idx, &c[1],
         "{\"sports\":[\"nba\"],\"events\":[\"e1\"],\"markets\":[\"h2h\"],"
         "\"books\":[\"dk\"]}");
    join(idx, &c[2], "{\"sports\":[\"nba\"],\"markets\":[\"h2h\"],\"books\":[\"dk\"]}");
    join(idx, &c[3],
         "{\"sports\":[\"nba\"],\"events\":[\"e1\"],\"markets\":[\"h2h\"],"
         "\"books\":[\"dk\"]}");
    CHECK_INT(sub_index_groups(idx), 3);
    entry_set(&e, "nba", "e1", "h2h", "dk");
    CHECK_MATCH(idx, c, 4, &e, 0x0f);
    entry_set(&e, NULL, NULL, NULL, NULL);
    CHECK_MATCH(idx, c, 4, &e, 0x0f);
    entry_set(&e, "nfl", "e2", "totals", "fd");
    CHECK_MATCH(idx, c, 4, &e, 0x01);
    for (int i = 0; i < 4; i++)
        sub_index_leave(idx, &c[i].m);
    sub_index_free(idx);
}

static void
test_index_groups_sharing_anchor_value(void)
{
    /* Five groups on the posting list of "e1"; remove them from the middle,
     * the head and the tail of that list and check the rest still match. */
    static const char *const filters[] = {
        "{\"events\":[\"e1\"]}",
        "{\"events\":[\"e1\",\"e2\"]}",
        "{\"events\":[\"e1\"],\"books\":[\"dk\"]}",
        "{\"events\":[\"e1\",\"e3\"],\"sports\":[\"nba\"]}",
        "{\"events\":[\"e0\",\"e1\"],\"markets\":[\"h2h\"]}",
    };
    static const int order[] = {2, 4, 0, 3, 1};
    struct sub_index *idx = sub_index_new();
    struct client c[5];
    struct entry e1, e2;
    unsigned long live = 0x1f;

    memset(c, 0, sizeof(c));
    for (int i = 0; i < 5; i++)
        join(idx, &c[i], filters[i]);
    CHECK_INT(sub_index_groups(idx), 5);
    entry_set(&e1, "nba", "e1", "h2h", "dk");
    entry_set(&e2, "nba", "e2", "h2h", "dk");
    CHECK_MATCH(idx, c, 5, &e1, 0x1f);
    CHECK_MATCH(idx, c, 5, &e2, 0x02);
    for (int k = 0; k < 5; k++) {
        sub_index_leave(idx, &c[order[k]].m);
        live &= ~(1UL << order[k]);
        CHECK_INT(sub_index_groups(idx), 4 - k);
        CHECK_MATCH(idx, c, 5, &e1, live);
        CHECK_MATCH(idx, c, 5, &e2, live & 0x02);
    }
    /* The emptied postings are gone: a new group on "e1" starts a fresh one. */
    join(idx, &c[0], filters[0]);
    CHECK_MATCH(idx, c, 5, &e1, 0x01);
    sub_index_leave(idx, &c[0].m);
    sub_index_free(idx);
}

static void
test_index_many_values_and_groups(void)
{
    /* Enough anchor values and groups to grow every hash map several times. */
    enum { NVAL = 150, NGROUP = 300 };
    static struct client c[NGROUP];
    struct sub_limits big = {NVAL, 16};
    struct sub_index *idx = sub_index_new();
    char json[NVAL * 12 + 64];
    struct entry e;
    char v[32];
    size_t off;

    memset(c, 0, sizeof(c));
    /* Client 0: one filter with NVAL event values. */
    off = (size_t)snprintf(json, sizeof(json), "{\"events\":[");
    for (int i = 0; i < NVAL; i++)
        off += (size_t)snprintf(json + off, sizeof(json) - off, "%s\"ev%d\"", i ? "," : "", i);
    snprintf(json + off, sizeof(json) - off, "]}");
    {
        struct sub_filter f;
        char err[256];
        CHECK_INT(parse_with(json, &big, &f, err, sizeof(err)), 0);
        CHECK_INT(f.dims[FRAME_KEY_EVENT].n, NVAL);
        CHECK_INT(sub_index_join(idx, &c[0].m, &f), 0);
    }
    /* Clients 1..: one group each, on book "b<i>". */
    for (int i = 1; i < NGROUP; i++) {
        snprintf(json, sizeof(json), "{\"books\":[\"b%d\"]}", i);
        join(idx, &c[i], json);
    }
    CHECK_INT(sub_index_groups(idx), NGROUP);
    for (int i = 0; i < NVAL; i += 7) {
        int total = 0;
        snprintf(v, sizeof(v), "ev%d", i);
        entry_set(&e, NULL, v, NULL, "b5");
        for (int k = 0; k < NGROUP; k++)
            c[k].visits = 0;
        CHECK_INT(sub_index_match(idx, e.keys, count_visit, &total), 2);
        CHECK_INT(c[0].visits, 1);
        CHECK_INT(c[5].visits, 1);
    }
    snprintf(v, sizeof(v), "ev%d", NVAL);
    entry_set(&e, NULL, v, NULL, "b299");
    {
        int total = 0;
        for (int k = 0; k < NGROUP; k++)
            c[k].visits = 0;
        CHECK_INT(sub_index_match(idx, e.keys, count_visit, &total), 1);
        CHECK_INT(c[NGROUP - 1].visits, 1);
    }
    for (int i = 0; i < NGROUP; i += 2)
        sub_index_leave(idx, &c[i].m);
    CHECK_INT(sub_index_groups(idx), NGROUP / 2);
    entry_set(&e, NULL, "ev0", NULL, "b5");
    {
        int total = 0;
        for (int k = 0; k < NGROUP; k++)
            c[k].visits = 0;
        CHECK_INT(sub_index_match(idx, e.keys, count_visit, &total), 1);
        CHECK_INT(c[5].visits, 1);
    }
    for (int i = 1; i < NGROUP; i += 2)
        sub_index_leave(idx, &c[i].m);
    CHECK_INT(sub_index_groups(idx), 0);
    sub_index_free(idx);
}

static void
test_index_free_detaches_members(void)
{
    struct sub_index *idx = sub_index_new();
    struct client c[NANCHOR + 2];

    memset(c, 0, sizeof(c));
    for (int i = 0; i < NANCHOR; i++)
        join(idx, &c[i], anchor_filters[i]);
    join(idx, &c[NANCHOR], anchor_filters[5]);
    join(idx, &c[NANCHOR + 1], anchor_filters[0]);
    /* Freed with members joined: every member is left unsubscribed and
     * nothing leaks (the leak checkers see the rest). */
    sub_index_free(idx);
    for (int i = 0; i < NANCHOR + 2; i++) {
        CHECK(c[i].m.group == NULL);
        CHECK(sub_member_filter(&c[i].m) == NULL);
    }
    sub_index_free(NULL);
}

/* ---- randomized differential test -------------------------------------- */

/*
 * A model of filters as one bitmask per dimension over a small vocabulary,
 * independent of sub.c.  The vocabularies hold values that are prefixes of
 * each other, and each dimension has one value no filter can hold, so
 * entries miss as well as hit.
 */
static const char *const vocab_sport[] = {"nba", "nba2", "nfl", "nf", "mlb"};
static const char *const vocab_event[] = {"e1",  "e2",  "e3",  "e4",  "e5",  "e6",  "e7",
                                          "e8",  "e9",  "e10", "e11", "e12", "e13", "e14",
                                          "e15", "e16", "e17", "e18", "e19", "e20"};
static const char *const vocab_market[] = {"h2h", "h2", "spreads", "totals"};
static const char *const vocab_book[] = {"dk", "dk2", "fd", "fanduel", "b", "bb"};
static const char *const vocab_outside[SUB_NDIMS] = {"nb", "e", "h2h2", "d"};

static const struct {
    const char *const *v;
    int n;
} vocab[SUB_NDIMS] = {
    [FRAME_KEY_SPORT] = {vocab_sport, 5},
    [FRAME_KEY_EVENT] = {vocab_event, 20},
    [FRAME_KEY_MARKET] = {vocab_market, 4},
    [FRAME_KEY_BOOK] = {vocab_book, 6},
};

struct model {
    uint32_t mask[SUB_NDIMS]; /* 0: any */
};

static uint64_t rng_state;

static uint64_t
rng_next(void)
{
    /* splitmix64: the same sequence on every libc, so a seed reproduces. */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int
rng_below(int n)
{
    return (int)(rng_next() % (uint64_t)n);
}

static struct model
model_random(void)
{
    struct model m;

    for (int d = 0; d < SUB_NDIMS; d++) {
        m.mask[d] = 0;
        if (rng_below(2) == 0)
            continue;
        for (int k = 1 + rng_below(3); k > 0; k--)
            m.mask[d] |= 1u << rng_below(vocab[d].n);
    }
    return m;
}

/* A payload for m, spelled at random: values in any order, sometimes twice,
 * empty lists missing, null or [], so equal models must still share groups. */
static cJSON *
model_to_payload(const struct model *m)
{
    cJSON *p = cJSON_CreateObject();
    int dorder[SUB_NDIMS] = {0, 1, 2, 3};

    for (int i = SUB_NDIMS - 1; i > 0; i--) {
        int j = rng_below(i + 1), t = dorder[i];
        dorder[i] = dorder[j];
        dorder[j] = t;
    }
    for (int k = 0; k < SUB_NDIMS; k++) {
        int d = dorder[k];
        int vals[64], n = 0;

        if (m->mask[d] == 0) {
            int how = rng_below(3);
            if (how == 1)
                cJSON_AddNullToObject(p, sub_dim_names[d]);
            else if (how == 2)
                cJSON_AddArrayToObject(p, sub_dim_names[d]);
            continue;
        }
        for (int v = 0; v < vocab[d].n; v++) {
            if (m->mask[d] & (1u << v)) {
                vals[n++] = v;
                if (rng_below(4) == 0)
                    vals[n++] = v;
            }
        }
        for (int i = n - 1; i > 0; i--) {
            int j = rng_below(i + 1), t = vals[i];
            vals[i] = vals[j];
            vals[j] = t;
        }
        cJSON *arr = cJSON_AddArrayToObject(p, sub_dim_names[d]);
        for (int i = 0; i < n; i++)
            cJSON_AddItemToArray(arr, cJSON_CreateString(vocab[d].v[vals[i]]));
    }
    return p;
}

/* Entry key per dimension: a vocabulary index, -1 for none, -2 for the
 * value outside every filter. */
static int
model_matches(const struct model *m, const int key[SUB_NDIMS])
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        if (m->mask[d] == 0 || key[d] == -1)
            continue;
        if (key[d] == -2 || !(m->mask[d] & (1u << key[d])))
            return 0;
    }
    return 1;
}

/* The filter the index holds for a member is the model's, value for value. */
static int
model_equals_filter(const struct model *m, const struct sub_filter *f)
{
    for (int d = 0; d < SUB_NDIMS; d++) {
        uint32_t seen = 0;
        for (uint32_t i = 0; i < f->dims[d].n; i++) {
            int v;
            for (v = 0; v < vocab[d].n; v++) {
                if (strcmp(f->dims[d].values[i], vocab[d].v[v]) == 0)
                    break;
            }
            if (v == vocab[d].n || (seen & (1u << v)))
                return 0;
            seen |= 1u << v;
        }
        if (seen != m->mask[d])
            return 0;
    }
    return 1;
}

static int
model_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(struct model));
}

enum { RND_MEMBERS = 2000, RND_ROUNDS = 40, RND_OPS = 300, RND_ENTRIES = 100 };

struct rnd_client {
    struct client c;
    int joined;
    struct model model;
};

static void
rnd_join(struct sub_index *idx, struct rnd_client *all, struct rnd_client *rc)
{
    struct sub_filter f;
    char err[256];
    cJSON *p;

    /* Often copy a joined member's filter, so that groups fill up and empty
     * again, not only form and vanish with one member. */
    rc->model = model_random();
    if (rng_below(3) == 0) {
        struct rnd_client *other = &all[rng_below(RND_MEMBERS)];
        if (other->joined)
            rc->model = other->model;
    }
    p = model_to_payload(&rc->model);
    if (sub_filter_parse(p, &limits, &f, err, sizeof(err)) != 0) {
        printf("#   random filter refused: %s\n", err);
        test_failed_checks++;
        cJSON_Delete(p);
        return;
    }
    cJSON_Delete(p);
    CHECK_INT(sub_index_join(idx, &rc->c.m, &f), 0);
    rc->joined = 1;
}

static size_t
rnd_distinct_models(const struct rnd_client *all, struct model *scratch)
{
    size_t n = 0, distinct = 0;

    for (int i = 0; i < RND_MEMBERS; i++) {
        if (all[i].joined)
            scratch[n++] = all[i].model;
    }
    qsort(scratch, n, sizeof(*scratch), model_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || model_cmp(&scratch[i - 1], &scratch[i]) != 0)
            distinct++;
    }
    return distinct;
}

static void
test_index_random_differential(void)
{
    static struct rnd_client all[RND_MEMBERS];
    static struct model scratch[RND_MEMBERS];
    uint64_t seed = 20251107;
    const char *env = getenv("WSB_TEST_SEED");
    struct sub_index *idx = sub_index_new();
    int reported = 0, entries = 0, hits = 0;

    if (env != NULL && *env != '\0')
        seed = strtoull(env, NULL, 0);
    /* Printed so a failure can be replayed with WSB_TEST_SEED. */
    printf("# random differential seed %llu\n", (unsigned long long)seed);
    rng_state = seed;
    memset(all, 0, sizeof(all));
    for (int i = 0; i < RND_MEMBERS; i++) {
        all[i].c.id = i;
        if (rng_below(5) != 0)
            rnd_join(idx, all, &all[i]);
    }

    for (int round = 0; round < RND_ROUNDS && reported < 10; round++) {
        for (int op = 0; op < RND_OPS; op++) {
            struct rnd_client *rc = &all[rng_below(RND_MEMBERS)];
            if (!rc->joined) {
                rnd_join(idx, all, rc);
            } else if (rng_below(2) == 0) {
                sub_index_leave(idx, &rc->c.m);
                rc->joined = 0;
                CHECK(rc->c.m.group == NULL);
            } else {
                /* Re-subscribe: the worker leaves and joins with the new filter. */
                sub_index_leave(idx, &rc->c.m);
                rnd_join(idx, all, rc);
            }
        }

        CHECK_INT(sub_index_groups(idx), rnd_distinct_models(all, scratch));
        for (int i = 0; i < RND_MEMBERS; i++) {
            const struct sub_filter *f = sub_member_filter(&all[i].c.m);
            if (all[i].joined != (f != NULL) ||
                (f != NULL && !model_equals_filter(&all[i].model, f))) {
                printf("#   seed %llu round %d: member %d holds the wrong filter\n",
                       (unsigned long long)seed, round, i);
                test_failed_checks++;
                reported++;
            }
        }

        for (int k = 0; k < RND_ENTRIES && reported < 10; k++) {
            int key[SUB_NDIMS], total = 0, want_total = 0;
            const char *v[SUB_NDIMS];
            struct entry e;
            size_t n;

            for (int d = 0; d < SUB_NDIMS; d++) {
                int r = rng_below(8);
                key[d] = r == 0 ? -1 : r == 1 ? -2 : rng_below(vocab[d].n);
                v[d] = key[d] == -1 ? NULL : key[d] == -2 ? vocab_outside[d] : vocab[d].v[key[d]];
            }
            entry_set(&e, v[FRAME_KEY_SPORT], v[FRAME_KEY_EVENT], v[FRAME_KEY_MARKET],
                      v[FRAME_KEY_BOOK]);
            for (int i = 0; i < RND_MEMBERS; i++)
                all[i].c.visits = 0;
            n = sub_index_match(idx, e.keys, count_visit, &total);
            entries++;
            for (int i = 0; i < RND_MEMBERS; i++) {
                int want = all[i].joined && model_matches(&all[i].model, key);
                int brute =
                    all[i].joined && sub_filter_matches(sub_member_filter(&all[i].c.m), e.keys);
                want_total += want;
                if (all[i].c.visits != want || brute != want) {
                    if (reported++ < 10)
                        printf("#   seed %llu round %d entry %d [%s %s %s %s]: member %d "
                               "visited %d, sub_filter_matches %d, model %d\n",
                               (unsigned long long)seed, round, k, v[0] ? v[0] : "-",
                               v[1] ? v[1] : "-", v[2] ? v[2] : "-", v[3] ? v[3] : "-", i,
                               all[i].c.visits, brute, want);
                    test_failed_checks++;
                }
            }
            hits += want_total;
            CHECK_INT(n, want_total);
            CHECK_INT(total, want_total);
        }
    }
    printf("# %d entries, %d visits, %zu groups at the end\n", entries, hits,
           sub_index_groups(idx));
    /* The test is only worth something if entries both hit and miss. */
    CHECK(entries >= RND_ROUNDS * RND_ENTRIES || reported > 0);
    CHECK(hits > entries && hits < entries * (RND_MEMBERS / 2));

    /* Leave half, then free with the rest still joined. */
    for (int i = 0; i < RND_MEMBERS; i += 2) {
        if (all[i].joined) {
            sub_index_leave(idx, &all[i].c.m);
            all[i].joined = 0;
        }
    }
    CHECK_INT(sub_index_groups(idx), rnd_distinct_models(all, scratch));
    sub_index_free(idx);
    for (int i = 0; i < RND_MEMBERS; i++)
        CHECK(all[i].c.m.group == NULL);
}

TEST_MAIN(TEST(test_parse_null_payload), TEST(test_parse_missing_and_null_lists),
          TEST(test_parse_refuses_non_list), TEST(test_parse_refuses_non_string_values),
          TEST(test_parse_error_frees_earlier_lists), TEST(test_parse_sorts_and_dedups),
          TEST(test_parse_max_values), TEST(test_parse_max_value_len),
          TEST(test_parse_error_fits_small_buffer), TEST(test_to_json_empty_filter),
          TEST(test_to_json_values_in_force), TEST(test_matches_definition),
          TEST(test_index_join_leave_rejoin), TEST(test_index_join_moves_filter),
          TEST(test_index_identical_filters_share_group), TEST(test_index_anchors),
          TEST(test_index_missing_dimensions), TEST(test_index_prefix_values),
          TEST(test_index_each_member_once), TEST(test_index_groups_sharing_anchor_value),
          TEST(test_index_many_values_and_groups), TEST(test_index_free_detaches_members),
          TEST(test_index_random_differential))
