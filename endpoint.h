/* SPDX-License-Identifier: MIT */
/*
 * endpoint.h - the dom0 side of a channel: a listening Unix socket, a Unix
 * socket we connect to, a pty, or our own stdin/stdout.  All four share one
 * shape: at most one client at a time, an fd to read it and an fd to write
 * it, and what to do when it hangs up (accept the next, reconnect, or end).
 */
#ifndef XENCHAN_ENDPOINT_H
#define XENCHAN_ENDPOINT_H

#include <stdbool.h>
#include <sys/types.h>

enum endpoint_kind { EP_NONE, EP_LISTEN, EP_CONNECT, EP_PTY, EP_STDIO };

struct endpoint {
	enum endpoint_kind kind;
	const char *path;        /* socket path, or the pty's symlink (may be NULL) */
	mode_t mode;             /* permissions of a socket we create */
	uid_t user_uid;          /* --user: trusted with the socket's directory; -1: none */
	gid_t user_gid;
	bool inherited;          /* listening fd passed by systemd: never unlink it */
	bool created_path;       /* we made path: remove it on exit */
	int listen_fd;           /* EP_LISTEN */
	int rfd, wfd;            /* the client; -1 when there is none */
	bool read_eof;           /* the client shut its write side */
	int pty_slave_fd;        /* EP_PTY: held open so the line is never hung up */
	char pty_name[64];
	int retry_ms;            /* EP_CONNECT: next retry delay, 0 = at once */
	size_t sndbuf;           /* socket clients: the kernel's send buffer bound */
	char err[512];           /* why the last call failed: syscall, path, errno */
	char inherited_path[108];  /* where an inherited listener is bound */
};

void endpoint_init(struct endpoint *ep, enum endpoint_kind kind, const char *path, mode_t mode);
/* Create what the kind needs (socket, pty).  Returns 0 or a sysexits code.
 * A socket or pty link is made only in a directory no other user can change
 * (see endpoint.c, dir_is_safe), and a socket gets its mode at bind, never
 * by a later call through its path. */
int endpoint_open(struct endpoint *ep);
/* Use an already listening socket (socket activation). */
void endpoint_adopt_listener(struct endpoint *ep, int fd);
bool endpoint_has_client(const struct endpoint *ep);
/* EP_LISTEN: accept one waiting client.  Returns true if one was taken. */
bool endpoint_accept(struct endpoint *ep);
/* EP_CONNECT: try once; on failure sets retry_ms to the next (capped) delay. */
bool endpoint_connect(struct endpoint *ep);
/* The client hung up or failed: close it.  Returns false if the endpoint
 * can have no further client (stdio), so the proxy should end. */
bool endpoint_drop_client(struct endpoint *ep);
bool endpoint_is_socket(const struct endpoint *ep);
/* What the socket client has not read yet, by SIOCOUTQ: kernel buffer bytes,
 * so at least the unread data.  False if unknown (not a socket, hung up). */
bool endpoint_unread(const struct endpoint *ep, size_t *unread);
/* Did the client close with bytes unread?  (The kernel then resets us.) */
bool endpoint_client_reset(const struct endpoint *ep);
/* The socket's path ("" for a pty, stdio, or an unnamed socket). */
const char *endpoint_socket_path(struct endpoint *ep);
/* Close everything; remove what we created. */
void endpoint_close(struct endpoint *ep);

#endif
