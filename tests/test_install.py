# SPDX-License-Identifier: MIT
"""Installing: `make install` lays out exactly the documented files (install.mk's
header, README's "Installing"), the installed units run the installed binary,
`make uninstall` takes it all away again; `make install-guest` puts the guest
files where udev runs them; debian/changelog is at the version the proxy
reports; and, when dpkg-buildpackage, debhelper and lintian are installed,
`make deb` builds its three packages into build-deb/ without touching the tree,
with the documented contents, and lintian finds nothing to warn about."""
import os
import re
import shutil
import stat
import subprocess
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("XENCHAN_BUILD", os.path.join(ROOT, "build"))
VERSION = re.search(r"^VERSION\s*=\s*(\S+)", open(os.path.join(ROOT, "Makefile")).read(),
                    re.M).group(1)

HAVE_DM_MAN = os.path.exists(os.path.join(ROOT, "man", "xenchan-dm.8"))

# Variables that would change where things go, and a parent make's flags
# (make check SAN=1 passes SAN=1 down through MAKEFLAGS): none reach the
# makes run here.
_DROP = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "DESTDIR", "PREFIX", "BINDIR",
         "DATADIR", "MANDIR", "GUESTDIR", "SYSTEMDUNITDIR", "UDEVDIR", "DEB_OUT",
         "SAN", "B"}
ENV = {k: v for k, v in os.environ.items() if k not in _DROP}

# The device-model stand-in is installed when the Makefile builds it (install.mk).
HAVE_DM = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "print-DM_PROG"],
                         env=ENV, capture_output=True, text=True,
                         timeout=60).stdout.strip() == "xenchan-dm"


