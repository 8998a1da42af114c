#!/usr/bin/env bash
# SSE fan-out load on nagare-gateway (tests/gateway/load_sse.mjs): N SSE
# connections (default 10000) to one project, one event per second for
# DURATION seconds (default 30); prints a markdown table (latency, delivery,
# errors, gateway RSS per idle connection). Loopback only; starts and stops
# its own nagared and nagare-gateway from the build tree.
#   scripts/gateway_load.sh [CONNECTIONS] [DURATION_S] [extra load_sse.mjs flags, e.g. --json out.json]
# Builds nothing: run `cmake --build --preset default --target nagare-gateway nagared nagare` first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build/default}"
connections="${1:-10000}"
duration_s="${2:-30}"
shift $(( $# > 2 ? 2 : $# ))

export NAGARED="${NAGARED:-$build/broker/nagared}"
export NAGARE_GATEWAY="${NAGARE_GATEWAY:-$build/tools/gateway/nagare-gateway}"
export NAGARE_CLI="${NAGARE_CLI:-$build/tools/cli/nagare}"
for b in "$NAGARED" "$NAGARE_GATEWAY" "$NAGARE_CLI"; do
  [ -x "$b" ] || { echo "gateway_load: $b is not built" >&2; exit 2; }
done
[ -d "$root/tests/node_modules" ] || { echo "gateway_load: run scripts/setup.sh (tests/node_modules)" >&2; exit 2; }

# One descriptor per connection in the gateway and in the client processes (which inherit this limit).
want=$(( connections + 4096 ))
hard="$(ulimit -Hn)"
if [ "$hard" != unlimited ] && [ "$hard" -lt "$want" ]; then
  echo "gateway_load: ulimit -Hn is $hard, below the $want descriptors $connections connections need" >&2
  exit 2
fi
ulimit -n "$want"

exec node "$root/tests/gateway/load_sse.mjs" --connections "$connections" --duration-s "$duration_s" "$@"
