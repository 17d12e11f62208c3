#!/usr/bin/env bash
# The daemons on separate "hosts": three network namespaces made by this test
# (an orchestrator host and two worker hosts, linked by veth pairs; no other
# interface, no route out), traffic only between them over TCP. The
# orchestrator host runs `g3n check-pipeline mm-tiny --remote`; worker host A
# runs the embedder and the decoder, worker host B the vision and audio
# encoders. mm-tiny must pass. CurveZMQ on every link: a keys folder on the
# orchestrator host, a key pair per daemon listed for its role; a rogue decoder
# on host B with no key (plain TCP) and one with an embedder's key must stay
# out and serve nothing while mm-tiny passes. Everything the test creates is
# deleted on exit.
# Exit 77 (skipped) with the reason when namespaces cannot be made here.
# Usage: scripts/netns-test.sh BUILD_DIR G3N_BINARY
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive} # several OpenMP processes share the cores
build=$(cd "$1" && pwd) g3n=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
root=$(cd "$(dirname "$0")/.." && pwd)
skip() { echo "netns test skipped: $*"; exit 77; }
command -v ip >/dev/null || skip "the ip command (iproute2) is not installed"
[ "$(id -u)" -eq 0 ] || skip "ip netns needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run as root to include it"
tag=g3n$$
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
# veth pairs: orchestrator <-> host A (10.213.1.0/24), orchestrator <-> host B (10.213.2.0/24)
ip link add "${tag}oa" type veth peer name "${tag}ao"
ip link add "${tag}ob" type veth peer name "${tag}bo"
ip link set "${tag}oa" netns "$orch"
ip link set "${tag}ob" netns "$orch"
ip link set "${tag}ao" netns "$hosta"
ip link set "${tag}bo" netns "$hostb"
ip -n "$orch" addr add 10.213.1.1/24 dev "${tag}oa"
ip -n "$orch" addr add 10.213.2.1/24 dev "${tag}ob"
ip -n "$hosta" addr add 10.213.1.2/24 dev "${tag}ao"
ip -n "$hostb" addr add 10.213.2.2/24 dev "${tag}bo"
for ns in "$orch" "$hosta" "$hostb"; do ip -n "$ns" link set lo up; done
ip -n "$orch" link set "${tag}oa" up
ip -n "$orch" link set "${tag}ob" up
ip -n "$hosta" link set "${tag}ao" up
ip -n "$hostb" link set "${tag}bo" up

synth="$root/tests/fixtures/mm-tiny/config.json:41"
keys=$work/keys
"$g3n" keygen --init "$keys" >/dev/null
mkdir -m 700 "$keys/secrets"
key() { # host role: a pair for a daemon, listed for its role; prints its flags
  "$g3n" keygen --keys "$keys" --role "$2" "$keys/secrets/$1-$2" >/dev/null
  echo "--key $keys/secrets/$1-$2.key_secret --server-key $keys/server.key"
}
run_in() { # ns log command...
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  pids+=($!)
}
# shellcheck disable=SC2046
run_in "$hosta" "$work/embedder.log" "$build/g3n-embedder" --synth "$synth" --connect tcp://10.213.1.1:5555 --threads 1 $(key a embedder)
# shellcheck disable=SC2046
run_in "$hosta" "$work/decoder.log" "$build/g3n-decoder" --synth "$synth" --connect tcp://10.213.1.1:5555 --threads 1 $(key a decoder)
# shellcheck disable=SC2046
run_in "$hostb" "$work/vision.log" "$build/g3n-vision-encoder" --synth "$synth" --connect tcp://10.213.2.1:5555 --threads 1 $(key b vision-encoder)
# shellcheck disable=SC2046
run_in "$hostb" "$work/audio.log" "$build/g3n-audio-encoder" --synth "$synth" --connect tcp://10.213.2.1:5555 --threads 1 $(key b audio-encoder)
# rogues on host B: a decoder with no key, and one holding an embedder's key
run_in "$hostb" "$work/rogue-plain.log" "$build/g3n-decoder" --synth "$synth" --connect tcp://10.213.2.1:5555 --threads 1 --insecure
# shellcheck disable=SC2046
run_in "$hostb" "$work/rogue-role.log" "$build/g3n-decoder" --synth "$synth" --connect tcp://10.213.2.1:5555 --threads 1 $(key b embedder)
# host A cannot reach host B directly: the only routes are to the orchestrator
if ip netns exec "$hosta" bash -c 'exec 3<>/dev/tcp/10.213.2.2/9' 2>/dev/null; then
  echo "netns test: host A reached host B, the namespaces are not isolated" >&2
  exit 1
fi
status=0
ip netns exec "$orch" "$g3n" check-pipeline "$root/tests/fixtures/mm-tiny" --bind tcp://0.0.0.0:5555 --keys "$keys" \
  --remote --wait 120 | tee "$work/out" || status=$?
if [ $status -ne 0 ] || ! grep -q "^4 passed, 0 failed" "$work/out"; then
  tail -n 5 "$work"/*.log >&2
  exit 1
fi
# the rogues served nothing: SIGTERM and read their last words
kill -TERM "${pids[4]}" "${pids[5]}"
for _ in $(seq 50); do grep -q "shutting down" "$work/rogue-plain.log" "$work/rogue-role.log" 2>/dev/null && break; sleep 0.1; done
sleep 0.5
grep -q "shutting down (0 requests served" "$work/rogue-plain.log" || { cat "$work/rogue-plain.log" >&2; exit 1; }
grep -q "shutting down (0 requests served" "$work/rogue-role.log" || { cat "$work/rogue-role.log" >&2; exit 1; }
echo "netns test: rogue decoders (no key; an embedder's key) served nothing"
echo "netns test: mm-tiny passed with the roles on three network namespaces (orchestrator, host A, host B)"
