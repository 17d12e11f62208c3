#!/usr/bin/env bash
# A worker from elsewhere (issue 22): python/g3n_worker's example vision
# encoder, answering from a stored tower output of mm-tiny's image, is the
# only vision encoder while
# `g3n check-pipeline mm-tiny --remote` runs the multimodal case through C
# daemons over TCP: the logits and greedy tokens must match the goldens within
# their tolerances. Then, behind g3n-orchestrator (the demo model), three clients chat about
# that image while g3n-vision-encoder joins and the Python worker is drained
# (SIGTERM): zero failed chats, and the Python worker exits 0.
# The stored tower output is g3n's own (`g3n encode-image --save-tower`, f32,
# from the fixture's pixel_values; the vision-tiny case holds g3n's tower to
# the reference within rel-L2 1e-4, measured 1e-6): the reference's own for
# mm-tiny's weights needs a new case from make_fixtures.py (a machine with
# transformers + timm), not made yet.
# The first part runs over CurveZMQ (g3n keygen's files for the C and the
# Python workers), the second over plain TCP (--insecure: it is about the drain).
# Usage: python_worker.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
python=/usr/bin/python3 # Debian's, with python3-zmq and python3-protobuf (scripts/setup.sh)
"$python" -c 'import zmq, google.protobuf' || { echo "FAIL: $python lacks zmq/protobuf (scripts/setup.sh)"; exit 1; }
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
protoc --python_out="$work" -I"$root/proto" "$root/proto/g3n.proto"
export PYTHONPATH="$work"
fx="$root/tests/fixtures"
hb=() # phase 1: check-pipeline's broker heartbeats at the default rate
keys=$work/keys
"$g3n" keygen --init "$keys" >/dev/null
mkdir -m 700 "$keys/secrets"
for role in embedder decoder audio-encoder vision-encoder; do
  "$g3n" keygen --keys "$keys" --role "$role" "$keys/secrets/$role" >/dev/null
done
security() { echo --key "$keys/secrets/$1.key_secret" --server-key "$keys/server.key"; } # ROLE
python_security=($(security vision-encoder))
synth="$fx/mm-tiny/config.json:41"
python_encoder() { # python_encoder ENDPOINT LOG
  "$python" "$root/python/examples/vision_encoder_from_fixture.py" --connect "$1" --name vision-python "${hb[@]}" \
    "${python_security[@]}" \
    --tower-output "$work/tower.safetensors:tower_output" \
    --pixel-values "$fx/image-preprocess/golden.safetensors:pixel_values_png" \
    --image "$fx/image-preprocess/image.png" >"$2" 2>&1 &
  python_pid=$!
  pids+=($!)
}
c_daemons() { # c_daemons ENDPOINT: embedder, decoder, audio encoder
  for role in embedder decoder audio-encoder; do
    # shellcheck disable=SC2046
    "$build/g3n-$role" --synth "$synth" --connect "$1" --threads 1 "${hb[@]}" --name "$role-c" $(security "$role") \
      --health-file "$work/$role.health" >"$work/$role.log" 2>&1 &
    pids+=($!)
  done
}
# 1. the Python worker as the only vision encoder: mm-tiny's goldens
"$g3n" encode-image --synth "$synth" --threads 1 --save-tower "$work/tower.safetensors" \
  --pixel-values "$fx/image-preprocess/golden.safetensors:pixel_values_png" >"$work/encode.log"
workers=tcp://127.0.0.1:$(free_port)
c_daemons "$workers"
python_encoder "$workers" "$work/python-1.log"
"$g3n" check-pipeline "$fx/mm-tiny" --bind "$workers" --keys "$keys" --remote --wait 60 | tee "$work/check.txt"
grep -q "^4 passed, 0 failed" "$work/check.txt"
grep -q "serving vision-encoder" "$work/python-1.log"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
echo "python vision encoder: mm-tiny passed through the daemons over CurveZMQ"
security() { echo --insecure; } # phase 2: plain TCP
python_security=()

# 2. swapped for g3n-vision-encoder under load, on the demo model (the real vocabulary, so that prompts
# tokenize; its vision tower has mm-tiny's shape, so the Python worker's answer fits its embedder)
hb=(--heartbeat-ms 100 --heartbeat-timeout-ms 1000)
synth="$root/scripts/demo-config.json:1"
workers=tcp://127.0.0.1:$(free_port)
clients=tcp://127.0.0.1:$(free_port)
"$build/g3n-orchestrator" --config "$root/scripts/demo-config.json" --tokenizer "$fx/tokenizer/tokenizer.json" \
  --bind "$workers" --listen "$clients" "${hb[@]}" --insecure >"$work/orchestrator.log" 2>&1 &
pids+=($!)
c_daemons "$workers"
python_encoder "$workers" "$work/python-2.log"
for role in embedder decoder audio-encoder; do
  for _ in $(seq 600); do "$build/g3n-$role" --probe ready --health-file "$work/$role.health" >/dev/null 2>&1 && break; sleep 0.1; done
done
chat() { timeout 120 "$g3n" run --connect "$clients" --insecure --image "$fx/image-preprocess/image.png" --max-new-tokens 4 \
  --quiet "What is in this picture?" >"$1"; }
chat "$work/first.txt" 2>"$work/first.log" || { cat "$work/first.log" "$work/python-2.log"; exit 1; }
loaders=()
for c in 1 2 3; do
  (
    for r in 1 2 3; do
      chat "$work/answer-$c-$r.txt" 2>"$work/client-$c-$r.log" ||
        echo "client $c round $r failed: $(tail -1 "$work/client-$c-$r.log")" >>"$work/failures"
    done
  ) &
  pids+=($!)
  loaders+=($!)
done
sleep 1
"$build/g3n-vision-encoder" --synth "$synth" --connect "$workers" --threads 1 "${hb[@]}" --name vision-c --insecure \
  --health-file "$work/vision.health" >"$work/vision-c.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do "$build/g3n-vision-encoder" --probe ready --health-file "$work/vision.health" >/dev/null 2>&1 && break; sleep 0.1; done
kill -TERM "$python_pid"
for _ in $(seq 400); do kill -0 "$python_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$python_pid" 2>/dev/null && { echo "FAIL: the Python worker still runs 40 s after SIGTERM"; exit 1; }
set +e; wait "$python_pid"; status=$?; set -e
[ "$status" -eq 0 ] || { echo "FAIL: the Python worker exited $status"; cat "$work/python-2.log"; exit 1; }
grep -q "draining" "$work/python-2.log"
for p in "${loaders[@]}"; do wait "$p"; done
if [ -s "$work/failures" ]; then echo "FAIL:"; cat "$work/failures"; tail -20 "$work/orchestrator.log"; exit 1; fi
grep -q "vision-python is draining" "$work/orchestrator.log"
chat "$work/after.txt" 2>/dev/null
echo "python vision encoder swapped for g3n-vision-encoder under load: 11 chats, 0 failed, drained with exit 0"
