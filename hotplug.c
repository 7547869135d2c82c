/*
 * hotplug.c - channels created on a running domain, and --list / --remove.
 *
 * A created channel lives as long as the proxy that created it.  Who serves a
 * channel is recorded in its backend directory (owned by the backend domain,
 * so a guest cannot forge it): its pid and its start time.  A pid alone is
 * reused by any process after its proxy dies; the pair names one process
 * since boot.  A channel whose record names no live process is stale, and
 * may be taken over; only a process that matches its record is signalled.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include "hotplug.h"

#define REMOVE_WAIT_MS (UNPLUG_WAIT_MS + 5000)

/* /proc/PID/FILE into buf, NUL-terminated; its length, or -1. */
static ssize_t read_proc(long pid, const char *file, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks
 * after boot.  The command name before it is in parentheses and may hold
 * spaces and parentheses itself: count fields after the last ')'. */
static bool start_time(long pid, unsigned long long *start)
{
	char buf[1024], *p, *end;

	if (read_proc(pid, "stat", buf, sizeof(buf)) < 0)
		return false;
	p = strrchr(buf, ')');
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return false;
	errno = 0;
	*start = strtoull(p + 1, &end, 10);
	return errno == 0 && end != p + 1 && (*end == ' ' || *end == '\0');
}

unsigned long long hotplug_own_start(void)
{
	unsigned long long start;

	return start_time(getpid(), &start) ? start : 0;
}

/* A record without a start time (written by an older proxy): the best we
 * can say is whether the pid's command line names the program. */
static bool names_proxy(long pid)
{
	char cmd[4096];
	ssize_t n = read_proc(pid, "cmdline", cmd, sizeof(cmd));

	for (ssize_t i = 0; i < n; i++)   /* argv joined by NULs */
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	return n > 0 && strstr(cmd, "xenchan-proxy") != NULL;
}

enum hotplug_server hotplug_server(long pid, unsigned long long start)
{
	unsigned long long now;

	if (pid <= 0)
		return SERVER_GONE;
	if (start == 0)
		return names_proxy(pid) ? SERVER_UNVERIFIED : SERVER_GONE;
	return start_time(pid, &now) && now == start ? SERVER_ALIVE : SERVER_GONE;
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

		static const char *const mark[] = {
			[SERVER_GONE] = " (stale)", [SERVER_ALIVE] = "",
			[SERVER_UNVERIFIED] = " (unverified)",
		};

		if (ci[i].pid == 0)
			snprintf(server, sizeof(server), "-");
		else
			snprintf(server, sizeof(server), "%ld%s", ci[i].pid,
				 mark[hotplug_server(ci[i].pid, ci[i].pid_start)]);
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
	unsigned long long start;
	long pid = xs_server_pid(h, ch, &start);

	if (!xs_channel_is_ours(h, ch)) {
		snprintf(msg, msglen, "%s was not created by xenchan-proxy: remove it "
			 "with the toolstack", ch->fe);
		return EX_DATAERR;
	}
	/* Only the very process recorded is signalled; any other (a record
	 * without a start time included) is left alone, and the channel is
	 * unplugged here: a proxy still serving it sees it removed and ends. */
	if (hotplug_server(pid, start) == SERVER_ALIVE) {
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
