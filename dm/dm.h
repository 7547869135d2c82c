/* SPDX-License-Identifier: MIT */
/*
 * dm.h - xenchan-dm's state, and the qemu-dm log (log.c).
 *
 * Each file has a header for what it gives the others; calls run one way:
 *   main.c      the loop, its phases and main
 *   probe.c     libxl's command-line probe (Xen 4.20 and later): its loop
 *   proxies.c   the proxies: started, restarted, reaped, signalled
 *   monitor.c   the QMP sockets and their clients
 *   qmp.c       the QMP messages (parsed, answered, a verdict)
 *   store.c     every xenstore path the dm touches
 *   args.c      the argv libxl builds for QEMU, and refusals
 *   log.c       the qemu-dm log
 * main -> probe, proxies, monitor, store, args, log; probe -> monitor;
 * proxies -> store; monitor -> qmp; qmp -> store; store -> args.
 * What a lower file needs of main's phases it asks in dm->req, and the loop
 * acts on it once the call returns.
 */
#ifndef XENCHAN_DM_H
#define XENCHAN_DM_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <xentoollog.h>

#include "../launch.h"
#include "../monotime.h"
#include "../nodes.h"
#include "../strict.h"
#include "args.h"
#include "monitor.h"

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif

struct xs_handle;

/* libxl's local device model runs in the toolstack domain, and so do we:
 * the channels we serve are those whose backend is this domain,
 * BACKEND_DOMID_DOM0 (nodes.h). */
#define XSP_MAX           256            /* a xenstore path or value we read */

struct channel {
	unsigned devid;
	const struct chardev *cd;
	char name[XSP_MAX];              /* the frontend name node, for logs */
	char fe[XSP_MAX], be[XSP_MAX];
	bool served;                     /* false: not ours to serve (logged) */
	pid_t pid;                       /* the running proxy, 0 if none */
	bool ready;                      /* its backend's NODE_SERVER_PID names pid */
	bool ended;                      /* exited 0: channel or domain gone */
	bool given_up;
	struct restarts restarts;        /* launch.h */
	int64_t restart_at;              /* mono_ms; 0: none pending */
};

enum dm_phase {
	DM_STARTING,    /* proxies opening their endpoints; state not written */
	DM_RUNNING,     /* state = running; supervising */
	DM_ENDING,      /* domain gone or SIGHUP: proxies end by themselves */
	DM_STOPPING,    /* SIGTERM sent to the proxies */
};

struct dm {
	struct config cfg;
	xentoollog_logger_stdiostream *logger;
	struct xs_handle *xs;
	int sfd;
	enum dm_phase phase;
	int64_t deadline;                /* of ENDING or STOPPING */
	bool killed;                     /* SIGKILL sent in STOPPING */
	bool xs_lost;                    /* its watch fd no longer polled */
	int exit_code;
	struct {
		bool stop;               /* stop every proxy (request_stop) */
		int stop_code;           /* the exit code it asks for (0: none) */
		bool quit;               /* QMP quit answered (monitor.c) */
	} req;
	struct proxy_cmd proxy;          /* the proxy, its user and options (launch.h) */
	struct channel ch[MAX_CHANNELS];
	unsigned n_ch;
	struct monitor mon[MAX_MONITORS];
	unsigned n_mon;
	unsigned long qmp_conns, qmp_events;  /* counters: connections, activity */
	unsigned qmp_answered;           /* commands answered */
	struct {
		bool on;                 /* this run is libxl's command-line probe */
		bool quit;               /* QMP quit answered */
		bool ending;             /* quit, or its client gone: end at SIGHUP */
		int64_t deadline;        /* or then */
	} probe;
};

/* Ask the loop to stop every proxy (main.c, begin_stopping, which takes
 * the first request's exit_code). */
static inline void request_stop(struct dm *dm, int exit_code)
{
	if (!dm->req.stop) {
		dm->req.stop = true;
		dm->req.stop_code = exit_code;
	}
}

/* Stopping, or asked to: a proxy that ends now was told to. */
static inline bool dm_stopping(const struct dm *dm)
{
	return dm->phase == DM_STOPPING || dm->req.stop;
}

/* ---- log.c --------------------------------------------------------------------- */

void dm_log(const struct dm *dm, xentoollog_level level, int errnoval,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The refusal's line in the log; returns its code. */
int dm_refused(const struct dm *dm, const struct refusal *no);
/* The same for a refusal made here. */
int dm_refuse(const struct dm *dm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
