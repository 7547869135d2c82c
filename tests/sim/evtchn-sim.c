/*
 * evtchn-sim.c - libxenevtchn.so.1 for the simulated host (README.md).
 *
 * Each bound port owns a nonblocking Unix datagram socket in evtchn/sock/;
 * an event is one datagram sent to the peer port's socket.  Datagrams queued
 * on a port's socket are its pending bit: any number of them is one event.
 * The handle's fd is an epoll set of the sockets of its ports, each added
 * EPOLLONESHOT, so it polls readable exactly while an unmasked port is
 * pending.  Delivering a port (xenevtchn_pending) disarms its socket in the
 * set, which is the mask, and drains its queue, which clears the pending
 * bit; xenevtchn_unmask re-arms it, and anything that arrived meanwhile makes
 * the fd readable again: re-delivery, no timers.
 *
 * The records in evtchn/D/PORT say who is bound to whom (simhv.h).  Binding
 * and unbinding take the two domains' locks; notify takes none: it sends to
 * the peer's socket address cached in the port, and only looks at the
 * records again when that send fails.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>

#include "simhv.h"

/* A hostile peer can keep a queue full; delivery drains at most this many
 * batches of DRAIN_BATCH datagrams. */
#define DRAIN_MAX 64
#define DRAIN_BATCH 16

/* Armed: one delivery, then disarmed (masked) until re-armed (unmask). */
#define PORT_EPOLL_EVENTS (EPOLLIN | EPOLLONESHOT)

struct evtchn_port {
	struct evtchn_port *next;
	uint32_t port;
	int sock;                                  /* this port's events */
	char sock_name[SIMHV_SOCK_NAME_MAX + 1];
	bool masked;
	bool peer_known;                           /* peer, peer_len are valid */
	struct sockaddr_un peer;
	socklen_t peer_len;
};

struct xenevtchn_handle {
	struct simhv hv;
	bool probe_forbidden;       /* XENSIM_EVTCHN_PROBE: see xenevtchn_notify */
	int epfd;                   /* the handle's fd: sockets of unmasked ports */
	struct evtchn_port *ports;
};

static struct evtchn_port *port_find(xenevtchn_handle *h, uint32_t port)
{
	for (struct evtchn_port *p = h->ports; p; p = p->next)
		if (p->port == port)
			return p;
	errno = ENOTCONN;   /* what /dev/xen/evtchn says of a port not ours */
	return NULL;
}

/* A socket name never used before, so a stale cached address can only fail,
 * never reach a later binding that reused the port number. */
static void port_sock_name(const xenevtchn_handle *h, uint32_t port,
			   char *buf, size_t len)
{
	unsigned long long nonce;
	struct timespec ts;

	if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) != sizeof(nonce)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		nonce = ((unsigned long long)getpid() << 40) ^
			(unsigned long long)ts.tv_sec * 1000000000ull ^
			(unsigned long long)ts.tv_nsec;
	}
	snprintf(buf, len, "%u.%u.%016llx", h->hv.domid, port, nonce);
}

/* Open the socket of a newly allocated port and start watching it. */
static struct evtchn_port *port_open(xenevtchn_handle *h, uint32_t port)
{
	struct evtchn_port *p = calloc(1, sizeof(*p));
	struct epoll_event ev = { .events = PORT_EPOLL_EVENTS };
	struct sockaddr_un addr;
	socklen_t addrlen;
	int err;

	if (!p)
		return NULL;
	p->port = port;
	port_sock_name(h, port, p->sock_name, sizeof(p->sock_name));
	p->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->sock < 0)
		goto fail;
	ev.data.ptr = p;
	if (simhv_sock_addr(&h->hv, p->sock_name, &addr, &addrlen) < 0 ||
	    bind(p->sock, (struct sockaddr *)&addr, addrlen) < 0 ||
	    chmod(addr.sun_path, 0777) < 0)   /* see SIMHV_FILE_MODE */
		goto fail;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, p->sock, &ev) < 0) {
		err = errno;
		unlink(addr.sun_path);
		errno = err;
		goto fail;
	}
	p->next = h->ports;
	h->ports = p;
	return p;
fail:
	err = errno;
	if (p->sock >= 0)
		close(p->sock);
	free(p);
	errno = err;
	return NULL;
}

