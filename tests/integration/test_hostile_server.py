#!/usr/bin/python3
"""smtpblast against hostile or broken SMTP servers (issue 18, protocol part): replies that
cannot answer their command (250 to DATA, 354 to BDAT LAST), a stray 250 in a pipelined
dialogue followed by a 554, 552 "too many recipients" in the middle of a batch, a 535 that
echoes the AUTH payload, a 550 to MAIL FROM, STARTTLS and AUTH never answered, and the
wrong TLS mode (a server that speaks TLS at once, a plaintext server given --tls implicit).

The servers are scripted in this process (support.scripted.ScriptedSmtp subclasses), except
the implicit-TLS peer (tls_peers.ScriptedSmtp) and `smtpblast sink`.

Run: tools/itest.sh test_hostile_server  (as root; see tests/support/__init__.py)
"""

from __future__ import annotations

import base64
import os
import random
import socket
import unittest

from support import blast, peers, tls_peers
from support.blast import FATAL_RC, secret_forms, task_dump
from support.scripted import ScriptedSmtp, silent

DOMAIN = "example.test"
USER = "blastuser"
PASSWORD = "Pw-Hostile-91d3-S3cr3t"

TEMPLATE = (b"From: Sender <sender@example.test>\n"
            b"To: {{email}}\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}}.\n")
SAME_FOR_ALL = (b"From: Sender <sender@example.test>\n"
                b"To: list@example.test\n"
                b"Subject: The same for everyone\n"
                b"\n"
                b"One message, several recipients.\n")


class HostileTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cwd = blast.Workdir("sb-hostile-certs-")
        cls.certs = tls_peers.make_certs(cls.cwd.path / "certs")

    @classmethod
    def tearDownClass(cls):
        cls.cwd.cleanup()

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.n = 0

    def tearDown(self):
        self.wd.cleanup()

    def send(self, relay, n, *extra, template=None, timeout=120, env=None):
        """`smtpblast send` of n fresh recipients; returns (Process, task, [addresses])."""
        self.n += 1
        addrs = [f"u{self.n}x{i:03d}@{DOMAIN}" for i in range(n)]
        csv = blast.write_csv(self.dir / f"r{self.n}.csv", ("email", "name"),
                              [(a, f"N{i}") for i, a in enumerate(addrs)])
        task = self.dir / f"t{self.n}.db"
        tpl = self.tpl
        if template is not None:
            tpl = self.dir / f"m{self.n}.eml"
            tpl.write_bytes(template)
        args = [blast.BIN, "send", "--task", task, "--template", tpl, "--recipients", csv,
                "--relay", relay, *map(str, extra)]
        if "--tls" not in extra:
            args += ["--tls", "none"]
        p = peers.run(args, timeout=timeout, env=env)
        return p, task, addrs

    def statuses(self, task) -> dict:
        return {a: r["status"] for a, r in blast.db_rows(task).items()}

    def assert_none_sent(self, p, task, addrs):
        st = self.statuses(task)
        self.assertEqual(set(st), set(addrs))
        self.assertEqual([a for a, s in st.items() if s == "sent"], [],
                         "recorded sent though the server never accepted a message\n" +
                         blast.describe(p))
        self.assertNotEqual(p.returncode, 0, blast.describe(p))

    # -- replies that cannot answer their command ---------------------------------------

    def test_data_answered_250_is_not_sent(self):
        class Srv(ScriptedSmtp):
            def data(self, c):
                return b"250 2.0.0 Ok: queued as FAKE\r\n"

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 3, "--max-attempts", "2",
                                       "--retry-delay", "100ms", "--command-timeout", "5s")
        self.assert_none_sent(p, task, addrs)
        self.assertEqual(srv.delivered, [])
        rows = blast.db_rows(task)
        self.assertTrue(all(r["status"] == "deferred" for r in rows.values()), rows)
        self.assertRegex(p.stdout + p.stderr + str(rows), "cannot answer DATA")

    def test_bdat_last_answered_354_is_not_sent(self):
        class Srv(ScriptedSmtp):
            caps = (b"PIPELINING", b"CHUNKING", b"8BITMIME", b"ENHANCEDSTATUSCODES")

            def end_of_data(self, c, body):
                return b"354 2.0.0 go ahead\r\n"

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 3, "--max-attempts", "2",
                                       "--retry-delay", "100ms", "--command-timeout", "5s")
        self.assertIn(b"BDAT", b"\n".join(srv.commands))
        self.assert_none_sent(p, task, addrs)
        self.assertRegex(str(blast.db_rows(task)), "cannot answer BDAT")

    def test_stray_250_mid_pipeline_then_554_is_not_sent(self):
        """The issue's case: one stray 250 after the first message of a connection shifts
        the replies; the message the server refused with 554 must not be `sent`."""
        refused = f"u1x001@{DOMAIN}"

        class Srv(ScriptedSmtp):
            def end_of_data(self, c, body):
                if refused in c.accepted:
                    return b"554 5.7.1 message refused\r\n"
                if c.messages == 0:
                    return b"250 2.0.0 Ok: queued\r\n250 2.0.0 Ok: stray\r\n"
                return b"250 2.0.0 Ok: queued\r\n"

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 6, "--connections", "1",
                                       "--max-attempts", "4", "--retry-delay", "100ms",
                                       "--command-timeout", "5s")
        self.assertEqual(addrs[1], refused)
        st = self.statuses(task)
        self.assertNotEqual(st[refused], "sent", blast.describe(p))
        delivered = srv.delivered_rcpts()
        for a, s in st.items():
            if s == "sent":
                self.assertIn(a, delivered, f"{a} recorded sent but never accepted")
        self.assertEqual(srv.errors, [])

    # -- 552 too many recipients --------------------------------------------------------

    def send_grouped(self, domain, n, srv_cls):
        """--direct groups recipients of one domain into one message: `n` of them to an MX
        on 127.0.0.2 served by `srv_cls`. Returns (process, task, addresses, server)."""
        port = peers.free_port("127.0.0.2")
        dns = peers.Dnsmasq("local=/test/\nlocal-ttl=60\n"
                            f"mx-host={domain},mx.{domain},10\n"
                            f"host-record=mx.{domain},127.0.0.2\n").start()
        try:
            addrs = [f"r{i:02d}@{domain}" for i in range(n)]
            csv = blast.write_csv(self.dir / f"{domain}.csv", ("email", "name"),
                                  [(a, "x") for a in addrs])
            tpl = self.dir / "same.eml"
            tpl.write_bytes(SAME_FOR_ALL)
            task = self.dir / f"{domain}.db"
            with srv_cls("127.0.0.2", port) as srv:
                p = peers.run([blast.BIN, "send", "--task", task, "--template", tpl,
                               "--recipients", csv, "--direct", "--helo", "sender.example.test",
                               "--dns-server", dns.address, "--mx-port", str(port),
                               "--tls", "none", "--retry-after", "100ms", "--retry-max", "200ms",
                               "--dns-timeout", "500ms"], timeout=120)
        finally:
            dns.stop()
        return p, task, addrs, srv

    def test_552_too_many_recipients_mid_batch_retried(self):
        """The server takes 3 RCPTs per transaction and answers 552 to the rest, which go in
        later transactions. 15 recipients need 5 transactions: the last ones hear 552 four
        times, which must not use up the default --max-attempts 3 (they were never tried)."""
        class Srv(ScriptedSmtp):
            def rcpt(self, c, addr):
                if len(c.accepted) >= 3:
                    return b"552 5.5.3 Too many recipients\r\n"
                return b"250 2.1.5 Ok\r\n"

        p, task, addrs, srv = self.send_grouped("many.test", 15, Srv)
        rcpt_cmds = [x for x in srv.commands if x.upper().startswith(b"RCPT")]
        self.assertGreater(len(rcpt_cmds), 3, "the recipients were not batched")
        self.assertEqual(self.statuses(task), {a: "sent" for a in addrs}, blast.describe(p))
        self.assertEqual(sorted(srv.delivered_rcpts()), addrs)  # each once
        self.assertEqual(p.returncode, 0, blast.describe(p))

    def test_552_to_every_recipient_is_not_retried_for_ever(self):
        """A 552 to the first RCPT of a transaction is no "too many": it uses up an attempt,
        so a server that answers every RCPT that way ends the run with the recipients
        deferred."""
        class Srv(ScriptedSmtp):
            def rcpt(self, c, addr):
                return b"552 5.5.3 Too many recipients\r\n"

        p, task, addrs, srv = self.send_grouped("none.test", 4, Srv)
        self.assertEqual(self.statuses(task), {a: "deferred" for a in addrs}, blast.describe(p))
        self.assertEqual(srv.delivered_rcpts(), [])
        rcpt_cmds = [x for x in srv.commands if x.upper().startswith(b"RCPT")]
        self.assertEqual(len(rcpt_cmds), 3 * len(addrs), "--max-attempts 3 per recipient")
        self.assertEqual(p.returncode, 1, blast.describe(p))

    # -- secrets echoed by the server ---------------------------------------------------

    def test_auth_payload_echoed_in_535_is_redacted(self):
        class Srv(ScriptedSmtp):
            caps = (b"PIPELINING", b"ENHANCEDSTATUSCODES", b"AUTH PLAIN LOGIN")

            def auth_reply(self, c, arg):
                parts = arg.split(b" ", 1)
                payload = parts[1] if len(parts) > 1 else b""
                try:
                    decoded = base64.b64decode(payload)
                except Exception:
                    decoded = b""
                return (b"535-5.7.8 Authentication failed for " + payload + b"\r\n" +
                        b"535 5.7.8 decoded: " + decoded.replace(b"\0", b" ") + b"\r\n")

        pwfile = self.dir / "password"
        pwfile.write_text(PASSWORD + "\n")
        os.chmod(pwfile, 0o600)
        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 2, "--user", USER, "--password-file",
                                       pwfile, "--allow-plaintext-auth")
            chk = peers.run([blast.BIN, "check", "--relay", srv.hostport, "--tls", "none",
                             "--user", USER, "--password-file", pwfile,
                             "--allow-plaintext-auth"], timeout=60)
        self.assertEqual(p.returncode, FATAL_RC, blast.describe(p))
        self.assertIn("535", p.stderr)
        self.assertIn("<redacted>", p.stderr + p.stdout)
        self.assertNotEqual(chk.returncode, 0, blast.describe(chk))
        self.assertIn("transcript", chk.stdout)
        self.assertIn("<redacted>", chk.stdout)
        forms = secret_forms(PASSWORD, user=USER)
        for what, text in (("send stdout/stderr", p.stdout + p.stderr),
                           ("check output and transcript", chk.stdout + chk.stderr),
                           ("task store", task_dump(task))):
            for f in forms:
                self.assertNotIn(f, text, f"secret (form {f!r}) leaked into {what}")
        st = self.statuses(task)
        self.assertEqual(set(st.values()), {"unsent"}, st)

    # -- a refused sender stops the run -------------------------------------------------

    def test_mail_from_550_stops_the_run_recipients_unsent(self):
        class Srv(ScriptedSmtp):
            def mail(self, c, arg):
                return b"550 5.7.1 Sender address rejected: not owned by user\r\n"

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 20, "--connections", "2",
                                       "--from", "nobody@example.test")
        self.assertEqual(p.returncode, FATAL_RC, blast.describe(p))
        err = p.stdout + p.stderr
        self.assertIn("550 5.7.1 Sender address rejected", err)
        self.assertIn("--from", err)
        st = self.statuses(task)
        self.assertEqual([a for a, s in st.items() if s in ("failed", "sent")], [],
                         f"a sender refusal must not fail the recipients: {st}")
        mails = [x for x in srv.commands if x.upper().startswith(b"MAIL")]
        self.assertLessEqual(len(mails), 2, "the run went on after the sender was refused")

    # -- replies that never come --------------------------------------------------------

    def test_starttls_never_answered(self):
        class Srv(ScriptedSmtp):
            caps = (b"PIPELINING", b"STARTTLS")
            starttls_reply = staticmethod(silent)

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 2, "--tls", "starttls", "--ca-file",
                                       self.certs["ca"], "--command-timeout", "1s",
                                       timeout=150)
        self.assertNotEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("waiting for the reply to STARTTLS", p.stderr, blast.describe(p))
        self.assertNotIn("sent", set(self.statuses(task).values()))

    def test_auth_never_answered(self):
        class Srv(ScriptedSmtp):
            caps = (b"PIPELINING", b"AUTH PLAIN")

            def auth_reply(self, c, arg):
                return silent(c)

        pwfile = self.dir / "password"
        pwfile.write_text(PASSWORD + "\n")
        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 2, "--user", USER, "--password-file",
                                       pwfile, "--allow-plaintext-auth", "--command-timeout",
                                       "1s", timeout=150)
        self.assertNotEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("waiting for the reply to AUTH", p.stderr, blast.describe(p))
        self.assertNotIn(PASSWORD, p.stdout + p.stderr)

    # -- SMTPUTF8 and 8BITMIME only when offered -----------------------------------------

    def run_rows(self, relay, rows, template, *extra):
        self.n += 1
        csv = blast.write_csv(self.dir / f"r{self.n}.csv", ("email", "name"), rows)
        tpl = self.dir / f"m{self.n}.eml"
        tpl.write_bytes(template)
        task = self.dir / f"t{self.n}.db"
        p = peers.run([blast.BIN, "send", "--task", task, "--template", tpl, "--recipients",
                       csv, "--relay", relay, "--tls", "none", "--max-attempts", "1",
                       *map(str, extra)], timeout=60)
        return p, task

    def test_smtputf8_only_when_offered(self):
        utf8 = "j\u00f6rg@example.test"
        rows = [(utf8, "J"), ("plain@example.test", "P")]

        class Plain(ScriptedSmtp):
            caps = (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES")

        class Utf8(ScriptedSmtp):
            caps = (b"PIPELINING", b"8BITMIME", b"SMTPUTF8", b"ENHANCEDSTATUSCODES")

        with Plain() as srv:
            p, task = self.run_rows(srv.hostport, rows, TEMPLATE)
        db = blast.db_rows(task)
        self.assertEqual(db[utf8]["status"], "failed", blast.describe(p))
        self.assertIn("SMTPUTF8", db[utf8]["reply"] or "")
        self.assertEqual(db["plain@example.test"]["status"], "sent")
        self.assertNotIn("j\u00f6rg".encode(), b"\n".join(srv.commands),
                         "the non-ASCII address went to a server without SMTPUTF8")

        with Utf8() as srv:
            p, task = self.run_rows(srv.hostport, rows, TEMPLATE)
        self.assertEqual(set(self.statuses(task).values()), {"sent"}, blast.describe(p))
        mails = [x for x in srv.commands if x.upper().startswith(b"MAIL")]
        self.assertTrue(any(m.endswith(b" SMTPUTF8") for m in mails), mails)
        self.assertTrue(any(not m.endswith(b" SMTPUTF8") for m in mails), mails)

    def test_8bit_body_only_to_8bitmime(self):
        tpl = TEMPLATE + "Gr\u00fc\u00dfe.\n".encode()
        rows = [("a@example.test", "A")]

        class SevenBit(ScriptedSmtp):
            caps = (b"PIPELINING", b"ENHANCEDSTATUSCODES")

        class EightBit(ScriptedSmtp):
            caps = (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES")

        with SevenBit() as srv:
            p, task = self.run_rows(srv.hostport, rows, tpl)
        row = blast.db_rows(task)["a@example.test"]
        if row["status"] == "sent":  # converted to 7 bits before sending: fine too
            body = srv.delivered[0][1]
            self.assertFalse(any(b >= 0x80 for b in body), "8-bit body sent to a 7-bit server")
        else:
            self.assertEqual(row["status"], "failed", blast.describe(p))
            self.assertIn("8BITMIME", row["reply"] or "")
            self.assertEqual(srv.delivered, [])

        with EightBit() as srv:
            p, task = self.run_rows(srv.hostport, rows, tpl)
        self.assertEqual(self.statuses(task), {"a@example.test": "sent"}, blast.describe(p))
        mails = [x for x in srv.commands if x.upper().startswith(b"MAIL")]
        body = srv.delivered[0][1]
        if any(b >= 0x80 for b in body):
            self.assertTrue(all(m.endswith(b" BODY=8BITMIME") for m in mails), mails)

    # -- the wrong TLS mode -------------------------------------------------------------

    def test_tls_record_instead_of_a_greeting(self):
        class Srv(ScriptedSmtp):
            def greeting(self, c):
                return b"\x15\x03\x03\x00\x02\x02\x32"  # a TLS alert record

        with Srv() as srv:
            p, task, addrs = self.send(srv.hostport, 2, "--tls", "starttls", "--ca-file",
                                       self.certs["ca"])
        self.assertEqual(p.returncode, FATAL_RC, blast.describe(p))
        self.assertIn("the server speaks TLS at once: use --tls implicit", p.stderr)
        self.assertEqual(srv.connections, 1, "a TLS-mode mistake is not worth reconnecting")

    def test_starttls_against_implicit_tls_port_465(self):
        """A real implicit-TLS peer on port 465: it waits for our ClientHello, we wait for
        its greeting. The timeout says what to do."""
        host = None
        for _ in range(20):
            cand = f"127.0.{random.randint(1, 250)}.{random.randint(2, 250)}"
            s = socket.socket()
            try:
                s.bind((cand, 465))
                host = cand
                break
            except OSError:
                continue
            finally:
                s.close()
        if host is None:
            self.skipTest("no free 127.x.y.z:465")
        ctx = tls_peers.tls_server_context(self.certs["server"], self.certs["server_key"])
        with tls_peers.ScriptedSmtp(ctx=ctx, implicit=True, address=host, port=465,
                                    users={USER: PASSWORD}, timeout=60):
            # No --command-timeout: on port 465 without --tls implicit the greeting is awaited
            # only as long as a connect (2 s here), not RFC 5321's 5 minutes, which would
            # outlast this call's 150 s.
            p, task, addrs = self.send(f"{host}:465", 1, "--tls", "starttls", "--ca-file",
                                       self.certs["ca"], "--connect-timeout", "2s", timeout=150)
        self.assertNotEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("port 465, which usually speaks TLS at once", p.stderr, blast.describe(p))
        self.assertIn("use --tls implicit", p.stderr, blast.describe(p))

    def test_implicit_tls_against_plaintext_server(self):
        with blast.BlastSink(record=False) as sink:
            p, task, addrs = self.send(sink.hostport, 2, "--tls", "implicit", "--ca-file",
                                       self.certs["ca"])
        self.assertEqual(p.returncode, FATAL_RC, blast.describe(p))
        self.assertIn("the server sent a plaintext SMTP greeting: use --tls starttls", p.stderr,
                      blast.describe(p))


if __name__ == "__main__":
    blast.main("test_hostile_server")
