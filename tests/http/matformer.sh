#!/usr/bin/env bash
# MatFormer sub-models over the HTTP API (issue 21, tests/http.cmake): `g3n serve --demo` with a sub-model
# beside the full model; GET /v1/models lists both, a request's "model" picks one (the full id, NAME:SUB or the
# bare SUB), the two give different greedy answers (the demo's weights are random: a skipped layer shows), each
# answer names its model, an unknown model is a 404, and a bad --submodel stops the server with a clear error.
# Needs curl only. Usage: matformer.sh G3N_BINARY
set -uo pipefail
g3n=$1
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
failures=0
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# a bad spec: a clear error and exit status 1 before listening
"$g3n" serve --demo --port 0 --submodel '{"layers_to_skip": [99]}' > /dev/null 2> "$work/bad.log"
status=$?
if [ $status -ne 0 ] && grep -q "layer 99 does not exist" "$work/bad.log"; then
  pass "bad --submodel -> exit $status: $(grep -o 'sub-model.*' "$work/bad.log" | head -1)"
else
  fail "bad --submodel: exit $status, $(cat "$work/bad.log")"
fi

"$g3n" serve --demo --host 127.0.0.1 --port 0 --port-file "$work/port" --max-sessions 2 --quiet \
  --submodel '{"name": "small", "layers_to_skip": [1], "intermediate_size": 64}' 2> "$work/server.log" &
server=$!
for _ in $(seq 1 600); do
  [ -s "$work/port" ] && break
  kill -0 "$server" 2> /dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -s "$work/port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
base=http://127.0.0.1:$(cat "$work/port")

models=$(curl -s "$base/v1/models")
if echo "$models" | grep -q '"id":"gemma-3n-demo"' && echo "$models" | grep -q '"id":"gemma-3n-demo:small"' &&
    echo "$models" | grep -q '"parent":"gemma-3n-demo"'; then
  pass "GET /v1/models lists the model and its sub-model"
else
  fail "GET /v1/models: $models"
fi
one=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/models/gemma-3n-demo:small")
[ "$one" = 200 ] && pass "GET /v1/models/gemma-3n-demo:small -> 200" || fail "GET /v1/models/gemma-3n-demo:small -> $one"

ask() { # MODEL -> the answer's body in $work/answer.json
  curl -s -o "$work/answer.json" -w '%{http_code}' "$base/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$1\", \"max_tokens\": 12, \"messages\": [{\"role\": \"user\", \"content\": \"Name three rivers.\"}]}"
}
content() { sed -e 's/.*"content":"\([^"]*\)".*/\1/' "$work/answer.json"; }
code=$(ask gemma-3n-demo)
full=$(content)
[ "$code" = 200 ] && grep -q '"model":"gemma-3n-demo"' "$work/answer.json" && pass "full model -> 200" ||
  fail "full model -> $code $(cat "$work/answer.json")"
code=$(ask gemma-3n-demo:small)
small=$(content)
[ "$code" = 200 ] && grep -q '"model":"gemma-3n-demo:small"' "$work/answer.json" && pass "sub-model -> 200" ||
  fail "sub-model -> $code $(cat "$work/answer.json")"
[ -n "$small" ] && [ "$small" != "$full" ] && pass "the sub-model answers differently ('$small' vs '$full')" ||
  fail "the sub-model's answer '$small' vs the full model's '$full'"
code=$(ask small)
[ "$code" = 200 ] && [ "$(content)" = "$small" ] && pass "the bare sub-model name -> the same answer" ||
  fail "bare name -> $code $(cat "$work/answer.json")"
code=$(ask gemma-3n-demo)
[ "$code" = 200 ] && [ "$(content)" = "$full" ] && pass "the full model again -> its same answer" ||
  fail "full model again -> $code $(cat "$work/answer.json")"
# both sizes at once in the one decoder (each session bound to its model; steps batched per model)
ask_to() { # MODEL FILE
  curl -s -o "$2" "$base/v1/chat/completions" -H 'Content-Type: application/json' \
    -d "{\"model\": \"$1\", \"max_tokens\": 12, \"messages\": [{\"role\": \"user\", \"content\": \"Name three rivers.\"}]}"
}
ask_to gemma-3n-demo "$work/a.json" &
first=$!
ask_to gemma-3n-demo:small "$work/b.json" &
second=$!
wait $first $second
a=$(sed -e 's/.*"content":"\([^"]*\)".*/\1/' "$work/a.json")
b=$(sed -e 's/.*"content":"\([^"]*\)".*/\1/' "$work/b.json")
[ "$a" = "$full" ] && [ "$b" = "$small" ] && pass "both sizes at once -> each its own answer" ||
  fail "concurrent: full '$a' (alone '$full'), small '$b' (alone '$small')"
code=$(ask gemma-3n-demo:large)
[ "$code" = 404 ] && grep -q '"code":"model_not_found"' "$work/answer.json" && pass "unknown sub-model -> 404" ||
  fail "unknown sub-model -> $code $(cat "$work/answer.json")"

kill -TERM "$server"
wait "$server"
status=$?
server=
[ "$status" = 0 ] && pass "clean shutdown" || fail "server exit status $status"
[ $failures = 0 ] && echo "http matformer test: PASS" || echo "http matformer test: FAIL ($failures)"
exit $((failures > 0))
