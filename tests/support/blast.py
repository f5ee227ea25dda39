"""Running smtpblast in the integration tests: its binary, `send`, `status`, the task's rows,
and the unittest runner every test file ends with.

Standard library only; run with /usr/bin/python3. Env:
    SMTPBLAST             the smtpblast binary (default: build/bin/smtpblast in the repo)
    SMTPBLAST_SOURCE_DIR  the repo root (default: two levels up from this file)

    BIN                    path of the smtpblast binary
    write_csv(path, header, rows)
    send(task, template, relay, recipients=None, *extra) -> finished procs.Process
    describe(p)            a finished Process as text for an assertion message
    status(task)           `smtpblast status --json` as a dict
    db_rows(task)          {email: {status, code, reply, attempts, rejected}} from SQLite
    task_dump(task)        the task file (and -wal, -journal) as text, to look for secrets
    secret_forms(*s)       a secret and the encodings it would cross the wire in
    main(name)             unittest runner: prints a summary line, exits non-zero on failure
Re-exported for the tests' `blast.X` spelling: Workdir (support.workdir), BlastSink,
parse_record, Recorded (support.sinks), ThreadServer, ScriptedServer (support.scripted).

Importing this module gives the test process a private $XDG_STATE_HOME (support.workdir).
"""

from __future__ import annotations

import base64
import csv
import json
import os
import sqlite3
import sys
import time
import unittest
from pathlib import Path

from support import procs
from support.procs import SOURCE_DIR  # noqa: F401  (re-exported)
from support.scripted import ScriptedServer, ThreadServer  # noqa: F401  (re-exported)
from support.sinks import BlastSink, Recorded, parse_record  # noqa: F401  (re-exported)
from support.workdir import Workdir, private_state_home  # noqa: F401  (re-exported)

BIN = os.environ.get("SMTPBLAST") or str(SOURCE_DIR / "build" / "bin" / "smtpblast")

private_state_home()

STATUS_NAMES = {0: "unsent", 1: "sent", 2: "deferred", 3: "failed", 4: "suppressed",
                5: "in_flight", 6: "bounced", 7: "complained"}
STATUS_KEYS = ("total", "unsent", "sent", "deferred", "failed", "suppressed", "in_flight",
               "by_code")

# Stopped by the relay (credentials, TLS): exit code 5 (README "Exit codes").
FATAL_RC = 5


def write_csv(path, header, rows) -> Path:
    """An RFC 4180 CSV (UTF-8, CRLF rows, fields quoted when needed)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        for r in rows:
            w.writerow(r)
    return path


def send(task, template, relay, recipients=None, *extra, timeout=120.0) -> procs.Process:
    """Runs `smtpblast send` to completion; returns the finished Process (returncode,
    stdout, stderr, elapsed)."""
    args = [BIN, "send", "--task", str(task), "--template", str(template)]
    if relay is not None:
        args += ["--relay", str(relay)]
    if recipients is not None:
        args += ["--recipients", str(recipients)]
    extra = [str(a) for a in extra]
    # The test sinks speak plain SMTP; smtpblast requires STARTTLS unless told otherwise.
    if "--tls" not in extra:
        extra = ["--tls", "none", *extra]
    args += extra
    return procs.run(args, timeout=timeout)


def describe(p: procs.Process) -> str:
    return f"{' '.join(p.args)}\nrc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def status(task) -> dict:
    p = procs.run([BIN, "status", "--task", str(task), "--json"], timeout=30)
    if p.returncode != 0:
        raise AssertionError("status failed:\n" + describe(p))
    return json.loads(p.stdout)


def wait_for_sent(task, n=1, timeout=60.0) -> dict:
    """Polls `status` of a task being sent until it shows at least n recipients sent: a test
    that signals a run waits for this instead of a fixed sleep, which a sanitizer build on a
    loaded machine can spend entirely on start-up and import."""
    deadline = time.monotonic() + timeout
    while True:
        p = procs.run([BIN, "status", "--task", str(task), "--json"], timeout=30)
        if p.returncode == 0:
            st = json.loads(p.stdout)
            if st.get("sent", 0) >= n:
                return st
        if time.monotonic() > deadline:
            raise AssertionError(f"{task}: fewer than {n} sent after {timeout} s:\n"
                                 + describe(p))
        time.sleep(0.05)


def db_rows(task) -> dict:
    """{email: {"id", "status" (name), "code", "reply", "attempts", "rejected"}} read
    directly from the task's SQLite file."""
    con = sqlite3.connect(f"file:{task}?mode=ro", uri=True, timeout=10)
    try:
        out = {}
        for rid, email, st, attempts, code, reply, rejected in con.execute(
                "SELECT id, email, status, attempts, code, reply, rejected FROM recipients "
                "ORDER BY id"):
            out[email] = {"id": rid, "status": STATUS_NAMES.get(st, str(st)), "code": code,
                          "reply": reply, "attempts": attempts, "rejected": rejected}
        return out
    finally:
        con.close()


def secret_forms(*secrets, user="blastuser") -> list[str]:
    """The secrets and the encodings under which they would cross the wire."""
    out = []
    for s in secrets:
        out += [s,
                base64.b64encode(s.encode()).decode(),
                base64.b64encode(f"\0{user}\0{s}".encode()).decode(),
                base64.b64encode(f"user={user}\x01auth=Bearer {s}\x01\x01".encode()).decode()]
    return out


def task_dump(task) -> str:
    """The task file as `sqlite3 .dump` text, plus the raw bytes of the file and its
    -wal/-journal companions (decoded leniently), so a secret anywhere in them is found."""
    parts = []
    if os.path.exists(task):
        con = sqlite3.connect(f"file:{task}?mode=ro", uri=True, timeout=10)
        try:
            parts.append("\n".join(con.iterdump()))
        finally:
            con.close()
    for suffix in ("", "-wal", "-journal", "-shm"):
        p = f"{task}{suffix}"
        if os.path.exists(p):
            with open(p, "rb") as f:
                parts.append(f.read().decode("latin-1"))
    return "\n".join(parts)


def check_environment():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"smtpblast binary {BIN} missing: set SMTPBLAST or build it")
    if os.geteuid() != 0:
        sys.exit("the Postfix fixtures need root (private instance, smtp-sink -u)")


def main(name: str):
    print(f"{name}: SMTPBLAST={BIN} SMTPBLAST_SOURCE_DIR={SOURCE_DIR}", flush=True)
    check_environment()
    t0 = time.monotonic()
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    failed = len(res.failures) + len(res.errors) + len(res.unexpectedSuccesses)
    passed = res.testsRun - failed - len(res.skipped)
    print(f"{name}: {passed} passed, {failed} failed, {len(res.skipped)} skipped "
          f"in {time.monotonic() - t0:.1f} s", flush=True)
    sys.exit(0 if res.wasSuccessful() else 1)
