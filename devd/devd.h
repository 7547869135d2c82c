/* SPDX-License-Identifier: MIT */
/*
 * devd.h - xenchan-devd's state: the channels of this driver domain it
 * serves, one xenchan-proxy each.
 *
 * Calls run one way: main.c (options, the loop, the scan of B's backend
 * tree) -> proxies.c (started, restarted with backoff, reaped, signalled);
 * both -> the shared log.c and strict.c.
 */
#ifndef XENCHAN_DEVD_H
#define XENCHAN_DEVD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>

#include "../launch.h"
#include "../log.h"
#include "../monotime.h"
#include "../nodes.h"

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif

/* Channels served at once.  All of a domain's processes share its xenstore
 * quotas (128 watches on Xen 4.17 and 4.20, two per proxy): about 60 fit. */
#define DEVD_MAX_CHANNELS 256
#define DEVD_PATH_MAX     256

struct served {
	unsigned domid, devid;
	pid_t pid;                       /* its running proxy, 0 if none */
	bool listed;                     /* K was there at the last scan */
	bool ended;                      /* its proxy exited 0: not restarted */
	bool given_up;                   /* it failed too often: not restarted */
	struct restarts restarts;        /* launch.h */
	int64_t restart_at;              /* mono_ms; 0: none pending */
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* K's socket path, or "" */
};

struct devd {
	struct log_ctx log;
	struct xs_handle *xs;
	unsigned backend;                /* B: this domain */
	char dir[DEVD_PATH_MAX];         /* /local/domain/B/backend/console */
	struct served ch[DEVD_MAX_CHANNELS];
	unsigned n_ch;
	struct proxy_cmd proxy;          /* the proxy, its user and options (launch.h) */
	bool stopping;
};

/* ---- proxies.c ------------------------------------------------------------------ */

/* The proxy ($XENCHAN_PROXY, else beside us), its user ($XENCHAN_PROXY_USER,
 * else xenchan if it exists, "root": none) and extra options. */
void devd_find_proxy(struct devd *dd);
/* Start s's proxy: xenchan-proxy --backend-domid B -- D N, its endpoint
 * what the toolstack wrote in K. */
void devd_spawn(struct devd *dd, struct served *s);
/* Reap exited proxies: exit 0 ends a channel, a failure of one still
 * listed schedules a restart. */
void devd_reap(struct devd *dd);
/* Drop the channels whose backend is gone and whose proxy has ended. */
void devd_forget(struct devd *dd);
/* Restarts that are due; the poll timeout until the next (-1: none). */
void devd_restarts_due(struct devd *dd);
int devd_timeout(const struct devd *dd);
unsigned devd_alive(const struct devd *dd);
void devd_signal_all(struct devd *dd, int sig);

#endif
