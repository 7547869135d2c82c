/* SPDX-License-Identifier: MIT */
/*
 * endpoint.c - listen, connect, pty and stdio endpoints (see endpoint.h).
 * Errors are left in ep->err as "syscall path: reason" for the caller to log.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/sockios.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <sysexits.h>
#include <termios.h>
#include <unistd.h>
#include "endpoint.h"
#include "unixsock.h"

/* --connect retries a refused connect after 100 ms, doubling to 5 s. */
#define CONNECT_RETRY_FIRST_MS 100
#define CONNECT_RETRY_MAX_MS   5000
/* A small send buffer bounds what a dying client can take unread with it,
 * and so what we replay to the next one; 2 KiB rings need little more. */
#define CLIENT_SNDBUF  (16 * 1024)

static int fail(struct endpoint *ep, int code, const char *fmt, ...)
{
	int e = errno;
	va_list ap;
	size_t n;

	va_start(ap, fmt);
	vsnprintf(ep->err, sizeof(ep->err), fmt, ap);
	va_end(ap);
	n = strlen(ep->err);
	snprintf(ep->err + n, sizeof(ep->err) - n, ": %s", strerror(e));
	errno = e;
	return code;
}

void endpoint_init(struct endpoint *ep, enum endpoint_kind kind, const char *path, mode_t mode)
{
	memset(ep, 0, sizeof(*ep));
	ep->kind = kind;
	ep->path = path;
	ep->mode = mode;
	ep->user_uid = (uid_t)-1;
	ep->user_gid = (gid_t)-1;
	ep->listen_fd = ep->rfd = ep->wfd = ep->pty_slave_fd = -1;
}

static bool set_unix_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path)) {
		errno = ENAMETOOLONG;
		return false;
	}
	strcpy(sa->sun_path, path);
	return true;
}

/*
 * The directory that holds a socket or pty link we make must be one no
 * other user can change: whoever can rename entries in it can swap our
 * socket for theirs (clients then talk to them) or a link for a file.
 * Trusted: root, the user we run as, and --user.  Its owner must be one of
 * them (an owner can always make it writable); group write is fine for a
 * trusted group (root's, ours, --user's) without an ACL naming others;
 * anything else writable by others needs the sticky bit, which keeps each
 * user to their own entries (as /tmp).
 */
static bool uid_trusted(const struct endpoint *ep, uid_t uid)
{
	return uid == 0 || uid == geteuid() || uid == ep->user_uid;
}

static bool gid_trusted(const struct endpoint *ep, gid_t gid)
{
	return gid == 0 || gid == getegid() || gid == ep->user_gid;
}

/* An access ACL may give write to users the mode bits do not show. */
static bool has_acl(int fd, const char *path)
{
	ssize_t n = fd >= 0 ? fgetxattr(fd, "system.posix_acl_access", NULL, 0)
		: lgetxattr(path, "system.posix_acl_access", NULL, 0);

	return n > 0;
}

static int check_dir(struct endpoint *ep)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(ep->path, '/');
	size_t len = slash == NULL ? 0 : slash == ep->path ? 1 : (size_t)(slash - ep->path);
	const char *why = NULL;
	struct stat st;
	int fd;

	if (len >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return fail(ep, EX_USAGE, "%.64s...", ep->path);
	}
	memcpy(dir, len ? ep->path : ".", len ? len : 1);
	dir[len ? len : 1] = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return fail(ep, EX_CANTCREAT, "directory %.200s", dir);
	}
	if (!uid_trusted(ep, st.st_uid))
		why = "owned by another user";
	else if (!(st.st_mode & S_ISVTX) && (st.st_mode & S_IWOTH))
		why = "writable by every user and not sticky";
	else if (!(st.st_mode & S_ISVTX) && (st.st_mode & S_IWGRP) && !gid_trusted(ep, st.st_gid))
		why = "writable by its group and not sticky";
	else if (!(st.st_mode & S_ISVTX) && (st.st_mode & S_IWGRP) && has_acl(fd, NULL))
		why = "group-writable with an ACL, and not sticky";
	close(fd);
	if (why == NULL)
		return 0;
	snprintf(ep->err, sizeof(ep->err), "directory %.200s: %s (uid %u, gid %u, mode %04o): another "
		 "user could swap what we make there; use one only root, this process's user "
		 "and --user can write, or a sticky one", dir, why, (unsigned)st.st_uid,
		 (unsigned)st.st_gid, (unsigned)(st.st_mode & 07777));
	return EX_CANTCREAT;
}

/* The socket's mode comes from the umask at bind(2), not from a chmod(2)
 * of its path afterwards, which follows whatever stands at the path by
 * then.  The umask is per process: nothing else runs here that creates
 * files (the endpoint is opened before the first xs_watch starts
 * libxenstore's reader thread, which creates none anyway). */
static int bind_listener(struct endpoint *ep, int fd, const struct sockaddr_un *sa)
{
	mode_t old = umask(0777 & ~ep->mode);
	int r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));

	umask(old);
	return r;
}

/* What bind made is a socket of ours with exactly --mode and no ACL (a
 * default ACL on the directory overrides the umask); a wrong one is removed,
 * anything else left alone. */
