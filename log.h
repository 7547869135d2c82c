/* SPDX-License-Identifier: MIT */
/*
 * log.h - one log line of xenchan-proxy or xenchan-dm, through xentoollog:
 * "PREFIX: MESSAGE", where the prefix says which domain and channel; and the
 * budget of the lines another party (a guest) can cause.
 */
#ifndef XENCHAN_LOG_H
#define XENCHAN_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <xentoollog.h>

/* Log fmt/ap as PROGRAM's line, after "PREFIX: " unless prefix is empty.
 * Messages are cut at 1 KiB: a line, not a dump. */
void log_vline(xentoollog_logger *logger, xentoollog_level level, int errnoval,
	       const char *program, const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

/*
 * A budget of log lines for what another party (a guest) can cause as often
 * as it likes: LOG_BURST lines at once, then one more every LOG_REFILL_MS.
 * The lines over budget are counted, and the next line logged says how
 * many.  No timer: the budget is refilled when a line is due.  Zeroed, it
 * is full.
 */
#define LOG_BURST      32
#define LOG_REFILL_MS  10000

struct log_budget {
	bool started;
	unsigned tokens;            /* lines that may be logged now */
	int64_t refilled_ms;        /* lines are earned from here on (mono_ms) */
	unsigned long held_back;    /* lines not logged since the last one that was */
	bool throttled;             /* lines were held back since it was last full */
};

/* May a line be logged at now_ms (mono_ms)?  If so, *held_back is how
 * many were not logged before it (and is reset).  *throttling is true for
 * the first line refused since the budget was last full: the one moment to
 * say that lines are being held back. */
bool log_budget_take(struct log_budget *b, int64_t now_ms, unsigned long *held_back,
		     bool *throttling);

/*
 * Who is writing, about what: a program's logger and the prefix of its
 * lines ("domain 7 (web1) channel NAME"), which the caller keeps up to date
 * (log_name) as it learns more, and the budget of the lines a guest causes.
 * Embedded in the caller's state; it knows nothing of it.
 */
#define LOG_PREFIX_MAX 320

struct log_ctx {
	xentoollog_logger *logger;
	const char *program;
	char prefix[LOG_PREFIX_MAX];
	struct log_budget guest;    /* log_guest's lines */
};

/* Set the prefix of the lines that follow. */
void log_name(struct log_ctx *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line: "PREFIX: " and the message, with errnoval's text unless it is -1. */
void log_line(struct log_ctx *l, xentoollog_level level, int errnoval,
	      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A line the guest causes each time it changes state (connected, released,
 * backend state...), which it may do thousands of times a second: within
 * l->guest's budget at every verbosity.  Repeated refusals count their
 * repeats instead (proxy.h, repeat_log). */
void log_guest(struct log_ctx *l, xentoollog_level level, int errnoval,
	       const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
