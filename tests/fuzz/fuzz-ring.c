/* SPDX-License-Identifier: MIT */
/*
 * fuzz-ring.c - ring.c from the backend's side, against a guest that writes
 * anything at any time.
 *
 * The input sets the four indices of a page, then is read as a sequence of
 * steps: the guest's (out_prod and in_cons, which it owns; out_cons and
 * in_prod, which it must not touch but may; bytes of out[] and in[]) and the
 * backend's (readable, consume, writable, produce, unconsumed, a restart that
 * adopts the page's indices, mark connected).  A model keeps the indices the
 * backend owns and checks, after each backend step:
 *   - a count is -1 exactly when the peer's index is impossible
 *     (prod - cons > the ring's size, in 32-bit arithmetic), else the number
 *     of bytes the model expects, never more than the ring's size;
 *   - the iovecs lie inside out[] (or in[]) and describe exactly those bytes,
 *     starting at the masked index and wrapping once at most;
 *   - consume and produce move the index by exactly n (n never more than the
 *     last count offered), publish it, and write nothing else in the page;
 *     the read-only calls write nothing at all.
 * The page sits between two PROT_NONE pages, so a stray access beyond it
 * faults; the checks above catch a stray access inside it.
 */
#include <stddef.h>
#include <sys/mman.h>
#include <unistd.h>
#include "fuzz-input.h"
#include "ring.h"

#define OUT_SIZE ((uint32_t)sizeof(((struct xencons_interface *)0)->out))
#define IN_SIZE  ((uint32_t)sizeof(((struct xencons_interface *)0)->in))
#define MAX_STEPS 4096

enum step {
	GUEST_OUT_PROD, GUEST_IN_CONS, GUEST_SCRIBBLE, GUEST_DATA,
	READABLE, CONSUME, WRITABLE, PRODUCE, UNCONSUMED, RESTART, MARK_CONNECTED,
	STEPS
};

static char *page;                     /* one page between two guard pages */
static char before[RING_PAGE_SIZE];    /* the page before a backend call */
static char expect[RING_PAGE_SIZE];

struct sim {
	struct xencons_interface *x;
	struct ring_dir out, in;
	uint32_t out_local, in_local;   /* the model's copy of the backend's indices */
	size_t out_offered;             /* readable bytes offered, not yet consumed */
	size_t in_offered;              /* free bytes offered, not yet produced */
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char *m;

	(void)argc;
	(void)argv;
	if (sysconf(_SC_PAGESIZE) != RING_PAGE_SIZE)
		abort();
	m = mmap(NULL, 3 * RING_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED || mprotect(m, RING_PAGE_SIZE, PROT_NONE) != 0
	    || mprotect(m + 2 * RING_PAGE_SIZE, RING_PAGE_SIZE, PROT_NONE) != 0)
		abort();
	page = m + RING_PAGE_SIZE;
	return 0;
}

/* A value for an index the guest owns: anything, or near where it would be
 * valid (base..base+size), just beyond either end, or base with a bit flipped. */
static uint32_t guest_index(struct fin *f, uint32_t base, uint32_t size)
{
	switch (fin_u8(f) % 4) {
	case 0:
		return fin_u32(f);
	case 1:
		return base + fin_u16(f) % (size + 3);
	case 2:
		return base - 1 - fin_u16(f) % (size + 2);
	default:
		return base ^ (1u << (fin_u8(f) % 32));
	}
}

/* The page is as it was before the call, except for [off, off + len). */
static void page_same_except(size_t off, size_t len)
{
	FUZZ_CHECK(memcmp(before, page, off) == 0);
	FUZZ_CHECK(memcmp(before + off + len, page + off + len,
			  RING_PAGE_SIZE - off - len) == 0);
}

/* ret bytes from free-running index start of arr[size], as iovecs. */
static void check_span(const char *arr, uint32_t size, uint32_t start,
		       ssize_t ret, const struct iovec iov[2], int cnt,
		       struct fin *f)
{
	size_t total = 0, n, got;
	char *dst;

