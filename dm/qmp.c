/* SPDX-License-Identifier: MIT */
/*
 * qmp.c - QMP messages: commands read with yajl's event parser, and the
 * replies libxl and libxenstat expect, written with yajl's generator into
 * the buffer the caller gives.  The sockets they travel on are monitor.c's;
 * what a command asks of the rest (quit) is a verdict the caller acts on.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>

#include "dm.h"
#include "qmp.h"
#include "store.h"

/* The QEMU whose QMP dialect we answer in (Debian 12's); libxl picks some
 * command arguments by version, and "package" says who we are. */
#define QMP_QEMU_MAJOR    7
#define QMP_QEMU_MINOR    2
#define QMP_QEMU_MICRO    0

/* ---- QMP: replies ----------------------------------------------------------------- */
/* Framing as libxl reads it: one JSON object per message, then "\r\n". */

static void gen_str(yajl_gen g, const char *s)
{
	/* yajl checks before it writes: a refused string leaves g usable. */
	if (yajl_gen_string(g, (const unsigned char *)s, strlen(s)) == yajl_gen_invalid_string)
		yajl_gen_string(g, (const unsigned char *)"(not UTF-8)", 11);
}

static void gen_pair(yajl_gen g, const char *k, const char *v)
{
	gen_str(g, k);
	gen_str(g, v);
}

static yajl_gen reply_open(void)
{
	yajl_gen g = yajl_gen_alloc(NULL);

	if (g) {
		yajl_gen_config(g, yajl_gen_validate_utf8, 1);
		yajl_gen_map_open(g);
	}
	return g;
}

/* The command's id, as it came. */
static void gen_id(yajl_gen g, const struct qmp_msg *m)
{
	gen_str(g, "id");
	for (unsigned i = 0; i < m->n_id; i++) {
		const unsigned char *s = (const unsigned char *)m->id_text + m->id[i].off;

		switch (m->id[i].t) {
		case T_NULL: yajl_gen_null(g); break;
		case T_TRUE: yajl_gen_bool(g, 1); break;
		case T_FALSE: yajl_gen_bool(g, 0); break;
		case T_NUMBER: yajl_gen_number(g, (const char *)s, m->id[i].len); break;
		case T_STRING:
		case T_KEY: yajl_gen_string(g, s, m->id[i].len); break;
		case T_MAP_OPEN: yajl_gen_map_open(g); break;
		case T_MAP_CLOSE: yajl_gen_map_close(g); break;
		case T_ARRAY_OPEN: yajl_gen_array_open(g); break;
		case T_ARRAY_CLOSE: yajl_gen_array_close(g); break;
		}
	}
}

/* Queue reply bytes; past QMP_OUT_MAX unread, or out of memory, the
 * client is to be dropped, and nothing more is queued for it. */
static void out_put(struct qmp_session *s, const void *p, size_t len)
{
	struct qmp_out *out = s->out;
	char *grown;
	size_t cap;

	if (s->v->drop)
		return;
	if (out->len + len > QMP_OUT_MAX) {
		s->v->drop = s->v->out_full = true;
		return;
	}
	if (out->len + len > out->cap) {
		for (cap = out->cap ? out->cap : 4096; cap < out->len + len; cap *= 2)
			;
		if (!(grown = realloc(out->buf, cap))) {
			s->v->drop = true;
			return;
		}
		out->buf = grown;
		out->cap = cap;
	}
	memcpy(out->buf + out->len, p, len);
	out->len += len;
}

static void reply_send(struct qmp_session *s, yajl_gen g, const struct qmp_msg *m)
{
	const unsigned char *buf;
	size_t len;

	if (m && m->have_id && !m->id_too_big)
		gen_id(g, m);
	yajl_gen_map_close(g);
	if (yajl_gen_get_buf(g, &buf, &len) == yajl_gen_status_ok) {
		out_put(s, buf, len);
		out_put(s, "\r\n", 2);
	} else {
		s->v->drop = true;
	}
	yajl_gen_free(g);
}

