#!/usr/bin/env bash
# Every error case of the HTTP API with curl, against a running
# `g3n serve --demo --max-sessions 2 --queue 2 --max-body-mb 4 --context 1024 --allow-dir ALLOWED`.
# Usage: errors.sh BASE_URL REPO_DIR ALLOWED_DIR WORK_DIR
set -uo pipefail
base=$1 repo=$2 allowed=$3 work=$4
chat=$base/v1/chat/completions
failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# expect STATUS CODE_SUBSTRING DESCRIPTION curl-args...: status and the error object's code
expect() {
  local status=$1 code=$2 what=$3
  shift 3
  local out
  out=$(curl -s -o "$work/body" -D "$work/headers" -w '%{http_code}' "$@")
  if [ "$out" = "$status" ] && grep -q "\"code\":\"$code\"" "$work/body" && grep -q '"message":"' "$work/body" &&
      grep -q '"type":"' "$work/body"; then
    pass "$what -> $status $code: $(sed -e 's/.*"message":"\([^"]*\)".*/\1/' "$work/body" | cut -c1-110)"
  else
    fail "$what: expected $status/$code, got $out: $(head -c 300 "$work/body")"
  fi
}
json() { printf '%s' "$1" > "$work/request.json"; echo "$work/request.json"; }

expect 400 invalid_json "bad JSON" "$chat" -d '{"messages": [' -H 'Content-Type: application/json'
expect 400 invalid_json "empty body" "$chat" -X POST -d ''
expect 400 invalid_json "JSON that is not an object" "$chat" -d '[1,2,3]'
expect 400 invalid_json "trailing garbage after the JSON" "$chat" -d '{"messages":[{"role":"user","content":"hi"}]} x'
expect 400 invalid_value "no messages" "$chat" -d '{"model":"gemma-3n-demo"}'
expect 400 unsupported_content_type "unknown content part type" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:,x"}}]}]}'
expect 400 invalid_type "content of a wrong type" "$chat" -d '{"messages":[{"role":"user","content":42}]}'
expect 400 invalid_value "unknown role" "$chat" -d '{"messages":[{"role":"tool","content":"x"}]}'
expect 400 invalid_messages "turns out of order" "$chat" \
  -d '{"messages":[{"role":"assistant","content":"a"},{"role":"user","content":"b"}]}'
expect 400 invalid_image "an image that does not decode" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB"}},{"type":"text","text":"?"}]}]}'
expect 400 invalid_data_url "an image that is not base64" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@@"}}]}]}'
expect 400 invalid_url "a remote image URL" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}]}'
expect 400 invalid_audio "audio that does not decode" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"bm90IGF1ZGlvIGF0IGFsbA==","format":"wav"}}]}]}'
expect 400 invalid_base64 "audio that is not base64" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"***","format":"wav"}}]}]}'
expect 400 invalid_value "an unknown audio format" "$chat" \
  -d '{"messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"midi"}}]}]}'
long=$(python3 -c 'print("word " * 1500)')
expect 400 context_length_exceeded "a prompt longer than the context" "$chat" \
  --data-binary @"$(json "{\"messages\":[{\"role\":\"user\",\"content\":\"$long\"}]}")"
expect 400 context_length_exceeded "max_tokens past the context" "$chat" \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":5000}'
expect 400 invalid_value "n = 2" "$chat" -d '{"messages":[{"role":"user","content":"hi"}],"n":2}'
expect 400 invalid_value "temperature out of range" "$chat" -d '{"messages":[{"role":"user","content":"hi"}],"temperature":7}'
expect 400 invalid_type "max_tokens not an integer" "$chat" -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":"many"}'
expect 400 unsupported_parameter "tools" "$chat" -d '{"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function"}]}'
expect 404 model_not_found "an unknown model" "$chat" -d '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}'
expect 404 not_found "an unknown endpoint" "$base/v1/embeddings" -d '{}'
expect 405 method_not_allowed "GET on the chat endpoint" "$chat"
expect 400 invalid_url "a local path without --allow-dir access" "$chat" \
  -d "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"$work/outside.jpg\"}}]}]}"
expect 400 invalid_url "a path escaping --allow-dir with .." "$chat" \
  -d "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"file://$allowed/../outside.jpg\"}}]}]}"
