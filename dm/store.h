/* SPDX-License-Identifier: MIT */
/*
 * store.h - xenchan-dm and xenstore (store.c): the domain's and its
 * channels' nodes, the watches, and the device-model state libxl waits for.
 * Every path the dm touches is built there, from nodes.h's formats.
 */
#ifndef XENCHAN_DM_STORE_H
#define XENCHAN_DM_STORE_H

#include <stdbool.h>
#include <stddef.h>

struct xs_handle;
struct refusal;
struct dm;
struct channel;

/* Can xenchan-dm stand in for QEMU for domain domid, as xenstore describes
 * it?  0, or the refusal's code with no filled.  It only reads. */
int check_domain(struct xs_handle *xs, unsigned domid, struct refusal *no);
/* The channels of dm->cfg's chardevs, and which of them are ours to serve. */
int find_channels(struct dm *dm);
/* Is the channel's backend still there (the domain and the device live)? */
bool channel_present(const struct dm *dm, const struct channel *ch);
/* The pty its proxy wrote in the frontend's tty node. */
bool channel_tty(const struct dm *dm, const struct channel *ch, char *buf, size_t cap);
int watch_all(struct dm *dm);
/* Has the channel's proxy written its pid (NODE_SERVER_PID) in the backend? */
bool proxy_ready(const struct dm *dm, const struct channel *ch);
int write_running(struct dm *dm);
/* Remove the device model's directory (libxl's destroy does it first). */
void remove_dm_dir(struct dm *dm);

#endif
