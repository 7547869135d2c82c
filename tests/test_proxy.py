# SPDX-License-Identifier: MIT
"""xenchan-proxy on the simulated host: relay, delivery, xenbus states, lookup,
restart, domain death.  Every test has a deadline and waits on events."""
import hashlib
import os
import re
import select
import signal
import socket
import stat
import tty

import pytest

from simhost import (exchange, recv_exact, recv_until_eof, send_all, thread_switches,
                     wait_asleep, wait_file, wait_socket_connectable)

MIB = 1 << 20
BIG = 16 * MIB
KEEP = ("--overflow-data", "keep")   # relay tests: lossless whatever the load

# sysexits.h
EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_UNAVAILABLE, EX_CANTCREAT, EX_CONFIG = 64, 65, 66, 69, 73, 78


def be(d, n):
    return "/local/domain/0/backend/console/%d/%d" % (d, n)


def fe(d, n):
    return "/local/domain/%d/device/console/%d" % (d, n)


def setup_channel(host, name="org.example.agent", **kw):
    """A domain with one channel and its guest; (domid, devid, guest)."""
    d = host.domain_create("web%d" % len(os.listdir(host.dir)))
    n = host.channel_add(d, name, **kw)
    g = host.guest(d, n)
    return d, n, g


def connected(host, d, n, timeout=10):
    host.wait_xs(be(d, n) + "/state", "4", timeout=timeout)
    host.wait_xs(fe(d, n) + "/state", "4", timeout=timeout)


