/* SPDX-License-Identifier: MIT */
/*
 * nodes.h - the xenstore facts both programs rely on, each written once:
 * the limits on domids and device ids, the formats of a channel's paths
 * (docs/protocol.md, "Names"), and the nodes we add to a backend directory.
 * Only the xenstore modules (store.c, hotplug.c, dm/store.c) build paths,
 * and only from these.
 */
#ifndef XENCHAN_NODES_H
#define XENCHAN_NODES_H

#define DOMID_MAX          0x7fefu   /* DOMID_FIRST_RESERVED - 1 */
#define CONSOLE_DEVID_MAX  65535u    /* xenbus device ids are 16-bit in libxl */
#define BACKEND_DOMID_DOM0 0u        /* where libxl's device model runs */

/* Every domain's directory, /local/domain/D, and its console devices (D). */
#define PATH_DOMAINS       "/local/domain"
#define PATH_DOMAIN        "/local/domain/%u"
#define PATH_CONSOLES      "/local/domain/%u/device/console"
/* F: the frontend of channel N of domain D (D, N). */
#define PATH_FRONTEND      "/local/domain/%u/device/console/%u"
/* K: its backend in domain B (B, D, N), and B's console backends (B). */
#define PATH_BACKEND       "/local/domain/%u/backend/console/%u/%u"
#define PATH_BACKENDS      "/local/domain/%u/backend/console"
/* B's backends of one kind (vbd, qdisk, vfb...) for domain D (B, KIND, D). */
#define PATH_BACKEND_KIND  "/local/domain/%u/backend/%s/%u"
/* libxl's own copy of a device's backend keys (D, N), below libxl's
 * directory for domain D (D). */
#define PATH_LIBXL_DEVICE  "/libxl/%u/device/console/%u"
#define PATH_LIBXL_DOMAIN  "/libxl/%u"
/* The device model's directory for domain D, in the dm's domain (B, D). */
#define PATH_DEVICE_MODEL  "/local/domain/%u/device-model/%u"

/* What a proxy writes in K: who serves it, for --list, --remove and xenchan-dm. */
#define NODE_SERVER_PID    "xenchan-pid"
#define NODE_SERVER_START  "xenchan-pid-start"
/* F/type of a channel xenchan-proxy created: neither QEMU ("ioemu") nor
 * xenconsoled ("xenconsoled") serves it. */
#define TYPE_HOTPLUG       "xenchan"

#endif
