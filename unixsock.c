/* SPDX-License-Identifier: MIT */
/* unixsock.c - is a Unix socket live? (see unixsock.h) */
#include <errno.h>
#include <sys/stat.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "unixsock.h"

bool unixsock_live(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(path);
	bool live;
	int fd;

	if (len >= sizeof(sa.sun_path))
		return true;   /* cannot tell: assume live, never steal */
	memcpy(sa.sun_path, path, len);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return true;
	live = connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) == 0
		|| (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	return live;
}

bool unixsock_remove_stale(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && !unixsock_live(path)
		&& unlink(path) == 0;
}
