/*
 * xs.c - xenstore for xenchan-proxy: lookup, states, watches, domain death.
 *
 * Every value below the frontend directory is written by the guest and may be
 * anything: each is read once, bounded, parsed strictly and only then used.
 * The backend directory K is never trusted from the frontend's "backend" node:
 * we compute it from (B, D, N) and only check that the frontend agrees.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xenstore.h>
#include "monotime.h"
#include "strict.h"
#include "xs.h"

#define VALUE_MAX 4096           /* xenstore's payload bound */
#define CONSOLE_DEVID_MAX 65535  /* xenbus device ids are 16-bit in libxl */

static const char *const state_names[] = {
	"Unknown", "Initialising", "InitWait", "Initialised", "Connected",
	"Closing", "Closed", "Reconfiguring", "Reconfigured",
};

const char *xb_state_name(enum xb_state s)
{
	return (unsigned)s < sizeof(state_names) / sizeof(state_names[0])
		? state_names[s] : "Invalid";
}

/* dir/leaf into a buffer of NODE_MAX bytes.  Our directories are at most
 * XS_PATH_MAX and our leaf names short, so this never truncates. */
#define NODE_MAX (XS_PATH_MAX + 32)
static void join(char *buf, const char *dir, const char *leaf)
{
	size_t d = strnlen(dir, XS_PATH_MAX - 1), l = strnlen(leaf, 31);

	memcpy(buf, dir, d);
	buf[d] = '/';
	memcpy(buf + d + 1, leaf, l);
	buf[d + 1 + l] = '\0';
}

/* xenchan-dm's names for strict.h's functions, until it includes strict.h. */
bool xs_parse_canonical(const char *s, unsigned long max, unsigned long *out)
{
	return strict_canonical(s, max, out);
}

bool xs_read_leaf(struct xs_handle *h, const char *dir, const char *leaf,
		  char *buf, size_t cap)
{
	return strict_leaf(h, dir, leaf, buf, cap);
}

void xs_copy_printable(char *dst, size_t cap, const char *src)
{
	strict_printable(dst, cap, src);
}

static bool exists(struct xs_handle *h, const char *path)
{
	unsigned int len;
	char *v = xs_read(h, XBT_NULL, path, &len);

	free(v);
	return v != NULL;
}

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
	char clean[XS_NAME_MAX];

	strict_printable(clean, sizeof(clean), item);
	if (used + 1 < msglen)
		snprintf(msg + used, msglen - used, "%s%s", used ? ", " : "", clean);
}

enum xs_result xs_find_domain(struct xs_handle *h, const char *arg,
			      struct xs_channel *ch, char *msg, size_t msglen)
{
	char path[XS_PATH_MAX], name[XS_NAME_MAX];
	unsigned long domid;
	unsigned int n, found = 0;
	char **doms;

	if (strict_uint(arg, 0x7fef, &domid)) {   /* DOMID_FIRST_RESERVED */
		snprintf(path, sizeof(path), "/local/domain/%lu", domid);
		if (!exists(h, path)) {
			say(msg, msglen, "no domain %lu (%s)", domid, path);
			return XSR_NOT_FOUND;
		}
		ch->domid = domid;
		snprintf(path, sizeof(path), "/local/domain/%lu/name", domid);
		if (!strict_read(h, path, name, sizeof(name)))
			name[0] = '\0';
		strict_printable(ch->domain_name, sizeof(ch->domain_name), name);
		return XSR_OK;
	}
	doms = xs_directory(h, XBT_NULL, "/local/domain", &n);
	if (doms == NULL) {
		say(msg, msglen, "xs_directory /local/domain: %s", strerror(errno));
		return XSR_FAILED;
	}
	char names[512] = "";
	for (unsigned int i = 0; i < n; i++) {
		if (!strict_uint(doms[i], 0x7fef, &domid))
			continue;
		snprintf(path, sizeof(path), "/local/domain/%lu/name", domid);
		if (!strict_read(h, path, name, sizeof(name)))
			continue;
		say_more(names, sizeof(names), name);
		if (strcmp(name, arg) == 0 && found++ == 0) {
			ch->domid = domid;
			strict_printable(ch->domain_name, sizeof(ch->domain_name), name);
		}
	}
	free(doms);
	if (found == 1)
		return XSR_OK;
	if (found > 1)
		say(msg, msglen, "%u domains are named %s", found, arg);
	else
		say(msg, msglen, "no domain named %s (domains: %s)", arg, names);
	return found ? XSR_AMBIGUOUS : XSR_NOT_FOUND;
}

