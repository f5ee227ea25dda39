#!/usr/bin/python3
"""Issue 19: SMS providers. [provider.NAME] tables (or --provider-config FILE) checked with
errors naming the key (exit 2); `sms check` binds to a real SMPP server (npm smpp's, scripted
by tests/support/smsc_sim.js) and unbinds; `sms test` sends one SMS through it and through an
HTTP provider stub shaped like Twilio's and Vonage's APIs; a refused bind stops with the
SMSC's reason; secrets stay out of argv and output.

Run: tools/itest.sh test_sms  (as root; see support/blast.py)
"""

import json
import os
import signal
import sqlite3
import subprocess
import time
import unittest

from support import blast, peers, smsc

PASSWORD = "s3cr-pw"


@unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
class SmsProviderTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.pwfile = self.dir / "pw"
        self.pwfile.write_text(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.env = {"XDG_CONFIG_HOME": str(self.dir / "xdg"), "HOME": str(self.dir)}

    def tearDown(self):
        self.wd.cleanup()

    def conf(self, text: str):
        p = self.dir / "providers.toml"
        p.write_text(text)
        os.chmod(p, 0o600)
        return p

    def sb(self, *args, timeout=30, env=None):
        return peers.run([blast.BIN, *[str(a) for a in args]], timeout=timeout,
                         env={**self.env, **(env or {})})

    def smpp_conf(self, port, system_id="sb", extra=""):
        return self.conf(f"""
[provider.sim]
type = "smpp"
host = "127.0.0.1"
port = {port}
system_id = "{system_id}"
password_file = "{self.pwfile}"
from = "Shop"
{extra}
""")

    def test_bad_provider_config_exits_2_naming_the_key(self):
        cases = [
            ("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\nport = \"many\"\n",
             "key 'port'"),
            ("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\nwindw = 3\n",
             "key 'windw'"),
            ("[provider.x]\ntype = \"pigeon\"\n", "key 'type'"),
            ("[provider.x]\ntype = \"http\"\npreset = \"twillio\"\n", "key 'preset'"),
            ("[provider.x]\ntype = \"http\"\npreset = \"twilio\"\naccount = \"AC1\"\n",
             "key 'password_file'"),
        ]
        for text, key in cases:
            p = self.conf(text)
            r = self.sb("sms", "check", "--provider", "x", "--provider-config", p)
            self.assertEqual(r.returncode, 2, blast.describe(r))
            self.assertIn(key, r.stderr, blast.describe(r))
            self.assertIn("providers.toml:", r.stderr)
        r = self.sb("sms", "check", "--provider", "nope", "--provider-config",
                    self.conf("[provider.x]\ntype = \"smpp\"\nhost = \"h\"\nsystem_id = \"s\"\n"))
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("no [provider.nope]", r.stderr)
        self.assertIn("defined: x", r.stderr)

    def test_providers_in_the_config_file_do_not_upset_other_verbs(self):
        xdg = self.dir / "xdg" / "smtpblast"
        xdg.mkdir(parents=True)
        cfg = xdg / "config.toml"
        cfg.write_text(f"""
[send]
connections = 2

[provider.sim]
type = "smpp"
host = "127.0.0.1"
port = 9
system_id = "sb"
password_file = "{self.pwfile}"
""")
        os.chmod(cfg, 0o600)
        r = self.sb("config", "show", "send")
        self.assertEqual(r.returncode, 0, blast.describe(r))
        self.assertIn("connections = 2", r.stdout)
        # ... and `sms` finds the provider there without --provider-config (port 9: refused).
        r = self.sb("sms", "check", "--provider", "sim")
        self.assertEqual(r.returncode, 1, blast.describe(r))
        self.assertIn("provider sim", r.stderr)

    def test_smpp_check_binds_and_unbinds(self):
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            r = self.sb("sms", "check", "--provider", "sim", "--provider-config",
                        self.smpp_conf(sim.port))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("bound as sb", r.stdout)
            binds = sim.events("bind")
            self.assertEqual(len(binds), 1)
            self.assertTrue(binds[0]["ok"])
            self.assertEqual(binds[0]["command"], "bind_transceiver")
            self.assertEqual(len(sim.events("unbind")), 1)
            self.assertEqual(sim.submitted(), [])
            self.assertNotIn(PASSWORD, r.stdout + r.stderr)

    def test_smpp_bind_refused_stops_with_the_reason(self):
        with smsc.Smsc(system_id="sb", password="other") as sim:
            r = self.sb("sms", "check", "--provider", "sim", "--provider-config",
                        self.smpp_conf(sim.port))
            self.assertEqual(r.returncode, blast.FATAL_RC, blast.describe(r))
            self.assertIn("ESME_RBINDFAIL", r.stderr)
            self.assertNotIn(PASSWORD, r.stdout + r.stderr)

    def test_smpp_test_sends_one_sms(self):
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            r = self.sb("sms", "test", "--provider", "sim", "--provider-config",
                        self.smpp_conf(sim.port), "--to", "+447400123123", "--text",
                        "Hello € [1]")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("message id m1", r.stdout)
            got = sim.accepted()
            self.assertEqual(len(got), 1)
            self.assertEqual(got[0]["to"].lstrip("+"), "447400123123")
            self.assertEqual(got[0]["from"], "Shop")

    def test_smpp_test_rejected_number(self):
        with smsc.Smsc(system_id="sb", password=PASSWORD,
                       reject={"447400123999": 0x0B, "+447400123999": 0x0B}) as sim:
            r = self.sb("sms", "test", "--provider", "sim", "--provider-config",
                        self.smpp_conf(sim.port), "--to", "+447400123999", "--text", "x")
            self.assertEqual(r.returncode, 1, blast.describe(r))
            self.assertIn("refused", r.stderr)

    def test_http_twilio_shape(self):
        token = "tw-token-xyz"
        tok = self.dir / "tok"
        tok.write_text(token + "\n")
        os.chmod(tok, 0o600)
        with smsc.HttpSmsStub(shape="twilio", basic=f"AC42:{token}") as stub:
            p = self.conf(f"""
[provider.tw]
type = "http"
preset = "twilio"
account = "AC42"
password_file = "{tok}"
url = "{stub.url}/2010-04-01/Accounts/{{{{account}}}}/Messages.json"
from = "+15005550006"
""")
            r = self.sb("sms", "check", "--provider", "tw", "--provider-config", p)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertEqual(stub.requests(), [])
            r = self.sb("sms", "test", "--provider", "tw", "--provider-config", p, "--to",
                        "+447400123123", "--text", "Hi & bye")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("SM", r.stdout)
            reqs = stub.requests()
            self.assertEqual(len(reqs), 1)
            self.assertEqual(reqs[0]["path"], "/2010-04-01/Accounts/AC42/Messages.json")
            self.assertEqual(reqs[0]["form"], {"To": "+447400123123", "From": "+15005550006",
                                               "Body": "Hi & bye"})
            self.assertNotIn(token, r.stdout + r.stderr)

    def test_http_vonage_shape_and_refusals(self):
        with smsc.HttpSmsStub(shape="vonage",
                              fail_to={"447400123999": (200, {"messages": [
                                  {"status": "3", "error-text": "Invalid to"}]})}) as stub:
            p = self.conf(f"""
[provider.vo]
type = "http"
preset = "vonage"
account = "key1"
password_env = "VO_SECRET"
url = "{stub.url}/sms/json"
from = "Shop"
""")
            env = {"VO_SECRET": "vsecret"}
            r = self.sb("sms", "test", "--provider", "vo", "--provider-config", p, "--to",
                        "+447400123123", "--text", "hé", env=env)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            form = stub.requests()[0]["form"]
            self.assertEqual(form["to"], "447400123123")
            self.assertEqual(form["api_secret"], "vsecret")
            self.assertEqual(form["text"], "hé")
            r = self.sb("sms", "test", "--provider", "vo", "--provider-config", p, "--to",
                        "+447400123999", "--text", "x", env=env)
            self.assertEqual(r.returncode, 1, blast.describe(r))
            self.assertIn("messages.0.status is \"3\"", r.stderr)
            r = self.sb("sms", "test", "--provider", "vo", "--provider-config", p, "--to",
                        "+447400123123", "--text", "x")
            self.assertEqual(r.returncode, 2, blast.describe(r))
            self.assertIn("VO_SECRET", r.stderr)

    def test_http_bearer_refused_is_fatal(self):
        with smsc.HttpSmsStub(token="right") as stub:
            p = self.conf(f"""
[provider.gen]
type = "http"
url = "{stub.url}/send"
auth = "bearer"
token_cmd = "echo wrong"
body = "json"
fields = {{ to = "{{{{to}}}}", text = "{{{{text}}}}" }}
message_id_path = "id"
""")
            r = self.sb("sms", "test", "--provider", "gen", "--provider-config", p, "--to",
                        "+4915112345678", "--text", "x")
            self.assertEqual(r.returncode, blast.FATAL_RC, blast.describe(r))
            self.assertIn("HTTP 401", r.stderr)
            self.assertEqual(stub.requests()[0]["json"],
                             {"to": "+4915112345678", "text": "x"})


# A client written with npm smpp's own Session: two binds, six messages, every deliver_sm seen.
CLIENT_JS = r"""
const smpp = require(process.argv[1]);
const port = +process.argv[2];
const out = {resps: [], dlv: [], binds: 0};
function bind(then) {
  const s = smpp.connect({host: '127.0.0.1', port});
  s.on('error', () => {});
  s.on('deliver_sm', p => {
    out.dlv.push([p.esm_class, p.source_addr, p.short_message.message]);
    s.send(p.response());
  });
  s.bind_transceiver({system_id: 'sb', password: 'pw'}, r => { out.binds++; then(s); });
  return s;
}
bind(s => {
  const tos = ['447400123001', '447400123002', '447400123003', '447400123999'];
  let left = tos.length;
  for (const to of tos) {
    s.submit_sm({destination_addr: to, short_message: 'hi', registered_delivery: 1}, r => {
      out.resps.push([to, r.command_status]);
    });
  }
  s.on('close', () => {
    bind(s2 => setTimeout(() => { console.log(JSON.stringify(out)); process.exit(0); }, 300));
  });
});
"""


@unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
class SmscSelfTest(unittest.TestCase):
    """The simulator does what the SMS tests script it to do: throttle every Nth, reject a
    number, cut the connection after N accepted, keep receipts for the next bind, send STOP."""

    def test_script(self):
        with smsc.Smsc(system_id="sb", password="pw", throttle_every=3,
                       reject={"447400123999": 0x0B}, drop_after=2, receipts=True,
                       receipt_stat={"447400123002": "UNDELIV"},
                       stop_from=["447400123555"]) as sim:
            r = subprocess.run(["node", "-e", CLIENT_JS, str(smsc.NODE_MODULES / "smpp"),
                                str(sim.port)], capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = json.loads(r.stdout)
            self.assertEqual(out["binds"], 2)
            # 1 and 2 accepted, then the cut: 3 (throttled anyway) and 999 are never answered.
            self.assertEqual(out["resps"], [["447400123001", 0], ["447400123002", 0]])
            self.assertEqual([d["to"] for d in sim.accepted()], ["447400123001", "447400123002"])
            self.assertEqual(len(sim.events("drop")), 1)
            texts = [d[2] for d in out["dlv"]]
            self.assertIn("STOP", texts)
            receipts = [t for e, _, t in out["dlv"] if e == 4]
            self.assertEqual(len(receipts), 2, out)
            self.assertTrue(any("id:m1 " in t and "stat:DELIVRD" in t for t in receipts))
            # m2's receipt was queued when its bind was cut: the second bind gets it.
            self.assertTrue(any("id:m2 " in t and "stat:UNDELIV" in t for t in receipts))

    def test_throttle_and_reject(self):
        with smsc.Smsc(throttle_every=2, reject={"447400123999": 0x0B}) as sim:
            js = CLIENT_JS.replace("s.on('close'", "setTimeout(() => s.close(), 300); s.on('close'")
            r = subprocess.run(["node", "-e", js, str(smsc.NODE_MODULES / "smpp"), str(sim.port)],
                               capture_output=True, text=True, timeout=20)
            self.assertEqual(r.returncode, 0, r.stderr)
            got = {d["to"]: d["status"] for d in sim.submitted()}
            self.assertEqual(got, {"447400123001": 0, "447400123002": 0x58, "447400123003": 0,
                                   "447400123999": 0x0B})


class SmsImportTest(unittest.TestCase):
    """`sms import`: numbers normalised to E.164 with the default country (libphonenumber),
    invalid ones failed with the reason, duplicates found after normalisation; the task is
    an SMS task that `send` refuses."""

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path

    def tearDown(self):
        self.wd.cleanup()

    def test_import_normalises_and_send_refuses_the_task(self):
        csv = blast.write_csv(self.dir / "l.csv", ["name", "Mobile"], [
            ["Ann", "07400 123123"], ["Bob", "+44 7400 123123"], ["Cy", "12"],
            ["Di", "0151 12345678"], ["Ed", "+4915112345678"], ["Fi", "+1 650 253 0000"]])
        task = self.dir / "t.db"
        r = peers.run([blast.BIN, "sms", "import", "--task", task, "--recipients", csv,
                       "--country", "GB", "--phone-column", "mobile"], timeout=30)
        self.assertEqual(r.returncode, 0, blast.describe(r))
        rows = blast.db_rows(task)
        self.assertEqual(rows["+447400123123"]["status"], "unsent")
        self.assertEqual(rows["+4915112345678"]["status"], "unsent")
        self.assertEqual(rows["+16502530000"]["status"], "unsent")
        self.assertEqual(rows["12"]["status"], "failed")
        self.assertIn("invalid number", rows["12"]["reply"])
        self.assertEqual(rows["0151 12345678"]["status"], "failed")  # not a GB number
        self.assertEqual(len(rows), 5)  # Bob is Ann after normalisation
        st = blast.status(task)
        self.assertEqual(st["total"], 5)
        tpl = self.dir / "m.eml"
        tpl.write_bytes(b"From: a@example.test\nSubject: x\n\nx\n")
        r = blast.send(task, tpl, "127.0.0.1:9")
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("SMS mailing", r.stderr)
        r = peers.run([blast.BIN, "sms", "import", "--task", self.dir / "u.db", "--recipients",
                       csv, "--country", "XX"], timeout=30)
        self.assertEqual(r.returncode, 2, blast.describe(r))
        self.assertIn("--country XX", r.stderr)


@unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
class SmsSendTest(unittest.TestCase):
    """`sms send`: an SMS mailing through the engine (planner, ledger, coordinator, journal):
    throttling replies and a dropped bind, kill -9 and resume, --limit and resume, an HTTP
    provider, and the task's kind (an e-mail task refused)."""

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.pwfile = self.dir / "pw"
        self.pwfile.write_text(PASSWORD + "\n")
        os.chmod(self.pwfile, 0o600)
        self.env = {"XDG_CONFIG_HOME": str(self.dir / "xdg"), "HOME": str(self.dir)}
        self.tpl = self.dir / "msg.txt"
        self.tpl.write_text("Hi {{name}}, {{phone}} wins\n")

    def tearDown(self):
        self.wd.cleanup()

    def numbers(self, n):
        # Real-shaped UK mobiles (libphonenumber refuses Ofcom's drama range 07700 900xxx).
        csv = blast.write_csv(self.dir / f"l{n}.csv", ["name", "phone"],
                              [[f"N{i}", f"074001{i:05d}"] for i in range(n)])
        return csv, [f"+4474001{i:05d}" for i in range(n)]

    def smpp_conf(self, port, window=50):
        return smsc.provider_conf(self.dir / "providers.toml", port, self.pwfile,
                                  f"window = {window}")

    def args(self, task, conf, csv=None, *extra):
        a = [blast.BIN, "sms", "send", "--task", task, "--template", self.tpl, "--provider",
             "sim", "--provider-config", conf, "--progress", "none", *extra]
        return a + (["--recipients", csv] if csv is not None else [])

    def sb(self, *args, timeout=60):
        return peers.run([str(a) for a in args], timeout=timeout, env=self.env)

    @staticmethod
    def digits(numbers):
        return [n.lstrip("+") for n in numbers]

    def test_10k_mailing_with_throttling_and_a_dropped_bind(self):
        csv, nums = self.numbers(10000)
        task = self.dir / "t.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD, throttle_every=2500,
                       queue_full_every=3333, drop_after=4000) as sim:
            r = self.sb(*self.args(task, self.smpp_conf(sim.port), csv, "--connections", "2",
                                   "--json"), timeout=120)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            acc = sim.accepted()
            tos = [a["to"] for a in acc]
            # Every recipient settled exactly once: accepted once, none twice, none missing.
            self.assertEqual(len(tos), 10000)
            self.assertEqual(sorted(tos), sorted(self.digits(nums)))
            self.assertTrue(any(a["status"] == 0x58 for a in sim.submitted()))
            self.assertTrue(any(a["status"] == 0x14 for a in sim.submitted()))
            self.assertEqual(len(sim.events("drop")), 1)
            self.assertGreaterEqual(len([b for b in sim.events("bind") if b["ok"]]), 3)
            self.assertEqual(acc[0]["from"], "Shop")
            byto = {a["to"]: a for a in acc}
            self.assertEqual(byto["447400100042"]["text"], "Hi N42, +447400100042 wins")
        summary = json.loads(r.stdout)
        self.assertEqual(summary["task"]["sent"], 10000, summary)
        st = blast.status(task)
        self.assertEqual(st["total"], 10000)
        self.assertEqual(st["sent"], 10000, st)
        rows = blast.db_rows(task)
        self.assertRegex(rows["+447400100042"]["reply"], r"^accepted, message id m\d+$")

    def test_kill_9_mid_run_and_resume(self):
        csv, nums = self.numbers(3000)
        task = self.dir / "t.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            conf = self.smpp_conf(sim.port, window=10)
            p = peers.Process(self.args(task, conf, csv, "--rate", "1000/s", "--commit-interval",
                                        "50ms"), timeout=60, env=self.env)
            p.start()
            sim.wait_accepted(1000, timeout=30)
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
            before = len(sim.submitted())
            recorded = {n for n, row in blast.db_rows(task).items() if row["status"] == "sent"}
            self.assertGreater(len(recorded), 0)
            self.assertLess(len(recorded), 3000)
            r = self.sb(*self.args(task, conf), timeout=60)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            tos = [a["to"] for a in sim.accepted()]
            again = [s["to"] for s in sim.submitted()[before:]]
            # Nothing lost; nothing recorded as sent is sent again; duplicates only among the
            # messages accepted but not yet committed when the process died.
            self.assertEqual(set(tos), set(self.digits(nums)))
            self.assertFalse(set(again) & set(self.digits(recorded)))
            dups = len(tos) - len(set(tos))
            self.assertLess(dups, 200, dups)
        st = blast.status(task)
        self.assertEqual(st["sent"], 3000, st)

    def test_receipts_and_stop_during_the_run(self):
        csv, nums = self.numbers(20)
        task = self.dir / "t.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD, receipts=True,
                       receipt_stat={"447400100003": "UNDELIV"},
                       stop_from=["447400100019"], respond_delay_ms=20) as sim:
            r = self.sb(*self.args(task, self.smpp_conf(sim.port, window=1), csv))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertIn("+447400100019 replied STOP", r.stderr)
        con = sqlite3.connect(f"file:{task}?mode=ro", uri=True)
        try:
            ids = con.execute("SELECT count(*), count(DISTINCT rcpt_id) FROM sms_ids").fetchone()
            st = dict(con.execute("SELECT email, status FROM recipients"))
        finally:
            con.close()
        sent = 19 if st["+447400100019"] == 4 else 20  # STOP may land before its send
        self.assertEqual(ids, (sent, sent))
        # Receipts that came in on the bind settled their recipients (10 delivered, 11
        # undeliverable); the last ones may still be on their way when the run unbinds.
        self.assertEqual(st["+447400100003"] in (1, 11), True, st)
        self.assertGreater(sum(1 for v in st.values() if v == 10), 10, st)

    def test_concatenated_messages_throttled_part_way_arrive_once(self):
        csv, nums = self.numbers(6)
        self.tpl.write_text("Hi {{name}} " + "x" * 200 + " end\n")  # two GSM-7 parts
        task = self.dir / "t.db"
        # Every 4th submit_sm throttled: with one at a time, the second part of every other
        # message (parts 1, 2 of the first; 1 taken, 2 refused of the second ...).
        with smsc.Smsc(system_id="sb", password=PASSWORD, throttle_every=4) as sim:
            r = self.sb(*self.args(task, self.smpp_conf(sim.port, window=1), csv))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            # A part refused (throttled) after its sibling was taken: only the missing part goes
            # again, so the phone gets each message once, whole, and no part twice.
            self.assertEqual(len(sim.accepted()), 12)
            msgs = sim.messages()
            self.assertEqual(sorted(msgs), sorted(self.digits(nums)))
            self.assertTrue(all(len(v) == 1 and v[0].endswith(" end") for v in msgs.values()))
            resent = [s["udh"][2] for s in sim.submitted()[12:]]
            self.assertEqual(resent, [2, 2, 2])  # only the refused parts went again

    def test_partly_accepted_message_resumed_after_kill_9(self):
        csv, nums = self.numbers(1)
        self.tpl.write_text("Hi {{name}} " + "x" * 400 + " end\n")  # three GSM-7 parts
        task = self.dir / "t.db"
        # Part 1 taken, part 2 refused (ESME_RSYSERR: deferred, retried after --retry-delay);
        # with a window of 1 part 3 is never sent. The run is killed before its retry.
        with smsc.Smsc(system_id="sb", password=PASSWORD,
                       refuse_part={"part": 2, "status": 0x08}) as sim:
            conf = self.smpp_conf(sim.port, window=1)
            p = peers.Process(self.args(task, conf, csv, "--retry-delay", "600s",
                                        "--commit-interval", "50ms"), timeout=60, env=self.env)
            p.start()
            def status():
                try:
                    return blast.db_rows(task).get(nums[0], {}).get("status")
                except sqlite3.Error:  # the task is still being created
                    return None
            deadline = time.monotonic() + 20
            while status() != "deferred":
                self.assertLess(time.monotonic(), deadline, "the partial outcome never came")
                time.sleep(0.05)
            os.kill(p.pid, signal.SIGKILL)
            p.wait(timeout=10)
            first = sim.submitted()
            self.assertEqual([(s["udh"][2], s["status"]) for s in first], [(1, 0), (2, 0x08)])
            ref = first[0]["udh"][0]
            r = self.sb(*self.args(task, conf), timeout=30)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            again = sim.submitted()[len(first):]
            # Only the missing parts, with the original reference: the phone joins them with
            # the part it has, and part 1 went once.
            self.assertEqual([s["udh"] for s in again], [[ref, 3, 2], [ref, 3, 3]])
            self.assertEqual([s["status"] for s in again], [0, 0])
            self.assertEqual(len([a for a in sim.accepted() if a["udh"][2] == 1]), 1)
            msgs = sim.messages()
            self.assertEqual(list(msgs), self.digits(nums))
            self.assertEqual(len(msgs[self.digits(nums)[0]]), 1)
            self.assertTrue(msgs[self.digits(nums)[0]][0].endswith(" end"))
        row = blast.db_rows(task)[nums[0]]
        self.assertEqual(row["status"], "sent", row)
        self.assertEqual(row["reply"], f"accepted, message ids {first[0]['id']},"
                                       f"{again[0]['id']},{again[1]['id']}")

    def test_limit_then_resume(self):
        csv, nums = self.numbers(50)
        task = self.dir / "t.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            conf = self.smpp_conf(sim.port)
            r = self.sb(*self.args(task, conf, csv, "--limit", "20"))
            self.assertEqual(r.returncode, 3, blast.describe(r))
            self.assertIn("--limit 20 reached", r.stderr)
            self.assertEqual(len(sim.accepted()), 20)
            st = blast.status(task)
            self.assertEqual(st["sent"], 20, st)
            r = self.sb(*self.args(task, conf))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            tos = [a["to"] for a in sim.accepted()]
            self.assertEqual(sorted(tos), sorted(self.digits(nums)))
        r = self.sb(blast.BIN, "export", "--task", task, "--status", "sent")
        self.assertEqual(r.returncode, 0, blast.describe(r))
        self.assertIn("+447400100049", r.stdout)
        self.assertTrue(r.stdout.startswith("phone,"), r.stdout[:80])  # an SMS list's key

    def test_http_provider_mailing(self):
        csv, nums = self.numbers(30)
        task = self.dir / "t.db"
        with smsc.HttpSmsStub(token="tok", fail_to={
                "+447400100007": (400, {"error": "bad number"}),
                "+447400100008": (503, {"error": "busy"})}) as stub:
            p = self.dir / "http.toml"
            p.write_text(f"""
[provider.gen]
type = "http"
url = "{stub.url}/send"
auth = "bearer"
token_cmd = "echo tok"
body = "json"
fields = {{ to = "{{{{to}}}}", from = "{{{{from}}}}", text = "{{{{text}}}}" }}
message_id_path = "id"
from = "Shop"
country = "GB"
""")
            os.chmod(p, 0o600)
            r = self.sb(blast.BIN, "sms", "send", "--task", task, "--template", self.tpl,
                        "--provider", "gen", "--provider-config", p, "--recipients", csv,
                        "--progress", "none", "--max-attempts", "2", "--retry-delay", "100ms")
            self.assertEqual(r.returncode, 1, blast.describe(r))
            reqs = stub.requests()
            ok = [q["json"]["to"] for q in reqs if q["json"]["to"] not in
                  ("+447400100007", "+447400100008")]
            self.assertEqual(sorted(ok), sorted(set(nums) - {"+447400100007", "+447400100008"}))
            self.assertEqual(len([q for q in reqs if q["json"]["to"] == "+447400100008"]), 2)
            self.assertEqual(reqs[0]["json"]["from"], "Shop")
        rows = blast.db_rows(task)
        self.assertEqual(rows["+447400100007"]["status"], "failed")
        self.assertEqual(rows["+447400100008"]["status"], "deferred")
        self.assertRegex(rows["+447400100001"]["reply"], r"^accepted, message id h\d+$")
        self.assertEqual(blast.status(task)["sent"], 28)

    def test_suppress_file_of_numbers(self):
        csv, nums = self.numbers(10)
        stop = self.dir / "stop.txt"
        # Any form the default country reads; the same number twice; comments, blank lines.
        stop.write_text("# opted out\n07400100003\n\n+44 7400 100005\n00447400100007\n"
                        "07400 100003\n")
        task = self.dir / "t.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            conf = self.smpp_conf(sim.port)
            r = self.sb(*self.args(task, conf, csv, "--suppress", stop, "--json"))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            suppressed = {"+447400100003", "+447400100005", "+447400100007"}
            self.assertEqual(sorted(a["to"] for a in sim.accepted()),
                             sorted(self.digits(set(nums) - suppressed)))
            # Settled as `send` settles a suppressed address: status, reply, counts.
            self.assertEqual(json.loads(r.stdout)["run"]["recipients_suppressed"], 3)
            st = blast.status(task)
            self.assertEqual((st["sent"], st["suppressed"]), (7, 3), st)
            rows = blast.db_rows(task)
            for n in suppressed:
                self.assertEqual(rows[n]["status"], "suppressed")
                self.assertEqual(rows[n]["reply"], "on the suppression list")
            r = self.sb(blast.BIN, "export", "--task", task, "--status", "suppressed")
            self.assertEqual(r.returncode, 0, blast.describe(r))
            self.assertEqual(len(r.stdout.strip().splitlines()), 4, r.stdout)  # header + 3
            # A line that is not a number: exit 2 naming the file and line, nothing sent.
            stop.write_text("07400100001\n# x\nnot-a-number\n")
            before = len(sim.submitted())
            r = self.sb(*self.args(self.dir / "t2.db", conf, csv, "--suppress", stop))
            self.assertEqual(r.returncode, 2, blast.describe(r))
            self.assertIn(f"{stop} line 3: 'not-a-number' is not a phone number", r.stderr)
            self.assertEqual(len(sim.submitted()), before)
            self.assertFalse((self.dir / "t2.db").exists())

    def test_daily_limit_counts_the_provider_account_across_tasks(self):
        quota = self.dir / "quota.db"
        a = blast.write_csv(self.dir / "a.csv", ["name", "phone"],
                            [[f"A{i}", f"0740020{i:04d}"] for i in range(3)])
        b = blast.write_csv(self.dir / "b.csv", ["name", "phone"],
                            [[f"B{i}", f"0740030{i:04d}"] for i in range(5)])
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            conf = self.smpp_conf(sim.port)
            lim = ("--daily-limit", "5", "--quota-store", quota)
            r = self.sb(*self.args(self.dir / "a.db", conf, a, *lim))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            # The second task through the same provider account gets what the first left.
            r = self.sb(*self.args(self.dir / "b.db", conf, b, *lim))
            self.assertEqual(r.returncode, 3, blast.describe(r))
            self.assertRegex(r.stderr, r"sending may resume at \d{4}-\d\d-\d\d \d\d:\d\d")
            self.assertEqual(len(sim.accepted()), 5)
        st = blast.status(self.dir / "b.db")
        self.assertEqual(st["sent"], 2, st)
        acct = st["account"]
        self.assertEqual(acct["account"], f"smpp sb at 127.0.0.1:{sim.port}")
        self.assertEqual((acct["used"], acct["daily_limit"], acct["remaining"]), (5, 5, 0))
        self.assertNotIn(PASSWORD, json.dumps(st))
        r = self.sb(blast.BIN, "status", "--task", self.dir / "a.db")
        self.assertIn(f"account:    smpp sb at 127.0.0.1:{sim.port}: 5 of 5", r.stdout)

    def test_http_preset_default_rate_and_its_overrides(self):
        csv, nums = self.numbers(3)
        tok = self.dir / "tok"
        tok.write_text("tw-token\n")
        os.chmod(tok, 0o600)
        with smsc.HttpSmsStub(shape="twilio", basic="AC42:tw-token") as stub:
            def conf(extra=""):
                p = self.dir / "tw.toml"
                p.write_text(f"""
[provider.tw]
type = "http"
preset = "twilio"
account = "AC42"
password_file = "{tok}"
url = "{stub.url}/2010-04-01/Accounts/{{{{account}}}}/Messages.json"
from = "+15005550006"
country = "GB"
{extra}
""")
                os.chmod(p, 0o600)
                return p

            def send(task, p, *extra):
                t0 = time.monotonic()
                r = self.sb(blast.BIN, "sms", "send", "--task", self.dir / task, "--template",
                            self.tpl, "--provider", "tw", "--provider-config", p,
                            "--recipients", csv, "--progress", "none", *extra)
                self.assertEqual(r.returncode, 0, blast.describe(r))
                return r, time.monotonic() - t0

            # Twilio's long-code limit, 1 a second: three messages take two seconds at least.
            r, took = send("a.db", conf())
            self.assertIn("sms send: provider tw: rate 1/s (preset twilio", r.stderr)
            self.assertGreaterEqual(took, 1.9, r.stderr)
            r, _ = send("b.db", conf('rate = "50/s"'))
            self.assertIn("rate 50/s (`rate` in [provider.tw])", r.stderr)
            r, _ = send("c.db", conf('rate = "50/s"'), "--rate", "20/s")
            self.assertIn("rate 20/s (--rate)", r.stderr)
            self.assertEqual(len(stub.requests()), 9)

    def test_the_task_kind_is_checked(self):
        csv, _ = self.numbers(3)
        task = self.dir / "sms.db"
        with smsc.Smsc(system_id="sb", password=PASSWORD) as sim:
            conf = self.smpp_conf(sim.port)
            r = self.sb(*self.args(task, conf, csv))
            self.assertEqual(r.returncode, 0, blast.describe(r))
            eml = self.dir / "m.eml"
            eml.write_bytes(b"From: a@example.test\nSubject: x\n\nx\n")
            r = blast.send(task, eml, "127.0.0.1:9")
            self.assertEqual(r.returncode, 2, blast.describe(r))
            self.assertIn("SMS mailing", r.stderr)
            mail = self.dir / "mail.db"
            ecsv = blast.write_csv(self.dir / "e.csv", ["email"], [["a@example.test"]])
            r = self.sb(blast.BIN, "import", "--task", mail, "--recipients", ecsv)
            self.assertEqual(r.returncode, 0, blast.describe(r))
            r = self.sb(*self.args(mail, conf))
            self.assertEqual(r.returncode, 2, blast.describe(r))
            self.assertIn("e-mail mailing", r.stderr)
            self.assertEqual(len(sim.accepted()), 3)


if __name__ == "__main__":
    blast.main("test_sms")
