#include "addrtab.h"
#include "hash.h"
#include "log.h"

#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static_assert(sizeof(struct addrtab_entry) == 32, "entries tile pages and cache lines");
static_assert(ATOMIC_INT_LOCK_FREE == 2 && ATOMIC_LLONG_LOCK_FREE == 2,
              "entries are shared between processes: lock-free atomics only");
static_assert((ADDRTAB_MIN_SLOTS & (ADDRTAB_MIN_SLOTS - 1)) == 0, "slot counts are powers of two");

/* Reads of one entry before it is given up on (addrtab_count); the first
 * ADDRTAB_SPINS retry at once, the rest yield the CPU to the writer, which
 * may be descheduled mid-write on a busy machine. */
#define ADDRTAB_READ_TRIES 200
#define ADDRTAB_SPINS      20

/* ---- keys ------------------------------------------------------------------ */

static const unsigned char addrtab_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int
addrtab_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint32_t ipv6_prefix,
                          struct addrtab_key *out)
{
    memset(out, 0, sizeof(*out));
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        memcpy(out->b, addrtab_v4mapped, sizeof(addrtab_v4mapped));
        memcpy(out->b + 12, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        memcpy(out->b, &in6->sin6_addr, ADDRTAB_KEY_LEN);
        /* An IPv4 client of a dual-stack listener is that IPv4 client: the
         * key is already its IPv4 form, and must not be masked. */
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
            return 0;
        if (ipv6_prefix > 128)
            ipv6_prefix = 128;
        for (uint32_t bit = 0; bit < ADDRTAB_KEY_LEN * 8; bit += 8) {
            if (bit + 8 <= ipv6_prefix)
                continue;
            out->b[bit / 8] &=
                bit >= ipv6_prefix ? 0 : (unsigned char)(0xff00 >> (ipv6_prefix - bit));
        }
        return 0;
    }
    return -1;
}

int
addrtab_key_is_ipv4(const struct addrtab_key *k)
{
    /* A masked IPv6 prefix never reads as ::ffff:0:0/96: mapped addresses
     * are folded before masking, and any prefix shorter than 96 bits clears
     * the ffff. */
    return memcmp(k->b, addrtab_v4mapped, sizeof(addrtab_v4mapped)) == 0;
}

void
addrtab_key_format(const struct addrtab_key *k, uint32_t ipv6_prefix, char *buf, size_t size)
{
    char text[INET6_ADDRSTRLEN];

    if (size == 0)
        return;
    if (addrtab_key_is_ipv4(k)) {
        if (inet_ntop(AF_INET, k->b + 12, text, sizeof(text)) == NULL)
            snprintf(text, sizeof(text), "?");
        snprintf(buf, size, "%s", text);
        return;
    }
    if (inet_ntop(AF_INET6, k->b, text, sizeof(text)) == NULL)
        snprintf(text, sizeof(text), "?");
    if (ipv6_prefix >= 128)
        snprintf(buf, size, "%s", text);
    else
        snprintf(buf, size, "%s/%u", text, ipv6_prefix);
}

/* ---- sizing ---------------------------------------------------------------- */

uint32_t
addrtab_slots_for(uint32_t max_addresses)
{
    uint64_t want = 2 * (uint64_t)max_addresses;
    uint32_t n = ADDRTAB_MIN_SLOTS;

    while (n < want && n < ADDRTAB_MAX_SLOTS)
        n *= 2;
    return n;
}

size_t
addrtab_bytes(uint32_t nslots)
{
    return (size_t)nslots * sizeof(struct addrtab_entry);
}

/* ---- entries ---------------------------------------------------------------- */

/* What the table's writer keeps of an entry between its own loads and its
 * next write, or what a reader copied out. */
struct addrtab_copy {
    uint32_t seq;
    uint32_t counts[ADDRTAB_NCOUNTERS];
    uint64_t key[2];
};

