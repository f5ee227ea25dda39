#!/usr/bin/python3
"""Every task verb on a PostgreSQL task (issue 13): the same as on a SQLite file.

- import, import --append, --replace (allowed, then refused once sent): the same messages,
  counts and export as the same commands on a SQLite task
- send with --suppress, --accounting and a VERP --return-path; returns (a hard bounce and a
  complaint, then the same maildir again: nothing changes), --suppress-out; status with the
  nodes; export of the returned; report; test --task --row; reset
- returns on a PostgreSQL task that was never sent: exit 2, as on SQLite
- send --limit (exit 3, the rest on the next run) and --backup-dir
- an SMS mailing (issue 19) through the SMSC simulator: provider ids, receipts during and after
  the run (`sms receipts`), a STOP on the task's suppression list; status and export
- a partly accepted multi-part SMS, its run killed -9: the next run sends only the missing
  parts with the original reference

A private PostgreSQL server, the smtpblast sink and the SMSC simulator, on loopback. Takes a few seconds.
Run: /usr/bin/python3 tests/integration/test_pg_verbs.py  (as root; see blast.py)
"""

import json
import os
import re
import signal
import time
import unittest

from support import blast, peers, postgres, smsc

FIXTURES = blast.SOURCE_DIR / "tests" / "returns" / "fixtures"
VERP_RE = re.compile(rb"bounces\+(\d+)-([0-9a-f]{10})@bounce\.example\.com")
SMS_PASSWORD = "s3cr-pw"
TEMPLATE = (b"From: News <news@example.test>\n"
            b"Subject: March news for {{name}}\n"
            b"\n"
            b"Hello {{name}}\n")


