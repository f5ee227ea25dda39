"""What a pipeline (cron, CI) and a person meet at the edges of a run: exit codes, --json,
progress without a terminal, per-recipient counts, the sending account's shared daily quota,
the resume check of sender/relay/DKIM domain, --from checks, unknown verbs, --preset on check
and test, and `smtpblast test` with real merge data. Against the built-in sink and a scripted
SMTP server with AUTH (tls_peers.ScriptedSmtp)."""

import base64
import email
import email.policy
import json
import os
import re
import signal
import subprocess
import time
import unittest

from support import blast, peers, tls_peers

TEMPLATE = "From: News <news@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"
USER = "sender@example.test"
PASSWORD = "s3cret-pipeline-pw"


def run(*args, env=None, timeout=60):
    return peers.run([blast.BIN, *[str(a) for a in args]], timeout=timeout, env=env)


def last_json(text: str) -> dict:
    """The one JSON object a --json run prints on stdout (its last line)."""
    lines = [line for line in text.strip().splitlines() if line.startswith("{")]
    if len(lines) != 1:
        raise AssertionError(f"expected exactly one JSON line on stdout, got:\n{text}")
    return json.loads(lines[0])



def printed_text(out: str) -> str:
    """The text part of a message `test --print` wrote (bodies go out quoted-printable)."""
    msg = email.message_from_string(out, policy=email.policy.default)
    return msg.get_body(preferencelist=("plain",)).get_content()

class PipelineTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_text(TEMPLATE)
        self.quota = self.dir / "quota.db"

    def tearDown(self):
        self.wd.cleanup()

    def csv(self, n, prefix="r", name="N"):
        return blast.write_csv(self.dir / f"{prefix}.csv", ["email", "name"],
                               [[f"{prefix}{i}@example.test", f"{name}{i}"] for i in range(n)])

    def send(self, task, relay, csv, *extra, timeout=120):
        return blast.send(task, self.tpl, relay, csv, "--quota-store", self.quota, *extra,
                          timeout=timeout)

    # ------------------------------------------------------------------ --from, verbs, presets

    def test_from_with_display_name_is_exit_2(self):
        with blast.BlastSink() as sink:
            csv = self.csv(3)
            p = self.send(self.dir / "t.db", sink.hostport, csv, "--from", "Sender <s@example.test>")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("display name", p.stderr)
            self.assertIn("--from s@example.test", p.stderr)
            p = self.send(self.dir / "t2.db", sink.hostport, csv, "--from", "not-an-address")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("not an address", p.stderr)
            for verb in (["check", "--probe-rcpt", "x@example.test"],
                         ["test", "--template", self.tpl, "--to", "x@example.test"]):
                q = run(*verb, "--relay", sink.hostport, "--tls", "none", "--from",
                        "Sender <s@example.test>")
                self.assertEqual(q.returncode, 2, blast.describe(q))
                self.assertIn("display name", q.stderr)
        self.assertEqual(sink.counters["messages"], 0)
        self.assertEqual(sink.records(), [])

    def test_unknown_verb_is_named(self):
        p = run("frobnicate", "--task", "x.db")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("unknown command frobnicate", p.stderr)

    def test_check_and_test_take_preset(self):
        p = run("check", "--preset", "nosuchprovider")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("nosuchprovider", p.stderr)
        # The preset fills in the relay: the check goes to (or fails to resolve) its host.
        p = run("check", "--preset", "office365", "--connect-timeout", "2s", timeout=60)
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        self.assertIn("smtp.office365.com", p.stdout + p.stderr)
        p = run("test", "--preset", "gmail", "--template", self.tpl, "--print",
                "--to", "me@example.test", "--field", "name=Ann")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        # A relay given explicitly wins over the preset's.
        with blast.BlastSink() as sink:
            p = run("check", "--preset", "office365", "--relay", sink.hostport, "--tls", "none")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertIn(sink.hostport, p.stdout)

    # ------------------------------------------------------------------ exit codes

    def test_exit_codes(self):
        with blast.BlastSink() as sink:
            p = self.send(self.dir / "ok.db", sink.hostport, self.csv(5, "ok"))
            self.assertEqual(p.returncode, 0, blast.describe(p))
            # --limit: 3, run again later.
            p = self.send(self.dir / "lim.db", sink.hostport, self.csv(10, "lim"), "--limit", "4")
            self.assertEqual(p.returncode, 3, blast.describe(p))
            self.assertIn("--limit 4 reached", p.stderr)
            # Daily limit: 3, and the time it may resume.
            p = self.send(self.dir / "day.db", sink.hostport, self.csv(10, "day"),
                          "--daily-limit", "4")
            self.assertEqual(p.returncode, 3, blast.describe(p))
            self.assertRegex(p.stderr, r"sending may resume at \d{4}-\d\d-\d\d \d\d:\d\d")
        with blast.BlastSink("--reject-rcpt", "1.0") as sink:
            p = self.send(self.dir / "rej.db", sink.hostport, self.csv(3, "rej"))
            self.assertEqual(p.returncode, 1, blast.describe(p))
        # Nothing listens there: a relay that cannot be reached at all is configuration, 2.
        p = self.send(self.dir / "dead.db", f"127.0.0.1:{peers.free_port('127.0.0.1')}",
                      self.csv(2, "dead"), "--connect-timeout", "2s", timeout=120)
        self.assertEqual(p.returncode, 2, blast.describe(p))

    def test_signal_is_exit_4(self):
        with blast.BlastSink(record=False) as sink:
            csv = self.csv(200, "sig")
            args = [blast.BIN, "send", "--tls", "none", "--task", str(self.dir / "sig.db"),
                    "--template", str(self.tpl), "--recipients", str(csv), "--relay",
                    sink.hostport, "--rate", "20/s", "--quota-store", str(self.quota),
                    "--json"]
            p = peers.Process(args, timeout=120, name="smtpblast")
            p.start()
            blast.wait_for_sent(self.dir / "sig.db", 3)  # sending, not still starting up
            p.proc.send_signal(signal.SIGTERM)
            rc = p.wait()
        self.assertEqual(rc, 4, blast.describe(p))
        self.assertIn("exit code 4 (signal)", p.stderr)
        j = last_json(p.stdout)
        self.assertEqual((j["exit_code"], j["stopped_by"]), (4, "signal"), j)
        self.assertGreater(j["task"]["unsent"], 0, j)

    def test_wrong_password_is_exit_5_and_transcript_hides_it(self):
        pw = self.dir / "pw"
        pw.write_text("wrong-" + PASSWORD + "\n")
        good = self.dir / "good"
        good.write_text(PASSWORD + "\n")
        auth = ["--tls", "none", "--allow-plaintext-auth", "--user", USER]
        with tls_peers.ScriptedSmtp(users={USER: PASSWORD}, auth_before_tls=["PLAIN"]) as srv:
            p = self.send(self.dir / "auth.db", srv.hostport, self.csv(3, "auth"), *auth,
                          "--password-file", pw, "--json")
            self.assertEqual(p.returncode, 5, blast.describe(p))
            j = last_json(p.stdout)
            self.assertEqual((j["exit_code"], j["stopped_by"]), (5, "relay"), j)
            self.assertIn("authentication failed", j["error"])
            # The test verb shows the dialogue with the secret redacted.
            q = run("test", "--relay", srv.hostport, *auth, "--password-file", good,
                    "--template", self.tpl, "--to", "me@example.test", "--field", "name=Ann",
                    "--transcript")
            self.assertEqual(q.returncode, 0, blast.describe(q))
            self.assertIn("C: MAIL FROM:<news@example.test>", q.stdout)
            self.assertIn("AUTH", q.stdout)
            secret_forms = [PASSWORD, base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()]
            for s in secret_forms:
                self.assertNotIn(s, q.stdout + q.stderr)
            self.assertEqual(len(srv.messages), 1)

    # ------------------------------------------------------------------ --json, progress, summary

    def test_json_summary_and_error(self):
        with blast.BlastSink() as sink:
            p = self.send(self.dir / "j.db", sink.hostport, self.csv(6, "j"), "--json")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            j = last_json(p.stdout)
            self.assertEqual(j["exit_code"], 0)
            self.assertTrue(j["ok"])
            self.assertIsNone(j["stopped_by"])
            self.assertEqual(j["run"]["recipients_sent"], 6)
            self.assertEqual(j["run"]["attempts"], 6)
            self.assertEqual(j["task"]["sent"], 6)
            self.assertEqual(j["task"]["total"], 6)
            self.assertIn("current_rate_per_s", j["throttle"])
            # A usage error under --json is one JSON object on stdout too (and text on stderr).
            p = self.send(self.dir / "j2.db", sink.hostport, self.csv(2, "j2"), "--rate", "abc",
                          "--json")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            e = last_json(p.stdout)
            self.assertEqual((e["ok"], e["exit_code"]), (False, 2), e)
            self.assertIn("--rate", e["error"])
            self.assertIn("--rate", p.stderr)
            p = run("status", "--task", self.dir / "missing.db", "--json")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("missing.db", last_json(p.stdout)["error"])
            p = run("frobnicate", "--json")
            self.assertIn("unknown command", last_json(p.stdout)["error"])

    def test_summary_counts_recipients_and_attempts_apart(self):
        with blast.BlastSink("--defer-rcpt", "1.0", "--defer-reply", "451 4.3.0 try later") as sink:
            p = self.send(self.dir / "d.db", sink.hostport, self.csv(7, "d"), "--max-attempts",
                          "3", "--retry-delay", "50ms", "--retry-max", "100ms", "--json")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("0 failed, 7 deferred after 21 attempts", p.stderr)
        j = last_json(p.stdout)
        self.assertEqual(j["run"]["recipients_deferred"], 7, j)
        self.assertEqual(j["run"]["deferred_attempts"], 21, j)
        self.assertEqual(j["run"]["attempts"], 21, j)
        self.assertEqual(j["task"]["deferred"], 7, j)

    def test_progress_line_without_terminal_and_status_throttle_fields(self):
        with blast.BlastSink(record=False) as sink:
            # 3/s for 40 recipients: about 13 s, so at least one progress line (every 10 s).
            p = self.send(self.dir / "pr.db", sink.hostport, self.csv(40, "pr"), "--rate", "3/s")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        lines = [ln for ln in p.stderr.splitlines() if ln.startswith("progress: ")]
        self.assertGreaterEqual(len(lines), 1, p.stderr)
        self.assertRegex(lines[0], r"recipients sent, \d+ failed, \d+ deferred")
        self.assertNotIn("\r", p.stderr)  # no terminal: whole lines only
        st = blast.status(self.dir / "pr.db")
        self.assertIsInstance(st["throttle"], dict, st)
        self.assertAlmostEqual(st["throttle"]["configured_rate_per_s"], 3.0)
        self.assertEqual(st["throttle"]["daily_limit"], 0)
        self.assertIn("pushbacks", st["throttle"])

    # ------------------------------------------------------------------ account quota

    def test_two_tasks_through_one_account_share_the_daily_limit(self):
        with blast.BlastSink() as sink:
            p = self.send(self.dir / "a.db", sink.hostport, self.csv(15, "a"), "--daily-limit", "20")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            # Another task, same account (the envelope sender at this relay): 5 left today.
            p = self.send(self.dir / "b.db", sink.hostport, self.csv(15, "b"), "--daily-limit", "20",
                          "--json")
            self.assertEqual(p.returncode, 3, blast.describe(p))
            j = last_json(p.stdout)
            self.assertEqual(j["stopped_by"], "account-daily-limit", j)
            self.assertEqual(j["task"]["sent"], 5, j)
            self.assertEqual((j["account"]["used"], j["account"]["remaining"]), (20, 0), j)
            self.assertIsNotNone(j["resume_at"])
            self.assertIn("counted across every task of this account", p.stderr)
            st = blast.status(self.dir / "b.db")
            self.assertEqual((st["account"]["used"], st["account"]["remaining"]), (20, 0), st)
            q = run("status", "--task", self.dir / "a.db")
            self.assertRegex(q.stdout, r"account: .*20 of 20 .* 0 remaining")
            # Another sender is another account.
            p = self.send(self.dir / "c.db", sink.hostport, self.csv(15, "c"), "--daily-limit",
                          "20", "--from", "other@example.test")
            self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(sink.counters["messages"], 35)

    def test_unused_reservation_is_given_back(self):
        with blast.BlastSink() as sink:
            p = self.send(self.dir / "u.db", sink.hostport, self.csv(50, "u"), "--daily-limit",
                          "100", "--limit", "5")
            self.assertEqual(p.returncode, 3, blast.describe(p))
        st = blast.status(self.dir / "u.db")
        self.assertEqual(st["sent"], 5)
        self.assertEqual((st["account"]["used"], st["account"]["remaining"]), (5, 95), st)

    def test_quota_store_default_location(self):
        state = self.dir / "state"
        env = dict(os.environ, XDG_STATE_HOME=str(state))
        with blast.BlastSink() as sink:
            p = peers.run([blast.BIN, "send", "--tls", "none", "--task", str(self.dir / "x.db"),
                           "--template", str(self.tpl), "--recipients", str(self.csv(3, "x")),
                           "--relay", sink.hostport, "--daily-limit", "10"], timeout=60, env=env)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertTrue((state / "smtpblast" / "quota.db").exists())

    # ------------------------------------------------------------------ resume check

    def test_resume_with_changed_from_relay_or_dkim_domain_is_refused(self):
        key = self.dir / "ed.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(key)],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        dkim = ["--dkim-key", key, "--dkim-selector", "s1"]
        with blast.BlastSink() as sink:
            task = self.dir / "r.db"
            p = self.send(task, sink.hostport, self.csv(20, "r"), "--limit", "5", *dkim,
                          "--dkim-domain", "example.test")
            self.assertEqual(p.returncode, 3, blast.describe(p))
            for extra, word in ((["--from", "other@example.test", "--dkim-domain", "example.test"],
                                 "envelope sender"),
                                (["--dkim-domain", "other.test"], "DKIM"),
                                ([], "DKIM")):  # no DKIM at all is a change too
                p = self.send(task, sink.hostport, None, "--limit", "5", *extra,
                              *(dkim if extra and "--dkim-domain" in extra else []))
                self.assertEqual(p.returncode, 2, blast.describe(p))
                self.assertIn(word, p.stderr)
                self.assertIn("--force", p.stderr)
            port = sink.hostport.split(":")[1]
            p = self.send(task, f"localhost:{port}", None, "--limit", "5", *dkim,
                          "--dkim-domain", "example.test")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("relay", p.stderr)
            self.assertEqual(blast.status(task)["sent"], 5)
            # --force sends the rest with the new sender.
            p = self.send(task, sink.hostport, None, "--from", "other@example.test", "--force",
                          *dkim, "--dkim-domain", "example.test")
            self.assertEqual(p.returncode, 0, blast.describe(p))
        senders = [r.mail_from for r in sink.records()]
        self.assertEqual(senders.count("news@example.test"), 5)
        self.assertEqual(senders.count("other@example.test"), 15)

    # ------------------------------------------------------------------ test verb, backup names

    def test_test_verb_renders_real_rows(self):
        csv = blast.write_csv(self.dir / "l.csv", ["email", "name"],
                              [["a@example.test", "Élodie"], ["b@example.test", "Bob"]])
        p = run("test", "--template", self.tpl, "--recipients", csv, "--print")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("Hello Élodie", printed_text(p.stdout))
        self.assertIn("RCPT TO:<a@example.test>", p.stderr)
        p = run("test", "--template", self.tpl, "--recipients", csv, "--row", "2", "--field",
                "name=Robert", "--print", "--to", "me@example.test")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("Hello Robert", printed_text(p.stdout))
        self.assertIn("Subject: Hi Robert", p.stdout)
        p = run("test", "--template", self.tpl, "--recipients", csv, "--row", "3", "--print")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("only 2 recipients", p.stderr)
        p = run("test", "--template", self.tpl, "--print", "--to", "me@example.test")
        self.assertEqual(p.returncode, 2, blast.describe(p))  # {{name}} has no value
        self.assertIn("name", p.stderr)
        with blast.BlastSink() as sink:
            task = self.dir / "t.db"
            p = self.send(task, sink.hostport, csv, "--limit", "1")
            p = run("test", "--template", self.tpl, "--task", task, "--row", "2", "--relay",
                    sink.hostport, "--tls", "none", "--to", "me@example.test")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertIn("row 2 of task", p.stdout)
        rec = sink.records()[-1]
        self.assertEqual(rec.rcpts, ["me@example.test"])
        self.assertIn(b"Hello Bob", rec.body)

    def test_backup_name_subject_is_rendered(self):
        csv = blast.write_csv(self.dir / "l.csv", ["email", "name"],
                              [["a@example.test", "Élodie"], ["b@example.test", "Bob"]])
        backup = self.dir / "backup"
        backup.mkdir()
        pickup = self.dir / "pickup"
        pickup.mkdir()
        with blast.BlastSink() as sink:
            p = self.send(self.dir / "b.db", sink.hostport, csv, "--backup-dir", backup,
                          "--backup-name", "{{subject}}.eml")
            self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(sorted(os.listdir(backup)), ["Hi Bob.eml", "Hi Élodie.eml"])
        p = blast.send(self.dir / "p.db", self.tpl, None, csv, "--pickup", pickup,
                       "--backup-name", "{{subject}}-{{id}}.eml")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        names = sorted(os.listdir(pickup))
        self.assertEqual(len(names), 2, names)
        self.assertTrue(names[0].startswith("Hi Bob-") and names[1].startswith("Hi Élodie-"), names)


if __name__ == "__main__":
    blast.main("test_pipeline")
