/* SPDX-License-Identifier: MIT */
/*
 * guest-sim.c - one console device's guest side, as Linux hvc_xen and its
 * xenbus frontend code do it (tests/sim/README.md, "guest-sim").
 *
 * One poll loop over the xenstore watch fd, the event channel fd, the tty's
 * fds and a signalfd.  Nothing else wakes the process: the only timeouts are
 * the 5 s bounds Linux puts on waiting for a backend while closing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xenbus.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include "ring.h"

#define CLOSE_WAIT_NS (5 * 1000000000LL)   /* Linux's 5*HZ in xenbus */
#define NODE_MAX 256                        /* bound on any xenstore value */

enum phase {
	PH_SEEK,           /* waiting for the device, F/state Initialising */
	PH_INITIALISED,    /* probed: ring live, F = 3, waiting for K = 4 */
	PH_CONNECTED,      /* F = 4 */
	PH_CLOSED,         /* the backend closed us: F = 6, for good */
	PH_SHUTDOWN,       /* SIGTERM: F = 5, waiting for K = 5 */
	PH_RESET_CLOSING,  /* SIGUSR1: F = 5, waiting for K = 5 */
	PH_RESET_CLOSED,   /* F = 6, waiting for K = 6 */
	PH_RESET_INIT,     /* F = 1, waiting for K = 2, then probe again */
};

static const char *const phase_names[] = {
	"seek", "initialised", "connected", "closed",
	"shutdown", "reset-closing", "reset-closed", "reset-init",
};

/* The guest's end of the tty: a Unix socket client, or stdin/stdout. */
struct tty {
	int listen_fd;     /* --socket; -1 for stdio */
	int rfd, wfd;      /* -1 when absent; one socket for a client */
	bool rd_eof;       /* the client sent EOF: it writes no more */
	bool hup;          /* the client hung up: poll it only when we want to */
	short rev, wev;    /* this wakeup's poll results */
};

struct guest_stats {
	uint64_t out_bytes, in_bytes, write_wait_ns, write_waits;
	uint64_t protocol_errors, events, notifies;
};

struct guest;

/* A misbehaviour for the hardening tests: a hook and flags, one row each. */
struct hostile_mode {
	const char *name;
	const char *what;
	uint64_t default_arg;
	void (*on_connected)(struct guest *g);   /* once per connection */
	bool never_read;                         /* never consume in[] */
};

struct guest {
	/* what to be */
	uint32_t domid;
	long devid;                  /* -1: find by name */
	const char *name;
	const char *sock_path;
	const struct hostile_mode *hostile;
	uint64_t hostile_arg;
	/* --bench-out/--bench-in (bench/run.py): no tty, bytes from/to memory */
	uint64_t bench_out, bench_write, bench_write_left, bench_in;
	struct timespec bench_t0;
	char label[80];              /* D-N or D-NAME: logs and file names */
	char pid_path[PATH_MAX], stats_path[PATH_MAX];
	/* the device */
	struct xs_handle *xs;
	char fe[64];                 /* device/console/N, relative as xenbus has it */
	char be_state_path[NODE_MAX + 8];
	enum phase phase;
	int fe_state;
	struct timespec deadline;    /* of a bounded wait; tv_sec 0 when none */
	/* the ring */
	xengntshr_handle *gs;
	xenevtchn_handle *xce;
	uint32_t backend_id;
	void *page;
	uint32_t ref;
	int port;                    /* -1 when none */
	struct ring_dir out, in;
	bool ring_live;
	bool out_broken;             /* a hostile mode wrecked out[] on purpose */
	bool out_bad, in_bad;        /* the backend's index is impossible */
	bool writer_waiting;
	struct timespec wait_start;
	struct tty tty;
	int sigfd;
	struct guest_stats st;
	bool done;
	bool resume_pending;         /* --resume: the device existed before a save */
	bool stale;                  /* its resume failed: never probed again */
	bool stale_event;            /* a watch event named its directory */
};

/* ---- small helpers ------------------------------------------------------ */

static void logf_(const struct guest *g, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const struct guest *g, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "guest-sim %s: ", g->label);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static struct timespec now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts;
}

static int64_t ns_between(struct timespec a, struct timespec b)
{
	return (int64_t)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9' || (s[0] == '0' && s[1]))
		return -1;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return (*end || errno || *out > max) ? -1 : 0;
}

/* ---- xenstore ----------------------------------------------------------- */

/* A bounded copy of a node's value; -1 (errno from xs_read) if absent. */
static int xs_read_str(struct guest *g, xs_transaction_t t, const char *path,
		       char *buf, size_t len)
{
	unsigned int n;
	char *v = xs_read(g->xs, t, path, &n);

	if (!v)
		return -1;
	if (n >= len || strlen(v) != n) {   /* too long, or a NUL inside */
		free(v);
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, v, n + 1);
	free(v);
	return 0;
}

static void fe_node(const struct guest *g, const char *leaf, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", g->fe, leaf);
}

static bool fe_exists(struct guest *g)
{
	char v[NODE_MAX];

	return xs_read_str(g, XBT_NULL, g->fe, v, sizeof(v)) == 0 || errno != ENOENT;
}

/* A xenbus state node; Unknown (0) if absent or not a state, as Linux's
 * xenbus_read_driver_state reads it. */
static int state_read(struct guest *g, const char *path)
{
	char v[NODE_MAX];
	unsigned long s;

	if (xs_read_str(g, XBT_NULL, path, v, sizeof(v)) < 0 ||
	    parse_uint(v, XenbusStateReconfigured, &s) < 0)
		return XenbusStateUnknown;
	return (int)s;
}

static int be_state(struct guest *g)
{
	return g->be_state_path[0] ? state_read(g, g->be_state_path)
				   : XenbusStateUnknown;
}

/* Like xenbus_switch_state: only while the node exists, so an unplugged
 * device is never recreated by a late write. */
