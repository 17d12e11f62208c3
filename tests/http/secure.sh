#!/usr/bin/env bash
# The HTTP API secured (issue 17): `g3n serve --demo` over HTTPS (a test CA and
# a server certificate made here with openssl) with two API keys from a file,
# a third for the limits:
#   - the official openai client works with a key over HTTPS (CA trusted through
#     NODE_EXTRA_CA_CERTS); a wrong or missing key gets 401 invalid_api_key
#     (tests/http/secure.mjs); curl over TLS works; /health stays open,
#     /metrics needs a key and names keys, never shows them;
#   - plain HTTP on the TLS port fails cleanly (the server keeps serving);
#   - a live session belongs to the key that made it: its id has 128 random
#     bits, the other key cannot list, read, ask or delete it (404);
#   - per-key limits: requests per minute and generations at once (429 with
#     Retry-After), other keys unaffected;
#   - a keys file readable by others is refused; a non-loopback address with
#     no key logs a warning.
# Usage: secure.sh G3N_BINARY
set -uo pipefail
g3n=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
command -v curl > /dev/null && command -v openssl > /dev/null || { echo "secure http test: skipped (needs curl, openssl)"; exit 77; }
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
rc=0
fail() { echo "FAIL $*"; rc=1; }
pass() { echo "PASS $*"; }

# a test CA and a certificate for localhost / 127.0.0.1 signed by it
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$work/ca.key" -out "$work/ca.pem" -days 2 \
  -subj "/CN=g3n test CA" 2> /dev/null
openssl req -newkey rsa:2048 -nodes -keyout "$work/server.key" -out "$work/server.csr" -subj "/CN=localhost" 2> /dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > "$work/ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -out "$work/server.pem" -days 2 -extfile "$work/ext" 2> /dev/null
chmod 600 "$work/server.key"
alice=alice-$(openssl rand -hex 16) bob=bob-$(openssl rand -hex 16) carol=carol-$(openssl rand -hex 16)
printf '# name:key\nalice:%s\nbob:%s\ncarol:%s\n' "$alice" "$bob" "$carol" > "$work/keys"

# refused: a keys file others can read; TLS without its key
chmod 644 "$work/keys"
"$g3n" serve --demo --port 0 --api-keys "$work/keys" 2> "$work/refused.log"
[ $? = 2 ] && grep -q "readable by group or others" "$work/refused.log" && pass "a keys file readable by others is refused" \
  || fail "keys file mode: $(cat "$work/refused.log")"
chmod 600 "$work/keys"
"$g3n" serve --demo --port 0 --tls-cert "$work/server.pem" 2> "$work/refused.log"
[ $? = 2 ] && pass "--tls-cert without --tls-key is refused" || fail "--tls-cert alone: $(cat "$work/refused.log")"

start_server() { # log args...: starts g3n serve --demo, sets $server and $port
  local log=$1
  shift
  rm -f "$work/port"
  "$g3n" serve --demo --port 0 --port-file "$work/port" --max-tokens 400 "$@" 2> "$log" &
  server=$!
  for _ in $(seq 1 600); do
    [ -s "$work/port" ] && break
    kill -0 "$server" 2> /dev/null || { cat "$log"; exit 1; }
    sleep 0.1
  done
  [ -s "$work/port" ] || { echo "server did not start"; cat "$log"; exit 1; }
  port=$(cat "$work/port")
}
stop_server() { kill -TERM "$server"; wait "$server"; local status=$?; server=; return $status; }

# a non-loopback address with no key: warned
start_server "$work/open.log" --host 0.0.0.0
grep -q "WARNING: the HTTP API listens on 0.0.0.0 with no API key" "$work/open.log" \
  && pass "no key on 0.0.0.0: warned" || fail "no warning for 0.0.0.0 without a key"
stop_server

start_server "$work/server.log" --host 127.0.0.1 --api-keys "$work/keys" --tls-cert "$work/server.pem" \
  --tls-key "$work/server.key" --rate-limit 40 --max-generations-per-key 1 --live-sessions 4
