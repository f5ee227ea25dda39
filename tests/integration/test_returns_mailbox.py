#!/usr/bin/python3
"""Issue 14: `smtpblast returns --mailbox` over IMAP and POP3 against a private Dovecot.

Dovecot (dovecot-imapd, dovecot-pop3d) runs from a config of the test's own: a passwd-file
user, a maildir under the test directory, IMAP and POP3 on free ports of 127.0.0.1, started
and stopped (by PID) by the test. Checked: only matched messages are deleted on the server,
a second run is a no-op (UID/UIDL memory), a wrong password is exit 2 quoting the server.

Run: /usr/bin/python3 tests/integration/test_returns_mailbox.py  (as root; see blast.py)
"""

import json
import os
import pwd
import re
import shutil
import time
import unittest
from pathlib import Path

from support import blast, peers

FIXTURES = blast.SOURCE_DIR / "tests" / "returns" / "fixtures"
TEMPLATE = b"From: News <news@example.test>\nSubject: March news\n\nHello\n"
VERP_RE = re.compile(rb"bounces\+(\d+)-([0-9a-f]{10})@bounce\.example\.com")
PASSWORD = "s3cret-pw"


class Dovecot:
    """A private Dovecot serving one passwd-file user whose mail is `maildir`."""

    def __init__(self, root: Path, postlogin: Path | None = None, tls=None):
        self.root = root
        self.tls = tls  # (cert, key): also IMAPS and POP3S on ports of their own
        self.postlogin = postlogin  # a script run at every POP3 login (POP-before-SMTP)
        self.maildir = root / "Maildir"
        self.imap_port = peers.free_port("127.0.0.1")
        self.pop3_port = peers.free_port("127.0.0.1")
        self.imaps_port = peers.free_port("127.0.0.1") if tls else 0
        self.pop3s_port = peers.free_port("127.0.0.1") if tls else 0
        self.proc = None

    def start(self):
        for sub in ("new", "cur", "tmp"):
            (self.maildir / sub).mkdir(parents=True, exist_ok=True)
        for d in ("base", "state", "home"):
            (self.root / d).mkdir(exist_ok=True)
        (self.root / "passwd").write_text(f"bounces:{{PLAIN}}{PASSWORD}::::::\n")
        conf = self.root / "dovecot.conf"
        ssl = "ssl = no"
        if self.tls:
            ssl = f"ssl = yes\nssl_cert = <{self.tls[0]}\nssl_key = <{self.tls[1]}"
        conf.write_text(f"""
protocols = imap pop3
listen = 127.0.0.1
base_dir = {self.root}/base
state_dir = {self.root}/state
log_path = {self.root}/dovecot.log
{ssl}
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 8
mail_location = maildir:{self.maildir}
pop3_uidl_format = %08Xu%08Xv
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.root}/passwd
}}
userdb {{
  driver = static
  args = uid=mail gid=mail home={self.root}/home
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.imaps_port}
  }}
}}
service pop3-login {{
  chroot =
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop3_port}
  }}
  inet_listener pop3s {{
    address = 127.0.0.1
    port = {self.pop3s_port}
  }}
}}
service anvil {{
  chroot =
}}
""" + ("" if self.postlogin is None else f"""
service pop3 {{
  executable = pop3 pop-postlogin
}}
service pop-postlogin {{
  executable = script-login {self.postlogin}
  user = $default_internal_user
  unix_listener pop-postlogin {{
  }}
}}
"""))
        self.chown()
        self.proc = peers.Process(["/usr/sbin/dovecot", "-F", "-c", str(conf)], timeout=600,
                                  name="dovecot")
        self.proc.start()
        for port in (self.imap_port, self.pop3_port, self.imaps_port, self.pop3s_port):
            if not port:
                continue
            peers.wait_port("127.0.0.1", port, timeout=20,
                            alive=lambda: self.proc.poll() is None)
        return self

    def chown(self):
        mail = pwd.getpwnam("mail")
        for d in (self.maildir, self.root / "home"):
            for dirpath, dirs, files in os.walk(d):
                os.chown(dirpath, mail.pw_uid, mail.pw_gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), mail.pw_uid, mail.pw_gid)

    def deliver(self, name, data: bytes):
        p = self.maildir / "new" / name
        p.write_bytes(data)
        self.chown()

    def messages(self):
        return sorted(p.name.split(":")[0] for sub in ("new", "cur")
                      for p in (self.maildir / sub).iterdir())

    def stop(self):
        if self.proc is not None:
            self.proc.stop()  # by PID: SIGTERM, then SIGKILL after a grace period
            self.proc = None


