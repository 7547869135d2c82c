/* SPDX-License-Identifier: MIT */
/*
 * test-units.c - unit tests of the pure parts: ring.c, held.c, the strict
 * parsers (strict.c), the channel matching of xs.c, and log.c's line budget.  Run by
 * tests/test_units.py.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "held.h"
#include "launch.h"
#include "log.h"
#include "ring.h"
#include "strict.h"
#include "store.h"

static int failures, checks;

#define CHECK(cond) do { checks++; if (!(cond)) { failures++; \
	fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); } } while (0)

static _Alignas(4096) char page[RING_PAGE_SIZE];

/* Move n bytes through out[] from a frontend view to a backend view. */
static void test_ring_roundtrip(void)
{
	struct ring_dir fo, fi, bo, bi;
	struct iovec iov[2];
	char src[5000], dst[5000];
	size_t moved = 0, sent = 0;
	int cnt;

	memset(page, 0, sizeof(page));
	for (size_t i = 0; i < sizeof(src); i++)
		src[i] = (char)(i * 7 + 3);
	ring_frontend_init(page, &fo, &fi);
	ring_backend_init(page, &bo, &bi);
	while (moved < sizeof(src)) {
		ssize_t room = ring_writable(&fo, iov, &cnt);
		CHECK(room >= 0 && room <= 2048);
		size_t k = ring_iov_copy_in(iov, cnt, src + sent, sizeof(src) - sent < 700 ? sizeof(src) - sent : 700);
		ring_produce(&fo, k);
		sent += k;
		ssize_t avail = ring_readable(&bo, iov, &cnt);
		CHECK(avail >= 0);
		size_t got = ring_iov_copy_out(iov, cnt, dst + moved, avail);
		ring_consume(&bo, got);
		moved += got;
	}
	CHECK(memcmp(src, dst, sizeof(src)) == 0);
	CHECK(((struct xencons_interface *)page)->out_cons == sizeof(src));
}

static void test_ring_wrap_iovecs(void)
{
	struct xencons_interface *x = (void *)page;
	struct ring_dir bo, bi;
	struct iovec iov[2];
	int cnt;

	memset(page, 0, sizeof(page));
	x->out_cons = 2040;
	x->out_prod = 2060;              /* wraps: 8 bytes at the end, 12 at the start */
	ring_backend_init(page, &bo, &bi);
	CHECK(ring_readable(&bo, iov, &cnt) == 20);
	CHECK(cnt == 2 && iov[0].iov_len == 8 && iov[1].iov_len == 12);
	CHECK(iov[0].iov_base == x->out + 2040 && iov[1].iov_base == x->out);
	x->out_cons = 0xfffffffc;        /* free-running indices wrap around 2^32 */
	x->out_prod = 4;
	ring_backend_init(page, &bo, &bi);
	CHECK(ring_readable(&bo, iov, &cnt) == 8);
}

static void test_ring_hostile_indices(void)
{
	struct xencons_interface *x = (void *)page;
	struct ring_dir bo, bi;
	struct iovec iov[2];
	int cnt;

	memset(page, 0, sizeof(page));
	ring_backend_init(page, &bo, &bi);
	x->out_prod = 2049;              /* more than out[] holds */
	CHECK(ring_readable(&bo, iov, &cnt) == -1);
	x->out_prod = (uint32_t)-1;      /* backwards */
	CHECK(ring_readable(&bo, iov, &cnt) == -1);
	x->out_prod = 2048;              /* exactly full is fine */
	CHECK(ring_readable(&bo, iov, &cnt) == 2048);
	x->in_cons = 5;                  /* consumer ahead of our producer */
	CHECK(ring_writable(&bi, iov, &cnt) == -1);
	x->in_cons = 0;
	CHECK(ring_writable(&bi, iov, &cnt) == 1024);
	/* The guest scribbling on our index changes nothing we use. */
	x->out_cons = 12345;
	CHECK(ring_readable(&bo, iov, &cnt) == 2048);
	ring_consume(&bo, 48);
	CHECK(x->out_cons == 48);
}

/* ring_peer_moved: forward moves within what the ring allows, each counted
 * once; an index swung back and forth is not progress. */
