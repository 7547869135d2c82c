# SPDX-License-Identifier: MIT
"""The simulated Xen host, for pytest (tests/sim/README.md).

A test asks for the `host` fixture (tests/conftest.py) and gets a SimHost
already started in its own temporary directory; everything the host spawned
is killed when the test ends, and the test fails if anything is left.

    def test_hello(host):
        d = host.domain_create("web1")
        n = host.channel_add(d, "org.example.agent")
        g = host.guest(d, n)
        p = host.proxy(str(d), "org.example.agent", "--listen", host.dir + "/p.sock")
        host.wait_xs(f"/local/domain/0/backend/console/{d}/{n}/state", "4")
        with socket.socket(socket.AF_UNIX) as c, g.connect() as t:
            c.connect(host.dir + "/p.sock")
            exchange(c, t, 1 << 20)

Every wait has a deadline and waits on an event (inotify, a xenstore watch,
a pidfd, select on the sockets); nothing sleeps to synchronise.  One
bounded exception is named where it occurs: listen() raises no event, so
wait_socket_listening() re-checks through the bind-to-listen gap.

Module functions: wait_file, wait_dir, wait_socket_connectable,
wait_socket_listening, wait_proc_exit, wait_xs_at, send_all, recv_exact,
recv_until_eof, exchange, wait_asleep, thread_switches.
"""
import ctypes
import errno
import hashlib
import os
import re
import select
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from typing import NamedTuple

from xslib import XS

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_BUILD = os.path.join(os.path.dirname(HERE), "build")
SUN_PATH_MAX = 107           # sizeof(sockaddr_un.sun_path) - 1
DIR_LEN_MAX = 60             # leaves room for socket names under host.dir
SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"ERROR SUMMARY: [1-9]")


def build_dir():
    """The build directory under test: $XENCHAN_BUILD or <repo>/build."""
    return os.environ.get("XENCHAN_BUILD", DEFAULT_BUILD)


class SimError(RuntimeError):
    """A xensim command failed: .argv, .returncode (sysexits.h), .stderr."""

    def __init__(self, argv, returncode, stderr):
        super().__init__("%s exited %d: %s" % (" ".join(argv), returncode, stderr.strip()))
        self.argv, self.returncode, self.stderr = argv, returncode, stderr


class ProcessExited(RuntimeError):
    """The process a wait depended on exited first."""


class Deadline:
    def __init__(self, timeout):
        self.timeout = timeout
        self.end = time.monotonic() + timeout

    def left(self):
        return max(0.0, self.end - time.monotonic())


# ---- processes ----------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    """Orphans of our children (xenstored-sim, detached by `xensim start`)
    become our children, so we reap them instead of leaving zombies on a host
    whose init does not."""
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _pidfd(proc):
    try:
        return os.pidfd_open(proc.pid)
    except ProcessLookupError:
        return None


def wait_proc_exit(proc, timeout=10):
    """Wait (pidfd, no polling) until the Popen proc exits; its return code.
    Raises TimeoutError if it is still running at the deadline."""
    if proc.returncode is not None:
        return proc.returncode
    fd = _pidfd(proc)
    if fd is not None:
        try:
            if not select.select([fd], [], [], timeout)[0]:
                raise TimeoutError("pid %d (%s) still running after %gs"
                                   % (proc.pid, _argv0(proc), timeout))
        finally:
            os.close(fd)
    return proc.wait()


def _argv0(proc):
    args = proc.args if isinstance(proc.args, (list, tuple)) else [proc.args]
    return os.path.basename(str(args[0]))


def _stop_proc(proc, sig=signal.SIGKILL, timeout=5):
    """Signal proc if it still runs and reap it; SIGKILL if sig was not enough."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(sig)
        return wait_proc_exit(proc, timeout)
    except TimeoutError:
        proc.kill()
        return wait_proc_exit(proc, timeout)


