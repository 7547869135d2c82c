# SPDX-License-Identifier: MIT
"""Least privilege: no capability after setup whatever the user, --user,
and the seccomp filter that is on by default (every other test already runs
the full relay, reconnect and exit paths with it on)."""
import os
import pwd
import re
import signal
import socket
import tty

import pytest

from simhost import recv_exact, send_all, wait_file, wait_socket_connectable
from test_proxy import connected, host_wait_log, listen_proxy, setup_channel

FILTERED = not os.environ.get("XENCHAN_NO_SECCOMP")
NOBODY = 65534
CAP_SETPCAP = 8


def status_of(pid):
    """/proc/PID/status as a dict of its fields' text."""
    with open("/proc/%d/status" % pid) as f:
        return dict(line.split(":\t", 1) for line in f.read().splitlines() if ":\t" in line)


def uid_of(pid):
    return [int(x) for x in status_of(pid)["Uid"].split()]


def assert_unprivileged(pid, uid):
    """After setup: uid (real, effective, saved, fs) as asked, no capability
    in any set, no_new_privs, and (unless this run turns it off) the filter.
    The bounding set is empty when the proxy could clear it (CAP_SETPCAP)."""
    st = status_of(pid)
    assert [int(x) for x in st["Uid"].split()] == [uid] * 4, st["Uid"]
    for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(st[cap], 16) == 0, "%s %s" % (cap, st[cap])
    if int(status_of(os.getpid())["CapEff"], 16) & (1 << CAP_SETPCAP):
        assert int(st["CapBnd"], 16) == 0, "CapBnd %s" % st["CapBnd"]
    assert st["NoNewPrivs"] == "1"
    assert st["Seccomp"] == ("2" if FILTERED else "0"), "Seccomp %s" % st["Seccomp"]
    return st


# Each mode: start the proxy; return it and a function that opens its dom0
# end as (read end, write end, close), for send_all and recv_exact.

def _sock_end(c):
    return c, c, c.close


def _mode_listen(host, d, n, user):
    p, sock = listen_proxy(host, d, n, *user)
    return p, lambda: _sock_end(wait_socket_connectable(sock))


def _mode_toolstack(host, d, n, user):
    # The channel was made with connection=socket and this path.
    path = os.path.join(host.dir, "libxl.sock")
    p = host.proxy(str(d), str(n), *user, check_ready=path)
    return p, lambda: _sock_end(wait_socket_connectable(path))


