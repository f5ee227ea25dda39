#!/usr/bin/python3
"""A new session per message at 1,000 connections (issue 17, goal 7).

`smtpblast load --per-connection 1 --connections 1000 --max --messages N` against
`smtp-source -s 1000 -m N` (no -d: smtp-source then opens a new session for every message), each
into a fresh Postfix smtp-sink (backlog 1024) on loopback, no proxy, the same ~2 KB message.
Figures: msgs/s = N / wall of the sender, the sender's CPU (user+sys) per message, and the
sink's CPU; medians of --repeats.

Run: /usr/bin/python3 bench/bench_reconnect.py [--build build] [--repeats 3] [--count 10000]
"""

import argparse
import datetime
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import peers, procs  # noqa: E402
import make_list  # noqa: E402


def log(msg=""):
    print(msg, flush=True)


def proc_cpu(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=None, help="load --workers (default: load's)")
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    binary = str(Path(args.build) / "bin" / "smtpblast")
    log(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, nproc "
        f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    rows = {"load --per-connection 1": [], "smtp-source (no -d)": []}
    with tempfile.TemporaryDirectory(prefix="sb-bench-reconnect-") as wd:
        files = make_list.generate(os.path.join(wd, "in"), 10)
        for r in range(args.repeats):
            for name in rows:
                with peers.SmtpSink(backlog=1024) as sink:
                    if name.startswith("load"):
                        cmd = [binary, "load", "--relay", sink.hostport, "--tls", "none",
                               "--connections", str(args.connections), "--max", "--messages",
                               str(args.count), "--per-connection", "1", "--template",
                               files["rendered"], "--json"]
                        if args.workers:
                            cmd += ["--workers", str(args.workers)]
                    else:
                        cmd = [peers.SMTP_SOURCE, "-s", str(args.connections), "-m",
                               str(args.count), "-N", "-F", files["rendered"], "-f",
                               "sender@example.test", "-t", "rcpt@example.test", "-M",
                               "client.example.test", sink.hostport]
                    p, rc, wall, usage = procs.run_timed(cmd, timeout=900, workdir=wd)
                    sink_cpu = proc_cpu(sink.pid)
                    try:
                        mesg = sink.wait_for(args.count, timeout=10)
                    except peers.PeerError:
                        mesg = sink.counters()["mesg"]
                    sess = sink.counters().get("sess")
                cpu = usage["user"] + usage["sys"]
                row = {"rc": rc, "wall": wall, "rate": args.count / wall,
                       "us": cpu / args.count * 1e6, "sink_cpu": sink_cpu, "mesg": mesg}
                rows[name].append(row)
                log(f"repeat {r + 1} {name:24}: rc {rc}, wall {wall:.2f} s, "
                    f"{row['rate']:.0f} msgs/s, user+sys {cpu:.2f} s ({row['us']:.0f} µs/msg), "
                    f"sink cpu {sink_cpu:.2f} s, sink counted {mesg} messages in {sess} sessions"
                    + ("" if rc == 0 else f"\n{(p.stdout + p.stderr)[-800:]}"))
    log(f"medians of {args.repeats} (load average now {os.getloadavg()[0]:.1f}):")
    for name, rs in rows.items():
        log(f"  {name:24} {statistics.median(x['rate'] for x in rs):8.0f} msgs/s  "
            f"{statistics.median(x['us'] for x in rs):6.0f} µs/msg  sink cpu "
            f"{statistics.median(x['sink_cpu'] for x in rs):.2f} s")


if __name__ == "__main__":
    main()
