/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c - least privilege for the relay loop.
 *
 * Everything that needs root is opened before the loop: the xenstore
 * connection, /dev/xen/gntdev and /dev/xen/evtchn (mapping a grant and binding
 * a port later are ioctls on those open fds), the endpoint.  Then the process
 * keeps no capability, becomes an ordinary user if asked, and a seccomp
 * filter admits only the system calls the loop makes, ioctls by fd and
 * request.  Any other kills the process.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sockios.h>
#include <pwd.h>
#include <seccomp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sysexits.h>
#include <unistd.h>
#include <xen/xen.h>
#include <xen/sys/evtchn.h>
#include <xen/sys/gntdev.h>
#include "sandbox.h"

#define SOCK_TYPE_MASK 0xf   /* socket()'s type, without SOCK_NONBLOCK, SOCK_CLOEXEC */

static int drop_user(const char *user, char *err, size_t errlen)
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

/* Empty the bounding set, so that not even uid 0 could gain a capability
 * back by exec.  Dropping needs CAP_SETPCAP; without it (a systemd unit with
 * CapabilityBoundingSet= already cut it down) no_new_privs and the filter,
 * which admits no execve, stand in. */
static void clear_bounding_set(void)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
}

/* No capability in any set: uid 0 after this is the owner of root's files,
 * nothing more (no CAP_DAC_OVERRIDE, CAP_SYS_ADMIN, CAP_KILL, ...). */
static int clear_capabilities(char *err, size_t errlen)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	memset(data, 0, sizeof(data));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	if (syscall(SYS_capset, &hdr, data) < 0 || syscall(SYS_capget, &hdr, data) < 0) {
		snprintf(err, errlen, "capset: %s", strerror(errno));
		return EX_OSERR;
	}
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++) {
		if (data[i].effective || data[i].permitted || data[i].inheritable) {
			snprintf(err, errlen, "capabilities left after capset");
			return EX_SOFTWARE;
		}
	}
	return 0;
}

int sandbox_drop_privileges(const char *user, char *err, size_t errlen)
{
	int r;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "prctl PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return EX_OSERR;
	}
	clear_bounding_set();
	if (user && (r = drop_user(user, err, errlen)) != 0)
		return r;
	return clear_capabilities(err, errlen);
}

/*
 * The loop's system calls, on Xen and on the simulated host alike:
 * - read, readv, write, writev: relaying; the log; the signalfd; xenstore's
 *   socket and libxenstore's watch pipe; on Xen the event channel's fd too
 *   (read: a port is pending; write: unmask it).
 * - sendto, sendmsg: sd_notify on its connected socket (send is sendto);
 *   libxenstore 4.20 sends requests with sendmsg.
 * - poll, ppoll: the loop, and waiting for the guest at unplug.
 * - close, fcntl: a client goes; libxenstore switches O_NONBLOCK; stdio's
 *   flags are put back at exit.
 * - getsockopt, setsockopt: a new client's send buffer; a client's reset.
 * - brk, munmap, mremap, madvise (and mmap, mprotect below): malloc, and
 *   unmapping a grant.
 * - futex: libxenstore's reader thread and its locks; rt_sigaction: it
 *   ignores SIGPIPE around each request; rt_sigprocmask, rt_sigreturn,
 *   getpid, gettid (and tgkill below): it cancels that thread at exit.
 * - clock_gettime (when the vDSO cannot), clock_nanosleep, nanosleep
 *   (libxengnttab retries a mapping of a paged-out grant after 1 ms).
 * - restart_syscall, sched_yield, exit, exit_group.
 */
static const char *const loop_calls[] = {
	"read", "readv", "write", "writev", "sendto", "sendmsg", "poll", "ppoll",
	"close", "fcntl", "getsockopt", "setsockopt", "brk", "munmap", "mremap", "madvise",
	"futex", "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "getpid", "gettid",
	"clock_gettime", "clock_nanosleep", "nanosleep", "restart_syscall", "sched_yield",
	"exit", "exit_group",
};

/* The simulated host's libraries (tests/sim/README.md), on descriptors they
 * opened before the filter: the daemon's replies carry the page or port
 * socket a map or bind made (recvmsg, SCM_RIGHTS); a port's queued events
 * are drained with recvmmsg.  Xen's libraries use none of them. */
static const char *const sim_calls[] = { "recvmsg", "recvmmsg" };

