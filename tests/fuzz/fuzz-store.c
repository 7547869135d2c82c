/* SPDX-License-Identifier: MIT */
/*
 * fuzz-store.c - every function of the proxy's xenstore modules (store.c,
 * the xenstore half of hotplug.c, strict.c's reads) over a xenstore that
 * answers anything.
 *
 * This harness defines the libxenstore calls they make (xs_read,
 * xs_directory, xs_write, transactions, watches ...) and is linked without
 * libxenstore, so they run unchanged against a scripted store: each call
 * takes its answer from the input - a value of any length and bytes
 * (embedded NULs, 4 KiB, nothing), a listing of any names, an errno, a
 * transaction conflict - which covers the guest rewriting a node between two
 * reads.  The first bytes choose the channel, the function and its
 * arguments; the rest is the script.  After the call:
 *   - results agree with references built from what the store said, using
 *     the headers' contracts: strict_read's bound and NUL rule, strict numbers,
 *     states 0..8, check_channel's three nodes, the pick rule for channels;
 *     a refusal names a node that was read and was wrong;
 *   - returned strings and msg are NUL-terminated within their buffers
 *     (exact heap allocations, so ASan sees any overflow) and names are
 *     printable;
 *   - every transaction started is ended and every watch set is removed;
 *     every committed write, mkdir, rm or permission change is inside the
 *     channel's own directories, a write only after reading its directory in
 *     the same transaction, and a parent is removed only when the same
 *     transaction listed it empty, never the domain's own directory.
 * FUZZ_STORE_TRACE=1 prints the store's answers (for writing seeds).
 */
#include <limits.h>
#include <unistd.h>
#include <xenstore.h>
#include "fuzz-input.h"
#include "fuzz-ref.h"
#include "hotplug.h"
#include "nodes.h"
#include "store.h"
#include "strict.h"

#define PATH_CAP  512      /* longer than any path the modules build */
#define LOG_MAX   8192     /* more calls than any of their functions makes */
#define LIST_MAX  32
#define NAME_CAP  STORE_NAME_MAX

/* ---- the scripted store -------------------------------------------------- */

enum call { C_READ, C_DIR, C_WRITE, C_MKDIR, C_RM, C_PERMS };

struct answer {
	enum call call;
	char path[PATH_CAP];
	xs_transaction_t t;
	bool ok;              /* present / succeeded */
	int err;
	char *val;            /* read: the value; write: the data */
	unsigned len;
	char **list;          /* directory: a copy of the listing */
	unsigned n;
};

static struct fin script;
static struct answer answers[LOG_MAX];
static size_t nanswers;
static int open_transactions;
static xs_transaction_t committed[LOG_MAX];
static size_t ncommitted;
static unsigned next_transaction;
static int watches;   /* set and not removed */

static struct answer *record(enum call call, const char *path, xs_transaction_t t)
{
	struct answer *a;
	size_t len = strnlen(path, PATH_CAP);

	FUZZ_CHECK(len < PATH_CAP && (path[0] == '/' || path[0] == '@'));
	FUZZ_CHECK(nanswers < LOG_MAX);
	a = &answers[nanswers++];
	memset(a, 0, sizeof(*a));
	a->call = call;
	memcpy(a->path, path, len + 1);
	a->t = t;
	if (t != XBT_NULL)
		FUZZ_CHECK(open_transactions > 0);
	return a;
}

/* Success, or a failure with an errno, as the script says (default: success). */
static bool script_ok(void)
{
	uint8_t b;

	if (fin_empty(&script))
		return true;
	b = fin_u8(&script);
	if (b % 4 != 0)
		return true;
	errno = b & 4 ? EACCES : EIO;
	return false;
}

/* n bytes in one allocation holding a vector of strings and the strings,
 * as libxenstore returns listings and watch events. */
static char **string_vector(char *const *strs, unsigned n)
{
	size_t total = n * sizeof(char *);
	char **v, *p;

	for (unsigned i = 0; i < n; i++)
		total += strlen(strs[i]) + 1;
	v = malloc(total ? total : 1);
	FUZZ_CHECK(v != NULL);
	p = (char *)(v + n);
	for (unsigned i = 0; i < n; i++) {
		size_t l = strlen(strs[i]) + 1;
		memcpy(p, strs[i], l);
		v[i] = p;
		p += l;
	}
	return v;
}

void *xs_read(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *len)
{
	struct answer *a = record(C_READ, path, t);
	uint8_t kind = fin_u8(&script);
	size_t n;
	const uint8_t *bytes;
	char *v;

	(void)h;
	if (kind % 8 < 3) {
		errno = kind % 8 == 0 ? ENOENT : kind % 8 == 1 ? EACCES : EIO;
		a->err = errno;
		return NULL;
	}
	bytes = fin_bytes(&script, kind & 0x80 ? fin_u16(&script) % 4200 : fin_u8(&script), &n);
	v = malloc(n + 1);
	a->val = malloc(n + 1);
	FUZZ_CHECK(v != NULL && a->val != NULL);
	memcpy(v, bytes, n);
	v[n] = '\0';
	memcpy(a->val, v, n + 1);
	a->ok = true;
	a->len = n;
	*len = n;
	return v;
}