def listen_proxy(host, d, n, *extra):
    sock = os.path.join(host.dir, "p.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, *extra)
    return p, sock


def client(sock, timeout=10):
    return wait_socket_connectable(sock, timeout)


# ---- the relay, every endpoint ----------------------------------------------------

@pytest.mark.timeout(120)
def test_listen_16mib_each_way(host):
    d, n, g = setup_channel(host)
    # keep: a reader slowed by a loaded machine must not turn into discards
    p, sock = listen_proxy(host, d, n, *KEEP)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        r = exchange(c, t, BIG, timeout=100)
    print("listen: 16 MiB each way in %.2fs" % r.seconds)
    assert g.stats()["write_wait_ns"] >= 0


@pytest.mark.timeout(120)
def test_connect_16mib_each_way(host):
    d, n, g = setup_channel(host)
    path = os.path.join(host.dir, "agent.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    host.proxy(str(d), "org.example.agent", "--connect", path, *KEEP, check_ready=False)
    srv.settimeout(10)
    c, _ = srv.accept()
    connected(host, d, n)
    with c, g.connect() as t:
        exchange(c, t, BIG, timeout=100)
    srv.close()


@pytest.mark.timeout(60)
def test_connect_server_appears_later(host):
    d, n, g = setup_channel(host)
    path = os.path.join(host.dir, "late.sock")
    p = host.proxy(str(d), str(n), "--connect", path, "-v", check_ready=False)
    connected(host, d, n)
    with g.connect() as t:
        send_all(t, b"early bytes\n")
        # The proxy is retrying: its log says so before the server exists.
        host_wait_log(p, r"connect .*late\.sock.*retrying")
        srv = socket.socket(socket.AF_UNIX)
        srv.bind(path)
        srv.listen(1)
        srv.settimeout(15)      # the backoff is capped at 5 s
        c, _ = srv.accept()
        with c:
            assert recv_exact(c, 12) == b"early bytes\n"
            send_all(c, b"reply\n")
            assert recv_exact(t, 6) == b"reply\n"
        srv.close()


def host_wait_log(proxy, pattern, timeout=10):
    """Wait for a line matching pattern in the proxy's log (inotify on it)."""
    import simhost
    dl = simhost.Deadline(timeout)
    fd = simhost._inotify(os.path.dirname(proxy.log_path), 0x2)   # IN_MODIFY
    try:
        while True:
            if re.search(pattern, proxy.log()):
                return
            if not select.select([fd], [], [], dl.left())[0]:
                raise TimeoutError("no %r in the log:\n%s" % (pattern, proxy.log()))
            os.read(fd, 4096)
    finally:
        os.close(fd)


@pytest.mark.timeout(120)
def test_pty_16mib_each_way_and_tty_node(host):
    d, n, g = setup_channel(host)
    link = os.path.join(host.dir, "console")
    host.proxy(str(d), str(n), "--pty=" + link, *KEEP, check_ready=lambda p: wait_file(link, 10, p.proc))
    connected(host, d, n)
    pts = os.readlink(link)
    assert re.fullmatch(r"/dev/pts/\d+", pts)
    assert host.xs.read(fe(d, n) + "/tty") == pts.encode()
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        with g.connect() as t:
            exchange(fd, t, BIG, timeout=100)
    finally:
        os.close(fd)


@pytest.mark.timeout(120)
def test_stdio_16mib_each_way(host):
    d, n, g = setup_channel(host)
    p = host.proxy(str(d), str(n), "--stdio", *KEEP, check_ready=False)
    connected(host, d, n)
    with g.connect() as t:
        exchange((p.proc.stdout, p.proc.stdin), t, BIG, timeout=100)


@pytest.mark.timeout(120)
def test_toolstack_socket_node(host):
    path = os.path.join(host.dir, "libxl.sock")
    d, n, g = setup_channel(host, connection="socket", path=path)
    host.proxy(str(d), "org.example.agent", *KEEP, check_ready=path)
    connected(host, d, n)
    with client(path) as c, g.connect() as t:
        exchange(c, t, BIG, timeout=100)


@pytest.mark.timeout(30)
def test_toolstack_pty_node(host):
    d, n, g = setup_channel(host, connection="pty")
    host.proxy(str(d), str(n), check_ready=False)
    connected(host, d, n)
    pts = host.wait_xs(fe(d, n) + "/tty").decode()
    fd = os.open(pts, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        with g.connect() as t:
            send_all(t, b"from the guest")
            assert recv_exact(fd, 14) == b"from the guest"
    finally:
        os.close(fd)


# ---- holding bytes ----------------------------------------------------------------

@pytest.mark.timeout(60)
def test_bytes_wait_for_first_client(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    data = os.urandom(512 * 1024)
    with g.connect() as t:
        send_all(t, data, timeout=30)
        # All of it left the guest's ring, into the proxy, before any
        # client exists.
        host_wait_log(p, r"to offset 524288 \(524288 held")
        with client(sock) as c:
            assert recv_exact(c, len(data), timeout=30) == data


def host_wait_stats(g, timeout=20, **want):
    """Wait until guest-sim's stats file holds every key=value of want (inotify)."""
    import simhost
    path = os.path.join(g.host.dir, "guest")

    def check():
        try:
            st = g.stats()
        except OSError:
            return None
        return all(st.get(k) == v for k, v in want.items()) or None
    simhost._wait_dir(path, check, timeout, "%s in guest stats" % want, g.proc)


@pytest.mark.timeout(60)
def test_overflow_discard_keeps_guest_writing(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--buffer", "64K", "-vv")
    connected(host, d, n)
    data = os.urandom(MIB)
    with g.connect() as t:
        send_all(t, data, timeout=30)
        # The guest's writer never waits: all 1 MiB leaves its ring.
        host_wait_log(p, r"to offset 1048576 \(65536 held, 983040 discarded\)")
        with client(sock) as c:
            got = recv_exact(c, 65536, timeout=10)
            assert got == data[:65536]          # the oldest bytes are kept
            send_all(t, b"after")               # and the stream goes on
            assert recv_exact(c, 5) == b"after"
    # Logged at the 1st, 2nd, 4th... occurrence, counting every byte.
    assert re.search(r"discarded \d+ bytes from the guest at stream offset 65536: client absent",
                     p.log()), p.log()
    assert g.stats()["write_wait_ns"] < 10**9
    p.signal(signal.SIGTERM)
    assert p.wait() == 0


@pytest.mark.timeout(60)
def test_overflow_keep_stalls_guest_loses_nothing(host):
    import threading
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--buffer", "64K", "--overflow-data", "keep")
    connected(host, d, n)
    data = os.urandom(MIB)
    with g.connect() as t:
        writer = threading.Thread(target=send_all, args=(t, data, 40))
        writer.start()
        # With no client, the proxy holds 64 KiB, then leaves the ring full.
        host_wait_log(p, r"buffer of 65536 bytes full: the guest waits")
        with client(sock) as c:
            got = recv_exact(c, len(data), timeout=40)
        writer.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert "discarded" not in p.log()
    assert g.stats()["write_waits"] >= 1


@pytest.mark.timeout(60)
def test_no_buffer_keep_relays_through_the_ring(host):
    """--buffer 0 --overflow-data keep: bytes leave out[] only into the
    client's socket.  A client that stops reading fills its socket, then the
    ring; when it reads again the proxy must resume from the ring, with
    nothing held to remind it (no guest event comes: the guest waits)."""
    import threading
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--buffer", "0", "--overflow-data", "keep")
    connected(host, d, n)
    data = os.urandom(MIB)
    with client(sock) as c, g.connect() as t:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        writer = threading.Thread(target=send_all, args=(t, data, 40))
        writer.start()
        host_wait_log(p, r"buffer of 0 bytes full: the guest waits")
        got = recv_exact(c, len(data), timeout=40)
        writer.join()
    assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    assert "discarded" not in p.log()


# ---- clients come and go ------------------------------------------------------------

@pytest.mark.timeout(60)
def test_client_killed_quiescent_then_new_client_exactly_once(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    a, b = os.urandom(100000), os.urandom(100000)
    with g.connect() as t:
        c1 = client(sock)
        send_all(t, a)
        assert recv_exact(c1, len(a)) == a
        c1.close()                      # read everything, then gone
        send_all(t, b)                  # sent while no client is there
        with client(sock) as c2:
            assert recv_exact(c2, len(b)) == b
            # and nothing more: no duplicates
            send_all(t, b"end")
            assert recv_exact(c2, 3) == b"end"


@pytest.mark.timeout(60)
def test_client_dies_with_unread_bytes_at_least_once(host):
    """What the kernel held for a dead client comes again to the next one:
    no gap; duplicates bounded by the proxy's unread copy (64 KiB)."""
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    stream = os.urandom(256 * 1024)
    with g.connect() as t:
        c1 = client(sock)
        first = recv_exact_after(c1, t, stream[:64 * 1024], 1000)
        # Let bytes pile up unread in c1's socket, then kill it.
        send_all(t, stream[64 * 1024:128 * 1024])
        host_wait_log(p, r"to offset 131072 ")
        c1.close()                       # closes with bytes unread: a reset
        send_all(t, stream[128 * 1024:])
        with client(sock) as c2:
            got = recv_exact(c2, 1, timeout=10)
            got += recv_until_quiet(c2, len(stream))
    k = stream.find(got[:4096])
    assert k >= 0, "the next client's bytes are not from the stream"
    assert got == stream[k:], "a gap or reordering after offset %d" % k
    assert k <= len(first), "bytes lost between the two clients"
    assert len(first) - k <= 64 * 1024, "duplicates beyond the documented bound"
    assert "unread" in p.log()


def recv_exact_after(c, t, data, _unused):
    send_all(t, data)
    return recv_exact(c, len(data))


def recv_until_quiet(c, total, timeout=10):
    """Read until total bytes could have arrived or nothing comes for a while."""
    buf = bytearray()
    while True:
        r, _, _ = select.select([c], [], [], 2 if buf else timeout)
        if not r:
            return bytes(buf)
        chunk = c.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk


@pytest.mark.timeout(60)
def test_half_close_client_still_reads(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        send_all(c, b"last words")
        c.shutdown(socket.SHUT_WR)
        assert recv_exact(t, 10) == b"last words"
        send_all(t, b"still listening?")
        assert recv_exact(c, 16) == b"still listening?"


@pytest.mark.timeout(60)
def test_later_clients_wait_their_turn(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    with g.connect() as t:
        c1 = client(sock)
        c2 = client(sock)                # in the listen queue
        send_all(t, b"one")
        assert recv_exact(c1, 3) == b"one"
        assert not select.select([c2], [], [], 0.2)[0]
        c1.close()
        send_all(t, b"two")
        assert recv_exact(c2, 3) == b"two"
        c2.close()


# ---- the guest's side of the protocol -----------------------------------------------

@pytest.mark.timeout(60)
def test_guest_reconnect_mid_stream(host):
    """A module reload (Closing, Closed, Initialising with a new ring): no
    byte the client sent is lost, not even those the guest had left unread
    in the old ring's in[]."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "-v", "--transcript", tr)
    connected(host, d, n)
    with client(sock) as c:
        with g.connect() as t:
            send_all(c, b"before ")
            assert recv_exact(t, 7) == b"before "
        # No tty client in the guest now: it leaves in[] unread.  The
        # transcript says when the bytes are in the ring.
        send_all(c, b"in the old ring ")
        wait_file_contains(tr, b" in 16\nin the old ring \n")
        g.signal(signal.SIGUSR1)          # module reload
        # Closed is passed through in an instant: the proxy's log keeps it.
        host_wait_log(p, r"backend state Closed")
        send_all(c, b"while the guest is away ")
        connected(host, d, n)
        send_all(c, b"after")
        with g.connect() as t2:
            want = b"in the old ring while the guest is away after"
            assert recv_exact(t2, len(want)) == want
            send_all(t2, b"guest again")
            assert recv_exact(c, 11) == b"guest again"
    assert "kept 16 bytes the guest had not read" in p.log()


def wait_file_contains(path, needle, timeout=10):
    import simhost

    def check():
        try:
            with open(path, "rb") as f:
                return needle in f.read() or None
        except OSError:
            return None
    simhost._wait_dir(os.path.dirname(path), check, timeout, "%r in %s" % (needle, path))


@pytest.mark.timeout(60)
def test_guest_shutdown_answered_at_once(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    seen = []
    from xslib import XS
    with XS(host.env["XENSTORED_PATH"]) as w:
        w.watch(be(d, n) + "/state", "s")
        g.signal(signal.SIGTERM)
        assert g.wait(10) == 0
        import time
        deadline = time.monotonic() + 10
        while "6" not in seen:
            v = host.xs.read(be(d, n) + "/state").decode()
            if not seen or seen[-1] != v:
                seen.append(v)
            if v != "6":
                w.wait_watch(deadline)
    assert seen[-2:] == ["5", "6"] or seen == ["6"], seen
    assert "timeout closing device" not in g.log()
    assert p.proc.poll() is None      # still there, waiting for the guest's return


@pytest.mark.timeout(60)
def test_proxy_sigkill_restart_reattaches(host):
    d, n, g = setup_channel(host)
    p1, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    part1, part2 = os.urandom(200000), os.urandom(300000)
    with g.connect() as t:
        with client(sock) as c1:
            send_all(t, part1)
            assert recv_exact(c1, len(part1)) == part1
            p1.signal(signal.SIGKILL)
            p1.wait()
        send_all(t, part2[:1000])                 # lands in the ring, nobody drains
        os.unlink(sock)                           # SIGKILL left the socket file
        p2, _ = listen_proxy(host, d, n)
        host.wait_xs(be(d, n) + "/state", "4")
        with client(sock) as c2:
            send_all(t, part2[1000:], timeout=30)
            got = recv_exact(c2, len(part2), timeout=30)
            while not got.endswith(part2):
                got += recv_exact(c2, 1)
            # A process killed between write() and publishing out_cons
            # leaves those bytes in the ring: the next one sends them
            # again.  At most one ring (2 KiB) of part1, never a gap.
            dup = got[:len(got) - len(part2)]
            assert len(dup) <= 2048 and part1.endswith(dup), len(dup)
            print("bytes repeated after SIGKILL: %d" % len(dup))
            send_all(c2, b"to the guest")
            assert recv_exact(t, 12) == b"to the guest"
    assert host.xs.read(fe(d, n) + "/state") == b"4"
    assert g.proc.poll() is None
    assert "Closed" not in g.log() and "state=6" not in open(
        os.path.join(host.dir, "guest", "%d-%d.stats" % (d, n))).read()


@pytest.mark.timeout(60)
def test_sigterm_restart_loses_nothing(host):
    """SIGTERM with bytes held for a connected client that is slow: the
    client is given them before the proxy exits, and what it could not
    take stays in the ring for the next proxy.  Across the restart the two
    clients receive the guest's stream exactly once."""
    import threading
    d, n, g = setup_channel(host)
    p1, sock = listen_proxy(host, d, n, "--buffer", "64K", "-v", *KEEP)
    connected(host, d, n)
    data = os.urandom(300000)
    with g.connect() as t:
        writer = threading.Thread(target=send_all, args=(t, data, 40))
        with client(sock) as c1:
            c1.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            writer.start()
            host_wait_log(p1, r"buffer of 65536 bytes full: the guest waits")
            p1.signal(signal.SIGTERM)
            host_wait_log(p1, r"stopping once the client has the \d+ bytes held")
            got1 = recv_until_eof(c1, timeout=20)
        assert p1.wait() == 0
        assert 65536 <= len(got1) < len(data)
        p2, _ = listen_proxy(host, d, n, *KEEP)
        with client(sock) as c2:
            got2 = recv_exact(c2, len(data) - len(got1), timeout=30)
            writer.join()
    assert got1 + got2 == data
    assert host.xs.read(fe(d, n) + "/state") == b"4"


@pytest.mark.timeout(60)
def test_stopping_proxy_leaves_new_bytes_in_the_ring(host):
    """Once stopping, the proxy takes nothing more out of out[]: what the
    guest writes while the held bytes drain stays in the ring, where a second
    signal cannot lose it, and the next proxy delivers it.  What a stop may
    lose is only what it held before and the client never read."""
    d, n, g = setup_channel(host)
    p1, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    before, during = os.urandom(200000), os.urandom(8192)
    with g.connect() as t:
        with client(sock) as c1:
            send_all(t, before, 20)
            host_wait_log(p1, r"to offset %d \(\d+ held" % len(before))
            p1.signal(signal.SIGTERM)
            host_wait_log(p1, r"stopping once the client has the \d+ bytes held")
            send_all(t, during, 20)
            # out[] fills and stays full: the draining proxy leaves it alone.
            host_wait_stats(g, writer_waiting=1, out_bytes=len(before) + 2048)
            # The client reads 64 KiB, more than its socket holds: the proxy
            # must refill it from what it holds, looking at the full out[]
            # in each such turn, before it can read the second signal.  It
            # still holds bytes then, so nothing may go straight from out[]
            # to the client.
            got1 = recv_exact(c1, 65536, timeout=10)
            p1.signal(signal.SIGTERM)            # a second signal: stop now
            assert p1.wait(10) == 0
            got1 += recv_until_eof(c1, timeout=10)
        assert before.startswith(got1) and len(got1) < len(before)
        p2, _ = listen_proxy(host, d, n)
        with client(sock) as c2:
            assert recv_exact(c2, len(during), timeout=20) == during
    p2.signal(signal.SIGTERM)
    assert p2.wait(15) == 0


@pytest.mark.timeout(60)
def test_sigterm_leaves_backend_state_and_removes_socket(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert not os.path.exists(sock)
    assert host.xs.read(be(d, n) + "/state") == b"4"
    assert host.xs.read(fe(d, n) + "/state") == b"4"


@pytest.mark.timeout(60)
def test_domain_destroyed_while_client_reads(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "-vv")
    connected(host, d, n)
    data = os.urandom(300000)
    with client(sock) as c:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        with g.connect() as t:
            send_all(t, data, timeout=30)
            host_wait_log(p, r"to offset 300000 ")
        host.domain_destroy(d)
        got = recv_until_eof(c, timeout=20)
    assert got == data
    assert p.wait(10) == 0
    assert not os.path.exists(sock)
    with pytest.raises(FileNotFoundError):
        host.xs.read(be(d, n) + "/state")


# ---- lookup and errors --------------------------------------------------------------

@pytest.mark.timeout(30)
def test_lookup_by_name_and_number(host):
    d = host.domain_create("named")
    host.channel_add(d, "org.example.one")
    n2 = host.channel_add(d, "org.example.two")
    host.guest(d, n2)
    for dom, chan in (("named", "org.example.two"), (str(d), str(n2)), ("named", str(n2))):
        p = host.proxy(dom, chan, "--stdio", check_ready=False)
        connected(host, d, n2)
        host.wait_xs(be(d, n2) + "/xenchan-pid", str(p.proc.pid))
        p.signal(signal.SIGTERM)
        assert p.wait() == 0


@pytest.mark.timeout(30)
def test_missing_and_ambiguous_names(host):
    d = host.domain_create("one")
    host.channel_add(d, "org.example.dup")
    host.channel_add(d, "org.example.dup")
    cases = [
        (("nosuch", "x"), EX_NOINPUT, r"no domain named nosuch \(domains: .*one"),
        (("999", "x"), EX_NOINPUT, r"no domain 999"),
        (("one", "org.example.none"), EX_NOINPUT, r"no channel org.example.none .*org.example.dup"),
        (("one", "org.example.dup"), EX_NOINPUT, r"more than one channel org.example.dup"),
        (("one", "7"), EX_NOINPUT, r"no channel 7"),
        (("one", "0"), EX_NOINPUT, r"primary console"),
    ]
    for args, code, pattern in cases:
        p = host.proxy(*args, "--stdio", check_ready=False)
        assert p.wait() == code, args
        assert re.search(pattern, p.log()), (args, p.log())
    # two domains with one name
    d2 = host.domain_create("two")
    host.xs.write("/local/domain/%d/name" % d2, "one")
    p = host.proxy("one", "1", "--stdio", check_ready=False)
    assert p.wait() == EX_NOINPUT and "2 domains are named one" in p.log()


@pytest.mark.timeout(30)
def test_usage_errors(host):
    for args in ([], ["1"], ["-l", "a", "-c", "b", "1", "2"], ["--buffer", "lots", "1", "2"],
                 ["--overflow-data", "maybe", "1", "2"], ["--mode", "999", "1", "2"],
                 ["--transcript-max", "lots", "1", "2"], ["--bogus", "1", "2"]):
        p = host.proxy(*args, check_ready=False)
        assert p.wait() == EX_USAGE, args
        assert "usage:" in p.log()


@pytest.mark.timeout(30)
def test_no_xenstore(host):
    env = dict(host.env, XENSTORED_PATH=os.path.join(host.dir, "nothing.sock"))
    p = host.proxy("1", "1", "--stdio", check_ready=False, env=env)
    assert p.wait() == EX_UNAVAILABLE
    assert "xs_open" in p.log()


@pytest.mark.timeout(30)
def test_stale_socket_replaced_live_refused(host):
    d, n, g = setup_channel(host)
    sock = os.path.join(host.dir, "p.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(sock)
    stale.close()                               # a socket file nobody listens on
    p = host.proxy(str(d), str(n), "--listen", sock)
    connected(host, d, n)
    p2 = host.proxy(str(d), str(n), "--listen", sock, check_ready=False)
    assert p2.wait() == EX_CANTCREAT
    assert "live socket" in p2.log()
    with client(sock) as c, g.connect() as t:   # the first one still serves
        send_all(t, b"ok")
        assert recv_exact(c, 2) == b"ok"
    assert p.proc.poll() is None
    regular = os.path.join(host.dir, "file")
    open(regular, "w").close()
    p3 = host.proxy(str(d), str(n), "--listen", regular, check_ready=False)
    assert p3.wait() == EX_CANTCREAT and os.path.isfile(regular)


@pytest.mark.timeout(30)
def test_socket_mode(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--mode", "0660")
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o660


@pytest.mark.timeout(30)
def test_transcript(host):
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        send_all(t, b"hello dom0")
        assert recv_exact(c, 10) == b"hello dom0"
        send_all(c, b"hello guest")
        assert recv_exact(t, 11) == b"hello guest"
    p.signal(signal.SIGTERM)
    p.wait()
    body = open(tr, "rb").read()
    assert re.search(rb"@\d+\.\d{6} out 10\nhello dom0\n", body), body
    assert re.search(rb"@\d+\.\d{6} in 11\nhello guest\n", body), body


@pytest.mark.timeout(30)
@pytest.mark.skipif(bool(os.environ.get("XENCHAN_WRAPPER")),
                    reason="a wrapper such as valgrind has wakeups of its own")
def test_quiet_proxy_makes_no_wakeups(host):
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        send_all(t, b"x")
        assert recv_exact(c, 1) == b"x"

        # Every thread of the proxy back asleep after the transfer; then
        # two quiet seconds are the measurement.
        before = wait_asleep(p.proc.pid)
        select.select([], [], [], 2.0)
        after = thread_switches(p.proc.pid)
    assert after == before, (before, after)


@pytest.mark.timeout(60)
def test_pty_output_waits_while_nobody_has_it_open(host):
    """Guest output written while no one has the pty open is not lost: the
    proxy holds the slave open, so the pty buffers what fits and the proxy
    holds the rest."""
    d, n, g = setup_channel(host)
    link = os.path.join(host.dir, "console")
    p = host.proxy(str(d), str(n), "--pty=" + link, "-vv",
                   check_ready=lambda p: wait_file(link, 10, p.proc))
    connected(host, d, n)
    data = os.urandom(200 * 1024)
    with g.connect() as t:
        send_all(t, data, timeout=30)
        host_wait_log(p, r"to offset 204800 ")
    held = int(re.findall(r"to offset 204800 \((\d+) held", p.log())[-1])
    print("pty: %d bytes in the pty's own buffer, %d held by the proxy" % (len(data) - held, held))
    assert 0 < held < len(data)
    fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
    try:
        # The proxy made the line raw.  (tty.setraw would flush with
        # TCSAFLUSH, throwing away what the pty buffered: a reader's
        # mistake, not a loss in the proxy.)
        assert recv_exact(fd, len(data), timeout=20) == data
    finally:
        os.close(fd)


@pytest.mark.timeout(30)
def test_sighup_reopens_transcript(host):
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr, "-v")
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        send_all(t, b"first")
        assert recv_exact(c, 5) == b"first"
        os.rename(tr, tr + ".1")                 # log rotation
        p.signal(signal.SIGHUP)
        wait_file(tr, 10, p.proc)
        send_all(t, b"second")
        assert recv_exact(c, 6) == b"second"
    wait_file_contains(tr, b" out 6\nsecond\n")
    assert b"first" in open(tr + ".1", "rb").read()
    assert b"first" not in open(tr, "rb").read()
    assert p.proc.poll() is None
