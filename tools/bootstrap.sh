#!/bin/bash
# Install every Debian package smtpblast needs to build, test and benchmark.
#
#   tools/bootstrap.sh            # build + test + peer packages (+ npm smpp for the SMS tests)
#   tools/bootstrap.sh --bench    # also `npm install` nodemailer into bench/node_modules
#
# Idempotent: prints what is missing, installs only that (running `apt-get update`
# first only when something is missing), and exits 0 when everything is there. Runs as
# root, non-interactively, on a fresh Debian 12. Postfix is installed with the debconf
# answer "No configuration", so no system MTA is configured; if the package started a
# system Postfix anyway, it is stopped (tests run private instances: tests/support/peers.py).
set -euo pipefail

bench=0
for arg in "$@"; do
  case "$arg" in
    --bench) bench=1 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bootstrap: unknown option $arg" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
export DEBIAN_FRONTEND=noninteractive

if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then exec sudo -E bash "$0" "$@"; fi
  echo "bootstrap: run as root (apt-get install), or install sudo" >&2
  exit 1
fi

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  libuv1-dev libssl-dev libc-ares-dev libldns-dev libsqlite3-dev
  libcli11-dev libcsv-dev libidn2-dev nlohmann-json3-dev
  libspf2-dev libpsl-dev
  # the config file (issue 15): a TOML parser that gives line numbers for errors
  libtomlplusplus-dev
  # returned mail (issue 14): MIME parsing, the classifier's rule set
  libgmime-3.0-dev libre2-dev libcurl4-openssl-dev
  # SMS (issue 19): SMPP 3.4 PDUs, E.164 phone numbers
  libsmpp34-dev libphonenumber-dev
  # unit tests and micro-benchmarks
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  # fuzzing and sanitizers; formatting and lint (.clang-format, .clang-tidy, check_format.sh)
  clang clang-format clang-tidy
  # real peers and tools for integration tests and benchmarks
  postfix python3 python3-aiosmtpd python3-dkim opendkim-tools iproute2 stunnel4 dnsmasq-base
  openssl strace sqlite3
  # a second, independent MIME parser for delivered messages (test_message_correctness.py)
  python3-gi gir1.2-gmime-3.0
  dovecot-imapd dovecot-pop3d
  # a real browser renders `smtpblast report`'s HTML (test_report.py; only for the test)
  chromium
  # Prometheus and promtool scrape and lint `send --metrics` (test_metrics.py; only for the test)
  prometheus
  ca-certificates time
  # several machines on one mailing (issue 13): the PostgreSQL store's client library, and a
  # private server the tests start (tests/support/postgres.py; the package's own cluster is
  # never started: policy-rc.d above)
  libpq-dev postgresql
)

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == "installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

system_postfix_pids() {
  # The system instance's master: its pid file under the default queue directory.
  # Private test instances (postfix -c DIR) keep theirs elsewhere and are left alone.
  local pidfile=/var/spool/postfix/pid/master.pid pid
  [[ -r $pidfile ]] || return 0
  pid=$(tr -dc '0-9' < "$pidfile")
  [[ -n $pid && -d /proc/$pid ]] && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == master ]] \
    && echo "$pid"
  return 0
}

stop_system_postfix() {
  local pid
  pid=$(system_postfix_pids)
  if command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; then
    systemctl disable --now postfix.service >/dev/null 2>&1 || true
  fi
  [[ -z $pid ]] && pid=$(system_postfix_pids)
  [[ -z $pid ]] && return 0
  echo "bootstrap: a system Postfix master is running (pid $pid): stopping it"
  if [[ -f /etc/postfix/main.cf ]]; then
    postfix stop >/dev/null 2>&1 || true
  fi
  for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  if [[ -d /proc/$pid ]]; then kill -TERM "$pid" 2>/dev/null || true; fi
  for _ in $(seq 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
  if [[ -d /proc/$pid ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
}

if ((${#missing[@]})); then
  echo "bootstrap: installing ${missing[*]}"
  # No system MTA: debconf answer for postfix, and no service starts during install.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  policy_created=0
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    policy_created=1
  fi
  cleanup_policy() { if ((policy_created)); then rm -f /usr/sbin/policy-rc.d; fi; }
  trap cleanup_policy EXIT
  apt-get update -q
  apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
  cleanup_policy
  trap - EXIT
  still=()
  for p in "${packages[@]}"; do installed "$p" || still+=("$p"); done
  if ((${#still[@]})); then
    echo "bootstrap: still missing after install: ${still[*]}" >&2
    exit 1
  fi
  echo "bootstrap: installed ${missing[*]}"
else
  echo "bootstrap: all ${#packages[@]} packages already installed"
fi
stop_system_postfix

# Node and npm: Debian's nodejs + npm packages when no node is on the PATH. A machine may have
# a node of its own (NodeSource's nodejs carries npm and conflicts with Debian's npm package),
# so the test is the command, not the package.
ensure_npm() {
  if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
    echo "bootstrap: node/npm missing: installing nodejs npm"
    apt-get update -q
    apt-get install -y -q --no-install-recommends nodejs npm
  fi
}

# The SMS tests' SMSC simulator: the npm `smpp` package (a real SMPP 3.4 server someone else
# wrote), next to the script that scripts it.
ensure_npm
if [[ -d "$root/tests/support/node_modules/smpp" ]]; then
  echo "bootstrap: smpp already in tests/support/node_modules"
else
  echo "bootstrap: npm install smpp (tests/support/node_modules)"
  (cd "$root/tests/support" && npm install --no-audit --no-fund --no-save --no-package-lock smpp@0.5)
fi

if ((bench)); then
  if [[ -d "$root/bench/node_modules/nodemailer" ]]; then
    echo "bootstrap: nodemailer already in bench/node_modules"
  else
    echo "bootstrap: npm install nodemailer (bench/node_modules)"
    (cd "$root/bench" && npm install --no-audit --no-fund --no-save --no-package-lock nodemailer)
  fi
fi

if pids=$(system_postfix_pids) && [[ -n $pids ]]; then
  echo "bootstrap: system Postfix master still running (pid $pids)" >&2
  exit 1
fi
echo "bootstrap: ok"