static int check_bound(struct endpoint *ep)
{
	struct stat st;

	if (lstat(ep->path, &st) < 0)
		return fail(ep, EX_CANTCREAT, "lstat %s", ep->path);
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		snprintf(ep->err, sizeof(ep->err), "bind %s: something else stands there now "
			 "(uid %u, mode %06o)", ep->path, (unsigned)st.st_uid, (unsigned)st.st_mode);
		return EX_CANTCREAT;
	}
	if ((st.st_mode & 07777) == ep->mode && !has_acl(-1, ep->path))
		return 0;
	snprintf(ep->err, sizeof(ep->err), "bind %s: the socket has mode %04o%s, not %04o: "
		 "a default ACL on its directory?", ep->path, (unsigned)(st.st_mode & 07777),
		 has_acl(-1, ep->path) ? " and an ACL" : "", (unsigned)ep->mode);
	unlink(ep->path);   /* ours, and wrong */
	return EX_CANTCREAT;
}

/* bind said EADDRINUSE: replace only a stale socket file, never a live one,
 * never a file that is not a socket, and never something swapped in while
 * we looked (the directory rule leaves that only to trusted users). */
static int replace_stale(struct endpoint *ep, int fd, const struct sockaddr_un *sa)
{
	struct stat before, after;

	if (lstat(ep->path, &before) < 0) {
		if (errno != ENOENT)
			return fail(ep, EX_CANTCREAT, "lstat %s", ep->path);
	} else if (!S_ISSOCK(before.st_mode)) {
		errno = EEXIST;
		return fail(ep, EX_CANTCREAT, "bind %s: not a socket", ep->path);
	} else if (unixsock_live(ep->path)) {
		errno = EADDRINUSE;
		return fail(ep, EX_CANTCREAT, "bind %s: a live socket is listening there", ep->path);
	} else if (lstat(ep->path, &after) == 0 && (after.st_dev != before.st_dev
						    || after.st_ino != before.st_ino)) {
		errno = EEXIST;
		return fail(ep, EX_CANTCREAT, "bind %s: replaced while we looked", ep->path);
	} else {
		unlink(ep->path);
	}
	if (bind_listener(ep, fd, sa) < 0)
		return fail(ep, EX_CANTCREAT, "bind %s", ep->path);
	return 0;
}

static int open_listener(struct endpoint *ep)
{
	struct sockaddr_un sa;
	int fd, r;

	if (!set_unix_addr(&sa, ep->path))
		return fail(ep, EX_USAGE, "socket path %s", ep->path);
	if ((r = check_dir(ep)) != 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return fail(ep, EX_OSERR, "socket");
	if (bind_listener(ep, fd, &sa) < 0) {
		r = errno == EADDRINUSE ? replace_stale(ep, fd, &sa)
			: fail(ep, EX_CANTCREAT, "bind %s", ep->path);
		if (r != 0) {
			close(fd);
			return r;
		}
	}
	if ((r = check_bound(ep)) != 0) {
		close(fd);
		return r;
	}
	ep->created_path = true;
	if (listen(fd, 16) < 0) {
		close(fd);
		return fail(ep, EX_CANTCREAT, "listen %s", ep->path);
	}
	ep->listen_fd = fd;
	return 0;
}

static int open_pty(struct endpoint *ep)
{
	struct termios tio;
	int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);

	if (master < 0)
		return fail(ep, EX_OSERR, "posix_openpt");
	if (grantpt(master) < 0 || unlockpt(master) < 0
	    || ptsname_r(master, ep->pty_name, sizeof(ep->pty_name)) != 0) {
		close(master);
		return fail(ep, EX_OSERR, "unlockpt /dev/ptmx");
	}
	/* Hold the slave open ourselves: with no slave open, writes to the
	 * master fail with EIO and the line is hung up on each client's
	 * close.  Held open, guest output waits in the pty's buffer (then
	 * ours) for the next reader. */
	ep->pty_slave_fd = open(ep->pty_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (ep->pty_slave_fd < 0) {
		close(master);
		return fail(ep, EX_OSERR, "open %s", ep->pty_name);
	}
	if (tcgetattr(ep->pty_slave_fd, &tio) == 0) {
		cfmakeraw(&tio);
		tcsetattr(ep->pty_slave_fd, TCSANOW, &tio);
	}
	if (ep->path != NULL) {
		struct stat st;
		int r = check_dir(ep);

		if (r != 0) {
			close(master);
			return r;
		}
		if (lstat(ep->path, &st) == 0 && S_ISLNK(st.st_mode))
			unlink(ep->path);
		if (symlink(ep->pty_name, ep->path) < 0) {
			close(master);
			return fail(ep, EX_CANTCREAT, "symlink %s -> %s", ep->path, ep->pty_name);
		}
		ep->created_path = true;
	}
	ep->rfd = ep->wfd = master;
	return 0;
}

static int open_stdio(struct endpoint *ep)
{
	/* Non-blocking, so a full pipe never stalls the loop (and the guest). */
	for (int fd = 0; fd <= 1; fd++) {
		int fl = fcntl(fd, F_GETFL);
		if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
			return fail(ep, EX_OSERR, "fcntl %s", fd ? "stdout" : "stdin");
	}
	ep->rfd = 0;
	ep->wfd = 1;
	return 0;
}

int endpoint_open(struct endpoint *ep)
{
	errno = 0;
	switch (ep->kind) {
	case EP_LISTEN:  return ep->listen_fd >= 0 ? 0 : open_listener(ep);
	case EP_CONNECT: endpoint_connect(ep); return 0;
	case EP_PTY:     return open_pty(ep);
	case EP_STDIO:   return open_stdio(ep);
	default:         errno = EINVAL; return fail(ep, EX_SOFTWARE, "no endpoint");
	}
}

void endpoint_adopt_listener(struct endpoint *ep, int fd)
{
	ep->listen_fd = fd;
	ep->inherited = true;
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

bool endpoint_has_client(const struct endpoint *ep)
{
	return ep->wfd >= 0;
}

static void take_client(struct endpoint *ep, int fd)
{
	int size = CLIENT_SNDBUF;
	socklen_t len = sizeof(size);

	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
	if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, &len) < 0 || size <= 0)
		size = 4 * CLIENT_SNDBUF;
	ep->sndbuf = size;
	ep->rfd = ep->wfd = fd;
	ep->read_eof = false;
}

