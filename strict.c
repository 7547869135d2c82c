/* SPDX-License-Identifier: MIT */
/* strict.c - strict numbers, bounded xenstore reads, printable copies (see strict.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>

#include "strict.h"

bool strict_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (s == NULL || *s == '\0')
		return false;
	for (; *s; s++) {
		unsigned long d = (unsigned long)(*s - '0');

		if (*s < '0' || *s > '9')
			return false;
		/* v * 10 + d <= max, without overflow (and d itself may exceed max) */
		if (d > max || v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool strict_canonical(const char *s, unsigned long max, unsigned long *out)
{
	return s != NULL && (s[0] != '0' || s[1] == '\0') && strict_uint(s, max, out);
}

bool strict_read(struct xs_handle *h, const char *path, char *buf, size_t cap)
{
	return strict_read_in(h, XBT_NULL, path, buf, cap);
}

bool strict_read_in(struct xs_handle *h, uint32_t t, const char *path, char *buf, size_t cap)
{
	unsigned int len = 0;
	char *v = xs_read(h, t, path, &len);

	if (v == NULL)
		return false;
	if (len >= cap || strlen(v) != len) {
		free(v);
		errno = EINVAL;
		return false;
	}
	memcpy(buf, v, len + 1);
	free(v);
	return true;
}

bool strict_leaf(struct xs_handle *h, const char *dir, const char *leaf,
		 char *buf, size_t cap)
{
	char path[STRICT_PATH_MAX];

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, leaf) >= sizeof(path)) {
		errno = ENAMETOOLONG;
		return false;
	}
	return strict_read(h, path, buf, cap);
}

void strict_printable(char *dst, size_t cap, const char *src)
{
	size_t i;

	for (i = 0; i + 1 < cap && src[i]; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[i] = '\0';
}
