/*
 * xenchan-dm - a device-model stand-in for guests whose only QEMU work is
 * their channel= lines.
 *
 * libxl runs it in QEMU's place (device_model_override) with the argv it
 * builds for QEMU.  It refuses anything only QEMU can do, starts one
 * xenchan-proxy per libxl-channelN chardev and restarts one that crashes,
 * writes the device-model state libxl waits for once every proxy has its
 * endpoint open, and answers the QMP that libxl and libxenstat speak.
 * Checked against Xen 4.17's libxl_dm.c (argv, startup, destroy),
 * libxl_exec.c (the spawn), libxl_qmp.c (the client) and xenstat_qmp.c.
 *
 * One poll loop: a signalfd (children, SIGTERM, SIGHUP), the xenstore watch
 * fd, the QMP listening sockets and their clients.  A timeout exists only
 * while a restart is pending or the end is near.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>
#include <xenstore.h>
#include <xentoollog.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#ifndef XENCHAN_VERSION
#define XENCHAN_VERSION "unknown"
#endif
/* The proxy to run; empty: xenchan-proxy next to our own executable. */
#ifndef XENCHAN_PROXY_PATH
#define XENCHAN_PROXY_PATH ""
#endif

extern char **environ;

/* libxl's local device model runs in the toolstack domain, and so do we:
 * the channels we serve are those whose backend is this domain. */
#define BACKEND_DOMID     0
#define DOMID_MAX         0x7fefu        /* below DOMID_FIRST_RESERVED */
#define MAX_CHARDEVS      40
#define MAX_CHANNELS      32
#define MAX_MONITORS      4
#define CLIENTS_PER_MON   4              /* more wait in the listen backlog */
#define ID_MAX            64             /* a chardev id */
#define XSP_MAX           256            /* a xenstore path or value we read */
#define SUN_MAX           sizeof(((struct sockaddr_un *)0)->sun_path)
#define MAX_PROXY_OPTS    16

/* A proxy that fails is restarted at once, then after 250 ms, 500 ms, 1 s
 * and 2 s; a sixth failure within a minute leaves its channel unserved
 * (logged) rather than spinning on a fault a restart cannot fix. */
#define RESTART_BURST     5
#define RESTART_WINDOW_MS 60000
#define RESTART_DELAY_MS  250
/* At the end, a proxy gives a reading client up to 5 s without progress to
 * take what it holds; after ENDING_GRACE_MS we stop waiting, and a proxy
 * that ignores SIGTERM for STOP_GRACE_MS is killed. */
#define ENDING_GRACE_MS   10000
#define STOP_GRACE_MS     5000

/* QMP bounds: one message, a client's unread replies, nesting, the id. */
#define QMP_IN_MAX        65536
#define QMP_OUT_MAX       65536
#define QMP_DEPTH_MAX     32
#define QMP_NAME_MAX      64
#define QMP_ID_TOKENS     64
#define QMP_ID_TEXT       1024
/* The QEMU whose QMP dialect we answer in (Debian 12's); libxl picks some
 * command arguments by version, and "package" says who we are. */
#define QMP_QEMU_MAJOR    7
#define QMP_QEMU_MINOR    2
#define QMP_QEMU_MICRO    0

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
	bool ready;                      /* its backend xenchan-pid names pid */
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
	char *proxy_opts_buf;            /* $XENCHAN_PROXY_OPTS, cut into */
	char *proxy_opts[MAX_PROXY_OPTS]; /* these words */
	unsigned n_proxy_opts;
	struct channel ch[MAX_CHANNELS];
	unsigned n_ch;
	struct monitor mon[MAX_MONITORS];
	unsigned n_mon;
};

/* ---- logging ------------------------------------------------------------------ */

static void dm_log(const struct dm *dm, xentoollog_level level, int errnoval,
		   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void dm_log(const struct dm *dm, xentoollog_level level, int errnoval,
		   const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (dm->cfg.have_domid)
		xtl_log((xentoollog_logger *)dm->logger, level, errnoval, "xenchan-dm",
			"domain %u%s%s%s: %s", dm->cfg.domid, dm->cfg.name ? " (" : "",
			dm->cfg.name ? dm->cfg.name : "", dm->cfg.name ? ")" : "", msg);
	else
		xtl_log((xentoollog_logger *)dm->logger, level, errnoval, "xenchan-dm",
			"%s", msg);
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* ---- the argv libxl builds for QEMU -------------------------------------------- */

/* Split a QEMU option string ("socket,id=x,path=/a,,b,server=on") into its
 * parts in buf, as QEMU reads it: ",," is a comma inside a value.  Returns
 * the number of parts, or -1 if there are too many or buf is too small. */
static int opts_split(const char *s, char *buf, size_t buflen, char **part, int max)
{
	size_t o = 0;
	int n = 0;

	part[n++] = buf;
	for (; *s; s++) {
		if (o + 2 > buflen)
			return -1;
		if (*s == ',' && s[1] == ',') {
			buf[o++] = ',';
			s++;
		} else if (*s == ',') {
			buf[o++] = '\0';
			if (n == max)
				return -1;
			part[n++] = buf + o;
		} else {
			buf[o++] = *s;
		}
	}
	buf[o] = '\0';
	return n;
}

/* QEMU's spellings of a boolean option value. */
static int opt_bool(const char *v)
{
	if (!v || !strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
		return 1;
	if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
		return 0;
	return -1;
}

static bool parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!*s || (s[0] == '0' && s[1]))
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (unsigned long)(*s - '0')) / 10)
			return false;
		v = v * 10 + (unsigned long)(*s - '0');
	}
	*out = v;
	return true;
}

/* A libxl-channelN id: N is the channel's console device number. */
static bool channel_devid(const char *id, unsigned *devid)
{
	unsigned long n;

	if (strncmp(id, "libxl-channel", 13) || !parse_uint(id + 13, 0xffff, &n))
		return false;
	*devid = (unsigned)n;
	return true;
}

static int refuse(const struct dm *dm, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Why we cannot stand in for this argv: one line for the qemu-dm log, and
 * an exit code xl reports ("failed startup with non-zero exit status"). */
static int refuse(const struct dm *dm, int code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code == EX_CONFIG)
		dm_log(dm, XTL_ERROR, -1, "%s: only QEMU can serve this domain; xenchan-dm "
		       "serves channels only (drop device_model_override for it)", msg);
	else
		dm_log(dm, XTL_ERROR, -1, "%s", msg);
	return code;
}

static int parse_chardev(struct dm *dm, const char *spec)
{
	struct config *c = &dm->cfg;
	char buf[512], *part[16];
	int n = opts_split(spec, buf, sizeof(buf), part, 16);
	struct chardev *cd;
	bool have_path = false;
	int server = 0, wait = 1;

	if (n < 0 || c->n_chardev == MAX_CHARDEVS)
		return refuse(dm, EX_USAGE, "-chardev %s: too long or too many", spec);
	cd = &c->chardev[c->n_chardev];
	memset(cd, 0, sizeof(*cd));
	if (strcmp(part[0], "pty") && strcmp(part[0], "socket"))
		return refuse(dm, EX_CONFIG, "-chardev %s: a %s character device", spec, part[0]);
	cd->pty = !strcmp(part[0], "pty");
	for (int i = 1; i < n; i++) {
		char *k = part[i], *v = strchr(k, '=');

		if (v)
			*v++ = '\0';
		if (!strcmp(k, "id") && v && strlen(v) < sizeof(cd->id))
			strcpy(cd->id, v);
		else if (!cd->pty && !strcmp(k, "path") && v && strlen(v) >= sizeof(cd->path))
			return refuse(dm, EX_USAGE, "-chardev %s: path too long for a Unix socket", spec);
		else if (!cd->pty && !strcmp(k, "path") && v && *v)
			have_path = (strcpy(cd->path, v), true);
		else if (!cd->pty && !strcmp(k, "server") && (server = opt_bool(v)) >= 0)
			;
		else if (!cd->pty && !strcmp(k, "wait") && (wait = opt_bool(v)) >= 0)
			;
		else if (!cd->pty && !strcmp(k, "fd"))
			return refuse(dm, EX_CONFIG, "-chardev %s: a QMP socket passed as a file "
				      "descriptor (dm_restrict=1)", spec);
		else
			return refuse(dm, EX_USAGE, "-chardev %s: option %s%s%s is not one libxl "
				      "gives a channel or monitor", spec, k, v ? "=" : "", v ? v : "");
	}
	if (!cd->id[0] || (!cd->pty && (!have_path || server != 1 || wait != 0)))
		return refuse(dm, EX_USAGE, "-chardev %s: expected pty,id=ID or "
			      "socket,id=ID,path=PATH,server=on,wait=off", spec);
	for (unsigned i = 0; i < c->n_chardev; i++)
		if (!strcmp(c->chardev[i].id, cd->id))
			return refuse(dm, EX_USAGE, "-chardev %s: id %s given twice", spec, cd->id);
	c->n_chardev++;
	return 0;
}

