#include "authtoken.h"
#include "../common/json.h"
#include "../common/utf8.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* NumericDates beyond 2^53 s (285 million years) are refused: up to there
 * a double holds every integer exactly. */
#define AT_MAX_DATE 9007199254740992.0

static int
at_fail(char *why, size_t whylen, const char *reason)
{
    if (whylen > 0)
        snprintf(why, whylen, "%s", reason);
    return -1;
}

static int
at_alg_supported(jwt_alg_t alg)
{
    return alg == JWT_ALG_HS256 || alg == JWT_ALG_RS256 || alg == JWT_ALG_ES256;
}

/* ---- base64 ------------------------------------------------------------------ */

static int
at_b64_value(unsigned char ch, int url)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == (url ? '-' : '+'))
        return 62;
    if (ch == (url ? '_' : '/'))
        return 63;
    return -1;
}

/*
 * Decode s[0..n), base64 without padding (url: the base64url alphabet),
 * into a malloc'd buffer of *outlen bytes plus a NUL.  Only the canonical
 * text of some bytes is accepted: a length of 4k+1 and set bits after the
 * last whole byte are refused, so one token has one text (libjwt's decoder
 * would skip what it does not know).  NULL if s is not such text, or if out
 * of memory (*nomem then set).
 */
static unsigned char *
at_b64_decode(const char *s, size_t n, int url, size_t *outlen, int *nomem)
{
    unsigned char *out;
    uint32_t acc = 0;
    size_t o = 0;
    int bits = 0;

    if (n % 4 == 1)
        return NULL;
    out = malloc(n / 4 * 3 + 3);
    if (out == NULL) {
        *nomem = 1;
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        int v = at_b64_value((unsigned char)s[i], url);
        if (v < 0)
            goto fail;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    if (acc & ((1u << bits) - 1))
        goto fail;
    out[o] = '\0';
    *outlen = o;
    return out;
fail:
    free(out);
    return NULL;
}

/* ---- keys ---------------------------------------------------------------------- */

#define AT_PEM_BEGIN "-----BEGIN PUBLIC KEY-----"
#define AT_PEM_END   "-----END PUBLIC KEY-----"

/* One DER element at p[0..n): its tag, and where its contents start and
 * end.  0, or -1 if it does not fit (lengths up to 0xffff: a key is far
 * smaller). */
static int
at_der(const unsigned char *p, size_t n, unsigned *tag, size_t *start, size_t *end)
{
    size_t len, off = 2;

    if (n < 2)
        return -1;
    *tag = p[0];
    len = p[1];
    if (len == 0x81 || len == 0x82) {
        size_t nb = len & 0x7f;
        if (n < 2 + nb)
            return -1;
        len = nb == 1 ? p[2] : (size_t)p[2] << 8 | p[3];
        off += nb;
    } else if (len > 0x7f) {
        return -1;
    }
    if (len > n - off)
        return -1;
    *start = off;
    *end = off + len;
    return 0;
}

/*
 * The key type of a SubjectPublicKeyInfo (RFC 5280 4.1):
 *   SEQUENCE { SEQUENCE { OID algorithm, parameters }, BIT STRING }
 * Checked at load so that a key of the wrong kind (an EC key for RS256, a
 * P-384 key for ES256) is an error in the log once, not "bad signature"
 * for every client.
 */
static int
at_spki_matches(const unsigned char *der, size_t n, jwt_alg_t alg)
{
    /* rsaEncryption 1.2.840.113549.1.1.1; id-ecPublicKey 1.2.840.10045.2.1
     * with namedCurve prime256v1 1.2.840.10045.3.1.7 (RFC 7518 3.4) */
    static const unsigned char rsa[] = {0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01};
    static const unsigned char ec[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01};
    static const unsigned char p256[] = {0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    size_t s, e, as, ae, os, oe, ps, pe;
    unsigned tag;

    if (at_der(der, n, &tag, &s, &e) != 0 || tag != 0x30 || e != n)
        return 0;
    if (at_der(der + s, e - s, &tag, &as, &ae) != 0 || tag != 0x30)
        return 0;
    as += s;
    ae += s;
    if (at_der(der + as, ae - as, &tag, &os, &oe) != 0 || tag != 0x06)
        return 0;
    os += as;
    oe += as;
    if (alg == JWT_ALG_RS256)
        return oe - os == sizeof(rsa) && memcmp(der + os, rsa, sizeof(rsa)) == 0;
    if (oe - os != sizeof(ec) || memcmp(der + os, ec, sizeof(ec)) != 0)
        return 0;
    if (at_der(der + oe, ae - oe, &tag, &ps, &pe) != 0 || tag != 0x06)
        return 0;
    return pe - ps == sizeof(p256) && memcmp(der + oe + ps, p256, sizeof(p256)) == 0;
}

/* A public key for alg: one PEM "PUBLIC KEY" block of the right type. */
static int
at_check_pem(const unsigned char *key, size_t len, jwt_alg_t alg, const char *path, char *err,
             size_t errlen)
{
    const char *text = (const char *)key, *begin, *body, *end;
    unsigned char *der;
    size_t n = 0, derlen = 0;
    int nomem = 0, ok;
    char *b64;

    if (memchr(key, '\0', len) != NULL || (begin = strstr(text, AT_PEM_BEGIN)) == NULL) {
        if (strstr(text, "PRIVATE KEY") != NULL)
            snprintf(err, errlen, "%s: a private key; the public key is wanted", path);
        else
            snprintf(err, errlen, "%s: no PEM \"" AT_PEM_BEGIN "\" block", path);
        return -1;
    }
    body = begin + strlen(AT_PEM_BEGIN);
    end = strstr(body, AT_PEM_END);
    /* One block, alone: with a certificate or a private key beside it,
     * which one the verifier reads is OpenSSL's choice, not ours. */
    if (end == NULL || strstr(text, "-----BEGIN") != begin || strstr(body, "-----BEGIN") != NULL ||
        strstr(text, "PRIVATE KEY") != NULL) {
        snprintf(err, errlen, "%s: not exactly one PEM public key block", path);
        return -1;
    }
    b64 = malloc((size_t)(end - body) + 1);
    if (b64 == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    for (const char *p = body; p < end; p++) {
        if (*p != '\r' && *p != '\n' && *p != ' ' && *p != '\t')
            b64[n++] = *p;
    }
    for (int pad = 0; pad < 2 && n > 0 && b64[n - 1] == '='; pad++)
        n--;
    der = at_b64_decode(b64, n, 0, &derlen, &nomem);
    free(b64);
    ok = der != NULL && at_spki_matches(der, derlen, alg);
    free(der);
    if (!ok) {
        snprintf(err, errlen, "%s: not an %s public key", path,
                 alg == JWT_ALG_RS256 ? "RSA" : "EC P-256");
        return -1;
    }
    return 0;
}

int
authtoken_load_key(struct authtoken_conf *c, const char *path, char *err, size_t errlen)
{
    unsigned char *buf, *key = NULL;
    size_t len;
    FILE *f;

    if (!at_alg_supported(c->alg)) {
        snprintf(err, errlen, "algorithm must be HS256, RS256 or ES256");
        return -1;
    }
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "open(%s) failed: %s", path, strerror(errno));
        return -1;
    }
    /* One byte more than the limit, to tell "at the limit" from "over",
     * and one for a NUL (strstr on a PEM). */
    buf = malloc(AUTHTOKEN_MAX_KEY + 2);
    if (buf == NULL) {
        fclose(f);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    len = fread(buf, 1, AUTHTOKEN_MAX_KEY + 1, f);
    if (ferror(f)) {
        snprintf(err, errlen, "read(%s) failed: %s", path, strerror(errno));
        goto done;
    }
    if (len > AUTHTOKEN_MAX_KEY) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, AUTHTOKEN_MAX_KEY);
        goto done;
    }
    if (c->alg == JWT_ALG_HS256 && len > 0 && buf[len - 1] == '\n') {
        len--;
        if (len > 0 && buf[len - 1] == '\r')
            len--;
    }
    buf[len] = '\0';
    if (len == 0) {
        snprintf(err, errlen, "%s: empty", path);
        goto done;
    }
    if (c->alg == JWT_ALG_HS256) {
        if (len < AUTHTOKEN_MIN_SECRET) {
            snprintf(err, errlen, "%s: an HS256 secret needs at least %d bytes", path,
                     AUTHTOKEN_MIN_SECRET);
            goto done;
        }
        if (memmem(buf, len, "-----BEGIN", 10) != NULL) {
            snprintf(err, errlen, "%s: a PEM block, not an HS256 secret", path);
            goto done;
        }
    } else if (at_check_pem(buf, len, c->alg, path, err, errlen) != 0) {
        goto done;
    }
    key = malloc(len + 1);
    if (key == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto done;
    }
    memcpy(key, buf, len + 1);
    authtoken_conf_free(c);
    c->key = key;
    c->key_len = len;
done:
    /* A secret leaves no copy behind in freed memory. */
    explicit_bzero(buf, AUTHTOKEN_MAX_KEY + 2);
    free(buf);
    fclose(f);
    return key != NULL ? 0 : -1;
}

