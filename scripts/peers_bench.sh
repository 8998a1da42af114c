#!/usr/bin/env bash
# nagare beside NATS JetStream and Redis Streams in one run (issue 7): each
# target's server started by nagare-bench --start-broker on loopback and
# stopped after, the same message size, producers, window and duration for
# each. Prints a markdown table with the ratios and the issue's goals
# (scripts/peers_report.py); copy it into docs/benchmarks.md with the date.
#   scripts/peers_bench.sh        ROUNDS=2  DURATION=5s  MESSAGES=500000  PRESET=release
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
duration=${DURATION:-5s}
messages=${MESSAGES:-500000}
preset=${PRESET:-release}
out=build/bench/peers
mkdir -p "$out"
rm -f "$out"/*.json

echo "peers bench: $preset build" >&2
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j 2 --target nagare-bench nagared >/dev/null
bench="build/$preset/bench/nagare-bench"

run() {  # NAME SCENARIO TARGET ARGS...
  local name=$1 scenario=$2 target=$3
  shift 3
  echo "peers bench: $name ($scenario, $target)" >&2
  timeout 300 "$bench" "$scenario" --target "$target" --start-broker "$@" \
    --json "$out/$name.json" >/dev/null 2>"$out/$name.log" || echo "peers bench: $name failed (see $out/$name.log)" >&2
}

for r in $(seq 1 "$rounds"); do
  for spec in "nagare interval" "nats interval" "nagare fsync" "redis fsync"; do
    set -- $spec
    run "publish-$1-$2-$r" publish "$1" --durability "$2" --producers 4 --message-bytes 128 --duration "$duration"
  done
  for t in nagare nats redis; do
    run "consume-$t-$r" consume "$t" --durability fsync --messages "$messages" --durable
  done
  for t in nagare nats redis; do
    run "e2e-$t-$r" e2e "$t" --durability interval --rate 10000 --duration "$duration"
  done
done

python3 scripts/peers_report.py "$out" "$rounds"
