/* SPDX-License-Identifier: MIT */
/*
 * hotplug.c - channels created on a running domain, and --list / --remove
 * (see hotplug.h).
 *
 * A channel we create gets the node set and permissions libxl gives a console
 * device, with a frontend "type" no other backend claims (QEMU serves only
 * "ioemu", xenconsoled only "xenconsoled"), so nobody races us for it.  It
 * lives as long as the proxy that created it.  Who serves a channel is
 * recorded in its backend directory (owned by the backend domain, so a guest
 * cannot forge it): its pid and its start time.  A pid alone is reused by any
 * process after its proxy dies; the pair names one process since boot.  A
 * channel whose record names no live process is stale, and may be taken
 * over; only a process that matches its record is signalled.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "hotplug.h"
#include "monotime.h"
#include "nodes.h"
#include "strict.h"

#define REMOVE_WAIT_MS (UNPLUG_WAIT_MS + 5000)
#define SERVER_PID_MAX (1UL << 30)   /* above any pid the kernel hands out */
#define LIST_MAX       64            /* channels --list shows */

/* /proc/PID/FILE into buf, NUL-terminated; its length, or -1. */
static ssize_t read_proc(long pid, const char *file, char *buf, size_t cap)
{
	char path[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/%s", pid, file);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return n;
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks
 * after boot.  The command name before it is in parentheses and may hold
 * spaces and parentheses itself: count fields after the last ')'. */
static bool start_time(long pid, unsigned long long *start)
{
	char buf[1024], *p, *end;

	if (read_proc(pid, "stat", buf, sizeof(buf)) < 0)
		return false;
	p = strrchr(buf, ')');
	for (int field = 2; p != NULL && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL)
		return false;
	errno = 0;
	*start = strtoull(p + 1, &end, 10);
	return errno == 0 && end != p + 1 && (*end == ' ' || *end == '\0');
}

unsigned long long hotplug_own_start(void)
{
	unsigned long long start;

	return start_time(getpid(), &start) ? start : 0;
}

/* A record without a start time (written by an older proxy): the best we
 * can say is whether the pid's command line names the program. */
static bool names_proxy(long pid)
{
	char cmd[4096];
	ssize_t n = read_proc(pid, "cmdline", cmd, sizeof(cmd));

	for (ssize_t i = 0; i < n; i++)   /* argv joined by NULs */
		if (cmd[i] == '\0')
			cmd[i] = ' ';
	return n > 0 && strstr(cmd, "xenchan-proxy") != NULL;
}

enum hotplug_server hotplug_server(long pid, unsigned long long start)
{
	unsigned long long now;

	if (pid <= 0)
		return SERVER_GONE;
	if (start == 0)
		return names_proxy(pid) ? SERVER_UNVERIFIED : SERVER_GONE;
	return start_time(pid, &now) && now == start ? SERVER_ALIVE : SERVER_GONE;
}

/* ---- the record of who serves a channel ------------------------------------------- */

enum store_result hotplug_write_server(struct xs_handle *h, const struct store_channel *ch,
				       long pid, unsigned long long start)
{
	const char *nodes[] = { NODE_SERVER_PID, NODE_SERVER_START };
	char pidval[24], startval[24];
	const char *values[] = { pidval, startval };

	if (pid <= 0)
		return store_write_nodes(h, ch->be, nodes, NULL, 2);
	snprintf(pidval, sizeof(pidval), "%ld", pid);
	snprintf(startval, sizeof(startval), "%llu", start);
	return store_write_nodes(h, ch->be, nodes, values, start ? 2 : 1);
}

long hotplug_read_server(struct xs_handle *h, const struct store_channel *ch,
			 unsigned long long *start)
{
	char val[24];
	unsigned long pid, st;

	if (start)
		*start = 0;
	if (!strict_leaf(h, ch->be, NODE_SERVER_PID, val, sizeof(val))
	    || !strict_uint(val, SERVER_PID_MAX, &pid))
		return 0;
	if (start && strict_leaf(h, ch->be, NODE_SERVER_START, val, sizeof(val))
	    && strict_uint(val, ULONG_MAX, &st))
		*start = st;
	return (long)pid;
}

/* ---- creating a channel ------------------------------------------------------------ */

struct node { const char *leaf, *value; };

static bool write_nodes(struct xs_handle *h, xs_transaction_t t, const char *dir,
			const struct node *nodes, const struct xs_permissions *perms,
			unsigned nperms)
{
	char path[STORE_NODE_MAX];

	for (; nodes->leaf; nodes++) {
		store_join(path, dir, nodes->leaf);
		if (!xs_write(h, t, path, nodes->value, strlen(nodes->value)))
			return false;
		if (perms && !xs_set_permissions(h, t, path, (struct xs_permissions *)perms, nperms))
			return false;
	}
	return true;
}

/* The lowest free devid in HOTPLUG_DEVID_FIRST..LAST, or *devid itself if
 * it is not 0 and free (STORE_NOT_FOUND: none).  A devid is taken by any
 * numbered entry, "05" included; a channel already called name is one the
 * lookup would find (a devid as we write it): STORE_AMBIGUOUS, *taken. */
static enum store_result pick_free_devid(struct xs_handle *h, xs_transaction_t t,
					 unsigned domid, const char *name, unsigned *devid,
					 unsigned *taken)
{
	bool used[HOTPLUG_DEVID_LAST + 1] = { true };
	struct store_consoles c;
	unsigned long id;

	*taken = 0;
	store_scan_consoles(h, t, domid, &c);   /* unreadable: as if empty */
	for (unsigned i = 0; i < c.n; i++) {
		if (!strict_uint(c.entries[i], CONSOLE_DEVID_MAX, &id))
			continue;
		if (id <= HOTPLUG_DEVID_LAST)
			used[id] = true;
		if (id != 0 && c.names[i] && strcmp(c.names[i], name) == 0
		    && store_devid(c.entries[i], &id))
			*taken = id;
	}
	store_consoles_free(&c);
	if (*taken)
		return STORE_AMBIGUOUS;
	if (*devid != 0)
		return *devid <= HOTPLUG_DEVID_LAST && !used[*devid] ? STORE_OK : STORE_NOT_FOUND;
	for (*devid = HOTPLUG_DEVID_FIRST; *devid <= HOTPLUG_DEVID_LAST; ++*devid)
		if (!used[*devid])
			return STORE_OK;
	return STORE_NOT_FOUND;
}

static bool create_nodes(struct xs_handle *h, xs_transaction_t t, const struct store_channel *ch,
			 const char *limit, const char *connection, const char *path)
{
	char d[16], b[16], lx[STORE_PATH_MAX];
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
		{ "name", ch->name }, { "limit", limit }, { "type", TYPE_HOTPLUG },
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

	snprintf(lx, sizeof(lx), PATH_LIBXL_DEVICE, ch->domid, ch->devid);
	return xs_mkdir(h, t, ch->fe) && xs_set_permissions(h, t, ch->fe, fe_perms, 2)
		&& write_nodes(h, t, ch->fe, fe_guest, NULL, 0)
		&& write_nodes(h, t, ch->fe, fe_ours, be_perms, 2)
		&& xs_mkdir(h, t, ch->be) && xs_set_permissions(h, t, ch->be, be_perms, 2)
		&& write_nodes(h, t, ch->be, be_nodes, NULL, 0)
		&& write_nodes(h, t, lx, lx_nodes, NULL, 0);
}

struct creation {
	struct store_channel *ch;
	unsigned want;                   /* the devid asked for, 0: any */
	const char *name, *limit, *connection, *path;
	unsigned *existing;
	char *msg;
	size_t msglen;
};

/* One attempt of hotplug_create, inside its transaction. */
static enum store_result create_in(struct xs_handle *h, xs_transaction_t t, void *arg)
{
	struct creation *c = arg;
	unsigned devid = c->want;
	enum store_result r = pick_free_devid(h, t, c->ch->domid, c->name, &devid, c->existing);

	if (r == STORE_NOT_FOUND && c->want)
		snprintf(c->msg, c->msglen, "devid %u is in use", c->want);
	else if (r == STORE_NOT_FOUND)
		snprintf(c->msg, c->msglen, "devids %d to %d are all in use (hvc_xen reads one "
			 "digit)", HOTPLUG_DEVID_FIRST, HOTPLUG_DEVID_LAST);
	else if (r != STORE_OK)
		snprintf(c->msg, c->msglen, "channel %s exists (devid %u)", c->name, *c->existing);
	if (r != STORE_OK)
		return r;
	store_channel_paths(c->ch, devid);
	if (!create_nodes(h, t, c->ch, c->limit, c->connection, c->path)) {
		snprintf(c->msg, c->msglen, "writing %s: %s", c->ch->fe, strerror(errno));
		return STORE_FAILED;
	}
	return STORE_OK;
}

enum store_result hotplug_create(struct xs_handle *h, struct store_channel *ch,
				 const char *name, unsigned long limit, const char *connection,
				 const char *path, unsigned *existing, char *msg, size_t msglen)
{
	char lim[24];
	struct creation c = { ch, ch->devid, name, lim, connection, path ? path : "", existing,
			      msg, msglen };

	snprintf(lim, sizeof(lim), "%lu", limit);
	strict_printable(ch->name, sizeof(ch->name), name);
	return store_transaction(h, create_in, &c, msg, msglen);
}

/* ---- removing a channel ------------------------------------------------------------ */

/* Remove path, then each parent left empty, up to (not including) stop:
 * as libxl cleans up a device, so an unplug leaves the tree as it was. */
static void rm_with_empty_parents(struct xs_handle *h, xs_transaction_t t,
				  const char *path, const char *stop)
{
	char cur[STORE_PATH_MAX];
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

/* One attempt of hotplug_remove_nodes, inside its transaction. */
static enum store_result remove_in(struct xs_handle *h, xs_transaction_t t, void *arg)
{
	const struct store_channel *ch = arg;
	char lx[STORE_PATH_MAX], fe_top[STORE_PATH_MAX], be_top[STORE_PATH_MAX];
	char lx_top[STORE_PATH_MAX];

	snprintf(lx, sizeof(lx), PATH_LIBXL_DEVICE, ch->domid, ch->devid);
	snprintf(fe_top, sizeof(fe_top), PATH_DOMAIN, ch->domid);
	snprintf(be_top, sizeof(be_top), PATH_DOMAIN, ch->backend_domid);
	snprintf(lx_top, sizeof(lx_top), PATH_LIBXL_DOMAIN, ch->domid);
	rm_with_empty_parents(h, t, ch->fe, fe_top);
	rm_with_empty_parents(h, t, ch->be, be_top);
	rm_with_empty_parents(h, t, lx, lx_top);
	return STORE_OK;
}

enum store_result hotplug_remove_nodes(struct xs_handle *h, const struct store_channel *ch)
{
	return store_transaction(h, remove_in, (void *)ch, NULL, 0);
}

bool hotplug_is_ours(struct xs_handle *h, const struct store_channel *ch)
{
	char val[32];

	return strict_leaf(h, ch->fe, "type", val, sizeof(val)) && strcmp(val, TYPE_HOTPLUG) == 0;
}

bool hotplug_wait_frontend(struct xs_handle *h, const struct store_channel *ch,
			   bool want_gone, int timeout_ms)
{
	int64_t deadline = mono_ms() + timeout_ms;
	bool ok = false;

	if (!xs_watch(h, ch->fe, "wait"))
		return false;
	for (;;) {
		bool present;
		enum xb_state s = store_frontend_state(h, ch, &present);
		struct pollfd pfd = { .fd = xs_fileno(h), .events = POLLIN };
		int left;

		if (!present || (!want_gone && s == XB_CLOSED)) {
			ok = true;
			break;
		}
		left = mono_until(deadline);
		if (left == 0 || poll(&pfd, 1, left) <= 0)
			break;
		store_drain_watches(h);
	}
	xs_unwatch(h, ch->fe, "wait");
	return ok;
}

enum store_result hotplug_unplug(struct xs_handle *h, const struct store_channel *ch,
				 int wait_ms, char *msg, size_t msglen)
{
	bool closed, fe_present, probed;
	struct store_ring ri;
	char why[128];

	if (store_set_backend_state(h, ch, XB_CLOSING) == STORE_GONE) {
		snprintf(msg, msglen, "already removed");
		return STORE_GONE;
	}
	/* Linux answers backend Closing with frontend Closed, then drops its
	 * hvc device once the nodes go.  A frontend still Initialising with
	 * no ring has no driver watching it (none loaded, or a device left
	 * stale by a restore): nobody will answer, so do not wait. */
	probed = store_frontend_state(h, ch, &fe_present) != XB_INITIALISING
		|| store_frontend_ring(h, ch, &ri, why, sizeof(why)) == STORE_OK;
	closed = !fe_present || !probed || hotplug_wait_frontend(h, ch, false, wait_ms);
	store_set_backend_state(h, ch, XB_CLOSED);
	if (hotplug_remove_nodes(h, ch) != STORE_OK) {
		snprintf(msg, msglen, "removing %s and %s: %s", ch->fe, ch->be, strerror(errno));
		return STORE_FAILED;
	}
	snprintf(msg, msglen, !probed ? "unplugged (the guest had not taken it up)" : closed
		 ? "unplugged" : "unplugged; the guest did not close the channel within %d ms",
		 wait_ms);
	return STORE_OK;
}

/* ---- the commands ------------------------------------------------------------------ */

/* dir/leaf as printable text into buf, "" if absent or unreadable. */
static void read_printable(struct xs_handle *h, const char *dir, const char *leaf, char *buf,
			   size_t cap)
{
	char raw[STORE_PATH_MAX];

	if (strict_leaf(h, dir, leaf, raw, sizeof(raw)))
		strict_printable(buf, cap, raw);
	else
		buf[0] = '\0';
}

static void channel_info(struct xs_handle *h, const struct store_channel *ch, const char *name,
			 struct hotplug_channel_info *ci)
{
	bool present;

	memset(ci, 0, sizeof(*ci));
	ci->devid = ch->devid;
	strict_printable(ci->name, sizeof(ci->name), name ? name : "");
	read_printable(h, ch->fe, "type", ci->type, sizeof(ci->type));
	read_printable(h, ch->be, "connection", ci->connection, sizeof(ci->connection));
	read_printable(h, ch->be, "path", ci->endpoint, sizeof(ci->endpoint));
	if (ci->endpoint[0] == '\0')
		read_printable(h, ch->fe, "tty", ci->endpoint, sizeof(ci->endpoint));
	ci->fs = store_frontend_state(h, ch, &present);
	ci->bs = store_backend_state(h, ch, &present);
	ci->backend_present = present;
	ci->pid = hotplug_read_server(h, ch, &ci->pid_start);
}

int hotplug_channels(struct xs_handle *h, const struct store_channel *dom,
		     struct hotplug_channel_info *out, int max)
{
	struct store_consoles c;
	int found = 0;

	store_scan_consoles(h, XBT_NULL, dom->domid, &c);   /* unreadable: none */
	for (unsigned i = 0; i < c.n && found < max; i++) {
		struct store_channel ch = *dom;
		unsigned long id;

		if (!store_devid(c.entries[i], &id) || id == 0)
			continue;
		store_channel_paths(&ch, id);
		channel_info(h, &ch, c.names[i], &out[found++]);
	}
	store_consoles_free(&c);
	return found;
}

int hotplug_list(struct xs_handle *h, const struct store_channel *dom, FILE *out)
{
	struct hotplug_channel_info ci[LIST_MAX];
	int n = hotplug_channels(h, dom, ci, LIST_MAX);

	fprintf(out, "%-5s %-32s %-13s %-13s %-10s %-8s %-13s %s\n", "DEVID", "NAME",
		"FRONTEND", "BACKEND", "CONN", "TYPE", "SERVER", "PATH/TTY");
	for (int i = 0; i < n; i++) {
		char server[32];

		static const char *const mark[] = {
			[SERVER_GONE] = " (stale)", [SERVER_ALIVE] = "",
			[SERVER_UNVERIFIED] = " (unverified)",
		};

		if (ci[i].pid == 0)
			snprintf(server, sizeof(server), "-");
		else
			snprintf(server, sizeof(server), "%ld%s", ci[i].pid,
				 mark[hotplug_server(ci[i].pid, ci[i].pid_start)]);
		fprintf(out, "%-5u %-32s %-13s %-13s %-10s %-8s %-13s %s\n", ci[i].devid,
			ci[i].name[0] ? ci[i].name : "-", store_state_name(ci[i].fs),
			ci[i].backend_present ? store_state_name(ci[i].bs) : "(none)",
			ci[i].connection[0] ? ci[i].connection : "-",
			ci[i].type[0] ? ci[i].type : "-", server,
			ci[i].endpoint[0] ? ci[i].endpoint : "-");
	}
	return ferror(out) ? EX_IOERR : 0;
}

int hotplug_remove(struct xs_handle *h, const struct store_channel *ch, char *msg, size_t msglen)
{
	unsigned long long start;
	long pid = hotplug_read_server(h, ch, &start);

	if (!hotplug_is_ours(h, ch)) {
		snprintf(msg, msglen, "%s was not created by xenchan-proxy: remove it "
			 "with the toolstack", ch->fe);
		return EX_DATAERR;
	}
	/* Only the very process recorded is signalled; any other (a record
	 * without a start time included) is left alone, and the channel is
	 * unplugged here: a proxy still serving it sees it removed and ends. */
	if (hotplug_server(pid, start) == SERVER_ALIVE) {
		/* Its proxy unplugs it on SIGTERM; wait for the nodes to go. */
		if (kill(pid, SIGTERM) < 0) {
			snprintf(msg, msglen, "kill %ld: %s", pid, strerror(errno));
			return EX_NOPERM;
		}
		if (!hotplug_wait_frontend(h, ch, true, REMOVE_WAIT_MS)) {
			snprintf(msg, msglen, "proxy %ld did not remove %s within %d ms",
				 pid, ch->fe, REMOVE_WAIT_MS);
			return EX_TEMPFAIL;
		}
		snprintf(msg, msglen, "proxy %ld unplugged it", pid);
		return 0;
	}
	return hotplug_unplug(h, ch, UNPLUG_WAIT_MS, msg, msglen) == STORE_FAILED
		? EX_UNAVAILABLE : 0;
}
