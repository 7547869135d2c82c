/* SPDX-License-Identifier: MIT */
/* monotime.h - the one clock both programs time things with: CLOCK_MONOTONIC in ms. */
#ifndef XENCHAN_MONOTIME_H
#define XENCHAN_MONOTIME_H

#include <stdint.h>
#include <time.h>

static inline int64_t mono_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/* Milliseconds from now until deadline_ms (a mono_ms() time), 0 once it has
 * passed: a poll timeout, or whether a deadline is due. */
static inline int mono_until(int64_t deadline_ms)
{
	int64_t left = deadline_ms - mono_ms();

	return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

#endif