def _mode_connect(host, d, n, user):
    path = os.path.join(host.dir, "agent.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)
    p = host.proxy(str(d), str(n), "--connect", path, *user, check_ready=False)

    def accept():
        c, _ = srv.accept()
        srv.close()
        return _sock_end(c)
    return p, accept


def _mode_pty(host, d, n, user):
    link = os.path.join(host.dir, "console")
    p = host.proxy(str(d), str(n), "--pty=" + link, *user,
                   check_ready=lambda p: wait_file(link, 10, p.proc))

    def open_pty():
        fd = os.open(link, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        return fd, fd, lambda: os.close(fd)
    return p, open_pty


def _mode_stdio(host, d, n, user):
    p = host.proxy(str(d), str(n), "--stdio", *user, check_ready=False)
    return p, lambda: (p.proc.stdout, p.proc.stdin, lambda: None)


MODES = {"listen": _mode_listen, "toolstack": _mode_toolstack, "connect": _mode_connect,
         "pty": _mode_pty, "stdio": _mode_stdio}


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="the proxy must start as root to drop it")
@pytest.mark.parametrize("user", [None, "nobody"])
@pytest.mark.parametrize("mode", sorted(MODES))
def test_no_privilege_left_after_setup_in_every_mode(host, mode, user):
    """Once set up, a proxy runs with the uid asked for (root, or --user's),
    no capability at all, no_new_privs and the system-call filter, in every
    endpoint mode; it still carries bytes both ways and exits 0 on SIGTERM."""
    os.chmod(host.dir, 0o755)      # --user: the guest's event socket is under it
    kw = {"connection": "socket", "path": os.path.join(host.dir, "libxl.sock")} \
        if mode == "toolstack" else {}
    d, n, g = setup_channel(host, **kw)
    p, endpoint = MODES[mode](host, d, n, ["--user", user] if user else [])
    connected(host, d, n)
    st = assert_unprivileged(p.proc.pid, NOBODY if user else 0)
    print("%s as %s: Uid %s CapEff %s CapBnd %s Seccomp %s" % (
        mode, user or "root", st["Uid"], st["CapEff"], st["CapBnd"], st["Seccomp"]))
    r, w, close = endpoint()
    try:
        with g.connect() as t:
            send_all(t, b"to dom0 " + mode.encode())
            assert recv_exact(r, 8 + len(mode)) == b"to dom0 " + mode.encode()
            send_all(w, b"to the guest")
            assert recv_exact(t, 12) == b"to the guest"
    finally:
        close()
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0, p.log()


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root to drop from")
def test_user_drops_root_and_keeps_working(host):
    os.chmod(host.dir, 0o755)      # the simulated devices live under it
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--user", "nobody", "-v")
    connected(host, d, n)
    assert "running as nobody" in p.log()
    assert uid_of(p.proc.pid) == [65534] * 4
    with wait_socket_connectable(sock) as c:
        with g.connect() as t:
            send_all(t, b"as nobody")
            assert recv_exact(c, 9) == b"as nobody"
        # The guest reconnects: a new ring mapped and a new port bound,
        # with no root.
        g.signal(signal.SIGUSR1)
        # Closed is passed through in an instant: the proxy's log keeps it.
        host_wait_log(p, r"backend state Closed")
        connected(host, d, n)
        with g.connect() as t:
            send_all(c, b"new ring")
            assert recv_exact(t, 8) == b"new ring"
    host.domain_destroy(d)
    assert p.wait(10) == 0


@pytest.mark.timeout(30)
def test_unknown_user(host):
    d, n, g = setup_channel(host)
    p = host.proxy(str(d), str(n), "--stdio", "--user", "no-such-user-here", check_ready=False)
    assert p.wait() == 67
    assert "no-such-user-here" in p.log()


# What the filter of 804a405 let through (open, socket, unlink and any ioctl
# or mapping, because the test libraries did file work after setup) and the
# loop never needs; and calls no filter ever allowed.
PROBES = ["open", "socket", "unlink", "ioctl", "exec-map", "setuid", "personality"]


@pytest.mark.timeout(30)
@pytest.mark.skipif(not FILTERED, reason="the filter is off in this run")
@pytest.mark.parametrize("call", PROBES)
def test_a_system_call_outside_the_list_kills(host, call):
    """The simulated event-channel library makes a system call no backend
    loop makes when XENSIM_EVTCHN_PROBE names it (tests/sim/README.md), from
    inside the proxy, at its first notify after setup: the filter kills it
    with SIGSYS.  With --no-seccomp the same proxy goes on."""
    d, n, g = setup_channel(host)
    env = dict(host.env, XENSIM_EVTCHN_PROBE=call)
    p = host.proxy(str(d), str(n), "--stdio", check_ready=False, env=env)
    assert p.wait(15) == -signal.SIGSYS, p.log()
    free = host.proxy(str(d), str(n), "--stdio", "--no-seccomp", check_ready=False, env=env)
    connected(host, d, n)
    with g.connect() as t:
        send_all(t, b"unfiltered")
        assert recv_exact(free.proc.stdout, 10) == b"unfiltered"
    assert free.proc.poll() is None


@pytest.mark.timeout(30)
@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root to drop from")
def test_user_cannot_remove_its_socket_the_next_proxy_replaces_it(host):
    """Under --user the proxy cannot unlink its socket from a directory only
    root may write (the man page says so): the socket is left, refusing
    connections, and the next proxy replaces it as stale."""
    os.chmod(host.dir, 0o755)
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--user", "nobody")
    connected(host, d, n)
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0
    assert os.path.exists(sock), "a --user proxy removed its socket from root's directory"
    with pytest.raises(ConnectionRefusedError):
        socket.socket(socket.AF_UNIX).connect(sock)
    again, _ = listen_proxy(host, d, n, "--user", "nobody")
    connected(host, d, n)
    with wait_socket_connectable(sock) as c, g.connect() as t:
        send_all(t, b"next")
        assert recv_exact(c, 4) == b"next"


@pytest.mark.timeout(30)
def test_root_without_capabilities_reopens_the_transcript_and_removes_its_socket(host):
    """uid 0 with no capability still owns root's files: SIGHUP reopens a
    transcript moved aside (the filter admits that open: write-only,
    appending), and at exit the socket in root's directory goes."""
    d, n, g = setup_channel(host)
    tr = os.path.join(host.dir, "transcript")
    p, sock = listen_proxy(host, d, n, "--transcript", tr)
    connected(host, d, n)
    assert_unprivileged(p.proc.pid, os.geteuid())
    with wait_socket_connectable(sock) as c, g.connect() as t:
        send_all(t, b"first")
        assert recv_exact(c, 5) == b"first"
        os.rename(tr, tr + ".1")
        p.signal(signal.SIGHUP)
        wait_file(tr, 10, p.proc)
        send_all(t, b"second")
        assert recv_exact(c, 6) == b"second"
    p.signal(signal.SIGTERM)
    assert p.wait(10) == 0, p.log()
    assert b"first" in open(tr + ".1", "rb").read()
    assert b"second" in open(tr, "rb").read() and b"first" not in open(tr, "rb").read()
    assert not os.path.exists(sock)


# ---- xenchan-dm's proxies -------------------------------------------------------------

def _dm_proxies_as(host, env_user):
    """A two-channel domain under xenchan-dm with XENCHAN_PROXY_USER=env_user
    (None: unset); bytes through its socket channel; then libxl's destroy.
    Returns (dm, the proxies' /proc status as they served, the socket)."""
    from test_dm import connected as dm_connected, libxl_destroy, start_dm, two_channel_domain
    os.chmod(host.dir, 0o755)
    host.env.pop("XENCHAN_PROXY_USER", None)
    if env_user is not None:
        host.env["XENCHAN_PROXY_USER"] = env_user
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    dm_connected(host, d, 1)
    dm_connected(host, d, 2)
    st = [status_of(dm.proxy_pid(n)) for n in (1, 2)]
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        send_all(t, b"through the dm")
        assert recv_exact(c, 14) == b"through the dm"
    libxl_destroy(host, dm, [g1, g2])
    assert dm.wait() == 0, dm.log()
    return dm, st, sock


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="the proxies must start as root to drop it")
def test_dm_runs_its_proxies_as_the_user_and_removes_their_sockets(host):
    """XENCHAN_PROXY_USER names the proxies' user; they cannot remove their
    socket from root's directory, so xenchan-dm does once each has exited:
    nothing is left after libxl's destroy."""
    dm, st, sock = _dm_proxies_as(host, "nobody")
    for s in st:
        assert s["Uid"].split() == [str(NOBODY)] * 4 and int(s["CapEff"], 16) == 0, s
        assert s["Seccomp"] == ("2" if FILTERED else "0")
    assert re.search(r"removed .*agent\.sock, its exited proxy's socket", dm.log()), dm.log()
    assert not os.path.lexists(sock)


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="the proxies must start as root")
def test_dm_default_user_is_xenchan_else_root_without_capabilities(host):
    """Unset: the package's xenchan user, or (a tree installed without the
    package) root with no capability and a warning; "root" keeps root."""
    try:
        want = pwd.getpwnam("xenchan").pw_uid
    except KeyError:
        want = 0
    dm, st, _ = _dm_proxies_as(host, None)
    for s in st:
        assert s["Uid"].split() == [str(want)] * 4 and int(s["CapEff"], 16) == 0, s
    assert ("user xenchan does not exist" in dm.log()) == (want == 0)
    dm, st, _ = _dm_proxies_as(host, "root")
    for s in st:
        assert s["Uid"].split() == ["0"] * 4 and int(s["CapEff"], 16) == 0, s
    assert "does not exist" not in dm.log()
