# SPDX-License-Identifier: MIT
"""Tests of the simulated host's own parts (tests/sim/README.md): the test
libxengnttab.so.1 and libxenevtchn.so.1 (gnttab-sim.c, evtchn-sim.c),
guest-sim and mini-backend.

These do not use xensim or the proxy: each test starts its own
xenstored-sim in a fresh directory and writes a channel's nodes itself, as
protocol.md's "What the toolstack writes" says.  The libraries are driven
through ctypes, in this process or in helper processes (this file run with
--child) where a second process is the point: shared memory, a peer's death.

Run: /usr/bin/python3 -m pytest -q tests/test_simlibs.py (after make sim).
"""
import ast
import ctypes
import errno
import functools
import mmap
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("XENCHAN_BUILD", os.path.join(os.path.dirname(HERE), "build"))
SIM_BIN = os.path.join(BUILD, "sim")
LIB_DIR = os.path.join(SIM_BIN, "lib")
PAGE = 4096
RW = mmap.PROT_READ | mmap.PROT_WRITE
MiB = 1 << 20
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:")


# ---- the libraries through ctypes, in helper processes ---------------------------
# They are loaded only in helper processes (this file run with --child), never
# into pytest itself: a sanitizer build's libraries need their runtime loaded
# first (LD_PRELOAD), and a library bug must not take pytest down with it.

def _load_libs():
    g = ctypes.CDLL(os.path.join(LIB_DIR, "libxengnttab.so.1"), use_errno=True)
    e = ctypes.CDLL(os.path.join(LIB_DIR, "libxenevtchn.so.1"), use_errno=True)
    vp, u32, i = ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int
    sigs = [
        (g.xengnttab_open, vp, [vp, ctypes.c_uint]),
        (g.xengntshr_open, vp, [vp, ctypes.c_uint]),
        (g.xengnttab_map_grant_ref, vp, [vp, u32, u32, i]),
        (g.xengnttab_unmap, i, [vp, vp, u32]),
        (g.xengntshr_share_pages, vp, [vp, u32, i, ctypes.POINTER(u32), i]),
        (g.xengntshr_unshare, i, [vp, vp, u32]),
        (e.xenevtchn_open, vp, [vp, ctypes.c_uint]),
        (e.xenevtchn_close, i, [vp]),
        (e.xenevtchn_fd, i, [vp]),
        (e.xenevtchn_notify, i, [vp, u32]),
        (e.xenevtchn_bind_unbound_port, i, [vp, u32]),
        (e.xenevtchn_bind_interdomain, i, [vp, u32, u32]),
        (e.xenevtchn_unbind, i, [vp, u32]),
        (e.xenevtchn_pending, i, [vp]),
        (e.xenevtchn_unmask, i, [vp, u32]),
    ]
    for fn, res, args in sigs:
        fn.restype, fn.argtypes = res, args
    return g, e


def _check(res, what, ok=bool):
    if not ok(res):
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return res


