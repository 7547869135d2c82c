/* SPDX-License-Identifier: MIT */
/*
 * xenstored-sim: a xenstore daemon for tests (see tests/sim/README.md and
 * tests/sim/xenstored-sim.md).
 *
 * It speaks Xen's socket wire protocol (<xen/io/xs_wire.h>), so Debian's
 * unchanged libxenstore.so.4 talks to it through XENSTORED_PATH.  The whole
 * tree lives in memory; permissions are enforced per connection as Xen 4.17's
 * C xenstored does.  A connection to the main socket is dom0 until it says,
 * with the CONTROL command "as-domain D", that it acts as guest D.  With
 * --domain-sockets DIR, each introduced domain D also has DIR/D/xenstored.sock,
 * whose connections act as D from their first byte: an unchanged program run
 * with XENSTORED_PATH set to it is a process of domain D, as a domU's
 * /dev/xen/xenbus is on Xen (xenstored knows the domain from the ring).
 *
 * One epoll loop, no threads, no timers; all state is in one struct daemon.
 * Every queue and table is bounded (limits below); nothing a client sends can
 * crash the daemon or stop it serving the other connections.
 *
 * Usage: xenstored-sim --socket PATH [--domain-sockets DIR] [--pid-file F]
 *                      [--log F] [--verbose]
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <xen/io/xs_wire.h>

/* ---- limits ----------------------------------------------------------------
 * These are safety bounds of the test daemon, not Xen's per-domain quotas
 * (xenstored's quota_* values); quotas are not simulated (see node_create()
 * and req_watch() for where they would be checked). */
#define SIM_MAX_CONNS       1024        /* connections at once */
#define SIM_OUT_MAX         (4u << 20)  /* queued output: beyond, drop the conn */
#define SIM_OUT_PAUSE       (256u << 10)/* stop reading a conn that does not read */
#define SIM_MAX_NODES       100000      /* nodes in one tree */
#define SIM_MAX_WATCHES     1024        /* watches per connection */
#define SIM_MAX_CONN_TXNS   32          /* open transactions per connection */
#define SIM_MAX_TXNS        256         /* open transactions in all */
#define SIM_MAX_TXN_NODES   8192        /* nodes one transaction may access */
#define SIM_MAX_TXN_OPS     4096        /* changes one transaction may make */
#define SIM_ACCEPT_BURST    64          /* accepts per loop pass */
#define SIM_MAX_DOMAIN_SOCKS 4096       /* domains with a socket of their own */

#define SIM_HDR_LEN         sizeof(struct xsd_sockmsg)
#define SIM_PATH_BUF        (XENSTORE_ABS_PATH_MAX + 1)
#define SIM_DOMID_FIRST_RESERVED 0x7FF0u /* xen.h: DOMID_FIRST_RESERVED */
#define SIM_DOMID_SELF      0x7FF0u      /* xen.h: DOMID_SELF */
#define SIM_DOMID_MAX       0xFFFFu      /* domid_t */

/* PERM_IGNORE marks an entry naming a domain that died since it was set
 * (xenstored's XS_PERM_IGNORE): it grants nothing, even to a new domain
 * that gets the same domid. */
enum perm_bits { PERM_NONE = 0, PERM_READ = 1, PERM_WRITE = 2, PERM_OWNER = 4,
		 PERM_IGNORE = 8 };

/* One entry of a node's permission list ("r5" = domain 5 may read). */
struct perm {
	unsigned int domid;
	unsigned int access;            /* PERM_READ | PERM_WRITE */
};

struct node {
	char *name;                     /* last path component; "" for "/" */
	char *value;
	unsigned int value_len;
	struct perm *perms;             /* [0] is the owner and the default */
	unsigned int nperms;
	struct node **kids;             /* in creation order, as xenstored lists them */
	unsigned int nkids, kids_cap;
	struct node *parent;
	uint64_t gen;                   /* bumped on any change of this node */
	bool stub;                      /* a transaction's: only its name, yet */
};

struct tree {
	struct node *root;
	unsigned int nodes;
	struct tree *src;               /* a transaction's: the main tree */
	bool stale;                     /* a node it listed left the main tree */
};

struct watch {
	char *path;                     /* absolute, or "@special" */
	char *token;
	char *rel;                      /* prefix to strip from events, or NULL */
};

/* A node a transaction looked at, and its generation then (0: absent). */
struct txn_access {
	char *path;
	uint64_t gen;
};

/* A change made inside a transaction, replayed on the main tree at commit. */
struct txn_op {
	uint32_t type;                  /* XS_WRITE, XS_MKDIR, XS_RM, XS_SET_PERMS */
	char *path;
	char *data;
	unsigned int len;
	struct perm *perms;
	unsigned int nperms;
};

struct txn {
	uint32_t id;
	struct tree tree;               /* what it has touched, copied lazily */
	struct txn_access *acc;
	unsigned int nacc, acc_cap;
	struct txn_op *ops;
	unsigned int nops, ops_cap;
	int err;                        /* a bound was hit: commit must fail */
};

struct outq {
	char *buf;
	size_t head, len, cap;
};

/* What an epoll event's data.ptr points at: each such object starts with
 * its kind. */
enum ep_kind { EP_CONN, EP_LISTENER, EP_SIGNAL };

/* A listening socket: the main one (dom0's), or domain D's own. */
struct listener {
	enum ep_kind kind;              /* EP_LISTENER (EP_SIGNAL: the signalfd) */
	int fd;                         /* -1 once closed */
	unsigned int domid;             /* whose connections it accepts */
	char *path;                     /* a domain's: its socket file */
	char *dir;                      /* a domain's: the directory holding it */
};

struct conn {
	enum ep_kind kind;              /* EP_CONN */
	int fd;
	unsigned int id;                /* for logs */
	unsigned int domid;             /* 0 unless "as-domain" said otherwise,
					 * or it came in on a domain's socket */
	bool domain_socket;             /* came in on domain domid's socket */
	unsigned char in[SIM_HDR_LEN + XENSTORE_PAYLOAD_MAX];
	size_t in_len;
	struct xsd_sockmsg big_hdr;     /* an oversized request being skipped */
	uint32_t big_left;              /* its payload bytes still to discard */
	struct outq out;
	struct watch *watches;
	unsigned int nwatches, watches_cap;
	struct txn *txns[SIM_MAX_CONN_TXNS];
	unsigned int ntxns;
	uint32_t next_txid;
	bool eof;                       /* peer finished sending */
	bool dead;                      /* close at the end of this loop pass */
	uint32_t events;                /* what epoll watches for on fd */
};

/* Events already fired by the commit being replayed: a transaction fires
 * one event per changed node, as xenstored does, however often it changed. */
struct fired {
	char **paths;
	bool *removal;
	unsigned int n, cap;
};

struct special {
	const char *name;
	struct perm *perms;
	unsigned int nperms;
};

struct daemon {
	const char *socket_path;
	const char *domain_dir;         /* --domain-sockets, or NULL */
	const char *pid_path;
	FILE *log;
	bool verbose;
	struct listener main;           /* socket_path: dom0's connections */
	struct listener sig;            /* the signalfd */
	struct listener *domain_socks[SIM_MAX_DOMAIN_SOCKS];
	unsigned int ndomain_socks;
	int epoll_fd;                   /* epoll, not poll: a host of 1,000 guests
					 * has 2,000 connections, mostly idle */
	bool stop;
	struct tree tree;
	uint64_t generation;
	struct conn *conns[SIM_MAX_CONNS];  /* in connection order */
	unsigned int nconns;
	unsigned int next_conn_id;
	unsigned int ntxns;
	uint8_t introduced[SIM_DOMID_FIRST_RESERVED / 8 + 1];
	struct special special[2];      /* @introduceDomain, @releaseDomain */
	struct fired *fired;            /* non-NULL while a commit replays */
	char fail_path[SIM_PATH_BUF];   /* "fail-write": WRITEs to it fail ENOSPC */
	unsigned int fail_left;         /* ... this many more times */
	char fail_dir_path[SIM_PATH_BUF]; /* "fail-directory": DIRECTORYs of it fail EIO */
	unsigned int fail_dir_left;     /* ... this many more times */
};

/* One request being served. */
struct req {
	struct daemon *d;
	struct conn *c;
	struct xsd_sockmsg hdr;
	const char *data;               /* payload; strings inside are NUL-ended */
	unsigned int len;
	struct txn *txn;                /* the transaction it runs in, or NULL */
};

/* Where a tree operation applies: the main tree or a transaction's copy. */
struct view {
	struct daemon *d;
	unsigned int domid;             /* whose permissions apply */
	struct tree *tree;
	struct txn *txn;                /* non-NULL: record accesses, log changes */
};

/* ---- utilities ------------------------------------------------------------- */

