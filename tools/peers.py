"""Real SMTP peers for smtpblast's integration tests and benchmarks.

Standard library only; run with Debian's interpreter, /usr/bin/python3 (the `python3`
on PATH may be another build without Debian's modules).

Everything here listens on loopback only (127.0.0.0/8 or ::1) on a port picked free
at run time, and every process it starts is stopped by its PID: by the context
manager, by stop(), and as a last resort at interpreter exit (atexit), so a failing
test leaves nothing running.

    free_port(host)            a free TCP port on a loopback address
    PostfixInstance            a private Postfix (smtpd + delivery into maildirs)
    SmtpSink                   Postfix's smtp-sink (fast sink, counters, dumps)
    AiosmtpdServer             tools/aiosmtpd_server.py in a subprocess (scriptable)
    Process                    a background process (smtpblast) with timeout + output
    strip_trace_headers(msg)   drop the trace headers Postfix adds on delivery
    stop_pid(pid)              SIGTERM, wait, SIGKILL
"""

from __future__ import annotations

import atexit
import ipaddress
import os
import pwd
import grp
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

__all__ = [
    "free_port", "wait_port", "stop_pid", "strip_trace_headers", "crlf", "lf",
    "PostfixInstance", "SmtpSink", "AiosmtpdServer", "Process", "PeerError",
]

