#!/usr/bin/env bash
# `g3n bench pipeline` on text-tiny's synthetic weights: the JSON must hold both
# set-ups (in-process and daemons over TCP) with positive decode speeds and the
# same greedy tokens, and no daemon may outlive the benchmark. Then the error
# path: a daemon that exits before registering must fail the benchmark at once,
# naming it, and the other daemon must be stopped. No timing assertions.
# Usage: bench_pipeline.sh G3N_BINARY
set -euo pipefail
g3n=$1
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$g3n" bench pipeline --synth "$root/tests/fixtures/text-tiny/config.json:11" --threads 1 \
  --decode 6 --prompt-tokens 5 --repeat 2 --json > "$work/out.json"
python3 - "$work/out.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
setups = {s["setup"]: s for s in r["setups"]}
assert set(setups) == {"in-process", "daemons"}, setups
assert setups["in-process"]["endpoint"].startswith("inproc://")
assert setups["daemons"]["endpoint"].startswith("tcp://127.0.0.1:")
for s in setups.values():
    assert s["decode_tok_s"] > 0 and s["decode_tok_s_min"] > 0 and s["prefill_ms"] > 0, s
    assert s["decode_tok_s_min"] <= s["decode_tok_s"] <= s["decode_tok_s_max"], s
    assert 0 < s["decoder_step_ms"] <= s["step_ms"], s
assert r["same_tokens"] is True
assert len(r["tokens"]) == 6 and r["decode_tokens"] == 6 and r["threads"] == 1
assert r["ratio"] > 0
assert r["curve"] is True  # the daemons' link speaks CurveZMQ unless --insecure
print("bench pipeline: both set-ups, same tokens", r["tokens"], "ratio %.3f" % r["ratio"])
PY
endpoint=$(python3 -c 'import json,sys; print([s["endpoint"] for s in json.load(open(sys.argv[1]))["setups"] if s["setup"] == "daemons"][0])' "$work/out.json")
if pgrep -f -- "--connect $endpoint" >/dev/null; then
  echo "a daemon of $endpoint outlived the benchmark" >&2
  exit 1
fi

# --weights q8: the decoders (role threads and daemon, layers only) map the cache that g3n generate (the
# full model) built, instead of rebuilding it (a rebuild renames a new file into place: a new inode)
"$g3n" generate --synth "$root/tests/fixtures/text-tiny/config.json:11" --prompt-ids 1,2,3 --max-new-tokens 2 \
  --weights q8 --cache "$work/q8.g3nq" > /dev/null 2>&1
inode=$(stat -c %i "$work/q8.g3nq")
"$g3n" bench pipeline --synth "$root/tests/fixtures/text-tiny/config.json:11" --threads 1 --decode 4 --repeat 1 \
  --weights q8 --weight-cache "$work/q8.g3nq" --insecure --json > "$work/q8.json"
python3 -c 'import json,sys; r = json.load(open(sys.argv[1])); assert r["same_tokens"] is True and r["weights"] == "q8" and r["curve"] is False, r' \
  "$work/q8.json"
[ "$(stat -c %i "$work/q8.g3nq")" = "$inode" ] || { echo "the decoder role rebuilt the q8 cache" >&2; exit 1; }
echo "bench pipeline --weights q8: both decoders mapped g3n generate's cache"

# error path: the decoder exits at once, the embedder never registers
mkdir "$work/bin"
printf '#!/bin/sh\necho $$ > "%s/embedder.pid"\nexec sleep 120\n' "$work" > "$work/bin/g3n-embedder"
printf '#!/bin/sh\necho "fake decoder: cannot load" >&2\nexit 3\n' > "$work/bin/g3n-decoder"
chmod +x "$work/bin/g3n-embedder" "$work/bin/g3n-decoder"
start=$(date +%s)
if "$g3n" bench pipeline --synth "$root/tests/fixtures/text-tiny/config.json:11" --threads 1 --decode 4 \
     --daemon-dir "$work/bin" --wait 60 2> "$work/err"; then
  echo "bench pipeline succeeded with a failing daemon" >&2
  exit 1
fi
cat "$work/err"
logs=$(sed -n 's/.*the daemons. logs are in //p' "$work/err")
[ -n "$logs" ] && [ -f "$logs/g3n-decoder.log" ] && rm -rf "$logs"
grep -q "g3n-decoder exited (status 3) before registering: fake decoder: cannot load" "$work/err"
[ $(( $(date +%s) - start )) -lt 30 ] || { echo "the failure took more than 30 s to notice" >&2; exit 1; }
embedder_pid=$(cat "$work/embedder.pid")
if kill -0 "$embedder_pid" 2>/dev/null; then
  echo "the fake embedder ($embedder_pid) was left running" >&2
  kill "$embedder_pid"
  exit 1
fi
echo "bench pipeline: a failing daemon fails the benchmark and the other is stopped"
