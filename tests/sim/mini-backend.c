/* SPDX-License-Identifier: MIT */
/*
 * mini-backend.c - a minimal console backend written with the test
 * libraries and ring.h, no proxy (tests/sim/README.md, "mini-backend").
 *
 * It exists to test the simulated host itself (guest-sim against something
 * that is not the code under test) and to measure the ring's own limit: how
 * fast bytes cross one 4 KiB console page with its event channel, with
 * nothing but a poll loop on each side.
 *
 * It follows protocol.md's backend steps in their simplest form: InitWait,
 * map + bind + Connected when the frontend is Initialised (or already
 * Connected: a reattach), Closing/Closed after the frontend, InitWait again
 * if it comes back Initialising.  Stopping (signal, or the relay is done)
 * unmaps and unbinds and leaves the backend state as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>
#include <xen/io/xenbus.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#include "ring.h"

#define NODE_MAX 256

enum mode { MODE_RELAY, MODE_BENCH_OUT, MODE_BENCH_IN };

struct backend {
	uint32_t domid, devid;
	enum mode mode;
	uint64_t bench_bytes;      /* bench modes: how many bytes to move */
	uint64_t expect_out;       /* relay: exit once this many went out */
	bool has_expect;
	char fe[96], be[NODE_MAX];
	struct xs_handle *xs;
	xengnttab_handle *gt;
	xenevtchn_handle *xce;
	void *page;                /* mapped ring, NULL when not connected */
	int port;                  /* our local port, -1 when none */
	struct ring_dir out, in;
	int sigfd;
	bool stdin_eof;
	bool in_full;              /* relay: in[] had no room for stdin's bytes */
	bool stdin_ready;          /* this pass may read stdin (see backend_run) */
	uint64_t out_bytes, in_bytes;
	struct timespec t0;        /* bench: first byte moved */
	bool started, done;
	int exit_code;
};

static void logf_(const struct backend *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void logf_(const struct backend *b, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "mini-backend %u-%u: ", b->domid, b->devid);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9' || (s[0] == '0' && s[1]))
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return (*end || errno || *out > max) ? -1 : 0;
}

/* ---- xenstore ----------------------------------------------------------- */

static int node_read(struct backend *b, const char *dir, const char *leaf,
		     char *buf, size_t len)
{
	char path[NODE_MAX + 32];
	unsigned int n;
	char *v;

	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	v = xs_read(b->xs, XBT_NULL, path, &n);
	if (!v)
		return -1;
	if (n >= len || strlen(v) != n) {
		free(v);
		errno = EINVAL;
		return -1;
	}
	memcpy(buf, v, n + 1);
	free(v);
	return 0;
}

static int node_read_u64(struct backend *b, const char *dir, const char *leaf,
			 uint64_t max, uint64_t *out)
{
	char v[NODE_MAX];

	if (node_read(b, dir, leaf, v, sizeof(v)) < 0)
		return -1;
	return parse_u64(v, max, out);
}

static void be_switch_state(struct backend *b, int state)
{
	char path[NODE_MAX + 8], s[4];

	snprintf(path, sizeof(path), "%s/state", b->be);
	snprintf(s, sizeof(s), "%d", state);
	if (!xs_write(b->xs, XBT_NULL, path, s, strlen(s)))
		logf_(b, "xenstore write %s: %s", path, strerror(errno));
	else
		logf_(b, "backend state %d", state);
}

/* ---- connecting --------------------------------------------------------- */

static void ring_disconnect(struct backend *b)
{
	if (b->page)
		logf_(b, "disconnecting (in_prod %u out_cons %u; so far in %" PRIu64
		      " out %" PRIu64 ")", b->in.local, b->out.local, b->in_bytes,
		      b->out_bytes);
	if (b->page)
		xengnttab_unmap(b->gt, b->page, 1);
	if (b->port >= 0)
		xenevtchn_unbind(b->xce, (evtchn_port_t)b->port);
	b->page = NULL;
	b->port = -1;
}

static void notify_frontend(struct backend *b)
{
	if (b->port >= 0)
		xenevtchn_notify(b->xce, (evtchn_port_t)b->port);
}

