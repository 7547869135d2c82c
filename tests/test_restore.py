# SPDX-License-Identifier: MIT
"""Save and restore: a restored guest's hvc_xen resumes the devices it had,
granting its ring anew and writing Initialised as at probe (docs/protocol.md,
"The guest", Resume).

The toolstack's order that works (and what libxl does for its own devices):
restore paused, re-create each channel at the devid it had (--create
--devid N), unpause.  A guest that resumes before its channel exists keeps
a stale device at that devid until the directory is seen removed."""
import re

import pytest

from simhost import exchange, wait_socket_connectable
from test_hotplug import channels, create
from test_hostile import host_wait_log_guest
from test_proxy import be, connected, fe, host_wait_log

EX_USAGE, EX_CANTCREAT = 64, 73


@pytest.mark.timeout(60)
def test_channel_recreated_before_resume_is_served(host):
    d = host.domain_create("restored")
    p, sock = create(host, d, "org.example.r", "--devid", "2")
    host.wait_xs(be(d, 2) + "/state", "2")
    assert host.xs.read(fe(d, 2) + "/state") == b"1"
    g = host.guest(d, 2, resume=True)                # the unpause
    host_wait_log_guest(g, r"resumed device/console/2")
    connected(host, d, 2)
    with wait_socket_connectable(sock) as c, g.connect() as t:
        r = exchange(c, t, 256 * 1024, timeout=30)
    assert r.seconds >= 0


@pytest.mark.timeout(60)
def test_guest_resumed_before_its_channel_keeps_a_stale_device(host):
    """The order that does not work, and its remedy: unplug and plug again."""
    d = host.domain_create("early")
    g = host.guest(d, 1, resume=True)
    host_wait_log_guest(g, r"resume \(talk_to_otherend\) failed: -2")
    p, sock = create(host, d, "org.example.e")
    host.wait_xs(be(d, 1) + "/state", "2")
    p.signal(15)
    assert p.wait(15) == 0
    # Nothing took it up, so the unplug did not wait for an answer.
    assert "unplugged (the guest had not taken it up)" in p.log()
    host_wait_log_guest(g, r"stale device removed")
    p2, sock = create(host, d, "org.example.e")
    connected(host, d, 1)
    with wait_socket_connectable(sock) as c, g.connect() as t:
        exchange(c, t, 64 * 1024, timeout=30)


@pytest.mark.timeout(60)
def test_a_ring_left_at_initialising_is_never_taken(host):
    """ring-ref and port already there when the frontend is (re)starting may
    be an old kernel's: only a ring published since is taken."""
    d, n = host.domain_create("leftover"), 1
    host.channel_add(d, "org.example.l", devid=n)
    host.xs.write(fe(d, n) + "/ring-ref", "123456")
    host.xs.write(fe(d, n) + "/port", "7")
    sock = host.dir + "/l.sock"
    p = host.proxy(str(d), str(n), "--listen", sock, "-v")
    host.wait_xs(be(d, n) + "/state", "2")
    g = host.guest(d, n)                             # probes: a new ring, then 3
    connected(host, d, n)
    host_wait_log(p, r"connected: ring-ref")    # logged after the state write
    log = p.log()
    assert "ring-ref 123456" not in log, log
    assert len(re.findall(r"connected: ring-ref", log)) == 1, log
    with wait_socket_connectable(sock) as c, g.connect() as t:
        exchange(c, t, 64 * 1024, timeout=30)


@pytest.mark.timeout(60)
def test_devid_option(host):
    d = host.domain_create("devids")
    p, _ = create(host, d, "org.example.x", "--devid", "3")
    host.wait_xs(be(d, 3) + "/state", "2")
    assert channels(host, d) == ["3"]
    taken = host.proxy(str(d), "org.example.y", "--create", "--devid", "3", "--stdio",
                       check_ready=False)
    assert taken.wait(15) == EX_CANTCREAT
    assert "devid 3 is in use" in taken.log()
    moved = host.proxy(str(d), "org.example.x", "--create", "--devid", "4", "--stdio",
                       check_ready=False)
    assert moved.wait(15) == EX_CANTCREAT
    assert "exists at devid 3, not 4" in moved.log()
    for bad in (["--devid", "0", "--create"], ["--devid", "10", "--create"], ["--devid", "2"]):
        u = host.proxy(str(d), "org.example.z", "--stdio", *bad, check_ready=False)
        assert u.wait(15) == EX_USAGE, u.log()
    p.signal(15)
    assert p.wait(15) == 0
