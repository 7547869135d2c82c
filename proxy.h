/*
 * proxy.h - the state of one proxy: one (domain, channel), its options, the
 * ring, the endpoint and the bytes held; and the log line every part writes.
 *
 * xenchan-proxy.c parses the options, sets up and runs the loop (and defines
 * plog, proxy_new and proxy_free); relay.c maps the ring and moves bytes;
 * backend.c follows the xenbus states.  All of it works on one struct proxy:
 * no other state.
 */
#ifndef XENCHAN_PROXY_H
#define XENCHAN_PROXY_H

#include <stdbool.h>
#include <sys/types.h>
#include <time.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "endpoint.h"
#include "held.h"
#include "log.h"
#include "ring.h"
#include "transcript.h"
#include "xs.h"

enum mode { MODE_SERVE, MODE_CREATE, MODE_REMOVE, MODE_LIST };

struct options {
	enum mode command;
	const char *domain, *channel;
	char *split_arg;                 /* DOMAIN:CHANNEL, split in a copy */
	enum endpoint_kind kind;
	const char *path;                /* socket path or pty link */
	mode_t mode;
	unsigned backend_domid;
	const char *transcript;
	unsigned long transcript_max;    /* bytes; 0: no bound */
	unsigned long buffer;
	bool buffer_set;
	bool overflow_keep;
	unsigned create_devid;           /* --devid: 0 for the lowest free */
	const char *user;                /* drop to this user before the loop */
	bool no_seccomp;
	int verbosity;                   /* -1 quiet, 0 default, 1 -v, 2 -vv */
};

enum phase {
	PH_WAITING,     /* InitWait: for ring-ref and port */
	PH_CONNECTED,   /* ring mapped, relaying */
	PH_CLOSING,     /* frontend said Closing; still draining out[] */
	PH_CLOSED,      /* frontend Closed; waiting for it to come back */
	PH_REFUSED,     /* the guest broke the protocol; until it reconnects */
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
	struct timespec start;           /* the current window */
	unsigned events;                 /* notifications held against the guest in it */
	bool masked;                     /* leaving event_port masked until the window ends */
	unsigned long long handled;      /* notifications handled since start */
	unsigned long long idle;         /* ... that changed no index and moved no byte */
	unsigned long long counted;      /* ... of those, held against the guest */
};

struct proxy {
	struct options opt;
	xentoollog_logger_stdiostream *logger;
	struct xs_handle *xs;
	struct xs_channel ch;
	xengnttab_handle *gnt;
	xenevtchn_handle *evt;
	void *page;                      /* the mapped ring, NULL when not */
	evtchn_port_t port;              /* our end of the event channel */
	struct ring_dir out, in;
	enum phase phase;
	struct held held;
	struct held unread;              /* written to the client, maybe unread */
	struct held in_saved;            /* in[] bytes an old frontend never read */
	struct endpoint ep;
	bool client_wr_dead;             /* client cannot take more bytes */
	bool client_reset;               /* it closed with bytes unread */
	bool out_waiting;                /* out[] bytes the client could not take yet */
	int sigfd;
	int xs_fd;                       /* xs_fileno, taken once: it locks */
	struct transcript tr;
	int notify_fd;                   /* connected to $NOTIFY_SOCKET, or -1 */
	unsigned long long out_total;    /* bytes taken from out[] since start */
	unsigned long long in_total;     /* bytes put into in[] since start */
	unsigned long long discarded;
	struct repeat rep_discard, rep_refuse, rep_keep, rep_storm, rep_retry;
	struct repeat rep_transcript, rep_connect;   /* a client's faults, not the guest's */
	struct log_budget guest_lines;   /* plog_guest: what a guest's state changes log */
	char toolstack_path[XS_PATH_MAX];  /* the endpoint the backend nodes name */
	int event_port;                  /* delivered and still masked, or -1 */
	struct storm storm;
	int retry_ms;                    /* backoff of the Connected retry; 0 once it worked */
	bool retry_armed;                /* look at the states again retry_ms after retry_start */
	struct timespec retry_start;
	bool notify_due;
	bool in_full;                    /* in[] had no room for the client's bytes */
	bool in_filled;                  /* the last pump_in filled in[] to the brim */
	unsigned long long caught_up;    /* rounds of catch_up (xenchan-proxy.c) that found more */
	bool created;                    /* we hot-plugged it: unplug on stop */
	bool ready_sent;                 /* systemd has had READY=1 */
	bool draining;                   /* stopping once the client has what is held */
	struct timespec drain_start;     /* ... or once STOP_DRAIN_MS have passed */
	bool stop;
	int exit_code;
};

struct proxy *proxy_new(void);
void proxy_free(struct proxy *p);

/* One line to the logger: "domain 7 (web1) channel NAME: " and the message,
 * with errnoval's text unless it is -1. */
void plog(struct proxy *p, xentoollog_level level, int errnoval,
	  const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A line the guest causes each time it changes state (connected, released,
 * backend state...), which it may do thousands of times a second: within
 * p->guest_lines' budget (log.h) at every verbosity.  Repeated refusals use
 * repeat_log instead: 1st, 2nd, 4th... */
void plog_guest(struct proxy *p, xentoollog_level level, int errnoval,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
