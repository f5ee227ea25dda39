"""smtpblast doctor and send --preflight against a real DNS server: dnsmasq on loopback serves a
test zone with one domain that passes every check (pass.test) and one domain per failure the
issue lists. The sending addresses (--ip 192.0.2.x, TEST-NET-1) are only evaluated, never
contacted; the relay whose STARTTLS is checked is a scripted server on 127.0.0.1. DKIM keys are
made with openssl; their records come from `smtpblast dkim-record`. Each row's verdict and fix
text is asserted.

Run: SMTPBLAST=build/bin/smtpblast /usr/bin/python3 tests/integration/test_doctor.py
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import unittest

from support import blast, peers
from support.scripted import ScriptedSmtp

IP = "192.0.2.10"        # mail.pass.test: SPF, PTR and HELO all agree
PTR_BAD_IP = "192.0.2.20"  # its PTR names wrong.pass.test, which resolves to 192.0.2.21
HELO = "mail.pass.test"

TEMPLATE = ("From: News <news@{domain}>\r\nTo: {{{{email}}}}\r\nSubject: Hello {{{{name}}}}\r\n"
            "\r\nHello {{{{name}}}},\r\nthe news.\r\n")


def zone(records: dict) -> str:
    """The dnsmasq configuration: the fixed records plus each DKIM TXT record, split into
    strings of at most 255 octets."""
    lines = [
        "local=/test/",
        "local=/2.0.192.in-addr.arpa/",
        "local-ttl=60",
        # pass.test: everything right
        'txt-record=pass.test,"v=spf1 ip4:192.0.2.10 -all"',
        'txt-record=_dmarc.pass.test,"v=DMARC1; p=none; rua=mailto:dmarc@pass.test"',
        "mx-host=pass.test,mx.pass.test,10",
        "host-record=mx.pass.test,127.0.0.1",
        "host-record=mail.pass.test,192.0.2.10",  # A and the PTR for 192.0.2.10
        'txt-record=_mta-sts.pass.test,"v=STSv1; id=20240101"',
        'txt-record=_smtp._tls.pass.test,"v=TLSRPTv1; rua=mailto:tls@pass.test"',
        # PTR mismatch
        "ptr-record=20.2.0.192.in-addr.arpa,wrong.pass.test",
        "host-record=wrong.pass.test,192.0.2.21",
        # SPF without the IP
        'txt-record=noip.test,"v=spf1 ip4:192.0.2.99 -all"',
        "mx-host=noip.test,mx.pass.test,10",
        # SPF over 10 lookups: 4 includes of 2 lookups each, plus the includes themselves
        'txt-record=many.test,"v=spf1 include:i1.many.test include:i2.many.test '
        'include:i3.many.test include:i4.many.test ip4:192.0.2.10 -all"',
        "mx-host=many.test,mx.pass.test,10",
        # DKIM key mismatch, wrong k=, DMARC at the organizational domain only, misaligned d=
        'txt-record=_dmarc.keymis.test,"v=DMARC1; p=none"',
        'txt-record=_dmarc.wrongk.test,"v=DMARC1; p=none"',
        'txt-record=_dmarc.orgonly.test,"v=DMARC1; p=reject; sp=quarantine; adkim=s; aspf=s"',
        "mx-host=news.orgonly.test,mx.pass.test,10",
        'txt-record=_dmarc.misalign.test,"v=DMARC1; p=none"',
        "mx-host=misalign.test,mx.pass.test,10",
        # no DMARC anywhere
        'txt-record=nodmarc.test,"v=spf1 ip4:192.0.2.10 -all"',
        "mx-host=nodmarc.test,mx.pass.test,10",
        # null MX on the From domain
        "mx-host=nullmx.test,.,0",
        'txt-record=nullmx.test,"v=spf1 ip4:192.0.2.10 -all"',
        # the recipients' domain for send --preflight --direct
        "mx-host=rcpt.test,mx.rcpt.test,10",
        "host-record=mx.rcpt.test,127.0.0.1",
    ]
    for i in range(1, 5):
        lines.append(f'txt-record=i{i}.many.test,"v=spf1 a:h{i}.many.test mx:m{i}.many.test -all"')
    for name, value in records.items():
        parts = ",".join('"%s"' % value[p:p + 255] for p in range(0, len(value), 255))
        lines.append(f"txt-record={name},{parts}")
    return "\n".join(lines) + "\n"


class Relay(ScriptedSmtp):
    """A scripted relay: greeting, an EHLO reply with or without STARTTLS, then QUIT."""

    hostname = "relay.test"

    def __init__(self, starttls: bool):
        self.offer_starttls = starttls
        super().__init__("127.0.0.1")

    def ehlo_caps(self, c):
        return [b"STARTTLS", b"PIPELINING"] if self.offer_starttls else [b"PIPELINING"]

    def refuse(self, c, *args):
        return b"502 no\r\n"

    helo = mail = rcpt = data = auth_reply = starttls_reply = rset = other = refuse


class DoctorTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = blast.Workdir("sb-doctor-")
        d = cls.wd.path
        cls.keys = {}
        for name, args in (("a", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("b", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           ("e", ["-algorithm", "ED25519"])):
            path = d / f"{name}.pem"
            subprocess.run(["openssl", "genpkey", *args, "-out", str(path)], check=True,
                           capture_output=True)
            os.chmod(path, 0o600)
            cls.keys[name] = path

        def record(key, domain):
            p = peers.run([blast.BIN, "dkim-record", "--dkim-key", str(cls.keys[key]),
                           "--dkim-domain", domain, "--dkim-selector", "s1"], timeout=30)
            assert p.returncode == 0, blast.describe(p)
            m = re.search(r'^(\S+)\. 3600 IN TXT \((.*?)\)', p.stdout, re.S | re.M)
            return "".join(re.findall(r'"([^"]*)"', m.group(2)))

        cls.rec_a = record("a", "pass.test")
        rec_b = record("b", "keymis.test")
        rec_e = record("e", "wrongk.test")
        assert "k=ed25519" in rec_e, rec_e
        cls.records = {
            "s1._domainkey.pass.test": cls.rec_a,
            "s1._domainkey.keymis.test": rec_b,                                # not key a
            "s1._domainkey.wrongk.test": rec_e.replace("k=ed25519", "k=rsa"),  # wrong k=
            "s1._domainkey.orgonly.test": record("a", "orgonly.test"),
            "s1._domainkey.nodmarc.test": record("a", "nodmarc.test"),
            "s1._domainkey.noip.test": record("a", "noip.test"),
        }
        cls.dns = peers.Dnsmasq(zone(cls.records)).start()
        cls.relay = Relay(starttls=True).start()
        cls.plain_relay = Relay(starttls=False).start()
        cls.csv = blast.write_csv(d / "list.csv", ["email", "name"],
                                  [["a@gmail.com", "Ann"], ["b@rcpt.test", "Bob"],
                                   ["c@hotmail.com", "Cy"]])
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.relay.close()
        cls.plain_relay.close()
        cls.dns.stop()
        cls.wd.cleanup()

    def template(self, domain):
        type(self).n += 1
        path = self.wd.path / f"t{self.n}.eml"
        path.write_text(TEMPLATE.format(domain=domain), newline="")
        return path

    def args(self, domain, key="a", dkim_domain=None, ip=IP, relay=None):
        return ["--template", str(self.template(domain)),
                "--relay", (relay or self.relay).hostport, "--tls", "starttls",
                "--ip", ip, "--helo", HELO, "--dns-server", self.dns.address,
                "--dkim-key", str(self.keys[key]), "--dkim-selector", "s1",
                "--dkim-domain", dkim_domain or domain,
                "--unsubscribe-url", "https://%s/unsubscribe" % domain,
                "--recipients", str(self.csv)]

    def doctor(self, *args, expect=None):
        p = peers.run([blast.BIN, "doctor", "--json", *args], timeout=60)
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        if expect is not None:
            self.assertEqual(p.returncode, expect, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual(p.returncode, 1 if out["fail"] else 0)
        return out["rows"]

    def row(self, rows, check, subject):
        found = [r for r in rows if r["check"] == check and r["subject"] == subject]
        self.assertEqual(len(found), 1, "no single row %s %s in:\n%s" % (
            check, subject, "\n".join("%s %s %s" % (r["verdict"], r["check"], r["subject"])
                                      for r in rows)))
        return found[0]

    # --- the domain that passes everything ---------------------------------------------------

    def test_pass_domain_passes_every_check(self):
        rows = self.doctor(*self.args("pass.test"), expect=0)
        bad = [r for r in rows if r["verdict"] != "PASS"]
        self.assertEqual(bad, [], json.dumps(bad, indent=1))
        checks = {r["check"] for r in rows}
        for c in ("spf", "dkim", "dkim-alignment", "dmarc", "dmarc-alignment", "ptr", "helo", "mx",
                  "mta-sts", "tls-rpt", "starttls", "from", "message-id", "date",
                  "list-unsubscribe", "line-length", "size", "recipients"):
            self.assertIn(c, checks)
        self.assertTrue(self.row(rows, "spf", "pass.test for " + IP)["evidence"].startswith(
            "libspf2: pass ("))
        self.assertEqual(self.row(rows, "ptr", IP)["evidence"],
                         "192.0.2.10 -> PTR mail.pass.test -> 192.0.2.10")
        self.assertIn("signed", self.row(rows, "list-unsubscribe", "List-Unsubscribe:")["evidence"])
        self.assertIn("added by smtpblast", self.row(rows, "date", "Date:")["evidence"])
        self.assertTrue(self.row(rows, "recipients", "")["evidence"].startswith(
            "2 of 3 recipients (66.7%) at Gmail, Yahoo or Microsoft"))

    def test_text_report_names_the_fix(self):
        p = peers.run([blast.BIN, "doctor", *self.args("nodmarc.test")], timeout=60)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("FAIL   dmarc nodmarc.test\n", p.stdout)
        self.assertIn('fix:      _dmarc.nodmarc.test. 3600 IN TXT "v=DMARC1; p=none; '
                      'rua=mailto:dmarc-reports@nodmarc.test"', p.stdout)
        self.assertRegex(p.stdout, r"\d+ passed, \d+ warnings, [1-9]\d* failed\n$")

    # --- one case per failure -----------------------------------------------------------------

    def test_spf_without_the_ip(self):
        rows = self.doctor(*self.args("noip.test"), expect=1)
        r = self.row(rows, "spf", "noip.test for " + IP)
        self.assertEqual(r["verdict"], "FAIL")
        self.assertIn("fail", r["evidence"])
        self.assertEqual(r["fix"], 'noip.test. 3600 IN TXT "v=spf1 ip4:192.0.2.10 ip4:192.0.2.99 -all"')

    def test_spf_over_ten_lookups(self):
        rows = self.doctor(*self.args("many.test"), expect=1)
        r = self.row(rows, "spf", "many.test lookups")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertTrue(r["evidence"].startswith("11 or more terms"), r["evidence"])
        self.assertTrue(r["fix"].startswith("flatten the record"), r["fix"])
        self.assertIn('many.test. 3600 IN TXT "v=spf1 ip4:192.0.2.10 -all"', r["fix"])

    def test_dkim_key_mismatch(self):
        rows = self.doctor(*self.args("keymis.test"), expect=1)
        r = self.row(rows, "dkim", "s1._domainkey.keymis.test")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertIn("the published key is a different one", r["expected"])
        want = peers.run([blast.BIN, "dkim-record", "--dkim-key", str(self.keys["a"]),
                          "--dkim-domain", "keymis.test", "--dkim-selector", "s1"], timeout=30)
        value = "".join(re.findall(r'"([^"]*)"', want.stdout))
        self.assertEqual(r["fix"], "s1._domainkey.keymis.test. 3600 IN TXT " +
                         " ".join('"%s"' % value[p:p + 255] for p in range(0, len(value), 255)))
        self.assertEqual(self.row(rows, "dmarc-alignment", "keymis.test")["verdict"], "FAIL")

    def test_dkim_wrong_key_type(self):
        rows = self.doctor(*self.args("wrongk.test", key="e"), expect=1)
        r = self.row(rows, "dkim", "s1._domainkey.wrongk.test")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertIn("k=ed25519: the key is Ed25519, the record says k=rsa", r["expected"])
        self.assertIn("k=ed25519", r["fix"])

    def test_no_dmarc(self):
        rows = self.doctor(*self.args("nodmarc.test"), expect=1)
        r = self.row(rows, "dmarc", "nodmarc.test")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertEqual(r["evidence"], "no DMARC record at _dmarc.nodmarc.test")
        self.assertEqual(r["fix"], '_dmarc.nodmarc.test. 3600 IN TXT "v=DMARC1; p=none; '
                                   'rua=mailto:dmarc-reports@nodmarc.test"')

    def test_dmarc_on_the_organizational_domain_only(self):
        rows = self.doctor(*self.args("news.orgonly.test", dkim_domain="orgonly.test"), expect=1)
        r = self.row(rows, "dmarc", "news.orgonly.test")
        self.assertEqual(r["verdict"], "PASS")
        self.assertIn("_dmarc.orgonly.test: v=DMARC1", r["evidence"])
        self.assertIn("the organizational domain's record applies", r["evidence"])
        self.assertIn("policy quarantine", r["evidence"])  # sp= applies to the subdomain
        a = self.row(rows, "dmarc-alignment", "news.orgonly.test")
        self.assertEqual(a["verdict"], "FAIL")
        self.assertIn("adkim=s", a["evidence"])
        self.assertTrue(a["fix"].startswith("sign with --dkim-domain news.orgonly.test"), a["fix"])
        self.assertIn('_dmarc.orgonly.test. 3600 IN TXT "v=DMARC1; p=reject; adkim=r; aspf=r"',
                      a["fix"])
        # relaxed, d=orgonly.test aligns with news.orgonly.test
        self.assertEqual(self.row(rows, "dkim-alignment", "d=orgonly.test")["verdict"], "PASS")

    def test_misaligned_dkim_domain(self):
        rows = self.doctor(*self.args("misalign.test", dkim_domain="pass.test"), expect=1)
        r = self.row(rows, "dkim-alignment", "d=pass.test")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertEqual(r["fix"], "sign with --dkim-domain misalign.test (a key published at "
                                   "SEL._domainkey.misalign.test), or send From an address at "
                                   "pass.test")
        self.assertEqual(self.row(rows, "dkim", "s1._domainkey.pass.test")["verdict"], "PASS")
        self.assertEqual(self.row(rows, "dmarc-alignment", "misalign.test")["verdict"], "FAIL")

    def test_ptr_mismatch(self):
        rows = self.doctor(*self.args("pass.test", ip=PTR_BAD_IP), expect=1)
        r = self.row(rows, "ptr", PTR_BAD_IP)
        self.assertEqual(r["verdict"], "FAIL")
        self.assertEqual(r["evidence"], "192.0.2.20 -> PTR wrong.pass.test -> 192.0.2.21")
        self.assertEqual(r["fix"].split("\n")[0], "wrong.pass.test. 3600 IN A 192.0.2.20")
        h = self.row(rows, "helo", HELO + " for " + PTR_BAD_IP)
        self.assertEqual(h["verdict"], "FAIL")
        self.assertEqual(h["fix"], "mail.pass.test. 3600 IN A 192.0.2.20")

    def test_null_mx_on_the_from_domain(self):
        rows = self.doctor(*self.args("nullmx.test"), expect=1)
        r = self.row(rows, "mx", "nullmx.test (From)")
        self.assertEqual(r["verdict"], "FAIL")
        self.assertIn("null MX", r["evidence"])
        self.assertEqual(r["fix"], "replace the null MX:\nnullmx.test. 3600 IN MX 10 mail.nullmx.test.")

    def test_no_mta_sts(self):
        rows = self.doctor(*self.args("nodmarc.test"))
        r = self.row(rows, "mta-sts", "nodmarc.test")
        self.assertEqual(r["verdict"], "WARN")
        self.assertEqual(r["evidence"], "no TXT v=STSv1 at _mta-sts.nodmarc.test")
        self.assertEqual(r["fix"].split("\n")[0],
                         '_mta-sts.nodmarc.test. 3600 IN TXT "v=STSv1; id=20240101000000"')
        t = self.row(rows, "tls-rpt", "nodmarc.test")
        self.assertEqual(t["verdict"], "WARN")
        self.assertEqual(t["fix"], '_smtp._tls.nodmarc.test. 3600 IN TXT "v=TLSRPTv1; '
                                   'rua=mailto:tls-reports@nodmarc.test"')

    def test_relay_without_starttls(self):
        rows = self.doctor(*self.args("pass.test", relay=self.plain_relay), expect=1)
        r = self.row(rows, "starttls", "relay " + self.plain_relay.hostport)
        self.assertEqual(r["verdict"], "FAIL")
        self.assertTrue(r["evidence"].startswith("no STARTTLS offered: 250-relay.test"), r["evidence"])

    def test_message_without_unsubscribe_or_signature(self):
        tpl = self.template("pass.test")
        rows = self.doctor("--template", str(tpl), "--relay", self.relay.hostport, "--ip", IP,
                           "--helo", HELO, "--dns-server", self.dns.address, expect=1)
        self.assertEqual(self.row(rows, "list-unsubscribe", "List-Unsubscribe:")["fix"],
                         "send with --unsubscribe-url 'https://your-domain/unsubscribe/{{token}}' "
                         "--unsubscribe-secret-file FILE (smtpblast adds both fields and signs them)")
        self.assertEqual(self.row(rows, "dkim", "pass.test")["verdict"], "FAIL")

    # --- the command line -----------------------------------------------------------------------

    def test_send_flags_are_accepted(self):
        # send's command line with doctor in front: send-only flags are accepted and ignored.
        rows = self.doctor(*self.args("pass.test"), "--task", str(self.wd.path / "x.db"),
                           "--rate", "30/min", "--connections", "3", "--no-pipelining",
                           "--backup-dir", str(self.wd.path), expect=0)
        self.assertTrue(rows)
        self.assertFalse((self.wd.path / "x.db").exists())

    def test_recipients_from_the_task(self):
        task = self.wd.path / "imported.db"
        p = peers.run([blast.BIN, "import", "--task", str(task), "--recipients", str(self.csv)],
                      timeout=30)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        args = self.args("pass.test")
        i = args.index("--recipients")
        del args[i:i + 2]
        rows = self.doctor(*args, "--task", str(task), expect=0)
        self.assertTrue(self.row(rows, "recipients", "")["evidence"].startswith(
            "2 of 3 recipients (66.7%) at Gmail, Yahoo or Microsoft"))

    def test_usage_errors_exit_2(self):
        for args in (["--template", "/nonexistent"],
                     ["--template", str(self.template("pass.test")), "--ip", "not-an-ip"],
                     ["--template", str(self.template("pass.test")), "--dns-server", "nope"],
                     ["--template", str(self.template("pass.test")), "--no-such-flag"]):
            p = peers.run([blast.BIN, "doctor", *args], timeout=30)
            self.assertEqual(p.returncode, 2, blast.describe(p))

    def test_dns_server_that_does_not_answer_exits_2(self):
        # A UDP socket nobody reads: every question times out. The first timeout marks the
        # server dead, later questions are not asked; the exit code says "environment".
        import socket
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:
            mute.bind(("127.0.0.1", 0))
            p = peers.run([blast.BIN, "doctor", "--template", str(self.template("pass.test")),
                           "--ip", IP, "--dns-server", "127.0.0.1:%d" % mute.getsockname()[1],
                           "--dns-timeout", "200ms"], timeout=60)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("smtpblast: the DNS server did not answer (TXT lookup for pass.test: timed "
                      "out)", p.stderr)
        self.assertIn("not asked: an earlier lookup got no answer", p.stdout)

    # --- send --preflight -----------------------------------------------------------------------

    def preflight_send(self, domain, *extra):
        type(self).n += 1
        task = self.wd.path / f"pf{self.n}.db"
        maildir = self.wd.path / f"mail{self.n}"
        csv = blast.write_csv(self.wd.path / f"r{self.n}.csv", ["email", "name"], [["x@rcpt.test", "X"]])
        sink = peers.AiosmtpdServer(address="127.0.0.1", maildir=maildir).start()
        try:
            p = peers.run([blast.BIN, "send", "--preflight", "--task", str(task),
                           "--template", str(self.template(domain)),
                           "--recipients", str(csv),
                           "--direct", "--helo", HELO, "--ip", IP,
                           "--dns-server", self.dns.address, "--mx-port", str(sink.port),
                           "--dkim-key", str(self.keys["a"]), "--dkim-selector", "s1",
                           "--dkim-domain", domain,
                           "--unsubscribe-url", "https://%s/unsubscribe" % domain, *extra],
                          timeout=60)
            delivered = list(maildir.glob("*.eml")) if maildir.exists() else []
        finally:
            sink.stop()
        return p, delivered, task

    def test_preflight_allows_a_passing_mailing(self):
        p, delivered, _ = self.preflight_send("pass.test")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("PASS   spf pass.test for 192.0.2.10", p.stderr)
        # --direct: STARTTLS is asked of the recipients' MX (aiosmtpd offers none here: a WARN,
        # since the recipient's server is not the sender's to fix).
        self.assertRegex(p.stderr, r"WARN   starttls rcpt\.test \(MX mx\.rcpt\.test 127\.0\.0\.1:\d+\)")
        self.assertEqual(len(delivered), 1, blast.describe(p))

    def test_preflight_refuses_a_failing_mailing(self):
        p, delivered, task = self.preflight_send("nodmarc.test")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn("FAIL   dmarc nodmarc.test", p.stderr)
        self.assertIn("not sending (fix them, or give --force to send anyway)", p.stderr)
        self.assertEqual(delivered, [])
        self.assertFalse(task.exists())

    def test_send_ip_without_preflight_is_a_usage_error(self):
        p = peers.run([blast.BIN, "send", "--task", str(self.wd.path / "noip.db"),
                       "--template", str(self.template("pass.test")), "--relay", "127.0.0.1:1",
                       "--ip", IP], timeout=30)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--ip goes with --preflight", p.stderr)
        self.assertFalse((self.wd.path / "noip.db").exists())

    def test_preflight_force_sends_anyway(self):
        p, delivered, _ = self.preflight_send("nodmarc.test", "--force")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("sending anyway (--force)", p.stderr)
        self.assertEqual(len(delivered), 1, blast.describe(p))


if __name__ == "__main__":
    unittest.main()
