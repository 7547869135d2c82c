# SPDX-License-Identifier: MIT
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


# ---- who serves a channel: pid and start time (pid reuse) ------------------------------

DECOY = ("import signal, sys\n"
         "signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])\n"
         "print('ready', flush=True)\n"
         "sys.stdin.read()\n")


def start_time(pid):
    """Field 22 of /proc/PID/stat: clock ticks after boot."""
    with open("/proc/%d/stat" % pid) as f:
        return int(f.read().rsplit(")", 1)[1].split()[19])


def sigterm_pending(pid):
    """Has pid been sent a SIGTERM it keeps blocked?  (ShdPnd, set by kill().)"""
    with open("/proc/%d/status" % pid) as f:
        pending = int(re.search(r"ShdPnd:\s+([0-9a-f]+)", f.read()).group(1), 16)
    return bool(pending & (1 << (signal.SIGTERM - 1)))


def decoy(host):
    """A live process that is not a proxy, though its command line says
    xenchan-proxy (as the old check wanted); it keeps SIGTERM blocked, so a
    signal sent to it stays visible."""
    import sys
    proc = host.spawn([sys.executable, "-c", DECOY, "xenchan-proxy", "impostor"],
                      stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert recv_exact(proc.stdout, 6) == b"ready\n"
    return proc


def list_row(host, domain, name):
    r = subprocess.run(host.proxy_argv() + ["--list", domain], env=host.env,
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r.stderr
    return {l.split()[1]: l for l in r.stdout.splitlines()[1:]}[name]


def remove(host, domain, name):
    return subprocess.run(host.proxy_argv() + ["-v", "--remove", domain, name], env=host.env,
                          capture_output=True, text=True, timeout=20)


def orphan(host, d, name, devid, claimant, start):
    """A channel made by a proxy that was then killed, its record rewritten
    to name pid claimant with start time start (None: no start node, as an
    older proxy wrote it)."""
    p, _ = create(host, d, name)
    host.wait_xs(be(d, devid) + "/xenchan-pid", str(p.proc.pid))
    p.signal(signal.SIGKILL)
    p.wait()
    host.xs.write(be(d, devid) + "/xenchan-pid", str(claimant))
    if start is None:
        host.xs.rm(be(d, devid) + "/xenchan-pid-start")
    else:
        host.xs.write(be(d, devid) + "/xenchan-pid-start", str(start))


@pytest.mark.timeout(90)
def test_remove_never_signals_a_process_that_reused_the_pid(host):
    """The channel's proxy died and its pid went to an unrelated process
    (written here by hand: the decoy's pid with a start time not its own).
    --remove unplugs the channel itself and never signals that process."""
    d = host.domain_create("reuse")
    other = decoy(host)
    orphan(host, d, "org.example.s", 1, other.pid, start_time(other.pid) + 1)
    r = remove(host, "reuse", "org.example.s")
    assert not sigterm_pending(other.pid), "--remove signalled pid %d, not a proxy" % other.pid
    assert r.returncode == 0, r.stderr
    assert "--remove: unplugged" in r.stderr
    assert channels(host, d) == []
    assert other.poll() is None


@pytest.mark.timeout(90)
def test_create_takes_over_when_the_pid_was_reused(host):
    d = host.domain_create("takeover")
    host.guest(d, name="org.example.s")
    other = decoy(host)
    orphan(host, d, "org.example.s", 1, other.pid, start_time(other.pid) + 1)
    p, _ = create(host, d, "org.example.s", check_ready=False)
    host_wait_log(p, r"taking over %s \(its proxy %d is gone\)" % (fe(d, 1), other.pid))
    connected(host, d, 1)
    # Its own record: pid and start time, which is what a later check compares.
    host.wait_xs(be(d, 1) + "/xenchan-pid", str(p.proc.pid))
    assert host.xs.read(be(d, 1) + "/xenchan-pid-start") == str(start_time(p.proc.pid)).encode()
    assert not sigterm_pending(other.pid)


@pytest.mark.timeout(90)
def test_record_without_start_time_is_not_signalled_or_taken_over(host):
    """A record from an older proxy (a pid, no start time) naming a live
    process whose command line says xenchan-proxy: maybe its proxy, maybe
    not.  --create does not take the channel over; --remove does not
    signal it but unplugs the channel itself (a proxy serving it would see
    it go and end)."""
    d = host.domain_create("legacy")
    other = decoy(host)
    orphan(host, d, "org.example.l", 1, other.pid, None)
    p2, _ = create(host, d, "org.example.l", check_ready=False)
    assert p2.wait() == EX_CANTCREAT
    assert "exists (devid 1) and is not stale" in p2.log()
    r = remove(host, "legacy", "org.example.l")
    assert not sigterm_pending(other.pid), "--remove signalled pid %d on an unverified record" % other.pid
    assert r.returncode == 0, r.stderr
    assert channels(host, d) == []


@pytest.mark.timeout(90)
def test_list_marks_reused_and_unverified_records(host):
    d = host.domain_create("marks")
    other = decoy(host)
    orphan(host, d, "org.example.reused", 1, other.pid, start_time(other.pid) + 1)
    orphan(host, d, "org.example.old", 2, other.pid, None)
    live, _ = create(host, d, "org.example.live")
    host.wait_xs(be(d, 3) + "/xenchan-pid", str(live.proc.pid))
    assert re.search(r"\s%d \(stale\)\s" % other.pid, list_row(host, "marks", "org.example.reused"))
    assert re.search(r"\s%d \(unverified\)\s" % other.pid, list_row(host, "marks", "org.example.old"))
    assert re.search(r"\s%d\s+/" % live.proc.pid, list_row(host, "marks", "org.example.live"))
