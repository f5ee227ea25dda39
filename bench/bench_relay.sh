#!/bin/bash
# End-to-end relay benchmark of the foundation issue: smtpblast vs Postfix's smtp-source,
# side by side in one run, into the same kind of sink (Postfix's smtp-sink, then
# `smtpblast sink`), 100,000 messages of ~2 KB over 10 connections, R repeats, medians.
#
#   bench/bench_relay.sh [-r R] [-n COUNT] [-c CONNS] [--per-connection P]
#                        [--sinks smtp-sink,smtpblast] [--senders smtpblast,smtp-source]
#   bench/bench_relay.sh --strace      # each sender once under strace -c -f, 10,000 msgs:
#                                      # syscalls per message
#   bench/bench_relay.sh --rss N       # smtpblast sends N recipients: its peak RSS
#
# The smtpblast binary is $SMTPBLAST, else build/bin/smtpblast; when it is missing or its
# `send` / `sink` verbs don't answer --help yet, that half is skipped with a message.
# Needs root (smtp-sink drops to nobody), postfix (smtp-sink, smtp-source) and strace:
# tools/bootstrap.sh installs them. Everything listens on 127.0.0.1, free ports; every
# process started is stopped by its PID. The output is Markdown for bench/RESULTS.md.
# The work is done by bench/bench_relay.py (Debian's python3, stdlib only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SMTPBLAST_SOURCE_DIR="${SMTPBLAST_SOURCE_DIR:-$(dirname "$here")}"
if [[ -z "${SMTPBLAST:-}" && -x "$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast" ]]; then
  export SMTPBLAST="$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast"
fi
exec /usr/bin/python3 "$here/bench_relay.py" "$@"
