#!/usr/bin/python3
"""DKIM signing cost end to end: the same mailing with no DKIM, rsa-sha256 (2048), ed25519-sha256
and both keys at once, in one run, into the built-in sink.

Run through bench/bench_dkim.sh (see there for usage). For every repeat, each configuration
(in a rotated order, so none always runs first) gets a fresh `smtpblast sink` and a task
imported beforehand (`smtpblast import`, not timed), then
  smtpblast send --task T --template M.eml --relay 127.0.0.1:PORT --tls none
                 --connections C --per-connection P [--dkim-key K --dkim-selector S
                 --dkim-domain example.test ...]
The template is bench/make_list.py's ~2 KB newsletter: merge fields in the body, so the body
hash is computed per recipient (the slower case; a static body is hashed once).

Per run: msgs/s = N / wall time of the sender, and the sender's own CPU (user+sys, os.wait4
on that process; the sink is another process) per 1,000 messages. Medians over the repeats.
From the CPU figures: messages per CPU-second of the sender (= per core), and the signing
cost per message (configuration minus no-DKIM), whose inverse is what signing alone allows a
core.
"""

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
# The process, port and sink helpers are the integration tests' package, tests/support.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import peers, sinks  # noqa: E402
import make_list  # noqa: E402

BIN = os.environ.get("SMTPBLAST") or str(ROOT / "build" / "bin" / "smtpblast")
CONFIGS = ("none", "rsa-sha256", "ed25519-sha256", "both")


def log(msg=""):
    print(msg, flush=True)


def cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def dkim_args(cfg, keys):
    out = []
    if cfg in ("rsa-sha256", "both"):
        out += ["--dkim-key", keys["rsa"], "--dkim-selector", "r1"]
    if cfg in ("ed25519-sha256", "both"):
        out += ["--dkim-key", keys["ed"], "--dkim-selector", "e1"]
    if out:
        out += ["--dkim-domain", "example.test"]
    return out


def one_run(cfg, inputs, keys, work, args, idx):
    task = work / f"task-{cfg}-{idx}.db"
    p = peers.run([BIN, "import", "--task", task, "--recipients", inputs["recipients"]],
                  timeout=600)
    if p.returncode != 0:
        sys.exit(f"import failed: {p.stderr}")
    sink = sinks.BlastSink(binary=BIN, record=False, timeout=3600).start()
    try:
        cmd = [BIN, "send", "--task", task, "--template", inputs["template"],
               "--relay", sink.hostport, "--tls", "none",
               "--connections", str(args.connections),
               "--per-connection", str(args.per_connection), *dkim_args(cfg, keys)]
        s = peers.Process(cmd, timeout=3600, name="smtpblast-send")
        s.start()
        rc = s.wait()
        s.stop()
    finally:
        sink.stop()
    if rc != 0:
        sys.exit(f"send ({cfg}) failed rc={rc}: {s.stderr[-2000:]}")
    task.unlink(missing_ok=True)
    wall = s.elapsed
    cpu = s.cpu_seconds
    return {"msgs_s": args.count / wall, "cpu_per_1000": cpu / args.count * 1000, "wall": wall,
            "cpu": cpu}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--count", type=int, default=50000)
    ap.add_argument("-r", "--repeats", type=int, default=3)
    ap.add_argument("-c", "--connections", type=int, default=4)
    ap.add_argument("--per-connection", type=int, default=1000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    args = ap.parse_args()
    configs = [c for c in args.configs.split(",") if c]
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"unknown configuration {c}; known: {', '.join(CONFIGS)}")
    if not os.access(BIN, os.X_OK):
        sys.exit(f"smtpblast binary {BIN} missing: set SMTPBLAST")

    with tempfile.TemporaryDirectory(prefix="sb-bench-dkim-") as tmp:
        work = Path(tmp)
        inputs = make_list.generate(str(work / "in"), args.count, args.size)
        keys = {"rsa": work / "rsa.pem", "ed": work / "ed.pem"}
        for k, a in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                     ("ed", ["-algorithm", "ED25519"])):
            subprocess.run(["openssl", "genpkey", *a, "-out", str(keys[k])], check=True,
                           capture_output=True)
            os.chmod(keys[k], 0o600)
        results = {c: [] for c in configs}
        for r in range(args.repeats):
            order = configs[r % len(configs):] + configs[:r % len(configs)]
            for c in order:
                res = one_run(c, inputs, keys, work, args, r)
                results[c].append(res)
                log(f"# repeat {r + 1} {c}: {res['msgs_s']:,.0f} msgs/s, "
                    f"{res['cpu_per_1000']:.4f} CPU s / 1000 msgs (wall {res['wall']:.2f} s)")

    med = {c: {k: statistics.median(x[k] for x in v) for k in ("msgs_s", "cpu_per_1000")}
           for c, v in results.items()}
    base = med.get("none", {}).get("cpu_per_1000")
    log()
    log(f"Date {datetime.date.today()}, {os.cpu_count()} cores ({cpu_model()}); "
        f"{args.count:,} messages of ~{inputs['rendered_bytes']:,} octets, "
        f"{args.connections} connections, {args.per_connection} per connection, "
        f"{args.repeats} repeats, medians.")
    log()
    log("| DKIM | msgs/s | CPU s / 1000 msgs | msgs per CPU-second (one core) "
        "| signing CPU µs / msg | signing alone caps a core at |")
    log("|---|---:|---:|---:|---:|---:|")
    for c in configs:
        m = med[c]
        per_core = 1000 / m["cpu_per_1000"]
        if base is not None and c != "none":
            extra_us = (m["cpu_per_1000"] - base) * 1000
            cap = f"{1e6 / extra_us:,.0f} msgs/s" if extra_us > 0 else "-"
            extra = f"{extra_us:,.0f}"
        else:
            extra, cap = "-", "-"
        log(f"| {c} | {m['msgs_s']:,.0f} | {m['cpu_per_1000']:.4f} | {per_core:,.0f} "
            f"| {extra} | {cap} |")
    log()
    log("Raw runs (msgs/s, CPU s / 1000 msgs):")
    for c in configs:
        log(f"- {c}: " + "; ".join(f"{x['msgs_s']:,.0f}, {x['cpu_per_1000']:.4f}"
                                   for x in results[c]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
