/* SPDX-License-Identifier: MIT */
/*
 * monitor.c - the QMP monitors: the listening sockets libxl names with
 * -mon, their clients, and the bytes to and from them.  What the bytes say
 * is qmp.c's: it is handed each client's bytes and a buffer for the
 * replies, and says what to do next.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sysexits.h>
#include <unistd.h>

#include "../unixsock.h"
#include "dm.h"
#include "monitor.h"
#include "qmp.h"

/* ---- QMP: a client's replies, queued until its socket takes them ----------- */

/* Hang up on a client, its unsent replies discarded. */
static void client_drop(struct qmp_client *c)
{
	c->closing = true;
	c->out.len = 0;
}

/* Bytes moved: the client is not idle (see monitor_accept). */
static void client_touch(struct qmp_client *c)
{
	c->active = ++c->dm->qmp_events;
	c->active_ms = mono_ms();
}

/* What the QMP layer said of a client's bytes.  A probe's monitor stops
 * listening at quit before the answer goes: once libxl has read it, it
 * starts the device model proper, which binds the same path. */
static void client_verdict(struct monitor *mon, struct qmp_client *c, struct qmp_verdict v)
{
	struct dm *dm = c->dm;

	dm->qmp_answered += v.answered;
	if (v.out_full)
		dm_log(dm, XTL_WARN, -1, "QMP %s: a client that leaves %zu bytes of replies "
		       "unread: dropping it", mon->cd->id, c->out.len);
	if (v.drop)
		client_drop(c);
	else if (v.hang_up)
		c->closing = true;
	if (v.quit) {
		dm->req.quit = true;
		if (mon->quit_unlistens)
			monitor_unlisten(mon);
	}
}

static void client_flush(struct qmp_client *c)
{
	while (c->out.len) {
		ssize_t n = send(c->fd, c->out.buf, c->out.len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			client_drop(c);
			break;
		}
		memmove(c->out.buf, c->out.buf + n, c->out.len - (size_t)n);
		c->out.len -= (size_t)n;
		client_touch(c);
	}
	free(c->out.buf);
	c->out = (struct qmp_out){ 0 };
}

/* ---- QMP: sockets ------------------------------------------------------------------ */

int monitor_open(struct dm *dm, struct monitor *mon)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = mon->cd->path;
	struct stat st;
	mode_t old;
	int r;

	mon->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (mon->fd < 0)
		return dm_log(dm, XTL_ERROR, errno, "QMP %s: socket", mon->cd->id), EX_OSERR;
	strcpy(sa.sun_path, path);
	/* libxl unlinks these sockets when it destroys the domain; one left by
	 * a crash is stale.  A live one belongs to another device model (and
	 * one we cannot probe is taken for live: unixsock.h). */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || unixsock_live(path))
			return dm_refuse(dm, EX_CANTCREAT, "QMP %s: %s is in the way (%s)",
					 mon->cd->id, path, S_ISSOCK(st.st_mode)
					 ? "another device model listens there" : "not a socket");
		unlink(path);
	}
	old = umask(0177);              /* only root talks QMP, as with QEMU */
	r = bind(mon->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(mon->fd, 8) < 0 || stat(path, &st) < 0)
		return dm_log(dm, XTL_ERROR, errno, "QMP %s: bind/listen %s", mon->cd->id, path),
			EX_CANTCREAT;
	mon->dev = st.st_dev;
	mon->ino = st.st_ino;
	return 0;
}

