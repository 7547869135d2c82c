# SPDX-License-Identifier: MIT
"""xenchan-proxy under systemd: the units in contrib/systemd (systemd-analyze
verify, and the settings that must agree with the proxy's exit codes), the
instance name as systemd hands it over (%I), readiness through NOTIFY_SOCKET,
and socket activation (LISTEN_FDS/LISTEN_PID).  No systemd manager is needed:
the tests play its part (a notify socket, a passed listening fd)."""
import os
import re
import select
import shlex
import shutil
import signal
import socket
import time
import stat
import struct
import subprocess
import sys

import pytest

from simhost import (build_dir, exchange, recv_exact, send_all, wait_socket_connectable,
                     wait_socket_listening)
from test_proxy import be, connected, fe

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNITS = os.path.join(REPO, "contrib", "systemd")
SERVICE = os.path.join(UNITS, "xenchan-proxy@.service")
SOCKET = os.path.join(UNITS, "xenchan-proxy@.socket")
INSTALLED_BINARY = "/usr/bin/xenchan-proxy"
CHANNEL = "org.example.agent"

# sysexits.h
EX_USAGE, EX_NOINPUT, EX_UNAVAILABLE, EX_CONFIG = 64, 66, 69, 78


# ---- helpers ---------------------------------------------------------------------

def unit_settings(path):
    """{section: {key: [values...]}} of a unit file (no line continuations in ours)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            k, _, v = line.partition("=")
            section.setdefault(k.strip(), []).append(v.strip())
    return out


def setting(path, section, key):
    """The effective value of a single-valued setting (the last one wins)."""
    return unit_settings(path)[section][key][-1]


class Notify:
    """The manager's end of sd_notify: a datagram socket the test binds, with
    SO_PASSCRED so each message carries the sender's pid (systemd accepts
    messages from the main pid only: NotifyAccess=main)."""

    def __init__(self, dirpath):
        self.path = os.path.join(dirpath, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.statuses = []

    def env(self, host):
        return dict(host.env, NOTIFY_SOCKET=self.path)

    def pending(self):
        """Is a message other than a STATUS= update waiting?"""
        while select.select([self.sock], [], [], 0)[0]:
            fields, _ = self._recv_one()
            if set(fields) - {"STATUS"}:
                self.early = fields
                return True
        return False

    def _recv_one(self):
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, body in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", body[:12])[0]
        self.statuses.extend(l[7:] for l in data.decode().split("\n") if l.startswith("STATUS="))
        return dict(l.split("=", 1) for l in data.decode().split("\n") if "=" in l), pid

    def recv(self, timeout=10):
        """(fields dict, sender pid) of the next message that says more than
        STATUS= (those are kept in .statuses); TimeoutError if none."""
        end = time.monotonic() + timeout
        while True:
            if not select.select([self.sock], [], [], max(0, end - time.monotonic()))[0]:
                raise TimeoutError("no sd_notify message within %gs" % timeout)
            fields, pid = self._recv_one()
            if set(fields) - {"STATUS"}:
                return fields, pid

    def status(self, want, timeout=10):
        """Wait until a STATUS= says want (a str, or a callable true for it);
        returns it.  TimeoutError (with the STATUS= lines seen) if none."""
        end = time.monotonic() + timeout
        ok = want if callable(want) else (lambda s: s == want)
        seen = len(self.statuses)
        while True:
            for s in self.statuses[seen:]:
                seen += 1
                if ok(s):
                    return s
            if not select.select([self.sock], [], [], max(0, end - time.monotonic()))[0]:
                raise TimeoutError("no STATUS=%r within %gs; seen %r" % (want, timeout, self.statuses))
            self._recv_one()

    def close(self):
        self.sock.close()


# A wrapper that does what systemd does before exec'ing a socket-activated
# service: the listening socket becomes fd 3, LISTEN_FDS=1, and LISTEN_PID is
# the pid that will run the proxy (exec keeps it).
ACTIVATE = (
    "import os, sys\n"
    "fd = int(sys.argv[1])\n"
    "if fd != 3:\n"
    "    os.dup2(fd, 3)\n"
    "    os.close(fd)\n"
    "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
    "os.execvp(sys.argv[2], sys.argv[2:])\n")


def activation_wrapper(fd, listen_pid=None):
    """XENCHAN_WRAPPER words passing fd as the activation socket (keeping any
    wrapper already set, e.g. valgrind, inside ours).  listen_pid overrides
    LISTEN_PID, to play a socket meant for another process."""
    script = ACTIVATE if listen_pid is None else ACTIVATE.replace(
        "str(os.getpid())", repr(str(listen_pid)))
    return shlex.join([sys.executable, "-c", script, str(fd)]) + " " + \
        os.environ.get("XENCHAN_WRAPPER", "")


def listening_socket(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(8)
    return s


def channel_with_toolstack_socket(host, name="web1"):
    """A domain with one channel whose backend names a socket path (libxl's
    connection=socket): where the proxy would listen without a passed fd."""
    d = host.domain_create(name)
    ts = os.path.join(host.dir, "toolstack.sock")
    n = host.channel_add(d, CHANNEL, connection="socket", path=ts)
    return d, n, ts


# ---- the unit files ------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_units_verify_clean(tmp_path):
    """systemd-analyze verify reports nothing for either unit.

    verify checks that ExecStart's binary exists and is executable, and that
    each Documentation=man: page exists.  The units name the packaged binary,
    /usr/bin/xenchan-proxy, which a build tree does not install; so the test
    verifies copies whose one difference is that path, pointed at the built
    binary, with MANPATH at the tree's man page.  A broken copy must produce
    output, so an empty report means the units are clean, not that verify
    said nothing about anything."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd): units not verified")
    binary = os.path.join(build_dir(), "xenchan-proxy")
    assert os.access(binary, os.X_OK), "%s is missing: run make" % binary
    man = tmp_path / "man" / "man1"
    man.mkdir(parents=True)
    shutil.copy(os.path.join(REPO, "man", "xenchan-proxy.1"), man)
    env = dict(os.environ, MANPATH=str(tmp_path / "man"), SYSTEMD_LOG_COLOR="0")
    copies = []
    for src in (SERVICE, SOCKET):
        text = open(src).read()
        if src == SERVICE:
            assert text.count(INSTALLED_BINARY) == 1
        dst = tmp_path / os.path.basename(src)
        dst.write_text(text.replace(INSTALLED_BINARY, binary))
        copies.append(str(dst))

    def verify(*paths):
        r = subprocess.run([analyze, "verify"] + list(paths), env=env, cwd=str(tmp_path),
                           capture_output=True, text=True, timeout=50)
        return r.returncode, (r.stdout + r.stderr).strip()

    assert verify(*copies) == (0, "")
    broken = tmp_path / "broken@.service"
    broken.write_text(open(copies[0]).read().replace("Type=notify", "Type=notifyy"))
    rc, out = verify(str(broken))
    assert "notifyy" in out, out


