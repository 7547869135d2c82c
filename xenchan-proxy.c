/* SPDX-License-Identifier: MIT */
/*
 * xenchan-proxy - serve one Xen PV channel of one domain.
 *
 * One process per (domain, channel): find the channel in xenstore, act as
 * its xenbus backend, map the guest's console ring, bind its event channel,
 * and relay bytes between the ring and one dom0 endpoint (a Unix socket we
 * listen on or connect to, a pty, or stdio) until the domain dies.
 * Protocol: docs/protocol.md.  One poll loop; nothing wakes us but an event
 * channel notification, the endpoint, xenstore watches and signals.
 *
 * This file: the options, setup, the loop and main.  relay.c serves the
 * ring, backend.c follows the xenbus states; proxy.h is what they share.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <unistd.h>

#include "backend.h"
#include "hotplug.h"
#include "log.h"
#include "monotime.h"
#include "nodes.h"
#include "proxy.h"
#include "relay.h"
#include "sandbox.h"
#include "strict.h"
#include "systemd.h"

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif

#define DEFAULT_LIMIT     (1UL << 20)   /* libxl's "limit" node */
#define SIZE_ARG_MAX      (1UL << 40)   /* the largest SIZE an option takes */
#define FINAL_DRAIN_MS    5000          /* give a reading client this long at the end */
#define STOP_DRAIN_MS     5000          /* on a signal, this long in all */
/* A guest may notify far more often than it makes progress.  A notification
 * is progress when a ring index the guest owns (out_prod, in_cons) moved on
 * since we last looked, or when its pass moved bytes; the one after progress
 * is forgiven, since it may be the notification of bytes that pass already
 * saw.  More than STORM_EVENTS of the others within STORM_WINDOW_MS leave
 * the port masked until the window ends: the storm costs us at most
 * STORM_EVENTS wakeups per window, and a timer exists only while it lasts. */
#define STORM_EVENTS      256
#define STORM_WINDOW_MS   100
/* The guest may refill the ring while we work: a Linux writer spins on a
 * full out[], a Linux reader frees in[] 16 bytes at a time.  Before
 * unmasking we look again and serve what it did, at most this many rounds
 * (then the other descriptors get their turn).  Each round saves the poll,
 * pending read and unmask of a wakeup of its own; on real Xen that was 11 to
 * 17 % of the system calls per ring-full (tests/xen/README.md).  No timer
 * and no spin: a round runs only for bytes already there. */
#define CATCH_UP_ROUNDS   8

/* ---- logging --------------------------------------------------------------- */

/* The prefix of every line: "domain 7 (web1) channel NAME" once the channel
 * is found, until then as the command line names it.  Called again
 * whenever a lookup or --create has filled in more of p->ch. */
static void name_log(struct proxy *p)
{
	if (p->ch.fe[0])
		log_name(&p->log, "domain %u%s%s%s channel %s", p->ch.domid,
			 p->ch.domain_name[0] ? " (" : "", p->ch.domain_name,
			 p->ch.domain_name[0] ? ")" : "",
			 p->ch.name[0] ? p->ch.name : p->opt.channel);
	else
		log_name(&p->log, "domain %s channel %s", p->opt.domain ? p->opt.domain : "*",
			 p->opt.channel);
}

/* ---- options -------------------------------------------------------------- */

static const char usage_text[] =
"usage: xenchan-proxy [options] DOMAIN CHANNEL   (or DOMAIN:CHANNEL)\n"
"       xenchan-proxy --create [options] DOMAIN CHANNEL\n"
"       xenchan-proxy --remove DOMAIN CHANNEL\n"
"       xenchan-proxy --list [--json] [DOMAIN]\n"
"  DOMAIN   domid, or domain name (the /local/domain/*/name node)\n"
"  CHANNEL  channel name (the frontend \"name\" node), or a devid number\n"
"  -l, --listen PATH      create a listening Unix socket; one client at a time\n"
"  -c, --connect PATH     connect to a Unix socket; retry with capped backoff\n"
"  -p, --pty[=LINK]       allocate a pty, publish it in the frontend \"tty\" node\n"
"  -s, --stdio            relay standard input and output\n"
"  (none of these)        use the backend's \"connection\"/\"path\" nodes\n"
"  -m, --mode MODE        permissions of a created socket (default 0600)\n"
"  -b, --backend-domid N  the backend domain (default: the one it runs in)\n"
"  -t, --transcript FILE  append both directions to FILE, with marks\n"
"      --transcript-max SIZE  stop recording at SIZE bytes (default 64M; 0: no bound)\n"
"      --buffer SIZE      bytes held for an absent or slow client\n"
"                         (default: the frontend's \"limit\" node)\n"
"      --overflow-data discard|keep  beyond that bound (default discard)\n"
"      --create           hot-plug CHANNEL on the running domain; unplug it on exit\n"
"      --devid N          with --create: at devid N (1-9), as before a save\n"
"      --remove           unplug a hot-plugged CHANNEL (its proxy does it, or this)\n"
"      --list             show DOMAIN's channels (or every domain's), their states,\n"
"                         servers and counters\n"
"      --json             with --list: one JSON document (the man page's schema)\n"
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
	if (!strict_uint(num, SIZE_ARG_MAX >> shift, out))
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
		if (n > 1)
			return usage("--list takes at most DOMAIN");
		o->domain = n ? arg[0] : NULL;
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

