"""SMS peers for the integration tests and benchmarks: an SMSC simulator (the npm `smpp`
package's server, scripted by tests/support/smsc_sim.js) and a small HTTP SMS provider stub.

    Smsc(**script)         the SMPP simulator on 127.0.0.1, a free port (.port); script keys as
                           smsc_sim.js documents them (throttle_every, reject, drop_after,
                           receipts, receipt_stat, stop_from, system_id, password, ...)
        .submitted()       every answered submit_sm, in order (dicts: to, from, text, status,
                           id, udh, dc, conn, seq)
        .accepted()        those answered ESME_ROK
        .messages()        accepted parts joined per message: {to: [text, ...]} (a
                           concatenated message's parts in part order)
        .events(kind)      bind / unbind / drop records
        .wait_accepted(n)  until n submit_sm were accepted (or PeerError)
        .deliver(**pdu)    a deliver_sm now (receipt or reply; fields as the npm smpp package
                           names them), or as soon as a transceiver/receiver is bound
        receipt_pdu(id, stat, ...) / stop_pdu(frm, text)   such deliver_sm dicts
        tls_cert=, tls_key=  script keys: the simulator speaks implicit TLS
    HttpSmsStub(shape=..)  an http.server provider on 127.0.0.1 (.url): records each request
                           (.requests(): method, path, headers, body, form/json) and answers as
                           `shape` says: "json" (generic: {"id": "h1", "status": "ok"}),
                           "twilio" (201, {"sid": "SM…"}), "vonage" ({"messages": [{"status":
                           "0", "message-id": …}]}); fail_to={"+…": (status, body)} for errors
    node_available()       node and the smpp package are installed (tools/bootstrap.sh)

Standard library only; run with Debian's interpreter, /usr/bin/python3.
"""

from __future__ import annotations

import base64
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from . import procs
from .procs import Fixture, PeerError

SIM_JS = Path(__file__).resolve().parent / "smsc_sim.js"
NODE_MODULES = Path(__file__).resolve().parent / "node_modules"


def node_available() -> bool:
    return shutil.which("node") is not None and (NODE_MODULES / "smpp").is_dir()


