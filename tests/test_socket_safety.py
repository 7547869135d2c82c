# SPDX-License-Identifier: MIT
"""--listen (and --pty=LINK) as root on a shared dom0: the socket's mode is
set at bind, never by a call through its path afterwards (a symbolic link
swapped in between made root chmod any file); a directory another user can
change is refused unless sticky; a live listener whose queue is full does
not hang the stale-socket probe."""
import os
import re
import shutil
import stat
import struct

import pytest

import simhost
from simhost import ProcessExited, wait_socket_listening
from test_proxy import EX_CANTCREAT, setup_channel

STRACE = shutil.which("strace")
needs_strace = pytest.mark.skipif(STRACE is None or bool(os.environ.get("XENCHAN_WRAPPER")),
                                  reason="runs the proxy under strace")


def under_strace(host, monkeypatch, options):
    """The proxies this test starts run under strace OPTIONS."""
    monkeypatch.setenv("XENCHAN_WRAPPER", "%s -f -qq %s" % (STRACE, options))
    # LeakSanitizer cannot run under ptrace; the other runs check leaks.
    monkeypatch.setitem(host.env, "ASAN_OPTIONS", "detect_leaks=0")


def mkdir(host, name, mode, uid=0, gid=0):
    path = os.path.join(host.dir, name)
    os.mkdir(path)
    os.chown(path, uid, gid)
    os.chmod(path, mode)
    return path


def start_or_exit(p, sock, timeout=10):
    """None once sock listens, else the proxy's exit status."""
    try:
        wait_socket_listening(sock, timeout, p.proc)
        return None
    except ProcessExited:
        return p.wait()


def exit_status(p, hung, timeout=10):
    """The proxy's exit status, or the string hung if it still runs."""
    try:
        return p.wait(timeout)
    except TimeoutError:
        return hung


def posix_acl(*entries):
    """A system.posix_acl_* value: (tag, perm, id) entries, sorted."""
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, perm, i) for t, perm, i in entries)


ANY = 0xffffffff
USER_OBJ, USER, GROUP_OBJ, MASK, OTHER = 0x01, 0x02, 0x04, 0x10, 0x20
NAMED_USER_ACL = posix_acl((USER_OBJ, 7, ANY), (USER, 7, 12345), (GROUP_OBJ, 5, ANY),
                           (MASK, 7, ANY), (OTHER, 5, ANY))


# ---- the mode, at bind (item 1) ---------------------------------------------------------

@pytest.mark.timeout(60)
@needs_strace
def test_mode_comes_from_bind_not_a_chmod_of_the_path(host, monkeypatch):
    """Whatever the caller's umask, the socket has exactly --mode, and no
    chmod or chown by path follows its bind.  The umask set around bind is
    the process's: no thread other than the one binding exists yet."""
    d, n, g = setup_channel(host)
    trace = os.path.join(host.dir, "strace.out")
    under_strace(host, monkeypatch, "-e trace=bind,chmod,fchmodat,chown,fchownat,lchown,"
                 "clone,clone3 -e signal=none -o " + trace)
    sock = os.path.join(host.dir, "p.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, "--mode", "0666",
                   preexec_fn=lambda: os.umask(0o077))
    assert stat.S_IMODE(os.lstat(sock).st_mode) == 0o666
    host.domain_destroy(d)           # the proxy exits by itself (strace keeps SIGTERM)
    assert p.wait(15) == 0
    calls = open(trace).read()
    assert re.search(r'bind\(\d+, \{sa_family=AF_UNIX, sun_path="%s"\}' % re.escape(sock), calls), calls
    before_bind = calls[:calls.index(sock)]
    assert not re.search(r"\bclone3?\(", before_bind), before_bind
    by_path = re.findall(r"\b(?:chmod|fchmodat|chown|fchownat|lchown)\((?:AT_FDCWD, )?\"%s\".*"
                         % re.escape(sock), calls)
    assert by_path == [], by_path


@pytest.mark.timeout(60)
@needs_strace
def test_symlink_swapped_in_after_bind_changes_nothing(host, monkeypatch):
    """The issue's race, made deterministic: a chmod or chown the proxy
    makes is held 3 s at its entry (strace), and a symbolic link to a root
    file is renamed over the socket as soon as bind creates it (inotify).
    The root file must keep its mode."""
    d, n, g = setup_channel(host)
    victim = os.path.join(host.dir, "victim")
    open(victim, "w").close()
    os.chmod(victim, 0o600)
    shared = mkdir(host, "shared", 0o1777)
    sock = os.path.join(shared, "agent.sock")
    under_strace(host, monkeypatch, "-o /dev/null -e inject=chmod,fchmodat,chown,fchownat,"
                 "lchown:delay_enter=3s")
    p = host.proxy(str(d), str(n), "--listen", sock, "--mode", "0666", "-v", check_ready=False)
    simhost.wait_file(sock, 10, p.proc)
    link = os.path.join(shared, "swap")
    os.symlink(victim, link)
    os.rename(link, sock)

    def done():
        return p.proc.poll() is not None or "serving" in p.log()
    simhost.wait_dir(host.dir, done, 15, "the proxy set up or gone")
    host.domain_destroy(d)           # the proxy exits by itself (strace keeps SIGTERM)
    p.wait(15)
    assert stat.S_IMODE(os.stat(victim).st_mode) == 0o600, "the proxy changed %s to %o" % (
        victim, stat.S_IMODE(os.stat(victim).st_mode))


