#!/usr/bin/python3
"""Several nodes on one PostgreSQL mailing (issue 13): a private PostgreSQL server and the
smtpblast sink on loopback, several `smtpblast send` processes on one task URL.

- three nodes share a list: every recipient delivered once, status adds up, per node
- kill -9 of one node of three at random moments (3 seeded rounds; 10 under `soak`): the
  others take its leases over when they expire; nothing lost; duplicates within the window
- SIGSTOP past the lease, then SIGCONT: the late outcomes are refused by the fence
- PostgreSQL restarted mid-run: the nodes reconnect and finish
- bad input: exit 2 naming the problem, before anything is sent
- --daily-limit across three nodes: a node waits while others hold unsent reservations, and
  every node exits 3 once the quota is spent, with exactly the limit sent
- reset and import --replace refused (exit 2, naming the node) while a node sends; allowed after

Short leases (SMTPBLAST_PG_LEASE_MS=2000) keep it quick. SMTPBLAST_SOAK=1 (ctest label `soak`;
SB_PG_SOAK=1 too) runs the 30,000-recipient variant of the share test and the 10 kill rounds.
Run: /usr/bin/python3 tests/integration/test_pg_nodes.py  (as root; see blast.py)
"""

import collections
import math
import os
import random
import re
import signal
import time
import unittest

from support import blast, peers, postgres

LEASE_MS = 2000
COMMIT_INTERVAL_MS = 20  # the nodes' --commit-interval
# Outcomes on their way from the workers to the store when the node died: up to a pipelined
# window per connection and one commit's worth, whatever the pace.
WINDOW_SLACK = 50
SOAK = os.environ.get("SB_PG_SOAK") == "1" or os.environ.get("SMTPBLAST_SOAK") == "1"
N_SHARE = 30000 if SOAK else 6000
KILL_ROUNDS = int(os.environ.get("SB_PG_KILL_ROUNDS", "3"))

TEMPLATE = (b"From: Blast <sender@example.test>\n"
            b"Subject: Hello {{name}}\n"
            b"\n"
            b"Hello {{name}}\n")


def message_ids(sink) -> list:
    """The Message-ID of every message the sink accepted (<task key>.<recipient id>@domain:
    one per recipient, the same in a message sent again)."""
    out = []
    for m in sink.records():
        found = re.search(rb"^Message-ID:\s*(<[^>]*>)", m.body, re.M | re.I)
        out.append(found.group(1) if found else None)
    return out


def rcpt_counts(sink) -> collections.Counter:
    c = collections.Counter()
    for m in sink.records():
        for r in m.rcpts:
            c[r.strip("<>")] += 1
    return c


