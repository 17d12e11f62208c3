#!/usr/bin/env bash
# The HTTP live-session endpoint end to end (tests/live_http.cmake, issue 10):
# `g3n serve --demo` on a free loopback port, driven with curl: create a
# session, push frames (an image body and a data: URL) and audio (a WAV clip
# and raw 16 kHz PCM, then end the segment), ask (a chat.completion and an SSE
# stream), read the state, delete; the errors (unknown id, bad bodies, a frame
# over --live-max-media-mb, the session limit, a wrong method); an idle
# session expiring; a clean SIGTERM shutdown. Needs curl and base64 only.
# With BUILD_DIR: the same against `g3n-orchestrator --http` with the four
# worker daemons as processes over TCP on 127.0.0.1 (issue 16 item 2).
# Usage: live.sh G3N_BINARY [BUILD_DIR]
set -uo pipefail
g3n=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v curl > /dev/null || { echo "live test: skipped (needs curl)"; exit 77; }
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2> /dev/null
  for p in "${daemons[@]}"; do kill "$p" 2> /dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
daemons=()
if [ -n "${2:-}" ]; then # the daemons, then the orchestrator with --http
  build=$2
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  workers=tcp://127.0.0.1:$(free_port)
  for role in vision-encoder audio-encoder embedder decoder; do
    "$build/g3n-$role" --synth "$repo/scripts/demo-config.json:1" --connect "$workers" --threads 1 --insecure \
      2> "$work/$role.log" &
    daemons+=($!)
  done
  port=$(free_port)
  "$build/g3n-orchestrator" --config "$repo/scripts/demo-config.json" --insecure \
    --tokenizer "$repo/tests/fixtures/tokenizer/tokenizer.json" --bind "$workers" \
    --listen "tcp://127.0.0.1:$(free_port)" --http "$port" --live-sessions 2 --live-max-media-mb 1 \
    --live-idle-seconds 4 --live-max-tokens 64 2> "$work/server.log" &
  server=$!
  for _ in $(seq 1 600); do grep -q "HTTP API on" "$work/server.log" && break; sleep 0.1; done
  for _ in $(seq 1 600); do [ "$(grep -c joined "$work/server.log")" -ge 4 ] && break; sleep 0.1; done
  echo "$port" > "$work/port"
else
  "$g3n" serve --demo --host 127.0.0.1 --port 0 --port-file "$work/port" --live-sessions 2 --live-max-media-mb 1 \
    --live-idle-seconds 4 --max-tokens 64 2> "$work/server.log" &
  server=$!
fi
for _ in $(seq 1 600); do
  [ -s "$work/port" ] && break
  kill -0 "$server" 2> /dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -s "$work/port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
base=http://127.0.0.1:$(cat "$work/port")/v1/live/sessions
echo "live test: server at $base (pid $server)"
rc=0
fail() { echo "FAIL $*"; rc=1; }

# call NAME EXPECTED_STATUS curl-args...: the body in $work/NAME, checked status
call() {
  local name=$1 expected=$2
  shift 2
  local status
  status=$(curl -s -o "$work/$name" -w '%{http_code}' "$@")
  if [ "$status" != "$expected" ]; then
    fail "$name: HTTP $status, expected $expected: $(head -c 400 "$work/$name")"
    return 1
  fi
  echo "ok   $name -> $status $(head -c 160 "$work/$name")"
}
# field NAME KEY: a number or string field of the JSON in $work/NAME
field() { grep -o "\"$2\":\"\{0,1\}[^,\"}]*" "$work/$1" | head -1 | sed 's/.*:"\{0,1\}//'; }
expect() { # expect NAME KEY VALUE
  local got
  got=$(field "$1" "$2")
  [ "$got" = "$3" ] || fail "$1: $2 is '$got', expected '$3'"
}

# --- the happy path
call create 200 -X POST "$base" -H 'Content-Type: application/json' -d '{"system": "You watch a live stream."}'
id=$(field create id)
[ -n "$id" ] || fail "create gave no id"
expect create object live.session
expect create frames 0
call frame1 200 -X POST "$base/$id/frames?seconds=0" -H 'Content-Type: image/jpeg' \
  --data-binary @"$repo/assets/demo-image.jpg"
# a frame's time must be a finite number; the session id must match exactly (no NUL appended)
for bad in nan inf -1 1x; do
  call "frame_seconds_$bad" 400 -X POST "$base/$id/frames?seconds=$bad" -H 'Content-Type: image/jpeg' \
    --data-binary @"$repo/assets/demo-image.jpg"
done
call state_nul 404 "$base/$id%00junk"
call frame_nul 404 -X POST "$base/$id%00/frames" -H 'Content-Type: image/jpeg' --data-binary @"$repo/assets/demo-image.jpg"
expect frame1 frames 1
positions1=$(field frame1 positions)
[ "${positions1:-0}" -gt 256 ] || fail "a frame prefilled only ${positions1:-0} positions (256 soft tokens expected)"
call audio1 200 -X POST "$base/$id/audio" -H 'Content-Type: audio/wav' --data-binary @"$repo/assets/demo-speech.wav"
expect audio1 audio_segments 1
printf '{"image_url": {"url": "data:image/jpeg;base64,%s"}, "seconds": 7}' \
  "$(base64 -w0 "$repo/assets/demo-image.jpg")" > "$work/frame.json"
