#include "json.h"

cJSON *
json_parse_exact(const char *text, size_t len)
{
    const char *end = NULL, *limit = text + len;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);

    if (root == NULL || end == NULL)
        goto fail;
    for (; end < limit; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r')
            goto fail;
    }
    return root;
fail:
    cJSON_Delete(root);
    return NULL;
}
