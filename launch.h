/* SPDX-License-Identifier: MIT */
/*
 * launch.h - start a program with a clean slate: no blocked signal, every
 * disposition the default, none of our descriptors but stdio.  Shared by
 * xenchan-dm and xenchan-devd (which start proxies), depending on neither.
 */
#ifndef XENCHAN_LAUNCH_H
#define XENCHAN_LAUNCH_H

#include <limits.h>
#include <stdbool.h>
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

/* The proxy a launcher runs, by one rule for xenchan-dm and xenchan-devd:
 * path $XENCHAN_PROXY, else built_in (unless ""), else xenchan-proxy beside
 * this program; user (for --user) $XENCHAN_PROXY_USER ("root": none), else
 * PROXY_USER if it exists, else none; options $XENCHAN_PROXY_OPTS cut into
 * words at blanks (for tests and wrappers; they follow --user, so theirs
 * wins). */
#define PROXY_USER     "xenchan"
#define PROXY_MAX_OPTS 16
struct proxy_cmd {
	char path[PATH_MAX];
	const char *user;                /* NULL: the proxies stay root */
	char *opts_buf, *opts[PROXY_MAX_OPTS];
	unsigned n_opts;
};

/* Fill c.  False when PROXY_USER was wanted and does not exist (errno from
 * getpwnam, or 0): the caller says so, as the proxies then stay root. */
bool proxy_cmd_init(struct proxy_cmd *c, const char *built_in);
/* argv[0...]: the path, --user USER, the options; returns how many (at most
 * PROXY_ARGV_HEAD).  The caller adds its own and the NULL. */
#define PROXY_ARGV_HEAD (3 + PROXY_MAX_OPTS)
unsigned proxy_cmd_argv(const struct proxy_cmd *c, char **argv);
void proxy_cmd_free(struct proxy_cmd *c);

/* A wait status in words: "exited with status N", "was killed by signal N
 * (NAME)". */
void wait_status_text(int status, char *buf, size_t len);

#endif