TOOLS_DIR = Path(__file__).resolve().parent
PYTHON = "/usr/bin/python3"
POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"
SMTP_SINK = shutil.which("smtp-sink", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-sink"
SMTP_SOURCE = shutil.which("smtp-source", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-source"


class PeerError(RuntimeError):
    """A peer failed to start or misbehaved; the message carries its log tail."""


# ---------------------------------------------------------------------------------------
# Process bookkeeping: everything started here is stopped at exit, whatever happens.

_live: "set[object]" = set()
_live_lock = threading.Lock()


def _on_sigterm(signum, frame):
    # Turn SIGTERM/SIGHUP (ctest timeout, Ctrl-C of a parent) into SystemExit so the
    # fixtures' finally/__exit__ blocks and atexit stop what we started.
    raise SystemExit(128 + signum)


def _register(obj) -> None:
    with _live_lock:
        _live.add(obj)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_sigterm)


def _unregister(obj) -> None:
    with _live_lock:
        _live.discard(obj)


@atexit.register
def _stop_everything() -> None:
    with _live_lock:
        objs = list(_live)
    for obj in objs:
        try:
            obj.stop()
        except Exception as e:  # pragma: no cover - best effort at exit
            print(f"peers: stopping {obj!r} at exit failed: {e}", file=sys.stderr)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state != b"Z"
    except (OSError, IndexError):
        return False


_subreaper_set = False


def _become_subreaper() -> None:
    """Make this process the reaper of orphaned descendants (prctl
    PR_SET_CHILD_SUBREAPER), so daemons that detach from us (the Postfix master) are
    reaped here when stopped instead of lingering as zombies under PID 1."""
    global _subreaper_set
    if _subreaper_set:
        return
    _subreaper_set = True
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def _reap(pids) -> None:
    """Collect the exit status of those pids that are our (adopted) children."""
    for pid in pids:
        try:
            os.waitpid(pid, os.WNOHANG)
        except (ChildProcessError, OSError):
            pass


def stop_pid(pid: int, timeout: float = 5.0, popen: "subprocess.Popen | None" = None,
             sig: int = signal.SIGTERM) -> None:
    """Send `sig` (SIGTERM) to pid, wait up to `timeout` s, then SIGKILL and wait again.

    Pass the Popen object when we are the parent so the child is reaped too.
    """
    def gone(t: float) -> bool:
        if popen is not None:
            try:
                popen.wait(timeout=t)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + t
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                return True
            time.sleep(0.02)
        return not _pid_alive(pid)

    if popen is not None and popen.poll() is not None:
        return
    if popen is None and not _pid_alive(pid):
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        gone(0.1)
        return
    if gone(timeout):
        return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if not gone(timeout):
        raise PeerError(f"process {pid} survived SIGKILL")


# ---------------------------------------------------------------------------------------
# Addresses and ports

def _check_loopback(host: str) -> str:
    h = host.strip("[]")
    if h == "localhost":
        return "127.0.0.1"
    if not ipaddress.ip_address(h).is_loopback:
        raise ValueError(f"{host}: test peers listen on loopback (127.0.0.0/8, ::1) only")
    return h


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _hostport(host: str, port: int) -> str:
    """host:port as Postfix and smtpblast spell it ([::1]:25 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` (a loopback address) right now.

    There is a small race between this call and the server binding the port; the
    fixtures retry their start once with a new port when the bind fails.
    """
    host = _check_loopback(host)
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_on(hosts) -> int:
    """A TCP port free on every one of `hosts` (loopback addresses) at once, for servers that
    must share a port (MX hosts on 127.0.0.2, 127.0.0.3 ... and one --mx-port)."""
    for _ in range(50):
        port = free_port(hosts[0])
        ok = True
        for h in hosts[1:]:
            s = socket.socket(_family(h), socket.SOCK_STREAM)
            try:
                s.bind((_check_loopback(h), port))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return port
    raise PeerError("no port free on all of " + ", ".join(hosts))


def wait_port(host: str, port: int, timeout: float = 10.0, banner: bool = False,
              alive=None) -> bytes:
    """Wait until host:port accepts a TCP connection; with banner=True also read the
    first line the server sends (the SMTP greeting) and return it. `alive` is a callable
    returning False when the server process died, to fail fast."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise PeerError(f"server for {host}:{port} exited before listening")
        try:
            with socket.create_connection((host, port), timeout=2) as s:
                if not banner:
                    return b""
                s.settimeout(max(0.5, deadline - time.monotonic()))
                data = b""
                while not data.endswith(b"\n"):
                    chunk = s.recv(512)
                    if not chunk:
                        break
                    data += chunk
                if data.startswith(b"220"):
                    try:
                        s.sendall(b"QUIT\r\n")
                        s.recv(512)
                    except OSError:
                        pass
                    return data
                last = data
        except OSError as e:
            last = e
        time.sleep(0.05)
    raise PeerError(f"{host}:{port} not ready after {timeout}s (last: {last!r})")


# ---------------------------------------------------------------------------------------
# Message helpers

# Headers Postfix puts on top of a message it delivers: virtual(8)/local(8) prepend
# Return-Path:, Delivered-To: and X-Original-To:; smtpd(8)/cleanup(8) prepend one
# Received: line (folded over several lines).
_TRACE_PREPENDED = (b"return-path", b"delivered-to", b"x-original-to")


def strip_trace_headers(msg: bytes, received: int = 1) -> bytes:
    """Remove the header lines Postfix added on delivery from the top of `msg`.

    Only the leading block is touched: Return-Path:, Delivered-To:, X-Original-To:
    (any number, as long as they come first) and then at most `received` Received:
    headers with their continuation lines (one per Postfix hop: 1 for mail that went
    straight into the instance). The template's own headers, even a Received: of its
    own further down, are left alone. Line endings are preserved as they are.
    """
    pos = 0
    n = len(msg)
    received_left = received

    def header_end(start: int) -> int:
        # End of the header starting at `start`, including continuation lines.
        end = msg.find(b"\n", start)
        end = n if end < 0 else end + 1
        while end < n and msg[end:end + 1] in (b" ", b"\t"):
            nxt = msg.find(b"\n", end)
            end = n if nxt < 0 else nxt + 1
        return end

    while pos < n:
        colon = msg.find(b":", pos)
        eol = msg.find(b"\n", pos)
        if colon < 0 or (0 <= eol < colon):
            break
        name = msg[pos:colon].strip().lower()
        if name in _TRACE_PREPENDED:
            pos = header_end(pos)
        elif name == b"received" and received_left > 0:
            received_left -= 1
            pos = header_end(pos)
        else:
            break
    return msg[pos:]


def crlf(data: bytes) -> bytes:
    """LF → CRLF (lines already ending in CRLF are kept); Postfix stores mail with LF."""
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def lf(data: bytes) -> bytes:
    """CRLF → LF, the form a Postfix maildir holds."""
    return data.replace(b"\r\n", b"\n")


# ---------------------------------------------------------------------------------------
# Base class for fixtures

class _Fixture:
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def start(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self):  # pragma: no cover - abstract
        raise NotImplementedError


def _tail(path: Path, nbytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"


# ---------------------------------------------------------------------------------------
# Private Postfix instance

def _user_ids(name: str, fallback_group: str | None = None) -> tuple[int, int]:
    pw = pwd.getpwnam(name)
    gid = pw.pw_gid
    if fallback_group:
        try:
            gid = grp.getgrnam(fallback_group).gr_gid
        except KeyError:
            pass
    return pw.pw_uid, gid


def _delivered_to(path: Path) -> bytes | None:
    """The Delivered-To: address virtual(8) put at the top of a delivered message."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return None
    for line in head.split(b"\n"):
        if not line.strip():
            break
        if line.lower().startswith(b"delivered-to:"):
            return line.split(b":", 1)[1].strip().lower()
    return None


class PostfixInstance(_Fixture):
    """A private Postfix of the test's own, in a temp dir, never the system instance.

    Layout under `self.dir` (a fresh temp dir, mode 0755 so the postfix user can reach it):
        etc/main.cf, etc/master.cf     config_directory (`postfix -c DIR/etc start`)
        queue/                         queue_directory (master.pid in queue/pid/)
        data/                          data_directory, owned by the postfix user
        mail/<domain>/new/             one Maildir per test domain (all its recipients)
        maillog                        maillog_file (all Postfix logging; no syslog needed)

    Delivery: virtual(8) for every domain in `domains` (virtual_mailbox_domains); a regexp
    map sends every address `*@dom` to the Maildir `mail/dom/` (virtual(8) does not
    allow $1 substitution, hence one Maildir per domain; messages(recipient=) filters on
    Delivered-To:), so any address in those domains is accepted and delivered without
    real users or a local(8) setup. Files are owned by `nobody` (virtual_uid_maps), which
    works when the tests run as root. Postfix stores mail with LF line endings and
    prepends Return-Path:, X-Original-To:, Delivered-To: and one Received: (see
    strip_trace_headers). Mail to any other domain is refused at RCPT (no relaying), and
    any transport to the outside is error:, so nothing ever leaves the machine.

    Options:
        domains          the test domains (first one also becomes mydomain)
        address          loopback address smtpd listens on (127.0.0.x or ::1)
        port             smtpd port (default: a free one)
        discard          discard every message on arrival (benchmarks): all transports
                         are discard:, messages() stays empty, delivered_count() counts
        tls_cert/tls_key PEM files; with starttls=True smtpd offers STARTTLS
                         (smtpd_tls_security_level=may, or `require_tls=True` -> encrypt)
        wrappermode      also run an implicit-TLS smtpd (smtpd_tls_wrappermode=yes) on
                         `self.tls_port` (needs tls_cert/tls_key)
        main             extra main.cf settings {name: value} (win over the defaults)
        master_extra     extra master.cf text appended verbatim ({port}/{address} not
                         substituted; use self.port etc. after construction)
        smtpd_options    extra `-o name=value` for the plain smtpd service
        process_limit    default_process_limit (concurrency of smtpd & co)
        keep             keep the temp dir after stop (for debugging); also env
                         SMTPBLAST_KEEP_PEERS=1
    """

    DELIVERY_USER = "nobody"

    def __init__(self, domains=("example.test",), address="127.0.0.1", port=None,
                 discard=False, tls_cert=None, tls_key=None, starttls=None,
                 require_tls=False, wrappermode=False, main=None, master_extra="",
                 smtpd_options=None, process_limit=200, keep=None, base_dir=None):
        if isinstance(domains, str):
            domains = (domains,)
        self.domains = tuple(d.lower() for d in domains)
        self.address = _check_loopback(address)
        self.discard = discard
        self.tls_cert = str(tls_cert) if tls_cert else None
        self.tls_key = str(tls_key) if tls_key else None
        self.starttls = bool(self.tls_cert) if starttls is None else starttls
        self.require_tls = require_tls
        self.wrappermode = wrappermode
        if (self.starttls or wrappermode) and not (self.tls_cert and self.tls_key):
            raise ValueError("STARTTLS / wrappermode need tls_cert and tls_key")
        self.extra_main = dict(main or {})
        self.master_extra = master_extra
        self.smtpd_options = dict(smtpd_options or {})
        self.process_limit = process_limit
        self.keep = keep if keep is not None else os.environ.get("SMTPBLAST_KEEP_PEERS") == "1"
        self.dir = Path(tempfile.mkdtemp(prefix="sb-postfix-", dir=base_dir))
        os.chmod(self.dir, 0o755)
        self.config_dir = self.dir / "etc"
        self.queue_dir = self.dir / "queue"
        self.data_dir = self.dir / "data"
        self.mail_dir = self.dir / "mail"
        self.maillog = self.dir / "maillog"
        self.port = port or free_port(self.address)
        self.tls_port = free_port(self.address) if wrappermode else None
        self.master_pid: int | None = None
        self._started = False

    def __repr__(self):
        return f"PostfixInstance({self.dir}, {self.hostport})"

    @property
    def hostport(self) -> str:
        return _hostport(self.address, self.port)

    @property
    def tls_hostport(self) -> str | None:
        return _hostport(self.address, self.tls_port) if self.tls_port else None

    # -- configuration --------------------------------------------------------------

    def _main_cf(self) -> dict:
        d = self.dir
        uid, gid = _user_ids(self.DELIVERY_USER, "nogroup")
        ipv6 = ":" in self.address
        outside = "error:5.7.1 outside delivery disabled in this test instance"
        cf = {
            "compatibility_level": "3.6",
            "config_directory": str(self.config_dir),
            "queue_directory": str(self.queue_dir),
            "data_directory": str(self.data_dir),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            # Logging without syslog: postlogd writes this file.
            "maillog_file": str(self.maillog),
            "maillog_file_prefixes": str(d),
            "myhostname": f"mx.{self.domains[0]}",
            "mydomain": self.domains[0],
            "myorigin": "$mydomain",
            "inet_interfaces": self.address,
            "inet_protocols": "ipv6" if ipv6 else "ipv4",
            "mynetworks": "127.0.0.0/8 [::1]/128",
            "mydestination": "",
            "local_recipient_maps": "",
            "relay_domains": "",
            "virtual_mailbox_domains": " ".join(self.domains),
            "virtual_mailbox_base": str(self.mail_dir),
            "virtual_mailbox_maps": f"regexp:{self.config_dir}/vmailbox",
            "virtual_uid_maps": f"static:{uid}",
            "virtual_gid_maps": f"static:{gid}",
            "virtual_minimum_uid": "1",
            "virtual_mailbox_limit": "0",
            "virtual_transport": "virtual",
            # Nothing leaves the machine.
            "default_transport": outside,
            "relay_transport": outside,
            "local_transport": outside,
            "smtp_host_lookup": "native",
            "smtpd_peername_lookup": "no",
            # Permissive for loopback clients, no relaying elsewhere.
            "smtpd_client_restrictions": "",
            "smtpd_helo_restrictions": "",
            "smtpd_sender_restrictions": "",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtpd_data_restrictions": "",
            "smtpd_delay_reject": "yes",
            "smtpd_helo_required": "no",
            "smtpd_error_sleep_time": "0",
            "smtpd_soft_error_limit": "1000",
            "smtpd_hard_error_limit": "1000",
            "smtpd_recipient_limit": "100000",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "smtpd_client_message_rate_limit": "0",
            "smtpd_client_recipient_rate_limit": "0",
            "smtpd_client_new_tls_session_rate_limit": "0",
            "smtpd_client_auth_rate_limit": "0",
            "in_flow_delay": "0",
            "default_process_limit": str(self.process_limit),
            "smtpd_timeout": "300s",
            "message_size_limit": str(256 * 1024 * 1024),
            "mailbox_size_limit": "0",
            "line_length_limit": "1000000",
            # Do not touch the message: no missing headers added, no address rewriting.
            "local_header_rewrite_clients": "",
            "always_add_missing_headers": "no",
            "undisclosed_recipients_header": "",
            "biff": "no",
            "append_dot_mydomain": "no",
            "recipient_delimiter": "",
            # Deliver promptly, never bounce to the outside.
            "queue_run_delay": "1s",
            "minimal_backoff_time": "1s",
            "maximal_backoff_time": "5s",
            "bounce_queue_lifetime": "0",
            "notify_classes": "",
            "smtputf8_enable": "yes",
        }
        if self.discard:
            cf.update({
                "virtual_transport": "discard:",
                "default_transport": "discard:",
                "relay_transport": "discard:",
                "local_transport": "discard:",
            })
        if self.tls_cert:
            cf.update({
                "smtpd_tls_cert_file": self.tls_cert,
                "smtpd_tls_key_file": self.tls_key,
                "smtpd_tls_security_level": ("encrypt" if self.require_tls else "may")
                if self.starttls else "none",
                "smtpd_tls_loglevel": "1",
                "smtpd_tls_received_header": "no",
                "smtpd_tls_session_cache_database": "",
            })
        cf.update(self.extra_main)
        return cf

    def _master_cf(self) -> str:
        def svc(name, typ, private, unpriv, chroot, wakeup, maxproc, cmd, opts=None):
            line = f"{name:<28} {typ:<10} {private:<3} {unpriv:<3} {chroot:<3} {wakeup:<6} {maxproc:<4} {cmd}"
            for k, v in (opts or {}).items():
                v = str(v)
                # Postfix 3.0+ syntax for values with white space: -o { name = value }
                line += (f"\n  -o {{ {k} = {v} }}" if re.search(r"\s", v) or not v
                         else f"\n  -o {k}={v}")
            return line

        lines = [
            svc(_hostport(self.address, self.port), "inet", "n", "-", "n", "-", "-", "smtpd",
                self.smtpd_options),
        ]
        if self.tls_port:
            lines.append(svc(_hostport(self.address, self.tls_port), "inet", "n", "-", "n",
                             "-", "-", "smtpd",
                             {"smtpd_tls_wrappermode": "yes",
                              "smtpd_tls_security_level": "encrypt",
                              **self.smtpd_options}))
        # Services every instance needs; chroot off everywhere.
        for name, typ, priv, unpriv, wake, maxp, cmd in [
            ("pickup", "unix", "n", "-", "60", "1", "pickup"),
            ("cleanup", "unix", "n", "-", "-", "0", "cleanup"),
            ("qmgr", "unix", "n", "-", "300", "1", "qmgr"),
            ("tlsmgr", "unix", "-", "-", "1000?", "1", "tlsmgr"),
            ("rewrite", "unix", "-", "-", "-", "-", "trivial-rewrite"),
            ("bounce", "unix", "-", "-", "-", "0", "bounce"),
            ("defer", "unix", "-", "-", "-", "0", "bounce"),
            ("trace", "unix", "-", "-", "-", "0", "bounce"),
            ("verify", "unix", "-", "-", "-", "1", "verify"),
            ("flush", "unix", "n", "-", "1000?", "0", "flush"),
            ("proxymap", "unix", "-", "-", "-", "-", "proxymap"),
            ("proxywrite", "unix", "-", "-", "-", "1", "proxymap"),
            ("smtp", "unix", "-", "-", "-", "-", "smtp"),
            ("relay", "unix", "-", "-", "-", "-", "smtp"),
            ("showq", "unix", "n", "-", "-", "-", "showq"),
            ("error", "unix", "-", "-", "-", "-", "error"),
            ("retry", "unix", "-", "-", "-", "-", "error"),
            ("discard", "unix", "-", "-", "-", "-", "discard"),
            ("local", "unix", "-", "n", "-", "-", "local"),
            ("virtual", "unix", "-", "n", "-", "-", "virtual"),
            ("lmtp", "unix", "-", "-", "-", "-", "lmtp"),
            ("anvil", "unix", "-", "-", "-", "1", "anvil"),
            ("scache", "unix", "-", "-", "-", "1", "scache"),
            ("postlog", "unix-dgram", "n", "-", "-", "1", "postlogd"),
        ]:
            lines.append(svc(name, typ, priv, unpriv, "n", wake, maxp, cmd))
        text = "\n".join(lines) + "\n"
        if self.master_extra:
            text += self.master_extra.rstrip("\n") + "\n"
        return text

    def _vmailbox(self) -> str:
        # Every address of a test domain -> that domain's Maildir (trailing "/").
        # virtual(8) forbids $1 substitution here, so it is one Maildir per domain;
        # messages(recipient=...) tells recipients apart by their Delivered-To: header.
        return "".join(f"/@{re.escape(dom)}$/\t{dom}/\n" for dom in self.domains)

    def _write_config(self) -> None:
        self.config_dir.mkdir(mode=0o755)
        self.queue_dir.mkdir(mode=0o755)
        self.data_dir.mkdir(mode=0o700)
        self.mail_dir.mkdir(mode=0o755)
        pf_uid, pf_gid = _user_ids("postfix")
        os.chown(self.data_dir, pf_uid, pf_gid)
        uid, gid = _user_ids(self.DELIVERY_USER, "nogroup")
        os.chown(self.mail_dir, uid, gid)
        self.maillog.touch(mode=0o644)
        main = "".join(f"{k} = {v}\n" for k, v in self._main_cf().items())
        (self.config_dir / "main.cf").write_text(main)
        (self.config_dir / "master.cf").write_text(self._master_cf())
        (self.config_dir / "vmailbox").write_text(self._vmailbox())

    # -- life cycle -----------------------------------------------------------------

    def _postfix(self, *args, check=True, timeout=60):
        env = dict(os.environ, MAIL_CONFIG=str(self.config_dir))
        env.pop("MAIL_DEBUG", None)
        return subprocess.run([POSTFIX, "-c", str(self.config_dir), *args], env=env,
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=timeout, check=check)

    def start(self):
        if self._started:
            return self
        _register(self)
        _become_subreaper()
        self._started = True
        try:
            self._write_config()
            r = self._postfix("start", check=False)
            pidfile = self.queue_dir / "pid" / "master.pid"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not pidfile.exists():
                time.sleep(0.05)
            if r.returncode != 0 or not pidfile.exists():
                raise PeerError(f"postfix -c {self.config_dir} start failed (rc={r.returncode})\n"
                                f"{r.stdout}{r.stderr}\nmaillog:\n{_tail(self.maillog)}")
            self.master_pid = int(pidfile.read_text().split()[0])
            ports = [self.port] + ([self.tls_port] if self.tls_port else [])
            for p in ports:
                # The wrappermode port expects TLS first: just wait for the connect.
                wait_port(self.address, p, timeout=20, banner=(p == self.port),
                          alive=lambda: _pid_alive(self.master_pid))
        except BaseException:
            self.stop()
            raise
        return self

    def _instance_pids(self) -> set[int]:
        """Every process of this instance: the master, its descendants, and anything
        whose MAIL_CONFIG or working directory points into our temp dir."""
        pids: set[int] = set()
        mine = str(self.dir)
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid == os.getpid():
                continue
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(pid)
            except (OSError, IndexError, ValueError):
                continue
            try:
                if os.readlink(f"/proc/{pid}/cwd").startswith(mine):
                    pids.add(pid)
                    continue
            except OSError:
                pass
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if f"MAIL_CONFIG={self.config_dir}".encode() in f.read().split(b"\0"):
                        pids.add(pid)
            except OSError:
                pass
        # The master and all its descendants, and the descendants of anything found above.
        todo = list(pids) + ([self.master_pid] if self.master_pid else [])
        seen: set[int] = set()
        while todo:
            p = todo.pop()
            if p in seen:
                continue
            seen.add(p)
            todo.extend(children.get(p, []))
        return {p for p in seen if p != os.getpid() and _pid_alive(p)}

    def stop(self):
        if not self._started:
            return
        killed: set[int] = set()
        try:
            if self.master_pid and _pid_alive(self.master_pid):
                try:
                    self._postfix("stop", check=False, timeout=30)
                except subprocess.TimeoutExpired:
                    pass
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _pid_alive(self.master_pid):
                    time.sleep(0.05)
            # Whatever is left of this instance (and only this instance) goes.
            for _ in range(3):
                left = self._instance_pids()
                if not left:
                    break
                killed |= left
                for p in left:
                    try:
                        stop_pid(p, timeout=3)
                    except PeerError:
                        pass
            left = self._instance_pids()
            if left:
                raise PeerError(f"postfix instance {self.dir}: processes left: {sorted(left)}")
        finally:
            _reap(killed | ({self.master_pid} if self.master_pid else set()))
            self._started = False
            _unregister(self)
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    # -- inspection -----------------------------------------------------------------

    def _message_files(self, recipient: str | None = None) -> list[Path]:
        files = []
        for dirpath, _dirnames, filenames in os.walk(self.mail_dir):
            if os.path.basename(dirpath) in ("new", "cur"):
                files.extend(Path(dirpath) / f for f in filenames)
        if recipient:
            want = recipient.lower().encode()
            files = [p for p in files if _delivered_to(p) == want]
        # Maildir names start with the delivery time (seconds.microseconds…).
        def key(p: Path):
            try:
                st = p.stat()
                return (st.st_mtime_ns, p.name)
            except OSError:
                return (0, p.name)
        return sorted(files, key=key)

    def messages(self, recipient: str | None = None, strip: bool = False) -> list[bytes]:
        """Delivered messages (bytes, LF line endings, as Postfix stored them), oldest
        first; all recipients, or only `recipient`'s maildir. A message sent to N
        recipients is here N times. strip=True applies strip_trace_headers."""
        out = []
        for p in self._message_files(recipient):
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                continue
            out.append(strip_trace_headers(data) if strip else data)
        return out

    def count(self, recipient: str | None = None) -> int:
        return len(self._message_files(recipient))

    def log(self) -> str:
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def delivered_count(self) -> int:
        """Deliveries logged with status=sent (also counts discarded mail)."""
        return sum(1 for line in self.log().splitlines() if " status=sent " in line)

    def wait_for(self, n: int, timeout: float = 30.0, recipient: str | None = None) -> list[bytes]:
        """Wait until at least n messages were delivered (delivered_count() in discard
        mode) and return them; raise PeerError with the log tail on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.delivered_count() if self.discard else self.count(recipient)
            if got >= n:
                return self.messages(recipient)
            if time.monotonic() >= deadline:
                raise PeerError(f"{self}: {got} of {n} messages after {timeout}s\n"
                                f"maillog:\n{_tail(self.maillog)}")
            time.sleep(0.05)

    def queue_empty(self) -> bool:
        """True when no message waits in the queue (incoming, active, deferred, hold,
        maildrop)."""
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            root = self.queue_dir / sub
            for _dirpath, _dirs, files in os.walk(root):
                if files:
                    return False
        return True

    def wait_queue_empty(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.queue_empty():
            if time.monotonic() >= deadline:
                raise PeerError(f"{self}: queue not empty after {timeout}s\n{_tail(self.maillog)}")
            time.sleep(0.05)


# ---------------------------------------------------------------------------------------
# smtp-sink

_COUNTER_RE = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class SmtpSink(_Fixture):
    """Postfix's smtp-sink on a loopback address and a free port.

    PIPELINING is announced (smtp-sink's default; pipelining=False adds -p). With
    counters=True (-c) it writes "sess=N quit=N mesg=N" after every session end, QUIT
    and "."; counters() reads the latest from its stdout file. dump_dir=True (a dir
    inside the sink's temp dir) or a PATH (-d PATH/) writes each transaction to its own
    file (slow: for correctness tests only); dumps() returns them. smtp-sink writes them
    as `user`, so a PATH and its parents must be reachable by that user. It runs as root only long enough to bind, then as `user`
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
        files.sort(key=lambda p: (p.stat().st_mtime_ns, p.name))
        return [p.read_bytes() for p in files]


# ---------------------------------------------------------------------------------------
# aiosmtpd

class AiosmtpdServer(_Fixture):
    """tools/aiosmtpd_server.py in a subprocess (Debian's python3-aiosmtpd).

    Stores each message as NNNNNN.eml (the DATA content, CRLF as received) plus
    NNNNNN.json (envelope: mail_from, rcpt_tos, peer, helo) in `maildir` (default: a
    temp dir). Options pass through to the script: tls_cert/tls_key (+ starttls=True,
    require_starttls, or implicit_tls=True), auth={"user": "password"} (AUTH
    PLAIN/LOGIN), auth_require_tls (False: AUTH offered without TLS too); extra_args
    go to the script verbatim (e.g. ["--rcpt-reply", "x@example.test=550 5.1.1 no"]).
    """

    SCRIPT = TOOLS_DIR / "aiosmtpd_server.py"

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
# Background process (smtpblast under test)

def smtpblast_binary() -> str | None:
    """$SMTPBLAST, else build/bin/smtpblast under $SMTPBLAST_SOURCE_DIR or the repo."""
    cand = os.environ.get("SMTPBLAST")
    if cand:
        return cand
    root = Path(os.environ.get("SMTPBLAST_SOURCE_DIR", TOOLS_DIR.parent))
    p = root / "build" / "bin" / "smtpblast"
    return str(p) if p.exists() else None


class Process(_Fixture):
    """Run a command (smtpblast …) in the background, capture stdout/stderr to files,
    enforce a timeout, and measure its own resource use (os.wait4: user/sys CPU and
    peak RSS of that process, not its peers).

        with Process([binary, "send", ...], timeout=60) as p:
            rc = p.wait()            # raises PeerError after `timeout` (process killed)
            print(p.stdout, p.rusage.ru_utime)

    The process gets its own session (process group) so a timeout can't leave
    children behind; stop() sends SIGTERM, then SIGKILL, to the PID.
    """

    def __init__(self, args, timeout: float = 120.0, env=None, cwd=None, stdin=None,
                 name=None):
        self.args = [str(a) for a in args]
        self.timeout = timeout
        self.env = None if env is None else {**os.environ, **env}
        self.cwd = cwd
        self.stdin_data = stdin
        self.name = name or os.path.basename(self.args[0])
        self.dir = Path(tempfile.mkdtemp(prefix="sb-proc-"))
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.rusage = None
        self.started_at = None
        self.elapsed = None

    def __repr__(self):
        return f"Process({self.name}, pid={self.pid}, rc={self.returncode})"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self):
        if self.proc:
            return self
        _register(self)
        self._out = open(self.dir / "stdout", "wb")
        self._err = open(self.dir / "stderr", "wb")
        stdin = subprocess.PIPE if self.stdin_data is not None else subprocess.DEVNULL
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(self.args, stdin=stdin, stdout=self._out,
                                     stderr=self._err, env=self.env, cwd=self.cwd,
                                     start_new_session=True)
        if self.stdin_data is not None:
            data = self.stdin_data.encode() if isinstance(self.stdin_data, str) else self.stdin_data
            try:
                self.proc.stdin.write(data)
                self.proc.stdin.close()
            except BrokenPipeError:
                pass
        return self

    def _reap(self, block: bool) -> bool:
        if self.returncode is not None:
            return True
        try:
            pid, status, ru = os.wait4(self.proc.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:
            self.proc.poll()
            self.returncode = self.proc.returncode
            self.elapsed = time.monotonic() - self.started_at
            return True
        if pid == 0:
            return False
        self.returncode = os.waitstatus_to_exitcode(status)
        self.proc.returncode = self.returncode
        self.rusage = ru
        self.elapsed = time.monotonic() - self.started_at
        return True

    def poll(self):
        self._reap(False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for exit; after `timeout` (default: the constructor's) the process is
        stopped and PeerError raised with its output."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self._reap(False):
            if time.monotonic() >= deadline:
                self.stop()
                raise PeerError(f"{self.name} still running after {limit}s: killed\n"
                                f"stdout:\n{self.stdout[-4000:]}\nstderr:\n{self.stderr[-4000:]}")
            time.sleep(0.01)
        self._close()
        return self.returncode

    def stop(self):
        try:
            if self.proc and self.returncode is None:
                if self.proc.poll() is None and not self._reap(False):
                    try:
                        os.kill(self.proc.pid, signal.SIGTERM)
                    except ProcessLookupError:
                        pass
                    deadline = time.monotonic() + 5
                    while not self._reap(False) and time.monotonic() < deadline:
                        time.sleep(0.02)
                    if self.returncode is None:
                        try:
                            os.kill(self.proc.pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                        self._reap(True)
                else:
                    self._reap(False)
        finally:
            self._close()
            self._cleanup()
            _unregister(self)

    def _close(self):
        for f in ("_out", "_err"):
            fh = getattr(self, f, None)
            if fh:
                fh.close()
                setattr(self, f, None)

    def _read(self, name: str) -> str:
        cached = getattr(self, "_cached_" + name, None)
        if cached is not None:
            return cached
        try:
            return (self.dir / name).read_text(errors="replace")
        except OSError:
            return ""

    def _cleanup(self):
        # Keep the output in memory once the process is gone; remove the temp dir.
        if not self.dir.exists():
            return
        self._cached_stdout = self._read("stdout")
        self._cached_stderr = self._read("stderr")
        shutil.rmtree(self.dir, ignore_errors=True)

    @property
    def stdout(self) -> str:
        return self._read("stdout")

    @property
    def stderr(self) -> str:
        return self._read("stderr")

    @property
    def cpu_seconds(self) -> float | None:
        """user+sys CPU seconds of the finished process (and children it waited for)."""
        if not self.rusage:
            return None
        return self.rusage.ru_utime + self.rusage.ru_stime

    @property
    def max_rss_kb(self) -> int | None:
        return self.rusage.ru_maxrss if self.rusage else None


def run(args, timeout: float = 120.0, **kw) -> Process:
    """Run to completion; returns the finished Process (returncode, stdout, rusage)."""
    p = Process(args, timeout=timeout, **kw)
    p.start()
    try:
        p.wait()
    finally:
        p.stop()
    return p


# ---------------------------------------------------------------------------------------
# DNS

class Dnsmasq(_Fixture):
    """Debian's dnsmasq serving `config` (dnsmasq.conf lines: mx-host=, host-record=,
    cname=, local=, server=) on 127.0.0.1 and a free UDP/TCP port, no upstream, no
    /etc/hosts. `address` is "127.0.0.1:PORT" (for --dns-server); queries are logged
    (queries() reads the log). Stopped by PID."""

    BINARY = "/usr/sbin/dnsmasq"

    def __init__(self, config: str):
        self.config = config
        self.dir = Path(tempfile.mkdtemp(prefix="sb-dnsmasq-"))
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @staticmethod
    def _udp_taken(port: int) -> bool:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.0.0.1", port))
            return False
        except OSError:
            return True
        finally:
            s.close()

    def start(self):
        if self.proc:
            return self
        _register(self)
        conf = self.dir / "dnsmasq.conf"
        conf.write_text(self.config)
        try:
            for _ in range(5):
                self.port = free_port("127.0.0.1")
                cmd = [self.BINARY, "--no-daemon", f"--port={self.port}",
                       "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv",
                       "--no-hosts", "--log-queries", f"--log-facility={self.dir / 'queries.log'}",
                       f"--conf-file={conf}", f"--pid-file={self.dir / 'pid'}"]
                self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                             start_new_session=True)
                deadline = time.monotonic() + 5
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None:
                        break  # port clash: another try
                    if self._udp_taken(self.port):
                        return self
                    time.sleep(0.02)
                stop_pid(self.proc.pid, timeout=5, popen=self.proc)
                self.proc = None
            raise PeerError("dnsmasq did not start")
        except BaseException:
            self.stop()
            raise

    def stop(self):
        try:
            if self.proc:
                stop_pid(self.proc.pid, timeout=5, popen=self.proc)
                self.proc = None
        finally:
            _unregister(self)
            shutil.rmtree(self.dir, ignore_errors=True)

    def queries(self) -> list[str]:
        """Logged questions as "TYPE name" (e.g. "MX one.test")."""
        p = self.dir / "queries.log"
        out = []
        if p.exists():
            for line in p.read_text(errors="replace").splitlines():
                m = re.search(r"query\[(\w+)\] (\S+) from", line)
                if m:
                    out.append(f"{m.group(1)} {m.group(2)}")
        return out
