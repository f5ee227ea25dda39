#!/usr/bin/python3
"""smtpblast's TLS and AUTH (issue 3) against real handshakes: a private Postfix smtpd
with STARTTLS and implicit TLS, aiosmtpd with STARTTLS + AUTH, and a scripted in-process
server (tls_peers.ScriptedSmtp) for the faults: unknown CA, wrong name, expired, a
DNS-only certificate for an IP literal, a TLS 1.0-only server, STARTTLS missing /
refused / answered with injected bytes, AUTH offered before TLS only, 535, XOAUTH2 with a
token command that is run again when the server rejects the token. Secrets are checked
to stay out of argv (/proc/PID/cmdline), stdout/stderr, transcripts and the task file.

Run: /usr/bin/python3 tests/integration/test_tls_auth.py  (as root; see blast.py)
"""

import os
import re
import ssl
import time
import unittest

from support import blast, peers, tls_peers
# FATAL_RC: stopped by the relay (credentials, TLS), exit code 5 (README "Exit codes").
from support.blast import FATAL_RC, secret_forms, task_dump

DOMAIN = "example.test"
USER = "blastuser"
PASSWORD = "Pw-7f1c9e-S3cr3t"          # distinctive: grep-able in every output
WRONG_PASSWORD = "Wr0ng-4b2d8a-Pw"
OLD_TOKEN = "old-token"
GOOD_TOKEN = "good-token"

TEMPLATE = (b"From: TLS Sender <sender@example.test>\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}},\n"
            b"this went over TLS.\n")

CHECK_FAILED_RE = re.compile(r"check failed at (\w+): (.+)")
PROTO_RE = re.compile(r"TLS ?(v)?1\.[0-2]|protocol version|unsupported protocol", re.I)
VERIFY_OK_RE = re.compile(r"verif\w*\W+(?:result\W+)?(ok|passed|success|succeeded|yes|valid)"
                          r"|certificate (is )?(valid|verified|trusted)", re.I)


class TlsAuthBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.cwd = blast.Workdir("sb-tls-certs-")
        cls.certs = tls_peers.make_certs(cls.cwd.path / "certs")

    @classmethod
    def tearDownClass(cls):
        cls.cwd.cleanup()

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.pwfile = self.dir / "password"
        self.pwfile.write_text(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.n_task = 0

    def tearDown(self):
        self.wd.cleanup()

    # -- helpers -------------------------------------------------------------------------

    def csv(self, n, prefix="u"):
        return blast.write_csv(self.dir / f"{prefix}.csv", ("email", "name"),
                               [(f"{prefix}{i:03d}@{DOMAIN}", f"N{i}") for i in range(n)])

    def task(self):
        self.n_task += 1
        return self.dir / f"t{self.n_task}.db"

    def send(self, relay, n, *extra, prefix="u", env=None, timeout=60):
        """`smtpblast send` of n fresh recipients; returns (Process, task, [addresses])."""
        csv = self.csv(n, prefix)
        task = self.task()
        args = [blast.BIN, "send", "--task", task, "--template", self.tpl,
                "--recipients", csv, "--relay", relay, *extra]
        p = peers.run(args, timeout=timeout, env=env)
        return p, task, [f"{prefix}{i:03d}@{DOMAIN}" for i in range(n)]

    def smtpblast(self, *args, env=None, timeout=60):
        return peers.run([blast.BIN, *args], timeout=timeout, env=env)

    def ca(self):
        return ["--ca-file", self.certs["ca"]]

    def assert_fatal(self, p, *patterns, rc=FATAL_RC):
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, rc, blast.describe(p))
        for pat in patterns:
            self.assertRegex(out, re.compile(pat, re.I), blast.describe(p))

    def assert_unsent(self, task, addrs):
        """Nothing was marked sent/failed/deferred: every recipient that is in the task
        is still unsent (a task file that was never created counts as nothing sent)."""
        if not os.path.exists(task):
            return
        rows = blast.db_rows(task)
        bad = {a: r["status"] for a, r in rows.items() if r["status"] != "unsent"}
        self.assertEqual(bad, {}, "recipients were touched by a failed run")
        if rows:
            self.assertEqual(set(rows), set(addrs))

    def assert_all_sent(self, task, addrs):
        rows = blast.db_rows(task)
        self.assertEqual({a: r["status"] for a, r in rows.items()},
                         {a: "sent" for a in addrs})

    def assert_no_secrets(self, *texts, secrets=(PASSWORD,), what="output"):
        forms = secret_forms(*secrets)
        for text in texts:
            for f in forms:
                self.assertNotIn(f, text, f"secret (form {f!r}) leaked into {what}")

    def assert_nothing_sent(self, srv):
        self.assertEqual(srv.commands("MAIL"), [], "MAIL FROM sent after a fatal failure")
        self.assertEqual(srv.messages, [])


