#!/usr/bin/python3
"""End-to-end relay benchmark: smtpblast vs Postfix's smtp-source, side by side.

Run through bench/bench_relay.sh (see there for usage). For each repeat and each sink
((1) Postfix's smtp-sink, (2) `smtpblast sink`), a fresh sink is started for every
sender run, and each sender sends the same N ~2 KB messages over C connections:

  smtpblast-send  the same on a task imported beforehand with `smtpblast import` (not timed)
  smtpblast    $SMTPBLAST send --task T.db --template M.eml --recipients L.csv
               --relay 127.0.0.1:PORT --connections C --per-connection P
               --from sender@example.test          (fresh task file every run; the
               CSV import into the task is part of the measured run)
  smtp-source  smtp-source -s C -m N -d -N -F rendered.eml -f sender@example.test
               -t rcpt@example.test -M client.example.test 127.0.0.1:PORT
               -s C: C parallel sessions; -m N: N messages in total; -d: keep each
               session open and send the next message over it (connection reuse, as
               smtpblast does; smtp-source has no per-connection cap, so it never
               reconnects); -N: a distinct recipient per message; -F: the template
               rendered for one recipient, so both send the same bytes. smtp-source
               does not pipeline: MAIL, RCPT, DATA and "." each wait for their reply.

Figures per run: wall time of the sender, msgs/s = N / wall, and the sender process's
own CPU (user+sys; the sender runs under /usr/bin/time and os.wait4 on that gives its
rusage; the sink is a different process and not counted) per 1,000 messages. Medians over the repeats, and
the ratios smtpblast / smtp-source. The sink's own CPU is shown for information.

Modes: --strace (each sender once under `strace -c -f`, 10,000 messages, syscalls per
message), --rss N (smtpblast sends N recipients; peak RSS from /usr/bin/time -f %M).
"""

import argparse
import datetime
import os
import platform
import re
import shlex
import shutil
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

from support import peers, procs, sinks  # noqa: E402
import make_list  # noqa: E402

SENDER = "sender@example.test"
SS_RCPT = "rcpt@example.test"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg=""):
    print(msg, flush=True)


def machine_info():
    model = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
    }


def git_rev():
    try:
        r = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return r.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "?"


