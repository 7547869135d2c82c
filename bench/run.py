#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/run.py - xenchan-proxy's benchmarks on the simulated host (issue 7).

    make bench                  # or: python3 bench/run.py [options]

Six figures, each measured side by side in one run on tests/sim's simulated
Xen host: throughput both ways at four write sizes beside the ring's own
limit (tests/sim/mini-backend); echo latency; syscalls and notifications per
MiB and per ring-full (strace -c -f, cross-checked with perf tracepoints);
idle wakeups over 60 s; RSS/PSS of one, 100 and 1,000 instances with the time
for all to be Connected; start to Connected.  Markdown table on stdout,
numbers in results.json, plots and RESULTS.md (see bench/README.md for the
method of each figure and the caveats of the simulated host).
"""
import argparse
import json
import math
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from simhost import SimHost, wait_dir  # noqa: E402
from xslib import XS  # noqa: E402
import bulkhost  # noqa: E402  (bench/, next to this file)

RING_OUT, RING_IN = 2048, 1024          # sizeof out[], in[] in struct xencons_interface
SIZES = [1, 64, 1024, 65536]
SIZE_NAMES = {1: "1 B", 64: "64 B", 1024: "1 KiB", 65536: "64 KiB"}
# Bytes per throughput run: about a third of a second each on the machine
# this was written on (a 1-byte writer notifies once per byte, ~0.1 MB/s
# here); nine back-to-back pairs (--reps) rather than three longer ones, so
# that a burst of other load falls on a pair and not on a whole cell.
TP_BYTES = {1: 48 << 10, 64: (4 << 20) // 3, 1024: (16 << 20) // 3, 65536: (32 << 20) // 3}
# Counted by name with perf (the rest only in its total): what a relay loop
# and the test event-channel library call.
PERF_SYSCALLS = ["poll", "ppoll", "epoll_wait", "epoll_pwait", "epoll_ctl", "recvmmsg", "recvmsg",
                 "recvfrom", "sendto", "sendmsg", "read", "readv", "write", "writev", "ioctl",
                 "futex", "clock_gettime", "brk", "mmap", "munmap"]
# A reference the proxy beats by more than this factor is no bound: the cell
# says "reference invalid" instead of a goal verdict.
REFERENCE_SLACK = 1.10
LATENCY_CHUNKS = 10      # turns each of the proxy's path and the reference's takes
# The syscall floor per ring-full is the reference's count plus the client's
# writev/readv; counts within 5 % of it meet it.
SYSCALL_FLOOR_SLACK = 1.05
T0 = time.monotonic()


def log(msg):
    print("[%6.1fs] %s" % (time.monotonic() - T0, msg), file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    pass


# ---- small helpers --------------------------------------------------------------

def read_line(proc, timeout, what):
    """The next line proc writes on its stdout (a pipe), within timeout."""
    r, _, _ = select.select([proc.stdout], [], [], timeout)
    if not r:
        raise BenchError("%s: no output within %gs" % (what, timeout))
    line = proc.stdout.readline().decode(errors="replace").strip()
    if not line:
        raise BenchError("%s: exited (%s) before printing" % (what, proc.poll()))
    return line


def kv(line):
    """"a=1 b=2.5" -> {"a": 1.0, "b": 2.5}"""
    out = {}
    for word in line.split():
        k, _, v = word.partition("=")
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


def percentile(sorted_vals, q):
    """Nearest-rank percentile of an ascending list."""
    k = max(1, math.ceil(q * len(sorted_vals)))
    return sorted_vals[k - 1]


def smaps_rollup(pid):
    """{"Rss": kB, "Pss": kB, ...} of a process."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0].endswith(":") and w[1].isdigit():
                out[w[0][:-1]] = int(w[1])
    return out


def task_counters(pid):
    """Per thread: context switches (status), schedstat run time and
    timeslices, and utime+stime (stat), of every task of pid."""
    tasks = {}
    base = "/proc/%d/task" % pid
    for tid in os.listdir(base):
        t = {}
        with open("%s/%s/status" % (base, tid)) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    k, v = line.split(":")
                    t[k] = int(v)
        with open("%s/%s/schedstat" % (base, tid)) as f:
            run_ns, _wait_ns, slices = (int(x) for x in f.read().split())
        with open("%s/%s/stat" % (base, tid)) as f:
            st = f.read().rsplit(")", 1)[1].split()
        t["run_ns"], t["timeslices"] = run_ns, slices
        t["cpu_ticks"] = int(st[11]) + int(st[12])
        tasks[tid] = t
    return tasks


def proc_run_ns(pid):
    """CPU time of all threads of pid, in ns (schedstat)."""
    total = 0
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return total


def stop(proc, sig=signal.SIGTERM, timeout=10):
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def machine():
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024
    debian = ""
    if os.path.exists("/etc/debian_version"):
        debian = open("/etc/debian_version").read().strip()
    virt = ""
    try:
        virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip()
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "kernel": platform.release(),
        "debian": debian,
        "mem_mib": mem,
        "virt": virt,
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
    }


class LoadSampler(threading.Thread):
    """The machine's load while the bench runs: the 1-minute load average
    every 5 s, and the share of all CPU time that was busy (every process,
    this bench's included) over the run, from /proc/stat."""

    def __init__(self):
        super().__init__(daemon=True)
        self.loads, self.stop_ev = [], threading.Event()
        self.cpu0 = self.cpu_times()

    @staticmethod
    def cpu_times():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v) - idle, sum(v)

    def run(self):
        while not self.stop_ev.wait(5):
            with open("/proc/loadavg") as f:
                self.loads.append(float(f.read().split()[0]))

    def finish(self):
        self.stop_ev.set()
        busy0, all0 = self.cpu0
        busy1, all1 = self.cpu_times()
        return {"loadavg_mean": round(statistics.mean(self.loads), 2) if self.loads else None,
                "loadavg_max": max(self.loads) if self.loads else None,
                "cpu_busy_pct": round(100 * (busy1 - busy0) / max(1, all1 - all0), 1)}