static int parse_mon(struct dm *dm, const char *spec)
{
	struct config *c = &dm->cfg;
	char buf[256], *part[4];
	int n = opts_split(spec, buf, sizeof(buf), part, 4);
	const char *id = NULL;
	bool control = false;

	for (int i = 0; i < n; i++) {
		if (!strncmp(part[i], "chardev=", 8))
			id = part[i] + 8;
		else if (!strcmp(part[i], "mode=control"))
			control = true;
		else
			return refuse(dm, EX_USAGE, "-mon %s: %s is not supported", spec, part[i]);
	}
	if (!id || !control || strlen(id) >= ID_MAX || c->n_mon == MAX_MONITORS)
		return refuse(dm, EX_USAGE, "-mon %s: expected chardev=ID,mode=control", spec);
	strcpy(c->mon[c->n_mon++], id);
	return 0;
}

enum opt_kind {
	O_DOMID, O_IGNORE, O_CHARDEV, O_MON, O_NAME, O_ATTACH, O_NONE_ONLY, O_MACHINE,
	O_MEM, O_REFUSE,
};

/* Everything libxl 4.17 may put on a local device model's command line for
 * a PV or PVH guest (libxl__build_device_model_args_new), and, to refuse
 * them by name, what it adds for devices only QEMU emulates. */
static const struct dm_option {
	const char *name;
	bool has_arg;
	enum opt_kind kind;
	const char *needs;               /* O_REFUSE: what it asks of QEMU */
} dm_options[] = {
	{ "-xen-domid", true, O_DOMID, NULL },
	{ "-chardev", true, O_CHARDEV, NULL },
	{ "-mon", true, O_MON, NULL },
	{ "-name", true, O_NAME, NULL },
	{ "-xen-attach", false, O_ATTACH, NULL },
	{ "-machine", true, O_MACHINE, NULL },
	{ "-M", true, O_MACHINE, NULL },
	{ "-m", true, O_MEM, NULL },
	{ "-vnc", true, O_NONE_ONLY, "a VNC display (vfb= with vnc=1)" },
	{ "-display", true, O_NONE_ONLY, "an SDL display (vfb= with sdl=1)" },
	{ "-no-shutdown", false, O_IGNORE, NULL },
	{ "-nodefaults", false, O_IGNORE, NULL },
	{ "-no-user-config", false, O_IGNORE, NULL },
	{ "-nographic", false, O_IGNORE, NULL },
	{ "-k", true, O_REFUSE, "a framebuffer's keyboard map (vfb= with keymap=)" },
	{ "-S", false, O_REFUSE, "a device model started paused (dm_restrict=1)" },
	{ "-xen-domid-restrict", false, O_REFUSE, "a restricted device model (dm_restrict=1)" },
	{ "-chroot", true, O_REFUSE, "a chrooted device model (dm_restrict=1)" },
	{ "-runas", true, O_REFUSE, "a device model run as another user (device_model_user=)" },
	{ "-incoming", true, O_REFUSE, "restoring a device model's saved state" },
	{ "-drive", true, O_REFUSE, "an emulated disk" },
	{ "-hda", true, O_REFUSE, "an emulated disk" },
	{ "-hdb", true, O_REFUSE, "an emulated disk" },
	{ "-hdc", true, O_REFUSE, "an emulated disk" },
	{ "-hdd", true, O_REFUSE, "an emulated disk" },
	{ "-cdrom", true, O_REFUSE, "an emulated CD-ROM" },
	{ "-device", true, O_REFUSE, "an emulated device" },
	{ "-net", true, O_REFUSE, "an emulated network card" },
	{ "-netdev", true, O_REFUSE, "an emulated network card" },
	{ "-serial", true, O_REFUSE, "an emulated serial port" },
	{ "-vga", true, O_REFUSE, "emulated graphics" },
	{ "-spice", true, O_REFUSE, "a SPICE display" },
	{ "-usb", false, O_REFUSE, "emulated USB" },
	{ "-usbdevice", true, O_REFUSE, "emulated USB" },
	{ "-kernel", true, O_REFUSE, "an HVM direct kernel boot" },
	{ "-boot", true, O_REFUSE, "an HVM boot order" },
	{ "-smp", true, O_REFUSE, "emulated vCPUs (an HVM guest)" },
	{ "-acpitable", true, O_REFUSE, "emulated ACPI (an HVM guest)" },
};

static int parse_option(struct dm *dm, const struct dm_option *o, const char *arg)
{
	struct config *c = &dm->cfg;
	unsigned long v;

	switch (o->kind) {
	case O_DOMID:
		if (c->have_domid || !parse_uint(arg, DOMID_MAX, &v) || v == 0)
			return refuse(dm, EX_USAGE, "-xen-domid %s: not a guest's domid, or given twice", arg);
		c->domid = (unsigned)v;
		c->have_domid = true;
		return 0;
	case O_CHARDEV: return parse_chardev(dm, arg);
	case O_MON: return parse_mon(dm, arg);
	case O_NAME: c->name = arg; return 0;
	case O_ATTACH: c->xen_attach = true; return 0;
	case O_IGNORE: return 0;
	case O_MEM:
		return parse_uint(arg, ULONG_MAX, &v) ? 0
			: refuse(dm, EX_USAGE, "-m %s: not a size in MiB", arg);
	case O_NONE_ONLY:
		return !strcmp(arg, "none") ? 0
			: refuse(dm, EX_CONFIG, "%s %s: %s", o->name, arg, o->needs);
	case O_MACHINE:
		if (strcmp(arg, "xenpv"))
			return refuse(dm, EX_CONFIG, "%s %s: an emulated machine (an HVM guest)",
				      o->name, arg);
		c->xenpv = true;
		return 0;
	case O_REFUSE:
		return refuse(dm, EX_CONFIG, "%s%s%s: %s", o->name, arg ? " " : "", arg ? arg : "",
			      o->needs);
	}
	return EX_SOFTWARE;
}

/* The chardevs make sense together: libxl-cmd is a QMP monitor, every
 * monitor is a socket, and everything else is a libxl-channelN. */
