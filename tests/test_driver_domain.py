# SPDX-License-Identifier: MIT
"""xenchan-proxy as the backend of a channel in a driver domain B: run with
host.domain_env(B), its xenstore requests are checked as B's (xenstored-sim's
per-domain sockets) and its grants and event channels are B's.  It finds the
channel through B's own backend directory, serves it, reattaches after a
SIGKILL, ends when the guest goes, and refuses what B may not do."""
import os
import re
import shlex
import signal
import subprocess

import pytest

from simhost import (_wait_dir, exchange, wait_asleep, wait_proc_exit,
                     wait_socket_connectable)
from test_proxy import sigkill_then_reattach
from test_sim import tree

MIB = 1 << 20
EX_NOINPUT, EX_NOPERM = 66, 77
NAME = "org.example.dd"


def dd_channel(host):
    """(b, d, n, fe, be): driver domain b, guest d, its channel n backed by b."""
    b = host.domain_create("dd", driver_domain=True)
    d = host.domain_create("web")
    n = host.channel_add(d, NAME, backend_domid=b)
    return (b, d, n, "/local/domain/%d/device/console/%d" % (d, n),
            "/local/domain/%d/backend/console/%d/%d" % (b, d, n))


def dd_proxy(host, b, *args, **kw):
    """xenchan-proxy ARGS as a process of domain b."""
    return host.proxy(*args, env=host.domain_env(b), **kw)


def connected(host, fe, be, proc=None):
    host.wait_xs(be + "/state", "4", proc=proc)
    host.wait_xs(fe + "/state", "4", proc=proc)


@pytest.mark.timeout(120)
def test_proxy_in_a_driver_domain_serves_16mib_each_way(host):
    """The proxy in B, given the domain's domid and the channel's name (B may
    list only its own backend directory, where K/name names it) and no
    --backend-domid (it reads its own domid): 16 MiB each way, SHA-256 equal."""
    b, d, n, fe, be = dd_channel(host)
    g = host.guest(d, n)
    sock = os.path.join(host.dir, "dd.sock")
    p = dd_proxy(host, b, d, NAME, "--listen", sock, "-v", "--overflow-data", "keep")
    connected(host, fe, be, p.proc)
    assert "serving %s (backend %s)" % (fe, be) in p.log()
    with wait_socket_connectable(sock) as c, g.connect() as t:
        r = exchange(c, t, 16 * MIB, timeout=100)
    print("driver domain: 16 MiB each way in %.2fs" % r.seconds)
    assert host.xs.read(be + "/xenchan-pid") == str(p.proc.pid).encode()
    assert host.xs.get_perms(be + "/xenchan-pid")[0] == "n%d" % b   # written as B


@pytest.mark.timeout(60)
def test_proxy_in_a_driver_domain_reattaches_after_sigkill(host):
    """SIGKILLed, the proxy in B leaves the channel Connected; a new one
    (devid, --backend-domid B as the watcher passes it) reattaches to the
    live ring: the guest's stream arrives with no gap, both ways."""
    b, d, n, fe, be = dd_channel(host)
    g = host.guest(d, n)
    sock = os.path.join(host.dir, "dd.sock")
    args = (d, n, "--backend-domid", b, "--listen", sock)
    p1 = dd_proxy(host, b, *args)
    connected(host, fe, be, p1.proc)
    sigkill_then_reattach(g, sock, p1, lambda: dd_proxy(host, b, *args))
    assert host.xs.read(fe + "/state") == b"4" and host.xs.read(be + "/state") == b"4"


@pytest.mark.timeout(60)
def test_proxy_in_a_driver_domain_ends_on_the_guests_death(host):
    """B hears no @releaseDomain: the backend directory's removal ends the
    proxy, exit 0, its socket removed, no node of the channel left."""
    b, d, n, fe, be = dd_channel(host)
    host.guest(d, n)
    sock = os.path.join(host.dir, "dd.sock")
    p = dd_proxy(host, b, d, n, "--listen", sock, "-v")
    connected(host, fe, be, p.proc)
    host.domain_destroy(d)
    assert p.wait(10) == 0, p.log()
    assert "backend directory removed: ending" in p.log()
    assert "domain is gone" not in p.log()
    assert not os.path.exists(sock)
    for path in ("/local/domain/%d" % d, "/local/domain/%d/backend" % b, "/libxl/%d" % d):
        assert not host.xs.exists(path), path


