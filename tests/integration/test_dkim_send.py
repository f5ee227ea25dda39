#!/usr/bin/python3
"""Issue 7: DKIM-signed, one-click-unsubscribe mailings sent end to end, then verified by
verifiers we did not write: opendkim-testmsg (opendkim-tools) and dkimverify (python3-dkim).

Keys are made with openssl; their TXT records come from `smtpblast dkim-record` and are served
by dnsmasq inside a private network namespace (tools/dkim_ns_verify.py), because both
verifiers only look keys up in DNS. Messages go through `smtpblast send` into the built-in
sink on 127.0.0.1 (DATA with --no-chunking, BDAT otherwise) or into --pickup files. Every
signature of every message must pass both verifiers; a copy with one header byte or one body
byte changed must fail both.

Run: /usr/bin/python3 tests/integration/test_dkim_send.py  (as root; see blast.py)
"""

import json
import os
import re
import shutil
import subprocess
import unittest

import dkim_ns_verify  # tools/dkim_ns_verify.py (tools/ is on PYTHONPATH)
from support import blast, peers

NS_VERIFY = blast.SOURCE_DIR / "tools" / "dkim_ns_verify.py"

DOMAIN = "example.com"
# Literal UTF-8 in Subject (8-bit, SMTPUTF8) and a merged UTF-8 name (RFC 2047 words); a long
# folded header; lines that start with "."; trailing white space and trailing blank lines.
TEMPLATE = ("From: Example News <news@example.com>\n"
            "Subject: Grüße, {{name}}: the March issue of our newsletter is out today\n"
            "X-Campaign: spring sale announcement for all of our subscribers in every region\n"
            "  of the world, folded over several lines because it is long, very long indeed\n"
            "\tand longer still\n"
            "Feedback-ID: 42:march:newsletter:example\n"
            "MIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: 8bit\n"
            "\n"
            "Hello {{name}},\n"
            ".a line that starts with a dot\n"
            "..and one with two\n"
            ".\n"
            "trailing white space   \n"
            "tabs\tinside  and   runs\n"
            "\n"
            "\n"
            "\n").encode()
RECIPIENTS = [("ann@example.test", "Ann"), ("zoe@example.test", "Zoë Ünal-Ørsted"),
              ("dot.user@example.test", ".Dotty")]
UNSUB_URL = "https://unsub.example.com/u/{{token}}?n={{name}}"


def split_header(msg: bytes):
    sep = msg.index(b"\r\n\r\n")
    return msg[:sep + 2], msg[sep + 4:]


def dkim_fields(msg: bytes):
    head, _ = split_header(msg)
    return [f for f in re.split(rb"\r\n(?![ \t])", head) if f.lower().startswith(b"dkim-signature:")]


def unfold(field: bytes) -> str:
    return re.sub(r"\s+", "", field.decode())


@unittest.skipIf(dkim_ns_verify.can_run(), "private namespace for the test DNS: %s"
                 % dkim_ns_verify.can_run())
class DkimSendTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = blast.Workdir("sb-dkim-send-")
        d = cls.wd.path
        cls.rsa, cls.ed = d / "rsa.pem", d / "ed.pem"
        for path, args in ((cls.rsa, ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]),
                           (cls.ed, ["-algorithm", "ED25519"])):
            subprocess.run(["openssl", "genpkey", *args, "-out", str(path)], check=True,
                           capture_output=True)
            os.chmod(path, 0o600)
        cls.secret = d / "secret"
        cls.secret.write_text(os.urandom(24).hex() + "\n")
        os.chmod(cls.secret, 0o600)
        cls.tpl = d / "news.eml"
        cls.tpl.write_bytes(TEMPLATE)
        cls.csv = blast.write_csv(d / "list.csv", ["email", "name"], RECIPIENTS)
        # The records to publish, as a user gets them.
        p = peers.run([blast.BIN, "dkim-record", "--dkim-key", cls.rsa, "--dkim-key", cls.ed,
                       "--dkim-domain", DOMAIN, "--dkim-selector", "r2024",
                       "--dkim-selector", "e2024"], timeout=30)
        assert p.returncode == 0, blast.describe(p)
        cls.txt = {}
        for m in re.finditer(r'^(\S+)\. 3600 IN TXT \((.*?)\)', p.stdout, re.S | re.M):
            cls.txt[m.group(1)] = "".join(re.findall(r'"([^"]*)"', m.group(2)))
        assert set(cls.txt) == {"r2024._domainkey.example.com", "e2024._domainkey.example.com"}, \
            p.stdout
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()

    def fresh(self, name):
        type(self).n += 1
        return self.wd.path / ("%s-%d" % (name, self.n))

    def keys(self, *canon):
        args = ["--dkim-key", self.rsa, "--dkim-selector", "r2024",
                "--dkim-key", self.ed, "--dkim-selector", "e2024", "--dkim-domain", DOMAIN]
        for c in canon:
            args += ["--dkim-canon", c]
        return args

    def unsub(self):
        return ["--unsubscribe-url", UNSUB_URL, "--unsubscribe-mailto", "unsub@example.com",
                "--unsubscribe-secret-file", self.secret]

    def send_to_sink(self, *extra):
        with blast.BlastSink() as sink:
            p = blast.send(self.fresh("task.db"), self.tpl, sink.hostport, self.csv, *extra)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        msgs = {m.rcpts[0]: m.body for m in sink.records()}
        self.assertEqual(set(msgs), {e for e, _ in RECIPIENTS})
        return msgs, p

    def verify(self, messages):
        """{label: bytes} -> {label: [(sig, opendkim rc, dkimverify rc, texts)]}."""
        d = self.fresh("verify")
        d.mkdir()
        paths = {}
        for i, (label, data) in enumerate(messages.items()):
            paths[label] = d / ("%03d.eml" % i)
            paths[label].write_bytes(data)
        out = d / "results.json"
        p = peers.run(["/usr/bin/python3", NS_VERIFY, "--out", out,
                       *("--txt=%s=%s" % kv for kv in self.txt.items()),
                       *paths.values()], timeout=300)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        res = json.loads(out.read_text())
        return {label: [(r["sig"], r["opendkim"][0], r["dkimverify"][0],
                         r["opendkim"][1] + " | " + r["dkimverify"][1])
                        for r in res[str(path)]] for label, path in paths.items()}

    def assert_verified(self, messages, nsigs, algs=("rsa-sha256", "ed25519-sha256")):
        """Every signature passes both verifiers; one changed header or body byte fails both."""
        batch = {}
        for label, msg in messages.items():
            self.assertEqual(len(dkim_fields(msg)), nsigs, msg[:600])
            batch[label] = msg
            head, body = split_header(msg)
            i = head.index(b"\r\nSubject: ") + 11
            batch[label + " header-tampered"] = head[:i] + bytes([head[i] ^ 1]) + head[i + 1:] + \
                b"\r\n" + body
            j = body.index(b"Hello")
            batch[label + " body-tampered"] = head + b"\r\n" + body[:j] + b"J" + body[j + 1:]
        res = self.verify(batch)
        for label, sigs in res.items():
            self.assertEqual(len(sigs), nsigs, label)
            self.assertEqual(sorted(s[0].split(";")[0] for s in sigs),
                             sorted("a=" + a for a in algs), label)
            for sig, od, dv, text in sigs:
                with self.subTest(message=label, sig=sig):
                    if "tampered" in label:
                        self.assertNotEqual(od, 0, "opendkim accepted a changed message: " + text)
                        self.assertNotEqual(dv, 0, "dkimverify accepted a changed message: " + text)
                    else:
                        self.assertEqual(od, 0, "opendkim-testmsg: " + text)
                        self.assertEqual(dv, 0, "dkimverify: " + text)
        return res

    # ---------------------------------------------------------------------------------------

    def test_data_relaxed_both_keys_with_unsubscribe(self):
        msgs, p = self.send_to_sink("--no-chunking", *self.keys(), *self.unsub())
        self.assertNotIn("warning", p.stderr)  # aligned, keys 0600
        res = self.assert_verified(msgs, 2)
        self.assertIn("c=relaxed/relaxed", res["ann@example.test"][0][0])
        zoe = msgs["zoe@example.test"]
        # The template's literal UTF-8 and the merged name are one run of encoded-words (no
        # raw 8-bit beside them: issue 12), and the body is quoted-printable.
        self.assertIn(b"Subject: =?UTF-8?B?R3LDvMOfZSwg", zoe)
        self.assertNotIn(b"Subject: Gr\xc3", zoe)
        self.assertIn(b"\r\n.a line that starts with a dot\r\n..and one with two\r\n.\r\n", zoe)
        self.assertTrue(zoe.endswith(b"\r\n\r\n\r\n\r\n"))

    def test_bdat_simple_simple(self):
        msgs, _ = self.send_to_sink(*self.keys("simple/simple"), *self.unsub())
        res = self.assert_verified(msgs, 2)
        self.assertIn("c=simple/simple", res["ann@example.test"][0][0])

    def test_mixed_canonicalizations_one_key_each(self):
        for alg, canon in (("rsa", "relaxed/simple"), ("ed", "simple/relaxed")):
            with self.subTest(alg=alg):
                key, sel = (self.rsa, "r2024") if alg == "rsa" else (self.ed, "e2024")
                msgs, _ = self.send_to_sink("--dkim-key", key, "--dkim-selector", sel,
                                            "--dkim-domain", DOMAIN, "--dkim-canon", canon)
                algs = ("rsa-sha256",) if alg == "rsa" else ("ed25519-sha256",)
                res = self.assert_verified(msgs, 1, algs)
                self.assertIn("c=" + canon, res["ann@example.test"][0][0])

    def test_pickup_files_verify(self):
        pdir = self.fresh("pickup")
        pdir.mkdir()
        p = blast.send(self.fresh("task.db"), self.tpl, None, self.csv, "--pickup", pdir,
                       *self.keys(), *self.unsub())
        self.assertEqual(p.returncode, 0, blast.describe(p))
        files = sorted(pdir.glob("*.eml"))
        self.assertEqual(len(files), len(RECIPIENTS))
        self.assert_verified({f.name: f.read_bytes() for f in files}, 2)

    def test_backup_copy_is_the_message_sent(self):
        bdir = self.fresh("backup")
        bdir.mkdir()
        msgs, _ = self.send_to_sink("--no-chunking", "--backup-dir", bdir, *self.keys(),
                                    *self.unsub())
        backups = [f.read_bytes() for f in bdir.glob("*.eml")]
        self.assertEqual(sorted(backups), sorted(msgs.values()))  # same t=, same signatures

    def test_unsubscribe_headers_and_tokens(self):
        msgs, p = self.send_to_sink(*self.keys(), *self.unsub())
        task_key = None
        for email, name in RECIPIENTS:
            head, _ = split_header(msgs[email])
            unfolded = re.sub(rb"\r\n[ \t]+", b" ", head).decode()
            m = re.search(r"^List-Unsubscribe: <https://unsub\.example\.com/u/([A-Za-z0-9_-]+)"
                          r"\?n=([^>]*)>, <mailto:unsub@example\.com>\r$", unfolded, re.M)
            self.assertIsNotNone(m, unfolded)
            self.assertIn("\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", unfolded)
            self.assertNotIn("Precedence", unfolded)
            from urllib.parse import unquote
            self.assertEqual(unquote(m.group(2)), name)  # percent-encoded merge field
            for f in dkim_fields(msgs[email]):
                h = re.search(r"h=([^;]*)", unfold(f)).group(1).split(":")
                for want in ("list-unsubscribe", "list-unsubscribe-post", "feedback-id", "from"):
                    self.assertIn(want, h)
                self.assertEqual(h.count("from"), 2)  # over-signed
            token = m.group(1)
            v = peers.run([blast.BIN, "unsub-verify", "--secret-file", self.secret, "--json",
                           token], timeout=30)
            self.assertEqual(v.returncode, 0, blast.describe(v))
            got = json.loads(v.stdout)
            self.assertEqual(got["recipient"], email)
            task_key = task_key or got["task"]
            self.assertEqual(got["task"], task_key)  # one task, one id
            # The whole URL pasted works too.
            url = "https://unsub.example.com/u/" + token
            v = peers.run([blast.BIN, "unsub-verify", "--secret-file", self.secret, url],
                          timeout=30)
            self.assertEqual(v.returncode, 0, blast.describe(v))
            self.assertIn("recipient: " + email, v.stdout)
            # One character changed: rejected, exit 1, with the reason.
            bad = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
            v = peers.run([blast.BIN, "unsub-verify", "--secret-file", self.secret, bad],
                          timeout=30)
            self.assertEqual(v.returncode, 1, blast.describe(v))
            self.assertIn("token", v.stderr)
            self.assertEqual(v.stdout, "")
        # Another secret: rejected; a missing secret file: usage error 2.
        other = self.fresh("secret2")
        other.write_text("another secret of enough length\n")
        v = peers.run([blast.BIN, "unsub-verify", "--secret-file", other, token], timeout=30)
        self.assertEqual(v.returncode, 1, blast.describe(v))
        v = peers.run([blast.BIN, "unsub-verify", "--secret-file", self.fresh("none"), token],
                      timeout=30)
        self.assertEqual(v.returncode, 2, blast.describe(v))
        # The secret is nowhere in the task store.
        secret = self.secret.read_text().strip().encode()
        for db in self.wd.path.glob("task.db-*"):
            self.assertNotIn(secret, db.read_bytes())

    def test_configuration_errors_exit_2_and_send_nothing(self):
        garbage = self.fresh("garbage.pem")
        garbage.write_text("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        os.chmod(garbage, 0o600)
        cases = [
            (["--dkim-key", garbage, "--dkim-selector", "s", "--dkim-domain", DOMAIN],
             str(garbage)),
            (["--dkim-key", self.fresh("missing.pem"), "--dkim-selector", "s",
              "--dkim-domain", DOMAIN], "missing.pem"),
            (["--dkim-key", self.rsa, "--dkim-domain", DOMAIN], "--dkim-selector"),
            (["--dkim-key", self.rsa, "--dkim-selector", "s"], "--dkim-domain"),
            (["--dkim-key", self.ed, "--dkim-selector", "s", "--dkim-domain", DOMAIN,
              "--dkim-algorithm", "rsa-sha256"], "Ed25519"),
            (["--dkim-key", self.rsa, "--dkim-selector", "s", "--dkim-domain", DOMAIN,
              "--dkim-canon", "loose/relaxed"], "--dkim-canon"),
            (["--unsubscribe-url", "http://unsub.example.com/u"], "https://"),
            (["--unsubscribe-url", UNSUB_URL], "--unsubscribe-secret-file"),
            (["--unsubscribe-url", UNSUB_URL, "--unsubscribe-secret", "s3cr3t-on-argv-0123"],
             "--unsubscribe-secret-file"),
        ]
        with blast.BlastSink() as sink:
            for extra, want in cases:
                with self.subTest(want=want):
                    task = self.fresh("task.db")
                    p = blast.send(task, self.tpl, sink.hostport, self.csv, *extra)
                    self.assertEqual(p.returncode, 2, blast.describe(p))
                    self.assertIn(want, p.stderr)
                    self.assertNotIn("s3cr3t-on-argv", p.stderr)
                    self.assertFalse(task.exists(), "the task was created before the key loaded")
        self.assertEqual(sink.records(), [])

    def test_warnings_misaligned_domain_and_readable_key(self):
        loose = self.fresh("loose.pem")
        shutil.copy(self.ed, loose)
        os.chmod(loose, 0o644)
        msgs, p = self.send_to_sink("--dkim-key", loose, "--dkim-selector", "e2024",
                                    "--dkim-domain", "mailer.example.net")
        self.assertRegex(p.stderr, r"warning: .*d=mailer\.example\.net.*DMARC")
        self.assertRegex(p.stderr, r"warning: .*loose\.pem.*readable by group or others")
        self.assertEqual(len(msgs), len(RECIPIENTS))  # warnings, not errors


if __name__ == "__main__":
    blast.main("test_dkim_send")
