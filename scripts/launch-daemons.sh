#!/usr/bin/env bash
# Starts the g3n worker daemons as separate processes on this machine, all
# connecting to one orchestrator broker (g3n-orchestrator, or `g3n run --bind`,
# or `g3n check-pipeline --bind ... --remote`).
#
#   scripts/launch-daemons.sh start --connect tcp://127.0.0.1:5555 (--model DIR | --synth CONFIG:SEED)
#       [--bin DIR] [--vision N] [--audio N] [--embedders N] [--decoders N] [--threads N]
#       [--pidfile FILE] [--logs DIR] [--extra "ARGS"] (--keys DIR | --insecure)
#   scripts/launch-daemons.sh stop [--pidfile FILE]     SIGTERM to every daemon, waits for clean exits
#
# --keys DIR: CurveZMQ. DIR holds the orchestrator's public key (DIR/server.key,
# from `g3n keygen --init DIR`); each daemon gets its own key pair,
# DIR/secrets/HOST-ROLE-I.key_secret, made on first use with its public key
# listed in DIR/ROLE/ (on the orchestrator's host that is its keys folder, read
# at the next connection; on another host copy DIR/ROLE/*.key into the
# orchestrator's folder). --insecure: plain tcp:// (trusted networks only).
#
# Defaults: one daemon of each role, binaries from build/release, pidfile
# /tmp/g3n-daemons.pids, logs in /tmp/g3n-daemon-logs. On several hosts, run
# this with the counts you want on each host and --connect pointing at the
# orchestrator's host.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:-}
shift || true
bin=build/release connect=tcp://127.0.0.1:5555 source_flag="" source_value="" threads="" keys="" insecure=""
vision=1 audio=1 embedders=1 decoders=1 pidfile=/tmp/g3n-daemons.pids logs=/tmp/g3n-daemon-logs extra=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --connect) connect=$2; shift 2 ;;
    --model|--synth) source_flag=$1; source_value=$2; shift 2 ;;
    --vision) vision=$2; shift 2 ;;
    --audio) audio=$2; shift 2 ;;
    --embedders) embedders=$2; shift 2 ;;
    --decoders) decoders=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --pidfile) pidfile=$2; shift 2 ;;
    --logs) logs=$2; shift 2 ;;
    --extra) extra=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --insecure) insecure=--insecure; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "launch-daemons: unknown argument $1" >&2; exit 2 ;;
  esac
done
# Several OpenMP processes share the cores: with libgomp's long default spin,
# idle threads of one daemon starve the others (E2B decode through the daemons
# fell from 2.4 to 0.3 tok/s on a busy 2-core host). The daemons spin ~20 us and
# then sleep unless OMP_WAIT_POLICY or GOMP_SPINCOUNT is set (common/base/openmp_waits.h);
# whatever is set here is passed on as it is.
case "$action" in
  start)
    [ -n "$source_flag" ] || { echo "launch-daemons: give --model DIR or --synth CONFIG:SEED" >&2; exit 2; }
    case "$connect" in
      inproc://*) ;;
      *) [ -n "$keys" ] || [ -n "$insecure" ] || {
           echo "launch-daemons: $connect needs --keys DIR (CurveZMQ) or, on a trusted network, --insecure" >&2; exit 2; } ;;
    esac
    if [ -n "$keys" ]; then
      [ -f "$keys/server.key" ] || { echo "launch-daemons: no $keys/server.key (g3n keygen --init $keys)" >&2; exit 2; }
      mkdir -p -m 700 "$keys/secrets"
    fi
    mkdir -p "$logs"
    : > "$pidfile"
    start_role() { # role count
      local role=$1 count=$2 i security
      for ((i = 0; i < count; i++)); do
        security=()
        [ -z "$insecure" ] || security=(--insecure)
        if [ -n "$keys" ]; then
          local key="$keys/secrets/$(hostname -s)-$role-$i"
          [ -f "$key.key_secret" ] || "$bin/orchestrator/g3n" keygen --keys "$keys" --role "$role" "$key" >/dev/null
          security=(--key "$key.key_secret" --server-key "$keys/server.key")
        fi
        # shellcheck disable=SC2086
        "$bin/g3n-$role" "$source_flag" "$source_value" --connect "$connect" "${security[@]}" \
          ${threads:+--threads "$threads"} $extra >"$logs/$role-$i.log" 2>&1 &
        echo "$! $role-$i" >> "$pidfile"
      done
    }
    start_role vision-encoder "$vision"
    start_role audio-encoder "$audio"
    start_role embedder "$embedders"
    start_role decoder "$decoders"
    echo "launch-daemons: started $(wc -l < "$pidfile") daemons for $connect (pids in $pidfile, logs in $logs)"
    ;;
  stop)
    [ -f "$pidfile" ] || { echo "launch-daemons: no $pidfile" >&2; exit 1; }
    status=0
    while read -r pid name; do kill -TERM "$pid" 2>/dev/null || true; done < "$pidfile"
    while read -r pid name; do
      for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      if kill -0 "$pid" 2>/dev/null; then echo "launch-daemons: $name ($pid) did not stop" >&2; kill -KILL "$pid"; status=1; fi
    done < "$pidfile"
    rm -f "$pidfile"
    exit $status
    ;;
  *) echo "usage: $0 start|stop [options] (see --help)" >&2; exit 2 ;;
esac
