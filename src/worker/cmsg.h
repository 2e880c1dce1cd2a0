/*
 * cmsg: parsing what a client sends.
 *
 * A client message is a JSON object {"type": <string>, "payload": <object>}.
 * The payload may be missing or null (it then counts as {}).  The error codes
 * are part of the wire protocol (README "Errors"):
 *   invalid_json     not JSON at all
 *   invalid_message  JSON, but not an object, type missing / not a string /
 *                    unknown, or payload present and not an object
 * Filter errors (invalid_filter) are sub_filter_parse's.
 *
 * Worker-side, I/O-free.
 */
#ifndef WSB_CMSG_H
#define WSB_CMSG_H

#include <cjson/cJSON.h>
#include <stddef.h>

enum cmsg_type { CMSG_SUBSCRIBE = 0, CMSG_UNSUBSCRIBE, CMSG_HEARTBEAT, CMSG_AUTH, CMSG_REFRESH };

#define CMSG_ERR_INVALID_JSON    "invalid_json"
#define CMSG_ERR_INVALID_MESSAGE "invalid_message"
#define CMSG_ERR_INVALID_FILTER  "invalid_filter"

struct cmsg {
    enum cmsg_type type;
    cJSON *root;
    const cJSON *payload; /* an object inside root, or NULL for none */
};

/* Parse text[0..len).  Returns 0 with out filled (free with cmsg_free), or -1
 * with *code set to one of the codes above and a reason in msg. */
int cmsg_parse(const char *text, size_t len, struct cmsg *out, const char **code, char *msg,
               size_t msglen);

void cmsg_free(struct cmsg *m);

#endif