static void qmp_error(struct qmp_session *s, const struct qmp_msg *m, const char *class,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void qmp_error(struct qmp_session *s, const struct qmp_msg *m, const char *class,
		      const char *fmt, ...)
{
	yajl_gen g = reply_open();
	char desc[256];
	va_list ap;

	if (!g) {
		s->v->drop = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	gen_str(g, "error");
	yajl_gen_map_open(g);
	gen_pair(g, "class", class);
	gen_pair(g, "desc", desc);
	yajl_gen_map_close(g);
	reply_send(s, g, m);
}

/* Input we will not read on from: say why, then hang up (QEMU resyncs
 * instead; no client of ours sends such input).  0: the parser stops. */
static int qmp_fail(struct qmp_session *s, const char *why)
{
	qmp_error(s, NULL, "GenericError", "%s", why);
	s->v->hang_up = true;
	return 0;
}

static void greeting(struct qmp_session *s)
{
	yajl_gen g = reply_open();

	if (!g) {
		s->v->drop = true;
		return;
	}
	gen_str(g, "QMP");
	yajl_gen_map_open(g);
	gen_str(g, "version");
	yajl_gen_map_open(g);
	gen_str(g, "qemu");
	yajl_gen_map_open(g);
	gen_str(g, "micro");
	yajl_gen_integer(g, QMP_QEMU_MICRO);
	gen_str(g, "minor");
	yajl_gen_integer(g, QMP_QEMU_MINOR);
	gen_str(g, "major");
	yajl_gen_integer(g, QMP_QEMU_MAJOR);
	yajl_gen_map_close(g);
	gen_pair(g, "package", "xenchan-dm " XENCHAN_VERSION);
	yajl_gen_map_close(g);
	gen_str(g, "capabilities");
	yajl_gen_array_open(g);
	yajl_gen_array_close(g);
	yajl_gen_map_close(g);
	reply_send(s, g, NULL);
}

/* ---- QMP: commands ---------------------------------------------------------------- */

static void cmd_capabilities(struct qmp_session *s, yajl_gen g)
{
	s->negotiated = true;
	yajl_gen_map_open(g);
	yajl_gen_map_close(g);
}

static void cmd_empty_list(struct qmp_session *s, yajl_gen g)
{
	(void)s;
	yajl_gen_array_open(g);
	yajl_gen_array_close(g);
}

static void cmd_query_status(struct qmp_session *s, yajl_gen g)
{
	(void)s;
	yajl_gen_map_open(g);
	gen_pair(g, "status", "running");
	gen_str(g, "singlestep");
	yajl_gen_bool(g, 0);
	gen_str(g, "running");
	yajl_gen_bool(g, 1);
	yajl_gen_map_close(g);
}

static void cmd_query_name(struct qmp_session *s, yajl_gen g)
{
	yajl_gen_map_open(g);
	if (s->dm->cfg.name)
		gen_pair(g, "name", s->dm->cfg.name);
	yajl_gen_map_close(g);
}

static void cmd_query_version(struct qmp_session *s, yajl_gen g)
{
	(void)s;
	yajl_gen_map_open(g);
	gen_str(g, "qemu");
	yajl_gen_map_open(g);
	gen_str(g, "major");
	yajl_gen_integer(g, QMP_QEMU_MAJOR);
	gen_str(g, "minor");
	yajl_gen_integer(g, QMP_QEMU_MINOR);
	gen_str(g, "micro");
	yajl_gen_integer(g, QMP_QEMU_MICRO);
	yajl_gen_map_close(g);
	gen_pair(g, "package", "xenchan-dm " XENCHAN_VERSION);
	yajl_gen_map_close(g);
}

static void chardev_entry(yajl_gen g, const char *label, const char *filename, bool open)
{
	yajl_gen_map_open(g);
	gen_pair(g, "label", label);
	gen_pair(g, "filename", filename);
	gen_str(g, "frontend-open");
	yajl_gen_bool(g, open);
	yajl_gen_map_close(g);
}

/* As QEMU describes its chardevs: "pty:/dev/pts/N" (the pty the proxy
 * allocated, from the frontend tty node it wrote), "unix:PATH,server=on".
 * A channel we do not serve (no device) has no entry. */
static void cmd_query_chardev(struct qmp_session *s, yajl_gen g)
{
	const struct dm *dm = s->dm;
	char name[XSP_MAX + 32], tty[XSP_MAX];

	yajl_gen_array_open(g);
	for (unsigned i = 0; i < dm->n_mon; i++) {
		snprintf(name, sizeof(name), "unix:%s,server=on", dm->mon[i].cd->path);
		chardev_entry(g, dm->mon[i].cd->id, name, true);
	}
	for (unsigned i = 0; i < dm->n_ch; i++) {
		const struct channel *ch = &dm->ch[i];

		if (!ch->served)
			continue;
		if (!ch->cd->pty)
			snprintf(name, sizeof(name), "unix:%s,server=on", ch->cd->path);
		else if (ch->ready && channel_tty(dm, ch, tty, sizeof(tty)) && tty[0])
			snprintf(name, sizeof(name), "pty:%s", tty);
		else
			snprintf(name, sizeof(name), "disconnected:pty");
		chardev_entry(g, ch->cd->id, name, ch->ready);
	}
	yajl_gen_array_close(g);
}

/* The options whose key=value parameters we take, as QEMU describes its
 * own.  libxl 4.20 reads this from its probe and looks only for -run-with
 * (chroot=, user=): with it, it would pass -run-with for dm_restrict and
 * device_model_user; without it, -chroot and -runas, which parse_argv
 * refuses by name.  Neither can be served, so it is not listed. */
static const struct cmdline_option {
	const char *option;
	const char *param[4];            /* all of them "string" but: */
	const char *boolean[2];
} cmdline_options[] = {
	{ "chardev", { "id", "path" }, { "server", "wait" } },
	{ "mon", { "chardev", "mode" }, { NULL } },
};

static void gen_params(yajl_gen g, const char *const *names, size_t n, const char *type)
{
	for (size_t i = 0; i < n && names[i]; i++) {
		yajl_gen_map_open(g);
		gen_pair(g, "name", names[i]);
		gen_pair(g, "type", type);
		yajl_gen_map_close(g);
	}
}

static void cmd_query_command_line_options(struct qmp_session *s, yajl_gen g)
{
	(void)s;
	yajl_gen_array_open(g);
	for (size_t i = 0; i < sizeof(cmdline_options) / sizeof(cmdline_options[0]); i++) {
		const struct cmdline_option *o = &cmdline_options[i];

		yajl_gen_map_open(g);
		gen_pair(g, "option", o->option);
		gen_str(g, "parameters");
		yajl_gen_array_open(g);
		gen_params(g, o->param, sizeof(o->param) / sizeof(o->param[0]), "string");
		gen_params(g, o->boolean, sizeof(o->boolean) / sizeof(o->boolean[0]), "boolean");
		yajl_gen_array_close(g);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

/* The verdict says quit: a probe ends once libxl has read the answer and
 * let go (probe.c); the device model proper stops its proxies (main.c). */
static void cmd_quit(struct qmp_session *s, yajl_gen g)
{
	yajl_gen_map_open(g);
	yajl_gen_map_close(g);
	s->v->quit = true;
}

static void cmd_query_commands(struct qmp_session *s, yajl_gen g);

/* What libxl 4.17 to 4.22 sends a PV guest's device model (query-chardev
 * after startup), what libxl 4.20 and later send its probe
 * (query-command-line-options, quit), what libxenstat sends
 * (query-blockstats: we have no disks), and a few harmless queries.  A
 * probe (-machine none) has no guest: it answers only the probe's own. */
static const struct qmp_command {
	const char *name;
	void (*run)(struct qmp_session *s, yajl_gen g);
	bool probe;                      /* answered by a probe too */
} qmp_commands[] = {
	{ "qmp_capabilities", cmd_capabilities, true },
	{ "query-chardev", cmd_query_chardev, false },
	{ "query-status", cmd_query_status, false },
	{ "query-name", cmd_query_name, false },
	{ "query-version", cmd_query_version, true },
	{ "query-commands", cmd_query_commands, true },
	{ "query-command-line-options", cmd_query_command_line_options, true },
	{ "query-block", cmd_empty_list, false },
	{ "query-blockstats", cmd_empty_list, false },
	{ "quit", cmd_quit, true },
};
#define N_COMMANDS (sizeof(qmp_commands) / sizeof(qmp_commands[0]))

static void cmd_query_commands(struct qmp_session *s, yajl_gen g)
{
	yajl_gen_array_open(g);
	for (size_t i = 0; i < N_COMMANDS; i++) {
		if (s->dm->probe.on && !qmp_commands[i].probe)
			continue;
		yajl_gen_map_open(g);
		gen_pair(g, "name", qmp_commands[i].name);
		yajl_gen_map_close(g);
	}
	yajl_gen_array_close(g);
}

static void qmp_dispatch(struct qmp_session *s)
{
	const struct qmp_msg *m = &s->msg;
	const struct qmp_command *cmd = NULL;
	yajl_gen g;

	s->v->answered++;
	if (m->id_too_big)
		return qmp_error(s, NULL, "GenericError", "QMP input member 'id' is too large");
	if (m->unexpected[0])
		return qmp_error(s, m, "GenericError", "QMP input member '%s' is unexpected",
				 m->unexpected);
	if (m->bad_execute || !m->have_execute)
		return qmp_error(s, m, "GenericError", m->bad_execute ? "QMP input member "
				 "'execute' must be a string" : "QMP input lacks member 'execute'");
	if (m->bad_arguments)
		return qmp_error(s, m, "GenericError", "QMP input member 'arguments' must be an object");
	for (size_t i = 0; i < N_COMMANDS && !cmd; i++)
		if (!strcmp(qmp_commands[i].name, m->execute)
		    && (qmp_commands[i].probe || !s->dm->probe.on))
			cmd = &qmp_commands[i];
	if (!s->negotiated && (!cmd || cmd->run != cmd_capabilities))
		return qmp_error(s, m, "CommandNotFound", "Expecting capabilities negotiation "
				 "with 'qmp_capabilities'");
	if (s->negotiated && cmd && cmd->run == cmd_capabilities)
		return qmp_error(s, m, "CommandNotFound", "Capabilities negotiation is already "
				 "complete, command ignored");
	if (!cmd)
		return qmp_error(s, m, "CommandNotFound", "The command %s has not been found",
				 m->execute);
	if (!(g = reply_open())) {
		s->v->drop = true;
		return;
	}
	gen_str(g, "return");
	cmd->run(s, g);
	reply_send(s, g, m);
}

/* ---- QMP: parsing, with yajl's event parser ------------------------------------ */

static void id_token(struct qmp_msg *m, enum tok t, const void *s, size_t len)
{
	if (m->n_id == QMP_ID_TOKENS || len > sizeof(m->id_text) - m->id_used) {
		m->id_too_big = true;
		return;
	}
	m->id[m->n_id].t = t;
	m->id[m->n_id].off = m->id_used;
	m->id[m->n_id].len = (unsigned)len;
	if (len)
		memcpy(m->id_text + m->id_used, s, len);
	m->id_used += (unsigned)len;
	m->n_id++;
}

/* A value begins at msg.depth: a scalar, or an object or array opening. */
static int qmp_value(struct qmp_session *s, enum tok t, const void *p, size_t len)
{
	struct qmp_msg *m = &s->msg;

	if (m->depth == 0 && t != T_MAP_OPEN)
		return qmp_fail(s, "QMP input must be a JSON object");
	if (m->depth == 1 && m->member == M_EXECUTE) {
		m->bad_execute = t != T_STRING || len >= sizeof(m->execute) || memchr(p, '\0', len);
		if (!m->bad_execute) {
			memcpy(m->execute, p, len);
			m->execute[len] = '\0';
			m->have_execute = true;
		}
	} else if (m->depth == 1 && m->member == M_ARGUMENTS) {
		m->bad_arguments = t != T_MAP_OPEN;
	} else if (m->depth >= 1 && m->member == M_ID) {
		id_token(m, t, p, len);
	}
	if ((t == T_MAP_OPEN || t == T_ARRAY_OPEN) && ++m->depth > QMP_DEPTH_MAX)
		return qmp_fail(s, "QMP input nests too deeply");
	return 1;
}

/* An object or array ends; the message, when it is the outermost. */
static int qmp_value_end(struct qmp_session *s, enum tok t)
{
	struct qmp_msg *m = &s->msg;

	if (m->depth >= 2 && m->member == M_ID)
		id_token(m, t, NULL, 0);
	if (--m->depth == 0) {
		qmp_dispatch(s);
		memset(m, 0, sizeof(*m));
		s->in_bytes = 0;
	}
	return !s->v->hang_up && !s->v->drop;
}

static int on_key(void *ctx, const unsigned char *k, size_t len)
{
	struct qmp_session *s = ctx;
	struct qmp_msg *m = &s->msg;

	if (m->depth >= 2) {
		if (m->member == M_ID)
			id_token(m, T_KEY, k, len);
		return 1;
	}
#define KEY_IS(s) (len == sizeof(s) - 1 && !memcmp(k, s, len))
	m->member = KEY_IS("execute") ? M_EXECUTE : KEY_IS("id") ? M_ID
		: KEY_IS("arguments") ? M_ARGUMENTS : M_OTHER;
#undef KEY_IS
	if (m->member == M_ID) {
		m->have_id = true;
		m->id_too_big = false;
		m->n_id = m->id_used = 0;
	}
	if (m->member == M_OTHER && !m->unexpected[0])
		snprintf(m->unexpected, sizeof(m->unexpected), "%.*s",
			 (int)(len < sizeof(m->unexpected) ? len : sizeof(m->unexpected) - 1), k);
	return 1;
}

static int on_null(void *ctx) { return qmp_value(ctx, T_NULL, NULL, 0); }
static int on_bool(void *ctx, int b) { return qmp_value(ctx, b ? T_TRUE : T_FALSE, NULL, 0); }
static int on_number(void *ctx, const char *s, size_t len)
{
	return qmp_value(ctx, T_NUMBER, s, len);
}

static int on_string(void *ctx, const unsigned char *p, size_t len)
{
	return qmp_value(ctx, T_STRING, p, len);
}

static int on_map_open(void *ctx) { return qmp_value(ctx, T_MAP_OPEN, NULL, 0); }
static int on_map_close(void *ctx) { return qmp_value_end(ctx, T_MAP_CLOSE); }
static int on_array_open(void *ctx) { return qmp_value(ctx, T_ARRAY_OPEN, NULL, 0); }
static int on_array_close(void *ctx) { return qmp_value_end(ctx, T_ARRAY_CLOSE); }

static const yajl_callbacks qmp_callbacks = {
	.yajl_null = on_null, .yajl_boolean = on_bool, .yajl_number = on_number,
	.yajl_string = on_string, .yajl_start_map = on_map_open, .yajl_map_key = on_key,
	.yajl_end_map = on_map_close, .yajl_start_array = on_array_open,
	.yajl_end_array = on_array_close,
};

/* ---- QMP: a session ---------------------------------------------------------------- */

bool qmp_begin(struct qmp_session *s)
{
	memset(s, 0, sizeof(*s));
	if (!(s->y = yajl_alloc(&qmp_callbacks, NULL, s)))
		return false;
	yajl_config(s->y, yajl_allow_multiple_values, 1);
	return true;
}

void qmp_end(struct qmp_session *s)
{
	if (s->y)
		yajl_free(s->y);
	s->y = NULL;
}

/* What the replies of one call describe, where they go, and its verdict. */
static void call_open(struct qmp_session *s, const struct dm *dm, struct qmp_out *out,
		      struct qmp_verdict *v)
{
	*v = (struct qmp_verdict){ 0 };
	s->dm = dm;
	s->out = out;
	s->v = v;
}

static void call_close(struct qmp_session *s)
{
	s->dm = NULL;
	s->out = NULL;
	s->v = NULL;
}

struct qmp_verdict qmp_greet(struct qmp_session *s, const struct dm *dm, struct qmp_out *out)
{
	struct qmp_verdict v;

	call_open(s, dm, out, &v);
	greeting(s);
	call_close(s);
	return v;
}

struct qmp_verdict qmp_feed(struct qmp_session *s, const struct dm *dm, struct qmp_out *out,
			    const void *buf, size_t n)
{
	struct qmp_verdict v;
	unsigned char *err;

	call_open(s, dm, out, &v);
	s->in_bytes += n;
	if (s->in_bytes > QMP_IN_MAX) {
		qmp_fail(s, "QMP input too long");
	} else if (yajl_parse(s->y, buf, n) == yajl_status_error) {
		char why[200];

		err = yajl_get_error(s->y, 0, buf, n);
		snprintf(why, sizeof(why), "JSON parse error, %s", err ? (char *)err : "?");
		why[strcspn(why, "\r\n")] = '\0';
		yajl_free_error(s->y, err);
		qmp_fail(s, why);
	}
	call_close(s);
	return v;
}
