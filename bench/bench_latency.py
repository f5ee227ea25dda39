#!/usr/bin/python3
"""Throughput over a long round trip (issue 17, goal 3): every sender behind
bench/latency_proxy (holds each chunk D ms each way, RTT = 2·D; this kernel has no netem).

For each RTT (default 20 and 100 ms) and each sink (Postfix's smtp-sink: PIPELINING, no
CHUNKING; the built-in `smtpblast sink`: CHUNKING), each repeat starts a fresh sink and a fresh
proxy per sender and runs, over 10 connections, with one ~2 KB message (bench/make_list.py):
  send         smtpblast send on a task imported beforehand (import not timed)
  load         smtpblast load --max --messages N
  smtp-source  smtp-source -s 10 -m N -d -N (Postfix; no pipelining: a round trip per command)
  floor        bench/floor_client (RFC 2920 with DATA: one round trip per message)
  floor-nowait bench/floor_client --no-wait (32 transactions a write, never waits; CHUNKING
               sink only: not legal RFC 2920)
  floor-bdat   floor_client --bdat (the compliant CHUNKING floor, 32 transactions a write;
               CHUNKING sink only; the build's floor_client when it has --bdat, else
               --bdat-floor BINARY)
Every sender gets --per-connection N (or has no cap), so no run reconnects. Figures: msgs/s =
N / wall of the sender process (start-up, connect, greeting and EHLO round trips included),
load's own achieved rate, CPU (user+sys) of the sender; medians of --repeats. --windows adds a
sweep of `load --pipeline-window W` into the CHUNKING sink (the bandwidth-delay product).

Run: /usr/bin/python3 bench/bench_latency.py [--build build] [--repeats 3] [--count 2000]
"""

import argparse
import datetime
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import peers, procs, sinks  # noqa: E402
import make_list  # noqa: E402

SENDER = "sender@example.test"
CONNS = 10
DEFAULT_SENDERS = "send,load,smtp-source,floor,floor-nowait"  # + floor-bdat when available


def log(msg=""):
    print(msg, flush=True)


