# SPDX-License-Identifier: MIT
"""contrib/guest: the udev helper that names a guest's channels
/dev/xen-channel/NAME -> ../hvcK, run against a fake sysfs tree laid out as
Linux lays out xenbus console devices (/sys/devices/console-N with nodename,
state and a driver link; /sys/bus/xen/devices/console-N links to them;
/sys/class/tty/hvc0..hvc7) and a fake xenstore-read.

Registration order matters (hvc_xen hands out hvc slots in probe order, and
the script reads that order from the inode numbers kernfs gives each device
directory): the fake tree reproduces it by handing out directories from a
pool sorted by inode number, so a console registered later always has a
larger inode, whatever the file system's inode allocator does."""
import os
import random
import re
import shutil
import stat
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "contrib", "guest", "xen-channel-name")
RULES = os.path.join(REPO, "contrib", "guest", "70-xen-channel.rules")

FAKE_XENSTORE_READ = r"""#!/bin/sh
# As `xenstore-read -R KEY` in the guest: the raw value and a newline.  KEY
# must be relative (to the domain's home), as the kernel's nodename is.
[ $# -eq 1 ] || { echo "fake xenstore-read: $*" >&2; exit 2; }
case $1 in /*) echo "fake xenstore-read: absolute $1" >&2; exit 2 ;; esac
[ -f "$FAKE_XS/$1" ] || { echo "xenstore-read: couldn't read path $1" >&2; exit 1; }
cat "$FAKE_XS/$1"
echo
"""


class Guest:
    """A fake guest: sysfs, /dev, the state directory and xenstore's names."""

    def __init__(self, root, shell="/bin/sh"):
        self.root = str(root)
        self.sysfs = os.path.join(self.root, "sys")
        self.dev = os.path.join(self.root, "dev")
        self.state = os.path.join(self.root, "run", "xen-channel")
        self.xs = os.path.join(self.root, "xs")
        self.shell = shell
        for d in ("bus/xen/devices", "bus/xen/drivers/xenconsole", "devices/virtual/tty"):
            os.makedirs(os.path.join(self.sysfs, d))
        os.makedirs(self.dev)
        for k in range(8):                      # HVC_ALLOC_TTY_ADAPTERS
            os.makedirs(os.path.join(self.sysfs, "devices/virtual/tty/hvc%d" % k))
            os.makedirs(os.path.join(self.sysfs, "class/tty"), exist_ok=True)
            os.symlink("../../devices/virtual/tty/hvc%d" % k,
                       os.path.join(self.sysfs, "class/tty/hvc%d" % k))
            open(os.path.join(self.dev, "hvc%d" % k), "w").close()
        self.xsread = os.path.join(self.root, "xenstore-read")
        with open(self.xsread, "w") as f:
            f.write(FAKE_XENSTORE_READ)
        os.chmod(self.xsread, 0o755)
        pool = os.path.join(self.sysfs, "devices", ".pool")
        os.makedirs(pool)
        for i in range(150):
            os.mkdir(os.path.join(pool, "%02d" % i))
        self.pool = sorted((os.path.join(pool, n) for n in os.listdir(pool)),
                           key=lambda p: os.stat(p).st_ino)

    # -- the kernel's side --------------------------------------------------------------
    def plug(self, devid, name=None, bound=True, state="Connected"):
        """Register console-DEVID (after every earlier one) with xenstore
        name NAME (bytes or str; None: no name node)."""
        d = os.path.join(self.sysfs, "devices", "console-%d" % devid)
        os.rename(self.pool.pop(0), d)
        for k, v in (("nodename", "device/console/%d" % devid), ("devtype", "console"),
                     ("state", state), ("modalias", "xen:console")):
            with open(os.path.join(d, k), "w") as f:
                f.write(v + "\n")
        if bound:
            os.symlink("../../bus/xen/drivers/xenconsole", os.path.join(d, "driver"))
        os.symlink("../../../devices/console-%d" % devid,
                   os.path.join(self.sysfs, "bus/xen/devices/console-%d" % devid))
        node = os.path.join(self.xs, "device/console/%d" % devid)
        os.makedirs(node, exist_ok=True)
        if os.path.exists(os.path.join(node, "name")):
            os.unlink(os.path.join(node, "name"))
        if name is not None:
            with open(os.path.join(node, "name"), "wb") as f:
                f.write(name.encode() if isinstance(name, str) else name)

    def unplug(self, devid):
        os.unlink(os.path.join(self.sysfs, "bus/xen/devices/console-%d" % devid))
        shutil.rmtree(os.path.join(self.sysfs, "devices", "console-%d" % devid))
        shutil.rmtree(os.path.join(self.xs, "device/console/%d" % devid))

    def set_state(self, devid, state):
        with open(os.path.join(self.sysfs, "devices", "console-%d" % devid, "state"), "w") as f:
            f.write(state + "\n")

    # -- the script -----------------------------------------------------------------------
    def run(self, *args, env=None, expect=0):
        e = {"PATH": os.environ["PATH"], "SYSFS": self.sysfs, "DEVDIR": self.dev,
             "STATEDIR": self.state, "XENSTORE_READ": self.xsread, "FAKE_XS": self.xs,
             "LOGGER": ""}
        e.update(env or {})
        r = subprocess.run([self.shell, SCRIPT] + list(args), env=e, capture_output=True,
                           timeout=20)
        assert r.returncode == expect, r.stderr.decode(errors="replace")
        self.stderr = r.stderr.decode(errors="replace")
        return r.stdout.decode()

    def links(self):
        """{name: target} of /dev/xen-channel, which must hold only links."""
        d = os.path.join(self.dev, "xen-channel")
        out = {}
        for n in os.listdir(d):
            p = os.path.join(d, n)
            assert stat.S_ISLNK(os.lstat(p).st_mode), "%s is not a link" % p
            out[n] = os.readlink(p)
        return out


