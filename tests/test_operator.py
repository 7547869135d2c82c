# SPDX-License-Identifier: MIT
"""The operator's view (issue 20): each proxy's live counters file
(RUNDIR/counters/DOMID-DEVID, stats.h), exact to the byte; --list with the
counters, host-wide, and --json against its documented schema; a crashed
proxy's counters shown as stale."""
import json
import os
import select
import signal
import struct
import subprocess

import pytest

from simhost import exchange, recv_exact, send_all, thread_switches, wait_asleep
from test_proxy import be, client, connected, listen_proxy, setup_channel
from test_systemd import Notify

# stats.h's struct stats_page, host byte order, 384 bytes.
LAYOUT = struct.Struct("=8sIIQQQIIIIIIQQQQQQQQ256s")
FIELDS = ("magic", "version", "size", "pid", "pid_start", "started", "domid", "devid",
          "backend_domid", "state", "client", "discarding", "from_guest", "to_guest", "held",
          "discarded", "discard_episodes", "client_connects", "guest_reconnects", "refusals",
          "endpoint")
STATES = ["waiting", "connected", "closing", "refused", "ending"]


def counters_path(host, d, n):
    return os.path.join(host.env["XENCHAN_RUNTIME_DIR"], "counters", "%d-%d" % (d, n))


def counters(host, d, n):
    """The counters file of (d, n) as a dict (raises if absent)."""
    with open(counters_path(host, d, n), "rb") as f:
        data = f.read()
    assert len(data) == LAYOUT.size == 384, len(data)
    c = dict(zip(FIELDS, LAYOUT.unpack(data)))
    assert c["magic"] == b"xenchanC" and c["version"] == 1 and c["size"] == 384, c
    c["endpoint"] = c["endpoint"].rstrip(b"\0").decode()
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
    assert (c0["pid"], c0["domid"], c0["devid"], c0["backend_domid"], c0["endpoint"]) == \
        (p.proc.pid, d, n, 0, sock)
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


@pytest.mark.timeout(60)
@pytest.mark.skipif(bool(os.environ.get("XENCHAN_WRAPPER")),
                    reason="a wrapper such as valgrind has wakeups of its own")
