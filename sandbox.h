/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h - least privilege for the relay loop: become an ordinary user
 * (or stay uid 0), keep no capability, then admit only the system calls the
 * loop makes.
 */
#ifndef XENCHAN_SANDBOX_H
#define XENCHAN_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>

/* What the loop will do once setup is over; the filter admits that much. */
struct sandbox_needs {
	int gnttab_fd;          /* gntdev: map and unmap grants, by request */
	int evtchn_fd;          /* evtchn: bind, unbind, notify, by request */
	bool accept;            /* clients of a listening socket */
	bool connect;           /* --connect: a new socket per attempt */
	bool socket_client;     /* SIOCOUTQ on a socket client */
	bool transcript;        /* reopened on SIGHUP */
	bool unlink_at_exit;    /* a socket or link of ours to remove */
};

/* No way back to more privilege: no_new_privs, an empty capability
 * bounding set where we may clear it, user (if not NULL: its uid, gid and
 * groups), and no capability at all.  0 or a sysexits code (err says). */
int sandbox_drop_privileges(const char *user, char *err, size_t errlen);
/* Install the system-call filter on every thread; 0 or a sysexits code. */
int sandbox_seccomp(const struct sandbox_needs *need, char *err, size_t errlen);

#endif
