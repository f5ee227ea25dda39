"""The sinks the integration tests and benchmarks send into, with one interface: start() /
stop() or a with block, `hostport`, `pid`, `command()`; make_sink(kind) picks one by name.
SmtpSink and AiosmtpdServer also wait_for(n) messages; BlastSink has its counters and record
after stop().

    BlastSink        `smtpblast sink` (fault options, --record file: records(), counters)
    SmtpSink         Postfix's smtp-sink (fast; counters; -d dumps)
    AiosmtpdServer   tools/aiosmtpd_server.py (Debian's python3-aiosmtpd: AUTH, STARTTLS)
    parse_record(b)  the --record format of `smtpblast sink` -> [Recorded]

Standard library only; run with /usr/bin/python3.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support.procs import (SOURCE_DIR, Fixture, PeerError, Process, free_port, smtpblast_binary,
                           stop_pid, wait_port)
from support.procs import (check_loopback as _check_loopback, hostport as _hostport,
                           register as _register, tail as _tail, unregister as _unregister,
                           user_ids as _user_ids)
from support.workdir import Workdir

PYTHON = "/usr/bin/python3"
SMTP_SINK = shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-sink"


_COUNTER_RE = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class SmtpSink(Fixture):
    """Postfix's smtp-sink on a loopback address and a free port.

    PIPELINING is announced (smtp-sink's default; pipelining=False adds -p). With
    counters=True (-c) it writes "sess=N quit=N mesg=N" after every session end, QUIT
    and "."; counters() reads the latest from its stdout file. dump_dir=True (a dir
    inside the sink's temp dir) or a PATH (-d PATH/) writes each transaction to its own
    file (slow: for correctness tests only); dumps() returns them. smtp-sink writes them
    as `user`, so a PATH and its parents must be reachable by that user. It runs as root
    only long enough to bind, then as `user`
    (-u, required as root). `args` adds raw smtp-sink options (faults: -Q, -r, -f, …).
    """

    def __init__(self, address="127.0.0.1", port=None, pipelining=True, counters=True,
                 dump_dir=None, backlog=256, max_conns=None, user="nobody",
                 hostname=None, args=(), keep=None):
        self.address = _check_loopback(address)
        self.port = port or free_port(self.address)
        self.pipelining = pipelining
        self.counters_enabled = counters
        self.backlog = backlog
        self.max_conns = max_conns
        self.user = user
        self.hostname = hostname
        self.args = list(args)
        self.keep = keep if keep is not None else os.environ.get("SMTPBLAST_KEEP_PEERS") == "1"
        self.dir = Path(tempfile.mkdtemp(prefix="sb-smtp-sink-"))
        os.chmod(self.dir, 0o755)
        if dump_dir is True:
            self.dump_dir = self.dir / "dump"
        else:
            self.dump_dir = Path(dump_dir) if dump_dir else None
        self.out_path = self.dir / "stdout"
        self.proc: subprocess.Popen | None = None

    def __repr__(self):
        return f"SmtpSink({self.hostport}, pid={self.pid})"

    @property
    def hostport(self) -> str:
        return _hostport(self.address, self.port)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [SMTP_SINK]
        if self.counters_enabled:
            cmd.append("-c")
        if not self.pipelining:
            cmd.append("-p")
        if os.geteuid() == 0:
            cmd += ["-u", self.user]
        if self.dump_dir:
            cmd += ["-d", str(self.dump_dir) + "/"]
        if self.max_conns:
            cmd += ["-m", str(self.max_conns)]
        if self.hostname:
            cmd += ["-h", self.hostname]
        cmd += ["-6" if ":" in self.address else "-4"]
        cmd += self.args
        cmd += [_hostport(self.address, self.port), str(self.backlog)]
        return cmd

    def start(self):
        if self.proc:
            return self
        _register(self)
        try:
            if self.dump_dir:
                self.dump_dir.mkdir(parents=True, exist_ok=True)
                if os.geteuid() == 0:
                    uid, gid = _user_ids(self.user, "nogroup")
                    os.chown(self.dump_dir, uid, gid)
            self._out = open(self.out_path, "wb")
            self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL,
                                         stdout=self._out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            wait_port(self.address, self.port, timeout=10, banner=True,
                      alive=lambda: self.proc.poll() is None)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        try:
            if self.proc:
                stop_pid(self.proc.pid, timeout=5, popen=self.proc)
        finally:
            if getattr(self, "_out", None):
                self._out.close()
                self._out = None
            _unregister(self)
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def output(self) -> bytes:
        try:
            return self.out_path.read_bytes()
        except OSError:
            return b""

    def counters(self) -> dict:
        """Latest counters {"sess", "quit", "mesg"} (all 0 before the first event).
        The probe connection made at start counts as one session."""
        last = None
        for m in _COUNTER_RE.finditer(self.output()):
            last = m
        if not last:
            return {"sess": 0, "quit": 0, "mesg": 0}
        return {"sess": int(last[1]), "quit": int(last[2]), "mesg": int(last[3])}

    def wait_for(self, n: int, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            got = self.counters()["mesg"]
            if got >= n:
                return got
            if time.monotonic() >= deadline:
                raise PeerError(f"{self}: {got} of {n} messages after {timeout}s")
            time.sleep(0.05)

    def dumps(self) -> list[bytes]:
        if not self.dump_dir or not self.dump_dir.exists():
            return []
        files = [p for p in self.dump_dir.rglob("*") if p.is_file()]

        return [p.read_bytes() for p in files]


# ---------------------------------------------------------------------------------------
# aiosmtpd

class AiosmtpdServer(Fixture):
    """tools/aiosmtpd_server.py in a subprocess (Debian's python3-aiosmtpd).

    Stores each message as NNNNNN.eml (the DATA content, CRLF as received) plus
    NNNNNN.json (envelope: mail_from, rcpt_tos, peer, helo) in `maildir` (default: a
    temp dir). Options pass through to the script: tls_cert/tls_key (+ starttls=True,
    require_starttls, or implicit_tls=True), auth={"user": "password"} (AUTH
    PLAIN/LOGIN), auth_require_tls (False: AUTH offered without TLS too); extra_args
    go to the script verbatim (e.g. ["--rcpt-reply", "x@example.test=550 5.1.1 no"]).
    """

    SCRIPT = SOURCE_DIR / "tools" / "aiosmtpd_server.py"

    def __init__(self, address="127.0.0.1", port=None, maildir=None, tls_cert=None,
                 tls_key=None, starttls=None, require_starttls=False, auth=None,
                 auth_require_tls=True, implicit_tls=False, hostname=None, extra_args=(),
                 keep=None):
        self.address = _check_loopback(address)
        self.port = port or free_port(self.address)
        self.keep = keep if keep is not None else os.environ.get("SMTPBLAST_KEEP_PEERS") == "1"
        self.dir = Path(tempfile.mkdtemp(prefix="sb-aiosmtpd-"))
        self.maildir = Path(maildir) if maildir else self.dir / "mail"
        self.log_path = self.dir / "server.log"
        self.tls_cert, self.tls_key = tls_cert, tls_key
        self.starttls = bool(tls_cert) if starttls is None else starttls
        self.require_starttls = require_starttls
        self.auth = dict(auth or {})
        self.auth_require_tls = auth_require_tls
        self.implicit_tls = implicit_tls
        if implicit_tls and not tls_cert:
            raise ValueError("implicit_tls needs tls_cert and tls_key")
        self.hostname = hostname
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen | None = None

    def __repr__(self):
        return f"AiosmtpdServer({self.hostport}, pid={self.pid})"

    @property
    def hostport(self) -> str:
        return _hostport(self.address, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        if self.proc:
            return self
        _register(self)
        try:
            self.maildir.mkdir(parents=True, exist_ok=True)
            cmd = [PYTHON, str(self.SCRIPT), "--host", self.address, "--port", str(self.port),
                   "--maildir", str(self.maildir)]
            if self.tls_cert:
                cmd += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
                if self.starttls:
                    cmd.append("--starttls")
                if self.require_starttls:
                    cmd.append("--require-starttls")
                if self.implicit_tls:
                    cmd.append("--implicit-tls")
            if self.auth:
                authfile = self.dir / "auth"
                authfile.write_text("".join(f"{u}:{p}\n" for u, p in self.auth.items()))
                os.chmod(authfile, 0o600)
                cmd += ["--auth-file", str(authfile)]
                if not self.auth_require_tls:
                    cmd.append("--auth-allow-plaintext")
            if self.hostname:
                cmd += ["--hostname", self.hostname]
            cmd += self.extra_args
            self._log = open(self.log_path, "wb")
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            wait_port(self.address, self.port, timeout=20, banner=not self.implicit_tls,
                      alive=lambda: self.proc.poll() is None)
        except BaseException as e:
            log = _tail(self.log_path)
            self.stop()
            if isinstance(e, PeerError):
                raise PeerError(f"{e}\n{log}") from None
            raise
        return self

    def stop(self):
        try:
            if self.proc:
                stop_pid(self.proc.pid, timeout=5, popen=self.proc)
        finally:
            if getattr(self, "_log", None):
                self._log.close()
                self._log = None
            _unregister(self)
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        return _tail(self.log_path, 1 << 20)

    def messages(self) -> list[bytes]:
        return [p.read_bytes() for p in sorted(self.maildir.glob("*.eml"))]

    def envelopes(self) -> list[dict]:
        import json
        return [json.loads(p.read_text()) for p in sorted(self.maildir.glob("*.json"))]

    def wait_for(self, n: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while True:
            got = len(list(self.maildir.glob("*.json")))
            if got >= n:
                return self.messages()
            if time.monotonic() >= deadline:
                raise PeerError(f"{self}: {got} of {n} messages after {timeout}s\n{self.log()}")
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# `smtpblast sink`

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


class BlastSink(Fixture):
    """`smtpblast sink` on `address` (127.0.0.1) and a free port, with --record into its own
    file unless record=False (the benchmarks measure it without).

        with BlastSink("--reject-rcpt", "0.1") as sink:
            ... sink.hostport ...
        sink.counters   # the JSON it printed at SIGTERM (after the with block)
        sink.records()  # parsed record file (available after stop too)
        sink.output()   # its stdout and stderr (also after stop)
    """

    def __init__(self, *args, record=True, binary=None, address="127.0.0.1", port=None,
                 timeout=600):
        self.args = [str(a) for a in args]
        self.binary = binary or smtpblast_binary() or str(SOURCE_DIR / "build" / "bin" /
                                                          "smtpblast")
        self.address = _check_loopback(address)
        self.port = port or free_port(self.address)
        self.timeout = timeout
        self.dir = Workdir("sb-blast-sink-")
        self.record_path = self.dir.path / "record" if record else None
        self.proc: Process | None = None
        self.counters: dict | None = None
        self._record_bytes: bytes | None = None
        self._output = ""
        self._pid = None

    def __repr__(self):
        return f"BlastSink({self.hostport}, pid={self.pid})"

    @property
    def hostport(self) -> str:
        return _hostport(self.address, self.port)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def command(self) -> list[str]:
        cmd = [self.binary, "sink", "--listen", self.hostport, *self.args]
        if self.record_path:
            cmd += ["--record", str(self.record_path)]
        return cmd

    def start(self):
        self.proc = Process(self.command(), timeout=self.timeout, name="smtpblast-sink")
        self.proc.start()
        try:
            wait_port(self.address, self.port, timeout=15, banner=True,
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
            self._output = out + self.proc.stderr
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

    def output(self) -> str:
        return (self.proc.stdout + self.proc.stderr) if self.proc else self._output

    def record_bytes(self) -> bytes:
        if self._record_bytes is not None:
            return self._record_bytes
        if self.record_path and self.record_path.exists():
            return self.record_path.read_bytes()
        return b""

    def records(self) -> list:
        return parse_record(self.record_bytes())


def make_sink(kind: str, binary=None, **kw):
    """A sink by name: "smtpblast" (BlastSink, no record file unless record=True),
    "smtp-sink" (SmtpSink, backlog 256) or "aiosmtpd" (AiosmtpdServer)."""
    if kind == "smtp-sink":
        return SmtpSink(**{"backlog": 256, **kw})
    if kind == "aiosmtpd":
        return AiosmtpdServer(**kw)
    if kind == "smtpblast":
        return BlastSink(binary=binary, **{"record": False, **kw})
    raise ValueError(f"unknown sink {kind!r}")
