"""TLS and AUTH for the integration tests (test_tls_auth.py, test_hostile_server.py, ...) and
bench/bench_tls.py: test certificates and TlsSmtp, a ScriptedSmtp that speaks STARTTLS,
implicit TLS, AUTH PLAIN, LOGIN and XOAUTH2.

Standard library only; run with /usr/bin/python3.

    make_certs(dir)                 tools/make_test_certs.sh DIR -> {name: Path}
    make_leaf(certs, name, san)     one more leaf signed by the test CA (e.g. DNS-only SAN)
    tls_server_context(cert, key, min_version=None, max_version=None, ciphers=None)
    TlsSmtp (alias ScriptedSmtp)    an in-process SMTP server (support.scripted.ScriptedSmtp)
                                    with STARTTLS / implicit TLS (ssl module), AUTH PLAIN,
                                    LOGIN and XOAUTH2, faults: STARTTLS reply injection,
                                    refusal, AUTH offered before TLS only, slow end-of-data
                                    replies. It records every command line and every AUTH
                                    attempt (in memory only), the TLS version of every
                                    connection, handshake errors, and every message.

Everything listens on 127.0.0.1 and a free port; the listening socket and every
connection thread end when the context manager exits.
"""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from support import scripted
from support.procs import SOURCE_DIR

CERT_SCRIPT = SOURCE_DIR / "tools" / "make_test_certs.sh"

# The XOAUTH2 error challenge of RFC 7628 style servers (Gmail): {"status":"401"}.
XOAUTH2_ERROR_CHALLENGE = b"eyJzdGF0dXMiOiI0MDEifQ=="


def make_certs(directory) -> dict:
    """Runs tools/make_test_certs.sh DIR; returns {"ca": Path(ca.pem), "server": ...,
    "server_key": ..., "expired", "expired_key", "wrong", "wrong_key", "other_ca",
    "unknown", "unknown_key", "server_chain", "ca_key"}."""
    d = Path(directory)
    subprocess.run(["bash", str(CERT_SCRIPT), str(d)], check=True, capture_output=True,
                   timeout=120)
    out = {}
    for name in ("ca", "server", "expired", "wrong", "other_ca", "unknown"):
        out[name] = d / f"{name}.pem"
        out[name + "_key"] = d / f"{name}.key"
    out["server_chain"] = d / "server_chain.pem"
    out["dir"] = d
    return out


def make_leaf(certs: dict, name: str, san: str, cn: str = "localhost") -> tuple[Path, Path]:
    """A leaf certificate NAME.pem/NAME.key in the certs dir, signed by the test CA, with
    subjectAltName `san` (e.g. "DNS:localhost" only, no IP)."""
    d = certs["dir"]
    key, csr, ext, pem = (d / f"{name}.key", d / f"{name}.csr", d / f"{name}.ext",
                          d / f"{name}.pem")
    run = lambda *a: subprocess.run(list(a), check=True, capture_output=True, timeout=60)
    run("openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
        "-out", str(key))
    run("openssl", "req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage=serverAuth\nsubjectAltName={san}\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(certs["ca"]), "-CAkey",
        str(d / "ca.key"), "-CAcreateserial", "-days", "30", "-sha256", "-extfile", str(ext),
        "-out", str(pem))
    return pem, key


