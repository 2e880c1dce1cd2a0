/*
 * utf8: strict UTF-8 validation (RFC 3629: no overlongs, no surrogates,
 * nothing above U+10FFFF).  A browser closes the connection on a text frame
 * that is not valid UTF-8, so every string that reaches a client passes
 * through this first.  Pure function, any role.
 */
#ifndef WSB_UTF8_H
#define WSB_UTF8_H

#include <stddef.h>

/* 1 if s[0..len) is valid UTF-8 (NUL bytes allowed), else 0. */
int utf8_valid(const char *s, size_t len);

/* The longest prefix of s[0..len) of at most max bytes that does not end in
 * the middle of a character (for quoting client input in a message). */
size_t utf8_prefix(const char *s, size_t len, size_t max);

#endif