class Proxy:
    """bench/latency_proxy in front of `target` (HOST:PORT), one-way delay `delay_ms`."""

    def __init__(self, binary, target, delay_ms):
        self.port = procs.free_port("127.0.0.1")
        self.hostport = f"127.0.0.1:{self.port}"
        self.proc = procs.Process([binary, "--listen", self.hostport, "--target", target,
                                   "--delay-ms", str(int(delay_ms))], timeout=3600,
                                  name="latency_proxy")

    def __enter__(self):
        self.proc.start()
        procs.wait_port("127.0.0.1", self.port, timeout=10,
                        alive=lambda: self.proc.poll() is None)
        return self

    def cpu(self):
        try:
            with open(f"/proc/{self.proc.pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def __exit__(self, *exc):
        self.proc.stop()


def probe_rtt(hostport, n=5):
    """Median NOOP round trip through the proxy, in ms (the greeting is waited for first)."""
    host, port = hostport.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    f = s.makefile("rb")
    f.readline()
    times = []
    for _ in range(n):
        t = time.monotonic()
        s.sendall(b"NOOP\r\n")
        f.readline()
        times.append((time.monotonic() - t) * 1000)
    s.sendall(b"QUIT\r\n")
    f.readline()
    s.close()
    return statistics.median(times)


def make_sink(kind, binary):
    if kind == "smtp-sink":
        return sinks.make_sink("smtp-sink", binary)
    return sinks.BlastSink(binary=binary, record=False, timeout=3600)


def sender_cmd(sender, args, files, hostport, count, workdir, tag):
    binary = str(Path(args.build) / "bin" / "smtpblast")
    if sender == "send":
        task = os.path.join(workdir, f"task-{tag}.db")
        # The task holds exactly `count` recipients: send sends the whole task.
        lst = make_list.generate(os.path.join(workdir, f"list-{count}"), count)
        subprocess.run([binary, "import", "--task", task, "--recipients", lst["recipients"]],
                       check=True, capture_output=True)
        return [binary, "send", "--tls", "none", "--task", task, "--template", files["template"],
                "--relay", hostport, "--connections", str(CONNS), "--per-connection",
                str(count), "--from", SENDER]
    if sender.startswith("load"):
        cmd = [binary, "load", "--relay", hostport, "--tls", "none", "--connections", str(CONNS),
               "--max", "--messages", str(count), "--per-connection", str(count),
               "--template", files["rendered"], "--from", SENDER, "--json"]
        if sender.startswith("load-w"):
            cmd += ["--pipeline-window", sender[len("load-w"):]]
        return cmd
    if sender == "smtp-source":
        return [peers.SMTP_SOURCE, "-s", str(CONNS), "-m", str(count), "-d", "-N",
                "-F", files["rendered"], "-f", SENDER, "-t", "rcpt@example.test",
                "-M", "client.example.test", hostport]
    host, port = hostport.rsplit(":", 1)
    floor = args.bdat_floor if sender == "floor-bdat" else str(Path(args.build) / "bin" /
                                                                "floor_client")
    cmd = [floor, host, port, str(CONNS), str(count), files["rendered"]]
    if sender == "floor-nowait":
        cmd.append("--no-wait")
    if sender == "floor-bdat":
        cmd.append("--bdat")
    return cmd


def load_rate(out):
    for line in reversed(out.splitlines()):
        if line.startswith("{") and '"summary"' in line:
            return json.loads(line).get("achieved_rate")
    return None


def one_run(sender, kind, rtt, args, files, workdir, count, tag):
    proxy_bin = str(Path(args.build) / "bin" / "latency_proxy")
    with make_sink(kind, str(Path(args.build) / "bin" / "smtpblast")) as sink:
        with Proxy(proxy_bin, sink.hostport, rtt / 2) as proxy:
            cmd = sender_cmd(sender, args, files, proxy.hostport, count, workdir, tag)
            p, rc, wall, usage = procs.run_timed(cmd, timeout=max(600.0, count), workdir=workdir)
            proxy_cpu = proxy.cpu()
        mesg = None
        if isinstance(sink, peers.SmtpSink):
            try:
                mesg = sink.wait_for(count, timeout=10)
            except peers.PeerError:
                mesg = sink.counters()["mesg"]
    cpu = usage["user"] + usage["sys"]
    res = {"sender": sender, "sink": kind, "rtt_ms": rtt, "count": count, "rc": rc,
           "wall": wall, "msgs_per_s": count / wall, "cpu_s": cpu,
           "us_per_msg": cpu / count * 1e6, "sink_mesg": mesg, "proxy_cpu_s": proxy_cpu,
           "load_rate": load_rate(p.stdout) if sender.startswith("load") else None}
    res["ok"] = rc == 0 and (mesg is None or mesg >= count)
    log(f"  {kind:9} rtt {rtt:3} {sender:12} n {count:5}: rc {rc}, wall {wall:6.2f} s, "
        f"{res['msgs_per_s']:8.1f} msgs/s"
        + (f" (own {res['load_rate']:.1f})" if res["load_rate"] else "")
        + f", cpu {cpu:.3f} s ({res['us_per_msg']:.1f} µs/msg), proxy cpu {proxy_cpu:.2f} s"
        + (f", sink counted {mesg}" if mesg is not None else "")
        + ("" if res["ok"] else f"  FAILED: {(p.stdout + p.stderr)[-600:]}"))
    return res


def main():
    global CONNS
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(ROOT / "build"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rtts", default="20,100")
    ap.add_argument("--count", type=int, default=2000,
                    help="messages per run at 20 ms (half of it at longer RTTs)")
    ap.add_argument("--sinks", default="smtp-sink,builtin")
    ap.add_argument("--senders", default=DEFAULT_SENDERS)
    ap.add_argument("--windows", default="", help="e.g. 8,32,128,512: load window sweep")
    ap.add_argument("--bdat-floor", help="a floor_client with --bdat (sender floor-bdat)")
    ap.add_argument("--sweep-count", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=CONNS)
    ap.add_argument("--json-out")
    args = ap.parse_args()
    CONNS = args.connections
    if not args.bdat_floor:
        # After floor_client gains --bdat (branch perf), the build's own one is the BDAT floor.
        own = Path(args.build) / "bin" / "floor_client"
        if own.exists() and b"--bdat" in own.read_bytes():
            args.bdat_floor = str(own)
    if not args.bdat_floor and "floor-bdat" in args.senders.split(","):
        ap.error("floor-bdat needs a floor_client with --bdat (--bdat-floor BINARY)")
    if args.bdat_floor and args.senders == DEFAULT_SENDERS:
        args.senders += ",floor-bdat"
    rtts = [int(x) for x in args.rtts.split(",") if x]
    log(f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, nproc "
        f"{os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
    results = []
    with tempfile.TemporaryDirectory(prefix="sb-bench-latency-") as wd:
        files = make_list.generate(os.path.join(wd, "in"), args.count)
        proxy_bin = str(Path(args.build) / "bin" / "latency_proxy")
        for rtt in rtts:
            with peers.SmtpSink() as ss, Proxy(proxy_bin, ss.hostport, rtt / 2) as px:
                log(f"RTT {rtt} ms: measured NOOP round trip {probe_rtt(px.hostport):.1f} ms")
            base = args.count if rtt <= 20 else args.count // 2
            for kind in args.sinks.split(","):
                senders = [s for s in args.senders.split(",")
                           if s and not (s in ("floor-nowait", "floor-bdat") and
                                         kind == "smtp-sink")]
                for r in range(args.repeats):
                    for s in senders:
                        n = base // 4 if s == "smtp-source" else base
                        results.append(one_run(s, kind, rtt, args, files, wd, n,
                                               f"{s}-{kind}-{rtt}-{r}"))
                if kind == "builtin" and args.windows:
                    # Once each, with more messages: the window that reaches the CPU bound.
                    sweep = make_list.generate(os.path.join(wd, "sweep"), args.sweep_count)
                    for w in args.windows.split(","):
                        results.append(one_run(f"load-w{w}", kind, rtt, args, sweep, wd,
                                               args.sweep_count, f"w{w}-{rtt}"))
    log(f"\nmedians of {args.repeats}, the window sweep one run each (load average now "
        f"{os.getloadavg()[0]:.1f}):")
    med = {}
    for key in sorted({(x["rtt_ms"], x["sink"], x["sender"]) for x in results}):
        runs = [x for x in results if (x["rtt_ms"], x["sink"], x["sender"]) == key]
        m = statistics.median(x["msgs_per_s"] for x in runs)
        u = statistics.median(x["us_per_msg"] for x in runs)
        med[key] = m
        bad = sum(not x["ok"] for x in runs)
        log(f"  rtt {key[0]:3} {key[1]:9} {key[2]:12} {m:9.1f} msgs/s  {u:7.1f} µs/msg"
            + (f"  ({bad} failed)" if bad else ""))
    for rtt in rtts:
        for kind, floor in (("smtp-sink", "floor"), ("builtin", "floor-bdat"),
                            ("builtin", "floor-nowait")):
            for mine in ("send", "load"):
                a, f, s = (med.get((rtt, kind, x)) for x in (mine, floor, "smtp-source"))
                if a and f and s:
                    log(f"  rtt {rtt:3} {kind:9} {mine}: {a / f * 100:.0f}% of {floor}, "
                        f"{a / s:.1f}x smtp-source")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
