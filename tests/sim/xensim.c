/* SPDX-License-Identifier: MIT */
/*
 * xensim: the one command that drives the simulated Xen host
 * (tests/sim/README.md, section "xensim").
 *
 * It plays the parts of a Xen host that are not daemons: the boot script
 * (xen-init-dom0), the toolstack (the xenstore writes libxl 4.17 makes when
 * it creates a domain, adds a channel and destroys a domain, in libxl's
 * order and with libxl's permissions) and the hypervisor's side of a
 * domain's life (INTRODUCE and RELEASE, and the pages and ports that go
 * with the domain).  Each step names the libxl function it mirrors.
 *
 *   xensim start DIR | stop DIR
 *   xensim domain-create NAME [--driver-domain] | domain-destroy DOMID | domain-list
 *   xensim channel-add DOMID NAME [--devid N] [--backend-domid B]
 *                      [--connection socket --path P | --connection pty]
 *   xensim guest DOMID [DEVID] [--socket PATH] [--name NAME] [--hostile MODE] [--resume]
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>

#include "simhv.h"

enum {
	START_TIMEOUT_MS = 10000, /* xenstored-sim writes its pid file */
	STOP_TIMEOUT_MS = 5000,   /* a signalled process is gone */
	TXN_ATTEMPTS = 100,       /* EAGAIN retries of one transaction */
	PATH_LEN = 512,           /* our paths; xenstore allows 3072 */
};

/* libxl_internal.h: LIBXL_XENCONSOLE_LIMIT, LIBXL_XENCONSOLE_PROTOCOL. */
#define CONSOLE_LIMIT "1048576"
#define CONSOLE_PROTOCOL "vt100"
#define XENBUS_INITIALISING "1"
/* xen/include/public/xen.h: DOMID_FIRST_RESERVED. */
#define DOMID_LIMIT 0x7FF0U
/*
 * What the domain builder would hand libxl: the xenstore and console
 * event-channel ports and ring frames.  Nothing maps them in the
 * simulation; console 0 and INTRODUCE just need plausible values.
 */
#define STORE_PORT 1U
#define CONSOLE_PORT 2U
#define STORE_MFN(d) (0x100000UL + 2UL * (d))
#define CONSOLE_MFN(d) (0x100001UL + 2UL * (d))

static const char *cmd = "xensim"; /* the subcommand, for messages */