	FUZZ_CHECK(ret >= 0 && (size_t)ret <= size);
	FUZZ_CHECK(cnt >= 0 && cnt <= 2);
	FUZZ_CHECK((cnt == 0) == (ret == 0));
	for (int i = 0; i < cnt; i++) {
		const char *b = iov[i].iov_base;
		FUZZ_CHECK(iov[i].iov_len > 0);
		FUZZ_CHECK(b >= arr && b < arr + size);
		FUZZ_CHECK(iov[i].iov_len <= (size_t)(arr + size - b));
		total += iov[i].iov_len;
	}
	FUZZ_CHECK(total == (size_t)ret);
	if (cnt >= 1)
		FUZZ_CHECK(iov[0].iov_base == arr + (start & (size - 1)));
	if (cnt == 2)
		FUZZ_CHECK(iov[1].iov_base == arr
			   && (const char *)iov[0].iov_base + iov[0].iov_len == arr + size);

	/* Read the bytes through the copy helper, into an exact allocation. */
	n = fin_u16(f) % (size + 8);
	dst = malloc(n ? n : 1);
	FUZZ_CHECK(dst != NULL);
	got = ring_iov_copy_out(iov, cnt, dst, n);
	FUZZ_CHECK(got == (n < (size_t)ret ? n : (size_t)ret));
	for (size_t j = 0; j < got; j++)
		FUZZ_CHECK(dst[j] == arr[(start + j) & (size - 1)]);
	free(dst);
}

static void check_dirs(const struct sim *s)
{
	FUZZ_CHECK(s->out.buf == s->x->out && s->out.size == OUT_SIZE);
	FUZZ_CHECK(s->out.prod == &s->x->out_prod && s->out.cons == &s->x->out_cons);
	FUZZ_CHECK(s->in.buf == s->x->in && s->in.size == IN_SIZE);
	FUZZ_CHECK(s->in.prod == &s->x->in_prod && s->in.cons == &s->x->in_cons);
	FUZZ_CHECK(s->out.local == s->out_local && s->in.local == s->in_local);
}

static void restart(struct sim *s)
{
	memcpy(before, page, RING_PAGE_SIZE);
	ring_backend_init(page, &s->out, &s->in);
	page_same_except(0, 0);
	s->out_local = s->x->out_cons;   /* a restarted backend adopts the page */
	s->in_local = s->x->in_prod;
	s->out_offered = s->in_offered = 0;
	check_dirs(s);
}

static void guest_data(struct sim *s, struct fin *f)
{
	bool to_out = fin_u8(f) & 1;
	char *arr = to_out ? s->x->out : s->x->in;
	uint32_t mask = (to_out ? OUT_SIZE : IN_SIZE) - 1;
	uint16_t off = fin_u16(f);
	size_t len;
	const uint8_t *p = fin_bytes(f, fin_u8(f), &len);

	for (size_t j = 0; j < len; j++)
		arr[(off + j) & mask] = (char)p[j];
}

static void readable(struct sim *s, struct fin *f)
{
	uint32_t avail = s->x->out_prod - s->out_local;
	struct iovec iov[2];
	int cnt = -1;
	ssize_t ret;

	memcpy(before, page, RING_PAGE_SIZE);
	ret = ring_readable(&s->out, iov, &cnt);
	page_same_except(0, 0);
	if (avail > OUT_SIZE) {
		FUZZ_CHECK(ret == -1);
		s->out_offered = 0;
	} else {
		FUZZ_CHECK(ret == (ssize_t)avail);
		check_span(s->x->out, OUT_SIZE, s->out_local, ret, iov, cnt, f);
		s->out_offered = ret;
	}
}

static void consume(struct sim *s, struct fin *f)
{
	size_t n = fin_u16(f) % (s->out_offered + 1);

	memcpy(before, page, RING_PAGE_SIZE);
	ring_consume(&s->out, n);
	page_same_except(offsetof(struct xencons_interface, out_cons), sizeof(XENCONS_RING_IDX));
	s->out_local += n;
	s->out_offered -= n;
	FUZZ_CHECK(s->x->out_cons == s->out_local);
}

