"""DKIM signatures made by smtpblast, checked by an implementation we did not write (python3-dkim).

Keys are made here with the openssl command (RSA 2048, Ed25519). The C++ sample writer
(message_tests --gtest_filter=DkimSamples.Write) signs a set of messages with them -- rsa-sha256
and ed25519-sha256, relaxed/relaxed and simple/simple; trailing blank lines, long folded headers,
RFC 2047 UTF-8 subjects, lines starting with "." -- and tools/dkim_verify.py verifies each one
with dkimpy, the public key given through its dnsfunc hook. Every sample must pass; the same
sample with one header byte or one body byte changed must fail.

Finding message_tests: $SMTPBLAST_MESSAGE_TESTS, else next to $SMTPBLAST (ctest sets that to
the smtpblast binary in <build>/bin), else the newest build*/bin/message_tests under
$SMTPBLAST_SOURCE_DIR. Skips when python3-dkim is missing (apt-get install python3-dkim).

opendkim-testmsg takes no key override, only DNS: test_dkim_send.py runs it (and dkimverify)
against a dnsmasq in a private network namespace (tools/dkim_ns_verify.py) on whole mailings.
"""

import glob
import os
import subprocess
import sys
import unittest

import dkim_verify  # tools/dkim_verify.py, on PYTHONPATH; in-process: importing dkim is slow
from support.workdir import Workdir

SOURCE_DIR = os.environ.get(
    "SMTPBLAST_SOURCE_DIR",
    os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
VERIFY = os.path.join(SOURCE_DIR, "tools", "dkim_verify.py")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


def find_message_tests():
    p = os.environ.get("SMTPBLAST_MESSAGE_TESTS")
    if p and os.access(p, os.X_OK):
        return p
    sb = os.environ.get("SMTPBLAST")
    if sb:
        p = os.path.join(os.path.dirname(sb), "message_tests")
        if os.access(p, os.X_OK):
            return p
    found = glob.glob(os.path.join(SOURCE_DIR, "build*", "bin", "message_tests"))
    return max(found, key=os.path.getmtime) if found else None


def have_dkimpy():
    try:
        import dkim  # noqa: F401,PLC0415
        import nacl  # noqa: F401,PLC0415  (ed25519 in dkimpy)
    except ImportError:
        return False
    return True


# RFC 8463 Appendix A.3: both signatures must verify with the RFC's keys. This checks the
# verifier tool itself, so a pass below means something.
RFC8463_MESSAGE = (
    b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
    b" subject : date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
    b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    b" d=football.example.com; i=@football.example.com;\r\n"
    b" q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    b" date : message-id : from : subject : date;\r\n"
    b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    b" b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    b" DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    b" dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n"
    b"From: Joe SixPack <joe@football.example.com>\r\n"
    b"To: Suzie Q <suzie@shopping.example.net>\r\n"
    b"Subject: Is dinner ready?\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
    b"\r\n"
    b"Hi.\r\n"
    b"\r\n"
    b"We lost the game.  Are you hungry yet?\r\n"
    b"\r\n"
    b"Joe.\r\n")
RFC8463_KEYS = [
    "brisbane._domainkey.football.example.com="
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    "test._domainkey.football.example.com="
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhd"
    "R6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5"
    "QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
]


@unittest.skipUnless(have_dkimpy(), "python3-dkim / python3-nacl not installed")
class DkimVerifyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = Workdir("sb-dkim-verify-")
        cls.tmp = str(cls.wd.path)
        cls.samples = os.path.join(cls.tmp, "samples")
        binary = find_message_tests()
        if binary is None:
            raise unittest.SkipTest("message_tests not built (set SMTPBLAST_MESSAGE_TESTS)")
        keys = {}
        for alg, args in (("rsa", ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                          ("ed25519", ["-algorithm", "ED25519"])):
            path = os.path.join(cls.tmp, alg + ".pem")
            subprocess.run(["openssl", "genpkey", *args, "-out", path], check=True,
                           capture_output=True)
            os.chmod(path, 0o600)
            keys[alg] = path
        env = dict(os.environ, SMTPBLAST_DKIM_SAMPLES=cls.samples,
                   SMTPBLAST_DKIM_RSA_KEY=keys["rsa"], SMTPBLAST_DKIM_ED25519_KEY=keys["ed25519"])
        r = subprocess.run([binary, "--gtest_filter=DkimSamples.Write"], env=env,
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("sample writer failed:\n" + r.stdout + r.stderr)
        cls.files = sorted(glob.glob(os.path.join(cls.samples, "*.eml")))

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()

    def run_tool(self, data, txt_args):
        path = os.path.join(self.tmp, "check.eml")
        with open(path, "wb") as f:
            f.write(data)
        return subprocess.run([PYTHON, VERIFY, path, *txt_args], capture_output=True, text=True)

    def verify(self, data, txt_file):
        """True when every signature passes (in-process; the CLI is tested once below)."""
        res = dkim_verify.verify_bytes(data, dkim_verify.parse_records((), [txt_file]))
        return bool(res) and all(ok for ok, _ in res), res

    def test_verifier_accepts_rfc8463_example(self):
        # Through the command line, as a user would run it.
        args = [a for k in RFC8463_KEYS for a in ("--txt", k)]
        r = self.run_tool(RFC8463_MESSAGE, args)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.count("PASS"), 2, r.stdout)
        r = self.run_tool(RFC8463_MESSAGE.replace(b"dinner", b"Dinner"), args)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)

    def test_all_cases_written(self):
        names = {os.path.basename(f) for f in self.files}
        for alg in ("rsa-sha256", "ed25519-sha256"):
            for canon in ("relaxed", "simple"):
                for case in ("trailing_blank_lines", "long_folded_headers", "utf8_subject",
                             "dot_lines", "whitespace", "empty_body", "basic"):
                    self.assertIn("%s.%s.%s.eml" % (alg, canon, case), names)

    def test_samples_verify_and_tampering_fails(self):
        self.assertTrue(self.files)
        for f in self.files:
            with self.subTest(sample=os.path.basename(f)):
                with open(f, "rb") as fh:
                    msg = fh.read()
                txt = f[:-4] + ".txt"
                ok, res = self.verify(msg, txt)
                self.assertTrue(ok, "%s: %s" % (f, res))

                # One header byte changed after signing (in the signed To: field).
                i = msg.index(b"\r\nTo: ") + 6
                bad = msg[:i] + bytes([msg[i] ^ 0x01]) + msg[i + 1:]
                self.assertFalse(self.verify(bad, txt)[0], "header tamper passed: %s" % f)

                # One body byte changed (or, for the empty body, a line added).
                sep = msg.index(b"\r\n\r\n") + 4
                if sep < len(msg):
                    bad = msg[:sep] + bytes([msg[sep] ^ 0x20]) + msg[sep + 1:]
                else:
                    bad = msg + b"P.S.\r\n"
                self.assertFalse(self.verify(bad, txt)[0], "body tamper passed: %s" % f)

    def test_relay_changes_survive_relaxed(self):
        # What relays do (prepend Received:, refold) keeps a relaxed signature valid.
        for f in self.files:
            if ".relaxed." not in f:
                continue
            with self.subTest(sample=os.path.basename(f)):
                with open(f, "rb") as fh:
                    msg = fh.read()
                msg = b"Received: from relay by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\n" + msg
                msg = msg.replace(b"\r\nTo: ", b"\r\nTo:\r\n\t  ", 1)
                ok, res = self.verify(msg, f[:-4] + ".txt")
                self.assertTrue(ok, "%s: %s" % (f, res))


if __name__ == "__main__":
    unittest.main(verbosity=2)