/* Step 3 of protocol.md: map ring-ref, bind port, Connected, notify. */
static int ring_connect(struct backend *b)
{
	uint64_t ref, port;

	if (node_read_u64(b, b->fe, "ring-ref", UINT32_MAX, &ref) < 0 ||
	    node_read_u64(b, b->fe, "port", UINT32_MAX >> 1, &port) < 0) {
		logf_(b, "frontend ring-ref/port missing or bad");
		return -1;
	}
	b->page = xengnttab_map_grant_ref(b->gt, b->domid, (uint32_t)ref,
					  PROT_READ | PROT_WRITE);
	if (!b->page) {
		logf_(b, "map grant %" PRIu64 " of domain %u: %s", ref, b->domid,
		      strerror(errno));
		return -1;
	}
	b->port = xenevtchn_bind_interdomain(b->xce, b->domid, (evtchn_port_t)port);
	if (b->port < 0) {
		logf_(b, "bind port %" PRIu64 " of domain %u: %s", port, b->domid,
		      strerror(errno));
		ring_disconnect(b);
		return -1;
	}
	ring_backend_init(b->page, &b->out, &b->in);
	ring_mark_connected(b->page);
	be_switch_state(b, XenbusStateConnected);
	notify_frontend(b);
	logf_(b, "connected: ring-ref %" PRIu64 " port %" PRIu64 " (in_prod %u out_cons %u;"
	      " so far in %" PRIu64 " out %" PRIu64 ")", ref, port, b->in.local,
	      b->out.local, b->in_bytes, b->out_bytes);
	return 0;
}

/* React to the frontend's state (all watches end here). */
static void frontend_changed(struct backend *b)
{
	uint64_t f;
	char v[NODE_MAX];

	/* A backend in another domain than dom0 may not read the frontend's
	 * parent: to it, a removed frontend reads as EACCES, not ENOENT. */
	if (node_read(b, b->fe, "state", v, sizeof(v)) < 0 &&
	    (errno == ENOENT || errno == EACCES)) {
		logf_(b, "%s is gone", b->fe);
		b->done = true;
		return;
	}
	if (parse_u64(v, XenbusStateReconfigured, &f) < 0)
		return;
	if ((f == XenbusStateInitialised || f == XenbusStateConnected) && !b->page) {
		if (ring_connect(b) < 0)
			b->exit_code = 1;
	} else if (f == XenbusStateClosing) {
		be_switch_state(b, XenbusStateClosing);
	} else if (f == XenbusStateClosed && b->page) {
		ring_disconnect(b);
		be_switch_state(b, XenbusStateClosed);
	} else if (f == XenbusStateInitialising && !b->page) {
		be_switch_state(b, XenbusStateInitWait);   /* it came back */
	}
}

