/*
 * test_authtoken: JWT verification and entitlements.
 *
 * A token that verifies is what lets a client in and decides what it sees,
 * so every way a token can be wrong must be refused with its own reason:
 * expiry and not-before on both sides of the leeway, a wrong signature, a
 * wrong audience or issuer, every claim of the wrong type, and the
 * algorithm attacks (alg "none"; an HS256 token whose HMAC secret is the
 * RS256 public key, which anyone has; an "alg" named twice).  Tokens are
 * made with libjwt where it can make them, and by hand (base64url, and an
 * HMAC from the openssl command) where libjwt refuses to write such a
 * token.  The RSA and EC keys are generated for each run with `openssl
 * genpkey` in a temporary directory, removed at exit.
 */
#include "worker/authtoken.h"

#include <stdarg.h>
#include <stdint.h>

#include "test.h"

#define NOW ((int64_t)1764750000)

static const char secret[] = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz";

static char tmpdir[64];
static struct authtoken_conf hs, rs, es;
static unsigned char *rsa_priv, *rsa_pub, *rsa2_priv, *ec_priv, *ec_pub, *ec2_priv, *ec384_priv,
    *ec384_pub;
static size_t rsa_priv_len, rsa_pub_len, rsa2_priv_len, ec_priv_len, ec_pub_len, ec2_priv_len,
    ec384_priv_len, ec384_pub_len;

/* ---- helpers ----------------------------------------------------------------- */

static void
path_of(char *buf, size_t size, const char *name)
{
    snprintf(buf, size, "%s/%s", tmpdir, name);
}

static void
write_file(const char *name, const void *data, size_t len)
{
    char path[128];
    FILE *f;

    path_of(path, sizeof(path), name);
    f = fopen(path, "wb");
    if (f == NULL || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
        printf("# cannot write %s\n", path);
        exit(1);
    }
}

static unsigned char *
read_file(const char *name, size_t *len)
{
    char path[128];
    unsigned char *buf = malloc(65536);
    FILE *f;

    path_of(path, sizeof(path), name);
    f = fopen(path, "rb");
    if (f == NULL || buf == NULL) {
        printf("# cannot read %s\n", path);
        exit(1);
    }
    *len = fread(buf, 1, 65535, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

__attribute__((format(printf, 1, 2))) static void
run(const char *fmt, ...)
{
    char cmd[16384];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0) {
        printf("# failed: %s\n", cmd);
        exit(1);
    }
}

/* A private key (genpkey options opts) and, if pub, its public key. */
static void
genkey(const char *name, const char *opts, const char *pub)
{
    char path[128], pubpath[128];

    path_of(path, sizeof(path), name);
    run("openssl genpkey %s -out %s 2>/dev/null", opts, path);
    if (pub != NULL) {
        path_of(pubpath, sizeof(pubpath), pub);
        run("openssl pkey -in %s -pubout -out %s 2>/dev/null", path, pubpath);
    }
}

static const char *const tmpfiles[] = {
    "rsa.pem",   "rsa.pub", "rsa2.pem", "ec.pem", "ec.pub", "ec2.pem", "ec384.pem",
    "ec384.pub", "secret",  "in",       "mac",    "key",    "empty",   "short",
    "crlf",      "nonl",    "pem-hs",   "both",   "two",    "garbage", "rsa-as-ec",
};

static void
cleanup(void)
{
    char path[128];

    authtoken_conf_free(&hs);
    authtoken_conf_free(&rs);
    authtoken_conf_free(&es);
    free(rsa_priv);
    free(rsa_pub);
    free(rsa2_priv);
    free(ec_priv);
    free(ec_pub);
    free(ec2_priv);
    free(ec384_priv);
    free(ec384_pub);
    for (size_t i = 0; i < sizeof(tmpfiles) / sizeof(tmpfiles[0]); i++) {
        path_of(path, sizeof(path), tmpfiles[i]);
        (void)unlink(path); /* most tests leave only some of them */
    }
    if (rmdir(tmpdir) != 0)
        printf("# rmdir(%s) failed: %s\n", tmpdir, strerror(errno));
}

static void
load(struct authtoken_conf *c, jwt_alg_t alg, const char *name)
{
    char path[128], err[256];

    memset(c, 0, sizeof(*c));
    c->alg = alg;
    path_of(path, sizeof(path), name);
    if (authtoken_load_key(c, path, err, sizeof(err)) != 0) {
        printf("# loading %s: %s\n", name, err);
        exit(1);
    }
}

/* Keys and the three configurations, once per run. */
static void
setup(void)
{
    static int done;

    if (done)
        return;
    done = 1;
    if (system("command -v openssl >/dev/null 2>&1") != 0) {
        printf("# the openssl command is needed to make the test keys\n");
        exit(1);
    }
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/wsb-test-auth-XXXXXX");
    if (mkdtemp(tmpdir) == NULL) {
        printf("# mkdtemp failed: %s\n", strerror(errno));
        exit(1);
    }
    atexit(cleanup);
    genkey("rsa.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", "rsa.pub");
    genkey("rsa2.pem", "-algorithm RSA -pkeyopt rsa_keygen_bits:2048", NULL);
    genkey("ec.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", "ec.pub");
    genkey("ec2.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-256", NULL);
    genkey("ec384.pem", "-algorithm EC -pkeyopt ec_paramgen_curve:P-384", "ec384.pub");
    rsa_priv = read_file("rsa.pem", &rsa_priv_len);
    rsa_pub = read_file("rsa.pub", &rsa_pub_len);
    rsa2_priv = read_file("rsa2.pem", &rsa2_priv_len);
    ec_priv = read_file("ec.pem", &ec_priv_len);
    ec_pub = read_file("ec.pub", &ec_pub_len);
    ec2_priv = read_file("ec2.pem", &ec2_priv_len);
    ec384_priv = read_file("ec384.pem", &ec384_priv_len);
    ec384_pub = read_file("ec384.pub", &ec384_pub_len);
    write_file("secret", secret, strlen(secret));
    load(&hs, JWT_ALG_HS256, "secret");
    load(&rs, JWT_ALG_RS256, "rsa.pub");
    load(&es, JWT_ALG_ES256, "ec.pub");
}

/* A token libjwt signs: grants (a JSON object) with alg and key. */
static char *
make(jwt_alg_t alg, const void *key, size_t keylen, const char *grants)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;

    if (jwt_new(&jwt) != 0)
        return NULL;
    if (jwt_add_grants_json(jwt, grants) == 0 &&
        jwt_set_alg(jwt, alg, key, alg == JWT_ALG_NONE ? 0 : (int)keylen) == 0)
        tok = jwt_encode_str(jwt);
    jwt_free(jwt);
    if (tok == NULL)
        printf("# libjwt could not make a token of %s\n", grants);
    return tok;
}