static void __attribute__((noreturn, format(printf, 2, 3)))
fail(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "xensim: %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void usage(int code)
{
	fprintf(code ? stderr : stdout,
		"usage: xensim start DIR\n"
		"       xensim stop DIR\n"
		"       xensim domain-create NAME [--driver-domain]\n"
		"       xensim domain-destroy DOMID\n"
		"       xensim domain-list\n"
		"       xensim channel-add DOMID NAME [--devid N] [--backend-domid B]\n"
		"                          [--connection socket --path P | --connection pty]\n"
		"       xensim guest DOMID [DEVID] [--socket PATH] [--name NAME] [--hostile MODE] [--resume]\n"
		"All but start and stop act on the host named by XENSIM_DIR and XENSTORED_PATH\n"
		"(eval the output of start).  See tests/sim/README.md.\n");
	exit(code);
}

/* ---- small helpers ------------------------------------------------------ */

/* Decimal, no sign, no junk, no overflow. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return false;
	*out = v;
	return true;
}

static unsigned parse_domid(const char *s)
{
	unsigned long v;

	if (!parse_uint(s, DOMID_LIMIT - 1, &v))
		fail(EX_USAGE, "bad domain id '%s'", s);
	return v;
}

typedef struct {
	char s[PATH_LEN];
} xpath;

static xpath __attribute__((format(printf, 1, 2))) pathf(const char *fmt, ...)
{
	xpath p;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(p.s, sizeof(p.s), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(p.s))
		fail(EX_USAGE, "path too long: %.60s...", p.s);
	return p;
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int ms_left(int64_t deadline)
{
	int64_t left = deadline - now_ms();

	return left < 0 ? 0 : (int)left;
}

/* The directory holding this binary and its siblings (build/sim). */
static xpath self_dir(void)
{
	xpath p;
	ssize_t n = readlink("/proc/self/exe", p.s, sizeof(p.s) - 1);
	char *slash;

	if (n < 0)
		fail(EX_OSERR, "readlink /proc/self/exe: %s", strerror(errno));
	p.s[n] = '\0';
	slash = strrchr(p.s, '/');
	if (slash)
		*slash = '\0';
	return p;
}

static xpath sibling(const char *name)
{
	return pathf("%s/%s", self_dir().s, name);
}

/* Quote for a POSIX shell's eval. */
static void print_export(const char *var, const char *val)
{
	printf("export %s='", var);
	for (const char *c = val; *c; c++) {
		if (*c == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*c);
	}
	puts("'");
}

static void check_socket_path(const char *path)
{
	struct sockaddr_un sun;

	if (strlen(path) >= sizeof(sun.sun_path))
		fail(EX_USAGE, "socket path %s is longer than %zu bytes; use a shorter directory",
		     path, sizeof(sun.sun_path) - 1);
}

/* ---- processes ---------------------------------------------------------- */

static int pidfd_open(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

static int pidfd_kill(int pidfd, int sig)
{
	return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/*
 * Is pid (pinned by its pidfd) running the program called name?  A pid
 * from a stale pid file may since belong to anything; a zombie has no exe
 * and counts as gone.
 */
static bool proc_runs(pid_t pid, const char *name)
{
	xpath link = pathf("/proc/%d/exe", (int)pid);
	char exe[PATH_MAX];
	ssize_t n = readlink(link.s, exe, sizeof(exe) - 1);
	const char *base;
	char *deleted;

	if (n < 0)
		return false;
	exe[n] = '\0';
	deleted = strstr(exe, " (deleted)"); /* the binary was rebuilt */
	if (deleted && deleted[10] == '\0')
		*deleted = '\0';
	base = strrchr(exe, '/');
	return strcmp(base ? base + 1 : exe, name) == 0;
}

static bool pidfd_wait(int pidfd, int ms)
{
	struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
	int64_t deadline = now_ms() + ms;
	int r;

	do
		r = poll(&pfd, 1, ms_left(deadline));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/*
 * Signal pid if it runs program name, then wait (bounded) until it has
 * exited; escalate to SIGKILL if sig was not enough.  Not our child, so
 * "exited" is the pidfd turning readable, which includes a zombie.
 */
static void stop_process(pid_t pid, const char *name, int sig)
{
	int fd = pidfd_open(pid);

	if (fd < 0) {
		if (errno == ESRCH)
			return;
		fail(EX_OSERR, "pidfd_open %d (%s): %s", (int)pid, name, strerror(errno));
	}
	if (!proc_runs(pid, name))
		goto out;
	if (pidfd_kill(fd, sig) < 0 && errno != ESRCH)
		fail(EX_OSERR, "kill %d (%s): %s", (int)pid, name, strerror(errno));
	if (pidfd_wait(fd, STOP_TIMEOUT_MS))
		goto out;
	if (sig != SIGKILL) {
		fprintf(stderr, "xensim: %s: %s (pid %d) ignored signal %d; sending SIGKILL\n",
			cmd, name, (int)pid, sig);
		pidfd_kill(fd, SIGKILL);
		if (pidfd_wait(fd, STOP_TIMEOUT_MS))
			goto out;
	}
	fail(EX_TEMPFAIL, "%s (pid %d) still running %d ms after SIGKILL", name, (int)pid,
	     STOP_TIMEOUT_MS);
out:
	close(fd);
}

/* A pid file: one decimal pid, optionally newline-terminated. */
static pid_t read_pid_file(const char *path)
{
	char buf[32];
	unsigned long pid;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	if (buf[n - 1] == '\n')
		buf[n - 1] = '\0';
	if (!parse_uint(buf, INT_MAX, &pid) || pid == 0)
		return 0;
	return pid;
}

/* DIR/guest/D-N.pid or D-NAME.pid (guest-sim's label), of domain domid? */
static bool guest_pid_file(const char *file, bool all, unsigned domid)
{
	size_t len = strlen(file);
	unsigned long d;
	char num[16];
	const char *dash = strchr(file, '-');

	if (len < 5 || strcmp(file + len - 4, ".pid") != 0 || !dash || dash == file ||
	    (size_t)(dash - file) >= sizeof(num))
		return false;
	memcpy(num, file, dash - file);
	num[dash - file] = '\0';
	return parse_uint(num, DOMID_LIMIT, &d) && (all || d == domid);
}

/*
 * Kill the guest-sim processes recorded in DIR/guest (D-N.pid or
 * D-NAME.pid): all of them, or domain domid's only.  SIGKILL, as the hypervisor stops a vCPU: nothing
 * of the guest runs after this.  Stats files stay for the tests to read.
 */
static void kill_guests(const char *dir, bool all, unsigned domid)
{
	xpath gdir = pathf("%s/guest", dir);
	DIR *d = opendir(gdir.s);
	struct dirent *e;

	if (!d) {
		if (errno == ENOENT)
			return;
		fail(EX_IOERR, "opendir %s: %s", gdir.s, strerror(errno));
	}
	while ((e = readdir(d))) {
		xpath pf;
		pid_t pid;

		if (!guest_pid_file(e->d_name, all, domid))
			continue;
		pf = pathf("%s/%s", gdir.s, e->d_name);
		pid = read_pid_file(pf.s);
		if (pid)
			stop_process(pid, "guest-sim", SIGKILL);
		if (unlink(pf.s) < 0 && errno != ENOENT)
			fail(EX_IOERR, "unlink %s: %s", pf.s, strerror(errno));
	}
	closedir(d);
}

/* Does /proc/PID/environ (NUL-separated) hold exactly the entry want? */
static bool environ_has(const char *env, size_t len, const char *want)
{
	for (size_t off = 0; off < len; off += strlen(env + off) + 1)
		if (strcmp(env + off, want) == 0)
			return true;
	return false;
}

/* Is the process pinned by pidfd one of domain domid's on this host: its
 * environment names this host's XENSIM_DIR and XENSIM_DOMID=domid (what
 * SimHost.domain_env and `xensim guest` give it)? */
static bool acts_as_domain(pid_t pid, const char *dir, unsigned domid)
{
	static char env[1 << 18];
	xpath path = pathf("/proc/%d/environ", (int)pid);
	xpath want_dir = pathf("XENSIM_DIR=%s", dir), want_dom = pathf("XENSIM_DOMID=%u", domid);
	int fd = open(path.s, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n;

	if (fd < 0)
		return false;           /* gone, or not ours to look at */
	while (len < sizeof(env) - 1 && (n = read(fd, env + len, sizeof(env) - 1 - len)) > 0)
		len += n;
	close(fd);
	env[len] = '\0';
	return environ_has(env, len, want_dir.s) && environ_has(env, len, want_dom.s);
}

/*
 * The hypervisor stops every vCPU of a dying domain: SIGKILL each process
 * acting as domain domid on this host (a driver domain's proxy, say), and
 * wait until each has exited.  The pidfd is taken before the environment
 * is read, so a reused pid is never signalled.
 */
static void kill_domain_processes(const char *dir, unsigned domid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;

	if (!d)
		fail(EX_OSERR, "opendir /proc: %s", strerror(errno));
	while ((e = readdir(d))) {
		unsigned long pid;
		int fd;

		if (!parse_uint(e->d_name, INT_MAX, &pid) || (pid_t)pid == getpid())
			continue;
		fd = pidfd_open(pid);
		if (fd < 0)
			continue;
		if (acts_as_domain(pid, dir, domid) && pidfd_kill(fd, SIGKILL) == 0 &&
		    !pidfd_wait(fd, STOP_TIMEOUT_MS))
			fail(EX_TEMPFAIL, "pid %lu of domain %u still running %d ms after SIGKILL",
			     pid, domid, STOP_TIMEOUT_MS);
		close(fd);
	}
	closedir(d);
}

static int rm_tree_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if ((type == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT)
		fail(EX_IOERR, "remove %s: %s", path, strerror(errno));
	return 0;
}

/* A domain's pages and ports go at once, as when the hypervisor destroys
 * it: the directory is renamed away first, so a backend that rewrites a port
 * record meanwhile (an unbind reverting the peer) finds it gone instead of
 * racing the removal. */
static void rm_tree(const char *path)
{
	xpath dead = pathf("%s.dead.%ld", path, (long)getpid());

	if (rename(path, dead.s) < 0) {
		if (errno == ENOENT)
			return;
		fail(EX_IOERR, "rename %s: %s", path, strerror(errno));
	}
	if (nftw(dead.s, rm_tree_entry, 16, FTW_DEPTH | FTW_PHYS) < 0 && errno != ENOENT)
		fail(EX_IOERR, "remove %s: %s", dead.s, strerror(errno));
}

/* ---- xenstore ----------------------------------------------------------- */

struct host {
	const char *dir;        /* XENSIM_DIR */
	struct xs_handle *xs;   /* dom0's connection */
	int lock_fd;
};

/*
 * Connect to the host named by the environment and take its lock, so that
 * two xensim commands never pick the same domid or devid.
 */
static void host_open(struct host *h)
{
	const char *sock = getenv("XENSTORED_PATH");
	xpath lock;

	h->dir = getenv("XENSIM_DIR");
	if (!h->dir || !*h->dir || !sock || !*sock)
		fail(EX_CONFIG, "XENSIM_DIR and XENSTORED_PATH must be set "
				"(eval \"$(xensim start DIR)\")");
	lock = pathf("%s/xensim.lock", h->dir);
	h->lock_fd = open(lock.s, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (h->lock_fd < 0)
		fail(EX_NOINPUT, "open %s: %s", lock.s, strerror(errno));
	if (flock(h->lock_fd, LOCK_EX) < 0)
		fail(EX_OSERR, "flock %s: %s", lock.s, strerror(errno));
	h->xs = xs_open(0);
	if (!h->xs)
		fail(EX_UNAVAILABLE, "connect to xenstored at %s: %s", sock, strerror(errno));
}

static void host_close(struct host *h)
{
	xs_close(h->xs);
	close(h->lock_fd);
}

static bool xs_exists(struct xs_handle *xs, xs_transaction_t t, const char *path)
{
	unsigned len;
	char *v = xs_read(xs, t, path, &len);

	free(v);
	return v != NULL;
}

struct perms {
	struct xs_permissions p[2];
	unsigned n;
};

/* Owner only: "n<owner>". */
static struct perms perms_owner(unsigned owner)
{
	return (struct perms){ { { owner, XS_PERM_NONE } }, 1 };
}

/* Owner, and one domain that may read: "n<owner>,r<reader>". */
static struct perms perms_owner_reader(unsigned owner, unsigned reader)
{
	return (struct perms){ { { owner, XS_PERM_NONE }, { reader, XS_PERM_READ } }, 2 };
}

/* One attempt at a transaction, and how it failed. */
struct txn {
	struct xs_handle *xs;
	xs_transaction_t t;
	int code;       /* exit code if it failed for a reason other than xenstore */
	int xs_errno;   /* errno of the failing xenstore call */
	char err[PATH_LEN + 64];
};

static bool txn_failed(struct txn *tx, const char *call, const char *path)
{
	tx->xs_errno = errno;
	tx->code = EX_IOERR;
	snprintf(tx->err, sizeof(tx->err), "%s %s: %s", call, path, strerror(errno));
	return false;
}

static bool txn_write(struct txn *tx, const char *path, const char *val)
{
	return xs_write(tx->xs, tx->t, path, val, strlen(val)) ||
	       txn_failed(tx, "xs_write", path);
}

static bool txn_set_perms(struct txn *tx, const char *path, struct perms p)
{
	return xs_set_permissions(tx->xs, tx->t, path, p.p, p.n) ||
	       txn_failed(tx, "xs_set_permissions", path);
}

/* libxl__xs_mknod: an empty node with the given permissions. */
static bool txn_mknod(struct txn *tx, const char *path, struct perms p)
{
	return txn_write(tx, path, "") && txn_set_perms(tx, path, p);
}

static bool txn_mkdir(struct txn *tx, const char *path)
{
	return xs_mkdir(tx->xs, tx->t, path) || txn_failed(tx, "xs_mkdir", path);
}

/* xs_rm, where "already gone" is fine. */
static bool txn_rm(struct txn *tx, const char *path)
{
	return xs_rm(tx->xs, tx->t, path) || errno == ENOENT || txn_failed(tx, "xs_rm", path);
}

/* Key/value pairs under dir, each then given perms if p (libxl__xs_writev_perms). */
static bool txn_writev(struct txn *tx, const char *dir, const char *const *kv,
		       const struct perms *p)
{
	for (; kv[0]; kv += 2) {
		xpath path = pathf("%s/%s", dir, kv[0]);

		if (!txn_write(tx, path.s, kv[1]))
			return false;
		if (p && !txn_set_perms(tx, path.s, *p))
			return false;
	}
	return true;
}

/*
 * libxl__xs_path_cleanup: remove path, then each parent that holds an
 * empty value and no children.  So the last device of a kind also takes
 * .../backend/console/D, .../backend/console and even .../backend with it.
 */
static bool txn_path_cleanup(struct txn *tx, const char *path)
{
	xpath p = pathf("%s", path);
	char *last;

	if (!xs_rm(tx->xs, tx->t, p.s))
		return errno == ENOENT || txn_failed(tx, "xs_rm", p.s);
	while ((last = strrchr(p.s, '/')) && last != p.s) {
		unsigned len, n;
		char *val, **kids;

		*last = '\0';
		val = xs_read(tx->xs, tx->t, p.s, &len);
		free(val);
		if (!val || len)
			break;
		kids = xs_directory(tx->xs, tx->t, p.s, &n);
		free(kids);
		if (!kids || n)
			break;
		if (!xs_rm(tx->xs, tx->t, p.s))
			return errno == ENOENT || txn_failed(tx, "xs_rm", p.s);
	}
	return true;
}

typedef bool txn_fn(struct txn *tx, void *arg);

/* Run fn in a transaction until it commits; EAGAIN means start again. */
static void txn_run(struct xs_handle *xs, txn_fn *fn, void *arg)
{
	for (int i = 0; i < TXN_ATTEMPTS; i++) {
		struct txn tx = { .xs = xs };

		tx.t = xs_transaction_start(xs);
		if (tx.t == XBT_NULL)
			fail(EX_IOERR, "xs_transaction_start: %s", strerror(errno));
		if (!fn(&tx, arg)) {
			xs_transaction_end(xs, tx.t, true);
			if (tx.code == EX_IOERR && tx.xs_errno == EAGAIN)
				continue;
			fail(tx.code, "%s", tx.err);
		}
		if (xs_transaction_end(xs, tx.t, false))
			return;
		if (errno != EAGAIN)
			fail(EX_IOERR, "xs_transaction_end: %s", strerror(errno));
	}
	fail(EX_TEMPFAIL, "transaction still conflicting after %d attempts", TXN_ATTEMPTS);
}

/* ---- consoles and channels (libxl_console.c, libxl_device.c) ------------ */

struct console {
	unsigned domid, backend, devid;
	bool pick_devid;          /* lowest free devid >= 1, chosen in the transaction */
	const char *name;         /* channels only */
	const char *connection;   /* channels only: "pty" or "socket" */
	const char *path;         /* connection "socket" only */
	const char *type;         /* "ioemu" (channels) or "xenconsoled" (console 0) */
};

/* libxl__device_frontend_path: console 0 is /local/domain/D/console. */
static xpath console_frontend(const struct console *c)
{
	if (c->devid == 0)
		return pathf("/local/domain/%u/console", c->domid);
	return pathf("/local/domain/%u/device/console/%u", c->domid, c->devid);
}

static xpath console_backend(const struct console *c)
{
	return pathf("/local/domain/%u/backend/console/%u/%u", c->backend, c->domid, c->devid);
}

static xpath console_libxl(const struct console *c)
{
	return pathf("/libxl/%u/device/console/%u", c->domid, c->devid);
}

static bool console_exists(struct txn *tx, const struct console *c)
{
	return xs_exists(tx->xs, tx->t, console_frontend(c).s) ||
	       xs_exists(tx->xs, tx->t, console_backend(c).s) ||
	       xs_exists(tx->xs, tx->t, console_libxl(c).s);
}

/* Choose or check the devid inside the transaction, so it cannot race. */
static bool console_claim_devid(struct txn *tx, struct console *c)
{
	if (c->pick_devid) {
		for (c->devid = 1; console_exists(tx, c); c->devid++)
			;
	} else if (console_exists(tx, c)) {
		tx->code = EX_CANTCREAT;
		snprintf(tx->err, sizeof(tx->err), "console %u of domain %u already exists (%s)",
			 c->devid, c->domid, console_frontend(c).s);
		return false;
	}
	return true;
}

/* A NULL-terminated key/value list, filled in libxl's order. */
struct kv {
	const char *v[24];
	int n;
};

static void kv_add(struct kv *kv, const char *key, const char *val)
{
	kv->v[kv->n++] = key;
	kv->v[kv->n++] = val;
	kv->v[kv->n] = NULL;
}

/*
 * libxl__device_console_add then libxl__device_generic_add, in their
 * order.  Frontend keys the guest may write (backend-id, state, protocol)
 * are the guest's with the backend reading; the rest of the frontend
 * (name, limit, type, output, tty) is the backend's with the guest
 * reading; the backend directory is the backend's with the guest reading;
 * the copy under /libxl inherits dom0-only permissions.  Console 0 takes
 * the ring-ref and port the domain builder made, and has no xenbus state.
 */
static bool console_add_txn(struct txn *tx, void *arg)
{
	struct console *c = arg;
	struct perms fe_perms = perms_owner_reader(c->domid, c->backend);
	struct perms ro_perms = perms_owner_reader(c->backend, c->domid);
	struct kv back = { 0 }, front = { 0 }, ro_front = { 0 };
	char domid[16], backend[16], port[16], mfn[32], output[48] = "pty";
	bool primary;
	xpath fe, be, lx;

	if (!console_claim_devid(tx, c))
		return false;
	primary = c->devid == 0;
	fe = console_frontend(c), be = console_backend(c), lx = console_libxl(c);
	/* libxl__init_console_from_channel: QEMU's chardev for a socket */
	if (c->connection && strcmp(c->connection, "socket") == 0)
		snprintf(output, sizeof(output), "chardev:libxl-channel%u", c->devid);
	snprintf(domid, sizeof(domid), "%u", c->domid);
	snprintf(backend, sizeof(backend), "%u", c->backend);
	snprintf(port, sizeof(port), "%u", CONSOLE_PORT);
	snprintf(mfn, sizeof(mfn), "%lu", CONSOLE_MFN(c->domid));

	kv_add(&back, "frontend-id", domid);
	kv_add(&back, "online", "1");
	kv_add(&back, "state", XENBUS_INITIALISING);
	kv_add(&back, "protocol", CONSOLE_PROTOCOL);
	if (c->name) {
		kv_add(&ro_front, "name", c->name);
		kv_add(&back, "name", c->name);
	}
	if (c->connection)
		kv_add(&back, "connection", c->connection);
	if (c->path)
		kv_add(&back, "path", c->path);
	kv_add(&front, "backend-id", backend);
	kv_add(&ro_front, "limit", CONSOLE_LIMIT);
	kv_add(&ro_front, "type", c->type);
	kv_add(&ro_front, "output", output);
	kv_add(&ro_front, "tty", "");
	if (primary) {
		kv_add(&ro_front, "port", port);
		kv_add(&ro_front, "ring-ref", mfn);
	} else {
		kv_add(&front, "state", XENBUS_INITIALISING);
		kv_add(&front, "protocol", CONSOLE_PROTOCOL);
	}

	return txn_rm(tx, lx.s) &&
	       txn_write(tx, pathf("%s/frontend", lx.s).s, fe.s) &&
	       txn_write(tx, pathf("%s/backend", lx.s).s, be.s) &&
	       txn_rm(tx, fe.s) && txn_mkdir(tx, fe.s) &&
	       txn_set_perms(tx, fe.s, primary ? ro_perms : fe_perms) &&
	       txn_write(tx, pathf("%s/backend", fe.s).s, be.s) &&
	       txn_writev(tx, fe.s, front.v, &fe_perms) &&
	       txn_writev(tx, fe.s, ro_front.v, &ro_perms) &&
	       txn_rm(tx, be.s) && txn_mkdir(tx, be.s) &&
	       txn_set_perms(tx, be.s, ro_perms) &&
	       txn_write(tx, pathf("%s/frontend", be.s).s, fe.s) &&
	       txn_writev(tx, be.s, back.v, NULL) &&
	       txn_writev(tx, lx.s, back.v, NULL);
}

/* ---- domains (libxl_create.c, libxl_dom.c, libxl_domain.c) -------------- */

struct domain {
	unsigned domid;
	const char *name;
	char uuid[37];
	bool driver_domain;       /* xl's driver_domain=1 */
};

static void make_uuid(char out[37])
{
	unsigned char u[16];

	if (getrandom(u, sizeof(u), 0) != sizeof(u))
		fail(EX_OSERR, "getrandom: %s", strerror(errno));
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80;
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
		 u[12], u[13], u[14], u[15]);
}

/* The domain's name, from the transaction, or NULL. */
static char *domain_name(struct xs_handle *xs, xs_transaction_t t, const char *domid)
{
	unsigned len;

	return xs_read(xs, t, pathf("/local/domain/%s/name", domid).s, &len);
}

/*
 * Names are unique (libxl__domain_rename), and the new domid is the lowest
 * one that is neither in /local/domain nor introduced.  Both decided
 * inside the transaction that creates the domain.
 */
static bool domain_claim(struct txn *tx, struct domain *dom)
{
	unsigned n;
	char **ids = xs_directory(tx->xs, tx->t, "/local/domain", &n);

	if (!ids)
		return txn_failed(tx, "xs_directory", "/local/domain");
	for (unsigned i = 0; i < n; i++) {
		char *name = domain_name(tx->xs, tx->t, ids[i]);
		bool taken = name && strcmp(name, dom->name) == 0;

		free(name);
		if (taken) {
			tx->code = EX_CANTCREAT;
			snprintf(tx->err, sizeof(tx->err), "domain name '%s' is in use by domain %s",
				 dom->name, ids[i]);
			free(ids);
			return false;
		}
	}
	free(ids);
	for (dom->domid = 1; dom->domid < DOMID_LIMIT; dom->domid++) {
		xpath dp = pathf("/local/domain/%u", dom->domid);

		if (!xs_exists(tx->xs, tx->t, dp.s) && !xs_is_domain_introduced(tx->xs, dom->domid))
			return true;
	}
	tx->code = EX_UNAVAILABLE;
	snprintf(tx->err, sizeof(tx->err), "no free domain id");
	return false;
}

/* Nodes of libxl__domain_make under /local/domain/D: 'r' read-only for
 * the guest (dom0 owns, D reads), 'w' the guest's own, 'd' the guest's own
 * and only for a driver domain (libxl, in case xl devd or QEMU run there). */
static const struct {
	const char *path;
	char mode;
} domain_nodes[] = {
	{ "cpu", 'r' },
	{ "memory", 'r' },
	{ "device", 'r' },
	{ "device/suspend/event-channel", 'w' },
	{ "control", 'r' },
	{ "control/shutdown", 'w' },
	{ "control/feature-poweroff", 'w' },
	{ "control/feature-reboot", 'w' },
	{ "control/feature-suspend", 'w' },
	{ "control/sysrq", 'w' },
	{ "data", 'w' },
	{ "drivers", 'w' },
	{ "feature", 'w' },
	{ "attr", 'w' },
	{ "error", 'w' },
	{ "libxl", 'd' },
	{ "device-model", 'd' },
};

/* libxl__domain_make's transaction, for a PV domain. */
static bool domain_make_txn(struct txn *tx, void *arg)
{
	struct domain *dom = arg;
	struct perms noperm = perms_owner(0), roperm, rwperm;
	xpath dp, vm, lx;
	bool ok;

	if (!domain_claim(tx, dom))
		return false;
	roperm = perms_owner_reader(0, dom->domid);
	rwperm = perms_owner(dom->domid);
	dp = pathf("/local/domain/%u", dom->domid);
	vm = pathf("/vm/%s", dom->uuid);
	lx = pathf("/libxl/%u", dom->domid);
	ok = txn_rm(tx, dp.s) && txn_mknod(tx, dp.s, roperm) &&
	     txn_rm(tx, vm.s) && txn_mknod(tx, vm.s, roperm) &&
	     txn_rm(tx, lx.s) && txn_mknod(tx, lx.s, noperm) &&
	     txn_mknod(tx, pathf("%s/device", lx.s).s, noperm) &&
	     txn_write(tx, pathf("%s/vm", dp.s).s, vm.s) &&
	     txn_write(tx, pathf("%s/name", dp.s).s, dom->name);
	for (size_t i = 0; ok && i < sizeof(domain_nodes) / sizeof(domain_nodes[0]); i++)
		if (domain_nodes[i].mode != 'd' || dom->driver_domain)
			ok = txn_mknod(tx, pathf("%s/%s", dp.s, domain_nodes[i].path).s,
				       domain_nodes[i].mode == 'r' ? roperm : rwperm);
	return ok && txn_write(tx, pathf("%s/uuid", vm.s).s, dom->uuid) &&
	       txn_write(tx, pathf("%s/name", vm.s).s, dom->name) &&
	       txn_write(tx, pathf("%s/control/platform-feature-multiprocessor-suspend", dp.s).s,
			 "1") &&
	       txn_write(tx, pathf("%s/control/platform-feature-xs_reset_watches", dp.s).s, "1") &&
	       txn_write(tx, pathf("%s/type", lx.s).s, "pv");
}

/* libxl__build_post's transaction: what the domain builder learnt. */
static bool domain_build_post_txn(struct txn *tx, void *arg)
{
	struct domain *dom = arg;
	char domid[16], port[16], mfn[32];
	const char *ents[] = { "memory/static-max", "262144", "memory/target", "262144",
			       "memory/videoram", "0", "domid", domid, "store/port", port,
			       "store/ring-ref", mfn, "cpu/0/availability", "online", NULL };

	snprintf(domid, sizeof(domid), "%u", dom->domid);
	snprintf(port, sizeof(port), "%u", STORE_PORT);
	snprintf(mfn, sizeof(mfn), "%lu", STORE_MFN(dom->domid));
	return txn_writev(tx, pathf("/local/domain/%u", dom->domid).s, ents, NULL);
}

static int cmd_domain_create(int argc, char **argv)
{
	struct host h;
	struct domain dom = { 0 };
	struct console con0 = { .type = "xenconsoled" };
	static const struct option opts[] = {
		{ "driver-domain", no_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o != 'd')
			usage(EX_USAGE);
		dom.driver_domain = true;
	}
	if (argc - optind != 1)
		usage(EX_USAGE);
	dom.name = argv[optind];
	if (!*dom.name || strchr(dom.name, '/'))
		fail(EX_USAGE, "bad domain name '%s'", dom.name);
	make_uuid(dom.uuid);
	host_open(&h);
	txn_run(h.xs, domain_make_txn, &dom);
	txn_run(h.xs, domain_build_post_txn, &dom);
	/* libxl__build_post introduces the domain: @introduceDomain fires. */
	if (!xs_introduce_domain(h.xs, dom.domid, STORE_MFN(dom.domid), STORE_PORT))
		fail(EX_IOERR, "xs_introduce_domain %u: %s", dom.domid, strerror(errno));
	/* Then domcreate_launch_dm adds console 0, as for every PV domain. */
	con0.domid = dom.domid;
	txn_run(h.xs, console_add_txn, &con0);
	host_close(&h);
	printf("%u\n", dom.domid);
	return EX_OK;
}

/* libxl__device_destroy for one device: frontend, /libxl copy, backend. */
struct device_ref {
	unsigned domid, devid;
	const char *kind;
	char backend[PATH_LEN];
};

static bool device_destroy_txn(struct txn *tx, void *arg)
{
	struct device_ref *d = arg;
	xpath fe = strcmp(d->kind, "console") == 0 && d->devid == 0
			   ? pathf("/local/domain/%u/console", d->domid)
			   : pathf("/local/domain/%u/device/%s/%u", d->domid, d->kind, d->devid);

	return txn_path_cleanup(tx, fe.s) &&
	       txn_path_cleanup(tx, pathf("/libxl/%u/device/%s/%u", d->domid, d->kind,
					  d->devid).s) &&
	       txn_path_cleanup(tx, d->backend);
}

/*
 * libxl__devices_destroy: every device listed under /libxl/D/device whose
 * backend path parses.  Consoles are removed synchronously, one
 * transaction each, with no xenbus handshake; the simulation has no other
 * kind, and would treat one the same way.
 */
static void devices_destroy(struct host *h, unsigned domid)
{
	xpath top = pathf("/libxl/%u/device", domid);
	unsigned nk;
	char **kinds = xs_directory(h->xs, XBT_NULL, top.s, &nk);

	for (unsigned k = 0; kinds && k < nk; k++) {
		xpath kdir = pathf("%s/%s", top.s, kinds[k]);
		unsigned nd, len;
		char **devs = xs_directory(h->xs, XBT_NULL, kdir.s, &nd);

		for (unsigned i = 0; devs && i < nd; i++) {
			struct device_ref d = { .domid = domid, .kind = kinds[k] };
			xpath bp = pathf("%s/%s/backend", kdir.s, devs[i]);
			char *be = xs_read(h->xs, XBT_NULL, bp.s, &len);
			unsigned long devid;
			unsigned bdom, fdom, bdev;
			char bkind[16];

			if (be && parse_uint(devs[i], UINT_MAX, &devid) &&
			    sscanf(be, "/local/domain/%u/backend/%15[^/]/%u/%u", &bdom, bkind,
				   &fdom, &bdev) == 4) {
				d.devid = devid;
				snprintf(d.backend, sizeof(d.backend), "%s", be);
				txn_run(h->xs, device_destroy_txn, &d);
			}
			free(be);
		}
		free(devs);
	}
	free(kinds);
}

/* Not in the store, not introduced: no such domain. */
static void domain_must_exist(struct host *h, unsigned domid)
{
	if (!xs_exists(h->xs, XBT_NULL, pathf("/local/domain/%u", domid).s) &&
	    !xs_is_domain_introduced(h->xs, domid))
		fail(EX_NOINPUT, "no domain %u", domid);
}

static void xs_rm_quiet(struct host *h, const char *path)
{
	if (!xs_rm(h->xs, XBT_NULL, path) && errno != ENOENT)
		fail(EX_IOERR, "xs_rm %s: %s", path, strerror(errno));
}

static int cmd_domain_destroy(int argc, char **argv)
{
	struct host h;
	unsigned domid, len;
	char *vm;
	xpath dp;

	if (argc != 2)
		usage(EX_USAGE);
	domid = parse_domid(argv[1]);
	if (domid == 0)
		fail(EX_USAGE, "domain 0 cannot be destroyed");
	host_open(&h);
	domain_must_exist(&h, domid);
	/* destroy_domid_pci_done pauses the domain: its vCPUs stop first. */
	kill_guests(h.dir, false, domid);
	kill_domain_processes(h.dir, domid);
	devices_destroy(&h, domid);
	/* devices_destroy_cb: /vm/UUID, /local/domain/D, /libxl/D, hvmloader. */
	dp = pathf("/local/domain/%u", domid);
	vm = xs_read(h.xs, XBT_NULL, pathf("%s/vm", dp.s).s, &len);
	if (vm && *vm == '/')
		xs_rm_quiet(&h, vm);
	free(vm);
	xs_rm_quiet(&h, dp.s);
	xs_rm_quiet(&h, pathf("/libxl/%u", domid).s);
	xs_rm_quiet(&h, pathf("%s/hvmloader", dp.s).s);
	/* xc_domain_destroy: the domain's pages and ports go. */
	rm_tree(pathf("%s/grant/%u", h.dir, domid).s);
	rm_tree(pathf("%s/evtchn/%u", h.dir, domid).s);
	/* xenstored learns of the death from the hypervisor (VIRQ_DOM_EXC);
	 * here RELEASE stands for that, and @releaseDomain fires. */
	if (!xs_release_domain(h.xs, domid) && errno != ENOENT) /* never introduced */
		fail(EX_IOERR, "xs_release_domain %u: %s", domid, strerror(errno));
	host_close(&h);
	return EX_OK;
}

static int compare_domids(const void *a, const void *b)
{
	unsigned long x = strtoul(*(char *const *)a, NULL, 10);
	unsigned long y = strtoul(*(char *const *)b, NULL, 10);

	return (x > y) - (x < y);
}

static int cmd_domain_list(int argc, char **argv)
{
	struct host h;
	unsigned n;
	char **ids;

	(void)argv;
	if (argc != 1)
		usage(EX_USAGE);
	host_open(&h);
	ids = xs_directory(h.xs, XBT_NULL, "/local/domain", &n);
	if (!ids)
		fail(EX_IOERR, "xs_directory /local/domain: %s", strerror(errno));
	qsort(ids, n, sizeof(*ids), compare_domids);
	for (unsigned i = 0; i < n; i++) {
		char *name = domain_name(h.xs, XBT_NULL, ids[i]);

		printf("%s\t%s\n", ids[i], name ? name : "");
		free(name);
	}
	free(ids);
	host_close(&h);
	return EX_OK;
}

static int cmd_channel_add(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "devid", required_argument, NULL, 'd' },
		{ "backend-domid", required_argument, NULL, 'b' },
		{ "connection", required_argument, NULL, 'c' },
		{ "path", required_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	struct console c = { .type = "ioemu", .pick_devid = true, .connection = "pty" };
	struct host h;
	unsigned long v;
	int o;

	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'd':
			if (!parse_uint(optarg, 0xffff, &v))
				fail(EX_USAGE, "bad --devid '%s'", optarg);
			c.devid = v, c.pick_devid = false;
			break;
		case 'b':
			c.backend = parse_domid(optarg);
			break;
		case 'c':
			if (strcmp(optarg, "pty") != 0 && strcmp(optarg, "socket") != 0)
				fail(EX_USAGE, "unknown channel connection '%s'", optarg);
			c.connection = optarg;
			break;
		case 'p':
			c.path = optarg;
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (argc - optind != 2)
		usage(EX_USAGE);
	c.domid = parse_domid(argv[optind]);
	c.name = argv[optind + 1];
	if (!*c.name)
		fail(EX_USAGE, "empty channel name");
	if (strcmp(c.connection, "socket") == 0 && (!c.path || !*c.path))
		fail(EX_USAGE, "connection socket needs --path");	/* as libxl */
	if (strcmp(c.connection, "pty") == 0 && c.path)
		fail(EX_USAGE, "--path is for --connection socket");
	/* libxl__device_console_add refuses devid 0 with a name; xl 4.17 then
	 * goes on without the channel (protocol.md, "Toolstack quirk"). */
	if (!c.pick_devid && c.devid == 0)
		fail(EX_DATAERR, "devid 0: Primary console has invalid configuration");
	if (c.domid == 0)
		fail(EX_USAGE, "domain 0 has no channels");
	host_open(&h);
	domain_must_exist(&h, c.domid);
	if (!xs_exists(h.xs, XBT_NULL, pathf("/local/domain/%u", c.backend).s))
		fail(EX_NOINPUT, "no backend domain %u", c.backend);
	txn_run(h.xs, console_add_txn, &c);
	host_close(&h);
	printf("%u\n", c.devid);
	return EX_OK;
}

/* ---- starting and stopping the host ------------------------------------- */

/* The end of the daemon's log, to explain a failed start. */
static void show_log_tail(const char *log)
{
	char buf[2048];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	if (fd < 0)
		return;
	size = lseek(fd, 0, SEEK_END);
	n = pread(fd, buf, sizeof(buf), size > (off_t)sizeof(buf) ? size - (off_t)sizeof(buf) : 0);
	close(fd);
	if (n > 0) {
		fprintf(stderr, "xensim: %s: last lines of %s:\n", cmd, log);
		fwrite(buf, 1, n, stderr);
	}
}

/* The host's two daemons: xenstored-sim, the store, and simhvd, the
 * hypervisor's grant tables and event channels (the test libraries'
 * privileged half).  Each writes DIR/STEM.pid once it serves, logs to
 * DIR/STEM.log. */
struct daemon_kind {
	const char *prog;
	const char *stem;
};
static const struct daemon_kind store_daemon = { "xenstored-sim", "xenstored" };
static const struct daemon_kind hv_daemon = { "simhvd", "simhvd" };

/* Child side of a daemon's start: a session of its own, stdio to the log. */
static void __attribute__((noreturn))
exec_daemon(const struct daemon_kind *k, const char *dir, const char *log, int report_fd)
{
	xpath prog = sibling(k->prog);
	xpath sock = pathf("%s/xenstored.sock", dir), pid = pathf("%s/%s.pid", dir, k->stem);
	xpath domains = pathf("%s/domain", dir);
	int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	int out = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int e;

	/* Nothing of ours but stdio may reach the daemon: a pipe it kept open
	 * would hold up whoever reads our output to its end. */
	syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC);
	if (in < 0 || out < 0 || setsid() < 0 || chdir("/") < 0 || dup2(in, 0) < 0 ||
	    dup2(out, 1) < 0 || dup2(out, 2) < 0)
		goto report;
	if (k == &hv_daemon)
		execl(prog.s, k->prog, "--dir", dir, "--pid-file", pid.s, (char *)NULL);
	else
		execl(prog.s, k->prog, "--socket", sock.s, "--domain-sockets", domains.s,
		      "--pid-file", pid.s, "--log", log, (char *)NULL);
report:
	e = errno;
	if (write(report_fd, &e, sizeof(e)) < 0)
		_exit(EX_OSERR);
	_exit(EX_OSERR);
}

/*
 * Wait until the daemon has written its pid into its pid file, with a
 * deadline; fail at once if it dies first.  inotify on DIR and the child's
 * pidfd: no polling.  A half-written file (seen on IN_MODIFY) just does
 * not match yet.
 */
static void wait_daemon(const struct daemon_kind *k, const char *dir, const char *log,
			pid_t child, int ino)
{
	xpath pidfile = pathf("%s/%s.pid", dir, k->stem);
	struct pollfd pfd[2] = { { .fd = ino, .events = POLLIN },
				 { .fd = pidfd_open(child), .events = POLLIN } };
	int64_t deadline = now_ms() + START_TIMEOUT_MS;
	char evbuf[4096];
	int status;

	if (pfd[1].fd < 0)
		fail(EX_OSERR, "pidfd_open: %s", strerror(errno));
	while (read_pid_file(pidfile.s) != child) {
		int r = poll(pfd, 2, ms_left(deadline));

		if (r < 0 && errno != EINTR)
			fail(EX_OSERR, "poll: %s", strerror(errno));
		if (r == 0) {
			kill(child, SIGKILL);
			waitpid(child, NULL, 0);
			show_log_tail(log);
			fail(EX_UNAVAILABLE, "%s (pid %d) did not write its pid to %s "
			     "within %d ms", k->prog, (int)child, pidfile.s, START_TIMEOUT_MS);
		}
		if (r > 0 && pfd[1].revents && read_pid_file(pidfile.s) != child) {
			waitpid(child, &status, 0);
			show_log_tail(log);
			fail(EX_UNAVAILABLE, "%s exited (%s %d) before it was ready", k->prog,
			     WIFEXITED(status) ? "status" : "signal",
			     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		}
		if (r > 0 && pfd[0].revents && read(ino, evbuf, sizeof(evbuf)) < 0 &&
		    errno != EAGAIN)
			fail(EX_OSERR, "read inotify: %s", strerror(errno));
	}
	close(pfd[1].fd);
}

/* Start a daemon detached; return its pid once its pid file is there. */
static pid_t start_daemon(const struct daemon_kind *k, const char *dir)
{
	xpath log = pathf("%s/%s.log", dir, k->stem);
	int report[2], e;
	int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	pid_t child;
	ssize_t n;

	if (ino < 0 || inotify_add_watch(ino, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MODIFY) < 0)
		fail(EX_OSERR, "inotify %s: %s", dir, strerror(errno));
	if (pipe2(report, O_CLOEXEC) < 0)
		fail(EX_OSERR, "pipe: %s", strerror(errno));
	child = fork();
	if (child < 0)
		fail(EX_OSERR, "fork: %s", strerror(errno));
	if (child == 0)
		exec_daemon(k, dir, log.s, report[1]);
	close(report[1]);
	/* The pipe closes on a successful exec and carries errno otherwise. */
	while ((n = read(report[0], &e, sizeof(e))) < 0 && errno == EINTR)
		;
	close(report[0]);
	if (n == sizeof(e)) {
		waitpid(child, NULL, 0);
		fail(EX_UNAVAILABLE, "start %s: %s", sibling(k->prog).s, strerror(e));
	}
	wait_daemon(k, dir, log.s, child, ino);
	close(ino);
	return child;
}

/* Stop a daemon by its pid file, and remove the pid file and socket. */
static void stop_daemon(const struct daemon_kind *k, const char *dir, const char *sock)
{
	xpath pidfile = pathf("%s/%s.pid", dir, k->stem);
	pid_t pid = read_pid_file(pidfile.s);

	if (pid)
		stop_process(pid, k->prog, SIGTERM);
	if ((unlink(pidfile.s) < 0 && errno != ENOENT) ||
	    (unlink(pathf("%s/%s", dir, sock).s) < 0 && errno != ENOENT))
		fail(EX_IOERR, "remove files in %s: %s", dir, strerror(errno));
}

/*
 * What xenstored (setup_structure) and xen-init-dom0 leave in the store:
 * /tool/xenstored, dom0's domid and name, the cpupool's name.  /vm and
 * /libxl appear with the first domain on a real host; they are made here
 * with the same permissions (inherited from /: dom0's, no one else's).
 * On failure, a message in err.
 */
static bool setup_dom0(const char *sockpath, char *err, size_t len)
{
	static const char *const nodes[][2] = {
		{ "/local/domain/0/domid", "0" },
		{ "/local/domain/0/name", "Domain-0" },
		{ "/local/pool/0/name", "Pool-0" },
	};
	static const char *const dirs[] = { "/tool", "/tool/xenstored", "/vm", "/libxl" };
	struct perms p = perms_owner(0);
	struct xs_handle *xs;
	const char *what = NULL;

	setenv("XENSTORED_PATH", sockpath, 1);
	xs = xs_open(0);
	if (!xs) {
		snprintf(err, len, "connect to xenstored at %s: %s", sockpath, strerror(errno));
		return false;
	}
	for (size_t i = 0; !what && i < sizeof(nodes) / sizeof(nodes[0]); i++)
		if (!xs_write(xs, XBT_NULL, nodes[i][0], nodes[i][1], strlen(nodes[i][1])))
			what = nodes[i][0];
	for (size_t i = 0; !what && i < sizeof(dirs) / sizeof(dirs[0]); i++)
		if (!xs_exists(xs, XBT_NULL, dirs[i]) &&
		    (!xs_mkdir(xs, XBT_NULL, dirs[i]) ||
		     !xs_set_permissions(xs, XBT_NULL, dirs[i], p.p, p.n)))
			what = dirs[i];
	if (what)
		snprintf(err, len, "create %s: %s", what, strerror(errno));
	xs_close(xs);
	return !what;
}

static int cmd_start(int argc, char **argv)
{
	char dir[PATH_MAX], err[PATH_LEN + 64];
	xpath sock, pidfile, guests;
	pid_t old, daemon;

	if (argc != 2)
		usage(EX_USAGE);
	if (mkdir(argv[1], 0755) < 0 && errno != EEXIST)
		fail(EX_CANTCREAT, "mkdir %s: %s", argv[1], strerror(errno));
	if (!realpath(argv[1], dir))
		fail(EX_CANTCREAT, "%s: %s", argv[1], strerror(errno));
	sock = pathf("%s/xenstored.sock", dir);
	pidfile = pathf("%s/xenstored.pid", dir);
	check_socket_path(sock.s);
	/* The longest of the domains' own sockets (xenstored-sim --domain-sockets). */
	check_socket_path(pathf("%s/domain/%u/xenstored.sock", dir, DOMID_LIMIT - 1).s);
	old = read_pid_file(pidfile.s);
	if (old && kill(old, 0) == 0 && proc_runs(old, "xenstored-sim"))
		fail(EX_CANTCREAT, "a host is already running in %s (xenstored-sim pid %d)", dir,
		     (int)old);
	/* Leftovers of a host that was not stopped: the daemon is gone. */
	if ((unlink(pidfile.s) < 0 && errno != ENOENT) || (unlink(sock.s) < 0 && errno != ENOENT))
		fail(EX_CANTCREAT, "remove stale files in %s: %s", dir, strerror(errno));
	guests = pathf("%s/guest", dir);
	if (mkdir(guests.s, 0755) < 0 && errno != EEXIST)
		fail(EX_CANTCREAT, "mkdir %s: %s", guests.s, strerror(errno));
	stop_daemon(&hv_daemon, dir, SIMHV_SOCKET);   /* a crashed host's */
	start_daemon(&hv_daemon, dir);
	daemon = start_daemon(&store_daemon, dir);
	if (!setup_dom0(sock.s, err, sizeof(err))) {
		stop_process(daemon, "xenstored-sim", SIGTERM);
		stop_daemon(&hv_daemon, dir, SIMHV_SOCKET);
		fail(EX_IOERR, "%s", err);
	}
	print_export("XENSIM_DIR", dir);
	print_export("XENSTORED_PATH", sock.s);
	print_export("LD_LIBRARY_PATH", pathf("%s/lib", self_dir().s).s);
	return EX_OK;
}

static int cmd_stop(int argc, char **argv)
{
	char dir[PATH_MAX];

	if (argc != 2)
		usage(EX_USAGE);
	if (!realpath(argv[1], dir))
		fail(EX_NOINPUT, "%s: %s", argv[1], strerror(errno));
	kill_guests(dir, true, 0);
	stop_daemon(&store_daemon, dir, "xenstored.sock");
	stop_daemon(&hv_daemon, dir, SIMHV_SOCKET);
	return EX_OK;
}

static int cmd_guest(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "hostile", required_argument, NULL, 'H' },
		{ "resume", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *args[13];
	xpath guest = sibling("guest-sim");
	unsigned long devid;
	int a = 0, o;

	args[a++] = "guest-sim";
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			check_socket_path(optarg);
			args[a++] = "--socket", args[a++] = optarg;
			break;
		case 'n':
			args[a++] = "--name", args[a++] = optarg;
			break;
		case 'H':
			args[a++] = "--hostile", args[a++] = optarg;
			break;
		case 'R':
			args[a++] = "--resume";
			break;
		default:
			usage(EX_USAGE);
		}
	}
	if (argc - optind < 1 || argc - optind > 2)
		usage(EX_USAGE);
	if (!getenv("XENSIM_DIR") || !getenv("XENSTORED_PATH"))
		fail(EX_CONFIG, "XENSIM_DIR and XENSTORED_PATH must be set "
				"(eval \"$(xensim start DIR)\")");
	parse_domid(argv[optind]);
	args[a++] = argv[optind];
	if (argc - optind == 2) {
		if (!parse_uint(argv[optind + 1], 0xffff, &devid))
			fail(EX_USAGE, "bad device id '%s'", argv[optind + 1]);
		args[a++] = argv[optind + 1];
	}
	args[a] = NULL;
	/* gnttab-sim and evtchn-sim act as the domain named here. */
	setenv("XENSIM_DOMID", argv[optind], 1);
	execv(guest.s, (char *const *)args);
	fail(EX_UNAVAILABLE, "exec %s: %s", guest.s, strerror(errno));
}

int main(int argc, char **argv)
{
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "start", cmd_start },
		{ "stop", cmd_stop },
		{ "domain-create", cmd_domain_create },
		{ "domain-destroy", cmd_domain_destroy },
		{ "domain-list", cmd_domain_list },
		{ "channel-add", cmd_channel_add },
		{ "guest", cmd_guest },
	};

	if (argc < 2)
		usage(EX_USAGE);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help"))
		usage(EX_OK);
	/* A reader of our output that goes away must not kill us half-way. */
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (strcmp(argv[1], cmds[i].name) == 0) {
			cmd = cmds[i].name;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	fprintf(stderr, "xensim: unknown command '%s'\n", argv[1]);
	usage(EX_USAGE);
}
