/* SPDX-License-Identifier: MIT */
/*
 * backend.c - the xenbus backend state machine of one channel (see backend.h).
 *
 * relay.c maps the ring and moves bytes; every decision about the channel's
 * xenbus states is taken here: when to attach, drain and release, which
 * state to write, when to try Connected again, and when systemd hears that
 * the channel is ready.
 */
#include <errno.h>
#include <sysexits.h>

#include "backend.h"
#include "monotime.h"
#include "relay.h"
#include "systemd.h"

/* A failed write of backend Connected is retried after 50 ms, doubling to
 * 5 s: the frontend waits for it and writes nothing that would wake us. */
#define CONNECTED_RETRY_FIRST_MS 50
#define CONNECTED_RETRY_MAX_MS   5000

/* Announce ourselves as the backend, or reattach to a live channel. */
int backend_start(struct proxy *p)
{
	if (!store_watch_channel(p->xs, &p->ch)) {
		log_line(&p->log, XTL_ERROR, errno, "xs_watch %s", p->ch.fe);
		return EX_UNAVAILABLE;
	}
	/* Not on the loop's path: libxenstore takes a lock for it each call. */
	p->store_fd = xs_fileno(p->xs);
	if (p->store_fd < 0) {
		log_line(&p->log, XTL_ERROR, errno, "xs_fileno");
		return EX_UNAVAILABLE;
	}
	p->phase = PH_WAITING;
	/* The watches fire once at registration; backend_on_xenstore then
	 * reads both states and acts: InitWait, reattach, or follow a close. */
	return 0;
}

static void set_backend_state(struct proxy *p, enum xb_state s)
{
	enum store_result r = store_set_backend_state(p->xs, &p->ch, s);

	if (r == STORE_OK)
		log_guest(&p->log, XTL_INFO, -1, "backend state %s", store_state_name(s));
	else if (r != STORE_GONE)
		log_line(&p->log, XTL_ERROR, errno, "xs_write %s/state", p->ch.be);
}

static void begin_ending(struct proxy *p, const char *why)
{
	if (p->phase == PH_ENDING)
		return;
	log_line(&p->log, XTL_INFO, -1, "%s: ending (%zu bytes held for the client)", why,
		 p->held.len);
	relay_release(p);
	p->phase = PH_ENDING;
}

/* Frontend Closed or reset: take the last bytes, keep what it had not read
 * of in[] for its next ring (a client's bytes survive a guest's module
 * reload or kexec), then let go of the ring. */
static void drain_and_release(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;
	ssize_t n;

	if (p->page == NULL)
		return;
	relay_pump_out(p);
	n = ring_unconsumed(&p->in, iov, &cnt);
	if (n > 0 && held_put(&p->in_saved, iov, cnt, n) == (size_t)n)
		log_guest(&p->log, XTL_INFO, -1, "kept %zd bytes the guest had not read for its "
			  "next ring", n);
	relay_release(p);
}

/* Writing Connected failed: let go of the ring and look at the states again
 * after a backoff (backend_timeout). */
static void retry_later(struct proxy *p)
{
	int err = errno;

	p->retry.ms = p->retry.ms ? p->retry.ms * 2 : CONNECTED_RETRY_FIRST_MS;
	if (p->retry.ms > CONNECTED_RETRY_MAX_MS)
		p->retry.ms = CONNECTED_RETRY_MAX_MS;
	p->retry.armed = true;
	p->retry.start_ms = mono_ms();
	if (repeat_log(&p->rep.retry))
		log_line(&p->log, XTL_ERROR, err, "xs_write %s/state = Connected (retrying in "
			 "%d ms; %lu failures)", p->ch.be, p->retry.ms, p->rep.retry.n);
	relay_release(p);
}

/* Connected is written: the guest may have been waiting on a full ring, and
 * systemd on us. */
static void connected(struct proxy *p, const struct store_ring *ri)
{
	p->retry.ms = 0;
	p->phase = PH_CONNECTED;
	p->flow.notify_due = true;
	if (!p->notify.ready_sent) {
		systemd_notify(p->notify.fd, "READY=1\nSTATUS=connected");
		p->notify.ready_sent = true;
	}
	log_guest(&p->log, XTL_INFO, -1, "connected: ring-ref %u, port %u (ours %d), %u bytes "
		  "waiting", ri->ring_ref, ri->port, (int)p->port, *p->out.prod - p->out.local);
}