static int check_chardevs(struct dm *dm)
{
	struct config *c = &dm->cfg;
	unsigned devid, n_channels = 0;

	for (unsigned m = 0; m < c->n_mon; m++) {
		unsigned i;

		for (i = 0; i < c->n_chardev && strcmp(c->chardev[i].id, c->mon[m]); i++)
			;
		if (i == c->n_chardev || c->chardev[i].pty || c->chardev[i].monitor)
			return refuse(dm, EX_USAGE, "-mon chardev=%s: no such socket -chardev, "
				      "or named twice", c->mon[m]);
		c->chardev[i].monitor = true;
	}
	for (unsigned i = 0; i < c->n_chardev; i++) {
		const struct chardev *cd = &c->chardev[i];

		if (!strcmp(cd->id, "libxl-cmd") && !cd->monitor)
			return refuse(dm, EX_USAGE, "-chardev libxl-cmd is not a QMP monitor (-mon)");
		if (cd->monitor)
			continue;
		if (!channel_devid(cd->id, &devid))
			return refuse(dm, EX_USAGE, "-chardev id=%s: neither a QMP monitor nor a "
				      "libxl-channelN", cd->id);
		if (++n_channels > MAX_CHANNELS)
			return refuse(dm, EX_USAGE, "more than %d channels", MAX_CHANNELS);
	}
	return 0;
}

static int parse_argv(struct dm *dm, int argc, char **argv)
{
	struct config *c = &dm->cfg;
	int r;

	for (int i = 1; i < argc; i++) {
		const struct dm_option *o = NULL;

		for (size_t k = 0; k < sizeof(dm_options) / sizeof(dm_options[0]); k++)
			if (!strcmp(argv[i], dm_options[k].name))
				o = &dm_options[k];
		if (!o)
			return refuse(dm, EX_USAGE, "%s %s: not an argument libxl gives the device "
				      "model of a PV or PVH guest (see xenchan-dm(8))",
				      argv[i][0] == '-' ? "unknown option" : "unexpected operand", argv[i]);
		if (o->has_arg && i + 1 == argc)
			return refuse(dm, EX_USAGE, "%s needs an argument", o->name);
		if ((r = parse_option(dm, o, o->has_arg ? argv[++i] : NULL)))
			return r;
	}
	if (!c->have_domid)
		return refuse(dm, EX_USAGE, "no -xen-domid: run by libxl as a device model "
			      "(see xenchan-dm(8))");
	if (!c->xenpv || !c->xen_attach)
		return refuse(dm, EX_CONFIG, "no -machine xenpv and -xen-attach: an HVM guest");
	return check_chardevs(dm);
}

/* ---- xenstore ------------------------------------------------------------------ */
/* Every path xenchan-dm touches is built here. */

static void path_fe(char *p, size_t n, unsigned domid, unsigned devid)
{
	snprintf(p, n, "/local/domain/%u/device/console/%u", domid, devid);
}

static void path_be(char *p, size_t n, unsigned domid, unsigned devid)
{
	snprintf(p, n, "/local/domain/%u/backend/console/%u/%u", BACKEND_DOMID, domid, devid);
}

/* libxl's DEVICE_MODEL_XS_PATH: where QEMU says "running" and lists the
 * backends it serves. */
static void path_dm(char *p, size_t n, unsigned domid, const char *leaf)
{
	snprintf(p, n, "/local/domain/%u/device-model/%u%s%s", BACKEND_DOMID, domid,
		 leaf ? "/" : "", leaf ? leaf : "");
}

/* Read dir/leaf into buf (bounded); false if absent or too long. */
static bool xs_read_leaf(struct xs_handle *xs, const char *dir, const char *leaf,
			 char *buf, size_t buflen)
{
	char path[XSP_MAX];
	unsigned len;
	char *v;

	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	v = xs_read(xs, XBT_NULL, path, &len);
	if (!v)
		return false;
	if (len >= buflen || memchr(v, '\0', len)) {
		free(v);
		return false;
	}
	memcpy(buf, v, len);
	buf[len] = '\0';
	free(v);
	return true;
}

/* Backends of this domain that only QEMU serves (libxl's dm_needed: a
 * qdisk disk, vfb, a QEMU vkb, 9pfs, a qusb controller).  libxl writes
 * them before it starts the device model. */
static const struct { const char *kind, *what; } qemu_backends[] = {
	{ "qdisk", "a disk served by QEMU (backendtype=qdisk)" },
	{ "vfb", "a framebuffer (vfb=)" },
	{ "vkbd", "a QEMU keyboard (vkb=)" },
	{ "9pfs", "a 9pfs share (p9=)" },
	{ "qusb", "a QEMU USB controller (usbctrl= type=qusb)" },
};

static int check_domain(struct dm *dm)
{
	unsigned d = dm->cfg.domid;

	if (!xs_is_domain_introduced(dm->xs, d))
		return refuse(dm, EX_NOINPUT, "no such domain (not introduced to xenstore)");
	for (size_t i = 0; i < sizeof(qemu_backends) / sizeof(qemu_backends[0]); i++) {
		char path[XSP_MAX], **dir;
		unsigned n = 0;

		snprintf(path, sizeof(path), "/local/domain/%u/backend/%s/%u", BACKEND_DOMID,
			 qemu_backends[i].kind, d);
		dir = xs_directory(dm->xs, XBT_NULL, path, &n);
		free(dir);
		if (dir && n)
			return refuse(dm, EX_CONFIG, "%s: %s", path, qemu_backends[i].what);
	}
	return 0;
}

static bool channel_present(struct dm *dm, const struct channel *ch)
{
	char v[16];

	return xs_read_leaf(dm->xs, ch->be, "frontend-id", v, sizeof(v));
}

/* Map each libxl-channelN to console device N.  libxl numbers both the same
 * way (the channel's devid), and xl 4.17 numbers channels from 0, which
 * libxl refuses as a console: channel 0 has a chardev but no device. */
static int find_channels(struct dm *dm)
{
	const struct config *c = &dm->cfg;

	for (unsigned i = 0; i < c->n_chardev; i++) {
		struct channel *ch = &dm->ch[dm->n_ch];
		char bid[16];

		if (c->chardev[i].monitor)
			continue;
		memset(ch, 0, sizeof(*ch));
		ch->cd = &c->chardev[i];
		channel_devid(ch->cd->id, &ch->devid);
		path_fe(ch->fe, sizeof(ch->fe), c->domid, ch->devid);
		path_be(ch->be, sizeof(ch->be), c->domid, ch->devid);
		dm->n_ch++;
		/* Console 0 is the primary console, never a channel. */
		if (ch->devid == 0) {
			dm_log(dm, XTL_NOTICE, -1, "%s: no channel device 0 (xl 4.17 drops the "
			       "first channel= entry): not served", ch->cd->id);
			continue;
		}
		/* The backend directory is the toolstack's (the frontend is the
		 * guest's): it says whether the channel is this domain's to serve. */
		if (!channel_present(dm, ch)) {
			if (xs_read_leaf(dm->xs, ch->fe, "backend-id", bid, sizeof(bid))) {
				dm_log(dm, XTL_NOTICE, -1, "%s: its backend is domain %s, not this "
				       "one: not served", ch->cd->id, bid);
				continue;
			}
			return refuse(dm, EX_NOINPUT, "%s: no console device %u (%s)",
				      ch->cd->id, ch->devid, ch->be);
		}
		if (!xs_read_leaf(dm->xs, ch->fe, "name", ch->name, sizeof(ch->name)))
			snprintf(ch->name, sizeof(ch->name), "%u", ch->devid);
		ch->served = true;
	}
	return 0;
}

/* Watches: the domain's death, and each proxy's pid in its backend
 * directory, written once its endpoint is open and the backend set up. */
static int watch_all(struct dm *dm)
{
	char path[XSP_MAX];

	if (!xs_watch(dm->xs, "@releaseDomain", "release"))
		return dm_log(dm, XTL_ERROR, errno, "xs_watch @releaseDomain"), EX_UNAVAILABLE;
	for (unsigned i = 0; i < dm->n_ch; i++) {
		if (!dm->ch[i].served)
			continue;
		snprintf(path, sizeof(path), "%s/xenchan-pid", dm->ch[i].be);
		if (!xs_watch(dm->xs, path, "ready"))
			return dm_log(dm, XTL_ERROR, errno, "xs_watch %s", path), EX_UNAVAILABLE;
	}
	return 0;
}