static char *
make_hs(const char *grants)
{
    return make(JWT_ALG_HS256, secret, strlen(secret), grants);
}

static void
b64url(const unsigned char *p, size_t n, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;

    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = alphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = alphabet[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

/* "b64(header).b64(payload)" and, unless sig is NULL, "." sig. */
static char *
craft(const char *header, const char *payload, const char *sig)
{
    char *tok = malloc(4 * (strlen(header) + strlen(payload)) / 3 + (sig ? strlen(sig) : 0) + 8);

    b64url((const unsigned char *)header, strlen(header), tok);
    strcat(tok, ".");
    b64url((const unsigned char *)payload, strlen(payload), tok + strlen(tok));
    if (sig != NULL) {
        strcat(tok, ".");
        strcat(tok, sig);
    }
    return tok;
}

/* craft(), signed with HMAC-SHA256 under key by the openssl command. */
static char *
craft_hs(const char *header, const char *payload, const void *key, size_t keylen)
{
    char *input = craft(header, payload, NULL), *tok, hex[8192], mac_path[128];
    char in_path[128], opts[8192 + 160], sig[64];
    unsigned char *mac;
    size_t maclen;

    write_file("in", input, strlen(input));
    if (2 * keylen >= sizeof(hex)) {
        printf("# HMAC key too long for this test\n");
        exit(1);
    }
    for (size_t i = 0; i < keylen; i++)
        snprintf(hex + 2 * i, 3, "%02x", ((const unsigned char *)key)[i]);
    path_of(in_path, sizeof(in_path), "in");
    path_of(mac_path, sizeof(mac_path), "mac");
    snprintf(opts, sizeof(opts), "-macopt hexkey:%s -binary -out %s", hex, mac_path);
    run("openssl dgst -sha256 -mac HMAC %s %s", opts, in_path);
    mac = read_file("mac", &maclen);
    b64url(mac, maclen, sig);
    free(mac);
    tok = malloc(strlen(input) + strlen(sig) + 2);
    sprintf(tok, "%s.%s", input, sig);
    free(input);
    return tok;
}

static const char *const reasons[] = {"malformed",      "wrong algorithm", "bad signature",
                                      "missing exp",    "expired",         "not yet valid",
                                      "wrong audience", "wrong issuer",    "out of memory"};

/* why is one of the documented reasons: never anything of the token. */
static int
known_reason(const char *why)
{
    size_t n = strlen(why);

    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        if (strcmp(why, reasons[i]) == 0)
            return 1;
    }
    return n > 16 && strncmp(why, "claim ", 6) == 0 && strcmp(why + n - 10, " malformed") == 0;
}

/* Verify tok (NULL counts as a failure to make it) and return the result,
 * the reason in why. */
static int
verify_at(const struct authtoken_conf *c, const char *tok, int64_t now,
          struct authtoken_claims *out, char *why, size_t whylen)
{
    int rc;

    if (tok == NULL) {
        snprintf(why, whylen, "(no token)");
        return -2;
    }
    rc = authtoken_verify(c, tok, strlen(tok), now, out, why, whylen);
    if (rc != 0 && !known_reason(why)) {
        printf("#   unexpected reason \"%s\"\n", why);
        test_failed_checks++;
    }
    if (rc != 0 && (out->sports != NULL || out->nsports != -1 || out->sub[0] != '\0')) {
        printf("#   a refused token left claims behind\n");
        test_failed_checks++;
    }
    return rc;
}

/* tok (freed here) verifies against c at t. */
#define CHECK_OK_AT(c, tok, t)                                                                     \
    do {                                                                                           \
        char *test_tok_ = (tok);                                                                   \
        struct authtoken_claims test_cl_;                                                          \
        char test_why_[128] = "";                                                                  \
        CHECK_INT(verify_at(c, test_tok_, t, &test_cl_, test_why_, sizeof(test_why_)), 0);         \
        if (test_why_[0] != '\0')                                                                  \
            printf("#   refused: %s\n", test_why_);                                                \
        authtoken_claims_free(&test_cl_);                                                          \
        free(test_tok_);                                                                           \
    } while (0)

/* tok (freed here) is refused by c at t with reason want. */
#define CHECK_REFUSED_AT(c, tok, t, want)                                                          \
    do {                                                                                           \
        char *test_tok_ = (tok);                                                                   \
        struct authtoken_claims test_cl_;                                                          \
        char test_why_[128] = "";                                                                  \
        CHECK_INT(verify_at(c, test_tok_, t, &test_cl_, test_why_, sizeof(test_why_)), -1);        \
        CHECK_STR(test_why_, want);                                                                \
        authtoken_claims_free(&test_cl_);                                                          \
        free(test_tok_);                                                                           \
    } while (0)

#define CHECK_OK(c, tok)               CHECK_OK_AT(c, tok, NOW)
#define CHECK_REFUSED(c, tok, want)    CHECK_REFUSED_AT(c, tok, NOW, want)
#define CHECK_CLAIMS_REFUSED(js, want) CHECK_REFUSED(&hs, make_hs(js), want)

/* grants with "exp": NOW + 3600 added in front. */
static char *
with_exp(const char *rest)
{
    char *js = malloc(strlen(rest) + 64);

    sprintf(js, "{\"exp\":%lld%s%s}", (long long)(NOW + 3600), rest[0] ? "," : "", rest);
    return js;
}

static char *
make_hs_exp(const char *rest)
{
    char *js = with_exp(rest), *tok = make_hs(js);

    free(js);
    return tok;
}

/* ---- the three algorithms ------------------------------------------------------- */

static void
test_hs256_valid(void)
{
    struct authtoken_claims cl;
    char why[128];
    char *tok;

    setup();
    tok = make_hs_exp("\"sub\":\"user-17\",\"iat\":1764749000,\"nbf\":1764749000,"
                      "\"sports\":[\"basketball_nba\",\"soccer_epl\"],\"books\":[],"
                      "\"opportunities\":true,\"fields\":\"basic\",\"max_connections\":3");
    CHECK_INT(verify_at(&hs, tok, NOW, &cl, why, sizeof(why)), 0);
    CHECK_STR(cl.sub, "user-17");
    CHECK_INT(cl.exp, NOW + 3600);
    CHECK_INT(cl.nbf, 1764749000);
    CHECK_INT(cl.iat, 1764749000);
    CHECK_INT(cl.nsports, 2);
    CHECK_STR(cl.sports[0], "basketball_nba");
    CHECK_STR(cl.sports[1], "soccer_epl");
    CHECK(cl.sports[2] == NULL);
    /* An empty list is "nothing", not "unrestricted". */
    CHECK_INT(cl.nbooks, 0);
    CHECK(cl.books != NULL && cl.books[0] == NULL);
    CHECK_INT(cl.nmarkets, -1);
    CHECK(cl.markets == NULL);
    CHECK_INT(cl.opportunities, 1);
    CHECK_INT(cl.fields_basic, 1);
    CHECK_INT(cl.max_connections, 3);
    authtoken_claims_free(&cl);
    CHECK(cl.sports == NULL && cl.nsports == -1);
    free(tok);
}

static void
test_rs256_es256_valid(void)
{
    char *js;

    setup();
    js = with_exp("\"sub\":\"rs\"");
    CHECK_OK(&rs, make(JWT_ALG_RS256, rsa_priv, rsa_priv_len, js));
    CHECK_OK(&es, make(JWT_ALG_ES256, ec_priv, ec_priv_len, js));
    /* Each configuration takes its own algorithm only. */
    CHECK_REFUSED(&hs, make(JWT_ALG_RS256, rsa_priv, rsa_priv_len, js), "wrong algorithm");
    CHECK_REFUSED(&es, make(JWT_ALG_RS256, rsa_priv, rsa_priv_len, js), "wrong algorithm");
    CHECK_REFUSED(&rs, make(JWT_ALG_ES256, ec_priv, ec_priv_len, js), "wrong algorithm");
    CHECK_REFUSED(&rs, make_hs(js), "wrong algorithm");
    free(js);
}

static void
test_defaults(void)
{
    struct authtoken_claims cl;
    char why[128];
    char *tok;

    setup();
    tok = make_hs_exp("\"jti\":\"x\",\"custom\":{\"a\":[1,2]}");
    CHECK_INT(verify_at(&hs, tok, NOW, &cl, why, sizeof(why)), 0);
    CHECK_STR(cl.sub, "");
    CHECK(cl.nbf == INT64_MIN && cl.iat == INT64_MIN);
    CHECK(cl.nsports == -1 && cl.nbooks == -1 && cl.nmarkets == -1);
    CHECK(cl.sports == NULL && cl.books == NULL && cl.markets == NULL);
    CHECK_INT(cl.opportunities, -1);
    CHECK_INT(cl.fields_basic, 0);
    CHECK_INT(cl.max_connections, -1);
    authtoken_claims_free(&cl);
    free(tok);
    CHECK_OK(&hs, make_hs_exp("\"fields\":\"full\",\"opportunities\":false"));
}

/* ---- time ------------------------------------------------------------------------ */

static char *
make_time(const char *claim, int64_t t, const char *more)
{
    char js[256];

    snprintf(js, sizeof(js), "{\"%s\":%lld%s}", claim, (long long)t, more);
    return make_hs(js);
}

static void
test_expiry(void)
{
    setup();
    CHECK_REFUSED(&hs, make_time("exp", NOW - 1, ""), "expired");
    CHECK_REFUSED(&hs, make_time("exp", NOW, ""), "expired"); /* exp is the first bad second */
    CHECK_OK(&hs, make_time("exp", NOW + 1, ""));
    CHECK_REFUSED(&hs, make_time("exp", 0, ""), "expired");
    CHECK_REFUSED(&hs, make_time("exp", -5, ""), "expired");
    CHECK_REFUSED(&hs, make_hs("{\"sub\":\"x\"}"), "missing exp");
    CHECK_REFUSED(&hs, make_hs("{\"EXP\":1864750000}"), "missing exp");
    /* A fraction is allowed (RFC 7519 NumericDate) and rounded down. */
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1764750000.9}", secret, strlen(secret)),
                  "expired");
    CHECK_OK(&hs,
             craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1764750001.5}", secret, strlen(secret)));
}

