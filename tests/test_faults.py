# SPDX-License-Identifier: MIT
"""Client faults: killed clients, slow and silent readers, reconnect storms.
What all clients received, in order and with the documented at-least-once
overlap removed, must be exactly what the guest sent; the proxy's memory must
come back down once its clients catch up."""
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from simhost import recv_exact, send_all, wait_socket_connectable
from test_proxy import connected, host_wait_log, listen_proxy, setup_channel

OVERLAP_MAX = 64 * 1024     # the man page's bound on bytes repeated after a death


def stitch(stream, pieces):
    """Check that pieces (what successive clients read) cover stream in
    order: each piece starts at or before where the previous one ended (no
    gap), by at most OVERLAP_MAX (bounded duplicates), and matches the stream
    byte for byte.  Returns (bytes covered, bytes repeated)."""
    end = repeated = 0
    for piece in pieces:
        if not piece:
            continue
        probe = piece[:min(len(piece), 4096)]
        lo = max(0, end - OVERLAP_MAX)
        k = stream.find(probe, lo, end + len(probe))
        assert k >= 0 and k <= end, "gap or foreign bytes: piece at %d, stream at %d; pieces %s" % (
            k, end, [(len(x), stream.find(x[:64])) for x in pieces])
        assert stream[k:k + len(piece)] == piece, "piece at %d differs from the stream" % k
        repeated += end - k
        end = k + len(piece)
    return end, repeated


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def reader_script(nbytes, delay_ms=0):
    """A client process that passes what it reads (slowly, with delay_ms per
    byte) to stdout.  It peeks, writes, and only then takes the bytes off the
    socket, so a SIGKILL at any point loses nothing on its side: what it had
    not passed on is still unread in the socket."""
    return [sys.executable, "-c", """
import os, socket, sys, time
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
left, delay = int(sys.argv[2]), float(sys.argv[3]) / 1000
while left > 0:
    b = s.recv(1 if delay else min(left, 65536), socket.MSG_PEEK)
    if not b: break
    os.write(1, b)
    s.recv(len(b))
    left -= len(b)
    if delay: time.sleep(delay)
""", "SOCK", str(nbytes), str(delay_ms)]


def spawn_reader(host, sock, nbytes, delay_ms=0):
    argv = reader_script(nbytes, delay_ms)
    argv[3] = sock
    return host.spawn(argv, stdout=subprocess.PIPE)


def read_available(proc, want, timeout=10):
    """Read from a reader process's stdout until want bytes or the deadline."""
    buf = bytearray()
    fd = proc.stdout.fileno()
    end = time.monotonic() + timeout
    while len(buf) < want:
        left = end - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            break
        chunk = os.read(fd, want - len(buf))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def guest_writer(t, stream):
    th = threading.Thread(target=send_all, args=(t, stream, 240), daemon=True)
    th.start()
    return th


@pytest.mark.timeout(300)
def test_clients_killed_mid_transfer(host):
    d, n, g = setup_channel(host)
    # keep: nothing may be dropped at the bound, so any loss is a fault's
    p, sock = listen_proxy(host, d, n, "-v", "--overflow-data", "keep")
    connected(host, d, n)
    stream = os.urandom(3 << 20)
    pieces = []
    with g.connect() as t:
        writer = guest_writer(t, stream)
        for _ in range(5):
            r = spawn_reader(host, sock, len(stream))
            piece = read_available(r, 300000)     # part of it, then...
            r.send_signal(signal.SIGKILL)         # ...killed mid-transfer
            r.wait()
            pieces.append(piece + r.stdout.read())  # and what it passed on before
            r.stdout.close()
        with wait_socket_connectable(sock) as c:
            covered, repeated = stitch(stream, pieces)
            last = recv_exact(c, len(stream) - covered, timeout=60) if covered < len(stream) else b""
            pieces.append(last)
            # the replayed overlap may make the last piece longer: read what else arrived
            while stitch(stream, pieces)[0] < len(stream):   # the replayed overlap
                pieces[-1] += recv_exact(c, len(stream) - stitch(stream, pieces)[0])
        writer.join()
    covered, repeated = stitch(stream, pieces)
    assert covered == len(stream)
    print("5 clients killed: %d bytes repeated in all" % repeated)


