# SPDX-License-Identifier: MIT
"""The documentation promises: the man page is mandoc-clean and documents
every option --help offers; the README opens with the two commands."""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("XENCHAN_BUILD", os.path.join(ROOT, "build"))
MAN = os.path.join(ROOT, "man", "xenchan-proxy.1")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("page", [MAN, os.path.join(ROOT, "man", "xenchan-dm.8"),
                                  os.path.join(ROOT, "man", "xenchan-devd.8")])
def test_man_page_lints_clean(page):
    if shutil.which("mandoc") is None:
        pytest.skip("mandoc is not installed")
    r = subprocess.run(["mandoc", "-Tlint", "-Wwarning", page], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


@pytest.mark.timeout(30)
@pytest.mark.parametrize("program, page, least", [
    ("xenchan-proxy", MAN, 15),
    ("xenchan-devd", os.path.join(ROOT, "man", "xenchan-devd.8"), 5)])
def test_every_option_is_documented(program, page, least):
    r = subprocess.run([os.path.join(BUILD, program), "--help"], capture_output=True,
                       text=True, timeout=10)
    assert r.returncode == 0
    opts = set(re.findall(r"--[a-z][a-z0-9-]+", r.stdout))
    assert len(opts) >= least, opts
    man = open(page).read()
    for o in sorted(opts):
        assert re.search(r"Fl Fl %s\b" % re.escape(o[2:]), man), "%s is not in the man page" % o


@pytest.mark.timeout(30)
def test_readme_opens_with_the_two_commands():
    text = open(os.path.join(ROOT, "README.md")).read()
    block = re.search(r"```sh\n(.*?)```", text, re.S).group(1)
    lines = [l.split("#")[0].strip() for l in block.splitlines() if l.strip()]
    assert len(lines) == 2 and "make demo" in lines[0], lines
    assert text.index(lines[1]) < text.index("## ")
    # .ci/run runs that same test command.
    ci = open(os.path.join(ROOT, ".ci", "run")).read()
    assert re.search(r"^" + re.escape(lines[1]) + r"\b", ci, re.M), lines[1]


def test_readme_libvirt_xml_is_the_one_the_real_xen_tier_checks():
    """README's libvirt domain XML, as written, is what the real-Xen tier's
    libvirt scenario defines (tests/xen/scenarios.sh, lv_xml, for lv1)."""
    def xml(path, name="lv1"):
        with open(os.path.join(ROOT, path)) as f:
            m = re.search(r"^<domain type='xen'>\n.*?^</domain>\n", f.read(), re.M | re.S)
        assert m, path
        return m.group(0).replace("$1", name)
    readme = xml("README.md")
    assert "<channel type='unix'>" in readme and "<channel type='pty'>" in readme
    assert "<emulator>" not in readme
    assert readme == xml("tests/xen/scenarios.sh")