static void
test_not_before(void)
{
    char more[64];

    setup();
    snprintf(more, sizeof(more), ",\"exp\":%lld", (long long)NOW + 3600);
    CHECK_REFUSED(&hs, make_time("nbf", NOW + 1, more), "not yet valid");
    CHECK_OK(&hs, make_time("nbf", NOW, more));
    CHECK_REFUSED(&hs, make_time("iat", NOW + 1, more), "not yet valid");
    CHECK_OK(&hs, make_time("iat", NOW, more));
    CHECK_OK(&hs, make_time("iat", 0, more));
    /* nbf NOW + 0.5 rounds up: not yet. */
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000,\"nbf\":1764750000.5}",
                           secret, strlen(secret)),
                  "not yet valid");
}

static void
test_leeway(void)
{
    struct authtoken_conf lee;
    char more[64];

    setup();
    lee = hs;
    lee.leeway_s = 30;
    snprintf(more, sizeof(more), ",\"exp\":%lld", (long long)NOW + 3600);
    /* exp: up to leeway seconds late is still in. */
    CHECK_OK(&lee, make_time("exp", NOW - 29, ""));
    CHECK_REFUSED(&lee, make_time("exp", NOW - 30, ""), "expired");
    /* nbf and iat: up to leeway seconds early is in. */
    CHECK_OK(&lee, make_time("nbf", NOW + 30, more));
    CHECK_REFUSED(&lee, make_time("nbf", NOW + 31, more), "not yet valid");
    CHECK_OK(&lee, make_time("iat", NOW + 30, more));
    CHECK_REFUSED(&lee, make_time("iat", NOW + 31, more), "not yet valid");
    /* Times near the ends of int64 do not wrap around. */
    CHECK_REFUSED_AT(&lee, make_time("exp", NOW, ""), INT64_MAX, "expired");
    CHECK_REFUSED_AT(&lee, make_time("nbf", NOW, more), INT64_MIN, "not yet valid");
}