def shells():
    found = ["/bin/sh"]
    bb = shutil.which("busybox")
    if bb:
        found.append(bb + " sh")
    return found


@pytest.fixture(params=shells())
def guest(request, tmp_path):
    """A fake guest; the script runs under /bin/sh (dash on Debian) and, when
    installed, busybox sh, as guests' minimal userlands do."""
    words = request.param.split()
    if len(words) > 1:
        wrapper = tmp_path / "busybox-sh"
        wrapper.write_text('#!/bin/sh\nexec %s sh "$@"\n' % words[0])
        wrapper.chmod(0o755)
        return Guest(tmp_path / "g", shell=str(wrapper))
    return Guest(tmp_path / "g", shell=words[0])


# ---- the mapping ------------------------------------------------------------------------

@pytest.mark.timeout(30)
def test_boot_channels(guest):
    for n, name in ((1, "org.example.one"), (2, "org.qemu.guest_agent.0"), (3, "com.example:log@2")):
        guest.plug(n, name)
    out = guest.run("-v")
    assert guest.links() == {"org.example.one": "../hvc1", "org.qemu.guest_agent.0": "../hvc2",
                             "com.example:log@2": "../hvc3"}
    assert out.splitlines() == ["hvc1 1 org.example.one", "hvc2 2 org.qemu.guest_agent.0",
                                "hvc3 3 com.example:log@2"]
    assert guest.stderr == ""
    assert guest.run() == "" and len(guest.links()) == 3      # idempotent, quiet


@pytest.mark.timeout(30)
def test_hvc_follows_probe_order_not_devid(guest):
    guest.plug(5, "five")           # probed first: hvc1
    guest.plug(2, "two")            # then: hvc2
    guest.plug(7, "seven")
    guest.run()
    assert guest.links() == {"five": "../hvc1", "two": "../hvc2", "seven": "../hvc3"}


@pytest.mark.timeout(30)
def test_unplug_leaves_a_hole_that_the_next_channel_fills(guest):
    for n in (1, 2, 3):
        guest.plug(n, "c%d" % n)
    guest.run()
    guest.unplug(2)                 # hvc_remove: slot 2 free, hvc3 stays hvc3
    guest.run()
    assert guest.links() == {"c1": "../hvc1", "c3": "../hvc3"}
    guest.plug(2, "again")          # lowest free devid and lowest free slot
    guest.run()
    guest.plug(4, "four")
    guest.run()
    assert guest.links() == {"c1": "../hvc1", "again": "../hvc2", "c3": "../hvc3",
                             "four": "../hvc4"}
    guest.unplug(1)
    guest.plug(9, "nine")           # devid 9, slot 1: the two disagree
    guest.run()
    assert guest.links() == {"nine": "../hvc1", "again": "../hvc2", "c3": "../hvc3",
                             "four": "../hvc4"}