static bool proxy_ready(struct dm *dm, const struct channel *ch)
{
	char v[16];
	unsigned long pid;

	return ch->pid && xs_read_leaf(dm->xs, ch->be, "xenchan-pid", v, sizeof(v))
		&& parse_uint(v, INT_MAX, &pid) && (pid_t)pid == ch->pid;
}

/* What libxl waits for before it unpauses the guest. */
static int write_running(struct dm *dm)
{
	char path[XSP_MAX];

	/* As QEMU lists the backends it serves: libxl reads this list before
	 * it hot-plugs a qusb controller, and so refuses one cleanly. */
	path_dm(path, sizeof(path), dm->cfg.domid, "backends/console");
	if (!xs_mkdir(dm->xs, XBT_NULL, path))
		dm_log(dm, XTL_WARN, errno, "xs_mkdir %s", path);
	path_dm(path, sizeof(path), dm->cfg.domid, "state");
	if (!xs_write(dm->xs, XBT_NULL, path, "running", 7))
		return dm_log(dm, XTL_ERROR, errno, "xs_write %s", path), EX_UNAVAILABLE;
	return 0;
}

/* ---- proxies -------------------------------------------------------------------- */

/* The proxy: $XENCHAN_PROXY, else the path built in, else xenchan-proxy
 * beside us; and extra options for it from $XENCHAN_PROXY_OPTS (for tests
 * and wrappers: --no-seccomp under a sanitizer, -v). */
static void find_proxy(struct dm *dm)
{
	const char *env = getenv("XENCHAN_PROXY");
	const char *opts = getenv("XENCHAN_PROXY_OPTS");
	char *save = NULL, *w, *slash;
	ssize_t n;

	dm->proxy_opts_buf = opts ? strdup(opts) : NULL;
	w = dm->proxy_opts_buf ? strtok_r(dm->proxy_opts_buf, " \t", &save) : NULL;
	for (; w && dm->n_proxy_opts < MAX_PROXY_OPTS; w = strtok_r(NULL, " \t", &save))
		dm->proxy_opts[dm->n_proxy_opts++] = w;

	if (env && *env) {
		snprintf(dm->proxy, sizeof(dm->proxy), "%s", env);
		return;
	}
	if (XENCHAN_PROXY_PATH[0]) {
		snprintf(dm->proxy, sizeof(dm->proxy), "%s", XENCHAN_PROXY_PATH);
		return;
	}
	n = readlink("/proc/self/exe", dm->proxy, sizeof(dm->proxy) - 16);
	if (n <= 0 || !(slash = memrchr(dm->proxy, '/', (size_t)n))) {
		strcpy(dm->proxy, "xenchan-proxy");
		return;
	}
	strcpy(slash + 1, "xenchan-proxy");
}

static pid_t spawn_proxy(struct dm *dm, struct channel *ch)
{
	char domid[16], devid[16], *argv[MAX_PROXY_OPTS + 8];
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, reset;
	pid_t pid = 0;
	unsigned n = 0;
	int r;

	snprintf(domid, sizeof(domid), "%u", dm->cfg.domid);
	snprintf(devid, sizeof(devid), "%u", ch->devid);
	argv[n++] = dm->proxy;
	for (unsigned i = 0; i < dm->n_proxy_opts; i++)
		argv[n++] = dm->proxy_opts[i];
	argv[n++] = ch->cd->pty ? "--pty" : "--listen";
	if (!ch->cd->pty)
		argv[n++] = (char *)ch->cd->path;
	argv[n++] = "--";
	argv[n++] = domid;
	argv[n++] = devid;
	argv[n] = NULL;

	/* The child starts with no blocked signals and default dispositions,
	 * and with none of our descriptors but stdio (the log). */
	sigemptyset(&none);
	sigfillset(&reset);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &reset);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = posix_spawn(&pid, dm->proxy, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r) {
		dm_log(dm, XTL_ERROR, r, "%s: posix_spawn %s", ch->cd->id, dm->proxy);
		return -1;
	}
	ch->pid = pid;
	ch->ready = false;
	dm_log(dm, XTL_INFO, -1, "%s: started xenchan-proxy pid %d for channel %s (device %u) "
	       "on %s%s", ch->cd->id, (int)pid, ch->name, ch->devid,
	       ch->cd->pty ? "a pty" : "socket ", ch->cd->pty ? "" : ch->cd->path);
	return pid;
}

static void describe_status(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (wait status %#x)", (unsigned)status);
}

static void begin_stopping(struct dm *dm, int exit_code);

static void schedule_restart(struct dm *dm, struct channel *ch, const char *how)
{
	int64_t now = now_ms();

	if (ch->restarts == 0 || now - ch->window_start > RESTART_WINDOW_MS) {
		ch->window_start = now;
		ch->restarts = 0;
	}
	if (ch->restarts == RESTART_BURST) {
		ch->given_up = true;
		dm_log(dm, XTL_ERROR, -1, "%s: the proxy for channel %s %s, its %dth failure "
		       "within %d s: not restarting it; the channel stays unserved", ch->cd->id,
		       ch->name, how, RESTART_BURST + 1, RESTART_WINDOW_MS / 1000);
		return;
	}
	ch->restart_at = now + (ch->restarts ? (int64_t)RESTART_DELAY_MS << (ch->restarts - 1) : 0);
	ch->restarts++;
	dm_log(dm, XTL_WARN, -1, "%s: the proxy for channel %s %s; restarting it "
	       "(restart %u of at most %d within %d s)", ch->cd->id, ch->name, how,
	       ch->restarts, RESTART_BURST, RESTART_WINDOW_MS / 1000);
}

static void proxy_exited(struct dm *dm, struct channel *ch, int status)
{
	char how[96];

	describe_status(status, how, sizeof(how));
	ch->pid = 0;
	ch->ready = false;
	if (dm->phase == DM_STOPPING) {
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s %s", ch->cd->id,
		       ch->name, how);
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		/* The proxy's own verdict: the channel or the domain is gone. */
		ch->ended = true;
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s exited: its channel "
		       "or domain is gone", ch->cd->id, ch->name);
		return;
	}
	if (dm->phase == DM_STARTING) {
		dm_log(dm, XTL_ERROR, -1, "%s: the proxy for channel %s %s before it was "
		       "ready; giving up the start", ch->cd->id, ch->name, how);
		begin_stopping(dm, WIFEXITED(status) ? WEXITSTATUS(status) : EX_SOFTWARE);
		return;
	}
	if (dm->phase != DM_RUNNING) {
		dm_log(dm, XTL_INFO, -1, "%s: the proxy for channel %s %s", ch->cd->id,
		       ch->name, how);
		return;
	}
	schedule_restart(dm, ch, how);
}

static void reap_children(struct dm *dm)
{
	int status;
	pid_t pid;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (unsigned i = 0; i < dm->n_ch; i++)
			if (dm->ch[i].pid == pid)
				proxy_exited(dm, &dm->ch[i], status);
}

static unsigned children_alive(const struct dm *dm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dm->n_ch; i++)
		n += dm->ch[i].pid != 0;
	return n;
}

static void signal_children(struct dm *dm, int sig)
{
	for (unsigned i = 0; i < dm->n_ch; i++)
		if (dm->ch[i].pid)
			kill(dm->ch[i].pid, sig);
}

/* A pending restart is due: only while the domain and the channel live. */
static void restart_due(struct dm *dm, struct channel *ch)
{
	ch->restart_at = 0;
	if (!channel_present(dm, ch)) {
		ch->ended = true;
		dm_log(dm, XTL_INFO, -1, "%s: channel %s is gone: not restarting its proxy",
		       ch->cd->id, ch->name);
		return;
	}
	if (spawn_proxy(dm, ch) < 0)
		schedule_restart(dm, ch, "could not be started");
}

