"""Several nodes on one PostgreSQL mailing share its limits (issue 13): --rate measured at the
receiver across all nodes together, and the daily limit across nodes and across runs.

One private PostgreSQL server for the module (support.postgres); the nodes are `smtpblast send`
processes on this machine, all into one `smtpblast sink` that logs its counters every second.
The issue's own run (3 nodes at 60/min for 3 minutes, 180 +- 2) is test_soak_three_minutes:
it runs only with SMTPBLAST_SOAK=1 (ctest label `soak`); CI runs 120/min for about 35 s.
"""

import json
import math
import os
import time
import unittest

from support import blast, peers
from support.postgres import PostgresServer, available

TEMPLATE = "From: News <news@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"
PG: PostgresServer | None = None


def setUpModule():
    global PG
    why = available()
    if why:
        raise unittest.SkipTest(why)
    PG = PostgresServer()
    PG.start()
    # Every smtpblast started by this module finds the test role's password here (libpq's own
    # source), never in argv.
    os.environ.update(PG.env())


def tearDownModule():
    if PG is not None:
        PG.stop()


def inputs(d, n):
    tpl = d / "m.eml"
    tpl.write_text(TEMPLATE)
    csv = blast.write_csv(d / "l.csv", ["email", "name"],
                          [[f"r{i}@example.test", f"N{i}"] for i in range(n)])
    return tpl, csv


def import_task(url, csv):
    p = peers.run([blast.BIN, "import", "--task", url, "--recipients", str(csv)], timeout=60)
    if p.returncode != 0:
        raise AssertionError("import failed:\n" + blast.describe(p))


def node(url, tpl, relay, *extra, timeout=600):
    return peers.Process([blast.BIN, "send", "--tls", "none", "--task", url, "--template",
                          str(tpl), "--relay", relay, "--connections", "2", *extra],
                         timeout=timeout, name="smtpblast-node")


def stats_lines(sink_proc) -> list:
    return [json.loads(line) for line in sink_proc.stderr.splitlines() if line.startswith("{")]