static int allow(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *cmp)
{
	int nr = seccomp_syscall_resolve_name(name);

	/* A call this architecture does not have (poll on arm64) is not made. */
	return nr == __NR_SCMP_ERROR ? 0 : seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

/* An ioctl: on that fd, that request only. */
static int allow_ioctl(scmp_filter_ctx ctx, int fd, unsigned long request)
{
	struct scmp_arg_cmp cmp[2] = { SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)fd),
				       SCMP_A1(SCMP_CMP_EQ, request) };

	return allow(ctx, "ioctl", fd < 0 ? 1 : 2, fd < 0 ? cmp + 1 : cmp);
}

/* What only some modes of the loop do. */
static int allow_needs(scmp_filter_ctx ctx, const struct sandbox_needs *need)
{
	/* No new executable memory: a mapping is a grant or malloc's. */
	struct scmp_arg_cmp no_exec = SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	/* The transcript, write-only and appending, never truncated. */
	struct scmp_arg_cmp appending = SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_APPEND | O_TRUNC,
						O_WRONLY | O_APPEND);
	struct scmp_arg_cmp unix_stream[2] = { SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
					       SCMP_A1(SCMP_CMP_MASKED_EQ, SOCK_TYPE_MASK, SOCK_STREAM) };
	struct scmp_arg_cmp own_pid = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());
	struct scmp_arg_cmp evtchn_fd = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)need->evtchn_fd);
	int r = allow(ctx, "mmap", 1, &no_exec) || allow(ctx, "mprotect", 1, &no_exec)
		|| allow(ctx, "tgkill", 1, &own_pid)
		/* gntdev: map, then find the offset to unmap and unmap (libxengnttab) */
		|| allow_ioctl(ctx, need->gnttab_fd, IOCTL_GNTDEV_MAP_GRANT_REF)
		|| allow_ioctl(ctx, need->gnttab_fd, IOCTL_GNTDEV_GET_OFFSET_FOR_VADDR)
		|| allow_ioctl(ctx, need->gnttab_fd, IOCTL_GNTDEV_UNMAP_GRANT_REF)
		|| allow_ioctl(ctx, need->evtchn_fd, IOCTL_EVTCHN_BIND_INTERDOMAIN)
		|| allow_ioctl(ctx, need->evtchn_fd, IOCTL_EVTCHN_UNBIND)
		|| allow_ioctl(ctx, need->evtchn_fd, IOCTL_EVTCHN_NOTIFY)
		/* The simulated event channel is an epoll set of port sockets. */
		|| allow(ctx, "epoll_wait", 1, &evtchn_fd) || allow(ctx, "epoll_pwait", 1, &evtchn_fd)
		|| allow(ctx, "epoll_ctl", 1, &evtchn_fd);

	if (r == 0 && need->accept)
		r = allow(ctx, "accept4", 0, NULL);
	if (r == 0 && need->connect)
		r = allow(ctx, "socket", 2, unix_stream) || allow(ctx, "connect", 0, NULL);
	/* How much a client left unread when it went (endpoint_unread). */
	if (r == 0 && need->socket_client)
		r = allow_ioctl(ctx, -1, SIOCOUTQ);
	if (r == 0 && need->transcript)
		r = allow(ctx, "openat", 1, &appending) || allow(ctx, "fstat", 0, NULL)
			|| allow(ctx, "newfstatat", 0, NULL);
	if (r == 0 && need->unlink_at_exit)
		r = allow(ctx, "unlink", 0, NULL) || allow(ctx, "unlinkat", 0, NULL);
	return r ? -EINVAL : 0;
}

int sandbox_seccomp(const struct sandbox_needs *need, char *err, size_t errlen)
{
	scmp_filter_ctx ctx;
	int r;

	/* glibc's pthread_cancel (libxenstore's reader thread, at exit) loads
	 * libgcc_s for the unwinder; a later open and PROT_EXEC mapping would
	 * be refused, so load it now.  Kept for the process's life. */
	dlopen("libgcc_s.so.1", RTLD_NOW | RTLD_NODELETE);
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	r = ctx ? 0 : -ENOMEM;
	/* All threads: libxenstore's reader thread runs under it too. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	for (size_t i = 0; r == 0 && i < sizeof(loop_calls) / sizeof(loop_calls[0]); i++)
		r = allow(ctx, loop_calls[i], 0, NULL);
	for (size_t i = 0; r == 0 && i < sizeof(sim_calls) / sizeof(sim_calls[0]); i++)
		r = allow(ctx, sim_calls[i], 0, NULL);
	if (r == 0)
		r = allow_needs(ctx, need);
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