def refused(host, b, args, code, message):
    """Run the proxy in B with args: it exits code, says message, and
    xenstore is exactly as before."""
    before = [tree(host.xs, top) for top in ("/local", "/libxl")]
    p = dd_proxy(host, b, *args, check_ready=False)
    assert p.wait(10) == code, p.log()
    assert message in p.log(), p.log()
    assert [tree(host.xs, top) for top in ("/local", "/libxl")] == before


@pytest.mark.timeout(60)
def test_proxy_in_a_driver_domain_refuses_what_b_may_not_do(host):
    """What B may not do is refused with an error saying why, changing nothing:
    a domain by name (B may not read names), another domain's channel (dom0's
    backend), --create and --remove (only dom0 writes a guest's devices)."""
    b, d, n, fe, be = dd_channel(host)
    n0 = host.channel_add(d, "org.example.dom0")          # served from dom0
    sock = os.path.join(host.dir, "dd.sock")
    refused(host, b, ("web", NAME, "--listen", sock), EX_NOINPUT,
            "give the domain by domid: this domain may not read other domains' names")
    refused(host, b, (d, n0, "--backend-domid", 0, "--listen", sock), EX_NOPERM,
            "this is domain %d: it serves only the channels whose backend it is" % b)
    refused(host, b, (d, "org.example.dom0", "--listen", sock), EX_NOINPUT,
            "no channel org.example.dom0 in /local/domain/%d/backend/console/%d" % (b, d))
    refused(host, b, ("--create", d, "org.example.new", "--listen", sock), EX_NOPERM,
            "--create needs dom0: this is domain %d" % b)
    refused(host, b, ("--remove", d, n), EX_NOPERM,
            "--remove needs dom0: this is domain %d" % b)
    assert not os.path.exists(sock)


# ---- xenchan-devd, the driver domain's watcher -----------------------------------

def start_devd(host, b, *args, proxy=None):
    """xenchan-devd -v ARGS as a process of domain b, its proxies the build's
    (or proxy; staying root: the host has no xenchan user); (Popen, log
    path), once its watch is set."""
    log = os.path.join(host.dir, "devd-%d.log" % b)
    proxy = proxy or os.environ.get("XENCHAN_PROXY") or os.path.join(host.build, "xenchan-proxy")
    env = dict(host.domain_env(b), XENCHAN_PROXY=proxy,
               XENCHAN_PROXY_USER="root", XENCHAN_PROXY_OPTS="-v")
    if os.environ.get("XENCHAN_NO_SECCOMP"):
        env["XENCHAN_PROXY_OPTS"] += " --no-seccomp"
    with open(log, "wb") as f:
        # $XENCHAN_WRAPPER (valgrind in make check-valgrind) runs it too.
        wrapper = shlex.split(os.environ.get("XENCHAN_WRAPPER", ""))
        proc = subprocess.Popen(wrapper + [os.path.join(host.build, "xenchan-devd"), "-v"]
                                + list(args),
                                env=env, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT)
    host._procs.append((proc, log, signal.SIGTERM))
    wait_log(host, log, r"serving domain %d's channels" % b, proc)
    return proc, log


def wait_log(host, log, pattern, proc=None, timeout=10):
    return _wait_dir(host.dir, lambda: re.search(pattern, open(log, errors="replace").read()),
                     timeout, "%r in %s" % (pattern, log), proc)


