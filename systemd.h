/* SPDX-License-Identifier: MIT */
/*
 * systemd.h - the two pieces of systemd's service protocol the proxy speaks,
 * without libsystemd (which would pull seven libraries into every instance):
 * readiness notification and socket activation.
 */
#ifndef XENCHAN_SYSTEMD_H
#define XENCHAN_SYSTEMD_H

#define SYSTEMD_LISTEN_FDS_START 3

/* A datagram socket connected to $NOTIFY_SOCKET, or -1 if it is not set or
 * cannot be reached (not an error for the service).  Opened once, before
 * the sandbox: a notification then needs no new socket, address or path. */
int systemd_notify_open(void);
/* Send state ("READY=1", "STOPPING=1", "STATUS=...") on it; fd -1: none. */
void systemd_notify(int fd, const char *state);
/* Sockets systemd passed us (LISTEN_FDS, for our LISTEN_PID), from fd 3 on;
 * 0 if none.  The variables are removed so children do not inherit them. */
int systemd_listen_fds(void);
/* Is fd a listening Unix stream socket? */
int systemd_is_unix_listener(int fd);

#endif
