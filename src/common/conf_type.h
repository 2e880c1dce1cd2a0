/*
 * conf_type: how a setting of each enum conf_type is parsed, printed and
 * compared, and the parse and format functions of the settings that need
 * their own (rows of conf_keys[] in conf.c name them).  conf.c is the only
 * caller; everything here works on one row and one struct conf, so the
 * table alone decides which settings exist.
 *
 * I/O-free and never logs: errors go into the caller's buffer as
 * "KEY: why", KEY being the row's name.  Safe in any process.
 */
#ifndef WSB_CONF_TYPE_H
#define WSB_CONF_TYPE_H

#include "conf.h"

#include <stddef.h>

/* 1 if row k has what its type needs (a field of the right size, bounds in
 * order, the parse and format functions the type cannot do without). */
int conf_type_row_ok(const struct conf_key *k);

/* Set setting k of c from its text form: the row's parse, else the type's.
 * 0, or -1 with "KEY: why" in err; k's fields may then be half-set. */
int conf_type_parse(struct conf *c, const struct conf_key *k, const char *value, char *err,
                    size_t errlen);

/* The text form of setting k of c into buf, truncated to size (at least 1):
 * the row's format, else the type's.  A SECRET shows as "(set)" or "". 0,
 * or -1 if formatting failed. */
int conf_type_format(const struct conf *c, const struct conf_key *k, char *buf, size_t size);

/* 1 if setting k has the same value in a and b; a SECRET is compared by its
 * real value, not by the mask conf_type_format shows. */
int conf_type_same(const struct conf *a, const struct conf *b, const struct conf_key *k);

/*
 * Row functions (struct conf_key's parse and format), in table order.  Each
 * reads or writes the field the row names, plus the fields that follow from
 * it where noted.
 */
/* SERVER_ADDR: ":PORT" or "HOST:PORT" ("[V6]:PORT"); fills server_host and
 * server_port. */
int conf_type_parse_metrics_addr(struct conf *c, const struct conf_key *k, const char *value,
                                 char *err, size_t errlen);
int conf_type_parse_server_addr(struct conf *c, const struct conf_key *k, const char *value,
                                char *err, size_t errlen);
/* REDIS_URL: host[:port], redis://[[user]:password@]host[:port][/db], or a
 * socket path (unix://, '/' or "./"); resets and fills every redis_* field.
 * The password runs to the last '@'.  Shown (format, and in parse errors)
 * with the password as ***, like a SECRET: the text reads back to the same
 * host, port and database, not to the same password. */
int conf_type_parse_redis_url(struct conf *c, const struct conf_key *k, const char *value,
                              char *err, size_t errlen);
int conf_type_format_redis_url(const struct conf *c, const struct conf_key *k, char *buf,
                               size_t size);
/* SPORTS: comma list into sports[] and nsports. */
int conf_type_parse_sports(struct conf *c, const struct conf_key *k, const char *value, char *err,
                           size_t errlen);
int conf_type_format_sports(const struct conf *c, const struct conf_key *k, char *buf, size_t size);
/* A stream name (letters, digits, _ - . :), or empty. */
int conf_type_parse_stream(struct conf *c, const struct conf_key *k, const char *value, char *err,
                           size_t errlen);
/* A name as above, not empty. */
int conf_type_parse_name(struct conf *c, const struct conf_key *k, const char *value, char *err,
                         size_t errlen);
/* CONSUMER_ID: a name, or "auto" (stored as "" until conf_resolve_auto
 * derives it; shown as "auto" until then). */
int conf_type_parse_consumer_id(struct conf *c, const struct conf_key *k, const char *value,
                                char *err, size_t errlen);
int conf_type_format_consumer_id(const struct conf *c, const struct conf_key *k, char *buf,
                                 size_t size);
/* Text without control characters. */
int conf_type_parse_text(struct conf *c, const struct conf_key *k, const char *value, char *err,
                         size_t errlen);
/* An int from min to max, or empty / "auto" for the number of CPUs. */
int conf_type_parse_workers(struct conf *c, const struct conf_key *k, const char *value, char *err,
                            size_t errlen);
/* A uint32_t from min to max, or "auto" (stored as 0, shown as "auto"
 * until conf_load derives it from another setting). */
int conf_type_parse_u32_auto(struct conf *c, const struct conf_key *k, const char *value, char *err,
                             size_t errlen);
int conf_type_format_u32_auto(const struct conf *c, const struct conf_key *k, char *buf,
                              size_t size);
/* A uint32_t from min to max that is a power of two. */
int conf_type_parse_power_of_two(struct conf *c, const struct conf_key *k, const char *value,
                                 char *err, size_t errlen);
/* A level name of log.h (log_level_parse, log_level_name) as an int. */
/* CONF_TYPE_CHOICE: one of the row's names, stored as its index. */
int conf_type_parse_choice(struct conf *c, const struct conf_key *k, const char *value, char *err,
                           size_t errlen);
int conf_type_format_choice(const struct conf *c, const struct conf_key *k, char *buf, size_t size);

int conf_type_parse_log_level(struct conf *c, const struct conf_key *k, const char *value,
                              char *err, size_t errlen);
int conf_type_format_log_level(const struct conf *c, const struct conf_key *k, char *buf,
                               size_t size);

#endif
