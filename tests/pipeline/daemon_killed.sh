#!/usr/bin/env bash
# Killing a daemon mid-request (SIGKILL, as a crash): `g3n run --demo --remote`
# sends its image to the only vision encoder; a second one joins, the first is
# killed while it computes, and the request must be retried on the second
# within the heartbeat timeout and the answer must still stream. Then, with no
# vision encoder left, a request must fail with a clear error instead of hanging.
# Usage: daemon_killed.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
endpoint=tcp://127.0.0.1:$port
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
synth="$root/scripts/demo-config.json:1"
hb=(--heartbeat-ms 100 --heartbeat-timeout-ms 1000 --insecure) # about retries: plain TCP (CURVE: daemons_tcp.sh)
for role in embedder decoder audio-encoder; do
  "$build/g3n-$role" --synth "$synth" --connect "$endpoint" --threads 1 "${hb[@]}" >"$work/$role.log" 2>&1 &
  pids+=($!)
done
"$build/g3n-vision-encoder" --synth "$synth" --connect "$endpoint" --threads 1 --name vision-first "${hb[@]}" \
  >"$work/vision-first.log" 2>&1 &
first=$!
pids+=($first)
cd "$root"
"$g3n" run --demo --remote --bind "$endpoint" --max-new-tokens 4 --wait 60 --heartbeat-ms 100 --heartbeat-timeout-ms 1000 --insecure "What is in the picture?" \
  >"$work/answer.txt" 2>"$work/run.log" &
run=$!
pids+=($run)
# wait until the first encoder has the image, then start the second and kill the first
for _ in $(seq 600); do grep -q "encoding" "$work/run.log" 2>/dev/null && break; sleep 0.1; done
"$build/g3n-vision-encoder" --synth "$synth" --connect "$endpoint" --threads 1 --name vision-second "${hb[@]}" \
  >"$work/vision-second.log" 2>&1 &
pids+=($!)
for _ in $(seq 600); do grep -q "vision-second joined" "$work/run.log" 2>/dev/null && break; sleep 0.1; done
kill -KILL "$first"
wait "$run" || { cat "$work/run.log"; exit 1; }
cat "$work/run.log"
grep -q "vision-first lost" "$work/run.log"
grep -q "goes to another vision-encoder worker" "$work/run.log"
grep -q "encoded image .* on vision-second" "$work/run.log"
[ -s "$work/answer.txt" ]
echo "killed encoder: the request was retried on the other replica"