char **xs_directory(struct xs_handle *h, xs_transaction_t t, const char *path, unsigned int *num)
{
	struct answer *a = record(C_DIR, path, t);
	uint8_t kind = fin_u8(&script);
	char *names[LIST_MAX];
	unsigned n;
	char **v;

	(void)h;
	if (kind % 4 < 2) {
		errno = kind % 4 == 0 ? ENOENT : (kind & 4 ? EACCES : EIO);
		a->err = errno;
		return NULL;
	}
	n = fin_u8(&script) % (LIST_MAX + 1);
	for (unsigned i = 0; i < n; i++)
		names[i] = fin_str(&script, fin_u8(&script) % 24);
	v = string_vector(names, n);
	a->list = string_vector(names, n);
	for (unsigned i = 0; i < n; i++)
		free(names[i]);
	a->ok = true;
	a->n = n;
	*num = n;
	return v;
}

static bool changed(enum call call, xs_transaction_t t, const char *path,
		    const void *data, unsigned len)
{
	struct answer *a = record(call, path, t);
	bool ok = script_ok();

	a->ok = ok;
	a->err = ok ? 0 : errno;
	a->val = malloc(len + 1);
	FUZZ_CHECK(a->val != NULL);
	if (len)
		memcpy(a->val, data, len);   /* ASan: the data is all there */
	a->val[len] = '\0';
	a->len = len;
	return ok;
}

bool xs_write(struct xs_handle *h, xs_transaction_t t, const char *path,
	      const void *data, unsigned int len)
{
	(void)h;
	return changed(C_WRITE, t, path, data, len);
}

bool xs_mkdir(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	(void)h;
	return changed(C_MKDIR, t, path, NULL, 0);
}

bool xs_rm(struct xs_handle *h, xs_transaction_t t, const char *path)
{
	(void)h;
	return changed(C_RM, t, path, NULL, 0);
}

bool xs_set_permissions(struct xs_handle *h, xs_transaction_t t, const char *path,
			struct xs_permissions *perms, unsigned int num_perms)
{
	(void)h;
	FUZZ_CHECK(num_perms > 0 && num_perms < 16);
	return changed(C_PERMS, t, path, perms, num_perms * sizeof(*perms));
}

xs_transaction_t xs_transaction_start(struct xs_handle *h)
{
	(void)h;
	if (!script_ok())
		return XBT_NULL;
	open_transactions++;
	return ++next_transaction;
}

bool xs_transaction_end(struct xs_handle *h, xs_transaction_t t, bool abort_it)
{
	uint8_t b;

	(void)h;
	FUZZ_CHECK(t != XBT_NULL && t <= next_transaction && open_transactions > 0);
	open_transactions--;
	if (abort_it)
		return true;
	b = fin_u8(&script);
	if (b % 4 == 1) {
		errno = EAGAIN;
		return false;
	}
	if (b % 8 == 2) {
		errno = EIO;
		return false;
	}
	if (ncommitted < LOG_MAX)
		committed[ncommitted++] = t;
	return true;
}

bool xs_watch(struct xs_handle *h, const char *path, const char *token)
{
	(void)h;
	FUZZ_CHECK(strnlen(path, PATH_CAP) < PATH_CAP && strlen(token) < 16);
	if (!script_ok())
		return false;
	watches++;
	return true;
}

bool xs_unwatch(struct xs_handle *h, const char *path, const char *token)
{
	(void)h;
	FUZZ_CHECK(strnlen(path, PATH_CAP) < PATH_CAP && strlen(token) < 16);
	FUZZ_CHECK(watches > 0);
	watches--;
	return script_ok();
}

/* Always readable, so that a wait loop spins on the script, not the clock. */
int xs_fileno(struct xs_handle *h)
{
	static int fds[2] = { -1, -1 };

	(void)h;
	if (fds[0] < 0 && (pipe(fds) != 0 || write(fds[1], "w", 1) != 1))
		abort();
	return fds[0];
}

char **xs_check_watch(struct xs_handle *h)
{
	uint8_t b = fin_u8(&script);
	char *ev[2];
	char **v;

	(void)h;
	if (b % 4 == 0) {
		errno = EAGAIN;
		return NULL;
	}
	ev[0] = fin_str(&script, 64);
	ev[1] = b % 4 == 1 ? strdup("fe") : b % 4 == 2 ? strdup("be") : fin_str(&script, 16);
	FUZZ_CHECK(ev[1] != NULL);
	v = string_vector(ev, 2);
	free(ev[0]);
	free(ev[1]);
	return v;
}

bool xs_is_domain_introduced(struct xs_handle *h, unsigned int domid)
{
	(void)h;
	(void)domid;
	return script_ok();
}

