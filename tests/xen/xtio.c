/* SPDX-License-Identifier: MIT */
/*
 * xtio - the byte mover of the real-Xen tier (tests/xen), built statically so
 * the same binary runs in dom0 and in the guest, whose initramfs images hold
 * only busybox.  Busybox's nc has no Unix sockets, and a shell cannot move
 * bytes both ways at once with a deadline; this does.
 *
 *   xtio unix PATH [opts]   connect to a Unix stream socket (retrying until
 *                           the deadline while it is absent or refuses)
 *   xtio tty DEV [opts]     open a tty, raw (cfmakeraw), no controlling tty
 *   xtio fd N [opts]        use an open descriptor (made raw if a tty)
 *   xtio pty [opts] -- CMD  run CMD on a new pty (its controlling tty) and
 *                           talk to it through the master side
 *     -i FILE   send FILE's bytes (all of them, then keep the line open)
 *     -n N      stop once N bytes have been received (default: no limit)
 *     -o FILE   write what is received to FILE (as it arrives)
 *     -u STR    stop once STR has been received ("\n": newline; at most
 *               255 bytes)
 *     -d SECS   wait SECS before sending (pty: let CMD set up its terminal)
 *     -t SECS   deadline for the whole exchange (default 60); exit 124 then
 *   Ends with one line on stderr: "xtio: sent S recvd R secs T end REASON",
 *   REASON being done, eof, timeout or error.  Exit 0 only for done (or for
 *   eof when neither -n nor -u was given).
 *
 *   xtio gen N [FIRST]      N bytes of numbered 8-byte records "%07x\n"
 *                           (record k holds k, from FIRST, hex, default 0),
 *                           then the end record "ZZZZZZZ\n"
 *   xtio check FILE...      the records each FILE holds, as "FIRST-LAST"
 *                           ranges of record numbers (a torn record at either
 *                           end of a file is skipped), "end" where an end
 *                           record is; exit 1 if a file is not records
 *   xtio wtest DEV          open DEV, write one byte, print "ok" or the errno
 *                           name (ENODEV...); exit 0 either way.  DEV "fd:N"
 *                           writes to open descriptor N instead
 *   xtio raw N              make descriptor N (a tty) raw, as for "fd"
 *   xtio echo N BYTES SECS  on open descriptor N (made raw if a tty), write
 *                           back every byte read, until BYTES were echoed
 *                           or SECS passed (exit 124): an agent that answers
 *                           at once
 *   xtio ping PATH COUNT SECS  connect to the Unix socket PATH, then COUNT
 *                           round trips of one byte (after 10 of warm-up),
 *                           each waiting for its echo; prints
 *                           "round_trips N p50_us P p99_us Q max_us M"
 *                           (nearest rank); exit 124 past SECS
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "xtio: %s: %s\n", what, strerror(errno));
	exit(2);
}

static void make_raw(int fd)
{
	struct termios t;
	if (tcgetattr(fd, &t) < 0)
		return;			/* not a tty */
	cfmakeraw(&t);
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &t) < 0)
		die("tcsetattr");
}

static char *slurp(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0)
		die(path);
	buf = malloc(st.st_size + 1);
	if (!buf)
		die("malloc");
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, st.st_size - got);
		if (n <= 0)
			die(path);
		got += n;
	}
	close(fd);
	*len = got;
	return buf;
}

static const char *errname(int e)
{
	switch (e) {
	case ENODEV: return "ENODEV";
	case EIO: return "EIO";
	case ENXIO: return "ENXIO";
	case EAGAIN: return "EAGAIN";
	case EBADF: return "EBADF";
	case ENOENT: return "ENOENT";
	default: return strerror(e);
	}
}

/* "\n" in a -u argument is a newline, so a shell can pass one. */
static char *unescape(const char *s)
{
	char *r = strdup(s), *w = r;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] == 'n') {
			*w++ = '\n';
			s++;
		} else
			*w++ = *s;
	}
	*w = 0;
	return r;
}

