# SPDX-License-Identifier: MIT
"""The operator's view (issue 20): each proxy's live counters file
(RUNDIR/counters/DOMID-DEVID, stats.h), exact to the byte; --list with the
counters, host-wide, and --json against its documented schema; a crashed
proxy's counters shown as stale."""
import json
import os
import signal
import struct
import subprocess

import pytest

from simhost import exchange, recv_exact, send_all, wait_asleep
from test_proxy import be, client, connected, listen_proxy, setup_channel
from test_systemd import Notify

# stats.h's struct stats_page, host byte order, 128 bytes.
LAYOUT = struct.Struct("=8sIIQQQIIIIIIQQQQQQQQ")
FIELDS = ("magic", "version", "size", "pid", "pid_start", "started", "domid", "devid",
          "backend_domid", "state", "client", "discarding", "from_guest", "to_guest", "held",
          "discarded", "discard_episodes", "client_connects", "guest_reconnects", "refusals")
STATES = ["waiting", "connected", "closing", "refused", "ending"]


def counters_path(host, d, n):
    return os.path.join(host.env["XENCHAN_RUNTIME_DIR"], "counters", "%d-%d" % (d, n))


def counters(host, d, n):
    """The counters file of (d, n) as a dict (raises if absent)."""
    with open(counters_path(host, d, n), "rb") as f:
        data = f.read()
    assert len(data) == LAYOUT.size == 128, len(data)
    c = dict(zip(FIELDS, LAYOUT.unpack(data)))
    assert c["magic"] == b"xenchanC" and c["version"] == 1 and c["size"] == 128, c
    return c


def settled(p):
    """The proxy back in poll: every turn it took is done, and its counters
    (published at the end of each turn) say what that turn did."""
    wait_asleep(p.proc.pid)


# ---- the counters file --------------------------------------------------------------

@pytest.mark.timeout(120)
def test_counters_equal_the_bytes_moved(host):
    """Bytes each way, exactly as the client and the guest saw them
    (SHA-256-checked), client connects, the state and the header."""
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--overflow-data", "keep")
    connected(host, d, n)
    settled(p)
    c0 = counters(host, d, n)
    assert (c0["pid"], c0["domid"], c0["devid"], c0["backend_domid"]) == (p.proc.pid, d, n, 0)
    assert STATES[c0["state"]] == "connected" and c0["client"] == 0, c0
    assert c0["from_guest"] == c0["to_guest"] == c0["client_connects"] == 0, c0
    sizes = (1 << 20, 12345)
    for size in sizes:
        with client(sock) as c, g.connect() as t:
            exchange(c, t, size)
            settled(p)
            c1 = counters(host, d, n)
            assert c1["client"] == 1, c1
    settled(p)
    c2 = counters(host, d, n)
    assert c2["from_guest"] == c2["to_guest"] == sum(sizes), c2
    assert c2["client_connects"] == len(sizes) and c2["client"] == 0, c2
    assert c2["discarded"] == c2["discard_episodes"] == c2["held"] == 0, c2
    assert c2["guest_reconnects"] == c2["refusals"] == 0, c2
    assert c2["started"] == c0["started"] > 0 and c2["pid_start"] == c0["pid_start"] > 0
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert not os.path.exists(counters_path(host, d, n)), "a clean exit left its counters"


@pytest.mark.timeout(120)
def test_discards_counted_exactly(host):
    """No client, --buffer 4096: of N guest bytes the first 4096 are held and
    the rest discarded, one episode; the status says so.  A client gets the
    4096, which ends the episode; a second overflow is a second one."""
    notify = Notify(host.dir)
    d, n, g = setup_channel(host)
    sock = os.path.join(host.dir, "p.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, "--buffer", "4096",
                   env=notify.env(host))
    connected(host, d, n)
    first = os.urandom(100000)
    with g.connect() as t:
        send_all(t, first)
        notify.status("discarding: %d bytes so far" % (len(first) - 4096), timeout=30)
        settled(p)
        c1 = counters(host, d, n)
        assert (c1["from_guest"], c1["held"], c1["discarded"], c1["discard_episodes"],
                c1["discarding"]) == (len(first), 4096, len(first) - 4096, 1, 1), c1
        with client(sock) as c:
            assert recv_exact(c, 4096) == first[:4096]
            notify.status("connected, client")
            settled(p)
            assert counters(host, d, n)["discarding"] == 0
        notify.status("connected, no client")
        second = os.urandom(50000)
        send_all(t, second)
        total = len(first) + len(second) - 2 * 4096
        notify.status("discarding: %d bytes so far" % total, timeout=30)
        settled(p)
        c2 = counters(host, d, n)
        assert (c2["from_guest"], c2["held"], c2["discarded"], c2["discard_episodes"]) == \
            (len(first) + len(second), 4096, total, 2), c2
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    notify.close()
