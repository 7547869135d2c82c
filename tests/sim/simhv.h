/* SPDX-License-Identifier: MIT */
/*
 * simhv.h - the simulated hypervisor (tests/sim/README.md): its state under
 * $XENSIM_DIR, and the protocol between its daemon (simhvd.c) and the test
 * libxengnttab.so.1 and libxenevtchn.so.1.
 *
 * As on Xen, the privileged work is not done by the process that asks for
 * it: on Xen, gntdev and evtchn in dom0's kernel map grants and bind ports
 * behind an ioctl on a device opened at start; here the daemon opens grant
 * files, makes port sockets and rewrites records, and hands the process
 * descriptors (SCM_RIGHTS) on the connection it opened at start.  So a
 * process that has since dropped root and sandboxed itself (xenchan-proxy
 * after setup) maps and binds with no file-system access of its own.
 *
 * Every file may have been written by a hostile or dead peer, so every read
 * is bounded and parsed strictly; a bad record reads as "no such thing".
 */
#ifndef XENCHAN_SIMHV_H
#define XENCHAN_SIMHV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#define SIMHV_PAGE_SIZE 4096
/* Linux keeps grant refs 0-7 for the toolstack (GNTTAB_NR_RESERVED_ENTRIES). */
#define SIMHV_FIRST_GRANT_REF 8
/* 64 grant frames of 512 v1 entries: Xen's default max_grant_frames. */
#define SIMHV_MAX_GRANT_REF 32768
/* Port 0 is reserved by Xen; the 2-level ABI of a 64-bit guest has 4096. */
#define SIMHV_MAX_PORT 4096
/* Longest socket name we create or accept in a record: "D.PORT.16hex". */
#define SIMHV_SOCK_NAME_MAX 40

/* What a process is, for the simulated hypervisor. */
struct simhv {
	char dir[PATH_MAX];   /* $XENSIM_DIR */
	uint32_t domid;       /* $XENSIM_DOMID, default 0 */
};

/* Read XENSIM_DIR and XENSIM_DOMID.  On error prints why, naming lib, to
 * stderr (the only place a test's author will look) and sets errno. */
int simhv_init(struct simhv *hv, const char *lib);

/* snprintf into buf; -1 with ENAMETOOLONG if it does not fit. */
int simhv_path(char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* mkdir -p. */
int simhv_mkdirs(const char *path);
/* Replace path's content atomically (temporary file, then rename). */
int simhv_write_atomic(const char *path, const char *text);
/* Read at most len-1 bytes of a small file and NUL-terminate them. */
ssize_t simhv_read_small(const char *path, char *buf, size_t len);
/* Decimal, no sign, no junk, no overflow, at most max. */
int simhv_parse_u32(const char *s, uint32_t max, uint32_t *out);

/* ---- event-channel records: evtchn/D/PORT ---- */

enum simhv_port_state { SIMHV_PORT_UNBOUND, SIMHV_PORT_INTERDOMAIN };

struct simhv_port_rec {
	enum simhv_port_state state;
	uint32_t remote_dom;
	uint32_t remote_port;                 /* interdomain only */
	char sock[SIMHV_SOCK_NAME_MAX + 1];   /* owner's socket, in evtchn/sock/ */
};

int simhv_port_rec_path(const struct simhv *hv, uint32_t dom, uint32_t port,
			char *buf, size_t len);
/* 0 and *rec filled; -1 with ENOENT if absent, EINVAL if malformed. */
int simhv_port_rec_read(const struct simhv *hv, uint32_t dom, uint32_t port,
			struct simhv_port_rec *rec);
int simhv_port_rec_write(const struct simhv *hv, uint32_t dom, uint32_t port,
			 const struct simhv_port_rec *rec);
int simhv_sock_addr(const struct simhv *hv, const char *sock,
		    struct sockaddr_un *addr, socklen_t *addrlen);
/* Is a process still bound to this socket name?  A dead owner refuses. */
bool simhv_sock_alive(const struct simhv *hv, const char *sock);
/* The live socket of the peer of (dom, port), if the two records point at
 * each other and the peer's owner is alive; -1 otherwise (unbound, peer
 * closed or dead: Xen drops a notification on such a port). */
int simhv_port_peer_addr(const struct simhv *hv, uint32_t dom, uint32_t port,
			 struct sockaddr_un *addr, socklen_t *addrlen);
/* One event to a peer's socket, never blocking: a full queue means the peer
 * port is already pending, so EAGAIN counts as delivered. */
int simhv_send_event(int fd, const struct sockaddr_un *addr, socklen_t addrlen,
		     uint32_t port);

/* The daemon's socket, in $XENSIM_DIR.  Sockets and files the daemon makes
 * are open to every user: a process that dropped root still sends events to
 * a peer's socket by its path (as with SIMHV_FILE_MODE, mkdir's mode is also
 * masked by the umask; simhv_mkdirs chmods). */
#define SIMHV_SOCKET    "hv.sock"
#define SIMHV_DIR_MODE  0777   /* not sticky: records are replaced by rename */
#define SIMHV_FILE_MODE 0666

/* ---- the daemon's protocol: one request, one reply (SOCK_SEQPACKET) ---- */

enum simhv_op {
	SIMHV_OP_HELLO = 1,     /* a: the client's domain; first, once */
	SIMHV_OP_GRANT_MAP,     /* a: granting domain, b: ref, c: writable -> fd */
	SIMHV_OP_GRANT_SHARE,   /* a: grantee, b: writable -> fd, rep.a: ref */
	SIMHV_OP_GRANT_REVOKE,  /* a: grantee, b: ref */
	SIMHV_OP_EVENT_SEND,    /* a: our port: an event to its peer (unmap notify) */
	SIMHV_OP_BIND_UNBOUND,  /* a: remote domain -> fd, rep.a: port, rep.sock */
	SIMHV_OP_BIND,          /* a: remote domain, b: remote port -> fd, rep.a, .sock, .peer */
	SIMHV_OP_UNBIND,        /* a: our port */
	SIMHV_OP_PEER,          /* a: our port -> rep.peer, or ENOTCONN */
};

struct simhv_req {
	uint32_t op, a, b, c;
};

struct simhv_rep {
	int32_t err;                          /* 0, or an errno value */
	uint32_t a;
	char sock[SIMHV_SOCK_NAME_MAX + 1];   /* the new port's socket */
	char peer[SIMHV_SOCK_NAME_MAX + 1];   /* its peer's socket, or "" */
};

/* Connect to the daemon as hv->domid (CLOEXEC unless cloexec is false);
 * the connection, or -1 with errno and a message on stderr naming lib. */
int simhv_connect(const struct simhv *hv, const char *lib, bool cloexec);
/* One request and its reply; *fd (if fd is not NULL) gets the descriptor
 * the reply carries, or -1.  -1 with errno (the daemon's, or EIO when the
 * daemon is gone) on failure. */
int simhv_call(int conn, uint32_t op, uint32_t a, uint32_t b, uint32_t c,
	       struct simhv_rep *rep, int *fd);

#endif