/* The frontend offers its ring: read the offer, have the relay map and bind
 * it, then say Connected. */
static void attach(struct proxy *p)
{
	struct store_ring ri;
	char msg[256];

	if (store_frontend_ring(p->xs, &p->ch, &ri, msg, sizeof(msg)) != STORE_OK) {
		if (repeat_log(&p->rep.refuse))
			log_line(&p->log, XTL_WARN, -1, "not connecting: %s", msg);
		return;
	}
	if (relay_attach(p, &ri) != ATTACH_OK)
		return;
	if (store_set_backend_state(p->xs, &p->ch, XB_CONNECTED) != STORE_OK)
		retry_later(p);
	else
		connected(p, &ri);
}

static void follow_frontend(struct proxy *p, enum xb_state fs, enum xb_state bs)
{
	switch (fs) {
	case XB_INITIALISED:
	case XB_CONNECTED:
		if (p->page == NULL && !p->refused)
			attach(p);
		break;
	case XB_CLOSING:
		if (bs != XB_CLOSING && bs != XB_CLOSED)
			set_backend_state(p, XB_CLOSING);
		if (p->phase == PH_CONNECTED)
			p->phase = PH_CLOSING;
		break;
	case XB_CLOSED:
		drain_and_release(p);
		if (bs != XB_CLOSED)
			set_backend_state(p, XB_CLOSED);
		p->phase = PH_CLOSED;
		break;
	case XB_INITIALISING:
	case XB_INITWAIT:
		/* A new frontend (reload, kexec): serve it afresh.  (A guest
		 * resumed after xl restore writes Initialised, as at probe.) */
		drain_and_release(p);
		if (bs != XB_INITWAIT)
			set_backend_state(p, XB_INITWAIT);
		p->phase = PH_WAITING;
		break;
	default:
		if (repeat_log(&p->rep.refuse))
			log_line(&p->log, XTL_WARN, -1, "ignoring frontend state %d", (int)fs);
		break;
	}
}

/* Read both states and act on them: after a watch fired, or when a failed
 * Connected write is due for another try. */
static void follow_states(struct proxy *p)
{
	bool fe_present, be_present;
	enum xb_state fs, bs;

	p->retry.armed = false;
	bs = store_backend_state(p->xs, &p->ch, &be_present);
	if (!be_present) {
		drain_and_release(p);
		begin_ending(p, "backend directory removed");
		return;
	}
	fs = store_frontend_state(p->xs, &p->ch, &fe_present);
	if (!fe_present) {
		if (p->page != NULL)
			log_guest(&p->log, XTL_WARN, -1,
				  "frontend directory vanished: not serving it");
		drain_and_release(p);
		p->phase = PH_WAITING;
		return;
	}
	if (p->refused && fs != XB_INITIALISED && fs != XB_CONNECTED) {
		p->refused = false;   /* it reconnects: give it a new chance */
		p->phase = PH_WAITING;
	}
	follow_frontend(p, fs, bs);
}

void backend_on_xenstore(struct proxy *p)
{
	unsigned fired = store_drain_watches(p->xs);

	if (p->phase == PH_ENDING)
		return;
	if ((fired & STORE_WATCH_RELEASE) && !store_domain_alive(p->xs, p->ch.domid)) {
		p->page = NULL;   /* the domain and its page are gone: never touch it */
		begin_ending(p, "domain is gone");
		return;
	}
	if (fired & (STORE_WATCH_FRONTEND | STORE_WATCH_BACKEND))
		follow_states(p);
}

int backend_timeout(const struct proxy *p)
{
	if (!p->retry.armed || p->phase == PH_ENDING)
		return -1;
	return mono_until(p->retry.start_ms + p->retry.ms);
}

void backend_on_timer(struct proxy *p)
{
	if (backend_timeout(p) == 0)
		follow_states(p);
}
