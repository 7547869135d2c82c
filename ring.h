/* SPDX-License-Identifier: MIT */
/*
 * ring.h - the console ring of <xen/io/console.h>, seen from one end.
 *
 * A struct xencons_interface page holds two byte rings: out[] (guest to
 * backend) and in[] (backend to guest), each with a free-running producer and
 * consumer index.  Each end owns one index of each ring.  A struct ring_dir is
 * one ring as seen by one end: the index we own is kept here ("local") and only
 * published to the page, never read back, because the other end may scribble on
 * the page at any moment.  The other end's index is read once per call and
 * checked.
 *
 * Pure: no I/O, no logging, no allocation.  Both the proxy (backend) and the
 * simulated guest (frontend) use it.
 */
#ifndef XENCHAN_RING_H
#define XENCHAN_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <xen/io/console.h>

#define RING_PAGE_SIZE 4096

struct ring_dir {
	char *buf;                         /* in[] or out[] */
	uint32_t size;                     /* power of two */
	volatile XENCONS_RING_IDX *prod;   /* in the shared page */
	volatile XENCONS_RING_IDX *cons;   /* in the shared page */
	volatile XENCONS_RING_IDX *peer;   /* prod or cons: the one the other end owns */
	XENCONS_RING_IDX local;            /* the index this end owns */
};

/* Backend view: we read out[] and write in[].  Adopts the indices already in
 * the page, so a restarted backend carries on where the last one stopped. */
void ring_backend_init(void *page, struct ring_dir *out, struct ring_dir *in);
/* Frontend view: we write out[] and read in[]. */
void ring_frontend_init(void *page, struct ring_dir *out, struct ring_dir *in);

/* Bytes the producer published and we have not consumed, as up to two
 * iovecs (the ring may wrap).  Returns the byte count, or -1 if the other
 * end's index is impossible (more than the ring holds): a protocol error. */
ssize_t ring_readable(struct ring_dir *d, struct iovec iov[2], int *iovcnt);
/* We copied n bytes out: publish the consumer index (full barrier first). */
void ring_consume(struct ring_dir *d, size_t n);

/* Free space we may fill, as up to two iovecs.  -1 on an impossible index. */
ssize_t ring_writable(struct ring_dir *d, struct iovec iov[2], int *iovcnt);
/* We wrote n bytes in: publish the producer index (write barrier first). */
void ring_produce(struct ring_dir *d, size_t n);

/* Producer side: bytes we published that the consumer has not taken yet.
 * -1 on an impossible consumer index. */
ssize_t ring_unconsumed(struct ring_dir *d, struct iovec iov[2], int *iovcnt);

/* Has the other end's index moved on since *seen: forward, and to a value
 * the ring allows?  Reads it once; if so, records it in *seen.  Forward
 * only, so an index the other end swings back and forth moves on no more
 * often than bytes cross.  For noticing progress, never for moving bytes. */
bool ring_peer_moved(const struct ring_dir *d, XENCONS_RING_IDX *seen);

/* Xen 4.21 adds a "connection" byte after the four indices; 0 means the
 * backend is connected.  Older guests ignore it and a zeroed page reads 0. */
void ring_mark_connected(void *page);

/* Copy helpers for callers that stage bytes in their own buffers. */
size_t ring_iov_copy_out(const struct iovec *iov, int iovcnt, void *dst, size_t n);
size_t ring_iov_copy_in(const struct iovec *iov, int iovcnt, const void *src, size_t n);

#endif