static int gen(long n, long first)
{
	char rec[24];
	for (long k = first; k < first + n / 8; k++) {
		snprintf(rec, sizeof(rec), "%07lx\n", k);
		if (fwrite(rec, 1, 8, stdout) != 8)
			return 2;
	}
	fputs("ZZZZZZZ\n", stdout);
	return fflush(stdout) ? 2 : 0;
}

static int is_rec(const char *p)
{
	for (int i = 0; i < 7; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return p[7] == '\n';
}

static int check(int argc, char **argv)
{
	int bad = 0;
	for (int f = 0; f < argc; f++) {
		size_t len, i = 0;
		char *b = slurp(argv[f], &len);
		long first = -1, last = -1;

		printf("%s:", argv[f]);
		/* A torn record at the start: skip to the first record. */
		while (i + 8 <= len && !is_rec(b + i) && memcmp(b + i, "ZZZZZZZ\n", 8)) {
			char *nl = memchr(b + i, '\n', len - i);
			if (!nl || nl - (b + i) >= 8) {
				bad = 1;
				break;
			}
			i = nl - b + 1;
		}
		for (; i + 8 <= len; i += 8) {
			if (!memcmp(b + i, "ZZZZZZZ\n", 8)) {
				if (first >= 0)
					printf(" %ld-%ld", first, last);
				first = -1;
				printf(" end");
				continue;
			}
			if (!is_rec(b + i)) {
				printf(" garbage@%zu", i);
				bad = 1;
				break;
			}
			long k = strtol(b + i, NULL, 16);
			if (first < 0)
				first = last = k;
			else if (k == last + 1)
				last = k;
			else {
				printf(" %ld-%ld", first, last);
				first = last = k;
			}
		}
		if (first >= 0)
			printf(" %ld-%ld", first, last);
		printf("\n");
		free(b);
	}
	return bad;
}

/* Poll fd for events until deadline (now() seconds); 0 past it. */
static int wait_fd(int fd, short events, double deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	double left;

	while ((left = deadline - now()) > 0) {
		int n = poll(&p, 1, (int)(left * 1000) + 1);
		if (n > 0)
			return 1;
		if (n < 0 && errno != EINTR)
			die("poll");
	}
	return 0;
}

/* A connected Unix stream socket to path, retrying while it is absent or
 * refuses; -1 (errno from connect) once deadline (now() seconds) passed. */
static int connect_unix(const char *path, double deadline)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, err;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	for (;;) {
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return fd;
		err = errno;
		close(fd);
		if (now() > deadline) {
			errno = err;
			return -1;
		}
		usleep(50000);
	}
}

static int echo(int fd, long bytes, double secs)
{
	double deadline = now() + secs;
	char buf[4096];
	long done = 0;

	make_raw(fd);
	while (done < bytes) {
		ssize_t n, w;

		if (!wait_fd(fd, POLLIN, deadline)) {
			fprintf(stderr, "xtio: echo: %ld of %ld bytes before the deadline\n", done, bytes);
			return 124;
		}
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0) {
			fprintf(stderr, "xtio: echo: %s after %ld bytes\n", n ? strerror(errno) : "eof", done);
			return 1;
		}
		for (ssize_t off = 0; off < n; off += w) {
			w = write(fd, buf + off, n - off);
			if (w < 0 && errno != EINTR && errno != EAGAIN)
				die("echo: write");
			if (w < 0)
				w = 0;
		}
		done += n;
	}
	printf("echoed %ld\n", done);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