@pytest.mark.timeout(90)
def test_devd_serves_restarts_and_ends_with_the_guest(host):
    """xenchan-devd in B, started before the guest exists: a channel with
    backend=B added later gets a proxy (endpoint from K: the socket), bytes
    flow both ways; the proxy SIGKILLed is restarted and reattaches; the
    guest destroyed, the proxy exits 0 and is not restarted, its socket and
    the channel's nodes gone; the watcher then sleeps (no timer) until
    SIGTERM ends it, exit 0."""
    b = host.domain_create("dd", driver_domain=True)
    devd, log = start_devd(host, b)
    d = host.domain_create("web")
    sock = os.path.join(host.dir, "dd.sock")
    n = host.channel_add(d, NAME, backend_domid=b, connection="socket", path=sock)
    fe = "/local/domain/%d/device/console/%d" % (d, n)
    be = "/local/domain/%d/backend/console/%d/%d" % (b, d, n)
    g = host.guest(d, n)
    connected(host, fe, be, devd)
    pid1 = int(host.xs.read(be + "/xenchan-pid"))
    assert "--backend-domid\0%d\0--\0%d\0%d\0" % (b, d, n) in open(
        "/proc/%d/cmdline" % pid1).read()
    with wait_socket_connectable(sock) as c, g.connect() as t:
        exchange(c, t, 1 * MIB, timeout=60)
        os.kill(pid1, signal.SIGKILL)
        wait_log(host, log, r"its proxy \(pid %d\) was killed by signal 9 \(Killed\); restarting it" % pid1, devd)
        pid2 = int(host.wait_xs(be + "/xenchan-pid", lambda v: v != str(pid1).encode(),
                                proc=devd))
    with wait_socket_connectable(sock) as c, g.connect() as t:
        exchange(c, t, 1 * MIB, timeout=60)
    assert host.xs.read(fe + "/state") == b"4"
    host.domain_destroy(d)
    wait_log(host, log, r"domain %d channel %d: its proxy \(pid %d\) exited with status 0" % (d, n, pid2), devd)
    with pytest.raises(ProcessLookupError):
        os.kill(pid2, 0)
    assert "restart 2" not in open(log).read()
    assert not os.path.exists(sock)
    assert not host.xs.exists("/local/domain/%d/backend" % b)
    assert not host.xs.exists("/local/domain/%d" % d)
    wait_asleep(devd.pid)
    assert devd.poll() is None
    devd.send_signal(signal.SIGTERM)
    assert wait_proc_exit(devd) == 0


@pytest.mark.timeout(60)
def test_create_and_remove_in_dom0_for_a_driver_domain(host):
    """--create --backend-domid B in dom0 writes libxl's nodes for a channel
    B serves (F's own keys owned by B, K B's), opens nothing and exits 0;
    B's watcher serves it; --remove in dom0 unplugs it, and B's proxy ends
    with it (exit 0, not restarted), nothing left."""
    b = host.domain_create("dd", driver_domain=True)
    devd, log = start_devd(host, b)
    d = host.domain_create("web")
    sock = os.path.join(host.dir, "new.sock")
    c = host.proxy("--create", "--backend-domid", b, d, "org.example.new", "--listen", sock,
                   "-v", check_ready=False)
    assert c.wait(10) == 0, c.log()
    assert "served from domain %d" % b in c.log()
    n = 1
    fe = "/local/domain/%d/device/console/%d" % (d, n)
    be = "/local/domain/%d/backend/console/%d/%d" % (b, d, n)
    assert host.xs.get_perms(fe) == ["n%d" % d, "r%d" % b]
    assert host.xs.get_perms(fe + "/name") == ["n%d" % b, "r%d" % d]
    assert host.xs.get_perms(be) == ["n%d" % b, "r%d" % d]
    assert host.xs.read(fe + "/backend") == be.encode()
    assert host.xs.read(fe + "/backend-id") == str(b).encode()
    assert (host.xs.read(be + "/connection"), host.xs.read(be + "/path")) == (
        b"socket", sock.encode())
    g = host.guest(d, n)
    connected(host, fe, be, devd)
    with wait_socket_connectable(sock) as s, g.connect() as t:
        exchange(s, t, 65536, timeout=30)
    pid = int(host.xs.read(be + "/xenchan-pid"))
    r = host.proxy("--remove", "--backend-domid", b, d, n, "-v", check_ready=False)
    assert r.wait(20) == 0, r.log()
    wait_log(host, log, r"its proxy \(pid %d\) exited with status 0" % pid, devd)
    for path in (fe, "/local/domain/%d/backend" % b, "/libxl/%d/device/console/%d" % (d, n)):
        assert not host.xs.exists(path), path
    assert not os.path.exists(sock)
    assert "restarting" not in open(log).read()


@pytest.mark.timeout(60)
def test_devd_restarts_are_bounded(host):
    """A proxy that fails at once is restarted 5 times (at once, then after
    250 ms, 500 ms, 1 s, 2 s), then left: the 6th failure within a minute is
    logged, nothing more is started, and the watcher sleeps with no timer."""
    b = host.domain_create("dd", driver_domain=True)
    devd, log = start_devd(host, b, proxy="/bin/false")
    d = host.domain_create("web")
    host.channel_add(d, NAME, backend_domid=b)
    wait_log(host, log, r"its failure 6 within 60 s: not restarting it", devd)
    wait_asleep(devd.pid)
    text = open(log).read()
    assert text.count("started xenchan-proxy") == 6, text
    assert [int(m) for m in re.findall(r"restart (\d) of at most 5", text)] == [1, 2, 3, 4, 5]
    assert devd.poll() is None
