/* SPDX-License-Identifier: MIT */
/*
 * held.h - bytes from the guest held for an absent or slow client.
 *
 * One bounded FIFO, allocated on demand and freed as soon as it is empty, so
 * an idle proxy holds no such memory.  Pure: no I/O, no logging.
 */
#ifndef XENCHAN_HELD_H
#define XENCHAN_HELD_H

#include <stddef.h>
#include <sys/uio.h>

struct held {
	char *buf;
	size_t cap;    /* allocated bytes, grows by doubling up to bound */
	size_t head;   /* offset of the oldest byte */
	size_t len;    /* bytes held */
	size_t bound;  /* never hold more than this */
};

void held_init(struct held *h, size_t bound);
static inline size_t held_room(const struct held *h)
{
	return h->len < h->bound ? h->bound - h->len : 0;
}
/* Append up to n bytes gathered from iov; returns how many were taken
 * (less than n when the bound is reached or memory is short). */
size_t held_put(struct held *h, const struct iovec *iov, int iovcnt, size_t n);
/* The held bytes, oldest first, as up to two iovecs; returns the count. */
size_t held_peek(const struct held *h, struct iovec iov[2], int *iovcnt);
/* The oldest n bytes were delivered. */
void held_drop(struct held *h, size_t n);
void held_free(struct held *h);

#endif