def _proc_state(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def thread_switches(pid):
    """Context switches summed over every thread of pid (libxenstore has a
    reader thread of its own)."""
    total = {}
    tasks = "/proc/%d/task" % pid
    for tid in os.listdir(tasks):
        with open(os.path.join(tasks, tid, "status")) as f:
            for k, v in re.findall(r"(\w+_ctxt_switches):\s+(\d+)", f.read()):
                total[k] = total.get(k, 0) + int(v)
    return total


def _wchans(pid):
    out = {}
    tasks = "/proc/%d/task" % pid
    for tid in os.listdir(tasks):
        with open(os.path.join(tasks, tid, "wchan")) as f:
            out[int(tid)] = f.read()
    return out


def wait_asleep(pid, timeout=10):
    """Wait until every thread of pid sleeps in the kernel (a wchan, which
    Linux shows only for a task off the run queue), its main thread in poll,
    and no thread switched while we looked; the switch counts then.  /proc
    has no change notification: re-read every 10 ms until the deadline."""
    dl = Deadline(timeout)
    while True:
        before = thread_switches(pid)
        chans = _wchans(pid)
        asleep = all(w not in ("", "0") for w in chans.values()) and "poll" in chans[pid]
        if asleep and thread_switches(pid) == before:
            return before
        if not dl.left():
            raise TimeoutError("pid %d is not asleep: %r" % (pid, chans))
        select.select([], [], [], 0.01)


def _procs_of(tag):
    """Live (non-zombie) processes whose command line or environment names
    tag (a host directory): what a host may have left behind."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        pid = int(name)
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open("/proc/%d/environ" % pid, "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if _proc_state(pid) in (None, "Z", "X"):
            continue
        if tag + "/" in cmdline or ("XENSIM_DIR=" + tag).encode() in environ:
            found.append((pid, cmdline.strip()))
    return found


def _reap(pid):
    """Reap pid if it is our (zombie) child; ignore it otherwise."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---- inotify --------------------------------------------------------------------

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x80, 0x100, 0x200
IN_NONBLOCK, IN_CLOEXEC = os.O_NONBLOCK, os.O_CLOEXEC
_libc.inotify_init1.argtypes = [ctypes.c_int]
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


def _inotify(dirpath, mask):
    fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        e = ctypes.get_errno()
        raise OSError(e, "inotify_init1: " + os.strerror(e))
    if _libc.inotify_add_watch(fd, os.fsencode(dirpath), mask) < 0:
        e = ctypes.get_errno()
        os.close(fd)
        raise OSError(e, "inotify_add_watch %s: %s" % (dirpath, os.strerror(e)), dirpath)
    return fd


class _ExitWatch:
    """Exit of the process a wait depends on: a Popen, or a pid (not
    necessarily our child).  .fd is its pidfd (None if already gone)."""

    def __init__(self, proc):
        self.proc = proc
        pid = proc if isinstance(proc, int) else proc.pid
        try:
            self.fd = os.pidfd_open(pid)
        except ProcessLookupError:
            self.fd = None

    def status(self):
        """None while it runs; else its return code (Popen) or "exited"."""
        if not isinstance(self.proc, int):
            return self.proc.poll()
        if self.fd is None or select.select([self.fd], [], [], 0)[0]:
            return "exited"
        return None

    def check(self, what):
        st = self.status()
        if st is None:
            return
        if isinstance(self.proc, int):
            raise ProcessExited("pid %d exited before %s" % (self.proc, what))
        raise ProcessExited("%s exited (%s) before %s" % (_argv0(self.proc), st, what))

    def close(self):
        if self.fd is not None:
            os.close(self.fd)


def _wait_dir(dirpath, check, timeout, what, proc=None,
              mask=IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_DELETE):
    """Call check() now and after each change in dirpath until it returns
    something true, and return that.  TimeoutError at the deadline;
    ProcessExited if proc (a Popen or a pid) exits before check() succeeds."""
    dl = Deadline(timeout)
    ino = _inotify(dirpath, mask)
    ex = _ExitWatch(proc) if proc is not None else None
    try:
        while True:
            r = check()
            if r:
                return r
            if ex is not None:
                ex.check(what)
            fds = [ino] + ([ex.fd] if ex is not None and ex.fd is not None else [])
            if not select.select(fds, [], [], dl.left())[0]:
                r = check()
                if r:
                    return r
                raise TimeoutError("%s: not within %gs" % (what, timeout))
            try:
                os.read(ino, 65536)
            except BlockingIOError:
                pass
    finally:
        os.close(ino)
        if ex is not None:
            ex.close()


wait_dir = _wait_dir


def wait_file(path, timeout=10, proc=None):
    """Wait (inotify on the parent directory) until path exists; returns path."""
    path = os.fspath(path)
    return _wait_dir(os.path.dirname(path) or ".", lambda: os.path.lexists(path) and path,
                     timeout, "%s to appear" % path, proc)


def _unix_listening(path):
    """Is a socket listening at path?  From /proc/net/unix (flag __SO_ACCEPTCON),
    without connecting: a probe connection would be a client to the server."""
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7] == path and int(fields[3], 16) & 0x10000:
                return True
    return False


