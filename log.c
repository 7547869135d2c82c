/*
 * log.c - one log line of xenchan-proxy or xenchan-dm (see log.h).
 */
#include <stdio.h>

#include "log.h"

void log_vline(xentoollog_logger *logger, xentoollog_level level, int errnoval,
	       const char *program, const char *prefix, const char *fmt, va_list ap)
{
	char msg[1024];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	xtl_log(logger, level, errnoval, program, "%s%s%s", prefix,
		prefix[0] ? ": " : "", msg);
}
