/* SPDX-License-Identifier: MIT */
/*
 * stats.h - a proxy's live counters, readable from outside while it runs.
 *
 * One small file per proxy, RUNDIR/counters/DOMID-DEVID (RUNDIR:
 * $XENCHAN_RUNTIME_DIR, else /run/xenchan-proxy), of one fixed layout,
 * struct stats_page.  The proxy makes it before its sandbox, maps it once
 * and updates it with plain stores (each field whole: relaxed atomics, no
 * lock, no system call); it removes the file when it stops cleanly.  A
 * reader maps it read-only and loads each field whole; the fields are each
 * exact, not a snapshot of one instant together.  The header names the
 * process (pid and start time, as the backend's NODE_SERVER_* record does):
 * a file whose process is gone is a crashed proxy's, stale.
 *
 * Depends on nothing of either program: the proxy writes it, --list
 * (hotplug.c) reads it.
 */
#ifndef XENCHAN_STATS_H
#define XENCHAN_STATS_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define STATS_MAGIC       "xenchanC"   /* 8 bytes, no NUL */
#define STATS_VERSION     1
#define STATS_RUNDIR      "/run/xenchan-proxy"
#define STATS_RUNDIR_ENV  "XENCHAN_RUNTIME_DIR"
#define STATS_SUBDIR      "counters"

/* Where the channel stands (the state field). */
enum stats_state {
	STATS_WAITING,     /* for the guest (InitWait, or after it closed) */
	STATS_CONNECTED,   /* relaying */
	STATS_CLOSING,     /* the frontend said Closing */
	STATS_REFUSED,     /* the guest broke the ring protocol: not served */
	STATS_ENDING,      /* the channel or the domain is gone */
	STATS_STATES
};

/* The file, 384 bytes, host byte order.  The header is written before the
 * file is renamed into place and never changes; the rest, after it. */
struct stats_page {
	char magic[8];                 /* STATS_MAGIC */
	uint32_t version;              /* STATS_VERSION */
	uint32_t size;                 /* sizeof(struct stats_page) */
	uint64_t pid;                  /* the proxy writing it */
	uint64_t pid_start;            /* its start, clock ticks after boot (0: unknown) */
	uint64_t started;              /* its start, seconds since the Epoch */
	uint32_t domid, devid, backend_domid;
	uint32_t state;                /* enum stats_state */
	uint32_t client;               /* 1: a client is connected */
	uint32_t discarding;           /* 1: guest bytes are being discarded now */
	uint64_t from_guest;           /* bytes taken from the guest (out[]) since start,
					* discarded ones included */
	uint64_t to_guest;             /* bytes put into the guest's in[] since start */
	uint64_t held;                 /* bytes held for the client now */
	uint64_t discarded;            /* guest bytes discarded since start */
	uint64_t discard_episodes;     /* runs of discards, each ended by a byte kept or
					* delivered */
	uint64_t client_connects;      /* clients accepted or connected */
	uint64_t guest_reconnects;     /* times the guest connected after the first */
	uint64_t refusals;             /* rings not served: bad offers, failed maps and
					* binds, protocol breaks, states ignored */
	char endpoint[256];            /* header: what the proxy serves on (a socket path,
					* a pty, "stdio"...), NUL-terminated */
};

static inline void stats_put(uint64_t *field, uint64_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELAXED);
}

static inline void stats_put32(uint32_t *field, uint32_t v)
{
	__atomic_store_n(field, v, __ATOMIC_RELAXED);
}

/* The counters file a proxy made. */
struct stats_file {
	struct stats_page *page;       /* mapped, or NULL */
	int dirfd;                     /* the counters directory, kept for the removal
					* (unlinkat: the sandbox admits no other), or -1 */
	char name[32];                 /* the file's name in it */
};

/* RUNDIR, as above. */
const char *stats_rundir(void);
/* The file of (domid, devid) in RUNDIR's counters directory, into buf. */
bool stats_path(char *buf, size_t cap, unsigned domid, unsigned devid);
/* Before stats_create or stats_remove. */
void stats_init(struct stats_file *f);
/* Make the file for head's channel with head's header (magic, version and
 * size are filled in) and map it.  The counters directory is made if
 * absent (mode 0755, and given to uid/gid unless they are -1, so that a
 * proxy running as that user can remove its file); one that exists must
 * be a directory owned by root, by us or by uid.  An older file of the
 * channel (a crashed proxy's) is replaced.  0, or -1 with err set. */
int stats_create(struct stats_file *f, const struct stats_page *head, uid_t uid, gid_t gid,
		 char *err, size_t errlen);
/* Remove the file and unmap it (no-op if none was made). */
void stats_remove(struct stats_file *f);
/* The counters of (domid, devid), each field loaded whole, into *out.
 * false if there is no such file or it is not one of ours. */
bool stats_read(unsigned domid, unsigned devid, struct stats_page *out);
/* "waiting", "connected", "closing", "refused", "ending". */
const char *stats_state_name(uint32_t state);

#endif