class SimLibs:
    """Handles of the test gnttab/evtchn libraries, acting as the domain
    $XENSIM_DOMID of the host $XENSIM_DIR (read when a handle opens)."""

    def __init__(self):
        self.g, self.e = _load_libs()
        self.gt = _check(self.g.xengnttab_open(None, 0), "xengnttab_open")
        self.gs = _check(self.g.xengntshr_open(None, 0), "xengntshr_open")
        self.xce = _check(self.e.xenevtchn_open(None, 0), "xenevtchn_open")

    # grants
    def share(self, grantee, writable=True):
        ref = ctypes.c_uint32()
        addr = _check(self.g.xengntshr_share_pages(self.gs, grantee, 1, ctypes.byref(ref),
                                                   int(writable)), "share_pages")
        return addr, ref.value

    def unshare(self, addr):
        _check(self.g.xengntshr_unshare(self.gs, addr, 1), "unshare", ok=lambda r: r == 0)

    def map(self, dom, ref, prot=RW):
        return _check(self.g.xengnttab_map_grant_ref(self.gt, dom, ref, prot), "map")

    def unmap(self, addr):
        _check(self.g.xengnttab_unmap(self.gt, addr, 1), "unmap", ok=lambda r: r == 0)

    @staticmethod
    def peek(addr, n):
        return ctypes.string_at(addr, n)

    @staticmethod
    def poke(addr, data):
        ctypes.memmove(addr, data, len(data))

    # event channels
    def bind_unbound(self, remote_dom):
        return _check(self.e.xenevtchn_bind_unbound_port(self.xce, remote_dom),
                      "bind_unbound_port", ok=lambda r: r >= 0)

    def bind(self, remote_dom, remote_port):
        return _check(self.e.xenevtchn_bind_interdomain(self.xce, remote_dom, remote_port),
                      "bind_interdomain", ok=lambda r: r >= 0)

    def unbind(self, port):
        _check(self.e.xenevtchn_unbind(self.xce, port), "unbind", ok=lambda r: r == 0)

    def notify(self, port, times=1):
        for _ in range(times):
            _check(self.e.xenevtchn_notify(self.xce, port), "notify", ok=lambda r: r == 0)

    def pending(self):
        """The next delivered port, or None (the library says EAGAIN)."""
        ctypes.set_errno(0)
        p = self.e.xenevtchn_pending(self.xce)
        if p < 0:
            assert ctypes.get_errno() == errno.EAGAIN
            return None
        return p

    def unmask(self, port):
        _check(self.e.xenevtchn_unmask(self.xce, port), "unmask", ok=lambda r: r == 0)

    def readable(self, timeout=0.0):
        """Does the handle's fd poll readable (an unmasked port pending)?"""
        fd = self.e.xenevtchn_fd(self.xce)
        return bool(select.select([fd], [], [], timeout)[0])

    def close_evtchn(self):
        self.e.xenevtchn_close(self.xce)


def _child_main():
    """The helper process: one call per line in ("name", args), one answer
    per line out: ("ok", value) or ("err", errno)."""
    libs = SimLibs()
    for line in sys.stdin:
        name, args = ast.literal_eval(line)
        try:
            answer = ("ok", getattr(libs, name)(*args))
        except OSError as e:
            answer = ("err", e.errno)
        print(repr(answer), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--child"]:
    _child_main()     # before the imports below, which the helper does not need
    sys.exit(0)

import pytest  # noqa: E402

sys.path.insert(0, HERE)
from simhost import exchange, recv_exact, send_all, wait_file, wait_proc_exit  # noqa: E402
from xslib import XS  # noqa: E402


@functools.lru_cache(maxsize=None)
def sanitizer_env():
    """LD_PRELOAD of the sanitizer runtime a SAN=1 build's libraries need
    when loaded into python, which is not built with it."""
    out = subprocess.run(["ldd", os.path.join(LIB_DIR, "libxenevtchn.so.1")],
                         capture_output=True, text=True).stdout
    m = re.search(r"libasan\.so\.\d+ => (\S+)", out)
    return {"LD_PRELOAD": m.group(1), "ASAN_OPTIONS": "detect_leaks=0"} if m else {}


class Child:
    """A helper process acting as domain `domid` through the libraries:
    child.share(0) runs SimLibs.share(0) there; an OSError comes back as one."""

    def __init__(self, simdir, domid):
        env = dict(os.environ, XENSIM_DIR=simdir, XENSIM_DOMID=str(domid), **sanitizer_env())
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True)

    def __getattr__(self, name):
        return lambda *args: self._call(name, args)

    def _call(self, name, args, timeout=10):
        self.proc.stdin.write(repr((name, args)) + "\n")
        self.proc.stdin.flush()
        if not select.select([self.proc.stdout], [], [], timeout)[0]:
            raise TimeoutError("child: no answer to %s%r" % (name, args))
        line = self.proc.stdout.readline()
        assert line, "child exited (%s) in %s%r" % (self.proc.wait(), name, args)
        kind, value = ast.literal_eval(line)
        if kind == "err":
            raise OSError(value, "child: %s%r: %s" % (name, args, os.strerror(value)))
        return value

    def kill(self):
        self.proc.kill()
        self.proc.wait()


# ---- a host of our own: xenstored-sim and the processes of a test ---------------