/* A device directory's name as we would write it: the paths we build
 * ("%u") must lead back to it, so "05" or "007" is no device of ours. */
static bool devid_node(const char *name, unsigned long *id)
{
	return strict_canonical(name, CONSOLE_DEVID_MAX, id);
}

enum xs_result xs_pick_channel(const char *const *devids,
			       const char *const *names, size_t n,
			       const char *want, size_t *index)
{
	unsigned long want_id;
	size_t found = 0;

	if (strict_uint(want, CONSOLE_DEVID_MAX, &want_id)) {
		if (want_id == 0)
			return XSR_INVALID;   /* the primary console is not a channel */
		for (size_t i = 0; i < n; i++) {
			unsigned long id;
			if (devid_node(devids[i], &id) && id == want_id) {
				*index = i;
				return XSR_OK;
			}
		}
		return XSR_NOT_FOUND;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned long id;
		if (!devid_node(devids[i], &id) || id == 0)
			continue;
		if (names[i] != NULL && strcmp(names[i], want) == 0 && found++ == 0)
			*index = i;
	}
	return found == 1 ? XSR_OK : found ? XSR_AMBIGUOUS : XSR_NOT_FOUND;
}

static void channel_paths(struct xs_channel *ch, unsigned devid)
{
	ch->devid = devid;
	snprintf(ch->fe, sizeof(ch->fe), "/local/domain/%u/device/console/%u",
		 ch->domid, devid);
	snprintf(ch->be, sizeof(ch->be), "/local/domain/%u/backend/console/%u/%u",
		 ch->backend_domid, ch->domid, devid);
}

/* Read the "name" node of every console device of the domain. */
static char **read_channel_names(struct xs_handle *h, unsigned domid,
				 char **devids, unsigned n)
{
	char **names = calloc(n ? n : 1, sizeof(*names));
	char path[XS_PATH_MAX], name[XS_NAME_MAX];

	for (unsigned i = 0; names && i < n; i++) {
		snprintf(path, sizeof(path), "/local/domain/%u/device/console/%.16s/name",
			 domid, devids[i]);
		if (strict_read(h, path, name, sizeof(name)))
			names[i] = strdup(name);
	}
	return names;
}

