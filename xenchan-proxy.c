/*
 * xenchan-proxy - serve one Xen PV channel of one domain.
 *
 * One process per (domain, channel): find the channel in xenstore, act as
 * its xenbus backend, map the guest's console ring, bind its event channel,
 * and relay bytes between the ring and one dom0 endpoint (a Unix socket we
 * listen on or connect to, a pty, or stdio) until the domain dies.
 * Protocol: docs/protocol.md.  One poll loop; nothing wakes us but an event
 * channel notification, the endpoint, xenstore watches and signals.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "endpoint.h"
#include "held.h"
#include "hotplug.h"
#include "ring.h"
#include "sandbox.h"
#include "systemd.h"
#include "xs.h"

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif

#define DEFAULT_LIMIT     (1UL << 20)   /* libxl's "limit" node */
#define FINAL_DRAIN_MS    5000          /* give a reading client this long at the end */
/* A guest may notify far more often than it makes progress.  More than
 * STORM_EVENTS notifications that move no byte within STORM_WINDOW_MS leave
 * the port masked until the window ends: the storm costs us at most
 * STORM_EVENTS wakeups per window, and a timer exists only while it lasts. */
#define STORM_EVENTS      256
#define STORM_WINDOW_MS   100
/* A failed write of backend Connected is retried after 50 ms, doubling to 5 s:
 * the frontend waits for it and writes nothing that would wake us. */
#define RETRY_FIRST_MS    50
#define RETRY_MAX_MS      5000

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
	int sigfd;
	int xs_fd;                       /* xs_fileno, taken once: it locks */
	int transcript_fd;
	unsigned long long out_total;    /* bytes taken from out[] since start */
	unsigned long long in_total;     /* bytes put into in[] since start */
	unsigned long long discarded;
	struct repeat rep_discard, rep_refuse, rep_keep, rep_storm, rep_retry;
	int event_port;                  /* delivered and still masked, or -1 */
	struct timespec storm_start;     /* the current storm window */
	unsigned storm_events;           /* notifications without progress in it */
	bool storm_masked;               /* leaving event_port masked until the window ends */
	int retry_ms;                    /* backoff of the Connected retry; 0 once it worked */
	bool retry_armed;                /* look at the states again retry_ms after retry_start */
	struct timespec retry_start;
	bool notify_due;
	bool in_full;                    /* in[] had no room for the client's bytes */
	bool created;                    /* we hot-plugged it: unplug on stop */
	bool ready_sent;                 /* systemd has had READY=1 */
	bool stop;
	int exit_code;
};

/* ---- logging --------------------------------------------------------------- */