@pytest.mark.timeout(60)
def test_random_plug_unplug_matches_kernel(guest):
    """Against a model of hvc_alloc (lowest free of 16 slots, slot 0 the
    primary console's, freed on remove), with the script run after each
    event as udev does: every link is right after every step."""
    rng = random.Random(5)
    slots = {}                        # devid -> slot, the kernel's view
    names = {}
    serial = 0
    for step in range(60):
        free_devids = [n for n in range(1, 10) if n not in slots]
        if free_devids and (not slots or rng.random() < 0.55):
            # --create takes the lowest free devid; another toolstack may not
            devid = free_devids[0] if rng.random() < 0.5 else rng.choice(free_devids)
            serial += 1
            names[devid] = "chan-%d" % serial
            slots[devid] = min(set(range(16)) - {0} - set(slots.values()))
            guest.plug(devid, names[devid])
        else:
            devid = rng.choice(sorted(slots))
            del slots[devid]
            guest.unplug(devid)
        guest.run()
        want = {names[n]: "../hvc%d" % s for n, s in slots.items() if s < 8}
        assert guest.links() == want, (step, slots)


@pytest.mark.timeout(30)
def test_replug_before_the_script_runs(guest):
    """A channel unplugged and another plugged at the same devid before udev
    ran the script: a new device (new inode), so the slot is handed out again."""
    for n in (1, 2, 3):
        guest.plug(n, "c%d" % n)
    guest.run()
    guest.unplug(1)
    guest.unplug(2)
    guest.plug(2, "new2")           # the kernel gave it slot 1, the lowest free
    guest.run()
    assert guest.links() == {"new2": "../hvc1", "c3": "../hvc3"}


@pytest.mark.timeout(30)
def test_closed_and_unbound_devices(guest):
    guest.plug(1, "one")
    guest.plug(2, "failed-probe", bound=False)      # no driver: no hvc
    guest.plug(3, "three")
    guest.run()
    assert guest.links() == {"one": "../hvc1", "three": "../hvc2"}
    guest.set_state(1, "Closed")    # backend Closing: hvc_xen removed its hvc
    guest.run()
    assert guest.links() == {"three": "../hvc2"}
    guest.plug(4, "four")
    guest.run()
    assert guest.links() == {"four": "../hvc1", "three": "../hvc2"}


@pytest.mark.timeout(30)
def test_devids_hvc_xen_cannot_tell_apart(guest):
    """console-10 reads as devid 0 (hvc_xen refuses it: never bound);
    console-11 as devid 1, sharing console-1's hvc: neither gets a link, and
    the channels after them are still counted right."""
    guest.plug(1, "one")
    guest.plug(10, "ten", bound=False)
    guest.plug(11, "eleven")
    guest.plug(2, "two")
    guest.run()
    assert guest.links() == {"two": "../hvc2"}
    assert "console-11" in guest.stderr and "console-1:" in guest.stderr


@pytest.mark.timeout(30)
def test_more_channels_than_ttys(guest):
    """hvc has 8 ttys: with the primary console on hvc0, channels 8 and 9 of
    a guest have an hvc slot but no /dev/hvc8, /dev/hvc9."""
    for n in range(1, 10):
        guest.plug(n, "c%d" % n)
    guest.run()
    assert guest.links() == {"c%d" % n: "../hvc%d" % n for n in range(1, 8)}
    assert "hvc8 has no tty" in guest.stderr and "hvc9 has no tty" in guest.stderr


@pytest.mark.timeout(30)
def test_no_primary_console(guest):
    guest.plug(3, "three")
    guest.run(env={"XEN_CHANNEL_FIRST_HVC": "0"})
    assert guest.links() == {"three": "../hvc0"}
    guest.run(env={"XEN_CHANNEL_FIRST_HVC": "2"}, expect=64)