enum xs_result xs_find_channel(struct xs_handle *h, const char *arg,
			       unsigned backend_domid, struct xs_channel *ch,
			       char *msg, size_t msglen)
{
	char path[XS_PATH_MAX];
	unsigned int n = 0;
	size_t idx = 0;
	char **devids, **names;
	enum xs_result r;

	ch->backend_domid = backend_domid;
	snprintf(path, sizeof(path), "/local/domain/%u/device/console", ch->domid);
	devids = xs_directory(h, XBT_NULL, path, &n);
	if (devids == NULL && errno != ENOENT) {
		say(msg, msglen, "xs_directory %s: %s", path, strerror(errno));
		return XSR_FAILED;
	}
	names = read_channel_names(h, ch->domid, devids, n);
	if (names == NULL) {
		free(devids);
		say(msg, msglen, "out of memory");
		return XSR_FAILED;
	}
	r = xs_pick_channel((const char *const *)devids, (const char *const *)names,
			    n, arg, &idx);
	if (r == XSR_OK) {
		unsigned long id;
		strict_uint(devids[idx], CONSOLE_DEVID_MAX, &id);
		channel_paths(ch, id);
		strict_printable(ch->name, sizeof(ch->name), names[idx] ? names[idx] : "");
	} else {
		char list[512] = "";
		for (unsigned i = 0; i < n; i++)
			if (strcmp(devids[i], "0") != 0)
				say_more(list, sizeof(list), names[i] ? names[i] : devids[i]);
		say(msg, msglen, r == XSR_INVALID ? "console 0 is the primary console, not a channel"
		    : "%s channel %s in %s (channels: %s)",
		    r == XSR_AMBIGUOUS ? "more than one" : "no", arg, path, n ? list : "none");
	}
	for (unsigned i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(devids);
	return r;
}

enum xs_result xs_check_channel(struct xs_handle *h, const struct xs_channel *ch,
				char *msg, size_t msglen)
{
	char path[NODE_MAX], val[XS_PATH_MAX];
	unsigned long id;

	join(path, ch->fe, "backend");
	if (!strict_read(h, path, val, sizeof(val)) || strcmp(val, ch->be) != 0) {
		say(msg, msglen, "%s does not name %s", path, ch->be);
		return XSR_INVALID;
	}
	join(path, ch->fe, "backend-id");
	if (!strict_read(h, path, val, sizeof(val)) || !strict_uint(val, 0x7fef, &id)
	    || id != ch->backend_domid) {
		say(msg, msglen, "%s is not %u", path, ch->backend_domid);
		return XSR_INVALID;
	}
	join(path, ch->be, "frontend-id");
	if (!strict_read(h, path, val, sizeof(val)) || !strict_uint(val, 0x7fef, &id)
	    || id != ch->domid) {
		say(msg, msglen, "%s is not %u (no backend directory?)", path, ch->domid);
		return XSR_INVALID;
	}
	return XSR_OK;
}

static enum xb_state read_state(struct xs_handle *h, const char *dir, bool *present)
{
	char path[NODE_MAX], val[16];
	unsigned long s;

	join(path, dir, "state");
	if (!strict_read(h, path, val, sizeof(val))) {
		*present = errno != ENOENT && errno != EACCES;
		return XB_UNKNOWN;
	}
	*present = true;
	if (!strict_uint(val, XB_RECONFIGURED, &s))
		return XB_UNKNOWN;
	return (enum xb_state)s;
}

/* A directory is present if it can be read at all. */
static bool dir_present(struct xs_handle *h, const char *dir)
{
	return exists(h, dir);
}

enum xb_state xs_frontend_state(struct xs_handle *h, const struct xs_channel *ch,
				bool *present)
{
	enum xb_state s = read_state(h, ch->fe, present);

	if (!*present)
		*present = dir_present(h, ch->fe);
	return s;
}

enum xb_state xs_backend_state(struct xs_handle *h, const struct xs_channel *ch,
			       bool *present)
{
	enum xb_state s = read_state(h, ch->be, present);

	if (!*present)
		*present = dir_present(h, ch->be);
	return s;
}

/* Write dir/nodes[i] = values[i] (with values NULL: remove each node), all
 * n in one transaction that first checks dir exists. */
static enum xs_result write_if_present(struct xs_handle *h, const char *dir,
				       const char *const *nodes, const char *const *values,
				       size_t n)
{
	char path[NODE_MAX];

	for (int attempt = 0; attempt < 16; attempt++) {
		unsigned int len;
		xs_transaction_t t = xs_transaction_start(h);
		char *probe;

		if (t == XBT_NULL)
			return XSR_FAILED;
		probe = xs_read(h, t, dir, &len);
		if (probe == NULL) {
			xs_transaction_end(h, t, true);
			return XSR_GONE;
		}
		free(probe);
		for (size_t i = 0; i < n; i++) {
			join(path, dir, nodes[i]);
			if (values ? !xs_write(h, t, path, values[i], strlen(values[i]))
			    : !xs_rm(h, t, path) && errno != ENOENT) {
				int e = errno;
				xs_transaction_end(h, t, true);
				errno = e;
				return XSR_FAILED;
			}
		}
		if (xs_transaction_end(h, t, false))
			return XSR_OK;
		if (errno != EAGAIN)
			return XSR_FAILED;
	}
	errno = EAGAIN;
	return XSR_FAILED;
}

static enum xs_result write_one_if_present(struct xs_handle *h, const char *dir,
					   const char *node, const char *value)
{
	return write_if_present(h, dir, &node, &value, 1);
}

enum xs_result xs_set_backend_state(struct xs_handle *h,
				    const struct xs_channel *ch, enum xb_state s)
{
	char val[4];

	snprintf(val, sizeof(val), "%d", (int)s);
	return write_one_if_present(h, ch->be, "state", val);
}

enum xs_result xs_set_frontend_tty(struct xs_handle *h, const struct xs_channel *ch,
				   const char *tty)
{
	return write_one_if_present(h, ch->fe, "tty", tty);
}

enum xs_result xs_frontend_ring(struct xs_handle *h, const struct xs_channel *ch,
				struct xs_ring_info *ri, char *msg, size_t msglen)
{
	char path[NODE_MAX], val[32];
	unsigned long ref, port;

	join(path, ch->fe, "ring-ref");
	if (!strict_read(h, path, val, sizeof(val)) || (!strict_uint(val, UINT32_MAX, &ref)
						     && (errno = EINVAL))) {
		say(msg, msglen, "%s is %s", path, errno == ENOENT ? "absent" : "not a grant reference");
		return errno == ENOENT ? XSR_NOT_FOUND : XSR_INVALID;
	}
	join(path, ch->fe, "port");
	/* port 0 is never a valid event channel */
	if (!strict_read(h, path, val, sizeof(val))
	    || ((!strict_uint(val, INT32_MAX, &port) || port == 0) && (errno = EINVAL))) {
		say(msg, msglen, "%s is %s", path, errno == ENOENT ? "absent" : "not an event channel port");
		return errno == ENOENT ? XSR_NOT_FOUND : XSR_INVALID;
	}
	ri->ring_ref = ref;
	ri->port = port;
	return XSR_OK;
}

bool xs_frontend_limit(struct xs_handle *h, const struct xs_channel *ch,
		       unsigned long *limit)
{
	char path[NODE_MAX], val[32];

	join(path, ch->fe, "limit");
	return strict_read(h, path, val, sizeof(val)) && strict_uint(val, 1UL << 30, limit);
}

enum xs_result xs_backend_connection(struct xs_handle *h, const struct xs_channel *ch,
				     char *conn, size_t connlen,
				     char *path, size_t pathlen)
{
	char node[NODE_MAX];

	join(node, ch->be, "connection");
	if (!strict_read(h, node, conn, connlen))
		return XSR_NOT_FOUND;
	path[0] = '\0';
	if (strcmp(conn, "socket") == 0) {
		join(node, ch->be, "path");
		if (!strict_read(h, node, path, pathlen) || path[0] != '/')
			return XSR_INVALID;
		return XSR_OK;
	}
	return strcmp(conn, "pty") == 0 ? XSR_OK : XSR_INVALID;
}

bool xs_watch_channel(struct xs_handle *h, const struct xs_channel *ch)
{
	return xs_watch(h, ch->fe, "fe") && xs_watch(h, ch->be, "be")
		&& xs_watch(h, "@releaseDomain", "rel");
}

unsigned xs_drain_watches(struct xs_handle *h)
{
	unsigned fired = 0;
	char **ev;

	while ((ev = xs_check_watch(h)) != NULL) {
		const char *token = ev[XS_WATCH_TOKEN];
		fired |= strcmp(token, "fe") == 0 ? XS_WATCH_FRONTEND
			: strcmp(token, "be") == 0 ? XS_WATCH_BACKEND : XS_WATCH_RELEASE;
		free(ev);
	}
	return fired;
}

bool xs_domain_alive(struct xs_handle *h, unsigned domid)
{
	return xs_is_domain_introduced(h, domid);
}

/* ---- hotplug ------------------------------------------------------------------
 * A channel we create gets the node set and permissions libxl gives a console
 * device, with a frontend "type" no other backend claims (QEMU serves only
 * "ioemu", xenconsoled only "xenconsoled"), so nobody races us for it.
 */
#define HOTPLUG_TYPE   "xenchan"
#define DEVID_FIRST    1
#define DEVID_LAST     9   /* hvc_xen reads the devid from one digit */

struct node { const char *leaf, *value; };

static bool write_nodes(struct xs_handle *h, xs_transaction_t t, const char *dir,
			const struct node *nodes, const struct xs_permissions *perms,
			unsigned nperms)
{
	char path[NODE_MAX];

	for (; nodes->leaf; nodes++) {
		join(path, dir, nodes->leaf);
		if (!xs_write(h, t, path, nodes->value, strlen(nodes->value)))
			return false;
		if (perms && !xs_set_permissions(h, t, path, (struct xs_permissions *)perms, nperms))
			return false;
	}
	return true;
}

/* The lowest devid in 1..9 with no frontend, or *devid itself if it is not
 * 0 and free; XSR_EXISTS-like answers by name: *taken is set to the devid
 * already called name, if any. */
static enum xs_result pick_free_devid(struct xs_handle *h, xs_transaction_t t,
				      unsigned domid, const char *name,
				      unsigned *devid, unsigned *taken)
{
	char path[XS_PATH_MAX], leaf[16], val[XS_NAME_MAX];
	bool used[DEVID_LAST + 1] = { true };
	unsigned n = 0;
	char **ids;

	snprintf(path, sizeof(path), "/local/domain/%u/device/console", domid);
	ids = xs_directory(h, t, path, &n);
	*taken = 0;
	for (unsigned i = 0; ids && i < n; i++) {
		unsigned long id;
		char node[NODE_MAX];
		unsigned int len;
		char *v;

		if (!strict_uint(ids[i], CONSOLE_DEVID_MAX, &id))
			continue;
		if (id <= DEVID_LAST)
			used[id] = true;
		snprintf(leaf, sizeof(leaf), "%lu/name", id);
		join(node, path, leaf);
		v = xs_read(h, t, node, &len);
		if (v && len < sizeof(val) && strcmp(v, name) == 0 && id != 0)
			*taken = id;
		free(v);
	}
	free(ids);
	if (*taken)
		return XSR_AMBIGUOUS;
	if (*devid != 0)
		return *devid <= DEVID_LAST && !used[*devid] ? XSR_OK : XSR_NOT_FOUND;
	for (unsigned id = DEVID_FIRST; id <= DEVID_LAST; id++)
		if (!used[id]) {
			*devid = id;
			return XSR_OK;
		}
	return XSR_NOT_FOUND;
}

static bool create_nodes(struct xs_handle *h, xs_transaction_t t, const struct xs_channel *ch,
			 const char *limit, const char *connection, const char *path)
{
	char d[16], b[16], lx[XS_PATH_MAX];
	struct xs_permissions fe_perms[2] = {
		{ ch->domid, XS_PERM_NONE }, { ch->backend_domid, XS_PERM_READ } };
	struct xs_permissions be_perms[2] = {
		{ ch->backend_domid, XS_PERM_NONE }, { ch->domid, XS_PERM_READ } };
	snprintf(d, sizeof(d), "%u", ch->domid);
	snprintf(b, sizeof(b), "%u", ch->backend_domid);
	const struct node fe_guest[] = {
		{ "backend", ch->be }, { "backend-id", b }, { "state", "1" },
		{ "protocol", "vt100" }, { NULL, NULL } };
	const struct node fe_ours[] = {
		{ "name", ch->name }, { "limit", limit }, { "type", HOTPLUG_TYPE },
		{ "output", connection }, { "tty", "" }, { NULL, NULL } };
	const struct node be_nodes[] = {
		{ "frontend", ch->fe }, { "frontend-id", d }, { "online", "1" },
		{ "state", "1" }, { "protocol", "vt100" }, { "name", ch->name },
		{ "connection", connection }, { "path", path }, { NULL, NULL } };
	const struct node lx_nodes[] = {
		{ "frontend", ch->fe }, { "backend", ch->be }, { "frontend-id", d },
		{ "online", "1" }, { "state", "1" }, { "protocol", "vt100" },
		{ "name", ch->name }, { "connection", connection }, { "path", path },
		{ NULL, NULL } };

	snprintf(lx, sizeof(lx), "/libxl/%u/device/console/%u", ch->domid, ch->devid);
	return xs_mkdir(h, t, ch->fe) && xs_set_permissions(h, t, ch->fe, fe_perms, 2)
		&& write_nodes(h, t, ch->fe, fe_guest, NULL, 0)
		&& write_nodes(h, t, ch->fe, fe_ours, be_perms, 2)
		&& xs_mkdir(h, t, ch->be) && xs_set_permissions(h, t, ch->be, be_perms, 2)
		&& write_nodes(h, t, ch->be, be_nodes, NULL, 0)
		&& write_nodes(h, t, lx, lx_nodes, NULL, 0);
}

enum xs_result xs_create_channel(struct xs_handle *h, struct xs_channel *ch,
				 const char *name, unsigned long limit,
				 const char *connection, const char *path,
				 unsigned *existing, char *msg, size_t msglen)
{
	char lim[24];
	unsigned want = ch->devid;

	snprintf(lim, sizeof(lim), "%lu", limit);
	strict_printable(ch->name, sizeof(ch->name), name);
	for (int attempt = 0; attempt < 64; attempt++) {
		xs_transaction_t t = xs_transaction_start(h);
		enum xs_result r;
		unsigned devid = want;

		if (t == XBT_NULL) {
			say(msg, msglen, "xs_transaction_start: %s", strerror(errno));
			return XSR_FAILED;
		}
		r = pick_free_devid(h, t, ch->domid, name, &devid, existing);
		if (r != XSR_OK) {
			xs_transaction_end(h, t, true);
			if (r == XSR_NOT_FOUND && want)
				say(msg, msglen, "devid %u is in use", want);
			else if (r == XSR_NOT_FOUND)
				say(msg, msglen, "devids 1 to 9 are all in use (hvc_xen reads one digit)");
			else
				say(msg, msglen, "channel %s exists (devid %u)", name, *existing);
			return r;
		}
		channel_paths(ch, devid);
		if (!create_nodes(h, t, ch, lim, connection, path ? path : "")) {
			int e = errno;
			xs_transaction_end(h, t, true);
			say(msg, msglen, "writing %s: %s", ch->fe, strerror(e));
			return XSR_FAILED;
		}
		if (xs_transaction_end(h, t, false))
			return XSR_OK;
		if (errno != EAGAIN) {
			say(msg, msglen, "xs_transaction_end: %s", strerror(errno));
			return XSR_FAILED;
		}
	}
	say(msg, msglen, "xenstore transactions kept conflicting");
	return XSR_FAILED;
}

/* Remove path, then each parent left empty, up to (not including) stop:
 * as libxl cleans up a device, so an unplug leaves the tree as it was. */
static void rm_with_empty_parents(struct xs_handle *h, xs_transaction_t t,
				  const char *path, const char *stop)
{
	char cur[XS_PATH_MAX];
	size_t stop_len = strlen(stop);
	unsigned n;
	char **kids, *slash;

	snprintf(cur, sizeof(cur), "%s", path);
	xs_rm(h, t, cur);
	while ((slash = strrchr(cur, '/')) != NULL && (size_t)(slash - cur) > stop_len) {
		*slash = '\0';
		kids = xs_directory(h, t, cur, &n);
		free(kids);
		if (kids == NULL || n > 0)
			break;
		xs_rm(h, t, cur);
	}
}

enum xs_result xs_remove_channel(struct xs_handle *h, const struct xs_channel *ch)
{
	char lx[XS_PATH_MAX], fe_top[XS_PATH_MAX], be_top[XS_PATH_MAX], lx_top[XS_PATH_MAX];

	snprintf(lx, sizeof(lx), "/libxl/%u/device/console/%u", ch->domid, ch->devid);
	snprintf(fe_top, sizeof(fe_top), "/local/domain/%u", ch->domid);
	snprintf(be_top, sizeof(be_top), "/local/domain/%u", ch->backend_domid);
	snprintf(lx_top, sizeof(lx_top), "/libxl/%u", ch->domid);
	for (int attempt = 0; attempt < 64; attempt++) {
		xs_transaction_t t = xs_transaction_start(h);

		if (t == XBT_NULL)
			return XSR_FAILED;
		rm_with_empty_parents(h, t, ch->fe, fe_top);
		rm_with_empty_parents(h, t, ch->be, be_top);
		rm_with_empty_parents(h, t, lx, lx_top);
		if (xs_transaction_end(h, t, false))
			return XSR_OK;
		if (errno != EAGAIN)
			return XSR_FAILED;
	}
	return XSR_FAILED;
}

bool xs_channel_is_ours(struct xs_handle *h, const struct xs_channel *ch)
{
	char path[NODE_MAX], val[32];

	join(path, ch->fe, "type");
	return strict_read(h, path, val, sizeof(val)) && strcmp(val, HOTPLUG_TYPE) == 0;
}

/* The proxy serving a channel, in the backend directory (owned by the
 * backend domain: the guest cannot forge it): its pid, as every reader has
 * known it, and beside it, written in the same transaction, its start time,
 * which tells a later process that reused the pid from it. */
#define SERVER_PID_NODE   "xenchan-pid"
#define SERVER_START_NODE "xenchan-pid-start"

enum xs_result xs_set_server_pid(struct xs_handle *h, const struct xs_channel *ch, long pid,
				 unsigned long long start)
{
	const char *nodes[] = { SERVER_PID_NODE, SERVER_START_NODE };
	char pidval[24], startval[24];
	const char *values[] = { pidval, startval };

	if (pid <= 0)
		return write_if_present(h, ch->be, nodes, NULL, 2);
	snprintf(pidval, sizeof(pidval), "%ld", pid);
	snprintf(startval, sizeof(startval), "%llu", start);
	return write_if_present(h, ch->be, nodes, values, start ? 2 : 1);
}

long xs_server_pid(struct xs_handle *h, const struct xs_channel *ch, unsigned long long *start)
{
	char path[NODE_MAX], val[24];
	unsigned long pid, st;

	if (start)
		*start = 0;
	join(path, ch->be, SERVER_PID_NODE);
	if (!strict_read(h, path, val, sizeof(val)) || !strict_uint(val, 1UL << 30, &pid))
		return 0;
	join(path, ch->be, SERVER_START_NODE);
	if (start && strict_read(h, path, val, sizeof(val)) && strict_uint(val, ULONG_MAX, &st))
		*start = st;
	return (long)pid;
}

/* ---- looking at channels and waiting on them ------------------------------------- */

bool xs_wait_frontend(struct xs_handle *h, const struct xs_channel *ch, bool want_gone,
		      int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	bool ok = false;

	if (!xs_watch(h, ch->fe, "wait"))
		return false;
	for (;;) {
		bool present;
		enum xb_state s = xs_frontend_state(h, ch, &present);
		struct pollfd pfd = { .fd = xs_fileno(h), .events = POLLIN };
		int left;

		if (!present || (!want_gone && s == XB_CLOSED)) {
			ok = true;
			break;
		}
		left = mono_until(deadline);
		if (left == 0 || poll(&pfd, 1, left) <= 0)
			break;
		xs_drain_watches(h);
	}
	xs_unwatch(h, ch->fe, "wait");
	return ok;
}

static void read_leaf(struct xs_handle *h, const char *dir, const char *leaf,
		      char *buf, size_t cap)
{
	char path[NODE_MAX], raw[XS_PATH_MAX];

	join(path, dir, leaf);
	if (strict_read(h, path, raw, sizeof(raw)))
		strict_printable(buf, cap, raw);
	else
		buf[0] = '\0';
}

int xs_list_channels(struct xs_handle *h, const struct xs_channel *dom,
		     struct xs_channel_info *out, int max)
{
	char path[XS_PATH_MAX];
	unsigned n = 0;
	int found = 0;
	char **ids;

	snprintf(path, sizeof(path), "/local/domain/%u/device/console", dom->domid);
	ids = xs_directory(h, XBT_NULL, path, &n);
	for (unsigned i = 0; ids && i < n && found < max; i++) {
		struct xs_channel_info *ci = &out[found];
		struct xs_channel ch = *dom;
		unsigned long id;
		bool present;

		if (!strict_uint(ids[i], CONSOLE_DEVID_MAX, &id) || id == 0)
			continue;
		channel_paths(&ch, id);
		memset(ci, 0, sizeof(*ci));
		ci->devid = id;
		read_leaf(h, ch.fe, "name", ci->name, sizeof(ci->name));
		read_leaf(h, ch.fe, "type", ci->type, sizeof(ci->type));
		read_leaf(h, ch.be, "connection", ci->connection, sizeof(ci->connection));
		read_leaf(h, ch.be, "path", ci->endpoint, sizeof(ci->endpoint));
		if (ci->endpoint[0] == '\0')
			read_leaf(h, ch.fe, "tty", ci->endpoint, sizeof(ci->endpoint));
		ci->fs = xs_frontend_state(h, &ch, &present);
		ci->bs = xs_backend_state(h, &ch, &present);
		ci->backend_present = present;
		ci->pid = xs_server_pid(h, &ch, &ci->pid_start);
		found++;
	}
	free(ids);
	return found;
}
