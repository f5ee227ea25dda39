#!/bin/bash
# DKIM signing cost end to end (issue 7): the same mailing with no DKIM, rsa-sha256 (2048 bits),
# ed25519-sha256 and both at once, side by side in one run, into `smtpblast sink`; N messages of
# ~2 KB, R repeats, medians. msgs/s and the sender's CPU seconds per 1,000 messages (os.wait4 of
# the smtpblast process alone), and what that means per core.
#
#   bench/bench_dkim.sh [-r R] [-n COUNT] [-c CONNS] [--per-connection P]
#                       [--configs none,rsa-sha256,ed25519-sha256,both]
#
# The smtpblast binary is $SMTPBLAST, else build/bin/smtpblast. Everything listens on
# 127.0.0.1, free ports; every process started is stopped by its PID. The output is Markdown
# for bench/RESULTS.md. The work is done by bench/bench_dkim.py (Debian's python3, stdlib only).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SMTPBLAST_SOURCE_DIR="${SMTPBLAST_SOURCE_DIR:-$(dirname "$here")}"
if [[ -z "${SMTPBLAST:-}" && -x "$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast" ]]; then
  export SMTPBLAST="$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast"
fi
exec /usr/bin/python3 "$here/bench_dkim.py" "$@"
