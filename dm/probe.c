/* SPDX-License-Identifier: MIT */
/*
 * probe.c - libxl's command-line probe.  libxl 4.20 and later run the
 * device model's binary once before the device model proper, with no guest
 * (-machine none) and QMP on a listening socket they bound, passed as
 * fd=N (args.c, probe_argv).  As Xen 4.20.4's libxl_dm.c, libxl_qmp.c,
 * libxl_exec.c and libxl_aoutils.c have it:
 *  - libxl connects before the probe runs, reads the greeting, sends
 *    qmp_capabilities, then query-command-line-options, then quit;
 *  - a hang-up before it has read quit's answer is an error in its log, so
 *    the probe never hangs up first: libxl closes its end once it has the
 *    answer, kills the middle process of its spawn, and then signals the
 *    probe with SIGHUP (libxl__kill_xs_path), logging an error if the probe
 *    is already gone ("qemu command-line probe already exited");
 *  - the device model proper is started next, and binds the same path.
 * So the probe stops listening at quit (a live socket there would make the
 * device model proper refuse the path), and exits 0 at libxl's SIGHUP, or
 * PROBE_LINGER_MS after quit or after its client went.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "dm.h"
#include "monitor.h"
#include "probe.h"

#define PROBE_LINGER_MS   5000

/* The first of SIGHUP, SIGTERM, SIGINT pending (0: none). */
static int probe_signal(struct dm *dm)
{
	struct signalfd_siginfo si;

	if (read(dm->sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
		return 0;
	return (int)si.ssi_signo;
}

/* quit answered, or the client gone: no second client, and a bounded wait
 * for libxl's SIGHUP.  (At quit the monitor has already stopped listening,
 * before the answer went.) */
static void probe_ending(struct dm *dm)
{
	if (dm->probe.ending)
		return;
	dm->probe.ending = true;
	dm->probe.deadline = mono_ms() + PROBE_LINGER_MS;
	monitor_unlisten(&dm->mon[0]);
}

static int probe_setup(struct dm *dm, int fd)
{
	struct chardev *cd = &dm->cfg.chardev[0];

	dm->probe.on = true;
	strcpy(cd->id, "libxl-cmd");
	cd->monitor = true;
	dm->cfg.n_chardev = 1;
	dm->mon[0].cd = cd;
	dm->mon[0].quit_unlistens = true;
	dm->n_mon = 1;
	return monitor_adopt(dm, &dm->mon[0], fd);
}

int probe_run(struct dm *dm, int fd)
{
	struct pollfd pfd[1 + MONITOR_PFD_MAX];
	struct poll_who who[MONITOR_PFD_MAX];
	const char *why = NULL;
	char sig[64];
	int r;

	if ((r = probe_setup(dm, fd)))
		return r;
	while (!why) {
		int timeout = -1;
		unsigned n;

		if (dm->qmp_conns && !monitor_clients(&dm->mon[0]))
			probe_ending(dm);
		if (dm->probe.ending) {
			int64_t left = dm->probe.deadline - mono_ms();

			if (left <= 0) {
				snprintf(sig, sizeof(sig), "after %d s without SIGHUP",
					 PROBE_LINGER_MS / 1000);
				why = sig;
				break;
			}
			timeout = (int)left;
		}
		n = monitor_poll_set(dm, pfd + 1, who);
		pfd[0] = (struct pollfd){ .fd = dm->sfd, .events = POLLIN };
		if (poll(pfd, n + 1, timeout) < 0) {
			if (errno == EINTR)
				continue;
			dm_log(dm, XTL_ERROR, errno, "poll");
			return EX_OSERR;
		}
		if (pfd[0].revents && (r = probe_signal(dm))) {
			snprintf(sig, sizeof(sig), "on SIG%s", sigabbrev_np(r));
			why = sig;
		}
		monitor_serve(dm, pfd + 1, who, n);
		if (dm->req.quit) {
			dm->req.quit = false;
			dm->probe.quit = true;
			probe_ending(dm);
		}
	}
	dm_log(dm, XTL_INFO, -1, "libxl's command-line probe: %u QMP commands answered%s; "
	       "exiting with status 0 %s", dm->qmp_answered,
	       dm->probe.quit ? ", quit included" : dm->qmp_conns
	       ? ", then the client hung up before quit" : ", no client came", why);
	return 0;
}
