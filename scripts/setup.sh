#!/usr/bin/env bash
# Installs every Debian 12 package g3n needs to build, test and run. Safe to run twice.
set -euo pipefail
packages=(
  build-essential cmake pkg-config git ca-certificates
  libcjson-dev          # config.json, tokenizer.json, case.json
  libzmq3-dev           # transport between the daemons
  libprotobuf-c-dev protobuf-c-compiler  # wire format
  libvips-dev           # image decoding and resizing
  libavformat-dev libavcodec-dev libswresample-dev libavutil-dev libswscale-dev  # audio/video decoding, FFT
  libcmocka-dev         # unit tests
  libmicrohttpd-dev     # HTTP API
  python3               # small test helpers only (no numerics)
  python3-yaml          # the compose and Kubernetes manifest tests read YAML
  python3-zmq python3-protobuf protobuf-compiler  # python/g3n_worker: a worker in Python (and its test)
  chromium              # the web page's end-to-end test (tests/web), headless
  openssl curl          # security tests: a test CA and HTTPS requests (libsodium comes with libzmq: CURVE)
  clang libclang-rt-14-dev libomp-dev  # the libFuzzer harnesses (scripts/fuzz.sh)
)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all packages present"
fi
# kubectl renders deploy/kubernetes with its built-in kustomize (a test checks the manifests; no
# cluster is used). Debian's kubernetes-client provides it where the machine has no kubectl.
if ! command -v kubectl > /dev/null; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends kubernetes-client
fi
# The HTTP API's end-to-end test drives the server with the official openai npm client,
# pinned by tests/http/package-lock.json (node_modules is not committed).
if command -v npm > /dev/null; then
  (cd "$(dirname "$0")/../tests/http" && npm ci --no-audit --no-fund --silent) ||
    echo "setup: npm ci in tests/http failed; the http test will be skipped"
else
  echo "setup: npm not found; the http test (tests/http) will be skipped"
fi
# The web page's end-to-end test drives Debian's chromium with playwright-core,
# pinned by tests/web/package-lock.json (no browser download: it uses /usr/bin/chromium).
if command -v npm > /dev/null; then
  (cd "$(dirname "$0")/../tests/web" && npm ci --no-audit --no-fund --silent) ||
    echo "setup: npm ci in tests/web failed; the web test will be skipped"
fi