/* ---- signatures and algorithms ------------------------------------------------------ */

static void
test_bad_signature(void)
{
    static const char other[] = "another-secret-0123456789-abcdefghijklmnopqrstuvwxyz";
    char *js, *tok;
    size_t cut_at;

    setup();
    js = with_exp("");
    CHECK_REFUSED(&hs, make(JWT_ALG_HS256, other, strlen(other), js), "bad signature");
    CHECK_REFUSED(&rs, make(JWT_ALG_RS256, rsa2_priv, rsa2_priv_len, js), "bad signature");
    CHECK_REFUSED(&es, make(JWT_ALG_ES256, ec2_priv, ec2_priv_len, js), "bad signature");
    /* The claims swapped after signing (exp pushed years on). */
    tok = make_hs(js);
    {
        char *forged = make(JWT_ALG_HS256, other, strlen(other), "{\"exp\":1900000000}");
        char *d1 = strchr(tok, '.'), *d2 = strchr(d1 + 1, '.');
        char *f1 = strchr(forged, '.'), *f2 = strchr(f1 + 1, '.');
        char *spliced = malloc(strlen(tok) + strlen(forged));
        sprintf(spliced, "%.*s%.*s%s", (int)(d1 - tok), tok, (int)(f2 - f1), f1, d2);
        CHECK_REFUSED(&hs, spliced, "bad signature");
        free(forged);
    }
    /* The signature cut short (to a whole number of base64 groups, so that
     * its text stays canonical), or a character of it changed. */
    cut_at = strlen(tok) - 3;
    {
        char *cut = strdup(tok);
        cut[cut_at] = '\0';
        CHECK_REFUSED(&hs, cut, "bad signature");
        char *flip = strdup(tok);
        flip[cut_at] = flip[cut_at] == 'A' ? 'B' : 'A';
        CHECK_REFUSED(&hs, flip, "bad signature");
    }
    free(tok);
    free(js);
}

static void
test_alg_none(void)
{
    char *js = with_exp(""), *tok;
    jwt_t *jwt = NULL;

    setup();
    /* What libjwt writes for "none": "<header>.<claims>." */
    tok = make(JWT_ALG_NONE, NULL, 0, js);
    CHECK(tok != NULL && tok[strlen(tok) - 1] == '.');
    if (tok != NULL && jwt_decode(&jwt, tok, NULL, 0) == 0)
        printf("# (libjwt alone accepts the unsigned token when given no key)\n");
    jwt_free(jwt);
    CHECK_REFUSED(&hs, tok, "wrong algorithm");
    CHECK_REFUSED(&rs, make(JWT_ALG_NONE, NULL, 0, js), "wrong algorithm");
    CHECK_REFUSED(&es, make(JWT_ALG_NONE, NULL, 0, js), "wrong algorithm");
    /* Spelt otherwise, or with a signature anyway. */
    CHECK_REFUSED(&hs, craft("{\"alg\":\"None\"}", js, ""), "wrong algorithm");
    CHECK_REFUSED(&hs, craft("{\"alg\":\"NONE\"}", js, "c2ln"), "wrong algorithm");
    CHECK_REFUSED(&hs, craft("{\"alg\":\"none\",\"typ\":\"JWT\"}", js, "c2ln"), "wrong algorithm");
    /* No alg at all. */
    CHECK_REFUSED(&hs, craft_hs("{\"typ\":\"JWT\"}", js, secret, strlen(secret)), "malformed");
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":null}", js, secret, strlen(secret)), "malformed");
    free(js);
}

