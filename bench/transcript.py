#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/transcript.py - what --transcript costs the relay (issue 15).

    python3 bench/transcript.py [--ref PROXY] [--mib 16] [--reps 5]

Throughput guest->dom0 ("out") and dom0->guest ("in") at 64 KiB writes, MIB
each way, through the proxy with no transcript and with one (a file in the
host's directory), measured as bench/run.py measures throughput, back to
back, alternating which goes first, REPS times; the table shows medians of
the rate and of the proxy's CPU time (user + system) per MiB, which a busy
machine moves less than the rate.
With a transcript the proxy relays and records one copy of each ring-full
(out[] 2 KiB, in[] 1 KiB); without one it takes no copy.  With --ref, the
same pair for another proxy binary (say a build of 804a405, which recorded
a second read of the shared ring instead), so the copy's cost is the
difference of the two "with" columns, and the fast path's the difference of
the two "without" columns.  Nothing fails on a number.
"""
import argparse
import os
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (bench/run.py)

TICK = os.sysconf("SC_CLK_TCK")


class CostBench(run.Bench):
    """bench/run.py's throughput runs, noting the proxy's CPU time (user +
    system, every thread) at the end of each: less at the mercy of a busy
    machine than the rate."""
    cpu = None

    def proxy(self, h, d, sock, *extra):
        self.last = super().proxy(h, d, sock, *extra)
        return self.last

    def end_channel(self, h, d, *procs):
        with open("/proc/%d/stat" % self.last.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        self.cpu = (int(fields[11]) + int(fields[12])) / TICK
        super().end_channel(h, d, *procs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("XENCHAN_BUILD", os.path.join(run.REPO, "build")))
    ap.add_argument("--ref", help="a second proxy binary to measure beside this build's")
    ap.add_argument("--mib", type=int, default=16, help="MiB each way per run (default 16)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions (default 5)")
    args = ap.parse_args()
    b = CostBench(argparse.Namespace(build=args.build, proxy=None, full=False, keep=False))
    b.cli, _ = run.build_helpers(b.build)
    binaries = [("this build", b.proxy_bin)] + ([("ref", os.path.abspath(args.ref))] if args.ref else [])
    nbytes, size = args.mib << 20, 65536
    mbps, cpu = {}, {}
    try:
        h = b.host("tr")
        for rep in range(args.reps):
            for name, binary in binaries:
                os.environ["XENCHAN_PROXY"] = binary
                for direction in ("out", "in"):
                    fn = getattr(b, "tp_proxy_" + direction)
                    order = [False, True] if rep % 2 == 0 else [True, False]
                    for with_tr in order:
                        tr = os.path.join(h.dir, "transcript")
                        extra = ("--transcript", tr) if with_tr else ()
                        rate = fn(h, size, nbytes, *extra)
                        if with_tr:
                            assert os.path.getsize(tr) > nbytes, "the transcript is short"
                            os.unlink(tr)
                        mbps.setdefault((name, direction, with_tr), []).append(rate)
                        cpu.setdefault((name, direction, with_tr), []).append(b.cpu / args.mib)
                        run.log("%s %s %s transcript, rep %d: %.2f MB/s, proxy CPU %.2f ms/MiB" % (
                            name, direction, "with" if with_tr else "without", rep + 1, rate,
                            1000 * b.cpu / args.mib))
    except run.BenchError as e:
        run.log("bench failed: %s" % e)
        return 1
    finally:
        b.cleanup()
    print("| proxy | direction | no transcript: MB/s, CPU ms/MiB | transcript: MB/s, CPU ms/MiB |")
    print("|---|---|---|---|")
    for name, _ in binaries:
        for direction in ("out", "in"):
            cells = []
            for with_tr in (False, True):
                cells.append("%.2f, %.1f" % (statistics.median(mbps[(name, direction, with_tr)]),
                                             1000 * statistics.median(cpu[(name, direction, with_tr)])))
            print("| %s | %s | %s | %s |" % (name, direction, cells[0], cells[1]))
    print("\n%d MiB each way per run, 64 KiB writes, median of %d; host: %d CPUs, load %.2f"
          % (args.mib, args.reps, os.cpu_count(), os.getloadavg()[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
