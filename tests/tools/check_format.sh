#!/usr/bin/env bash
# Fails when any C++ source under src/ is not clang-format clean (.clang-format at the root).
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
mapfile -t files < <(find src -name '*.h' -o -name '*.cc' | sort)
bad=0
for f in "${files[@]}"; do
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not clang-format clean: $f"
    bad=$((bad + 1))
  fi
done
echo "checked ${#files[@]} files, $bad not formatted"
((bad == 0))
