/* SPDX-License-Identifier: MIT */
/*
 * relay.c - the ring of one channel and the bytes through it (see relay.h):
 * mapping and releasing the ring, and the two pumps.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

#include "relay.h"

/* ---- the ring ---------------------------------------------------------------- */

void relay_release(struct proxy *p)
{
	if (p->page == NULL)
		return;
	xenevtchn_unbind(p->evt, p->port);
	xengnttab_unmap(p->gnt, p->page, 1);
	p->page = NULL;
	p->event_port = -1;
	p->storm.masked = p->storm.looked = p->storm.grace = false;
	p->storm.events = 0;
	log_guest(&p->log, XTL_INFO, -1, "ring released");
}

static void protocol_error(struct proxy *p, const char *what)
{
	if (repeat_log(&p->rep.refuse))
		log_line(&p->log, XTL_ERROR, -1, "guest broke the ring protocol (%s): not serving "
			 "this ring until the frontend reconnects (%lu refusals)", what,
			 p->rep.refuse.n);
	relay_release(p);
	p->refused = true;
}

enum attach_result relay_attach(struct proxy *p, const struct store_ring *ri)
{
	struct iovec iov[2];
	int cnt, port;

	p->page = xengnttab_map_grant_ref(p->gnt, p->ch.domid, ri->ring_ref,
					  PROT_READ | PROT_WRITE);
	if (p->page == NULL) {
		if (repeat_log(&p->rep.refuse))
			log_line(&p->log, XTL_ERROR, errno, "xengnttab_map_grant_ref ring-ref %u",
				 ri->ring_ref);
		return ATTACH_FAILED;
	}
	port = xenevtchn_bind_interdomain(p->evt, p->ch.domid, ri->port);
	if (port < 0) {
		if (repeat_log(&p->rep.refuse))
			log_line(&p->log, XTL_ERROR, errno, "xenevtchn_bind_interdomain port %u",
				 ri->port);
		xengnttab_unmap(p->gnt, p->page, 1);
		p->page = NULL;
		return ATTACH_FAILED;
	}
	p->port = port;
	ring_backend_init(p->page, &p->out, &p->in);
	if (ring_readable(&p->out, iov, &cnt) < 0 || ring_writable(&p->in, iov, &cnt) < 0) {
		protocol_error(p, "impossible indices at connect");
		return ATTACH_REFUSED;
	}
	ring_mark_connected(p->page);
	return ATTACH_OK;
}

/* ---- relaying ---------------------------------------------------------------- */

static void iov_advance(struct iovec *iov, int *cnt, size_t n)
{
	while (*cnt > 0 && n >= iov[0].iov_len) {
		n -= iov[0].iov_len;
		iov[0] = iov[1];
		(*cnt)--;
	}
	if (*cnt > 0) {
		iov[0].iov_base = (char *)iov[0].iov_base + n;
		iov[0].iov_len -= n;
	}
}

bool relay_client_writable(const struct proxy *p)
{
	return endpoint_has_client(&p->ep) && !p->client.wr_dead;
}

/* A write to the client failed for good: it is gone for writing.  The
 * kernel reports a client that closed with bytes unread once, to whichever
 * call comes first; a write that takes the ECONNRESET must keep it. */
static void client_write_failed(struct proxy *p, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
		return;
	log_line(&p->log, XTL_INFO, err, "client write");
	p->client.wr_dead = true;
	p->client.reset |= err == ECONNRESET;
}

/* At most one kernel buffer per write to a socket client.  A Unix stream
 * write is queued in buffers of up to half the send buffer; if the client
 * closes with bytes unread between two of them, the kernel hands the write
 * its ECONNRESET, returns the count already queued and forgets the error,
 * and we would never learn that the client left bytes unread.  Writes of
 * one buffer either fail with it or succeed before it is set.  Only held
 * bytes need the cap: a write straight from out[] is at most 2 KiB. */
static void cap_client_write(const struct proxy *p, struct iovec *iov, int *cnt)
{
	size_t max, n = 0;

	if (!endpoint_is_socket(&p->ep) || p->ep.sndbuf < 1024)
		return;
	max = p->ep.sndbuf / 2 - 64;
	for (int i = 0; i < *cnt; i++) {
		if (n + iov[i].iov_len >= max) {
			iov[i].iov_len = max - n;
			*cnt = i + 1;
			return;
		}
		n += iov[i].iov_len;
	}
}

/*
 * At-least-once across a client's death.  What write() handed the kernel for
 * a client that dies without reading it is freed with its socket.  We keep a
 * copy of the last bytes written (bounded by twice the socket's send buffer),
 * trimmed to what SIOCOUTQ says is unread whenever it fills, and if the client
 * dies with bytes unread (the kernel resets us) we give that copy to the next
 * client, ahead of what is held.  SIOCOUTQ counts buffer overhead and is known
 * only as of our last look, so the next client may see bytes twice, never a
 * gap.  The look costs two syscalls per window-full, not per write.
 */