void
authtoken_conf_free(struct authtoken_conf *c)
{
    if (c->key != NULL) {
        explicit_bzero(c->key, c->key_len);
        free(c->key);
    }
    c->key = NULL;
    c->key_len = 0;
}

/* ---- claims --------------------------------------------------------------------- */

/* The three entitlement lists: one table for parsing and freeing. */
static const struct {
    const char *name;
    size_t n_off, list_off;
} at_lists[] = {
    {"sports", offsetof(struct authtoken_claims, nsports),
     offsetof(struct authtoken_claims, sports)},
    {"books", offsetof(struct authtoken_claims, nbooks), offsetof(struct authtoken_claims, books)},
    {"markets", offsetof(struct authtoken_claims, nmarkets),
     offsetof(struct authtoken_claims, markets)},
};

#define AT_NLISTS (sizeof(at_lists) / sizeof(at_lists[0]))

static int *
at_list_n(struct authtoken_claims *c, size_t i)
{
    return (int *)((char *)c + at_lists[i].n_off);
}

static char ***
at_list_values(struct authtoken_claims *c, size_t i)
{
    return (char ***)((char *)c + at_lists[i].list_off);
}

static void
at_claims_init(struct authtoken_claims *c)
{
    memset(c, 0, sizeof(*c));
    c->nbf = c->iat = INT64_MIN;
    for (size_t i = 0; i < AT_NLISTS; i++) {
        *at_list_n(c, i) = -1;
        *at_list_values(c, i) = NULL;
    }
    c->opportunities = -1;
    c->max_connections = -1;
}

