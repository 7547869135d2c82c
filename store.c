/* SPDX-License-Identifier: MIT */
/*
 * store.c - xenstore for xenchan-proxy: lookup, states, watches, domain death
 * (see store.h).
 *
 * Every value below the frontend directory is written by the guest and may be
 * anything: each is read once, bounded, parsed strictly (strict.h) and only
 * then used.  The backend directory K is never trusted from the frontend's
 * "backend" node: we compute it from (B, D, N) and only check that the
 * frontend agrees.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodes.h"
#include "store.h"
#include "strict.h"

#define LIMIT_MAX (1UL << 30)   /* the largest "limit" node we take */

static const char *const state_names[] = {
	"Unknown", "Initialising", "InitWait", "Initialised", "Connected",
	"Closing", "Closed", "Reconfiguring", "Reconfigured",
};

const char *store_state_name(enum xb_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0])
		? state_names[s] : "Invalid";
}

bool store_join(char *buf, const char *dir, const char *leaf)
{
	return (size_t)snprintf(buf, STORE_NODE_MAX, "%s/%s", dir, leaf) < STORE_NODE_MAX;
}

static bool exists(struct xs_handle *h, const char *path)
{
	unsigned int len;
	char *v = xs_read(h, XBT_NULL, path, &len);

	free(v);
	return v != NULL;
}

