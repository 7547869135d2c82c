/* SPDX-License-Identifier: MIT */
/*
 * proxies.c - xenchan-devd's proxies: one per channel, started, restarted
 * with backoff when it fails, reaped, and signalled at the end.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../launch.h"
#include "../unixsock.h"
#include "devd.h"

void devd_find_proxy(struct devd *dd)
{
	if (!proxy_cmd_init(&dd->proxy, ""))
		log_line(&dd->log, XTL_WARN, -1, "user %s does not exist: the proxies stay "
			 "root, with no capabilities", PROXY_USER);
}

/* A proxy given up (launch.h's restart_delay) stays so until its backend
 * directory goes and comes back. */
static void schedule_restart(struct devd *dd, struct served *s, const char *how);

void devd_spawn(struct devd *dd, struct served *s)
{
	char b[16], d[16], n[16], *argv[PROXY_ARGV_HEAD + 6];
	unsigned k = proxy_cmd_argv(&dd->proxy, argv);
	pid_t pid;
	int r;

	snprintf(b, sizeof(b), "%u", dd->backend);
	snprintf(d, sizeof(d), "%u", s->domid);
	snprintf(n, sizeof(n), "%u", s->devid);
	argv[k++] = "--backend-domid";
	argv[k++] = b;
	argv[k++] = "--";
	argv[k++] = d;
	argv[k++] = n;
	argv[k] = NULL;
	r = spawn_clean(dd->proxy.path, argv, &pid);
	if (r) {
		log_line(&dd->log, XTL_ERROR, r, "domain %u channel %u: posix_spawn %s",
			 s->domid, s->devid, dd->proxy.path);
		schedule_restart(dd, s, "could not be started");
		return;
	}
	s->pid = pid;
	log_line(&dd->log, XTL_INFO, -1, "domain %u channel %u: started xenchan-proxy pid %d",
		 s->domid, s->devid, (int)pid);
}

static void schedule_restart(struct devd *dd, struct served *s, const char *how)
{
	int64_t now = mono_ms(), delay = restart_delay(&s->restarts, now);

	if (delay < 0) {
		s->given_up = true;
		log_line(&dd->log, XTL_ERROR, -1, "domain %u channel %u: its proxy %s, its "
			 "failure %d within %d s: not restarting it", s->domid, s->devid, how,
			 RESTART_BURST + 1, RESTART_WINDOW_MS / 1000);
		return;
	}
	s->restart_at = now + delay;
	log_line(&dd->log, XTL_WARN, -1, "domain %u channel %u: its proxy %s; restarting it "
		 "(restart %u of at most %d within %d s)", s->domid, s->devid, how, s->restarts.n,
		 RESTART_BURST, RESTART_WINDOW_MS / 1000);
}

/* A proxy that ran as another user cannot unlink its socket from root's
 * directory, nor can a killed one: once it has exited, we do, if nothing
 * listens there (unixsock.h's rule). */
static void clean_socket(struct devd *dd, const struct served *s)
{
	if (s->sock[0] && unixsock_remove_stale(s->sock))
		log_line(&dd->log, XTL_INFO, -1, "domain %u channel %u: removed %s, its exited "
			 "proxy's socket", s->domid, s->devid, s->sock);
}

static void exited(struct devd *dd, struct served *s, pid_t pid, int status)
{
	char what[72], how[96];

	s->pid = 0;
	wait_status_text(status, what, sizeof(what));
	snprintf(how, sizeof(how), "(pid %d) %s", (int)pid, what);
	if (dd->stopping || !s->listed || (WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
		/* Its own verdict (the channel or the guest is gone), or ours. */
		s->ended = true;
		log_line(&dd->log, XTL_INFO, -1, "domain %u channel %u: its proxy %s", s->domid,
			 s->devid, how);
		return;
	}
	schedule_restart(dd, s, how);
}

static struct served *by_pid(struct devd *dd, pid_t pid)
{
	for (unsigned i = 0; i < dd->n_ch; i++)
		if (dd->ch[i].pid == pid)
			return &dd->ch[i];
	return NULL;
}

void devd_reap(struct devd *dd)
{
	siginfo_t si;
	int status;

	/* Each exited child is looked at before it is reaped: its socket goes
	 * while its pid is still in /proc, so whoever waits for the pid to go
	 * finds the socket gone too. */
	for (;;) {
		struct served *s;

		si.si_pid = 0;
		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 || si.si_pid == 0)
			break;
		s = by_pid(dd, si.si_pid);
		if (s)
			clean_socket(dd, s);
		if (waitpid(si.si_pid, &status, 0) == si.si_pid && s)
			exited(dd, s, si.si_pid, status);
	}
	devd_forget(dd);
}

void devd_forget(struct devd *dd)
{
	unsigned kept = 0;

	for (unsigned i = 0; i < dd->n_ch; i++)
		if (dd->ch[i].listed || dd->ch[i].pid != 0)
			dd->ch[kept++] = dd->ch[i];
	dd->n_ch = kept;
}

void devd_restarts_due(struct devd *dd)
{
	for (unsigned i = 0; i < dd->n_ch; i++) {
		struct served *s = &dd->ch[i];

		if (s->restart_at == 0 || mono_until(s->restart_at) > 0)
			continue;
		s->restart_at = 0;
		if (s->listed && !dd->stopping)
			devd_spawn(dd, s);
	}
}

int devd_timeout(const struct devd *dd)
{
	int t = -1;

	for (unsigned i = 0; i < dd->n_ch; i++) {
		int left;

		if (dd->ch[i].restart_at == 0)
			continue;
		left = mono_until(dd->ch[i].restart_at);
		if (t < 0 || left < t)
			t = left;
	}
	return t;
}

unsigned devd_alive(const struct devd *dd)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dd->n_ch; i++)
		n += dd->ch[i].pid != 0;
	return n;
}

void devd_signal_all(struct devd *dd, int sig)
{
	for (unsigned i = 0; i < dd->n_ch; i++)
		if (dd->ch[i].pid)
			kill(dd->ch[i].pid, sig);
}
