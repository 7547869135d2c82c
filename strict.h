/* SPDX-License-Identifier: MIT */
/*
 * strict.h - reading values nobody vouches for: numbers as strict decimal,
 * xenstore nodes as bounded strings, and anything bound for a log line as
 * printable ASCII.  Shared by xenchan-proxy and xenchan-dm; it depends on
 * nothing of either (only on libxenstore, for strict_read).
 */
#ifndef XENCHAN_STRICT_H
#define XENCHAN_STRICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xs_handle;

/* Unsigned decimal: no sign, space, junk or overflow past max. */
bool strict_uint(const char *s, unsigned long max, unsigned long *out);
/* The same, spelt as "%u" spells it: no leading zero ("05" is not 5). */
bool strict_canonical(const char *s, unsigned long max, unsigned long *out);
/* The node at path as a NUL-terminated string of at most cap-1 bytes;
 * false (errno ENOENT, EACCES, EINVAL...) if absent, unreadable, longer,
 * or holding a NUL (a guest trick). */
bool strict_read(struct xs_handle *h, const char *path, char *buf, size_t cap);
/* The same within transaction t (an xs_transaction_t; 0 is XBT_NULL, none). */
bool strict_read_in(struct xs_handle *h, uint32_t t, const char *path, char *buf, size_t cap);
/* dir/leaf likewise; dir and leaf must fit STRICT_PATH_MAX together. */
bool strict_leaf(struct xs_handle *h, const char *dir, const char *leaf,
		 char *buf, size_t cap);
/* A possibly hostile string for a log line: printable ASCII, '?' for the
 * rest, cut to cap-1 bytes. */
void strict_printable(char *dst, size_t cap, const char *src);

#define STRICT_PATH_MAX 320

#endif
