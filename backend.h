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
/* Where the channel stands, for systemd's STATUS= and the counters. */
enum backend_standing {
	STANDING_WAITING,      /* for the guest: InitWait, or after it closed */
	STANDING_NO_CLIENT,    /* Connected, nobody on the endpoint */
	STANDING_CLIENT,       /* Connected, a client on it */
	STANDING_DISCARDING,   /* Connected, guest bytes being discarded (no room) */
	STANDING_CLOSING,      /* the frontend said Closing */
	STANDING_REFUSED,      /* the guest broke the ring protocol: not served */
	STANDING_ENDING,       /* the channel or the domain is gone */
};
enum backend_standing backend_standing(const struct proxy *p);
/* At the end of each turn of the loop: READY=1 once the proxy serves (its
 * endpoint open, the states read and acted on: waiting for the guest, or
 * reattached), then STATUS= on each change of standing (or of the bytes
 * discarded, while discarding), rate-limited: a change held back is sent
 * when backend_timeout says.  Nothing is sent without NOTIFY_SOCKET. */
void backend_report(struct proxy *p);
/* At exit: the standing now, if it changed, whatever the rate limit (a
 * change held back would otherwise never be sent). */
void backend_report_last(struct proxy *p);
/* Milliseconds until backend_on_timer has work (a failed Connected write
 * to try again) or a held-back STATUS= is due, or -1: none. */
int backend_timeout(const struct proxy *p);
/* The timeout passed (or maybe not): do what is due. */
void backend_on_timer(struct proxy *p);

#endif