/* ---- references ------------------------------------------------------------ */

/* The last answer to a read of path, NULL if it was not read. */
static const struct answer *read_of(const char *path)
{
	for (size_t i = nanswers; i-- > 0;)
		if (answers[i].call == C_READ && strcmp(answers[i].path, path) == 0)
			return &answers[i];
	return NULL;
}

/* What strict_read() accepts: present, shorter than cap, no NUL inside. */
static bool str_ok(const struct answer *a, size_t cap)
{
	return a != NULL && a->ok && a->len < cap && strlen(a->val) == a->len;
}

static bool uint_ok(const struct answer *a, size_t cap, unsigned long max, unsigned long *v)
{
	return str_ok(a, cap) && ref_parse_uint(a->val, max, v);
}

static void check_printable(const char *s, size_t cap)
{
	FUZZ_CHECK(memchr(s, '\0', cap) != NULL);
	for (; *s; s++)
		FUZZ_CHECK(*s >= 0x20 && *s < 0x7f);
}

static void check_printable_copy(const char *s, size_t cap, const char *of)
{
	size_t i;

	check_printable(s, cap);
	for (i = 0; i + 1 < cap && of[i]; i++)
		FUZZ_CHECK(s[i] == ((of[i] >= 0x20 && of[i] < 0x7f) ? of[i] : '?'));
	FUZZ_CHECK(s[i] == '\0');
}

static bool is_committed(xs_transaction_t t)
{
	if (t == XBT_NULL)
		return true;
	for (size_t i = 0; i < ncommitted; i++)
		if (committed[i] == t)
			return true;
	return false;
}

static bool under(const char *path, const char *dir)
{
	size_t l = strlen(dir);

	return dir[0] != '\0' && strncmp(path, dir, l) == 0 && (path[l] == '\0' || path[l] == '/');
}

/* Every committed change is inside one of dirs. */
static void check_changes_within(const char *const *dirs, size_t ndirs)
{
	for (size_t i = 0; i < nanswers; i++) {
		const struct answer *a = &answers[i];
		bool inside = false;

		if (a->call == C_READ || a->call == C_DIR || !a->ok || !is_committed(a->t))
			continue;
		for (size_t d = 0; d < ndirs; d++)
			inside |= under(a->path, dirs[d]);
		if (!inside) {
			fprintf(stderr, "change outside the channel: %s\n", a->path);
			abort();
		}
	}
}

/* ---- the calls --------------------------------------------------------------- */

enum op {
	FRONTEND_RING, FRONTEND_LIMIT, FRONTEND_STATE, BACKEND_STATE, CHECK_CHANNEL,
	BACKEND_CONNECTION, SERVER_PID, IS_OURS, FIND_DOMAIN, FIND_CHANNEL,
	SET_BACKEND_STATE, SET_FRONTEND_TTY, SET_SERVER_PID, CREATE_CHANNEL,
	REMOVE_CHANNEL, WATCH, DRAIN_WATCHES, DOMAIN_ALIVE, LIST_CHANNELS, WAIT_FRONTEND,
	READ_LEAF, OPS
};

struct call_ctx {
	struct store_channel ch;
	char *msg;
	size_t msglen;
	char *arg;
	struct fin *f;
};

#define H ((struct xs_handle *)0x1)   /* never dereferenced: the store is above */

static void node(char *buf, const char *dir, const char *leaf)
{
	snprintf(buf, PATH_CAP, "%s/%s", dir, leaf);
}

static void frontend_ring(struct call_ctx *c)
{
	struct store_ring ri = { 0xdeadbeef, 0xdeadbeef };
	char p1[PATH_CAP], p2[PATH_CAP];
	unsigned long ref = 0, port = 0;
	enum store_result r = store_frontend_ring(H, &c->ch, &ri, c->msg, c->msglen);
	const struct answer *a, *b;
	bool ok;

	node(p1, c->ch.fe, "ring-ref");
	node(p2, c->ch.fe, "port");
	a = read_of(p1);
	b = read_of(p2);
	ok = uint_ok(a, 32, UINT32_MAX, &ref) && uint_ok(b, 32, INT32_MAX, &port) && port != 0;
	FUZZ_CHECK((r == STORE_OK) == ok);
	FUZZ_CHECK(r == STORE_OK || r == STORE_NOT_FOUND || r == STORE_INVALID);
	if (ok)
		FUZZ_CHECK(ri.ring_ref == ref && ri.port == port);
	else   /* refused for a node it read, never without reading it */
		FUZZ_CHECK(!uint_ok(a, 32, UINT32_MAX, &ref) || b != NULL);
}

static void frontend_limit(struct call_ctx *c)
{
	char p[PATH_CAP];
	unsigned long limit = 777, ref = 0;
	bool r = store_frontend_limit(H, &c->ch, &limit);

	node(p, c->ch.fe, "limit");
	FUZZ_CHECK(read_of(p) != NULL);
	FUZZ_CHECK(r == uint_ok(read_of(p), 32, 1UL << 30, &ref));
	if (r)
		FUZZ_CHECK(limit == ref);
}