static void
test_alg_confusion(void)
{
    char *js = with_exp("\"sub\":\"attacker\""), *tok;
    jwt_t *jwt = NULL;

    setup();
    /* HS256 with the RSA public key's PEM bytes as the HMAC secret: the key
     * is public, so anyone can make this token. */
    tok = make(JWT_ALG_HS256, rsa_pub, rsa_pub_len, js);
    if (tok != NULL && jwt_decode(&jwt, tok, rsa_pub, (int)rsa_pub_len) == 0)
        printf("# (libjwt alone accepts the HS256 token signed with the RS256 public key)\n");
    jwt_free(jwt);
    CHECK_REFUSED(&rs, tok, "wrong algorithm");
    CHECK_REFUSED(&es, make(JWT_ALG_HS256, ec_pub, ec_pub_len, js), "wrong algorithm");
    /* Two "alg" members: cJSON would read the first, libjwt (jansson) the
     * last; either way it is refused before any signature is checked. */
    tok =
        craft_hs("{\"alg\":\"RS256\",\"typ\":\"JWT\",\"alg\":\"HS256\"}", js, rsa_pub, rsa_pub_len);
    jwt = NULL;
    if (jwt_decode(&jwt, tok, rsa_pub, (int)rsa_pub_len) == 0)
        printf("# (libjwt alone accepts the token with two algs)\n");
    jwt_free(jwt);
    CHECK_REFUSED(&rs, tok, "malformed");
    CHECK_REFUSED(&rs, craft_hs("{\"alg\":\"HS256\",\"alg\":\"RS256\"}", js, rsa_pub, rsa_pub_len),
                  "malformed");
    /* JWS names are case-sensitive: libjwt would take "hs256" as HS256. */
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"hs256\"}", js, secret, strlen(secret)),
                  "wrong algorithm");
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256 \"}", js, secret, strlen(secret)),
                  "wrong algorithm");
    /* Stronger relatives of the configured algorithm are still others. */
    CHECK_REFUSED(&hs, make(JWT_ALG_HS512, secret, strlen(secret), js), "wrong algorithm");
    CHECK_REFUSED(&hs, make(JWT_ALG_HS384, secret, strlen(secret), js), "wrong algorithm");
    CHECK_REFUSED(&rs, make(JWT_ALG_RS512, rsa_priv, rsa_priv_len, js), "wrong algorithm");
    CHECK_REFUSED(&es, make(JWT_ALG_ES384, ec384_priv, ec384_priv_len, js), "wrong algorithm");
    free(js);
}

static void
test_header_form(void)
{
    char *js = with_exp("");

    setup();
    /* What is understood of a header: alg, typ "JWT" in any case, and
     * members with no meaning here (kid). */
    CHECK_OK(&hs, craft_hs("{\"alg\":\"HS256\"}", js, secret, strlen(secret)));
    CHECK_OK(&hs, craft_hs("{\"alg\":\"HS256\",\"typ\":\"jwt\",\"kid\":\"k1\"}", js, secret,
                           strlen(secret)));
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", js, secret, strlen(secret)),
                  "malformed");
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\",\"typ\":1}", js, secret, strlen(secret)),
                  "malformed");
    CHECK_REFUSED(
        &hs,
        craft_hs("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", js, secret, strlen(secret)),
        "malformed");
    CHECK_REFUSED(&hs, craft_hs("[\"HS256\"]", js, secret, strlen(secret)), "malformed");
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\"} x", js, secret, strlen(secret)), "malformed");
    free(js);
}

/* ---- form ------------------------------------------------------------------------ */

static void
test_malformed(void)
{
    char *js = with_exp(""), *good, *tok;
    struct authtoken_claims cl;
    char why[128];
    size_t n;

    setup();
    good = make_hs(js);
    n = strlen(good);
    CHECK_REFUSED(&hs, strdup(""), "malformed");
    CHECK_REFUSED(&hs, strdup("abc"), "malformed");
    CHECK_REFUSED(&hs, strdup("a.b"), "malformed");
    CHECK_REFUSED(&hs, strdup(".."), "malformed");
    CHECK_REFUSED(&hs, strdup("a.b.c.d"), "malformed");
    /* A fourth part, padding, spaces, the standard alphabet. */
    tok = malloc(n + 8);
    sprintf(tok, "%s.x", good);
    CHECK_REFUSED(&hs, tok, "malformed");
    tok = malloc(n + 8);
    sprintf(tok, "%s=", good);
    CHECK_REFUSED(&hs, tok, "malformed");
    tok = malloc(n + 8);
    sprintf(tok, " %s", good);
    CHECK_REFUSED(&hs, tok, "malformed");
    tok = malloc(n + 8);
    sprintf(tok, "%s\n", good);
    CHECK_REFUSED(&hs, tok, "malformed");
    tok = strdup(good);
    *strrchr(tok, '.') = '\0';
    strcat(tok, ".");
    CHECK_REFUSED(&hs, tok, "malformed"); /* no signature */
    tok = strdup(good);
    tok[n - 1] = '+';
    CHECK_REFUSED(&hs, tok, "malformed");
    /* The same bytes, written non-canonically (set bits after the last
     * byte): one token, one text. */
    CHECK_REFUSED(&hs, craft("{\"alg\":\"HS256\"}", js, "AB"), "malformed");
    CHECK_REFUSED(&hs, craft("{\"alg\":\"HS256\"}", js, "A"), "malformed");
    /* Claims that are not one JSON object in UTF-8, or name one twice. */
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\"}", "[1]", secret, strlen(secret)), "malformed");
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000", secret, strlen(secret)),
                  "malformed");
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000,\"sub\":\"\xff\"}", secret,
                           strlen(secret)),
                  "malformed");
    CHECK_REFUSED(
        &hs,
        craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000,\"exp\":1}", secret, strlen(secret)),
        "malformed");
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000,\"sub\":\"a\\u0000b\"}",
                           secret, strlen(secret)),
                  "malformed");
    /* A string no UTF-8 text can hold: a lone surrogate escape. */
    CHECK_REFUSED(&hs,
                  craft_hs("{\"alg\":\"HS256\"}", "{\"exp\":1864750000,\"markets\":[\"\\ud800\"]}",
                           secret, strlen(secret)),
                  "malformed");
    CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\",\"\\udfff\":1}", js, secret, strlen(secret)),
                  "malformed");
    /* Only token[0..len) is read: a NUL inside is a byte like others. */
    CHECK_INT(authtoken_verify(&hs, good, n - 1, NOW, &cl, why, sizeof(why)), -1);
    CHECK_INT(authtoken_verify(&hs, good, n, NOW, &cl, why, sizeof(why)), 0);
    authtoken_claims_free(&cl);
    tok = malloc(n + 2);
    memcpy(tok, good, n + 1);
    tok[n] = '\0';
    tok[n + 1] = 'A';
    CHECK_INT(authtoken_verify(&hs, tok, n + 1, NOW, &cl, why, sizeof(why)), -1);
    CHECK_STR(why, "malformed");
    free(tok);
    /* Too long to be decoded at all. */
    tok = malloc(AUTHTOKEN_MAX_TOKEN + 2);
    memset(tok, 'A', AUTHTOKEN_MAX_TOKEN + 1);
    tok[10] = tok[20] = '.';
    tok[AUTHTOKEN_MAX_TOKEN + 1] = '\0';
    CHECK_REFUSED(&hs, tok, "malformed");
    free(good);
    free(js);
}

