# SPDX-License-Identifier: MIT
"""Unit tests of the pure C parts (ring.c, held.c, xs.c parsers), run as one binary."""
import os
import subprocess

import pytest

BUILD = os.environ.get("XENCHAN_BUILD", os.path.join(os.path.dirname(__file__), "..", "build"))


@pytest.mark.timeout(30)
def test_units():
    r = subprocess.run([os.path.join(BUILD, "tests", "test-units")], capture_output=True, text=True, timeout=25)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 failed" in r.stdout
