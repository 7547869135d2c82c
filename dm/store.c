/* SPDX-License-Identifier: MIT */
/*
 * store.c - xenchan-dm and xenstore: the domain's and its channels' nodes,
 * the watches, and the device-model state libxl waits for.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <xenstore.h>

#include "args.h"
#include "dm.h"
#include "store.h"

/* ---- xenstore ------------------------------------------------------------------ */
/* Every path xenchan-dm touches is built here, from nodes.h's formats. */

static void path_fe(char *p, size_t n, unsigned domid, unsigned devid)
{
	snprintf(p, n, PATH_FRONTEND, domid, devid);
}

static void path_be(char *p, size_t n, unsigned domid, unsigned devid)
{
	snprintf(p, n, PATH_BACKEND, BACKEND_DOMID_DOM0, domid, devid);
}

/* libxl's DEVICE_MODEL_XS_PATH: where QEMU says "running" and lists the
 * backends it serves. */
static void path_dm(char *p, size_t n, unsigned domid, const char *leaf)
{
	snprintf(p, n, PATH_DEVICE_MODEL "%s%s", BACKEND_DOMID_DOM0, domid,
		 leaf ? "/" : "", leaf ? leaf : "");
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

int check_domain(struct xs_handle *xs, unsigned domid, struct refusal *no)
{
	if (!xs_is_domain_introduced(xs, domid))
		return refuse(no, EX_NOINPUT, "no such domain (not introduced to xenstore)");
	for (size_t i = 0; i < sizeof(qemu_backends) / sizeof(qemu_backends[0]); i++) {
		char path[XSP_MAX], **dir;
		unsigned n = 0;
		int err;

		snprintf(path, sizeof(path), PATH_BACKEND_KIND, BACKEND_DOMID_DOM0,
			 qemu_backends[i].kind, domid);
		dir = xs_directory(xs, XBT_NULL, path, &n);
		err = errno;
		free(dir);
		if (dir && n)
			return refuse(no, EX_CONFIG, "%s: %s", path, qemu_backends[i].what);
		/* Only a node that is not there says "no such backend". */
		if (!dir && err != ENOENT)
			return refuse(no, EX_UNAVAILABLE, "%s: cannot read it (%s)", path,
				      strerror(err));
	}
	return 0;
}

bool channel_present(const struct dm *dm, const struct channel *ch)
{
	char v[16];

	return strict_leaf(dm->xs, ch->be, "frontend-id", v, sizeof(v));
}

bool channel_tty(const struct dm *dm, const struct channel *ch, char *buf, size_t cap)
{
	return strict_leaf(dm->xs, ch->fe, "tty", buf, cap);
}

/* Map each libxl-channelN to console device N.  libxl numbers both the same
 * way (the channel's devid).  xl before 4.18.5, 4.19.2 and 4.20.1 numbers
 * channels from 0, which libxl refuses as a console: channel 0 then has a
 * chardev but no device.  Later xl numbers them from 1. */
int find_channels(struct dm *dm)
{
	const struct config *c = &dm->cfg;

	for (unsigned i = 0; i < c->n_chardev; i++) {
		struct channel *ch = &dm->ch[dm->n_ch];
		char raw[XSP_MAX], bid[16];

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
			dm_log(dm, XTL_NOTICE, -1, "%s: no channel device 0 (xl before 4.18.5, "
			       "4.19.2 and 4.20.1 drops the first channel= entry): not served",
			       ch->cd->id);
			continue;
		}
		/* The backend directory is the toolstack's (the frontend is the
		 * guest's): it says whether the channel is this domain's to serve. */
		/* The frontend's nodes are the guest's to write: they reach a
		 * log line only as printable ASCII, as in the proxy's. */
		if (!channel_present(dm, ch)) {
			if (strict_leaf(dm->xs, ch->fe, "backend-id", raw, sizeof(bid))) {
				strict_printable(bid, sizeof(bid), raw);
				dm_log(dm, XTL_NOTICE, -1, "%s: its backend is domain %s, not this "
				       "one: not served", ch->cd->id, bid);
				continue;
			}
			return dm_refuse(dm, EX_NOINPUT, "%s: no console device %u (%s)",
					 ch->cd->id, ch->devid, ch->be);
		}
		if (strict_leaf(dm->xs, ch->fe, "name", raw, sizeof(raw)))
			strict_printable(ch->name, sizeof(ch->name), raw);
		else
			snprintf(ch->name, sizeof(ch->name), "%u", ch->devid);
		ch->served = true;
	}
	return 0;
}

/* Watches: the domain's death, and each proxy's pid in its backend
 * directory, written once its endpoint is open and the backend set up. */
int watch_all(struct dm *dm)
{
	char path[XSP_MAX];

	if (!xs_watch(dm->xs, "@releaseDomain", "release"))
		return dm_log(dm, XTL_ERROR, errno, "xs_watch @releaseDomain"), EX_UNAVAILABLE;
	for (unsigned i = 0; i < dm->n_ch; i++) {
		if (!dm->ch[i].served)
			continue;
		snprintf(path, sizeof(path), "%s/" NODE_SERVER_PID, dm->ch[i].be);
		if (!xs_watch(dm->xs, path, "ready"))
			return dm_log(dm, XTL_ERROR, errno, "xs_watch %s", path), EX_UNAVAILABLE;
	}
	return 0;
}

bool proxy_ready(const struct dm *dm, const struct channel *ch)
{
	char v[16];
	unsigned long pid;

	return ch->pid && strict_leaf(dm->xs, ch->be, NODE_SERVER_PID, v, sizeof(v))
		&& strict_canonical(v, INT_MAX, &pid) && (pid_t)pid == ch->pid;
}

/* What libxl waits for before it unpauses the guest. */
int write_running(struct dm *dm)
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

void remove_dm_dir(struct dm *dm)
{
	char path[XSP_MAX];

	path_dm(path, sizeof(path), dm->cfg.domid, NULL);
	xs_rm(dm->xs, XBT_NULL, path);
}
