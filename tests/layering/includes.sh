#!/usr/bin/env bash
# includes.sh [ROOT] - the layering of the source tree, written once (RULES
# below), and every `#include "NAME"` of a .c or .h under common/, services/
# and orchestrator/ checked against it (issue 23). A file belongs to a folder
# (common/<layer>, services/<role>, orchestrator); it may include headers of
# its own folder and of the folders its rule names, nothing else, so a lower
# layer never includes an upper one. Includes are by name, resolved as the
# build does: the includer's own folder first, else the one header of that name
# in the tree (two headers of one name are an error: the build could take
# either). Headers must not include each other in a cycle (tsort).
# ROOT defaults to the repository; tests/layering/self_test.sh runs it on a
# copy with a violation planted and expects it to fail.
set -u
cd "${1:-$(dirname "$0")/../..}" || exit 2

# folder: the folders it may include (lowest layers first). "common" stands
# for every common/ layer, "services" for every services/ role.
RULES='
common/base:
common/kernels: common/base
common/model_io: common/base
common/text: common/base common/model_io
common/net: common/base
common/check: common/base common/model_io common/text
common/options: common/base common/kernels common/net
common/role: common/base common/kernels common/model_io common/net common/options
services/embedder: common
services/decoder: common services/embedder
services/audio_encoder: common services/embedder
services/vision_encoder: common services/embedder
services/media: common services/embedder services/decoder services/audio_encoder services/vision_encoder
orchestrator: common services
'
# Headers generated at build time: no folder of the tree; who may include them.
GENERATED='g3n.pb-c.h: common/net common/role services orchestrator'

declare -A allowed
while IFS=: read -r folder deps; do
    [ -n "$folder" ] || continue
    allowed[$folder]=" $folder $deps "
done <<<"$RULES"
declare -A generated
while IFS=: read -r name who; do generated[$name]=" $who "; done <<<"$GENERATED"

failed=0 checked=0
fail() { echo "FAIL $*"; failed=1; }

# The folder a path belongs to (in $folder): common/<layer>, services/<role>
# or orchestrator.
folder_of() {
    local rest
    case "$1" in
        common/*/* | services/*/*) rest=${1#*/}; folder=${1%%/*}/${rest%%/*} ;;
        orchestrator/*) folder=orchestrator ;;
        *) folder=${1%/*} ;;
    esac
}
# 0 if folder $1 may include a header of folder $2.
may_include() {
    local rule=${allowed[$1]} top=${2%%/*}
    [[ "$rule" == *" $2 "* || "$rule" == *" $top "* ]]
}

# Every header of the tree by its name.
declare -A headers
while IFS= read -r h; do
    name=${h##*/}
    headers[$name]="${headers[$name]:-}${headers[$name]:+ }$h"
done < <(find common services orchestrator -name '*.h' | sort)

# The table itself must be acyclic.
if ! while IFS=: read -r folder deps; do
        [ -n "$folder" ] || continue
        for d in $deps; do echo "$d $folder"; done
    done <<<"$RULES" | tsort >/dev/null 2>&1; then
    fail "the RULES table has a cycle"
fi

edges=$(mktemp)
trap 'rm -f "$edges"' EXIT
while IFS= read -r file; do
    folder_of "$file"
    from=$folder dir=${file%/*}
    if [ -z "${allowed[$from]:-}" ]; then
        if [[ "$file" == common/* && "$from" == common ]]; then
            fail "$file is in common/ itself: move it into the layer folder it belongs to (common/CMakeLists.txt lists them)"
        else
            fail "$file: its folder $from has no rule in tests/layering/includes.sh"
        fi
        continue
    fi
    while IFS= read -r name; do
        checked=$((checked + 1))
        base=${name##*/}
        if [ -e "$dir/$name" ]; then
            target=$dir/$name
        elif [ -n "${generated[$base]:-}" ]; then
            who=${generated[$base]}
            [[ "$who" == *" $from "* || "$who" == *" ${from%%/*} "* ]] ||
                fail "$file includes \"$name\" (generated), which $from may not include"
            continue
        else
            read -r -a found <<<"${headers[$base]:-}"
            if [ ${#found[@]} -eq 0 ]; then
                fail "$file includes \"$name\", which is no header of the tree"
                continue
            fi
            if [ ${#found[@]} -gt 1 ]; then
                fail "$file includes \"$name\", a name that ${#found[@]} headers have: ${found[*]}"
                continue
            fi
            target=${found[0]}
        fi
        folder_of "$target"
        to=$folder
        may_include "$from" "$to" ||
            fail "$file includes \"$name\" ($target): $from may include only ${allowed[$from]}"
        [[ "$file" == *.h && "$target" == *.h ]] && echo "$target $file" >>"$edges"
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$file")
done < <(find common services orchestrator -name '*.[ch]' | sort)

if ! tsort "$edges" >/dev/null 2>&1; then
    fail "headers include each other in a cycle: $(tsort "$edges" 2>&1 >/dev/null | tr '\n' ' ')"
fi
if [ "$checked" -lt 500 ]; then
    fail "only $checked includes read (the script reads nothing?)"
fi
[ $failed -eq 0 ] && echo "ok: $checked includes under common/, services/ and orchestrator/ follow the layering"
exit $failed
