/*
 * addrtab: exact counters per client address, one table per worker, in
 * shared memory.
 *
 * The per-address limits (MAX_CLIENTS_PER_IP, MAX_CONNECTIONS_PER_IP,
 * MAX_FILTER_VALUES_PER_IP) hold across all the workers of an instance.
 * Each worker counts the clients it serves in a table of its own, of which
 * it is the only writer; what an address holds in the instance is the sum
 * of its entries in every worker's table (shm_addr_count).  A worker that
 * dies takes its clients with it, so the supervisor clears its table
 * (addrtab_clear) before a successor is forked.
 *
 * Exact: an entry stores the address it counts, so two addresses never
 * share a count, whatever their hashes (a count-min sketch, the previous
 * design, let any address that shared two buckets with a victim fill the
 * victim's count).  The hash only picks where the search for an address
 * starts: the keyed hash of hash.h, drawn by the supervisor before the first
 * fork, so every worker looks for an address in the same place and nobody
 * outside can choose addresses that crowd one place.
 *
 * What is an address (struct addrtab_key): an IPv4 client is its address;
 * an IPv4-mapped IPv6 peer (an IPv4 client of a dual-stack listener) is the
 * same IPv4 client; an IPv6 client is the first IPV6_PREFIX bits of its
 * address (64 by default: a host is commonly given a whole /64 and can pick
 * any address in it, so counting per /128 would set no limit at all).
 *
 * The table: nslots entries (a power of two, at least twice the addresses
 * a worker can hold at once: addrtab_slots_for), open addressing with
 * linear probing inside a window of ADDRTAB_WINDOW slots from the address's
 * home slot.  Entries never move.  An entry whose counts all fall to 0 is
 * freed, unless a search for a live address has to walk past it; then it
 * keeps its address until the next new address that walks past reuses it,
 * or until no search needs it any more (addrtab_trim).  So searches stay
 * as short as the live addresses make them, however many came and went.
 * If every slot of a new address's window holds another live address,
 * addrtab_add refuses (the caller refuses the connection) and counts it in
 * *full.  At the sizing above that takes ADDRTAB_WINDOW live addresses in a
 * row in a table at most half full: practically never, and never for an
 * address already counted.
 *
 * Across processes: one writer per table, readers in every worker.  Each
 * entry carries a sequence counter (seqlock, as in linux
 * include/linux/seqlock.h, with C11 fences as Boehm describes in "Can
 * seqlocks get along with programming language memory models?"): the
 * writer makes it odd, writes the entry, makes it even one generation on;
 * a reader copies the entry between two loads of the counter and keeps the
 * copy only if both loads are equal and even.  A reader never sees an
 * entry half written (an address with another's count).  A count is exact
 * for each entry at the moment it is read; a sum over workers is not one
 * snapshot of all of them, which, like any check-then-add across processes,
 * can let a limit be passed by the few connections being admitted at the
 * same instant on other workers.
 *
 * I/O-free apart from madvise() in addrtab_clear; no locks; safe across
 * processes as described.
 */
#ifndef WSB_ADDRTAB_H
#define WSB_ADDRTAB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define ADDRTAB_KEY_LEN    16
/* Slots searched for one address from its home slot. */
#define ADDRTAB_WINDOW     128
#define ADDRTAB_MIN_SLOTS  (2 * ADDRTAB_WINDOW)
#define ADDRTAB_MAX_SLOTS  (1u << 30)
/* Room for addrtab_key_format's text: an IPv6 address, "/", 3 digits. */
#define ADDRTAB_KEY_STRLEN 52

/* An IPv4 address as ::ffff:a.b.c.d, an IPv6 address with its bits after
 * the prefix cleared.  Two keys are the same client address iff their
 * bytes are equal. */
struct addrtab_key {
    unsigned char b[ADDRTAB_KEY_LEN];
};

enum addrtab_counter {
    ADDRTAB_CLIENTS,       /* WebSocket clients (MAX_CLIENTS_PER_IP) */
    ADDRTAB_CONNECTIONS,   /* accepted TCP connections (MAX_CONNECTIONS_PER_IP) */
    ADDRTAB_FILTER_VALUES, /* filter values its clients hold (MAX_FILTER_VALUES_PER_IP) */
    ADDRTAB_NCOUNTERS
};

