#!/usr/bin/env bash
# weights_default.sh BIN_DIR - the decoder and embedder daemons compute with q8
# by default on a checkpoint (--model) and with the stored weights (f32) on
# synthetic ones, as g3n run and g3n serve do, and say so (--check-args prints
# what the daemon would start with; at start it is printed to stderr);
# --weights overrides; --help documents the default; the encoders take no --weights.
set -u
dir=${1:?usage: weights_default.sh BIN_DIR}
cd "$(dirname "$0")/../.."
checkpoint=tests/fixtures/mm-tiny/hf-checkpoint
synth=tests/fixtures/mm-tiny/config.json:41
failed=0

# expect WHAT EXPECTED_RC PATTERN COMMAND...
expect() {
    local what=$1 want_rc=$2 pattern=$3
    shift 3
    local out rc
    out=$("$@" 2>&1)
    rc=$?
    if [ "$rc" -ne "$want_rc" ] || ! grep -qE -- "$pattern" <<<"$out"; then
        echo "FAIL $what: exit $rc (want $want_rc), output lacks /$pattern/:"
        sed 's/^/    /' <<<"$out"
        failed=1
    else
        echo "ok $what"
    fi
}

for daemon in g3n-decoder g3n-embedder; do
    bin=$dir/$daemon
    expect "$daemon --model: q8" 0 'weights q8 \(the default for a checkpoint' \
        "$bin" --model $checkpoint --insecure --check-args
    expect "$daemon --synth: f32" 0 'weights f32 \(the exact path' "$bin" --synth $synth --insecure --check-args
    expect "$daemon --model --weights f32" 0 'weights f32 \(--weights\)' \
        "$bin" --model $checkpoint --weights f32 --insecure --check-args
    expect "$daemon --weights q4" 0 'weights q4 \(--weights\)' "$bin" --synth $synth --weights q4 --insecure --check-args
    expect "$daemon --weights q9" 2 'q9' "$bin" --synth $synth --weights q9 --check-args
    expect "$daemon --help" 0 'Default q8 with --model' "$bin" --help
done
for daemon in g3n-vision-encoder g3n-audio-encoder; do
    expect "$daemon: no --weights" 2 "unknown option '--weights'" "$dir/$daemon" --synth $synth --weights q8 --check-args
done
# At start: the decoder says what it computes with (stopped by SIGTERM after a few seconds; no broker there).
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect "g3n-decoder at start" 124 'g3n-decoder: weights q8 \(the default for a checkpoint' \
    timeout -s TERM 4 "$dir/g3n-decoder" --model $checkpoint --weight-cache "$tmp/cache" --insecure \
    --connect tcp://127.0.0.1:9 --drain-timeout-s 0 --threads 1
exit $failed