void
authtoken_claims_free(struct authtoken_claims *c)
{
    for (size_t i = 0; i < AT_NLISTS; i++) {
        char **v = *at_list_values(c, i);
        for (int j = 0; v != NULL && v[j] != NULL; j++)
            free(v[j]);
        free(v);
    }
    at_claims_init(c);
}

static int
at_cmp_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 if two members of object o share a name, -1 if out of memory.  JSON
 * leaves the meaning of that open, and cJSON (first wins) and libjwt's
 * jansson (last wins) disagree.  Sorted, not compared pairwise: a token of
 * a thousand members, sent by anyone before authenticating, must cost
 * little to refuse. */
static int
at_has_duplicates(const cJSON *o)
{
    size_t n = 0, i = 0;
    const char **names;
    int dup = 0;

    for (const cJSON *m = o->child; m != NULL; m = m->next)
        n++;
    if (n < 2)
        return 0;
    names = malloc(n * sizeof(*names));
    if (names == NULL)
        return -1;
    for (const cJSON *m = o->child; m != NULL; m = m->next)
        names[i++] = m->string;
    qsort(names, n, sizeof(*names), at_cmp_names);
    for (i = 1; i < n && !dup; i++)
        dup = strcmp(names[i - 1], names[i]) == 0;
    free(names);
    return dup;
}

