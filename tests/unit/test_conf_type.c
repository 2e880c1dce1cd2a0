/*
 * test_conf_type: the per-type machinery conf's table relies on.  A row the
 * types cannot serve must be refused (conf_defaults aborts on it rather than
 * misread memory), a SECRET must compare by its value while printing only a
 * mask, and every plain number must read and print the same at random
 * points of its range.
 */
#include "common/conf.h"
#include "common/conf_type.h"

#include <stddef.h>

#include "test.h"

static void
test_rows_ok(void)
{
    struct conf_key k;

    for (size_t i = 0; i < conf_nkeys; i++) {
        if (!conf_type_row_ok(&conf_keys[i]))
            printf("#   row %s refused\n", conf_keys[i].name);
        CHECK(conf_type_row_ok(&conf_keys[i]));
    }

    /* Broken rows, each one fault away from a good one. */
    k = *conf_key_find("CLIENT_BUFFER");
    k.min = k.max + 1;
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("CLIENT_BUFFER");
    k.size = sizeof(uint64_t);
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("CLIENT_BUFFER");
    k.offset = sizeof(struct conf) - 2;
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("WORKERS");
    k.parse = NULL; /* no text form of its own for an int */
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("SPORTS");
    k.format = NULL;
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("CONSUMER_ID");
    k.default_value = NULL;
    CHECK(!conf_type_row_ok(&k));
    k = *conf_key_find("CONSUMER_ID");
    k.type = (enum conf_type)99;
    CHECK(!conf_type_row_ok(&k));
}

static void
test_secret(void)
{
    const struct conf_key *k = conf_key_find("REDIS_PASSWORD");
    struct conf a, b;
    char err[512], ta[64], tb[64];

    CHECK(k != NULL && k->type == CONF_TYPE_SECRET);
    conf_defaults(&a);
    conf_defaults(&b);
    CHECK(conf_type_same(&a, &b, k));
    CHECK_INT(conf_type_format(&a, k, ta, sizeof(ta)), 0);
    CHECK_STR(ta, "");
    CHECK_INT(conf_type_parse(&a, k, "one", err, sizeof(err)), 0);
    CHECK_INT(conf_type_parse(&b, k, "two", err, sizeof(err)), 0);
    CHECK_INT(conf_type_format(&a, k, ta, sizeof(ta)), 0);
    CHECK_INT(conf_type_format(&b, k, tb, sizeof(tb)), 0);
    CHECK_STR(ta, "(set)");
    CHECK_STR(tb, "(set)");
    CHECK(!conf_type_same(&a, &b, k));
    CHECK_INT(conf_type_parse(&b, k, "one", err, sizeof(err)), 0);
    CHECK(conf_type_same(&a, &b, k));
}

static void
test_same_by_type(void)
{
    /* A string left longer by an earlier value must not count as a change
     * once both hold the same text. */
    const struct conf_key *id = conf_key_find("CONSUMER_ID"), *sports = conf_key_find("SPORTS");
    const struct conf_key *workers = conf_key_find("WORKERS");
    struct conf a, b;
    char err[512];

    conf_defaults(&a);
    conf_defaults(&b);
    CHECK_INT(conf_type_parse(&b, id, "a-much-longer-consumer-name", err, sizeof(err)), 0);
    CHECK(!conf_type_same(&a, &b, id));
    CHECK_INT(conf_type_parse(&b, id, id->default_value, err, sizeof(err)), 0);
    CHECK(conf_type_same(&a, &b, id));

    CHECK_INT(conf_type_parse(&b, sports, "x,y,z", err, sizeof(err)), 0);
    CHECK(!conf_type_same(&a, &b, sports));
    CHECK_INT(conf_type_parse(&b, sports, "basketball_nba", err, sizeof(err)), 0);
    CHECK(conf_type_same(&a, &b, sports));

    CHECK_INT(conf_type_parse(&a, workers, "2", err, sizeof(err)), 0);
    CHECK_INT(conf_type_parse(&b, workers, "3", err, sizeof(err)), 0);
    CHECK(!conf_type_same(&a, &b, workers));
}

static void
test_format_truncates(void)
{
    struct conf c;
    char small[4];

    conf_defaults(&c);
    for (size_t i = 0; i < conf_nkeys; i++) {
        memset(small, 'x', sizeof(small));
        CHECK_INT(conf_type_format(&c, &conf_keys[i], small, sizeof(small)), 0);
        CHECK(memchr(small, '\0', sizeof(small)) != NULL);
    }
}

static void
test_numbers_random(void)
{
    /* Random values of each plain number row, as decimal text: inside the
     * bounds read and printed back unchanged, outside refused with the key
     * named. */
    unsigned long long seed = 0x9e3779b97f4a7c15ull;
    struct conf c;
    char err[512], text[32], out[32];

    conf_defaults(&c);
    for (size_t i = 0; i < conf_nkeys; i++) {
        const struct conf_key *k = &conf_keys[i];

        if (k->type != CONF_TYPE_U32 || k->parse != NULL)
            continue;
        for (int n = 0; n < 2000; n++) {
            unsigned long long v;
            int rc, inside;

            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            /* Half near the bounds, half anywhere in 0 .. 2 * max. */
            if (n % 2 == 0)
                v = (n % 4 == 0 ? k->min : k->max) + (seed >> 62) - 1;
            else
                v = (seed >> 20) % (2ull * k->max + 2);
            if (v > 0xffffffffull && n % 4 == 0)
                continue; /* min - 1 with min 0 */
            snprintf(text, sizeof(text), "%llu", v);
            inside = v >= k->min && v <= k->max;
            err[0] = '\0';
            rc = conf_type_parse(&c, k, text, err, sizeof(err));
            if (rc != (inside ? 0 : -1))
                printf("#   %s=%s: %d\n", k->name, text, rc);
            CHECK_INT(rc, inside ? 0 : -1);
            if (!inside) {
                CHECK(strncmp(err, k->name, strlen(k->name)) == 0);
                continue;
            }
            CHECK_INT(conf_type_format(&c, k, out, sizeof(out)), 0);
            CHECK_STR(out, text);
        }
    }
}

TEST_MAIN(TEST(test_rows_ok), TEST(test_secret), TEST(test_same_by_type),
          TEST(test_format_truncates), TEST(test_numbers_random))