# ---- the directory rule (item 1) --------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make directories of other owners")
@pytest.mark.parametrize("mode,uid,gid,why", [
    (0o777, 0, 0, "writable by every user and not sticky"),
    (0o755, 12345, 0, "owned by another user"),
    (0o775, 0, 12345, "writable by its group and not sticky"),
    (0o1777, 0, 0, None),
    (0o1775, 0, 12345, None),
    (0o770, 0, 0, None),
    (0o700, 0, 0, None),
])
def test_socket_directory_others_can_change_is_refused(host, mode, uid, gid, why):
    d, n, g = setup_channel(host)
    dirpath = mkdir(host, "run", mode, uid, gid)
    sock = os.path.join(dirpath, "agent.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, check_ready=False)
    rc = start_or_exit(p, sock)
    if why is None:
        assert rc is None, p.log()
        return
    assert rc == EX_CANTCREAT, "the proxy listens in a directory %s" % why
    assert re.search(r"directory %s: %s \(uid %d, gid %d, mode %04o\): another user could swap"
                     % (re.escape(dirpath), why, uid, gid, mode), p.log()), p.log()
    assert not os.path.lexists(sock)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("xattr,why", [
    # the directory's own ACL lets a named user write to it
    ("system.posix_acl_access", "group-writable with an ACL, and not sticky"),
    # its default ACL gives the socket one: named users beyond --mode
    ("system.posix_acl_default", "not 0660: a default ACL on its directory?"),
])
def test_acl_naming_another_user_is_refused(host, xattr, why):
    d, n, g = setup_channel(host)
    dirpath = mkdir(host, "run", 0o755, os.geteuid(), os.getegid())
    try:
        os.setxattr(dirpath, xattr, NAMED_USER_ACL)
    except OSError as e:
        pytest.skip("no POSIX ACLs here: %s" % e)
    sock = os.path.join(dirpath, "agent.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, "--mode", "0660", check_ready=False)
    assert start_or_exit(p, sock) == EX_CANTCREAT
    assert why in p.log()
    assert not os.path.lexists(sock)


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="--user needs root to drop from")
def test_user_owned_directory_is_trusted_with_user(host):
    """The directory of --user (say a RuntimeDirectory= of its own) is fine;
    without --user, the same directory is another user's."""
    os.chmod(host.dir, 0o755)      # the simulated devices live under it
    d, n, g = setup_channel(host)
    dirpath = mkdir(host, "run", 0o755, 65534, 65534)
    sock = os.path.join(dirpath, "agent.sock")
    p = host.proxy(str(d), str(n), "--listen", sock, check_ready=False)
    assert start_or_exit(p, sock) == EX_CANTCREAT
    p = host.proxy(str(d), str(n), "--listen", sock, "--user", "nobody", check_ready=False)
    assert start_or_exit(p, sock) is None, p.log()


@pytest.mark.timeout(60)
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to make directories of other owners")
def test_pty_link_directory_others_can_change_is_refused(host):
    d, n, g = setup_channel(host)
    dirpath = mkdir(host, "run", 0o777)
    link = os.path.join(dirpath, "console")
    p = host.proxy(str(d), str(n), "--pty=" + link, check_ready=False)
    rc = exit_status(p, "still running")
    assert rc == EX_CANTCREAT, rc
    assert "writable by every user and not sticky" in p.log()
    assert not os.path.lexists(link)


# ---- the stale-socket probe (item 1) ---------------------------------------------------

@pytest.mark.timeout(60)
def test_probe_of_a_listener_that_never_accepts_does_not_block(host):
    """A live listener whose queue is full: a blocking probe would wait in
    connect() until it accepts, which it never does.  The socket is live,
    so refused at once."""
    d, n, g = setup_channel(host)
    sock = os.path.join(host.dir, "busy.sock")
    with simhost.busy_listener(sock):
        p = host.proxy(str(d), str(n), "--listen", sock, check_ready=False)
        rc = exit_status(p, "still running (blocked in the probe)")
        assert rc == EX_CANTCREAT, rc
        assert "a live socket is listening there" in p.log()
