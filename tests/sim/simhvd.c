/* SPDX-License-Identifier: MIT */
/*
 * simhvd.c - the simulated hypervisor's daemon (tests/sim/README.md).
 *
 * Usage: simhvd --dir XENSIM_DIR [--pid-file FILE]
 *
 * The test libxengnttab.so.1 and libxenevtchn.so.1 connect to
 * $XENSIM_DIR/hv.sock when a handle opens and ask this daemon for what
 * dom0's gntdev, gntalloc and evtchn drivers do behind their ioctls: open a
 * granted page, grant one, make and bind a port, unbind it.  The answer
 * carries a descriptor (the page's file, the port's socket), so a process
 * that has dropped root and installed a seccomp filter since it opened its
 * handles still maps and binds, touching no file itself.  What moves data
 * stays between the processes: shared pages are MAP_SHARED files, an event
 * is a datagram from one port's socket to its peer's.
 *
 * One epoll loop, no threads, no timers; requests are served one at a time,
 * so the records need no locks.  A client's domain is the one its HELLO
 * names (the test libraries read XENSIM_DOMID).  A client that goes away
 * leaves its records: its port sockets died with it, and the records of a
 * dead port read as gone (simhv_sock_alive), as before the daemon.  SIGTERM
 * ends it (default action: nothing to flush).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "simhv.h"

/* A ref of ours that a client shares, a port it bound: what it may undo. */
struct port {
	struct port *next;
	uint32_t port;
	char sock[SIMHV_SOCK_NAME_MAX + 1];
};

struct client {
	int fd;
	bool hello;
	uint32_t domid;
	struct port *ports;
};

struct daemon {
	struct simhv hv;          /* hv.dir; hv.domid unused */
	int listen_fd, epoll_fd;
	int grant_dirfd;          /* $XENSIM_DIR/grant */
};

