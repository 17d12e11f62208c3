#!/usr/bin/env bash
# A live session through the daemons on separate "hosts" (issue 16 item 2):
# three network namespaces as scripts/netns-test.sh makes them (the
# orchestrator host, host A with the embedder and the decoder, host B with the
# vision and audio encoders; veth links, TCP only, CurveZMQ on every link, the
# demo model: tiny synthetic weights, real tokenizer). On the orchestrator
# host (g3n-orchestrator --http):
#  1. `g3n live --connect` opens a session, pushes a frame (the demo image) and
#     an audio stream (the demo clip, in 1 s pieces), asks two questions: the
#     greedy answers equal the same session in one process (`g3n serve`'s
#     /v1/live: the same image, the clip's samples as raw PCM pieces, the same
#     questions), as is the same session through the orchestrator's /v1/live;
#  2. the session belongs to its client key: a second client key gets "no
#     live session" for its id, the owner continues it (--session);
#  3. `g3n run --video FILE --connect` gives the same greedy text as
#     `g3n video FILE` in one process.
# Exit 77 (skipped) with the reason when namespaces cannot be made here.
# Usage: live_netns.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$(cd "$1" && pwd) g3n=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
root=$(cd "$(dirname "$0")/../.." && pwd)
skip() { echo "live netns test skipped: $*"; exit 77; }
command -v ip >/dev/null || skip "the ip command (iproute2) is not installed"
command -v curl >/dev/null || skip "curl is not installed"
[ "$(id -u)" -eq 0 ] || skip "ip netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run as root to include it"
tag=g3l$$
orch=$tag-o hosta=$tag-a hostb=$tag-b
ip netns add "$orch" 2>/dev/null || skip "'ip netns add' is not permitted here (no CAP_SYS_ADMIN, or /run/netns not writable)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for ns in "$orch" "$hosta" "$hostb"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
work=$(mktemp -d)
trap cleanup EXIT
ip netns add "$hosta"
ip netns add "$hostb"
ip link add "${tag}oa" type veth peer name "${tag}ao"
ip link add "${tag}ob" type veth peer name "${tag}bo"
ip link set "${tag}oa" netns "$orch"
ip link set "${tag}ob" netns "$orch"
ip link set "${tag}ao" netns "$hosta"
ip link set "${tag}bo" netns "$hostb"
ip -n "$orch" addr add 10.214.1.1/24 dev "${tag}oa"
ip -n "$orch" addr add 10.214.2.1/24 dev "${tag}ob"
ip -n "$hosta" addr add 10.214.1.2/24 dev "${tag}ao"
ip -n "$hostb" addr add 10.214.2.2/24 dev "${tag}bo"
for ns in "$orch" "$hosta" "$hostb"; do ip -n "$ns" link set lo up; done
ip -n "$orch" link set "${tag}oa" up
ip -n "$orch" link set "${tag}ob" up
ip -n "$hosta" link set "${tag}ao" up
ip -n "$hostb" link set "${tag}bo" up

config=$root/scripts/demo-config.json
tokenizer=$root/tests/fixtures/tokenizer/tokenizer.json
synth=$config:1
keys=$work/keys
"$g3n" keygen --init "$keys" >/dev/null
mkdir -m 700 "$keys/secrets"
key() { # host role: a pair for a daemon or client, listed for its role; prints its flags
  "$g3n" keygen --keys "$keys" --role "$2" "$keys/secrets/$1-$2" >/dev/null
  echo "--key $keys/secrets/$1-$2.key_secret --server-key $keys/server.key"
}
run_in() { # ns log command...
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  pids+=($!)
}
hb=(--heartbeat-ms 200 --heartbeat-timeout-ms 2000)
run_in "$orch" "$work/orchestrator.log" "$build/g3n-orchestrator" --config "$config" --tokenizer "$tokenizer" \
  --keys "$keys" --bind tcp://0.0.0.0:5555 --listen tcp://127.0.0.1:5556 --http 8080 "${hb[@]}"