@pytest.mark.timeout(120)
def test_slow_reader_one_byte_per_ms(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    stream = os.urandom(256 * 1024)
    r = spawn_reader(host, sock, 1500, delay_ms=1)
    with g.connect() as t:
        send_all(t, stream, timeout=30)          # the guest never waits on the slow reader
    slow = read_available(r, 1500, timeout=30)
    r.wait()
    assert slow == stream[:1500]
    with wait_socket_connectable(sock) as c:
        rest = b""
        covered, _ = stitch(stream, [slow])
        rest = recv_exact(c, len(stream) - covered, timeout=30)
        while stitch(stream, [slow, rest])[0] < len(stream):
            rest += recv_exact(c, len(stream) - stitch(stream, [slow, rest])[0])
    assert stitch(stream, [slow, rest])[0] == len(stream)


@pytest.mark.timeout(120)
def test_reconnect_storm(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--overflow-data", "keep")
    connected(host, d, n)
    stream = os.urandom(1 << 20)
    pieces = []
    start = time.monotonic()
    with g.connect() as t:
        writer = guest_writer(t, stream)
        for i in range(2000):
            if time.monotonic() - start > 40:
                break
            c = socket.socket(socket.AF_UNIX)
            c.connect(sock)
            if i % 50 == 0:
                c.settimeout(5)
                try:
                    pieces.append(c.recv(4096))  # some read a little
                except socket.timeout:
                    pieces.append(b"")
            c.close()
        storm = i + 1
        with wait_socket_connectable(sock) as c:
            covered, _ = stitch(stream, pieces)
            pieces.append(recv_exact(c, len(stream) - covered, timeout=60))
            while stitch(stream, pieces)[0] < len(stream):   # the replayed overlap
                pieces[-1] += recv_exact(c, len(stream) - stitch(stream, pieces)[0])
        writer.join()
    covered, repeated = stitch(stream, pieces)
    assert covered == len(stream)
    assert p.proc.poll() is None
    print("reconnect storm: %d clients, %d bytes repeated" % (storm, repeated))


@pytest.mark.skipif(bool(os.environ.get("XENCHAN_WRAPPER")),
                    reason="under a wrapper (valgrind) the RSS is the wrapper's")
@pytest.mark.timeout(120)
def test_client_that_never_reads_and_memory_comes_back(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    base = rss_kib(p.proc.pid)
    stream = os.urandom(3 << 20)
    silent = socket.socket(socket.AF_UNIX)
    silent.connect(sock)
    with g.connect() as t:
        send_all(t, stream, timeout=60)       # the guest is never stalled by it
        host_wait_log(p, r"to offset %d " % len(stream))
    peak = rss_kib(p.proc.pid)
    assert "discarded" in p.log()             # 1 MiB bound: the rest is dropped, logged
    # Everything before the first discarded byte is kept, and arrives once
    # it reads; then the proxy's buffer empties and its memory is freed.
    kept = int(re.search(r"discarded \d+ bytes from the guest at stream offset (\d+)",
                         p.log()).group(1))
    assert recv_exact(silent, kept, timeout=30) == stream[:kept]
    silent.close()
    host_wait_log(p, r"client gone \(0 bytes held")
    after = rss_kib(p.proc.pid)
    print("RSS KiB: start %d, holding %d, after %d" % (base, peak, after))
    if "asan" in host.build:
        return      # ASan's quarantine keeps freed memory: nothing to measure
    assert base < 8 * 1024, "one idle instance: %d KiB" % base
    assert peak - base < 4 * 1024
    assert after - base < 1024 + 64


@pytest.mark.timeout(60)
def test_failed_connected_write_is_retried(host):
    """xenstore refuses the backend's Connected three times (as a quota
    would): the frontend waits for it and writes nothing more, so the proxy
    must try again by itself, with a capped backoff, and then serve."""
    from test_proxy import be
    d = host.domain_create("quota")
    n = host.channel_add(d, "org.example.q")
    p, sock = listen_proxy(host, d, n, "-v")
    host.wait_xs(be(d, n) + "/state", "2")
    host.xs.control("fail-write", be(d, n) + "/state", "3")
    g = host.guest(d, n)
    connected(host, d, n, timeout=20)
    log = p.log()
    # logged at the 1st and 2nd failure (then the 4th, 8th...: no flood)
    assert len(re.findall(r"state = Connected \(retrying in \d+ ms", log)) == 2, log
    assert "retrying in 50 ms" in log and "retrying in 100 ms" in log, log
    with wait_socket_connectable(sock) as c, g.connect() as t:
        send_all(t, b"after the retries")
        assert recv_exact(c, 17) == b"after the retries"
        send_all(c, b"and back")
        assert recv_exact(t, 8) == b"and back"


@pytest.mark.timeout(60)
def test_xenstored_dying_does_not_stop_the_relay(host):
    """The ring and the event channel do not need xenstore: with xenstored
    gone the proxy goes on relaying, and neither exits nor spins."""
    from test_hostile import cpu_seconds
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-v")
    connected(host, d, n)
    with open(os.path.join(host.dir, "xenstored.pid")) as f:
        xsd = int(f.read())
    with wait_socket_connectable(sock) as c, g.connect() as t:
        before = cpu_seconds(p.proc.pid)
        os.kill(xsd, signal.SIGKILL)
        for i in range(20):
            msg = b"message %02d after xenstored died " % i
            send_all(t, msg)
            assert recv_exact(c, len(msg)) == msg
            send_all(c, msg.upper())
            assert recv_exact(t, len(msg)) == msg.upper()
        # Then a second of silence on the client (nothing may arrive), over
        # which an idle proxy uses no CPU: one spinning on a dead xenstore
        # connection would use most of it.
        idle = cpu_seconds(p.proc.pid)
        assert select.select([c], [], [], 1.0)[0] == []
        assert p.proc.poll() is None, p.log()
        assert cpu_seconds(p.proc.pid) - idle < 0.3
        assert cpu_seconds(p.proc.pid) - before < 2.0


@pytest.mark.timeout(120)
@pytest.mark.skipif(bool(os.environ.get("XENCHAN_WRAPPER")), reason="runs the proxy under strace")
def test_held_bytes_go_out_one_kernel_buffer_per_write(host, monkeypatch):
    """A Unix stream write that spans two kernel buffers can lose the
    client's ECONNRESET (and with it the replay of its unread bytes) when the
    client closes between them; so held bytes are written at most half the
    send buffer less 64 bytes at a time.  Watched with strace."""
    import shutil
    if not shutil.which("strace"):
        pytest.skip("strace is not installed")
    trace = os.path.join(host.dir, "writev.trace")
    monkeypatch.setenv("XENCHAN_WRAPPER", "strace -f -qq -e trace=writev -e signal=none -o " + trace)
    monkeypatch.setenv("XENCHAN_NO_SECCOMP", "1")
    # LeakSanitizer cannot run under ptrace; the other runs check leaks.
    monkeypatch.setitem(host.env, "ASAN_OPTIONS", "detect_leaks=0")
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    stream = os.urandom(200 * 1024)
    with g.connect() as t, wait_socket_connectable(sock) as c:
        host_wait_log(p, r"client connected")
        send_all(t, stream, timeout=60)
        host_wait_log(p, r"to offset %d " % len(stream), timeout=60)  # mostly held now
        assert recv_exact(c, len(stream), timeout=60) == stream
    host.domain_destroy(d)       # the proxy exits by itself (strace keeps SIGTERM)
    assert p.wait(30) == 0
    sizes = [int(m) for m in re.findall(r"^\d+\s+writev\(.*\)\s+=\s+(\d+)$", open(trace).read(), re.M)]
    assert sum(sizes) >= len(stream), "strace saw %d bytes written" % sum(sizes)
    assert max(sizes) <= 32 * 1024 // 2 - 64, "a write of %d bytes" % max(sizes)
