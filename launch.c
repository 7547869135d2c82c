/* SPDX-License-Identifier: MIT */
/* launch.c - start a program with a clean slate (see launch.h). */
#include <signal.h>
#include <spawn.h>

#include "launch.h"

extern char **environ;

int64_t restart_delay(struct restarts *r, int64_t now)
{
	unsigned k;

	if (r->n == 0 || now - r->window_start > RESTART_WINDOW_MS) {
		r->window_start = now;
		r->n = 0;
	}
	if (r->n == RESTART_BURST)
		return -1;
	k = r->n++;
	return k ? (int64_t)RESTART_DELAY_MS << (k - 1) : 0;
}

int spawn_clean(const char *path, char *const argv[], pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int r;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	r = posix_spawn(pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	return r;
}