static void sim_log(struct daemon *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sim_log(struct daemon *d, const char *fmt, ...)
{
	struct timespec ts;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(d->log, "%lld.%03ld xenstored-sim: ", (long long)ts.tv_sec,
		ts.tv_nsec / 1000000);
	va_start(ap, fmt);
	vfprintf(d->log, fmt, ap);
	va_end(ap);
	fputc('\n', d->log);
	fflush(d->log);
}

/* Out of memory ends the daemon: the bounds above keep a test far from it,
 * and a half-applied change would make every later answer suspect. */
static void *sim_alloc(size_t n)
{
	void *p = calloc(1, n ? n : 1);

	if (!p) {
		fprintf(stderr, "xenstored-sim: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

static void *sim_realloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (!p) {
		fprintf(stderr, "xenstored-sim: out of memory (%zu bytes)\n", n);
		abort();
	}
	return p;
}

static char *sim_memdup(const void *s, size_t n)
{
	char *p = sim_alloc(n + 1);

	memcpy(p, s, n);
	return p;
}

static char *sim_strdup(const char *s)
{
	return sim_memdup(s, strlen(s));
}

/* Grow an array to hold at least `need` elements. */
static void *sim_grow(void *p, unsigned int *cap, unsigned int need, size_t elem)
{
	unsigned int n = *cap ? *cap : 4;

	if (need <= *cap)
		return p;
	while (n < need)
		n *= 2;
	*cap = n;
	return sim_realloc(p, (size_t)n * elem);
}

/* Strict unsigned decimal: no sign, no space, no junk, no overflow. */
static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (unsigned long)(*s - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return true;
}

static bool parse_domid(const char *s, unsigned int *domid)
{
	unsigned long v;

	if (!parse_uint(s, SIM_DOMID_MAX, &v))
		return false;
	*domid = (unsigned int)v;
	return true;
}

static const char *errno_name(int err)
{
	unsigned int i;

	for (i = 0; i < sizeof(xsd_errors) / sizeof(xsd_errors[0]); i++)
		if (xsd_errors[i].errnum == err)
			return xsd_errors[i].errstring;
	return "EINVAL";        /* as xenstored: an untranslatable errno */
}

/* ---- paths -------------------------------------------------------------------- */

/* Is `child` equal to `parent` or below it? ("/" contains everything.) */
static bool path_within(const char *child, const char *parent)
{
	size_t len = strlen(parent);

	if (!strcmp(parent, "/"))
		return child[0] == '/';
	return !strncmp(child, parent, len) &&
	       (child[len] == '/' || child[len] == '\0');
}

/* Turn "/a/b" into "/a" and "/a" into "/", in place. */
static void path_cut(char *path)
{
	char *slash = strrchr(path, '/');

	if (slash == path)
		path[1] = '\0';
	else if (slash)
		*slash = '\0';
}

/* Length xenstored counts against XENSTORE_REL_PATH_MAX: the part below
 * /local/domain/<domid>/ when there is one, else the whole path. */
static size_t path_rel_len(const char *path)
{
	const char *p = path + strlen("/local/domain/");
	size_t digits = strspn(p, "0123456789");

	if (strncmp(path, "/local/domain/", strlen("/local/domain/")) ||
	    digits == 0 || digits > 5 || p[digits] != '/')
		return strlen(path);
	return strlen(p + digits + 1);
}

/* xenstored's is_valid_nodename(). */
static bool path_valid(const char *path)
{
	size_t len = strlen(path);

	if (path[0] != '/' || len > XENSTORE_ABS_PATH_MAX)
		return false;
	if (len > 1 && path[len - 1] == '/')
		return false;
	if (strstr(path, "//"))
		return false;
	if (path_rel_len(path) > XENSTORE_REL_PATH_MAX)
		return false;
	return strspn(path, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			    "0123456789-/_@") == len;
}

/* Relative paths name nodes below the connection's home, as in xenstored. */
static bool path_canonical(unsigned int domid, const char *in, char *out)
{
	int n;

	if (in[0] == '/' || in[0] == '@')
		n = snprintf(out, SIM_PATH_BUF, "%s", in);
	else
		n = snprintf(out, SIM_PATH_BUF, "/local/domain/%u/%s", domid, in);
	return n >= 0 && n < SIM_PATH_BUF;
}

/* ---- permissions ---------------------------------------------------------------- */

static bool domid_privileged(unsigned int domid)
{
	return domid == 0;
}

/* xenstored's perm_for_conn(): dom0 and the owner get everything; others
 * get their own entry (unless it is ignored), else the first entry's access. */
static unsigned int perm_for(unsigned int domid, const struct perm *p,
			     unsigned int n)
{
	unsigned int i;

	if (domid_privileged(domid) || p[0].domid == domid)
		return PERM_READ | PERM_WRITE | PERM_OWNER;
	for (i = 1; i < n; i++)
		if (p[i].domid == domid && !(p[i].access & PERM_IGNORE))
			return p[i].access;
	return p[0].access & (PERM_READ | PERM_WRITE);
}

static char perm_letter(unsigned int access)
{
	switch (access & (PERM_READ | PERM_WRITE)) {
	case PERM_READ: return 'r';
	case PERM_WRITE: return 'w';
	case PERM_READ | PERM_WRITE: return 'b';
	default: return 'n';
	}
}

/* "r5" → {5, PERM_READ}; false on anything else. */
static bool perm_parse(const char *s, struct perm *p)
{
	const char *letters = "nrwb";
	const char *l = s[0] ? strchr(letters, s[0]) : NULL;

	if (!l || !parse_domid(s + 1, &p->domid))
		return false;
	p->access = (unsigned int)(l - letters);   /* n=0 r=1 w=2 b=3 */
	return true;
}

static struct perm *perms_dup(const struct perm *p, unsigned int n)
{
	struct perm *copy = sim_alloc(n * sizeof(*p));

	memcpy(copy, p, n * sizeof(*p));
	return copy;
}

/* ---- nodes and trees ----------------------------------------------------------- */

static struct node *node_new(const char *name, size_t len)
{
	struct node *n = sim_alloc(sizeof(*n));

	n->name = sim_memdup(name, len);
	return n;
}

static void node_free(struct node *n)
{
	unsigned int i;

	for (i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	free(n->name);
	free(n->value);
	free(n->perms);
	free(n);
}

static unsigned int node_count(const struct node *n)
{
	unsigned int i, count = 1;

	for (i = 0; i < n->nkids; i++)
		count += node_count(n->kids[i]);
	return count;
}

static struct node *node_kid(const struct node *n, const char *name, size_t len)
{
	unsigned int i;

	for (i = 0; i < n->nkids; i++)
		if (!strncmp(n->kids[i]->name, name, len) &&
		    n->kids[i]->name[len] == '\0')
			return n->kids[i];
	return NULL;
}

static void node_add_kid(struct node *parent, struct node *kid)
{
	parent->kids = sim_grow(parent->kids, &parent->kids_cap,
				parent->nkids + 1, sizeof(*parent->kids));
	parent->kids[parent->nkids++] = kid;
	kid->parent = parent;
}

/* Keeps the order of the remaining children (xenstored lists them so). */
static void node_unlink(struct node *kid)
{
	struct node *parent = kid->parent;
	unsigned int i;

	for (i = 0; i < parent->nkids && parent->kids[i] != kid; i++)
		;
	if (i == parent->nkids)
		return;
	memmove(&parent->kids[i], &parent->kids[i + 1],
		(parent->nkids - i - 1) * sizeof(*parent->kids));
	parent->nkids--;
	kid->parent = NULL;
}

static void node_set_value(struct node *n, const char *data, unsigned int len)
{
	free(n->value);
	n->value = len ? sim_memdup(data, len) : NULL;
	n->value_len = len;
}

static void node_set_perms(struct node *n, const struct perm *p, unsigned int np)
{
	free(n->perms);
	n->perms = perms_dup(p, np);
	n->nperms = np;
}

/* Children names, each NUL-terminated, as xenstored stores and sends them. */
static char *node_kids_list(const struct node *n, size_t *len)
{
	size_t total = 0, off = 0;
	unsigned int i;
	char *buf;

	for (i = 0; i < n->nkids; i++)
		total += strlen(n->kids[i]->name) + 1;
	buf = sim_alloc(total);
	for (i = 0; i < n->nkids; i++) {
		size_t l = strlen(n->kids[i]->name) + 1;

		memcpy(buf + off, n->kids[i]->name, l);
		off += l;
	}
	*len = total;
	return buf;
}

static struct node *tree_walk(struct tree *t, const char *path);

/*
 * A transaction's tree starts as a stub root, and each node is copied from
 * the main tree when the transaction first walks through it or looks at it,
 * its children as stubs in turn: a transaction costs what it touches, not
 * the size of the tree (cxenstored, too, reads the main tree until a
 * transaction first touches a node).  The commit's generation check is
 * unchanged: it compares what was copied with what the main tree has then.
 */
static void node_load(struct tree *t, struct node *n, const char *path, size_t len)
{
	char buf[SIM_PATH_BUF];
	struct node *src;
	unsigned int i;

	n->stub = false;
	snprintf(buf, sizeof(buf), "%.*s", (int)len, path);
	src = tree_walk(t->src, buf);
	if (src == NULL) {
		/* Gone from the main tree since its parent was copied: the
		 * transaction saw a listing that no longer holds, so its commit
		 * fails (EAGAIN) whatever it does next. */
		t->stale = true;
		node_set_perms(n, n->parent->perms, n->parent->nperms);
		return;
	}
	node_set_value(n, src->value, src->value_len);
	node_set_perms(n, src->perms, src->nperms);
	n->gen = src->gen;
	n->kids_cap = src->nkids;
	n->kids = src->nkids ? sim_alloc(src->nkids * sizeof(*n->kids)) : NULL;
	for (i = 0; i < src->nkids; i++) {
		n->kids[i] = node_new(src->kids[i]->name, strlen(src->kids[i]->name));
		n->kids[i]->stub = true;
		n->kids[i]->parent = n;
	}
	n->nkids = src->nkids;
}

/* Walk a valid absolute path; NULL when any component is missing. */
static struct node *tree_walk(struct tree *t, const char *path)
{
	struct node *n = t->root;
	const char *p = path + 1;
	size_t walked = 1;              /* the prefix of path n stands for */

	while (n) {
		const char *slash;
		size_t len;

		if (n->stub)
			node_load(t, n, path, walked);
		if (!*p)
			break;
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		n = node_kid(n, p, len);
		walked = (size_t)(p - path) + len;
		p += len + (slash ? 1 : 0);
	}
	return n;
}

/* A node for the initial tree, owned by dom0 with "n0", as on a real host. */
static struct node *tree_add_initial(struct daemon *d, const char *parent,
				     const char *name)
{
	struct node *p = tree_walk(&d->tree, parent);
	struct node *n = node_new(name, strlen(name));
	struct perm n0 = { 0, PERM_NONE };

	node_set_perms(n, &n0, 1);
	n->gen = ++d->generation;
	node_add_kid(p, n);
	d->tree.nodes++;
	return n;
}

/* xenstored creates "/", "/tool" and "/tool/xenstored"; the toolstack adds
 * "/local/domain" at boot (its /local/domain/0 is xensim's job). */
static void tree_init(struct daemon *d)
{
	struct perm n0 = { 0, PERM_NONE };

	d->tree.root = node_new("", 0);
	node_set_perms(d->tree.root, &n0, 1);
	d->tree.root->gen = ++d->generation;
	d->tree.nodes = 1;
	tree_add_initial(d, "/", "tool");
	tree_add_initial(d, "/tool", "xenstored");
	tree_add_initial(d, "/", "local");
	tree_add_initial(d, "/local", "domain");
}

/* ---- transactions: access records and the change log -------------------------- */

/* Remember the generation a transaction first saw at `path` (0: absent).
 * Only the first look counts: later ones may see the transaction's own
 * changes. */
static void txn_note(struct txn *t, const char *path, uint64_t gen)
{
	unsigned int i;

	for (i = 0; i < t->nacc; i++)
		if (!strcmp(t->acc[i].path, path))
			return;
	if (t->nacc >= SIM_MAX_TXN_NODES) {
		t->err = ENOSPC;        /* cannot check it, so cannot commit it */
		return;
	}
	t->acc = sim_grow(t->acc, &t->acc_cap, t->nacc + 1, sizeof(*t->acc));
	t->acc[t->nacc].path = sim_strdup(path);
	t->acc[t->nacc].gen = gen;
	t->nacc++;
}

/* A removal in a transaction depends on every node below, since a node
 * added there meanwhile would be removed too. */
static void txn_note_subtree(struct txn *t, struct node *n, char *path)
{
	size_t len = strlen(path);
	unsigned int i;

	if (n->stub)
		node_load(&t->tree, n, path, len);
	txn_note(t, path, n->gen);
	for (i = 0; i < n->nkids; i++) {
		int w = snprintf(path + len, SIM_PATH_BUF - len, "%s%s",
				 len > 1 ? "/" : "", n->kids[i]->name);

		if (w > 0 && (size_t)w < SIM_PATH_BUF - len)
			txn_note_subtree(t, n->kids[i], path);
		path[len] = '\0';
	}
}

static void txn_log(struct txn *t, uint32_t type, const char *path,
		    const char *data, unsigned int len,
		    const struct perm *perms, unsigned int nperms)
{
	struct txn_op *op;

	if (t->nops >= SIM_MAX_TXN_OPS) {
		t->err = ENOSPC;
		return;
	}
	t->ops = sim_grow(t->ops, &t->ops_cap, t->nops + 1, sizeof(*t->ops));
	op = &t->ops[t->nops++];
	op->type = type;
	op->path = sim_strdup(path);
	op->data = data ? sim_memdup(data, len) : NULL;
	op->len = len;
	op->perms = perms ? perms_dup(perms, nperms) : NULL;
	op->nperms = nperms;
}

static void txn_free(struct txn *t)
{
	unsigned int i;

	for (i = 0; i < t->nacc; i++)
		free(t->acc[i].path);
	for (i = 0; i < t->nops; i++) {
		free(t->ops[i].path);
		free(t->ops[i].data);
		free(t->ops[i].perms);
	}
	free(t->acc);
	free(t->ops);
	node_free(t->tree.root);
	free(t);
}

/* ---- output ---------------------------------------------------------------------- */

/* Queue one message; false if that would pass `max` queued bytes. */
static bool outq_push(struct outq *q, const void *hdr, size_t hlen,
		      const void *body, size_t blen, size_t max)
{
	size_t need = q->len + hlen + blen;

	if (need > max)
		return false;
	if (q->head + need > q->cap) {
		if (q->len)
			memmove(q->buf, q->buf + q->head, q->len);
		q->head = 0;
		if (need > q->cap) {
			size_t cap = q->cap ? q->cap : 4096;

			while (cap < need)
				cap *= 2;
			q->buf = sim_realloc(q->buf, cap);
			q->cap = cap;
		}
	}
	memcpy(q->buf + q->head + q->len, hdr, hlen);
	if (blen)
		memcpy(q->buf + q->head + q->len + hlen, body, blen);
	q->len = need;
	return true;
}

/* Queue a message for a connection.  A peer that lets SIM_OUT_MAX bytes
 * pile up (it stopped reading its watch events) is dropped, so one stuck
 * client cannot make the daemon grow without bound. */
static void conn_send(struct daemon *d, struct conn *c, uint32_t type,
		      uint32_t req_id, uint32_t tx_id, const void *data,
		      unsigned int len)
{
	struct xsd_sockmsg hdr = { type, req_id, tx_id, len };

	if (c->dead)
		return;
	if (!outq_push(&c->out, &hdr, sizeof(hdr), data, len, SIM_OUT_MAX)) {
		sim_log(d, "conn %u (domain %u): dropped: %zu bytes of output queued "
			"and not read (limit %u)", c->id, c->domid, c->out.len,
			SIM_OUT_MAX);
		c->dead = true;
	}
}

static void req_error(struct req *r, int err)
{
	const char *s = errno_name(err);

	conn_send(r->d, r->c, XS_ERROR, r->hdr.req_id, r->hdr.tx_id, s,
		  (unsigned int)strlen(s) + 1);
}

/* Replies echo the request's req_id and tx_id; too big ones become E2BIG,
 * which is what makes libxenstore fall back to XS_DIRECTORY_PART. */
static void req_reply(struct req *r, const void *data, size_t len)
{
	if (len > XENSTORE_PAYLOAD_MAX) {
		req_error(r, E2BIG);
		return;
	}
	conn_send(r->d, r->c, r->hdr.type, r->hdr.req_id, r->hdr.tx_id, data,
		  (unsigned int)len);
}

static void req_ack(struct req *r)
{
	req_reply(r, "OK", sizeof("OK"));
}

/* ---- watches ----------------------------------------------------------------------- */

static void watch_send(struct daemon *d, struct conn *c, const struct watch *w,
		       const char *path)
{
	char buf[XENSTORE_PAYLOAD_MAX];
	size_t plen, tlen;

	/* A relative watch gets relative event paths. */
	if (w->rel && path_within(path, w->rel)) {
		path += strlen(w->rel);
		if (*path == '/')
			path++;
	}
	plen = strlen(path) + 1;
	tlen = strlen(w->token) + 1;
	if (plen + tlen > sizeof(buf))
		return;         /* as xenstored: over-long events are not sent */
	memcpy(buf, path, plen);
	memcpy(buf + plen, w->token, tlen);
	conn_send(d, c, XS_WATCH_EVENT, 0, 0, buf, (unsigned int)(plen + tlen));
}

/* xenstored's watch_permitted(): the watcher must be able to read the node
 * or its parent (so a watcher of a directory sees a child appear that
 * another domain created and owns), or, for a permission change, have been
 * able to read it before.  A watched path below a removed node is judged
 * by its nearest existing ancestor (the removal has not happened yet). */
static bool watch_permitted(struct daemon *d, unsigned int domid,
			    const char *path, const struct perm *old,
			    unsigned int nold)
{
	char buf[SIM_PATH_BUF];
	struct node *n;

	if (domid_privileged(domid))
		return true;
	if (old && (perm_for(domid, old, nold) & PERM_READ))
		return true;
	snprintf(buf, sizeof(buf), "%s", path);
	while (!(n = tree_walk(&d->tree, buf)))
		path_cut(buf);
	if (perm_for(domid, n->perms, n->nperms) & PERM_READ)
		return true;
	return n->parent &&
	       (perm_for(domid, n->parent->perms, n->parent->nperms) & PERM_READ);
}

/* During a commit, fire once per path (a removal still fires after a mere
 * change, since it also reaches watches below the path). */
static bool fired_before(struct daemon *d, const char *path, bool removal)
{
	struct fired *f = d->fired;
	unsigned int i;

	if (!f)
		return false;
	for (i = 0; i < f->n; i++)
		if (!strcmp(f->paths[i], path) && (f->removal[i] || !removal))
			return true;
	f->paths = sim_grow(f->paths, &f->cap, f->n + 1, sizeof(*f->paths));
	f->removal = sim_realloc(f->removal, f->cap * sizeof(*f->removal));
	f->paths[f->n] = sim_strdup(path);
	f->removal[f->n] = removal;
	f->n++;
	return false;
}

/* A change at `path` fires every watch on `path` or above it, with `path`
 * as the event; a removal also fires the watches below it, each with its
 * own path.  Connections and watches in the order they were made. */
static void fire_watches(struct daemon *d, const char *path, bool removal,
			 const struct perm *old, unsigned int nold)
{
	unsigned int i, j;

	if (fired_before(d, path, removal))
		return;
	for (i = 0; i < d->nconns; i++) {
		struct conn *c = d->conns[i];

		for (j = 0; j < c->nwatches && !c->dead; j++) {
			const struct watch *w = &c->watches[j];
			const char *ev;

			if (w->path[0] == '@')
				continue;
			if (path_within(path, w->path))
				ev = path;
			else if (removal && path_within(w->path, path))
				ev = w->path;
			else
				continue;
			if (watch_permitted(d, c->domid, ev, old, nold))
				watch_send(d, c, w, ev);
		}
	}
}

static struct special *special_find(struct daemon *d, const char *name)
{
	unsigned int i;

	for (i = 0; i < 2; i++)
		if (!strcmp(d->special[i].name, name))
			return &d->special[i];
	return NULL;
}

/* @introduceDomain / @releaseDomain go to whoever may read the special
 * node: dom0 only, by default ("n0"). */
static void fire_special(struct daemon *d, const char *name)
{
	struct special *s = special_find(d, name);
	unsigned int i, j;

	for (i = 0; i < d->nconns; i++) {
		struct conn *c = d->conns[i];

		if (!(perm_for(c->domid, s->perms, s->nperms) & PERM_READ))
			continue;
		for (j = 0; j < c->nwatches && !c->dead; j++)
			if (!strcmp(c->watches[j].path, name))
				watch_send(d, c, &c->watches[j], name);
	}
}

static void watch_free(struct watch *w)
{
	free(w->path);
	free(w->token);
	free(w->rel);
}

/* ---- tree operations (shared by requests and transaction replay) ------------- */

/* Look a node up; inside a transaction, remember what was seen. */
static struct node *view_find(struct view *v, const char *path)
{
	struct node *n = tree_walk(v->tree, path);

	if (v->txn)
		txn_note(v->txn, path, n ? n->gen : 0);
	return n;
}

/* Would the nearest existing ancestor of `path` grant any of `need`? */
static bool view_ancestor_allows(struct view *v, const char *path,
				 unsigned int need)
{
	char buf[SIM_PATH_BUF];
	struct node *n;

	snprintf(buf, sizeof(buf), "%s", path);
	do {
		path_cut(buf);
		n = view_find(v, buf);
	} while (!n);
	return perm_for(v->domid, n->perms, n->nperms) & need;
}

/* xenstored's get_node(): the node if the caller has `need` on it.  A
 * missing node is ENOENT only to whoever may see its parent; others get
 * EACCES, so that absence does not leak. */
static int view_get(struct view *v, const char *path, unsigned int need,
		    struct node **out)
{
	struct node *n = view_find(v, path);

	*out = NULL;
	if (n) {
		if ((perm_for(v->domid, n->perms, n->nperms) & need) != need)
			return EACCES;
		*out = n;
		return 0;
	}
	return view_ancestor_allows(v, path, need) ? ENOENT : EACCES;
}

/* A change was made: fire watches now, or log it for the commit. */
static void view_changed(struct view *v, uint32_t type, const char *path,
			 const char *data, unsigned int len,
			 const struct perm *perms, unsigned int nperms)
{
	if (v->txn)
		txn_log(v->txn, type, path, data, len, perms, nperms);
	else if (type == XS_SET_PERMS)
		fire_watches(v->d, path, false, perms, nperms);
	else
		fire_watches(v->d, path, type == XS_RM, NULL, 0);
}

/* Create `path` and its missing parents.  The caller checked (view_get)
 * that the nearest existing ancestor is writable.  New nodes inherit their
 * parent's permissions; an unprivileged creator becomes their owner. */
static int node_create(struct view *v, const char *path, struct node **out)
{
	char anc_path[SIM_PATH_BUF];
	struct node *anc;
	const char *p;
	unsigned int missing = 0;

	snprintf(anc_path, sizeof(anc_path), "%s", path);
	do {
		path_cut(anc_path);
		anc = view_find(v, anc_path);
		missing++;
	} while (!anc);
	/* Xen's per-domain node quota (quota_nb_entry_per_domain) would be
	 * checked here; the simulator only bounds the tree's size. */
	if (v->tree->nodes + missing > SIM_MAX_NODES)
		return ENOSPC;
	anc->gen = ++v->d->generation;          /* its child list changes */
	p = path + strlen(anc_path) + (anc == v->tree->root ? 0 : 1);
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		struct node *n = node_new(p, len);

		node_set_perms(n, anc->perms, anc->nperms);
		if (!domid_privileged(v->domid))
			n->perms[0].domid = v->domid;
		n->gen = ++v->d->generation;
		node_add_kid(anc, n);
		anc = n;
		p += len + (slash ? 1 : 0);
	}
	v->tree->nodes += missing;
	*out = anc;
	return 0;
}

static int op_write(struct view *v, const char *path, const char *data,
		    unsigned int len)
{
	struct node *n;
	int err = view_get(v, path, PERM_WRITE, &n);

	if (err == ENOENT)
		err = node_create(v, path, &n);
	if (err)
		return err;
	node_set_value(n, data, len);
	n->gen = ++v->d->generation;
	view_changed(v, XS_WRITE, path, data, len, NULL, 0);
	return 0;
}

/* An existing node is fine and changes nothing (no event). */
static int op_mkdir(struct view *v, const char *path)
{
	struct node *n;
	int err = view_get(v, path, PERM_WRITE, &n);

	if (err != ENOENT)
		return err;
	err = node_create(v, path, &n);
	if (err)
		return err;
	view_changed(v, XS_MKDIR, path, NULL, 0, NULL, 0);
	return 0;
}

/* Removing a missing node is fine if its parent exists (xenstored). */
static int op_rm(struct view *v, const char *path)
{
	char parent_path[SIM_PATH_BUF];
	struct node *n, *parent;
	int err = view_get(v, path, PERM_WRITE, &n);

	snprintf(parent_path, sizeof(parent_path), "%s", path);
	path_cut(parent_path);
	if (err == ENOENT)
		return view_find(v, parent_path) ? 0 : ENOENT;
	if (err)
		return err;
	if (!strcmp(path, "/"))
		return EINVAL;
	parent = view_find(v, parent_path);     /* noted before it changes */
	if (v->txn) {
		char buf[SIM_PATH_BUF];

		snprintf(buf, sizeof(buf), "%s", path);
		txn_note_subtree(v->txn, n, buf);
	}
	/* Fire before removing: watchers are judged by the permissions the
	 * nodes had. */
	view_changed(v, XS_RM, path, NULL, 0, NULL, 0);
	node_unlink(n);
	parent->gen = ++v->d->generation;
	v->tree->nodes -= node_count(n);
	node_free(n);
	return 0;
}

/* Only the owner (or dom0) may, and only dom0 may give a node away. */
static int op_set_perms(struct view *v, const char *path,
			const struct perm *perms, unsigned int nperms)
{
	struct perm *old;
	struct node *n;
	unsigned int nold;
	int err = view_get(v, path, PERM_WRITE | PERM_OWNER, &n);

	if (err)
		return err;
	if (!domid_privileged(v->domid) && perms[0].domid != n->perms[0].domid)
		return EPERM;
	old = n->perms;
	nold = n->nperms;
	n->perms = perms_dup(perms, nperms);
	n->nperms = nperms;
	n->gen = ++v->d->generation;
	/* Those who could read it before hear of it too (xenstored). */
	if (v->txn)
		view_changed(v, XS_SET_PERMS, path, NULL, 0, perms, nperms);
	else
		fire_watches(v->d, path, false, old, nold);
	free(old);
	return 0;
}

/* ---- transactions: start, commit --------------------------------------------- */

static struct txn *conn_txn(struct conn *c, uint32_t id)
{
	unsigned int i;

	for (i = 0; i < c->ntxns; i++)
		if (c->txns[i]->id == id)
			return c->txns[i];
	return NULL;
}

static void conn_drop_txn(struct daemon *d, struct conn *c, struct txn *t)
{
	unsigned int i;

	for (i = 0; i < c->ntxns && c->txns[i] != t; i++)
		;
	if (i == c->ntxns)
		return;
	c->txns[i] = c->txns[--c->ntxns];
	d->ntxns--;
	txn_free(t);
}

static int txn_replay(struct view *v, const struct txn_op *op)
{
	switch (op->type) {
	case XS_WRITE:
		return op_write(v, op->path, op->data, op->len);
	case XS_MKDIR:
		return op_mkdir(v, op->path);
	case XS_RM:
		return op_rm(v, op->path);
	case XS_SET_PERMS:
		return op_set_perms(v, op->path, op->perms, op->nperms);
	}
	return EINVAL;
}

static void fired_free(struct fired *f)
{
	unsigned int i;

	for (i = 0; i < f->n; i++)
		free(f->paths[i]);
	free(f->paths);
	free(f->removal);
}

/* Commit: if every node the transaction looked at (present or absent, its
 * value, permissions and child list) still has the generation it had, the
 * logged changes are replayed on the main tree, firing watches now;
 * otherwise EAGAIN and the caller retries. */
static int txn_commit(struct daemon *d, struct conn *c, struct txn *t)
{
	struct view v = { d, c->domid, &d->tree, NULL };
	struct fired fired = { 0 };
	unsigned int i;

	if (t->err)
		return t->err;
	if (t->tree.stale)
		return EAGAIN;
	for (i = 0; i < t->nacc; i++) {
		struct node *n = tree_walk(&d->tree, t->acc[i].path);

		if ((n ? n->gen : 0) != t->acc[i].gen)
			return EAGAIN;
	}
	d->fired = &fired;
	for (i = 0; i < t->nops; i++) {
		int err = txn_replay(&v, &t->ops[i]);

		/* Cannot happen unless a bound was hit: nothing it read moved. */
		if (err)
			sim_log(d, "conn %u: transaction %u: replaying change %u "
				"of %s failed: %s", c->id, t->id, i,
				t->ops[i].path, errno_name(err));
	}
	d->fired = NULL;
	fired_free(&fired);
	return 0;
}

/* ---- requests ------------------------------------------------------------------ */

/* The payload as exactly one NUL-terminated string (xenstored's onearg()). */
static const char *req_onearg(const struct req *r)
{
	if (!r->len || memchr(r->data, 0, r->len) != r->data + r->len - 1)
		return NULL;
	return r->data;
}

/* NUL-terminated strings in the payload: returns how many (a tail without
 * a NUL is not one), fills up to `max` of them (xenstored's get_strings()). */
static unsigned int req_strings(const struct req *r, const char **vec,
				unsigned int max)
{
	unsigned int off = 0, n = 0;
	const char *nul;

	while (off < r->len && (nul = memchr(r->data + off, 0, r->len - off))) {
		if (n < max)
			vec[n] = r->data + off;
		n++;
		off = (unsigned int)(nul - r->data) + 1;
	}
	return n;
}

/* The view a request works on: its transaction's copy or the main tree. */
static struct view req_view(struct req *r)
{
	struct view v = { r->d, r->c->domid, &r->d->tree, r->txn };

	if (r->txn)
		v.tree = &r->txn->tree;
	return v;
}

/* A node path argument, canonical and checked; special "@" names are not
 * nodes. */
static int req_node_path(const struct req *r, const char *arg, char *out)
{
	if (!arg || arg[0] == '@' || !path_canonical(r->c->domid, arg, out))
		return EINVAL;
	return path_valid(out) ? 0 : EINVAL;
}

/* The node named by a one-argument request, if the caller has `need`. */
static int req_get_node(struct req *r, unsigned int need, struct node **n)
{
	char path[SIM_PATH_BUF];
	struct view v = req_view(r);
	int err = req_node_path(r, req_onearg(r), path);

	return err ? err : view_get(&v, path, need, n);
}

static int req_read(struct req *r)
{
	struct node *n;
	int err = req_get_node(r, PERM_READ, &n);

	if (!err)
		req_reply(r, n->value, n->value_len);
	return err;
}

/* "path\0data": the data may hold anything, NULs included. */
static int req_write(struct req *r)
{
	char path[SIM_PATH_BUF];
	struct view v = req_view(r);
	const char *vec[1];
	size_t off;
	int err;

	if (req_strings(r, vec, 1) < 1)
		return EINVAL;
	err = req_node_path(r, vec[0], path);
	if (err)
		return err;
	off = strlen(vec[0]) + 1;
	if (r->d->fail_left > 0 && strcmp(path, r->d->fail_path) == 0) {
		r->d->fail_left--;
		sim_log(r->d, "conn %u: WRITE %s failed on purpose (%u more)", r->c->id,
			path, r->d->fail_left);
		return ENOSPC;   /* as a quota would */
	}
	err = op_write(&v, path, r->data + off, r->len - (unsigned int)off);
	if (!err)
		req_ack(r);
	return err;
}

static int req_mkdir(struct req *r)
{
	char path[SIM_PATH_BUF];
	struct view v = req_view(r);
	int err = req_node_path(r, req_onearg(r), path);

	if (!err)
		err = op_mkdir(&v, path);
	if (!err)
		req_ack(r);
	return err;
}

static int req_rm(struct req *r)
{
	char path[SIM_PATH_BUF];
	struct view v = req_view(r);
	int err = req_node_path(r, req_onearg(r), path);

	if (!err)
		err = op_rm(&v, path);
	if (!err)
		req_ack(r);
	return err;
}

static int req_directory(struct req *r)
{
	char path[SIM_PATH_BUF];
	const char *vec[1];
	struct node *n;
	size_t len;
	char *list;
	int err;

	if (r->d->fail_dir_left > 0 && req_strings(r, vec, 1) == 1 &&
	    !req_node_path(r, vec[0], path) && !strcmp(path, r->d->fail_dir_path)) {
		r->d->fail_dir_left--;
		sim_log(r->d, "conn %u: DIRECTORY %s failed on purpose (%u more)", r->c->id,
			path, r->d->fail_dir_left);
		return EIO;
	}
	err = req_get_node(r, PERM_READ, &n);
	if (err)
		return err;
	list = node_kids_list(n, &len);
	req_reply(r, list, len);        /* > 4096: E2BIG, see req_reply() */
	free(list);
	return 0;
}

/* "path\0offset\0" → "generation\0" + as many children (from byte offset
 * `offset` of the child list) as fit, + "\0" once the list is complete.
 * libxenstore restarts when the generation changes between parts. */
static int req_directory_part(struct req *r)
{
	char path[SIM_PATH_BUF], gen[24], reply[XENSTORE_PAYLOAD_MAX];
	struct view v = req_view(r);
	const char *vec[2];
	unsigned long off;
	size_t len, genlen, used = 0, total;
	struct node *n;
	char *list;
	int err;

	if (req_strings(r, vec, 2) != 2 || !parse_uint(vec[1], UINT32_MAX, &off))
		return EINVAL;
	err = req_node_path(r, vec[0], path);
	if (!err)
		err = view_get(&v, path, PERM_READ, &n);
	if (err)
		return err;
	genlen = (size_t)snprintf(gen, sizeof(gen), "%llu",
				  (unsigned long long)n->gen) + 1;
	memcpy(reply, gen, genlen);
	list = node_kids_list(n, &total);
	if (off < total) {
		/* Whole names only, leaving room for the final "\0". */
		while (off + used < total) {
			len = strlen(list + off + used) + 1;
			if (genlen + used + len + 1 > sizeof(reply))
				break;
			memcpy(reply + genlen + used, list + off + used, len);
			used += len;
		}
	}
	if (off + used >= total)
		reply[genlen + used++] = '\0';
	free(list);
	req_reply(r, reply, genlen + used);
	return 0;
}

static int req_get_perms(struct req *r)
{
	char reply[XENSTORE_PAYLOAD_MAX + 16];
	struct node *n;
	size_t off = 0;
	unsigned int i;
	int err = req_get_node(r, PERM_READ, &n);

	if (err)
		return err;
	for (i = 0; i < n->nperms && off < XENSTORE_PAYLOAD_MAX; i++)
		off += (size_t)snprintf(reply + off, sizeof(reply) - off, "%c%u",
					perm_letter(n->perms[i].access),
					n->perms[i].domid) + 1;
	req_reply(r, reply, off);       /* cannot be long: set_perms bounded it */
	return 0;
}

/* Changing who may see the special nodes needs write+owner on them. */
static int req_set_perms_special(struct req *r, const char *name,
				 const struct perm *perms, unsigned int n)
{
	struct special *s = special_find(r->d, name);

	if (!s)
		return EINVAL;
	if ((perm_for(r->c->domid, s->perms, s->nperms) &
	     (PERM_WRITE | PERM_OWNER)) != (PERM_WRITE | PERM_OWNER))
		return EACCES;
	free(s->perms);
	s->perms = perms_dup(perms, n);
	s->nperms = n;
	req_ack(r);
	return 0;
}

/* "path\0perm\0perm\0...": at least one permission, the first the owner. */
static int req_set_perms(struct req *r)
{
	const char *vec[XENSTORE_PAYLOAD_MAX / 2];
	struct perm perms[XENSTORE_PAYLOAD_MAX / 2];
	char path[SIM_PATH_BUF];
	struct view v = req_view(r);
	unsigned int n, i;
	int err;

	n = req_strings(r, vec, XENSTORE_PAYLOAD_MAX / 2);
	if (n < 2)
		return EINVAL;
	/* Xen's quota_nb_perms_per_node would limit n for guests here. */
	for (i = 1; i < n; i++)
		if (!perm_parse(vec[i], &perms[i - 1]))
			return EINVAL;
	if (vec[0][0] == '@')
		return req_set_perms_special(r, vec[0], perms, n - 1);
	err = req_node_path(r, vec[0], path);
	if (!err)
		err = op_set_perms(&v, path, perms, n - 1);
	if (!err)
		req_ack(r);
	return err;
}

/* A watch path: "@special" as it is, else a node path (relative allowed). */
static int watch_path(const struct req *r, const char *arg, char *out,
		      bool *relative)
{
	*relative = arg[0] != '/' && arg[0] != '@';
	if (arg[0] == '@') {
		if (strlen(arg) > XENSTORE_REL_PATH_MAX)
			return EINVAL;
		snprintf(out, SIM_PATH_BUF, "%s", arg);
		return 0;
	}
	if (!path_canonical(r->c->domid, arg, out) || !path_valid(out))
		return EINVAL;
	return 0;
}

/* "path\0token\0".  Like xenstored, answer, then fire once at once. */
static int req_watch(struct req *r)
{
	char path[SIM_PATH_BUF], rel[32];
	const char *vec[2];
	struct conn *c = r->c;
	struct watch *w;
	bool relative;
	unsigned int i;

	if (req_strings(r, vec, 2) != 2 || watch_path(r, vec[0], path, &relative))
		return EINVAL;
	for (i = 0; i < c->nwatches; i++)
		if (!strcmp(c->watches[i].path, path) &&
		    !strcmp(c->watches[i].token, vec[1]))
			return EEXIST;
	/* Xen's quota_nb_watch_per_domain would apply here (also E2BIG). */
	if (c->nwatches >= SIM_MAX_WATCHES)
		return E2BIG;
	c->watches = sim_grow(c->watches, &c->watches_cap, c->nwatches + 1,
			      sizeof(*c->watches));
	w = &c->watches[c->nwatches++];
	w->path = sim_strdup(path);
	w->token = sim_strdup(vec[1]);
	snprintf(rel, sizeof(rel), "/local/domain/%u", c->domid);
	w->rel = relative ? sim_strdup(rel) : NULL;
	req_ack(r);
	watch_send(r->d, c, w, w->path);
	return 0;
}

static int req_unwatch(struct req *r)
{
	char path[SIM_PATH_BUF];
	const char *vec[2];
	struct conn *c = r->c;
	unsigned int i;

	if (req_strings(r, vec, 2) != 2 || !path_canonical(c->domid, vec[0], path))
		return EINVAL;
	for (i = 0; i < c->nwatches; i++) {
		if (strcmp(c->watches[i].path, path) ||
		    strcmp(c->watches[i].token, vec[1]))
			continue;
		watch_free(&c->watches[i]);
		/* Keep the order: it is the order events fire in. */
		memmove(&c->watches[i], &c->watches[i + 1],
			(c->nwatches - i - 1) * sizeof(*c->watches));
		c->nwatches--;
		req_ack(r);
		return 0;
	}
	return ENOENT;
}

static int req_transaction_start(struct req *r)
{
	struct conn *c = r->c;
	struct txn *t;
	char id[16];

	if (r->txn)
		return EBUSY;           /* no nested transactions */
	/* Xen's quota_max_transaction would apply here (also ENOSPC). */
	if (c->ntxns >= SIM_MAX_CONN_TXNS || r->d->ntxns >= SIM_MAX_TXNS)
		return ENOSPC;
	t = sim_alloc(sizeof(*t));
	do {                            /* 0 means "no transaction" */
		t->id = c->next_txid++;
	} while (t->id == 0 || conn_txn(c, t->id));
	t->tree.root = node_new("", 0);
	t->tree.root->stub = true;
	t->tree.src = &r->d->tree;
	t->tree.nodes = r->d->tree.nodes;
	c->txns[c->ntxns++] = t;
	r->d->ntxns++;
	snprintf(id, sizeof(id), "%u", t->id);
	req_reply(r, id, strlen(id) + 1);
	return 0;
}

/* "T" commits, "F" aborts ("F" for "false": not aborting). */
static int req_transaction_end(struct req *r)
{
	const char *arg = req_onearg(r);
	int err = 0;

	if (!arg || (strcmp(arg, "T") && strcmp(arg, "F")))
		return EINVAL;
	if (!r->txn)
		return ENOENT;
	if (!strcmp(arg, "T"))
		err = txn_commit(r->d, r->c, r->txn);
	conn_drop_txn(r->d, r->c, r->txn);
	r->txn = NULL;
	if (!err)
		req_ack(r);
	return err;
}

/* ---- domains' own sockets (--domain-sockets DIR) --------------------------------
 * DIR/D/xenstored.sock exists while D is introduced: a process that uses it
 * is one of D's, its requests checked as D's.  RELEASE (the domain's death)
 * closes the socket and every connection made through it, as xenstored
 * frees a dead domain's connection. */

static bool unix_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return false;
	strcpy(sa->sun_path, path);
	return true;
}

static struct listener *domain_sock_find(struct daemon *d, unsigned int domid)
{
	unsigned int i;

	for (i = 0; i < d->ndomain_socks; i++)
		if (d->domain_socks[i]->fd >= 0 && d->domain_socks[i]->domid == domid)
			return d->domain_socks[i];
	return NULL;
}

/* Its files go at once; the struct stays until the end of the loop pass
 * (domain_socks_reap), since an epoll event may still point at it. */
static void domain_sock_close(struct daemon *d, struct listener *l)
{
	(void)d;
	if (l->fd < 0)
		return;
	close(l->fd);
	l->fd = -1;
	unlink(l->path);
	rmdir(l->dir);
}

static void domain_socks_reap(struct daemon *d)
{
	unsigned int i, kept = 0;

	for (i = 0; i < d->ndomain_socks; i++) {
		struct listener *l = d->domain_socks[i];

		if (l->fd >= 0) {
			d->domain_socks[kept++] = l;
			continue;
		}
		free(l->path);
		free(l->dir);
		free(l);
	}
	d->ndomain_socks = kept;
}

/* 0, or the errno to answer INTRODUCE with (the domain is then not
 * introduced: a test that expects the socket learns why at once). */
static int domain_sock_open(struct daemon *d, unsigned int domid)
{
	struct listener *l;
	struct sockaddr_un sa;
	char dir[PATH_MAX], path[PATH_MAX];
	int err;

	if (!d->domain_dir || domid == 0 || domain_sock_find(d, domid))
		return 0;
	if (d->ndomain_socks >= SIM_MAX_DOMAIN_SOCKS) {
		sim_log(d, "domain %u: no socket of its own: %u domains have one "
			"(limit)", domid, d->ndomain_socks);
		return ENOSPC;
	}
	snprintf(dir, sizeof(dir), "%.4000s/%u", d->domain_dir, domid);
	snprintf(path, sizeof(path), "%.4000s/%u/xenstored.sock", d->domain_dir, domid);
	l = sim_alloc(sizeof(*l));
	l->kind = EP_LISTENER;
	l->domid = domid;
	l->fd = -1;
	if (!unix_addr(path, &sa)) {
		err = ENAMETOOLONG;
		goto fail;
	}
	if ((mkdir(dir, 0755) < 0 && errno != EEXIST) ||
	    (unlink(path) < 0 && errno != ENOENT) ||     /* a crashed daemon's */
	    (l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0 ||
	    bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(l->fd, SOMAXCONN) < 0 ||
	    epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, l->fd,
		      &(struct epoll_event){ EPOLLIN, { .ptr = l } }) < 0) {
		err = errno;
		goto fail;
	}
	l->path = sim_strdup(path);
	l->dir = sim_strdup(dir);
	d->domain_socks[d->ndomain_socks++] = l;
	sim_log(d, "domain %u: its socket is %s", domid, path);
	return 0;
fail:
	sim_log(d, "domain %u: socket %s: %s", domid, path, strerror(err));
	if (l->fd >= 0) {
		close(l->fd);
		unlink(path);
	}
	rmdir(dir);
	free(l);
	return err;
}

/* The domain died: its socket and the connections made through it go. */
static void domain_disconnect(struct daemon *d, unsigned int domid)
{
	struct listener *l = domain_sock_find(d, domid);
	unsigned int i;

	if (l)
		domain_sock_close(d, l);
	for (i = 0; i < d->nconns; i++) {
		struct conn *c = d->conns[i];

		if (c->domain_socket && c->domid == domid && !c->dead) {
			sim_log(d, "conn %u (domain %u): closed: its domain was "
				"released", c->id, domid);
			c->dead = true;
		}
	}
}

/* xenstored's domain_tree_remove() (it runs without --keep-orphans): the
 * dead domain's nodes go, each with what is below it, firing watches; where
 * another node's permissions name it, that entry no longer counts
 * (XS_PERM_IGNORE), so a new domain given the same domid inherits nothing.
 * Returns how many nodes it removed (each with its subtree). */
static unsigned int domain_forget(struct daemon *d, struct node *n, char *path,
				  unsigned int domid)
{
	struct view v = { d, 0, &d->tree, NULL };
	size_t len = strlen(path);
	unsigned int i = 0, j, removed = 0;

	for (j = 1; j < n->nperms; j++)
		if (n->perms[j].domid == domid)
			n->perms[j].access |= PERM_IGNORE;
	while (i < n->nkids) {
		struct node *kid = n->kids[i];
		int w = snprintf(path + len, SIM_PATH_BUF - len, "%s%s",
				 len > 1 ? "/" : "", kid->name);

		if (w < 0 || (size_t)w >= SIM_PATH_BUF - len) {
			i++;                    /* cannot happen: paths are bounded */
		} else if (kid->perms[0].domid == domid && op_rm(&v, path) == 0) {
			removed++;              /* kids[i] is now its next sibling */
		} else {
			removed += domain_forget(d, kid, path, domid);
			i++;
		}
		path[len] = '\0';
	}
	return removed;
}

/* xenstored's remove_domid_from_perm() for the special nodes. */
static void special_forget(struct special *s, unsigned int domid)
{
	unsigned int i, kept = 1;

	if (s->perms[0].domid == domid)
		s->perms[0].domid = 0;
	for (i = 1; i < s->nperms; i++)
		if (s->perms[i].domid != domid)
			s->perms[kept++] = s->perms[i];
	s->nperms = kept;
}

static bool domain_introduced(const struct daemon *d, unsigned int domid)
{
	if (domid >= SIM_DOMID_FIRST_RESERVED)
		return false;
	return d->introduced[domid / 8] & (1u << (domid % 8));
}

static void domain_mark(struct daemon *d, unsigned int domid, bool introduced)
{
	if (introduced)
		d->introduced[domid / 8] |= (uint8_t)(1u << (domid % 8));
	else
		d->introduced[domid / 8] &= (uint8_t)~(1u << (domid % 8));
}

/* "domid\0mfn\0port\0": there is no ring to map; only the state and the
 * @introduceDomain event are simulated. */
static int req_introduce(struct req *r)
{
	const char *vec[3];
	unsigned int domid;
	unsigned long mfn, port;

	if (req_strings(r, vec, 3) < 3 || !parse_domid(vec[0], &domid) ||
	    domid >= SIM_DOMID_FIRST_RESERVED || !parse_uint(vec[1], ULONG_MAX, &mfn) ||
	    !parse_uint(vec[2], UINT32_MAX, &port) || port == 0)
		return EINVAL;
	if (!domain_introduced(r->d, domid)) {
		int err = domain_sock_open(r->d, domid);

		if (err)
			return err;
		domain_mark(r->d, domid, true);
		sim_log(r->d, "domain %u introduced", domid);
		req_ack(r);
		fire_special(r->d, "@introduceDomain");
		return 0;
	}
	req_ack(r);             /* again: xenstored just rebinds the port */
	return 0;
}

/* A domain argument for RELEASE and RESUME: an introduced guest. */
static int req_guest_arg(struct req *r, unsigned int *domid)
{
	const char *arg = req_onearg(r);

	if (!arg || !parse_domid(arg, domid) || *domid == 0)
		return EINVAL;
	return domain_introduced(r->d, *domid) ? 0 : ENOENT;
}

/* As xenstored frees a dead domain: its connection first, then its nodes
 * (domain_tree_remove), then @releaseDomain. */
static int req_release(struct req *r)
{
	char path[SIM_PATH_BUF] = "/";
	unsigned int domid, removed;
	int err = req_guest_arg(r, &domid);

	if (err)
		return err;
	domain_disconnect(r->d, domid);
	removed = domain_forget(r->d, r->d->tree.root, path, domid);
	special_forget(&r->d->special[0], domid);
	special_forget(&r->d->special[1], domid);
	domain_mark(r->d, domid, false);
	sim_log(r->d, "domain %u released (%u nodes it owned removed)", domid,
		removed);
	req_ack(r);
	fire_special(r->d, "@releaseDomain");
	return 0;
}

static int req_resume(struct req *r)
{
	unsigned int domid;
	int err = req_guest_arg(r, &domid);

	if (!err)
		req_ack(r);
	return err;
}

static int req_is_domain_introduced(struct req *r)
{
	const char *arg = req_onearg(r);
	unsigned int domid;
	bool yes;

	if (!arg || !parse_domid(arg, &domid))
		return EINVAL;
	yes = domid == SIM_DOMID_SELF || domain_introduced(r->d, domid);
	req_reply(r, yes ? "T" : "F", 2);
	return 0;
}

static int req_get_domain_path(struct req *r)
{
	const char *arg = req_onearg(r);
	unsigned int domid;
	char path[32];

	if (!arg || !parse_domid(arg, &domid))
		return EINVAL;
	snprintf(path, sizeof(path), "/local/domain/%u", domid);
	req_reply(r, path, strlen(path) + 1);
	return 0;
}

static void conn_drop_watches_txns(struct daemon *d, struct conn *c)
{
	unsigned int i;

	for (i = 0; i < c->nwatches; i++)
		watch_free(&c->watches[i]);
	c->nwatches = 0;
	while (c->ntxns)
		conn_drop_txn(d, c, c->txns[0]);
}

static int req_reset_watches(struct req *r)
{
	conn_drop_watches_txns(r->d, r->c);
	req_ack(r);
	return 0;
}

/* ---- CONTROL commands ------------------------------------------------------- */

static int control_as_domain(struct req *r, const char **argv, unsigned int argc)
{
	unsigned int domid;

	(void)argc;
	if (!parse_domid(argv[0], &domid) || domid >= SIM_DOMID_FIRST_RESERVED)
		return EINVAL;
	sim_log(r->d, "conn %u acts as domain %u", r->c->id, domid);
	r->c->domid = domid;
	req_ack(r);
	return 0;
}

/* Tests mark their steps in the daemon's log; one line per call. */
static int control_log(struct req *r, const char **argv, unsigned int argc)
{
	char line[XENSTORE_PAYLOAD_MAX];
	size_t off = 0, i;
	unsigned int a;

	for (a = 0; a < argc; a++) {
		for (i = 0; argv[a][i] && off < sizeof(line) - 2; i++)
			line[off++] = (argv[a][i] >= 0x20 && argv[a][i] < 0x7f)
				      ? argv[a][i] : '?';
		if (a + 1 < argc)
			line[off++] = ' ';
	}
	line[off] = '\0';
	sim_log(r->d, "conn %u: log: %s", r->c->id, line);
	req_ack(r);
	return 0;
}

/* Arm a transient failure for tests: PATH (argv[0]) into path, N (argv[1])
 * into *left. */
static int control_fail(struct req *r, const char **argv, char *path, size_t cap,
			unsigned int *left, const char *what)
{
	unsigned long n;
	char *end;

	n = strtoul(argv[1], &end, 10);
	if (argv[0][0] != '/' || strlen(argv[0]) >= cap || *end || end == argv[1] || n > 1000)
		return EINVAL;
	snprintf(path, cap, "%s", argv[0]);
	*left = (unsigned int)n;
	sim_log(r->d, "conn %u: the next %lu %s %s will fail", r->c->id, n, what, argv[0]);
	req_ack(r);
	return 0;
}

/* The next N WRITEs to PATH get ENOSPC, as a quota would. */
static int control_fail_write(struct req *r, const char **argv, unsigned int argc)
{
	(void)argc;
	return control_fail(r, argv, r->d->fail_path, sizeof(r->d->fail_path), &r->d->fail_left,
			    "WRITEs to");
}

/* The next N DIRECTORYs of PATH get EIO, as a xenstored in trouble would
 * answer. */
static int control_fail_directory(struct req *r, const char **argv, unsigned int argc)
{
	(void)argc;
	return control_fail(r, argv, r->d->fail_dir_path, sizeof(r->d->fail_dir_path),
			    &r->d->fail_dir_left, "DIRECTORYs of");
}

static int control_help(struct req *r, const char **argv, unsigned int argc);

/* Test hooks, sent with xs_control_command(h, name, "arg\0...", len) by a
 * dom0 connection.  A new hook is a new line here. */
static const struct control_cmd {
	const char *name;
	unsigned int min_args, max_args;
	int (*fn)(struct req *r, const char **argv, unsigned int argc);
	const char *help;
} control_cmds[] = {
	{ "as-domain", 1, 1, control_as_domain,
	  "<domid>: this connection acts as domain <domid> from now on" },
	{ "log", 1, 64, control_log, "<text>...: write a line to the log" },
	{ "fail-write", 2, 2, control_fail_write,
	  "<path> <n>: the next <n> WRITEs to <path> fail with ENOSPC" },
	{ "fail-directory", 2, 2, control_fail_directory,
	  "<path> <n>: the next <n> DIRECTORYs of <path> fail with EIO" },
	{ "help", 0, 0, control_help, ": list these commands" },
};

static int control_help(struct req *r, const char **argv, unsigned int argc)
{
	char text[XENSTORE_PAYLOAD_MAX];
	size_t off = 0, i;

	(void)argv;
	(void)argc;
	for (i = 0; i < sizeof(control_cmds) / sizeof(control_cmds[0]); i++)
		off += (size_t)snprintf(text + off, sizeof(text) - off, "%s %s\n",
					control_cmds[i].name, control_cmds[i].help);
	req_reply(r, text, off + 1);
	return 0;
}

/* "command\0arg\0...".  Unknown commands are EINVAL, as in xenstored. */
static int req_control(struct req *r)
{
	const char *vec[65];
	unsigned int n, i;

	n = req_strings(r, vec, 65);
	if (n < 1)
		return EINVAL;
	for (i = 0; i < sizeof(control_cmds) / sizeof(control_cmds[0]); i++) {
		const struct control_cmd *cmd = &control_cmds[i];

		if (strcmp(vec[0], cmd->name))
			continue;
		if (n - 1 < cmd->min_args || n - 1 > cmd->max_args)
			return EINVAL;
		return cmd->fn(r, vec + 1, n - 1);
	}
	return EINVAL;
}

/* ---- dispatch ----------------------------------------------------------------- */

#define REQ_PRIV  1u    /* dom0 only (xenstored's XS_FLAG_PRIV) */
#define REQ_NOTX  2u    /* the tx_id is ignored (xenstored's XS_FLAG_NOTID) */

static const struct req_handler {
	const char *name;
	int (*fn)(struct req *r);
	unsigned int flags;
} req_handlers[XS_TYPE_COUNT] = {
	[XS_CONTROL]              = { "CONTROL", req_control, REQ_PRIV },
	[XS_DIRECTORY]            = { "DIRECTORY", req_directory, 0 },
	[XS_READ]                 = { "READ", req_read, 0 },
	[XS_GET_PERMS]            = { "GET_PERMS", req_get_perms, 0 },
	[XS_WATCH]                = { "WATCH", req_watch, REQ_NOTX },
	[XS_UNWATCH]              = { "UNWATCH", req_unwatch, REQ_NOTX },
	[XS_TRANSACTION_START]    = { "TRANSACTION_START", req_transaction_start, 0 },
	[XS_TRANSACTION_END]      = { "TRANSACTION_END", req_transaction_end, 0 },
	[XS_INTRODUCE]            = { "INTRODUCE", req_introduce, REQ_PRIV },
	[XS_RELEASE]              = { "RELEASE", req_release, REQ_PRIV },
	[XS_GET_DOMAIN_PATH]      = { "GET_DOMAIN_PATH", req_get_domain_path, 0 },
	[XS_WRITE]                = { "WRITE", req_write, 0 },
	[XS_MKDIR]                = { "MKDIR", req_mkdir, 0 },
	[XS_RM]                   = { "RM", req_rm, 0 },
	[XS_SET_PERMS]            = { "SET_PERMS", req_set_perms, 0 },
	[XS_IS_DOMAIN_INTRODUCED] = { "IS_DOMAIN_INTRODUCED", req_is_domain_introduced, REQ_PRIV },
	[XS_RESUME]               = { "RESUME", req_resume, REQ_PRIV },
	[XS_RESET_WATCHES]        = { "RESET_WATCHES", req_reset_watches, 0 },
	[XS_DIRECTORY_PART]       = { "DIRECTORY_PART", req_directory_part, 0 },
};

/* A printable, bounded copy of a request's first string, for the log. */
static void req_describe(const struct req *r, char *buf, size_t size)
{
	size_t i;

	for (i = 0; i + 1 < size && i < r->len && r->data[i]; i++)
		buf[i] = (r->data[i] >= 0x20 && r->data[i] < 0x7f) ? r->data[i] : '?';
	buf[i] = '\0';
}

/* Run one request.  Types without a handler (XS_SET_TARGET, the reply-only
 * XS_WATCH_EVENT and XS_ERROR, anything unknown) get ENOSYS, as from
 * xenstored: libxenstore reads ENOSYS as "not supported". */
static void req_run(struct req *r)
{
	const struct req_handler *h = NULL;
	char what[81];
	int err;

	if (r->hdr.type < XS_TYPE_COUNT && req_handlers[r->hdr.type].fn)
		h = &req_handlers[r->hdr.type];
	if (!h)
		err = ENOSYS;
	else if ((h->flags & REQ_PRIV) && !domid_privileged(r->c->domid))
		err = EACCES;
	else if (!(h->flags & REQ_NOTX) && r->hdr.tx_id &&
		 !(r->txn = conn_txn(r->c, r->hdr.tx_id)))
		err = ENOENT;
	else
		err = h->fn(r);
	if (err)
		req_error(r, err);
	if (r->d->verbose) {
		req_describe(r, what, sizeof(what));
		sim_log(r->d, "conn %u (domain %u): %s(%u) tx %u \"%s\": %s",
			r->c->id, r->c->domid, h ? h->name : "unknown",
			r->hdr.type, r->hdr.tx_id, what,
			err ? errno_name(err) : "OK");
	}
}

/* ---- connections ----------------------------------------------------------------- */

static bool conn_paused(const struct conn *c)
{
	return c->out.len > SIM_OUT_PAUSE;
}

static void conn_consume(struct conn *c, size_t n)
{
	memmove(c->in, c->in + n, c->in_len - n);
	c->in_len -= n;
}

/* Skip the payload of an oversized request without storing it, then answer
 * E2BIG, so the stream stays in step and the connection stays usable. */
static void conn_skip_big(struct daemon *d, struct conn *c)
{
	size_t n = c->in_len < c->big_left ? c->in_len : c->big_left;
	struct req r = { .d = d, .c = c, .hdr = c->big_hdr };

	conn_consume(c, n);
	c->big_left -= (uint32_t)n;
	if (c->big_left == 0)
		req_error(&r, E2BIG);
}

/* Serve the first request in the input buffer (conn_has_request()). */
static void conn_next_request(struct daemon *d, struct conn *c)
{
	struct req r = { .d = d, .c = c };

	if (c->big_left) {
		conn_skip_big(d, c);
		return;
	}
	memcpy(&r.hdr, c->in, SIM_HDR_LEN);
	if (r.hdr.len > XENSTORE_PAYLOAD_MAX) {
		sim_log(d, "conn %u (domain %u): request type %u with %u bytes "
			"of payload (limit %u): skipping it, answering E2BIG",
			c->id, c->domid, r.hdr.type, r.hdr.len, XENSTORE_PAYLOAD_MAX);
		c->big_hdr = r.hdr;
		c->big_left = r.hdr.len;
		conn_consume(c, SIM_HDR_LEN);
		return;
	}
	r.data = (const char *)c->in + SIM_HDR_LEN;
	r.len = r.hdr.len;
	req_run(&r);
	conn_consume(c, SIM_HDR_LEN + r.hdr.len);
}

/* Is a complete request (or bytes of a skipped one) waiting? */
static bool conn_has_request(const struct conn *c)
{
	struct xsd_sockmsg hdr;

	if (c->big_left)
		return c->in_len > 0;
	if (c->in_len < SIM_HDR_LEN)
		return false;
	memcpy(&hdr, c->in, SIM_HDR_LEN);
	return hdr.len > XENSTORE_PAYLOAD_MAX || c->in_len >= SIM_HDR_LEN + hdr.len;
}

/* Requests are served while the client reads its answers; one that does
 * not is left unread (its socket buffer then pushes back on it). */
static void conn_serve(struct daemon *d, struct conn *c)
{
	while (!c->dead && !conn_paused(c) && conn_has_request(c))
		conn_next_request(d, c);
}

static void conn_flush(struct daemon *d, struct conn *c);

/* Serve and write until the input holds no complete request or the peer
 * must read first. */
static void conn_pump(struct daemon *d, struct conn *c)
{
	do {
		conn_serve(d, c);
		conn_flush(d, c);
	} while (!c->dead && !c->out.len && conn_has_request(c));
}

static void conn_read(struct daemon *d, struct conn *c)
{
	size_t room = sizeof(c->in) - c->in_len;
	ssize_t n;

	if (c->eof || c->dead || room == 0)
		return;
	n = recv(c->fd, c->in + c->in_len, room, MSG_DONTWAIT);
	if (n > 0) {
		c->in_len += (size_t)n;
	} else if (n == 0) {
		c->eof = true;
	} else if (errno != EAGAIN && errno != EINTR) {
		if (d->verbose)
			sim_log(d, "conn %u: recv: %s", c->id, strerror(errno));
		c->dead = true;
	}
}

static void conn_flush(struct daemon *d, struct conn *c)
{
	while (c->out.len && !c->dead) {
		ssize_t n = send(c->fd, c->out.buf + c->out.head, c->out.len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			if (d->verbose)
				sim_log(d, "conn %u: send: %s", c->id, strerror(errno));
			c->dead = true;
			return;
		}
		c->out.head += (size_t)n;
		c->out.len -= (size_t)n;
	}
	/* An idle connection keeps no big buffer. */
	c->out.head = 0;
	if (c->out.cap > 65536) {
		free(c->out.buf);
		c->out.buf = NULL;
		c->out.cap = 0;
	}
}

static void conn_free(struct daemon *d, struct conn *c)
{
	if (c->in_len || c->big_left)
		sim_log(d, "conn %u (domain %u): closed with %zu bytes of an "
			"unfinished request", c->id, c->domid,
			c->in_len + c->big_left);
	else if (d->verbose)
		sim_log(d, "conn %u (domain %u): closed", c->id, c->domid);
	conn_drop_watches_txns(d, c);
	free(c->watches);
	free(c->out.buf);
	close(c->fd);
	free(c);
}

/* A connection on a domain's socket is that domain's from its first byte,
 * as xenstored knows a domain's connection by its ring. */
static void conn_accept(struct daemon *d, struct listener *l)
{
	unsigned int i;

	for (i = 0; i < SIM_ACCEPT_BURST && l->fd >= 0; i++) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;

		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR)
				sim_log(d, "accept %s: %s", l->path ? l->path :
					d->socket_path, strerror(errno));
			return;
		}
		if (d->nconns >= SIM_MAX_CONNS) {
			sim_log(d, "refusing a connection: %u open (limit)",
				d->nconns);
			close(fd);
			continue;
		}
		c = sim_alloc(sizeof(*c));
		c->kind = EP_CONN;
		c->fd = fd;
		c->domid = l->domid;
		c->domain_socket = l != &d->main;
		c->events = EPOLLIN;
		if (epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, fd,
			      &(struct epoll_event){ c->events, { .ptr = c } }) < 0) {
			sim_log(d, "epoll_ctl add: %s", strerror(errno));
			close(fd);
			free(c);
			continue;
		}
		c->id = ++d->next_conn_id;
		c->next_txid = 1;
		d->conns[d->nconns++] = c;
		if (c->domain_socket)
			sim_log(d, "conn %u: connected to domain %u's socket",
				c->id, c->domid);
		else if (d->verbose)
			sim_log(d, "conn %u: connected", c->id);
	}
}

