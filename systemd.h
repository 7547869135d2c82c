/*
 * systemd.h - the two pieces of systemd's service protocol the proxy speaks,
 * without libsystemd (which would pull seven libraries into every instance):
 * readiness notification and socket activation.
 */
#ifndef XENCHAN_SYSTEMD_H
#define XENCHAN_SYSTEMD_H

#define SYSTEMD_LISTEN_FDS_START 3

/* Send state ("READY=1", "STOPPING=1", "STATUS=...") to $NOTIFY_SOCKET, if
 * set; a missing or broken socket is not an error for the service. */
void systemd_notify(const char *state);
/* Sockets systemd passed us (LISTEN_FDS, for our LISTEN_PID), from fd 3 on;
 * 0 if none.  The variables are removed so children do not inherit them. */
int systemd_listen_fds(void);
/* Is fd a listening Unix stream socket? */
int systemd_is_unix_listener(int fd);

#endif
