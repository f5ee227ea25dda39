#!/bin/bash
# Installs what is missing, checks the format of the C++ files this branch changed, builds
# with warnings as errors, and runs every test: unit, integration (real Postfix, smtp-sink,
# aiosmtpd on loopback) and fuzz replays; then the same tests in an ASan+UBSan build, and the
# tests where threads meet (ctest label `tsan`: loop, smtp, engine) in a ThreadSanitizer
# build. This is what CI runs (.ci/run). ccache is used when it is installed.
#
#   tools/test.sh                  # everything
#   tools/test.sh --no-asan        # skip the ASan+UBSan build (quicker local runs)
#   tools/test.sh --no-tsan        # skip the ThreadSanitizer build
#   tools/test.sh --no-format      # skip the format check (tools/check_format.sh)
#   tools/test.sh --format-base B  # the format check compares with B (default: see the script)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
asan=1
tsan=1
format=1
format_base=()
while (($#)); do
  case "$1" in
    --no-asan) asan=0 ;;
    --no-tsan) tsan=0 ;;
    --no-format) format=0 ;;
    --format-base) format_base=("${2:?--format-base needs a commit}"); shift ;;
    *) echo "test.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
jobs=$(nproc)
# Tests run two per core: the integration modules spend most of their time waiting on peers
# and timeouts, and ctest starts the longest first (COST in tests/CMakeLists.txt).
test_jobs=$((jobs * 2))
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
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
cmake -S . -B build-test -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPBLAST_WERROR=ON \
  "${launcher[@]}" >/dev/null
cmake --build build-test -j "$jobs"
phase "tests"
(cd build-test && ctest --output-on-failure -j "$test_jobs" --timeout 900 -LE soak)

# The sanitizer builds are unity builds (CMAKE_UNITY_BUILD: a folder's files compiled a batch
# at a time), which cuts their compile time by more than half (tests/engine: 75 s of CPU as
# single files, 28 s as one batch); the plain build compiles each file on its own, so a file
# that leans on another's includes still fails there.
if ((asan)); then
  phase "build (ASan+UBSan, -Werror)"
  cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug -DSMTPBLAST_WERROR=ON \
    -DSMTPBLAST_SANITIZE=address,undefined -DSMTPBLAST_BENCH=OFF -DCMAKE_UNITY_BUILD=ON \
    "${launcher[@]}" >/dev/null
  cmake --build build-asan -j "$jobs"
  phase "tests under ASan+UBSan"
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
  # The engine's property test runs 1,000 seeded runs in the plain build; under the sanitizers
  # 300 (a third of the time; CI's budget is 30 minutes on 2 cores), still every fault kind.
  (cd build-asan && SB_PROPERTY_RUNS=300 ctest --output-on-failure -j "$test_jobs" --timeout 900 -LE soak)
  unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if ((tsan)); then
  # Only the test programs labelled `tsan` (tests/CMakeLists.txt: SB_TSAN_TEST_DIRS) are
  # built; the rest have no threads of their own worth the build time.
  phase "build (ThreadSanitizer, -Werror): the tests labelled tsan"
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSMTPBLAST_WERROR=ON \
    -DSMTPBLAST_SANITIZE=thread -DSMTPBLAST_BENCH=OFF -DCMAKE_UNITY_BUILD=ON \
    "${launcher[@]}" >/dev/null
  # CMake writes one <target>_tsan_labels.cmake per labelled test program that exists.
  targets=()
  for f in build-tsan/tests/*_tsan_labels.cmake; do
    if [[ -e $f ]]; then targets+=("$(basename "$f" _tsan_labels.cmake)"); fi
  done
  cmake --build build-tsan -j "$jobs" --target "${targets[@]}"
  phase "tests under ThreadSanitizer (ctest -L tsan)"
  # tests/tsan/suppressions.txt: races TSan sees inside the uninstrumented OpenSSL, each with
  # its reason.
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
  TSAN_OPTIONS+=":suppressions=$root/tests/tsan/suppressions.txt"
  (cd build-tsan && SB_PROPERTY_RUNS=300 ctest --output-on-failure -j "$test_jobs" --timeout 900 -L tsan)
  unset TSAN_OPTIONS
fi
phase "all tests passed in $(( $(date +%s) - start )) s"