static void
addrtab_key_words(const struct addrtab_key *k, uint64_t key[2])
{
    memcpy(key, k->b, ADDRTAB_KEY_LEN);
}

static int
addrtab_copy_is_zero(const struct addrtab_copy *c)
{
    for (int i = 0; i < ADDRTAB_NCOUNTERS; i++) {
        if (c->counts[i] != 0)
            return 0;
    }
    return 1;
}

/* The writer's own view of an entry: no other process writes it, so plain
 * relaxed loads are what it last stored. */
static void
addrtab_load_own(struct addrtab_entry *e, struct addrtab_copy *c)
{
    c->seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    for (int i = 0; i < ADDRTAB_NCOUNTERS; i++)
        c->counts[i] = atomic_load_explicit(&e->counts[i], memory_order_relaxed);
    c->key[0] = atomic_load_explicit(&e->key[0], memory_order_relaxed);
    c->key[1] = atomic_load_explicit(&e->key[1], memory_order_relaxed);
}

/*
 * Writer side of the seqlock: store c (its seq field says only whether the
 * entry is in use) as the entry's next generation.
 *   1. seq odd (relaxed), then a release fence: the fence orders that store
 *      before every data store of step 2, so a reader whose relaxed loads
 *      see any of those stores and that then issues its acquire fence sees
 *      the odd seq (or later) at its second load (pairs with the acquire
 *      fence in addrtab_read).
 *   2. The data, relaxed.
 *   3. seq even, one generation on, with release: a reader whose first load
 *      (acquire) returns this value sees all of step 2 (pairs with that
 *      acquire load).
 */
static void
addrtab_store(struct addrtab_entry *e, const struct addrtab_copy *c)
{
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    uint32_t next = ((seq & ~(ADDRTAB_SEQ_WRITING | ADDRTAB_SEQ_USED)) + ADDRTAB_SEQ_GEN) |
                    (c->seq & ADDRTAB_SEQ_USED);

    atomic_store_explicit(&e->seq, seq | ADDRTAB_SEQ_WRITING, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    for (int i = 0; i < ADDRTAB_NCOUNTERS; i++)
        atomic_store_explicit(&e->counts[i], c->counts[i], memory_order_relaxed);
    atomic_store_explicit(&e->key[0], c->key[0], memory_order_relaxed);
    atomic_store_explicit(&e->key[1], c->key[1], memory_order_relaxed);
    atomic_store_explicit(&e->seq, next, memory_order_release);
}

/*
 * Reader side: a consistent copy of e into c.  Returns 1, or 0 if every try
 * found it mid-write.
 *   1. seq, acquire (pairs with step 3 of addrtab_store); odd: a write is
 *      under way, try again.
 *   2. The data, relaxed.
 *   3. An acquire fence (pairs with the release fence of step 1 of
 *      addrtab_store), then seq again, relaxed: unchanged means no write
 *      began before the copy was complete.
 */
static int
addrtab_read(const struct addrtab_entry *ce, struct addrtab_copy *c)
{
    /* Atomic loads take non-const pointers in C11; nothing is written. */
    struct addrtab_entry *e = (struct addrtab_entry *)ce;

    for (int tries = 0; tries < ADDRTAB_READ_TRIES; tries++) {
        uint32_t seq = atomic_load_explicit(&e->seq, memory_order_acquire);

        if (seq & ADDRTAB_SEQ_WRITING) {
            if (tries >= ADDRTAB_SPINS)
                sched_yield();
            continue;
        }
        for (int i = 0; i < ADDRTAB_NCOUNTERS; i++)
            c->counts[i] = atomic_load_explicit(&e->counts[i], memory_order_relaxed);
        c->key[0] = atomic_load_explicit(&e->key[0], memory_order_relaxed);
        c->key[1] = atomic_load_explicit(&e->key[1], memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) == seq) {
            c->seq = seq;
            return 1;
        }
    }
    return 0;
}

