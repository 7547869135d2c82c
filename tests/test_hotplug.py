"""Hotplug and unplug of channels on running guests: --create, --remove, --list."""
import os
import re
import signal
import subprocess

import pytest

from simhost import exchange, recv_exact, send_all, wait_socket_connectable
from test_proxy import be, connected, fe, host_wait_log

MIB = 1 << 20
EX_CANTCREAT, EX_DATAERR = 73, 65


def tree(host, d):
    """Everything xenstore holds for domain d (and its /libxl copy), with perms."""
    env = dict(host.env)
    out = []
    for top in ("/local/domain/%d" % d, "/libxl/%d" % d, "/local/domain/0/backend"):
        r = subprocess.run(["xenstore-ls", "-f", "-p", top], env=env, capture_output=True,
                           text=True, timeout=10)
        out.append(r.stdout)
    return "".join(out)


def create(host, d, name, *extra, **kw):
    sock = os.path.join(host.dir, "%s.sock" % name)
    p = host.proxy(str(d), name, "--create", "--listen", sock, "-v", *extra, **kw)
    return p, sock


@pytest.mark.timeout(120)
def test_hotplug_16mib_then_unplug_leaves_tree_as_before(host):
    d = host.domain_create("hp")
    before = tree(host, d)
    g = host.guest(d, name="org.example.hp")      # the guest's xenbus waits for it
    p, sock = create(host, d, "org.example.hp", "--overflow-data", "keep")
    connected(host, d, 1)
    assert host.xs.read(fe(d, 1) + "/type") == b"xenchan"
    assert host.xs.read(fe(d, 1) + "/name") == b"org.example.hp"
    assert host.xs.read("/libxl/%d/device/console/1/backend" % d) == be(d, 1).encode()
    # Permissions as libxl gives a console: frontend owned by the guest and
    # readable by dom0; backend owned by dom0 and readable by the guest.
    assert host.xs.get_perms(fe(d, 1))[:2] == ["n%d" % d, "r0"]
    assert host.xs.get_perms(be(d, 1))[:2] == ["n0", "r%d" % d]
    assert host.xs.get_perms(fe(d, 1) + "/name")[:2] == ["n0", "r%d" % d]
    with wait_socket_connectable(sock) as c, g.connect() as t:
        r = exchange(c, t, 16 * MIB, timeout=100)
    print("hotplug: 16 MiB each way in %.2fs" % r.seconds)
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert g.wait(10) == 0                       # its device went away
    assert "unplugged" in p.log()
    assert tree(host, d) == before


@pytest.mark.timeout(60)
def test_nine_at_once_distinct_devids_and_a_tenth_refused(host):
    d = host.domain_create("many")
    procs = [create(host, d, "org.example.c%d" % i, check_ready=False)[0] for i in range(9)]
    devids = {}
    for i in range(9):
        devids[int(re.search(r"created /local/domain/%d/device/console/(\d)" % d,
                             wait_log(procs[i], r"created \S+")).group(1))] = i
    assert sorted(devids) == list(range(1, 10))
    for n in range(1, 10):
        assert host.xs.read(fe(d, n) + "/name") == b"org.example.c%d" % devids[n]
    tenth = host.proxy(str(d), "org.example.c9", "--create", "--stdio", check_ready=False)
    assert tenth.wait() == EX_CANTCREAT
    assert "devids 1 to 9 are all in use" in tenth.log()
    for p in procs:
        p.signal(signal.SIGTERM)
    for p in procs:
        assert p.wait(20) == 0
    assert channels(host, d) == []


def channels(host, d):
    """The domain's console devices (none: the directory is gone too)."""
    try:
        return host.xs.ls("/local/domain/%d/device/console" % d)
    except FileNotFoundError:
        return []


def wait_log(proxy, pattern, timeout=10):
    from test_proxy import host_wait_log
    host_wait_log(proxy, pattern, timeout)
    return proxy.log()


@pytest.mark.timeout(60)
def test_existing_name_refused_stale_taken_over(host):
    d = host.domain_create("stale")
    g = host.guest(d, name="org.example.s")
    p1, sock = create(host, d, "org.example.s")
    connected(host, d, 1)
    p2 = host.proxy(str(d), "org.example.s", "--create", "--stdio", check_ready=False)
    assert p2.wait() == EX_CANTCREAT and "exists (devid 1)" in p2.log()
    with wait_socket_connectable(sock) as c, g.connect() as t:
        send_all(t, b"one")
        assert recv_exact(c, 3) == b"one"
    p1.signal(signal.SIGKILL)
    p1.wait()
    os.unlink(sock)
    p3, _ = create(host, d, "org.example.s")
    assert "taking over" in wait_log(p3, "taking over")
    host.wait_xs(be(d, 1) + "/state", "4")
    with wait_socket_connectable(sock) as c, g.connect() as t:
        send_all(t, b"two")
        got = recv_exact(c, 3)
        # p1 killed between write() and publishing out_cons leaves "one" in
        # the ring: the new proxy sends it again (man page, "Delivery").
        if got == b"one":
            got = recv_exact(c, 3)
        assert got == b"two"
    assert g.proc.poll() is None                 # the guest kept its device
    p3.signal(signal.SIGTERM)
    assert p3.wait(15) == 0
    assert g.wait(10) == 0