class CutProxy:
    """A TCP proxy to 127.0.0.1:target that closes its first connection after `cut_after`
    octets from the server; later connections pass untouched."""

    def __init__(self, target, cut_after):
        import socket
        import threading
        self.target, self.cut_after, self.cut = target, cut_after, False
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.first = True
        self.threads = []
        t = threading.Thread(target=self.accept, daemon=True)
        t.start()

    def accept(self):
        import socket
        import threading
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            limit = self.cut_after if self.first else None
            self.first = False
            for a, b, lim in ((c, s, None), (s, c, limit)):
                t = threading.Thread(target=self.pump, args=(a, b, lim, (c, s)), daemon=True)
                t.start()

    def pump(self, src, dst, limit, both):
        n = 0
        try:
            while True:
                data = src.recv(4096)
                if not data:
                    break
                if limit is not None and n + len(data) > limit:
                    dst.sendall(data[:limit - n])
                    self.cut = True
                    break
                n += len(data)
                dst.sendall(data)
        except OSError:
            pass
        import socket
        for x in both:  # shutdown wakes the other pump's recv and sends the FIN
            try:
                x.shutdown(socket.SHUT_RDWR)
                x.close()
            except OSError:
                pass

    def stop(self):
        self.sock.close()


class MailboxTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        os.chmod(self.dir, 0o755)
        self.dovecot = Dovecot(self.dir / "dovecot").start()
        self.pwfile = self.dir / "pw"
        self.pwfile.write_text(PASSWORD + "\n")
        tpl = self.dir / "m.eml"
        tpl.write_bytes(TEMPLATE)
        self.rcpts = [f"r{i}@example.test" for i in range(1, 5)]
        csv = blast.write_csv(self.dir / "l.csv", ("email",), [(a,) for a in self.rcpts])
        self.task = self.dir / "t.db"
        with blast.BlastSink() as sink:
            p = blast.send(self.task, tpl, sink.hostport, csv,
                           "--return-path", "bounces+{{id}}@bounce.example.com")
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.sent = {r: m.mail_from for m in sink.records() for r in m.rcpts}

    def tearDown(self):
        self.dovecot.stop()
        self.wd.cleanup()

    def fill(self):
        """Two real bounces (r1 hard, r2 hard), one auto-reply and one forged bounce."""
        def bounce(fx, rcpt, addr):
            data = (FIXTURES / fx).read_bytes()
            data = VERP_RE.sub(self.sent[rcpt].encode(), data)
            return data.replace(addr.encode(), rcpt.encode())
        self.dovecot.deliver("1000.a.host", bounce("postfix_user_unknown.eml", "r1@example.test",
                                                   "alice@example.net"))
        self.dovecot.deliver("1001.b.host", bounce("gmail_nonexistent.eml", "r2@example.test",
                                                   "dave@gmail.com"))
        self.dovecot.deliver("1002.c.host", (FIXTURES / "vacation_autoreply.eml").read_bytes())
        self.dovecot.deliver("1003.d.host", (FIXTURES / "forged_bad_hmac.eml").read_bytes())

    def returns(self, url, *extra, pw=None):
        return peers.run([blast.BIN, "returns", "--task", str(self.task), "--mailbox", url,
                          "--mailbox-tls", "none", "--mailbox-password-file", str(pw or self.pwfile),
                          "--json", *extra], timeout=120)

    def check(self, url):
        self.fill()
        p = self.returns(url)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["hard"], out["autoreplies"], out["forged"],
                          out["deleted"]), (4, 2, 1, 1, 2), p.stdout)
        # Only the two matched bounces left the server's mailbox.
        self.assertEqual(self.dovecot.messages(), ["1002.c.host", "1003.d.host"])
        rows = blast.db_rows(self.task)
        self.assertEqual([rows[r]["status"] for r in self.rcpts],
                         ["bounced", "bounced", "sent", "sent"])
        # Second run: the remaining messages are known by UID/UIDL and not even fetched.
        p = self.returns(url)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["already_processed"], out["deleted"]), (2, 2, 0))
        self.assertEqual(blast.db_rows(self.task), rows)

    def test_connection_dropped_mid_fetch(self):
        """The first connection is cut in the middle of the second message: what was read is
        recorded, the run ends with exit 2, and the next run goes on without counting the
        first message's soft bounce twice."""
        def soft(rcpt):
            data = (FIXTURES / "exim_mailbox_full.eml").read_bytes()
            data = data.replace(b"Envelope-to: bounces@bounce.example.com",
                                b"Envelope-to: " + self.sent[rcpt].encode())
            return data.replace(b"bob@example.org", rcpt.encode())
        first = soft("r1@example.test")
        self.dovecot.deliver("1000.a.host", first)
        self.dovecot.deliver("1001.b.host", soft("r2@example.test") + b"x" * 20000 + b"\n")
        proxy = CutProxy(self.dovecot.imap_port, cut_after=len(first) + 2000)
        try:
            p = self.returns(f"imap://bounces@127.0.0.1:{proxy.port}/INBOX")
        finally:
            proxy.stop()
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertTrue(proxy.cut)
        self.assertIn("IMAP", p.stderr)
        rows = blast.db_rows(self.task)
        self.assertEqual(rows["r1@example.test"]["status"], "sent")
        p = self.returns(f"imap://bounces@127.0.0.1:{self.dovecot.imap_port}/INBOX")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["already_processed"], out["soft"]), (2, 1, 1), p.stdout)
        import sqlite3
        con = sqlite3.connect(str(self.task))
        soft_counts = dict(con.execute("SELECT id, soft FROM recipient_returns"))
        con.close()
        self.assertEqual(soft_counts, {1: 1, 2: 1})
        self.assertEqual(self.dovecot.messages(), [])

    def uidvalidity(self):
        # dovecot-uidlist opens with "3 V<uidvalidity> N<next uid> ...".
        head = (self.dovecot.maildir / "dovecot-uidlist").read_text().split("\n", 1)[0]
        return int(next(f[1:] for f in head.split() if f.startswith("V")))

    def bodies_fetched(self):
        """Per IMAP session in Dovecot's log, in order: how many message bodies it sent."""
        log = (self.dir / "dovecot" / "dovecot.log").read_text()
        return [int(n) for n in re.findall(r"imap\(bounces\).*Logged out .*body_count=(\d+)", log)]

    def test_imap_uidvalidity_change(self):
        """The mailbox gets a new UIDVALIDITY between two runs (Dovecot's uidlist and indexes
        removed, as when a mailbox is recreated): every UID remembered is void, so the second
        run reads all messages again, but what it already recorded is known by the bytes'
        hash and counted once; a message that arrived since is processed and deleted."""
        url = f"imap://bounces@127.0.0.1:{self.dovecot.imap_port}/INBOX"
        self.fill()
        p = self.returns(url)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["hard"], out["deleted"]), (4, 2, 2), p.stdout)
        rows = blast.db_rows(self.task)
        before = self.uidvalidity()
        # Dovecot takes the clock's second as a new UIDVALIDITY: let it move past the old one.
        while time.time() < before + 1.5:
            time.sleep(0.2)
        for f in self.dovecot.maildir.iterdir():
            if f.name.startswith("dovecot"):
                f.unlink()
        data = (FIXTURES / "postfix_user_unknown.eml").read_bytes()
        data = VERP_RE.sub(self.sent["r3@example.test"].encode(), data)
        self.dovecot.deliver("1004.e.host", data.replace(b"alice@example.net", b"r3@example.test"))
        p = self.returns(url)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertNotEqual(self.uidvalidity(), before)  # the premise of this test
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["already_processed"], out["hard"], out["autoreplies"],
                          out["forged"], out["deleted"]), (3, 2, 1, 0, 0, 1), p.stdout)
        self.assertEqual(self.dovecot.messages(), ["1002.c.host", "1003.d.host"])
        rows["r3@example.test"] = blast.db_rows(self.task)["r3@example.test"]
        self.assertEqual(rows["r3@example.test"]["status"], "bounced")
        self.assertEqual(blast.db_rows(self.task), rows)  # r1, r2 not bounced a second time
        import sqlite3
        con = sqlite3.connect(str(self.task))
        # One recorded return per bounced recipient: nothing was recorded twice.
        recorded = con.execute("SELECT id, count(*) FROM returns_seen WHERE id > 0 "
                               "GROUP BY id ORDER BY id").fetchall()
        con.close()
        self.assertEqual(recorded, [(1, 1), (2, 1), (3, 1)])
        # Third run: the new UIDs were remembered too, so nothing is even fetched.
        p = self.returns(url)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        out = json.loads(p.stdout)
        self.assertEqual((out["read"], out["already_processed"], out["deleted"]), (2, 2, 0))
        self.assertEqual(self.bodies_fetched(), [4, 3, 0])
        self.assertEqual(blast.db_rows(self.task), rows)

    def test_imap(self):
        self.check(f"imap://bounces@127.0.0.1:{self.dovecot.imap_port}/INBOX")

    def test_pop3(self):
        self.check(f"pop3://bounces@127.0.0.1:{self.dovecot.pop3_port}")

    def test_wrong_password_is_exit_2(self):
        bad = self.dir / "bad"
        bad.write_text("wrong\n")
        for url in (f"imap://bounces@127.0.0.1:{self.dovecot.imap_port}/INBOX",
                    f"pop3://bounces@127.0.0.1:{self.dovecot.pop3_port}"):
            p = self.returns(url, pw=bad)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("login denied for bounces", p.stderr)
            self.assertNotIn("wrong", p.stderr + p.stdout)
        # Plain text without --mailbox-tls none: STARTTLS is required, and this server has none.
        p = peers.run([blast.BIN, "returns", "--task", str(self.task), "--mailbox",
                       f"imap://bounces@127.0.0.1:{self.dovecot.imap_port}/INBOX",
                       "--mailbox-password-file", str(self.pwfile)], timeout=60)
        self.assertEqual(p.returncode, 2, blast.describe(p))


