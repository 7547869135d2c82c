/* SPDX-License-Identifier: MIT */
/*
 * monitor.h - the QMP monitors (monitor.c): the listening sockets libxl
 * names with -mon, their clients, and the bytes to and from them.  What the
 * bytes say is qmp.c's, which it calls.
 */
#ifndef XENCHAN_DM_MONITOR_H
#define XENCHAN_DM_MONITOR_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "args.h"
#include "qmp.h"

#define CLIENTS_PER_MON   4              /* a fifth takes the idlest one's slot */

struct dm;

struct qmp_client {
	struct dm *dm;
	int fd;                          /* -1: free slot */
	unsigned long conn;              /* which connection holds the slot */
	unsigned long active;            /* dm->qmp_events when it last moved bytes */
	int64_t active_ms;               /* and when */
	bool closing;
	struct qmp_session qmp;
	struct qmp_out out;              /* replies not yet taken, on demand */
};

struct monitor {
	const struct chardev *cd;
	int fd;
	bool inherited;                  /* libxl's probe socket: not ours to unlink */
	bool quit_unlistens;             /* a probe's: quit closes it before its answer goes */
	dev_t dev;                       /* of the socket we bound, so we never */
	ino_t ino;                       /* unlink a successor's */
	struct qmp_client client[CLIENTS_PER_MON];
};

/* What each of the monitors' pollfds stands for: a listener or a client. */
struct poll_who {
	struct monitor *mon;
	struct qmp_client *client;
	unsigned long conn;              /* the connection polled in that slot */
};
#define MONITOR_PFD_MAX (MAX_MONITORS * (1 + CLIENTS_PER_MON))

int monitor_open(struct dm *dm, struct monitor *mon);
/* The listening socket libxl's probe passes (fd=N), taken as it is. */
int monitor_adopt(struct dm *dm, struct monitor *mon, int fd);
/* Accept no more clients (the socket closed, and unlinked if ours). */
void monitor_unlisten(struct monitor *mon);
void monitor_close(struct monitor *mon);
unsigned monitor_clients(const struct monitor *mon);
/* The monitors' pollfds, from pfd[0]; returns how many. */
unsigned monitor_poll_set(struct dm *dm, struct pollfd *pfd, struct poll_who *who);
/* Serve what poll found.  A quit answered sets dm->req.quit. */
void monitor_serve(struct dm *dm, const struct pollfd *pfd, const struct poll_who *who,
		   unsigned n);

#endif
