/*
 * test_cmsg: parsing what clients send.  The error codes are part of the
 * wire protocol, so each kind of bad message is checked for its exact code,
 * and every refusal must carry a reason a client can read.
 */
#include "worker/cmsg.h"

#include "test.h"

/* Parse a NUL-terminated message; on failure out is left with no tree. */
static int
parse(const char *text, struct cmsg *out, const char **code, char *msg, size_t msglen)
{
    *code = NULL;
    msg[0] = '\0';
    return cmsg_parse(text, strlen(text), out, code, msg, msglen);
}

static void
check_valid_at(int line, const char *text, enum cmsg_type type, int has_payload)
{
    struct cmsg m;
    const char *code;
    char msg[256];
    int rc = parse(text, &m, &code, msg, sizeof(msg));

    if (rc != 0) {
        printf("#   line %d: %s refused: %s %s\n", line, text, code ? code : "(null)", msg);
        test_failed_checks++;
        return;
    }
    CHECK_INT(m.type, type);
    CHECK(m.root != NULL);
    CHECK_INT(m.payload != NULL, has_payload);
    if (m.payload != NULL)
        CHECK(cJSON_IsObject(m.payload));
    cmsg_free(&m);
    CHECK(m.root == NULL);
    CHECK(m.payload == NULL);
}

static void
check_refused_at(int line, const char *text, size_t len, const char *want_code)
{
    struct cmsg m;
    const char *code = NULL;
    char msg[256];
    int rc;

    msg[0] = '\0';
    rc = cmsg_parse(text, len, &m, &code, msg, sizeof(msg));
    if (rc != -1 || code == NULL || strcmp(code, want_code) != 0 || msg[0] == '\0') {
        printf("#   line %d: %.*s: rc %d, code %s, message \"%s\"; want -1, %s, a message\n", line,
               (int)len, text, rc, code ? code : "(null)", msg, want_code);
        test_failed_checks++;
    }
    /* Nothing is left to free after a refusal, and freeing anyway is safe. */
    if (rc == -1)
        CHECK(m.root == NULL);
    cmsg_free(&m);
}

#define CHECK_VALID(text, type, has_payload) check_valid_at(__LINE__, text, type, has_payload)
#define CHECK_REFUSED(text, code)            check_refused_at(__LINE__, text, strlen(text), code)

static void
test_valid_types(void)
{
    CHECK_VALID("{\"type\":\"subscribe\",\"payload\":{\"sports\":[\"basketball_nba\"]}}",
                CMSG_SUBSCRIBE, 1);
    CHECK_VALID("{\"type\":\"unsubscribe\",\"payload\":{}}", CMSG_UNSUBSCRIBE, 1);
    CHECK_VALID("{\"type\":\"heartbeat\",\"payload\":{}}", CMSG_HEARTBEAT, 1);
    /* Key order and whitespace do not matter; unknown keys are ignored. */
    CHECK_VALID(" {\n\"payload\" : { } ,\t\"id\": 7, \"type\" : \"heartbeat\" }\n", CMSG_HEARTBEAT,
                1);
}

static void
test_payload_missing_or_null(void)
{
    CHECK_VALID("{\"type\":\"subscribe\"}", CMSG_SUBSCRIBE, 0);
    CHECK_VALID("{\"type\":\"unsubscribe\",\"payload\":null}", CMSG_UNSUBSCRIBE, 0);
    CHECK_VALID("{\"type\":\"heartbeat\",\"payload\":null}", CMSG_HEARTBEAT, 0);
}

static void
test_payload_points_into_root(void)
{
    struct cmsg m;
    const char *code;
    char msg[256];

    CHECK_INT(parse("{\"type\":\"subscribe\",\"payload\":{\"books\":[\"dk\",\"fd\"]}}", &m, &code,
                    msg, sizeof(msg)),
              0);
    CHECK(m.payload == cJSON_GetObjectItemCaseSensitive(m.root, "payload"));
    const cJSON *books = cJSON_GetObjectItemCaseSensitive(m.payload, "books");
    CHECK_INT(cJSON_GetArraySize(books), 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetArrayItem(books, 1)), "fd");
    cmsg_free(&m);
}

static void
test_uses_length_not_nul(void)
{
    /* A WebSocket message is a byte range, not a C string: only len bytes
     * are the message. */
    static const char text[] = "{\"type\":\"heartbeat\"}{\"type\":\"subscribe\"}";
    struct cmsg m;
    const char *code;
    char msg[256];

    CHECK_INT(cmsg_parse(text, 20, &m, &code, msg, sizeof(msg)), 0);
    CHECK_INT(m.type, CMSG_HEARTBEAT);
    cmsg_free(&m);

    /* Cut inside the object. */
    check_refused_at(__LINE__, text, 19, CMSG_ERR_INVALID_JSON);
    check_refused_at(__LINE__, text, 0, CMSG_ERR_INVALID_JSON);
}

