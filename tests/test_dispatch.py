# SPDX-License-Identifier: MIT
"""xenchan-dm-dispatch, the program at libxl's default device-model path
(the xenchan-dm-default package), on the simulated host.

Each test lays out what the package makes of /usr/libexec: the dispatcher
at DIR/libexec/xen-qemu-system-i386 and, unless QEMU is absent, QEMU's
stand-in (build/sim/dm-recorder, which records its argv, environment,
descriptors, signal state, umask, directory and children) at the .distrib
name beside it.  It then plays libxl: the domain's nodes, then the device
model started as libxl__spawn_local_dm starts it (argv[0] the default path,
stdin /dev/null, stdout and stderr the qemu-dm log in O_APPEND, its own
session, descriptors the caller leaked, a caller's signal mask, ignored
signals and umask), over a matrix of libxl argvs and xenstore states.
The right program must run each time, in the same process; on the QEMU
path the stand-in must see exactly what it sees when libxl runs it directly
(the same spawn with the stand-in as the executable), and the dispatcher
must have created nothing (no node, socket or child).

The tests' dispatcher ($XENCHAN_BUILD/sim/xenchan-dm-dispatch, or
$XENCHAN_DISPATCH) runs the xenchan-dm of the build under test."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess

import pytest

from simhost import build_dir, exchange, wait_proc_exit, wait_socket_connectable
from test_dm import (EX_CONFIG, KIB, Probe, be, connected, dm_node, libxl_argv, libxl_destroy,
                     libxl_probe_exchange, start_dm, two_channel_domain)

DEFAULT_NAME = "xen-qemu-system-i386"     # libxl's QEMU_XEN_PATH, basename
CONSOLE_LIMIT = ("XEN_QEMU_CONSOLE_LIMIT", "1048576")   # libxl 4.17 adds it


def dispatcher():
    return os.environ.get("XENCHAN_DISPATCH") or os.path.join(build_dir(), "sim",
                                                               "xenchan-dm-dispatch")


class Libexec:
    """DIR/libexec as the package leaves it: .path the dispatcher, .distrib
    the recorder (QEMU's stand-in) unless qemu=False."""

    def __init__(self, host, qemu=True):
        top = os.path.join(host.dir, "libexec")
        os.makedirs(top, exist_ok=True)
        self.host = host
        self.path = os.path.join(top, DEFAULT_NAME)
        self.distrib = self.path + ".distrib"
        self.record_path = self.distrib + ".record"
        shutil.copy(dispatcher(), self.path)
        if qemu:
            shutil.copy(os.path.join(host.build, "sim", "dm-recorder"), self.distrib)

    def record(self):
        """The recorder's last record: {key: [words]}, fds {n: (fdflags,
        flflags, target)}, env [variables] in order."""
        rec = {"fd": {}, "env": []}
        with open(self.record_path) as f:
            for line in f.read().splitlines():
                k, _, v = line.partition(" ")
                words = v.split(" ") if v else []
                if k == "fd":
                    rec["fd"][int(words[0])] = (int(words[1]), int(words[2]), unhex(words[3]))
                elif k == "env":
                    rec["env"].append(unhex(words[0]))
                elif k in ("argv", "cwd"):
                    rec[k] = [unhex(w) for w in words]
                else:
                    rec[k] = words
        os.unlink(self.record_path)
        return rec


def unhex(w):
    return "" if w == "-" else bytes.fromhex(w).decode()


class Caller:
    """What libxl's caller (xl, libvirtd) holds when libxl spawns: a log file
    it leaked (O_RDWR|O_APPEND, not close-on-exec, as libvirtd's), a pipe's
    write end (O_NONBLOCK), and, for dm_restrict and the probe, the QMP
    listening socket libxl pre-opened."""

    def __init__(self, host):
        self.leak = os.open(os.path.join(host.dir, "caller.log"),
                            os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        self.pipe_r, self.pipe_w = os.pipe()
        os.set_blocking(self.pipe_w, False)
        self.listener = None

    def qmp_listener(self, path):
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(1)
        return self.listener.fileno()

    def fds(self):
        return tuple(f for f in (self.leak, self.pipe_w,
                                 self.listener.fileno() if self.listener else None)
                     if f is not None)

    def close(self):
        for f in (self.leak, self.pipe_r, self.pipe_w):
            os.close(f)
        if self.listener:
            self.listener.close()


BLOCKED = {signal.SIGUSR2, signal.SIGWINCH}


def caller_state():
    """libxl's caller's signal state and umask, set in the child before the
    exec (libxl changes neither but SIGPIPE)."""
    os.umask(0o027)
    signal.pthread_sigmask(signal.SIG_BLOCK, BLOCKED)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def libxl_spawn(host, lx, argv, d, caller, env=None, executable=None):
    """libxl__spawn_local_dm: its pid in image/device-model-pid; returns
    (Popen, log path)."""
    log = os.path.join(host.dir, "qemu-dm-%d.log" % d)
    env = dict(host.env if env is None else env)
    env[CONSOLE_LIMIT[0]] = CONSOLE_LIMIT[1]
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        proc = subprocess.Popen(argv, executable=executable or lx.path, env=env,
                                stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                pass_fds=caller.fds(), start_new_session=True,
                                preexec_fn=caller_state, cwd=host.dir)
    finally:
        os.close(fd)
    host._procs.append((proc, log, signal.SIGTERM))
    if d:
        host.xs.write("/local/domain/%d/image/device-model-pid" % d, str(proc.pid))
    return proc, log


def xs_tree(xs, path="/"):
    """Every node under path with its value."""
    out = {}
    try:
        out[path] = xs.read(path)
    except OSError:
        return out
    for name in xs.ls(path):
        out.update(xs_tree(xs, path.rstrip("/") + "/" + name))
    return out


def first_line(log):
    with open(log, errors="replace") as f:
        return f.readline().rstrip("\n")


# ---- libxl's argvs ---------------------------------------------------------------

def pv_argv(host, lx, d, name, chardevs, extra=()):
    """test_dm.libxl_argv (libxl 4.17's argv for a PV guest), argv[0] the
    default path.  PVH gets the same (libxl 4.17 to 4.22 take the PV path:
    -xen-attach, -machine xenpv)."""
    argv = libxl_argv(host, d, name, chardevs, extra)
    return [lx.path] + argv[argv.index("-xen-domid"):]


def hvm_argv(host, lx, d, name):
    """libxl 4.17's argv for an HVM guest (a disk, a NIC, the serial port)."""
    qmp = os.path.join(host.dir, "qmp-libxl-%d" % d)
    return [lx.path, "-xen-domid", str(d), "-no-shutdown",
            "-chardev", "socket,id=libxl-cmd,path=%s,server=on,wait=off" % qmp,
            "-mon", "chardev=libxl-cmd,mode=control", "-nodefaults", "-no-user-config",
            "-name", name, "-vnc", "127.0.0.1:0,to=99", "-display", "none",
            "-serial", "pty", "-device", "cirrus-vga,vgamem_mb=8", "-boot", "order=cda",
            "-smp", "1,maxcpus=1", "-device", "rtl8139,id=nic0,netdev=net0,mac=00:16:3e:00:00:01",
            "-netdev", "type=tap,id=net0,ifname=vif%d.0-emu,script=no,downscript=no" % d,
            "-machine", "xenfv,suppress-vmdesc=on", "-m", "1016",
            "-drive", "file=/dev/vg/hvm,if=ide,index=0,media=disk,format=raw,cache=writeback"]


def restrict_argv(host, lx, d, name, fd):
    """dm_restrict=1: the QMP socket pre-opened and passed by number, the
    device model chrooted, run as another user, started paused."""
    return [lx.path, "-xen-domid", str(d), "-no-shutdown",
            "-chardev", "socket,id=libxl-cmd,fd=%d,server=on,wait=off" % fd,
            "-mon", "chardev=libxl-cmd,mode=control",
            "-chardev", "pty,id=libxl-channel1",
            "-nodefaults", "-no-user-config", "-xen-attach", "-name", name,
            "-vnc", "none", "-display", "none", "-nographic",
            "-xen-domid-restrict", "-chroot", "/var/empty", "-runas", "xen-qemuuser-range-base",
            "-S", "-machine", "xenpv", "-m", "128"]


def probe_words(lx, fd):
    return [lx.path, "-S", "-no-user-config", "-nodefaults", "-nographic",
            "-machine", "none,accel=xen",
            "-chardev", "socket,id=libxl-cmd,fd=%d,server=on,wait=off" % fd,
            "-mon", "chardev=libxl-cmd,mode=control"]


def backend(host, kind, d, devid=0):
    """A backend of this kind for domain d, as libxl writes it before it
    starts the device model."""
    p = "/local/domain/0/backend/%s/%d/%d" % (kind, d, devid)
    host.xs.write(p + "/frontend-id", str(d))
    host.xs.write(p + "/state", "1")


# ---- the QEMU path: identical to a direct start, nothing created -----------------

def qemu_case(host, case):
    """(argv, env or None, caller, domid, why pattern) for one QEMU case."""
    lx = Libexec(host)
    caller = Caller(host)
    env = None
    name = "g-" + case
    if case == "no-domain":
        d = 77                     # never created: not introduced
    else:
        d = host.domain_create(name)
        host.channel_add(d, "org.example.a", devid=1, connection="pty")
    chardevs = [(1, None)]
    if case in ("qdisk", "vkbd", "9pfs", "qusb"):
        backend(host, case, d, 51712 if case == "qdisk" else 0)
        argv, why = pv_argv(host, lx, d, name, chardevs), "/backend/%s/%d: " % (case, d)
    elif case == "vfb":
        backend(host, "vfb", d)
        backend(host, "vkbd", d)
        argv = pv_argv(host, lx, d, name, chardevs, ["-vnc", "127.0.0.1:0,to=99"])
        why = "-vnc 127.0.0.1:0,to=99: a VNC display"
    elif case == "vfb-nodes":
        backend(host, "vfb", d)
        argv, why = pv_argv(host, lx, d, name, chardevs), "/backend/vfb/%d: a framebuffer" % d
    elif case == "hvm":
        argv, why = hvm_argv(host, lx, d, name), "-vnc 127.0.0.1:0,to=99: a VNC display"
    elif case == "dm_restrict":
        fd = caller.qmp_listener(os.path.join(host.dir, "qmp-libxl-%d" % d))
        argv, why = restrict_argv(host, lx, d, name, fd), "fd=%d.*dm_restrict" % fd
    elif case == "extra-args":
        # libvirt's <xen:commandline><xen:arg value='-trace'/>... (b_info->extra)
        argv = pv_argv(host, lx, d, name, chardevs, ["-trace", "events=/x"])
        why = "unknown option -trace"
    elif case == "no-domain":
        argv, why = pv_argv(host, lx, d, name, chardevs), "no such domain"
    elif case == "xenstore-unreachable":
        env = dict(host.env, XENSTORED_PATH=os.path.join(host.dir, "no-xenstored.sock"))
        argv, why = pv_argv(host, lx, d, name, chardevs), "cannot open xenstore"
    elif case == "xenstore-unreadable":
        # xenstored fails to list a backend directory (EIO): what the
        # backends are is unknown.
        host.xs.control("fail-directory", "/local/domain/0/backend/vfb/%d" % d, "1")
        argv, why = pv_argv(host, lx, d, name, chardevs), "backend/vfb/%d: cannot read it" % d
    elif case == "probe":
        d = 0
        fd = caller.qmp_listener(os.path.join(host.dir, "qmp-libxl-probe"))
        argv, why = probe_words(lx, fd), "libxl needs QEMU's answer"
    else:
        raise AssertionError(case)
    return lx, argv, env, caller, d, why


QEMU_CASES = ["qdisk", "vfb", "vfb-nodes", "vkbd", "9pfs", "qusb", "hvm", "dm_restrict",
              "extra-args", "no-domain", "xenstore-unreachable", "xenstore-unreadable", "probe"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", QEMU_CASES)
def test_qemu_gets_the_guest_exactly_as_libxl_started_it(host, case):
    lx, argv, env, caller, d, why = qemu_case(host, case)
    fds = caller.fds()
    try:
        # libxl without the package: QEMU at the default path, run directly.
        proc, log = libxl_spawn(host, lx, argv, d, caller, env, executable=lx.distrib)
        assert wait_proc_exit(proc, 20) == 0
        direct = lx.record()
        before = xs_tree(host.xs)
        files = set(os.listdir(host.dir))
        proc, log = libxl_spawn(host, lx, argv, d, caller, env)
        assert wait_proc_exit(proc, 20) == 0, open(log).read()
        got = lx.record()
        # Nothing created: no node (but the pid libxl wrote), no file or
        # socket, no child.
        after = xs_tree(host.xs)
        pid_node = "/local/domain/%d/image/device-model-pid" % d
        assert after.pop(pid_node, None) == (str(proc.pid).encode() if d else None)
        before.pop(pid_node, None)
        assert after == before
        assert set(os.listdir(host.dir)) == files
        assert got["children"] == []
    finally:
        caller.close()
    # QEMU ran in the process libxl started (whose pid it recorded), and saw
    # what it sees when started directly: argv (argv[0] libxl's path),
    # environment, descriptors with their flags and targets, signal mask,
    # ignored and caught signals, umask, directory.
    assert got["pid"] == [str(proc.pid)]
    assert direct.pop("pid") != got.pop("pid")
    assert got["argv"] == argv
    assert (CONSOLE_LIMIT[0] + "=" + CONSOLE_LIMIT[1]) in got["env"]
    assert set(fds) <= set(got["fd"]), got["fd"]
    assert int(got["sigmask"][0], 16) == sum(1 << (s - 1) for s in BLOCKED)
    assert got["umask"] == ["027"]
    assert got == direct
    line = first_line(log)
    target = "libxl's command-line probe: " if case == "probe" else "domain %d: " % d
    assert line.startswith("xenchan-dm-dispatch: %sQEMU (%s): " % (target, lx.distrib)), line
    assert re.search(why, line), line


# ---- the xenchan-dm path ------------------------------------------------------------

@pytest.mark.timeout(90)
@pytest.mark.parametrize("guest,qemu", [("PV", True), ("PVH", True), ("PV", False)])
def test_channel_only_guest_runs_xenchan_dm(host, guest, qemu):
    """xl 4.17's two-channel guest (test_dm.two_channel_domain); PVH gets the
    same argv and nodes.  xenchan-dm of this build serves it in the process
    libxl started, with or without QEMU installed; bytes both ways; libxl's
    destroy ends it."""
    lx = Libexec(host, qemu=qemu)
    d, sock, g1, g2, argv = two_channel_domain(host, name="web-" + guest)
    argv = [lx.path] + argv[argv.index("-xen-domid"):]
    dm = start_dm(host, argv, d)
    assert os.readlink("/proc/%d/exe" % dm.proc.pid) == os.path.join(host.build, "xenchan-dm")
    with open("/proc/%d/cmdline" % dm.proc.pid, "rb") as f:
        assert f.read().split(b"\0")[:-1] == [a.encode() for a in argv]
    assert first_line(dm.log_path) == ("xenchan-dm-dispatch: domain %d: xenchan-dm: 3 channels "
                                       "and no device only QEMU serves" % d)
    connected(host, d, 1)
    connected(host, d, 2)
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        exchange(c, t, 64 * KIB)
    assert not os.path.exists(lx.record_path)
    libxl_destroy(host, dm, [g1, g2])
    assert dm.wait() == 0


@pytest.mark.timeout(60)
def test_probe_without_qemu_answered_by_xenchan_dm(host):
    """libxl 4.20's probe with no QEMU installed: xenchan-dm answers it."""
    lx = Libexec(host, qemu=False)
    d = host.domain_create("web1")
    probe = Probe(host, d, edit=lambda argv: [lx.path] + argv[argv.index("-S"):])
    options = libxl_probe_exchange(probe)
    assert "chardev" in options
    probe.sock.close()
    probe.libxl_kill()
    assert wait_proc_exit(probe.proc, 15) == 0
    line = first_line(probe.log_path)
    assert line.startswith("xenchan-dm-dispatch: libxl's command-line probe: xenchan-dm: no QEMU "
                           "at %s, which would get it" % lx.distrib), line


@pytest.mark.timeout(60)
def test_guest_needing_qemu_without_qemu_refused_by_xenchan_dm(host):
    """A qdisk guest and no QEMU installed: xenchan-dm refuses it with its
    reason (libxl reports the device model's failure), having created
    nothing either."""
    lx = Libexec(host, qemu=False)
    d = host.domain_create("g1")
    host.channel_add(d, "org.example.a", devid=1, connection="pty")
    backend(host, "qdisk", d, 51712)
    host.xs.mkdir(dm_node(d))
    caller = Caller(host)
    try:
        proc, log = libxl_spawn(host, lx, pv_argv(host, lx, d, "g1", [(1, None)]), d, caller)
        assert wait_proc_exit(proc, 20) == EX_CONFIG
    finally:
        caller.close()
    with open(log) as f:
        text = f.read()
    assert text.startswith("xenchan-dm-dispatch: domain %d: xenchan-dm: no QEMU at %s, which "
                           "would get it: /local/domain/0/backend/qdisk/%d: " % (d, lx.distrib, d)), text
    assert "only QEMU can serve this domain" in text, text
    assert not host.xs.exists(dm_node(d, "state"))
    assert not host.xs.exists(be(d, 1) + "/xenchan-pid")


# ---- the dispatcher under valgrind (make check-valgrind) -------------------------

def under_valgrind(argv, report):
    """argv run by $XENCHAN_WRAPPER (valgrind in make check-valgrind), its
    report in the file report.  Valgrind reports the dispatcher's errors as
    they happen, before its exec, after which the program it chose runs
    natively (no --trace-children)."""
    return shlex.split(os.environ["XENCHAN_WRAPPER"]) + ["--log-file=" + report] + argv


def report_of(path):
    with open(path, errors="replace") as f:
        return f.read()


needs_valgrind = pytest.mark.skipif(not os.environ.get("XENCHAN_WRAPPER"),
                                    reason="make check-valgrind runs the dispatcher under valgrind")


@needs_valgrind
@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", QEMU_CASES)
def test_dispatcher_under_valgrind_to_qemu(host, case):
    """Every QEMU case's decision, taken under valgrind: no error reported,
    and QEMU's stand-in ran with libxl's argv."""
    lx, argv, env, caller, d, why = qemu_case(host, case)
    report = os.path.join(host.dir, "valgrind.report")
    try:
        words = under_valgrind(argv, report)
        proc, log = libxl_spawn(host, lx, words, d, caller, env,
                                executable=shutil.which(words[0]))
        assert wait_proc_exit(proc, 60) == 0, open(log).read()
        got = lx.record()
    finally:
        caller.close()
    assert report_of(report) == ""
    assert got["argv"] == argv
    assert re.search(why, first_line(log)), first_line(log)


@needs_valgrind
@pytest.mark.timeout(120)
@pytest.mark.parametrize("qemu", [True, False])
def test_dispatcher_under_valgrind_to_xenchan_dm(host, qemu):
    """A channel-only guest's decision under valgrind, with and without QEMU
    installed: no error reported, and xenchan-dm serves the guest."""
    lx = Libexec(host, qemu=qemu)
    d, sock, g1, g2, argv = two_channel_domain(host)
    report = os.path.join(host.dir, "valgrind.report")
    dm = start_dm(host, under_valgrind([lx.path] + argv[argv.index("-xen-domid"):], report), d)
    assert os.readlink("/proc/%d/exe" % dm.proc.pid) == os.path.join(host.build, "xenchan-dm")
    assert first_line(dm.log_path).startswith("xenchan-dm-dispatch: domain %d: xenchan-dm: " % d)
    connected(host, d, 1)
    with wait_socket_connectable(sock) as c, g1.connect() as t:
        exchange(c, t, 4 * KIB)
    libxl_destroy(host, dm, [g1, g2])
    assert dm.wait() == 0
    assert report_of(report) == ""


@needs_valgrind
@pytest.mark.timeout(120)
def test_dispatcher_under_valgrind_refused(host):
    """A qdisk guest and no QEMU: the dispatcher's "no QEMU" decision under
    valgrind reports no error; xenchan-dm refuses the guest."""
    lx = Libexec(host, qemu=False)
    d = host.domain_create("g1")
    host.channel_add(d, "org.example.a", devid=1, connection="pty")
    backend(host, "qdisk", d, 51712)
    host.xs.mkdir(dm_node(d))
    report = os.path.join(host.dir, "valgrind.report")
    caller = Caller(host)
    try:
        argv = under_valgrind(pv_argv(host, lx, d, "g1", [(1, None)]), report)
        proc, log = libxl_spawn(host, lx, argv, d, caller,
                                executable=shutil.which(argv[0]))
        assert wait_proc_exit(proc, 60) == EX_CONFIG, open(log).read()
    finally:
        caller.close()
    assert report_of(report) == ""
    assert "only QEMU can serve this domain" in open(log).read()
