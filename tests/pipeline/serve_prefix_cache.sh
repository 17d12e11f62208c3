#!/usr/bin/env bash
# Prefix reuse in `g3n serve` (every role in one process), as g3n-orchestrator
# --http has it: a 4-turn chat through the HTTP API continues its kept decoder
# session from turn 2 on (/metrics counts the hits and the reused prompt
# tokens), with the same answers as `g3n serve --no-prefix-cache`, which keeps
# nothing. Before, g3n serve had no prefix cache: every turn prefilled its
# whole history.
# Usage: serve_prefix_cache.sh G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
g3n=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
server=
cleanup() { [ -n "$server" ] && kill -KILL "$server" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cd "$root"

serve() { # extra flags...
  rm -f "$work/port"
  "$g3n" serve --demo --host 127.0.0.1 --port 0 --port-file "$work/port" --quiet --live-sessions 0 "$@" \
    >"$work/serve.log" 2>&1 &
  server=$!
  for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.1; done
  [ -s "$work/port" ] || { cat "$work/serve.log"; exit 1; }
  port=$(cat "$work/port")
}
metric() { awk -v name="$1" '$1 == name {print $2}' "$work/metrics"; }

serve
python3 tests/pipeline/http_chat.py "$port" 4 >"$work/on.json"
curl -sf "http://127.0.0.1:$port/metrics" >"$work/metrics"
grep "^g3n_prefix_cache_" "$work/metrics" || true
hits=$(metric g3n_prefix_cache_hits_total) reused=$(metric g3n_prefix_cache_reused_tokens_total)
kill -TERM "$server"; wait "$server"; server= # a clean stop: its kept sessions ended
[ "${hits:-0}" -ge 1 ] || { echo "g3n serve: no turn continued a kept session"; exit 1; }
[ "${reused:-0}" -gt 0 ] || { echo "g3n serve: no prompt token reused"; exit 1; }

serve --no-prefix-cache
python3 tests/pipeline/http_chat.py "$port" 4 >"$work/off.json"
curl -sf "http://127.0.0.1:$port/metrics" >"$work/metrics"
kill -TERM "$server"; wait "$server"; server=
if grep -q "^g3n_prefix_cache_hits_total" "$work/metrics"; then echo "--no-prefix-cache kept sessions"; exit 1; fi
cmp "$work/on.json" "$work/off.json"
echo "g3n serve: $hits of 4 turns continued a kept session ($reused prompt tokens reused), the same answers as without"
