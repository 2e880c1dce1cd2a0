/*
 * hash: the one string hash, SipHash-2-4 under a secret 128-bit key.
 *
 * Every table that files client-chosen bytes (the filter index's map of
 * values, the per-address tables in shared memory, addrtab.h) hashes with
 * it.  An unkeyed hash such as FNV-1a lets a client compute colliding values
 * offline and turn a table into a list; with a secret random key it cannot
 * predict where anything lands (SipHash is a PRF built for this).
 *
 * Why 2-4 and not 1-3: the inputs are short (an address, a filter value),
 * so the two extra rounds cost a few nanoseconds per lookup; 2-4 is the
 * variant the SipHash paper analyses and publishes test vectors for, so the
 * implementation is checked against them (tests/unit/test_hash.c).
 *
 * One key per instance: the supervisor calls hash_init() before its first
 * fork, so every child inherits the same key.  That matters because the
 * address tables are read across worker processes: a worker must look for
 * an address where the table's own worker put it.  A restart of the
 * instance draws a new key.  A process that hashes without hash_init() (unit tests, fuzzers)
 * draws a key of its own on first use, which is fine alone but would break
 * the cross-process tables: the supervisor must not rely on that.
 *
 * The key lives in process memory, not in shared memory; it is set once,
 * before any other thread exists, and only read after that.
 */
#ifndef WSB_HASH_H
#define WSB_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_KEY_LEN 16

/* Fill the key from getrandom() unless this process already has one (from an
 * earlier call, hash_set_key or a hash taken before).  May block early at
 * boot, until the kernel's entropy pool is ready.  Returns 0, or -1 with
 * errno set if getrandom fails; the key is then left unset. */
int hash_init(void);

/* Use key (HASH_KEY_LEN bytes, copied) from now on: deterministic tests. */
void hash_set_key(const unsigned char key[HASH_KEY_LEN]);

/* SipHash-2-4 of data[0..len) under the process key (drawn on first use if
 * unset; aborts if getrandom fails then).  data may be NULL when len is 0.
 * Never blocks once the key is set. */
uint64_t hash_bytes(const void *data, size_t len);

/* SipHash-2-4 of data[0..len) under an explicit key; no global state. */
uint64_t hash_siphash24(const unsigned char key[HASH_KEY_LEN], const void *data, size_t len);

#endif