static int fe_switch_state(struct guest *g, int state)
{
	char path[128], v[NODE_MAX], s[4];

	fe_node(g, "state", path, sizeof(path));
	snprintf(s, sizeof(s), "%d", state);
	for (;;) {
		xs_transaction_t t = xs_transaction_start(g->xs);
		if (t == XBT_NULL)
			break;
		if (xs_read_str(g, t, path, v, sizeof(v)) < 0) {
			xs_transaction_end(g->xs, t, true);
			return -1;
		}
		if (!xs_write(g->xs, t, path, s, strlen(s))) {
			xs_transaction_end(g->xs, t, true);
			break;
		}
		if (xs_transaction_end(g->xs, t, false)) {
			g->fe_state = state;
			return 0;
		}
		if (errno != EAGAIN)
			break;
	}
	logf_(g, "xenstore write %s = %s: %s", path, s, strerror(errno));
	return -1;
}

/* ---- files for the tests: pid and stats --------------------------------- */

static int file_write_atomic(const char *path, const char *text)
{
	char tmp[PATH_MAX + 8];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (!f)
		return -1;
	fputs(text, f);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void stats_format(const struct guest *g, char *buf, size_t len)
{
	const struct guest_stats *s = &g->st;

	snprintf(buf, len,
		 "state=%d\nphase=%s\nout_bytes=%" PRIu64 "\nin_bytes=%" PRIu64
		 "\nwrite_wait_ns=%" PRIu64 "\nwrite_waits=%" PRIu64 "\nwriter_waiting=%d"
		 "\nprotocol_errors=%" PRIu64 "\nevents=%" PRIu64
		 "\nnotifies=%" PRIu64 "\n",
		 g->fe_state, phase_names[g->phase], s->out_bytes, s->in_bytes,
		 s->write_wait_ns, s->write_waits, g->writer_waiting, s->protocol_errors,
		 s->events, s->notifies);
}

static void stats_write(const struct guest *g)
{
	char text[512];

	stats_format(g, text, sizeof(text));
	if (file_write_atomic(g->stats_path, text) < 0)
		logf_(g, "write %s: %s", g->stats_path, strerror(errno));
}

static void set_phase(struct guest *g, enum phase p)
{
	g->deadline.tv_sec = 0;   /* a bounded wait ends with its phase */
	if (g->phase != p)
		logf_(g, "%s -> %s (frontend state %d)", phase_names[g->phase],
		      phase_names[p], g->fe_state);
	g->phase = p;
	stats_write(g);
}

/* ---- the tty ------------------------------------------------------------ */

static int tty_listen(struct guest *g)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (snprintf(a.sun_path, sizeof(a.sun_path), "%s", g->sock_path) >=
	    (int)sizeof(a.sun_path)) {
		logf_(g, "socket path %s is too long", g->sock_path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	unlink(a.sun_path);   /* a stale socket of a killed guest-sim */
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 8) < 0) {
		logf_(g, "listen on %s: %s", a.sun_path, strerror(errno));
		close(fd);
		return -1;
	}
	g->tty.listen_fd = fd;
	return 0;
}

static void tty_open_stdio(struct guest *g)
{
	g->tty.rfd = STDIN_FILENO;
	g->tty.wfd = STDOUT_FILENO;
	fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
	fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
}

static void writer_wait_end(struct guest *g);

/* The client is gone (or the device is): the next one may come in. */
static void tty_close_client(struct guest *g)
{
	struct tty *t = &g->tty;

	writer_wait_end(g);
	if (t->listen_fd >= 0) {
		if (t->rfd >= 0)
			close(t->rfd);
	} else {
		/* stdio: the test sees EOF on its pipes, as from a hung-up
		 * hvc; /dev/null keeps fds 0 and 1 from being reused. */
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
			close(null);
		}
	}
	t->rfd = t->wfd = -1;
	t->rd_eof = t->hup = false;
	stats_write(g);   /* a natural point for a test to look */
}

/* Closed by the backend, or shutting down: the hvc device is gone. */
static bool device_gone(const struct guest *g)
{
	return g->phase == PH_CLOSED || g->phase == PH_SHUTDOWN;
}