static void plog(struct proxy *p, xentoollog_level level, int errnoval,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void plog(struct proxy *p, xentoollog_level level, int errnoval,
		 const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (p->ch.fe[0])
		xtl_log((xentoollog_logger *)p->logger, level, errnoval, "xenchan-proxy",
			"domain %u%s%s%s channel %s: %s", p->ch.domid,
			p->ch.domain_name[0] ? " (" : "", p->ch.domain_name,
			p->ch.domain_name[0] ? ")" : "",
			p->ch.name[0] ? p->ch.name : p->opt.channel, msg);
	else
		xtl_log((xentoollog_logger *)p->logger, level, errnoval, "xenchan-proxy",
			"domain %s channel %s: %s", p->opt.domain, p->opt.channel, msg);
}

static bool repeat_log(struct repeat *r)
{
	r->n++;
	return (r->n & (r->n - 1)) == 0;
}

/* ---- options -------------------------------------------------------------- */

static const char usage_text[] =
"usage: xenchan-proxy [options] DOMAIN CHANNEL   (or DOMAIN:CHANNEL)\n"
"       xenchan-proxy --create [options] DOMAIN CHANNEL\n"
"       xenchan-proxy --remove DOMAIN CHANNEL\n"
"       xenchan-proxy --list DOMAIN\n"
"  DOMAIN   domid, or domain name (the /local/domain/*/name node)\n"
"  CHANNEL  channel name (the frontend \"name\" node), or a devid number\n"
"  -l, --listen PATH      create a listening Unix socket; one client at a time\n"
"  -c, --connect PATH     connect to a Unix socket; retry with capped backoff\n"
"  -p, --pty[=LINK]       allocate a pty, publish it in the frontend \"tty\" node\n"
"  -s, --stdio            relay standard input and output\n"
"  (none of these)        use the backend's \"connection\"/\"path\" nodes\n"
"  -m, --mode MODE        permissions of a created socket (default 0600)\n"
"  -b, --backend-domid N  the backend domain (default 0)\n"
"  -t, --transcript FILE  append both directions to FILE, with marks\n"
"      --buffer SIZE      bytes held for an absent or slow client\n"
"                         (default: the frontend's \"limit\" node)\n"
"      --overflow-data discard|keep  beyond that bound (default discard)\n"
"      --create           hot-plug CHANNEL on the running domain; unplug it on exit\n"
"      --devid N          with --create: at devid N (1-9), as before a save\n"
"      --remove           unplug a hot-plugged CHANNEL (its proxy does it, or this)\n"
"      --list             show DOMAIN's channels, their states and servers\n"
"  -u, --user USER        run the relay loop as USER (and its groups)\n"
"      --no-seccomp       do not install the system-call filter (debugging)\n"
"  -v, --verbose (repeat for more), -q, --quiet, -h, --help, -V, --version\n";

static int usage(const char *why)
{
	if (why)
		fprintf(stderr, "xenchan-proxy: %s\n", why);
	fputs(usage_text, stderr);
	return EX_USAGE;
}

/* SIZE: bytes, with an optional K, M or G suffix (powers of 1024). */
static bool parse_size(const char *s, unsigned long *out)
{
	char num[32];
	size_t n = strlen(s);
	unsigned shift = 0;

	if (n == 0 || n >= sizeof(num))
		return false;
	memcpy(num, s, n + 1);
	switch (num[n - 1]) {
	case 'K': case 'k': shift = 10; break;
	case 'M': case 'm': shift = 20; break;
	case 'G': case 'g': shift = 30; break;
	}
	if (shift)
		num[n - 1] = '\0';
	if (!xs_parse_uint(num, (1UL << 40) >> shift, out))
		return false;
	*out <<= shift;
	return true;
}

static int set_endpoint(struct options *o, enum endpoint_kind kind, const char *path)
{
	if (o->kind != EP_NONE)
		return usage("choose one of --listen, --connect, --pty, --stdio");
	o->kind = kind;
	o->path = path;
	return 0;
}

/* DOMAIN CHANNEL, or one DOMAIN:CHANNEL (a systemd instance name), or
 * DOMAIN alone for --list. */
static int parse_operands(struct options *o, int n, char **arg)
{
	char *colon;

	if (o->command == MODE_LIST) {
		if (n != 1)
			return usage("--list takes DOMAIN");
		o->domain = arg[0];
		o->channel = "";
		return 0;
	}
	if (n == 2) {
		o->domain = arg[0];
		o->channel = arg[1];
		return 0;
	}
	if (n == 1 && (colon = strchr(arg[0], ':')) != NULL && colon != arg[0] && colon[1]) {
		o->split_arg = strdup(arg[0]);
		if (o->split_arg == NULL)
			return EX_OSERR;
		o->split_arg[colon - arg[0]] = '\0';
		o->domain = o->split_arg;
		o->channel = o->split_arg + (colon - arg[0]) + 1;
		return 0;
	}
	return usage("expected DOMAIN and CHANNEL");
}

static int parse_options(struct options *o, int argc, char **argv)
{
	enum { OPT_BUFFER = 256, OPT_OVERFLOW, OPT_CREATE, OPT_DEVID, OPT_REMOVE, OPT_LIST,
	       OPT_NO_SECCOMP };
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "connect", required_argument, NULL, 'c' },
		{ "pty", optional_argument, NULL, 'p' },
		{ "stdio", no_argument, NULL, 's' },
		{ "mode", required_argument, NULL, 'm' },
		{ "backend-domid", required_argument, NULL, 'b' },
		{ "transcript", required_argument, NULL, 't' },
		{ "buffer", required_argument, NULL, OPT_BUFFER },
		{ "overflow-data", required_argument, NULL, OPT_OVERFLOW },
		{ "create", no_argument, NULL, OPT_CREATE },
		{ "devid", required_argument, NULL, OPT_DEVID },
		{ "remove", no_argument, NULL, OPT_REMOVE },
		{ "list", no_argument, NULL, OPT_LIST },
		{ "user", required_argument, NULL, 'u' },
		{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned long v;
	int c, r = 0;

	memset(o, 0, sizeof(*o));
	o->mode = 0600;
	while (r == 0 && (c = getopt_long(argc, argv, "l:c:p::sm:b:t:u:vqhV", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': r = set_endpoint(o, EP_LISTEN, optarg); break;
		case 'c': r = set_endpoint(o, EP_CONNECT, optarg); break;
		case 'p': r = set_endpoint(o, EP_PTY, optarg); break;
		case 's': r = set_endpoint(o, EP_STDIO, NULL); break;
		case 'm':
			if (optarg[0] < '0' || optarg[0] > '7' || strspn(optarg, "01234567") != strlen(optarg)
			    || (v = strtoul(optarg, NULL, 8)) > 0777)
				return usage("--mode takes octal permissions, such as 0660");
			o->mode = v;
			break;
		case 'b':
			if (!xs_parse_uint(optarg, 0x7fef, &v))
				return usage("--backend-domid takes a domid");
			o->backend_domid = v;
			break;
		case 't': o->transcript = optarg; break;
		case OPT_BUFFER:
			if (!parse_size(optarg, &o->buffer))
				return usage("--buffer takes a size in bytes (K, M, G suffixes)");
			o->buffer_set = true;
			break;
		case OPT_OVERFLOW:
			if (strcmp(optarg, "keep") != 0 && strcmp(optarg, "discard") != 0)
				return usage("--overflow-data takes discard or keep");
			o->overflow_keep = strcmp(optarg, "keep") == 0;
			break;
		case OPT_CREATE: o->command = MODE_CREATE; break;
		case OPT_DEVID:
			if (!xs_parse_uint(optarg, 9, &v) || v == 0)
				return usage("--devid takes a devid from 1 to 9 (hvc_xen reads one digit)");
			o->create_devid = v;
			break;
		case OPT_REMOVE: o->command = MODE_REMOVE; break;
		case OPT_LIST: o->command = MODE_LIST; break;
		case 'u': o->user = optarg; break;
		case OPT_NO_SECCOMP: o->no_seccomp = true; break;
		case 'v': o->verbosity++; break;
		case 'q': o->verbosity = -1; break;
		case 'h': fputs(usage_text, stdout); return -1;
		case 'V': printf("xenchan-proxy %s\n", XENCHAN_VERSION); return -1;
		default: return usage(NULL);
		}
	}
	if (r != 0)
		return r;
	if (o->create_devid && o->command != MODE_CREATE)
		return usage("--devid goes with --create");
	return parse_operands(o, argc - optind, argv + optind);
}

/* ---- transcript ------------------------------------------------------------ */

static void transcript_open(struct proxy *p)
{
	if (p->opt.transcript == NULL)
		return;
	if (p->transcript_fd >= 0)
		close(p->transcript_fd);
	p->transcript_fd = open(p->opt.transcript, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (p->transcript_fd < 0)
		plog(p, XTL_ERROR, errno, "open %s", p->opt.transcript);
}

/* One record: "@SECONDS.MICROS DIR LEN\n" then LEN raw bytes and "\n". */
static void transcript_add(struct proxy *p, const char *dir,
			   const struct iovec *iov, int iovcnt, size_t n)
{
	struct iovec rec[4];
	struct timespec ts;
	char head[64];
	int k = 0;

	if (p->transcript_fd < 0 || n == 0)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	rec[k].iov_base = head;
	rec[k++].iov_len = snprintf(head, sizeof(head), "@%lld.%06ld %s %zu\n",
				    (long long)ts.tv_sec, ts.tv_nsec / 1000, dir, n);
	for (int i = 0; i < iovcnt && n > 0; i++) {
		rec[k] = iov[i];
		if (rec[k].iov_len > n)
			rec[k].iov_len = n;
		n -= rec[k++].iov_len;
	}
	rec[k].iov_base = "\n";
	rec[k++].iov_len = 1;
	if (writev(p->transcript_fd, rec, k) < 0 && repeat_log(&p->rep_refuse))
		plog(p, XTL_WARN, errno, "write %s", p->opt.transcript);
}

/* ---- the ring ---------------------------------------------------------------- */

static void ring_release(struct proxy *p)
{
	if (p->page == NULL)
		return;
	xenevtchn_unbind(p->evt, p->port);
	xengnttab_unmap(p->gnt, p->page, 1);
	p->page = NULL;
	p->event_port = -1;
	p->storm_masked = false;
	p->storm_events = 0;
	plog(p, XTL_INFO, -1, "ring released");
}

static void protocol_error(struct proxy *p, const char *what)
{
	if (repeat_log(&p->rep_refuse))
		plog(p, XTL_ERROR, -1, "guest broke the ring protocol (%s): not serving "
		     "this ring until the frontend reconnects (%lu refusals)", what,
		     p->rep_refuse.n);
	ring_release(p);
	p->phase = PH_REFUSED;
}

static void ring_attach(struct proxy *p)
{
	struct xs_ring_info ri;
	struct iovec iov[2];
	int cnt, port;
	char msg[256];

	if (xs_frontend_ring(p->xs, &p->ch, &ri, msg, sizeof(msg)) != XSR_OK) {
		if (repeat_log(&p->rep_refuse))
			plog(p, XTL_WARN, -1, "not connecting: %s", msg);
		return;
	}
	p->page = xengnttab_map_grant_ref(p->gnt, p->ch.domid, ri.ring_ref,
					  PROT_READ | PROT_WRITE);
	if (p->page == NULL) {
		if (repeat_log(&p->rep_refuse))
			plog(p, XTL_ERROR, errno, "xengnttab_map_grant_ref ring-ref %u", ri.ring_ref);
		return;
	}
	port = xenevtchn_bind_interdomain(p->evt, p->ch.domid, ri.port);
	if (port < 0) {
		if (repeat_log(&p->rep_refuse))
			plog(p, XTL_ERROR, errno, "xenevtchn_bind_interdomain port %u", ri.port);
		xengnttab_unmap(p->gnt, p->page, 1);
		p->page = NULL;
		return;
	}
	p->port = port;
	ring_backend_init(p->page, &p->out, &p->in);
	if (ring_readable(&p->out, iov, &cnt) < 0 || ring_writable(&p->in, iov, &cnt) < 0) {
		protocol_error(p, "impossible indices at connect");
		return;
	}
	ring_mark_connected(p->page);
	if (xs_set_backend_state(p->xs, &p->ch, XB_CONNECTED) != XSR_OK) {
		p->retry_ms = p->retry_ms ? p->retry_ms * 2 : RETRY_FIRST_MS;
		if (p->retry_ms > RETRY_MAX_MS)
			p->retry_ms = RETRY_MAX_MS;
		p->retry_armed = true;
		clock_gettime(CLOCK_MONOTONIC, &p->retry_start);
		if (repeat_log(&p->rep_retry))
			plog(p, XTL_ERROR, errno, "xs_write %s/state = Connected (retrying in %d ms; "
			     "%lu failures)", p->ch.be, p->retry_ms, p->rep_retry.n);
		ring_release(p);
		return;
	}
	p->retry_ms = 0;
	p->phase = PH_CONNECTED;
	p->notify_due = true;   /* the guest may be waiting on a full ring */
	if (!p->ready_sent) {
		systemd_notify("READY=1\nSTATUS=connected");
		p->ready_sent = true;
	}
	plog(p, XTL_INFO, -1, "connected: ring-ref %u, port %u (ours %d), %u bytes waiting",
	     ri.ring_ref, ri.port, port, *p->out.prod - p->out.local);
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

static bool client_writable(const struct proxy *p)
{
	return endpoint_has_client(&p->ep) && !p->client_wr_dead;
}

/* A write to the client failed for good: it is gone for writing. */
static void client_write_failed(struct proxy *p, int err)
{
	if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR)
		return;
	plog(p, XTL_INFO, err, "client write");
	p->client_wr_dead = true;
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

	if (endpoint_unread(&p->ep, &u) && u < p->unread.len)
		held_drop(&p->unread, p->unread.len - u);
}

static void unread_add(struct proxy *p, const struct iovec *iov, int cnt, size_t n)
{
	if (!endpoint_is_socket(&p->ep))
		return;
	if (n > held_room(&p->unread))
		unread_look(p);
	if (n > held_room(&p->unread))   /* older bytes are surely read by now */
		held_drop(&p->unread, n - held_room(&p->unread));
	held_put(&p->unread, iov, cnt, n);
}

static void unread_replay(struct proxy *p)
{
	struct held merged;
	struct iovec iov[2];
	int cnt;

	if (!p->client_reset || p->unread.len == 0) {
		held_free(&p->unread);
		return;
	}
	held_init(&merged, p->unread.len + p->held.len);
	held_peek(&p->unread, iov, &cnt);
	held_put(&merged, iov, cnt, p->unread.len);
	held_peek(&p->held, iov, &cnt);
	held_put(&merged, iov, cnt, p->held.len);
	plog(p, XTL_INFO, -1, "client left up to %zu bytes unread: the next client gets "
	     "them again, ahead of %zu held", p->unread.len, p->held.len);
	merged.bound = p->held.bound;   /* may hold more than the bound until drained */
	held_free(&p->held);
	held_free(&p->unread);
	p->held = merged;
}

/* Deliver held bytes, oldest first. */
static void flush_held(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;
	ssize_t w;

	if (p->held.len == 0 || !client_writable(p))
		return;
	held_peek(&p->held, iov, &cnt);
	w = writev(p->ep.wfd, iov, cnt);
	if (w > 0) {
		unread_add(p, iov, cnt, w);
		held_drop(&p->held, w);
	} else if (w < 0) {
		client_write_failed(p, errno);
	}
}

static void discard(struct proxy *p, size_t n, unsigned long long offset)
{
	p->discarded += n;
	if (repeat_log(&p->rep_discard))
		plog(p, XTL_WARN, -1, "discarded %zu bytes from the guest at stream offset %llu: "
		     "client %s and %zu bytes already held (total discarded %llu)", n, offset,
		     client_writable(p) ? "slow" : "absent", p->held.len, p->discarded);
}

/* Guest to client: straight from out[] when nothing is held and the client
 * takes it; otherwise behind what is held; beyond the bound, discard or
 * (keep) leave it in the ring for the guest to wait on. */
static void pump_out(struct proxy *p)
{
	struct iovec iov[2], rest[2];
	ssize_t avail, w;
	size_t taken = 0;
	int cnt, rcnt;

	if (p->page == NULL || (p->phase != PH_CONNECTED && p->phase != PH_CLOSING))
		return;
	avail = ring_readable(&p->out, iov, &cnt);
	if (avail <= 0) {
		if (avail < 0)
			protocol_error(p, "out_prod runs more than out[] ahead of out_cons");
		return;
	}
	if (p->held.len == 0 && client_writable(p)) {
		w = writev(p->ep.wfd, iov, cnt);
		if (w > 0) {
			taken = w;
			unread_add(p, iov, cnt, w);
		} else {
			client_write_failed(p, errno);
		}
	}
	if (taken < (size_t)avail) {
		memcpy(rest, iov, sizeof(rest));
		rcnt = cnt;
		iov_advance(rest, &rcnt, taken);
		taken += held_put(&p->held, rest, rcnt, avail - taken);
	}
	if (taken < (size_t)avail && !p->opt.overflow_keep) {
		discard(p, avail - taken, p->out_total + taken);
		taken = avail;
	} else if (taken < (size_t)avail && repeat_log(&p->rep_keep)) {
		plog(p, XTL_WARN, -1, "buffer of %zu bytes full: the guest waits (overflow keep)",
		     p->held.bound);
	}
	if (taken == 0)
		return;
	transcript_add(p, "out", iov, cnt, taken);
	ring_consume(&p->out, taken);
	p->out_total += taken;
	p->notify_due = true;
	if (p->opt.verbosity >= 2)
		plog(p, XTL_DETAIL, -1, "guest>dom0 %zu bytes, to offset %llu (%zu held, %llu discarded)",
		     taken, p->out_total, p->held.len, p->discarded);
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
	p->notify_due = true;
}

/* Client to guest: straight into the free part of in[]; when in[] is full
 * we simply do not read the client (backpressure). */
static void pump_in(struct proxy *p)
{
	struct iovec iov[2];
	ssize_t room, r;
	int cnt;

	if (p->page == NULL || p->phase != PH_CONNECTED)
		return;
	room = ring_writable(&p->in, iov, &cnt);
	p->in_full = room == 0;
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
	r = readv(p->ep.rfd, iov, cnt);
	if (r > 0) {
		transcript_add(p, "in", iov, cnt, r);
		ring_produce(&p->in, r);
		p->in_total += r;
		p->notify_due = true;
		if (p->opt.verbosity >= 2)
			plog(p, XTL_DETAIL, -1, "dom0>guest %zd bytes, to offset %llu", r, p->in_total);
	} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
		/* EOF (or a reset): everything the client sent is in the ring.
		 * It may still read (a half-close). */
		p->ep.read_eof = true;
		p->client_reset |= r < 0 && errno == ECONNRESET;
		plog(p, XTL_INFO, r == 0 ? -1 : errno, "client closed its sending side");
	}
}

static bool want_client_read(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;

	return p->page != NULL && p->phase == PH_CONNECTED && endpoint_has_client(&p->ep)
		&& !p->ep.read_eof && p->in_saved.len == 0
		&& ring_writable(&p->in, iov, &cnt) != 0;   /* room, or a bad index to report */
}

static void notify_guest(struct proxy *p)
{
	if (p->notify_due && p->page != NULL)
		xenevtchn_notify(p->evt, p->port);
	p->notify_due = false;
}

/* ---- the backend state machine ------------------------------------------------ */

static void set_backend_state(struct proxy *p, enum xb_state s)
{
	enum xs_result r = xs_set_backend_state(p->xs, &p->ch, s);

	if (r == XSR_OK)
		plog(p, XTL_INFO, -1, "backend state %s", xb_state_name(s));
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
		plog(p, XTL_INFO, -1, "kept %zd bytes the guest had not read for its next ring", n);
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

static void follow_states(struct proxy *p);

static void on_xenstore(struct proxy *p)
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
static void follow_states(struct proxy *p)
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
			plog(p, XTL_WARN, -1, "frontend directory vanished: not serving it");
		drain_and_release(p);
		p->phase = PH_WAITING;
		return;
	}
	if (p->phase == PH_REFUSED && fs != XB_INITIALISED && fs != XB_CONNECTED)
		p->phase = PH_WAITING;   /* it reconnects: give it a new chance */
	follow_frontend(p, fs, bs);
}

/* ---- setup -------------------------------------------------------------------- */

/* --create: make the channel, or take over a stale one of that name. */
static int create_channel(struct proxy *p)
{
	const char *conn = p->opt.kind == EP_LISTEN ? "socket" : p->opt.kind == EP_CONNECT
		? "connect" : p->opt.kind == EP_PTY ? "pty" : "stdio";
	char msg[256];
	unsigned existing = 0;
	enum xs_result r;

	p->ch.devid = p->opt.create_devid;
	r = xs_create_channel(p->xs, &p->ch, p->opt.channel,
			      p->opt.buffer_set ? p->opt.buffer : DEFAULT_LIMIT, conn,
			      endpoint_socket_path(&p->ep), &existing, msg, sizeof(msg));
	if (r == XSR_OK) {
		p->created = true;
		plog(p, XTL_INFO, -1, "created %s", p->ch.fe);
		return 0;
	}
	if (r == XSR_AMBIGUOUS && p->opt.create_devid && p->opt.create_devid != existing) {
		snprintf(msg, sizeof(msg), "channel %s exists at devid %u, not %u",
			 p->opt.channel, existing, p->opt.create_devid);
	} else if (r == XSR_AMBIGUOUS) {
		char devid[16];
		long pid;

		snprintf(devid, sizeof(devid), "%u", existing);
		if (xs_find_channel(p->xs, devid, p->opt.backend_domid, &p->ch, msg, sizeof(msg)) == XSR_OK
		    && xs_channel_is_ours(p->xs, &p->ch)
		    && !hotplug_pid_alive(pid = xs_server_pid(p->xs, &p->ch))) {
			p->created = true;
			plog(p, XTL_WARN, -1, "taking over %s (its proxy %ld is gone)", p->ch.fe, pid);
			return 0;
		}
		snprintf(msg, sizeof(msg), "channel %s exists (devid %u) and is not stale",
			 p->opt.channel, existing);
	}
	plog(p, XTL_ERROR, -1, "--create: %s", msg);
	return EX_CANTCREAT;
}

static int find_channel(struct proxy *p)
{
	char msg[768];
	enum xs_result r;

	r = xs_find_domain(p->xs, p->opt.domain, &p->ch, msg, sizeof(msg));
	if (r == XSR_OK && p->opt.command == MODE_LIST)
		return 0;
	if (r == XSR_OK && p->opt.command == MODE_CREATE) {
		p->ch.backend_domid = p->opt.backend_domid;
		return 0;   /* created once the endpoint is open */
	}
	if (r == XSR_OK)
		r = xs_find_channel(p->xs, p->opt.channel, p->opt.backend_domid, &p->ch,
				    msg, sizeof(msg));
	if (r != XSR_OK) {   /* missing, ambiguous, or console 0 */
		plog(p, XTL_ERROR, -1, "%s", msg);
		return r == XSR_FAILED ? EX_UNAVAILABLE : EX_NOINPUT;
	}
	r = xs_check_channel(p->xs, &p->ch, msg, sizeof(msg));
	if (r == XSR_OK)
		return 0;
	plog(p, XTL_ERROR, -1, "%s", msg);
	return EX_DATAERR;
}

/* No endpoint option: use what the toolstack wrote in the backend. */
static int toolstack_endpoint(struct proxy *p, char *path, size_t pathlen)
{
	char conn[16];

	if (xs_backend_connection(p->xs, &p->ch, conn, sizeof(conn), path, pathlen) != XSR_OK) {
		plog(p, XTL_ERROR, -1, "no endpoint option, and %s/connection and path "
		     "name no socket or pty", p->ch.be);
		return EX_CONFIG;
	}
	if (strcmp(conn, "socket") == 0) {
		p->opt.kind = EP_LISTEN;
		p->opt.path = path;
	} else {
		p->opt.kind = EP_PTY;
		p->opt.path = NULL;
	}
	return 0;
}

static int open_endpoint(struct proxy *p)
{
	int r;

	endpoint_init(&p->ep, p->opt.kind, p->opt.path, p->opt.mode);
	if (p->opt.kind == EP_LISTEN && p->opt.path == NULL)
		endpoint_adopt_listener(&p->ep, SYSTEMD_LISTEN_FDS_START);
	r = endpoint_open(&p->ep);
	if (r != 0)
		plog(p, XTL_ERROR, -1, "%s", p->ep.err);
	return r;
}

/* For xl console -t pv: the pty's path in the frontend "tty" node. */
static void publish_tty(struct proxy *p)
{
	if (p->opt.kind == EP_PTY && xs_set_frontend_tty(p->xs, &p->ch, p->ep.pty_name) != XSR_OK)
		plog(p, XTL_WARN, errno, "xs_write %s/tty", p->ch.fe);
}

static const char *endpoint_name(struct proxy *p)
{
	switch (p->opt.kind) {
	case EP_LISTEN: return p->opt.path ? p->opt.path : "a socket passed by systemd";
	case EP_CONNECT: return p->opt.path;
	case EP_PTY: return p->ep.pty_name;
	default: return "stdio";
	}
}

/* The signals the loop reads from a signalfd; blocked before anything else,
 * so a SIGTERM during setup is handled as a clean stop, not a kill. */
static void block_signals(sigset_t *set)
{
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGHUP);
	sigprocmask(SIG_BLOCK, set, NULL);
}