static void
test_invalid_json(void)
{
    CHECK_REFUSED("", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("   ", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("{", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("{\"type\":\"heartbeat\",}", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("{'type':'heartbeat'}", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("subscribe", CMSG_ERR_INVALID_JSON);
}

static void
test_trailing_garbage_is_invalid_json(void)
{
    /* One JSON value and then more text is not JSON (RFC 8259 section 2):
     * a client that sends it has a bug it should hear about, not a
     * heartbeat silently taken from the first half. */
    CHECK_VALID("{\"type\":\"heartbeat\"} \r\n\t", CMSG_HEARTBEAT, 0);
    CHECK_REFUSED("{\"type\":\"heartbeat\"} x", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("{\"type\":\"heartbeat\"}}", CMSG_ERR_INVALID_JSON);
    CHECK_REFUSED("{\"type\":\"heartbeat\"}{\"type\":\"subscribe\"}", CMSG_ERR_INVALID_JSON);
    /* A NUL inside the message, then more bytes: len says they belong to it. */
    check_refused_at(__LINE__, "{\"type\":\"heartbeat\"}\0{}", 23, CMSG_ERR_INVALID_JSON);
}

static void
test_not_an_object(void)
{
    CHECK_REFUSED("[]", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("[{\"type\":\"heartbeat\"}]", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("5", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("\"x\"", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("null", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("true", CMSG_ERR_INVALID_MESSAGE);
}

static void
test_bad_type(void)
{
    CHECK_REFUSED("{}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"payload\":{}}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":null}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":5}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":[\"subscribe\"]}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":{\"name\":\"subscribe\"}}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":true}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"\"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"publish\"}", CMSG_ERR_INVALID_MESSAGE);
    /* Names are exact: no case folding, no prefixes, no padding. */
    CHECK_REFUSED("{\"type\":\"Subscribe\"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"subscribe \"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"sub\"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"heartbeats\"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"Type\":\"heartbeat\"}", CMSG_ERR_INVALID_MESSAGE);
}

static void
test_bad_payload(void)
{
    CHECK_REFUSED("{\"type\":\"subscribe\",\"payload\":5}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"subscribe\",\"payload\":[]}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"subscribe\",\"payload\":\"x\"}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"heartbeat\",\"payload\":false}", CMSG_ERR_INVALID_MESSAGE);
    CHECK_REFUSED("{\"type\":\"unsubscribe\",\"payload\":[{}]}", CMSG_ERR_INVALID_MESSAGE);
}

static void
test_unknown_type_message(void)
{
    /* The reason names the unknown type (bounded), so a client sees its
     * typo; a very long type must not overflow or be cut mid-buffer. */
    char text[2200], msg[512];
    struct cmsg m;
    const char *code;

    CHECK_INT(parse("{\"type\":\"subscrbe\"}", &m, &code, msg, sizeof(msg)), -1);
    CHECK_STR(code, CMSG_ERR_INVALID_MESSAGE);
    CHECK(strstr(msg, "subscrbe") != NULL);

    memcpy(text, "{\"type\":\"", 9);
    memset(text + 9, 'x', 2000);
    memcpy(text + 2009, "\"}", 3);
    CHECK_INT(parse(text, &m, &code, msg, sizeof(msg)), -1);
    CHECK_STR(code, CMSG_ERR_INVALID_MESSAGE);
    CHECK(msg[0] != '\0');
    CHECK(strlen(msg) < 200);
}

static void
test_small_message_buffer(void)
{
    struct cmsg m;
    const char *code;
    char msg[6];

    memset(msg, 'x', sizeof(msg));
    CHECK_INT(cmsg_parse("[]", 2, &m, &code, msg, sizeof(msg)), -1);
    CHECK_STR(code, CMSG_ERR_INVALID_MESSAGE);
    CHECK(memchr(msg, '\0', sizeof(msg)) != NULL);
    CHECK(msg[0] != '\0');
}

TEST_MAIN(TEST(test_valid_types), TEST(test_payload_missing_or_null),
          TEST(test_payload_points_into_root), TEST(test_uses_length_not_nul),
          TEST(test_invalid_json), TEST(test_trailing_garbage_is_invalid_json),
          TEST(test_not_an_object), TEST(test_bad_type), TEST(test_bad_payload),
          TEST(test_unknown_type_message), TEST(test_small_message_buffer))
