/* SPDX-License-Identifier: MIT */
/*
 * xenchan-dm - a device-model stand-in for guests whose only QEMU work is
 * their channel= lines.
 *
 * libxl runs it in QEMU's place (device_model_override) with the argv it
 * builds for QEMU.  It refuses anything only QEMU can do, starts one
 * xenchan-proxy per libxl-channelN chardev and restarts one that crashes,
 * writes the device-model state libxl waits for once every proxy has its
 * endpoint open, and answers the QMP that libxl and libxenstat speak.
 * Checked against Xen 4.17's libxl_dm.c (argv, startup, destroy),
 * libxl_exec.c (the spawn), libxl_qmp.c (the client) and xenstat_qmp.c, and
 * against 4.18 to 4.22's (the same for a PV guest, but for 4.20's probe,
 * which probe.c answers).
 *
 * One poll loop: a signalfd (children, SIGTERM, SIGHUP), the xenstore watch
 * fd, the QMP listening sockets and their clients.  A timeout exists only
 * while a restart is pending or the end is near.
 *
 * This file is the loop, its phases and main; dm.h says where the rest is.
 */
#include <errno.h>
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

#include "dm.h"
#include "monitor.h"
#include "probe.h"
#include "proxies.h"
#include "store.h"

/* At the end, a proxy gives a reading client up to 5 s without progress to
 * take what it holds; after ENDING_GRACE_MS we stop waiting, and a proxy
 * that ignores SIGTERM for STOP_GRACE_MS is killed. */
#define ENDING_GRACE_MS   10000
#define STOP_GRACE_MS     5000

/* ---- phases --------------------------------------------------------------------- */

/* SIGTERM to every proxy; the first nonzero exit_code becomes ours. */
static void begin_stopping(struct dm *dm, int exit_code)
{
	if (dm->phase == DM_STOPPING)
		return;
	if (exit_code && !dm->exit_code)
		dm->exit_code = exit_code;
	dm->phase = DM_STOPPING;
	dm->deadline = mono_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < dm->n_ch; i++)
		dm->ch[i].restart_at = 0;
	signal_children(dm, SIGTERM);
}

/* The domain is going (SIGHUP from libxl's destroy, or it is gone): libxl
 * removes the channels' nodes, and each proxy then hands a reading client
 * what it holds and exits by itself. */
static void begin_ending(struct dm *dm, const char *why)
{
	if (dm->phase >= DM_ENDING)
		return;
	dm_log(dm, XTL_INFO, -1, "%s: letting %u proxies finish", why, children_alive(dm));
	dm->phase = DM_ENDING;
	dm->deadline = mono_ms() + ENDING_GRACE_MS;
	for (unsigned i = 0; i < dm->n_ch; i++)
		dm->ch[i].restart_at = 0;
}

/* What the calls just made asked of the phases (dm->req). */
static void act_on_requests(struct dm *dm)
{
	if (dm->req.stop) {
		dm->req.stop = false;
		begin_stopping(dm, dm->req.stop_code);
	}
	if (dm->req.quit) {
		dm->req.quit = false;
		dm_log(dm, XTL_INFO, -1, "QMP quit: stopping %u proxies", children_alive(dm));
		begin_stopping(dm, 0);
	}
}

static void check_started(struct dm *dm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dm->n_ch; i++) {
		struct channel *ch = &dm->ch[i];

		if (ch->pid && !ch->ready && proxy_ready(dm, ch)) {
			ch->ready = true;
			if (dm->phase == DM_RUNNING)
				dm_log(dm, XTL_INFO, -1, "%s: channel %s served again by pid %d",
				       ch->cd->id, ch->name, (int)ch->pid);
		}
		n += ch->served && !ch->ended && !ch->ready;
	}
	if (dm->phase != DM_STARTING || n)
		return;
	if (write_running(dm)) {
		begin_stopping(dm, EX_UNAVAILABLE);
		return;
	}
	dm->phase = DM_RUNNING;
	dm_log(dm, XTL_INFO, -1, "running: every proxy has its endpoint open");
}