class Sim:
    """xenstored-sim in a fresh short directory (Unix socket paths must stay
    under 108 bytes), the processes a test starts, and helpers."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="simlibs-", dir="/tmp")
        os.mkdir(os.path.join(self.dir, "guest"))   # for wait_file's inotify
        self.sock = os.path.join(self.dir, "xenstored.sock")
        self.procs = []
        self.xs = None

    def env(self, domid=0):
        return dict(os.environ, XENSIM_DIR=self.dir, XENSTORED_PATH=self.sock,
                    XENSIM_DOMID=str(domid))

    def start(self):
        pid_file = os.path.join(self.dir, "xenstored.pid")
        proc = self.spawn([os.path.join(SIM_BIN, "xenstored-sim"), "--socket", self.sock,
                           "--pid-file", pid_file], "xenstored-sim")
        wait_file(pid_file, 10, proc)
        # The libraries' privileged half: grant files, port sockets, records.
        pid_file = os.path.join(self.dir, "simhvd.pid")
        proc = self.spawn([os.path.join(SIM_BIN, "simhvd"), "--dir", self.dir,
                           "--pid-file", pid_file], "simhvd")
        wait_file(pid_file, 10, proc)
        self.xs = XS(self.sock)

    def spawn(self, argv, log_name, domid=0, **kw):
        log = open(os.path.join(self.dir, log_name + ".log"), "ab")
        proc = subprocess.Popen(argv, env=self.env(domid), stderr=log, **kw)
        log.close()
        self.procs.append(proc)
        return proc

    def log(self, log_name):
        with open(os.path.join(self.dir, log_name + ".log"), errors="replace") as f:
            return f.read()

    def stop(self):
        """Kill what is left; the sanitizer reports of guest-sim and
        mini-backend (a SAN=1 build), if any."""
        for p in reversed(self.procs):
            if p.poll() is None:
                p.kill()
            p.wait()
        if self.xs:
            self.xs.close()
        reports = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(("guest-", "backend-")) and name.endswith(".log"):
                text = self.log(name[:-4])
                if SANITIZER_RE.search(text):
                    reports.append("%s:\n%s" % (name, text[-4000:]))
        shutil.rmtree(self.dir, ignore_errors=True)
        return reports

    # xenstore
    def add_channel(self, d, n, name="org.example.test", b=0):
        """Frontend and backend nodes of channel n of domain d, served by
        domain b, as libxl writes them (one transaction, its permissions)."""
        fe = "/local/domain/%d/device/console/%d" % (d, n)
        be = "/local/domain/%d/backend/console/%d/%d" % (b, d, n)
        guest_rw, backend_rw = ["n%d" % d, "r%d" % b], ["n%d" % b, "r%d" % d]
        nodes = []
        for path in ("/local/domain/%d" % d, "/local/domain/%d/device" % d):
            if not self.xs.exists(path):    # the domain, as libxl makes it
                nodes.append((path, "", ["n0", "r%d" % d]))
        nodes += [
            (fe, "", guest_rw), (fe + "/backend", be, guest_rw),
            (fe + "/backend-id", str(b), guest_rw), (fe + "/state", "1", guest_rw),
            (fe + "/protocol", "x86_64-abi", guest_rw),
            (fe + "/name", name, backend_rw), (fe + "/limit", "1048576", backend_rw),
            (fe + "/type", "xenchan", backend_rw), (fe + "/output", "pty", backend_rw),
            (fe + "/tty", "", backend_rw),
            (be, "", backend_rw), (be + "/frontend", fe, backend_rw),
            (be + "/frontend-id", str(d), backend_rw), (be + "/online", "1", backend_rw),
            (be + "/state", "1", backend_rw), (be + "/protocol", "x86_64-abi", backend_rw),
            (be + "/name", name, backend_rw), (be + "/connection", "pty", backend_rw),
        ]
        for _ in range(10):
            tx = self.xs.tx_start()
            for path, value, perms in nodes:
                self.xs.write(path, value, tx)
                self.xs.chmod(path, perms, tx)
            try:
                self.xs.tx_end(tx)
                return fe, be
            except OSError as e:
                if e.errno != errno.EAGAIN:
                    raise
        raise AssertionError("add_channel: transaction kept failing")

    def read(self, path):
        try:
            return self.xs.read(path).decode()
        except FileNotFoundError:
            return None

    def wait_xs(self, path, want, timeout=10, proc=None):
        """Wait (a xenstore watch) until path reads want (None: absent);
        fail at once if proc (a Popen) exits first."""
        token = "w%d" % time.monotonic_ns()
        self.xs.watch(path, token)
        pidfd = os.pidfd_open(proc.pid) if proc is not None and proc.poll() is None else None
        end = time.monotonic() + timeout
        try:
            while (got := self.read(path)) != want:
                if proc is not None and proc.poll() is not None:
                    raise AssertionError("%s exited (%s) while waiting for %s = %r (is %r)"
                                         % (proc.args[0], proc.returncode, path, want, got))
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("%s is %r, not %r, after %gs" % (path, got, want, timeout))
                fds = [self.xs.fileno()] + ([pidfd] if pidfd is not None else [])
                select.select(fds, [], [], left)
                self.xs.drain_watches()
        finally:
            if pidfd is not None:
                os.close(pidfd)
            self.xs.unwatch(path, token)
            self.xs.drain_watches()

    # programs
    def guest(self, d, n=None, name=None, hostile=None, stdio=False):
        """guest-sim for device n (or channel `name`) of domain d, once its
        pid file says it is ready; its tty a socket unless stdio."""
        label = "%d-%s" % (d, n if n is not None else name)
        argv = [os.path.join(SIM_BIN, "guest-sim")]
        sock = None
        if not stdio:
            sock = os.path.join(self.dir, "tty-%s.sock" % label)
            argv += ["--socket", sock]
        if name:
            argv += ["--name", name]
        if hostile:
            argv += ["--hostile", hostile]
        argv += [str(d)] + ([str(n)] if n is not None else [])
        pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE) if stdio else {}
        proc = self.spawn(argv, "guest-" + label, domid=d, **pipes)
        wait_file(os.path.join(self.dir, "guest", label + ".pid"), 10, proc)
        proc.label, proc.sock = label, sock
        return proc

    def stats(self, label):
        with open(os.path.join(self.dir, "guest", label + ".stats")) as f:
            return dict(line.strip().split("=", 1) for line in f if "=" in line)

    def backend(self, d, n, *args, **popen_kw):
        kw = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        kw.update(popen_kw)
        return self.spawn([os.path.join(SIM_BIN, "mini-backend"), str(d), str(n)] + list(args),
                          "backend-%d-%d" % (d, n), **kw)


@pytest.fixture
def sim():
    for f in ("xenstored-sim", "simhvd", "guest-sim", "mini-backend", "lib/libxengnttab.so.1",
              "lib/libxenevtchn.so.1"):
        if not os.path.exists(os.path.join(SIM_BIN, f)):
            pytest.fail("%s/%s is missing: run make sim (or set XENCHAN_BUILD)" % (SIM_BIN, f))
    s = Sim()
    try:
        s.start()
        yield s
    finally:
        reports = s.stop()
    if reports:
        pytest.fail("sanitizer reports:\n" + "\n".join(reports))


# ---- grants ------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_grant_shared_by_one_process_maps_in_another_as_the_same_memory(sim):
    guest, dom0 = Child(sim.dir, 7), Child(sim.dir, 0)
    addr, ref = guest.share(0)
    assert ref >= 8, "Linux leaves grant refs 0-7 to the toolstack"
    guest.poke(addr, b"from the guest")
    page = dom0.map(7, ref)
    assert dom0.peek(page, 14) == b"from the guest"
    assert dom0.peek(page + 14, PAGE - 14) == bytes(PAGE - 14), "shared zeroed"
    dom0.poke(page + 100, b"from dom0")
    assert guest.peek(addr + 100, 9) == b"from dom0"
    # A second grant gets its own ref and its own page.
    addr2, ref2 = guest.share(0)
    assert ref2 != ref
    assert dom0.peek(dom0.map(7, ref2), 14) == bytes(14)
    # Unsharing ends the grant; a mapping made before stays usable.
    guest.unshare(addr)
    with pytest.raises(OSError) as e:
        dom0.map(7, ref)
    assert e.value.errno == errno.EINVAL
    assert dom0.peek(page, 14) == b"from the guest"
    dom0.unmap(page)
    with pytest.raises(OSError) as e:
        dom0.unmap(page)                # not mapped any more
    assert e.value.errno == errno.EINVAL


@pytest.mark.timeout(30)
def test_grant_bad_ref_wrong_grantee_and_read_only_fail_to_map(sim):
    guest, dom0 = Child(sim.dir, 7), Child(sim.dir, 0)
    for dom, ref in ((7, 9999), (7, 0), (8, 8)):
        with pytest.raises(OSError) as e:
            dom0.map(dom, ref)
        assert e.value.errno == errno.EINVAL, (dom, ref)
    _, ref_for_3 = guest.share(3)
    with pytest.raises(OSError) as e:
        dom0.map(7, ref_for_3)
    assert e.value.errno == errno.EINVAL
    _, ro = guest.share(0, False)
    with pytest.raises(OSError) as e:
        dom0.map(7, ro, RW)
    assert e.value.errno == errno.EINVAL
    assert dom0.peek(dom0.map(7, ro, mmap.PROT_READ), 4) == bytes(4)


# ---- event channels --------------------------------------------------------------

def _refused(child, dom, port):
    with pytest.raises(OSError) as e:
        child.bind(dom, port)
    return e.value.errno == errno.EINVAL


@pytest.mark.timeout(30)
def test_bind_interdomain_follows_xen_rules(sim):
    guest, dom0, dom5 = Child(sim.dir, 7), Child(sim.dir, 0), Child(sim.dir, 5)
    port = guest.bind_unbound(0)
    assert _refused(dom0, 7, 999), "a port that does not exist"
    assert _refused(dom0, 7, 0), "port 0 is reserved"
    assert _refused(dom5, 7, port), "a port allocated for another domain"
    local = dom0.bind(7, port)
    assert _refused(Child(sim.dir, 0), 7, port), "a port already bound"
    # Unbinding reverts the guest's port to unbound: a restarted backend binds again.
    dom0.unbind(local)
    again = dom0.bind(7, port)
    # A backend whose process died counts as gone: its ports closed with it.
    backend = Child(sim.dir, 0)
    dom0.unbind(again)
    backend.bind(7, port)
    assert _refused(dom0, 7, port)
    backend.kill()
    dom0.bind(7, port)
    # A guest whose process died has no ports left to bind.
    dead_guest = Child(sim.dir, 9)
    p9 = dead_guest.bind_unbound(0)
    dead_guest.kill()
    assert _refused(dom0, 9, p9)


@pytest.mark.timeout(30)
def test_notifications_coalesce_and_need_unmask(sim):
    guest, dom0 = Child(sim.dir, 7), Child(sim.dir, 0)
    gport = guest.bind_unbound(0)
    guest.notify(gport)                 # unbound: dropped silently, as on Xen
    bport = dom0.bind(7, gport)
    # Xen sets the binder's new port pending (events may have been lost).
    assert dom0.readable(5) and dom0.pending() == bport
    dom0.unmask(bport)
    assert not dom0.readable() and dom0.pending() is None

    guest.notify(gport, 5)              # five events, one delivery
    assert dom0.readable(5)
    assert dom0.pending() == bport
    assert dom0.pending() is None and not dom0.readable()
    guest.notify(gport, 3)              # while masked: pending, not delivered
    assert not dom0.readable(0.2)
    dom0.unmask(bport)                  # unmask re-delivers what is pending
    assert dom0.readable(5) and dom0.pending() == bport
    dom0.unmask(bport)
    assert not dom0.readable(0.2), "nothing pending after the re-delivery"

    dom0.notify(bport)                  # and the other way
    assert guest.readable(5) and guest.pending() == gport
    guest.unmask(gport)
    with pytest.raises(OSError) as e:
        guest.notify(gport + 100)       # not a port of this handle
    assert e.value.errno == errno.ENOTCONN
    # A notify on a full queue must not block or fail: it is already pending.
    guest.notify(gport, 5000)
    assert dom0.pending() == bport and dom0.pending() is None
    dom0.close_evtchn()                 # closing reverts the guest's port
    guest.notify(gport)                 # to unbound: a silent no-op again
    assert Child(sim.dir, 0).bind(7, gport) > 0


@pytest.mark.timeout(30)
def test_broken_state_files_are_errors_not_crashes(sim):
    """What a hostile or dead peer may leave behind: garbage records, grants
    of the wrong size or kind.  Every call fails cleanly; nothing crashes."""
    guest, dom0 = Child(sim.dir, 7), Child(sim.dir, 0)
    port = guest.bind_unbound(0)
    record = os.path.join(sim.dir, "evtchn", "7", str(port))
    for junk in (b"\x00\xff" * 64, b"unbound 0 ../../../tmp/x", b"unbound 0 " + b"1" * 200,
                 b"interdomain 0 99999999999 1.1.1", b"unbound 0", b"x" * MiB):
        with open(record, "wb") as f:
            f.write(junk)
        assert _refused(dom0, 7, port), junk[:40]
        guest.notify(port)              # our own record is junk: a no-op
    # A junk record in dom0's table: the next allocation takes the lowest
    # number with no record (junk is reclaimed, like a dead owner's port,
    # only once every number has a record).
    os.makedirs(os.path.join(sim.dir, "evtchn", "0"), exist_ok=True)
    with open(os.path.join(sim.dir, "evtchn", "0", "1"), "wb") as f:
        f.write(b"\xff" * 100)
    assert dom0.bind_unbound(7) == 2
    grants = os.path.join(sim.dir, "grant", "7")
    os.makedirs(grants, exist_ok=True)
    with open(os.path.join(grants, "50.0"), "wb") as f:
        f.write(b"short")
    os.mkdir(os.path.join(grants, "51.0"))
    os.symlink("/etc/passwd", os.path.join(grants, "52.0"))
    with open(os.path.join(grants, "53.0"), "wb") as f:
        f.write(bytes(2 * PAGE))
    for ref in (50, 51, 52, 53):
        with pytest.raises(OSError) as e:
            dom0.map(7, ref)
        assert e.value.errno == errno.EINVAL, ref
    assert guest.share(0)[1] >= 8 and dom0.pending() is None   # both still alive


@pytest.mark.timeout(30)
def test_libraries_open_only_with_xensim_dir(sim):
    code = ("import ctypes, sys; l = ctypes.CDLL(sys.argv[1]); "
            "l.xenevtchn_open.restype = ctypes.c_void_p; "
            "sys.exit(0 if l.xenevtchn_open(None, 0) is None else 1)")
    env = {k: v for k, v in os.environ.items() if k != "XENSIM_DIR"}
    env.update(sanitizer_env())
    r = subprocess.run([sys.executable, "-c", code, os.path.join(LIB_DIR, "libxenevtchn.so.1")],
                       env=env, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "XENSIM_DIR is not set" in r.stderr


def _exported(lib):
    out = subprocess.run(["objdump", "-T", lib], capture_output=True, text=True,
                         check=True).stdout
    return sorted(tuple(line.split()[-2:]) for line in out.splitlines()
                  if " VERS_" in line and "*UND*" not in line)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", ["libxengnttab.so.1", "libxenevtchn.so.1"])
def test_libraries_export_debians_symbols_and_versions(name):
    real = os.path.join("/usr/lib/x86_64-linux-gnu", name)
    if not os.path.exists(real) or not shutil.which("objdump"):
        pytest.skip("Debian's %s or objdump is not installed" % name)
    assert _exported(os.path.join(LIB_DIR, name)) == _exported(real)


# ---- guest-sim and mini-backend --------------------------------------------------

def _connected_pair(sim, d=7, n=1, hostile=None):
    fe, be = sim.add_channel(d, n)
    g = sim.guest(d, n, hostile=hostile)
    sim.wait_xs(fe + "/state", "3", proc=g)
    b = sim.backend(d, n)
    sim.wait_xs(fe + "/state", "4", proc=g)
    assert sim.read(be + "/state") == "4"
    return fe, be, g, b


def _tty(g):
    """A client of guest-sim's tty socket (it listens before its pid file)."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(g.sock)
    return s


