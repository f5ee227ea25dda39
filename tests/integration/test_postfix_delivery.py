#!/usr/bin/python3
"""smtpblast → a private Postfix smtpd (real MTA, delivery into a maildir): every message
arrives exactly once and byte for byte as the template renders it, over BDAT (Postfix 3.7
offers CHUNKING), DATA (--no-chunking, dot-stuffing), without PIPELINING, and with many
short connections.

Run: /usr/bin/python3 tests/integration/test_postfix_delivery.py  (as root; see blast.py)
"""

import email.header
import quopri
import re
import unittest

from support import blast, peers

DOMAIN = "example.test"

# Bare LF line endings on purpose; merge fields in Subject and body; lines starting with
# ".", a line of only ".", a line "..x".
TEMPLATE = (
    b"From: Blast Sender <sender@example.test>\n"
    b"Subject: Hello {{first_name}}, news for you\n"
    b"MIME-Version: 1.0\n"
    b"Content-Type: text/plain; charset=utf-8\n"
    b"Content-Transfer-Encoding: 8bit\n"
    b"X-Campaign: integ-{{first_name}}\n"
    b"\n"
    b"Dear {{first_name}},\n"
    b".a line that starts with a dot\n"
    b".\n"
    b"..x\n"
    b"\n"
    b"How is the weather in {{city}}?\n"
    b".{{first_name}} after a dot\n"
    b"Your address: {{email}}\n"
    b"  indented line\n"
    b"Bye.\n"
)

CITIES = ["Zürich", "São Paulo", "Kraków", "東京", "Reykjavík", "Berlin", "Montréal",
          "Łódź", "İstanbul", "Århus"]

DATE_RE = re.compile(rb"^Date: (Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} "
                     rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} "
                     rb"\d\d:\d\d:\d\d [+-]\d{4}$")
MSGID_RE = re.compile(rb"^Message-ID: <([^<>@\s]+@[^<>@\s]+)>$", re.I)


def render(template: bytes, values: dict) -> bytes:
    out = template
    for k, v in values.items():
        out = out.replace(b"{{" + k.encode() + b"}}", v.encode("utf-8"))
    assert b"{{" not in out, out
    return out


def recipients(prefix: str, n: int = 20):
    rows = []
    for i in range(n):
        rows.append((f"{prefix}-user{i:02d}@{DOMAIN}", f"Name{i:02d}", CITIES[i % len(CITIES)]))
    return rows


