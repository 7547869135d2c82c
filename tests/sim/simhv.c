/* SPDX-License-Identifier: MIT */
/*
 * simhv.c - the simulated hypervisor's files under $XENSIM_DIR.  See simhv.h
 * and tests/sim/README.md for the layout.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "simhv.h"

/* $XENSIM_DIR made absolute, so a caller that changes directory later (a
 * daemon) still reaches the sockets and records. */
static int dir_absolute(const char *dir, char *buf, size_t len)
{
	char cwd[PATH_MAX];

	if (dir[0] == '/')
		return simhv_path(buf, len, "%s", dir);
	if (!getcwd(cwd, sizeof(cwd)))
		return -1;
	return simhv_path(buf, len, "%s/%s", cwd, dir);
}

int simhv_init(struct simhv *hv, const char *lib)
{
	const char *dir = getenv("XENSIM_DIR");
	const char *dom = getenv("XENSIM_DOMID");

	if (!dir || !*dir) {
		fprintf(stderr, "%s (xensim test library): XENSIM_DIR is not set; "
			"it names the simulated host's directory "
			"(see tests/sim/README.md)\n", lib);
		errno = ENOENT;
		return -1;
	}
	if (dir_absolute(dir, hv->dir, sizeof(hv->dir)) < 0) {
		fprintf(stderr, "%s (xensim test library): XENSIM_DIR=%s: %s\n",
			lib, dir, strerror(errno));
		return -1;
	}
	hv->domid = 0;
	if (dom && *dom && simhv_parse_u32(dom, 0x7fef, &hv->domid) < 0) {
		fprintf(stderr, "%s (xensim test library): XENSIM_DOMID=%s is not "
			"a domain id\n", lib, dom);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int simhv_path(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int simhv_mkdirs(const char *path)
{
	char buf[PATH_MAX];

	if (simhv_path(buf, sizeof(buf), "%s", path) < 0)
		return -1;
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, SIMHV_DIR_MODE) == 0)
			chmod(buf, SIMHV_DIR_MODE);   /* past the umask */
		else if (errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			return 0;
	}
}

int simhv_write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX];
	size_t len = strlen(text);
	bool written;
	int fd, err;

	if (simhv_path(tmp, sizeof(tmp), "%s.XXXXXX", path) < 0)
		return -1;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -1;
	written = write(fd, text, len) == (ssize_t)len && fchmod(fd, SIMHV_FILE_MODE) == 0;
	err = errno;
	if (close(fd) < 0 && written) {
		written = false;
		err = errno;
	}
	if (written && rename(tmp, path) == 0)
		return 0;
	if (written)
		err = errno;
	unlink(tmp);
	errno = err ? err : EIO;
	return -1;
}

ssize_t simhv_read_small(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return n;
}

int simhv_parse_u32(const char *s, uint32_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!s || !*s)
		goto bad;
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			goto bad;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v > max)
			goto bad;
	}
	if (s[0] == '0' && s[1] != '\0')   /* one spelling per number */
		goto bad;
	*out = (uint32_t)v;
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

/* ---- event-channel records ---------------------------------------------- */

int simhv_port_rec_path(const struct simhv *hv, uint32_t dom, uint32_t port,
			char *buf, size_t len)
{
	return simhv_path(buf, len, "%s/evtchn/%u/%u", hv->dir, dom, port);
}

/* A socket name is ours only if it cannot escape evtchn/sock/. */
static bool sock_name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > SIMHV_SOCK_NAME_MAX || s[0] < '0' || s[0] > '9')
		return false;
	return strspn(s, "0123456789abcdef.") == n;
}

static int port_rec_parse(char *text, struct simhv_port_rec *rec)
{
	char *save = NULL;
	char *word[5];
	int n = 0;

	for (char *w = strtok_r(text, " \n", &save); w; w = strtok_r(NULL, " \n", &save)) {
		if (n == 5)
			goto bad;
		word[n++] = w;
	}
	if (n == 3 && strcmp(word[0], "unbound") == 0) {
		rec->state = SIMHV_PORT_UNBOUND;
		rec->remote_port = 0;
	} else if (n == 4 && strcmp(word[0], "interdomain") == 0) {
		rec->state = SIMHV_PORT_INTERDOMAIN;
		if (simhv_parse_u32(word[2], SIMHV_MAX_PORT - 1, &rec->remote_port) < 0)
			goto bad;
	} else {
		goto bad;
	}
	if (simhv_parse_u32(word[1], 0xffff, &rec->remote_dom) < 0 ||
	    !sock_name_ok(word[n - 1]))
		goto bad;
	strcpy(rec->sock, word[n - 1]);
	return 0;
bad:
	errno = EINVAL;
	return -1;
}

int simhv_port_rec_read(const struct simhv *hv, uint32_t dom, uint32_t port,
			struct simhv_port_rec *rec)
{
	char path[PATH_MAX];
	char text[128];

	if (simhv_port_rec_path(hv, dom, port, path, sizeof(path)) < 0 ||
	    simhv_read_small(path, text, sizeof(text)) < 0)
		return -1;
	return port_rec_parse(text, rec);
}