class Smsc(Fixture):
    """The scripted SMSC simulator (see the module doc and smsc_sim.js)."""

    def __init__(self, host: str = "127.0.0.1", **script):
        procs.check_loopback(host)
        self.host = host
        self.port: int | None = None
        self.script = dict(script)
        self.dir = Path(tempfile.mkdtemp(prefix="sb-smsc-"))
        self.log_path = self.dir / "submitted.jsonl"
        self.control_path = self.dir / "control.jsonl"
        self.proc: subprocess.Popen | None = None
        self._out = None

    def __repr__(self):
        return f"Smsc({self.host}:{self.port}, pid={self.proc.pid if self.proc else None})"

    @property
    def hostport(self) -> str:
        return procs.hostport(self.host, self.port)

    def start(self):
        if self.proc:
            return self
        if not node_available():
            raise PeerError("smsc: node or the npm smpp package is missing "
                            "(tools/bootstrap.sh installs them into tests/support/node_modules)")
        script = {**self.script, "host": self.host, "port": 0, "log": str(self.log_path),
                  "control": str(self.control_path)}
        (self.dir / "script.json").write_text(json.dumps(script))
        procs.register(self)
        self._out = open(self.dir / "stdout", "w+b")
        self._err = open(self.dir / "stderr", "w+b")
        self.proc = subprocess.Popen(["node", str(SIM_JS), str(self.dir / "script.json")],
                                     stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err, start_new_session=True)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            out = (self.dir / "stdout").read_text(errors="replace")
            if out.startswith("LISTENING "):
                self.port = int(out.split()[1])
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        err = procs.tail(self.dir / "stderr")
        self.stop()
        raise PeerError(f"smsc simulator did not start:\n{err}")

    def stop(self):
        try:
            if self.proc and self.proc.poll() is None:
                procs.stop_pid(self.proc.pid, popen=self.proc)
        finally:
            for f in ("_out", "_err"):
                fh = getattr(self, f, None)
                if fh:
                    fh.close()
                    setattr(self, f, None)
            procs.unregister(self)

    def cleanup(self):
        self.stop()
        if os.environ.get("SMTPBLAST_KEEP_PEERS") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def _records(self) -> list[dict]:
        try:
            text = self.log_path.read_text()
        except OSError:
            return []
        out = []
        for line in text.splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:  # a line being written
                    pass
        return out

    def submitted(self) -> list[dict]:
        return [r for r in self._records() if "event" not in r]

    def accepted(self) -> list[dict]:
        return [r for r in self.submitted() if r["status"] == 0]

    def events(self, kind: str | None = None) -> list[dict]:
        return [r for r in self._records() if "event" in r and (kind is None or r["event"] == kind)]

    def messages(self) -> dict[str, list[str]]:
        """Accepted submits joined per message: {to: [text, ...]}; concatenated parts (a UDH
        with reference, total, part) are put together in part order."""
        out: dict[str, list[str]] = {}
        parts: dict[tuple, dict[int, str]] = {}
        for r in self.accepted():
            if r.get("udh"):
                ref, total, part = r["udh"]
                got = parts.setdefault((r["to"], ref, total), {})
                got[part] = r["text"]
                if len(got) == total:
                    out.setdefault(r["to"], []).append("".join(got[i] for i in sorted(got)))
                    del parts[(r["to"], ref, total)]
            else:
                out.setdefault(r["to"], []).append(r["text"])
        return out

    def deliver(self, **pdu):
        """Queues a deliver_sm (see receipt_pdu, stop_pdu) through the control file."""
        with open(self.control_path, "a") as f:
            f.write(json.dumps(pdu) + "\n")

    def wait_accepted(self, n: int, timeout: float = 30.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.accepted()
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                raise PeerError(f"smsc: {len(got)} of {n} messages accepted after {timeout}s")
            time.sleep(0.05)


def provider_conf(path: Path, port: int, password_file, extra: str = "") -> Path:
    """A providers.toml (mode 0600) naming the simulator on PORT as provider "sim": SMPP,
    system_id "sb", sender "Shop", country GB, plus EXTRA lines (window = N, …)."""
    path.write_text(f"""
[provider.sim]
type = "smpp"
host = "127.0.0.1"
port = {port}
system_id = "sb"
password_file = "{password_file}"
from = "Shop"
country = "GB"
{extra}
""")
    os.chmod(path, 0o600)
    return path


def receipt_pdu(msg_id: str, stat: str = "DELIVRD", to: str = "447911123456", err: str = "000",
                text: str | None = None, **tlvs) -> dict:
    """A delivery receipt deliver_sm (esm_class 0x04) in SMPP 3.4 Appendix B's text format, or
    with `text` as given; tlvs (receipted_message_id=, message_state=) are added as TLVs."""
    if text is None:
        text = (f"id:{msg_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
                f"submit date:2612031200 done date:2612031201 stat:{stat} err:{err} text:")
    return {"source_addr": to, "esm_class": 4, "short_message": text, **tlvs}


def stop_pdu(frm: str, text: str = "STOP") -> dict:
    """A mobile-originated deliver_sm (a reply from a phone)."""
    return {"source_addr": frm, "esm_class": 0, "short_message": text}


# ---------------------------------------------------------------------------------------
# HTTP SMS provider stub

class _StubHandler(http.server.BaseHTTPRequestHandler):
    server_version = "sms-stub/1"

    def log_message(self, *args):  # quiet
        pass

    def _handle(self):
        stub: HttpSmsStub = self.server.stub  # type: ignore[attr-defined]
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        ctype = self.headers.get("Content-Type", "")
        rec = {"method": self.command, "path": self.path, "headers": dict(self.headers),
               "body": body.decode("utf-8", "replace")}
        fields: dict = {}
        if "json" in ctype:
            try:
                fields = json.loads(body or b"{}")
            except ValueError:
                fields = {}
            rec["json"] = fields
        else:
            fields = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace"),
                                                                  keep_blank_values=True).items()}
            rec["form"] = fields
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Basic "):
            rec["basic"] = base64.b64decode(auth[6:]).decode("utf-8", "replace")
        elif auth.startswith("Bearer "):
            rec["bearer"] = auth[7:]
        to = fields.get("to") or fields.get("To") or fields.get("recipient") or ""
        if isinstance(to, list):
            to = to[0] if to else ""
        status, reply = stub.answer(str(to), rec)
        with stub.lock:
            stub._requests.append(rec)
        data = json.dumps(reply).encode() if not isinstance(reply, bytes) else reply
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_POST = _handle
    do_PUT = _handle
    do_GET = _handle


class HttpSmsStub(Fixture):
    """An HTTP SMS API on 127.0.0.1 (see the module doc)."""

    def __init__(self, shape: str = "json", fail_to: dict | None = None, token: str | None = None,
                 basic: str | None = None, host: str = "127.0.0.1"):
        procs.check_loopback(host)
        self.host = host
        self.shape = shape
        self.fail_to = dict(fail_to or {})
        self.token = token  # a bearer token the stub insists on (401 otherwise)
        self.basic = basic  # "user:password" the stub insists on
        self.lock = threading.Lock()
        self._requests: list[dict] = []
        self._n = 0
        self.httpd: http.server.ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{procs.hostport(self.host, self.httpd.server_address[1])}"

    def requests(self) -> list[dict]:
        with self.lock:
            return list(self._requests)

    def answer(self, to: str, rec: dict) -> tuple[int, object]:
        if self.token is not None and rec.get("bearer") != self.token:
            return 401, {"error": "bad token"}
        if self.basic is not None and rec.get("basic") != self.basic:
            return 401, {"error": "bad credentials"}
        if to in self.fail_to:
            return self.fail_to[to]
        with self.lock:
            self._n += 1
            n = self._n
        if self.shape == "twilio":
            return 201, {"sid": f"SM{n:032d}", "status": "queued", "to": to}
        if self.shape == "vonage":
            return 200, {"message-count": "1",
                         "messages": [{"to": to.lstrip("+"), "message-id": f"v{n}",
                                       "status": "0"}]}
        return 200, {"id": f"h{n}", "status": "ok"}

    def start(self):
        if self.httpd:
            return self
        self.httpd = http.server.ThreadingHTTPServer((self.host, 0), _StubHandler)
        self.httpd.stub = self  # type: ignore[attr-defined]
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        procs.register(self)
        return self

    def stop(self):
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        procs.unregister(self)
