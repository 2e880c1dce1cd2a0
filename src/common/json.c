#include "json.h"

/* 1 if text holds the escape \u0000 (any hex case).  An escaped backslash
 * ("\\u0000" is the text \u0000, not a NUL) is skipped as a pair. */
static int
json_has_nul_escape(const char *text, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (text[i] != '\\')
            continue;
        if (text[i + 1] == 'u' && i + 5 < len && text[i + 2] == '0' && text[i + 3] == '0' &&
            text[i + 4] == '0' && text[i + 5] == '0')
            return 1;
        i++; /* skip the escaped character, backslash included */
    }
    return 0;
}

cJSON *
json_parse_exact(const char *text, size_t len)
{
    if (json_has_nul_escape(text, len))
        return NULL;
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
