/*
 * log.c - what xenchan-dm says, to the qemu-dm log libxl gives it as
 * stderr: each line names the domain once the argv has.
 */
#include <stdarg.h>
#include <stdio.h>
#include <sysexits.h>

#include "dm.h"
#include "../log.h"

void dm_log(const struct dm *dm, xentoollog_level level, int errnoval,
	    const char *fmt, ...)
{
	char prefix[512] = "";
	va_list ap;

	if (dm->cfg.have_domid)
		snprintf(prefix, sizeof(prefix), "domain %u%s%s%s", dm->cfg.domid,
			 dm->cfg.name ? " (" : "", dm->cfg.name ? dm->cfg.name : "",
			 dm->cfg.name ? ")" : "");
	va_start(ap, fmt);
	log_vline((xentoollog_logger *)dm->logger, level, errnoval, "xenchan-dm", prefix,
		  fmt, ap);
	va_end(ap);
}

/* Why we cannot stand in for this argv: one line for the qemu-dm log, and
 * an exit code xl reports ("failed startup with non-zero exit status"). */
int refuse(const struct dm *dm, int code, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (code == EX_CONFIG)
		dm_log(dm, XTL_ERROR, -1, "%s: only QEMU can serve this domain; xenchan-dm "
		       "serves channels only (drop device_model_override for it)", msg);
	else
		dm_log(dm, XTL_ERROR, -1, "%s", msg);
	return code;
}
