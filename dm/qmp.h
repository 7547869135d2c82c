/* SPDX-License-Identifier: MIT */
/*
 * qmp.h - QMP messages (qmp.c): one client's session, the bytes it sends
 * parsed, its replies built into a buffer the caller owns, and a verdict on
 * what to do next.  It calls nothing that moves bytes: the monitor
 * (monitor.c) owns the sockets and calls this, never the other way.
 */
#ifndef XENCHAN_DM_QMP_H
#define XENCHAN_DM_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <yajl/yajl_parse.h>

/* QMP bounds: one message, a client's unread replies, nesting, the id. */
#define QMP_IN_MAX        65536
#define QMP_OUT_MAX       65536
#define QMP_DEPTH_MAX     32
#define QMP_NAME_MAX      64
#define QMP_ID_TOKENS     64
#define QMP_ID_TEXT       1024

struct dm;

/* Replies not yet sent: qmp.c appends (never past QMP_OUT_MAX), the
 * monitor sends from the front and frees. */
struct qmp_out {
	char *buf;
	size_t len, cap;
};

/* What a call came to, beside the replies it appended. */
struct qmp_verdict {
	bool hang_up;                    /* input we will not read on from: its
					  * error is the last reply, then hang up */
	bool drop;                       /* hang up now, the replies discarded: */
	bool out_full;                   /* the client left QMP_OUT_MAX unread */
	bool quit;                       /* quit was answered */
	unsigned answered;               /* commands answered */
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

/* One client's session.  It must not move while it lives (the parser
 * holds its address). */
struct qmp_session {
	yajl_handle y;
	bool negotiated;
	size_t in_bytes;                 /* of the message being parsed */
	struct qmp_msg msg;
	/* during a call only: what the replies describe, where they go, and
	 * the verdict */
	const struct dm *dm;
	struct qmp_out *out;
	struct qmp_verdict *v;
};

/* A new session in s (zeroed first); false if out of memory. */
bool qmp_begin(struct qmp_session *s);
void qmp_end(struct qmp_session *s);
/* The greeting QMP opens with. */
struct qmp_verdict qmp_greet(struct qmp_session *s, const struct dm *dm, struct qmp_out *out);
/* The client's next bytes: every command they complete is answered. */
struct qmp_verdict qmp_feed(struct qmp_session *s, const struct dm *dm, struct qmp_out *out,
			    const void *buf, size_t n);

#endif