static void state(struct call_ctx *c, bool frontend)
{
	const char *dir = frontend ? c->ch.fe : c->ch.be;
	char p[PATH_CAP];
	const struct answer *a, *d;
	unsigned long ref = 0;
	bool present = false, ref_present;
	enum xb_state s = frontend ? store_frontend_state(H, &c->ch, &present)
		: store_backend_state(H, &c->ch, &present);

	FUZZ_CHECK((unsigned)s <= XB_RECONFIGURED);   /* a state, whatever the guest wrote */
	node(p, dir, "state");
	a = read_of(p);
	d = read_of(dir);
	FUZZ_CHECK(a != NULL);
	FUZZ_CHECK(s == (uint_ok(a, 16, XB_RECONFIGURED, &ref) ? ref : XB_UNKNOWN));
	ref_present = a->ok || (a->err != ENOENT && a->err != EACCES);
	if (!ref_present)
		ref_present = d != NULL && d->ok;
	FUZZ_CHECK(present == ref_present);
}

static void check_channel(struct call_ctx *c)
{
	char p1[PATH_CAP], p2[PATH_CAP], p3[PATH_CAP];
	const struct answer *be, *b, *f;
	unsigned long bid = 0, fid = 0;
	enum store_result r = store_check_channel(H, &c->ch, c->msg, c->msglen);
	bool be_ok, bid_ok, fid_ok, ok;

	node(p1, c->ch.fe, "backend");
	node(p2, c->ch.fe, "backend-id");
	node(p3, c->ch.be, "frontend-id");
	be = read_of(p1);
	b = read_of(p2);
	f = read_of(p3);
	be_ok = str_ok(be, STORE_PATH_MAX) && strcmp(be->val, c->ch.be) == 0;
	bid_ok = uint_ok(b, STORE_PATH_MAX, DOMID_MAX, &bid) && bid == c->ch.backend_domid;
	fid_ok = uint_ok(f, STORE_PATH_MAX, DOMID_MAX, &fid) && fid == c->ch.domid;
	ok = be_ok && bid_ok && fid_ok;
	FUZZ_CHECK(r == (ok ? STORE_OK : STORE_INVALID));
	if (!ok)   /* refused for a node it read */
		FUZZ_CHECK(!be_ok || (b != NULL && !bid_ok) || (f != NULL && !fid_ok));
}

static void backend_connection(struct call_ctx *c)
{
	size_t connlen = 1 + fin_u16(c->f) % 300, pathlen = 1 + fin_u16(c->f) % 300;
	char *conn = malloc(connlen), *path = malloc(pathlen);
	char p1[PATH_CAP], p2[PATH_CAP];
	const struct answer *a, *b;
	enum store_result r, ref;

	FUZZ_CHECK(conn != NULL && path != NULL);
	memset(conn, 'C', connlen);
	memset(path, 'P', pathlen);
	r = store_backend_connection(H, &c->ch, conn, connlen, path, pathlen);
	node(p1, c->ch.be, "connection");
	node(p2, c->ch.be, "path");
	a = read_of(p1);
	b = read_of(p2);
	FUZZ_CHECK(a != NULL);
	if (!str_ok(a, connlen))
		ref = STORE_NOT_FOUND;
	else if (strcmp(a->val, "socket") == 0)
		ref = b != NULL && str_ok(b, pathlen) && b->val[0] == '/' ? STORE_OK
			: b != NULL ? STORE_INVALID : STORE_FAILED;   /* the path must be read */
	else
		ref = strcmp(a->val, "pty") == 0 ? STORE_OK : STORE_INVALID;
	FUZZ_CHECK(r == ref);
	if (r == STORE_OK) {
		FUZZ_CHECK(memchr(conn, '\0', connlen) && memchr(path, '\0', pathlen));
		FUZZ_CHECK(strcmp(conn, "pty") == 0 || (strcmp(conn, "socket") == 0 && path[0] == '/'));
		FUZZ_CHECK(strcmp(conn, "socket") == 0 || path[0] == '\0');
	}
	free(conn);
	free(path);
}

static void server_pid(struct call_ctx *c)
{
	char p[PATH_CAP], q[PATH_CAP];
	unsigned long ref = 0, sref = 0;
	unsigned long long start = 777;
	long pid = hotplug_read_server(H, &c->ch, &start);

	node(p, c->ch.be, "xenchan-pid");
	node(q, c->ch.be, "xenchan-pid-start");
	FUZZ_CHECK(read_of(p) != NULL);
	FUZZ_CHECK(pid >= 0 && pid <= 1L << 30);
	FUZZ_CHECK(pid == (uint_ok(read_of(p), 24, 1UL << 30, &ref) ? (long)ref : 0));
	/* the start time is read only beside a pid, and strictly */
	FUZZ_CHECK(pid != 0 || (start == 0 && read_of(q) == NULL));
	FUZZ_CHECK(start == (pid != 0 && uint_ok(read_of(q), 24, ULONG_MAX, &sref) ? sref : 0));
}

