#!/usr/bin/python3
"""smtpblast's handling of bad input: usage and config errors stop the run with exit 2
and a message naming the flag or file before anything is sent; bad recipient data fails
only those recipients; resuming a task sends nothing twice.

Run: /usr/bin/python3 tests/integration/test_cli_input.py  (as root; see blast.py)
"""

import re
import unittest

from support import blast, peers

TEMPLATE = (b"From: Blast <sender@example.test>\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}},\n"
            b"bye\n")

ROWS = [(f"r{i:03d}@example.test", f"N{i}") for i in range(30)]


class CliInputTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.csv = blast.write_csv(self.dir / "r.csv", ("email", "name"), ROWS)
        self.task = self.dir / "t.db"
        self.sink = blast.BlastSink()
        self.sink.start()

    def tearDown(self):
        self.sink.stop()
        self.wd.cleanup()

    def send(self, *extra, task=None, template=None, relay="sink", recipients="csv",
             timeout=60):
        relay = self.sink.hostport if relay == "sink" else relay
        recipients = self.csv if recipients == "csv" else recipients
        return blast.send(task or self.task, template or self.tpl, relay, recipients, *extra,
                          timeout=timeout)

    def assert_usage_error(self, p, *needles):
        """exit 2, every needle in stderr, and the sink got nothing at all."""
        self.assertEqual(p.returncode, 2, blast.describe(p))
        for n in needles:
            self.assertIn(str(n), p.stderr, blast.describe(p))
        self.assertEqual(self.sink.record_bytes(), b"", "a message was sent")
        self.sink.stop()
        self.assertEqual(self.sink.counters["messages"], 0, self.sink.counters)
        # The one connection is BlastSink's readiness probe.
        self.assertEqual(self.sink.counters["connections"], 1, self.sink.counters)

    # -- usage and config errors: exit 2, nothing sent ---------------------------------

    def test_missing_relay(self):
        p = self.send(relay=None)
        self.assert_usage_error(p, "--relay")

    def test_relay_without_port(self):
        p = self.send(relay="nohostport")
        self.assert_usage_error(p, "--relay", "nohostport")

    def test_relay_bad_port(self):
        p = self.send(relay="127.0.0.1:99999")
        self.assert_usage_error(p, "--relay", "127.0.0.1:99999")

    def test_csv_without_email_column(self):
        bad = blast.write_csv(self.dir / "noemail.csv", ("mail", "name"),
                              [("a@example.test", "A")])
        p = self.send(recipients=bad)
        self.assert_usage_error(p, "noemail.csv", "email")
        # Fixing the list makes the same task usable.
        self.sink = blast.BlastSink().start()
        p = self.send()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(blast.status(self.task)["sent"], len(ROWS))

    def test_template_unknown_field(self):
        self.tpl.write_bytes(TEMPLATE.replace(b"{{name}},", b"{{nosuchfield}},"))
        p = self.send()
        self.assert_usage_error(p, "nosuchfield", str(self.tpl))
        # Found before the list is imported (issue 18): the run leaves no task file behind.
        self.assertFalse(self.task.exists())

    def test_template_missing(self):
        p = self.send(template=self.dir / "nope.eml")
        self.assert_usage_error(p, "nope.eml", "--template")

    def test_recipients_missing(self):
        p = self.send(recipients=self.dir / "nope.csv")
        self.assert_usage_error(p, "nope.csv")

    def test_task_in_missing_directory(self):
        task = self.dir / "no" / "such" / "dir" / "t.db"
        p = self.send(task=task)
        self.assert_usage_error(p, str(task))
        self.assertFalse(task.parent.exists())

    def test_task_not_a_task_file(self):
        task = self.dir / "notes.txt"
        content = b"this is not a SQLite database\n" * 100
        task.write_bytes(content)
        p = self.send(task=task)
        self.assert_usage_error(p, str(task))
        self.assertEqual(task.read_bytes(), content, "a foreign file was modified")

    def test_no_recipients_for_new_task(self):
        p = self.send(recipients=None)
        self.assert_usage_error(p, "--recipients")

    def test_bad_retry_delay(self):
        p = self.send("--retry-delay", "soon")
        self.assert_usage_error(p, "--retry-delay", "soon")

    # -- per-recipient failures do not stop the run ---------------------------------

    def test_line_break_in_header_value(self):
        rows = [("a@example.test", "Alice"),
                ("inject@example.test", "Bob\nBcc: victim@example.test"),
                ("cr@example.test", "Carol\rX-Evil: 1"),
                ("b@example.test", "Dave\r\nTo: other@example.test")]
        csv = blast.write_csv(self.dir / "nl.csv", ("email", "name"), rows)
        p = self.send("--workers", "2", "--connections", "2", recipients=csv)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        rows_db = blast.db_rows(self.task)
        self.assertEqual(rows_db["a@example.test"]["status"], "sent")
        for addr in ("inject@example.test", "cr@example.test", "b@example.test"):
            r = rows_db[addr]
            self.assertEqual(r["status"], "failed", r)
            self.assertIn("line break", r["reply"], r)
            self.assertIn("Subject", r["reply"], r)
        self.sink.stop()
        recs = self.sink.records()
        self.assertEqual([m.rcpts for m in recs], [["a@example.test"]])
        self.assertNotIn(b"victim", self.sink.record_bytes())

    def test_line_break_in_body_value_is_sent(self):
        tpl = self.dir / "body.eml"
        tpl.write_bytes(b"From: Blast <sender@example.test>\nSubject: plain\n\n"
                        b"Dear {{name}}\nbye\n")
        rows = [("a@example.test", "multi\nline\n.\nvalue")]
        csv = blast.write_csv(self.dir / "body.csv", ("email", "name"), rows)
        p = self.send(template=tpl, recipients=csv)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.sink.stop()
        [m] = self.sink.records()
        self.assertTrue(m.body.endswith(b"\r\n\r\nDear multi\r\nline\r\n.\r\nvalue\r\nbye\r\n"),
                        m.body)

    def assert_line_limit_kept(self, long_addr, value, field):
        """The recipient with a long merge value is either failed with a reason naming
        the length, or sent with every line within RFC 5322's 998 octets; the others are
        sent either way."""
        rows_db = blast.db_rows(self.task)
        self.assertEqual(rows_db["short@example.test"]["status"], "sent")
        r = rows_db[long_addr]
        self.sink.stop()
        recs = {m.rcpts[0]: m for m in self.sink.records()}
        self.assertIn("short@example.test", recs)
        if r["status"] == "failed":
            self.assertRegex(r["reply"], r"998|long", r)
            self.assertNotIn(long_addr, recs)
            return
        self.assertEqual(r["status"], "sent", r)
        body = recs[long_addr].body
        longest = max(len(line) for line in body.split(b"\r\n"))
        self.assertLessEqual(longest, 998,
                             f"{field}: a merge value made a {longest}-octet line (RFC 5322 "
                             f"§2.1.1: at most 998); the template's own lines are checked")
        return body

    def test_long_merge_value_in_header(self):
        value = " ".join(["word"] * 500)  # 2,499 octets, foldable at every space
        rows = [("short@example.test", "Al"), ("long@example.test", value)]
        csv = blast.write_csv(self.dir / "long.csv", ("email", "name"), rows)
        p = self.send(recipients=csv)
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        body = self.assert_line_limit_kept("long@example.test", value, "Subject")
        if body is not None:
            head = body.split(b"\r\n\r\n", 1)[0]
            unfolded = re.sub(rb"\r\n[ \t]", b" ", head)
            subj = re.search(rb"^Subject: (.*)$", unfolded, re.M).group(1)
            # (Reached since bodies with merge values go quoted-printable: before, the body line
            # "Hello <value>," was over 998 octets and the recipient failed, so this check
            # never ran and its stray "," went unnoticed.)
            self.assertEqual(re.sub(rb"\s+", b" ", subj).strip(), b"Hello " + value.encode())

    def test_long_merge_value_in_body(self):
        value = "x" * 2000
        rows = [("short@example.test", "Al"), ("long@example.test", value)]
        tpl = self.dir / "b.eml"
        tpl.write_bytes(b"From: Blast <sender@example.test>\nSubject: hi\n\n"
                        b"Value: {{name}}\n")
        csv = blast.write_csv(self.dir / "longb.csv", ("email", "name"), rows)
        p = self.send(template=tpl, recipients=csv)
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        self.assert_line_limit_kept("long@example.test", value, "body")

    def test_invalid_addresses_fail_at_import(self):
        long_addr = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + ".example.test"
        self.assertGreater(len(long_addr), 254)
        rows = [("good1@example.test", "G1"), ("no-at-sign.example.test", "X"),
                (long_addr, "Y"), ("good2@example.test", "G2")]
        csv = blast.write_csv(self.dir / "inv.csv", ("email", "name"), rows)
        p = self.send(recipients=csv)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("invalid", p.stderr)
        st = blast.status(self.task)
        self.assertEqual((st["total"], st["sent"], st["failed"], st["unsent"]), (4, 2, 2, 0), st)
        rows_db = blast.db_rows(self.task)
        self.assertEqual(rows_db["no-at-sign.example.test"]["status"], "failed")
        self.assertIn("@", rows_db["no-at-sign.example.test"]["reply"])
        self.assertEqual(rows_db[long_addr]["status"], "failed")
        self.assertIn("254", rows_db[long_addr]["reply"])
        self.sink.stop()
        self.assertEqual(sorted(r for m in self.sink.records() for r in m.rcpts),
                         ["good1@example.test", "good2@example.test"])

    def test_duplicates_imported_once(self):
        rows = [("dup@example.test", "first"), ("other@example.test", "o"),
                ("dup@example.test", "second"), ("DUP@example.test", "third")]
        csv = blast.write_csv(self.dir / "dup.csv", ("email", "name"), rows)
        p = self.send(recipients=csv)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("duplicate", p.stderr)
        st = blast.status(self.task)
        self.assertEqual((st["total"], st["sent"]), (2, 2), st)
        self.sink.stop()
        recs = self.sink.records()
        got = sorted(r.lower() for m in recs for r in m.rcpts)
        self.assertEqual(got, ["dup@example.test", "other@example.test"])
        dup = [m for m in recs if m.rcpts[0].lower() == "dup@example.test"][0]
        self.assertIn(b"Subject: Hello first\r\n", dup.body)  # the first row wins

    # -- resume -----------------------------------------------------------------------

    def test_resume_sends_nothing_twice_and_does_not_reimport(self):
        p = self.send("--connections", "2")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        st1 = blast.status(self.task)
        self.assertEqual((st1["total"], st1["sent"]), (len(ROWS), len(ROWS)), st1)
        first = len(self.sink.records())
        self.assertEqual(first, len(ROWS))
        # The same CSV plus more rows: not imported again.
        more = blast.write_csv(self.dir / "more.csv", ("email", "name"),
                               ROWS + [("late@example.test", "Late")])
        p = self.send(recipients=more)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("not imported again", p.stderr)
        st2 = blast.status(self.task)
        self.assertEqual(st2, st1)
        p = self.send(recipients=None)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.sink.stop()
        self.assertEqual(len(self.sink.records()), len(ROWS), "sent again on resume")

    def test_template_changed_between_runs(self):
        # First run: every recipient deferred, so there is something left to send.
        with blast.BlastSink("--defer-rcpt", "1") as deferring:
            p = self.send("--max-attempts", "1", relay=deferring.hostport)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        st = blast.status(self.task)
        self.assertEqual(st["deferred"], len(ROWS), st)
        self.tpl.write_bytes(TEMPLATE.replace(b"bye", b"goodbye"))
        p = self.send(recipients=None)
        self.assert_usage_error(p, "--force", str(self.tpl))
        self.assertEqual(blast.status(self.task), st)
        self.sink = blast.BlastSink().start()
        p = self.send("--force", recipients=None)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.sink.stop()
        recs = self.sink.records()
        self.assertEqual(len(recs), len(ROWS))
        self.assertTrue(all(m.body.endswith(b"\r\ngoodbye\r\n") for m in recs))
        # The new template is now the task's: resuming with it needs no --force.
        self.sink = blast.BlastSink().start()
        p = self.send(recipients=None)
        self.assertEqual(p.returncode, 0, blast.describe(p))

    def test_status_json_keys(self):
        p = self.send()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        st = blast.status(self.task)
        for k in blast.STATUS_KEYS:
            self.assertIn(k, st)
        self.assertEqual(st["total"], len(ROWS))
        self.assertEqual(st["by_code"], {"250": len(ROWS)})
        for k in blast.STATUS_KEYS[:-1]:
            self.assertIsInstance(st[k], int, k)
        self.assertEqual(sum(st[k] for k in blast.STATUS_KEYS[1:-1]), st["total"])
        # Plain status names the counts too.
        q = peers.run([blast.BIN, "status", "--task", str(self.task)], timeout=30)
        self.assertEqual(q.returncode, 0, blast.describe(q))
        self.assertRegex(q.stdout, r"sent\s+%d" % len(ROWS))
        # status of a task that does not exist: an error naming it, and no file created.
        missing = self.dir / "missing.db"
        q = peers.run([blast.BIN, "status", "--task", str(missing), "--json"], timeout=30)
        self.assertNotEqual(q.returncode, 0, blast.describe(q))
        self.assertIn(str(missing), q.stderr)
        self.assertFalse(missing.exists(), "status created a task file")


if __name__ == "__main__":
    blast.main("test_cli_input")
