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


def proxy_objects():
    objs = make_print("PROXY_OBJS")
    assert objs and all(o.endswith(".o") for o in objs), objs
    missing = [o for o in objs if not os.path.exists(o)]
    if missing:
        pytest.fail("not built: %s (run make)" % " ".join(missing))
    return objs


@pytest.mark.timeout(60)
def test_proxy_calls_run_one_way():
    r = subprocess.run(["python3", os.path.join(ROOT, "tests", "callgraph.py")] + proxy_objects(),
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
    for o in proxy_objects():
        out = subprocess.run(["nm", "--defined-only", "-g", o], capture_output=True, text=True,
                             check=True, timeout=30).stdout
        ours += ["%s: %s" % (os.path.basename(o), line.split()[-1]) for line in out.splitlines()
                 if re.match(r"(xs|XS)_", line.split()[-1])]
    assert not ours, ours