static void is_ours(struct call_ctx *c)
{
	char p[PATH_CAP];
	const struct answer *a;
	bool r = hotplug_is_ours(H, &c->ch);

	node(p, c->ch.fe, "type");
	a = read_of(p);
	FUZZ_CHECK(a != NULL);
	FUZZ_CHECK(r == (str_ok(a, 32) && strcmp(a->val, "xenchan") == 0));
}

static void find_domain(struct call_ctx *c)
{
	struct store_channel ch = c->ch;
	enum store_result r = store_find_domain(H, c->arg, &ch, c->msg, c->msglen);
	size_t next = 1, found = 0, first = 0;
	unsigned long domid;
	char p[PATH_CAP];

	if (ref_parse_uint(c->arg, DOMID_MAX, &domid)) {
		const struct answer *name;
		snprintf(p, sizeof(p), "/local/domain/%lu", domid);
		FUZZ_CHECK(nanswers >= 1 && strcmp(answers[0].path, p) == 0);
		FUZZ_CHECK(r == (answers[0].ok ? STORE_OK : STORE_NOT_FOUND));
		if (r != STORE_OK)
			return;
		FUZZ_CHECK(ch.domid == domid);
		snprintf(p, sizeof(p), "/local/domain/%lu/name", domid);
		name = read_of(p);
		check_printable_copy(ch.domain_name, sizeof(ch.domain_name),
				     str_ok(name, NAME_CAP) ? name->val : "");
		return;
	}
	/* By name: the listing, then one read of D/name per numeric entry,
	 * in order; the name must be exactly one domain's. */
	FUZZ_CHECK(nanswers >= 1 && answers[0].call == C_DIR
		   && strcmp(answers[0].path, "/local/domain") == 0);
	if (!answers[0].ok) {
		FUZZ_CHECK(r == STORE_FAILED);
		return;
	}
	for (unsigned i = 0; i < answers[0].n; i++) {
		const struct answer *a;
		if (!ref_parse_uint(answers[0].list[i], DOMID_MAX, &domid))
			continue;
		FUZZ_CHECK(next < nanswers);
		a = &answers[next++];
		snprintf(p, sizeof(p), "/local/domain/%lu/name", domid);
		FUZZ_CHECK(a->call == C_READ && strcmp(a->path, p) == 0);
		if (str_ok(a, NAME_CAP) && strcmp(a->val, c->arg) == 0 && found++ == 0)
			first = next - 1;
	}
	FUZZ_CHECK(next == nanswers);
	FUZZ_CHECK(r == (found == 1 ? STORE_OK : found ? STORE_AMBIGUOUS : STORE_NOT_FOUND));
	if (r == STORE_OK) {
		FUZZ_CHECK(ch.domid <= DOMID_MAX);
		snprintf(p, sizeof(p), "/local/domain/%u/name", ch.domid);
		FUZZ_CHECK(strcmp(answers[first].path, p) == 0);
		check_printable_copy(ch.domain_name, sizeof(ch.domain_name), answers[first].val);
	}
}

static void find_channel(struct call_ctx *c)
{
	struct store_channel ch = c->ch;
	unsigned backend = fin_u16(c->f) % (DOMID_MAX + 1);
	enum store_result r = store_find_channel(H, c->arg, backend, &ch, c->msg, c->msglen);
	char p[PATH_CAP], dir[PATH_CAP], *names[LIST_MAX] = { 0 };
	const struct answer *d = &answers[0];
	unsigned long id;
	size_t idx = SIZE_MAX;
	enum store_result ref;

	snprintf(dir, sizeof(dir), "/local/domain/%u/device/console", ch.domid);
	FUZZ_CHECK(nanswers >= 1 && d->call == C_DIR && strcmp(d->path, dir) == 0);
	if (!d->ok && d->err != ENOENT) {
		FUZZ_CHECK(r == STORE_FAILED);
		return;
	}
	/* One read of N/name per entry, in order. */
	FUZZ_CHECK(nanswers == 1 + d->n);
	for (unsigned i = 0; i < d->n; i++) {
		const struct answer *a = &answers[1 + i];
		snprintf(p, sizeof(p), "%s/%.16s/name", dir, d->list[i]);
		FUZZ_CHECK(a->call == C_READ && strcmp(a->path, p) == 0);
		names[i] = str_ok(a, NAME_CAP) ? a->val : NULL;
	}
	ref = ref_pick_channel(d->list, names, d->n, c->arg, &idx);
	FUZZ_CHECK(r == ref);
	if (r != STORE_OK)
		return;
	FUZZ_CHECK(ref_parse_uint(d->list[idx], REF_DEVID_MAX, &id) && ch.devid == id);
	FUZZ_CHECK(ch.backend_domid == backend);
	snprintf(p, sizeof(p), "%s/%lu", dir, id);
	FUZZ_CHECK(strcmp(ch.fe, p) == 0);
	snprintf(p, sizeof(p), "/local/domain/%u/backend/console/%u/%lu", backend, ch.domid, id);
	FUZZ_CHECK(strcmp(ch.be, p) == 0);
	check_printable_copy(ch.name, sizeof(ch.name), names[idx] ? names[idx] : "");
}

