# SPDX-License-Identifier: MIT
"""Tests of the simulated host's driver (tests/sim/xensim.c) and of the
harness (tests/simhost.py): the node sets and permissions libxl 4.17
writes, the order of a domain's destruction, starting and stopping."""
import os
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from simhost import (SimError, SimHost, build_dir, exchange, recv_exact, send_all,
                     wait_proc_exit, _proc_state, _procs_of, _reap)
from xslib import XS

EX_USAGE, EX_DATAERR, EX_NOINPUT, EX_CANTCREAT, EX_CONFIG = 64, 65, 66, 73, 78
SIM = os.path.join(build_dir(), "sim")


def need(binary):
    path = os.path.join(SIM, binary)
    if not os.access(path, os.X_OK):
        pytest.skip("%s not built" % path)
    return path


def tree(xs, top):
    """{relative path: (value, perms)} for top and every node below it."""
    out = {}

    def walk(path, rel):
        out[rel] = (xs.read(path).decode(), " ".join(xs.get_perms(path)))
        for kid in xs.ls(path):
            walk(path + "/" + kid, (rel + "/" if rel else "") + kid)

    walk(top, "")
    return out


def events_until(w, token, deadline):
    """Watch events on w up to and including the first with token."""
    seen = []
    while True:
        ev = w.wait_watch(deadline)
        seen.append(ev)
        if ev[1] == token:
            return seen


# ---- start and stop --------------------------------------------------------------

