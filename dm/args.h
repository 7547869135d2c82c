/* SPDX-License-Identifier: MIT */
/*
 * args.h - the argv libxl builds for QEMU, and what xenchan-dm makes of it
 * (args.c).  Nothing here logs, opens or writes anything: a program that
 * only decides whether xenchan-dm can stand in for QEMU calls these too.
 */
#ifndef XENCHAN_DM_ARGS_H
#define XENCHAN_DM_ARGS_H

#include <stdbool.h>
#include <sys/un.h>

#define MAX_CHARDEVS      40
#define MAX_CHANNELS      32
#define MAX_MONITORS      4
#define ID_MAX            64             /* a chardev id */
#define SUN_MAX           sizeof(((struct sockaddr_un *)0)->sun_path)

struct chardev {
	char id[ID_MAX];
	bool pty;                        /* else a listening Unix socket */
	char path[SUN_MAX];
	bool monitor;                    /* named by -mon ...,mode=control */
};

struct config {
	unsigned domid;
	bool have_domid, xen_attach, xenpv;
	const char *name;                /* -name, in argv */
	struct chardev chardev[MAX_CHARDEVS];
	unsigned n_chardev;
	char mon[MAX_MONITORS][ID_MAX];  /* -mon chardev= ids, checked later */
	unsigned n_mon;
};

/* Why xenchan-dm cannot stand in for QEMU here: an exit status (sysexits.h;
 * EX_CONFIG: only QEMU can serve the domain) and one line saying why. */
#define REFUSAL_MAX       768
struct refusal {
	int code;
	char why[REFUSAL_MAX];
};

/* Fill no; returns code. */
int refuse(struct refusal *no, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The device model's argv into c (which starts zeroed); 0, or the refusal's
 * code with no filled.  c->name points into argv. */
int parse_argv(struct config *c, int argc, char **argv, struct refusal *no);
/* libxl's command-line probe, exactly: the descriptor it passes, else -1. */
int probe_argv(int argc, char **argv);
/* A libxl-channelN id: N, its console device number. */
bool channel_devid(const char *id, unsigned *devid);

#endif
