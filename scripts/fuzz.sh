#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, clang, ASan+UBSan, build/fuzz)
# and runs each one: its regression inputs (tests/fuzz/regressions/NAME, every
# input a fuzzer once found) replayed, then fuzzing from its seed corpus
# (tests/fuzz/corpus/NAME) for a bounded time. Any crash, sanitizer report,
# leak or hang fails the script; the input that did it is left under
# build/fuzz/artifacts/NAME/ (copy it to tests/fuzz/regressions/NAME/ with
# the fix).
#
# Usage: scripts/fuzz.sh [--seconds N] [--replay] [--no-build] [NAME ...]
#   --seconds N  fuzzing time per harness (default 20: 14 harnesses, the whole CI step with its build ~10 min on 2 cores)
#   --replay     only replay the regressions and the seed corpus (no fuzzing)
#   NAME ...     only these harnesses (default: all, e.g. fuzz_wire)
# New inputs that widen coverage go to build/fuzz/corpus/NAME (kept between runs).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=20
replay=0
build=1
names=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --replay) replay=1; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
    *) names+=("$1"); shift ;;
  esac
done
if [ "$build" = 1 ]; then
  CC=clang cmake -S . -B build/fuzz -DCMAKE_BUILD_TYPE=Debug -DG3N_FUZZ=ON -DCMAKE_C_FLAGS_DEBUG="-O2 -g" > /dev/null
  cmake --build build/fuzz -j "$(nproc)" --target g3n_fuzzers
fi
if [ ${#names[@]} -eq 0 ]; then
  for source in tests/fuzz/fuzz_*.c; do
    name=$(basename "$source" .c)
    [ "$name" = fuzz_util ] || names+=("$name")
  done
fi
# one thread per harness; a finding stops at once with its stack
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
for name in "${names[@]}"; do
  binary=build/fuzz/tests/fuzz/$name
  seeds=tests/fuzz/corpus/${name#fuzz_}
  regressions=tests/fuzz/regressions/${name#fuzz_}
  corpus=build/fuzz/corpus/$name
  artifacts=build/fuzz/artifacts/$name
  mkdir -p "$corpus" "$artifacts"
  log=build/fuzz/$name.log
  # -timeout: one input running this long is a hang (a live frame goes through the demo's
  # vision tower: seconds each); -rss_limit_mb: a memory bomb
  timeout=120
  [ "$name" = fuzz_http_live ] && timeout=300
  common=(-timeout=$timeout -rss_limit_mb=3072 -malloc_limit_mb=2048 -artifact_prefix="$artifacts/" -print_final_stats=1)
  start=$(date +%s)
  rc=0
  if [ -d "$regressions" ] && [ -n "$(ls -A "$regressions")" ]; then
    "$binary" "${common[@]}" "$regressions"/* > "$log" 2>&1 || rc=$?
  fi
  if [ $rc -eq 0 ]; then
    if [ "$replay" = 1 ]; then
      "$binary" "${common[@]}" -runs=0 "$seeds" >> "$log" 2>&1 || rc=$?
    else
      "$binary" "${common[@]}" -max_total_time="$seconds" "$corpus" "$seeds" >> "$log" 2>&1 || rc=$?
    fi
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ $rc -eq 0 ]; then
    echo "fuzz: $name ok ($(( $(date +%s) - start )) s, ${runs:-0} runs)"
  else
    status=1
    echo "fuzz: $name FAILED (exit $rc): the last lines of $log, the input under $artifacts/"
    tail -40 "$log"
  fi
done
exit $status