base=https://localhost:$port
tls=(--cacert "$work/ca.pem")
echo "secure http test: server at $base (pid $server)"

if command -v node > /dev/null && [ -d "$here/node_modules/openai" ]; then
  NODE_EXTRA_CA_CERTS="$work/ca.pem" node "$here/secure.mjs" "$base" "$alice" || rc=1
else
  echo "SKIP the openai client part (needs node and tests/http/node_modules: scripts/setup.sh)"
fi

# call NAME EXPECTED_STATUS curl-args...: the body in $work/NAME
call() {
  local name=$1 expected=$2
  shift 2
  local status
  status=$(curl -s "${tls[@]}" -o "$work/$name" -D "$work/$name.headers" -w '%{http_code}' "$@")
  if [ "$status" != "$expected" ]; then
    fail "$name: HTTP $status, expected $expected: $(head -c 300 "$work/$name")"
    return 1
  fi
  echo "PASS $name -> $status $(head -c 120 "$work/$name")"
}
auth() { echo "Authorization: Bearer $1"; }

# curl over TLS; /health open; /v1 needs the key; /metrics needs one and names keys only
call health 200 "$base/health"
call models-key 200 -H "$(auth "$alice")" "$base/v1/models"
call models-nokey 401 "$base/v1/models"
grep -q '"code":"invalid_api_key"' "$work/models-nokey" || fail "401 without OpenAI's error object"
call models-wrong 401 -H "Authorization: Bearer $alice-x" "$base/v1/models"
call models-basic 401 -u "alice:$alice" "$base/v1/models"
call chat-nokey 401 -X POST "$base/v1/chat/completions" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
call metrics-nokey 401 "$base/metrics"
call metrics 200 -H "$(auth "$bob")" "$base/metrics"
grep -q 'g3n_http_key_requests_total{key="alice"}' "$work/metrics" || fail "/metrics has no per-key counter"
grep -q -e "$alice" -e "$bob" -e "$carol" "$work/metrics" && fail "/metrics shows a key"
grep -q '^g3n_http_unauthorized_total [1-9]' "$work/metrics" || fail "/metrics does not count the refused requests"
# keep-alive: two requests on one TLS connection
curl -s "${tls[@]}" -o /dev/null -o /dev/null -H "$(auth "$alice")" -w '%{num_connects}\n' \
  "$base/v1/models" "$base/v1/models" > "$work/connects"
[ "$(awk '{ n += $1 } END { print n }' "$work/connects")" = 1 ] && pass "keep-alive: 2 requests, 1 TLS connection" \
  || fail "keep-alive: connections $(paste -sd' ' "$work/connects")"

# plain HTTP on the TLS port: fails cleanly, the server keeps serving
plain_status=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/health")
plain_rc=$?
[ "$plain_rc" != 0 ] && [ "$plain_status" = 000 ] && pass "plain HTTP on the TLS port: refused (curl exit $plain_rc)" \
  || fail "plain HTTP on the TLS port answered $plain_status"
call health-after 200 "$base/health"

# live sessions belong to their key
call live-create 200 -X POST "$base/v1/live/sessions" -H "$(auth "$alice")" -H 'Content-Type: application/json' -d '{}'
id=$(grep -o '"id":"[^"]*' "$work/live-create" | head -1 | sed 's/.*"//')
[[ "$id" =~ ^live-[0-9a-f]{32}$ ]] && pass "session id $id: 128 random bits" || fail "session id '$id'"
call live-create-2 200 -X POST "$base/v1/live/sessions" -H "$(auth "$alice")" -H 'Content-Type: application/json' -d '{}'
id2=$(grep -o '"id":"[^"]*' "$work/live-create-2" | head -1 | sed 's/.*"//')
[ "$id" != "$id2" ] || fail "two sessions with one id"
call live-list-bob 200 -H "$(auth "$bob")" "$base/v1/live/sessions"
grep -q "$id" "$work/live-list-bob" && fail "bob's list shows alice's session"
call live-list-alice 200 -H "$(auth "$alice")" "$base/v1/live/sessions"
grep -q "$id" "$work/live-list-alice" || fail "alice's list lacks her session"
call live-get-bob 404 -H "$(auth "$bob")" "$base/v1/live/sessions/$id"
call live-frame-bob 404 -X POST -H "$(auth "$bob")" -H 'Content-Type: image/jpeg' \
  --data-binary @"$repo/assets/demo-image.jpg" "$base/v1/live/sessions/$id/frames"
