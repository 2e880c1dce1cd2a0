/*
 * The seed's entry fields, in the seed's order (README "Streams in"), for
 * the C tests and fuzzers.  Written out here as the tests' own statement of
 * the contract, not taken from src/common/decode.c, so that a change there
 * shows up as a failing test.
 */
#ifndef WSB_TEST_SEED_FIELDS_H
#define WSB_TEST_SEED_FIELDS_H

/* An initializer list: {SEED_FIELD_NAMES} or {SEED_FIELD_NAMES, "extra"}. */
#define SEED_FIELD_NAMES                                                                           \
    "event_id", "sport_key", "market_key", "book_key", "outcome_name", "price", "point",           \
        "decimal_odds", "implied_probability", "novig_probability", "fair_price", "edge",          \
        "normalized_at"

/* The seed fields that are numbers. */
#define SEED_NUMERIC_FIELD_NAMES                                                                   \
    "price", "point", "decimal_odds", "implied_probability", "novig_probability", "fair_price",    \
        "edge"

#endif