static uint32_t
addrtab_home(const struct addrtab *t, const struct addrtab_key *k)
{
    return (uint32_t)hash_bytes(k->b, ADDRTAB_KEY_LEN) & (t->nslots - 1);
}

static uint32_t
addrtab_window(const struct addrtab *t)
{
    return t->nslots < ADDRTAB_WINDOW ? t->nslots : ADDRTAB_WINDOW;
}

/*
 * The entry at i, whose address's home slot is h, has just fallen to all
 * zeros.  A search for an address walks from its home slot to its entry
 * and stops at a free slot, so an empty entry must stay in use (reusable,
 * not free) exactly while it lies on the path of some live address: from
 * that address's home slot up to its entry.  i's path [h, i] is where that
 * may just have changed; the addresses whose paths can cross it lie in the
 * run of slots in use that follows, no further than i + ADDRTAB_WINDOW - 1.
 * Walking back from the end of that run to h, `cover` is how many slots
 * further back the paths of the live entries passed so far reach: an
 * empty entry of [h, i] with none is freed.  So an empty entry exists only
 * where a search needs it, the table is all free once every address has
 * left, and searches stay as short as the live addresses make them, however
 * many came and went.  Freeing an entry changes no path, so nothing before
 * h needs a second look.
 */
static void
addrtab_trim(struct addrtab *t, uint32_t h, uint32_t i)
{
    uint32_t mask = t->nslots - 1, end = i, cover = 0, span = (i - h) & mask;
    struct addrtab_copy c;

    for (uint32_t n = 1; n < ADDRTAB_WINDOW; n++) {
        addrtab_load_own(&t->slots[(i + n) & mask], &c);
        if (!(c.seq & ADDRTAB_SEQ_USED))
            break;
        end = (i + n) & mask;
    }
    for (uint32_t j = end;; j = (j - 1) & mask) {
        addrtab_load_own(&t->slots[j], &c);
        if (c.seq & ADDRTAB_SEQ_USED) {
            if (addrtab_copy_is_zero(&c)) {
                /* only in [h, i]: beyond i, paths from past `end` may
                 * cross, and nothing changed there */
                if (cover == 0 && ((j - h) & mask) <= span) {
                    memset(&c, 0, sizeof(c));
                    addrtab_store(&t->slots[j], &c);
                }
            } else {
                /* its path: the `back` slots before j, from its home */
                struct addrtab_key k;
                uint32_t back;
                memcpy(k.b, c.key, ADDRTAB_KEY_LEN);
                back = (j - addrtab_home(t, &k)) & mask;
                if (back + 1 > cover)
                    cover = back + 1; /* +1: counts the step back below */
            }
        }
        if (j == h)
            break;
        if (cover > 0)
            cover--;
    }
}

int
addrtab_add(struct addrtab *t, const struct addrtab_key *k, enum addrtab_counter which,
            int64_t delta)
{
    uint32_t mask = t->nslots - 1, home = addrtab_home(t, k), window = addrtab_window(t);
    int64_t found = -1, usable = -1;
    struct addrtab_copy c;
    uint64_t key[2];

    WSB_ASSERT((unsigned)which < ADDRTAB_NCOUNTERS);
    WSB_ASSERT(t->nslots >= ADDRTAB_MIN_SLOTS); /* the window fits twice (addrtab_trim) */
    if (delta == 0)
        return 0;
    addrtab_key_words(k, key);
    for (uint32_t n = 0; n < window; n++) {
        uint32_t i = (home + n) & mask;
        addrtab_load_own(&t->slots[i], &c);
        if (!(c.seq & ADDRTAB_SEQ_USED)) {
            if (usable < 0)
                usable = i;
            break; /* nothing of k's lies beyond a free slot */
        }
        if (c.key[0] == key[0] && c.key[1] == key[1]) {
            found = i;
            break;
        }
        if (usable < 0 && addrtab_copy_is_zero(&c))
            usable = i;
    }
    if (found >= 0) {
        int64_t v;
        addrtab_load_own(&t->slots[found], &c);
        v = (int64_t)c.counts[which] + delta;
        /* Below 0: a release without its add; above 32 bits: far beyond
         * any limit.  Either way the caller's bookkeeping is broken. */
        WSB_ASSERT(v >= 0 && v <= (int64_t)UINT32_MAX);
        c.counts[which] = (uint32_t)v;
        addrtab_store(&t->slots[found], &c);
        if (addrtab_copy_is_zero(&c))
            addrtab_trim(t, home, (uint32_t)found);
        return 0;
    }
    WSB_ASSERT(delta > 0); /* a release of an address never counted */
    WSB_ASSERT(delta <= (int64_t)UINT32_MAX);
    if (usable < 0) {
        atomic_fetch_add_explicit(t->full, 1, memory_order_relaxed);
        return -1;
    }
    memset(&c, 0, sizeof(c));
    c.seq = ADDRTAB_SEQ_USED;
    c.key[0] = key[0];
    c.key[1] = key[1];
    c.counts[which] = (uint32_t)delta;
    addrtab_store(&t->slots[usable], &c);
    return 0;
}

