# SPDX-License-Identifier: MIT
"""--transcript as root on a shared dom0: never through a planted symbolic
link, FIFO or second hard link; a failed SIGHUP reopen keeps the old file;
bounded by --transcript-max; discarded guest bytes are a mark with their
count, never data; and what it records is what was relayed, however the
guest rewrites the shared page meanwhile."""
import os
import re
import signal
import subprocess
import sys

import pytest

import simhost
from simhost import ProcessExited, recv_exact, send_all, wait_socket_listening
from test_proxy import (EX_CANTCREAT, client, connected, fe, host_wait_log, listen_proxy,
                        setup_channel, wait_file_contains)

RECORD = re.compile(rb"@\d+\.\d{6} (out|in|mark) (\d+)\n")
RING_IN, RING_OUT = 0, 1024                 # offsets of in[] and out[] in the page


def records(path):
    """The transcript at path as [(dir, bytes)]; AssertionError if a record
    is malformed."""
    with open(path, "rb") as f:
        body = f.read()
    out, i = [], 0
    while i < len(body):
        m = RECORD.match(body, i)
        assert m, "not a record at offset %d: %r" % (i, body[i:i + 80])
        n, start = int(m.group(2)), m.end()
        assert body[start + n:start + n + 1] == b"\n", "record at %d: no newline after %d bytes" % (i, n)
        out.append((m.group(1).decode(), body[start:start + n]))
        i = start + n + 1
    return out


def joined(recs, direction):
    return b"".join(data for d, data in recs if d == direction)


def wait_recorded(path, needle, timeout=10):
    wait_file_contains(path, needle, timeout)


# ---- opening the file (item 2) -------------------------------------------------------

@pytest.mark.timeout(60)
def test_transcript_through_a_symlink_is_refused(host):
    """A symbolic link planted at the transcript's name must not make root
    append guest bytes to the file it points at."""
    d, n, g = setup_channel(host)
    victim = os.path.join(host.dir, "victim")
    with open(victim, "wb") as f:
        f.write(b"root's own file\n")
    os.chmod(victim, 0o600)
    tr = os.path.join(host.dir, "transcript")
    os.symlink(victim, tr)
    sock = os.path.join(host.dir, "p.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, "--transcript", tr, check_ready=False)
    try:
        wait_socket_listening(sock, 10, p.proc)
    except ProcessExited:
        pass
    else:   # it serves: show where the guest's bytes went
        connected(host, d, n)
        with client(sock) as c, g.connect() as t:
            send_all(t, b"guest-chosen bytes\n")
            recv_exact(c, 19)
        wait_recorded(victim, b"guest-chosen bytes")
        pytest.fail("the proxy followed the link: %s now holds %r" % (victim, open(victim, "rb").read()))
    assert p.wait() == EX_CANTCREAT
    assert re.search(r"transcript %s: a symbolic link \(refused\)" % re.escape(tr), p.log()), p.log()
    assert open(victim, "rb").read() == b"root's own file\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("reader", [False, True])
def test_transcript_fifo_is_refused_at_once(host, reader):
    """A FIFO at the transcript's name: with no reader, open() used to block
    before the endpoint existed, with every signal waiting in the signalfd
    (deaf to SIGTERM); with a reader, guest bytes went to whoever read."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    os.mkfifo(tr, 0o600)
    rfd = os.open(tr, os.O_RDONLY | os.O_NONBLOCK) if reader else None
    try:
        p = host.proxy(str(d), str(n), "--stdio", "--transcript", tr, check_ready=False)
        try:
            rc = p.wait(10)
        except TimeoutError:
            p.signal(signal.SIGTERM)
            try:
                rc = p.wait(5)
            except TimeoutError:
                rc = "still running 5 s after SIGTERM"
            pytest.fail("a FIFO transcript (reader: %s): the proxy did not refuse it; %s"
                        % (reader, rc))
        assert rc == EX_CANTCREAT, p.log()
        want = "not a regular file" if reader else "a FIFO"
        assert re.search(r"transcript %s: %s \(refused\)" % (re.escape(tr), want), p.log()), p.log()
    finally:
        if rfd is not None:
            os.close(rfd)


@pytest.mark.timeout(60)
def test_transcript_with_a_second_hard_link_is_refused(host):
    d, n, g = setup_channel(host)
    other = os.path.join(host.dir, "other")
    open(other, "wb").close()
    tr = os.path.join(host.dir, "transcript")
    os.link(other, tr)
    p = host.proxy(str(d), str(n), "--stdio", "--transcript", tr, check_ready=False)
    assert p.wait(10) == EX_CANTCREAT
    assert "other hard links (refused)" in p.log()


@pytest.mark.timeout(60)
def test_failed_sighup_reopen_keeps_the_old_file(host):
    """Rotation, but a symbolic link now stands at the name: the reopen is
    refused with a log line, and recording goes on in the file already open
    (never through the link, never silently stopped)."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    victim = os.path.join(host.dir, "victim")
    open(victim, "wb").close()
    p, sock = listen_proxy(host, d, n, "--transcript", tr)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        send_all(t, b"first\n")
        assert recv_exact(c, 6) == b"first\n"
        os.rename(tr, tr + ".1")
        os.symlink(victim, tr)
        p.signal(signal.SIGHUP)
        send_all(t, b"second\n")
        assert recv_exact(c, 7) == b"second\n"

        def where():
            for path in (tr + ".1", victim):
                if b"second" in open(path, "rb").read():
                    return path
        got = simhost.wait_dir(host.dir, where, 10, "'second' recorded somewhere")
        assert got == tr + ".1", "recorded in %s (through the link)" % got
        host_wait_log(p, r"reopening transcript %s: a symbolic link \(refused\); still "
                      r"recording to the file opened before" % re.escape(tr))
    assert open(victim, "rb").read() == b""
    assert joined(records(tr + ".1"), "out") == b"first\nsecond\n"


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root to drop from")
def test_sighup_reopen_as_user_keeps_recording(host):
    """Under --user the reopen of a file in root's directory fails: the old
    file goes on recording (it used to be closed first, and recording
    stopped without a word)."""
    os.chmod(host.dir, 0o755)
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr, "--user", "nobody")
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        os.rename(tr, tr + ".1")
        p.signal(signal.SIGHUP)
        host_wait_log(p, r"reopening transcript %s: Permission denied; still recording" % re.escape(tr))
        send_all(t, b"after rotation\n")
        assert recv_exact(c, 15) == b"after rotation\n"
    wait_recorded(tr + ".1", b"after rotation\n")
    assert not os.path.exists(tr)


