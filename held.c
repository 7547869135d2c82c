/* SPDX-License-Identifier: MIT */
/* held.c - the bounded FIFO of bytes held for the client (see held.h). */
#include <stdlib.h>
#include <string.h>
#include "held.h"

#define HELD_MIN_CAP 4096

void held_init(struct held *h, size_t bound)
{
	memset(h, 0, sizeof(*h));
	h->bound = bound;
}

/* Make room for want bytes in total, linearising the contents. */
static int held_grow(struct held *h, size_t want)
{
	size_t cap = h->cap ? h->cap : HELD_MIN_CAP;
	struct iovec iov[2];
	int iovcnt;
	char *buf;

	while (cap < want)
		cap *= 2;
	if (cap > h->bound)
		cap = h->bound;
	buf = malloc(cap);
	if (buf == NULL)
		return -1;
	held_peek(h, iov, &iovcnt);
	for (int i = 0, off = 0; i < iovcnt; off += iov[i].iov_len, i++)
		memcpy(buf + off, iov[i].iov_base, iov[i].iov_len);
	free(h->buf);
	h->buf = buf;
	h->cap = cap;
	h->head = 0;
	return 0;
}

size_t held_put(struct held *h, const struct iovec *iov, int iovcnt, size_t n)
{
	size_t done = 0, offered = 0;

	for (int i = 0; i < iovcnt; i++)
		offered += iov[i].iov_len;
	if (n > offered)   /* never grow for bytes that are not there */
		n = offered;
	if (n > held_room(h))
		n = held_room(h);
	if (n == 0 || (h->len + n > h->cap && held_grow(h, h->len + n) < 0))
		return 0;
	for (int i = 0; i < iovcnt && done < n; i++) {
		const char *src = iov[i].iov_base;
		size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		while (k > 0) {
			size_t tail = (h->head + h->len) % h->cap;
			size_t run = h->cap - tail < k ? h->cap - tail : k;
			memcpy(h->buf + tail, src, run);
			h->len += run;
			src += run;
			done += run;
			k -= run;
		}
	}
	return done;
}

size_t held_peek(const struct held *h, struct iovec iov[2], int *iovcnt)
{
	size_t first = h->cap - h->head < h->len ? h->cap - h->head : h->len;

	if (h->len == 0) {   /* no buffer at all: no pointer arithmetic on NULL */
		iov[0] = iov[1] = (struct iovec){ NULL, 0 };
		*iovcnt = 0;
		return 0;
	}
	iov[0].iov_base = h->buf + h->head;
	iov[0].iov_len = first;
	iov[1].iov_base = h->buf;
	iov[1].iov_len = h->len - first;
	*iovcnt = h->len == 0 ? 0 : (h->len > first ? 2 : 1);
	return h->len;
}

void held_drop(struct held *h, size_t n)
{
	if (n >= h->len) {
		held_free(h);   /* empty: give the memory back */
		return;
	}
	h->head = (h->head + n) % h->cap;
	h->len -= n;
}

void held_free(struct held *h)
{
	free(h->buf);
	h->buf = NULL;
	h->cap = h->head = h->len = 0;
}