#define PING_WARMUP 10
static int ping(const char *path, long count, double secs)
{
	double deadline = now() + secs;
	uint64_t *rtt = calloc(count > 0 ? count : 1, sizeof(*rtt));
	char c = 'p';
	int fd;

	if (!rtt || count <= 0)
		return 64;
	fd = connect_unix(path, deadline);
	if (fd < 0)
		die(path);
	for (long i = 0; i < PING_WARMUP + count; i++) {
		double t0 = now();
		ssize_t n;

		if (write(fd, &c, 1) != 1)
			die("ping: write");
		if (!wait_fd(fd, POLLIN, deadline)) {
			fprintf(stderr, "xtio: ping: %ld round trips before the deadline\n", i);
			return 124;
		}
		n = read(fd, &c, 1);
		if (n != 1) {
			fprintf(stderr, "xtio: ping: no echo after %ld round trips\n", i);
			return 1;
		}
		if (i >= PING_WARMUP)
			rtt[i - PING_WARMUP] = (uint64_t)((now() - t0) * 1e9);
	}
	qsort(rtt, count, sizeof(*rtt), cmp_u64);
	printf("round_trips %ld p50_us %.0f p99_us %.0f max_us %.0f\n", count,
	       rtt[(count + 1) / 2 - 1] / 1e3, rtt[(99 * count + 99) / 100 - 1] / 1e3,
	       rtt[count - 1] / 1e3);
	return 0;
}

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *until = NULL;
	long limit = -1;
	double deadline_s = 60, delay = 0;
	int fd = -1, ofd = -1, opt;
	pid_t child = -1;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 2)
		goto usage;
	if (!strcmp(argv[1], "gen") && (argc == 3 || argc == 4))
		return gen(atol(argv[2]), argc == 4 ? strtol(argv[3], NULL, 16) : 0);
	if (!strcmp(argv[1], "check") && argc >= 3)
		return check(argc - 2, argv + 2);
	if (!strcmp(argv[1], "echo") && argc == 5)
		return echo(atoi(argv[2]), atol(argv[3]), atof(argv[4]));
	if (!strcmp(argv[1], "ping") && argc == 5)
		return ping(argv[2], atol(argv[3]), atof(argv[4]));
	if (!strcmp(argv[1], "raw") && argc == 3) {
		make_raw(atoi(argv[2]));
		return 0;
	}
	if (!strcmp(argv[1], "wtest") && argc == 3) {
		int t = !strncmp(argv[2], "fd:", 3) ? atoi(argv[2] + 3) :
			open(argv[2], O_RDWR | O_NOCTTY | O_NONBLOCK);
		if (t < 0) {
			printf("open %s\n", errname(errno));
			return 0;
		}
		if (write(t, "x", 1) == 1)
			printf("ok\n");
		else
			printf("%s\n", errname(errno));
		return 0;
	}

	const char *mode = argv[1];
	const char *target = NULL;
	int first = 2;
	if (strcmp(mode, "pty")) {
		if (argc < 3)
			goto usage;
		target = argv[2];
		first = 3;
	}
	optind = first;
	while ((opt = getopt(argc, argv, "+i:n:o:u:d:t:")) != -1) {
		switch (opt) {
		case 'i': in = optarg; break;
		case 'n': limit = atol(optarg); break;
		case 'o': out = optarg; break;
		case 'u': until = unescape(optarg); break;
		case 'd': delay = atof(optarg); break;
		case 't': deadline_s = atof(optarg); break;
		default: goto usage;
		}
	}
	double t0 = now(), deadline = t0 + deadline_s;

	if (!strcmp(mode, "unix")) {
		fd = connect_unix(target, deadline);
		if (fd < 0) {
			fprintf(stderr, "xtio: connect %s: %s\n", target, strerror(errno));
			fprintf(stderr, "xtio: sent 0 recvd 0 secs %.3f end timeout\n", now() - t0);
			return 124;
		}
	} else if (!strcmp(mode, "tty")) {
		fd = open(target, O_RDWR | O_NOCTTY);
		if (fd < 0)
			die(target);
		make_raw(fd);
	} else if (!strcmp(mode, "fd")) {
		fd = atoi(target);
		make_raw(fd);
	} else if (!strcmp(mode, "pty")) {
		if (optind >= argc)
			goto usage;
		struct winsize ws = { .ws_row = 24, .ws_col = 80 };
		child = forkpty(&fd, NULL, NULL, &ws);
		if (child < 0)
			die("forkpty");
		if (child == 0) {
			execvp(argv[optind], argv + optind);
			_exit(127);
		}
	} else
		goto usage;

	if (out) {
		ofd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (ofd < 0)
			die(out);
	}
	size_t inlen = 0, sent = 0;
	char *inbuf = in ? slurp(in, &inlen) : NULL;
	size_t ulen = until ? strlen(until) : 0;
	if (ulen > 255)
		goto usage;
	char tail[256] = "";
	size_t tlen = 0;
	long recvd = 0;
	int rdone = limit == 0;
	const char *reason = NULL;
	double send_at = t0 + delay;

	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	while (!reason) {
		double t = now();
		if (t > deadline) {
			reason = "timeout";
			break;
		}
		struct pollfd p = { .fd = fd, .events = rdone ? 0 : POLLIN };
		int want_out = inbuf && sent < inlen;
		if (want_out && t >= send_at)
			p.events |= POLLOUT;
		double wait = deadline - t;
		if (want_out && t < send_at && send_at - t < wait)
			wait = send_at - t;
		int ms = (int)(wait * 1000) + 1;
		if (ms > 200)
			ms = 200;
		if (poll(&p, 1, ms) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p.revents & POLLOUT) {
			size_t chunk = inlen - sent > 65536 ? 65536 : inlen - sent;
			ssize_t n = write(fd, inbuf + sent, chunk);
			if (n > 0)
				sent += n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				fprintf(stderr, "xtio: write: %s\n", strerror(errno));
				reason = "error";
			}
		}
		if (!rdone && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
			char buf[65536];
			size_t room = sizeof(buf);
			if (limit >= 0 && (long)room > limit - recvd)
				room = limit - recvd;
			ssize_t n = room ? read(fd, buf, room) : 0;
			if (n > 0) {
				if (ofd >= 0 && write(ofd, buf, n) != n)
					die(out);
				recvd += n;
				if (ulen && !rdone) {
					/* the last ulen-1 bytes seen, then this chunk */
					char win[512];
					size_t take = (size_t)n < ulen ? (size_t)n : ulen;
					memcpy(win, tail, tlen);
					memcpy(win + tlen, buf, take);
					if (memmem(win, tlen + take, until, ulen) ||
					    memmem(buf, n, until, ulen))
						rdone = 1;
					if ((size_t)n >= ulen - 1) {
						tlen = ulen - 1;
						memcpy(tail, buf + n - tlen, tlen);
					} else {
						size_t keep = tlen + n > ulen - 1 ? ulen - 1 - n : tlen;
						memmove(tail, tail + tlen - keep, keep);
						memcpy(tail + keep, buf, n);
						tlen = keep + n;
					}
				}
				if (limit >= 0 && recvd >= limit)
					rdone = 1;
			} else if (n == 0 && room) {
				reason = "eof";
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				/* a pty master reads EIO once the child has gone */
				reason = errno == EIO ? "eof" : "error";
				if (errno != EIO)
					fprintf(stderr, "xtio: read: %s\n", strerror(errno));
			}
		}
		if (!reason && rdone && !(inbuf && sent < inlen))
			reason = "done";
	}
	fprintf(stderr, "xtio: sent %zu recvd %ld secs %.3f end %s\n", sent, recvd, now() - t0, reason);
	if (child > 0) {
		kill(child, SIGTERM);
		usleep(100000);
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
	}
	if (!strcmp(reason, "done") || (!strcmp(reason, "eof") && limit < 0 && !until))
		return 0;
	return !strcmp(reason, "timeout") ? 124 : 1;
usage:
	fprintf(stderr, "usage: see the comment at the top of tests/xen/xtio.c\n");
	return 64;
}