call live-ask-bob 404 -X POST -H "$(auth "$bob")" -H 'Content-Type: application/json' \
  -d '{"question":"What did you see?","max_tokens":2}' "$base/v1/live/sessions/$id/ask"
call live-delete-bob 404 -X DELETE -H "$(auth "$bob")" "$base/v1/live/sessions/$id"
call live-get-alice 200 -H "$(auth "$alice")" "$base/v1/live/sessions/$id"
call live-ask-alice 200 -X POST -H "$(auth "$alice")" -H 'Content-Type: application/json' \
  -d '{"question":"Anything?","max_tokens":2}' "$base/v1/live/sessions/$id/ask"
call live-delete-alice 200 -X DELETE -H "$(auth "$alice")" "$base/v1/live/sessions/$id"
call live-delete-alice-2 200 -X DELETE -H "$(auth "$alice")" "$base/v1/live/sessions/$id2"

# generations at once per key (1): alice's slow stream holds hers; her second chat gets 429, bob's runs
curl -s "${tls[@]}" -N --limit-rate 2k -o "$work/slow-stream" -X POST "$base/v1/chat/completions" -H "$(auth "$alice")" \
  -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"Talk."}],"max_tokens":400,"stream":true}' &
slow=$!
sleep 1.5
call chat-alice-second 429 -X POST "$base/v1/chat/completions" -H "$(auth "$alice")" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
grep -qi '^retry-after:' "$work/chat-alice-second.headers" || fail "429 without Retry-After"
call chat-bob 200 -X POST "$base/v1/chat/completions" -H "$(auth "$bob")" -H 'Content-Type: application/json' \
  -d '{"messages":[{"role":"user","content":"hi"}],"max_tokens":2}'
kill "$slow" 2> /dev/null
wait "$slow" 2> /dev/null

# requests per minute per key (40): carol's burst runs out, 429 with Retry-After; bob is not affected
limited=0
for _ in $(seq 60); do
  s=$(curl -s "${tls[@]}" -o /dev/null -D "$work/carol.headers" -w '%{http_code}' -H "$(auth "$carol")" "$base/v1/models")
  if [ "$s" = 429 ]; then
    limited=$((limited + 1))
    grep -qi '^retry-after: [1-9]' "$work/carol.headers" || fail "rate-limited 429 without Retry-After"
  fi
done
# (40 in a burst, then 2 every 3 s: at least 5 of 60 back-to-back requests are over)
[ "$limited" -ge 5 ] && pass "carol: $limited of 60 requests got 429 (40 per minute)" || fail "carol: $limited 429s"
call models-bob-after 200 -H "$(auth "$bob")" "$base/v1/models"
call metrics-after 200 -H "$(auth "$bob")" "$base/metrics"
grep -q 'g3n_http_key_limited_total{key="carol",limit="requests_per_minute"} [1-9]' "$work/metrics-after" \
  || fail "/metrics does not count carol's 429s"
grep -q 'g3n_http_key_limited_total{key="alice",limit="generations"} [1-9]' "$work/metrics-after" \
  || fail "/metrics does not count alice's generation 429"

kill -0 "$server" 2> /dev/null || fail "the server died"
stop_server && pass "clean shutdown on SIGTERM" || fail "server exit status"
grep -E "Sanitizer|runtime error" "$work/server.log" && fail "the server log has errors"
echo "secure http test: $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