@pytest.mark.timeout(30)
def test_start_stop_leaves_no_process():
    d = tempfile.mkdtemp(prefix="xsim-", dir="/tmp")
    xensim = os.path.join(SIM, "xensim")
    try:
        r = subprocess.run([xensim, "start", d], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == [
            "export XENSIM_DIR='%s'" % d,
            "export XENSTORED_PATH='%s/xenstored.sock'" % d,
            "export LD_LIBRARY_PATH='%s/lib'" % os.path.realpath(SIM)]
        pid = int(open(os.path.join(d, "xenstored.pid")).read())
        assert os.path.basename(os.readlink("/proc/%d/exe" % pid)) == "xenstored-sim"
        # detached: a session of its own, so a terminal's signals miss it
        assert os.getsid(pid) == pid

        again = subprocess.run([xensim, "start", d], capture_output=True, text=True, timeout=20)
        assert again.returncode == EX_CANTCREAT
        assert "already running" in again.stderr

        # the printed lines are for a shell's eval
        sh = subprocess.run(["bash", "-c", 'eval "$1"; xenstore-read /local/domain/0/name', "-",
                             r.stdout], capture_output=True, text=True, timeout=20)
        assert sh.stdout == "Domain-0\n", sh.stderr

        r = subprocess.run([xensim, "stop", d], capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        # stop returns once the daemon has exited (a zombie until we, its
        # subreaper, reap it); then nothing of it is left
        assert _proc_state(pid) in (None, "Z")
        _reap(pid)
        assert not os.path.exists("/proc/%d" % pid)
        assert _procs_of(d) == []
        assert not os.path.exists(os.path.join(d, "xenstored.sock"))
        # stopping a stopped host is fine
        assert subprocess.run([xensim, "stop", d], timeout=20).returncode == 0
    finally:
        subprocess.run([xensim, "stop", d], capture_output=True, timeout=20)
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.timeout(30)
def test_start_after_crash_and_bad_dirs(tmp_path):
    d = tempfile.mkdtemp(prefix="xsim-", dir="/tmp")
    try:
        h = SimHost(d).start()
        os.kill(h.daemon_pid, signal.SIGKILL)       # a crashed host: stale pid file, socket
        _reap_when_dead(h.daemon_pid)
        h2 = SimHost(d).start()
        _reap_when_dead(h.hv_pid)                  # the new host's start replaced it
        assert h2.xs.read("/local/domain/0/domid") == b"0"
        h2.stop()
        h.xs.close()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    long_dir = "/tmp/" + "x" * 100
    r = subprocess.run([os.path.join(SIM, "xensim"), "start", long_dir], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == EX_USAGE and "longer than 107 bytes" in r.stderr
    os.rmdir(long_dir)


def _reap_when_dead(pid):
    fd = os.pidfd_open(pid)
    try:
        assert select.select([fd], [], [], 5)[0]
    finally:
        os.close(fd)
    _reap(pid)


@pytest.mark.timeout(30)
def test_dom0_nodes(host):
    xs = host.xs
    assert xs.read("/local/domain/0/domid") == b"0"
    assert xs.read("/local/domain/0/name") == b"Domain-0"
    assert xs.read("/local/pool/0/name") == b"Pool-0"
    for path in ("/", "/tool", "/tool/xenstored", "/local", "/local/domain", "/local/domain/0",
                 "/local/domain/0/name", "/vm", "/libxl"):
        assert xs.get_perms(path) == ["n0"], path
    assert xs.is_introduced(0)
    assert host.xensim("domain-list") == "0\tDomain-0\n"


@pytest.mark.timeout(30)
def test_commands_need_a_host_and_good_arguments(host):
    xensim = host.xensim_path()
    bare = {k: v for k, v in os.environ.items() if k not in ("XENSIM_DIR", "XENSTORED_PATH")}
    cases = [
        (["domain-create", "x"], bare, EX_CONFIG, "XENSIM_DIR"),
        (["guest", "1"], bare, EX_CONFIG, "XENSIM_DIR"),
        (["domain-destroy", "7"], host.env, EX_NOINPUT, "no domain 7"),
        (["domain-destroy", "0"], host.env, EX_USAGE, "domain 0"),
        (["domain-destroy", "1x"], host.env, EX_USAGE, "bad domain id"),
        (["channel-add", "5", "c"], host.env, EX_NOINPUT, "no domain 5"),
        (["channel-add", "5", "c", "--connection", "socket"], host.env, EX_USAGE, "--path"),
        (["channel-add", "5", "c", "--connection", "tcp"], host.env, EX_USAGE, "tcp"),
        (["frobnicate"], host.env, EX_USAGE, "unknown command"),
        ([], host.env, EX_USAGE, "usage"),
    ]
    for args, env, code, text in cases:
        r = subprocess.run([xensim] + args, env=env, capture_output=True, text=True, timeout=20)
        assert r.returncode == code, (args, r.returncode, r.stderr)
        assert text in r.stderr, (args, r.stderr)


# ---- domains ---------------------------------------------------------------------

def expected_domain(d, uuid):
    """/local/domain/D as libxl__domain_make, libxl__build_post and the
    console 0 of domcreate_launch_dm leave it (values, permissions)."""
    ro, rw = "n0 r%d" % d, "n%d" % d
    nodes = {
        "": ("", ro), "vm": ("/vm/" + uuid, ro), "name": ("web%d" % d, ro),
        "cpu": ("", ro), "cpu/0": ("", ro), "cpu/0/availability": ("online", ro),
        "memory": ("", ro), "memory/static-max": ("262144", ro),
        "memory/target": ("262144", ro), "memory/videoram": ("0", ro),
        "device": ("", ro), "device/suspend": ("", ro),
        "device/suspend/event-channel": ("", rw),
        "control": ("", ro), "control/shutdown": ("", rw),
        "control/feature-poweroff": ("", rw), "control/feature-reboot": ("", rw),
        "control/feature-suspend": ("", rw), "control/sysrq": ("", rw),
        "control/platform-feature-multiprocessor-suspend": ("1", ro),
        "control/platform-feature-xs_reset_watches": ("1", ro),
        "data": ("", rw), "drivers": ("", rw), "feature": ("", rw), "attr": ("", rw),
        "error": ("", rw), "domid": (str(d), ro),
        "store": ("", ro), "store/port": ("1", ro),
        # console 0: the frontend is read-only for the guest but backend-id
        "console": ("", ro),
        "console/backend": ("/local/domain/0/backend/console/%d/0" % d, ro),
        "console/backend-id": ("0", "n%d r0" % d),
        "console/limit": ("1048576", ro), "console/type": ("xenconsoled", ro),
        "console/output": ("pty", ro), "console/tty": ("", ro), "console/port": ("2", ro),
    }
    return nodes


@pytest.mark.timeout(30)
def test_domain_create_nodes_perms_and_introduce(host):
    with XS(host.env["XENSTORED_PATH"]) as w:
        w.watch("@introduceDomain", "intro")
        deadline = time.monotonic() + 10
        assert w.wait_watch(deadline) == ("@introduceDomain", "intro")    # at registration
        assert not host.xs.is_introduced(1)
        d = host.domain_create("web1")
        assert d == 1
        assert w.wait_watch(deadline) == ("@introduceDomain", "intro")
    assert host.xs.is_introduced(1)
    got = tree(host.xs, "/local/domain/1")
    uuid = got["vm"][0].rsplit("/", 1)[1]
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", uuid)
    want = expected_domain(1, uuid)
    store_ref = got.pop("store/ring-ref")
    con_ref = got.pop("console/ring-ref")
    assert store_ref[1] == con_ref[1] == "n0 r1" and store_ref[0].isdigit()
    assert got == want
    assert tree(host.xs, "/vm/" + uuid) == {"": ("", "n0 r1"), "uuid": (uuid, "n0 r1"),
                                            "name": ("web1", "n0 r1")}
    lx = tree(host.xs, "/libxl/1")
    assert lx["type"] == ("pv", "n0")
    assert set(v[1] for v in lx.values()) == {"n0"}
    assert tree(host.xs, "/local/domain/0/backend/console/1/0") == {
        "": ("", "n0 r1"), "frontend": ("/local/domain/1/console", "n0 r1"),
        "frontend-id": ("1", "n0 r1"), "online": ("1", "n0 r1"), "state": ("1", "n0 r1"),
        "protocol": ("vt100", "n0 r1")}


@pytest.mark.timeout(30)
def test_domain_ids_and_names(host):
    assert [host.domain_create("web%d" % i) for i in (1, 2, 3)] == [1, 2, 3]
    with pytest.raises(SimError) as e:
        host.domain_create("web2")
    assert e.value.returncode == EX_CANTCREAT and "in use by domain 2" in e.value.stderr
    host.domain_destroy(2)
    assert host.domain_create("again") == 2              # lowest unused
    assert host.xensim("domain-list") == "0\tDomain-0\n1\tweb1\n2\tagain\n3\tweb3\n"


@pytest.mark.timeout(60)
def test_parallel_creates_get_distinct_ids(host):
    procs = [subprocess.Popen([host.xensim_path(), "domain-create", "p%d" % i], env=host.env,
                              stdout=subprocess.PIPE, text=True) for i in range(6)]
    ids = sorted(int(p.communicate(timeout=30)[0]) for p in procs)
    assert ids == [1, 2, 3, 4, 5, 6]
    names = {host.xs.read("/local/domain/%d/name" % i).decode() for i in ids}
    assert names == {"p%d" % i for i in range(6)}


# ---- channels --------------------------------------------------------------------

def expected_channel(d, n, name, connection="pty", path=None, b=0):
    """F, K and the /libxl copy as libxl__device_console_add writes them
    for a channel whose backend is domain b."""
    fe = "/local/domain/%d/device/console/%d" % (d, n)
    be = "/local/domain/%d/backend/console/%d/%d" % (b, d, n)
    guest, backend = "n%d r%d" % (d, b), "n%d r%d" % (b, d)
    output = "pty" if connection == "pty" else "chardev:libxl-channel%d" % n
    front = {"": ("", guest), "backend": (be, guest), "backend-id": (str(b), guest),
             "state": ("1", guest), "protocol": ("vt100", guest),
             "name": (name, backend), "limit": ("1048576", backend),
             "type": ("ioemu", backend), "output": (output, backend), "tty": ("", backend)}
    keys = {"frontend-id": str(d), "online": "1", "state": "1", "protocol": "vt100",
            "name": name, "connection": connection}
    if path:
        keys["path"] = path
    back = {"": ("", backend), "frontend": (fe, backend)}
    back.update({k: (v, backend) for k, v in keys.items()})
    copy = {"": ("", "n0"), "frontend": (fe, "n0"), "backend": (be, "n0")}
    copy.update({k: (v, "n0") for k, v in keys.items()})
    return fe, be, front, back, copy


@pytest.mark.timeout(30)
def test_channel_add_writes_libxls_nodes(host):
    d = host.domain_create("web1")
    assert host.channel_add(d, "org.example.pty") == 1
    assert host.channel_add(d, "org.example.sock", connection="socket",
                            path="/run/agent.sock") == 2
    assert host.channel_add(d, "org.example.five", devid=5, connection="pty") == 5
    assert host.channel_add(d, "org.example.pty") == 3     # lowest free; names may repeat
    for n, name, conn, path in [(1, "org.example.pty", "pty", None),
                                (2, "org.example.sock", "socket", "/run/agent.sock"),
                                (5, "org.example.five", "pty", None)]:
        fe, be, front, back, copy = expected_channel(d, n, name, conn, path)
        assert tree(host.xs, fe) == front
        assert tree(host.xs, be) == back
        assert tree(host.xs, "/libxl/%d/device/console/%d" % (d, n)) == copy
    # the containing directories stay read-only for the guest
    assert host.xs.get_perms("/local/domain/%d/device/console" % d) == ["n0", "r%d" % d]
    assert host.xs.ls("/local/domain/0/backend/console/%d" % d) == ["0", "1", "2", "5", "3"]


@pytest.mark.timeout(30)
def test_channel_add_refusals(host):
    d = host.domain_create("web1")
    host.channel_add(d, "a", devid=2)
    with pytest.raises(SimError) as e:
        host.channel_add(d, "b", devid=2)
    assert e.value.returncode == EX_CANTCREAT and "already exists" in e.value.stderr
    with pytest.raises(SimError) as e:                # xl 4.17's first channel= entry
        host.channel_add(d, "c", devid=0)
    assert e.value.returncode == EX_DATAERR
    assert "Primary console has invalid configuration" in e.value.stderr
    with pytest.raises(SimError) as e:
        host.channel_add(9, "c")
    assert e.value.returncode == EX_NOINPUT
    with pytest.raises(SimError) as e:
        host.channel_add(d, "c", connection="pty", path="/x")
    assert e.value.returncode == EX_USAGE


@pytest.mark.timeout(30)
def test_channel_permissions_hold_for_the_guest(host):
    d = host.domain_create("web1")
    other = host.domain_create("web2")
    n = host.channel_add(d, "org.example.agent")
    fe, be, *_ = expected_channel(d, n, "org.example.agent")
    with XS(host.env["XENSTORED_PATH"]) as g:
        g.as_domain(d)
        assert g.read(fe + "/name") == b"org.example.agent"
        g.write(fe + "/state", "3")                   # the guest's own
        g.write(fe + "/ring-ref", "8")                # new keys in its directory
        assert g.read(be + "/state") == b"1"          # it may read the backend
        for path in (fe + "/name", fe + "/limit", fe + "/tty", be + "/state"):
            with pytest.raises(PermissionError):
                g.write(path, "x")
        with pytest.raises(PermissionError):
            g.read("/libxl/%d/device/console/%d/name" % (d, n))
        with pytest.raises(PermissionError):
            g.write("/local/domain/%d/device/console/7" % d, "")
    with XS(host.env["XENSTORED_PATH"]) as o:
        o.as_domain(other)
        for path in (fe + "/state", be + "/state"):
            with pytest.raises(PermissionError):
                o.read(path)


# ---- a driver domain ---------------------------------------------------------------

@pytest.mark.timeout(30)
def test_driver_domain_nodes(host):
    """driver_domain=1: libxl__domain_make adds /local/domain/B/libxl and
    device-model, owned by B (for xl devd or a QEMU run there)."""
    b = host.domain_create("web1", driver_domain=True)
    got = tree(host.xs, "/local/domain/%d" % b)
    uuid = got["vm"][0].rsplit("/", 1)[1]
    want = expected_domain(b, uuid)
    want.update({"libxl": ("", "n%d" % b), "device-model": ("", "n%d" % b)})
    for ref in ("store/ring-ref", "console/ring-ref"):
        got.pop(ref)
    assert got == want
    d = host.domain_create("web2")
    assert not host.xs.exists("/local/domain/%d/libxl" % d)


@pytest.mark.timeout(30)
def test_channel_add_with_a_backend_domain(host):
    """backend=B: the same nodes, K under /local/domain/B, B named in F's
    permissions and owning F's backend keys and K."""
    b = host.domain_create("web1", driver_domain=True)
    d = host.domain_create("web2")
    n = host.channel_add(d, "org.example.dd", connection="socket", path="/run/dd.sock",
                         backend_domid=b)
    fe, be, front, back, copy = expected_channel(d, n, "org.example.dd", "socket",
                                                 "/run/dd.sock", b=b)
    assert tree(host.xs, fe) == front
    assert tree(host.xs, be) == back
    assert tree(host.xs, "/libxl/%d/device/console/%d" % (d, n)) == copy
    # dom0 made K's parents: dom0's, readable by B as /local/domain/B is
    for top in ("backend", "backend/console", "backend/console/%d" % d):
        assert host.xs.get_perms("/local/domain/%d/%s" % (b, top)) == ["n0", "r%d" % b]
    with pytest.raises(SimError) as e:
        host.channel_add(d, "x", backend_domid=9)
    assert e.value.returncode == EX_NOINPUT and "no backend domain 9" in e.value.stderr


def driver_domain_channel(host):
    """(b, d, n, fe, be): driver domain b, guest d, channel n backed by b."""
    b = host.domain_create("dd", driver_domain=True)
    d = host.domain_create("web")
    n = host.channel_add(d, "org.example.dd", backend_domid=b)
    fe, be, *_ = expected_channel(d, n, "org.example.dd", b=b)
    return b, d, n, fe, be


@pytest.mark.timeout(30)
def test_driver_domain_sees_what_xenstored_lets_it(host):
    """Through its own socket, B reads and writes what Xen 4.17's xenstored
    lets a backend domain: F and K, not D's directory, names, /libxl;
    F's removal reaches it as EACCES (it may not read D's device/), K's
    as ENOENT; @releaseDomain only as the initial event."""
    b, d, n, fe, be = driver_domain_channel(host)
    with XS(host.domain_socket(b)) as g:
        assert g.read("domid") == str(b).encode()                 # relative: B's home
        assert g.read(fe + "/name") == b"org.example.dd"
        assert g.read(fe + "/state") == b"1"
        g.write(fe + "/tty", "/dev/pts/9")                        # B owns F's tty
        g.write(be + "/state", "2")                               # and K
        g.write(be + "/xenchan-pid", "42")                        # new keys in K
        assert host.xs.get_perms(be + "/xenchan-pid") == ["n%d" % b, "r%d" % d]
        assert g.ls("/local/domain/%d/backend/console/%d" % (b, d)) == [str(n)]
        g.write(fe + "/name", "org.example.dd")                   # and F's name (libxl's
        #                                                           ro_frontend_perms)
        refused = [("read", "/local/domain/%d" % d), ("read", "/local/domain/%d/name" % d),
                   ("ls", "/local/domain/%d/device/console" % d),
                   ("read", "/local/domain/%d/device/console/7/state" % d),  # absence hidden
                   ("ls", "/local/domain"),
                   ("read", "/libxl/%d/device/console/%d/name" % (d, n)),
                   ("write", fe + "/state"),                        # the guest's
                   ("write", fe + "/backend"),                      # the guest's too
                   ("write", "/local/domain/%d/backend/x" % b)]     # dom0's, B reads
        for op, path in refused:
            with pytest.raises(PermissionError, match=path):
                getattr(g, op)(*((path, "x") if op == "write" else (path,)))
        with pytest.raises(PermissionError):
            g.is_introduced(d)
        with pytest.raises(FileNotFoundError):
            g.read(be + "/missing")                               # B may read K
        for path in (fe, be, "@releaseDomain"):
            g.watch(path, path)
        dl = time.monotonic() + 10
        assert [g.wait_watch(dl) for _ in range(3)] == [(p, p) for p in (fe, be, "@releaseDomain")]
        with XS(host.env["XENSTORED_PATH"]) as guest:
            guest.as_domain(d)
            guest.write(fe + "/state", "3")
        assert g.wait_watch(dl) == (fe + "/state", fe)
        host.domain_destroy(d)
        seen = set()
        while {fe, be} - seen:
            seen.add(g.wait_watch(dl)[1])
        assert g.domain_path(d) == "/local/domain/%d" % d         # a reply after any event
        seen.update(token for _, token in g.drain_watches())
        assert seen == {fe, be}                                   # no @releaseDomain
        with pytest.raises(PermissionError):
            g.read(fe + "/state")                                 # gone, but EACCES
        with pytest.raises(FileNotFoundError):
            g.read(be + "/state")
    assert not host.xs.exists("/local/domain/%d/backend" % b)     # dom0 cleaned K's parents


def backend_in_driver_domain(host):
    """A guest's channel served by mini-backend in driver domain b, both ends
    Connected: (b, d, n, fe, be, guest, mini-backend's Popen)."""
    need("guest-sim")
    mini = need("mini-backend")
    b, d, n, fe, be = driver_domain_channel(host)
    g = host.guest(d, n)
    mb = host.spawn([mini, d, n], env=host.domain_env(b), stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE)
    host.wait_xs(be + "/state", "4", proc=mb)
    host.wait_xs(fe + "/state", "4")
    return b, d, n, fe, be, g, mb


@pytest.mark.timeout(90)
def test_unchanged_backend_runs_in_a_driver_domain(host):
    """mini-backend, run with domain_env(B) and no option saying so, serves a
    guest's channel from B: xenstore, grants and event channels as B's; 16 MiB
    each way; the guest's destruction ends it (F gone, seen as EACCES)."""
    b, d, n, fe, be, g, mb = backend_in_driver_domain(host)
    assert os.path.exists(os.path.join(host.dir, "grant", str(d), "8.%d" % b))
    with g.connect() as tty:
        exchange(tty, (mb.stdout, mb.stdin), 16 << 20, timeout=80)
    host.domain_destroy(d)
    assert wait_proc_exit(mb, 10) == 0
    assert "connected to domain %d's socket" % b in open(
        os.path.join(host.dir, "xenstored.log")).read()


@pytest.mark.timeout(60)
def test_destroying_the_driver_domain_first(host):
    """libxl removes /local/domain/B (K with it); xenstored then removes the
    nodes B owned (F's name, limit, type, output, tty) and closes B's
    connections; every process of B is killed.  The guest and the rest of F
    stay."""
    b, d, n, fe, be, g, mb = backend_in_driver_domain(host)
    host.domain_destroy(b)
    assert wait_proc_exit(mb, 5) == -signal.SIGKILL           # B's process stopped
    assert g.proc.poll() is None                              # the guest runs on
    assert host.xs.is_introduced(d) and not host.xs.is_introduced(b)
    assert not host.xs.exists("/local/domain/%d" % b)
    assert not os.path.exists(host.domain_socket(b))
    assert sorted(host.xs.ls(fe)) == ["backend", "backend-id", "port", "protocol",
                                      "ring-ref", "state"]
    assert host.xs.read("/local/domain/%d/name" % d) == b"web"
    assert "domain %d released (5 nodes it owned removed)" % b in open(
        os.path.join(host.dir, "xenstored.log")).read()


# ---- destruction -----------------------------------------------------------------

@pytest.mark.timeout(30)
def test_domain_destroy_order(host):
    d = host.domain_create("web1")
    keep = host.domain_create("web2")
    for name in ("a", "b"):
        host.channel_add(d, name)
    host.channel_add(keep, "k")
    uuid = host.xs.read("/local/domain/%d/vm" % d).decode()
    fes = ["/local/domain/%d/device/console/%d" % (d, n) for n in (1, 2)]
    bes = ["/local/domain/0/backend/console/%d/%d" % (d, n) for n in (0, 1, 2)]
    dom = "/local/domain/%d" % d
    with XS(host.env["XENSTORED_PATH"]) as w:
        deadline = time.monotonic() + 10
        for path in ("/", "@releaseDomain"):
            w.watch(path, path)
            assert w.wait_watch(deadline) == (path, path)     # at registration
        host.domain_destroy(d)
        seen = [path for path, _ in events_until(w, "@releaseDomain", deadline)]
    # Every device node went before the domain's directory, which went before
    # @releaseDomain.  (A device's nodes go in one transaction each.)
    assert seen[-1] == "@releaseDomain"
    assert dom in seen and set(fes + bes) <= set(seen), seen
    last_device = max(seen.index(p) for p in fes + bes)
    assert last_device < seen.index(dom) < seen.index("@releaseDomain"), seen
    xs = host.xs
    assert not xs.is_introduced(d)
    for gone in [dom, "/libxl/%d" % d, uuid, "/local/domain/0/backend/console/%d" % d]:
        assert not xs.exists(gone), gone
    # the other domain is untouched
    assert xs.read("/local/domain/0/backend/console/%d/1/name" % keep) == b"k"
    assert xs.is_introduced(keep)


@pytest.mark.timeout(30)
def test_last_device_takes_empty_parents(host):
    d = host.domain_create("web1")
    host.domain_destroy(d)
    # libxl__xs_path_cleanup: with no device left, dom0's backend/ goes too
    assert not host.xs.exists("/local/domain/0/backend")
    assert host.xs.ls("/libxl") == []


@pytest.mark.timeout(30)
def test_domain_destroy_removes_hypervisor_state(host):
    d = host.domain_create("web1")
    for sub in ("grant/%d" % d, "evtchn/%d" % d, "grant/0"):
        os.makedirs(os.path.join(host.dir, sub), exist_ok=True)
        open(os.path.join(host.dir, sub, "1"), "w").close()
    host.domain_destroy(d)
    assert not os.path.exists(os.path.join(host.dir, "grant", str(d)))
    assert not os.path.exists(os.path.join(host.dir, "evtchn", str(d)))
    assert os.path.exists(os.path.join(host.dir, "grant", "0", "1"))


# ---- guests ------------------------------------------------------------------------

@pytest.mark.timeout(60)
def test_guest_and_mini_backend_exchange(host):
    need("guest-sim")
    mini = need("mini-backend")
    d = host.domain_create("web1")
    n = host.channel_add(d, "org.example.bed")
    g = host.guest(d, n)
    assert g.devid == n
    mb = host.spawn([mini, d, n], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    host.wait_xs("/local/domain/0/backend/console/%d/%d/state" % (d, n), "4")
    host.wait_xs("/local/domain/%d/device/console/%d/state" % (d, n), "4")
    with g.connect() as tty:
        send_all(tty, b"hello from the guest\n")
        assert recv_exact(mb.stdout, 21) == b"hello from the guest\n"
        send_all(mb.stdin, b"hello from dom0\n")
        assert recv_exact(tty, 16) == b"hello from dom0\n"
        r = exchange(tty, (mb.stdout, mb.stdin), 16 << 20, timeout=50)
    assert r.a_to_b != r.b_to_a
    # A guest shutting down closes its device (frontend Closing, the backend
    # follows) and writes its final count of bytes each way.
    g.signal(signal.SIGTERM)
    assert g.wait(10) == 0, g.log()
    stats = g.stats()
    assert stats["out_bytes"] == (16 << 20) + 21 and stats["in_bytes"] == (16 << 20) + 16, stats
    host.wait_xs("/local/domain/0/backend/console/%d/%d/state" % (d, n), "6")


@pytest.mark.timeout(60)
def test_destroy_kills_the_guest_first(host):
    need("guest-sim")
    d = host.domain_create("web1")
    n = host.channel_add(d, "org.example.bed")
    g = host.guest(d, n)
    pidfile = os.path.join(host.dir, "guest", "%d-%d.pid" % (d, n))
    assert int(open(pidfile).read()) == g.proc.pid
    host.domain_destroy(d)
    # SIGKILL, as the hypervisor stops a vCPU: nothing of the guest runs after
    assert g.wait(5) == -signal.SIGKILL
    assert not os.path.exists(pidfile)
    assert not os.path.exists(os.path.join(host.dir, "grant", str(d)))