static int open_signals(struct proxy *p)
{
	sigset_t set;

	block_signals(&set);
	p->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (p->sigfd < 0) {
		plog(p, XTL_ERROR, errno, "signalfd");
		return EX_OSERR;
	}
	return 0;
}

static int open_xen(struct proxy *p)
{
	xentoollog_logger *lg = (xentoollog_logger *)p->logger;

	p->xs = xs_open(0);
	if (p->xs == NULL) {
		plog(p, XTL_ERROR, errno, "xs_open (is xenstored running?)");
		return EX_UNAVAILABLE;
	}
	p->gnt = xengnttab_open(lg, 0);
	if (p->gnt == NULL) {
		plog(p, XTL_ERROR, errno, "xengnttab_open");
		return EX_UNAVAILABLE;
	}
	p->evt = xenevtchn_open(lg, 0);
	if (p->evt == NULL) {
		plog(p, XTL_ERROR, errno, "xenevtchn_open");
		return EX_UNAVAILABLE;
	}
	return 0;
}

static void buffer_bound(struct proxy *p)
{
	unsigned long limit = DEFAULT_LIMIT;

	if (p->opt.buffer_set)
		limit = p->opt.buffer;
	else if (!xs_frontend_limit(p->xs, &p->ch, &limit))
		limit = DEFAULT_LIMIT;
	held_init(&p->held, limit);
}

