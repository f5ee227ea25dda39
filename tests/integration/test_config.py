#!/usr/bin/python3
"""Issue 15: the config file. Precedence (file < [verb] < profile < command line), profiles
and per-user credentials, a flag given twice, errors naming file:line and key, `config show`
with its sources and redaction, the XDG and ./smtpblast.toml lookup, the SMTP command
timeouts as settings.

Run: /usr/bin/python3 tests/integration/test_config.py  (as root; see blast.py)
"""

import json
import os
import re
import time
import unittest

from support import blast, peers

TEMPLATE = b"From: Blast <sender@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"


def show_lines(out: str) -> dict:
    """`config show` output -> {key: (value, source)}."""
    got = {}
    for line in out.splitlines():
        m = re.match(r"^([a-z0-9-]+) = (.*?)\s+# (.*)$", line)
        if m:
            got[m.group(1)] = (m.group(2), m.group(3))
    return got


class SilentServer(blast.ThreadServer):
    """Accepts connections and never says anything (a greeting that never comes)."""

    def handle(self, c):
        self._stop.wait(30)


class ConfigTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)
        # No user config of whoever runs the tests: an empty XDG dir and HOME.
        self.home = self.dir / "home"
        self.home.mkdir()
        self.env = {"XDG_CONFIG_HOME": str(self.dir / "xdg"), "HOME": str(self.home)}

    def tearDown(self):
        self.wd.cleanup()

    def write(self, name, text, mode=0o600):
        p = self.dir / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        os.chmod(p, mode)
        return p

    def run_sb(self, *args, cwd=None, env=None, timeout=60):
        return peers.run([blast.BIN, *[str(a) for a in args]], timeout=timeout,
                         env={**self.env, **(env or {})}, cwd=cwd or self.dir)

    def show(self, *args, **kw):
        p = self.run_sb("config", "show", *args, **kw)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        return show_lines(p.stdout)

    def test_precedence_and_a_real_send(self):
        cfg = self.write("c.toml", (
            'connections = 3\n'           # line 1: top level
            'helo = "top.example.test"\n'
            'tls = "starttls"\n'
            '\n'
            '[send]\n'                    # line 5
            'connections = 4\n'
            'tls = "none"\n'
            'per-connection = 7\n'
            '\n'
            '[check]\n'                   # line 10
            'from = "probe@example.test"\n'))
        got = self.show("send", "--config", cfg, "--per-connection", "9")
        self.assertEqual(got["connections"], ("4", f"{cfg}:6 [send]"))
        self.assertEqual(got["helo"], ('"top.example.test"', f"{cfg}:2"))
        self.assertEqual(got["per-connection"], ("9", "flag"))
        self.assertEqual(got["workers"][1], "default")
        got = self.show("check", "--config", cfg)
        self.assertEqual(got["from"], ('"probe@example.test"', f"{cfg}:11 [check]"))
        self.assertEqual(got["tls"], ('"starttls"', f"{cfg}:3"))
        # doctor takes send's command line, so it reads [send] too.
        got = self.show("doctor", "--config", cfg)
        self.assertEqual(got["tls"], ('"none"', f"{cfg}:7 [send]"))
        self.assertNotIn("connections", got)  # accepted for send's sake, not doctor's setting
        # The relay itself comes from the file: a real mailing through the sink.
        csv = blast.write_csv(self.dir / "r.csv", ("email", "name"),
                              [(f"u{i}@example.test", f"N{i}") for i in range(20)])
        with blast.BlastSink() as sink:
            self.write("c.toml", cfg.read_text() + f'\n[profile.local]\nrelay = "{sink.hostport}"\n')
            p = self.run_sb("send", "--config", cfg, "--profile", "local", "--task",
                            self.dir / "t.db", "--template", self.tpl, "--recipients", csv)
            self.assertEqual(p.returncode, 0, blast.describe(p))
            self.assertEqual(sum(len(m.rcpts) for m in sink.records()), 20)

    def test_flag_given_twice_last_wins_repeatable_flags_add_up(self):
        got = self.show("send", "--connections", "3", "--connections", "5", "--suppress", "a",
                        "--suppress", "b", "--rate", "1/s", "--rate=2/s")
        self.assertEqual(got["connections"], ("5", "flag"))
        self.assertEqual(got["rate"], ('"2/s"', "flag"))
        self.assertEqual(got["suppress"], ('["a", "b"]', "flag"))
        # The command line's list replaces the file's.
        cfg = self.write("c.toml", '[send]\nsuppress = ["x", "y"]\n')
        self.assertEqual(self.show("--config", cfg)["suppress"][0], '["x", "y"]')
        self.assertEqual(self.show("--config", cfg, "--suppress", "z")["suppress"],
                         ('["z"]', "flag"))
        # A task's status: a repeated --task is no longer an error either.
        p = self.run_sb("status", "--task", self.dir / "no1.db", "--task", self.dir / "no2.db")
        self.assertEqual(p.returncode, 2)
        self.assertIn("no2.db", p.stderr)

    def test_profiles_and_per_user_credentials(self):
        for n in ("shared.pw", "alice.pw"):
            self.write(n, "secret\n")
        cfg = self.write("c.toml", (
            'default-profile = "relay1"\n'
            '[profile.relay1]\n'
            'relay = "smtp1.example.test:587"\n'
            '[profile.o365]\n'                                  # line 4
            'preset = "office365"\n'
            'user = "team@example.test"\n'
            f'password-file = "{self.dir}/shared.pw"\n'         # line 7
            'from = "team@example.test"\n'
            '[profile.o365.send]\n'
            'daily-limit = 500\n'                               # line 10
            '[profile.o365.users."alice@example.test"]\n'
            f'password-file = "{self.dir}/alice.pw"\n'          # line 12
            'from = "alice@example.test"\n'))
        got = self.show("--config", cfg)
        self.assertEqual(got["relay"], ('"smtp1.example.test:587"', f"{cfg}:3 [profile.relay1]"))
        got = self.show("--config", cfg, "--profile", "o365")
        self.assertEqual(got["password-file"][1], f"{cfg}:7 [profile.o365]")
        self.assertEqual(got["daily-limit"], ("500", f"{cfg}:10 [profile.o365.send]"))
        # The preset fills what nobody set: its relay and rate.
        self.assertEqual(got["relay"], ('"smtp.office365.com:587"', "preset office365"))
        self.assertEqual(got["rate"][1], "preset office365")
        got = self.show("--config", cfg, "--profile", "o365", "--user", "alice@example.test")
        self.assertEqual(got["password-file"],
                         (f'"{self.dir}/alice.pw"',
                          f'{cfg}:12 [profile.o365.users."alice@example.test"]'))
        self.assertEqual(got["from"][0], '"alice@example.test"')
        self.assertEqual(got["user"], ('"alice@example.test"', "flag"))
        # check has no --daily-limit: [profile.o365.send] does not reach it.
        got = self.show("check", "--config", cfg, "--profile", "o365")
        self.assertNotIn("daily-limit", got)
        p = self.run_sb("config", "show", "--config", cfg, "--profile", "nope")
        self.assertEqual(p.returncode, 2)
        self.assertIn(f"--profile nope: no [profile.nope] in {cfg} (profiles: o365, relay1)",
                      p.stderr)

    def test_errors_name_file_line_and_key(self):
        cases = [
            ('x = 1\n[send]\nconections = 3\n', "c.toml:3: unknown key 'conections' in [send]"),
            ('\n\nfrobnicate = 1\n', "c.toml:3: unknown key 'frobnicate': no verb has a flag"),
            ('[send]\nconnections = "many"\n', "c.toml:2 [send]: key 'connections': "
                                                "--connections: Value many not in range"),
            ('[send]\nconnections = true\n', "c.toml:2: key 'connections' in [send]: "
                                              "--connections takes a string or a number"),
            ('direct = "yes"\n', "c.toml:1: key 'direct': --direct is a flag: give true or false"),
            ('relay = ["a:1", "b:1"]\n', "c.toml:1: key 'relay': --relay takes one value"),
            ('[profile.p]\nrelay = "a:1"\n[profile.p.bogus]\nx = 1\n',
             "c.toml:3: unknown section [profile.p.bogus]"),
            ('a = \n', "c.toml:1: "),
            ('default-profile = "q"\n[profile.p]\n', "c.toml:1: key 'default-profile': no "
                                                      "[profile.q]"),
            ('password = "hunter2"\n', "c.toml:1: key 'password': secrets are not written in "
                                       "config files"),
        ]
        for text, want in cases:
            cfg = self.write("c.toml", text)
            p = self.run_sb("send", "--config", "c.toml", "--task", "t.db", "--template",
                            self.tpl, "--relay", "127.0.0.1:9")
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn(want, p.stderr, text)
            self.assertNotIn("hunter2", p.stderr + p.stdout)
            self.assertFalse((self.dir / "t.db").exists())
        # A file others can write could name a command to run: refused.
        cfg = self.write("c.toml", 'helo = "x.example.test"\n', mode=0o666)
        p = self.run_sb("config", "show", "--config", cfg)
        self.assertEqual(p.returncode, 2)
        self.assertIn("another user can write this config file", p.stderr)
        p = self.run_sb("config", "show", "--config", self.dir / "missing.toml")
        self.assertEqual(p.returncode, 2)
        self.assertIn("missing.toml: cannot read", p.stderr)

    def test_json_from_the_file_answers_errors_in_json(self):
        cfg = self.write("c.toml", "[status]\njson = true\n")
        p = self.run_sb("status", "--config", cfg, "--task", self.dir / "missing.db")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        j = json.loads(p.stdout)
        self.assertEqual((j["ok"], j["exit_code"]), (False, 2))
        self.assertIn("missing.db", j["error"])

    def test_show_redacts_secrets(self):
        cfg = self.write("c.toml", (
            '[send]\n'
            'oauth-token-cmd = "get-token --client-secret s3cr3t"\n'
            'pop-before-smtp = "pop3s://bob:pa55@pop.example.test"\n'))
        p = self.run_sb("config", "show", "--config", cfg, "--password", "hunter2")
        self.assertEqual(p.returncode, 0, blast.describe(p))
        got = show_lines(p.stdout)
        self.assertEqual(got["oauth-token-cmd"][0], '"get-token <redacted>"')
        self.assertEqual(got["pop-before-smtp"][0], '"pop3s://bob:<redacted>@pop.example.test"')
        for secret in ("s3cr3t", "pa55", "hunter2"):
            self.assertNotIn(secret, p.stdout + p.stderr)
        self.assertNotIn("password", got)

    def test_lookup_xdg_then_current_directory(self):
        self.write("xdg/smtpblast/config.toml", 'helo = "user.example.test"\nconnections = 2\n')
        got = self.show()
        self.assertEqual(got["helo"], ('"user.example.test"',
                                       f"{self.dir}/xdg/smtpblast/config.toml:1"))
        # ./smtpblast.toml is read after it, and wins.
        self.write("smtpblast.toml", 'helo = "project.example.test"\n')
        got = self.show()
        self.assertEqual(got["helo"], ('"project.example.test"', "smtpblast.toml:1"))
        self.assertEqual(got["connections"][0], "2")
        # --config replaces both.
        cfg = self.write("only.toml", 'per-connection = 5\n')
        got = self.show("--config", cfg)
        self.assertEqual(got["helo"][1], "default (unset)")
        # Without XDG_CONFIG_HOME: ~/.config.
        (self.dir / "smtpblast.toml").unlink()
        self.write("home/.config/smtpblast/config.toml", 'helo = "home.example.test"\n')
        p = peers.run([blast.BIN, "config", "show"], timeout=30, cwd=self.dir,
                      env={"HOME": str(self.home), "XDG_CONFIG_HOME": ""})
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(show_lines(p.stdout)["helo"][0], '"home.example.test"')

    def test_help_mentions_the_config_file(self):
        p = self.run_sb("--help")
        self.assertEqual(p.returncode, 0)
        self.assertIn("--config", p.stdout)
        self.assertIn("config show", p.stdout)
        p = self.run_sb("send", "--help")
        self.assertIn("--greeting-timeout", p.stdout)

    def test_command_timeouts_are_settings(self):
        p = self.run_sb("check", "--relay", "127.0.0.1:9", "--tls", "none",
                        "--dot-timeout", "soon")
        self.assertEqual(p.returncode, 2)
        self.assertIn("--dot-timeout: 'soon' is not a duration", p.stderr)
        cfg = self.write("c.toml", '[check]\ngreeting-timeout = "1s"\ntls = "none"\n')
        with SilentServer() as srv:
            t0 = time.monotonic()
            p = self.run_sb("check", "--config", cfg, "--relay", srv.hostport)
            elapsed = time.monotonic() - t0
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertLess(elapsed, 15, blast.describe(p))


if __name__ == "__main__":
    blast.main("test_config")