static void tty_accept(struct guest *g)
{
	int fd = accept4(g->tty.listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (device_gone(g)) {
		close(fd);
		return;
	}
	g->tty.rfd = g->tty.wfd = fd;
	g->tty.rd_eof = g->tty.hup = false;
	logf_(g, "tty client connected");
}

/* Bytes the client has written that we have not read; 0 also at EOF. */
static int tty_unread(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return 1;   /* cannot tell: assume data, as a blocked writer */
	return n;
}

/* A read-side end: EOF, a reset, or (stdio) a pipe whose writer left. */
static void tty_read_ended(struct guest *g)
{
	struct tty *t = &g->tty;

	t->rd_eof = true;
	writer_wait_end(g);
	if (t->listen_fd < 0)
		t->rfd = -1;   /* stdin is done; stdout may still take in[] */
	else if (t->hup) {
		tty_close_client(g);
	}
}

/* ---- the ring ----------------------------------------------------------- */

static void protocol_error(struct guest *g, bool *flag, const char *which)
{
	if (*flag)
		return;   /* once per episode, like Linux's pr_err_once */
	*flag = true;
	g->st.protocol_errors++;
	logf_(g, "xencons: Illegal ring page indices (%s)", which);
	stats_write(g);
}

static void notify_backend(struct guest *g)
{
	if (g->port >= 0 && xenevtchn_notify(g->xce, (evtchn_port_t)g->port) == 0)
		g->st.notifies++;
}

static void writer_wait_end(struct guest *g)
{
	if (!g->writer_waiting)
		return;
	g->writer_waiting = false;
	g->st.write_wait_ns += (uint64_t)ns_between(g->wait_start, now_mono());
	g->st.write_waits++;
	stats_write(g);
}

/* out[] is full and the client has more: the guest's writer is stuck in
 * domU_write_console until the backend frees room. */
static void writer_wait_check_start(struct guest *g)
{
	struct iovec iov[2];
	int cnt;

	if (g->writer_waiting || !g->ring_live || g->out_broken ||
	    g->tty.rfd < 0 || g->tty.rd_eof ||
	    ring_writable(&g->out, iov, &cnt) != 0)
		return;
	if (tty_unread(g->tty.rfd) > 0) {
		g->writer_waiting = true;
		g->wait_start = now_mono();
		stats_write(g);   /* a test may wait for the guest to be stuck */
	}
}

static void writer_wait_check_end(struct guest *g)
{
	struct iovec iov[2];
	int cnt;

	if (g->writer_waiting && ring_writable(&g->out, iov, &cnt) != 0)
		writer_wait_end(g);
}

/* --bench-out: a program writing its bytes from memory in bench_write-byte
 * writes; like domU_write_console, notify after each piece put in out[].
 * Returns false: it has notified already. */
static bool bench_pump_out(struct guest *g)
{
	struct iovec iov[2];
	int cnt;
	ssize_t room;

	while (g->bench_out > 0 && (room = ring_writable(&g->out, iov, &cnt)) > 0) {
		uint64_t n = g->bench_write_left ? g->bench_write_left : g->bench_write;
		n = n < (uint64_t)room ? n : (uint64_t)room;
		n = n < g->bench_out ? n : g->bench_out;
		for (uint64_t i = 0, k = 0, run; i < (uint64_t)cnt && k < n; i++, k += run) {
			run = iov[i].iov_len < n - k ? iov[i].iov_len : n - k;
			memset(iov[i].iov_base, 'x', run);
		}
		ring_produce(&g->out, (size_t)n);
		g->bench_write_left = (g->bench_write_left ? g->bench_write_left
							   : g->bench_write) - n;
		g->bench_out -= n;
		g->st.out_bytes += n;
		notify_backend(g);
	}
	return false;
}

/* --bench-in: a program reading in[] into memory; prints the rate from the
 * first byte to the last once bench_in bytes came, and goes on reading. */
static bool bench_pump_in(struct guest *g)
{
	struct iovec iov[2];
	int cnt;
	ssize_t avail = ring_readable(&g->in, iov, &cnt);
	double s;

	if (avail <= 0)
		return false;
	if (g->st.in_bytes == 0)
		g->bench_t0 = now_mono();
	ring_consume(&g->in, (size_t)avail);
	g->st.in_bytes += (uint64_t)avail;
	if (g->st.in_bytes >= g->bench_in && g->st.in_bytes - (uint64_t)avail < g->bench_in) {
		s = (double)ns_between(g->bench_t0, now_mono()) / 1e9;
		printf("bytes=%" PRIu64 " seconds=%.6f MBps=%.2f\n", g->st.in_bytes, s,
		       s > 0 ? (double)g->st.in_bytes / s / 1e6 : 0.0);
		fflush(stdout);
	}
	return true;
}

/* Client -> out[]: read no more than out[] has room for. */
static bool pump_out(struct guest *g)
{
	struct iovec iov[2];
	int cnt;
	ssize_t room, n;

	if (g->bench_out)
		return bench_pump_out(g);
	if (g->out_broken || g->tty.rfd < 0 || g->tty.rd_eof)
		return false;
	room = ring_writable(&g->out, iov, &cnt);
	if (room < 0)
		protocol_error(g, &g->out_bad, "out_cons");
	if (room == 0 && (g->tty.rev & (POLLIN | POLLHUP | POLLERR)) &&
	    tty_unread(g->tty.rfd) == 0)
		tty_read_ended(g);   /* readable, nothing to read: EOF */
	if (room <= 0)
		return false;
	g->out_bad = false;
	n = readv(g->tty.rfd, iov, cnt);
	if (n > 0) {
		ring_produce(&g->out, (size_t)n);
		g->st.out_bytes += (uint64_t)n;
		return true;
	}
	if (n == 0 || (errno != EAGAIN && errno != EINTR))
		tty_read_ended(g);
	return false;
}

/* in[] -> client: write what it takes; without a client in[] stays full. */
static bool pump_in(struct guest *g)
{
	struct iovec iov[2];
	int cnt;
	ssize_t avail, n;

	if (g->hostile && g->hostile->never_read)
		return false;
	if (g->bench_in)
		return bench_pump_in(g);
	avail = ring_readable(&g->in, iov, &cnt);
	if (avail < 0)
		protocol_error(g, &g->in_bad, "in_prod");
	if (avail <= 0 || g->tty.wfd < 0)
		return false;
	g->in_bad = false;
	n = writev(g->tty.wfd, iov, cnt);
	if (n > 0) {
		ring_consume(&g->in, (size_t)n);
		g->st.in_bytes += (uint64_t)n;
		return true;
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR) {
		if (g->tty.listen_fd >= 0)
			tty_close_client(g);
		else
			g->tty.wfd = -1;   /* stdout's reader left */
	}
	return false;
}

static void ring_pump(struct guest *g)
{
	bool progress;

	if (!g->ring_live)
		return;
	writer_wait_check_end(g);
	progress = pump_out(g);
	progress |= pump_in(g);
	/* hvc_xen notifies after each write and after consuming input. */
	if (progress)
		notify_backend(g);
	writer_wait_check_start(g);
}

/* ---- hostile modes ------------------------------------------------------ */

static void hostile_bad_out_prod(struct guest *g)
{
	struct xencons_interface *x = g->page;

	g->out_broken = true;
	x->out_prod = x->out_cons + 100000;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	notify_backend(g);
	logf_(g, "hostile: out_prod = out_cons + 100000, notified");
}

static void hostile_backwards_out_prod(struct guest *g)
{
	struct xencons_interface *x = g->page;

	g->out_broken = true;
	x->out_prod = x->out_cons - 1;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	notify_backend(g);
	logf_(g, "hostile: out_prod = out_cons - 1, notified");
}

/* prod keeps moving while the backend reads it: random values, each
 * notified, ARG times. */
static void hostile_moving_out_prod(struct guest *g)
{
	struct xencons_interface *x = g->page;
	uint32_t v = x->out_cons;

	g->out_broken = true;
	for (uint64_t i = 0; i < g->hostile_arg; i++) {
		v = v * 1103515245u + 12345u;
		x->out_prod = v;
		__atomic_thread_fence(__ATOMIC_RELEASE);
		notify_backend(g);
	}
	logf_(g, "hostile: out_prod moved %" PRIu64 " times, notified", g->hostile_arg);
}

static void hostile_bad_in_cons(struct guest *g)
{
	struct xencons_interface *x = g->page;

	x->in_cons = x->in_prod + 5000;   /* consumed more than was produced */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	notify_backend(g);
	logf_(g, "hostile: in_cons = in_prod + 5000, notified");
}

static void hostile_event_storm(struct guest *g)
{
	for (uint64_t i = 0; i < g->hostile_arg; i++)
		notify_backend(g);
	logf_(g, "hostile: %" PRIu64 " notifications without data", g->hostile_arg);
}

static void ring_stop(struct guest *g, bool for_good);

/* A device flapping as fast as xenstore takes it: frontend state Closed,
 * Initialising, Initialised, ARG times, written straight (no transaction,
 * no wait for the backend), the same ring-ref and port throughout.  Then
 * it plays dead (F stays 3, the backend's states are ignored), so the
 * test alone moves the device afterwards. */
static void hostile_flap(struct guest *g)
{
	static const char states[] = { '6', '1', '3' };
	char path[128];

	fe_node(g, "state", path, sizeof(path));
	for (uint64_t i = 0; i < g->hostile_arg; i++)
		for (size_t k = 0; k < sizeof(states); k++)
			if (!xs_write(g->xs, XBT_NULL, path, &states[k], 1)) {
				logf_(g, "hostile: xenstore write %s: %s", path, strerror(errno));
				return;
			}
	g->fe_state = XenbusStateInitialised;
	ring_stop(g, true);
	set_phase(g, PH_CLOSED);
	logf_(g, "hostile: %" PRIu64 " state flips written", g->hostile_arg);
}

/* in_cons swung back one byte and forward again, ARG times, notifying each
 * time: an index that moves without any byte crossing. */
static void hostile_swing_in_cons(struct guest *g)
{
	struct xencons_interface *x = g->page;
	uint32_t c = x->in_cons;

	for (uint64_t i = 0; i < g->hostile_arg; i++) {
		x->in_cons = c - (uint32_t)(~i & 1);
		__atomic_thread_fence(__ATOMIC_RELEASE);
		notify_backend(g);
	}
	logf_(g, "hostile: in_cons swung %" PRIu64 " times, notified", g->hostile_arg);
}

static const struct hostile_mode hostile_modes[] = {
	{ "bad-out-prod", "publish out_prod = out_cons + 100000 and notify",
	  0, hostile_bad_out_prod, false },
	{ "event-storm", "notify ARG times (default 100000) with no data",
	  100000, hostile_event_storm, false },
	{ "never-read", "never consume in[], as a guest whose tty is never read",
	  0, NULL, true },
	{ "backwards-out-prod", "publish out_prod = out_cons - 1 and notify",
	  0, hostile_backwards_out_prod, false },
	{ "moving-out-prod", "move out_prod to random values ARG times (default 10000), notifying",
	  10000, hostile_moving_out_prod, false },
	{ "bad-in-cons", "publish in_cons = in_prod + 5000 and notify",
	  0, hostile_bad_in_cons, true },
	{ "flap", "write state 6, 1, 3 ARG times (default 10000) at once, then play dead",
	  10000, hostile_flap, false },
	{ "swing-in-cons", "move in_cons back one and forward again, ARG times "
	  "(default 100000), notifying each time", 100000, hostile_swing_in_cons, false },
};

/* ---- the device's life -------------------------------------------------- */

static void guest_finish(struct guest *g)
{
	g->done = true;
}

/* Stop serving: hvc_remove() of the tty, whose client is hung up.  Grant
 * and port are kept, since the backend may still be using them.  Stdio is
 * hung up only when the device is gone for good (for_good), so that a
 * reconnect (SIGUSR1) can go on using it. */
static void ring_stop(struct guest *g, bool for_good)
{
	bool client = g->tty.rfd >= 0 || g->tty.wfd >= 0;

	g->ring_live = false;
	writer_wait_end(g);
	if (client && (g->tty.listen_fd >= 0 || for_good))
		tty_close_client(g);
}

static void ring_release(struct guest *g)
{
	ring_stop(g, false);
	if (g->page)
		xengntshr_unshare(g->gs, g->page, 1);
	if (g->port >= 0)
		xenevtchn_unbind(g->xce, (evtchn_port_t)g->port);
	g->page = NULL;
	g->port = -1;
}

/* Switch our state, then give the backend 5 s to follow.  The stats file
 * says the new phase before xenstore does: a test that waits for the
 * state node then finds the phase it implies. */
static void wait_backend(struct guest *g, enum phase p, int fe_state)
{
	set_phase(g, p);
	fe_switch_state(g, fe_state);
	g->deadline = now_mono();
	g->deadline.tv_sec += CLOSE_WAIT_NS / 1000000000LL;
}

/* xenbus_read_otherend_details: backend-id and backend, strictly. */
static int read_backend_details(struct guest *g)
{
	char path[128], v[NODE_MAX], k[NODE_MAX];
	unsigned long id;

	fe_node(g, "backend-id", path, sizeof(path));
	if (xs_read_str(g, XBT_NULL, path, v, sizeof(v)) < 0 ||
	    parse_uint(v, 0x7fef, &id) < 0)
		goto bad;
	fe_node(g, "backend", path, sizeof(path));
	if (xs_read_str(g, XBT_NULL, path, k, sizeof(k)) < 0 || k[0] != '/' ||
	    xs_read_str(g, XBT_NULL, k, v, sizeof(v)) < 0)
		goto bad;
	g->backend_id = (uint32_t)id;
	snprintf(g->be_state_path, sizeof(g->be_state_path), "%s/state", k);
	return 0;
bad:
	logf_(g, "reading other end details from %s: missing or bad", g->fe);
	return -1;
}

/* ring-ref and port in one transaction, as xencons_connect_backend. */
static int write_ring_nodes(struct guest *g)
{
	char ref_path[128], port_path[128], ref[16], port[16];

	fe_node(g, "ring-ref", ref_path, sizeof(ref_path));
	fe_node(g, "port", port_path, sizeof(port_path));
	snprintf(ref, sizeof(ref), "%u", g->ref);
	snprintf(port, sizeof(port), "%d", g->port);
	for (;;) {
		xs_transaction_t t = xs_transaction_start(g->xs);
		if (t == XBT_NULL)
			break;
		if (!xs_write(g->xs, t, ref_path, ref, strlen(ref)) ||
		    !xs_write(g->xs, t, port_path, port, strlen(port))) {
			xs_transaction_end(g->xs, t, true);
			break;
		}
		if (xs_transaction_end(g->xs, t, false))
			return 0;
		if (errno != EAGAIN)
			break;
	}
	logf_(g, "writing ring-ref and port: %s", strerror(errno));
	return -1;
}

static void watch_backend(struct guest *g)
{
	if (!xs_watch(g->xs, g->be_state_path, "backend"))
		logf_(g, "xs_watch %s: %s", g->be_state_path, strerror(errno));
}

/* xencons_probe: a zeroed page granted to the backend, an unbound port for
 * it, both published, then Initialised.  Resume (xenbus_dev_resume, then
 * xencons_resume) does the same on a device that already exists, once its
 * "backend" node leads somewhere. */
static void guest_probe(struct guest *g, bool resume)
{
	char old_be[sizeof(g->be_state_path)];

	memcpy(old_be, g->be_state_path, sizeof(old_be));
	if (read_backend_details(g) < 0) {
		if (resume) {
			/* What Linux logs; the device stays, unusable, until
			 * its directory is seen removed. */
			logf_(g, "xenbus: %s: resume (talk_to_otherend) failed: -2", g->fe);
			g->stale = true;
		}
		return;
	}
	g->page = xengntshr_share_pages(g->gs, g->backend_id, 1, &g->ref, 1);
	if (!g->page) {
		logf_(g, "xengntshr_share_pages to domain %u: %s", g->backend_id,
		      strerror(errno));
		return;
	}
	g->port = xenevtchn_bind_unbound_port(g->xce, g->backend_id);
	if (g->port < 0 || write_ring_nodes(g) < 0) {
		logf_(g, "xenevtchn_bind_unbound_port/xenstore: %s", strerror(errno));
		ring_release(g);
		return;
	}
	ring_frontend_init(g->page, &g->out, &g->in);
	g->ring_live = true;
	g->out_broken = g->out_bad = g->in_bad = false;
	logf_(g, "%s %s: ring-ref %u port %d backend %u", resume ? "resumed" : "probed",
	      g->fe, g->ref, g->port, g->backend_id);
	if (strcmp(old_be, g->be_state_path) != 0)
		watch_backend(g);
	fe_switch_state(g, XenbusStateInitialised);
	set_phase(g, PH_INITIALISED);
}

/* Does device/console/ID match what we were asked to serve?  hvc_xen takes
 * the devid from the node name's last digit and ignores console 0. */
static bool device_matches(struct guest *g, const char *id)
{
	char path[128], v[NODE_MAX];
	size_t n = strlen(id);

	if (n == 0 || id[n - 1] == '0')
		return false;
	if (g->name) {
		snprintf(path, sizeof(path), "device/console/%s/name", id);
		if (xs_read_str(g, XBT_NULL, path, v, sizeof(v)) < 0 ||
		    strcmp(v, g->name) != 0)
			return false;
	}
	snprintf(path, sizeof(path), "device/console/%s/state", id);
	return state_read(g, path) == XenbusStateInitialising;
}

/* --resume: the device was there before the save; resume it once.  A
 * device whose resume failed stays (xenbus_dev_changed finds it and probes
 * nothing) until its directory is seen gone, as docs/protocol.md says ("The guest", Resume). */
static bool guest_seek_resumed(struct guest *g)
{
	if (g->resume_pending) {
		g->resume_pending = false;
		snprintf(g->fe, sizeof(g->fe), "device/console/%ld", g->devid);
		guest_probe(g, true);
		return true;
	}
	if (!g->stale)
		return false;
	if (!g->stale_event || fe_exists(g)) {
		g->stale_event = false;
		return true;
	}
	logf_(g, "%s gone: stale device removed", g->fe);
	g->stale = false;
	return false;
}

static void guest_seek(struct guest *g)
{
	char id[24];
	unsigned int n = 0;
	char **ids;

	if (guest_seek_resumed(g))
		return;
	if (g->devid >= 0) {
		snprintf(id, sizeof(id), "%ld", g->devid);
		if (device_matches(g, id)) {
			snprintf(g->fe, sizeof(g->fe), "device/console/%s", id);
			guest_probe(g, false);
		}
		return;
	}
	ids = xs_directory(g->xs, XBT_NULL, "device/console", &n);
	for (unsigned int i = 0; ids && i < n; i++) {
		if (strlen(ids[i]) < 16 && device_matches(g, ids[i])) {
			snprintf(g->fe, sizeof(g->fe), "device/console/%s", ids[i]);
			guest_probe(g, false);
			break;
		}
	}
	free(ids);
}

/* xencons_backend_changed, plus the waits of shutdown and reset. */
static void backend_changed(struct guest *g, int k)
{
	switch (g->phase) {
	case PH_INITIALISED:
	case PH_CONNECTED:
		if (k == XenbusStateConnected && g->phase == PH_INITIALISED) {
			set_phase(g, PH_CONNECTED);
			fe_switch_state(g, XenbusStateConnected);
			if (g->hostile && g->hostile->on_connected)
				g->hostile->on_connected(g);
		} else if (k == XenbusStateClosing || k == XenbusStateClosed) {
			/* hvc_remove, then xenbus_frontend_closed; keep the
			 * grant and port until the backend lets go. */
			ring_stop(g, true);
			set_phase(g, PH_CLOSED);
			fe_switch_state(g, XenbusStateClosed);
		}
		break;
	case PH_SHUTDOWN:
		/* During shutdown Linux reacts to Closing only. */
		if (k == XenbusStateClosing) {
			set_phase(g, PH_CLOSED);
			fe_switch_state(g, XenbusStateClosed);
			guest_finish(g);
		}
		break;
	case PH_RESET_CLOSING:
		if (k == XenbusStateClosing)
			wait_backend(g, PH_RESET_CLOSED, XenbusStateClosed);
		break;
	case PH_RESET_CLOSED:
		if (k == XenbusStateClosed) {
			ring_release(g);
			wait_backend(g, PH_RESET_INIT, XenbusStateInitialising);
		}
		break;
	case PH_RESET_INIT:
		if (k == XenbusStateInitWait)
			guest_probe(g, false);
		break;
	case PH_SEEK:
	case PH_CLOSED:
		break;
	}
}

/* A bounded wait ran out: Linux logs and goes on. */
static void deadline_passed(struct guest *g)
{
	g->deadline.tv_sec = 0;
	if (g->phase == PH_SHUTDOWN) {
		logf_(g, "xenbus_dev_shutdown: %s timeout closing device", g->fe);
		guest_finish(g);
		return;
	}
	logf_(g, "backend %s timed out", g->be_state_path);
	if (g->phase == PH_RESET_CLOSING) {
		wait_backend(g, PH_RESET_CLOSED, XenbusStateClosed);
	} else if (g->phase == PH_RESET_CLOSED) {
		ring_release(g);
		wait_backend(g, PH_RESET_INIT, XenbusStateInitialising);
	} else if (g->phase == PH_RESET_INIT) {
		guest_probe(g, false);
	}
}

/* Re-read xenstore and act, until nothing changes. */
static void guest_step(struct guest *g)
{
	for (int i = 0; i < 8 && !g->done; i++) {
		enum phase before = g->phase;
		if (g->phase != PH_SEEK && !fe_exists(g)) {
			logf_(g, "%s removed (unplug)", g->fe);
			guest_finish(g);
			return;
		}
		if (g->phase == PH_SEEK)
			guest_seek(g);
		else
			backend_changed(g, be_state(g));
		if (g->phase == before)
			return;
	}
}

/* SIGTERM: xenbus_dev_shutdown, for a device that is Connected. */
static void guest_shutdown(struct guest *g)
{
	if (g->phase != PH_CONNECTED) {
		logf_(g, "xenbus_dev_shutdown: %s: %s != Connected, skipping",
		      g->fe[0] ? g->fe : "device", phase_names[g->phase]);
		guest_finish(g);
		return;
	}
	wait_backend(g, PH_SHUTDOWN, XenbusStateClosing);
	ring_stop(g, false);   /* after F/state: a hung-up client sees Closing */
	guest_step(g);
}

/* SIGUSR1: xenbus_reset_frontend, as after kexec or a driver reload:
 * 5 -> 6 -> 1 with the backend following, new page and port after. */
static void guest_reset(struct guest *g)
{
	int k;

	if (g->phase != PH_INITIALISED && g->phase != PH_CONNECTED &&
	    g->phase != PH_CLOSED) {
		logf_(g, "SIGUSR1 while %s: ignored", phase_names[g->phase]);
		return;
	}
	k = be_state(g);
	logf_(g, "triggering reconnect on %s (backend state %d)", g->be_state_path, k);
	/* The tty hangs up after the first state change, so a client that
	 * sees the hang-up knows the frontend has left Connected. */
	if (k == XenbusStateConnected) {
		wait_backend(g, PH_RESET_CLOSING, XenbusStateClosing);
	} else if (k == XenbusStateClosing) {
		wait_backend(g, PH_RESET_CLOSED, XenbusStateClosed);
	} else {
		ring_release(g);
		wait_backend(g, PH_RESET_INIT, XenbusStateInitialising);
	}
	ring_stop(g, false);
	guest_step(g);
}

/* ---- the loop ----------------------------------------------------------- */

enum { PFD_XS, PFD_EVTCHN, PFD_SIG, PFD_LISTEN, PFD_TTY_R, PFD_TTY_W, PFD_COUNT };

static bool tty_wants_read(struct guest *g)
{
	struct iovec iov[2];
	int cnt;
	ssize_t room;

	if (!g->ring_live || g->out_broken || g->tty.rfd < 0 || g->tty.rd_eof)
		return false;
	room = ring_writable(&g->out, iov, &cnt);
	/* With out[] full we still listen until we know the writer waits. */
	return room > 0 || (room == 0 && !g->writer_waiting);
}

static bool tty_wants_write(struct guest *g)
{
	struct iovec iov[2];
	int cnt;

	if (!g->ring_live || g->tty.wfd < 0 || (g->hostile && g->hostile->never_read))
		return false;
	return ring_readable(&g->in, iov, &cnt) > 0;
}

static void tty_poll_setup(struct guest *g, struct pollfd *pfd)
{
	struct tty *t = &g->tty;
	bool client = t->rfd >= 0 || t->wfd >= 0;
	short r = tty_wants_read(g) ? POLLIN : 0;
	short w = tty_wants_write(g) ? POLLOUT : 0;

	/* A client waits in the backlog until the device exists; once it is
	 * gone for good, opening it fails: accept and hang up at once. */
	pfd[PFD_LISTEN].fd = (t->listen_fd >= 0 && !client &&
			      (g->ring_live || device_gone(g))) ? t->listen_fd : -1;
	pfd[PFD_LISTEN].events = POLLIN;
	if (t->listen_fd >= 0) {
		/* One socket: poll it with no events too, to hear a hang-up,
		 * but not once heard (POLLHUP would return at once). */
		pfd[PFD_TTY_R].fd = (client && (r || w || !t->hup)) ? t->rfd : -1;
		pfd[PFD_TTY_R].events = r | w;
		pfd[PFD_TTY_W].fd = -1;
	} else {
		pfd[PFD_TTY_R].fd = r ? t->rfd : -1;
		pfd[PFD_TTY_R].events = POLLIN;
		pfd[PFD_TTY_W].fd = w ? t->wfd : -1;
		pfd[PFD_TTY_W].events = POLLOUT;
	}
}

static int poll_timeout_ms(const struct guest *g)
{
	int64_t ns;

	if (g->deadline.tv_sec == 0)
		return -1;
	ns = ns_between(now_mono(), g->deadline);
	return ns <= 0 ? 0 : (int)((ns + 999999) / 1000000);
}

static void handle_signals(struct guest *g)
{
	struct signalfd_siginfo si;

	while (read(g->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGUSR1) {
			guest_reset(g);
		} else if (g->phase != PH_SHUTDOWN) {
			logf_(g, "signal %u: shutting down", si.ssi_signo);
			guest_shutdown(g);
		}
	}
}

static void handle_watches(struct guest *g)
{
	char **ev;

	while ((ev = xs_check_watch(g->xs)) != NULL) {
		/* Which node fired does not matter (re-read all), except to a
		 * stale device: xenbus_dev_changed looks at its own path only. */
		const char *at = g->stale ? strstr(ev[XS_WATCH_PATH], g->fe) : NULL;
		if (at && (at[strlen(g->fe)] == '\0' || at[strlen(g->fe)] == '/'))
			g->stale_event = true;
		free(ev);
	}
	guest_step(g);
}

static void handle_events(struct guest *g)
{
	int port;

	while ((port = xenevtchn_pending(g->xce)) >= 0) {
		if (port == g->port)
			g->st.events++;
		xenevtchn_unmask(g->xce, (evtchn_port_t)port);
	}
}

static void handle_tty(struct guest *g, const struct pollfd *pfd)
{
	struct tty *t = &g->tty;

	if (pfd[PFD_LISTEN].fd >= 0 && (pfd[PFD_LISTEN].revents & POLLIN))
		tty_accept(g);
	t->rev = pfd[PFD_TTY_R].fd >= 0 ? pfd[PFD_TTY_R].revents : 0;
	t->wev = pfd[PFD_TTY_W].fd >= 0 ? pfd[PFD_TTY_W].revents : 0;
	if (t->listen_fd >= 0 && (t->rev & (POLLHUP | POLLERR))) {
		t->hup = true;
		if (t->rd_eof)
			tty_close_client(g);
	}
}

static int guest_run(struct guest *g)
{
	struct pollfd pfd[PFD_COUNT];

	guest_step(g);
	while (!g->done) {
		pfd[PFD_XS] = (struct pollfd){ .fd = xs_fileno(g->xs), .events = POLLIN };
		pfd[PFD_EVTCHN] = (struct pollfd){ .fd = xenevtchn_fd(g->xce), .events = POLLIN };
		pfd[PFD_SIG] = (struct pollfd){ .fd = g->sigfd, .events = POLLIN };
		tty_poll_setup(g, pfd);
		if (poll(pfd, PFD_COUNT, poll_timeout_ms(g)) < 0 && errno != EINTR) {
			logf_(g, "poll: %s", strerror(errno));
			return 1;
		}
		if (pfd[PFD_SIG].revents)
			handle_signals(g);
		if (pfd[PFD_XS].revents)
			handle_watches(g);
		if (pfd[PFD_EVTCHN].revents)
			handle_events(g);
		if (g->deadline.tv_sec && poll_timeout_ms(g) == 0)
			deadline_passed(g);
		handle_tty(g, pfd);
		if (!g->done)
			ring_pump(g);
	}
	return 0;
}

/* ---- setup -------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f, "usage: guest-sim [--socket PATH] [--name NAME] "
		"[--hostile MODE[=ARG]] [--bench-out BYTES[:SIZE] | --bench-in BYTES] "
		"[--resume] DOMID [DEVID]\n"
		"  one console device's guest side, as Linux hvc_xen; "
		"environment XENSIM_DIR, XENSTORED_PATH\n"
		"  --resume: restored from a save: resume device DEVID (no state "
		"write), or keep it stale if its directory is absent\n"
		"  --bench-out: no tty; write BYTES from memory in SIZE-byte writes "
		"(default 65536)\n"
		"  --bench-in: no tty; read in[] into memory, print bytes=N seconds=S "
		"MBps=M once BYTES came\n"
		"  hostile modes:\n");
	for (size_t i = 0; i < sizeof(hostile_modes) / sizeof(hostile_modes[0]); i++)
		fprintf(f, "    %-14s %s\n", hostile_modes[i].name, hostile_modes[i].what);
}

static int parse_hostile(struct guest *g, const char *arg)
{
	const char *eq = strchr(arg, '=');
	size_t n = eq ? (size_t)(eq - arg) : strlen(arg);
	unsigned long v;

	for (size_t i = 0; i < sizeof(hostile_modes) / sizeof(hostile_modes[0]); i++) {
		const struct hostile_mode *m = &hostile_modes[i];
		if (strlen(m->name) != n || strncmp(m->name, arg, n) != 0)
			continue;
		g->hostile = m;
		g->hostile_arg = m->default_arg;
		if (eq && parse_uint(eq + 1, ULONG_MAX, &v) < 0)
			return -1;
		if (eq)
			g->hostile_arg = v;
		return 0;
	}
	return -1;
}

/* --bench-out BYTES[:SIZE] ('O'), --bench-in BYTES ('I') */
static int parse_bench(struct guest *g, int c, char *arg)
{
	char *colon = c == 'O' ? strchr(arg, ':') : NULL;
	unsigned long v;

	g->bench_write = 65536;
	if (colon) {
		*colon = '\0';
		if (parse_uint(colon + 1, ULONG_MAX, &v) < 0 || v == 0)
			return -1;
		g->bench_write = v;
	}
	if (parse_uint(arg, ULONG_MAX, &v) < 0 || v == 0)
		return -1;
	*(c == 'O' ? &g->bench_out : &g->bench_in) = v;
	return 0;
}

static int parse_args(struct guest *g, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "name", required_argument, NULL, 'n' },
		{ "hostile", required_argument, NULL, 'H' },
		{ "bench-out", required_argument, NULL, 'O' },
		{ "bench-in", required_argument, NULL, 'I' },
		{ "resume", no_argument, NULL, 'R' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int c;

	while ((c = getopt_long(argc, argv, "+s:n:H:h", opts, NULL)) != -1) {
		if (c == 'O' || c == 'I') {
			if (parse_bench(g, c, optarg) < 0)
				return -1;
		} else if (c == 's')
			g->sock_path = optarg;
		else if (c == 'n')
			g->name = optarg;
		else if (c == 'R')
			g->resume_pending = true;
		else if (c == 'H' && parse_hostile(g, optarg) == 0)
			continue;
		else if (c == 'h') {
			usage(stdout);
			exit(0);
		} else {
			return -1;
		}
	}
	if (argc - optind < 1 || argc - optind > 2 ||
	    parse_uint(argv[optind], 0x7fef, &v) < 0)
		return -1;
	g->domid = (uint32_t)v;
	if (argc - optind == 2) {
		if (parse_uint(argv[optind + 1], 65535, &v) < 0)
			return -1;
		g->devid = (long)v;
	}
	if (g->devid < 0 && (!g->name || !*g->name || strchr(g->name, '/')))
		return -1;
	if (g->resume_pending && g->devid < 0)
		return -1;   /* a resumed device is the one it was: give its devid */
	return 0;
}

static int paths_init(struct guest *g)
{
	const char *dir = getenv("XENSIM_DIR");
	char gdir[PATH_MAX];

	if (g->devid >= 0)
		snprintf(g->label, sizeof(g->label), "%u-%ld", g->domid, g->devid);
	else
		snprintf(g->label, sizeof(g->label), "%u-%s", g->domid, g->name);
	if (!dir || !*dir) {
		logf_(g, "XENSIM_DIR is not set");
		return -1;
	}
	snprintf(gdir, sizeof(gdir), "%s/guest", dir);
	if (mkdir(gdir, 0755) < 0 && errno != EEXIST) {
		logf_(g, "mkdir %s: %s", gdir, strerror(errno));
		return -1;
	}
	if (snprintf(g->pid_path, sizeof(g->pid_path), "%s/%s.pid", gdir, g->label) >=
	    (int)sizeof(g->pid_path) ||
	    snprintf(g->stats_path, sizeof(g->stats_path), "%s/%s.stats", gdir,
		     g->label) >= (int)sizeof(g->stats_path))
		return -1;
	return 0;
}

static int signals_init(struct guest *g)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);   /* a client that left is an EPIPE */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGUSR1);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	g->sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return g->sigfd < 0 ? -1 : 0;
}

