#!/usr/bin/env bash
# The HTTP API's end-to-end test (tests/http.cmake): starts `g3n serve --demo`
# on a free loopback port, then: the official openai client (client.mjs), every
# error case with curl (errors.sh), the bounded load test (load.mjs), and a
# clean SIGTERM shutdown. Skips (77) without node or tests/http/node_modules
# (scripts/setup.sh installs them with npm ci).
# Usage: run.sh G3N_BINARY [REQUESTS CONCURRENCY]
set -uo pipefail
g3n=$1 requests=${2:-48} concurrency=${3:-4}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
if ! command -v node > /dev/null || [ ! -d "$here/node_modules/openai" ]; then
  echo "http test: skipped (needs node and tests/http/node_modules: run scripts/setup.sh)"
  exit 77
fi
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/allowed"
cp "$repo/assets/demo-image.jpg" "$work/allowed/image.jpg"
cp "$repo/assets/demo-image.jpg" "$work/outside.jpg"
# --no-prefix-cache: kept decoder sessions hold memory on purpose, and load.mjs checks that memory comes
# back to its idle level after the load (for leaks); prefix reuse in g3n serve: pipeline_serve_prefix_cache
"$g3n" serve --demo --host 127.0.0.1 --port 0 --port-file "$work/port" --max-sessions 2 --queue 2 \
  --max-body-mb 4 --context 1024 --max-tokens 1000 --allow-dir "$work/allowed" --quiet --no-prefix-cache \
  2> "$work/server.log" &
server=$!
for _ in $(seq 1 600); do
  [ -s "$work/port" ] && break
  kill -0 "$server" 2> /dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -s "$work/port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
base=http://127.0.0.1:$(cat "$work/port")
echo "http test: server at $base (pid $server)"
rc=0
node "$here/client.mjs" "$base" "$repo" || rc=1
bash "$here/errors.sh" "$base" "$repo" "$work/allowed" "$work" || rc=1
node "$here/load.mjs" "$base" "$server" "$requests" "$concurrency" || rc=1
kill -0 "$server" 2> /dev/null || { echo "FAIL the server died"; rc=1; }
kill -TERM "$server"
wait "$server"
status=$?
server=
[ "$status" = 0 ] && echo "PASS clean shutdown on SIGTERM" || { echo "FAIL server exit status $status"; rc=1; }
grep -E "error|Sanitizer|runtime error" "$work/server.log" && { echo "FAIL the server log has errors"; rc=1; }
echo "http test: $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