def _gap_wait(dl, proc, what):
    """The bounded re-check of the bind-to-listen gap: listen() makes no
    inotify event, so after the socket file appears we look again every
    10 ms (or at once if proc exits) until the deadline."""
    if dl.left() <= 0:
        raise TimeoutError(what)
    ex = _ExitWatch(proc) if proc is not None else None
    try:
        fds = [ex.fd] if ex is not None and ex.fd is not None else []
        select.select(fds, [], [], min(0.01, dl.left()))
        if ex is not None:
            ex.check(what)
    finally:
        if ex is not None:
            ex.close()


def wait_socket_listening(path, timeout=10, proc=None):
    """Wait until a Unix socket listens at path, WITHOUT connecting to it (use
    this for a proxy's --listen socket: a probe would be served as a client)."""
    path = os.fspath(path)
    dl = Deadline(timeout)
    what = "a socket listening at %s" % path
    wait_file(path, timeout, proc)
    while not _unix_listening(path):
        _gap_wait(dl, proc, what)
    return path


def wait_socket_connectable(path, timeout=10, proc=None):
    """Wait (inotify) until path exists, then connect; returns the connected
    socket (blocking).  The connection is a real client of the server."""
    path = os.fspath(path)
    dl = Deadline(timeout)
    what = "a connection to %s" % path
    wait_file(path, timeout, proc)
    while True:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return s
        except (ConnectionRefusedError, FileNotFoundError):
            s.close()
            _gap_wait(dl, proc, what)


@contextmanager
def busy_listener(path, most=64):
    """A socket listening at path that never accepts, its queue full (a
    non-blocking connect there fails with EAGAIN; a blocking one waits until
    it is closed).  Closed, with its queued clients, on leaving."""
    listener = socket.socket(socket.AF_UNIX)
    queued = []
    try:
        listener.bind(os.fspath(path))
        listener.listen(0)
        for _ in range(most):
            c = socket.socket(socket.AF_UNIX)
            c.setblocking(False)
            try:
                c.connect(os.fspath(path))
            except BlockingIOError:
                c.close()
                break
            queued.append(c)
        else:
            raise SimError("the queue of a listen(0) socket at %s never filled" % path)
        yield listener
    finally:
        for c in queued:
            c.close()
        listener.close()


# ---- moving bytes ---------------------------------------------------------------

CHUNK = 1 << 16


def _ends(end):
    """An endpoint is a socket, a file object or fd, or (read_end, write_end)."""
    if isinstance(end, tuple):
        r, w = end
    else:
        r = w = end
    return (r if isinstance(r, int) else r.fileno()), (w if isinstance(w, int) else w.fileno())


