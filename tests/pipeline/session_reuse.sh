#!/usr/bin/env bash
# Sessions through g3n-orchestrator (issue 16), the daemons as processes over
# TCP on 127.0.0.1 (the demo model: tiny synthetic weights, real tokenizer):
#  1. a 10-turn chat through the front door, asked with prefix reuse off and
#     on (`g3n bench chat --connect`): the same greedy tokens, and every turn
#     after the first continues its kept decoder session;
#  2. the same through the HTTP API, the orchestrator restarted with
#     --no-prefix-cache for the second pass: the same answers, and /metrics
#     counted the reuse of the first pass;
#  3. two decoders: the one holding the session is killed (SIGKILL) after
#     turn 2; turn 3 is answered after a rebuild on the other one with the same
#     tokens as without reuse; that one is killed after turn 3: turn 4 fails
#     with an error naming the session; a new decoder joins and the
#     orchestrator serves a chat again.
# Usage: session_reuse.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
workers=tcp://127.0.0.1:$(free_port)
clients=tcp://127.0.0.1:$(free_port)
http_port=$(free_port)
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
synth="$root/scripts/demo-config.json:1"
hb=(--heartbeat-ms 100 --heartbeat-timeout-ms 1000)
insecure=(--insecure) # plain tcp:// on loopback (README "Security")

starts=0
start_orchestrator() { # extra flags...
  starts=$((starts + 1))
  log=$work/orchestrator-$starts.log
  "$build/g3n-orchestrator" --config "$root/scripts/demo-config.json" \
    --tokenizer "$root/tests/fixtures/tokenizer/tokenizer.json" --bind "$workers" --listen "$clients" \
    --http "$http_port" --no-worker-wait-ms 2000 "${hb[@]}" "${insecure[@]}" "$@" >"$log" 2>&1 &
  orchestrator=$!
  pids+=($orchestrator)
  for _ in $(seq 300); do grep -q "HTTP API on" "$log" 2>/dev/null && return; sleep 0.1; done
  cat "$log"; exit 1
}
start_worker() { # role name
  "$build/g3n-$1" --synth "$synth" --connect "$workers" --threads 1 --name "$2" "${hb[@]}" "${insecure[@]}" \
    >"$work/$2.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/$2.pid"
}
wait_joined() { # name
  for _ in $(seq 600); do grep -q "$1 joined" "$log" 2>/dev/null && return; sleep 0.1; done
  cat "$log"; exit 1
}

start_orchestrator
start_worker embedder embedder-1
start_worker decoder decoder-a
wait_joined embedder-1
wait_joined decoder-a
cd "$root"

echo "== 1. 10 turns through the front door, reuse off and on"
"$g3n" bench chat --connect "$clients" --turns 10 --answer-tokens 6 --turn-words 12 --require-reuse | tee "$work/chat.out"
grep -q "identical in every turn" "$work/chat.out"

echo "== 2. 10 turns through the HTTP API, reuse on, then off"
hits_before=$(curl -sf "http://127.0.0.1:$http_port/metrics" | awk '/^g3n_prefix_cache_hits_total/ {print $2}')
python3 "$root/tests/pipeline/http_chat.py" "$http_port" 10 >"$work/http-on.json"
curl -sf "http://127.0.0.1:$http_port/metrics" >"$work/metrics"
grep "^g3n_prefix_cache_\|^g3n_session_" "$work/metrics"
kill -TERM "$orchestrator"; wait "$orchestrator" || true
start_orchestrator --no-prefix-cache
wait_joined embedder-1
wait_joined decoder-a
python3 "$root/tests/pipeline/http_chat.py" "$http_port" 10 >"$work/http-off.json"
cmp "$work/http-on.json" "$work/http-off.json"
# with reuse on, the turns whose earlier answers tokenize back to the same ids continued their session
hits=$(( $(awk '/^g3n_prefix_cache_hits_total/ {print $2}' "$work/metrics") - hits_before ))
echo "HTTP: the same answers with reuse on and off ($hits of 10 turns continued a kept session)"
[ "$hits" -ge 1 ]
kill -TERM "$orchestrator"; wait "$orchestrator" || true

echo "== 3. the decoder holding the session is killed"
start_orchestrator
start_worker decoder decoder-b
wait_joined embedder-1
wait_joined decoder-a
wait_joined decoder-b
kill_holder='kill -KILL $(cat '"$work"'/$G3N_BENCH_DECODER.pid)'
set +e
"$g3n" bench chat --connect "$clients" --turns 5 --answer-tokens 6 --turn-words 12 \
  --exec-after-turn 2 "$kill_holder" --exec-after-turn 3 "$kill_holder" >"$work/kill.out" 2>"$work/kill.err"
status=$?
set -e
cat "$work/kill.out" "$work/kill.err"
[ "$status" -ne 0 ]
# turn 3: rebuilt on the other decoder, the same tokens as without reuse
grep -Eq "^ +3 .* yes \(rebuilt\) on decoder-[ab]$" "$work/kill.out"
[ "$(grep -c " yes" "$work/kill.out")" -eq 3 ]
grep -q "session conversation-[0-9]*-[0-9]* was lost .* could not be rebuilt on another decoder" "$work/kill.err"
# the orchestrator keeps serving: a new decoder, a new chat
kill -0 "$orchestrator"
start_worker decoder decoder-c
wait_joined decoder-c
"$g3n" bench chat --connect "$clients" --turns 2 --answer-tokens 4 --turn-words 6 --require-reuse | tee "$work/after.out"
grep -q "identical in every turn" "$work/after.out"
curl -sf "http://127.0.0.1:$http_port/metrics" | grep "^g3n_session_rebuilds_total [1-9]"
# a clean stop (exit status 0: under the sanitizers also no leak), its kept sessions ended on the decoder
kill -TERM "$orchestrator"
wait "$orchestrator"
echo "sessions: reuse gives the same tokens; a lost session is rebuilt; with no decoder a clear error"
