#!/usr/bin/env bash
# Builds g3n. Usage: scripts/build.sh [release|sanitize] (default release).
# Release: build/release. Sanitizer (ASan+UBSan, Debug): build/sanitize.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release)  cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release >/dev/null ;;
  sanitize) cmake -S . -B build/sanitize -DCMAKE_BUILD_TYPE=Debug -DG3N_SANITIZE=ON -DCMAKE_C_FLAGS_DEBUG="-O1 -g" >/dev/null ;;
  *) echo "usage: $0 [release|sanitize]" >&2; exit 2 ;;
esac
cmake --build build/$kind -j "$jobs"