/* Close the connections marked dead, keeping the others in order. */
static void conn_reap(struct daemon *d)
{
	unsigned int i, kept = 0;

	for (i = 0; i < d->nconns; i++) {
		struct conn *c = d->conns[i];

		if (c->eof && !c->out.len && !c->dead)
			c->dead = true;         /* answered all it asked */
		if (c->dead)
			conn_free(d, c);
		else
			d->conns[kept++] = c;
	}
	d->nconns = kept;
}

/* ---- the daemon ------------------------------------------------------------------ */

/* Tell epoll what each connection waits for, where that changed. */
static void conn_watch_fds(struct daemon *d)
{
	unsigned int i;

	for (i = 0; i < d->nconns; i++) {
		struct conn *c = d->conns[i];
		uint32_t want = c->out.len ? EPOLLOUT : 0;

		if (!c->eof && !conn_paused(c))
			want |= EPOLLIN;
		if (want == c->events)
			continue;
		c->events = want;
		if (epoll_ctl(d->epoll_fd, EPOLL_CTL_MOD, c->fd,
			      &(struct epoll_event){ want, { .ptr = c } }) < 0)
			sim_log(d, "conn %u: epoll_ctl: %s", c->id, strerror(errno));
	}
}

/* One pass: wait, then read, serve, write; nothing else wakes us.
 * Connections are freed only at its end (conn_reap), so the pointers
 * epoll hands back stay valid throughout. */