static void test_ring_peer_moved(void)
{
	struct xencons_interface *x = (void *)page;
	struct ring_dir bo, bi;
	XENCONS_RING_IDX seen_prod, seen_cons;

	memset(page, 0, sizeof(page));
	x->in_prod = 100;                /* we produced 100 bytes the guest has not read */
	ring_backend_init(page, &bo, &bi);
	seen_prod = 0;
	seen_cons = 0;
	CHECK(!ring_peer_moved(&bo, &seen_prod) && !ring_peer_moved(&bi, &seen_cons));
	x->out_prod = 10;                /* the guest wrote */
	CHECK(ring_peer_moved(&bo, &seen_prod) && seen_prod == 10);
	CHECK(!ring_peer_moved(&bo, &seen_prod));      /* the same news once */
	x->out_prod = 5;                 /* back: not progress, not recorded */
	CHECK(!ring_peer_moved(&bo, &seen_prod) && seen_prod == 10);
	x->out_prod = 10;                /* forward again, to where it was */
	CHECK(!ring_peer_moved(&bo, &seen_prod));
	x->out_prod = 2049;              /* beyond the ring: not ours to record */
	CHECK(!ring_peer_moved(&bo, &seen_prod) && seen_prod == 10);
	x->in_cons = 60;                 /* the guest read */
	CHECK(ring_peer_moved(&bi, &seen_cons) && seen_cons == 60);
	x->in_cons = 101;                /* read more than we produced */
	CHECK(!ring_peer_moved(&bi, &seen_cons) && seen_cons == 60);
	x->in_cons = 59;
	CHECK(!ring_peer_moved(&bi, &seen_cons));
	x->in_cons = 100;
	CHECK(ring_peer_moved(&bi, &seen_cons) && seen_cons == 100);
	/* across the wrap of the free-running indices */
	memset(page, 0, sizeof(page));
	x->out_cons = x->out_prod = 0xfffffff0;
	ring_backend_init(page, &bo, &bi);
	seen_prod = 0xfffffff0;
	x->out_prod = 0x10;
	CHECK(ring_peer_moved(&bo, &seen_prod) && seen_prod == 0x10);
}

static void test_held(void)
{
	struct held h;
	struct iovec in[2], out[2];
	char a[3000], b[3000], got[6000];
	int cnt;

	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	held_init(&h, 5000);
	in[0] = (struct iovec){ a, sizeof(a) };
	CHECK(held_put(&h, in, 1, sizeof(a)) == 3000);
	held_drop(&h, 1000);                      /* head moves: the next put wraps */
	in[0] = (struct iovec){ b, sizeof(b) };
	CHECK(held_put(&h, in, 1, sizeof(b)) == 3000);
	CHECK(h.len == 5000 && held_room(&h) == 0);
	CHECK(held_put(&h, in, 1, 1) == 0);       /* the bound holds */
	size_t n = held_peek(&h, out, &cnt);
	CHECK(n == 5000);
	CHECK(ring_iov_copy_out(out, cnt, got, n) == 5000);
	CHECK(memcmp(got, a, 2000) == 0 && memcmp(got + 2000, b, 3000) == 0);
	held_drop(&h, 5000);
	CHECK(h.buf == NULL && h.cap == 0);       /* empty means no memory */
	held_free(&h);
}

static void test_parse_uint(void)
{
	unsigned long v;

	CHECK(strict_uint("0", 10, &v) && v == 0);
	CHECK(strict_uint("4294967295", 4294967295UL, &v) && v == 4294967295UL);
	CHECK(!strict_uint("4294967296", 4294967295UL, &v));
	CHECK(!strict_uint("", 10, &v));
	CHECK(!strict_uint("-1", 10, &v));
	CHECK(!strict_uint("+1", 10, &v));
	CHECK(!strict_uint(" 1", 10, &v));
	CHECK(!strict_uint("1 ", 10, &v));
	CHECK(!strict_uint("0x10", 100, &v));
	CHECK(!strict_uint("99999999999999999999999", ~0UL, &v));
	CHECK(!strict_uint(NULL, 10, &v));
	CHECK(!strict_uint("9", 8, &v));      /* a digit above max (found by fuzzing) */
	CHECK(strict_uint("8", 8, &v) && v == 8);
	CHECK(!strict_uint("10", 8, &v));
}

static void test_pick_channel(void)
{
	const char *ids[] = { "0", "1", "2", "3", "x" };
	const char *names[] = { "org.c0", "org.a", "org.b", "org.a", "org.z" };
	size_t idx = 99;

	CHECK(store_pick_channel(ids, names, 5, "2", &idx) == STORE_OK && idx == 2);
	CHECK(store_pick_channel(ids, names, 5, "org.b", &idx) == STORE_OK && idx == 2);
	CHECK(store_pick_channel(ids, names, 5, "org.a", &idx) == STORE_AMBIGUOUS);
	CHECK(store_pick_channel(ids, names, 5, "0", &idx) == STORE_INVALID);
	CHECK(store_pick_channel(ids, names, 5, "org.c0", &idx) == STORE_NOT_FOUND);
	CHECK(store_pick_channel(ids, names, 5, "org.z", &idx) == STORE_NOT_FOUND);
	CHECK(store_pick_channel(ids, names, 5, "7", &idx) == STORE_NOT_FOUND);
	CHECK(store_pick_channel(ids, names, 0, "org.a", &idx) == STORE_NOT_FOUND);
	/* A directory named "05" is not device 5: paths we build say "5". */
	{
		const char *odd_ids[] = { "05", "6" };
		const char *odd_names[] = { "org.odd", "org.six" };

		CHECK(store_pick_channel(odd_ids, odd_names, 2, "5", &idx) == STORE_NOT_FOUND);
		CHECK(store_pick_channel(odd_ids, odd_names, 2, "org.odd", &idx) == STORE_NOT_FOUND);
		CHECK(store_pick_channel(odd_ids, odd_names, 2, "05", &idx) == STORE_NOT_FOUND);
		CHECK(store_pick_channel(odd_ids, odd_names, 2, "06", &idx) == STORE_OK && idx == 1);
	}
}