# ---------------------------------------------------------------------------------------
# 1 + 2: a real Postfix smtpd with STARTTLS and a wrappermode (implicit TLS) listener

class PostfixTlsTest(TlsAuthBase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # Log level 2: Postfix then says which handshakes resumed a session.
        cls.pf = peers.PostfixInstance(domains=(DOMAIN,), tls_cert=cls.certs["server"],
                                       tls_key=cls.certs["server_key"], wrappermode=True,
                                       main={"smtpd_tls_loglevel": "2"})
        try:
            cls.pf.start()
        except BaseException:
            super().tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.pf.stop()
        finally:
            super().tearDownClass()

    def wait_recipients(self, addrs, timeout=30.0):
        """Every address got exactly one message (Postfix delivers asynchronously)."""
        deadline = time.monotonic() + timeout
        while any(self.pf.count(recipient=a) == 0 for a in addrs):
            if time.monotonic() > deadline:
                missing = [a for a in addrs if self.pf.count(recipient=a) == 0]
                self.fail(f"not delivered after {timeout}s: {missing}\n"
                          f"{self.pf.log()[-3000:]}")
            time.sleep(0.05)
        self.pf.wait_queue_empty(timeout=timeout)
        for a in addrs:
            self.assertEqual(self.pf.count(recipient=a), 1, a)

    def tls_log_lines(self):
        return [l for l in self.pf.log().splitlines() if "TLS connection established" in l]

    def test_starttls_20_messages(self):
        before = len(self.tls_log_lines())
        p, task, addrs = self.send(self.pf.hostport, 20, *self.ca(), "--connections", "2",
                                   prefix="st")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.wait_recipients(addrs)
        self.assert_all_sent(task, addrs)
        # Postfix itself says the sessions were TLS (not a silent plaintext fallback).
        tls_lines = self.tls_log_lines()[before:]
        self.assertGreaterEqual(len(tls_lines), 1, self.pf.log()[-3000:])
        self.assertTrue(all("TLSv1.3" in l for l in tls_lines), tls_lines)

    def test_starttls_sessions_are_resumed(self):
        # Postfix sends no new ticket after a resumed handshake, and OpenSSL marks a TLS 1.3
        # session it resumed with as used up: without a copy kept in the cache every other
        # connection paid a full handshake (half of them resumed).
        log = self.pf.log().splitlines()
        before_tls, before_reuse = len(self.tls_log_lines()), sum("Reusing old session" in l
                                                                    for l in log)
        p, task, addrs = self.send(self.pf.hostport, 40, *self.ca(), "--connections", "1",
                                   "--per-connection", "5", prefix="rs")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.wait_recipients(addrs)
        log = self.pf.log().splitlines()
        handshakes = len(self.tls_log_lines()) - before_tls
        resumed = sum("Reusing old session" in l for l in log) - before_reuse
        self.assertEqual(handshakes, 8, self.pf.log()[-3000:])
        # A new process: the first needs a full handshake, every later one resumes.
        self.assertGreaterEqual(resumed, 7, f"{resumed} of {handshakes} resumed")

    def test_check_shows_tls(self):
        p = self.smtpblast("check", "--relay", self.pf.hostport, *self.ca())
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = p.stdout
        self.assertIn("TLSv1.3", out, blast.describe(p))
        self.assertRegex(out, VERIFY_OK_RE, blast.describe(p))
        self.assertIn(f"mx.{DOMAIN}", out, "greeting / EHLO reply missing")
        self.assertIn("STARTTLS", out, "capabilities missing")
        self.assertIn("PIPELINING", out, "capabilities missing")
        self.assertRegex(out, r"TLS_AES_\d+_GCM_SHA\d+|TLS_CHACHA20", "cipher missing")
        self.assertIn("localhost", out, "certificate subject missing")
        self.assertNotRegex(p.stdout + p.stderr, CHECK_FAILED_RE)

    def test_check_probe_rcpt(self):
        before = self.pf.count()
        p = self.smtpblast("check", "--relay", self.pf.hostport, *self.ca(),
                           "--from", f"sender@{DOMAIN}", "--probe-rcpt", f"probe@{DOMAIN}")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("RSET", p.stdout)
        time.sleep(0.5)
        self.assertEqual(self.pf.count(), before, "the probe delivered a message")
        # Postfix refuses relaying to other domains: the recipient step fails.
        p = self.smtpblast("check", "--relay", self.pf.hostport, *self.ca(),
                           "--from", f"sender@{DOMAIN}", "--probe-rcpt", "x@elsewhere.invalid")
        self.assertNotEqual(p.returncode, 0, blast.describe(p))
        m = CHECK_FAILED_RE.search(p.stdout + p.stderr)
        self.assertIsNotNone(m, blast.describe(p))
        self.assertEqual(m.group(1), "recipient", blast.describe(p))

    def test_without_ca_file_certificate_fails(self):
        # Verification is on by default: the test CA is not among the system CAs.
        p, task, addrs = self.send(self.pf.hostport, 3, prefix="noca")
        self.assert_fatal(p, r"certificate")
        self.assert_unsent(task, addrs)
        for a in addrs:
            self.assertEqual(self.pf.count(recipient=a), 0)

    def test_implicit_tls(self):
        before = len(self.tls_log_lines())
        p, task, addrs = self.send(self.pf.tls_hostport, 5, *self.ca(), "--tls", "implicit",
                                   prefix="imp")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.wait_recipients(addrs)
        self.assert_all_sent(task, addrs)
        self.assertGreaterEqual(len(self.tls_log_lines()) - before, 1)
        p = self.smtpblast("check", "--relay", self.pf.tls_hostport, "--tls", "implicit",
                           *self.ca())
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("TLSv1.3", p.stdout)


class Port465DefaultTest(TlsAuthBase):
    def test_port_465_defaults_to_implicit_tls(self):
        ctx = tls_peers.tls_server_context(self.certs["server"], self.certs["server_key"])
        try:
            srv = tls_peers.ScriptedSmtp(ctx=ctx, implicit=True, port=465).__enter__()
        except OSError as e:
            self.skipTest(f"127.0.0.1:465 not bindable here: {e}")
        try:
            p, task, addrs = self.send("127.0.0.1:465", 2, *self.ca(), prefix="p465")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(sorted(r for m in srv.messages for r in m.rcpts), addrs)
            self.assertTrue(all(m.tls for m in srv.messages))
        finally:
            srv.stop()


# ---------------------------------------------------------------------------------------
# 3: AUTH (aiosmtpd with STARTTLS, and the scripted server to count AUTH commands)

class AuthTest(TlsAuthBase):
    def aiosmtpd(self, **kw):
        return peers.AiosmtpdServer(tls_cert=self.certs["server"],
                                    tls_key=self.certs["server_key"], starttls=True,
                                    auth={USER: PASSWORD}, **kw)

    def scripted(self, **kw):
        ctx = tls_peers.tls_server_context(self.certs["server"], self.certs["server_key"])
        return tls_peers.ScriptedSmtp(ctx=ctx, users={USER: PASSWORD}, **kw)

    def test_password_file_and_env(self):
        with self.aiosmtpd() as srv:
            p, task, addrs = self.send(srv.hostport, 3, *self.ca(), "--user", USER,
                                       "--password-file", self.pwfile, prefix="pf")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            srv.wait_for(3, timeout=20)
            self.assert_all_sent(task, addrs)
            self.assert_no_secrets(p.stdout, p.stderr, what="send's stdout/stderr")
            self.assert_no_secrets(task_dump(task), what="the task file")

            env = {"SMTPBLAST_PASSWORD": PASSWORD}
            p2, task2, addrs2 = self.send(srv.hostport, 3, *self.ca(), "--user", USER,
                                          prefix="pe", env=env)
            self.assertEqual(p2.returncode, 0, blast.describe(p2))
            srv.wait_for(6, timeout=20)
            self.assert_all_sent(task2, addrs2)
            self.assert_no_secrets(p2.stdout, p2.stderr, what="send's stdout/stderr")
            self.assert_no_secrets(task_dump(task2), what="the task file")
            envs = srv.envelopes()
        self.assertEqual(sorted(r for e in envs for r in e["rcpt_tos"]), sorted(addrs + addrs2))
        self.assertTrue(all(e["tls"] and e["auth"] for e in envs), envs)

    def wrong_password_case(self, connections):
        wrong = self.dir / "wrong"
        wrong.write_text(WRONG_PASSWORD + "\n")
        with self.scripted() as srv:
            p, task, addrs = self.send(srv.hostport, 10, *self.ca(), "--user", USER,
                                       "--password-file", wrong, "--connections",
                                       str(connections), prefix=f"wp{connections}")
            srv.wait_conns_closed()
        self.assert_fatal(p, r"authentication failed")
        # The contract: exactly ONE AUTH attempt in total, whatever --connections is
        # (each failed attempt counts towards the account's lock-out).
        self.assertEqual(len(srv.auth_commands()), 1,
                         f"AUTH attempts at the server over {len(srv.conns)} connections "
                         f"(--connections {connections}): {srv.auth}")
        self.assert_nothing_sent(srv)
        self.assert_unsent(task, addrs)
        self.assert_no_secrets(p.stdout, p.stderr, task_dump(task),
                               secrets=(WRONG_PASSWORD,), what="output / task file")

    def test_wrong_password_one_connection(self):
        self.wrong_password_case(1)

    def test_wrong_password_four_connections_one_auth_attempt(self):
        # Run a few times: the second AUTH comes from a race between the connections
        # opened together (seen in about half of the runs).
        for i in range(3):
            with self.subTest(run=i):
                self.wrong_password_case(4)

    def test_wrong_password_aiosmtpd(self):
        wrong = self.dir / "wrong"
        wrong.write_text(WRONG_PASSWORD + "\n")
        with self.aiosmtpd() as srv:
            p, task, addrs = self.send(srv.hostport, 3, *self.ca(), "--user", USER,
                                       "--password-file", wrong, prefix="wa")
            time.sleep(0.3)
            self.assertEqual(srv.envelopes(), [])
        self.assert_fatal(p, r"authentication failed")
        self.assert_unsent(task, addrs)

    def test_password_on_argv_refused(self):
        with self.scripted() as srv:
            p, task, addrs = self.send(srv.hostport, 2, *self.ca(), "--user", USER,
                                       "--password", PASSWORD, prefix="argv")
            self.assertEqual(srv.conns, [], "connected although the config was refused")
        self.assert_fatal(p, r"--password-file", r"SMTPBLAST_PASSWORD", rc=2)  # usage
        self.assert_no_secrets(p.stdout, p.stderr, what="the refusal message")
        self.assert_unsent(task, addrs)

    def test_check_redacts_auth(self):
        with self.aiosmtpd() as srv:
            p = self.smtpblast("check", "--relay", srv.hostport, *self.ca(), "--user", USER,
                               "--password-file", self.pwfile)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("<redacted>", p.stdout, blast.describe(p))
        self.assertRegex(p.stdout, r"AUTH[^\n]*<redacted>")
        self.assert_no_secrets(p.stdout, p.stderr, what="check's transcript")
        self.assertRegex(p.stdout, r"23[45]")

    def test_check_failure_steps(self):
        wrong = self.dir / "wrong"
        wrong.write_text(WRONG_PASSWORD + "\n")
        with self.scripted() as srv:
            cases = [
                ("auth", ["--relay", srv.hostport, *self.ca(), "--user", USER,
                          "--password-file", wrong]),
                ("tls", ["--relay", srv.hostport]),  # test CA not trusted
                ("tcp", ["--relay", f"127.0.0.1:{peers.free_port()}"]),
                ("dns", ["--relay", "no-such-host.invalid:25"]),
            ]
            for step, args in cases:
                with self.subTest(step=step):
                    p = self.smtpblast("check", *args, timeout=60)
                    self.assertNotEqual(p.returncode, 0, blast.describe(p))
                    m = CHECK_FAILED_RE.search(p.stdout + p.stderr)
                    self.assertIsNotNone(m, blast.describe(p))
                    self.assertEqual(m.group(1), step, blast.describe(p))
                    self.assert_no_secrets(p.stdout, p.stderr, secrets=(WRONG_PASSWORD,))
            self.assert_nothing_sent(srv)
        # AUTH offered, credentials right, sender refused at MAIL: step "sender" is out of
        # reach of this server; the recipient step with aiosmtpd's scripted RCPT reply:
        with peers.AiosmtpdServer(tls_cert=self.certs["server"],
                                  tls_key=self.certs["server_key"], starttls=True,
                                  extra_args=["--rcpt-reply",
                                              f"nobody@{DOMAIN}=550 5.1.1 no such user"]) as a:
            p = self.smtpblast("check", "--relay", a.hostport, *self.ca(), "--from",
                               f"sender@{DOMAIN}", "--probe-rcpt", f"nobody@{DOMAIN}")
            self.assertNotEqual(p.returncode, 0, blast.describe(p))
            m = CHECK_FAILED_RE.search(p.stdout + p.stderr)
            self.assertIsNotNone(m, blast.describe(p))
            self.assertEqual(m.group(1), "recipient", blast.describe(p))
            self.assertIn("550", m.group(2) + p.stdout)
            self.assertEqual(a.envelopes(), [])

    def test_check_probe_sends_no_message(self):
        with self.scripted() as srv:
            p = self.smtpblast("check", "--relay", srv.hostport, *self.ca(), "--user", USER,
                               "--password-file", self.pwfile, "--from", f"s@{DOMAIN}",
                               "--probe-rcpt", f"probe@{DOMAIN}")
            srv.wait_conns_closed()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.commands("MAIL")), 1)
        self.assertEqual(len(srv.commands("RCPT")), 1)
        self.assertEqual(len(srv.commands("RSET")), 1)
        self.assertEqual(srv.commands("DATA") + srv.commands("BDAT"), [])
        self.assertEqual(len(srv.auth), 1, srv.auth)
        self.assertTrue(srv.auth[0].ok and srv.auth[0].tls, srv.auth)
        self.assert_no_secrets(p.stdout, p.stderr)

    def test_cmdline_and_outputs_have_no_secret(self):
        with self.scripted(end_delay=0.25) as srv:
            csv = self.csv(8, "slow")
            task = self.task()
            args = [blast.BIN, "send", "--task", task, "--template", self.tpl,
                    "--recipients", csv, "--relay", srv.hostport, *self.ca(), "--user",
                    USER, "--password-file", self.pwfile, "--connections", "1"]
            cmdlines = []
            with peers.Process(args, timeout=60) as proc:
                deadline = time.monotonic() + 30
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                            cmdlines.append(f.read().decode("utf-8", "replace"))
                    except OSError:
                        pass
                    if len(srv.messages) >= 2:
                        break
                    time.sleep(0.05)
                self.assertGreaterEqual(len(srv.messages), 1, "no message while running")
                self.assertIsNone(proc.poll(), "send finished before /proc was read")
                with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
                    cmdlines.append(f.read().decode("utf-8", "replace"))
                rc = proc.wait()
                out, err = proc.stdout, proc.stderr
        self.assertEqual(rc, 0, f"stdout:\n{out}\nstderr:\n{err}")
        self.assertEqual(len(srv.messages), 8)
        self.assertTrue(all(m.auth_user == USER and m.tls for m in srv.messages))
        self.assert_no_secrets(*cmdlines, what="/proc/PID/cmdline")
        self.assert_no_secrets(out, err, what="stdout/stderr")
        self.assert_no_secrets(task_dump(task), what="the task file")

    def test_forced_mechanisms(self):
        for mech in ("plain", "login"):
            with self.subTest(mech=mech), self.scripted() as srv:
                p, task, addrs = self.send(srv.hostport, 2, *self.ca(), "--user", USER,
                                           "--password-file", self.pwfile, "--auth", mech,
                                           prefix=f"m{mech}")
                self.assertEqual(p.returncode, 0, blast.describe(p))
                self.assertTrue(srv.auth)
                self.assertEqual({a.mechanism for a in srv.auth}, {mech.upper()})
                self.assertTrue(all(a.ok and a.tls for a in srv.auth))
                self.assertEqual(len(srv.messages), 2)
                self.assert_no_secrets(p.stdout, p.stderr)

    def test_plaintext_auth_needs_flag(self):
        with tls_peers.ScriptedSmtp(users={USER: PASSWORD}, auth_before_tls=["PLAIN"]) as srv:
            p, task, addrs = self.send(srv.hostport, 2, "--tls", "none", "--user", USER,
                                       "--password-file", self.pwfile, prefix="pt")
            srv.wait_conns_closed()
            self.assert_fatal(p)
            self.assertEqual(srv.auth_commands(), [], "AUTH sent in plaintext without "
                                                      "--allow-plaintext-auth")
            self.assert_nothing_sent(srv)
            self.assert_unsent(task, addrs)
            p2, task2, addrs2 = self.send(srv.hostport, 2, "--tls", "none", "--user", USER,
                                          "--password-file", self.pwfile,
                                          "--allow-plaintext-auth", prefix="pt2")
            self.assertEqual(p2.returncode, 0, blast.describe(p2))
            self.assertEqual(len(srv.messages), 2)
            self.assertTrue(srv.auth and all(a.ok and not a.tls for a in srv.auth))
            self.assert_no_secrets(p2.stdout, p2.stderr, task_dump(task2))

    def test_test_verb(self):
        # The test verb fills only {{email}}.
        self.tpl.write_bytes(b"From: TLS Sender <sender@example.test>\n"
                             b"Subject: test for {{email}}\n\nHello {{email}}\n")
        with self.aiosmtpd(extra_args=["--rcpt-reply",
                                       f"bad@{DOMAIN}=550 5.1.1 no such user"]) as srv:
            p = self.smtpblast("test", "--relay", srv.hostport, "--template", self.tpl,
                               "--to", f"one@{DOMAIN}", "--from", f"sender@{DOMAIN}",
                               *self.ca(), "--user", USER, "--password-file", self.pwfile)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertRegex(p.stdout, r"\b250\b")
            srv.wait_for(1, timeout=10)
            self.assertEqual(srv.envelopes()[0]["rcpt_tos"], [f"one@{DOMAIN}"])
            self.assert_no_secrets(p.stdout, p.stderr)
            p = self.smtpblast("test", "--relay", srv.hostport, "--template", self.tpl,
                               "--to", f"bad@{DOMAIN}", "--from", f"sender@{DOMAIN}",
                               *self.ca(), "--user", USER, "--password-file", self.pwfile)
            self.assertNotEqual(p.returncode, 0, blast.describe(p))
            self.assertIn("550", p.stdout + p.stderr)
            self.assertEqual(len(srv.envelopes()), 1)


