#!/usr/bin/python3
"""`smtpblast report`: a real task (sent through `smtpblast sink` with faults, with an
accounting log) made into HTML, which headless Chromium then renders: a PNG screenshot, no
console errors, the SVG charts in the DOM, and numbers that match `smtpblast status --json`
and the accounting log. Bad input: exit 2 with the problem named.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: fds 3 and
4, NUL-separated JSON), standard library only; it is stopped by its PID.

Run: tools/itest.sh test_report  (as root; see tests/support/__init__.py)
"""

import base64
import collections
import csv
import fcntl
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
import unittest
import zlib

from support import blast, peers, procs, smsc

N = 600

TEMPLATE = (b"From: Blast <sender@example.test>\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}},\n")


def find_chromium():
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def chromium_or_install():
    """The browser's path; installs Debian's chromium when missing and we are root (CI runs
    tools/bootstrap.sh, which installs it). None only when it cannot be installed."""
    path = find_chromium()
    if path or os.geteuid() != 0 or not shutil.which("apt-get"):
        return path
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900,
                   check=False)
    return find_chromium()


class Browser:
    """Headless Chromium with the DevTools protocol on a pipe."""

    def __init__(self, exe, workdir):
        self.exe = exe
        self.workdir = workdir
        self.proc = None
        self._next = 0
        self._buf = b""
        self.events = []  # (method, params) of every event seen

    def start(self):
        # Helpers orphaned when the browser exits become our children, so they are reaped
        # here rather than left as zombies.
        procs.become_subreaper()
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def fds():
            # The browser reads commands on fd 3 and writes replies on fd 4. dup2 leaves the
            # copies inheritable; close_fds=False keeps them (Python's own fds are
            # close-on-exec), since subprocess would close them after this runs otherwise.
            # Copies above 4 first: a pipe end may itself be fd 3 or 4.
            r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [self.exe, "--headless", "--disable-gpu", "--no-sandbox",
                "--remote-debugging-pipe", "--no-first-run", "--no-default-browser-check",
                "--disable-background-networking", "--disable-extensions",
                f"--user-data-dir={self.workdir / 'chromium-profile'}", "about:blank"]
        with open(self.workdir / "chromium.log", "wb") as log:
            self.proc = subprocess.Popen(args, preexec_fn=fds, close_fds=False,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=log, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        return self

    def stop(self):
        if self.proc is None:
            return
        try:
            self.call("Browser.close", timeout=5)
        except Exception:
            pass
        pid = self.proc.pid
        helpers = set(self._helpers())
        procs.stop_pid(pid, popen=self.proc)
        # Its helpers (zygote, renderer) are in the session we started it in: that group's id
        # is the browser's PID.
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        # A helper that left the session (crashpad) still names our profile: stop those too.
        helpers.update(self._helpers())
        for p in helpers:
            procs.stop_pid(p, timeout=2)
        self._reap(helpers)
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self.proc = None

    @staticmethod
    def _reap(pids, timeout=3.0):
        """Waits for the helpers that became our children (subreaper) to be collected."""
        left = set(pids)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for p in list(left):
                try:
                    if os.waitpid(p, os.WNOHANG)[0] == p:
                        left.discard(p)
                except ChildProcessError:
                    left.discard(p)  # not ours (or already collected)
            time.sleep(0.02)

    def _helpers(self):
        """The browser's helpers: processes in the session it leads, or naming our profile
        (one that left the session)."""
        mark = str(self.workdir / "chromium-profile").encode()
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.proc.pid:
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    session = int(f.read().rsplit(b")", 1)[1].split()[3])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    cmdline = f.read()
            except (OSError, IndexError, ValueError):
                continue
            if session == self.proc.pid or mark in cmdline:
                pids.append(int(entry))
        return pids

    def _read_message(self, deadline):
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from Chromium")
            r, _, _ = select.select([self._from_child], [], [], left)
            if not r:
                continue
            chunk = os.read(self._from_child, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method, params=None, session=None, timeout=30):
        self._next += 1
        mid = self._next
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})
            if "method" in m:
                self.events.append((m["method"], m.get("params", {})))

    def wait_event(self, method, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            for name, params in self.events:
                if name == method:
                    return params
            m = self._read_message(deadline)
            if "method" in m:
                self.events.append((m["method"], m.get("params", {})))

    def pump(self, seconds):
        """Collects events for a while (late console messages)."""
        deadline = time.monotonic() + seconds
        try:
            while True:
                m = self._read_message(deadline)
                if "method" in m:
                    self.events.append((m["method"], m.get("params", {})))
        except TimeoutError:
            pass


def render(exe, workdir, html_path, png_path):
    """Opens the page; returns (dom facts, errors, png bytes)."""
    b = Browser(exe, workdir).start()
    try:
        targets = b.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        s = b.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})[
            "sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            b.call(f"{domain}.enable", session=s)
        b.call("Emulation.setDeviceMetricsOverride",
               {"width": 1200, "height": 2000, "deviceScaleFactor": 1, "mobile": False},
               session=s)
        b.events.clear()
        b.call("Page.navigate", {"url": html_path.resolve().as_uri()}, session=s)
        b.wait_event("Page.loadEventFired")
        b.pump(0.5)
        expr = r"""JSON.stringify({
          svgs: document.querySelectorAll('svg').length,
          charts: Object.fromEntries([...document.querySelectorAll('svg.chart')].map(e =>
            [e.dataset.chart, {rects: e.querySelectorAll('rect').length,
                               paths: e.querySelectorAll('path').length,
                               circles: e.querySelectorAll('circle').length,
                               nodata: e.querySelector('text.nodata') !== null,
                               width: e.getBoundingClientRect().width,
                               bars: Object.fromEntries([...e.querySelectorAll('rect[data-label]')]
                                 .map(r => [r.dataset.label, Number(r.dataset.value)])),
                               stacked: [...e.querySelectorAll('g.series')].map(g =>
                                 [g.dataset.series, [...g.querySelectorAll('rect')]
                                   .reduce((a, r) => a + Number(r.dataset.value), 0)])}])),
          summary: Object.fromEntries([...document.querySelectorAll('#summary td[data-key]')]
            .map(td => [td.dataset.key, Number(td.textContent)])),
          destinations: [...document.querySelectorAll('#destinations tr')].slice(1).map(tr =>
            [...tr.cells].map(c => c.textContent)),
          settings: Object.fromEntries([...document.querySelectorAll('#settings td[data-key]')]
            .map(td => [td.dataset.key, td.textContent])),
          resources: performance.getEntriesByType('resource').length,
          scripts: document.scripts.length,
          injected: document.querySelectorAll('b, i:not(tr.other i)').length,
          title: document.title,
          height: document.documentElement.scrollHeight,
        })"""
        r = b.call("Runtime.evaluate", {"expression": expr, "returnByValue": True}, session=s)
        if "exceptionDetails" in r:
            raise AssertionError(f"evaluating the DOM: {r['exceptionDetails']}")
        facts = json.loads(r["result"]["value"])
        shot = b.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True},
                      session=s)
        png = base64.b64decode(shot["data"])
        png_path.write_bytes(png)
        errors = []
        for name, p in b.events:
            if name == "Runtime.exceptionThrown":
                errors.append(f"exception: {p.get('exceptionDetails')}")
            elif name == "Runtime.consoleAPICalled" and p.get("type") in ("error", "warning",
                                                                          "assert"):
                errors.append(f"console.{p.get('type')}: {p.get('args')}")
            elif name == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                errors.append(f"log {p['entry'].get('level')}: {p['entry'].get('text')}")
        return facts, errors, png
    finally:
        b.stop()