class _Nonblocking:
    def __init__(self, *fds):
        self.fds = {fd: os.get_blocking(fd) for fd in fds}

    def __enter__(self):
        for fd in self.fds:
            os.set_blocking(fd, False)

    def __exit__(self, *exc):
        for fd, blocking in self.fds.items():
            try:
                os.set_blocking(fd, blocking)
            except OSError:
                pass


def _read(fd, n):
    """os.read, with a pty master's EIO (its slave closed) as end of file."""
    try:
        return os.read(fd, n)
    except OSError as e:
        if e.errno == errno.EIO:
            return b""
        raise


def send_all(end, data, timeout=10):
    """Write all of data to end (select for room, no blocking past the deadline)."""
    _, w = _ends(end)
    dl, mv, off = Deadline(timeout), memoryview(data), 0
    with _Nonblocking(w):
        while off < len(mv):
            if not select.select([], [w], [], dl.left())[1]:
                raise TimeoutError("send_all: %d of %d bytes written in %gs" % (off, len(mv), timeout))
            try:
                off += os.write(w, mv[off:off + CHUNK * 4])
            except BlockingIOError:
                pass


def recv_exact(end, n, timeout=10):
    """Read exactly n bytes; AssertionError on early EOF, TimeoutError at the deadline."""
    r, _ = _ends(end)
    dl, buf = Deadline(timeout), bytearray()
    with _Nonblocking(r):
        while len(buf) < n:
            if not select.select([r], [], [], dl.left())[0]:
                raise TimeoutError("recv_exact: %d of %d bytes in %gs" % (len(buf), n, timeout))
            try:
                chunk = _read(r, min(n - len(buf), CHUNK * 4))
            except BlockingIOError:
                continue
            if not chunk:
                raise AssertionError("recv_exact: end of file after %d of %d bytes" % (len(buf), n))
            buf += chunk
    return bytes(buf)


def recv_until_eof(end, timeout=10):
    """Read until end of file; everything read.  TimeoutError at the deadline."""
    r, _ = _ends(end)
    dl, buf = Deadline(timeout), bytearray()
    with _Nonblocking(r):
        while True:
            if not select.select([r], [], [], dl.left())[0]:
                raise TimeoutError("recv_until_eof: no end of file within %gs (%d bytes read)"
                                   % (timeout, len(buf)))
            try:
                chunk = _read(r, CHUNK * 4)
            except BlockingIOError:
                continue
            if not chunk:
                return bytes(buf)
            buf += chunk


class Exchange(NamedTuple):
    """What exchange() saw: SHA-256 hex digests each way, and seconds taken."""
    a_to_b: str
    b_to_a: str
    seconds: float


class _Flow:
    """One direction of an exchange: bytes to send, and the receiver's hash."""

    def __init__(self, nbytes, src, dst):
        self.data = memoryview(os.urandom(nbytes))
        self.want = hashlib.sha256(self.data).hexdigest()
        self.sent = self.got = 0
        self.hash = hashlib.sha256()
        self.src, self.dst = src, dst

    def done(self):
        return self.got == len(self.data)


