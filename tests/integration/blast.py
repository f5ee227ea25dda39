"""Shared helpers for smtpblast's integration tests (test_*.py in this directory).

Standard library only; run with /usr/bin/python3. Env:
    SMTPBLAST             the smtpblast binary (default: build/bin/smtpblast in the repo)
    SMTPBLAST_SOURCE_DIR  the repo root (default: two levels up from this file)

    BIN                    path of the smtpblast binary
    Workdir                a temp dir, removed on exit (SMTPBLAST_KEEP_PEERS=1 keeps it)
    write_csv(path, header, rows)
    send(task, template, relay, recipients=None, *extra) -> finished peers.Process
    status(task)           `smtpblast status --json` as a dict
    db_rows(task)          {email: {status, code, reply, attempts, rejected}} from SQLite
    BlastSink              `smtpblast sink` in the background (record file, counters)
    parse_record(bytes)    the sink's --record format -> [Recorded(mail_from, rcpts, body)]
    ThreadServer           an in-process TCP server (a thread per connection) to subclass
    ScriptedServer         a tiny in-process TCP server with a fixed greeting (421 etc.)
    main()                 unittest runner: prints a summary line, exits non-zero on failure
"""

from __future__ import annotations

import atexit
import csv
import json
import os
import shutil
import socket
import sqlite3
import sys
import tempfile
import threading
import time
import unittest
from dataclasses import dataclass, field
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("SMTPBLAST_SOURCE_DIR")
                  or Path(__file__).resolve().parent.parent.parent)
sys.path.insert(0, str(SOURCE_DIR / "tools"))

import peers  # noqa: E402

BIN = os.environ.get("SMTPBLAST") or str(SOURCE_DIR / "build" / "bin" / "smtpblast")

# --daily-limit also counts per sending account in a quota store under $XDG_STATE_HOME
# (README): every test process gets a fresh one, so tests neither share counts with each
# other's runs nor touch the user's own.
_STATE_HOME = tempfile.mkdtemp(prefix="sb-integ-state-")
os.environ["XDG_STATE_HOME"] = _STATE_HOME
atexit.register(shutil.rmtree, _STATE_HOME, True)

STATUS_NAMES = {0: "unsent", 1: "sent", 2: "deferred", 3: "failed", 4: "suppressed",
                5: "in_flight", 6: "bounced", 7: "complained"}
STATUS_KEYS = ("total", "unsent", "sent", "deferred", "failed", "suppressed", "in_flight",
               "by_code")


class Workdir:
    """A fresh temp dir (Path in .path), removed at exit unless SMTPBLAST_KEEP_PEERS=1."""

    def __init__(self, prefix="sb-integ-"):
        self.path = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.path, 0o755)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def cleanup(self):
        if os.environ.get("SMTPBLAST_KEEP_PEERS") == "1":
            print(f"kept {self.path}", file=sys.stderr)
            return
        shutil.rmtree(self.path, ignore_errors=True)