@pytest.mark.timeout(120)
def test_guest_and_mini_backend_exchange_16_mib_each_way(sim):
    fe, be, g, b = _connected_pair(sim)
    # The probe, as hvc_xen: a grant ref and an event channel port, published.
    assert int(sim.read(fe + "/ring-ref")) >= 8 and int(sim.read(fe + "/port")) > 0
    with _tty(g) as t:
        res = exchange(t, (b.stdout, b.stdin), 16 * MiB, timeout=100)
    print("16 MiB each way through guest-sim and mini-backend: %.2f s" % res.seconds)
    # Shut the guest down (mini-backend answers) for its final statistics.
    g.terminate()
    assert wait_proc_exit(g) == 0
    b.terminate()
    assert wait_proc_exit(b) == 0
    stats = sim.stats(g.label)
    assert stats["state"] == "6"
    assert int(stats["out_bytes"]) == 16 * MiB and int(stats["in_bytes"]) == 16 * MiB
    assert int(stats["protocol_errors"]) == 0
    assert int(stats["write_waits"]) > 0 and int(stats["write_wait_ns"]) > 0


@pytest.mark.timeout(60)
def test_guest_serves_before_the_backend_and_survives_its_restart(sim):
    fe, be = sim.add_channel(7, 2)
    g = sim.guest(7, 2)
    sim.wait_xs(fe + "/state", "3", proc=g)
    with _tty(g) as t:
        send_all(t, b"early")           # sits in out[] until a backend comes
        b = sim.backend(7, 2)
        assert recv_exact(b.stdout, 5) == b"early"
        sim.wait_xs(fe + "/state", "4", proc=g)
        b.kill()                        # dies: its port goes with it
        b.wait()
        send_all(t, b"while nobody serves")
        b = sim.backend(7, 2)           # reattaches to the same page and port
        got = recv_exact(b.stdout, 19)
        if got.startswith(b"early"):
            # Killed between writing "early" out and publishing out_cons:
            # the next backend re-reads it (at-least-once, protocol.md).
            got = got[5:] + recv_exact(b.stdout, 5)
        assert got == b"while nobody serves"
        exchange(t, (b.stdout, b.stdin), 64 * 1024)
    assert sim.read(fe + "/state") == "4"


