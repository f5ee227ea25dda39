#!/bin/bash
# Installs what is missing, checks the format of the C++ files this branch changed, builds
# with warnings as errors, and runs every test: unit, integration (real Postfix, smtp-sink,
# aiosmtpd on loopback) and fuzz replays; then the same tests in an ASan+UBSan build. This is
# what CI runs (.ci/run).
#
#   tools/test.sh                  # everything
#   tools/test.sh --no-asan        # skip the ASan+UBSan build (quicker local runs)
#   tools/test.sh --no-format      # skip the format check (tools/check_format.sh)
#   tools/test.sh --format-base B  # the format check compares with B (default: see the script)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
asan=1
format=1
format_base=()
while (($#)); do
  case "$1" in
    --no-asan) asan=0 ;;
    --no-format) format=0 ;;
    --format-base) format_base=("${2:?--format-base needs a commit}"); shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
jobs=$(nproc)
start=$(date +%s)
phase_start=$start
phase() {  # prints how long the previous phase took, then the next one's title
  local now
  now=$(date +%s)
  (( now > phase_start )) && echo "   ($(( now - phase_start )) s)"
  phase_start=$now
  echo "== $*"
}

bash tools/bootstrap.sh

if ((format)); then
  phase "format of the C++ files changed (tools/check_format.sh)"
  bash tools/check_format.sh "${format_base[@]}"
fi

phase "build (RelWithDebInfo, -Werror)"
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPBLAST_WERROR=ON >/dev/null
cmake --build build-test -j "$jobs"
phase "tests"
(cd build-test && ctest --output-on-failure -j "$jobs" --timeout 900)

if ((asan)); then
  phase "build (ASan+UBSan, -Werror)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSMTPBLAST_WERROR=ON \
    -DSMTPBLAST_SANITIZE=address,undefined -DSMTPBLAST_BENCH=OFF >/dev/null
  cmake --build build-asan -j "$jobs"
  phase "tests under ASan+UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  (cd build-asan && ctest --output-on-failure -j "$jobs" --timeout 900)
fi
phase "all tests passed in $(( $(date +%s) - start )) s"
