#!/usr/bin/env bash
# The multimodal case through the separate daemon processes over TCP on
# 127.0.0.1: two vision encoders, an audio encoder, an embedder and a decoder
# connect to `g3n check-pipeline --bind ... --remote`, which must pass mm-tiny
# (greedy tokens identical, logits within tolerance). Then every daemon must
# stop cleanly on SIGTERM (exit status 0). CurveZMQ on: a keys folder made
# here, each daemon with its own key pair listed for its role.
# Usage: daemons_tcp.sh BUILD_DIR G3N_BINARY
set -euo pipefail
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=tcp://127.0.0.1:$port
work=$(mktemp -d)
trap '"$root/scripts/launch-daemons.sh" stop --pidfile "$work/pids" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
"$g3n" keygen --init "$work/keys" >/dev/null
"$root/scripts/launch-daemons.sh" start --bin "$build" --connect "$endpoint" --keys "$work/keys" \
  --synth "$root/tests/fixtures/mm-tiny/config.json:41" --vision 2 --threads 1 \
  --pidfile "$work/pids" --logs "$work/logs"
"$g3n" check-pipeline "$root/tests/fixtures/mm-tiny" --bind "$endpoint" --keys "$work/keys" --remote --wait 60 \
  | tee "$work/out"
grep -q "^4 passed, 0 failed" "$work/out"
"$root/scripts/launch-daemons.sh" stop --pidfile "$work/pids"
grep -h "shutting down" "$work"/logs/*.log
[ "$(grep -l "shutting down" "$work"/logs/*.log | wc -l)" -eq 5 ]
[ "$(ls "$work"/keys/{vision-encoder,audio-encoder,embedder,decoder}/*.key | wc -l)" -eq 5 ] # a pair per daemon
echo "daemons over TCP with CurveZMQ: mm-tiny passed, 5 daemons stopped cleanly"