static void
test_reason_buffer(void)
{
    struct authtoken_claims cl;
    char *tok;

    setup();
    tok = make_hs("{\"exp\":1}");
    /* Cut, never overrun, always terminated; none at all is fine. */
    for (size_t len = 1; len <= 8; len++) {
        char *why = malloc(len);
        CHECK_INT(authtoken_verify(&hs, tok, strlen(tok), NOW, &cl, why, len), -1);
        CHECK(memchr(why, '\0', len) != NULL);
        CHECK(strncmp(why, "expired", len - 1) == 0);
        free(why);
    }
    CHECK_INT(authtoken_verify(&hs, tok, strlen(tok), NOW, &cl, NULL, 0), -1);
    free(tok);
    /* A configuration without a key accepts nothing. */
    {
        struct authtoken_conf none = hs;
        char why[64];
        none.key = NULL;
        none.key_len = 0;
        tok = make_hs_exp("");
        CHECK_INT(authtoken_verify(&none, tok, strlen(tok), NOW, &cl, why, sizeof(why)), -1);
        CHECK_STR(why, "bad signature");
        free(tok);
    }
}

/* ---- claims ------------------------------------------------------------------------ */

static void
test_audience(void)
{
    struct authtoken_conf aud;

    setup();
    aud = hs;
    snprintf(aud.audience, sizeof(aud.audience), "ws-broadcaster");
    CHECK_OK(&aud, make_hs_exp("\"aud\":\"ws-broadcaster\""));
    CHECK_OK(&aud, make_hs_exp("\"aud\":[\"other\",\"ws-broadcaster\"]"));
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":\"other\""), "wrong audience");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":\"WS-BROADCASTER\""), "wrong audience");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":[\"other\",\"ws\"]"), "wrong audience");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":[]"), "wrong audience");
    CHECK_REFUSED(&aud, make_hs_exp(""), "wrong audience");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":[\"ws-broadcaster\",7]"), "claim aud malformed");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":7"), "claim aud malformed");
    CHECK_REFUSED(&aud, make_hs_exp("\"aud\":{\"ws-broadcaster\":1}"), "claim aud malformed");
    /* Not configured: not looked at. */
    CHECK_OK(&hs, make_hs_exp("\"aud\":\"other\""));
    CHECK_OK(&hs, make_hs_exp("\"aud\":7"));
}

static void
test_issuer(void)
{
    struct authtoken_conf iss;

    setup();
    iss = hs;
    snprintf(iss.issuer, sizeof(iss.issuer), "https://auth.example.com/");
    CHECK_OK(&iss, make_hs_exp("\"iss\":\"https://auth.example.com/\""));
    CHECK_REFUSED(&iss, make_hs_exp("\"iss\":\"https://auth.example.com\""), "wrong issuer");
    CHECK_REFUSED(&iss, make_hs_exp(""), "wrong issuer");
    CHECK_REFUSED(&iss, make_hs_exp("\"iss\":[\"https://auth.example.com/\"]"),
                  "claim iss malformed");
    CHECK_OK(&hs, make_hs_exp("\"iss\":\"anyone\""));
}

static void
test_claim_types(void)
{
    static const struct {
        const char *claims, *reason;
    } bad[] = {
        {"\"exp\":\"1864750000\"", "claim exp malformed"},
        {"\"exp\":true", "claim exp malformed"},
        {"\"exp\":null", "claim exp malformed"},
        {"\"exp\":1e300", "claim exp malformed"},
        {"\"exp\":1864750000,\"nbf\":\"0\"", "claim nbf malformed"},
        {"\"exp\":1864750000,\"iat\":[0]", "claim iat malformed"},
        {"\"exp\":1864750000,\"sub\":7", "claim sub malformed"},
        {"\"exp\":1864750000,\"sub\":null", "claim sub malformed"},
        {"\"exp\":1864750000,\"sports\":\"basketball_nba\"", "claim sports malformed"},
        {"\"exp\":1864750000,\"sports\":[\"a\",1]", "claim sports malformed"},
        {"\"exp\":1864750000,\"sports\":[\"a\",\"\"]", "claim sports malformed"},
        {"\"exp\":1864750000,\"sports\":[[\"a\"]]", "claim sports malformed"},
        {"\"exp\":1864750000,\"sports\":null", "claim sports malformed"},
        {"\"exp\":1864750000,\"books\":{\"a\":1}", "claim books malformed"},
        {"\"exp\":1864750000,\"books\":[null]", "claim books malformed"},
        {"\"exp\":1864750000,\"markets\":true", "claim markets malformed"},
        {"\"exp\":1864750000,\"opportunities\":1", "claim opportunities malformed"},
        {"\"exp\":1864750000,\"opportunities\":\"true\"", "claim opportunities malformed"},
        {"\"exp\":1864750000,\"opportunities\":null", "claim opportunities malformed"},
        {"\"exp\":1864750000,\"fields\":\"partial\"", "claim fields malformed"},
        {"\"exp\":1864750000,\"fields\":\"Full\"", "claim fields malformed"},
        {"\"exp\":1864750000,\"fields\":1", "claim fields malformed"},
        {"\"exp\":1864750000,\"max_connections\":0", "claim max_connections malformed"},
        {"\"exp\":1864750000,\"max_connections\":-1", "claim max_connections malformed"},
        {"\"exp\":1864750000,\"max_connections\":1.5", "claim max_connections malformed"},
        {"\"exp\":1864750000,\"max_connections\":\"3\"", "claim max_connections malformed"},
        {"\"exp\":1864750000,\"max_connections\":1e100", "claim max_connections malformed"},
        {"\"exp\":1864750000,\"max_connections\":true", "claim max_connections malformed"},
    };
    char payload[512];

    setup();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(payload, sizeof(payload), "{%s}", bad[i].claims);
        /* Made by hand: libjwt refuses to write some of these. */
        CHECK_REFUSED(&hs, craft_hs("{\"alg\":\"HS256\"}", payload, secret, strlen(secret)),
                      bad[i].reason);
    }
    CHECK_OK(&hs, make_hs_exp("\"max_connections\":1"));
    CHECK_OK(&hs, make_hs_exp("\"max_connections\":1000000"));
    CHECK_OK(&hs, make_hs_exp("\"sub\":\"\""));
}

