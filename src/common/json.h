/*
 * json: parse exactly one JSON value with cJSON.
 *
 * cJSON_ParseWithLength stops after the first value and ignores what
 * follows, so '{"a":1}x' or '{"a":1}{"b":2}' would pass for an object.  Both
 * the stream decoder and the client message parser need "the whole text is
 * one value".  Any role; no I/O.
 */
#ifndef WSB_JSON_H
#define WSB_JSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* The value in text[0..len), or NULL if it is not exactly one JSON value
 * (surrounding whitespace allowed), or if a string in it holds U+0000
 * ("\u0000"): cJSON keeps strings NUL-terminated, so it would silently cut
 * such a string short.  Free with cJSON_Delete. */
cJSON *json_parse_exact(const char *text, size_t len);

#endif
