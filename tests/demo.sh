#!/bin/bash
# SPDX-License-Identifier: MIT
# make demo: start a simulated Xen host, create a domain "demo" with a
# channel "org.example.demo", run its guest side (guest-sim) and
# xenchan-proxy on it, send a line each way and show both as they cross,
# then stop everything.  Every wait has a deadline; nothing sleeps.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${XENCHAN_BUILD:-$ROOT/build}
XENSIM=$BUILD/sim/xensim
PROXY=${XENCHAN_PROXY:-$BUILD/xenchan-proxy}
PYTHON=${PYTHON:-/usr/bin/python3}
CHANNEL=org.example.demo

for f in "$XENSIM" "$PROXY"; do
    [ -x "$f" ] || { echo "demo.sh: $f is missing; run make first" >&2; exit 69; }
done

DIR=$(mktemp -d /tmp/xenchan-demo.XXXXXX)
PROXY_PID= GUEST_PID=

stop_all() {
    local rc=$?
    trap - EXIT INT TERM
    # SIGTERM: the proxy unmaps and unbinds, leaves the channel as it is and
    # removes its socket; then the host goes, guests first.
    if [ -n "$PROXY_PID" ]; then
        how="by itself"
        kill -TERM "$PROXY_PID" 2>/dev/null && how="on SIGTERM"
        status=0
        wait "$PROXY_PID" || status=$?
        echo "== xenchan-proxy exited with status $status $how"
    fi
    # xensim stop SIGKILLs the guest, as a hypervisor stops a vCPU; the
    # shell would report that kill on its stderr, so that is parked.
    exec 3>&2 2>/dev/null
    "$XENSIM" stop "$DIR" 2>&3 || rc=1
    if [ -n "$GUEST_PID" ]; then wait "$GUEST_PID" || true; fi
    exec 2>&3 3>&-
    if [ "$rc" != 0 ]; then
        echo "demo.sh: failed; logs:" >&2
        tail -n 20 "$DIR"/*.log >&2 2>/dev/null || true
    fi
    rm -rf "$DIR"
    echo "stopped; $DIR removed"
    exit "$rc"
}
trap stop_all EXIT INT TERM

# The test harness's waits (inotify, xenstore watches, /proc/net/unix),
# each failing at once if the process it waits for (a pid) exits.
wait_for() {
    "$PYTHON" - "$@" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import simhost
what, arg = sys.argv[2], sys.argv[3]
try:
    if what == "file":
        simhost.wait_file(arg, 10, int(sys.argv[4]))
    elif what == "listening":
        simhost.wait_socket_listening(arg, 10, int(sys.argv[4]))
    elif what == "xs":
        simhost.wait_xs_at(sys.argv[5], arg, sys.argv[4], timeout=10)
except Exception as e:
    sys.exit("demo.sh: %s" % e)
PY
}

echo "== a simulated Xen host in $DIR"
exports=$("$XENSIM" start "$DIR")
eval "$exports"
D=$("$XENSIM" domain-create demo)
N=$("$XENSIM" channel-add "$D" "$CHANNEL")
echo "== domain $D (demo), channel $CHANNEL is device/console/$N"

"$XENSIM" guest "$D" "$N" --socket "$DIR/guest.sock" 2>"$DIR/guest.log" &
GUEST_PID=$!
wait_for "$ROOT/tests" file "$XENSIM_DIR/guest/$D-$N.pid" "$GUEST_PID"
echo "== guest-sim (pid $GUEST_PID) is the guest's hvc_xen; its tty is $DIR/guest.sock"

"$PROXY" demo "$CHANNEL" --listen "$DIR/proxy.sock" -v 2>"$DIR/proxy.log" &
PROXY_PID=$!
echo "== $PROXY demo $CHANNEL --listen $DIR/proxy.sock (pid $PROXY_PID)"
wait_for "$ROOT/tests" listening "$DIR/proxy.sock" "$PROXY_PID"
BE=/local/domain/0/backend/console/$D/$N
wait_for "$ROOT/tests" xs "$BE/state" 4 "$XENSTORED_PATH"
echo "== $BE/state = 4: the ring is connected"

# One line each way: a dom0 client of the proxy's socket, and the guest's
# application on its tty.
"$PYTHON" - "$DIR" "$D" <<'PY'
import socket, sys
dirname, domid = sys.argv[1], sys.argv[2]
def line(sock):
    buf = b""
    sock.settimeout(10)
    while not buf.endswith(b"\n"):
        chunk = sock.recv(4096)
        if not chunk:
            sys.exit("demo.sh: end of file after %r" % buf)
        buf += chunk
    return buf.decode().rstrip("\n")
with socket.socket(socket.AF_UNIX) as dom0, socket.socket(socket.AF_UNIX) as guest:
    dom0.connect(dirname + "/proxy.sock")
    guest.connect(dirname + "/guest.sock")
    dom0.sendall(b"hello from dom0\n")
    print("   dom0 -> guest:  %s" % line(guest))
    guest.sendall(b"hello from domain %s\n" % domid.encode())
    print("   guest -> dom0:  %s" % line(dom0))
PY
echo "== both lines crossed; stopping"
