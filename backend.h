/* SPDX-License-Identifier: MIT */
/*
 * backend.h - the xenbus backend of one channel: watch the frontend's and our
 * own state in xenstore, attach the ring when the frontend offers it, drain
 * and release it when the frontend closes or goes, and end when the channel
 * or the domain is gone (docs/protocol.md, "The backend's steps").  The only
 * writer of the backend's state node, of p->phase, and of readiness.
 */
#ifndef XENCHAN_BACKEND_H
#define XENCHAN_BACKEND_H

#include "proxy.h"

/* Set the watches and take store_fd; returns 0 or a sysexits code. */
int backend_start(struct proxy *p);
/* The xenstore fd is readable: consume the watches and act on them. */
void backend_on_xenstore(struct proxy *p);
/* Milliseconds until backend_on_timer has work (a failed Connected write
 * to try again), or -1: none. */
int backend_timeout(const struct proxy *p);
/* The timeout passed (or maybe not): do what is due. */
void backend_on_timer(struct proxy *p);

#endif
