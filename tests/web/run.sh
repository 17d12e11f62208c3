#!/usr/bin/env bash
# The web page's end-to-end test (tests/web.cmake): starts `g3n serve --demo` on
# a free loopback port and drives the page at / in Debian's headless Chromium
# (page.mjs, playwright-core pinned by package-lock.json) with a fake camera
# and microphone fed from files. Screenshots go to ARTIFACTS_DIR. Skips (77)
# without node, tests/web/node_modules or /usr/bin/chromium (scripts/setup.sh
# installs them).
# With ORCHESTRATOR_BINARY, also checks that `g3n-orchestrator --http` serves the
# same files (curl) and creates a live session there.
# Usage: run.sh G3N_BINARY ARTIFACTS_DIR [ORCHESTRATOR_BINARY]
set -uo pipefail
g3n=$1 artifacts=$2 orchestrator=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
chromium=${G3N_CHROMIUM:-/usr/bin/chromium}
if ! command -v node > /dev/null || [ ! -d "$here/node_modules/playwright-core" ] || [ ! -x "$chromium" ]; then
  echo "web test: skipped (needs node, tests/web/node_modules and $chromium: run scripts/setup.sh)"
  exit 77
fi
mkdir -p "$artifacts"
rm -f "$artifacts"/*.png
work=$(mktemp -d)
server=
orchestrator_pid=
cleanup() {
  [ -n "$server" ] && kill "$server" 2> /dev/null
  [ -n "$orchestrator_pid" ] && kill "$orchestrator_pid" 2> /dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# The fake camera: Motion JPEG (JPEG frames back to back) of the demo image.
cat "$repo/assets/demo-image.jpg" "$repo/assets/demo-image.jpg" > "$work/camera.mjpeg"
"$g3n" serve --demo --host 127.0.0.1 --port 0 --port-file "$work/port" --max-tokens 2000 --max-sessions 2 \
  --live-sessions 2 2> "$work/server.log" &
server=$!
for _ in $(seq 1 600); do
  [ -s "$work/port" ] && break
  kill -0 "$server" 2> /dev/null || { cat "$work/server.log"; exit 1; }
  sleep 0.1
done
[ -s "$work/port" ] || { echo "server did not start"; cat "$work/server.log"; exit 1; }
base=http://127.0.0.1:$(cat "$work/port")
echo "web test: server at $base (pid $server), screenshots in $artifacts"
rc=0
timeout -k 10 590 node "$here/page.mjs" "$base" "$repo" "$artifacts" "$work/camera.mjpeg" "$repo/assets/demo-speech.wav" || rc=1
kill -0 "$server" 2> /dev/null || { echo "FAIL the server died"; rc=1; }
kill -TERM "$server"
wait "$server"
status=$?
server=
[ "$status" = 0 ] && echo "PASS clean shutdown on SIGTERM" || { echo "FAIL server exit status $status"; rc=1; }
grep -E "Sanitizer|runtime error" "$work/server.log" && { echo "FAIL the server log has errors"; rc=1; }
cp "$work/server.log" "$artifacts/server.log"

if [ -n "$orchestrator" ]; then
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  "$orchestrator" --config "$repo/scripts/demo-config.json" --tokenizer "$repo/tests/fixtures/tokenizer/tokenizer.json" \
    --bind "ipc://$work/workers" --listen "ipc://$work/clients" --http "$port" --quiet 2> "$work/orchestrator.log" &
  orchestrator_pid=$!
  obase=http://127.0.0.1:$port
  for _ in $(seq 1 100); do
    curl -sf -o /dev/null "$obase/" && break
    sleep 0.1
  done
  same=1
  for file in "$repo"/web/*.html "$repo"/web/*.js "$repo"/web/*.css "$repo"/web/*.svg; do
    name=$(basename "$file")
    [ "$name" = index.html ] && url="$obase/" || url="$obase/$name"
    curl -sf --max-time 10 "$url" | cmp -s - "$file" || { echo "FAIL g3n-orchestrator --http: $url differs from web/$name"; same=0; }
  done
  [ $same = 1 ] && echo "PASS g3n-orchestrator --http serves the page (every file of web/)" || rc=1
  message=$(curl -s --max-time 10 -X POST "$obase/v1/live/sessions" -d '{}')
  case "$message" in
    *'"object":"live.session"'*) echo "PASS g3n-orchestrator --http: live sessions are served (issue 16)" ;;
    *) echo "FAIL g3n-orchestrator --http live sessions: $message"; rc=1 ;;
  esac
  kill -TERM "$orchestrator_pid"
  wait "$orchestrator_pid" 2> /dev/null
  orchestrator_pid=
fi
echo "web test: $([ $rc = 0 ] && echo PASS || echo FAIL)"
exit $rc
