/* SPDX-License-Identifier: MIT */
/*
 * transcript.h - the --transcript file: what crossed the channel both ways,
 * as records, within a bound (--transcript-max), reopened on SIGHUP.
 *
 * A record is "@SECONDS.MICROS DIR LEN\n", then LEN bytes, then "\n".  DIR
 * is "out" (guest to dom0), "in" (dom0 to guest) or "mark": a line of text
 * from the proxy, never channel data (guest bytes discarded, with their
 * count; the bound reached).  The callers hand it the bytes they relayed,
 * from their own copy, never a second read of the shared ring.
 */
#ifndef XENCHAN_TRANSCRIPT_H
#define XENCHAN_TRANSCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

#define TRANSCRIPT_MAX_DEFAULT (64UL << 20)

struct proxy;

struct transcript {
	int fd;                      /* -1: none */
	unsigned long long size;     /* the file's size at open, plus what we appended */
	bool full;                   /* the bound is reached: this file records no more */
};

/* Open --transcript (at setup), or reopen it (SIGHUP, after rotation).  The
 * file must be a regular file with one name, reached without following a
 * symbolic link; anything else is refused with a log line.  A failed reopen
 * keeps the file already open.  Returns 0 or a sysexits code. */
int transcript_open(struct proxy *p);
/* Is a record written now?  (A file is open and its bound not reached.)
 * While not, the relay takes no copy for it. */
bool transcript_on(const struct proxy *p);
/* Record the first n bytes of iov as one record of direction dir. */
void transcript_add(struct proxy *p, const char *dir, const struct iovec *iov, int iovcnt,
		    size_t n);
/* Record a "mark": a line of text, not channel data. */
void transcript_mark(struct proxy *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void transcript_close(struct proxy *p);

#endif