class PgThrottleTest(unittest.TestCase):
    def shared_rate_run(self, task, n_nodes, count, period_s, seconds):
        """n_nodes at count/period on a task of seconds*count/period recipients, run until the
        task is done; returns the sink's per-second counter lines, the nodes' exit codes, the
        task's status and the nodes."""
        rate = f"{count}/{'min' if period_s == 60 else str(period_s) + 's'}"
        url = PG.url(task)
        with blast.Workdir() as d:
            tpl, csv = inputs(d, int(seconds * count / period_s))
            import_task(url, csv)
            with blast.BlastSink("--stats-interval-ms", "1000", record=False) as sink:
                nodes = [node(url, tpl, sink.hostport, "--rate", rate) for _ in range(n_nodes)]
                for p in nodes:
                    p.start()
                rcs = [p.wait(seconds * 2 + 60) for p in nodes]
                time.sleep(1.5)  # one more counter line after the last message
                proc = sink.proc
            lines = stats_lines(proc)
            st = blast.status(url)
        return lines, rcs, st, nodes

    def check_windows(self, lines, count, period_s, span_s):
        """Every window of the sink's log no longer than `span_s` seconds holds at most what
        the rate allows in it; the limit is count per period_s (span_s <= period_s)."""
        per_s = count / period_s
        worst = None
        for i, a in enumerate(lines):
            for b in lines[i + 1:]:
                span = (b["uptime_ms"] - a["uptime_ms"]) / 1000
                if span > span_s + 1e-9:
                    break
                n = b["messages"] - a["messages"]
                # A smooth pace of one message per period/count puts at most ceil(span*rate)
                # into a half-open span (the sink's counters are cumulative: (a, b]).
                allowed = math.ceil(span * per_s - 1e-9)
                if worst is None or n - allowed > worst[0]:
                    worst = (n - allowed, n, allowed, span)
                self.assertLessEqual(n, allowed, (a, b, span))
        return worst

    def test_three_nodes_share_120_per_min(self):
        lines, rcs, st, nodes = self.shared_rate_run("rate120", 3, 120, 60, 35)
        for rc, p in zip(rcs, nodes):
            # The task is done on every node, also on one that found every row claimed by the
            # others: it waits as a live node until they are settled (issue 13).
            self.assertEqual(rc, 0, blast.describe(p))
        self.assertGreater(len(lines), 30, lines)
        # Every 30 s window holds at most 60 (and so every 60 s window at most 120).
        self.check_windows(lines, 120, 60, 30)
        # From the first message to the last: the full rate, less the guard (0.8 %) and at
        # most two messages lost at the ends.
        first = next(i for i, b in enumerate(lines) if b["messages"] > 0)
        last = next(i for i, b in enumerate(lines) if b["messages"] == lines[-1]["messages"])
        a, b = lines[first], lines[last]
        span = (b["uptime_ms"] - a["uptime_ms"]) / 1000
        got = b["messages"] - a["messages"] + 1
        self.assertLessEqual(got, math.ceil(span * 2) + 1, (got, span))
        self.assertGreaterEqual(got, span * 2 / 1.0084 - 2, (got, span))
        self.assertEqual(st["sent"], 70, st)
        self.assertEqual(lines[-1]["messages"], 70, st)

    @unittest.skipUnless(os.environ.get("SMTPBLAST_SOAK") == "1", "soak: SMTPBLAST_SOAK=1")
    def test_soak_three_minutes(self):
        # The run: 3 nodes at 60/min for 3 minutes: never more than 60 in any 60 s
        # window of the sink's log, and 180 +- 2 in all.
        lines, rcs, st, nodes = self.shared_rate_run("rate60", 3, 60, 60, 180)
        self.check_windows(lines, 60, 60, 60)
        for rc, p in zip(rcs, nodes):
            self.assertEqual(rc, 0, blast.describe(p))
        self.assertEqual(st["sent"], 180, st)
        # 180 recipients at 60/min: the last one about 3 minutes after the first (+- 2 s).
        first = next(i for i, b in enumerate(lines) if b["messages"] > 0)
        last = next(i for i, b in enumerate(lines) if b["messages"] == 180)
        span = (lines[last]["uptime_ms"] - lines[first]["uptime_ms"]) / 1000
        self.assertLessEqual(abs(span - 179 * 1.0084), 3, span)

    def test_daily_limit_across_nodes_and_runs(self):
        url = PG.url("daily")
        with blast.Workdir() as d, blast.BlastSink(record=False) as sink:
            tpl, csv = inputs(d, 60)
            import_task(url, csv)
            nodes = [node(url, tpl, sink.hostport, "--daily-limit", "20") for _ in range(3)]
            for p in nodes:
                p.start()
            for p in nodes:
                rc = p.wait(120)
                self.assertIn(rc, (0, 3), blast.describe(p))
            self.assertEqual(blast.status(url)["sent"], 20)
            # A later run the same day, two nodes: 30 in 24 h, 20 used.
            nodes = [node(url, tpl, sink.hostport, "--daily-limit", "30") for _ in range(2)]
            for p in nodes:
                p.start()
            for p in nodes:
                # The task's outcome on both: the account's limit stops it (30 of 60 sent). A
                # node that starts when the other holds every remaining row and the account's
                # last quota waits for those rows, then meets the limit too (issue 13).
                self.assertEqual(p.wait(120), 3, blast.describe(p))
            self.assertEqual(blast.status(url)["sent"], 30)
            p = blast.send(url, tpl, sink.hostport, None, "--daily-limit", "30")
            self.assertEqual(blast.status(url)["sent"], 30, blast.describe(p))
        self.assertEqual(sink.counters["messages"], 30)


if __name__ == "__main__":
    blast.main("test_pg_throttle")
