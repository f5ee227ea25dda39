#!/usr/bin/python3
"""Issue 18 (secrets, files and output; input and task edge cases) and issue 12 (CSV
encodings and delimiters, import --append, export --status lists), end to end against the
built-in sink on loopback. Each test names the defect it guards; each failed before its fix.

Run: /usr/bin/python3 tests/integration/test_input_store.py  (as root; see blast.py)
"""

import csv as csvmod
import email
import email.policy
import io
import os
import sqlite3
import stat
import subprocess
import unittest

from support import blast, peers

TEMPLATE = (b"From: Blast <sender@example.test>\n"
            b"Subject: Hello\n"
            b"\n"
            b"Hello {{name}},\n"
            b"bye\n")

ROWS = [(f"r{i:03d}@example.test", f"N{i}") for i in range(10)]


def run(*args, timeout=60, **kw):
    return peers.run([blast.BIN, *[str(a) for a in args]], timeout=timeout, **kw)



def decoded_text(raw: bytes) -> str:
    """The message's text as a reader sees it (bodies go out quoted-printable)."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return msg.get_body(preferencelist=("plain",)).get_content()

class InputStoreTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.csv = blast.write_csv(self.dir / "r.csv", ("email", "name"), ROWS)
        self.task = self.dir / "t.db"

    def tearDown(self):
        self.wd.cleanup()

    def send(self, sink, *extra, recipients="csv", task=None, template=None):
        recipients = self.csv if recipients == "csv" else recipients
        return blast.send(task or self.task, template or self.tpl, sink.hostport, recipients,
                          *extra)

    def assert_nothing_sent(self, sink):
        sink.stop()
        self.assertEqual(sink.counters["messages"], 0, sink.counters)

    # -- CSV input --------------------------------------------------------------------

    def test_unterminated_quote_is_an_error_naming_the_line(self):
        bad = self.dir / "open.csv"
        bad.write_bytes(b"email,name\r\na@example.test,A\r\nb@example.test,\"open\r\n"
                        b"c@example.test,C\r\n")
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=bad)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("line 3: a quoted field starts on this line and is never closed",
                          p.stderr)
            self.assert_nothing_sent(sink)
        # The task holds no list: the corrected file is imported by the next run.
        with blast.BlastSink() as sink:
            p = self.send(sink)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(blast.status(self.task)["sent"], len(ROWS))

    def test_latin1_and_cp1252_encodings(self):
        latin = self.dir / "latin.csv"
        latin.write_bytes("email,name\r\na@example.test,José Müller\r\n".encode("latin-1"))
        # Undeclared: an error naming line and column, never sent as charset=utf-8.
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=latin)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("line 2, column 19: octet 0xE9 is not valid UTF-8", p.stderr)
            self.assertIn("--csv-encoding", p.stderr)
            self.assert_nothing_sent(sink)
        with blast.BlastSink() as sink:
            p = self.send(sink, "--csv-encoding", "latin1", recipients=latin)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        [m] = sink.records()
        self.assertIn("Hello José Müller,", decoded_text(m.body))
        # cp1252: € and curly quotes; 0x81 has no character there.
        cp = self.dir / "cp.csv"
        cp.write_bytes("email;name\r\nb@example.test;“5 €”\r\n".encode("cp1252"))
        task2 = self.dir / "t2.db"
        with blast.BlastSink() as sink:
            p = self.send(sink, "--csv-encoding", "cp1252", "--csv-delimiter", ";",
                          recipients=cp, task=task2)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        [m] = sink.records()
        self.assertIn("Hello “5 €”,", decoded_text(m.body))
        cp.write_bytes(b"email,name\r\nc@example.test,x\x81y\r\n")
        p = run("import", "--task", self.dir / "t3.db", "--recipients", cp,
                "--csv-encoding", "cp1252")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("line 2, column 17: octet 0x81 is not valid cp1252", p.stderr)
        self.assertFalse((self.dir / "t3.db").exists())  # a refused list leaves no task
        p = run("import", "--task", self.dir / "t4.db", "--recipients", cp,
                "--csv-encoding", "klingon")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--csv-encoding: 'klingon'", p.stderr)
        self.assertFalse((self.dir / "t4.db").exists())

    def test_short_row_fails_only_that_recipient(self):
        csvf = self.dir / "short.csv"
        csvf.write_bytes(b"email,name,city\r\na@example.test,A,Oslo\r\nb@example.test,B\r\n"
                         b"c@example.test,C,Rome\r\n")
        tpl = self.dir / "c.eml"
        tpl.write_bytes(TEMPLATE.replace(b"bye", b"from {{city}}"))
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=csvf, template=tpl)
            self.assertEqual(p.returncode, 1, blast.describe(p))
            self.assertIn("line 3: 2 fields, header has 3", p.stderr)
        self.assertEqual(sorted(r for m in sink.records() for r in m.rcpts),
                         ["a@example.test", "c@example.test"])
        rows = blast.db_rows(self.task)
        self.assertEqual(rows["b@example.test"]["status"], "failed")
        self.assertEqual(rows["b@example.test"]["reply"], "bad row: 2 fields, header has 3")

    # -- the first run's list ---------------------------------------------------------

    def test_run_failing_at_start_leaves_no_list(self):
        wrong = blast.write_csv(self.dir / "wrong.csv", ("email", "name"),
                                [("wrong@example.test", "W")])
        # A bad flag found late (an unknown --backup-name variable; an unknown template field).
        with blast.BlastSink() as sink:
            p = self.send(sink, "--backup-dir", self.dir, "--backup-name", "{{nope}}.eml",
                          recipients=wrong)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("--backup-name", p.stderr)
            bad_tpl = self.dir / "bad.eml"
            bad_tpl.write_bytes(TEMPLATE.replace(b"{{name}}", b"{{nosuch}}"))
            p = self.send(sink, recipients=wrong, template=bad_tpl)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assert_nothing_sent(sink)
        # Nor a task file: the run created it and it holds no list.
        self.assertFalse(self.task.exists())
        # The corrected list (and template) is what gets sent, without --force.
        with blast.BlastSink() as sink:
            p = self.send(sink)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertNotIn("not imported again", p.stderr)
        got = sorted(r for m in sink.records() for r in m.rcpts)
        self.assertEqual(got, sorted(a for a, _ in ROWS))

    def test_changed_list_gets_a_hint_and_import_replace(self):
        p = run("import", "--task", self.task, "--recipients", self.csv)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        other = blast.write_csv(self.dir / "other.csv", ("email", "name"),
                                [("x@example.test", "X"), ("y@example.test", "Y")])
        # The same file: a plain note. Another file: how to use it. (A bad --backup-name
        # stops each run after the note, before anything is attempted.)
        stop = ("--backup-dir", self.dir, "--backup-name", "{{nope}}")
        with blast.BlastSink() as sink:
            p = self.send(sink, *stop)
            self.assertIn("not imported again", p.stderr)
            self.assertNotIn("--replace", p.stderr)
            p = self.send(sink, *stop, recipients=other)
            self.assertIn("not imported again", p.stderr)
            self.assertIn(f"import --task {self.task} --recipients {other} --replace", p.stderr)
            self.assert_nothing_sent(sink)
        p = run("import", "--task", self.task, "--recipients", other)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--replace", p.stderr)
        p = run("import", "--task", self.task, "--recipients", other, "--replace")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn(f"replaced the list of {len(ROWS)} recipients; imported 2", p.stderr)
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=None)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(sorted(r for m in sink.records() for r in m.rcpts),
                         ["x@example.test", "y@example.test"])
        # Once anything was sent, the list stays.
        p = run("import", "--task", self.task, "--recipients", self.csv, "--replace")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("2 recipients were already sent to or attempted", p.stderr)

    def test_import_append_adds_late_subscribers(self):
        with blast.BlastSink() as sink:
            p = self.send(sink)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        more = blast.write_csv(self.dir / "more.csv", ("Name", "EMAIL"),
                               [(n, a) for a, n in ROWS] + [("Late", "late@example.test")])
        p = run("import", "--task", self.task, "--recipients", more, "--append")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn(f"added 1 recipients from {more}, {len(ROWS)} already in the task skipped",
                      p.stderr)
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=None)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        [m] = sink.records()
        self.assertEqual(m.rcpts, ["late@example.test"])
        self.assertIn(b"Hello Late,", m.body)
        st = blast.status(self.task)
        self.assertEqual((st["total"], st["sent"]), (len(ROWS) + 1, len(ROWS) + 1))
        wrong = blast.write_csv(self.dir / "wrong.csv", ("email", "nom"), [("z@example.test", "Z")])
        p = run("import", "--task", self.task, "--recipients", wrong, "--append")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("missing: 'name'; not in the task: 'nom'", p.stderr)

    # -- export -----------------------------------------------------------------------

    def test_export_round_trips_with_status_code_reply_columns(self):
        header = ("email", "name", "status", "Code", "reply")
        rows = [(f"e{i:03d}@example.test", f"N{i}, \"q\"", "vip", str(i), f" r{i}\t")
                for i in range(40)]
        src = self.dir / "cols.csv"
        with open(src, "w", encoding="utf-8", newline="") as f:
            w = csvmod.writer(f, lineterminator="\r\n", quoting=csvmod.QUOTE_ALL)
            w.writerow(header)  # quoted, so the blanks around " r0\t" are part of the value
            w.writerows(rows)
        with blast.BlastSink("--reject-rcpt", "0.4", "--defer-rcpt", "0.3", "--seed", "3") as sink:
            p = self.send(sink, "--max-attempts", "1", recipients=src)
            self.assertEqual(p.returncode, 1, blast.describe(p))
        db = blast.db_rows(self.task)
        want = {a for a, r in db.items() if r["status"] in ("failed", "deferred")}
        self.assertTrue(any(r["status"] == "failed" for r in db.values()))
        self.assertTrue(any(r["status"] == "deferred" for r in db.values()))
        e = subprocess.run([blast.BIN, "export", "--task", str(self.task), "--status",
                            "failed,deferred"], capture_output=True, timeout=30)
        self.assertEqual(e.returncode, 0, e.stderr)
        head = e.stdout.split(b"\r\n", 1)[0]
        self.assertEqual(head, b"email,name,status,Code,reply,smtpblast_status,smtpblast_code,"
                               b"smtpblast_reply")
        self.assertIn(b"smtpblast_status", e.stderr)
        recs = list(csvmod.DictReader(io.StringIO(e.stdout.decode(), newline="")))
        self.assertEqual({r["email"] for r in recs}, want)
        by_addr = {r[0]: r for r in rows}
        for r in recs:
            self.assertEqual((r["name"], r["status"], r["Code"], r["reply"]),
                             by_addr[r["email"]][1:])
            self.assertEqual(r["smtpblast_status"], db[r["email"]]["status"])
        # export -> import: the file is accepted and every merge value comes back.
        out = self.dir / "exported.csv"
        out.write_bytes(e.stdout)
        t2 = self.dir / "again.db"
        p = run("import", "--task", t2, "--recipients", out)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn(f"imported {len(want)} recipients", p.stderr)
        e2 = subprocess.run([blast.BIN, "export", "--task", str(t2), "--status", "unsent"],
                            capture_output=True, timeout=30)
        self.assertEqual(e2.returncode, 0, e2.stderr)
        recs2 = list(csvmod.DictReader(io.StringIO(e2.stdout.decode(), newline="")))
        self.assertEqual(len(recs2), len(want))
        for r in recs2:
            self.assertEqual((r["name"], r["status"], r["Code"], r["reply"]),
                             by_addr[r["email"]][1:])
        self.assertEqual(e2.stdout.split(b"\r\n", 1)[0],
                         b"email,name,status,Code,reply,smtpblast_status,smtpblast_code,"
                         b"smtpblast_reply,smtpblast_smtpblast_status,smtpblast_smtpblast_code,"
                         b"smtpblast_smtpblast_reply")
        bad = run("export", "--task", self.task, "--status", "failed,bogus")
        self.assertEqual(bad.returncode, 2)
        self.assertIn("'bogus'", bad.stderr)

    # -- status -----------------------------------------------------------------------

    def test_status_counts_unknown_values(self):
        p = run("import", "--task", self.task, "--recipients", self.csv)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        con = sqlite3.connect(self.task)
        con.execute("UPDATE recipients SET status = 17 WHERE id IN (1, 2)")
        con.commit()
        con.close()
        st = blast.status(self.task)
        self.assertEqual(st["total"], len(ROWS))
        self.assertEqual(st["unknown"], 2)
        self.assertEqual(sum(st[k] for k in blast.STATUS_KEYS[1:-1]) + st["unknown"], st["total"])
        p = run("status", "--task", self.task)
        self.assertRegex(p.stdout, r"\n  unknown\s+2 \(status values 17: ")
        # send leaves them alone and does not call the task done (exit 0 = every one sent).
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=None)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("2 with an unknown status", p.stderr)
        self.assertEqual(len(sink.records()), len(ROWS) - 2)

    def test_status_failed_escapes_control_characters(self):
        csvf = self.dir / "evil.csv"
        csvf.write_bytes(b'email,name\r\n"bad\r\n  forged@example.test  250  accepted",X\r\n'
                         b"ok@example.test,Y\r\n")
        with blast.BlastSink("--reject-rcpt", "1") as sink:
            p = self.send(sink, "--max-attempts", "1", recipients=csvf)
            self.assertEqual(p.returncode, 1, blast.describe(p))
        con = sqlite3.connect(self.task)
        con.execute("UPDATE recipients SET reply = 'no\r\n  evil@example.test  250  ok\x1b[2J' "
                    "WHERE email = 'ok@example.test'")
        con.commit()
        con.close()
        p = run("status", "--task", self.task, "--failed")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertNotIn("\r", p.stdout)
        self.assertNotIn("\x1b", p.stdout)
        lines = p.stdout.split("\n")
        self.assertFalse([ln for ln in lines if ln.lstrip().startswith("forged@")], p.stdout)
        self.assertFalse([ln for ln in lines if ln.lstrip().startswith("evil@")], p.stdout)
        self.assertIn("bad\\r\\n  forged@example.test  250  accepted", p.stdout)
        self.assertIn("no\\r\\n  evil@example.test  250  ok\\x1B[2J", p.stdout)

    # -- files --------------------------------------------------------------------------

    def test_new_files_are_owner_only(self):
        old = os.umask(0o022)
        try:
            backup = self.dir / "backup"
            backup.mkdir()
            with blast.BlastSink() as sink:
                p = self.send(sink, "--accounting", self.dir / "acct.csv", "--backup-dir", backup)
                self.assertEqual(p.returncode, 0, blast.describe(p))
        finally:
            os.umask(old)
        paths = [self.task, self.dir / "t.db.lock", self.dir / "acct.csv",
                 *sorted(backup.iterdir())]
        self.assertEqual(len(paths), 3 + len(ROWS))
        for path in paths:
            self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600, path)

    def test_read_only_filesystem(self):
        # Root ignores file permissions, so a chmod'ed directory proves nothing here: the task
        # lives on a tmpfs remounted read-only inside a private mount namespace (unshare -m),
        # which binds root too and vanishes with the namespace.
        mnt = self.dir / "ro"
        mnt.mkdir()
        script = (
            'set -e\n'
            'mount -t tmpfs -o size=16m tmpfs "$MNT"\n'
            '"$BIN" import --task "$MNT/t.db" --recipients "$CSV"\n'
            'mount -o remount,ro "$MNT"\n'
            'touch "$MNT/probe" 2>/dev/null && echo "NOT READ-ONLY" && exit 9\n'
            'ls -a "$MNT" 1>&2\n'
            'echo "--status"; "$BIN" status --task "$MNT/t.db" --json\n'
            'echo "--text"; "$BIN" status --task "$MNT/t.db" --failed\n'
            'echo "--export"; "$BIN" export --task "$MNT/t.db" --status unsent,failed\n')
        env = dict(os.environ, MNT=str(mnt), BIN=blast.BIN, CSV=str(self.csv))
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertNotIn("unable to open database file", p.stderr)
        status_json = p.stdout.split("--status\n")[1].split("--text\n")[0]
        self.assertIn(f'"unsent":{len(ROWS)}', status_json.replace(" ", ""))
        export = p.stdout.split("--export\n")[1]
        self.assertEqual(len(export.splitlines()), len(ROWS) + 1, export)

    def test_read_only_filesystem_after_a_killed_writer(self):
        # A writer killed before its last checkpoint leaves -wal and -shm: still readable on
        # the read-only mount. Without the -shm file SQLite cannot read the -wal there: a
        # message that says so and what to do, not "unable to open database file".
        mnt = self.dir / "ro"
        mnt.mkdir()
        script = (
            'set -e\n'
            'mount -t tmpfs -o size=16m tmpfs "$MNT"\n'
            '"$BIN" import --task "$MNT/t.db" --recipients "$CSV"\n'
            '/usr/bin/python3 -c "import os, sqlite3; c = sqlite3.connect(\'$MNT/t.db\'); '
            'c.execute(\'UPDATE recipients SET status = 1 WHERE id = 1\'); c.commit(); '
            'os._exit(0)"\n'
            'test -s "$MNT/t.db-wal"\n'
            'mount -o remount,ro "$MNT"\n'
            'echo "--with-shm"; "$BIN" status --task "$MNT/t.db" --json\n'
            'mount -o remount,rw "$MNT"; rm "$MNT/t.db-shm"; mount -o remount,ro "$MNT"\n'
            'echo "--without-shm"; "$BIN" status --task "$MNT/t.db" --json || echo "rc=$?"\n')
        env = dict(os.environ, MNT=str(mnt), BIN=blast.BIN, CSV=str(self.csv))
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=60, env=env)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with_shm = p.stdout.split("--with-shm\n")[1].split("--without-shm\n")[0]
        self.assertIn('"sent":1', with_shm)
        self.assertIn("rc=2", p.stdout.split("--without-shm\n")[1])
        self.assertIn("its -wal file holds the latest changes", p.stderr)
        self.assertNotIn("unable to open database file", p.stderr)

    def test_unreadable_template_says_why(self):
        # Root reads any file: the run drops to nobody (setpriv) for the permission case.
        shared = self.dir / "shared"
        shared.mkdir()
        os.chmod(shared, 0o777)
        tpl = shared / "secret.eml"
        tpl.write_bytes(TEMPLATE)
        os.chmod(tpl, 0o600)
        csvf = shared / "r.csv"
        csvf.write_bytes(self.csv.read_bytes())
        os.chmod(csvf, 0o644)
        with blast.BlastSink() as sink:
            p = peers.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           blast.BIN, "send", "--task", str(shared / "t.db"), "--template",
                           str(tpl), "--recipients", str(csvf), "--relay", sink.hostport,
                           "--tls", "none"], timeout=60)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn(f"cannot read {tpl}: permission denied (owner uid 0, mode 0600; "
                          "running as uid 65534)", p.stderr)
            p = self.send(sink, template=self.dir)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("directory", p.stderr)
            # `test` reads its template the same way.
            p = run("test", "--template", self.dir, "--relay", sink.hostport, "--tls", "none",
                    "--to", "a@example.test")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("directory", p.stderr)
            p = run("test", "--template", self.dir / "missing.eml", "--print",
                    "--to", "a@example.test")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("missing.eml", p.stderr)
            self.assert_nothing_sent(sink)

    def test_huge_header_errors_are_capped(self):
        cols = ["email"] + [f"col{i}" for i in range(100000)]
        wide = self.dir / "wide.csv"
        wide.write_text(",".join(cols) + "\r\na@example.test" + "," * 100000 + "\r\n")
        with blast.BlastSink() as sink:
            p = self.send(sink, recipients=wide)  # the template's {{name}} is unknown
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assert_nothing_sent(sink)
        self.assertIn("unknown merge field 'name'", p.stderr)
        self.assertIn("… and 99,991 more", p.stderr)
        self.assertLess(len(p.stderr), 2000, p.stderr[:3000])
        nomail = self.dir / "nomail.csv"
        nomail.write_text(",".join(cols[1:]) + "\r\n")
        p = run("import", "--task", self.dir / "n.db", "--recipients", nomail)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("and 99,990 more", p.stderr)
        self.assertLess(len(p.stderr), 2000, p.stderr[:3000])


if __name__ == "__main__":
    blast.main("test_input_store")