@pytest.mark.timeout(30)
def test_guest_answers_backend_closing_with_closed(sim):
    fe, be = sim.add_channel(7, 1)
    g = sim.guest(7, 1)
    sim.wait_xs(fe + "/state", "3", proc=g)
    sim.xs.write(be + "/state", "4")
    sim.wait_xs(fe + "/state", "4", proc=g)
    with _tty(g) as t:
        sim.xs.write(be + "/state", "5")
        sim.wait_xs(fe + "/state", "6", proc=g)
        t.settimeout(10)
        assert t.recv(1) == b"", "the tty is hung up, as hvc_remove does"
    assert sim.stats(g.label)["phase"] == "closed"
    # It never comes back by itself, even if the backend says Connected.
    sim.xs.write(be + "/state", "4")
    sim.xs.write(be + "/state", "2")
    g.terminate()
    assert wait_proc_exit(g) == 0
    assert sim.read(fe + "/state") == "6"
    log = sim.log("guest-" + g.label)
    assert "closed -> " not in log and "!= Connected, skipping" in log


@pytest.mark.timeout(30)
def test_sigterm_closes_with_the_backend_following(sim):
    fe, be, g, b = _connected_pair(sim)
    t0 = time.monotonic()
    g.terminate()
    assert wait_proc_exit(g, 5) == 0
    assert time.monotonic() - t0 < 4, "the backend answered: no 5 s wait"
    sim.wait_xs(be + "/state", "6", proc=b)     # mini-backend saw Closed
    assert sim.read(fe + "/state") == "6"
    assert "timeout closing device" not in sim.log("guest-" + g.label)
    stats = sim.stats(g.label)
    assert stats["state"] == "6"


