/*
 * hotplug.h - channels that xenchan-proxy creates on a running domain, and
 * the two commands that look at and remove them (--list, --remove).
 */
#ifndef XENCHAN_HOTPLUG_H
#define XENCHAN_HOTPLUG_H

#include <stdbool.h>
#include "xs.h"

#define UNPLUG_WAIT_MS 5000   /* as long as Linux waits for a backend */
/* The devids --create picks from: hvc_xen reads the devid from one digit. */
#define HOTPLUG_DEVID_FIRST 1
#define HOTPLUG_DEVID_LAST  9

/* The process a channel's record names (xs_server_pid), checked against
 * pid reuse. */
enum hotplug_server {
	SERVER_GONE,         /* none recorded, or no such process any more */
	SERVER_ALIVE,        /* the pid runs, started at the recorded time */
	SERVER_UNVERIFIED,   /* no start time recorded (an older proxy) and the
			      * pid's command line names xenchan-proxy */
};
enum hotplug_server hotplug_server(long pid, unsigned long long start);
/* This process's start time, to record beside its pid (0 if unknown). */
unsigned long long hotplug_own_start(void);
/* Unplug: backend Closing, wait (bounded) for the frontend to close, then
 * remove the frontend, backend and /libxl copy.  msg says how it went. */
enum xs_result hotplug_unplug(struct xs_handle *h, const struct xs_channel *ch,
			      int wait_ms, char *msg, size_t msglen);
/* xenchan-proxy --list DOMAIN: one line per channel, to out. */
int hotplug_list(struct xs_handle *h, const struct xs_channel *dom, FILE *out);
/* xenchan-proxy --remove DOMAIN CHANNEL.  Returns a sysexits code. */
int hotplug_remove(struct xs_handle *h, const struct xs_channel *ch, char *msg, size_t msglen);

#endif
