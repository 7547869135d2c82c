/* SPDX-License-Identifier: MIT */
/*
 * dispatch.c - xenchan-dm-dispatch, the program the xenchan-dm-default
 * package puts at libxl's default device-model path (QEMU diverted to
 * PATH.distrib beside it).  For each device model libxl starts there it
 * decides, from libxl's argv and the domain's xenstore nodes, which program
 * serves the domain, and executes it in this same process (libxl signals
 * the pid it started):
 *   xenchan-dm   a PV or PVH guest that needs nothing but its channels:
 *                xenchan-dm's own rules, args.c's parse_argv and store.c's
 *                check_domain, called here, not copied;
 *   QEMU         every other guest, with the argv, environment and
 *                descriptors it was given, argv[0] included.
 * libxl 4.20's command-line probe (no domain) goes to QEMU when QEMU is
 * installed (libxl needs its answer for the guests QEMU serves), else to
 * xenchan-dm.  Whatever cannot be known (xenstore unreachable or unreadable)
 * goes to QEMU when installed: QEMU serves every guest.
 *
 * Before it decides it creates nothing: no socket of its own but the
 * xenstore connection it closes before the exec, no node, no child, no
 * change to the signal mask or dispositions, the umask or the directory.
 * It writes one line to stderr (libxl's qemu-dm-NAME.log): the choice and
 * why.  Calls run one way: dispatch -> args, store.
 */
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>
#include <xenstore.h>

#include "args.h"
#include "store.h"

/* xenchan-dm, and where dpkg-divert put QEMU when /proc cannot say where
 * this program is (dm.mk sets both; the tests' build names its own dm). */
#ifndef DISPATCH_DM
#define DISPATCH_DM       "/usr/bin/xenchan-dm"
#endif
#ifndef DISPATCH_QEMU
#define DISPATCH_QEMU     "/usr/libexec/xen-qemu-system-i386.distrib"
#endif
#define DIVERTED          ".distrib"      /* the xenchan-dm-default package's divert */
#define DELETED           " (deleted)"

struct choice {
	const char *program;             /* what to execute */
	bool qemu;
	char why[REFUSAL_MAX + 64];
};

/* QEMU's diverted file: this program's own path plus DIVERTED. */
static void qemu_path(char *buf, size_t cap)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		self[n] = '\0';
		if ((size_t)n < strlen(DELETED) || strcmp(self + n - strlen(DELETED), DELETED))
			if ((size_t)snprintf(buf, cap, "%s" DIVERTED, self) < cap)
				return;
	}
	snprintf(buf, cap, "%s", DISPATCH_QEMU);
}

/* QEMU when the rules say so and it is installed; xenchan-dm otherwise. */
static void choose(struct choice *c, const char *qemu, bool to_qemu, const char *why)
{
	bool have_qemu = to_qemu && access(qemu, X_OK) == 0;

	c->qemu = have_qemu;
	c->program = have_qemu ? qemu : DISPATCH_DM;
	if (to_qemu && !have_qemu)
		snprintf(c->why, sizeof(c->why), "no QEMU at %s, which would get it: %s", qemu, why);
	else
		snprintf(c->why, sizeof(c->why), "%s", why);
}

static void decide(struct choice *c, int argc, char **argv, const char *qemu,
		   struct config *cfg)
{
	struct refusal no;
	struct xs_handle *xs;
	unsigned channels = 0;
	int r;

	if (probe_argv(argc, argv) >= 0) {
		choose(c, qemu, true, "libxl needs QEMU's answer for the guests QEMU serves");
		return;
	}
	if (parse_argv(cfg, argc, argv, &no)) {
		choose(c, qemu, true, no.why);
		return;
	}
	if (!(xs = xs_open(0))) {
		snprintf(no.why, sizeof(no.why), "cannot open xenstore (%s): the domain's "
			 "backends are unknown", strerror(errno));
		choose(c, qemu, true, no.why);
		return;
	}
	r = check_domain(xs, cfg->domid, &no);
	xs_close(xs);
	if (r) {
		choose(c, qemu, true, no.why);
		return;
	}
	for (unsigned i = 0; i < cfg->n_chardev; i++)
		channels += !cfg->chardev[i].monitor;
	snprintf(no.why, sizeof(no.why), "%u channel%s and no device only QEMU serves",
		 channels, channels == 1 ? "" : "s");
	choose(c, qemu, false, no.why);
}

int main(int argc, char **argv)
{
	static struct config cfg;
	static struct choice c;
	char qemu[PATH_MAX + sizeof(DIVERTED)], who[32] = "";

	qemu_path(qemu, sizeof(qemu));
	decide(&c, argc, argv, qemu, &cfg);
	if (cfg.have_domid)
		snprintf(who, sizeof(who), "domain %u: ", cfg.domid);
	else if (probe_argv(argc, argv) >= 0)
		snprintf(who, sizeof(who), "libxl's command-line probe: ");
	if (c.qemu)
		fprintf(stderr, "xenchan-dm-dispatch: %sQEMU (%s): %s\n", who, c.program, c.why);
	else
		fprintf(stderr, "xenchan-dm-dispatch: %sxenchan-dm: %s\n", who, c.why);
	/* The same argv, argv[0] as libxl gave it, and the same environment. */
	execv(c.program, argv);
	fprintf(stderr, "xenchan-dm-dispatch: cannot execute %s: %s\n", c.program, strerror(errno));
	return errno == ENOENT ? 127 : 126;
}