/* Announce ourselves as the backend, or reattach to a live channel. */
static int start_backend(struct proxy *p)
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

struct proxy *proxy_new(void)
{
	struct proxy *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->sigfd = p->transcript_fd = p->event_port = -1;
	endpoint_init(&p->ep, EP_NONE, NULL, 0);
	return p;
}

void proxy_free(struct proxy *p)
{
	ring_release(p);
	endpoint_close(&p->ep);
	held_free(&p->held);
	held_free(&p->unread);
	held_free(&p->in_saved);
	if (p->evt)
		xenevtchn_close(p->evt);
	if (p->gnt)
		xengnttab_close(p->gnt);
	if (p->xs)
		xs_close(p->xs);
	if (p->sigfd >= 0)
		close(p->sigfd);
	if (p->transcript_fd >= 0)
		close(p->transcript_fd);
	if (p->logger)
		xtl_logger_destroy((xentoollog_logger *)p->logger);
	free(p->opt.split_arg);
	free(p);
}

/* ---- the loop ----------------------------------------------------------------- */

enum { PFD_SIG, PFD_XS, PFD_EVT, PFD_LISTEN, PFD_CLIENT_R, PFD_CLIENT_W, PFD_N };

static void on_signal(struct proxy *p)
{
	struct signalfd_siginfo si;

	while (read(p->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			transcript_open(p);
			continue;
		}
		plog(p, XTL_INFO, -1, "signal %d: stopping (backend state left as it is)",
		     (int)si.ssi_signo);
		p->stop = true;
	}
}

