#!/usr/bin/python3
"""Instructions per message of `smtpblast send`, counted by valgrind's callgrind: a figure that
does not move with the load of a shared machine (the same binary and input give the same count),
so two builds can be compared while other work runs. Wall-clock msgs/s stay bench_relay's job.

    bench/bench_instructions.py --binary A [--binary B ...] [-n 20000] [-c 10]

Each binary imports the same list into a task of its own with `smtpblast import` (not counted),
then sends it under callgrind into `smtpblast sink` (the first binary's, not under valgrind) on
127.0.0.1; all threads of the sender are counted. Prints a Markdown table.
--verb load counts `smtpblast load --max` instead (issue 17, goal 1: no task, no import; the
same ~2 KB message as --template), and the start-up alone (`smtpblast load --help`) beside it.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import sinks  # noqa: E402
import make_list  # noqa: E402

SENDER = "sender@example.test"


def totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        m = re.match(r"(?:summary|totals):\s+(\d+)", line)
        if m:
            return int(m.group(1))
    raise SystemExit(f"no totals in {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", action="append", required=True)
    ap.add_argument("-n", "--count", type=int, default=20000)
    ap.add_argument("-c", "--connections", type=int, default=10)
    ap.add_argument("--per-connection", type=int, default=1000)
    ap.add_argument("--verb", choices=["send", "load"], default="send")
    args = ap.parse_args()
    if args.verb == "load":
        return main_load(args)
    work = Path(tempfile.mkdtemp(prefix="sb-bench-instr-"))
    files = make_list.generate(str(work / "in"), args.count, 2048)
    rows = []
    with sinks.BlastSink(record=False, binary=args.binary[0], timeout=3600) as sink:
        for i, binary in enumerate(args.binary):
            task = work / f"t{i}.db"
            subprocess.run([binary, "import", "--task", str(task), "--recipients",
                            files["recipients"]], check=True, capture_output=True)
            out = work / f"callgrind.{i}"
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                   binary, "send", "--tls", "none", "--task", str(task), "--template",
                   files["template"], "--relay", sink.hostport, "--connections",
                   str(args.connections), "--per-connection", str(args.per_connection),
                   "--from", SENDER, "--workers", "1"]
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            if p.returncode != 0:
                print(p.stdout, p.stderr, file=sys.stderr)
                raise SystemExit(f"{binary}: send exited {p.returncode}")
            ir = totals(out)
            rows.append((binary, ir, ir / args.count))
    print(f"{args.count:,} messages of ~2 KB, {args.connections} connections, 1 worker, "
          f"send only (import not counted), callgrind instruction counts (all threads)\n")
    print("| binary | instructions | instructions / message | vs first |")
    print("|---|---:|---:|---:|")
    for b, ir, per in rows:
        print(f"| {b} | {ir:,} | {per:,.0f} | {per / rows[0][2]:.3f} |")
    return 0


def callgrind(cmd, out: Path) -> int:
    p = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + cmd,
                       capture_output=True, text=True, timeout=3600)
    if p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        raise SystemExit(f"{cmd[0]}: {cmd[1]} exited {p.returncode}")
    return totals(out)


def main_load(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="sb-bench-instr-"))
    files = make_list.generate(str(work / "in"), 1, 2048)
    rows = []
    with sinks.BlastSink(record=False, binary=args.binary[0], timeout=3600) as sink:
        for i, binary in enumerate(args.binary):
            start = callgrind([binary, "load", "--help"], work / f"callgrind.start.{i}")
            ir = callgrind([binary, "load", "--relay", sink.hostport, "--tls", "none",
                            "--connections", str(args.connections), "--max", "--messages",
                            str(args.count), "--per-connection", str(args.per_connection),
                            "--template", files["rendered"], "--json"],
                           work / f"callgrind.{i}")
            rows.append((binary, start, ir, ir / args.count, (ir - start) / args.count))
    print(f"smtpblast load --max: {args.count:,} messages of ~2 KB, {args.connections} "
          f"connections, {args.per_connection} per connection, callgrind instruction counts "
          f"(all threads); start-up = `load --help`\n")
    print("| binary | start-up | whole run | instr / message | without start-up | vs first |")
    print("|---|---:|---:|---:|---:|---:|")
    for b, start, ir, per, rest in rows:
        print(f"| {b} | {start:,} | {ir:,} | {per:,.0f} | {rest:,.0f} | {per / rows[0][3]:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
