#include "hash.h"
#include "log.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

/* Process-private: the same bytes in every child only because the supervisor
 * set them before forking (see hash.h). */
static unsigned char hash_key[HASH_KEY_LEN];
static int hash_keyed;

/* SipHash reads the key and the message as little-endian 64-bit words,
 * whatever the host's byte order: the test vectors depend on it. */
static uint64_t
hash_le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t
hash_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

struct hash_state {
    uint64_t v0, v1, v2, v3;
};

/* SipRound as the paper draws it: two add-rotate-xor halves side by side,
 * then the 32-bit rotations that mix the halves. */
static void
hash_sipround(struct hash_state *s)
{
    s->v0 += s->v1;
    s->v2 += s->v3;
    s->v1 = hash_rotl(s->v1, 13);
    s->v3 = hash_rotl(s->v3, 16);
    s->v1 ^= s->v0;
    s->v3 ^= s->v2;
    s->v0 = hash_rotl(s->v0, 32);
    s->v2 += s->v1;
    s->v0 += s->v3;
    s->v1 = hash_rotl(s->v1, 17);
    s->v3 = hash_rotl(s->v3, 21);
    s->v1 ^= s->v2;
    s->v3 ^= s->v0;
    s->v2 = hash_rotl(s->v2, 32);
}

/* c = 2 rounds per message word. */
static void
hash_compress(struct hash_state *s, uint64_t m)
{
    s->v3 ^= m;
    hash_sipround(s);
    hash_sipround(s);
    s->v0 ^= m;
}

uint64_t
hash_siphash24(const unsigned char key[HASH_KEY_LEN], const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t k0 = hash_le64(key), k1 = hash_le64(key + 8);
    /* The initial constants spell "somepseudorandomlygeneratedbytes". */
    struct hash_state s = {k0 ^ 0x736f6d6570736575ULL, k1 ^ 0x646f72616e646f6dULL,
                           k0 ^ 0x6c7967656e657261ULL, k1 ^ 0x7465646279746573ULL};
    size_t whole = len - len % 8;
    uint64_t last;

    for (size_t i = 0; i < whole; i += 8)
        hash_compress(&s, hash_le64(p + i));
    /* The last word: the 0..7 remaining bytes, and the length modulo 256 in
     * its top byte, so messages that differ only in trailing zero bytes
     * still differ. */
    last = (uint64_t)(len & 0xff) << 56;
    for (size_t i = 0; i < len % 8; i++)
        last |= (uint64_t)p[whole + i] << (8 * i);
    hash_compress(&s, last);
    /* d = 4 finalization rounds. */
    s.v2 ^= 0xff;
    for (int i = 0; i < 4; i++)
        hash_sipround(&s);
    return s.v0 ^ s.v1 ^ s.v2 ^ s.v3;
}

int
hash_init(void)
{
    unsigned char key[HASH_KEY_LEN];
    size_t got = 0;

    if (hash_keyed)
        return 0;
    while (got < sizeof(key)) {
        /* Flags 0: the urandom source, blocking only until the pool is
         * first initialised; a signal may interrupt that wait. */
        ssize_t n = getrandom(key + got, sizeof(key) - got, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        got += (size_t)n;
    }
    hash_set_key(key);
    return 0;
}

void
hash_set_key(const unsigned char key[HASH_KEY_LEN])
{
    memcpy(hash_key, key, HASH_KEY_LEN);
    hash_keyed = 1;
}

uint64_t
hash_bytes(const void *data, size_t len)
{
    if (!hash_keyed) {
        int rc = hash_init();
        if (rc != 0)
            LOG_ERROR("getrandom(%d bytes) failed: %s", HASH_KEY_LEN, strerror(errno));
        /* Hashing with a known key would bring back the flooding attack
         * this module exists to stop: stop instead. */
        WSB_ASSERT(rc == 0);
    }
    return hash_siphash24(hash_key, data, len);
}