@pytest.mark.timeout(30)
def test_sigterm_without_an_answer_times_out_after_5_seconds(sim):
    fe, be = sim.add_channel(7, 1)
    g = sim.guest(7, 1)
    sim.wait_xs(fe + "/state", "3", proc=g)
    sim.xs.write(be + "/state", "4")
    sim.wait_xs(fe + "/state", "4", proc=g)
    t0 = time.monotonic()
    g.terminate()
    sim.wait_xs(fe + "/state", "5", proc=g)
    sim.xs.write(be + "/state", "6")            # Closed without Closing: Linux ignores it
    assert wait_proc_exit(g, 10) == 0
    assert 4.5 < time.monotonic() - t0 < 8
    assert "timeout closing device" in sim.log("guest-" + g.label)
    assert sim.read(fe + "/state") == "5", "Linux leaves the device Closing"


@pytest.mark.timeout(60)
def test_sigusr1_reconnects_with_a_new_page_and_port(sim):
    fe, be, g, b = _connected_pair(sim)
    with _tty(g) as t:
        exchange(t, (b.stdout, b.stdin), 4096)
        g.send_signal(signal.SIGUSR1)
        t.settimeout(10)
        assert t.recv(1) == b"", "the old tty is gone"
    sim.wait_xs(fe + "/state", "4", proc=g)     # 5, 6, 1, 3, 4 with mini-backend following
    with _tty(g) as t:
        exchange(t, (b.stdout, b.stdin), 64 * 1024)
    # The ref and port numbers come back (lowest free, as the old ones were
    # released first); the page is new: zeroed, so its indices count only
    # the 64 KiB since, not the 4 KiB before.
    page = os.path.join(sim.dir, "grant", "7", sim.read(fe + "/ring-ref"))
    with open(page, "rb") as f:
        f.seek(1024 + 2048)
        assert struct.unpack("<4I", f.read(16)) == (64 * 1024,) * 4
    log = sim.log("guest-" + g.label)
    for step in ("connected -> reset-closing", "reset-closing -> reset-closed",
                 "reset-closed -> reset-init", "reset-init -> initialised",
                 "initialised -> connected"):
        assert step in log
    assert "timed out" not in log
    # A new page and port were probed (the numbers may be reused, as on Linux).
    assert log.count("probed device/console/1") == 2
    assert sim.log("backend-7-1").count("connected: ring-ref") == 2


