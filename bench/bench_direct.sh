#!/bin/bash
# Direct-delivery benchmark (issue 6): 100,000 recipients over 1,000 domains whose MX
# records (dnsmasq on loopback) point at local `smtpblast sink`s, direct vs the same run
# through a relay; msgs/s, CPU per 1,000 messages, and DNS's share of the CPU.
#
#   bench/bench_direct.sh [-n COUNT] [-d DOMAINS] [-s SINKS] [-c CONNS] [-r REPEATS]
#
# Needs dnsmasq (tools/bootstrap.sh installs it). Everything listens on 127.0.0.0/8; every
# process started is stopped by its PID. The work is done by bench/bench_direct.py.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SMTPBLAST_SOURCE_DIR="${SMTPBLAST_SOURCE_DIR:-$(dirname "$here")}"
if [[ -z "${SMTPBLAST:-}" && -x "$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast" ]]; then
  export SMTPBLAST="$SMTPBLAST_SOURCE_DIR/build/bin/smtpblast"
fi
exec /usr/bin/python3 "$here/bench_direct.py" "$@"
