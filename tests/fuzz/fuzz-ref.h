/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ref.h - brute-force references for the strict parsers (strict.c) and
 * the channel pick (store.c), written from strict.h's and store.h's
 * contracts rather than from the code.
 */
#ifndef XENCHAN_FUZZ_REF_H
#define XENCHAN_FUZZ_REF_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "nodes.h"
#include "store.h"

#define REF_DEVID_MAX ((unsigned long)CONSOLE_DEVID_MAX)

_Static_assert(sizeof(unsigned long) == sizeof(unsigned long long),
	       "strtoull is the reference for unsigned long");

/* Strict unsigned decimal: at least one digit, digits only (strtoull alone
 * would take spaces, signs and 0x), no overflow, at most max. */
static inline bool ref_parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long long v;
	char *end;

	if (*s == '\0')
		return false;
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

/* A device directory's name: a number as "%u" writes it (no leading zero),
 * since only such a name is where the paths built from its number lead. */
static inline bool ref_devid_node(const char *s, unsigned long *out)
{
	return (s[0] != '0' || s[1] == '\0') && ref_parse_uint(s, REF_DEVID_MAX, out);
}

/* A channel argument against a listing: a number (as devids are read, up to
 * 65535) is a devid, the first entry named by that number, and 0 is the
 * primary console (invalid); anything else is a name, which must be the
 * "name" of exactly one entry with a non-zero devid name. */
static inline enum store_result ref_pick_channel(char *const *devids, char *const *names,
					      size_t n, const char *want, size_t *index)
{
	unsigned long w, id;
	size_t found = 0;

	if (ref_parse_uint(want, REF_DEVID_MAX, &w)) {
		if (w == 0)
			return STORE_INVALID;
		for (size_t i = 0; i < n; i++)
			if (ref_devid_node(devids[i], &id) && id == w) {
				*index = i;
				return STORE_OK;
			}
		return STORE_NOT_FOUND;
	}
	for (size_t i = n; i-- > 0;)   /* the other way round from store.c */
		if (ref_devid_node(devids[i], &id) && id != 0
		    && names[i] != NULL && strcmp(names[i], want) == 0) {
			found++;
			*index = i;
		}
	return found == 1 ? STORE_OK : found ? STORE_AMBIGUOUS : STORE_NOT_FOUND;
}

#endif