uint32_t
addrtab_count(const struct addrtab *t, const struct addrtab_key *k, enum addrtab_counter which)
{
    uint32_t mask = t->nslots - 1, home = addrtab_home(t, k), window = addrtab_window(t);
    uint32_t result = 0;
    uint64_t clears, key[2];
    struct addrtab_copy c;

    WSB_ASSERT((unsigned)which < ADDRTAB_NCOUNTERS);
    /* The table-wide counterpart of the entries' seqlock: a clear that runs
     * during the search (the writer died) makes it count 0, even if the
     * writer's successor has started counting again since: a punched page
     * reads as zeros, and a new generation could then meet an old one.
     * Acquire pairs with the release of the clear's last store; the fence
     * below with the release fence of its first. */
    clears = atomic_load_explicit(t->clears, memory_order_acquire);
    if (clears & 1)
        return 0;
    addrtab_key_words(k, key);
    for (uint32_t n = 0; n < window; n++) {
        if (!addrtab_read(&t->slots[(home + n) & mask], &c)) {
            /* Stuck mid-write: a writer descheduled for long, or dead (its
             * table is cleared when it is reaped).  It may be the very
             * entry sought, so the count is unknown: as full, because a
             * limit must never be passed on a guess; the callers refuse
             * for that moment. */
            result = UINT32_MAX;
            break;
        }
        if (!(c.seq & ADDRTAB_SEQ_USED))
            break;
        if (c.key[0] == key[0] && c.key[1] == key[1]) {
            result = c.counts[which];
            break;
        }
    }
    atomic_thread_fence(memory_order_acquire);
    if (atomic_load_explicit(t->clears, memory_order_relaxed) != clears)
        return 0;
    return result;
}

void
addrtab_clear(struct addrtab *t)
{
    uint64_t clears = atomic_load_explicit(t->clears, memory_order_relaxed);
    struct addrtab_copy zero;

    /* Odd, then a release fence: searches that start from here count 0, and
     * one under way sees the change at its end (addrtab_count). */
    atomic_store_explicit(t->clears, clears | 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    /* Shared memory: drop the pages; they read as zeros (every slot free)
     * in every process that maps them, and cost nothing until used again.
     * Anything else (a test's private memory) refuses, and is written. */
    if (madvise(t->slots, addrtab_bytes(t->nslots), MADV_REMOVE) != 0) {
        memset(&zero, 0, sizeof(zero));
        for (uint32_t i = 0; i < t->nslots; i++) {
            if (atomic_load_explicit(&t->slots[i].seq, memory_order_relaxed) != 0)
                addrtab_store(&t->slots[i], &zero);
        }
    }
    atomic_store_explicit(t->clears, (clears | 1) + 1, memory_order_release);
}