/* A write that needs its directory: GONE if the probe of dir found nothing. */
/* Writes of dir/leaves[k] = values[k], k < n, in that order: each attempt
 * reads dir, then writes them in the same transaction. */
static void set_nodes(struct call_ctx *c, enum store_result r, const char *dir,
		      const char *const *leaves, const char *const *values, size_t n)
{
	const char *dirs[] = { dir };
	char p[PATH_CAP];
	size_t k = 0;

	FUZZ_CHECK(open_transactions == 0);
	check_changes_within(dirs, 1);
	for (size_t i = 0; i < nanswers; i++) {
		const struct answer *a = &answers[i];
		if (a->call == C_WRITE) {
			FUZZ_CHECK(k < n);
			node(p, dir, leaves[k]);
			FUZZ_CHECK(strcmp(a->path, p) == 0 && strcmp(a->val, values[k]) == 0);
			/* only after seeing dir (and the writes before it), in the
			 * same transaction */
			FUZZ_CHECK(a->t != XBT_NULL && i > k && answers[i - k - 1].call == C_READ
				   && answers[i - k - 1].ok && answers[i - k - 1].t == a->t);
			for (size_t j = i - k; j < i; j++)
				FUZZ_CHECK(answers[j].call == C_WRITE && answers[j].t == a->t);
			k = a->ok ? k + 1 : 0;
		} else {
			FUZZ_CHECK(a->call == C_READ && strcmp(a->path, dir) == 0);
			k = 0;
		}
	}
	if (r == STORE_OK) {   /* all n went in, the last in a committed transaction */
		FUZZ_CHECK(k == n && nanswers >= n + 1 && answers[nanswers - 1].call == C_WRITE
			   && answers[nanswers - 1].ok
			   && is_committed(answers[nanswers - 1].t));
	}
	if (r == STORE_GONE)
		FUZZ_CHECK(nanswers >= 1 && !answers[nanswers - 1].ok
			   && answers[nanswers - 1].call == C_READ);
	(void)c;
}

static void set_node(struct call_ctx *c, enum store_result r, const char *dir,
		     const char *leaf, const char *value)
{
	set_nodes(c, r, dir, &leaf, &value, 1);
}

static void create_channel(struct call_ctx *c)
{
	struct store_channel ch = c->ch;
	unsigned long limit = fin_u32(c->f);
	char *connection = fin_str(c->f, 16), *path = fin_u8(c->f) & 1 ? fin_str(c->f, 108) : NULL;
	unsigned existing = 12345;
	enum store_result r = hotplug_create(H, &ch, c->arg, limit, connection, path,
					     &existing, c->msg, c->msglen);
	char lx[PATH_CAP];

	FUZZ_CHECK(open_transactions == 0);
	check_printable_copy(ch.name, sizeof(ch.name), c->arg);
	if (r == STORE_OK) {
		const char *dirs[] = { ch.fe, ch.be, lx };
		char p[PATH_CAP];
		const struct answer *list = NULL;
		unsigned long id;

		FUZZ_CHECK(ch.devid >= 1 && ch.devid <= 9);
		snprintf(p, sizeof(p), "/local/domain/%u/device/console/%u", ch.domid, ch.devid);
		FUZZ_CHECK(strcmp(ch.fe, p) == 0);
		snprintf(p, sizeof(p), "/local/domain/%u/backend/console/%u/%u",
			 ch.backend_domid, ch.domid, ch.devid);
		FUZZ_CHECK(strcmp(ch.be, p) == 0);
		snprintf(lx, sizeof(lx), "/libxl/%u/device/console/%u", ch.domid, ch.devid);
		check_changes_within(dirs, 3);
		/* The devid was free in the listing the committed attempt read. */
		for (size_t i = 0; i < nanswers; i++)
			if (answers[i].call == C_DIR && is_committed(answers[i].t))
				list = &answers[i];
		FUZZ_CHECK(list != NULL);
		for (unsigned i = 0; i < list->n; i++)
			FUZZ_CHECK(!ref_parse_uint(list->list[i], REF_DEVID_MAX, &id) || id != ch.devid);
	} else if (r == STORE_AMBIGUOUS) {
		FUZZ_CHECK(existing >= 1 && existing <= REF_DEVID_MAX);
	} else {
		FUZZ_CHECK(r == STORE_NOT_FOUND || r == STORE_FAILED);
	}
	free(connection);
	free(path);
}

/* Removal goes no higher than below top, and a parent goes only when the
 * same transaction listed it empty. */
