"""Real peers for smtpblast's integration tests and benchmarks: a private Postfix, dnsmasq,
and (re-exported from support.sinks) Postfix's smtp-sink and the aiosmtpd server.

Standard library only; run with Debian's interpreter, /usr/bin/python3 (the `python3`
on PATH may be another build without Debian's modules).

Everything here listens on loopback only (127.0.0.0/8 or ::1) on a port picked free
at run time, and every process it starts is stopped by its PID: by the context
manager, by stop(), and as a last resort at interpreter exit (atexit), so a failing
test leaves nothing running. The process and port helpers live in support.procs and are
re-exported here (peers.run, peers.Process, peers.free_port, ...).

    PostfixInstance            a private Postfix (smtpd + delivery into maildirs)
    Dnsmasq                    dnsmasq answering a test zone on 127.0.0.1
    SmtpSink, AiosmtpdServer   see support.sinks
    strip_trace_headers(msg)   drop the trace headers Postfix adds on delivery
    crlf(data), lf(data)       line-ending conversions
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from support.procs import (  # noqa: F401  (re-exported: tests spell them peers.X)
    SOURCE_DIR, Fixture, PeerError, Process, free_port, free_port_on, pid_alive, run, run_timed,
    smtpblast_binary, stop_pid, wait_port)
from support.procs import (become_subreaper as _become_subreaper,
                           check_loopback as _check_loopback, hostport as _hostport,
                           pid_alive as _pid_alive, reap as _reap, register as _register,
                           tail as _tail, unregister as _unregister,
                           user_ids as _user_ids)
from support.sinks import SMTP_SINK, AiosmtpdServer, SmtpSink  # noqa: F401  (re-exported)

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"
SMTP_SOURCE = shutil.which("smtp-source", path="/usr/sbin:/usr/bin") or "/usr/sbin/smtp-source"


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
# Private Postfix instance

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


class PostfixInstance(Fixture):
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
            line = (f"{name:<28} {typ:<10} {private:<3} {unpriv:<3} {chroot:<3} {wakeup:<6} "
                    f"{maxproc:<4} {cmd}")
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

# DNS

class Dnsmasq(Fixture):
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