def make(*args, timeout=120):
    r = subprocess.run(["make", "--no-print-directory", "-C", ROOT] + list(args), env=ENV,
                       capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, "make %s: exit %d\n%s%s" % (" ".join(args), r.returncode,
                                                          r.stdout[-3000:], r.stderr[-3000:])
    return r


def files_under(root):
    """Every non-directory under ROOT, as "/"-rooted paths."""
    out = set()
    for d, dirs, files in os.walk(root):
        for f in files:
            out.add("/" + os.path.relpath(os.path.join(d, f), root))
        for x in dirs:
            if os.path.islink(os.path.join(d, x)):
                out.add("/" + os.path.relpath(os.path.join(d, x), root))
    return out


def pkg_config_systemd(var):
    try:
        r = subprocess.run(["pkg-config", "--variable=" + var, "systemd"], capture_output=True,
                           text=True, timeout=10)
    except FileNotFoundError:
        return ""
    return r.stdout.strip() if r.returncode == 0 else ""


def systemd_unit_dir(prefix):
    """install.mk's rule: systemd's own unit directory, but PREFIX's when
    systemd reads that one too (/usr/local) or there is no systemd.pc."""
    own = prefix + "/lib/systemd/system"
    pc = pkg_config_systemd("systemdsystemunitdir")
    if not pc:
        return own
    if prefix != "/usr" and own in pkg_config_systemd("systemdsystemunitpath").split(":"):
        return own
    return pc


def documented_files(prefix, unitdir, bindir=None, mandir=None):
    bindir = bindir or prefix + "/bin"
    mandir = mandir or prefix + "/share/man"
    files = {
        bindir + "/xenchan-proxy": 0o755,
        mandir + "/man1/xenchan-proxy.1": 0o644,
        unitdir + "/xenchan-proxy@.service": 0o644,
        unitdir + "/xenchan-proxy@.socket": 0o644,
        unitdir + "/xenchan-devd.service": 0o644,
        bindir + "/xenchan-devd": 0o755,
        mandir + "/man8/xenchan-devd.8": 0o644,
        prefix + "/share/xenchan-proxy/guest/70-xen-channel.rules": 0o644,
        prefix + "/share/xenchan-proxy/guest/xen-channel-name": 0o755,
    }
    if HAVE_DM:
        files[bindir + "/xenchan-dm"] = 0o755
    if HAVE_DM_MAN:
        files[mandir + "/man8/xenchan-dm.8"] = 0o644
    return files


def exec_lines(unit_text):
    return [l for l in unit_text.splitlines() if re.match(r"Exec\w*=", l)]


def check_units(dest, unitdir, bindir):
    """Each installed unit is its contrib/systemd template with the binary's
    path replaced by BINDIR's, and the service runs BINDIR/xenchan-proxy."""
    for u in ("xenchan-proxy@.service", "xenchan-proxy@.socket", "xenchan-devd.service"):
        template = open(os.path.join(ROOT, "contrib", "systemd", u)).read()
        installed = open(dest + unitdir + "/" + u).read()
        assert installed == template.replace("/usr/bin/xenchan-proxy", bindir + "/xenchan-proxy") \
            .replace("/usr/bin/xenchan-devd", bindir + "/xenchan-devd")
    service = open(dest + unitdir + "/xenchan-proxy@.service").read()
    assert exec_lines(service) == ["ExecStart=%s/xenchan-proxy --user xenchan -- %%I" % bindir]
    devd = open(dest + unitdir + "/xenchan-devd.service").read()
    assert "ExecStart=%s/xenchan-devd" % bindir in exec_lines(devd)
    if bindir != "/usr/bin":
        assert "/usr/bin/xenchan-proxy" not in service and "/usr/bin/" not in devd


def check_layout(dest, expected):
    got = files_under(dest)
    assert got == set(expected), "missing %s, unexpected %s" % (
        sorted(set(expected) - got), sorted(got - set(expected)))
    for path, mode in expected.items():
        st = os.lstat(dest + path)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == mode, \
            "%s: mode %o, want %o" % (path, stat.S_IMODE(st.st_mode), mode)


@pytest.mark.timeout(180)
def test_install_lays_out_the_documented_files_and_uninstall_removes_them(tmp_path):
    dest = str(tmp_path / "root")
    make("install", "DESTDIR=" + dest, "PREFIX=/usr")
    unitdir = systemd_unit_dir("/usr")
    expected = documented_files("/usr", unitdir)
    check_layout(dest, expected)
    check_units(dest, unitdir, "/usr/bin")

    # What is installed is what was built, and it runs.
    assert open(dest + "/usr/bin/xenchan-proxy", "rb").read() == \
        open(os.path.join(ROOT, "xenchan-proxy"), "rb").read()
    r = subprocess.run([dest + "/usr/bin/xenchan-proxy", "--version"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.strip() == "xenchan-proxy " + VERSION, r
    for name in ("70-xen-channel.rules", "xen-channel-name"):
        assert open(dest + "/usr/share/xenchan-proxy/guest/" + name, "rb").read() == \
            open(os.path.join(ROOT, "contrib", "guest", name), "rb").read()
    assert open(dest + "/usr/share/man/man1/xenchan-proxy.1", "rb").read() == \
        open(os.path.join(ROOT, "man", "xenchan-proxy.1"), "rb").read()

    # Installing again over an install is fine and changes nothing.
    make("install", "DESTDIR=" + dest, "PREFIX=/usr")
    check_layout(dest, expected)

    make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr")
    assert files_under(dest) == set()
    assert not os.path.exists(dest + "/usr/share/xenchan-proxy")


@pytest.mark.timeout(180)
def test_install_honours_prefix_and_directory_variables(tmp_path):
    # The default PREFIX is /usr/local, and the units then run /usr/local/bin's proxy.
    dest = str(tmp_path / "default")
    make("install", "DESTDIR=" + dest)
    unitdir = systemd_unit_dir("/usr/local")
    check_layout(dest, documented_files("/usr/local", unitdir))
    check_units(dest, unitdir, "/usr/local/bin")
    make("uninstall", "DESTDIR=" + dest)
    assert files_under(dest) == set()

    # Every directory variable on its own.
    dest = str(tmp_path / "custom")
    args = ["DESTDIR=" + dest, "PREFIX=/opt/xc", "BINDIR=/opt/xc/libexec/xc",
            "MANDIR=/opt/man", "SYSTEMDUNITDIR=/etc/systemd/system"]
    make("install", *args)
    check_layout(dest, documented_files("/opt/xc", "/etc/systemd/system",
                                        bindir="/opt/xc/libexec/xc", mandir="/opt/man"))
    check_units(dest, "/etc/systemd/system", "/opt/xc/libexec/xc")
    make("uninstall", *args)
    assert files_under(dest) == set()


@pytest.mark.timeout(180)
def test_installed_units_verify_against_the_installed_binary(tmp_path):
    """systemd-analyze verify checks that ExecStart='s program exists and the
    Documentation= man page is there: installed without DESTDIR under a real
    prefix, the units must pass with no change at all."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    prefix = str(tmp_path / "p")
    unitdir = prefix + "/units"
    make("install", "PREFIX=" + prefix, "SYSTEMDUNITDIR=" + unitdir)
    check_units("", unitdir, prefix + "/bin")
    env = dict(ENV, MANPATH=prefix + "/share/man", SYSTEMD_LOG_COLOR="0")
    units = [unitdir + "/xenchan-proxy@.service", unitdir + "/xenchan-proxy@.socket"]
    r = subprocess.run([analyze, "verify"] + units, env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=50)
    assert (r.returncode, (r.stdout + r.stderr).strip()) == (0, "")
    # And it does see a missing binary.
    os.unlink(prefix + "/bin/xenchan-proxy")
    r = subprocess.run([analyze, "verify", units[0]], env=env, cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=50)
    assert prefix + "/bin/xenchan-proxy" in r.stdout + r.stderr, r


@pytest.mark.timeout(180)
def test_unit_directory_follows_systemd(tmp_path):
    # systemd's own directory for a prefix systemd does not read (/opt/...).
    pc = pkg_config_systemd("systemdsystemunitdir")
    if pc:
        dest = str(tmp_path / "opt")
        make("install", "DESTDIR=" + dest, "PREFIX=/opt/xc")
        check_layout(dest, documented_files("/opt/xc", pc))
        check_units(dest, pc, "/opt/xc/bin")
        # A /usr/local install stays out of the package manager's directory.
        assert systemd_unit_dir("/usr/local") == "/usr/local/lib/systemd/system"
    # With no pkg-config answer (a build host without systemd), the units go
    # under PREFIX.  The proxy is built first: PKG_CONFIG=false must not
    # reach its compile and link lines.
    make("xenchan-proxy")
    dest = str(tmp_path / "nopc")
    make("install", "DESTDIR=" + dest, "PREFIX=/opt/xc", "PKG_CONFIG=false")
    check_layout(dest, documented_files("/opt/xc", "/opt/xc/lib/systemd/system"))
    check_units(dest, "/opt/xc/lib/systemd/system", "/opt/xc/bin")


@pytest.mark.timeout(60)
def test_install_guest_puts_the_rule_where_udev_runs_it(tmp_path):
    dest = str(tmp_path / "guest")
    make("install-guest", "DESTDIR=" + dest, "UDEVDIR=/usr/lib/udev")
    check_layout(dest, {"/usr/lib/udev/rules.d/70-xen-channel.rules": 0o644,
                        "/usr/lib/udev/xen-channel-name": 0o755})
    # The rule runs the script by its bare name, which udev looks up in its
    # own directory: the two must stay side by side.
    rule = open(dest + "/usr/lib/udev/rules.d/70-xen-channel.rules").read()
    assert re.search(r'RUN\+="xen-channel-name"', rule), rule
    make("uninstall-guest", "DESTDIR=" + dest, "UDEVDIR=/usr/lib/udev")
    assert files_under(dest) == set()


@pytest.mark.timeout(30)
def test_changelog_version_is_the_proxys_version():
    head = open(os.path.join(ROOT, "debian", "changelog")).readline()
    m = re.match(r"xenchan-proxy \(([^)]+)\) ", head)
    assert m, head
    r = subprocess.run([os.path.join(BUILD, "xenchan-proxy"), "--version"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0, r
    assert r.stdout.strip() == "xenchan-proxy " + m.group(1), (r.stdout, head)
    assert m.group(1) == VERSION


# ---- the Debian packages ---------------------------------------------------------
DEB_OUT = os.path.join(ROOT, "build-deb")


def deb_files(deb):
    """The non-directory members of DEB (dpkg -c), "/"-rooted."""
    r = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = set()
    for line in r.stdout.splitlines():
        perms, name = line.split()[0], line.split(None, 5)[5]
        if perms.startswith("d"):
            continue
        out.add(name.split(" -> ")[0].lstrip("."))
    return out


def deb_field(deb, field):
    r = subprocess.run(["dpkg-deb", "-f", deb, field], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def git(*args):
    return subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True, text=True,
                          timeout=30)


BUILD_PRODUCT = re.compile(r"(^|/)(debian/|build-deb/|xenchan-(proxy|guest)[-_][^/]*"
                           r"\.(deb|changes|buildinfo|dsc|tar\.\w+)$)")


def tree_state():
    """Every file under debian/; what git sees as new that a package build
    makes (debian/ build files, packages: other new files may be a
    colleague's edits, made meanwhile); and the packages beside the tree,
    where dpkg-buildpackage run in the tree would put them."""
    status = git("status", "--porcelain", "--untracked-files=all")
    new = {l for l in status.stdout.splitlines() if BUILD_PRODUCT.search(l[3:])} \
        if status.returncode == 0 else None
    beside = {f for f in os.listdir(os.path.dirname(ROOT)) if BUILD_PRODUCT.search(f)}
    return files_under(os.path.join(ROOT, "debian")), new, beside


@pytest.mark.timeout(600)
def test_make_deb_builds_the_packages_and_lintian_is_clean():
    missing = [t for t in ("dpkg-buildpackage", "dh", "lintian") if shutil.which(t) is None]
    if missing:
        pytest.skip("make deb needs %s: apt-get install dpkg-dev debhelper lintian"
                    % ", ".join(missing))
    before = tree_state()
    make("deb", timeout=480)
    after = tree_state()
    assert after[0] == before[0], "debian/ changed: %s" % sorted(after[0] ^ before[0])
    if before[1] is not None:
        assert after[1] - before[1] == set(), "make deb left files in the tree"
        assert git("check-ignore", "-q", "build-deb/x.deb").returncode == 0, \
            "build-deb/ is not ignored by git"
    assert after[2] == before[2], "make deb wrote beside the tree"
    assert not os.path.exists(os.path.join(DEB_OUT, "xenchan-proxy-" + VERSION)), \
        "the build copy was left behind"

    arch = subprocess.run(["dpkg-architecture", "-qDEB_HOST_ARCH"], capture_output=True,
                          text=True, timeout=30).stdout.strip()
    proxy = os.path.join(DEB_OUT, "xenchan-proxy_%s_%s.deb" % (VERSION, arch))
    guest = os.path.join(DEB_OUT, "xenchan-guest_%s_all.deb" % VERSION)
    changes = os.path.join(DEB_OUT, "xenchan-proxy_%s_%s.changes" % (VERSION, arch))
    for f in (proxy, guest, changes):
        assert os.path.exists(f), f

    # The contents README's "Installing" lists.
    want = {
        "/usr/bin/xenchan-proxy",
        "/usr/share/man/man1/xenchan-proxy.1.gz",
        "/lib/systemd/system/xenchan-proxy@.service",
        "/lib/systemd/system/xenchan-proxy@.socket",
        "/lib/systemd/system/xenchan-devd.service",
        "/usr/bin/xenchan-devd",
        "/usr/share/man/man8/xenchan-devd.8.gz",
        "/usr/share/doc/xenchan-proxy/README.md",
        "/usr/share/doc/xenchan-proxy/protocol.md",
        "/usr/share/doc/xenchan-proxy/examples/xl/README.md",
        "/usr/share/doc/xenchan-proxy/examples/xl/xl-create-channels",
        "/usr/share/doc/xenchan-proxy/changelog.gz",
        "/usr/share/doc/xenchan-proxy/copyright",
    }
    # dh_compress compresses documents over 4 KiB.
    for doc in ("README.md", "protocol.md"):
        if os.path.getsize(os.path.join(ROOT, "docs" if doc.startswith("protocol") else "", doc)) > 4096:
            want.remove("/usr/share/doc/xenchan-proxy/" + doc)
            want.add("/usr/share/doc/xenchan-proxy/" + doc + ".gz")
    if HAVE_DM:
        want.add("/usr/bin/xenchan-dm")
    if HAVE_DM_MAN:
        want.add("/usr/share/man/man8/xenchan-dm.8.gz")
    assert deb_files(proxy) == want
    assert deb_files(guest) == {
        "/lib/udev/rules.d/70-xen-channel.rules",
        "/lib/udev/xen-channel-name",
        "/usr/share/lintian/overrides/xenchan-guest",
        "/usr/share/doc/xenchan-guest/changelog.gz",
        "/usr/share/doc/xenchan-guest/copyright",
    }
    for deb in (proxy, guest):
        assert deb_field(deb, "Version") == VERSION
    assert deb_field(guest, "Architecture") == "all"
    depends = deb_field(proxy, "Depends")
    for lib in ("libxenstore4", "libxengnttab1", "libxenevtchn1", "libc6", "adduser"):
        assert lib in depends, depends
    # The system user the units and xenchan-dm run the proxies as.
    ctl = subprocess.run(["dpkg-deb", "--info", proxy, "postinst"], capture_output=True,
                         text=True, timeout=30)
    assert re.search(r"adduser --system --group .*xenchan", ctl.stdout, re.S), ctl.stdout + ctl.stderr
    assert "xenstore-utils" in deb_field(guest, "Depends")

    # The packaged unit runs the packaged binary.
    x = subprocess.run(["dpkg-deb", "--fsys-tarfile", proxy], capture_output=True, timeout=30)
    assert x.returncode == 0
    unit = subprocess.run(["tar", "-xOf", "-", "./lib/systemd/system/xenchan-proxy@.service"],
                          input=x.stdout, capture_output=True, timeout=30)
    assert exec_lines(unit.stdout.decode()) == ["ExecStart=/usr/bin/xenchan-proxy --user xenchan -- %I"]

    check_dm_default_package(os.path.join(DEB_OUT, "xenchan-dm-default_%s_%s.deb" % (VERSION, arch)))

    r = subprocess.run(["lintian", "--fail-on", "error,warning", changes],
                       capture_output=True, text=True, timeout=300)
    tags = [l for l in r.stdout.splitlines() if re.match(r"[EW]: ", l)]
    assert r.returncode == 0 and not tags, r.stdout + r.stderr


# ---- xenchan-dm-default: the diversion of QEMU's path ---------------------------
QEMU_PATH = "/usr/libexec/xen-qemu-system-i386"


def fake_qemu_deb(tmp, version):
    """A package named qemu-system-xen whose one file is QEMU's path, a
    script saying its version: as Debian's, but a few bytes."""
    root = os.path.join(tmp, "qemu-" + version)
    os.makedirs(os.path.join(root, "DEBIAN"))
    os.makedirs(os.path.join(root, "usr", "libexec"))
    with open(os.path.join(root, "DEBIAN", "control"), "w") as f:
        f.write("Package: qemu-system-xen\nVersion: %s\nArchitecture: all\n"
                "Maintainer: nobody <nobody@example.org>\nDescription: stand-in\n" % version)
    exe = root + QEMU_PATH
    with open(exe, "w") as f:
        f.write("#!/bin/sh\necho qemu %s\n" % version)
    os.chmod(exe, 0o755)
    deb = root + ".deb"
    r = subprocess.run(["dpkg-deb", "--root-owner-group", "-b", root, deb], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return deb


class DpkgRoot:
    """dpkg --root on a scratch directory: the maintainer scripts run
    outside it (--force-script-chrootless), and their dpkg-divert follows
    DPKG_ROOT and DPKG_ADMINDIR, which dpkg sets for them."""

    def __init__(self, top):
        self.root = os.path.join(top, "root")
        admin = os.path.join(self.root, "var", "lib", "dpkg")
        for d in ("info", "updates", "triggers"):
            os.makedirs(os.path.join(admin, d))
        for f in ("status", "available"):
            open(os.path.join(admin, f), "w").close()

    def dpkg(self, *args):
        r = subprocess.run(["dpkg", "--root=" + self.root, "--force-script-chrootless",
                            "--force-not-root", "--force-depends", "--log=/dev/null"] + list(args),
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, "dpkg %s: %s%s" % (" ".join(args), r.stdout, r.stderr)

    def diversions(self):
        r = subprocess.run(["dpkg-divert", "--root=" + self.root, "--list"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def libexec(self):
        """{name: first line of the file} in usr/libexec."""
        d = os.path.join(self.root, "usr", "libexec")
        out = {}
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, n), "rb") as f:
                out[n] = f.read()
        return out


def check_dm_default_package(deb):
    """Its contents and fields, then what dpkg does with it (README.Debian):
    installed, QEMU moves to .distrib and the dispatcher takes the path; an
    upgrade of qemu-system-xen lands at .distrib; removed, QEMU is back at
    its path, byte for byte, and no diversion is left.  The same with QEMU
    installed only after it.  The host's own diversions are never touched."""
    assert deb_files(deb) == {
        QEMU_PATH,
        "/usr/share/man/man8/xen-qemu-system-i386.8.gz",
        "/usr/share/doc/xenchan-dm-default/README.Debian.gz",
        "/usr/share/doc/xenchan-dm-default/changelog.gz",
        "/usr/share/doc/xenchan-dm-default/copyright",
    }
    assert "xenchan-proxy (= %s)" % VERSION in deb_field(deb, "Depends")
    for script in ("preinst", "postrm"):
        r = subprocess.run(["dpkg-deb", "--info", deb, script], capture_output=True, text=True,
                           timeout=30)
        assert "--divert %s.distrib" % QEMU_PATH in r.stdout, r.stdout + r.stderr
    x = subprocess.run(["dpkg-deb", "--fsys-tarfile", deb], capture_output=True, timeout=30)
    dispatcher = subprocess.run(["tar", "-xOf", "-", "." + QEMU_PATH], input=x.stdout,
                                capture_output=True, timeout=30).stdout
    assert dispatcher

    host_before = subprocess.run(["dpkg-divert", "--list"], capture_output=True, text=True).stdout
    top = tempfile.mkdtemp(prefix="xenchan-dpkg-")
    try:
        v1, v2 = fake_qemu_deb(top, "1.0"), fake_qemu_deb(top, "2.0")
        diverted = ("diversion of %s to %s.distrib by xenchan-dm-default" % (QEMU_PATH, QEMU_PATH))
        base = os.path.basename(QEMU_PATH)

        # A: QEMU first, then the package, a QEMU upgrade, the package again, removal.
        a = DpkgRoot(os.path.join(top, "a"))
        a.dpkg("-i", v1)
        assert a.libexec() == {base: b"#!/bin/sh\necho qemu 1.0\n"}
        a.dpkg("-i", deb)
        assert a.diversions() == diverted
        assert a.libexec() == {base: dispatcher, base + ".distrib": b"#!/bin/sh\necho qemu 1.0\n"}
        a.dpkg("-i", v2)
        assert a.libexec() == {base: dispatcher, base + ".distrib": b"#!/bin/sh\necho qemu 2.0\n"}
        a.dpkg("-i", deb)
        assert a.diversions() == diverted
        assert a.libexec() == {base: dispatcher, base + ".distrib": b"#!/bin/sh\necho qemu 2.0\n"}
        a.dpkg("-r", "xenchan-dm-default")
        assert a.diversions() == ""
        assert a.libexec() == {base: b"#!/bin/sh\necho qemu 2.0\n"}

        # B: the package with no QEMU; QEMU installed after, then removed; purge.
        b = DpkgRoot(os.path.join(top, "b"))
        b.dpkg("-i", deb)
        assert b.diversions() == diverted
        assert b.libexec() == {base: dispatcher}
        b.dpkg("-i", v1)
        assert b.libexec() == {base: dispatcher, base + ".distrib": b"#!/bin/sh\necho qemu 1.0\n"}
        b.dpkg("-r", "qemu-system-xen")
        assert b.libexec() == {base: dispatcher}
        b.dpkg("-P", "xenchan-dm-default")
        assert b.diversions() == ""
        assert b.libexec() == {}
    finally:
        shutil.rmtree(top, ignore_errors=True)
    assert subprocess.run(["dpkg-divert", "--list"], capture_output=True, text=True).stdout == host_before