# ---- the bound and the marks (item 3) -----------------------------------------------

@pytest.mark.timeout(90)
def test_transcript_stops_at_its_bound_with_a_mark(host):
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr, "--transcript-max", "64K", "-v")
    connected(host, d, n)
    data = os.urandom(1 << 20)
    with client(sock) as c, g.connect() as t:
        send_all(t, data, timeout=30)
        assert recv_exact(c, len(data), timeout=30) == data
        host_wait_log(p, r"recording stops")
        size = os.path.getsize(tr)
        assert 60000 < size <= 65536, size
        recs = records(tr)
        assert recs[-1] == ("mark", b"--transcript-max 65536 reached: this file records nothing more")
        assert [d for d, _ in recs[:-1]] == ["out"] * (len(recs) - 1)
        assert data.startswith(joined(recs, "out"))
        assert len(re.findall(r"recording stops", p.log())) == 1
        # Rotation: a new file records again, within the same bound.
        os.rename(tr, tr + ".1")
        p.signal(signal.SIGHUP)
        simhost.wait_file(tr, 10, p.proc)
        send_all(t, b"rotated")
        assert recv_exact(c, 7) == b"rotated"
        wait_recorded(tr, b"rotated")
    assert joined(records(tr), "out") == b"rotated"
    assert os.path.getsize(tr + ".1") == size


@pytest.mark.timeout(60)
def test_discarded_bytes_are_a_mark_not_data(host):
    """No client and a 4 KiB buffer: what the guest sends beyond it is
    discarded.  The transcript records exactly what the next client gets,
    and the rest as marks counting it."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr, "--buffer", "4K", "-vv")
    connected(host, d, n)
    total = 100000
    data = os.urandom(total)
    with g.connect() as t:
        send_all(t, data)
        host_wait_log(p, r"to offset %d " % total)
    with client(sock) as c:
        got = recv_exact(c, 4096)
    assert got == data[:4096]
    recs = records(tr)
    assert joined(recs, "out") == got
    marks = [m for d, m in recs if d == "mark"]
    counts = [int(re.fullmatch(rb"discarded (\d+) guest bytes at stream offset \d+", m).group(1))
              for m in marks]
    assert sum(counts) == total - 4096, marks


# ---- recording what was relayed (item 4) --------------------------------------------

SCRIBBLER = r"""
import mmap, os, sys
f = open(sys.argv[1], "r+b")
page = mmap.mmap(f.fileno(), 4096)
junk = [bytes([b]) * 1024 for b in b"#@&*"]
os.write(1, b"ready\n")
i = 0
while True:
    page[%d:%d + 1024] = junk[i & 3]
    page[%d:%d + 2048] = junk[i & 3] + junk[(i + 1) & 3]
    i += 1
""" % (RING_IN, RING_IN, RING_OUT, RING_OUT)


@pytest.mark.timeout(120)
def test_transcript_records_what_was_relayed_not_the_page(host):
    """The guest rewrites in[] and out[] all the time, so every read of the
    page may differ from the last.  What the client got and what it sent
    must be what the transcript says, byte for byte (it used to read the
    page a second time for the record)."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr, "--overflow-data", "keep")
    connected(host, d, n)
    ref = int(host.xs.read(fe(d, n) + "/ring-ref"))
    grant = os.path.join(host.dir, "grant", str(d), "%d.0" % ref)
    scribbler = host.spawn([sys.executable, "-c", SCRIBBLER, grant], stdout=subprocess.PIPE)
    assert simhost.recv_exact(scribbler.stdout, 6) == b"ready\n"
    out_n, in_n = 4 << 20, 1 << 20
    with client(sock) as c, g.connect() as t:
        import threading
        sender = threading.Thread(target=send_all, args=(t, os.urandom(out_n), 60))
        sender.start()
        got = recv_exact(c, out_n, timeout=60)
        sender.join()
        sent = os.urandom(in_n)
        reader = threading.Thread(target=recv_exact, args=(t, in_n, 60))
        reader.start()
        send_all(c, sent, timeout=60)
        reader.join()
    scribbler.kill()
    scribbler.wait()
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    recs = records(tr)
    out, inn = joined(recs, "out"), joined(recs, "in")
    assert len(out) == out_n and len(inn) == in_n
    forged_out = sum(a != b for a, b in zip(out, got))
    forged_in = sum(a != b for a, b in zip(inn, sent))
    assert (forged_out, forged_in) == (0, 0), \
        "the transcript differs from what was relayed in %d bytes out, %d in" % (forged_out, forged_in)