def split_generated(msg: bytes):
    """Splits a delivered message (trace headers stripped, LF) into (the message without
    the To:/Date:/Message-ID: header lines smtpblast adds, {name: [lines]} of those)."""
    head, sep, body = msg.partition(b"\n\n")
    kept, generated = [], {}
    lines = head.split(b"\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        # A header with its continuation lines.
        j = i + 1
        while j < len(lines) and lines[j][:1] in (b" ", b"\t"):
            j += 1
        name = line.split(b":", 1)[0].lower()
        if name in (b"to", b"date", b"message-id"):
            generated.setdefault(name.decode(), []).append(b"\n".join(lines[i:j]))
        else:
            kept.extend(lines[i:j])
        i = j
    return b"\n".join(kept) + sep + body, generated


class PostfixDeliveryTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pf = peers.PostfixInstance(domains=(DOMAIN,))
        cls.pf.start()

    @classmethod
    def tearDownClass(cls):
        cls.pf.stop()

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def log_mark(self) -> int:
        return len(self.pf.log())

    def run_variant(self, prefix, *extra, template=TEMPLATE):
        rows = recipients(prefix)
        csv = blast.write_csv(self.dir / f"{prefix}.csv", ("email", "first_name", "city"), rows)
        task = self.dir / f"{prefix}.db"
        self.tpl.write_bytes(template)
        p = blast.send(task, self.tpl, self.pf.hostport, csv, "--connections", "3", *extra,
                       timeout=60)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        st = blast.status(task)
        self.assertEqual((st["total"], st["sent"], st["failed"], st["deferred"], st["unsent"]),
                         (20, 20, 0, 0, 0), st)

        # (a) every message arrives, exactly once per recipient.
        for email, _, _ in rows:
            self.pf.wait_for(1, timeout=30, recipient=email)
        self.pf.wait_queue_empty(timeout=30)
        msg_ids = []
        for email, first, city in rows:
            got = self.pf.messages(recipient=email)
            self.assertEqual(len(got), 1, f"{email}: {len(got)} deliveries")
            msg = peers.strip_trace_headers(got[0])
            self.assertNotIn(b"\r", msg)
            rest, gen = split_generated(msg)
            # (b) the headers smtpblast adds: present once each, well-formed.
            self.assertEqual(sorted(gen), ["date", "message-id", "to"], msg[:600])
            for k, v in gen.items():
                self.assertEqual(len(v), 1, f"{email}: {k} appears {len(v)} times")
            self.assertRegex(gen["to"][0].decode(),
                             r"^To: (<%s>|%s)$" % (re.escape(email), re.escape(email)))
            self.assertRegex(gen["date"][0], DATE_RE)
            m = MSGID_RE.match(gen["message-id"][0])
            self.assertIsNotNone(m, gen["message-id"][0])
            msg_ids.append(m.group(1))
            # Everything else byte for byte, dot lines unstuffed; the body (8-bit text with
            # merge fields) goes as quoted-printable, never 8-bit (issue 12/18): its
            # Content-Transfer-Encoding is replaced, and it decodes to the merged text.
            expected = render(template, {"first_name": first, "city": city, "email": email})
            exp_head, _, exp_body = expected.partition(b"\n\n")
            exp_head = (exp_head.replace(b"Content-Transfer-Encoding: 8bit\n", b"")
                        + b"\nContent-Transfer-Encoding: quoted-printable")
            got_head, _, got_body = rest.partition(b"\n\n")
            self.assertEqual(got_head, exp_head, f"{email}: delivered headers differ")
            self.assertEqual(quopri.decodestring(got_body), exp_body,
                             f"{email}: delivered body differs")
            for line in got_body.split(b"\n"):
                self.assertLessEqual(len(line), 76, line)
                self.assertTrue(all(b < 0x80 for b in line), line)
        # (c) distinct Message-IDs.
        self.assertEqual(len(set(msg_ids)), len(msg_ids), msg_ids)
        return task

    def smtpd_commands(self, since: int) -> str:
        """The `disconnect from ... ehlo=1 mail=N ...` summaries logged since `since`."""
        return "\n".join(line for line in self.pf.log()[since:].splitlines()
                         if "disconnect from" in line)

    def test_default_pipelining_and_chunking(self):
        mark = self.log_mark()
        self.run_variant("pc", "--workers", "2")
        cmds = self.smtpd_commands(mark)
        self.assertIn("bdat=", cmds, "Postfix offers CHUNKING: BDAT expected\n" + cmds)
        self.assertNotIn(" data=", cmds, cmds)

    def test_no_chunking_uses_data(self):
        mark = self.log_mark()
        self.run_variant("dt", "--no-chunking")
        cmds = self.smtpd_commands(mark)
        self.assertIn(" data=", cmds, "--no-chunking: DATA expected\n" + cmds)
        self.assertNotIn("bdat=", cmds, cmds)

    def test_no_pipelining(self):
        mark = self.log_mark()
        self.run_variant("np", "--no-pipelining")
        self.assertNotIn("improper command pipelining", self.pf.log()[mark:])

    def test_no_pipelining_no_chunking(self):
        self.run_variant("nn", "--no-pipelining", "--no-chunking")

    def test_many_connections_per_connection_2(self):
        mark = self.log_mark()
        self.run_variant("pc2", "--per-connection", "2")
        cmds = [c for c in self.smtpd_commands(mark).splitlines() if "mail=" in c]
        # 20 messages, at most 2 per connection: at least 10 sessions with mail.
        self.assertGreaterEqual(len(cmds), 10, "\n".join(cmds))
        for c in cmds:
            m = re.search(r" mail=(\d+)", c)
            self.assertLessEqual(int(m.group(1)), 2, c)

    def test_non_ascii_value_in_header_is_rfc2047(self):
        tpl = (b"From: Blast Sender <sender@example.test>\n"
               b"Subject: Greetings to {{city}}\n"
               b"\n"
               b"Hello {{first_name}} in {{city}}\n")
        rows = [(f"hdr{i}@{DOMAIN}", f"N{i}", c) for i, c in enumerate(CITIES[:4])]
        csv = blast.write_csv(self.dir / "hdr.csv", ("email", "first_name", "city"), rows)
        self.tpl.write_bytes(tpl)
        task = self.dir / "hdr.db"
        p = blast.send(task, self.tpl, self.pf.hostport, csv, timeout=60)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.pf.wait_queue_empty(timeout=30)
        for addr, first, city in rows:
            [m] = self.pf.wait_for(1, timeout=30, recipient=addr)
            msg = peers.strip_trace_headers(m)
            head, _, body = msg.partition(b"\n\n")
            self.assertEqual(quopri.decodestring(body), f"Hello {first} in {city}\n".encode())
            self.assertTrue(all(b < 0x80 for b in body), body)
            # Header: 7-bit only, decoding to the value.
            self.assertTrue(all(b < 0x80 for b in head), head)
            subj = re.search(rb"^Subject:(.*(?:\n[ \t].*)*)", head, re.M).group(1)
            decoded = str(email.header.make_header(email.header.decode_header(
                subj.decode("ascii").replace("\n", ""))))
            self.assertEqual(decoded.strip(), f"Greetings to {city}")


if __name__ == "__main__":
    blast.main("test_postfix_delivery")
