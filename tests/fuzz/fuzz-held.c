/* SPDX-License-Identifier: MIT */
/*
 * fuzz-held.c - held.c against a plain byte queue.
 *
 * Two held buffers (the proxy's "held" and "unread") take arbitrary put,
 * peek, drop, bound changes, free and the merge that unread_replay() does.
 * A model queue of the same bytes checks, after every step:
 *   - put takes exactly min(n, room) bytes (callers always offer at least n
 *     bytes in the iovecs, as the proxy does), never more than the bound;
 *   - peek gives the held bytes in FIFO order, from inside the allocation;
 *   - drop removes exactly the oldest min(n, len) bytes;
 *   - an empty buffer holds no memory (buf NULL, cap 0), and a buffer never
 *     has less capacity than it holds.
 * Every byte put is a function of its position in one stream, so a lost,
 * duplicated or reordered byte shows.  Iovecs and the buffer itself are exact
 * heap allocations, so ASan sees any access beyond them.
 */
#include "fuzz-input.h"
#include "held.h"

#define PUT_MAX   9000     /* bytes per put: twice HELD_MIN_CAP and more */
#define MAX_STEPS 2048
#define STREAM_MAX (256 * 1024)   /* bytes put per input: six doublings */

enum step { PUT, PEEK, DROP, SET_BOUND, FREE, MERGE, REINIT, STEPS };

struct model {
	uint8_t *q;
	size_t head, len, cap;
};

struct side {
	struct held h;
	struct model m;
};

/* Byte i of the stream is pattern[i % PERIOD]: an odd period, so no shift
 * by a multiple of a capacity (4096 << k) maps the stream onto itself. */
#define PERIOD 1000003
static uint8_t pattern[PERIOD + PUT_MAX + 256];
static uint64_t stream;   /* position of the next byte put, in one input */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint64_t x = 0x9e3779b97f4a7c15ull;

	(void)argc;
	(void)argv;
	for (size_t i = 0; i < sizeof(pattern); i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pattern[i] = (uint8_t)(i < PERIOD ? x : pattern[i - PERIOD]);
	}
	return 0;
}

static void model_append(struct model *m, const uint8_t *src, size_t n)
{
	if (m->head + m->len + n > m->cap) {
		memmove(m->q, m->q + m->head, m->len);
		m->head = 0;
		if (m->len + n > m->cap) {
			m->cap = 2 * (m->len + n);
			m->q = realloc(m->q, m->cap);
			FUZZ_CHECK(m->q != NULL);
		}
	}
	memcpy(m->q + m->head + m->len, src, n);
	m->len += n;
}

static void model_drop(struct model *m, size_t n)
{
	n = n < m->len ? n : m->len;
	m->head += n;
	m->len -= n;
}

static size_t model_room(const struct side *s)
{
	return s->m.len < s->h.bound ? s->h.bound - s->m.len : 0;
}

static size_t pick_bound(struct fin *f)
{
	switch (fin_u8(f) % 6) {
	case 0:
		return fin_u16(f);
	case 1:
		return 4096 - 64 + fin_u8(f) % 128;   /* around HELD_MIN_CAP */
	case 2:
		return fin_u32(f);
	case 3:
		return SIZE_MAX - fin_u8(f);
	case 4:
		return 0;
	default:
		return fin_u8(f);
	}
}

static void check_side(const struct side *s)
{
	const struct held *h = &s->h;

	FUZZ_CHECK(h->len == s->m.len);
	FUZZ_CHECK(held_room(h) == model_room(s));
	if (h->len == 0)   /* an idle proxy holds no memory */
		FUZZ_CHECK(h->buf == NULL && h->cap == 0 && h->head == 0);
	else
		FUZZ_CHECK(h->buf != NULL && h->len <= h->cap && h->head < h->cap);
}

static void put(struct side *s, struct fin *f)
{
	uint16_t r = fin_u16(f);   /* mostly small: big ones cost time */
	size_t n = r & 0x8000 ? (r & 0x7fff) % PUT_MAX : r & 0xff;
	size_t offered, room = model_room(s);
	size_t cap0 = s->h.cap, done, cut[4];
	int cnt = fin_u8(f) % 4;
	struct iovec iov[3];
	uint8_t *src;

	if (cnt == 0 || stream + n > STREAM_MAX)
		n = 0;
	offered = n + (fin_u8(f) % 4 == 0 ? fin_u8(f) : 0);   /* at least n */
	src = malloc(offered ? offered : 1);
	FUZZ_CHECK(src != NULL);
	memcpy(src, pattern + stream % PERIOD, offered);

	/* Split the bytes into cnt iovecs (some may be empty), each its own
	 * exact allocation. */
	cut[0] = 0;
	cut[cnt] = offered;
	for (int i = 1; i < cnt; i++) {
		size_t c = offered ? fin_u16(f) % (offered + 1) : 0;
		cut[i] = c < cut[i - 1] ? cut[i - 1] : c;
	}
	for (int i = 0; i < cnt; i++) {
		size_t len = cut[i + 1] - cut[i];
		iov[i].iov_base = malloc(len ? len : 1);
		FUZZ_CHECK(iov[i].iov_base != NULL);
		memcpy(iov[i].iov_base, src + cut[i], len);
		iov[i].iov_len = len;
	}

	done = held_put(&s->h, iov, cnt, n);
	FUZZ_CHECK(done == (n < room ? n : room));
	model_append(&s->m, src, done);
	stream += done;
	if (s->h.cap != cap0)   /* grown: enough, and within the bound */
		FUZZ_CHECK(s->h.cap >= s->h.len && s->h.cap <= s->h.bound);
	for (int i = 0; i < cnt; i++)
		free(iov[i].iov_base);
	free(src);
}

