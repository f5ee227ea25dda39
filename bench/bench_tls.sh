#!/bin/bash
# TLS benchmark of issue 3: smtpblast vs Nodemailer's pooled SMTP transport, side by side in
# one run, against the same private Postfix smtpd with STARTTLS (messages discarded on
# arrival), 10 connections, 20,000 messages of ~2 KB, 100 messages per connection, with and
# without TLS session resumption; R repeats, medians.
#
#   bench/bench_tls.sh [-r R] [-n COUNT] [-c CONNS] [--per-connection P]
#                      [--senders smtpblast,nodemailer] [--resumption on,off] [--keep]
#
# The smtpblast binary is $SMTPBLAST, else build/bin/smtpblast; when its `send --help` has
# no --tls yet that half is skipped (and without --no-tls-resumption, its "off" runs).
# Nodemailer comes from bench/node_modules (tools/bootstrap.sh --bench) and runs through
# bench/nodemailer_send.js. Needs root (private Postfix instance). Everything listens on
# 127.0.0.1, free ports; every process started is stopped by its PID. The output is
# Markdown for bench/RESULTS.md. The work is done by bench/bench_tls.py (Debian's python3).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SMTPBLAST_SOURCE_DIR="${SMTPBLAST_SOURCE_DIR:-$(dirname "$here")}"
if [[ -z "${SMTPBLAST:-}" && -x "$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast" ]]; then
  export SMTPBLAST="$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast"
fi
exec /usr/bin/python3 "$here/bench_tls.py" "$@"
