"""check --direct and test --direct: a real DNS server (dnsmasq) on loopback serves a small zone,
an aiosmtpd sink listens on 127.0.0.2 and nothing listens on 127.0.0.4 (same port), so the
MX lookup, the fail-over past a dead MX, the refused probe and the one message are checked
against servers someone else wrote. One test adds a scripted MX on 127.0.0.3 whose STARTTLS
handshake fails (TLS 1.0 only).

Run: SMTPBLAST=build/bin/smtpblast /usr/bin/python3 tests/integration/test_check_direct.py
"""

from __future__ import annotations

import re
import unittest

from support import blast, peers, tls_peers

ZONE = """local=/test/
local-ttl=60
mx-host=one.test,mx.one.test,10
host-record=mx.one.test,127.0.0.2
mx-host=multi.test,mx1.multi.test,10
mx-host=multi.test,mx2.multi.test,20
host-record=mx1.multi.test,127.0.0.4
host-record=mx2.multi.test,127.0.0.2
mx-host=dead.test,mx.dead.test,10
host-record=mx.dead.test,127.0.0.4
host-record=implicit.test,127.0.0.2
mx-host=tls.test,mx.tls.test,10
host-record=mx.tls.test,127.0.0.3
mx-host=nullmx.test,.,0
server=/servfail.test/127.0.0.9#9
"""

HELO = "sender.example.test"
REFUSED = "nobody@multi.test"
TEMPLATE = ("From: Sender <sender@example.test>\r\nTo: {{email}}\r\nSubject: direct test\r\n"
            "\r\nOne message to the MX.\r\n")
CHECK_FAILED_RE = re.compile(r"^check failed at (\w+): (.+)$", re.M)