static void check_removed(const char *path, size_t i, const char *const *leaves,
			  const char *const *tops)
{
	for (int d = 0; d < 3; d++) {
		if (!under(leaves[d], path) || strlen(path) <= strlen(tops[d]))
			continue;
		if (strcmp(path, leaves[d]) == 0)
			return;
		for (size_t j = i; j-- > 0;)
			if (answers[j].call == C_DIR && answers[j].t == answers[i].t
			    && strcmp(answers[j].path, path) == 0) {
				FUZZ_CHECK(answers[j].ok && answers[j].n == 0);
				return;
			}
		fprintf(stderr, "removed %s without listing it\n", path);
		abort();
	}
	fprintf(stderr, "removed %s: not the channel's\n", path);
	abort();
}

static void remove_channel(struct call_ctx *c)
{
	char lx[PATH_CAP], fe_top[PATH_CAP], be_top[PATH_CAP], lx_top[PATH_CAP];
	const char *leaves[] = { c->ch.fe, c->ch.be, lx }, *tops[] = { fe_top, be_top, lx_top };
	enum store_result r = hotplug_remove_nodes(H, &c->ch);

	snprintf(lx, sizeof(lx), "/libxl/%u/device/console/%u", c->ch.domid, c->ch.devid);
	snprintf(fe_top, sizeof(fe_top), "/local/domain/%u", c->ch.domid);
	snprintf(be_top, sizeof(be_top), "/local/domain/%u", c->ch.backend_domid);
	snprintf(lx_top, sizeof(lx_top), "/libxl/%u", c->ch.domid);
	FUZZ_CHECK(r == STORE_OK || r == STORE_FAILED);
	FUZZ_CHECK(open_transactions == 0);
	for (size_t i = 0; i < nanswers; i++) {
		FUZZ_CHECK(answers[i].call == C_RM || answers[i].call == C_DIR);
		if (answers[i].call == C_RM)
			check_removed(answers[i].path, i, leaves, tops);
	}
}

/* --list: whatever the guest wrote, each entry is a channel with printable
 * strings and states that are states. */
static void list_channels(struct call_ctx *c)
{
	int max = fin_u8(c->f) % 70;
	struct hotplug_channel_info *out = malloc((max ? max : 1) * sizeof(*out));
	const struct answer *d;
	unsigned long id;
	int n, numeric = 0;

	FUZZ_CHECK(out != NULL);
	n = hotplug_channels(H, &c->ch, out, max);
	d = &answers[0];
	FUZZ_CHECK(nanswers >= 1 && d->call == C_DIR);
	for (unsigned i = 0; i < d->n; i++)
		numeric += ref_devid_node(d->list[i], &id) && id != 0;
	FUZZ_CHECK(n == (numeric < max ? numeric : max));
	for (int i = 0; i < n; i++) {
		const struct hotplug_channel_info *ci = &out[i];
		FUZZ_CHECK(ci->devid >= 1 && ci->devid <= REF_DEVID_MAX);
		check_printable(ci->name, sizeof(ci->name));
		check_printable(ci->type, sizeof(ci->type));
		check_printable(ci->connection, sizeof(ci->connection));
		check_printable(ci->endpoint, sizeof(ci->endpoint));
		FUZZ_CHECK((unsigned)ci->fs <= XB_RECONFIGURED && (unsigned)ci->bs <= XB_RECONFIGURED);
		FUZZ_CHECK(ci->pid >= 0 && ci->pid <= 1L << 30);
	}
	free(out);
}

/* strict_leaf: exactly strict_read's rule, into a buffer of a chosen size. */
static void read_leaf(struct call_ctx *c)
{
	static const char *const leaves[] = { "name", "tty", "xenchan-pid", "backend-id" };
	size_t cap = 1 + fin_u8(c->f) % 64;
	const char *leaf = leaves[fin_u8(c->f) % 4];
	char *buf = malloc(cap), p[PATH_CAP];
	bool r;

	FUZZ_CHECK(buf != NULL);
	r = strict_leaf(H, c->ch.fe, leaf, buf, cap);
	node(p, c->ch.fe, leaf);
	FUZZ_CHECK(r == str_ok(read_of(p), cap));
	if (r)
		FUZZ_CHECK(strcmp(buf, read_of(p)->val) == 0);
	free(buf);
}

static void wait_frontend(struct call_ctx *c)
{
	bool want_gone = fin_u8(c->f) & 1;
	int timeout_ms = fin_u8(c->f) % 20;

	hotplug_wait_frontend(H, &c->ch, want_gone, timeout_ms);
	FUZZ_CHECK(watches == 0);   /* the wait's watch is gone again */
}

