/*
 * backend.h - the xenbus backend of one channel: watch the frontend's and our
 * own state in xenstore, attach the ring when the frontend offers it, drain
 * and release it when the frontend closes or goes, and end when the channel
 * or the domain is gone (shared/docs/protocol.md).
 */
#ifndef XENCHAN_BACKEND_H
#define XENCHAN_BACKEND_H

#include "proxy.h"

/* Set the watches and take xs_fd; returns 0 or a sysexits code. */
int start_backend(struct proxy *p);
/* The xenstore fd is readable: consume the watches and act on them. */
void on_xenstore(struct proxy *p);
/* Read both states and act on them. */
void follow_states(struct proxy *p);

#endif