static void on_watches(struct dm *dm)
{
	char **ev;
	bool release = false;

	while ((ev = xs_check_watch(dm->xs)) != NULL) {
		release |= !strcmp(ev[XS_WATCH_TOKEN], "release");
		free(ev);
	}
	if (errno != EAGAIN) {
		/* Without xenstore nothing can be supervised, and its fd would
		 * poll readable for ever. */
		dm_log(dm, XTL_ERROR, errno, "xs_check_watch: lost xenstore");
		dm->xs_lost = true;
		begin_stopping(dm, EX_UNAVAILABLE);
		return;
	}
	if (release && !xs_is_domain_introduced(dm->xs, dm->cfg.domid))
		begin_ending(dm, "the domain is gone");
	check_started(dm);
}

static void on_signals(struct dm *dm)
{
	struct signalfd_siginfo si;

	while (read(dm->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_children(dm);
			act_on_requests(dm);
			check_started(dm);      /* an ended channel holds nothing up */
			break;
		case SIGHUP:
			/* libxl_destroy_device_model's signal, sent just before it
			 * removes the domain's devices. */
			begin_ending(dm, "SIGHUP: the domain is being destroyed");
			break;
		default:
			if (dm->phase != DM_STOPPING)
				dm_log(dm, XTL_INFO, -1, "%s: stopping %u proxies",
				       strsignal((int)si.ssi_signo), children_alive(dm));
			begin_stopping(dm, 0);
		}
	}
}

/* Due restarts and the ends of grace periods; the poll timeout until the
 * next one (-1: none, so an idle xenchan-dm never wakes). */
static int on_timers(struct dm *dm)
{
	int64_t now = mono_ms(), next = -1;

	if (dm->phase >= DM_ENDING && now >= dm->deadline && children_alive(dm)) {
		if (dm->phase == DM_ENDING) {
			dm_log(dm, XTL_WARN, -1, "%u proxies still running %d s after the end "
			       "began: stopping them", children_alive(dm), ENDING_GRACE_MS / 1000);
			begin_stopping(dm, 0);
		} else if (!dm->killed) {
			dm_log(dm, XTL_WARN, -1, "%u proxies ignored SIGTERM for %d s: killing them",
			       children_alive(dm), STOP_GRACE_MS / 1000);
			signal_children(dm, SIGKILL);
			dm->killed = true;
		}
	}
	if (dm->phase >= DM_ENDING && !dm->killed)
		next = dm->deadline;
	for (unsigned i = 0; i < dm->n_ch; i++) {
		struct channel *ch = &dm->ch[i];

		if (ch->restart_at && ch->restart_at <= now && dm->phase == DM_RUNNING)
			restart_due(dm, ch);
		if (ch->restart_at && (next < 0 || ch->restart_at < next))
			next = ch->restart_at;
	}
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

/* ---- the loop ---------------------------------------------------------------------- */

enum { PFD_SIGNAL, PFD_XS, PFD_FIXED };
#define PFD_MAX (PFD_FIXED + MONITOR_PFD_MAX)

static unsigned poll_set(struct dm *dm, struct pollfd *pfd, struct poll_who *who)
{
	pfd[PFD_SIGNAL] = (struct pollfd){ .fd = dm->sfd, .events = POLLIN };
	pfd[PFD_XS] = (struct pollfd){ .fd = dm->xs_lost ? -1 : xs_fileno(dm->xs), .events = POLLIN };
	return PFD_FIXED + monitor_poll_set(dm, pfd + PFD_FIXED, who);
}

static int run(struct dm *dm)
{
	struct pollfd pfd[PFD_MAX];
	struct poll_who who[MONITOR_PFD_MAX];  /* for pfd[PFD_FIXED] on */

	for (;;) {
		int timeout = on_timers(dm);
		unsigned n;

		if (dm->phase >= DM_ENDING && !children_alive(dm))
			return dm->exit_code;
		n = poll_set(dm, pfd, who);
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			dm_log(dm, XTL_ERROR, errno, "poll");
			return EX_OSERR;
		}
		if (pfd[PFD_SIGNAL].revents)
			on_signals(dm);
		if (pfd[PFD_XS].revents)
			on_watches(dm);
		monitor_serve(dm, pfd + PFD_FIXED, who, n - PFD_FIXED);
		act_on_requests(dm);
	}
}

