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
#include <stdio.h>
#include <sysexits.h>

#include "backend.h"
#include "monotime.h"
#include "relay.h"
#include "systemd.h"

/* A failed write of backend Connected is retried after 50 ms, doubling to
 * 5 s: the frontend waits for it and writes nothing that would wake us. */
#define CONNECTED_RETRY_FIRST_MS 50
#define CONNECTED_RETRY_MAX_MS   5000
/* STATUS= goes out at once on a change, up to STATUS_BURST in a row, then at
 * most once per STATUS_INTERVAL_MS; a change held back is sent when its turn
 * comes (the one timer, only while a change waits). */
#define STATUS_BURST             4
#define STATUS_INTERVAL_MS       1000

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

/* Connected is written: the guest may have been waiting on a full ring. */
static void connected(struct proxy *p, const struct store_ring *ri)
{
	p->retry.ms = 0;
	p->phase = PH_CONNECTED;
	p->flow.notify_due = true;
	p->totals.guest_connects++;
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
	if (fired & (STORE_WATCH_FRONTEND | STORE_WATCH_BACKEND)) {
		follow_states(p);
		p->states_seen = true;
	}
}

enum backend_standing backend_standing(const struct proxy *p)
{
	if (p->phase == PH_ENDING)
		return STANDING_ENDING;
	if (p->refused)
		return STANDING_REFUSED;
	if (p->phase == PH_CLOSING)
		return STANDING_CLOSING;
	if (p->phase != PH_CONNECTED)
		return STANDING_WAITING;
	if (p->totals.discarding)
		return STANDING_DISCARDING;
	return endpoint_has_client(&p->ep) ? STANDING_CLIENT : STANDING_NO_CLIENT;
}

/* When the held-back change may go (mono_ms), by the rate limit: a
 * theoretical time that each message moves on by STATUS_INTERVAL_MS. */
static int64_t status_due_ms(const struct proxy *p)
{
	return p->notify.tat_ms - (STATUS_BURST - 1) * STATUS_INTERVAL_MS;
}

static void send_status(struct proxy *p, enum backend_standing st, int64_t now)
{
	static const char *const text[] = {
		[STANDING_WAITING] = "waiting for the guest",
		[STANDING_NO_CLIENT] = "connected, no client",
		[STANDING_CLIENT] = "connected, client",
		[STANDING_DISCARDING] = "discarding",
		[STANDING_CLOSING] = "the guest is closing the channel",
		[STANDING_REFUSED] = "refused: the guest broke the ring protocol",
		[STANDING_ENDING] = "ending: the channel or the domain is gone",
	};
	char msg[128];

	if (st == STANDING_DISCARDING)
		snprintf(msg, sizeof(msg), "%sSTATUS=discarding: %llu bytes so far",
			 p->notify.ready_sent ? "" : "READY=1\n", p->totals.discarded);
	else
		snprintf(msg, sizeof(msg), "%sSTATUS=%s", p->notify.ready_sent ? "" : "READY=1\n",
			 text[st]);
	systemd_notify(p->notify.fd, msg);
	p->notify.ready_sent = true;
	p->notify.sent = (int)st;
	p->notify.sent_discarded = p->totals.discarded;
	p->notify.pending = false;
	p->notify.tat_ms = (p->notify.tat_ms > now ? p->notify.tat_ms : now) + STATUS_INTERVAL_MS;
}

static void report(struct proxy *p, bool last)
{
	enum backend_standing st;
	int64_t now;

	/* Ready once the states have been read and acted on (InitWait
	 * written, or a live ring reattached): the endpoint is open. */
	if (p->notify.fd < 0 || !p->states_seen || (!p->notify.ready_sent && p->phase == PH_ENDING))
		return;
	st = backend_standing(p);
	if ((int)st == p->notify.sent && (st != STANDING_DISCARDING
					  || p->totals.discarded == p->notify.sent_discarded)) {
		p->notify.pending = false;
		return;
	}
	now = mono_ms();   /* only on a change: no clock read on an unchanged turn */
	if (!p->notify.ready_sent || last || now >= status_due_ms(p))
		send_status(p, st, now);
	else
		p->notify.pending = true;
}

void backend_report(struct proxy *p)
{
	report(p, false);
}

void backend_report_last(struct proxy *p)
{
	report(p, true);
}

/* Milliseconds until the failed Connected write is to be tried again, or -1. */
static int retry_timeout(const struct proxy *p)
{
	if (!p->retry.armed || p->phase == PH_ENDING)
		return -1;
	return mono_until(p->retry.start_ms + p->retry.ms);
}

int backend_timeout(const struct proxy *p)
{
	int r = retry_timeout(p), s;

	if (!p->notify.pending)
		return r;
	s = mono_until(status_due_ms(p));
	return r < 0 || s < r ? s : r;
}

void backend_on_timer(struct proxy *p)
{
	if (retry_timeout(p) == 0)
		follow_states(p);
}
