"""Direct delivery (--direct): a real DNS server (dnsmasq) on loopback serves a test zone, and
sinks listen on 127.0.0.2 (aiosmtpd, SMTPUTF8) and 127.0.0.3 (a scripted server whose
STARTTLS handshake fails: TLS 1.0 only, no SMTPUTF8) and ::1 (aiosmtpd, for AAAA-only and
dual-stack MX hosts); 127.0.0.4 has nothing listening and 127.0.0.5 accepts and closes at once
(counted). The tests check which recipient arrived
where, and which ended failed or deferred with which reply.

Run: SMTPBLAST=build/bin/smtpblast /usr/bin/python3 tests/integration/test_direct.py
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import unittest

from support import blast, peers, tls_peers
from support.scripted import ScriptedSmtp

ZONE = """local=/test/
local-ttl=60
mx-host=one.test,mx.one.test,10
host-record=mx.one.test,127.0.0.2
mx-host=two.test,mx.two.test,10
host-record=mx.two.test,127.0.0.3
mx-host=multi.test,mx1.multi.test,10
mx-host=multi.test,mx2.multi.test,20
host-record=mx1.multi.test,127.0.0.4
host-record=mx2.multi.test,127.0.0.2
mx-host=equal.test,a.equal.test,10
mx-host=equal.test,b.equal.test,10
host-record=a.equal.test,127.0.0.2
host-record=b.equal.test,127.0.0.3
host-record=implicit.test,127.0.0.3
mx-host=nullmx.test,.,0
mx-host=cname.test,alias.cname.test,5
cname=alias.cname.test,real.cname.test
host-record=real.cname.test,127.0.0.2
mx-host=noaddr.test,none.noaddr.test,5
mx-host=noaddr.test,ok.noaddr.test,10
host-record=ok.noaddr.test,127.0.0.3
mx-host=dead.test,mx.dead.test,10
host-record=mx.dead.test,127.0.0.4
mx-host=closer.test,mx.closer.test,10
host-record=mx.closer.test,127.0.0.5
mx-host=shared1.test,mx.one.test,10
mx-host=shared2.test,mx.one.test,10
mx-host=xn--bcher-kva.test,mx.one.test,10
mx-host=busy.test,mx1.busy.test,10
mx-host=busy.test,mx2.busy.test,20
host-record=mx1.busy.test,127.0.0.6
host-record=mx2.busy.test,127.0.0.3
server=/servfail.test/127.0.0.9#9
host-record=mx.many.test,127.0.0.7
mx-host=many0.test,mx.many.test,10
mx-host=many1.test,mx.many.test,10
mx-host=many2.test,mx.many.test,10
mx-host=many3.test,mx.many.test,10
mx-host=many4.test,mx.many.test,10
mx-host=many5.test,mx.many.test,10
mx-host=many6.test,mx.many.test,10
mx-host=many7.test,mx.many.test,10
mx-host=quota.test,mx.quota.test,10
host-record=mx.quota.test,127.0.0.8
mx-host=six.test,mx.six.test,10
host-record=mx.six.test,::1
mx-host=dual.test,mx.dual.test,10
host-record=mx.dual.test,127.0.0.2,::1
"""

TEMPLATE = ("From: Sender <sender@example.test>\r\nTo: {{email}}\r\nSubject: Hello {{name}}\r\n"
            "\r\nHello {{name}},\r\nthis is a test.\r\n")
SAME_FOR_ALL = ("From: Sender <sender@example.test>\r\nTo: list@example.test\r\n"
                "Subject: The same for everyone\r\n\r\nOne message, several recipients.\r\n")


class Closer(blast.ThreadServer):
    """Sends `greeting` (if any) and closes at once; counts the connections."""

    def __init__(self, host, port, greeting=b""):
        super().__init__(host, port)
        self.greeting = greeting

    @property
    def count(self) -> int:
        return self.connections

    def handle(self, c):
        if self.greeting:
            c.sendall(self.greeting)


class SlowSmtp(ScriptedSmtp):
    """A minimal SMTP server that answers end-of-data after `delay` seconds and records the
    most connections it had open at once (max_open), and the recipients. `data_replies`: the
    first end-of-data replies (then 250)."""

    hostname = "slow"
    caps = (b"8BITMIME",)

    def __init__(self, host, port, delay=0.05, data_replies=()):
        self.delay = delay
        self.data_replies = list(data_replies)
        self.rcpts = []
        super().__init__(host, port)

    def mail(self, c, arg):
        return b"250 ok\r\n"

    def rcpt(self, c, addr):
        with self.lock:
            self.rcpts.append(addr)
        return b"250 ok\r\n"

    def end_of_data(self, c, body):
        time.sleep(self.delay)
        with self.lock:
            reply = self.data_replies.pop(0) if self.data_replies else b"250 ok"
        return reply + b"\r\n"

    def rset(self, c):
        return b"250 ok\r\n"

    def other(self, c, verb, line):
        return b"250 ok\r\n"


class DirectDelivery(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = blast.Workdir("sb-direct-")
        cls.dir = cls.work.path
        cls.certs = tls_peers.make_certs(cls.dir / "certs")
        cls.dns = peers.Dnsmasq(ZONE).start()
        cls.port = peers.free_port_on(["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5",
                                     "127.0.0.6", "127.0.0.7", "127.0.0.8", "::1"])

    @classmethod
    def tearDownClass(cls):
        cls.dns.stop()
        cls.work.cleanup()

    def setUp(self):
        self.sink2 = peers.AiosmtpdServer(address="127.0.0.2", port=self.port,
                                          maildir=self.dir / f"mail-{self.id()}")
        self.sink2.start()
        ctx = tls_peers.tls10_only_context(self.certs["server"], self.certs["server_key"])
        self.sink3 = tls_peers.ScriptedSmtp(ctx=ctx, address="127.0.0.3", port=self.port,
                                            hostname="mx.two.test")
        self.sink3.__enter__()
        self.closer = Closer("127.0.0.5", self.port).start()
        self.busy = Closer("127.0.0.6", self.port,
                           b"421 4.3.2 mx1.busy.test too busy\r\n").start()

    def tearDown(self):
        self.busy.close()
        self.closer.close()
        self.sink3.stop()
        self.sink2.stop()

    def send(self, name, template, rows, *extra):
        task = self.dir / f"{name}.db"
        tpl = self.dir / f"{name}.eml"
        tpl.write_bytes(template.encode())
        csvp = blast.write_csv(self.dir / f"{name}.csv", ["email", "name"], rows)
        args = [blast.BIN, "send", "--task", str(task), "--template", str(tpl),
                "--recipients", str(csvp), "--direct", "--helo", "sender.example.test",
                "--dns-server", self.dns.address, "--mx-port", str(self.port),
                "--retry-after", "300ms", "--retry-max", "1s",
                "--connect-timeout", "5s", "--dns-timeout", "150ms", *map(str, extra)]
        if "--max-attempts" not in extra:
            args += ["--max-attempts", "2"]
        p = peers.run(args, timeout=120)
        return task, p

    def delivered(self):
        """{rcpt: "127.0.0.2"|"127.0.0.3"} for every recipient that arrived."""
        out = {}
        for env in self.sink2.envelopes():
            for r in env["rcpt_tos"]:
                out[r] = "127.0.0.2"
        for m in self.sink3.messages:
            for r in m.rcpts:
                out[r] = "127.0.0.3"
        return out

    def test_routes_every_kind_of_domain(self):
        rows = [["a@one.test", "A"], ["b@two.test", "B"], ["c@multi.test", "C"],
                ["d@equal.test", "D"], ["e@implicit.test", "E"], ["f@nullmx.test", "F"],
                ["g@nx.test", "G"], ["h@servfail.test", "H"], ["i@cname.test", "I"],
                ["j@noaddr.test", "J"], ["k@dead.test", "K"], ["m@bücher.test", "M"],
                ["jösé@one.test", "U1"], ["jösé@two.test", "U2"],
                ["s1@shared1.test", "S1"], ["s2@shared2.test", "S2"], ["n@busy.test", "N"]]
        rows += [[f"l{i}@closer.test", f"L{i}"] for i in range(5)]
        acct = self.dir / "routes.jsonl"
        # One worker: domains of one MX set share a queue within a worker (a domain's worker
        # is chosen by a hash of its name).
        task, p = self.send("routes", TEMPLATE, rows, "--accounting", acct,
                            "--max-connections-per-domain", "1", "--workers", "1")
        self.assertEqual(p.returncode, 1, blast.describe(p))  # some failed or deferred
        self.sink2.wait_for(7, timeout=10)
        got = self.delivered()
        db = blast.db_rows(task)
        expect_at = {"a@one.test": "127.0.0.2", "b@two.test": "127.0.0.3",
                     "c@multi.test": "127.0.0.2",  # MX 10 refuses: the MX 20 takes it
                     "e@implicit.test": "127.0.0.3", "i@cname.test": "127.0.0.2",
                     "j@noaddr.test": "127.0.0.3",
                     "m@xn--bcher-kva.test": "127.0.0.2",  # A-label in RCPT TO
                     "jösé@one.test": "127.0.0.2", "s1@shared1.test": "127.0.0.2",
                     "s2@shared2.test": "127.0.0.2",
                     "n@busy.test": "127.0.0.3"}  # MX 10 greets with 421: the MX 20 takes it
        for rcpt, host in expect_at.items():
            self.assertEqual(got.get(rcpt), host, f"{rcpt}: {got}\n{blast.describe(p)}")
        self.assertIn(got.get("d@equal.test"), ("127.0.0.2", "127.0.0.3"))
        for email in ["a@one.test", "b@two.test", "c@multi.test", "d@equal.test",
                      "e@implicit.test", "i@cname.test", "j@noaddr.test", "m@bücher.test",
                      "jösé@one.test", "s1@shared1.test", "s2@shared2.test", "n@busy.test"]:
            self.assertEqual(db[email]["status"], "sent", f"{email}: {db[email]}")
        self.assertEqual(len(got), 12, got)
        self.assertGreaterEqual(self.busy.count, 1)

        # Permanent: null MX and NXDOMAIN fail without any connection; no SMTPUTF8 fails.
        self.assertEqual(db["f@nullmx.test"]["status"], "failed")
        self.assertIn("null MX", db["f@nullmx.test"]["reply"])
        self.assertEqual(db["g@nx.test"]["status"], "failed")
        self.assertIn("NXDOMAIN", db["g@nx.test"]["reply"])
        self.assertEqual(db["jösé@two.test"]["status"], "failed")
        self.assertIn("SMTPUTF8", db["jösé@two.test"]["reply"])
        # Temporary: SERVFAIL and an unreachable host defer (never a bounce), twice each.
        self.assertEqual(db["h@servfail.test"]["status"], "deferred", db["h@servfail.test"])
        self.assertEqual(db["h@servfail.test"]["attempts"], 2)
        self.assertEqual(db["k@dead.test"]["status"], "deferred")
        self.assertIn("refused", db["k@dead.test"]["reply"])
        self.assertEqual(db["k@dead.test"]["attempts"], 2)
        for i in range(5):
            self.assertEqual(db[f"l{i}@closer.test"]["status"], "deferred")
        # The five recipients of closer.test wait together: each destination attempt is at
        # most two connections (then backoff), two attempts per recipient: at most four
        # connections, not five per attempt.
        self.assertLessEqual(self.closer.count, 4, self.closer.count)
        self.assertGreaterEqual(self.closer.count, 2, self.closer.count)

        # The CNAME'd MX is followed and said.
        self.assertIn("CNAME", p.stderr)
        # SMTPUTF8 was used for the non-ASCII local part only.
        envs = {r: e for e in self.sink2.envelopes() for r in e["rcpt_tos"]}
        self.assertIn("SMTPUTF8", envs["jösé@one.test"]["mail_options"])
        self.assertNotIn("SMTPUTF8", envs["a@one.test"]["mail_options"])
        self.assertNotIn("SMTPUTF8", envs["m@xn--bcher-kva.test"]["mail_options"])
        # Domains with the same MX set share one queue: with one connection per destination
        # both went over the same connection.
        acc = [json.loads(line) for line in acct.read_text().splitlines() if line.strip()]
        conn = {a["recipient"]: a["connection_id"] for a in acc if a["status"] == "sent"}
        self.assertEqual(conn["s1@shared1.test"], conn["s2@shared2.test"])
        self.assertEqual(conn["s1@shared1.test"], conn["a@one.test"])
        # The failed STARTTLS handshake on 127.0.0.3 was not followed by plaintext on that
        # connection: the host was reconnected in plaintext and remembered.
        # (Five destinations include that host and may each try once before the first failure
        # is known.)
        conns = [[bytes(l[1]).upper() for l in c.lines] for c in self.sink3.conns]
        tls_conns = [c for c in conns if any(l.startswith(b"STARTTLS") for l in c)]
        self.assertGreaterEqual(len(tls_conns), 1, conns)
        self.assertLessEqual(len(tls_conns), 5, conns)
        for c in tls_conns:
            self.assertFalse(any(l.startswith(b"MAIL") for l in c), c)
        mail_conns = [c for c in conns if any(l.startswith(b"MAIL") for l in c)]
        self.assertGreaterEqual(len(mail_conns), 1, conns)

    def test_same_content_shares_a_transaction(self):
        rows = [[f"r{i}@one.test", ""] for i in range(7)] + [["x@two.test", ""]]
        task, p = self.send("grouped", SAME_FOR_ALL, rows, "--max-rcpt-per-txn", "3")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        envs = self.sink2.wait_for(3, timeout=10) and self.sink2.envelopes()
        sizes = sorted(len(e["rcpt_tos"]) for e in envs)
        self.assertEqual(sizes, [1, 3, 3], envs)
        self.assertEqual(sum(len(m.rcpts) for m in self.sink3.messages), 1)

    def test_personalised_content_is_one_transaction_each(self):
        rows = [[f"p{i}@one.test", f"P{i}"] for i in range(4)]
        task, p = self.send("personal", TEMPLATE, rows)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        envs = self.sink2.wait_for(4, timeout=10) and self.sink2.envelopes()
        self.assertEqual(sorted(len(e["rcpt_tos"]) for e in envs), [1, 1, 1, 1])

    def test_one_mx_set_one_queue_across_workers(self):
        # Eight domains, one MX host, four workers: whichever worker looks each domain up, the
        # destination (the MX set) lives on one of them, so one queue feeds one pool: at most
        # --max-connections-per-domain connections at once, and no churn of short ones.
        slow = SlowSmtp("127.0.0.7", self.port).start()
        try:
            rows = [[f"u{k}@many{i}.test", f"N{k}"] for i in range(8) for k in range(8)]
            task, p = self.send("many", TEMPLATE, rows, "--workers", "4",
                                "--max-connections-per-domain", "2", "--tls", "none")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(sorted(slow.rcpts), sorted(r[0] for r in rows))
            self.assertLessEqual(slow.max_open, 2)
            self.assertGreaterEqual(slow.max_open, 1)
            self.assertLessEqual(slow.connections, 2, "one pool, connections kept while work comes")
        finally:
            slow.close()

    def test_push_back_slows_only_its_destination(self):
        # mx.quota.test answers its first message with Office 365's quota reply, which pauses
        # sending for a minute. Only that destination pauses: the 30 messages for a slow MX
        # (0.1 s each, one connection) keep going and the run ends in seconds, not after the
        # minute a run-wide pause would take.
        slow = SlowSmtp("127.0.0.7", self.port, delay=0.1).start()
        quota = SlowSmtp("127.0.0.8", self.port, delay=0, data_replies=[
            b"554 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException"]).start()
        try:
            rows = [["q@quota.test", "Q"]] + [[f"m{k}@many0.test", "M"] for k in range(30)]
            t0 = time.monotonic()
            task, p = self.send("pushback", TEMPLATE, rows, "--max-connections-per-domain", "1",
                                "--max-attempts", "1", "--tls", "none")
            elapsed = time.monotonic() - t0
            self.assertEqual(p.returncode, 1, blast.describe(p))  # q@ deferred
            db = blast.db_rows(task)
            self.assertEqual(db["q@quota.test"]["status"], "deferred", db["q@quota.test"])
            self.assertIn("SubmissionQuotaExceeded", db["q@quota.test"]["reply"])
            self.assertEqual(sorted(slow.rcpts), sorted(r[0] for r in rows[1:]))
            self.assertIn("push-back: 1 replies from 1 destinations (0 slow down, 1 quota)",
                          p.stderr)
            self.assertNotIn("throttle:", p.stderr)  # the run-wide throttle saw nothing
            self.assertLess(elapsed, 45, "the other destination waited out the quota pause")
        finally:
            quota.close()
            slow.close()

    def test_stop_and_kill_then_resume_loses_no_recipient(self):
        # A slow MX (0.1 s per message) and recipients of 8 domains: SIGINT stops cleanly
        # (nothing left in flight), SIGKILL leaves some in flight; later runs send the rest,
        # every recipient arrives, and only the killed run's in-flight ones may arrive twice.
        slow = SlowSmtp("127.0.0.7", self.port, delay=0.1).start()
        try:
            rows = [[f"r{k}@many{i}.test", f"N{k}"] for i in range(8) for k in range(15)]
            tpl = self.dir / "resume.eml"
            tpl.write_bytes(TEMPLATE.encode())
            csvp = blast.write_csv(self.dir / "resume.csv", ["email", "name"], rows)
            task = self.dir / "resume.db"
            args = [blast.BIN, "send", "--task", str(task), "--template", str(tpl), "--direct",
                    "--helo", "sender.example.test", "--dns-server", self.dns.address,
                    "--mx-port", str(self.port), "--dns-timeout", "150ms", "--tls", "none",
                    "--max-connections-per-domain", "2", "--commit-interval", "20ms"]
            for sig in (signal.SIGINT, signal.SIGKILL):
                first = not task.exists()
                p = peers.Process(args + (["--recipients", str(csvp)] if first else []),
                                  timeout=60)
                p.start()
                # Signal it while it sends (a fixed sleep can end inside start-up and import
                # under a sanitizer on a loaded machine).
                blast.wait_for_sent(task, len(slow.rcpts) + 5, timeout=60)
                self.assertIsNone(p.poll(), "finished before the signal:\n" + p.stderr)
                os.kill(p.pid, sig)
                p.wait(timeout=30)
                st = blast.status(task)
                self.assertEqual(st["total"], 120, st)
                if sig == signal.SIGINT:
                    self.assertEqual(p.returncode, 4, p.stderr)  # interrupted
                    self.assertEqual(st["in_flight"], 0, st)
                    self.assertGreater(st["sent"], 0, st)
                    self.assertGreater(st["unsent"], 0, st)
                    self.assertEqual(len(slow.rcpts), st["sent"])
            in_flight_after_kill = st["in_flight"]
            p = peers.run(args, timeout=120)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            st = blast.status(task)
            self.assertEqual(st["sent"], 120, st)
            got = slow.rcpts
            self.assertEqual(set(got), {r[0] for r in rows})
            # Sent twice at most: what the killed run had under way (accepted, not recorded).
            self.assertLessEqual(len(got) - 120, in_flight_after_kill + 16)
        finally:
            slow.close()

    def test_direct_mail_is_dkim_signed(self):
        try:
            import dkim  # noqa: F401  (python3-dkim, the independent verifier)
            import nacl  # noqa: F401  (its Ed25519)
        except ImportError:
            self.skipTest("python3-dkim / python3-nacl not installed")
        import dkim_verify  # tools/dkim_verify.py (tools/ is on PYTHONPATH)
        key = self.dir / "direct-ed25519.pem"
        subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", str(key)],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                             check=True, capture_output=True).stdout
        record = b"v=DKIM1; k=ed25519; p=" + base64.b64encode(der[-32:])
        rows = [[f"k{i}@one.test", f"K{i}"] for i in range(3)]
        task, p = self.send("dkim", TEMPLATE, rows, "--dkim-key", key, "--dkim-domain",
                            "example.test", "--dkim-selector", "s1")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        msgs = self.sink2.wait_for(3, timeout=10)
        self.assertEqual(len(msgs), 3)
        for m in msgs:
            res = dkim_verify.verify_bytes(m, {None: record})
            self.assertTrue(res and all(ok for ok, _ in res), (res, m[:400]))
            bad = m.replace(b"Subject: Hello", b"Subject: Jello", 1)
            res = dkim_verify.verify_bytes(bad, {None: record})
            self.assertFalse(all(ok for ok, _ in res), res)

    def test_address_family_flags(self):
        rows = [["a@one.test", "A"]]
        task, p = self.send("v4only", TEMPLATE, rows, "--ipv4-only")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        # The zone gives mx.one.test an IPv4 address only: with --ipv6-only no MX host has an
        # address, and nothing connects.
        task, p = self.send("v6only", TEMPLATE, rows, "--ipv6-only")
        self.assertEqual(p.returncode, 1, blast.describe(p))
        db = blast.db_rows(task)
        self.assertNotEqual(db["a@one.test"]["status"], "sent", db)
        self.assertEqual(len(self.sink2.envelopes()), 1)

    def test_ipv6_mx_hosts(self):
        # mx.six.test has only an AAAA (::1); mx.dual.test has both. Default: the AAAA-only
        # host is reached over IPv6. --ipv6-only sends the dual-stack one over ::1 too;
        # --ipv4-only leaves the AAAA-only domain without an address and uses 127.0.0.2.
        sink6 = peers.AiosmtpdServer(address="::1", port=self.port,
                                     maildir=self.dir / f"mail6-{self.id()}").start()
        try:
            def rcpts6():
                return sorted(r for e in sink6.envelopes() for r in e["rcpt_tos"])

            task, p = self.send("six", TEMPLATE, [["a@six.test", "A"]])
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(rcpts6(), ["a@six.test"])
            self.assertEqual(sink6.envelopes()[0]["peer"][0], "::1")

            task, p = self.send("dual6", TEMPLATE, [["b@dual.test", "B"]], "--ipv6-only")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(rcpts6(), ["a@six.test", "b@dual.test"])

            task, p = self.send("dual4", TEMPLATE, [["c@dual.test", "C"], ["d@six.test", "D"]],
                                "--ipv4-only")
            self.assertEqual(p.returncode, 1, blast.describe(p))
            self.assertEqual(self.delivered(), {"c@dual.test": "127.0.0.2"})
            self.assertEqual(rcpts6(), ["a@six.test", "b@dual.test"])
            db = blast.db_rows(task)
            self.assertEqual(db["d@six.test"]["status"], "deferred", db)
            self.assertIn("no IPv4 address for any MX host", db["d@six.test"]["reply"])
        finally:
            sink6.stop()

    def test_bad_configuration(self):
        tpl = self.dir / "cfg.eml"
        tpl.write_bytes(TEMPLATE.encode())
        csvp = blast.write_csv(self.dir / "cfg.csv", ["email", "name"], [["a@one.test", "A"]])
        base = [blast.BIN, "send", "--task", str(self.dir / "cfg.db"), "--template", str(tpl),
                "--recipients", str(csvp)]
        cases = [
            (["--direct"], "--helo"),
            (["--direct", "--helo", "h.example.test", "--relay", "127.0.0.1:25"], "not both"),
            (["--direct", "--helo", "h.example.test", "--ipv4-only", "--ipv6-only"], "one of"),
            (["--relay", "127.0.0.1:25", "--mx-port", "2525"], "go with --direct"),
            (["--direct", "--helo", "h.example.test", "--tls", "implicit"], "implicit"),
            (["--direct", "--helo", "h.example.test", "--dns-server", "300.1.1.1"],
             "--dns-server"),
            (["--direct", "--helo", "h.example.test", "--dns-timeout", "soon"], "--dns-timeout"),
            (["--direct", "--helo", "h.example.test", "--retry-after", "2h"], "--retry-max"),
        ]
        for args, needle in cases:
            p = peers.run(base + args, timeout=30)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn(needle, p.stderr, blast.describe(p))
        self.assertEqual(self.sink2.envelopes(), [])
        self.assertFalse((self.dir / "cfg.db").exists())  # refused before the task was made


if __name__ == "__main__":
    blast.main("test_direct")
