#!/usr/bin/python3
"""`smtpblast load` benchmarks (issue 17).

Goal 4, rate accuracy: `load --rate R/s` for R from 10/s to 50,000/s into the built-in sink
(`smtpblast sink`, CHUNKING), 10 connections, a fresh sink per run: the achieved rate vs the
asked one, and the latency percentiles, from load's own JSON summary.

Goal 1 (load's part): CPU per message of `load --max --messages 100000 --connections 10` vs
`bench/floor_client ... --no-wait` with the same ~2 KB message (the file is given to load as
--template; --per-connection 100000 by default, since the floor never reconnects), each into a fresh built-in sink, in the same run; user+sys of the sender alone
(os.wait4 on /usr/bin/time, tests/support/procs.run_timed); medians of --repeats.

Run: /usr/bin/python3 bench/bench_load.py [--build build] [--repeats 3] [--duration 5]
     [--compare OTHER_SMTPBLAST]...
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))

from support import procs, sinks  # noqa: E402

RATES = [10, 100, 1000, 10000, 50000]


def log(msg=""):
    print(msg, flush=True)


def message_file(path: Path, size: int = 2048) -> Path:
    head = ("From: <load@example.test>\r\nTo: <rcpt@example.test>\r\n"
            "Subject: smtpblast load benchmark\r\nMessage-ID: <bench@example.test>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
    line = "the quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstu\r\n"
    body = ""
    while len(head) + len(body) + len(line) <= size:
        body += line
    path.write_bytes((head + body).encode())
    return path


def load_summary(out: str) -> dict:
    for line in reversed(out.splitlines()):
        if line.startswith("{") and '"summary"' in line:
            return json.loads(line)
    return {}


def schedstat(pid):
    """(run s, run-queue wait s) summed over the process's threads now."""
    run = wait = 0.0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    a = f.read().split()
                run += int(a[0]) / 1e9
                wait += int(a[1]) / 1e9
            except (OSError, IndexError, ValueError):
                pass
    except OSError:
        pass
    return run, wait