bool endpoint_accept(struct endpoint *ep)
{
	int fd = accept4(ep->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0) {
		fail(ep, 0, "accept %s", ep->path ? ep->path : "(inherited socket)");
		return false;
	}
	take_client(ep, fd);
	return true;
}

bool endpoint_connect(struct endpoint *ep)
{
	struct sockaddr_un sa;
	int fd;

	if (!set_unix_addr(&sa, ep->path)) {
		fail(ep, 0, "connect %s", ep->path);
		return false;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		take_client(ep, fd);
		ep->retry_ms = 0;
		return true;
	}
	fail(ep, 0, "connect %s", ep->path);
	if (fd >= 0)
		close(fd);
	ep->retry_ms = ep->retry_ms == 0 ? CONNECT_RETRY_FIRST_MS
		: (ep->retry_ms * 2 > CONNECT_RETRY_MAX_MS ? CONNECT_RETRY_MAX_MS : ep->retry_ms * 2);
	return false;
}

bool endpoint_drop_client(struct endpoint *ep)
{
	switch (ep->kind) {
	case EP_LISTEN:
	case EP_CONNECT:
		if (ep->rfd >= 0)
			close(ep->rfd);
		ep->rfd = ep->wfd = -1;
		ep->read_eof = false;
		ep->retry_ms = 0;   /* reconnect at once, back off on failure */
		return true;
	case EP_PTY:
		return true;        /* the master stays; there is no "client" to lose */
	default:
		return false;       /* stdio: the consumer is gone for good */
	}
}

bool endpoint_is_socket(const struct endpoint *ep)
{
	return ep->kind == EP_LISTEN || ep->kind == EP_CONNECT;
}

bool endpoint_unread(const struct endpoint *ep, size_t *unread)
{
	struct pollfd pfd = { .fd = ep->wfd };
	int n = 0;

	if (ep->wfd < 0 || !endpoint_is_socket(ep) || ioctl(ep->wfd, SIOCOUTQ, &n) < 0 || n < 0)
		return false;
	/* A closing peer is marked hung up before its queue is freed, so a
	 * count taken before we see no hang-up was taken while it lived. */
	if (poll(&pfd, 1, 0) != 0)
		return false;
	*unread = (size_t)n;
	return true;
}

bool endpoint_client_reset(const struct endpoint *ep)
{
	int err = 0;
	socklen_t len = sizeof(err);

	return ep->wfd >= 0 && endpoint_is_socket(ep)
		&& getsockopt(ep->wfd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ECONNRESET;
}

void endpoint_close(struct endpoint *ep)
{
	if (ep->kind == EP_STDIO) {
		for (int fd = 0; fd <= 1; fd++)
			fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	} else if (ep->rfd >= 0) {
		close(ep->rfd);
	}
	if (ep->pty_slave_fd >= 0)
		close(ep->pty_slave_fd);
	if (ep->listen_fd >= 0 && !ep->inherited)
		close(ep->listen_fd);
	if (ep->created_path && ep->path != NULL)
		unlink(ep->path);
	ep->rfd = ep->wfd = ep->listen_fd = ep->pty_slave_fd = -1;
	ep->created_path = false;
}

const char *endpoint_socket_path(struct endpoint *ep)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);

	if (ep->kind == EP_CONNECT || (ep->kind == EP_LISTEN && ep->path != NULL))
		return ep->path;
	if (ep->kind != EP_LISTEN || ep->listen_fd < 0
	    || getsockname(ep->listen_fd, (struct sockaddr *)&sa, &len) < 0
	    || len <= sizeof(sa_family_t) || sa.sun_path[0] == '\0')
		return "";
	snprintf(ep->inherited_path, sizeof(ep->inherited_path), "%s", sa.sun_path);
	return ep->inherited_path;
}