/* A guest flapping for an hour, once a millisecond: LOG_BURST lines, one
 * warning, then one line per LOG_REFILL_MS, each counting what it held
 * back; after LOG_BURST refills of calm, a full budget and a new warning. */
static void test_log_budget(void)
{
	struct log_budget b = { 0 };
	int64_t t = 1000 * 1000;   /* ms */
	unsigned long held, logged = 0, warned = 0, counted = 0, events = 0;
	bool throttling;

	for (long ms = 0; ms < 3600L * 1000; ms++, events++) {
		t = 1000 * 1000 + ms;
		if (log_budget_take(&b, t, &held, &throttling)) {
			logged++;
			counted += held;
		}
		warned += throttling;
	}
	CHECK(warned == 1);
	CHECK(logged == LOG_BURST + 3600 / (LOG_REFILL_MS / 1000) - 1
	      || logged == LOG_BURST + 3600 / (LOG_REFILL_MS / 1000));
	CHECK(counted + logged + b.held_back == events);
	/* calm for less than a full refill: still throttling, no new warning */
	t += (LOG_BURST - 1) * LOG_REFILL_MS;
	for (int i = 0; i < LOG_BURST + 5; i++) {
		log_budget_take(&b, t, &held, &throttling);
		CHECK(!throttling);
	}
	/* calm long enough: a full budget again, and one warning when spent */
	t += LOG_BURST * LOG_REFILL_MS;
	warned = logged = 0;
	for (int i = 0; i < LOG_BURST + 5; i++) {
		logged += log_budget_take(&b, t, &held, &throttling);
		warned += throttling;
	}
	CHECK(logged == LOG_BURST && warned == 1);
}

/* The restart policy xenchan-dm and xenchan-devd share: 0, 250, 500, 1000,
 * 2000 ms, then given up; a failure after a quiet window starts afresh. */
static void test_restart_delay(void)
{
	static const int64_t want[] = { 0, 250, 500, 1000, 2000, -1, -1 };
	struct restarts r = { 0 };
	int64_t now = 1000;

	for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++, now += 10)
		CHECK(restart_delay(&r, now) == want[i]);
	CHECK(r.n == RESTART_BURST);
	CHECK(restart_delay(&r, now + RESTART_WINDOW_MS + 1) == 0 && r.n == 1);
	CHECK(restart_delay(&r, now + RESTART_WINDOW_MS + 2) == 250);
}

/* The proxy command xenchan-dm and xenchan-devd share: $XENCHAN_PROXY over
 * the built-in path, "root" for no --user, the options after --user. */
static void test_proxy_cmd(void)
{
	struct proxy_cmd c;
	char *argv[PROXY_ARGV_HEAD];
	char wait_text[64];

	setenv("XENCHAN_PROXY_USER", "root", 1);
	setenv("XENCHAN_PROXY_OPTS", " -v\t--no-seccomp ", 1);
	unsetenv("XENCHAN_PROXY");
	CHECK(proxy_cmd_init(&c, "/x/proxy"));
	CHECK(proxy_cmd_argv(&c, argv) == 3 && !strcmp(argv[0], "/x/proxy") &&
	      !strcmp(argv[1], "-v") && !strcmp(argv[2], "--no-seccomp"));
	proxy_cmd_free(&c);
	setenv("XENCHAN_PROXY_USER", "nobody", 1);
	setenv("XENCHAN_PROXY", "/y/proxy", 1);
	CHECK(proxy_cmd_init(&c, "/x/proxy"));
	CHECK(proxy_cmd_argv(&c, argv) == 5 && !strcmp(argv[0], "/y/proxy") &&
	      !strcmp(argv[1], "--user") && !strcmp(argv[2], "nobody") &&
	      !strcmp(argv[3], "-v"));
	proxy_cmd_free(&c);
	unsetenv("XENCHAN_PROXY");
	unsetenv("XENCHAN_PROXY_OPTS");
	CHECK(proxy_cmd_init(&c, ""));
	CHECK(proxy_cmd_argv(&c, argv) == 3 && strstr(argv[0], "/xenchan-proxy"));
	proxy_cmd_free(&c);
	unsetenv("XENCHAN_PROXY_USER");
	wait_status_text(9, wait_text, sizeof(wait_text));
	CHECK(!strcmp(wait_text, "was killed by signal 9 (Killed)"));
	wait_status_text(78 << 8, wait_text, sizeof(wait_text));
	CHECK(!strcmp(wait_text, "exited with status 78"));
}

int main(void)
{
	test_restart_delay();
	test_proxy_cmd();
	test_ring_roundtrip();
	test_log_budget();
	test_ring_wrap_iovecs();
	test_ring_hostile_indices();
	test_ring_peer_moved();
	test_held();
	test_parse_uint();
	test_pick_channel();
	printf("units: %d checks, %d failed\n", checks, failures);
	return failures ? 1 : 0;
}
