/* SPDX-License-Identifier: MIT */
/* launch.c - start a program with a clean slate (see launch.h). */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

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

bool proxy_cmd_init(struct proxy_cmd *c, const char *built_in)
{
	const char *path = getenv("XENCHAN_PROXY"), *user = getenv("XENCHAN_PROXY_USER");
	const char *opts = getenv("XENCHAN_PROXY_OPTS");
	char *save = NULL, *w, *slash;
	bool user_ok = true;
	int pw_errno = 0;
	ssize_t n;

	*c = (struct proxy_cmd){ .user = NULL };
	if (user && *user) {
		c->user = strcmp(user, "root") ? user : NULL;
	} else {
		errno = 0;
		user_ok = getpwnam(PROXY_USER) != NULL;
		c->user = user_ok ? PROXY_USER : NULL;
		pw_errno = errno;
	}
	c->opts_buf = opts ? strdup(opts) : NULL;
	for (w = c->opts_buf ? strtok_r(c->opts_buf, " \t", &save) : NULL;
	     w && c->n_opts < PROXY_MAX_OPTS; w = strtok_r(NULL, " \t", &save))
		c->opts[c->n_opts++] = w;
	if (!(path && *path) && built_in[0])
		path = built_in;
	if (path && *path) {
		snprintf(c->path, sizeof(c->path), "%s", path);
	} else {
		n = readlink("/proc/self/exe", c->path, sizeof(c->path) - 16);
		if (n <= 0 || !(slash = memrchr(c->path, '/', (size_t)n)))
			strcpy(c->path, "xenchan-proxy");
		else
			strcpy(slash + 1, "xenchan-proxy");
	}
	errno = pw_errno;
	return user_ok;
}

unsigned proxy_cmd_argv(const struct proxy_cmd *c, char **argv)
{
	unsigned k = 0;

	argv[k++] = (char *)c->path;
	if (c->user) {
		argv[k++] = "--user";
		argv[k++] = (char *)c->user;
	}
	for (unsigned i = 0; i < c->n_opts; i++)
		argv[k++] = c->opts[i];
	return k;
}

void proxy_cmd_free(struct proxy_cmd *c)
{
	free(c->opts_buf);
	c->opts_buf = NULL;
	c->n_opts = 0;
}

void wait_status_text(int status, char *buf, size_t len)
{
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (wait status %#x)", (unsigned)status);
}
