# SPDX-License-Identifier: MIT
"""xenchan-dm, the device-model stand-in, on the simulated host.

Each test plays libxl 4.17: it writes the domain's nodes (xensim), starts
xenchan-dm with the argv libxl__build_device_model_args_new builds for a PV
guest, waits for device-model/D/state = running as libxl__spawn_local_dm
does, talks QMP as libxl__ev_qmp does, and destroys the domain in
libxl_domain_destroy's order.  The probe tests play libxl 4.20, which runs
the device model once as a command-line probe first (libxl_dm.c, Xen commit
1817e4c3c5), and its xl, which numbers channels from 1.  Every wait has a
deadline and waits on an event (a xenstore watch, a pidfd, inotify, a
socket)."""
import json
import os
import re
import select
import shlex
import signal
import socket
import subprocess
import time
import tty

import pytest

from simhost import (ProcessExited, _unix_listening, busy_listener, exchange, recv_exact,
                     send_all, thread_switches, wait_asleep, wait_dir, wait_proc_exit,
                     wait_socket_connectable)

EX_USAGE, EX_NOINPUT, EX_CANTCREAT, EX_CONFIG = 64, 66, 73, 78
MAN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "man",
                   "xenchan-dm.8")
KIB = 1024

# libxl__ev_qmp_init: ids start at "xlq\0"; the caller's command takes the
# first (libxl__ev_qmp_send), qmp_capabilities the next (after the greeting),
# and a second command on the same connection the one after (the probe's quit).
LIBXL_CMD_ID, LIBXL_CAPS_ID, LIBXL_NEXT_ID = 0x786c7100, 0x786c7101, 0x786c7102


def be(d, n):
    return "/local/domain/0/backend/console/%d/%d" % (d, n)


def fe(d, n):
    return "/local/domain/%d/device/console/%d" % (d, n)


def dm_node(d, leaf=None):
    return "/local/domain/0/device-model/%d" % d + ("/" + leaf if leaf else "")


# ---- libxl's side ------------------------------------------------------------------

def dm_binary(host):
    """xenchan-dm, under XENCHAN_WRAPPER (valgrind) when set, as proxies are."""
    return shlex.split(os.environ.get("XENCHAN_WRAPPER", "")) + [
        os.path.join(host.build, "xenchan-dm")]


def libxl_argv(host, d, name, channels, extra=(), mem=128):
    """The argv libxl 4.17 gives a PV guest's device model (libxl_dm.c,
    libxl__build_device_model_args_new), host.dir standing for /var/run/xen;
    libxl 4.18 to 4.22 give the same.  channels: (devid, socket path or None
    for a pty) in config order."""
    qmp = os.path.join(host.dir, "qmp-libxl-%d" % d)
    stat = os.path.join(host.dir, "qmp-libxenstat-%d" % d)
    argv = dm_binary(host) + ["-xen-domid", str(d), "-no-shutdown",
            "-chardev", "socket,id=libxl-cmd,path=%s,server=on,wait=off" % qmp,
            "-mon", "chardev=libxl-cmd,mode=control",
            "-chardev", "socket,id=libxenstat-cmd,path=%s,server=on,wait=off" % stat,
            "-mon", "chardev=libxenstat-cmd,mode=control"]
    for n, path in channels:
        argv += ["-chardev", "pty,id=libxl-channel%d" % n if path is None else
                 "socket,id=libxl-channel%d,path=%s,server=on,wait=off" % (n, path)]
    argv += ["-nodefaults", "-no-user-config", "-xen-attach", "-name", name,
             "-vnc", "none", "-display", "none", "-nographic"]
    argv += list(extra)
    argv += ["-machine", "xenpv", "-m", str(mem)]
    return argv


class DM:
    """A running xenchan-dm: .proc, .log_path, .domid, .qmp and .stat (the
    two QMP socket paths)."""

    def __init__(self, host, proc, log_path, d):
        self.host, self.proc, self.log_path, self.domid = host, proc, log_path, d
        self.qmp = os.path.join(host.dir, "qmp-libxl-%d" % d)
        self.stat = os.path.join(host.dir, "qmp-libxenstat-%d" % d)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout=15):
        return wait_proc_exit(self.proc, timeout)

    def wait_log(self, pattern, timeout=15):
        """Wait (inotify on the log's directory) for a line matching pattern."""
        return wait_dir(self.host.dir, lambda: re.search(pattern, self.log()), timeout,
                        "%r in the xenchan-dm log" % pattern)

    def proxy_pid(self, n):
        return int(self.host.xs.read(be(self.domid, n) + "/xenchan-pid"))


def start_dm(host, argv, d, running=True, timeout=15):
    """As libxl__spawn_local_dm: device-model/D made, stdin /dev/null, stdout
    and stderr to one log (qemu-dm-NAME.log), the pid recorded in
    /local/domain/D/image/device-model-pid (libxl__spawn_record_pid); then,
    unless running=False, wait as libxl does for state = running."""
    host.xs.mkdir(dm_node(d))
    log = os.path.join(host.dir, "qemu-dm-%d.log" % d)
    env = dict(host.env)
    if os.environ.get("XENCHAN_NO_SECCOMP"):
        env["XENCHAN_PROXY_OPTS"] = "--no-seccomp"
    with open(log, "wb") as f:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
    # Teardown: SIGTERM (a clean end), and the log checked for sanitizer reports.
    host._procs.append((proc, log, signal.SIGTERM))
    dm = DM(host, proc, log, d)
    try:
        host.xs.write("/local/domain/%d/image/device-model-pid" % d, str(proc.pid))
        if running:
            host.wait_xs(dm_node(d, "state"), b"running", timeout=timeout, proc=proc)
    except ProcessExited as e:
        raise ProcessExited("%s\n%s" % (e, dm.log())) from None
    return dm


