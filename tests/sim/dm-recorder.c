/* SPDX-License-Identifier: MIT */
/*
 * dm-recorder - a stand-in for QEMU (the dispatcher's .distrib) that writes
 * what it was started with to its own path plus ".record", then exits 0:
 *   pid N / ppid N
 *   argv HEX HEX ...              each argument, hex-encoded
 *   env HEX                       one line per variable, in order
 *   fd N FD_FLAGS FL_FLAGS HEX    each open descriptor (0..4095): its
 *                                 F_GETFD, F_GETFL and /proc/self/fd target
 *   sigmask HEX                   the blocked set (signals 1..64, bit n-1)
 *   sigign HEX / sighandled HEX   dispositions: ignored, caught
 *   umask OOO / cwd HEX / children PIDS
 * Everything is read before the record file is opened, so the file's own
 * descriptor is not in it.  No library but libc; nothing changes the state
 * it reports before it is read.
 */
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

#define MAX_FD 4096

static void hex(FILE *f, const char *s)
{
	if (!*s)
		fputc('-', f);
	for (; *s; s++)
		fprintf(f, "%02x", (unsigned char)*s);
}

int main(int argc, char **argv)
{
	static struct { int fd, fdfl, flfl; char target[PATH_MAX]; } fds[MAX_FD];
	char self[PATH_MAX], rec[PATH_MAX + 8], cwd[PATH_MAX], path[64], children[4096] = "";
	uint64_t mask = 0, ign = 0, handled = 0;
	unsigned nfd = 0;
	sigset_t set;
	mode_t um;
	ssize_t n;
	FILE *f;

	for (int fd = 0; fd < MAX_FD; fd++) {
		int fdfl = fcntl(fd, F_GETFD);

		if (fdfl < 0)
			continue;
		fds[nfd].fd = fd;
		fds[nfd].fdfl = fdfl;
		fds[nfd].flfl = fcntl(fd, F_GETFL);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n = readlink(path, fds[nfd].target, sizeof(fds[nfd].target) - 1);
		fds[nfd].target[n > 0 ? n : 0] = '\0';
		nfd++;
	}
	sigprocmask(SIG_BLOCK, NULL, &set);
	for (int s = 1; s <= 64; s++) {
		struct sigaction sa;

		if (sigismember(&set, s) == 1)
			mask |= 1ULL << (s - 1);
		if (sigaction(s, NULL, &sa) < 0)
			continue;
		if (sa.sa_handler == SIG_IGN)
			ign |= 1ULL << (s - 1);
		else if (sa.sa_handler != SIG_DFL)
			handled |= 1ULL << (s - 1);
	}
	um = umask(0);
	umask(um);
	if (!getcwd(cwd, sizeof(cwd)))
		strcpy(cwd, "?");
	snprintf(path, sizeof(path), "/proc/self/task/%d/children", (int)getpid());
	{
		int cfd = open(path, O_RDONLY | O_CLOEXEC);

		if (cfd >= 0) {
			n = read(cfd, children, sizeof(children) - 1);
			children[n > 0 ? n : 0] = '\0';
			close(cfd);
		}
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 70;
	self[n] = '\0';
	snprintf(rec, sizeof(rec), "%s.record", self);
	if (!(f = fopen(rec, "we")))
		return 73;
	fprintf(f, "pid %d\nppid %d\nargv", (int)getpid(), (int)getppid());
	for (int i = 0; i < argc; i++) {
		fputc(' ', f);
		hex(f, argv[i]);
	}
	fputc('\n', f);
	for (char **e = environ; *e; e++) {
		fputs("env ", f);
		hex(f, *e);
		fputc('\n', f);
	}
	for (unsigned i = 0; i < nfd; i++) {
		fprintf(f, "fd %d %d %d ", fds[i].fd, fds[i].fdfl, fds[i].flfl);
		hex(f, fds[i].target);
		fputc('\n', f);
	}
	fprintf(f, "sigmask %llx\nsigign %llx\nsighandled %llx\numask %03o\ncwd ",
		(unsigned long long)mask, (unsigned long long)ign, (unsigned long long)handled,
		(unsigned)um);
	hex(f, cwd);
	fprintf(f, "\nchildren %s\n", children);
	return fclose(f) ? 74 : 0;
}