def exchange(a, b, nbytes, timeout=60):
    """Send nbytes of random bytes a->b and b->a at the same time
    (non-blocking, select), return once both sides have received all of
    them, and assert each side's SHA-256 equals what the other sent.
    a and b are endpoints as for send_all.  Returns Exchange."""
    (ar, aw), (br, bw) = _ends(a), _ends(b)
    ab, ba = _Flow(nbytes, aw, br), _Flow(nbytes, bw, ar)
    dl, start = Deadline(timeout), time.monotonic()
    with _Nonblocking(ar, aw, br, bw):
        while not (ab.done() and ba.done()):
            readers = [f.dst for f in (ab, ba) if not f.done()]
            writers = [f.src for f in (ab, ba) if f.sent < len(f.data)]
            rl, wl, _ = select.select(readers, writers, [], dl.left())
            if not rl and not wl:
                raise TimeoutError("exchange of %d bytes: after %gs a->b sent %d got %d, "
                                   "b->a sent %d got %d" % (nbytes, timeout, ab.sent, ab.got,
                                                            ba.sent, ba.got))
            for f in (ab, ba):
                if f.src in wl and f.sent < len(f.data):
                    try:
                        f.sent += os.write(f.src, f.data[f.sent:f.sent + CHUNK * 4])
                    except BlockingIOError:
                        pass
                if f.dst in rl and not f.done():
                    try:
                        chunk = _read(f.dst, min(CHUNK * 4, len(f.data) - f.got))
                    except BlockingIOError:
                        continue
                    if not chunk:
                        raise AssertionError("exchange: end of file after %d of %d bytes %s"
                                             % (f.got, nbytes, "a->b" if f is ab else "b->a"))
                    f.hash.update(chunk)
                    f.got += len(chunk)
    result = Exchange(ab.hash.hexdigest(), ba.hash.hexdigest(), time.monotonic() - start)
    assert result.a_to_b == ab.want, "a->b: SHA-256 differs after %d bytes" % nbytes
    assert result.b_to_a == ba.want, "b->a: SHA-256 differs after %d bytes" % nbytes
    return result


# ---- guests and proxies ---------------------------------------------------------

class Guest:
    """One guest-sim: the guest side of console device `devid` (None when
    started by channel name) of domain `domid`, its tty a Unix socket at
    `sock_path`.  `proc` is its Popen; `label` names its files in
    DIR/guest ("D-N" or "D-NAME")."""

    def __init__(self, host, proc, domid, devid, label, sock_path, log_path):
        self.host, self.proc = host, proc
        self.domid, self.devid, self.label = domid, devid, label
        self.sock_path, self.log_path = sock_path, log_path

    def connect(self, timeout=10):
        """A connected (blocking) socket to the guest's tty."""
        return wait_socket_connectable(self.sock_path, timeout, self.proc)

    def stats(self):
        """DIR/guest/LABEL.stats as a dict (values int where they parse)."""
        out = {}
        with open(os.path.join(self.host.dir, "guest", self.label + ".stats")) as f:
            for line in f:
                k, sep, v = line.strip().partition("=")
                if sep:
                    out[k] = int(v) if re.fullmatch(r"-?\d+", v) else v
        return out

    def log(self):
        """guest-sim's stderr so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait(self, timeout=10):
        """Wait for guest-sim to exit; its return code."""
        return wait_proc_exit(self.proc, timeout)


class Proxy:
    """One xenchan-proxy process.  `proc` is its Popen (stdin and stdout are
    pipes unless overridden); its stderr goes to `log_path`."""

    def __init__(self, proc, log_path):
        self.proc, self.log_path = proc, log_path

    def log(self):
        """The proxy's stderr so far."""
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def wait(self, timeout=10):
        """Wait for the proxy to exit; its return code."""
        return wait_proc_exit(self.proc, timeout)

    def signal(self, sig):
        self.proc.send_signal(sig)


# ---- the host -------------------------------------------------------------------

