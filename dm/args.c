/* SPDX-License-Identifier: MIT */
/*
 * args.c - the argv libxl builds for QEMU: what we can stand in for,
 * and a refusal, by name, of what only QEMU can do.
 */
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>

#include "../nodes.h"
#include "../strict.h"
#include "args.h"

int refuse(struct refusal *no, int code, const char *fmt, ...)
{
	va_list ap;

	no->code = code;
	va_start(ap, fmt);
	vsnprintf(no->why, sizeof(no->why), fmt, ap);
	va_end(ap);
	return code;
}

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

/* A libxl-channelN id: N is the channel's console device number. */
bool channel_devid(const char *id, unsigned *devid)
{
	unsigned long n;

	if (strncmp(id, "libxl-channel", 13) || !strict_canonical(id + 13, CONSOLE_DEVID_MAX, &n))
		return false;
	*devid = (unsigned)n;
	return true;
}


static int parse_chardev(struct config *c, struct refusal *no, const char *spec)
{
	char buf[512], *part[16];
	int n = opts_split(spec, buf, sizeof(buf), part, 16);
	struct chardev *cd;
	bool have_path = false;
	int server = 0, wait = 1;

	if (n < 0 || c->n_chardev == MAX_CHARDEVS)
		return refuse(no, EX_USAGE, "-chardev %s: too long or too many", spec);
	cd = &c->chardev[c->n_chardev];
	memset(cd, 0, sizeof(*cd));
	if (strcmp(part[0], "pty") && strcmp(part[0], "socket"))
		return refuse(no, EX_CONFIG, "-chardev %s: a %s character device", spec, part[0]);
	cd->pty = !strcmp(part[0], "pty");
	for (int i = 1; i < n; i++) {
		char *k = part[i], *v = strchr(k, '=');

		if (v)
			*v++ = '\0';
		if (!strcmp(k, "id") && v && strlen(v) < sizeof(cd->id))
			strcpy(cd->id, v);
		else if (!cd->pty && !strcmp(k, "path") && v && strlen(v) >= sizeof(cd->path))
			return refuse(no, EX_USAGE, "-chardev %s: path too long for a Unix socket", spec);
		else if (!cd->pty && !strcmp(k, "path") && v && *v)
			have_path = (strcpy(cd->path, v), true);
		else if (!cd->pty && !strcmp(k, "server") && (server = opt_bool(v)) >= 0)
			;
		else if (!cd->pty && !strcmp(k, "wait") && (wait = opt_bool(v)) >= 0)
			;
		else if (!cd->pty && !strcmp(k, "fd"))
			return refuse(no, EX_CONFIG, "-chardev %s: a QMP socket passed as a file "
				      "descriptor (dm_restrict=1)", spec);
		else
			return refuse(no, EX_USAGE, "-chardev %s: option %s%s%s is not one libxl "
				      "gives a channel or monitor", spec, k, v ? "=" : "", v ? v : "");
	}
	if (!cd->id[0] || (!cd->pty && (!have_path || server != 1 || wait != 0)))
		return refuse(no, EX_USAGE, "-chardev %s: expected pty,id=ID or "
			      "socket,id=ID,path=PATH,server=on,wait=off", spec);
	for (unsigned i = 0; i < c->n_chardev; i++)
		if (!strcmp(c->chardev[i].id, cd->id))
			return refuse(no, EX_USAGE, "-chardev %s: id %s given twice", spec, cd->id);
	c->n_chardev++;
	return 0;
}

static int parse_mon(struct config *c, struct refusal *no, const char *spec)
{
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
			return refuse(no, EX_USAGE, "-mon %s: %s is not supported", spec, part[i]);
	}
	if (!id || !control || strlen(id) >= ID_MAX || c->n_mon == MAX_MONITORS)
		return refuse(no, EX_USAGE, "-mon %s: expected chardev=ID,mode=control", spec);
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

static int parse_option(struct config *c, struct refusal *no, const struct dm_option *o,
			const char *arg)
{
	unsigned long v;

	switch (o->kind) {
	case O_DOMID:
		if (c->have_domid || !strict_canonical(arg, DOMID_MAX, &v) || v == 0)
			return refuse(no, EX_USAGE, "-xen-domid %s: not a guest's domid, or given twice", arg);
		c->domid = (unsigned)v;
		c->have_domid = true;
		return 0;
	case O_CHARDEV: return parse_chardev(c, no, arg);
	case O_MON: return parse_mon(c, no, arg);
	case O_NAME: c->name = arg; return 0;
	case O_ATTACH: c->xen_attach = true; return 0;
	case O_IGNORE: return 0;
	case O_MEM:
		return strict_canonical(arg, ULONG_MAX, &v) ? 0
			: refuse(no, EX_USAGE, "-m %s: not a size in MiB", arg);
	case O_NONE_ONLY:
		return !strcmp(arg, "none") ? 0
			: refuse(no, EX_CONFIG, "%s %s: %s", o->name, arg, o->needs);
	case O_MACHINE:
		if (strcmp(arg, "xenpv"))
			return refuse(no, EX_CONFIG, "%s %s: an emulated machine (an HVM guest)",
				      o->name, arg);
		c->xenpv = true;
		return 0;
	case O_REFUSE:
		return refuse(no, EX_CONFIG, "%s%s%s: %s", o->name, arg ? " " : "", arg ? arg : "",
			      o->needs);
	}
	return EX_SOFTWARE;
}

