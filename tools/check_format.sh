#!/bin/bash
# Checks that the C++ files changed since a base commit are formatted as .clang-format says
# (clang-format --dry-run -Werror): a file nobody touched is not held against a change.
#
#   tools/check_format.sh            # base: the merge base with `main` (when that ref exists
#                                    # and is not HEAD itself), else HEAD~1
#   tools/check_format.sh BASE       # any commit-ish: origin/main, HEAD~3, a hash
#   tools/check_format.sh --fix [BASE]   # rewrite those files in place instead
#
# Changes not yet committed count too (the diff is BASE against the work tree). Exits 0 when
# clang-format is missing, with a message (tools/bootstrap.sh installs it).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
fix=0
if [[ "${1:-}" == "--fix" ]]; then
  fix=1
  shift
fi
clang_format="${CLANG_FORMAT:-$(command -v clang-format || command -v clang-format-14 || true)}"
if [[ -z "$clang_format" ]]; then
  echo "check_format: clang-format not installed: format check skipped (tools/bootstrap.sh)"
  exit 0
fi
base="${1:-}"
if [[ -z "$base" ]]; then
  if git rev-parse -q --verify main >/dev/null &&
     [[ "$(git merge-base main HEAD)" != "$(git rev-parse HEAD)" ]]; then
    base="$(git merge-base main HEAD)"
  elif git rev-parse -q --verify HEAD~1 >/dev/null; then
    base="HEAD~1"  # on main itself (CI after a merge): what the last commit brought
  else
    echo "check_format: no base commit to compare with: nothing to check"
    exit 0
  fi
fi
mapfile -t files < <(git diff --name-only --diff-filter=ACMR "$base" -- \
                       '*.cc' '*.h' '*.cpp' '*.hpp' | sort -u)
if ((${#files[@]} == 0)); then
  echo "check_format: no C++ file changed since $base"
  exit 0
fi
if ((fix)); then
  "$clang_format" -i "${files[@]}"
  echo "check_format: formatted ${#files[@]} file(s) changed since $base"
  exit 0
fi
bad=()
for f in "${files[@]}"; do
  if ! "$clang_format" --dry-run -Werror "$f" 2>/dev/null; then
    bad+=("$f")
  fi
done
if ((${#bad[@]})); then
  echo "check_format: ${#bad[@]} of ${#files[@]} C++ file(s) changed since $base are not" \
       "formatted as .clang-format says:"
  printf '  %s\n' "${bad[@]}"
  echo "see the changes: $clang_format --dry-run FILE;" \
       "apply them: tools/check_format.sh --fix $base"
  exit 1
fi
echo "check_format: ${#files[@]} C++ file(s) changed since $base are formatted"
