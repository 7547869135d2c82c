/* SPDX-License-Identifier: MIT */
/*
 * fuzz-input.h - reading a libFuzzer input as a stream of small decisions.
 *
 * Every harness turns its input into a sequence of operations.  Reading past
 * the end yields zeros, so any prefix of an input is itself a valid input and
 * the fuzzer can shorten cases freely.
 */
#ifndef XENCHAN_FUZZ_INPUT_H
#define XENCHAN_FUZZ_INPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct fin {
	const uint8_t *p;
	size_t n;
};

static inline bool fin_empty(const struct fin *f)
{
	return f->n == 0;
}

static inline uint8_t fin_u8(struct fin *f)
{
	if (f->n == 0)
		return 0;
	f->n--;
	return *f->p++;
}

static inline uint16_t fin_u16(struct fin *f)
{
	uint16_t v = fin_u8(f);

	return (uint16_t)(v | fin_u8(f) << 8);
}

static inline uint32_t fin_u32(struct fin *f)
{
	uint32_t v = fin_u16(f);

	return v | (uint32_t)fin_u16(f) << 16;
}

static inline uint64_t fin_u64(struct fin *f)
{
	uint64_t v = fin_u32(f);

	return v | (uint64_t)fin_u32(f) << 32;
}

/* Up to want bytes of the input, in place; *got says how many. */
static inline const uint8_t *fin_bytes(struct fin *f, size_t want, size_t *got)
{
	const uint8_t *p = f->p;

	*got = want < f->n ? want : f->n;
	f->p += *got;
	f->n -= *got;
	return p;
}

/* A C string of at most max bytes, ended by a NUL in the input or by max or
 * by the end of the input, in an exactly sized allocation so that ASan sees
 * any read past its terminator. */
static inline char *fin_str(struct fin *f, size_t max)
{
	size_t len = 0;
	char *s;

	while (len < max && len < f->n && f->p[len] != '\0')
		len++;
	s = malloc(len + 1);
	if (s == NULL)
		abort();
	memcpy(s, f->p, len);
	s[len] = '\0';
	f->p += len;
	f->n -= len;
	if (f->n > 0 && len < max)   /* the terminator */
		fin_u8(f);
	return s;
}

/* A failed invariant is a crash: libFuzzer saves the input. */
#define FUZZ_CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
	abort(); } } while (0)

#endif
