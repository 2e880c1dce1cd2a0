/*
 * test_hash: SipHash-2-4 against the published test vectors, and the
 * process key: drawn on first use, kept by hash_init, replaced by
 * hash_set_key, inherited across fork, fresh in each new process.
 *
 * The vectors are those of the SipHash paper (Aumasson and Bernstein,
 * "SipHash: a fast short-input PRF", 2012, appendix A) and of its reference
 * implementation (vectors_sip64): key 00 01 .. 0f, message 00 01 .. (n-1)
 * for n = 0..63, output read as a little-endian 64-bit number.
 *
 * The first case must run first: it checks what happens before any key is
 * set, in this process and in children forked from it.
 */
#include "common/hash.h"

#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

static const uint64_t siphash24_vectors[64] = {
    0x726fdb47dd0e0e31ULL, 0x74f839c593dc67fdULL, 0x0d6c8009d9a94f5aULL, 0x85676696d7fb7e2dULL,
    0xcf2794e0277187b7ULL, 0x18765564cd99a68dULL, 0xcbc9466e58fee3ceULL, 0xab0200f58b01d137ULL,
    0x93f5f5799a932462ULL, 0x9e0082df0ba9e4b0ULL, 0x7a5dbbc594ddb9f3ULL, 0xf4b32f46226bada7ULL,
    0x751e8fbc860ee5fbULL, 0x14ea5627c0843d90ULL, 0xf723ca908e7af2eeULL, 0xa129ca6149be45e5ULL,
    0x3f2acc7f57c29bdbULL, 0x699ae9f52cbe4794ULL, 0x4bc1b3f0968dd39cULL, 0xbb6dc91da77961bdULL,
    0xbed65cf21aa2ee98ULL, 0xd0f2cbb02e3b67c7ULL, 0x93536795e3a33e88ULL, 0xa80c038ccd5ccec8ULL,
    0xb8ad50c6f649af94ULL, 0xbce192de8a85b8eaULL, 0x17d835b85bbb15f3ULL, 0x2f2e6163076bcfadULL,
    0xde4daaaca71dc9a5ULL, 0xa6a2506687956571ULL, 0xad87a3535c49ef28ULL, 0x32d892fad841c342ULL,
    0x7127512f72f27cceULL, 0xa7f32346f95978e3ULL, 0x12e0b01abb051238ULL, 0x15e034d40fa197aeULL,
    0x314dffbe0815a3b4ULL, 0x027990f029623981ULL, 0xcadcd4e59ef40c4dULL, 0x9abfd8766a33735cULL,
    0x0e3ea96b5304a7d0ULL, 0xad0c42d6fc585992ULL, 0x187306c89bc215a9ULL, 0xd4a60abcf3792b95ULL,
    0xf935451de4f21df2ULL, 0xa9538f0419755787ULL, 0xdb9acddff56ca510ULL, 0xd06c98cd5c0975ebULL,
    0xe612a3cb9ecba951ULL, 0xc766e62cfcadaf96ULL, 0xee64435a9752fe72ULL, 0xa192d576b245165aULL,
    0x0a8787bf8ecb74b2ULL, 0x81b3e73d20b49b6fULL, 0x7fa8220ba3b2eceaULL, 0x245731c13ca42499ULL,
    0xb78dbfaf3a8d83bdULL, 0xea1ad565322a1a0bULL, 0x60e61c23a3795013ULL, 0x6606d7e446282b93ULL,
    0x6ca4ecb15c5f91e1ULL, 0x9f626da15c9625f3ULL, 0xe51b38608ef25f57ULL, 0x958a324ceb064572ULL,
};

static unsigned char ref_key[HASH_KEY_LEN];
static unsigned char ref_msg[64];