def ensure_tool(cmd, package):
    """cmd on PATH, installing Debian's package with apt-get if we may."""
    if shutil.which(cmd):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("%s is missing: apt-get install -y %s" % (cmd, package))
        r = subprocess.run(["apt-get", "install", "-y", package], stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            log("apt-get install %s failed: %s" % (package, r.stderr.strip()[-300:]))
    return shutil.which(cmd) is not None


# ---- building the helpers -----------------------------------------------------------

# The big host's xenstored-sim: its safety bounds raised, as a real xenstored
# has no such global ones (its quotas are per domain or connection).
BIG_XSD_BOUNDS = {
    "SIM_MAX_CONNS": 4096,      # 1024: 1,000 guests and 1,000 proxies are 2,000 connections
    "SIM_MAX_TXNS": 4096,       # 256 open at once in all: 1,000 starting proxies get ENOSPC
    "SIM_MAX_NODES": 1000000,   # 100000: 1,000 domains are about 90,000 nodes
}


def build_helpers(build):
    """benchcli, and for the big host a copy of build/sim whose xenstored-sim
    has the bounds of BIG_XSD_BOUNDS.  Nothing else in the copy differs."""
    out = os.path.join(build, "bench")
    os.makedirs(out, exist_ok=True)
    warn = ["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-O2", "-g"]
    cli = os.path.join(out, "benchcli")
    src = os.path.join(HERE, "benchcli.c")
    if not os.path.exists(cli) or os.path.getmtime(cli) < os.path.getmtime(src):
        subprocess.run(["cc"] + warn + ["-o", cli, src], check=True)

    big = os.path.join(out, "big")
    bsim = os.path.join(big, "sim")
    os.makedirs(os.path.join(bsim, "lib"), exist_ok=True)
    xsd_src = os.path.join(REPO, "tests", "sim", "xenstored-sim.c")
    patched = open(xsd_src).read()
    for name, value in BIG_XSD_BOUNDS.items():
        patched, n = re.subn(r"(?m)^#define %s\s+\d+" % name, "#define %s %d" % (name, value),
                             patched)
        if n != 1:
            raise BenchError("tests/sim/xenstored-sim.c: no %s to raise" % name)
    csrc = os.path.join(out, "xenstored-sim-big.c")
    if not os.path.exists(csrc) or open(csrc).read() != patched:
        with open(csrc, "w") as f:
            f.write(patched)
    xsd = os.path.join(bsim, "xenstored-sim")
    if not os.path.exists(xsd) or os.path.getmtime(xsd) < os.path.getmtime(csrc):
        xs_cflags = subprocess.run(["pkg-config", "--cflags", "xenstore"], capture_output=True,
                                   text=True).stdout.split()
        subprocess.run(["cc"] + warn + ["-I" + os.path.join(REPO, "tests", "sim")] + xs_cflags +
                       ["-o", xsd, csrc], check=True)
    # xensim finds xenstored-sim, simhvd and guest-sim next to itself
    # (/proc/self/exe), guest-sim its libraries in $ORIGIN/lib: copy them
    # beside the new daemon.
    sim = os.path.join(build, "sim")
    for name in ("xensim", "simhvd", "guest-sim", "mini-backend", "lib/libxengnttab.so.1",
                 "lib/libxenevtchn.so.1"):
        shutil.copy2(os.path.join(sim, name), os.path.join(bsim, name))
    return cli, big


# ---- the bench -----------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.proxy_bin = os.path.abspath(args.proxy or os.path.join(self.build, "xenchan-proxy"))
        os.environ["XENCHAN_PROXY"] = self.proxy_bin   # for SimHost.proxy
        self.sim = os.path.join(self.build, "sim")
        self.tmp = tempfile.mkdtemp(prefix="xcb-", dir="/tmp")   # short socket paths
        self.r = {}            # results.json
        self.notes = []        # for RESULTS.md
        self.tp = {}           # (dir, size) -> {"proxy": [..], "limit": [..]}
        self.rtt = {}          # "proxy"/"baseline" -> sorted ns
        self.strace = {}
        self.hosts = []
        # A full run writes bench/results.json, RESULTS.md and the plots; a
        # partial one (--only, --quick, changed counts) writes them here.
        self.out = HERE if args.full else os.path.join(self.build, "bench", "partial")
        os.makedirs(self.out, exist_ok=True)

    # -- hosts --------------------------------------------------------------------------
    def host(self, name, build=None):
        h = SimHost(os.path.join(self.tmp, name), build=build or self.build)
        h.start()
        self.hosts.append(h)
        return h

    def drop_host(self, h):
        try:
            h.stop()
        except AssertionError as e:
            log("host %s: %s" % (h.dir, str(e)[:500]))
        if h in self.hosts:
            self.hosts.remove(h)

    def guest_bench(self, h, d, n, mode, arg, log_name):
        """guest-sim with no tty, bytes from/to memory (--bench-out/-in)."""
        err = open(os.path.join(h.dir, log_name), "wb")
        return h.spawn([os.path.join(h.build, "sim", "guest-sim"), mode, arg, str(d), str(n)],
                       stdout=subprocess.PIPE, stderr=err)

    def proxy(self, h, d, sock, *extra):
        """A proxy for a transfer: --overflow-data keep, so that a client the
        machine's load holds back slows the guest down (backpressure) instead
        of losing bytes beyond the held buffer, and every byte is counted."""
        return h.proxy(str(d), "bench", "--listen", sock, "-v", "--overflow-data", "keep", *extra)

    def client(self, h, *argv):
        p = h.spawn([self.cli] + [str(a) for a in argv], stdout=subprocess.PIPE)
        line = read_line(p, 10, "benchcli " + argv[0])
        if line != "ready":
            raise BenchError("benchcli %s: %s" % (argv[0], line))
        return p

    @staticmethod
    def wait_accepted(h, p):
        wait_dir(h.dir, lambda: "client connected" in p.log(), 10,
                 "the proxy to accept its client", p.proc)

    @staticmethod
    def check_proxy_log(p, what):
        text = p.log()
        if "discarded" in text:
            raise BenchError("%s: the proxy discarded bytes:\n%s" % (what, text[-2000:]))

    def new_channel(self, h, tag):
        d = h.domain_create(tag)
        return d, h.channel_add(d, "bench")

    def end_channel(self, h, d, *procs):
        """Stop the backends first (SIGTERM), then destroy the domain, so
        that no backend's unbind rewrites the guest's port record in
        evtchn/D while xensim removes it."""
        for p in procs:
            stop(p.proc if hasattr(p, "proc") else p)
        h.domain_destroy(d)

    # -- 1. throughput -----------------------------------------------------------------
    def tp_proxy_out(self, h, size, nbytes, *extra):
        d, n = self.new_channel(h, "tpo-p-%d-%d" % (size, self.serial()))
        sock = os.path.join(h.dir, "p%d.sock" % d)
        p = self.proxy(h, d, sock, *extra)
        sink = self.client(h, "sink", "--connect", sock, nbytes)
        self.wait_accepted(h, p)
        self.guest_bench(h, d, n, "--bench-out", "%d:%d" % (nbytes, size), "g%d.log" % d)
        res = kv(read_line(sink, 120, "sink"))
        self.check_proxy_log(p, "throughput out")
        self.end_channel(h, d, p, sink)
        return res["MBps"]

    def tp_limit_out(self, h, size, nbytes):
        d, n = self.new_channel(h, "tpo-l-%d-%d" % (size, self.serial()))
        self.guest_bench(h, d, n, "--bench-out", "%d:%d" % (nbytes, size), "g%d.log" % d)
        mb = h.spawn([os.path.join(self.sim, "mini-backend"), str(d), str(n), "--bench-out",
                      str(nbytes)], stdout=subprocess.PIPE,
                     stderr=open(os.path.join(h.dir, "mb%d.log" % d), "wb"))
        res = kv(read_line(mb, 120, "mini-backend --bench-out"))
        self.end_channel(h, d, mb)
        return res["MBps"]

    def tp_proxy_in(self, h, size, nbytes, *extra):
        d, n = self.new_channel(h, "tpi-p-%d-%d" % (size, self.serial()))
        sock = os.path.join(h.dir, "p%d.sock" % d)
        p = self.proxy(h, d, sock, *extra)
        src = self.client(h, "source", "--connect", sock, nbytes, size)
        self.wait_accepted(h, p)
        g = self.guest_bench(h, d, n, "--bench-in", str(nbytes), "g%d.log" % d)
        res = kv(read_line(g, 120, "guest-sim --bench-in"))
        self.end_channel(h, d, p, src)
        return res["MBps"]

    def tp_limit_in(self, h, size, nbytes):
        d, n = self.new_channel(h, "tpi-l-%d-%d" % (size, self.serial()))
        g = self.guest_bench(h, d, n, "--bench-in", str(nbytes), "g%d.log" % d)
        mb = h.spawn([os.path.join(self.sim, "mini-backend"), str(d), str(n), "--bench-in",
                      str(nbytes)], stdout=subprocess.DEVNULL,
                     stderr=open(os.path.join(h.dir, "mb%d.log" % d), "wb"))
        res = kv(read_line(g, 120, "guest-sim --bench-in"))
        self.end_channel(h, d, mb)
        return res["MBps"]

    _serial = 0

    def serial(self):
        Bench._serial += 1
        return Bench._serial

    def throughput(self, h):
        reps = self.args.reps
        scale = self.args.tp_scale
        for rep in range(reps):
            for size in SIZES:
                nbytes = max(4096, int(TP_BYTES[size] * scale))
                for direction in ("out", "in"):
                    runs = [("proxy", getattr(self, "tp_proxy_" + direction)),
                            ("limit", getattr(self, "tp_limit_" + direction))]
                    if rep % 2:
                        runs.reverse()   # alternate who goes first
                    cell = self.tp.setdefault((direction, size), {"proxy": [], "limit": []})
                    for who, fn in runs:
                        cell[who].append(fn(h, size, nbytes))
                    log("throughput %s %-6s rep %d: proxy %.2f MB/s, ring limit %.2f MB/s"
                        % (direction, SIZE_NAMES[size], rep + 1, cell["proxy"][-1],
                           cell["limit"][-1]))
        for (direction, size), cell in self.tp.items():
            p, lim = statistics.median(cell["proxy"]), statistics.median(cell["limit"])
            tag = "%s_%d" % (direction, size)
            self.r["throughput_mbps_" + tag] = round(p, 3)
            self.r["throughput_limit_mbps_" + tag] = round(lim, 3)
            # Each repetition's two runs were back to back: the median of
            # those ratios is the side-by-side figure.
            self.r["throughput_ratio_" + tag] = round(statistics.median(
                a / b for a, b in zip(cell["proxy"], cell["limit"]) if b), 3)
        for direction in ("out", "in"):
            self.r["throughput_mbps_" + direction] = self.r["throughput_mbps_%s_65536" % direction]
            self.r["throughput_limit_mbps_" + direction] = \
                self.r["throughput_limit_mbps_%s_65536" % direction]
            self.r["throughput_ratio_" + direction] = self.r["throughput_ratio_%s_65536" % direction]
        self.r["throughput_repetitions"] = reps

    # -- 2. latency ----------------------------------------------------------------------
    def ping(self, h, g, name, count, warmup):
        path = os.path.join(h.dir, "rtt-%s.txt" % name)
        pg = self.client(h, "ping", "--connect", g.sock_path, count, warmup, path)
        read_line(pg, 600, "benchcli ping")
        pg.wait()
        return [int(x) for x in open(path)]

    def latency(self, h):
        # Through the proxy: guest tty -> guest-sim -> ring -> proxy -> echo client and back.
        d, n = self.new_channel(h, "lat-p")
        sock = os.path.join(h.dir, "p%d.sock" % d)
        p = self.proxy(h, d, sock)
        echo_p = self.client(h, "echo", "--connect", sock)
        self.wait_accepted(h, p)
        g_p = h.guest(d, n)
        h.wait_xs("/local/domain/0/backend/console/%d/%d/state" % (d, n), "4")
        # The same path with mini-backend relaying to the same echo client
        # over a socketpair: what the ring and the guest cost by themselves.
        d_m, n_m = self.new_channel(h, "lat-m")
        a, b = socket.socketpair()
        mb = h.spawn([os.path.join(self.sim, "mini-backend"), str(d_m), str(n_m)],
                     stdin=a.fileno(), stdout=a.fileno(),
                     stderr=open(os.path.join(h.dir, "mb-lat.log"), "wb"))
        echo_m = h.spawn([self.cli, "echo", "--fd", str(b.fileno())], stdout=subprocess.PIPE,
                         pass_fds=[b.fileno()])
        read_line(echo_m, 10, "benchcli echo")
        a.close()
        b.close()
        g_m = h.guest(d_m, n_m)
        h.wait_xs("/local/domain/0/backend/console/%d/%d/state" % (d_m, n_m), "4")
        # In LATENCY_CHUNKS turns, alternating which goes first, so that a
        # change in the machine's load falls on both alike.
        rtt_p, rtt_m = [], []
        count = max(1, self.args.round_trips // LATENCY_CHUNKS)
        warmup = max(1, self.args.round_trips // 10 // LATENCY_CHUNKS)
        for k in range(LATENCY_CHUNKS):
            turns = [(g_p, "proxy", rtt_p), (g_m, "baseline", rtt_m)]
            for g, name, acc in (turns if k % 2 == 0 else turns[::-1]):
                acc += self.ping(h, g, "%s-%d" % (name, k), count, warmup)
        self.end_channel(h, d, p, echo_p)
        self.end_channel(h, d_m, mb, echo_m)
        for name, v in (("proxy", rtt_p), ("baseline", rtt_m)):
            v.sort()
            self.rtt[name] = v
        for key, name in (("latency", "proxy"), ("latency_baseline", "baseline")):
            v = self.rtt[name]
            self.r[key + "_p50_us"] = round(percentile(v, 0.50) / 1e3, 1)
            self.r[key + "_p99_us"] = round(percentile(v, 0.99) / 1e3, 1)
            self.r[key + "_p999_us"] = round(percentile(v, 0.999) / 1e3, 1)
            self.r[key + "_max_us"] = round(v[-1] / 1e3, 1)
        self.r["latency_round_trips"] = len(rtt_p)
        self.r["latency_p999_ratio"] = round(self.r["latency_p999_us"]
                                             / self.r["latency_baseline_p999_us"], 2)
        log("latency: proxy p50 %.1f p99 %.1f p99.9 %.1f max %.0f us; mini-backend p50 %.1f "
            "p99 %.1f p99.9 %.1f max %.0f us" % tuple(
                self.r[k + suffix] for k in ("latency", "latency_baseline")
                for suffix in ("_p50_us", "_p99_us", "_p999_us", "_max_us")))

    # -- 3. syscalls per MiB ------------------------------------------------------------
    def counter_start(self, h, tool, pid, name):
        """Count pid's system calls (every thread) from now: strace -c -f
        attached, or perf stat on the syscalls:sys_enter_* tracepoints (no
        ptrace stops, so the timing, and the batching it allows, is left
        alone).  Returns once counting has begun."""
        out = os.path.join(h.dir, "%s-%s.txt" % (tool, name))
        if tool == "strace":
            c = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(pid)],
                                 stderr=subprocess.PIPE)
            seen = b""
            deadline = time.monotonic() + 10
            while b"attached" not in seen:
                r, _, _ = select.select([c.stderr], [], [], max(0, deadline - time.monotonic()))
                chunk = os.read(c.stderr.fileno(), 4096) if r else b""
                if not chunk:
                    raise BenchError("strace -p %d: not attached: %s" % (pid, seen.decode(errors="replace")))
                seen += chunk
            return c, out, None
        ctl, ack = out + ".ctl", out + ".ack"
        for f in (ctl, ack):
            os.mkfifo(f)
        # Every tracepoint (syscalls:sys_enter_*) takes perf a minute to set
        # up: the total from raw_syscalls, and the calls that matter by name.
        events = ",".join(["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in PERF_SYSCALLS])
        c = subprocess.Popen(["perf", "stat", "-D", "-1", "--control", "fifo:%s,%s" % (ctl, ack),
                              "-e", events, "-p", str(pid), "-x", ",", "-o", out],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(ctl, "w") as f:        # opens once perf listens
            f.write("enable\n")
        with open(ack) as f:
            if f.readline().strip() != "ack":
                raise BenchError("perf stat -p %d: no ack" % pid)
        return c, out, None

    @staticmethod
    def counter_finish(c, out, tool):
        if c.poll() is None:
            c.send_signal(signal.SIGINT)
        c.wait(60)
        calls = {}
        for line in open(out):
            if tool == "strace":
                w = line.split()
                # % time, seconds, usecs/call, calls, [errors], syscall
                if len(w) >= 5 and w[3].isdigit() and w[-1] != "total":
                    calls[w[-1]] = int(w[3])
            else:
                w = line.strip().split(",")
                if len(w) > 2 and w[0].strip().isdigit():
                    if w[2] == "raw_syscalls:sys_enter":
                        total = int(w[0])
                    elif "sys_enter_" in w[2] and int(w[0]) > 0:
                        calls[w[2].split("sys_enter_", 1)[1]] = int(w[0])
        if tool == "perf":
            calls["(others)"] = total - sum(calls.values())
        return calls

    def counted_transfer(self, h, tool, who, direction, nbytes):
        """One transfer at 64 KiB writes with who (proxy or mini-backend)
        counted from before the guest comes until the last byte arrived."""
        d, n = self.new_channel(h, "%s-%s-%s" % (tool[:2], who[:2], direction))
        gspec = "%d:65536" % nbytes if direction == "out" else str(nbytes)
        if who == "proxy":
            sock = os.path.join(h.dir, "p%d.sock" % d)
            p = self.proxy(h, d, sock)
            peer = self.client(h, "sink", "--connect", sock, nbytes) if direction == "out" else \
                self.client(h, "source", "--connect", sock, nbytes, 65536)
            self.wait_accepted(h, p)
            pid, procs = p.proc.pid, (p, peer)
        else:
            mlog = os.path.join(h.dir, "mb%d.log" % d)
            mb = h.spawn([os.path.join(self.sim, "mini-backend"), str(d), str(n),
                          "--bench-" + direction, str(nbytes)], stdout=subprocess.PIPE,
                         stderr=open(mlog, "wb"))
            wait_dir(h.dir, lambda: "backend state 2" in open(mlog).read(), 10,
                     "mini-backend in InitWait", mb)
            pid, procs, peer = mb.pid, (mb,), mb
        c, out, _ = self.counter_start(h, tool, pid, "%s-%s" % (who, direction))
        g = self.guest_bench(h, d, n, "--bench-" + direction, gspec, "g%d.log" % d)
        read_line(peer if direction == "out" else g, 600, "%s %s under %s" % (who, direction, tool))
        if who == "mini" and direction == "in":
            read_line(mb, 60, "mini-backend --bench-in")   # its last ring-full was read
        calls = self.counter_finish(c, out, tool)
        if who == "proxy":
            self.check_proxy_log(p, "%s %s" % (tool, direction))
        self.end_channel(h, d, *procs)
        return calls

    def syscalls(self, h, tools):
        sizes = {"out": self.args.strace_mib_out << 20, "in": self.args.strace_mib_in << 20}
        for tool in tools:
            for who in ("proxy", "mini"):
                for direction in ("out", "in"):
                    c = self.counted_transfer(h, tool, who, direction, sizes[direction])
                    self.strace[(tool, who, direction)] = c
                    ringfulls = sizes[direction] / (RING_OUT if direction == "out" else RING_IN)
                    mib = sizes[direction] / (1 << 20)
                    total = sum(c.values())
                    # On Xen, xenevtchn_pending is one read() of /dev/xen/evtchn where
                    # the test library does epoll_wait + recvmmsg; the rest map 1:1
                    # (unmask: write; notify: ioctl).
                    on_xen = total - c.get("recvmmsg", 0)
                    pre = ("syscalls" if who == "proxy" else "mini_backend_syscalls")
                    suf = "" if tool == "strace" else "_perf"
                    r = self.r
                    r["%s_per_ringfull_%s%s" % (pre, direction, suf)] = round(total / ringfulls, 2)
                    r["%s_per_mib_%s%s" % (pre, direction, suf)] = round(total / mib, 1)
                    r["%s_per_ringfull_%s_xen_estimate%s" % (pre, direction, suf)] = \
                        round(on_xen / ringfulls, 2)
                    # One poll() per pass of the loop: a wakeup.
                    wpre = "ringfulls" if who == "proxy" else "mini_backend_ringfulls"
                    r["%s_per_wakeup_%s%s" % (wpre, direction, suf)] = \
                        round(ringfulls / max(1, c.get("poll", 0)), 3)
                    npre = "notifications" if who == "proxy" else "mini_backend_notifications"
                    r["%s_sent_per_mib_%s%s" % (npre, direction, suf)] = \
                        round(c.get("sendto", 0) / mib, 1)
                    r["%s_handled_per_mib_%s%s" % (npre, direction, suf)] = \
                        round(c.get("epoll_ctl", 0) / mib, 1)
            log("syscalls per ring-full (%s): proxy out %.2f in %.2f; mini-backend out %.2f in %.2f"
                % ((tool,) + tuple(self.r["%s_per_ringfull_%s%s" % (pre, d, "" if tool == "strace" else "_perf")]
                                   for pre in ("syscalls", "mini_backend_syscalls")
                                   for d in ("out", "in"))))
        self.r["syscall_counter"] = "strace -c -f (attached with -p to every thread)" + (
            "; cross-check: perf stat -e syscalls:sys_enter_* -p (keys ending _perf)"
            if "perf" in tools else "")

    # -- profile (--profile): where the proxy's own instructions go -------------------------
    def profile(self, h):
        """The proxy under valgrind --tool=callgrind (without its seccomp
        filter, which refuses valgrind's own system calls) for a transfer
        each way at 64 KiB writes; callgrind_annotate's summary of each."""
        outdir = os.path.join(self.build, "bench")
        for direction, nbytes in (("out", self.args.strace_mib_out << 20),
                                  ("in", self.args.strace_mib_in << 20)):
            cg = os.path.join(outdir, "callgrind.%s" % direction)
            d, n = self.new_channel(h, "prof-" + direction)
            sock = os.path.join(h.dir, "p%d.sock" % d)
            log_path = os.path.join(h.dir, "proxy-prof-%s.log" % direction)
            p = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + cg,
                                  "--collect-systime=nsec", self.proxy_bin, str(d), "bench",
                                  "--listen", sock, "-v", "--no-seccomp", "--overflow-data",
                                  "keep"], env=h.env,
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=open(log_path, "wb"))
            wait_dir(h.dir, lambda: os.path.exists(sock), 60, "valgrind'd proxy to listen", p)
            peer = self.client(h, "sink" if direction == "out" else "source", "--connect", sock,
                               nbytes, *([] if direction == "out" else [65536]))
            wait_dir(h.dir, lambda: "client connected" in open(log_path).read(), 60,
                     "valgrind'd proxy to accept", p)
            g = self.guest_bench(h, d, n, "--bench-" + direction,
                                 "%d:65536" % nbytes if direction == "out" else str(nbytes),
                                 "g%d.log" % d)
            read_line(peer if direction == "out" else g, 600, "transfer under callgrind")
            self.end_channel(h, d, p, peer)
            ann = subprocess.run(["callgrind_annotate", "--inclusive=no", cg],
                                 capture_output=True, text=True).stdout
            with open(cg + ".txt", "w") as f:
                f.write(ann)
            log("callgrind %s (%d MiB): %s" % (direction, nbytes >> 20, cg + ".txt"))
            print("\n## callgrind, %s, %d MiB at 64 KiB writes (%s)\n" % (direction, nbytes >> 20, cg))
            print("\n".join(ann.splitlines()[:40]))

    # -- 4. idle ---------------------------------------------------------------------------
    def idle_start(self, h):
        d, n = self.new_channel(h, "idle")
        sock = os.path.join(h.dir, "p%d.sock" % d)
        p = self.proxy(h, d, sock)
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client.connect(sock)
        self.wait_accepted(h, p)
        g = h.guest(d, n)
        h.wait_xs("/local/domain/0/backend/console/%d/%d/state" % (d, n), "4")
        h.wait_xs("/local/domain/%d/device/console/%d/state" % (d, n), "4")
        # A byte each way first, so that the quiet that follows comes after
        # real use; both clients then stay connected and say nothing.
        tty = g.connect()
        tty.settimeout(10)
        client.settimeout(10)
        tty.sendall(b"x")
        if client.recv(1) != b"x":
            raise BenchError("idle: the byte from the guest did not arrive")
        client.sendall(b"y")
        if tty.recv(1) != b"y":
            raise BenchError("idle: the byte to the guest did not arrive")
        self.idle = {"proxy": p, "guest": g, "client": client, "tty": tty, "d": d}
        # The exchange's last notifications may still be on their way: the
        # window starts once the proxy's counters stood still for 0.5 s.
        def switches():
            return {tid: (t["voluntary_ctxt_switches"], t["nonvoluntary_ctxt_switches"])
                    for tid, t in task_counters(p.proc.pid).items()}
        prev = switches()
        for _ in range(20):
            time.sleep(0.5)
            cur = switches()
            if cur == prev:
                break
            prev = cur
        self.idle["before"] = task_counters(p.proc.pid)
        self.idle["t0"] = time.monotonic()
        # The window ends on time, whatever the main thread is doing then.
        self.idle["thread"] = threading.Thread(target=self.idle_window, daemon=True)
        self.idle["thread"].start()
        log("idle: watching proxy %d for %gs" % (p.proc.pid, self.args.idle_seconds))

    def idle_window(self):
        time.sleep(max(0, self.idle["t0"] + self.args.idle_seconds - time.monotonic()))
        pid = self.idle["proxy"].proc.pid
        self.idle["after"] = task_counters(pid)
        self.idle["secs"] = time.monotonic() - self.idle["t0"]
        self.idle["mem"] = smaps_rollup(pid)

    def idle_finish(self, h):
        self.idle["thread"].join()
        p = self.idle["proxy"]
        after, secs, mem = self.idle["after"], self.idle["secs"], self.idle["mem"]
        before = self.idle["before"]
        vol = invol = slices = run_ns = ticks = 0
        for tid, a in after.items():
            b = before.get(tid, {k: 0 for k in a})
            vol += a["voluntary_ctxt_switches"] - b["voluntary_ctxt_switches"]
            invol += a["nonvoluntary_ctxt_switches"] - b["nonvoluntary_ctxt_switches"]
            slices += a["timeslices"] - b["timeslices"]
            run_ns += a["run_ns"] - b["run_ns"]
            ticks += a["cpu_ticks"] - b["cpu_ticks"]
        self.r["idle_seconds"] = round(secs, 1)
        self.r["idle_threads"] = len(after)
        self.r["idle_wakeups_60s"] = vol + invol
        self.r["idle_voluntary_ctxt_switches"] = vol
        self.r["idle_nonvoluntary_ctxt_switches"] = invol
        self.r["idle_timeslices"] = slices
        self.r["idle_cpu_us"] = round(run_ns / 1e3, 1)
        self.r["idle_cpu_ticks"] = ticks
        self.r["rss_kib_idle"], self.r["pss_kib_idle"] = mem["Rss"], mem["Pss"]
        self.r["idle_private_kib"] = mem.get("Private_Clean", 0) + mem.get("Private_Dirty", 0)
        log("idle: %d context switches over %.1fs in %d threads; RSS %d KiB, PSS %d KiB"
            % (vol + invol, secs, len(after), mem["Rss"], mem["Pss"]))
        self.idle["client"].close()
        self.idle["tty"].close()
        self.end_channel(h, self.idle["d"], p)

    # -- 5. many instances ----------------------------------------------------------------
    def many(self, n, build, at_once, tag, deadline):
        """n domains with one channel and one guest each on one host, then n
        proxies: all at once (time until all Connected) or one after another
        (each start timed).  Memory of each proxy once all are Connected."""
        h = self.host(tag, build=build)
        xsd = h.daemon_pid
        gsim = os.path.join(build, "sim", "guest-sim")
        glog = open(os.path.join(h.dir, "guests.log"), "ab")
        plog_ = open(os.path.join(h.dir, "proxies.log"), "ab")
        guests, proxies = [], []
        res = {}
        try:
            t0 = time.monotonic()

            # Each guest starts as soon as its domain is complete, so that it
            # probes (two transactions) while the tree is still small.
            def start_guest(d, c):
                guests.append(subprocess.Popen(
                    [gsim, "--socket", os.path.join(h.dir, "g%d.sock" % d), str(d), str(c)],
                    env=h.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=glog))

            # Setup (the guests' probes are two transactions each, on a growing
            # tree) gets 60% of the time left; the proxies the rest.
            setup_end = t0 + 0.6 * (deadline - t0)
            chans, clone_err = bulkhost.make_domains(h, n, tag, start_guest, log, setup_end)
            if clone_err:
                self.notes.append("%s: domains made with xensim (the bulk clone failed: %s)"
                                  % (tag, clone_err))
            if len(chans) < n:
                self.notes.append("%s: only %d of %d domains could be made within the time "
                                  "budget; the figures are for %d" % (tag, len(chans), n, len(chans)))
                log("%s: only %d domains within the budget" % (tag, len(chans)))
            with XS(h.env["XENSTORED_PATH"]) as xs:
                # Proxies of guests not Initialised by then simply wait in InitWait.
                _, ready, _ = self.wait_states(
                    xs, ["/local/domain/%d/device/console/%d/state" % dc for dc in chans], b"3",
                    max(10, setup_end - time.monotonic()), "guests Initialised",
                    soft=True, progress=tag)
                res["guests_initialised"] = ready
                if ready < len(chans):
                    self.notes.append("%s: %d of %d guests were Initialised when the proxies "
                                      "started (the time budget)" % (tag, ready, len(chans)))
            res["instances"] = len(chans)
            res["setup_s"] = time.monotonic() - t0
            log("%s: setup done in %.0fs" % (tag, res["setup_s"]))
            env = dict(h.env)
            states = ["/local/domain/0/backend/console/%d/%d/state" % dc for dc in chans]
            cpu0 = proc_run_ns(xsd)
            def spawn(dcs):
                t1 = time.monotonic()
                for d, c in dcs:
                    proxies.append(subprocess.Popen(
                        [self.proxy_bin, str(d), "agent", "--listen",
                         os.path.join(h.dir, "p%d.sock" % d)],
                        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=plog_))
                res["spawn_s"] = time.monotonic() - t1
                return t1

            with XS(h.env["XENSTORED_PATH"]) as xs:
                if at_once:
                    t1, res["connected"], res["timed_out"] = self.wait_states(
                        xs, states, b"4", max(10, deadline - time.monotonic()), "backends Connected",
                        launch=lambda: spawn(chans), soft=True, progress=tag)
                    res["connect_all_s"] = time.monotonic() - t1
                else:
                    starts = []
                    for dc, path in zip(chans, states):
                        t1, _, _ = self.wait_states(xs, [path], b"4", 30, "backend Connected",
                                                    launch=lambda: spawn([dc]))
                        starts.append(time.monotonic() - t1)
                    res["starts_s"] = starts
                    res["connected"] = len(starts)
                    res["timed_out"] = False
            res["xenstored_cpu_s"] = (proc_run_ns(xsd) - cpu0) / 1e9
            # Who is not Connected, and what the proxies complained of.
            with XS(h.env["XENSTORED_PATH"]) as xs:
                hist = {}
                def state(path):
                    try:
                        return xs.read(path).decode()
                    except FileNotFoundError:
                        return "-"

                for d, c in chans:
                    key = "backend %s / frontend %s" % (
                        state("/local/domain/0/backend/console/%d/%d/state" % (d, c)),
                        state("/local/domain/%d/device/console/%d/state" % (d, c)))
                    hist[key] = hist.get(key, 0) + 1
            res["states"] = hist
            plog_.flush()
            complaints = {}
            with open(os.path.join(h.dir, "proxies.log"), errors="replace") as f:
                for line in f:
                    if ": error: " in line or ": warning: " in line:
                        what = re.sub(r"domain \d+ \([^)]*\)|/\d+/", "N", line.split(": ", 2)[-1]).strip()
                        complaints[what] = complaints.get(what, 0) + 1
            res["complaints"] = complaints
            if len(hist) > 1 or complaints:
                self.notes.append("%s: states at the end: %s; the proxies logged: %s" % (
                    tag, ", ".join("%s: %d" % kv_ for kv_ in sorted(hist.items())),
                    "; ".join("%d × %s" % (v, k[:160]) for k, v in
                              sorted(complaints.items(), key=lambda x: -x[1])[:5]) or "nothing"))
            res["proxies_cpu_s"] = sum(proc_run_ns(p.pid) for p in proxies) / 1e9
            res["guests_cpu_s"] = sum(proc_run_ns(g.pid) for g in guests) / 1e9
            mems = [smaps_rollup(p.pid) for p in proxies if p.poll() is None]
            res["alive"] = len(mems)
            res["pss_kib_mean"] = statistics.mean(m["Pss"] for m in mems)
            res["pss_kib_max"] = max(m["Pss"] for m in mems)
            res["rss_kib_mean"] = statistics.mean(m["Rss"] for m in mems)
            res["pss_kib_total"] = sum(m["Pss"] for m in mems)
            res["threads"] = len(os.listdir("/proc/%d/task" % proxies[0].pid))
            # Where the time goes: one transaction on this tree, as each
            # proxy start makes three and each guest one more.
            with XS(h.env["XENSTORED_PATH"]) as xs:
                # Nodes: what one domain has, times n, and the few of dom0 and the roots.
                res["nodes"] = len(bulkhost.domain_nodes(xs, chans[-1][0])[0]) * n + 16
                k = 10
                ta = time.monotonic()
                for _ in range(k):
                    xs.tx_end(xs.tx_start(), abort=True)
                res["txn_ms"] = (time.monotonic() - ta) / k * 1e3
                ta = time.monotonic()
                for _ in range(k):
                    xs.read("/local/domain/0/name")
                res["read_ms"] = (time.monotonic() - ta) / k * 1e3
            log("%s: %d proxies, %d Connected in %.1fs; xenstored-sim CPU %.1fs, proxies %.1fs, "
                "guests %.1fs; a transaction %.1f ms; PSS mean %.0f KiB, RSS mean %.0f KiB"
                % (tag, len(proxies), res["connected"], res.get("connect_all_s", sum(res.get("starts_s", [0]))),
                   res["xenstored_cpu_s"], res["proxies_cpu_s"], res["guests_cpu_s"], res["txn_ms"],
                   res["pss_kib_mean"], res["rss_kib_mean"]))
        finally:
            t2 = time.monotonic()
            for p in proxies:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in proxies:
                stop(p, timeout=30)
            for g in guests:
                if g.poll() is None:
                    g.kill()
            for g in guests:
                g.wait()
            glog.close()
            plog_.close()
            self.drop_host(h)
            log("%s: torn down in %.0fs" % (tag, time.monotonic() - t2))
        return res

    @staticmethod
    def wait_states(xs, paths, want, timeout, what, launch=None, soft=False, progress=None):
        """Watch above paths, then call launch() (which starts something and
        returns its start time; default: now), then wait until every path
        reads want, re-reading only the paths the watch events name.
        Returns (start time, how many reached want, timed out).  Past the
        deadline: BenchError, or with soft the count so far."""
        pending = set(paths)
        common = os.path.commonpath(paths) if len(paths) > 1 else paths[0]
        xs.watch(common, "ws")
        try:
            xs.wait_watch(time.monotonic() + 10)   # the event every new watch gets
            xs.drain_watches()
            t0 = launch() if launch else time.monotonic()
            deadline, next_log = t0 + timeout, t0 + 15

            def look(path):
                try:
                    if xs.read(path) == want:
                        pending.discard(path)
                except FileNotFoundError:
                    pass

            for path in list(pending):
                look(path)
            while pending:
                try:
                    evs = [xs.wait_watch(deadline)] + xs.drain_watches()
                except TimeoutError:
                    if soft:
                        return t0, len(paths) - len(pending), True
                    raise BenchError("%s: %d of %d not within %gs"
                                     % (what, len(pending), len(paths), timeout)) from None
                for path, _ in evs:
                    if path in pending:
                        look(path)
                if progress and time.monotonic() > next_log:
                    log("%s: %d of %d %s after %.0fs" % (progress, len(paths) - len(pending),
                                                         len(paths), what, time.monotonic() - t0))
                    next_log += 15
            return t0, len(paths), False
        finally:
            xs.unwatch(common, "ws")

    # -- 6. start to Connected --------------------------------------------------------------
    def starts(self, h):
        times = []
        for i in range(self.args.starts):
            d, n = self.new_channel(h, "start%d" % i)
            g = h.guest(d, n)
            h.wait_xs("/local/domain/%d/device/console/%d/state" % (d, n), "3")
            path = "/local/domain/0/backend/console/%d/%d/state" % (d, n)
            started = {}

            def launch():
                t0 = time.monotonic()
                started["p"] = h.proxy(str(d), "bench", "--listen",
                                       os.path.join(h.dir, "s%d.sock" % d), check_ready=False)
                return t0

            with XS(h.env["XENSTORED_PATH"]) as xs:
                t0, _, _ = self.wait_states(xs, [path], b"4", 30, "backend Connected", launch=launch)
                times.append(time.monotonic() - t0)
            del g   # domain-destroy kills guest-sim (SIGTERM would wait 5 s for a backend)
            self.end_channel(h, d, started["p"])
        times.sort()
        self.r["start_to_connected_ms"] = round(statistics.median(times) * 1e3, 2)
        self.r["start_to_connected_p90_ms"] = round(percentile(times, 0.9) * 1e3, 2)
        self.r["start_to_connected_max_ms"] = round(times[-1] * 1e3, 2)
        self.r["start_to_connected_starts"] = len(times)
        with XS(h.env["XENSTORED_PATH"]) as xs:
            ta = time.monotonic()
            for _ in range(20):
                xs.tx_end(xs.tx_start(), abort=True)
            self.r["start_host_txn_ms"] = round((time.monotonic() - ta) / 20 * 1e3, 3)
        log("start to Connected: p50 %.2f ms, p90 %.2f ms over %d fresh starts"
            % (self.r["start_to_connected_ms"], self.r["start_to_connected_p90_ms"], len(times)))

    # -- output ------------------------------------------------------------------------------
    def plots(self):
        if not ensure_tool("gnuplot", "gnuplot-nox"):
            self.notes.append("gnuplot is missing (apt-get install gnuplot-nox): no plots.")
            log("gnuplot missing: no plots")
            return []
        made = []
        dat = os.path.join(self.tmp, "throughput.dat")
        with open(dat, "w") as f:
            f.write("# size proxy_out limit_out proxy_in limit_in\n")
            for size in SIZES:
                f.write("%d %s %s %s %s\n" % (size, *(
                    self.r["throughput_%s_%s_%d" % (k, d, size)]
                    for d in ("out", "in") for k in ("mbps", "limit_mbps"))))
        png = os.path.join(self.out, "throughput.png")
        body = """
set logscale xy
set xlabel 'write size (bytes)'
set ylabel 'MB/s'
set xtics ("1 B" 1, "64 B" 64, "1 KiB" 1024, "64 KiB" 65536)
set key left top
plot '%s' u 1:2 w lp lw 2 pt 7 t 'proxy, guest to dom0', \\
     '%s' u 1:3 w lp lw 2 pt 6 dt 2 t 'ring limit (mini-backend), guest to dom0', \\
     '%s' u 1:4 w lp lw 2 pt 5 t 'proxy, dom0 to guest', \\
     '%s' u 1:5 w lp lw 2 pt 4 dt 2 t 'ring limit (mini-backend), dom0 to guest'
""" % (dat, dat, dat, dat)
        if self.plot(png, "Throughput by write size (medians of %d runs)"
                     % self.r["throughput_repetitions"], body):
            made.append(png)
        if self.rtt:
            files = {}
            for name, v in self.rtt.items():
                path = os.path.join(self.tmp, "cdf-%s.dat" % name)
                with open(path, "w") as f:
                    n = len(v)
                    step = max(1, n // 2000)
                    for i in range(0, n, step):
                        f.write("%.3f %.6f\n" % (v[i] / 1e3, (i + 1) / n))
                    f.write("%.3f 1.0\n" % (v[-1] / 1e3))
                files[name] = path
            png = os.path.join(self.out, "latency-cdf.png")
            body = """
set logscale x
set xlabel 'round trip (microseconds)'
set ylabel 'fraction of round trips'
set key right bottom
set yrange [0:1]
plot '%s' u 1:2 w l lw 2 t 'through xenchan-proxy', '%s' u 1:2 w l lw 2 dt 2 t 'through mini-backend'
""" % (files["proxy"], files["baseline"])
            if self.plot(png, "Echo round trip guest -> dom0 -> guest (%d round trips each)"
                         % self.r["latency_round_trips"], body):
                made.append(png)
        return made

    def plot(self, png, title, body):
        """One PNG of the bench's size and style: the title, then body."""
        script = ("set terminal pngcairo size 900,560 font \",10\"\nset output '%s'\n"
                  "set title '%s'\nset grid\n%s" % (png, title, body))
        r = subprocess.run(["gnuplot"], input=script, text=True, capture_output=True)
        if r.returncode != 0:
            log("gnuplot failed: %s" % r.stderr.strip()[-500:])
            return False
        return True

    def table(self):
        r = self.r

        def g(key, fmt="%.2f", missing="n/a"):
            v = r.get(key)
            return missing if v is None else fmt % v

        def met(ok):
            return "n/a" if ok is None else ("met" if ok else "**not met**")

        def ok(key, cond):
            v = r.get(key)
            return None if v is None else cond(v)

        invalid = set(r.get("references_invalid", []))

        def verdict(cell, ok_):
            return "**reference invalid**" if cell in invalid else met(ok_)

        rows = [("Figure", "Proxy", "Reference (same run)", "Goal", "Goal")]
        for direction, arrow in (("out", "guest→dom0"), ("in", "dom0→guest")):
            rows.append(("1. Throughput %s, 64 KiB writes" % arrow,
                         g("throughput_mbps_" + direction) + " MB/s",
                         "ring limit " + g("throughput_limit_mbps_" + direction)
                         + " MB/s, ratio " + g("throughput_ratio_" + direction), "≥ 0.8 of limit",
                         verdict("throughput_%s_65536" % direction,
                                 ok("throughput_ratio_" + direction, lambda v: v >= 0.8))))
        for size in SIZES[:-1]:
            bad = [d for d in ("out", "in") if "throughput_%s_%d" % (d, size) in invalid]
            rows.append(("1. Throughput out / in, %s writes" % SIZE_NAMES[size],
                         "%s / %s MB/s" % (g("throughput_mbps_out_%d" % size),
                                           g("throughput_mbps_in_%d" % size)),
                         "limit %s / %s MB/s, ratio %s / %s" % (
                             g("throughput_limit_mbps_out_%d" % size),
                             g("throughput_limit_mbps_in_%d" % size),
                             g("throughput_ratio_out_%d" % size),
                             g("throughput_ratio_in_%d" % size)), "—",
                         "**reference invalid** (%s)" % ", ".join(bad) if bad else ""))
        rows.append(("2. Echo latency p50 / p99 / p99.9 / max (%s round trips)"
                     % g("latency_round_trips", "%d"),
                     "%s / %s / %s / %s µs" % tuple(g("latency_%s_us" % k, "%.0f")
                                                   for k in ("p50", "p99", "p999", "max")),
                     "mini-backend %s / %s / %s / %s µs; p99.9 ratio %s" % (
                         tuple(g("latency_baseline_%s_us" % k, "%.0f")
                               for k in ("p50", "p99", "p999", "max"))
                         + (g("latency_p999_ratio"),)),
                     "p99.9 ≤ 2 × reference",
                     verdict("latency", ok("latency_p999_ratio", lambda v: v <= 2))))
        for direction, ring in (("out", "2048 B"), ("in", "1024 B")):
            rows.append(("3. Syscalls per ring-full %s (%s), strace -c -f" % (direction, ring),
                         "%s (%s/MiB; on Xen ≈ %s); %s ring-fulls a wakeup" % (
                             g("syscalls_per_ringfull_" + direction),
                             g("syscalls_per_mib_" + direction, "%.0f"),
                             g("syscalls_per_ringfull_%s_xen_estimate" % direction),
                             g("ringfulls_per_wakeup_" + direction)),
                         "mini-backend %s (%s a wakeup); perf tracepoints: proxy %s (%s), "
                         "mini-backend %s (%s)" % tuple(
                             g(k % direction) for k in (
                                 "mini_backend_syscalls_per_ringfull_%s",
                                 "mini_backend_ringfulls_per_wakeup_%s",
                                 "syscalls_per_ringfull_%s_perf", "ringfulls_per_wakeup_%s_perf",
                                 "mini_backend_syscalls_per_ringfull_%s_perf",
                                 "mini_backend_ringfulls_per_wakeup_%s_perf")),
                         "≤ floor (reference + 1)",
                         verdict("syscalls_" + direction, None if r.get(
                             "syscalls_per_ringfull_" + direction) is None else
                             r["syscalls_per_ringfull_" + direction] <= SYSCALL_FLOOR_SLACK * (
                                 r["mini_backend_syscalls_per_ringfull_" + direction] + 1))))
            rows.append(("3. Notifications per MiB %s: sent to guest / handled" % direction,
                         "%s / %s" % (g("notifications_sent_per_mib_" + direction, "%.0f"),
                                      g("notifications_handled_per_mib_" + direction, "%.0f")),
                         "mini-backend %s / %s; perf: proxy %s / %s" % (
                             g("mini_backend_notifications_sent_per_mib_" + direction, "%.0f"),
                             g("mini_backend_notifications_handled_per_mib_" + direction, "%.0f"),
                             g("notifications_sent_per_mib_%s_perf" % direction, "%.0f"),
                             g("notifications_handled_per_mib_%s_perf" % direction, "%.0f")),
                         "—", ""))
        rows.append(("4. Idle wakeups, connected quiet proxy, %s s" % g("idle_seconds", "%.0f"),
                     "%s (CPU %s µs, %s threads)" % (g("idle_wakeups_60s", "%d"),
                                                     g("idle_cpu_us", "%.0f"),
                                                     g("idle_threads", "%d")),
                     "", "0", met(ok("idle_wakeups_60s", lambda v: v == 0))))
        rows.append(("5. Memory, one idle instance (RSS / PSS)",
                     "%s / %s KiB" % (g("rss_kib_idle", "%d"), g("pss_kib_idle", "%d")), "", "—", ""))
        rows.append(("5. Memory each at 100 (RSS / PSS), total PSS",
                     "%s / %s KiB, %s MiB" % (g("rss_kib_each_at_100", "%.0f"),
                                              g("pss_kib_each_at_100", "%.0f"),
                                              g("pss_mib_total_at_100", "%.1f")), "", "—", ""))
        rows.append(("5. Memory each at %s (RSS / PSS), total PSS" % g("instances_big", "%d"),
                     "%s / %s KiB, %s MiB" % (g("rss_kib_each_at_1000", "%.0f"),
                                              g("pss_kib_each_at_1000", "%.0f"),
                                              g("pss_mib_total_at_1000", "%.1f")), "",
                     "≤ 256 KiB PSS", met(ok("pss_kib_each_at_1000", lambda v: v <= 256))))
        rows.append(("5. All %s Connected (all started at once)" % g("instances_big", "%d"),
                     "%s s%s" % (g("connect_all_1000_s", "%.1f"),
                                 "" if not r.get("connect_all_1000_timed_out")
                                 else " (deadline hit: %s Connected)" % g("connected_at_1000", "%d")),
                     "xenstored-sim CPU %s s; 100 sequential: %s s" % (
                         g("xenstored_cpu_s_at_1000", "%.1f"), g("connect_all_100_s", "%.1f")),
                     "≤ 10 s", met(ok("connect_all_1000_s", lambda v: v <= 10 and
                                      not r.get("connect_all_1000_timed_out")))))
        rows.append(("6. Start to Connected, p50 of %s fresh starts" % g("start_to_connected_starts", "%d"),
                     g("start_to_connected_ms") + " ms",
                     "p90 %s ms; at 100 instances p50 %s ms" % (
                         g("start_to_connected_p90_ms"), g("start_to_connected_ms_at_100")), "—", ""))
        widths = [max(len(row[i]) for row in rows) for i in range(5)]
        lines = []
        for k, row in enumerate(rows):
            lines.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(row)) + " |")
            if k == 0:
                lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)

    def tp_table(self):
        lines = ["| Write size | out: proxy | out: ring limit | out: ratio | in: proxy | in: ring limit | in: ratio |",
                 "|---|---|---|---|---|---|---|"]
        for size in SIZES:
            cells = [SIZE_NAMES[size]]
            for d in ("out", "in"):
                p = self.tp[(d, size)]["proxy"]
                lim = self.tp[(d, size)]["limit"]
                cells += ["%.2f (%s)" % (statistics.median(p), ", ".join("%.2f" % x for x in p)),
                          "%.2f (%s)" % (statistics.median(lim), ", ".join("%.2f" % x for x in lim)),
                          "%.2f" % self.r["throughput_ratio_%s_%d" % (d, size)]]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def strace_table(self, tool):
        """Per ring-full, by system call, for one counter; calls under 0.01
        per ring-full (setup and teardown) summed in one row."""
        sizes = {"out": (RING_OUT, self.args.strace_mib_out), "in": (RING_IN, self.args.strace_mib_in)}
        cols = [(who, d) for who in ("proxy", "mini") for d in ("out", "in")]
        per = {}
        for who, d in cols:
            ring, mib = sizes[d]
            for name, calls in self.strace.get((tool, who, d), {}).items():
                per.setdefault(name, {})[(who, d)] = calls / ((mib << 20) / ring)
        main = sorted((n for n, v in per.items() if max(v.values()) >= 0.01),
                      key=lambda n: -max(per[n].values()))
        lines = ["| syscall | " + " | ".join("%s %s" % ("proxy" if w == "proxy" else "mini-backend", d)
                                            for w, d in cols) + " |",
                 "|---|" + "---|" * len(cols)]
        for name in main:
            lines.append("| %s | %s |" % (name, " | ".join(
                "%.2f" % per[name][c] if c in per[name] else "" for c in cols)))
        rest = [n for n in per if n not in main]
        if rest:
            lines.append("| other (%d kinds, setup) | %s |" % (len(rest), " | ".join(
                "%.3f" % sum(per[n].get(c, 0) for n in rest) for c in cols)))
        lines.append("| **total** | %s |" % " | ".join(
            "**%.2f**" % sum(v.get(c, 0) for v in per.values()) for c in cols))
        return "\n".join(lines)

    def check_references(self):
        """The cells whose reference the proxy beats by more than
        REFERENCE_SLACK: such a reference is no bound, so no goal verdict is
        given against it (results.json: references_invalid)."""
        r, bad = self.r, []

        def beaten(proxy_key, ref_key, higher_is_better):
            p, ref = r.get(proxy_key), r.get(ref_key)
            if p is None or ref is None or ref <= 0 or p <= 0:
                return False
            return p > REFERENCE_SLACK * ref if higher_is_better else ref > REFERENCE_SLACK * p

        for direction in ("out", "in"):
            for size in SIZES:
                tag = "%s_%d" % (direction, size)
                if beaten("throughput_mbps_" + tag, "throughput_limit_mbps_" + tag, True):
                    bad.append("throughput_" + tag)
            if beaten("syscalls_per_ringfull_" + direction,
                      "mini_backend_syscalls_per_ringfull_" + direction, False):
                bad.append("syscalls_" + direction)
        if any(beaten("latency_%s_us" % k, "latency_baseline_%s_us" % k, False)
               for k in ("p50", "p999")):
            bad.append("latency")
        r["references_invalid"] = bad
        for cell in bad:
            log("reference invalid: %s (the proxy beats it by more than %d%%)"
                % (cell, round(100 * (REFERENCE_SLACK - 1))))
        if bad:
            self.notes.append("Reference invalid (the proxy beat it by more than %d%%, so no goal "
                              "verdict against it): %s." % (round(100 * (REFERENCE_SLACK - 1)),
                                                            ", ".join(bad)))

    def write_outputs(self, plots, elapsed):
        self.check_references()
        m = machine_info = self.machine
        m.update(self.sampler.finish())
        self.r["bench_seconds"] = round(elapsed, 1)
        for k, v in machine_info.items():
            self.r["machine_" + k] = v if not isinstance(v, list) else " ".join(v)
        with open(os.path.join(self.out, "results.json"), "w") as f:
            json.dump(self.r, f, indent=1, sort_keys=True)
            f.write("\n")
        table = self.table()
        print(table)
        commit = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        # Changes to the sources, not to what this run itself writes.
        dirty = subprocess.run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no",
                                "--", ".", ":!bench/RESULTS.md", ":!bench/results.json",
                                ":!bench/*.png"],
                               capture_output=True, text=True).stdout.strip()
        md = ["# xenchan-proxy benchmarks: latest run", "",
              "`make bench` (bench/run.py) on the simulated Xen host of tests/sim, %s, commit %s%s; "
              "the whole run took %.0f s." % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                               commit, " (with uncommitted changes)" if dirty else "",
                                               elapsed), "",
              "Machine: %d CPUs (`nproc`), %s, kernel %s, Debian %s, %d MiB RAM%s.  "
              "Its load while the bench ran (this bench's processes included; the 1,000 proxies "
              "starting at once alone add hundreds): 1-minute load average %s at the start, %s on "
              "average and %s at most; the CPUs were %s%% busy over the run.  Other work on the machine moves the timings, the proxy's and its "
              "reference's alike; the counts (syscalls, wakeups, memory) do not depend on it." % (
                  m["nproc"], m["cpu_model"], m["kernel"], m["debian"], m["mem_mib"],
                  ", virtualisation: " + m["virt"] if m["virt"] else "",
                  m["loadavg_at_start"][0], m["loadavg_mean"], m["loadavg_max"],
                  m["cpu_busy_pct"]), "",
              table, "",
              "## Throughput detail (MB/s; median, then each run)", "",
              "out = guest→dom0, in = dom0→guest.  The guest is guest-sim --bench-out/--bench-in "
              "(bytes from/to memory; out: one notification per write, as hvc_xen's "
              "domU_write_console).  The proxy's dom0 side is benchcli on its --listen socket "
              "(sink reads 1 MiB at a time; source writes at the write size).  The ring limit is "
              "tests/sim/mini-backend --bench-out/--bench-in, which drains/fills the ring in "
              "memory; its in-direction fill ignores the write size (there is no writer).  The ratio is "
              "the median of the per-repetition ratios (each repetition ran the two back to back).", "",
              self.tp_table() if self.tp else "(not measured)", "",
              "## Syscalls per ring-full, by syscall", "",
              "The test event-channel library turns xenevtchn_pending into epoll_wait + "
              "recvmmsg, unmask into epoll_ctl and notify into sendto; on Xen they are read, "
              "write and ioctl on /dev/xen/evtchn (hence the \"on Xen\" estimate: total minus "
              "recvmmsg).  The floor per wakeup is poll, the pending read, the unmask, the "
              "notify and the client's writev/readv: 5 on Xen, 6 here (mini-backend, with no "
              "client: 4 and 5); ring-fulls per wakeup (per poll): proxy %s out, %s in; "
              "mini-backend %s, %s.  Transfers: %d MiB out, %d MiB in, 64 KiB writes."
              % tuple([self.r.get(k, "n/a") for k in (
                  "ringfulls_per_wakeup_out", "ringfulls_per_wakeup_in",
                  "mini_backend_ringfulls_per_wakeup_out", "mini_backend_ringfulls_per_wakeup_in")]
                      + [self.args.strace_mib_out, self.args.strace_mib_in]), "",
              ]
        for tool, what in (("strace", "strace -c -f, attached (-p) to every thread of the running "
                                      "process once its client is connected and before the guest comes"),
                           ("perf", "perf stat -e 'syscalls:sys_enter_*' -p, the same way (no ptrace "
                                    "stops: the process runs at its own pace, so the batching differs)")):
            if any(k[0] == tool for k in self.strace):
                md += ["### %s" % what, "", self.strace_table(tool), ""]
        if plots:
            md += ["## Plots", ""] + ["![%s](%s)" % (os.path.basename(p), os.path.basename(p))
                                      for p in plots] + [""]
        if self.notes:
            md += ["## Notes from this run", ""] + ["- " + n for n in self.notes] + [""]
        md += ["Raw numbers: `bench/results.json`.", ""]
        with open(os.path.join(self.out, "RESULTS.md"), "w") as f:
            f.write("\n".join(md))
        log("wrote %s/results.json and RESULTS.md%s" % (self.out, ", plots" if plots else ""))

    # -- the run ----------------------------------------------------------------------------
    def run(self):
        a = self.args
        self.machine = machine()
        log("machine: %(nproc)d CPUs, %(cpu_model)s, kernel %(kernel)s" % self.machine)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        need = 4 * a.instances + 256
        if soft < need:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
        if resource.getrlimit(resource.RLIMIT_NOFILE)[0] < need:
            self.notes.append("RLIMIT_NOFILE %d is below the %d the big host needs"
                              % (resource.getrlimit(resource.RLIMIT_NOFILE)[0], need))
        if not os.access(self.proxy_bin, os.X_OK):
            raise BenchError("%s is missing: run make" % self.proxy_bin)
        r = subprocess.run([os.path.join(self.sim, "guest-sim"), "--help"], capture_output=True,
                           text=True)
        if "--bench-out" not in r.stdout + r.stderr:
            raise BenchError("guest-sim has no --bench-out (tests/sim/guest-sim.c): run make")
        self.cli, big_build = build_helpers(self.build)
        have_strace = ensure_tool("strace", "strace")
        have_perf = shutil.which("perf") is not None and subprocess.run(
            ["perf", "stat", "-e", "syscalls:sys_enter_close", "true"], capture_output=True).returncode == 0
        started = time.monotonic()
        self.deadline = started + a.budget
        self.sampler = LoadSampler()
        self.sampler.start()

        # Timing-sensitive figures first, on a quiet machine; then the big
        # host, which may use what is left of the budget, with the idle
        # proxy's 60 s running beside it (another xenstored and other event
        # channels: nothing reaches the idle proxy's host).
        h = self.host("t")
        if "throughput" in a.only:
            self.throughput(h)
        if "latency" in a.only:
            self.latency(h)
        if "syscalls" in a.only:
            tools = (["strace"] if have_strace else []) + (["perf"] if have_perf else [])
            if not have_strace:
                self.notes.append("strace is missing and could not be installed: no strace counts")
            if tools:
                self.syscalls(h, tools)
        if a.profile:
            self.profile(h)
        if "starts" in a.only:
            self.starts(h)
        if "memory" in a.only:
            self.hundred()
        if "idle" in a.only:
            self.idle_start(h)
        if "memory" in a.only:
            self.big(big_build)
        if "idle" in a.only:
            self.idle_finish(h)
        self.drop_host(h)
        plots = self.plots() if "throughput" in a.only and "latency" in a.only else []
        self.write_outputs(plots, time.monotonic() - started)

    def hundred(self):
        res = self.many(100, self.build, False, "m100", time.monotonic() + 120)
        s = sorted(res["starts_s"])
        self.r["connect_all_100_s"] = round(sum(s), 2)
        self.r["start_to_connected_ms_at_100"] = round(statistics.median(s) * 1e3, 2)
        self.r["pss_kib_each_at_100"] = round(res["pss_kib_mean"], 1)
        self.r["rss_kib_each_at_100"] = round(res["rss_kib_mean"], 1)
        self.r["pss_mib_total_at_100"] = round(res["pss_kib_total"] / 1024, 1)
        self.r["xenstored_txn_ms_at_100"] = round(res["txn_ms"], 2)

    def big(self, big_build):
        a = self.args
        n = a.instances
        # What follows the big host: the idle figure (ready by then), its
        # teardown, the plots and the files.
        deadline = self.deadline - 30
        res = self.many(n, big_build, True, "m%d" % n, deadline)
        r = self.r
        n = res["instances"]
        r["instances_big"] = n
        r["connect_all_1000_s"] = round(res["connect_all_s"], 2)
        r["connect_all_1000_timed_out"] = res["timed_out"]
        r["connected_at_1000"] = res["connected"]
        r["pss_kib_each_at_1000"] = round(res["pss_kib_mean"], 1)
        r["pss_kib_max_at_1000"] = res["pss_kib_max"]
        r["rss_kib_each_at_1000"] = round(res["rss_kib_mean"], 1)
        r["pss_mib_total_at_1000"] = round(res["pss_kib_total"] / 1024, 1)
        r["setup_s_at_1000"] = round(res["setup_s"], 1)
        r["spawn_s_at_1000"] = round(res["spawn_s"], 2)
        r["xenstored_cpu_s_at_1000"] = round(res["xenstored_cpu_s"], 2)
        r["proxies_cpu_s_at_1000"] = round(res["proxies_cpu_s"], 2)
        r["guests_cpu_s_at_1000"] = round(res["guests_cpu_s"], 2)
        r["xenstored_txn_ms_at_1000"] = round(res["txn_ms"], 2)
        r["xenstored_read_ms_at_1000"] = round(res["read_ms"], 3)
        r["xenstored_nodes_at_1000"] = res["nodes"]
        r["proxy_threads"] = res["threads"]
        if n != 1000:
            self.notes.append("--instances %d: the figures named \"at 1000\" are at %d" % (n, n))
        busy = res["xenstored_cpu_s"] / res["connect_all_s"] if res["connect_all_s"] else 0
        cpu = res["xenstored_cpu_s"] + res["proxies_cpu_s"] + res["guests_cpu_s"]
        self.notes.append(
            "Big host: %d proxies started at once took %.1f s to %s (%d Connected); over that "
            "time xenstored-sim used %.1f s of CPU (%.0f%% of one CPU), the proxies %.1f s in "
            "all (%.1f ms each, most of it exec, the dynamic loader and the test libraries' "
            "requests to simhvd) and the guests %.1f s: %.1f s of CPU on %d CPUs.  A "
            "transaction costs %.2f ms on this tree of about %d nodes (%.2f ms at 100 "
            "domains): xenstored-sim copies only the nodes a transaction touches."
            % (n, res["connect_all_s"], "reach the deadline" if res["timed_out"] else "all be Connected",
               res["connected"], res["xenstored_cpu_s"], 100 * busy, res["proxies_cpu_s"],
               1e3 * res["proxies_cpu_s"] / n, res["guests_cpu_s"], cpu, os.cpu_count() or 1,
               res["txn_ms"], res["nodes"], r.get("xenstored_txn_ms_at_100", float("nan"))))

    def cleanup(self):
        for h in list(self.hosts):
            self.drop_host(h)
        if not self.args.keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            log("kept %s" % self.tmp)