def proc_cpu(pid):
    """user+sys CPU seconds of a live process from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return float("nan")


def smtpblast_usable(binary):
    """(ok, why): the binary runs and knows the `send` and `sink` verbs."""
    if not binary:
        return False, "no smtpblast binary: set $SMTPBLAST or build build/bin/smtpblast"
    if not os.access(binary, os.X_OK):
        return False, f"{binary} is not executable"
    verbs = {}
    for verb in ("send", "sink"):
        try:
            r = subprocess.run([binary, verb, "--help"], capture_output=True, text=True,
                               timeout=20, stdin=subprocess.DEVNULL)
            verbs[verb] = r.returncode == 0
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f"{binary} does not run: {e}"
    return verbs, ""


# ---------------------------------------------------------------------------------------
# Sinks

def make_sink(kind, binary):
    return sinks.make_sink("smtp-sink" if kind == "smtp-sink" else "smtpblast", binary,
                           **({} if kind == "smtp-sink" else {"timeout": 3600}))


def sink_command(sink):
    if isinstance(sink, peers.SmtpSink):
        return sink.command()
    return sink.command()


# ---------------------------------------------------------------------------------------
# Senders

def smtpblast_cmd(binary, files, hostport, task, conns, per_conn):
    return [binary, "send", "--tls", "none", "--task", task, "--template", files["template"],
            "--recipients", files["recipients"], "--relay", hostport,
            "--connections", str(conns), "--per-connection", str(per_conn),
            "--from", SENDER]


def smtp_source_cmd(files, hostport, count, conns):
    return [peers.SMTP_SOURCE, "-s", str(conns), "-m", str(count), "-d", "-N",
            "-F", files["rendered"], "-f", SENDER, "-t", SS_RCPT,
            "-M", "client.example.test", hostport]


def run_sender(cmd, timeout, prefix=None, workdir=None):
    """One sender to completion: (Process, rc, wall, {"user", "sys", "maxrss_kb"}) of the
    sender alone (support.procs.run_timed: under /usr/bin/time)."""
    return procs.run_timed(cmd, timeout, workdir=workdir, prefix=prefix)


def one_run(sender, sink_kind, args, files, workdir, binary, count, run_id):
    """Start a fresh sink, run one sender into it, return a result dict."""
    res = {"sender": sender, "sink": sink_kind, "run": run_id, "ok": False}
    with make_sink(sink_kind, binary) as sink:
        res["sink_cmd"] = sink_command(sink)
        if sender in ("smtpblast", "smtpblast-send"):
            task = os.path.join(workdir, f"task-{sender}-{sink_kind}-{run_id}.db")
            cmd = smtpblast_cmd(binary, files, sink.hostport, task, args.connections,
                                args.per_connection)
            if sender == "smtpblast-send":
                # The task is prepared before the measured run: only the sending is timed.
                subprocess.run([binary, "import", "--task", task, "--recipients",
                                files["recipients"]], check=True, capture_output=True)
                i = cmd.index("--recipients")
                del cmd[i:i + 2]
        elif sender.startswith("floor"):
            # bench/floor_client.cc: the least work a client can do per message (the floor).
            host, port = sink.hostport.rsplit(":", 1)
            cmd = [os.path.join(os.path.dirname(binary), "floor_client"), host, port,
                   str(args.connections), str(count), files["rendered"]]
            if sender == "floor-nowait":
                cmd.append("--no-wait")
            elif sender == "floor-bdat":
                cmd.append("--bdat")
        else:
            cmd = smtp_source_cmd(files, sink.hostport, count, args.connections)
        res["cmd"] = cmd
        timeout = max(300.0, count / 200.0)
        p, rc, wall, usage = run_sender(cmd, timeout, workdir=workdir)
        res["rc"] = rc
        res["wall"] = wall
        res["user"], res["sys"] = usage["user"], usage["sys"]
        res["maxrss_kb"] = usage["maxrss_kb"]
        res["msgs_per_s"] = count / wall if wall > 0 else float("nan")
        res["cpu_per_1000"] = (res["user"] + res["sys"]) / count * 1000.0
        res["sink_cpu"] = proc_cpu(sink.pid)
        if isinstance(sink, peers.SmtpSink):
            try:
                res["sink_mesg"] = sink.wait_for(count, timeout=10)
            except peers.PeerError:
                res["sink_mesg"] = sink.counters()["mesg"]
        else:
            res["sink_mesg"] = None
        res["ok"] = rc == 0 and (res["sink_mesg"] is None or res["sink_mesg"] >= count)
        if not res["ok"]:
            res["error"] = (f"rc={rc}, sink counted {res['sink_mesg']} of {count}\n"
                            f"stdout: {p.stdout[-2000:]}\nstderr: {p.stderr[-2000:]}")
        if args.keep:
            Path(workdir, f"{sender}-{sink_kind}-{run_id}.out").write_text(p.stdout + p.stderr)
    return res


def fmt(x, spec):
    if x is None:
        return "-"
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def q(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


# ---------------------------------------------------------------------------------------
# Modes

def mode_relay(args, binary, verbs, workdir):
    count = args.count
    files = make_list.generate(os.path.join(workdir, "in"), count, args.size)
    senders = [s for s in args.senders if not s.startswith("smtpblast") or verbs.get("send")]
    sinks = [k for k in args.sinks if k != "smtpblast" or verbs.get("sink")]
    if not senders or not sinks:
        log("nothing to run")
        return 1
    log(f"- messages: {count:,} per sender run, {files['rendered_bytes']:,} bytes each "
        f"on the wire (template rendered), {args.connections} connections, "
        f"{args.per_connection} messages per connection for smtpblast, {args.repeat} repeats")
    log("")
    results = []
    for r in range(1, args.repeat + 1):
        for kind in sinks:
            order = senders if r % 2 == 1 else list(reversed(senders))
            for sender in order:
                res = one_run(sender, kind, args, files, workdir, binary, count, r)
                results.append(res)
                state = "ok" if res["ok"] else "FAILED"
                log(f"  run {r} sink={kind:<9} sender={sender:<11} {state}: "
                    f"{fmt(res['msgs_per_s'], ',.0f')} msgs/s, "
                    f"CPU {fmt(res['cpu_per_1000'], '.4f')} s/1000 msgs")
                if not res["ok"]:
                    log("    " + res["error"].replace("\n", "\n    "))

    log("")
    log("Commands (PORT and temp paths vary per run):")
    seen = set()
    for res in results:
        key = (res["sender"], res["sink"])
        if key in seen:
            continue
        seen.add(key)
        log(f"- sink {res['sink']}: `{q(res['sink_cmd'])}`")
        log(f"  sender {res['sender']}: `{q(res['cmd'])}`")
    log("")
    log("Raw runs:")
    log("")
    log("| sink | sender | run | rc | wall s | msgs/s | user s | sys s | "
        "CPU s / 1000 msgs | sender max RSS KB | sink CPU s | sink counted |")
    log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for x in results:
        log(f"| {x['sink']} | {x['sender']} | {x['run']} | {x['rc']} | {fmt(x['wall'], '.2f')} | "
            f"{fmt(x['msgs_per_s'], ',.0f')} | {fmt(x['user'], '.2f')} | {fmt(x['sys'], '.2f')} | "
            f"{fmt(x['cpu_per_1000'], '.4f')} | {fmt(x['maxrss_kb'], 'd')} | "
            f"{fmt(x['sink_cpu'], '.2f')} | {fmt(x['sink_mesg'], 'd')} |")
    log("")
    log(f"Medians of {args.repeat} runs (successful runs only):")
    log("")
    log("| sink | sender | msgs/s | CPU s / 1000 msgs |")
    log("|---|---|---:|---:|")
    med = {}
    for kind in sinks:
        for sender in senders:
            ok = [x for x in results if x["sink"] == kind and x["sender"] == sender and x["ok"]]
            if not ok:
                log(f"| {kind} | {sender} | - | - |")
                continue
            m = (statistics.median(x["msgs_per_s"] for x in ok),
                 statistics.median(x["cpu_per_1000"] for x in ok))
            med[(kind, sender)] = m
            log(f"| {kind} | {sender} | {m[0]:,.0f} | {m[1]:.4f} |")
    log("")
    for kind in sinks:
        for mine in ("smtpblast", "smtpblast-send", "floor", "floor-nowait", "floor-bdat"):
            a, b = med.get((kind, mine)), med.get((kind, "smtp-source"))
            if a and b:
                log(f"Ratios into {kind}: {mine} / smtp-source msgs/s = {a[0] / b[0]:.2f}; "
                    f"CPU per 1000 msgs = {a[1] / b[1]:.3f} (below 1: smtpblast uses less CPU)")
        # Issue 17's yardstick: CPU per message against the floors into the same sink.
        for floor in ("floor-nowait", "floor-bdat"):
            for mine in ("smtpblast", "smtpblast-send"):
                a, b = med.get((kind, mine)), med.get((kind, floor))
                if a and b:
                    log(f"Ratio into {kind}: {mine} / {floor} CPU per 1000 msgs = "
                        f"{a[1] / b[1]:.2f}")
    failed = sum(1 for x in results if not x["ok"])
    return 1 if failed else 0


STRACE_TOTAL = re.compile(r"^\s*100\.00\s+\S+\s+(?:\S+\s+)?(\d+)\s+(?:(\d+)\s+)?total\s*$")
STRACE_LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:(\d+)\s+)?(\w+)\s*$")


def parse_strace(text):
    calls, total = {}, None
    for line in text.splitlines():
        m = STRACE_TOTAL.match(line)
        if m:
            total = int(m.group(1))
            continue
        m = STRACE_LINE.match(line)
        if m:
            calls[m.group(3)] = int(m.group(1))
    if total is None:
        total = sum(calls.values())
    return total, calls


def mode_strace(args, binary, verbs, workdir):
    count = args.strace_count
    if not shutil.which("strace"):
        log("strace not installed: run tools/bootstrap.sh")
        return 1
    files = make_list.generate(os.path.join(workdir, "in"), count, args.size)
    senders = [s for s in args.senders if s in ("smtpblast", "smtp-source") and
               (s != "smtpblast" or verbs.get("send"))]
    log(f"- strace -c -f, {count:,} messages of {files['rendered_bytes']:,} bytes, "
        f"{args.connections} connections, into smtp-sink")
    log("")
    rc_all = 0
    for sender in senders:
        with peers.SmtpSink(backlog=256) as sink:
            if sender == "smtpblast":
                cmd = smtpblast_cmd(binary, files, sink.hostport,
                                    os.path.join(workdir, "strace-task.db"),
                                    args.connections, args.per_connection)
            else:
                cmd = smtp_source_cmd(files, sink.hostport, count, args.connections)
            out = os.path.join(workdir, f"strace-{sender}.txt")
            p, rc, wall, _ = run_sender(cmd, max(600.0, count / 20.0),
                                        prefix=["strace", "-c", "-f", "-o", out])
            text = Path(out).read_text() if os.path.exists(out) else ""
            total, calls = parse_strace(text)
            got = sink.counters()["mesg"]
        log(f"### {sender}: `strace -c -f {q(cmd)}`")
        log(f"rc={rc}, sink counted {got}, {total:,} syscalls = "
            f"**{total / count:.2f} syscalls per message**")
        log("")
        log("| syscall | calls | per message |")
        log("|---|---:|---:|")
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1])[:12]:
            log(f"| {name} | {n:,} | {n / count:.2f} |")
        log("")
        if rc != 0:
            rc_all = 1
            log(f"stderr: {p.stderr[-1500:]}")
    return rc_all


def mode_rss(args, binary, verbs, workdir):
    n = args.rss
    if not verbs.get("send"):
        log("smtpblast send is not runnable: --rss skipped")
        return 0
    files = make_list.generate(os.path.join(workdir, "in"), n, args.size)
    with peers.SmtpSink(backlog=256) as sink:
        cmd = smtpblast_cmd(binary, files, sink.hostport, os.path.join(workdir, "rss-task.db"),
                            args.connections, args.per_connection)
        p, rc, wall, usage = run_sender(cmd, max(1800.0, n / 100.0), workdir=workdir)
        got = sink.counters()["mesg"]
    rss = usage["maxrss_kb"] or 0
    log(f"- `/usr/bin/time -f %M {q(cmd)}`")
    log(f"- recipients: {n:,}; rc={rc}; sink counted {got:,}; wall {wall:.1f} s "
        f"({n / wall:,.0f} msgs/s); CPU {usage['user'] + usage['sys']:.2f} s")
    log(f"- **peak RSS of smtpblast: {rss:,} KB** ({rss / 1024:.1f} MiB, /usr/bin/time %M)")
    if rc != 0:
        log(f"stderr: {p.stderr[-1500:]}")
    return 0 if rc == 0 else 1


def main():
    ap = argparse.ArgumentParser(description="smtpblast vs smtp-source relay benchmark")
    ap.add_argument("-n", "--count", type=int, default=100000, help="messages per run")
    ap.add_argument("-r", "--repeat", type=int, default=3, help="runs per sender and sink")
    ap.add_argument("-c", "--connections", type=int, default=10)
    ap.add_argument("--per-connection", type=int, default=1000)
    ap.add_argument("--size", type=int, default=2048, help="message size on the wire")
    ap.add_argument("--sinks", default="smtp-sink,smtpblast",
                    help="comma list of smtp-sink, smtpblast")
    ap.add_argument("--senders", default="smtpblast,smtpblast-send,smtp-source",
                    help="comma list of smtpblast (import + send), smtpblast-send (send on a "
                         "task imported beforehand), smtp-source, floor (bench/floor_client: "
                         "pre-rendered pipelined transactions, waiting for 354 as RFC 2920 "
                         "requires), floor-nowait (the same without waiting: not allowed), "
                         "floor-bdat (BDAT LAST windows: the compliant floor into CHUNKING)")
    ap.add_argument("--strace", action="store_true",
                    help="syscalls per message under strace -c -f instead")
    ap.add_argument("--strace-count", type=int, default=10000)
    ap.add_argument("--rss", type=int, metavar="N",
                    help="peak RSS of smtpblast sending N recipients instead")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    args.sinks = [s.strip() for s in args.sinks.split(",") if s.strip()]
    args.senders = [s.strip() for s in args.senders.split(",") if s.strip()]

    if os.geteuid() != 0:
        sys.exit("run as root (smtp-sink drops to nobody with -u)")
    binary = peers.smtpblast_binary()
    verbs, why = smtpblast_usable(binary)
    info = machine_info()
    mode = "strace" if args.strace else ("rss" if args.rss else "relay")
    log(f"## bench_relay ({mode}) — {info['date']}")
    log("")
    log(f"- machine: nproc={info['nproc']}, CPU: {info['cpu']}, kernel {info['kernel']}")
    log(f"- smtpblast: {binary or '(none)'} at git {git_rev()}")
    log(f"- command: `bench/bench_relay.sh {' '.join(shlex.quote(a) for a in sys.argv[1:])}`")
    if not verbs or not verbs.get("send"):
        log(f"- SKIPPED smtpblast as a sender: "
            f"{why or binary + ' send --help did not exit 0 (CLI not there yet)'}")
    if not verbs or not verbs.get("sink"):
        log(f"- SKIPPED smtpblast's sink: "
            f"{why or binary + ' sink --help did not exit 0 (CLI not there yet)'}")
    verbs = verbs or {}

    workdir = tempfile.mkdtemp(prefix="sb-bench-")
    os.chmod(workdir, 0o755)
    try:
        if args.strace:
            return mode_strace(args, binary, verbs, workdir)
        if args.rss:
            return mode_rss(args, binary, verbs, workdir)
        return mode_relay(args, binary, verbs, workdir)
    finally:
        if args.keep:
            log(f"(work dir kept: {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