static void
ref_init(void)
{
    for (int i = 0; i < HASH_KEY_LEN; i++)
        ref_key[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        ref_msg[i] = (unsigned char)i;
}

#define CHECK_U64(a, b)                                                                            \
    do {                                                                                           \
        uint64_t test_a_ = (a), test_b_ = (b);                                                     \
        if (test_a_ != test_b_) {                                                                  \
            printf("#   %s:%d: %s == %s failed: %016llx != %016llx\n", __FILE__, __LINE__, #a, #b, \
                   (unsigned long long)test_a_, (unsigned long long)test_b_);                      \
            test_failed_checks++;                                                                  \
        }                                                                                          \
    } while (0)

/* hash_bytes("x") in a child process, after hash_init there if init. */
static uint64_t
child_hash(int init)
{
    int fds[2];
    uint64_t h = 0;
    pid_t pid;
    int status;

    if (pipe(fds) != 0)
        return 0;
    pid = fork();
    if (pid == 0) {
        uint64_t v;
        close(fds[0]);
        if (init && hash_init() != 0)
            _exit(2);
        v = hash_bytes("x", 1);
        _exit(write(fds[1], &v, sizeof(v)) == (ssize_t)sizeof(v) ? 0 : 1);
    }
    close(fds[1]);
    if (pid < 0 || read(fds[0], &h, sizeof(h)) != (ssize_t)sizeof(h))
        h = 0;
    close(fds[0]);
    if (pid > 0 &&
        (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0))
        h = 0;
    return h;
}

/* Runs first: no key has been set in this process yet. */
static void
test_hash_before_init(void)
{
    static const char msg[] = "odds.normalized.nba";
    static const unsigned char zero[HASH_KEY_LEN];
    uint64_t a = child_hash(1), b = child_hash(1), h;

    /* Two processes that start without a key (two instances of the service)
     * each draw their own: equal values would mean a fixed key.  Either
     * child failing shows as 0. */
    CHECK(a != 0 && b != 0);
    CHECK(a != b);
    h = hash_bytes(msg, sizeof(msg) - 1);

    /* A key was drawn on first use and is kept: the same input hashes the
     * same, and hash_init does not replace the key. */
    CHECK_U64(hash_bytes(msg, sizeof(msg) - 1), h);
    CHECK_INT(hash_init(), 0);
    CHECK_U64(hash_bytes(msg, sizeof(msg) - 1), h);
    /* Not the all-zero key a forgotten initialisation would leave. */
    CHECK(h != hash_siphash24(zero, msg, sizeof(msg) - 1));
}

static void
test_reference_vectors(void)
{
    ref_init();
    for (size_t n = 0; n < 64; n++) {
        uint64_t got = hash_siphash24(ref_key, ref_msg, n);
        if (got != siphash24_vectors[n]) {
            printf("#   message of %zu bytes: %016llx, want %016llx\n", n, (unsigned long long)got,
                   (unsigned long long)siphash24_vectors[n]);
            test_failed_checks++;
        }
    }
}

static void
test_paper_example(void)
{
    /* Appendix A of the paper spells this one out: 15 bytes, a partial
     * last word. */
    ref_init();
    CHECK_U64(hash_siphash24(ref_key, ref_msg, 15), 0xa129ca6149be45e5ULL);
    /* The empty message: only the length word. */
    CHECK_U64(hash_siphash24(ref_key, NULL, 0), 0x726fdb47dd0e0e31ULL);
}

static void
test_set_key(void)
{
    unsigned char other[HASH_KEY_LEN];

    ref_init();
    hash_set_key(ref_key);
    for (size_t n = 0; n < 64; n++)
        CHECK_U64(hash_bytes(ref_msg, n), siphash24_vectors[n]);
    /* hash_init keeps a key that was set. */
    CHECK_INT(hash_init(), 0);
    CHECK_U64(hash_bytes(ref_msg, 15), siphash24_vectors[15]);
    /* Another key, other values: the hash depends on the key. */
    memcpy(other, ref_key, sizeof(other));
    other[HASH_KEY_LEN - 1] ^= 1;
    hash_set_key(other);
    for (size_t n = 0; n < 64; n++)
        CHECK(hash_bytes(ref_msg, n) != siphash24_vectors[n]);
    CHECK_U64(hash_bytes(ref_msg, 8), hash_siphash24(other, ref_msg, 8));
}

static void
test_unaligned_input(void)
{
    /* Message words are read byte by byte: an odd address gives the same
     * value as an aligned copy. */
    unsigned char buf[72];

    ref_init();
    for (size_t off = 1; off < 8; off++) {
        memcpy(buf + off, ref_msg, 63);
        CHECK_U64(hash_siphash24(ref_key, buf + off, 63), siphash24_vectors[63]);
    }
}

static void
test_length_in_last_word(void)
{
    /* Trailing zero bytes change the value (the length is hashed), and so
     * does every single bit. */
    unsigned char a[17] = {0};

    ref_init();
    for (size_t n = 0; n < 16; n++)
        CHECK(hash_siphash24(ref_key, a, n) != hash_siphash24(ref_key, a, n + 1));
    for (size_t bit = 0; bit < 8 * 16; bit++) {
        unsigned char b[16] = {0};
        b[bit / 8] = (unsigned char)(1u << (bit % 8));
        CHECK(hash_siphash24(ref_key, a, 16) != hash_siphash24(ref_key, b, 16));
    }
}

static void
test_key_inherited_across_fork(void)
{
    /* What the supervisor relies on: a key set before fork is the child's
     * key, and the child's hash_init keeps it. */
    uint64_t mine;

    ref_init();
    hash_set_key(ref_key);
    mine = hash_bytes("x", 1);
    CHECK_U64(child_hash(0), mine);
    CHECK_U64(child_hash(1), mine);
}

TEST_MAIN(TEST(test_hash_before_init), TEST(test_reference_vectors), TEST(test_paper_example),
          TEST(test_set_key), TEST(test_unaligned_input), TEST(test_length_in_last_word),
          TEST(test_key_inherited_across_fork))
