#!/usr/bin/env bash
# services_includes.sh - no file under services/ includes a header of the
# orchestrator (issue 16 item 4: a role's server lives with its model and needs
# only common/ and its own folder). Each `#include "NAME"` of a .c or .h under
# services/ is resolved as the build does (the file's folder, its role's folder,
# common/, the other services' folders) and must not name a header that lives
# under orchestrator/ and nowhere else.
set -u
cd "$(dirname "$0")/../.."
failed=0 checked=0
while IFS= read -r file; do
    role_dir=$(cut -d/ -f1-2 <<<"$file")
    while IFS= read -r name; do
        checked=$((checked + 1))
        found=""
        for d in "$(dirname "$file")" "$role_dir" common/* services/*; do
            [ -e "$d/$name" ] && { found=$d/$name; break; }
        done
        if [[ "$name" == *orchestrator/* ]] ||
            { [ -z "$found" ] && [ -n "$(find orchestrator -path "*/$name" -print -quit)" ]; }; then
            echo "FAIL $file includes \"$name\", a header of orchestrator/"
            failed=1
        fi
    done < <(sed -nE 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/p' "$file")
done < <(find services -name '*.[ch]' | sort)
if [ "$checked" -lt 50 ]; then
    echo "FAIL: only $checked includes read under services/ (the script reads nothing?)"
    failed=1
fi
[ $failed -eq 0 ] && echo "ok: $checked includes under services/, none of orchestrator/"
exit $failed
