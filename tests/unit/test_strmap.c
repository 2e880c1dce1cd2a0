/*
 * test_strmap: the map behind the filter index (and, later, other tables
 * keyed by client-chosen strings).  Keys are bytes, not C strings, so
 * embedded NULs and prefixes of other keys must stay distinct.
 */
#include "common/hash.h"
#include "common/strmap.h"

#include <stdio.h>

#include "test.h"

static void
empty_map_finds_nothing(void)
{
    struct strmap m = {0};

    CHECK(strmap_get(&m, "a", 1) == NULL);
    strmap_del(&m, "a", 1); /* no-op */
    strmap_free(&m);
}

static void
put_get_del(void)
{
    struct strmap m = {0};
    int a = 1, b = 2, c = 3;

    CHECK_INT(strmap_put(&m, "ab", 2, &a), 0);
    CHECK_INT(strmap_put(&m, "a", 1, &b), 0);
    CHECK_INT(strmap_put(&m, "a\0b", 3, &c), 0);
    CHECK(strmap_get(&m, "ab", 2) == &a);
    CHECK(strmap_get(&m, "a", 1) == &b);
    CHECK(strmap_get(&m, "a\0b", 3) == &c);
    CHECK(strmap_get(&m, "a\0", 2) == NULL);
    CHECK(strmap_get(&m, "", 0) == NULL);
    strmap_del(&m, "a", 1);
    CHECK(strmap_get(&m, "a", 1) == NULL);
    CHECK(strmap_get(&m, "ab", 2) == &a);
    CHECK_INT(m.count, 2);
    strmap_free(&m);
    CHECK_INT(m.count, 0);
    CHECK(m.buckets == NULL);
}

static void
grows_and_keeps_every_key(void)
{
    struct strmap m = {0};
    static int values[20000];
    char key[32];
    int missing = 0;

    hash_set_key((const unsigned char *)"0123456789abcdef");
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "event-%d", i);
        CHECK_INT(strmap_put(&m, key, (size_t)n, &values[i]), 0);
    }
    CHECK(m.nbuckets >= m.count);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "event-%d", i);
        if (strmap_get(&m, key, (size_t)n) != &values[i])
            missing++;
    }
    CHECK_INT(missing, 0);
    for (int i = 0; i < 20000; i += 2) {
        int n = snprintf(key, sizeof(key), "event-%d", i);
        strmap_del(&m, key, (size_t)n);
    }
    CHECK_INT(m.count, 10000);
    for (int i = 0; i < 20000; i++) {
        int n = snprintf(key, sizeof(key), "event-%d", i);
        void *v = strmap_get(&m, key, (size_t)n);
        if (v != (i % 2 ? &values[i] : NULL))
            missing++;
    }
    CHECK_INT(missing, 0);
    strmap_free(&m);
}

TEST_MAIN(TEST(empty_map_finds_nothing), TEST(put_get_del), TEST(grows_and_keeps_every_key))