class PgVerbsTest(unittest.TestCase):
    pg = None

    @classmethod
    def setUpClass(cls):
        why = postgres.available()
        if why:
            raise unittest.SkipTest(why)
        cls.pg = postgres.PostgresServer()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        if cls.pg is not None:
            cls.pg.stop()

    def setUp(self):
        self.wd = blast.Workdir()
        self.d = self.wd.path
        self.tpl = self.d / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def sb(self, *args, stdin=None):
        return peers.run([blast.BIN, *[str(a) for a in args]], env=self.pg.env(), stdin=stdin,
                         timeout=60)

    def ok(self, *args):
        p = self.sb(*args)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        return p

    def status(self, task):
        return json.loads(self.ok("status", "--task", task, "--json").stdout)

    def test_import_append_replace_as_on_sqlite(self):
        base = blast.write_csv(self.d / "base.csv", ("email", "name"),
                               [("a1@example.test", "A1"), ("a2@Example.TEST", "A2"),
                                ("not-an-address", "Bad"), ("a3@example.test", "A3"),
                                ("a1@example.test", "again")])
        # Columns in another order and case; a row already in the task (another case), a
        # repeat, the address rejected before, new ones and a row too long.
        late = self.d / "late.csv"
        late.write_text("NAME,Email\r\nA3 again,A3@example.test\r\nA4,a4@example.test\r\n"
                        "A4 twice,a4@example.test\r\nBad,not-an-address\r\n"
                        "A5,a5@example.test,extra\r\nA6,a6@example.test\r\n")
        wrong = blast.write_csv(self.d / "wrong.csv", ("email", "city"), [("x@example.test", "X")])
        fixed = blast.write_csv(self.d / "fixed.csv", ("email", "name", "city"),
                                [("f1@example.test", "F1", "Oslo"),
                                 ("f2@example.test", "F2", "Rome")])
        tasks = {"sqlite": str(self.d / "t.db"), "pg": self.pg.url("imports")}
        seen = {}
        for kind, task in tasks.items():
            out = []
            for args in (("--recipients", base), ("--recipients", late, "--append"),
                         ("--recipients", wrong, "--append"), ("--recipients", base)):
                p = self.sb("import", "--task", task, *args)
                out.append((p.returncode, p.stderr.replace(task, "TASK")))
            st = self.status(task)
            exp = self.ok("export", "--task", task, "--status", "unsent,failed").stdout
            # --replace while nothing was sent: the new list, with its own columns.
            rep = self.sb("import", "--task", task, "--recipients", fixed, "--replace")
            out.append((rep.returncode, rep.stderr.replace(task, "TASK")))
            after = self.status(task)
            seen[kind] = (out, st, exp, after)
        self.assertEqual(seen["pg"][0], seen["sqlite"][0])
        out, st, exp, after = seen["pg"]
        self.assertEqual([rc for rc, _ in out], [0, 0, 2, 2, 0], out)
        self.assertIn("added 2 recipients", out[1][1])
        self.assertIn("2 already in the task skipped", out[1][1])
        self.assertIn("1 duplicates skipped", out[1][1])
        self.assertIn("1 invalid", out[1][1])
        self.assertIn("not in the task: 'city'", out[2][1])
        self.assertIn("already holds a recipient list", out[3][1])
        self.assertIn("replaced the list of 7 recipients", out[4][1])
        for k in ("total", "unsent", "failed"):
            self.assertEqual(st[k], seen["sqlite"][1][k], k)
        self.assertEqual((st["total"], st["unsent"], st["failed"]), (7, 5, 2))
        self.assertEqual(exp, seen["sqlite"][2])
        self.assertEqual((after["total"], after["unsent"]), (2, 2))

        # Once anything was sent, --replace is refused on both, naming the count.
        for kind, task in tasks.items():
            with blast.BlastSink() as sink:
                p = peers.run([blast.BIN, "send", "--tls", "none", "--task", task, "--template",
                               self.tpl, "--relay", sink.hostport], env=self.pg.env(),
                              timeout=60)
                self.assertEqual(p.returncode, 0, blast.describe(p))
            p = self.sb("import", "--task", task, "--recipients", base, "--replace")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("the list cannot be replaced: 2 recipients were already sent to",
                          p.stderr)
            self.assertEqual(self.status(task)["sent"], 2)

    def bounce(self, fixture, addr, fid, rcpt, sent):
        data = (FIXTURES / fixture).read_bytes()
        mail_from, msgid = sent[rcpt]
        data = VERP_RE.sub(mail_from.encode(), data)
        data = data.replace(b"0123456789abcdef.%d@example.com" % fid, msgid.encode())
        return data.replace(addr.encode(), rcpt.encode())

    def test_send_returns_report_on_a_shared_task(self):
        rcpts = [f"r{i}@example.test" for i in range(1, 7)]
        csv = blast.write_csv(self.d / "list.csv", ("email", "name"),
                              [(a, f"N{i}") for i, a in enumerate(rcpts, 1)])
        task = self.pg.url("returns")
        self.ok("import", "--task", task, "--recipients", csv)
        never = self.sb("returns", "--task", task, "-", stdin=b"Subject: x\n\nx\n")
        self.assertEqual(never.returncode, 2, blast.describe(never))
        self.assertIn("was never sent", never.stderr)

        sup = self.d / "suppress.txt"
        sup.write_text("r6@example.test\n")
        acct = self.d / "acct.csv"
        with blast.BlastSink() as sink:
            p = peers.run([blast.BIN, "send", "--tls", "none", "--task", task, "--template",
                           self.tpl, "--relay", sink.hostport, "--suppress", sup,
                           "--accounting", acct, "--return-path",
                           "bounces+{{id}}@bounce.example.com"],
                          env={**self.pg.env(), "SMTPBLAST_NODE": "solo"}, timeout=60)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            recs = sink.records()
        sent = {}
        for m in recs:
            mid = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", m.body).group(1).decode()
            for r in m.rcpts:
                sent[r] = (m.mail_from, mid)
        self.assertEqual(sorted(sent), rcpts[:5])
        self.assertEqual(len(acct.read_text().splitlines()), 1 + 6)  # header + one per rcpt

        md = self.d / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (md / sub).mkdir(parents=True)
        (md / "new" / "1.M1P1.host").write_bytes(
            self.bounce("postfix_user_unknown.eml", "alice@example.net", 1, rcpts[0], sent))
        (md / "new" / "2.M2P1.host").write_bytes(
            self.bounce("arf_complaint.eml", "grace@example.com", 7, rcpts[1], sent))
        out_sup = self.d / "returned.txt"
        p = self.ok("returns", "--task", task, "--maildir", md, "--keep", self.d / "keep",
                    "--suppress-out", out_sup, "--json")
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["hard"], out["complaints"], out["deleted"]),
                         (2, 1, 1, 2), p.stdout)
        self.assertEqual([ln for ln in out_sup.read_text().splitlines()
                          if not ln.startswith("#")], rcpts[:2])
        # The same messages again (from the kept copies): remembered, nothing changes.
        again = self.d / "Maildir2"
        for sub in ("new", "cur", "tmp"):
            (again / sub).mkdir(parents=True)
        for f in (self.d / "keep").iterdir():
            (again / "new" / f.name).write_bytes(f.read_bytes())
        out = json.loads(self.ok("returns", "--task", task, "--maildir", again,
                                 "--json").stdout)
        self.assertEqual((out["read"], out["already_processed"]), (2, 2), out)

        st = self.status(task)
        self.assertEqual((st["sent"], st["bounced"], st["complained"], st["suppressed"]),
                         (3, 1, 1, 1), st)
        self.assertEqual([n["node"] for n in st["nodes"]], ["solo"])
        self.assertTrue(st["nodes"][0]["finished"])
        self.assertEqual(st["by_node"]["solo"]["sent"], 3, st["by_node"])
        text = self.ok("status", "--task", task).stdout
        self.assertIn("nodes: 0 alive of 1", text)
        exp = self.ok("export", "--task", task, "--status", "bounced,complained").stdout
        lines = exp.strip().splitlines()
        self.assertEqual(len(lines), 3, exp)
        self.assertIn("5.1.1 hard/invalid-recipient", lines[1])
        self.assertIn("complained", lines[2])

        html = self.d / "report.html"
        self.ok("report", "--task", task, "--out", html)
        page = html.read_text()
        self.assertIn("example.test", page)
        self.assertIn("invalid-recipient", page)
        self.ok("report", "--task", task, "--accounting", acct, "--out", html)

        p = self.ok("test", "--task", task, "--row", "2", "--template", self.tpl, "--print")
        self.assertIn("Hello N2", p.stdout)

        self.ok("reset", "--task", task, "--all")
        st = self.status(task)
        # Bounced and complained recipients stay so: never mailed again.
        self.assertEqual((st["unsent"], st["bounced"], st["complained"]), (4, 1, 1), st)


    def test_limit_and_backups(self):
        csv = blast.write_csv(self.d / "l.csv", ("email", "name"),
                              [(f"b{i}@example.test", f"B{i}") for i in range(5)])
        task = self.pg.url("limit")
        self.ok("import", "--task", task, "--recipients", csv)
        backups = self.d / "eml"
        backups.mkdir()
        args = ["send", "--tls", "none", "--task", task, "--template", self.tpl,
                "--backup-dir", backups]
        with blast.BlastSink() as sink:
            p = self.sb(*args, "--relay", sink.hostport, "--limit", "2")
            self.assertEqual(p.returncode, 3, blast.describe(p))  # recipients remain
            self.assertEqual(self.status(task)["sent"], 2)
            p = self.sb(*args, "--relay", sink.hostport)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(len(sink.records()), 5)
        self.assertEqual(self.status(task)["sent"], 5)
        self.assertEqual(len(list(backups.glob("*.eml"))), 5)

    # --- SMS mailings on a shared task (issue 19) ---------------------------------------

    def sms_setup(self):
        self.pwfile = self.d / "pw"
        self.pwfile.write_text(SMS_PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.sms_tpl = self.d / "msg.txt"
        self.sms_tpl.write_text("Hi {{name}}, {{phone}} wins\n")

    def sms_conf(self, port):
        return smsc.provider_conf(self.d / "providers.toml", port, self.pwfile, "window = 1")

    @unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
    def test_sms_mailing_with_receipts_and_a_stop_on_a_shared_task(self):
        """Issue 19 on a PostgreSQL task: `sms send` through the SMSC simulator records the
        provider's ids (smtpblast_sms_ids) with the outcomes; receipts during the run and from
        `sms receipts` after it settle the recipients; a STOP goes on the task's suppression
        list (smtpblast_suppressed); status and export show them."""
        n = 20
        self.sms_setup()
        csv = blast.write_csv(self.d / "l.csv", ["name", "phone"],
                              [[f"N{i}", f"074001{i:05d}"] for i in range(n)])
        task = self.pg.url("smsmarch")
        undeliv, stop = "+447400100003", "+447400100019"
        with smsc.Smsc(system_id="sb", password=SMS_PASSWORD, receipts=True,
                       receipt_stat={undeliv[1:]: "UNDELIV"}, stop_from=[stop[1:]],
                       respond_delay_ms=20) as sim:
            conf = self.sms_conf(sim.port)
            r = self.sb("sms", "send", "--task", task, "--template", self.sms_tpl, "--recipients",
                        csv, "--provider", "sim", "--provider-config", conf, "--progress",
                        "none")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn(f"{stop} replied STOP", r.stderr)
            accepted = {a["to"]: a["id"] for a in sim.accepted()}
            # The provider's ids, one per recipient sent, as the SMSC gave them.
            rows = self.pg.sql("SELECT r.email, i.message_id, i.part, i.parts "
                               "FROM smtpblast_sms_ids i JOIN smtpblast_recipients r "
                               "ON r.task = i.task AND r.id = i.rcpt_id "
                               "WHERE i.task = 'smsmarch' ORDER BY r.id")
            self.assertEqual({e[1:]: m for e, m, _, _ in rows}, accepted)
            self.assertEqual(len(rows), len(accepted))
            self.assertTrue(all(p == "1" and ps == "1" for _, _, p, ps in rows), rows)
            sent = len(accepted)
            self.assertIn(sent, (n - 1, n))  # the STOP may land before its number is sent
            # Receipts the run did not wait for: `sms receipts` on the shared task.
            r = self.sb("sms", "receipts", "--task", task, "--provider", "sim",
                        "--provider-config", conf, "--for", "2s")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("sms receipts: task", r.stdout)
        st = json.loads(self.ok("status", "--task", task, "--json").stdout)
        self.assertEqual(st["total"], n)
        self.assertEqual(st["undeliverable"], 1, st)
        stop_sent = sent == n
        self.assertEqual(st["suppressed"], 0 if stop_sent else 1, st)
        self.assertEqual(st["delivered"], sent - 1, st)
        self.assertEqual(st.get("sent", 0), 0, st)
        keys = self.pg.sql("SELECT key, reason FROM smtpblast_suppressed "
                           "WHERE task = 'smsmarch'")
        self.assertEqual(keys, [[stop, "STOP reply"]])
        human = self.ok("status", "--task", task).stdout
        self.assertRegex(human, rf"\n  delivered\s+{sent - 1}\n")
        exp = self.ok("export", "--task", task, "--status", "delivered,undeliverable").stdout
        lines = exp.splitlines()
        self.assertEqual(len(lines), sent + 1, exp)  # a header, then one per recipient
        self.assertIn("phone", lines[0])
        und = [ln for ln in lines if undeliv in ln]
        self.assertEqual(len(und), 1, exp)
        self.assertIn("undeliverable", und[0])
        self.assertIn("stat:UNDELIV", und[0])
        # A STOP from a number already sent leaves it as it is; one not sent is suppressed.
        if not stop_sent:
            sup = self.ok("export", "--task", task, "--status", "suppressed").stdout
            self.assertIn(stop, sup)

    @unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
    def test_sms_partly_accepted_message_resumed_after_kill_9(self):
        """A four-part SMS whose parts 1 and 2 the SMSC took and part 3 refused, its run killed
        -9 before the retry: the next run on the PostgreSQL task (taking over the dead node's
        lease) sends only parts 3 and 4, with the original reference, as on SQLite."""
        self.sms_setup()
        self.sms_tpl.write_text("Hi {{name}} end\n")
        # B (two parts) goes first and takes reference 0, so A's is 1: a resumed run that sent A
        # afresh would number it 0 again, and the reference check would not see it.
        a, b = "+447400100000", "+447400100001"
        csv = blast.write_csv(self.d / "l.csv", ["name", "phone"],
                              [["B" * 200, "07400100001"], ["A" * 520, "07400100000"]])
        task = self.pg.url("smspartial")
        # A short lease, so the next run takes the killed node's recipient over in a second.
        env = {**self.pg.env(), "SMTPBLAST_PG_LEASE_MS": "1000"}
        args = [blast.BIN, "sms", "send", "--task", task, "--template", self.sms_tpl,
                "--provider", "sim", "--progress", "none"]
        # A's part 3 refused (ESME_RSYSERR: deferred, retried after --retry-delay); with a
        # window of 1 its part 4 is never sent. The run is killed before its retry.
        with smsc.Smsc(system_id="sb", password=SMS_PASSWORD,
                       refuse_part={"part": 3, "status": 0x08}) as sim:
            conf = self.sms_conf(sim.port)
            p = peers.Process([*args, "--provider-config", conf, "--recipients", csv,
                               "--retry-delay", "600s", "--commit-interval", "50ms"],
                              timeout=60, env=env)
            p.start()

            def status():
                try:
                    rows = self.pg.sql("SELECT status FROM smtpblast_recipients "
                                       f"WHERE task = 'smspartial' AND email = '{a}'")
                except peers.PeerError:  # the tables are still being created
                    return None
                return rows[0][0] if rows else None
            deadline = time.monotonic() + 20
            while status() != "2":  # deferred
                self.assertLess(time.monotonic(), deadline, "the partial outcome never came")
                time.sleep(0.05)
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
            first = sim.submitted()
            self.assertEqual([(s["to"], s["udh"], s["status"]) for s in first],
                             [(b[1:], [0, 2, 1], 0), (b[1:], [0, 2, 2], 0),
                              (a[1:], [1, 4, 1], 0), (a[1:], [1, 4, 2], 0),
                              (a[1:], [1, 4, 3], 0x08)])
            r = peers.run([*args, "--provider-config", conf], env=env, timeout=60)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            again = sim.submitted()[len(first):]
            # Only A's missing parts, with its reference: the phone joins them with the parts it
            # has; nothing else went again.
            self.assertEqual([(s["to"], s["udh"], s["status"]) for s in again],
                             [(a[1:], [1, 4, 3], 0), (a[1:], [1, 4, 4], 0)])
            msgs = sim.messages()
            self.assertEqual(sorted(msgs), [a[1:], b[1:]])
            self.assertEqual(msgs[a[1:]], ["Hi " + "A" * 520 + " end"])
        st = self.status(task)
        self.assertEqual((st["total"], st["sent"]), (2, 2), st)
        ids = [s["id"] for s in first[2:4] + again]
        row = self.pg.sql("SELECT status, reply FROM smtpblast_recipients "
                          f"WHERE task = 'smspartial' AND email = '{a}'")
        self.assertEqual(row, [["1", "accepted, message ids " + ",".join(ids)]])
        parts = self.pg.sql("SELECT i.part, i.parts, i.ref, i.message_id FROM smtpblast_sms_ids i "
                            "JOIN smtpblast_recipients r ON r.task = i.task AND r.id = i.rcpt_id "
                            f"WHERE i.task = 'smspartial' AND r.email = '{a}' ORDER BY i.seq")
        self.assertEqual(parts, [[str(n), "4", "1", m] for n, m in enumerate(ids, 1)])

    def test_sms_receipts_for_an_email_task_exit_2(self):
        self.sms_setup()
        csv = blast.write_csv(self.d / "e.csv", ["email"], [["a@example.test"]])
        task = self.pg.url("emailtask")
        self.ok("import", "--task", task, "--recipients", csv)
        r = self.sb("sms", "receipts", "--task", task, "--provider", "sim", "--provider-config",
                    self.sms_conf(9), "--for", "1s")
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("not an SMS task", r.stderr)


if __name__ == "__main__":
    blast.main("test_pg_verbs")
