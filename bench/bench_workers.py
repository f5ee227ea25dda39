#!/usr/bin/python3
"""`--workers 1` vs `--workers 2` for `load` and `send` (issue 17 goal 5).

Each run sends N messages of ~2 KB (bench/make_list.py) into a fresh `smtpblast sink` on
127.0.0.1, 10 connections: `load --max --messages N --template T` and `send` on a task
imported beforehand (the import is not counted). For each run: msgs/s (N / the sender's wall
time, start-up included), the sender's CPU (user+sys, wait4) per message, and the CPU of
each of its threads, read from /proc/PID/task/TID/schedstat (run time in ns) every 10 ms
until it exits; in `send` the main thread is the coordinator, the journal thread (claims,
commits, the ledger), so its share is reported on its own, less its set-up (its CPU when
another thread first did 1 ms of work). Medians of --repeats.

Run: /usr/bin/python3 bench/bench_workers.py [--build build] [--repeats 3] [-n 100000]
"""

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import sinks  # noqa: E402
import make_list  # noqa: E402


def log(msg=""):
    print(msg, flush=True)


def thread_times(pid):
    """{tid: cpu seconds} of the process's threads now."""
    out = {}
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    out[int(tid)] = int(f.read().split()[0]) / 1e9
            except OSError:
                pass
    except OSError:
        pass
    return out


def run_sampled(cmd):
    """Runs cmd; returns (rc, wall, {tid: last cpu seen}, pid, output)."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = {}
    done = threading.Event()

    def sample():
        while not done.is_set():
            now = thread_times(p.pid)
            # The main thread's CPU when another thread first did work (1 ms): its set-up
            # (start-up, template, task) before the run proper.
            if "setup" not in seen and any(s > 0.001 for t, s in now.items() if t != p.pid):
                seen["setup"] = now.get(p.pid, 0.0)
            for tid, s in now.items():
                seen[tid] = max(seen.get(tid, 0.0), s)
            time.sleep(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = p.communicate()
    done.set()
    th.join()
    wall = time.monotonic() - t0
    return p.returncode, wall, seen, p.pid, out + err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("-n", "--count", type=int, default=100000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--verbs", default="load,send")
    args = ap.parse_args()
    binary = str(Path(args.build) / "bin" / "smtpblast")
    log(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, nproc "
        f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}, {args.count} messages")
    workers = [int(w) for w in args.workers.split(",")]
    verbs = args.verbs.split(",")
    rows = {(v, w): [] for v in verbs for w in workers}
    with tempfile.TemporaryDirectory(prefix="sb-bench-workers-") as wd:
        files = make_list.generate(os.path.join(wd, "in"), args.count, 2048)
        for r in range(args.repeats):
            for v in verbs:
                for w in workers:
                    with sinks.BlastSink(binary=binary, record=False) as sink:
                        if v == "load":
                            cmd = [binary, "load", "--relay", sink.hostport, "--tls", "none",
                                   "--connections", "10", "--max", "--messages",
                                   str(args.count), "--template", files["rendered"],
                                   "--per-connection", "1000", "--workers", str(w), "--json"]
                        else:
                            task = os.path.join(wd, f"t{r}-{w}.db")
                            subprocess.run([binary, "import", "--task", task, "--recipients",
                                            files["recipients"]], check=True,
                                           capture_output=True)
                            cmd = [binary, "send", "--tls", "none", "--task", task,
                                   "--template", files["template"], "--relay", sink.hostport,
                                   "--connections", "10", "--per-connection", "1000",
                                   "--from", "sender@example.test", "--workers", str(w)]
                        load_avg = os.getloadavg()[0]
                        before = os.times()
                        rc, wall, seen, pid, out = run_sampled(cmd)
                        after = os.times()
                    cpu = (after.children_user - before.children_user +
                           after.children_system - before.children_system)
                    setup = seen.pop("setup", 0.0)
                    main_cpu = seen.get(pid, 0.0) - setup
                    others = sorted((s for t, s in seen.items() if t != pid), reverse=True)
                    row = {"rc": rc, "wall": wall, "rate": args.count / wall,
                           "us": cpu / args.count * 1e6,
                           "main_us": main_cpu / args.count * 1e6,
                           "threads_us": [s / args.count * 1e6 for s in others[:w]],
                           "sink": (sink.counters or {}).get("messages")}
                    rows[(v, w)].append(row)
                    log(f"repeat {r + 1} {v} --workers {w}: rc {rc}, wall {wall:.2f} s, "
                        f"{row['rate']:.0f} msgs/s, {row['us']:.2f} µs/msg, main thread after set-up "
                        f"{row['main_us']:.2f} µs/msg (set-up {setup * 1000:.0f} ms), busiest other threads "
                        f"{', '.join(f'{x:.2f}' for x in row['threads_us'])} µs/msg, sink "
                        f"counted {row['sink']}, load average {load_avg:.1f}"
                        + ("" if rc == 0 else "\n" + out[-600:]))
    log(f"medians of {args.repeats} (load average now {os.getloadavg()[0]:.1f}):")
    for (v, w), rs in rows.items():
        log(f"  {v} --workers {w}: {statistics.median(x['rate'] for x in rs):8.0f} msgs/s, "
            f"{statistics.median(x['us'] for x in rs):6.2f} µs/msg CPU, main thread (send: the "
            f"journal thread) after set-up "
            f"{statistics.median(x['main_us'] for x in rs):5.2f} µs/msg")


if __name__ == "__main__":
    main()
