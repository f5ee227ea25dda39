#!/usr/bin/python3
"""Direct-delivery benchmark: 100,000 recipients over 1,000 domains, direct vs relay.

Run through bench/bench_direct.sh. A dnsmasq on 127.0.0.1 serves D domains
dNNNN.test, each with its own MX host mx.dNNNN.test whose A record is one of S loopback
addresses (127.0.0.2 ...), where a `smtpblast sink` listens on one common port. The
recipients (userNNNNNNN@dNNNN.test, round-robin over the domains, so every batch holds
every domain) get the ~2 KB personalised template of bench/make_list.py. Per repeat:

  direct  smtpblast send --direct --helo bench.example.test --dns-server DNSMASQ
          --mx-port PORT --connections C --max-connections-per-domain 5
  relay   smtpblast send --relay 127.0.0.2:PORT --connections C  (all into one sink)

both on a task imported beforehand (not timed), fresh sinks each run. Figures: msgs/s,
the sender's CPU (user+sys, from wait4) per 1,000 messages, and for direct the CPU spent
on DNS (c-ares processing, answer parsing and the MX logic on the worker loops, as
smtpblast measures it with CLOCK_THREAD_CPUTIME_ID and prints at the end) as a share of
the process's CPU. Medians over the repeats.
"""

import argparse
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
# The process, port and sink helpers are the integration tests' package, tests/support.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import peers  # noqa: E402
from support.sinks import BlastSink  # noqa: E402
import make_list  # noqa: E402

BIN = os.environ.get("SMTPBLAST") or str(ROOT / "build" / "bin" / "smtpblast")


def log(msg=""):
    print(msg, flush=True)


def zone(domains, sinks):
    lines = ["local=/test/", "local-ttl=3600"]
    for d in range(domains):
        lines.append(f"mx-host=d{d:04d}.test,mx.d{d:04d}.test,10")
        lines.append(f"host-record=mx.d{d:04d}.test,127.0.0.{2 + d % sinks}")
    return "\n".join(lines) + "\n"


def make_inputs(work: Path, count: int, domains: int):
    paths = make_list.generate(str(work), 1, 2048)  # the template
    csv = work / "direct.csv"
    with open(csv, "w") as f:
        f.write("email,first_name\n")
        for i in range(count):
            f.write(f"user{i:07d}@d{i % domains:04d}.test,{make_list.FIRST_NAMES[i % 16]}\n")
    return Path(paths["template"]), csv


def import_task(task: Path, csv: Path):
    if task.exists():
        task.unlink()
    p = peers.run([BIN, "import", "--task", str(task), "--recipients", str(csv)], timeout=600)
    if p.returncode != 0:
        raise RuntimeError(p.stderr)


def one_run(mode, work, tpl, csv, port, dns, sinks, conns, count):
    task = work / f"{mode}.db"
    import_task(task, csv)
    sink_procs = []
    for k in range(sinks if mode == "direct" else 1):
        sp = BlastSink(binary=BIN, record=False, address=f"127.0.0.{2 + k}", port=port,
                       timeout=3600)
        sp.start()
        sink_procs.append(sp)
    try:
        args = [BIN, "send", "--task", str(task), "--template", str(tpl), "--tls", "none",
                "--connections", str(conns), "--from", "sender@example.test"]
        if mode == "direct":
            args += ["--direct", "--helo", "bench.example.test", "--dns-server", dns.address,
                     "--mx-port", str(port), "--max-connections-per-domain", "5"]
        else:
            args += ["--relay", f"127.0.0.2:{port}"]
        t0 = time.monotonic()
        p = peers.run(args, timeout=3600)
        wall = time.monotonic() - t0
    finally:
        for sp in sink_procs:
            sp.stop()
    if p.returncode != 0:
        raise RuntimeError(f"{mode} run failed rc={p.returncode}\n{p.stderr[-3000:]}")
    m = re.search(r"this run: (\d+) (?:recipients )?sent", p.stderr)
    sent = int(m.group(1)) if m else 0
    if sent != count:
        raise RuntimeError(f"{mode}: {sent} of {count} sent\n{p.stderr[-3000:]}")
    cpu = p.cpu_seconds
    dns_ms = None
    m = re.search(r"dns: (\d+) domains, (\d+) MX lookups, (\d+) queries, ([\d.]+) ms CPU"
                  r"(?:; \d+ recipients handed)?", p.stderr)
    if m:
        dns_ms = float(m.group(4))
    return {"wall": wall, "rate": count / wall, "cpu_per_k": cpu / count * 1000, "cpu": cpu,
            "dns_ms": dns_ms, "dns_line": m.group(0) if m else ""}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", "--count", type=int, default=100000)
    ap.add_argument("-d", "--domains", type=int, default=1000)
    ap.add_argument("-s", "--sinks", type=int, default=4)
    ap.add_argument("-c", "--connections", type=int, default=20)
    ap.add_argument("-r", "--repeats", type=int, default=3)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sb-bench-direct-"))
    dns = peers.Dnsmasq(zone(a.domains, a.sinks)).start()
    try:
        tpl, csv = make_inputs(work, a.count, a.domains)
        port = peers.free_port_on([f"127.0.0.{2 + k}" for k in range(a.sinks)])
        res = {"direct": [], "relay": []}
        for r in range(a.repeats):
            for mode in ("direct", "relay"):
                x = one_run(mode, work, tpl, csv, port, dns, a.sinks, a.connections, a.count)
                res[mode].append(x)
                extra = f", {x['dns_line']}" if x["dns_line"] else ""
                log(f"repeat {r + 1} {mode}: {x['rate']:.0f} msgs/s, {x['cpu_per_k']:.4f} CPU s "
                    f"per 1000{extra}")
        med = {m: {k: statistics.median(x[k] for x in v) for k in ("rate", "cpu_per_k", "cpu")}
               for m, v in res.items()}
        dns_share = statistics.median(x["dns_ms"] / 1000 / x["cpu"] for x in res["direct"])
        log()
        log(f"{a.count} recipients over {a.domains} domains, {a.sinks} sinks, "
            f"--connections {a.connections}, medians of {a.repeats}:")
        log()
        log("| run | msgs/s | CPU s per 1000 messages |")
        log("|---|---:|---:|")
        for m in ("direct", "relay"):
            log(f"| {m} | {med[m]['rate']:.0f} | {med[m]['cpu_per_k']:.4f} |")
        log()
        log(f"direct / relay: {med['direct']['rate'] / med['relay']['rate']:.2f}x the rate, "
            f"{med['direct']['cpu_per_k'] / med['relay']['cpu_per_k']:.2f}x the CPU per message; "
            f"DNS share of direct's CPU: {dns_share * 100:.1f}%")
    finally:
        dns.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
