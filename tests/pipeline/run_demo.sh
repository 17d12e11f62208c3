#!/usr/bin/env bash
# `g3n run --demo` (the README's main job) must exit 0 AND print its decode
# progress line: a regular expression alone (ctest's PASS_REGULAR_EXPRESSION)
# would pass a run that crashed after printing it.
# Usage: run_demo.sh G3N_BINARY
set -uo pipefail
g3n=$1
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$g3n" run --demo --max-new-tokens 8 "Describe the image, then transcribe the audio." >"$out" 2>&1
status=$?
cat "$out"
[ "$status" -eq 0 ] || { echo "FAIL: g3n run --demo exited $status"; exit 1; }
grep -Eq "decode: [0-9]+ tokens" "$out" || { echo "FAIL: no decode progress line"; exit 1; }
echo "g3n run --demo: exit 0, answer streamed"
