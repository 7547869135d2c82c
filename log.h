/*
 * log.h - one log line of xenchan-proxy or xenchan-dm, through xentoollog:
 * "PREFIX: MESSAGE", where the prefix says which domain and channel.
 */
#ifndef XENCHAN_LOG_H
#define XENCHAN_LOG_H

#include <stdarg.h>
#include <xentoollog.h>

/* Log fmt/ap as PROGRAM's line, after "PREFIX: " unless prefix is empty.
 * Messages are cut at 1 KiB: a line, not a dump. */
void log_vline(xentoollog_logger *logger, xentoollog_level level, int errnoval,
	       const char *program, const char *prefix, const char *fmt, va_list ap)
	__attribute__((format(printf, 6, 0)));

#endif
