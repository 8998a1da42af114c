#!/usr/bin/env bash
# End-to-end latency figures for docs/benchmarks.md (issue 5, "Subscriptions"):
# nagare-bench e2e --start-broker, one live subscriber (deliver new, explicit
# acks) and one producer publishing open loop at RATE msgs/s for DURATION
# (after a 0.5 s warm-up), 128-byte payloads with msg_ids, over 1,000
# projects; publish-to-deliver latency from each message's scheduled send
# time (coordinated-omission corrected). ROUNDS runs per durability, then a
# markdown table of every run and the spread.
#   scripts/e2e_bench.sh [data dir on the disk to measure]   (default build/bench-data)
#   RATE=10000  DURATION=10s  ROUNDS=3
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build/bench-data}
rate=${RATE:-10000}
duration=${DURATION:-10s}
rounds=${ROUNDS:-3}
out=build/bench
mkdir -p "$dir" "$out"

echo "e2e bench: release build" >&2
cmake --preset release >/dev/null
cmake --build --preset release -j 2 --target nagare-bench nagared >/dev/null

status=0
names=()
for r in $(seq 1 "$rounds"); do
  for mode in fsync interval; do
    echo "e2e bench: round $r, durability=$mode, $rate msgs/s for $duration" >&2
    timeout 300 build/release/bench/nagare-bench e2e --start-broker --data "$dir" \
      --producers 1 --projects 1000 --message-bytes 128 --rate "$rate" --duration "$duration" \
      --durability "$mode" --ack explicit --json "$out/e2e-$mode-$r.json" >&2 || status=$?
    names+=("$mode-$r")
  done
done

python3 scripts/subscriptions_report.py e2e "$out" "$rate" "${names[@]}" || status=$?
exit $status