static void on_event(struct proxy *p)
{
	int port = xenevtchn_pending(p->evt);

	if (port >= 0)
		p->event_port = port;
}

static long ms_left(const struct timespec *start, long window_ms)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return window_ms - ((now.tv_sec - start->tv_sec) * 1000
			    + (now.tv_nsec - start->tv_nsec) / 1000000);
}

/* After a pass that began with a notification: unmask the port, unless the
 * guest is storming (see STORM_EVENTS). */
static void settle_event(struct proxy *p, bool progress)
{
	if (p->event_port < 0)
		return;
	if (!p->storm_masked && !progress) {
		if (p->storm_events == 0 || ms_left(&p->storm_start, STORM_WINDOW_MS) <= 0) {
			clock_gettime(CLOCK_MONOTONIC, &p->storm_start);
			p->storm_events = 0;
		}
		if (++p->storm_events > STORM_EVENTS) {
			p->storm_masked = true;
			if (repeat_log(&p->rep_storm))
				plog(p, XTL_WARN, -1, "event storm: more than %d notifications without "
				     "data in %d ms; throttling (%lu storms)", STORM_EVENTS,
				     STORM_WINDOW_MS, p->rep_storm.n);
		}
	}
	if (p->storm_masked) {
		if (ms_left(&p->storm_start, STORM_WINDOW_MS) > 0)
			return;
		p->storm_masked = false;   /* the window is over: a fresh count */
		p->storm_events = 0;
	}
	if (p->page != NULL)
		xenevtchn_unmask(p->evt, p->event_port);
	p->event_port = -1;
}

