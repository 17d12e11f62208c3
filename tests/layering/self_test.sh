#!/usr/bin/env bash
# self_test.sh - includes.sh must fail on a violation: on a copy of the tree it
# is run clean (passes), then with a lower layer including an upper one, a
# service including the orchestrator, two headers including each other, and a
# file left in common/ itself; each must fail, naming the file.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0

fresh() {
    rm -rf "$work/tree" && mkdir "$work/tree"
    cp -r "$repo/common" "$repo/services" "$repo/orchestrator" "$work/tree/"
}
expect() { # expect WANT(0|1) PATTERN WHAT
    local out rc
    out=$(bash "$repo/tests/layering/includes.sh" "$work/tree" 2>&1)
    rc=$?
    if [ "$1" = 0 ] && [ $rc -ne 0 ]; then
        echo "FAIL $3: includes.sh failed on the clean tree:"; echo "$out"; status=1
    elif [ "$1" = 1 ] && { [ $rc -eq 0 ] || ! grep -q -- "$2" <<<"$out"; }; then
        echo "FAIL $3: includes.sh did not fail with '$2' (rc $rc):"; echo "$out"; status=1
    else
        echo "ok: $3"
    fi
}

fresh; expect 0 "" "the clean tree passes"
fresh; echo '#include "transport.h"' >>"$work/tree/common/base/status.c"
expect 1 'FAIL common/base/status.c includes "transport.h" (common/net/transport.h)' "common/base including common/net fails"
fresh; echo '#include "pipeline.h"' >>"$work/tree/services/decoder/generate.c"
expect 1 'FAIL services/decoder/generate.c includes "pipeline.h"' "a service including orchestrator/ fails"
fresh; sed -i 's/^#include "status.h"/#include "status.h"\n#include "json_util.h"/' "$work/tree/common/base/tensor.h"
echo '#include "tensor.h"' >>"$work/tree/common/base/json_util.h"
expect 1 'cycle' "two headers including each other fail"
fresh; echo '#include "status.h"' >"$work/tree/common/loose.c"
expect 1 'FAIL common/loose.c is in common/ itself' "a file in common/ itself fails"
exit $status
