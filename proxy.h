/* SPDX-License-Identifier: MIT */
/*
 * proxy.h - the state of one proxy: one (domain, channel), its options, the
 * ring, the endpoint and the bytes held.
 *
 * xenchan-proxy.c parses the options, sets up and runs the loop (and defines
 * proxy_new and proxy_free); backend.c follows the xenbus states; relay.c
 * maps the ring and moves bytes; every line goes through p->log (log.h).
 * All of it works on one struct proxy: no other state.
 */
#ifndef XENCHAN_PROXY_H
#define XENCHAN_PROXY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "endpoint.h"
#include "held.h"
#include "log.h"
#include "ring.h"
#include "stats.h"
#include "store.h"
#include "transcript.h"

enum mode { MODE_SERVE, MODE_CREATE, MODE_REMOVE, MODE_LIST };

struct options {
	enum mode command;
	const char *domain, *channel;
	char *split_arg;                 /* DOMAIN:CHANNEL, split in a copy */
	enum endpoint_kind kind;
	const char *path;                /* socket path or pty link */
	mode_t mode;
	unsigned backend_domid;
	bool backend_domid_set;          /* given: not the domain we run in */
	const char *transcript;
	unsigned long transcript_max;    /* bytes; 0: no bound */
	unsigned long buffer;
	bool buffer_set;
	bool overflow_keep;
	unsigned create_devid;           /* --devid: 0 for the lowest free */
	bool json;                       /* --list --json */
	const char *user;                /* drop to this user before the loop */
	bool no_seccomp;
	int verbosity;                   /* -1 quiet, 0 default, 1 -v, 2 -vv */
};

/* Where the backend is (backend.c writes it, the others read it). */
enum phase {
	PH_WAITING,     /* InitWait: for ring-ref and port */
	PH_CONNECTED,   /* ring mapped, relaying */
	PH_CLOSING,     /* frontend said Closing; still draining out[] */
	PH_CLOSED,      /* frontend Closed; waiting for it to come back */
	PH_ENDING,      /* channel or domain gone: deliver what is held, exit */
};

/* Count repeats of one kind of refusal; log the 1st, 2nd, 4th, 8th... so a
 * guest cannot flood the log, and nothing needs a timer. */
struct repeat { unsigned long n; };

static inline bool repeat_log(struct repeat *r)
{
	r->n++;
	return (r->n & (r->n - 1)) == 0;
}

/* The storm throttle (settle_event in xenchan-proxy.c).  A notification is
 * progress when a ring index the guest owns moved on since we last looked,
 * or when its pass moved bytes; only the others can count toward a storm. */
struct storm {
	XENCONS_RING_IDX out_prod, in_cons;  /* the guest's indices as far as we saw them */
	bool looked;                     /* they are from this ring (not before its first event) */
	bool grace;                      /* the last notification was progress: the next may
					  * be its own, for bytes that pass already saw */
	int64_t start_ms;                /* the current window (mono_ms) */
	unsigned events;                 /* notifications held against the guest in it */
	bool masked;                     /* leaving event_port masked until the window ends */
	unsigned long long handled;      /* notifications handled since start */
	unsigned long long idle;         /* ... that changed no index and moved no byte */
	unsigned long long counted;      /* ... of those, held against the guest */
};

/* The client of the endpoint, as the relay sees it. */
struct client {
	bool wr_dead;                    /* it cannot take more bytes */
	bool reset;                      /* it closed with bytes unread */
	struct held unread;              /* written to it, maybe unread */
};

/* What the pumps found, for the loop's next decisions. */
struct flow {
	bool notify_due;                 /* we published something: notify the guest */
	bool out_waiting;                /* out[] bytes the client could not take yet */
	bool in_full;                    /* in[] had no room for the client's bytes */
	bool in_filled;                  /* the last pump_in filled in[] to the brim */
};

/* Bytes and rounds since start, for the log. */
struct totals {
	unsigned long long out;          /* bytes taken from out[] */
	unsigned long long in;           /* bytes put into in[] */
	unsigned long long discarded;
	unsigned long long caught_up;    /* rounds of catch_up (xenchan-proxy.c) that found more */
	unsigned long long discard_episodes;  /* runs of discards, each ended by a byte
					       * held or delivered (relay.c) */
	bool discarding;                 /* in such a run now */
	unsigned long long client_connects;
	unsigned long long guest_connects;   /* times the backend said Connected */
};

/* Refusals and faults that repeat, logged 1st, 2nd, 4th... (repeat_log). */
struct repeats {
	struct repeat discard, refuse, keep, storm, retry;
	struct repeat transcript, connect;   /* a client's faults, not the guest's */
};

/* The failed write of backend Connected, tried again (backend.c). */
struct retry {
	int ms;                          /* backoff; 0 once it worked */
	bool armed;                      /* look at the states again ms after start_ms */
	int64_t start_ms;                /* mono_ms() */
};

/* Stopping on a signal once the client has what is held. */
struct drain {
	bool on;
	int64_t deadline_ms;             /* ... or at this mono_ms() time */
};

/* systemd's readiness protocol (systemd.h), and where the channel stands
 * (backend_report): STATUS= on each change, rate-limited. */
struct notify {
	int fd;                          /* connected to $NOTIFY_SOCKET, or -1 */
	bool ready_sent;                 /* systemd has had READY=1 */
	int sent;                        /* the standing last sent (backend.c), -1: none */
	unsigned long long sent_discarded;   /* ... with this many bytes discarded */
	bool pending;                    /* a change not sent yet: due at due_ms() */
	int64_t tat_ms;                  /* the rate limit's clock (backend.c) */
};

struct proxy {
	struct options opt;
	struct log_ctx log;
	struct xs_handle *xs;
	int store_fd;                    /* xs_fileno, taken once: it locks */
	struct store_channel ch;
	char toolstack_path[STORE_PATH_MAX];  /* the endpoint the backend nodes name */
	xengnttab_handle *gnt;
	xenevtchn_handle *evt;
	void *page;                      /* the mapped ring, NULL when not */
	evtchn_port_t port;              /* our end of the event channel */
	struct ring_dir out, in;
	bool refused;                    /* relay.c stopped serving this ring: the guest broke
					  * the protocol; until the frontend reconnects */
	int event_port;                  /* delivered and still masked, or -1 */
	enum phase phase;
	struct held held;
	struct held in_saved;            /* in[] bytes an old frontend never read */
	struct endpoint ep;
	struct client client;
	struct flow flow;
	struct transcript tr;
	struct totals totals;
	struct repeats rep;
	struct storm storm;
	struct retry retry;
	struct drain drain;
	struct notify notify;
	struct stats_page *stats;        /* the live counters: the file's page, or
					  * stats_own when there is no file */
	struct stats_file stats_file;
	struct stats_page stats_own;
	bool states_seen;                /* backend.c has read and acted on the states */
	int sigfd;
	bool created;                    /* we hot-plugged it: unplug on stop */
	bool stop;
	int exit_code;
};

struct proxy *proxy_new(void);
void proxy_free(struct proxy *p);

#endif