class SimHost:
    """A simulated Xen host (xenstored-sim and the state directory).

    Attributes: dir (the host's directory), env (os.environ plus XENSIM_DIR,
    XENSTORED_PATH, LD_LIBRARY_PATH, for anything run on the host), build
    (the build directory), xs (an xslib.XS connected as dom0).
    """

    def __init__(self, dir, build=None, keep_logs=None):
        self.dir = os.path.abspath(dir)
        self.build = build or build_dir()
        self.keep_logs = keep_logs        # copy *.log here at stop()
        self.env = None
        self.xs = None
        self.daemon_pid = None      # xenstored-sim
        self.hv_pid = None          # simhvd
        self._procs = []                  # (Popen, log path or None, teardown signal)
        self._serial = 0

    # -- life --------------------------------------------------------------------
    def xensim_path(self):
        return os.path.join(self.build, "sim", "xensim")

    def start(self):
        """`xensim start DIR`; sets env and xs."""
        become_subreaper()
        argv = [self.xensim_path(), "start", self.dir]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise SimError(argv, r.returncode, r.stderr)
        self.env = dict(os.environ)
        for line in r.stdout.splitlines():
            words = shlex.split(line)
            if len(words) == 2 and words[0] == "export" and "=" in words[1]:
                k, v = words[1].split("=", 1)
                self.env[k] = v
        for k in ("XENSIM_DIR", "XENSTORED_PATH", "LD_LIBRARY_PATH"):
            assert k in self.env, "xensim start printed no %s: %r" % (k, r.stdout)
        with open(os.path.join(self.dir, "xenstored.pid")) as f:
            self.daemon_pid = int(f.read())
        with open(os.path.join(self.dir, "simhvd.pid")) as f:
            self.hv_pid = int(f.read())
        self.xs = XS(self.env["XENSTORED_PATH"])
        return self

    def stop(self):
        """Kill what the host spawned, `xensim stop`, and check that no
        process of this host is left (AssertionError naming them if so).
        Also fails on a sanitizer or valgrind report in the log of a proxy,
        a guest or xenstored-sim."""
        errors = []
        # Proxies get SIGTERM (a clean exit lets a sanitizer report), guests
        # SIGKILL (a vCPU stops); newest first.
        for proc, log, sig in reversed(self._procs):
            _stop_proc(proc, sig)
        if self.xs is not None:
            self.xs.close()
            self.xs = None
        argv = [self.xensim_path(), "stop", self.dir]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode:
            errors.append("%s exited %d: %s" % (" ".join(argv), r.returncode, r.stderr.strip()))
        # Both daemons, detached by `xensim start`, are ours to reap.
        for pid in (self.daemon_pid, self.hv_pid):
            if pid:
                _reap(pid)
        left = _procs_of(self.dir)
        for pid, _ in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(pid)
        if left:
            errors.append("processes left running: %s" % left)
        logs = [log for _, log, _ in self._procs if log]
        logs += [os.path.join(self.dir, "xenstored.log"), os.path.join(self.dir, "simhvd.log")]
        for log in logs:
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    text = f.read()
                if SANITIZER_RE.search(text):
                    errors.append("a sanitizer or valgrind report in %s:\n%s" % (log, text[-4000:]))
        if self.keep_logs:
            for name in os.listdir(self.dir):
                if name.endswith((".log", ".stats")) or name == "guest":
                    src = os.path.join(self.dir, name)
                    dst = os.path.join(self.keep_logs, name)
                    if os.path.isdir(src):
                        shutil.copytree(src, dst, dirs_exist_ok=True)
                    else:
                        shutil.copy(src, dst)
        if errors:
            raise AssertionError("\n".join(errors))

    # -- xensim commands ------------------------------------------------------------
    def xensim(self, *args, timeout=30):
        """Run `xensim ARGS` on this host; its stdout.  SimError on failure."""
        argv = [self.xensim_path()] + [str(a) for a in args]
        r = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise SimError(argv, r.returncode, r.stderr)
        return r.stdout

    def domain_create(self, name, driver_domain=False):
        """Create a domain as libxl does (with driver_domain=1's extra nodes
        if driver_domain); its domid."""
        args = ["domain-create", name] + (["--driver-domain"] if driver_domain else [])
        return int(self.xensim(*args))

    def domain_destroy(self, d):
        """Destroy domain d as libxl does (guests killed, device nodes, then
        /local/domain/d, then @releaseDomain)."""
        self.xensim("domain-destroy", d)

    def channel_add(self, d, name, devid=None, connection=None, path=None, backend_domid=None):
        """Add a channel to domain d as libxl does for a `channel=` entry; its
        devid.  connection: None (pty), "pty" or "socket" (with path);
        backend_domid: the backend's domain (`backend=` in xl; default 0)."""
        args = ["channel-add", d, name]
        if devid is not None:
            args += ["--devid", devid]
        if backend_domid is not None:
            args += ["--backend-domid", backend_domid]
        if connection is not None:
            args += ["--connection", connection]
        if path is not None:
            args += ["--path", path]
        return int(self.xensim(*args))

    def domain_socket(self, d):
        """Domain d's own xenstored socket: DIR/domain/D/xenstored.sock, there
        while d is introduced; a connection to it acts as d."""
        return os.path.join(self.dir, "domain", str(d), "xenstored.sock")

    def domain_env(self, d):
        """host.env for a process of domain d: its xenstore connection is d's
        (XENSTORED_PATH = domain_socket(d)), and so are its grants and event
        channels (XENSIM_DOMID = d).  Pass as env= to proxy() or spawn()."""
        return dict(self.env, XENSTORED_PATH=self.domain_socket(d), XENSIM_DOMID=str(d))

    # -- processes ------------------------------------------------------------------
    def _next(self, stem):
        self._serial += 1
        return os.path.join(self.dir, "%s%d" % (stem, self._serial))

    def spawn(self, argv, **kw):
        """subprocess.Popen(argv, env=host.env, **kw), killed at teardown."""
        kw.setdefault("env", self.env)
        proc = subprocess.Popen([str(a) for a in argv], **kw)
        self._procs.append((proc, None, signal.SIGKILL))
        return proc

    def guest(self, d, n=None, name=None, hostile=None, timeout=10, resume=False):
        """Start guest-sim (`xensim guest`) for device n, or the channel called
        name, of domain d, its tty a socket in host.dir; returns a Guest once
        its pid file DIR/guest/D-N.pid (D-NAME.pid) holds its pid, that is,
        once its socket listens.  hostile: guest-sim's --hostile MODE[=ARG].
        resume: a guest restored from a save (--resume; needs n)."""
        if n is None and name is None:
            raise ValueError("guest(): give a device number n or a channel name")
        base = self._next("g")
        sock, log = base + ".sock", base + ".log"
        argv = [self.xensim_path(), "guest", str(d)] + ([str(n)] if n is not None else [])
        argv += ["--socket", sock]
        if name is not None:
            argv += ["--name", name]
        if hostile is not None:
            argv += ["--hostile", hostile]
        if resume:
            argv += ["--resume"]
        with open(log, "wb") as err:
            proc = subprocess.Popen(argv, env=self.env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=err)
        self._procs.append((proc, log, signal.SIGKILL))
        gdir = os.path.join(self.dir, "guest")
        label = "%d-%s" % (d, n if n is not None else name)
        pidfile = os.path.join(gdir, label + ".pid")

        def ready():
            try:
                with open(pidfile) as pf:
                    return pf.read().strip() == str(proc.pid)
            except OSError:
                return False

        try:
            _wait_dir(gdir, ready, timeout, "guest-sim %s's pid file" % label, proc)
        except ProcessExited as e:
            raise ProcessExited("%s\n%s" % (e, open(log, errors="replace").read())) from None
        return Guest(self, proc, d, n, label, sock, log)

    def proxy_argv(self):
        """The proxy command: $XENCHAN_WRAPPER words + ($XENCHAN_PROXY or
        <build>/xenchan-proxy), + --no-seccomp if $XENCHAN_NO_SECCOMP is set."""
        wrapper = shlex.split(os.environ.get("XENCHAN_WRAPPER", ""))
        argv = wrapper + [os.environ.get("XENCHAN_PROXY") or os.path.join(self.build, "xenchan-proxy")]
        # ASan's leak check and valgrind make system calls the filter refuses.
        if os.environ.get("XENCHAN_NO_SECCOMP"):
            argv.append("--no-seccomp")
        return argv

    def proxy(self, *args, check_ready=None, timeout=10, **popen_kw):
        """Run xenchan-proxy ARGS with host.env; stderr to a log file.

        check_ready: None: if ARGS has --listen/-l PATH, wait until PATH
        listens (without connecting); a str: wait for that socket path to
        listen; a callable: called with the Proxy, to wait as it likes;
        False: return at once.  Raises ProcessExited (with the log) if the
        proxy exits before it is ready."""
        log = self._next("proxy") + ".log"
        popen_kw.setdefault("stdin", subprocess.PIPE)
        popen_kw.setdefault("stdout", subprocess.PIPE)
        popen_kw.setdefault("env", self.env)
        with open(log, "wb") as err:
            proc = subprocess.Popen(self.proxy_argv() + [str(a) for a in args], stderr=err,
                                    **popen_kw)
        self._procs.append((proc, log, signal.SIGTERM))
        p = Proxy(proc, log)
        if check_ready is None:
            args = [str(a) for a in args]
            for i, a in enumerate(args):
                if a in ("--listen", "-l") and i + 1 < len(args):
                    check_ready = args[i + 1]
                elif a.startswith("--listen="):
                    check_ready = a.split("=", 1)[1]
        try:
            if isinstance(check_ready, (str, os.PathLike)):
                wait_socket_listening(check_ready, timeout, proc)
            elif callable(check_ready):
                check_ready(p)
        except ProcessExited as e:
            raise ProcessExited("%s\n%s" % (e, p.log())) from None
        return p

    # -- xenstore -------------------------------------------------------------------
    def wait_xs(self, path, value=None, gone=False, timeout=10, proc=None):
        """Wait (a xenstore watch) until path exists (value None), holds value
        (str or bytes, or a callable true for it), or is gone (gone=True).
        Returns the value (bytes), or None when gone.  TimeoutError names the
        last value seen; with proc, ProcessExited if it exits first."""
        return wait_xs_at(self.env["XENSTORED_PATH"], path, value, gone, timeout, proc)


