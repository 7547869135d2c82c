/*
 * dm.h - xenchan-dm's state, and what its files give each other.
 *
 * main.c is the loop and its phases; args.c reads the argv libxl builds
 * for QEMU; store.c is every xenstore path the dm touches; proxies.c starts,
 * restarts and reaps the proxies; qmp.c reads QMP commands and writes the
 * replies; monitor.c is the QMP sockets and their clients; probe.c answers
 * libxl's command-line probe (Xen 4.20 and later); log.c is the qemu-dm log.
 */
#ifndef XENCHAN_DM_H
#define XENCHAN_DM_H

#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/un.h>
#include <xentoollog.h>
#include <yajl/yajl_parse.h>

#include "../monotime.h"
#include "../nodes.h"
#include "../strict.h"

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif

struct xs_handle;

/* libxl's local device model runs in the toolstack domain, and so do we:
 * the channels we serve are those whose backend is this domain,
 * BACKEND_DOMID_DOM0 (nodes.h). */
#define MAX_CHARDEVS      40
#define MAX_CHANNELS      32
#define MAX_MONITORS      4
#define CLIENTS_PER_MON   4              /* a fifth takes the idlest one's slot */
#define ID_MAX            64             /* a chardev id */
#define XSP_MAX           256            /* a xenstore path or value we read */
#define SUN_MAX           sizeof(((struct sockaddr_un *)0)->sun_path)
#define MAX_PROXY_OPTS    16

/* QMP bounds: one message, a client's unread replies, nesting, the id. */
#define QMP_IN_MAX        65536
#define QMP_OUT_MAX       65536
#define QMP_DEPTH_MAX     32
#define QMP_NAME_MAX      64
#define QMP_ID_TOKENS     64
#define QMP_ID_TEXT       1024

/* ---- state ------------------------------------------------------------------ */

struct chardev {
	char id[ID_MAX];
	bool pty;                        /* else a listening Unix socket */
	char path[SUN_MAX];
	bool monitor;                    /* named by -mon ...,mode=control */
};

struct config {
	unsigned domid;
	bool have_domid, xen_attach, xenpv;
	const char *name;
	struct chardev chardev[MAX_CHARDEVS];
	unsigned n_chardev;
	char mon[MAX_MONITORS][ID_MAX];  /* -mon chardev= ids, checked later */
	unsigned n_mon;
};

struct channel {
	unsigned devid;
	const struct chardev *cd;
	char name[XSP_MAX];              /* the frontend name node, for logs */
	char fe[XSP_MAX], be[XSP_MAX];
	bool served;                     /* false: not ours to serve (logged) */
	pid_t pid;                       /* the running proxy, 0 if none */
	bool ready;                      /* its backend's NODE_SERVER_PID names pid */
	bool ended;                      /* exited 0: channel or domain gone */
	bool given_up;
	unsigned restarts;               /* within the window */
	int64_t window_start, restart_at; /* restart_at 0: none pending */
};

enum tok { T_NULL, T_TRUE, T_FALSE, T_NUMBER, T_STRING, T_KEY,
	   T_MAP_OPEN, T_MAP_CLOSE, T_ARRAY_OPEN, T_ARRAY_CLOSE };

/* The command being parsed: only what a reply needs.  The id is kept as
 * tokens, replayed into the reply as QMP asks ("id" comes back verbatim,
 * whatever JSON value it is). */
struct qmp_msg {
	unsigned depth;
	enum { M_NONE, M_EXECUTE, M_ID, M_ARGUMENTS, M_OTHER } member;
	char execute[QMP_NAME_MAX];
	bool have_execute, bad_execute, bad_arguments;
	char unexpected[QMP_NAME_MAX];
	bool have_id, id_too_big;
	struct { enum tok t; unsigned off, len; } id[QMP_ID_TOKENS];
	unsigned n_id, id_used;
	char id_text[QMP_ID_TEXT];
};

struct dm;

struct qmp_client {
	struct dm *dm;
	int fd;                          /* -1: free slot */
	unsigned long conn;              /* which connection holds the slot */
	unsigned long active;            /* dm->qmp_events when it last moved bytes */
	int64_t active_ms;               /* and when */
	yajl_handle y;
	bool negotiated, closing;
	size_t in_bytes;                 /* of the message being parsed */
	struct qmp_msg msg;
	char *out;                       /* replies not yet taken, on demand */
	size_t out_len, out_cap;
};

struct monitor {
	const struct chardev *cd;
	int fd;
	bool inherited;                  /* libxl's probe socket: not ours to unlink */
	dev_t dev;                       /* of the socket we bound, so we never */
	ino_t ino;                       /* unlink a successor's */
	struct qmp_client client[CLIENTS_PER_MON];
};