static void peek(const struct side *s)
{
	const struct held *h = &s->h;
	struct iovec iov[2];
	int cnt = -1;
	size_t n = held_peek(h, iov, &cnt), off = 0;

	FUZZ_CHECK(n == s->m.len);
	FUZZ_CHECK(cnt >= 0 && cnt <= 2 && (cnt == 0) == (n == 0));
	for (int i = 0; i < cnt; i++) {
		const char *b = iov[i].iov_base;
		FUZZ_CHECK(iov[i].iov_len > 0);
		FUZZ_CHECK(b >= h->buf && b < h->buf + h->cap);
		FUZZ_CHECK(iov[i].iov_len <= (size_t)(h->buf + h->cap - b));
		FUZZ_CHECK(memcmp(b, s->m.q + s->m.head + off, iov[i].iov_len) == 0);
		off += iov[i].iov_len;
	}
	FUZZ_CHECK(off == n);
}

static void drop(struct side *s, struct fin *f)
{
	size_t n = fin_u8(f) & 1 ? s->m.len + fin_u8(f)
		: fin_u16(f) % (s->m.len + 1);

	held_drop(&s->h, n);
	model_drop(&s->m, n);
}

/* unread_replay(): the unread copy goes ahead of what is held, in a buffer
 * that may hold more than the held bound until it drains. */
static void merge(struct side *unread, struct side *held)
{
	struct held merged;
	struct iovec iov[2];
	int cnt;

	held_init(&merged, unread->h.len + held->h.len);
	held_peek(&unread->h, iov, &cnt);
	FUZZ_CHECK(held_put(&merged, iov, cnt, unread->h.len) == unread->h.len);
	held_peek(&held->h, iov, &cnt);
	FUZZ_CHECK(held_put(&merged, iov, cnt, held->h.len) == held->h.len);
	merged.bound = held->h.bound;
	held_free(&held->h);
	held_free(&unread->h);
	held->h = merged;

	model_append(&unread->m, held->m.q + held->m.head, held->m.len);
	model_drop(&held->m, held->m.len);
	model_append(&held->m, unread->m.q + unread->m.head, unread->m.len);
	model_drop(&unread->m, unread->m.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fin f = { data, size };
	struct side sides[2];

	stream = 0;
	for (int i = 0; i < 2; i++) {
		held_init(&sides[i].h, pick_bound(&f));
		sides[i].m = (struct model){ .q = malloc(1), .cap = 1 };
		FUZZ_CHECK(sides[i].m.q != NULL);
		check_side(&sides[i]);
	}
	for (int i = 0; i < MAX_STEPS && !fin_empty(&f); i++) {
		uint8_t op = fin_u8(&f);
		struct side *s = &sides[op >> 7];

		switch (op % STEPS) {
		case PUT:
			put(s, &f);
			break;
		case PEEK:
			peek(s);
			break;
		case DROP:
			drop(s, &f);
			break;
		case SET_BOUND:   /* the proxy sets a bound directly, below len even */
			s->h.bound = pick_bound(&f);
			break;
		case FREE:
			held_free(&s->h);
			model_drop(&s->m, s->m.len);
			break;
		case MERGE:
			merge(&sides[op >> 7], &sides[!(op >> 7)]);
			break;
		case REINIT:
			held_free(&s->h);
			held_init(&s->h, pick_bound(&f));
			model_drop(&s->m, s->m.len);
			break;
		}
		check_side(&sides[0]);
		check_side(&sides[1]);
		peek(s);   /* the whole queue, after every step that touched it */
		if (op % STEPS == MERGE)
			peek(&sides[!(op >> 7)]);
	}
	for (int i = 0; i < 2; i++) {
		held_free(&sides[i].h);
		model_drop(&sides[i].m, sides[i].m.len);
		check_side(&sides[i]);
		free(sides[i].m.q);
	}
	return 0;
}
