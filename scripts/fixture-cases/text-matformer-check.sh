#!/usr/bin/env bash
# A MatFormer fixture case (tests/fixtures/README.md) from g3n slice's checkpoint (tests/CMakeLists.txt):
# slices the case's synthetic model to its submodel.json, then `g3n check CASE --model SLICED` (the goldens
# must pass from the sliced weights and config too), and `g3n check CASE --submodel @submodel.json` (the
# explicit spec, as a user would give it). Usage: check_sliced.sh G3N_BINARY CASE_DIR SEED
set -uo pipefail
g3n=$1 case_dir=$2 seed=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$g3n" slice --synth "$case_dir/config.json:$seed" --submodel "@$case_dir/submodel.json" --out "$work/sliced" \
  --shard-size 4000000 || exit 1
"$g3n" check "$case_dir" --model "$work/sliced" > "$work/sliced.txt" || { cat "$work/sliced.txt"; exit 1; }
"$g3n" check "$case_dir" --submodel "@$case_dir/submodel.json" > "$work/view.txt" || { cat "$work/view.txt"; exit 1; }
# the same numbers both ways (the unit test test_matformer compares the logits bit for bit)
if ! diff <(grep -E "rel_l2|tokens" "$work/sliced.txt") <(grep -E "rel_l2|tokens" "$work/view.txt"); then
  echo "FAIL: the sliced checkpoint and the sub-model view differ"
  exit 1
fi
tail -1 "$work/sliced.txt"