class PgNodesTest(unittest.TestCase):
    pg = None

    @classmethod
    def setUpClass(cls):
        why = postgres.available()
        if why:
            raise unittest.SkipTest(why)
        cls.pg = postgres.PostgresServer()
        cls.pg.start()

    @classmethod
    def tearDownClass(cls):
        if cls.pg is not None:
            cls.pg.stop()

    def env(self, **extra):
        e = dict(os.environ)
        e.update(self.pg.env())
        e["SMTPBLAST_PG_LEASE_MS"] = str(LEASE_MS)
        e.update(extra)
        return e

    def setUp(self):
        self.dir = blast.Workdir()
        self.d = self.dir.path
        self.tpl = self.d / "m.eml"
        self.tpl.write_bytes(TEMPLATE)

    def tearDown(self):
        self.dir.cleanup()

    def import_list(self, task, n):
        csv = blast.write_csv(self.d / f"{task}.csv", ("email", "name"),
                              [(f"r{i:06d}@example.test", f"N{i}") for i in range(n)])
        url = self.pg.url(task)
        p = peers.Process([blast.BIN, "import", "--task", url, "--recipients", csv],
                          env=self.env(), timeout=120)
        p.start()
        p.wait(timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        return url

    def node(self, url, sink, name, *extra):
        args = [blast.BIN, "send", "--tls", "none", "--task", url, "--template", self.tpl,
                "--relay", sink.hostport, "--connections", "2", "--workers", "1",
                "--commit-interval", "20ms", *extra]
        p = peers.Process([str(a) for a in args], env=self.env(SMTPBLAST_NODE=name),
                          timeout=300, name=name)
        p.start()
        return p

    def status(self, url):
        p = peers.Process([blast.BIN, "status", "--task", url, "--json"], env=self.env(),
                          timeout=60)
        p.start()
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        import json
        return json.loads(p.stdout)

    def sql(self, q):
        return self.pg.sql(q)

    def assert_all_sent(self, url, n):
        st = self.status(url)
        self.assertEqual(st["total"], n, st)
        self.assertEqual(st["sent"], n, st)
        self.assertEqual(st["in_flight"], 0, st)
        by_node = st["by_node"]
        self.assertEqual(sum(v["sent"] for v in by_node.values()), n, by_node)
        return st

    def test_three_nodes_share_one_list(self):
        url = self.import_list("share", N_SHARE)
        with blast.BlastSink() as sink:
            nodes = [self.node(url, sink, f"n{i}") for i in range(3)]
            for p in nodes:
                p.wait(timeout=300)
            for p in nodes:
                self.assertEqual(p.returncode, 0, p.stderr)
        got = rcpt_counts(sink)
        self.assertEqual(len(got), N_SHARE)
        twice = [r for r, c in got.items() if c > 1]
        self.assertEqual(twice, [], "sent twice")
        st = self.assert_all_sent(url, N_SHARE)
        self.assertEqual(len(st["nodes"]), 3, st["nodes"])
        self.assertTrue(all(n["finished"] for n in st["nodes"]), st["nodes"])
        # Each node sent a share (one node alone could have raced through the list, but not
        # on a list this long with two connections each).
        self.assertGreaterEqual(len([v for v in st["by_node"].values() if v["sent"] > 0]), 2)

    def kill_rounds(self, rounds):
        """Kill -9 of one node of three at a random moment, `rounds` times (a seeded random
        victim and moment: SB_PG_KILL_SEED repeats a run; the seed is printed)."""
        seed = int(os.environ.get("SB_PG_KILL_SEED") or random.randrange(1 << 30))
        print(f"\nkill rounds: seed {seed} (SB_PG_KILL_SEED={seed} repeats them)", flush=True)
        rng = random.Random(seed)
        n = 3000
        for rnd in range(rounds):
            url = self.import_list(f"kill{seed}r{rnd}", n)
            at = rng.uniform(0.2, 2.0)
            vi = rng.randrange(3)
            # At 1,500 msgs/s for the three together (a shared bucket) a round sends for ~2 s
            # on any machine that keeps up, so that the kill falls mid-run.
            with blast.BlastSink("--delay-ms", "5") as sink:
                names = [f"k{rnd}n{i}" for i in range(3)]
                nodes = [self.node(url, sink, name, "--rate", "1500/s") for name in names]
                t_start = time.monotonic()
                time.sleep(at)
                victim = nodes[vi]
                os.kill(victim.pid, signal.SIGKILL)
                victim.wait(timeout=10)
                lived = time.monotonic() - t_start
                t0 = time.monotonic()
                for p in nodes:
                    if p is not victim:
                        p.wait(timeout=300)
                        self.assertEqual(p.returncode, 0, p.stderr)
                took = time.monotonic() - t0
            where = f"seed {seed} round {rnd} (kill of {names[vi]} at {at:.2f} s)"
            got = collections.Counter(message_ids(sink))
            self.assertEqual(len(got), n, f"{where}: lost recipients")
            dups = sum(c - 1 for c in got.values())
            st = self.assert_all_sent(url, n)
            # The window: a killed node's messages that the server accepted and whose outcome
            # it had not committed yet go out again once its lease runs out, i.e. at most what
            # the victim sends in one commit interval plus the lease (a stalled node's window;
            # a killed one sends nothing after its death, so this is generous), at the pace it
            # had: its committed sends over its life.
            v_sent = st["by_node"].get(names[vi], {}).get("sent", 0)
            window_s = COMMIT_INTERVAL_MS / 1000 + LEASE_MS / 1000
            allowed = math.ceil(v_sent / max(lived, 0.1) * window_s) + WINDOW_SLACK
            self.assertLessEqual(dups, allowed, f"{where}: {dups} duplicates, victim sent "
                                 f"{v_sent} in {lived:.2f} s")
            # And in absolute terms (measured: ~100 at ~1,000 msgs/s here).
            self.assertLessEqual(dups, 250, f"{where}: {dups} duplicates")
            print(f"kill round {rnd}: {names[vi]} at {at:.2f} s, {dups} duplicates (window "
                  f"allows {allowed}), survivors done {took:.1f} s after the kill", flush=True)

    def test_kill9_one_node_others_take_over(self):
        self.kill_rounds(KILL_ROUNDS)

    @unittest.skipUnless(SOAK, "soak: SMTPBLAST_SOAK=1 (ctest -L soak)")
    def test_soak_kill9_ten_rounds(self):
        # The 10 rounds (CI runs 3 in test_kill9_one_node_others_take_over).
        self.kill_rounds(10)

    def test_late_node_waits_then_takes_over(self):
        # A node that starts when another holds every row is a live node: it waits, takes the
        # rows over when their owner dies and its lease runs out, and ends 0 with the task done
        # (issue 13: it used to end at once with exit 1, having sent nothing).
        n = 200
        url = self.import_list("late", n)
        with blast.BlastSink() as sink:
            # Paced (a bucket both nodes share), so that the early node is still at work.
            a = self.node(url, sink, "early", "--rate", "100/s")
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                held = self.sql("SELECT count(*) FROM smtpblast_recipients "
                                "WHERE task = 'late' AND status IN (1, 5)")
                if int(held[0][0]) == n:
                    break
                time.sleep(0.05)
            late = self.node(url, sink, "late", "--rate", "100/s")
            time.sleep(1.0)  # the late node found nothing to claim and is waiting
            self.assertIsNone(late.poll(), late.stderr)
            os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=10)
            late.wait(timeout=120)
            self.assertEqual(late.returncode, 0, late.stderr)
        got = rcpt_counts(sink)
        self.assertEqual(len(got), n)
        st = self.assert_all_sent(url, n)
        self.assertGreater(st["by_node"]["late"]["sent"], 0, st["by_node"])

    def test_sigstop_past_lease_is_fenced(self):
        n = 1500
        url = self.import_list("stop", n)
        with blast.BlastSink("--delay-ms", "20") as sink:
            a = self.node(url, sink, "stopped")
            # a holds claims with messages under way once it has recorded a few outcomes
            # (a fixed sleep may end inside a sanitizer build's start-up on a loaded machine).
            deadline = time.monotonic() + 60
            while not self.sql("SELECT 1 FROM smtpblast_recipients "
                               "WHERE task = 'stop' AND done_by = 'stopped' LIMIT 1"):
                self.assertLess(time.monotonic(), deadline, "node a sent nothing in 60 s")
                time.sleep(0.05)
            time.sleep(0.2)
            os.kill(a.pid, signal.SIGSTOP)
            b = self.node(url, sink, "live")
            b.wait(timeout=300)
            self.assertEqual(b.returncode, 0, b.stderr)
            owners = dict(self.sql("SELECT id, done_by FROM smtpblast_recipients "
                                   "WHERE task = 'stop' AND done_by = 'live'"))
            os.kill(a.pid, signal.SIGCONT)
            a.wait(timeout=120)
        # The stopped node's replies were still in flight when it stopped: once resumed, its
        # outcomes for rows the live node took over are refused, and it says so.
        # It stops starting messages once it sees its lease ran out: a fatal stop (exit 5).
        self.assertEqual(a.returncode, 5, a.stderr)
        self.assertIn("lease", a.stderr)
        m = re.search(r"(\d+) outcomes? .*refused", a.stderr)
        self.assertIsNotNone(m, a.stderr)
        after = dict(self.sql("SELECT id, done_by FROM smtpblast_recipients "
                              "WHERE task = 'stop' AND done_by = 'live'"))
        # The live node's records stay its own.
        for rid, who in owners.items():
            self.assertEqual(after.get(rid), who, rid)
        self.assert_all_sent(url, n)
        self.assertEqual(len(rcpt_counts(sink)), n)

    def test_postgres_restarted_mid_run(self):
        n = 4000
        url = self.import_list("restart", n)
        with blast.BlastSink("--delay-ms", "5") as sink:
            # A shared rate keeps the run going past the restart (4,000 at 1,500/s: ~2.7 s)
            # and is cut off with it: no slots while the server is away.
            nodes = [self.node(url, sink, f"r{i}", "--rate", "1500/s") for i in range(2)]
            time.sleep(1.0)
            self.pg.restart(mode="immediate", down_for=1.0)
            stopped = 0
            for p in nodes:
                p.wait(timeout=300)
                # A node reconnects and goes on (0), or it stops cleanly with a clear error: its
                # lease ran out while the database was away (5: other nodes may have taken its
                # rows over), or a write failed past the reconnect's retries (2, the store
                # named). Seen under ASan on a busy machine. Never 1 (rows left unsent that
                # the node could have sent).
                self.assertIn(p.returncode, (0, 2, 5), p.stderr)
                if p.returncode == 5:
                    self.assertIn("lease", p.stderr)
                if p.returncode == 2:
                    self.assertIn("task store", p.stderr)
                stopped += p.returncode != 0
            for p in nodes:
                if p.returncode == 0:
                    # The slots it could not get are said, not silent.
                    self.assertRegex(
                        p.stderr, r"warning: shared rate: \d+ of \d+ requests to PostgreSQL failed",
                        p.stderr)
            if stopped:
                # Nothing is lost: a node started now (after the stopped ones' leases ran out)
                # sends what they held.
                time.sleep(2.5)
                last = self.node(url, sink, "after")
                last.wait(timeout=300)
                self.assertEqual(last.returncode, 0, last.stderr)
        got = rcpt_counts(sink)
        self.assertEqual(len(got), n)
        self.assert_all_sent(url, n)

    def test_daily_limit_waits_for_reservations_held_by_live_nodes(self):
        # Three nodes, --daily-limit 45 (not a multiple of the reservation batch, 32): the
        # first nodes reserve the whole quota ahead of sending it. A node that finds no room
        # while others still hold unsent reservations waits (it used to exit 3 at once); every
        # node exits 3 once the 45 are sent, and no more than 45 go out.
        n, limit = 200, 45
        url = self.import_list("daily", n)
        exits, seen = {}, []
        with blast.BlastSink() as sink:
            names = ["d0", "d1", "d2"]
            nodes = [self.node(url, sink, name, "--rate", "30/s", "--daily-limit", str(limit))
                     for name in names]
            deadline = time.monotonic() + 120
            held_seen = False
            while len(exits) < 3 and time.monotonic() < deadline:
                if not held_seen:
                    st = self.status(url)
                    held_seen = bool((st.get("account") or {}).get("held"))
                ended = [name for name, p in zip(names, nodes)
                         if name not in exits and p.poll() is not None]
                # Read after the exits were seen (a slow iteration never makes an exit look
                # earlier than it was).
                sent = int(self.sql("SELECT count(*) FROM smtpblast_recipients "
                                    "WHERE task = 'daily' AND status = 1")[0][0])
                for name in ended:
                    exits[name] = (nodes[names.index(name)].returncode, sent)
                seen.append(sent)
                time.sleep(0.05)
            hung = []
            for name, p in zip(names, nodes):
                try:
                    p.wait(timeout=30)
                except Exception as e:  # noqa: BLE001 - every node's story, not the first
                    hung.append(f"{name}: {e}")
            if hung:
                self.fail("\n".join(hung + [f"{name}: exit {p.returncode}\n{p.stderr}"
                                            for name, p in zip(names, nodes)]
                                     + [f"status: {self.status(url)}"]))
        for name, p in zip(names, nodes):
            self.assertEqual(p.returncode, 3, p.stderr)
            self.assertIn("daily limit of 45", p.stderr)
            # Exit 3 only once the quota was spent: by then (give or take what was under way
            # at the other nodes and not committed yet) the 45 had been sent.
            self.assertGreaterEqual(exits[name][1], limit - 6, (name, exits, seen[-20:]))
        self.assertEqual(len(rcpt_counts(sink)), limit)
        st = self.status(url)
        self.assertEqual(st["sent"], limit, st)
        self.assertEqual(st["account"]["used"], limit, st["account"])
        self.assertNotIn("held", st["account"])  # every hold ended with its run
        self.assertTrue(held_seen, "status never showed a held reservation")

    def test_reset_and_replace_refused_while_a_node_sends(self):
        n = 100
        url = self.import_list("guard", n)
        other = blast.write_csv(self.d / "other.csv", ("email", "name"),
                                [(f"o{i}@example.test", f"O{i}") for i in range(5)])
        more = blast.write_csv(self.d / "more.csv", ("email", "name"),
                               [(f"m{i}@example.test", f"M{i}") for i in range(5)])

        def verb(*args):
            p = peers.Process([str(a) for a in (blast.BIN, *args)], env=self.env(), timeout=60)
            p.start()
            p.wait(timeout=60)
            return p

        with blast.BlastSink() as sink:
            # Paced so that it is still at work while the verbs below run (5 s).
            a = self.node(url, sink, "guard-node", "--rate", "20/s")
            deadline = time.monotonic() + 60
            while not self.sql("SELECT 1 FROM smtpblast_recipients "
                               "WHERE task = 'guard' AND done_by = 'guard-node' LIMIT 1"):
                self.assertLess(time.monotonic(), deadline, "the node sent nothing in 60 s")
                time.sleep(0.05)
            for args in (("reset", "--task", url, "--all"),
                         ("reset", "--task", url, "--errors"),
                         ("import", "--task", url, "--recipients", other, "--replace")):
                p = verb(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn("refused: 1 node is sending it: guard-node (lease until ",
                              p.stderr)
                self.assertRegex(p.stderr, r"in \d+ s\)")
            # Appending while nodes send is allowed.
            p = verb("import", "--task", url, "--recipients", more, "--append")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIsNone(a.poll(), "the node ended before the checks were done")
            os.kill(a.pid, signal.SIGTERM)  # it finishes what is under way, ends its lease
            a.wait(timeout=60)
            self.assertNotEqual(a.returncode, 2, a.stderr)
        st = self.status(url)
        self.assertEqual(st["total"], n + 5, st)
        self.assertGreater(st["sent"], 0, st)
        self.assertEqual(st["in_flight"], 0, st)
        # Once the node ended: allowed.
        p = verb("reset", "--task", url, "--all")
        self.assertEqual(p.returncode, 0, p.stderr)
        p = verb("import", "--task", url, "--recipients", other, "--replace")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(self.status(url)["total"], 5)

    def test_bad_input_exit_2_before_sending(self):
        with blast.BlastSink() as sink:
            def run(url, env=None):
                args = [blast.BIN, "send", "--tls", "none", "--task", url, "--template",
                        self.tpl, "--relay", sink.hostport]
                p = peers.Process([str(a) for a in args], env=env or self.env(), timeout=60)
                p.start()
                p.wait(timeout=60)
                return p

            no_task = run(self.pg.url())
            self.assertEqual(no_task.returncode, 2, no_task.stderr)
            self.assertIn("task=NAME", no_task.stderr)
            refused = run("postgresql://sbtest@127.0.0.1:1/smtpblast?task=x")
            self.assertEqual(refused.returncode, 2, refused.stderr)
            self.assertIn("127.0.0.1", refused.stderr)
            pwfile = self.d / "wrongpass"
            pwfile.write_text(f"*:*:*:sbtest:not-the-password\n")
            os.chmod(pwfile, 0o600)
            wrong = run(self.pg.url("x"), env=self.env(PGPASSFILE=str(pwfile)))
            self.assertEqual(wrong.returncode, 2, wrong.stderr)
            self.assertIn("password authentication failed", wrong.stderr)
            in_argv = run("postgresql://sbtest:secret@127.0.0.1:1/smtpblast?task=x")
            self.assertEqual(in_argv.returncode, 2, in_argv.stderr)
            self.assertNotIn("secret", in_argv.stderr)
            self.pg.create_database("newer", drop=True)
            newer_url = self.pg.url("n", database="newer")
            self.import_list_into(newer_url)
            self.pg.sql("UPDATE smtpblast_schema SET version = 99", db="newer")
            newer = run(newer_url)
            self.assertEqual(newer.returncode, 2, newer.stderr)
            self.assertIn("schema version 99", newer.stderr)
        self.assertEqual(sink.records(), [])

    def import_list_into(self, url):
        csv = blast.write_csv(self.d / "one.csv", ("email", "name"), [("a@example.test", "A")])
        p = peers.Process([blast.BIN, "import", "--task", url, "--recipients", csv],
                          env=self.env(), timeout=60)
        p.start()
        p.wait(timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    blast.main("test_pg_nodes")