static void unread_look(struct proxy *p)
{
	size_t u;

	if (endpoint_unread(&p->ep, &u) && u < p->client.unread.len)
		held_drop(&p->client.unread, p->client.unread.len - u);
}

static void unread_add(struct proxy *p, const struct iovec *iov, int cnt, size_t n)
{
	if (!endpoint_is_socket(&p->ep))
		return;
	if (n > held_room(&p->client.unread))
		unread_look(p);
	if (n > held_room(&p->client.unread))   /* older bytes are surely read by now */
		held_drop(&p->client.unread, n - held_room(&p->client.unread));
	held_put(&p->client.unread, iov, cnt, n);
}

void relay_unread_replay(struct proxy *p)
{
	struct held merged;
	struct iovec iov[2];
	int cnt;

	if (!p->client.reset || p->client.unread.len == 0) {
		held_free(&p->client.unread);
		return;
	}
	held_init(&merged, p->client.unread.len + p->held.len);
	held_peek(&p->client.unread, iov, &cnt);
	held_put(&merged, iov, cnt, p->client.unread.len);
	held_peek(&p->held, iov, &cnt);
	held_put(&merged, iov, cnt, p->held.len);
	log_line(&p->log, XTL_INFO, -1, "client left up to %zu bytes unread: the next client gets "
		 "them again, ahead of %zu held", p->client.unread.len, p->held.len);
	merged.bound = p->held.bound;   /* may hold more than the bound until drained */
	held_free(&p->held);
	held_free(&p->client.unread);
	p->held = merged;
}

/* Deliver held bytes, oldest first. */
void relay_flush_held(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;
	ssize_t w;

	if (p->held.len == 0 || !relay_client_writable(p))
		return;
	held_peek(&p->held, iov, &cnt);
	cap_client_write(p, iov, &cnt);
	w = writev(p->ep.wfd, iov, cnt);
	if (w > 0) {
		unread_add(p, iov, cnt, w);
		held_drop(&p->held, w);
	} else if (w < 0) {
		client_write_failed(p, errno);
	}
}

/* With a transcript, the bytes relayed and the bytes recorded are one copy
 * of the ring's: the guest may rewrite out[] or in[] between two reads. */
static void take_copy(struct iovec *iov, int *cnt, char *copy, size_t n)
{
	ring_iov_copy_out(iov, *cnt, copy, n);
	iov[0] = (struct iovec){ copy, n };
	*cnt = 1;
}

/* Client to in[] through a copy, which the transcript records. */
static ssize_t read_recorded(struct proxy *p, const struct iovec *iov, int cnt, size_t room)
{
	char copy[sizeof(((struct xencons_interface *)0)->in)];
	struct iovec one = { copy, room < sizeof(copy) ? room : sizeof(copy) };
	ssize_t r = readv(p->ep.rfd, &one, 1);

	if (r > 0) {
		transcript_add(p, "in", &one, 1, r);
		ring_iov_copy_in(iov, cnt, copy, r);
	}
	return r;
}

static void discard(struct proxy *p, size_t n, unsigned long long offset)
{
	p->totals.discarded += n;
	if (repeat_log(&p->rep.discard))
		log_line(&p->log, XTL_WARN, -1, "discarded %zu bytes from the guest at stream "
			 "offset %llu: client %s and %zu bytes already held (total discarded %llu)",
			 n, offset, relay_client_writable(p) ? "slow" : "absent", p->held.len,
			 p->totals.discarded);
}

/* Guest to client: straight from out[] when nothing is held and the client
 * takes it; otherwise behind what is held; beyond the bound, discard or
 * (keep) leave it in the ring for the guest to wait on.  A proxy that is
 * stopping holds nothing more: what the client does not take now stays in
 * the ring for the next process, where a restart cannot lose it. */
