/* SPDX-License-Identifier: MIT */
/*
 * evtchn-sim.c - libxenevtchn.so.1 for the simulated host (README.md).
 *
 * Each bound port owns a nonblocking Unix datagram socket in evtchn/sock/,
 * which the daemon (simhvd.c) makes and binds and hands us when we bind
 * the port; an event is one datagram sent to the peer port's socket.
 * Datagrams queued on a port's socket are its pending bit: any number of
 * them is one event.  The handle's fd is an epoll set of the sockets of its
 * ports, each added EPOLLONESHOT, so it polls readable exactly while an
 * unmasked port is pending.  Delivering a port (xenevtchn_pending) disarms
 * its socket in the set, which is the mask, and drains its queue, which
 * clears the pending bit; xenevtchn_unmask re-arms it, and anything that
 * arrived meanwhile makes the fd readable again: re-delivery, no timers.
 *
 * Binding and unbinding are requests to the daemon, which keeps the
 * records in evtchn/D/PORT (who is bound to whom, simhv.h).  Notify sends
 * to the peer's socket address cached in the port, and asks the daemon
 * who the peer is now only when that send fails.  After xenevtchn_open no
 * call touches a file: pending, unmask and notify are epoll_wait, recvmmsg,
 * epoll_ctl and sendto on descriptors the handle holds.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
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
	bool masked;
	bool peer_known;                           /* peer, peer_len are valid */
	struct sockaddr_un peer;
	socklen_t peer_len;
};

struct xenevtchn_handle {
	struct simhv hv;
	const char *probe;          /* XENSIM_EVTCHN_PROBE: see probe_forbidden */
	int conn;                   /* to the daemon */
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

/* Start watching the socket of a port the daemon bound for us; the
 * socket is closed on failure. */
static struct evtchn_port *port_add(xenevtchn_handle *h, uint32_t port, int sock)
{
	struct evtchn_port *p = calloc(1, sizeof(*p));
	struct epoll_event ev = { .events = PORT_EPOLL_EVENTS, .data.ptr = p };

	if (!p || sock < 0 || epoll_ctl(h->epfd, EPOLL_CTL_ADD, sock, &ev) < 0) {
		int err = sock < 0 ? EIO : errno;
		if (sock >= 0)
			close(sock);
		free(p);
		errno = err;
		return NULL;
	}
	p->port = port;
	p->sock = sock;
	p->next = h->ports;
	h->ports = p;
	return p;
}

static void port_forget(xenevtchn_handle *h, struct evtchn_port *p)
{
	for (struct evtchn_port **pp = &h->ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	close(p->sock);   /* also leaves the epoll set */
	free(p);
}

/*
 * For the seccomp tests: with XENSIM_EVTCHN_PROBE=CALL, every notify first
 * makes a system call no backend loop makes, from inside the process under
 * test, with no test code in the proxy: "open" (a file to read), "socket"
 * (a new network socket), "unlink", "ioctl" (a request the loop never
 * makes), "exec-map" (new executable memory), "setuid" (back to root);
 * anything else, personality().  A filter that lets it through finds the
 * call harmless: nothing it makes is kept.
 */
static void probe_forbidden(const char *call)
{
	int fd = -1, n;
	void *m;

	if (!strcmp(call, "open"))
		fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC);
	else if (!strcmp(call, "socket"))
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	else if (!strcmp(call, "unlink"))
		unlink("/nonexistent/xensim-probe");
	else if (!strcmp(call, "ioctl"))
		ioctl(0, FIONREAD, &n);
	else if (!strcmp(call, "exec-map")) {
		m = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m != MAP_FAILED)
			munmap(m, 4096);
	} else if (!strcmp(call, "setuid")) {
		n = setuid(0);
	} else {
		syscall(SYS_personality, 0xffffffffUL);
	}
	if (fd >= 0)
		close(fd);
}

/* A port the daemon made for us, or -1: after a bind request. */
static xenevtchn_port_or_error_t port_bound(xenevtchn_handle *h, int r, int sock,
					    const struct simhv_rep *rep)
{
	struct evtchn_port *p;

	if (r < 0 || !(p = port_add(h, rep->a, sock)))
		return -1;
	if (rep->peer[0] &&
	    simhv_sock_addr(&h->hv, rep->peer, &p->peer, &p->peer_len) == 0)
		p->peer_known = true;
	return (xenevtchn_port_or_error_t)p->port;
}

xenevtchn_handle *xenevtchn_open(struct xentoollog_logger *logger,
				 unsigned int flags)
{
	xenevtchn_handle *h = calloc(1, sizeof(*h));

	(void)logger;
	if (!h)
		return NULL;
	if (simhv_init(&h->hv, "libxenevtchn") < 0)
		goto fail;
	h->conn = simhv_connect(&h->hv, "libxenevtchn", !(flags & XENEVTCHN_NO_CLOEXEC));
	if (h->conn < 0)
		goto fail;
	h->epfd = epoll_create1(flags & XENEVTCHN_NO_CLOEXEC ? 0 : EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		close(h->conn);
		goto fail;
	}
	h->probe = getenv("XENSIM_EVTCHN_PROBE");
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
	close(xce->conn);
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
	struct simhv_rep rep;
	int sock, r;

	r = simhv_call(xce->conn, SIMHV_OP_BIND_UNBOUND, domid, 0, 0, &rep, &sock);
	return port_bound(xce, r, sock, &rep);
}

/* Xen's rules (simhvd.c): the remote port exists, is unbound (or bound to
 * a port of ours whose process died) and was allocated for us; else EINVAL.
 * Like Xen, the new local port starts pending. */
xenevtchn_port_or_error_t
xenevtchn_bind_interdomain(xenevtchn_handle *xce, uint32_t domid,
			   evtchn_port_t remote_port)
{
	struct simhv_rep rep;
	int sock, r;

	r = simhv_call(xce->conn, SIMHV_OP_BIND, domid, remote_port, 0, &rep, &sock);
	return port_bound(xce, r, sock, &rep);
}

/* The daemon reverts the peer to unbound if it is still bound to us. */
int xenevtchn_unbind(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct evtchn_port *p = port_find(xce, port);
	struct simhv_rep rep;

	if (!p)
		return -1;
	/* Our side goes whatever the daemon says, as closing would. */
	simhv_call(xce->conn, SIMHV_OP_UNBIND, port, 0, 0, &rep, NULL);
	port_forget(xce, p);
	return 0;
}

int xenevtchn_notify(xenevtchn_handle *xce, evtchn_port_t port)
{
	struct evtchn_port *p = port_find(xce, port);

	if (!p)
		return -1;
	if (xce->probe)
		probe_forbidden(xce->probe);
	if (p->peer_known &&
	    simhv_send_event(p->sock, &p->peer, p->peer_len, port) == 0)
		return 0;
	/* First use, or the peer went away: ask the daemon who it is now.
	 * An unbound, closed or dead peer drops the event, as Xen does. */
	struct simhv_rep rep;
	p->peer_known = simhv_call(xce->conn, SIMHV_OP_PEER, port, 0, 0, &rep, NULL) == 0 &&
		simhv_sock_addr(&xce->hv, rep.peer, &p->peer, &p->peer_len) == 0;
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
