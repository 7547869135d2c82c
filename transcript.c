/* SPDX-License-Identifier: MIT */
/*
 * transcript.c - the --transcript file (see transcript.h).
 *
 * The proxy runs as root and the file's name is the user's: a planted
 * symbolic link, FIFO, device or second hard link must not make it write
 * guest bytes somewhere else, or hang it.  Hence O_NOFOLLOW (the last
 * component), O_NONBLOCK (a FIFO with no reader fails at once instead of
 * blocking open, with every signal waiting in a signalfd), O_NOCTTY, and
 * fstat: a regular file with exactly one link, or nothing.
 *
 * The file never grows past --transcript-max (0: no bound) through us: data
 * stops KEEP_FOR_MARK bytes short of it, so the mark that says recording
 * stopped always fits.  SIGHUP opens a new file (logrotate renamed the old)
 * and recording starts again there.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"
#include "transcript.h"

#define KEEP_FOR_MARK 256      /* longer than any mark record */

bool transcript_on(const struct proxy *p)
{
	return p->tr.fd >= 0 && !p->tr.full;
}

/* Does a record of len bytes fit under the bound?  Data leaves room for
 * the mark that ends the file. */
static bool fits(const struct proxy *p, size_t len, bool last)
{
	unsigned long long max = p->opt.transcript_max;

	return max == 0 || p->tr.size + len + (last ? 0 : KEEP_FOR_MARK) <= max;
}

/* One record; false (nothing written) if it would pass the bound. */
static bool put_record(struct proxy *p, const char *dir, const struct iovec *iov,
		       int iovcnt, size_t n, bool last)
{
	struct iovec rec[4];
	struct timespec ts;
	char head[64];
	size_t total;
	ssize_t w;
	int k = 0;

	clock_gettime(CLOCK_REALTIME, &ts);
	rec[k].iov_base = head;
	rec[k++].iov_len = snprintf(head, sizeof(head), "@%lld.%06ld %s %zu\n",
				    (long long)ts.tv_sec, ts.tv_nsec / 1000, dir, n);
	total = rec[0].iov_len + n + 1;
	if (!fits(p, total, last))
		return false;
	for (int i = 0; i < iovcnt && n > 0; i++) {
		rec[k] = iov[i];
		if (rec[k].iov_len > n)
			rec[k].iov_len = n;
		n -= rec[k++].iov_len;
	}
	rec[k].iov_base = "\n";
	rec[k++].iov_len = 1;
	w = writev(p->tr.fd, rec, k);
	if (w > 0)
		p->tr.size += w;
	if ((w < 0 || (size_t)w < total) && repeat_log(&p->rep.transcript))
		log_line(&p->log, XTL_WARN, w < 0 ? errno : -1, "write %s%s (%lu failures)",
			 p->opt.transcript, w < 0 ? "" : ": short write", p->rep.transcript.n);
	return true;
}

/* The bound is reached: one mark and one log line, then nothing more. */
static void stop_recording(struct proxy *p)
{
	char text[128];
	struct iovec iov = { text, 0 };

	p->tr.full = true;
	iov.iov_len = snprintf(text, sizeof(text), "--transcript-max %lu reached: this file "
			       "records nothing more", p->opt.transcript_max);
	put_record(p, "mark", &iov, 1, iov.iov_len, true);
	log_line(&p->log, XTL_WARN, -1, "transcript %s holds %llu bytes, at --transcript-max %lu: "
		 "recording stops until SIGHUP reopens it", p->opt.transcript, p->tr.size,
		 p->opt.transcript_max);
}

void transcript_add(struct proxy *p, const char *dir, const struct iovec *iov, int iovcnt,
		    size_t n)
{
	if (!transcript_on(p) || n == 0)
		return;
	if (!put_record(p, dir, iov, iovcnt, n, false))
		stop_recording(p);
}

void transcript_mark(struct proxy *p, const char *fmt, ...)
{
	char text[128];
	struct iovec iov = { text, 0 };
	va_list ap;
	int n;

	if (!transcript_on(p))
		return;
	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	iov.iov_len = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;
	if (!put_record(p, "mark", &iov, 1, iov.iov_len, false))
		stop_recording(p);
}

/* A new descriptor for the file, or -1 with why it is refused. */
static int open_checked(const char *path, struct stat *st, const char **why)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY
		      | O_CLOEXEC, 0600);

	*why = NULL;
	if (fd < 0) {
		*why = errno == ELOOP ? "a symbolic link (refused)"
			: errno == ENXIO ? "a FIFO (refused)" : strerror(errno);
		return -1;
	}
	if (fstat(fd, st) < 0)
		*why = strerror(errno);
	else if (!S_ISREG(st->st_mode))
		*why = "not a regular file (refused)";
	else if (st->st_nlink != 1)
		*why = "a file with other hard links (refused)";
	if (*why) {
		close(fd);
		return -1;
	}
	return fd;
}

int transcript_open(struct proxy *p)
{
	struct stat st;
	const char *why;
	int fd;

	if (p->opt.transcript == NULL)
		return 0;
	fd = open_checked(p->opt.transcript, &st, &why);
	if (fd < 0) {
		if (p->tr.fd >= 0)
			log_line(&p->log, XTL_ERROR, -1, "reopening transcript %s: %s; still "
				 "recording to the file opened before", p->opt.transcript, why);
		else
			log_line(&p->log, XTL_ERROR, -1, "transcript %s: %s", p->opt.transcript,
				 why);
		return EX_CANTCREAT;
	}
	transcript_close(p);
	p->tr = (struct transcript){ .fd = fd, .size = st.st_size };
	if (!fits(p, 0, false))
		stop_recording(p);
	return 0;
}

void transcript_close(struct proxy *p)
{
	if (p->tr.fd >= 0)
		close(p->tr.fd);
	p->tr.fd = -1;
}
