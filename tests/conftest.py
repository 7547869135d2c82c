# SPDX-License-Identifier: MIT
"""pytest setup for xenchan-proxy's tests: the `host` fixture (a simulated
Xen host per test, tests/simhost.py) and a default time bound per test."""
import os
import shutil

import pytest

from simhost import SimHost, become_subreaper, build_dir, short_dir

DEFAULT_TIMEOUT = 120   # seconds; a test may set its own with @pytest.mark.timeout


def pytest_configure(config):
    # xensim start detaches xenstored-sim; as subreaper this process reaps
    # it after `xensim stop` (this machine's init may not).
    become_subreaper()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEFAULT_TIMEOUT))


@pytest.fixture
def host(tmp_path):
    """A started SimHost in a fresh directory (tmp_path, or a short directory
    under /tmp when tmp_path is too long for Unix socket paths).  At the end
    everything it spawned is killed, the host stopped, its logs copied to
    tmp_path, and the test fails if a process of the host is left."""
    xensim = os.path.join(build_dir(), "sim", "xensim")
    if not os.access(xensim, os.X_OK):
        pytest.fail("%s is missing: run make (or set XENCHAN_BUILD)" % xensim)
    path, temporary = short_dir(tmp_path)
    h = SimHost(path, keep_logs=str(tmp_path) if temporary else None)
    try:
        h.start()
        yield h
    finally:
        try:
            h.stop()
        finally:
            if temporary:
                shutil.rmtree(path, ignore_errors=True)
