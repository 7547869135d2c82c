/* SPDX-License-Identifier: MIT */
/*
 * systemd.c - readiness notification and socket activation (see systemd.h).
 * Both are small, documented protocols (sd_notify(3), sd_listen_fds(3)).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "strict.h"
#include "systemd.h"

#define LISTEN_PID_MAX (1UL << 30)   /* above any pid the kernel hands out */
#define LISTEN_FDS_MAX 1024          /* more sockets than any unit passes */

int systemd_notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len;
	int fd;

	if (path == NULL || (path[0] != '/' && path[0] != '@')
	    || (len = strlen(path)) >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0';   /* an abstract socket */
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa,
			       offsetof(struct sockaddr_un, sun_path) + len) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

void systemd_notify(int fd, const char *state)
{
	if (fd >= 0)
		send(fd, state, strlen(state), MSG_NOSIGNAL | MSG_DONTWAIT);
}

int systemd_listen_fds(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	unsigned long p, n;
	int r = 0;

	/* The variables are meant for the process systemd started. */
	if (pid && fds && strict_uint(pid, LISTEN_PID_MAX, &p) && p == (unsigned long)getpid()
	    && strict_uint(fds, LISTEN_FDS_MAX, &n)) {
		r = (int)n;
		for (int fd = SYSTEMD_LISTEN_FDS_START; fd < SYSTEMD_LISTEN_FDS_START + r; fd++)
			fcntl(fd, F_SETFD, FD_CLOEXEC);
	}
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	return r;
}

int systemd_is_unix_listener(int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, listening = 0;
	socklen_t ilen = sizeof(int);

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX)
		return 0;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &ilen) < 0 || type != SOCK_STREAM)
		return 0;
	ilen = sizeof(int);
	return getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) == 0 && listening;
}