head -c $((5 << 20)) /dev/zero > "$work/big.bin"
expect 413 request_too_large "a body over --max-body-mb" "$chat" --data-binary @"$work/big.bin"
expect 413 request_too_large "a chunked body over --max-body-mb" "$chat" -H 'Transfer-Encoding: chunked' --data-binary @"$work/big.bin"
# transcriptions
trans=$base/v1/audio/transcriptions
expect 400 invalid_multipart "transcription not multipart" "$trans" -d 'file=x'
expect 400 invalid_value "transcription without a file" "$trans" -F model=gemma-3n-demo
expect 400 invalid_audio "transcription of a file that is not audio" "$trans" -F file=@"$repo/assets/demo-image.jpg"
expect 400 invalid_value "transcription in srt" "$trans" -F file=@"$repo/assets/demo-speech.wav" -F response_format=srt
printf -- '--b\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nRIFF' > "$work/truncated"
expect 400 invalid_multipart "a truncated multipart body" "$trans" -H 'Content-Type: multipart/form-data; boundary=b' \
  --data-binary @"$work/truncated"

# a local file under --allow-dir is fine
status=$(curl -s -o "$work/body" -w '%{http_code}' "$chat" -d "{\"max_tokens\":1,\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"$allowed/image.jpg\"}}]}]}")
[ "$status" = 200 ] && pass "a local image under --allow-dir -> 200" || fail "local image under --allow-dir: $status $(cat "$work/body")"

# garbage never crashes it
head -c 65536 /dev/urandom > "$work/random.bin"
for url in "$chat" "$trans" "$base/health"; do
  curl -s -o /dev/null --max-time 10 "$url" --data-binary @"$work/random.bin" -H 'Content-Type: multipart/form-data; boundary=x'
done
hostport=${base#http://}
python3 - "${hostport%:*}" "${hostport##*:}" <<'PY'
import socket, sys
for raw in (b"GARBAGE / HTTP/9.9\r\n\r\n", b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
            b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 100000 + b"\r\n\r\n", b"\x00\xff" * 1000):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
        s.sendall(raw)
        s.recv(4096)
        s.close()
    except OSError:
        pass
PY
status=$(curl -s -o /dev/null -w '%{http_code}' "$base/health")
[ "$status" = 200 ] && pass "still healthy after garbage" || fail "health after garbage: $status"

# overload: 2 running + 2 queued; more get 429 with Retry-After. Then the clients hang up: every
# generation is cancelled (nothing runs or waits afterwards).
pids=()
for i in $(seq 1 8); do
  curl -s -N -o "$work/long$i" -D "$work/long$i.headers" "$chat" \
    -d "{\"stream\":true,\"max_tokens\":1000,\"messages\":[{\"role\":\"user\",\"content\":\"story $i\"}]}" &
  pids+=($!)
  sleep 0.05
done
sleep 2
rejected=$(grep -l '^HTTP/1.1 429' "$work"/long*.headers 2>/dev/null | wc -l)
retry=$(grep -il '^Retry-After: [0-9]' "$work"/long*.headers 2>/dev/null | wc -l)
accepted=$(grep -l '^HTTP/1.1 200' "$work"/long*.headers 2>/dev/null | wc -l)
if [ "$rejected" -ge 1 ] && [ "$retry" -eq "$rejected" ] && [ "$accepted" -ge 2 ] && [ "$accepted" -le 4 ]; then
  pass "overload: $accepted streams accepted, $rejected answered 429 with Retry-After"
else
  fail "overload: accepted $accepted, 429 $rejected, Retry-After $retry"
fi
curl -s "$base/health" > "$work/health_busy"
grep -q '"active":2' "$work/health_busy" && pass "health shows 2 active generations" || fail "health while busy: $(cat "$work/health_busy")"
kill "${pids[@]}" 2>/dev/null
wait 2>/dev/null
idle=0
for i in $(seq 1 50); do
  if curl -s "$base/health" | grep -q '"active":0,"queued":0'; then idle=1; break; fi
  sleep 0.1
done
[ "$idle" = 1 ] && pass "clients that hang up cancel their generations (idle after $((i * 100)) ms)" ||
  fail "generations still running after their clients left: $(curl -s "$base/health")"

curl -s "$base/metrics" > "$work/metrics"
for name in g3n_http_requests_total g3n_time_to_first_token_seconds_count g3n_generated_tokens_per_second \
    g3n_queue_depth 'g3n_role_latency_seconds_count{role="vision-encoder"' 'g3n_workers{role="decoder"} 1' \
    'code="429"' 'code="413"'; do
  grep -qF "$name" "$work/metrics" && pass "metrics has $name" || fail "metrics lacks $name"
done

echo "errors: $failures failed"
[ "$failures" = 0 ]