def tls_server_context(cert, key, min_version=None, max_version=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1 is deprecated: on purpose
        if min_version is not None:
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    if ciphers:
        ctx.set_ciphers(ciphers)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


def tls10_only_context(cert, key):
    """A server context that speaks TLS 1.0 and nothing else (SECLEVEL=0 so that
    Debian's OpenSSL 3 agrees to it at all)."""
    return tls_server_context(cert, key, min_version=ssl.TLSVersion.TLSv1,
                              max_version=ssl.TLSVersion.TLSv1,
                              ciphers="DEFAULT:@SECLEVEL=0")


@dataclass
class AuthAttempt:
    conn: int
    mechanism: str
    user: str | None
    secret: str | None  # password or OAuth token as the server decoded it
    ok: bool
    tls: bool


@dataclass
class Message:
    conn: int
    mail_from: str
    rcpts: list
    data: bytes
    tls: bool
    auth_user: str | None


@dataclass
class Conn:
    id: int
    lines: list = field(default_factory=list)      # (tls: bool, line bytes without CRLF)
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_error: str | None = None
    sni: str | None = None
    after_starttls: bytes | None = None            # inject mode: bytes read after the reply
    plaintext_after_starttls: bytes = b""          # client pipelined past STARTTLS
    closed_by_client: bool = False


class TlsSmtp(scripted.ScriptedSmtp):
    """An SMTP server in this process for the TLS/AUTH faults smtpblast must handle.

    Options:
      ctx               ssl.SSLContext (server side) for STARTTLS / implicit TLS
      implicit          TLS from the first byte (needs ctx)
      starttls          offer STARTTLS before TLS (needs ctx unless the reply is faked)
      starttls_mode     "ok" (220 then handshake), "inject" (send `inject_reply` in ONE
                        send(), then read what the client sends next for `inject_wait` s
                        into conn.after_starttls, b"" for EOF, and close), "refuse"
                        (454 4.7.0 and go on in plaintext), "reject" (554 5.7.0)
      auth_before_tls   mechanisms announced in EHLO before TLS (e.g. ["PLAIN"])
      auth_after_tls    mechanisms announced in EHLO after TLS (default PLAIN LOGIN when
                        users or tokens are set)
      users             {user: password} for PLAIN/LOGIN
      tokens            accepted XOAUTH2 bearer tokens
      end_delay         seconds to wait before answering end-of-data (a slow server)
      pipelining        announce PIPELINING (the server handles it either way)
    Records (read after or during the run): conns (list of Conn), auth (AuthAttempt list),
    messages (Message list), commands (every line; commands("AUTH") filters).
    """

    backlog = 128

    def __init__(self, ctx=None, implicit=False, starttls=None, starttls_mode="ok",
                 inject_reply=b"220 go ahead\r\n250 injected\r\n", inject_wait=5.0,
                 auth_before_tls=(), auth_after_tls=None, users=None, tokens=(),
                 end_delay=0.0, pipelining=True, hostname="scripted.example.test",
                 address="127.0.0.1", port=None, timeout=30.0):
        super().__init__(address, port)
        self.ctx = ctx
        self.implicit = implicit
        self.starttls_offered = (ctx is not None and not implicit) if starttls is None else starttls
        self.starttls_mode = starttls_mode
        self.inject_reply = inject_reply
        self.inject_wait = inject_wait
        self.users = dict(users or {})
        self.tokens = set(tokens)
        self.auth_before_tls = list(auth_before_tls)
        if auth_after_tls is None:
            auth_after_tls = []
            if self.users:
                auth_after_tls += ["PLAIN", "LOGIN"]
            if self.tokens:
                auth_after_tls += ["XOAUTH2"]
        self.auth_after_tls = list(auth_after_tls)
        self.end_delay = end_delay
        self.pipelining = pipelining
        self.hostname = hostname
        self.timeout = timeout
        self.conns: list[Conn] = []
        self.auth: list[AuthAttempt] = []  # (the AUTH hook is auth_reply)
        self.messages: list[Message] = []
        self._pending: dict = {}
        if ctx is not None and ctx.sni_callback is None:
            def sni_cb(sslsock, name, _ctx):
                try:
                    sslsock._sb_sni = name
                except AttributeError:
                    pass
            ctx.sni_callback = sni_cb

    @property
    def address(self) -> str:
        return self.host

    def __repr__(self):
        return f"TlsSmtp({self.hostport})"

    def stop(self):
        self.close()
        for t in list(self._threads):
            t.join(timeout=2)

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- inspection ---------------------------------------------------------------------

    def auth_commands(self) -> list[bytes]:
        return self.commands("AUTH")

    # -- connections --------------------------------------------------------------------

    def on_accept(self, sock):
        # The record is made in the accepting thread: conns[i] is the i-th connection.
        with self.lock:
            conn = Conn(id=len(self.conns))
            self.conns.append(conn)
            self._pending[sock] = conn

    def handle(self, sock):
        with self.lock:
            conn = self._pending.pop(sock)
        c = scripted.Conn(sock, self, self.timeout)
        c.record = conn
        c.auth_user = None
        c.mail_addr = None
        try:
            self.dialogue(c)
        except scripted.Closed:
            conn.closed_by_client = True
        except scripted.Hangup:
            pass
        except Exception as e:  # a bug in the test server: make it visible
            self.errors.append(f"conn {conn.id}: {type(e).__name__}: {e}")
        finally:
            for s in {c.sock, sock}:
                try:
                    s.close()
                except OSError:
                    pass

    def _wrap(self, c: scripted.Conn) -> bool:
        conn = c.record
        tls = None
        try:
            tls = self.ctx.wrap_socket(c.sock, server_side=True, do_handshake_on_connect=False)
            tls.settimeout(self.timeout)
            tls.do_handshake()
        except (ssl.SSLError, OSError) as e:
            conn.tls_error = f"{type(e).__name__}: {e}"
            if tls is not None:
                tls.close()
            return False
        c.sock = tls
        c.tls = True
        conn.sni = getattr(tls, "_sb_sni", None)
        conn.tls_version = tls.version()
        cipher = tls.cipher()
        conn.tls_cipher = cipher[0] if cipher else None
        return True

    # -- hooks --------------------------------------------------------------------------

    def command(self, c, line: bytes):
        c.record.lines.append((c.tls, line))
        super().command(c, line)

    def greeting(self, c) -> bytes:
        if self.implicit and not self._wrap(c):
            raise scripted.Hangup()
        return f"220 {self.hostname} ESMTP scripted\r\n".encode()

    def ehlo_caps(self, c) -> list[bytes]:
        caps = [b"SIZE 104857600", b"8BITMIME", b"ENHANCEDSTATUSCODES"]
        if self.pipelining:
            caps.insert(0, b"PIPELINING")
        if not c.tls and self.starttls_offered:
            caps.append(b"STARTTLS")
        mechs = self.auth_after_tls if c.tls else self.auth_before_tls
        if mechs:
            caps.append(b"AUTH " + " ".join(mechs).encode())
        return caps

    def ehlo(self, c, arg: bytes) -> bytes:
        c.mail_from, c.rcpts, c.accepted = None, [], []
        return super().ehlo(c, arg)

    def starttls_reply(self, c):
        if c.tls or not self.starttls_offered:
            return b"502 5.5.1 STARTTLS not offered\r\n"
        conn = c.record
        if self.starttls_mode == "inject":
            c.send(self.inject_reply)  # ONE send(): 220 and the injected reply
            c.sock.settimeout(self.inject_wait)
            try:
                conn.after_starttls = c.buf + c.sock.recv(65536)
            except socket.timeout:
                conn.after_starttls = c.buf or None
            except OSError:
                conn.after_starttls = c.buf
            raise scripted.Hangup()
        if self.starttls_mode == "refuse":
            return b"454 4.7.0 TLS not available due to local problem\r\n"
        if self.starttls_mode == "reject":
            return b"554 5.7.0 no TLS for you\r\n"
        c.send(b"220 2.0.0 Ready to start TLS\r\n")
        if c.buf:
            conn.plaintext_after_starttls = c.buf
            c.buf = b""
        if not self._wrap(c):
            raise scripted.Hangup()
        c.mail_from, c.rcpts, c.accepted, c.auth_user = None, [], [], None
        return None

    def auth_reply(self, c, arg: bytes):
        c.auth_user = self._auth(c, arg) or c.auth_user
        return None

    def mail(self, c, arg: bytes) -> bytes:
        c.mail_addr = arg.split(b":", 1)[1].strip().split(b" ")[0].strip(b"<>").decode(
            "utf-8", "replace") if b":" in arg else ""
        return b"250 2.1.0 Ok\r\n"

    def rcpt(self, c, addr: str) -> bytes:
        if c.mail_from is None:
            return b"503 5.5.1 need MAIL\r\n"
        return b"250 2.1.5 Ok\r\n"

    def data(self, c):
        if not c.accepted:
            return b"554 5.5.1 no valid recipients\r\n"
        return None

    def end_of_data(self, c, body: bytes) -> bytes:
        if self.end_delay:
            time.sleep(self.end_delay)
        with self.lock:
            self.messages.append(Message(c.record.id, c.mail_addr, list(c.accepted), body,
                                         c.tls, c.auth_user))
            n = len(self.messages)
        return f"250 2.0.0 Ok: queued as S{n:06d}\r\n".encode()

    def other(self, c, verb: bytes, line: bytes) -> bytes:
        if verb == b"NOOP":
            return b"250 2.0.0 Ok\r\n"
        return super().other(c, verb, line)

    def _auth(self, c, arg: bytes):
        conn, tls = c.record, c.tls
        parts = arg.split(b" ", 1)
        mech = parts[0].upper().decode("ascii", "replace")
        initial = parts[1] if len(parts) > 1 else None

        def challenge(text: bytes) -> bytes:
            c.send(b"334 " + text + b"\r\n")
            line = c.readline()
            self.command(c, line)
            return line

        def b64(s: bytes) -> bytes:
            if s == b"=":
                return b""
            try:
                return base64.b64decode(s, validate=True)
            except Exception:
                return b"\xff"

        def record(user, secret, ok):
            with self.lock:
                self.auth.append(AuthAttempt(conn.id, mech, user, secret, ok, tls))

        if mech == "PLAIN":
            raw = b64(initial if initial is not None else challenge(b""))
            f = raw.split(b"\0")
            user = f[1].decode("utf-8", "replace") if len(f) == 3 else None
            pw = f[2].decode("utf-8", "replace") if len(f) == 3 else None
            ok = user is not None and self.users.get(user) == pw
        elif mech == "LOGIN":
            u = b64(initial) if initial is not None else b64(challenge(b"VXNlcm5hbWU6"))
            p = b64(challenge(b"UGFzc3dvcmQ6"))
            user, pw = u.decode("utf-8", "replace"), p.decode("utf-8", "replace")
            ok = self.users.get(user) == pw
        elif mech == "XOAUTH2":
            raw = b64(initial if initial is not None else challenge(b""))
            # RFC-less but de-facto format (Google, Microsoft):
            #   "user=" USER ^A "auth=Bearer " TOKEN ^A ^A   (^A = 0x01)
            # Anything else is rejected, as those servers do.
            user, token = None, None
            if not raw.endswith(b"\x01\x01") or raw.count(b"\x01") != 3:
                raw = b""
            for item in raw.split(b"\x01"):
                if item.startswith(b"user="):
                    user = item[5:].decode("utf-8", "replace")
                elif item.lower().startswith(b"auth=bearer "):
                    token = item[12:].decode("utf-8", "replace")
            ok = token in self.tokens
            if not ok:
                # Gmail style: an error challenge, the client answers with an empty line,
                # then 535.
                challenge(XOAUTH2_ERROR_CHALLENGE)
            record(user, token, ok)
            c.send(b"235 2.7.0 Authentication successful\r\n" if ok
                    else b"535 5.7.8 Username and Password not accepted\r\n")
            return user if ok else None
        else:
            c.send(b"504 5.5.4 Unrecognized authentication type\r\n")
            record(None, None, False)
            return None
        record(user, pw, ok)
        c.send(b"235 2.7.0 Authentication successful\r\n" if ok
                else b"535 5.7.8 Error: authentication failed\r\n")
        return user if ok else None


# The name the tests have always used.
ScriptedSmtp = TlsSmtp
