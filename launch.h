/* SPDX-License-Identifier: MIT */
/*
 * launch.h - start a program with a clean slate: no blocked signal, every
 * disposition the default, none of our descriptors but stdio.  Shared by
 * xenchan-dm and xenchan-devd (which start proxies), depending on neither.
 */
#ifndef XENCHAN_LAUNCH_H
#define XENCHAN_LAUNCH_H

#include <stdint.h>
#include <sys/types.h>

/* posix_spawn path with argv and our environment: 0 and *pid, or an errno. */
int spawn_clean(const char *path, char *const argv[], pid_t *pid);

/* How a failing proxy is restarted: at once, then after 250 ms, 500 ms, 1 s
 * and 2 s; its sixth failure within a minute gives it up (logged) rather
 * than spinning on a fault a restart cannot fix. */
#define RESTART_BURST     5
#define RESTART_WINDOW_MS 60000
#define RESTART_DELAY_MS  250

struct restarts {
	unsigned n;                      /* restarts within the window */
	int64_t window_start;            /* mono_ms */
};

/* A proxy failed at now (mono_ms): the milliseconds to wait before starting
 * it again (r->n counts this restart), or -1 if that is one too many. */
int64_t restart_delay(struct restarts *r, int64_t now);

#endif
