/* SPDX-License-Identifier: MIT */
/*
 * xenchan-devd - in a driver domain B, serve every channel whose backend is
 * B: what `xl devd` does for disks and networks, for consoles with a name.
 *
 * It watches B's console backends, /local/domain/B/backend/console, and
 * starts one xenchan-proxy per channel whose backend directory K
 * (.../console/D/N) appears; the proxy takes its endpoint from K's
 * connection and path.  A proxy that fails is restarted (proxies.c); one
 * that exits 0 has seen its channel or guest go, and is not.  One poll loop
 * over a signalfd and the xenstore watch: a timeout only while a restart
 * is pending or the end is near.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "../strict.h"
#include "devd.h"

/* After SIGTERM, proxies get this long to end before SIGKILL. */
#define STOP_GRACE_MS 10000

static const char usage_text[] =
	"usage: xenchan-devd [options]\n"
	"In a driver domain, start one xenchan-proxy per channel whose backend is\n"
	"this domain, as it appears; restart crashed ones; let them end with their guest.\n"
	"  -b, --backend-domid B  serve domain B's channels (default: this domain)\n"
	"  -v, --verbose          log more (twice: the proxies' debug lines too)\n"
	"  -q, --quiet            log errors only\n"
	"  -h, --help             this text\n"
	"  -V, --version          the version\n"
	"Environment: XENCHAN_PROXY (the proxy to run), XENCHAN_PROXY_USER (its\n"
	"user; default xenchan), XENCHAN_PROXY_OPTS (more proxy options).\n";

