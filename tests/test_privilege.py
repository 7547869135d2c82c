"""Least privilege: --user, and the seccomp filter that is on by default
(every other test already runs the full relay, reconnect and exit paths
with it on)."""
import os
import re
import signal

import pytest

from simhost import recv_exact, send_all, wait_socket_connectable
from test_proxy import connected, host_wait_log, listen_proxy, setup_channel


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        return [int(x) for x in re.search(r"Uid:\s+(.*)", f.read()).group(1).split()]


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


@pytest.mark.timeout(30)
@pytest.mark.skipif(bool(os.environ.get("XENCHAN_NO_SECCOMP")), reason="the filter is off in this run")
def test_a_system_call_outside_the_list_kills(host):
    """The simulated event-channel library makes a system call no backend
    loop makes (personality) when XENSIM_EVTCHN_PROBE is set, from inside
    the proxy: the filter kills it with SIGSYS.  With --no-seccomp the same
    proxy goes on."""
    d, n, g = setup_channel(host)
    env = dict(host.env, XENSIM_EVTCHN_PROBE="1")
    p = host.proxy(str(d), str(n), "--stdio", check_ready=False, env=env)
    assert p.wait(15) == -signal.SIGSYS
    free = host.proxy(str(d), str(n), "--stdio", "--no-seccomp", check_ready=False, env=env)
    connected(host, d, n)
    with g.connect() as t:
        send_all(t, b"unfiltered")
        assert recv_exact(free.proc.stdout, 10) == b"unfiltered"
    assert free.proc.poll() is None
