"""Provider rules as of 2026 against scripted servers that answer with the providers' own
texts: Office 365's refusal of Basic authentication stops the run (exit 5, every recipient
still to send, advice to use --oauth-token-cmd), at AUTH and later in the dialogue; Gmail's
550 5.4.5 daily limit stops the run with exit 3 (a quota stop, not a failure) and is explained; Outlook.com's
550 5.7.515 fails the recipient and is explained once; the office365 and gmail presets list
their 2026 limits."""

import json
import unittest

from support import blast, peers
from support.scripted import ScriptedSmtp

TEMPLATE = "From: News <news@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"
USER = "sender@example.test"
BASIC_AUTH_DISABLED = b"535 5.7.139 Authentication unsuccessful, basic authentication is disabled."
NOT_SUPPORTED = b"550 5.7.30 Basic authentication is not supported for Client Submission."
GMAIL_DAILY = (b"550 5.4.5 Daily user sending limit exceeded. For more information on Gmail "
               b"sending limits go to https://support.google.com/a/answer/166852")


class Office365(ScriptedSmtp):
    """AUTH PLAIN/LOGIN offered; AUTH answered `auth_line` (or 235), RCPT `rcpt_line` (or
    250)."""

    caps = (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES", b"AUTH PLAIN LOGIN")

    def __init__(self, auth_line=None, rcpt_line=None, eod_line=None):
        super().__init__()
        self.auth_line, self.rcpt_line, self.eod_line = auth_line, rcpt_line, eod_line

    def auth_reply(self, c, arg):
        return (self.auth_line or b"235 2.7.0 Authentication successful") + b"\r\n"

    def rcpt(self, c, addr):
        return (self.rcpt_line or b"250 2.1.5 Recipient OK") + b"\r\n"

    def end_of_data(self, c, body):
        return (self.eod_line or b"250 2.0.0 OK queued") + b"\r\n"


class ProviderRulesTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_text(TEMPLATE)
        self.pw = self.dir / "pw"
        self.pw.write_text("a-password\n")

    def tearDown(self):
        self.wd.cleanup()

    def send(self, task, srv, n, *extra):
        csv = blast.write_csv(self.dir / f"{task}.csv", ["email", "name"],
                              [[f"r{i}@example.test", f"N{i}"] for i in range(n)])
        return blast.send(self.dir / f"{task}.db", self.tpl, srv.hostport, csv,
                          "--quota-store", self.dir / "quota.db", "--allow-plaintext-auth",
                          "--user", USER, "--password-file", self.pw, "--json", *extra,
                          timeout=60)

    def assert_basic_auth_stop(self, p, task):
        self.assertEqual(p.returncode, blast.FATAL_RC, blast.describe(p))
        j = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual(j["stopped_by"], "relay", j)
        self.assertIn("--oauth-token-cmd (AUTH XOAUTH2)", j["error"])
        self.assertIn("end of December 2026", p.stderr)
        rows = blast.db_rows(self.dir / f"{task}.db")
        self.assertFalse([e for e, r in rows.items() if r["status"] == "failed"], rows)
        self.assertEqual(j["run"]["recipients_sent"], 0, j)

    def test_office365_basic_auth_refused_at_auth_stops_the_run(self):
        for line in (BASIC_AUTH_DISABLED, NOT_SUPPORTED):
            with self.subTest(line=line), Office365(auth_line=line) as srv:
                task = "auth" + line[:3].decode()
                p = self.send(task, srv, 5)
                self.assert_basic_auth_stop(p, task)
                self.assertIn(line.decode(), p.stderr)
                self.assertEqual(len(srv.commands("AUTH")), 1, "not retried: it cannot pass")
                self.assertEqual(srv.commands("MAIL"), [])

    def test_office365_basic_auth_refused_to_rcpt_stops_the_run(self):
        with Office365(rcpt_line=NOT_SUPPORTED) as srv:
            p = self.send("rcpt", srv, 20, "--max-attempts", "1")
        self.assert_basic_auth_stop(p, "rcpt")
        self.assertIn("the relay refused the login: 550", p.stderr)
        rows = blast.db_rows(self.dir / "rcpt.db")
        self.assertGreater(sum(r["status"] == "unsent" for r in rows.values()), 0, rows)

    def test_gmail_daily_limit_is_a_quota_stop_not_a_failure(self):
        with Office365(eod_line=GMAIL_DAILY) as srv:
            p = self.send("gmail", srv, 1, "--max-attempts", "1")
        # Exit 3, as for --daily-limit: the run stops, the recipient stays deferred.
        self.assertEqual(p.returncode, 3, blast.describe(p))
        self.assertIn("the relay's daily sending limit for this account is spent (550 5.4.5",
                      p.stderr)
        self.assertIn("sending may resume at", p.stderr)
        rows = blast.db_rows(self.dir / "gmail.db")
        self.assertEqual(rows["r0@example.test"]["status"], "deferred", rows)
        self.assertIn("5.4.5 Daily user sending limit", rows["r0@example.test"]["reply"])
        j = json.loads(p.stdout.strip().splitlines()[-1])
        self.assertEqual((j["run"]["recipients_failed"], j["run"]["recipients_deferred"]), (0, 1))
        self.assertEqual(j["throttle"]["quota_replies"], 1, j)
        self.assertEqual(j["throttle"]["quota_pauses"], 1, j)
        self.assertIn("daily sending limit for this account is spent", p.stderr)

    def test_outlook_unauthenticated_bulk_sender_is_explained(self):
        line = (b"550 5.7.515 Access denied, sending domain [example.test] does not meet the "
                b"required authentication level.")
        with Office365(rcpt_line=line) as srv:
            p = self.send("outlook", srv, 3, "--max-attempts", "1")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        rows = blast.db_rows(self.dir / "outlook.db")
        self.assertEqual({r["status"] for r in rows.values()}, {"failed"}, rows)
        warnings = [ln for ln in p.stderr.splitlines() if "5.7.515" in ln]
        self.assertEqual(len(warnings), 1, p.stderr)  # once, not per recipient
        for w in ("SPF", "DKIM", "DMARC", "smtpblast doctor"):
            self.assertIn(w, warnings[0])

    def test_presets_list_the_2026_limits(self):
        p = peers.run([blast.BIN, "presets"], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"office365 .*rate=30/min  daily=10000  rcpts/msg=1000")
        self.assertRegex(p.stdout, r"gmail .*daily=2000 \(messages 2000\)  rcpts/msg=100")
        self.assertIn("disabled by default from the end of December 2026", p.stdout)


if __name__ == "__main__":
    blast.main("test_provider_rules")
