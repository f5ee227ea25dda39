"""The Python helpers of smtpblast's integration tests (tests/integration/test_*.py) and of the
benchmark scripts (bench/*.py), as one package.

Modules (each opens with what it holds):
    support.procs      start a process, wait for its port, stop it by PID; free ports; the
                       benchmarks' timed run (run_timed)
    support.workdir    Workdir (a temp dir removed at exit) and the private $XDG_STATE_HOME
    support.sinks      the sinks: BlastSink (`smtpblast sink`), SmtpSink (Postfix's smtp-sink),
                       AiosmtpdServer; make_sink(kind)
    support.scripted   the scripted-server base: ThreadServer (raw TCP), ScriptedSmtp (an SMTP
                       dialogue whose replies are hooks), LineIO/Conn, ScriptedServer
    support.tls_peers  test certificates and TlsSmtp (ScriptedSmtp with STARTTLS, implicit TLS,
                       AUTH PLAIN/LOGIN/XOAUTH2)
    support.peers      real peers: PostfixInstance, Dnsmasq (and, re-exported, the sinks and
                       the process helpers, so `peers.run`, `peers.SmtpSink` work)
    support.smsc       SMS peers: Smsc (the npm smpp server, scripted by smsc_sim.js: throttle,
                       reject, drop, receipts, STOP) and HttpSmsStub (Twilio/Vonage-shaped API)
    support.postgres   PostgresServer: a private PostgreSQL 15 (initdb, loopback port + socket,
                       a password role, restart/crash); the C++ tests' ctest fixture `pg_server`
    support.blast      the smtpblast binary, send/status/db_rows, the unittest runner main()

How a test file imports them (no sys.path edits in test files):
    from support import blast, peers, tls_peers
    from support.scripted import ScriptedSmtp, ThreadServer, silent

ctest sets PYTHONPATH to tests/ and tools/ (tests/CMakeLists.txt), plus SMTPBLAST and
SMTPBLAST_SOURCE_DIR. To run one test file by hand, from the repo root, as root:
    tools/itest.sh test_faults                     # or: tools/itest.sh test_faults -k Name
which is the same as
    PYTHONPATH=tests:tools SMTPBLAST=build/bin/smtpblast /usr/bin/python3 \\
        tests/integration/test_faults.py [unittest args]
(SMTPBLAST_KEEP_PEERS=1 keeps the temp dirs of the peers for a look afterwards.)

Before this package (issue #11) the helpers were tests/integration/blast.py, tls_peers.py and
tools/peers.py, imported after a sys.path.insert. A test file written in that style converts so:
    import blast                  ->  from support import blast
    from blast import peers       ->  from support import peers
    import peers                  ->  from support import peers
    import tls_peers              ->  from support import tls_peers
    sys.path.insert(..., "tools") ->  (delete: tools/ is on PYTHONPATH; `import dkim_verify` works)
    class X(blast.ThreadServer)   ->  unchanged for a raw TCP server; an SMTP dialogue subclasses
                                      support.scripted.ScriptedSmtp and overrides its hooks
    HostileSmtp (its hooks)       ->  support.scripted.ScriptedSmtp; the hooks `auth` and
                                      `starttls` are now `auth_reply` and `starttls_reply`
    from test_tls_auth import FATAL_RC, secret_forms, task_dump  ->  from support.blast import ...
"""