@pytest.mark.timeout(60)
def test_create_writes_libxls_limit_not_its_own_buffer(host):
    """--buffer binds its process only.  A channel created by a proxy with
    --buffer 0 (keep) and taken over by one with no --buffer: the successor
    holds what the guest writes while no client is there, rather than
    inheriting a bound of 0 from F/limit and discarding it."""
    d = host.domain_create("lim")
    g = host.guest(d, name="org.example.l")
    p1, sock = create(host, d, "org.example.l", "--buffer", "0", "--overflow-data", "keep")
    connected(host, d, 1)
    assert host.xs.read(fe(d, 1) + "/limit") == b"1048576"
    p1.signal(signal.SIGKILL)
    p1.wait()
    os.unlink(sock)
    p2, _ = create(host, d, "org.example.l", "-v")
    host.wait_xs(be(d, 1) + "/state", "4")
    host_wait_log(p2, r"connected: ring-ref")
    data = os.urandom(256 * 1024)
    with g.connect() as t:
        send_all(t, data, 30)        # drains only into p2's held buffer
        host_wait_log(p2, r"guest>dom0 \d+ bytes, to offset %d " % len(data))
        with wait_socket_connectable(sock) as c:
            assert recv_exact(c, len(data), timeout=30) == data
    assert not re.search(r"discarded \d+ bytes", p2.log())
    p2.signal(signal.SIGTERM)
    assert p2.wait(15) == 0
    assert g.wait(10) == 0


@pytest.mark.timeout(60)
def test_list_configured_hotplugged_and_stale(host):
    d = host.domain_create("listed")
    host.channel_add(d, "org.example.conf", connection="socket", path="/run/conf.sock")
    host.guest(d, name="org.example.hot")
    ph, _ = create(host, d, "org.example.hot")
    connected(host, d, 2)
    ps, _ = create(host, d, "org.example.gone")
    host.wait_xs(be(d, 3) + "/xenchan-pid")
    ps.signal(signal.SIGKILL)
    ps.wait()
    r = subprocess.run(host.proxy_argv() + ["--list", "listed"], env=host.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[:4] == ["DEVID", "NAME", "FRONTEND", "BACKEND"]
    rows = {l.split()[1]: l for l in lines[1:]}
    assert re.match(r"1\s+org.example.conf\s+Initialising\s+Initialising\s+socket\s+ioemu\s+-\s+/run/conf.sock",
                    rows["org.example.conf"]), rows
    assert re.match(r"2\s+org.example.hot\s+Connected\s+Connected\s+socket\s+xenchan\s+%d\s" % ph.proc.pid,
                    rows["org.example.hot"]), rows
    assert re.search(r"\(stale\)", rows["org.example.gone"]), rows


@pytest.mark.timeout(60)
def test_remove_signals_live_proxy_or_cleans_up(host):
    d = host.domain_create("rm")
    g = host.guest(d, name="org.example.r")
    p, _ = create(host, d, "org.example.r")
    connected(host, d, 1)
    r = subprocess.run(host.proxy_argv() + ["-v", "--remove", "rm", "org.example.r"],
                       env=host.env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert "unplugged it" in r.stderr
    assert p.wait(10) == 0
    assert g.wait(10) == 0
    # A stale one (its proxy killed) is cleaned up by --remove itself.
    p2, _ = create(host, d, "org.example.k")
    host.wait_xs(be(d, 1) + "/xenchan-pid")
    p2.signal(signal.SIGKILL)
    p2.wait()
    r = subprocess.run(host.proxy_argv() + ["--remove", "rm", "org.example.k"],
                       env=host.env, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert channels(host, d) == []
    # A configured channel is the toolstack's to remove.
    host.channel_add(d, "org.example.conf")
    r = subprocess.run(host.proxy_argv() + ["--remove", "rm", "org.example.conf"],
                       env=host.env, capture_output=True, text=True, timeout=20)
    assert r.returncode == EX_DATAERR and "toolstack" in r.stderr


@pytest.mark.timeout(60)
def test_sigterm_during_unplug(host):
    d = host.domain_create("twice")
    p, _ = create(host, d, "org.example.t")
    host.wait_xs(be(d, 1) + "/state", "2")
    # A guest that took the channel up (published a ring, which cannot be
    # mapped: refused) and then never answers: the unplug waits its 5 s.
    host.xs.write(fe(d, 1) + "/ring-ref", "123456")
    host.xs.write(fe(d, 1) + "/port", "7")
    host.xs.write(fe(d, 1) + "/state", "3")
    host_wait_log(p, r"xengnttab_map_grant_ref ring-ref 123456")
    p.signal(signal.SIGTERM)
    host.wait_xs(be(d, 1) + "/state", "5")
    p.signal(signal.SIGTERM)                     # during the unplug
    assert p.wait(15) == 0
    assert "did not close the channel" in p.log()
    assert channels(host, d) == []
    assert not host.xs.exists("/libxl/%d/device/console/1" % d)


@pytest.mark.timeout(60)
def test_unplug_of_a_channel_no_guest_took_up_does_not_wait(host):
    """Frontend still Initialising with no ring: no driver watches it, so
    nobody would answer Closing; the unplug is at once."""
    d = host.domain_create("nodriver")
    p, _ = create(host, d, "org.example.n")
    host.wait_xs(be(d, 1) + "/state", "2")
    p.signal(signal.SIGTERM)
    assert p.wait(15) == 0
    assert "unplugged (the guest had not taken it up)" in p.log()   # not the 5 s wait
    assert channels(host, d) == []