/* 1 if every string in j, names included, is UTF-8.  The text was
 * checked, but an escape could still decode to bytes that are not (a lone
 * surrogate "\ud800": the cJSON of Debian 12 refuses it, not every version
 * has). */
static int
at_strings_valid(const cJSON *j)
{
    if (j->string != NULL && !utf8_valid(j->string, strlen(j->string)))
        return 0;
    if (cJSON_IsString(j))
        return utf8_valid(j->valuestring, strlen(j->valuestring));
    for (const cJSON *c = j->child; c != NULL; c = c->next) {
        if (!at_strings_valid(c))
            return 0;
    }
    return 1;
}

/* base64url part s[0..n) holding one JSON object in UTF-8, or NULL. */
static cJSON *
at_json_part(const char *s, size_t n, int *nomem)
{
    size_t len;
    unsigned char *text = at_b64_decode(s, n, 1, &len, nomem);
    cJSON *o = NULL;
    int dup = 0;

    if (text == NULL)
        return NULL;
    if (utf8_valid((const char *)text, len))
        o = json_parse_exact((const char *)text, len);
    free(text);
    if (o == NULL)
        return NULL;
    if (!cJSON_IsObject(o) || (dup = at_has_duplicates(o)) != 0 || !at_strings_valid(o)) {
        if (dup < 0)
            *nomem = 1;
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

/*
 * NumericDate claim `name` (RFC 7519 2: seconds, fractions allowed) into
 * *v, rounded to the strict side: exp down, nbf and iat up (round_up).
 * 0 if absent, 1 if read, -1 if malformed.
 */
static int
at_date(const cJSON *claims, const char *name, int round_up, int64_t *v)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(claims, name);
    double d;

    if (j == NULL)
        return 0;
    if (!cJSON_IsNumber(j))
        return -1;
    d = j->valuedouble;
    if (!(d >= -AT_MAX_DATE && d <= AT_MAX_DATE))
        return -1;
    *v = (int64_t)(round_up ? ceil(d) : floor(d));
    return 1;
}

/* A string we keep: min to max bytes (all strings are UTF-8 already:
 * at_json_part). */
static int
at_string_ok(const cJSON *j, size_t min, size_t max)
{
    size_t n;

    if (!cJSON_IsString(j))
        return 0;
    n = strlen(j->valuestring);
    return n >= min && n <= max;
}

/* List i of at_lists from claims into c.  0, or -1 (*nomem set if it was
 * memory). */
static int
at_list(const cJSON *claims, size_t i, struct authtoken_claims *c, int *nomem)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(claims, at_lists[i].name), *v;
    char **values;
    int n, k = 0;

    if (arr == NULL)
        return 0;
    if (!cJSON_IsArray(arr))
        return -1;
    n = cJSON_GetArraySize(arr);
    if (n > AUTHTOKEN_MAX_VALUES)
        return -1;
    cJSON_ArrayForEach(v, arr)
    {
        if (!at_string_ok(v, 1, AUTHTOKEN_MAX_VALUE_LEN))
            return -1;
    }
    values = calloc((size_t)n + 1, sizeof(*values));
    if (values == NULL)
        goto nomem;
    /* Stored at once so that authtoken_claims_free frees whatever was
     * copied if a copy fails. */
    *at_list_values(c, i) = values;
    cJSON_ArrayForEach(v, arr)
    {
        values[k] = strdup(v->valuestring);
        if (values[k] == NULL)
            goto nomem;
        k++;
    }
    *at_list_n(c, i) = n;
    return 0;
nomem:
    *nomem = 1;
    return -1;
}

/* "aud": a string or an array of strings (RFC 7519 4.1.3), one of which
 * must be the audience.  0 match, 1 no match, -1 malformed. */