# ---------------------------------------------------------------------------------------
# 4 + 5 + 6: TLS failures, each a real handshake (or a real protocol fault)

class TlsFailureTest(TlsAuthBase):
    def server(self, cert="server", ctx=None, **kw):
        if ctx is None:
            ctx = tls_peers.tls_server_context(self.certs[cert], self.certs[cert + "_key"])
        return tls_peers.ScriptedSmtp(ctx=ctx, **kw)

    def fatal_case(self, srv, *patterns, relay=None, extra=(), prefix="f"):
        p, task, addrs = self.send(relay or srv.hostport, 3, *self.ca(), *extra, prefix=prefix)
        srv.wait_conns_closed()
        self.assert_fatal(p, *patterns)
        self.assert_nothing_sent(srv)
        self.assert_unsent(task, addrs)
        return p

    def test_good_certificate_ip_literal_no_sni(self):
        with self.server() as srv:
            p, task, addrs = self.send(srv.hostport, 3, *self.ca(), prefix="ok")
            srv.wait_conns_closed()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 3)
        self.assertTrue(all(c.tls_version == "TLSv1.3" for c in srv.conns if c.lines))
        # RFC 6066 3: "Literal IPv4 and IPv6 addresses are not permitted in HostName".
        self.assertEqual({c.sni for c in srv.conns if c.tls_version}, {None},
                         "SNI sent for an IP-literal relay")

    def test_host_name_relay_sends_sni(self):
        pem, key = tls_peers.make_leaf(self.certs, "dnsonly", "DNS:localhost")
        ctx = tls_peers.tls_server_context(pem, key)
        with tls_peers.ScriptedSmtp(ctx=ctx) as srv:
            p, task, addrs = self.send(f"localhost:{srv.port}", 2, *self.ca(), prefix="sni")
            srv.wait_conns_closed()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 2)
        self.assertEqual({c.sni for c in srv.conns if c.tls_version}, {"localhost"})

    def test_ip_literal_needs_ip_san(self):
        # The certificate names DNS:localhost (and CN=localhost) only: an IP-literal relay
        # must not match it.
        pem, key = tls_peers.make_leaf(self.certs, "dnsonly", "DNS:localhost")
        ctx = tls_peers.tls_server_context(pem, key)
        with tls_peers.ScriptedSmtp(ctx=ctx) as srv:
            self.fatal_case(srv, r"certificate|host ?name|127\.0\.0\.1|does not match|mismatch",
                            prefix="ipsan")

    def test_unknown_ca(self):
        with self.server("unknown") as srv:
            self.fatal_case(srv, r"certificate", prefix="uca")
            self.assertEqual(len(srv.commands("STARTTLS")), 1)
            self.assertTrue(srv.conns[0].tls_error, "no real handshake happened")

    def test_wrong_name(self):
        with self.server("wrong") as srv:
            self.fatal_case(srv, r"host ?name|names?\b|wrong\.example|does not match|mismatch",
                            prefix="wn")
            self.assertTrue(any(c.tls_error for c in srv.conns), "no real handshake")

    def test_expired(self):
        with self.server("expired") as srv:
            self.fatal_case(srv, r"expired", prefix="exp")

    def test_tls10_only_server(self):
        ctx = tls_peers.tls10_only_context(self.certs["server"], self.certs["server_key"])
        with self.server(ctx=ctx) as srv:
            p = self.fatal_case(srv, PROTO_RE.pattern, prefix="t10")
            self.assertEqual(len(srv.commands("STARTTLS")), 1)
            self.assertTrue(srv.conns[0].tls_error, "no handshake attempt")

    def test_tls12_only_server_is_fine(self):
        ctx = tls_peers.tls_server_context(self.certs["server"], self.certs["server_key"],
                                           max_version=ssl.TLSVersion.TLSv1_2)
        with self.server(ctx=ctx) as srv:
            p, task, addrs = self.send(srv.hostport, 2, *self.ca(), prefix="t12")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 2)
        self.assertTrue(all(c.tls_version == "TLSv1.2" for c in srv.conns if c.tls_version))

    def test_verify_no_against_unknown_ca(self):
        with self.server("unknown") as srv:
            p, task, addrs = self.send(srv.hostport, 3, "--tls-verify", "no", prefix="vno")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 3)
        self.assertTrue(all(m.tls for m in srv.messages))
        self.assertRegex(p.stderr, re.compile(r"warn|verif|insecure", re.I),
                         "no warning for --tls-verify no")
        self.assert_all_sent(task, addrs)

    def test_starttls_injection(self):
        with self.server(starttls_mode="inject", inject_wait=5.0) as srv:
            p = self.fatal_case(srv, r"injection", prefix="inj")
        self.assertEqual(len(srv.commands("STARTTLS")), 1)
        after = srv.conns[0].after_starttls
        self.assertIn(after, (b"", None),
                      f"the client sent {after[:40]!r} after the injected STARTTLS reply "
                      f"(0x16 = a TLS ClientHello)" if after else "")

    def test_starttls_refused_454(self):
        # 454 is temporary: smtpblast may reconnect and try again (it does: 10 connections
        # with back-off, ~21 s), but it never goes on in plaintext and ends with exit 2.
        with self.server(starttls_mode="refuse") as srv:
            self.fatal_case(srv, r"STARTTLS", prefix="r454")
            self.assertGreaterEqual(len(srv.commands("STARTTLS")), 1)
            self.assertEqual(len(srv.commands("STARTTLS")), len(srv.conns))

    def test_starttls_rejected_554(self):
        with self.server(starttls_mode="reject") as srv:
            self.fatal_case(srv, r"STARTTLS|TLS", prefix="r554")

    def test_starttls_missing_smtp_sink(self):
        with peers.SmtpSink() as sink:
            p, task, addrs = self.send(sink.hostport, 3, "--tls", "starttls", prefix="miss")
            time.sleep(0.2)
            got = sink.counters()["mesg"]
        self.assert_fatal(p, r"STARTTLS")
        self.assertEqual(got, 0)
        self.assert_unsent(task, addrs)
        # The default (no --tls) is starttls as well.
        with peers.SmtpSink() as sink:
            p, task, addrs = self.send(sink.hostport, 3, prefix="missd")
            time.sleep(0.2)
            got = sink.counters()["mesg"]
        self.assert_fatal(p, r"STARTTLS")
        self.assertEqual(got, 0)

    def test_opportunistic_and_none_without_starttls(self):
        for mode in ("opportunistic", "none"):
            with self.subTest(mode=mode), peers.SmtpSink() as sink:
                p, task, addrs = self.send(sink.hostport, 3, "--tls", mode, prefix=mode[:3])
                self.assertEqual(p.returncode, 0, blast.describe(p))
                sink.wait_for(3, timeout=10)
                self.assert_all_sent(task, addrs)

    def test_opportunistic_uses_tls_when_offered(self):
        with self.server() as srv:
            p, task, addrs = self.send(srv.hostport, 2, *self.ca(), "--tls", "opportunistic",
                                       prefix="opt")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 2)
        self.assertTrue(all(m.tls for m in srv.messages), "opportunistic did not use TLS")

    def test_auth_only_before_tls(self):
        with self.server(users={USER: PASSWORD}, auth_before_tls=["PLAIN"],
                         auth_after_tls=[]) as srv:
            p = self.fatal_case(srv, r"AUTH", extra=("--user", USER, "--password-file",
                                                     self.pwfile), prefix="abt")
            self.assertEqual(srv.auth_commands(), [], "AUTH sent although not offered "
                                                      "after TLS")
            self.assertEqual(len(srv.commands("STARTTLS")), 1)
        self.assert_no_secrets(p.stdout, p.stderr)


