"""Scripted servers in the test process: the one base every hand-written fake server uses.

    ThreadServer     a TCP server on a loopback address: each connection goes to handle(sock)
                     in a thread of its own (for servers that are not SMTP at all: a port that
                     closes at once, one that never speaks)
    ScriptedSmtp     an SMTP server on ThreadServer whose replies are hooks (greeting, ehlo,
                     mail, rcpt, data, end_of_data, auth_reply, starttls_reply, rset, other);
                     subclasses override the hooks they script and keep the rest of the
                     dialogue. It records the command lines and every message it accepted.
    LineIO, Conn     line and byte reads over a socket that can be upgraded to TLS in place;
                     Conn adds the SMTP transaction state a hook sees
    ScriptedServer   a fixed greeting, then one fixed reply to every line (or close)
    silent(c)        a hook that never answers (the client must time out)

Everything listens on 127.0.0.1 (or another loopback address) and a free port; stop with
close() or leave the with block.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time

from support.procs import free_port


class ThreadServer:
    """A TCP server in this process on HOST:PORT (loopback): each connection goes to
    handle(sock) in a thread of its own; the socket is closed after it returns. start() /
    close(), or use it as a context manager. `connections` counts accepted connections;
    on_accept(sock) runs in the accepting thread, in the order the connections came."""

    backlog = 64

    def __init__(self, host="127.0.0.1", port=None):
        self.host = host
        self.port = port or free_port(host)
        self.connections = 0
        self._sock = None
        self._thread = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def hostport(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self):
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((self.host, self.port))
        self._sock.listen(self.backlog)
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
            self.on_accept(c)
            t = threading.Thread(target=self._guarded, args=(c,), daemon=True)
            self._threads.append(t)
            t.start()

    def _guarded(self, c):
        with c:
            try:
                self.handle(c)
            except OSError:
                pass

    def on_accept(self, c):
        pass

    def handle(self, c):  # pragma: no cover - overridden
        raise NotImplementedError

    def wait_conns_closed(self, timeout=10.0) -> bool:
        """True once every connection's handler has returned (False after `timeout` s)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(not t.is_alive() for t in list(self._threads)):
                return True
            time.sleep(0.02)
        return False

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


class Closed(Exception):
    """The client closed the connection (or it failed): the dialogue ends."""


class Hangup(Exception):
    """Raised by a hook: the server ends the dialogue and closes the connection."""


class CommandLog(list):
    """The command lines a server received, in order; called with a verb, only the lines
    whose first word is that verb (case-insensitive)."""

    def __call__(self, verb: str | None = None) -> list[bytes]:
        if verb is None:
            return list(self)
        v = verb.upper().encode()
        return [x for x in list(self) if x.split(b" ", 1)[0].upper() == v]