def wait_xs_at(xenstored_path, path, value=None, gone=False, timeout=10, proc=None):
    """SimHost.wait_xs for the xenstored at socket xenstored_path.  value may
    also be a callable, true for the value (bytes) wanted; with proc (a
    Popen), ProcessExited as soon as it exits instead of waiting on."""
    want = value.encode() if isinstance(value, str) else value
    deadline = time.monotonic() + timeout
    pidfd = _pidfd(proc) if proc is not None else None
    try:
        with XS(xenstored_path) as w:
            w.watch(path, "wait_xs")
            while True:
                try:
                    cur = w.read(path)
                except FileNotFoundError:
                    cur = None
                if gone and cur is None:
                    return None
                if not gone and cur is not None and (
                        want is None or (want(cur) if callable(want) else cur == want)):
                    return cur
                if proc is not None and proc.poll() is not None:
                    raise ProcessExited("%s exited (%s) while waiting for %s" % (
                        _argv0(proc), proc.returncode, path))
                left = deadline - time.monotonic()
                fds = [w.fileno()] + ([pidfd] if pidfd is not None else [])
                if left <= 0 or not select.select(fds, [], [], left)[0]:
                    raise TimeoutError("%s: wanted %s within %gs, last seen %r" % (
                        path, "it gone" if gone else repr(value) if value is not None else "it",
                        timeout, cur))
                w.drain_watches()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def short_dir(preferred):
    """preferred if socket paths under it fit sun_path, else a new short
    directory under /tmp (the caller removes it)."""
    preferred = os.fspath(preferred)
    if len(preferred) <= DIR_LEN_MAX:
        return preferred, False
    return tempfile.mkdtemp(prefix="xsim-", dir="/tmp"), True