def png_facts(png):
    """(width, height, distinct byte values in the image data): a page that rendered is large
    and not one colour."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n", png[:16]
    pos, idat, size = 8, b"", None
    while pos < len(png):
        n, kind = struct.unpack(">I4s", png[pos:pos + 8])
        body = png[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    return size[0], size[1], len(set(raw[::97]))


class ReportTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.wd = blast.Workdir()
        d = cls.dir = cls.wd.path
        (d / "m.eml").write_bytes(TEMPLATE)
        cls.csv = blast.write_csv(d / "r.csv", ("email", "name"),
                                  [(f"u{i:04d}@d{i % 7}.example.test", f"N{i}")
                                   for i in range(N)])
        # Hostile file names: they are shown on the page, which must show them as text.
        cls.task = d / 't<b>"&x.db'
        cls.acct = d / "attempts<i>'.csv"
        # Faults give failed (550) and deferred (451) recipients; the rate spreads the run
        # over a few seconds, so the time charts have several buckets.
        with blast.BlastSink("--reject-rcpt", "0.1", "--defer-rcpt", "0.1", "--seed", "7",
                             record=False) as sink:
            cls.send = blast.send(cls.task, d / "m.eml", sink.hostport, cls.csv,
                                  "--max-attempts", "2", "--retry-delay", "100ms",
                                  "--rate", "200/s", "--accounting", cls.acct, timeout=120)
        cls.status = blast.status(cls.task)
        cls.chromium = chromium_or_install()

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()

    def report(self, out, *extra):
        return procs.run([blast.BIN, "report", "--task", str(self.task), "--out", str(out),
                          *map(str, extra)], timeout=60)

    def test_made_a_task_with_faults(self):
        self.assertEqual(self.send.returncode, 1, blast.describe(self.send))
        st = self.status
        self.assertEqual(st["total"], N)
        self.assertGreater(st["failed"], 0, st)
        self.assertGreater(st["deferred"], 0, st)
        self.assertGreater(st["sent"], 0, st)

    def check_page(self, html, png_path):
        text = html.read_text(encoding="utf-8")
        # Self-contained: no script, no external reference of any kind.
        self.assertNotIn("<script", text)
        for ref in ("src=", "href=", "@import", "url("):
            self.assertNotIn(ref, text)
        if self.chromium is None:
            self.skipTest("chromium is not installed and could not be installed (apt-get "
                          "install chromium, or tools/bootstrap.sh)")
        facts, errors, png = render(self.chromium, self.dir, html, png_path)
        self.assertEqual(errors, [], "console errors while rendering the report")
        self.assertEqual(facts["resources"], 0, facts)
        self.assertEqual(facts["scripts"], 0, facts)
        w, h, colours = png_facts(png)
        self.assertGreater(w, 1000)  # 1200 less a scroll bar
        self.assertGreater(h, 1500, "the page is longer than one screen")
        self.assertGreater(colours, 8, "the screenshot is (nearly) one colour")
        self.assertGreater(len(png), 30000)
        charts = facts["charts"]
        self.assertEqual(facts["svgs"], 6, facts)
        self.assertEqual(set(charts), {"rate", "outcomes", "codes", "classes", "throttle",
                                       "quota"})
        for name in ("rate", "outcomes", "codes", "classes"):
            self.assertFalse(charts[name]["nodata"], (name, charts[name]))
            self.assertGreater(charts[name]["width"], 500, (name, charts[name]))
        self.assertGreaterEqual(charts["rate"]["paths"], 2, charts["rate"])
        self.assertGreater(charts["outcomes"]["rects"], 3, charts["outcomes"])
        # The summary is `status --json`'s counts.
        for key in ("total", "unsent", "sent", "deferred", "failed", "suppressed", "in_flight",
                    "bounced", "complained"):
            self.assertEqual(facts["summary"][key], self.status[key], key)
        # Every domain of the list, with no "other" row (7 < the top 20).
        self.assertEqual(len(facts["destinations"]), 7, facts["destinations"])
        self.assertEqual(facts["settings"]["sender"], "sender@example.test")
        # The file names arrived as text, not as elements.
        self.assertEqual(facts["settings"]["task"], str(self.task))
        self.assertEqual(facts["injected"], 0, facts)
        self.assertIn(str(self.task), facts["title"])
        self.assertIn("127.0.0.1", facts["settings"]["relay"])
        return facts

    def test_report_with_accounting_log_in_chromium(self):
        html = self.dir / "with-log.html"
        p = self.report(html, "--accounting", self.acct)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        facts = self.check_page(html, self.dir / "with-log.png")
        self.assertIn(str(self.acct), facts["settings"]["source"])
        with open(self.acct, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        codes = collections.Counter(r["code"] for r in rows)
        self.assertEqual(facts["charts"]["codes"]["bars"], {k: v for k, v in codes.items()})
        by_status = collections.Counter(r["status"] for r in rows)
        stacked = dict(facts["charts"]["outcomes"]["stacked"])
        for s in ("sent", "deferred", "failed"):
            self.assertEqual(stacked[s], by_status[s], (s, stacked, by_status))
        # Sent attempts are sent recipients: the log and the task agree.
        self.assertEqual(by_status["sent"], self.status["sent"])
        # Per domain: the table adds up to the log's attempts.
        total = sum(int(c.replace(",", "")) for r in facts["destinations"] for c in r[1:])
        self.assertEqual(total, len(rows))

    def test_report_from_task_only_in_chromium(self):
        html = self.dir / "task-only.html"
        p = self.report(html)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        facts = self.check_page(html, self.dir / "task-only.png")
        self.assertIn("the task", facts["settings"]["source"])
        codes = {("none" if k == "0" else k): v for k, v in self.status["by_code"].items()}
        self.assertEqual(facts["charts"]["codes"]["bars"], codes)
        stacked = dict(facts["charts"]["outcomes"]["stacked"])
        for s in ("sent", "deferred", "failed"):
            self.assertEqual(stacked[s], self.status[s], (s, stacked))
        sent = sum(int(r[1].replace(",", "")) for r in facts["destinations"])
        self.assertEqual(sent, self.status["sent"])

    def test_bad_input_exit_2(self):
        cases = [
            (["--task", self.dir / "missing.db", "--out", self.dir / "x.html"], "missing.db"),
            (["--task", self.task, "--accounting", self.dir / "nope.csv", "--out",
              self.dir / "x.html"], "nope.csv"),
            (["--task", self.task, "--accounting", self.dir / "m.eml", "--out",
              self.dir / "x.html"], ".csv or .jsonl"),
            (["--task", self.task, "--out", self.dir / "no-such-dir" / "x.html"], "no-such-dir"),
            (["--task", self.dir / "m.eml", "--out", self.dir / "x.html"], "m.eml"),
        ]
        for args, named in cases:
            p = procs.run([blast.BIN, "report", *map(str, args)], timeout=30)
            self.assertEqual(p.returncode, 2, blast.describe(p))
            self.assertIn(named, p.stderr, blast.describe(p))
            self.assertFalse((self.dir / "x.html").exists())


@unittest.skipUnless(smsc.node_available(), "node or npm smpp missing (tools/bootstrap.sh)")
class SmsReportTest(unittest.TestCase):
    """An SMS task (sent through the SMSC simulator, its delivery receipts taken during the
    run and by `sms receipts` after it): the page counts and draws delivered, undeliverable
    and expired, and its destinations are the numbers' country codes under `phone`."""

    @classmethod
    def setUpClass(cls):
        cls.wd = blast.Workdir()
        d = cls.dir = cls.wd.path
        pw = d / "pw"
        pw.write_text("pw\n")
        os.chmod(pw, 0o600)
        cls.env = {"XDG_CONFIG_HOME": str(d / "xdg"), "HOME": str(d)}
        (d / "msg.txt").write_text("Hi {{name}}\n")
        rows = [[f"N{i}", f"074001{i:05d}"] for i in range(12)] + [["De", "+4915123456789"]]
        csv = blast.write_csv(d / "l.csv", ["name", "phone"], rows)
        cls.task = d / "sms.db"
        with smsc.Smsc(system_id="sb", password="pw", receipts=True,
                       receipt_stat={"447400100003": "UNDELIV", "447400100004": "EXPIRED"},
                       respond_delay_ms=10) as sim:
            conf = d / "p.toml"
            conf.write_text(f"""
[provider.sim]
type = "smpp"
host = "127.0.0.1"
port = {sim.port}
system_id = "sb"
password_file = "{pw}"
from = "Shop"
country = "GB"
window = 1
""")
            os.chmod(conf, 0o600)
            cls.send = peers.run([str(a) for a in (
                blast.BIN, "sms", "send", "--task", cls.task, "--template", d / "msg.txt",
                "--recipients", csv, "--provider", "sim", "--provider-config", conf,
                "--progress", "none")], timeout=60, env=cls.env)
            # Receipts that had not come when the run unbound wait for the next bind.
            cls.receipts = peers.run([str(a) for a in (
                blast.BIN, "sms", "receipts", "--task", cls.task, "--provider", "sim",
                "--provider-config", conf, "--for", "1s")], timeout=60, env=cls.env)
        cls.status = blast.status(cls.task)
        cls.chromium = chromium_or_install()

    @classmethod
    def tearDownClass(cls):
        cls.wd.cleanup()

    def test_receipt_statuses_and_phone_destinations(self):
        self.assertEqual(self.send.returncode, 0, blast.describe(self.send))
        self.assertEqual(self.receipts.returncode, 0, blast.describe(self.receipts))
        st = self.status
        self.assertEqual((st["delivered"], st["undeliverable"], st["expired"]), (11, 1, 1), st)
        html = self.dir / "sms.html"
        p = procs.run([blast.BIN, "report", "--task", str(self.task), "--out", str(html)],
                      timeout=60)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        text = html.read_text(encoding="utf-8")
        self.assertIn("<th>phone</th>", text)
        self.assertNotIn("<th>domain</th>", text)
        if self.chromium is None:
            self.skipTest("chromium is not installed and could not be installed")
        facts, errors, _ = render(self.chromium, self.dir, html, self.dir / "sms.png")
        self.assertEqual(errors, [], "console errors while rendering the report")
        for key in ("total", "sent", "delivered", "undeliverable", "expired"):
            self.assertEqual(facts["summary"][key], st.get(key, 0), key)
        stacked = dict(facts["charts"]["outcomes"]["stacked"])
        self.assertEqual((stacked["delivered"], stacked["undeliverable"], stacked["expired"]),
                         (11, 1, 1), stacked)
        # The destinations: the numbers' country calling codes, every SMS counted as sent.
        dest = {r[0]: r[1:] for r in facts["destinations"]}
        self.assertEqual(dest, {"+44": ["12", "0", "0"], "+49": ["1", "0", "0"]}, dest)


if __name__ == "__main__":
    blast.main("test_report")
