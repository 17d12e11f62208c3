#!/usr/bin/env bash
# bench-vs-llamacpp.sh LLAMA_CPP_BUILD_DIR GGUF_DIR CHECKPOINT_DIR
#
# Runs llama.cpp's llama-bench and `g3n bench text` on the same synthetic E2B
# weights, the same thread count and the same tests (prefill 128 and 512,
# decode 64), interleaved, REPS rounds each, and prints the tokens/s of both
# and the ratios g3n / llama.cpp per precision:
#   q4 vs Q4_0 (GGUF_DIR/e2b-synth-q4_0.gguf), q8 vs Q8_0 (…-q8_0.gguf),
#   bf16 vs BF16 (…-bf16.gguf); a missing GGUF skips that row.
# The machine is shared and noisy: rounds alternate between the two engines so
# both see the same load, and the medians over all rounds are compared.
#
# Environment: THREADS (default 2), REPS (rounds, default 3), G3N_OMP_ENV, FORMATS
# (default "q4 q8 bf16"), G3N (the g3n binary; default build/release/orchestrator/g3n
# or the first g3n on PATH), OUT (folder for the raw JSON; default a temp dir).
# G3N_ISA (portable|avx2; unset: the best the CPU has) caps g3n's instruction set.
# LLAMA_AVX2_BUILD=DIR: a second, AVX2-only llama.cpp build (../shared/tools/llamacpp/
# README.md); every round then also runs it against g3n with G3N_ISA=avx2, and the
# table gets those rows ("avx2") and g3n's avx2 / native ratio per test.
# Both engines run with their defaults, as a user gets them: llama.cpp's
# threadpool spins between its ops, and so do libgomp's threads (for a few
# milliseconds, then they sleep); G3N_OMP_ENV (e.g. "OMP_WAIT_POLICY=PASSIVE")
# adds environment to g3n's runs. Passive waits cost g3n's decode ~25 % in
# futex wake-ups (about ten parallel regions per layer and token).
# Pages: g3n maps its weight cache in 2 MiB pages where the kernel can (common/
# file_map.h); llama.cpp maps its GGUF in whatever folios the page cache holds.
# So that both read from 2 MiB pages, each GGUF is dropped from the page cache
# and read back through a MADV_HUGEPAGE mapping first (GGUF_PAGES=as-is skips
# that; where the kernel keeps files in small folios it changes nothing).
# llama.cpp stays outside the repository (see ../shared/tools/llamacpp/).
set -euo pipefail

if [[ $# -ne 3 || "$1" == "--help" || "$1" == "-h" ]]; then
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
    [[ $# -eq 3 ]] || exit 2
    exit 0
fi
LLAMA_BUILD=$1 GGUF_DIR=$2 CHECKPOINT=$3
THREADS=${THREADS:-2} REPS=${REPS:-3} FORMATS=${FORMATS:-"q4 q8 bf16"}
here=$(cd "$(dirname "$0")/.." && pwd)
G3N=${G3N:-}
if [[ -z "$G3N" ]]; then
    for candidate in "$here/build/release/orchestrator/g3n" "$here/build/orchestrator/g3n" "$(command -v g3n || true)"; do
        [[ -n "$candidate" && -x "$candidate" ]] && G3N=$candidate && break
    done
fi
[[ -x "${G3N:-}" ]] || { echo "error: no g3n binary (set G3N=...)" >&2; exit 2; }
llama_bench_in() {
    local bench=$1/bin/llama-bench
    [[ -x "$bench" ]] || bench=$1/llama-bench
    [[ -x "$bench" ]] || { echo "error: no llama-bench under $1 (bin/llama-bench)" >&2; exit 2; }
    echo "$bench"
}
LLAMA_BENCH=$(llama_bench_in "$LLAMA_BUILD")
# variants: "native" (LLAMA_BUILD, g3n with G3N_ISA as given) and, with
# LLAMA_AVX2_BUILD, "avx2" (that build, g3n with G3N_ISA=avx2)
VARIANTS="native"
LLAMA_BENCH_AVX2=
if [[ -n "${LLAMA_AVX2_BUILD:-}" ]]; then
    LLAMA_BENCH_AVX2=$(llama_bench_in "$LLAMA_AVX2_BUILD")
    VARIANTS="native avx2"
fi
case "${G3N_ISA:-}" in ""|portable|avx2) ;; *) echo "error: G3N_ISA must be portable or avx2 (or unset)" >&2; exit 2 ;; esac
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
echo "g3n: $G3N (G3N_ISA=${G3N_ISA:-best}); llama-bench: $LLAMA_BENCH${LLAMA_BENCH_AVX2:+, AVX2 build $LLAMA_BENCH_AVX2}"
echo "threads $THREADS; $REPS rounds; raw JSON in $OUT"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"

gguf_of() {
    case $1 in q4) echo "$GGUF_DIR/e2b-synth-q4_0.gguf" ;; q8) echo "$GGUF_DIR/e2b-synth-q8_0.gguf" ;;
    bf16) echo "$GGUF_DIR/e2b-synth-bf16.gguf" ;; esac
}

