#!/bin/bash
# Runs one integration test file by hand, as ctest does: PYTHONPATH with tests/ (the support
# package) and tools/, SMTPBLAST (default build/bin/smtpblast) and SMTPBLAST_SOURCE_DIR.
#
#   tools/itest.sh test_faults                 # tests/integration/test_faults.py
#   tools/itest.sh test_faults -k Restart      # extra arguments go to unittest
#   SMTPBLAST=build-asan/bin/smtpblast tools/itest.sh test_hangs
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if (($# < 1)); then
  echo "usage: tools/itest.sh test_NAME [unittest args]" >&2
  exit 2
fi
name="${1%.py}"
name="${name##*/}"
shift
export SMTPBLAST_SOURCE_DIR="$root"
export SMTPBLAST="${SMTPBLAST:-$root/build/bin/smtpblast}"
export PYTHONPATH="$root/tests:$root/tools${PYTHONPATH:+:$PYTHONPATH}"
cd "$root/tests/integration"
exec /usr/bin/python3 "$root/tests/integration/$name.py" "$@"
