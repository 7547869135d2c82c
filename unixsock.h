/* SPDX-License-Identifier: MIT */
/*
 * unixsock.h - is a Unix socket live?  The one probe both programs use
 * before they replace or remove a socket file: xenchan-proxy's endpoint
 * before it binds over a stale socket, xenchan-dm before it removes the
 * socket of a proxy that exited.  Depends on nothing of either.
 */
#ifndef XENCHAN_UNIXSOCK_H
#define XENCHAN_UNIXSOCK_H

#include <stdbool.h>

/* Does something listen on path?  A non-blocking connect: refused
 * (ECONNREFUSED) or nothing there (ENOENT) is not live; anything else is,
 * a listener with a full queue (EAGAIN) included, and so is a socket we
 * cannot probe (no socket to probe with, a path too long): never replace
 * or remove what may be someone's live socket. */
bool unixsock_live(const char *path);

/* Remove path if it is a socket nothing listens on (by unixsock_live's
 * rule): what an exited proxy left.  True if it was removed. */
bool unixsock_remove_stale(const char *path);

#endif