for format in $FORMATS; do
    gguf=$(gguf_of "$format")
    if [[ ! -f "$gguf" ]]; then
        echo "skip $format: no $gguf" >&2
        continue
    fi
    if [[ "${GGUF_PAGES:-huge}" != "as-is" ]]; then
        python3 - "$gguf" <<'EOF'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
size = os.fstat(fd).st_size
m = mmap.mmap(fd, size, prot=mmap.PROT_READ)
m.madvise(mmap.MADV_HUGEPAGE)  # read-ahead for this mapping comes in 2 MiB folios
total = sum(m[offset] for offset in range(0, size, 4096))
print(f"{sys.argv[1]}: read back through a MADV_HUGEPAGE mapping ({size / 2**30:.2f} GiB)")
EOF
    fi
    # build or map g3n's weight cache once, outside the timed rounds
    env ${G3N_OMP_ENV:-} "$G3N" bench text --model "$CHECKPOINT" --weights "$format" --threads "$THREADS" \
        --prefill 16 --decode 0 --repeat 1 --json > "$OUT/g3n-$format-cache.json"
    for round in $(seq 1 "$REPS"); do
        for variant in $VARIANTS; do
            if [[ $variant == native ]]; then
                bench=$LLAMA_BENCH isa=${G3N_ISA:-} tag=$format
            else
                bench=$LLAMA_BENCH_AVX2 isa=avx2 tag=$format.avx2
            fi
            "$bench" -m "$gguf" -t "$THREADS" -p 128,512 -n 64 -r 1 -o json > "$OUT/llama-$tag-$round.json"
            env ${G3N_OMP_ENV:-} ${isa:+G3N_ISA=$isa} "$G3N" bench text --model "$CHECKPOINT" --weights "$format" \
                --threads "$THREADS" --prefill 128,512 --decode 64 --repeat 1 --json > "$OUT/g3n-$tag-$round.json"
        done
    done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

python3 - "$OUT" "${G3N_ISA:-best}" $FORMATS <<'EOF'
import glob, json, os, statistics, sys
out, native_isa, formats = sys.argv[1], sys.argv[2], sys.argv[3:]
names = {"q4": "Q4_0", "q8": "Q8_0", "bf16": "BF16"}

def medians(tag):
    llama, g3n = {}, {}
    for fn in sorted(glob.glob(os.path.join(out, f"llama-{tag}-[0-9]*.json"))):
        for r in json.load(open(fn)):
            test = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
            llama.setdefault(test, []).extend(r["samples_ts"])
    for fn in sorted(glob.glob(os.path.join(out, f"g3n-{tag}-[0-9]*.json"))):
        for r in json.load(open(fn))["results"]:
            g3n.setdefault(r["test"], []).append(r["tok_s"])
    return llama, g3n

print("| weights | path | test | llama.cpp tok/s (median, n) | g3n tok/s (median, n) | g3n / llama.cpp |")
print("|---|---|---|---|---|---:|")
for f in formats:
    native = medians(f)
    avx2 = medians(f + ".avx2")
    for path, (llama, g3n) in ((f"native (g3n {native_isa})", native), ("avx2", avx2)):
        for test in ("pp128", "pp512", "tg64"):
            if test not in llama or test not in g3n:
                continue
            a, b = statistics.median(llama[test]), statistics.median(g3n[test])
            print(f"| {f} vs {names[f]} | {path} | {test} | {a:.2f} ({len(llama[test])}) | {b:.2f} ({len(g3n[test])}) | {b / a:.2f}x |")
    for test in ("pp128", "pp512", "tg64"):
        if test in native[1] and test in avx2[1]:
            ratio = statistics.median(avx2[1][test]) / statistics.median(native[1][test])
            print(f"|   | g3n avx2 / native | {test} | | | {ratio:.2f} |")
    cache = os.path.join(out, f"g3n-{f}-cache.json")
    if os.path.exists(cache):
        c = json.load(open(cache))
        print(f"|   | g3n {f}: cache {c['cache_bytes'] / 2**30:.2f} GiB, RSS {c['rss_bytes'] / 2**30:.2f} GiB | | | |")
EOF
