"""--progress for pipelines and people: `jsonl` objects on stderr about once a second whose
counts only grow and whose final object equals `status` and the --json summary; `bar` and
`plain` without a terminal print no control codes; `none` prints nothing; a bad value is exit 2.
Against the built-in sink (some recipients refused, some deferred)."""

import json
import unittest

from support import blast

TEMPLATE = "From: News <news@example.test>\nSubject: Hi {{name}}\n\nHello {{name}}\n"
FIELDS = ("seconds", "sent", "failed", "deferred", "attempts", "left", "msgs_per_s", "eta_s")


def progress_objects(stderr: str) -> list[dict]:
    """The JSON lines of stderr (the other lines are the usual notes and the summary)."""
    return [json.loads(ln) for ln in stderr.splitlines() if ln.startswith("{")]


class ProgressTest(unittest.TestCase):
    def setUp(self):
        self.wd = blast.Workdir()
        self.dir = self.wd.path
        self.tpl = self.dir / "m.eml"
        self.tpl.write_text(TEMPLATE)

    def tearDown(self):
        self.wd.cleanup()

    def csv(self, n, prefix="r"):
        return blast.write_csv(self.dir / f"{prefix}.csv", ["email", "name"],
                               [[f"{prefix}{i}@example.test", f"N{i}"] for i in range(n)])

    def send(self, task, relay, csv, *extra):
        return blast.send(task, self.tpl, relay, csv, "--quota-store", self.dir / "quota.db",
                          *extra, timeout=60)

    def test_jsonl_objects_once_a_second_monotonic_and_final_equals_status(self):
        task = self.dir / "j.db"
        # 40 recipients at 10/s: about 4 s, so 3 or 4 objects and the final one.
        with blast.BlastSink("--reject-rcpt", "0.1", "--defer-rcpt", "0.1", "--seed", "7",
                             record=False) as sink:
            p = self.send(task, sink.hostport, self.csv(40), "--rate", "10/s", "--max-attempts",
                          "1", "--progress", "jsonl", "--json")
        self.assertIn(p.returncode, (0, 1), blast.describe(p))
        objs = progress_objects(p.stderr)
        self.assertGreaterEqual(len(objs), 3, p.stderr)
        for o in objs:
            self.assertEqual(list(o)[:len(FIELDS)], list(FIELDS), o)
        self.assertEqual([o.get("final", False) for o in objs], [False] * (len(objs) - 1) + [True])
        ticks = [o["seconds"] for o in objs[:-1]]
        for a, b in zip(ticks, ticks[1:]):
            self.assertTrue(0.5 <= b - a <= 2.0, f"not about once a second: {ticks}")
        self.assertLess(ticks[0], 2.0, ticks)
        for a, b in zip(objs, objs[1:]):
            for k in ("seconds", "sent", "failed", "attempts"):
                self.assertLessEqual(a[k], b[k], (k, a, b))
            self.assertGreaterEqual(a["left"], b["left"], (a, b))
        last = objs[-1]
        st = blast.status(task)
        self.assertEqual((last["sent"], last["failed"], last["deferred"]),
                         (st["sent"], st["failed"], st["deferred"]), (last, st))
        self.assertEqual(last["left"], st["deferred"] + st["unsent"], (last, st))
        self.assertGreater(last["failed"] + last["deferred"], 0, "the sink's faults showed")
        # The --json summary on stdout says the same.
        run = json.loads(p.stdout.strip().splitlines()[-1])["run"]
        self.assertEqual((run["recipients_sent"], run["recipients_failed"],
                          run["recipients_deferred"], run["attempts"], run["seconds"],
                          run["msgs_per_s"]),
                         (last["sent"], last["failed"], last["deferred"], last["attempts"],
                          last["seconds"], last["msgs_per_s"]))

    def test_bar_plain_and_none_without_a_terminal(self):
        with blast.BlastSink(record=False) as sink:
            bar = self.send(self.dir / "b.db", sink.hostport, self.csv(20, "b"), "--progress",
                            "bar")
            none = self.send(self.dir / "n.db", sink.hostport, self.csv(20, "n"), "--progress",
                             "none")
        self.assertEqual(bar.returncode, 0, blast.describe(bar))
        self.assertNotIn("\r", bar.stderr)
        self.assertNotIn("\x1b", bar.stderr)
        lines = [ln for ln in bar.stderr.splitlines() if ln.startswith("[")]
        self.assertEqual(len(lines), 1, bar.stderr)  # the final bar, as a whole line
        self.assertRegex(lines[0], r"^\[#+\] 100% sent 20 failed 0 deferred 0 left 0 ")
        self.assertEqual(none.returncode, 0, blast.describe(none))
        self.assertFalse([ln for ln in none.stderr.splitlines()
                          if ln.startswith(("[", "{", "progress:"))], none.stderr)

    def test_bad_value_is_exit_2(self):
        p = self.send(self.dir / "x.db", "127.0.0.1:1", self.csv(2, "x"), "--progress", "json")
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("--progress: 'json' is not one of auto, bar, plain, jsonl, none", p.stderr)
        self.assertFalse((self.dir / "x.db").exists(), "nothing was started")
        # The same from a config file names the file and the key.
        cfg = self.dir / "c.toml"
        cfg.write_text('[send]\nprogress = "sometimes"\n')
        p = self.send(self.dir / "x.db", "127.0.0.1:1", self.csv(2, "x"), "--config", cfg)
        self.assertEqual(p.returncode, 2, blast.describe(p))
        self.assertIn("'sometimes' is not one of", p.stderr)


if __name__ == "__main__":
    blast.main("test_progress")
