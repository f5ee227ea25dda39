#!/usr/bin/python3
"""Several nodes on one PostgreSQL mailing vs the SQLite single node (issue 13).

    /usr/bin/python3 bench/bench_pg.py [--count 300000] [--repeats 1] [--nodes 1,2,3]
                                       [--analyze] [--no-sqlite]

N recipients (~2 KB messages, bench/make_list.py) into one `smtpblast sink` on loopback:
  sqlite     `smtpblast send --task T.db` (imported beforehand, not timed)
  pg-K       K `smtpblast send --task postgresql://…?task=…` processes started together on one
             task imported beforehand (not timed), against a private PostgreSQL 15
             (tests/support/postgres.py, fsync on: commits cost what they cost)
Per configuration: wall time from the first start to the last exit, msgs/s = N / wall, each
node's own CPU (user+sys from wait4) per 1,000 messages it sent, and PostgreSQL's CPU (the
postmaster and every backend, from /proc, before and after) per 1,000 messages. Everything
shares this machine's cores: msgs/s of several nodes here is not what several machines give;
CPU per message is the figure that carries over.
"""

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import procs, sinks  # noqa: E402
from support.postgres import PostgresServer  # noqa: E402
import make_list  # noqa: E402

BIN = os.environ.get("SMTPBLAST") or str(ROOT / "build" / "bin" / "smtpblast")


def log(msg=""):
    print(msg, flush=True)


def run_config(kind, nodes, inputs, pg, work, n, analyze=False):
    """One run: returns dict(wall, msgs_s, node_cpu_per_k (list), pg_cpu_per_k, sent)."""
    if kind == "sqlite":
        task = str(work / f"t-{time.monotonic_ns()}.db")
    else:
        task = pg.url(f"bench{time.monotonic_ns()}")
    p = procs.run([BIN, "import", "--task", task, "--recipients", inputs["recipients"]],
                  timeout=3600)
    if p.returncode != 0:
        raise RuntimeError(f"import failed: {p.stderr}")
    if analyze and pg is not None:
        # Statistics as autovacuum would gather them sooner or later: the claim's plan must
        # stay fast with them (it did not before schema version 2).
        pg.sql("ANALYZE smtpblast_recipients")
    with sinks.BlastSink(record=False) as sink:
        cmd = [BIN, "send", "--tls", "none", "--task", task, "--template", inputs["template"],
               "--relay", sink.hostport, "--connections", "10", "--per-connection", "1000"]
        pg_before = pg.cpu_seconds() if pg else 0.0
        t0 = time.monotonic()
        ps = [procs.Process(cmd, timeout=3600, name=f"node{i}") for i in range(nodes)]
        for q in ps:
            q.start()
        rcs = [q.wait() for q in ps]
        wall = time.monotonic() - t0
        time.sleep(0.5)  # the backends of the nodes exit and are reaped by the postmaster
        pg_cpu = (pg.cpu_seconds() - pg_before) if pg else 0.0
        for q in ps:
            q.stop()
    if any(rc != 0 for rc in rcs):
        raise RuntimeError(f"{kind} x{nodes}: exit codes {rcs}: {ps[0].stderr[-2000:]}")
    cpu = [q.cpu_seconds for q in ps]
    return {"wall": wall, "msgs_s": n / wall, "node_cpu": cpu,
            "node_cpu_per_k": sum(cpu) / n * 1000, "pg_cpu_per_k": pg_cpu / n * 1000}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=300000)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--nodes", default="1,2,3")
    ap.add_argument("--analyze", action="store_true",
                    help="ANALYZE the recipients table after each import, before sending")
    ap.add_argument("--no-sqlite", action="store_true", help="PostgreSQL runs only")
    args = ap.parse_args()
    n = args.count
    with tempfile.TemporaryDirectory(prefix="sb-bench-pg-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)  # the postgres user must reach the server's directory in it
        inputs = make_list.generate(str(work / "in"), n)
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        log(f"bench_pg: {n} recipients, {stamp} UTC, nproc {os.cpu_count()}, {BIN}")
        with PostgresServer(work / "pg", fsync=True) as pg:
            os.environ.update(pg.env())  # the nodes read the password from PGPASSFILE
            configs = [] if args.no_sqlite else [("sqlite", 1)]
            configs += [("pg", int(k)) for k in args.nodes.split(",")]
            results = {}
            for _ in range(args.repeats):
                for kind, k in configs:
                    r = run_config(kind, k, inputs, pg if kind == "pg" else None, work, n,
                                   args.analyze)
                    results.setdefault((kind, k), []).append(r)
                    log(f"  {kind} x{k}: {r['wall']:.1f} s, {r['msgs_s']:.0f} msgs/s, nodes "
                        f"CPU {'+'.join(f'{c:.2f}' for c in r['node_cpu'])} s "
                        f"({r['node_cpu_per_k']:.4f} s/1000), PostgreSQL "
                        f"{r['pg_cpu_per_k']:.4f} s/1000")
        log("\n| store | nodes | msgs/s | nodes' CPU s / 1000 msgs | PostgreSQL CPU s / 1000 msgs |")
        log("|---|---:|---:|---:|---:|")
        for (kind, k), rs in results.items():
            med = lambda key: statistics.median(r[key] for r in rs)  # noqa: E731
            log(f"| {'SQLite' if kind == 'sqlite' else 'PostgreSQL'} | {k} | {med('msgs_s'):,.0f} | "
                f"{med('node_cpu_per_k'):.4f} | {med('pg_cpu_per_k'):.4f} |")


if __name__ == "__main__":
    main()