/* Build the poll set; returns the poll timeout (-1: none, as when idle). */
static int poll_setup(struct proxy *p, struct pollfd *pfd)
{
	bool client = endpoint_has_client(&p->ep);
	bool ending = p->phase == PH_ENDING;
	int timeout = -1;

	for (int i = 0; i < PFD_N; i++)
		pfd[i] = (struct pollfd){ .fd = -1 };
	pfd[PFD_SIG] = (struct pollfd){ .fd = p->sigfd, .events = POLLIN };
	if (!ending) {
		pfd[PFD_XS] = (struct pollfd){ .fd = p->xs_fd, .events = POLLIN };
		if (p->page != NULL)
			pfd[PFD_EVT] = (struct pollfd){ .fd = xenevtchn_fd(p->evt), .events = POLLIN };
		if (p->ep.kind == EP_LISTEN && !client)
			pfd[PFD_LISTEN] = (struct pollfd){ .fd = p->ep.listen_fd, .events = POLLIN };
		if (want_client_read(p))
			pfd[PFD_CLIENT_R] = (struct pollfd){ .fd = p->ep.rfd, .events = POLLIN };
	}
	if (client && !p->client_wr_dead)
		pfd[PFD_CLIENT_W] = (struct pollfd){ .fd = p->ep.wfd,
			.events = p->held.len ? POLLOUT : 0 };
	if (p->ep.kind == EP_CONNECT && !client && !ending)
		timeout = p->ep.retry_ms;
	if (ending)
		timeout = FINAL_DRAIN_MS;
	if (p->storm_masked) {
		long left = ms_left(&p->storm_start, STORM_WINDOW_MS);
		left = left < 0 ? 0 : left;
		timeout = timeout < 0 || left < timeout ? (int)left : timeout;
	}
	if (p->retry_armed && !ending) {
		long left = ms_left(&p->retry_start, p->retry_ms);
		left = left < 0 ? 0 : left;
		timeout = timeout < 0 || left < timeout ? (int)left : timeout;
	}
	return timeout;
}