enum { OPT_BUFFER = 256, OPT_OVERFLOW, OPT_CREATE, OPT_DEVID, OPT_REMOVE, OPT_LIST, OPT_JSON,
       OPT_NO_SECCOMP, OPT_TRANSCRIPT_MAX };
static const struct option longopts[] = {
	{ "listen", required_argument, NULL, 'l' },
	{ "connect", required_argument, NULL, 'c' },
	{ "pty", optional_argument, NULL, 'p' },
	{ "stdio", no_argument, NULL, 's' },
	{ "mode", required_argument, NULL, 'm' },
	{ "backend-domid", required_argument, NULL, 'b' },
	{ "transcript", required_argument, NULL, 't' },
	{ "transcript-max", required_argument, NULL, OPT_TRANSCRIPT_MAX },
	{ "buffer", required_argument, NULL, OPT_BUFFER },
	{ "overflow-data", required_argument, NULL, OPT_OVERFLOW },
	{ "create", no_argument, NULL, OPT_CREATE },
	{ "devid", required_argument, NULL, OPT_DEVID },
	{ "remove", no_argument, NULL, OPT_REMOVE },
	{ "list", no_argument, NULL, OPT_LIST },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "user", required_argument, NULL, 'u' },
	{ "no-seccomp", no_argument, NULL, OPT_NO_SECCOMP },
	{ "verbose", no_argument, NULL, 'v' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* One option and its argument: 0, a usage exit code, or -1 for --help and
 * --version (done). */
static int take_option(struct options *o, int c, char *arg)
{
	unsigned long v;

	switch (c) {
	case 'l': return set_endpoint(o, EP_LISTEN, arg);
	case 'c': return set_endpoint(o, EP_CONNECT, arg);
	case 'p': return set_endpoint(o, EP_PTY, arg);
	case 's': return set_endpoint(o, EP_STDIO, NULL);
	case 'm':
		if (arg[0] < '0' || arg[0] > '7' || strspn(arg, "01234567") != strlen(arg)
		    || (v = strtoul(arg, NULL, 8)) > 0777)
			return usage("--mode takes octal permissions, such as 0660");
		o->mode = v;
		break;
	case 'b':
		if (!strict_uint(arg, DOMID_MAX, &v))
			return usage("--backend-domid takes a domid");
		o->backend_domid = v;
		o->backend_domid_set = true;
		break;
	case 't': o->transcript = arg; break;
	case OPT_TRANSCRIPT_MAX:
		if (!parse_size(arg, &o->transcript_max))
			return usage("--transcript-max takes a size in bytes (K, M, G suffixes)");
		break;
	case OPT_BUFFER:
		if (!parse_size(arg, &o->buffer))
			return usage("--buffer takes a size in bytes (K, M, G suffixes)");
		o->buffer_set = true;
		break;
	case OPT_OVERFLOW:
		if (strcmp(arg, "keep") != 0 && strcmp(arg, "discard") != 0)
			return usage("--overflow-data takes discard or keep");
		o->overflow_keep = strcmp(arg, "keep") == 0;
		break;
	case OPT_CREATE: o->command = MODE_CREATE; break;
	case OPT_DEVID:
		if (!strict_uint(arg, HOTPLUG_DEVID_LAST, &v) || v < HOTPLUG_DEVID_FIRST)
			return usage("--devid takes a devid from 1 to 9 (hvc_xen reads one digit)");
		o->create_devid = v;
		break;
	case OPT_REMOVE: o->command = MODE_REMOVE; break;
	case OPT_LIST: o->command = MODE_LIST; break;
	case OPT_JSON: o->json = true; break;
	case 'u': o->user = arg; break;
	case OPT_NO_SECCOMP: o->no_seccomp = true; break;
	case 'v': o->verbosity++; break;
	case 'q': o->verbosity = -1; break;
	case 'h': fputs(usage_text, stdout); return -1;
	case 'V': printf("xenchan-proxy %s\n", XENCHAN_VERSION); return -1;
	default: return usage(NULL);
	}
	return 0;
}

static int parse_options(struct options *o, int argc, char **argv)
{
	int c, r = 0;

	memset(o, 0, sizeof(*o));
	o->mode = 0600;
	o->transcript_max = TRANSCRIPT_MAX_DEFAULT;
	while (r == 0 && (c = getopt_long(argc, argv, "l:c:p::sm:b:t:u:vqhV", longopts, NULL)) != -1)
		r = take_option(o, c, optarg);
	if (r != 0)
		return r;
	if (o->create_devid && o->command != MODE_CREATE)
		return usage("--devid goes with --create");
	if (o->json && o->command != MODE_LIST)
		return usage("--json goes with --list");
	return parse_operands(o, argc - optind, argv + optind);
}

/* ---- setup -------------------------------------------------------------------- */

/* Ours, and no process matches its record (pid and start time): a channel
 * whose proxy is gone, which we may take over. */
static bool stale_channel(struct proxy *p, long *pid)
{
	unsigned long long start;

	if (!hotplug_is_ours(p->xs, &p->ch))
		return false;
	*pid = hotplug_read_server(p->xs, &p->ch, &start);
	return hotplug_server(*pid, start) == SERVER_GONE;
}

/* --create: make the channel, or take over a stale one of that name. */
static int create_channel(struct proxy *p)
{
	const char *conn = p->opt.kind == EP_LISTEN ? "socket" : p->opt.kind == EP_CONNECT
		? "connect" : p->opt.kind == EP_PTY ? "pty" : "stdio";
	char msg[256];
	unsigned existing = 0;
	enum store_result r;

	/* F/limit is what libxl writes, not our --buffer: it is the default of
	 * every later proxy of this channel, and one process's choice (say
	 * --buffer 0 with keep) must not become a successor's bound. */
	p->ch.devid = p->opt.create_devid;
	r = hotplug_create(p->xs, &p->ch, p->opt.channel, DEFAULT_LIMIT, conn,
			   endpoint_socket_path(&p->ep), &existing, msg, sizeof(msg));
	name_log(p);
	if (r == STORE_OK) {
		p->created = true;
		log_line(&p->log, XTL_INFO, -1, "created %s", p->ch.fe);
		return 0;
	}
	if (r == STORE_AMBIGUOUS && p->opt.create_devid && p->opt.create_devid != existing) {
		snprintf(msg, sizeof(msg), "channel %s exists at devid %u, not %u",
			 p->opt.channel, existing, p->opt.create_devid);
	} else if (r == STORE_AMBIGUOUS) {
		char devid[16];
		long pid;

		snprintf(devid, sizeof(devid), "%u", existing);
		r = store_find_channel(p->xs, devid, p->opt.backend_domid, &p->ch, msg,
				       sizeof(msg));
		name_log(p);
		if (r == STORE_OK && stale_channel(p, &pid)) {
			p->created = true;
			log_line(&p->log, XTL_WARN, -1, "taking over %s (its proxy %ld is gone)",
				 p->ch.fe, pid);
			return 0;
		}
		snprintf(msg, sizeof(msg), "channel %s exists (devid %u) and is not stale",
			 p->opt.channel, existing);
	}
	log_line(&p->log, XTL_ERROR, -1, "--create: %s", msg);
	return EX_CANTCREAT;
}

/* Which domain do we run in?  In a driver domain B, we serve B's channels
 * (the default --backend-domid) with B's rights: refuse before changing
 * anything what only dom0 may do. */
static int where_we_run(struct proxy *p)
{
	unsigned self;

	if (!store_own_domid(p->xs, &self) || self == 0)
		return 0;   /* dom0 (or a host that does not say): privileged */
	p->ch.unprivileged = true;
	if (!p->opt.backend_domid_set)
		p->opt.backend_domid = self;
	if (p->opt.command == MODE_CREATE || p->opt.command == MODE_REMOVE) {
		log_line(&p->log, XTL_ERROR, -1, "--%s needs dom0: this is domain %u, which may "
			 "not write a guest's device directory (in dom0: xenchan-proxy --%s "
			 "--backend-domid %u ...)",
			 p->opt.command == MODE_CREATE ? "create" : "remove", self,
			 p->opt.command == MODE_CREATE ? "create" : "remove", self);
		return EX_NOPERM;
	}
	if (p->opt.backend_domid != self) {
		log_line(&p->log, XTL_ERROR, -1, "this is domain %u: it serves only the channels "
			 "whose backend it is (--backend-domid %u), not domain %u's",
			 self, self, p->opt.backend_domid);
		return EX_NOPERM;
	}
	return 0;
}

/* --create --backend-domid B from dom0, B a driver domain: the nodes only.
 * The guest grants its ring to B, so only B can serve it: B's xenchan-devd
 * starts the proxy there, on the endpoint written in K. */
static int create_for_driver_domain(struct proxy *p)
{
	const char *conn = p->opt.kind == EP_PTY ? "pty" : "socket";
	char msg[256];
	unsigned existing = 0;

	if (p->opt.kind != EP_PTY && (p->opt.kind != EP_LISTEN || p->opt.path == NULL))
		return usage("--create --backend-domid B (not 0) takes --listen PATH or --pty: "
			     "the endpoint domain B's proxy serves");
	p->ch.devid = p->opt.create_devid;
	if (hotplug_create(p->xs, &p->ch, p->opt.channel, DEFAULT_LIMIT, conn,
			   p->opt.kind == EP_LISTEN ? p->opt.path : NULL, &existing, msg,
			   sizeof(msg)) != STORE_OK) {
		name_log(p);
		log_line(&p->log, XTL_ERROR, -1, "--create: %s", msg);
		return EX_CANTCREAT;
	}
	name_log(p);
	log_line(&p->log, XTL_INFO, -1, "created %s, served from domain %u (by its xenchan-devd)",
		 p->ch.fe, p->ch.backend_domid);
	p->phase = PH_ENDING;   /* nothing of ours to serve or unplug */
	p->stop = true;
	return 0;
}

static int find_channel(struct proxy *p)
{
	char msg[768];
	enum store_result r;

	r = where_we_run(p);
	if (r != 0)
		return r;
	r = store_find_domain(p->xs, p->opt.domain, &p->ch, msg, sizeof(msg));
	if (r == STORE_OK && p->opt.command == MODE_LIST)
		return 0;
	if (r == STORE_OK && p->opt.command == MODE_CREATE) {
		p->ch.backend_domid = p->opt.backend_domid;
		return 0;   /* created once the endpoint is open */
	}
	if (r == STORE_OK)
		r = store_find_channel(p->xs, p->opt.channel, p->opt.backend_domid, &p->ch,
				       msg, sizeof(msg));
	name_log(p);
	if (r != STORE_OK) {   /* missing, ambiguous, or console 0 */
		log_line(&p->log, XTL_ERROR, -1, "%s", msg);
		return r == STORE_FAILED ? EX_UNAVAILABLE : EX_NOINPUT;
	}
	r = store_check_channel(p->xs, &p->ch, msg, sizeof(msg));
	if (r == STORE_OK)
		return 0;
	log_line(&p->log, XTL_ERROR, -1, "%s", msg);
	return EX_DATAERR;
}

/* No endpoint option: use what the toolstack wrote in the backend. */
static int toolstack_endpoint(struct proxy *p, char *path, size_t pathlen)
{
	char conn[16];

	if (store_backend_connection(p->xs, &p->ch, conn, sizeof(conn), path, pathlen)
	    != STORE_OK) {
		log_line(&p->log, XTL_ERROR, -1, "no endpoint option, and %s/connection and path "
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
	struct passwd *pw;
	int r;

	endpoint_init(&p->ep, p->opt.kind, p->opt.path, p->opt.mode);
	if (p->opt.user && (pw = getpwnam(p->opt.user)) != NULL) {
		p->ep.user_uid = pw->pw_uid;   /* trusted with the socket's directory */
		p->ep.user_gid = pw->pw_gid;
	}
	if (p->opt.kind == EP_LISTEN && p->opt.path == NULL)
		endpoint_adopt_listener(&p->ep, SYSTEMD_LISTEN_FDS_START);
	r = endpoint_open(&p->ep);
	if (r != 0)
		log_line(&p->log, XTL_ERROR, -1, "%s", p->ep.err);
	return r;
}

/* For xl console -t pv: the pty's path in the frontend "tty" node. */
static void publish_tty(struct proxy *p)
{
	if (p->opt.kind == EP_PTY
	    && store_set_frontend_tty(p->xs, &p->ch, p->ep.pty_name) != STORE_OK)
		log_line(&p->log, XTL_WARN, errno, "xs_write %s/tty", p->ch.fe);
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
		log_line(&p->log, XTL_ERROR, errno, "signalfd");
		return EX_OSERR;
	}
	return 0;
}

static int open_xen(struct proxy *p)
{
	xentoollog_logger *lg = p->log.logger;

	p->xs = xs_open(0);
	if (p->xs == NULL) {
		log_line(&p->log, XTL_ERROR, errno, "xs_open (is xenstored running?)");
		return EX_UNAVAILABLE;
	}
	p->gnt = xengnttab_open(lg, 0);
	if (p->gnt == NULL) {
		log_line(&p->log, XTL_ERROR, errno, "xengnttab_open");
		return EX_UNAVAILABLE;
	}
	p->evt = xenevtchn_open(lg, 0);
	if (p->evt == NULL) {
		log_line(&p->log, XTL_ERROR, errno, "xenevtchn_open");
		return EX_UNAVAILABLE;
	}
	return 0;
}

static void buffer_bound(struct proxy *p)
{
	unsigned long limit = DEFAULT_LIMIT;

	if (p->opt.buffer_set)
		limit = p->opt.buffer;
	else if (!store_frontend_limit(p->xs, &p->ch, &limit))
		limit = DEFAULT_LIMIT;
	held_init(&p->held, limit);
}


struct proxy *proxy_new(void)
{
	struct proxy *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->sigfd = p->tr.fd = p->notify.fd = p->notify.sent = p->event_port = -1;
	p->log.program = "xenchan-proxy";
	endpoint_init(&p->ep, EP_NONE, NULL, 0);
	stats_init(&p->stats_file);
	return p;
}

void proxy_free(struct proxy *p)
{
	stats_remove(&p->stats_file);
	relay_release(p);
	endpoint_close(&p->ep);
	held_free(&p->held);
	held_free(&p->client.unread);
	held_free(&p->in_saved);
	if (p->evt)
		xenevtchn_close(p->evt);
	if (p->gnt)
		xengnttab_close(p->gnt);
	if (p->xs)
		xs_close(p->xs);
	if (p->sigfd >= 0)
		close(p->sigfd);
	transcript_close(p);
	if (p->notify.fd >= 0)
		close(p->notify.fd);
	if (p->log.logger)
		xtl_logger_destroy(p->log.logger);
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
			transcript_open(p);   /* on failure, the old file stays */
			continue;
		}
		/* A restart must not lose what a connected client was about
		 * to get: it has STOP_DRAIN_MS in all (a slow client must not
		 * hold a stop up) to take it.  A second signal stops at once. */
		if (p->held.len > 0 && relay_client_writable(p) && !p->drain.on) {
			p->drain.deadline_ms = mono_ms() + STOP_DRAIN_MS;
			log_line(&p->log, XTL_INFO, -1, "signal %d: stopping once the client "
				 "has the %zu bytes held (backend state left as it is)",
				 (int)si.ssi_signo, p->held.len);
			p->drain.on = true;
			continue;
		}
		log_line(&p->log, XTL_INFO, -1, "signal %d: stopping (backend state left as it is)",
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

/* Has the guest moved an index on since we last looked?  Each index is read
 * once and only compared (ring_peer_moved); the pumps read them for
 * themselves. */
static bool guest_moved_on(struct proxy *p)
{
	struct storm *s = &p->storm;
	bool out, in;

	if (!s->looked) {   /* a new ring: below anything it allows, so news */
		s->out_prod = p->out.local - p->out.size - 1;
		s->in_cons = p->in.local - p->in.size - 1;
		s->looked = true;
	}
	out = ring_peer_moved(&p->out, &s->out_prod);
	in = ring_peer_moved(&p->in, &s->in_cons);
	return out || in;
}

/* One notification handled: progress, forgiven, or one toward a storm. */
static void count_event(struct proxy *p, bool progress)
{
	struct storm *s = &p->storm;
	bool forgiven = s->grace;

	s->handled++;
	s->grace = progress;
	if (progress)
		return;
	s->idle++;
	if (forgiven)
		return;
	s->counted++;
	if (s->events == 0 || mono_until(s->start_ms + STORM_WINDOW_MS) == 0) {
		s->start_ms = mono_ms();
		s->events = 0;
	}
	if (++s->events > STORM_EVENTS) {
		s->masked = true;
		if (repeat_log(&p->rep.storm))
			log_line(&p->log, XTL_WARN, -1, "event storm: %u notifications that "
				 "changed no ring index and moved no byte in %ld ms; leaving "
				 "the port masked for the rest of %d ms (%lu storms)",
				 s->events,
				 (long)(mono_ms() - s->start_ms),
				 STORM_WINDOW_MS, p->rep.storm.n);
	}
}

/* After a pass that began with a notification: unmask the port, unless the
 * guest is storming (see STORM_EVENTS). */
static void settle_event(struct proxy *p, bool moved_bytes)
{
	struct storm *s = &p->storm;

	if (p->event_port < 0)
		return;
	if (!s->masked && p->page != NULL)
		count_event(p, guest_moved_on(p) || moved_bytes);
	if (s->masked) {
		if (mono_until(s->start_ms + STORM_WINDOW_MS) > 0)
			return;
		s->masked = false;   /* the window is over: a fresh count */
		s->events = 0;
	}
	if (p->page != NULL)
		xenevtchn_unmask(p->evt, p->event_port);
	p->event_port = -1;
}

/* After a pass that began with a notification and moved bytes: serve what
 * the guest did meanwhile (see CATCH_UP_ROUNDS).  Its notifications for it
 * still come, after the unmask; the storm rule forgives the first. */
static void catch_up(struct proxy *p)
{
	struct iovec iov[2];
	int cnt;

	for (int k = 0; k < CATCH_UP_ROUNDS && p->event_port >= 0 && p->flow.notify_due
	     && p->page != NULL && p->phase == PH_CONNECTED; k++) {
		bool out = !p->flow.out_waiting && ring_readable(&p->out, iov, &cnt) > 0;
		bool in = p->flow.in_filled && ring_writable(&p->in, iov, &cnt) > 0;

		if (!out && !in)
			return;
		p->totals.caught_up++;
		relay_notify_guest(p);   /* the last round's bytes first: the guest may go on */
		if (out)
			relay_pump_out(p);
		if (in)
			relay_pump_in(p);
	}
}

/* The sooner of two poll timeouts (-1: none). */
static int earliest(int a, int b)
{
	return a < 0 || (b >= 0 && b < a) ? b : a;
}

/* Build the poll set; returns the poll timeout (-1: none, as when idle). */
static int poll_setup(struct proxy *p, struct pollfd *pfd)
{
	bool client = endpoint_has_client(&p->ep);
	bool ending = p->phase == PH_ENDING || p->drain.on;
	int timeout = -1;

	for (int i = 0; i < PFD_N; i++)
		pfd[i] = (struct pollfd){ .fd = -1 };
	pfd[PFD_SIG] = (struct pollfd){ .fd = p->sigfd, .events = POLLIN };
	if (!ending) {
		pfd[PFD_XS] = (struct pollfd){ .fd = p->store_fd, .events = POLLIN };
		if (p->page != NULL)
			pfd[PFD_EVT] = (struct pollfd){ .fd = xenevtchn_fd(p->evt), .events = POLLIN };
		if (p->ep.kind == EP_LISTEN && !client)
			pfd[PFD_LISTEN] = (struct pollfd){ .fd = p->ep.listen_fd, .events = POLLIN };
		if (relay_want_client_read(p))
			pfd[PFD_CLIENT_R] = (struct pollfd){ .fd = p->ep.rfd, .events = POLLIN };
	}
	if (client && !p->client.wr_dead)
		pfd[PFD_CLIENT_W] = (struct pollfd){ .fd = p->ep.wfd,
			.events = p->held.len || p->flow.out_waiting ? POLLOUT : 0 };
	if (p->ep.kind == EP_CONNECT && !client && !ending)
		timeout = p->ep.retry_ms;
	if (ending)
		timeout = FINAL_DRAIN_MS;
	if (p->drain.on)
		timeout = mono_until(p->drain.deadline_ms);
	if (p->storm.masked)
		timeout = earliest(timeout, mono_until(p->storm.start_ms + STORM_WINDOW_MS));
	if (!ending)
		timeout = earliest(timeout, backend_timeout(p));
	return timeout;
}

static void on_client_gone(struct proxy *p)
{
	p->client.reset |= endpoint_client_reset(&p->ep);
	relay_unread_replay(p);
	log_line(&p->log, XTL_INFO, -1, "client gone (%zu bytes held for the next)", p->held.len);
	p->client.wr_dead = p->client.reset = false;
	if (!endpoint_drop_client(&p->ep))
		p->stop = true;   /* stdio: nobody to serve any more */
}

static void on_client_ready(struct proxy *p, const struct pollfd *pfd)
{
	if (pfd[PFD_CLIENT_W].revents & (POLLHUP | POLLERR))
		p->client.wr_dead = true;
	if (pfd[PFD_CLIENT_R].revents & (POLLHUP | POLLERR))
		relay_pump_in(p);   /* read what it sent before hanging up */
	/* Drop the client once it can neither send nor take bytes. */
	if (p->client.wr_dead && (p->ep.read_eof || p->page == NULL || p->ep.kind == EP_STDIO))
		on_client_gone(p);
}

static void new_client(struct proxy *p, bool ok)
{
	if (ok) {
		held_init(&p->client.unread, 2 * p->ep.sndbuf);
		p->totals.client_connects++;
	}
	if (ok)
		log_line(&p->log, XTL_INFO, -1, "client connected (%zu bytes held for it)",
			 p->held.len);
	else if (p->ep.kind == EP_CONNECT && repeat_log(&p->rep.connect))
		log_line(&p->log, XTL_INFO, -1, "%s; retrying in %d ms", p->ep.err, p->ep.retry_ms);
}

/* The live counters (stats.h): a few stores into the mapped page, each
 * turn; no system call. */
static void publish_counters(struct proxy *p)
{
	static const uint32_t state_of[] = {
		[STANDING_WAITING] = STATS_WAITING, [STANDING_NO_CLIENT] = STATS_CONNECTED,
		[STANDING_CLIENT] = STATS_CONNECTED, [STANDING_DISCARDING] = STATS_CONNECTED,
		[STANDING_CLOSING] = STATS_CLOSING, [STANDING_REFUSED] = STATS_REFUSED,
		[STANDING_ENDING] = STATS_ENDING,
	};
	struct stats_page *s = p->stats;

	stats_put32(&s->state, state_of[backend_standing(p)]);
	stats_put32(&s->client, endpoint_has_client(&p->ep));
	stats_put32(&s->discarding, p->totals.discarding);
	stats_put(&s->from_guest, p->totals.out);
	stats_put(&s->to_guest, p->totals.in);
	stats_put(&s->held, p->held.len);
	stats_put(&s->discarded, p->totals.discarded);
	stats_put(&s->discard_episodes, p->totals.discard_episodes);
	stats_put(&s->client_connects, p->totals.client_connects);
	stats_put(&s->guest_reconnects, p->totals.guest_connects ? p->totals.guest_connects - 1 : 0);
	stats_put(&s->refusals, p->rep.refuse.n);
}

/* The counters file, made before the sandbox (which admits only its
 * removal at the end).  Without it the proxy serves all the same. */
static void open_counters(struct proxy *p)
{
	struct stats_page head = {
		.pid = (uint64_t)getpid(), .pid_start = hotplug_own_start(),
		.started = (uint64_t)time(NULL), .domid = p->ch.domid, .devid = p->ch.devid,
		.backend_domid = p->ch.backend_domid,
	};
	char err[PATH_MAX + 128];

	snprintf(head.endpoint, sizeof(head.endpoint), "%s", endpoint_name(p));
	p->stats = &p->stats_own;
	if (stats_create(&p->stats_file, &head, p->ep.user_uid, p->ep.user_gid, err,
			 sizeof(err)) < 0)
		log_line(&p->log, XTL_WARN, -1, "no live counters: %s", err);
	else
		p->stats = p->stats_file.page;
	publish_counters(p);
}

static void loop_once(struct proxy *p)
{
	struct pollfd pfd[PFD_N];
	int timeout = poll_setup(p, pfd);
	int n = poll(pfd, PFD_N, timeout);
	bool moved;

	if (n < 0) {
		if (errno != EINTR) {
			log_line(&p->log, XTL_ERROR, errno, "poll");
			p->stop = true;
			p->exit_code = EX_OSERR;
		}
		return;
	}
	if (pfd[PFD_SIG].revents)
		on_signal(p);
	if (pfd[PFD_XS].revents)
		backend_on_xenstore(p);
	backend_on_timer(p);
	if (pfd[PFD_EVT].revents && p->page != NULL)
		on_event(p);
	if (pfd[PFD_LISTEN].revents)
		new_client(p, endpoint_accept(&p->ep));
	if (n == 0 && p->ep.kind == EP_CONNECT && !endpoint_has_client(&p->ep))
		new_client(p, endpoint_connect(&p->ep));
	relay_flush_held(p);
	relay_pump_out(p);
	/* Read the client only when it has bytes, or when the guest may have
	 * made room in a full in[]: no readv that can only say EAGAIN. */
	if ((pfd[PFD_CLIENT_R].revents & POLLIN) || (p->event_port >= 0 && p->flow.in_full)
	    || p->in_saved.len > 0)
		relay_pump_in(p);
	moved = p->flow.notify_due;
	catch_up(p);
	settle_event(p, moved || p->flow.notify_due);
	relay_notify_guest(p);
	if (endpoint_has_client(&p->ep))
		on_client_ready(p, pfd);
	/* At the end, a client gets FINAL_DRAIN_MS without progress to take
	 * what is held. */
	if ((p->phase == PH_ENDING || p->drain.on)
	    && (p->held.len == 0 || !relay_client_writable(p) || n == 0
		|| (p->drain.on && mono_until(p->drain.deadline_ms) == 0)))
		p->stop = true;
	publish_counters(p);
	backend_report(p);
}

/* Which endpoint: an option, else a socket systemd passed, else (not for
 * --create) what the toolstack wrote in the backend directory. */
static int choose_endpoint(struct proxy *p, char *path, size_t len)
{
	int n = systemd_listen_fds();

	if (p->opt.kind != EP_NONE) {
		if (n > 0)
			log_line(&p->log, XTL_WARN, -1, "ignoring the %d sockets systemd "
				 "passed: an endpoint option was given", n);
		return 0;
	}
	if (n > 0) {
		if (n != 1 || !systemd_is_unix_listener(SYSTEMD_LISTEN_FDS_START)) {
			log_line(&p->log, XTL_ERROR, -1, "systemd passed %d sockets; expected "
				 "one listening Unix stream socket", n);
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

/* Everything privileged is open: keep no capability, become the user (if
 * asked), then admit only the loop's system calls. */
static int enter_sandbox(struct proxy *p)
{
	struct sandbox_needs need = {
		.gnttab_fd = xengnttab_fd(p->gnt), .evtchn_fd = xenevtchn_fd(p->evt),
		.accept = p->ep.kind == EP_LISTEN, .connect = p->ep.kind == EP_CONNECT,
		.socket_client = endpoint_is_socket(&p->ep),
		.transcript = p->opt.transcript != NULL,
		.unlink_at_exit = p->ep.created_path, .counters_dirfd = p->stats_file.dirfd,
	};
	char err[256];
	int r = sandbox_drop_privileges(p->opt.user, err, sizeof(err));

	if (r == 0)
		log_line(&p->log, XTL_INFO, -1, "running as %s (uid %u) with no capabilities%s",
			 p->opt.user ? p->opt.user : "root", (unsigned)getuid(),
			 p->opt.no_seccomp ? "; no system-call filter (--no-seccomp)" : "");
	if (r == 0 && !p->opt.no_seccomp)
		r = sandbox_seccomp(&need, err, sizeof(err));
	if (r != 0)
		log_line(&p->log, XTL_ERROR, -1, "%s", err);
	/* Setup's garbage (directory listings, the filter's build) goes back
	 * to the kernel: hundreds of idle instances run on one host. */
	malloc_trim(0);
	return r;
}

static int proxy_setup(struct proxy *p)
{
	int r;

	p->notify.fd = systemd_notify_open();
	if ((r = open_signals(p)) || (r = open_xen(p)) || (r = find_channel(p))
	    || (r = choose_endpoint(p, p->toolstack_path, sizeof(p->toolstack_path))))
		return r;
	if (p->opt.command == MODE_CREATE && p->ch.backend_domid != BACKEND_DOMID_DOM0
	    && !p->ch.unprivileged)
		return create_for_driver_domain(p);
	if ((r = transcript_open(p)))
		return r;
	/* The endpoint first: a channel we create is never left without one. */
	if ((r = open_endpoint(p)) || (p->opt.command == MODE_CREATE && (r = create_channel(p))))
		return r;
	buffer_bound(p);
	held_init(&p->in_saved, sizeof(((struct xencons_interface *)0)->in));
	publish_tty(p);
	if ((r = backend_start(p)))
		return r;
	open_counters(p);
	if (hotplug_write_server(p->xs, &p->ch, getpid(), hotplug_own_start()) != STORE_OK)
		log_line(&p->log, XTL_WARN, errno, "xs_write %s/xenchan-pid", p->ch.be);
	log_line(&p->log, XTL_INFO, -1, "serving %s (backend %s) on %s, holding up to %zu bytes",
		 p->ch.fe, p->ch.be, endpoint_name(p), p->held.bound);
	return enter_sandbox(p);
}

/* Stopping: let go of the ring; a channel we created is unplugged, any
 * other is left exactly as it is, for the next proxy to reattach. */
static void proxy_finish(struct proxy *p)
{
	char msg[256];

	if (p->storm.handled)
		log_line(&p->log, XTL_INFO, -1, "notifications: %llu handled, %llu changed no "
			 "ring index and moved no byte, %llu of them held against the guest; "
			 "%lu storms; %llu catch-up rounds", p->storm.handled, p->storm.idle,
			 p->storm.counted, p->rep.storm.n, p->totals.caught_up);
	relay_pump_out(p);
	relay_flush_held(p);
	relay_release(p);
	backend_report_last(p);
	if (p->phase == PH_ENDING || p->xs == NULL || p->ch.be[0] == '\0')
		return;
	systemd_notify(p->notify.fd, "STOPPING=1");
	if (!p->created) {
		hotplug_write_server(p->xs, &p->ch, 0, 0);
		return;
	}
	if (hotplug_unplug(p->xs, &p->ch, UNPLUG_WAIT_MS, msg, sizeof(msg)) == STORE_FAILED)
		log_line(&p->log, XTL_ERROR, errno, "unplug: %s", msg);
	else
		log_line(&p->log, XTL_INFO, -1, "%s", msg);
}

/* --list and --remove need only xenstore. */
static int run_command(struct proxy *p)
{
	char msg[512];
	int r;

	p->xs = xs_open(0);
	if (p->xs == NULL) {
		log_line(&p->log, XTL_ERROR, errno, "xs_open (is xenstored running?)");
		return EX_UNAVAILABLE;
	}
	if (p->opt.command == MODE_LIST && p->opt.domain == NULL) {
		p->ch.backend_domid = p->opt.backend_domid;
		return hotplug_list(p->xs, &p->ch, true, p->opt.json, stdout);
	}
	if ((r = find_channel(p)) != 0)
		return r;
	if (p->opt.command == MODE_LIST)
		return hotplug_list(p->xs, &p->ch, false, p->opt.json, stdout);
	r = hotplug_remove(p->xs, &p->ch, msg, sizeof(msg));
	log_line(&p->log, r ? XTL_ERROR : XTL_INFO, -1, "--remove: %s", msg);
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
	p->log.logger = (xentoollog_logger *)xtl_createlogger_stdiostream(stderr, level, 0);
	name_log(p);
	if (p->log.logger == NULL)
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