@pytest.mark.timeout(30)
def test_guest_finds_a_hotplugged_device_by_name_and_exits_on_unplug(sim):
    g = sim.guest(7, name="org.example.late")
    assert g.poll() is None
    fe, be = sim.add_channel(7, 3, name="org.example.late")
    sim.wait_xs(fe + "/state", "3", proc=g)
    sim.xs.rm(fe)
    assert wait_proc_exit(g, 10) == 0
    assert "removed (unplug)" in sim.log("guest-" + g.label)


@pytest.mark.timeout(30)
def test_guest_stdio_tty(sim):
    fe, be = sim.add_channel(7, 1)
    g = sim.guest(7, 1, stdio=True)
    sim.wait_xs(fe + "/state", "3", proc=g)
    b = sim.backend(7, 1)
    exchange((g.stdout, g.stdin), (b.stdout, b.stdin), 256 * 1024)


@pytest.mark.timeout(30)
def test_hostile_bad_out_prod_is_a_protocol_error_for_the_backend(sim):
    fe, be, g, b = _connected_pair(sim, hostile="bad-out-prod")
    assert wait_proc_exit(b, 10) == 2
    assert "protocol error" in sim.log("backend-7-1")


@pytest.mark.timeout(30)
def test_hostile_never_read_leaves_in_full(sim):
    fe, be, g, b = _connected_pair(sim, hostile="never-read")
    b.stdin.write(b"x" * 5000)
    b.stdin.flush()
    with _tty(g) as t:
        send_all(t, b"still writes")
        assert recv_exact(b.stdout, 12) == b"still writes"
        t.setblocking(False)
        with pytest.raises(BlockingIOError):
            t.recv(1)
    assert int(sim.stats(g.label)["in_bytes"]) == 0