static void say(char *msg, size_t msglen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(char *msg, size_t msglen, const char *fmt, ...)
{
	va_list ap;

	if (msg == NULL || msglen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, msglen, fmt, ap);
	va_end(ap);
}

/* Append ", item" to a list in msg without overflowing it. */
static void say_more(char *msg, size_t msglen, const char *item)
{
	size_t used = strnlen(msg, msglen);
	char clean[STORE_NAME_MAX];

	strict_printable(clean, sizeof(clean), item);
	if (used + 1 < msglen)
		snprintf(msg + used, msglen - used, "%s%s", used ? ", " : "", clean);
}

/* ---- finding the domain ---------------------------------------------------------- */

/* D's "name" node, printable, into ch->domain_name; false if unreadable. */
static bool domain_name(struct xs_handle *h, unsigned domid, char *name, size_t cap)
{
	char dir[STORE_PATH_MAX];

	snprintf(dir, sizeof(dir), PATH_DOMAIN, domid);
	return strict_leaf(h, dir, "name", name, cap);
}

static enum store_result domain_by_id(struct xs_handle *h, unsigned domid,
				      struct store_channel *ch, char *msg, size_t msglen)
{
	char path[STORE_PATH_MAX], name[STORE_NAME_MAX];

	snprintf(path, sizeof(path), PATH_DOMAIN, domid);
	if (!exists(h, path)) {
		say(msg, msglen, "no domain %u (%s)", domid, path);
		return STORE_NOT_FOUND;
	}
	ch->domid = domid;
	if (!domain_name(h, domid, name, sizeof(name)))
		name[0] = '\0';
	strict_printable(ch->domain_name, sizeof(ch->domain_name), name);
	return STORE_OK;
}

/* The one domain whose "name" node is arg. */
static enum store_result domain_by_name(struct xs_handle *h, const char *arg,
					struct store_channel *ch, char *msg, size_t msglen)
{
	char name[STORE_NAME_MAX], names[512] = "";
	unsigned long domid;
	unsigned int n, found = 0;
	char **doms = xs_directory(h, XBT_NULL, PATH_DOMAINS, &n);

	if (doms == NULL) {
		say(msg, msglen, "xs_directory %s: %s", PATH_DOMAINS, strerror(errno));
		return STORE_FAILED;
	}
	for (unsigned int i = 0; i < n; i++) {
		if (!strict_uint(doms[i], DOMID_MAX, &domid)
		    || !domain_name(h, domid, name, sizeof(name)))
			continue;
		say_more(names, sizeof(names), name);
		if (strcmp(name, arg) == 0 && found++ == 0) {
			ch->domid = domid;
			strict_printable(ch->domain_name, sizeof(ch->domain_name), name);
		}
	}
	free(doms);
	if (found == 1)
		return STORE_OK;
	if (found > 1)
		say(msg, msglen, "%u domains are named %s", found, arg);
	else
		say(msg, msglen, "no domain named %s (domains: %s)", arg, names);
	return found ? STORE_AMBIGUOUS : STORE_NOT_FOUND;
}

enum store_result store_find_domain(struct xs_handle *h, const char *arg,
				    struct store_channel *ch, char *msg, size_t msglen)
{
	unsigned long domid;

	if (strict_uint(arg, DOMID_MAX, &domid))
		return domain_by_id(h, domid, ch, msg, msglen);
	return domain_by_name(h, arg, ch, msg, msglen);
}

/* ---- finding the channel --------------------------------------------------------- */

bool store_devid(const char *entry, unsigned long *devid)
{
	return strict_canonical(entry, CONSOLE_DEVID_MAX, devid);
}

enum store_result store_pick_channel(const char *const *devids, const char *const *names,
				     size_t n, const char *want, size_t *index)
{
	unsigned long want_id;
	size_t found = 0;

	if (strict_uint(want, CONSOLE_DEVID_MAX, &want_id)) {
		if (want_id == 0)
			return STORE_INVALID;   /* the primary console is not a channel */
		for (size_t i = 0; i < n; i++) {
			unsigned long id;
			if (store_devid(devids[i], &id) && id == want_id) {
				*index = i;
				return STORE_OK;
			}
		}
		return STORE_NOT_FOUND;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long id;
		if (!store_devid(devids[i], &id) || id == 0)
			continue;
		if (names[i] != NULL && strcmp(names[i], want) == 0 && found++ == 0)
			*index = i;
	}
	return found == 1 ? STORE_OK : found ? STORE_AMBIGUOUS : STORE_NOT_FOUND;
}

void store_channel_paths(struct store_channel *ch, unsigned devid)
{
	ch->devid = devid;
	snprintf(ch->fe, sizeof(ch->fe), PATH_FRONTEND, ch->domid, devid);
	snprintf(ch->be, sizeof(ch->be), PATH_BACKEND, ch->backend_domid, ch->domid, devid);
}

bool store_scan_consoles(struct xs_handle *h, xs_transaction_t t, unsigned domid,
			 struct store_consoles *c)
{
	char dir[STORE_PATH_MAX], node[STORE_NODE_MAX], name[STORE_NAME_MAX];

	snprintf(dir, sizeof(dir), PATH_CONSOLES, domid);
	c->n = 0;
	c->names = NULL;
	c->entries = xs_directory(h, t, dir, &c->n);
	if (c->entries == NULL) {
		c->n = 0;
		if (errno != ENOENT)
			return false;
	}
	c->names = calloc(c->n ? c->n : 1, sizeof(*c->names));
	if (c->names == NULL) {
		store_consoles_free(c);
		errno = ENOMEM;
		return false;
	}
	for (unsigned i = 0; i < c->n; i++) {
		/* A longer entry is no devid: its name is never looked at. */
		snprintf(node, sizeof(node), "%s/%.16s/name", dir, c->entries[i]);
		if (strict_read_in(h, t, node, name, sizeof(name)))
			c->names[i] = strdup(name);
	}
	return true;
}

void store_consoles_free(struct store_consoles *c)
{
	for (unsigned i = 0; c->names && i < c->n; i++)
		free(c->names[i]);
	free(c->names);
	free(c->entries);
	c->names = c->entries = NULL;
	c->n = 0;
}

/* msg: why arg matched no channel of the domain, or more than one. */
static void say_no_channel(const struct store_consoles *c, enum store_result r, const char *arg,
			   unsigned domid, char *msg, size_t msglen)
{
	char list[512] = "", dir[STORE_PATH_MAX];

	snprintf(dir, sizeof(dir), PATH_CONSOLES, domid);
	for (unsigned i = 0; i < c->n; i++)
		if (strcmp(c->entries[i], "0") != 0)
			say_more(list, sizeof(list), c->names[i] ? c->names[i] : c->entries[i]);
	say(msg, msglen, r == STORE_INVALID ? "console 0 is the primary console, not a channel"
	    : "%s channel %s in %s (channels: %s)",
	    r == STORE_AMBIGUOUS ? "more than one" : "no", arg, dir, c->n ? list : "none");
}

enum store_result store_find_channel(struct xs_handle *h, const char *arg,
				     unsigned backend_domid, struct store_channel *ch,
				     char *msg, size_t msglen)
{
	struct store_consoles c;
	unsigned long id = 0;
	size_t idx = 0;
	enum store_result r;

	ch->backend_domid = backend_domid;
	if (!store_scan_consoles(h, XBT_NULL, ch->domid, &c)) {
		char dir[STORE_PATH_MAX];

		snprintf(dir, sizeof(dir), PATH_CONSOLES, ch->domid);
		if (errno == ENOMEM)
			say(msg, msglen, "out of memory");
		else
			say(msg, msglen, "xs_directory %s: %s", dir, strerror(errno));
		return STORE_FAILED;
	}
	r = store_pick_channel((const char *const *)c.entries, (const char *const *)c.names,
			       c.n, arg, &idx);
	if (r == STORE_OK) {
		store_devid(c.entries[idx], &id);   /* picked: a devid */
		store_channel_paths(ch, id);
		strict_printable(ch->name, sizeof(ch->name), c.names[idx] ? c.names[idx] : "");
	} else {
		say_no_channel(&c, r, arg, ch->domid, msg, msglen);
	}
	store_consoles_free(&c);
	return r;
}

enum store_result store_check_channel(struct xs_handle *h, const struct store_channel *ch,
				      char *msg, size_t msglen)
{
	char path[STORE_NODE_MAX], val[STORE_PATH_MAX];
	unsigned long id;

	store_join(path, ch->fe, "backend");
	if (!strict_read(h, path, val, sizeof(val)) || strcmp(val, ch->be) != 0) {
		say(msg, msglen, "%s does not name %s", path, ch->be);
		return STORE_INVALID;
	}
	store_join(path, ch->fe, "backend-id");
	if (!strict_read(h, path, val, sizeof(val)) || !strict_uint(val, DOMID_MAX, &id)
	    || id != ch->backend_domid) {
		say(msg, msglen, "%s is not %u", path, ch->backend_domid);
		return STORE_INVALID;
	}
	store_join(path, ch->be, "frontend-id");
	if (!strict_read(h, path, val, sizeof(val)) || !strict_uint(val, DOMID_MAX, &id)
	    || id != ch->domid) {
		say(msg, msglen, "%s is not %u (no backend directory?)", path, ch->domid);
		return STORE_INVALID;
	}
	return STORE_OK;
}

/* ---- states ---------------------------------------------------------------------- */

/* dir/state; *present: the node, or failing that dir, can be read at all. */
static enum xb_state read_state(struct xs_handle *h, const char *dir, bool *present)
{
	char val[16];
	unsigned long s;

	if (!strict_leaf(h, dir, "state", val, sizeof(val))) {
		*present = (errno != ENOENT && errno != EACCES) || exists(h, dir);
		return XB_UNKNOWN;
	}
	*present = true;
	if (!strict_uint(val, XB_RECONFIGURED, &s))
		return XB_UNKNOWN;
	return (enum xb_state)s;
}

enum xb_state store_frontend_state(struct xs_handle *h, const struct store_channel *ch,
				   bool *present)
{
	return read_state(h, ch->fe, present);
}

enum xb_state store_backend_state(struct xs_handle *h, const struct store_channel *ch,
				  bool *present)
{
	return read_state(h, ch->be, present);
}

/* ---- writing ------------------------------------------------------------------- */

enum store_result store_transaction(struct xs_handle *h, store_body *body, void *arg,
				    char *msg, size_t msglen)
{
	for (int attempt = 0; attempt < STORE_ATTEMPTS; attempt++) {
		xs_transaction_t t = xs_transaction_start(h);
		enum store_result r;

		if (t == XBT_NULL) {
			say(msg, msglen, "xs_transaction_start: %s", strerror(errno));
			return STORE_FAILED;
		}
		r = body(h, t, arg);
		if (r != STORE_OK) {
			int e = errno;

			xs_transaction_end(h, t, true);
			errno = e;
			return r;
		}
		if (xs_transaction_end(h, t, false))
			return STORE_OK;
		if (errno != EAGAIN) {
			say(msg, msglen, "xs_transaction_end: %s", strerror(errno));
			return STORE_FAILED;
		}
	}
	say(msg, msglen, "xenstore transactions kept conflicting");
	errno = EAGAIN;
	return STORE_FAILED;
}

struct nodes_write {
	const char *dir;
	const char *const *nodes, *const *values;
	size_t n;
};

static enum store_result write_nodes_in(struct xs_handle *h, xs_transaction_t t, void *arg)
{
	const struct nodes_write *w = arg;
	char path[STORE_NODE_MAX];
	unsigned int len;
	char *probe = xs_read(h, t, w->dir, &len);

	if (probe == NULL)
		return STORE_GONE;
	free(probe);
	for (size_t i = 0; i < w->n; i++) {
		store_join(path, w->dir, w->nodes[i]);
		if (w->values ? !xs_write(h, t, path, w->values[i], strlen(w->values[i]))
		    : !xs_rm(h, t, path) && errno != ENOENT)
			return STORE_FAILED;
	}
	return STORE_OK;
}

enum store_result store_write_nodes(struct xs_handle *h, const char *dir,
				    const char *const *nodes, const char *const *values, size_t n)
{
	struct nodes_write w = { dir, nodes, values, n };

	return store_transaction(h, write_nodes_in, &w, NULL, 0);
}

static enum store_result write_node(struct xs_handle *h, const char *dir, const char *node,
				    const char *value)
{
	return store_write_nodes(h, dir, &node, &value, 1);
}

enum store_result store_set_backend_state(struct xs_handle *h, const struct store_channel *ch,
					  enum xb_state s)
{
	char val[4];

	snprintf(val, sizeof(val), "%d", (int)s);
	return write_node(h, ch->be, "state", val);
}

enum store_result store_set_frontend_tty(struct xs_handle *h, const struct store_channel *ch,
					 const char *tty)
{
	return write_node(h, ch->fe, "tty", tty);
}

/* ---- the frontend's values and the toolstack's endpoint -------------------------- */

/* The frontend's dir/leaf as a number from min to max; if not, msg says
 * "F/leaf is absent", or is what (not a number the guest may give). */
static enum store_result frontend_number(struct xs_handle *h, const struct store_channel *ch,
					 const char *leaf, unsigned long min, unsigned long max,
					 unsigned long *v, const char *what, char *msg,
					 size_t msglen)
{
	char path[STORE_NODE_MAX], val[32];

	store_join(path, ch->fe, leaf);
	if (strict_read(h, path, val, sizeof(val))) {   /* if not, errno says why */
		if (strict_uint(val, max, v) && *v >= min)
			return STORE_OK;
		errno = EINVAL;
	}
	say(msg, msglen, "%s is %s", path, errno == ENOENT ? "absent" : what);
	return errno == ENOENT ? STORE_NOT_FOUND : STORE_INVALID;
}

enum store_result store_frontend_ring(struct xs_handle *h, const struct store_channel *ch,
				      struct store_ring *ri, char *msg, size_t msglen)
{
	unsigned long ref, port;
	enum store_result r;

	r = frontend_number(h, ch, "ring-ref", 0, UINT32_MAX, &ref, "not a grant reference",
			    msg, msglen);
	/* port 0 is never a valid event channel */
	if (r == STORE_OK)
		r = frontend_number(h, ch, "port", 1, INT32_MAX, &port,
				    "not an event channel port", msg, msglen);
	if (r != STORE_OK)
		return r;
	ri->ring_ref = ref;
	ri->port = port;
	return STORE_OK;
}

bool store_frontend_limit(struct xs_handle *h, const struct store_channel *ch,
			  unsigned long *limit)
{
	char val[32];

	return strict_leaf(h, ch->fe, "limit", val, sizeof(val))
		&& strict_uint(val, LIMIT_MAX, limit);
}

enum store_result store_backend_connection(struct xs_handle *h, const struct store_channel *ch,
					   char *conn, size_t connlen, char *path, size_t pathlen)
{
	if (!strict_leaf(h, ch->be, "connection", conn, connlen))
		return STORE_NOT_FOUND;
	path[0] = '\0';
	if (strcmp(conn, "socket") == 0) {
		if (!strict_leaf(h, ch->be, "path", path, pathlen) || path[0] != '/')
			return STORE_INVALID;
		return STORE_OK;
	}
	return strcmp(conn, "pty") == 0 ? STORE_OK : STORE_INVALID;
}

/* ---- watches and the domain's death ----------------------------------------------- */

bool store_watch_channel(struct xs_handle *h, const struct store_channel *ch)
{
	return xs_watch(h, ch->fe, "fe") && xs_watch(h, ch->be, "be")
		&& xs_watch(h, "@releaseDomain", "rel");
}

unsigned store_drain_watches(struct xs_handle *h)
{
	unsigned fired = 0;
	char **ev;

	while ((ev = xs_check_watch(h)) != NULL) {
		const char *token = ev[XS_WATCH_TOKEN];
		fired |= strcmp(token, "fe") == 0 ? STORE_WATCH_FRONTEND
			: strcmp(token, "be") == 0 ? STORE_WATCH_BACKEND : STORE_WATCH_RELEASE;
		free(ev);
	}
	return fired;
}

bool store_domain_alive(struct xs_handle *h, unsigned domid)
{
	return xs_is_domain_introduced(h, domid);
}
