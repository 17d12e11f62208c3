#!/usr/bin/env bash
# Swapping daemons under load with zero failed requests (issue 22): TCP daemons
# on 127.0.0.1 behind g3n-orchestrator; several clients run multimodal chats
# (image + audio + text, greedy) in a loop while the test
#   1. starts a second vision encoder and a second audio encoder, waits until
#      their --probe ready passes, and SIGTERMs the first ones (graceful drain);
#   2. does the same to the decoder (its sessions finish on it; new ones go to
#      the new decoder).
# Every chat must succeed with the same answer as an undisturbed run, and every
# drained daemon must exit 0 within its --drain-timeout-s. Bounded: every wait
# has a limit, clients have a hard timeout.
# Usage: drain_swap.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
workers=tcp://127.0.0.1:$(free_port)
clients=tcp://127.0.0.1:$(free_port)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
hb=(--heartbeat-ms 100 --heartbeat-timeout-ms 1000 --insecure) # about the drain: plain TCP (CURVE: daemons_tcp.sh)
synth="$root/scripts/demo-config.json:1"
"$build/g3n-orchestrator" --config "$root/scripts/demo-config.json" \
  --tokenizer "$root/tests/fixtures/tokenizer/tokenizer.json" --bind "$workers" --listen "$clients" "${hb[@]}" \
  --health-file "$work/orchestrator.health" >"$work/orchestrator.log" 2>&1 &
pids+=($!)
declare -A pid_of
start() { # start NAME ROLE
  "$build/g3n-$2" --synth "$synth" --connect "$workers" --threads 1 --name "$1" "${hb[@]}" \
    --drain-timeout-s 60 --health-file "$work/$1.health" >"$work/$1.log" 2>&1 &
  pid_of[$1]=$!
  pids+=($!)
}
wait_ready() { # wait_ready NAME ROLE (ROLE orchestrator: the g3n-orchestrator)
  for _ in $(seq 600); do
    "$build/g3n-$2" --probe ready --health-file "$work/$1.health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "FAIL: $1 not ready after 60 s"; cat "$work/$1.log"; exit 1
}
drain() { # drain NAME: SIGTERM, then it must exit 0 within 70 s
  local pid=${pid_of[$1]} status
  kill -TERM "$pid"
  for _ in $(seq 700); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then echo "FAIL: $1 still running 70 s after SIGTERM"; exit 1; fi
  set +e; wait "$pid"; status=$?; set -e
  [ "$status" -eq 0 ] || { echo "FAIL: $1 exited $status after SIGTERM"; cat "$work/$1.log"; exit 1; }
  grep -q "draining" "$work/$1.log"
  echo "$1 drained and exited 0"
}
start embedder embedder
start decoder-first decoder
start vision-first vision-encoder
start audio-first audio-encoder
wait_ready orchestrator orchestrator
for n in embedder:embedder decoder-first:decoder vision-first:vision-encoder audio-first:audio-encoder; do
  wait_ready "${n%%:*}" "${n#*:}"
done
chat() { # chat OUTPUT
  timeout 120 "$g3n" run --connect "$clients" --insecure --image "$root/assets/demo-image.jpg" \
    --audio "$root/assets/demo-speech.wav" --max-new-tokens 6 --quiet "What do you see and hear?" >"$1"
}
chat "$work/reference.txt"
[ -s "$work/reference.txt" ]
clients_count=3 rounds=3
for c in $(seq "$clients_count"); do
  (
    for r in $(seq "$rounds"); do
      if ! chat "$work/answer-$c-$r.txt" 2>"$work/client-$c-$r.log"; then
        echo "client $c round $r failed: $(tail -1 "$work/client-$c-$r.log")" >>"$work/failures"
      elif ! cmp -s "$work/answer-$c-$r.txt" "$work/reference.txt"; then
        echo "client $c round $r answered differently" >>"$work/failures"
      fi
    done
  ) &
  pids+=($!)
  loaders+=($!)
done
sleep 2
start vision-second vision-encoder
start audio-second audio-encoder
wait_ready vision-second vision-encoder
wait_ready audio-second audio-encoder
drain vision-first
drain audio-first
start decoder-second decoder
wait_ready decoder-second decoder
drain decoder-first
for p in "${loaders[@]}"; do wait "$p"; done
if [ -s "$work/failures" ]; then echo "FAIL:"; cat "$work/failures"; tail -20 "$work/orchestrator.log"; exit 1; fi
grep -q "vision-first is draining" "$work/orchestrator.log"
grep -q "decoder-first is draining" "$work/orchestrator.log"
# the replacements served requests after the swap
for n in vision-second audio-second decoder-second; do
  grep -q "shutting down" "$work/$n.log" && { echo "FAIL: $n stopped"; exit 1; }
done
chat "$work/after.txt"
cmp "$work/after.txt" "$work/reference.txt"
echo "drain and swap under load: $((clients_count * rounds + 2)) chats, 0 failed, 3 daemons drained with exit 0"