@pytest.mark.timeout(30)
def test_guest_sim_usage_errors(sim):
    for argv in (["--hostile", "no-such-mode", "7", "1"], [], ["7"], ["x", "1"]):
        r = subprocess.run([os.path.join(SIM_BIN, "guest-sim")] + argv, env=sim.env(7),
                           capture_output=True, timeout=10)
        assert r.returncode == 64 and b"usage" in r.stderr, argv


@pytest.mark.timeout(60)
def test_mini_backend_benchmarks_the_ring(sim):
    # guest-sim with an endless writer (/dev/zero) and reader (/dev/null).
    fe, be = sim.add_channel(8, 1)
    with open("/dev/zero", "rb") as zero, open("/dev/null", "wb") as null:
        g = sim.spawn([os.path.join(SIM_BIN, "guest-sim"), "8", "1"], "guest-8-1",
                      domid=8, stdin=zero, stdout=null)
    sim.wait_xs(fe + "/state", "3", proc=g)
    for mode in ("--bench-out", "--bench-in"):
        r = subprocess.run([os.path.join(SIM_BIN, "mini-backend"), "8", "1", mode,
                            str(8 * MiB)], env=sim.env(0), capture_output=True,
                           timeout=50, text=True)
        assert r.returncode == 0, r.stderr
        fields = dict(kv.split("=") for kv in r.stdout.split())
        assert int(fields["bytes"]) == 8 * MiB and float(fields["MBps"]) > 0
        print("ring limit %s: %s" % (mode, r.stdout.strip()))