call frame2 200 -X POST "$base/$id/frames" -H 'Content-Type: application/json' --data-binary @"$work/frame.json"
expect frame2 frames 2
expect frame2 audio_segments 1
head -c 32000 /dev/zero > "$work/silence.pcm" # 1 s of 16 kHz s16le
call audio2 200 -X POST "$base/$id/audio?format=s16le&rate=16000&end=1" -H 'Content-Type: application/octet-stream' \
  --data-binary @"$work/silence.pcm"
expect audio2 audio_segments 2
pending=$(field audio2 pending_positions) # only the text after the last media token waits (it may merge)
[ "${pending:-99}" -lt 8 ] || fail "audio2: ${pending:-?} positions wait for a prefill"
before=$(field audio2 positions)
call ask 200 -X POST "$base/$id/ask" -H 'Content-Type: application/json' \
  -d '{"question": "What did you see and hear?", "max_tokens": 6}'
expect ask object chat.completion
content=$(field ask content)
[ -n "$content" ] || fail "the answer is empty"
asked=$(field ask prompt_tokens)
# only the question was prefilled: everything streamed before was in the cache
[ "${asked:-999}" -lt 40 ] || fail "the question prefilled ${asked:-?} positions (the media were not in the cache?)"
call after 200 "$base/$id"
expect after questions 1
after_positions=$(field after positions)
[ "$after_positions" -gt "$before" ] || fail "positions did not grow with the question ($before -> $after_positions)"
status=$(curl -sN -o "$work/stream" -w '%{http_code}' -X POST "$base/$id/ask" -H 'Content-Type: application/json' \
  -d '{"question": "And then?", "max_tokens": 4, "stream": true, "stream_options": {"include_usage": true}}')
[ "$status" = 200 ] || fail "stream: HTTP $status"
grep -q '"object":"chat.completion.chunk"' "$work/stream" || fail "stream: no chunks"
grep -q '"role":"assistant"' "$work/stream" || fail "stream: no role chunk"
grep -q '"finish_reason":"\(length\|stop\)"' "$work/stream" || fail "stream: no finish_reason"
grep -q '"usage":{"prompt_tokens"' "$work/stream" || fail "stream: no usage chunk"
[ "$(tail -n 2 "$work/stream" | head -n 1)" = "data: [DONE]" ] || fail "stream: does not end with data: [DONE]"
echo "ok   stream -> $(grep -c '^data: ' "$work/stream") events"
call state 200 "$base/$id"
expect state questions 2
expect state frames 2
expect state context_policy drop_oldest_media_and_reprefill
call list 200 "$base"
grep -q "\"id\":\"$id\"" "$work/list" || fail "list does not name $id"

# --- errors
call unknown 404 "$base/live-nonexistent"
expect unknown code session_not_found
call unknown_ask 404 -X POST "$base/live-nonexistent/ask" -H 'Content-Type: application/json' -d '{"question":"hi"}'
call bad_json 400 -X POST "$base/$id/ask" -H 'Content-Type: application/json' -d '{"question": '
expect bad_json code invalid_json
call no_question 400 -X POST "$base/$id/ask" -H 'Content-Type: application/json' -d '{"max_tokens": 3}'
expect no_question param question
call too_many_tokens 400 -X POST "$base/$id/ask" -H 'Content-Type: application/json' \
  -d '{"question": "hi", "max_tokens": 100000}'
call bad_image 400 -X POST "$base/$id/frames" -H 'Content-Type: image/png' --data-binary 'not an image'
expect bad_image code invalid_image
call bad_url 400 -X POST "$base/$id/frames" -H 'Content-Type: application/json' -d '{"image_url": "http://x/y.png"}'
call bad_audio 400 -X POST "$base/$id/audio" -H 'Content-Type: audio/wav' --data-binary 'not a clip'
expect bad_audio code invalid_audio
call bad_pcm 400 -X POST "$base/$id/audio?format=s16le&rate=44100" --data-binary @"$work/silence.pcm"
call odd_pcm 400 -X POST "$base/$id/audio?format=s16le" --data-binary 'abc'
head -c 2000000 /dev/urandom > "$work/big.bin"
call over_limit 413 -X POST "$base/$id/frames" -H 'Content-Type: image/jpeg' --data-binary @"$work/big.bin"
expect over_limit code request_too_large
call wrong_method 405 -X PUT "$base/$id"
call no_action 404 -X POST "$base/$id/nothing" -d '{}'
call second 200 -X POST "$base" -d '{}'
call third 429 -X POST "$base" -d '{}'
expect third code too_many_sessions
call bad_create 400 -X POST "$base" -H 'Content-Type: application/json' -d '{"context": 12}'

# --- delete, then the id is gone; the freed slot can be used again
call delete 200 -X DELETE "$base/$id"
expect delete deleted true
call deleted 404 "$base/$id"
call reuse 200 -X POST "$base" -d '{}'

# --- idle sessions expire (--live-idle-seconds 4)
idle=$(field reuse id)
sleep 6.5
call expired 404 "$base/$idle"
call after_expiry 200 -X POST "$base" -d '{}'

kill -0 "$server" 2> /dev/null || fail "the server died"
kill -TERM "$server"
wait "$server"
status=$?
server=
[ "$status" = 0 ] && echo "ok   clean shutdown on SIGTERM" || fail "server exit status $status"
grep -E "Sanitizer|runtime error" "$work/server.log" && fail "the server log has sanitizer errors"
grep -c "/v1/live/sessions" "$work/server.log" > /dev/null || fail "the server logged no live requests"
echo "live test: $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