@pytest.mark.timeout(30)
def test_unit_settings():
    svc, sock = unit_settings(SERVICE), unit_settings(SOCKET)
    s = svc["Service"]
    assert s["Type"] == ["notify"]
    # The one operand DOMAIN:CHANNEL, unescaped (%I), after "--"; as the
    # package's xenchan user once set up.
    assert s["ExecStart"] == [INSTALLED_BINARY + " --user xenchan -- %I"]
    assert s["Restart"] == ["on-failure"]
    assert s["TimeoutStartSec"] == ["infinity"]
    # One runtime directory for every instance and the sockets in it: it must
    # survive the stop of any one instance.
    assert s["RuntimeDirectory"] == ["xenchan-proxy"] and s["RuntimeDirectoryPreserve"] == ["yes"]
    # Only what --user needs to become xenchan (setgroups, setgid, setuid),
    # and capset, with which the proxy then empties its capability sets.
    assert s["CapabilityBoundingSet"] == ["CAP_SETUID CAP_SETGID"]
    assert s["SystemCallFilter"][-1].split() == ["@setuid", "capset"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX"]
    for dev in ("/dev/xen/gntdev", "/dev/xen/evtchn", "/dev/ptmx"):
        assert dev + " rw" in s["DeviceAllow"]
    unit = svc["Unit"]
    for name in ("xenstored.service", "xen.service"):
        assert name in " ".join(unit["After"]).split()
        assert name in " ".join(unit["Wants"]).split()
    k = sock["Socket"]
    # %i (escaped) has no '/': one file in the directory per instance.
    assert k["ListenStream"] == ["/run/xenchan-proxy/%i.sock"]
    assert k["SocketMode"] == ["0600"] and k["RemoveOnStop"] == ["yes"]
    assert k.get("Accept", ["no"]) == ["no"]


@pytest.mark.timeout(60)
def test_restart_prevent_matches_exit_codes(host):
    """The exit codes the unit refuses to restart on are the proxy's codes for
    errors a retry cannot fix; the transient one (no xenstore) is retried; a
    failing start sends no READY=1; domain death is exit 0 (no restart)."""
    prevent = {int(c) for c in setting(SERVICE, "Service", "RestartPreventExitStatus").split()}
    notify = Notify(host.dir)
    d = host.domain_create("web1")
    n = host.channel_add(d, CHANNEL)
    other = host.channel_add(d, "org.example.other")
    host.xs.rm(be(d, other) + "/connection")
    no_xs = dict(notify.env(host), XENSTORED_PATH=os.path.join(host.dir, "nothing.sock"))
    cases = [
        (["--", "web1"], None, EX_USAGE),
        (["--", "nosuch:" + CHANNEL], None, EX_NOINPUT),
        (["--", "web1:org.example.none"], None, EX_NOINPUT),
        (["--", "web1:org.example.other"], None, EX_CONFIG),
        (["--", "web1:" + CHANNEL], no_xs, EX_UNAVAILABLE),
    ]
    for args, env, code in cases:
        p = host.proxy(*args, check_ready=False, env=env or notify.env(host))
        assert p.wait() == code, (args, p.log())
        assert (code in prevent) == (code != EX_UNAVAILABLE), (code, prevent)
        assert not notify.pending(), "a failed start sent sd_notify: %r" % (notify.early,)
    # Domain death: exit 0, which Restart=on-failure does not restart.
    host.guest(d, n)
    p = host.proxy("--", "web1:" + CHANNEL, check_ready=False, env=notify.env(host))
    connected(host, d, n)
    assert notify.recv()[0].get("READY") == "1"
    host.domain_destroy(d)
    assert p.wait() == 0
    assert setting(SERVICE, "Service", "Restart") == "on-failure"
    notify.close()


@pytest.mark.timeout(60)
def test_instance_names_through_systemd_escape(host):
    """What systemctl start "$(systemd-escape --template=... 'D:C')" hands the
    proxy as %I finds the channel, for names that need escaping; a name
    written into a unit name without escaping fails with 66 (no restart)."""
    if shutil.which("systemd-escape") is None:
        pytest.skip("systemd-escape is not installed (package systemd)")

    def escape(*args):
        return subprocess.run(["systemd-escape"] + list(args), capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()

    for dom, chan in (("web-1", "org.qemu.guest_agent.0"), ("db 2", "com.example:log-a")):
        d = host.domain_create(dom)
        n = host.channel_add(d, chan)
        unit = escape("--template=xenchan-proxy@.service", "--", dom + ":" + chan)
        assert re.fullmatch(r"xenchan-proxy@[A-Za-z0-9:_.\\]+\.service", unit), unit
        instance = escape("--unescape", "--instance", unit)       # what %I expands to
        assert instance == dom + ":" + chan
        p = host.proxy("--stdio", "--", instance, check_ready=False)
        host.wait_xs(be(d, n) + "/xenchan-pid", str(p.proc.pid))
        p.signal(signal.SIGTERM)
        assert p.wait() == 0
    # By hand, xenchan-proxy@web-1:org.qemu.guest_agent.0.service: systemd
    # unescapes '-' to '/'.
    instance = escape("--unescape", "--instance", "xenchan-proxy@web-1:org.qemu.guest_agent.0.service")
    assert instance == "web/1:org.qemu.guest_agent.0"
    p = host.proxy("--stdio", "--", instance, check_ready=False)
    assert p.wait() == EX_NOINPUT and "web/1" in p.log()


# ---- readiness -----------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_ready_once_serving_before_the_guest(host):
    """READY=1 comes from the proxy's own pid once it serves: its endpoint
    open and the backend at InitWait, waiting for the guest, so a unit's
    start does not block on a guest that is paused or still booting.  Then
    STATUS= follows where it stands (waiting, connected without and with a
    client); STOPPING=1 on SIGTERM, which leaves the configured channel
    Connected."""
    notify = Notify(host.dir)
    d, n, ts = channel_with_toolstack_socket(host)
    p = host.proxy("--", "web1:" + CHANNEL, check_ready=False, env=notify.env(host))
    fields, pid = notify.recv()
    assert fields.get("READY") == "1", fields
    assert pid == p.proc.pid
    assert fields.get("STATUS") == "waiting for the guest", fields
    # Ready means served: the endpoint listens and the backend waits.
    assert host.xs.read(be(d, n) + "/state") == b"2"
    with wait_socket_connectable(ts, proc=p.proc) as c:
        g = host.guest(d, n)
        connected(host, d, n)
        notify.status("connected, client")
        with g.connect() as t:
            exchange(c, t, 1 << 16)
    notify.status("connected, no client")
    p.signal(signal.SIGTERM)
    fields, pid = notify.recv()
    assert fields.get("STOPPING") == "1" and pid == p.proc.pid, fields
    assert p.wait() == 0
    assert host.xs.read(be(d, n) + "/state") == b"4"
    assert host.xs.read(fe(d, n) + "/state") == b"4"
    assert not notify.pending()
    assert notify.statuses == ["waiting for the guest", "connected, client",
                               "connected, no client"], notify.statuses
    notify.close()


@pytest.mark.timeout(60)
def test_status_when_the_guest_comes_before_the_client(host):
    """The guest connects before any client: "connected, no client", then
    "connected, client" when one comes."""
    notify = Notify(host.dir)
    d, n, ts = channel_with_toolstack_socket(host)
    g = host.guest(d, n)
    p = host.proxy("--", "web1:" + CHANNEL, check_ready=ts, env=notify.env(host))
    connected(host, d, n)
    # The guest was there first: the proxy attached in its first turn, and
    # READY=1 came with where it then stood.
    assert notify.recv()[0] == {"READY": "1", "STATUS": "connected, no client"}
    with wait_socket_connectable(ts) as c, g.connect() as t:
        notify.status("connected, client")
        exchange(c, t, 4096)
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    notify.close()


@pytest.mark.timeout(60)
def test_last_status_says_why_it_ends_even_when_held_back(host):
    """More changes than the STATUS= burst (clients coming and going), then
    the domain dies while the rate limit holds a change back: the proxy's
    last STATUS= still says why it ends.  The limit thins a fast series; it
    never drops the last word."""
    notify = Notify(host.dir)
    d, n, ts = channel_with_toolstack_socket(host)
    g = host.guest(d, n)
    p = host.proxy("--", "web1:" + CHANNEL, check_ready=ts, env=notify.env(host))
    connected(host, d, n)
    with g.connect() as t:
        for _ in range(4):
            with wait_socket_connectable(ts) as c:
                exchange(c, t, 16)
        host.domain_destroy(d)
        assert p.wait() == 0
    while select.select([notify.sock], [], [], 0)[0]:
        notify._recv_one()
    # At least nine changes (the first standing, four clients in and out,
    # the end); fewer messages: the rate limit held some back, as this test
    # needs.
    assert 4 <= len(notify.statuses) <= 8, notify.statuses
    assert notify.statuses[-1] == "ending: the channel or the domain is gone", notify.statuses
    notify.close()


# ---- socket activation ----------------------------------------------------------------

@pytest.mark.timeout(90)
def test_passed_listening_fd(host, monkeypatch):
    """A listening socket passed as fd 3 (LISTEN_FDS=1, LISTEN_PID = the
    proxy) is served in place of the toolstack's path; bytes cross both ways;
    after SIGTERM the path is still there, and a client that connects while no
    proxy runs is served by the next one (a restart under systemd)."""
    d, n, ts = channel_with_toolstack_socket(host)
    path = os.path.join(host.dir, "act.sock")
    lsock = listening_socket(path)
    notify = Notify(host.dir)
    monkeypatch.setenv("XENCHAN_WRAPPER", activation_wrapper(lsock.fileno()))
    g = host.guest(d, n)

    def start():
        return host.proxy("--", "web1:" + CHANNEL, check_ready=False, env=notify.env(host),
                          pass_fds=(lsock.fileno(),))

    p = start()
    assert notify.recv()[0].get("READY") == "1"
    with wait_socket_connectable(path) as c, g.connect() as t:
        exchange(c, t, 1 << 20, timeout=60)
        p.signal(signal.SIGTERM)
        assert p.wait() == 0
    assert notify.recv()[0].get("STOPPING") == "1"
    assert stat.S_ISSOCK(os.lstat(path).st_mode), "the proxy removed its inherited socket"
    assert not os.path.lexists(ts), "the toolstack's path was used despite the passed fd"
    # No proxy now: a client still connects (the listen queue) and the guest
    # still writes (its ring); the next proxy serves both.
    with socket.socket(socket.AF_UNIX) as c2, g.connect() as t:
        c2.connect(path)
        send_all(t, b"written while no proxy ran")
        p2 = start()
        # A restarted proxy reattaches to the Connected ring and is ready at
        # once (with Type=notify and no start timeout, a restart that never
        # said READY=1 would hang in "activating").
        fields, pid = notify.recv()
        assert fields.get("READY") == "1" and pid == p2.proc.pid
        assert recv_exact(c2, 26) == b"written while no proxy ran"
        send_all(c2, b"and back")
        assert recv_exact(t, 8) == b"and back"
        p2.signal(signal.SIGTERM)
        assert p2.wait() == 0
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    lsock.close()
    notify.close()


@pytest.mark.timeout(60)
def test_fd_meant_for_another_process_is_not_used(host, monkeypatch):
    """LISTEN_PID names another process (the fds were not meant for this one):
    the proxy ignores fd 3 and uses the toolstack's path."""
    d, n, ts = channel_with_toolstack_socket(host)
    path = os.path.join(host.dir, "act.sock")
    lsock = listening_socket(path)
    monkeypatch.setenv("XENCHAN_WRAPPER", activation_wrapper(lsock.fileno(), listen_pid=1))
    g = host.guest(d, n)
    host.proxy("--", "web1:" + CHANNEL, check_ready=ts, pass_fds=(lsock.fileno(),))
    connected(host, d, n)
    with wait_socket_connectable(ts) as c, g.connect() as t:
        send_all(t, b"via the toolstack path")
        assert recv_exact(c, 22) == b"via the toolstack path"
    lsock.close()


@pytest.mark.timeout(90)
def test_systemd_socket_activate(host, monkeypatch):
    """The same with systemd's own tool: systemd-socket-activate listens, and
    on the first connection execs the proxy with the socket as fd 3."""
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.skip("systemd-socket-activate is not installed (package systemd)")
    d, n, ts = channel_with_toolstack_socket(host)
    path = os.path.join(host.dir, "ssa.sock")
    notify = Notify(host.dir)
    # It passes the child only TERM, PATH, HOME and what -E names.
    words = [tool, "-l", path]
    for k in ("XENSTORED_PATH", "LD_LIBRARY_PATH", "XENSIM_DIR", "XENCHAN_RUNTIME_DIR"):
        words += ["-E", "%s=%s" % (k, host.env[k])]
    words += ["-E", "NOTIFY_SOCKET=" + notify.path, "--"]
    monkeypatch.setenv("XENCHAN_WRAPPER", shlex.join(words) + " " +
                       os.environ.get("XENCHAN_WRAPPER", ""))
    g = host.guest(d, n)
    p = host.proxy("--", "web1:" + CHANNEL,
                   check_ready=lambda p: wait_socket_listening(path, 10, p.proc))
    assert not notify.pending()            # nothing runs until a client comes
    with socket.socket(socket.AF_UNIX) as c, g.connect() as t:
        c.connect(path)
        fields, pid = notify.recv()
        assert fields.get("READY") == "1" and pid == p.proc.pid, fields
        exchange(c, t, 1 << 20, timeout=60)
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert stat.S_ISSOCK(os.lstat(path).st_mode), "the proxy removed its inherited socket"
    assert not os.path.lexists(ts)
    notify.close()