int monitor_adopt(struct dm *dm, struct monitor *mon, int fd)
{
	int type = 0, domain = 0, listening = 0, fl;
	socklen_t l1 = sizeof(type), l2 = sizeof(domain), l3 = sizeof(listening);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) < 0
	    || getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &l2) < 0
	    || getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l3) < 0
	    || type != SOCK_STREAM || domain != AF_UNIX || !listening)
		return dm_refuse(dm, EX_USAGE, "QMP %s: descriptor %d is not a listening Unix "
				 "stream socket", mon->cd->id, fd);
	/* libxl made it blocking; a connection aborted between poll and
	 * accept must not hang us. */
	if ((fl = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0
	    || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return dm_log(dm, XTL_ERROR, errno, "QMP %s: fcntl %d", mon->cd->id, fd), EX_OSERR;
	mon->fd = fd;
	mon->inherited = true;
	return 0;
}

static void client_close(struct qmp_client *c)
{
	close(c->fd);
	c->fd = -1;
	qmp_end(&c->qmp);
	free(c->out.buf);
	c->out = (struct qmp_out){ 0 };
}

/* A free slot, or else the slot of the client idle longest, which is
 * dropped: clients that connect and say nothing (any number of them) can
 * never keep libxl waiting in the backlog, and a client that is moving
 * bytes is the last to go. */
static struct qmp_client *slot_for_newcomer(struct dm *dm, struct monitor *mon)
{
	struct qmp_client *idlest = NULL;

	for (unsigned i = 0; i < CLIENTS_PER_MON; i++) {
		struct qmp_client *c = &mon->client[i];

		if (c->fd < 0)
			return c;
		if (!idlest || c->active < idlest->active)
			idlest = c;
	}
	dm_log(dm, XTL_WARN, -1, "QMP %s: all %d client slots taken: dropping the one idle "
	       "for %lld ms for a new client", mon->cd->id, CLIENTS_PER_MON,
	       (long long)(mono_ms() - idlest->active_ms));
	client_close(idlest);
	return idlest;
}

static void monitor_accept(struct dm *dm, struct monitor *mon)
{
	struct qmp_client *c;
	int fd;

	fd = accept4(mon->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			dm_log(dm, XTL_WARN, errno, "QMP %s: accept", mon->cd->id);
		return;
	}
	c = slot_for_newcomer(dm, mon);
	memset(c, 0, sizeof(*c));
	c->dm = dm;
	c->fd = fd;
	c->conn = ++dm->qmp_conns;
	client_touch(c);
	if (!qmp_begin(&c->qmp)) {
		close(fd);
		c->fd = -1;
		return;
	}
	client_verdict(mon, c, qmp_greet(&c->qmp, dm, &c->out));
	client_flush(c);
}

static void client_read(struct monitor *mon, struct qmp_client *c)
{
	unsigned char buf[4096];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* libxl hangs up after its reply; so does libxenstat. */
		client_flush(c);
		client_drop(c);
		return;
	}
	client_touch(c);
	client_verdict(mon, c, qmp_feed(&c->qmp, c->dm, &c->out, buf, (size_t)n));
}

void monitor_unlisten(struct monitor *mon)
{
	struct stat st;

	if (mon->fd < 0)
		return;
	close(mon->fd);
	mon->fd = -1;
	/* libxl removes it on destroy; if not, remove it, but never a
	 * successor's, nor the one libxl bound for its probe (the device
	 * model proper binds that path again). */
	if (!mon->inherited && stat(mon->cd->path, &st) == 0 && st.st_dev == mon->dev
	    && st.st_ino == mon->ino)
		unlink(mon->cd->path);
}

void monitor_close(struct monitor *mon)
{
	for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
		if (mon->client[i].fd >= 0) {
			client_flush(&mon->client[i]);
			client_close(&mon->client[i]);
		}
	monitor_unlisten(mon);
}

unsigned monitor_clients(const struct monitor *mon)
{
	unsigned n = 0;

	for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
		n += mon->client[i].fd >= 0;
	return n;
}

/* ---- QMP: polling ------------------------------------------------------------------ */

unsigned monitor_poll_set(struct dm *dm, struct pollfd *pfd, struct poll_who *who)
{
	unsigned n = 0;

	for (unsigned m = 0; m < dm->n_mon; m++) {
		struct monitor *mon = &dm->mon[m];

		/* Polled even at capacity: a newcomer takes the idlest slot. */
		if (mon->fd >= 0) {
			who[n] = (struct poll_who){ .mon = mon };
			pfd[n++] = (struct pollfd){ .fd = mon->fd, .events = POLLIN };
		}
		for (unsigned i = 0; i < CLIENTS_PER_MON; i++) {
			struct qmp_client *c = &mon->client[i];

			if (c->fd < 0)
				continue;
			who[n] = (struct poll_who){ .mon = mon, .client = c, .conn = c->conn };
			pfd[n++] = (struct pollfd){ .fd = c->fd,
				.events = (short)((c->closing ? 0 : POLLIN) | (c->out.len ? POLLOUT : 0)) };
		}
	}
	return n;
}

void monitor_serve(struct dm *dm, const struct pollfd *pfd, const struct poll_who *who,
		   unsigned n)
{
	for (unsigned k = 0; k < n; k++) {
		struct qmp_client *c = who[k].client;

		if (!c) {
			if (pfd[k].revents)
				monitor_accept(dm, who[k].mon);
			continue;
		}
		/* A newcomer accepted earlier in this pass may have taken
		 * this slot (and even this descriptor number). */
		if (c->fd < 0 || c->conn != who[k].conn)
			continue;
		if (!c->closing && pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
			client_read(who[k].mon, c);
		if (c->out.len)
			client_flush(c);
		if (c->closing && !c->out.len)
			client_close(c);
	}
}
