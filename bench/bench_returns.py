#!/usr/bin/python3
"""Issue 14 measurement: `smtpblast returns` over N returned messages in a maildir.

Sends a task of N recipients through the built-in sink (with --return-path, so the task has
its VERP key), writes N returns made from tests/returns/fixtures (cycled; each with the real
VERP address / Message-ID / address of one recipient), then times `returns --maildir` with
/usr/bin/time: elapsed, messages/s, user+sys CPU, peak RSS. Then a second run (every message
left in the maildir is one already processed).

    /usr/bin/python3 bench/bench_returns.py [-n 100000] [-r 3]
"""

import argparse
import hashlib
import hmac
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The helpers are the integration tests' package, tests/support.
sys.path.insert(0, str(ROOT / "tests"))
from support import blast  # noqa: E402

FIXTURES = ROOT / "tests" / "returns" / "fixtures"
VERP_RE = re.compile(rb"bounces\+(\d+)-([0-9a-f]{10})@bounce\.example\.com")
MSGID_RE = re.compile(rb"0123456789abcdef\.(\d+)@example\.com")
ADDR = {"postfix_user_unknown.eml": b"alice@example.net", "gmail_nonexistent.eml":
        b"dave@gmail.com", "exim_mailbox_full.eml": b"bob@example.org",
        "arf_complaint.eml": b"grace@example.com", "qmail_no_mailbox.eml": b"frank@example.info",
        "spam_block.eml": b"mallory@example.org", "m365_recipient_not_found.eml":
        b"carol@contoso.com", "yahoo_no_account.eml": b"erin@yahoo.com",
        "dsn_truncated_headers.eml": b"judy@example.net", "postfix_delayed.eml":
        b"leo@example.net", "bad_utf8_diagnostic.eml": b"olga@example.net"}


def timed(args):
    p = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", *args], capture_output=True)
    if p.returncode != 0:
        sys.exit(p.stderr.decode(errors="replace"))
    e, u, s, rss = p.stderr.decode().strip().splitlines()[-1].split()
    return float(e), float(u) + float(s), int(rss)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("-r", type=int, default=3)
    a = ap.parse_args()
    fixtures = sorted(FIXTURES.glob("*.eml"))
    tpl_bytes = [(f.name, f.read_bytes()) for f in fixtures]
    runs = []
    for rep in range(a.r):
        d = Path(tempfile.mkdtemp(prefix="sb-bench-returns-"))
        try:
            tpl = d / "m.eml"
            tpl.write_bytes(b"From: News <news@example.test>\nSubject: hi\n\nHello\n")
            csv = blast.write_csv(d / "l.csv", ("email",), [(f"u{i}@example.test",)
                                                            for i in range(a.n)])
            task = d / "t.db"
            with blast.BlastSink(record=False) as sink:
                p = blast.send(task, tpl, sink.hostport, csv, "--connections", "4",
                               "--return-path", "bounces+{{id}}@bounce.example.com",
                               timeout=1200)
                if p.returncode != 0:
                    sys.exit(blast.describe(p))
            con = sqlite3.connect(str(task))
            meta = dict(con.execute("SELECT key, value FROM meta"))
            rows = con.execute("SELECT id, email FROM recipients ORDER BY id").fetchall()
            con.close()
            tk, vk = meta["task_key"].encode(), meta["returns.verp_key"].encode()
            md = d / "Maildir"
            for sub in ("new", "cur", "tmp"):
                (md / sub).mkdir(parents=True)
            for i, (rid, email) in enumerate(rows):
                name, data = tpl_bytes[i % len(tpl_bytes)]
                mac = hmac.new(vk, tk + b".%d" % rid, hashlib.sha256).hexdigest()[:10].encode()
                if name != "forged_bad_hmac.eml":
                    data = VERP_RE.sub(b"bounces+%d-%s@bounce.example.com" % (rid, mac), data)
                if name != "other_task.eml":
                    data = MSGID_RE.sub(tk + b".%d@example.test" % rid, data)
                if name in ADDR:
                    data = data.replace(ADDR[name], email.encode())
                (md / "new" / f"{1772400000 + i}.M{i}P1.bench").write_bytes(data)
            args = [blast.BIN, "returns", "--task", str(task), "--maildir", str(md)]
            e1, c1, r1 = timed(args)
            left = len(os.listdir(md / "new"))
            e2, c2, r2 = timed(args)
            runs.append((e1, c1, r1, left, e2, c2, r2))
            print(f"run {rep + 1}: first {a.n} msgs {e1:.2f} s = {a.n / e1:,.0f} msgs/s, "
                  f"CPU {c1:.2f} s, peak RSS {r1 / 1024:.1f} MiB; {left} left; second run "
                  f"{e2:.2f} s = {left / e2 if e2 else 0:,.0f} msgs/s, peak RSS {r2 / 1024:.1f} "
                  f"MiB", flush=True)
        finally:
            shutil.rmtree(d, ignore_errors=True)
    med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
    print(f"median: {a.n / med(0):,.0f} msgs/s, CPU {med(1) * 1000 / a.n:.3f} s per 1000, "
          f"peak RSS {med(2) / 1024:.1f} MiB; second run {med(3) / med(4):,.0f} msgs/s")


if __name__ == "__main__":
    main()