static void say(const char *fmt, const char *arg, int err)
{
	fprintf(stderr, "simhvd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, ": %s\n", strerror(err));
}

/* ---- grants ---------------------------------------------------------------- */

/* grant/D/REF.G, opened for grantee G if it is a page D granted to G. */
static int grant_open(struct daemon *d, const struct client *c, uint32_t dom,
		      uint32_t ref, bool writing)
{
	char name[64];
	struct stat st;
	int fd;

	snprintf(name, sizeof(name), "%u/%u.%u", dom, ref, c->domid);
	fd = openat(d->grant_dirfd, name,
		    (writing ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		goto bad_ref;
	/* A read-only grant is mode 0444; as root open() would not refuse. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != SIMHV_PAGE_SIZE || (writing && !(st.st_mode & S_IWUSR))) {
		close(fd);
		goto bad_ref;
	}
	return fd;
bad_ref:
	/* What gntdev reports for a bad ref or a grant to someone else. */
	errno = EINVAL;
	return -1;
}

static void grant_revoke(struct daemon *d, const struct client *c, uint32_t grantee,
			 uint32_t ref)
{
	char name[64];

	/* The grantee's name first: REF.G never exists without REF. */
	snprintf(name, sizeof(name), "%u/%u.%u", c->domid, ref, grantee);
	unlinkat(d->grant_dirfd, name, 0);
	snprintf(name, sizeof(name), "%u/%u", c->domid, ref);
	unlinkat(d->grant_dirfd, name, 0);
}

/* Publish the page file tmp as the lowest free ref of the client's domain. */
static int grant_publish(struct daemon *d, const struct client *c, const char *tmp,
			 uint32_t grantee, uint32_t *ref)
{
	char name[64];

	for (uint32_t r = SIMHV_FIRST_GRANT_REF; r < SIMHV_MAX_GRANT_REF; r++) {
		snprintf(name, sizeof(name), "%u/%u", c->domid, r);
		if (linkat(d->grant_dirfd, tmp, d->grant_dirfd, name, 0) < 0) {
			if (errno == EEXIST)
				continue;   /* taken: link() is our O_EXCL */
			return -1;
		}
		snprintf(name, sizeof(name), "%u/%u.%u", c->domid, r, grantee);
		unlinkat(d->grant_dirfd, name, 0);   /* an orphan of an interrupted revoke */
		if (linkat(d->grant_dirfd, tmp, d->grant_dirfd, name, 0) < 0) {
			int err = errno;
			grant_revoke(d, c, grantee, r);
			errno = err;
			return -1;
		}
		*ref = r;
		return 0;
	}
	errno = ENOSPC;
	return -1;
}

/* A new zeroed page (like Linux's __GFP_ZERO page) granted to grantee. */
static int grant_create(struct daemon *d, const struct client *c, uint32_t grantee,
			bool writable, uint32_t *ref)
{
	char path[PATH_MAX], tmp[64];
	int fd, err;

	if (simhv_path(path, sizeof(path), "%s/grant/%u", d->hv.dir, c->domid) < 0 ||
	    simhv_mkdirs(path) < 0 ||
	    simhv_path(path, sizeof(path), "%s/grant/%u/.new.XXXXXX", d->hv.dir, c->domid) < 0)
		return -1;
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0)
		return -1;
	snprintf(tmp, sizeof(tmp), "%u/%s", c->domid, strrchr(path, '/') + 1);
	if (ftruncate(fd, SIMHV_PAGE_SIZE) < 0 ||
	    fchmod(fd, writable ? SIMHV_FILE_MODE : 0444) < 0 ||
	    grant_publish(d, c, tmp, grantee, ref) < 0) {
		err = errno;
		close(fd);
		unlink(path);
		errno = err;
		return -1;
	}
	unlink(path);
	return fd;
}

/* ---- ports -------------------------------------------------------------------- */

static struct port *port_of(struct client *c, uint32_t port)
{
	for (struct port *p = c->ports; p; p = p->next)
		if (p->port == port)
			return p;
	errno = ENOTCONN;   /* what /dev/xen/evtchn says of a port not ours */
	return NULL;
}

/* A socket name never used before, so a stale cached address can only fail,
 * never reach a later binding that reused the port number. */
static void port_sock_name(uint32_t dom, uint32_t port, char *buf, size_t len)
{
	unsigned long long nonce;
	struct timespec ts;

	if (getrandom(&nonce, sizeof(nonce), GRND_NONBLOCK) != sizeof(nonce)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		nonce = ((unsigned long long)getpid() << 40) ^
			(unsigned long long)ts.tv_sec * 1000000000ull ^
			(unsigned long long)ts.tv_nsec;
	}
	snprintf(buf, len, "%u.%u.%016llx", dom, port, nonce);
}

/* The socket of a newly allocated port, bound to its name; the client gets
 * it, and a dead client's port is dead because its socket closed with it. */
static int port_socket(struct daemon *d, struct port *p)
{
	struct sockaddr_un addr;
	socklen_t addrlen;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;

	if (fd < 0)
		return -1;
	if (simhv_sock_addr(&d->hv, p->sock, &addr, &addrlen) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, addrlen) < 0 ||
	    chmod(addr.sun_path, 0777) < 0) {   /* see SIMHV_FILE_MODE */
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

static void port_sock_unlink(struct daemon *d, const char *sock)
{
	struct sockaddr_un addr;
	socklen_t addrlen;

	if (simhv_sock_addr(&d->hv, sock, &addr, &addrlen) == 0)
		unlink(addr.sun_path);
}

/* Ports of a domain that have a record, from one directory listing. */
static int ports_recorded(struct daemon *d, uint32_t dom, uint64_t used[SIMHV_MAX_PORT / 64])
{
	char path[PATH_MAX], buf[4096];
	ssize_t n;
	uint32_t p;
	int fd;

	if (simhv_path(path, sizeof(path), "%s/evtchn/%u", d->hv.dir, dom) < 0)
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
static int port_alloc(struct daemon *d, uint32_t dom, uint32_t *port)
{
	struct simhv_port_rec rec;
	uint64_t used[SIMHV_MAX_PORT / 64] = { 0 };

	if (ports_recorded(d, dom, used) < 0)
		return -1;
	for (uint32_t p = 1; p < SIMHV_MAX_PORT; p++) {
		if (!(used[p / 64] & (1ULL << (p % 64)))) {
			*port = p;
			return 0;
		}
	}
	for (uint32_t p = 1; p < SIMHV_MAX_PORT; p++) {
		if (simhv_port_rec_read(&d->hv, dom, p, &rec) == 0) {
			if (simhv_sock_alive(&d->hv, rec.sock))
				continue;
			port_sock_unlink(d, rec.sock);
		} else if (errno != ENOENT && errno != EINVAL) {
			return -1;
		}
		*port = p;
		return 0;
	}
	errno = ENOSPC;
	return -1;
}

/* A new port of the client's: allocated, its socket made, its record
 * written.  The port is added to the client's list; its socket returned. */
static int port_new(struct daemon *d, struct client *c, enum simhv_port_state state,
		    uint32_t rdom, uint32_t rport, struct port **out)
{
	struct simhv_port_rec rec = { .state = state, .remote_dom = rdom, .remote_port = rport };
	struct port *p = calloc(1, sizeof(*p));
	char path[PATH_MAX];
	int fd = -1, err;

	if (!p)
		return -1;
	if (simhv_path(path, sizeof(path), "%s/evtchn/%u", d->hv.dir, c->domid) < 0 ||
	    simhv_mkdirs(path) < 0 || port_alloc(d, c->domid, &p->port) < 0)
		goto fail;
	port_sock_name(c->domid, p->port, p->sock, sizeof(p->sock));
	fd = port_socket(d, p);
	if (fd < 0)
		goto fail;
	strcpy(rec.sock, p->sock);
	if (simhv_port_rec_write(&d->hv, c->domid, p->port, &rec) < 0) {
		port_sock_unlink(d, p->sock);
		goto fail;
	}
	p->next = c->ports;
	c->ports = p;
	*out = p;
	return fd;
fail:
	err = errno;
	if (fd >= 0)
		close(fd);
	free(p);
	errno = err;
	return -1;
}

/* Is the client's port dead or no longer bound to (rdom, rport)?  Then the
 * remote port's binding to it is stale: Xen would have reverted the remote
 * port to unbound when our side closed. */
static bool binding_is_stale(struct daemon *d, uint32_t dom, uint32_t port,
			     uint32_t rdom, uint32_t rport)
{
	struct simhv_port_rec mine;

	if (simhv_port_rec_read(&d->hv, dom, port, &mine) < 0)
		return true;
	return mine.state != SIMHV_PORT_INTERDOMAIN || mine.remote_dom != rdom ||
	       mine.remote_port != rport || !simhv_sock_alive(&d->hv, mine.sock);
}

/* Xen's rule: the remote port exists, is unbound, and was allocated for us.
 * A binding to a port of ours whose process died counts as unbound. */
static bool remote_port_bindable(struct daemon *d, uint32_t dom, uint32_t rdom,
				 uint32_t rport, struct simhv_port_rec *rrec)
{
	if (rport == 0 || rport >= SIMHV_MAX_PORT ||
	    simhv_port_rec_read(&d->hv, rdom, rport, rrec) < 0 ||
	    rrec->remote_dom != dom || !simhv_sock_alive(&d->hv, rrec->sock))
		return false;
	return rrec->state == SIMHV_PORT_UNBOUND ||
	       binding_is_stale(d, dom, rrec->remote_port, rdom, rport);
}

/* Revert the peer of our port to unbound (Xen's evtchn_close), if it is
 * still bound to us; then forget our port. */
static void port_unbind(struct daemon *d, struct client *c, struct port *p)
{
	struct simhv_port_rec mine, peer;
	char path[PATH_MAX];

	if (simhv_port_rec_read(&d->hv, c->domid, p->port, &mine) == 0 &&
	    mine.state == SIMHV_PORT_INTERDOMAIN &&
	    simhv_port_rec_read(&d->hv, mine.remote_dom, mine.remote_port, &peer) == 0 &&
	    peer.state == SIMHV_PORT_INTERDOMAIN && peer.remote_dom == c->domid &&
	    peer.remote_port == p->port) {
		peer.state = SIMHV_PORT_UNBOUND;
		peer.remote_port = 0;
		simhv_port_rec_write(&d->hv, mine.remote_dom, mine.remote_port, &peer);
	}
	if (simhv_port_rec_path(&d->hv, c->domid, p->port, path, sizeof(path)) == 0)
		unlink(path);
	port_sock_unlink(d, p->sock);
	for (struct port **pp = &c->ports; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	free(p);
}

/* bind_interdomain: link both ends. */
static int port_bind(struct daemon *d, struct client *c, uint32_t rdom, uint32_t rport,
		     struct simhv_rep *rep)
{
	struct simhv_port_rec rrec;
	struct sockaddr_un self;
	socklen_t selflen;
	struct port *p;
	int fd;

	if (rdom > 0xffff || !remote_port_bindable(d, c->domid, rdom, rport, &rrec)) {
		errno = EINVAL;
		return -1;
	}
	fd = port_new(d, c, SIMHV_PORT_INTERDOMAIN, rdom, rport, &p);
	if (fd < 0)
		return -1;
	strcpy(rep->peer, rrec.sock);
	rrec.state = SIMHV_PORT_INTERDOMAIN;
	rrec.remote_dom = c->domid;
	rrec.remote_port = p->port;
	if (simhv_port_rec_write(&d->hv, rdom, rport, &rrec) < 0) {
		int err = errno;
		port_unbind(d, c, p);
		close(fd);
		errno = err;
		return -1;
	}
	/* Xen marks the new local port pending: notifications sent while the
	 * remote port was unbound were lost, so the binder must look. */
	if (simhv_sock_addr(&d->hv, p->sock, &self, &selflen) == 0)
		simhv_send_event(fd, &self, selflen, p->port);
	rep->a = p->port;
	strcpy(rep->sock, p->sock);
	return fd;
}

/* An event to the peer of the client's port, from a socket of our own. */
static int event_send(struct daemon *d, const struct client *c, uint32_t port)
{
	struct sockaddr_un addr;
	socklen_t addrlen;
	int fd, r;

	if (simhv_port_peer_addr(&d->hv, c->domid, port, &addr, &addrlen) < 0)
		return 0;   /* unbound or dead peer: dropped, as Xen drops it */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	r = simhv_send_event(fd, &addr, addrlen, port);
	close(fd);
	return r;
}

/* ---- requests ------------------------------------------------------------------ */

#define NO_FD (-2)

/* Serve one request: its reply in rep, and the descriptor to pass, NO_FD,
 * or -1 with errno. */
static int serve(struct daemon *d, struct client *c, const struct simhv_req *q,
		 struct simhv_rep *rep)
{
	struct sockaddr_un addr;
	socklen_t addrlen;
	struct port *p;
	int fd = NO_FD, r = 0;

	if (!c->hello && q->op != SIMHV_OP_HELLO) {
		errno = EPROTO;
		return -1;
	}
	switch (q->op) {
	case SIMHV_OP_HELLO:
		if (c->hello || q->a > 0x7fef) {
			errno = EINVAL;
			return -1;
		}
		c->hello = true;
		c->domid = q->a;
		break;
	case SIMHV_OP_GRANT_MAP:
		fd = grant_open(d, c, q->a, q->b, q->c != 0);
		r = fd < 0 ? -1 : 0;
		break;
	case SIMHV_OP_GRANT_SHARE:
		fd = grant_create(d, c, q->a, q->b != 0, &rep->a);
		r = fd < 0 ? -1 : 0;
		break;
	case SIMHV_OP_GRANT_REVOKE:
		grant_revoke(d, c, q->a, q->b);
		break;
	case SIMHV_OP_EVENT_SEND:
		r = event_send(d, c, q->a);
		break;
	case SIMHV_OP_BIND_UNBOUND:
		if (q->a > 0xffff) {
			errno = EINVAL;
			return -1;
		}
		fd = port_new(d, c, SIMHV_PORT_UNBOUND, q->a, 0, &p);
		if (fd < 0)
			return -1;
		rep->a = p->port;
		strcpy(rep->sock, p->sock);
		break;
	case SIMHV_OP_BIND:
		fd = port_bind(d, c, q->a, q->b, rep);
		r = fd < 0 ? -1 : 0;
		break;
	case SIMHV_OP_UNBIND:
		if (!(p = port_of(c, q->a)))
			return -1;
		port_unbind(d, c, p);
		break;
	case SIMHV_OP_PEER:
		if (!port_of(c, q->a))
			return -1;
		/* A peer that closed, or a dead one whose port number was
		 * reused, no longer points back at us. */
		r = simhv_port_peer_addr(&d->hv, c->domid, q->a, &addr, &addrlen);
		if (r == 0)
			snprintf(rep->peer, sizeof(rep->peer), "%s",
				 strrchr(addr.sun_path, '/') + 1);
		break;
	default:
		errno = EINVAL;
		return -1;
	}
	return r < 0 || fd == -1 ? -1 : fd;
}

static void reply(struct client *c, struct simhv_rep *rep, int fd)
{
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
	struct iovec iov = { .iov_base = rep, .iov_len = sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (fd >= 0) {
		struct cmsghdr *cm;

		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = sizeof(ctl.buf);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	/* A client waits for each reply, so its queue never fills; one that
	 * does not is broken, and a lost reply is its own failure. */
	sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void client_free(struct daemon *d, struct client *c)
{
	epoll_ctl(d->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	while (c->ports) {
		struct port *p = c->ports;
		c->ports = p->next;
		free(p);
	}
	free(c);
}

/* Every request the client has queued; false once it has gone. */
static bool client_read(struct daemon *d, struct client *c)
{
	struct simhv_req q;
	ssize_t n;

	while ((n = recv(c->fd, &q, sizeof(q), MSG_DONTWAIT)) == (ssize_t)sizeof(q)) {
		struct simhv_rep rep = { 0 };
		int fd = serve(d, c, &q, &rep);

		if (fd == -1)
			rep = (struct simhv_rep){ .err = errno ? errno : EIO };
		reply(c, &rep, fd);
		if (fd >= 0)
			close(fd);
	}
	return n < 0 && (errno == EAGAIN || errno == EINTR);
}

static void accept_clients(struct daemon *d)
{
	int fd;

	while ((fd = accept4(d->listen_fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		struct client *c = calloc(1, sizeof(*c));
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };

		if (!c || epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->fd = fd;
	}
}

static void __attribute__((noreturn)) run(struct daemon *d)
{
	struct epoll_event ev[64];

	for (;;) {
		int n = epoll_wait(d->epoll_fd, ev, 64, -1);

		for (int i = 0; i < n; i++) {
			struct client *c = ev[i].data.ptr;

			if (c == NULL)
				accept_clients(d);
			else if (!client_read(d, c))
				client_free(d, c);
		}
	}
}

/* ---- start ---------------------------------------------------------------------- */

static int listen_on(struct daemon *d)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	char path[PATH_MAX];

	if (simhv_path(path, sizeof(path), "%s/grant", d->hv.dir) < 0 || simhv_mkdirs(path) < 0 ||
	    (d->grant_dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    simhv_path(path, sizeof(path), "%s/evtchn/sock", d->hv.dir) < 0 ||
	    simhv_mkdirs(path) < 0) {
		say("%s", path, errno);
		return -1;
	}
	if (simhv_path(addr.sun_path, sizeof(addr.sun_path), "%s/%s", d->hv.dir,
		       SIMHV_SOCKET) < 0) {
		say("%s/" SIMHV_SOCKET, d->hv.dir, errno);
		return -1;
	}
	unlink(addr.sun_path);   /* a crashed daemon's: xensim start checked */
	d->listen_fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d->listen_fd < 0 || d->epoll_fd < 0 ||
	    bind(d->listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    chmod(addr.sun_path, SIMHV_FILE_MODE) < 0 || listen(d->listen_fd, 512) < 0 ||
	    epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, d->listen_fd, &ev) < 0) {
		say("listen on %s", addr.sun_path, errno);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dir", required_argument, NULL, 'd' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .listen_fd = -1, .epoll_fd = -1, .grant_dirfd = -1 };
	const char *pid_file = NULL;
	struct rlimit rl;
	char pid[32];
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'd')
			setenv("XENSIM_DIR", optarg, 1);
		else if (o == 'p')
			pid_file = optarg;
		else
			return 64;
	}
	if (optind != argc || !getenv("XENSIM_DIR")) {
		fprintf(stderr, "usage: simhvd --dir XENSIM_DIR [--pid-file FILE]\n");
		return 64;
	}
	unsetenv("XENSIM_DOMID");
	if (simhv_init(&d.hv, "simhvd") < 0)
		return 66;
	/* One connection per handle: a host of 1,000 guests and 1,000 proxies
	 * has 4,000. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (listen_on(&d) < 0)
		return 71;
	snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (pid_file && simhv_write_atomic(pid_file, pid) < 0) {
		say("write %s", pid_file, errno);
		return 73;
	}
	run(&d);
}
