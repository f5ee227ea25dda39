"""Processes and ports for the integration tests and the benchmarks: start a process, wait for
its port, stop it by PID; nothing started here outlives the test (atexit and SIGTERM stop it).

Standard library only; run with Debian's interpreter, /usr/bin/python3.

    free_port(host), free_port_on(hosts)   a free TCP port on loopback address(es)
    wait_port(host, port, banner=False)    until host:port accepts (and greets)
    stop_pid(pid)                          SIGTERM, wait, SIGKILL
    Process(args, timeout)                 a background process with captured output and rusage
    run(args, timeout)                     a Process run to completion
    run_timed(cmd, timeout, workdir)       a sender under /usr/bin/time: CPU and peak RSS of it
                                           alone (the benchmarks' measure)
    Fixture                                start()/stop() plus the context manager
    smtpblast_binary()                     $SMTPBLAST, else build/bin/smtpblast
"""

from __future__ import annotations

import atexit
import grp
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SOURCE_DIR = Path(os.environ.get("SMTPBLAST_SOURCE_DIR")
                  or Path(__file__).resolve().parent.parent.parent)
TIME = "/usr/bin/time"

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


def register(obj) -> None:
    with _live_lock:
        _live.add(obj)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGHUP):
            if signal.getsignal(sig) == signal.SIG_DFL:
                signal.signal(sig, _on_sigterm)


def unregister(obj) -> None:
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


def pid_alive(pid: int) -> bool:
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


def become_subreaper() -> None:
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


def reap(pids) -> None:
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
            if not pid_alive(pid):
                return True
            time.sleep(0.02)
        return not pid_alive(pid)

    if popen is not None and popen.poll() is not None:
        return
    if popen is None and not pid_alive(pid):
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

def check_loopback(host: str) -> str:
    h = host.strip("[]")
    if h == "localhost":
        return "127.0.0.1"
    if not ipaddress.ip_address(h).is_loopback:
        raise ValueError(f"{host}: test peers listen on loopback (127.0.0.0/8, ::1) only")
    return h


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def hostport(host: str, port: int) -> str:
    """host:port as Postfix and smtpblast spell it ([::1]:25 for IPv6)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on `host` (a loopback address) right now.

    There is a small race between this call and the server binding the port; the
    fixtures retry their start once with a new port when the bind fails.
    """
    host = check_loopback(host)
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
                s.bind((check_loopback(h), port))
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



# ---------------------------------------------------------------------------------------
# Base class for fixtures

class Fixture:
    """start() and stop(), and the context manager that calls them."""

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


def tail(path: Path, nbytes: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - nbytes))
            return f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"


# ---------------------------------------------------------------------------------------
# Background process (smtpblast under test)

def user_ids(name: str, fallback_group: str | None = None) -> tuple[int, int]:
    """(uid, gid) of user `name`; gid of `fallback_group` when that group exists."""
    pw = pwd.getpwnam(name)
    gid = pw.pw_gid
    if fallback_group:
        try:
            gid = grp.getgrnam(fallback_group).gr_gid
        except KeyError:
            pass
    return pw.pw_uid, gid


def smtpblast_binary() -> str | None:
    """$SMTPBLAST, else build/bin/smtpblast under $SMTPBLAST_SOURCE_DIR or the repo."""
    cand = os.environ.get("SMTPBLAST")
    if cand:
        return cand
    root = SOURCE_DIR
    p = root / "build" / "bin" / "smtpblast"
    return str(p) if p.exists() else None


class Process(Fixture):
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
        register(self)
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
            unregister(self)

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


def run_timed(cmd, timeout: float, workdir=None, prefix=None):
    """Run one sender to completion. Returns (Process, rc, wall, usage) where usage is
    {"user", "sys", "maxrss_kb"} of the sender process alone.

    By default the sender runs under /usr/bin/time (-f "%U %S %M"), whose fork is tiny:
    a child forked straight from this Python process would inherit Python's ~18 MB in
    its ru_maxrss before exec. CPU comes from os.wait4 on `time` (microseconds; it
    includes the sender, which `time` waits for, plus `time`'s own negligible share);
    peak RSS from time's %M."""
    usage_file = None
    if prefix is None:
        if os.access(TIME, os.X_OK):
            fd, usage_file = tempfile.mkstemp(prefix="usage-", dir=workdir)
            os.close(fd)
            prefix = [TIME, "-f", "%U %S %M", "-o", usage_file]
        else:
            print(f"warning: {TIME} missing (Debian package `time`): peak RSS includes "
                  f"the forking Python process", file=sys.stderr, flush=True)
            prefix = []
    p = Process([*prefix, *cmd], timeout=timeout, name=os.path.basename(str(cmd[0])))
    t0 = time.monotonic()
    p.start()
    try:
        rc = p.wait()
    finally:
        p.stop()
    wall = time.monotonic() - t0
    usage = {"user": float("nan"), "sys": float("nan"), "maxrss_kb": None}
    if p.rusage:
        usage.update(user=p.rusage.ru_utime, sys=p.rusage.ru_stime,
                     maxrss_kb=p.rusage.ru_maxrss)
    if usage_file:
        try:
            lines = Path(usage_file).read_text().strip().splitlines()
            # time prints "Command exited with non-zero status N" first on failure.
            usage["maxrss_kb"] = int(lines[-1].split()[2])
        except (OSError, IndexError, ValueError):
            pass
        os.unlink(usage_file)
    return p, rc, wall, usage