static int
at_audience(const cJSON *claims, const char *audience)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud"), *v;
    int found = 0;

    if (aud == NULL)
        return 1;
    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, audience) == 0 ? 0 : 1;
    if (!cJSON_IsArray(aud))
        return -1;
    cJSON_ArrayForEach(v, aud)
    {
        if (!cJSON_IsString(v))
            return -1;
        if (strcmp(v->valuestring, audience) == 0)
            found = 1;
    }
    return found ? 0 : 1;
}

/* The registered claims: times, audience, issuer. */
static int
at_registered(const struct authtoken_conf *conf, const cJSON *claims, int64_t now,
              struct authtoken_claims *out, char *why, size_t whylen)
{
    int64_t leeway = conf->leeway_s;
    const cJSON *iss;
    int r;

    r = at_date(claims, "exp", 0, &out->exp);
    if (r == 0)
        return at_fail(why, whylen, "missing exp");
    if (r < 0)
        return at_fail(why, whylen, "claim exp malformed");
    if (at_date(claims, "nbf", 1, &out->nbf) < 0)
        return at_fail(why, whylen, "claim nbf malformed");
    if (at_date(claims, "iat", 1, &out->iat) < 0)
        return at_fail(why, whylen, "claim iat malformed");
    /* |dates| <= 2^53 and leeway < 2^32: no overflow on this side. */
    if (out->exp + leeway <= now)
        return at_fail(why, whylen, "expired");
    if (out->nbf != INT64_MIN && out->nbf - leeway > now)
        return at_fail(why, whylen, "not yet valid");
    if (out->iat != INT64_MIN && out->iat - leeway > now)
        return at_fail(why, whylen, "not yet valid");
    if (conf->audience[0] != '\0') {
        r = at_audience(claims, conf->audience);
        if (r < 0)
            return at_fail(why, whylen, "claim aud malformed");
        if (r > 0)
            return at_fail(why, whylen, "wrong audience");
    }
    if (conf->issuer[0] != '\0') {
        iss = cJSON_GetObjectItemCaseSensitive(claims, "iss");
        if (iss != NULL && !cJSON_IsString(iss))
            return at_fail(why, whylen, "claim iss malformed");
        if (iss == NULL || strcmp(iss->valuestring, conf->issuer) != 0)
            return at_fail(why, whylen, "wrong issuer");
    }
    return 0;
}

/* sub and the entitlements. */
static int
at_entitlements(const cJSON *claims, struct authtoken_claims *out, char *why, size_t whylen)
{
    const cJSON *j;
    char msg[64];
    int nomem = 0;

    j = cJSON_GetObjectItemCaseSensitive(claims, "sub");
    if (j != NULL) {
        if (!at_string_ok(j, 0, sizeof(out->sub) - 1))
            return at_fail(why, whylen, "claim sub malformed");
        memcpy(out->sub, j->valuestring, strlen(j->valuestring) + 1);
    }
    for (size_t i = 0; i < AT_NLISTS; i++) {
        if (at_list(claims, i, out, &nomem) != 0) {
            if (nomem)
                return at_fail(why, whylen, "out of memory");
            snprintf(msg, sizeof(msg), "claim %s malformed", at_lists[i].name);
            return at_fail(why, whylen, msg);
        }
    }
    j = cJSON_GetObjectItemCaseSensitive(claims, "opportunities");
    if (j != NULL) {
        if (!cJSON_IsBool(j))
            return at_fail(why, whylen, "claim opportunities malformed");
        out->opportunities = cJSON_IsTrue(j) ? 1 : 0;
    }
    j = cJSON_GetObjectItemCaseSensitive(claims, "fields");
    if (j != NULL) {
        if (cJSON_IsString(j) && strcmp(j->valuestring, "full") == 0)
            out->fields_basic = 0;
        else if (cJSON_IsString(j) && strcmp(j->valuestring, "basic") == 0)
            out->fields_basic = 1;
        else
            return at_fail(why, whylen, "claim fields malformed");
    }
    j = cJSON_GetObjectItemCaseSensitive(claims, "max_connections");
    if (j != NULL) {
        double d = cJSON_IsNumber(j) ? j->valuedouble : 0;
        if (!(d >= 1 && d <= AT_MAX_DATE) || d != floor(d))
            return at_fail(why, whylen, "claim max_connections malformed");
        out->max_connections = (int64_t)d;
    }
    return 0;
}

