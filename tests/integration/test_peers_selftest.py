#!/usr/bin/python3
"""Self-test of the peer fixtures in tests/support (peers, sinks, procs), with Postfix's smtp-source (and
Python's smtplib for the TLS/AUTH hooks) as the sender: no smtpblast needed.

Run: tools/itest.sh test_peers_selftest  (see tests/support/__init__.py)
Env: SMTPBLAST_SOURCE_DIR (repo root; default: two levels up from this file),
     SMTPBLAST (path of the smtpblast binary; unused here),
     SMTPBLAST_KEEP_PEERS=1 keeps the peers' temp dirs for debugging.
"""

import os
import smtplib
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from support import peers
from support.procs import SOURCE_DIR

SMTP_SOURCE = peers.SMTP_SOURCE


def smtp_source(hostport, *args, timeout=60):
    """Run smtp-source against hostport; returns CompletedProcess."""
    return subprocess.run([SMTP_SOURCE, *args, hostport], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def make_cert(directory):
    cert, key = Path(directory) / "cert.pem", Path(directory) / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=mx.example.test", "-addext",
                    "subjectAltName=DNS:mx.example.test,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    os.chmod(key, 0o644)  # smtpd reads it before dropping privileges; aiosmtpd as us
    return cert, key


TEMPLATE = (b"From: Sender <a@example.test>\n"
            b"To: b@example.test\n"
            b"Subject: fixture self-test\n"
            b"Received: from a template's own hop (not Postfix's)\n"
            b"Message-ID: <selftest@example.test>\n"
            b"Date: Sat, 1 Mar 2025 10:00:00 +0000\n"
            b"MIME-Version: 1.0\n"
            b"Content-Type: text/plain; charset=utf-8\n"
            b"\n"
            b"Hello,\n"
            b".a line that starts with a dot\n"
            b"..two dots\n"
            b"\n"
            b"  indented line\n"
            b"last line\n")


class StripTraceHeadersTest(unittest.TestCase):
    def test_strips_only_postfix_prepended_block(self):
        delivered = (b"Return-Path: <a@example.test>\n"
                     b"X-Original-To: b@example.test\n"
                     b"Delivered-To: b@example.test\n"
                     b"Received: from vm (localhost [127.0.0.1])\n"
                     b"\tby mx.example.test (Postfix) with SMTP id 1234\n"
                     b"\tfor <b@example.test>; Sat,  1 Mar 2025 10:00:00 +0000 (UTC)\n") + TEMPLATE
        self.assertEqual(peers.strip_trace_headers(delivered), TEMPLATE)

    def test_leaves_message_without_trace_alone(self):
        self.assertEqual(peers.strip_trace_headers(TEMPLATE), TEMPLATE)
        self.assertEqual(peers.strip_trace_headers(b"Subject: x\r\n\r\nbody\r\n"),
                         b"Subject: x\r\n\r\nbody\r\n")

    def test_crlf_lf(self):
        self.assertEqual(peers.crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n")
        self.assertEqual(peers.lf(b"a\r\nb\r\n"), b"a\nb\n")


class ProcessTest(unittest.TestCase):
    def test_exit_code_output_and_rusage(self):
        p = peers.run(["/bin/sh", "-c", "echo out; echo err >&2; exit 3"], timeout=10)
        self.assertEqual(p.returncode, 3)
        self.assertEqual(p.stdout, "out\n")
        self.assertEqual(p.stderr, "err\n")
        self.assertIsNotNone(p.cpu_seconds)
        self.assertGreater(p.max_rss_kb, 0)

    def test_timeout_kills(self):
        p = peers.Process(["sleep", "30"], timeout=0.5)
        with p:
            with self.assertRaises(peers.PeerError):
                p.wait()
        self.assertIsNotNone(p.returncode)
        self.assertFalse(peers._pid_alive(p.pid))


class PostfixInstanceTest(unittest.TestCase):
    def assert_gone(self, pf):
        self.assertFalse(pf._instance_pids(), "processes of the instance left behind")
        self.assertFalse(pf.dir.exists(), "temp dir left behind")

    def test_delivers_smtp_source_messages(self):
        pf = peers.PostfixInstance()
        with pf:
            self.assertTrue(pf.queue_empty())
            r = smtp_source(pf.hostport, "-m", "5", "-f", "a@example.test",
                            "-t", "b@example.test")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            msgs = pf.wait_for(5, timeout=30)
            self.assertEqual(len(msgs), 5)
            for m in msgs:
                self.assertIn(b"Delivered-To: b@example.test\n", m)
                self.assertIn(b"Return-Path: <a@example.test>\n", m)
                body = peers.strip_trace_headers(m)
                self.assertTrue(body.startswith(b"From: <a@example.test>\n"), body[:200])
            self.assertEqual(len(pf.messages(recipient="b@example.test")), 5)
            self.assertEqual(pf.messages(recipient="nobody@example.test"), [])
            pf.wait_queue_empty(timeout=30)
            master = pf.master_pid
            self.assertTrue(peers._pid_alive(master))
        self.assertFalse(os.path.exists(f"/proc/{master}"), "master not reaped")
        self.assert_gone(pf)

    def test_byte_exact_after_strip(self):
        with tempfile.TemporaryDirectory() as tmp:
            msgfile = Path(tmp) / "m.eml"
            msgfile.write_bytes(TEMPLATE)
            with peers.PostfixInstance(domains=("example.test", "other.test")) as pf:
                r = smtp_source(pf.hostport, "-F", str(msgfile), "-f", "a@example.test",
                                "-t", "c@other.test")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                [m] = pf.wait_for(1, timeout=30)
                # Postfix stores LF; smtp-source sent CRLF and dot-stuffed: what arrives
                # after the trace headers is the file, byte for byte, plus the one empty
                # line smtp-source -F always sends before the final ".".
                self.assertEqual(peers.strip_trace_headers(m), TEMPLATE + b"\n")
                self.assertEqual(pf.messages(recipient="c@other.test", strip=True),
                                 [TEMPLATE + b"\n"])
                # Other domains are not relayed.
                r = smtp_source(pf.hostport, "-f", "a@example.test", "-t", "x@elsewhere.test")
                self.assertNotEqual(r.returncode, 0)

    def test_discard_mode(self):
        with peers.PostfixInstance(discard=True) as pf:
            r = smtp_source(pf.hostport, "-s", "2", "-d", "-m", "20", "-f", "a@example.test",
                            "-t", "b@example.test")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            pf.wait_for(20, timeout=30)
            pf.wait_queue_empty(timeout=30)
            self.assertEqual(pf.messages(), [])
        self.assert_gone(pf)

    def test_starttls_and_wrappermode_hooks(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = make_cert(tmp)
            ctx = ssl.create_default_context(cafile=str(cert))
            ctx.check_hostname = False
            with peers.PostfixInstance(tls_cert=cert, tls_key=key, wrappermode=True) as pf:
                with smtplib.SMTP(pf.address, pf.port, timeout=20) as s:
                    s.ehlo("client.example.test")
                    self.assertTrue(s.has_extn("starttls"))
                    s.starttls(context=ctx)
                    s.ehlo("client.example.test")
                    s.sendmail("a@example.test", ["tls@example.test"], peers.crlf(TEMPLATE))
                with smtplib.SMTP_SSL(pf.address, pf.tls_port, timeout=20, context=ctx) as s:
                    s.ehlo("client.example.test")
                    s.sendmail("a@example.test", ["wrap@example.test"], peers.crlf(TEMPLATE))
                pf.wait_for(2, timeout=30)
                self.assertEqual(pf.messages(recipient="tls@example.test", strip=True), [TEMPLATE])
                self.assertEqual(pf.messages(recipient="wrap@example.test", strip=True), [TEMPLATE])


class SmtpSinkTest(unittest.TestCase):
    def test_counts_smtp_source_messages(self):
        with peers.SmtpSink() as sink:
            base = sink.counters()["mesg"]
            self.assertEqual(base, 0)
            r = smtp_source(sink.hostport, "-s", "2", "-d", "-m", "5", "-f", "a@example.test",
                            "-t", "b@example.test")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertEqual(sink.wait_for(5, timeout=10), 5)
            pid = sink.pid
        self.assertFalse(peers._pid_alive(pid))

    def test_dump_dir(self):
        with tempfile.TemporaryDirectory() as tmp:
            msgfile = Path(tmp) / "m.eml"
            msgfile.write_bytes(TEMPLATE)
            with peers.SmtpSink(dump_dir=True) as sink:
                r = smtp_source(sink.hostport, "-m", "1", "-F", str(msgfile),
                                "-f", "a@example.test", "-t", "b@example.test")
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                sink.wait_for(1, timeout=10)
                deadline = time.monotonic() + 10
                while not sink.dumps() and time.monotonic() < deadline:
                    time.sleep(0.05)
                [d] = sink.dumps()
                self.assertIn(b"X-Rcpt-Args: <b@example.test>\n", d)
                self.assertIn(TEMPLATE, d)


class AiosmtpdServerTest(unittest.TestCase):
    def test_stores_smtp_source_messages(self):
        with peers.AiosmtpdServer() as srv:
            r = smtp_source(srv.hostport, "-m", "3", "-f", "a@example.test",
                            "-t", "b@example.test")
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            msgs = srv.wait_for(3, timeout=20)
            self.assertEqual(len(msgs), 3)
            env = srv.envelopes()
            self.assertEqual(env[0]["mail_from"], "a@example.test")
            self.assertEqual(env[0]["rcpt_tos"], ["b@example.test"])
            pid = srv.pid
        self.assertFalse(peers._pid_alive(pid))

    def test_starttls_auth_hooks(self):
        with tempfile.TemporaryDirectory() as tmp:
            cert, key = make_cert(tmp)
            ctx = ssl.create_default_context(cafile=str(cert))
            ctx.check_hostname = False
            with peers.AiosmtpdServer(tls_cert=cert, tls_key=key, auth={"u": "p"}) as srv:
                with smtplib.SMTP(srv.address, srv.port, timeout=20) as s:
                    s.ehlo("client.example.test")
                    s.starttls(context=ctx)
                    s.ehlo("client.example.test")
                    with self.assertRaises(smtplib.SMTPAuthenticationError):
                        s.login("u", "wrong")
                    s.login("u", "p")
                    s.sendmail("a@example.test", ["b@example.test"], peers.crlf(TEMPLATE))
                [m] = srv.wait_for(1, timeout=20)
                self.assertEqual(m, peers.crlf(TEMPLATE))
                self.assertTrue(srv.envelopes()[0]["tls"])


if __name__ == "__main__":
    print(f"peers self-test: SMTPBLAST_SOURCE_DIR={SOURCE_DIR} "
          f"SMTPBLAST={os.environ.get('SMTPBLAST', '(unset)')}", flush=True)
    for tool in (peers.POSTFIX, peers.SMTP_SINK, SMTP_SOURCE):
        if not os.access(tool, os.X_OK):
            sys.exit(f"{tool} missing: run tools/bootstrap.sh")
    if os.geteuid() != 0:
        sys.exit("the Postfix fixtures need root (private instance, smtp-sink -u)")
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print(f"{passed} passed, {failed} failed, {len(res.skipped)} skipped", flush=True)
    sys.exit(0 if res.wasSuccessful() else 1)