void relay_pump_out(struct proxy *p)
{
	struct iovec iov[2], rest[2];
	ssize_t avail, w;
	size_t taken = 0, dropped = 0;
	int cnt, rcnt;
	bool may_hold = !p->stop && !p->drain.on;
	char copy[sizeof(((struct xencons_interface *)0)->out)];

	p->flow.out_waiting = false;
	if (p->page == NULL || (p->phase != PH_CONNECTED && p->phase != PH_CLOSING))
		return;
	avail = ring_readable(&p->out, iov, &cnt);
	if (avail <= 0) {
		if (avail < 0)
			protocol_error(p, "out_prod runs more than out[] ahead of out_cons");
		return;
	}
	if (transcript_on(p))
		take_copy(iov, &cnt, copy, avail);
	if (p->held.len == 0 && relay_client_writable(p)) {
		/* out[] holds 2 KiB: one kernel buffer (see cap_client_write). */
		w = writev(p->ep.wfd, iov, cnt);
		if (w > 0) {
			taken = w;
			unread_add(p, iov, cnt, w);
		} else {
			client_write_failed(p, errno);
		}
	}
	if (taken < (size_t)avail && may_hold) {
		memcpy(rest, iov, sizeof(rest));
		rcnt = cnt;
		iov_advance(rest, &rcnt, taken);
		taken += held_put(&p->held, rest, rcnt, avail - taken);
	}
	if (taken < (size_t)avail && may_hold && !p->opt.overflow_keep) {
		dropped = avail - taken;
		discard(p, dropped, p->totals.out + taken);
		taken = avail;
	} else if (taken < (size_t)avail && may_hold && repeat_log(&p->rep.keep)) {
		log_line(&p->log, XTL_WARN, -1, "buffer of %zu bytes full: the guest waits "
			 "(overflow keep)", p->held.bound);
	}
	/* Nothing held may remind us of what is left: ask for the client's
	 * POLLOUT, since the guest, with its ring full, sends no event. */
	p->flow.out_waiting = taken < (size_t)avail && relay_client_writable(p);
	if (taken == 0)
		return;
	transcript_add(p, "out", iov, cnt, taken - dropped);
	if (dropped)
		transcript_mark(p, "discarded %zu guest bytes at stream offset %llu", dropped,
				p->totals.out + taken - dropped);
	ring_consume(&p->out, taken);
	p->totals.out += taken;
	p->flow.notify_due = true;
	if (p->opt.verbosity >= 2)
		log_line(&p->log, XTL_DETAIL, -1, "guest>dom0 %zu bytes, to offset %llu (%zu "
			 "held, %llu discarded)", taken, p->totals.out, p->held.len,
			 p->totals.discarded);
}

static void put_saved_in(struct proxy *p, const struct iovec *iov, int cnt, size_t room)
{
	struct iovec saved[2];
	int scnt;
	char tmp[sizeof(((struct xencons_interface *)0)->in)];
	size_t n = held_peek(&p->in_saved, saved, &scnt);

	n = ring_iov_copy_out(saved, scnt, tmp, n < room ? n : room);
	ring_iov_copy_in(iov, cnt, tmp, n);
	ring_produce(&p->in, n);
	held_drop(&p->in_saved, n);
	p->flow.in_filled = n == room;
	p->flow.notify_due = true;
}

/* Client to guest: straight into the free part of in[]; when in[] is full
 * we simply do not read the client (backpressure). */
void relay_pump_in(struct proxy *p)
{
	struct iovec iov[2];
	ssize_t room, r;
	int cnt;

	if (p->page == NULL || p->phase != PH_CONNECTED)
		return;
	room = ring_writable(&p->in, iov, &cnt);
	p->flow.in_full = room == 0;
	p->flow.in_filled = false;
	if (room <= 0) {
		if (room < 0)
			protocol_error(p, "in_cons runs behind in_prod by more than in[]");
		return;
	}
	if (p->in_saved.len > 0) {
		put_saved_in(p, iov, cnt, room);
		return;
	}
	if (!endpoint_has_client(&p->ep) || p->ep.read_eof)
		return;
	r = transcript_on(p) ? read_recorded(p, iov, cnt, room) : readv(p->ep.rfd, iov, cnt);
	p->flow.in_filled = r == room;
	if (r > 0) {
		ring_produce(&p->in, r);
		p->totals.in += r;
		p->flow.notify_due = true;
		if (p->opt.verbosity >= 2)
			log_line(&p->log, XTL_DETAIL, -1, "dom0>guest %zd bytes, to offset %llu",
				 r, p->totals.in);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		/* EOF (or a reset): everything the client sent is in the ring.
		 * It may still read (a half-close). */
		p->ep.read_eof = true;
		p->client.reset |= r < 0 && errno == ECONNRESET;
		log_line(&p->log, XTL_INFO, r == 0 ? -1 : errno, "client closed its sending side");
	}
}

bool relay_want_client_read(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;

	return p->page != NULL && p->phase == PH_CONNECTED && endpoint_has_client(&p->ep)
		&& !p->ep.read_eof && p->in_saved.len == 0
		&& ring_writable(&p->in, iov, &cnt) != 0;   /* room, or a bad index to report */
}

void relay_notify_guest(struct proxy *p)
{
	if (p->flow.notify_due && p->page != NULL)
		xenevtchn_notify(p->evt, p->port);
	p->flow.notify_due = false;
}
