/*
 * authtoken: verifying a client's JSON Web Token (RFC 7519) and reading the
 * entitlements it carries.
 *
 * A worker checks the token a client presents when it connects, before it
 * serves it anything; the key comes from the settings (AUTH_ALGORITHM,
 * AUTH_KEY_FILE, AUTH_LEEWAY, AUTH_AUDIENCE, AUTH_ISSUER).  Exactly one
 * algorithm is accepted, the configured one, compared with the token's
 * header before any signature is looked at: "none", and a token signed
 * with HS256 using the RS256 public key as its secret (algorithm confusion),
 * fail as "wrong algorithm" whatever libjwt would make of them.  The
 * signature itself is libjwt's (jwt_decode); the header and the claims are
 * read here, from the same bytes, with cJSON.
 *
 * Strict about form: three base64url parts, canonical and without
 * padding; header and claims each one JSON object naming no member twice
 * (two "alg" members could be read one way here and another by libjwt),
 * every string UTF-8; no "crit" header (no extension is understood); typ
 * absent or "JWT".
 *
 * Claims:  exp (required), nbf, iat: NumericDate, checked with leeway;
 *          aud: a string or an array of strings, checked if configured;
 *          iss: a string, checked if configured;
 *          sub: a string of at most 255 bytes;
 *          sports, books, markets: arrays of at most AUTHTOKEN_MAX_VALUES
 *              non-empty strings of at most AUTHTOKEN_MAX_VALUE_LEN bytes
 *              (absent: unrestricted);
 *          opportunities: boolean;  fields: "full" or "basic";
 *          max_connections: an integer >= 1.
 *          Other claims are ignored.
 *
 * Worker-side.  authtoken_verify is pure (no I/O, no logging, nothing
 * kept), reentrant, and never puts the token in its reason; the reasons are
 * safe to send to the client.  authtoken_load_key reads a file.
 */
#ifndef WSB_AUTHTOKEN_H
#define WSB_AUTHTOKEN_H

#include <jwt.h>
#include <stddef.h>
#include <stdint.h>

/* Key files larger than this are refused (a PEM key is a few KB). */
#define AUTHTOKEN_MAX_KEY       65536
/* An HS256 secret shorter than the hash is refused (RFC 7518 3.2). */
#define AUTHTOKEN_MIN_SECRET    32
/* Tokens longer than this are "malformed" without being decoded.  As much
 * as a request header commonly may hold; it also bounds the entitlements
 * (3 lists of 64 values of 256 bytes would not fit: no need to). */
#define AUTHTOKEN_MAX_TOKEN     8192
#define AUTHTOKEN_MAX_VALUES    64
#define AUTHTOKEN_MAX_VALUE_LEN 256

struct authtoken_conf {
    jwt_alg_t alg;      /* the one accepted: HS256, RS256 or ES256 */
    unsigned char *key; /* HS256 secret bytes, or the PEM public key */
    size_t key_len;     /* owned (authtoken_load_key, authtoken_conf_free) */
    uint32_t leeway_s;  /* AUTH_LEEWAY, for exp, nbf and iat */
    char audience[256]; /* "" = not checked */
    char issuer[256];   /* "" = not checked */
};

/*
 * Read the key for c->alg (set it first) from the file at path into c->key,
 * replacing any key c held.  HS256: the secret is the file's bytes, less
 * one trailing "\n" or "\r\n" (as `echo` writes it); at least
 * AUTHTOKEN_MIN_SECRET bytes, and not a PEM block (a public key used as an
 * HMAC secret lets anyone who has it sign tokens).  RS256, ES256: one PEM
 * "PUBLIC KEY" block, alone, holding an RSA key (RS256) or an EC P-256 key
 * (ES256); a private key is refused (the worker never needs it).  Returns 0, or -1 with a reason in
 * err (path and strerror for a failed read) and c's key unchanged.  Blocks on the file read.
 */
int authtoken_load_key(struct authtoken_conf *c, const char *path, char *err, size_t errlen);

/* Wipe and free c's key; c can be loaded again. */
void authtoken_conf_free(struct authtoken_conf *c);

struct authtoken_claims {
    char sub[256];         /* "" if absent */
    int64_t exp, nbf, iat; /* nbf and iat: INT64_MIN if absent */
    /* Entitlements.  A list is NULL with n == -1 when its claim is absent
     * (unrestricted); otherwise n values (0 allowed: nothing), the array
     * NULL-terminated, all malloc'd. */
    int nsports, nbooks, nmarkets;
    char **sports, **books, **markets;
    int opportunities;       /* -1 absent, else 0 or 1 */
    int fields_basic;        /* 0 full (also when absent), 1 basic */
    int64_t max_connections; /* -1 absent, else >= 1 */
};

/*
 * Verify token[0..len) against c at time now (unix seconds).  Returns 0
 * with *out filled (free with authtoken_claims_free), or -1 with a short
 * reason in why and *out empty (freeing it is harmless): "malformed",
 * "wrong algorithm", "bad signature", "missing exp", "expired", "not yet
 * valid", "wrong audience", "wrong issuer", "claim <name> malformed", "out
 * of memory".  Never blocks.
 */
int authtoken_verify(const struct authtoken_conf *c, const char *token, size_t len, int64_t now,
                     struct authtoken_claims *out, char *why, size_t whylen);

void authtoken_claims_free(struct authtoken_claims *c);

#endif