static void daemon_pass(struct daemon *d)
{
	struct epoll_event ev[64];
	struct listener *accept_due[64];
	int i, n, ndue = 0;

	conn_watch_fds(d);
	n = epoll_wait(d->epoll_fd, ev, 64, -1);
	if (n < 0) {
		if (errno != EINTR)
			sim_log(d, "epoll_wait: %s", strerror(errno));
		return;
	}
	for (i = 0; i < n; i++) {
		struct conn *c = ev[i].data.ptr;
		enum ep_kind kind = *(enum ep_kind *)ev[i].data.ptr;

		if (kind == EP_SIGNAL) {
			struct signalfd_siginfo si;

			if (read(d->sig.fd, &si, sizeof(si)) == sizeof(si))
				sim_log(d, "signal %u: exiting", si.ssi_signo);
			d->stop = true;
			return;
		}
		if (kind == EP_LISTENER) {
			accept_due[ndue++] = ev[i].data.ptr;
			continue;
		}
		if (ev[i].events & EPOLLOUT)
			conn_flush(d, c);
		if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
			conn_read(d, c);
		conn_pump(d, c);
	}
	/* A RELEASE served above may have closed a domain's socket. */
	for (i = 0; i < ndue; i++)
		conn_accept(d, accept_due[i]);
	/* Watch events for connections served earlier in this pass. */
	for (i = 0; i < (int)d->nconns; i++)
		conn_pump(d, d->conns[i]);
	conn_reap(d);
	domain_socks_reap(d);
}

