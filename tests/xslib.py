# SPDX-License-Identifier: MIT
"""A small ctypes binding to Debian's real libxenstore.so.4, for tests.

    from xslib import XS
    with XS("/tmp/x/xenstored.sock") as xs:      # or XS() to use $XENSTORED_PATH
        xs.write("/a/b", "hello")
        assert xs.read("/a/b") == b"hello"
        xs.watch("/a", "tok")
        assert xs.wait_watch(time.monotonic() + 5) == ("/a", "tok")  # initial event

Every failing call raises OSError with the errno libxenstore reported (for
example errno.EACCES, errno.ENOENT, errno.EAGAIN from tx_end).  Values are
returned as bytes; paths and tokens as str.  Values to write may be bytes or
str (UTF-8).  `tx` arguments are transaction ids from tx_start(); 0 means none.

Against tests/sim/xenstored-sim a handle is dom0 until as_domain(D) makes it
act as guest D (the simulator's CONTROL "as-domain" hook; a real xenstored
refuses it).
"""
import ctypes
import errno
import os
import select
import threading
import time

__all__ = ["XS", "XBT_NULL", "perms_from_strings"]

XBT_NULL = 0

# xenstore_lib.h
_PERM_BITS = {"n": 0x0, "r": 0x1, "w": 0x2, "b": 0x3}
_PERM_LETTERS = {v: k for k, v in _PERM_BITS.items()}


class _Perm(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint), ("perms", ctypes.c_uint)]


def _load():
    lib = ctypes.CDLL("libxenstore.so.4", use_errno=True)
    vp, cp, u, b = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint, ctypes.c_bool
    pu = ctypes.POINTER(ctypes.c_uint)
    sigs = {
        "xs_open": (vp, [ctypes.c_ulong]),
        "xs_close": (None, [vp]),
        "xs_read": (vp, [vp, u, cp, pu]),
        "xs_write": (b, [vp, u, cp, cp, u]),
        "xs_mkdir": (b, [vp, u, cp]),
        "xs_rm": (b, [vp, u, cp]),
        "xs_directory": (vp, [vp, u, cp, pu]),
        "xs_get_permissions": (vp, [vp, u, cp, pu]),
        "xs_set_permissions": (b, [vp, u, cp, ctypes.POINTER(_Perm), u]),
        "xs_watch": (b, [vp, cp, cp]),
        "xs_unwatch": (b, [vp, cp, cp]),
        "xs_fileno": (ctypes.c_int, [vp]),
        "xs_check_watch": (vp, [vp]),
        "xs_transaction_start": (u, [vp]),
        "xs_transaction_end": (b, [vp, u, b]),
        "xs_introduce_domain": (b, [vp, u, ctypes.c_ulong, u]),
        "xs_release_domain": (b, [vp, u]),
        "xs_is_domain_introduced": (b, [vp, u]),
        "xs_get_domain_path": (vp, [vp, u]),
        "xs_control_command": (vp, [vp, cp, cp, u]),
    }
    for name, (res, args) in sigs.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


_lib = _load()
_libc = ctypes.CDLL("libc.so.6")
_libc.free.argtypes = [ctypes.c_void_p]
_libc.free.restype = None
# XENSTORED_PATH is read from the environment inside xs_open().
_env_lock = threading.Lock()


def _enc(s):
    return s.encode() if isinstance(s, str) else bytes(s)


def perms_from_strings(perms):
    """["n0", "r5"] (or "n0 r5") -> ctypes array of struct xs_permissions."""
    if isinstance(perms, str):
        perms = perms.split()
    arr = (_Perm * len(perms))()
    for i, p in enumerate(perms):
        if not p or p[0] not in _PERM_BITS or not p[1:].isdigit():
            raise ValueError("bad permission %r (want n|r|w|b + domid)" % p)
        arr[i].perms, arr[i].id = _PERM_BITS[p[0]], int(p[1:])
    return arr


