#!/usr/bin/python3
"""smtpblast → Postfix's smtp-sink (PIPELINING, no CHUNKING): 2,000 recipients over
10 connections of at most 50 messages each, all counted by the reference sink.

Run: /usr/bin/python3 tests/integration/test_smtp_sink.py  (as root; see blast.py)
"""

import time
import unittest

from support import blast, peers

N = 2000

TEMPLATE = (b"From: Blast <sender@example.test>\r\n"
            b"Subject: Offer for {{name}}\r\n"
            b"\r\n"
            b"Hello {{name}},\r\n"
            b".dot line\r\n"
            b"this is a short message of a bulk mailing.\r\n")


class SmtpSinkTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.csv = blast.write_csv(self.dir / "r.csv", ("email", "name"),
                                   [(f"r{i:05d}@example.test", f"N{i}") for i in range(N)])

    def tearDown(self):
        self.wd.cleanup()

    def blast_into_smtp_sink(self, *extra):
        with peers.SmtpSink() as sink:
            base = sink.counters()
            task = self.dir / "t.db"
            p = blast.send(task, self.tpl, sink.hostport, self.csv, "--connections", "10",
                           "--per-connection", "50", *extra, timeout=80)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            st = blast.status(task)
            self.assertEqual((st["total"], st["sent"], st["failed"], st["deferred"],
                              st["unsent"], st["in_flight"]), (N, N, 0, 0, 0, 0), st)
            self.assertEqual(st["by_code"], {"250": N}, st)
            got = sink.wait_for(N, timeout=10)
            self.assertEqual(got, N)
            # smtp-sink writes its counters at each session end: wait for all of them.
            deadline = time.monotonic() + 5
            while True:
                c = sink.counters()
                sessions = c["sess"] - base["sess"]
                if sessions >= N // 50 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            # At most 50 messages per connection: at least 40 sessions.
            self.assertGreaterEqual(sessions, N // 50, c)
            self.assertEqual(c["mesg"], N, c)
            rows = blast.db_rows(task)
            self.assertEqual(len(rows), N)
            self.assertTrue(all(r["status"] == "sent" and r["attempts"] == 1
                                for r in rows.values()))

    def test_2000_recipients_10_connections(self):
        self.blast_into_smtp_sink()

    def test_2000_recipients_2_workers(self):
        self.blast_into_smtp_sink("--workers", "2")


if __name__ == "__main__":
    blast.main("test_smtp_sink")
