#!/usr/bin/env bash
# Fanout figures for docs/benchmarks.md: nagare-bench fanout --start-broker,
# one open-loop publisher at RATE msgs/s for DURATION (after a 0.5 s
# warm-up), 128-byte JSON payloads, SUBSCRIBERS live subscribers of every
# message spread over CONNECTIONS connections: first directly on the broker
# (ephemeral subscriptions, deliver new, ack none), then as raw SSE clients
# of a nagare-gateway the run starts (--start-gateway), when it is built.
# Delivered events/s summed over the subscribers and publish-to-receive
# latency from the scheduled send time; a markdown table of every run.
#   scripts/fanout_bench.sh [data dir]   (default build/bench-data)
#   RATE=1000  DURATION=5s  SUBSCRIBERS=100  CONNECTIONS=4  ROUNDS=1
#   PRESET=release (the CMake preset whose binaries run)
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-data}
rate=${RATE:-1000}
duration=${DURATION:-5s}
subscribers=${SUBSCRIBERS:-100}
connections=${CONNECTIONS:-4}
rounds=${ROUNDS:-1}
preset=${PRESET:-release}
out=build/bench
mkdir -p "$dir" "$out"

echo "fanout bench: $preset build" >&2
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" -j 2 --target nagare-bench nagared >/dev/null
vias=(broker)
if cmake --build --preset "$preset" -j 2 --target nagare-gateway >/dev/null 2>&1; then
  vias+=(gateway)
else
  echo "fanout bench: no nagare-gateway target: broker only" >&2
fi

status=0
names=()
for r in $(seq 1 "$rounds"); do
  for via in "${vias[@]}"; do
    extra=()
    [ "$via" = gateway ] && extra=(--start-gateway)
    echo "fanout bench: round $r, via $via, $subscribers subscribers, $rate msgs/s for $duration" >&2
    timeout 300 "build/$preset/bench/nagare-bench" fanout --start-broker --data "$dir" \
      --rate "$rate" --duration "$duration" --subscribers "$subscribers" \
      --connections "$connections" --message-bytes 128 --durability none "${extra[@]}" \
      --json "$out/fanout-$via-$r.json" >&2 || status=$?
    names+=("$via-$r")
  done
done

python3 scripts/subscriptions_report.py fanout "$out" "$rate" "${names[@]}" || status=$?
exit $status