/* A JSON array of n strings "v<i>" padded with 'x' to len bytes each. */
static char *
values_json(const char *claim, int n, size_t len)
{
    char *js = malloc((size_t)n * (len + 3) + 64), *p;

    p = js + sprintf(js, "\"%s\":[", claim);
    for (int i = 0; i < n; i++) {
        int w = sprintf(p, "%s\"v%d", i ? "," : "", i);
        size_t have = (size_t)w - (i ? 2 : 1);
        p += w;
        memset(p, 'x', len - have);
        p += len - have;
        *p++ = '"';
    }
    strcpy(p, "]");
    return js;
}

static void
test_limits(void)
{
    static const char *const lists[] = {"sports", "books", "markets"};
    struct authtoken_claims cl;
    char why[128], *vals, *tok, sub[300];

    setup();
    for (size_t i = 0; i < 3; i++) {
        char bad[64];
        snprintf(bad, sizeof(bad), "claim %s malformed", lists[i]);
        /* AUTHTOKEN_MAX_VALUES values are in; so are values of
         * AUTHTOKEN_MAX_VALUE_LEN bytes.  (Not both at once: that token
         * would be over AUTHTOKEN_MAX_TOKEN.) */
        vals = values_json(lists[i], AUTHTOKEN_MAX_VALUES, 8);
        tok = make_hs_exp(vals);
        CHECK_INT(verify_at(&hs, tok, NOW, &cl, why, sizeof(why)), 0);
        {
            int n = i == 0 ? cl.nsports : i == 1 ? cl.nbooks : cl.nmarkets;
            char **v = i == 0 ? cl.sports : i == 1 ? cl.books : cl.markets;
            CHECK_INT(n, AUTHTOKEN_MAX_VALUES);
            CHECK(v != NULL && v[AUTHTOKEN_MAX_VALUES] == NULL);
            CHECK_STR(v[AUTHTOKEN_MAX_VALUES - 1], "v63xxxxx");
        }
        authtoken_claims_free(&cl);
        free(tok);
        free(vals);
        vals = values_json(lists[i], 4, AUTHTOKEN_MAX_VALUE_LEN);
        tok = make_hs_exp(vals);
        CHECK_INT(verify_at(&hs, tok, NOW, &cl, why, sizeof(why)), 0);
        {
            char **v = i == 0 ? cl.sports : i == 1 ? cl.books : cl.markets;
            CHECK(v != NULL && v[3] != NULL && strlen(v[3]) == AUTHTOKEN_MAX_VALUE_LEN);
        }
        authtoken_claims_free(&cl);
        free(tok);
        free(vals);
        /* One value more, or one byte more: out. */
        vals = values_json(lists[i], AUTHTOKEN_MAX_VALUES + 1, 4);
        CHECK_REFUSED(&hs, make_hs_exp(vals), bad);
        free(vals);
        vals = values_json(lists[i], 2, AUTHTOKEN_MAX_VALUE_LEN + 1);
        CHECK_REFUSED(&hs, make_hs_exp(vals), bad);
        free(vals);
    }
    /* sub: 255 bytes fit (with the NUL) in claims.sub, 256 do not. */
    memset(sub, 0, sizeof(sub));
    memcpy(sub, "\"sub\":\"", 7);
    memset(sub + 7, 's', 255);
    sub[7 + 255] = '"';
    tok = make_hs_exp(sub);
    CHECK_INT(verify_at(&hs, tok, NOW, &cl, why, sizeof(why)), 0);
    CHECK_INT(strlen(cl.sub), 255);
    authtoken_claims_free(&cl);
    free(tok);
    memset(sub + 7, 's', 256);
    sub[7 + 256] = '"';
    CHECK_REFUSED(&hs, make_hs_exp(sub), "claim sub malformed");
}

/* ---- keys -------------------------------------------------------------------------- */

static int
load_text(struct authtoken_conf *c, jwt_alg_t alg, const char *name, const void *text, size_t len,
          char *err, size_t errlen)
{
    char path[128];

    write_file(name, text, len);
    path_of(path, sizeof(path), name);
    c->alg = alg;
    return authtoken_load_key(c, path, err, errlen);
}

