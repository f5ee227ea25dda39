#!/usr/bin/python3
"""Runs that must end: scripted servers that stop reading mid-body, never greet or refuse
connections; a process out of file descriptors; push-back that must not collapse the rate
(the sink's --rate-limit and --fault-421-at).

Run: /usr/bin/python3 tests/integration/test_hangs.py  (as root; see blast.py)
"""

import json
import mmap
import os
import re
import signal
import socket
import sqlite3
import time
import unittest

from support import blast, peers
from support.scripted import Hangup, ScriptedSmtp

TEMPLATE = b"From: Blast <sender@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"


def big_template(path, mbytes=8):
    # Larger than every socket buffer between the two ends, so a server that stops reading
    # leaves most of the body unsent in smtpblast.
    line = b"x" * 998 + b"\n"
    with open(path, "wb") as f:
        f.write(b"From: Blast <sender@example.test>\nSubject: big {{name}}\n\n")
        for _ in range(mbytes * 1024 * 1024 // len(line)):
            f.write(line)
    return path


def ubsan_vptr_checked(binary) -> bool:
    """Whether `binary` carries UBSan's vptr check (GCC's -fsanitize=undefined)."""
    with open(binary, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(b"__ubsan_handle_dynamic_type_cache_miss") >= 0


def first_commit_done(task) -> bool:
    """Whether a running send has committed outcomes once (it then writes throttle_json)."""
    try:
        con = sqlite3.connect(f"file:{task}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT 1 FROM meta WHERE key = 'throttle_json'").fetchone() \
                is not None
        finally:
            con.close()
    except sqlite3.Error:  # not there yet, or still being imported
        return False


# UBSan's vptr check of a (class, static type) pair it has not seen before reads the object's
# vtable through IsAccessibleMemoryRange, which needs a pipe(): in a process with no free
# descriptor it fails, and UBSan says "invalid vptr" of a live object and cannot print its
# memory (readable heap memory otherwise). Seen under the lowered limit below: the first
# json::dump() (Coordinator::save_throttle_state) make_shared's a new output adapter, and the
# control block's own constructor (shared_ptr_base.h:604) was called "not a
# '_Sp_counted_ptr_inplace'": a false positive. (A real use after free is ASan's report first.)
FALSE_VPTR = re.compile(r"runtime error: member (?:call|access) (?:on|within) address "
                        r"(0x[0-9a-f]+) which does not point to an object of type '[^']*'\n"
                        r"\1: note: object has invalid vptr\n<memory cannot be printed>\n")


class StallServer(ScriptedSmtp):
    """Greets, answers EHLO (no PIPELINING, no CHUNKING), MAIL, RCPT and DATA, reads a
    little of the body and then stops reading. `then`: bytes sent after `after` seconds
    (a 421), or None to stay silent. The socket is held open until the test ends."""

    hostname = "stall.test"
    caps = ()

    def __init__(self, then, after=0.3):
        super().__init__("127.0.0.1")
        self.then = then
        self.after = after
        self.stalled = 0

    def start(self):
        super().start()
        # Accepted sockets inherit a small receive buffer: the client's body stops early.
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        return self

    def mail(self, c, arg):
        return b"250 ok\r\n"

    def rcpt(self, c, addr):
        return b"250 ok\r\n"

    def rset(self, c):
        return b"250 ok\r\n"

    def other(self, c, verb, line):
        return b"250 ok\r\n" if verb == b"NOOP" else super().other(c, verb, line)

    def data(self, c):
        c.send(b"354 go ahead\r\n")
        c.sock.recv(65536)  # a little of the body, then nothing more is read
        self.stalled += 1
        time.sleep(self.after)
        if self.then is not None:
            c.send(self.then)
        self._stop.wait(120)
        raise Hangup()


class SilentServer(blast.ThreadServer):
    """Accepts connections and never says anything."""

    def handle(self, c):
        self._stop.wait(120)


class HangsTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def csv(self, n, prefix="u"):
        return blast.write_csv(self.dir / f"{prefix}.csv", ("email", "name"),
                               [(f"{prefix}{i:05d}@example.test", f"N{i}") for i in range(n)])

    def assert_nothing_lost(self, task, n):
        st = blast.status(task)
        self.assertEqual(st["total"], n, st)
        self.assertEqual(st["in_flight"], 0, st)
        self.assertEqual(st["sent"] + st["unsent"] + st["deferred"] + st["failed"], n, st)
        return st

    # --- a server that stops reading mid-body ------------------------------------------

    def stalled_body_case(self, then, n, *extra):
        tpl = big_template(self.dir / "big.eml")
        csv = self.csv(n)
        task = self.dir / "t.db"
        with StallServer(then) as srv:
            # Before the fix the close after the 421 waited for the body to drain: forever.
            p = blast.send(task, tpl, srv.hostport, csv, "--connections", "1",
                           "--max-attempts", "1", *extra, timeout=60)
            stalled = srv.stalled
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertGreaterEqual(stalled, 1)
        st = self.assert_nothing_lost(task, n)
        self.assertEqual(st["deferred"], n, st)
        return blast.db_rows(task)

    def test_421_while_the_body_is_unread_ends_the_run(self):
        # One recipient: the 421 is push-back too, which slows a second message down.
        rows = self.stalled_body_case(b"421 4.4.2 stall.test timeout, closing\r\n", 1)
        self.assertTrue(any(r["code"] == 421 for r in rows.values()), rows)

    def test_end_of_data_timeout_while_the_body_is_unread_ends_the_run(self):
        rows = self.stalled_body_case(None, 2, "--command-timeout", "2s")
        for r in rows.values():
            self.assertIn("timeout", r["reply"], rows)

    # --- a server that accepts and never greets ----------------------------------------

    def test_sigterm_while_waiting_for_the_greeting_stops_at_once(self):
        csv = self.csv(20)
        task = self.dir / "t.db"
        with SilentServer() as srv:
            p = peers.Process([blast.BIN, "send", "--tls", "none", "--task", task, "--template",
                               self.tpl, "--recipients", csv, "--relay", srv.hostport,
                               "--connections", "4"], timeout=120, name="smtpblast")
            p.start()
            try:
                deadline = time.monotonic() + 20
                while srv.connections < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertGreaterEqual(srv.connections, 1, p.stderr)
                time.sleep(0.3)
                os.kill(p.pid, signal.SIGTERM)
                # The greeting timeout is 5 minutes: ending at all within 30 s shows the stop
                # did not wait for it.
                rc = p.wait(timeout=30)
            finally:
                p.stop()
        self.assertEqual(rc, 4, blast.describe(p))  # interrupted by a signal
        st = self.assert_nothing_lost(task, 20)
        self.assertEqual(st["unsent"], 20, st)

    def test_sigterm_with_a_body_the_server_never_reads_stops_after_stop_timeout(self):
        """The first signal lets messages under way finish; a server that stopped reading and
        never answers would hold that for the end-of-data timeout (10 minutes). After
        --stop-timeout the run stops as a second signal makes it."""
        tpl = big_template(self.dir / "big.eml")
        csv = self.csv(1)
        task = self.dir / "t.db"
        with StallServer(None) as srv:
            p = peers.Process([blast.BIN, "send", "--tls", "none", "--task", task, "--template",
                               tpl, "--recipients", csv, "--relay", srv.hostport,
                               "--connections", "1", "--stop-timeout", "1s"], timeout=120,
                              name="smtpblast")
            p.start()
            try:
                deadline = time.monotonic() + 20
                while srv.stalled < 1 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertGreaterEqual(srv.stalled, 1, p.stderr)
                os.kill(p.pid, signal.SIGTERM)
                # Without --stop-timeout this waits for the 10-minute end-of-data timeout.
                rc = p.wait(timeout=60)
            finally:
                p.stop()
        self.assertEqual(rc, 4, blast.describe(p))  # interrupted by a signal
        self.assertIn("did not finish within --stop-timeout", p.stderr)
        st = self.assert_nothing_lost(task, 1)
        self.assertEqual(st["deferred"], 1, st)

    def test_greeting_timeout_does_not_open_the_other_connections(self):
        csv = self.csv(20)
        task = self.dir / "t.db"
        with SilentServer() as srv:
            p = blast.send(task, self.tpl, srv.hostport, csv, "--connections", "10",
                           "--workers", "1", "--command-timeout", "1s", timeout=90)
            opened = srv.connections
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("greeting", p.stderr)
        # One connection probes the host; after its timeout one more try, then the run gives
        # up. Before: ten in parallel, ten timeouts.
        self.assertLessEqual(opened, 2, blast.describe(p))
        st = self.assert_nothing_lost(task, 20)
        self.assertEqual(st["unsent"], 20, st)

    # --- connection refused --------------------------------------------------------------

    def test_connection_refused_is_said_as_such(self):
        port = peers.free_port("127.0.0.1")  # nothing listens there
        p = peers.run([blast.BIN, "check", "--relay", f"127.0.0.1:{port}", "--tls", "none"],
                      timeout=30)
        self.assertEqual(p.returncode, 1, blast.describe(p))
        self.assertIn(f"check failed at tcp: connection refused by 127.0.0.1:{port}", p.stdout,
                      blast.describe(p))
        self.assertLess(p.elapsed, 10, "check retried a refused connection")
        csv = self.csv(3)
        task = self.dir / "t.db"
        p = blast.send(task, self.tpl, f"127.0.0.1:{port}", csv, timeout=120)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn(f"relay 127.0.0.1:{port}: 10 connection attempts in a row failed (every "
                      "one refused", p.stderr, blast.describe(p))
        self.assertIn(f"connection refused by 127.0.0.1:{port}", p.stderr)
        st = self.assert_nothing_lost(task, 3)
        self.assertEqual(st["unsent"], 3, st)

    # --- out of file descriptors ---------------------------------------------------------

    def test_connections_beyond_the_descriptor_limit_exit_2(self):
        csv = self.csv(50)
        task = self.dir / "t.db"
        with blast.BlastSink(record=False) as sink:
            p = peers.run(["prlimit", "--nofile=64:64", blast.BIN, "send", "--tls", "none",
                           "--task", task, "--template", self.tpl, "--recipients", csv,
                           "--relay", sink.hostport, "--connections", "200"], timeout=60)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("ulimit -n", p.stderr)
        self.assertIn("--connections 200", p.stderr)
        self.assertEqual(sink.counters["messages"], 0)

    def test_running_out_of_descriptors_mid_run_ends_the_run(self):
        # The limit is lowered under a running send (prlimit --pid) below what it holds:
        # new connections fail with EMFILE. Before the fix the run sent everything and never
        # exited (nor on SIGTERM); now the connections it has carry on and the run ends.
        n = 3000
        csv = self.csv(n)
        task = self.dir / "t.db"
        with blast.BlastSink("--delay-ms", "20", record=False) as sink:
            p = peers.Process([blast.BIN, "send", "--tls", "none", "--task", task, "--template",
                               self.tpl, "--recipients", csv, "--relay", sink.hostport,
                               "--connections", "30", "--per-connection", "3", "--workers", "1"],
                              timeout=120, name="smtpblast")
            p.start()
            try:
                # After the first commit too: its first json dump, out of descriptors, dies of
                # UBSan's false positive in a UBSan build (FALSE_VPTR), nearly every time.
                fds, committed = 0, False
                deadline = time.monotonic() + 20
                while ((fds < 40 or not committed) and time.monotonic() < deadline and
                       p.poll() is None):
                    try:
                        fds = len(os.listdir(f"/proc/{p.pid}/fd"))
                    except OSError:
                        break
                    committed = committed or first_commit_done(task)
                    time.sleep(0.02)
                self.assertGreaterEqual(fds, 40, p.stderr)
                self.assertTrue(committed, p.stderr)
                lim = peers.run(["prlimit", "--pid", str(p.pid), f"--nofile={fds - 10}:{fds - 10}"],
                                timeout=10)
                self.assertEqual(lim.returncode, 0, blast.describe(lim))
                rc = p.wait(timeout=90)
            finally:
                p.stop()
        # Out of descriptors on purpose, a UBSan build may die of its own vptr check's false
        # positive (see FALSE_VPTR); any other death, an ASan report included, still fails.
        false_vptr = FALSE_VPTR.search(p.stderr)
        if rc != 0 and false_vptr and ubsan_vptr_checked(blast.BIN):
            self.skipTest("UBSan's vptr check needs a free descriptor and this process has "
                          "none (a false positive, not a memory error): " + false_vptr[0])
        self.assertEqual(rc, 0, blast.describe(p))
        self.assertNotIn("timed out", p.stderr)
        st = self.assert_nothing_lost(task, n)
        self.assertEqual(st["sent"], n, st)
        self.assertEqual(sink.counters["messages"], n)

    def test_soft_descriptor_limit_is_raised(self):
        csv = self.csv(500)
        task = self.dir / "t.db"
        with blast.BlastSink(record=False) as sink:
            p = peers.run(["prlimit", "--nofile=64:4096", blast.BIN, "send", "--tls", "none",
                           "--task", task, "--template", self.tpl, "--recipients", csv,
                           "--relay", sink.hostport, "--connections", "200"], timeout=120)
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertIn("open-file limit raised from 64 to 4096", p.stderr)
        self.assertEqual(blast.status(task)["sent"], 500)
        self.assertEqual(sink.counters["messages"], 500)


class PushBackTest(unittest.TestCase):
    """Push-back that must not collapse throughput, against the sink's --rate-limit (451
    4.7.0 above R messages a second) and --fault-421-at (one 421). Rates are the sink's own
    counts over the span of its accepted messages, with generous bounds."""

    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def run_against(self, n, sink_args, *extra, timeout=240):
        csv = blast.write_csv(self.dir / "l.csv", ("email", "name"),
                              [(f"r{i:06d}@example.test", f"N{i}") for i in range(n)])
        task = self.dir / "t.db"
        # Deferred recipients come back within a second: the sink's limit, not the retry
        # schedule, sets the pace.
        with blast.BlastSink(*sink_args, "--stats-interval-ms", "500", record=False) as sink:
            p = blast.send(task, self.tpl, sink.hostport, csv, "--connections", "4",
                           "--max-attempts", "100", "--retry-delay", "200ms", "--retry-max",
                           "1s", *extra, timeout=timeout)
            stats = [json.loads(line) for line in sink.proc.stderr.splitlines()
                     if line.startswith("{")]
        c = sink.counters
        self.assertEqual(p.returncode, 0, blast.describe(p))
        self.assertEqual(blast.status(task)["sent"], n)
        self.assertEqual(c["messages"], n, c)
        return p, c, stats

    def settles_at(self, limit, n, *extra):
        p, c, stats = self.run_against(n, ("--rate-limit", str(limit)), *extra)
        # The settled rate: the sink's counts between a quarter and 95% of the messages
        # (after the first push-back and the ramp, before the last stragglers).
        mid = [s for s in stats if n // 4 <= s["messages"] <= n * 95 // 100]
        self.assertGreaterEqual(len(mid), 4, stats)
        span = (mid[-1]["uptime_ms"] - mid[0]["uptime_ms"]) / 1000
        rate = (mid[-1]["messages"] - mid[0]["messages"]) / span
        whole = (c["messages"] - 1) / ((c["last_ms"] - c["first_ms"]) / 1000)
        print(f"\n  --rate-limit {limit} {' '.join(extra)}: settled at {rate:.1f}/s over "
              f"{span:.1f} s; {whole:.1f}/s over the whole run; {c['rate_limited']} "
              f"rate-limited replies for {c['messages']} messages", flush=True)
        # The limiter lets no more through (but its 100 ms burst); smtpblast must keep it full.
        self.assertLessEqual(rate, 1.1 * limit, stats)
        self.assertGreaterEqual(rate, 0.9 * limit, (stats, p.stderr))
        if c["rate_limited"]:
            self.assertIn("push-back", p.stderr)
        # else a sanitizer build on a loaded machine stayed under the limit by itself: the
        # sink never pushed back, and the rate checks above are what is left to assert.

    def test_unlimited_run_settles_at_a_rate_limited_sink(self):
        self.settles_at(200, 4000)

    def test_configured_rate_above_a_rate_limited_sink_settles_at_its_rate(self):
        # Issue #12: 10% push-back at --rate 100/s once ran at 2.8/s.
        self.settles_at(90, 1800, "--rate", "100/s")

    def test_a_lone_421_does_not_collapse_an_unlimited_run(self):
        n, at = 30000, 5000
        p, c, _ = self.run_against(n, ("--fault-421-at", str(at)))
        self.assertGreaterEqual(c["fault_421_ms"], 0, c)
        before = c["messages_before_421"] / max(c["fault_421_ms"] - c["first_ms"], 1) * 1000
        after = (c["messages"] - c["messages_before_421"]) / max(
            c["last_ms"] - c["fault_421_ms"], 1) * 1000
        print(f"\n  lone 421: {before:.0f}/s before, {after:.0f}/s after", flush=True)
        # Before the fix the run fell to one message a minute (and did not end in time): a
        # fall by orders of magnitude. The rate before the 421 is measured over its first
        # 5,000 messages, ~10 ms on loopback (a pipelined burst), so it is noisy: under the load
        # of a parallel suite it read 416k/s against 120k/s after, and a bound of a third
        # failed; a tenth still catches the collapse with room to spare.
        self.assertGreaterEqual(after, before / 10, c)


if __name__ == "__main__":
    blast.main("test_hangs")
