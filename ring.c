/* SPDX-License-Identifier: MIT */
/*
 * ring.c - the console ring: two indices and a mask per direction.
 * See ring.h.  The barrier pairs are those of Xen's rings: the producer
 * writes data, then publishes prod (release); the consumer reads prod
 * (acquire), then data, then publishes cons only after its reads are done.
 */
#include <string.h>
#include "ring.h"

_Static_assert(sizeof(struct xencons_interface) + 1 <= RING_PAGE_SIZE,
	       "the console interface and its connection byte fit one page");

#define ring_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define ring_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define ring_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

static void dir_init(struct ring_dir *d, char *buf, uint32_t size,
		     volatile XENCONS_RING_IDX *prod,
		     volatile XENCONS_RING_IDX *cons, int we_produce)
{
	d->buf = buf;
	d->size = size;
	d->prod = prod;
	d->cons = cons;
	d->peer = we_produce ? cons : prod;
	d->local = we_produce ? *prod : *cons;
}

void ring_backend_init(void *page, struct ring_dir *out, struct ring_dir *in)
{
	struct xencons_interface *x = page;

	dir_init(out, x->out, sizeof(x->out), &x->out_prod, &x->out_cons, 0);
	dir_init(in, x->in, sizeof(x->in), &x->in_prod, &x->in_cons, 1);
}

void ring_frontend_init(void *page, struct ring_dir *out, struct ring_dir *in)
{
	struct xencons_interface *x = page;

	dir_init(out, x->out, sizeof(x->out), &x->out_prod, &x->out_cons, 1);
	dir_init(in, x->in, sizeof(x->in), &x->in_prod, &x->in_cons, 0);
}

/* Describe len bytes starting at free-running index idx as iovecs. */
static void dir_span(const struct ring_dir *d, XENCONS_RING_IDX idx,
		     size_t len, struct iovec iov[2], int *iovcnt)
{
	size_t off = idx & (d->size - 1);
	size_t first = d->size - off < len ? d->size - off : len;

	iov[0].iov_base = d->buf + off;
	iov[0].iov_len = first;
	iov[1].iov_base = d->buf;
	iov[1].iov_len = len - first;
	*iovcnt = len == 0 ? 0 : (len > first ? 2 : 1);
}

ssize_t ring_readable(struct ring_dir *d, struct iovec iov[2], int *iovcnt)
{
	XENCONS_RING_IDX prod = *d->prod;   /* read the peer's index once */
	XENCONS_RING_IDX avail = prod - d->local;

	ring_rmb();
	if (avail > d->size)
		return -1;
	dir_span(d, d->local, avail, iov, iovcnt);
	return avail;
}

void ring_consume(struct ring_dir *d, size_t n)
{
	ring_mb();   /* our reads of the data finish before the slot is freed */
	d->local += n;
	*d->cons = d->local;
}

ssize_t ring_writable(struct ring_dir *d, struct iovec iov[2], int *iovcnt)
{
	XENCONS_RING_IDX cons = *d->cons;   /* read the peer's index once */
	XENCONS_RING_IDX used = d->local - cons;

	ring_mb();   /* the slots are free before we write into them */
	if (used > d->size)
		return -1;
	dir_span(d, d->local, d->size - used, iov, iovcnt);
	return d->size - used;
}

ssize_t ring_unconsumed(struct ring_dir *d, struct iovec iov[2], int *iovcnt)
{
	XENCONS_RING_IDX cons = *d->cons;
	XENCONS_RING_IDX used = d->local - cons;

	ring_rmb();
	if (used > d->size)
		return -1;
	dir_span(d, cons, used, iov, iovcnt);
	return used;
}

void ring_produce(struct ring_dir *d, size_t n)
{
	ring_wmb();   /* the data is visible before the index that covers it */
	d->local += n;
	*d->prod = d->local;
}

bool ring_peer_moved(const struct ring_dir *d, XENCONS_RING_IDX *seen)
{
	XENCONS_RING_IDX now = *d->peer;   /* read the peer's index once */
	XENCONS_RING_IDX span = d->peer == d->prod ? now - d->local : d->local - now;

	if (span > d->size || (int32_t)(now - *seen) <= 0)
		return false;
	*seen = now;
	return true;
}

void ring_mark_connected(void *page)
{
	volatile char *connection =
		(char *)page + sizeof(struct xencons_interface);

	*connection = 0;
}

size_t ring_iov_copy_out(const struct iovec *iov, int iovcnt, void *dst, size_t n)
{
	size_t done = 0;

	for (int i = 0; i < iovcnt && done < n; i++) {
		size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		memcpy((char *)dst + done, iov[i].iov_base, k);
		done += k;
	}
	return done;
}

size_t ring_iov_copy_in(const struct iovec *iov, int iovcnt, const void *src, size_t n)
{
	size_t done = 0;

	for (int i = 0; i < iovcnt && done < n; i++) {
		size_t k = iov[i].iov_len < n - done ? iov[i].iov_len : n - done;
		memcpy(iov[i].iov_base, (const char *)src + done, k);
		done += k;
	}
	return done;
}
