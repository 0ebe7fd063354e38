#!/usr/bin/env bash
# Runs the README's demo command as a user would and checks what it shows: the data read back
# through NBD is identical, qemu-io verified its pattern, and `spindle volume status` shows the
# volume up. Stops the cluster by PID (spindle-local down) whatever happens.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
dir=$(mktemp -d /tmp/spindle-demo-test.XXXXXX)
bin=${SPINDLE_BIN_DIR:-$top/build/bin}
cleanup() { "$bin/spindle-local" down --dir "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
out=$(timeout 300 "$top/scripts/demo" "$dir" 2>&1)
rc=$?
echo "$out"
passed=0 failed=0
check() {
  if eval "$2"; then echo "PASS $1"; passed=$((passed + 1)); else echo "FAIL $1"; failed=$((failed + 1)); fi
}
check "demo exits 0" '[[ $rc -eq 0 ]]'
check "nbdcopy data read back identical" 'grep -q "read back identical" <<<"$out"'
check "qemu-io pattern verified" 'grep -q "read 1048576/1048576 bytes" <<<"$out"'
if [[ $(id -u) -eq 0 && -e /dev/fuse ]]; then
  check "ext4 on the volume is clean after a cluster restart" 'grep -q "e2fsck -fn: clean" <<<"$out"'
  check "files match their checksums after the restart" 'grep -q "files match their checksums" <<<"$out"'
fi
check "volume status shows demo-vol up" 'grep -E "demo-vol.*\|[[:space:]]*up[[:space:]]*\|" <<<"$out" >/dev/null'
if ((failed)); then
  for f in "$dir"/log/*.log; do echo "--- $f"; tail -20 "$f"; done
fi
echo "$passed passed, $failed failed"
((failed == 0))