static void
test_load_key(void)
{
    struct authtoken_conf c;
    char err[256], path[128], buf[256];

    setup();
    memset(&c, 0, sizeof(c));
    /* A secret as `echo` writes it: the newline is not part of it. */
    snprintf(buf, sizeof(buf), "%s\n", secret);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "key", buf, strlen(buf), err, sizeof(err)), 0);
    CHECK_INT(c.key_len, strlen(secret));
    CHECK(memcmp(c.key, secret, c.key_len) == 0);
    CHECK_OK(&c, make_hs_exp(""));
    snprintf(buf, sizeof(buf), "%s\r\n", secret);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "crlf", buf, strlen(buf), err, sizeof(err)), 0);
    CHECK_INT(c.key_len, strlen(secret));
    /* Only one newline goes: a secret may end in whitespace of its own. */
    snprintf(buf, sizeof(buf), "%s\n\n", secret);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "key", buf, strlen(buf), err, sizeof(err)), 0);
    CHECK_INT(c.key_len, strlen(secret) + 1);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "nonl", secret, strlen(secret), err, sizeof(err)), 0);
    CHECK_INT(c.key_len, strlen(secret));
    /* Refused, each with a reason, the key loaded before kept. */
    path_of(path, sizeof(path), "does-not-exist");
    CHECK_INT(authtoken_load_key(&c, path, err, sizeof(err)), -1);
    CHECK(strstr(err, "does-not-exist") != NULL && strstr(err, "No such file") != NULL);
    CHECK_INT(c.key_len, strlen(secret));
    CHECK_INT(authtoken_load_key(&c, tmpdir, err, sizeof(err)), -1); /* a directory */
    CHECK(strstr(err, "Is a directory") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "empty", "", 0, err, sizeof(err)), -1);
    CHECK(strstr(err, "empty") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "empty", "\n", 1, err, sizeof(err)), -1);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "short", "0123456789012345678901234567890\n", 32, err,
                        sizeof(err)),
              -1);
    CHECK(strstr(err, "at least 32") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_HS256, "pem-hs", rsa_pub, rsa_pub_len, err, sizeof(err)), -1);
    CHECK(strstr(err, "PEM") != NULL);
    CHECK_INT(c.key_len, strlen(secret));
    CHECK(memcmp(c.key, secret, c.key_len) == 0);
    c.alg = JWT_ALG_HS384;
    CHECK_INT(authtoken_load_key(&c, path, err, sizeof(err)), -1);
    c.alg = JWT_ALG_NONE;
    CHECK_INT(authtoken_load_key(&c, path, err, sizeof(err)), -1);
    authtoken_conf_free(&c);
    CHECK(c.key == NULL && c.key_len == 0);
    authtoken_conf_free(&c); /* twice is harmless */

    /* Public keys: the right kind only. */
    CHECK_INT(load_text(&c, JWT_ALG_RS256, "key", rsa_pub, rsa_pub_len, err, sizeof(err)), 0);
    CHECK_INT(c.key_len, rsa_pub_len);
    CHECK_INT(load_text(&c, JWT_ALG_ES256, "key", ec_pub, ec_pub_len, err, sizeof(err)), 0);
    CHECK_INT(load_text(&c, JWT_ALG_ES256, "rsa-as-ec", rsa_pub, rsa_pub_len, err, sizeof(err)),
              -1);
    CHECK(strstr(err, "not an EC P-256 public key") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_RS256, "key", ec_pub, ec_pub_len, err, sizeof(err)), -1);
    CHECK(strstr(err, "not an RSA public key") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_ES256, "key", ec384_pub, ec384_pub_len, err, sizeof(err)), -1);
    CHECK_INT(load_text(&c, JWT_ALG_RS256, "key", rsa_priv, rsa_priv_len, err, sizeof(err)), -1);
    CHECK(strstr(err, "private key") != NULL);
    CHECK_INT(load_text(&c, JWT_ALG_RS256, "garbage", secret, strlen(secret), err, sizeof(err)),
              -1);
    {
        /* A public key next to its private key, or two public keys. */
        char *both = malloc(rsa_pub_len + rsa_priv_len);
        memcpy(both, rsa_pub, rsa_pub_len);
        memcpy(both + rsa_pub_len, rsa_priv, rsa_priv_len);
        CHECK_INT(load_text(&c, JWT_ALG_RS256, "both", both, rsa_pub_len + rsa_priv_len, err,
                            sizeof(err)),
                  -1);
        memcpy(both + rsa_pub_len, rsa_pub, rsa_pub_len);
        CHECK_INT(load_text(&c, JWT_ALG_RS256, "two", both, 2 * rsa_pub_len, err, sizeof(err)), -1);
        free(both);
    }
    {
        /* Another kind of block before the key. */
        static const char cert[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        size_t n = sizeof(cert) - 1 + rsa_pub_len;
        char *both = malloc(n);
        memcpy(both, cert, sizeof(cert) - 1);
        memcpy(both + sizeof(cert) - 1, rsa_pub, rsa_pub_len);
        CHECK_INT(load_text(&c, JWT_ALG_RS256, "both", both, n, err, sizeof(err)), -1);
        CHECK(strstr(err, "not exactly one PEM public key block") != NULL);
        free(both);
    }
    /* A body cut short is not a key either. */
    {
        char cut[4096];
        const char *end = strstr((const char *)rsa_pub, "-----END");
        size_t head = (size_t)(end - (const char *)rsa_pub) - 40;
        memcpy(cut, rsa_pub, head);
        strcpy(cut + head, "\n-----END PUBLIC KEY-----\n");
        CHECK_INT(load_text(&c, JWT_ALG_RS256, "key", cut, strlen(cut), err, sizeof(err)), -1);
    }
    /* The last good load (the P-256 key) is still there. */
    CHECK_INT(c.key_len, ec_pub_len);
    c.alg = JWT_ALG_ES256;
    CHECK_OK(&c, make(JWT_ALG_ES256, ec_priv, ec_priv_len, "{\"exp\":1864750000}"));
    authtoken_conf_free(&c);
}

TEST_MAIN(TEST(test_hs256_valid), TEST(test_rs256_es256_valid), TEST(test_defaults),
          TEST(test_expiry), TEST(test_not_before), TEST(test_leeway), TEST(test_bad_signature),
          TEST(test_alg_none), TEST(test_alg_confusion), TEST(test_header_form),
          TEST(test_malformed), TEST(test_reason_buffer), TEST(test_audience), TEST(test_issuer),
          TEST(test_claim_types), TEST(test_limits), TEST(test_load_key))
