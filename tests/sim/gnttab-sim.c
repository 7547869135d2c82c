/* SPDX-License-Identifier: MIT */
/*
 * gnttab-sim.c - libxengnttab.so.1 for the simulated host (README.md).
 *
 * A grant is a 4096-byte file: grant/D/REF (the ref's reservation, made with
 * link(), which fails if the ref is taken) and grant/D/REF.G, a hard link of
 * the same page named for the grantee G.  The daemon (simhvd.c) makes,
 * opens and removes them; a map is a request that brings back the page's
 * descriptor, then mmap(), as gntdev's map is an ioctl then mmap().
 * MAP_SHARED mappings of one file are the same memory in every process, which
 * is all a shared ring needs.  Unsharing unlinks both names; mappings that
 * exist stay valid, as on Xen where a mapped grant outlives its end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xengnttab.h>

#include "simhv.h"

#define NO_NOTIFY UINT32_MAX   /* the header's "-1" for offset and port */

/* One mmap()ed range handed out by this handle. */
struct gnt_region {
	struct gnt_region *next;
	char *addr;
	uint32_t count;
	uint32_t notify_offset;   /* byte cleared on unmap, or NO_NOTIFY */
	uint32_t notify_port;     /* event sent on unmap, or NO_NOTIFY */
	uint32_t grantee;         /* shares only */
	uint32_t nrefs;           /* shares: the refs we granted; 0 for maps */
	uint32_t refs[];
};

/* xengnttab_handle and xengntshr_handle are both this struct in the header. */
struct xengntdev_handle {
	struct simhv hv;
	int conn;                 /* to the daemon; also the handle's fd */
	struct gnt_region *regions;
};

static struct xengntdev_handle *gntdev_open(const char *lib)
{
	struct xengntdev_handle *h = calloc(1, sizeof(*h));