static void on_client_gone(struct proxy *p)
{
	p->client_reset |= endpoint_client_reset(&p->ep);
	unread_replay(p);
	plog(p, XTL_INFO, -1, "client gone (%zu bytes held for the next)", p->held.len);
	p->client_wr_dead = p->client_reset = false;
	if (!endpoint_drop_client(&p->ep))
		p->stop = true;   /* stdio: nobody to serve any more */
}

static void on_client_ready(struct proxy *p, const struct pollfd *pfd)
{
	if (pfd[PFD_CLIENT_W].revents & (POLLHUP | POLLERR))
		p->client_wr_dead = true;
	if (pfd[PFD_CLIENT_R].revents & (POLLHUP | POLLERR))
		pump_in(p);   /* read what it sent before hanging up */
	/* Drop the client once it can neither send nor take bytes. */
	if (p->client_wr_dead && (p->ep.read_eof || p->page == NULL || p->ep.kind == EP_STDIO))
		on_client_gone(p);
}

static void new_client(struct proxy *p, bool ok)
{
	if (ok)
		held_init(&p->unread, 2 * p->ep.sndbuf);
	if (ok)
		plog(p, XTL_INFO, -1, "client connected (%zu bytes held for it)", p->held.len);
	else if (p->ep.kind == EP_CONNECT && repeat_log(&p->rep_refuse))
		plog(p, XTL_INFO, -1, "%s; retrying in %d ms", p->ep.err, p->ep.retry_ms);
}

static void loop_once(struct proxy *p)
{
	struct pollfd pfd[PFD_N];
	int timeout = poll_setup(p, pfd);
	int n = poll(pfd, PFD_N, timeout);

	if (n < 0) {
		if (errno != EINTR) {
			plog(p, XTL_ERROR, errno, "poll");
			p->stop = true;
			p->exit_code = EX_OSERR;
		}
		return;
	}
	if (pfd[PFD_SIG].revents)
		on_signal(p);
	if (pfd[PFD_XS].revents)
		on_xenstore(p);
	if (p->retry_armed && p->phase != PH_ENDING && ms_left(&p->retry_start, p->retry_ms) <= 0)
		follow_states(p);
	if (pfd[PFD_EVT].revents && p->page != NULL)
		on_event(p);
	if (pfd[PFD_LISTEN].revents)
		new_client(p, endpoint_accept(&p->ep));
	if (n == 0 && p->ep.kind == EP_CONNECT && !endpoint_has_client(&p->ep))
		new_client(p, endpoint_connect(&p->ep));
	flush_held(p);
	pump_out(p);
	/* Read the client only when it has bytes, or when the guest may have
	 * made room in a full in[]: no readv that can only say EAGAIN. */
	if ((pfd[PFD_CLIENT_R].revents & POLLIN) || (p->event_port >= 0 && p->in_full)
	    || p->in_saved.len > 0)
		pump_in(p);
	settle_event(p, p->notify_due);
	notify_guest(p);
	if (endpoint_has_client(&p->ep))
		on_client_ready(p, pfd);
	/* At the end, a client gets FINAL_DRAIN_MS without progress to take
	 * what is held. */
	if (p->phase == PH_ENDING && (p->held.len == 0 || !client_writable(p) || n == 0))
		p->stop = true;
}

/* Which endpoint: an option, else a socket systemd passed, else (not for
 * --create) what the toolstack wrote in the backend directory. */
