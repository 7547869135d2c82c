/*
 * hotplug.c - channels created on a running domain, and --list / --remove.
 *
 * A created channel lives as long as the proxy that created it.  Who serves a
 * channel is recorded in its backend directory ("xenchan-pid", owned by the
 * backend domain, so a guest cannot forge it); a channel whose recorded pid is
 * not a live xenchan-proxy on this host is stale, and may be taken over.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "hotplug.h"

#define REMOVE_WAIT_MS (UNPLUG_WAIT_MS + 5000)

bool hotplug_pid_alive(long pid)
{
	char path[64], cmd[4096];
	ssize_t n;
	int fd;

	if (pid <= 0 || (kill(pid, 0) < 0 && errno != EPERM))
		return false;
	/* Any process may reuse a dead proxy's pid: check it is ours.  The
	 * command line (argv joined by NULs) names the program, even under a
	 * wrapper such as valgrind. */
	snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return false;
	for (ssize_t i = 0; i < n; i++)
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	cmd[n] = '\0';
	return strstr(cmd, "xenchan-proxy") != NULL;
}

enum xs_result hotplug_unplug(struct xs_handle *h, const struct xs_channel *ch,
			      int wait_ms, char *msg, size_t msglen)
{
	bool closed, fe_present, probed;
	struct xs_ring_info ri;
	char why[128];

	if (xs_set_backend_state(h, ch, XB_CLOSING) == XSR_GONE) {
		snprintf(msg, msglen, "already removed");
		return XSR_GONE;
	}
	/* Linux answers backend Closing with frontend Closed, then drops its
	 * hvc device once the nodes go.  A frontend still Initialising with
	 * no ring has no driver watching it (none loaded, or a device left
	 * stale by a restore): nobody will answer, so do not wait. */
	probed = xs_frontend_state(h, ch, &fe_present) != XB_INITIALISING
		|| xs_frontend_ring(h, ch, &ri, why, sizeof(why)) == XSR_OK;
	closed = !fe_present || !probed || xs_wait_frontend(h, ch, false, wait_ms);
	xs_set_backend_state(h, ch, XB_CLOSED);
	if (xs_remove_channel(h, ch) != XSR_OK) {
		snprintf(msg, msglen, "removing %s and %s: %s", ch->fe, ch->be, strerror(errno));
		return XSR_FAILED;
	}
	snprintf(msg, msglen, !probed ? "unplugged (the guest had not taken it up)" : closed
		 ? "unplugged" : "unplugged; the guest did not close the channel within %d ms",
		 wait_ms);
	return XSR_OK;
}

int hotplug_list(struct xs_handle *h, const struct xs_channel *dom, FILE *out)
{
	struct xs_channel_info ci[64];
	int n = xs_list_channels(h, dom, ci, 64);

	fprintf(out, "%-5s %-32s %-13s %-13s %-10s %-8s %-13s %s\n", "DEVID", "NAME",
		"FRONTEND", "BACKEND", "CONN", "TYPE", "SERVER", "PATH/TTY");
	for (int i = 0; i < n; i++) {
		char server[32];

		if (ci[i].pid == 0)
			snprintf(server, sizeof(server), "-");
		else
			snprintf(server, sizeof(server), "%ld%s", ci[i].pid,
				 hotplug_pid_alive(ci[i].pid) ? "" : " (stale)");
		fprintf(out, "%-5u %-32s %-13s %-13s %-10s %-8s %-13s %s\n", ci[i].devid,
			ci[i].name[0] ? ci[i].name : "-", xb_state_name(ci[i].fs),
			ci[i].backend_present ? xb_state_name(ci[i].bs) : "(none)",
			ci[i].connection[0] ? ci[i].connection : "-",
			ci[i].type[0] ? ci[i].type : "-", server,
			ci[i].endpoint[0] ? ci[i].endpoint : "-");
	}
	return ferror(out) ? EX_IOERR : 0;
}

int hotplug_remove(struct xs_handle *h, const struct xs_channel *ch, char *msg, size_t msglen)
{
	long pid = xs_server_pid(h, ch);

	if (!xs_channel_is_ours(h, ch)) {
		snprintf(msg, msglen, "%s was not created by xenchan-proxy: remove it "
			 "with the toolstack", ch->fe);
		return EX_DATAERR;
	}
	if (hotplug_pid_alive(pid)) {
		/* Its proxy unplugs it on SIGTERM; wait for the nodes to go. */
		if (kill(pid, SIGTERM) < 0) {
			snprintf(msg, msglen, "kill %ld: %s", pid, strerror(errno));
			return EX_NOPERM;
		}
		if (!xs_wait_frontend(h, ch, true, REMOVE_WAIT_MS)) {
			snprintf(msg, msglen, "proxy %ld did not remove %s within %d ms",
				 pid, ch->fe, REMOVE_WAIT_MS);
			return EX_TEMPFAIL;
		}
		snprintf(msg, msglen, "proxy %ld unplugged it", pid);
		return 0;
	}
	return hotplug_unplug(h, ch, UNPLUG_WAIT_MS, msg, msglen) == XSR_FAILED
		? EX_UNAVAILABLE : 0;
}