static void writable(struct sim *s, struct fin *f)
{
	uint32_t used = s->in_local - s->x->in_cons;
	struct iovec iov[2];
	int cnt = -1;
	ssize_t ret;
	size_t k, got;
	const uint8_t *data;

	memcpy(before, page, RING_PAGE_SIZE);
	ret = ring_writable(&s->in, iov, &cnt);
	page_same_except(0, 0);
	if (used > IN_SIZE) {
		FUZZ_CHECK(ret == -1);
		s->in_offered = 0;
		return;
	}
	FUZZ_CHECK(ret == (ssize_t)(IN_SIZE - used));
	check_span(s->x->in, IN_SIZE, s->in_local, ret, iov, cnt, f);
	s->in_offered = ret;

	/* Fill part of the free space as the proxy's readv() would: exactly
	 * the bytes at in_local onwards change, nothing else in the page. */
	k = fin_u16(f) % (ret + 1);
	data = fin_bytes(f, k, &k);
	memcpy(before, page, RING_PAGE_SIZE);
	memcpy(expect, page, RING_PAGE_SIZE);
	for (size_t j = 0; j < k; j++)
		expect[offsetof(struct xencons_interface, in) + ((s->in_local + j) & (IN_SIZE - 1))] = (char)data[j];
	got = ring_iov_copy_in(iov, cnt, data, k);
	FUZZ_CHECK(got == k);
	FUZZ_CHECK(memcmp(expect, page, RING_PAGE_SIZE) == 0);
}

static void produce(struct sim *s, struct fin *f)
{
	size_t n = fin_u16(f) % (s->in_offered + 1);

	memcpy(before, page, RING_PAGE_SIZE);
	ring_produce(&s->in, n);
	page_same_except(offsetof(struct xencons_interface, in_prod), sizeof(XENCONS_RING_IDX));
	s->in_local += n;
	s->in_offered -= n;
	FUZZ_CHECK(s->x->in_prod == s->in_local);
}

static void unconsumed(struct sim *s, struct fin *f)
{
	uint32_t cons = s->x->in_cons, used = s->in_local - cons;
	struct iovec iov[2];
	int cnt = -1;
	ssize_t ret;

	memcpy(before, page, RING_PAGE_SIZE);
	ret = ring_unconsumed(&s->in, iov, &cnt);
	page_same_except(0, 0);
	if (used > IN_SIZE) {
		FUZZ_CHECK(ret == -1);
		return;
	}
	FUZZ_CHECK(ret == (ssize_t)used);
	check_span(s->x->in, IN_SIZE, cons, ret, iov, cnt, f);
}

static void mark_connected(void)
{
	memcpy(before, page, RING_PAGE_SIZE);
	ring_mark_connected(page);
	page_same_except(sizeof(struct xencons_interface), 1);
	FUZZ_CHECK(page[sizeof(struct xencons_interface)] == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	struct sim s = { .x = (struct xencons_interface *)page };

	/* A page as a guest may hand it over: any indices, any bytes. */
	for (size_t i = 0; i < RING_PAGE_SIZE; i++)
		page[i] = (char)(i * 131 + 17);
	s.x->in_cons = fin_u32(&f);
	s.x->in_prod = fin_u32(&f);
	s.x->out_cons = fin_u32(&f);
	s.x->out_prod = fin_u32(&f);
	restart(&s);

	for (int i = 0; i < MAX_STEPS && !fin_empty(&f); i++) {
		switch (fin_u8(&f) % STEPS) {
		case GUEST_OUT_PROD:
			s.x->out_prod = guest_index(&f, s.out_local, OUT_SIZE);
			break;
		case GUEST_IN_CONS:
			s.x->in_cons = guest_index(&f, s.in_local - IN_SIZE, IN_SIZE);
			break;
		case GUEST_SCRIBBLE:   /* on the indices the backend owns */
			if (fin_u8(&f) & 1)
				s.x->out_cons = fin_u32(&f);
			else
				s.x->in_prod = fin_u32(&f);
			break;
		case GUEST_DATA:
			guest_data(&s, &f);
			break;
		case READABLE:
			readable(&s, &f);
			break;
		case CONSUME:
			consume(&s, &f);
			break;
		case WRITABLE:
			writable(&s, &f);
			break;
		case PRODUCE:
			produce(&s, &f);
			break;
		case UNCONSUMED:
			unconsumed(&s, &f);
			break;
		case RESTART:
			restart(&s);
			break;
		case MARK_CONNECTED:
			mark_connected();
			break;
		}
		check_dirs(&s);
	}
	return 0;
}