int simhv_port_rec_write(const struct simhv *hv, uint32_t dom, uint32_t port,
			 const struct simhv_port_rec *rec)
{
	char path[PATH_MAX];
	char text[128];

	if (rec->state == SIMHV_PORT_UNBOUND)
		snprintf(text, sizeof(text), "unbound %u %s\n",
			 rec->remote_dom, rec->sock);
	else
		snprintf(text, sizeof(text), "interdomain %u %u %s\n",
			 rec->remote_dom, rec->remote_port, rec->sock);
	if (simhv_port_rec_path(hv, dom, port, path, sizeof(path)) < 0)
		return -1;
	return simhv_write_atomic(path, text);
}

int simhv_sock_addr(const struct simhv *hv, const char *sock,
		    struct sockaddr_un *addr, socklen_t *addrlen)
{
	memset(addr, 0, sizeof(*addr));
	addr->sun_family = AF_UNIX;
	if (simhv_path(addr->sun_path, sizeof(addr->sun_path),
		       "%s/evtchn/sock/%s", hv->dir, sock) < 0)
		return -1;
	*addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			       strlen(addr->sun_path) + 1);
	return 0;
}

bool simhv_sock_alive(const struct simhv *hv, const char *sock)
{
	struct sockaddr_un addr;
	socklen_t addrlen;
	bool alive;
	int fd;

	if (simhv_sock_addr(hv, sock, &addr, &addrlen) < 0)
		return false;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;   /* cannot tell: never steal a port on a guess */
	/* connect() on a datagram socket sends nothing: no spurious event.
	 * A dead owner's socket file refuses (or is gone). */
	alive = connect(fd, (struct sockaddr *)&addr, addrlen) == 0 ||
		errno == EPERM || errno == EAGAIN;
	close(fd);
	return alive;
}

int simhv_port_peer_addr(const struct simhv *hv, uint32_t dom, uint32_t port,
			 struct sockaddr_un *addr, socklen_t *addrlen)
{
	struct simhv_port_rec mine, peer;

	if (simhv_port_rec_read(hv, dom, port, &mine) < 0)
		return -1;
	if (mine.state != SIMHV_PORT_INTERDOMAIN)
		goto unbound;
	/* A peer that closed, or a dead one whose port number was reused, no
	 * longer points back at us. */
	if (simhv_port_rec_read(hv, mine.remote_dom, mine.remote_port, &peer) < 0 ||
	    peer.state != SIMHV_PORT_INTERDOMAIN ||
	    peer.remote_dom != dom || peer.remote_port != port)
		goto unbound;
	return simhv_sock_addr(hv, peer.sock, addr, addrlen);
unbound:
	errno = ENOTCONN;
	return -1;
}

int simhv_send_event(int fd, const struct sockaddr_un *addr, socklen_t addrlen,
		     uint32_t port)
{
	ssize_t n = sendto(fd, &port, sizeof(port), MSG_DONTWAIT | MSG_NOSIGNAL,
			   (const struct sockaddr *)addr, addrlen);

	if (n == (ssize_t)sizeof(port) || (n < 0 && (errno == EAGAIN ||
						      errno == EWOULDBLOCK)))
		return 0;
	return -1;
}

/* ---- the daemon's protocol ---------------------------------------------- */

int simhv_connect(const struct simhv *hv, const char *lib, bool cloexec)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct simhv_rep rep;
	int fd, err;

	if (simhv_path(addr.sun_path, sizeof(addr.sun_path), "%s/%s", hv->dir,
		       SIMHV_SOCKET) < 0) {
		fprintf(stderr, "%s (xensim test library): %s/%s: %s\n", lib, hv->dir,
			SIMHV_SOCKET, strerror(errno));
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | (cloexec ? SOCK_CLOEXEC : 0), 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		err = errno;
		fprintf(stderr, "%s (xensim test library): connect %s: %s (is the simulated "
			"host's simhvd running? xensim start starts it)\n", lib, addr.sun_path,
			strerror(err));
		close(fd);
		errno = err;
		return -1;
	}
	if (simhv_call(fd, SIMHV_OP_HELLO, hv->domid, 0, 0, &rep, NULL) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* The descriptor an SCM_RIGHTS message carries, or -1. */
static int received_fd(struct msghdr *mh)
{
	int fd = -1;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	}
	return fd;
}

int simhv_call(int conn, uint32_t op, uint32_t a, uint32_t b, uint32_t c,
	       struct simhv_rep *rep, int *fd)
{
	struct simhv_req req = { .op = op, .a = a, .b = b, .c = c };
	union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } ctl;
	struct iovec iov = { .iov_base = rep, .iov_len = sizeof(*rep) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf, .msg_controllen = sizeof(ctl.buf) };
	ssize_t n;
	int got;

	if (fd)
		*fd = -1;
	if (send(conn, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		goto gone;
	do
		n = recvmsg(conn, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	got = n > 0 ? received_fd(&mh) : -1;
	if (n != (ssize_t)sizeof(*rep) || (mh.msg_flags & MSG_CTRUNC)) {
		if (got >= 0)
			close(got);
		goto gone;
	}
	rep->sock[sizeof(rep->sock) - 1] = rep->peer[sizeof(rep->peer) - 1] = '\0';
	if (rep->err) {
		if (got >= 0)
			close(got);
		errno = rep->err;
		return -1;
	}
	if (fd)
		*fd = got;
	else if (got >= 0)
		close(got);
	return 0;
gone:
	errno = EIO;   /* the daemon is gone or spoke nonsense */
	return -1;
}
