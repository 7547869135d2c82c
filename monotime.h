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

#endif