static int daemon_epoll(struct daemon *d)
{
	d->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (d->epoll_fd < 0 ||
	    epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, d->sig.fd,
		      &(struct epoll_event){ EPOLLIN, { .ptr = &d->sig } }) < 0 ||
	    epoll_ctl(d->epoll_fd, EPOLL_CTL_ADD, d->main.fd,
		      &(struct epoll_event){ EPOLLIN, { .ptr = &d->main } }) < 0) {
		fprintf(stderr, "xenstored-sim: epoll: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static int daemon_listen(struct daemon *d)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd;

	if (!unix_addr(d->socket_path, &sa)) {
		fprintf(stderr, "xenstored-sim: socket path too long: %s\n",
			d->socket_path);
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* A leftover socket of a dead daemon is replaced; a live one, or
	 * anything that is not a socket, is left alone. */
	if (lstat(d->socket_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) ||
		    connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
			fprintf(stderr, "xenstored-sim: %s: exists and is not a "
				"stale socket\n", d->socket_path);
			close(fd);
			return -1;
		}
		unlink(d->socket_path);
	}
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		fprintf(stderr, "xenstored-sim: bind/listen %s: %s\n",
			d->socket_path, strerror(errno));
		close(fd);
		return -1;
	}
	d->main.fd = fd;
	if (d->domain_dir && mkdir(d->domain_dir, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "xenstored-sim: mkdir %s: %s\n", d->domain_dir,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Written whole (rename) after the socket listens: a waiter that sees the
 * pid file can connect. */
static int daemon_write_pid(struct daemon *d)
{
	char tmp[4096];
	FILE *f;

	if (!d->pid_path)
		return 0;
	snprintf(tmp, sizeof(tmp), "%s.tmp", d->pid_path);
	f = fopen(tmp, "w");
	if (!f || fprintf(f, "%ld\n", (long)getpid()) < 0 || fclose(f) != 0 ||
	    rename(tmp, d->pid_path) < 0) {
		fprintf(stderr, "xenstored-sim: write %s: %s\n", d->pid_path,
			strerror(errno));
		return -1;
	}
	return 0;
}

static int daemon_signals(struct daemon *d)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	d->sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return d->sig.fd < 0 ? -1 : 0;
}

/* Enough descriptors for SIM_MAX_CONNS connections and the domains' sockets. */
static void daemon_raise_fd_limit(void)
{
	const rlim_t want = SIM_MAX_CONNS + SIM_MAX_DOMAIN_SOCKS + 16;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void daemon_init(struct daemon *d)
{
	static const struct perm n0 = { 0, PERM_NONE };

	d->main.kind = EP_LISTENER;
	d->sig.kind = EP_SIGNAL;
	d->main.fd = d->sig.fd = d->epoll_fd = -1;
	tree_init(d);
	domain_mark(d, 0, true);        /* dom0 is always introduced */
	d->special[0].name = "@introduceDomain";
	d->special[1].name = "@releaseDomain";
	d->special[0].perms = perms_dup(&n0, 1);
	d->special[1].perms = perms_dup(&n0, 1);
	d->special[0].nperms = d->special[1].nperms = 1;
}

static void daemon_fini(struct daemon *d)
{
	unsigned int i;

	for (i = 0; i < d->nconns; i++)
		conn_free(d, d->conns[i]);
	d->nconns = 0;
	node_free(d->tree.root);
	free(d->special[0].perms);
	free(d->special[1].perms);
	for (i = 0; i < d->ndomain_socks; i++)
		domain_sock_close(d, d->domain_socks[i]);
	domain_socks_reap(d);
	if (d->main.fd >= 0) {
		close(d->main.fd);
		unlink(d->socket_path);
	}
	if (d->sig.fd >= 0)
		close(d->sig.fd);
	if (d->epoll_fd >= 0)
		close(d->epoll_fd);
	if (d->pid_path)
		unlink(d->pid_path);
	if (d->log != stderr)
		fclose(d->log);
}

static void usage(FILE *f)
{
	fprintf(f, "usage: xenstored-sim --socket PATH [--domain-sockets DIR] "
		"[--pid-file FILE] [--log FILE] [--verbose]\n");
}

static int daemon_options(struct daemon *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "domain-sockets", required_argument, NULL, 'D' },
		{ "pid-file", required_argument, NULL, 'p' },
		{ "log", required_argument, NULL, 'l' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char *log_path = NULL;
	int o;

	while ((o = getopt_long(argc, argv, "s:p:l:vh", opts, NULL)) != -1) {
		switch (o) {
		case 's': d->socket_path = optarg; break;
		case 'D': d->domain_dir = optarg; break;
		case 'p': d->pid_path = optarg; break;
		case 'l': log_path = optarg; break;
		case 'v': d->verbose = true; break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (!d->socket_path || optind != argc) {
		usage(stderr);
		return -1;
	}
	d->log = log_path ? fopen(log_path, "a") : stderr;
	if (!d->log) {
		fprintf(stderr, "xenstored-sim: open %s: %s\n", log_path,
			strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon *d = sim_alloc(sizeof(*d));
	int rc = 1;

	if (daemon_options(d, argc, argv) < 0) {
		free(d);
		return 64;      /* EX_USAGE */
	}
	daemon_init(d);
	daemon_raise_fd_limit();
	if (daemon_signals(d) == 0 && daemon_listen(d) == 0 &&
	    daemon_epoll(d) == 0 && daemon_write_pid(d) == 0) {
		sim_log(d, "listening on %s (pid %ld)", d->socket_path,
			(long)getpid());
		while (!d->stop)
			daemon_pass(d);
		rc = 0;
	}
	daemon_fini(d);
	free(d);
	return rc;
}