static void port_close(xenevtchn_handle *h, struct evtchn_port *p)
{
	struct sockaddr_un addr;
	socklen_t addrlen;

	for (struct evtchn_port **pp = &h->ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	if (simhv_sock_addr(&h->hv, p->sock_name, &addr, &addrlen) == 0)
		unlink(addr.sun_path);
	close(p->sock);   /* also leaves the epoll set */
	free(p);
}

/* With our domain locked: the lowest port that has no record, a malformed
 * one, or one whose owner died (its process closed every port it had). */
/* Ports of our domain that have a record, from one directory listing,
 * read with getdents64 into the stack: opendir's heap buffer would stay in
 * the proxy's heap, and the memory benchmark counts every KiB. */
static int ports_recorded(xenevtchn_handle *h, uint64_t used[SIMHV_MAX_PORT / 64])
{
	char path[PATH_MAX], buf[4096];
	ssize_t n;
	uint32_t p;
	int fd;

	if (simhv_path(path, sizeof(path), "%s/evtchn/%u", h->hv.dir, h->hv.domid) < 0)
		return -1;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -1;
	while ((n = getdents64(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n; ) {
			struct dirent64 *e = (struct dirent64 *)(buf + off);

			if (simhv_parse_u32(e->d_name, SIMHV_MAX_PORT - 1, &p) == 0)
				used[p / 64] |= 1ULL << (p % 64);
			off += e->d_reclen;
		}
	}
	close(fd);
	return n < 0 ? -1 : 0;
}

/* The lowest port with no record; failing that, the lowest whose owner
 * died.  One listing rather than a liveness probe of every port: a dom0
 * serving a thousand channels has a thousand live ports, and probing them
 * all made each bind cost milliseconds. */
static int port_alloc(xenevtchn_handle *h, uint32_t *port)
{
	struct simhv_port_rec rec;
	struct sockaddr_un addr;
	socklen_t addrlen;
	uint64_t used[SIMHV_MAX_PORT / 64] = { 0 };

	if (ports_recorded(h, used) < 0)
		return -1;
	for (uint32_t p = 1; p < SIMHV_MAX_PORT; p++) {
		if (!(used[p / 64] & (1ULL << (p % 64)))) {
			*port = p;
			return 0;
		}
	}
	for (uint32_t p = 1; p < SIMHV_MAX_PORT; p++) {
		if (simhv_port_rec_read(&h->hv, h->hv.domid, p, &rec) == 0) {
			if (simhv_sock_alive(&h->hv, rec.sock))
				continue;
			if (simhv_sock_addr(&h->hv, rec.sock, &addr, &addrlen) == 0)
				unlink(addr.sun_path);
		} else if (errno != ENOENT && errno != EINVAL) {
			return -1;
		}
		*port = p;
		return 0;
	}
	errno = ENOSPC;
	return -1;
}

static int port_publish(xenevtchn_handle *h, struct evtchn_port *p,
			enum simhv_port_state state, uint32_t rdom, uint32_t rport)
{
	struct simhv_port_rec rec = {
		.state = state, .remote_dom = rdom, .remote_port = rport,
	};

	strcpy(rec.sock, p->sock_name);
	return simhv_port_rec_write(&h->hv, h->hv.domid, p->port, &rec);
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
				 unsigned int flags)
{
	xenevtchn_handle *h = calloc(1, sizeof(*h));
	char path[PATH_MAX];

	(void)logger;
	if (!h)
		return NULL;
	if (simhv_init(&h->hv, "libxenevtchn") < 0 ||
	    simhv_path(path, sizeof(path), "%s/evtchn/sock", h->hv.dir) < 0 ||
	    simhv_mkdirs(path) < 0)
		goto fail;
	h->epfd = epoll_create1(flags & XENEVTCHN_NO_CLOEXEC ? 0 : EPOLL_CLOEXEC);
	if (h->epfd < 0)
		goto fail;
	h->probe_forbidden = getenv("XENSIM_EVTCHN_PROBE") != NULL;
	return h;
fail:
	free(h);
	return NULL;
}

xenevtchn_handle *xenevtchn_fdopen(struct xentoollog_logger *logger,
				   int fd, unsigned open_flags)
{
	(void)logger, (void)fd, (void)open_flags;
	errno = ENOSYS;
	return NULL;
}

int xenevtchn_close(xenevtchn_handle *xce)
{
	if (!xce)
		return 0;
	while (xce->ports)
		xenevtchn_unbind(xce, xce->ports->port);
	close(xce->epfd);
	free(xce);
	return 0;
}

int xenevtchn_fd(xenevtchn_handle *xce)
{
	return xce->epfd;
}

int xenevtchn_restrict(xenevtchn_handle *xce, domid_t domid)
{
	(void)xce, (void)domid;
	errno = ENOSYS;
	return -1;
}

xenevtchn_port_or_error_t
xenevtchn_bind_virq(xenevtchn_handle *xce, unsigned int virq)
{
	(void)xce, (void)virq;
	errno = ENOSYS;
	return -1;
}

xenevtchn_port_or_error_t
xenevtchn_bind_unbound_port(xenevtchn_handle *xce, uint32_t domid)
{
	struct simhv_lock lk;
	struct evtchn_port *p = NULL;
	uint32_t port;
	int err;

	if (domid > 0xffff) {
		errno = EINVAL;
		return -1;
	}
	if (simhv_lock_domains(&xce->hv, xce->hv.domid, xce->hv.domid, &lk) < 0)
		return -1;
	if (port_alloc(xce, &port) < 0 || !(p = port_open(xce, port)) ||
	    port_publish(xce, p, SIMHV_PORT_UNBOUND, domid, 0) < 0) {
		err = errno;
		if (p)
			port_close(xce, p);
		simhv_unlock_domains(&lk);
		errno = err;
		return -1;
	}
	simhv_unlock_domains(&lk);
	return (xenevtchn_port_or_error_t)port;
}

/* Is our own (unlocked-by-us) port dead or no longer bound to (rdom, rport)?
 * Then the remote port's binding to it is stale: Xen would have reverted
 * the remote port to unbound when our side closed. */
static bool binding_is_stale(xenevtchn_handle *h, uint32_t port,
			     uint32_t rdom, uint32_t rport)
{
	struct simhv_port_rec mine;

	if (simhv_port_rec_read(&h->hv, h->hv.domid, port, &mine) < 0)
		return true;
	return mine.state != SIMHV_PORT_INTERDOMAIN || mine.remote_dom != rdom ||
	       mine.remote_port != rport || !simhv_sock_alive(&h->hv, mine.sock);
}

/* Xen's rule: the remote port exists, is unbound, and was allocated for us.
 * A binding to a port of ours whose process died counts as unbound. */
static bool remote_port_bindable(xenevtchn_handle *h, uint32_t rdom,
				 uint32_t rport, struct simhv_port_rec *rrec)
{
	if (rport == 0 || rport >= SIMHV_MAX_PORT ||
	    simhv_port_rec_read(&h->hv, rdom, rport, rrec) < 0 ||
	    rrec->remote_dom != h->hv.domid || !simhv_sock_alive(&h->hv, rrec->sock))
		return false;
	return rrec->state == SIMHV_PORT_UNBOUND ||
	       binding_is_stale(h, rrec->remote_port, rdom, rport);
}

/* Link both ends, with both domains locked. */
static int bind_locked(xenevtchn_handle *h, uint32_t rdom, uint32_t rport,
		       struct simhv_port_rec *rrec, struct evtchn_port **out)
{
	struct evtchn_port *p;
	uint32_t port;

	if (port_alloc(h, &port) < 0 || !(p = port_open(h, port)))
		return -1;
	rrec->state = SIMHV_PORT_INTERDOMAIN;
	rrec->remote_dom = h->hv.domid;
	rrec->remote_port = port;
	if (port_publish(h, p, SIMHV_PORT_INTERDOMAIN, rdom, rport) < 0 ||
	    simhv_port_rec_write(&h->hv, rdom, rport, rrec) < 0) {
		int err = errno;
		char path[PATH_MAX];
		if (simhv_port_rec_path(&h->hv, h->hv.domid, port, path, sizeof(path)) == 0)
			unlink(path);
		port_close(h, p);
		errno = err;
		return -1;
	}
	*out = p;
	return 0;
}

xenevtchn_port_or_error_t
xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
			   evtchn_port_t remote_port)
{
	struct simhv_port_rec rrec;
	struct evtchn_port *p = NULL;
	struct simhv_lock lk;
	int rc = -1;

	if (domid > 0xffff) {
		errno = EINVAL;
		return -1;
	}
	if (simhv_lock_domains(&xce->hv, xce->hv.domid, domid, &lk) < 0)
		return -1;
	if (!remote_port_bindable(xce, domid, remote_port, &rrec))
		errno = EINVAL;
	else
		rc = bind_locked(xce, domid, remote_port, &rrec, &p);
	simhv_unlock_domains(&lk);
	if (rc < 0)
		return -1;
	if (simhv_sock_addr(&xce->hv, rrec.sock, &p->peer, &p->peer_len) == 0)
		p->peer_known = true;
	/* Xen marks the new local port pending: notifications sent while the
	 * remote port was unbound were lost, so the binder must look. */
	struct sockaddr_un self;
	socklen_t selflen;
	if (simhv_sock_addr(&xce->hv, p->sock_name, &self, &selflen) == 0)
		simhv_send_event(p->sock, &self, selflen, p->port);
	return (xenevtchn_port_or_error_t)p->port;
}

/* Revert the peer of our port to unbound (Xen's evtchn_close), if it is
 * still bound to us; then forget our port.  Both domains locked. */
static void unbind_locked(xenevtchn_handle *h, struct evtchn_port *p,
			  const struct simhv_port_rec *mine)
{
	struct simhv_port_rec peer;
	char path[PATH_MAX];

	if (mine->state == SIMHV_PORT_INTERDOMAIN &&
	    simhv_port_rec_read(&h->hv, mine->remote_dom, mine->remote_port, &peer) == 0 &&
	    peer.state == SIMHV_PORT_INTERDOMAIN && peer.remote_dom == h->hv.domid &&
	    peer.remote_port == p->port) {
		peer.state = SIMHV_PORT_UNBOUND;
		peer.remote_port = 0;
		simhv_port_rec_write(&h->hv, mine->remote_dom, mine->remote_port, &peer);
	}
	if (simhv_port_rec_path(&h->hv, h->hv.domid, p->port, path, sizeof(path)) == 0)
		unlink(path);
	port_close(h, p);
}

/* Our port's record, or "unbound" if a hostile or broken file hides it. */
static void own_rec_read(xenevtchn_handle *h, uint32_t port, uint32_t dflt_dom,
			 struct simhv_port_rec *rec)
{
	if (simhv_port_rec_read(&h->hv, h->hv.domid, port, rec) < 0) {
		rec->state = SIMHV_PORT_UNBOUND;
		rec->remote_dom = dflt_dom;
	}
}

int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct evtchn_port *p = port_find(xce, port);
	struct simhv_port_rec mine;
	struct simhv_lock lk;

	if (!p)
		return -1;
	/* Our record names the peer's domain, whose lock we need; a peer may
	 * bind our unbound port meanwhile, so look again once locked. */
	for (int tries = 0; tries < 8; tries++) {
		uint32_t rdom;
		own_rec_read(xce, port, xce->hv.domid, &mine);
		rdom = mine.remote_dom;
		if (simhv_lock_domains(&xce->hv, xce->hv.domid, rdom, &lk) < 0)
			break;
		own_rec_read(xce, port, rdom, &mine);
		if (mine.remote_dom == rdom) {
			unbind_locked(xce, p, &mine);
			simhv_unlock_domains(&lk);
			return 0;
		}
		simhv_unlock_domains(&lk);
	}
	/* Cannot lock the peer: still free our side, as closing would. */
	mine.state = SIMHV_PORT_UNBOUND;
	unbind_locked(xce, p, &mine);
	return 0;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct evtchn_port *p = port_find(xce, port);

	if (!p)
		return -1;
	/* For the seccomp test: a system call no backend loop makes, from
	 * inside the process under test, with no test code in the proxy. */
	if (xce->probe_forbidden)
		syscall(SYS_personality, 0xffffffffUL);
	if (p->peer_known &&
	    simhv_send_event(p->sock, &p->peer, p->peer_len, port) == 0)
		return 0;
	/* First use, or the peer went away: ask the records who it is now.
	 * An unbound, closed or dead peer drops the event, as Xen does. */
	p->peer_known = simhv_port_peer_addr(&xce->hv, xce->hv.domid, port,
					     &p->peer, &p->peer_len) == 0;
	if (p->peer_known &&
	    simhv_send_event(p->sock, &p->peer, p->peer_len, port) < 0)
		p->peer_known = false;
	return 0;
}

