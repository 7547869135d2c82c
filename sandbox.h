/*
 * sandbox.h - least privilege for the relay loop: become an ordinary user,
 * then admit only the system calls the loop makes.
 */
#ifndef XENCHAN_SANDBOX_H
#define XENCHAN_SANDBOX_H

#include <stddef.h>

/* setgid, initgroups and setuid to user; 0 or a sysexits code (err says). */
int sandbox_drop_user(const char *user, char *err, size_t errlen);
/* Install the seccomp allowlist on every thread; 0 or a sysexits code. */
int sandbox_seccomp(char *err, size_t errlen);

#endif
