/*
 * xs.h - everything xenchan-proxy says to xenstore: finding the domain and
 * the channel, the frontend's values, the backend's state, watches and the
 * domain's death.  Only xs.c builds a xenstore path.
 */
#ifndef XENCHAN_XS_H
#define XENCHAN_XS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct xs_handle;

/* xenbus states (<xen/io/xenbus.h>) */
enum xb_state {
	XB_UNKNOWN = 0, XB_INITIALISING = 1, XB_INITWAIT = 2, XB_INITIALISED = 3,
	XB_CONNECTED = 4, XB_CLOSING = 5, XB_CLOSED = 6, XB_RECONFIGURING = 7,
	XB_RECONFIGURED = 8,
};

#define XS_PATH_MAX 256
#define XS_NAME_MAX 128      /* longest channel or domain name we accept */

/* One channel of one domain, as found in xenstore. */
struct xs_channel {
	unsigned domid, backend_domid, devid;
	char domain_name[XS_NAME_MAX];
	char name[XS_NAME_MAX];          /* frontend "name", "" if none */
	char fe[XS_PATH_MAX];            /* /local/domain/D/device/console/N */
	char be[XS_PATH_MAX];            /* /local/domain/B/backend/console/D/N */
};

/* What the frontend published for its ring, read once and checked. */
struct xs_ring_info {
	uint32_t ring_ref;
	uint32_t port;
};

/* Results of lookups and reads: 0 is success. */
enum xs_result {
	XSR_OK = 0, XSR_NOT_FOUND, XSR_AMBIGUOUS, XSR_INVALID, XSR_GONE, XSR_FAILED,
};

/* xenchan-dm's names for strict.h's strict_canonical, strict_leaf and
 * strict_printable, until it includes strict.h. */
bool xs_parse_canonical(const char *s, unsigned long max, unsigned long *out);
bool xs_read_leaf(struct xs_handle *h, const char *dir, const char *leaf,
		  char *buf, size_t cap);
void xs_copy_printable(char *dst, size_t cap, const char *src);

/* A channel argument matched against a domain's console devices.  devids[i]
 * is the i-th child name of device/console, names[i] its "name" node (or
 * NULL).  Pure, for unit tests and fuzzing.  Returns XSR_OK and *index, or
 * XSR_NOT_FOUND / XSR_AMBIGUOUS / XSR_INVALID (console 0, a bad number). */
enum xs_result xs_pick_channel(const char *const *devids,
			       const char *const *names, size_t n,
			       const char *want, size_t *index);

/* Find DOMAIN (domid or name).  On failure, msg says why (names found). */
enum xs_result xs_find_domain(struct xs_handle *h, const char *arg,
			      struct xs_channel *ch, char *msg, size_t msglen);
/* Find CHANNEL (devid or name) of ch->domid; fills fe, be, devid, name. */
enum xs_result xs_find_channel(struct xs_handle *h, const char *arg,
			       unsigned backend_domid, struct xs_channel *ch,
			       char *msg, size_t msglen);
/* Check the frontend and backend point at each other; msg says what not. */
enum xs_result xs_check_channel(struct xs_handle *h, const struct xs_channel *ch,
				char *msg, size_t msglen);

/* Frontend and backend state; XB_UNKNOWN if absent or not a state. */
enum xb_state xs_frontend_state(struct xs_handle *h, const struct xs_channel *ch,
				bool *exists);
enum xb_state xs_backend_state(struct xs_handle *h, const struct xs_channel *ch,
			       bool *exists);
/* Write the backend state, but only while the backend directory exists:
 * a vanished directory means the channel is ending (never recreate it). */
enum xs_result xs_set_backend_state(struct xs_handle *h,
				    const struct xs_channel *ch, enum xb_state s);
/* ring-ref and port, strictly parsed.  msg says what is wrong. */
enum xs_result xs_frontend_ring(struct xs_handle *h, const struct xs_channel *ch,
				struct xs_ring_info *ri, char *msg, size_t msglen);
/* The frontend "limit" node: the bound of bytes held for the client. */
bool xs_frontend_limit(struct xs_handle *h, const struct xs_channel *ch,
		       unsigned long *limit);
/* The toolstack's endpoint: "socket" with a path, or "pty". */
enum xs_result xs_backend_connection(struct xs_handle *h, const struct xs_channel *ch,
				     char *conn, size_t connlen,
				     char *path, size_t pathlen);
/* Publish the pty path in the frontend "tty" node, if the frontend exists. */
enum xs_result xs_set_frontend_tty(struct xs_handle *h, const struct xs_channel *ch,
				   const char *tty);

/* Watches on the frontend, the backend and @releaseDomain. */
bool xs_watch_channel(struct xs_handle *h, const struct xs_channel *ch);
/* Drain pending watch events; returns which fired (XS_WATCH_* bits). */
#define XS_WATCH_FRONTEND 1u
#define XS_WATCH_BACKEND  2u
#define XS_WATCH_RELEASE  4u
unsigned xs_drain_watches(struct xs_handle *h);
/* Is the domain still there (introduced to xenstore)? */
bool xs_domain_alive(struct xs_handle *h, unsigned domid);

const char *xb_state_name(enum xb_state s);

/* Hotplug: create channel name on ch->domid (backend ch->backend_domid) with
 * devid ch->devid, or the lowest free one in 1..9 if that is 0, every node in
 * one transaction.  A name that exists gives XSR_AMBIGUOUS and its devid in
 * *existing; no free devid (or ch->devid taken) gives XSR_NOT_FOUND. */
enum xs_result xs_create_channel(struct xs_handle *h, struct xs_channel *ch,
				 const char *name, unsigned long limit,
				 const char *connection, const char *path,
				 unsigned *existing, char *msg, size_t msglen);
/* Unplug: remove the frontend, backend and /libxl copy in one transaction. */
enum xs_result xs_remove_channel(struct xs_handle *h, const struct xs_channel *ch);
/* Did we create it (frontend type "xenchan")? */
bool xs_channel_is_ours(struct xs_handle *h, const struct xs_channel *ch);
/* The serving proxy in the backend directory: its pid ("xenchan-pid") and
 * its start time ("xenchan-pid-start", clock ticks after boot, field 22 of
 * /proc/PID/stat; 0: not recorded), written in one transaction.  pid 0
 * removes both (XSR_GONE: the backend directory is gone already).
 * xs_server_pid returns 0 when no pid is recorded; start may be NULL. */
enum xs_result xs_set_server_pid(struct xs_handle *h, const struct xs_channel *ch, long pid,
				 unsigned long long start);
long xs_server_pid(struct xs_handle *h, const struct xs_channel *ch, unsigned long long *start);

/* Wait (a watch, at most timeout_ms) until the frontend is Closed, or with
 * want_gone until its directory is removed.  True if it happened. */
bool xs_wait_frontend(struct xs_handle *h, const struct xs_channel *ch, bool want_gone,
		      int timeout_ms);

/* What --list shows of one channel. */
struct xs_channel_info {
	unsigned devid;
	char name[XS_NAME_MAX], type[16], connection[16], endpoint[XS_PATH_MAX];
	enum xb_state fs, bs;
	bool backend_present;
	long pid;
	unsigned long long pid_start;
};
/* The channels (console devices but 0) of dom->domid; returns how many. */
int xs_list_channels(struct xs_handle *h, const struct xs_channel *dom,
		     struct xs_channel_info *out, int max);

#endif