def write_csv(path, header, rows) -> Path:
    """An RFC 4180 CSV (UTF-8, CRLF rows, fields quoted when needed)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        for r in rows:
            w.writerow(r)
    return path


def send(task, template, relay, recipients=None, *extra, timeout=120.0) -> peers.Process:
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
    return peers.run(args, timeout=timeout)


def describe(p: peers.Process) -> str:
    return f"{' '.join(p.args)}\nrc={p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"


def status(task) -> dict:
    p = peers.run([BIN, "status", "--task", str(task), "--json"], timeout=30)
    if p.returncode != 0:
        raise AssertionError("status failed:\n" + describe(p))
    return json.loads(p.stdout)


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


@dataclass
class Recorded:
    mail_from: str
    rcpts: list = field(default_factory=list)
    body: bytes = b""


def parse_record(data: bytes) -> list:
    """Parses the sink's --record file (see src/smtp/sink_engine.h):
        MAIL <path>\\n  RCPT <path>\\n ...  BODY <n>\\n <n octets> \\n"""
    msgs = []
    pos = 0
    n = len(data)
    while pos < n:
        eol = data.index(b"\n", pos)
        line = data[pos:eol]
        if not line.startswith(b"MAIL "):
            raise ValueError(f"record: expected MAIL at {pos}: {line[:80]!r}")
        m = Recorded(line[5:].decode("utf-8", "surrogateescape"))
        pos = eol + 1
        while True:
            eol = data.index(b"\n", pos)
            line = data[pos:eol]
            pos = eol + 1
            if line.startswith(b"RCPT "):
                m.rcpts.append(line[5:].decode("utf-8", "surrogateescape"))
            elif line.startswith(b"BODY "):
                size = int(line[5:])
                m.body = data[pos:pos + size]
                if len(m.body) != size or data[pos + size:pos + size + 1] != b"\n":
                    raise ValueError(f"record: truncated body at {pos}")
                pos += size + 1
                break
            else:
                raise ValueError(f"record: unexpected line at {pos}: {line[:80]!r}")
        msgs.append(m)
    return msgs


class BlastSink:
    """`smtpblast sink` on 127.0.0.1 and a free port, with --record into its own file.

        with BlastSink("--reject-rcpt", "0.1") as sink:
            ... sink.hostport ...
        sink.counters   # the JSON it printed at SIGTERM (after the with block)
        sink.records()  # parsed record file (available after stop too)
    """

    def __init__(self, *args, record=True):
        self.args = [str(a) for a in args]
        self.port = peers.free_port("127.0.0.1")
        self.dir = Workdir("sb-blast-sink-")
        self.record_path = self.dir.path / "record" if record else None
        self.proc: peers.Process | None = None
        self.counters: dict | None = None
        self._record_bytes: bytes | None = None

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        cmd = [BIN, "sink", "--listen", self.hostport, *self.args]
        if self.record_path:
            cmd += ["--record", str(self.record_path)]
        self.proc = peers.Process(cmd, timeout=600, name="smtpblast-sink")
        self.proc.start()
        try:
            peers.wait_port("127.0.0.1", self.port, timeout=10, banner=True,
                            alive=lambda: self.proc.poll() is None)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.proc is None:
            return
        try:
            self.proc.stop()  # SIGTERM: the sink prints its counters and exits
        finally:
            out = self.proc.stdout
            self.counters = None
            for line in reversed(out.strip().splitlines()):
                line = line.strip()
                if line.startswith("{"):
                    try:
                        self.counters = json.loads(line)
                        break
                    except ValueError:
                        pass
            if self.record_path and self.record_path.exists():
                self._record_bytes = self.record_path.read_bytes()
            elif self._record_bytes is None:
                self._record_bytes = b""
            self.proc = None
            self.dir.cleanup()

    def record_bytes(self) -> bytes:
        if self._record_bytes is not None:
            return self._record_bytes
        if self.record_path and self.record_path.exists():
            return self.record_path.read_bytes()
        return b""

    def records(self) -> list:
        return parse_record(self.record_bytes())

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class ThreadServer:
    """A TCP server in this process on HOST:PORT (loopback): each connection goes to
    handle(sock) in a thread of its own; the socket is closed after it returns. start() /
    close(), or use it as a context manager. `connections` counts accepted connections."""

    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or peers.free_port(host)
        self.connections = 0
        self._sock = None
        self._thread = None
        self._stop = threading.Event()

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def _serve(self):
        while not self._stop.is_set():
            try:
                c, _ = self._sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._guarded, args=(c,), daemon=True).start()

    def _guarded(self, c):
        with c:
            try:
                self.handle(c)
            except OSError:
                pass

    def handle(self, c):  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self):
        self._stop.set()
        try:
            if self._sock:
                self._sock.close()
        finally:
            if self._thread:
                self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False


class ScriptedServer(ThreadServer):
    """A minimal TCP server in this process (a thread) on 127.0.0.1: sends `greeting`
    to every connection, then answers every command line with `reply` (None: close right
    after the greeting). Counts connections and keeps the lines it received."""

    def __init__(self, greeting: bytes, reply: bytes | None = None):
        super().__init__("127.0.0.1")
        self.greeting = greeting
        self.reply = reply
        self.lines: list = []

    def handle(self, c):
        c.settimeout(5)
        c.sendall(self.greeting)
        if self.reply is None:
            return
        buf = b""
        while not self._stop.is_set():
            data = c.recv(4096)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                self.lines.append(line)
                c.sendall(self.reply)


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