class LineIO:
    """Line and byte reads over a socket; `sock` may be replaced by its TLS wrapper."""

    def __init__(self, sock, timeout: float | None = None):
        self.sock = sock
        self.buf = b""
        if timeout is not None:
            sock.settimeout(timeout)

    def _fill(self):
        try:
            data = self.sock.recv(65536)
        except (ssl.SSLError, OSError):
            raise Closed()
        if not data:
            raise Closed()
        self.buf += data

    def readline(self) -> bytes:
        """One line without its LF and one CR before it."""
        while b"\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\n", 1)
        return line[:-1] if line.endswith(b"\r") else line

    def read_bytes(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_data(self) -> bytes:
        """DATA content up to CRLF.CRLF, dot-unstuffed, lines ending in CRLF."""
        lines = []
        while True:
            line = self.readline()
            if line == b".":
                return b"".join(lines)
            lines.append((line[1:] if line.startswith(b".") else line) + b"\r\n")

    def send(self, data: bytes):
        self.sock.sendall(data)


class Conn(LineIO):
    """One client connection of a ScriptedSmtp: line I/O plus the transaction a hook sees."""

    def __init__(self, sock, server, timeout: float | None = None):
        super().__init__(sock, timeout)
        self.server = server
        self.tls = False
        self.mail_from = None
        self.rcpts: list[str] = []
        self.accepted: list[str] = []
        self.messages = 0  # messages ended on this connection


def _address(arg: bytes) -> str:
    """The address in `TO:<addr> PARAMS` (or `FROM:`), without the angle brackets."""
    if b"<" in arg:
        return arg.split(b"<", 1)[1].split(b">", 1)[0].decode("utf-8", "replace")
    rest = arg.split(b":", 1)[1] if b":" in arg else arg
    return rest.strip().split(b" ")[0].decode("utf-8", "replace")


class ScriptedSmtp(ThreadServer):
    """A scripted SMTP server; subclasses override the reply hooks. Records what it accepted:
    `delivered` is a list of (recipients, body) for every message it answered 2xx, `commands`
    every command line (a CommandLog: commands("MAIL") filters), `errors` the exceptions of
    its own (a bug in the test server), `max_open` the most connections open at once."""

    hostname = "hostile.example.test"
    caps = (b"PIPELINING", b"8BITMIME", b"ENHANCEDSTATUSCODES")
    timeout = 60.0

    def __init__(self, host="127.0.0.1", port=None):
        super().__init__(host, port)
        self.lock = threading.Lock()
        self.delivered: list[tuple[list[str], bytes]] = []
        self.commands = CommandLog()
        self.errors: list[str] = []
        self.open = 0       # connections open now
        self.max_open = 0   # the most open at once

    # -- hooks --------------------------------------------------------------------------
    def greeting(self, c: Conn) -> bytes:
        return f"220 {self.hostname} ESMTP\r\n".encode()

    def ehlo_caps(self, c: Conn) -> list[bytes]:
        return list(self.caps)

    def ehlo(self, c: Conn, arg: bytes) -> bytes:
        lines = [self.hostname.encode(), *self.ehlo_caps(c)]
        return (b"".join(b"250-" + x + b"\r\n" for x in lines[:-1]) +
                b"250 " + lines[-1] + b"\r\n")

    def helo(self, c: Conn, arg: bytes) -> bytes:
        return f"250 {self.hostname}\r\n".encode()

    def mail(self, c: Conn, arg: bytes) -> bytes:
        return b"250 2.1.0 Ok\r\n"

    def rcpt(self, c: Conn, addr: str) -> bytes:
        return b"250 2.1.5 Ok\r\n"

    def data(self, c: Conn) -> bytes | None:
        """The reply to DATA; None: 354 and read the body."""
        return None

    def end_of_data(self, c: Conn, body: bytes) -> bytes:
        return b"250 2.0.0 Ok: queued\r\n"

    def auth_reply(self, c: Conn, arg: bytes) -> bytes | None:
        """The reply to AUTH (None: the hook answered itself, or never answers)."""
        return b"502 5.5.1 no AUTH here\r\n"

    def starttls_reply(self, c: Conn) -> bytes | None:
        """The reply to STARTTLS (None: the hook answered itself, or never answers)."""
        return b"502 5.5.1 no STARTTLS here\r\n"

    def rset(self, c: Conn) -> bytes:
        return b"250 2.0.0 Ok\r\n"

    def other(self, c: Conn, verb: bytes, line: bytes) -> bytes:
        """Any other command (NOOP, VRFY, ...)."""
        return b"502 5.5.2 Error: command not recognized\r\n"

    def command(self, c: Conn, line: bytes):
        """Every command line, before it is answered."""
        with self.lock:
            self.commands.append(line)

    # -- protocol -----------------------------------------------------------------------
    def new_conn(self, sock) -> Conn:
        return Conn(sock, self, self.timeout)

    def handle(self, sock):
        with self.lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            c = self.new_conn(sock)
            self.dialogue(c)
        except (Closed, Hangup, OSError):
            pass
        except Exception as e:  # a bug in the test server: make it visible
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            with self.lock:
                self.open -= 1

    def finish(self, c: Conn, reply: bytes, body: bytes):
        if reply.startswith(b"2"):
            with self.lock:
                self.delivered.append((list(c.accepted), body))
        c.messages += 1
        c.mail_from, c.rcpts, c.accepted = None, [], []

    def dialogue(self, c: Conn):
        c.send(self.greeting(c))
        while not self._stop.is_set():
            line = c.readline()
            self.command(c, line)
            verb = line.split(b" ", 1)[0].upper()
            arg = line[len(verb) + 1:]
            if verb == b"EHLO":
                c.send(self.ehlo(c, arg))
            elif verb == b"HELO":
                c.send(self.helo(c, arg))
            elif verb == b"MAIL":
                c.mail_from, c.rcpts, c.accepted = arg, [], []
                c.send(self.mail(c, arg))
            elif verb == b"RCPT":
                addr = _address(arg)
                c.rcpts.append(addr)
                r = self.rcpt(c, addr)
                if r.startswith(b"2"):
                    c.accepted.append(addr)
                c.send(r)
            elif verb == b"DATA":
                r = self.data(c)
                if r is not None:
                    c.send(r)
                    continue
                c.send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                body = c.read_data()
                r = self.end_of_data(c, body)
                self.finish(c, r, body)
                c.send(r)
            elif verb == b"BDAT":
                n = int(arg.split()[0])
                body = c.read_bytes(n)
                r = self.end_of_data(c, body)
                self.finish(c, r, body)
                c.send(r)
            elif verb == b"AUTH":
                r = self.auth_reply(c, arg)
                if r is not None:
                    c.send(r)
            elif verb == b"STARTTLS":
                r = self.starttls_reply(c)
                if r is not None:
                    c.send(r)
            elif verb == b"RSET":
                c.mail_from, c.rcpts, c.accepted = None, [], []
                c.send(self.rset(c))
            elif verb == b"QUIT":
                c.send(b"221 2.0.0 Bye\r\n")
                return
            else:
                c.send(self.other(c, verb, line))

    def delivered_rcpts(self) -> list[str]:
        with self.lock:
            return [r for rcpts, _ in self.delivered for r in rcpts]

    def delivered_bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, body in self.delivered]


def silent(c: Conn, arg: bytes = b""):
    """A hook that never answers (the client must time out)."""
    time.sleep(30)
    return None


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