/* ---- phases --------------------------------------------------------------------- */

static void begin_stopping(struct dm *dm, int exit_code)
{
	if (dm->phase == DM_STOPPING)
		return;
	if (exit_code && !dm->exit_code)
		dm->exit_code = exit_code;
	dm->phase = DM_STOPPING;
	dm->deadline = now_ms() + STOP_GRACE_MS;
	for (unsigned i = 0; i < dm->n_ch; i++)
		dm->ch[i].restart_at = 0;
	signal_children(dm, SIGTERM);
}

/* The domain is going (SIGHUP from libxl's destroy, or it is gone): libxl
 * removes the channels' nodes, and each proxy then hands a reading client
 * what it holds and exits by itself. */
static void begin_ending(struct dm *dm, const char *why)
{
	if (dm->phase >= DM_ENDING)
		return;
	dm_log(dm, XTL_INFO, -1, "%s: letting %u proxies finish", why, children_alive(dm));
	dm->phase = DM_ENDING;
	dm->deadline = now_ms() + ENDING_GRACE_MS;
	for (unsigned i = 0; i < dm->n_ch; i++)
		dm->ch[i].restart_at = 0;
}

static void check_started(struct dm *dm)
{
	unsigned n = 0;

	for (unsigned i = 0; i < dm->n_ch; i++) {
		struct channel *ch = &dm->ch[i];

		if (ch->pid && !ch->ready && proxy_ready(dm, ch)) {
			ch->ready = true;
			if (dm->phase == DM_RUNNING)
				dm_log(dm, XTL_INFO, -1, "%s: channel %s served again by pid %d",
				       ch->cd->id, ch->name, (int)ch->pid);
		}
		n += ch->served && !ch->ended && !ch->ready;
	}
	if (dm->phase != DM_STARTING || n)
		return;
	if (write_running(dm)) {
		begin_stopping(dm, EX_UNAVAILABLE);
		return;
	}
	dm->phase = DM_RUNNING;
	dm_log(dm, XTL_INFO, -1, "running: every proxy has its endpoint open");
}

static void on_watches(struct dm *dm)
{
	char **ev;
	bool release = false;

	while ((ev = xs_check_watch(dm->xs)) != NULL) {
		release |= !strcmp(ev[XS_WATCH_TOKEN], "release");
		free(ev);
	}
	if (errno != EAGAIN) {
		/* Without xenstore nothing can be supervised, and its fd would
		 * poll readable for ever. */
		dm_log(dm, XTL_ERROR, errno, "xs_check_watch: lost xenstore");
		dm->xs_lost = true;
		begin_stopping(dm, EX_UNAVAILABLE);
		return;
	}
	if (release && !xs_is_domain_introduced(dm->xs, dm->cfg.domid))
		begin_ending(dm, "the domain is gone");
	check_started(dm);
}

static void on_signals(struct dm *dm)
{
	struct signalfd_siginfo si;

	while (read(dm->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGCHLD:
			reap_children(dm);
			check_started(dm);      /* an ended channel holds nothing up */
			break;
		case SIGHUP:
			/* libxl_destroy_device_model's signal, sent just before it
			 * removes the domain's devices. */
			begin_ending(dm, "SIGHUP: the domain is being destroyed");
			break;
		default:
			if (dm->phase != DM_STOPPING)
				dm_log(dm, XTL_INFO, -1, "%s: stopping %u proxies",
				       strsignal((int)si.ssi_signo), children_alive(dm));
			begin_stopping(dm, 0);
		}
	}
}

/* Due restarts and the ends of grace periods; the poll timeout until the
 * next one (-1: none, so an idle xenchan-dm never wakes). */
static int on_timers(struct dm *dm)
{
	int64_t now = now_ms(), next = -1;

	if (dm->phase >= DM_ENDING && now >= dm->deadline && children_alive(dm)) {
		if (dm->phase == DM_ENDING) {
			dm_log(dm, XTL_WARN, -1, "%u proxies still running %d s after the end "
			       "began: stopping them", children_alive(dm), ENDING_GRACE_MS / 1000);
			begin_stopping(dm, 0);
		} else if (!dm->killed) {
			dm_log(dm, XTL_WARN, -1, "%u proxies ignored SIGTERM for %d s: killing them",
			       children_alive(dm), STOP_GRACE_MS / 1000);
			signal_children(dm, SIGKILL);
			dm->killed = true;
		}
	}
	if (dm->phase >= DM_ENDING && !dm->killed)
		next = dm->deadline;
	for (unsigned i = 0; i < dm->n_ch; i++) {
		struct channel *ch = &dm->ch[i];

		if (ch->restart_at && ch->restart_at <= now && dm->phase == DM_RUNNING)
			restart_due(dm, ch);
		if (ch->restart_at && (next < 0 || ch->restart_at < next))
			next = ch->restart_at;
	}
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now);
}

/* ---- QMP: replies ----------------------------------------------------------------- */
/* Framing as libxl reads it: one JSON object per message, then "\r\n". */

static void client_drop(struct qmp_client *c)
{
	c->closing = true;
	c->out_len = 0;
}

static void out_append(struct qmp_client *c, const void *p, size_t len)
{
	char *grown;
	size_t cap;

	if (c->out_len + len > QMP_OUT_MAX) {
		dm_log(c->dm, XTL_WARN, -1, "QMP %s: a client that leaves %zu bytes of replies "
		       "unread: dropping it", c->dm->mon[0].cd->id, c->out_len);
		client_drop(c);
		return;
	}
	if (c->out_len + len > c->out_cap) {
		for (cap = c->out_cap ? c->out_cap : 4096; cap < c->out_len + len; cap *= 2)
			;
		if (!(grown = realloc(c->out, cap))) {
			client_drop(c);
			return;
		}
		c->out = grown;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, p, len);
	c->out_len += len;
}

static void client_flush(struct qmp_client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			client_drop(c);
			break;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
	}
	free(c->out);
	c->out = NULL;
	c->out_cap = 0;
}

static void gen_str(yajl_gen g, const char *s)
{
	/* yajl checks before it writes: a refused string leaves g usable. */
	if (yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_invalid_string)
		yajl_gen_string(g, (const unsigned char *)"(not UTF-8)", 11);
}

static void gen_pair(yajl_gen g, const char *k, const char *v)
{
	gen_str(g, k);
	gen_str(g, v);
}

static yajl_gen reply_open(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g) {
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
		yajl_gen_map_open(g);
	}
	return g;
}

/* The command's id, as it came. */
static void gen_id(yajl_gen g, const struct qmp_msg *m)
{
	gen_str(g, "id");
	for (unsigned i = 0; i < m->n_id; i++) {
		const unsigned char *s = (const unsigned char *)m->id_text + m->id[i].off;

		switch (m->id[i].t) {
		case T_NULL: yajl_gen_null(g); break;
		case T_TRUE: yajl_gen_bool(g, 1); break;
		case T_FALSE: yajl_gen_bool(g, 0); break;
		case T_NUMBER: yajl_gen_number(g, (const char *)s, m->id[i].len); break;
		case T_STRING:
		case T_KEY: yajl_gen_string(g, s, m->id[i].len); break;
		case T_MAP_OPEN: yajl_gen_map_open(g); break;
		case T_MAP_CLOSE: yajl_gen_map_close(g); break;
		case T_ARRAY_OPEN: yajl_gen_array_open(g); break;
		case T_ARRAY_CLOSE: yajl_gen_array_close(g); break;
		}
	}
}