static const struct option longopts[] = {
	{ "backend-domid", required_argument, NULL, 'b' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* ---- the scan of B's console backends ----------------------------------------- */

static struct served *find(struct devd *dd, unsigned domid, unsigned devid)
{
	for (unsigned i = 0; i < dd->n_ch; i++)
		if (dd->ch[i].domid == domid && dd->ch[i].devid == devid)
			return &dd->ch[i];
	return NULL;
}

/* K = /local/domain/B/backend/console/D/N is complete (dom0 writes it in
 * one transaction, frontend-id with it): a channel to serve. */
static void appeared(struct devd *dd, unsigned domid, unsigned devid)
{
	char k[DEVD_PATH_MAX], val[16], conn[16];
	unsigned long id;
	struct served *s;

	snprintf(k, sizeof(k), PATH_BACKEND, dd->backend, domid, devid);
	if (!strict_leaf(dd->xs, k, "frontend-id", val, sizeof(val))
	    || !strict_uint(val, DOMID_MAX, &id) || id != domid)
		return;
	if (dd->n_ch == DEVD_MAX_CHANNELS) {
		log_line(&dd->log, XTL_ERROR, -1, "domain %u channel %u: already serving %d "
			 "channels: not this one", domid, devid, DEVD_MAX_CHANNELS);
		return;
	}
	s = &dd->ch[dd->n_ch++];
	memset(s, 0, sizeof(*s));
	s->domid = domid;
	s->devid = devid;
	s->listed = true;
	if (!strict_leaf(dd->xs, k, "connection", conn, sizeof(conn)) || strcmp(conn, "socket")
	    || !strict_leaf(dd->xs, k, "path", s->sock, sizeof(s->sock)) || s->sock[0] != '/')
		s->sock[0] = '\0';
	log_line(&dd->log, XTL_INFO, -1, "domain %u channel %u: backend %s appeared", domid,
		 devid, k);
	devd_spawn(dd, s);
}

/* dir's children that are device ids (or domids): their numbers. */
static unsigned list_ids(struct devd *dd, const char *dir, unsigned long max,
			 unsigned long *ids, unsigned cap)
{
	unsigned n = 0, k = 0;
	char **e = xs_directory(dd->xs, XBT_NULL, dir, &n);

	if (e == NULL && errno != ENOENT)
		log_line(&dd->log, XTL_WARN, errno, "xs_directory %s", dir);
	for (unsigned i = 0; e && i < n && k < cap; i++)
		if (strict_canonical(e[i], max, &ids[k]))
			k++;
	free(e);
	return k;
}

/* Which channels have a backend directory now: start the new ones; forget
 * those gone whose proxy has ended (a running one ends by itself). */
static void scan(struct devd *dd)
{
	unsigned long doms[DEVD_MAX_CHANNELS], devs[DEVD_MAX_CHANNELS];
	unsigned nd, nn;
	char dir[DEVD_PATH_MAX];

	for (unsigned i = 0; i < dd->n_ch; i++)
		dd->ch[i].listed = false;
	nd = list_ids(dd, dd->dir, DOMID_MAX, doms, DEVD_MAX_CHANNELS);
	for (unsigned i = 0; i < nd; i++) {
		snprintf(dir, sizeof(dir), PATH_BACKEND_KIND, dd->backend, "console",
			 (unsigned)doms[i]);
		nn = list_ids(dd, dir, CONSOLE_DEVID_MAX, devs, DEVD_MAX_CHANNELS);
		for (unsigned j = 0; j < nn; j++) {
			struct served *s = find(dd, doms[i], devs[j]);

			if (devs[j] == 0)
				continue;   /* the primary console: not a channel */
			if (s)
				s->listed = true;
			else
				appeared(dd, doms[i], devs[j]);
		}
	}
	for (unsigned i = 0; i < dd->n_ch; i++)
		if (!dd->ch[i].listed && dd->ch[i].pid == 0)
			log_line(&dd->log, XTL_INFO, -1, "domain %u channel %u: backend gone",
				 dd->ch[i].domid, dd->ch[i].devid);
	devd_forget(dd);
}

/* ---- setup and the loop -------------------------------------------------------- */

static int parse(struct devd *dd, int argc, char **argv, int *verbosity, bool *given)
{
	unsigned long v;
	int c;

	while ((c = getopt_long(argc, argv, "b:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (!strict_uint(optarg, DOMID_MAX, &v)) {
				fputs("xenchan-devd: --backend-domid takes a domid\n", stderr);
				return EX_USAGE;
			}
			dd->backend = v;
			*given = true;
			break;
		case 'v': ++*verbosity; break;
		case 'q': *verbosity = -1; break;
		case 'h': fputs(usage_text, stdout); return -1;
		case 'V': printf("xenchan-devd %s\n", XENCHAN_VERSION); return -1;
		default: fputs(usage_text, stderr); return EX_USAGE;
		}
	}
	if (optind != argc) {
		fputs(usage_text, stderr);
		return EX_USAGE;
	}
	return 0;
}

/* This domain, from the relative "domid" node; B unless --backend-domid. */
static int which_backend(struct devd *dd, bool given)
{
	char val[16];
	unsigned long self;

	if (!strict_read(dd->xs, "domid", val, sizeof(val)) || !strict_uint(val, DOMID_MAX, &self)) {
		if (given)
			return 0;
		log_line(&dd->log, XTL_ERROR, errno, "cannot read this domain's domid (the "
			 "node \"domid\"): give --backend-domid");
		return EX_UNAVAILABLE;
	}
	if (!given && self == BACKEND_DOMID_DOM0) {
		log_line(&dd->log, XTL_ERROR, -1, "this is dom0, whose channels the device "
			 "model serves (xenchan-dm or QEMU): xenchan-devd is for a driver "
			 "domain (--backend-domid 0 to serve dom0's anyway)");
		return EX_USAGE;
	}
	if (!given)
		dd->backend = self;
	return 0;
}

static int open_signals(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static void begin_stop(struct devd *dd, int64_t *deadline)
{
	if (dd->stopping)
		return;
	dd->stopping = true;
	*deadline = mono_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < dd->n_ch; i++)
		dd->ch[i].restart_at = 0;
	devd_signal_all(dd, SIGTERM);
	log_line(&dd->log, XTL_INFO, -1, "stopping: %u proxies told to end", devd_alive(dd));
}

/* The signals: children reaped, a stop begun; false if none could be read. */
static void on_signals(struct devd *dd, int sfd, int64_t *deadline)
{
	struct signalfd_siginfo si;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			devd_reap(dd);
		else if (si.ssi_signo == SIGHUP)
			scan(dd);
		else
			begin_stop(dd, deadline);
	}
	devd_reap(dd);   /* SIGCHLDs coalesce */
}

static int run(struct devd *dd, int sfd)
{
	int64_t deadline = 0;
	bool killed = false;
	int code = 0;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = dd->stopping ? -1 : xs_fileno(dd->xs), .events = POLLIN },
		};
		int timeout = dd->stopping ? (killed ? -1 : mono_until(deadline)) : devd_timeout(dd);

		if (dd->stopping && devd_alive(dd) == 0)
			return code;
		if (poll(pfd, 2, timeout) < 0 && errno != EINTR) {
			log_line(&dd->log, XTL_ERROR, errno, "poll");
			return EX_OSERR;
		}
		if (pfd[0].revents)
			on_signals(dd, sfd, &deadline);
		if (pfd[1].revents & (POLLERR | POLLHUP | POLLNVAL)) {
			log_line(&dd->log, XTL_ERROR, -1, "lost the xenstore connection");
			code = EX_UNAVAILABLE;
			begin_stop(dd, &deadline);
		} else if (pfd[1].revents) {
			char **ev;
			bool any = false;

			while ((ev = xs_check_watch(dd->xs)) != NULL) {
				free(ev);
				any = true;
			}
			if (any)
				scan(dd);
		}
		devd_restarts_due(dd);
		if (dd->stopping && !killed && mono_until(deadline) == 0 && devd_alive(dd)) {
			log_line(&dd->log, XTL_WARN, -1, "%u proxies still running after %d s: "
				 "killing them", devd_alive(dd), STOP_GRACE_MS / 1000);
			devd_signal_all(dd, SIGKILL);
			killed = true;
		}
	}
}