static int backend_init(struct backend *b)
{
	uint64_t fe_id, state = 0;

	snprintf(b->fe, sizeof(b->fe), "/local/domain/%u/device/console/%u",
		 b->domid, b->devid);
	b->xs = xs_open(XS_OPEN_SOCKETONLY);
	b->gt = xengnttab_open(NULL, 0);
	b->xce = xenevtchn_open(NULL, 0);
	if (!b->xs || !b->gt || !b->xce) {
		logf_(b, "open xenstore/gnttab/evtchn: %s", strerror(errno));
		return -1;
	}
	if (node_read(b, b->fe, "backend", b->be, sizeof(b->be)) < 0 ||
	    node_read_u64(b, b->be, "frontend-id", 0x7fef, &fe_id) < 0 ||
	    fe_id != b->domid) {
		logf_(b, "%s/backend and its frontend-id do not match", b->fe);
		return -1;
	}
	node_read_u64(b, b->be, "state", XenbusStateReconfigured, &state);
	if (state != XenbusStateConnected)
		be_switch_state(b, XenbusStateInitWait);
	/* A watch on F covers F/state, ring-ref, port and F's removal. */
	if (!xs_watch(b->xs, b->fe, "frontend")) {
		logf_(b, "xs_watch %s: %s", b->fe, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- moving bytes ------------------------------------------------------- */

static double seconds_since(struct timespec t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) / 1e9;
}

static void bench_start(struct backend *b)
{
	if (!b->started) {
		clock_gettime(CLOCK_MONOTONIC, &b->t0);
		b->started = true;
	}
}

static void bench_report(struct backend *b, uint64_t bytes)
{
	double s = seconds_since(b->t0);

	printf("bytes=%" PRIu64 " seconds=%.6f MBps=%.2f\n", bytes, s,
	       s > 0 ? (double)bytes / s / 1e6 : 0.0);
	fflush(stdout);
	b->done = true;
}

/* out[] -> stdout (relay) or the bit bucket (bench-out). */
static bool pump_out(struct backend *b)
{
	struct iovec iov[2];
	int cnt;
	ssize_t avail = ring_readable(&b->out, iov, &cnt), n;

	if (avail < 0) {
		logf_(b, "protocol error: out_prod is impossible; stop serving");
		b->exit_code = 2;
		b->done = true;
		return false;
	}
	if (avail == 0 || b->mode == MODE_BENCH_IN)
		return false;   /* bench-in measures in[] alone */
	if (b->mode == MODE_BENCH_OUT) {
		bench_start(b);
		n = avail;
	} else {
		n = writev(STDOUT_FILENO, iov, cnt);
		if (n <= 0)
			return false;   /* EAGAIN: POLLOUT will say when */
	}
	ring_consume(&b->out, (size_t)n);
	b->out_bytes += (uint64_t)n;
	return true;
}

/* Byte k of the stream is k % PATTERN_PERIOD: copied from a table, so the
 * fill costs what a client's readv would (a copy), not a loop per byte. */
#define PATTERN_PERIOD 251
static unsigned char pattern[PATTERN_PERIOD + RING_PAGE_SIZE];

static size_t fill_pattern(struct iovec *iov, int cnt, uint64_t offset, uint64_t max)
{
	size_t done = 0;

	for (int i = 0; i < cnt && done < max; i++) {
		size_t n = iov[i].iov_len < max - done ? iov[i].iov_len : (size_t)(max - done);
		memcpy(iov[i].iov_base, pattern + (offset + done) % PATTERN_PERIOD, n);
		done += n;
	}
	return done;
}

/* stdin (relay) or a pattern (bench-in) -> in[]. */
static bool pump_in(struct backend *b)
{
	struct iovec iov[2];
	int cnt;
	ssize_t room = ring_writable(&b->in, iov, &cnt), n;

	if (room < 0) {
		logf_(b, "protocol error: in_cons is impossible; stop serving");
		b->exit_code = 2;
		b->done = true;
		return false;
	}
	b->in_full = room == 0;
	if (room == 0)
		return false;
	if (b->mode == MODE_BENCH_IN) {
		bench_start(b);
		n = (ssize_t)fill_pattern(iov, cnt, b->in_bytes, b->bench_bytes - b->in_bytes);
	} else if (b->mode == MODE_RELAY && !b->stdin_eof && b->stdin_ready) {
		n = readv(STDIN_FILENO, iov, cnt);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			b->stdin_eof = true;
	} else {
		return false;
	}
	if (n <= 0)
		return false;
	ring_produce(&b->in, (size_t)n);
	b->in_bytes += (uint64_t)n;
	return true;
}

static void check_finished(struct backend *b)
{
	struct iovec iov[2];
	int cnt;

	if (b->mode == MODE_BENCH_OUT && b->out_bytes >= b->bench_bytes)
		bench_report(b, b->out_bytes);
	else if (b->mode == MODE_BENCH_IN && b->in_bytes >= b->bench_bytes &&
		 ring_unconsumed(&b->in, iov, &cnt) == 0)
		bench_report(b, b->in_bytes);
	else if (b->mode == MODE_RELAY && b->has_expect && b->stdin_eof &&
		 b->out_bytes >= b->expect_out)
		b->done = true;
}

static void pump(struct backend *b)
{
	bool progress;

	if (!b->page)
		return;
	progress = pump_out(b);
	progress |= pump_in(b);
	if (progress)
		notify_frontend(b);   /* only after publishing real progress */
	check_finished(b);
}

/* ---- the loop ----------------------------------------------------------- */

enum { PFD_XS, PFD_EVTCHN, PFD_SIG, PFD_STDIN, PFD_STDOUT, PFD_COUNT };

static void poll_setup(struct backend *b, struct pollfd *pfd)
{
	struct iovec iov[2];
	int cnt;
	bool relay = b->mode == MODE_RELAY && b->page;

	pfd[PFD_XS] = (struct pollfd){ .fd = xs_fileno(b->xs), .events = POLLIN };
	pfd[PFD_EVTCHN] = (struct pollfd){ .fd = xenevtchn_fd(b->xce), .events = POLLIN };
	pfd[PFD_SIG] = (struct pollfd){ .fd = b->sigfd, .events = POLLIN };
	pfd[PFD_STDIN] = (struct pollfd){ .fd = -1, .events = POLLIN };
	pfd[PFD_STDOUT] = (struct pollfd){ .fd = -1, .events = POLLOUT };
	if (relay && !b->stdin_eof && ring_writable(&b->in, iov, &cnt) > 0)
		pfd[PFD_STDIN].fd = STDIN_FILENO;
	if (relay && ring_readable(&b->out, iov, &cnt) > 0)
		pfd[PFD_STDOUT].fd = STDOUT_FILENO;
}


static void handle_watches(struct backend *b)
{
	char **ev;

	while ((ev = xs_check_watch(b->xs)) != NULL)
		free(ev);
	frontend_changed(b);
}

static int backend_run(struct backend *b)
{
	struct pollfd pfd[PFD_COUNT];
	struct signalfd_siginfo si;
	int port;

	while (!b->done) {
		poll_setup(b, pfd);
		if (poll(pfd, PFD_COUNT, -1) < 0 && errno != EINTR)
			return 1;
		if (pfd[PFD_SIG].revents &&
		    read(b->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
			logf_(b, "signal %u: stopping (backend state left as it is)",
			      si.ssi_signo);
			break;
		}
		if (pfd[PFD_XS].revents)
			handle_watches(b);
		/* The least a backend does per notification, in the proxy's
		 * order: take it (one pending, which masks the port), move the
		 * bytes and notify, then unmask.  Anything that came meanwhile
		 * is delivered again on unmask. */
		port = pfd[PFD_EVTCHN].revents ? xenevtchn_pending(b->xce) : -1;
		/* Read stdin only when it has bytes, or when the guest may have
		 * made room in a full in[]: no readv that can only say EAGAIN. */
		b->stdin_ready = pfd[PFD_STDIN].revents || (port >= 0 && b->in_full);
		if (!b->done)
			pump(b);
		if (port >= 0)
			xenevtchn_unmask(b->xce, (evtchn_port_t)port);
	}
	ring_disconnect(b);
	logf_(b, "out_bytes=%" PRIu64 " in_bytes=%" PRIu64, b->out_bytes, b->in_bytes);
	return b->exit_code;
}

static void backend_close(struct backend *b)
{
	if (b->xce)
		xenevtchn_close(b->xce);
	if (b->gt)
		xengnttab_close(b->gt);
	if (b->xs)
		xs_close(b->xs);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: mini-backend DOMID DEVID [--expect-out BYTES] "
		"[--bench-out BYTES | --bench-in BYTES]\n"
		"  relay (default): stdin -> in[], out[] -> stdout; with --expect-out, "
		"exit 0 once stdin is at EOF and BYTES went to stdout\n"
		"  --bench-out: drain and count out[]; --bench-in: fill in[] with a "
		"pattern; both print bytes=N seconds=S MBps=M\n"
		"  environment XENSIM_DIR, XENSTORED_PATH, XENSIM_DOMID (default 0)\n");
}

static int parse_args(struct backend *b, int argc, char **argv)
{
	uint64_t v;
	int pos = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		bool takes = !strcmp(a, "--bench-out") || !strcmp(a, "--bench-in") ||
			     !strcmp(a, "--expect-out");
		if (takes) {
			if (i + 1 >= argc || parse_u64(argv[++i], UINT64_MAX, &v) < 0)
				return -1;
			if (!strcmp(a, "--expect-out")) {
				b->expect_out = v, b->has_expect = true;
			} else {
				if (b->mode != MODE_RELAY)
					return -1;
				b->mode = !strcmp(a, "--bench-out") ? MODE_BENCH_OUT
								     : MODE_BENCH_IN;
				b->bench_bytes = v;
			}
		} else if (a[0] != '-' && pos < 2 && parse_u64(a, 0x7fef, &v) == 0) {
			*(pos++ == 0 ? &b->domid : &b->devid) = (uint32_t)v;
		} else {
			return -1;
		}
	}
	return pos == 2 ? 0 : -1;
}

int main(int argc, char **argv)
{
	struct backend b = { .port = -1, .sigfd = -1 };
	sigset_t set;
	int rc;

	if (parse_args(&b, argc, argv) < 0) {
		usage(stderr);
		return 64;   /* EX_USAGE */
	}
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	b.sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i % PATTERN_PERIOD);
	if (b.mode == MODE_RELAY) {
		fcntl(STDIN_FILENO, F_SETFL, fcntl(STDIN_FILENO, F_GETFL) | O_NONBLOCK);
		fcntl(STDOUT_FILENO, F_SETFL, fcntl(STDOUT_FILENO, F_GETFL) | O_NONBLOCK);
	}
	rc = (b.sigfd < 0 || backend_init(&b) < 0) ? 1 : backend_run(&b);
	backend_close(&b);
	return rc;
}
