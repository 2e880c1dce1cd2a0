/*
 * fuzz_auth_token: the input as a token a client presents (the `token` query
 * parameter, a Bearer header, the auth and refresh messages all end in
 * authtoken_verify), against a fixed HS256 key, at a fixed time; and the
 * same bytes as an auth message's text through cmsg_parse.
 *
 * Properties (beyond no crash, no leak, no overflow):
 *  - a refusal always says why, in bounds, and never with the token in it;
 *  - an accepted token has exp after now minus the leeway, a sub in bounds
 *    and well-formed entitlement lists (-1 or 0..AUTHTOKEN_MAX_VALUES
 *    values, each non-empty and at most AUTHTOKEN_MAX_VALUE_LEN bytes).
 *    Forging the signature is out of reach of the fuzzer, so this mostly
 *    proves the refusals; the unit tests make valid tokens.
 */
#include "worker/authtoken.h"
#include "worker/cmsg.h"

#include "fuzz.h"

#include <string.h>

#define FUZZ_NOW 1764750000

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char secret[] = "fuzzing-secret-fuzzing-secret-fuzzing-secret!";
    struct authtoken_conf c;
    struct authtoken_claims claims;
    struct cmsg msg;
    const char *code;
    char why[128], token[AUTHTOKEN_MAX_TOKEN + 64];
    size_t n = size < sizeof(token) - 1 ? size : sizeof(token) - 1;

    memset(&c, 0, sizeof(c));
    c.alg = JWT_ALG_HS256;
    c.key = secret;
    c.key_len = sizeof(secret) - 1;
    c.leeway_s = 30;
    memcpy(token, data, n);
    token[n] = '\0';
    why[0] = '\0';
    if (authtoken_verify(&c, token, n, FUZZ_NOW, &claims, why, sizeof(why)) != 0) {
        FUZZ_CHECK(why[0] != '\0' && memchr(why, '\0', sizeof(why)) != NULL);
        FUZZ_CHECK(strlen(token) < 16 || strstr(why, token) == NULL);
    } else {
        FUZZ_CHECK(claims.exp > FUZZ_NOW - 30);
        FUZZ_CHECK(memchr(claims.sub, '\0', sizeof(claims.sub)) != NULL);
        FUZZ_CHECK(claims.nsports <= AUTHTOKEN_MAX_VALUES && claims.nbooks <= AUTHTOKEN_MAX_VALUES &&
                   claims.nmarkets <= AUTHTOKEN_MAX_VALUES);
        authtoken_claims_free(&claims);
    }
    /* The same bytes as what a client sends. */
    if (cmsg_parse((const char *)data, size, &msg, &code, why, sizeof(why)) == 0)
        cmsg_free(&msg);
    else
        FUZZ_CHECK(code != NULL && why[0] != '\0');
    return 0;
}