/* ---- setup and end ------------------------------------------------------------------ */

/* dm->sfd: SIGTERM, SIGINT, SIGHUP, and SIGCHLD if children. */
static int open_signals(struct dm *dm, bool children)
{
	sigset_t mask;

	sigemptyset(&mask);
	if (children)
		sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0
	    || (dm->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return dm_log(dm, XTL_ERROR, errno, "signalfd"), EX_OSERR;
	return 0;
}

static int setup(struct dm *dm)
{
	struct refusal no;
	unsigned n;
	int r;

	/* Ours are not the proxies' (they would take them for systemd's). */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	find_proxy(dm);
	if ((r = open_signals(dm, true)))
		return r;
	if (!(dm->xs = xs_open(0)))
		return dm_log(dm, XTL_ERROR, errno, "xs_open (is xenstored running?)"), EX_UNAVAILABLE;
	if ((r = check_domain(dm->xs, dm->cfg.domid, &no)))
		return dm_refused(dm, &no);
	if ((r = find_channels(dm)))
		return r;
	for (unsigned i = 0; i < dm->cfg.n_chardev; i++)
		if (dm->cfg.chardev[i].monitor) {
			dm->mon[dm->n_mon].cd = &dm->cfg.chardev[i];
			if ((r = monitor_open(dm, &dm->mon[dm->n_mon++])))
				return r;
		}
	if ((r = watch_all(dm)))
		return r;
	n = 0;
	for (unsigned i = 0; i < dm->n_ch; i++)
		n += dm->ch[i].served;
	dm_log(dm, XTL_INFO, -1, "xenchan-dm %s standing in for QEMU: serving %u of %u "
	       "channels with %s", XENCHAN_VERSION, n, dm->n_ch, dm->proxy.path);
	for (unsigned i = 0; i < dm->n_ch; i++)
		if (dm->ch[i].served && spawn_proxy(dm, &dm->ch[i]) < 0) {
			begin_stopping(dm, EX_UNAVAILABLE);
			return 0;
		}
	check_started(dm);
	return 0;
}

static void finish(struct dm *dm)
{
	for (unsigned m = 0; m < MAX_MONITORS; m++)
		monitor_close(&dm->mon[m]);
	/* Our nodes outlive a domain that died without libxl's destroy (which
	 * removes them first); a later domain may reuse the domid. */
	if (dm->xs && dm->cfg.have_domid && !xs_is_domain_introduced(dm->xs, dm->cfg.domid))
		remove_dm_dir(dm);
	if (dm->xs)
		xs_close(dm->xs);
	if (dm->sfd >= 0)
		close(dm->sfd);
	proxy_cmd_free(&dm->proxy);
}

int main(int argc, char **argv)
{
	static struct dm dm;
	struct refusal no;
	int r, fd;

	dm.sfd = -1;
	for (unsigned m = 0; m < MAX_MONITORS; m++) {
		dm.mon[m].fd = -1;
		for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
			dm.mon[m].client[i].fd = -1;
	}
	if (!(dm.logger = xtl_createlogger_stdiostream(stderr, XTL_INFO, 0)))
		return EX_OSERR;
	if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-version"))) {
		printf("xenchan-dm %s\n", XENCHAN_VERSION);
		return 0;
	}
	if ((fd = probe_argv(argc, argv)) >= 0) {
		r = open_signals(&dm, false);
		if (!r)
			r = probe_run(&dm, fd);
	} else {
		r = parse_argv(&dm.cfg, argc, argv, &no);
		if (r)
			dm_refused(&dm, &no);
		else
			r = setup(&dm);
		if (!r)
			r = run(&dm);
		else if (children_alive(&dm))
			run(&dm);
	}
	finish(&dm);
	/* A probe answered has said all in its one line. */
	if (r || !dm.probe.on)
		dm_log(&dm, r ? XTL_ERROR : XTL_INFO, -1, "exiting with status %d", r);
	xtl_logger_destroy((xentoollog_logger *)dm.logger);
	return r;
}
