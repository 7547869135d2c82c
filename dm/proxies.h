/* SPDX-License-Identifier: MIT */
/*
 * proxies.h - one xenchan-proxy per channel (proxies.c): started, restarted
 * a bounded number of times when it fails, reaped, and signalled at the end.
 */
#ifndef XENCHAN_DM_PROXIES_H
#define XENCHAN_DM_PROXIES_H

#include <sys/types.h>

struct dm;
struct channel;

/* The proxy to run, the user it becomes, its extra options (environment). */
void find_proxy(struct dm *dm);
pid_t spawn_proxy(struct dm *dm, struct channel *ch);
/* Reap every exited proxy: a restart scheduled, or (a proxy failing before
 * the dm is running) a stop requested (dm->req). */
void reap_children(struct dm *dm);
unsigned children_alive(const struct dm *dm);
void signal_children(struct dm *dm, int sig);
/* A channel's restart is due. */
void restart_due(struct dm *dm, struct channel *ch);

#endif
