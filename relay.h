/* SPDX-License-Identifier: MIT */
/*
 * relay.h - serving one channel's ring: map it and let go of it, move bytes
 * between it and the client (straight, or through what is held), and hand
 * the transcript what was relayed.  Knows nothing of the xenbus states:
 * backend.c decides when to attach and release, and writes every state.
 */
#ifndef XENCHAN_RELAY_H
#define XENCHAN_RELAY_H

#include <stdbool.h>

#include "proxy.h"

enum attach_result {
	ATTACH_OK,        /* mapped and bound: relaying */
	ATTACH_FAILED,    /* the map or the bind failed (logged): no ring */
	ATTACH_REFUSED,   /* impossible indices (logged): no ring, p->refused */
};
/* Map the ring the frontend offers (ri) and bind its port.  Anything but
 * ATTACH_OK leaves no ring. */
enum attach_result relay_attach(struct proxy *p, const struct store_ring *ri);
/* Unmap the ring and unbind its port; nothing if none is mapped. */
void relay_release(struct proxy *p);

/* A client is there and still takes bytes. */
bool relay_client_writable(const struct proxy *p);
/* The client is gone: what it may have left unread goes ahead of what is
 * held, for the next client. */
void relay_unread_replay(struct proxy *p);
/* Deliver held bytes, oldest first. */
void relay_flush_held(struct proxy *p);
/* Guest to client.  A guest that breaks the ring protocol loses its ring
 * until it reconnects (p->refused), here and in relay_pump_in. */
void relay_pump_out(struct proxy *p);
/* Client to guest. */
void relay_pump_in(struct proxy *p);
/* Is a read of the client worth polling for (in[] has room)? */
bool relay_want_client_read(struct proxy *p);
/* Notify the guest if a pass published anything. */
void relay_notify_guest(struct proxy *p);

#endif