class QMPError(Exception):
    def __init__(self, reply):
        super().__init__("%s: %s" % (reply["error"]["class"], reply["error"]["desc"]))
        self.cls, self.desc = reply["error"]["class"], reply["error"]["desc"]


class QMPConn:
    """A QMP connection read as libxl reads it: messages end with "\\r\\n"
    (qmp_ev_get_next_msg), events are skipped."""

    def __init__(self, path, timeout=10):
        self.sock = wait_socket_connectable(path, timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, raw):
        send_all(self.sock, raw)

    def recv(self):
        deadline = time.monotonic() + self.timeout
        while True:
            while b"\r\n" in self.buf:
                line, self.buf = self.buf.split(b"\r\n", 1)
                msg = json.loads(line)
                if "event" not in msg:
                    return msg
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("no QMP message within %gs" % self.timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("QMP server hung up")
            self.buf += chunk

    def at_eof(self):
        if not select.select([self.sock], [], [], self.timeout)[0]:
            return False
        return self.sock.recv(1) == b""


def libxl_qmp(path, command, arguments=None):
    """One libxl__ev_qmp_send: connect, the greeting (its QEMU version is
    read), qmp_capabilities, the command, its reply, hang up.  Returns the
    "return" value, raises QMPError for an "error" reply."""
    with QMPConn(path) as q:
        greeting = q.recv()
        version = greeting["QMP"]["version"]["qemu"]
        assert all(isinstance(version[k], int) for k in ("major", "minor", "micro")), greeting
        q.send(b'{"execute":"qmp_capabilities","id":%d}\r\n' % LIBXL_CAPS_ID)
        assert q.recv() == {"return": {}, "id": LIBXL_CAPS_ID}
        cmd = {"execute": command, "id": LIBXL_CMD_ID}
        if arguments is not None:
            cmd["arguments"] = arguments
        q.send(json.dumps(cmd, separators=(",", ":")).encode() + b"\r\n")
        reply = q.recv()
        assert reply.get("id") == LIBXL_CMD_ID, reply
        if "error" in reply:
            raise QMPError(reply)
        return reply["return"]


def libxl_destroy(host, dm, guests):
    """libxl_domain_destroy of a PV guest with a device model, in its order:
    pause (the guests stop), libxl__destroy_device_model (device-model/D
    removed, SIGHUP to device-model-pid, libxl__qmp_cleanup unlinks the QMP
    sockets), then the devices, the domain's nodes and the domain itself
    (xensim domain-destroy)."""
    d = dm.domid
    for g in guests:
        g.proc.kill()
        g.proc.wait()
    host.xs.rm(dm_node(d))
    os.kill(int(host.xs.read("/local/domain/%d/image/device-model-pid" % d)), signal.SIGHUP)
    for p in (dm.qmp, dm.stat):
        if os.path.lexists(p):
            os.unlink(p)
    host.domain_destroy(d)


# ---- a domain as xl creates it ------------------------------------------------------

def two_channel_domain(host, name="web1", xl="4.17"):
    """xl create with two channels.  xl 4.17 (and any before 4.18.5, 4.19.2
    and 4.20.1) is given
        channel = [ "name=unused, connection=pty",
                    "name=org.example.agent, connection=socket, path=DIR/agent.sock",
                    "name=org.example.console, connection=pty" ]
    and numbers them 0, 1, 2; libxl refuses console 0 (no device), adds
    devices 1 and 2, and still names all three chardevs.  xl 4.20.4 (xl="4.20")
    is given the same without the placeholder and numbers them 1, 2.
    Returns (domid, socket path, guest 1, guest 2, argv)."""
    d = host.domain_create(name)
    sock = os.path.join(host.dir, "agent.sock")
    assert host.channel_add(d, "org.example.agent", devid=1, connection="socket", path=sock) == 1
    assert host.channel_add(d, "org.example.console", devid=2, connection="pty") == 2
    g1, g2 = host.guest(d, 1), host.guest(d, 2)
    chardevs = [(1, sock), (2, None)]
    if xl == "4.17":
        chardevs.insert(0, (0, None))
    argv = libxl_argv(host, d, name, chardevs)
    return d, sock, g1, g2, argv


def dm_serving(host):
    """two_channel_domain under a running xenchan-dm, both channels Connected:
    (domid, socket path, guest 1, guest 2, DM)."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    connected(host, d, 1)
    connected(host, d, 2)
    return d, sock, g1, g2, dm


def connected(host, d, n):
    host.wait_xs(be(d, n) + "/state", "4")
    host.wait_xs(fe(d, n) + "/state", "4")


def open_pty(path):
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd)
    return fd


def open_files(pid):
    """The sockets, pipes and files pid's descriptors above stdio point at
    (anon_inode names say nothing of identity)."""
    links = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if int(fd) > 2:
                links.add(os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except FileNotFoundError:
            pass                  # a descriptor closed while we looked
    return {t for t in links if not t.startswith("anon_inode:")}


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


# ---- startup, QMP and the relay ------------------------------------------------------

@pytest.mark.timeout(60)
def test_libxl_startup_query_chardev_and_bytes_both_ways(host):
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    # "running" means every endpoint is open: libxl unpauses the guest next.
    assert _unix_listening(sock)
    pts = host.xs.read(fe(d, 2) + "/tty").decode()
    assert re.fullmatch(r"/dev/pts/\d+", pts) and os.path.exists(pts)
    assert host.xs.exists(dm_node(d, "backends/console"))
    assert re.search(r"libxl-channel0: no channel device 0 \(xl before 4\.18\.5, 4\.19\.2 "
                     r"and 4\.20\.1 drops the first channel= entry\): not served", dm.log())
    # The proxies inherit the log (stdio) and nothing else of ours.
    mine = open_files(dm.proc.pid)
    for n in (1, 2):
        assert not mine & open_files(dm.proxy_pid(n)), n

    # What libxl does next (device_model_postconfig_chardev).
    chardevs = {c["label"]: c for c in libxl_qmp(dm.qmp, "query-chardev")}
    assert chardevs["libxl-channel2"]["filename"] == "pty:" + pts
    assert chardevs["libxl-channel1"]["filename"] == "unix:%s,server=on" % sock
    assert chardevs["libxl-cmd"]["filename"] == "unix:%s,server=on" % dm.qmp
    assert "libxl-channel0" not in chardevs
    assert all(c["frontend-open"] for c in chardevs.values())
    assert libxl_qmp(dm.qmp, "query-status")["status"] == "running"
    assert libxl_qmp(dm.qmp, "query-name") == {"name": "web1"}

    connected(host, d, 1)
    connected(host, d, 2)
    # libxl-channelN is console device N: the socket reaches guest 1, the pty guest 2.
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        exchange(c, t, 1 << 20, timeout=40)
    fd = open_pty(pts)
    try:
        with g2.connect() as t:
            exchange(fd, t, 1 << 20, timeout=40)
    finally:
        os.close(fd)


@pytest.mark.timeout(60)
def test_qmp_as_libxenstat_and_protocol_errors(host):
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    # libxenstat (xenstat_qmp.c): no id, no line ends, then a 10 ms read.
    with QMPConn(dm.stat) as q:
        assert "QMP" in q.recv()
        q.send(b'{ "execute": "qmp_capabilities" }')
        assert q.recv() == {"return": {}}
        q.send(b'{ "execute": "query-blockstats" }')
        assert q.recv() == {"return": []}
    with QMPConn(dm.qmp) as q:
        q.recv()
        q.send(b'{"execute":"query-status","id":1}\r\n')
        assert q.recv() == {"error": {"class": "CommandNotFound", "desc":
                            "Expecting capabilities negotiation with 'qmp_capabilities'"},
                            "id": 1}
        # Two commands in one write, answered in order; any JSON id comes back as it was.
        q.send(b'{"execute":"qmp_capabilities","id":"caps"}'
               b'{"execute":"query-version","id":{"a":[1,2.5e3,null,"x"]}}')
        assert q.recv() == {"return": {}, "id": "caps"}
        r = q.recv()
        assert r["id"] == {"a": [1, 2500.0, None, "x"]}
        assert r["return"]["package"].startswith("xenchan-dm ")
        q.send(b'{"execute":"qmp_capabilities","id":2}\r\n')
        assert q.recv()["error"]["class"] == "CommandNotFound"
        q.send(b'{"execute":"device_add","arguments":{"driver":"usb-host"},"id":3}\r\n')
        assert q.recv() == {"error": {"class": "CommandNotFound",
                                      "desc": "The command device_add has not been found"},
                            "id": 3}
        q.send(b'{"exec":"quit","id":4}\r\n')
        assert q.recv()["error"]["desc"] == "QMP input member 'exec' is unexpected"
        cmds = {c["name"] for c in libxl_qmp(dm.qmp, "query-commands")}
        assert {"query-chardev", "query-status", "quit"} <= cmds
        man = open(MAN).read()
        for name in cmds:
            assert re.search(r"Cm %s\b" % re.escape(name), man), "%s is not in the man page" % name
        # Malformed JSON: an error, then the connection ends.
        q.send(b'{"execute": quit}\r\n')
        err = q.recv()
        assert err["error"]["class"] == "GenericError" and "parse error" in err["error"]["desc"]
        assert q.at_eof()
    # Other clients were not disturbed.
    assert libxl_qmp(dm.qmp, "query-status")["running"] is True
    assert dm.proc.poll() is None


@pytest.mark.timeout(60)
def test_qmp_client_that_never_reads_is_dropped(host):
    """A client that sends commands and never reads the replies: once 64 KiB
    of them wait behind its full socket, it is dropped (logged), and the
    dm goes on serving libxl."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    q = QMPConn(dm.stat)
    try:
        q.sock.settimeout(20)
        try:
            q.sock.sendall(b'{"execute":"qmp_capabilities"}'
                           + b'{"execute":"query-commands"}' * 40000)
            pytest.fail("the dm read 1 MiB of commands without dropping a client "
                        "that reads none of the replies")
        except (BrokenPipeError, ConnectionResetError):
            pass                         # hung up on, mid-way
        dm.wait_log(r"QMP libxenstat-cmd: a client that leaves \d+ bytes of replies unread: "
                    r"dropping it")
    finally:
        q.close()
    assert libxl_qmp(dm.qmp, "query-status")["running"] is True
    assert dm.proc.poll() is None


# ---- supervision -----------------------------------------------------------------------

def wait_new_proxy(host, dm, n, old):
    """Wait (a watch) until channel n's backend names a proxy other than old."""
    v = host.wait_xs(be(dm.domid, n) + "/xenchan-pid",
                     lambda v: v not in (b"0", str(old).encode()), proc=dm.proc)
    return int(v)


@pytest.mark.timeout(60)
def test_crashed_proxy_restarted_and_reattaches(host):
    d, sock, g1, g2, dm = dm_serving(host)
    part1, part2, back = os.urandom(64 * KIB), os.urandom(256 * KIB), os.urandom(256 * KIB)
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        send_all(t, part1)
        assert recv_exact(c, len(part1)) == part1

    old = dm.proxy_pid(1)
    os.kill(old, signal.SIGKILL)
    new = wait_new_proxy(host, dm, 1, old)
    dm.wait_log(r"libxl-channel1: the proxy for channel org\.example\.agent was killed by "
                r"signal 9 .*; restarting it \(restart 1 of at most 5")
    host.wait_xs(be(d, 1) + "/state", "4")
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        send_all(t, part2, timeout=30)
        got = recv_exact(c, len(part2), timeout=30)
        while not got.endswith(part2):
            got += recv_exact(c, 1)
        # The proxy's promise across a SIGKILL (xenchan-proxy(1), Delivery):
        # bytes it wrote but had not yet released from the ring come again,
        # at most one ring (2 KiB) of them, never a gap.
        dup = got[:len(got) - len(part2)]
        assert len(dup) <= 2048 and part1.endswith(dup), len(dup)
        for i in range(0, len(back), 32 * KIB):      # each piece fits the buffers
            send_all(c, back[i:i + 32 * KIB])
            assert recv_exact(t, 32 * KIB) == back[i:i + 32 * KIB]
    assert host.xs.read(fe(d, 1) + "/state") == b"4"     # the guest never saw it

    old_pts = host.xs.read(fe(d, 2) + "/tty").decode()
    old = dm.proxy_pid(2)
    os.kill(old, signal.SIGKILL)
    wait_new_proxy(host, dm, 2, old)
    pts = host.xs.read(fe(d, 2) + "/tty").decode()
    chardevs = {c["label"]: c for c in libxl_qmp(dm.qmp, "query-chardev")}
    assert chardevs["libxl-channel2"]["filename"] == "pty:" + pts
    print("pty before and after the restart: %s %s" % (old_pts, pts))
    host.wait_xs(be(d, 2) + "/state", "4")
    fd = open_pty(pts)
    try:
        with g2.connect() as t:
            exchange(fd, t, 256 * KIB)
    finally:
        os.close(fd)
    assert alive(new) and dm.proc.poll() is None


@pytest.mark.timeout(60)
def test_restarts_are_bounded(host):
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    pid = dm.proxy_pid(1)
    t0 = time.monotonic()
    for i in range(5):
        os.kill(pid, signal.SIGKILL)
        pid = wait_new_proxy(host, dm, 1, pid)
    took = time.monotonic() - t0
    os.kill(pid, signal.SIGKILL)
    dm.wait_log(r"libxl-channel1: the proxy for channel org\.example\.agent was killed by "
                r"signal 9 .*, its 6th failure within 60 s: not restarting it")
    print("5 restarts in %.2fs (backoff 0 + 0.25 + 0.5 + 1 + 2 s)" % took)
    assert took >= 3.75
    assert dm.log().count("restarting it (restart") == 5
    # The rest goes on: the other channel, QMP, and a clean end.
    assert alive(dm.proxy_pid(2))
    assert libxl_qmp(dm.qmp, "query-status")["running"] is True
    dm.proc.send_signal(signal.SIGTERM)
    assert dm.wait() == 0


@pytest.mark.timeout(60)
def test_libxl_destroy_leaves_no_process_and_no_node(host):
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    proxies = [dm.proxy_pid(1), dm.proxy_pid(2)]
    connected(host, d, 1)
    libxl_destroy(host, dm, [g1, g2])
    assert dm.wait() == 0
    assert not any(alive(p) for p in proxies)
    assert "SIGHUP: the domain is being destroyed" in dm.log()
    for path in (dm_node(d), "/local/domain/0/backend/console/%d" % d, "/local/domain/%d" % d):
        assert not host.xs.exists(path), path
    for path in (sock, dm.qmp, dm.stat):
        assert not os.path.lexists(path), path


@pytest.mark.timeout(60)
def test_domain_death_alone_ends_everything(host):
    """The domain goes without libxl's SIGHUP: the proxies end by themselves,
    then xenchan-dm, which removes its own nodes."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    proxies = [dm.proxy_pid(1), dm.proxy_pid(2)]
    host.domain_destroy(d)
    assert dm.wait() == 0
    assert not any(alive(p) for p in proxies)
    assert not host.xs.exists(dm_node(d))
    for path in (sock, dm.qmp, dm.stat):
        assert not os.path.lexists(path), path


@pytest.mark.timeout(60)
def test_sigterm_ends_all_cleanly_and_leaves_channels(host):
    d, sock, g1, g2, dm = dm_serving(host)
    proxies = [dm.proxy_pid(1), dm.proxy_pid(2)]
    dm.proc.send_signal(signal.SIGTERM)
    assert dm.wait() == 0
    assert not any(alive(p) for p in proxies)
    for path in (sock, dm.qmp, dm.stat):
        assert not os.path.lexists(path), path
    # As a stopping proxy does: the guest's channels are left Connected.
    for n in (1, 2):
        assert host.xs.read(be(d, n) + "/state") == b"4"
        assert host.xs.read(fe(d, n) + "/state") == b"4"
    assert g1.proc.poll() is None and g2.proc.poll() is None


@pytest.mark.timeout(60)
def test_qmp_quit(host):
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    assert libxl_qmp(dm.qmp, "quit") == {}
    assert dm.wait() == 0
    assert not os.path.lexists(sock)


def wait_unix_accepted(path, n, timeout=10):
    """Wait until the server of Unix socket path holds n accepted connections
    (its ends bear the path in /proc/net/unix, state 03).  /proc has no
    change notification: the state is re-read every 10 ms until the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        with open("/proc/net/unix") as f:
            ends = [l.split() for l in f.read().splitlines()[1:]]
        n_now = sum(1 for e in ends if len(e) == 8 and e[7] == path and e[5] == "03")
        if n_now == n:
            return
        if time.monotonic() > deadline:
            raise TimeoutError("%s: %d accepted connections, not %d" % (path, n_now, n))
        select.select([], [], [], 0.01)


@pytest.mark.timeout(60)
def test_idle_dm_makes_no_wakeups(host):
    d, sock, g1, g2, dm = dm_serving(host)
    libxl_qmp(dm.qmp, "query-chardev")
    # The dm has dropped that QMP client (its end of the connection is gone
    # from /proc/net/unix) and every thread of it, libxenstore's reader
    # included, is back asleep; then two quiet seconds are the measurement.
    wait_unix_accepted(dm.qmp, 0)
    before = wait_asleep(dm.proc.pid)
    select.select([], [], [], 2.0)
    assert thread_switches(dm.proc.pid) == before


@pytest.mark.timeout(90)
def test_idle_qmp_clients_cannot_keep_libxl_waiting(host):
    """Six clients connect and say nothing; libxl's query-chardev must still
    be answered.  Each newcomer beyond 4 takes the slot of the client idle
    longest, which is dropped (and logged); the newest stay served."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    dm = start_dm(host, argv, d)
    idle = []
    for i in range(6):
        q = QMPConn(dm.qmp)
        try:
            assert "QMP" in q.recv()
        except TimeoutError:
            pytest.fail("idle client %d was never greeted: it waits in the listen "
                        "backlog behind %d idle ones" % (i + 1, i))
        idle.append(q)
    try:
        chardevs = {c["label"] for c in libxl_qmp(dm.qmp, "query-chardev")}
        assert {"libxl-channel1", "libxl-channel2"} <= chardevs
        # Dropped, oldest first: clients 1 and 2 for the 5th and 6th, 3 for libxl.
        for q in idle[:3]:
            assert q.at_eof()
        for i, q in enumerate(idle[3:], 4):
            q.send(b'{"execute":"qmp_capabilities","id":%d}\r\n' % i)
            assert q.recv() == {"return": {}, "id": i}
        assert len(re.findall(r"QMP libxl-cmd: all 4 client slots taken: dropping the one "
                              r"idle for \d+ ms for a new client", dm.log())) == 3
    finally:
        for q in idle:
            q.close()


@pytest.mark.timeout(60)
def test_guest_written_names_logged_printable(host):
    """The frontend's name and backend-id are the guest's to write: in the
    dm's log they appear as printable ASCII only, as in the proxy's, so a
    guest cannot forge a log line or send terminal escapes."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    drv = host.domain_create("driver")           # a backend domain other than ours
    assert host.channel_add(d, "org.example.elsewhere", devid=3, backend_domid=drv) == 3
    host.xs.write(fe(d, 1) + "/name", "agent\nxenchan-dm: forged\x1b[2J")
    host.xs.write(fe(d, 3) + "/backend-id", "%d\x1b]0;x\x07\n" % drv)
    argv = argv[:argv.index("-nodefaults")] + ["-chardev", "pty,id=libxl-channel3"] + \
        argv[argv.index("-nodefaults"):]
    dm = start_dm(host, argv, d)
    log = dm.log()
    assert re.search(r"for channel agent\?xenchan-dm: forged\?\[2J\b", log), log
    assert "libxl-channel3: its backend is domain %d?]0;x??, not this one: not served" % drv \
        in log, log
    assert not re.search(r"[^\x20-\x7e\n]", log), log
    assert not re.search(r"^xenchan-dm: forged", log, re.M), log


# ---- libxl 4.20's command-line probe ------------------------------------------------------

def probe_argv(host, fd):
    """What libxl 4.20 runs first (libxl_dm.c, libxl__spawn_local_dm): the
    device model's binary with no guest and QMP on the listening socket fd."""
    return dm_binary(host) + [
        "-S", "-no-user-config", "-nodefaults", "-nographic", "-machine", "none,accel=xen",
        "-chardev", "socket,id=libxl-cmd,fd=%d,server=on,wait=off" % fd,
        "-mon", "chardev=libxl-cmd,mode=control"]


class Probe:
    """libxl 4.20's probe of domain d, as libxl__spawn_local_dm runs it:
    libxl__pre_open_qmp_socket binds qmp-libxl-D (blocking, inheritable,
    backlog 1); libxl__ev_qmp_send connects before the spawn; the probe
    runs in its own session with stdin /dev/null and stdout and stderr to
    qemu-probe-NAME.log, its pid in /local/domain/D/image/device-model-pid;
    libxl then closes its copy of the listening socket.  .sock is libxl's
    QMP connection, read as libxl__ev_qmp reads it."""

    def __init__(self, host, d, name="web1", edit=None):
        self.host, self.domid = host, d
        self.path = os.path.join(host.dir, "qmp-libxl-%d" % d)
        if os.path.lexists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(1)
        fd = listener.fileno()
        os.set_inheritable(fd, True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)
        self.buf = b""
        self.log_path = os.path.join(host.dir, "qemu-probe-%s.log" % name)
        argv = probe_argv(host, fd)
        if edit:
            argv = edit(argv)
        with open(self.log_path, "wb") as f:
            self.proc = subprocess.Popen(argv, env=host.env, stdin=subprocess.DEVNULL, stdout=f,
                                         stderr=subprocess.STDOUT, pass_fds=(fd,),
                                         start_new_session=True)
        host._procs.append((self.proc, self.log_path, signal.SIGTERM))
        host.xs.write("/local/domain/%d/image/device-model-pid" % d, str(self.proc.pid))
        listener.close()

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def recv_raw(self, timeout=10):
        """One message's bytes, "\r\n" included (qmp_ev_get_next_msg)."""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise TimeoutError("no QMP message within %gs" % timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the probe hung up: %s" % self.log())
            self.buf += chunk
        msg, self.buf = self.buf.split(b"\r\n", 1)
        return msg + b"\r\n"

    def libxl_kill(self):
        """libxl__kill_xs_path: SIGHUP to the pid recorded for the probe."""
        pid = int(self.host.xs.read("/local/domain/%d/image/device-model-pid" % self.domid))
        os.kill(pid, signal.SIGHUP)


PROBE_LINE = (r"xenchan-dm: info: libxl's command-line probe: %d QMP commands answered%s; "
              r"exiting with status 0 %s\n")


def libxl_probe_exchange(probe):
    """What libxl 4.20 says to its probe, byte for byte (libxl_qmp.c,
    qmp_prepare_cmd: yajl without spaces, then "\r\n"), and what the answers
    must be: the greeting; qmp_capabilities (id "xlq\0" + 1); the caller's
    query-command-line-options (id "xlq\0"), read as
    device_model_probe_cmdline reads it; quit (id "xlq\0" + 2).  Returns the
    options answered."""
    greeting = probe.recv_raw()
    assert re.fullmatch(rb'\{"QMP":\{"version":\{"qemu":\{"micro":0,"minor":2,"major":7\},'
                        rb'"package":"xenchan-dm [^"]+"\},"capabilities":\[\]\}\}\r\n',
                        greeting), greeting
    send_all(probe.sock, b'{"execute":"qmp_capabilities","id":2020372737}\r\n')
    assert probe.recv_raw() == b'{"return":{},"id":2020372737}\r\n'
    send_all(probe.sock, b'{"execute":"query-command-line-options","id":2020372736}\r\n')
    raw = probe.recv_raw()
    reply = json.loads(raw)
    assert reply["id"] == LIBXL_CMD_ID and isinstance(reply["return"], list), raw
    options = {}
    for o in reply["return"]:
        assert isinstance(o["option"], str), o          # else libxl: ERROR_QEMU_API
        params = o["parameters"]
        assert isinstance(params, list) and all(isinstance(p["name"], str) for p in params), o
        options[o["option"]] = {p["name"]: p["type"] for p in params}
    send_all(probe.sock, b'{"execute":"quit","id":2020372738}\r\n')
    assert probe.recv_raw() == b'{"return":{},"id":2020372738}\r\n'
    return options


@pytest.mark.timeout(60)
def test_libxl_420_probe_answered(host):
    d = host.domain_create("web1")
    probe = Probe(host, d)
    options = libxl_probe_exchange(probe)
    # Only what the device model proper takes.  No "run-with": libxl then
    # asks -chroot for dm_restrict and -runas for device_model_user, both
    # refused by name (78), never an option xenchan-dm cannot read.
    assert options == {"chardev": {"id": "string", "path": "string", "server": "boolean",
                                   "wait": "boolean"},
                       "mon": {"chardev": "string", "mode": "string"}}
    # quit closed the listening socket (the device model proper binds the
    # same path next, and would refuse a live one) but left libxl's path.
    with pytest.raises(ConnectionRefusedError):
        socket.socket(socket.AF_UNIX).connect(probe.path)
    assert os.path.lexists(probe.path)
    # libxl hangs up once it has quit's answer (device_model_probe_quit);
    # the probe is still there for libxl's SIGHUP, which follows.
    probe.sock.close()
    assert alive(probe.proc.pid)
    probe.libxl_kill()
    assert wait_proc_exit(probe.proc, 15) == 0
    assert re.fullmatch(PROBE_LINE % (3, ", quit included", "on SIGHUP"), probe.log()), probe.log()
    assert os.path.lexists(probe.path)


@pytest.mark.timeout(60)
def test_libxl_420_create_probe_then_channels_without_placeholder(host):
    """xl 4.20.4 create of a two-channel guest: the probe on qmp-libxl-D,
    then the device model proper on the same path, with xl's numbering from
    1 (no placeholder, no libxl-channel0): both channels served."""
    d, sock, g1, g2, argv = two_channel_domain(host, xl="4.20")
    probe = Probe(host, d)
    libxl_probe_exchange(probe)
    probe.sock.close()
    probe.libxl_kill()
    assert wait_proc_exit(probe.proc, 15) == 0
    dm = start_dm(host, argv, d)
    connected(host, d, 1)
    connected(host, d, 2)
    assert "no channel device 0" not in dm.log()
    chardevs = {c["label"]: c for c in libxl_qmp(dm.qmp, "query-chardev")}
    assert set(chardevs) == {"libxl-cmd", "libxenstat-cmd", "libxl-channel1", "libxl-channel2"}
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        exchange(c, t, 64 * KIB)
    libxl_destroy(host, dm, [g1, g2])
    assert dm.wait() == 0


@pytest.mark.timeout(60)
def test_libxl_420_probe_client_gone_without_quit(host):
    """libxl gives up after query-command-line-options (an answer it cannot
    read, say) and hangs up: the probe exits 0 by itself, after waiting 5 s
    for a SIGHUP that does not come here."""
    d = host.domain_create("web1")
    probe = Probe(host, d)
    probe.recv_raw()
    send_all(probe.sock, b'{"execute":"qmp_capabilities","id":2020372737}\r\n')
    probe.recv_raw()
    send_all(probe.sock, b'{"execute":"query-version","id":2020372736}\r\n')
    assert json.loads(probe.recv_raw())["return"]["package"].startswith("xenchan-dm ")
    send_all(probe.sock, b'{"execute":"query-chardev","id":2020372738}\r\n')
    assert json.loads(probe.recv_raw())["error"]["class"] == "CommandNotFound"
    probe.sock.close()
    assert wait_proc_exit(probe.proc, 20) == 0
    assert re.fullmatch(PROBE_LINE % (3, ", then the client hung up before quit",
                                      "after 5 s without SIGHUP"), probe.log()), probe.log()


def _probe_with(extra):
    return lambda a: a + extra


def _probe_swap(old, new):
    return lambda a: [new if w == old else w for w in a]


PROBE_REFUSALS = {
    # name: (argv edit, exit code, log pattern); anything but libxl's exact
    # probe goes to the device model's parser, which refuses -S first.
    "with a domid": (_probe_with(["-xen-domid", "3"]), EX_CONFIG,
                     r"-S: a device model started paused \(dm_restrict=1\): only QEMU"),
    "another machine": (_probe_swap("none,accel=xen", "none"), EX_CONFIG, r"-S: a device model"),
    "a path": (lambda a: [re.sub(r"fd=\d+", "path=/tmp/x", w) for w in a], EX_CONFIG,
               r"-S: a device model"),
    "fd with a sign": (lambda a: [re.sub(r"fd=", "fd=+", w) for w in a], EX_CONFIG,
                       r"-S: a device model"),
    "one more option": (_probe_with(["-name", "web1"]), EX_CONFIG, r"-S: a device model"),
    "not a socket": (lambda a: [re.sub(r"fd=\d+", "fd=0", w) for w in a], EX_USAGE,
                     r"QMP libxl-cmd: descriptor 0 is not a listening Unix stream socket"),
    "not open": (lambda a: [re.sub(r"fd=\d+", "fd=987", w) for w in a], EX_USAGE,
                 r"QMP libxl-cmd: descriptor 987 is not a listening Unix stream socket"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(PROBE_REFUSALS))
def test_probe_argv_variants_refused(host, case):
    edit, code, pattern = PROBE_REFUSALS[case]
    d = host.domain_create("web1")
    probe = Probe(host, d, edit=edit)
    assert wait_proc_exit(probe.proc, 15) == code, probe.log()
    assert re.search(pattern, probe.log()), probe.log()
    with pytest.raises((EOFError, ConnectionResetError)):
        probe.recv_raw()


# ---- refusals ----------------------------------------------------------------------------

def _swap(argv, old, new):
    i = argv.index(old)
    return argv[:i] + new + argv[i + 1:]


REFUSALS = {
    # name: (argv edit, xenstore nodes to add, exit code, log pattern)
    "disk": (lambda a: _swap(a, "-nographic", ["-drive", "file=/dev/vg/web1,if=ide,index=0,"
                                               "media=disk,format=raw,cache=writeback"]),
             {}, EX_CONFIG, r"-drive file=/dev/vg/web1\S*: an emulated disk: only QEMU"),
    "qdisk": (lambda a: a, {"/local/domain/0/backend/qdisk/%(d)d/51712/state": "1"},
              EX_CONFIG, r"backend/qdisk/\d+: a disk served by QEMU \(backendtype=qdisk\)"),
    "vnc": (lambda a: _swap(a, "none", ["127.0.0.1:0,to=99"]), {}, EX_CONFIG,
            r"-vnc 127\.0\.0\.1:0,to=99: a VNC display"),
    "hvm": (lambda a: [w for w in _swap(a, "xenpv", ["xenfv,suppress-vmdesc=on"])
                       if w != "-xen-attach"], {}, EX_CONFIG,
            r"-machine xenfv,suppress-vmdesc=on: an emulated machine \(an HVM guest\)"),
    "dm_restrict": (lambda a: _swap(a, "-nographic", ["-nographic", "-xen-domid-restrict"]),
                    {}, EX_CONFIG, r"-xen-domid-restrict: a restricted device model"),
    "unknown": (lambda a: _swap(a, "-nographic", ["-nographic", "-frobnicate"]), {},
                EX_USAGE, r"unknown option -frobnicate: not an argument libxl gives"),
    "client socket": (lambda a: [w.replace("server=on,wait=off", "server=off")
                                 if "libxl-channel1" in w else w for w in a], {}, EX_USAGE,
                      r"expected pty,id=ID or socket,id=ID,path=PATH,server=on,wait=off"),
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_unsupported_argv_refused(host, case):
    edit, nodes, code, pattern = REFUSALS[case]
    d, sock, g1, g2, argv = two_channel_domain(host)
    for path, value in nodes.items():
        host.xs.write(path % {"d": d}, value)
    dm = start_dm(host, edit(argv), d, running=False)
    assert dm.wait() == code, dm.log()
    log = dm.log()
    assert re.search(pattern, log), log
    assert "started xenchan-proxy" not in log
    assert not host.xs.exists(dm_node(d, "state"))
    for path in (sock, dm.qmp, dm.stat):
        assert not os.path.lexists(path), path


@pytest.mark.timeout(30)
def test_proxy_failing_at_startup_fails_the_start(host):
    """A live socket where the channel's should be: the proxy refuses it
    (73), and xenchan-dm exits with that status before saying running, so
    xl reports the failure and destroys the domain."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    squatter = socket.socket(socket.AF_UNIX)
    squatter.bind(sock)
    squatter.listen(1)
    try:
        dm = start_dm(host, argv, d, running=False)
        assert dm.wait() == EX_CANTCREAT, dm.log()
    finally:
        squatter.close()
    assert re.search(r"libxl-channel1: the proxy for channel org\.example\.agent exited with "
                     r"status 73 before it was ready", dm.log())
    assert not host.xs.exists(dm_node(d, "state"))
    assert not os.path.lexists(dm.qmp)


@pytest.mark.timeout(30)
def test_qmp_path_with_a_stale_socket_taken(host):
    """A socket left at libxl's QMP path by a device model that crashed
    (nothing listens there): xenchan-dm replaces it and starts."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    qmp = os.path.join(host.dir, "qmp-libxl-%d" % d)
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(qmp)
    dead.close()
    dm = start_dm(host, argv, d)
    assert libxl_qmp(dm.qmp, "query-status")["status"] == "running"


@pytest.mark.timeout(30)
def test_qmp_path_with_a_busy_listener_refused(host):
    """Another device model listens at libxl's QMP path, its backlog full:
    xenchan-dm takes it for live and refuses the path at once (its probe
    does not wait for room; a blocking connect would wait for ever), leaving
    the other's socket where it is."""
    d, sock, g1, g2, argv = two_channel_domain(host)
    qmp = os.path.join(host.dir, "qmp-libxl-%d" % d)
    with busy_listener(qmp):
        ino = os.lstat(qmp).st_ino
        dm = start_dm(host, argv, d, running=False)
        assert dm.wait(10) == EX_CANTCREAT, dm.log()
        assert re.search(r"QMP libxl-cmd: %s is in the way \(another device model listens "
                         r"there\)" % re.escape(qmp), dm.log()), dm.log()
        assert os.lstat(qmp).st_ino == ino
        assert "started xenchan-proxy" not in dm.log()


@pytest.mark.timeout(30)
def test_missing_channel_device_refused(host):
    d = host.domain_create("web1")
    argv = libxl_argv(host, d, "web1", [(3, None)])
    dm = start_dm(host, argv, d, running=False)
    assert dm.wait() == EX_NOINPUT
    assert "libxl-channel3: no console device 3" in dm.log()


@pytest.mark.timeout(60)
def test_channel_of_a_driver_domain_left_alone(host):
    """xl with
        channel = [ "name=unused, connection=pty",
                    "name=org.example.agent, connection=socket, path=DIR/agent.sock",
                    "name=org.example.dd, connection=socket, path=DIR/dd.sock, backend=dd" ]
    starts a device model for the dom0 channels and names all three chardevs
    (libxl__build_device_model_args_new does not look at the backend):
    xenchan-dm serves channel 1 and leaves channel 2, whose backend is the
    driver domain, to it: no proxy, no socket at its path in dom0, its
    nodes untouched."""
    b = host.domain_create("dd", driver_domain=True)
    d = host.domain_create("web1")
    sock, dd_sock = os.path.join(host.dir, "agent.sock"), os.path.join(host.dir, "dd.sock")
    host.channel_add(d, "org.example.agent", devid=1, connection="socket", path=sock)
    host.channel_add(d, "org.example.dd", devid=2, connection="socket", path=dd_sock,
                     backend_domid=b)
    dd_be = "/local/domain/%d/backend/console/%d/2" % (b, d)
    before = {leaf: host.xs.read(dd_be + "/" + leaf) for leaf in host.xs.ls(dd_be)}
    g1 = host.guest(d, 1)
    dm = start_dm(host, libxl_argv(host, d, "web1", [(0, None), (1, sock), (2, dd_sock)]), d)
    connected(host, d, 1)
    assert re.search(r"libxl-channel2: its backend is domain %d, not this one: not served" % b,
                     dm.log()), dm.log()
    assert "serving 1 of 3 channels" in dm.log()
    assert not os.path.lexists(dd_sock)
    assert not host.xs.exists(be(d, 2))
    assert {leaf: host.xs.read(dd_be + "/" + leaf) for leaf in host.xs.ls(dd_be)} == before
    assert [int(p) for p in open("/proc/%d/task/%d/children" % (dm.proc.pid, dm.proc.pid)).read().split()] \
        == [dm.proxy_pid(1)]
    libxl_destroy(host, dm, [g1])
    assert dm.wait() == 0


# ---- memory ---------------------------------------------------------------------------------

def smaps_rollup(pid):
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return out


@pytest.mark.timeout(60)
def test_memory_of_a_two_channel_domain(host):
    """RSS, PSS and private memory (KiB, /proc/PID/smaps_rollup) of
    xenchan-dm and its two proxies, idle after a first exchange on each
    channel."""
    d, sock, g1, g2, dm = dm_serving(host)
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        exchange(c, t, 64 * KIB)
    fd = open_pty(host.xs.read(fe(d, 2) + "/tty").decode())
    try:
        with g2.connect() as t:
            exchange(fd, t, 64 * KIB)
    finally:
        os.close(fd)
    libxl_qmp(dm.qmp, "query-chardev")
    rows = [("xenchan-dm", dm.proc.pid), ("proxy socket", dm.proxy_pid(1)),
            ("proxy pty", dm.proxy_pid(2))]
    # PSS shares pages with every other process mapping the same libraries
    # (other proxies on the host lower it); private pages (USS) do not.
    total_rss = total_pss = total_uss = 0
    for what, pid in rows:
        m = smaps_rollup(pid)
        uss = m["Private_Clean"] + m["Private_Dirty"]
        total_rss += m["Rss"]
        total_pss += m["Pss"]
        total_uss += uss
        print("%-13s pid %-7d RSS %6d KiB  PSS %6d KiB  private %6d KiB"
              % (what, pid, m["Rss"], m["Pss"], uss))
    print("%-25s RSS %6d KiB  PSS %6d KiB  private %6d KiB"
          % ("total", total_rss, total_pss, total_uss))
    if "asan" not in host.build and not os.environ.get("XENCHAN_WRAPPER"):
        assert total_pss < 16 * 1024, total_pss
