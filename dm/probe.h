/* SPDX-License-Identifier: MIT */
/* probe.h - libxl's command-line probe (probe.c), Xen 4.20 and later. */
#ifndef XENCHAN_DM_PROBE_H
#define XENCHAN_DM_PROBE_H

struct dm;

/* Serve libxl's probe on the listening descriptor fd, with dm->sfd (SIGHUP,
 * SIGTERM, SIGINT) open; its exit status. */
int probe_run(struct dm *dm, int fd);

#endif