def test_idle_after_status_changes_makes_no_wakeups(host):
    """With NOTIFY_SOCKET and the counters file: changes faster than the
    STATUS= rate limit (discards growing), then quiet.  The last STATUS=
    comes (its timer), and then the proxy makes no wakeup at all."""
    notify = Notify(host.dir)
    d, n, g = setup_channel(host)
    sock = os.path.join(host.dir, "p.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, "--buffer", "0", env=notify.env(host))
    connected(host, d, n)
    with g.connect() as t:
        total = 0
        for k in range(8):
            send_all(t, b"x" * 3000)
            total += 3000
        notify.status("discarding: %d bytes so far" % total, timeout=30)
        before = wait_asleep(p.proc.pid)
        select.select([], [], [], 2.0)
        after = thread_switches(p.proc.pid)
    assert after == before, (before, after)
    assert counters(host, d, n)["discarded"] == total
    notify.close()


@pytest.mark.timeout(60)
def test_user_proxy_removes_its_counters_and_a_killed_ones_are_replaced(host):
    """--user nobody: the counters directory it makes is nobody's, so at a
    clean stop the proxy (unprivileged, filtered) removes its file; a killed
    proxy's file stays, stale, until the next proxy of the channel replaces
    it with its own."""
    import pwd
    nobody = pwd.getpwnam("nobody")
    d, n, g = setup_channel(host)
    p, sock = listen_proxy(host, d, n, "--user", "nobody")
    connected(host, d, n)
    st = os.stat(os.path.dirname(counters_path(host, d, n)))
    assert (st.st_uid, st.st_mode & 0o777) == (nobody.pw_uid, 0o755), st
    assert counters(host, d, n)["pid"] == p.proc.pid
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
    assert not os.path.exists(counters_path(host, d, n))
    k, _ = listen_proxy(host, d, n, "--user", "nobody")
    connected(host, d, n)
    settled(k)
    k.signal(signal.SIGKILL)
    k.wait()
    assert counters(host, d, n)["pid"] == k.proc.pid
    assert "stale: was connected" in list_cmd(host, str(d))
    again, _ = listen_proxy(host, d, n, "--user", "nobody")
    connected(host, d, n)
    settled(again)
    assert counters(host, d, n)["pid"] == again.proc.pid
    assert "stale" not in list_cmd(host, str(d))


# ---- --list and --json ----------------------------------------------------------------

# The --json schema, as the man page documents it: every key in every object,
# with these types (None: null where unknown).
STATE_NAMES = ("Unknown", "Initialising", "InitWait", "Initialised", "Connected", "Closing",
               "Closed", "Reconfiguring", "Reconfigured")
SCHEMA = {
    "domid": int, "domain": (str, None), "devid": int, "channel": (str, None),
    "type": (str, None), "frontend_state": STATE_NAMES, "backend_state": STATE_NAMES + (None,),
    "connection": (str, None), "endpoint": (str, None), "server_pid": (int, None),
    "server": ("alive", "stale", "unverified", None),
    "state": tuple(STATES) + (None,), "stale": (bool, None), "client": (bool, None),
    "discarding": (bool, None), "started": (int, None),
    "bytes_from_guest": (int, None), "bytes_to_guest": (int, None), "held": (int, None),
    "discarded": (int, None), "discard_episodes": (int, None), "client_connects": (int, None),
    "guest_reconnects": (int, None), "refusals": (int, None),
}


def check_schema(doc):
    assert isinstance(doc, list), doc
    for obj in doc:
        assert set(obj) == set(SCHEMA), set(obj) ^ set(SCHEMA)
        for k, want in SCHEMA.items():
            v = obj[k]
            allowed = want if isinstance(want, tuple) else (want,)
            ok = any((a is None and v is None) or (isinstance(a, str) and v == a)
                     or (isinstance(a, type) and type(v) is a) for a in allowed)
            assert ok, (k, v, want)


def list_cmd(host, *args):
    r = subprocess.run(host.proxy_argv() + ["--list"] + list(args), env=host.env,
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout


def by_channel(doc):
    return {(o["domid"], o["channel"]): o for o in doc}


@pytest.mark.timeout(120)
def test_list_every_domain_text_and_json(host):
    """--list with no DOMAIN: every domain's channels, served or not, with
    their counters; the table fits 100 columns; --json follows the schema
    and its numbers are the bytes moved; a killed proxy's counters are
    stale."""
    d1, n1, g1 = setup_channel(host, "org.example.busy")
    n1b = host.channel_add(d1, "org.example.idle")
    d2, n2, g2 = setup_channel(host, "org.example.quiet")
    d3, n3, g3 = setup_channel(host, "org.example.killed")
    p1, sock = listen_proxy(host, d1, n1, "--overflow-data", "keep")
    p2 = host.proxy(str(d2), str(n2), "--listen", os.path.join(host.dir, "q.sock"))
    p3 = host.proxy(str(d3), str(n3), "--listen", os.path.join(host.dir, "k.sock"))
    for d, n in ((d1, n1), (d2, n2), (d3, n3)):
        connected(host, d, n)
    settled(p3)
    p3.signal(signal.SIGKILL)
    p3.wait()
    with client(sock) as c, g1.connect() as t:
        exchange(c, t, 300000)
        settled(p1)
        settled(p2)
        text = list_cmd(host)
        doc = json.loads(list_cmd(host, "--json"))
    print(text)
    lines = text.splitlines()
    assert lines[0].split() == ["DOMAIN", "DEV", "CHANNEL", "STATE", "SERVER", "CLI", "G>D",
                                "D>G", "HELD", "DISC", "ENDPOINT"], lines[0]
    assert all(len(l) <= 100 for l in lines), [l for l in lines if len(l) > 100]
    rows = {l.split()[3]: l.split() for l in lines[1:]}
    assert rows["org.example.busy"][4:8] == ["connected", str(p1.proc.pid), "yes", "293K"], rows
    assert rows["org.example.quiet"][4:8] == ["connected", str(p2.proc.pid), "no", "0"], rows
    assert rows["org.example.killed"][4] == "stale", rows
    assert rows["org.example.idle"][4:6] == ["Initialising", "-"], rows
    check_schema(doc)
    o = by_channel(doc)
    assert len(doc) == 4, doc
    busy = o[(d1, "org.example.busy")]
    assert (busy["state"], busy["client"], busy["server"], busy["server_pid"]) == \
        ("connected", True, "alive", p1.proc.pid), busy
    assert busy["bytes_from_guest"] == busy["bytes_to_guest"] == 300000, busy
    assert busy["held"] == busy["discarded"] == 0 and busy["client_connects"] == 1, busy
    assert busy["endpoint"] == sock and busy["domain"].startswith("web"), busy
    quiet = o[(d2, "org.example.quiet")]
    assert (quiet["state"], quiet["client"], quiet["bytes_from_guest"]) == ("connected", False, 0)
    killed = o[(d3, "org.example.killed")]
    assert (killed["stale"], killed["server"], killed["client"], killed["held"]) == \
        (True, "stale", None, None), killed
    idle = o[(d1, "org.example.idle")]
    assert idle["state"] is idle["stale"] is idle["bytes_from_guest"] is idle["server_pid"] is None
    assert idle["frontend_state"] == "Initialising", idle


@pytest.mark.timeout(60)
def test_list_one_domain_with_counters(host):
    """--list DOMAIN: the table of before, a counters line under a served
    channel; --json DOMAIN: only that domain's channels."""
    d, n, g = setup_channel(host, "org.example.one")
    setup_channel(host, "org.example.other")
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    with client(sock) as c, g.connect() as t:
        exchange(c, t, 5000)
        settled(p)
        text = list_cmd(host, str(d))
        doc = json.loads(list_cmd(host, "--json", str(d)))
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["DEVID", "NAME", "FRONTEND", "BACKEND"]
    assert lines[1].split()[:4] == [str(n), "org.example.one", "Connected", "Connected"], lines
    assert lines[2].split() == ["connected,", "client", "yes,", "guest>dom0", "5000,",
                                "dom0>guest", "5000,", "held", "0,", "discarded", "0", "in",
                                "0", "episodes,", "1", "clients,", "0", "guest", "reconnects,",
                                "0", "refusals"], lines
    check_schema(doc)
    assert [(o["domid"], o["channel"], o["bytes_to_guest"]) for o in doc] == \
        [(d, "org.example.one", 5000)], doc


@pytest.mark.timeout(60)
def test_list_in_a_driver_domain(host):
    """Run in a driver domain, which may not list /local/domain: --list with
    no DOMAIN shows the channels it is the backend of (its own backend
    directory), with the guests' names null where it may not read them."""
    b = host.domain_create("dd", driver_domain=True)
    d = host.domain_create("web")
    n = host.channel_add(d, "org.example.dd", backend_domid=b)
    other = host.domain_create("elsewhere")
    host.channel_add(other, "org.example.dom0")       # dom0's: not this domain's
    r = subprocess.run(host.proxy_argv() + ["--list", "--json"], env=host.domain_env(b),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    check_schema(doc)
    assert [(o["domid"], o["devid"], o["channel"], o["frontend_state"], o["backend_state"])
            for o in doc] == [(d, n, "org.example.dd", "Initialising", "Initialising")], doc
    r = subprocess.run(host.proxy_argv() + ["--list"], env=host.domain_env(b),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert [l.split()[:4] for l in r.stdout.splitlines()[1:]] == \
        [[str(d), str(n), "org.example.dd", "Initialising"]], r.stdout
    # --list DOMAIN too: B may not list D's device directory, so the channels
    # are those of B's backend directory for D.
    r = subprocess.run(host.proxy_argv() + ["--list", str(d), "--json"], env=host.domain_env(b),
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    check_schema(doc)
    assert [(o["domid"], o["devid"], o["channel"]) for o in doc] == \
        [(d, n, "org.example.dd")], doc
    r = subprocess.run(host.proxy_argv() + ["--list", str(other), "--json"],
                       env=host.domain_env(b), capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and json.loads(r.stdout) == [], r.stdout + r.stderr


@pytest.mark.timeout(60)
def test_list_prints_a_rewritten_counters_file_harmlessly(host):
    """The counters file is its proxy's (xenchan's, under the units): a proxy
    a guest took over could write anything there, and root reads it with
    --list.  What --list prints of it is printable ASCII, on the terminal and
    in JSON alike (the reader copies it printable: hotplug.c fill_row)."""
    d, n, g = setup_channel(host, "org.example.forged")
    p, sock = listen_proxy(host, d, n)
    connected(host, d, n)
    path = counters_path(host, d, n)
    forged = b"\x1b]0;owned\x07\x1b[2J\xc3\xa9/run/x.sock"
    off = LAYOUT.size - 256
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(forged + b"\0")
    text = list_cmd(host)
    raw = list_cmd(host, "--json")
    for out in (text, raw):
        assert not [ch for ch in out if ord(ch) < 0x20 and ch != "\n" or ord(ch) >= 0x7f], \
            repr(out)
    doc = json.loads(raw)
    assert [o["endpoint"] for o in doc if o["channel"] == "org.example.forged"] == \
        ["?]0;owned??[2J??/run/x.sock"], doc
    p.signal(signal.SIGTERM)
    assert p.wait() == 0