int main(int argc, char **argv)
{
	static struct devd dd;
	int verbosity = 0, r, sfd;
	bool given = false;

	dd.log.program = "xenchan-devd";
	r = parse(&dd, argc, argv, &verbosity, &given);
	if (r)
		return r < 0 ? 0 : r;
	dd.log.logger = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr,
		verbosity < 0 ? XTL_ERROR : verbosity == 0 ? XTL_NOTICE : verbosity == 1
		? XTL_INFO : XTL_DEBUG, 0);
	if (dd.log.logger == NULL)
		return EX_OSERR;
	sfd = open_signals();
	dd.xs = xs_open(0);
	if (sfd < 0 || dd.xs == NULL) {
		log_line(&dd.log, XTL_ERROR, errno, sfd < 0 ? "signalfd"
			 : "xs_open (is xenstore there: /dev/xen/xenbus?)");
		return EX_UNAVAILABLE;
	}
	r = which_backend(&dd, given);
	if (r == 0) {
		snprintf(dd.dir, sizeof(dd.dir), PATH_BACKENDS, dd.backend);
		devd_find_proxy(&dd);
		/* Set before the backend tree exists: B may watch below its home.
		 * The watch fires once at once: the first scan. */
		if (!xs_watch(dd.xs, dd.dir, "console")) {
			log_line(&dd.log, XTL_ERROR, errno, "xs_watch %s", dd.dir);
			r = EX_UNAVAILABLE;
		}
	}
	if (r == 0) {
		log_line(&dd.log, XTL_NOTICE, -1, "serving domain %u's channels (%s), with %s",
			 dd.backend, dd.dir, dd.proxy.path);
		r = run(&dd, sfd);
	}
	xs_close(dd.xs);
	proxy_cmd_free(&dd.proxy);
	xtl_logger_destroy(dd.log.logger);
	return r;
}
