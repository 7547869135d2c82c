/* SPDX-License-Identifier: MIT */
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

/* Why we cannot stand in for QEMU here: one line for the qemu-dm log, and
 * an exit code xl reports ("failed startup with non-zero exit status"). */
int dm_refused(const struct dm *dm, const struct refusal *no)
{
	if (no->code == EX_CONFIG)
		dm_log(dm, XTL_ERROR, -1, "%s: only QEMU can serve this domain; xenchan-dm "
		       "serves channels only (drop device_model_override for it)", no->why);
	else
		dm_log(dm, XTL_ERROR, -1, "%s", no->why);
	return no->code;
}

int dm_refuse(const struct dm *dm, int code, const char *fmt, ...)
{
	struct refusal no = { .code = code };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(no.why, sizeof(no.why), fmt, ap);
	va_end(ap);
	return dm_refused(dm, &no);
}
