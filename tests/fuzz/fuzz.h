/*
 * fuzz.h: what the libFuzzer harnesses share.  A broken property is a crash
 * (abort), so libFuzzer keeps the input that broke it; the line printed
 * before names the property.  Every harness checks the text a client would
 * receive the same way, with check_client_json.
 */
#ifndef WSB_FUZZ_H
#define WSB_FUZZ_H

#include "common/utf8.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* libFuzzer's entry point; declared here for -Wmissing-prototypes. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fixed clock: the timestamp is not what is under test. */
#define FUZZ_NOW_MS 1762518896123ULL

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/*
 * text[0..len) is what a worker would send in one WebSocket text frame: it
 * must be exactly one JSON object that cJSON accepts, without a NUL before
 * its end, and (when want_utf8) valid UTF-8, since a browser closes the
 * connection on a text frame that is not.  Returns the parsed object; the
 * caller frees it with cJSON_Delete.
 */
static inline cJSON *
check_client_json(const char *text, size_t len, int want_utf8)
{
    const char *end = NULL;
    cJSON *root;

    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(strlen(text) == len);
    FUZZ_CHECK(!want_utf8 || utf8_valid(text, len));
    root = cJSON_ParseWithOpts(text, &end, 1);
    if (root == NULL)
        fprintf(stderr, "note: not JSON: %.*s\n", len > 300 ? 300 : (int)len, text);
    FUZZ_CHECK(root != NULL);
    FUZZ_CHECK(cJSON_IsObject(root));
    return root;
}

/*
 * A server message: {"type": type, "payload": {...}, "timestamp": "...Z"}.
 * Returns the payload, owned by root.
 */
static inline const cJSON *
check_server_message(const cJSON *root, const char *type)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "type");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "payload");
    const cJSON *ts = cJSON_GetObjectItemCaseSensitive(root, "timestamp");

    FUZZ_CHECK(cJSON_IsString(t) && strcmp(t->valuestring, type) == 0);
    FUZZ_CHECK(cJSON_IsObject(p));
    FUZZ_CHECK(cJSON_IsString(ts) && strlen(ts->valuestring) == 24);
    return p;
}

#endif
