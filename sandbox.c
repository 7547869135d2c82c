/*
 * sandbox.c - least privilege for the relay loop.
 *
 * Everything that needs root is opened before the loop: the xenstore
 * connection, /dev/xen/gntdev and /dev/xen/evtchn (mapping a grant and binding
 * a port later are calls on those open fds), the endpoint.  Then the process
 * may become an ordinary user, and a seccomp filter admits only the system
 * calls the loop makes.  Any other kills the process.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "sandbox.h"

int sandbox_drop_user(const char *user, char *err, size_t errlen)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		snprintf(err, errlen, "getpwnam %s: %s", user, errno ? strerror(errno) : "no such user");
		return EX_NOUSER;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0
	    || setuid(pw->pw_uid) < 0) {
		snprintf(err, errlen, "dropping to %s (uid %u): %s", user, (unsigned)pw->pw_uid,
			 strerror(errno));
		return EX_NOPERM;
	}
	/* Make sure there is no way back. */
	if (pw->pw_uid != 0 && setuid(0) == 0) {
		snprintf(err, errlen, "setuid(0) still works after dropping to %s", user);
		return EX_SOFTWARE;
	}
	return 0;
}

/*
 * The loop's system calls: relaying (read/write and their vector and socket
 * forms, poll), the event channel and grant-table libraries (ioctl and mmap on
 * their devices; the test libraries use sockets, epoll and small files), the
 * xenstore connection and libxenstore's reader thread (futex), accepting and
 * connecting clients, sd_notify, the transcript, and leaving (unlink).
 */
static const char *const allowed[] = {
	"read", "readv", "write", "writev", "pread64", "pwrite64",
	"recvfrom", "recvmsg", "recvmmsg", "sendto", "sendmsg", "sendmmsg",
	"poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "epoll_create1",
	"accept", "accept4", "connect", "socket", "bind", "listen", "shutdown",
	"getsockopt", "setsockopt", "getsockname", "getpeername",
	"openat", "open", "close", "fstat", "newfstatat", "statx", "lseek", "fcntl", "ioctl",
	"unlink", "unlinkat", "rename", "renameat", "renameat2", "mkdir", "mkdirat",
	"readlink", "readlinkat", "symlink", "fsync", "ftruncate", "flock", "fchmod",
	"chmod", "fchmodat",
	"link", "linkat", "getdents64", "access", "faccessat", "faccessat2",
	"mmap", "munmap", "mremap", "mprotect", "madvise", "brk",
	"futex", "set_robust_list", "rseq", "sched_yield", "nanosleep", "clock_nanosleep",
	"clock_gettime", "gettimeofday", "getpid", "gettid", "getuid", "geteuid",
	"getgid", "getegid",
	"getrandom", "rt_sigprocmask", "rt_sigreturn", "rt_sigaction", "tgkill",
	"restart_syscall", "exit", "exit_group", "uname", "dup", "dup3", "pipe2",
};

int sandbox_seccomp(char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	int r = ctx ? 0 : -ENOMEM;

	/* All threads: libxenstore's reader thread runs under it too. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; r == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int nr = seccomp_syscall_resolve_name(allowed[i]);
		if (nr != __NR_SCMP_ERROR)
			r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	}
	if (r == 0)
		r = seccomp_load(ctx);
	if (ctx)
		seccomp_release(ctx);
	if (r < 0) {
		snprintf(err, errlen, "seccomp: %s", strerror(-r));
		return EX_OSERR;
	}
	return 0;
}