/* Clear a port's pending bit: every queued datagram is that one bit. */
static void port_drain(struct evtchn_port *p)
{
	struct mmsghdr msgs[DRAIN_BATCH];
	struct iovec iov[DRAIN_BATCH];
	uint32_t buf[DRAIN_BATCH];

	for (int i = 0; i < DRAIN_BATCH; i++) {
		iov[i] = (struct iovec){ .iov_base = &buf[i], .iov_len = sizeof(buf[i]) };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	/* A short batch means the queue is empty: one call in the usual case. */
	for (int i = 0; i < DRAIN_MAX; i++) {
		int n = recvmmsg(p->sock, msgs, DRAIN_BATCH, MSG_DONTWAIT, NULL);
		if (n < DRAIN_BATCH && !(n < 0 && errno == EINTR))
			break;
	}
}

xenevtchn_port_or_error_t xenevtchn_pending(xenevtchn_handle *xce)
{
	struct epoll_event ev;
	struct evtchn_port *p;
	int n;

	do
		n = epoll_wait(xce->epfd, &ev, 1, 0);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		if (n == 0)
			errno = EAGAIN;
		return -1;
	}
	/* EPOLLONESHOT has disarmed the port's socket: it is masked now. */
	p = ev.data.ptr;
	p->masked = true;
	port_drain(p);
	return (xenevtchn_port_or_error_t)p->port;
}

int xenevtchn_unmask(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct evtchn_port *p = port_find(xce, port);
	struct epoll_event ev = { .events = PORT_EPOLL_EVENTS };

	if (!p || !p->masked)
		return 0;   /* /dev/xen/evtchn ignores ports that are not ours */
	ev.data.ptr = p;
	if (epoll_ctl(xce->epfd, EPOLL_CTL_MOD, p->sock, &ev) < 0)
		return -1;
	p->masked = false;
	return 0;
}
