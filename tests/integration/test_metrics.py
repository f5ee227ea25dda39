"""--metrics against the real thing: Debian's Prometheus server scrapes smtpblast every second
during a paced send into the built-in sink; the counters it stored must match `status` at the
end, and `promtool check metrics` must accept the exposition."""

import json
import signal
import shutil
import socket
import subprocess
import time
import unittest
import urllib.parse
import urllib.request

from support import blast, peers, tls_peers

TEMPLATE = "From: News <news@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"
N = 60


def http_get(port, path="/metrics", method="GET", timeout=5.0):
    """(status, headers, body) of one request to 127.0.0.1:port."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def prom_query(port, query):
    """The vector Prometheus answers for an instant query: {labels-tuple: float}."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as r:
        doc = json.loads(r.read())
    assert doc["status"] == "success", doc
    out = {}
    for s in doc["data"]["result"]:
        labels = tuple(sorted((k, v) for k, v in s["metric"].items()
                              if k not in ("__name__", "job", "instance")))
        out[labels] = float(s["value"][1])
    return out


def only(vector):
    """The value of a one-series query answer."""
    assert len(vector) == 1, vector
    return next(iter(vector.values()))


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Prometheus(peers.Process):
    """A private Prometheus: its own config, TSDB and port in `d`, scraping `target` every 1 s."""

    def __init__(self, d, target):
        self.port = peers.free_port()
        cfg = d / "prometheus.yml"
        cfg.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                       "scrape_configs:\n  - job_name: smtpblast\n"
                       f"    static_configs:\n      - targets: ['{target}']\n")
        super().__init__(["prometheus", f"--config.file={cfg}",
                          f"--storage.tsdb.path={d / 'tsdb'}",
                          f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                         timeout=120, name="prometheus")

    def start(self):
        super().start()
        peers.wait_port("127.0.0.1", self.port, timeout=15)
        # Ready means the TSDB is open; targets reach the scrape loop only after discovery's
        # first update (about 5 s): wait until the target has been tried once, so every second
        # of the run is scraped.
        wait_for(lambda: http_get(self.port, "/-/ready")[0] == 200, 15, "prometheus ready")
        wait_for(self._scraping, 20, "prometheus to scrape its target")
        return self

    def _scraping(self):
        doc = json.loads(http_get(self.port, "/api/v1/targets")[2])
        return any(not t["lastScrape"].startswith("0001")
                   for t in doc["data"]["activeTargets"])


@unittest.skipUnless(shutil.which("prometheus") and shutil.which("promtool"),
                     "prometheus and promtool (Debian package prometheus) not installed")
class MetricsTest(unittest.TestCase):
    def test_prometheus_scrapes_a_run_and_its_counters_match_status(self):
        with blast.Workdir() as d:
            tpl = d / "m.eml"
            tpl.write_text(TEMPLATE)
            csv = blast.write_csv(d / "l.csv", ["email", "name"],
                                  [[f"r{i}@example.test", f"N{i}"] for i in range(N)])
            task = d / "t.db"
            mport = peers.free_port()
            with blast.BlastSink("--reject-rcpt", "0.1", "--defer-rcpt", "0.1", "--seed", "3",
                                 record=False) as sink, Prometheus(d, f"127.0.0.1:{mport}") as prom:
                # 20/s: three seconds of sending, several scrapes; deferred stay deferred.
                p = peers.Process([blast.BIN, "send", "--tls", "none", "--task", task,
                                   "--template", tpl, "--recipients", csv,
                                   "--relay", sink.hostport, "--connections", "2",
                                   "--rate", "20/s", "--max-attempts", "1",
                                   "--metrics", f"127.0.0.1:{mport}", "--metrics-linger", "5s"],
                                  timeout=60, name="smtpblast")
                p.start()
                peers.wait_port("127.0.0.1", mport, timeout=10)
                # The endpoint itself: 404 elsewhere, 405 for other methods, 0.0.4 text.
                self.assertEqual(http_get(mport, "/")[0], 404)
                self.assertEqual(http_get(mport, "/metrics", method="POST")[0], 405)
                code, headers, text = http_get(mport)
                self.assertEqual(code, 200)
                self.assertIn("version=0.0.4", headers["Content-Type"])
                # promtool's linter: names, HELP/TYPE, units, histogram series.
                chk = subprocess.run(["promtool", "check", "metrics"], input=text, text=True,
                                     capture_output=True, timeout=30)
                self.assertEqual(chk.returncode, 0, chk.stdout + chk.stderr + "\n" + text)
                self.assertIn('smtpblast_delivery_duration_seconds_bucket{le="+Inf"}', text)

                # The run ends; while smtpblast lingers, Prometheus takes a final scrape.
                wait_for(lambda: "\nsmtpblast_run_finished 1\n" in http_get(mport)[2], 40,
                         "the run to end")
                wait_for(lambda: prom_query(prom.port, "smtpblast_run_finished") == {(): 1.0},
                         10, "a scrape of the final figures")
                got = prom_query(prom.port, "smtpblast_recipients_total")
                replies = prom_query(prom.port, "smtpblast_replies_total")
                remaining = prom_query(prom.port, "smtpblast_recipients_remaining")
                granted = prom_query(prom.port, "smtpblast_throttle_granted_total")
                waits = prom_query(prom.port, 'smtpblast_throttle_waits_total{limit="rate"}')
                # Scraped during the run, not only at its end: several samples, rising.
                samples = prom_query(prom.port, 'count_over_time(smtpblast_recipients_total'
                                                '{outcome="sent"}[1m])')
                lowest = prom_query(prom.port, 'min_over_time(smtpblast_recipients_total'
                                               '{outcome="sent"}[1m])')
                final_text = http_get(mport)[2]
                rc = p.wait()
            self.assertIn(rc, (0, 1), blast.describe(p))  # 1: some recipients failed
            st = blast.status(task)

        def outcome(name):
            return got[(("outcome", name),)]

        self.assertEqual(outcome("sent"), st["sent"], (got, st))
        self.assertEqual(outcome("failed"), st["failed"], (got, st))
        self.assertEqual(outcome("deferred"), st["deferred"], (got, st))
        self.assertEqual(outcome("suppressed"), 0)
        self.assertEqual(st["sent"] + st["failed"] + st["deferred"], N, st)
        self.assertGreater(st["failed"], 0, st)  # the sink's faults reached the counters
        self.assertGreater(st["deferred"], 0, st)
        self.assertEqual(replies[(("class", "2xx"),)], st["sent"], replies)
        self.assertEqual(replies[(("class", "5xx"),)], st["failed"], replies)
        self.assertEqual(replies[(("class", "4xx"),)], st["deferred"], replies)
        self.assertEqual(remaining, {(): float(st["deferred"] + st["unsent"])})
        self.assertEqual(granted, {(): float(N)})
        self.assertGreater(only(waits), 0)  # --rate held messages back
        self.assertGreaterEqual(only(samples), 3, samples)
        self.assertLess(only(lowest), st["sent"], lowest)
        self.assertIn("smtpblast_messages_in_flight 0\n", final_text)
        self.assertIn("smtpblast_connections_open 0\n", final_text)

    def test_direct_counts_destinations_under_the_label_cap_and_dns_lookups(self):
        zone = "local=/test/\n" + "".join(
            f"mx-host={x}.test,mx.{x}.test,10\nhost-record=mx.{x}.test,127.0.0.1\n"
            for x in "abc")
        with blast.Workdir() as d, peers.Dnsmasq(zone) as dns, \
                blast.BlastSink("--reject-rcpt", "0.2", "--seed", "5", record=False) as sink:
            tpl = d / "m.eml"
            tpl.write_text(TEMPLATE)
            rows = [[f"u{i}@{x}.test", "N"] for i in range(10) for x in "abc"]
            rows.append(["nobody@missing.test", "N"])  # NXDOMAIN: failed, no destination
            csv = blast.write_csv(d / "l.csv", ["email", "name"], rows)
            task = d / "t.db"
            mport = peers.free_port()
            p = peers.Process([blast.BIN, "send", "--task", task, "--template", tpl,
                               "--recipients", csv, "--direct", "--helo", "sender.example.test",
                               "--dns-server", dns.address, "--mx-port", sink.port,
                               "--tls", "none", "--max-attempts", "1", "--workers", "1",
                               "--metrics", f"127.0.0.1:{mport}", "--metrics-destinations", "2",
                               "--metrics-linger", "20s"], timeout=60, name="smtpblast")
            p.start()
            try:
                peers.wait_port("127.0.0.1", mport, timeout=10)
                text = wait_for(lambda: (lambda t: "\nsmtpblast_run_finished 1\n" in t and t)(
                    http_get(mport)[2]), 40, "the run to end")
            finally:
                p.stop()
            st = blast.status(task)
        series = {}
        for line in text.splitlines():
            if line.startswith("smtpblast_destination_recipients_total{"):
                labels, value = line[len("smtpblast_destination_recipients_total"):].rsplit(" ", 1)
                series[labels] = int(value)
        dests = {lab.split('destination="')[1].split('"')[0] for lab in series}
        self.assertEqual(len(dests), 3, series)  # two of their own, then "other"
        self.assertIn("other", dests)
        self.assertTrue(dests - {"other"} <= {"mx.a.test", "mx.b.test", "mx.c.test"}, dests)

        def total(outcome):
            return sum(v for lab, v in series.items() if f'outcome="{outcome}"' in lab)

        self.assertEqual(total("sent"), st["sent"], (series, st))
        self.assertEqual(total("failed") + 1, st["failed"], (series, st))  # + missing.test
        self.assertEqual(st["sent"] + st["failed"], 31, st)
        self.assertIn('smtpblast_dns_lookups_total{result="permanent"} 1\n', text)
        ok = int(text.split('smtpblast_dns_lookups_total{result="ok"} ')[1].split("\n")[0])
        self.assertGreaterEqual(ok, 3)
        self.assertIn(f"smtpblast_dns_lookup_duration_seconds_count {ok + 1}\n", text)

    def test_tls_handshakes_are_counted(self):
        with blast.Workdir() as d:
            certs = tls_peers.make_certs(d / "certs")
            ctx = tls_peers.tls_server_context(certs["server"], certs["server_key"])
            tpl = d / "m.eml"
            tpl.write_text(TEMPLATE)
            csv = blast.write_csv(d / "l.csv", ["email", "name"],
                                  [[f"r{i}@example.test", "N"] for i in range(4)])
            mport = peers.free_port()
            with tls_peers.ScriptedSmtp(ctx=ctx) as srv:
                # One message per connection: four STARTTLS handshakes, one after another.
                p = peers.Process([blast.BIN, "send", "--task", d / "t.db", "--template", tpl,
                                   "--recipients", csv, "--relay", srv.hostport,
                                   "--tls", "starttls", "--ca-file", certs["ca"],
                                   "--connections", "1", "--per-connection", "1",
                                   "--metrics", f"127.0.0.1:{mport}", "--metrics-linger", "20s"],
                                  timeout=60, name="smtpblast")
                p.start()
                try:
                    peers.wait_port("127.0.0.1", mport, timeout=10)
                    text = wait_for(lambda: (lambda t: "\nsmtpblast_run_finished 1\n" in t and t)(
                        http_get(mport)[2]), 40, "the run to end")
                finally:
                    p.stop()
            self.assertEqual(len(srv.messages), 4)

        def value(series):
            return int(text.split("\n" + series + " ")[1].split("\n")[0])

        full = value('smtpblast_tls_handshakes_total{kind="full"}')
        resumed = value('smtpblast_tls_handshakes_total{kind="resumed"}')
        self.assertEqual(full + resumed, 4, text)
        self.assertGreaterEqual(full, 1, text)  # the first connection has nothing to resume
        self.assertEqual(value("smtpblast_connections_opened_total"), 4, text)
        self.assertIn('smtpblast_recipients_total{outcome="sent"} 4\n', text)

    def test_sigterm_still_stops_the_run_cleanly(self):
        # The server's thread must not take the run's signals (send waits for them on a
        # thread of its own): SIGTERM stops new messages, the run ends with exit 4.
        with blast.Workdir() as d, blast.BlastSink(record=False) as sink:
            tpl = d / "m.eml"
            tpl.write_text(TEMPLATE)
            csv = blast.write_csv(d / "l.csv", ["email", "name"],
                                  [[f"r{i}@example.test", "N"] for i in range(200)])
            task = d / "t.db"
            mport = peers.free_port()
            for _ in range(3):  # several tries: the kernel picks the thread at random
                p = peers.Process([blast.BIN, "send", "--tls", "none", "--task", task,
                                   "--template", tpl, "--recipients", csv,
                                   "--relay", sink.hostport, "--rate", "20/s",
                                   "--metrics", f"127.0.0.1:{mport}"], timeout=60,
                                  name="smtpblast")
                p.start()
                peers.wait_port("127.0.0.1", mport, timeout=10)
                wait_for(lambda: 'outcome="sent"} 0' not in http_get(mport)[2], 10, "a sent")
                p.proc.send_signal(signal.SIGTERM)
                rc = p.wait()
                self.assertEqual(rc, 4, blast.describe(p))
                self.assertIn("stopping", p.stderr)
            st = blast.status(task)
            self.assertEqual(st["sent"] + st["unsent"], 200, st)

    def test_unbindable_address_is_exit_2_before_sending(self):
        with blast.Workdir() as d, blast.BlastSink(record=False) as sink:
            tpl = d / "m.eml"
            tpl.write_text(TEMPLATE)
            csv = blast.write_csv(d / "l.csv", ["email", "name"], [["a@example.test", "A"]])
            busy = socket.socket()
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            try:
                taken = f"127.0.0.1:{busy.getsockname()[1]}"
                for addr, says in ((taken, taken), ("localhost:9464", "localhost"),
                                   ("127.0.0.1", "127.0.0.1")):
                    task = d / f"t{abs(hash(addr))}.db"
                    p = blast.send(task, tpl, sink.hostport, csv, "--metrics", addr)
                    self.assertEqual(p.returncode, 2, blast.describe(p))
                    self.assertIn("--metrics", p.stderr)
                    self.assertIn(says, p.stderr)
            finally:
                busy.close()
        self.assertEqual(sink.counters["messages"], 0)


if __name__ == "__main__":
    blast.main("test_metrics")
