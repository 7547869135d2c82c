#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""make soak: at least 256 MiB each way through one proxy, through repeated
client faults (SIGKILL mid-transfer, half-close, a client that leaves without
reading), checking every byte, and that the proxy's memory does not grow.

Guest to dom0: one stream, read by a succession of clients; what they read,
with the documented at-least-once overlap removed, must be the stream.
Dom0 to guest: each client sends its own chunk before it goes, and the guest
must read the chunks back to back, exactly."""
import hashlib
import os
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from simhost import SimHost, recv_exact, send_all, wait_socket_connectable  # noqa: E402
from test_faults import read_available, rss_kib, spawn_reader, stitch  # noqa: E402
from test_proxy import connected  # noqa: E402

MIB = 1 << 20
TOTAL = int(os.environ.get("SOAK_MIB", "256")) * MIB
ROUND = 16 * MIB


def main():
    d = tempfile.mkdtemp(prefix="soak", dir="/tmp")
    host = SimHost(d)
    host.start()
    try:
        dom = host.domain_create("soak")
        n = host.channel_add(dom, "org.example.soak")
        g = host.guest(dom, n)
        sock = os.path.join(d, "p.sock")
        p = host.proxy(str(dom), str(n), "--listen", sock, "--overflow-data", "keep")
        connected(host, dom, n)
        start, rss0 = time.monotonic(), rss_kib(p.proc.pid)
        out_done = in_done = repeated = faults = 0
        rss_max = rss0
        t = g.connect()
        # Two threads use it at once (guest writer, guest reader): keep it
        # non-blocking throughout, so neither flips the other's mode.
        t.setblocking(False)
        while out_done < TOTAL or in_done < TOTAL:
            stream = os.urandom(ROUND)
            upload = os.urandom(ROUND)
            writer = threading.Thread(target=send_all, args=(t, stream, 120), daemon=True)
            writer.start()
            got_in = bytearray()
            reader = threading.Thread(
                target=lambda: got_in.extend(recv_exact(t, ROUND, timeout=120)), daemon=True)
            reader.start()
            pieces, sent_in = [], 0
            for fault in ("kill", "half-close", "leave"):
                if fault == "kill":
                    r = spawn_reader(host, sock, ROUND)
                    piece = read_available(r, ROUND // 4, timeout=60)
                    r.send_signal(signal.SIGKILL)
                    r.wait()
                    pieces.append(piece + r.stdout.read())
                    r.stdout.close()
                else:
                    c = wait_socket_connectable(sock)
                    chunk = upload[sent_in:sent_in + ROUND // 4]
                    send_all(c, chunk, timeout=60)
                    sent_in += len(chunk)
                    pieces.append(read_available_sock(c, ROUND // 4))
                    if fault == "half-close":
                        c.shutdown(socket.SHUT_WR)
                        covered, _ = stitch(stream, pieces)
                        pieces.append(read_available_sock(c, ROUND // 8))
                    c.close()
                faults += 1
            with wait_socket_connectable(sock) as c:
                send_all(c, upload[sent_in:], timeout=120)
                covered, _ = stitch(stream, pieces)
                tail = recv_exact(c, ROUND - covered, timeout=120) if covered < ROUND else b""
                pieces.append(tail)
                while stitch(stream, pieces)[0] < ROUND:   # the replayed overlap made it longer
                    pieces[-1] += recv_exact(c, ROUND - stitch(stream, pieces)[0])
                writer.join()
                reader.join()
            covered, rep = stitch(stream, pieces)
            assert covered == ROUND
            assert hashlib.sha256(bytes(got_in)).digest() == hashlib.sha256(upload).digest(), \
                "dom0 to guest differs"
            repeated += rep
            out_done += ROUND
            in_done += ROUND
            rss_max = max(rss_max, rss_kib(p.proc.pid))
            print("soak: %4d MiB each way, %3d faults, %d bytes repeated, RSS %d KiB" %
                  (out_done // MIB, faults, repeated, rss_kib(p.proc.pid)), flush=True)
        rss1 = rss_kib(p.proc.pid)
        secs = time.monotonic() - start
        print("soak: checked %d MiB guest->dom0 (SHA-256 over the stitched stream, at-least-once "
              "overlap %d bytes) and %d MiB dom0->guest (SHA-256 exact) through %d client faults "
              "in %.0f s; proxy RSS %d KiB at start, %d KiB at most, %d KiB at the end" %
              (out_done // MIB, repeated, in_done // MIB, faults, secs, rss0, rss_max, rss1))
        assert p.proc.poll() is None
        assert rss1 - rss0 < 2048, "the proxy's memory grew"
    finally:
        host.stop()


def read_available_sock(c, want, timeout=30):
    buf = bytearray()
    c.settimeout(timeout)
    while len(buf) < want:
        b = c.recv(min(65536, want - len(buf)))
        if not b:
            break
        buf += b
    return bytes(buf)


if __name__ == "__main__":
    main()