/* The chardevs make sense together: libxl-cmd is a QMP monitor, every
 * monitor is a socket, and everything else is a libxl-channelN. */
static int check_chardevs(struct config *c, struct refusal *no)
{
	unsigned devid, n_channels = 0;

	for (unsigned m = 0; m < c->n_mon; m++) {
		unsigned i;

		for (i = 0; i < c->n_chardev && strcmp(c->chardev[i].id, c->mon[m]); i++)
			;
		if (i == c->n_chardev || c->chardev[i].pty || c->chardev[i].monitor)
			return refuse(no, EX_USAGE, "-mon chardev=%s: no such socket -chardev, "
				      "or named twice", c->mon[m]);
		c->chardev[i].monitor = true;
	}
	for (unsigned i = 0; i < c->n_chardev; i++) {
		const struct chardev *cd = &c->chardev[i];

		if (!strcmp(cd->id, "libxl-cmd") && !cd->monitor)
			return refuse(no, EX_USAGE, "-chardev libxl-cmd is not a QMP monitor (-mon)");
		if (cd->monitor)
			continue;
		if (!channel_devid(cd->id, &devid))
			return refuse(no, EX_USAGE, "-chardev id=%s: neither a QMP monitor nor a "
				      "libxl-channelN", cd->id);
		if (++n_channels > MAX_CHANNELS)
			return refuse(no, EX_USAGE, "more than %d channels", MAX_CHANNELS);
	}
	return 0;
}

/* libxl 4.20 and later, before it starts the device model proper, runs the
 * same binary as a probe (libxl_dm.c, libxl__spawn_local_dm, Xen commit
 * 1817e4c3c5), with exactly this argv, N being a listening socket it bound
 * for QMP; it asks query-command-line-options and quits.  Nothing looser is
 * taken for it: any other argv goes to parse_argv, which refuses -S. */
static const char *const probe_words[] = {
	"-S", "-no-user-config", "-nodefaults", "-nographic", "-machine", "none,accel=xen",
	"-chardev", NULL /* socket,id=libxl-cmd,fd=N,server=on,wait=off */,
	"-mon", "chardev=libxl-cmd,mode=control",
};
#define PROBE_FD_WORD     7                 /* the NULL above */
#define PROBE_FD_BEFORE   "socket,id=libxl-cmd,fd="
#define PROBE_FD_AFTER    ",server=on,wait=off"

int probe_argv(int argc, char **argv)
{
	const size_t n = sizeof(probe_words) / sizeof(probe_words[0]);
	char digits[16];
	const char *spec, *end;
	unsigned long fd;

	if (argc < 1 || (size_t)argc - 1 != n)
		return -1;
	for (size_t i = 0; i < n; i++)
		if (probe_words[i] && strcmp(argv[i + 1], probe_words[i]))
			return -1;
	spec = argv[1 + PROBE_FD_WORD];
	if (strncmp(spec, PROBE_FD_BEFORE, strlen(PROBE_FD_BEFORE)))
		return -1;
	spec += strlen(PROBE_FD_BEFORE);
	end = spec + strspn(spec, "0123456789");
	if (strcmp(end, PROBE_FD_AFTER) || (size_t)(end - spec) >= sizeof(digits))
		return -1;
	memcpy(digits, spec, (size_t)(end - spec));
	digits[end - spec] = '\0';
	if (!strict_canonical(digits, INT_MAX, &fd))
		return -1;
	return (int)fd;
}

int parse_argv(struct config *c, int argc, char **argv, struct refusal *no)
{
	int r;

	for (int i = 1; i < argc; i++) {
		const struct dm_option *o = NULL;

		for (size_t k = 0; k < sizeof(dm_options) / sizeof(dm_options[0]); k++)
			if (!strcmp(argv[i], dm_options[k].name))
				o = &dm_options[k];
		if (!o)
			return refuse(no, EX_USAGE, "%s %s: not an argument libxl gives the device "
				      "model of a PV or PVH guest (see xenchan-dm(8))",
				      argv[i][0] == '-' ? "unknown option" : "unexpected operand", argv[i]);
		if (o->has_arg && i + 1 == argc)
			return refuse(no, EX_USAGE, "%s needs an argument", o->name);
		if ((r = parse_option(c, no, o, o->has_arg ? argv[++i] : NULL)))
			return r;
	}
	if (!c->have_domid)
		return refuse(no, EX_USAGE, "no -xen-domid: run by libxl as a device model "
			      "(see xenchan-dm(8))");
	if (!c->xenpv || !c->xen_attach)
		return refuse(no, EX_CONFIG, "no -machine xenpv and -xen-attach: an HVM guest");
	return check_chardevs(c, no);
}