class XS:
    """One libxenstore connection (xs_open).  Not for use from two threads."""

    def __init__(self, socket_path=None):
        self._h = None
        with _env_lock:
            saved = os.environ.get("XENSTORED_PATH")
            if socket_path is not None:
                os.environ["XENSTORED_PATH"] = str(socket_path)
            try:
                self._h = self._call(_lib.xs_open, 0, what="xs_open")
            finally:
                if socket_path is not None:
                    if saved is None:
                        del os.environ["XENSTORED_PATH"]
                    else:
                        os.environ["XENSTORED_PATH"] = saved

    # -- plumbing ------------------------------------------------------------
    @staticmethod
    def _call(fn, *args, what=None, ok=bool):
        """Call fn; raise OSError(errno) unless ok(result)."""
        ctypes.set_errno(0)
        res = fn(*args)
        if not ok(res):
            err = ctypes.get_errno() or errno.EIO
            raise OSError(err, "%s: %s" % (what or fn.__name__, os.strerror(err)))
        return res

    def _take(self, ptr, length=None):
        """Copy a malloc()ed result out of libxenstore and free it."""
        try:
            if length is None:
                return ctypes.string_at(ptr)
            return ctypes.string_at(ptr, length)
        finally:
            _libc.free(ptr)

    def close(self):
        if self._h:
            _lib.xs_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # -- nodes ---------------------------------------------------------------
    def read(self, path, tx=XBT_NULL):
        """The value at path, as bytes."""
        n = ctypes.c_uint()
        p = self._call(_lib.xs_read, self._h, tx, _enc(path), ctypes.byref(n),
                       what="read %s" % path)
        return self._take(p, n.value)

    def write(self, path, value, tx=XBT_NULL):
        v = _enc(value)
        self._call(_lib.xs_write, self._h, tx, _enc(path), v, len(v),
                   what="write %s" % path)

    def mkdir(self, path, tx=XBT_NULL):
        self._call(_lib.xs_mkdir, self._h, tx, _enc(path), what="mkdir %s" % path)

    def rm(self, path, tx=XBT_NULL):
        self._call(_lib.xs_rm, self._h, tx, _enc(path), what="rm %s" % path)

    def ls(self, path, tx=XBT_NULL):
        """Names of path's children, in xenstore's order."""
        n = ctypes.c_uint()
        p = self._call(_lib.xs_directory, self._h, tx, _enc(path),
                       ctypes.byref(n), what="directory %s" % path)
        try:
            names = ctypes.cast(p, ctypes.POINTER(ctypes.c_char_p))
            return [names[i].decode() for i in range(n.value)]
        finally:
            _libc.free(p)

    def exists(self, path, tx=XBT_NULL):
        try:
            self.read(path, tx)
            return True
        except FileNotFoundError:
            return False

    def get_perms(self, path, tx=XBT_NULL):
        """Permissions as strings, owner first: ["n0", "r5"]."""
        n = ctypes.c_uint()
        p = self._call(_lib.xs_get_permissions, self._h, tx, _enc(path),
                       ctypes.byref(n), what="get_perms %s" % path)
        try:
            arr = ctypes.cast(p, ctypes.POINTER(_Perm))
            return ["%s%d" % (_PERM_LETTERS[arr[i].perms & 3], arr[i].id)
                    for i in range(n.value)]
        finally:
            _libc.free(p)

    def chmod(self, path, perms, tx=XBT_NULL):
        """Set permissions: a list like ["n0", "r5"] or a string "n0 r5"."""
        arr = perms_from_strings(perms)
        self._call(_lib.xs_set_permissions, self._h, tx, _enc(path), arr,
                   len(arr), what="set_perms %s" % path)

    # -- watches -------------------------------------------------------------
    def watch(self, path, token):
        """Watch path; xenstored sends one event at once (see wait_watch)."""
        self._call(_lib.xs_watch, self._h, _enc(path), _enc(token),
                   what="watch %s" % path)

    def unwatch(self, path, token):
        self._call(_lib.xs_unwatch, self._h, _enc(path), _enc(token),
                   what="unwatch %s" % path)

    def fileno(self):
        """A descriptor that polls readable while watch events are queued."""
        return self._call(_lib.xs_fileno, self._h, ok=lambda fd: fd >= 0)

    def check_watch(self):
        """The next queued event as (path, token), or None if none is queued."""
        ctypes.set_errno(0)
        p = _lib.xs_check_watch(self._h)
        if not p:
            err = ctypes.get_errno()
            if err in (0, errno.EAGAIN):
                return None
            raise OSError(err, "check_watch: %s" % os.strerror(err))
        try:
            vec = ctypes.cast(p, ctypes.POINTER(ctypes.c_char_p))
            return vec[0].decode(), vec[1].decode()
        finally:
            _libc.free(p)

    def wait_watch(self, deadline):
        """Wait until time.monotonic() reaches deadline for the next event;
        returns (path, token), raises TimeoutError if none came."""
        fd = self.fileno()
        while True:
            ev = self.check_watch()
            if ev is not None:
                return ev
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no watch event before the deadline")
            select.select([fd], [], [], left)

    def drain_watches(self):
        """Discard the events queued now; returns them."""
        out = []
        while (ev := self.check_watch()) is not None:
            out.append(ev)
        return out

    # -- transactions --------------------------------------------------------
    def tx_start(self):
        return self._call(_lib.xs_transaction_start, self._h,
                          what="transaction_start")

    def tx_end(self, tx, abort=False):
        """Commit (or abort) tx; a conflict raises OSError(errno.EAGAIN)."""
        self._call(_lib.xs_transaction_end, self._h, tx, abort,
                   what="transaction_end")

    # -- domains -------------------------------------------------------------
    def introduce(self, domid, mfn=0, port=1):
        self._call(_lib.xs_introduce_domain, self._h, domid, mfn, port,
                   what="introduce %d" % domid)

    def release(self, domid):
        self._call(_lib.xs_release_domain, self._h, domid,
                   what="release %d" % domid)

    def is_introduced(self, domid):
        """True/False; an error (e.g. EACCES for a guest) raises OSError."""
        ctypes.set_errno(0)
        res = _lib.xs_is_domain_introduced(self._h, domid)
        err = ctypes.get_errno()
        if not res and err:
            raise OSError(err, "is_domain_introduced: %s" % os.strerror(err))
        return bool(res)

    def domain_path(self, domid):
        p = self._call(_lib.xs_get_domain_path, self._h, domid,
                       what="get_domain_path")
        return self._take(p).decode()

    # -- CONTROL (xenstore-control; the simulator's test hooks) --------------
    def control(self, cmd, *args):
        """Send CONTROL cmd with NUL-terminated args; returns the reply bytes
        (without the trailing NUL)."""
        data = b"".join(_enc(a) + b"\0" for a in args)
        p = self._call(_lib.xs_control_command, self._h, _enc(cmd), data,
                       len(data), what="control %s" % cmd)
        return self._take(p)

    def as_domain(self, domid):
        """From now on this connection acts as guest domid (simulator only)."""
        self.control("as-domain", str(domid))

    def log(self, text):
        """Write a line to the simulator's log."""
        self.control("log", text)