def main():
    # `timeout` and the like: stop as after ^C, tearing the hosts down.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("XENCHAN_BUILD", os.path.join(REPO, "build")),
                    help="build directory (default: build/)")
    ap.add_argument("--proxy", help="the proxy binary to measure (default: BUILD/xenchan-proxy)")
    ap.add_argument("--reps", type=int, default=9, help="throughput repetitions (default 9)")
    ap.add_argument("--tp-scale", type=float, default=1.0, help="scale the bytes per throughput run")
    ap.add_argument("--round-trips", type=int, default=10000, help="echo round trips (default 10000)")
    ap.add_argument("--strace-mib-out", type=int, default=4)
    ap.add_argument("--strace-mib-in", type=int, default=2)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--instances", type=int, default=1000, help="proxies on the big host (default 1000)")
    ap.add_argument("--budget", type=float, default=570,
                    help="seconds for the whole run (default 570); the big host's wait for "
                    "all Connected ends when the budget does")
    ap.add_argument("--starts", type=int, default=100, help="fresh starts timed (default 100)")
    ap.add_argument("--only", default="throughput,latency,syscalls,idle,memory,starts",
                    help="comma-separated subset of the figures")
    ap.add_argument("--quick", action="store_true",
                    help="a smoke run: 1 repetition, small transfers, 200 instances, 10 s idle")
    ap.add_argument("--profile", action="store_true",
                    help="also run the proxy under callgrind for a transfer each way "
                    "(use with --only syscalls, say)")
    ap.add_argument("--keep", action="store_true", help="keep the hosts' directories (logs)")
    defaults = vars(ap.parse_args([]))
    args = ap.parse_args()
    args.full = all(getattr(args, k) == v for k, v in defaults.items() if k not in ("keep", "build"))
    args.only = set(args.only.split(","))
    if args.quick:
        args.reps, args.tp_scale, args.round_trips = 1, 0.25, 10000
        args.idle_seconds, args.instances, args.starts, args.budget = 10, 200, 30, 200
    b = Bench(args)
    try:
        b.run()
    except BenchError as e:
        log("bench failed: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        b.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