/*
 * One entry, 32 bytes, so that entries never straddle a page (addrtab_clear
 * punches whole pages) or a cache line.  seq: ADDRTAB_SEQ_WRITING while the
 * writer is writing the entry, ADDRTAB_SEQ_USED while it holds an address
 * (its counts may all be 0: reusable), the generation above, one more per
 * write.  Writer: the table's worker (the supervisor once that worker is
 * dead).
 */
#define ADDRTAB_SEQ_WRITING 1u
#define ADDRTAB_SEQ_USED    2u
#define ADDRTAB_SEQ_GEN     4u

struct addrtab_entry {
    _Atomic uint32_t seq;
    _Atomic uint32_t counts[ADDRTAB_NCOUNTERS];
    _Atomic uint64_t key[2]; /* the key's bytes, as two words */
};

/*
 * One worker's table as a process sees it.  Process memory: filled from the
 * shared layout (shm_addrtab) or, in tests, pointing anywhere.  The three
 * pointers are into shared memory.
 */
struct addrtab {
    struct addrtab_entry *slots; /* nslots entries */
    uint32_t nslots;             /* a power of two, >= ADDRTAB_MIN_SLOTS */
    _Atomic uint64_t *full;      /* writer: the table's worker; adds refused, window full */
    _Atomic uint64_t *clears;    /* writer: the supervisor; odd while addrtab_clear runs */
};

/* The key of a peer: AF_INET, or AF_INET6 (IPv4-mapped folded to IPv4, else
 * the first ipv6_prefix bits, 0 to 128).  Returns 0, or -1 for another
 * family or a len too short for its family.  Pure. */
int addrtab_key_from_sockaddr(const struct sockaddr *sa, socklen_t len, uint32_t ipv6_prefix,
                              struct addrtab_key *out);

/* 1 if k is an IPv4 address.  Pure. */
int addrtab_key_is_ipv4(const struct addrtab_key *k);

/* k as text for logs: "192.0.2.1", or "2001:db8:1:2::/64" (the prefix
 * given to addrtab_key_from_sockaddr; plain address at 128).  Always
 * terminated; size >= ADDRTAB_KEY_STRLEN never truncates.  Pure. */
void addrtab_key_format(const struct addrtab_key *k, uint32_t ipv6_prefix, char *buf, size_t size);

/* Slots for a table that must hold max_addresses live addresses: a power of
 * two of at least twice that, within ADDRTAB_MIN_SLOTS..ADDRTAB_MAX_SLOTS.
 * Pure. */
uint32_t addrtab_slots_for(uint32_t max_addresses);

/* Bytes of a table of nslots entries. */
size_t addrtab_bytes(uint32_t nslots);

/* Add delta to counter c of address k.  Writer only (the table's worker).
 * Returns 0, or -1 if k has no entry and none is free in its window (only
 * for delta > 0; counted in *t->full; nothing changed).  A count below 0 or
 * above UINT32_MAX is a bookkeeping bug: assert.  Never blocks. */
int addrtab_add(struct addrtab *t, const struct addrtab_key *k, enum addrtab_counter c,
                int64_t delta);

/* Counter c of address k in t (0 if k has no entry).  Any process.  An
 * entry on k's path that its writer leaves mid-write for long (descheduled,
 * or killed writing) makes the count unknown: UINT32_MAX after a few
 * yields, so a limit is never passed on a guess (a dead worker's table is
 * cleared when it is reaped).  A table being cleared counts 0: its counts
 * are a dead worker's, going away.  Never blocks for long. */
uint32_t addrtab_count(const struct addrtab *t, const struct addrtab_key *k,
                       enum addrtab_counter c);

/* Free every entry.  The supervisor, after reaping the table's writer and
 * before forking its successor.  Gives the pages back to the system where
 * the table is shared memory (madvise MADV_REMOVE); elsewhere, writes every
 * entry.  Readers see the table empty or cleared, never a mix. */
void addrtab_clear(struct addrtab *t);

#endif
