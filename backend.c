/*
 * backend.c - the xenbus backend state machine of one channel (see backend.h).
 */
#include <errno.h>
#include <sysexits.h>

#include "backend.h"
#include "relay.h"

/* ---- the backend state machine ------------------------------------------------ */

/* Announce ourselves as the backend, or reattach to a live channel. */
int start_backend(struct proxy *p)
{
	if (!xs_watch_channel(p->xs, &p->ch)) {
		plog(p, XTL_ERROR, errno, "xs_watch %s", p->ch.fe);
		return EX_UNAVAILABLE;
	}
	/* Not on the loop's path: libxenstore takes a lock for it each call. */
	p->xs_fd = xs_fileno(p->xs);
	if (p->xs_fd < 0) {
		plog(p, XTL_ERROR, errno, "xs_fileno");
		return EX_UNAVAILABLE;
	}
	p->phase = PH_WAITING;
	/* The watches fire once at registration; on_xenstore then reads
	 * both states and acts: InitWait, reattach, or follow a close. */
	return 0;
}

static void set_backend_state(struct proxy *p, enum xb_state s)
{
	enum xs_result r = xs_set_backend_state(p->xs, &p->ch, s);

	if (r == XSR_OK)
		plog_guest(p, XTL_INFO, -1, "backend state %s", xb_state_name(s));
	else if (r != XSR_GONE)
		plog(p, XTL_ERROR, errno, "xs_write %s/state", p->ch.be);
}

static void begin_ending(struct proxy *p, const char *why)
{
	if (p->phase == PH_ENDING)
		return;
	plog(p, XTL_INFO, -1, "%s: ending (%zu bytes held for the client)", why, p->held.len);
	ring_release(p);
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
	pump_out(p);
	n = ring_unconsumed(&p->in, iov, &cnt);
	if (n > 0 && held_put(&p->in_saved, iov, cnt, n) == (size_t)n)
		plog_guest(p, XTL_INFO, -1, "kept %zd bytes the guest had not read for its next "
			   "ring", n);
	ring_release(p);
}

static void follow_frontend(struct proxy *p, enum xb_state fs, enum xb_state bs)
{
	switch (fs) {
	case XB_INITIALISED:
	case XB_CONNECTED:
		if (p->page == NULL && p->phase != PH_REFUSED)
			ring_attach(p);
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
		if (repeat_log(&p->rep_refuse))
			plog(p, XTL_WARN, -1, "ignoring frontend state %d", (int)fs);
		break;
	}
}

void on_xenstore(struct proxy *p)
{
	unsigned fired = xs_drain_watches(p->xs);

	if (p->phase == PH_ENDING)
		return;
	if ((fired & XS_WATCH_RELEASE) && !xs_domain_alive(p->xs, p->ch.domid)) {
		p->page = NULL;   /* the domain and its page are gone: never touch it */
		begin_ending(p, "domain is gone");
		return;
	}
	if (fired & (XS_WATCH_FRONTEND | XS_WATCH_BACKEND))
		follow_states(p);
}

/* Read both states and act on them: after a watch fired, or when a failed
 * Connected write is due for another try. */
void follow_states(struct proxy *p)
{
	bool fe_present, be_present;
	enum xb_state fs, bs;

	p->retry_armed = false;
	bs = xs_backend_state(p->xs, &p->ch, &be_present);
	if (!be_present) {
		drain_and_release(p);
		begin_ending(p, "backend directory removed");
		return;
	}
	fs = xs_frontend_state(p->xs, &p->ch, &fe_present);
	if (!fe_present) {
		if (p->page != NULL)
			plog_guest(p, XTL_WARN, -1, "frontend directory vanished: not serving it");
		drain_and_release(p);
		p->phase = PH_WAITING;
		return;
	}
	if (p->phase == PH_REFUSED && fs != XB_INITIALISED && fs != XB_CONNECTED)
		p->phase = PH_WAITING;   /* it reconnects: give it a new chance */
	follow_frontend(p, fs, bs);
}
