# SPDX-License-Identifier: MIT
"""The proxy's structure, as README.md's "Design" states it: calls run one way
(no cycle in the file-level call graph of its objects, tests/callgraph.py),
and no symbol of ours in libxenstore's namespace (xs_*)."""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("XENCHAN_BUILD", os.path.join(ROOT, "build"))
# A parent make's flags (make check SAN=1) must not change what is printed:
# B is given explicitly.
ENV = {k: v for k, v in os.environ.items()
       if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES", "SAN", "B")}


def make_print(var):
    """The Makefile's value of var, for the objects in BUILD."""
    r = subprocess.run(["make", "-s", "--no-print-directory", "-C", ROOT, "print-" + var,
                        "B=" + BUILD], env=ENV, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def objects(var="PROXY_OBJS"):
    objs = make_print(var)
    assert objs and all(o.endswith(".o") for o in objs), objs
    missing = [o for o in objs if not os.path.exists(o)]
    if missing:
        pytest.fail("not built: %s (run make)" % " ".join(missing))
    return objs


@pytest.mark.timeout(60)
def test_proxy_calls_run_one_way():
    r = subprocess.run(["python3", os.path.join(ROOT, "tests", "callgraph.py")] + objects(),
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("no cycle"), r.stdout + r.stderr
    edges = {tuple(line.split(":")[0].split(" -> ")) for line in r.stdout.splitlines()
             if " -> " in line}
    # main -> the state machine -> the relay, never back up
    assert ("xenchan-proxy", "backend") in edges and ("backend", "relay") in edges, edges
    for low in ("relay", "backend", "log", "store", "hotplug", "transcript"):
        assert (low, "xenchan-proxy") not in edges, edges
    assert ("relay", "backend") not in edges, edges
    # log.c and strict.c are shared by both programs: they call nothing of either
    assert not [e for e in edges if e[0] in ("log", "strict", "unixsock")], edges


@pytest.mark.timeout(60)
def test_no_symbol_of_ours_in_libxenstores_namespace():
    ours = []
    for o in objects():
        out = subprocess.run(["nm", "--defined-only", "-g", o], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        ours += ["%s: %s" % (os.path.basename(o), line.split()[-1]) for line in out.splitlines()
                 if re.match(r"(xs|XS)_", line.split()[-1])]
    assert not ours, ours


# What both programs that start proxies share with the proxy: they call
# nothing of any program.
SHARED = {"log", "strict", "unixsock", "launch"}


def program_edges(var, folder):
    """The file-level call graph of a program in folder/ (its objects,
    Makefile variable var): checked to have no cycle, to link of the proxy
    only SHARED, and to define no xs_* symbol; its edges."""
    r = subprocess.run(["python3", os.path.join(ROOT, "tests", "callgraph.py")] + objects(var),
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("no cycle"), r.stdout + r.stderr
    edges = {tuple(line.split(":")[0].split(" -> ")) for line in r.stdout.splitlines()
             if " -> " in line}
    assert not [e for e in edges if not e[1].startswith(folder + "/") and e[1] not in SHARED], \
        edges
    assert not [e for e in edges if e[0] in SHARED], edges
    for o in objects(var):
        out = subprocess.run(["nm", "--defined-only", "-g", o], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        assert not [l for l in out.splitlines() if re.match(r"(xs|XS)_", l.split()[-1])], (o, out)
    return edges


@pytest.mark.timeout(60)
def test_dm_calls_run_one_way():
    edges = program_edges("DM_OBJS", "dm")
    assert ("dm/main", "dm/proxies") in edges, edges
    assert not [e for e in edges if e[1] == "dm/main"], edges


@pytest.mark.timeout(60)
def test_devd_calls_run_one_way():
    """xenchan-devd: main -> proxies, never back."""
    edges = program_edges("DEVD_OBJS", "devd")
    assert ("devd/main", "devd/proxies") in edges and ("devd/proxies", "launch") in edges, edges
    assert not [e for e in edges if e[1] == "devd/main"], edges


def tracked():
    return subprocess.run(["git", "-C", ROOT, "ls-files"], capture_output=True, text=True,
                          timeout=30).stdout.split()


@pytest.mark.timeout(60)
def test_root_holds_only_the_proxys_sources():
    files = tracked()
    if not files:
        pytest.skip("not a git checkout")
    srcs = {os.path.basename(o)[:-2] for o in objects()}
    root_c = {f[:-2] for f in files if "/" not in f and f.endswith(".c")}
    assert root_c <= srcs | SHARED, root_c - srcs
    assert not [f for f in files if "/" not in f and f.startswith("dm")], files
    dm = {f for f in files if f.startswith("dm/")}
    assert {"dm/main.c", "dm/dm.mk", "dm/dm.h"} <= dm, dm
    devd = {f for f in files if f.startswith("devd/")}
    assert {"devd/main.c", "devd/devd.mk", "devd/devd.h"} <= devd, devd


@pytest.mark.timeout(60)
def test_the_repository_points_nowhere_outside_itself():
    """Every document the project cites is in it.  The one exception is a
    default: the real-Xen 4.20 tier's package (tests/xen/xen.mk, run), found
    beside the checkout when it is there, and said so where it is set."""
    files = tracked()
    if not files:
        pytest.skip("not a git checkout")
    allowed = {"tests/xen/xen.mk", "tests/xen/run", "tests/xen/README.md"}
    me = os.path.relpath(__file__, ROOT)
    bad = []
    for f in files:
        if f == me:
            continue
        try:
            text = open(os.path.join(ROOT, f), errors="replace").read()
        except (IsADirectoryError, FileNotFoundError):
            continue
        for n, line in enumerate(text.splitlines(), 1):
            if re.search(r"(\.\./shared|shared/docs|shared/seed)", line):
                if f in allowed and "xen-4.20" in line:
                    continue
                bad.append("%s:%d: %s" % (f, n, line.strip()))
    assert not bad, "\n".join(bad)


@pytest.mark.timeout(60)
def test_every_source_file_says_its_licence():
    files = tracked()
    if not files:
        pytest.skip("not a git checkout")
    exts = (".c", ".h", ".py", ".sh", ".mk", ".service", ".socket", ".rules", ".1", ".8")
    bad = []
    for f in files:
        if f.startswith("tests/fuzz/corpus"):
            continue
        path = os.path.join(ROOT, f)
        head = open(path, errors="replace").read(400)
        if (f.endswith(exts) or os.path.basename(f) == "Makefile" or head.startswith("#!")) \
                and "SPDX-License-Identifier: MIT" not in "\n".join(head.splitlines()[:4]):
            bad.append(f)
    assert not bad, bad
    assert "MIT License" in open(os.path.join(ROOT, "LICENSE")).read()
    assert "License: MIT" in open(os.path.join(ROOT, "debian", "copyright")).read()


@pytest.mark.timeout(60)
def test_dispatcher_calls_run_one_way_and_reuse_the_dms_rules():
    """xenchan-dm-dispatch links xenchan-dm's rules (dm/args, dm/store) and
    nothing of its loop: the argv and xenstore checks are called, not
    copied, and nothing calls back into the dispatcher."""
    objs = objects("DISPATCH_OBJS")
    names = {os.path.relpath(o, BUILD)[:-2] for o in objs}
    assert names == {"dm/dispatch", "dm/args", "dm/store", "dm/log", "log", "strict"}, names
    r = subprocess.run(["python3", os.path.join(ROOT, "tests", "callgraph.py")] + objs,
                       capture_output=True, text=True, timeout=50)
    assert r.returncode == 0 and r.stdout.rstrip().endswith("no cycle"), r.stdout + r.stderr
    edges = {tuple(line.split(":")[0].split(" -> ")) for line in r.stdout.splitlines()
             if " -> " in line}
    assert ("dm/dispatch", "dm/args") in edges and ("dm/dispatch", "dm/store") in edges, edges
    assert not [e for e in edges if e[1] == "dm/dispatch"], edges