static void one_call(struct call_ctx *c, uint8_t op)
{
	char buf[24];

	switch (op % OPS) {
	case FRONTEND_RING:
		frontend_ring(c);
		break;
	case FRONTEND_LIMIT:
		frontend_limit(c);
		break;
	case FRONTEND_STATE:
	case BACKEND_STATE:
		state(c, op % OPS == FRONTEND_STATE);
		break;
	case CHECK_CHANNEL:
		check_channel(c);
		break;
	case BACKEND_CONNECTION:
		backend_connection(c);
		break;
	case SERVER_PID:
		server_pid(c);
		break;
	case IS_OURS:
		is_ours(c);
		break;
	case FIND_DOMAIN:
		find_domain(c);
		break;
	case FIND_CHANNEL:
		find_channel(c);
		break;
	case SET_BACKEND_STATE: {
		enum xb_state s = fin_u8(c->f) % (XB_RECONFIGURED + 1);
		snprintf(buf, sizeof(buf), "%d", (int)s);
		set_node(c, store_set_backend_state(H, &c->ch, s), c->ch.be, "state", buf);
		break;
	}
	case SET_FRONTEND_TTY:
		set_node(c, store_set_frontend_tty(H, &c->ch, c->arg), c->ch.fe, "tty", c->arg);
		break;
	case SET_SERVER_PID: {
		long pid = (long)fin_u32(c->f) - 16;
		unsigned long long start = fin_u8(c->f) & 1 ? fin_u32(c->f) : 0;
		enum store_result r = hotplug_write_server(H, &c->ch, pid, start);
		const char *dirs[] = { c->ch.be };
		const char *leaves[] = { "xenchan-pid", "xenchan-pid-start" };
		char sbuf[32];
		const char *values[] = { buf, sbuf };
		if (pid > 0) {
			snprintf(buf, sizeof(buf), "%ld", pid);
			snprintf(sbuf, sizeof(sbuf), "%llu", start);
			set_nodes(c, r, c->ch.be, leaves, values, start ? 2 : 1);
		} else {
			check_changes_within(dirs, 1);
		}
		break;
	}
	case CREATE_CHANNEL:
		create_channel(c);
		break;
	case REMOVE_CHANNEL:
		remove_channel(c);
		break;
	case WATCH:
		store_watch_channel(H, &c->ch);
		break;
	case DRAIN_WATCHES:
		FUZZ_CHECK((store_drain_watches(H) & ~7u) == 0);
		break;
	case DOMAIN_ALIVE:
		store_domain_alive(H, c->ch.domid);
		break;
	case LIST_CHANNELS:
		list_channels(c);
		break;
	case WAIT_FRONTEND:
		wait_frontend(c);
		break;
	case READ_LEAF:
		read_leaf(c);
		break;
	}
	/* msg untouched, or a string within msglen. */
	if (c->msg != NULL && c->msglen > 0 && c->msg[0] != '\x7f')
		FUZZ_CHECK(memchr(c->msg, '\0', c->msglen) != NULL);
}

static void trace(uint8_t op)
{
	static const char *const calls[] = { "read", "dir", "write", "mkdir", "rm", "perms" };

	fprintf(stderr, "op %d\n", op % OPS);
	for (size_t i = 0; i < nanswers; i++) {
		const struct answer *a = &answers[i];
		fprintf(stderr, "  %-5s t%u %s: %s", calls[a->call], a->t, a->path,
			a->ok ? "ok" : strerror(a->err));
		if (a->call == C_READ && a->ok)
			fprintf(stderr, " \"%.*s\" (%u bytes)", (int)(a->len < 60 ? a->len : 60), a->val, a->len);
		for (unsigned j = 0; j < a->n; j++)
			fprintf(stderr, "%s%s", j ? "," : " [", a->list[j]);
		fprintf(stderr, "%s\n", a->n ? "]" : "");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	struct call_ctx c = { .f = &f };
	uint8_t op = fin_u8(&f);
	unsigned msglen = fin_u16(&f) % 700;

	c.ch.domid = 1 + fin_u16(&f) % DOMID_MAX;
	c.ch.backend_domid = fin_u16(&f) % (DOMID_MAX + 1);
	c.ch.devid = fin_u16(&f);
	snprintf(c.ch.fe, sizeof(c.ch.fe), "/local/domain/%u/device/console/%u",
		 c.ch.domid, c.ch.devid);
	snprintf(c.ch.be, sizeof(c.ch.be), "/local/domain/%u/backend/console/%u/%u",
		 c.ch.backend_domid, c.ch.domid, c.ch.devid);
	c.msglen = msglen;
	c.msg = msglen ? malloc(msglen) : NULL;
	if (c.msg)
		memset(c.msg, '\x7f', msglen);
	c.arg = fin_str(&f, 160);

	script = f;   /* the rest answers the store's calls */
	nanswers = ncommitted = 0;
	open_transactions = watches = 0;
	next_transaction = 0;
	c.f = &script;
	one_call(&c, op);
	FUZZ_CHECK(open_transactions == 0);
	if (getenv("FUZZ_STORE_TRACE"))   /* for writing seeds: what the store said */
		trace(op);

	for (size_t i = 0; i < nanswers; i++) {
		free(answers[i].val);
		free(answers[i].list);
	}
	free(c.msg);
	free(c.arg);
	return 0;
}
