/*
 * test_admit: ALLOWED_ORIGINS matching.  A browser's Origin is
 * "scheme://host[:port]"; the list is what an operator typed, with spaces
 * and any case.  A match that is too loose lets any site's page read the
 * feed; one too strict locks out the operator's own board.
 */
#include "worker/admit.h"

#include "test.h"

static void
empty_list_allows_everything(void)
{
    CHECK_INT(admit_origin_listed("", "https://a.example"), 1);
    CHECK_INT(admit_origin_listed("", NULL), 1);
}

static void
listed_origins_match_exactly_without_case(void)
{
    const char *list = "https://odds.example, http://localhost:3000 ,HTTPS://Board.Example";

    CHECK_INT(admit_origin_listed(list, "https://odds.example"), 1);
    CHECK_INT(admit_origin_listed(list, "http://localhost:3000"), 1);
    CHECK_INT(admit_origin_listed(list, "https://board.example"), 1);
    CHECK_INT(admit_origin_listed(list, "HTTPS://ODDS.EXAMPLE"), 1);
}

static void
near_misses_are_refused(void)
{
    const char *list = "https://odds.example,http://localhost:3000";

    CHECK_INT(admit_origin_listed(list, NULL), 0);
    CHECK_INT(admit_origin_listed(list, ""), 0);
    CHECK_INT(admit_origin_listed(list, "http://odds.example"), 0);
    CHECK_INT(admit_origin_listed(list, "https://odds.example.evil.com"), 0);
    CHECK_INT(admit_origin_listed(list, "https://odds.exampl"), 0);
    CHECK_INT(admit_origin_listed(list, "http://localhost:30000"), 0);
    CHECK_INT(admit_origin_listed(list, "http://localhost"), 0);
    CHECK_INT(admit_origin_listed(list, "https://odds.example,http://localhost:3000"), 0);
}

static void
empty_items_match_nothing(void)
{
    CHECK_INT(admit_origin_listed(",, ,", ""), 0);
    CHECK_INT(admit_origin_listed(",, ,", "x"), 0);
    CHECK_INT(admit_origin_listed(",https://a.example,", "https://a.example"), 1);
    CHECK_INT(admit_origin_listed(",https://a.example,", "https://b.example"), 0);
}

TEST_MAIN(TEST(empty_list_allows_everything), TEST(listed_origins_match_exactly_without_case),
          TEST(near_misses_are_refused), TEST(empty_items_match_nothing))
