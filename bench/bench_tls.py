#!/usr/bin/python3
"""TLS benchmark of issue 3: smtpblast vs Nodemailer's pooled SMTP transport, side by side
in one run, against the same private Postfix smtpd with STARTTLS (every message discarded
on arrival), 10 connections, 20,000 messages of ~2 KB, with and without TLS session
resumption.

Run through bench/bench_tls.sh (see there for usage). One Postfix instance
(peers.PostfixInstance(discard=True) with the test certificate of
tools/make_test_certs.sh, STARTTLS offered, smtpd_tls_loglevel=2 so that the maillog
shows which handshakes were full ones) serves every run. Per repeat, each sender runs
once in each resumption mode (the order alternates between repeats):

  smtpblast   $SMTPBLAST send --task T.db --template template.eml --relay 127.0.0.1:PORT
              --tls starttls --ca-file ca.pem --connections C --per-connection P
              --from sender@example.test [--no-tls-resumption]
              (the recipients are imported into T.db with `smtpblast import` before the
              measured run; a fresh task every run)
  nodemailer  node bench/nodemailer_send.js --port PORT --count N --connections C
              --max-messages P --ca ca.pem --message rendered.eml [--resume]
              (pool: true, maxConnections C, maxMessages P, requireTLS; the template
              rendered once, sent N times to distinct recipients; Nodemailer has no
              session resumption of its own: --resume wraps tls.connect to offer the
              latest session ticket, see the script)

P (messages per connection, default 100) makes connections churn: N / P = 200 TLS
handshakes per run, which is what resumption saves.

Figures per run: wall time of the sender, msgs/s = N / wall, the sender process's own
CPU (user+sys, os.wait4 of /usr/bin/time running it; Postfix is not counted) per 1,000
messages, and from the maillog slice of that run: TLS handshakes, how many of them were
full (the server sent its certificate) and so how many were resumed. Medians over the
repeats, and the ratios smtpblast / nodemailer.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", HERE.parent))
# The process, port and sink helpers are the integration tests' package, tests/support.
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(HERE))

from support import peers, procs  # noqa: E402
import make_list  # noqa: E402

SENDER = "sender@example.test"
NODE_SCRIPT = HERE / "nodemailer_send.js"


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
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


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


def q(cmd):
    return " ".join(shlex.quote(str(c)) for c in cmd)


def fmt(x, spec):
    if x is None:
        return "-"
    try:
        return format(x, spec)
    except (TypeError, ValueError):
        return str(x)


def smtpblast_flags(binary):
    """(help text of `send --help`, why-not) — empty text when unusable."""
    if not binary or not os.access(binary, os.X_OK):
        return "", "no smtpblast binary: set $SMTPBLAST or build build/bin/smtpblast"
    try:
        r = subprocess.run([binary, "send", "--help"], capture_output=True, text=True,
                           timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "", f"{binary} does not run: {e}"
    if r.returncode != 0:
        return "", f"{binary} send --help exited {r.returncode}"
    return r.stdout + r.stderr, ""


def node_usable():
    node = shutil.which("node")
    if not node:
        return None, "node not installed (tools/bootstrap.sh --bench)"
    if not (HERE / "node_modules" / "nodemailer").is_dir():
        return None, "nodemailer missing in bench/node_modules (tools/bootstrap.sh --bench)"
    return node, ""


def run_sender(cmd, timeout, workdir):
    """Run one sender under /usr/bin/time (support.procs.run_timed); returns (Process, rc,
    wall, user, sys, rss_kb) of the sender alone."""
    p, rc, wall, usage = procs.run_timed(cmd, timeout, workdir=workdir)
    return p, rc, wall, usage["user"], usage["sys"], usage["maxrss_kb"]


HANDSHAKE_RE = re.compile(r"SSL_accept:SSLv3/TLS read client hello")
FULL_RE = re.compile(r"SSL_accept:SSLv3/TLS write certificate")
ESTABLISHED_RE = re.compile(r"TLS connection (established|reused) from")


def tls_stats(text):
    hs = len(HANDSHAKE_RE.findall(text))
    full = len(FULL_RE.findall(text))
    est = len(ESTABLISHED_RE.findall(text))
    return {"handshakes": hs, "full": full, "resumed": max(0, hs - full), "established": est}


class Bench:
    def __init__(self, args, binary, help_text, node, workdir):
        self.args = args
        self.binary = binary
        self.help = help_text
        self.node = node
        self.workdir = workdir
        self.certs = Path(workdir) / "certs"
        subprocess.run(["bash", str(ROOT / "tools" / "make_test_certs.sh"), str(self.certs)],
                       check=True, capture_output=True)
        self.files = make_list.generate(os.path.join(workdir, "in"), args.count, args.size)
        self.pf = None

    def log_offset(self):
        try:
            return self.pf.maillog.stat().st_size
        except OSError:
            return 0

    def log_since(self, off):
        with open(self.pf.maillog, "rb") as f:
            f.seek(off)
            return f.read().decode("utf-8", "replace")

    def smtpblast_cmd(self, task, resume):
        a = self.args
        cmd = [self.binary, "send", "--task", task, "--template", self.files["template"],
               "--relay", self.pf.hostport, "--tls", "starttls", "--ca-file",
               self.certs / "ca.pem", "--connections", str(a.connections),
               "--per-connection", str(a.per_connection), "--from", SENDER]
        if not resume:
            cmd.append("--no-tls-resumption")
        return cmd

    def node_cmd(self, resume):
        a = self.args
        cmd = [self.node, NODE_SCRIPT, "--host", self.pf.address, "--port", str(self.pf.port),
               "--count", str(a.count), "--connections", str(a.connections),
               "--max-messages", str(a.per_connection), "--ca", self.certs / "ca.pem",
               "--message", self.files["rendered"], "--from", SENDER]
        if resume:
            cmd.append("--resume")
        return cmd

    def wait_delivered(self, target, timeout=120.0):
        deadline = time.monotonic() + timeout
        got = self.pf.delivered_count()
        while got < target and time.monotonic() < deadline:
            time.sleep(0.2)
            got = self.pf.delivered_count()
        return got

    def one_run(self, sender, resume, run_id):
        a = self.args
        res = {"sender": sender, "resume": resume, "run": run_id, "ok": False}
        if sender == "smtpblast":
            task = os.path.join(self.workdir, f"task-{run_id}-{int(resume)}.db")
            subprocess.run([self.binary, "import", "--task", task, "--recipients",
                            self.files["recipients"]], check=True, capture_output=True)
            cmd = self.smtpblast_cmd(task, resume)
        else:
            cmd = self.node_cmd(resume)
        res["cmd"] = [str(c) for c in cmd]
        before = self.pf.delivered_count()
        off = self.log_offset()
        p, rc, wall, user, sys_, rss = run_sender(cmd, max(600.0, a.count / 20.0),
                                                  self.workdir)
        delivered = self.wait_delivered(before + a.count) - before
        stats = tls_stats(self.log_since(off))
        res.update(rc=rc, wall=wall, user=user, sys=sys_, maxrss_kb=rss, delivered=delivered,
                   msgs_per_s=a.count / wall if wall > 0 else float("nan"),
                   cpu_per_1000=(user + sys_) / a.count * 1000.0, **stats)
        if sender == "nodemailer":
            try:
                res["client"] = json.loads(p.stdout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                res["client"] = None
        res["ok"] = rc == 0 and delivered >= a.count
        if not res["ok"]:
            res["error"] = (f"rc={rc}, Postfix delivered {delivered} of {a.count}\n"
                            f"stdout: {p.stdout[-1500:]}\nstderr: {p.stderr[-1500:]}")
        return res

    def run(self, senders, modes, combos):
        a = self.args
        log(f"- messages: {a.count:,} per run, {self.files['rendered_bytes']:,} bytes each on "
            f"the wire, {a.connections} connections, {a.per_connection} messages per "
            f"connection (→ {a.count // a.per_connection} TLS handshakes per run), "
            f"{a.repeat} repeats")
        results = []
        main = {"smtpd_tls_loglevel": "2"}
        with peers.PostfixInstance(discard=True, tls_cert=self.certs / "server.pem",
                                   tls_key=self.certs / "server.key", starttls=True,
                                   main=main) as pf:
            self.pf = pf
            log(f"- Postfix: `postfix -c {pf.config_dir} start` (discard:, STARTTLS "
                f"smtpd_tls_security_level=may, TLS session tickets on, loglevel 2), "
                f"listening on {pf.hostport}")
            log("")
            for r in range(1, a.repeat + 1):
                order = combos if r % 2 == 1 else list(reversed(combos))
                for sender, resume in order:
                    res = self.one_run(sender, resume, r)
                    results.append(res)
                    state = "ok" if res["ok"] else "FAILED"
                    log(f"  run {r} {sender:<10} resumption={'on ' if resume else 'off'} "
                        f"{state}: {fmt(res['msgs_per_s'], ',.0f')} msgs/s, CPU "
                        f"{fmt(res['cpu_per_1000'], '.4f')} s/1000 msgs, handshakes "
                        f"{res['handshakes']} ({res['resumed']} resumed)")
                    if not res["ok"]:
                        log("    " + res["error"].replace("\n", "\n    "))
        self.report(results, senders, modes)
        return 0 if all(x["ok"] for x in results) else 1

    def report(self, results, senders, modes):
        a = self.args
        log("")
        log("Commands (PORT and temp paths vary):")
        seen = set()
        for x in results:
            key = (x["sender"], x["resume"])
            if key not in seen:
                seen.add(key)
                log(f"- {x['sender']}, resumption {'on' if x['resume'] else 'off'}: "
                    f"`{q(x['cmd'])}`")
        log("")
        log("Raw runs:")
        log("")
        log("| sender | resumption | run | rc | wall s | msgs/s | user s | sys s | "
            "CPU s / 1000 msgs | max RSS KB | TLS handshakes | resumed | delivered |")
        log("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for x in results:
            log(f"| {x['sender']} | {'on' if x['resume'] else 'off'} | {x['run']} | {x['rc']} | "
                f"{fmt(x['wall'], '.2f')} | {fmt(x['msgs_per_s'], ',.0f')} | "
                f"{fmt(x['user'], '.2f')} | {fmt(x['sys'], '.2f')} | "
                f"{fmt(x['cpu_per_1000'], '.4f')} | {fmt(x['maxrss_kb'], 'd')} | "
                f"{x['handshakes']} | {x['resumed']} | {x['delivered']} |")
        log("")
        log(f"Medians of {a.repeat} runs (successful runs only):")
        log("")
        log("| sender | resumption | msgs/s | CPU s / 1000 msgs | resumed handshakes |")
        log("|---|---|---:|---:|---:|")
        med = {}
        for s in senders:
            for m in modes:
                ok = [x for x in results if x["sender"] == s and x["resume"] == m and x["ok"]]
                if not ok:
                    log(f"| {s} | {'on' if m else 'off'} | - | - | - |")
                    continue
                v = (statistics.median(x["msgs_per_s"] for x in ok),
                     statistics.median(x["cpu_per_1000"] for x in ok),
                     statistics.median(x["resumed"] for x in ok),
                     statistics.median(x["handshakes"] for x in ok))
                med[(s, m)] = v
                log(f"| {s} | {'on' if m else 'off'} | {v[0]:,.0f} | {v[1]:.4f} | "
                    f"{v[2]:.0f} of {v[3]:.0f} |")
        log("")
        for m in modes:
            x, y = med.get(("smtpblast", m)), med.get(("nodemailer", m))
            if x and y:
                log(f"Ratios, resumption {'on' if m else 'off'}: smtpblast / nodemailer "
                    f"msgs/s = {x[0] / y[0]:.2f}; CPU per 1000 msgs = {x[1] / y[1]:.3f} "
                    f"(below 1: smtpblast uses less CPU)")
        for s in senders:
            on, off = med.get((s, True)), med.get((s, False))
            if on and off:
                log(f"{s}: CPU per 1000 msgs with / without resumption = "
                    f"{on[1] / off[1]:.3f}")


def main():
    ap = argparse.ArgumentParser(description="smtpblast vs Nodemailer over STARTTLS")
    ap.add_argument("-n", "--count", type=int, default=20000, help="messages per run")
    ap.add_argument("-r", "--repeat", type=int, default=3)
    ap.add_argument("-c", "--connections", type=int, default=10)
    ap.add_argument("--per-connection", type=int, default=100,
                    help="messages per connection (smtpblast --per-connection, Nodemailer "
                         "maxMessages)")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--senders", default="smtpblast,nodemailer")
    ap.add_argument("--resumption", default="on,off", help="comma list of on, off")
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    senders = [s.strip() for s in args.senders.split(",") if s.strip()]
    modes = [m.strip() == "on" for m in args.resumption.split(",") if m.strip()]

    if os.geteuid() != 0:
        sys.exit("run as root (private Postfix instance)")
    binary = peers.smtpblast_binary()
    help_text, why = smtpblast_flags(binary)
    node, why_node = node_usable()
    info = machine_info()
    log(f"## bench_tls — {info['date']}")
    log("")
    log(f"- machine: nproc={info['nproc']}, CPU: {info['cpu']}, kernel {info['kernel']}")
    log(f"- smtpblast: {binary or '(none)'} at git {git_rev()}")
    if node:
        ver = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
        try:
            nm = json.loads((HERE / "node_modules" / "nodemailer" / "package.json")
                            .read_text())["version"]
        except (OSError, ValueError, KeyError):
            nm = "?"
        log(f"- nodemailer {nm} on node {ver}")
    log(f"- command: `bench/bench_tls.sh {' '.join(shlex.quote(a) for a in sys.argv[1:])}`")
    if "smtpblast" in senders:
        if not help_text or "--tls" not in help_text:
            log(f"- SKIPPED smtpblast: {why or 'send --help lists no --tls (CLI not there yet)'}")
            senders.remove("smtpblast")
        elif False in modes and "--no-tls-resumption" not in help_text:
            log("- smtpblast without resumption SKIPPED: send --help lists no "
                "--no-tls-resumption yet")
    if "nodemailer" in senders and not node:
        log(f"- SKIPPED nodemailer: {why_node}")
        senders.remove("nodemailer")
    if not senders:
        log("nothing to run")
        return 1

    workdir = tempfile.mkdtemp(prefix="sb-bench-tls-")
    os.chmod(workdir, 0o755)
    try:
        b = Bench(args, binary, help_text, node, workdir)
        combos = [(sn, m) for sn in senders for m in modes
                  if not (sn == "smtpblast" and not m
                          and "--no-tls-resumption" not in help_text)]
        return b.run(senders, modes, combos)
    finally:
        if args.keep:
            log(f"(work dir kept: {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