class CheckDirect(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = blast.Workdir("sb-check-direct-")
        cls.dir = cls.work.path
        cls.dns = peers.Dnsmasq(ZONE).start()
        try:
            cls.port = peers.free_port_on(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
            cls.sink = peers.AiosmtpdServer(
                address="127.0.0.2", port=cls.port, maildir=cls.dir / "mail",
                extra_args=["--rcpt-reply", f"{REFUSED}=550 5.1.1 no such user here"]).start()
        except BaseException:
            cls.dns.stop()
            cls.work.cleanup()
            raise
        cls.template = cls.dir / "t.eml"
        cls.template.write_bytes(TEMPLATE.encode())

    @classmethod
    def tearDownClass(cls):
        cls.sink.stop()
        cls.dns.stop()
        cls.work.cleanup()

    def direct(self, verb, *extra, dns_timeout="2s"):
        args = [blast.BIN, verb, "--direct", "--helo", HELO, "--dns-server", self.dns.address,
                "--mx-port", str(self.port), "--dns-timeout", dns_timeout,
                "--connect-timeout", "5s", *map(str, extra)]
        return peers.run(args, timeout=60)

    def failed_step(self, p):
        m = CHECK_FAILED_RE.search(p.stdout)
        self.assertIsNotNone(m, blast.describe(p))
        return m.group(1), m.group(2)

    def test_probe_fails_over_past_a_dead_mx(self):
        before = len(self.sink.envelopes())
        p = self.direct("check", "--probe-rcpt", "someone@multi.test")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = p.stdout
        # The MX hosts in preference order, with their addresses.
        mx1 = out.index("MX 10  mx1.multi.test  127.0.0.4")
        mx2 = out.index("MX 20  mx2.multi.test  127.0.0.2")
        self.assertLess(mx1, mx2, out)
        # The dead MX 10 was tried first and said; the MX 20 was used.
        self.assertRegex(out, rf"not used: +mx1\.multi\.test 127\.0\.0\.4:{self.port} \(MX 10\): "
                              r"failed at tcp: .*refused")
        self.assertRegex(out, rf"used: +mx2\.multi\.test 127\.0\.0\.2:{self.port} \(MX 20\)")
        self.assertLess(out.index("not used:"), out.index("\nused:"), out)
        self.assertIn(f"C: EHLO {HELO}", out)
        # The probe's sender defaults to postmaster@ the HELO name, and nothing is sent.
        self.assertIn(f"MAIL FROM:<postmaster@{HELO}>", out)
        self.assertIn("RSET", out)
        self.assertIn("accepted", out)
        self.assertTrue(out.rstrip().endswith("check passed"), out)
        self.assertEqual(len(self.sink.envelopes()), before, "the probe delivered a message")

    def test_domain_without_probe_and_implicit_mx(self):
        p = self.direct("check", "--domain", "implicit.test")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("implicit MX", p.stdout)
        self.assertRegex(p.stdout, rf"used: +implicit\.test 127\.0\.0\.2:{self.port}")
        self.assertNotIn("MAIL FROM", p.stdout)
        self.assertIn("check passed", p.stdout)

    def test_null_mx_fails_at_dns(self):
        p = self.direct("check", "--domain", "nullmx.test")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        step, why = self.failed_step(p)
        self.assertEqual(step, "dns", blast.describe(p))
        self.assertIn("null MX", why)
        self.assertIn("permanent", why)
        self.assertNotIn("used:", p.stdout)

    def test_nxdomain_fails_at_dns(self):
        p = self.direct("check", "--probe-rcpt", "someone@nx.test")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        step, why = self.failed_step(p)
        self.assertEqual(step, "dns", blast.describe(p))
        self.assertIn("NXDOMAIN", why)
        self.assertIn("nx.test", why)

    def test_dns_timeout_is_temporary(self):
        # dnsmasq forwards servfail.test to a port nothing answers on: the lookup times out.
        p = self.direct("check", "--domain", "servfail.test", dns_timeout="150ms")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        step, why = self.failed_step(p)
        self.assertEqual(step, "dns", blast.describe(p))
        self.assertIn("temporary", why)

    def test_no_reachable_mx(self):
        p = self.direct("check", "--domain", "dead.test")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        step, why = self.failed_step(p)
        self.assertEqual(step, "tcp", blast.describe(p))
        self.assertIn("no mail exchanger of dead.test could be used", why)
        self.assertIn("refused", why)

    def test_refused_probe_recipient(self):
        p = self.direct("check", "--probe-rcpt", REFUSED)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        step, why = self.failed_step(p)
        self.assertEqual(step, "recipient", blast.describe(p))
        self.assertIn("550 5.1.1 no such user here", why)
        self.assertRegex(p.stdout, r"used: +mx2\.multi\.test")

    def test_one_message_arrives(self):
        before = len(self.sink.envelopes())
        p = self.direct("test", "--to", "reader@multi.test", "--template", self.template)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertRegex(p.stdout, r"(?m)^sent: 250 ")
        self.assertRegex(p.stdout, rf"used: +mx2\.multi\.test 127\.0\.0\.2:{self.port}")
        envs = self.sink.envelopes()
        self.assertEqual(len(envs), before + 1, envs)
        env = envs[-1]
        self.assertEqual(env["rcpt_tos"], ["reader@multi.test"])
        self.assertEqual(env["mail_from"], "sender@example.test")
        self.assertEqual(env["helo"], HELO)
        msg = self.sink.messages()[-1]
        self.assertIn(b"Subject: direct test", msg)
        self.assertIn(b"To: reader@multi.test", msg)

    def test_one_message_to_a_refused_recipient_and_to_nowhere(self):
        before = len(self.sink.envelopes())
        p = self.direct("test", "--to", REFUSED, "--template", self.template)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertRegex(p.stdout, r"(?m)^not sent: 550 5\.1\.1")
        p = self.direct("test", "--to", "someone@nullmx.test", "--template", self.template)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertRegex(p.stdout, r"(?m)^test failed at dns: .*null MX")
        self.assertEqual(len(self.sink.envelopes()), before)

    def test_failed_opportunistic_tls_is_retried_in_plaintext(self):
        # As send does: the handshake failure ends that connection (no plaintext on it), the
        # same host is reconnected without TLS, and the report says so. --tls starttls
        # (required) stops at the tls step instead.
        certs = tls_peers.make_certs(self.dir / "certs")
        ctx = tls_peers.tls10_only_context(certs["server"], certs["server_key"])
        with tls_peers.ScriptedSmtp(ctx=ctx, address="127.0.0.3", port=self.port,
                                    hostname="mx.tls.test") as mx:
            p = self.direct("check", "--probe-rcpt", "someone@tls.test")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertRegex(p.stdout, rf"not used: +mx\.tls\.test 127\.0\.0\.3:{self.port} "
                                       r"\(MX 10\): failed at tls: .*without TLS\n"
                                       rf"used: +mx\.tls\.test 127\.0\.0\.3:{self.port}")
            self.assertIn("TLS:          none", p.stdout)
            self.assertIn("check passed", p.stdout)
            p = self.direct("check", "--probe-rcpt", "someone@tls.test", "--tls", "starttls",
                            "--tls-verify", "no")
            self.assertEqual(p.returncode, 1, blast.describe(p))
            step, _ = self.failed_step(p)
            self.assertEqual(step, "tls", blast.describe(p))
            mx.wait_conns_closed()
            self.assertEqual(mx.messages, [])

    def test_bad_configuration(self):
        before = len(self.sink.envelopes())
        dns = ["--dns-server", self.dns.address, "--mx-port", str(self.port)]
        tpl = ["--template", str(self.template)]
        cases = [
            (["check", "--direct", "--probe-rcpt", "a@one.test", *dns], "--helo"),
            (["check", "--direct", "--helo", HELO, "--relay", "127.0.0.2:25",
              "--probe-rcpt", "a@one.test"], "not both"),
            (["check", "--direct", "--helo", HELO, *dns], "--domain D or --probe-rcpt"),
            (["check", "--direct", "--helo", HELO, "--probe-rcpt", "nodomain", *dns], "@domain"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test",
              "--probe-rcpt", "a@multi.test", *dns], "different domains"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test", "--ipv4-only",
              "--ipv6-only", *dns], "one of --ipv4-only and --ipv6-only"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test", "--tls", "implicit",
              *dns], "implicit"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test", "--dns-server",
              "300.1.1.1"], "--dns-server"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test", "--dns-timeout",
              "soon", *dns], "--dns-timeout"),
            (["check", "--direct", "--helo", HELO, "--domain", "one.test", "--user", "u", *dns],
             "--user"),
            (["check", "--relay", "127.0.0.2:25", "--mx-port", "2525"], "go with --direct"),
            (["check", "--relay", "127.0.0.2:25", "--domain", "one.test"], "--domain without --direct"),
            (["check", "--probe-rcpt", "a@one.test"], "--relay HOST:PORT is required"),
            (["test", "--direct", "--to", "a@one.test", *tpl, *dns], "--helo"),
            (["test", "--direct", "--helo", HELO, "--relay", "127.0.0.2:25", "--to", "a@one.test",
              *tpl], "not both"),
            (["test", "--direct", "--helo", HELO, "--to", "nodomain", *tpl, *dns], "@domain"),
            (["test", "--to", "a@one.test", *tpl], "--relay HOST:PORT is required"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                p = peers.run([blast.BIN, *args], timeout=30)
                self.assertEqual(p.returncode, 2, blast.describe(p))
                self.assertIn(needle, p.stderr, blast.describe(p))
                self.assertNotIn("check passed", p.stdout)
        self.assertEqual(len(self.sink.envelopes()), before)


if __name__ == "__main__":
    blast.main("test_check_direct")
