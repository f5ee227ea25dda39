#!/usr/bin/python3
"""SMS mailing throughput into the SMSC simulator (issue 19): `smtpblast sms send` at SMPP
window 1, 10 and 100 (one bind), msgs/s and the sender's CPU per message, with the
simulator's own CPU beside it (it is Node, and shares the 2 cores).

    bench/bench_sms.py [-n 5000] [-r 3] [--windows 1,10,100]

Each run: a fresh task (the import is done first by `sms import`, not timed), a fresh
simulator; `sms send` timed end to end; the sender's user+sys from wait4; the simulator's
utime+stime from /proc/PID/stat before and after. Medians of -r runs. Loopback only.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support import smsc  # noqa: E402

BIN = os.environ.get("SMTPBLAST") or str(ROOT / "build" / "bin" / "smtpblast")
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK


def one(n: int, window: int, d: Path) -> dict:
    csv = d / "l.csv"
    if not csv.exists():
        with open(csv, "w") as f:
            f.write("phone,name\n")
            for i in range(n):
                f.write(f"+4474001{i:05d},N{i}\n")
    (d / "m.txt").write_text("Hello {{name}}, your code is 1234\n")
    task = d / f"t{window}-{time.monotonic_ns()}.db"
    r = subprocess.run([BIN, "sms", "import", "--task", task, "--recipients", csv],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    pw = d / "pw"
    pw.write_text("pw\n")
    os.chmod(pw, 0o600)
    with smsc.Smsc(system_id="sb", password="pw") as sim:
        conf = d / "p.toml"
        conf.write_text(f'[provider.sim]\ntype = "smpp"\nhost = "127.0.0.1"\nport = {sim.port}\n'
                        f'system_id = "sb"\npassword_file = "{pw}"\nfrom = "Shop"\n'
                        f'window = {window}\n')
        os.chmod(conf, 0o600)
        c0 = proc_cpu(sim.proc.pid)
        t0 = time.monotonic()
        p = subprocess.Popen([BIN, "sms", "send", "--task", task, "--template", d / "m.txt",
                              "--provider", "sim", "--provider-config", conf,
                              "--progress", "none"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        _, _, ru = os.wait4(p.pid, 0)
        wall = time.monotonic() - t0
        out = p.stdout.read()
        c1 = proc_cpu(sim.proc.pid)
        acc = len(sim.accepted())
    assert acc == n, f"{acc} of {n} accepted\n{out}"
    cpu = ru.ru_utime + ru.ru_stime
    return {"msgs_s": n / wall, "cpu_ms_per_msg": cpu * 1000 / n,
            "sim_cpu_ms_per_msg": (c1 - c0) * 1000 / n}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=5000)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--windows", default="1,10,100")
    a = ap.parse_args()
    print(f"sms send, {a.n} messages, one bind, medians of {a.r} runs")
    print("| window | msgs/s | sender CPU ms/msg | simulator CPU ms/msg |")
    print("|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="sb-bench-sms-") as td:
        d = Path(td)
        for w in [int(x) for x in a.windows.split(",")]:
            runs = [one(a.n, w, d) for _ in range(a.r)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            raw = "; ".join(f"{r['msgs_s']:.0f}/s {r['cpu_ms_per_msg']:.3f}" for r in runs)
            print(f"| {w} | {med['msgs_s']:,.0f} | {med['cpu_ms_per_msg']:.3f} | "
                  f"{med['sim_cpu_ms_per_msg']:.3f} |   raw: {raw}")


if __name__ == "__main__":
    main()
