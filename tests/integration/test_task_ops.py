#!/usr/bin/python3
"""Issue 4, P3-P7: --suppress, --limit, reset, --reset-errors-after, status --failed,
export, --accounting, --backup-dir, --pickup, and a store write error (file-size limit).

Run: /usr/bin/python3 tests/integration/test_task_ops.py  (as root; see blast.py)
"""

import collections
import csv as csvmod
import io
import json
import shutil
import subprocess
import unittest

from support import blast, peers

TEMPLATE = (b"From: Blast <sender@example.test>\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}},\n"
            b".dot line\n")


def accepted(sink):
    return collections.Counter(r for m in sink.records() for r in m.rcpts)


class TaskOpsTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def csv(self, n, prefix="u", domain="example.test"):
        return blast.write_csv(self.dir / f"{prefix}.csv", ("email", "name"),
                               [(f"{prefix}{i:04d}@{domain}", f"N{i}, \"q\"") for i in range(n)])

    def test_suppress(self):
        rows = [(f"s{i:03d}@example.test", "x") for i in range(50)]
        rows += [(f"d{i:03d}@blocked.test", "y") for i in range(10)]
        rows += [("keep@sub.blocked.test", "z")]
        csv = blast.write_csv(self.dir / "s.csv", ("email", "name"), rows)
        sup = self.dir / "sup.txt"
        sup.write_text("# list\nS001@example.test\n  s002@example.test \n@blocked.test\n\n")
        bad = self.dir / "bad.txt"
        bad.write_text("a@b.test\nfoo\n")
        task = self.dir / "s.db"
        with blast.BlastSink() as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--suppress", sup,
                           "--suppress", bad)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("bad.txt line 2", p.stderr)
            self.assertFalse(task.exists(), "nothing may happen before the lists load")
            p = blast.send(task, self.tpl, sink.hostport, csv, "--suppress", sup,
                           "--connections", "2")
            self.assertEqual(p.returncode, 0, blast.describe(p))
        got = accepted(sink)
        suppressed = {"s001@example.test", "s002@example.test"} | {
            f"d{i:03d}@blocked.test" for i in range(10)}
        self.assertEqual(set(got) & suppressed, set())
        self.assertEqual(len(got), 61 - 12)
        st = blast.status(task)
        self.assertEqual((st["sent"], st["suppressed"], st["in_flight"]), (49, 12, 0), st)
        rows = blast.db_rows(task)
        self.assertEqual({a for a, r in rows.items() if r["status"] == "suppressed"}, suppressed)

    def test_limit_then_rest(self):
        csv = self.csv(200, "l")
        task = self.dir / "l.db"
        with blast.BlastSink() as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--limit", "50",
                           "--connections", "4", "--workers", "2")
            self.assertEqual(p.returncode, 3, blast.describe(p))  # stopped by --limit
            self.assertIn("--limit 50 reached", p.stderr)
            st = blast.status(task)
            self.assertEqual((st["sent"], st["unsent"], st["in_flight"]), (50, 150, 0), st)
            self.assertEqual(sum(accepted(sink).values()), 50)
            p = blast.send(task, self.tpl, sink.hostport, None, "--connections", "4")
            self.assertEqual(p.returncode, 0, blast.describe(p))
        got = accepted(sink)
        self.assertEqual(len(got), 200)
        self.assertTrue(all(n == 1 for n in got.values()))

    def test_reset_status_export(self):
        csv = self.csv(300, "r")
        task = self.dir / "r.db"
        with blast.BlastSink("--reject-rcpt", "0.2", "--defer-rcpt", "0.1", "--seed", "7") as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--max-attempts", "1",
                           "--connections", "2")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        st = blast.status(task)
        self.assertGreater(st["failed"], 0, st)
        self.assertGreater(st["deferred"], 0, st)
        rows = blast.db_rows(task)
        failed = {a for a, r in rows.items() if r["status"] == "failed"}
        deferred = {a for a, r in rows.items() if r["status"] == "deferred"}

        # status --failed / --deferred
        s = peers.run([blast.BIN, "status", "--task", str(task), "--failed", "--deferred"],
                      timeout=30)
        self.assertEqual(s.returncode, 0, s.stderr)
        self.assertIn(f"failed ({len(failed)}):", s.stdout)
        self.assertIn(f"deferred ({len(deferred)}):", s.stdout)
        for a in failed:
            self.assertRegex(s.stdout, rf"\n  {a}  550  .*5\.1\.1")
        for a in deferred:
            self.assertIn(f"\n  {a}  451  ", s.stdout)

        # export: RFC 4180 with the merge fields (a comma and quotes in `name`)
        e = subprocess.run([blast.BIN, "export", "--task", str(task), "--status", "failed"],
                           capture_output=True, timeout=30)
        self.assertEqual(e.returncode, 0, e.stderr)
        self.assertTrue(e.stdout.startswith(b"email,name,status,code,reply\r\n"), e.stdout[:80])
        recs = list(csvmod.DictReader(io.StringIO(e.stdout.decode(), newline="")))
        self.assertEqual({r["email"] for r in recs}, failed)
        for r in recs:
            n = int(r["email"][1:5])
            self.assertEqual(r["name"], f"N{n}, \"q\"")
            self.assertEqual((r["status"], r["code"]), ("failed", "550"))
            self.assertIn("5.1.1", r["reply"])
        bad = peers.run([blast.BIN, "export", "--task", str(task), "--status", "bogus"],
                        timeout=30)
        self.assertEqual(bad.returncode, 2)

        # reset --errors, then --reset-errors-after, then reset --all
        r = peers.run([blast.BIN, "reset", "--task", str(task), "--errors"], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        st2 = blast.status(task)
        self.assertEqual((st2["failed"], st2["deferred"], st2["unsent"]),
                         (0, 0, len(failed) + len(deferred)), st2)
        with blast.BlastSink("--reject-rcpt", "1") as sink:
            p = blast.send(task, self.tpl, sink.hostport, None, "--reset-errors-after")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("--reset-errors-after", p.stderr)
        st3 = blast.status(task)
        self.assertEqual((st3["failed"], st3["unsent"]), (0, len(failed) + len(deferred)), st3)
        r = peers.run([blast.BIN, "reset", "--task", str(task), "--all"], timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(blast.status(task)["unsent"], 300)
        r = peers.run([blast.BIN, "reset", "--task", str(task)], timeout=30)
        self.assertEqual(r.returncode, 2)

    def test_accounting(self):
        csv = self.csv(200, "a")
        task = self.dir / "a.db"
        log = self.dir / "acct.jsonl"
        clog = self.dir / "acct.csv"
        with blast.BlastSink("--defer-rcpt", "0.2", "--reject-rcpt", "0.1", "--seed", "3") as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--accounting", log,
                           "--max-attempts", "2", "--retry-delay", "50ms", "--connections", "3")
            port = sink.port
        self.assertEqual(p.returncode, 1, blast.describe(p))
        lines = [json.loads(l) for l in log.read_text().splitlines()]
        rows = blast.db_rows(task)
        self.assertEqual(len(lines), sum(r["attempts"] for r in rows.values()))
        per = collections.defaultdict(list)
        for l in lines:
            per[l["recipient"]].append(l)
            self.assertEqual((l["remote_host"], l["remote_port"], l["tls_version"]),
                             ("127.0.0.1", port, ""), l)
            self.assertGreater(l["connection_id"], 0)
            self.assertGreaterEqual(l["elapsed_ms"], 0)
            self.assertRegex(l["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        self.assertEqual(len({l["connection_id"] for l in lines}) >= 3, True)
        for addr, r in rows.items():
            ls = per[addr]
            self.assertEqual([l["attempt"] for l in ls], list(range(1, r["attempts"] + 1)))
            self.assertEqual(ls[-1]["status"], r["status"])
            self.assertEqual(ls[-1]["code"], r["code"])
        # CSV: header once, one line per attempt
        r2 = peers.run([blast.BIN, "reset", "--task", str(task), "--errors"], timeout=30)
        self.assertEqual(r2.returncode, 0)
        with blast.BlastSink() as sink:
            p = blast.send(task, self.tpl, sink.hostport, None, "--accounting", clog)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        recs = list(csvmod.DictReader(io.StringIO(clog.read_text(), newline="")))
        self.assertEqual(len(recs), sum(accepted(sink).values()))
        self.assertTrue(all(r["status"] == "sent" and r["code"] == "250" for r in recs))
        bad = blast.send(task, self.tpl, "127.0.0.1:1", None, "--accounting", self.dir / "x.txt")
        self.assertEqual(bad.returncode, 2, blast.describe(bad))

    def test_backup_dir(self):
        csv = self.csv(30, "b")
        task = self.dir / "b.db"
        bdir = self.dir / "backup"
        p = blast.send(task, self.tpl, "127.0.0.1:1", csv, "--backup-dir", bdir)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--backup-dir", p.stderr)
        bdir.mkdir()
        with blast.BlastSink("--reject-rcpt", "0.2", "--seed", "1") as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--backup-dir", bdir,
                           "--backup-name", "{{task_title}}-{{name}}-{{recipient}}.eml",
                           "--title", "March", "--no-chunking", "--max-attempts", "1")
        got = accepted(sink)
        files = sorted(bdir.iterdir())
        self.assertEqual(len(files), len(got), (files, blast.describe(p)))
        by_to = {}
        for f in files:
            self.assertTrue(f.name.startswith("March-N"), f.name)
            body = f.read_bytes()
            self.assertIn(b"\r\n.dot line\r\n", body)  # not dot-stuffed
            to = [l for l in body.split(b"\r\n") if l.startswith(b"To:")][0]
            by_to[to.decode().split("<")[-1].rstrip(">").split()[-1]] = body
        self.assertEqual(set(by_to), set(got))
        # the backup equals what the relay got (modulo dot-stuffing)
        for m in sink.records():
            self.assertEqual(by_to[m.rcpts[0]], m.body)

    def test_pickup(self):
        csv = self.csv(40, "p")
        task = self.dir / "p.db"
        pdir = self.dir / "pickup"
        pdir.mkdir()
        p = blast.send(task, self.tpl, None, csv, "--pickup", pdir, "--limit", "15")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertEqual(len(list(pdir.iterdir())), 15)
        p = blast.send(task, self.tpl, None, None, "--pickup", pdir)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        files = list(pdir.iterdir())
        self.assertEqual(len(files), 40)
        self.assertTrue(all(f.suffix == ".eml" and not f.name.startswith(".") for f in files))
        body = files[0].read_bytes()
        self.assertIn(b"\r\n.dot line\r\n", body)
        st = blast.status(task)
        self.assertEqual((st["sent"], st["in_flight"]), (40, 0), st)
        p = blast.send(task, self.tpl, "127.0.0.1:25", None, "--pickup", pdir)
        self.assertEqual(p.returncode, 2)

    def test_store_write_error_then_resume(self):
        n = 3000
        csv = self.csv(n, "f")
        task = self.dir / "f.db"
        imp = peers.run([blast.BIN, "import", "--task", str(task), "--recipients", str(csv)],
                        timeout=30)
        self.assertEqual(imp.returncode, 0, imp.stderr)
        if shutil.which("prlimit") is None:
            self.skipTest("prlimit missing")
        size = task.stat().st_size
        with blast.BlastSink("--delay-ms", "2") as sink:
            args = [blast.BIN, "send", "--tls", "none", "--task", str(task), "--template",
                    str(self.tpl), "--relay", sink.hostport, "--connections", "2"]
            # The WAL may grow by 64 KiB: the first few commits fit, then writes fail.
            p = peers.run(["prlimit", f"--fsize={size + 65536}", "--", *args], timeout=60)
            self.assertNotEqual(p.returncode, 0, blast.describe(p))
            self.assertNotIn("File size limit exceeded", p.stderr)
            # Claims write one row a batch now, so the first write to fail is usually an
            # outcome commit ("cannot record outcomes"), not a claim ("run stopped").
            self.assertRegex(p.stderr,
                             r"(run stopped|cannot record outcomes): .*"
                             r"(task store|claim|disk|full|large)", blast.describe(p))
            mid = blast.status(task)
            self.assertLess(mid["sent"], n, mid)
            sent_mid = {a for a, r in blast.db_rows(task).items() if r["status"] == "sent"}
            p2 = blast.send(task, self.tpl, sink.hostport, None, "--connections", "2")
            self.assertEqual(p2.returncode, 0, blast.describe(p2))
        got = accepted(sink)
        self.assertEqual(set(got), {f"f{i:04d}@example.test" for i in range(n)})
        again = {a for a, c in got.items() if c > 1}
        self.assertEqual(again & sent_mid, set(), "recorded as sent, sent again")
        self.assertEqual(blast.status(task)["sent"], n)


if __name__ == "__main__":
    blast.main("test_task_ops")