class TlsMailboxTest(unittest.TestCase):
    """IMAPS and POP3S are verified like SMTP: the test CA given with --mailbox-ca passes; the
    system CAs alone, or a certificate for another name, are refused (exit 2)."""

    def setUp(self):
        from support import tls_peers
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        os.chmod(self.dir, 0o755)
        self.certs = tls_peers.make_certs(self.dir / "certs")
        for f in self.certs["dir"].iterdir():
            os.chmod(f, 0o644)
        self.tls_peers = tls_peers

    def tearDown(self):
        self.wd.cleanup()

    def run_returns(self, dovecot, url, *extra):
        pw = self.dir / "pw"
        pw.write_text(PASSWORD + "\n")
        task = self.dir / "t.db"
        if not task.exists():
            tpl = self.dir / "m.eml"
            tpl.write_bytes(TEMPLATE)
            csv = blast.write_csv(self.dir / "l.csv", ("email",), [("x@example.test",)])
            with blast.BlastSink() as sink:
                p = blast.send(task, tpl, sink.hostport, csv)
                self.assertEqual(p.returncode, 0, blast.describe(p))
        return peers.run([blast.BIN, "returns", "--task", str(task), "--mailbox", url,
                          "--mailbox-password-file", str(pw), "--json", *extra], timeout=120)

    def test_verified(self):
        d = Dovecot(self.dir / "dovecot", tls=(self.certs["server"], self.certs["server_key"]))
        d.start()
        try:
            d.deliver("1.a.host", (FIXTURES / "vacation_autoreply.eml").read_bytes())
            ca = str(self.certs["ca"])
            for url in (f"imaps://bounces@127.0.0.1:{d.imaps_port}/INBOX",
                        f"pop3s://bounces@127.0.0.1:{d.pop3s_port}",
                        f"imap://bounces@127.0.0.1:{d.imap_port}/INBOX"):  # STARTTLS
                p = self.run_returns(d, url, "--mailbox-ca", ca)
                self.assertEqual(p.returncode, 0, blast.describe(p))
                self.assertEqual(json.loads(p.stdout)["read"], 1)
                p = self.run_returns(d, url)  # the system CAs do not know the test CA
                self.assertEqual(p.returncode, 2, blast.describe(p))
                self.assertIn("certificate", p.stderr)
        finally:
            d.stop()

    def test_wrong_name(self):
        d = Dovecot(self.dir / "dovecot", tls=(self.certs["wrong"], self.certs["wrong_key"]))
        d.start()
        try:
            p = self.run_returns(d, f"imaps://bounces@127.0.0.1:{d.imaps_port}/INBOX",
                                 "--mailbox-ca", str(self.certs["ca"]))
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn("certificate", p.stderr, blast.describe(p))
        finally:
            d.stop()