class SchedSampler:
    """Samples every 20 ms the CPU time and the time spent waiting for a CPU (schedstat) of
    the sink and of the `load` process aimed at it: when the machine, not the sender, bounds
    a run, the waiting shows it."""

    def __init__(self, sink_pid, hostport):
        self.sink_pid, self.hostport = sink_pid, hostport
        self.last = {"load": (0.0, 0.0), "sink": (0.0, 0.0)}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _find_load(self):
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open(f"/proc/{d}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if len(argv) > 2 and argv[1] == b"load" and self.hostport.encode() in argv:
                return int(d)
        return None

    def _run(self):
        pid = None
        while not self.done.is_set():
            pid = pid or self._find_load()
            if pid:
                r = schedstat(pid)
                if r[0] >= self.last["load"][0]:
                    self.last["load"] = r
            self.last["sink"] = schedstat(self.sink_pid)
            time.sleep(0.02)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def rate_accuracy(binary, duration, workdir, rates=RATES, workers=None):
    rows = []
    for rate in rates:
        with sinks.BlastSink(binary=binary, record=False) as sink:
            cmd = [binary, "load", "--relay", sink.hostport, "--tls", "none", "--connections",
                   "10", "--rate", f"{rate}/s", "--duration", f"{duration}s", "--json"]
            if workers:
                cmd += ["--workers", str(workers)]
            loadavg = os.getloadavg()[0]
            with SchedSampler(sink.pid, sink.hostport) as ss:
                p, rc, wall, usage = procs.run_timed(cmd, timeout=duration * 4 + 60,
                                                     workdir=workdir)
        s = load_summary(p.stdout)
        lat = s.get("latency_ms", {})
        row = {"rate": rate, "rc": rc, "achieved": s.get("achieved_rate", float("nan")),
               "sent": s.get("messages", {}).get("sent"), "p50": lat.get("p50"),
               "p99": lat.get("p99"), "max": lat.get("max"), "rate_met": s.get("rate_met"),
               "cpu_s": usage["user"] + usage["sys"], "errors": s.get("errors_total")}
        row["error_pct"] = (row["achieved"] - rate) / rate * 100.0
        log(f"rate {rate:>6}/s: achieved {row['achieved']:.2f}/s ({row['error_pct']:+.3f}%), "
            f"sent {row['sent']}, p50 {row['p50']} ms, p99 {row['p99']} ms, max {row['max']} ms, "
            f"rc {rc}, cpu {row['cpu_s']:.2f} s, load average {loadavg:.1f}; ran/waited for "
            f"a CPU (s): sender {ss.last['load'][0]:.2f}/{ss.last['load'][1]:.2f}, sink "
            f"{ss.last['sink'][0]:.2f}/{ss.last['sink'][1]:.2f}")
        rows.append(row)
    return rows


def cpu_vs_floor(binary, floor, msg, count, repeats, workdir, per_connection, compare=()):
    # `compare`: other smtpblast builds (e.g. before a change), run in the same rounds.
    senders = {"load --max": binary}
    senders.update({f"load --max ({b})": b for b in compare})
    runs = {name: [] for name in senders}
    runs["floor --no-wait"] = []
    for r in range(repeats):
        for name in runs:
            with sinks.BlastSink(binary=binary, record=False) as sink:
                host, port = sink.hostport.rsplit(":", 1)
                if name in senders:
                    cmd = [senders[name], "load", "--relay", sink.hostport, "--tls", "none",
                           "--connections", "10", "--max", "--messages", str(count),
                           "--per-connection", str(per_connection), "--template", str(msg),
                           "--json"]
                else:
                    cmd = [floor, host, port, "10", str(count), str(msg), "--no-wait"]
                p, rc, wall, usage = procs.run_timed(cmd, timeout=600, workdir=workdir)
            cpu = usage["user"] + usage["sys"]
            us = cpu / count * 1e6
            runs[name].append({"rc": rc, "wall": wall, "cpu": cpu, "us_per_msg": us,
                               "sink_messages": (sink.counters or {}).get("messages")})
            log(f"repeat {r + 1} {name:16}: rc {rc}, wall {wall:.2f} s, "
                f"user+sys {cpu:.3f} s, {us:.2f} µs/msg, sink counted "
                f"{(sink.counters or {}).get('messages')}")
    med = {k: statistics.median(x["us_per_msg"] for x in v) for k, v in runs.items()}
    for name in senders:
        log(f"medians: {name} {med[name]:.2f} µs/msg, floor --no-wait "
            f"{med['floor --no-wait']:.2f} µs/msg, ratio {med[name] / med['floor --no-wait']:.2f}x")
    return runs, med


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--count", type=int, default=100000)
    # floor_client never reconnects; load's default (100, as send's) reconnects 1,000 times.
    ap.add_argument("--per-connection", type=int, default=100000)
    ap.add_argument("--skip-rates", action="store_true")
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--rate-repeats", type=int, default=1)
    ap.add_argument("--rates", default=",".join(map(str, RATES)), help="e.g. 10,50000")
    ap.add_argument("--workers", type=int, default=None, help="load --workers (default: load's)")
    ap.add_argument("--compare", action="append", default=[], metavar="BINARY",
                    help="another smtpblast measured in the same rounds (goal 1; repeatable)")
    args = ap.parse_args()
    binary = str(Path(args.build) / "bin" / "smtpblast")
    floor = str(Path(args.build) / "bin" / "floor_client")
    cpu_model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                      if l.startswith("model name")), platform.processor())
    log(f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, nproc {os.cpu_count()}, {cpu_model}, "
        f"load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="sb-bench-load-") as wd:
        if not args.skip_rates:
            rates = [int(r) for r in args.rates.split(",")]
            for _ in range(args.rate_repeats):
                rate_accuracy(binary, args.duration, wd, rates, args.workers)
        if not args.skip_cpu:
            msg = message_file(Path(wd) / "m.eml")
            cpu_vs_floor(binary, floor, msg, args.count, args.repeats, wd, args.per_connection,
                         args.compare)


if __name__ == "__main__":
    main()
