/* SPDX-License-Identifier: MIT */
/*
 * hotplug.h - channels that xenchan-proxy creates on a running domain and
 * removes again, the record of who serves a channel, and the two commands
 * that look at and remove channels (--list, --remove).  The xenstore nodes
 * of all of it are built here, from nodes.h's formats, on store.h's pieces.
 */
#ifndef XENCHAN_HOTPLUG_H
#define XENCHAN_HOTPLUG_H

#include <stdbool.h>
#include <stdio.h>

#include "store.h"

#define UNPLUG_WAIT_MS 5000   /* as long as Linux waits for a backend */
/* The devids --create picks from: hvc_xen reads the devid from one digit. */
#define HOTPLUG_DEVID_FIRST 1
#define HOTPLUG_DEVID_LAST  9

/* ---- creating and removing a channel ------------------------------------------- */

/* Create channel name on ch->domid (backend ch->backend_domid) with devid
 * ch->devid, or the lowest free one in HOTPLUG_DEVID_FIRST..LAST if that is
 * 0, every node in one transaction, with the nodes and permissions libxl
 * gives a console.  A name that exists gives STORE_AMBIGUOUS and its devid
 * in *existing; no free devid (or ch->devid taken) gives STORE_NOT_FOUND. */
enum store_result hotplug_create(struct xs_handle *h, struct store_channel *ch,
				 const char *name, unsigned long limit, const char *connection,
				 const char *path, unsigned *existing, char *msg, size_t msglen);
/* Remove the frontend, backend and /libxl copy, and each parent they leave
 * empty, in one transaction. */
enum store_result hotplug_remove_nodes(struct xs_handle *h, const struct store_channel *ch);
/* Did we create it (frontend type TYPE_HOTPLUG)? */
bool hotplug_is_ours(struct xs_handle *h, const struct store_channel *ch);
/* Wait (a watch, at most timeout_ms) until the frontend is Closed, or with
 * want_gone until its directory is removed.  True if it happened. */
bool hotplug_wait_frontend(struct xs_handle *h, const struct store_channel *ch,
			   bool want_gone, int timeout_ms);
/* Unplug: backend Closing, wait (bounded) for the frontend to close, then
 * remove the frontend, backend and /libxl copy.  msg says how it went. */
enum store_result hotplug_unplug(struct xs_handle *h, const struct store_channel *ch,
				 int wait_ms, char *msg, size_t msglen);

/* ---- who serves a channel -------------------------------------------------------- */

/* The serving proxy in the backend directory: its pid (NODE_SERVER_PID) and
 * its start time (NODE_SERVER_START, clock ticks after boot, field 22 of
 * /proc/PID/stat; 0: not recorded), written in one transaction.  pid 0
 * removes both (STORE_GONE: the backend directory is gone already). */
enum store_result hotplug_write_server(struct xs_handle *h, const struct store_channel *ch,
				       long pid, unsigned long long start);
/* The recorded pid, 0 if none; *start (if start is not NULL) its start
 * time, 0 if not recorded. */
long hotplug_read_server(struct xs_handle *h, const struct store_channel *ch,
			 unsigned long long *start);
/* The process a record names, checked against pid reuse. */
enum hotplug_server {
	SERVER_GONE,         /* none recorded, or no such process any more */
	SERVER_ALIVE,        /* the pid runs, started at the recorded time */
	SERVER_UNVERIFIED,   /* no start time recorded (an older proxy) and the
			      * pid's command line names xenchan-proxy */
};
enum hotplug_server hotplug_server(long pid, unsigned long long start);
/* This process's start time, to record beside its pid (0 if unknown). */
unsigned long long hotplug_own_start(void);

/* ---- the commands ------------------------------------------------------------------ */

/* What --list shows of one channel: printable strings, "" for a node that
 * is not there. */
struct hotplug_channel_info {
	unsigned devid;
	char name[STORE_NAME_MAX], type[16], connection[16], endpoint[STORE_PATH_MAX];
	enum xb_state fs, bs;
	bool backend_present;
	long pid;
	unsigned long long pid_start;
};
/* The channels (console devices but 0) of dom->domid, at most max; returns
 * how many. */
int hotplug_channels(struct xs_handle *h, const struct store_channel *dom,
		     struct hotplug_channel_info *out, int max);
/* xenchan-proxy --list DOMAIN: one line per channel, to out.  A sysexits code. */
int hotplug_list(struct xs_handle *h, const struct store_channel *dom, FILE *out);
/* xenchan-proxy --remove DOMAIN CHANNEL.  Returns a sysexits code. */
int hotplug_remove(struct xs_handle *h, const struct store_channel *ch, char *msg,
		   size_t msglen);

#endif