static int choose_endpoint(struct proxy *p, char *path, size_t len)
{
	int n = systemd_listen_fds();

	if (p->opt.kind != EP_NONE) {
		if (n > 0)
			plog(p, XTL_WARN, -1, "ignoring the %d sockets systemd passed: an endpoint "
			     "option was given", n);
		return 0;
	}
	if (n > 0) {
		if (n != 1 || !systemd_is_unix_listener(SYSTEMD_LISTEN_FDS_START)) {
			plog(p, XTL_ERROR, -1, "systemd passed %d sockets; expected one listening "
			     "Unix stream socket", n);
			return EX_CONFIG;
		}
		p->opt.kind = EP_LISTEN;
		p->opt.path = NULL;
		return 0;
	}
	if (p->opt.command == MODE_CREATE)
		return usage("--create needs --listen, --connect, --pty or --stdio "
			     "(or a socket passed by systemd)");
	return toolstack_endpoint(p, path, len);
}

/* Everything privileged is open: become the user, then admit only the
 * loop's system calls. */
static int enter_sandbox(struct proxy *p)
{
	char err[256];
	int r = 0;

	if (p->opt.user && (r = sandbox_drop_user(p->opt.user, err, sizeof(err))) == 0)
		plog(p, XTL_INFO, -1, "running as %s", p->opt.user);
	if (r == 0 && !p->opt.no_seccomp)
		r = sandbox_seccomp(err, sizeof(err));
	if (r != 0)
		plog(p, XTL_ERROR, -1, "%s", err);
	/* Setup's garbage (directory listings, the filter's build) goes back
	 * to the kernel: hundreds of idle instances run on one host. */
	malloc_trim(0);
	return r;
}

static int proxy_setup(struct proxy *p)
{
	static char toolstack_path[XS_PATH_MAX];
	int r;

	if ((r = open_signals(p)) || (r = open_xen(p)) || (r = find_channel(p))
	    || (r = choose_endpoint(p, toolstack_path, sizeof(toolstack_path))))
		return r;
	transcript_open(p);
	/* The endpoint first: a channel we create is never left without one. */
	if ((r = open_endpoint(p)) || (p->opt.command == MODE_CREATE && (r = create_channel(p))))
		return r;
	buffer_bound(p);
	held_init(&p->in_saved, sizeof(((struct xencons_interface *)0)->in));
	publish_tty(p);
	if ((r = start_backend(p)))
		return r;
	if (xs_set_server_pid(p->xs, &p->ch, getpid()) != XSR_OK)
		plog(p, XTL_WARN, errno, "xs_write %s/xenchan-pid", p->ch.be);
	systemd_notify("STATUS=waiting for the guest to connect");
	plog(p, XTL_INFO, -1, "serving %s (backend %s) on %s, holding up to %zu bytes",
	     p->ch.fe, p->ch.be, endpoint_name(p), p->held.bound);
	return enter_sandbox(p);
}

/* Stopping: let go of the ring; a channel we created is unplugged, any
 * other is left exactly as it is, for the next proxy to reattach. */
static void proxy_finish(struct proxy *p)
{
	char msg[256];

	pump_out(p);
	flush_held(p);
	ring_release(p);
	if (p->phase == PH_ENDING || p->xs == NULL || p->ch.be[0] == '\0')
		return;
	systemd_notify("STOPPING=1");
	if (!p->created) {
		xs_set_server_pid(p->xs, &p->ch, 0);
		return;
	}
	if (hotplug_unplug(p->xs, &p->ch, UNPLUG_WAIT_MS, msg, sizeof(msg)) == XSR_FAILED)
		plog(p, XTL_ERROR, errno, "unplug: %s", msg);
	else
		plog(p, XTL_INFO, -1, "%s", msg);
}

/* --list and --remove need only xenstore. */
static int run_command(struct proxy *p)
{
	char msg[512];
	int r;

	p->xs = xs_open(0);
	if (p->xs == NULL) {
		plog(p, XTL_ERROR, errno, "xs_open (is xenstored running?)");
		return EX_UNAVAILABLE;
	}
	if ((r = find_channel(p)) != 0)
		return r;
	if (p->opt.command == MODE_LIST)
		return hotplug_list(p->xs, &p->ch, stdout);
	r = hotplug_remove(p->xs, &p->ch, msg, sizeof(msg));
	plog(p, r ? XTL_ERROR : XTL_INFO, -1, "--remove: %s", msg);
	return r;
}

int main(int argc, char **argv)
{
	struct proxy *p;
	xentoollog_level level;
	sigset_t set;
	int r;

	block_signals(&set);
	p = proxy_new();
	if (p == NULL)
		return EX_OSERR;
	r = parse_options(&p->opt, argc, argv);
	if (r != 0) {
		proxy_free(p);
		return r < 0 ? 0 : r;
	}
	level = p->opt.verbosity < 0 ? XTL_ERROR : p->opt.verbosity == 0 ? XTL_WARN
		: p->opt.verbosity == 1 ? XTL_INFO : XTL_DEBUG;
	p->logger = xtl_createlogger_stdiostream(stderr, level, 0);
	if (p->logger == NULL)
		r = EX_OSERR;
	else if (p->opt.command == MODE_LIST || p->opt.command == MODE_REMOVE)
		r = run_command(p);
	else if ((r = proxy_setup(p)) != 0 && p->created)
		proxy_finish(p);   /* never leave a channel we made behind */
	if (r == 0 && (p->opt.command == MODE_SERVE || p->opt.command == MODE_CREATE)) {
		while (!p->stop)
			loop_once(p);
		proxy_finish(p);
		r = p->exit_code;
	}
	proxy_free(p);
	return r;
}
