"""A private PostgreSQL 15 server for the tests and benchmarks: initdb into a directory of the
test's own, loopback TCP on a free port plus a unix socket in that directory, a password
(SCRAM) role for the tests, started with pg_ctl and stopped by the postmaster's PID.

Standard library only; run with Debian's interpreter, /usr/bin/python3. Debian's postgresql-15
package provides the binaries (tools/bootstrap.sh installs it); initdb refuses to run as root,
so when the tests run as root the server's commands run as the `postgres` user and its
directory is handed to that user.

    with PostgresServer() as pg:            # or pg = PostgresServer(); pg.start(); ... pg.stop()
        url = pg.url("march")               # postgresql://sbtest@127.0.0.1:PORT/smtpblast?task=march
        env = pg.env()                      # {"PGPASSFILE": ...}: the password reaches libpq
                                            # through its own sources, never argv
        pg.sql("SELECT count(*) FROM ...")  # rows as lists of str (psql as the superuser)
        pg.create_database("other")         # a fresh database owned by the test role
        pg.restart()                        # "PostgreSQL restarted mid-run" (same port)
        pg.crash()                          # kill -9 of the postmaster (then start() again)

The C++ tests share one server per ctest run (tests/CMakeLists.txt, fixture `pg_server`):
    python3 -m support.postgres start DIR   # prints the SB_TEST_PG_URL / PGPASSFILE lines and
                                            # leaves the server running (its state in DIR)
    python3 -m support.postgres stop DIR    # stops it by the PID recorded in DIR
By hand: eval "$(PYTHONPATH=tests /usr/bin/python3 -m support.postgres start /tmp/sbpg)".
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from support.procs import (Fixture, PeerError, become_subreaper, free_port, pid_alive, reap,
                           register, stop_pid, tail, unregister)
from support.workdir import Workdir

PG_BIN = Path(os.environ.get("SB_PG_BIN", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
TEST_ROLE = "sbtest"
TEST_DB = "smtpblast"


def available() -> str | None:
    """None when a server can be started here, else the reason (for skipTest)."""
    if not (PG_BIN / "initdb").exists():
        return f"{PG_BIN}/initdb missing (Debian package postgresql-15; tools/bootstrap.sh)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return "running as root and no `postgres` user to run initdb as"
    return None


class PostgresServer(Fixture):
    """One private cluster. `directory` defaults to a fresh Workdir (removed at exit).

    The server listens on 127.0.0.1:`port` (a free port unless given) and on a unix socket in
    <directory>/sock (`tcp=False`: the socket only, for a fixture whose URL is fixed before the
    port could be picked). Local connections as the superuser are trusted (setup only); every
    other connection needs the test role's password (scram-sha-256), so credential tests see
    libpq's real "password authentication failed".

    `fsync=False` (the default) is safe against a crash of the server process (kill -9,
    restart), which is what the tests do; the benchmarks pass fsync=True to measure the real
    cost of a commit.
    """

    def __init__(self, directory: str | os.PathLike | None = None, port: int | None = None,
                 tcp: bool = True, fsync: bool = False, password: str | None = None,
                 max_connections: int = 100, log_statements: bool = False):
        self._workdir = None
        if directory is None:
            self._workdir = Workdir(prefix="sb-pg-")
            directory = self._workdir.path
        self.dir = Path(directory).resolve()
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self.passfile = self.dir / "pgpass"
        self.port = port
        self._fixed_port = port is not None
        self.tcp = tcp
        self.fsync = fsync
        self.password = password or secrets.token_hex(12)
        self.max_connections = max_connections
        self.log_statements = log_statements
        self.host = "127.0.0.1"
        self.user = TEST_ROLE
        self.database = TEST_DB
        self.pid: int | None = None
        self._initialised = False

    def __repr__(self):
        return f"PostgresServer({self.dir}, port={self.port}, pid={self.pid})"

    # -- running the server's own commands ---------------------------------------------------

    def _as_owner(self) -> dict:
        if os.geteuid() != 0:
            return {}
        pw = pwd.getpwnam(SUPERUSER)
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _run(self, args, check=True, input=None, timeout=60) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        p = subprocess.run([str(a) for a in args], input=input, capture_output=True, text=True,
                           env=env, cwd=self.dir, timeout=timeout, **self._as_owner())
        if check and p.returncode != 0:
            raise PeerError(f"{Path(str(args[0])).name} failed (rc {p.returncode}): "
                            f"{p.stderr.strip() or p.stdout.strip()}\n--- log:\n{tail(self.log)}")
        return p

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            pw = pwd.getpwnam(SUPERUSER)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    # -- life cycle --------------------------------------------------------------------------

    def _initdb(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)  # the postgres user must reach data/ and sock/
        for d in (self.data, self.sock):
            d.mkdir(exist_ok=True)
            self._chown(d)
        os.chmod(self.data, 0o700)
        self.log.touch()
        self._chown(self.log)
        self._run([PG_BIN / "initdb", "-D", self.data, "-U", SUPERUSER, "-E", "UTF8",
                   "--no-locale", "--no-sync", "--no-instructions",
                   "--auth-local=trust", "--auth-host=scram-sha-256"])
        # Superuser over the socket: trusted (the fixture's own setup). Anyone else, on the
        # socket or TCP: the password.
        hba = ("local all postgres trust\n"
               "local all all scram-sha-256\n"
               "host all all 127.0.0.1/32 scram-sha-256\n"
               "host all all ::1/128 scram-sha-256\n")
        (self.data / "pg_hba.conf").write_text(hba)
        self._chown(self.data / "pg_hba.conf")
        conf = [
            f"unix_socket_directories = '{self.sock}'",
            f"fsync = {'on' if self.fsync else 'off'}",
            f"synchronous_commit = {'on' if self.fsync else 'off'}",
            f"full_page_writes = {'on' if self.fsync else 'off'}",
            f"max_connections = {self.max_connections}",
            "shared_buffers = 64MB",
            "password_encryption = 'scram-sha-256'",
            "log_line_prefix = '%m [%p] %q%u@%d '",
            "log_min_messages = warning",
            f"log_statement = '{'all' if self.log_statements else 'none'}'",
            "timezone = 'UTC'",
        ]
        with open(self.data / "postgresql.auto.conf", "a") as f:
            f.write("\n".join(conf) + "\n")
        self._initialised = True

    def _options(self) -> str:
        listen = self.host if self.tcp else ""
        return f"-c listen_addresses='{listen}' -p {self.port}"

    def _pg_ctl_start(self) -> None:
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "30",
                   "-o", self._options(), "start"])
        self.pid = self._postmaster_pid()
        if self.pid is None:
            raise PeerError(f"postgres started but left no postmaster.pid\n{tail(self.log)}")

    def start(self):
        if self.pid is not None and pid_alive(self.pid):
            return self
        if not self._initialised and not (self.data / "PG_VERSION").exists():
            why = available()
            if why:
                raise PeerError(why)
            self._initdb()
        # pg_ctl forks the postmaster and exits: as the subreaper we adopt it, and reap it (and its
        # backends) when it dies, so a crashed server's PID is free for the next start.
        become_subreaper()
        register(self)
        tries = 1 if self._fixed_port else 3
        for attempt in range(tries):
            if self.port is None or (attempt and not self._fixed_port):
                self.port = free_port(self.host)  # a race with another binder: retry anew
            try:
                self._pg_ctl_start()
                break
            except PeerError:
                if attempt == tries - 1 or "could not bind" not in tail(self.log):
                    raise
        self._setup_role()
        self._write_passfile()
        return self

    def _setup_role(self) -> None:
        # The password goes in on stdin, never in argv (ps would show it).
        exists = self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{TEST_ROLE}'", db="postgres")
        verb = "ALTER" if exists else "CREATE"
        self.sql(f"{verb} ROLE {TEST_ROLE} LOGIN CREATEDB PASSWORD '{self.password}'",
                 db="postgres")
        if not self.sql(f"SELECT 1 FROM pg_database WHERE datname = '{TEST_DB}'", db="postgres"):
            self.create_database(TEST_DB)

    def _write_passfile(self) -> None:
        # libpq ignores a password file that group or others can read.
        lines = [f"{h}:{self.port}:*:{TEST_ROLE}:{self.password}"
                 for h in (self.host, "localhost", str(self.sock))]
        fd = os.open(self.passfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _postmaster_pid(self) -> int | None:
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
            return int(first)
        except (OSError, ValueError):
            return None

    def stop(self, mode: str = "fast"):
        """pg_ctl stop -m `mode` (fast: clients disconnected, a clean shutdown); if the
        postmaster is still there after 10 s, SIGKILL to its PID."""
        try:
            pid = self.pid or self._postmaster_pid()
            if pid is not None and pid_alive(pid):
                family = self._family(pid)
                self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "10",
                           "stop"], check=False, timeout=30)
                if pid_alive(pid):
                    stop_pid(pid, timeout=5, sig=signal.SIGKILL)
                self._wait_gone(family)
            self.pid = None
        finally:
            unregister(self)
            if self._workdir is not None:
                self._workdir.cleanup()
                self._workdir = None

    def _family(self, pid: int) -> list[int]:
        """The postmaster and its children (backends, background workers)."""
        pids = [pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[1]) == pid:
                    pids.append(int(entry.name))
        return pids

    def _wait_gone(self, pids: list[int], timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            reap(pids)
            left = [p for p in pids if pid_alive(p)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        reap(pids)

    def crash(self) -> None:
        """kill -9 of the postmaster (its backends exit when they see it gone); start() brings
        the server back on the same port, with crash recovery."""
        pid = self.pid or self._postmaster_pid()
        if pid is not None:
            family = self._family(pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            # A backend still holding the shared memory makes the next start fail with
            # "pre-existing shared memory block is still in use": wait until all are gone.
            self._wait_gone(family)
        self.pid = None

    def restart(self, mode: str = "fast", down_for: float = 0.0) -> None:
        """Stop (pg_ctl -m `mode`; "immediate" is a crash without a kill), stay down for
        `down_for` seconds, start again on the same port: "PostgreSQL restarted mid-run"."""
        pid = self.pid or self._postmaster_pid()
        family = self._family(pid) if pid is not None else []
        self._run([PG_BIN / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop"],
                  timeout=60)
        if pid is not None and pid_alive(pid):
            stop_pid(pid, timeout=5, sig=signal.SIGKILL)
        self._wait_gone(family)
        self.pid = None
        if down_for:
            time.sleep(down_for)
        self._pg_ctl_start()

    # -- what tests use ----------------------------------------------------------------------

    def url(self, task: str | None = None, database: str | None = None,
            user: str | None = None, via_socket: bool = False) -> str:
        """postgresql://sbtest@127.0.0.1:PORT/smtpblast[?task=NAME] — no password: it comes
        from env() (PGPASSFILE)."""
        db = database or self.database
        who = user or self.user
        if via_socket or not self.tcp:
            base = f"postgresql://{who}@/{db}?host={self.sock}&port={self.port}"
            return base + (f"&task={task}" if task else "")
        base = f"postgresql://{who}@{self.host}:{self.port}/{db}"
        return base + (f"?task={task}" if task else "")

    def env(self) -> dict:
        """The environment a client needs besides the URL: the password file."""
        return {"PGPASSFILE": str(self.passfile)}

    def sql(self, query: str, db: str | None = None, timeout: float = 60) -> list[list[str]]:
        """Runs `query` with psql as the superuser over the socket; the rows, as lists of
        str (NULL as ""). Raises PeerError on an SQL error."""
        p = self._run([PG_BIN / "psql", "-X", "-q", "-A", "-t", "-F", "\t",
                       "-v", "ON_ERROR_STOP=1", "-h", self.sock, "-p", self.port,
                       "-U", SUPERUSER, "-d", db or self.database],
                      input=query, timeout=timeout)
        return [line.split("\t") for line in p.stdout.splitlines() if line]

    def create_database(self, name: str, drop: bool = False) -> str:
        """A fresh database owned by the test role (for a test that wants its own)."""
        if drop:
            self.sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', db="postgres")
        self.sql(f'CREATE DATABASE "{name}" OWNER {TEST_ROLE}', db="postgres")
        return name

    def cpu_seconds(self) -> float:
        """user+sys CPU of the postmaster and all its current backends (from /proc), for the
        benchmarks: read before and after a run. Backends that exited are counted in the
        postmaster's cutime/cstime."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        pid = self.pid or self._postmaster_pid()
        if pid is None:
            return 0.0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ppid = int(fields[1])
            if int(entry.name) == pid:
                total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            elif ppid == pid:
                total += int(fields[11]) + int(fields[12])
        return total / tick