static void reply_send(struct qmp_client *c, yajl_gen g, const struct qmp_msg *m)
{
	const unsigned char *buf;
	size_t len;

	if (m && m->have_id && !m->id_too_big)
		gen_id(g, m);
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
		out_append(c, buf, len);
		out_append(c, "\r\n", 2);
	} else {
		client_drop(c);
	}
	yajl_gen_free(g);
}

static void qmp_error(struct qmp_client *c, const struct qmp_msg *m, const char *class,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void qmp_error(struct qmp_client *c, const struct qmp_msg *m, const char *class,
		      const char *fmt, ...)
{
	yajl_gen g = reply_open();
	char desc[256];
	va_list ap;

	if (!g) {
		client_drop(c);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	gen_str(g, "error");
	yajl_gen_map_open(g);
	gen_pair(g, "class", class);
	gen_pair(g, "desc", desc);
	yajl_gen_map_close(g);
	reply_send(c, g, m);
}

/* Input we will not read on from: say why, then hang up (QEMU resyncs
 * instead; no client of ours sends such input). */
static int qmp_fail(struct qmp_client *c, const char *why)
{
	qmp_error(c, NULL, "GenericError", "%s", why);
	c->closing = true;
	return 0;
}

static void greeting(struct qmp_client *c)
{
	yajl_gen g = reply_open();

	if (!g) {
		client_drop(c);
		return;
	}
	gen_str(g, "QMP");
	yajl_gen_map_open(g);
	gen_str(g, "version");
	yajl_gen_map_open(g);
	gen_str(g, "qemu");
	yajl_gen_map_open(g);
	gen_str(g, "micro");
	yajl_gen_integer(g, QMP_QEMU_MICRO);
	gen_str(g, "minor");
	yajl_gen_integer(g, QMP_QEMU_MINOR);
	gen_str(g, "major");
	yajl_gen_integer(g, QMP_QEMU_MAJOR);
	yajl_gen_map_close(g);
	gen_pair(g, "package", "xenchan-dm " XENCHAN_VERSION);
	yajl_gen_map_close(g);
	gen_str(g, "capabilities");
	yajl_gen_array_open(g);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	reply_send(c, g, NULL);
}

/* ---- QMP: commands ---------------------------------------------------------------- */

static void cmd_capabilities(struct qmp_client *c, yajl_gen g)
{
	c->negotiated = true;
	yajl_gen_map_open(g);
	yajl_gen_map_close(g);
}

static void cmd_empty_list(struct qmp_client *c, yajl_gen g)
{
	(void)c;
	yajl_gen_array_open(g);
	yajl_gen_array_close(g);
}

static void cmd_query_status(struct qmp_client *c, yajl_gen g)
{
	(void)c;
	yajl_gen_map_open(g);
	gen_pair(g, "status", "running");
	gen_str(g, "singlestep");
	yajl_gen_bool(g, 0);
	gen_str(g, "running");
	yajl_gen_bool(g, 1);
	yajl_gen_map_close(g);
}

static void cmd_query_name(struct qmp_client *c, yajl_gen g)
{
	yajl_gen_map_open(g);
	if (c->dm->cfg.name)
		gen_pair(g, "name", c->dm->cfg.name);
	yajl_gen_map_close(g);
}

static void cmd_query_version(struct qmp_client *c, yajl_gen g)
{
	(void)c;
	yajl_gen_map_open(g);
	gen_str(g, "qemu");
	yajl_gen_map_open(g);
	gen_str(g, "major");
	yajl_gen_integer(g, QMP_QEMU_MAJOR);
	gen_str(g, "minor");
	yajl_gen_integer(g, QMP_QEMU_MINOR);
	gen_str(g, "micro");
	yajl_gen_integer(g, QMP_QEMU_MICRO);
	yajl_gen_map_close(g);
	gen_pair(g, "package", "xenchan-dm " XENCHAN_VERSION);
	yajl_gen_map_close(g);
}

static void chardev_entry(yajl_gen g, const char *label, const char *filename, bool open)
{
	yajl_gen_map_open(g);
	gen_pair(g, "label", label);
	gen_pair(g, "filename", filename);
	gen_str(g, "frontend-open");
	yajl_gen_bool(g, open);
	yajl_gen_map_close(g);
}

/* As QEMU describes its chardevs: "pty:/dev/pts/N" (the pty the proxy
 * allocated, from the frontend tty node it wrote), "unix:PATH,server=on".
 * A channel we do not serve (no device) has no entry. */
static void cmd_query_chardev(struct qmp_client *c, yajl_gen g)
{
	struct dm *dm = c->dm;
	char name[XSP_MAX + 32], tty[XSP_MAX];

	yajl_gen_array_open(g);
	for (unsigned i = 0; i < dm->n_mon; i++) {
		snprintf(name, sizeof(name), "unix:%s,server=on", dm->mon[i].cd->path);
		chardev_entry(g, dm->mon[i].cd->id, name, true);
	}
	for (unsigned i = 0; i < dm->n_ch; i++) {
		const struct channel *ch = &dm->ch[i];

		if (!ch->served)
			continue;
		if (!ch->cd->pty)
			snprintf(name, sizeof(name), "unix:%s,server=on", ch->cd->path);
		else if (ch->ready && xs_read_leaf(dm->xs, ch->fe, "tty", tty, sizeof(tty)) && tty[0])
			snprintf(name, sizeof(name), "pty:%s", tty);
		else
			snprintf(name, sizeof(name), "disconnected:pty");
		chardev_entry(g, ch->cd->id, name, ch->ready);
	}
	yajl_gen_array_close(g);
}

static void cmd_quit(struct qmp_client *c, yajl_gen g)
{
	yajl_gen_map_open(g);
	yajl_gen_map_close(g);
	dm_log(c->dm, XTL_INFO, -1, "QMP quit: stopping %u proxies", children_alive(c->dm));
	begin_stopping(c->dm, 0);
}

static void cmd_query_commands(struct qmp_client *c, yajl_gen g);

/* What libxl 4.17 sends a PV guest's device model (query-chardev after
 * startup), what libxenstat sends (query-blockstats: we have no disks), and
 * a few harmless queries. */
static const struct qmp_command {
	const char *name;
	void (*run)(struct qmp_client *c, yajl_gen g);
} qmp_commands[] = {
	{ "qmp_capabilities", cmd_capabilities },
	{ "query-chardev", cmd_query_chardev },
	{ "query-status", cmd_query_status },
	{ "query-name", cmd_query_name },
	{ "query-version", cmd_query_version },
	{ "query-commands", cmd_query_commands },
	{ "query-block", cmd_empty_list },
	{ "query-blockstats", cmd_empty_list },
	{ "quit", cmd_quit },
};
#define N_COMMANDS (sizeof(qmp_commands) / sizeof(qmp_commands[0]))

static void cmd_query_commands(struct qmp_client *c, yajl_gen g)
{
	(void)c;
	yajl_gen_array_open(g);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		yajl_gen_map_open(g);
		gen_pair(g, "name", qmp_commands[i].name);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void qmp_dispatch(struct qmp_client *c)
{
	const struct qmp_msg *m = &c->msg;
	const struct qmp_command *cmd = NULL;
	yajl_gen g;

	if (m->id_too_big)
		return qmp_error(c, NULL, "GenericError", "QMP input member 'id' is too large");
	if (m->unexpected[0])
		return qmp_error(c, m, "GenericError", "QMP input member '%s' is unexpected",
				 m->unexpected);
	if (m->bad_execute || !m->have_execute)
		return qmp_error(c, m, "GenericError", m->bad_execute ? "QMP input member "
				 "'execute' must be a string" : "QMP input lacks member 'execute'");
	if (m->bad_arguments)
		return qmp_error(c, m, "GenericError", "QMP input member 'arguments' must be an object");
	for (size_t i = 0; i < N_COMMANDS && !cmd; i++)
		if (!strcmp(qmp_commands[i].name, m->execute))
			cmd = &qmp_commands[i];
	if (!c->negotiated && (!cmd || cmd->run != cmd_capabilities))
		return qmp_error(c, m, "CommandNotFound", "Expecting capabilities negotiation "
				 "with 'qmp_capabilities'");
	if (c->negotiated && cmd && cmd->run == cmd_capabilities)
		return qmp_error(c, m, "CommandNotFound", "Capabilities negotiation is already "
				 "complete, command ignored");
	if (!cmd)
		return qmp_error(c, m, "CommandNotFound", "The command %s has not been found",
				 m->execute);
	if (!(g = reply_open()))
		return client_drop(c);
	gen_str(g, "return");
	cmd->run(c, g);
	reply_send(c, g, m);
}

/* ---- QMP: parsing, with yajl's event parser ------------------------------------ */

static void id_token(struct qmp_msg *m, enum tok t, const void *s, size_t len)
{
	if (m->n_id == QMP_ID_TOKENS || len > sizeof(m->id_text) - m->id_used) {
		m->id_too_big = true;
		return;
	}
	m->id[m->n_id].t = t;
	m->id[m->n_id].off = m->id_used;
	m->id[m->n_id].len = (unsigned)len;
	if (len)
		memcpy(m->id_text + m->id_used, s, len);
	m->id_used += (unsigned)len;
	m->n_id++;
}

/* A value begins at msg.depth: a scalar, or an object or array opening. */
static int qmp_value(struct qmp_client *c, enum tok t, const void *s, size_t len)
{
	struct qmp_msg *m = &c->msg;

	if (m->depth == 0 && t != T_MAP_OPEN)
		return qmp_fail(c, "QMP input must be a JSON object");
	if (m->depth == 1 && m->member == M_EXECUTE) {
		m->bad_execute = t != T_STRING || len >= sizeof(m->execute) || memchr(s, '\0', len);
		if (!m->bad_execute) {
			memcpy(m->execute, s, len);
			m->execute[len] = '\0';
			m->have_execute = true;
		}
	} else if (m->depth == 1 && m->member == M_ARGUMENTS) {
		m->bad_arguments = t != T_MAP_OPEN;
	} else if (m->depth >= 1 && m->member == M_ID) {
		id_token(m, t, s, len);
	}
	if ((t == T_MAP_OPEN || t == T_ARRAY_OPEN) && ++m->depth > QMP_DEPTH_MAX)
		return qmp_fail(c, "QMP input nests too deeply");
	return 1;
}

static int qmp_close(struct qmp_client *c, enum tok t)
{
	struct qmp_msg *m = &c->msg;

	if (m->depth >= 2 && m->member == M_ID)
		id_token(m, t, NULL, 0);
	if (--m->depth == 0) {
		qmp_dispatch(c);
		memset(m, 0, sizeof(*m));
		c->in_bytes = 0;
	}
	return !c->closing;
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
	struct qmp_client *c = ctx;
	struct qmp_msg *m = &c->msg;

	if (m->depth >= 2) {
		if (m->member == M_ID)
			id_token(m, T_KEY, k, len);
		return 1;
	}
#define KEY_IS(s) (len == sizeof(s) - 1 && !memcmp(k, s, len))
	m->member = KEY_IS("execute") ? M_EXECUTE : KEY_IS("id") ? M_ID
		: KEY_IS("arguments") ? M_ARGUMENTS : M_OTHER;
#undef KEY_IS
	if (m->member == M_ID) {
		m->have_id = true;
		m->id_too_big = false;
		m->n_id = m->id_used = 0;
	}
	if (m->member == M_OTHER && !m->unexpected[0])
		snprintf(m->unexpected, sizeof(m->unexpected), "%.*s",
			 (int)(len < sizeof(m->unexpected) ? len : sizeof(m->unexpected) - 1), k);
	return 1;
}

static int on_null(void *ctx) { return qmp_value(ctx, T_NULL, NULL, 0); }
static int on_bool(void *ctx, int b) { return qmp_value(ctx, b ? T_TRUE : T_FALSE, NULL, 0); }
static int on_number(void *ctx, const char *s, size_t len)
{
	return qmp_value(ctx, T_NUMBER, s, len);
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
	return qmp_value(ctx, T_STRING, s, len);
}

static int on_map_open(void *ctx) { return qmp_value(ctx, T_MAP_OPEN, NULL, 0); }
static int on_map_close(void *ctx) { return qmp_close(ctx, T_MAP_CLOSE); }
static int on_array_open(void *ctx) { return qmp_value(ctx, T_ARRAY_OPEN, NULL, 0); }
static int on_array_close(void *ctx) { return qmp_close(ctx, T_ARRAY_CLOSE); }

static const yajl_callbacks qmp_callbacks = {
	.yajl_null = on_null, .yajl_boolean = on_bool, .yajl_number = on_number,
	.yajl_string = on_string, .yajl_start_map = on_map_open, .yajl_map_key = on_key,
	.yajl_end_map = on_map_close, .yajl_start_array = on_array_open,
	.yajl_end_array = on_array_close,
};

/* ---- QMP: sockets ------------------------------------------------------------------ */

/* Is something accepting connections at path?  Then it is not ours to take. */
static bool socket_live(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	strcpy(sa.sun_path, path);
	live = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return live;
}

static int monitor_open(struct dm *dm, struct monitor *mon)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = mon->cd->path;
	struct stat st;
	mode_t old;
	int r;

	mon->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (mon->fd < 0)
		return dm_log(dm, XTL_ERROR, errno, "QMP %s: socket", mon->cd->id), EX_OSERR;
	strcpy(sa.sun_path, path);
	/* libxl unlinks these sockets when it destroys the domain; one left by
	 * a crash is stale.  A live one belongs to another device model. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || socket_live(path))
			return refuse(dm, EX_CANTCREAT, "QMP %s: %s is in the way (%s)", mon->cd->id,
				      path, S_ISSOCK(st.st_mode) ? "another device model listens there"
				      : "not a socket");
		unlink(path);
	}
	old = umask(0177);              /* only root talks QMP, as with QEMU */
	r = bind(mon->fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(mon->fd, 8) < 0 || stat(path, &st) < 0)
		return dm_log(dm, XTL_ERROR, errno, "QMP %s: bind/listen %s", mon->cd->id, path),
			EX_CANTCREAT;
	mon->dev = st.st_dev;
	mon->ino = st.st_ino;
	return 0;
}

static void client_close(struct qmp_client *c)
{
	close(c->fd);
	c->fd = -1;
	yajl_free(c->y);
	c->y = NULL;
	free(c->out);
	c->out = NULL;
	c->out_len = c->out_cap = 0;
}

static void monitor_accept(struct dm *dm, struct monitor *mon)
{
	struct qmp_client *c = NULL;
	int fd;

	for (unsigned i = 0; i < CLIENTS_PER_MON && !c; i++)
		if (mon->client[i].fd < 0)
			c = &mon->client[i];
	if (!c)
		return;
	fd = accept4(mon->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			dm_log(dm, XTL_WARN, errno, "QMP %s: accept", mon->cd->id);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->dm = dm;
	c->fd = fd;
	if (!(c->y = yajl_alloc(&qmp_callbacks, NULL, c))) {
		close(fd);
		c->fd = -1;
		return;
	}
	yajl_config(c->y, yajl_allow_multiple_values, 1);
	greeting(c);
	client_flush(c);
}

static void client_read(struct qmp_client *c)
{
	unsigned char buf[4096], *err;
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	yajl_status st;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* libxl hangs up after its reply; so does libxenstat. */
		client_flush(c);
		client_drop(c);
		return;
	}
	c->in_bytes += (size_t)n;
	if (c->in_bytes > QMP_IN_MAX) {
		qmp_fail(c, "QMP input too long");
		return;
	}
	st = yajl_parse(c->y, buf, (size_t)n);
	if (st == yajl_status_error) {
		char why[200];

		err = yajl_get_error(c->y, 0, buf, (size_t)n);
		snprintf(why, sizeof(why), "JSON parse error, %s", err ? (char *)err : "?");
		why[strcspn(why, "\r\n")] = '\0';
		yajl_free_error(c->y, err);
		qmp_fail(c, why);
	}
}

static void monitor_close(struct monitor *mon)
{
	struct stat st;

	for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
		if (mon->client[i].fd >= 0) {
			client_flush(&mon->client[i]);
			client_close(&mon->client[i]);
		}
	if (mon->fd < 0)
		return;
	close(mon->fd);
	mon->fd = -1;
	/* libxl removes it on destroy; if not, remove it, but never a
	 * successor's. */
	if (stat(mon->cd->path, &st) == 0 && st.st_dev == mon->dev && st.st_ino == mon->ino)
		unlink(mon->cd->path);
}

/* ---- the loop ---------------------------------------------------------------------- */

enum { PFD_SIGNAL, PFD_XS, PFD_FIXED };
#define PFD_MAX (PFD_FIXED + MAX_MONITORS * (1 + CLIENTS_PER_MON))

/* What each pollfd past PFD_FIXED stands for: a listener or a client. */
struct poll_who {
	struct monitor *mon;
	struct qmp_client *client;
};

static void on_qmp(struct dm *dm, const struct pollfd *pfd, const struct poll_who *who,
		   unsigned n)
{
	for (unsigned k = PFD_FIXED; k < n; k++) {
		struct qmp_client *c = who[k].client;

		if (!c) {
			if (pfd[k].revents)
				monitor_accept(dm, who[k].mon);
			continue;
		}
		/* A listener earlier in this pass may not reuse a slot polled
		 * here (only free slots are filled), but check the fd anyway. */
		if (c->fd != pfd[k].fd)
			continue;
		if (!c->closing && pfd[k].revents & (POLLIN | POLLHUP | POLLERR))
			client_read(c);
		if (c->out_len)
			client_flush(c);
		if (c->closing && !c->out_len)
			client_close(c);
	}
}

static unsigned poll_set(struct dm *dm, struct pollfd *pfd, struct poll_who *who)
{
	unsigned n = PFD_FIXED;

	pfd[PFD_SIGNAL] = (struct pollfd){ .fd = dm->sfd, .events = POLLIN };
	pfd[PFD_XS] = (struct pollfd){ .fd = dm->xs_lost ? -1 : xs_fileno(dm->xs), .events = POLLIN };
	for (unsigned m = 0; m < dm->n_mon; m++) {
		struct monitor *mon = &dm->mon[m];
		bool full = true;

		for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
			full &= mon->client[i].fd >= 0;
		/* At capacity, later clients wait in the listen backlog. */
		if (!full) {
			who[n] = (struct poll_who){ .mon = mon };
			pfd[n++] = (struct pollfd){ .fd = mon->fd, .events = POLLIN };
		}
		for (unsigned i = 0; i < CLIENTS_PER_MON; i++) {
			struct qmp_client *c = &mon->client[i];

			if (c->fd < 0)
				continue;
			who[n] = (struct poll_who){ .mon = mon, .client = c };
			pfd[n++] = (struct pollfd){ .fd = c->fd,
				.events = (short)((c->closing ? 0 : POLLIN) | (c->out_len ? POLLOUT : 0)) };
		}
	}
	return n;
}

static int run(struct dm *dm)
{
	struct pollfd pfd[PFD_MAX];
	struct poll_who who[PFD_MAX];

	for (;;) {
		int timeout = on_timers(dm);
		unsigned n;

		if (dm->phase >= DM_ENDING && !children_alive(dm))
			return dm->exit_code;
		n = poll_set(dm, pfd, who);
		if (poll(pfd, n, timeout) < 0) {
			if (errno == EINTR)
				continue;
			dm_log(dm, XTL_ERROR, errno, "poll");
			return EX_OSERR;
		}
		if (pfd[PFD_SIGNAL].revents)
			on_signals(dm);
		if (pfd[PFD_XS].revents)
			on_watches(dm);
		on_qmp(dm, pfd, who, n);
	}
}

/* ---- setup and end ------------------------------------------------------------------ */

static int setup(struct dm *dm)
{
	sigset_t mask;
	unsigned n;
	int r;

	/* Ours are not the proxies' (they would take them for systemd's). */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	find_proxy(dm);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0
	    || (dm->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0)
		return dm_log(dm, XTL_ERROR, errno, "signalfd"), EX_OSERR;
	if (!(dm->xs = xs_open(0)))
		return dm_log(dm, XTL_ERROR, errno, "xs_open (is xenstored running?)"), EX_UNAVAILABLE;
	if ((r = check_domain(dm)) || (r = find_channels(dm)))
		return r;
	for (unsigned i = 0; i < dm->cfg.n_chardev; i++)
		if (dm->cfg.chardev[i].monitor) {
			dm->mon[dm->n_mon].cd = &dm->cfg.chardev[i];
			if ((r = monitor_open(dm, &dm->mon[dm->n_mon++])))
				return r;
		}
	if ((r = watch_all(dm)))
		return r;
	n = 0;
	for (unsigned i = 0; i < dm->n_ch; i++)
		n += dm->ch[i].served;
	dm_log(dm, XTL_INFO, -1, "xenchan-dm %s standing in for QEMU: serving %u of %u "
	       "channels with %s", XENCHAN_VERSION, n, dm->n_ch, dm->proxy);
	for (unsigned i = 0; i < dm->n_ch; i++)
		if (dm->ch[i].served && spawn_proxy(dm, &dm->ch[i]) < 0) {
			begin_stopping(dm, EX_UNAVAILABLE);
			return 0;
		}
	check_started(dm);
	return 0;
}

static void finish(struct dm *dm)
{
	char path[XSP_MAX];

	for (unsigned m = 0; m < MAX_MONITORS; m++)
		monitor_close(&dm->mon[m]);
	/* Our nodes outlive a domain that died without libxl's destroy (which
	 * removes them first); a later domain may reuse the domid. */
	if (dm->xs && dm->cfg.have_domid && !xs_is_domain_introduced(dm->xs, dm->cfg.domid)) {
		path_dm(path, sizeof(path), dm->cfg.domid, NULL);
		xs_rm(dm->xs, XBT_NULL, path);
	}
	if (dm->xs)
		xs_close(dm->xs);
	if (dm->sfd >= 0)
		close(dm->sfd);
	free(dm->proxy_opts_buf);
}

int main(int argc, char **argv)
{
	static struct dm dm;
	int r;

	dm.sfd = -1;
	for (unsigned m = 0; m < MAX_MONITORS; m++) {
		dm.mon[m].fd = -1;
		for (unsigned i = 0; i < CLIENTS_PER_MON; i++)
			dm.mon[m].client[i].fd = -1;
	}
	if (!(dm.logger = xtl_createlogger_stdiostream(stderr, XTL_INFO, 0)))
		return EX_OSERR;
	if (argc == 2 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-version"))) {
		printf("xenchan-dm %s\n", XENCHAN_VERSION);
		return 0;
	}
	r = parse_argv(&dm, argc, argv);
	if (!r)
		r = setup(&dm);
	if (!r)
		r = run(&dm);
	else if (children_alive(&dm))
		run(&dm);
	finish(&dm);
	dm_log(&dm, r ? XTL_ERROR : XTL_INFO, -1, "exiting with status %d", r);
	xtl_logger_destroy((xentoollog_logger *)dm.logger);
	return r;
}
