#!/usr/bin/python3
"""Issue 19: what comes back from an SMSC. `sms receipts` binds to the simulator (npm smpp's
server, tests/support/smsc_sim.js), which delivers receipts in several formats and STOP
replies; the task's recipients become delivered / undeliverable / expired (a multi-part
message when every part is), a receipt for an unknown id is only counted, a STOP puts the
number on the task's suppression list and suppresses it if unsent, and every deliver_sm is
answered. SMPP over TLS (the simulator behind implicit TLS): `sms check` / `sms test` verify
the SMSC's certificate with the provider's ca_file and refuse an unknown one.

Before `sms send` exists here, a run is stood in for by `sms import` plus rows written the way
the journal writes them (recipients sent, sms_ids per part).

Run: tools/itest.sh test_sms_receipts
"""

import os
import sqlite3
import time
import unittest

from support import blast, peers, procs, smsc, tls_peers

PASSWORD = "s3cr-pw"
NUMBERS = ["+447400123001", "+447400123002", "+447400123003", "+447400123004", "+447400123005"]

# As src/store/sms_ids.cc creates it (the journal's rows of a run).
SMS_IDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS sms_ids(
  message_id TEXT NOT NULL, rcpt_id INTEGER NOT NULL, part INTEGER NOT NULL,
  parts INTEGER NOT NULL, submitted INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0, ref INTEGER NOT NULL DEFAULT -1);
