/* SPDX-License-Identifier: MIT */
/*
 * unixsock.h - is something listening on a Unix socket?  The one rule by
 * which xenchan-proxy and xenchan-dm decide that a socket left at a path is
 * stale, and may be removed or replaced.  It depends on nothing of either.
 */
#ifndef XENCHAN_UNIXSOCK_H
#define XENCHAN_UNIXSOCK_H

#include <errno.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* Only a refused connection (or the path gone meanwhile) says that nobody
 * listens.  A full backlog (EAGAIN: the connect does not wait), any other
 * error, and no socket to ask with (socket() failed) all say live: what
 * could not be probed is never taken. */
static inline bool unix_socket_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	bool live;

	if (fd < 0)
		return true;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0
		|| (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return live;
}

#endif
