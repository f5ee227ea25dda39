#!/usr/bin/python3
"""Issue 14: `smtpblast returns` reads bounces and complaints from a maildir into the task.

Send through the built-in sink with a VERP --return-path, turn the fixture bounces of
tests/returns/fixtures into returns for some of the recipients (their real VERP addresses and
Message-IDs put in), run `returns`, and check statuses, suppression, what was deleted, that a
second run changes nothing, and that the next send skips the bounced recipients.

Run: /usr/bin/python3 tests/integration/test_returns.py  (as root; see blast.py)
"""

import json
import re
import unittest

from support import blast, peers

FIXTURES = blast.SOURCE_DIR / "tests" / "returns" / "fixtures"
TEMPLATE = (b"From: News <news@example.test>\n"
            b"Subject: March news for {{name}}\n"
            b"\n"
            b"Hello {{name}}\n")

# fixture file -> (recipient address in the fixture, its fixture recipient id, VERP in it)
FIX = {
    "postfix_user_unknown.eml": ("alice@example.net", 1),
    "gmail_nonexistent.eml": ("dave@gmail.com", 4),
    "exim_mailbox_full.eml": ("bob@example.org", 2),
    "arf_complaint.eml": ("grace@example.com", 7),
    "qmail_no_mailbox.eml": ("frank@example.info", 6),
    "yahoo_no_account.eml": ("erin@yahoo.com", 5),
    "spam_block.eml": ("mallory@example.org", 13),
    "forged_bad_hmac.eml": ("ken@example.com", 11),
    "other_task.eml": ("alice@example.net", 1),
    "vacation_autoreply.eml": ("heidi@example.com", 8),
    "challenge_response.eml": ("ivan@example.com", 0),
}
VERP_RE = re.compile(rb"bounces\+(\d+)-([0-9a-f]{10})@bounce\.example\.com")


def returns(task, *args):
    return peers.run([blast.BIN, "returns", "--task", str(task), *[str(a) for a in args]],
                     timeout=120)


class ReturnsTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.rcpts = [f"r{i}@example.test" for i in range(1, 11)]
        self.csv = blast.write_csv(self.dir / "list.csv", ("email", "name"),
                                   [(a, f"N{i}") for i, a in enumerate(self.rcpts, 1)])
        self.task = self.dir / "t.db"

    def tearDown(self):
        self.wd.cleanup()

    def bounce(self, fixture, rcpt, sent, extra=b""):
        """The fixture as if it came back for `rcpt`: its VERP address, Message-ID and
        address replaced by the ones smtpblast really sent."""
        data = (FIXTURES / fixture).read_bytes()
        addr, fid = FIX[fixture]
        mail_from, msgid = sent[rcpt]
        if fixture == "forged_bad_hmac.eml":
            # A real recipient id with a made-up MAC.
            rid = re.match(r"bounces\+(\d+)-", mail_from).group(1).encode()
            data = VERP_RE.sub(b"bounces+" + rid + b"-0badc0ffee@bounce.example.com", data)
        else:
            data = VERP_RE.sub(mail_from.encode(), data)
        if fixture != "other_task.eml":
            data = data.replace(b"0123456789abcdef.%d@example.com" % fid, msgid.encode())
        data = data.replace(addr.encode(), rcpt.encode())
        return extra + data

    def test_send_returns_suppress_resend(self):
        with blast.BlastSink() as sink:
            p = blast.send(self.task, self.tpl, sink.hostport, self.csv,
                           "--return-path", "bounces+{{id}}@bounce.example.com")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            recs = sink.records()
        sent = {}
        for m in recs:
            mid = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", m.body).group(1).decode()
            for r in m.rcpts:
                sent[r] = (m.mail_from, mid)
        self.assertEqual(sorted(sent), sorted(self.rcpts))
        for r, (mf, _) in sent.items():
            self.assertRegex(mf, r"^bounces\+\d+-[0-9a-f]{10}@bounce\.example\.com$")
        self.assertEqual(len({mf for mf, _ in sent.values()}), len(self.rcpts))

        md = self.dir / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (md / sub).mkdir(parents=True)
        plan = [("postfix_user_unknown.eml", "r1@example.test"),
                ("gmail_nonexistent.eml", "r2@example.test"),
                ("exim_mailbox_full.eml", "r3@example.test"),
                ("arf_complaint.eml", "r4@example.test"),
                ("qmail_no_mailbox.eml", "r5@example.test"),
                ("forged_bad_hmac.eml", "r6@example.test"),
                ("spam_block.eml", "r7@example.test"),
                ("other_task.eml", "r8@example.test"),
                ("vacation_autoreply.eml", "r9@example.test"),
                ("challenge_response.eml", "r10@example.test")]
        for n, (fx, rcpt) in enumerate(plan):
            (md / "new" / f"17724{n:05d}.M{n}P1.host").write_bytes(self.bounce(fx, rcpt, sent))
        keep = self.dir / "keep"
        sup = self.dir / "suppress.txt"
        p = returns(self.task, "--maildir", md, "--keep", keep, "--suppress-out", sup, "--json")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        by_msg = {m["message"]: m for m in out["messages"]}
        self.assertEqual(out["read"], 10)
        self.assertEqual((out["hard"], out["soft"], out["block"], out["complaints"]),
                         (3, 1, 1, 1), p.stdout)
        self.assertEqual((out["forged"], out["unmatched"], out["autoreplies"]), (1, 1, 2),
                         p.stdout)
        self.assertEqual(out["deleted"], 6)
        first = by_msg["1772400000.M0P1.host"]
        self.assertEqual((first["email"], first["status"], first["class"], first["category"],
                          first["matched_by"], first["recipient_status"]),
                         ("r1@example.test", "5.1.1", "hard", "invalid-recipient", "verp",
                          "bounced"))
        self.assertEqual(by_msg["1772400002.M2P1.host"]["matched_by"], "message-id")

        rows = blast.db_rows(self.task)
        want = {"r1": "bounced", "r2": "bounced", "r3": "sent", "r4": "complained",
                "r5": "bounced", "r6": "sent", "r7": "sent", "r8": "sent", "r9": "sent",
                "r10": "sent"}
        self.assertEqual({e.split("@")[0]: r["status"] for e, r in rows.items()}, want)
        self.assertIn("5.1.1 hard/invalid-recipient", rows["r1@example.test"]["reply"])
        st = blast.status(self.task)
        self.assertEqual((st["bounced"], st["complained"]), (3, 1))
        # Only the matched and recorded messages left the maildir; raw copies were kept.
        left = sorted(f.name for f in (md / "new").iterdir())
        self.assertEqual(left, ["17724%05d.M%dP1.host" % (n, n) for n in (5, 7, 8, 9)])
        self.assertEqual(len(list(keep.iterdir())), 10)
        self.assertEqual([l for l in sup.read_text().splitlines() if not l.startswith("#")],
                         ["r1@example.test", "r2@example.test", "r4@example.test",
                          "r5@example.test"])
        exp = peers.run([blast.BIN, "export", "--task", str(self.task), "--status", "bounced"],
                        timeout=30)
        self.assertEqual(exp.returncode, 0, blast.describe(exp))
        self.assertEqual(len(exp.stdout.strip().splitlines()), 4)  # header + 3

        # A second run changes nothing.
        before = blast.db_rows(self.task)
        p = returns(self.task, "--maildir", md, "--json")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["already_processed"], out["deleted"]), (4, 4, 0))
        self.assertEqual(blast.db_rows(self.task), before)

        # Two more soft bounces for r3 (3 with --soft-limit 3): now bounced, from stdin.
        for k in (1, 2):
            data = self.bounce("exim_mailbox_full.eml", "r3@example.test", sent,
                               extra=b"X-Seq: %d\n" % k)
            p = peers.run([blast.BIN, "returns", "--task", str(self.task), "-"], stdin=data,
                          timeout=60)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(blast.db_rows(self.task)["r3@example.test"]["status"], "bounced")

        # The next send of this task (after reset --all) and a new task with the suppression
        # file both skip the bounced and complained recipients.
        p = peers.run([blast.BIN, "reset", "--task", str(self.task), "--all"], timeout=30)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        with blast.BlastSink() as sink:
            p = blast.send(self.task, self.tpl, sink.hostport, None,
                           "--return-path", "bounces+{{id}}@bounce.example.com")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            got = sorted(r for m in sink.records() for r in m.rcpts)
        self.assertEqual(got, sorted(set(self.rcpts) - {"r1@example.test", "r2@example.test",
                                                         "r3@example.test", "r4@example.test",
                                                         "r5@example.test"}))
        task2 = self.dir / "t2.db"
        with blast.BlastSink() as sink:
            p = blast.send(task2, self.tpl, sink.hostport, self.csv, "--suppress", sup)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            got = sorted(r for m in sink.records() for r in m.rcpts)
        self.assertEqual(len(got), 6)

    def test_mbox(self):
        with blast.BlastSink() as sink:
            p = blast.send(self.task, self.tpl, sink.hostport, self.csv)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            recs = sink.records()
        sent = {}
        for m in recs:
            mid = re.search(rb"(?im)^Message-ID:\s*<([^>]+)>", m.body).group(1).decode()
            for r in m.rcpts:
                sent[r] = (m.mail_from, mid)
        box = self.dir / "bounces.mbox"
        one = self.bounce("exim_mailbox_full.eml", "r1@example.test", sent)
        # A body line starting "From " is stored as ">From " in an mbox.
        two = self.bounce("yahoo_no_account.eml", "r2@example.test", sent) + b"\n>From here\n"
        box.write_bytes(b"From MAILER-DAEMON Mon Mar  2 10:00:00 2026\n" + one + b"\n"
                        b"From MAILER-DAEMON Mon Mar  2 10:01:00 2026\n" + two + b"\n")
        before = box.read_bytes()
        p = returns(self.task, "--mbox", box, "--json")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["soft"], out["hard"], out["deleted"]), (2, 1, 1, 0))
        self.assertEqual(box.read_bytes(), before)  # an mbox is never modified
        rows = blast.db_rows(self.task)
        self.assertEqual(rows["r2@example.test"]["status"], "bounced")
        self.assertEqual(rows["r1@example.test"]["status"], "sent")

    def test_real_postfix_bounce(self):
        """End to end with a real MTA: Postfix relays for dead.example.test to a sink that
        refuses every recipient (550), writes its own DSN to the VERP return path, delivers it
        into the bounce domain's maildir; returns reads it and suppresses the recipient."""
        with blast.BlastSink("--reject-rcpt", "1") as dead, peers.PostfixInstance(
                domains=("bounce.example.test",),
                main={"transport_maps":
                      f"inline:{{dead.example.test=smtp:[127.0.0.1]:{dead.port}}}",
                      "smtp_tls_security_level": "none",
                      "relay_domains": "dead.example.test"}) as pf:
            csv = blast.write_csv(self.dir / "dead.csv", ("email", "name"),
                                  [("gone@dead.example.test", "Gone"),
                                   ("also-gone@dead.example.test", "Also")])
            p = blast.send(self.task, self.tpl, pf.hostport, csv,
                           "--return-path", "bounces+{{id}}@bounce.example.test")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            pf.wait_for(2, timeout=60)
            md = pf.mail_dir / "bounce.example.test"
            # Postfix offers DSN: send asked for RET=HDRS and ENVID=<task key>.<id>.
            con = __import__("sqlite3").connect(str(self.task))
            key = dict(con.execute("SELECT key, value FROM meta"))["task_key"]
            con.close()
            texts = [f.read_bytes() for f in md.rglob("*") if f.is_file()]
            self.assertEqual(len(texts), 2)
            for t in texts:
                self.assertIn(b"Content-Type: text/rfc822-headers", t)
                self.assertRegex(t, rb"Original-Envelope-Id: " + key.encode() + rb"\.[12]\b")
            p = returns(self.task, "--maildir", md, "--json")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["hard"], out["deleted"]), (2, 2, 2), p.stdout)
        for m in out["messages"]:
            self.assertEqual((m["format"], m["matched_by"], m["class"]),
                             ("rfc3464", "verp", "hard"), m)
            self.assertTrue(m["status"].startswith("5."), m)
        rows = blast.db_rows(self.task)
        self.assertEqual({r["status"] for r in rows.values()}, {"bounced"})

    def test_accounting_category(self):
        """The same classifier labels the replies met while sending (accounting log)."""
        log = self.dir / "acct.jsonl"
        csv = blast.write_csv(self.dir / "many.csv", ("email", "name"),
                              [(f"m{i}@example.test", "x") for i in range(60)])
        with blast.BlastSink("--reject-rcpt", "0.3", "--defer-rcpt", "0.3", "--seed", "5") as sink:
            p = blast.send(self.task, self.tpl, sink.hostport, csv, "--accounting", log,
                           "--max-attempts", "1", "--connections", "1")
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        lines = [json.loads(l) for l in log.read_text().splitlines()]
        cats = {(l["status"], l["category"]) for l in lines}
        self.assertIn(("failed", "invalid-recipient"), cats, lines)  # 550 5.1.1
        self.assertIn(("deferred", "temporary"), cats, lines)        # 451 4.3.0
        self.assertTrue(all(l["category"] == "" for l in lines if l["status"] == "sent"))

    def test_bad_input(self):
        with blast.BlastSink() as sink:
            p = blast.send(self.task, self.tpl, sink.hostport, self.csv)
            self.assertEqual(p.returncode, 0, blast.describe(p))
        p = returns(self.task, "--maildir", self.dir / "nope")
        self.assertEqual(p.returncode, 2)
        self.assertIn("is not a maildir", p.stderr)
        p = returns(self.task)
        self.assertEqual(p.returncode, 2)
        self.assertIn("exactly one of", p.stderr)
        bad_rules = self.dir / "r.rules"
        bad_rules.write_text("hard x 5.1.1 (\n")
        p = returns(self.task, "--rules", bad_rules, "-")
        self.assertEqual(p.returncode, 2)
        self.assertIn("r.rules line 1: bad regular expression", p.stderr)
        p = returns(self.dir / "missing.db", "-")
        self.assertEqual(p.returncode, 2)
        # A 50 MB message and a MIME bomb on stdin: read, reported, nothing changed.
        before = blast.db_rows(self.task)
        big = (FIXTURES / "postfix_user_unknown.eml").read_bytes() + b"a" * (50 << 20)
        p = peers.run([blast.BIN, "returns", "--task", str(self.task), "-", "--json"],
                      stdin=big, timeout=120)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(json.loads(p.stdout)["unmatched"], 1)
        bomb = b"From: x@example.com\nMIME-Version: 1.0\n" + b"".join(
            b"Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n" % (i, i)
            for i in range(5000)) + b"Content-Type: text/plain\n\nhi\n"
        p = peers.run([blast.BIN, "returns", "--task", str(self.task), "-", "--json"],
                      stdin=bomb, timeout=120)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        m = json.loads(p.stdout)["messages"][0]
        self.assertEqual(m["result"], "unknown")
        self.assertIn("nesting", m["why"])
        self.assertEqual(blast.db_rows(self.task), before)


if __name__ == "__main__":
    blast.main("test_returns")
