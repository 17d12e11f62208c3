#!/usr/bin/env bash
# What an eavesdropper on the daemons' TCP links sees (issue 17): g3n-orchestrator
# and the four worker daemons (demo config, synthetic weights), every TCP byte
# between them, and between the client (`g3n run --connect`) and the
# orchestrator, passing through recording relays (tests/pipeline/tcp_relay.py:
# a capture of the loopback traffic that needs no privileges). A multimodal
# request (a prompt with a marker word + assets/demo-image.jpg) runs twice:
#   --insecure  the capture must hold the prompt text and the image's bytes (the
#               capture sees the payload: the control);
#   CurveZMQ    the same request succeeds and the capture holds neither.
# Usage: curve_capture.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
build=$1 g3n=$2
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
pids=()
stop_all() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  pids=()
}
trap 'stop_all; rm -rf "$work"' EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
synth="$root/scripts/demo-config.json:1"
prompt="Describe this picture of the PAPAYAWHIPMARKER lighthouse."
image="$root/assets/demo-image.jpg"

"$g3n" keygen --init "$work/keys" >/dev/null
mkdir -m 700 "$work/keys/secrets"
for role in vision-encoder audio-encoder embedder decoder clients; do
  "$g3n" keygen --keys "$work/keys" --role "$role" "$work/keys/secrets/$role" >/dev/null
done

run_case() { # name security(curve|insecure): the request through relays; capture in $work/NAME.cap
  local name=$1 mode=$2 worker_port client_port
  worker_port=$(free_port) client_port=$(free_port)
  local orch_security=(--insecure) client_security=(--insecure)
  if [ "$mode" = curve ]; then
    orch_security=(--keys "$work/keys")
    client_security=(--key "$work/keys/secrets/clients.key_secret" --server-key "$work/keys/server.key")
  fi
  "$build/g3n-orchestrator" --config "$root/scripts/demo-config.json" \
    --tokenizer "$root/tests/fixtures/tokenizer/tokenizer.json" --bind "tcp://127.0.0.1:$worker_port" \
    --listen "tcp://127.0.0.1:$client_port" "${orch_security[@]}" >"$work/$name-orchestrator.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 300); do grep -q "workers connect to" "$work/$name-orchestrator.log" && break; sleep 0.1; done
  : > "$work/$name.cap"
  python3 "$root/tests/pipeline/tcp_relay.py" 0 "$worker_port" "$work/$name.cap" "$work/$name.wport" &
  pids+=($!)
  python3 "$root/tests/pipeline/tcp_relay.py" 0 "$client_port" "$work/$name.cap" "$work/$name.cport" &
  pids+=($!)
  for _ in $(seq 100); do [ -f "$work/$name.wport" ] && [ -f "$work/$name.cport" ] && break; sleep 0.1; done
  local relay_workers relay_clients
  relay_workers=$(cat "$work/$name.wport") relay_clients=$(cat "$work/$name.cport")
  for role in vision-encoder audio-encoder embedder decoder; do
    local worker_security=(--insecure)
    [ "$mode" = curve ] && worker_security=(--key "$work/keys/secrets/$role.key_secret" --server-key "$work/keys/server.key")
    "$build/g3n-$role" --synth "$synth" --connect "tcp://127.0.0.1:$relay_workers" --threads 1 "${worker_security[@]}" \
      >"$work/$name-$role.log" 2>&1 &
    pids+=($!)
  done
  if ! "$g3n" run --connect "tcp://127.0.0.1:$relay_clients" "${client_security[@]}" --image "$image" \
       --max-new-tokens 4 "$prompt" >"$work/$name.answer" 2>"$work/$name-run.log"; then
    tail -n 5 "$work/$name"-*.log >&2
    exit 1
  fi
  stop_all
  [ -s "$work/$name.cap" ] || { echo "$name: nothing was captured" >&2; exit 1; }
}

# contains CAPTURE: "prompt" and/or "image" when they appear in it (16 slices of 64 bytes of the JPEG)
contains() {
  python3 - "$1" "$prompt" "$image" <<'PY'
import sys
cap = open(sys.argv[1], "rb").read()
prompt = sys.argv[2].encode()
image = open(sys.argv[3], "rb").read()
found = []
if prompt in cap or b"PAPAYAWHIPMARKER" in cap:
    found.append("prompt")
step = max(1, (len(image) - 64) // 16)
slices = [image[i:i + 64] for i in range(0, len(image) - 64, step)][:16]
if sum(s in cap for s in slices) > 0:
    found.append("image(%d/%d slices)" % (sum(s in cap for s in slices), len(slices)))
print(" ".join(found) if found else "nothing")
PY
}

run_case plain insecure
seen=$(contains "$work/plain.cap")
echo "plain TCP capture ($(stat -c %s "$work/plain.cap") bytes) holds: $seen"
case "$seen" in *prompt*image*) ;; *) echo "the control capture should hold the prompt and the image" >&2; exit 1 ;; esac

run_case curve curve
seen=$(contains "$work/curve.cap")
echo "CurveZMQ capture ($(stat -c %s "$work/curve.cap") bytes) holds: $seen"
[ "$seen" = nothing ] || { echo "CurveZMQ capture leaks: $seen" >&2; exit 1; }
[ -s "$work/curve.answer" ] || { echo "no answer over CurveZMQ" >&2; exit 1; }
echo "curve capture: the request was answered; the capture holds neither the prompt nor the image bytes"