# shellcheck disable=SC2046
run_in "$hosta" "$work/embedder.log" "$build/g3n-embedder" --synth "$synth" --connect tcp://10.214.1.1:5555 --threads 1 "${hb[@]}" $(key a embedder)
# shellcheck disable=SC2046
run_in "$hosta" "$work/decoder.log" "$build/g3n-decoder" --synth "$synth" --connect tcp://10.214.1.1:5555 --threads 1 "${hb[@]}" $(key a decoder)
# shellcheck disable=SC2046
run_in "$hostb" "$work/vision.log" "$build/g3n-vision-encoder" --synth "$synth" --connect tcp://10.214.2.1:5555 --threads 1 "${hb[@]}" $(key b vision-encoder)
# shellcheck disable=SC2046
run_in "$hostb" "$work/audio.log" "$build/g3n-audio-encoder" --synth "$synth" --connect tcp://10.214.2.1:5555 --threads 1 "${hb[@]}" $(key b audio-encoder)
if ip netns exec "$hosta" bash -c 'exec 3<>/dev/tcp/10.214.2.2/9' 2>/dev/null; then
  echo "live netns test: host A reached host B, the namespaces are not isolated" >&2
  exit 1
fi
for role in vision-encoder audio-encoder embedder decoder; do
  for _ in $(seq 600); do grep -q "$role worker .* joined" "$work/orchestrator.log" 2>/dev/null && break; sleep 0.1; done
  grep -q "$role worker .* joined" "$work/orchestrator.log" || { cat "$work"/*.log >&2; exit 1; }
done
client=$(key o clients)
other=$(key o2 clients)
front=tcp://127.0.0.1:5556
q1="What is in the picture?"
q2="And what was said?"
fail() { echo "live netns test: FAIL: $*" >&2; tail -n 20 "$work"/*.log >&2; exit 1; }

echo "== 1. a live session through the daemons: a frame, an audio stream in 1 s pieces, two questions"
# shellcheck disable=SC2086
ip netns exec "$orch" "$g3n" live --connect "$front" $client --image "$root/assets/demo-image.jpg" \
  --audio-stream "$root/assets/demo-speech.wav" --ask "$q1" --ask "$q2" --max-new-tokens 8 --token-ids --keep \
  >"$work/daemons.out" 2>"$work/daemons.err" || { cat "$work/daemons.err" >&2; fail "g3n live --connect"; }
cat "$work/daemons.err" "$work/daemons.out"
id=$(grep -o 'live session live-[0-9a-f]*' "$work/daemons.err" | head -1 | cut -d' ' -f3)
[ "${#id}" -eq 37 ] || fail "no 128-bit session id in the client's output"
grep -q "before it: 1 frames, 1 audio segments" "$work/daemons.err" || fail "the session did not hold the frame and the clip"

# the same session in one process: g3n serve's /v1/live with the same media and questions
"$g3n" serve --synth "$synth" --tokenizer "$tokenizer" --host 127.0.0.1 --port 0 --port-file "$work/port" \
  --threads 1 --quiet 2>"$work/serve.log" &
pids+=($!)
for _ in $(seq 300); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || fail "g3n serve did not start"
cat >"$work/http_live.py" <<'EOF'
import json, struct, sys, urllib.request, wave
port, root, questions = sys.argv[1], sys.argv[2], sys.argv[3:]
base = f"http://127.0.0.1:{port}/v1/live/sessions"
def post(url, body, ctype):
    request = urllib.request.Request(url, data=body, headers={"Content-Type": ctype}, method="POST")
    with urllib.request.urlopen(request, timeout=600) as reply:
        return json.load(reply)
sid = post(base, b"{}", "application/json")["id"]
post(f"{base}/{sid}/frames?seconds=0", open(f"{root}/assets/demo-image.jpg", "rb").read(), "image/jpeg")
clip = wave.open(f"{root}/assets/demo-speech.wav")
assert clip.getframerate() == 16000 and clip.getnchannels() == 1 and clip.getsampwidth() == 2
samples = struct.unpack(f"<{clip.getnframes()}h", clip.readframes(clip.getnframes()))
for start in range(0, len(samples), 16000):  # the pieces g3n live sends: 1 s, s16 / 32768 as FFmpeg converts
    piece = samples[start:start + 16000]
    end = "&end=1" if start + 16000 >= len(samples) else ""
    post(f"{base}/{sid}/audio?format=f32le{end}", struct.pack(f"<{len(piece)}f", *[x / 32768.0 for x in piece]),
         "audio/pcm")
for q in questions:
    answer = post(f"{base}/{sid}/ask", json.dumps({"question": q, "max_tokens": 8, "temperature": 0}).encode(),
                  "application/json")
    print(answer["choices"][0]["message"]["content"])
EOF
python3 "$work/http_live.py" "$(cat "$work/port")" "$root" "$q1" "$q2" >"$work/serve.out"
echo "-- g3n serve (one process):"
cat "$work/serve.out"
cmp "$work/daemons.out" "$work/serve.out" || fail "the answers through the daemons differ from g3n serve's"
echo "the two answers through the daemons equal g3n serve's"
# and the same session through g3n-orchestrator --http's /v1/live, on the daemons
ip netns exec "$orch" python3 "$work/http_live.py" 8080 "$root" "$q1" "$q2" >"$work/orchestrator-http.out" ||
  fail "g3n-orchestrator --http /v1/live"
cmp "$work/orchestrator-http.out" "$work/serve.out" || fail "g3n-orchestrator --http's answers differ from g3n serve's"
echo "and so do g3n-orchestrator --http's (/v1/live through the daemons)"

echo "== 2. the session is its client key's"
# shellcheck disable=SC2086
if ip netns exec "$orch" "$g3n" live --connect "$front" $other --session "$id" --ask "$q1" --quiet \
  >"$work/other.out" 2>"$work/other.err"; then
  fail "another client key used the session"
fi
grep -q "ERROR_NOT_FOUND: live: no live session '$id'" "$work/other.err" || { cat "$work/other.err" >&2; fail "no not-found for another key"; }
# shellcheck disable=SC2086
ip netns exec "$orch" "$g3n" live --connect "$front" $client --session "$id" --ask "$q1" --max-new-tokens 4 --quiet \
  >"$work/owner.out" 2>"$work/owner.err" || { cat "$work/owner.err" >&2; fail "the owner could not continue its session"; }
echo "another key gets not-found; the owner continues the session"

echo "== 3. g3n run --video --connect == g3n video"
"$build/tests/g3n_make_test_video" "$work/colours.mkv" >/dev/null
prompt="What happens in this video?"
# shellcheck disable=SC2086
ip netns exec "$orch" "$g3n" run --video "$work/colours.mkv" --max-frames 1 --connect "$front" $client \
  --max-new-tokens 8 "$prompt" >"$work/video-daemons.out" 2>"$work/video-daemons.err" ||
  { cat "$work/video-daemons.err" >&2; fail "g3n run --video --connect"; }
"$g3n" video --synth "$synth" --tokenizer "$tokenizer" --video "$work/colours.mkv" --max-frames 1 \
  --max-new-tokens 8 --threads 1 --quiet "$prompt" >"$work/video-local.out" 2>"$work/video-local.err" ||
  { cat "$work/video-local.err" >&2; fail "g3n video"; }
cat "$work/video-daemons.out" "$work/video-local.out"
cmp "$work/video-daemons.out" "$work/video-local.out" || fail "g3n run --video --connect differs from g3n video"
echo "live netns test: a live session and a video through daemons on three network namespaces equal one process"
