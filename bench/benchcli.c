/* SPDX-License-Identifier: MIT */
/*
 * benchcli.c - the socket ends of the benchmarks (bench/run.py).
 *
 *   benchcli sink   ENDPOINT BYTES        read BYTES, print the rate
 *   benchcli source ENDPOINT BYTES SIZE   write BYTES in SIZE-byte writes
 *   benchcli echo   ENDPOINT              send back what comes, until EOF
 *   benchcli ping   ENDPOINT COUNT WARMUP FILE
 *                                         1-byte round trips; each one's
 *                                         nanoseconds to FILE, one a line
 *
 * ENDPOINT is --connect PATH (a Unix stream socket) or --fd N (inherited).
 * Blocking I/O throughout: each tool is one process doing one thing, so the
 * kernel's wakeups are the only ones it adds.  sink and source print, once
 * done, "bytes=N seconds=S MBps=M" (from the first byte to the last) on
 * stdout; every tool says "ready" on stdout once connected.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define BUF_SIZE (1 << 20)

static char buf[BUF_SIZE];

static void die(const char *what)
{
	fprintf(stderr, "benchcli: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t parse_u64(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (!*s || *end || errno) {
		fprintf(stderr, "benchcli: %s: not a number: %s\n", what, s);
		exit(64);
	}
	return v;
}

/* --connect PATH or --fd N; returns the fd and consumes two arguments. */
static int endpoint(char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (!argv[0] || !argv[1]) {
		fprintf(stderr, "benchcli: want --connect PATH or --fd N\n");
		exit(64);
	}
	if (!strcmp(argv[0], "--fd"))
		return (int)parse_u64(argv[1], "--fd");
	if (strcmp(argv[0], "--connect") || strlen(argv[1]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "benchcli: want --connect PATH or --fd N\n");
		exit(64);
	}
	strcpy(a.sun_path, argv[1]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die(argv[1]);
	return fd;
}

static void ready(void)
{
	printf("ready\n");
	fflush(stdout);
}

static void report(uint64_t bytes, uint64_t t0, uint64_t t1)
{
	double s = (double)(t1 - t0) / 1e9;

	printf("bytes=%" PRIu64 " seconds=%.6f MBps=%.2f\n", bytes, s,
	       s > 0 ? (double)bytes / s / 1e6 : 0.0);
	fflush(stdout);
}

static int do_sink(int fd, uint64_t want)
{
	uint64_t got = 0, t0 = 0;
	ssize_t n;

	ready();
	while (got < want) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("read");
		if (n == 0) {
			fprintf(stderr, "benchcli sink: EOF after %" PRIu64 " of %" PRIu64 " bytes\n",
				got, want);
			return 1;
		}
		if (got == 0)
			t0 = now_ns();
		got += (uint64_t)n;
	}
	report(got, t0, now_ns());
	return 0;
}

static int do_source(int fd, uint64_t want, uint64_t size)
{
	uint64_t sent = 0, t0;
	ssize_t n;

	if (size == 0 || size > BUF_SIZE) {
		fprintf(stderr, "benchcli source: SIZE must be 1..%d\n", BUF_SIZE);
		return 64;
	}
	memset(buf, 'y', sizeof(buf));
	ready();
	t0 = now_ns();
	while (sent < want) {
		size_t k = want - sent < size ? want - sent : size;
		n = write(fd, buf, k);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("write");
		sent += (uint64_t)n;
	}
	report(sent, t0, now_ns());
	/* Stay connected: closing could make the peer drop what it has not
	 * relayed yet.  The caller ends us. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int do_echo(int fd)
{
	ssize_t n, w;

	ready();
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0;
		for (ssize_t off = 0; off < n; off += w) {
			w = write(fd, buf + off, (size_t)(n - off));
			if (w < 0 && errno == EINTR)
				w = 0;
			else if (w < 0)
				die("write");
		}
	}
}

static int do_ping(int fd, uint64_t count, uint64_t warmup, const char *path)
{
	uint64_t *rtt = calloc(count ? count : 1, sizeof(*rtt));
	FILE *f;
	char c = 'p';

	if (!rtt)
		die("calloc");
	ready();
	for (uint64_t i = 0; i < warmup + count; i++) {
		uint64_t t0 = now_ns();
		ssize_t n;

		if (write(fd, &c, 1) != 1)
			die("write");
		do
			n = read(fd, &c, 1);
		while (n < 0 && errno == EINTR);
		if (n != 1) {
			fprintf(stderr, "benchcli ping: no echo after %" PRIu64 " round trips\n", i);
			free(rtt);
			return 1;
		}
		if (i >= warmup)
			rtt[i - warmup] = now_ns() - t0;
	}
	f = fopen(path, "w");
	if (!f)
		die(path);
	for (uint64_t i = 0; i < count; i++)
		fprintf(f, "%" PRIu64 "\n", rtt[i]);
	if (fclose(f) != 0)
		die(path);
	free(rtt);
	printf("round_trips=%" PRIu64 "\n", count);
	return 0;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int fd;

	if (argc < 4) {
		fprintf(stderr, "usage: benchcli sink|source|echo|ping "
			"--connect PATH|--fd N [ARGS]\n");
		return 64;
	}
	fd = endpoint(argv + 2);
	if (!strcmp(mode, "sink") && argc == 5)
		return do_sink(fd, parse_u64(argv[4], "BYTES"));
	if (!strcmp(mode, "source") && argc == 6)
		return do_source(fd, parse_u64(argv[4], "BYTES"), parse_u64(argv[5], "SIZE"));
	if (!strcmp(mode, "echo") && argc == 4)
		return do_echo(fd);
	if (!strcmp(mode, "ping") && argc == 7)
		return do_ping(fd, parse_u64(argv[4], "COUNT"), parse_u64(argv[5], "WARMUP"),
			       argv[6]);
	fprintf(stderr, "benchcli: bad arguments for %s\n", mode);
	return 64;
}
