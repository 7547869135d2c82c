/* SPDX-License-Identifier: MIT */
/*
 * store.h - what xenchan-proxy says to xenstore about one channel: finding
 * the domain and the channel, the frontend's values, the backend's state,
 * watches and the domain's death; and the pieces hotplug.c builds on (the
 * one scan of a domain's console devices, writes that need their directory,
 * the transaction retry).  Only store.c and hotplug.c build xenstore paths,
 * and only from nodes.h's formats.
 *
 * Our names are store_* and STORE_*: xs_* and <xs.h> are libxenstore's.
 */
#ifndef XENCHAN_STORE_H
#define XENCHAN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <xenstore.h>

/* xenbus states (<xen/io/xenbus.h>) */
enum xb_state {
	XB_UNKNOWN = 0, XB_INITIALISING = 1, XB_INITWAIT = 2, XB_INITIALISED = 3,
	XB_CONNECTED = 4, XB_CLOSING = 5, XB_CLOSED = 6, XB_RECONFIGURING = 7,
	XB_RECONFIGURED = 8,
};

#define STORE_PATH_MAX 256       /* a directory we name: F, K, a domain's */
#define STORE_NAME_MAX 128       /* longest channel or domain name we accept */
#define STORE_NODE_MAX (STORE_PATH_MAX + 32)   /* a directory and a leaf */

/* One channel of one domain, as found in xenstore. */
struct store_channel {
	unsigned domid, backend_domid, devid;
	char domain_name[STORE_NAME_MAX];   /* printable */
	char name[STORE_NAME_MAX];          /* frontend "name", printable; "" if none */
	char fe[STORE_PATH_MAX];            /* F: /local/domain/D/device/console/N */
	char be[STORE_PATH_MAX];            /* K: /local/domain/B/backend/console/D/N */
};

/* What the frontend published for its ring, read once and checked. */
struct store_ring {
	uint32_t ring_ref;
	uint32_t port;
};

/* Results of lookups, reads and writes: 0 is success. */
enum store_result {
	STORE_OK = 0, STORE_NOT_FOUND, STORE_AMBIGUOUS, STORE_INVALID, STORE_GONE,
	STORE_FAILED,
};

const char *store_state_name(enum xb_state s);

/* ---- finding the channel ---------------------------------------------------- */

/* A device directory's name as we would write it ("%u"): the paths we build
 * must lead back to it, so "05" or "007" is no device of ours. */
bool store_devid(const char *entry, unsigned long *devid);
/* A channel argument matched against a domain's console devices.  devids[i]
 * is the i-th child name of device/console, names[i] its "name" node (or
 * NULL).  Pure, for unit tests and fuzzing.  Returns STORE_OK and *index, or
 * STORE_NOT_FOUND / STORE_AMBIGUOUS / STORE_INVALID (console 0, a bad number). */
enum store_result store_pick_channel(const char *const *devids, const char *const *names,
				     size_t n, const char *want, size_t *index);
/* Find DOMAIN (domid or name).  On failure, msg says why (names found). */
enum store_result store_find_domain(struct xs_handle *h, const char *arg,
				    struct store_channel *ch, char *msg, size_t msglen);
/* Find CHANNEL (devid or name) of ch->domid; fills fe, be, devid, name. */
enum store_result store_find_channel(struct xs_handle *h, const char *arg,
				     unsigned backend_domid, struct store_channel *ch,
				     char *msg, size_t msglen);
/* Check the frontend and backend point at each other; msg says what not. */
enum store_result store_check_channel(struct xs_handle *h, const struct store_channel *ch,
				      char *msg, size_t msglen);
/* ch->devid = devid, and fe and be from ch->domid and ch->backend_domid. */
void store_channel_paths(struct store_channel *ch, unsigned devid);

/* The children of a domain's device/console, as listed (entries[i]), and
 * each one's "name" node (names[i], NULL if absent or not a string we
 * accept): the one scan of that directory, for finding, creating and
 * listing channels.  Read within transaction t (XBT_NULL: none). */
struct store_consoles {
	char **entries;
	char **names;
	unsigned n;
};
/* false: the listing failed (errno; ENOENT is an empty list, true) or
 * memory is short (errno ENOMEM).  Free with store_consoles_free. */
bool store_scan_consoles(struct xs_handle *h, xs_transaction_t t, unsigned domid,
			 struct store_consoles *c);
void store_consoles_free(struct store_consoles *c);

/* ---- the channel's nodes ------------------------------------------------------ */

/* Frontend and backend state; XB_UNKNOWN if absent or not a state. */
enum xb_state store_frontend_state(struct xs_handle *h, const struct store_channel *ch,
				   bool *exists);
enum xb_state store_backend_state(struct xs_handle *h, const struct store_channel *ch,
				  bool *exists);
/* Write the backend state, but only while the backend directory exists:
 * a vanished directory means the channel is ending (never recreate it). */
enum store_result store_set_backend_state(struct xs_handle *h, const struct store_channel *ch,
					  enum xb_state s);
/* ring-ref and port, strictly parsed.  msg says what is wrong. */
enum store_result store_frontend_ring(struct xs_handle *h, const struct store_channel *ch,
				      struct store_ring *ri, char *msg, size_t msglen);
/* The frontend "limit" node: the bound of bytes held for the client. */
bool store_frontend_limit(struct xs_handle *h, const struct store_channel *ch,
			  unsigned long *limit);
/* The toolstack's endpoint: "socket" with a path, or "pty". */
enum store_result store_backend_connection(struct xs_handle *h, const struct store_channel *ch,
					   char *conn, size_t connlen, char *path, size_t pathlen);
/* Publish the pty path in the frontend "tty" node, if the frontend exists. */
enum store_result store_set_frontend_tty(struct xs_handle *h, const struct store_channel *ch,
					 const char *tty);

/* Watches on the frontend, the backend and @releaseDomain. */
bool store_watch_channel(struct xs_handle *h, const struct store_channel *ch);
/* Drain pending watch events; returns which fired (STORE_WATCH_* bits). */
#define STORE_WATCH_FRONTEND 1u
#define STORE_WATCH_BACKEND  2u
#define STORE_WATCH_RELEASE  4u
unsigned store_drain_watches(struct xs_handle *h);
/* Is the domain still there (introduced to xenstore)? */
bool store_domain_alive(struct xs_handle *h, unsigned domid);

/* ---- for hotplug.c ------------------------------------------------------------ */

/* dir/leaf into buf (STORE_NODE_MAX bytes); false if it does not fit. */
bool store_join(char *buf, const char *dir, const char *leaf);
/* dir/nodes[i] = values[i] for i < n (values NULL: remove each node), all
 * in one transaction that first checks dir exists: STORE_GONE if not. */
enum store_result store_write_nodes(struct xs_handle *h, const char *dir,
				    const char *const *nodes, const char *const *values, size_t n);
/* Run body in a transaction until it commits.  body returns STORE_OK to
 * commit, anything else to abort, which store_transaction returns.  After a
 * conflict (EAGAIN) body runs again, up to STORE_ATTEMPTS times; then, or if
 * the transaction cannot start or end, STORE_FAILED with errno, and msg
 * (if not NULL) says which. */
#define STORE_ATTEMPTS 64
typedef enum store_result store_body(struct xs_handle *h, xs_transaction_t t, void *arg);
enum store_result store_transaction(struct xs_handle *h, store_body *body, void *arg,
				    char *msg, size_t msglen);

#endif
