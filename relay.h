/*
 * relay.h - serving one channel's ring: map it and let go of it, move bytes
 * between it and the client (straight, or through what is held), and hand
 * the transcript what was relayed.  Knows nothing of the xenbus states:
 * backend.c decides when to attach and release.
 */
#ifndef XENCHAN_RELAY_H
#define XENCHAN_RELAY_H

#include <stdbool.h>

#include "proxy.h"

/* The frontend offers its ring: map it, bind its port, write Connected
 * (retried with backoff if that write fails).  On failure, no ring. */
void ring_attach(struct proxy *p);
/* Unmap the ring and unbind its port; nothing if none is mapped. */
void ring_release(struct proxy *p);

/* A client is there and still takes bytes. */
bool client_writable(const struct proxy *p);
/* The client is gone: what it may have left unread goes ahead of what is
 * held, for the next client. */
void unread_replay(struct proxy *p);
/* Deliver held bytes, oldest first. */
void flush_held(struct proxy *p);
/* Guest to client. */
void pump_out(struct proxy *p);
/* Client to guest. */
void pump_in(struct proxy *p);
/* Is a read of the client worth polling for (in[] has room)? */
bool want_client_read(struct proxy *p);
/* Notify the guest if a pass published anything. */
void notify_guest(struct proxy *p);

#endif
