/* SPDX-License-Identifier: MIT */
/*
 * launch.h - start a program with a clean slate: no blocked signal, every
 * disposition the default, none of our descriptors but stdio.  Shared by
 * xenchan-dm and xenchan-devd (which start proxies), depending on neither.
 */
#ifndef XENCHAN_LAUNCH_H
#define XENCHAN_LAUNCH_H

#include <sys/types.h>

/* posix_spawn path with argv and our environment: 0 and *pid, or an errno. */
int spawn_clean(const char *path, char *const argv[], pid_t *pid);

#endif