CREATE INDEX IF NOT EXISTS sms_ids_message ON sms_ids(message_id);
CREATE INDEX IF NOT EXISTS sms_ids_rcpt ON sms_ids(rcpt_id);
"""


@unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
class SmsReceiptsTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.pwfile = self.dir / "pw"
        self.pwfile.write_text(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.env = {"XDG_CONFIG_HOME": str(self.dir / "xdg"), "HOME": str(self.dir)}

    def tearDown(self):
        self.wd.cleanup()

    def sb(self, *args, timeout=30):
        return peers.run([blast.BIN, *[str(a) for a in args]], timeout=timeout, env=self.env)

    def conf(self, port, extra=""):
        return smsc.provider_conf(self.dir / "providers.toml", port, self.pwfile, extra)

    def sent_task(self, ids_by_number: dict):
        """An SMS task of NUMBERS; those in ids_by_number sent, with their parts' ids."""
        csv = blast.write_csv(self.dir / "l.csv", ["phone"], [[n] for n in NUMBERS])
        task = self.dir / "t.db"
        r = self.sb("sms", "import", "--task", task, "--recipients", csv, "--country", "GB")
        self.assertEqual(r.returncode, 0, blast.describe(r))
        rows = blast.db_rows(task)
        con = sqlite3.connect(task, timeout=10)
        try:
            con.executescript(SMS_IDS_SCHEMA)
            for number, ids in ids_by_number.items():
                rid = rows[number]["id"]
                con.execute("UPDATE recipients SET status = 1, attempts = 1 WHERE id = ?", (rid,))
                for part, mid in enumerate(ids, 1):
                    con.execute("INSERT INTO sms_ids(message_id, rcpt_id, part, parts, submitted)"
                                " VALUES (?, ?, ?, ?, 1)", (mid, rid, part, len(ids)))
            con.commit()
        finally:
            con.close()
        return task

    def test_receipts_and_stop_after_a_run(self):
        task = self.sent_task({NUMBERS[0]: ["m1"], NUMBERS[1]: ["m2"], NUMBERS[2]: ["c1", "c2"],
                               NUMBERS[3]: ["1F4A"]})
        deliver = [
            smsc.receipt_pdu("m1", "DELIVRD", to="447400123001"),
            smsc.receipt_pdu("m2", "UNDELIV", to="447400123002", err="001"),
            smsc.receipt_pdu("c1", "DELIVRD", to="447400123003"),
            # Part 2: TLVs only, the text in upper-case keys with underscores.
            smsc.receipt_pdu("", to="447400123003",
                             text="ID:xx STAT:ENROUTE SUBMIT_DATE:2612031200",
                             receipted_message_id="c2", message_state=2),
            # Submitted as hex 1F4A, the receipt in decimal.
            smsc.receipt_pdu("8010", "EXPIRED", to="447400123004"),
            smsc.receipt_pdu("nobody", "DELIVRD"),
            smsc.stop_pdu("447400123005", " stop all "),
            smsc.stop_pdu("447400123001", "thanks!"),
        ]
        with smsc.Smsc(system_id="sb", password=PASSWORD, deliver=deliver) as sim:
            r = self.sb("sms", "receipts", "--task", task, "--provider", "sim",
                        "--provider-config", self.conf(sim.port), "--for", "2s")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            out = r.stdout
            self.assertIn("6 receipts: 2 delivered, 1 undeliverable, 1 expired", out)
            self.assertIn("1 for unknown ids", out)
            self.assertIn("1 STOP reply (1 number added to the task's suppression list, "
                          "1 unsent recipient suppressed)", out)
            self.assertIn("1 other replies", out)
            # Every deliver_sm answered, with status 0.
            resps = sim.events("deliver_resp")
            self.assertEqual(len(resps), len(deliver), sim.events())
            self.assertTrue(all(e["status"] == 0 for e in resps))
            self.assertEqual(len(sim.events("unbind")), 1)
        rows = blast.db_rows(task)
        self.assertEqual(rows[NUMBERS[0]]["status"], "10")  # delivered
        self.assertIn("DELIVRD", rows[NUMBERS[0]]["reply"])
        self.assertEqual(rows[NUMBERS[1]]["status"], "11")  # undeliverable
        self.assertEqual(rows[NUMBERS[2]]["status"], "10")  # both parts delivered
        self.assertEqual(rows[NUMBERS[3]]["status"], "12")  # expired
        self.assertEqual(rows[NUMBERS[4]]["status"], "suppressed")
        st = blast.status(task)
        self.assertEqual((st["delivered"], st["undeliverable"], st["expired"],
                          st["suppressed"]), (2, 1, 1, 1))
        r = self.sb("status", "--task", task)
        self.assertRegex(r.stdout, r"\n  delivered\s+2\n")
        con = sqlite3.connect(task)
        try:
            keys = [k for (k,) in con.execute("SELECT key FROM task_suppressed")]
        finally:
            con.close()
        self.assertEqual(keys, ["+447400123005"])
        r = self.sb("export", "--task", task, "--status", "delivered,undeliverable")
        self.assertEqual(r.returncode, 0, blast.describe(r))
        self.assertIn("+447400123001", r.stdout)
        self.assertIn("undeliverable", r.stdout)

    def test_receipts_on_demand_while_listening_and_a_duplicate(self):
        task = self.sent_task({NUMBERS[0]: ["m1"]})
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            p = procs.Process([blast.BIN, "sms", "receipts", "--task", task, "--provider",
                               "sim", "--provider-config", self.conf(sim.port), "--for", "3s"],
                              timeout=30, env=self.env)
            with p:
                p.start()
                deadline = time.monotonic() + 10
                while not sim.events("bind") and time.monotonic() < deadline:
                    time.sleep(0.05)
                sim.deliver(**smsc.receipt_pdu("m1", "DELIVRD"))
                sim.deliver(**smsc.receipt_pdu("m1", "DELIVRD"))  # the SMSC sends it again
                p.wait()
            r = p
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("2 receipts: 1 delivered", r.stdout)
            self.assertIn("1 duplicate", r.stdout)

    def test_not_an_sms_task_and_bad_duration_exit_2(self):
        csv = blast.write_csv(self.dir / "e.csv", ["email"], [["a@example.test"]])
        task = self.dir / "e.db"
        r = self.sb("import", "--task", task, "--recipients", csv)
        self.assertEqual(r.returncode, 0, blast.describe(r))
        conf = self.conf(9)
        r = self.sb("sms", "receipts", "--task", task, "--provider", "sim", "--provider-config",
                    conf, "--for", "1s")
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("not an SMS task", r.stderr)
        r = self.sb("sms", "receipts", "--task", task, "--provider", "sim", "--provider-config",
                    conf, "--for", "soon")
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("--for soon", r.stderr)

    def test_smpp_over_tls_verifies_the_smsc(self):
        certs = tls_peers.make_certs(self.dir / "certs")
        with smsc.Smsc(system_id="sb", password=PASSWORD, tls_cert=str(certs["server"]),
                       tls_key=str(certs["server_key"])) as sim:
            good = self.conf(sim.port, f'tls = true\nca_file = "{certs["ca"]}"')
            r = self.sb("sms", "check", "--provider", "sim", "--provider-config", good)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("bound as sb", r.stdout)
            r = self.sb("sms", "test", "--provider", "sim", "--provider-config", good, "--to",
                        "+447400123001", "--text", "over TLS")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertEqual([m["text"] for m in sim.accepted()], ["over TLS"])
            # Without the test CA the SMSC is not trusted: no bind, no password sent.
            r = self.sb("sms", "check", "--provider", "sim", "--provider-config",
                        self.conf(sim.port, "tls = true"))
            self.assertNotEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("certificate", r.stderr)
            self.assertEqual(len(sim.events("bind")), 2)
            # Plain SMPP against a TLS SMSC does not bind either.
            r = self.sb("sms", "check", "--provider", "sim", "--provider-config",
                        self.conf(sim.port))
            self.assertNotEqual(r.returncode, 0, blast.describe(r))
        r = self.sb("sms", "check", "--provider", "sim", "--provider-config",
                    self.conf(9, 'ca_file = "/nonexistent"'))
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("key 'ca_file'", r.stderr)


if __name__ == "__main__":
    blast.main("test_sms_receipts")