/* xenstore as domain D, the test libraries as domain D, and a watch on
 * device/console (relative: /local/domain/D/device/console). */
static int hypervisor_init(struct guest *g)
{
	char dom[16];
	char *r;

	snprintf(dom, sizeof(dom), "%u", g->domid);
	setenv("XENSIM_DOMID", dom, 1);   /* the libraries read it at open */
	g->xs = xs_open(XS_OPEN_SOCKETONLY);
	if (!g->xs) {
		logf_(g, "xs_open: %s (is XENSTORED_PATH set?)", strerror(errno));
		return -1;
	}
	r = xs_control_command(g->xs, "as-domain", dom, (unsigned int)strlen(dom) + 1);
	if (!r) {
		logf_(g, "xenstore as-domain %s: %s", dom, strerror(errno));
		return -1;
	}
	free(r);
	g->gs = xengntshr_open(NULL, 0);
	g->xce = xenevtchn_open(NULL, 0);
	if (!g->gs || !g->xce) {
		logf_(g, "opening the test gnttab/evtchn libraries: %s", strerror(errno));
		return -1;
	}
	if (!xs_watch(g->xs, "device/console", "devices")) {
		logf_(g, "xs_watch device/console: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void guest_exit(struct guest *g)
{
	char text[512];

	stats_write(g);
	stats_format(g, text, sizeof(text));
	fprintf(stderr, "guest-sim %s: exit\n%s", g->label, text);
	ring_release(g);
	if (g->xce)
		xenevtchn_close(g->xce);
	if (g->gs)
		xengntshr_close(g->gs);
	if (g->xs)
		xs_close(g->xs);
	if (g->tty.listen_fd >= 0)
		unlink(g->sock_path);
	unlink(g->pid_path);
}

int main(int argc, char **argv)
{
	struct guest g = {
		.devid = -1, .port = -1, .sigfd = -1,
		.tty = { .listen_fd = -1, .rfd = -1, .wfd = -1 },
	};
	char pid[32];
	int rc;

	if (parse_args(&g, argc, argv) < 0) {
		usage(stderr);
		return 64;   /* EX_USAGE */
	}
	if (paths_init(&g) < 0 || signals_init(&g) < 0 || hypervisor_init(&g) < 0)
		return 1;
	if (g.sock_path) {
		if (tty_listen(&g) < 0)
			return 1;
	} else {
		if (!g.bench_out && !g.bench_in)
			tty_open_stdio(&g);
	}
	snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	if (file_write_atomic(g.pid_path, pid) < 0) {
		logf_(&g, "write %s: %s", g.pid_path, strerror(errno));
		return 1;
	}
	stats_write(&g);
	rc = guest_run(&g);
	guest_exit(&g);
	return rc;
}