class PopBeforeSmtpTest(unittest.TestCase):
    """A relay that refuses to relay until a POP3 login has happened: Dovecot's post-login
    script writes a flag file, the relay (aiosmtpd) answers 554 to RCPT without it."""

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        os.chmod(self.dir, 0o755)
        flags = self.dir / "flags"
        flags.mkdir()
        os.chmod(flags, 0o777)
        self.flag = flags / "popped"
        self.logins = flags / "logins"  # one line per POP3 login, written by Dovecot's script
        script = self.dir / "postlogin.sh"
        script.write_text(f"#!/bin/sh\ntouch {self.flag}\necho login >> {self.logins}\n"
                          "exec \"$@\"\n")
        os.chmod(script, 0o755)
        self.dovecot = Dovecot(self.dir / "dovecot", postlogin=script).start()
        from aiosmtpd.controller import Controller

        flag = self.flag
        self.got = []

        class Relay:
            async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
                if not flag.exists():
                    return "554 5.7.1 <%s>: Relay access denied" % address
                envelope.rcpt_tos.append(address)
                return "250 OK"

            async def handle_DATA(inner, server, session, envelope):
                self.got.extend(envelope.rcpt_tos)
                return "250 OK"

        self.port = peers.free_port("127.0.0.1")
        self.relay = Controller(Relay(), hostname="127.0.0.1", port=self.port)
        self.relay.start()
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        self.csv = blast.write_csv(self.dir / "l.csv", ("email",),
                                   [(f"p{i}@example.test",) for i in range(3)])
        self.pw = self.dir / "pw"
        self.pw.write_text(PASSWORD + "\n")

    def tearDown(self):
        self.relay.stop()
        self.dovecot.stop()
        self.wd.cleanup()

    def send(self, task, pw, *extra, csv=None):
        return blast.send(task, self.tpl, f"127.0.0.1:{self.port}", csv or self.csv,
                          "--pop-before-smtp", f"pop3://bounces@127.0.0.1:{self.dovecot.pop3_port}",
                          "--pop-tls", "none", "--pop-password-file", pw, "--no-pipelining",
                          *extra)

    def login_count(self):
        return len(self.logins.read_text().splitlines()) if self.logins.exists() else 0

    def test_relay_only_after_pop_login(self):
        bad = self.dir / "bad"
        bad.write_text("nope\n")
        p = self.send(self.dir / "a.db", bad)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--pop-before-smtp: POP3 login denied for bounces", p.stderr)
        self.assertNotIn("nope", p.stderr)
        self.assertFalse(self.flag.exists())
        self.assertEqual(self.got, [])
        p = self.send(self.dir / "b.db", self.pw)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertTrue(self.flag.exists())
        self.assertEqual(sorted(self.got), [f"p{i}@example.test" for i in range(3)])

    def test_refresh_during_run(self):
        """--pop-refresh 1s on a run paced to last about 5 s (25 recipients at 5/s): Dovecot's
        post-login script counts the first login and the refreshes. At least 3 logins in all is
        a generous bound (about 5 are due), and every recipient was relayed."""
        rcpts = [f"q{i:02}@example.test" for i in range(25)]
        csv = blast.write_csv(self.dir / "many.csv", ("email",), [(a,) for a in rcpts])
        p = self.send(self.dir / "r.db", self.pw, "--pop-refresh", "1s", "--rate", "5/s",
                      csv=csv)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertNotIn("refresh", p.stderr)  # no failed-refresh warning
        self.assertEqual(sorted(self.got), rcpts)
        rows = blast.db_rows(self.dir / "r.db")
        self.assertEqual({rows[r]["status"] for r in rcpts}, {"sent"})
        self.assertGreaterEqual(self.login_count(), 3, blast.describe(p))
        # Dovecot's own log agrees: every one of them was a successful POP3 login.
        log = (self.dir / "dovecot" / "dovecot.log").read_text()
        logins = [ln for ln in log.splitlines()
                  if "pop3-login:" in ln and "Login: user=<bounces>" in ln]
        self.assertGreaterEqual(len(logins), 3, log[-2000:])


if __name__ == "__main__":
    if not shutil.which("dovecot") and not Path("/usr/sbin/dovecot").exists():
        raise SystemExit("dovecot is not installed (tools/bootstrap.sh)")
    blast.main("test_returns_mailbox")
