#!/usr/bin/python3
"""Throughput over a long round trip (issue 17, goal 3): every sender behind
bench/latency_proxy (holds each chunk D ms each way, RTT = 2·D; this kernel has no netem).

For each RTT (default 20 and 100 ms; 0 = loopback, no proxy) and each sink (Postfix's
smtp-sink: PIPELINING, no CHUNKING; the built-in `smtpblast sink`: CHUNKING; `postfix`: a
private Postfix smtpd, PIPELINING and CHUNKING, every message discarded, its queue on tmpfs),
each repeat starts a fresh sink and a fresh proxy per sender and runs, over 10 connections,
with one ~2 KB message (bench/make_list.py):
  send         smtpblast send on a task imported beforehand (import not timed)
  load         smtpblast load --max --messages N
  smtp-source  smtp-source -s 10 -m N -d -N (Postfix; no pipelining: a round trip per command)
  nodemailer   Nodemailer's pool (bench/nodemailer_send.js: pool: true, 10 connections,
               maxMessages: Infinity; it pipelines MAIL/RCPT/DATA of one message, never BDAT)
  floor        bench/floor_client (RFC 2920 with DATA: one round trip per message)
  floor-nowait bench/floor_client --no-wait (32 transactions a write, never waits; CHUNKING
               sink only: not legal RFC 2920)
  floor-bdat   floor_client --bdat (the compliant CHUNKING floor, 32 transactions a write,
               floor-bdat-wW: W a write;
               CHUNKING sink only; the build's floor_client when it has --bdat, else
               --bdat-floor BINARY)
Every sender gets --per-connection N (or has no cap), so no run reconnects. Figures: msgs/s =
N / wall of the sender process (start-up, connect, greeting and EHLO round trips included),
load's own achieved rate, CPU (user+sys) and peak RSS of the sender; medians of --repeats.
`send-wW`, `load-wW`: with --pipeline-window W (e.g. load-w32, the old default). --windows adds
a sweep of `load --pipeline-window W` into the CHUNKING sink (the bandwidth-delay product).

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


def postfix_sink():
    """A private Postfix (tests/support), discard: delivery, its queue on tmpfs when there is
    one (so the benchmark measures smtpd and cleanup, not this machine's disk)."""
    shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    return peers.PostfixInstance(discard=True, base_dir=shm, main={
        # Logging every delivery is what counts them; nothing else is logged.
        "smtpd_timeout": "600s"})


def make_sink(kind, binary):
    if kind == "smtp-sink":
        return sinks.make_sink("smtp-sink", binary)
    if kind == "postfix":
        return postfix_sink()
    return sinks.BlastSink(binary=binary, record=False, timeout=3600)


class NoProxy:
    """RTT 0: the sender talks to the sink directly (loopback)."""

    def __init__(self, target):
        self.hostport = target

    def __enter__(self):
        return self

    def cpu(self):
        return 0.0

    def __exit__(self, *exc):
        pass


def sender_cmd(sender, args, files, hostport, count, workdir, tag):
    binary = str(Path(args.build) / "bin" / "smtpblast")
    window = []
    if "-w" in sender and sender.split("-w", 1)[0] in ("send", "load"):
        sender, w = sender.split("-w", 1)
        window = ["--pipeline-window", w]
    if sender == "send":
        task = os.path.join(workdir, f"task-{tag}.db")
        # The task holds exactly `count` recipients: send sends the whole task.
        lst = make_list.generate(os.path.join(workdir, f"list-{count}"), count)
        subprocess.run([binary, "import", "--task", task, "--recipients", lst["recipients"]],
                       check=True, capture_output=True)
        return [binary, "send", "--tls", "none", "--task", task, "--template", files["template"],
                "--relay", hostport, "--connections", str(CONNS), "--per-connection",
                str(count), "--from", SENDER] + window
    if sender == "load":
        return [binary, "load", "--relay", hostport, "--tls", "none", "--connections",
                str(CONNS), "--max", "--messages", str(count), "--per-connection", str(count),
                "--template", files["rendered"], "--from", SENDER, "--json"] + window
    if sender == "nodemailer":
        host, port = hostport.rsplit(":", 1)
        return ["node", str(HERE / "nodemailer_send.js"), "--host", host, "--port", port,
                "--count", str(count), "--message", files["rendered"], "--from", SENDER,
                "--connections", str(CONNS), "--max-messages", "inf", "--no-tls"]
    if sender == "smtp-source":
        return [peers.SMTP_SOURCE, "-s", str(CONNS), "-m", str(count), "-d", "-N",
                "-F", files["rendered"], "-f", SENDER, "-t", "rcpt@example.test",
                "-M", "client.example.test", hostport]
    host, port = hostport.rsplit(":", 1)
    fwindow = []
    if sender.startswith("floor-bdat-w"):  # floor-bdat-w512: 512 transactions a write
        sender, w = sender.rsplit("-w", 1)
        fwindow = ["--window", w]
    floor = args.bdat_floor if sender == "floor-bdat" else str(Path(args.build) / "bin" /
                                                                "floor_client")
    if not args.bdat_floor and sender == "floor-bdat":
        raise SystemExit("floor-bdat needs a floor_client with --bdat")
    cmd = [floor, host, port, str(CONNS), str(count), files["rendered"]]
    if sender == "floor-nowait":
        cmd.append("--no-wait")
    if sender == "floor-bdat":
        cmd.append("--bdat")
    return cmd + fwindow


def load_rate(out):
    for line in reversed(out.splitlines()):
        if line.startswith("{") and '"summary"' in line:
            return json.loads(line).get("achieved_rate")
    return None


def one_run(sender, kind, rtt, args, files, workdir, count, tag):
    proxy_bin = str(Path(args.build) / "bin" / "latency_proxy")
    with make_sink(kind, str(Path(args.build) / "bin" / "smtpblast")) as sink:
        with (Proxy(proxy_bin, sink.hostport, rtt / 2) if rtt else NoProxy(sink.hostport)) as proxy:
            cmd = sender_cmd(sender, args, files, proxy.hostport, count, workdir, tag)
            p, rc, wall, usage = procs.run_timed(cmd, timeout=max(600.0, count), workdir=workdir)
            proxy_cpu = proxy.cpu()
        mesg = None
        if isinstance(sink, peers.SmtpSink):
            try:
                mesg = sink.wait_for(count, timeout=10)
            except peers.PeerError:
                mesg = sink.counters()["mesg"]
        elif isinstance(sink, peers.PostfixInstance):
            try:
                sink.wait_for(count, timeout=60)
            except peers.PeerError:
                pass
            mesg = sink.delivered_count()
    cpu = usage["user"] + usage["sys"]
    res = {"sender": sender, "sink": kind, "rtt_ms": rtt, "count": count, "rc": rc,
           "wall": wall, "msgs_per_s": count / wall, "cpu_s": cpu,
           "us_per_msg": cpu / count * 1e6, "sink_mesg": mesg, "proxy_cpu_s": proxy_cpu,
           "maxrss_kb": usage.get("maxrss_kb"),
           "load_rate": load_rate(p.stdout) if sender.startswith("load") else None}
    res["ok"] = rc == 0 and (mesg is None or mesg >= count)
    log(f"  {kind:9} rtt {rtt:3} {sender:12} n {count:5}: rc {rc}, wall {wall:6.2f} s, "
        f"{res['msgs_per_s']:8.1f} msgs/s"
        + (f" (own {res['load_rate']:.1f})" if res["load_rate"] else "")
        + f", cpu {cpu:.3f} s ({res['us_per_msg']:.1f} µs/msg), rss {res['maxrss_kb']} kB, "
        f"proxy cpu {proxy_cpu:.2f} s"
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
    ap.add_argument("--sinks", default="smtp-sink,builtin",
                    help="smtp-sink, builtin, postfix (comma-separated)")
    ap.add_argument("--senders", default=DEFAULT_SENDERS)
    ap.add_argument("--windows", default="", help="e.g. 8,32,128,512: load window sweep")
    ap.add_argument("--bdat-floor", help="a floor_client with --bdat (sender floor-bdat)")
    ap.add_argument("--sink-counts", default="",
                    help="per sink, e.g. postfix=1000,smtp-sink=2000: messages per run at "
                         "20 ms instead of --count (a private Postfix takes ~100s a second)")
    ap.add_argument("--slow-max", type=int, default=0,
                    help="at most this many messages for smtp-source and nodemailer (a round "
                         "trip or more per message; default: a quarter of the count)")
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
            with peers.SmtpSink() as ss, (Proxy(proxy_bin, ss.hostport, rtt / 2) if rtt
                                          else NoProxy(ss.hostport)) as px:
                log(f"RTT {rtt} ms: measured NOOP round trip {probe_rtt(px.hostport):.1f} ms")
            sink_counts = dict(kv.split("=") for kv in args.sink_counts.split(",") if kv)
            for kind in args.sinks.split(","):
                base = int(sink_counts.get(kind, args.count))
                base = base if rtt <= 20 else base // 2
                senders = [s for s in args.senders.split(",")
                           if s and not ((s in ("floor-nowait", "floor-bdat") or
                                          s.startswith("floor-bdat-w")) and kind == "smtp-sink")
                           and not (s == "floor-nowait" and kind == "postfix")
                           # Into CHUNKING the floor is floor-bdat's (DATA's is smtp-sink's).
                           and not (s == "floor" and kind != "smtp-sink" and
                                    "floor-bdat" in args.senders.split(","))]
                for r in range(args.repeats):
                    for s in senders:
                        # Both do a round trip (or more) per message: fewer keep runs short.
                        n = base
                        if s in ("smtp-source", "nodemailer"):
                            n = min(base // 4, args.slow_max) if args.slow_max else base // 4
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
                            ("builtin", "floor-nowait"), ("postfix", "floor-bdat")):
            for mine in ("send", "load"):
                a, f, s, nm = (med.get((rtt, kind, x))
                               for x in (mine, floor, "smtp-source", "nodemailer"))
                if a and f:
                    log(f"  rtt {rtt:3} {kind:9} {mine}: {a / f * 100:.0f}% of {floor}"
                        + (f", {a / s:.1f}x smtp-source" if s else "")
                        + (f", {a / nm:.1f}x nodemailer" if nm else ""))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
