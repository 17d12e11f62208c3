#!/usr/bin/env bash
# Builds both builds and runs every test: the Release build runs everything
# (unit tests, all fixture cases including the full-size ones); the sanitizer
# build (ASan+UBSan) runs the unit tests and the small fixture cases.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
scripts/build.sh release
scripts/build.sh sanitize
# ctest runs two programs at once on CI's 2 cores: idle OpenMP threads must sleep, not spin
export OMP_WAIT_POLICY=PASSIVE
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
status=0
echo "== Release build: all tests"
ctest --test-dir build/release --output-on-failure -j "$jobs" || status=1
echo "== Sanitizer build: unit tests and small fixture cases (not the full-size cases nor the release_only load tests)"
ctest --test-dir build/sanitize --output-on-failure -j "$jobs" -LE "full|release_only" || status=1
echo "== Fuzzers: every parser's regressions replayed, then fuzzed 20 s each (scripts/fuzz.sh)"
scripts/fuzz.sh --seconds 20 || status=1
exit $status