# ---- names -------------------------------------------------------------------------------

HOSTILE = [
    b"a/b", b"../../etc/passwd", b"..", b".", b".hidden", b"-rf", b"", b"x" * 256,
    b"bell\x07", b"new\nline", b"tail\n", b"tab\tname", b"sp ace", b"caf\xc3\xa9",
    b"a\\001b",                      # what xenstore-read (without -R) prints for a\x01b
    b"star*", b"q?", b"[x]", b"$(reboot)", b"`id`", b"a;b", b"nul\x00byte",
]


@pytest.mark.timeout(60)
def test_hostile_names_refused(guest):
    """Refused, not rewritten (a rewritten name could take another channel's
    link): no link, a warning, nothing created outside /dev/xen-channel; the
    good channels around it keep theirs."""
    guest.plug(1, "good.before")
    guest.plug(3, "good.after")
    guest.run()
    good = {"good.before": "../hvc1", "good.after": "../hvc2"}
    assert guest.links() == good
    before = sorted(os.listdir(guest.root))
    for bad in HOSTILE:
        guest.plug(2, bad)
        guest.run()
        assert guest.links() == good, bad
        assert guest.stderr.count("refusing channel name") == 1, (bad, guest.stderr)
        assert "console-2" in guest.stderr
        guest.unplug(2)
        guest.run()
    assert sorted(os.listdir(guest.root)) == before
    assert sorted(os.listdir(guest.dev)) == sorted(["xen-channel"] + ["hvc%d" % k for k in range(8)])
    guest.plug(2, "x" * 255)                            # the longest accepted
    guest.run()
    assert guest.links() == dict(good, **{"x" * 255: "../hvc3"})


@pytest.mark.timeout(30)
def test_refusal_message_is_printable(guest):
    guest.plug(1, b"evil\x1b[2J\nname")
    guest.run()
    line = [l for l in guest.stderr.splitlines() if "refusing" in l]
    assert line and re.fullmatch(r"[ -~]+", line[0]), guest.stderr


@pytest.mark.timeout(30)
def test_duplicate_and_missing_names(guest):
    guest.plug(1, "dup")
    guest.plug(2, "dup")
    guest.plug(3, None)             # no name node
    guest.plug(4, "unique")
    guest.run()
    assert guest.links() == {"unique": "../hvc4"}
    assert "dup is used by more than one channel" in guest.stderr
    assert "console-3" in guest.stderr and "failed" in guest.stderr
    guest.unplug(2)
    guest.run()
    assert guest.links() == {"dup": "../hvc1", "unique": "../hvc4"}


@pytest.mark.timeout(30)
def test_stale_links_removed_other_files_kept(guest):
    guest.plug(1, "one")
    guest.run()
    linkdir = os.path.join(guest.dev, "xen-channel")
    os.symlink("../hvc5", os.path.join(linkdir, "gone"))
    with open(os.path.join(linkdir, "notalink"), "w") as f:
        f.write("someone else's")
    guest.run()
    assert not os.path.lexists(os.path.join(linkdir, "gone"))
    assert open(os.path.join(linkdir, "notalink")).read() == "someone else's"
    os.unlink(os.path.join(linkdir, "notalink"))
    assert guest.links() == {"one": "../hvc1"}


@pytest.mark.timeout(30)
def test_udev_rule():
    """The rule matches the xenbus console devices on the events that change
    which hvc a channel has, and runs the helper by its udev name."""
    lines = [l for l in open(RULES) if l.strip() and not l.lstrip().startswith("#")]
    assert len(lines) == 1
    pairs = re.findall(r'([A-Z]+(?:\{[^}]*\})?)\s*(==|\+=|=)\s*"([^"]*)"', lines[0])
    rule = {(k, op): v for k, op, v in pairs}
    assert rule[("SUBSYSTEM", "==")] == "xen"
    assert rule[("KERNEL", "==")] == "console-*"
    assert set(rule[("ACTION", "==")].split("|")) == {"add", "bind", "unbind", "remove"}
    assert rule[("RUN", "+=")] == os.path.basename(SCRIPT)
    assert len(pairs) == 4, pairs
