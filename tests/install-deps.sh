#!/bin/sh
# SPDX-License-Identifier: MIT
# Install what building and testing xenchan-proxy needs on Debian 12, and
# unpack Xen's own tools the tests use (test-xenstore, xenconsole) from
# xen-utils-4.17 into tests/.cache/xen-utils, without installing that
# package.  Run as root on a fresh machine; idempotent, and silent when
# everything is already there.
set -eu

PACKAGES="build-essential pkg-config libxen-dev xenstore-utils libseccomp-dev
libsystemd-dev mandoc python3 python3-pytest python3-pytest-xdist
python3-pytest-timeout valgrind clang libclang-rt-14-dev strace systemd
debhelper lintian dpkg-dev fakeroot libyajl-dev"
CACHE=$(cd "$(dirname "$0")" && pwd)/.cache
XEN_UTILS=$CACHE/xen-utils
XEN_TOOL=$XEN_UTILS/usr/lib/xen-4.17/bin/test-xenstore

say() { echo "install-deps.sh: $*" >&2; }
die() { say "$*"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
updated=

# Package lists are fetched only if there are none yet, or once if an
# install or download fails on stale ones.
apt_update() {
    [ -z "$updated" ] || return 1
    say "apt-get update"
    apt-get update -qq || die "apt-get update failed"
    updated=1
}

lists_present() {
    ls /var/lib/apt/lists/ 2>/dev/null | grep -q '_Packages'
}

missing=
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
if [ -n "$missing" ]; then
    [ "$(id -u)" = 0 ] || die "missing packages:$missing (run me as root)"
    lists_present || apt_update
    say "installing:$missing"
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null ||
        { apt_update && apt-get install -y -qq --no-install-recommends $missing >/dev/null; } ||
        die "apt-get install$missing failed"
fi

if [ ! -x "$XEN_TOOL" ]; then
    # The same version as the libxenstore the tests load.
    version=$(dpkg-query -W -f='${Version}' libxenstore4 2>/dev/null) ||
        die "libxenstore4 is not installed"
    mkdir -p "$CACHE"
    deb=$(ls "$CACHE"/xen-utils-4.17_*.deb 2>/dev/null | head -n 1 || true)
    if [ -z "$deb" ]; then
        say "fetching xen-utils-4.17 $version"
        lists_present || apt_update || true
        (cd "$CACHE" && apt-get download -qq "xen-utils-4.17=$version" 2>/dev/null) ||
            { apt_update && (cd "$CACHE" && apt-get download -qq "xen-utils-4.17=$version"); } ||
            die "apt-get download xen-utils-4.17=$version failed"
        deb=$(ls "$CACHE"/xen-utils-4.17_*.deb | head -n 1)
    fi
    rm -rf "$XEN_UTILS"
    dpkg -x "$deb" "$XEN_UTILS" || die "dpkg -x $deb failed"
    [ -x "$XEN_TOOL" ] || die "$deb has no $XEN_TOOL"
fi
