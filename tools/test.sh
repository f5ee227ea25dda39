#!/bin/bash
# Installs what is missing, builds with warnings as errors, and runs every test: unit,
# integration (real Postfix, smtp-sink, aiosmtpd on loopback) and fuzz replays; then the same
# tests in an ASan+UBSan build. This is what CI runs (.ci/run).
#
#   tools/test.sh              # everything
#   tools/test.sh --no-asan    # skip the sanitizer build (quicker local runs)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
asan=1
for arg in "$@"; do
  case "$arg" in
    --no-asan) asan=0 ;;
    *) echo "test.sh: unknown option $arg" >&2; exit 2 ;;
  esac
done
jobs=$(nproc)
start=$(date +%s)

bash tools/bootstrap.sh

echo "== build (RelWithDebInfo, -Werror)"
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPBLAST_WERROR=ON >/dev/null
cmake --build build-test -j "$jobs"
echo "== tests"
(cd build-test && ctest --output-on-failure -j "$jobs" --timeout 900)

if ((asan)); then
  echo "== build (ASan+UBSan, -Werror)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSMTPBLAST_WERROR=ON \
    -DSMTPBLAST_SANITIZE=address,undefined -DSMTPBLAST_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  echo "== tests under ASan+UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 900)
fi
echo "== all tests passed in $(( $(date +%s) - start )) s"
