#!/usr/bin/python3
"""Peak RSS of `send` with large messages and a long round trip (issue 17 goal 3: the pipeline
window's memory). `send` holds every message in flight until its reply comes; a rendered
message points into the template (only merge values are its own), but with TLS every octet
written is encrypted into a buffer until the socket takes it, so a connection holds what it
has in flight: without a cap on the octets, up to --pipeline-window messages.

Each run imports N recipients into a fresh task and sends a ~SIZE-byte template through
bench/latency_proxy (RTT ms) into the built-in sink (--tls: a private Postfix with STARTTLS and
CHUNKING, discard:, the test certificates of tools/make_test_certs.sh) over C connections, with
each of the
given settings (`W:B` = --pipeline-window W --pipeline-bytes B; `W:` the window alone, i.e.
its default cap). Prints wall, msgs/s and peak RSS (/usr/bin/time), medians of --repeats.

Run: /usr/bin/python3 bench/bench_window_memory.py [--build build] [--count 200] \
         [--size 1048576] [--rtt 100] [--connections 2] [--settings 512:,512:64m,32:1g]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))

from support import peers, procs, sinks  # noqa: E402
import bench_latency  # noqa: E402
import make_list  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=str(HERE.parent / "build"))
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--size", type=int, default=1024 * 1024)
    ap.add_argument("--rtt", type=int, default=100)
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--settings", default="512:,512:64m,32:1g")
    ap.add_argument("--tls", action="store_true", help="STARTTLS into a private Postfix")
    args = ap.parse_args()
    binary = str(Path(args.build) / "bin" / "smtpblast")
    proxy_bin = str(Path(args.build) / "bin" / "latency_proxy")
    print(f"{args.count} messages of ~{args.size} octets, {args.connections} connections, "
          f"RTT {args.rtt} ms, load average {os.getloadavg()[0]:.1f}", flush=True)
    res = {}
    with tempfile.TemporaryDirectory(prefix="sb-bench-winmem-") as wd:
        files = make_list.generate(os.path.join(wd, "in"), args.count, args.size)
        certs = Path(wd) / "certs"
        if args.tls:
            subprocess.run(["bash", str(HERE.parent / "tools" / "make_test_certs.sh"),
                            str(certs)], check=True, capture_output=True)
        for r in range(args.repeats):
            for setting in args.settings.split(","):
                w, b = setting.split(":")
                task = os.path.join(wd, f"t-{r}-{w}-{b}.db")
                subprocess.run([binary, "import", "--task", task, "--recipients",
                                files["recipients"]], check=True, capture_output=True)
                sink = (peers.PostfixInstance(discard=True, base_dir="/dev/shm",
                                              tls_cert=certs / "server.pem",
                                              tls_key=certs / "server.key", starttls=True)
                        if args.tls else
                        sinks.BlastSink(binary=binary, record=False, timeout=3600))
                tls = (["--tls", "starttls", "--ca-file", str(certs / "ca.pem")] if args.tls
                       else ["--tls", "none"])
                with sink, bench_latency.Proxy(proxy_bin, sink.hostport, args.rtt / 2) as px:
                    cmd = [binary, "send", *tls, "--task", task, "--template",
                           files["template"], "--relay", px.hostport, "--connections",
                           str(args.connections), "--per-connection", str(args.count),
                           "--from", "sender@example.test", "--pipeline-window", w]
                    if b:
                        cmd += ["--pipeline-bytes", b]
                    p, rc, wall, usage = procs.run_timed(cmd, timeout=1800, workdir=wd)
                rss = usage["maxrss_kb"] / 1024 if usage["maxrss_kb"] else float("nan")
                print(f"  window {w:>4} bytes {b or 'default':>7}: rc {rc}, wall {wall:6.2f} s, "
                      f"{args.count / wall:7.1f} msgs/s, peak RSS {rss:7.1f} MiB", flush=True)
                if rc != 0:
                    print((p.stdout + p.stderr)[-800:])
                res.setdefault(setting, []).append((args.count / wall, rss))
    print("medians:")
    for s, runs in res.items():
        print(f"  {s:10} {statistics.median(x[0] for x in runs):8.1f} msgs/s  "
              f"{statistics.median(x[1] for x in runs):7.1f} MiB peak RSS")


if __name__ == "__main__":
    main()