# ---------------------------------------------------------------------------------------
# The ctest fixture: one server for all C++ tests of a run.

def _state_file(directory: Path) -> Path:
    return directory / "fixture.json"


def _cli(argv) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print("usage: python3 -m support.postgres start|stop DIR", file=sys.stderr)
        return 2
    verb, directory = argv[0], Path(argv[1])
    if verb == "start":
        why = available()
        if why:
            print(f"postgres fixture: {why}", file=sys.stderr)
            return 1
        # A server left by an earlier run that was interrupted: stop it, start afresh.
        if _state_file(directory).exists():
            _cli(["stop", str(directory)])
        if directory.exists():
            shutil.rmtree(directory)
        pg = PostgresServer(directory, port=5432, tcp=False)
        pg.start()
        unregister(pg)  # it outlives this process: `stop DIR` ends it
        _state_file(directory).write_text(json.dumps({"pid": pg.pid, "url": pg.url()}))
        print(f"export SB_TEST_PG_URL='{pg.url()}'")
        print(f"export PGPASSFILE='{pg.passfile}'")
        return 0
    state = _state_file(directory)
    if not state.exists():
        return 0
    pg = PostgresServer(directory, port=5432, tcp=False)
    pg.pid = json.loads(state.read_text()).get("pid")
    pg.stop()
    shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(_cli(sys.argv[1:]))
