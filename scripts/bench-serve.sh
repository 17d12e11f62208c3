#!/usr/bin/env bash
# bench-serve.sh CHECKPOINT_DIR [GGUF]
#
# The serving load of issue 19: CLIENTS (default "1 4") concurrent streaming chat
# completions (greedy, a ~100-word prompt, TOKENS completion tokens each, default 64)
# against `g3n serve --model CHECKPOINT_DIR --weights WEIGHTS (default q4) --threads
# THREADS (default 2) --max-sessions 4`, and, with GGUF and LLAMA_BUILD (a llama.cpp
# build folder holding bin/llama-server), against `llama-server -m GGUF -np 4 -t THREADS`
# one after the other, REPS rounds (default 2). Prints per server and client count the
# aggregate completion tokens/s (chunks of the stream), TTFT p50 and per-stream tokens/s,
# medians over the rounds. Environment: G3N (binary; default build/release/orchestrator/g3n),
# TOKENIZER (default CHECKPOINT_DIR/tokenizer.json, else tests/fixtures/tokenizer/tokenizer.json),
# G3N_ISA (passed to g3n). The host is noisy: compare only within one run.
set -euo pipefail
if [[ $# -lt 1 || $# -gt 2 || "$1" == "--help" || "$1" == "-h" ]]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    [[ $# -ge 1 ]] && exit 0
    exit 2
fi
CHECKPOINT=$1 GGUF=${2:-}
here=$(cd "$(dirname "$0")/.." && pwd)
G3N=${G3N:-$here/build/release/orchestrator/g3n}
THREADS=${THREADS:-2} WEIGHTS=${WEIGHTS:-q4} CLIENTS=${CLIENTS:-"1 4"} TOKENS=${TOKENS:-64} REPS=${REPS:-2}
TOKENIZER=${TOKENIZER:-$CHECKPOINT/tokenizer.json}
[[ -f "$TOKENIZER" ]] || TOKENIZER=$here/tests/fixtures/tokenizer/tokenizer.json
[[ -x "$G3N" ]] || { echo "error: no g3n binary at $G3N (set G3N=...)" >&2; exit 2; }
work=$(mktemp -d)
server_pid=
cleanup() { [[ -n "$server_pid" ]] && kill "$server_pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/load.py" <<'EOF'
import json, statistics, sys, threading, time, urllib.request
url, model, clients, tokens, label = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
words = ("the keeper of the lighthouse watched the storm roll in over the grey sea while the lamp turned "
         "and the gulls went quiet ").split()
prompt = "Tell a long story. " + " ".join(words[i % len(words)] for i in range(100))
results, errors = [], []
def one(k):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": f"{prompt} ({k})"}],
                       "max_tokens": tokens, "temperature": 0, "stream": True}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    start, first, chunks = time.time(), None, 0
    try:
        with urllib.request.urlopen(request, timeout=900) as reply:
            for line in reply:
                line = line.decode().strip()
                if not line.startswith("data:") or line == "data: [DONE]":
                    continue
                choice = (json.loads(line[5:]).get("choices") or [{}])[0]
                if choice.get("delta", {}).get("content"):
                    chunks += 1
                    first = first if first is not None else time.time() - start
    except Exception as e:
        errors.append(str(e))
        return
    results.append((chunks, first or 0.0, time.time() - start))
start = time.time()
threads = [threading.Thread(target=one, args=(k,)) for k in range(clients)]
for t in threads: t.start()
for t in threads: t.join()
wall = time.time() - start
if errors:
    print(f"{label} clients {clients}: {len(errors)} failed: {errors[0]}", file=sys.stderr)
    sys.exit(1)
per_stream = [c / max(w - f, 1e-9) for c, f, w in results]
print(json.dumps({"server": label, "clients": clients, "aggregate": sum(r[0] for r in results) / wall,
                  "ttft_p50": statistics.median(r[1] for r in results),
                  "per_stream": statistics.median(per_stream)}))
EOF

start_g3n() {
    "$G3N" serve --model "$CHECKPOINT" --tokenizer "$TOKENIZER" --weights "$WEIGHTS" --threads "$THREADS" \
        --max-sessions 4 --live-sessions 0 --host 127.0.0.1 --port 0 --port-file "$work/port" --quiet \
        > "$work/g3n.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do [[ -s "$work/port" ]] && break; sleep 1; done
    [[ -s "$work/port" ]] || { echo "error: g3n serve did not start:" >&2; cat "$work/g3n.log" >&2; exit 1; }
    url="http://127.0.0.1:$(cat "$work/port")/v1/chat/completions"
    model=$(basename "$(cd "$CHECKPOINT" && pwd)")
}
start_llama() {
    local port=$((20000 + RANDOM % 20000))
    "$LLAMA_BUILD/bin/llama-server" -m "$GGUF" -np 4 -t "$THREADS" --host 127.0.0.1 --port "$port" \
        > "$work/llama.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 600); do curl -sf "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break; sleep 1; done
    url="http://127.0.0.1:$port/v1/chat/completions" model=gguf
}
stop_server() { kill "$server_pid" 2>/dev/null; wait "$server_pid" 2>/dev/null || true; server_pid=; rm -f "$work/port"; }

servers="g3n"
[[ -n "$GGUF" && -n "${LLAMA_BUILD:-}" ]] && servers="g3n llama-server"
echo "g3n: $G3N --weights $WEIGHTS (G3N_ISA=${G3N_ISA:-best}); threads $THREADS; clients $CLIENTS; $TOKENS tokens; $REPS rounds"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$REPS"); do
    for server in $servers; do
        if [[ $server == g3n ]]; then start_g3n; else start_llama; fi
        for clients in $CLIENTS; do
            python3 "$work/load.py" "$url" "$model" "$clients" "$TOKENS" "$server" >> "$work/results.jsonl"
        done
        stop_server
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$work/results.jsonl" <<'EOF'
import collections, json, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows[(r["server"], r["clients"])].append(r)
print("| server | clients | aggregate tok/s | TTFT p50 s | per-stream tok/s | rounds |")
print("|---|---:|---:|---:|---:|---:|")
one = {}
for (server, clients), rs in sorted(rows.items()):
    agg = statistics.median(r["aggregate"] for r in rs)
    one.setdefault(server, agg if clients == 1 else None)
    print(f"| {server} | {clients} | {agg:.2f} | {statistics.median(r['ttft_p50'] for r in rs):.2f} | "
          f"{statistics.median(r['per_stream'] for r in rs):.2f} | {len(rs)} |")
for (server, clients), rs in sorted(rows.items()):
    if clients > 1 and one.get(server):
        print(f"{server}: {clients} clients / 1 client aggregate = {statistics.median(r['aggregate'] for r in rs) / one[server]:.2f}x")
EOF