enum dm_phase {
	DM_STARTING,    /* proxies opening their endpoints; state not written */
	DM_RUNNING,     /* state = running; supervising */
	DM_ENDING,      /* domain gone or SIGHUP: proxies end by themselves */
	DM_STOPPING,    /* SIGTERM sent to the proxies */
};

struct dm {
	struct config cfg;
	xentoollog_logger_stdiostream *logger;
	struct xs_handle *xs;
	int sfd;
	enum dm_phase phase;
	int64_t deadline;                /* of ENDING or STOPPING */
	bool killed;                     /* SIGKILL sent in STOPPING */
	bool xs_lost;                    /* its watch fd no longer polled */
	int exit_code;
	char proxy[PATH_MAX];
	const char *proxy_user;          /* --user for the proxies, or NULL: root */
	char *proxy_opts_buf;            /* $XENCHAN_PROXY_OPTS, cut into */
	char *proxy_opts[MAX_PROXY_OPTS]; /* these words */
	unsigned n_proxy_opts;
	struct channel ch[MAX_CHANNELS];
	unsigned n_ch;
	struct monitor mon[MAX_MONITORS];
	unsigned n_mon;
	unsigned long qmp_conns, qmp_events;  /* counters: connections, activity */
	unsigned qmp_answered;           /* commands answered */
	struct {
		bool on;                 /* this run is libxl's command-line probe */
		bool quit;               /* QMP quit answered */
		bool ending;             /* quit, or its client gone: end at SIGHUP */
		int64_t deadline;        /* or then */
	} probe;
};

/* ---- log.c ------------------------------------------------------------------ */

void dm_log(const struct dm *dm, xentoollog_level level, int errnoval,
	    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
int refuse(const struct dm *dm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- args.c ----------------------------------------------------------------- */

int parse_argv(struct dm *dm, int argc, char **argv);
/* libxl's command-line probe, exactly: the descriptor it passes, else -1. */
int probe_argv(int argc, char **argv);
bool channel_devid(const char *id, unsigned *devid);

/* ---- store.c ------------------------------------------------------------------- */

void path_dm(char *p, size_t n, unsigned domid, const char *leaf);
int check_domain(struct dm *dm);
bool channel_present(struct dm *dm, const struct channel *ch);
int find_channels(struct dm *dm);
int watch_all(struct dm *dm);
bool proxy_ready(struct dm *dm, const struct channel *ch);
int write_running(struct dm *dm);

/* ---- proxies.c -------------------------------------------------------------- */

void find_proxy(struct dm *dm);
pid_t spawn_proxy(struct dm *dm, struct channel *ch);
void reap_children(struct dm *dm);
unsigned children_alive(const struct dm *dm);
void signal_children(struct dm *dm, int sig);
void restart_due(struct dm *dm, struct channel *ch);

/* ---- qmp.c ------------------------------------------------------------------ */

extern const yajl_callbacks qmp_callbacks;    /* their ctx: the qmp_client */
void greeting(struct qmp_client *c);
int qmp_fail(struct qmp_client *c, const char *why);

/* ---- monitor.c -------------------------------------------------------------- */

/* What each of the monitors' pollfds stands for: a listener or a client. */
struct poll_who {
	struct monitor *mon;
	struct qmp_client *client;
	unsigned long conn;              /* the connection polled in that slot */
};
#define MONITOR_PFD_MAX (MAX_MONITORS * (1 + CLIENTS_PER_MON))

/* Hang up on a client, its unsent replies discarded. */
void client_drop(struct qmp_client *c);
/* Queue reply bytes; a client that leaves QMP_OUT_MAX unread is dropped. */
void out_append(struct qmp_client *c, const void *p, size_t len);
int monitor_open(struct dm *dm, struct monitor *mon);
/* The listening socket libxl's probe passes (fd=N), taken as it is. */
int monitor_adopt(struct dm *dm, struct monitor *mon, int fd);
/* Accept no more clients (the socket closed, and unlinked if ours). */
void monitor_unlisten(struct monitor *mon);
void monitor_close(struct monitor *mon);
unsigned monitor_clients(const struct monitor *mon);
unsigned qmp_poll_set(struct dm *dm, struct pollfd *pfd, struct poll_who *who);
void on_qmp(struct dm *dm, const struct pollfd *pfd, const struct poll_who *who,
	    unsigned n);

/* ---- probe.c ---------------------------------------------------------------- */

/* Serve libxl's probe on descriptor fd; its exit status. */
int probe_run(struct dm *dm, int fd);
/* Stop listening, and wait (bounded) for libxl's SIGHUP. */
void probe_ending(struct dm *dm);

/* ---- main.c -------------------------------------------------------------- */

/* dm->sfd: SIGTERM, SIGINT, SIGHUP, and SIGCHLD if children. */
int open_signals(struct dm *dm, bool children);
/* SIGTERM to every proxy; the first nonzero exit_code becomes ours. */
void begin_stopping(struct dm *dm, int exit_code);

#endif
