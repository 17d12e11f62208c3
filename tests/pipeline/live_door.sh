#!/usr/bin/env bash
# Live sessions through g3n-orchestrator's front door (issue 16 item 2), the
# daemons as processes over TCP on 127.0.0.1 (the demo model: tiny synthetic
# weights, real tokenizer), two decoders:
#  1. an undisturbed session (`g3n live --connect`: a frame, an audio stream in
#     pieces, two questions) gives the reference tokens;
#  2. the same session again, its questions written one at a time: after the
#     first answer the decoder holding the session is killed (SIGKILL); the
#     second question is answered after a rebuild on the other decoder with the
#     reference tokens; that one is killed too: the third question fails with
#     an error naming the session;
#  3. the orchestrator keeps serving: a new decoder joins, a chat is answered,
#     and it stops cleanly (exit 0: under the sanitizers also no leak).
# Usage: live_door.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
workers=tcp://127.0.0.1:$(free_port)
clients=tcp://127.0.0.1:$(free_port)
work=$(mktemp -d)
pids=()
cleanup() {
  exec 3>&- 2>/dev/null || true
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
synth="$root/scripts/demo-config.json:1"
hb=(--heartbeat-ms 100 --heartbeat-timeout-ms 1000)
insecure=(--insecure) # plain tcp:// on loopback (README "Security"; CurveZMQ: live_netns.sh)
log=$work/orchestrator.log
fail() { echo "live door test: FAIL: $*" >&2; tail -n 30 "$work"/*.log "$work"/*.err >&2 2>/dev/null || true; exit 1; }
"$build/g3n-orchestrator" --config "$root/scripts/demo-config.json" \
  --tokenizer "$root/tests/fixtures/tokenizer/tokenizer.json" --bind "$workers" --listen "$clients" \
  --no-worker-wait-ms 2000 "${hb[@]}" "${insecure[@]}" >"$log" 2>&1 &
orchestrator=$!
pids+=($orchestrator)
start_worker() { # role name
  "$build/g3n-$1" --synth "$synth" --connect "$workers" --threads 1 --name "$2" "${hb[@]}" "${insecure[@]}" \
    >"$work/$2.log" 2>&1 &
  pids+=($!)
  echo $! >"$work/$2.pid"
}
wait_for() { # file pattern [count]
  for _ in $(seq 1200); do
    [ "$(grep -c -- "$2" "$1" 2>/dev/null)" -ge "${3:-1}" ] && return
    sleep 0.1
  done
  fail "no '$2' in $1"
}
start_worker vision-encoder vision-1
start_worker audio-encoder audio-1
start_worker embedder embedder-1
start_worker decoder decoder-a
start_worker decoder decoder-b
for name in vision-1 audio-1 embedder-1 decoder-a decoder-b; do wait_for "$log" "$name joined"; done
cd "$root"
media=(--image assets/demo-image.jpg --audio-stream assets/demo-speech.wav)
q1="What is in the picture?" q2="What was said?" q3="Anything else?"
ids() { grep "token ids:" "$1" | sed 's/.*token ids: //'; }

echo "== 1. an undisturbed session"
"$g3n" live --connect "$clients" "${insecure[@]}" "${media[@]}" --ask "$q1" --ask "$q2" --max-new-tokens 6 \
  --token-ids >"$work/reference.out" 2>"$work/reference.err" || fail "the undisturbed session"
ids "$work/reference.err" >"$work/reference.ids"
cat "$work/reference.ids"
[ "$(wc -l <"$work/reference.ids")" -eq 2 ] || fail "the undisturbed session gave no two answers"

echo "== 2. the decoder holding the session is killed between the questions"
mkfifo "$work/questions"
"$g3n" live --connect "$clients" "${insecure[@]}" "${media[@]}" --questions "$work/questions" --max-new-tokens 6 \
  --token-ids >"$work/killed.out" 2>"$work/killed.err" &
client=$!
pids+=($client)
exec 3>"$work/questions"
wait_for "$work/killed.err" "the stream ended"
echo "$q1" >&3
wait_for "$work/killed.err" "token ids:" 1
holder=$(grep -o " on decoder-[ab];" "$work/killed.err" | head -1 | sed 's/ on //; s/;//')
[ -n "$holder" ] || fail "the first answer names no decoder"
survivor=decoder-a
[ "$holder" = decoder-a ] && survivor=decoder-b
kill -KILL "$(cat "$work/$holder.pid")"
wait_for "$log" "$holder lost"
echo "$q2" >&3
wait_for "$work/killed.err" "token ids:" 2
ids "$work/killed.err" >"$work/killed.ids"
cmp "$work/reference.ids" "$work/killed.ids" || fail "the answers after the rebuild differ from the undisturbed ones"
grep "token ids:" -A1 "$work/killed.err" | tail -1 | grep -q "on $survivor; .* [1-9][0-9]* rebuilds" ||
  fail "the second answer was not rebuilt on $survivor"
echo "after $holder was killed the session was rebuilt on $survivor: the same tokens"
kill -KILL "$(cat "$work/$survivor.pid")"
wait_for "$log" "$survivor lost"
echo "$q3" >&3
exec 3>&-
status=0
wait "$client" || status=$?
[ "$status" -eq 1 ] || fail "with no decoder left, g3n live exited $status"
cat "$work/killed.err" | tail -n 2
session=$(grep -o 'live session live-[0-9a-f]*' "$work/killed.err" | head -1 | cut -d' ' -f3)
grep "g3n live: error:" "$work/killed.err" | grep -q "$session" || fail "the error names no session"

echo "== 3. the orchestrator keeps serving"
kill -0 "$orchestrator" || fail "the orchestrator died"
start_worker decoder decoder-c
wait_for "$log" "decoder-c joined"
"$g3n" run --connect "$clients" "${insecure[@]}" --max-new-tokens 4 "Hello" >"$work/chat.out" 2>"$work/chat.err" ||
  fail "a chat after the decoders were lost"
[ -s "$work/chat.out" ] || fail "an empty chat answer"

kill -TERM "$orchestrator"
wait "$orchestrator" || fail "the orchestrator did not stop cleanly"
echo "live door test: a lost decoder's live session is rebuilt with the same tokens; none left: an error naming it"
