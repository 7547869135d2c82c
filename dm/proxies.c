/* SPDX-License-Identifier: MIT */
/*
 * proxies.c - one xenchan-proxy per channel: started, restarted a bounded
 * number of times when it fails, reaped, and signalled at the end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

#include "../launch.h"
#include "../unixsock.h"
#include "dm.h"
#include "proxies.h"
#include "store.h"

/* The proxy to run; empty: xenchan-proxy next to our own executable. */
#ifndef XENCHAN_PROXY_PATH
#define XENCHAN_PROXY_PATH ""
#endif
/* The proxy, its user and its options, by launch.h's rule (XENCHAN_PROXY_PATH
 * built in, if any). */
void find_proxy(struct dm *dm)
{
	if (!proxy_cmd_init(&dm->proxy, XENCHAN_PROXY_PATH))
		dm_log(dm, XTL_WARN, errno ? errno : -1, "user %s does not exist (the "
		       "xenchan-proxy package makes it): the proxies stay root, with no "
		       "capabilities", PROXY_USER);
}

pid_t spawn_proxy(struct dm *dm, struct channel *ch)
{
	char domid[16], devid[16], *argv[PROXY_ARGV_HEAD + 7];
	pid_t pid = 0;
	unsigned n = proxy_cmd_argv(&dm->proxy, argv);
	int r;

	snprintf(domid, sizeof(domid), "%u", dm->cfg.domid);
	snprintf(devid, sizeof(devid), "%u", ch->devid);
	argv[n++] = ch->cd->pty ? "--pty" : "--listen";
	if (!ch->cd->pty)
		argv[n++] = (char *)ch->cd->path;
	argv[n++] = "--";
	argv[n++] = domid;
	argv[n++] = devid;
	argv[n] = NULL;

	/* The child starts with no blocked signals and default dispositions,
	 * and with none of our descriptors but stdio (the log). */
	r = spawn_clean(dm->proxy.path, argv, &pid);
	if (r) {
		dm_log(dm, XTL_ERROR, r, "%s: posix_spawn %s", ch->cd->id, dm->proxy.path);
		return -1;
	}
	ch->pid = pid;
	ch->ready = false;
	dm_log(dm, XTL_INFO, -1, "%s: started xenchan-proxy pid %d for channel %s (device %u) "
	       "on %s%s", ch->cd->id, (int)pid, ch->name, ch->devid,
	       ch->cd->pty ? "a pty" : "socket ", ch->cd->pty ? "" : ch->cd->path);
	return pid;
}

static void schedule_restart(struct dm *dm, struct channel *ch, const char *how)
{
	int64_t now = mono_ms(), delay = restart_delay(&ch->restarts, now);

	if (delay < 0) {
		ch->given_up = true;
		dm_log(dm, XTL_ERROR, -1, "%s: the proxy for channel %s %s, its %dth failure "
		       "within %d s: not restarting it; the channel stays unserved", ch->cd->id,
		       ch->name, how, RESTART_BURST + 1, RESTART_WINDOW_MS / 1000);
		return;
	}
	ch->restart_at = now + delay;
	dm_log(dm, XTL_WARN, -1, "%s: the proxy for channel %s %s; restarting it "
	       "(restart %u of at most %d within %d s)", ch->cd->id, ch->name, how,
	       ch->restarts.n, RESTART_BURST, RESTART_WINDOW_MS / 1000);
}

/* A proxy that ran as another user cannot unlink its socket from root's
 * directory (nor can one that was killed): once it has exited, we do, as
 * long as nothing listens there now (the socket is stale by the rule by
 * which a proxy replaces one, unixsock.h's), so libxl finds nothing left. */
static void remove_stale_socket(struct dm *dm, const struct channel *ch)
{
	if (!ch->cd->pty && unixsock_remove_stale(ch->cd->path))
		dm_log(dm, XTL_INFO, -1, "%s: removed %s, its exited proxy's socket", ch->cd->id,
		       ch->cd->path);
}

static void proxy_exited(struct dm *dm, struct channel *ch, int status)
{
	char how[96];

	wait_status_text(status, how, sizeof(how));
	ch->pid = 0;
	ch->ready = false;
	remove_stale_socket(dm, ch);
	if (dm_stopping(dm)) {
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s %s", ch->cd->id,
		       ch->name, how);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		/* The proxy's own verdict: the channel or the domain is gone. */
		ch->ended = true;
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s exited: its channel "
		       "or domain is gone", ch->cd->id, ch->name);
		return;
	}
	if (dm->phase == DM_STARTING) {
		dm_log(dm, XTL_ERROR, -1, "%s: the proxy for channel %s %s before it was "
		       "ready; giving up the start", ch->cd->id, ch->name, how);
		request_stop(dm, WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE);
		return;
	}
	if (dm->phase != DM_RUNNING) {
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s %s", ch->cd->id,
		       ch->name, how);
		return;
	}
	schedule_restart(dm, ch, how);
}

void reap_children(struct dm *dm)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < dm->n_ch; i++)
			if (dm->ch[i].pid == pid)
				proxy_exited(dm, &dm->ch[i], status);
}

unsigned children_alive(const struct dm *dm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dm->n_ch; i++)
		n += dm->ch[i].pid != 0;
	return n;
}

void signal_children(struct dm *dm, int sig)
{
	for (unsigned i = 0; i < dm->n_ch; i++)
		if (dm->ch[i].pid)
			kill(dm->ch[i].pid, sig);
}

/* A pending restart is due: only while the domain and the channel live. */
void restart_due(struct dm *dm, struct channel *ch)
{
	ch->restart_at = 0;
	if (!channel_present(dm, ch)) {
		ch->ended = true;
		dm_log(dm, XTL_INFO, -1, "%s: channel %s is gone: not restarting its proxy",
		       ch->cd->id, ch->name);
		return;
	}
	if (spawn_proxy(dm, ch) < 0)
		schedule_restart(dm, ch, "could not be started");
}