/*
 * The signature, by libjwt.  Only reached once the header's alg is the
 * configured one; jwt_get_alg is compared again anyway, in case libjwt
 * reads a header differently (it decodes and parses it on its own).
 */
static int
at_signature(const struct authtoken_conf *conf, const char *token, size_t len, char *why,
             size_t whylen)
{
    char *text = malloc(len + 1);
    jwt_t *jwt = NULL;
    jwt_alg_t alg;
    int rc;

    if (text == NULL)
        return at_fail(why, whylen, "out of memory");
    memcpy(text, token, len);
    text[len] = '\0';
    rc = jwt_decode(&jwt, text, conf->key, (int)conf->key_len);
    free(text);
    if (rc != 0)
        return at_fail(why, whylen, rc == ENOMEM ? "out of memory" : "bad signature");
    alg = jwt_get_alg(jwt);
    jwt_free(jwt);
    if (alg != conf->alg)
        return at_fail(why, whylen, "wrong algorithm");
    return 0;
}

int
authtoken_verify(const struct authtoken_conf *conf, const char *token, size_t len, int64_t now,
                 struct authtoken_claims *out, char *why, size_t whylen)
{
    const char *dot1, *dot2, *sig;
    const cJSON *alg, *typ;
    cJSON *header = NULL, *claims = NULL;
    int nomem = 0, rc = -1;
    size_t siglen, unused;
    unsigned char *sigbytes;

    at_claims_init(out);
    if (whylen > 0)
        why[0] = '\0';
    /* A key is what makes any token acceptable: without one, none is. */
    if (conf->key == NULL || !at_alg_supported(conf->alg))
        return at_fail(why, whylen, "bad signature");
    if (len == 0 || len > AUTHTOKEN_MAX_TOKEN)
        return at_fail(why, whylen, "malformed");
    dot1 = memchr(token, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
        return at_fail(why, whylen, "malformed");
    sig = dot2 + 1;
    siglen = len - (size_t)(sig - token);
    header = at_json_part(token, (size_t)(dot1 - token), &nomem);
    if (header == NULL)
        goto malformed;
    alg = cJSON_GetObjectItemCaseSensitive(header, "alg");
    if (!cJSON_IsString(alg))
        goto malformed;
    /* Exactly the configured name (JWS names are case-sensitive; libjwt
     * would take "hs256"), so "none" and any other algorithm stop here. */
    if (strcmp(alg->valuestring, jwt_alg_str(conf->alg)) != 0) {
        at_fail(why, whylen, "wrong algorithm");
        goto done;
    }
    typ = cJSON_GetObjectItemCaseSensitive(header, "typ");
    if (cJSON_GetObjectItemCaseSensitive(header, "crit") != NULL ||
        (typ != NULL && (!cJSON_IsString(typ) || strcasecmp(typ->valuestring, "JWT") != 0)))
        goto malformed;
    claims = at_json_part(dot1 + 1, (size_t)(dot2 - dot1 - 1), &nomem);
    if (claims == NULL)
        goto malformed;
    /* The signature's text must be canonical base64url too. */
    sigbytes = siglen > 0 ? at_b64_decode(sig, siglen, 1, &unused, &nomem) : NULL;
    if (sigbytes == NULL)
        goto malformed;
    free(sigbytes);
    if (at_signature(conf, token, len, why, whylen) != 0)
        goto done;
    if (at_registered(conf, claims, now, out, why, whylen) != 0 ||
        at_entitlements(claims, out, why, whylen) != 0)
        goto done;
    rc = 0;
    goto done;
malformed:
    at_fail(why, whylen, nomem ? "out of memory" : "malformed");
done:
    cJSON_Delete(header);
    cJSON_Delete(claims);
    if (rc != 0)
        authtoken_claims_free(out);
    return rc;
}