	if (!h)
		return NULL;
	if (simhv_init(&h->hv, lib) < 0 || (h->conn = simhv_connect(&h->hv, lib, true)) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

/* Mappings outlive the handle, as with /dev/xen/gntdev: only the
 * bookkeeping goes. */
static int gntdev_close(struct xengntdev_handle *h)
{
	if (!h)
		return 0;
	while (h->regions) {
		struct gnt_region *r = h->regions;
		h->regions = r->next;
		free(r);
	}
	close(h->conn);
	free(h);
	return 0;
}

static struct gnt_region *region_new(uint32_t nrefs)
{
	struct gnt_region *r = calloc(1, sizeof(*r) + nrefs * sizeof(uint32_t));

	if (r) {
		r->notify_offset = NO_NOTIFY;
		r->notify_port = NO_NOTIFY;
	}
	return r;
}

/* Unlink the region at addr of count pages, a share or a foreign mapping;
 * as with gntdev, the count must be the one it was made with. */
static struct gnt_region *region_take(struct xengntdev_handle *h, void *addr,
				      uint32_t count, bool share)
{
	for (struct gnt_region **p = &h->regions; *p; p = &(*p)->next) {
		struct gnt_region *r = *p;
		if (r->addr == addr && r->count == count && (r->nrefs > 0) == share) {
			*p = r->next;
			return r;
		}
	}
	errno = EINVAL;
	return NULL;
}

/* The unmap notification of gntdev/gntalloc: clear a byte the peer watches,
 * then kick its port, so it learns we are gone even without a handshake. */
static void region_notify(struct xengntdev_handle *h, struct gnt_region *r)
{
	struct simhv_rep rep;

	if (r->notify_offset != NO_NOTIFY)
		((volatile char *)r->addr)[r->notify_offset] = 0;
	if (r->notify_port != NO_NOTIFY)
		simhv_call(h->conn, SIMHV_OP_EVENT_SEND, r->notify_port, 0, 0, &rep, NULL);
}

/* Reserve count pages of address space, so pages from different files can
 * be placed side by side with MAP_FIXED. */
static char *reserve_pages(uint32_t count)
{
	void *p;

	if (count == 0 || count > SIMHV_MAX_GRANT_REF) {
		errno = EINVAL;
		return NULL;
	}
	p = mmap(NULL, (size_t)count * SIMHV_PAGE_SIZE, PROT_NONE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return p == MAP_FAILED ? NULL : p;
}

/* ---- mapping a foreign grant (xengnttab) --------------------------------- */

/* The daemon checks the grant (EINVAL, as gntdev, for a bad ref, a grant
 * to someone else, or a write mapping of a read-only grant). */
static int grant_map_page(struct xengntdev_handle *h, uint32_t dom, uint32_t ref,
			  int prot, char *at)
{
	struct simhv_rep rep;
	void *p;
	int fd;

	if (simhv_call(h->conn, SIMHV_OP_GRANT_MAP, dom, ref, !!(prot & PROT_WRITE),
		       &rep, &fd) < 0)
		return -1;
	if (fd < 0) {
		errno = EIO;
		return -1;
	}
	p = mmap(at, SIMHV_PAGE_SIZE, prot, MAP_SHARED | MAP_FIXED, fd, 0);
	close(fd);
	return p == MAP_FAILED ? -1 : 0;
}

static void *grant_map(struct xengntdev_handle *h, uint32_t count,
		       const uint32_t *domids, uint32_t one_domid,
		       const uint32_t *refs, int prot)
{
	struct gnt_region *r = region_new(0);
	char *base = r ? reserve_pages(count) : NULL;
	int err;

	if (!base)
		goto fail;
	for (uint32_t i = 0; i < count; i++) {
		uint32_t dom = domids ? domids[i] : one_domid;
		if (grant_map_page(h, dom, refs[i], prot,
				   base + (size_t)i * SIMHV_PAGE_SIZE) < 0)
			goto fail;
	}
	r->addr = base;
	r->count = count;
	r->next = h->regions;
	h->regions = r;
	return base;
fail:
	err = errno;
	if (base)
		munmap(base, (size_t)count * SIMHV_PAGE_SIZE);
	free(r);
	errno = err;
	return NULL;
}

xengnttab_handle *xengnttab_open(struct xentoollog_logger *logger,
				 unsigned open_flags)
{
	(void)logger;
	(void)open_flags;
	return gntdev_open("libxengnttab");
}

int xengnttab_close(xengnttab_handle *xgt)
{
	return gntdev_close(xgt);
}

int xengnttab_fd(xengnttab_handle *xgt)
{
	return xgt->conn;
}

int xengnttab_set_max_grants(xengnttab_handle *xgt, uint32_t nr_grants)
{
	(void)xgt;
	(void)nr_grants;
	return 0;
}

void *xengnttab_map_grant_ref(xengnttab_handle *xgt, uint32_t domid,
			      uint32_t ref, int prot)
{
	return grant_map(xgt, 1, NULL, domid, &ref, prot);
}

void *xengnttab_map_grant_refs(xengnttab_handle *xgt, uint32_t count,
			       uint32_t *domids, uint32_t *refs, int prot)
{
	return grant_map(xgt, count, domids, 0, refs, prot);
}

void *xengnttab_map_domain_grant_refs(xengnttab_handle *xgt, uint32_t count,
				      uint32_t domid, uint32_t *refs, int prot)
{
	return grant_map(xgt, count, NULL, domid, refs, prot);
}

void *xengnttab_map_grant_ref_notify(xengnttab_handle *xgt, uint32_t domid,
				     uint32_t ref, int prot,
				     uint32_t notify_offset,
				     evtchn_port_t notify_port)
{
	char *p;

	if (notify_offset != NO_NOTIFY && notify_offset >= SIMHV_PAGE_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	p = grant_map(xgt, 1, NULL, domid, &ref, prot);
	if (p) {
		xgt->regions->notify_offset = notify_offset;
		xgt->regions->notify_port = notify_port;
	}
	return p;
}

int xengnttab_unmap(xengnttab_handle *xgt, void *start_address, uint32_t count)
{
	struct gnt_region *r = region_take(xgt, start_address, count, false);

	if (!r)
		return -1;
	region_notify(xgt, r);
	munmap(r->addr, (size_t)r->count * SIMHV_PAGE_SIZE);
	free(r);
	return 0;
}

/* ---- not simulated ------------------------------------------------------ */

int xengnttab_grant_copy(xengnttab_handle *xgt, uint32_t count,
			 xengnttab_grant_copy_segment_t *segs)
{
	(void)xgt, (void)count, (void)segs;
	errno = ENOSYS;
	return -1;
}

int xengnttab_dmabuf_exp_from_refs(xengnttab_handle *xgt, uint32_t domid,
				   uint32_t flags, uint32_t count,
				   const uint32_t *refs, uint32_t *fd)
{
	(void)xgt, (void)domid, (void)flags, (void)count, (void)refs, (void)fd;
	errno = ENOSYS;
	return -1;
}

int xengnttab_dmabuf_exp_wait_released(xengnttab_handle *xgt, uint32_t fd,
				       uint32_t wait_to_ms)
{
	(void)xgt, (void)fd, (void)wait_to_ms;
	errno = ENOSYS;
	return -1;
}

int xengnttab_dmabuf_imp_to_refs(xengnttab_handle *xgt, uint32_t domid,
				 uint32_t fd, uint32_t count, uint32_t *refs)
{
	(void)xgt, (void)domid, (void)fd, (void)count, (void)refs;
	errno = ENOSYS;
	return -1;
}

int xengnttab_dmabuf_imp_release(xengnttab_handle *xgt, uint32_t fd)
{
	(void)xgt, (void)fd;
	errno = ENOSYS;
	return -1;
}

/* ---- granting our own pages (xengntshr) --------------------------------- */

static void grant_revoke(struct xengntdev_handle *h, uint32_t grantee, uint32_t ref)
{
	struct simhv_rep rep;

	simhv_call(h->conn, SIMHV_OP_GRANT_REVOKE, grantee, ref, 0, &rep, NULL);
}

/* A new zeroed page (like Linux's __GFP_ZERO page) granted to grantee, at
 * the lowest free ref of our domain: its file's descriptor. */
static int grant_create(struct xengntdev_handle *h, uint32_t grantee,
			int writable, uint32_t *ref)
{
	struct simhv_rep rep;
	int fd;

	if (simhv_call(h->conn, SIMHV_OP_GRANT_SHARE, grantee, !!writable, 0, &rep, &fd) < 0)
		return -1;
	if (fd < 0) {
		errno = EIO;
		return -1;
	}
	*ref = rep.a;
	return fd;
}

static char *share_pages(struct xengntdev_handle *h, uint32_t grantee,
			 int count, uint32_t *refs, int writable)
{
	struct gnt_region *r = count > 0 ? region_new((uint32_t)count) : NULL;
	char *base = r ? reserve_pages((uint32_t)count) : NULL;
	int err;

	if (!base)
		goto fail;
	r->grantee = grantee;
	for (; r->nrefs < (uint32_t)count; r->nrefs++) {
		char *at = base + (size_t)r->nrefs * SIMHV_PAGE_SIZE;
		int fd = grant_create(h, grantee, writable, &r->refs[r->nrefs]);
		void *p;
		if (fd < 0)
			goto fail;
		p = mmap(at, SIMHV_PAGE_SIZE, PROT_READ | PROT_WRITE,
			 MAP_SHARED | MAP_FIXED, fd, 0);
		close(fd);
		if (p == MAP_FAILED) {
			r->nrefs++;   /* revoke it below */
			goto fail;
		}
	}
	memcpy(refs, r->refs, (size_t)count * sizeof(uint32_t));
	r->addr = base;
	r->count = (uint32_t)count;
	r->next = h->regions;
	h->regions = r;
	return base;
fail:
	err = count > 0 ? errno : EINVAL;
	for (uint32_t i = 0; r && i < r->nrefs; i++)
		grant_revoke(h, grantee, r->refs[i]);
	if (base)
		munmap(base, (size_t)count * SIMHV_PAGE_SIZE);
	free(r);
	errno = err;
	return NULL;
}

xengntshr_handle *xengntshr_open(struct xentoollog_logger *logger,
				 unsigned open_flags)
{
	(void)logger;
	(void)open_flags;
	return gntdev_open("libxengnttab");
}

int xengntshr_close(xengntshr_handle *xgs)
{
	return gntdev_close(xgs);
}

int xengntshr_fd(xengntshr_handle *xgs)
{
	return xgs->conn;
}

void *xengntshr_share_pages(xengntshr_handle *xgs, uint32_t domid,
			    int count, uint32_t *refs, int writable)
{
	return share_pages(xgs, domid, count, refs, writable);
}

void *xengntshr_share_page_notify(xengntshr_handle *xgs, uint32_t domid,
				  uint32_t *ref, int writable,
				  uint32_t notify_offset,
				  evtchn_port_t notify_port)
{
	char *p;

	if (notify_offset != NO_NOTIFY && notify_offset >= SIMHV_PAGE_SIZE) {
		errno = EINVAL;
		return NULL;
	}
	p = share_pages(xgs, domid, 1, ref, writable);
	if (p) {
		xgs->regions->notify_offset = notify_offset;
		xgs->regions->notify_port = notify_port;
	}
	return p;
}

int xengntshr_unshare(xengntshr_handle *xgs, void *start_address, uint32_t count)
{
	struct gnt_region *r = region_take(xgs, start_address, count, true);

	if (!r)
		return -1;
	region_notify(xgs, r);
	for (uint32_t i = 0; i < r->nrefs; i++)
		grant_revoke(xgs, r->grantee, r->refs[i]);
	munmap(r->addr, (size_t)r->count * SIMHV_PAGE_SIZE);
	free(r);
	return 0;
}
