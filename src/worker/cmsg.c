#include "cmsg.h"
#include "../common/json.h"
#include "../common/utf8.h"

#include <stdio.h>
#include <string.h>

/* Keep in sync with enum cmsg_type. */
static const char *const cmsg_type_names[] = {"subscribe", "unsubscribe", "heartbeat", "auth",
                                              "refresh"};

int
cmsg_parse(const char *text, size_t len, struct cmsg *out, const char **code, char *msg,
           size_t msglen)
{
    const cJSON *type, *payload;
    size_t i;

    memset(out, 0, sizeof(*out));
    out->root = json_parse_exact(text, len);
    if (out->root == NULL) {
        *code = CMSG_ERR_INVALID_JSON;
        snprintf(msg, msglen, "message is not valid JSON");
        return -1;
    }
    if (!cJSON_IsObject(out->root)) {
        *code = CMSG_ERR_INVALID_MESSAGE;
        snprintf(msg, msglen, "message must be a JSON object");
        goto fail;
    }
    type = cJSON_GetObjectItemCaseSensitive(out->root, "type");
    if (!cJSON_IsString(type)) {
        *code = CMSG_ERR_INVALID_MESSAGE;
        snprintf(msg, msglen, "message needs a string \"type\"");
        goto fail;
    }
    for (i = 0; i < sizeof(cmsg_type_names) / sizeof(cmsg_type_names[0]); i++) {
        if (strcmp(type->valuestring, cmsg_type_names[i]) == 0)
            break;
    }
    if (i == sizeof(cmsg_type_names) / sizeof(cmsg_type_names[0])) {
        *code = CMSG_ERR_INVALID_MESSAGE;
        const char *t = type->valuestring;
        size_t tlen = strlen(t);
        /* Quoted back to the client: never cut a character in two, never
         * echo what is not UTF-8 (cJSON decodes \ud800 escapes as is). */
        if (!utf8_valid(t, tlen))
            t = "?", tlen = 1;
        snprintf(msg, msglen,
                 "unknown type \"%.*s\" (subscribe, unsubscribe, heartbeat, auth, refresh)",
                 (int)utf8_prefix(t, tlen, 64), t);
        goto fail;
    }
    out->type = (enum cmsg_type)i;
    payload = cJSON_GetObjectItemCaseSensitive(out->root, "payload");
    if (payload != NULL && !cJSON_IsNull(payload) && !cJSON_IsObject(payload)) {
        *code = CMSG_ERR_INVALID_MESSAGE;
        snprintf(msg, msglen, "\"payload\" must be an object");
        goto fail;
    }
    out->payload = cJSON_IsObject(payload) ? payload : NULL;
    return 0;
fail:
    cJSON_Delete(out->root);
    out->root = NULL;
    return -1;
}

void
cmsg_free(struct cmsg *m)
{
    cJSON_Delete(m->root);
    m->root = NULL;
    m->payload = NULL;
}
