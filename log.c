/* SPDX-License-Identifier: MIT */
/*
 * log.c - one log line of xenchan-proxy or xenchan-dm (see log.h).
 */
#include <stdio.h>

#include "log.h"
#include "monotime.h"

void log_vline(xentoollog_logger *logger, xentoollog_level level, int errnoval,
	       const char *program, const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	xtl_log(logger, level, errnoval, program, "%s%s%s", prefix,
		prefix[0] ? ": " : "", msg);
}

/* Credit the lines earned since b->refilled_ms; a full budget earns nothing
 * more (idle time is not saved up beyond LOG_BURST). */
static void refill(struct log_budget *b, int64_t now_ms)
{
	int64_t lines = (now_ms - b->refilled_ms) / LOG_REFILL_MS;

	if (b->tokens == LOG_BURST || b->tokens + lines >= LOG_BURST) {
		b->tokens = LOG_BURST;
		b->refilled_ms = now_ms;
		b->throttled = false;   /* it behaved long enough: a new episode */
		return;
	}
	b->tokens += lines;
	b->refilled_ms += lines * LOG_REFILL_MS;
}

bool log_budget_take(struct log_budget *b, int64_t now_ms, unsigned long *held_back,
		     bool *throttling)
{
	if (!b->started) {
		b->started = true;
		b->tokens = LOG_BURST;
		b->refilled_ms = now_ms;
	}
	refill(b, now_ms);
	*held_back = 0;
	*throttling = false;
	if (b->tokens == 0) {
		b->held_back++;
		*throttling = !b->throttled;
		b->throttled = true;
		return false;
	}
	b->tokens--;
	*held_back = b->held_back;
	b->held_back = 0;
	return true;
}

void log_name(struct log_ctx *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->prefix, sizeof(l->prefix), fmt, ap);
	va_end(ap);
}

void log_line(struct log_ctx *l, xentoollog_level level, int errnoval, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vline(l->logger, level, errnoval, l->program, l->prefix, fmt, ap);
	va_end(ap);
}

void log_guest(struct log_ctx *l, xentoollog_level level, int errnoval, const char *fmt, ...)
{
	unsigned long held_back;
	bool throttling;
	char msg[1024];
	va_list ap;

	if (!log_budget_take(&l->guest, mono_ms(), &held_back, &throttling)) {
		if (throttling)
			log_line(l, XTL_WARN, -1, "the guest changes state faster than it is "
				 "worth logging: at most one such line per %d s from now on, "
				 "until it calms down, each counting the lines not logged",
				 LOG_REFILL_MS / 1000);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (held_back)
		log_line(l, level, errnoval, "%s (%lu similar lines not logged)", msg, held_back);
	else
		log_line(l, level, errnoval, "%s", msg);
}
