/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the counters file: its making, removal and reading (see stats.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stats.h"

_Static_assert(sizeof(struct stats_page) == 384, "the counters file's layout is fixed");

const char *stats_rundir(void)
{
	const char *d = getenv(STATS_RUNDIR_ENV);

	return d && d[0] == '/' ? d : STATS_RUNDIR;
}

bool stats_path(char *buf, size_t cap, unsigned domid, unsigned devid)
{
	int n = snprintf(buf, cap, "%s/" STATS_SUBDIR "/%u-%u", stats_rundir(), domid, devid);

	return n > 0 && (size_t)n < cap;
}

static int fail(char *err, size_t errlen, const char *what, const char *path)
{
	snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
	return -1;
}

/* RUNDIR (made if absent, as root makes it) and RUNDIR/counters. */
static int counters_dir(char *dir, size_t cap, uid_t uid, gid_t gid, char *err, size_t errlen)
{
	struct stat st;

	if (mkdir(stats_rundir(), 0755) < 0 && errno != EEXIST)
		return fail(err, errlen, "mkdir", stats_rundir());
	if ((size_t)snprintf(dir, cap, "%s/" STATS_SUBDIR, stats_rundir()) >= cap) {
		errno = ENAMETOOLONG;
		return fail(err, errlen, "counters directory", stats_rundir());
	}
	if (mkdir(dir, 0755) == 0) {
		if (chmod(dir, 0755) < 0 || ((uid != (uid_t)-1 || gid != (gid_t)-1)
					     && chown(dir, uid, gid) < 0))
			return fail(err, errlen, "chmod/chown", dir);
	} else if (errno != EEXIST) {
		return fail(err, errlen, "mkdir", dir);
	}
	if (lstat(dir, &st) < 0)
		return fail(err, errlen, "lstat", dir);
	/* Whoever may rename entries in it could put their file in ours's place. */
	if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid() && st.st_uid != uid)
	    || (st.st_mode & 0022)) {
		errno = EPERM;
		return fail(err, errlen, "not a directory of root's, ours or --user's, writable by "
			    "no other:", dir);
	}
	return 0;
}

void stats_init(struct stats_file *f)
{
	f->page = NULL;
	f->dirfd = -1;
	f->name[0] = '\0';
}

int stats_create(struct stats_file *f, const struct stats_page *head, uid_t uid, gid_t gid,
		 char *err, size_t errlen)
{
	char dir[PATH_MAX], tmp[64];
	struct stats_page *pg;
	int fd;

	if (counters_dir(dir, sizeof(dir), uid, gid, err, errlen) < 0)
		return -1;
	f->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (f->dirfd < 0)
		return fail(err, errlen, "open", dir);
	snprintf(f->name, sizeof(f->name), "%u-%u", head->domid, head->devid);
	snprintf(tmp, sizeof(tmp), ".%s.%ld", f->name, (long)getpid());
	unlinkat(f->dirfd, tmp, 0);   /* a crashed namesake's: same pid, an earlier boot */
	fd = openat(f->dirfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0) {
		fail(err, errlen, "open", tmp);
		goto out_dir;
	}
	if (fchmod(fd, 0644) < 0 || ftruncate(fd, sizeof(*pg)) < 0) {
		fail(err, errlen, "fchmod/ftruncate", tmp);
		goto out;
	}
	pg = mmap(NULL, sizeof(*pg), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (pg == MAP_FAILED) {
		fail(err, errlen, "mmap", tmp);
		goto out;
	}
	*pg = *head;
	pg->endpoint[sizeof(pg->endpoint) - 1] = '\0';
	memcpy(pg->magic, STATS_MAGIC, sizeof(pg->magic));
	pg->version = STATS_VERSION;
	pg->size = sizeof(*pg);
	/* In place whole, header and all: a reader never sees half a file. */
	if (renameat(f->dirfd, tmp, f->dirfd, f->name) < 0) {
		fail(err, errlen, "rename to", f->name);
		munmap(pg, sizeof(*pg));
		goto out;
	}
	f->page = pg;
	close(fd);
	return 0;
out:
	unlinkat(f->dirfd, tmp, 0);
	close(fd);
out_dir:
	close(f->dirfd);
	f->dirfd = -1;
	return -1;
}

void stats_remove(struct stats_file *f)
{
	if (f->page != NULL) {
		unlinkat(f->dirfd, f->name, 0);
		munmap(f->page, sizeof(*f->page));
		f->page = NULL;
	}
	if (f->dirfd >= 0)
		close(f->dirfd);
	f->dirfd = -1;
}

bool stats_read(unsigned domid, unsigned devid, struct stats_page *out)
{
	char path[PATH_MAX];
	struct stat st;
	ssize_t got;
	int fd;

	if (!stats_path(path, sizeof(path), domid, devid))
		return false;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return false;
	/* One pread, not a mapping: the file is its proxy's, and a proxy that
	 * a guest took over could truncate it under a mapping (SIGBUS in
	 * whoever lists) or fill it with anything.  Each field is exact on its
	 * own (aligned stores); the copy is no snapshot of one instant. */
	got = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? pread(fd, out, sizeof(*out), 0) : -1;
	close(fd);
	if (got != (ssize_t)sizeof(*out)
	    || memcmp(out->magic, STATS_MAGIC, sizeof(out->magic)) != 0
	    || out->version != STATS_VERSION || out->size != sizeof(*out)
	    || out->domid != domid || out->devid != devid)
		return false;
	out->endpoint[sizeof(out->endpoint) - 1] = '\0';   /* the reader copies it printable */
	return true;
}

const char *stats_state_name(uint32_t state)
{
	static const char *const names[STATS_STATES] = {
		[STATS_WAITING] = "waiting", [STATS_CONNECTED] = "connected",
		[STATS_CLOSING] = "closing", [STATS_REFUSED] = "refused",
		[STATS_ENDING] = "ending",
	};

	return state < STATS_STATES ? names[state] : "unknown";
}