# ---------------------------------------------------------------------------------------
# 7: XOAUTH2 with a token command

class XOAuth2Test(TlsAuthBase):
    def server(self):
        ctx = tls_peers.tls_server_context(self.certs["server"], self.certs["server_key"])
        return tls_peers.ScriptedSmtp(ctx=ctx, tokens={GOOD_TOKEN})

    def token_cmd(self, tokens):
        """A shell script printing tokens[0] on its first run, tokens[1] on the second…
        (the last one after that); it counts its runs in a file."""
        counter = self.dir / "token-runs"
        script = self.dir / "token.sh"
        cases = "".join(f"  {i + 1}) echo {t} ;;\n" for i, t in enumerate(tokens))
        script.write_text("#!/bin/sh\n"
                          f"n=$(cat '{counter}' 2>/dev/null || echo 0)\n"
                          "n=$((n + 1))\n"
                          f"echo $n > '{counter}'\n"
                          'case "$n" in\n' + cases +
                          f"  *) echo {tokens[-1]} ;;\nesac\n")
        os.chmod(script, 0o755)
        return script, counter

    def runs(self, counter):
        return int(counter.read_text()) if counter.exists() else 0

    def test_token_cmd_rerun_after_rejection(self):
        script, counter = self.token_cmd([OLD_TOKEN, GOOD_TOKEN])
        with self.server() as srv:
            p, task, addrs = self.send(srv.hostport, 5, *self.ca(), "--user", USER,
                                       "--oauth-token-cmd", str(script), "--connections", "1",
                                       prefix="ox")
            srv.wait_conns_closed()
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(self.runs(counter), 2, "token command runs")
        self.assertEqual([(a.mechanism, a.secret, a.ok) for a in srv.auth],
                         [("XOAUTH2", OLD_TOKEN, False), ("XOAUTH2", GOOD_TOKEN, True)])
        self.assertEqual(sorted(r for m in srv.messages for r in m.rcpts), addrs)
        self.assert_all_sent(task, addrs)
        self.assert_no_secrets(p.stdout, p.stderr, task_dump(task),
                               secrets=(OLD_TOKEN, GOOD_TOKEN))

    def test_token_file(self):
        tf = self.dir / "token"
        tf.write_text(GOOD_TOKEN + "\n")
        with self.server() as srv:
            p, task, addrs = self.send(srv.hostport, 3, *self.ca(), "--user", USER,
                                       "--oauth-token-file", tf, prefix="otf")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(len(srv.messages), 3)
        self.assertTrue(all(a.mechanism == "XOAUTH2" and a.ok for a in srv.auth))
        self.assert_no_secrets(p.stdout, p.stderr, task_dump(task), secrets=(GOOD_TOKEN,))

    def test_token_cmd_always_rejected(self):
        script, counter = self.token_cmd([OLD_TOKEN])
        with self.server() as srv:
            p, task, addrs = self.send(srv.hostport, 3, *self.ca(), "--user", USER,
                                       "--oauth-token-cmd", str(script), "--connections", "1",
                                       prefix="oxr")
            srv.wait_conns_closed()
        self.assert_fatal(p, r"authentication failed")
        self.assertEqual(srv.messages, [])
        self.assertLessEqual(len(srv.auth_commands()), 2, srv.auth)
        self.assertLessEqual(self.runs(counter), 2)
        self.assert_unsent(task, addrs)
        self.assert_no_secrets(p.stdout, p.stderr, secrets=(OLD_TOKEN,))

    def test_check_redacts_token(self):
        tf = self.dir / "token"
        tf.write_text(GOOD_TOKEN + "\n")
        with self.server() as srv:
            p = self.smtpblast("check", "--relay", srv.hostport, *self.ca(), "--user", USER,
                               "--oauth-token-file", tf)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("<redacted>", p.stdout)
        self.assert_no_secrets(p.stdout, p.stderr, secrets=(GOOD_TOKEN,))


if __name__ == "__main__":
    blast.main("test_tls_auth")
